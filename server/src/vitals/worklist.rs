//! The family doctor's worklist: follow-up plans of the doctor's centre whose readings are
//! out of target, or missing beyond the plan's frequency. One item per (plan, reason)
//! episode: readings out of target add to the open item until a doctor acknowledges it (a
//! reading posted twice is stored once, so counts once); a silence is one item however often
//! it is looked at, and ends when a reading of that kind arrives. Opening an episode tells
//! the patient in plain words (their notifications).

use super::reading::{Kind, Reading};
use super::targets::{self, Reason, Targets};
use super::{PatientRef, Sender};
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::audit;
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, parse_ts, ts, Id};
use crate::error::{ApiError, ApiResult};
use crate::notifications::{Notice, Notification, Text};
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An active plan with its targets (stored, or its condition's defaults).
#[derive(Debug, Clone)]
pub struct PlanTargets {
    pub id: String,
    pub patient_id: String,
    pub organisation_id: String,
    pub condition: String,
    pub created_at: String,
    pub targets: Targets,
}

/// The targets a plan row carries: its stored JSON, or (empty) its condition's defaults.
pub fn targets_of(stored: &str, condition: &str) -> Targets {
    if stored.trim().is_empty() {
        targets::defaults(condition)
    } else {
        serde_json::from_str(stored).unwrap_or_else(|_| targets::defaults(condition))
    }
}

async fn active_plans(conn: &mut sqlx::AnyConnection, patient_id: &str) -> ApiResult<Vec<PlanTargets>> {
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT id, patient_id, organisation_id, condition, created_at, targets FROM follow_up_plans
         WHERE patient_id = $1 AND status = 'active' ORDER BY id",
    )
    .bind(patient_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, patient_id, organisation_id, condition, created_at, t)| PlanTargets {
            targets: targets_of(&t, &condition),
            id,
            patient_id,
            organisation_id,
            condition,
            created_at,
        })
        .collect())
}

/// An episode a batch of readings opened (the patient hears of it).
#[derive(Debug, Clone)]
pub struct Opened {
    pub reason: Reason,
    pub detail: String,
}

/// Weighs newly stored readings against the patient's active plans, inside the ingest's
/// transaction: readings out of target open or add to an episode; a reading of a watched
/// kind ends that kind's silence. Only recent readings count ([`targets::counts`]): a
/// device's backlog of old readings is history, not news for the doctor.
pub async fn weigh(
    conn: &mut crate::audit::AuditedTx,
    sender: &Sender,
    patient: &PatientRef,
    created: &[(String, &Reading)],
    now: DateTime<Utc>,
) -> ApiResult<Vec<Opened>> {
    if created.is_empty() {
        return Ok(Vec::new());
    }
    let plans = active_plans(conn, &patient.id).await?;
    let mut opened = Vec::new();
    let stamp = ts(now);
    for plan in &plans {
        let watched = targets::watched(&plan.targets);
        let mut ordered: Vec<&(String, &Reading)> =
            created.iter().filter(|(_, r)| targets::counts(&plan.targets, r.measured_at, now)).collect();
        ordered.sort_by_key(|(_, r)| r.measured_at);
        let mut ended = Vec::new();
        // (reason, first reading, last reading, its detail, readings) of this batch.
        let mut episodes: Vec<(Reason, String, String, String, i64)> = Vec::new();
        for (rid, r) in ordered {
            if watched.contains(&r.kind) {
                if let Some(reason) = Reason::missing_of(r.kind) {
                    if !ended.contains(&reason) {
                        ended.push(reason);
                    }
                }
            }
            for finding in targets::evaluate(&plan.targets, r.kind, &r.values) {
                match episodes.iter_mut().find(|e| e.0 == finding.reason) {
                    Some(e) => {
                        e.2 = rid.clone();
                        e.3 = finding.detail;
                        e.4 += 1;
                    }
                    None => episodes.push((finding.reason, rid.clone(), rid.clone(), finding.detail, 1)),
                }
            }
        }
        // One statement per (plan, reason) however many readings of the batch are out of
        // target: the episode's first reading keys it, the last one is shown.
        for (reason, first, last, detail, count) in episodes {
            let row: (String, i64) = sqlx::query_as(
                "INSERT INTO worklist_items (id, plan_id, patient_id, organisation_id, reason, episode_key, status, detail,
                    first_observation_id, last_observation_id, readings, opened_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $6, $8, $9, $10, $10)
                 ON CONFLICT (plan_id, reason) WHERE status = 'open' DO UPDATE SET
                    detail = excluded.detail, last_observation_id = excluded.last_observation_id,
                    readings = worklist_items.readings + excluded.readings, updated_at = excluded.updated_at
                 RETURNING id, readings",
            )
            .bind(new_id())
            .bind(&plan.id)
            .bind(&patient.id)
            .bind(&plan.organisation_id)
            .bind(reason.as_str())
            .bind(&first)
            .bind(&detail)
            .bind(&last)
            .bind(count)
            .bind(&stamp)
            .fetch_one(&mut **conn)
            .await?;
            // An open episode already holds at least one reading: only a new one holds exactly these.
            let is_new = row.1 == count;
            let action = if is_new { "create" } else { "update" };
            conn.audit(sender.event(action, "worklist_item", &row.0).patient(&patient.id).detail(reason.as_str()))
                .await?;
            if is_new {
                opened.push(Opened { reason, detail });
            }
        }
        for reason in ended {
            let resolved: Vec<(String,)> = sqlx::query_as(
                "UPDATE worklist_items SET status = 'resolved', updated_at = $1
                 WHERE plan_id = $2 AND reason = $3 AND status = 'open' RETURNING id",
            )
            .bind(&stamp)
            .bind(&plan.id)
            .bind(reason.as_str())
            .fetch_all(&mut **conn)
            .await?;
            for (id,) in resolved {
                conn.audit(sender.event("resolve", "worklist_item", &id).patient(&patient.id).detail(reason.as_str()))
                    .await?;
            }
        }
    }
    Ok(opened)
}

