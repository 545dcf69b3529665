//! All of signaling's SQL: tickets (written, redeemed, swept), seats (stored with their
//! ticket's redemption, rotated at each resume, kept, swept), the room recorder's chat lines
//! and timeline, and the one read a join makes.

use super::room::TimelineEntry;
use super::tickets::{NewTicket, Redeemed, Redemption, Rotation, Seat, SeatResumed, Ticket};
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

pub(super) async fn insert_tickets(db: &Db, rows: &[NewTicket]) -> ApiResult<()> {
    let sql = format!(
        "INSERT INTO signaling_tickets (token_hash, consultation_id, user_id, room_role, expires_at, created_at) VALUES {}",
        batch::values(rows.len(), 6, 1)
    );
    let mut q = sqlx::query(&sql);
    for r in rows {
        q = q
            .bind(&r.token_hash)
            .bind(&r.consultation_id)
            .bind(&r.user_id)
            .bind(&r.room_role)
            .bind(&r.expires_at)
            .bind(&r.created_at);
    }
    let _turn = db.write_turn().await;
    q.execute(&db.pool).await?;
    Ok(())
}

/// A ticket just used: its hash, consultation, user and room role.
type UsedTicket = (String, String, String, String);

/// Marks the tickets used, if they are unused and unexpired (one conditional UPDATE, which
/// makes "exactly once" hold under concurrency on both backends), stores the seat of each
/// ticket used (its participant and the hash of its first resume token, valid until
/// `seat_expires`) in the same transaction, and reads what each ticket admits. One answer
/// per ticket, in order; a ticket given twice is admitted once.
pub(super) async fn use_up(
    db: &Db,
    rows: &[Redemption],
    now: DateTime<Utc>,
    seat_expires: DateTime<Utc>,
) -> ApiResult<Vec<Redeemed>> {
    let update = format!(
        "UPDATE signaling_tickets SET used_at = $1 WHERE token_hash IN ({}) AND used_at IS NULL AND expires_at > $1
         RETURNING token_hash, consultation_id, user_id, room_role",
        batch::list(rows.len(), 2)
    );
    let mut q = sqlx::query_as::<_, UsedTicket>(&update).bind(ts(now));
    for r in rows {
        q = q.bind(&r.ticket_hash);
    }
    let mut tx = db.begin_write().await?;
    let used: Vec<UsedTicket> = q.fetch_all(&mut *tx).await?;
    if !used.is_empty() {
        // A ticket given twice in one batch is used once: its first redemption takes the seat.
        let mut seen = std::collections::HashSet::new();
        let seats: Vec<(&Redemption, &UsedTicket)> = used
            .iter()
            .filter_map(|u| rows.iter().find(|r| r.ticket_hash == u.0).map(|r| (r, u)))
            .filter(|(r, _)| seen.insert(r.ticket_hash.as_str()))
            .collect();
        let insert = format!(
            "INSERT INTO signaling_seats
               (participant_id, consultation_id, user_id, room_role, resume_hash, expires_at, created_at) VALUES {}",
            batch::values(seats.len(), 7, 1)
        );
        let mut q = sqlx::query(&insert);
        for (r, (_, consultation_id, user_id, room_role)) in &seats {
            q = q
                .bind(&r.participant_id)
                .bind(consultation_id)
                .bind(user_id)
                .bind(room_role)
                .bind(super::tickets::hash(&super::tickets::resume_token_with(consultation_id, &r.resume_secret)))
                .bind(ts(seat_expires))
                .bind(ts(now));
        }
        q.execute(&mut *tx).await?;
        // The account's token generation now: a seat outlives its tokens no more than they do.
        let generation = format!(
            "UPDATE signaling_seats SET generation = (SELECT u.token_generation FROM users u WHERE u.id = signaling_seats.user_id)
              WHERE participant_id IN ({})",
            batch::list(seats.len(), 1)
        );
        let mut q = sqlx::query(&generation);
        for (r, _) in &seats {
            q = q.bind(&r.participant_id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let mut admitted: HashMap<String, Redeemed> = HashMap::new();
    if !used.is_empty() {
        let select = format!(
            "SELECT t.token_hash, t.consultation_id, t.user_id, u.display_name, t.room_role, p.role, {ADMITTED}
               FROM signaling_tickets t JOIN users u ON u.id = t.user_id AND u.active = 1
               LEFT JOIN consultation_participants p
                 ON p.consultation_id = t.consultation_id AND p.user_id = t.user_id AND p.status <> 'declined'
              WHERE t.token_hash IN ({})",
            batch::list(used.len(), 1)
        );
        type Row = (String, String, String, String, String, Option<String>, Option<String>);
        let mut q = sqlx::query_as::<_, Row>(&select);
        for (h, ..) in &used {
            q = q.bind(h);
        }
        for (h, consultation_id, user_id, display_name, room_role, participant, last) in q.fetch_all(&db.pool).await? {
            let r = match participant {
                Some(_) => Redeemed::Admitted(Ticket {
                    consultation_id,
                    user_id,
                    display_name,
                    room_role,
                    admitted: last.as_deref() == Some("admitted"),
                }),
                None => Redeemed::NotParticipant,
            };
            admitted.insert(h, r);
        }
    }
    let mut answers: Vec<Redeemed> = Vec::with_capacity(rows.len());
    for r in rows {
        answers.push(admitted.remove(&r.ticket_hash).unwrap_or(Redeemed::Invalid));
    }
    Ok(answers)
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
                    CASE WHEN u.active = 1 AND u.token_generation = t.generation THEN 1 ELSE 0 END,
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
            batch::list(rotated.len(), 1)
        );
        // `valid`: the account active with the seat's token generation; `open`: the
        // consultation live and the seat not ended on the room's timeline.
        type Row = (String, String, String, String, String, String, i64, Option<String>, i64, Option<String>);
        let mut q = sqlx::query_as::<_, Row>(&select);
        for (h,) in &rotated {
            q = q.bind(h);
        }
        for (h, participant_id, consultation_id, user_id, display_name, room_role, valid, participant, open, last) in
            q.fetch_all(&db.pool).await?
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

/// Deletes tickets and seats that expired more than an hour ago (they can no longer be
/// used; the room's timeline keeps who was there).
pub async fn sweep_tickets(db: &Db, now: DateTime<Utc>) -> ApiResult<u64> {
    let mut n = 0;
    for table in ["signaling_tickets", "signaling_seats"] {
        n += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at < $1"))
            .bind(ts(now - TimeDelta::hours(1)))
            .execute(&mut *db.writer().await?)
            .await?
            .rows_affected();
    }
    Ok(n)
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

/// Those of `rooms` whose consultation can still start (scheduled or accepted).
pub(super) async fn still_scheduled(db: &Db, rooms: &[String]) -> ApiResult<Vec<String>> {
    let mut scheduled = std::collections::HashSet::new();
    for chunk in rooms.chunks(500) {
        let sql = format!(
            "SELECT id FROM consultations WHERE id IN ({}) AND state IN ('scheduled', 'accepted')",
            batch::list(chunk.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String,)>(&sql);
        for r in chunk {
            q = q.bind(r);
        }
        scheduled.extend(q.fetch_all(&db.pool).await?.into_iter().map(|(id,)| id));
    }
    Ok(rooms.iter().filter(|r| scheduled.contains(*r)).cloned().collect())
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
                (SELECT p.role FROM consultation_participants p
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
