//! What edits replaced. A patient record's demographics and a follow-up visit's date, status
//! and note are edited in place; each edit first keeps the previous values of the fields it
//! changes (with who and when) in the same transaction, so an edit never loses what was there
//! before. `GET /api/v1/patients/{id}/revisions` lists them for whoever may read the record.

use crate::api::{Json, Page, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{new_id, now_ts, Db, Id};
use crate::error::ApiResult;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};

/// The previous values of the fields an edit changes: for each `(field, before, after)`, the
/// `before` of those whose `after` is given and differs from it. Empty when nothing changes.
pub fn replaced(fields: &[(&str, &str, Option<&str>)]) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(_, before, after)| after.is_some_and(|a| a != *before))
        .map(|(name, before, _)| (name.to_string(), Value::String(before.to_string())))
        .collect()
}

/// Keeps what an edit of `resource_type` `resource_id` (of patient `patient_id`) replaces, in
/// the edit's transaction; nothing when it replaces nothing.
pub async fn keep(
    conn: &mut sqlx::AnyConnection,
    patient_id: &str,
    resource_type: &str,
    resource_id: &str,
    by: &str,
    previous: Map<String, Value>,
) -> ApiResult<()> {
    if previous.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO record_revisions (id, patient_id, resource_type, resource_id, revised_at, revised_by, previous)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(patient_id)
    .bind(resource_type)
    .bind(resource_id)
    .bind(now_ts())
    .bind(by)
    .bind(Value::Object(previous).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One edit: what it replaced, who made it and when.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Revision {
    /// `patient` (the record's demographics) or `follow_up_visit`.
    pub resource_type: String,
    pub resource_id: String,
    pub revised_at: String,
    pub revised_by: String,
    pub revised_by_name: String,
    /// The fields the edit changed, with the values they had before it.
    pub previous: Map<String, Value>,
}

async fn of_patient(db: &Db, patient_id: &str) -> ApiResult<Vec<Revision>> {
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT r.resource_type, r.resource_id, r.revised_at, r.revised_by, u.display_name, r.previous
         FROM record_revisions r JOIN users u ON u.id = r.revised_by
         WHERE r.patient_id = $1 ORDER BY r.revised_at DESC, r.id DESC",
    )
    .bind(patient_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(resource_type, resource_id, revised_at, revised_by, revised_by_name, previous)| Revision {
            resource_type,
            resource_id,
            revised_at,
            revised_by,
            revised_by_name,
            previous: serde_json::from_str(&previous).unwrap_or_default(),
        })
        .collect())
}

/// The edits of a patient's record, newest first, for whoever may read the record (audited as
/// a read of it); a resident ID number replaced is shown as the caller sees the current one.
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<Page<Revision>>> {
    let patient = crate::patients::load_for(&state.db, &user, &id, "read_revisions").await?;
    let mut items = of_patient(&state.db, &id).await?;
    if !crate::patients::sees_full_resident_id(&user, &patient) {
        for r in &mut items {
            if let Some(Value::String(v)) = r.previous.get_mut("resident_id") {
                *v = crate::patients::resident_id::mask(v);
            }
        }
    }
    Ok(Json(Page { items, next: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fields_that_change_keep_their_previous_value() {
        let kept = replaced(&[
            ("name", "张秀英", Some("张秀瑛")),
            ("phone", "13800000001", Some("13800000001")),
            ("birth_date", "1948-05-12", None),
            ("note", "", Some("血压 132/84")),
        ]);
        assert_eq!(Value::Object(kept), serde_json::json!({"name": "张秀英", "note": ""}));
        assert!(replaced(&[("phone", "138", Some("138")), ("sex", "female", None)]).is_empty());
    }
}
