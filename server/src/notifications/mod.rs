//! Notifications: a persistent inbox per user, and live delivery of the same events to the
//! user's open event streams (Server-Sent Events over an authenticated request).
//!
//! With several instances (`nats_url`), each new notification is also published on core NATS
//! (subject `teleconsult.notify.<user id>`, see [`subject`]); every instance subscribes to
//! `teleconsult.notify.*` and hands what it receives to its own streams of that user, except
//! what it published itself (its streams already had it), so a user's stream on any instance
//! gets each notification once. Core NATS, not JetStream: a live push missed while NATS is
//! away is not replayed; the inbox in the database has it.

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{new_id, now_ts, Db, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

pub mod store;
pub mod text;

pub use text::{Lang, Params, Text};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub consultation_id: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
    /// What it says, as a code of [`text`] (empty for notifications made before codes):
    /// clients render it with `params` in their reader's language.
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    #[sqlx(try_from = "String")]
    pub params: Params,
}

/// The subjects live notifications travel on between instances.
pub const SUBJECT_PREFIX: &str = "teleconsult.notify";

/// The subject of a notification for `user_id`; `None` for an id that could not be a subject
/// token (user ids are UUIDs).
pub fn subject(user_id: &str) -> Option<String> {
    let valid =
        !user_id.is_empty() && user_id.len() <= 64 && user_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| format!("{SUBJECT_PREFIX}.{user_id}"))
}

/// A notification as it travels on NATS: the user is the subject's last token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Relayed {
    /// The instance that made it (and already delivered it to its own streams).
    pub origin: u64,
    pub notification: Notification,
}

/// What an instance does with a message received on `subject`: `Some((user, notification))`
/// to hand to its streams of that user; `None` for its own (delivered when made) and for
/// anything unreadable.
pub fn received(me: u64, subject: &str, payload: &[u8]) -> Option<(String, Notification)> {
    let user = subject.strip_prefix(SUBJECT_PREFIX)?.strip_prefix('.')?;
    if self::subject(user).as_deref() != Some(subject) {
        return None;
    }
    let r: Relayed = serde_json::from_slice(payload).ok()?;
    (r.origin != me).then(|| (user.to_string(), r.notification))
}

/// The streams open on this instance, per user.
#[derive(Default)]
struct Local {
    channels: Mutex<HashMap<String, broadcast::Sender<Notification>>>,
}

impl Local {
    fn deliver(&self, user_id: &str, n: &Notification) {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(user_id) {
            let _ = tx.send(n.clone());
        }
    }
}

/// This instance's link to the others over NATS.
struct Relay {
    origin: u64,
    out: mpsc::UnboundedSender<(String, Bytes)>,
    tasks: [AbortHandle; 2],
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Live subscribers per user. A slow subscriber loses live events (they stay in the inbox).
#[derive(Default)]
pub struct NotificationHub {
    local: Arc<Local>,
    relay: Option<Relay>,
}

impl NotificationHub {
    /// Live notifications shared with the other instances on the NATS `client` (the one the
    /// room bus uses): published when made here, received from the others.
    pub async fn over_nats(client: async_nats::Client) -> anyhow::Result<NotificationHub> {
        let origin: u64 = rand::random();
        let local = Arc::new(Local::default());
        let mut incoming = client.subscribe(format!("{SUBJECT_PREFIX}.*")).await?;
        let weak = Arc::downgrade(&local);
        let receiver = tokio::spawn(async move {
            while let Some(msg) = incoming.next().await {
                let Some(local) = weak.upgrade() else { return };
                if let Some((user, n)) = received(origin, &msg.subject, &msg.payload) {
                    local.deliver(&user, &n);
                }
            }
        });
        let (out, mut rx) = mpsc::unbounded_channel::<(String, Bytes)>();
        let publisher = tokio::spawn(async move {
            while let Some((subject, payload)) = rx.recv().await {
                if let Err(e) = client.publish(subject, payload).await {
                    tracing::warn!(error = %e, "a live notification could not be published on NATS");
                }
            }
        });
        let tasks = [receiver.abort_handle(), publisher.abort_handle()];
        Ok(NotificationHub { local, relay: Some(Relay { origin, out, tasks }) })
    }

    pub fn subscribe(&self, user_id: &str) -> broadcast::Receiver<Notification> {
        let mut map = self.local.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(user_id.to_string()).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }

    /// Delivers to this instance's streams of the user and, with NATS, to the other instances.
    fn publish(&self, user_id: &str, n: &Notification) {
        self.local.deliver(user_id, n);
        let Some(relay) = &self.relay else { return };
        let Some(subject) = subject(user_id) else {
            return tracing::warn!(user = %user_id, "not a user id: the notification stays on this instance");
        };
        match serde_json::to_vec(&Relayed { origin: relay.origin, notification: n.clone() }) {
            Ok(payload) => {
                let _ = relay.out.send((subject, payload.into()));
            }
            Err(e) => tracing::error!(error = %e, "a notification did not serialise"),
        }
    }

    pub fn online_users(&self) -> usize {
        self.local
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|t| t.receiver_count() > 0)
            .count()
    }
}

