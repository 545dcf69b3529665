//! The one error type of the HTTP API. Every failure becomes an
//! `application/problem+json` response (RFC 9457) with a stable, machine-readable `code`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Every stable `code` a problem may carry; the OpenAPI document enumerates them, and a test
/// reads the sources so that a new code cannot be left out.
pub const CODES: &[&str] = &[
    "account_inactive",
    "already_accepted",
    "already_amended",
    "already_booked",
    "already_declined",
    "already_exists",
    "already_signed",
    "beyond_booking_horizon",
    "bad_body",
    "card_expired",
    "card_invalid",
    "card_unknown",
    "checksum_algorithm_unsupported",
    "checksum_mismatch",
    "consent_required",
    "consultation_not_live",
    "database_unavailable",
    "device_revoked",
    "device_token_required",
    "day_full",
    "empty_file",
    "exceeds_upload_length",
    "expert_not_assigned",
    "fhir_search",
    "forbidden",
    "identifier_in_use",
    "implausible_value",
    "insufficient_storage",
    "internal_error",
    "invalid_checksum",
    "invalid_credentials",
    "invalid_dicom",
    "invalid_ecg",
    "invalid_frames",
    "invalid_header",
    "invalid_metadata",
    "invalid_query",
    "invalid_reference",
    "invalid_refresh_token",
    "invalid_rendering",
    "invalid_schedule",
    "invalid_sdp",
    "invalid_transition",
    "length_required",
    "malformed_json",
    "malformed_multipart",
    "measured_at_out_of_range",
    "method_not_allowed",
    "netcheck_busy",
    "no_draft",
    "no_pool",
    "no_such_frame",
    "not_a_participant",
    "not_a_pool_request",
    "not_an_ecg",
    "not_an_image",
    "not_found",
    "not_on_schedule",
    "not_signed",
    "not_acceptable",
    "not_started",
    "offer_already_made",
    "offset_mismatch",
    "offset_required",
    "outside_token_scope",
    "password_change_required",
    "patient_busy",
    "payload_too_large",
    "range_not_satisfiable",
    "rate_limited",
    "room_not_open",
    "slot_taken",
    "token_revoked",
    "too_late",
    "too_soon",
    "tus_version_unsupported",
    "unauthorized",
    "unavailable",
    "undecodable_pixel_data",
    "unsupported_file_type",
    "unsupported_media_type",
    "unsupported_transfer_syntax",
    "upload_completed",
    "upload_completing",
    "upload_expired",
    "upgrade_required",
    "upload_interrupted",
    "use_claim",
    "validation_failed",
];

