//! All SQL of vital signs: patients and consultations as the checks need them, the
//! `observations` readings, and (in [`super::worklist`]'s terms) plans and worklist items.

use super::reading::{GlucoseContext, Kind, Reading, Values};
use super::worklist::WorklistItem;
use super::{Observation, PatientRef, ACTIVE_STATES};
use crate::db::filter::Filtered;
use crate::db::{new_id, ts, Db};
use crate::domain::vitals::WorklistStatus;
use crate::error::ApiResult;
use std::collections::{HashMap, HashSet};

pub(crate) const OBSERVATION_COLUMNS: &str = "id, patient_id, client_id, kind, measured_at, received_at, source, device, device_id, consultation_id, recorded_by,
     systolic_mmhg, diastolic_mmhg, pulse_bpm, glucose_mmol_l, glucose_context, spo2_pct, weight_kg, temperature_c, ecg_file_id, status";

/// An `observations` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct ObservationRow {
    id: String,
    patient_id: String,
    client_id: String,
    kind: String,
    measured_at: String,
    received_at: String,
    source: String,
    device: String,
    device_id: Option<String>,
    consultation_id: Option<String>,
    recorded_by: Option<String>,
    systolic_mmhg: Option<f64>,
    diastolic_mmhg: Option<f64>,
    pulse_bpm: Option<f64>,
    glucose_mmol_l: Option<f64>,
    glucose_context: Option<String>,
    spo2_pct: Option<f64>,
    weight_kg: Option<f64>,
    temperature_c: Option<f64>,
    ecg_file_id: Option<String>,
    status: String,
}

impl ObservationRow {
    /// The reading; a kind or glucose context the server does not know is an error.
    pub(crate) fn observation(self) -> ApiResult<Observation> {
        let glucose_context = match self.glucose_context.as_deref() {
            None => None,
            Some(c) => Some(c.parse::<GlucoseContext>()?),
        };
        let kind = self.kind.parse::<Kind>()?;
        let values = Values {
            systolic_mmhg: self.systolic_mmhg,
            diastolic_mmhg: self.diastolic_mmhg,
            pulse_bpm: self.pulse_bpm,
            glucose_mmol_l: self.glucose_mmol_l,
            glucose_context,
            spo2_pct: self.spo2_pct,
            weight_kg: self.weight_kg,
            temperature_c: self.temperature_c,
            ecg_file_id: self.ecg_file_id,
        };
        Ok(Observation {
            summary: super::reading::summary(kind, &values),
            id: self.id,
            patient_id: self.patient_id,
            client_id: self.client_id,
            kind: self.kind,
            measured_at: self.measured_at,
            received_at: self.received_at,
            source: self.source,
            device: self.device,
            device_id: self.device_id,
            consultation_id: self.consultation_id,
            recorded_by: self.recorded_by,
            values,
            status: self.status,
        })
    }
}

pub async fn patient_ref(db: &Db, id: &str) -> ApiResult<Option<PatientRef>> {
    Ok(sqlx::query_as("SELECT id, name, home_organisation_id, user_id FROM patients WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?)
}

/// The same, inside a transaction.
pub async fn patient_ref_in(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<Option<PatientRef>> {
    Ok(sqlx::query_as("SELECT id, name, home_organisation_id, user_id FROM patients WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The active consultations of `patient_id` that `user_id` takes part in (not declined).
pub async fn active_consultations_of(db: &Db, patient_id: &str, user_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT c.id FROM consultations c JOIN consultation_participants cp ON cp.consultation_id = c.id
         WHERE c.patient_id = $1 AND cp.user_id = $2 AND cp.status <> 'declined' AND c.state IN {ACTIVE_STATES}
         ORDER BY c.id"
    ))
    .bind(patient_id)
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Writes `$a, $b, …` binding each value.
fn push_list<'a>(q: &mut Filtered<'a>, values: &'a [String]) {
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            q.push(", ");
        }
        q.push_bind(v.as_str());
    }
}

/// The states of those of `ids` that are consultations of the patient.
pub async fn consultation_states(db: &Db, patient_id: &str, ids: &[String]) -> ApiResult<HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = Filtered::new("SELECT id, state FROM consultations WHERE patient_id = ");
    q.push_bind(patient_id).push(" AND id IN (");
    push_list(&mut q, ids);
    q.push(")");
    let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&db.pool).await?;
    Ok(rows.into_iter().collect())
}

