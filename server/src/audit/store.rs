//! Storage side of the audit trail: events written one at a time, batched, or many in one
//! transaction, and the trail read back with its filters.

use super::{AuditEvent, AuditEventView, Row};
use crate::db::filter::Filtered;
use crate::db::{new_id, Db};
use crate::error::ApiResult;

/// The columns of one event, in the order [`bind_event`] binds them.
const COLUMNS: usize = 11;

fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO audit_events (id, at, actor_id, actor_role, action, resource_type, resource_id, patient_id, client_addr, outcome, detail)
         VALUES {}",
        crate::db::batch::values(rows, COLUMNS, 1)
    )
}

fn bind_event<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    id: &'q str,
    at: &'q str,
    e: &'q AuditEvent,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(id)
        .bind(at)
        .bind(e.actor_id.as_deref())
        .bind(&e.actor_role)
        .bind(&e.action)
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(e.patient_id.as_deref())
        .bind(&e.client_addr)
        .bind(e.outcome.as_str())
        .bind(&e.detail)
}

fn insert<'q>(sql: &'q str, rows: &'q [Row]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    rows.iter().fold(sqlx::query(sql), |q, r| bind_event(q, &r.id, &r.at, &r.event))
}

/// Writes one event on `executor` (inside a transaction, or on any executor).
pub async fn write_one<'e, E>(executor: E, row: &Row) -> ApiResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = insert_sql(1);
    insert(&sql, std::slice::from_ref(row)).execute(executor).await?;
    Ok(())
}

/// Writes events in one statement, which commits them all or none (on SQLite in this
/// process's writer turn).
pub async fn write_rows(db: &Db, rows: &[Row]) -> ApiResult<()> {
    let sql = insert_sql(rows.len());
    let _turn = db.write_turn().await;
    insert(&sql, rows).execute(&db.pool).await?;
    Ok(())
}

/// Writes many events at `at` on `conn`, in multi-row statements of at most 200 events.
pub async fn write_all(conn: &mut sqlx::AnyConnection, events: &[AuditEvent], at: &str) -> ApiResult<()> {
    if !events.is_empty() {
        super::mark_recorded();
    }
    for chunk in events.chunks(200) {
        let ids: Vec<String> = chunk.iter().map(|_| new_id()).collect();
        let sql = insert_sql(chunk.len());
        let q = chunk.iter().zip(&ids).fold(sqlx::query(&sql), |q, (e, id)| bind_event(q, id, at, e));
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The patient record of a patient's account, if any.
pub async fn own_patient_id(db: &Db, user_id: &str) -> ApiResult<Option<String>> {
    let own: Option<(String,)> =
        sqlx::query_as("SELECT id FROM patients WHERE user_id = $1").bind(user_id).fetch_optional(&db.pool).await?;
    Ok(own.map(|o| o.0))
}

/// What a read of the trail selects; `None` (or empty) selects any.
pub struct EventFilter<'a> {
    pub patient_id: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    /// Inclusive lower bound of `at`.
    pub from: Option<String>,
    /// Exclusive upper bound of `at`.
    pub to: Option<String>,
    /// Events older than this one (by id).
    pub before: Option<&'a str>,
}

/// The newest `limit` events selected by `f`, newest first.
pub async fn events(db: &Db, f: EventFilter<'_>, limit: i64) -> ApiResult<Vec<AuditEventView>> {
    let mut q = Filtered::new(
        "SELECT e.id, e.at, e.actor_id, u.display_name AS actor_name, e.actor_role, e.action, e.resource_type,
                e.resource_id, e.patient_id, e.client_addr, e.outcome, e.detail
         FROM audit_events e LEFT JOIN users u ON u.id = e.actor_id",
    );
    if let Some(p) = f.patient_id.filter(|p| !p.is_empty()) {
        q.condition().push("e.patient_id = ").push_bind(p);
    }
    if let Some(a) = f.actor_id.filter(|a| !a.is_empty()) {
        q.condition().push("e.actor_id = ").push_bind(a);
    }
    if let Some(from) = f.from {
        q.condition().push("e.at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.condition().push("e.at < ").push_bind(to);
    }
    if let Some(before) = f.before.filter(|b| !b.is_empty()) {
        q.condition().push("e.id < ").push_bind(before);
    }
    q.push(" ORDER BY e.id DESC LIMIT ").push_bind(limit);
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}
