//! The consultation API: a community doctor's request with the patient's consent, listing
//! what the caller may see, the actions of the lifecycle (submit, accept, decline, claim,
//! cancel, complete) and the ranked expert candidates.

use super::matching::{self, CandidateInput};
use super::state::{Action, Mode, Reason, State as CState, Title, Urgency};
use super::store::{self, ConsultationCore};
use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, ts, Id};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{self, Notice, Text};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Addressee {
    /// One named expert.
    Expert { expert_id: String },
    /// A hospital department pool: any qualified expert of the specialty may claim it.
    Pool {
        #[serde(default)]
        specialty: Option<String>,
        /// The hospital; defaults to a hospital linked to the requesting centre that has the specialty.
        #[serde(default)]
        organisation_id: Option<String>,
    },
    /// Several experts (multidisciplinary team).
    Mdt { expert_ids: Vec<String> },
}

#[derive(Debug, Deserialize, Serialize, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// `patient` or `guardian`.
    pub given_by: String,
    #[serde(default)]
    pub guardian_name: String,
    /// `written` or `recorded_verbal`.
    pub method: String,
    pub at: crate::db::ClientTime,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsultation {
    pub patient_id: String,
    pub reason: String,
    #[serde(default)]
    pub record_summary: String,
    pub specialty: String,
    pub min_title: Title,
    pub urgency: Urgency,
    pub mode: Mode,
    pub addressee: Addressee,
    #[serde(default)]
    pub consent: Option<ConsentInput>,
    /// Send the request now (default) or keep it as a draft.
    #[serde(default = "default_true")]
    pub submit: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Participant {
    pub user_id: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub reason: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Transition {
    pub from_state: String,
    pub to_state: String,
    pub action: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ConsentView {
    pub given_by: String,
    pub guardian_name: String,
    pub method: String,
    pub given_at: String,
    pub witness_id: String,
    pub witness_name: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ConsultationSummary {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub requesting_organisation_id: String,
    pub requesting_organisation_name: String,
    pub requested_by: String,
    pub requested_by_name: String,
    pub reason: String,
    pub record_summary: String,
    pub specialty: String,
    pub min_title: String,
    pub urgency: String,
    pub mode: String,
    pub addressee_kind: String,
    pub pool_organisation_id: Option<String>,
    pub state: String,
    pub assigned_expert_id: Option<String>,
    pub assigned_expert_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConsultationDetail {
    #[serde(flatten)]
    pub summary: ConsultationSummary,
    pub my_role: Option<String>,
    pub participants: Vec<Participant>,
    pub consent: Option<ConsentView>,
    pub transitions: Vec<Transition>,
    pub appointments: Vec<crate::scheduling::appointments::AppointmentView>,
}

const SUMMARY_SELECT: &str = "SELECT c.id, c.patient_id, p.name AS patient_name, c.requesting_organisation_id,
    o.name AS requesting_organisation_name, c.requested_by, r.display_name AS requested_by_name, c.reason, c.record_summary,
    c.specialty, c.min_title, c.urgency, c.mode, c.addressee_kind, c.pool_organisation_id, c.state, c.assigned_expert_id,
    x.display_name AS assigned_expert_name, c.created_at, c.updated_at
    FROM consultations c JOIN patients p ON p.id = c.patient_id JOIN organisations o ON o.id = c.requesting_organisation_id
    JOIN users r ON r.id = c.requested_by LEFT JOIN users x ON x.id = c.assigned_expert_id";

pub async fn detail(state: &AppState, user: &AuthUser, id: &str) -> ApiResult<ConsultationDetail> {
    let summary: ConsultationSummary = sqlx::query_as(&format!("{SUMMARY_SELECT} WHERE c.id = $1"))
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found("consultation"))?;
    let participants: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT cp.user_id, u.display_name, cp.role, cp.status, cp.reason FROM consultation_participants cp
         JOIN users u ON u.id = cp.user_id WHERE cp.consultation_id = $1 ORDER BY cp.added_at, cp.user_id",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let consent: Option<ConsentView> = sqlx::query_as(
        "SELECT k.given_by, k.guardian_name, k.method, k.given_at, k.witness_id, u.display_name AS witness_name
         FROM consultation_consents k JOIN users u ON u.id = k.witness_id WHERE k.consultation_id = $1 ORDER BY k.created_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&state.db.pool)
    .await?;
    let transitions: Vec<Transition> = sqlx::query_as(
        "SELECT t.from_state, t.to_state, t.action, t.actor_id, u.display_name AS actor_name, t.reason, t.at
         FROM consultation_transitions t LEFT JOIN users u ON u.id = t.actor_id WHERE t.consultation_id = $1 ORDER BY t.at, t.id",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let my_role = participants.iter().find(|p| p.0 == user.id && p.3 != "declined").map(|p| p.2.clone());
    Ok(ConsultationDetail {
        summary,
        my_role,
        participants: participants
            .into_iter()
            .map(|(user_id, name, role, status, reason)| Participant { user_id, name, role, status, reason })
            .collect(),
        consent,
        transitions,
        appointments: crate::scheduling::appointments::of_consultation(state, id).await?,
    })
}

fn parse_uuid(field: &str, s: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(s).map(|u| u.to_string()).map_err(|_| ApiError::validation(field, "not a valid id"))
}

#[derive(sqlx::FromRow)]
struct ExpertFacts {
    id: String,
    organisation_id: String,
    title: String,
}

async fn expert_facts(state: &AppState, id: &str) -> ApiResult<Option<ExpertFacts>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.organisation_id, e.title FROM users u JOIN expert_profiles e ON e.user_id = u.id WHERE u.id = $1 AND u.active = 1",
    )
    .bind(id)
    .fetch_optional(&state.db.pool)
    .await?)
}

async fn has_specialty(state: &AppState, expert: &str, specialty: &str) -> ApiResult<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM expert_specialties WHERE user_id = $1 AND specialty = $2")
            .bind(expert)
            .bind(specialty)
            .fetch_optional(&state.db.pool)
            .await?;
    Ok(row.is_some())
}

