//! DICOMweb (PS3.18) for the studies of one consultation, under
//! `/api/v1/consultations/{id}/dicomweb`, with the caller's bearer token: QIDO-RS search of
//! studies, series and instances; WADO-RS retrieval of instances (multipart/related
//! application/dicom), metadata (DICOM JSON with BulkDataURIs), frames (multipart/related
//! application/octet-stream, decoded to native little endian), bulk data and rendered images;
//! STOW-RS storage of multipart/related application/dicom bodies, streamed part by part into
//! the consultation's files. Access is that of the consultation's files (404 for anyone else).

use super::multipart::{self, Event, MultipartReader};
use super::render::{self, Format, Window};
use super::{DicomError, DicomInfo, INSTANCE_URL_PLACEHOLDER};
use crate::api::{Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::Id;
use crate::error::{ApiError, ApiResult};
use crate::files::routes::{read_all, MAX_RENDER_BYTES};
use crate::files::{access, ingest, new_file_key, storage_error, ConsultationAccess, Intake};
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

// ---- the index ------------------------------------------------------------------------

/// Records an instance in the consultation's DICOM index (inside the upload's transaction).
pub async fn index_instance(
    tx: &mut sqlx::AnyConnection,
    file_id: &str,
    consultation_id: &str,
    info: &DicomInfo,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO dicom_instances (file_id, consultation_id, study_uid, series_uid, sop_instance_uid, sop_class_uid,
            transfer_syntax, modality, body_part, study_date, study_time, study_description, series_description,
            series_number, instance_number, accession_number, study_id, patient_name, patient_id, patient_birth_date,
            patient_sex, rows_count, columns_count, frames, metadata_json, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                 $23, $24, $25, $26)",
    )
    .bind(file_id)
    .bind(consultation_id)
    .bind(&info.study_uid)
    .bind(&info.series_uid)
    .bind(&info.sop_instance_uid)
    .bind(&info.sop_class_uid)
    .bind(&info.transfer_syntax)
    .bind(&info.modality)
    .bind(&info.body_part)
    .bind(&info.study_date)
    .bind(&info.study_time)
    .bind(&info.study_description)
    .bind(&info.series_description)
    .bind(info.series_number)
    .bind(info.instance_number)
    .bind(&info.accession_number)
    .bind(&info.study_id)
    .bind(&info.patient_name)
    .bind(&info.patient_id)
    .bind(&info.patient_birth_date)
    .bind(&info.patient_sex)
    .bind(info.rows)
    .bind(info.columns)
    .bind(info.frames)
    .bind(info.metadata.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Instance {
    file_id: String,
    storage_key: String,
    size: i64,
    study_uid: String,
    series_uid: String,
    sop_instance_uid: String,
    sop_class_uid: String,
    transfer_syntax: String,
    modality: String,
    body_part: String,
    study_date: String,
    study_time: String,
    study_description: String,
    series_description: String,
    series_number: Option<i64>,
    instance_number: Option<i64>,
    accession_number: String,
    study_id: String,
    patient_name: String,
    patient_id: String,
    patient_birth_date: String,
    patient_sex: String,
    rows_count: i64,
    columns_count: i64,
    frames: i64,
}

/// The consultation's instances, optionally of one study, series or instance, in series and
/// instance order.
async fn select(
    state: &AppState,
    consultation_id: &str,
    study: Option<&str>,
    series: Option<&str>,
    instance: Option<&str>,
) -> ApiResult<Vec<Instance>> {
    let rows: Vec<Instance> = sqlx::query_as(
        "SELECT d.file_id, f.storage_key, f.size, d.study_uid, d.series_uid, d.sop_instance_uid, d.sop_class_uid,
                d.transfer_syntax, d.modality, d.body_part, d.study_date, d.study_time, d.study_description,
                d.series_description, d.series_number, d.instance_number, d.accession_number, d.study_id,
                d.patient_name, d.patient_id, d.patient_birth_date, d.patient_sex, d.rows_count, d.columns_count,
                d.frames
         FROM dicom_instances d JOIN files f ON f.id = d.file_id
         WHERE d.consultation_id = $1 AND ($2 = '' OR d.study_uid = $2) AND ($3 = '' OR d.series_uid = $3)
           AND ($4 = '' OR d.sop_instance_uid = $4)
         ORDER BY d.study_uid, d.series_number, d.series_uid, d.instance_number, d.sop_instance_uid",
    )
    .bind(consultation_id)
    .bind(study.unwrap_or(""))
    .bind(series.unwrap_or(""))
    .bind(instance.unwrap_or(""))
    .fetch_all(&state.db.pool)
    .await?;
    Ok(rows)
}

// ---- DICOM JSON attributes (pure) -------------------------------------------------------

fn put(map: &mut Map<String, Value>, tag: &str, vr: &str, value: &str) {
    let v = if value.is_empty() { json!({"vr": vr}) } else { json!({"vr": vr, "Value": [value]}) };
    map.insert(tag.to_string(), v);
}

fn put_list(map: &mut Map<String, Value>, tag: &str, vr: &str, values: Vec<String>) {
    map.insert(tag.to_string(), json!({"vr": vr, "Value": values}));
}

fn put_int(map: &mut Map<String, Value>, tag: &str, vr: &str, value: Option<i64>) {
    let v = match value {
        Some(n) => json!({"vr": vr, "Value": [n]}),
        None => json!({"vr": vr}),
    };
    map.insert(tag.to_string(), v);
}

/// A Person Name in the JSON model: `=`-separated groups become Alphabetic, Ideographic, Phonetic.
fn put_pn(map: &mut Map<String, Value>, tag: &str, value: &str) {
    if value.is_empty() {
        map.insert(tag.to_string(), json!({"vr": "PN"}));
        return;
    }
    let mut name = Map::new();
    for (group, key) in value.split('=').zip(["Alphabetic", "Ideographic", "Phonetic"]) {
        if !group.is_empty() {
            name.insert(key.into(), Value::String(group.to_string()));
        }
    }
    map.insert(tag.to_string(), json!({"vr": "PN", "Value": [name]}));
}

fn study_attributes(group: &[&Instance], base: &str) -> Value {
    let first = group[0];
    let mut m = Map::new();
    put(&mut m, "00080020", "DA", &first.study_date);
    put(&mut m, "00080030", "TM", &first.study_time);
    put(&mut m, "00080050", "SH", &first.accession_number);
    let mut modalities: Vec<String> = group.iter().map(|i| i.modality.clone()).filter(|m| !m.is_empty()).collect();
    modalities.sort();
    modalities.dedup();
    put_list(&mut m, "00080061", "CS", modalities);
    put(&mut m, "00081030", "LO", &first.study_description);
    put(&mut m, "00081190", "UR", &format!("{base}/studies/{}", first.study_uid));
    put_pn(&mut m, "00100010", &first.patient_name);
    put(&mut m, "00100020", "LO", &first.patient_id);
    put(&mut m, "00100030", "DA", &first.patient_birth_date);
    put(&mut m, "00100040", "CS", &first.patient_sex);
    put(&mut m, "0020000D", "UI", &first.study_uid);
    put(&mut m, "00200010", "SH", &first.study_id);
    let mut series: Vec<&str> = group.iter().map(|i| i.series_uid.as_str()).collect();
    series.sort();
    series.dedup();
    put_int(&mut m, "00201206", "IS", Some(series.len() as i64));
    put_int(&mut m, "00201208", "IS", Some(group.len() as i64));
    Value::Object(m)
}

fn series_attributes(group: &[&Instance], base: &str) -> Value {
    let first = group[0];
    let mut m = Map::new();
    put(&mut m, "00080060", "CS", &first.modality);
    put(&mut m, "0008103E", "LO", &first.series_description);
    put(&mut m, "00081190", "UR", &format!("{base}/studies/{}/series/{}", first.study_uid, first.series_uid));
    put(&mut m, "00180015", "CS", &first.body_part);
    put(&mut m, "0020000D", "UI", &first.study_uid);
    put(&mut m, "0020000E", "UI", &first.series_uid);
    put_int(&mut m, "00200011", "IS", first.series_number);
    put_int(&mut m, "00201209", "IS", Some(group.len() as i64));
    Value::Object(m)
}

fn instance_attributes(i: &Instance, base: &str) -> Value {
    let mut m = Map::new();
    put(&mut m, "00080016", "UI", &i.sop_class_uid);
    put(&mut m, "00080018", "UI", &i.sop_instance_uid);
    put(&mut m, "00080060", "CS", &i.modality);
    put(&mut m, "00081190", "UR", &instance_url(base, i));
    put(&mut m, "00083002", "UI", &i.transfer_syntax);
    put(&mut m, "0020000D", "UI", &i.study_uid);
    put(&mut m, "0020000E", "UI", &i.series_uid);
    put_int(&mut m, "00200011", "IS", i.series_number);
    put_int(&mut m, "00200013", "IS", i.instance_number);
    if i.rows_count > 0 {
        put_int(&mut m, "00280008", "IS", Some(i.frames));
        put_int(&mut m, "00280010", "US", Some(i.rows_count));
        put_int(&mut m, "00280011", "US", Some(i.columns_count));
    }
    Value::Object(m)
}

fn instance_url(base: &str, i: &Instance) -> String {
    format!("{base}/studies/{}/series/{}/instances/{}", i.study_uid, i.series_uid, i.sop_instance_uid)
}

/// QIDO matching of one attribute: a list of UIDs (`a,b` or `a\b`), a date range
/// (`20200101-20201231`, open ends allowed), or a value with `*` and `?` wildcards,
/// case-insensitive.
pub fn qido_match(key: &str, pattern: &str, value: &str) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return true;
    }
    if key.ends_with("UID") || key.len() == 8 && key.ends_with('D') && key.starts_with("0020000") {
        return pattern.split([',', '\\']).any(|p| p.trim() == value);
    }
    if key.ends_with("Date") && pattern.contains('-') {
        let (from, to) = pattern.split_once('-').unwrap_or((pattern, pattern));
        return (from.is_empty() || value >= from) && (to.is_empty() || value <= to);
    }
    wildcard(&pattern.to_lowercase(), &value.to_lowercase())
}

