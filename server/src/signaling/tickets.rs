//! Tickets to the signaling WebSocket: a random token handed out by `POST .../join`,
//! accepted once by `GET /api/v1/rtc?ticket=...` within 30 s, so no long-lived credential
//! appears in a URL. Only the token's SHA-256 is stored (in the database, so a ticket issued
//! by one server instance can be redeemed at another); redeeming is one conditional UPDATE,
//! which makes "exactly once" hold under concurrency on both backends.
//!
//! Resume tokens are made the same way (`<consultation id>.<secret>`) but live only in the
//! room, which keeps their hash.

use crate::db::{ts, Db};
use crate::error::ApiResult;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// How long a ticket may wait before it is used.
pub const TICKET_TTL: TimeDelta = TimeDelta::seconds(30);

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A resume token names its room, so any instance can find it: `<room>.<secret>`.
pub fn resume_token(room: &str) -> String {
    format!("{room}.{}", random_token())
}

/// The room a resume token belongs to, if it is well formed.
pub fn resume_room(token: &str) -> Option<&str> {
    let (room, secret) = token.split_once('.')?;
    // Only the form rooms are named by (lowercase, hyphenated), so one room has one name.
    let canonical = uuid::Uuid::parse_str(room).is_ok_and(|u| u.hyphenated().to_string() == room);
    (canonical && secret.len() == 43).then_some(room)
}

/// What a redeemed ticket admits.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub consultation_id: String,
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub user_role: String,
    pub organisation_id: String,
    pub room_role: String,
}

/// Stores a new ticket for `user_id` to enter the consultation's room as `room_role`.
/// Returns the clear token and its expiry.
pub async fn issue(
    db: &Db,
    consultation_id: &str,
    user_id: &str,
    room_role: &str,
    now: DateTime<Utc>,
) -> ApiResult<(String, DateTime<Utc>)> {
    let token = random_token();
    let expires = now + TICKET_TTL;
    sqlx::query(
        "INSERT INTO signaling_tickets (token_hash, consultation_id, user_id, room_role, expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(hash(&token))
    .bind(consultation_id)
    .bind(user_id)
    .bind(room_role)
    .bind(ts(expires))
    .bind(ts(now))
    .execute(&db.pool)
    .await?;
    Ok((token, expires))
}

/// Uses up a ticket: `None` when it is unknown, expired or already used.
pub async fn redeem(db: &Db, token: &str, now: DateTime<Utc>) -> ApiResult<Option<Ticket>> {
    let token_hash = hash(token);
    let used = sqlx::query(
        "UPDATE signaling_tickets SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(ts(now))
    .bind(&token_hash)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if used != 1 {
        return Ok(None);
    }
    let row: Option<(String, String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT t.consultation_id, t.user_id, u.username, u.display_name, u.role, u.organisation_id, t.room_role
           FROM signaling_tickets t JOIN users u ON u.id = t.user_id
          WHERE t.token_hash = $1 AND u.active = 1",
    )
    .bind(&token_hash)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|(consultation_id, user_id, username, display_name, user_role, organisation_id, room_role)| Ticket {
        consultation_id,
        user_id,
        username,
        display_name,
        user_role,
        organisation_id,
        room_role,
    }))
}

/// Deletes tickets that expired more than an hour ago (they can no longer be used).
pub async fn sweep(db: &Db, now: DateTime<Utc>) -> ApiResult<u64> {
    Ok(sqlx::query("DELETE FROM signaling_tickets WHERE expires_at < $1")
        .bind(ts(now - TimeDelta::hours(1)))
        .execute(&db.pool)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn resume_tokens_name_their_room() {
        let room = uuid::Uuid::now_v7().to_string();
        let token = resume_token(&room);
        assert_eq!(resume_room(&token), Some(room.as_str()));
        assert_eq!(resume_room("not-a-uuid.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), None);
        assert_eq!(resume_room(&format!("{room}.short")), None);
        assert_eq!(resume_room(&room), None);
        let braced = format!("{{{room}}}.{}", random_token());
        assert_eq!(resume_room(&braced), None, "another spelling of the same room");
        assert_eq!(resume_room(&token.to_uppercase()), None);
    }
}