fn title_of(s: &str) -> Title {
    Title::from_str(s).unwrap_or(Title::Resident)
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(b): Json<NewConsultation>,
) -> ApiResult<(StatusCode, Json<ConsultationDetail>)> {
    user.require(&[Role::CommunityDoctor])?;
    let patient_id = parse_uuid("patient_id", &b.patient_id)?;
    let patient = crate::patients::find_visible(&state.db, &user, &patient_id)
        .await?
        .ok_or_else(|| ApiError::not_found("patient"))?;
    if patient.home_organisation_id != user.org {
        return Err(ApiError::not_found("patient"));
    }
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    if b.record_summary.chars().count() > 20_000 {
        return Err(ApiError::validation("record_summary", "at most 20,000 characters"));
    }
    let specialty: Option<(String,)> = sqlx::query_as("SELECT code FROM specialties WHERE code = $1")
        .bind(&b.specialty)
        .fetch_optional(&state.db.pool)
        .await?;
    if specialty.is_none() {
        return Err(ApiError::validation("specialty", "not a known specialty"));
    }
    let Some(consent) = b.consent.clone() else {
        return Err(ApiError::unprocessable(
            ErrorCode::ConsentRequired,
            "the patient's informed consent must be recorded before a consultation is requested",
        ));
    };
    if !matches!(consent.given_by.as_str(), "patient" | "guardian") {
        return Err(ApiError::validation("consent.given_by", "patient or guardian"));
    }
    if consent.given_by == "guardian" && consent.guardian_name.trim().is_empty() {
        return Err(ApiError::validation("consent.guardian_name", "the guardian's name is required"));
    }
    if !matches!(consent.method.as_str(), "written" | "recorded_verbal") {
        return Err(ApiError::validation("consent.method", "written or recorded_verbal"));
    }
    let consent_at: DateTime<Utc> = consent.at.into();
    if consent_at > Utc::now() + Duration::minutes(5) {
        return Err(ApiError::validation("consent.at", "consent cannot be given in the future"));
    }

    // Resolve the addressee.
    let mut experts: Vec<String> = Vec::new();
    let mut pool_org: Option<String> = None;
    let kind = match &b.addressee {
        Addressee::Expert { expert_id } => {
            let id = parse_uuid("addressee.expert_id", expert_id)?;
            let e = expert_facts(&state, &id)
                .await?
                .ok_or_else(|| ApiError::validation("addressee.expert_id", "not an active expert"))?;
            if title_of(&e.title) < b.min_title {
                return Err(ApiError::validation(
                    "addressee.expert_id",
                    "the expert's title is below the minimum asked for",
                ));
            }
            if !has_specialty(&state, &e.id, &b.specialty).await? {
                return Err(ApiError::validation("addressee.expert_id", "the expert does not practise this specialty"));
            }
            experts.push(e.id);
            "expert"
        }
        Addressee::Mdt { expert_ids } => {
            if expert_ids.len() < 2 || expert_ids.len() > 8 {
                return Err(ApiError::validation("addressee.expert_ids", "an MDT names 2 to 8 experts"));
            }
            for (i, raw) in expert_ids.iter().enumerate() {
                let id = parse_uuid(&format!("addressee.expert_ids[{i}]"), raw)?;
                expert_facts(&state, &id).await?.ok_or_else(|| {
                    ApiError::validation(&format!("addressee.expert_ids[{i}]"), "not an active expert")
                })?;
                if !experts.contains(&id) {
                    experts.push(id);
                }
            }
            "mdt"
        }
        Addressee::Pool { specialty, organisation_id } => {
            if specialty.as_deref().is_some_and(|s| s != b.specialty) {
                return Err(ApiError::validation("addressee.specialty", "must match the consultation's specialty"));
            }
            let org: Option<(String,)> = match organisation_id {
                Some(o) => sqlx::query_as("SELECT organisation_id FROM departments WHERE organisation_id = $1 AND specialty = $2")
                    .bind(parse_uuid("addressee.organisation_id", o)?)
                    .bind(&b.specialty)
                    .fetch_optional(&state.db.pool)
                    .await?,
                None => sqlx::query_as(
                    "SELECT d.organisation_id FROM departments d JOIN consortium_links l ON l.hospital_id = d.organisation_id
                     WHERE l.centre_id = $1 AND d.specialty = $2 ORDER BY d.organisation_id LIMIT 1",
                )
                .bind(&user.org)
                .bind(&b.specialty)
                .fetch_optional(&state.db.pool)
                .await?,
            };
            let Some((org,)) = org else {
                return Err(ApiError::unprocessable(
                    ErrorCode::NoPool,
                    "no hospital department of this specialty takes pool requests from this centre",
                ));
            };
            pool_org = Some(org);
            "pool"
        }
    };
    if b.mode == Mode::Mdt && kind != "mdt" {
        return Err(ApiError::validation("addressee", "an MDT consultation is addressed to several experts"));
    }

    let id = new_id();
    let now = now_ts();
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO consultations (id, patient_id, requesting_organisation_id, requested_by, reason, record_summary, specialty, min_title,
            urgency, mode, addressee_kind, pool_organisation_id, state, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'draft', $13, $13)",
    )
    .bind(&id)
    .bind(&patient_id)
    .bind(&user.org)
    .bind(&user.id)
    .bind(reason.as_str())
    .bind(b.record_summary.trim())
    .bind(&b.specialty)
    .bind(b.min_title.as_str())
    .bind(b.urgency.as_str())
    .bind(b.mode.as_str())
    .bind(kind)
    .bind(&pool_org)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO consultation_consents (id, consultation_id, given_by, guardian_name, method, given_at, witness_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(&id)
    .bind(&consent.given_by)
    .bind(consent.guardian_name.trim())
    .bind(&consent.method)
    .bind(ts(consent_at))
    .bind(&user.id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let add = |uid: String, role: &'static str, status: &'static str| (uid, role, status);
    let mut participants = vec![add(user.id.clone(), "requester", "active")];
    if let Some(pu) = &patient.user_id {
        participants.push(add(pu.clone(), "patient", "invited"));
    }
    for e in &experts {
        participants.push(add(e.clone(), "expert", "invited"));
    }
    for (uid, role, status) in &participants {
        sqlx::query("INSERT INTO consultation_participants (consultation_id, user_id, role, status, added_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(uid)
            .bind(role)
            .bind(status)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
    }
    crate::audit::event(&user, "create", "consultation", &id).patient(&patient_id).record_with(&mut *tx).await?;
    let mut stored = Vec::new();
    if b.submit {
        store::apply_locked(&mut tx, &id, CState::Draft, Some(&user.id), &Action::Submit).await?;
        let recipients = match &pool_org {
            Some(org) => pool_experts(&mut tx, org, &b.specialty, b.min_title).await?,
            None => experts.clone(),
        };
        stored = notifications::store(
            &mut tx,
            &recipients,
            &Notice::new(
                "request_matched",
                Text::new("request_matched").with("urgency", b.urgency),
                reason.to_string(),
                Some(&id),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    notifications::publish(&state, &stored);
    Ok((StatusCode::CREATED, Json(detail(&state, &user, &id).await?)))
}

async fn pool_experts(
    conn: &mut sqlx::AnyConnection,
    org: &str,
    specialty: &str,
    min_title: Title,
) -> ApiResult<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.id, e.title FROM users u JOIN expert_profiles e ON e.user_id = u.id JOIN expert_specialties s ON s.user_id = u.id
         WHERE u.organisation_id = $1 AND s.specialty = $2 AND u.active = 1 ORDER BY u.id",
    )
    .bind(org)
    .bind(specialty)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().filter(|(_, t)| title_of(t) >= min_title).map(|(u, _)| u).collect())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    pub state: Option<CState>,
    pub mode: Option<Mode>,
    pub urgency: Option<Urgency>,
    /// Created at or after (RFC 3339).
    pub from: Option<crate::db::ClientTime>,
    /// Created before (RFC 3339).
    pub to: Option<crate::db::ClientTime>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<ListFilter>,
) -> ApiResult<Json<crate::api::Page<ConsultationSummary>>> {
    let limit = crate::api::page_limit(f.limit, 200)?;
    let sql = format!(
        "{SUMMARY_SELECT} WHERE {} AND ($3 = '' OR c.state = $3) AND ($4 = '' OR c.mode = $4) AND ($5 = '' OR c.urgency = $5)
           AND c.created_at >= $6 AND c.created_at < $7 AND ($8 = '' OR c.id < $8) ORDER BY c.id DESC LIMIT $9",
        store::visibility_predicate(user.role)
    );
    let rows: Vec<ConsultationSummary> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&user.org)
        .bind(f.state.map(|s| s.as_str()).unwrap_or(""))
        .bind(f.mode.map(|s| s.as_str()).unwrap_or(""))
        .bind(f.urgency.map(|s| s.as_str()).unwrap_or(""))
        .bind(f.from.map(|t| ts(t.into())).unwrap_or_default())
        .bind(f.to.map(|t| ts(t.into())).unwrap_or_else(|| "9999".into()))
        .bind(crate::api::page_cursor(f.cursor)?)
        .bind(limit as i64 + 1)
        .fetch_all(&state.db.pool)
        .await?;
    let page = crate::api::page(rows, limit, |c| c.id.clone());
    let mut tx = state.db.begin_write().await?;
    for c in &page.items {
        crate::audit::event(&user, "list", "consultation", &c.id).patient(&c.patient_id).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(Json(page))
}

async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    store::load_for(&state.db, &user, &id, "read").await?;
    Ok(Json(detail(&state, &user, &id).await?))
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

fn required_reason(body: &ReasonBody) -> ApiResult<Reason> {
    let text = body.reason.clone().unwrap_or_default();
    Reason::parse(&text).map_err(|e| ApiError::validation("reason", e.to_string()))
}

/// The person's name as notifications show it (王建国, not the login name).
async fn display_name(state: &AppState, user: &AuthUser) -> ApiResult<String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT display_name FROM users WHERE id = $1")
        .bind(&user.id)
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(row.map(|r| r.0).unwrap_or_else(|| user.username.clone()))
}

/// Notifies the consultation's participants except the actor.
async fn tell_others(
    state: &AppState,
    c: &ConsultationCore,
    actor: &AuthUser,
    kind: &str,
    text: Text,
    body: String,
) -> ApiResult<()> {
    let mut conn = state.db.pool.acquire().await?;
    let recipients: Vec<String> =
        store::participant_ids(&mut conn, &c.id).await?.into_iter().filter(|u| *u != actor.id).collect();
    drop(conn);
    notifications::notify(state, &recipients, Notice::new(kind, text, body, Some(&c.id))).await
}

async fn respond(state: &AppState, user: &AuthUser, id: &str) -> ApiResult<Json<ConsultationDetail>> {
    Ok(Json(detail(state, user, id).await?))
}

async fn submit(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    let c = store::load_for(&state.db, &user, &id, "submit").await?;
    if c.requested_by != user.id {
        return Err(ApiError::forbidden("only the requesting doctor submits the request"));
    }
    store::apply_action(&state.db, &id, Some(&user), &Action::Submit).await?;
    respond(&state, &user, &id).await
}

async fn accept(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    user.require(&[Role::Expert])?;
    let c = store::load_for(&state.db, &user, &id, "accept").await?;
    let invited: Option<(String,)> = sqlx::query_as(
        "SELECT status FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2 AND role = 'expert'",
    )
    .bind(&id)
    .bind(&user.id)
    .fetch_optional(&state.db.pool)
    .await?;
    match invited.as_ref().map(|s| s.0.as_str()) {
        Some("invited") => {}
        Some("accepted" | "active") => {
            return Err(ApiError::conflict(ErrorCode::AlreadyAccepted, "you have already accepted this consultation"))
        }
        Some(_) => return Err(ApiError::conflict(ErrorCode::AlreadyDeclined, "you declined this consultation")),
        None if c.addressee_kind == "pool" => {
            return Err(ApiError::conflict(ErrorCode::UseClaim, "a pool request is taken with POST .../claim"));
        }
        None => return Err(ApiError::forbidden("the consultation is not addressed to you")),
    }
    let mut tx = state.db.begin_write().await?;
    let from = store::lock(&mut tx, &id).await?;
    // The first MDT expert to accept moves the consultation on; the others join it.
    if !(c.addressee_kind == "mdt" && from != CState::Requested && !from.is_terminal()) {
        store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Accept).await?;
    }
    sqlx::query("UPDATE consultation_participants SET status = 'accepted' WHERE consultation_id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE consultations SET assigned_expert_id = COALESCE(assigned_expert_id, $1) WHERE id = $2")
        .bind(&user.id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tell_others(&state, &c, &user, "accepted", Text::new("expert_accepted"), display_name(&state, &user).await?)
        .await?;
    respond(&state, &user, &id).await
}

async fn decline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Json<serde_json::Value>> {
    user.require(&[Role::Expert])?;
    let reason = required_reason(&body)?;
    let c = store::load_for(&state.db, &user, &id, "decline").await?;
    let mut tx = state.db.begin_write().await?;
    let from = store::lock(&mut tx, &id).await?;
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2")
            .bind(&id)
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?;
    match (c.addressee_kind.as_str(), status.as_ref().map(|s| s.0.as_str())) {
        (_, Some("declined")) => {
            return Err(ApiError::conflict(ErrorCode::AlreadyDeclined, "you have already declined"))
        }
        // A pool decline is kept in the transition log only: the expert was never a participant.
        ("pool", None) => {}
        (_, Some("invited" | "accepted")) => {
            sqlx::query("UPDATE consultation_participants SET status = 'declined', reason = $1 WHERE consultation_id = $2 AND user_id = $3")
                .bind(reason.as_str())
                .bind(&id)
                .bind(&user.id)
                .execute(&mut *tx)
                .await?;
        }
        _ => return Err(ApiError::forbidden("the consultation is not addressed to you")),
    }
    let (others,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM consultation_participants WHERE consultation_id = $1 AND role = 'expert' AND status <> 'declined'",
    )
    .bind(&id)
    .fetch_one(&mut *tx)
    .await?;
    let reopens = c.addressee_kind == "pool" || (c.addressee_kind == "mdt" && others > 0);
    let mut to = from;
    if from == CState::Requested || !reopens {
        to = store::apply_locked(
            &mut tx,
            &id,
            from,
            Some(&user.id),
            &Action::Decline { reopens, reason: reason.clone() },
        )
        .await?;
    }
    if c.assigned_expert_id.as_deref() == Some(user.id.as_str()) {
        sqlx::query("UPDATE consultations SET assigned_expert_id = NULL WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tell_others(&state, &c, &user, "declined", Text::new("expert_declined"), reason.to_string()).await?;
    // The expert who declined no longer sees the consultation: the answer says only what
    // became of it.
    Ok(Json(serde_json::json!({"id": id, "state": to.as_str(), "declined": true, "reason": reason.as_str()})))
}

async fn claim(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    user.require(&[Role::Expert])?;
    let c = match store::load_for(&state.db, &user, &id, "claim").await {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            // A pool request claimed a moment ago by another expert of the same pool is no
            // longer visible to the rest: they lost the race, which is a conflict.
            let taken: Option<(String,)> = sqlx::query_as(
                "SELECT c.state FROM consultations c JOIN users u ON u.id = $2
                 WHERE c.id = $1 AND c.addressee_kind = 'pool' AND c.pool_organisation_id = u.organisation_id
                   AND c.state <> 'requested' AND c.state <> 'draft'",
            )
            .bind(&id)
            .bind(&user.id)
            .fetch_optional(&state.db.pool)
            .await?;
            return Err(match taken {
                Some(_) => {
                    ApiError::conflict(ErrorCode::InvalidTransition, "another expert of the pool claimed it first")
                }
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    if c.addressee_kind != "pool" {
        return Err(ApiError::conflict(ErrorCode::NotAPoolRequest, "only pool requests are claimed"));
    }
    let me = expert_facts(&state, &user.id).await?.ok_or_else(|| ApiError::forbidden("no expert profile"))?;
    if title_of(&me.title) < title_of(&c.min_title) || !has_specialty(&state, &user.id, &c.specialty).await? {
        return Err(ApiError::forbidden("your specialty or title does not meet the request"));
    }
    if c.pool_organisation_id.as_deref() != Some(me.organisation_id.as_str()) {
        return Err(ApiError::not_found("consultation"));
    }
    let mut tx = state.db.begin_write().await?;
    let from = store::lock(&mut tx, &id).await?;
    store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Claim).await?;
    sqlx::query(
        "INSERT INTO consultation_participants (consultation_id, user_id, role, status, added_at) VALUES ($1, $2, 'expert', 'accepted', $3)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(now_ts())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE consultations SET assigned_expert_id = $1 WHERE id = $2")
        .bind(&user.id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tell_others(&state, &c, &user, "accepted", Text::new("expert_accepted"), display_name(&state, &user).await?)
        .await?;
    respond(&state, &user, &id).await
}

async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Json<ConsultationDetail>> {
    let reason = required_reason(&body)?;
    let c = store::load_for(&state.db, &user, &id, "cancel").await?;
    if !(c.requested_by == user.id || user.role.is_manager()) {
        return Err(ApiError::forbidden("the requesting doctor or a coordinator cancels a consultation"));
    }
    let mut tx = state.db.begin_write().await?;
    let from = store::lock(&mut tx, &id).await?;
    store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Cancel { reason: reason.clone() }).await?;
    sqlx::query("UPDATE appointments SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2 WHERE consultation_id = $3 AND status = 'booked'")
        .bind(now_ts())
        .bind(reason.as_str())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tell_others(&state, &c, &user, "cancelled", Text::new("consultation_cancelled"), reason.to_string()).await?;
    respond(&state, &user, &id).await
}

async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    let c = store::load_for(&state.db, &user, &id, "complete").await?;
    let role = store::participant_role(&state.db, &id, &user.id).await?;
    if !matches!(role.as_deref(), Some("requester" | "expert")) {
        return Err(ApiError::forbidden("the consultation's doctors complete it"));
    }
    store::apply_action(&state.db, &id, Some(&user), &Action::Complete).await?;
    tell_others(&state, &c, &user, "completed", Text::new("consultation_completed"), String::new()).await?;
    respond(&state, &user, &id).await
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Candidates {
    pub items: Vec<matching::RankedCandidate>,
    pub next: Option<String>,
}

async fn candidates(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<Candidates>> {
    let c = store::load_for(&state.db, &user, &id, "match").await?;
    let criteria = Criteria {
        specialty: c.specialty.clone(),
        min_title: title_of(&c.min_title),
        urgency: Urgency::from_str(&c.urgency).unwrap_or(Urgency::Routine),
    };
    let items = rank_candidates(&state, &criteria, &c.requesting_organisation_id).await?;
    Ok(Json(Candidates { items, next: None }))
}

/// What a request asks of its expert: the criteria matching ranks candidates on.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    pub specialty: String,
    pub min_title: Title,
    pub urgency: Urgency,
}

/// Ranks candidates for criteria that are not (yet) a stored request, as if the caller's
/// centre requested them. No patient data is read or sent, so no audit event is recorded.
async fn candidates_for_criteria(
    State(state): State<AppState>,
    user: AuthUser,
    Json(criteria): Json<Criteria>,
) -> ApiResult<Json<Candidates>> {
    user.require(&[Role::CommunityDoctor])?;
    let known: Option<(String,)> = sqlx::query_as("SELECT code FROM specialties WHERE code = $1")
        .bind(&criteria.specialty)
        .fetch_optional(&state.db.pool)
        .await?;
    if known.is_none() {
        return Err(ApiError::validation("specialty", "not a known specialty"));
    }
    let items = rank_candidates(&state, &criteria, &user.org).await?;
    Ok(Json(Candidates { items, next: None }))
}

/// The active experts of the criteria's specialty, ranked by [`matching::rank`] for a request
/// from `requesting_org`.
async fn rank_candidates(
    state: &AppState,
    criteria: &Criteria,
    requesting_org: &str,
) -> ApiResult<Vec<matching::RankedCandidate>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT u.id, u.display_name, e.title, u.organisation_id FROM users u JOIN expert_profiles e ON e.user_id = u.id
         WHERE u.role = 'expert' AND u.active = 1 AND u.id IN (SELECT user_id FROM expert_specialties WHERE specialty = $1) ORDER BY u.id",
    )
    .bind(&criteria.specialty)
    .fetch_all(&state.db.pool)
    .await?;
    let linked: Vec<(String,)> = sqlx::query_as("SELECT hospital_id FROM consortium_links WHERE centre_id = $1")
        .bind(requesting_org)
        .fetch_all(&state.db.pool)
        .await?;
    let now = Utc::now();
    let mut inputs = Vec::new();
    let mut conn = state.db.pool.acquire().await?;
    for (eid, name, title, org) in rows {
        let mut specialties: Vec<(String,)> =
            sqlx::query_as("SELECT specialty FROM expert_specialties WHERE user_id = $1")
                .bind(&eid)
                .fetch_all(&mut *conn)
                .await?;
        // The requested specialty first: it is the one this request is matched on.
        specialties.sort_by_key(|s| s.0 != criteria.specialty);
        let (open,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM consultation_participants cp JOIN consultations k ON k.id = cp.consultation_id
             WHERE cp.user_id = $1 AND cp.role = 'expert' AND cp.status IN ('accepted', 'active')
               AND k.state IN ('accepted', 'scheduled', 'in_progress', 'awaiting_opinion')",
        )
        .bind(&eid)
        .fetch_one(&mut *conn)
        .await?;
        let earliest = crate::scheduling::store::free_slots(&mut conn, &eid, now, now, now + Duration::days(14))
            .await?
            .ok()
            .and_then(|s| s.first().map(|i| i.start));
        inputs.push(CandidateInput {
            expert_id: uuid::Uuid::parse_str(&eid).map_err(ApiError::internal)?,
            name,
            specialties: specialties.into_iter().map(|s| s.0).collect(),
            title: title_of(&title),
            organisation_linked: linked.iter().any(|l| l.0 == org),
            earliest_slot: earliest,
            open_consultations: u32::try_from(open).unwrap_or(u32::MAX),
        });
    }
    let request = matching::Request {
        specialty: criteria.specialty.clone(),
        min_title: criteria.min_title,
        urgency: criteria.urgency,
        now,
    };
    Ok(matching::rank(&request, inputs))
}

pub fn routes() -> Routes {
    Routes::new("consultations")
        .post(
            "/api/v1/consultations",
            "Request a consultation for a patient of the caller's centre (consent required)",
            create,
        ).body::<NewConsultation>().json::<ConsultationDetail>(201).errors(&[404, 409])
        .get(
            "/api/v1/consultations",
            "Consultations the caller may see (filters: state, mode, urgency, from, to)",
            list,
        ).query::<ListFilter>().json::<crate::api::Page<ConsultationSummary>>(200)
        .get(
            "/api/v1/consultations/{id}",
            "One consultation with participants, consent, transitions and appointments",
            get_one,
        ).json::<ConsultationDetail>(200)
        .post("/api/v1/consultations/{id}/submit", "Send a draft request", submit).json::<ConsultationDetail>(200).errors(&[409])
        .post("/api/v1/consultations/{id}/accept", "The addressed expert accepts", accept).json::<ConsultationDetail>(200).errors(&[409])
        .post(
            "/api/v1/consultations/{id}/decline",
            "An expert declines with a reason (pool requests re-open matching)",
            decline,
        ).body::<ReasonBody>().json::<serde_json::Value>(200).errors(&[409])
        .post("/api/v1/consultations/{id}/claim", "An expert takes a department-pool request (one wins)", claim).json::<ConsultationDetail>(200).errors(&[409])
        .post("/api/v1/consultations/{id}/cancel", "Cancel with a reason", cancel).body::<ReasonBody>().json::<ConsultationDetail>(200).errors(&[409])
        .post("/api/v1/consultations/{id}/complete", "Complete the consultation", complete).json::<ConsultationDetail>(200).errors(&[409])
        .get("/api/v1/consultations/{id}/candidates", "Experts ranked for this request, with reasons", candidates).json::<Candidates>(200)
        .post(
            "/api/v1/consultations/candidates",
            "Experts ranked for request criteria not yet saved (specialty, min_title, urgency), for the caller's centre",
            candidates_for_criteria,
        ).body::<Criteria>().json::<Candidates>(200)
}
