//! Targets of a chronic-disease follow-up plan and the rules that put a plan on the family
//! doctor's worklist: a reading out of target, or no reading within the measurement
//! frequency. Pure: the caller passes the readings' values and the clock.
//!
//! Defaults (docs/resident.md, "Targets and their sources"):
//! - hypertension, from 中国高血压防治指南 2018 年修订版: blood pressure below 140/90 mmHg;
//!   a controlled patient measures at home one to two days a week, so a plan expects a
//!   reading at least every 7 days.
//! - diabetes (type 2), from 中国 2 型糖尿病防治指南 2020 年版: fasting (and pre-meal)
//!   glucose 4.4-7.0 mmol/L, non-fasting below 10.0 mmol/L, blood pressure below 130/80
//!   mmHg; below 3.9 mmol/L is hypoglycaemia; a reading at least every 7 days.

use super::reading::{GlucoseContext, Kind, Values};
use crate::domain::named_enum;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What a plan aims for; every field optional (absent: not watched).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Systolic pressure must stay below this (mmHg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systolic_below: Option<f64>,
    /// Diastolic pressure must stay below this (mmHg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diastolic_below: Option<f64>,
    /// Fasting glucose must stay below this (mmol/L).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fasting_glucose_below: Option<f64>,
    /// Postprandial and random glucose must stay below this (mmol/L).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postprandial_glucose_below: Option<f64>,
    /// Any glucose below this (mmol/L) is hypoglycaemia.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glucose_at_least: Option<f64>,
    /// A reading of each watched kind is expected at least this often (days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_every_days: Option<u32>,
}

named_enum! {
    /// Why a plan is on the worklist. One open item per (plan, reason).
    Reason, "worklist reason" {
        BloodPressureAboveTarget => "blood_pressure_above_target",
        GlucoseAboveTarget => "glucose_above_target",
        GlucoseLow => "glucose_low",
        BloodPressureMissing => "blood_pressure_missing",
        GlucoseMissing => "glucose_missing",
    }
}

impl Reason {
    /// The reason that a reading of `kind` arriving ends (a missing-reading episode).
    pub fn missing_of(kind: Kind) -> Option<Reason> {
        match kind {
            Kind::BloodPressure => Some(Reason::BloodPressureMissing),
            Kind::Glucose => Some(Reason::GlucoseMissing),
            _ => None,
        }
    }
}

/// The default targets for a plan's condition (matched on the words used for it in
/// English or Chinese); an unknown condition has none.
pub fn defaults(condition: &str) -> Targets {
    let c = condition.to_lowercase();
    let diabetes = c.contains("diabet") || c.contains("糖尿病");
    let hypertension = c.contains("hypertens") || c.contains("高血压");
    if diabetes {
        Targets {
            systolic_below: Some(130.0),
            diastolic_below: Some(80.0),
            fasting_glucose_below: Some(7.0),
            postprandial_glucose_below: Some(10.0),
            glucose_at_least: Some(3.9),
            measure_every_days: Some(7),
        }
    } else if hypertension {
        Targets {
            systolic_below: Some(140.0),
            diastolic_below: Some(90.0),
            measure_every_days: Some(7),
            ..Targets::default()
        }
    } else {
        Targets::default()
    }
}

/// Checks targets a doctor sets: each within a range that makes sense for it.
pub fn check(t: &Targets) -> Result<(), (&'static str, &'static str)> {
    let within = |v: Option<f64>, lo: f64, hi: f64| v.is_none_or(|v| v.is_finite() && (lo..=hi).contains(&v));
    if !within(t.systolic_below, 90.0, 200.0) {
        return Err(("targets.systolic_below", "90 to 200 mmHg"));
    }
    if !within(t.diastolic_below, 50.0, 130.0) {
        return Err(("targets.diastolic_below", "50 to 130 mmHg"));
    }
    if !within(t.fasting_glucose_below, 4.0, 15.0) {
        return Err(("targets.fasting_glucose_below", "4.0 to 15.0 mmol/L"));
    }
    if !within(t.postprandial_glucose_below, 5.0, 20.0) {
        return Err(("targets.postprandial_glucose_below", "5.0 to 20.0 mmol/L"));
    }
    if !within(t.glucose_at_least, 2.0, 6.0) {
        return Err(("targets.glucose_at_least", "2.0 to 6.0 mmol/L"));
    }
    if t.measure_every_days.is_some_and(|d| !(1..=90).contains(&d)) {
        return Err(("targets.measure_every_days", "1 to 90 days"));
    }
    Ok(())
}

