//! DICOMweb (PS3.18) for the studies of one consultation, under
//! `/api/v1/consultations/{id}/dicomweb`, with the caller's bearer token: QIDO-RS search of
//! studies, series and instances; WADO-RS retrieval of instances (multipart/related
//! application/dicom), metadata (DICOM JSON with BulkDataURIs), frames (multipart/related
//! application/octet-stream, decoded to native little endian), bulk data and rendered images;
//! STOW-RS storage of multipart/related application/dicom bodies, streamed part by part into
//! the consultation's files. Access is that of the consultation's files (404 for anyone else).

use super::routes::{payload_too_large, read_all, MAX_RENDER_BYTES};
use super::storage::ObjectWriter;
use super::{access, access_to_add, ingest, new_file_key, storage_error, ConsultationAccess, Files, Intake, Stored};
use crate::api::{Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{Db, Id};
use crate::dicom::multipart::{self, Event, MultipartReader};
use crate::dicom::negotiate;
use crate::dicom::qido::{parse_search, put, put_int, results, Instance, Level};
use crate::dicom::render::{self, Window};
use crate::dicom::{store as index, DicomError, INSTANCE_URL_PLACEHOLDER};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::proxy::ExternalOrigin;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use sha2::Digest;

const BASE: &str = "/api/v1/consultations/{id}/dicomweb";

pub fn routes() -> Routes {
    Routes::new("dicomweb")
        .get("/api/v1/consultations/{id}/dicomweb/studies", "QIDO-RS: search studies", search_studies).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .post("/api/v1/consultations/{id}/dicomweb/studies", "STOW-RS: store instances (multipart/related application/dicom)", store).raw_body("multipart/related", "type=application/dicom parts, one instance each").answers(200, Some("application/dicom+json"), "the store response").errors(&[409, 415])
        .get("/api/v1/consultations/{id}/dicomweb/series", "QIDO-RS: search series", search_all_series).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/instances", "QIDO-RS: search instances", search_all_instances).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}", "WADO-RS: a study's instances", retrieve_study).answers(200, Some("multipart/related"), "the instances, each application/dicom").errors(&[406])
        .post("/api/v1/consultations/{id}/dicomweb/studies/{study}", "STOW-RS: store instances of this study", store_study).raw_body("multipart/related", "type=application/dicom parts, one instance each").answers(200, Some("application/dicom+json"), "the store response").errors(&[409, 415])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/metadata", "WADO-RS: a study's metadata", metadata_study).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series", "QIDO-RS: search a study's series", search_series).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/instances", "QIDO-RS: search a study's instances", search_study_instances).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}", "WADO-RS: a series' instances", retrieve_series).answers(200, Some("multipart/related"), "the instances, each application/dicom").errors(&[406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/metadata", "WADO-RS: a series' metadata", metadata_series).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances", "QIDO-RS: search a series' instances", search_instances).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}", "WADO-RS: an instance", retrieve_instance).answers(200, Some("multipart/related"), "the instances, each application/dicom").errors(&[406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata", "WADO-RS: an instance's metadata", metadata_instance).answers(200, Some("application/dicom+json"), "DICOM JSON").errors(&[400, 406])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", "WADO-RS: frames, native pixel data", frames).answers(200, Some("multipart/related"), "the frames, native pixel data").errors(&[406, 422])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered", "WADO-RS: rendered instance", rendered_instance).answers(200, Some("image/jpeg"), "rendered as JPEG or PNG").errors(&[406, 422])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", "WADO-RS: rendered frame", rendered_frame).answers(200, Some("image/jpeg"), "rendered as JPEG or PNG").errors(&[406, 422])
        .get("/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}", "WADO-RS: bulk data of an attribute", bulk).answers(200, Some("multipart/related"), "the attribute's bytes").errors(&[406])
}

// ---- HTTP ----------------------------------------------------------------------------

/// The DICOMweb base of a consultation as the client reached it.
fn base_url(origin: &str, consultation_id: &str) -> String {
    format!("{origin}{}", BASE.replace("{id}", consultation_id))
}

fn dicom_json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/dicom+json")], body).into_response()
}

/// A UID from a path: digits and dots, at most 64 characters; anything else names nothing.
fn uid(raw: &str) -> ApiResult<&str> {
    let ok = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then_some(raw).ok_or_else(|| ApiError::not_found("DICOM object"))
}