fn wildcard(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Canonical QIDO key for a query parameter given by keyword or tag.
fn qido_key(raw: &str) -> Option<&'static str> {
    Some(match raw {
        "StudyInstanceUID" | "0020000D" => "StudyInstanceUID",
        "SeriesInstanceUID" | "0020000E" => "SeriesInstanceUID",
        "SOPInstanceUID" | "00080018" => "SOPInstanceUID",
        "SOPClassUID" | "00080016" => "SOPClassUID",
        "PatientName" | "00100010" => "PatientName",
        "PatientID" | "00100020" => "PatientID",
        "StudyDate" | "00080020" => "StudyDate",
        "AccessionNumber" | "00080050" => "AccessionNumber",
        "ModalitiesInStudy" | "00080061" => "ModalitiesInStudy",
        "Modality" | "00080060" => "Modality",
        "StudyDescription" | "00081030" => "StudyDescription",
        "SeriesDescription" | "0008103E" => "SeriesDescription",
        "SeriesNumber" | "00200011" => "SeriesNumber",
        "InstanceNumber" | "00200013" => "InstanceNumber",
        "StudyID" | "00200010" => "StudyID",
        _ => return None,
    })
}

fn field<'a>(i: &'a Instance, key: &str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow::*;
    match key {
        "StudyInstanceUID" => Borrowed(&i.study_uid),
        "SeriesInstanceUID" => Borrowed(&i.series_uid),
        "SOPInstanceUID" => Borrowed(&i.sop_instance_uid),
        "SOPClassUID" => Borrowed(&i.sop_class_uid),
        "PatientName" => Borrowed(&i.patient_name),
        "PatientID" => Borrowed(&i.patient_id),
        "StudyDate" => Borrowed(&i.study_date),
        "AccessionNumber" => Borrowed(&i.accession_number),
        "ModalitiesInStudy" | "Modality" => Borrowed(&i.modality),
        "StudyDescription" => Borrowed(&i.study_description),
        "SeriesDescription" => Borrowed(&i.series_description),
        "SeriesNumber" => Owned(i.series_number.map(|n| n.to_string()).unwrap_or_default()),
        "InstanceNumber" => Owned(i.instance_number.map(|n| n.to_string()).unwrap_or_default()),
        "StudyID" => Borrowed(&i.study_id),
        _ => Borrowed(""),
    }
}

