//! Resumable uploads over the tus 1.0 protocol (<https://tus.io/protocols/resumable-upload>):
//! core, creation, termination, checksum (sha256, and sha1 for clients that default to it) and
//! expiration, so standard tus clients work.
//!
//! Each PATCH streams its body into its own part object (`uploads/<id>/<offset>-<nonce>`);
//! a dropped connection keeps the bytes received (unless the chunk carries a checksum, which
//! then cannot be verified and is discarded), and the offset advances only through a
//! compare-and-set on the stored offset, so competing PATCHes cannot both count. When the
//! last byte arrives the parts are joined into the file, hashed, classified and recorded
//! exactly as a one-shot upload; until then nothing is visible among the files. Uploads idle
//! past `files_upload_expiry_secs` expire and their parts are removed by the sweeper.

use super::routes::payload_too_large;
use super::store::{self, Upload};
use super::{access, access_to_add, ingest, new_file_key, storage_error, ConsultationAccess, FileView, Intake, Stored};
use crate::api::{Path, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{new_id, parse_ts, ts, Db, Id};
use crate::domain::files::UploadState;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const TUS_VERSION: &str = "1.0.0";
pub const TUS_EXTENSIONS: &str = "creation,termination,checksum,expiration";

pub fn routes() -> Routes {
    Routes::new("files")
        .options_public("/api/v1/consultations/{id}/uploads", "tus: server capabilities", options)
        .answers(204, None, "tus discovery: Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm")
        .post("/api/v1/consultations/{id}/uploads", "tus: create a resumable upload (Upload-Length)", create)
        .raw_body(
            "application/offset+octet-stream",
            "tus creation: Upload-Length, Upload-Metadata; optionally the first bytes (creation-with-upload)",
        )
        .answers(201, None, "created; Location names the upload")
        .errors(&[409, 412, 507])
        .head("/api/v1/consultations/{id}/uploads/{upload}", "tus: the upload's offset", head)
        .answers(200, None, "Upload-Offset and Upload-Length")
        .errors(&[410, 412])
        .patch("/api/v1/consultations/{id}/uploads/{upload}", "tus: append bytes at Upload-Offset", patch)
        .raw_body("application/offset+octet-stream", "the bytes from Upload-Offset")
        .answers(204, None, "stored; Upload-Offset is the new offset")
        .errors(&[409, 410, 412, 460, 507])
        .delete("/api/v1/consultations/{id}/uploads/{upload}", "tus: terminate the upload", terminate)
        .answers(204, None, "terminated")
        .errors(&[409, 410, 412])
        .get(
            "/api/v1/consultations/{id}/uploads/{upload}",
            "State of a resumable upload, with its file once complete",
            status,
        )
        .json::<UploadView>(200)
        .errors(&[412])
}

// ---- protocol rules (pure) ------------------------------------------------------------

/// `Upload-Metadata`: comma-separated `key base64value` pairs (value optional).
pub fn parse_metadata(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.split(' ').filter(|s| !s.is_empty());
        let key = it.next().unwrap_or_default();
        if key.is_empty() || !key.is_ascii() {
            return Err(format!("bad metadata key in {pair:?}"));
        }
        let value = match it.next() {
            None => String::new(),
            Some(v) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| format!("metadata {key}: value is not base64"))?;
                String::from_utf8(bytes).map_err(|_| format!("metadata {key}: value is not UTF-8"))?
            }
        };
        if it.next().is_some() {
            return Err(format!("bad metadata pair {pair:?}"));
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// The checksum algorithms accepted in `Upload-Checksum`, strongest first. `sha1` is
/// accepted because common clients (tuspy) send it by default.
pub const CHECKSUM_ALGORITHMS: &str = "sha256,sha1";

/// A chunk checksum: the algorithm and the digest the client computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha256(Vec<u8>),
    Sha1(Vec<u8>),
}

/// Hashes a chunk with the algorithm of its `Upload-Checksum`.
pub enum ChunkHasher {
    Sha256(Sha256),
    Sha1(sha1::Sha1),
}

impl Checksum {
    pub fn hasher(&self) -> ChunkHasher {
        match self {
            Checksum::Sha256(_) => ChunkHasher::Sha256(Sha256::new()),
            Checksum::Sha1(_) => ChunkHasher::Sha1(sha1::Sha1::new()),
        }
    }

    fn expected(&self) -> &[u8] {
        match self {
            Checksum::Sha256(d) | Checksum::Sha1(d) => d,
        }
    }
}

