//! Storage side of scheduling: loads an expert's weekly rules, exceptions, booking policy
//! and booked appointments into the pure types of [`super::slots`].

use super::slots::{AvailabilityException, BookingPolicy, ExceptionKind, Interval, WeeklyRule, DEFAULT_TZ};
use crate::db::{parse_ts, ts};
use crate::error::ApiResult;
use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};

/// Everything slot computation needs about one expert.
#[derive(Debug, Clone)]
pub struct ExpertCalendar {
    pub rules: Vec<WeeklyRule>,
    pub exceptions: Vec<AvailabilityException>,
    pub policy: BookingPolicy,
    pub busy: Vec<Interval>,
    /// The expert's own time zone (for messages; rules carry their own).
    pub time_zone: chrono_tz::Tz,
}

impl Default for ExpertCalendar {
    fn default() -> Self {
        ExpertCalendar {
            rules: Vec::new(),
            exceptions: Vec::new(),
            policy: BookingPolicy::default(),
            busy: Vec::new(),
            time_zone: DEFAULT_TZ,
        }
    }
}

pub fn weekday_from_number(n: i64) -> Option<Weekday> {
    Some(match n {
        1 => Weekday::Mon,
        2 => Weekday::Tue,
        3 => Weekday::Wed,
        4 => Weekday::Thu,
        5 => Weekday::Fri,
        6 => Weekday::Sat,
        7 => Weekday::Sun,
        _ => return None,
    })
}

/// The expert's time zone and booking policy (buffer, maximum per day, minimum notice).
type ProfileRow = (String, Option<i64>, Option<i64>, Option<i64>);

#[derive(sqlx::FromRow)]
struct RuleRow {
    weekday: i64,
    start_time: String,
    end_time: String,
    slot_minutes: i64,
    time_zone: String,
}

/// Loads the calendar for slots starting in `from..to`; appointments are loaded for the
/// surrounding local days too (a day limit counts the whole day). `skip_appointment` leaves
/// one appointment out (the one being moved, when rescheduling).
pub async fn load_calendar(
    conn: &mut sqlx::AnyConnection,
    expert_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip_appointment: Option<&str>,
) -> ApiResult<ExpertCalendar> {
    let rules: Vec<RuleRow> = sqlx::query_as(
        "SELECT weekday, start_time, end_time, slot_minutes, time_zone FROM availability_rules
         WHERE expert_id = $1 AND active = 1 ORDER BY weekday, start_time",
    )
    .bind(expert_id)
    .fetch_all(&mut *conn)
    .await?;
    let rules = rules
        .into_iter()
        .filter_map(|r| {
            Some(WeeklyRule {
                weekday: weekday_from_number(r.weekday)?,
                start: NaiveTime::parse_from_str(&r.start_time, "%H:%M").ok()?,
                end: NaiveTime::parse_from_str(&r.end_time, "%H:%M").ok()?,
                slot_minutes: u32::try_from(r.slot_minutes).ok()?,
                tz: r.time_zone.parse().unwrap_or(DEFAULT_TZ),
            })
        })
        .collect();
    let lo = ts(from - Duration::days(2));
    let hi = ts(to + Duration::days(2));
    let exceptions: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT kind, start_at, end_at, slot_minutes FROM availability_exceptions
         WHERE expert_id = $1 AND active = 1 AND end_at > $2 AND start_at < $3 ORDER BY start_at",
    )
    .bind(expert_id)
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&mut *conn)
    .await?;
    let exceptions = exceptions
        .into_iter()
        .map(|(kind, s, e, m)| AvailabilityException {
            start: parse_ts(&s),
            end: parse_ts(&e),
            kind: if kind == "extra" {
                ExceptionKind::ExtraSession { slot_minutes: u32::try_from(m).unwrap_or(30) }
            } else {
                ExceptionKind::Leave
            },
        })
        .collect();
    let profile: Option<ProfileRow> = sqlx::query_as(
        "SELECT ep.time_zone, bp.buffer_minutes, bp.max_per_day, bp.min_notice_minutes
         FROM expert_profiles ep LEFT JOIN booking_policies bp ON bp.expert_id = ep.user_id WHERE ep.user_id = $1",
    )
    .bind(expert_id)
    .fetch_optional(&mut *conn)
    .await?;
    let time_zone = profile.as_ref().and_then(|p| p.0.parse().ok()).unwrap_or(DEFAULT_TZ);
    let policy = match profile {
        Some((_, Some(b), m, n)) => BookingPolicy {
            buffer_minutes: u32::try_from(b).unwrap_or(0),
            max_per_day: m.filter(|m| *m > 0).and_then(|m| u32::try_from(m).ok()),
            min_notice_minutes: n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        },
        _ => BookingPolicy::default(),
    };
    let busy: Vec<(String, String)> = sqlx::query_as(
        "SELECT start_at, end_at FROM appointments
         WHERE expert_id = $1 AND status IN ('booked', 'attended') AND end_at > $2 AND start_at < $3 AND id <> $4 ORDER BY start_at",
    )
    .bind(expert_id)
    .bind(&lo)
    .bind(&hi)
    .bind(skip_appointment.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    let busy = busy.into_iter().map(|(s, e)| Interval { start: parse_ts(&s), end: parse_ts(&e) }).collect();
    Ok(ExpertCalendar { rules, exceptions, policy, busy, time_zone })
}

/// The expert's free slots starting in `from..to`.
pub async fn free_slots(
    conn: &mut sqlx::AnyConnection,
    expert_id: &str,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Result<Vec<Interval>, super::slots::SlotError>> {
    let cal = load_calendar(conn, expert_id, from, to, None).await?;
    Ok(super::slots::free_slots(&cal.rules, &cal.exceptions, &cal.busy, &cal.policy, now, from, to))
}
