//! Appointments: atomic booking of an expert's free slot for a consultation, reschedule,
//! cancel with a reason, and no-shows per participant; reminders before each appointment.
//!
//! Booking is serialised per expert and per patient: the booking transaction's first
//! statements bump `booking_seq` on the expert's profile and the patient's record, which
//! takes their row locks (PostgreSQL) or the database write lock (SQLite). Within that lock
//! the slot is checked against every booked appointment, so two bookings can never overlap,
//! whatever their slot lengths. Before that, bookings of one expert by this instance queue
//! in memory ([`crate::db::keyed`]), so that a burst of them waits without holding the
//! pool's connections.

use super::availability::slot_error;
use super::slots::Interval;
use super::store::{self, load_calendar};
use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::consultations::state::{Action, Mode, Reason, State as CState};
use crate::consultations::store as cstore;
use crate::consultations::visit::{appointment_view, no_show_refusal, NoShowRefused};
pub use crate::consultations::AppointmentView;
use crate::db::{new_id, now_ts, ts, Db, Id};
use crate::domain::consultation::AppointmentStatus;
use crate::domain::time::local;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::Notification;
use crate::notifications::{self, Notice, NotificationHub, Text};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// One appointment as the API shows it.
pub async fn load_appointment(db: &Db, id: &str) -> ApiResult<Option<AppointmentView>> {
    Ok(cstore::appointment(db, id).await?.map(appointment_view))
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
    db: &Db,
    hub: &NotificationHub,
    actor: &AuthUser,
    consultation: &cstore::ConsultationCore,
    expert_id: &str,
    start: DateTime<Utc>,
    replacing: Option<(&str, &Reason)>,
) -> ApiResult<String> {
    // An MDT meets with every expert who accepted it: the appointment is booked with one, and
    // holds the others' calendars, which must be free then too.
    let others = if consultation.mode == Mode::Mdt {
        let mut conn = db.pool.acquire().await?;
        store::other_mdt_experts(&mut conn, &consultation.id, expert_id).await?
    } else {
        Vec::new()
    };
    // This instance's bookings of each expert wait for each other here, holding no pooled
    // connection; the row locks below then order them with other instances' bookings. Several
    // experts are taken in id order, so two MDT bookings never wait for each other crosswise.
    let mut experts: Vec<&str> = others.iter().map(|(e, _)| e.as_str()).chain([expert_id]).collect();
    experts.sort_unstable();
    let mut turns = Vec::with_capacity(experts.len());
    for e in &experts {
        turns.push(db.bookings.lock(e).await);
    }
    let mut tx = db.begin_write().await?;
    let from = lock_for_booking(&mut tx, db.backend, consultation, &experts, expert_id).await?;
    let skip = replacing.map(|(id, _)| id);
    let (slot, tz) = bookable_slot(&mut tx, consultation, expert_id, start, skip).await?;
    for (other, name) in &others {
        if store::expert_busy_during(&mut tx, other, slot, skip).await? {
            return Err(ApiError::conflict(
                ErrorCode::SlotTaken,
                format!("{name}, an expert of this MDT, has another appointment at that time"),
            ));
        }
    }
    cstore::apply_locked(&mut tx, &consultation.id, from, Some(&actor.id), &Action::Schedule).await?;
    let id = store_booking(&mut tx, actor, consultation, expert_id, slot, replacing).await?;
    for (other, _) in &others {
        store::hold_for(&mut tx, &id, other, slot).await?;
    }
    let stored = notify_booked(&mut tx, actor, &consultation.id, local(slot.start, tz), replacing.is_some()).await?;
    tx.commit().await?;
    notifications::publish(hub, &stored);
    Ok(id)
}

/// The booking transaction's first statements: the bookings of the `experts` whose calendars
/// it takes, in id order (404 `expert` when the one booked, `expert_id`, has no profile), then
/// on PostgreSQL the patient's (which orders bookings of one patient with different experts;
/// on SQLite the expert's update already took the database's only write lock), then the
/// consultation, whose state it answers.
async fn lock_for_booking(
    conn: &mut sqlx::AnyConnection,
    backend: crate::db::Backend,
    consultation: &cstore::ConsultationCore,
    experts: &[&str],
    expert_id: &str,
) -> ApiResult<CState> {
    for e in experts {
        if !store::lock_expert_bookings(conn, e).await? && *e == expert_id {
            return Err(ApiError::not_found("expert"));
        }
    }
    if backend == crate::db::Backend::Postgres {
        store::lock_patient_bookings(conn, &consultation.patient_id).await?;
    }
    cstore::lock(conn, &consultation.id).await
}

