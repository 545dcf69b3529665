//! The one error type of the HTTP API. Every failure becomes an
//! `application/problem+json` response (RFC 9457) with a stable, machine-readable `code`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Every stable `code` a problem may carry. Code branches on the variant, never on its text;
/// the OpenAPI document enumerates [`ErrorCode::ALL`].
macro_rules! error_codes {
    ($($variant:ident => $text:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the problem body carries it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    AccountInactive => "account_inactive",
    AlreadyAccepted => "already_accepted",
    AlreadyAmended => "already_amended",
    AlreadyBooked => "already_booked",
    AlreadyDeclined => "already_declined",
    AlreadyExists => "already_exists",
    AlreadySigned => "already_signed",
    BadBody => "bad_body",
    BeyondBookingHorizon => "beyond_booking_horizon",
    CardExpired => "card_expired",
    CardInvalid => "card_invalid",
    CardUnknown => "card_unknown",
    ChecksumAlgorithmUnsupported => "checksum_algorithm_unsupported",
    ChecksumMismatch => "checksum_mismatch",
    ConsentRequired => "consent_required",
    ConsultationNotLive => "consultation_not_live",
    DatabaseUnavailable => "database_unavailable",
    DayFull => "day_full",
    DeviceRevoked => "device_revoked",
    DeviceTokenRequired => "device_token_required",
    EmptyFile => "empty_file",
    ExceedsUploadLength => "exceeds_upload_length",
    ExpertNotAssigned => "expert_not_assigned",
    FhirSearch => "fhir_search",
    Forbidden => "forbidden",
    IdentifierInUse => "identifier_in_use",
    ImplausibleValue => "implausible_value",
    InsufficientStorage => "insufficient_storage",
    InternalError => "internal_error",
    InvalidChecksum => "invalid_checksum",
    InvalidCredentials => "invalid_credentials",
    InvalidDicom => "invalid_dicom",
    InvalidEcg => "invalid_ecg",
    InvalidFrames => "invalid_frames",
    InvalidHeader => "invalid_header",
    InvalidMetadata => "invalid_metadata",
    InvalidQuery => "invalid_query",
    InvalidReference => "invalid_reference",
    InvalidRefreshToken => "invalid_refresh_token",
    InvalidRendering => "invalid_rendering",
    InvalidSchedule => "invalid_schedule",
    InvalidSdp => "invalid_sdp",
    InvalidTransition => "invalid_transition",
    LengthRequired => "length_required",
    MalformedJson => "malformed_json",
    MalformedMultipart => "malformed_multipart",
    MeasuredAtOutOfRange => "measured_at_out_of_range",
    MethodNotAllowed => "method_not_allowed",
    NetcheckBusy => "netcheck_busy",
    NoDraft => "no_draft",
    NoPool => "no_pool",
    NoSuchFrame => "no_such_frame",
    NotAParticipant => "not_a_participant",
    NotAPoolRequest => "not_a_pool_request",
    NotAcceptable => "not_acceptable",
    NotAnEcg => "not_an_ecg",
    NotAnImage => "not_an_image",
    NotFound => "not_found",
    NotOnSchedule => "not_on_schedule",
    NotSigned => "not_signed",
    NotStarted => "not_started",
    OfferAlreadyMade => "offer_already_made",
    OffsetMismatch => "offset_mismatch",
    OffsetRequired => "offset_required",
    OutsideTokenScope => "outside_token_scope",
    PasswordChangeRequired => "password_change_required",
    ParticipantCame => "participant_came",
    PatientBusy => "patient_busy",
    PayloadTooLarge => "payload_too_large",
    RangeNotSatisfiable => "range_not_satisfiable",
    RateLimited => "rate_limited",
    RoomNotOpen => "room_not_open",
    SlotTaken => "slot_taken",
    TokenRevoked => "token_revoked",
    TooLate => "too_late",
    TooSoon => "too_soon",
    TusVersionUnsupported => "tus_version_unsupported",
    Unauthorized => "unauthorized",
    Unavailable => "unavailable",
    UndecodablePixelData => "undecodable_pixel_data",
    UnsupportedFileType => "unsupported_file_type",
    UnsupportedMediaType => "unsupported_media_type",
    UnsupportedTransferSyntax => "unsupported_transfer_syntax",
    UpgradeRequired => "upgrade_required",
    UploadCompleted => "upload_completed",
    UploadCompleting => "upload_completing",
    UploadExpired => "upload_expired",
    UploadInterrupted => "upload_interrupted",
    UseClaim => "use_claim",
    ValidationFailed => "validation_failed",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A problem the API reports to its caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub title: &'static str,
    pub detail: String,
    /// Field-level messages for validation problems.
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (429, 503 `database_unavailable`).
    pub retry_after: Option<u64>,
    /// What went wrong on the server's side (5xx): logged once per request by
    /// [`crate::observability::track`] with the method and route, never sent to the caller.
    pub cause: Option<Box<str>>,
}

/// The cause of a failed answer, handed from the response to the request log.
#[derive(Clone, Debug)]
pub struct Failure {
    pub code: ErrorCode,
    pub cause: Box<str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: ErrorCode,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, title, detail: detail.into(), errors: Vec::new(), retry_after: None, cause: None }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "Not found", format!("{what} not found"))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, "Authentication required", detail)
    }

    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "Invalid credentials",
            "the username or password is wrong",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, "Forbidden", detail)
    }

    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }

    /// 422 with a single field-level message.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            "Validation failed",
            format!("{field}: {message}"),
        );
        e.errors.push(FieldError { field: field.to_string(), message });
        e
    }

    pub fn unprocessable(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Unprocessable content", detail)
    }

    /// 400 `malformed_json`: the body is not JSON text.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedJson, "Malformed JSON", detail)
    }

    /// 422 `validation_failed` from serde's message, which names the field (`consent.at:
    /// invalid type ...`) and what was wrong with it.
    pub fn invalid_body(message: String) -> Self {
        let field = field_from_serde_message(&message);
        let mut err = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            "Validation failed",
            message.clone(),
        );
        err.errors.push(FieldError { field, message });
        err
    }

    pub fn json_content_type_required() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Unsupported media type",
            "expected a body with Content-Type: application/json",
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "Too many requests",
            format!("too many attempts; retry after {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "Internal server error",
            "the server could not complete the request",
        );
        e.cause = Some(detail.to_string().into());
        e
    }

    /// 503 `database_unavailable`: the database cannot be reached now; the request may be
    /// repeated after [`DATABASE_RETRY_AFTER_SECS`].
    pub fn database_unavailable(detail: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DatabaseUnavailable,
            "Service unavailable",
            "the database cannot be reached; try again shortly",
        );
        e.retry_after = Some(DATABASE_RETRY_AFTER_SECS);
        e.cause = Some(detail.to_string().into());
        e
    }

    /// 507 `insufficient_storage`: the server's disk (database or file storage) is full.
    pub fn insufficient_storage(detail: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::InsufficientStorage,
            "Insufficient storage",
            "the server has no room left to store this",
        );
        e.cause = Some(detail.to_string().into());
        e
    }

    /// The one mapping of an I/O failure: a full disk or quota is 507, anything else 500.
    pub fn from_io(context: &str, e: std::io::Error) -> Self {
        if is_storage_full(&e) {
            Self::insufficient_storage(format!("{context}: {e}"))
        } else {
            Self::internal(format!("{context}: {e}"))
        }
    }
}

