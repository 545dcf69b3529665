//! All of signaling's SQL: seats (stored when a ticket is redeemed, rotated at each resume,
//! kept, swept), the room recorder's chat lines
//! and timeline, and the one read a join makes.

use super::room::TimelineEntry;
use super::tickets::{Redeemed, Redemption, Rotation, Seat, SeatResumed, Ticket};
use crate::auth::accounts::AccountState;
use crate::auth::AuthUser;
use crate::db::filter::Filtered;
use crate::db::{batch, ts, Db};
use crate::error::ApiResult;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;

/// The timeline says the holder of a ticket is admitted: the latest of its `admitted`,
/// `removed` and `left` (call ended) entries in the consultation's room is an admission.
/// Only patients are looked up (doctors enter directly). Written by the room's recorder.
const ADMITTED: &str = "CASE WHEN t.room_role = 'patient' THEN
     (SELECT e.kind FROM room_events e
       WHERE e.consultation_id = t.consultation_id AND e.user_id = t.user_id
         AND (e.kind IN ('admitted', 'removed') OR (e.kind = 'left' AND e.detail = 'ended'))
       ORDER BY e.at DESC, e.id DESC LIMIT 1)
   END";

/// SQL: the device `column` names is not revoked and its organisation is active.
fn device_active(column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM devices d JOIN organisations o ON o.id = d.organisation_id
                  WHERE d.id = {column} AND d.revoked_at IS NULL AND o.active = 1)"
    )
}

/// Where a seated participant stands at a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// Still a participant of a consultation that goes on.
    Taking,
    /// No longer a participant (declined since).
    NotParticipant,
    /// The consultation was cancelled (or ended as a no-show or declined) since: its room closes.
    /// A completed one does not close it: an opinion signed during the call completes the
    /// consultation, and the call ends as its doctors end it.
    Called,
}

/// Where `user_id` stands in consultation `room` (read at once after an announced change;
/// heartbeats read many together, [`heartbeat_reads`]).
pub(super) async fn standing(db: &Db, room: &str, user_id: &str) -> ApiResult<Standing> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT c.state FROM consultations c JOIN consultation_participants p
            ON p.consultation_id = c.id AND p.user_id = $2 AND p.status <> 'declined'
          WHERE c.id = $1",
    )
    .bind(room)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(standing_in(row.as_ref().map(|r| r.0.as_str())))
}

