//! Slot computation for 1,000 experts over 30 days (target: under 50 ms in total).
//!
//! Run with `cargo bench --bench slots`. Each expert has weekday sessions 08:00-12:00 and
//! 14:00-17:30 with 15-minute slots, a few appointments, sometimes a leave or an extra
//! session; one in ten lives in Europe/Berlin, the rest in Asia/Shanghai.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use teleconsult::scheduling::slots::{
    free_slots, AvailabilityException, BookingPolicy, ExceptionKind, Interval, WeeklyRule,
};

const EXPERTS: usize = 1_000;
const DAYS: i64 = 30;
const WARM_UP_RUNS: usize = 3;
const MEASURED_RUNS: usize = 31;

struct Expert {
    rules: Vec<WeeklyRule>,
    exceptions: Vec<AvailabilityException>,
    busy: Vec<Interval>,
    policy: BookingPolicy,
}

fn time(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time")
}

fn experts(from: DateTime<Utc>) -> Vec<Expert> {
    let weekdays = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    (0..EXPERTS)
        .map(|index| {
            let tz: Tz = if index % 10 == 0 { chrono_tz::Europe::Berlin } else { chrono_tz::Asia::Shanghai };
            let rules = weekdays
                .iter()
                .flat_map(|&weekday| {
                    [
                        WeeklyRule { weekday, start: time(8, 0), end: time(12, 0), slot_minutes: 15, tz },
                        WeeklyRule { weekday, start: time(14, 0), end: time(17, 30), slot_minutes: 15, tz },
                    ]
                })
                .collect();
            let busy = (0..3 + next(6))
                .map(|_| {
                    let start = from + TimeDelta::minutes(next(DAYS as u64 * 24 * 4) as i64 * 15);
                    Interval { start, end: start + TimeDelta::minutes(30) }
                })
                .collect();
            let mut exceptions = Vec::new();
            if index % 7 == 0 {
                let start = from + TimeDelta::days(next(DAYS as u64) as i64);
                exceptions.push(AvailabilityException {
                    start,
                    end: start + TimeDelta::days(2),
                    kind: ExceptionKind::Leave,
                });
            }
            if index % 5 == 0 {
                let start = from + TimeDelta::days(next(DAYS as u64) as i64) + TimeDelta::hours(1);
                exceptions.push(AvailabilityException {
                    start,
                    end: start + TimeDelta::hours(3),
                    kind: ExceptionKind::ExtraSession { slot_minutes: 20 },
                });
            }
            let policy = BookingPolicy { buffer_minutes: 5, max_per_day: Some(12), min_notice_minutes: 120 };
            Expert { rules, exceptions, busy, policy }
        })
        .collect()
}

fn run(experts: &[Expert], now: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
    experts
        .iter()
        .map(|expert| {
            free_slots(
                black_box(&expert.rules),
                black_box(&expert.exceptions),
                black_box(&expert.busy),
                &expert.policy,
                now,
                from,
                to,
            )
            .expect("valid inputs")
            .len()
        })
        .sum()
}

fn main() {
    let now = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z").expect("valid date").with_timezone(&Utc);
    let from = now;
    let to = from + TimeDelta::days(DAYS);
    let experts = experts(from);

    let mut slots = 0;
    for _ in 0..WARM_UP_RUNS {
        slots = run(&experts, now, from, to);
    }
    let mut timings: Vec<Duration> = (0..MEASURED_RUNS)
        .map(|_| {
            let started = Instant::now();
            black_box(run(&experts, now, from, to));
            started.elapsed()
        })
        .collect();
    timings.sort();
    let percentile = |p: usize| timings[(timings.len() * p / 100).min(timings.len() - 1)];
    println!(
        "free_slots: {EXPERTS} experts x {DAYS} days, {slots} slots per run, {MEASURED_RUNS} runs: \
         median {:.2?}, p95 {:.2?}, min {:.2?} (target < 50 ms)",
        percentile(50),
        percentile(95),
        timings[0],
    );
}