async fn scope(db: &Db, user: &AuthUser, consultation_id: &str, what: &str) -> ApiResult<ConsultationAccess> {
    let consultation = access(db, user, consultation_id).await?;
    crate::audit::event(user, "read", "dicom", what).patient(&consultation.patient_id).record(db).await?;
    Ok(consultation)
}

type Params = Query<Vec<(String, String)>>;

/// A QIDO-RS search at `level`, within a study or series when given.
#[allow(clippy::too_many_arguments)]
async fn qido(
    db: &Db,
    user: &AuthUser,
    cid: &str,
    level: Level,
    study: Option<&str>,
    series: Option<&str>,
    params: &[(String, String)],
    headers: &HeaderMap,
    origin: &str,
) -> ApiResult<Response> {
    negotiate::dicom_json(headers)?;
    let what = match level {
        Level::Study => "studies",
        Level::Series => "series",
        Level::Instance => "instances",
    };
    scope(db, user, cid, series.or(study).unwrap_or(what)).await?;
    let search = parse_search(params)?;
    let all = index::instances(db, cid, None, None, None).await?;
    let rows: Vec<&Instance> = all
        .iter()
        .filter(|i| study.is_none_or(|s| i.study_uid == s) && series.is_none_or(|s| i.series_uid == s))
        .collect();
    if study.is_some() && rows.is_empty() {
        return Err(ApiError::not_found("study or series"));
    }
    // Stored models: of every instance in scope when a key is matched on them, else of
    // the first instance of each study, series or instance returned.
    let wanted: Vec<&str> = if search.needs_models() {
        rows.iter().map(|i| i.file_id.as_str()).collect()
    } else {
        let mut heads: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in &rows {
            let key = match level {
                Level::Study => &i.study_uid,
                Level::Series => &i.series_uid,
                Level::Instance => &i.sop_instance_uid,
            };
            if seen.insert(key.as_str()) {
                heads.push(&i.file_id);
            }
        }
        heads
    };
    let models = index::models(db, cid, &wanted).await?;
    let out = results(level, &all, &rows, &search, &models, &base_url(origin, cid));
    let mut resp = dicom_json(Value::Array(out).to_string());
    for w in &search.warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 teleconsult \"{}\"", w.replace('"', "'"))) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    Ok(resp)
}

async fn search_studies(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path(Id(cid)): Path<Id>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    qido(&state.db, &user, &cid, Level::Study, None, None, &params, &headers, &origin).await
}

async fn search_all_series(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path(Id(cid)): Path<Id>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    qido(&state.db, &user, &cid, Level::Series, None, None, &params, &headers, &origin).await
}

async fn search_series(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study)): Path<(Id, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    qido(&state.db, &user, &cid, Level::Series, Some(uid(&study)?), None, &params, &headers, &origin).await
}

async fn search_all_instances(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path(Id(cid)): Path<Id>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    qido(&state.db, &user, &cid, Level::Instance, None, None, &params, &headers, &origin).await
}

async fn search_study_instances(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study)): Path<(Id, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    qido(&state.db, &user, &cid, Level::Instance, Some(uid(&study)?), None, &params, &headers, &origin).await
}

async fn search_instances(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study, series)): Path<(Id, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (study, series) = (uid(&study)?, uid(&series)?);
    qido(&state.db, &user, &cid, Level::Instance, Some(study), Some(series), &params, &headers, &origin).await
}

/// WADO-RS metadata: the stored JSON model of each instance, BulkDataURIs made absolute.
#[allow(clippy::too_many_arguments)]
async fn metadata(
    db: &Db,
    user: &AuthUser,
    cid: &str,
    study: &str,
    series: Option<&str>,
    instance: Option<&str>,
    headers: &HeaderMap,
    origin: &str,
) -> ApiResult<Response> {
    negotiate::dicom_json(headers)?;
    scope(db, user, cid, instance.or(series).unwrap_or(study)).await?;
    let rows = index::study_models(db, cid, study, series, instance).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("DICOM object"));
    }
    let base = base_url(origin, cid);
    let mut out = String::with_capacity(rows.iter().map(|r| r.metadata_json.len() + 2).sum::<usize>() + 2);
    out.push('[');
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let url = format!("{base}/studies/{}/series/{}/instances/{}", r.study_uid, r.series_uid, r.sop_instance_uid);
        out.push_str(&r.metadata_json.replace(INSTANCE_URL_PLACEHOLDER, &url));
    }
    out.push(']');
    Ok(dicom_json(out))
}