struct Search {
    filters: Vec<(&'static str, String)>,
    limit: usize,
    offset: usize,
}

fn parse_search(params: &[(String, String)]) -> ApiResult<Search> {
    let mut s = Search { filters: Vec::new(), limit: 1000, offset: 0 };
    for (k, v) in params {
        match k.as_str() {
            "limit" => s.limit = v.parse().map_err(|_| ApiError::bad_request("invalid_query", "limit is a number"))?,
            "offset" => {
                s.offset = v.parse().map_err(|_| ApiError::bad_request("invalid_query", "offset is a number"))?
            }
            "includefield" | "fuzzymatching" | "_" => {}
            other => {
                if let Some(key) = qido_key(other) {
                    s.filters.push((key, v.clone()));
                }
            }
        }
    }
    Ok(s)
}

/// Groups instances by a key, keeping the first-seen order; a group is kept when any of its
/// instances matches every filter (ModalitiesInStudy matches any instance's modality).
fn grouped<'a>(rows: &'a [Instance], key: impl Fn(&Instance) -> &str, search: &Search) -> Vec<Vec<&'a Instance>> {
    let mut groups: Vec<Vec<&Instance>> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|g| key(g[0]) == key(r)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
        .into_iter()
        .filter(|g| search.filters.iter().all(|(k, p)| g.iter().any(|i| qido_match(k, p, &field(i, k)))))
        .skip(search.offset)
        .take(search.limit)
        .collect()
}

