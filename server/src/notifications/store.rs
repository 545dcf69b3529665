//! Storage side of notifications: the inbox rows and their read marks.

use super::Notification;
use crate::db::filter::Filtered;
use crate::db::Db;
use crate::error::ApiResult;
use sqlx::AnyConnection;

/// Inserts notifications (user, notification), in multi-row statements of at most 100 rows
/// (a round trip each), well under the bind-parameter limits of SQLite and PostgreSQL.
pub async fn insert(conn: &mut AnyConnection, rows: &[(String, Notification)]) -> ApiResult<()> {
    for chunk in rows.chunks(100) {
        let mut q = Filtered::new(
            "INSERT INTO notifications (id, user_id, kind, title, body, consultation_id, created_at, code, params) VALUES ",
        );
        for (i, (uid, n)) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.push_bind(n.id.clone()).push(", ").push_bind(uid.clone()).push(", ").push_bind(n.kind.clone()).push(", ");
            q.push_bind(n.title.clone())
                .push(", ")
                .push_bind(n.body.clone())
                .push(", ")
                .push_bind(n.consultation_id.clone());
            q.push(", ").push_bind(n.created_at.clone()).push(", ").push_bind(n.code.clone()).push(", ");
            q.push_bind(serde_json::to_string(&n.params).unwrap_or_else(|_| "{}".into())).push(")");
        }
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The user's notifications, newest first: only unread ones when asked, only those older
/// than the cursor when given, at most `limit`.
pub async fn inbox(
    db: &Db,
    user_id: &str,
    unread_only: bool,
    before: Option<String>,
    limit: i64,
) -> ApiResult<Vec<Notification>> {
    let mut q = Filtered::new(
        "SELECT id, kind, title, body, consultation_id, created_at, read_at, code, params FROM notifications WHERE user_id = ",
    );
    q.push_bind(user_id.to_string());
    if unread_only {
        q.push(" AND read_at IS NULL");
    }
    if let Some(before) = before.filter(|b| !b.is_empty()) {
        q.push(" AND id < ").push_bind(before);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// The patient of each of these consultations, by consultation id.
pub async fn patients_of(db: &Db, consultations: &[&str]) -> ApiResult<std::collections::HashMap<String, String>> {
    let mut found = std::collections::HashMap::new();
    for chunk in consultations.chunks(500) {
        let sql = format!(
            "SELECT id, patient_id FROM consultations WHERE id IN ({})",
            crate::db::batch::list(chunk.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String, String)>(&sql);
        for c in chunk {
            q = q.bind(*c);
        }
        found.extend(q.fetch_all(&db.pool).await?);
    }
    Ok(found)
}

/// Marks one of the user's notifications read (keeping the first time); `false` when the
/// user has no such notification.
pub async fn mark_read(db: &Db, user_id: &str, id: &str, now: &str) -> ApiResult<bool> {
    let done = sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(&mut *db.writer().await?)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn mark_all_read(db: &Db, user_id: &str, now: &str) -> ApiResult<()> {
    sqlx::query("UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *db.writer().await?)
        .await?;
    Ok(())
}