async fn metadata_study(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study)): Path<(Id, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metadata(&state.db, &user, &cid, uid(&study)?, None, None, &headers, &origin).await
}

async fn metadata_series(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study, series)): Path<(Id, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metadata(&state.db, &user, &cid, uid(&study)?, Some(uid(&series)?), None, &headers, &origin).await
}

async fn metadata_instance(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study, series, instance)): Path<(Id, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metadata(&state.db, &user, &cid, uid(&study)?, Some(uid(&series)?), Some(uid(&instance)?), &headers, &origin).await
}

/// A stored file in another transfer syntax (406 when the server cannot produce it).
fn transcoded(bytes: &[u8], from: &str, to: &str) -> ApiResult<Vec<u8>> {
    use dicom_pixeldata::Transcode;
    use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
    let cannot = |why: String| negotiate::not_acceptable(format!("cannot send {from} as {to}: {why}"));
    let ts = TransferSyntaxRegistry.get(to).ok_or_else(|| cannot("unknown transfer syntax".into()))?;
    let mut obj = crate::dicom::open(bytes, false).map_err(|e| cannot(e.to_string()))?;
    obj.transcode(ts).map_err(|e| cannot(e.to_string()))?;
    let mut out = Vec::with_capacity(bytes.len());
    obj.write_all(&mut out).map_err(|e| cannot(e.to_string()))?;
    Ok(out)
}

/// WADO-RS retrieval: the files as they were stored, streamed one after the other, or
/// transcoded to the transfer syntax the `Accept` header names.
async fn retrieve(
    db: &Db,
    files: &Files,
    user: &AuthUser,
    cid: &str,
    (study, series, instance): (&str, Option<&str>, Option<&str>),
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let wanted = negotiate::instances(headers)?;
    let consultation = scope(db, user, cid, instance.or(series).unwrap_or(study)).await?;
    let rows = index::instances(db, cid, Some(study), series, instance).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("DICOM object"));
    }
    for r in &rows {
        crate::audit::event(user, "read", "file", &r.file_id)
            .patient(&consultation.patient_id)
            .detail("wado-rs")
            .record(db)
            .await?;
    }
    let boundary = multipart::new_boundary();
    let closing = multipart::closing(&boundary);
    let ts_param = wanted.as_deref().map(|t| format!("; transfer-syntax={t}")).unwrap_or_default();
    let ct = format!("multipart/related; type=\"application/dicom\"{ts_param}; boundary={boundary}");
    if let Some(to) = wanted.as_deref().filter(|to| rows.iter().any(|r| r.transfer_syntax != *to)) {
        let mut body = Vec::new();
        for r in &rows {
            let bytes = read_all(files, &r.storage_key, MAX_RENDER_BYTES).await?;
            let (from, to_owned) = (r.transfer_syntax.clone(), to.to_string());
            let file = tokio::task::spawn_blocking(move || {
                if from == to_owned {
                    Ok(bytes)
                } else {
                    transcoded(&bytes, &from, &to_owned)
                }
            })
            .await
            .map_err(ApiError::internal)??;
            let part_ct = format!("application/dicom; transfer-syntax={to}");
            body.extend_from_slice(&multipart::part_header(
                &boundary,
                &part_ct,
                &[("Content-Length", &file.len().to_string())],
            ));
            body.extend_from_slice(&file);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(&closing);
        return Ok(([(header::CONTENT_TYPE, ct)], body).into_response());
    }
    let storage = files.storage.clone();
    let b = boundary.clone();
    let parts = futures_util::stream::iter(rows).then(move |r| {
        let storage = storage.clone();
        let part_ct = format!("application/dicom; transfer-syntax={}", r.transfer_syntax);
        let head = multipart::part_header(&b, &part_ct, &[("Content-Length", &r.size.to_string())]);
        async move {
            let body = match storage.read(&r.storage_key, None).await {
                Ok(s) => s,
                Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
            };
            futures_util::stream::once(async move { Ok(Bytes::from(head)) })
                .chain(body)
                .chain(futures_util::stream::once(async { Ok(Bytes::from_static(b"\r\n")) }))
        }
    });
    let stream =
        parts.flatten().chain(futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(closing)) }));
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(&ct).map_err(ApiError::internal)?);
    Ok(resp)
}