/// The slot at `start` if the expert's calendar offers it and nothing else stands in the way
/// (the patient's other appointments, an appointment the consultation already has, an
/// expert who has not accepted), with the expert's time zone. `skip`: the appointment being
/// moved.
async fn bookable_slot(
    conn: &mut sqlx::AnyConnection,
    consultation: &cstore::ConsultationCore,
    expert_id: &str,
    start: DateTime<Utc>,
    skip: Option<&str>,
) -> ApiResult<(Interval, Tz)> {
    let cal = load_calendar(conn, expert_id, start, start + Duration::hours(25), skip).await?;
    let slot = super::slots::bookable_slot_at(&cal.rules, &cal.exceptions, &cal.busy, &cal.policy, Utc::now(), start)
        .map_err(slot_error)?;
    let conflicts =
        store::booking_conflicts(conn, &consultation.id, &consultation.patient_id, expert_id, slot, skip).await?;
    if conflicts.patient_busy > 0 {
        return Err(ApiError::conflict(ErrorCode::PatientBusy, "the patient already has an appointment at that time"));
    }
    if conflicts.already_booked > 0 {
        return Err(ApiError::conflict(
            ErrorCode::AlreadyBooked,
            "the consultation already has an appointment; reschedule it instead",
        ));
    }
    if conflicts.expert_assigned == 0 {
        return Err(ApiError::unprocessable(
            ErrorCode::ExpertNotAssigned,
            "the expert has not accepted this consultation",
        ));
    }
    Ok((slot, cal.time_zone))
}

/// Stores the appointment (and the one it replaces as rescheduled) with its audit event;
/// answers its id.
async fn store_booking(
    conn: &mut sqlx::AnyConnection,
    actor: &AuthUser,
    consultation: &cstore::ConsultationCore,
    expert_id: &str,
    slot: Interval,
    replacing: Option<(&str, &Reason)>,
) -> ApiResult<String> {
    let id = new_id();
    let now = now_ts();
    let new = store::NewAppointment {
        id: &id,
        consultation_id: &consultation.id,
        expert_id,
        patient_id: &consultation.patient_id,
        slot,
        created_by: &actor.id,
        now: &now,
    };
    store::insert_appointment(conn, &new).await?;
    if let Some((old, reason)) = replacing {
        store::mark_rescheduled(conn, old, &id, &now, reason.as_str()).await?;
    }
    crate::audit::event(actor, if replacing.is_some() { "reschedule" } else { "book" }, "appointment", &id)
        .patient(&consultation.patient_id)
        .record_with(&mut *conn)
        .await?;
    Ok(id)
}

