//! Storage side of scheduling: loads an expert's weekly rules, exceptions, booking policy
//! and booked appointments into the pure types of [`super::slots`], and holds every other
//! statement of availability, appointments and reminders.

use super::roster::Roster;
use super::slots::{
    AvailabilityException, BookingPolicy, ExceptionKind, Interval, WeeklyRule, DEFAULT_TZ, MAX_SLOT_MINUTES,
};
use crate::consultations::store::{AppointmentRow, APPOINTMENT_COLUMNS, EXPERTS_OF_SPECIALTY};
use crate::db::filter::Filtered;
use crate::db::{new_id, now_ts, parse_ts, ts, Db};
use crate::domain::consultation::AvailabilityExceptionKind;
use crate::error::{ApiError, ApiResult};
use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
#[derive(sqlx::FromRow)]
struct ProfileRow {
    #[sqlx(rename = "user_id")]
    expert_id: String,
    time_zone: String,
    buffer_minutes: Option<i64>,
    max_per_day: Option<i64>,
    min_notice_minutes: Option<i64>,
}

impl ProfileRow {
    /// The expert's time zone and policy (the default policy when none is stored).
    fn zone_and_policy(&self) -> (chrono_tz::Tz, BookingPolicy) {
        let policy = match self.buffer_minutes {
            Some(b) => BookingPolicy {
                buffer_minutes: u32::try_from(b).unwrap_or(0),
                max_per_day: self.max_per_day.filter(|m| *m > 0).and_then(|m| u32::try_from(m).ok()),
                min_notice_minutes: self.min_notice_minutes.and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            },
            None => BookingPolicy::default(),
        };
        (self.time_zone.parse().unwrap_or(DEFAULT_TZ), policy)
    }

    /// Sets the calendar's time zone and policy.
    fn apply(&self, cal: &mut ExpertCalendar) {
        (cal.time_zone, cal.policy) = self.zone_and_policy();
    }
}

#[derive(sqlx::FromRow)]
struct StoredException {
    expert_id: String,
    #[sqlx(try_from = "String")]
    kind: AvailabilityExceptionKind,
    start_at: String,
    end_at: String,
    slot_minutes: i64,
}

impl StoredException {
    fn exception(self) -> AvailabilityException {
        AvailabilityException {
            start: parse_ts(&self.start_at),
            end: parse_ts(&self.end_at),
            kind: match self.kind {
                AvailabilityExceptionKind::Extra => {
                    ExceptionKind::ExtraSession { slot_minutes: u32::try_from(self.slot_minutes).unwrap_or(30) }
                }
                AvailabilityExceptionKind::Leave => ExceptionKind::Leave,
            },
        }
    }
}

/// A booked (or attended) appointment's time.
#[derive(sqlx::FromRow)]
struct BusyRow {
    expert_id: String,
    start_at: String,
    end_at: String,
}

impl BusyRow {
    fn interval(self) -> Interval {
        Interval { start: parse_ts(&self.start_at), end: parse_ts(&self.end_at) }
    }
}

/// What keeps an expert (`$1`) busy between `$2` and `$3`: their own booked or attended
/// appointments and the MDT appointments booked with another expert that hold their calendar
/// (migration 0025), the appointment `$4` (one being moved) left out, none starting before `$5`
/// (the earliest that can still be running, so the (expert, start) indexes are read over the
/// span only).
macro_rules! expert_busy {
    () => {
        "SELECT expert_id, start_at, end_at FROM appointments
         WHERE expert_id = $1 AND status IN ('booked', 'attended') AND end_at > $2 AND start_at < $3 AND id <> $4
           AND start_at >= $5
         UNION ALL
         SELECT h.expert_id, h.start_at, h.end_at FROM appointment_holds h JOIN appointments a ON a.id = h.appointment_id
         WHERE h.expert_id = $1 AND h.released_at IS NULL AND a.status IN ('booked', 'attended')
           AND h.end_at > $2 AND h.start_at < $3 AND h.appointment_id <> $4 AND h.start_at >= $5"
    };
}