impl ChunkHasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            ChunkHasher::Sha256(h) => h.update(data),
            ChunkHasher::Sha1(h) => h.update(data),
        }
    }

    /// Whether the bytes fed hash to the client's digest.
    pub fn matches(self, checksum: &Checksum) -> bool {
        match self {
            ChunkHasher::Sha256(h) => h.finalize().as_slice() == checksum.expected(),
            ChunkHasher::Sha1(h) => h.finalize().as_slice() == checksum.expected(),
        }
    }
}

/// `Upload-Checksum: <algorithm> <base64 digest>` with `sha256` or `sha1`; other algorithms
/// are refused with 400, as the checksum extension requires.
pub fn parse_checksum(raw: &str) -> Result<Checksum, ApiError> {
    let (algorithm, value) = raw.trim().split_once(' ').ok_or_else(|| {
        ApiError::bad_request(ErrorCode::InvalidChecksum, "Upload-Checksum is `<algorithm> <base64 digest>`")
    })?;
    let bytes = |len: usize| -> Result<Vec<u8>, ApiError> {
        let d = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| ApiError::bad_request(ErrorCode::InvalidChecksum, "the checksum is not base64"))?;
        if d.len() == len {
            Ok(d)
        } else {
            Err(ApiError::bad_request(ErrorCode::InvalidChecksum, format!("a {algorithm} digest has {len} bytes")))
        }
    };
    match algorithm.to_ascii_lowercase().as_str() {
        "sha256" => Ok(Checksum::Sha256(bytes(32)?)),
        "sha1" => Ok(Checksum::Sha1(bytes(20)?)),
        _ => Err(ApiError::bad_request(
            ErrorCode::ChecksumAlgorithmUnsupported,
            format!("checksum algorithm {algorithm:?} is not supported; use one of {CHECKSUM_ALGORITHMS}"),
        )),
    }
}

/// Where a part written at `offset` is stored; the nonce keeps competing writers apart.
pub fn part_key(upload: &str, offset: u64) -> String {
    format!("uploads/{upload}/{offset:020}-{}", uuid::Uuid::new_v4().simple())
}

/// The parts that make up bytes `0..length`, in order, from a listing of `(key, size)`:
/// starting at 0, each next part is one whose name starts at the previous end. Parts left by
/// a writer that lost a race are skipped.
pub fn chain_parts(listing: &[(String, u64)], length: u64) -> Option<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < length {
        let next = listing.iter().find(|(key, size)| {
            *size > 0
                && key.rsplit('/').next().and_then(|n| n.split('-').next()).and_then(|o| o.parse::<u64>().ok())
                    == Some(at)
        })?;
        at += next.1;
        out.push(next.clone());
    }
    (at == length).then_some(out)
}

fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

// ---- HTTP ----------------------------------------------------------------------------

fn tus_headers(resp: &mut Response) {
    resp.headers_mut().insert(HeaderName::from_static("tus-resumable"), HeaderValue::from_static(TUS_VERSION));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn respond(result: ApiResult<Response>) -> Response {
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    tus_headers(&mut resp);
    resp
}

fn set(resp: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn require_tus(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            ErrorCode::TusVersionUnsupported,
            "Unsupported tus version",
            format!("send Tus-Resumable: {TUS_VERSION}"),
        )),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).map(Some).ok_or_else(|| {
            ApiError::bad_request(ErrorCode::InvalidHeader, format!("{name} must be a non-negative integer"))
        }),
    }
}

async fn options(State(state): State<AppState>) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    tus_headers(&mut resp);
    set(&mut resp, "tus-version", TUS_VERSION);
    set(&mut resp, "tus-extension", TUS_EXTENSIONS);
    set(&mut resp, "tus-max-size", state.files.max_upload_bytes);
    set(&mut resp, "tus-checksum-algorithm", CHECKSUM_ALGORITHMS);
    resp
}

/// The caller's own upload, while it can still be resumed or read: another's, a terminated or a
/// rejected one is 404, an expired one 410.
async fn load(db: &Db, user: &AuthUser, consultation_id: &str, upload_id: &str) -> ApiResult<Upload> {
    let row = store::upload(db, consultation_id, upload_id, &user.id).await?;
    let row = row.ok_or_else(|| ApiError::not_found("upload"))?;
    match row.state {
        UploadState::Terminated | UploadState::Rejected => Err(ApiError::not_found("upload")),
        UploadState::Expired => Err(gone()),
        UploadState::Open if parse_ts(&row.expires_at) < chrono::Utc::now() => Err(gone()),
        UploadState::Open | UploadState::Completing | UploadState::Completed => Ok(row),
    }
}

