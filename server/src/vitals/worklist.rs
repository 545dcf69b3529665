//! The family doctor's worklist: follow-up plans of the doctor's centre whose readings are
//! out of target, or missing beyond the plan's frequency. One item per (plan, reason)
//! episode: readings out of target add to the open item until a doctor acknowledges it (a
//! reading posted twice is stored once, so counts once); a silence is one item however often
//! it is looked at, and ends when a reading of that kind arrives. Opening an episode tells
//! the patient in plain words (their notifications).

use super::reading::{Kind, Reading};
use super::targets::{self, Reason, Targets};
use super::{store, PatientRef, Sender};
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::audit;
use crate::auth::{AuthUser, Role};
use crate::db::{parse_ts, ts, Db, Id};
use crate::domain::vitals::WorklistStatus;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{Notice, Notification, NotificationHub, Text};
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The targets a plan row carries: its stored JSON, or (empty) its condition's defaults.
pub fn targets_of(stored: &str, condition: &str) -> Targets {
    if stored.trim().is_empty() {
        targets::defaults(condition)
    } else {
        serde_json::from_str(stored).unwrap_or_else(|_| targets::defaults(condition))
    }
}

/// An episode a batch of readings opened (the patient hears of it).
#[derive(Debug, Clone)]
pub struct Opened {
    pub reason: Reason,
    pub detail: String,
    /// What was read and the target, numbers and units only (empty for a silence).
    pub reading: String,
    pub target: String,
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
    let plans = store::active_plans(conn, &patient.id).await?;
    let mut opened = Vec::new();
    let stamp = ts(now);
    for plan in &plans {
        let targets = targets_of(&plan.targets, &plan.condition);
        let (episodes, ended) = findings(&targets, created, now);
        // One statement per (plan, reason) however many readings of the batch are out of
        // target: the episode's first reading keys it, the last one is shown.
        for (first, last, finding, count) in episodes {
            let reason = finding.reason;
            let episode = store::Episode {
                plan,
                patient_id: &patient.id,
                reason: reason.as_str(),
                first_observation: &first,
                last_observation: &last,
                detail: &finding.detail,
                reading: &finding.reading,
                target: &finding.target,
                readings: count,
                at: &stamp,
            };
            let (item, readings) = store::open_or_add(conn, &episode).await?;
            // An open episode already holds at least one reading: only a new one holds exactly these.
            let is_new = readings == count;
            let action = if is_new { "create" } else { "update" };
            conn.audit(sender.event(action, "worklist_item", &item).patient(&patient.id).detail(reason.as_str()))
                .await?;
            if is_new {
                opened.push(Opened {
                    reason,
                    detail: finding.detail,
                    reading: finding.reading,
                    target: finding.target,
                });
            }
        }
        for reason in ended {
            for id in store::resolve(conn, &plan.id, reason.as_str(), &stamp).await? {
                conn.audit(sender.event("resolve", "worklist_item", &id).patient(&patient.id).detail(reason.as_str()))
                    .await?;
            }
        }
    }
    Ok(opened)
}

/// (first reading, last reading, the last one's finding, readings) of a batch out of a plan's
/// targets, one per reason.
type Finding = (String, String, targets::Finding, i64);