/// A stored weekly rule (times `HH:MM` in its zone).
#[derive(Debug, sqlx::FromRow)]
pub struct RuleRow {
    pub expert_id: String,
    pub weekday: i64,
    pub start_time: String,
    pub end_time: String,
    pub slot_minutes: i64,
    pub time_zone: String,
}

impl RuleRow {
    /// The rule, or `None` for a row that does not read as one.
    pub fn rule(self) -> Option<WeeklyRule> {
        Some(WeeklyRule {
            weekday: weekday_from_number(self.weekday)?,
            start: NaiveTime::parse_from_str(&self.start_time, "%H:%M").ok()?,
            end: NaiveTime::parse_from_str(&self.end_time, "%H:%M").ok()?,
            slot_minutes: u32::try_from(self.slot_minutes).ok()?,
            tz: self.time_zone.parse().unwrap_or(DEFAULT_TZ),
        })
    }
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
    let rules = weekly_rules(conn, expert_id).await?;
    let (lo, hi) = calendar_span(from, to);
    let exceptions: Vec<StoredException> = sqlx::query_as(
        "SELECT expert_id, kind, start_at, end_at, slot_minutes FROM availability_exceptions
         WHERE expert_id = $1 AND active = 1 AND end_at > $2 AND start_at < $3 ORDER BY start_at",
    )
    .bind(expert_id)
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&mut *conn)
    .await?;
    let profile: Option<ProfileRow> = sqlx::query_as(
        "SELECT ep.user_id, ep.time_zone, bp.buffer_minutes, bp.max_per_day, bp.min_notice_minutes
         FROM expert_profiles ep LEFT JOIN booking_policies bp ON bp.expert_id = ep.user_id WHERE ep.user_id = $1",
    )
    .bind(expert_id)
    .fetch_optional(&mut *conn)
    .await?;
    // Its own appointments, and the MDT appointments booked with another expert that hold
    // its calendar (migration 0025).
    let busy: Vec<BusyRow> = sqlx::query_as(concat!(expert_busy!(), " ORDER BY start_at"))
        .bind(expert_id)
        .bind(&lo)
        .bind(&hi)
        .bind(skip_appointment.unwrap_or(""))
        .bind(earliest_running_start(from))
        .fetch_all(&mut *conn)
        .await?;
    let mut cal = ExpertCalendar {
        rules: rules.into_iter().filter_map(RuleRow::rule).collect(),
        exceptions: exceptions.into_iter().map(StoredException::exception).collect(),
        busy: busy.into_iter().map(BusyRow::interval).collect(),
        ..ExpertCalendar::default()
    };
    if let Some(profile) = profile {
        profile.apply(&mut cal);
    }
    Ok(cal)
}

/// The stored times that matter for slots starting in `from..to`: two days either side, so
/// that a day limit sees the whole local day whatever the time zone.
fn calendar_span(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    (ts(from - Duration::days(2)), ts(to + Duration::days(2)))
}

/// The earliest start of an appointment that can still be running at the start of
/// [`calendar_span`]`(from, _)`: an appointment is one bookable slot, at most
/// [`MAX_SLOT_MINUTES`] long. With it the appointments' index (expert, status, start) is read
/// over the span only, not over every appointment the expert ever had, which a query bounded
/// by `end_at > lo` alone cannot avoid.
fn earliest_running_start(from: DateTime<Utc>) -> String {
    ts(from - Duration::days(2) - Duration::minutes(i64::from(MAX_SLOT_MINUTES)))
}

/// The standing calendars and specialties of every expert practising `specialty`: the one
/// this instance keeps when still good ([`super::roster`]), else read in three statements
/// whatever the number of experts (by one call at a time; the others wait for it), and kept.
pub async fn roster_of_specialty(db: &Db, specialty: &str) -> ApiResult<Arc<Roster>> {
    if let Some(roster) = db.rosters.fresh(specialty, Instant::now()) {
        return Ok(roster);
    }
    let turn = db.rosters.turn(specialty);
    let _reading = turn.lock().await;
    if let Some(roster) = db.rosters.fresh(specialty, Instant::now()) {
        return Ok(roster);
    }
    let generation = db.rosters.generation();
    let read_at = Instant::now();
    let roster = Arc::new(read_roster(db, specialty).await?);
    db.rosters.keep(specialty, generation, read_at, roster.clone());
    Ok(roster)
}

