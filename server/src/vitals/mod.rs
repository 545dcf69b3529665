//! Vital signs of a resident: readings from home, kiosk and clinic devices (blood pressure,
//! glucose, SpO2, weight, temperature, single-lead ECG strips), checked and converted
//! ([`reading`], pure), stored once however often a device retries (idempotent on the
//! device's `client_id`), shown live in the call of a consultation they were taken in,
//! weighed against the targets of the patient's follow-up plans ([`targets`], pure; the
//! family doctor's [`worklist`]), and gathered with the rest of the resident's story in one
//! [`timeline`]. See docs/resident.md.
//!
//! Who may write and read a patient's readings: the patient themself; the community doctors
//! who see the patient's record (their home centre, or a centre a referral sends them to);
//! an expert only while taking part in an active consultation of the patient. Admins and
//! coordinators do not (403); anyone else finds no such patient (404).

pub mod device;
pub mod reading;
pub mod store;
pub mod targets;
pub mod timeline;
pub mod worklist;

use crate::api::{Json, JsonBatch, Path, Query, Routes};
use crate::app::AppState;
use crate::audit::{self, AuditEvent, Outcome};
use crate::auth::{AuthUser, Role};
use crate::db::{ts, Db, Id};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult, FieldError};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use reading::{Kind, NewReading, Reading, Values};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most readings one request may carry.
pub const MAX_BATCH: usize = 1000;

/// Consultation states in which an expert takes part in the patient's care.
pub const ACTIVE_STATES: &str = "('accepted', 'scheduled', 'in_progress', 'awaiting_opinion')";

/// A reading without a consultation is shown in the patient's call in progress when it was
/// measured this recently (a device's backlog of old readings is not).
pub const LIVE_WINDOW_SECS: i64 = 15 * 60;

pub fn routes() -> Routes {
    Routes::new("vital signs")
        .post(
            "/api/v1/patients/{id}/observations",
            "Record vital-sign readings (one, or an array of up to 1,000); idempotent on client_id",
            post_observations,
        )
        .body::<ReadingsBody>()
        .json::<IngestAnswer>(201)
        .json::<IngestAnswer>(200)
        .get(
            "/api/v1/patients/{id}/observations",
            "The patient's vital-sign readings, newest first (kind, from, to, cursor)",
            list_observations,
        )
        .query::<ObservationFilter>()
        .json::<crate::api::Page<Observation>>(200)
        .get(
            "/api/v1/patients/{id}/timeline",
            "The resident's longitudinal record across the consortium, newest first (each item only to those who may see it)",
            timeline::get_timeline,
        )
        .query::<timeline::TimelineFilter>()
        .json::<crate::api::Page<timeline::TimelineItem>>(200)
        .get(
            "/api/v1/worklist",
            "The family doctor's worklist: follow-up plans of the centre with readings out of target or missing",
            worklist::list,
        )
        .query::<worklist::WorklistFilter>()
        .json::<crate::api::Page<worklist::WorklistItem>>(200)
        .post(
            "/api/v1/device/observations",
            "A device records readings with its token: a home device its patient's, a kiosk or clinic device those of the patient it names",
            device::post,
        )
        .device_auth()
        .query::<device::DeviceTarget>()
        .body::<ReadingsBody>()
        .json::<IngestAnswer>(201)
        .json::<IngestAnswer>(200)
        .post("/api/v1/worklist/{id}/acknowledge", "Acknowledge a worklist item (ends its episode)", worklist::acknowledge)
        .body::<worklist::AcknowledgeBody>()
        .json::<worklist::WorklistItem>(200)
        .errors(&[409])
}

/// One reading, or an array of up to 1,000.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ReadingsBody {
    One(Box<NewReading>),
    Many(Vec<NewReading>),
}

/// What became of one reading of a request.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IngestResult {
    /// Its position in the request (0 for a single reading).
    pub index: usize,
    pub client_id: String,
    /// The stored reading (for a duplicate: the one stored first).
    pub id: String,
    /// `created`, or `duplicate` when a reading with this client_id was stored before (or
    /// earlier in the same request): nothing was stored again.
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IngestAnswer {
    pub created: usize,
    pub duplicates: usize,
    pub results: Vec<IngestResult>,
}

/// A stored reading.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Observation {
    pub id: String,
    pub patient_id: String,
    pub client_id: String,
    pub kind: String,
    pub measured_at: String,
    pub received_at: String,
    pub source: String,
    pub device: String,
    /// The registered device whose token sent it, if any.
    pub device_id: Option<String>,
    pub consultation_id: Option<String>,
    /// The signed-in user who sent it (none for a device).
    pub recorded_by: Option<String>,
    pub values: Values,
    pub summary: String,
    pub status: String,
}