/// A reading outside its plan's targets: the reason and, in plain words, what was seen
/// against what was aimed for.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: Reason,
    pub detail: String,
    /// What was read, numbers and units only (`152/96 mmHg`, `8.2 mmol/L`).
    pub reading: String,
    /// The target it is weighed against, numbers and units only (`140/90 mmHg`): below it for
    /// a target, at least it for a low limit.
    pub target: String,
}

fn n(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// The findings of one reading against `t` (none: within target or not watched).
pub fn evaluate(t: &Targets, kind: Kind, v: &Values) -> Vec<Finding> {
    let mut out = Vec::new();
    match kind {
        Kind::BloodPressure => {
            let (Some(s), Some(d)) = (v.systolic_mmhg, v.diastolic_mmhg) else { return out };
            let high_s = t.systolic_below.is_some_and(|m| s >= m);
            let high_d = t.diastolic_below.is_some_and(|m| d >= m);
            if high_s || high_d {
                let reading = format!("{}/{} mmHg", n(s), n(d));
                let target = format!(
                    "{}/{} mmHg",
                    t.systolic_below.map(n).unwrap_or_else(|| "-".into()),
                    t.diastolic_below.map(n).unwrap_or_else(|| "-".into())
                );
                out.push(Finding {
                    reason: Reason::BloodPressureAboveTarget,
                    detail: format!("{reading}, target below {target}"),
                    reading,
                    target,
                });
            }
        }
        Kind::Glucose => {
            let Some(g) = v.glucose_mmol_l else { return out };
            let context = v.glucose_context.unwrap_or(GlucoseContext::Random);
            if let Some(low) = t.glucose_at_least.filter(|&low| g < low) {
                out.push(Finding {
                    reason: Reason::GlucoseLow,
                    detail: format!("{} mmol/L ({}), below {} mmol/L", n(g), context.as_str(), n(low)),
                    reading: format!("{} mmol/L", n(g)),
                    target: format!("{} mmol/L", n(low)),
                });
            }
            let limit = match context {
                GlucoseContext::Fasting => t.fasting_glucose_below,
                GlucoseContext::Postprandial | GlucoseContext::Random => t.postprandial_glucose_below,
            };
            if let Some(limit) = limit.filter(|&m| g >= m) {
                out.push(Finding {
                    reason: Reason::GlucoseAboveTarget,
                    detail: format!("{} mmol/L ({}), target below {} mmol/L", n(g), context.as_str(), n(limit)),
                    reading: format!("{} mmol/L", n(g)),
                    target: format!("{} mmol/L", n(limit)),
                });
            }
        }
        _ => {}
    }
    out
}

/// Whether a reading measured at `at` still counts for the worklist at `now`: measured within
/// the plan's frequency (7 days when it has none).
pub fn counts(t: &Targets, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let days = i64::from(t.measure_every_days.unwrap_or(7).max(1));
    at >= now - Duration::days(days)
}

/// The kinds a plan expects readings of: blood pressure when it has a pressure target,
/// glucose when it has a glucose target.
pub fn watched(t: &Targets) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if t.systolic_below.is_some() || t.diastolic_below.is_some() {
        kinds.push(Kind::BloodPressure);
    }
    if t.fasting_glucose_below.is_some() || t.postprandial_glucose_below.is_some() || t.glucose_at_least.is_some() {
        kinds.push(Kind::Glucose);
    }
    kinds
}

/// A plan whose watched kind has had no reading for longer than its frequency: the reason
/// and the episode's key (the time since which nothing arrived: the last reading, or the
/// plan's start), so that one silence is one worklist item however often it is looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    pub reason: Reason,
    pub since: DateTime<Utc>,
    pub days: i64,
}