async fn read_roster(db: &Db, specialty: &str) -> ApiResult<Roster> {
    let mut rules: Vec<RuleRow> = sqlx::query_as(&format!(
        "SELECT expert_id, weekday, start_time, end_time, slot_minutes, time_zone FROM availability_rules
         WHERE active = 1 AND expert_id IN ({EXPERTS_OF_SPECIALTY})"
    ))
    .bind(specialty)
    .fetch_all(&db.pool)
    .await?;
    let profiles: Vec<ProfileRow> = sqlx::query_as(&format!(
        "SELECT ep.user_id, ep.time_zone, bp.buffer_minutes, bp.max_per_day, bp.min_notice_minutes
         FROM expert_profiles ep LEFT JOIN booking_policies bp ON bp.expert_id = ep.user_id
         WHERE ep.user_id IN ({EXPERTS_OF_SPECIALTY})"
    ))
    .bind(specialty)
    .fetch_all(&db.pool)
    .await?;
    let specialties: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT user_id, specialty FROM expert_specialties WHERE user_id IN ({EXPERTS_OF_SPECIALTY})"
    ))
    .bind(specialty)
    .fetch_all(&db.pool)
    .await?;
    let mut roster = Roster::default();
    // Sorted here rather than by the database: the order rules are tried in, as `weekly_rules`.
    rules.sort_by(|a, b| (&a.expert_id, a.weekday, &a.start_time).cmp(&(&b.expert_id, b.weekday, &b.start_time)));
    for row in rules {
        let cal = roster.calendars.entry(row.expert_id.clone()).or_default();
        cal.rules.extend(row.rule());
    }
    for row in profiles {
        let (time_zone, policy) = row.zone_and_policy();
        let cal = roster.calendars.entry(row.expert_id).or_default();
        cal.time_zone = time_zone;
        cal.policy = policy;
    }
    for (expert, s) in specialties {
        roster.specialties.entry(expert).or_default().push(s);
    }
    for list in roster.specialties.values_mut() {
        list.sort();
    }
    Ok(roster)
}

/// What moves in the calendars of the experts practising `specialty`, for slots starting in
/// `from..to`: their exceptions and booked times, by expert (two statements).
pub async fn moving_of_specialty(
    db: &Db,
    specialty: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<HashMap<String, (Vec<AvailabilityException>, Vec<Interval>)>> {
    let (lo, hi) = calendar_span(from, to);
    let exceptions: Vec<StoredException> = sqlx::query_as(&format!(
        "SELECT expert_id, kind, start_at, end_at, slot_minutes FROM availability_exceptions
         WHERE active = 1 AND end_at > $2 AND start_at < $3 AND expert_id IN ({EXPERTS_OF_SPECIALTY}) ORDER BY expert_id, start_at"
    ))
    .bind(specialty)
    .bind(&lo)
    .bind(&hi)
    .fetch_all(&db.pool)
    .await?;
    let busy: Vec<BusyRow> = sqlx::query_as(&format!(
        "SELECT expert_id, start_at, end_at FROM appointments
         WHERE status IN ('booked', 'attended') AND end_at > $2 AND start_at < $3 AND start_at >= $4
           AND expert_id IN ({EXPERTS_OF_SPECIALTY})
         UNION ALL
         SELECT h.expert_id, h.start_at, h.end_at FROM appointment_holds h JOIN appointments a ON a.id = h.appointment_id
         WHERE h.released_at IS NULL AND a.status IN ('booked', 'attended')
           AND h.end_at > $2 AND h.start_at < $3 AND h.start_at >= $4
           AND h.expert_id IN ({EXPERTS_OF_SPECIALTY})
         ORDER BY expert_id, start_at"
    ))
    .bind(specialty)
    .bind(&lo)
    .bind(&hi)
    .bind(earliest_running_start(from))
    .fetch_all(&db.pool)
    .await?;
    let mut moving: HashMap<String, (Vec<AvailabilityException>, Vec<Interval>)> = HashMap::new();
    for row in exceptions {
        moving.entry(row.expert_id.clone()).or_default().0.push(row.exception());
    }
    for row in busy {
        moving.entry(row.expert_id.clone()).or_default().1.push(row.interval());
    }
    Ok(moving)
}

/// The expert's active weekly rules, by weekday and start.
pub async fn weekly_rules(conn: &mut sqlx::AnyConnection, expert_id: &str) -> ApiResult<Vec<RuleRow>> {
    Ok(sqlx::query_as(
        "SELECT expert_id, weekday, start_time, end_time, slot_minutes, time_zone FROM availability_rules
         WHERE expert_id = $1 AND active = 1 ORDER BY weekday, start_time",
    )
    .bind(expert_id)
    .fetch_all(&mut *conn)
    .await?)
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

// ---------------------------------------------------------------------------------------
// Availability: rules, policy, exceptions
// ---------------------------------------------------------------------------------------

/// An active expert's time zone (its name) and organisation.
pub async fn active_expert(db: &Db, expert_id: &str) -> ApiResult<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT e.time_zone, u.organisation_id FROM expert_profiles e JOIN users u ON u.id = e.user_id WHERE e.user_id = $1 AND u.active = 1",
    )
    .bind(expert_id)
    .fetch_optional(&db.pool)
    .await?)
}

