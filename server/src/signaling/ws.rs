//! One signaling WebSocket: admission by ticket or resume token, then a single task that
//! reads frames (size limit, rate limit, parsing), writes the connection's outbox in
//! batches, sends heartbeats, and hands its participant fresh TURN credentials (`ice-servers`)
//! every half of their lifetime. WebSocket buffers are sized for signaling, not the library
//! defaults, so an idle connection stays small.

use super::hub::{Outbound, Outbox};
use super::protocol::{close, ClientMessage, ErrorCode, RoomRole, ServerMessage, PROTOCOL_VERSION};
use super::room::Joiner;
use super::store::{Seen, Standing};
use super::tickets::{self, Redeemed, Seat, SeatResumed, Ticket};
use crate::api::Query;
use crate::app::AppState;
use crate::auth::ClientAddr;
use crate::error::ApiError;
use crate::error::ErrorCode as Problem;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::SinkExt;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest text message the server reads (an error message beyond it).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Frames beyond this are refused by the WebSocket layer itself (close 1009).
const HARD_FRAME_CAP: usize = 256 * 1024;
/// Messages queued for one connection before it counts as a slow consumer.
pub const OUTBOX_CAPACITY: usize = 256;
// A resume queues `resumed`, the whole replay and perhaps `lobby` at once: room to spare.
const _: () = assert!(super::room::REPLAY_MESSAGES + 32 <= OUTBOX_CAPACITY);
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// With pings every 10 s, a dead connection is noticed within 30 s.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(20);
/// A write that cannot complete in this time ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit-breaking messages tolerated per minute; the next one closes the connection.
pub const MAX_VIOLATIONS_PER_MINUTE: u32 = 10;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RtcParams {
    ticket: Option<String>,
    resume: Option<String>,
    v: Option<u32>,
}

enum Admission {
    Join { ticket: Ticket, participant_id: String, resume_token: String },
    Resume { room: String, token: String, new_token: String, seat: Seat },
    Refuse(u16, &'static str),
}

/// `GET /api/v1/rtc?ticket=...` or `?resume=...`: the signaling WebSocket.
pub async fn rtc(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Query(params): Query<RtcParams>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // A plain GET (no upgrade) is answered like every other error of the API.
    let Ok(ws) = ws else {
        return ApiError::new(
            axum::http::StatusCode::UPGRADE_REQUIRED,
            Problem::UpgradeRequired,
            "Upgrade required",
            "this is the signaling WebSocket: connect with Upgrade: websocket (docs/signaling.md)",
        )
        .into_response();
    };
    let admission = admit(&state, params).await;
    // Small buffers: an idle connection holds little; writes of one batch are coalesced
    // up to 8 KiB and flushed once.
    ws.read_buffer_size(2048)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(HARD_FRAME_CAP * 2)
        .max_message_size(HARD_FRAME_CAP)
        .max_frame_size(HARD_FRAME_CAP)
        .on_upgrade(move |socket| serve(state, socket, admission, addr))
}

async fn admit(state: &AppState, params: RtcParams) -> Admission {
    if params.v.is_some_and(|v| v != PROTOCOL_VERSION) {
        return Admission::Refuse(close::UNSUPPORTED_VERSION, "unsupported protocol version");
    }
    if let Some(token) = params.resume {
        let Some(room) = tickets::resume_room(&token) else {
            return Admission::Refuse(close::RESUME_FAILED, "resume failed: join again");
        };
        // The stored seat is the authority on the token (used once, on any instance, even
        // after a restart): it is replaced first, then the room is told.
        let new_token = tickets::resume_token(room);
        return match state.signaling.tickets.resume(&token, &new_token).await {
            Ok(SeatResumed::Seat(seat)) if seat.ticket.consultation_id == room => {
                Admission::Resume { room: room.to_string(), token, new_token, seat }
            }
            Ok(SeatResumed::Seat(_) | SeatResumed::Invalid) => {
                Admission::Refuse(close::RESUME_FAILED, "resume failed: join again")
            }
            Ok(SeatResumed::Revoked) => Admission::Refuse(close::ACCESS_REVOKED, "access revoked"),
            Ok(SeatResumed::NotParticipant) => {
                Admission::Refuse(close::NOT_A_PARTICIPANT, "not a participant of this consultation")
            }
            Err(_) => Admission::Refuse(close::GOING_AWAY, "try again"),
        };
    }
    let Some(ticket) = params.ticket else {
        return Admission::Refuse(close::TICKET_INVALID, "a ticket is required");
    };
    // The seat the ticket gives, stored with its redemption: the participant id and the
    // secret of its first resume token (the token names the room, known once redeemed).
    let participant_id = super::participant_id();
    let secret = tickets::random_token();
    match state.signaling.tickets.redeem(&ticket, &participant_id, &secret).await {
        Ok(Redeemed::Admitted(t)) => {
            let resume_token = tickets::resume_token_with(&t.consultation_id, &secret);
            Admission::Join { ticket: t, participant_id, resume_token }
        }
        Ok(Redeemed::NotParticipant) => {
            Admission::Refuse(close::NOT_A_PARTICIPANT, "not a participant of this consultation")
        }
        Ok(Redeemed::Invalid) => Admission::Refuse(close::TICKET_INVALID, "the ticket is unknown, expired or used"),
        Err(_) => Admission::Refuse(close::GOING_AWAY, "try again"),
    }
}

/// A token bucket: `rate` messages per second on average, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate: u32, now: Instant) -> RateLimiter {
        let rate = f64::from(rate.max(1));
        RateLimiter { rate, burst: rate * 2.0, tokens: rate * 2.0, last: now }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts limit-breaking messages per minute.
#[derive(Debug, Clone)]
pub struct Violations {
    window_start: Instant,
    count: u32,
}

impl Violations {
    pub fn new(now: Instant) -> Violations {
        Violations { window_start: now, count: 0 }
    }

