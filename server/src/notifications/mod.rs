//! Notifications: a persistent inbox per user, and live delivery of the same events to the
//! user's open event streams (Server-Sent Events over an authenticated request).

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{new_id, now_ts, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub consultation_id: Option<String>,
    pub created_at: String,
    pub read_at: Option<String>,
}

/// Live subscribers per user. A slow subscriber loses live events (they stay in the inbox).
#[derive(Default)]
pub struct NotificationHub {
    channels: Mutex<HashMap<String, broadcast::Sender<Notification>>>,
}

impl NotificationHub {
    pub fn subscribe(&self, user_id: &str) -> broadcast::Receiver<Notification> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(user_id.to_string()).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }

    fn publish(&self, user_id: &str, n: &Notification) {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(user_id) {
            let _ = tx.send(n.clone());
        }
    }

    pub fn online_users(&self) -> usize {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|t| t.receiver_count() > 0).count()
    }
}

/// One event for a set of users.
pub struct Notice<'a> {
    pub kind: &'a str,
    pub title: String,
    pub body: String,
    pub consultation_id: Option<&'a str>,
}

/// Stores the notice in each user's inbox on `executor`; returns what to publish live once
/// the surrounding transaction has committed (see [`publish`]).
pub async fn store(
    conn: &mut sqlx::AnyConnection,
    user_ids: &[String],
    notice: &Notice<'_>,
) -> ApiResult<Vec<(String, Notification)>> {
    let mut out = Vec::with_capacity(user_ids.len());
    for uid in user_ids {
        let n = Notification {
            id: new_id(),
            kind: notice.kind.to_string(),
            title: notice.title.clone(),
            body: notice.body.clone(),
            consultation_id: notice.consultation_id.map(str::to_string),
            created_at: now_ts(),
            read_at: None,
        };
        out.push((uid.clone(), n));
    }
    // One multi-row INSERT per batch (a round trip each), in chunks well under the
    // bind-parameter limits of SQLite and PostgreSQL.
    for chunk in out.chunks(100) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 7;
                format!("(${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7)
            })
            .collect();
        let sql = format!(
            "INSERT INTO notifications (id, user_id, kind, title, body, consultation_id, created_at) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (uid, n) in chunk {
            q = q
                .bind(&n.id)
                .bind(uid)
                .bind(&n.kind)
                .bind(&n.title)
                .bind(&n.body)
                .bind(&n.consultation_id)
                .bind(&n.created_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(out)
}

/// Delivers stored notifications to the users' live streams.
pub fn publish(state: &AppState, stored: &[(String, Notification)]) {
    for (uid, n) in stored {
        state.notifications.publish(uid, n);
    }
}

/// Stores and publishes outside any transaction.
pub async fn notify(state: &AppState, user_ids: &[String], notice: Notice<'_>) -> ApiResult<()> {
    let mut conn = state.db.pool.acquire().await?;
    let stored = store(&mut conn, user_ids, &notice).await?;
    publish(state, &stored);
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxFilter {
    pub unread: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn inbox(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<InboxFilter>,
) -> ApiResult<Json<crate::api::Page<Notification>>> {
    let limit = f.limit.unwrap_or(50).clamp(1, 200) as usize;
    let rows: Vec<Notification> = sqlx::query_as(
        "SELECT id, kind, title, body, consultation_id, created_at, read_at FROM notifications
         WHERE user_id = $1 AND ($2 = 0 OR read_at IS NULL) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4",
    )
    .bind(&user.id)
    .bind(i64::from(f.unread.unwrap_or(false)))
    .bind(f.cursor.unwrap_or_default())
    .bind(limit as i64 + 1)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(crate::api::page(rows, limit, |n| n.id.clone())))
}

async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<axum::http::StatusCode> {
    let done = sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
        .bind(now_ts())
        .bind(&id)
        .bind(&user.id)
        .execute(&state.db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("notification"));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn mark_all_read(State(state): State<AppState>, user: AuthUser) -> ApiResult<axum::http::StatusCode> {
    sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
        .bind(now_ts())
        .bind(&user.id)
        .execute(&state.db.pool)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `text/event-stream` of the caller's notifications as they happen (event name =
/// notification kind, data = the notification as JSON), with keep-alive comments.
async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = state.notifications.subscribe(&user.id);
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(n) => {
                    let data = serde_json::to_string(&n).unwrap_or_default();
                    return Some((Ok(Event::default().event(n.kind.clone()).id(n.id.clone()).data(data)), rx));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

pub fn routes() -> Routes {
    Routes::new("notifications")
        .get("/api/v1/notifications", "The caller's notification inbox (newest first)", inbox)
        .get("/api/v1/notifications/stream", "Live notifications (Server-Sent Events)", stream)
        .post("/api/v1/notifications/{id}/read", "Mark one notification read", mark_read)
        .post("/api/v1/notifications/read-all", "Mark every notification read", mark_all_read)
}
