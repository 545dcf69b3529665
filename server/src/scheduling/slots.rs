//! Bookable slots: what an expert's weekly rules and exceptions offer, minus what leave,
//! existing appointments and the booking policy take away.
//!
//! Everything here is pure: the caller loads rules, exceptions and appointments, and this
//! module computes. [`free_slots`] answers "which slots can be booked in this window" and
//! [`is_bookable`] / [`bookable_slot_at`] check one requested slot at booking time with
//! exactly the same rules, so a slot is bookable if and only if `free_slots` lists it.
//!
//! # How slots are laid
//!
//! * A [`WeeklyRule`] opens a *session* on every local date of its weekday, in its own time
//!   zone. Slots are laid on the local wall clock from the rule's start in `slot_minutes`
//!   steps, as long as the slot's wall-clock end is not after the rule's end (rules do not
//!   cross midnight: the end must be after the start on the same day).
//! * A slot lasts `slot_minutes` of elapsed time: its UTC end is its UTC start plus the
//!   slot length.
//! * An `ExtraSession` exception opens a session from its start (UTC) in `slot_minutes`
//!   steps of elapsed time, each slot ending no later than the exception's end.
//!
//! # Daylight saving time
//!
//! * A wall-clock slot start that does not exist (the spring-forward gap) is skipped.
//! * A wall-clock slot start that exists twice (the fall-back hour) takes the **earlier**
//!   instant. The repeated hour therefore stays empty, and nothing overlaps.
//! * A slot is dropped when its wall-clock end falls after the rule's end, or when it would
//!   overlap the previous slot of the same session (a long slot running across a gap).
//!
//! Example, Europe/Berlin, rule 01:00–04:00 with 15-minute slots: on 2026-03-29 the slots
//! are 01:00–01:45 CET and 03:00–03:45 CEST (02:00–02:59 does not exist); on 2026-10-25 they
//! are 01:00–02:45 CEST and 03:00–03:45 CET (the second 02:00–02:59 stays empty).
//!
//! # Overlapping sessions
//!
//! Two sessions may overlap (two weekly rules on the same day, or an extra session over a
//! rule). Extra sessions take precedence over weekly rules; among sessions of the same kind
//! the one that starts earlier wins, then the one listed first. A slot that overlaps any
//! slot of a session with precedence is dropped, so returned slots never overlap.
//!
//! # What takes slots away
//!
//! * **Leave** removes every slot that overlaps it.
//! * **Appointments** (`busy`): a slot that overlaps an appointment widened by
//!   `buffer_minutes` on both sides is removed.
//! * **Minimum notice**: a slot starting before `now + min_notice_minutes` is removed.
//! * **Maximum per day**: when the appointments whose start falls on a local day (in the
//!   expert's time zone, see [`expert_time_zone`]) reach `max_per_day`, that day offers no
//!   slot. `busy` must therefore hold every appointment of the local days the window touches.
//!
//! Intervals are half-open (`start..end`); touching is not overlapping. Instants are handled
//! to the second: appointments and leave are widened to whole seconds, availability narrowed.
//! [`free_slots`] returns the slots whose start lies in `from..to`, in UTC, sorted.

use std::ops::Range;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Time zone of an expert who has not chosen one.
pub use crate::domain::time::DEFAULT_TZ;
/// Longest window [`free_slots`] accepts.
pub const MAX_WINDOW_DAYS: i64 = 62;
/// Longest slot a rule or an extra session may define.
pub const MAX_SLOT_MINUTES: u32 = 24 * 60;

const MAX_SLOT_SECS: i64 = MAX_SLOT_MINUTES as i64 * 60;

/// A recurring weekly session, in the expert's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyRule {
    pub weekday: chrono::Weekday,
    pub start: chrono::NaiveTime,
    pub end: chrono::NaiveTime,
    pub slot_minutes: u32,
    pub tz: Tz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    /// The expert is away: no slot overlapping the exception is offered.
    Leave,
    /// A one-off session with its own slot length.
    ExtraSession { slot_minutes: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityException {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub kind: ExceptionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BookingPolicy {
    /// Free time kept before and after every appointment.
    pub buffer_minutes: u32,
    /// Most appointments on one local day; `None` for no limit.
    pub max_per_day: Option<u32>,
    /// How long before its start a slot can still be booked.
    pub min_notice_minutes: u32,
}

/// A half-open span of time `start..end`: an appointment or a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("the window must end after it starts")]
    EmptyWindow,
    #[error("the window may span at most {MAX_WINDOW_DAYS} days")]
    WindowTooLong,
    #[error("weekly rule {index}: {problem}")]
    InvalidRule { index: usize, problem: &'static str },
    #[error("availability exception {index}: {problem}")]
    InvalidException { index: usize, problem: &'static str },
    #[error("appointment {index} must end after it starts")]
    InvalidBusy { index: usize },
    #[error("the requested slot must end after it starts")]
    EmptyRequest,
    #[error("the requested time is not a slot of the expert's schedule")]
    NotOnSchedule,
    #[error("the requested slot starts sooner than the expert's minimum notice")]
    TooSoon,
    #[error("the expert's day is fully booked")]
    DayFull,
    #[error("the requested slot overlaps an appointment or its buffer")]
    Overlaps,
}

impl SlotError {
    /// Stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            SlotError::EmptyWindow => "empty_window",
            SlotError::WindowTooLong => "window_too_long",
            SlotError::InvalidRule { .. } => "invalid_rule",
            SlotError::InvalidException { .. } => "invalid_exception",
            SlotError::InvalidBusy { .. } => "invalid_busy",
            SlotError::EmptyRequest => "empty_request",
            SlotError::NotOnSchedule => "not_on_schedule",
            SlotError::TooSoon => "too_soon",
            SlotError::DayFull => "day_full",
            SlotError::Overlaps => "overlaps",
        }
    }

    /// Whether the error is about the inputs rather than about the requested slot.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, SlotError::NotOnSchedule | SlotError::TooSoon | SlotError::DayFull | SlotError::Overlaps)
    }
}

/// The time zone whose local days `max_per_day` counts: the zone of the first weekly rule,
/// or [`DEFAULT_TZ`] for an expert without rules.
pub fn expert_time_zone(rules: &[WeeklyRule]) -> Tz {
    rules.first().map_or(DEFAULT_TZ, |rule| rule.tz)
}