/// One event for a set of users.
pub struct Notice<'a> {
    pub kind: &'a str,
    pub text: Text,
    /// What someone wrote or a time, shown under the title (texts with a body of their own
    /// replace it).
    pub body: String,
    pub consultation_id: Option<&'a str>,
}

impl<'a> Notice<'a> {
    pub fn new(kind: &'a str, text: Text, body: impl Into<String>, consultation_id: Option<&'a str>) -> Notice<'a> {
        Notice { kind, text, body: body.into(), consultation_id }
    }
}

/// Stores the notice in each user's inbox on `conn`; returns what to publish live once the
/// surrounding transaction has committed (see [`publish`]).
pub async fn store(
    conn: &mut sqlx::AnyConnection,
    user_ids: &[String],
    notice: &Notice<'_>,
) -> ApiResult<Vec<(String, Notification)>> {
    let (title, body) = notice.text.bilingual(&notice.body);
    let created_at = now_ts();
    let out: Vec<(String, Notification)> = user_ids
        .iter()
        .map(|uid| {
            let n = Notification {
                id: new_id(),
                kind: notice.kind.to_string(),
                title: title.clone(),
                body: body.clone(),
                consultation_id: notice.consultation_id.map(str::to_string),
                created_at: created_at.clone(),
                read_at: None,
                code: notice.text.code.clone(),
                params: notice.text.params.clone(),
            };
            (uid.clone(), n)
        })
        .collect();
    self::store::insert(conn, &out).await?;
    Ok(out)
}

/// Delivers stored notifications to the users' live streams.
pub fn publish(hub: &NotificationHub, stored: &[(String, Notification)]) {
    for (uid, n) in stored {
        hub.publish(uid, n);
    }
}

