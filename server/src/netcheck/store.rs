//! All SQL of the network check: results kept per organisation (diagnostics, not patient
//! data: no audit event).

use super::verdict::Outcome;
use super::{ResultView, SessionInfo};
use crate::db::filter::Filtered;
use crate::db::{ts, Db};
use crate::error::{ApiError, ApiResult};
use serde_json::Value;

/// Stores the outcome of one check.
pub async fn insert(db: &Db, s: &SessionInfo, outcome: &Outcome) -> ApiResult<()> {
    let path = serde_json::to_value(outcome.path).unwrap_or_default();
    let verdict = serde_json::to_value(outcome.verdict).unwrap_or_default();
    sqlx::query(
        "INSERT INTO netcheck_results (id, user_id, organisation_id, started_at, completed_at, path, verdict, result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(&s.user_id)
    .bind(&s.organisation_id)
    .bind(ts(s.started_at))
    .bind(crate::db::now_ts())
    .bind(path.as_str().unwrap_or("unknown"))
    .bind(verdict.as_str().unwrap_or("cannot_connect"))
    .bind(serde_json::to_string(outcome).map_err(ApiError::internal)?)
    .execute(&mut *db.writer().await?)
    .await?;
    Ok(())
}

/// id, user, user's name, organisation, its name, started, completed, result JSON.
type ResultRow = (String, String, String, String, String, String, String, String);

fn view(row: ResultRow) -> ResultView {
    let (id, user_id, user_name, organisation_id, organisation_name, started_at, completed_at, result) = row;
    ResultView {
        id,
        user_id,
        user_name,
        organisation_id,
        organisation_name,
        started_at,
        completed_at,
        outcome: serde_json::from_str(&result).unwrap_or(Value::Null),
    }
}

const RESULT_SELECT: &str =
    "SELECT r.id, r.user_id, u.display_name, r.organisation_id, o.name, r.started_at, r.completed_at, r.result
     FROM netcheck_results r JOIN users u ON u.id = r.user_id JOIN organisations o ON o.id = r.organisation_id";

/// One stored result with who ran it.
pub async fn result(db: &Db, id: &str) -> ApiResult<Option<ResultView>> {
    let row: Option<ResultRow> =
        sqlx::query_as(&format!("{RESULT_SELECT} WHERE r.id = $1")).bind(id).fetch_optional(&db.pool).await?;
    Ok(row.map(view))
}

/// Whose results a list covers.
pub enum Scope<'a> {
    All,
    /// An organisation and the centres linked to it in the consortium.
    Oversees(&'a str),
}

/// Up to `limit` results in scope, newest first: of one organisation when given, before the
/// id `before` when given.
pub async fn results(
    db: &Db,
    scope: Scope<'_>,
    organisation: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<ResultView>> {
    let mut q = Filtered::new(RESULT_SELECT);
    if let Scope::Oversees(org) = scope {
        q.condition().push("(r.organisation_id = ").push_bind(org);
        q.push(" OR r.organisation_id IN (SELECT centre_id FROM consortium_links WHERE hospital_id = ").push_bind(org);
        q.push("))");
    }
    if let Some(o) = organisation {
        q.condition().push("r.organisation_id = ").push_bind(o);
    }
    if let Some(b) = before {
        q.condition().push("r.id < ").push_bind(b);
    }
    q.push(" ORDER BY r.id DESC LIMIT ").push_bind(limit);
    let rows: Vec<ResultRow> = q.build_query_as().fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(view).collect())
}