async fn retrieve_study(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((Id(cid), study)): Path<(Id, String)>,
) -> ApiResult<Response> {
    retrieve(&state.db, &state.files, &user, &cid, (uid(&study)?, None, None), &headers).await
}

async fn retrieve_series(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((Id(cid), study, series)): Path<(Id, String, String)>,
) -> ApiResult<Response> {
    retrieve(&state.db, &state.files, &user, &cid, (uid(&study)?, Some(uid(&series)?), None), &headers).await
}

async fn retrieve_instance(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((Id(cid), study, series, instance)): Path<(Id, String, String, String)>,
) -> ApiResult<Response> {
    retrieve(&state.db, &state.files, &user, &cid, (uid(&study)?, Some(uid(&series)?), Some(uid(&instance)?)), &headers)
        .await
}

/// The one instance at a path, its bytes loaded, after the access check and audit.
async fn load_instance(
    db: &Db,
    files: &Files,
    user: &AuthUser,
    cid: &str,
    study: &str,
    series: &str,
    instance: &str,
) -> ApiResult<Vec<u8>> {
    let consultation = scope(db, user, cid, instance).await?;
    let rows = index::instances(db, cid, Some(uid(study)?), Some(uid(series)?), Some(uid(instance)?)).await?;
    let row = rows.into_iter().next().ok_or_else(|| ApiError::not_found("DICOM instance"))?;
    crate::audit::event(user, "read", "file", &row.file_id)
        .patient(&consultation.patient_id)
        .detail("wado-rs")
        .record(db)
        .await?;
    read_all(files, &row.storage_key, MAX_RENDER_BYTES).await
}

fn frame_list(raw: &str) -> ApiResult<Vec<u32>> {
    let list: Option<Vec<u32>> = raw.split(',').map(|f| f.trim().parse::<u32>().ok().filter(|n| *n >= 1)).collect();
    list.filter(|l| !l.is_empty() && l.len() <= 10_000).ok_or_else(|| {
        ApiError::bad_request(ErrorCode::InvalidFrames, "frames are a comma-separated list of numbers from 1")
    })
}

async fn frames(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((Id(cid), study, series, instance, list)): Path<(Id, String, String, String, String)>,
) -> ApiResult<Response> {
    let ts = negotiate::frames(&headers)?;
    let numbers = frame_list(&list)?;
    let bytes = load_instance(&state.db, &state.files, &user, &cid, &study, &series, &instance).await?;
    let frames = tokio::task::spawn_blocking(move || render::native_frames(&bytes, &numbers))
        .await
        .map_err(ApiError::internal)??;
    let boundary = multipart::new_boundary();
    let mut body = Vec::with_capacity(frames.iter().map(|f| f.len() + 128).sum());
    for f in &frames {
        body.extend_from_slice(&multipart::part_header(
            &boundary,
            &format!("application/octet-stream; transfer-syntax={ts}"),
            &[],
        ));
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(&multipart::closing(&boundary));
    let ct = format!("multipart/related; type=\"application/octet-stream\"; transfer-syntax={ts}; boundary={boundary}");
    Ok(([(header::CONTENT_TYPE, ct)], body).into_response())
}

/// `window=center,width[,function]` of the rendered resource, or none.
fn rendered_window(params: &[(String, String)]) -> ApiResult<Window> {
    match params.iter().find(|(k, _)| k == "window") {
        None => Ok(Window::Default),
        Some((_, v)) => {
            let mut it = v.split(',').map(|s| s.trim().parse::<f64>());
            match (it.next(), it.next()) {
                (Some(Ok(center)), Some(Ok(width))) => Ok(Window::from_query(None, Some(center), Some(width))?),
                _ => Err(ApiError::bad_request(ErrorCode::InvalidRendering, "window is center,width[,function]")),
            }
        }
    }
}

/// What a rendering request asks for besides the instance: the frame (1-based), its query
/// (`window`, `accept`) and its `Accept` header.
struct Ask<'a> {
    frame: u32,
    params: &'a [(String, String)],
    headers: &'a HeaderMap,
}