fn gone() -> ApiError {
    ApiError::new(StatusCode::GONE, ErrorCode::UploadExpired, "Upload expired", "the upload expired; start a new one")
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(consultation_id)): Path<Id>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            require_tus(&headers)?;
            let consultation = access_to_add(&state.db, &user, &consultation_id).await?;
            if headers.contains_key("upload-defer-length") {
                return Err(ApiError::bad_request(ErrorCode::LengthRequired, "deferred lengths are not supported"));
            }
            let length = header_u64(&headers, "upload-length")?
                .ok_or_else(|| ApiError::bad_request(ErrorCode::LengthRequired, "Upload-Length is required"))?;
            if length > state.files.max_upload_bytes {
                return Err(payload_too_large(state.files.max_upload_bytes));
            }
            if length == 0 {
                return Err(ApiError::unprocessable(ErrorCode::EmptyFile, "the uploaded file is empty"));
            }
            state.files.check_room(length)?;
            let raw_metadata = headers.get("upload-metadata").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let metadata =
                parse_metadata(&raw_metadata).map_err(|m| ApiError::bad_request(ErrorCode::InvalidMetadata, m))?;
            let name =
                metadata.iter().find(|(k, _)| k == "filename" || k == "name").map(|(_, v)| v.as_str()).unwrap_or("");
            let name = super::classify::sanitize_filename(name);
            let id = new_id();
            let now = chrono::Utc::now();
            let expires = now + chrono::Duration::from_std(state.files.upload_expiry).unwrap_or_default();
            let upload = store::NewUpload {
                id: &id,
                consultation_id: &consultation_id,
                created_by: &user.id,
                name: &name,
                length: length as i64,
                metadata: &raw_metadata,
                expires_at: &ts(expires),
                now: &ts(now),
            };
            let mut tx = crate::audit::begin(&state.db).await?;
            store::insert_upload(&mut tx, &upload).await?;
            tx.audit(
                crate::audit::event(&user, "create", "upload", &id)
                    .patient(&consultation.patient_id)
                    .detail(format!("{length} bytes")),
            )
            .await?;
            tx.commit().await?;
            let mut resp = StatusCode::CREATED.into_response();
            set(&mut resp, "location", format!("/api/v1/consultations/{consultation_id}/uploads/{id}"));
            set(&mut resp, "upload-expires", http_date(expires));
            Ok(resp)
        }
        .await,
    )
}

async fn head(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(consultation_id), Id(upload_id))): Path<(Id, Id)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            require_tus(&headers)?;
            access(&state.db, &user, &consultation_id).await?;
            let row = load(&state.db, &user, &consultation_id, &upload_id).await?;
            let mut resp = StatusCode::OK.into_response();
            set(&mut resp, "upload-offset", row.upload_offset);
            set(&mut resp, "upload-length", row.length);
            if !row.metadata.is_empty() {
                set(&mut resp, "upload-metadata", &row.metadata);
            }
            if row.state == UploadState::Open {
                set(&mut resp, "upload-expires", http_date(parse_ts(&row.expires_at)));
            }
            if let Some(file) = &row.file_id {
                set(&mut resp, "teleconsult-file-id", file);
            }
            Ok(resp)
        }
        .await,
    )
}

async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(consultation_id), Id(upload_id))): Path<(Id, Id)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(patch_inner(&state, &user, &consultation_id, &upload_id, &headers, body).await)
}

