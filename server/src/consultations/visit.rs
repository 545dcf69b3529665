//! How a consultation, its appointment and its call agree (see docs/workflow.md, "Call,
//! appointment and consultation"): when a booked call's room opens, whether a call is live
//! (so that signing the opinion does not close a consultation whose call goes on), and
//! whether the appointment was attended, derived from the room's timeline when the
//! consultation completes. The rules are pure functions; the database helpers below only
//! feed them.

use crate::consultations::state::{Action, Mode, State, Urgency};
use crate::db::{parse_ts, ts};
use crate::error::ApiResult;
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
pub fn attendance(events: &[RoomEvent]) -> &'static str {
    let entered = |roles: &[&str]| {
        events.iter().any(|e| roles.contains(&e.role.as_str()) && matches!(e.kind.as_str(), "joined" | "admitted"))
    };
    if entered(&["expert"]) && entered(&["requester", "patient"]) {
        "attended"
    } else {
        "no_show"
    }
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
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT participant_id, room_role, kind FROM room_events WHERE consultation_id = $1 AND at >= $2 ORDER BY at, id",
    )
    .bind(id)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(participant, role, kind)| RoomEvent { participant, role, kind }).collect())
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
    sqlx::query("UPDATE appointments SET status = $1 WHERE consultation_id = $2 AND status = 'booked'")
        .bind(outcome)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// When the room of consultation `id` opens (see [`room_opens_at`]), from its urgency and
/// its booked appointment.
pub async fn opens_at(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    urgency: &str,
    open_before_mins: u32,
) -> ApiResult<Option<DateTime<Utc>>> {
    let start: Option<(String,)> = sqlx::query_as(
        "SELECT start_at FROM appointments WHERE consultation_id = $1 AND status = 'booked' ORDER BY start_at LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let urgency = urgency.parse().unwrap_or(Urgency::Routine);
    Ok(room_opens_at(urgency, start.map(|s| parse_ts(&s.0)), open_before_mins))
}

/// Ends the call of consultation `id` for everyone (a doctor's "end for everyone"): moves an
/// in-progress consultation on (see [`on_call_ended`]); its appointment closes with it when
/// it completes.
pub async fn end_call(db: &crate::db::Db, id: &str, by_user: &str) -> ApiResult<()> {
    let mut tx = db.begin_write().await?;
    let from = crate::consultations::store::lock(&mut tx, id).await?;
    let mode: Option<(String,)> =
        sqlx::query_as("SELECT mode FROM consultations WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
    let kind = if mode.is_some_and(|m| m.0 == Mode::Mdt.as_str()) { "joint" } else { "individual" };
    let signed: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM opinions WHERE consultation_id = $1 AND kind = $2 AND status = 'signed' LIMIT 1",
    )
    .bind(id)
    .bind(kind)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(action) = on_call_ended(from, signed.is_some()) {
        crate::consultations::store::apply_locked(&mut tx, id, from, Some(by_user), &action).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
        assert_eq!(attendance(&[]), "no_show");
        let expert_alone = [ev("w", "expert", "joined"), ev("w", "expert", "left")];
        assert_eq!(attendance(&expert_alone), "no_show");
        let waited_only = [ev("w", "expert", "joined"), ev("z", "patient", "waiting"), ev("z", "patient", "left")];
        assert_eq!(attendance(&waited_only), "no_show", "waiting in the lobby is not attending");
        let with_patient = [ev("w", "expert", "joined"), ev("z", "patient", "waiting"), ev("z", "patient", "admitted")];
        assert_eq!(attendance(&with_patient), "attended");
        let with_doctor = [ev("l", "requester", "joined"), ev("w", "expert", "joined")];
        assert_eq!(attendance(&with_doctor), "attended");
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