// ---- HTTP ----------------------------------------------------------------------------

fn base_url(headers: &HeaderMap, consultation_id: &str) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}{}", BASE.replace("{id}", consultation_id))
}

fn dicom_json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/dicom+json")], body).into_response()
}

/// A UID from a path: digits and dots, at most 64 characters; anything else names nothing.
fn uid(raw: &str) -> ApiResult<&str> {
    let ok = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then_some(raw).ok_or_else(|| ApiError::not_found("DICOM object"))
}

async fn scope(state: &AppState, user: &AuthUser, consultation_id: &str, what: &str) -> ApiResult<ConsultationAccess> {
    let consultation = access(&state.db, user, consultation_id).await?;
    crate::audit::event(user, "read", "dicom", what).patient(&consultation.patient_id).record(&state.db).await?;
    Ok(consultation)
}

type Params = Query<Vec<(String, String)>>;

async fn search_studies(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(cid)): Path<Id>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    scope(&state, &user, &cid, &format!("consultation {cid} studies")).await?;
    let search = parse_search(&params)?;
    let rows = select(&state, &cid, None, None, None).await?;
    let base = base_url(&headers, &cid);
    let out: Vec<Value> =
        grouped(&rows, |i| &i.study_uid, &search).iter().map(|g| study_attributes(g, &base)).collect();
    Ok(dicom_json(Value::Array(out).to_string()))
}

async fn series_search(
    state: &AppState,
    user: &AuthUser,
    cid: &str,
    study: Option<&str>,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> ApiResult<Response> {
    scope(state, user, cid, study.unwrap_or("series")).await?;
    let search = parse_search(params)?;
    let rows = select(state, cid, study, None, None).await?;
    if study.is_some() && rows.is_empty() {
        return Err(ApiError::not_found("study"));
    }
    let base = base_url(headers, cid);
    let out: Vec<Value> =
        grouped(&rows, |i| &i.series_uid, &search).iter().map(|g| series_attributes(g, &base)).collect();
    Ok(dicom_json(Value::Array(out).to_string()))
}

async fn search_all_series(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(cid)): Path<Id>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    series_search(&state, &user, &cid, None, &params, &headers).await
}

