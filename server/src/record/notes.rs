//! The community doctor's case summary and notes on a consultation: appended, never edited
//! or deleted; a wrong note is withdrawn as "entered in error" with a reason.

use crate::api::{Json, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::consultations::state::Reason;
use crate::consultations::store;
use crate::db::{new_id, now_ts, Db, Id};
use crate::domain::record::{NoteKind, NoteStatus};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::store as record_store;

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Note {
    pub id: String,
    pub author_id: String,
    pub author_name: String,
    #[sqlx(try_from = "String")]
    pub kind: NoteKind,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: NoteStatus,
    pub withdrawn_reason: String,
    pub created_at: String,
}

pub async fn notes_of(db: &Db, consultation_id: &str) -> ApiResult<Vec<Note>> {
    record_store::notes_of(db, consultation_id).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// `case_summary` or `note` (default).
    #[serde(default)]
    pub kind: Option<String>,
    pub body: String,
}

/// The requester, and an expert who has accepted (one invited to an MDT who has not answered
/// yet sees the request but does not write in its record).
async fn require_clinician(db: &Db, user: &AuthUser, consultation_id: &str) -> ApiResult<()> {
    match store::participant_role(db, consultation_id, &user.id).await?.as_deref() {
        Some("requester") => Ok(()),
        Some("expert") if record_store::expert_has_accepted(db, consultation_id, &user.id).await? => Ok(()),
        Some("expert") => {
            Err(ApiError::forbidden("an expert writes in the record once they have accepted the consultation"))
        }
        _ => Err(ApiError::forbidden("the consultation's doctors write its notes")),
    }
}

pub async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<NoteBody>,
) -> ApiResult<(StatusCode, Json<Note>)> {
    let c = store::load_to_act(&state.db, &user, &id, "write_note").await?;
    let done = async {
        require_clinician(&state.db, &user, &id).await?;
        let kind = match b.kind.as_deref() {
            None => NoteKind::Note,
            Some(k) => k.parse().map_err(|_| ApiError::validation("kind", "case_summary or note"))?,
        };
        let body = b.body.trim();
        if body.is_empty() || body.chars().count() > 20_000 {
            return Err(ApiError::validation("body", "1 to 20,000 characters"));
        }
        let note_id = new_id();
        let mut tx = crate::audit::begin(&state.db).await?;
        record_store::insert_note(&mut tx, &note_id, &id, &user.id, kind, body, &now_ts()).await?;
        tx.audit(crate::audit::event(&user, "write_note", "note", &note_id).patient(&c.patient_id)).await?;
        tx.commit().await?;
        let note = notes_of(&state.db, &id)
            .await?
            .into_iter()
            .find(|n| n.id == note_id)
            .ok_or_else(|| ApiError::internal("note vanished"))?;
        Ok((StatusCode::CREATED, Json(note)))
    };
    store::acted(&user, &c, "write_note").if_refused(&state.db, done.await).await
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
    let c = store::load_to_act(&state.db, &user, &id, "withdraw_note").await?;
    let done = async {
        let mut tx = crate::audit::begin(&state.db).await?;
        let done = record_store::withdraw_note(&mut tx, &note, &id, &user.id, reason.as_str()).await?;
        if !done {
            return Err(ApiError::not_found("note"));
        }
        tx.audit(
            crate::audit::event(&user, "withdraw_note", "note", &note)
                .patient(&c.patient_id)
                .detail(reason.to_string()),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(notes_of(&state.db, &id).await?))
    };
    store::acted(&user, &c, "withdraw_note").if_refused(&state.db, done.await).await
}