/// The patient a request is about, as the ingest and the checks need it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PatientRef {
    pub id: String,
    pub name: String,
    pub home_organisation_id: String,
    pub user_id: Option<String>,
}

/// What a caller may do with a patient's readings.
#[derive(Debug, Clone)]
pub struct Access {
    pub patient: PatientRef,
    /// For an expert: the active consultations of the patient they take part in (their
    /// readings must name one of them, if any). `None` for everyone else.
    pub expert_consultations: Option<Vec<String>>,
}

/// Decides whether `user` may read or write the readings of patient `id` (see the module
/// documentation), auditing a refusal. 403 for admins and coordinators, 404 for a patient
/// the caller has no such relationship with.
pub async fn access(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<Access> {
    let deny = |exists: Option<&PatientRef>| {
        audit::event(user, action, "observation", id)
            .maybe_patient(exists.map(|p| p.id.clone()))
            .outcome(Outcome::Denied)
    };
    let patient = store::patient_ref(db, id).await?;
    if matches!(user.role, Role::Admin | Role::Coordinator) {
        deny(patient.as_ref()).record(db).await?;
        return Err(ApiError::forbidden(
            "vital signs are kept by the patient, their community doctors and the experts of their consultations",
        ));
    }
    let Some(patient) = patient else {
        deny(None).record(db).await?;
        return Err(ApiError::not_found("patient"));
    };
    let granted = match user.role {
        Role::Patient => patient.user_id.as_deref() == Some(user.id.as_str()),
        Role::CommunityDoctor => crate::patients::find_visible(db, user, id).await?.is_some(),
        Role::Expert => {
            let active = store::active_consultations_of(db, id, &user.id).await?;
            if active.is_empty() {
                false
            } else {
                return Ok(Access { patient, expert_consultations: Some(active) });
            }
        }
        Role::Admin | Role::Coordinator => false,
    };
    if !granted {
        deny(Some(&patient)).record(db).await?;
        return Err(ApiError::not_found("patient"));
    }
    Ok(Access { patient, expert_consultations: None })
}

/// Who sends a batch: a signed-in user, or a device with its token.
#[derive(Debug, Clone)]
pub enum Sender {
    User(AuthUser),
    Device { device_id: String, client_addr: String },
}

impl Sender {
    fn event(&self, action: &str, resource_type: &str, resource_id: &str) -> AuditEvent {
        match self {
            Sender::User(u) => audit::event(u, action, resource_type, resource_id),
            Sender::Device { device_id, client_addr } => {
                audit::device_event(Some(device_id), client_addr, action, resource_type, resource_id)
            }
        }
    }

    fn recorded_by(&self) -> Option<String> {
        match self {
            Sender::User(u) => Some(u.id.clone()),
            Sender::Device { .. } => None,
        }
    }

    fn device_id(&self) -> Option<String> {
        match self {
            Sender::User(_) => None,
            Sender::Device { device_id, .. } => Some(device_id.clone()),
        }
    }
}

fn field_name(array: bool, index: usize, field: &str) -> String {
    if array {
        format!("[{index}].{field}")
    } else {
        field.to_string()
    }
}

/// 422 listing every refused field of every reading; its code is the first problem's
/// (`implausible_value`, `measured_at_out_of_range` or `validation_failed`).
fn refused(problems: Vec<(String, ErrorCode, String)>) -> ApiError {
    let code = problems.first().map(|p| p.1).unwrap_or(ErrorCode::ValidationFailed);
    let title = match code {
        ErrorCode::ImplausibleValue => "Implausible value",
        ErrorCode::MeasuredAtOutOfRange => "Measured at an impossible time",
        _ => "Validation failed",
    };
    let detail = problems.iter().map(|(f, _, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; ");
    let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, detail);
    e.errors = problems.into_iter().map(|(field, _, message)| FieldError { field, message }).collect();
    e
}

async fn post_observations(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    body: JsonBatch<NewReading>,
) -> ApiResult<(StatusCode, Json<IngestAnswer>)> {
    let mut access = access(&state.db, &user, &id, "create").await?;
    // An expert writes readings through the consultations they have accepted, not through an
    // invitation they have not answered.
    if let Some(theirs) = access.expert_consultations.take() {
        let mut answered = Vec::with_capacity(theirs.len());
        for c in theirs {
            if crate::consultations::store::expert_status(&state.db, &c, &user.id).await?.as_deref() != Some("invited")
            {
                answered.push(c);
            }
        }
        if answered.is_empty() {
            audit::event(&user, "create", "observation", &id)
                .patient(&id)
                .outcome(Outcome::Denied)
                .detail("invitation not answered")
                .record(&state.db)
                .await?;
            return Err(crate::consultations::store::invitation_unanswered());
        }
        access.expert_consultations = Some(answered);
    }
    let answer = ingest(&state, &Sender::User(user), &access, body.items, body.array).await?;
    let status = if answer.created > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(answer)))
}