/// Stores and publishes outside any transaction.
pub async fn notify(db: &Db, hub: &NotificationHub, user_ids: &[String], notice: Notice<'_>) -> ApiResult<()> {
    let mut conn = db.pool.acquire().await?;
    let stored = store(&mut conn, user_ids, &notice).await?;
    publish(hub, &stored);
    Ok(())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboxFilter {
    pub unread: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn inbox(
    State(db): State<Db>,
    user: AuthUser,
    Query(f): Query<InboxFilter>,
) -> ApiResult<Json<crate::api::Page<Notification>>> {
    let limit = crate::api::page_limit(f.limit, 200)?;
    let before = Some(crate::api::page_cursor(f.cursor)?);
    let rows = self::store::inbox(&db, &user.id, f.unread.unwrap_or(false), before, limit as i64 + 1).await?;
    let page = crate::api::page(rows, limit, |n| n.id.clone());
    // What a notification says is about a patient (a request, a cancellation's reason, a
    // walk-in's name): each one shown is audited, with its consultation's patient.
    let consultations: Vec<&str> = page.items.iter().filter_map(|n| n.consultation_id.as_deref()).collect();
    let patients = self::store::patients_of(&db, &consultations).await?;
    let events = page
        .items
        .iter()
        .map(|n| {
            let patient = n.consultation_id.as_ref().and_then(|c| patients.get(c)).cloned();
            crate::audit::event(&user, "read", "notification", &n.id).maybe_patient(patient)
        })
        .collect();
    crate::audit::record_all(&db, events).await?;
    Ok(Json(page))
}

async fn mark_read(State(db): State<Db>, user: AuthUser, Path(Id(id)): Path<Id>) -> ApiResult<axum::http::StatusCode> {
    if !self::store::mark_read(&db, &user.id, &id, &now_ts()).await? {
        return Err(ApiError::not_found("notification"));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn mark_all_read(State(db): State<Db>, user: AuthUser) -> ApiResult<axum::http::StatusCode> {
    self::store::mark_all_read(&db, &user.id, &now_ts()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `text/event-stream` of the caller's notifications as they happen (event name =
/// notification kind, data = the notification as JSON), with keep-alive comments.
///
/// The stream holds only while its access token would: it ends when the token expires, and
/// when the account is deactivated or its tokens are revoked (a password reset by someone
/// else, a role change), checked before every notification it sends and every
/// [`STREAM_CHECK_INTERVAL`] — as the signaling connection's heartbeat checks its account.
/// Each notification it sends is audited as a read, as the inbox's are.
async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    headers: axum::http::HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let claims = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .and_then(|(_, token)| state.jwt.verify(token.trim()).ok());
    let mut check = tokio::time::interval(STREAM_CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = LiveStream {
        rx: state.notifications.subscribe(&user.id),
        access: state.accounts.watch(),
        check,
        accounts: state.accounts.clone(),
        db: state.db.clone(),
        user_id: user.id.clone(),
        user,
        // The extractor verified this token; `None` cannot happen, and would end the stream.
        grant: claims.map(|c| (c.gen, c.exp)),
    };
    let events = futures_util::stream::unfold(live, |mut live| async move {
        loop {
            tokio::select! {
                received = live.rx.recv() => match received {
                    Ok(n) => {
                        if !live.still_allowed().await {
                            return None;
                        }
                        // Read as the inbox reads it: audited, with its consultation's patient;
                        // one whose event cannot be recorded is not sent (the inbox keeps it).
                        if live.audited(&n).await.is_err() {
                            continue;
                        }
                        let data = serde_json::to_string(&n).unwrap_or_default();
                        return Some((Ok(Event::default().event(n.kind.clone()).id(n.id.clone()).data(data)), live));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // A change of this account's access (deactivation, a reset password, a role
                // change) ends the stream at once, not at the next check.
                changed = live.access.recv() => match changed {
                    Ok(id) if *id != *live.user_id => {}
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !live.still_allowed().await {
                            return None;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = live.check.tick() => {
                    if !live.still_allowed().await {
                        return None;
                    }
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// How often an open notification stream checks that its account may still read it.
pub const STREAM_CHECK_INTERVAL: Duration = Duration::from_secs(10);

struct LiveStream {
    rx: broadcast::Receiver<Notification>,
    /// The ids whose access changed (`Accounts::watch`).
    access: broadcast::Receiver<Arc<str>>,
    check: tokio::time::Interval,
    accounts: Arc<crate::auth::accounts::Accounts>,
    db: Db,
    user_id: String,
    user: AuthUser,
    /// The token's account generation and expiry (seconds since the epoch).
    grant: Option<(i64, i64)>,
}

impl LiveStream {
    /// Records the reading of `n` by the stream's account.
    async fn audited(&self, n: &Notification) -> ApiResult<()> {
        let patient = match n.consultation_id.as_deref() {
            Some(c) => self::store::patients_of(&self.db, &[c]).await?.remove(c),
            None => None,
        };
        crate::audit::event(&self.user, "read", "notification", &n.id).maybe_patient(patient).record(&self.db).await
    }

    async fn still_allowed(&self) -> bool {
        let Some((generation, expires)) = self.grant else { return false };
        if chrono::Utc::now().timestamp() >= expires {
            return false;
        }
        match self.accounts.state(&self.user_id).await {
            Ok(Some(a)) => a.active && a.generation <= generation,
            Ok(None) => false,
            // The store unreachable for a moment: keep the stream, as the signaling heartbeat does.
            Err(_) => true,
        }
    }
}

pub fn routes() -> Routes {
    Routes::new("notifications")
        .get("/api/v1/notifications", "The caller's notification inbox (newest first)", inbox)
        .query::<InboxFilter>()
        .json::<crate::api::Page<Notification>>(200)
        .get("/api/v1/notifications/stream", "Live notifications (Server-Sent Events)", stream)
        .answers(200, Some("text/event-stream"), "live notifications as Server-Sent Events")
        .post("/api/v1/notifications/{id}/read", "Mark one notification read", mark_read)
        .answers(204, None, "marked read")
        .post("/api/v1/notifications/read-all", "Mark every notification read", mark_all_read)
        .answers(204, None, "all marked read")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> Notification {
        Notification {
            id: "0193c2a5-5d1e-7b0a-9a51-3c1f0f4b8e21".into(),
            kind: "request_matched".into(),
            title: "新的会诊请求".into(),
            body: "李医生请求心血管内科会诊".into(),
            consultation_id: Some("0193c2a4-5d1e-7b0a-9a51-3c1f0f4b8e21".into()),
            created_at: "2026-11-23T09:00:00.000000Z".into(),
            read_at: None,
            code: "request_matched".into(),
            params: Params([("urgency".to_string(), "urgent".to_string())].into_iter().collect()),
        }
    }

    #[test]
    fn each_user_has_a_subject_and_only_user_ids_make_one() {
        let user = "0190f5d2-0000-7000-8000-000000000001";
        assert_eq!(subject(user).as_deref(), Some("teleconsult.notify.0190f5d2-0000-7000-8000-000000000001"));
        for bad in ["", "a.b", "*", ">", "a b", "{x}"] {
            assert_eq!(subject(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_instance_takes_the_others_notifications_and_skips_its_own() {
        let user = "0190f5d2-0000-7000-8000-000000000001";
        let subj = subject(user).unwrap();
        let payload = serde_json::to_vec(&Relayed { origin: 7, notification: notification() }).unwrap();
        assert_eq!(received(8, &subj, &payload), Some((user.to_string(), notification())));
        assert_eq!(received(7, &subj, &payload), None, "the origin delivered it when it was made");
        assert_eq!(received(8, "teleconsult.notify.a.b", &payload), None);
        assert_eq!(received(8, "teleconsult.room.x", &payload), None);
        assert_eq!(received(8, "teleconsult.notify.", &payload), None);
        assert_eq!(received(8, &subj, b"not json"), None);
    }

    #[test]
    fn without_nats_notifications_reach_the_users_own_streams() {
        let hub = NotificationHub::default();
        let mut wang = hub.subscribe("wang");
        let mut li = hub.subscribe("li");
        hub.publish("wang", &notification());
        assert_eq!(wang.try_recv().unwrap(), notification());
        assert!(li.try_recv().is_err());
        assert_eq!(hub.online_users(), 2);
    }
}