async fn search_series(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study)): Path<(Id, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    series_search(&state, &user, &cid, Some(uid(&study)?), &params, &headers).await
}

async fn instance_search(
    state: &AppState,
    user: &AuthUser,
    cid: &str,
    study: Option<&str>,
    series: Option<&str>,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> ApiResult<Response> {
    scope(state, user, cid, series.or(study).unwrap_or("instances")).await?;
    let search = parse_search(params)?;
    let rows = select(state, cid, study, series, None).await?;
    if study.is_some() && rows.is_empty() {
        return Err(ApiError::not_found("study or series"));
    }
    let base = base_url(headers, cid);
    let out: Vec<Value> =
        grouped(&rows, |i| &i.sop_instance_uid, &search).iter().map(|g| instance_attributes(g[0], &base)).collect();
    Ok(dicom_json(Value::Array(out).to_string()))
}

async fn search_all_instances(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(cid)): Path<Id>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    instance_search(&state, &user, &cid, None, None, &params, &headers).await
}

async fn search_study_instances(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study)): Path<(Id, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    instance_search(&state, &user, &cid, Some(uid(&study)?), None, &params, &headers).await
}

async fn search_instances(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series)): Path<(Id, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    instance_search(&state, &user, &cid, Some(uid(&study)?), Some(uid(&series)?), &params, &headers).await
}

/// WADO-RS metadata: the stored JSON model of each instance, BulkDataURIs made absolute.
async fn metadata(
    state: &AppState,
    user: &AuthUser,
    cid: &str,
    study: &str,
    series: Option<&str>,
    instance: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    scope(state, user, cid, instance.or(series).unwrap_or(study)).await?;
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT study_uid, series_uid, sop_instance_uid, metadata_json FROM dicom_instances
         WHERE consultation_id = $1 AND study_uid = $2 AND ($3 = '' OR series_uid = $3) AND ($4 = '' OR sop_instance_uid = $4)
         ORDER BY series_number, series_uid, instance_number, sop_instance_uid",
    )
    .bind(cid)
    .bind(study)
    .bind(series.unwrap_or(""))
    .bind(instance.unwrap_or(""))
    .fetch_all(&state.db.pool)
    .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("DICOM object"));
    }
    let base = base_url(headers, cid);
    let mut out = String::with_capacity(rows.iter().map(|r| r.3.len() + 2).sum::<usize>() + 2);
    out.push('[');
    for (n, (st, se, sop, json)) in rows.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let url = format!("{base}/studies/{st}/series/{se}/instances/{sop}");
        out.push_str(&json.replace(INSTANCE_URL_PLACEHOLDER, &url));
    }
    out.push(']');
    Ok(dicom_json(out))
}

async fn metadata_study(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study)): Path<(Id, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metadata(&state, &user, &cid, uid(&study)?, None, None, &headers).await
}

async fn metadata_series(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series)): Path<(Id, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metadata(&state, &user, &cid, uid(&study)?, Some(uid(&series)?), None, &headers).await
}

async fn metadata_instance(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance)): Path<(Id, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    metadata(&state, &user, &cid, uid(&study)?, Some(uid(&series)?), Some(uid(&instance)?), &headers).await
}

