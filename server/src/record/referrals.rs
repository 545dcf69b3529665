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
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::consultations::state::{Reason, Urgency};
use crate::db::{new_id, now_ts, ts, Id};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::{self, Notice};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Which status a referral may move to from which, by whom: pure.
pub fn next_status(from: &str, action: &str) -> Option<&'static str> {
    Some(match (from, action) {
        ("requested", "accept") => "accepted",
        ("requested", "reject") => "rejected",
        ("accepted", "complete") => "completed",
        ("requested" | "accepted", "withdraw") => "entered_in_error",
        _ => return None,
    })
}

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
    pub direction: String,
    pub from_organisation_id: String,
    pub from_organisation_name: String,
    pub to_organisation_id: String,
    pub to_organisation_name: String,
    pub to_department_id: Option<String>,
    pub created_by: String,
    pub reason: String,
    pub urgency: String,
    pub care_plan: String,
    pub status: String,
    pub appointment_at: Option<String>,
    pub assigned_to: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const REFERRAL_SELECT: &str = "SELECT r.id, r.consultation_id, r.patient_id, p.name AS patient_name, r.direction, r.from_organisation_id,
    f.name AS from_organisation_name, r.to_organisation_id, t.name AS to_organisation_name, r.to_department_id, r.created_by, r.reason,
    r.urgency, r.care_plan, r.status, r.appointment_at, r.assigned_to, r.created_at, r.updated_at
    FROM referrals r JOIN patients p ON p.id = r.patient_id JOIN organisations f ON f.id = r.from_organisation_id
    JOIN organisations t ON t.id = r.to_organisation_id";

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ReferralEvent {
    pub from_status: String,
    pub to_status: String,
    pub actor_id: String,
    pub reason: String,
    pub at: String,
}