/// What the recent readings of a batch say against a plan's targets: the episodes they open
/// or add to, and the silences they end.
fn findings(targets: &Targets, created: &[(String, &Reading)], now: DateTime<Utc>) -> (Vec<Finding>, Vec<Reason>) {
    let watched = targets::watched(targets);
    let mut ordered: Vec<&(String, &Reading)> =
        created.iter().filter(|(_, r)| targets::counts(targets, r.measured_at, now)).collect();
    ordered.sort_by_key(|(_, r)| r.measured_at);
    let mut ended = Vec::new();
    let mut episodes: Vec<Finding> = Vec::new();
    for (rid, r) in ordered {
        if watched.contains(&r.kind) {
            if let Some(reason) = Reason::missing_of(r.kind) {
                if !ended.contains(&reason) {
                    ended.push(reason);
                }
            }
        }
        for finding in targets::evaluate(targets, r.kind, &r.values) {
            match episodes.iter_mut().find(|e| e.2.reason == finding.reason) {
                Some(e) => {
                    e.1 = rid.clone();
                    e.2 = finding;
                    e.3 += 1;
                }
                None => episodes.push((rid.clone(), rid.clone(), finding, 1)),
            }
        }
    }
    (episodes, ended)
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
                    Text::new(&format!("reading_{}", o.reason.as_str()))
                        .with("detail", &o.detail)
                        .with("reading", &o.reading)
                        .with("target", &o.target),
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
pub async fn sweep_missing(
    db: &Db,
    hub: &NotificationHub,
    organisation: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<usize> {
    let mut opened = 0;
    for plan in store::active_plans_of(db, organisation).await? {
        let plan_targets = targets_of(&plan.targets, &plan.condition);
        let start = parse_ts(&plan.created_at);
        let mut due = Vec::new();
        for kind in targets::watched(&plan_targets) {
            let last = store::last_measured(db, &plan.patient_id, kind).await?.map(|l| parse_ts(&l));
            if let Some(m) = targets::missing(&plan_targets, kind, last, start, now) {
                due.push((kind, m));
            }
        }
        if due.is_empty() {
            continue;
        }
        let Some(patient) = store::patient_ref(db, &plan.patient_id).await? else { continue };
        let mut tx = audit::begin(db).await?;
        let mut news = Vec::new();
        for (kind, m) in due {
            let detail = m.days.to_string();
            let since = ts(m.since);
            let silence = store::Silence {
                plan: &plan,
                reason: m.reason.as_str(),
                since: &since,
                detail: &format!("no {} reading since {since}", kind_words(kind)),
                at: &ts(now),
            };
            if let Some(item) = store::open_silence(&mut tx, &silence).await? {
                tx.audit(
                    audit::unattended_event("system", "", "create", "worklist_item", &item)
                        .patient(&plan.patient_id)
                        .detail(m.reason.as_str()),
                )
                .await?;
                news.push(Opened { reason: m.reason, detail, reading: String::new(), target: String::new() });
            }
        }
        if news.is_empty() {
            continue; // nothing written: the transaction rolls back
        }
        opened += news.len();
        let notices = notify_patient(&mut tx, &patient, &news).await?;
        tx.commit().await?;
        crate::notifications::publish(hub, &notices);
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
            if let Err(e) = sweep_missing(&state.db, &state.notifications, None, Utc::now()).await {
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

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorklistItem {
    pub id: String,
    pub plan_id: String,
    pub condition: String,
    pub patient_id: String,
    pub patient_name: String,
    /// blood_pressure_above_target, glucose_above_target, glucose_low, blood_pressure_missing
    /// or glucose_missing.
    pub reason: String,
    #[schemars(with = "String")]
    pub status: WorklistStatus,
    /// What was seen against what was aimed for, e.g. `152/96 mmHg, target below 140/90 mmHg`
    /// (in English; a doctor's note on acknowledging is appended after ` — `).
    pub detail: String,
    /// The last reading out of target, numbers and units only (`152/96 mmHg`), for screens
    /// that say it in their reader's language; none for a missing reading (and for items
    /// opened before 2026-12-07).
    pub reading: Option<String>,
    /// The target it missed, numbers and units only (`140/90 mmHg`; a low limit for
    /// `glucose_low`).
    pub target: Option<String>,
    /// For a missing reading: since when nothing arrived (the last reading, or the plan's start).
    pub since: Option<String>,
    /// Readings out of target in this episode (0 for a missing reading).
    pub readings: i64,
    pub first_observation_id: Option<String>,
    pub last_observation_id: Option<String>,
    pub opened_at: String,
    pub updated_at: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

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
    let status = match f.status.as_deref() {
        None => Some(WorklistStatus::Open),
        Some("all") => None,
        Some(s) => Some(
            s.parse::<WorklistStatus>()
                .map_err(|_| ApiError::validation("status", "open, acknowledged, resolved or all"))?,
        ),
    };
    sweep_missing(&state.db, &state.notifications, Some(&user.org), Utc::now()).await?;
    let before = Some(cursor.as_str()).filter(|c| !c.is_empty());
    let rows = store::worklist(&state.db, &user.org, status, before, limit as i64 + 1).await?;
    let page = crate::api::page(rows, limit, |w| w.id.clone());
    let events = page.items.iter().map(|w| audit::event(&user, "list", "worklist_item", &w.id).patient(&w.patient_id));
    audit::record_all(&state.db, events.collect()).await?;
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
    let item = store::worklist_item(&state.db, &id, Some(&user.org)).await?;
    let Some(item) = item else {
        audit::event(&user, "acknowledge", "worklist_item", &id)
            .outcome(audit::Outcome::Denied)
            .record(&state.db)
            .await?;
        return Err(ApiError::not_found("worklist item"));
    };
    if item.status != WorklistStatus::Open {
        return Err(ApiError::conflict(
            ErrorCode::InvalidTransition,
            format!("the item is {}, not open", item.status.as_str()),
        ));
    }
    let mut tx = audit::begin(&state.db).await?;
    if !store::acknowledge(&mut tx, &id, &user.id, b.note.trim()).await? {
        return Err(ApiError::conflict(ErrorCode::InvalidTransition, "the item was acknowledged meanwhile"));
    }
    tx.audit(audit::event(&user, "acknowledge", "worklist_item", &id).patient(&item.patient_id)).await?;
    tx.commit().await?;
    let item = store::worklist_item(&state.db, &id, None).await?.ok_or_else(|| ApiError::not_found("worklist item"))?;
    Ok(Json(item))
}