async fn rendered(
    db: &Db,
    files: &Files,
    user: &AuthUser,
    cid: &str,
    path: (&str, &str, &str),
    Ask { frame, params, headers }: Ask<'_>,
) -> ApiResult<Response> {
    let window = rendered_window(params)?;
    let format = negotiate::rendered(headers, params.iter().find(|(k, _)| k == "accept").map(|(_, v)| v.as_str()))?;
    let bytes = load_instance(db, files, user, cid, path.0, path.1, path.2).await?;
    let image = tokio::task::spawn_blocking(move || render::render(&bytes, frame, window, format))
        .await
        .map_err(ApiError::internal)??;
    Ok(([(header::CONTENT_TYPE, format.content_type())], image).into_response())
}

async fn rendered_instance(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance)): Path<(Id, String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ask = Ask { frame: 1, params: &params, headers: &headers };
    rendered(&state.db, &state.files, &user, &cid, (&study, &series, &instance), ask).await
}

async fn rendered_frame(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance, list)): Path<(Id, String, String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let frame = *frame_list(&list)?.first().unwrap_or(&1);
    let ask = Ask { frame, params: &params, headers: &headers };
    rendered(&state.db, &state.files, &user, &cid, (&study, &series, &instance), ask).await
}

/// A bulk data path: `{tag}`, or `{sequence}.{item}.{tag}` (items from 0), nested.
fn bulk_path(raw: &str) -> ApiResult<(Vec<(u32, usize)>, u32)> {
    let parts: Vec<&str> = raw.split('.').collect();
    let tag = |s: &str| u32::from_str_radix(s, 16).ok().filter(|_| s.len() == 8);
    if parts.len().is_multiple_of(2) || parts.len() > 9 {
        return Err(ApiError::not_found("attribute"));
    }
    let mut steps = Vec::new();
    for pair in parts[..parts.len() - 1].chunks(2) {
        let (Some(t), Ok(i)) = (tag(pair[0]), pair[1].parse::<usize>()) else {
            return Err(ApiError::not_found("attribute"));
        };
        steps.push((t, i));
    }
    let last = tag(parts[parts.len() - 1]).ok_or_else(|| ApiError::not_found("attribute"))?;
    Ok((steps, last))
}

fn dicom_tag(t: u32) -> dicom_object::Tag {
    dicom_object::Tag((t >> 16) as u16, (t & 0xFFFF) as u16)
}

async fn bulk(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Path((Id(cid), study, series, instance, tag)): Path<(Id, String, String, String, String)>,
) -> ApiResult<Response> {
    negotiate::octet_stream(&headers)?;
    let (steps, tag) = bulk_path(&tag)?;
    let bytes = load_instance(&state.db, &state.files, &user, &cid, &study, &series, &instance).await?;
    let value = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, DicomError> {
        let obj = crate::dicom::open(&bytes, false)?;
        let mut item: &dicom_object::InMemDicomObject = &obj;
        for (seq, n) in &steps {
            item = item
                .element_opt(dicom_tag(*seq))
                .ok()
                .flatten()
                .and_then(|e| e.items())
                .and_then(|items| items.get(*n))
                .ok_or(DicomError::Missing("that attribute"))?;
        }
        let element = item.element_opt(dicom_tag(tag)).ok().flatten().ok_or(DicomError::Missing("that attribute"))?;
        if steps.is_empty() && element.value().fragments().is_some() {
            let frames = obj
                .element_opt(dicom_dictionary_std::tags::NUMBER_OF_FRAMES)
                .ok()
                .flatten()
                .and_then(|e| e.to_int::<u32>().ok())
                .unwrap_or(1);
            return Ok(render::native_frames(&bytes, &(1..=frames.max(1)).collect::<Vec<_>>())?.concat());
        }
        element.to_bytes().map(|b| b.into_owned()).map_err(|e| DicomError::Decode(e.to_string()))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        DicomError::Missing(_) => ApiError::not_found("attribute"),
        e => e.into(),
    })?;
    let boundary = multipart::new_boundary();
    let mut body = multipart::part_header(&boundary, "application/octet-stream", &[]);
    body.extend_from_slice(&value);
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(&multipart::closing(&boundary));
    let ct = format!("multipart/related; type=\"application/octet-stream\"; boundary={boundary}");
    Ok(([(header::CONTENT_TYPE, ct)], body).into_response())
}

/// STOW-RS: each `application/dicom` part is streamed into storage and recorded as a file
/// of the consultation; the answer lists stored and failed instances (PS3.18 10.5.3).
async fn store(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path(Id(cid)): Path<Id>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    store_into(state, user, cid, None, (headers, origin), body).await
}