/// Seconds a client is told to wait when the database is unreachable.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;

/// ENOSPC or EDQUOT, however wrapped.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
        || e.get_ref().and_then(|inner| inner.downcast_ref::<std::io::Error>()).is_some_and(is_storage_full)
}

/// What a database failure means for the caller, from the error's kind and SQLSTATE
/// (PostgreSQL) or result code (SQLite).
#[derive(Debug, PartialEq, Eq)]
enum DbFailure {
    /// The database cannot be reached or is refusing work for now.
    Unavailable,
    /// The database's disk is full.
    Full,
    Other,
}

fn classify(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed | sqlx::Error::Tls(_) => {
            DbFailure::Unavailable
        }
        sqlx::Error::Io(io) if is_storage_full(io) => DbFailure::Full,
        sqlx::Error::Io(_) => DbFailure::Unavailable,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Primary result codes: 5 BUSY, 6 LOCKED, 10 IOERR, 13 FULL, 14 CANTOPEN.
                match code.parse::<i32>().map(|c| c & 0xff) {
                    Ok(13) => DbFailure::Full,
                    Ok(5 | 6 | 10 | 14) => DbFailure::Unavailable,
                    _ => DbFailure::Other,
                }
            } else {
                // SQLSTATE: 08 connection exceptions; 53100 disk full, 53300 too many
                // connections; 57P01-57P03 shut down or starting; 3D000 the database is gone.
                match code.as_ref() {
                    "53100" => DbFailure::Full,
                    c if c.starts_with("08") => DbFailure::Unavailable,
                    "53300" | "57P01" | "57P02" | "57P03" | "3D000" => DbFailure::Unavailable,
                    _ => DbFailure::Other,
                }
            }
        }
        _ => DbFailure::Other,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.cause.as_deref().unwrap_or(&self.detail))
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            type_: format!("https://teleconsult.invalid/problems/{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (self.status, json).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was not read: close the connection, so a client does not
            // send its next request on a connection the server is about to drop.
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(cause) = self.cause {
            resp.extensions_mut().insert(Failure { code: self.code, cause });
        }
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match classify(&e) {
            DbFailure::Unavailable => return ApiError::database_unavailable(e),
            DbFailure::Full => return ApiError::insufficient_storage(e),
            DbFailure::Other => {}
        }
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return ApiError::conflict(ErrorCode::AlreadyExists, "a record with these values already exists");
            }
            // PostgreSQL refuses NUL and other bytes it cannot store in text.
            if matches!(db.code().as_deref(), Some("22021" | "22P05" | "22P02" | "54000")) {
                return ApiError::unprocessable(
                    ErrorCode::ValidationFailed,
                    "the input holds characters or values that cannot be stored",
                );
            }
            if db.is_foreign_key_violation() {
                return ApiError::unprocessable(ErrorCode::InvalidReference, "a referenced record does not exist");
            }
        }
        ApiError::internal(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::invalid_body(
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.body_text()),
            ),
            JsonRejection::JsonSyntaxError(e) => ApiError::malformed_json(
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.body_text()),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::json_content_type_required(),
            JsonRejection::BytesRejection(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::PayloadTooLarge,
                        "Payload too large",
                        "the request body exceeds the configured limit",
                    )
                } else {
                    ApiError::bad_request(ErrorCode::BadBody, e.body_text())
                }
            }
            other => ApiError::bad_request(ErrorCode::BadBody, other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        // A malformed id cannot name a record the caller may see.
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "Not found", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let msg = r.body_text();
        // axum prefixes serde's message ("Failed to deserialize query string: limit: invalid
        // digit found in string"); the field is named after the prefix.
        let field = field_from_serde_message(msg.split_once("query string: ").map_or(msg.as_str(), |(_, m)| m));
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, "Invalid query", msg.clone());
        err.errors.push(FieldError { field, message: msg });
        err
    }
}

