//! The FHIR endpoints: load through the platform's stores and access helpers, map with
//! [`super::map`], answer `application/fhir+json`. Every read of patient data goes through
//! the shared access functions (which audit it); a resource the caller may not see answers
//! 404, and every error is an OperationOutcome.

use super::map::{self, EcgAnalysis, Story, STORY_KINDS};
use super::search::{self, DateRange, Page, ResourceDef, Search, SearchError};
use super::store;
use crate::api::Routes;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::db::Db;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::proxy::ExternalOrigin;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;

pub fn routes() -> Routes {
    Routes::new("fhir")
        .get_public("/fhir/r4/metadata", "FHIR R4 CapabilityStatement of the read-only facade", metadata)
        .answers(200, Some("application/fhir+json"), "the CapabilityStatement")
        .errors(&[406])
        .get(
            "/fhir/r4/{resource_type}",
            "FHIR R4 search (searchset Bundle; parameters per type in the CapabilityStatement)",
            search_type,
        )
        .answers(200, Some("application/fhir+json"), "a searchset Bundle of what the caller may see")
        .errors(&[400, 406])
        .get("/fhir/r4/{resource_type}/{id}", "FHIR R4 read of one resource (404 if not visible)", read)
        .answers(200, Some("application/fhir+json"), "the resource")
        .errors(&[406])
}

pub const CONTENT_TYPE: &str = "application/fhir+json; charset=utf-8";

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// An [`ApiError`] answered as an OperationOutcome with the same status; the second field is
/// the FHIR issue code when the status alone does not say it (a search the server refuses).
pub struct FhirError(pub ApiError, pub Option<&'static str>);

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        FhirError(e, None)
    }
}

impl From<sqlx::Error> for FhirError {
    fn from(e: sqlx::Error) -> Self {
        FhirError(e.into(), None)
    }
}

impl From<SearchError> for FhirError {
    fn from(e: SearchError) -> Self {
        FhirError(ApiError::bad_request(ErrorCode::FhirSearch, e.message), Some(e.code))
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let FhirError(e, issue) = self;
        let code = match e.status.as_u16() {
            _ if issue.is_some() => issue.unwrap_or("exception"),
            401 => "login",
            403 => "forbidden",
            404 => "not-found",
            406 => "not-supported",
            400 | 422 => "invalid",
            _ => "exception",
        };
        fhir_response(e.status, &map::operation_outcome("error", code, &e.detail))
    }
}

type FhirResult<T> = Result<T, FhirError>;

fn not_found(kind: &str, id: &str) -> FhirError {
    FhirError(ApiError::not_found(&format!("{kind}/{id}")), None)
}

/// Refuses an `Accept` that allows no JSON (406).
fn check_accept(headers: &HeaderMap) -> FhirResult<()> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let ok = accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        matches!(
            media,
            "" | "*/*" | "application/*" | "application/json" | "application/fhir+json" | "application/json+fhir"
        )
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::NotAcceptable,
            "Not acceptable",
            "this server answers application/fhir+json only",
        )
        .into())
    }
}

