//! How a consultation, its appointment and its call agree (see docs/workflow.md, "Call,
//! appointment and consultation"): when a booked call's room opens, whether a call is live
//! (so that signing the opinion does not close a consultation whose call goes on), and
//! whether the appointment was attended, derived from the room's timeline when the
//! consultation completes, and how a consultation shows its appointments. The rules are pure
//! functions; the helpers below only feed them from [`super::store`].
//!
//! `scheduling::visit` re-exports this module under its former name.

use super::state::{Action, Mode, State, Urgency};
use super::store::{self, AppointmentRow};
use super::AppointmentView;
use crate::db::{parse_ts, ts, Db};
use crate::domain::consultation::AppointmentStatus;
use crate::domain::time::{local, DEFAULT_TZ};
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Duration, Utc};

/// When the room of a consultation opens: `None` means it is open now. A routine request's
/// room opens `open_before_mins` before its booked slot; urgent and emergency requests, and a
/// consultation without a booked slot (already in progress, or a review), open at once.
pub fn room_opens_at(
    urgency: Urgency,
    booked_start: Option<DateTime<Utc>>,
    open_before_mins: u32,
) -> Option<DateTime<Utc>> {
    if urgency != Urgency::Routine {
        return None;
    }
    booked_start.map(|start| start - Duration::minutes(i64::from(open_before_mins)))
}

/// Whether the room is open at `now`.
pub fn room_open(opens_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    opens_at.is_none_or(|at| now >= at)
}

/// One row of the room timeline, as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    pub participant: String,
    pub role: String,
    pub kind: String,
}

/// Whether someone is in the call now: a participant whose latest timeline event puts them in
/// the room (joined, admitted, or disconnected/reconnected while keeping the seat). Waiting
/// in the lobby is not being in the call.
pub fn call_live(events: &[RoomEvent]) -> bool {
    let mut last: Vec<(&str, &str)> = Vec::new();
    for e in events {
        match last.iter_mut().find(|(p, _)| *p == e.participant) {
            Some(slot) => slot.1 = &e.kind,
            None => last.push((&e.participant, &e.kind)),
        }
    }
    last.iter().any(|(_, kind)| matches!(*kind, "joined" | "admitted" | "disconnected" | "reconnected"))
}

/// What became of a booked appointment when its consultation completed: `attended` when an
/// expert and the clinic's side (the requesting doctor or the patient) were in the room,
/// otherwise `no_show`.
pub fn attendance(events: &[RoomEvent]) -> AppointmentStatus {
    let entered = |roles: &[&str]| {
        events.iter().any(|e| roles.contains(&e.role.as_str()) && matches!(e.kind.as_str(), "joined" | "admitted"))
    };
    if entered(&["expert"]) && entered(&["requester", "patient"]) {
        AppointmentStatus::Attended
    } else {
        AppointmentStatus::NoShow
    }
}

/// Why a participant may not be recorded as a no-show of an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoShowRefused {
    /// Before this time (the start and the grace given to someone late).
    TooEarly(DateTime<Utc>),
    /// They came: joined the call, or waited in its lobby.
    Came,
}

/// The room role of a no-show's `participant` (`expert`, `community_doctor`, `patient`).
pub fn room_role_of(participant: &str) -> Option<&'static str> {
    match participant {
        "expert" => Some("expert"),
        "community_doctor" => Some("requester"),
        "patient" => Some("patient"),
        _ => None,
    }
}

/// Whether `participant` may be recorded as a no-show, at `now`, of an appointment starting
/// at `start`, given the room's timeline since its room opened: not before `after_mins` past
/// the start (a few minutes late is not a no-show), and never someone the timeline shows
/// came (in the call, or waiting in its lobby to be admitted).
pub fn no_show_refusal(
    participant: &str,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    after_mins: u32,
    events: &[RoomEvent],
) -> Option<NoShowRefused> {
    let from = start + Duration::minutes(i64::from(after_mins));
    if now < from {
        return Some(NoShowRefused::TooEarly(from));
    }
    let role = room_role_of(participant)?;
    let came = events
        .iter()
        .any(|e| e.role == role && matches!(e.kind.as_str(), "waiting" | "joined" | "admitted" | "reconnected"));
    came.then_some(NoShowRefused::Came)
}

