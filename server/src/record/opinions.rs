//! Expert opinions: drafts saved as they are written, signing that freezes a version (signer,
//! title, time and a SHA-256 of its canonical content), and amendments that are new signed
//! versions pointing at the one they replace. MDT consultations collect one opinion per
//! expert plus a joint conclusion.

use crate::api::{Json, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::consultations::state::{Action, Mode, State as CState};
use crate::consultations::store::{self, ConsultationCore};
use crate::db::{new_id, now_ts, Db, Id};
use crate::domain::record::{OpinionKind, OpinionStatus};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{self, Notice};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::store as record_store;

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpinionContent {
    #[serde(default)]
    pub findings: String,
    #[serde(default)]
    pub impression: String,
    #[serde(default)]
    pub recommendations: String,
    #[serde(default)]
    pub referral_advice: String,
    #[serde(default)]
    pub follow_up_advice: String,
    /// What the patient is told, in plain words (shown on the patient's home and the kiosk).
    #[serde(default)]
    pub patient_summary: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Opinion {
    pub id: String,
    pub consultation_id: String,
    pub author_id: String,
    #[sqlx(try_from = "String")]
    pub kind: OpinionKind,
    pub version: i64,
    pub supersedes: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: OpinionStatus,
    pub findings: String,
    pub impression: String,
    pub recommendations: String,
    pub referral_advice: String,
    pub follow_up_advice: String,
    pub patient_summary: String,
    pub amendment_reason: String,
    pub signer_name: String,
    pub signer_title: String,
    pub signed_at: Option<String>,
    pub content_sha256: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The SHA-256 (hex) of an opinion's canonical form: a JSON object with sorted keys holding
/// everything the signature vouches for.
pub fn canonical_sha256(o: &Opinion) -> String {
    let mut m = BTreeMap::new();
    m.insert("consultation_id", o.consultation_id.clone());
    m.insert("author_id", o.author_id.clone());
    m.insert("kind", o.kind.as_str().to_string());
    m.insert("version", o.version.to_string());
    m.insert("supersedes", o.supersedes.clone().unwrap_or_default());
    m.insert("findings", o.findings.clone());
    m.insert("impression", o.impression.clone());
    m.insert("recommendations", o.recommendations.clone());
    m.insert("referral_advice", o.referral_advice.clone());
    m.insert("follow_up_advice", o.follow_up_advice.clone());
    // Only when written, so that opinions signed before the field existed keep their hash.
    if !o.patient_summary.is_empty() {
        m.insert("patient_summary", o.patient_summary.clone());
    }
    m.insert("amendment_reason", o.amendment_reason.clone());
    m.insert("signer_name", o.signer_name.clone());
    m.insert("signer_title", o.signer_title.clone());
    m.insert("signed_at", o.signed_at.clone().unwrap_or_default());
    let canonical = serde_json::to_string(&m).unwrap_or_default();
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn validate(c: &OpinionContent) -> ApiResult<()> {
    for (field, v) in [
        ("findings", &c.findings),
        ("impression", &c.impression),
        ("recommendations", &c.recommendations),
        ("referral_advice", &c.referral_advice),
        ("follow_up_advice", &c.follow_up_advice),
        ("patient_summary", &c.patient_summary),
    ] {
        if v.chars().count() > 20_000 {
            return Err(ApiError::validation(field, "at most 20,000 characters"));
        }
    }
    Ok(())
}

/// An expert of the consultation who has accepted it may write its opinion.
async fn require_expert(db: &Db, user: &AuthUser, c: &ConsultationCore) -> ApiResult<()> {
    if record_store::expert_has_accepted(db, &c.id, &user.id).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an expert who accepted the consultation writes its opinion"))
    }
}

/// Every opinion version of a consultation (drafts only to their author).
pub async fn opinions_of(db: &Db, consultation_id: &str, viewer: &AuthUser) -> ApiResult<Vec<Opinion>> {
    record_store::opinions_of(db, consultation_id, &viewer.id).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    #[serde(flatten)]
    pub content: OpinionContent,
    /// For MDT consultations: write the joint conclusion instead of one's own opinion.
    #[serde(default)]
    pub joint: bool,
}

pub async fn save_draft(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<DraftBody>,
) -> ApiResult<Json<Opinion>> {
    let c = store::load_to_act(&state.db, &user, &id, "write_opinion").await?;
    let done = async {
        require_expert(&state.db, &user, &c).await?;
        validate(&b.content)?;
        if b.joint && c.mode != Mode::Mdt {
            return Err(ApiError::validation("joint", "only MDT consultations have a joint conclusion"));
        }
        let kind = OpinionKind::of(b.joint);
        let now = now_ts();
        let mut tx = crate::audit::begin(&state.db).await?;
        // Read on the transaction's own connection: taking a second one from the pool while
        // holding this one deadlocked the pool when every connection was held so (the day
        // replayer at twice the record peak: 16 transactions each waiting for a 17th connection).
        match record_store::latest_opinion_on(&mut tx, &id, &user.id, kind).await? {
            Some(o) if o.status == OpinionStatus::Draft => {
                record_store::update_draft(&mut tx, &o.id, &b.content, &now).await?;
            }
            Some(_) => {
                return Err(ApiError::conflict(
                    ErrorCode::AlreadySigned,
                    "the opinion is signed and can no longer be edited; amend it instead",
                ));
            }
            None => record_store::insert_draft(&mut tx, &id, &user.id, kind, &b.content, &now).await?,
        }
        tx.audit(crate::audit::event(&user, "write_opinion", "opinion", &id).patient(&c.patient_id)).await?;
        tx.commit().await?;
        record_store::latest_opinion(&state.db, &id, &user.id, kind)
            .await?
            .map(Json)
            .ok_or_else(|| ApiError::internal("saved opinion vanished"))
    };
    store::acted(&user, &c, "write_opinion").if_refused(&state.db, done.await).await
}

async fn signer(db: &Db, user: &AuthUser) -> ApiResult<(String, String)> {
    record_store::signer(db, &user.id).await?.ok_or_else(|| ApiError::forbidden("no expert profile"))
}

/// Freezes `o` (already carrying its content, version and supersedes) as signed, inside the
/// transaction that holds the consultation lock, with its audit event (`amend_opinion` for a
/// new version, `insert`, else `sign_opinion`); moves the consultation on when this signature
/// completes it.
async fn freeze(
    conn: &mut sqlx::AnyConnection,
    (name, title): (String, String),
    user: &AuthUser,
    c: &ConsultationCore,
    mut o: Opinion,
    insert: bool,
) -> ApiResult<Opinion> {
    let now = now_ts();
    o.status = OpinionStatus::Signed;
    o.signer_name = name;
    o.signer_title = title;
    o.signed_at = Some(now.clone());
    o.content_sha256 = canonical_sha256(&o);
    if insert {
        record_store::insert_signed(&mut *conn, &o).await?;
    } else if !record_store::sign_draft(&mut *conn, &o).await? {
        return Err(ApiError::conflict(ErrorCode::AlreadySigned, "the opinion is already signed"));
    }
    // Who completes the consultation: the single expert's opinion, or an MDT's joint conclusion.
    let completes = if c.mode == Mode::Mdt { o.kind == OpinionKind::Joint } else { true };
    let from = store::lock(&mut *conn, &c.id).await?;
    // Signing during a live call does not end it: the consultation completes when the call
    // is ended for everyone (see scheduling::visit).
    let live = from == CState::InProgress && crate::scheduling::visit::call_is_live(&mut *conn, &c.id).await?;
    if completes && from != CState::Completed && !live {
        store::apply_locked(&mut *conn, &c.id, from, Some(&user.id), &Action::SignOpinion).await?;
    }
    let action = if insert { "amend_opinion" } else { "sign_opinion" };
    crate::audit::event(user, action, "opinion", &o.id).patient(&c.patient_id).record_with(&mut *conn).await?;
    Ok(o)
}

async fn notify_signed(
    db: &Db,
    hub: &notifications::NotificationHub,
    user: &AuthUser,
    c: &ConsultationCore,
    text: notifications::Text,
    body: String,
) -> ApiResult<()> {
    let mut conn = db.pool.acquire().await?;
    let recipients: Vec<String> =
        store::participant_ids(&mut conn, &c.id).await?.into_iter().filter(|u| *u != user.id).collect();
    drop(conn);
    notifications::notify(db, hub, &recipients, Notice::new("opinion_signed", text, body, Some(&c.id))).await
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignBody {
    #[serde(default)]
    pub joint: bool,
}

pub async fn sign(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<SignBody>,
) -> ApiResult<Json<Opinion>> {
    let c = store::load_to_act(&state.db, &user, &id, "sign_opinion").await?;
    let done = async {
        require_expert(&state.db, &user, &c).await?;
        let kind = OpinionKind::of(b.joint);
        let o = match record_store::latest_opinion(&state.db, &id, &user.id, kind).await? {
            Some(o) if o.status == OpinionStatus::Draft => o,
            Some(_) => {
                return Err(ApiError::conflict(
                    ErrorCode::AlreadySigned,
                    "the opinion is already signed; amend it instead",
                ))
            }
            None => return Err(ApiError::conflict(ErrorCode::NoDraft, "save a draft opinion before signing it")),
        };
        if o.impression.trim().is_empty() {
            return Err(ApiError::validation("impression", "an opinion is signed with an impression"));
        }
        let who = signer(&state.db, &user).await?;
        let mut tx = state.db.begin_write().await?;
        store::lock(&mut tx, &c.id).await?;
        let signed = freeze(&mut tx, who, &user, &c, o, false).await?;
        tx.commit().await?;
        Ok(signed)
    };
    let signed = store::acted(&user, &c, "sign_opinion").if_refused(&state.db, done.await).await?;
    notify_signed(
        &state.db,
        &state.notifications,
        &user,
        &c,
        notifications::Text::new("opinion_signed"),
        signed.impression.clone(),
    )
    .await?;
    Ok(Json(signed))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendBody {
    #[serde(flatten)]
    pub content: OpinionContent,
    pub reason: String,
    #[serde(default)]
    pub joint: bool,
}

pub async fn amend(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<AmendBody>,
) -> ApiResult<Json<Opinion>> {
    let c = store::load_to_act(&state.db, &user, &id, "amend_opinion").await?;
    let done = async {
        require_expert(&state.db, &user, &c).await?;
        validate(&b.content)?;
        let reason = crate::consultations::state::Reason::parse(&b.reason)
            .map_err(|e| ApiError::validation("reason", e.to_string()))?;
        let kind = OpinionKind::of(b.joint);
        let latest = record_store::latest_opinion(&state.db, &id, &user.id, kind).await?;
        let Some(prev) = latest.filter(|o| o.status == OpinionStatus::Signed) else {
            return Err(ApiError::conflict(
                ErrorCode::NotSigned,
                "only a signed opinion is amended; edit the draft instead",
            ));
        };
        let who = signer(&state.db, &user).await?;
        let mut tx = state.db.begin_write().await?;
        store::lock(&mut tx, &c.id).await?;
        if !record_store::supersede(&mut tx, &prev.id, &now_ts()).await? {
            return Err(ApiError::conflict(ErrorCode::AlreadyAmended, "the opinion was amended meanwhile"));
        }
        let next = Opinion {
            id: new_id(),
            version: prev.version + 1,
            supersedes: Some(prev.id.clone()),
            status: OpinionStatus::Draft,
            findings: b.content.findings,
            impression: b.content.impression,
            recommendations: b.content.recommendations,
            referral_advice: b.content.referral_advice,
            follow_up_advice: b.content.follow_up_advice,
            patient_summary: b.content.patient_summary,
            amendment_reason: reason.to_string(),
            created_at: now_ts(),
            updated_at: now_ts(),
            ..prev
        };
        let signed = freeze(&mut tx, who, &user, &c, next, true).await?;
        tx.commit().await?;
        Ok((signed, reason))
    };
    let (signed, reason) = store::acted(&user, &c, "amend_opinion").if_refused(&state.db, done.await).await?;
    notify_signed(
        &state.db,
        &state.notifications,
        &user,
        &c,
        notifications::Text::new("opinion_amended"),
        reason.to_string(),
    )
    .await?;
    Ok(Json(signed))
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<crate::api::Page<Opinion>>> {
    store::load_for(&state.db, &user, &id, "read_opinions").await?;
    Ok(Json(crate::api::Page { items: opinions_of(&state.db, &id, &user).await?, next: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Opinion {
        Opinion {
            id: "o1".into(),
            consultation_id: "c1".into(),
            author_id: "u1".into(),
            kind: OpinionKind::Individual,
            version: 1,
            supersedes: None,
            status: OpinionStatus::Signed,
            findings: "窦性心律".into(),
            impression: "未见急性缺血".into(),
            recommendations: String::new(),
            referral_advice: String::new(),
            follow_up_advice: String::new(),
            patient_summary: String::new(),
            amendment_reason: String::new(),
            signer_name: "王建国".into(),
            signer_title: "chief".into(),
            signed_at: Some("2026-11-23T10:00:00.000000Z".into()),
            content_sha256: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn the_hash_covers_content_and_signature_but_not_bookkeeping() {
        let a = sample();
        let h = canonical_sha256(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(
            h,
            canonical_sha256(&Opinion { updated_at: "later".into(), status: OpinionStatus::Superseded, ..a.clone() })
        );
        assert_ne!(h, canonical_sha256(&Opinion { impression: "急性缺血".into(), ..a.clone() }));
        assert_ne!(h, canonical_sha256(&Opinion { version: 2, ..a.clone() }));
        assert_ne!(h, canonical_sha256(&Opinion { signed_at: None, ..a.clone() }));
        // The patient summary counts once written; an empty one leaves earlier hashes as they were.
        assert_ne!(h, canonical_sha256(&Opinion { patient_summary: "心脏没有大问题".into(), ..a }));
    }
}