/// A problem the API reports to its caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Field-level messages for validation problems.
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (429, 503 `database_unavailable`).
    pub retry_after: Option<u64>,
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
    code: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, title, detail: detail.into(), errors: Vec::new(), retry_after: None }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", format!("{what} not found"))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail)
    }

    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Invalid credentials",
            "the username or password is wrong",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }

    /// 422 with a single field-level message.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
            format!("{field}: {message}"),
        );
        e.errors.push(FieldError { field: field.to_string(), message });
        e
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Unprocessable content", detail)
    }

    /// 400 `malformed_json`: the body is not JSON text.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON", detail)
    }

    /// 422 `validation_failed` from serde's message, which names the field (`consent.at:
    /// invalid type ...`) and what was wrong with it.
    pub fn invalid_body(message: String) -> Self {
        let field = field_from_serde_message(&message);
        let mut err =
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed", message.clone());
        err.errors.push(FieldError { field, message });
        err
    }

    pub fn json_content_type_required() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "expected a body with Content-Type: application/json",
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            format!("too many attempts; retry after {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
            "the server could not complete the request",
        )
    }

    /// 503 `database_unavailable`: the database cannot be reached now; the request may be
    /// repeated after [`DATABASE_RETRY_AFTER_SECS`].
    pub fn database_unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "database unavailable");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "Service unavailable",
            "the database cannot be reached; try again shortly",
        );
        e.retry_after = Some(DATABASE_RETRY_AFTER_SECS);
        e
    }

    /// 507 `insufficient_storage`: the server's disk (database or file storage) is full.
    pub fn insufficient_storage(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "storage full");
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            "Insufficient storage",
            "the server has no room left to store this",
        )
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
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
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
                return ApiError::conflict("already_exists", "a record with these values already exists");
            }
            // PostgreSQL refuses NUL and other bytes it cannot store in text.
            if matches!(db.code().as_deref(), Some("22021" | "22P05" | "22P02" | "54000")) {
                return ApiError::unprocessable(
                    "validation_failed",
                    "the input holds characters or values that cannot be stored",
                );
            }
            if db.is_foreign_key_violation() {
                return ApiError::unprocessable("invalid_reference", "a referenced record does not exist");
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
                        "payload_too_large",
                        "Payload too large",
                        "the request body exceeds the configured limit",
                    )
                } else {
                    ApiError::bad_request("bad_body", e.body_text())
                }
            }
            other => ApiError::bad_request("bad_body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        // A malformed id cannot name a record the caller may see.
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "Not found", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let msg = r.body_text();
        // axum prefixes serde's message ("Failed to deserialize query string: limit: invalid
        // digit found in string"); the field is named after the prefix.
        let field = field_from_serde_message(msg.split_once("query string: ").map_or(msg.as_str(), |(_, m)| m));
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "Invalid query", msg.clone());
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
        assert_eq!(refused("limit=lots"), (StatusCode::BAD_REQUEST, "invalid_query", "limit".to_string()));
        assert_eq!(refused("limit=-1").2, "limit");
        assert_eq!(refused("limit=2&page=2").2, "page");
    }

    #[test]
    fn unreachable_and_full_databases_and_disks_are_told_apart() {
        let e = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!((e.status.as_u16(), e.code, e.retry_after), (503, "database_unavailable", Some(5)));
        assert_eq!(ApiError::from(sqlx::Error::PoolClosed).code, "database_unavailable");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(ApiError::from(sqlx::Error::Io(reset)).code, "database_unavailable");
        let full = std::io::Error::from_raw_os_error(28);
        assert_eq!(ApiError::from(sqlx::Error::Io(full)).status.as_u16(), 507);
        let wrapped = std::io::Error::other(std::io::Error::from(std::io::ErrorKind::StorageFull));
        let e = ApiError::from_io("file storage", wrapped);
        assert_eq!((e.status.as_u16(), e.code), (507, "insufficient_storage"));
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

    /// The codes the sources construct problems with: the first string literal after each
    /// constructor that takes a code.
    fn codes_in_sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("server/src"), &mut files);
        let mut found = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for ctor in ["ApiError::new(", "ApiError::conflict(", "ApiError::bad_request(", "ApiError::unprocessable("]
            {
                for (at, _) in text.match_indices(ctor) {
                    let rest = &text[at + ctor.len()..];
                    let Some(open) = rest.find('"') else { continue };
                    // Only a literal among the first arguments (not one much later).
                    if rest[..open].contains(';') {
                        continue;
                    }
                    let lit = &rest[open + 1..];
                    let code = &lit[..lit.find('"').unwrap_or(0)];
                    // A code is a snake_case word (this scan's own source holds other literals).
                    if code.is_empty() || !code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        continue;
                    }
                    found.push((f.display().to_string(), code.to_string()));
                }
            }
        }
        found
    }

    #[test]
    fn every_code_in_the_sources_is_listed() {
        let found = codes_in_sources();
        assert!(found.len() > 40, "the scan found only {} codes", found.len());
        let missing: Vec<_> = found.iter().filter(|(_, c)| !CODES.contains(&c.as_str())).collect();
        assert!(missing.is_empty(), "codes missing from error::CODES: {missing:?}");
    }
}