/// Those of `ids` that are ECG files of the patient's consultations.
pub async fn ecg_files_of(db: &Db, patient_id: &str, ids: &[String]) -> ApiResult<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut q = Filtered::new(
        "SELECT f.id FROM files f JOIN consultations c ON c.id = f.consultation_id WHERE c.patient_id = ",
    );
    q.push_bind(patient_id).push(" AND f.kind = ").push_bind(crate::domain::files::FileKind::Ecg.as_str());
    q.push(" AND f.id IN (");
    push_list(&mut q, ids);
    q.push(")");
    let rows: Vec<(String,)> = q.build_query_as().fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The patient's consultations in progress.
pub async fn in_progress_consultations(db: &Db, patient_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM consultations WHERE patient_id = $1 AND state = 'in_progress' ORDER BY id")
            .bind(patient_id)
            .fetch_all(&db.pool)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Who recorded a batch of readings: the device whose token sent it, or the signed-in user.
pub struct RecordedBy {
    pub device_id: Option<String>,
    pub user_id: Option<String>,
}

/// Inserts the readings not stored before (by client_id), in multi-row statements; answers
/// for each reading its stored id and whether it is new.
pub async fn insert_readings(
    conn: &mut sqlx::AnyConnection,
    by: &RecordedBy,
    patient_id: &str,
    readings: &[Reading],
    received_at: &str,
) -> ApiResult<Vec<(String, bool)>> {
    // The first of the same client_id in one request is the one stored.
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    let mut fresh: Vec<(usize, String)> = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        if first_index.contains_key(r.client_id.as_str()) {
            continue;
        }
        first_index.insert(&r.client_id, i);
        fresh.push((i, new_id()));
    }
    let mut inserted: HashMap<String, String> = HashMap::new();
    for chunk in fresh.chunks(100) {
        let mut q = Filtered::new(
            "INSERT INTO observations (id, patient_id, client_id, kind, measured_at, received_at, source, device, device_id, consultation_id, recorded_by,
                systolic_mmhg, diastolic_mmhg, pulse_bpm, glucose_mmol_l, glucose_context, spo2_pct, weight_kg, temperature_c, ecg_file_id)
             VALUES ",
        );
        for (n, (i, id)) in chunk.iter().enumerate() {
            let r = &readings[*i];
            let v = &r.values;
            q.push(if n == 0 { "(" } else { ", (" });
            q.push_bind(id.clone()).push(", ").push_bind(patient_id.to_string()).push(", ");
            q.push_bind(r.client_id.clone()).push(", ").push_bind(r.kind.as_str()).push(", ");
            q.push_bind(ts(r.measured_at)).push(", ").push_bind(received_at.to_string()).push(", ");
            q.push_bind(r.source.as_str()).push(", ").push_bind(r.device.clone()).push(", ");
            q.push_bind(by.device_id.clone()).push(", ").push_bind(r.consultation_id.clone()).push(", ");
            q.push_bind(by.user_id.clone()).push(", ");
            q.push_bind(v.systolic_mmhg).push(", ").push_bind(v.diastolic_mmhg).push(", ");
            q.push_bind(v.pulse_bpm).push(", ").push_bind(v.glucose_mmol_l).push(", ");
            q.push_bind(v.glucose_context.map(|c| c.as_str())).push(", ").push_bind(v.spo2_pct).push(", ");
            q.push_bind(v.weight_kg).push(", ").push_bind(v.temperature_c).push(", ");
            q.push_bind(v.ecg_file_id.clone()).push(")");
        }
        q.push(" ON CONFLICT (patient_id, client_id) DO NOTHING RETURNING client_id, id");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        inserted.extend(rows);
    }
    // The ids of readings stored before.
    let before: Vec<String> =
        first_index.keys().copied().filter(|c| !inserted.contains_key(*c)).map(str::to_string).collect();
    let mut earlier: HashMap<String, String> = HashMap::new();
    for chunk in before.chunks(500) {
        let mut q = Filtered::new("SELECT client_id, id FROM observations WHERE patient_id = ");
        q.push_bind(patient_id).push(" AND client_id IN (");
        push_list(&mut q, chunk);
        q.push(")");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        earlier.extend(rows);
    }
    Ok(readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let first = first_index[r.client_id.as_str()];
            match inserted.get(&r.client_id) {
                Some(id) => (id.clone(), first == i),
                None => (earlier.get(&r.client_id).cloned().unwrap_or_default(), false),
            }
        })
        .collect())
}

