//! The files API: one-shot upload, listing, download with `Range`, and rendered DICOM frames.
//! Upload routes read the body as a stream, so the JSON body limit does not apply to them;
//! their limit is `files_max_upload_bytes`.

use super::classify::{content_disposition, parse_range, sanitize_filename, RangeRequest};
use super::{
    access, access_to_add, ingest, new_file_key, readable_file, storage_error, store, FileView, Files, Intake, Stored,
};
use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::Id;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::Digest;

pub fn routes() -> Routes {
    Routes::new("files")
        .post("/api/v1/consultations/{id}/files", "Upload a small file in one request (raw body, ?name=)", upload)
        .query::<UploadQuery>()
        .raw_body("application/octet-stream", "the file's bytes; ?name= or Content-Disposition names it")
        .json::<FileView>(201)
        .errors(&[409, 411, 415, 507])
        .get("/api/v1/consultations/{id}/files", "Files of a consultation, newest first (?limit=&cursor=)", list)
        .query::<ListQuery>()
        .json::<crate::api::Page<FileView>>(200)
        .get("/api/v1/files/{id}", "The bytes of a file (Range supported)", download)
        .answers(200, Some("application/octet-stream"), "the file's bytes, with its own content type")
        .answers(206, Some("application/octet-stream"), "the requested range")
        .errors(&[416])
        .get("/api/v1/files/{id}/rendered", "A DICOM frame as PNG or JPEG (?frame=&wc=&ww=&preset=&format=)", rendered)
        .query::<RenderQuery>()
        .answers(200, Some("image/png"), "the frame as PNG or JPEG (?format=)")
        .errors(&[415])
        .merge(super::tus::routes())
        .merge(super::dicomweb::routes())
}

pub fn payload_too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        "Payload too large",
        format!("files larger than {max} bytes are not accepted"),
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: Option<String>,
}

/// The file name from `?name=` or from `Content-Disposition: ...; filename=...`.
fn upload_name(query: Option<String>, headers: &HeaderMap) -> String {
    let from_header = || {
        let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
        value
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("filename="))
            .map(|n| n.trim_matches('"').to_string())
    };
    sanitize_filename(&query.or_else(from_header).unwrap_or_default())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Streams a request body into the object `key`, hashing it on the way; at most `max` bytes.
pub async fn store_body(files: &Files, key: &str, body: Body, max: u64) -> ApiResult<Stored> {
    let storage = &files.storage;
    let mut writer = storage.writer(key).await.map_err(storage_error)?;
    let mut intake = Intake::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await;
                return Err(ApiError::bad_request(
                    ErrorCode::UploadInterrupted,
                    format!("the body could not be read: {e}"),
                ));
            }
        };
        if writer.written() + chunk.len() as u64 > max {
            writer.abort().await;
            return Err(payload_too_large(max));
        }
        intake.feed(&chunk);
        if let Err(e) = writer.write(&chunk).await {
            writer.abort().await;
            return Err(storage_error(e));
        }
    }
    let size = writer.finish().await.map_err(storage_error)?;
    Ok(Stored { key: key.to_string(), size, sha256: super::hex(&intake.hasher.finalize()), head: intake.head })
}

async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(consultation_id)): Path<Id>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<FileView>)> {
    let consultation = access_to_add(&state.db, &user, &consultation_id).await?;
    let max = state.files.max_upload_bytes;
    if declared_length(&headers).is_some_and(|n| n > max) {
        return Err(payload_too_large(max));
    }
    let name = upload_name(q.name, &headers);
    let (file_id, key) = new_file_key();
    let stored = store_body(&state.files, &key, body, max).await?;
    if stored.size == 0 {
        let _ = state.files.storage.delete(&key).await;
        return Err(ApiError::unprocessable(ErrorCode::EmptyFile, "the uploaded file is empty"));
    }
    let file = ingest(&state.db, &state.files, &user, &consultation, &file_id, &name, stored).await?;
    Ok((StatusCode::CREATED, Json(file)))
}