async fn patch_inner(
    state: &AppState,
    user: &AuthUser,
    consultation_id: &str,
    upload_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (offset, checksum) = patch_request(headers)?;
    let consultation = access(&state.db, user, consultation_id).await?;
    let row = load(&state.db, user, consultation_id, upload_id).await?;
    if row.state != UploadState::Open || offset != row.upload_offset as u64 {
        return Err(ApiError::conflict(
            ErrorCode::OffsetMismatch,
            format!("the upload is at offset {} ({}), not {offset}", row.upload_offset, row.state.as_str()),
        ));
    }
    let length = row.length as u64;
    let part = receive_part(&state.files, upload_id, offset, length, checksum, body).await?;
    let new_offset = offset + part.received;
    let expires = chrono::Utc::now() + chrono::Duration::from_std(state.files.upload_expiry).unwrap_or_default();
    // The offset moves with the event that says so, or neither does (and the part is dropped).
    let advanced = async {
        let mut tx = crate::audit::begin(&state.db).await?;
        if !store::advance_offset(&mut tx, upload_id, offset as i64, new_offset as i64, &ts(expires)).await? {
            return Err(ApiError::conflict(ErrorCode::OffsetMismatch, "another request moved the upload's offset"));
        }
        tx.audit(
            crate::audit::event(user, "update", "upload", upload_id)
                .patient(&consultation.patient_id)
                .detail(format!("bytes {offset}-{}", new_offset.saturating_sub(1))),
        )
        .await?;
        tx.commit().await
    };
    if let Err(e) = advanced.await {
        let _ = state.files.storage.delete(&part.key).await;
        return Err(e);
    }
    match part.running {
        Some(h) => state.files.put_hasher(upload_id, new_offset, h),
        None => state.files.forget_hasher(upload_id),
    }
    if let Some(reason) = part.interrupted {
        tracing::info!(upload = upload_id, offset = new_offset, %reason, "upload interrupted; kept what arrived");
        return Err(ApiError::bad_request(
            ErrorCode::UploadInterrupted,
            "the body was cut short; resume from Upload-Offset",
        ));
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if new_offset == length {
        let file = complete(&state.db, &state.files, user, &consultation, &row).await?;
        set(&mut resp, "teleconsult-file-id", &file.id);
    } else {
        set(&mut resp, "upload-expires", http_date(expires));
    }
    set(&mut resp, "upload-offset", new_offset);
    Ok(resp)
}

/// The offset and checksum a PATCH names, once its headers are those of tus.
fn patch_request(headers: &HeaderMap) -> ApiResult<(u64, Option<Checksum>)> {
    require_tus(headers)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != "application/offset+octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Unsupported media type",
            "PATCH bodies are Content-Type: application/offset+octet-stream",
        ));
    }
    let offset = header_u64(headers, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request(ErrorCode::OffsetRequired, "Upload-Offset is required"))?;
    let checksum = headers.get("upload-checksum").and_then(|v| v.to_str().ok()).map(parse_checksum).transpose()?;
    Ok((offset, checksum))
}

/// The bytes of one PATCH, stored as a part.
struct Part {
    key: String,
    received: u64,
    /// The whole upload's running digest, when it has been followed from offset 0.
    running: Option<Sha256>,
    /// Why the body ended early, when it did (what arrived is kept).
    interrupted: Option<String>,
}

/// Streams a PATCH body into its part object at `offset`, refusing bytes past the upload's
/// `length` and a chunk whose checksum does not match (nothing is kept then).
async fn receive_part(
    files: &super::Files,
    upload_id: &str,
    offset: u64,
    length: u64,
    checksum: Option<Checksum>,
    body: Body,
) -> ApiResult<Part> {
    let key = part_key(upload_id, offset);
    let mut writer = files.storage.writer(&key).await.map_err(storage_error)?;
    let mut running = files.take_hasher(upload_id, offset).or_else(|| (offset == 0).then(Sha256::new));
    let mut chunk_hasher = checksum.as_ref().map(Checksum::hasher);
    let mut stream = body.into_data_stream();
    let mut interrupted = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                interrupted = Some(e.to_string());
                break;
            }
        };
        if offset + writer.written() + chunk.len() as u64 > length {
            writer.abort().await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::ExceedsUploadLength,
                "Payload too large",
                format!("the upload is {length} bytes long"),
            ));
        }
        if let Some(h) = running.as_mut() {
            h.update(&chunk);
        }
        if let Some(h) = chunk_hasher.as_mut() {
            h.update(&chunk);
        }
        if let Err(e) = writer.write(&chunk).await {
            writer.abort().await;
            return Err(storage_error(e));
        }
    }
    if let (Some(expected), Some(h)) = (&checksum, chunk_hasher) {
        let verified = interrupted.is_none() && h.matches(expected);
        if !verified {
            writer.abort().await;
            if interrupted.is_some() {
                return Err(ApiError::bad_request(ErrorCode::UploadInterrupted, "the chunk was cut short; resend it"));
            }
            return Err(ApiError::new(
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                ErrorCode::ChecksumMismatch,
                "Checksum mismatch",
                "the chunk's SHA-256 does not match Upload-Checksum; resend it",
            ));
        }
    }
    let received = writer.written();
    if received == 0 {
        writer.abort().await;
    } else {
        writer.finish().await.map_err(storage_error)?;
    }
    Ok(Part { key, received, running, interrupted })
}