/// STOW-RS to one study: instances of another study are refused (reason A900).
async fn store_study(
    State(state): State<AppState>,
    user: AuthUser,
    ExternalOrigin(origin): ExternalOrigin,
    Path((Id(cid), study)): Path<(Id, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let study = uid(&study)?.to_string();
    store_into(state, user, cid, Some(study), (headers, origin), body).await
}

async fn store_into(
    state: AppState,
    user: AuthUser,
    cid: String,
    study: Option<String>,
    (headers, origin): (HeaderMap, String),
    body: Body,
) -> ApiResult<Response> {
    negotiate::dicom_json(&headers)?;
    let consultation = access_to_add(&state.db, &user, &cid).await?;
    let boundary = stow_boundary(&headers)?;
    let mut stow = Stow {
        state: &state,
        user: &user,
        consultation: &consultation,
        study: study.as_deref(),
        base: base_url(&origin, &cid),
        current: None,
        stored: Vec::new(),
        failed: Vec::new(),
        warnings: Vec::new(),
        part_no: 0,
    };
    let mut reader = MultipartReader::new(&boundary);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(ErrorCode::UploadInterrupted, e.to_string()))?;
        let events = reader.feed(&chunk).map_err(|m| ApiError::bad_request(ErrorCode::MalformedMultipart, m))?;
        for event in events {
            stow.on(event).await?;
        }
    }
    stow.abort_part().await;
    if !reader.is_done() && stow.stored.is_empty() && stow.failed.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::MalformedMultipart,
            "no complete part with a closing boundary was found",
        ));
    }
    Ok(stow.answer())
}

/// The boundary of a STOW-RS body, which must be multipart/related of application/dicom.
fn stow_boundary(headers: &HeaderMap) -> ApiResult<String> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multipart::boundary(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Unsupported media type",
            "STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary",
        )
    })?;
    if multipart::related_type(content_type).is_some_and(|t| t != "application/dicom") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Unsupported media type",
            "only application/dicom parts are stored",
        ));
    }
    Ok(boundary)
}

/// A part of a STOW-RS body being written to storage.
struct Part {
    writer: ObjectWriter,
    intake: Intake,
    file_id: String,
    key: String,
    /// Whether the part is `application/dicom` (others are skipped and reported failed).
    acceptable: bool,
}

/// One STOW-RS request: the part being received and the instances stored and failed so far.
struct Stow<'a> {
    state: &'a AppState,
    user: &'a AuthUser,
    consultation: &'a ConsultationAccess,
    /// The study the request stores into, when it names one.
    study: Option<&'a str>,
    base: String,
    current: Option<Part>,
    stored: Vec<Value>,
    failed: Vec<Value>,
    warnings: Vec<String>,
    part_no: usize,
}