/// What ending the call for everyone does to a consultation in `from`: completes it when the
/// opinion that completes it is already signed, otherwise the opinion is awaited. `None`: the
/// consultation was not in a call (nothing to change).
pub fn on_call_ended(from: State, completing_opinion_signed: bool) -> Option<Action> {
    match from {
        State::InProgress if completing_opinion_signed => Some(Action::Complete),
        State::InProgress => Some(Action::EndCall),
        _ => None,
    }
}

/// Timeline rows newer than this are read: a room whose instance died without recording the
/// leaves does not count as a live call for ever.
const LIVE_HORIZON_HOURS: i64 = 12;

/// The room timeline of a consultation since `since`, in order.
pub async fn timeline(conn: &mut sqlx::AnyConnection, id: &str, since: &str) -> ApiResult<Vec<RoomEvent>> {
    store::room_events(conn, id, since).await
}

/// Whether the consultation's call is live now (see [`call_live`]).
pub async fn call_is_live(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<bool> {
    let since = ts(Utc::now() - Duration::hours(LIVE_HORIZON_HOURS));
    Ok(call_live(&timeline(conn, id, &since).await?))
}

/// Closes the booked appointments of a consultation that has just completed, inside the
/// transaction that completed it: attended or no-show from the whole room timeline. The slot
/// of an attended appointment stays taken (it was used).
pub async fn close_appointments(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<()> {
    let outcome = attendance(&timeline(conn, id, "").await?);
    store::close_booked_appointments(conn, id, outcome).await
}

/// When the room of consultation `id` opens (see [`room_opens_at`]), from its urgency (its
/// stored name) and its booked appointment.
pub async fn opens_at(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    urgency: &str,
    open_before_mins: u32,
) -> ApiResult<Option<DateTime<Utc>>> {
    let start = store::booked_start(conn, id).await?;
    let urgency: Urgency = urgency.parse().map_err(ApiError::internal)?;
    Ok(room_opens_at(urgency, start.map(|s| parse_ts(&s)), open_before_mins))
}

/// Ends the call of consultation `id` for everyone (a doctor's "end for everyone"): moves an
/// in-progress consultation on (see [`on_call_ended`]); its appointment closes with it when
/// it completes.
pub async fn end_call(db: &Db, id: &str, by_user: &str) -> ApiResult<()> {
    let mut tx = db.begin_write().await?;
    let from = store::lock(&mut tx, id).await?;
    let kind = if store::mode_of(&mut tx, id).await? == Some(Mode::Mdt) { "joint" } else { "individual" };
    let signed = store::opinion_signed(&mut tx, id, kind).await?;
    if let Some(action) = on_call_ended(from, signed) {
        store::apply_locked(&mut tx, id, from, Some(by_user), &action).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An appointment as the API shows it: times in the expert's zone.
pub fn appointment_view(r: AppointmentRow) -> AppointmentView {
    let tz = r.time_zone.parse().unwrap_or(DEFAULT_TZ);
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
        no_show_from: None,
    }
}

/// The appointments of a consultation (normally at most one booked), a booked one with when
/// its room opens (see [`room_opens_at`]) and from when a no-show may be recorded (see
/// [`no_show_refusal`]).
pub async fn appointments_of(
    db: &Db,
    consultation_id: &str,
    open_before_mins: u32,
    no_show_after_mins: u32,
) -> ApiResult<Vec<AppointmentView>> {
    let rows = store::appointments_of(db, consultation_id).await?;
    let urgency = store::urgency_of(db, consultation_id).await?.unwrap_or(Urgency::Routine);
    Ok(rows
        .into_iter()
        .map(|r| {
            let start = parse_ts(&r.start_at);
            let booked = r.status == AppointmentStatus::Booked;
            let mut view = appointment_view(r);
            if booked {
                view.room_opens_at = room_opens_at(urgency, Some(start), open_before_mins).map(ts);
                view.no_show_from = Some(ts(start + Duration::minutes(i64::from(no_show_after_mins))));
            }
            view
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_no_show_is_recorded_after_the_grace_and_never_of_someone_who_came() {
        let start = DateTime::parse_from_rfc3339("2026-12-07T01:00:00Z").unwrap().with_timezone(&Utc);
        let at = |m: i64| start + Duration::minutes(m);
        let ev = |role: &str, kind: &str| RoomEvent {
            participant: format!("p-{role}"),
            role: role.into(),
            kind: kind.into(),
        };
        assert_eq!(no_show_refusal("patient", start, at(9), 10, &[]), Some(NoShowRefused::TooEarly(at(10))));
        assert_eq!(no_show_refusal("patient", start, at(10), 10, &[]), None);
        // The expert in the call and the doctor there: the patient who never came is a no-show.
        let events = [ev("expert", "joined"), ev("requester", "joined"), ev("requester", "left")];
        assert_eq!(no_show_refusal("patient", start, at(30), 10, &events), None);
        assert_eq!(no_show_refusal("expert", start, at(30), 10, &events), Some(NoShowRefused::Came));
        assert_eq!(no_show_refusal("community_doctor", start, at(30), 10, &events), Some(NoShowRefused::Came));
        // Waiting in the lobby, never admitted, is having come.
        assert_eq!(
            no_show_refusal("patient", start, at(30), 10, &[ev("patient", "waiting")]),
            Some(NoShowRefused::Came)
        );
    }

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_ts(s)
    }

    fn ev(participant: &str, role: &str, kind: &str) -> RoomEvent {
        RoomEvent { participant: participant.into(), role: role.into(), kind: kind.into() }
    }

    #[test]
    fn a_routine_room_opens_the_configured_minutes_before_the_slot() {
        let start = t("2026-12-07T01:00:00Z");
        let opens = room_opens_at(Urgency::Routine, Some(start), 15);
        assert_eq!(opens, Some(t("2026-12-07T00:45:00Z")));
        assert!(!room_open(opens, t("2026-12-07T00:44:59Z")));
        assert!(room_open(opens, t("2026-12-07T00:45:00Z")));
        assert!(room_open(opens, t("2026-12-07T03:00:00Z")), "a late arrival still gets in");
        assert_eq!(room_opens_at(Urgency::Routine, Some(start), 0), Some(start));
    }

    #[test]
    fn urgent_requests_and_rooms_without_a_booked_slot_are_open_at_once() {
        let start = Some(t("2026-12-09T01:00:00Z"));
        assert_eq!(room_opens_at(Urgency::Urgent, start, 15), None);
        assert_eq!(room_opens_at(Urgency::Emergency, start, 15), None);
        assert_eq!(room_opens_at(Urgency::Routine, None, 15), None);
        assert!(room_open(None, t("2020-01-01T00:00:00Z")));
    }

    #[test]
    fn a_call_is_live_while_someone_holds_a_seat_in_the_room() {
        assert!(!call_live(&[]));
        let mut events = vec![ev("a", "requester", "joined")];
        assert!(call_live(&events));
        events.push(ev("b", "patient", "waiting"));
        events.push(ev("a", "requester", "disconnected"));
        assert!(call_live(&events), "a lost seat is kept for the resume window");
        events.push(ev("a", "requester", "left"));
        assert!(!call_live(&events), "the patient waiting in the lobby is no call");
        events.push(ev("b", "patient", "admitted"));
        assert!(call_live(&events));
        events.push(ev("b", "patient", "removed"));
        assert!(!call_live(&events));
    }

    #[test]
    fn an_appointment_is_attended_when_the_expert_met_the_clinic_side() {
        assert_eq!(attendance(&[]), AppointmentStatus::NoShow);
        let expert_alone = [ev("w", "expert", "joined"), ev("w", "expert", "left")];
        assert_eq!(attendance(&expert_alone), AppointmentStatus::NoShow);
        let waited_only = [ev("w", "expert", "joined"), ev("z", "patient", "waiting"), ev("z", "patient", "left")];
        assert_eq!(attendance(&waited_only), AppointmentStatus::NoShow, "waiting in the lobby is not attending");
        let with_patient = [ev("w", "expert", "joined"), ev("z", "patient", "waiting"), ev("z", "patient", "admitted")];
        assert_eq!(attendance(&with_patient), AppointmentStatus::Attended);
        let with_doctor = [ev("l", "requester", "joined"), ev("w", "expert", "joined")];
        assert_eq!(attendance(&with_doctor), AppointmentStatus::Attended);
    }

    #[test]
    fn ending_the_call_completes_only_with_the_opinion_signed() {
        assert_eq!(on_call_ended(State::InProgress, true), Some(Action::Complete));
        assert_eq!(on_call_ended(State::InProgress, false), Some(Action::EndCall));
        assert_eq!(on_call_ended(State::Scheduled, true), None);
        assert_eq!(on_call_ended(State::Completed, true), None);
        assert_eq!(on_call_ended(State::AwaitingOpinion, false), None);
    }
}