/// Joins the parts into the file, then classifies and records it like a one-shot upload.
async fn complete(
    db: &Db,
    files: &crate::files::Files,
    user: &AuthUser,
    consultation: &ConsultationAccess,
    row: &Upload,
) -> ApiResult<FileView> {
    let event = || crate::audit::event(user, "update", "upload", &row.id).patient(&consultation.patient_id);
    let mut tx = crate::audit::begin(db).await?;
    if !store::leave_open(&mut tx, &row.id, UploadState::Completing).await? {
        return Err(ApiError::conflict(ErrorCode::UploadCompleting, "the upload is already being completed"));
    }
    tx.audit(event().detail("completing")).await?;
    tx.commit().await?;
    let result = assemble_and_ingest(db, files, user, consultation, row).await;
    let (final_state, file_id, detail) = match &result {
        Ok(file) => (UploadState::Completed, Some(file.id.as_str()), format!("completed as file {}", file.id)),
        Err(e) => (UploadState::Rejected, None, format!("rejected: {}", e.code.as_str())),
    };
    let mut tx = crate::audit::begin(db).await?;
    store::finish_upload(&mut tx, &row.id, final_state, file_id).await?;
    tx.audit(event().detail(detail)).await?;
    tx.commit().await?;
    remove_parts(files, &row.id).await;
    result
}

async fn assemble_and_ingest(
    db: &Db,
    files: &crate::files::Files,
    user: &AuthUser,
    consultation: &ConsultationAccess,
    row: &Upload,
) -> ApiResult<FileView> {
    let storage = &files.storage;
    let length = row.length as u64;
    let listing = storage.list(&format!("uploads/{}", row.id)).await.map_err(storage_error)?;
    let parts = chain_parts(&listing, length)
        .ok_or_else(|| ApiError::internal(format!("upload {}: stored parts do not cover its length", row.id)))?;
    let (file_id, key) = new_file_key();
    let running = files.take_hasher(&row.id, length);
    if let (Some(running), [(part, _)]) = (&running, parts.as_slice()) {
        // The usual case: the whole file arrived in one part, hashed on the way in.
        storage.rename(part, &key).await.map_err(storage_error)?;
        let head = storage.read_head(&key, super::classify::HEAD_BYTES as u64).await.map_err(storage_error)?;
        let digest = running.clone().finalize();
        let stored = Stored { key, size: length, sha256: super::hex(&digest), head };
        return ingest(db, files, user, consultation, &file_id, &row.name, stored).await;
    }
    let mut writer = storage.writer(&key).await.map_err(storage_error)?;
    let mut intake = Intake::new();
    for (part, _) in &parts {
        let mut stream = storage.read(part, None).await.map_err(storage_error)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(storage_error)?;
            intake.feed(&chunk);
            if let Err(e) = writer.write(&chunk).await {
                writer.abort().await;
                return Err(storage_error(e));
            }
        }
    }
    let size = writer.finish().await.map_err(storage_error)?;
    let digest = intake.hasher.finalize();
    if let Some(running) = running {
        if running.finalize() != digest {
            let _ = storage.delete(&key).await;
            return Err(ApiError::internal(format!("upload {}: stored parts differ from the bytes received", row.id)));
        }
    }
    let stored = Stored { key, size, sha256: super::hex(&digest), head: intake.head };
    ingest(db, files, user, consultation, &file_id, &row.name, stored).await
}

async fn remove_parts(files: &super::Files, upload_id: &str) {
    files.forget_hasher(upload_id);
    if let Ok(parts) = files.storage.list(&format!("uploads/{upload_id}")).await {
        for (key, _) in parts {
            let _ = files.storage.delete(&key).await;
        }
    }
}

async fn terminate(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(consultation_id), Id(upload_id))): Path<(Id, Id)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            require_tus(&headers)?;
            let consultation = access(&state.db, &user, &consultation_id).await?;
            load(&state.db, &user, &consultation_id, &upload_id).await?;
            let mut tx = crate::audit::begin(&state.db).await?;
            if !store::leave_open(&mut tx, &upload_id, UploadState::Terminated).await? {
                return Err(ApiError::conflict(ErrorCode::UploadCompleted, "a completed upload is a file and is kept"));
            }
            tx.audit(crate::audit::event(&user, "delete", "upload", &upload_id).patient(&consultation.patient_id))
                .await?;
            tx.commit().await?;
            remove_parts(&state.files, &upload_id).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