/// Checks, stores (once per client_id), audits, weighs against the patient's follow-up
/// plans, notifies, and shows live in the call: one transaction for the whole batch.
pub async fn ingest(
    state: &AppState,
    sender: &Sender,
    access: &Access,
    items: Vec<NewReading>,
    array: bool,
) -> ApiResult<IngestAnswer> {
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::validation("", format!("send 1 to {MAX_BATCH} readings")));
    }
    let patient = &access.patient;
    let now = Utc::now();
    let mut readings = check_all(&items, array, now)?;
    let mut consultation_states = check_references(&state.db, access, &readings, array).await?;
    attach_to_live_call(&state.db, patient, &mut readings, &mut consultation_states, now).await?;
    let received_at = ts(now);
    let (results, created) =
        record(&state.db, &state.notifications, sender, patient, &readings, &received_at, now).await?;
    show_live(state, &created, &consultation_states, &received_at);
    let created_count = created.len();
    Ok(IngestAnswer { created: created_count, duplicates: results.len() - created_count, results })
}

/// Checks each reading of a batch; 422 naming every refused field.
fn check_all(items: &[NewReading], array: bool, now: chrono::DateTime<Utc>) -> ApiResult<Vec<Reading>> {
    let mut problems = Vec::new();
    let mut readings: Vec<Reading> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match reading::check(item, now) {
            Ok(r) => readings.push(r),
            Err(ps) => problems.extend(ps.into_iter().map(|p| (field_name(array, i, p.field), p.code, p.message))),
        }
    }
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    Ok(readings)
}