/// Which of a patient's readings a list shows: of one kind, measured in `from..to`, after
/// the reading at (`measured_at`, `id`) in newest-first order.
pub struct ObservationQuery<'a> {
    pub kind: Option<Kind>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub after: Option<(&'a str, &'a str)>,
}

/// Up to `limit` readings of the patient, newest first.
pub async fn observations(
    db: &Db,
    patient_id: &str,
    f: ObservationQuery<'_>,
    limit: i64,
) -> ApiResult<Vec<Observation>> {
    let mut q = Filtered::new(format!("SELECT {OBSERVATION_COLUMNS} FROM observations WHERE patient_id = "));
    q.push_bind(patient_id);
    if let Some(kind) = f.kind {
        q.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(from) = f.from {
        q.push(" AND measured_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND measured_at < ").push_bind(to);
    }
    if let Some((at, id)) = f.after {
        q.push(" AND (measured_at < ").push_bind(at);
        q.push(" OR (measured_at = ").push_bind(at).push(" AND id < ").push_bind(id).push("))");
    }
    q.push(" ORDER BY measured_at DESC, id DESC LIMIT ").push_bind(limit);
    let rows: Vec<ObservationRow> = q.build_query_as().fetch_all(&db.pool).await?;
    rows.into_iter().map(ObservationRow::observation).collect()
}

/// When the patient's reading `id` was measured, if it is theirs.
pub async fn measured_at(db: &Db, id: &str, patient_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT measured_at FROM observations WHERE id = $1 AND patient_id = $2")
            .bind(id)
            .bind(patient_id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|(at,)| at))
}

// ---- the timeline -------------------------------------------------------------------------

/// The part of each timeline source a round reads: measured in `from..to`, after (`at`,
/// `id`) in newest-first order, at most `limit` rows.
pub struct Window<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub after: Option<(&'a str, &'a str)>,
    pub limit: i64,
}

/// Rows of one source: `head` ends where the patient id is bound, `tail` adds the source's
/// own conditions; `at` and `id` are its time and id columns.
async fn windowed<T>(
    db: &Db,
    (head, tail): (&str, &str),
    patient: &str,
    (at, id): (&str, &str),
    w: &Window<'_>,
) -> ApiResult<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut q = Filtered::new(head);
    q.push_bind(patient).push(tail);
    q.push(" AND ").push(at).push(" IS NOT NULL");
    if let Some(from) = w.from {
        q.push(" AND ").push(at).push(" >= ").push_bind(from);
    }
    if let Some(to) = w.to {
        q.push(" AND ").push(at).push(" < ").push_bind(to);
    }
    if let Some((after_at, after_id)) = w.after {
        q.push(" AND (").push(at).push(" < ").push_bind(after_at);
        q.push(" OR (").push(at).push(" = ").push_bind(after_at).push(" AND ").push(id).push(" < ").push_bind(after_id);
        q.push("))");
    }
    q.push(" ORDER BY ").push(at).push(" DESC, ").push(id).push(" DESC LIMIT ").push_bind(w.limit);
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// id, created, reason, state, specialty, mode, requesting organisation's name.
pub type ConsultationRow = (String, String, String, String, String, String, String);

pub async fn timeline_consultations(db: &Db, patient: &str, w: &Window<'_>) -> ApiResult<Vec<ConsultationRow>> {
    let sql = (
        "SELECT c.id, c.created_at, c.reason, c.state, c.specialty, c.mode, o.name FROM consultations c
         JOIN organisations o ON o.id = c.requesting_organisation_id
         WHERE c.patient_id = ",
        " AND c.state <> 'draft'",
    );
    windowed(db, sql, patient, ("c.created_at", "c.id"), w).await
}

/// id, signed, consultation, impression, patient summary, signer's name, recommendations.
pub type OpinionRow = (String, String, String, String, String, String, String);

