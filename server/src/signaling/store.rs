//! All of signaling's SQL: tickets (written, redeemed, swept), the room recorder's chat lines
//! and timeline, and the one read a join makes.

use super::room::TimelineEntry;
use super::tickets::{NewTicket, Redeemed, Ticket};
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

/// Marks the tickets with these hashes used, if they are unused and unexpired (one
/// conditional UPDATE, which makes "exactly once" hold under concurrency on both backends),
/// and reads what each admits. One answer per hash, in order; a hash given twice is
/// admitted once.
pub(super) async fn use_up(db: &Db, hashes: &[String], now: DateTime<Utc>) -> ApiResult<Vec<Redeemed>> {
    let update = format!(
        "UPDATE signaling_tickets SET used_at = $1 WHERE token_hash IN ({}) AND used_at IS NULL AND expires_at > $1
         RETURNING token_hash",
        batch::list(hashes.len(), 2)
    );
    let mut q = sqlx::query_as::<_, (String,)>(&update).bind(ts(now));
    for h in hashes {
        q = q.bind(h);
    }
    let turn = db.write_turn().await;
    let used: Vec<(String,)> = q.fetch_all(&db.pool).await?;
    drop(turn);
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
        for (h,) in &used {
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
    Ok(hashes.iter().map(|h| admitted.remove(h).unwrap_or(Redeemed::Invalid)).collect())
}

/// Deletes tickets that expired more than an hour ago (they can no longer be used).
pub async fn sweep_tickets(db: &Db, now: DateTime<Utc>) -> ApiResult<u64> {
    Ok(sqlx::query("DELETE FROM signaling_tickets WHERE expires_at < $1")
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