async fn org_kind(state: &AppState, id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT kind FROM organisations WHERE id = $1").bind(id).fetch_optional(&state.db.pool).await?;
    Ok(row.map(|r| r.0))
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(b): Json<NewReferral>,
) -> ApiResult<(StatusCode, Json<Referral>)> {
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    let patient = crate::patients::load_for(&state.db, &user, &b.patient_id, "refer").await?;
    if let Some(cid) = &b.consultation_id {
        consultation_of_patient(&state, &user, cid, &patient.id).await?;
    }
    let (from_org, to_org) = match b.direction.as_str() {
        "up" => {
            if user.role != Role::CommunityDoctor || patient.home_organisation_id != user.org {
                return Err(ApiError::forbidden("up-referrals are made by the patient's community doctors"));
            }
            let to = match &b.to_organisation_id {
                Some(t) => t.clone(),
                None => {
                    let row: Option<(String,)> = sqlx::query_as(
                        "SELECT hospital_id FROM consortium_links WHERE centre_id = $1 ORDER BY hospital_id LIMIT 1",
                    )
                    .bind(&user.org)
                    .fetch_optional(&state.db.pool)
                    .await?;
                    row.map(|r| r.0)
                        .ok_or_else(|| ApiError::validation("to_organisation_id", "no consortium hospital is linked"))?
                }
            };
            if org_kind(&state, &to).await?.as_deref() != Some("tertiary_hospital") {
                return Err(ApiError::validation("to_organisation_id", "an up-referral goes to a tertiary hospital"));
            }
            (user.org.clone(), to)
        }
        "down" => {
            if !matches!(user.role, Role::Expert | Role::Coordinator) {
                return Err(ApiError::forbidden("down-referrals are made by the hospital's experts and coordinators"));
            }
            if b.care_plan.trim().is_empty() {
                return Err(ApiError::validation("care_plan", "a down-referral carries the care plan"));
            }
            let to = b.to_organisation_id.clone().unwrap_or_else(|| patient.home_organisation_id.clone());
            if !matches!(org_kind(&state, &to).await?.as_deref(), Some("community_health_centre" | "medical_corner")) {
                return Err(ApiError::validation("to_organisation_id", "a down-referral goes to a community centre"));
            }
            (user.org.clone(), to)
        }
        _ => return Err(ApiError::validation("direction", "up or down")),
    };
    if b.follow_up.is_some() && b.direction != "down" {
        return Err(ApiError::validation("follow_up", "follow-up plans come with down-referrals"));
    }
    let id = new_id();
    let now = now_ts();
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO referrals (id, consultation_id, patient_id, direction, from_organisation_id, to_organisation_id, to_department_id, created_by,
            reason, urgency, care_plan, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'requested', $12, $12)",
    )
    .bind(&id)
    .bind(&b.consultation_id)
    .bind(&patient.id)
    .bind(&b.direction)
    .bind(&from_org)
    .bind(&to_org)
    .bind(&b.to_department_id)
    .bind(&user.id)
    .bind(reason.as_str())
    .bind(b.urgency.as_str())
    .bind(b.care_plan.trim())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO referral_events (id, referral_id, from_status, to_status, actor_id, reason, at) VALUES ($1, $2, '', 'requested', $3, $4, $5)")
        .bind(new_id())
        .bind(&id)
        .bind(&user.id)
        .bind(reason.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
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
    let receivers: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE organisation_id = $1 AND active = 1 AND role IN ('coordinator', 'community_doctor') ORDER BY id",
    )
    .bind(&to_org)
    .fetch_all(&mut *tx)
    .await?;
    let receivers: Vec<String> = receivers.into_iter().map(|r| r.0).collect();
    let title =
        if b.direction == "up" { "新的上转申请 New up-referral" } else { "新的下转患者 New down-referral" };
    let stored = notifications::store(
        &mut tx,
        &receivers,
        &Notice {
            kind: "referral",
            title: title.into(),
            body: reason.to_string(),
            consultation_id: b.consultation_id.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    notifications::publish(&state, &stored);
    let r = load(&state, &id).await?.ok_or_else(|| ApiError::internal("referral vanished"))?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn load(state: &AppState, id: &str) -> ApiResult<Option<Referral>> {
    Ok(sqlx::query_as(&format!("{REFERRAL_SELECT} WHERE r.id = $1")).bind(id).fetch_optional(&state.db.pool).await?)
}

/// Checks that a consultation named beside a patient is one the caller may see and is that
/// patient's (422 naming `consultation_id` otherwise, whether it exists or not).
pub async fn consultation_of_patient(
    state: &AppState,
    user: &AuthUser,
    consultation_id: &str,
    patient_id: &str,
) -> ApiResult<()> {
    match crate::consultations::store::find_visible(&state.db, user, consultation_id).await? {
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

/// Who sees a referral: admins, the patient, its author, the clinician assigned to it, and
/// the desks of the sending and receiving organisations. Pure.
pub fn may_see(user: &AuthUser, r: &Referral, patient_user: Option<&str>) -> bool {
    match user.role {
        Role::Admin => true,
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
/// sending desk withdraw; admins all. Pure.
pub fn may_act(user: &AuthUser, r: &Referral, action: &str) -> bool {
    if user.role == Role::Admin {
        return true;
    }
    let receiving_desk = is_desk_of(user, &r.to_organisation_id);
    match action {
        "accept" | "reject" | "complete" => receiving_desk || r.assigned_to.as_deref() == Some(user.id.as_str()),
        "assign" => receiving_desk,
        "withdraw" => r.created_by == user.id || is_desk_of(user, &r.from_organisation_id),
        _ => false,
    }
}

async fn load_visible(state: &AppState, user: &AuthUser, id: &str, action: &str) -> ApiResult<Referral> {
    let r = load(state, id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    let pu: Option<(Option<String>,)> = sqlx::query_as("SELECT user_id FROM patients WHERE id = $1")
        .bind(&r.patient_id)
        .fetch_optional(&state.db.pool)
        .await?;
    let outcome = may_see(user, &r, pu.and_then(|p| p.0).as_deref());
    let ev = crate::audit::event(user, action, "referral", id).patient(&r.patient_id);
    if !outcome {
        ev.outcome(crate::audit::Outcome::Denied).record(&state.db).await?;
        return Err(ApiError::not_found("referral"));
    }
    ev.record(&state.db).await?;
    Ok(r)
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ReferralDetail {
    #[serde(flatten)]
    pub referral: Referral,
    pub history: Vec<ReferralEvent>,
}

pub async fn history(state: &AppState, id: &str) -> ApiResult<Vec<ReferralEvent>> {
    Ok(sqlx::query_as("SELECT from_status, to_status, actor_id, reason, at FROM referral_events WHERE referral_id = $1 ORDER BY at, id")
        .bind(id)
        .fetch_all(&state.db.pool)
        .await?)
}

pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ReferralDetail>> {
    let referral = load_visible(&state, &user, &id, "read").await?;
    Ok(Json(ReferralDetail { history: history(&state, &id).await?, referral }))
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
    let side = f.side.unwrap_or_default();
    let scope = match user.role {
        Role::Admin => "($1 <> '' OR $2 <> '')",
        Role::Patient => "(p.user_id = $1 OR $2 = '')",
        // The desks of both sides (the same rule as may_see), by side.
        Role::Coordinator | Role::CommunityDoctor => match side.as_str() {
            "sent" => "(r.from_organisation_id = $2 OR r.created_by = $1)",
            "received" => "(r.to_organisation_id = $2 OR r.assigned_to = $1)",
            _ => {
                "(r.from_organisation_id = $2 OR r.to_organisation_id = $2 OR r.created_by = $1 OR r.assigned_to = $1)"
            }
        },
        Role::Expert => match side.as_str() {
            "sent" => "(r.created_by = $1 OR $2 = '')",
            "received" => "(r.assigned_to = $1 OR $2 = '')",
            _ => "(r.created_by = $1 OR r.assigned_to = $1 OR $2 = '')",
        },
    };
    let rows: Vec<Referral> = sqlx::query_as(&format!(
        "{REFERRAL_SELECT} WHERE {scope} AND ($3 = '' OR r.direction = $3) AND ($4 = '' OR r.status = $4) ORDER BY r.created_at DESC LIMIT 500"
    ))
    .bind(&user.id)
    .bind(&user.org)
    .bind(f.direction.unwrap_or_default())
    .bind(f.status.unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let mut tx = state.db.begin_write().await?;
    for r in &rows {
        crate::audit::event(&user, "list", "referral", &r.id).patient(&r.patient_id).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
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

async fn act(
    state: &AppState,
    user: &AuthUser,
    id: &str,
    action: &'static str,
    b: ActionBody,
) -> ApiResult<Json<ReferralDetail>> {
    let r = load_visible(state, user, id, action).await?;
    if !may_act(user, &r, action) {
        return Err(ApiError::forbidden(format!("you may not {action} this referral")));
    }
    let reason = match (action, b.reason.as_deref()) {
        ("reject" | "withdraw", r) => {
            Some(Reason::parse(r.unwrap_or("")).map_err(|e| ApiError::validation("reason", e.to_string()))?)
        }
        (_, Some(r)) if !r.trim().is_empty() => {
            Some(Reason::parse(r).map_err(|e| ApiError::validation("reason", e.to_string()))?)
        }
        _ => None,
    };
    let to = next_status(&r.status, action).ok_or_else(|| {
        ApiError::conflict(ErrorCode::InvalidTransition, format!("cannot {action} a referral that is {}", r.status))
    })?;
    let now = now_ts();
    let mut tx = state.db.begin_write().await?;
    let done = sqlx::query("UPDATE referrals SET status = $1, appointment_at = COALESCE($2, appointment_at), updated_at = $3 WHERE id = $4 AND status = $5")
        .bind(to)
        .bind(b.appointment_at.map(|t| ts(t.into())))
        .bind(&now)
        .bind(id)
        .bind(&r.status)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(ApiError::conflict(ErrorCode::InvalidTransition, "the referral changed meanwhile"));
    }
    sqlx::query("INSERT INTO referral_events (id, referral_id, from_status, to_status, actor_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(new_id())
        .bind(id)
        .bind(&r.status)
        .bind(to)
        .bind(&user.id)
        .bind(reason.as_ref().map(|r| r.to_string()).unwrap_or_default())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    crate::audit::event(user, action, "referral", id)
        .patient(&r.patient_id)
        .detail(format!("{} -> {to}", r.status))
        .record_with(&mut *tx)
        .await?;
    let stored = notifications::store(
        &mut tx,
        std::slice::from_ref(&r.created_by),
        &Notice {
            kind: "referral",
            title: format!("转诊状态：{to} Referral {to}"),
            body: reason.map(|r| r.to_string()).unwrap_or_default(),
            consultation_id: r.consultation_id.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    notifications::publish(state, &stored);
    let referral = load(state, id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    Ok(Json(ReferralDetail { history: history(state, id).await?, referral }))
}

pub async fn accept(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state, &user, &id, "accept", b).await
}
pub async fn reject(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state, &user, &id, "reject", b).await
}
pub async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state, &user, &id, "complete", b).await
}
pub async fn withdraw(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ActionBody>,
) -> ApiResult<Json<ReferralDetail>> {
    act(&state, &user, &id, "withdraw", b).await
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
    let r = load_visible(&state, &user, &id, "assign").await?;
    if !may_act(&user, &r, "assign") {
        return Err(ApiError::forbidden("the receiving organisation's desk assigns referrals"));
    }
    if !matches!(r.status.as_str(), "requested" | "accepted") {
        return Err(ApiError::conflict(
            ErrorCode::InvalidTransition,
            format!("cannot assign a referral that is {}", r.status),
        ));
    }
    let clinician: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE id = $1 AND organisation_id = $2 AND active = 1 AND role IN ('expert', 'community_doctor')",
    )
    .bind(&b.user_id)
    .bind(&r.to_organisation_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some((assignee,)) = clinician else {
        return Err(ApiError::validation("user_id", "an active clinician of the receiving organisation"));
    };
    let mut tx = crate::audit::begin(&state.db).await?;
    sqlx::query("UPDATE referrals SET assigned_to = $1, updated_at = $2 WHERE id = $3")
        .bind(&assignee)
        .bind(now_ts())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.audit(
        crate::audit::event(&user, "assign", "referral", &id).patient(&r.patient_id).detail(format!("to {assignee}")),
    )
    .await?;
    let stored = notifications::store(
        &mut tx,
        std::slice::from_ref(&assignee),
        &Notice {
            kind: "referral",
            title: "转诊已分派给您 Referral assigned to you".into(),
            body: r.reason.clone(),
            consultation_id: r.consultation_id.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    notifications::publish(&state, &stored);
    let referral = load(&state, &id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    Ok(Json(ReferralDetail { history: history(&state, &id).await?, referral }))
}

pub async fn of_consultation(state: &AppState, consultation_id: &str) -> ApiResult<Vec<Referral>> {
    Ok(sqlx::query_as(&format!("{REFERRAL_SELECT} WHERE r.consultation_id = $1 ORDER BY r.created_at"))
        .bind(consultation_id)
        .fetch_all(&state.db.pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::next_status;

    #[test]
    fn referral_statuses() {
        assert_eq!(next_status("requested", "accept"), Some("accepted"));
        assert_eq!(next_status("requested", "reject"), Some("rejected"));
        assert_eq!(next_status("accepted", "complete"), Some("completed"));
        assert_eq!(next_status("accepted", "withdraw"), Some("entered_in_error"));
        assert_eq!(next_status("rejected", "accept"), None);
        assert_eq!(next_status("completed", "withdraw"), None);
        assert_eq!(next_status("requested", "complete"), None);
    }
}