pub async fn timeline_opinions(db: &Db, patient: &str, w: &Window<'_>) -> ApiResult<Vec<OpinionRow>> {
    let sql = (
        "SELECT o.id, o.signed_at, o.consultation_id, o.impression, o.patient_summary, o.signer_name, o.recommendations
         FROM opinions o JOIN consultations c ON c.id = o.consultation_id
         WHERE c.patient_id = ",
        " AND o.status = 'signed'",
    );
    windowed(db, sql, patient, ("o.signed_at", "o.id"), w).await
}

/// id, created, consultation, reason, status, direction, from, to, author, assignee, the
/// receiving organisation's name.
pub type ReferralRow =
    (String, String, Option<String>, String, String, String, String, String, String, Option<String>, String);

pub async fn timeline_referrals(db: &Db, patient: &str, w: &Window<'_>) -> ApiResult<Vec<ReferralRow>> {
    let sql = (
        "SELECT r.id, r.created_at, r.consultation_id, r.reason, r.status, r.direction, r.from_organisation_id,
                r.to_organisation_id, r.created_by, r.assigned_to, o.name
         FROM referrals r JOIN organisations o ON o.id = r.to_organisation_id
         WHERE r.patient_id = ",
        " AND r.status <> 'entered_in_error'",
    );
    windowed(db, sql, patient, ("r.created_at", "r.id"), w).await
}

/// id, created, consultation, condition, status, interval in weeks, visits, targets JSON.
pub type FollowUpRow = (String, String, Option<String>, String, String, i64, i64, String);

pub async fn timeline_follow_ups(db: &Db, patient: &str, w: &Window<'_>) -> ApiResult<Vec<FollowUpRow>> {
    let sql = (
        "SELECT id, created_at, consultation_id, condition, status, interval_weeks, visits, targets
         FROM follow_up_plans WHERE patient_id = ",
        " AND status <> 'entered_in_error'",
    );
    windowed(db, sql, patient, ("created_at", "id"), w).await
}

/// id, created, consultation, name, file kind, the ECG pre-read's JSON.
pub type FileRow = (String, String, String, String, String, Option<String>);

/// The patient's ECG files (`ecg`) or their other files.
pub async fn timeline_files(db: &Db, patient: &str, ecg: bool, w: &Window<'_>) -> ApiResult<Vec<FileRow>> {
    let sql = (
        "SELECT f.id, f.created_at, f.consultation_id, f.name, f.kind, a.measurements
         FROM files f JOIN consultations c ON c.id = f.consultation_id LEFT JOIN ecg_analyses a ON a.file_id = f.id
         WHERE c.patient_id = ",
        if ecg { " AND f.kind = 'ecg'" } else { " AND f.kind <> 'ecg'" },
    );
    windowed(db, sql, patient, ("f.created_at", "f.id"), w).await
}

/// The patient's current readings.
pub async fn timeline_vitals(db: &Db, patient: &str, w: &Window<'_>) -> ApiResult<Vec<Observation>> {
    let head = format!("SELECT {OBSERVATION_COLUMNS} FROM observations WHERE patient_id = ");
    let rows: Vec<ObservationRow> =
        windowed(db, (&head, " AND status = 'current'"), patient, ("measured_at", "id"), w).await?;
    rows.into_iter().map(ObservationRow::observation).collect()
}

/// The consultations of the patient `user_id` takes part in (not declined), whatever their state.
pub async fn participating_consultations(db: &Db, patient: &str, user_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.id FROM consultations c JOIN consultation_participants cp ON cp.consultation_id = c.id
         WHERE c.patient_id = $1 AND cp.user_id = $2 AND cp.status <> 'declined'",
    )
    .bind(patient)
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

// ---- follow-up plans and the worklist -------------------------------------------------------

/// An active follow-up plan as stored (its targets as JSON, empty for the condition's defaults).
pub struct PlanRow {
    pub id: String,
    pub patient_id: String,
    pub organisation_id: String,
    pub condition: String,
    pub created_at: String,
    pub targets: String,
}

type PlanTuple = (String, String, String, String, String, String);

fn plan((id, patient_id, organisation_id, condition, created_at, targets): PlanTuple) -> PlanRow {
    PlanRow { id, patient_id, organisation_id, condition, created_at, targets }
}