/// serde messages look like "missing field `reason` at line 1 column 2" or
/// "data.urgency: unknown variant `soon`..."; pick out the field name when there is one.
fn field_from_serde_message(msg: &str) -> String {
    if let Some(start) = msg.find('`') {
        if msg.contains("missing field") || msg.contains("unknown field") || msg.contains("duplicate field") {
            if let Some(len) = msg[start + 1..].find('`') {
                return msg[start + 1..start + 1 + len].to_string();
            }
        }
    }
    if let Some((path, _)) = msg.split_once(": ") {
        if !path.contains(' ') {
            return path.to_string();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_picked_from_serde_messages() {
        assert_eq!(field_from_serde_message("missing field `reason` at line 1 column 2"), "reason");
        assert_eq!(field_from_serde_message("urgency: unknown variant `soon`, expected one of"), "urgency");
        assert_eq!(field_from_serde_message("something else entirely"), "");
    }

    #[test]
    fn query_rejections_name_the_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Paging {
            #[allow(dead_code)]
            limit: Option<u32>,
        }
        let refused = |query: &str| {
            let uri: axum::http::Uri = format!("/list?{query}").parse().expect("uri");
            let e = ApiError::from(axum::extract::Query::<Paging>::try_from_uri(&uri).expect_err("refused"));
            (e.status, e.code, e.errors[0].field.clone())
        };
        assert_eq!(refused("limit=lots"), (StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery, "limit".to_string()));
        assert_eq!(refused("limit=-1").2, "limit");
        assert_eq!(refused("limit=2&page=2").2, "page");
    }

    #[test]
    fn unreachable_and_full_databases_and_disks_are_told_apart() {
        let e = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!((e.status.as_u16(), e.code, e.retry_after), (503, ErrorCode::DatabaseUnavailable, Some(5)));
        assert_eq!(ApiError::from(sqlx::Error::PoolClosed).code, ErrorCode::DatabaseUnavailable);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(ApiError::from(sqlx::Error::Io(reset)).code, ErrorCode::DatabaseUnavailable);
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(ApiError::from(sqlx::Error::Io(full)).status.as_u16(), 507);
        let wrapped = std::io::Error::other(std::io::Error::from(std::io::ErrorKind::StorageFull));
        let e = ApiError::from_io("file storage", wrapped);
        assert_eq!((e.status.as_u16(), e.code), (507, ErrorCode::InsufficientStorage));
        assert_eq!(ApiError::from_io("file storage", std::io::Error::other("bad")).status.as_u16(), 500);
        assert_eq!(ApiError::from(sqlx::Error::RowNotFound).status.as_u16(), 500);
    }

    #[tokio::test]
    async fn problem_json_carries_code_and_retry_after() {
        let resp = ApiError::rate_limited(42).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(resp.headers()[header::RETRY_AFTER], "42");
    }
}