/// WADO-RS retrieval: the files as they were stored, streamed one after the other.
async fn retrieve(
    state: &AppState,
    user: &AuthUser,
    cid: &str,
    study: &str,
    series: Option<&str>,
    instance: Option<&str>,
) -> ApiResult<Response> {
    let consultation = scope(state, user, cid, instance.or(series).unwrap_or(study)).await?;
    let rows = select(state, cid, Some(study), series, instance).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("DICOM object"));
    }
    for r in &rows {
        crate::audit::event(user, "read", "file", &r.file_id)
            .patient(&consultation.patient_id)
            .detail("wado-rs")
            .record(&state.db)
            .await?;
    }
    let boundary = multipart::new_boundary();
    let storage = state.files.storage.clone();
    let closing = multipart::closing(&boundary);
    let b = boundary.clone();
    let parts = futures_util::stream::iter(rows).then(move |r| {
        let storage = storage.clone();
        let head = multipart::part_header(&b, "application/dicom", &[("Content-Length", &r.size.to_string())]);
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
    let ct = format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(&ct).map_err(ApiError::internal)?);
    Ok(resp)
}

async fn retrieve_study(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study)): Path<(Id, String)>,
) -> ApiResult<Response> {
    retrieve(&state, &user, &cid, uid(&study)?, None, None).await
}

async fn retrieve_series(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series)): Path<(Id, String, String)>,
) -> ApiResult<Response> {
    retrieve(&state, &user, &cid, uid(&study)?, Some(uid(&series)?), None).await
}

async fn retrieve_instance(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance)): Path<(Id, String, String, String)>,
) -> ApiResult<Response> {
    retrieve(&state, &user, &cid, uid(&study)?, Some(uid(&series)?), Some(uid(&instance)?)).await
}

/// The one instance at a path, its bytes loaded, after the access check and audit.
async fn load_instance(
    state: &AppState,
    user: &AuthUser,
    cid: &str,
    study: &str,
    series: &str,
    instance: &str,
) -> ApiResult<Vec<u8>> {
    let consultation = scope(state, user, cid, instance).await?;
    let rows = select(state, cid, Some(uid(study)?), Some(uid(series)?), Some(uid(instance)?)).await?;
    let row = rows.into_iter().next().ok_or_else(|| ApiError::not_found("DICOM instance"))?;
    crate::audit::event(user, "read", "file", &row.file_id)
        .patient(&consultation.patient_id)
        .detail("wado-rs")
        .record(&state.db)
        .await?;
    read_all(state, &row.storage_key, MAX_RENDER_BYTES).await
}

fn frame_list(raw: &str) -> ApiResult<Vec<u32>> {
    let list: Option<Vec<u32>> = raw.split(',').map(|f| f.trim().parse::<u32>().ok().filter(|n| *n >= 1)).collect();
    list.filter(|l| !l.is_empty() && l.len() <= 10_000)
        .ok_or_else(|| ApiError::bad_request("invalid_frames", "frames are a comma-separated list of numbers from 1"))
}

async fn frames(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance, list)): Path<(Id, String, String, String, String)>,
) -> ApiResult<Response> {
    let numbers = frame_list(&list)?;
    let bytes = load_instance(&state, &user, &cid, &study, &series, &instance).await?;
    let frames = tokio::task::spawn_blocking(move || render::native_frames(&bytes, &numbers))
        .await
        .map_err(ApiError::internal)??;
    let boundary = multipart::new_boundary();
    let mut body = Vec::with_capacity(frames.iter().map(|f| f.len() + 128).sum());
    for f in &frames {
        body.extend_from_slice(&multipart::part_header(
            &boundary,
            "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
            &[],
        ));
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(&multipart::closing(&boundary));
    let ct = format!("multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1; boundary={boundary}");
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
                _ => Err(ApiError::bad_request("invalid_rendering", "window is center,width[,function]")),
            }
        }
    }
}

fn accept_format(headers: &HeaderMap, params: &[(String, String)]) -> Format {
    let accept = params
        .iter()
        .find(|(k, _)| k == "accept")
        .map(|(_, v)| v.clone())
        .or_else(|| headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_default();
    if accept.contains("image/jpeg") && !accept.contains("image/png") {
        Format::Jpeg
    } else {
        Format::Png
    }
}

async fn rendered(
    state: &AppState,
    user: &AuthUser,
    cid: &str,
    path: (&str, &str, &str),
    frame: u32,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let window = rendered_window(params)?;
    let format = accept_format(headers, params);
    let bytes = load_instance(state, user, cid, path.0, path.1, path.2).await?;
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
    rendered(&state, &user, &cid, (&study, &series, &instance), 1, &params, &headers).await
}

async fn rendered_frame(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance, list)): Path<(Id, String, String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let frame = *frame_list(&list)?.first().unwrap_or(&1);
    rendered(&state, &user, &cid, (&study, &series, &instance), frame, &params, &headers).await
}

