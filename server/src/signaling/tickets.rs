//! Tickets to the signaling WebSocket: a random token handed out by `POST .../join`,
//! accepted once by `GET /api/v1/rtc?ticket=...` within 30 s, so no long-lived credential
//! appears in a URL. Only the token's SHA-256 is stored (in the database, so a ticket issued
//! by one server instance can be redeemed at another); redeeming is one conditional UPDATE,
//! which makes "exactly once" hold under concurrency on both backends. Both are written in
//! batches when joins arrive together ([`TicketDesk`]).
//!
//! Resume tokens are made the same way (`<consultation id>.<secret>`). The room keeps their
//! hash, and so does the database: redeeming a ticket stores the seat it gives (participant,
//! user, room role, the first resume token's hash) in the redemption's transaction, and every
//! resume replaces the stored hash before the room is told (one conditional UPDATE, so a
//! token is used once on any instance). After a restart of the instance that held the room,
//! a resume token is therefore still recognised: its participant is put back into a new room
//! with the same id ([`Seat`]), after the same checks as a ticket (account active, still a
//! participant) and one more (the seat not ended on the room's timeline). Where it lands
//! comes from the room's timeline (`room_events`), as for a ticket: a patient admitted by a
//! doctor and not removed since enters the room without being admitted again, a waiting one
//! comes back to the lobby ([`Ticket::admitted`]).
//!
//! A stored seat expires like the room's: the instance holding its connection moves its expiry
//! forward every [`SEAT_KEEP_EVERY`] to [`SEAT_SLACK`] past the resume window, so once that
//! instance is gone the token restores for at most the resume window plus the slack.

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
    resume_token_with(room, &random_token())
}

/// The resume token of `room` with this secret (from [`random_token`]).
pub fn resume_token_with(room: &str, secret: &str) -> String {
    format!("{room}.{secret}")
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

/// How often the instance holding a connection moves its stored seat's expiry forward.
pub const SEAT_KEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(20);
/// A stored seat expires this long after the resume window counted from its last keep.
pub const SEAT_SLACK: TimeDelta = TimeDelta::seconds(30);

/// A seat put back from the database after its room was lost: its participant, and what its
/// ticket admitted (checked again now).
#[derive(Debug, Clone)]
pub struct Seat {
    pub participant_id: String,
    pub ticket: Ticket,
}

/// What presenting a resume token to the database came to.
#[derive(Debug, Clone)]
pub enum SeatResumed {
    /// The token was the seat's and is replaced now: the seat may come back.
    Seat(Seat),
    /// Unknown, expired, already used, or the seat ended (left, removed, consultation over).
    Invalid,
    /// The account is no longer active.
    Revoked,
    /// The holder no longer takes part in the consultation.
    NotParticipant,
}

/// A ticket presented, with the seat it will give: the participant id and the secret of its
/// first resume token, whose hash is stored when the ticket is used (the token names the
/// ticket's room, [`resume_token_with`]; the secret itself is never stored).
#[derive(Debug, Clone)]
pub(super) struct Redemption {
    pub(super) ticket_hash: String,
    pub(super) participant_id: String,
    pub(super) resume_secret: String,
}

/// A resume token presented (`old_hash`) and the hash of the token that replaces it.
#[derive(Debug, Clone)]
pub(super) struct Rotation {
    pub(super) old_hash: String,
    pub(super) new_hash: String,
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
    redeem: Batcher<Redemption, Redeemed>,
    rotate: Batcher<Rotation, SeatResumed>,
    resume_window: TimeDelta,
}

/// Rows per batched statement.
const BATCH_ROWS: usize = 256;

impl TicketDesk {
    /// Starts the desk's writers (on the current Tokio runtime).
    pub fn start(db: Db, resume_window: TimeDelta) -> TicketDesk {
        let for_issue = db.plain();
        let for_redeem = db.plain();
        let for_rotate = db.plain();
        let lasts = resume_window + SEAT_SLACK;
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
                Box::new(move |rows: Vec<Redemption>| {
                    let db = for_redeem.clone();
                    Box::pin(async move {
                        let now = Utc::now();
                        store::use_up(&db, &rows, now, now + lasts).await
                    })
                }),
            ),
            rotate: Batcher::start(
                BATCH_ROWS,
                Box::new(move |rows: Vec<Rotation>| {
                    let db = for_rotate.clone();
                    Box::pin(async move {
                        let now = Utc::now();
                        store::rotate_seats(&db, &rows, now, now + lasts).await
                    })
                }),
            ),
            resume_window,
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

    /// Uses up a ticket (once, whichever instance and however many sockets present it) and
    /// stores the seat it gives: `participant_id`, holding the resume token of the ticket's
    /// room with `resume_secret` (only the token's hash is stored).
    pub async fn redeem(&self, token: &str, participant_id: &str, resume_secret: &str) -> ApiResult<Redeemed> {
        let row = Redemption {
            ticket_hash: hash(token),
            participant_id: participant_id.to_string(),
            resume_secret: resume_secret.to_string(),
        };
        match self.redeem.submit(row.clone()).await {
            Some(r) => r,
            None => {
                let now = Utc::now();
                let lasts = self.resume_window + SEAT_SLACK;
                Ok(store::use_up(&self.db, std::slice::from_ref(&row), now, now + lasts)
                    .await?
                    .pop()
                    .unwrap_or(Redeemed::Invalid))
            }
        }
    }

    /// Uses up a resume token: its stored seat now holds `new_token` instead (once, whichever
    /// instance and however many sockets present it), and what the seat may come back to.
    pub async fn resume(&self, token: &str, new_token: &str) -> ApiResult<SeatResumed> {
        let row = Rotation { old_hash: hash(token), new_hash: hash(new_token) };
        match self.rotate.submit(row.clone()).await {
            Some(r) => r,
            None => {
                let now = Utc::now();
                let lasts = self.resume_window + SEAT_SLACK;
                Ok(store::rotate_seats(&self.db, std::slice::from_ref(&row), now, now + lasts)
                    .await?
                    .pop()
                    .unwrap_or(SeatResumed::Invalid))
            }
        }
    }

    /// Moves the expiry of the seats connected on this instance forward (see [`SEAT_SLACK`]).
    pub async fn keep_seats(&self, participants: &[String]) -> ApiResult<()> {
        store::keep_seats(&self.db, participants, Utc::now() + self.resume_window + SEAT_SLACK).await
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