#[derive(Serialize, schemars::JsonSchema)]
struct UploadView {
    id: String,
    consultation_id: String,
    name: String,
    length: i64,
    offset: i64,
    #[schemars(with = "String")]
    state: UploadState,
    expires_at: String,
    file: Option<FileView>,
}

async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(consultation_id), Id(upload_id))): Path<(Id, Id)>,
) -> ApiResult<crate::api::Json<UploadView>> {
    let consultation = access(&state.db, &user, &consultation_id).await?;
    let row = load(&state.db, &user, &consultation_id, &upload_id).await?;
    let file = match &row.file_id {
        Some(id) => store::file(&state.db, id).await?,
        None => None,
    };
    crate::audit::event(&user, "read", "upload", &upload_id)
        .patient(&consultation.patient_id)
        .record(&state.db)
        .await?;
    Ok(crate::api::Json(UploadView {
        id: row.id,
        consultation_id: row.consultation_id,
        name: row.name,
        length: row.length,
        offset: row.upload_offset,
        state: row.state,
        expires_at: row.expires_at,
        file,
    }))
}

/// Marks uploads idle past their expiry (or stuck completing) as expired and removes their parts.
pub async fn sweep_expired(db: &Db, files: &super::Files) -> ApiResult<usize> {
    let mut removed = 0;
    for (id, patient) in store::expired_uploads(db).await? {
        let mut tx = crate::audit::begin(db).await?;
        if !store::expire_upload(&mut tx, &id).await? {
            continue;
        }
        tx.audit(crate::audit::unattended_event("system", "", "expire", "upload", &id).patient(patient)).await?;
        tx.commit().await?;
        remove_parts(files, &id).await;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_are_decoded() {
        let m = parse_metadata("filename Y3Quc2Nhbi5kY20=,filetype YXBwbGljYXRpb24vZGljb20=, flag").unwrap();
        assert_eq!(m[0], ("filename".into(), "ct.scan.dcm".into()));
        assert_eq!(m[1], ("filetype".into(), "application/dicom".into()));
        assert_eq!(m[2], ("flag".into(), String::new()));
        assert!(parse_metadata("filename !!!").is_err());
        assert!(parse_metadata("").unwrap().is_empty());
    }

    #[test]
    fn checksums_are_sha256_or_sha1() {
        let digest = Sha256::digest(b"hello");
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        let checksum = parse_checksum(&format!("sha256 {b64}")).unwrap();
        let mut h = checksum.hasher();
        h.update(b"hel");
        h.update(b"lo");
        assert!(h.matches(&checksum));
        let sha1 = base64::engine::general_purpose::STANDARD.encode(<sha1::Sha1 as Digest>::digest(b"hello"));
        let checksum = parse_checksum(&format!("sha1 {sha1}")).unwrap();
        let mut h = checksum.hasher();
        h.update(b"hello");
        assert!(h.matches(&checksum));
        let mut h = checksum.hasher();
        h.update(b"hellO");
        assert!(!h.matches(&checksum));
        assert_eq!(parse_checksum("md5 abc").unwrap_err().code, ErrorCode::ChecksumAlgorithmUnsupported);
        assert_eq!(parse_checksum("sha256 AAAA").unwrap_err().code, ErrorCode::InvalidChecksum);
        assert_eq!(parse_checksum("sha256").unwrap_err().code, ErrorCode::InvalidChecksum);
    }

    #[test]
    fn parts_chain_from_zero_to_the_length() {
        let listing = vec![
            ("uploads/u/00000000000000000000-a".to_string(), 10),
            ("uploads/u/00000000000000000010-b".to_string(), 5),
            ("uploads/u/00000000000000000010-z".to_string(), 3),
            ("uploads/u/00000000000000000015-c".to_string(), 5),
        ];
        let chain = chain_parts(&listing, 20).unwrap();
        assert_eq!(chain.iter().map(|p| p.1).sum::<u64>(), 20);
        assert_eq!(chain[1].0, "uploads/u/00000000000000000010-b");
        assert!(chain_parts(&listing, 25).is_none());
        assert!(chain_parts(&listing[1..], 20).is_none());
    }
}