/// The expert's time zone (its name), if they have an expert profile.
pub async fn expert_time_zone(db: &Db, expert_id: &str) -> ApiResult<Option<String>> {
    let tz: Option<(String,)> = sqlx::query_as("SELECT time_zone FROM expert_profiles WHERE user_id = $1")
        .bind(expert_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(tz.map(|t| t.0))
}

/// The expert's booking policy as stored: buffer, maximum per day, minimum notice.
pub async fn booking_policy(db: &Db, expert_id: &str) -> ApiResult<Option<(i64, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT buffer_minutes, max_per_day, min_notice_minutes FROM booking_policies WHERE expert_id = $1",
    )
    .bind(expert_id)
    .fetch_optional(&db.pool)
    .await?)
}

/// A weekly rule to store (checked), with its zone.
pub struct NewRule<'a> {
    pub weekday: i64,
    pub start: &'a str,
    pub end: &'a str,
    pub slot_minutes: i64,
    pub time_zone: String,
}

/// Replaces the expert's weekly rules (the old ones are kept, inactive) and booking policy.
pub async fn replace_availability(
    conn: &mut sqlx::AnyConnection,
    expert_id: &str,
    rules: &[NewRule<'_>],
    (buffer_minutes, max_per_day, min_notice_minutes): (i64, i64, i64),
) -> ApiResult<()> {
    let now = now_ts();
    sqlx::query("UPDATE availability_rules SET active = 0 WHERE expert_id = $1 AND active = 1")
        .bind(expert_id)
        .execute(&mut *conn)
        .await?;
    for r in rules {
        sqlx::query(
            "INSERT INTO availability_rules (id, expert_id, weekday, start_time, end_time, slot_minutes, time_zone, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(expert_id)
        .bind(r.weekday)
        .bind(r.start)
        .bind(r.end)
        .bind(r.slot_minutes)
        .bind(&r.time_zone)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
    }
    let updated = sqlx::query("UPDATE booking_policies SET buffer_minutes = $1, max_per_day = $2, min_notice_minutes = $3 WHERE expert_id = $4")
        .bind(buffer_minutes)
        .bind(max_per_day)
        .bind(min_notice_minutes)
        .bind(expert_id)
        .execute(&mut *conn)
        .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO booking_policies (expert_id, buffer_minutes, max_per_day, min_notice_minutes) VALUES ($1, $2, $3, $4)")
            .bind(expert_id)
            .bind(buffer_minutes)
            .bind(max_per_day)
            .bind(min_notice_minutes)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// An active exception as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct ExceptionRow {
    pub id: String,
    #[sqlx(try_from = "String")]
    pub kind: AvailabilityExceptionKind,
    pub start_at: String,
    pub end_at: String,
    pub slot_minutes: i64,
    pub reason: String,
}

/// The expert's active exceptions that end after `now`, by start.
pub async fn upcoming_exceptions(db: &Db, expert_id: &str, now: &str) -> ApiResult<Vec<ExceptionRow>> {
    Ok(sqlx::query_as(
        "SELECT id, kind, start_at, end_at, slot_minutes, reason FROM availability_exceptions WHERE expert_id = $1 AND active = 1 AND end_at > $2 ORDER BY start_at",
    )
    .bind(expert_id)
    .bind(now)
    .fetch_all(&db.pool)
    .await?)
}

/// Stores an exception (written straight to the pool: one statement) and answers its id.
pub async fn insert_exception(
    db: &Db,
    expert_id: &str,
    kind: AvailabilityExceptionKind,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    slot_minutes: i64,
    reason: &str,
) -> ApiResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO availability_exceptions (id, expert_id, kind, start_at, end_at, slot_minutes, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(expert_id)
    .bind(kind.as_str())
    .bind(ts(start))
    .bind(ts(end))
    .bind(slot_minutes)
    .bind(reason)
    .bind(now_ts())
    .execute(&mut *db.writer().await?)
    .await?;
    Ok(id)
}

/// Withdraws an exception (kept, inactive); answers whether the expert had it.
pub async fn withdraw_exception(db: &Db, expert_id: &str, exception_id: &str) -> ApiResult<bool> {
    let done = sqlx::query("UPDATE availability_exceptions SET active = 0 WHERE id = $1 AND expert_id = $2")
        .bind(exception_id)
        .bind(expert_id)
        .execute(&mut *db.writer().await?)
        .await?;
    Ok(done.rows_affected() > 0)
}

// ---------------------------------------------------------------------------------------
// Booking
// ---------------------------------------------------------------------------------------

/// Bumps the expert's booking sequence, which takes their row lock (PostgreSQL) or the
/// database write lock (SQLite); answers whether the expert has a profile.
pub async fn lock_expert_bookings(conn: &mut sqlx::AnyConnection, expert_id: &str) -> ApiResult<bool> {
    let locked = sqlx::query("UPDATE expert_profiles SET booking_seq = booking_seq + 1 WHERE user_id = $1")
        .bind(expert_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(locked > 0)
}

/// Bumps the patient's booking sequence (their row lock).
pub async fn lock_patient_bookings(conn: &mut sqlx::AnyConnection, patient_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE patients SET booking_seq = booking_seq + 1 WHERE id = $1")
        .bind(patient_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What stands in the way of booking `slot`, counted in one round trip.
#[derive(Debug, sqlx::FromRow)]
pub struct BookingConflicts {
    /// The patient's booked or attended appointments overlapping the slot.
    pub patient_busy: i64,
    /// The consultation's other booked appointments.
    pub already_booked: i64,
    /// Whether the expert accepted the consultation (0 or 1).
    pub expert_assigned: i64,
}

/// Counts the refusals that depend on other appointments and on the expert's acceptance,
/// leaving out `skip` (the appointment being moved). An attended appointment keeps its
/// time, for the patient as for the expert (a call that ended before its slot must not free
/// the slot for a second booking of the same patient: the day replayer's no-double-booking
/// check found that). One statement: each is a hop to SQLite's worker thread while the
/// writer turn is held.
pub async fn booking_conflicts(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    patient_id: &str,
    expert_id: &str,
    slot: Interval,
    skip: Option<&str>,
) -> ApiResult<BookingConflicts> {
    Ok(sqlx::query_as(
        "SELECT
            (SELECT COUNT(*) FROM appointments WHERE patient_id = $1 AND status IN ('booked', 'attended') AND start_at < $2 AND end_at > $3 AND id <> $4) AS patient_busy,
            (SELECT COUNT(*) FROM appointments WHERE consultation_id = $5 AND status = 'booked' AND id <> $4) AS already_booked,
            (SELECT COUNT(*) FROM consultation_participants WHERE consultation_id = $5 AND user_id = $6 AND role = 'expert' AND status IN ('accepted', 'active')) AS expert_assigned",
    )
    .bind(patient_id)
    .bind(ts(slot.end))
    .bind(ts(slot.start))
    .bind(skip.unwrap_or(""))
    .bind(consultation_id)
    .bind(expert_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// A booked appointment to store.
pub struct NewAppointment<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub expert_id: &'a str,
    pub patient_id: &'a str,
    pub slot: Interval,
    pub created_by: &'a str,
    pub now: &'a str,
}

/// The other experts of an MDT consultation who have accepted it (whose calendars its
/// appointment holds), in id order; none for other modes.
pub async fn other_mdt_experts(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    expert_id: &str,
) -> ApiResult<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT cp.user_id, u.display_name FROM consultation_participants cp
           JOIN consultations c ON c.id = cp.consultation_id JOIN users u ON u.id = cp.user_id
         WHERE cp.consultation_id = $1 AND c.mode = 'mdt' AND cp.role = 'expert' AND cp.status IN ('accepted', 'active')
           AND cp.user_id <> $2
         ORDER BY cp.user_id",
    )
    .bind(consultation_id)
    .bind(expert_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Whether the expert has an appointment (own or held) overlapping `slot`, the appointment
/// `skip` (the one being moved) left out.
pub async fn expert_busy_during(
    conn: &mut sqlx::AnyConnection,
    expert_id: &str,
    slot: Interval,
    skip: Option<&str>,
) -> ApiResult<bool> {
    let (start, end) = (ts(slot.start), ts(slot.end));
    let earliest = ts(slot.start - Duration::minutes(i64::from(MAX_SLOT_MINUTES)));
    let (n,): (i64,) = sqlx::query_as(concat!("SELECT COUNT(*) FROM (", expert_busy!(), ") busy"))
        .bind(expert_id)
        .bind(&start)
        .bind(&end)
        .bind(skip.unwrap_or(""))
        .bind(&earliest)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

/// Holds the calendar of `expert_id` for the appointment (an MDT's other expert).
pub async fn hold_for(
    conn: &mut sqlx::AnyConnection,
    appointment_id: &str,
    expert_id: &str,
    slot: Interval,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO appointment_holds (appointment_id, expert_id, start_at, end_at, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(appointment_id)
    .bind(expert_id)
    .bind(ts(slot.start))
    .bind(ts(slot.end))
    .bind(now_ts())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A newly accepting MDT expert: the consultation's booked appointment (with another expert)
/// holds their calendar from now on.
pub async fn hold_booked_for(conn: &mut sqlx::AnyConnection, consultation_id: &str, expert_id: &str) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO appointment_holds (appointment_id, expert_id, start_at, end_at, created_at)
         SELECT a.id, $2, a.start_at, a.end_at, $3 FROM appointments a
         WHERE a.consultation_id = $1 AND a.status = 'booked' AND a.expert_id <> $2
           AND NOT EXISTS (SELECT 1 FROM appointment_holds h WHERE h.appointment_id = a.id AND h.expert_id = $2)",
    )
    .bind(consultation_id)
    .bind(expert_id)
    .bind(now_ts())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An MDT expert who declines the consultation whose booked appointment is in their name: the
/// appointment passes to one of the experts it holds (the first by id), so that the meeting
/// stays in the calendar of someone who attends and leaves the one who declined. The old
/// appointment is kept, `rescheduled` with the reason and a pointer to the new one, which
/// holds the remaining experts as the old one did.
/// Answers the new appointment's id, if one was handed over.
pub async fn hand_over_booked(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    expert_id: &str,
) -> ApiResult<Option<String>> {
    let held: Option<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT a.id, h.expert_id, a.patient_id, a.start_at, a.end_at
         FROM appointments a JOIN appointment_holds h ON h.appointment_id = a.id
         WHERE a.consultation_id = $1 AND a.expert_id = $2 AND a.status = 'booked' AND h.released_at IS NULL
         ORDER BY h.expert_id LIMIT 1",
    )
    .bind(consultation_id)
    .bind(expert_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((old, to, patient_id, start_at, end_at)) = held else { return Ok(None) };
    let id = new_id();
    let now = now_ts();
    let slot = Interval { start: parse_ts(&start_at), end: parse_ts(&end_at) };
    let new = NewAppointment {
        id: &id,
        consultation_id,
        expert_id: &to,
        patient_id: &patient_id,
        slot,
        created_by: expert_id,
        now: &now,
    };
    insert_appointment(conn, &new).await?;
    mark_rescheduled(conn, &old, &id, &now, "the expert it was booked with declined the MDT").await?;
    sqlx::query(
        "INSERT INTO appointment_holds (appointment_id, expert_id, start_at, end_at, created_at)
         SELECT $1, expert_id, start_at, end_at, $2 FROM appointment_holds
         WHERE appointment_id = $3 AND released_at IS NULL AND expert_id <> $4",
    )
    .bind(&id)
    .bind(&now)
    .bind(&old)
    .bind(&to)
    .execute(&mut *conn)
    .await?;
    Ok(Some(id))
}

/// An expert who declines a consultation: its appointments no longer hold their calendar.
pub async fn release_holds(conn: &mut sqlx::AnyConnection, consultation_id: &str, expert_id: &str) -> ApiResult<()> {
    sqlx::query(
        "UPDATE appointment_holds SET released_at = $3
         WHERE expert_id = $2 AND released_at IS NULL
           AND appointment_id IN (SELECT id FROM appointments WHERE consultation_id = $1)",
    )
    .bind(consultation_id)
    .bind(expert_id)
    .bind(now_ts())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn insert_appointment(conn: &mut sqlx::AnyConnection, a: &NewAppointment<'_>) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO appointments (id, consultation_id, expert_id, patient_id, start_at, end_at, status, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'booked', $7, $8)",
    )
    .bind(a.id)
    .bind(a.consultation_id)
    .bind(a.expert_id)
    .bind(a.patient_id)
    .bind(ts(a.slot.start))
    .bind(ts(a.slot.end))
    .bind(a.created_by)
    .bind(a.now)
    .execute(&mut *conn)
    .await?;
    // Its participants' lists from a day on find the consultation by this (migration 0020).
    sqlx::query(
        "UPDATE consultation_participants SET latest_start_at = $1
         WHERE consultation_id = $2 AND (latest_start_at IS NULL OR latest_start_at < $1)",
    )
    .bind(ts(a.slot.start))
    .bind(a.consultation_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks `old` rescheduled, replaced by `new`.
pub async fn mark_rescheduled(
    conn: &mut sqlx::AnyConnection,
    old: &str,
    new: &str,
    now: &str,
    reason: &str,
) -> ApiResult<()> {
    sqlx::query("UPDATE appointments SET status = 'rescheduled', replaced_by = $1, cancelled_at = $2, cancel_reason = $3 WHERE id = $4")
        .bind(new)
        .bind(now)
        .bind(reason)
        .bind(old)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels a booked appointment; answers whether it was booked.
pub async fn cancel_appointment(conn: &mut sqlx::AnyConnection, id: &str, reason: &str) -> ApiResult<bool> {
    let cancelled = sqlx::query("UPDATE appointments SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2 WHERE id = $3 AND status = 'booked'")
        .bind(now_ts())
        .bind(reason)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(cancelled > 0)
}

/// Records that `participant` did not show up, and the appointment as a no-show if it was
/// still booked.
pub async fn record_no_show(
    conn: &mut sqlx::AnyConnection,
    appointment_id: &str,
    participant: &str,
    recorded_by: &str,
) -> ApiResult<()> {
    sqlx::query("INSERT INTO no_shows (id, appointment_id, participant, recorded_by, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(new_id())
        .bind(appointment_id)
        .bind(participant)
        .bind(recorded_by)
        .bind(now_ts())
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE appointments SET status = 'no_show' WHERE id = $1 AND status = 'booked'")
        .bind(appointment_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Who was recorded as not showing up for an appointment, by name.
pub async fn no_shows_of(db: &Db, appointment_id: &str) -> ApiResult<Vec<String>> {
    let recorded: Vec<(String,)> =
        sqlx::query_as("SELECT participant FROM no_shows WHERE appointment_id = $1 ORDER BY participant")
            .bind(appointment_id)
            .fetch_all(&db.pool)
            .await?;
    Ok(recorded.into_iter().map(|r| r.0).collect())
}

/// What a list of the caller's appointments is narrowed to; `None` filters nothing.
#[derive(Debug, Default)]
pub struct AppointmentQuery {
    /// Starting at or after (stored timestamp text).
    pub start_from: Option<String>,
    /// Starting before.
    pub start_before: Option<String>,
    /// The status's name.
    pub status: Option<String>,
}

/// The user's appointments, as the expert or as a participant (not declined) of the
/// consultation, by start; at most 500, chosen before the expert's name is joined to them.
///
/// The rows are the `UNION` of the two, each found by its own index: under an `OR`
/// PostgreSQL read every appointment of every user (a sequential scan: 77 ms for an expert
/// with 2,500 among 445,000 appointments, 28 ms as a `UNION`; as `a.id IN (... UNION ...)` it
/// hash-joined them with every appointment again, 406 ms). From a start on (the home screens'
/// "from today") the expert's are a range of (expert, start), and the participations are
/// only those whose consultation's latest appointment starts then or later (a range of
/// (user, latest start), migration 0020): the cost follows the caller's own appointments
/// ahead, not the day's bookings of everyone (100-120 ms at 300,000 booked for today when
/// every appointment from today was read and checked) nor the caller's past consultations
/// (a probe each).
pub async fn appointments_of_user(db: &Db, user_id: &str, f: &AppointmentQuery) -> ApiResult<Vec<AppointmentRow>> {
    let mut q = Filtered::new(format!("SELECT {APPOINTMENT_COLUMNS} FROM (SELECT * FROM ("));
    // The expert's own appointments, unless they have declined the consultation since (an
    // MDT's or a pool's consultation goes on without them, its appointment booked).
    q.push("SELECT * FROM appointments WHERE expert_id = ").push_bind(user_id.to_string());
    q.push(
        " AND NOT EXISTS (SELECT 1 FROM consultation_participants d \
         WHERE d.consultation_id = appointments.consultation_id AND d.user_id = ",
    )
    .push_bind(user_id.to_string());
    q.push(" AND d.status = 'declined')");
    if let Some(from) = &f.start_from {
        q.push(" AND start_at >= ").push_bind(from.clone());
    }
    q.push(
        " UNION SELECT ap.* FROM consultation_participants p JOIN appointments ap ON ap.consultation_id = p.consultation_id \
         WHERE p.user_id = ",
    )
    .push_bind(user_id.to_string());
    q.push(" AND p.status <> 'declined'");
    if let Some(from) = &f.start_from {
        q.push(" AND p.latest_start_at >= ").push_bind(from.clone());
        q.push(" AND ap.start_at >= ").push_bind(from.clone());
    }
    q.push(") a");
    for (column, value) in [("a.start_at < ", &f.start_before), ("a.status = ", &f.status)] {
        if let Some(v) = value {
            q.condition().push(column).push_bind(v.clone());
        }
    }
    q.push(
        " ORDER BY a.start_at LIMIT 500) a, users u, expert_profiles e \
         WHERE u.id = a.expert_id AND e.user_id = a.expert_id ORDER BY a.start_at",
    );
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

// ---------------------------------------------------------------------------------------
// Reminders
// ---------------------------------------------------------------------------------------

/// A booked appointment a reminder is due for: id, consultation, start.
pub type DueReminder = (String, String, String);

/// Booked appointments starting in `(after, until]` without a reminder of `kind` yet, by
/// start; at most 500.
pub async fn due_reminders(db: &Db, kind: &str, after: &str, until: &str) -> ApiResult<Vec<DueReminder>> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.consultation_id, a.start_at FROM appointments a
         WHERE a.status = 'booked' AND a.start_at > $1 AND a.start_at <= $2
           AND NOT EXISTS (SELECT 1 FROM reminders_sent r WHERE r.appointment_id = a.id AND r.kind = $3)
         ORDER BY a.start_at LIMIT 500",
    )
    .bind(after)
    .bind(until)
    .bind(kind)
    .fetch_all(&db.pool)
    .await?)
}

/// Records a reminder as sent; `false` when it already was (another instance sent it).
pub async fn record_reminder(
    conn: &mut sqlx::AnyConnection,
    appointment_id: &str,
    kind: &str,
    at: &str,
) -> ApiResult<bool> {
    let inserted = sqlx::query("INSERT INTO reminders_sent (appointment_id, kind, sent_at) VALUES ($1, $2, $3)")
        .bind(appointment_id)
        .bind(kind)
        .bind(at)
        .execute(&mut *conn)
        .await;
    match inserted {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(ApiError::from(e)),
    }
}
