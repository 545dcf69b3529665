//! Two-way referral: up from a community centre to a hospital department, down from the
//! hospital back to a community centre for rehabilitation or chronic follow-up with a care
//! plan. Each is tracked by status with its history and listed for both sides.
//!
//! Who handles a referral ([`may_see`], [`may_act`]): the receiving organisation's desk (its
//! coordinators; at a community centre, which has none, its community doctors) and the
//! clinician the desk assigns; on the sending side, the clinician who made it and the
//! sending organisation's desk. Experts of either hospital who are neither the author nor
//! assigned do not see it, nor its patient through it.

use super::followup::{self, NewPlan};
use super::store::{self, NewReferralRow, Side};
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::consultations::state::{Reason, Urgency};
use crate::db::{new_id, now_ts, ts, Db, Id};
pub use crate::domain::record::{next_status, Direction, ReferralAction, ReferralStatus};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{self, Notice};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpInput {
    pub condition: String,
    pub interval_weeks: u32,
    pub visits: u32,
    #[serde(default)]
    pub instructions: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReferral {
    pub patient_id: String,
    #[serde(default)]
    pub consultation_id: Option<String>,
    /// `up` or `down`.
    pub direction: String,
    /// Up: the hospital (defaults to the consortium hospital with the department's specialty);
    /// down: the community centre (defaults to the patient's home centre).
    #[serde(default)]
    pub to_organisation_id: Option<String>,
    #[serde(default)]
    pub to_department_id: Option<String>,
    pub reason: String,
    pub urgency: Urgency,
    /// Down-referrals: the care plan for rehabilitation or chronic follow-up.
    #[serde(default)]
    pub care_plan: String,
    /// Down-referrals: follow-up visits to lay out at the receiving centre.
    #[serde(default)]
    pub follow_up: Option<FollowUpInput>,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Referral {
    pub id: String,
    pub consultation_id: Option<String>,
    pub patient_id: String,
    pub patient_name: String,
    #[sqlx(try_from = "String")]
    pub direction: Direction,
    pub from_organisation_id: String,
    pub from_organisation_name: String,
    pub to_organisation_id: String,
    pub to_organisation_name: String,
    pub to_department_id: Option<String>,
    pub created_by: String,
    pub reason: String,
    #[sqlx(try_from = "String")]
    pub urgency: Urgency,
    pub care_plan: String,
    #[sqlx(try_from = "String")]
    pub status: ReferralStatus,
    pub appointment_at: Option<String>,
    pub assigned_to: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ReferralEvent {
    /// Empty for the referral's creation.
    pub from_status: String,
    pub to_status: String,
    pub actor_id: String,
    pub reason: String,
    pub at: String,
}

/// Where a new referral goes: the caller's organisation and the receiving one, after the
/// rules of its direction (who may refer that way, which kind of organisation receives it).
async fn route(
    db: &Db,
    user: &AuthUser,
    b: &NewReferral,
    direction: Direction,
    patient: &crate::patients::Patient,
) -> ApiResult<(String, String)> {
    match direction {
        Direction::Up => {
            if user.role != Role::CommunityDoctor || patient.home_organisation_id != user.org {
                return Err(ApiError::forbidden("up-referrals are made by the patient's community doctors"));
            }
            let to = match &b.to_organisation_id {
                Some(t) => t.clone(),
                None => store::consortium_hospital(db, &user.org)
                    .await?
                    .ok_or_else(|| ApiError::validation("to_organisation_id", "no consortium hospital is linked"))?,
            };
            if store::org_kind(db, &to).await?.as_deref() != Some("tertiary_hospital") {
                return Err(ApiError::validation("to_organisation_id", "an up-referral goes to a tertiary hospital"));
            }
            // Within the consortium: a referral opens the patient's record to the receiving side.
            if !crate::directory::store::linked(db, &to, &user.org).await? {
                return Err(ApiError::forbidden(
                    "an up-referral goes to a hospital of the centre's consortium (ask the coordinator to link it)",
                ));
            }
            Ok((user.org.clone(), to))
        }
        Direction::Down => {
            if !matches!(user.role, Role::Expert | Role::Coordinator) {
                return Err(ApiError::forbidden("down-referrals are made by the hospital's experts and coordinators"));
            }
            if b.care_plan.trim().is_empty() {
                return Err(ApiError::validation("care_plan", "a down-referral carries the care plan"));
            }
            let to = b.to_organisation_id.clone().unwrap_or_else(|| patient.home_organisation_id.clone());
            if !matches!(store::org_kind(db, &to).await?.as_deref(), Some("community_health_centre" | "medical_corner"))
            {
                return Err(ApiError::validation("to_organisation_id", "a down-referral goes to a community centre"));
            }
            // The patient's own centre, or one of the hospital's consortium: a referral opens the
            // patient's record to the receiving centre's doctors.
            if to != patient.home_organisation_id && !crate::directory::store::linked(db, &user.org, &to).await? {
                return Err(ApiError::forbidden(
                    "a down-referral goes to the patient's own centre or a centre of the hospital's consortium",
                ));
            }
            Ok((user.org.clone(), to))
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(b): Json<NewReferral>,
) -> ApiResult<(StatusCode, Json<Referral>)> {
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    let patient = crate::patients::load_to_act(&state.db, &user, &b.patient_id, "refer").await?;
    // An expert refers (and plans follow-up) once they act for the patient, not on an
    // invitation they have not answered.
    crate::patients::require_acting(&state.db, &user, &patient.id, "refer").await?;
    let done = async {
        if let Some(cid) = &b.consultation_id {
            consultation_of_patient(&state.db, &user, cid, &patient.id).await?;
        }
        let direction: Direction = b.direction.parse().map_err(|_| ApiError::validation("direction", "up or down"))?;
        let (from_org, to_org) = route(&state.db, &user, &b, direction, &patient).await?;
        if b.follow_up.is_some() && direction != Direction::Down {
            return Err(ApiError::validation("follow_up", "follow-up plans come with down-referrals"));
        }
        let id = new_id();
        let now = now_ts();
        let mut tx = state.db.begin_write().await?;
        let row = NewReferralRow {
            id: &id,
            consultation_id: b.consultation_id.as_deref(),
            patient_id: &patient.id,
            direction,
            from_organisation_id: &from_org,
            to_organisation_id: &to_org,
            to_department_id: b.to_department_id.as_deref(),
            created_by: &user.id,
            reason: reason.as_str(),
            urgency: b.urgency.as_str(),
            care_plan: b.care_plan.trim(),
            now: &now,
        };
        store::insert_referral(&mut tx, &row).await?;
        if let Some(f) = &b.follow_up {
            let plan = NewPlan {
                patient_id: patient.id.clone(),
                consultation_id: b.consultation_id.clone(),
                referral_id: Some(id.clone()),
                condition: f.condition.clone(),
                interval_weeks: f.interval_weeks,
                visits: f.visits,
                start_date: None,
                instructions: f.instructions.clone(),
                targets: None,
            };
            let plan_id = followup::create_plan(&mut tx, &user, &to_org, &plan).await?;
            crate::audit::event(&user, "create", "follow_up_plan", &plan_id)
                .patient(&patient.id)
                .record_with(&mut *tx)
                .await?;
        }
        crate::audit::event(&user, "create", "referral", &id).patient(&patient.id).record_with(&mut *tx).await?;
        // Tell the receiving side's clinicians and coordinators.
        let receivers = store::referral_receivers(&mut tx, &to_org).await?;
        let text = notifications::Text::referral_new(direction);
        let notice = Notice::new("referral", text, reason.to_string(), b.consultation_id.as_deref());
        let stored = notifications::store(&mut tx, &receivers, &notice).await?;
        tx.commit().await?;
        Ok((id, stored))
    };
    let (id, stored) = crate::patients::acted(&user, &patient.id, "refer").if_refused(&state.db, done.await).await?;
    notifications::publish(&state.notifications, &stored);
    let r = load(&state.db, &id).await?.ok_or_else(|| ApiError::internal("referral vanished"))?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn load(db: &Db, id: &str) -> ApiResult<Option<Referral>> {
    store::referral(db, id).await
}

/// Checks that a consultation named beside a patient is one the caller may see and is that
/// patient's (422 naming `consultation_id` otherwise, whether it exists or not).
pub async fn consultation_of_patient(
    db: &Db,
    user: &AuthUser,
    consultation_id: &str,
    patient_id: &str,
) -> ApiResult<()> {
    match crate::consultations::store::find_visible(db, user, consultation_id).await? {
        Some(c) if c.patient_id == patient_id => Ok(()),
        _ => {
            Err(ApiError::validation("consultation_id", "no consultation of this patient that you may see has this id"))
        }
    }
}

/// The desk of an organisation: its coordinators, or at a community centre or medical corner
/// (which have none) its community doctors. Pure: the caller's role and organisation.
fn is_desk_of(user: &AuthUser, org: &str) -> bool {
    user.org == org && matches!(user.role, Role::Coordinator | Role::CommunityDoctor)
}

/// Who sees a referral: the patient, its author, the clinician assigned to it, and the desks
/// of the sending and receiving organisations; not an admin, who takes part in no care. Pure.
pub fn may_see(user: &AuthUser, r: &Referral, patient_user: Option<&str>) -> bool {
    match user.role {
        Role::Admin => false,
        Role::Patient => patient_user == Some(user.id.as_str()),
        _ => {
            r.created_by == user.id
                || r.assigned_to.as_deref() == Some(user.id.as_str())
                || is_desk_of(user, &r.from_organisation_id)
                || is_desk_of(user, &r.to_organisation_id)
        }
    }
}

/// Who may take `action` on a referral they see: the receiving desk and the assigned
/// clinician accept, reject and complete; the receiving desk assigns; the author and the
/// sending desk withdraw. Pure.
pub fn may_act(user: &AuthUser, r: &Referral, action: ReferralAction) -> bool {
    if user.role == Role::Admin {
        return false;
    }
    let receiving_desk = is_desk_of(user, &r.to_organisation_id);
    match action {
        ReferralAction::Accept | ReferralAction::Reject | ReferralAction::Complete => {
            receiving_desk || r.assigned_to.as_deref() == Some(user.id.as_str())
        }
        ReferralAction::Assign => receiving_desk,
        ReferralAction::Withdraw => r.created_by == user.id || is_desk_of(user, &r.from_organisation_id),
    }
}

/// Loads a visible referral to read it, auditing the access (or the refusal, answered 404).
async fn load_visible(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<Referral> {
    let r = load_to_act(db, user, id, action).await?;
    acted(user, &r, action).record(db).await?;
    Ok(r)
}

/// Loads a visible referral for `action`, a change that records its own outcome (its success
/// in its transaction, a refusal with [`crate::audit::AuditEvent::if_refused`]); not visible:
/// audited as denied, answered 404.
async fn load_to_act(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<Referral> {
    let r = load(db, id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    let patient_user = store::patient_user(db, &r.patient_id).await?;
    if !may_see(user, &r, patient_user.as_deref()) {
        acted(user, &r, action).outcome(crate::audit::Outcome::Denied).record(db).await?;
        return Err(ApiError::not_found("referral"));
    }
    Ok(r)
}

/// The audit event of `user`'s `action` on referral `r`.
fn acted(user: &AuthUser, r: &Referral, action: &str) -> crate::audit::AuditEvent {
    crate::audit::event(user, action, "referral", &r.id).patient(&r.patient_id)
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ReferralDetail {
    #[serde(flatten)]
    pub referral: Referral,
    pub history: Vec<ReferralEvent>,
}

async fn detail(db: &Db, id: &str) -> ApiResult<Json<ReferralDetail>> {
    let referral = load(db, id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    Ok(Json(ReferralDetail { history: store::referral_history(db, id).await?, referral }))
}

pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ReferralDetail>> {
    let referral = load_visible(&state.db, &user, &id, "read").await?;
    Ok(Json(ReferralDetail { history: store::referral_history(&state.db, &id).await?, referral }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferralFilter {
    pub direction: Option<String>,
    pub status: Option<String>,
    /// `sent` or `received`; both by default.
    pub side: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<ReferralFilter>,
) -> ApiResult<Json<crate::api::Page<Referral>>> {
    let side = match f.side.as_deref() {
        Some("sent") => Side::Sent,
        Some("received") => Side::Received,
        _ => Side::Both,
    };
    let rows = store::list_referrals(&state.db, &user, side, f.direction.as_deref(), f.status.as_deref()).await?;
    let events = rows.iter().map(|r| crate::audit::event(&user, "list", "referral", &r.id).patient(&r.patient_id));
    crate::audit::record_all(&state.db, events.collect()).await?;
    Ok(Json(crate::api::Page { items: rows, next: None }))
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[serde(default)]
    pub reason: Option<String>,
    /// On accept: the appointment offered at the hospital.
    #[serde(default)]
    pub appointment_at: Option<crate::db::ClientTime>,
}

/// The reason an action carries: required for a rejection or a withdrawal, optional (but
/// checked when given) otherwise.
fn action_reason(action: ReferralAction, given: Option<&str>) -> ApiResult<Option<Reason>> {
    let parse = |r: &str| Reason::parse(r).map_err(|e| ApiError::validation("reason", e.to_string()));
    match given {
        _ if action.needs_reason() => Ok(Some(parse(given.unwrap_or(""))?)),
        Some(r) if !r.trim().is_empty() => Ok(Some(parse(r)?)),
        _ => Ok(None),
    }
}

async fn act(
    db: &Db,
    hub: &crate::notifications::NotificationHub,
    user: &AuthUser,
    id: &str,
    action: ReferralAction,
    b: ActionBody,
) -> ApiResult<Json<ReferralDetail>> {
    let r = load_to_act(db, user, id, action.as_str()).await?;
    let done = async {
        if !may_act(user, &r, action) {
            return Err(ApiError::forbidden(format!("you may not {action} this referral")));
        }
        let reason = action_reason(action, b.reason.as_deref())?;
        let to = next_status(r.status, action)
            .map_err(|e| ApiError::conflict(ErrorCode::InvalidTransition, e.to_string()))?;
        let now = now_ts();
        let mut tx = db.begin_write().await?;
        let appointment_at = b.appointment_at.map(|t| ts(t.into()));
        if !store::move_referral(&mut tx, id, r.status, to, appointment_at, &now).await? {
            return Err(ApiError::conflict(ErrorCode::InvalidTransition, "the referral changed meanwhile"));
        }
        let reason_text = reason.as_ref().map(|r| r.to_string()).unwrap_or_default();
        store::insert_referral_event(&mut tx, id, r.status.as_str(), to.as_str(), &user.id, &reason_text, &now).await?;
        crate::audit::event(user, action.as_str(), "referral", id)
            .patient(&r.patient_id)
            .detail(format!("{} -> {to}", r.status))
            .record_with(&mut *tx)
            .await?;
        let notice = Notice::new(
            "referral",
            notifications::Text::new("referral_status").with("status", to),
            reason_text,
            r.consultation_id.as_deref(),
        );
        let stored = notifications::store(&mut tx, std::slice::from_ref(&r.created_by), &notice).await?;
        tx.commit().await?;
        Ok(stored)
    };
    let stored = acted(user, &r, action.as_str()).if_refused(db, done.await).await?;
    notifications::publish(hub, &stored);
    detail(db, id).await
}

pub async fn accept(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state.db, &state.notifications, &user, &id, ReferralAction::Accept, b).await
}
pub async fn reject(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state.db, &state.notifications, &user, &id, ReferralAction::Reject, b).await
}
pub async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state.db, &state.notifications, &user, &id, ReferralAction::Complete, b).await
}
pub async fn withdraw(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state.db, &state.notifications, &user, &id, ReferralAction::Withdraw, b).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// An active community doctor or expert of the receiving organisation.
    pub user_id: String,
}

/// The receiving desk assigns the referral to one of its clinicians, who then sees it and
/// its patient and may accept, reject or complete it.
pub async fn assign(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<AssignBody>,
) -> ApiResult<Json<ReferralDetail>> {
    let r = load_to_act(&state.db, &user, &id, "assign").await?;
    let done = async {
        if !may_act(&user, &r, ReferralAction::Assign) {
            return Err(ApiError::forbidden("the receiving organisation's desk assigns referrals"));
        }
        next_status(r.status, ReferralAction::Assign)
            .map_err(|e| ApiError::conflict(ErrorCode::InvalidTransition, e.to_string()))?;
        let Some(assignee) = store::clinician_of(&state.db, &b.user_id, &r.to_organisation_id).await? else {
            return Err(ApiError::validation("user_id", "an active clinician of the receiving organisation"));
        };
        let mut tx = crate::audit::begin(&state.db).await?;
        store::assign_referral(&mut tx, &id, &assignee, &now_ts()).await?;
        tx.audit(
            crate::audit::event(&user, "assign", "referral", &id)
                .patient(&r.patient_id)
                .detail(format!("to {assignee}")),
        )
        .await?;
        let notice = Notice::new(
            "referral",
            notifications::Text::new("referral_assigned"),
            r.reason.clone(),
            r.consultation_id.as_deref(),
        );
        let stored = notifications::store(&mut tx, std::slice::from_ref(&assignee), &notice).await?;
        tx.commit().await?;
        Ok(stored)
    };
    let stored = acted(&user, &r, "assign").if_refused(&state.db, done.await).await?;
    notifications::publish(&state.notifications, &stored);
    detail(&state.db, &id).await
}

pub async fn of_consultation(db: &Db, consultation_id: &str) -> ApiResult<Vec<Referral>> {
    store::referrals_of_consultation(db, consultation_id).await
}
