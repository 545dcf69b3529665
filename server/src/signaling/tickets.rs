//! Tickets to the signaling WebSocket: a token handed out by `POST .../join`, accepted once
//! by `GET /api/v1/rtc?ticket=...` within 30 s, so no long-lived credential appears in a URL.
//!
//! A ticket carries what it admits (consultation, user, room role, expiry, a random nonce),
//! signed with HMAC-SHA256 under a key derived from the server's signing secret, which every
//! instance shares ([`TicketKey`]): any instance can check it, and issuing one writes nothing.
//! A forged, altered or expired ticket is refused before the database is asked. "Exactly
//! once" is held by the seat the ticket gives: redeeming stores the seat with the ticket's
//! SHA-256 under a unique index (one conditional `INSERT`, whichever instance and however
//! many sockets present it), and only if the account is still active and its holder still
//! takes part. A seat is kept at least as long as its ticket lives ([`SEAT_SLACK`] past the
//! resume window), so a used ticket cannot be used again before it expires. Redemptions
//! arriving together share one statement ([`TicketDesk`]).
//!
//! Resume tokens are random (`<consultation id>.<secret>`). The room keeps their
//! hash, and so does the database: redeeming a ticket stores the seat it gives (participant,
//! user, room role, the first resume token's hash) in the redemption's statement, and every
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
use crate::db::Db;
use crate::error::ApiResult;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How long a ticket may wait before it is used.
pub const TICKET_TTL: TimeDelta = TimeDelta::seconds(30);

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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

/// The key tickets are signed with: HMAC-SHA256 of a fixed label under the server's signing
/// secret (the one access tokens are signed with, which every instance shares), so the two
/// keys differ and one cannot stand in for the other.
#[derive(Clone)]
pub struct TicketKey([u8; 32]);

impl TicketKey {
    pub fn derive(secret: &[u8]) -> TicketKey {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"teleconsult signaling ticket v1");
        TicketKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(***)")
    }
}

/// What a ticket admits to, as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub consultation_id: String,
    pub user_id: String,
    pub room_role: String,
    /// Unix seconds; the ticket is refused from this second on.
    pub expires: i64,
    /// The device whose access took the ticket (a kiosk's check-in), if any: the seat ends
    /// with it.
    pub device: Option<String>,
}

/// Longer than any ticket [`sign`] makes (about 200 characters): refused unread.
const MAX_TICKET_LEN: usize = 512;

