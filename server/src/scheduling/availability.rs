//! Expert availability over HTTP: weekly rules with the booking policy, exceptions (leave
//! and extra sessions), and the computed free slots.

use super::slots::{SlotError, DEFAULT_TZ};
use super::store;
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, parse_ts, ts, Id};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Who may change an expert's availability: the expert, and coordinators and admins.
async fn check_editor(state: &AppState, user: &AuthUser, expert_id: &str) -> ApiResult<Tz> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT e.time_zone, u.organisation_id FROM expert_profiles e JOIN users u ON u.id = e.user_id WHERE e.user_id = $1 AND u.active = 1",
    )
    .bind(expert_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some((tz, expert_org)) = row else { return Err(ApiError::not_found("expert")) };
    // The expert, their own hospital's coordinators, and admins keep an expert's calendar.
    let allowed =
        user.id == expert_id || user.role == Role::Admin || (user.role == Role::Coordinator && user.org == expert_org);
    if !allowed {
        return Err(ApiError::forbidden(
            "only the expert, their hospital's coordinators and admins change availability",
        ));
    }
    Ok(tz.parse().unwrap_or(DEFAULT_TZ))
}

#[derive(Debug, Serialize, Deserialize, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// ISO weekday: 1 = Monday ... 7 = Sunday.
    pub weekday: i64,
    /// Local start, `HH:MM`.
    pub start: String,
    pub end: String,
    pub slot_minutes: i64,
    /// IANA zone; defaults to the expert's (Asia/Shanghai unless set otherwise).
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, Default, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    #[serde(default)]
    pub buffer_minutes: i64,
    /// 0 for no limit.
    #[serde(default)]
    pub max_per_day: i64,
    #[serde(default)]
    pub min_notice_minutes: i64,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    pub rules: Vec<RuleBody>,
    #[serde(default)]
    pub policy: PolicyBody,
}

async fn get_availability(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(Id(expert)): Path<Id>,
) -> ApiResult<Json<Availability>> {
    let rules: Vec<(i64, String, String, i64, String)> = sqlx::query_as(
        "SELECT weekday, start_time, end_time, slot_minutes, time_zone FROM availability_rules WHERE expert_id = $1 AND active = 1 ORDER BY weekday, start_time",
    )
    .bind(&expert)
    .fetch_all(&state.db.pool)
    .await?;
    let policy: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT buffer_minutes, max_per_day, min_notice_minutes FROM booking_policies WHERE expert_id = $1",
    )
    .bind(&expert)
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(Json(Availability {
        rules: rules
            .into_iter()
            .map(|(weekday, start, end, slot_minutes, tz)| RuleBody {
                weekday,
                start,
                end,
                slot_minutes,
                time_zone: Some(tz),
            })
            .collect(),
        policy: policy
            .map(|(buffer_minutes, max_per_day, min_notice_minutes)| PolicyBody {
                buffer_minutes,
                max_per_day,
                min_notice_minutes,
            })
            .unwrap_or_default(),
    }))
}

fn parse_hm(field: &str, s: &str) -> ApiResult<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| ApiError::validation(field, "a local time as HH:MM"))
}