/// The patient's notice of an episode, in plain words (Chinese, then English).
pub fn plain_words(reason: Reason, detail: &str) -> (String, String) {
    match reason {
        Reason::BloodPressureAboveTarget => (
            "血压高于目标 Your blood pressure is above your target".into(),
            format!("您的血压 {detail}。请按医嘱服药，注意休息，少吃盐；您的家庭医生会看到并与您联系。 Please take your medicine as prescribed and rest; your family doctor has been told and will contact you."),
        ),
        Reason::GlucoseAboveTarget => (
            "血糖高于目标 Your blood sugar is above your target".into(),
            format!("您的血糖 {detail}。请按医嘱用药、注意饮食；您的家庭医生会看到并与您联系。 Please take your medicine as prescribed and watch your diet; your family doctor has been told."),
        ),
        Reason::GlucoseLow => (
            "血糖偏低 Your blood sugar is low".into(),
            format!("您的血糖 {detail}。请马上吃些含糖食物（如糖果、果汁），15 分钟后再测一次；如仍不适请就医。 Eat something sweet now and measure again in 15 minutes; seek care if you still feel unwell."),
        ),
        Reason::BloodPressureMissing => (
            "请测量血压 Please measure your blood pressure".into(),
            format!("已经 {detail} 天没有收到您的血压记录了，请测量一次。 We have had no blood pressure reading from you for {detail} days; please measure it."),
        ),
        Reason::GlucoseMissing => (
            "请测量血糖 Please measure your blood sugar".into(),
            format!("已经 {detail} 天没有收到您的血糖记录了，请测量一次。 We have had no blood sugar reading from you for {detail} days; please measure it."),
        ),
    }
}

/// Stores the patient's notices of newly opened episodes in the transaction; answers what to
/// publish live after the commit.
pub async fn notify_patient(
    conn: &mut sqlx::AnyConnection,
    patient: &PatientRef,
    opened: &[Opened],
) -> ApiResult<Vec<(String, Notification)>> {
    let Some(user) = &patient.user_id else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for o in opened {
        let kind = match o.reason {
            Reason::BloodPressureMissing | Reason::GlucoseMissing => "reading_due",
            _ => "reading_out_of_target",
        };
        out.extend(
            crate::notifications::store(
                conn,
                std::slice::from_ref(user),
                &Notice::new(
                    kind,
                    Text::new(&format!("reading_{}", o.reason.as_str())).with("detail", &o.detail),
                    "",
                    None,
                ),
            )
            .await?,
        );
    }
    Ok(out)
}