/// The free slots whose start lies in `from..to`, sorted by start and pairwise disjoint.
///
/// Refuses a window that is empty or longer than [`MAX_WINDOW_DAYS`], and invalid rules,
/// exceptions or appointments.
pub fn free_slots(
    rules: &[WeeklyRule],
    exceptions: &[AvailabilityException],
    busy: &[Interval],
    policy: &BookingPolicy,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Interval>, SlotError> {
    check_window(from, to)?;
    validate(rules, exceptions, busy)?;
    let window = Span::new(ceil_secs(from), ceil_secs(to));
    let candidates = candidate_slots(rules, exceptions, Span::new(window.start, window.end + MAX_SLOT_SECS));
    let constraints = Constraints::new(rules, exceptions, busy, policy, now);
    let mut cursor = Cursor::default();
    let mut to_utc = UtcConverter::default();
    let mut free = Vec::with_capacity(candidates.len());
    for slot in candidates {
        if window.start <= slot.start && slot.start < window.end && constraints.check(slot, &mut cursor).is_ok() {
            free.extend(to_utc.interval(slot));
        }
    }
    Ok(free)
}

/// Refuses a window that is empty or longer than [`MAX_WINDOW_DAYS`].
fn check_window(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), SlotError> {
    if to <= from {
        return Err(SlotError::EmptyWindow);
    }
    if to - from > chrono::TimeDelta::days(MAX_WINDOW_DAYS) {
        return Err(SlotError::WindowTooLong);
    }
    Ok(())
}

/// The first free slot starting in `from..to`: the first of [`free_slots`], found by looking a
/// day ahead first, then three, then the whole window, so an expert with a free slot soon
/// costs a day's computation, not the window's.
pub fn first_free_slot(
    rules: &[WeeklyRule],
    exceptions: &[AvailabilityException],
    busy: &[Interval],
    policy: &BookingPolicy,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<Interval>, SlotError> {
    check_window(from, to)?;
    let mut start = from;
    for days in [1, 3, MAX_WINDOW_DAYS] {
        let end = (from + chrono::TimeDelta::days(days)).min(to);
        if start < end {
            let slots = free_slots(rules, exceptions, busy, policy, now, start, end)?;
            if let Some(first) = slots.first() {
                return Ok(Some(*first));
            }
            start = end;
        }
    }
    Ok(None)
}

/// Checks that `start..end` is one of the slots [`free_slots`] would list.
///
/// The reasons, checked in this order: [`SlotError::NotOnSchedule`] (not a slot of the
/// rules or extra sessions, or on leave), [`SlotError::TooSoon`], [`SlotError::DayFull`],
/// [`SlotError::Overlaps`]. When rescheduling, leave the appointment being moved out of
/// `busy`.
pub fn is_bookable(
    rules: &[WeeklyRule],
    exceptions: &[AvailabilityException],
    busy: &[Interval],
    policy: &BookingPolicy,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), SlotError> {
    if end <= start {
        return Err(SlotError::EmptyRequest);
    }
    let slot = bookable_slot_at(rules, exceptions, busy, policy, now, start)?;
    if slot.end == end {
        Ok(())
    } else {
        Err(SlotError::NotOnSchedule)
    }
}

/// The free slot that starts at `start`, for a booking request that names only its start.
/// Fails for the same reasons as [`is_bookable`].
pub fn bookable_slot_at(
    rules: &[WeeklyRule],
    exceptions: &[AvailabilityException],
    busy: &[Interval],
    policy: &BookingPolicy,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Result<Interval, SlotError> {
    validate(rules, exceptions, busy)?;
    if start.timestamp_subsec_nanos() != 0 {
        return Err(SlotError::NotOnSchedule);
    }
    let secs = start.timestamp();
    let slot = candidate_slots(rules, exceptions, Span::new(secs, secs + MAX_SLOT_SECS + 1))
        .into_iter()
        .find(|slot| slot.start == secs)
        .ok_or(SlotError::NotOnSchedule)?;
    Constraints::new(rules, exceptions, busy, policy, now).check(slot, &mut Cursor::default())?;
    UtcConverter::default().interval(slot).ok_or(SlotError::NotOnSchedule)
}

fn validate(rules: &[WeeklyRule], exceptions: &[AvailabilityException], busy: &[Interval]) -> Result<(), SlotError> {
    for (index, rule) in rules.iter().enumerate() {
        if rule.end <= rule.start {
            return Err(SlotError::InvalidRule { index, problem: "the end must be after the start" });
        }
        if let Err(problem) = check_slot_minutes(rule.slot_minutes) {
            return Err(SlotError::InvalidRule { index, problem });
        }
    }
    for (index, exception) in exceptions.iter().enumerate() {
        if exception.end <= exception.start {
            return Err(SlotError::InvalidException { index, problem: "the end must be after the start" });
        }
        if let ExceptionKind::ExtraSession { slot_minutes } = exception.kind {
            if let Err(problem) = check_slot_minutes(slot_minutes) {
                return Err(SlotError::InvalidException { index, problem });
            }
        }
    }
    if let Some(index) = busy.iter().position(|interval| interval.end <= interval.start) {
        return Err(SlotError::InvalidBusy { index });
    }
    Ok(())
}

fn check_slot_minutes(slot_minutes: u32) -> Result<(), &'static str> {
    match slot_minutes {
        1..=MAX_SLOT_MINUTES => Ok(()),
        0 => Err("the slot length must be at least one minute"),
        _ => Err("the slot length must be at most a day"),
    }
}

/// A half-open span in whole seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: i64,
    end: i64,
}

impl Span {
    fn new(start: i64, end: i64) -> Self {
        Span { start, end }
    }

    fn overlaps(self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Turns seconds into `DateTime<Utc>`, remembering the last calendar day: slots come in
/// runs on the same day, and the calendar arithmetic is the costly part.
#[derive(Default)]
struct UtcConverter {
    day: Option<(i64, NaiveDate)>,
    last: Option<(i64, DateTime<Utc>)>,
}

impl UtcConverter {
    fn instant(&mut self, secs: i64) -> Option<DateTime<Utc>> {
        if let Some((last_secs, last)) = self.last {
            if last_secs == secs {
                return Some(last);
            }
        }
        let (days, second_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let date = match self.day {
            Some((cached, date)) if cached == days => date,
            _ => {
                let date = DateTime::from_timestamp(days * 86_400, 0)?.date_naive();
                self.day = Some((days, date));
                date
            }
        };
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(second_of_day as u32, 0)?;
        let instant = date.and_time(time).and_utc();
        self.last = Some((secs, instant));
        Some(instant)
    }

    fn interval(&mut self, slot: Span) -> Option<Interval> {
        Some(Interval { start: self.instant(slot.start)?, end: self.instant(slot.end)? })
    }
}

fn floor_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn ceil_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// Disjoint, sorted spans, for "does this slot overlap any of them" in logarithmic time.
struct Blocks(Vec<Span>);

impl Blocks {
    fn merged(mut spans: Vec<Span>) -> Self {
        spans.sort_unstable_by_key(|span| span.start);
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        Blocks(merged)
    }

    /// Whether `slot` overlaps a block. `cursor` skips the blocks that ended before earlier
    /// slots, so slots must come in order of start.
    fn overlaps(&self, slot: Span, cursor: &mut usize) -> bool {
        while self.0.get(*cursor).is_some_and(|block| block.end <= slot.start) {
            *cursor += 1;
        }
        self.0.get(*cursor).is_some_and(|block| block.start < slot.end)
    }
}

/// Everything that removes a candidate slot, prepared once per computation.
struct Constraints {
    leave: Blocks,
    blocked: Blocks,
    earliest_start: i64,
    day_tz: Tz,
    full_days: Vec<NaiveDate>,
    every_day_full: bool,
}

impl Constraints {
    fn new(
        rules: &[WeeklyRule],
        exceptions: &[AvailabilityException],
        busy: &[Interval],
        policy: &BookingPolicy,
        now: DateTime<Utc>,
    ) -> Self {
        let leave = exceptions
            .iter()
            .filter(|exception| exception.kind == ExceptionKind::Leave)
            .map(|exception| Span::new(floor_secs(exception.start), ceil_secs(exception.end)))
            .collect();
        let buffer = i64::from(policy.buffer_minutes) * 60;
        let blocked = busy
            .iter()
            .map(|interval| Span::new(floor_secs(interval.start) - buffer, ceil_secs(interval.end) + buffer))
            .collect();
        let day_tz = expert_time_zone(rules);
        let mut full_days = Vec::new();
        if let Some(max) = policy.max_per_day.filter(|max| *max > 0) {
            let mut days: Vec<NaiveDate> =
                busy.iter().map(|interval| interval.start.with_timezone(&day_tz).date_naive()).collect();
            days.sort_unstable();
            for run in days.chunk_by(|a, b| a == b) {
                if run.len() >= max as usize {
                    full_days.push(run[0]);
                }
            }
        }
        Constraints {
            leave: Blocks::merged(leave),
            blocked: Blocks::merged(blocked),
            earliest_start: ceil_secs(now) + i64::from(policy.min_notice_minutes) * 60,
            day_tz,
            full_days,
            every_day_full: policy.max_per_day == Some(0),
        }
    }

    /// Checks slots given in order of start, sharing one `cursor`.
    fn check(&self, slot: Span, cursor: &mut Cursor) -> Result<(), SlotError> {
        if self.leave.overlaps(slot, &mut cursor.leave) {
            return Err(SlotError::NotOnSchedule);
        }
        if slot.start < self.earliest_start {
            return Err(SlotError::TooSoon);
        }
        if self.every_day_full || (!self.full_days.is_empty() && self.full_days.contains(&self.local_day(slot))) {
            return Err(SlotError::DayFull);
        }
        if self.blocked.overlaps(slot, &mut cursor.blocked) {
            return Err(SlotError::Overlaps);
        }
        Ok(())
    }

    fn local_day(&self, slot: Span) -> NaiveDate {
        DateTime::from_timestamp(slot.start, 0)
            .map_or(NaiveDate::MIN, |start| start.with_timezone(&self.day_tz).date_naive())
    }
}

/// Where [`Constraints::check`] stands in the leave and appointment blocks.
#[derive(Default)]
struct Cursor {
    leave: usize,
    blocked: usize,
}

/// The slots of one session, as a range into the shared candidate list.
struct Session {
    span: Span,
    /// Lower wins: (0 for an extra session, 1 for a weekly rule; first slot start; input index).
    precedence: (u8, i64, usize),
    slots: Range<usize>,
}

/// All rule and extra-session slots of every session that has a slot meeting `range`,
/// overlaps between sessions resolved, sorted by start. The result for a given slot does not
/// depend on `range`, as long as `range` covers the slot.
fn candidate_slots(rules: &[WeeklyRule], exceptions: &[AvailabilityException], range: Span) -> Vec<Span> {
    let mut slots: Vec<Span> = Vec::with_capacity(1024);
    let mut sessions: Vec<Session> = Vec::new();
    lay_rule_sessions(rules, range, &mut slots, &mut sessions);
    for (index, exception) in exceptions.iter().enumerate() {
        if let ExceptionKind::ExtraSession { slot_minutes } = exception.kind {
            let first = slots.len();
            let origin = ceil_secs(exception.start);
            lay_extra_session(origin, floor_secs(exception.end), slot_minutes, range, &mut slots);
            push_session(&mut sessions, &slots, first, 0, origin, index);
        }
    }
    resolve_overlaps(slots, sessions)
}

/// Records `slots[first..]` as one session, if it has any slot.
fn push_session(sessions: &mut Vec<Session>, slots: &[Span], first: usize, kind: u8, origin: i64, index: usize) {
    if slots.len() > first {
        sessions.push(Session {
            span: Span::new(slots[first].start, slots[slots.len() - 1].end),
            precedence: (kind, origin, index),
            slots: first..slots.len(),
        });
    }
}

/// Lays the weekly rules' sessions of the local days around `range`, zone by zone, keeping
/// the sessions that meet `range`.
fn lay_rule_sessions(rules: &[WeeklyRule], range: Span, slots: &mut Vec<Span>, sessions: &mut Vec<Session>) {
    let mut zones: Vec<Tz> = Vec::new();
    for rule in rules {
        if !zones.contains(&rule.tz) {
            zones.push(rule.tz);
        }
    }
    for tz in zones {
        let (Some(first_day), Some(last_day)) = (
            local_date(tz, range.start).and_then(|day| day.checked_sub_days(Days::new(2))),
            local_date(tz, range.end).and_then(|day| day.checked_add_days(Days::new(2))),
        ) else {
            continue;
        };
        let (Some(day_before), Some(day_after)) = (first_day.pred_opt(), last_day.succ_opt()) else {
            continue;
        };
        // Offsets at local noon from the day before `first_day` to the day after `last_day`:
        // a day whose neighbours share its offset has no transition.
        let offsets: Vec<Option<i32>> =
            day_before.iter_days().take_while(|day| *day <= day_after).map(|day| noon_offset(tz, day)).collect();
        for (position, day) in first_day.iter_days().take_while(|day| *day <= last_day).enumerate() {
            let stable_offset = match offsets.get(position..position + 3) {
                Some([before, Some(offset), after]) if before == &Some(*offset) && after == &Some(*offset) => {
                    Some(*offset)
                }
                _ => None,
            };
            for (index, rule) in rules.iter().enumerate() {
                if rule.tz != tz || rule.weekday != day.weekday() {
                    continue;
                }
                let first = slots.len();
                lay_rule_session(rule, day, stable_offset, slots);
                if slots.len() > first && !Span::new(slots[first].start, slots[slots.len() - 1].end).overlaps(range) {
                    slots.truncate(first);
                }
                let origin = slots.get(first).map_or(0, |slot| slot.start);
                push_session(sessions, slots, first, 1, origin, index);
            }
        }
    }
}

/// Drops the slots of the losing session wherever two sessions overlap (extra sessions win
/// over weekly rules, then the earlier origin, then the earlier input) and sorts the rest by
/// start.
fn resolve_overlaps(mut slots: Vec<Span>, mut sessions: Vec<Session>) -> Vec<Span> {
    // Sessions and their slots arrive in a few sorted runs, which the stable sort merges cheaply.
    sessions.sort_by_key(|session| (session.span.start, session.span.end));
    let mut dropped: Vec<bool> = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        for other in sessions[i + 1..].iter().take_while(|other| other.span.start < session.span.end) {
            if dropped.is_empty() {
                dropped.resize(slots.len(), false);
            }
            let (winner, loser) =
                if session.precedence <= other.precedence { (session, other) } else { (other, session) };
            drop_overlapping(
                &slots[winner.slots.clone()],
                &slots[loser.slots.clone()],
                &mut dropped[loser.slots.clone()],
            );
        }
    }

    if !dropped.is_empty() {
        let mut dropped = dropped.into_iter();
        slots.retain(|_| !dropped.next().unwrap_or(false));
    }
    if !slots.is_sorted_by_key(|slot| (slot.start, slot.end)) {
        slots.sort_by_key(|slot| (slot.start, slot.end));
    }
    slots
}

/// Marks every slot of `loser` that overlaps a slot of `winner`; both are sorted and disjoint.
fn drop_overlapping(winner: &[Span], loser: &[Span], dropped: &mut [bool]) {
    let mut next = 0;
    for (slot, dropped) in loser.iter().zip(dropped) {
        while next < winner.len() && winner[next].end <= slot.start {
            next += 1;
        }
        if winner.get(next).is_some_and(|other| other.start < slot.end) {
            *dropped = true;
        }
    }
}

fn local_date(tz: Tz, secs: i64) -> Option<NaiveDate> {
    Some(DateTime::from_timestamp(secs, 0)?.with_timezone(&tz).date_naive())
}

fn noon_offset(tz: Tz, day: NaiveDate) -> Option<i32> {
    let noon = day.and_hms_opt(12, 0, 0)?;
    let instant = tz.from_local_datetime(&noon).single()?;
    Some(instant.offset().fix().local_minus_utc())
}

/// Lays the slots of `rule` on `day`. `stable_offset` is the zone's offset when no
/// transition falls on or next to `day`; then the local-to-UTC mapping is a plain shift.
fn lay_rule_session(rule: &WeeklyRule, day: NaiveDate, stable_offset: Option<i32>, slots: &mut Vec<Span>) {
    let length = i64::from(rule.slot_minutes) * 60;
    let wall_start = i64::from(rule.start.num_seconds_from_midnight());
    let wall_end = i64::from(rule.end.num_seconds_from_midnight());
    let count = (wall_end - wall_start) / length;
    let midnight = NaiveDateTime::from(day);
    if let Some(offset) = stable_offset {
        let first_start = midnight.and_utc().timestamp() + wall_start - i64::from(offset);
        slots.extend((0..count).map(|k| {
            let start = first_start + k * length;
            Span::new(start, start + length)
        }));
        return;
    }
    let end_wall = midnight + chrono::TimeDelta::seconds(wall_end);
    let mut previous_end = i64::MIN;
    for k in 0..count {
        let wall = midnight + chrono::TimeDelta::seconds(wall_start + k * length);
        let Some(start) = rule.tz.from_local_datetime(&wall).earliest() else {
            continue;
        };
        let start = start.timestamp();
        let end = start + length;
        let Some(end_local) = DateTime::from_timestamp(end, 0) else {
            continue;
        };
        if start < previous_end || end_local.with_timezone(&rule.tz).naive_local() > end_wall {
            continue;
        }
        slots.push(Span::new(start, end));
        previous_end = end;
    }
}

/// Lays the slots of an extra session `origin..end` that meet `range`.
fn lay_extra_session(origin: i64, end: i64, slot_minutes: u32, range: Span, slots: &mut Vec<Span>) {
    let length = i64::from(slot_minutes) * 60;
    let count = (end - origin).div_euclid(length);
    let first = (range.start - origin).div_euclid(length).max(0);
    let last = (range.end - origin + length - 1).div_euclid(length).min(count);
    slots.extend((first..last).map(|k| {
        let start = origin + k * length;
        Span::new(start, start + length)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, Weekday};
    use chrono_tz::{America, Asia, Australia, Europe, Pacific};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn time(hour: u32, minute: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(hour, minute, 0).unwrap()
    }

    fn rule(weekday: Weekday, start: (u32, u32), end: (u32, u32), slot_minutes: u32, tz: Tz) -> WeeklyRule {
        WeeklyRule { weekday, start: time(start.0, start.1), end: time(end.0, end.1), slot_minutes, tz }
    }

    fn interval(start: &str, end: &str) -> Interval {
        Interval { start: utc(start), end: utc(end) }
    }

    const LONG_AGO: &str = "2000-01-01T00:00:00Z";

    /// Free slots with no notice, no buffer and no daily limit.
    fn plain(rules: &[WeeklyRule], exceptions: &[AvailabilityException], from: &str, to: &str) -> Vec<Interval> {
        free_slots(rules, exceptions, &[], &BookingPolicy::default(), utc(LONG_AGO), utc(from), utc(to)).unwrap()
    }

    fn starts(slots: &[Interval]) -> Vec<String> {
        slots.iter().map(|slot| slot.start.format("%Y-%m-%dT%H:%M").to_string()).collect()
    }

    fn local_starts(slots: &[Interval], tz: Tz) -> Vec<String> {
        slots.iter().map(|slot| slot.start.with_timezone(&tz).format("%H:%M%z").to_string()).collect()
    }

    fn assert_lengths(slots: &[Interval], minutes: i64) {
        for slot in slots {
            assert_eq!(slot.end - slot.start, chrono::TimeDelta::minutes(minutes), "{slot:?}");
        }
    }

    #[test]
    fn first_free_slot_is_the_first_of_the_window() {
        let rules = [
            rule(Weekday::Mon, (8, 0), (12, 0), 30, Asia::Shanghai),
            rule(Weekday::Thu, (14, 0), (17, 30), 30, Asia::Shanghai),
        ];
        let policy = BookingPolicy { buffer_minutes: 0, max_per_day: Some(3), min_notice_minutes: 60 };
        // Monday's first three slots booked: the day is full, the next slot is on Thursday.
        let busy = [
            interval("2026-11-23T00:00:00Z", "2026-11-23T00:30:00Z"),
            interval("2026-11-23T00:30:00Z", "2026-11-23T01:00:00Z"),
            interval("2026-11-23T01:00:00Z", "2026-11-23T01:30:00Z"),
        ];
        let leave = [AvailabilityException {
            start: utc("2026-11-26T06:00:00Z"),
            end: utc("2026-11-26T07:00:00Z"),
            kind: ExceptionKind::Leave,
        }];
        for now in ["2026-11-22T12:00:00Z", "2026-11-23T00:10:00Z", "2026-11-26T06:10:00Z", "2026-11-27T00:00:00Z"] {
            for (exceptions, busy) in [(&[][..], &[][..]), (&leave[..], &busy[..])] {
                let (now, to) = (utc(now), utc(now) + chrono::TimeDelta::days(14));
                let all = free_slots(&rules, exceptions, busy, &policy, now, now, to).unwrap();
                let first = first_free_slot(&rules, exceptions, busy, &policy, now, now, to).unwrap();
                assert_eq!(first, all.first().copied(), "from {now}");
            }
        }
        let never = first_free_slot(&[], &[], &[], &policy, utc(LONG_AGO), utc(LONG_AGO), utc("2000-01-15T00:00:00Z"));
        assert_eq!(never, Ok(None));
        assert_eq!(
            first_free_slot(&rules, &[], &[], &policy, utc(LONG_AGO), utc(LONG_AGO), utc(LONG_AGO)),
            Err(SlotError::EmptyWindow)
        );
    }

    #[test]
    fn shanghai_morning_session_in_utc() {
        // 2026-11-23 is a Monday; Shanghai is UTC+8 all year.
        let rules = [rule(Weekday::Mon, (8, 0), (12, 0), 15, Asia::Shanghai)];
        let slots = plain(&rules, &[], "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z");
        assert_eq!(slots.len(), 16);
        assert_eq!(slots[0], interval("2026-11-23T00:00:00Z", "2026-11-23T00:15:00Z"));
        assert_eq!(slots[15], interval("2026-11-23T03:45:00Z", "2026-11-23T04:00:00Z"));
        assert_lengths(&slots, 15);
    }

    #[test]
    fn slots_that_do_not_fit_the_session_are_not_laid() {
        let rules = [rule(Weekday::Mon, (14, 0), (17, 30), 45, Asia::Shanghai)];
        let slots = plain(&rules, &[], "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(local_starts(&slots, Asia::Shanghai), ["14:00+0800", "14:45+0800", "15:30+0800", "16:15+0800"]);
    }

    #[test]
    fn window_keeps_slots_starting_inside_it() {
        let rules = [rule(Weekday::Mon, (8, 0), (12, 0), 60, Asia::Shanghai)];
        // 01:30Z..03:00Z: the 09:00 slot (01:00Z) started before the window, 11:00 (03:00Z) is at its end.
        let slots = plain(&rules, &[], "2026-11-23T01:30:00Z", "2026-11-23T03:00:00Z");
        assert_eq!(starts(&slots), ["2026-11-23T02:00"]);
    }

    #[test]
    fn the_local_weekday_decides_not_the_utc_one() {
        // Monday 07:00 in Shanghai is Sunday 23:00 UTC.
        let rules = [rule(Weekday::Mon, (7, 0), (8, 0), 30, Asia::Shanghai)];
        let slots = plain(&rules, &[], "2026-11-22T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(starts(&slots), ["2026-11-22T23:00", "2026-11-22T23:30"]);
    }

    #[test]
    fn berlin_spring_forward_skips_the_missing_hour() {
        // Sunday 2026-03-29: at 02:00 CET the clocks jump to 03:00 CEST.
        let rules = [rule(Weekday::Sun, (1, 0), (4, 0), 15, Europe::Berlin)];
        let slots = plain(&rules, &[], "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z");
        assert_eq!(
            local_starts(&slots, Europe::Berlin),
            [
                "01:00+0100",
                "01:15+0100",
                "01:30+0100",
                "01:45+0100",
                "03:00+0200",
                "03:15+0200",
                "03:30+0200",
                "03:45+0200"
            ]
        );
        assert_eq!(slots[3], interval("2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"));
        assert_eq!(slots[4], interval("2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"));
        assert_lengths(&slots, 15);
    }

    #[test]
    fn berlin_offsets_before_and_after_spring_forward() {
        let rules = [
            rule(Weekday::Sat, (8, 0), (9, 0), 60, Europe::Berlin),
            rule(Weekday::Sun, (8, 0), (9, 0), 60, Europe::Berlin),
            rule(Weekday::Mon, (8, 0), (9, 0), 60, Europe::Berlin),
        ];
        let slots = plain(&rules, &[], "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z");
        assert_eq!(starts(&slots), ["2026-03-28T07:00", "2026-03-29T06:00", "2026-03-30T06:00"]);
    }

    #[test]
    fn berlin_long_slots_across_the_gap_never_overlap_and_end_inside_the_rule() {
        // 90-minute slots on the wall clock at 00:00, 01:30, 03:00, 04:30. The 01:30 CET slot
        // lasts until 04:00 CEST, so the 03:00 CEST slot would overlap it and is dropped.
        let rules = [rule(Weekday::Sun, (0, 0), (6, 0), 90, Europe::Berlin)];
        let slots = plain(&rules, &[], "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z");
        assert_eq!(local_starts(&slots, Europe::Berlin), ["00:00+0100", "01:30+0100", "04:30+0200"]);
        assert_lengths(&slots, 90);

        // Ending at 03:30 wall clock, the 01:30 CET slot (until 04:00 CEST) no longer fits.
        let rules = [rule(Weekday::Sun, (0, 0), (3, 30), 90, Europe::Berlin)];
        let slots = plain(&rules, &[], "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z");
        assert_eq!(local_starts(&slots, Europe::Berlin), ["00:00+0100"]);
    }

    #[test]
    fn berlin_fall_back_uses_the_earlier_hour_once() {
        // Sunday 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET.
        let rules = [rule(Weekday::Sun, (1, 0), (4, 0), 15, Europe::Berlin)];
        let slots = plain(&rules, &[], "2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z");
        assert_eq!(
            local_starts(&slots, Europe::Berlin),
            [
                "01:00+0200",
                "01:15+0200",
                "01:30+0200",
                "01:45+0200",
                "02:00+0200",
                "02:15+0200",
                "02:30+0200",
                "02:45+0200",
                "03:00+0100",
                "03:15+0100",
                "03:30+0100",
                "03:45+0100"
            ]
        );
        assert_eq!(slots[7], interval("2026-10-25T00:45:00Z", "2026-10-25T01:00:00Z"));
        // The repeated 02:00-03:00 CET (01:00Z-02:00Z) stays empty.
        assert_eq!(slots[8], interval("2026-10-25T02:00:00Z", "2026-10-25T02:15:00Z"));
        assert_lengths(&slots, 15);
    }

    #[test]
    fn berlin_fall_back_long_slot_runs_into_the_repeated_hour() {
        // The 02:30 CEST slot of 60 minutes ends at 02:30 CET: inside the rule, no overlap.
        let rules = [rule(Weekday::Sun, (0, 30), (4, 30), 60, Europe::Berlin)];
        let slots = plain(&rules, &[], "2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z");
        assert_eq!(local_starts(&slots, Europe::Berlin), ["00:30+0200", "01:30+0200", "02:30+0200", "03:30+0100"]);
        assert_eq!(slots[2], interval("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"));
        assert_eq!(slots[3], interval("2026-10-25T02:30:00Z", "2026-10-25T03:30:00Z"));
    }

    #[test]
    fn berlin_offsets_before_and_after_fall_back() {
        let rules = [
            rule(Weekday::Sat, (9, 0), (10, 0), 60, Europe::Berlin),
            rule(Weekday::Sun, (9, 0), (10, 0), 60, Europe::Berlin),
            rule(Weekday::Mon, (9, 0), (10, 0), 60, Europe::Berlin),
        ];
        let slots = plain(&rules, &[], "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z");
        assert_eq!(starts(&slots), ["2026-10-24T07:00", "2026-10-25T08:00", "2026-10-26T08:00"]);
    }

    #[test]
    fn leave_removes_every_slot_it_touches() {
        let rules = [rule(Weekday::Mon, (8, 0), (10, 0), 30, Asia::Shanghai)];
        let leave = AvailabilityException {
            start: utc("2026-11-23T00:40:00Z"),
            end: utc("2026-11-23T01:05:00Z"),
            kind: ExceptionKind::Leave,
        };
        let slots = plain(&rules, &[leave], "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(starts(&slots), ["2026-11-23T00:00", "2026-11-23T01:30"]);
    }

    #[test]
    fn leave_over_a_whole_week_empties_it() {
        let rules = [
            rule(Weekday::Mon, (8, 0), (12, 0), 15, Asia::Shanghai),
            rule(Weekday::Tue, (8, 0), (12, 0), 15, Asia::Shanghai),
        ];
        let leave = AvailabilityException {
            start: utc("2026-11-22T16:00:00Z"),
            end: utc("2026-11-29T16:00:00Z"),
            kind: ExceptionKind::Leave,
        };
        assert!(plain(&rules, &[leave], "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z").is_empty());
        assert_eq!(plain(&rules, &[leave], "2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z").len(), 32);
    }

    #[test]
    fn extra_session_adds_slots_with_its_own_length() {
        // A Saturday session 09:00-10:10 Shanghai with 20-minute slots: 09:00, 09:20, 09:40.
        let extra = AvailabilityException {
            start: utc("2026-11-28T01:00:00Z"),
            end: utc("2026-11-28T02:10:00Z"),
            kind: ExceptionKind::ExtraSession { slot_minutes: 20 },
        };
        let slots = plain(&[], &[extra], "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z");
        assert_eq!(starts(&slots), ["2026-11-28T01:00", "2026-11-28T01:20", "2026-11-28T01:40"]);
        assert_lengths(&slots, 20);
    }

    #[test]
    fn extra_session_takes_precedence_over_an_overlapping_rule() {
        let rules = [rule(Weekday::Mon, (8, 0), (10, 0), 15, Asia::Shanghai)];
        // 08:50-09:50 Shanghai with 30-minute slots.
        let extra = AvailabilityException {
            start: utc("2026-11-23T00:50:00Z"),
            end: utc("2026-11-23T01:50:00Z"),
            kind: ExceptionKind::ExtraSession { slot_minutes: 30 },
        };
        let slots = plain(&rules, &[extra], "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(
            local_starts(&slots, Asia::Shanghai),
            ["08:00+0800", "08:15+0800", "08:30+0800", "08:50+0800", "09:20+0800"]
        );
    }

    #[test]
    fn overlapping_rules_keep_the_earlier_session() {
        let rules = [
            rule(Weekday::Mon, (9, 0), (10, 0), 20, Asia::Shanghai),
            rule(Weekday::Mon, (8, 0), (9, 30), 30, Asia::Shanghai),
        ];
        let slots = plain(&rules, &[], "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z");
        assert_eq!(local_starts(&slots, Asia::Shanghai), ["08:00+0800", "08:30+0800", "09:00+0800", "09:40+0800"]);
        assert_eq!(slots[2].end - slots[2].start, chrono::TimeDelta::minutes(30));
        assert_eq!(slots[3].end - slots[3].start, chrono::TimeDelta::minutes(20));
    }

    #[test]
    fn buffer_widens_each_appointment_on_both_sides() {
        let rules = [rule(Weekday::Mon, (8, 0), (11, 0), 15, Asia::Shanghai)];
        let busy = [interval("2026-11-23T01:00:00Z", "2026-11-23T01:30:00Z")]; // 09:00-09:30
        let policy = BookingPolicy { buffer_minutes: 10, ..BookingPolicy::default() };
        let slots = free_slots(
            &rules,
            &[],
            &busy,
            &policy,
            utc(LONG_AGO),
            utc("2026-11-23T00:00:00Z"),
            utc("2026-11-24T00:00:00Z"),
        )
        .unwrap();
        let local = local_starts(&slots, Asia::Shanghai);
        assert!(local.contains(&"08:30+0800".to_string()));
        for gone in ["08:45+0800", "09:00+0800", "09:15+0800", "09:30+0800"] {
            assert!(!local.contains(&gone.to_string()), "{gone} should be taken by the buffer");
        }
        assert!(local.contains(&"09:45+0800".to_string()));
        assert_eq!(slots.len(), 12 - 4);

        let no_buffer = free_slots(
            &rules,
            &[],
            &busy,
            &BookingPolicy::default(),
            utc(LONG_AGO),
            slots[0].start,
            utc("2026-11-24T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(no_buffer.len(), 12 - 2);
    }

    #[test]
    fn max_per_day_counts_appointments_on_the_local_day() {
        let rules = [
            rule(Weekday::Mon, (8, 0), (12, 0), 60, Asia::Shanghai),
            rule(Weekday::Tue, (8, 0), (12, 0), 60, Asia::Shanghai),
        ];
        let policy = BookingPolicy { max_per_day: Some(2), ..BookingPolicy::default() };
        let window = ("2026-11-23T00:00:00Z", "2026-11-25T00:00:00Z");
        // One Monday appointment plus one at 17:00Z Monday, which is 01:00 Tuesday in Shanghai.
        let busy = [
            interval("2026-11-23T00:00:00Z", "2026-11-23T01:00:00Z"),
            interval("2026-11-23T17:00:00Z", "2026-11-23T18:00:00Z"),
        ];
        let slots = free_slots(&rules, &[], &busy, &policy, utc(LONG_AGO), utc(window.0), utc(window.1)).unwrap();
        assert_eq!(slots.len(), 3 + 4);

        let busy = [busy[0], interval("2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z")];
        let slots = free_slots(&rules, &[], &busy, &policy, utc(LONG_AGO), utc(window.0), utc(window.1)).unwrap();
        assert_eq!(starts(&slots), ["2026-11-24T00:00", "2026-11-24T01:00", "2026-11-24T02:00", "2026-11-24T03:00"]);

        let closed = BookingPolicy { max_per_day: Some(0), ..BookingPolicy::default() };
        assert!(free_slots(&rules, &[], &[], &closed, utc(LONG_AGO), utc(window.0), utc(window.1)).unwrap().is_empty());
    }

    #[test]
    fn min_notice_hides_slots_starting_too_soon() {
        let rules = [rule(Weekday::Mon, (8, 0), (12, 0), 30, Asia::Shanghai)];
        let policy = BookingPolicy { min_notice_minutes: 120, ..BookingPolicy::default() };
        // Now is 08:10 Shanghai: the first bookable start is 10:10, so 10:30.
        let now = utc("2026-11-23T00:10:00Z");
        let slots =
            free_slots(&rules, &[], &[], &policy, now, utc("2026-11-23T00:00:00Z"), utc("2026-11-24T00:00:00Z"))
                .unwrap();
        assert_eq!(local_starts(&slots, Asia::Shanghai), ["10:30+0800", "11:00+0800", "11:30+0800"]);
        // Exactly at the notice boundary is allowed.
        let now = utc("2026-11-23T00:30:00Z");
        let slots =
            free_slots(&rules, &[], &[], &policy, now, utc("2026-11-23T00:00:00Z"), utc("2026-11-24T00:00:00Z"))
                .unwrap();
        assert_eq!(local_starts(&slots, Asia::Shanghai)[0], "10:30+0800");
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let good = [rule(Weekday::Mon, (8, 0), (12, 0), 30, Asia::Shanghai)];
        let policy = BookingPolicy::default();
        let now = utc(LONG_AGO);
        let from = utc("2026-11-23T00:00:00Z");
        let query = |rules: &[WeeklyRule], exceptions: &[AvailabilityException], busy: &[Interval], to: &str| {
            free_slots(rules, exceptions, busy, &policy, now, from, utc(to)).unwrap_err()
        };
        assert_eq!(query(&good, &[], &[], "2026-11-23T00:00:00Z"), SlotError::EmptyWindow);
        assert_eq!(query(&good, &[], &[], "2026-11-22T00:00:00Z"), SlotError::EmptyWindow);
        assert_eq!(query(&good, &[], &[], "2027-01-24T00:00:01Z"), SlotError::WindowTooLong);
        assert!(free_slots(&good, &[], &[], &policy, now, from, utc("2027-01-24T00:00:00Z")).is_ok());

        let zero = [rule(Weekday::Mon, (8, 0), (12, 0), 0, Asia::Shanghai)];
        assert!(matches!(query(&zero, &[], &[], "2026-11-24T00:00:00Z"), SlotError::InvalidRule { index: 0, .. }));
        let backwards = [good[0], rule(Weekday::Mon, (12, 0), (8, 0), 30, Asia::Shanghai)];
        assert!(matches!(query(&backwards, &[], &[], "2026-11-24T00:00:00Z"), SlotError::InvalidRule { index: 1, .. }));
        let huge = [rule(Weekday::Mon, (8, 0), (12, 0), MAX_SLOT_MINUTES + 1, Asia::Shanghai)];
        assert_eq!(query(&huge, &[], &[], "2026-11-24T00:00:00Z").code(), "invalid_rule");

        let empty_leave = AvailabilityException { start: from, end: from, kind: ExceptionKind::Leave };
        assert!(matches!(
            query(&good, &[empty_leave], &[], "2026-11-24T00:00:00Z"),
            SlotError::InvalidException { index: 0, .. }
        ));
        let zero_extra = AvailabilityException {
            start: from,
            end: utc("2026-11-23T02:00:00Z"),
            kind: ExceptionKind::ExtraSession { slot_minutes: 0 },
        };
        assert_eq!(query(&good, &[zero_extra], &[], "2026-11-24T00:00:00Z").code(), "invalid_exception");
        let backwards_busy = [interval("2026-11-23T02:00:00Z", "2026-11-23T01:00:00Z")];
        assert_eq!(query(&good, &[], &backwards_busy, "2026-11-24T00:00:00Z"), SlotError::InvalidBusy { index: 0 });
        assert!(SlotError::WindowTooLong.is_invalid_input());
        assert!(!SlotError::Overlaps.is_invalid_input());
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let rules = [rule(Weekday::Mon, (8, 0), (12, 0), 30, Asia::Shanghai)];
        let policy = BookingPolicy { buffer_minutes: u32::MAX, max_per_day: Some(1), min_notice_minutes: u32::MAX };
        let max = DateTime::<Utc>::MAX_UTC;
        let min = DateTime::<Utc>::MIN_UTC;
        let busy = [Interval { start: min, end: max }];
        assert!(free_slots(&rules, &[], &busy, &policy, max, max - chrono::TimeDelta::days(3), max)
            .unwrap()
            .is_empty());
        assert!(
            free_slots(&rules, &[], &[], &BookingPolicy::default(), min, min, min + chrono::TimeDelta::days(3)).is_ok()
        );
        assert!(is_bookable(&rules, &[], &busy, &policy, max, max - chrono::TimeDelta::hours(1), max).is_err());
    }

    fn bookable(now: &str, busy: &[Interval], policy: &BookingPolicy, start: &str, end: &str) -> Result<(), SlotError> {
        let rules = [
            rule(Weekday::Mon, (8, 0), (12, 0), 30, Asia::Shanghai),
            rule(Weekday::Tue, (8, 0), (12, 0), 30, Asia::Shanghai),
        ];
        let leave = AvailabilityException {
            start: utc("2026-11-24T02:00:00Z"),
            end: utc("2026-11-24T04:00:00Z"),
            kind: ExceptionKind::Leave,
        };
        is_bookable(&rules, &[leave], busy, policy, utc(now), utc(start), utc(end))
    }

    #[test]
    fn is_bookable_accepts_a_free_slot() {
        let policy = BookingPolicy::default();
        assert_eq!(bookable(LONG_AGO, &[], &policy, "2026-11-23T00:30:00Z", "2026-11-23T01:00:00Z"), Ok(()));
    }

    #[test]
    fn is_bookable_names_the_reason() {
        let policy = BookingPolicy { buffer_minutes: 15, max_per_day: Some(2), min_notice_minutes: 60 };
        let now = "2026-11-22T00:00:00Z";
        let check = |busy: &[Interval], start: &str, end: &str| bookable(now, busy, &policy, start, end);

        // Off the grid, wrong length, outside any rule, on leave.
        assert_eq!(check(&[], "2026-11-23T00:10:00Z", "2026-11-23T00:40:00Z"), Err(SlotError::NotOnSchedule));
        assert_eq!(check(&[], "2026-11-23T00:30:00Z", "2026-11-23T01:30:00Z"), Err(SlotError::NotOnSchedule));
        assert_eq!(check(&[], "2026-11-23T06:00:00Z", "2026-11-23T06:30:00Z"), Err(SlotError::NotOnSchedule));
        assert_eq!(check(&[], "2026-11-24T02:30:00Z", "2026-11-24T03:00:00Z"), Err(SlotError::NotOnSchedule));
        assert_eq!(check(&[], "2026-11-23T01:00:00Z", "2026-11-23T00:30:00Z"), Err(SlotError::EmptyRequest));

        // Too soon.
        assert_eq!(
            bookable("2026-11-23T00:01:00Z", &[], &policy, "2026-11-23T01:00:00Z", "2026-11-23T01:30:00Z"),
            Err(SlotError::TooSoon)
        );

        // Day full.
        let two = [
            interval("2026-11-23T00:00:00Z", "2026-11-23T00:30:00Z"),
            interval("2026-11-23T03:30:00Z", "2026-11-23T04:00:00Z"),
        ];
        assert_eq!(check(&two, "2026-11-23T01:30:00Z", "2026-11-23T02:00:00Z"), Err(SlotError::DayFull));
        assert_eq!(check(&two, "2026-11-24T00:00:00Z", "2026-11-24T00:30:00Z"), Ok(()));

        // Overlaps the appointment or its buffer.
        let one = [interval("2026-11-23T01:00:00Z", "2026-11-23T01:30:00Z")];
        assert_eq!(check(&one, "2026-11-23T01:00:00Z", "2026-11-23T01:30:00Z"), Err(SlotError::Overlaps));
        assert_eq!(check(&one, "2026-11-23T01:30:00Z", "2026-11-23T02:00:00Z"), Err(SlotError::Overlaps));
        assert_eq!(check(&one, "2026-11-23T02:00:00Z", "2026-11-23T02:30:00Z"), Ok(()));
    }

    #[test]
    fn bookable_slot_at_finds_the_slot_for_a_start() {
        let rules = [rule(Weekday::Sun, (1, 0), (4, 0), 20, Europe::Berlin)];
        let slot =
            bookable_slot_at(&rules, &[], &[], &BookingPolicy::default(), utc(LONG_AGO), utc("2026-03-29T01:00:00Z"))
                .unwrap();
        assert_eq!(slot, interval("2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z"));
        let off_second = utc("2026-03-29T01:00:00Z") + chrono::TimeDelta::milliseconds(5);
        assert_eq!(
            bookable_slot_at(&rules, &[], &[], &BookingPolicy::default(), utc(LONG_AGO), off_second),
            Err(SlotError::NotOnSchedule)
        );
    }

    // ---- property tests with a deterministic generator ----

    /// xorshift64*: small, fast and reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    const ZONES: [Tz; 7] = [
        Asia::Shanghai,
        Europe::Berlin,
        America::New_York,
        Australia::Lord_Howe,
        Pacific::Auckland,
        Asia::Kolkata,
        Tz::UTC,
    ];
    const LENGTHS: [u32; 8] = [10, 15, 20, 25, 30, 45, 60, 90];
    /// Days around the 2026 changeovers of the zones above, and an ordinary week.
    const ANCHORS: [&str; 5] = [
        "2026-03-26T00:00:00Z",
        "2026-10-22T00:00:00Z",
        "2026-04-02T00:00:00Z",
        "2026-09-24T00:00:00Z",
        "2026-11-23T00:00:00Z",
    ];

    struct Case {
        rules: Vec<WeeklyRule>,
        exceptions: Vec<AvailabilityException>,
        busy: Vec<Interval>,
        policy: BookingPolicy,
        now: DateTime<Utc>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    }

    fn minutes(rng: &mut Rng, max: u64) -> chrono::TimeDelta {
        chrono::TimeDelta::minutes(rng.below(max) as i64)
    }

    fn random_case(rng: &mut Rng) -> Case {
        let tz = rng.pick(&ZONES);
        let anchor = utc(rng.pick(&ANCHORS));
        let from = anchor + minutes(rng, 3 * 24 * 60);
        let to = from + chrono::TimeDelta::minutes(1 + rng.below(9 * 24 * 60) as i64);
        let weekdays =
            [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
        let rules = (0..rng.below(7))
            .map(|_| {
                let start = rng.below(23 * 12) as u32 * 5;
                let end = start + 5 + rng.below((24 * 60 - 5 - start as u64).max(1)) as u32;
                let end = end.min(23 * 60 + 59);
                WeeklyRule {
                    weekday: rng.pick(&weekdays),
                    start: time(start / 60, start % 60),
                    end: time(end / 60, end % 60),
                    slot_minutes: rng.pick(&LENGTHS),
                    tz: if rng.chance(90) { tz } else { rng.pick(&ZONES) },
                }
            })
            .collect();
        let exceptions = (0..rng.below(5))
            .map(|_| {
                let start = from - chrono::TimeDelta::days(1) + minutes(rng, 11 * 24 * 60);
                let end = start + chrono::TimeDelta::minutes(1 + rng.below(24 * 60) as i64);
                let kind = if rng.chance(50) {
                    ExceptionKind::Leave
                } else {
                    ExceptionKind::ExtraSession { slot_minutes: rng.pick(&LENGTHS) }
                };
                AvailabilityException { start, end, kind }
            })
            .collect();
        let busy = (0..rng.below(12))
            .map(|_| {
                let start = from - chrono::TimeDelta::days(1) + minutes(rng, 11 * 24 * 60);
                Interval { start, end: start + chrono::TimeDelta::minutes(rng.pick(&LENGTHS) as i64) }
            })
            .collect();
        let policy = BookingPolicy {
            buffer_minutes: rng.pick(&[0, 0, 5, 10, 30]),
            max_per_day: rng.pick(&[None, None, Some(1), Some(2), Some(3)]),
            min_notice_minutes: rng.pick(&[0, 30, 120, 24 * 60]),
        };
        let now = from - chrono::TimeDelta::days(1) + minutes(rng, 4 * 24 * 60);
        Case { rules, exceptions, busy, policy, now, from, to }
    }

    fn overlaps(a: &Interval, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        a.start < end && start < a.end
    }

    /// The slot is one that the rule lays: right weekday, on the rule's grid, inside it.
    fn laid_by_rule(slot: &Interval, rule: &WeeklyRule) -> bool {
        let local_start = slot.start.with_timezone(&rule.tz).naive_local();
        let local_end = slot.end.with_timezone(&rule.tz).naive_local();
        let day = local_start.date();
        let offset_in_rule = (local_start.time() - rule.start).num_seconds();
        day.weekday() == rule.weekday
            && slot.end - slot.start == chrono::TimeDelta::minutes(rule.slot_minutes.into())
            && offset_in_rule >= 0
            && offset_in_rule % (i64::from(rule.slot_minutes) * 60) == 0
            && local_end <= day.and_time(rule.end)
    }

    fn laid_by_extra(slot: &Interval, exception: &AvailabilityException) -> bool {
        let ExceptionKind::ExtraSession { slot_minutes } = exception.kind else {
            return false;
        };
        slot.start >= exception.start
            && slot.end <= exception.end
            && slot.end - slot.start == chrono::TimeDelta::minutes(slot_minutes.into())
            && (slot.start - exception.start).num_seconds() % (i64::from(slot_minutes) * 60) == 0
    }

    #[test]
    fn property_free_slots_respect_every_rule() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut total = 0;
        for _ in 0..1500 {
            let case = random_case(&mut rng);
            let slots =
                free_slots(&case.rules, &case.exceptions, &case.busy, &case.policy, case.now, case.from, case.to)
                    .unwrap();
            total += slots.len();
            let buffer = chrono::TimeDelta::minutes(case.policy.buffer_minutes.into());
            let day_tz = expert_time_zone(&case.rules);
            for (i, slot) in slots.iter().enumerate() {
                assert!(slot.start < slot.end);
                assert!(case.from <= slot.start && slot.start < case.to, "outside the window: {slot:?}");
                assert!(slot.start >= case.now + chrono::TimeDelta::minutes(case.policy.min_notice_minutes.into()));
                if let Some(next) = slots.get(i + 1) {
                    assert!(slot.end <= next.start, "slots overlap or are unsorted: {slot:?} {next:?}");
                }
                for appointment in &case.busy {
                    assert!(
                        !overlaps(slot, appointment.start - buffer, appointment.end + buffer),
                        "{slot:?} vs {appointment:?}"
                    );
                }
                for exception in &case.exceptions {
                    if exception.kind == ExceptionKind::Leave {
                        assert!(!overlaps(slot, exception.start, exception.end), "{slot:?} on leave {exception:?}");
                    }
                }
                assert!(
                    case.rules.iter().any(|rule| laid_by_rule(slot, rule))
                        || case.exceptions.iter().any(|exception| laid_by_extra(slot, exception)),
                    "{slot:?} is neither in a rule nor in an extra session"
                );
                if let Some(max) = case.policy.max_per_day {
                    let day = slot.start.with_timezone(&day_tz).date_naive();
                    let booked = case
                        .busy
                        .iter()
                        .filter(|appointment| appointment.start.with_timezone(&day_tz).date_naive() == day)
                        .count();
                    assert!(booked < max as usize, "{slot:?} on a full day");
                }
                assert_eq!(
                    is_bookable(
                        &case.rules,
                        &case.exceptions,
                        &case.busy,
                        &case.policy,
                        case.now,
                        slot.start,
                        slot.end
                    ),
                    Ok(()),
                    "listed but not bookable: {slot:?}"
                );
            }
        }
        assert!(total > 10_000, "the generator should produce plenty of slots, got {total}");
    }

    #[test]
    fn property_is_bookable_agrees_with_free_slots() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut accepted = 0;
        for _ in 0..800 {
            let case = random_case(&mut rng);
            let free =
                free_slots(&case.rules, &case.exceptions, &case.busy, &case.policy, case.now, case.from, case.to)
                    .unwrap();
            // Every slot the rules and extra sessions lay, with nothing booked and no policy.
            let laid = free_slots(
                &case.rules,
                &case.exceptions,
                &[],
                &BookingPolicy::default(),
                case.from - chrono::TimeDelta::days(1),
                case.from,
                case.to,
            )
            .unwrap();
            for slot in &laid {
                let verdict = is_bookable(
                    &case.rules,
                    &case.exceptions,
                    &case.busy,
                    &case.policy,
                    case.now,
                    slot.start,
                    slot.end,
                );
                assert_eq!(verdict.is_ok(), free.contains(slot), "{slot:?}: {verdict:?}");
                accepted += usize::from(verdict.is_ok());
            }
            // Random starts on a five-minute grid are bookable only when listed.
            for _ in 0..20 {
                let start = case.from + chrono::TimeDelta::minutes(rng.below(9 * 24 * 12) as i64 * 5);
                if start >= case.to {
                    continue;
                }
                let listed = free.iter().find(|slot| slot.start == start);
                let found = bookable_slot_at(&case.rules, &case.exceptions, &case.busy, &case.policy, case.now, start);
                assert_eq!(found.ok().as_ref(), listed, "start {start}");
            }
        }
        assert!(accepted > 1_000, "too few bookable slots exercised: {accepted}");
    }

    #[test]
    fn property_slots_do_not_depend_on_the_window() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for _ in 0..400 {
            let case = random_case(&mut rng);
            let whole =
                free_slots(&case.rules, &case.exceptions, &case.busy, &case.policy, case.now, case.from, case.to)
                    .unwrap();
            let cut = case.from + (case.to - case.from) / 2;
            let mut halves =
                free_slots(&case.rules, &case.exceptions, &case.busy, &case.policy, case.now, case.from, cut)
                    .unwrap_or_default();
            if cut < case.to {
                halves.extend(
                    free_slots(&case.rules, &case.exceptions, &case.busy, &case.policy, case.now, cut, case.to)
                        .unwrap(),
                );
            }
            assert_eq!(whole, halves);
        }
    }
}
