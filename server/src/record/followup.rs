//! Follow-up plans for chronic disease (hypertension, diabetes, ...): a plan lays its visits
//! out on a schedule; each visit can be moved or closed; overdue visits show up for the
//! community doctors of the patient's centre.

use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, Db, Id};
use crate::domain::record::VisitStatus;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::store::{self as record_store, NewPlanRow};

/// The due dates of `visits` follow-ups every `interval_weeks`, the first one interval
/// after `start`.
pub fn visit_dates(start: NaiveDate, interval_weeks: u32, visits: u32) -> Vec<NaiveDate> {
    (1..=visits).map(|i| start + Duration::weeks(i64::from(interval_weeks) * i64::from(i))).collect()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    pub patient_id: String,
    #[serde(default)]
    pub consultation_id: Option<String>,
    #[serde(default)]
    pub referral_id: Option<String>,
    /// e.g. hypertension, diabetes.
    pub condition: String,
    pub interval_weeks: u32,
    /// How many visits, e.g. 6 visits every 4 weeks for six months.
    pub visits: u32,
    /// First visit is one interval after this date (default today).
    #[serde(default)]
    pub start_date: Option<crate::db::ClientDate>,
    #[serde(default)]
    pub instructions: String,
    /// Targets and measurement frequency for home readings; absent: the defaults of the
    /// condition (hypertension, diabetes; docs/resident.md), any field absent: not watched.
    #[serde(default)]
    pub targets: Option<crate::vitals::targets::Targets>,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Visit {
    pub id: String,
    pub plan_id: String,
    pub seq: i64,
    pub due_date: String,
    #[sqlx(try_from = "String")]
    pub status: VisitStatus,
    pub note: String,
    pub patient_id: String,
    pub patient_name: String,
    pub condition: String,
}

/// Creates a plan and its visits for a patient at their home centre, within the caller's
/// transaction (which records the audit event). Used by the endpoint and by down-referrals
/// that carry a plan.
pub async fn create_plan(
    conn: &mut sqlx::AnyConnection,
    user: &AuthUser,
    home_org: &str,
    p: &NewPlan,
) -> ApiResult<String> {
    if p.condition.trim().is_empty() || p.condition.chars().count() > 100 {
        return Err(ApiError::validation("condition", "1 to 100 characters"));
    }
    if !(1..=52).contains(&p.interval_weeks) {
        return Err(ApiError::validation("interval_weeks", "1 to 52"));
    }
    if !(1..=52).contains(&p.visits) {
        return Err(ApiError::validation("visits", "1 to 52"));
    }
    let targets = p.targets.clone().unwrap_or_else(|| crate::vitals::targets::defaults(&p.condition));
    if let Err((field, message)) = crate::vitals::targets::check(&targets) {
        return Err(ApiError::validation(field, message));
    }
    let id = new_id();
    let now = now_ts();
    let start = p.start_date.map(crate::db::ClientDate::date).unwrap_or_else(|| chrono::Utc::now().date_naive());
    let due_dates: Vec<String> =
        visit_dates(start, p.interval_weeks, p.visits).into_iter().map(|d| d.format("%Y-%m-%d").to_string()).collect();
    let row = NewPlanRow {
        id: &id,
        patient_id: &p.patient_id,
        consultation_id: p.consultation_id.as_deref(),
        referral_id: p.referral_id.as_deref(),
        organisation_id: home_org,
        condition: p.condition.trim(),
        interval_weeks: i64::from(p.interval_weeks),
        visits: i64::from(p.visits),
        instructions: p.instructions.trim(),
        created_by: &user.id,
        now: &now,
        targets: serde_json::to_string(&targets).unwrap_or_default(),
    };
    record_store::insert_plan(conn, row, &due_dates).await?;
    Ok(id)
}

pub async fn post_plan(
    State(state): State<AppState>,
    user: AuthUser,
    Json(p): Json<NewPlan>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    if !user.role.is_clinician() {
        return Err(ApiError::forbidden("doctors create follow-up plans"));
    }
    let patient = crate::patients::load_to_act(&state.db, &user, &p.patient_id, "plan_follow_up").await?;
    crate::patients::require_acting(&state.db, &user, &patient.id, "plan_follow_up").await?;
    let done = async {
        // A plan names only a consultation or referral of the same patient that the caller sees.
        if let Some(cid) = &p.consultation_id {
            super::referrals::consultation_of_patient(&state.db, &user, cid, &patient.id).await?;
        }
        if let Some(rid) = &p.referral_id {
            let visible = super::referrals::load(&state.db, rid)
                .await?
                .filter(|r| r.patient_id == patient.id && super::referrals::may_see(&user, r, None));
            if visible.is_none() {
                return Err(ApiError::validation(
                    "referral_id",
                    "no referral of this patient that you may see has this id",
                ));
            }
        }
        let mut tx = crate::audit::begin(&state.db).await?;
        let id = create_plan(&mut tx, &user, &patient.home_organisation_id, &p).await?;
        tx.audit(crate::audit::event(&user, "create", "follow_up_plan", &id).patient(&p.patient_id)).await?;
        tx.commit().await?;
        Ok(id)
    };
    let id = crate::patients::acted(&user, &patient.id, "plan_follow_up").if_refused(&state.db, done.await).await?;
    let visits = record_store::visits_of_plan(&state.db, &id).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": id, "visits": visits}))))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitFilter {
    /// Only visits past their due date and still planned.
    pub overdue: Option<bool>,
    pub patient_id: Option<String>,
}

/// Follow-up visits of the patients the caller may see (community doctors: their centre's).
pub async fn list_visits(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<VisitFilter>,
) -> ApiResult<Json<crate::api::Page<Visit>>> {
    let overdue_before =
        f.overdue.unwrap_or(false).then(|| chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string());
    let rows = record_store::list_visits(&state.db, &user, overdue_before, f.patient_id).await?;
    let mut tx = state.db.begin_write().await?;
    for v in &rows {
        crate::audit::event(&user, "list", "follow_up_visit", &v.id)
            .patient(&v.patient_id)
            .record_with(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(crate::api::Page { items: rows, next: None }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitPatch {
    /// Move the visit.
    pub due_date: Option<crate::db::ClientDate>,
    /// `done` or `closed`.
    pub status: Option<String>,
    pub note: Option<String>,
}

pub async fn patch_visit(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(p): Json<VisitPatch>,
) -> ApiResult<Json<Visit>> {
    if !matches!(user.role, Role::CommunityDoctor | Role::Expert | Role::Coordinator) {
        return Err(ApiError::forbidden("doctors and coordinators update follow-up visits"));
    }
    let visit = record_store::visit(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("visit"))?;
    crate::patients::load_to_act(&state.db, &user, &visit.patient_id, "update_follow_up_visit")
        .await
        .map_err(|_| ApiError::not_found("visit"))?;
    crate::patients::require_acting(&state.db, &user, &visit.patient_id, "update_follow_up_visit").await?;
    let done = async {
        let status = match p.status.as_deref() {
            None => None,
            Some(s) => {
                Some(s.parse::<VisitStatus>().map_err(|_| ApiError::validation("status", "planned, done or closed"))?)
            }
        };
        let due_date = p.due_date.map(|d| d.date().format("%Y-%m-%d").to_string());
        let previous = super::revisions::replaced(&[
            ("due_date", &visit.due_date, due_date.as_deref()),
            ("status", visit.status.as_str(), status.map(|s| s.as_str())),
            ("note", &visit.note, p.note.as_deref()),
        ]);
        let mut tx = crate::audit::begin(&state.db).await?;
        super::revisions::keep(&mut tx, &visit.patient_id, "follow_up_visit", &id, &user.id, previous).await?;
        record_store::update_visit(&mut tx, &id, due_date, status, p.note, &user.id, &now_ts()).await?;
        tx.audit(crate::audit::event(&user, "update", "follow_up_visit", &id).patient(&visit.patient_id)).await?;
        tx.commit().await
    };
    crate::audit::event(&user, "update", "follow_up_visit", &id)
        .patient(&visit.patient_id)
        .if_refused(&state.db, done.await)
        .await?;
    record_store::visit(&state.db, &id).await?.map(Json).ok_or_else(|| ApiError::not_found("visit"))
}

pub async fn visits_of_consultation(db: &Db, consultation_id: &str) -> ApiResult<Vec<Visit>> {
    record_store::visits_of_consultation(db, consultation_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_four_weeks_for_six_months() {
        let d = visit_dates(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap(), 4, 6);
        assert_eq!(d.len(), 6);
        assert_eq!(d[0], NaiveDate::from_ymd_opt(2026, 12, 21).unwrap());
        assert_eq!(d[5], NaiveDate::from_ymd_opt(2027, 5, 10).unwrap());
    }
}