/// Opens the episodes of silence beyond their plan's frequency (of one organisation's plans,
/// or all), each once; tells the patients. Answers how many it opened.
pub async fn sweep_missing(state: &AppState, organisation: Option<&str>, now: DateTime<Utc>) -> ApiResult<usize> {
    let plans: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT id, patient_id, organisation_id, condition, created_at, targets FROM follow_up_plans
         WHERE status = 'active' AND ($1 = '' OR organisation_id = $1) ORDER BY id LIMIT 5000",
    )
    .bind(organisation.unwrap_or(""))
    .fetch_all(&state.db.pool)
    .await?;
    let mut opened = 0;
    for (id, patient_id, organisation_id, condition, created_at, t) in plans {
        let plan_targets = targets_of(&t, &condition);
        let start = parse_ts(&created_at);
        let mut due = Vec::new();
        for kind in targets::watched(&plan_targets) {
            let last: Option<(Option<String>,)> = sqlx::query_as(
                "SELECT MAX(measured_at) FROM observations WHERE patient_id = $1 AND kind = $2 AND status = 'current'",
            )
            .bind(&patient_id)
            .bind(kind.as_str())
            .fetch_optional(&state.db.pool)
            .await?;
            let last = last.and_then(|l| l.0).map(|l| parse_ts(&l));
            if let Some(m) = targets::missing(&plan_targets, kind, last, start, now) {
                due.push((kind, m));
            }
        }
        if due.is_empty() {
            continue;
        }
        let patient: Option<PatientRef> =
            sqlx::query_as("SELECT id, name, home_organisation_id, user_id FROM patients WHERE id = $1")
                .bind(&patient_id)
                .fetch_optional(&state.db.pool)
                .await?;
        let Some(patient) = patient else { continue };
        let mut tx = audit::begin(&state.db).await?;
        let mut news = Vec::new();
        for (kind, m) in due {
            let detail = m.days.to_string();
            let inserted: Option<(String,)> = sqlx::query_as(
                "INSERT INTO worklist_items (id, plan_id, patient_id, organisation_id, reason, episode_key, status, detail,
                    readings, opened_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, 0, $8, $8) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(new_id())
            .bind(&id)
            .bind(&patient_id)
            .bind(&organisation_id)
            .bind(m.reason.as_str())
            .bind(ts(m.since))
            .bind(format!("no {} reading since {}", kind_words(kind), ts(m.since)))
            .bind(ts(now))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((item,)) = inserted {
                tx.audit(
                    audit::unattended_event("system", "", "create", "worklist_item", &item)
                        .patient(&patient_id)
                        .detail(m.reason.as_str()),
                )
                .await?;
                news.push(Opened { reason: m.reason, detail });
            }
        }
        if news.is_empty() {
            continue; // nothing written: the transaction rolls back
        }
        opened += news.len();
        let notices = notify_patient(&mut tx, &patient, &news).await?;
        tx.commit().await?;
        crate::notifications::publish(state, &notices);
    }
    Ok(opened)
}

fn kind_words(kind: Kind) -> &'static str {
    match kind {
        Kind::BloodPressure => "blood pressure",
        Kind::Glucose => "glucose",
        _ => kind.as_str(),
    }
}