async fn metadata(ExternalOrigin(origin): ExternalOrigin, headers: HeaderMap) -> Response {
    match check_accept(&headers) {
        Ok(()) => fhir_response(StatusCode::OK, &search::capability_statement(&format!("{origin}/fhir/r4"))),
        Err(e) => e.into_response(),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

async fn read(
    State(state): State<AppState>,
    ExternalOrigin(origin): ExternalOrigin,
    headers: HeaderMap,
    user: Result<AuthUser, ApiError>,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
    let result = async {
        check_accept(&headers)?;
        let user = user?;
        if search::resource_def(&kind).is_none() {
            return Err(FhirError(
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "Not found",
                    format!("resource type {kind} is not served"),
                ),
                Some("not-supported"),
            ));
        }
        read_resource(&state.db, &state.config, &user, &origin, &kind, &id).await
    }
    .await;
    match result {
        Ok(v) => fhir_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// One resource by type and id, if the caller may see it.
async fn read_resource(
    db: &Db,
    config: &Config,
    user: &AuthUser,
    origin: &str,
    kind: &str,
    id: &str,
) -> FhirResult<Value> {
    if !valid_id(id) {
        return Err(not_found(kind, id));
    }
    match kind {
        "Patient" => {
            let p = crate::patients::load_for(db, user, id, "fhir_read").await?;
            Ok(map::patient(&p))
        }
        "Practitioner" | "PractitionerRole" | "Schedule" => {
            let u = staff(db, user, id).await?.ok_or_else(|| not_found(kind, id))?;
            match kind {
                "Practitioner" => Ok(map::practitioner(&u, user.role == crate::domain::people::Role::Admin)),
                "PractitionerRole" => Ok(map::practitioner_role(&u)),
                _ if u.expert.is_some() => Ok(map::schedule(&u)),
                _ => Err(not_found(kind, id)),
            }
        }
        "Organization" => {
            let rows = organisations(db, "", id).await?;
            rows.first().map(map::organization).ok_or_else(|| not_found(kind, id))
        }
        "Slot" => {
            let (expert, start) = parse_slot_id(id).ok_or_else(|| not_found(kind, id))?;
            let range = DateRange { lo: Some(start), hi: Some(start + Duration::minutes(1)) };
            let slots = slots_of(db, &expert, range).await?;
            slots.into_iter().next().ok_or_else(|| not_found(kind, id))
        }
        k if STORY_KINDS.contains(&k) => {
            let cid = store::consultation_of(db, kind, id).await?.ok_or_else(|| not_found(kind, id))?;
            let story = load_story(db, config, user, &cid, "fhir_read", needs_files(kind)).await?;
            map::story_resources(&story, kind, origin)
                .into_iter()
                .find(|r| r["id"].as_str() == Some(id))
                .ok_or_else(|| not_found(kind, id))
        }
        _ => Err(not_found(kind, id)),
    }
}

fn needs_files(kind: &str) -> bool {
    matches!(kind, "DocumentReference" | "ImagingStudy" | "Observation" | "DiagnosticReport")
}

/// A consultation's story, loaded through the record's access check (audited as `action`;
/// 404 when the caller may not see the consultation). File-derived parts (documents,
/// images, ECG measurements) only for callers the file rules let read the files.
async fn load_story(
    db: &Db,
    config: &Config,
    user: &AuthUser,
    cid: &str,
    action: &str,
    with_files: bool,
) -> ApiResult<Story> {
    let mut record = crate::record::export::build_for(db, config, user, cid, action).await?;
    let files_readable = with_files
        && match crate::files::access(db, user, cid).await {
            Ok(_) => true,
            Err(e) if e.status == StatusCode::NOT_FOUND => false,
            Err(e) => return Err(e),
        };
    if !files_readable {
        record.files.clear();
        return Ok(Story { record, ecg: Vec::new(), dicom: Vec::new() });
    }
    let ecg = store::ecg_analyses(db, cid)
        .await?
        .into_iter()
        .filter_map(|(file_id, created_at, json)| {
            serde_json::from_str(&json).ok().map(|measurements| EcgAnalysis { file_id, created_at, measurements })
        })
        .collect();
    let dicom = store::dicom_instances(db, cid).await?;
    Ok(Story { record, ecg, dicom })
}

/// A staff account (not a patient's).
/// A staff account as `user` may see it through the facade: admins every staff account; everyone
/// else the clinicians (community doctors and experts), not the administrators and coordinators.
async fn staff(db: &Db, user: &AuthUser, id: &str) -> ApiResult<Option<crate::directory::UserView>> {
    use crate::domain::people::Role;
    let all = user.role == Role::Admin;
    Ok(crate::directory::load_user(db, id).await?.filter(|u| {
        if all {
            u.role != Role::Patient
        } else {
            matches!(u.role, Role::CommunityDoctor | Role::Expert)
        }
    }))
}

async fn organisations(db: &Db, name_prefix: &str, id: &str) -> ApiResult<Vec<crate::directory::Organisation>> {
    let prefix = name_prefix.trim().replace(['%', '_'], "");
    store::organisations(db, &prefix, id).await
}

fn parse_slot_id(id: &str) -> Option<(String, DateTime<Utc>)> {
    let (expert, stamp) = id.rsplit_once('.')?;
    let t = NaiveDateTime::parse_from_str(&format!("{stamp}00"), "%Y%m%d%H%M%S").ok()?;
    Some((expert.to_string(), t.and_utc()))
}

/// Longest window a Slot search may cover.
const MAX_SLOT_WINDOW_DAYS: i64 = 31;

/// The expert's slots starting in `range`: free ones from the availability rules and
/// booked ones, ordered by start.
async fn slots_of(db: &Db, expert: &str, range: DateRange) -> FhirResult<Vec<Value>> {
    let now = Utc::now();
    let from = range.lo.unwrap_or(now);
    let to = range.hi.unwrap_or(from + Duration::days(7));
    if to <= from {
        return Ok(Vec::new());
    }
    if to - from > Duration::days(MAX_SLOT_WINDOW_DAYS) {
        return Err(SearchError {
            code: "too-costly",
            message: format!("a Slot search covers at most {MAX_SLOT_WINDOW_DAYS} days (narrow start)"),
        }
        .into());
    }
    let mut conn = db.pool.acquire().await?;
    let free = crate::scheduling::store::free_slots(&mut conn, expert, now, from, to)
        .await?
        .map_err(crate::scheduling::availability::slot_error)?;
    let busy = store::booked(&mut conn, expert, &crate::db::ts(from), &crate::db::ts(to)).await?;
    let mut all: Vec<(DateTime<Utc>, DateTime<Utc>, bool)> =
        free.into_iter().map(|s| (s.start, s.end, false)).collect();
    all.extend(busy.iter().map(|(s, e)| (crate::db::parse_ts(s), crate::db::parse_ts(e), true)));
    all.sort_by_key(|s| s.0);
    Ok(all.into_iter().map(|(s, e, busy)| map::slot(expert, s, e, busy)).collect())
}

/// Consultations visible to the caller that a search may cover: of one patient, with an
/// appointment of one practitioner. More than this many: narrow the search.
const MAX_CONSULTATIONS_PER_SEARCH: usize = 200;

async fn visible_consultations(
    db: &Db,
    user: &AuthUser,
    patient: Option<&str>,
    practitioner: Option<&str>,
) -> FhirResult<Vec<String>> {
    let rows =
        store::visible_consultations(db, user, patient, practitioner, MAX_CONSULTATIONS_PER_SEARCH as i64 + 1).await?;
    if rows.len() > MAX_CONSULTATIONS_PER_SEARCH {
        return Err(SearchError {
            code: "too-costly",
            message: format!(
                "the search covers more than {MAX_CONSULTATIONS_PER_SEARCH} consultations: add a patient (or practitioner) parameter"
            ),
        }
        .into());
    }
    Ok(rows)
}

fn status_matches(s: &Search, r: &Value) -> bool {
    match s.get("status") {
        None => true,
        Some(want) => want.split(',').any(|w| r["status"].as_str() == Some(w)),
    }
}

async fn search_type(
    State(state): State<AppState>,
    ExternalOrigin(origin): ExternalOrigin,
    headers: HeaderMap,
    user: Result<AuthUser, ApiError>,
    Path(kind): Path<String>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        check_accept(&headers)?;
        let user = user?;
        let def = search::resource_def(&kind).ok_or_else(|| {
            FhirError(
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "Not found",
                    format!("resource type {kind} is not served"),
                ),
                Some("not-supported"),
            )
        })?;
        let raw = query.map(|q| q.0).map_err(|e| SearchError { code: "invalid", message: e.body_text() })?;
        let s = search::parse(def, raw.clone())?;
        let base = format!("{origin}/fhir/r4");
        let page = run_search(&state.db, &state.config, &user, &origin, def, &s).await?;
        let mut included = Vec::new();
        let mut seen: Vec<String> = page
            .matches
            .iter()
            .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or("")))
            .collect();
        for inc in &s.includes {
            for r in &page.matches {
                for target in search::include_targets(inc, r) {
                    if seen.contains(&target) || included.len() >= 100 {
                        continue;
                    }
                    seen.push(target.clone());
                    let Some((t, id)) = target.split_once('/') else { continue };
                    match read_resource(&state.db, &state.config, &user, &origin, t, id).await {
                        Ok(v) => included.push(v),
                        Err(FhirError(e, _)) if e.status == StatusCode::NOT_FOUND => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(search::bundle(&base, &kind, &raw, &s, page, included))
    }
    .await;
    match result {
        Ok(v) => fhir_response(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// Cuts the page out of every match.
fn paginate(all: Vec<Value>, s: &Search) -> Page {
    let total = all.len();
    let matches: Vec<Value> = all.into_iter().skip(s.offset).take(s.count).collect();
    let has_more = s.offset + matches.len() < total;
    Page { matches, total: Some(total), has_more }
}

/// No match.
fn empty() -> Page {
    Page { total: Some(0), ..Page::default() }
}

async fn run_search(
    db: &Db,
    config: &Config,
    user: &AuthUser,
    origin: &str,
    def: &ResourceDef,
    s: &Search,
) -> FhirResult<Page> {
    match def.kind {
        "Patient" => search_patients(db, user, s).await,
        "Practitioner" | "PractitionerRole" | "Schedule" => search_staff(db, user, def, s).await,
        "Organization" => {
            let rows = organisations(db, s.get("name").unwrap_or(""), s.id.as_deref().unwrap_or("")).await?;
            Ok(paginate(rows.iter().map(map::organization).collect(), s))
        }
        "Slot" => search_slots(db, s).await,
        kind => search_story(db, config, user, origin, kind, s).await,
    }
}

/// Whether a resource is the one `_id` names (any, without `_id`).
fn id_matches(s: &Search, r: &Value) -> bool {
    s.id.as_deref().is_none_or(|id| r["id"].as_str() == Some(id))
}

async fn search_patients(db: &Db, user: &AuthUser, s: &Search) -> FhirResult<Page> {
    let identifier = match s.get("identifier") {
        None => String::new(),
        Some(v) => match v.split_once('|') {
            Some((sys, value))
                if sys.is_empty()
                    || sys == format!("{}/sid/patient", map::SYSTEM_BASE)
                    || sys == format!("{}/sid/resident-id", map::SYSTEM_BASE) =>
            {
                value.to_string()
            }
            Some(_) => return Ok(empty()),
            None => v.to_string(),
        },
    };
    let identifier = s.id.clone().unwrap_or(identifier);
    let rows = crate::patients::search_visible(
        db,
        user,
        s.get("name").unwrap_or(""),
        &identifier,
        s.count + 1,
        s.offset,
        "fhir_search",
    )
    .await?;
    let has_more = rows.len() > s.count;
    Ok(Page { matches: rows.iter().take(s.count).map(map::patient).collect(), total: None, has_more })
}

/// Practitioner, PractitionerRole and Schedule: staff accounts (experts for schedules).
async fn search_staff(db: &Db, user: &AuthUser, def: &ResourceDef, s: &Search) -> FhirResult<Page> {
    let practitioner = match def.kind {
        "PractitionerRole" => s.reference("practitioner", "Practitioner")?,
        "Schedule" => s.reference("actor", "Practitioner")?,
        _ => None,
    };
    let name = s.get("name").map(|n| n.trim().replace(['%', '_'], "")).unwrap_or_default();
    let wanted = practitioner.or(s.id.clone());
    let admin = user.role == crate::domain::people::Role::Admin;
    let ids = store::staff_ids(db, &name, wanted.as_deref(), def.kind == "Schedule", !admin).await?;
    let mut all = Vec::new();
    for id in ids {
        let Some(u) = staff(db, user, &id).await? else { continue };
        let r = match def.kind {
            "Practitioner" => map::practitioner(&u, admin),
            "PractitionerRole" => map::practitioner_role(&u),
            _ => map::schedule(&u),
        };
        let specialty_ok = s
            .get("specialty")
            .is_none_or(|want| r["specialty"].as_array().into_iter().flatten().any(|c| search::token_matches(want, c)));
        if specialty_ok {
            all.push(r);
        }
    }
    Ok(paginate(all, s))
}

async fn search_slots(db: &Db, s: &Search) -> FhirResult<Page> {
    let expert = s.reference("schedule", "Schedule")?.ok_or_else(|| SearchError {
        code: "invalid",
        message: "a Slot search needs schedule (Schedule/{expert id})".into(),
    })?;
    let mut range = DateRange::default();
    for v in s.all("start") {
        range = range.narrow(v, crate::scheduling::slots::DEFAULT_TZ)?;
    }
    if crate::directory::load_user(db, &expert).await?.is_none_or(|u| u.expert.is_none()) {
        return Ok(empty());
    }
    let all: Vec<Value> =
        slots_of(db, &expert, range).await?.into_iter().filter(|r| status_matches(s, r) && id_matches(s, r)).collect();
    Ok(paginate(all, s))
}

/// The consultation-scoped kinds: built from the stories of the consultations the search
/// covers, then filtered by its parameters.
async fn search_story(
    db: &Db,
    config: &Config,
    user: &AuthUser,
    origin: &str,
    kind: &str,
    s: &Search,
) -> FhirResult<Page> {
    let patient = s.reference("patient", "Patient")?;
    if let Some(p) = &patient {
        match crate::patients::load_for(db, user, p, "fhir_search").await {
            Ok(_) => {}
            Err(e) if e.status == StatusCode::NOT_FOUND => return Ok(empty()),
            Err(e) => return Err(e.into()),
        }
    }
    let practitioner = if kind == "Appointment" { s.reference("practitioner", "Practitioner")? } else { None };
    let mut range = DateRange::default();
    for v in s.all("date") {
        range = range.narrow(v, crate::scheduling::slots::DEFAULT_TZ)?;
    }
    let mut all = Vec::new();
    for cid in visible_consultations(db, user, patient.as_deref(), practitioner.as_deref()).await? {
        let story = load_story(db, config, user, &cid, "fhir_search", needs_files(kind)).await?;
        for r in map::story_resources(&story, kind, origin) {
            let code_ok = s.get("code").is_none_or(|c| search::token_matches(c, &r["code"]));
            let date_ok = s.get("date").is_none()
                || r["start"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| range.contains(t.into()));
            let practitioner_ok = practitioner.as_deref().is_none_or(|p| {
                search::include_targets("Appointment:practitioner", &r).contains(&format!("Practitioner/{p}"))
            });
            if code_ok && date_ok && practitioner_ok && status_matches(s, &r) && id_matches(s, &r) {
                all.push(r);
            }
        }
    }
    Ok(paginate(all, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids_carry_the_expert_and_the_utc_start() {
        let start: DateTime<Utc> = "2026-11-24T01:30:00Z".parse().unwrap();
        let id = map::slot_id("0190c0de-0000-7000-8000-000000000001", start);
        assert!(valid_id(&id), "{id} is a valid FHIR id");
        assert_eq!(parse_slot_id(&id), Some(("0190c0de-0000-7000-8000-000000000001".to_string(), start)));
        assert_eq!(parse_slot_id("nonsense"), None);
    }

    #[test]
    fn accept_headers_without_json_are_refused() {
        let mut h = HeaderMap::new();
        assert!(check_accept(&h).is_ok());
        h.insert(header::ACCEPT, HeaderValue::from_static("application/fhir+json; fhirVersion=4.0"));
        assert!(check_accept(&h).is_ok());
        h.insert(header::ACCEPT, HeaderValue::from_static("application/fhir+xml"));
        assert_eq!(check_accept(&h).err().map(|e| e.0.status.as_u16()), Some(406));
    }
}