/// `?limit=&cursor=` of the files list, as the other lists take them.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// One page of a consultation's files, newest first (ids are UUIDv7); one audit event per page.
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(consultation_id)): Path<Id>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<crate::api::Page<FileView>>> {
    let consultation = access(&state.db, &user, &consultation_id).await?;
    let limit = crate::api::page_limit(q.limit, 200)?;
    let cursor = crate::api::page_cursor(q.cursor)?;
    let before = Some(cursor.as_str()).filter(|c| !c.is_empty());
    let rows = store::files_page(&state.db, &consultation_id, before, limit as i64 + 1).await?;
    crate::audit::event(&user, "read", "consultation_files", &consultation_id)
        .patient(&consultation.patient_id)
        .record(&state.db)
        .await?;
    Ok(Json(crate::api::page(rows, limit, |f| f.id.clone())))
}

async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(file_id)): Path<Id>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (file, consultation) = readable_file(&state.db, &user, &file_id).await?;
    let size = file.size as u64;
    let range = parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    let detail = match &range {
        RangeRequest::Partial { start, end } => format!("bytes {start}-{}", end - 1),
        _ => String::new(),
    };
    crate::audit::event(&user, "read", "file", &file_id)
        .patient(&consultation.patient_id)
        .detail(detail)
        .record(&state.db)
        .await?;
    let (status, span) = match range {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, Some(start..end)),
        RangeRequest::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::RangeNotSatisfiable,
                "Range not satisfiable",
                format!("the file has {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let stream = state.files.storage.read(&file.storage_key, span.clone()).await.map_err(storage_error)?;
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let length = span.as_ref().map_or(size, |r| r.end - r.start);
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, file.content_type.clone());
    set(header::CONTENT_LENGTH, length.to_string());
    set(header::CONTENT_DISPOSITION, content_disposition("attachment", &file.name));
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, format!("\"{}\"", file.sha256));
    set(header::CACHE_CONTROL, "private, no-cache".into());
    if let Some(r) = span {
        set(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end - 1));
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderQuery {
    pub frame: Option<u32>,
    pub wc: Option<f64>,
    pub ww: Option<f64>,
    pub preset: Option<String>,
    pub format: Option<String>,
}

/// Largest DICOM file rendered (the whole file is decoded in memory).
pub const MAX_RENDER_BYTES: u64 = 1024 * 1024 * 1024;

/// Reads a whole stored object into memory (DICOM files to decode).
pub async fn read_all(files: &super::Files, key: &str, limit: u64) -> ApiResult<Vec<u8>> {
    files.storage.read_head(key, limit).await.map_err(storage_error)
}

async fn rendered(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(file_id)): Path<Id>,
    Query(q): Query<RenderQuery>,
) -> ApiResult<Response> {
    use crate::dicom::render::{render, Format, Window};
    let (file, consultation) = readable_file(&state.db, &user, &file_id).await?;
    if file.content_type != "application/dicom" {
        return Err(ApiError::unprocessable(ErrorCode::NotAnImage, "only DICOM files are rendered"));
    }
    let format = match q.format.as_deref() {
        None => Format::Png,
        Some(f) => Format::parse(f)
            .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidRendering, "format is png or jpeg"))?,
    };
    let window = Window::from_query(q.preset.as_deref(), q.wc, q.ww)?;
    crate::audit::event(&user, "read", "file", &file_id)
        .patient(&consultation.patient_id)
        .detail("rendered")
        .record(&state.db)
        .await?;
    let bytes = read_all(&state.files, &file.storage_key, MAX_RENDER_BYTES).await?;
    let frame = q.frame.unwrap_or(1);
    let image = tokio::task::spawn_blocking(move || render(&bytes, frame, window, format))
        .await
        .map_err(ApiError::internal)??;
    Ok(([(header::CONTENT_TYPE, format.content_type()), (header::CACHE_CONTROL, "private, no-cache")], image)
        .into_response())
}
