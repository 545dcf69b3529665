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

/// One row of the calendar query: weekly rules (`r`), exceptions (`x`) and booked
/// appointments (`b`) come back together, in one round trip, as
/// `(source, a, b, c, n1, n2)`:
/// - `r`: a = start time, b = end time, c = time zone, n1 = weekday, n2 = slot minutes;
/// - `x`: a = start, b = end, c = kind, n2 = slot minutes;
/// - `b`: a = start, b = end.
type CalendarRow = (String, String, String, String, i64, i64);

/// The expert's time zone and booking policy (buffer, maximum per day, minimum notice).
type ProfileRow = (String, Option<i64>, Option<i64>, Option<i64>);

const CALENDAR_SQL: &str = "
    SELECT 'r', start_time, end_time, time_zone, weekday, slot_minutes FROM availability_rules
     WHERE expert_id = $1 AND active = 1
    UNION ALL
    SELECT 'x', start_at, end_at, kind, CAST(0 AS BIGINT), slot_minutes FROM availability_exceptions
     WHERE expert_id = $1 AND active = 1 AND end_at > $2 AND start_at < $3
    UNION ALL
    SELECT 'b', start_at, end_at, '', CAST(0 AS BIGINT), CAST(0 AS BIGINT) FROM appointments
     WHERE expert_id = $1 AND status = 'booked' AND end_at > $2 AND start_at < $3 AND id <> $4";

/// Loads the calendar for slots starting in `from..to`; appointments are loaded for the
/// surrounding local days too (a day limit counts the whole day). `skip_appointment` leaves
/// one appointment out (the one being moved, when rescheduling). Two round trips: the
/// rules, exceptions and bookings together, then the profile with its policy (booking
/// runs this while holding the expert's lock, so every round trip counts).
pub async fn load_calendar(
    conn: &mut sqlx::AnyConnection,
    expert_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skip_appointment: Option<&str>,
) -> ApiResult<ExpertCalendar> {
    let lo = ts(from - Duration::days(2));
    let hi = ts(to + Duration::days(2));
    let rows: Vec<CalendarRow> = sqlx::query_as(CALENDAR_SQL)
        .bind(expert_id)
        .bind(&lo)
        .bind(&hi)
        .bind(skip_appointment.unwrap_or(""))
        .fetch_all(&mut *conn)
        .await?;
    let mut rules = Vec::new();
    let mut exceptions = Vec::new();
    let mut busy = Vec::new();
    for (source, a, b, c, n1, n2) in rows {
        match source.as_str() {
            "r" => {
                let rule = (|| {
                    Some(WeeklyRule {
                        weekday: weekday_from_number(n1)?,
                        start: NaiveTime::parse_from_str(&a, "%H:%M").ok()?,
                        end: NaiveTime::parse_from_str(&b, "%H:%M").ok()?,
                        slot_minutes: u32::try_from(n2).ok()?,
                        tz: c.parse().unwrap_or(DEFAULT_TZ),
                    })
                })();
                rules.extend(rule);
            }
            "x" => exceptions.push(AvailabilityException {
                start: parse_ts(&a),
                end: parse_ts(&b),
                kind: if c == "extra" {
                    ExceptionKind::ExtraSession { slot_minutes: u32::try_from(n2).unwrap_or(30) }
                } else {
                    ExceptionKind::Leave
                },
            }),
            _ => busy.push(Interval { start: parse_ts(&a), end: parse_ts(&b) }),
        }
    }
    // The order the separate queries used to give: rules by weekday and start, the rest by start.
    rules.sort_by_key(|r: &WeeklyRule| (r.weekday.number_from_monday(), r.start));
    exceptions.sort_by_key(|x: &AvailabilityException| x.start);
    busy.sort_by_key(|i: &Interval| i.start);
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
         WHERE expert_id = $1 AND status = 'booked' AND end_at > $2 AND start_at < $3 AND id <> $4 ORDER BY start_at",
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