async fn bulk(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study, series, instance, tag)): Path<(Id, String, String, String, String)>,
) -> ApiResult<Response> {
    let tag = u32::from_str_radix(&tag, 16).map_err(|_| ApiError::not_found("attribute"))?;
    let bytes = load_instance(&state, &user, &cid, &study, &series, &instance).await?;
    let value = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, DicomError> {
        let obj = super::open(&bytes, false)?;
        let element = obj
            .element_opt(dicom_object::Tag((tag >> 16) as u16, (tag & 0xFFFF) as u16))
            .ok()
            .flatten()
            .ok_or(DicomError::Missing("that attribute"))?;
        if element.value().fragments().is_some() {
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
    Path(Id(cid)): Path<Id>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    store_into(state, user, cid, None, headers, body).await
}

/// STOW-RS to one study: instances of another study are refused (reason A900).
async fn store_study(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(cid), study)): Path<(Id, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let study = uid(&study)?.to_string();
    store_into(state, user, cid, Some(study), headers, body).await
}

async fn store_into(
    state: AppState,
    user: AuthUser,
    cid: String,
    study: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let consultation = access(&state.db, &user, &cid).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multipart::boundary(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "STOW-RS takes multipart/related; type=\"application/dicom\" with a boundary",
        )
    })?;
    if multipart::related_type(content_type).is_some_and(|t| t != "application/dicom") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "only application/dicom parts are stored",
        ));
    }
    let base = base_url(&headers, &cid);
    let max = state.files.max_upload_bytes;
    let mut reader = MultipartReader::new(&boundary);
    let mut stream = body.into_data_stream();
    let mut current: Option<(crate::files::storage::ObjectWriter, Intake, String, String, bool)> = None;
    let mut stored: Vec<Value> = Vec::new();
    let mut failed: Vec<Value> = Vec::new();
    let mut warnings = Vec::new();
    let mut part_no = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("upload_interrupted", e.to_string()))?;
        let events = reader.feed(&chunk).map_err(|m| ApiError::bad_request("malformed_multipart", m))?;
        for event in events {
            match event {
                Event::Part(part_headers) => {
                    part_no += 1;
                    let ct =
                        part_headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.to_ascii_lowercase());
                    let acceptable = ct.as_deref().is_none_or(|t| t.starts_with("application/dicom"));
                    let (file_id, key) = new_file_key();
                    let writer = state.files.storage.writer(&key).await.map_err(storage_error)?;
                    current = Some((writer, Intake::new(), file_id, key, acceptable));
                }
                Event::Data(data) => {
                    if let Some((writer, intake, _, _, true)) = current.as_mut() {
                        if writer.written() + data.len() as u64 > max {
                            return Err(crate::files::routes::payload_too_large(max));
                        }
                        intake.feed(&data);
                        writer.write(&data).await.map_err(storage_error)?;
                    }
                }
                Event::End => {
                    let Some((writer, intake, file_id, key, acceptable)) = current.take() else { continue };
                    if !acceptable {
                        writer.abort().await;
                        failed.push(failure("", "", 0xA900, &format!("part {part_no} is not application/dicom")));
                        continue;
                    }
                    let size = writer.finish().await.map_err(storage_error)?;
                    let head = intake.head;
                    let info = super::parse_info(&head).ok();
                    let (class, sop) = info
                        .as_ref()
                        .map(|i| (i.sop_class_uid.clone(), i.sop_instance_uid.clone()))
                        .unwrap_or_default();
                    let elsewhere = info.as_ref().is_some_and(|i| study.as_deref().is_some_and(|s| s != i.study_uid));
                    if elsewhere {
                        let _ = state.files.storage.delete(&key).await;
                        failed.push(failure(&class, &sop, 0xA900, "the instance belongs to another study"));
                        continue;
                    }
                    let name = format!("{}.dcm", if sop.is_empty() { "instance" } else { &sop });
                    let digest = crate::files::hex(&intake.hasher.finalize());
                    let result = ingest(
                        &state,
                        &user,
                        &consultation,
                        &file_id,
                        &name,
                        crate::files::Stored { key, size, sha256: digest, head },
                    )
                    .await;
                    match result {
                        Ok(file) if file.content_type == "application/dicom" => {
                            let mut item = Map::new();
                            put(&mut item, "00081150", "UI", &class);
                            put(&mut item, "00081155", "UI", &sop);
                            if let Some(i) = &info {
                                put(
                                    &mut item,
                                    "00081190",
                                    "UR",
                                    &format!(
                                        "{base}/studies/{}/series/{}/instances/{}",
                                        i.study_uid, i.series_uid, i.sop_instance_uid
                                    ),
                                );
                            }
                            let file_warnings: Vec<String> = serde_json::from_str(&file.warnings).unwrap_or_default();
                            warnings.extend(file_warnings);
                            stored.push(Value::Object(item));
                        }
                        Ok(_) => failed.push(failure(&class, &sop, 0xA900, "not a DICOM file")),
                        Err(e) => failed.push(failure(&class, &sop, 0xC000, &e.detail)),
                    }
                }
            }
        }
    }
    if let Some((writer, ..)) = current.take() {
        writer.abort().await;
    }
    if !reader.is_done() && stored.is_empty() && failed.is_empty() {
        return Err(ApiError::bad_request("malformed_multipart", "no complete part with a closing boundary was found"));
    }
    let mut m = Map::new();
    if !failed.is_empty() {
        m.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    let status = match (stored.is_empty(), failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::CONFLICT,
    };
    m.insert("00081199".into(), json!({"vr": "SQ", "Value": stored}));
    if !warnings.is_empty() {
        m.insert("00081196".into(), json!({"vr": "US", "Value": [0xB000]}));
        put_list(&mut m, "00404010", "LT", warnings);
    }
    Ok((status, [(header::CONTENT_TYPE, "application/dicom+json")], Value::Object(m).to_string()).into_response())
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
    fn qido_matching_follows_ps3_18() {
        assert!(qido_match("PatientName", "zhang*", "ZHANG^XIUYING"));
        assert!(qido_match("PatientName", "?hang^*", "Zhang^Xiuying"));
        assert!(!qido_match("PatientName", "li*", "Zhang^Xiuying"));
        assert!(qido_match("StudyDate", "20040101-20041231", "20040119"));
        assert!(qido_match("StudyDate", "-20031231", "20030101"));
        assert!(!qido_match("StudyDate", "20050101-", "20040119"));
        assert!(qido_match("StudyInstanceUID", "1.2.3,1.2.4", "1.2.4"));
        assert!(!qido_match("StudyInstanceUID", "1.2.3", "1.2.30"));
        assert!(qido_match("Modality", "", "CT"));
    }

    #[test]
    fn person_names_split_into_groups() {
        let mut m = Map::new();
        put_pn(&mut m, "00100010", "Zhang^Xiuying=张^秀英");
        assert_eq!(m["00100010"]["Value"][0]["Ideographic"], "张^秀英");
        assert_eq!(m["00100010"]["Value"][0]["Alphabetic"], "Zhang^Xiuying");
    }

    #[test]
    fn frame_lists_and_uids_are_checked() {
        assert_eq!(frame_list("1,3").unwrap(), vec![1, 3]);
        assert!(frame_list("0").is_err());
        assert!(frame_list("a").is_err());
        assert!(uid("1.2.840.113619").is_ok());
        assert!(uid("../etc").is_err());
    }
}