/// Looks for silences every ten minutes.
pub fn spawn_sweeper(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = sweep_missing(&state, None, Utc::now()).await {
                tracing::warn!(error = %e, "looking for missing readings failed; retrying on the next tick");
            }
        }
    });
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorklistFilter {
    /// `open` (default), `acknowledged`, `resolved` or `all`.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct WorklistItem {
    pub id: String,
    pub plan_id: String,
    pub condition: String,
    pub patient_id: String,
    pub patient_name: String,
    /// blood_pressure_above_target, glucose_above_target, glucose_low, blood_pressure_missing
    /// or glucose_missing.
    pub reason: String,
    pub status: String,
    /// What was seen against what was aimed for, e.g. `152/96 mmHg, target below 140/90 mmHg`.
    pub detail: String,
    /// Readings out of target in this episode (0 for a missing reading).
    pub readings: i64,
    pub first_observation_id: Option<String>,
    pub last_observation_id: Option<String>,
    pub opened_at: String,
    pub updated_at: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

const ITEM_SELECT: &str = "SELECT w.id, w.plan_id, p.condition, w.patient_id, x.name AS patient_name, w.reason, w.status, w.detail,
        w.readings, w.first_observation_id, w.last_observation_id, w.opened_at, w.updated_at, w.acknowledged_by, w.acknowledged_at
     FROM worklist_items w JOIN follow_up_plans p ON p.id = w.plan_id JOIN patients x ON x.id = w.patient_id";

fn require_family_doctor(user: &AuthUser) -> ApiResult<()> {
    if user.role != Role::CommunityDoctor {
        return Err(ApiError::forbidden("the worklist is the community doctors' of a centre"));
    }
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<WorklistFilter>,
) -> ApiResult<Json<crate::api::Page<WorklistItem>>> {
    require_family_doctor(&user)?;
    let limit = crate::api::page_limit(f.limit, 200)?;
    let cursor = crate::api::page_cursor(f.cursor)?;
    let status = f.status.unwrap_or_else(|| "open".into());
    if !matches!(status.as_str(), "open" | "acknowledged" | "resolved" | "all") {
        return Err(ApiError::validation("status", "open, acknowledged, resolved or all"));
    }
    sweep_missing(&state, Some(&user.org), Utc::now()).await?;
    let rows: Vec<WorklistItem> = sqlx::query_as(&format!(
        "{ITEM_SELECT} WHERE w.organisation_id = $1 AND ($2 = 'all' OR w.status = $2) AND ($3 = '' OR w.id < $3)
         ORDER BY w.id DESC LIMIT $4"
    ))
    .bind(&user.org)
    .bind(&status)
    .bind(cursor)
    .bind(limit as i64 + 1)
    .fetch_all(&state.db.pool)
    .await?;
    let page = crate::api::page(rows, limit, |w| w.id.clone());
    let mut tx = state.db.begin_write().await?;
    for w in &page.items {
        audit::event(&user, "list", "worklist_item", &w.id).patient(&w.patient_id).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Json(page))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    /// What the doctor did (called the patient, changed the treatment), up to 2,000 characters.
    #[serde(default)]
    pub note: String,
}

pub async fn acknowledge(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<AcknowledgeBody>,
) -> ApiResult<Json<WorklistItem>> {
    require_family_doctor(&user)?;
    if b.note.chars().count() > 2000 {
        return Err(ApiError::validation("note", "up to 2,000 characters"));
    }
    let item: Option<WorklistItem> =
        sqlx::query_as(&format!("{ITEM_SELECT} WHERE w.id = $1 AND w.organisation_id = $2"))
            .bind(&id)
            .bind(&user.org)
            .fetch_optional(&state.db.pool)
            .await?;
    let Some(item) = item else {
        audit::event(&user, "acknowledge", "worklist_item", &id)
            .outcome(audit::Outcome::Denied)
            .record(&state.db)
            .await?;
        return Err(ApiError::not_found("worklist item"));
    };
    if item.status != "open" {
        return Err(ApiError::conflict("invalid_transition", format!("the item is {}, not open", item.status)));
    }
    let mut tx = audit::begin(&state.db).await?;
    let done = sqlx::query(
        "UPDATE worklist_items SET status = 'acknowledged', acknowledged_by = $1, acknowledged_at = $2, updated_at = $2,
            detail = CASE WHEN $3 = '' THEN detail ELSE detail || ' — ' || $3 END
         WHERE id = $4 AND status = 'open'",
    )
    .bind(&user.id)
    .bind(crate::db::now_ts())
    .bind(b.note.trim())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::conflict("invalid_transition", "the item was acknowledged meanwhile"));
    }
    tx.audit(audit::event(&user, "acknowledge", "worklist_item", &id).patient(&item.patient_id)).await?;
    tx.commit().await?;
    let item: WorklistItem =
        sqlx::query_as(&format!("{ITEM_SELECT} WHERE w.id = $1")).bind(&id).fetch_one(&state.db.pool).await?;
    Ok(Json(item))
}