/// Where each of `asked` (consultation, user) stands, in order: [`standing`] for many at
/// once, in one statement per 500 consultations.
async fn standings(db: &Db, asked: &[(String, String)]) -> ApiResult<Vec<Standing>> {
    let mut rooms: Vec<&str> = asked.iter().map(|(room, _)| room.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let mut states: HashMap<(String, String), String> = HashMap::new();
    for chunk in rooms.chunks(500) {
        let sql = format!(
            "SELECT p.consultation_id, p.user_id, c.state FROM consultation_participants p
               JOIN consultations c ON c.id = p.consultation_id
              WHERE p.consultation_id IN ({}) AND p.status <> 'declined'",
            batch::list(chunk.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
        for room in chunk {
            q = q.bind(*room);
        }
        for (room, user, state) in q.fetch_all(&db.pool).await? {
            states.insert((room, user), state);
        }
    }
    Ok(asked.iter().map(|key| standing_in(states.get(key).map(String::as_str))).collect())
}

/// What a heartbeat reads of a seated participant; each part `Err` when it could not be read.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub account: ApiResult<Option<AccountState>>,
    /// Whether the device the seat was taken through may still act (`None`: no device).
    pub device_active: Option<ApiResult<bool>>,
    pub standing: ApiResult<Standing>,
}

/// What the heartbeats of the moment read of their seated participants (consultation, user,
/// device), one [`Seen`] each, in order: three statements (per 500) however many there are.
pub(super) async fn heartbeat_reads(db: &Db, asked: &[(String, String, Option<String>)]) -> Vec<Seen> {
    let pairs: Vec<(String, String)> = asked.iter().map(|(room, user, _)| (room.clone(), user.clone())).collect();
    let standings = standings(db, &pairs).await;
    let mut users: Vec<&str> = asked.iter().map(|(_, user, _)| user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let accounts = crate::auth::store::account_states(db, &users).await;
    let mut devices: Vec<&str> = asked.iter().filter_map(|(_, _, device)| device.as_deref()).collect();
    devices.sort_unstable();
    devices.dedup();
    let active = if devices.is_empty() {
        Ok(Default::default())
    } else {
        crate::devices::store::active_among(db, &devices).await
    };
    asked
        .iter()
        .enumerate()
        .map(|(i, (_, user, device))| Seen {
            account: accounts.as_ref().map(|a| a.get(user).copied()).map_err(Clone::clone),
            device_active: device.as_ref().map(|d| active.as_ref().map(|a| a.contains(d)).map_err(Clone::clone)),
            standing: standings.as_ref().map(|s| s[i]).map_err(Clone::clone),
        })
        .collect()
}

/// A participant's standing from the state of their consultation (`None`: not a participant).
fn standing_in(state: Option<&str>) -> Standing {
    match state {
        None => Standing::NotParticipant,
        Some("cancelled" | "no_show" | "declined") => Standing::Called,
        Some(_) => Standing::Taking,
    }
}

/// Stores the seat each ticket gives, if the ticket was not used before, its account is
/// active (and the device whose access took the ticket, if any) and its holder takes part in
/// the consultation: one conditional `INSERT` whose
/// unique index on the ticket's hash makes "exactly once" hold under concurrency on both
/// backends and on every instance (the seat holds its participant, the hash of its first
/// resume token, the account's token generation now, and lasts until `seat_expires`). Then
/// reads what each seat admits. One answer per ticket, in order; a ticket given twice is
/// admitted once. The tickets' signatures and expiry were checked before.
pub(super) async fn use_up(
    db: &Db,
    rows: &[Redemption],
    now: DateTime<Utc>,
    seat_expires: DateTime<Utc>,
) -> ApiResult<Vec<Redeemed>> {
    const COLUMNS: usize = 7;
    let insert = format!(
        "WITH v (participant_id, consultation_id, user_id, room_role, resume_hash, ticket_hash, device_id) AS (VALUES {})
         INSERT INTO signaling_seats
               (participant_id, consultation_id, user_id, room_role, resume_hash, generation, ticket_hash, device_id,
                expires_at, created_at)
         SELECT v.participant_id, v.consultation_id, v.user_id, v.room_role, v.resume_hash, u.token_generation, v.ticket_hash,
                NULLIF(v.device_id, ''), $1, $2
           FROM v JOIN users u ON u.id = v.user_id AND u.active = 1
          WHERE EXISTS (SELECT 1 FROM consultation_participants p
                         WHERE p.consultation_id = v.consultation_id AND p.user_id = v.user_id AND p.status <> 'declined')
            AND EXISTS (SELECT 1 FROM consultations c
                         WHERE c.id = v.consultation_id AND c.state IN ('scheduled', 'in_progress', 'awaiting_opinion', 'completed'))
            AND (v.device_id = '' OR {DEVICE_ACTIVE})
         ON CONFLICT (ticket_hash) DO NOTHING
         RETURNING participant_id",
        batch::values(rows.len(), COLUMNS, 3),
        DEVICE_ACTIVE = device_active("v.device_id"),
    );
    let mut q = sqlx::query_as::<_, (String,)>(&insert).bind(ts(seat_expires)).bind(ts(now));
    for r in rows {
        let c = &r.claims;
        q = q
            .bind(&r.participant_id)
            .bind(&c.consultation_id)
            .bind(&c.user_id)
            .bind(&c.room_role)
            .bind(super::tickets::hash(&super::tickets::resume_token_with(&c.consultation_id, &r.resume_secret)))
            .bind(&r.ticket_hash)
            .bind(c.device.as_deref().unwrap_or(""));
    }
    let turn = db.write_turn().await;
    let seated: Vec<(String,)> = q.fetch_all(&db.pool).await?;
    drop(turn);
    let mut answers: HashMap<String, Redeemed> = HashMap::new();
    if !seated.is_empty() {
        let select = format!(
            "SELECT t.participant_id, u.display_name, {ADMITTED}
               FROM signaling_seats t JOIN users u ON u.id = t.user_id
              WHERE t.participant_id IN ({})",
            batch::list(seated.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String, String, Option<String>)>(&select);
        for (p,) in &seated {
            q = q.bind(p);
        }
        for (participant, display_name, last) in q.fetch_all(&db.pool).await? {
            let Some(r) = rows.iter().find(|r| r.participant_id == participant) else { continue };
            let c = &r.claims;
            let ticket = Ticket {
                consultation_id: c.consultation_id.clone(),
                user_id: c.user_id.clone(),
                display_name,
                room_role: c.room_role.clone(),
                device: c.device.clone(),
                admitted: last.as_deref() == Some("admitted"),
            };
            answers.insert(participant, Redeemed::Admitted(ticket));
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        match answers.remove(&r.participant_id) {
            Some(a) => out.push(a),
            None => out.push(why_not_seated(db, r).await?),
        }
    }
    Ok(out)
}

/// Why a ticket took no seat: used before (or a second time in the same batch), its account
/// no longer active (both `Invalid`, as an unknown ticket), or its holder no longer taking part.
async fn why_not_seated(db: &Db, r: &Redemption) -> ApiResult<Redeemed> {
    let (used, active, participant): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM signaling_seats WHERE ticket_hash = $1),
                (SELECT COUNT(*) FROM users WHERE id = $2 AND active = 1),
                (SELECT COUNT(*) FROM consultation_participants
                  WHERE consultation_id = $3 AND user_id = $2 AND status <> 'declined')",
    )
    .bind(&r.ticket_hash)
    .bind(&r.claims.user_id)
    .bind(&r.claims.consultation_id)
    .fetch_one(&db.pool)
    .await?;
    Ok(if used == 0 && active > 0 && participant == 0 { Redeemed::NotParticipant } else { Redeemed::Invalid })
}

/// Replaces the resume token hash of each stored seat presented (`old` → `new`), if the seat
/// has not expired, and moves its expiry to `seat_expires` (one conditional UPDATE: a token is
/// used once, whichever instance and however many sockets present it); then reads, for each
/// seat rotated, what it may come back to: the account still active, its holder still a
/// participant of a live consultation, the seat not ended on the room's timeline (a `left` or
/// `removed` entry of its participant), and for a patient whether it was admitted. One answer
/// per rotation, in order.
pub(super) async fn rotate_seats(
    db: &Db,
    rows: &[Rotation],
    now: DateTime<Utc>,
    seat_expires: DateTime<Utc>,
) -> ApiResult<Vec<SeatResumed>> {
    let mut case = String::from("CASE resume_hash");
    for i in 0..rows.len() {
        case.push_str(&format!(" WHEN ${} THEN ${}", 3 + 2 * i, 4 + 2 * i));
    }
    case.push_str(" END");
    let olds: Vec<String> = (0..rows.len()).map(|i| format!("${}", 3 + 2 * i)).collect();
    let update = format!(
        "UPDATE signaling_seats SET resume_hash = {case}, expires_at = $1
          WHERE resume_hash IN ({}) AND expires_at > $2
         RETURNING resume_hash",
        olds.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String,)>(&update).bind(ts(seat_expires)).bind(ts(now));
    for r in rows {
        q = q.bind(&r.old_hash).bind(&r.new_hash);
    }
    let turn = db.write_turn().await;
    let rotated: Vec<(String,)> = q.fetch_all(&db.pool).await?;
    drop(turn);
    let mut found: HashMap<String, SeatResumed> = HashMap::new();
    if !rotated.is_empty() {
        let select = format!(
            "SELECT t.resume_hash, t.participant_id, t.consultation_id, t.user_id, u.display_name, t.room_role,
                    t.device_id,
                    CASE WHEN u.active = 1 AND u.token_generation = t.generation
                          AND (t.device_id IS NULL OR {DEVICE_ACTIVE}) THEN 1 ELSE 0 END,
                    p.role,
                    CASE WHEN c.state IN ('scheduled', 'in_progress')
                          AND NOT EXISTS (SELECT 1 FROM room_events e
                                           WHERE e.consultation_id = t.consultation_id
                                             AND e.participant_id = t.participant_id
                                             AND e.kind IN ('left', 'removed'))
                         THEN 1 ELSE 0 END,
                    {ADMITTED}
               FROM signaling_seats t JOIN users u ON u.id = t.user_id
               JOIN consultations c ON c.id = t.consultation_id
               LEFT JOIN consultation_participants p
                 ON p.consultation_id = t.consultation_id AND p.user_id = t.user_id AND p.status <> 'declined'
              WHERE t.resume_hash IN ({})",
            batch::list(rotated.len(), 1),
            DEVICE_ACTIVE = device_active("t.device_id"),
        );
        // `valid`: the account active with the seat's token generation (and the device whose
        // access took the seat, if any, not revoked); `open`: the
        // consultation live and the seat not ended on the room's timeline.
        type Row =
            (String, String, String, String, String, String, Option<String>, i64, Option<String>, i64, Option<String>);
        let mut q = sqlx::query_as::<_, Row>(&select);
        for (h,) in &rotated {
            q = q.bind(h);
        }
        for (
            h,
            participant_id,
            consultation_id,
            user_id,
            display_name,
            room_role,
            device,
            valid,
            participant,
            open,
            last,
        ) in q.fetch_all(&db.pool).await?
        {
            let r = if valid != 1 {
                SeatResumed::Revoked
            } else if participant.is_none() {
                SeatResumed::NotParticipant
            } else if open != 1 {
                SeatResumed::Invalid
            } else {
                SeatResumed::Seat(Seat {
                    participant_id,
                    ticket: Ticket {
                        consultation_id,
                        user_id,
                        display_name,
                        room_role,
                        device,
                        admitted: last.as_deref() == Some("admitted"),
                    },
                })
            };
            found.insert(h, r);
        }
    }
    let mut answers: Vec<SeatResumed> = Vec::with_capacity(rows.len());
    for r in rows {
        answers.push(found.remove(&r.new_hash).unwrap_or(SeatResumed::Invalid));
    }
    Ok(answers)
}

/// Moves the expiry of these seats (connected on this instance) to `until`.
pub(super) async fn keep_seats(db: &Db, participants: &[String], until: DateTime<Utc>) -> ApiResult<()> {
    for chunk in participants.chunks(500) {
        let sql = format!(
            "UPDATE signaling_seats SET expires_at = $1 WHERE participant_id IN ({}) AND expires_at < $1",
            batch::list(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(ts(until));
        for p in chunk {
            q = q.bind(p);
        }
        q.execute(&mut *db.writer().await?).await?;
    }
    Ok(())
}

/// Deletes seats that expired more than an hour ago (they can no longer be resumed, and
/// their tickets expired long before; the room's timeline keeps who was there).
pub async fn sweep_seats(db: &Db, now: DateTime<Utc>) -> ApiResult<u64> {
    Ok(sqlx::query("DELETE FROM signaling_seats WHERE expires_at < $1")
        .bind(ts(now - TimeDelta::hours(1)))
        .execute(&mut *db.writer().await?)
        .await?
        .rows_affected())
}

/// A chat line of a consultation's room (its audit event is written by the recorder after
/// the commit).
pub(super) async fn insert_message(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    room: &str,
    sender: &str,
    participant: &str,
    text: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO consultation_messages (id, consultation_id, sender_id, participant_id, body, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(room)
    .bind(sender)
    .bind(participant)
    .bind(text)
    .bind(ts(at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Timeline entries (id, room, entry) in one multi-row statement, in their order.
pub(super) async fn insert_timeline(
    conn: &mut sqlx::AnyConnection,
    entries: &[(String, String, TimelineEntry)],
) -> ApiResult<()> {
    let sql = format!(
        "INSERT INTO room_events (id, consultation_id, participant_id, user_id, room_role, kind, by_user_id, detail, at)
         VALUES {}",
        batch::values(entries.len(), 9, 1)
    );
    let mut q = sqlx::query(&sql);
    for (id, room, entry) in entries {
        q = q
            .bind(id)
            .bind(room)
            .bind(&entry.participant)
            .bind(&entry.user_id)
            .bind(entry.role.as_str())
            .bind(entry.kind.as_str())
            .bind(entry.by.as_deref())
            .bind(&entry.detail)
            .bind(ts(entry.at));
    }
    q.execute(conn).await?;
    Ok(())
}

/// The patient of a consultation (for the audit event of a chat line).
pub(super) async fn patient_of(db: &Db, consultation: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT patient_id FROM consultations WHERE id = $1")
        .bind(consultation)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.0))
}

/// What a join checks, in one read: the consultation's patient, state and urgency, the
/// caller's role in it (not declined) and when its booked appointment starts; `None` when the
/// caller may not see the consultation.
pub(super) type JoinRow = (String, String, String, Option<String>, Option<String>);

pub(super) async fn join_row(db: &Db, user: &AuthUser, consultation: &str) -> ApiResult<Option<JoinRow>> {
    let mut q = Filtered::new(
        "SELECT c.patient_id, c.state, c.urgency,
                (SELECT CASE WHEN p.role = 'expert' AND p.status = 'invited' THEN 'invited' ELSE p.role END
                   FROM consultation_participants p
                  WHERE p.consultation_id = c.id AND p.user_id = ",
    );
    q.push_bind(user.id.clone());
    q.push(
        " AND p.status <> 'declined'),
                (SELECT MIN(a.start_at) FROM appointments a WHERE a.consultation_id = c.id AND a.status = 'booked')
           FROM consultations c WHERE c.id = ",
    );
    q.after_where().push_bind(consultation.to_owned());
    crate::consultations::store::visible_one(&mut q, user);
    Ok(q.build_query_as().fetch_optional(&db.pool).await?)
}
