//! Expert availability over HTTP: weekly rules with the booking policy, exceptions (leave
//! and extra sessions), and the computed free slots.

use super::slots::{SlotError, DEFAULT_TZ};
use super::store;
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{now_ts, parse_ts, Db, Id};
use crate::domain::consultation::AvailabilityExceptionKind;
pub use crate::domain::time::local;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Who may change an expert's availability: the expert, and coordinators and admins.
async fn check_editor(db: &Db, user: &AuthUser, expert_id: &str) -> ApiResult<Tz> {
    let Some((tz, expert_org)) = store::active_expert(db, expert_id).await? else {
        return Err(ApiError::not_found("expert"));
    };
    // The expert, their own hospital's coordinators, and admins keep an expert's calendar.
    let allowed =
        user.id == expert_id || user.role == Role::Admin || (user.role == Role::Coordinator && user.org == expert_org);
    if !allowed {
        return Err(ApiError::forbidden(
            "only the expert, their hospital's coordinators and admins keep the expert's calendar",
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
    let rules = {
        let mut conn = state.db.pool.acquire().await?;
        store::weekly_rules(&mut conn, &expert).await?
    };
    let policy = store::booking_policy(&state.db, &expert).await?;
    Ok(Json(Availability {
        rules: rules
            .into_iter()
            .map(|r| RuleBody {
                weekday: r.weekday,
                start: r.start_time,
                end: r.end_time,
                slot_minutes: r.slot_minutes,
                time_zone: Some(r.time_zone),
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
    let default_tz = check_editor(&state.db, &user, &expert).await?;
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
    let rules: Vec<store::NewRule> = body
        .rules
        .iter()
        .map(|r| store::NewRule {
            weekday: r.weekday,
            start: &r.start,
            end: &r.end,
            slot_minutes: r.slot_minutes,
            time_zone: r.time_zone.clone().unwrap_or_else(|| default_tz.name().to_string()),
        })
        .collect();
    let mut tx = state.db.begin_write().await?;
    store::replace_availability(&mut tx, &expert, &rules, (p.buffer_minutes, p.max_per_day, p.min_notice_minutes))
        .await?;
    tx.commit().await?;
    state.db.rosters.changed();
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

/// Leave and extra sessions, with their reasons (the expert's own affairs), for those who keep
/// the calendar; everyone else books from the free slots, where both already show.
async fn list_exceptions(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(expert)): Path<Id>,
) -> ApiResult<Json<crate::api::Page<ExceptionView>>> {
    let tz = check_editor(&state.db, &user, &expert).await?;
    let rows = store::upcoming_exceptions(&state.db, &expert, &now_ts()).await?;
    let items = rows
        .into_iter()
        .map(|x| ExceptionView {
            id: x.id,
            kind: x.kind.as_str().to_string(),
            start: local(parse_ts(&x.start_at), tz),
            end: local(parse_ts(&x.end_at), tz),
            slot_minutes: x.slot_minutes,
            reason: x.reason,
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
    check_editor(&state.db, &user, &expert).await?;
    let start = super::within_horizon(&state.config, "start", b.start.into())?;
    let end: DateTime<Utc> = b.end.into();
    if end <= start || end - start > chrono::Duration::days(366) {
        return Err(ApiError::validation("end", "must be after start, within a year"));
    }
    let kind: AvailabilityExceptionKind = b.kind.parse().map_err(|_| ApiError::validation("kind", "leave or extra"))?;
    let slot_minutes = match (kind, b.slot_minutes) {
        (AvailabilityExceptionKind::Leave, _) => 0,
        (AvailabilityExceptionKind::Extra, Some(m)) if (5..=480).contains(&m) => m,
        (AvailabilityExceptionKind::Extra, _) => {
            return Err(ApiError::validation("slot_minutes", "an extra session needs 5 to 480 minute slots"))
        }
    };
    let id = store::insert_exception(&state.db, &expert, kind, (start, end), slot_minutes, b.reason.trim()).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"id": id}))))
}

async fn withdraw_exception(
    State(state): State<AppState>,
    user: AuthUser,
    Path((Id(expert), Id(exception))): Path<(Id, Id)>,
) -> ApiResult<StatusCode> {
    check_editor(&state.db, &user, &expert).await?;
    if !store::withdraw_exception(&state.db, &expert, &exception).await? {
        return Err(ApiError::not_found("exception"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The expert's time zone (404 `expert` without an expert profile).
pub async fn expert_tz(db: &Db, expert: &str) -> ApiResult<Tz> {
    match store::expert_time_zone(db, expert).await? {
        Some(tz) => Ok(tz.parse().unwrap_or(DEFAULT_TZ)),
        None => Err(ApiError::not_found("expert")),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    pub from: Option<crate::db::ClientTime>,
    pub to: Option<crate::db::ClientTime>,
    /// An MDT consultation being booked with this expert: only the slots at which its other
    /// experts who accepted it are free too (404 when the caller does not see it).
    pub consultation_id: Option<String>,
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
    user: AuthUser,
    Path(Id(expert)): Path<Id>,
    Query(q): Query<SlotQuery>,
) -> ApiResult<Json<crate::api::Page<SlotView>>> {
    let tz = expert_tz(&state.db, &expert).await?;
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
    let mut slots = store::free_slots(&mut conn, &expert, now, from, to).await?.map_err(slot_error)?;
    if let Some(cid) = q.consultation_id.filter(|c| !c.is_empty()) {
        if crate::consultations::store::find_visible(&state.db, &user, &cid).await?.is_none() {
            return Err(ApiError::not_found("consultation"));
        }
        // The MDT meets with all of them: an hour another of its experts is taken is no slot.
        let mut taken = Vec::new();
        for (other, _) in store::other_mdt_experts(&mut conn, &cid, &expert).await? {
            taken.extend(store::load_calendar(&mut conn, &other, from, to, None).await?.busy);
        }
        slots.retain(|s| !taken.iter().any(|b| b.start < s.end && s.start < b.end));
    }
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
        .get(
            "/api/v1/experts/{id}/exceptions",
            "Upcoming leave and extra sessions (expert, coordinator, admin)",
            list_exceptions,
        )
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
        .errors(&[404])
}