/// Stores the booked (or rescheduled) notices of the consultation's other participants,
/// for the caller to publish once committed. Read with the transaction's own connection: a
/// second pool connection taken while this one holds SQLite's write lock can wait on
/// connections that wait on this lock.
async fn notify_booked(
    conn: &mut sqlx::AnyConnection,
    actor: &AuthUser,
    consultation_id: &str,
    when: String,
    rescheduled: bool,
) -> ApiResult<Vec<(String, Notification)>> {
    let recipients: Vec<String> =
        cstore::participant_ids(conn, consultation_id).await?.into_iter().filter(|u| *u != actor.id).collect();
    let (kind, title) = if rescheduled {
        ("rescheduled", Text::new("appointment_rescheduled"))
    } else {
        ("booked", Text::new("appointment_booked"))
    };
    notifications::store(conn, &recipients, &Notice::new(kind, title, when, Some(consultation_id))).await
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
        return Err(cstore::load_to_act(&state.db, &user, &cid, "book")
            .await
            .err()
            .unwrap_or_else(|| ApiError::not_found("consultation")));
    };
    let done = async {
        if !(c.requested_by == user.id || user.id == b.expert_id || user.role.is_manager()) {
            return Err(ApiError::forbidden("the requesting doctor, the expert or a coordinator books appointments"));
        }
        let start = super::within_horizon(&state.config, "start", b.start.into())?;
        book_slot(&state.db, &state.notifications, &user, &c, &b.expert_id, start, None).await
    };
    let id = cstore::acted(&user, &c, "book").if_refused(&state.db, done.await).await?;
    let view =
        load_appointment(&state.db, &id).await?.ok_or_else(|| ApiError::internal("booked appointment vanished"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Loads an appointment and its consultation if the caller may change it (an expert of the
/// consultation once they have accepted it). The change records its own outcome
/// ([`cstore::load_to_act`]).
async fn appointment_to_change(
    db: &Db,
    user: &AuthUser,
    id: &str,
    action: &str,
) -> ApiResult<(AppointmentView, cstore::ConsultationCore)> {
    let (a, c) = appointment_for(db, user, id, action, false).await?;
    cstore::require_answered(db, &c.id, user, action).await?;
    Ok((a, c))
}

/// Loads an appointment and its consultation if the caller may see it; `reading`: the access
/// is audited as a read ([`cstore::load_for`]), else the action audits itself.
async fn appointment_for(
    db: &Db,
    user: &AuthUser,
    id: &str,
    action: &str,
    reading: bool,
) -> ApiResult<(AppointmentView, cstore::ConsultationCore)> {
    let Some(a) = load_appointment(db, id).await? else { return Err(ApiError::not_found("appointment")) };
    let c = if reading {
        cstore::load_for(db, user, &a.consultation_id, action).await
    } else {
        cstore::load_to_act(db, user, &a.consultation_id, action).await
    };
    Ok((a, c.map_err(|_| ApiError::not_found("appointment"))?))
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
    let (a, c) = appointment_to_change(&state.db, &user, &id, "reschedule").await?;
    let done = async {
        let start = super::within_horizon(&state.config, "start", b.start.into())?;
        if a.status != AppointmentStatus::Booked {
            return Err(ApiError::conflict(ErrorCode::InvalidTransition, format!("the appointment is {}", a.status)));
        }
        book_slot(&state.db, &state.notifications, &user, &c, &a.expert_id, start, Some((&a.id, &reason))).await
    };
    let new_id = cstore::acted(&user, &c, "reschedule").if_refused(&state.db, done.await).await?;
    load_appointment(&state.db, &new_id)
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
    let (a, c) = appointment_to_change(&state.db, &user, &id, "cancel_appointment").await?;
    let done = async {
        let mut tx = crate::audit::begin(&state.db).await?;
        let from = cstore::lock(&mut tx, &c.id).await?;
        if !store::cancel_appointment(&mut tx, &a.id, reason.as_str()).await? {
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
        tx.audit(
            crate::audit::event(&user, "cancel_appointment", "appointment", &a.id)
                .patient(&c.patient_id)
                .detail(reason.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(stored)
    };
    let stored = cstore::acted(&user, &c, "cancel_appointment").if_refused(&state.db, done.await).await?;
    notifications::publish(&state.notifications, &stored);
    load_appointment(&state.db, &a.id).await?.map(Json).ok_or_else(|| ApiError::not_found("appointment"))
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
    let (a, c) = appointment_to_change(&state.db, &user, &id, "no_show").await?;
    let done = async {
        let start =
            DateTime::parse_from_rfc3339(&a.start).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now());
        let mut tx = state.db.begin_write().await?;
        let from = cstore::lock(&mut tx, &c.id).await?;
        // The room's timeline since it opened for this appointment says who came.
        let opened = start - chrono::Duration::minutes(i64::from(state.config.call_open_before_mins));
        let events = crate::consultations::visit::timeline(&mut tx, &c.id, &crate::db::ts(opened)).await?;
        let after = state.config.no_show_after_mins;
        match no_show_refusal(&b.participant, start, Utc::now(), after, &events) {
            Some(NoShowRefused::TooEarly(_)) => {
                return Err(ApiError::conflict(
                    ErrorCode::NotStarted,
                    format!("a no-show is recorded from {after} minutes after the appointment's start"),
                ))
            }
            Some(NoShowRefused::Came) => return Err(ApiError::conflict(
                ErrorCode::ParticipantCame,
                "the room's timeline shows this participant came (in the call or waiting in its lobby): not a no-show",
            )),
            None => {}
        }
        store::record_no_show(&mut tx, &a.id, &b.participant, &user.id).await?;
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
        Ok(state_now)
    };
    let state_now = cstore::acted(&user, &c, "no_show").if_refused(&state.db, done.await).await?;
    let recorded = store::no_shows_of(&state.db, &a.id).await?;
    Ok(Json(serde_json::json!({
        "appointment_id": a.id,
        "no_shows": recorded,
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
    let query = store::AppointmentQuery {
        start_from: f.from.map(|t| ts(t.into())),
        start_before: f.to.map(|t| ts(t.into())),
        // An empty status filters nothing, as an absent one.
        status: f.status.filter(|s| !s.is_empty()),
    };
    let rows = store::appointments_of_user(&state.db, &user.id, &query).await?;
    let events = rows.iter().map(|r| crate::audit::event(&user, "list", "appointment", &r.id).patient(&r.patient_id));
    crate::audit::record_all(&state.db, events.collect()).await?;
    Ok(Json(crate::api::Page { items: rows.into_iter().map(appointment_view).collect(), next: None }))
}

async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<AppointmentView>> {
    let (a, _) = appointment_for(&state.db, &user, &id, "read_appointment", true).await?;
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
pub async fn send_due_reminders(db: &Db, hub: &NotificationHub, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut sent = 0;
    for (kind, lead, floor, title) in [
        ("24h", Duration::hours(24), Duration::minutes(15), "reminder_24h"),
        ("15m", Duration::minutes(15), Duration::zero(), "reminder_15m"),
    ] {
        let due = store::due_reminders(db, kind, &ts(now + floor), &ts(now + lead)).await?;
        for (appointment, consultation, start) in due {
            let mut tx = db.begin_write().await?;
            if !store::record_reminder(&mut tx, &appointment, kind, &ts(now)).await? {
                continue;
            }
            let users = cstore::participant_ids(&mut tx, &consultation).await?;
            let stored = notifications::store(
                &mut tx,
                &users,
                &Notice::new("reminder", Text::new(title), start, Some(&consultation)),
            )
            .await?;
            tx.commit().await?;
            notifications::publish(hub, &stored);
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
            if let Err(e) = send_due_reminders(&state.db, &state.notifications, Utc::now()).await {
                tracing::warn!(error = %e, "sending reminders failed; retrying on the next tick");
            }
        }
    });
}
