//! Appointments: atomic booking of an expert's free slot for a consultation, reschedule,
//! cancel with a reason, and no-shows per participant; reminders before each appointment.
//!
//! Booking is serialised per expert and per patient: the booking transaction's first
//! statements bump `booking_seq` on the expert's profile and the patient's record, which
//! takes their row locks (PostgreSQL) or the database write lock (SQLite). Within that lock
//! the slot is checked against every booked appointment, so two bookings can never overlap,
//! whatever their slot lengths.

use super::availability::{local, slot_error};
use super::store::load_calendar;
use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::consultations::state::{Action, Reason, State as CState};
use crate::consultations::store as cstore;
use crate::db::{new_id, now_ts, parse_ts, ts, Id};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{self, Notice, Text};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AppointmentView {
    pub id: String,
    pub consultation_id: String,
    pub expert_id: String,
    pub expert_name: String,
    pub patient_id: String,
    pub start: String,
    pub end: String,
    pub status: String,
    pub cancel_reason: String,
    pub replaced_by: Option<String>,
    /// For a booked appointment seen with its consultation: when the call's room opens (UTC).
    /// Absent when it opens at once (urgent requests) or the appointment is not booked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_opens_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AppointmentRow {
    id: String,
    consultation_id: String,
    expert_id: String,
    expert_name: String,
    time_zone: String,
    patient_id: String,
    start_at: String,
    end_at: String,
    status: String,
    cancel_reason: String,
    replaced_by: Option<String>,
}

const APPOINTMENT_SELECT: &str =
    "SELECT a.id, a.consultation_id, a.expert_id, u.display_name AS expert_name, e.time_zone,
    a.patient_id, a.start_at, a.end_at, a.status, a.cancel_reason, a.replaced_by
    FROM appointments a JOIN users u ON u.id = a.expert_id JOIN expert_profiles e ON e.user_id = a.expert_id";

impl From<AppointmentRow> for AppointmentView {
    fn from(r: AppointmentRow) -> Self {
        let tz = r.time_zone.parse().unwrap_or(super::slots::DEFAULT_TZ);
        AppointmentView {
            id: r.id,
            consultation_id: r.consultation_id,
            expert_id: r.expert_id,
            expert_name: r.expert_name,
            patient_id: r.patient_id,
            start: local(parse_ts(&r.start_at), tz),
            end: local(parse_ts(&r.end_at), tz),
            status: r.status,
            cancel_reason: r.cancel_reason,
            replaced_by: r.replaced_by,
            room_opens_at: None,
        }
    }
}