impl Stow<'_> {
    async fn on(&mut self, event: Event) -> ApiResult<()> {
        match event {
            Event::Part(part_headers) => {
                self.part_no += 1;
                let ct = part_headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.to_ascii_lowercase());
                let acceptable = ct.as_deref().is_none_or(|t| t.starts_with("application/dicom"));
                let (file_id, key) = new_file_key();
                let writer = self.state.files.storage.writer(&key).await.map_err(storage_error)?;
                self.current = Some(Part { writer, intake: Intake::new(), file_id, key, acceptable });
            }
            Event::Data(data) => {
                if let Some(part) = self.current.as_mut().filter(|p| p.acceptable) {
                    let max = self.state.files.max_upload_bytes;
                    if part.writer.written() + data.len() as u64 > max {
                        return Err(payload_too_large(max));
                    }
                    part.intake.feed(&data);
                    part.writer.write(&data).await.map_err(storage_error)?;
                }
            }
            Event::End => {
                if let Some(part) = self.current.take() {
                    self.end_part(part).await?;
                }
            }
        }
        Ok(())
    }

    /// A complete part: refused when it is not DICOM or of another study, else ingested like
    /// any upload and listed as stored (with its warnings) or failed.
    async fn end_part(&mut self, part: Part) -> ApiResult<()> {
        let Part { writer, intake, file_id, key, acceptable } = part;
        if !acceptable {
            writer.abort().await;
            let why = format!("part {} is not application/dicom", self.part_no);
            self.failed.push(failure("", "", 0xA900, &why));
            return Ok(());
        }
        let size = writer.finish().await.map_err(storage_error)?;
        let head = intake.head;
        let info = crate::dicom::parse_info(&head).ok();
        let (class, sop) =
            info.as_ref().map(|i| (i.sop_class_uid.clone(), i.sop_instance_uid.clone())).unwrap_or_default();
        if info.as_ref().is_some_and(|i| self.study.is_some_and(|s| s != i.study_uid)) {
            let _ = self.state.files.storage.delete(&key).await;
            self.failed.push(failure(&class, &sop, 0xA900, "the instance belongs to another study"));
            return Ok(());
        }
        let name = format!("{}.dcm", if sop.is_empty() { "instance" } else { &sop });
        let stored = Stored { key, size, sha256: super::hex(&intake.hasher.finalize()), head };
        match ingest(&self.state.db, &self.state.files, self.user, self.consultation, &file_id, &name, stored).await {
            Ok(file) if file.content_type == "application/dicom" => {
                let mut item = Map::new();
                put(&mut item, "00081150", "UI", &class);
                put(&mut item, "00081155", "UI", &sop);
                if let Some(i) = &info {
                    let url = format!(
                        "{}/studies/{}/series/{}/instances/{}",
                        self.base, i.study_uid, i.series_uid, i.sop_instance_uid
                    );
                    put(&mut item, "00081190", "UR", &url);
                }
                let file_warnings: Vec<String> = serde_json::from_str(&file.warnings).unwrap_or_default();
                if !file_warnings.is_empty() {
                    // Stored with a warning (PS3.18 table 10.5.3-3): B000, the texts in the
                    // response's Transaction Status Comment.
                    put_int(&mut item, "00081196", "US", Some(0xB000));
                }
                self.warnings.extend(file_warnings);
                self.stored.push(Value::Object(item));
            }
            Ok(_) => self.failed.push(failure(&class, &sop, 0xA900, "not a DICOM file")),
            Err(e) => self.failed.push(failure(&class, &sop, 0xC000, &e.detail)),
        }
        Ok(())
    }

    /// Drops a part the body ended in the middle of.
    async fn abort_part(&mut self) {
        if let Some(part) = self.current.take() {
            part.writer.abort().await;
        }
    }

    /// The store response (PS3.18 10.5.3): 200 all stored, 202 some failed, 409 none stored.
    fn answer(self) -> Response {
        let mut m = Map::new();
        if !self.failed.is_empty() {
            m.insert("00081198".into(), json!({"vr": "SQ", "Value": self.failed}));
        }
        let status = match (self.stored.is_empty(), self.failed.is_empty()) {
            (false, true) => StatusCode::OK,
            (false, false) => StatusCode::ACCEPTED,
            (true, _) => StatusCode::CONFLICT,
        };
        m.insert("00081199".into(), json!({"vr": "SQ", "Value": self.stored}));
        if !self.warnings.is_empty() {
            // Transaction Status Comment (0008,0418), LT: one text, the warnings one per line.
            put(&mut m, "00080418", "LT", &self.warnings.join("\n"));
        }
        (status, [(header::CONTENT_TYPE, "application/dicom+json")], Value::Object(m).to_string()).into_response()
    }
}

fn failure(class: &str, sop: &str, reason: u16, why: &str) -> Value {
    let mut item = Map::new();
    put(&mut item, "00081150", "UI", class);
    put(&mut item, "00081155", "UI", sop);
    put_int(&mut item, "00081197", "US", Some(reason as i64));
    tracing::info!(sop, reason, why, "STOW-RS instance refused");
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists_and_uids_are_checked() {
        assert_eq!(frame_list("1,3").unwrap(), vec![1, 3]);
        assert!(frame_list("0").is_err());
        assert!(frame_list("a").is_err());
        assert!(uid("1.2.840.113619").is_ok());
        assert!(uid("../etc").is_err());
    }

    #[test]
    fn bulk_paths_reach_into_sequence_items() {
        assert_eq!(bulk_path("7FE00010").unwrap(), (vec![], 0x7FE0_0010));
        assert_eq!(bulk_path("54000100.1.54001010").unwrap(), (vec![(0x5400_0100, 1)], 0x5400_1010));
        for bad in ["54000100.1", "5400", "54000100.x.54001010", "../x"] {
            assert!(bulk_path(bad).is_err(), "{bad}");
        }
    }
}
