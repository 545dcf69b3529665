//! Follow-up plans for chronic disease (hypertension, diabetes, ...): a plan lays its visits
//! out on a schedule; each visit can be moved or closed; overdue visits show up for the
//! community doctors of the patient's centre.

use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

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
    pub status: String,
    pub note: String,
    pub patient_id: String,
    pub patient_name: String,
    pub condition: String,
}

const VISIT_SELECT: &str =
    "SELECT v.id, v.plan_id, v.seq, v.due_date, v.status, v.note, p.patient_id, x.name AS patient_name, p.condition
    FROM follow_up_visits v JOIN follow_up_plans p ON p.id = v.plan_id JOIN patients x ON x.id = p.patient_id";

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
    sqlx::query(
        "INSERT INTO follow_up_plans (id, patient_id, consultation_id, referral_id, organisation_id, condition, interval_weeks, visits, instructions, created_by, status, created_at, targets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12)",
    )
    .bind(&id)
    .bind(&p.patient_id)
    .bind(&p.consultation_id)
    .bind(&p.referral_id)
    .bind(home_org)
    .bind(p.condition.trim())
    .bind(i64::from(p.interval_weeks))
    .bind(i64::from(p.visits))
    .bind(p.instructions.trim())
    .bind(&user.id)
    .bind(&now)
    .bind(serde_json::to_string(&targets).unwrap_or_default())
    .execute(&mut *conn)
    .await?;
    let start = p.start_date.map(crate::db::ClientDate::date).unwrap_or_else(|| chrono::Utc::now().date_naive());
    for (i, due) in visit_dates(start, p.interval_weeks, p.visits).into_iter().enumerate() {
        sqlx::query("INSERT INTO follow_up_visits (id, plan_id, seq, due_date, status, updated_at) VALUES ($1, $2, $3, $4, 'planned', $5)")
            .bind(new_id())
            .bind(&id)
            .bind(i as i64 + 1)
            .bind(due.format("%Y-%m-%d").to_string())
            .bind(&now)
            .execute(&mut *conn)
            .await?;
    }
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
    let patient = crate::patients::load_for(&state.db, &user, &p.patient_id, "plan_follow_up").await?;
    // A plan names only a consultation or referral of the same patient that the caller sees.
    if let Some(cid) = &p.consultation_id {
        super::referrals::consultation_of_patient(&state, &user, cid, &patient.id).await?;
    }
    if let Some(rid) = &p.referral_id {
        let visible = super::referrals::load(&state, rid)
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
    let visits = visits_where(&state, "v.plan_id = $1", &id).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": id, "visits": visits}))))
}

async fn visits_where(state: &AppState, predicate: &str, arg: &str) -> ApiResult<Vec<Visit>> {
    Ok(sqlx::query_as(&format!("{VISIT_SELECT} WHERE {predicate} ORDER BY v.due_date, v.seq"))
        .bind(arg)
        .fetch_all(&state.db.pool)
        .await?)
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
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let sql = format!(
        "{VISIT_SELECT} WHERE p.status = 'active' AND p.patient_id IN (SELECT p.id FROM patients p WHERE {})
           AND ($3 = 0 OR (v.status = 'planned' AND v.due_date < $4)) AND ($5 = '' OR p.patient_id = $5)
         ORDER BY v.due_date, v.seq LIMIT 500",
        crate::patients::visibility_predicate(user.role)
    );
    let rows: Vec<Visit> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&user.org)
        .bind(i64::from(f.overdue.unwrap_or(false)))
        .bind(today)
        .bind(f.patient_id.unwrap_or_default())
        .fetch_all(&state.db.pool)
        .await?;
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
    let visit =
        visits_where(&state, "v.id = $1", &id).await?.into_iter().next().ok_or_else(|| ApiError::not_found("visit"))?;
    crate::patients::load_for(&state.db, &user, &visit.patient_id, "read_for_update")
        .await
        .map_err(|_| ApiError::not_found("visit"))?;
    if let Some(s) = &p.status {
        if !matches!(s.as_str(), "done" | "closed" | "planned") {
            return Err(ApiError::validation("status", "planned, done or closed"));
        }
    }
    let mut tx = crate::audit::begin(&state.db).await?;
    sqlx::query(
        "UPDATE follow_up_visits SET due_date = COALESCE($1, due_date), status = COALESCE($2, status), note = COALESCE($3, note), updated_by = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(p.due_date.map(|d| d.date().format("%Y-%m-%d").to_string()))
    .bind(p.status)
    .bind(p.note)
    .bind(&user.id)
    .bind(now_ts())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    tx.audit(crate::audit::event(&user, "update", "follow_up_visit", &id).patient(&visit.patient_id)).await?;
    tx.commit().await?;
    visits_where(&state, "v.id = $1", &id)
        .await?
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("visit"))
}

pub async fn visits_of_consultation(state: &AppState, consultation_id: &str) -> ApiResult<Vec<Visit>> {
    visits_where(
        state,
        "p.consultation_id = $1 OR p.referral_id IN (SELECT id FROM referrals WHERE consultation_id = $1)",
        consultation_id,
    )
    .await
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
