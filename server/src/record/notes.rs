//! The community doctor's case summary and notes on a consultation: appended, never edited
//! or deleted; a wrong note is withdrawn as "entered in error" with a reason.

use crate::api::{Json, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::consultations::state::Reason;
use crate::consultations::store;
use crate::db::{new_id, now_ts, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Note {
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    pub kind: String,
    pub body: String,
    pub status: String,
    pub withdrawn_reason: String,
    pub created_at: String,
}

pub async fn notes_of(state: &AppState, consultation_id: &str) -> ApiResult<Vec<Note>> {
    Ok(sqlx::query_as(
        "SELECT n.id, n.author_id, u.display_name AS author_name, n.kind, n.body, n.status, n.withdrawn_reason, n.created_at
         FROM consultation_notes n JOIN users u ON u.id = n.author_id WHERE n.consultation_id = $1 ORDER BY n.created_at, n.id",
    )
    .bind(consultation_id)
    .fetch_all(&state.db.pool)
    .await?)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// `case_summary` or `note` (default).
    #[serde(default)]
    pub kind: Option<String>,
    pub body: String,
}

async fn require_clinician(state: &AppState, user: &AuthUser, consultation_id: &str) -> ApiResult<()> {
    match store::participant_role(&state.db, consultation_id, &user.id).await?.as_deref() {
        Some("requester" | "expert") => Ok(()),
        _ => Err(ApiError::forbidden("the consultation's doctors write its notes")),
    }
}

pub async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<NoteBody>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    let c = store::load_for(&state.db, &user, &id, "write_note").await?;
    require_clinician(&state, &user, &id).await?;
    let kind = b.kind.unwrap_or_else(|| "note".into());
    if !matches!(kind.as_str(), "case_summary" | "note") {
        return Err(ApiError::validation("kind", "case_summary or note"));
    }
    let body = b.body.trim();
    if body.is_empty() || body.chars().count() > 20_000 {
        return Err(ApiError::validation("body", "1 to 20,000 characters"));
    }
    let note_id = new_id();
    let mut tx = crate::audit::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO consultation_notes (id, consultation_id, author_id, kind, body, status, created_at) VALUES ($1, $2, $3, $4, $5, 'current', $6)",
    )
    .bind(&note_id)
    .bind(&id)
    .bind(&user.id)
    .bind(&kind)
    .bind(body)
    .bind(now_ts())
    .execute(&mut *tx)
    .await?;
    tx.audit(crate::audit::event(&user, "write_note", "note", &note_id).patient(&c.patient_id)).await?;
    tx.commit().await?;
    let note = notes_of(&state, &id)
        .await?
        .into_iter()
        .find(|n| n.id == note_id)
        .ok_or_else(|| ApiError::internal("note vanished"))?;
    Ok((StatusCode::CREATED, Json(note)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    pub reason: String,
}

pub async fn withdraw(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(id), Id(note))): Path<(Id, Id)>,
    Json(b): Json<WithdrawBody>,
) -> ApiResult<Json<Vec<Note>>> {
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    let c = store::load_for(&state.db, &user, &id, "withdraw_note").await?;
    let mut tx = crate::audit::begin(&state.db).await?;
    let done = sqlx::query(
        "UPDATE consultation_notes SET status = 'entered_in_error', withdrawn_reason = $1
         WHERE id = $2 AND consultation_id = $3 AND author_id = $4 AND status = 'current'",
    )
    .bind(reason.as_str())
    .bind(&note)
    .bind(&id)
    .bind(&user.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(ApiError::not_found("note"));
    }
    tx.audit(
        crate::audit::event(&user, "withdraw_note", "note", &note).patient(&c.patient_id).detail(reason.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(notes_of(&state, &id).await?))
}