    /// Counts one; true when the connection has now broken limits too often.
    pub fn strike(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(60) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > MAX_VIOLATIONS_PER_MINUTE
    }
}

/// How a connection ended.
enum End {
    /// The client left on purpose (close code 1000).
    Left,
    /// Socket lost, closed otherwise, or closed by the server: the seat is kept.
    Lost,
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &'static str) {
    close_with(&mut socket, code, reason).await;
}

async fn serve(state: AppState, socket: WebSocket, admission: Admission, addr: String) {
    let hub = state.signaling.clone();
    let conn: u64 = rand::random();
    let outbox = Arc::new(Outbox::new(OUTBOX_CAPACITY));
    let (room, device) = match admission {
        Admission::Refuse(code, reason) => return refuse(socket, code, reason).await,
        Admission::Join { ticket: t, participant_id, resume_token } => {
            // Written by `POST join` from the participant's role; anything else is refused
            // rather than read as some role.
            let Ok(role) = t.room_role.parse::<RoomRole>() else {
                tracing::error!(room_role = %t.room_role, "a ticket names an unknown room role");
                return refuse(socket, close::TICKET_INVALID, "ticket invalid").await;
            };
            let joiner = Joiner {
                id: participant_id,
                conn,
                user_id: t.user_id,
                name: t.display_name,
                role,
                // Doctors enter directly; a patient admitted before (this room's timeline says so,
                // see `Ticket::admitted`) too, even if the room was lost to a restart meanwhile.
                may_enter: role.is_doctor() || t.admitted,
                resume_hash: String::new(),
            };
            hub.join(&t.consultation_id, joiner, resume_token, outbox.clone(), &addr);
            (t.consultation_id, t.device)
        }
        Admission::Resume { room, token, new_token, seat } => {
            let Ok(role) = seat.ticket.room_role.parse::<RoomRole>() else {
                tracing::error!(room_role = %seat.ticket.room_role, "a stored seat names an unknown room role");
                return refuse(socket, close::RESUME_FAILED, "resume failed").await;
            };
            // Taken back only if the room lost the seat (a restart): the same rules as a join.
            let restore = Joiner {
                id: seat.participant_id,
                conn,
                user_id: seat.ticket.user_id,
                name: seat.ticket.display_name,
                role,
                may_enter: role.is_doctor() || seat.ticket.admitted,
                resume_hash: String::new(),
            };
            hub.resume(&room, conn, &token, new_token, Some(restore), outbox.clone(), &addr);
            (room, seat.ticket.device)
        }
    };
    let end = pump(&state, socket, &room, conn, &outbox, device.as_deref()).await;
    if let End::Left = end {
        hub.message(&room, conn, ClientMessage::Leave, Instant::now());
    }
    hub.detach(&room, conn);
}

/// The next id whose access changed; `None` when this connection fell behind (any of the
/// missed ones may be its own). Pends for good once the sender is gone (the server stopping).
async fn next_access_change(
    access: &mut Option<tokio::sync::broadcast::Receiver<std::sync::Arc<str>>>,
) -> Option<std::sync::Arc<str>> {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = access.as_mut() else { return std::future::pending().await };
    match rx.recv().await {
        Ok(id) => Some(id),
        Err(RecvError::Lagged(_)) => None,
        Err(RecvError::Closed) => {
            *access = None;
            std::future::pending().await
        }
    }
}

/// Why the participant seated on this connection (account `user_id`, seated with token
/// generation `generation`, through `device` if a kiosk's) may no longer be in `room`, with
/// the close code that says so; `None` while they may (or the store cannot tell for now).
/// At a `heartbeat` it is read with the other connections' heartbeats of the moment (one
/// statement of each kind a second, not one per connection); after an announced change, at once.
async fn lost_standing(
    state: &AppState,
    room: &str,
    user_id: &str,
    generation: i64,
    device: Option<&str>,
    heartbeat: bool,
) -> Option<(u16, &'static str)> {
    let seen = if heartbeat {
        state.signaling.tickets.heartbeat_read(room, user_id, device).await
    } else {
        let account = state.accounts.state(user_id).await;
        let device_active = match device {
            Some(device) => Some(crate::devices::store::is_active(&state.db, device).await),
            None => None,
        };
        let standing = super::store::standing(&state.db, room, user_id).await;
        Seen { account, device_active, standing }
    };
    verdict(&seen, generation)
}

/// Whether what was read of a participant seated with token generation `generation` still lets
/// them sit in the room; what could not be read counts for them (read again at the next
/// heartbeat).
fn verdict(seen: &Seen, generation: i64) -> Option<(u16, &'static str)> {
    let revoked = match &seen.account {
        Ok(Some(a)) => !a.active || a.generation > generation,
        Ok(None) => true,
        Err(_) => false,
    } || matches!(seen.device_active, Some(Ok(false)));
    if revoked {
        // Leaves the room for good: the seat is freed, so no resume brings it back.
        return Some((close::ACCESS_REVOKED, "access revoked"));
    }
    // An expert who has declined the consultation (one of an MDT's, the call going on without
    // them) leaves it too: the ticket let them in as a participant, and they are one no longer.
    match seen.standing {
        Ok(Standing::NotParticipant) => {
            Some((close::NOT_A_PARTICIPANT, "no longer a participant of this consultation"))
        }
        // Cancelled while the call went on: the room closes for everyone in it.
        Ok(Standing::Called) => Some((close::ENDED, "the consultation was cancelled")),
        Ok(Standing::Taking) | Err(_) => None,
    }
}

/// A read of whether the participant may still be in the room ([`lost_standing`]).
type StandingCheck<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<(u16, &'static str)>> + Send + 'a>>;

/// Reads, writes and pings until the connection ends. A seat taken through a device's access
/// (`device`: a kiosk's check-in) ends with the device, at the next heartbeat.
async fn pump(
    state: &AppState,
    mut socket: WebSocket,
    room: &str,
    conn: u64,
    outbox: &Outbox,
    device: Option<&str>,
) -> End {
    let hub = &state.signaling;
    let now = Instant::now();
    let mut limiter = RateLimiter::new(state.config.signaling_messages_per_second, now);
    let mut violations = Violations::new(now);
    let mut last_seen = now;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut batch: Vec<Outbound> = Vec::new();
    let mut sent_at: Vec<Instant> = Vec::new();
    // TURN credentials expire: once `joined`/`resumed` names the participant, this connection
    // sends it ICE servers with a credential minted afresh every `refresh_every` (none without
    // TURN), so an ICE restart late in a long call still gets through the relay.
    let refresh_every = super::ice_refresh_period(&state.config);
    let mut refresh_for: Option<String> = None;
    // The seated participant's account and its token generation when it was seated: a
    // deactivation or revocation since then ends the connection as soon as it is announced
    // (`Accounts::access_changed`), and at the latest at the next heartbeat.
    let mut account: Option<(String, i64)> = None;
    let mut access = Some(state.accounts.watch());
    // That standing is read beside the connection's work, not in its way: while it is read
    // (a slow database, or one out of reach until the pool gives up) the connection goes on
    // relaying and delivering.
    let mut check: Option<StandingCheck<'_>> = None;
    let start_check = |user_id: &str, generation: i64, heartbeat: bool| -> StandingCheck<'_> {
        let user_id = user_id.to_string();
        Box::pin(async move { lost_standing(state, room, &user_id, generation, device, heartbeat).await })
    };
    let refresh = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(refresh);
    loop {
        tokio::select! {
            biased;
            _ = outbox.notified() => {
                if let Some(code) = outbox.killed() {
                    let reason = if code == close::SLOW_CONSUMER { "outbound queue overflow" } else { "closed" };
                    close_with(&mut socket, code, reason).await;
                    return End::Lost;
                }
                outbox.take(&mut batch);
                let mut closing = None;
                for item in batch.drain(..) {
                    match item {
                        Outbound::Text(text, received) => {
                            if let Some(r) = received {
                                sent_at.push(r);
                            }
                            let fed = tokio::time::timeout(WRITE_TIMEOUT, socket.feed(Message::Text(text))).await;
                            if !matches!(fed, Ok(Ok(()))) {
                                return End::Lost;
                            }
                        }
                        Outbound::Close(code, reason) => {
                            closing = Some((code, reason));
                            break;
                        }
                        Outbound::Seated { user_id } => {
                            match state.accounts.state(&user_id).await {
                                Ok(Some(a)) if a.active => account = Some((user_id.clone(), a.generation)),
                                Ok(_) => closing = Some((close::ACCESS_REVOKED, "access revoked")),
                                Err(_) => {}
                            }
                            if let Some(every) = refresh_every {
                                refresh.as_mut().reset(tokio::time::Instant::now() + every);
                                refresh_for = Some(user_id);
                            }
                        }
                    }
                }
                batch.clear();
                if let Some((code, reason)) = closing {
                    close_with(&mut socket, code, reason).await;
                    return if code == close::ACCESS_REVOKED { End::Left } else { End::Lost };
                }
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, socket.flush()).await, Ok(Ok(()))) {
                    return End::Lost;
                }
                for r in sent_at.drain(..) {
                    hub.stats.relay_latency.record(r.elapsed());
                }
            }
            frame = socket.recv() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        if is_over_size_limit(e) {
                            close_over_size_limit(&mut socket).await;
                        }
                        return End::Lost;
                    }
                    None => return End::Lost,
                };
                let now = Instant::now();
                last_seen = now;
                let problem = match frame {
                    Message::Text(text) => {
                        if text.len() > MAX_MESSAGE_BYTES {
                            Some((ErrorCode::TooLarge, format!("a message holds at most {MAX_MESSAGE_BYTES} bytes")))
                        } else if !limiter.allow(now) {
                            Some((ErrorCode::RateLimited, format!(
                                "at most {} messages per second", state.config.signaling_messages_per_second)))
                        } else {
                            match ClientMessage::parse(text.as_str()) {
                                // Kept before anyone sees it: this connection waits for the write.
                                // (Not the sender's fault when it is not: no strike.)
                                Ok(ClientMessage::Chat { text }) => {
                                    // Boxed: awaited rarely, and a database write's future held in
                                    // every connection's task would add kilobytes to each.
                                    if let Err((code, message)) = Box::pin(hub.chat(room, conn, text, now)).await {
                                        let text = serde_json::to_string(&ServerMessage::error(code, message)).unwrap_or_default();
                                        outbox.push(Outbound::Text(text.into(), None));
                                    }
                                    None
                                }
                                // A doctor's decision about who is in the room: kept before it
                                // takes effect, likewise.
                                Ok(msg @ (ClientMessage::Admit { .. } | ClientMessage::Remove { .. } | ClientMessage::End)) => {
                                    if let Err((code, message)) = Box::pin(hub.decide(room, conn, msg, now)).await {
                                        let text = serde_json::to_string(&ServerMessage::error(code, message)).unwrap_or_default();
                                        outbox.push(Outbound::Text(text.into(), None));
                                    }
                                    None
                                }
                                Ok(msg) => {
                                    hub.message(room, conn, msg, now);
                                    None
                                }
                                Err(e) => {
                                    let mut detail = e.to_string();
                                    detail.truncate(200);
                                    Some((ErrorCode::Malformed, detail))
                                }
                            }
                        }
                    }
                    Message::Binary(_) => Some((ErrorCode::Malformed, "binary frames are not part of the protocol".into())),
                    Message::Ping(_) | Message::Pong(_) => None,
                    Message::Close(frame) => {
                        return if frame.is_some_and(|f| f.code == 1000) { End::Left } else { End::Lost };
                    }
                };
                if let Some((code, message)) = problem {
                    hub.stats.violations.fetch_add(1, Ordering::Relaxed);
                    if violations.strike(now) {
                        close_with(&mut socket, close::POLICY_VIOLATION, "too many messages broke a limit").await;
                        return End::Lost;
                    }
                    let text = serde_json::to_string(&ServerMessage::error(code, message)).unwrap_or_default();
                    outbox.push(Outbound::Text(text.into(), None));
                }
            }
            changed = next_access_change(&mut access) => {
                // An account, device or consultation whose access changed: this connection's
                // own (or, having fallen behind, possibly its own) is checked right now.
                let mine = match changed.as_deref() {
                    Some(id) => account.as_ref().is_some_and(|(u, _)| u == id) || device == Some(id) || room == id,
                    None => true,
                };
                // (A read already under way is replaced: this one starts after the change.)
                if let (true, Some((user_id, generation))) = (mine, &account) {
                    check = Some(start_check(user_id, *generation, false));
                }
            }
            verdict = async { match check.as_mut() { Some(c) => c.await, None => std::future::pending().await } } => {
                check = None;
                if let Some((code, reason)) = verdict {
                    close_with(&mut socket, code, reason).await;
                    return End::Left;
                }
            }
            _ = ping.tick() => {
                if let (None, Some((user_id, generation))) = (&check, &account) {
                    check = Some(start_check(user_id, *generation, true));
                }
                if last_seen.elapsed() > HEARTBEAT_TIMEOUT {
                    let _ = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        socket.send(close_message(close::HEARTBEAT_TIMEOUT, "no heartbeat")),
                    )
                    .await;
                    return End::Lost;
                }
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                    return End::Lost;
                }
            }
            () = &mut refresh, if refresh_for.is_some() => {
                let (Some(user_id), Some(every)) = (refresh_for.as_deref(), refresh_every) else { continue };
                refresh.as_mut().reset(tokio::time::Instant::now() + every);
                if let Some(msg) = super::ice_refresh(&state.config, user_id, Utc::now()) {
                    let text = serde_json::to_string(&msg).unwrap_or_default();
                    if outbox.push(Outbound::Text(text.into(), None)) {
                        hub.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        hub.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Sends a close frame, then reads (and drops) what the client still sends until it answers
/// the close, for at most 2 s, so the close frame is not lost to a TCP reset.
async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, socket.send(close_message(code, reason))).await, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(frame)) = socket.recv().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Whether a read failed because a frame or message was larger than [`HARD_FRAME_CAP`].
fn is_over_size_limit(e: axum::Error) -> bool {
    e.into_inner().downcast_ref::<tungstenite::Error>().is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Closes with 1009 after a frame over the hard cap. The rest of that frame stays unread, so
/// the socket is held open a moment: closing it at once would reset the TCP connection and
/// could destroy the close frame before the client reads it.
async fn close_over_size_limit(socket: &mut WebSocket) {
    let sent = tokio::time::timeout(
        WRITE_TIMEOUT,
        socket.send(close_message(close::MESSAGE_TOO_BIG, "a frame holds at most 256 KiB")),
    )
    .await;
    if matches!(sent, Ok(Ok(()))) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_allows_bursts_then_the_average() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(10, t0);
        let allowed = (0..100).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, 20, "a burst of twice the rate");
        assert!(!l.allow(t0 + Duration::from_millis(50)));
        assert!(l.allow(t0 + Duration::from_millis(150)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| l.allow(later)).count(), 20, "refills up to the burst only");
    }

    #[test]
    fn a_heartbeat_verdict_follows_the_account_the_device_and_the_consultation() {
        use crate::auth::accounts::AccountState;
        use crate::error::ApiError;
        let account = |active, generation| Ok(Some(AccountState { active, generation, must_change_password: false }));
        let seen = |account, device_active, standing| Seen { account, device_active, standing };
        let code = |s: &Seen| verdict(s, 3).map(|(code, _)| code);
        assert_eq!(code(&seen(account(true, 3), None, Ok(Standing::Taking))), None);
        assert_eq!(code(&seen(account(true, 3), Some(Ok(true)), Ok(Standing::Taking))), None);
        assert_eq!(
            code(&seen(account(false, 3), None, Ok(Standing::Taking))),
            Some(close::ACCESS_REVOKED),
            "deactivated"
        );
        assert_eq!(
            code(&seen(account(true, 4), None, Ok(Standing::Taking))),
            Some(close::ACCESS_REVOKED),
            "signed out everywhere"
        );
        assert_eq!(code(&seen(Ok(None), None, Ok(Standing::Taking))), Some(close::ACCESS_REVOKED), "no such account");
        assert_eq!(
            code(&seen(account(true, 3), Some(Ok(false)), Ok(Standing::Taking))),
            Some(close::ACCESS_REVOKED),
            "kiosk revoked"
        );
        assert_eq!(code(&seen(account(true, 3), None, Ok(Standing::NotParticipant))), Some(close::NOT_A_PARTICIPANT));
        assert_eq!(code(&seen(account(true, 3), None, Ok(Standing::Called))), Some(close::ENDED));
        // Revocation is told before the consultation's state.
        assert_eq!(code(&seen(account(false, 3), None, Ok(Standing::Called))), Some(close::ACCESS_REVOKED));
        // What could not be read does not end a call.
        let gone = || ApiError::internal("database out of reach");
        assert_eq!(code(&seen(Err(gone()), Some(Err(gone())), Err(gone()))), None);
        assert_eq!(code(&seen(Err(gone()), None, Ok(Standing::Called))), Some(close::ENDED));
    }

    #[test]
    fn violations_close_after_the_tenth_in_a_minute() {
        let t0 = Instant::now();
        let mut v = Violations::new(t0);
        for _ in 0..MAX_VIOLATIONS_PER_MINUTE {
            assert!(!v.strike(t0));
        }
        assert!(v.strike(t0));
        let mut v = Violations::new(t0);
        for i in 0..30 {
            assert!(!v.strike(t0 + Duration::from_secs(7 * i)), "spread out, never too many");
        }
    }
}