/// The patient's active plans.
pub async fn active_plans(conn: &mut sqlx::AnyConnection, patient_id: &str) -> ApiResult<Vec<PlanRow>> {
    let rows: Vec<PlanTuple> = sqlx::query_as(
        "SELECT id, patient_id, organisation_id, condition, created_at, targets FROM follow_up_plans
         WHERE patient_id = $1 AND status = 'active' ORDER BY id",
    )
    .bind(patient_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(plan).collect())
}

/// Up to 5,000 active plans, of one organisation when given.
pub async fn active_plans_of(db: &Db, organisation: Option<&str>) -> ApiResult<Vec<PlanRow>> {
    let mut q = Filtered::new(
        "SELECT id, patient_id, organisation_id, condition, created_at, targets FROM follow_up_plans
         WHERE status = 'active'",
    );
    if let Some(o) = organisation {
        q.push(" AND organisation_id = ").push_bind(o);
    }
    q.push(" ORDER BY id LIMIT 5000");
    let rows: Vec<PlanTuple> = q.build_query_as().fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(plan).collect())
}

/// When the patient's latest current reading of `kind` was measured.
pub async fn last_measured(db: &Db, patient_id: &str, kind: Kind) -> ApiResult<Option<String>> {
    let last: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT MAX(measured_at) FROM observations WHERE patient_id = $1 AND kind = $2 AND status = 'current'",
    )
    .bind(patient_id)
    .bind(kind.as_str())
    .fetch_optional(&db.pool)
    .await?;
    Ok(last.and_then(|l| l.0))
}

/// Readings of a batch out of target for one (plan, reason).
pub struct Episode<'a> {
    pub plan: &'a PlanRow,
    pub patient_id: &'a str,
    pub reason: &'a str,
    pub first_observation: &'a str,
    pub last_observation: &'a str,
    pub detail: &'a str,
    pub reading: &'a str,
    pub target: &'a str,
    pub readings: i64,
    pub at: &'a str,
}

/// Opens the (plan, reason) episode, or adds the readings to the open one; answers the
/// item's id and how many readings it now holds.
pub async fn open_or_add(conn: &mut sqlx::AnyConnection, e: &Episode<'_>) -> ApiResult<(String, i64)> {
    let open = WorklistStatus::Open.as_str();
    Ok(sqlx::query_as(
        "INSERT INTO worklist_items (id, plan_id, patient_id, organisation_id, reason, episode_key, status, detail,
            first_observation_id, last_observation_id, readings, opened_at, updated_at, reading, target)
         VALUES ($1, $2, $3, $4, $5, $6, $11, $7, $6, $8, $9, $10, $10, $12, $13)
         ON CONFLICT (plan_id, reason) WHERE status = 'open' DO UPDATE SET
            detail = excluded.detail, reading = excluded.reading, target = excluded.target,
            last_observation_id = excluded.last_observation_id,
            readings = worklist_items.readings + excluded.readings, updated_at = excluded.updated_at
         RETURNING id, readings",
    )
    .bind(new_id())
    .bind(&e.plan.id)
    .bind(e.patient_id)
    .bind(&e.plan.organisation_id)
    .bind(e.reason)
    .bind(e.first_observation)
    .bind(e.detail)
    .bind(e.last_observation)
    .bind(e.readings)
    .bind(e.at)
    .bind(open)
    .bind(e.reading)
    .bind(e.target)
    .fetch_one(&mut *conn)
    .await?)
}

/// Resolves the plan's open episode of `reason`, if any; answers the items resolved.
pub async fn resolve(conn: &mut sqlx::AnyConnection, plan_id: &str, reason: &str, at: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "UPDATE worklist_items SET status = $1, updated_at = $2
         WHERE plan_id = $3 AND reason = $4 AND status = $5 RETURNING id",
    )
    .bind(WorklistStatus::Resolved.as_str())
    .bind(at)
    .bind(plan_id)
    .bind(reason)
    .bind(WorklistStatus::Open.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// A silence beyond a plan's frequency, keyed by when it began.
pub struct Silence<'a> {
    pub plan: &'a PlanRow,
    pub reason: &'a str,
    pub since: &'a str,
    pub detail: &'a str,
    pub at: &'a str,
}