/// Missing readings of one watched `kind`: `last` is the newest reading's time (if any),
/// `start` when the plan began.
pub fn missing(
    t: &Targets,
    kind: Kind,
    last: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Missing> {
    let every = i64::from(t.measure_every_days?);
    let reason = Reason::missing_of(kind)?;
    let since = last.map_or(start, |l| l.max(start));
    let days = (now - since).num_days();
    (now - since > Duration::days(every)).then_some(Missing { reason, since, days })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(s: f64, d: f64) -> Values {
        Values { systolic_mmhg: Some(s), diastolic_mmhg: Some(d), ..Values::default() }
    }

    fn glucose(g: f64, c: GlucoseContext) -> Values {
        Values { glucose_mmol_l: Some(g), glucose_context: Some(c), ..Values::default() }
    }

    #[test]
    fn hypertension_defaults_to_below_140_over_90() {
        let t = defaults("hypertension");
        assert_eq!(defaults("原发性高血压"), t);
        assert!(evaluate(&t, Kind::BloodPressure, &bp(138.0, 88.0)).is_empty());
        let f = evaluate(&t, Kind::BloodPressure, &bp(152.0, 96.0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].reason, Reason::BloodPressureAboveTarget);
        assert_eq!(f[0].detail, "152/96 mmHg, target below 140/90 mmHg");
        // Either pressure at or over its limit is out of target.
        assert_eq!(evaluate(&t, Kind::BloodPressure, &bp(128.0, 90.0)).len(), 1);
        assert_eq!(evaluate(&t, Kind::BloodPressure, &bp(140.0, 70.0)).len(), 1);
        assert!(evaluate(&t, Kind::Glucose, &glucose(12.0, GlucoseContext::Fasting)).is_empty(), "glucose not watched");
        assert_eq!(watched(&t), vec![Kind::BloodPressure]);
    }

    #[test]
    fn diabetes_watches_fasting_and_postprandial_glucose_and_lows() {
        let t = defaults("Type 2 diabetes");
        assert_eq!(defaults("2型糖尿病"), t);
        assert!(evaluate(&t, Kind::Glucose, &glucose(6.9, GlucoseContext::Fasting)).is_empty());
        assert_eq!(
            evaluate(&t, Kind::Glucose, &glucose(7.0, GlucoseContext::Fasting))[0].reason,
            Reason::GlucoseAboveTarget
        );
        assert!(evaluate(&t, Kind::Glucose, &glucose(9.5, GlucoseContext::Postprandial)).is_empty());
        assert_eq!(
            evaluate(&t, Kind::Glucose, &glucose(10.2, GlucoseContext::Random))[0].reason,
            Reason::GlucoseAboveTarget
        );
        let low = evaluate(&t, Kind::Glucose, &glucose(3.2, GlucoseContext::Fasting));
        assert_eq!(low[0].reason, Reason::GlucoseLow);
        assert_eq!(low[0].detail, "3.2 mmol/L (fasting), below 3.9 mmol/L");
        // The diabetes guideline's pressure target is stricter.
        assert_eq!(evaluate(&t, Kind::BloodPressure, &bp(135.0, 78.0)).len(), 1);
        assert_eq!(watched(&t), vec![Kind::BloodPressure, Kind::Glucose]);
        assert_eq!(defaults("asthma"), Targets::default());
    }

    #[test]
    fn a_plan_sets_its_own_thresholds() {
        let t = Targets { systolic_below: Some(150.0), diastolic_below: Some(90.0), ..Targets::default() };
        assert!(check(&t).is_ok());
        assert!(evaluate(&t, Kind::BloodPressure, &bp(145.0, 85.0)).is_empty());
        assert_eq!(
            check(&Targets { systolic_below: Some(20.0), ..Targets::default() }),
            Err(("targets.systolic_below", "90 to 200 mmHg"))
        );
        assert_eq!(
            check(&Targets { measure_every_days: Some(0), ..Targets::default() }).unwrap_err().0,
            "targets.measure_every_days"
        );
    }

    #[test]
    fn silence_beyond_the_frequency_is_missing_once_per_episode() {
        let t = defaults("hypertension");
        let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let last: DateTime<Utc> = "2026-11-20T08:00:00Z".parse().unwrap();
        let day = |d: i64| last + Duration::days(d);
        assert_eq!(missing(&t, Kind::BloodPressure, Some(last), start, day(7)), None, "exactly 7 days is on time");
        let m = missing(&t, Kind::BloodPressure, Some(last), start, day(8)).unwrap();
        assert_eq!((m.reason, m.since, m.days), (Reason::BloodPressureMissing, last, 8));
        // Looking again later is the same episode (same `since`).
        assert_eq!(missing(&t, Kind::BloodPressure, Some(last), start, day(20)).unwrap().since, last);
        // No reading ever: counted from the plan's start.
        assert_eq!(missing(&t, Kind::BloodPressure, None, start, day(0)).unwrap().since, start);
        assert_eq!(missing(&Targets::default(), Kind::BloodPressure, None, start, day(30)), None, "no frequency");
        assert_eq!(missing(&t, Kind::Weight, None, start, day(30)), None);
    }

    #[test]
    fn only_readings_within_the_frequency_count() {
        let t = defaults("hypertension");
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        assert!(counts(&t, now - Duration::days(6), now));
        assert!(!counts(&t, now - Duration::days(8), now), "a backlog a week old is history");
        let daily = Targets { measure_every_days: Some(1), ..t };
        assert!(!counts(&daily, now - Duration::hours(25), now));
    }
}