/// A ticket for `claims`: base64url of `consultation~user~role~expires~nonce` (and `~device`
/// when a device's access took it), a dot, and base64url of its HMAC-SHA256 under `key`. The
/// nonce (128 random bits) makes every ticket distinct, so two joins in the same second are
/// two tickets.
pub fn sign(key: &TicketKey, claims: &Claims) -> String {
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut payload = format!(
        "{}~{}~{}~{}~{}",
        claims.consultation_id,
        claims.user_id,
        claims.room_role,
        claims.expires,
        URL_SAFE_NO_PAD.encode(nonce)
    );
    if let Some(device) = &claims.device {
        payload.push('~');
        payload.push_str(device);
    }
    let body = URL_SAFE_NO_PAD.encode(payload);
    let mut mac = key.mac();
    mac.update(body.as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The claims of `ticket` if it was signed with `key` and has not expired at `now`; `None`
/// for anything else (forged, altered, expired, malformed). The signature is compared in
/// constant time, before anything of the payload is read.
pub fn verify(key: &TicketKey, ticket: &str, now: DateTime<Utc>) -> Option<Claims> {
    if ticket.len() > MAX_TICKET_LEN {
        return None;
    }
    let (body, sig) = ticket.split_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let mut mac = key.mac();
    mac.update(body.as_bytes());
    mac.verify_slice(&sig).ok()?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    let mut parts = payload.split('~');
    let (consultation_id, user_id, room_role, expires) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (_nonce, device, None) = (parts.next()?, parts.next(), parts.next()) else { return None };
    if device == Some("") {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    (now.timestamp() < expires).then(|| Claims {
        consultation_id: consultation_id.to_string(),
        user_id: user_id.to_string(),
        room_role: room_role.to_string(),
        expires,
        device: device.map(str::to_string),
    })
}

/// What a redeemed ticket admits.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub consultation_id: String,
    pub user_id: String,
    pub display_name: String,
    pub room_role: String,
    /// The device whose access took the seat (a kiosk's check-in), if any.
    pub device: Option<String>,
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

/// A ticket presented (its signature and expiry checked), with the seat it will give: the
/// participant id and the secret of its first resume token, whose hash is stored with the
/// seat (the token names the ticket's room, [`resume_token_with`]; the secret itself is never
/// stored).
#[derive(Debug, Clone)]
pub(super) struct Redemption {
    pub(super) ticket_hash: String,
    pub(super) claims: Claims,
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

/// Tickets are signed here and redeemed in batches: redemptions arriving together share one
/// statement ([`crate::db::batch`]), and each caller is answered after it, so a redemption is
/// final (its seat stored) before the socket is admitted.
pub struct TicketDesk {
    db: Db,
    key: TicketKey,
    redeem: Batcher<Redemption, Redeemed>,
    rotate: Batcher<Rotation, SeatResumed>,
    /// The heartbeats' reads of whether a seat's holder may still sit in its room, gathered
    /// over [`HEARTBEAT_READS_GATHER`].
    heartbeats: Batcher<(String, String, Option<String>), store::Seen>,
    resume_window: TimeDelta,
}

/// How long the heartbeats' reads of their participants' standing are gathered into one
/// statement: a heartbeat's verdict comes up to this much later, and 2,000 connections make
/// one read a second instead of 200.
pub const HEARTBEAT_READS_GATHER: std::time::Duration = std::time::Duration::from_secs(1);

/// Rows per batched statement.
const BATCH_ROWS: usize = 256;

impl TicketDesk {
    /// Starts the desk's writers (on the current Tokio runtime).
    pub fn start(db: Db, key: TicketKey, resume_window: TimeDelta) -> TicketDesk {
        let for_redeem = db.plain();
        let for_rotate = db.plain();
        let for_heartbeats = db.plain();
        let lasts = resume_window + SEAT_SLACK;
        TicketDesk {
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
            // A read that fails is answered as failed to the whole batch (as their own reads
            // would have been), never read again row by row.
            heartbeats: Batcher::start_gathering(
                BATCH_ROWS * 4,
                HEARTBEAT_READS_GATHER,
                Box::new(move |rows: Vec<(String, String, Option<String>)>| {
                    let db = for_heartbeats.clone();
                    Box::pin(async move { Ok(store::heartbeat_reads(&db, &rows).await) })
                }),
            ),
            resume_window,
            key,
            db,
        }
    }

    /// What a heartbeat reads of the participant `user_id` seated in `room` (through `device`,
    /// if a kiosk's), read with the other heartbeats of the moment (up to
    /// [`HEARTBEAT_READS_GATHER`] later than asked).
    pub(super) async fn heartbeat_read(&self, room: &str, user_id: &str, device: Option<&str>) -> store::Seen {
        let row = (room.to_string(), user_id.to_string(), device.map(str::to_string));
        match self.heartbeats.submit(row.clone()).await {
            Some(Ok(seen)) => seen,
            Some(Err(e)) => {
                store::Seen { account: Err(e.clone()), device_active: device.map(|_| Err(e.clone())), standing: Err(e) }
            }
            None => store::heartbeat_reads(&self.db, std::slice::from_ref(&row)).await.remove(0),
        }
    }

    /// A new ticket for `user_id` to enter the consultation's room as `room_role` (through
    /// `device`'s access, if any), and its expiry ([`TICKET_TTL`] from `now`, to the second).
    /// Nothing is stored.
    pub fn issue(
        &self,
        consultation_id: &str,
        user_id: &str,
        room_role: &str,
        device: Option<&str>,
        now: DateTime<Utc>,
    ) -> (String, DateTime<Utc>) {
        let expires = now.timestamp() + TICKET_TTL.num_seconds();
        let claims = Claims {
            consultation_id: consultation_id.to_string(),
            user_id: user_id.to_string(),
            room_role: room_role.to_string(),
            expires,
            device: device.map(str::to_string),
        };
        (sign(&self.key, &claims), DateTime::from_timestamp(expires, 0).unwrap_or(now + TICKET_TTL))
    }

    /// Uses up a ticket (once, whichever instance and however many sockets present it) and
    /// stores the seat it gives: `participant_id`, holding the resume token of the ticket's
    /// room with `resume_secret` (only the token's hash is stored). A ticket that is not ours
    /// or has expired is refused without asking the database.
    pub async fn redeem(&self, token: &str, participant_id: &str, resume_secret: &str) -> ApiResult<Redeemed> {
        let now = Utc::now();
        let Some(claims) = verify(&self.key, token, now) else { return Ok(Redeemed::Invalid) };
        let row = Redemption {
            ticket_hash: hash(token),
            claims,
            participant_id: participant_id.to_string(),
            resume_secret: resume_secret.to_string(),
        };
        match self.redeem.submit(row.clone()).await {
            Some(r) => r,
            None => {
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

    fn claims(expires: i64) -> Claims {
        Claims {
            consultation_id: "0190f5d2-0000-7000-8000-00000000c001".into(),
            user_id: "0190f5d2-0000-7000-8000-000000000001".into(),
            room_role: "expert".into(),
            expires,
            device: None,
        }
    }

    #[test]
    fn a_ticket_admits_what_was_signed_until_it_expires() {
        let key = TicketKey::derive(b"a signing secret of at least thirty-two bytes");
        let now = Utc::now();
        let c = claims(now.timestamp() + 30);
        let ticket = sign(&key, &c);
        assert!(ticket.len() < MAX_TICKET_LEN && ticket.len() > 150, "{}", ticket.len());
        assert!(ticket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {ticket}");
        assert_eq!(verify(&key, &ticket, now), Some(c.clone()));
        assert_eq!(verify(&key, &ticket, now + TimeDelta::seconds(29)), Some(c.clone()));
        assert_eq!(verify(&key, &ticket, now + TimeDelta::seconds(30)), None, "expired");
        assert_ne!(sign(&key, &c), ticket, "the nonce makes every ticket distinct");
        let kiosk =
            Claims { device: Some("0190f5d2-0000-7000-8000-00000000d001".into()), room_role: "patient".into(), ..c };
        let through_kiosk = sign(&key, &kiosk);
        assert!(through_kiosk.len() < MAX_TICKET_LEN, "{}", through_kiosk.len());
        assert_eq!(verify(&key, &through_kiosk, now), Some(kiosk.clone()));
        assert!(!format!("{key:?}").contains(char::is_numeric), "the key is not printed");
    }

    #[test]
    fn a_ticket_not_signed_with_the_key_is_refused() {
        let key = TicketKey::derive(b"a signing secret of at least thirty-two bytes");
        let other = TicketKey::derive(b"another instance's secret, not shared with ours");
        let now = Utc::now();
        let ticket = sign(&key, &claims(now.timestamp() + 30));
        assert_eq!(verify(&other, &ticket, now), None);
        // The payload changed (another consultation, a later expiry) under the same signature.
        let (body, sig) = ticket.split_once('.').unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        for altered in [
            payload.replace("c001", "c002"),
            payload.replace("expert", "requester"),
            payload.replace(&(now.timestamp() + 30).to_string(), &(now.timestamp() + 3600).to_string()),
        ] {
            assert_ne!(altered, payload);
            let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(&altered));
            assert_eq!(verify(&key, &forged, now), None, "{altered}");
        }
        // A signature cut short, or none.
        assert_eq!(verify(&key, &ticket[..ticket.len() - 2], now), None);
        assert_eq!(verify(&key, &format!("{body}."), now), None);
        assert_eq!(verify(&key, body, now), None);
        // The access tokens' secret itself is not the ticket key.
        let mut mac = HmacSha256::new_from_slice(b"a signing secret of at least thirty-two bytes").unwrap();
        mac.update(body.as_bytes());
        let with_secret = format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        assert_eq!(verify(&key, &with_secret, now), None);
    }

    #[test]
    fn any_text_as_a_ticket_is_refused_without_panicking() {
        let key = TicketKey::derive(b"a signing secret of at least thirty-two bytes");
        let now = Utc::now();
        // Well signed, but not five fields, or an expiry that is not a number.
        let signed = |payload: &str| {
            let body = URL_SAFE_NO_PAD.encode(payload);
            let mut mac = key.mac();
            mac.update(body.as_bytes());
            format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
        };
        let far = now.timestamp() + 30;
        assert!(verify(&key, &signed(&format!("c~u~expert~{far}~n")), now).is_some(), "the form itself");
        let with_device = verify(&key, &signed(&format!("c~u~patient~{far}~n~d")), now);
        assert_eq!(with_device.and_then(|c| c.device).as_deref(), Some("d"), "a device's access");
        for payload in [
            String::new(),
            format!("c~u~expert~{far}"),
            format!("c~u~expert~{far}~n~"),
            format!("c~u~expert~{far}~n~d~extra"),
            "c~u~expert~soon~n".to_string(),
            format!("c~u~expert~{}~n", i64::MIN),
        ] {
            assert_eq!(verify(&key, &signed(&payload), now), None, "{payload}");
        }
        for junk in ["", ".", "..", "forged", "a.b.c", "%%%.%%%", "\u{0}", &"A".repeat(100_000), "é.é"] {
            assert_eq!(verify(&key, junk, now), None, "{junk:.20}");
        }
    }

    #[test]
    fn a_seat_outlives_the_ticket_that_took_it() {
        // Single use rests on the seat's row holding the ticket's hash until the ticket has
        // expired: a seat lasts the resume window plus the slack, and is deleted an hour after.
        assert!(SEAT_SLACK >= TICKET_TTL);
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