/// Named consultations must be the patient's (and, for an expert, active ones they take part
/// in); named ECG files must be ECGs of the patient's consultations. Answers the states of
/// the consultations named.
async fn check_references(
    db: &Db,
    access: &Access,
    readings: &[Reading],
    array: bool,
) -> ApiResult<HashMap<String, String>> {
    let patient = &access.patient;
    let mut named: Vec<String> = readings.iter().filter_map(|r| r.consultation_id.clone()).collect();
    named.sort();
    named.dedup();
    let consultation_states = store::consultation_states(db, &patient.id, &named).await?;
    let mut files: Vec<String> = readings.iter().filter_map(|r| r.values.ecg_file_id.clone()).collect();
    files.sort();
    files.dedup();
    let known_files = store::ecg_files_of(db, &patient.id, &files).await?;
    let mut problems = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        if let Some(c) = &r.consultation_id {
            let allowed = consultation_states.contains_key(c)
                && access.expert_consultations.as_ref().is_none_or(|mine| mine.contains(c));
            if !allowed {
                problems.push((
                    field_name(array, i, "consultation_id"),
                    ErrorCode::ValidationFailed,
                    "no consultation of this patient that you take part in has this id".to_string(),
                ));
            }
        }
        if let Some(f) = &r.values.ecg_file_id {
            if !known_files.contains(f) {
                problems.push((
                    field_name(array, i, "ecg_file_id"),
                    ErrorCode::ValidationFailed,
                    "no ECG file of this patient's consultations has this id".to_string(),
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    Ok(consultation_states)
}

/// A recent reading without a consultation, while the patient's consultation is in
/// progress, belongs to that call.
async fn attach_to_live_call(
    db: &Db,
    patient: &PatientRef,
    readings: &mut [Reading],
    consultation_states: &mut HashMap<String, String>,
    now: chrono::DateTime<Utc>,
) -> ApiResult<()> {
    let in_progress = store::in_progress_consultations(db, &patient.id).await?;
    if let [live] = in_progress.as_slice() {
        for r in readings.iter_mut().filter(|r| r.consultation_id.is_none()) {
            if (now - r.measured_at).num_seconds() <= LIVE_WINDOW_SECS {
                r.consultation_id = Some(live.clone());
                consultation_states.insert(live.clone(), "in_progress".into());
            }
        }
    }
    Ok(())
}

/// Stores the readings (once per client_id), audits, weighs them against the patient's
/// follow-up plans and notifies, in one transaction. Answers each reading's result and the
/// readings stored now, with their ids.
async fn record<'r>(
    db: &Db,
    hub: &crate::notifications::NotificationHub,
    sender: &Sender,
    patient: &PatientRef,
    readings: &'r [Reading],
    received_at: &str,
    now: chrono::DateTime<Utc>,
) -> ApiResult<(Vec<IngestResult>, Vec<(String, &'r Reading)>)> {
    let mut tx = audit::begin(db).await?;
    let by = store::RecordedBy { device_id: sender.device_id(), user_id: sender.recorded_by() };
    let stored = store::insert_readings(&mut tx, &by, &patient.id, readings, received_at).await?;
    let mut events = Vec::new();
    let mut results = Vec::with_capacity(readings.len());
    let mut created: Vec<(String, &Reading)> = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        let (rid, is_new) = stored[i].clone();
        if is_new {
            events.push(
                sender
                    .event("create", "observation", &rid)
                    .patient(&patient.id)
                    .detail(reading::summary(r.kind, &r.values)),
            );
            created.push((rid.clone(), r));
        }
        results.push(IngestResult {
            index: i,
            client_id: r.client_id.clone(),
            id: rid,
            status: if is_new { "created" } else { "duplicate" }.into(),
        });
    }
    if events.is_empty() {
        // Nothing new: a retry of readings stored before. The retry itself is audited.
        events.push(
            sender
                .event("create", "observation", &results[0].id)
                .patient(&patient.id)
                .detail(format!("{} duplicate readings, nothing stored", results.len())),
        );
    }
    tx.audit_all(events).await?;
    let opened = worklist::weigh(&mut tx, sender, patient, &created, now).await?;
    let notices = worklist::notify_patient(&mut tx, patient, &opened).await?;
    tx.commit().await?;
    crate::notifications::publish(hub, &notices);
    Ok((results, created))
}

/// Shows the readings of a consultation whose room may be open live in the call.
fn show_live(
    state: &AppState,
    created: &[(String, &Reading)],
    consultation_states: &HashMap<String, String>,
    received_at: &str,
) {
    for (rid, r) in created {
        let Some(c) = &r.consultation_id else { continue };
        if !matches!(consultation_states.get(c).map(String::as_str), Some("scheduled" | "in_progress")) {
            continue;
        }
        state.signaling.observation(
            c,
            crate::signaling::protocol::LiveReading {
                id: rid.clone(),
                consultation_id: c.clone(),
                kind: r.kind.as_str().into(),
                measured_at: ts(r.measured_at),
                received_at: received_at.to_string(),
                source: r.source.as_str().into(),
                device: r.device.clone(),
                values: r.values.clone(),
                summary: reading::summary(r.kind, &r.values),
            },
        );
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservationFilter {
    pub kind: Option<Kind>,
    /// RFC 3339 lower bound of measured_at (inclusive).
    pub from: Option<crate::db::ClientTime>,
    /// RFC 3339 upper bound of measured_at (exclusive).
    pub to: Option<crate::db::ClientTime>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn list_observations(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Query(f): Query<ObservationFilter>,
) -> ApiResult<Json<crate::api::Page<Observation>>> {
    let limit = crate::api::page_limit(f.limit, 1000)?;
    let cursor = crate::api::page_cursor(f.cursor)?;
    access(&state.db, &user, &id, "list").await?;
    let after = cursor_position(&state.db, &id, &cursor).await?;
    let query = store::ObservationQuery {
        kind: f.kind,
        from: f.from.map(|t| ts(t.into())),
        to: f.to.map(|t| ts(t.into())),
        after: after.as_ref().map(|(at, id)| (at.as_str(), id.as_str())),
    };
    let rows = store::observations(&state.db, &id, query, limit as i64 + 1).await?;
    let page = crate::api::page(rows, limit, |o| o.id.clone());
    audit::event(&user, "list", "observation", &id)
        .patient(&id)
        .detail(format!("{} readings", page.items.len()))
        .record(&state.db)
        .await?;
    Ok(Json(page))
}

/// Where a list continues after the reading `cursor` (of this patient): its time and id.
async fn cursor_position(db: &Db, patient_id: &str, cursor: &str) -> ApiResult<Option<(String, String)>> {
    if cursor.is_empty() {
        return Ok(None);
    }
    match store::measured_at(db, cursor, patient_id).await? {
        Some(at) => Ok(Some((at, cursor.to_string()))),
        None => Err(ApiError::validation("cursor", "not a cursor of this list: pass the `next` of the previous page")),
    }
}