/// Opens the episode of a silence unless it is open already; answers the new item's id.
pub async fn open_silence(conn: &mut sqlx::AnyConnection, s: &Silence<'_>) -> ApiResult<Option<String>> {
    let inserted: Option<(String,)> = sqlx::query_as(
        "INSERT INTO worklist_items (id, plan_id, patient_id, organisation_id, reason, episode_key, status, detail,
            readings, opened_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $9, $7, 0, $8, $8) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(new_id())
    .bind(&s.plan.id)
    .bind(&s.plan.patient_id)
    .bind(&s.plan.organisation_id)
    .bind(s.reason)
    .bind(s.since)
    .bind(s.detail)
    .bind(s.at)
    .bind(WorklistStatus::Open.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(inserted.map(|r| r.0))
}

const ITEM_SELECT: &str = "SELECT w.id, w.plan_id, p.condition, w.patient_id, x.name AS patient_name, w.reason, w.status, w.detail,
        w.reading, w.target, w.episode_key,
        w.readings, w.first_observation_id, w.last_observation_id, w.opened_at, w.updated_at, w.acknowledged_by, w.acknowledged_at
     FROM worklist_items w JOIN follow_up_plans p ON p.id = w.plan_id JOIN patients x ON x.id = w.patient_id";

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: String,
    plan_id: String,
    condition: String,
    patient_id: String,
    patient_name: String,
    reason: String,
    status: String,
    detail: String,
    reading: Option<String>,
    target: Option<String>,
    episode_key: String,
    readings: i64,
    first_observation_id: Option<String>,
    last_observation_id: Option<String>,
    opened_at: String,
    updated_at: String,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<String>,
}

impl ItemRow {
    fn item(self) -> ApiResult<WorklistItem> {
        let since = self.reason.ends_with("_missing").then(|| self.episode_key.clone());
        Ok(WorklistItem {
            status: self.status.parse::<WorklistStatus>()?,
            id: self.id,
            plan_id: self.plan_id,
            condition: self.condition,
            patient_id: self.patient_id,
            patient_name: self.patient_name,
            reason: self.reason,
            detail: self.detail,
            reading: self.reading.filter(|r| !r.is_empty()),
            target: self.target.filter(|t| !t.is_empty()),
            since,
            readings: self.readings,
            first_observation_id: self.first_observation_id,
            last_observation_id: self.last_observation_id,
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            acknowledged_by: self.acknowledged_by,
            acknowledged_at: self.acknowledged_at,
        })
    }
}

/// Up to `limit` items of an organisation, newest first: of one status when given, before
/// the id `before` when given.
pub async fn worklist(
    db: &Db,
    organisation: &str,
    status: Option<WorklistStatus>,
    before: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<WorklistItem>> {
    let mut q = Filtered::new(ITEM_SELECT);
    q.push(" WHERE w.organisation_id = ").push_bind(organisation);
    if let Some(s) = status {
        q.push(" AND w.status = ").push_bind(s.as_str());
    }
    if let Some(b) = before {
        q.push(" AND w.id < ").push_bind(b);
    }
    q.push(" ORDER BY w.id DESC LIMIT ").push_bind(limit);
    let rows: Vec<ItemRow> = q.build_query_as().fetch_all(&db.pool).await?;
    rows.into_iter().map(ItemRow::item).collect()
}

/// The item, of the organisation when given.
pub async fn worklist_item(db: &Db, id: &str, organisation: Option<&str>) -> ApiResult<Option<WorklistItem>> {
    let mut q = Filtered::new(ITEM_SELECT);
    q.push(" WHERE w.id = ").push_bind(id);
    if let Some(o) = organisation {
        q.push(" AND w.organisation_id = ").push_bind(o);
    }
    let row: Option<ItemRow> = q.build_query_as().fetch_optional(&db.pool).await?;
    row.map(ItemRow::item).transpose()
}

/// Acknowledges an open item, appending the doctor's note to its detail; false when it was
/// no longer open.
pub async fn acknowledge(conn: &mut sqlx::AnyConnection, id: &str, user_id: &str, note: &str) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE worklist_items SET status = $5, acknowledged_by = $1, acknowledged_at = $2, updated_at = $2,
            detail = CASE WHEN $3 = '' THEN detail ELSE detail || ' — ' || $3 END
         WHERE id = $4 AND status = $6",
    )
    .bind(user_id)
    .bind(crate::db::now_ts())
    .bind(note)
    .bind(id)
    .bind(WorklistStatus::Acknowledged.as_str())
    .bind(WorklistStatus::Open.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