pub async fn load_appointment(state: &AppState, id: &str) -> ApiResult<Option<AppointmentView>> {
    let row: Option<AppointmentRow> = sqlx::query_as(&format!("{APPOINTMENT_SELECT} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(row.map(Into::into))
}

/// The booked appointments of a consultation (normally at most one).
pub async fn of_consultation(state: &AppState, consultation_id: &str) -> ApiResult<Vec<AppointmentView>> {
    let rows: Vec<AppointmentRow> =
        sqlx::query_as(&format!("{APPOINTMENT_SELECT} WHERE a.consultation_id = $1 ORDER BY a.start_at"))
            .bind(consultation_id)
            .fetch_all(&state.db.pool)
            .await?;
    let urgency: Option<(String,)> = sqlx::query_as("SELECT urgency FROM consultations WHERE id = $1")
        .bind(consultation_id)
        .fetch_optional(&state.db.pool)
        .await?;
    let urgency = urgency.and_then(|u| u.0.parse().ok()).unwrap_or(crate::consultations::state::Urgency::Routine);
    Ok(rows
        .into_iter()
        .map(|r| {
            let start = parse_ts(&r.start_at);
            let booked = r.status == "booked";
            let mut view = AppointmentView::from(r);
            if booked {
                let opens = super::visit::room_opens_at(urgency, Some(start), state.config.call_open_before_mins);
                view.room_opens_at = opens.map(ts);
            }
            view
        })
        .collect())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    pub consultation_id: String,
    pub expert_id: String,
    pub start: crate::db::ClientTime,
}

/// Books `start` of the expert's schedule for the consultation, atomically; when
/// `replacing` names an appointment, moves that one instead (reschedule).
pub async fn book_slot(
    state: &AppState,
    actor: &AuthUser,
    consultation: &cstore::ConsultationCore,
    expert_id: &str,
    start: DateTime<Utc>,
    replacing: Option<(&str, &Reason)>,
) -> ApiResult<String> {
    let mut tx = state.db.begin_write().await?;
    let locked = sqlx::query("UPDATE expert_profiles SET booking_seq = booking_seq + 1 WHERE user_id = $1")
        .bind(expert_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if locked == 0 {
        return Err(ApiError::not_found("expert"));
    }
    // PostgreSQL: the patient's row lock orders bookings of one patient with different
    // experts. SQLite: the expert update above already took the database's only write lock.
    if state.db.backend == crate::db::Backend::Postgres {
        sqlx::query("UPDATE patients SET booking_seq = booking_seq + 1 WHERE id = $1")
            .bind(&consultation.patient_id)
            .execute(&mut *tx)
            .await?;
    }
    let from = cstore::lock(&mut tx, &consultation.id).await?;

    let skip = replacing.map(|(id, _)| id);
    let cal = load_calendar(&mut tx, expert_id, start, start + Duration::hours(25), skip).await?;
    let slot = super::slots::bookable_slot_at(&cal.rules, &cal.exceptions, &cal.busy, &cal.policy, Utc::now(), start)
        .map_err(slot_error)?;

    // One round trip for the three refusals that depend on other appointments and on the
    // expert's acceptance. An attended appointment keeps its time, for the patient as for the
    // expert (a call that ended before its slot must not free the slot for a second booking
    // of the same patient: the day replayer's no-double-booking check found that) (each statement is a hop to SQLite's worker thread while the
    // writer turn is held).
    let (patient_busy, already, expert_assigned): (i64, i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM appointments WHERE patient_id = $1 AND status IN ('booked', 'attended') AND start_at < $2 AND end_at > $3 AND id <> $4),
            (SELECT COUNT(*) FROM appointments WHERE consultation_id = $5 AND status = 'booked' AND id <> $4),
            (SELECT COUNT(*) FROM consultation_participants WHERE consultation_id = $5 AND user_id = $6 AND role = 'expert' AND status IN ('accepted', 'active'))",
    )
    .bind(&consultation.patient_id)
    .bind(ts(slot.end))
    .bind(ts(slot.start))
    .bind(skip.unwrap_or(""))
    .bind(&consultation.id)
    .bind(expert_id)
    .fetch_one(&mut *tx)
    .await?;
    if patient_busy > 0 {
        return Err(ApiError::conflict(ErrorCode::PatientBusy, "the patient already has an appointment at that time"));
    }
    if already > 0 {
        return Err(ApiError::conflict(
            ErrorCode::AlreadyBooked,
            "the consultation already has an appointment; reschedule it instead",
        ));
    }
    if expert_assigned == 0 {
        return Err(ApiError::unprocessable(
            ErrorCode::ExpertNotAssigned,
            "the expert has not accepted this consultation",
        ));
    }
    cstore::apply_locked(&mut tx, &consultation.id, from, Some(&actor.id), &Action::Schedule).await?;

    let id = new_id();
    let now = now_ts();
    sqlx::query(
        "INSERT INTO appointments (id, consultation_id, expert_id, patient_id, start_at, end_at, status, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'booked', $7, $8)",
    )
    .bind(&id)
    .bind(&consultation.id)
    .bind(expert_id)
    .bind(&consultation.patient_id)
    .bind(ts(slot.start))
    .bind(ts(slot.end))
    .bind(&actor.id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    if let Some((old, reason)) = replacing {
        sqlx::query("UPDATE appointments SET status = 'rescheduled', replaced_by = $1, cancelled_at = $2, cancel_reason = $3 WHERE id = $4")
            .bind(&id)
            .bind(&now)
            .bind(reason.as_str())
            .bind(old)
            .execute(&mut *tx)
            .await?;
    }
    crate::audit::event(actor, if replacing.is_some() { "reschedule" } else { "book" }, "appointment", &id)
        .patient(&consultation.patient_id)
        .record_with(&mut *tx)
        .await?;
    // Read with the transaction's own connection: a second pool connection taken while this
    // one holds SQLite's write lock can wait on connections that wait on this lock.
    let tz = cal.time_zone;
    let recipients: Vec<String> =
        cstore::participant_ids(&mut tx, &consultation.id).await?.into_iter().filter(|u| *u != actor.id).collect();
    let (kind, title) = if replacing.is_some() {
        ("rescheduled", Text::new("appointment_rescheduled"))
    } else {
        ("booked", Text::new("appointment_booked"))
    };
    let stored = notifications::store(
        &mut tx,
        &recipients,
        &Notice::new(kind, title, local(slot.start, tz), Some(&consultation.id)),
    )
    .await?;
    tx.commit().await?;
    notifications::publish(state, &stored);
    Ok(id)
}

async fn book(
    State(state): State<AppState>,
    user: AuthUser,
    Json(b): Json<BookBody>,
) -> ApiResult<(StatusCode, Json<AppointmentView>)> {
    let cid = crate::db::Id(b.consultation_id.clone());
    uuid::Uuid::parse_str(&cid).map_err(|_| ApiError::validation("consultation_id", "not a valid id"))?;
    uuid::Uuid::parse_str(&b.expert_id).map_err(|_| ApiError::validation("expert_id", "not a valid id"))?;
    // The booking transaction records the audit event of this access, with the appointment.
    let Some(c) = cstore::find_visible(&state.db, &user, &cid).await? else {
        return Err(cstore::load_for(&state.db, &user, &cid, "book")
            .await
            .err()
            .unwrap_or_else(|| ApiError::not_found("consultation")));
    };
    if !(c.requested_by == user.id || user.id == b.expert_id || user.role.is_manager()) {
        return Err(ApiError::forbidden("the requesting doctor, the expert or a coordinator books appointments"));
    }
    let start = super::within_horizon(&state.config, "start", b.start.into())?;
    let id = book_slot(&state, &user, &c, &b.expert_id, start, None).await?;
    let view = load_appointment(&state, &id).await?.ok_or_else(|| ApiError::internal("booked appointment vanished"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Loads an appointment and its consultation if the caller may act on it.
async fn appointment_for(
    state: &AppState,
    user: &AuthUser,
    id: &str,
    action: &str,
) -> ApiResult<(AppointmentView, cstore::ConsultationCore)> {
    let Some(a) = load_appointment(state, id).await? else { return Err(ApiError::not_found("appointment")) };
    let c = cstore::load_for(&state.db, user, &a.consultation_id, action)
        .await
        .map_err(|_| ApiError::not_found("appointment"))?;
    Ok((a, c))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    pub start: crate::db::ClientTime,
    pub reason: String,
}

async fn reschedule(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<RescheduleBody>,
) -> ApiResult<Json<AppointmentView>> {
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    let (a, c) = appointment_for(&state, &user, &id, "reschedule").await?;
    let start = super::within_horizon(&state.config, "start", b.start.into())?;
    if a.status != "booked" {
        return Err(ApiError::conflict(ErrorCode::InvalidTransition, format!("the appointment is {}", a.status)));
    }
    let new_id = book_slot(&state, &user, &c, &a.expert_id, start, Some((&a.id, &reason))).await?;
    load_appointment(&state, &new_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::internal("rescheduled appointment vanished"))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub reason: String,
}

async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<CancelBody>,
) -> ApiResult<Json<AppointmentView>> {
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    let (a, c) = appointment_for(&state, &user, &id, "cancel_appointment").await?;
    let mut tx = state.db.begin_write().await?;
    let from = cstore::lock(&mut tx, &c.id).await?;
    let cancelled = sqlx::query("UPDATE appointments SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2 WHERE id = $3 AND status = 'booked'")
        .bind(now_ts())
        .bind(reason.as_str())
        .bind(&a.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if cancelled == 0 {
        return Err(ApiError::conflict(ErrorCode::InvalidTransition, format!("the appointment is {}", a.status)));
    }
    if from == CState::Scheduled {
        cstore::apply_locked(&mut tx, &c.id, from, Some(&user.id), &Action::Unschedule).await?;
    }
    let recipients: Vec<String> =
        cstore::participant_ids(&mut tx, &c.id).await?.into_iter().filter(|u| *u != user.id).collect();
    let stored = notifications::store(
        &mut tx,
        &recipients,
        &Notice::new("cancelled", Text::new("appointment_cancelled"), reason.to_string(), Some(&c.id)),
    )
    .await?;
    tx.commit().await?;
    notifications::publish(&state, &stored);
    load_appointment(&state, &a.id).await?.map(Json).ok_or_else(|| ApiError::not_found("appointment"))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoShowBody {
    /// `expert`, `community_doctor` or `patient`.
    pub participant: String,
}

async fn no_show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<NoShowBody>,
) -> ApiResult<Json<serde_json::Value>> {
    if !matches!(b.participant.as_str(), "expert" | "community_doctor" | "patient") {
        return Err(ApiError::validation("participant", "expert, community_doctor or patient"));
    }
    let (a, c) = appointment_for(&state, &user, &id, "no_show").await?;
    let start = DateTime::parse_from_rfc3339(&a.start).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now());
    if start > Utc::now() {
        return Err(ApiError::conflict(ErrorCode::NotStarted, "a no-show is recorded after the appointment's start"));
    }
    let mut tx = state.db.begin_write().await?;
    let from = cstore::lock(&mut tx, &c.id).await?;
    sqlx::query("INSERT INTO no_shows (id, appointment_id, participant, recorded_by, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(new_id())
        .bind(&a.id)
        .bind(&b.participant)
        .bind(&user.id)
        .bind(now_ts())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE appointments SET status = 'no_show' WHERE id = $1 AND status = 'booked'")
        .bind(&a.id)
        .execute(&mut *tx)
        .await?;
    let state_now = if from == CState::Scheduled {
        cstore::apply_locked(&mut tx, &c.id, from, Some(&user.id), &Action::NoShow).await?
    } else {
        from
    };
    crate::audit::event(&user, "no_show", "appointment", &a.id)
        .patient(&c.patient_id)
        .detail(b.participant.clone())
        .record_with(&mut *tx)
        .await?;
    tx.commit().await?;
    let recorded: Vec<(String,)> =
        sqlx::query_as("SELECT participant FROM no_shows WHERE appointment_id = $1 ORDER BY participant")
            .bind(&a.id)
            .fetch_all(&state.db.pool)
            .await?;
    Ok(Json(serde_json::json!({
        "appointment_id": a.id,
        "no_shows": recorded.into_iter().map(|r| r.0).collect::<Vec<_>>(),
        "consultation_state": state_now.as_str(),
    })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppointmentFilter {
    pub from: Option<crate::db::ClientTime>,
    pub to: Option<crate::db::ClientTime>,
    pub status: Option<String>,
}

/// The caller's appointments: as the expert, or as a participant of the consultation.
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<AppointmentFilter>,
) -> ApiResult<Json<crate::api::Page<AppointmentView>>> {
    let from = f.from.map(|t| ts(t.into())).unwrap_or_default();
    let to = f.to.map(|t| ts(t.into())).unwrap_or_else(|| "9999".into());
    let rows: Vec<AppointmentRow> = sqlx::query_as(&format!(
        "{APPOINTMENT_SELECT} WHERE (a.expert_id = $1 OR a.consultation_id IN (SELECT consultation_id FROM consultation_participants WHERE user_id = $1 AND status <> 'declined'))
           AND a.start_at >= $2 AND a.start_at < $3 AND ($4 = '' OR a.status = $4) ORDER BY a.start_at LIMIT 500"
    ))
    .bind(&user.id)
    .bind(from)
    .bind(to)
    .bind(f.status.unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let mut tx = state.db.begin_write().await?;
    for r in &rows {
        crate::audit::event(&user, "list", "appointment", &r.id).patient(&r.patient_id).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Json(crate::api::Page { items: rows.into_iter().map(Into::into).collect(), next: None }))
}

async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<AppointmentView>> {
    let (a, _) = appointment_for(&state, &user, &id, "read_appointment").await?;
    Ok(Json(a))
}

pub fn routes() -> Routes {
    Routes::new("appointments")
        .post("/api/v1/appointments", "Book an expert's free slot for a consultation (201, or 409 slot_taken)", book)
        .body::<BookBody>()
        .json::<AppointmentView>(201)
        .errors(&[404, 409])
        .get("/api/v1/appointments", "The caller's appointments", list)
        .query::<AppointmentFilter>()
        .json::<crate::api::Page<AppointmentView>>(200)
        .get("/api/v1/appointments/{id}", "One appointment", get_one)
        .json::<AppointmentView>(200)
        .post(
            "/api/v1/appointments/{id}/reschedule",
            "Move an appointment to another free slot, with a reason",
            reschedule,
        )
        .body::<RescheduleBody>()
        .json::<AppointmentView>(200)
        .errors(&[409])
        .post("/api/v1/appointments/{id}/cancel", "Cancel an appointment with a reason", cancel)
        .body::<CancelBody>()
        .json::<AppointmentView>(200)
        .errors(&[409])
        .post("/api/v1/appointments/{id}/no-show", "Record that a participant did not show up", no_show)
        .body::<NoShowBody>()
        .json::<serde_json::Value>(200)
        .errors(&[409])
}

/// Sends the reminders that are due at `now`: 24 hours and 15 minutes before each booked
/// appointment. A reminder is recorded in `reminders_sent` in the same transaction as its
/// notifications, so a restart never sends one twice. Returns how many were sent.
pub async fn send_due_reminders(state: &AppState, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut sent = 0;
    for (kind, lead, floor) in
        [("24h", Duration::hours(24), Duration::minutes(15)), ("15m", Duration::minutes(15), Duration::zero())]
    {
        let due: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.id, a.consultation_id, a.start_at FROM appointments a
             WHERE a.status = 'booked' AND a.start_at > $1 AND a.start_at <= $2
               AND NOT EXISTS (SELECT 1 FROM reminders_sent r WHERE r.appointment_id = a.id AND r.kind = $3)
             ORDER BY a.start_at LIMIT 500",
        )
        .bind(ts(now + floor))
        .bind(ts(now + lead))
        .bind(kind)
        .fetch_all(&state.db.pool)
        .await?;
        for (appointment, consultation, start) in due {
            let mut tx = state.db.begin_write().await?;
            let inserted =
                sqlx::query("INSERT INTO reminders_sent (appointment_id, kind, sent_at) VALUES ($1, $2, $3)")
                    .bind(&appointment)
                    .bind(kind)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
            let users = cstore::participant_ids(&mut tx, &consultation).await?;
            let title = Text::new(if kind == "24h" { "reminder_24h" } else { "reminder_15m" });
            let stored =
                notifications::store(&mut tx, &users, &Notice::new("reminder", title, start, Some(&consultation)))
                    .await?;
            tx.commit().await?;
            notifications::publish(state, &stored);
            sent += 1;
        }
    }
    Ok(sent)
}

/// Runs [`send_due_reminders`] every 30 seconds until the process ends.
pub fn spawn_reminder_task(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Err(e) = send_due_reminders(&state, Utc::now()).await {
                tracing::warn!(error = %e, "sending reminders failed; retrying on the next tick");
            }
        }
    });
}