/// Replaces the weekly rules and the policy (old rules are kept, inactive).
async fn put_availability(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(expert)): Path<Id>,
    Json(body): Json<Availability>,
) -> ApiResult<Json<Availability>> {
    let default_tz = check_editor(&state, &user, &expert).await?;
    if body.rules.len() > 100 {
        return Err(ApiError::validation("rules", "at most 100 weekly rules"));
    }
    for (i, r) in body.rules.iter().enumerate() {
        if !(1..=7).contains(&r.weekday) {
            return Err(ApiError::validation(&format!("rules[{i}].weekday"), "1 (Monday) to 7 (Sunday)"));
        }
        let s = parse_hm(&format!("rules[{i}].start"), &r.start)?;
        let e = parse_hm(&format!("rules[{i}].end"), &r.end)?;
        if e <= s {
            return Err(ApiError::validation(&format!("rules[{i}].end"), "must be after start"));
        }
        if !(5..=480).contains(&r.slot_minutes) {
            return Err(ApiError::validation(&format!("rules[{i}].slot_minutes"), "5 to 480 minutes"));
        }
        if let Some(tz) = &r.time_zone {
            tz.parse::<Tz>()
                .map_err(|_| ApiError::validation(&format!("rules[{i}].time_zone"), "an IANA time zone"))?;
        }
    }
    let p = &body.policy;
    if !(0..=240).contains(&p.buffer_minutes)
        || !(0..=100).contains(&p.max_per_day)
        || !(0..=43200).contains(&p.min_notice_minutes)
    {
        return Err(ApiError::validation("policy", "buffer 0-240 min, max_per_day 0-100, min_notice 0-43200 min"));
    }
    let now = now_ts();
    let mut tx = state.db.begin_write().await?;
    sqlx::query("UPDATE availability_rules SET active = 0 WHERE expert_id = $1 AND active = 1")
        .bind(&expert)
        .execute(&mut *tx)
        .await?;
    for r in &body.rules {
        sqlx::query(
            "INSERT INTO availability_rules (id, expert_id, weekday, start_time, end_time, slot_minutes, time_zone, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(&expert)
        .bind(r.weekday)
        .bind(&r.start)
        .bind(&r.end)
        .bind(r.slot_minutes)
        .bind(r.time_zone.clone().unwrap_or_else(|| default_tz.name().to_string()))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    let updated = sqlx::query("UPDATE booking_policies SET buffer_minutes = $1, max_per_day = $2, min_notice_minutes = $3 WHERE expert_id = $4")
        .bind(p.buffer_minutes)
        .bind(p.max_per_day)
        .bind(p.min_notice_minutes)
        .bind(&expert)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO booking_policies (expert_id, buffer_minutes, max_per_day, min_notice_minutes) VALUES ($1, $2, $3, $4)")
            .bind(&expert)
            .bind(p.buffer_minutes)
            .bind(p.max_per_day)
            .bind(p.min_notice_minutes)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    get_availability(State(state), user, Path(Id(expert))).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionBody {
    /// `leave` or `extra`.
    pub kind: String,
    pub start: crate::db::ClientTime,
    pub end: crate::db::ClientTime,
    #[serde(default)]
    pub slot_minutes: Option<i64>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ExceptionView {
    pub id: String,
    pub kind: String,
    pub start: String,
    pub end: String,
    pub slot_minutes: i64,
    pub reason: String,
}

async fn list_exceptions(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(Id(expert)): Path<Id>,
) -> ApiResult<Json<crate::api::Page<ExceptionView>>> {
    let rows: Vec<(String, String, String, String, i64, String)> = sqlx::query_as(
        "SELECT id, kind, start_at, end_at, slot_minutes, reason FROM availability_exceptions WHERE expert_id = $1 AND active = 1 AND end_at > $2 ORDER BY start_at",
    )
    .bind(&expert)
    .bind(now_ts())
    .fetch_all(&state.db.pool)
    .await?;
    let tz = expert_tz(&state, &expert).await?;
    let items = rows
        .into_iter()
        .map(|(id, kind, s, e, slot_minutes, reason)| ExceptionView {
            id,
            kind,
            start: local(parse_ts(&s), tz),
            end: local(parse_ts(&e), tz),
            slot_minutes,
            reason,
        })
        .collect();
    Ok(Json(crate::api::Page { items, next: None }))
}

async fn post_exception(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(expert)): Path<Id>,
    Json(b): Json<ExceptionBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    check_editor(&state, &user, &expert).await?;
    let start = super::within_horizon(&state.config, "start", b.start.into())?;
    let end: DateTime<Utc> = b.end.into();
    if end <= start || end - start > chrono::Duration::days(366) {
        return Err(ApiError::validation("end", "must be after start, within a year"));
    }
    let slot_minutes = match b.kind.as_str() {
        "leave" => 0,
        "extra" => match b.slot_minutes {
            Some(m) if (5..=480).contains(&m) => m,
            _ => return Err(ApiError::validation("slot_minutes", "an extra session needs 5 to 480 minute slots")),
        },
        _ => return Err(ApiError::validation("kind", "leave or extra")),
    };
    let id = new_id();
    sqlx::query(
        "INSERT INTO availability_exceptions (id, expert_id, kind, start_at, end_at, slot_minutes, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&expert)
    .bind(&b.kind)
    .bind(ts(start))
    .bind(ts(end))
    .bind(slot_minutes)
    .bind(b.reason.trim())
    .bind(now_ts())
    .execute(&state.db.pool)
    .await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": id}))))
}

async fn withdraw_exception(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(expert), Id(exception))): Path<(Id, Id)>,
) -> ApiResult<StatusCode> {
    check_editor(&state, &user, &expert).await?;
    let done = sqlx::query("UPDATE availability_exceptions SET active = 0 WHERE id = $1 AND expert_id = $2")
        .bind(&exception)
        .bind(&expert)
        .execute(&state.db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("exception"));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn expert_tz(state: &AppState, expert: &str) -> ApiResult<Tz> {
    let tz: Option<(String,)> = sqlx::query_as("SELECT time_zone FROM expert_profiles WHERE user_id = $1")
        .bind(expert)
        .fetch_optional(&state.db.pool)
        .await?;
    match tz {
        Some((tz,)) => Ok(tz.parse().unwrap_or(DEFAULT_TZ)),
        None => Err(ApiError::not_found("expert")),
    }
}

/// RFC 3339 in the given zone, e.g. `2026-11-24T09:00:00+08:00`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    pub from: Option<crate::db::ClientTime>,
    pub to: Option<crate::db::ClientTime>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SlotView {
    pub start: String,
    pub end: String,
}

pub fn slot_error(e: SlotError) -> ApiError {
    match e {
        SlotError::Overlaps => ApiError::conflict(ErrorCode::SlotTaken, "the slot was taken by another booking"),
        SlotError::DayFull => ApiError::conflict(ErrorCode::DayFull, e.to_string()),
        SlotError::TooSoon => ApiError::unprocessable(ErrorCode::TooSoon, e.to_string()),
        SlotError::NotOnSchedule => ApiError::unprocessable(ErrorCode::NotOnSchedule, e.to_string()),
        SlotError::WindowTooLong | SlotError::EmptyWindow => ApiError::validation("to", e.to_string()),
        other => ApiError::unprocessable(ErrorCode::InvalidSchedule, other.to_string()),
    }
}

async fn slots(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(Id(expert)): Path<Id>,
    Query(q): Query<SlotQuery>,
) -> ApiResult<Json<crate::api::Page<SlotView>>> {
    let tz = expert_tz(&state, &expert).await?;
    let now = Utc::now();
    let from: DateTime<Utc> = q.from.map(Into::into).unwrap_or(now);
    let to: DateTime<Utc> = q.to.map(Into::into).unwrap_or(from + chrono::Duration::days(14));
    // Slots beyond the booking horizon cannot be booked, so they are not free slots.
    let horizon = super::booking_horizon(&state.config, now);
    if from >= horizon && from < to {
        return Ok(Json(crate::api::Page { items: Vec::new(), next: None }));
    }
    let to = to.min(horizon);
    let mut conn = state.db.pool.acquire().await?;
    let slots = store::free_slots(&mut conn, &expert, now, from, to).await?.map_err(slot_error)?;
    let items = slots.into_iter().map(|s| SlotView { start: local(s.start, tz), end: local(s.end, tz) }).collect();
    Ok(Json(crate::api::Page { items, next: None }))
}

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new("scheduling")
        .get("/api/v1/experts/{id}/availability", "An expert's weekly rules and booking policy", get_availability)
        .json::<Availability>(200)
        .put(
            "/api/v1/experts/{id}/availability",
            "Replace weekly rules and policy (expert, coordinator, admin)",
            put_availability,
        )
        .body::<Availability>()
        .json::<Availability>(200)
        .get("/api/v1/experts/{id}/exceptions", "Upcoming leave and extra sessions", list_exceptions)
        .json::<crate::api::Page<ExceptionView>>(200)
        .post("/api/v1/experts/{id}/exceptions", "Add leave or an extra session", post_exception)
        .body::<ExceptionBody>()
        .json::<serde_json::Value>(201)
        .post(
            "/api/v1/experts/{id}/exceptions/{exception}/withdraw",
            "Withdraw an exception (kept, inactive)",
            withdraw_exception,
        )
        .answers(204, None, "withdrawn")
        .get(
            "/api/v1/experts/{id}/slots",
            "Free slots (RFC 3339 in the expert's zone); from/to default to the next 14 days",
            slots,
        )
        .query::<SlotQuery>()
        .json::<crate::api::Page<SlotView>>(200)
}
