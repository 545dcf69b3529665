//! Tickets to the signaling WebSocket: a random token handed out by `POST .../join`,
//! accepted once by `GET /api/v1/rtc?ticket=...` within 30 s, so no long-lived credential
//! appears in a URL. Only the token's SHA-256 is stored (in the database, so a ticket issued
//! by one server instance can be redeemed at another); redeeming is one conditional UPDATE,
//! which makes "exactly once" hold under concurrency on both backends. Both are written in
//! batches when joins arrive together ([`TicketDesk`]).
//!
//! Resume tokens are made the same way (`<consultation id>.<secret>`) but live only in the
//! room, which keeps their hash: after a restart of the instance they are unknown, and the
//! client joins again with a fresh ticket. What must survive that is the participant's
//! admission, and it does: redeeming a ticket reads from the room's timeline (`room_events`)
//! whether its holder was admitted by a doctor and not removed since, so an admitted patient
//! comes back into the room without being admitted again and a waiting one comes back to the
//! lobby ([`Ticket::admitted`]).

use super::store;
use crate::db::batch::Batcher;
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
    pub display_name: String,
    pub room_role: String,
    /// A patient admitted by a doctor earlier in this consultation's room and not removed
    /// since (nor the call ended): enters the room again without waiting in the lobby, even
    /// when the room itself was lost (a restart of the instance that held it).
    pub admitted: bool,
}

/// What presenting a ticket came to.
#[derive(Debug, Clone)]
pub enum Redeemed {
    /// Used up now: its holder enters the room.
    Admitted(Ticket),
    /// Unknown, expired, already used, or its account is no longer active.
    Invalid,
    /// A valid ticket whose holder no longer takes part in the consultation (declined since).
    NotParticipant,
}

#[derive(Debug, Clone)]
pub(super) struct NewTicket {
    pub(super) token_hash: String,
    pub(super) consultation_id: String,
    pub(super) user_id: String,
    pub(super) room_role: String,
    pub(super) expires_at: String,
    pub(super) created_at: String,
}

/// Tickets are written and redeemed in batches: joins arriving together share one statement
/// and one commit ([`crate::db::batch`]), and each caller is answered after that commit, so a
/// ticket handed out is stored and a redemption is final before the socket is admitted.
pub struct TicketDesk {
    db: Db,
    issue: Batcher<NewTicket, ()>,
    redeem: Batcher<String, Redeemed>,
}

/// Rows per batched statement.
const BATCH_ROWS: usize = 256;

impl TicketDesk {
    /// Starts the desk's writers (on the current Tokio runtime).
    pub fn start(db: Db) -> TicketDesk {
        let for_issue = db.plain();
        let for_redeem = db.plain();
        TicketDesk {
            issue: Batcher::start(
                BATCH_ROWS,
                Box::new(move |rows: Vec<NewTicket>| {
                    let db = for_issue.clone();
                    Box::pin(async move { store::insert_tickets(&db, &rows).await.map(|()| vec![(); rows.len()]) })
                }),
            ),
            redeem: Batcher::start(
                BATCH_ROWS,
                Box::new(move |hashes: Vec<String>| {
                    let db = for_redeem.clone();
                    Box::pin(async move { store::use_up(&db, &hashes, Utc::now()).await })
                }),
            ),
            db,
        }
    }

    /// Stores a new ticket for `user_id` to enter the consultation's room as `room_role`.
    /// Returns the clear token and its expiry.
    pub async fn issue(
        &self,
        consultation_id: &str,
        user_id: &str,
        room_role: &str,
        now: DateTime<Utc>,
    ) -> ApiResult<(String, DateTime<Utc>)> {
        let token = random_token();
        let expires = now + TICKET_TTL;
        let row = NewTicket {
            token_hash: hash(&token),
            consultation_id: consultation_id.to_string(),
            user_id: user_id.to_string(),
            room_role: room_role.to_string(),
            expires_at: ts(expires),
            created_at: ts(now),
        };
        match self.issue.submit(row.clone()).await {
            Some(r) => r?,
            None => store::insert_tickets(&self.db, std::slice::from_ref(&row)).await?,
        }
        Ok((token, expires))
    }

    /// Uses up a ticket (once, whichever instance and however many sockets present it).
    pub async fn redeem(&self, token: &str) -> ApiResult<Redeemed> {
        let h = hash(token);
        match self.redeem.submit(h.clone()).await {
            Some(r) => r,
            None => Ok(store::use_up(&self.db, std::slice::from_ref(&h), Utc::now())
                .await?
                .pop()
                .unwrap_or(Redeemed::Invalid)),
        }
    }
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
