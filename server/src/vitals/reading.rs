//! One vital-sign reading as a device or a person sends it, checked and converted to the
//! stored units. Pure: no database, no clock (the caller passes "now").
//!
//! Stored units: mmHg, beats per minute, mmol/L, percent, kilograms, degrees Celsius.
//! Accepted besides: kPa for blood pressure, mg/dL for glucose, pounds, degrees Fahrenheit.
//! A value outside what a living person can show (or a device can measure) is refused with
//! the code `implausible_value` naming the field; a time in the future or older than
//! [`MAX_AGE_DAYS`] with `measured_at_out_of_range`; anything else malformed with
//! `validation_failed`.

use crate::domain::named_enum;
use crate::error::ErrorCode;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

pub use crate::domain::vitals::{GlucoseContext, Values};

/// A reading older than this is refused: a device whose clock was never set says 2000-01-01.
pub const MAX_AGE_DAYS: i64 = 365;
/// A reading up to this far ahead of the server's clock is taken (device clocks drift).
pub const FUTURE_SKEW_SECS: i64 = 300;

/// mg/dL per mmol/L of glucose (molar mass 180.16 g/mol).
pub const GLUCOSE_MG_DL_PER_MMOL_L: f64 = 18.016;
/// mmHg per kPa.
pub const MMHG_PER_KPA: f64 = 7.500_617;
/// kg per pound.
pub const KG_PER_LB: f64 = 0.453_592_37;

/// Ranges a reading must fall in (inclusive), in stored units. They bound what can be
/// measured on a living person, not what is healthy.
pub mod limits {
    pub const SYSTOLIC_MMHG: (f64, f64) = (40.0, 300.0);
    pub const DIASTOLIC_MMHG: (f64, f64) = (20.0, 200.0);
    pub const PULSE_BPM: (f64, f64) = (20.0, 300.0);
    pub const GLUCOSE_MMOL_L: (f64, f64) = (0.5, 50.0);
    pub const SPO2_PCT: (f64, f64) = (50.0, 100.0);
    pub const WEIGHT_KG: (f64, f64) = (0.5, 400.0);
    pub const TEMPERATURE_C: (f64, f64) = (25.0, 45.0);
}

named_enum! {
    Kind, "reading kind" {
        BloodPressure => "blood_pressure",
        Glucose => "glucose",
        Spo2 => "spo2",
        Weight => "weight",
        Temperature => "temperature",
        /// A single-lead ECG strip: an ECG file uploaded to a consultation of the patient.
        Ecg => "ecg",
    }
}

named_enum! {
    /// Where a reading was taken.
    Source, "reading source" {
        Home => "home",
        Kiosk => "kiosk",
        Clinic => "clinic",
    }
}

/// A reading as sent. Each kind takes its own fields (in one of the units named by the
/// field); a field of another kind is refused.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReading {
    pub kind: Kind,
    /// Chosen by the device (a UUID): a retry with the same id is answered `duplicate` and
    /// stores nothing.
    pub client_id: String,
    /// RFC 3339 with an offset; not in the future, not older than 365 days.
    pub measured_at: crate::db::ClientTime,
    pub source: Source,
    /// The measuring device as the sender names it (model, serial), up to 100 characters.
    #[serde(default)]
    pub device: Option<String>,
    /// The consultation during which it was taken (its call shows it live).
    #[serde(default)]
    pub consultation_id: Option<String>,
    #[serde(default)]
    pub systolic_mmhg: Option<f64>,
    #[serde(default)]
    pub diastolic_mmhg: Option<f64>,
    #[serde(default)]
    pub systolic_kpa: Option<f64>,
    #[serde(default)]
    pub diastolic_kpa: Option<f64>,
    /// With blood pressure and SpO2 (optional), or an ECG's heart rate.
    #[serde(default)]
    pub pulse_bpm: Option<f64>,
    #[serde(default)]
    pub glucose_mmol_l: Option<f64>,
    #[serde(default)]
    pub glucose_mg_dl: Option<f64>,
    /// fasting, postprandial (2 h after a meal) or random.
    #[serde(default)]
    pub glucose_context: Option<GlucoseContext>,
    #[serde(default)]
    pub spo2_pct: Option<f64>,
    #[serde(default)]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    pub weight_lb: Option<f64>,
    #[serde(default)]
    pub temperature_c: Option<f64>,
    #[serde(default)]
    pub temperature_f: Option<f64>,
    /// For an ECG strip: the id of the ECG file uploaded to a consultation of the patient.
    #[serde(default)]
    pub ecg_file_id: Option<String>,
}

/// A checked reading, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub kind: Kind,
    pub client_id: String,
    pub measured_at: DateTime<Utc>,
    pub source: Source,
    pub device: String,
    pub consultation_id: Option<String>,
    pub values: Values,
}

/// Why one field of a reading was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    /// `implausible_value`, `measured_at_out_of_range` or `validation_failed`.
    pub code: ErrorCode,
    pub message: String,
}

fn problem(field: &'static str, code: ErrorCode, message: impl Into<String>) -> Problem {
    Problem { field, code, message: message.into() }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Checks one value against its range, naming `field` (the field as sent) and the range in
/// the unit it was sent in.
fn in_range(
    problems: &mut Vec<Problem>,
    field: &'static str,
    value: f64,
    stored: f64,
    (lo, hi): (f64, f64),
    to_sent: impl Fn(f64) -> f64,
    unit: &str,
) -> Option<f64> {
    if !value.is_finite() {
        problems.push(problem(field, ErrorCode::ValidationFailed, "must be a number"));
        return None;
    }
    if !(lo..=hi).contains(&stored) {
        problems.push(problem(
            field,
            ErrorCode::ImplausibleValue,
            format!(
                "{value} {unit} cannot be measured on a living person: expected {} to {} {unit}",
                round(to_sent(lo), 1),
                round(to_sent(hi), 1)
            ),
        ));
        return None;
    }
    Some(stored)
}

/// One of two fields holding the same quantity in different units: exactly one when
/// `required`, at most one otherwise. Answers the value converted to the stored unit.
#[allow(clippy::too_many_arguments)]
fn either(
    problems: &mut Vec<Problem>,
    (field_a, a, unit_a): (&'static str, Option<f64>, &str),
    (field_b, b, unit_b, b_to_a): (&'static str, Option<f64>, &str, f64),
    range: (f64, f64),
    required: bool,
    places: i32,
) -> Option<f64> {
    match (a, b) {
        (Some(_), Some(_)) => {
            problems.push(problem(
                field_b,
                ErrorCode::ValidationFailed,
                format!("send either {field_a} or {field_b}, not both"),
            ));
            None
        }
        (Some(v), None) => in_range(problems, field_a, v, round(v, places), range, |x| x, unit_a),
        (None, Some(v)) => in_range(problems, field_b, v, round(v * b_to_a, places), range, |x| x / b_to_a, unit_b),
        (None, None) => {
            if required {
                problems.push(problem(field_a, ErrorCode::ValidationFailed, format!("required (or {field_b})")));
            }
            None
        }
    }
}

/// Checks and converts a reading received at `now`.
pub fn check(r: &NewReading, now: DateTime<Utc>) -> Result<Reading, Vec<Problem>> {
    let mut p = Vec::new();
    let measured_at = r.measured_at.utc();
    let device = check_common(&mut p, r, measured_at, now);
    check_fields_of_kind(&mut p, r);
    let values = values(&mut p, r);
    if !p.is_empty() {
        return Err(p);
    }
    Ok(Reading {
        kind: r.kind,
        client_id: r.client_id.to_ascii_lowercase(),
        measured_at,
        source: r.source,
        device,
        consultation_id: r.consultation_id.clone(),
        values,
    })
}

/// What every reading carries: its client id, a plausible time, the device's name (answered,
/// trimmed) and the consultation it names.
fn check_common(p: &mut Vec<Problem>, r: &NewReading, measured_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if uuid::Uuid::try_parse(&r.client_id).is_err() {
        p.push(problem("client_id", ErrorCode::ValidationFailed, "a UUID chosen by the device"));
    }
    if measured_at > now + Duration::seconds(FUTURE_SKEW_SECS) {
        p.push(problem("measured_at", ErrorCode::MeasuredAtOutOfRange, "lies in the future: check the device's clock"));
    } else if measured_at < now - Duration::days(MAX_AGE_DAYS) {
        p.push(problem(
            "measured_at",
            ErrorCode::MeasuredAtOutOfRange,
            format!("more than {MAX_AGE_DAYS} days ago: check the device's clock"),
        ));
    }
    let device = r.device.as_deref().unwrap_or("").trim().to_string();
    if device.chars().count() > 100 {
        p.push(problem("device", ErrorCode::ValidationFailed, "up to 100 characters"));
    }
    if let Some(c) = &r.consultation_id {
        if uuid::Uuid::try_parse(c).is_err() {
            p.push(problem("consultation_id", ErrorCode::ValidationFailed, "not a consultation id"));
        }
    }
    device
}

/// Refuses the fields that belong to another kind.
fn check_fields_of_kind(p: &mut Vec<Problem>, r: &NewReading) {
    let present: [(&'static str, bool, &[Kind]); 14] = [
        ("systolic_mmhg", r.systolic_mmhg.is_some(), &[Kind::BloodPressure]),
        ("diastolic_mmhg", r.diastolic_mmhg.is_some(), &[Kind::BloodPressure]),
        ("systolic_kpa", r.systolic_kpa.is_some(), &[Kind::BloodPressure]),
        ("diastolic_kpa", r.diastolic_kpa.is_some(), &[Kind::BloodPressure]),
        ("pulse_bpm", r.pulse_bpm.is_some(), &[Kind::BloodPressure, Kind::Spo2, Kind::Ecg]),
        ("glucose_mmol_l", r.glucose_mmol_l.is_some(), &[Kind::Glucose]),
        ("glucose_mg_dl", r.glucose_mg_dl.is_some(), &[Kind::Glucose]),
        ("glucose_context", r.glucose_context.is_some(), &[Kind::Glucose]),
        ("spo2_pct", r.spo2_pct.is_some(), &[Kind::Spo2]),
        ("weight_kg", r.weight_kg.is_some(), &[Kind::Weight]),
        ("weight_lb", r.weight_lb.is_some(), &[Kind::Weight]),
        ("temperature_c", r.temperature_c.is_some(), &[Kind::Temperature]),
        ("temperature_f", r.temperature_f.is_some(), &[Kind::Temperature]),
        ("ecg_file_id", r.ecg_file_id.is_some(), &[Kind::Ecg]),
    ];
    for (field, is_there, kinds) in present {
        if is_there && !kinds.contains(&r.kind) {
            p.push(problem(
                field,
                ErrorCode::ValidationFailed,
                format!("not a field of a {} reading", r.kind.as_str()),
            ));
        }
    }
}

/// The values of the reading's kind, in stored units, each checked against what a person
/// can show.
fn values(p: &mut Vec<Problem>, r: &NewReading) -> Values {
    let mut v = Values::default();
    match r.kind {
        Kind::BloodPressure => blood_pressure(p, r, &mut v),
        Kind::Glucose => {
            v.glucose_mmol_l = either(
                p,
                ("glucose_mmol_l", r.glucose_mmol_l, "mmol/L"),
                ("glucose_mg_dl", r.glucose_mg_dl, "mg/dL", 1.0 / GLUCOSE_MG_DL_PER_MMOL_L),
                limits::GLUCOSE_MMOL_L,
                true,
                1,
            );
            match r.glucose_context {
                Some(c) => v.glucose_context = Some(c),
                None => p.push(problem(
                    "glucose_context",
                    ErrorCode::ValidationFailed,
                    "required: fasting, postprandial or random",
                )),
            }
        }
        Kind::Spo2 => {
            v.spo2_pct = match r.spo2_pct {
                Some(x) => in_range(p, "spo2_pct", x, round(x, 0), limits::SPO2_PCT, |x| x, "%"),
                None => {
                    p.push(problem("spo2_pct", ErrorCode::ValidationFailed, "required"));
                    None
                }
            };
            v.pulse_bpm = pulse(p, r);
        }
        Kind::Weight => {
            v.weight_kg = either(
                p,
                ("weight_kg", r.weight_kg, "kg"),
                ("weight_lb", r.weight_lb, "lb", KG_PER_LB),
                limits::WEIGHT_KG,
                true,
                1,
            );
        }
        Kind::Temperature => v.temperature_c = temperature(p, r),
        Kind::Ecg => {
            match r.ecg_file_id.as_deref().map(uuid::Uuid::try_parse) {
                Some(Ok(id)) => v.ecg_file_id = Some(id.hyphenated().to_string()),
                Some(Err(_)) => p.push(problem("ecg_file_id", ErrorCode::ValidationFailed, "not a file id")),
                None => p.push(problem(
                    "ecg_file_id",
                    ErrorCode::ValidationFailed,
                    "required: the id of an uploaded ECG file",
                )),
            }
            v.pulse_bpm = pulse(p, r);
        }
    }
    v
}

/// Systolic and diastolic pressure (mmHg or kPa), the diastolic below the systolic, and the
/// pulse if sent.
fn blood_pressure(p: &mut Vec<Problem>, r: &NewReading, v: &mut Values) {
    v.systolic_mmhg = either(
        p,
        ("systolic_mmhg", r.systolic_mmhg, "mmHg"),
        ("systolic_kpa", r.systolic_kpa, "kPa", MMHG_PER_KPA),
        limits::SYSTOLIC_MMHG,
        true,
        0,
    );
    v.diastolic_mmhg = either(
        p,
        ("diastolic_mmhg", r.diastolic_mmhg, "mmHg"),
        ("diastolic_kpa", r.diastolic_kpa, "kPa", MMHG_PER_KPA),
        limits::DIASTOLIC_MMHG,
        true,
        0,
    );
    if let (Some(s), Some(d)) = (v.systolic_mmhg, v.diastolic_mmhg) {
        if d >= s {
            let field = if r.diastolic_mmhg.is_some() { "diastolic_mmhg" } else { "diastolic_kpa" };
            p.push(problem(field, ErrorCode::ImplausibleValue, "the diastolic pressure must be below the systolic"));
        }
    }
    v.pulse_bpm = pulse(p, r);
}

/// The temperature in °C, sent in °C or °F (not both).
fn temperature(p: &mut Vec<Problem>, r: &NewReading) -> Option<f64> {
    match (r.temperature_c, r.temperature_f) {
        (Some(_), Some(_)) => {
            p.push(problem(
                "temperature_f",
                ErrorCode::ValidationFailed,
                "send either temperature_c or temperature_f, not both",
            ));
            None
        }
        (Some(c), None) => in_range(p, "temperature_c", c, round(c, 1), limits::TEMPERATURE_C, |x| x, "°C"),
        (None, Some(f)) => in_range(
            p,
            "temperature_f",
            f,
            round((f - 32.0) * 5.0 / 9.0, 1),
            limits::TEMPERATURE_C,
            |c| c * 9.0 / 5.0 + 32.0,
            "°F",
        ),
        (None, None) => {
            p.push(problem("temperature_c", ErrorCode::ValidationFailed, "required (or temperature_f)"));
            None
        }
    }
}

/// The pulse sent with a reading of another kind, if any.
fn pulse(p: &mut Vec<Problem>, r: &NewReading) -> Option<f64> {
    r.pulse_bpm.and_then(|x| in_range(p, "pulse_bpm", x, round(x, 0), limits::PULSE_BPM, |x| x, "bpm"))
}

/// The reading in a few words, as shown in the call, the timeline and notifications:
/// `152/96 mmHg, pulse 78`.
pub fn summary(kind: Kind, v: &Values) -> String {
    let n = |x: Option<f64>| {
        x.map(|x| if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") }).unwrap_or_default()
    };
    let pulse = v.pulse_bpm.map(|_| format!(", pulse {} bpm", n(v.pulse_bpm))).unwrap_or_default();
    match kind {
        Kind::BloodPressure => format!("{}/{} mmHg{pulse}", n(v.systolic_mmhg), n(v.diastolic_mmhg)),
        Kind::Glucose => format!(
            "{} mmol/L ({})",
            n(v.glucose_mmol_l),
            v.glucose_context.map(GlucoseContext::as_str).unwrap_or("random")
        ),
        Kind::Spo2 => format!("SpO2 {}%{pulse}", n(v.spo2_pct)),
        Kind::Weight => format!("{} kg", n(v.weight_kg)),
        Kind::Temperature => format!("{} °C", n(v.temperature_c)),
        Kind::Ecg => format!("ECG strip{pulse}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-01T02:00:00Z".parse().unwrap()
    }

    fn parse(json: serde_json::Value) -> NewReading {
        serde_json::from_value(json).unwrap()
    }

    fn bp(extra: serde_json::Value) -> NewReading {
        let mut base = serde_json::json!({
            "kind": "blood_pressure", "measured_at": "2026-12-01T08:00:00+08:00", "source": "home",
            "client_id": "0192f0c4-7b1e-7cc3-a000-0123456789ab"
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        parse(base)
    }

    fn refused(r: &NewReading) -> Vec<(&'static str, ErrorCode)> {
        check(r, now()).expect_err("refused").into_iter().map(|p| (p.field, p.code)).collect()
    }

    #[test]
    fn a_blood_pressure_reading_is_taken_as_sent() {
        let r = check(&bp(serde_json::json!({"systolic_mmhg": 152, "diastolic_mmhg": 96, "pulse_bpm": 78})), now())
            .unwrap();
        assert_eq!(
            (r.values.systolic_mmhg, r.values.diastolic_mmhg, r.values.pulse_bpm),
            (Some(152.0), Some(96.0), Some(78.0))
        );
        assert_eq!(r.measured_at, "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(summary(r.kind, &r.values), "152/96 mmHg, pulse 78 bpm");
    }

    #[test]
    fn kilopascals_become_millimetres_of_mercury() {
        // 20.0/12.0 kPa is 150/90 mmHg.
        let r = check(&bp(serde_json::json!({"systolic_kpa": 20.0, "diastolic_kpa": 12.0})), now()).unwrap();
        assert_eq!((r.values.systolic_mmhg, r.values.diastolic_mmhg), (Some(150.0), Some(90.0)));
        assert_eq!(
            refused(&bp(serde_json::json!({"systolic_kpa": 20.0, "systolic_mmhg": 150, "diastolic_mmhg": 90}))),
            vec![("systolic_kpa", ErrorCode::ValidationFailed)]
        );
    }

    #[test]
    fn impossible_pressures_are_refused_naming_the_field() {
        assert_eq!(
            refused(&bp(serde_json::json!({"systolic_mmhg": 520, "diastolic_mmhg": 96}))),
            vec![("systolic_mmhg", ErrorCode::ImplausibleValue)]
        );
        assert_eq!(
            refused(&bp(serde_json::json!({"systolic_mmhg": 120, "diastolic_mmhg": 130}))),
            vec![("diastolic_mmhg", ErrorCode::ImplausibleValue)]
        );
        assert_eq!(
            refused(&bp(serde_json::json!({"systolic_mmhg": 120, "diastolic_mmhg": 80, "pulse_bpm": 0}))),
            vec![("pulse_bpm", ErrorCode::ImplausibleValue)]
        );
        assert_eq!(
            refused(&bp(serde_json::json!({"diastolic_mmhg": 80}))),
            vec![("systolic_mmhg", ErrorCode::ValidationFailed)]
        );
        let e = check(&bp(serde_json::json!({"systolic_kpa": 50, "diastolic_kpa": 10})), now()).unwrap_err();
        assert_eq!((e[0].field, e[0].code), ("systolic_kpa", ErrorCode::ImplausibleValue));
        assert!(e[0].message.contains("kPa"), "{}", e[0].message);
    }

    #[test]
    fn glucose_in_milligrams_per_decilitre_is_converted() {
        let g = parse(serde_json::json!({"kind": "glucose", "glucose_mg_dl": 126, "glucose_context": "fasting",
            "measured_at": "2026-12-01T07:00:00+08:00", "source": "home", "client_id": "0192f0c4-7b1e-7cc3-a000-0123456789ac"}));
        let r = check(&g, now()).unwrap();
        assert_eq!(r.values.glucose_mmol_l, Some(7.0));
        assert_eq!(r.values.glucose_context, Some(GlucoseContext::Fasting));
        let g = parse(
            serde_json::json!({"kind": "glucose", "glucose_mmol_l": 70, "measured_at": "2026-12-01T07:00:00+08:00",
            "source": "home", "client_id": "0192f0c4-7b1e-7cc3-a000-0123456789ac"}),
        );
        assert_eq!(
            refused(&g),
            vec![("glucose_mmol_l", ErrorCode::ImplausibleValue), ("glucose_context", ErrorCode::ValidationFailed)]
        );
    }

    #[test]
    fn fahrenheit_pounds_and_oxygen_saturation() {
        let base = |kind: &str, extra: serde_json::Value| {
            let mut b = serde_json::json!({"kind": kind, "measured_at": "2026-12-01T07:00:00+08:00", "source": "kiosk",
                "client_id": "0192f0c4-7b1e-7cc3-a000-0123456789ad"});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            parse(b)
        };
        let t = check(&base("temperature", serde_json::json!({"temperature_f": 98.6})), now()).unwrap();
        assert_eq!(t.values.temperature_c, Some(37.0));
        assert_eq!(
            refused(&base("temperature", serde_json::json!({"temperature_c": 52}))),
            vec![("temperature_c", ErrorCode::ImplausibleValue)]
        );
        let w = check(&base("weight", serde_json::json!({"weight_lb": 154.3})), now()).unwrap();
        assert_eq!(w.values.weight_kg, Some(70.0));
        assert_eq!(
            refused(&base("spo2", serde_json::json!({"spo2_pct": 101}))),
            vec![("spo2_pct", ErrorCode::ImplausibleValue)]
        );
        assert_eq!(
            refused(&base("spo2", serde_json::json!({"spo2_pct": 97, "weight_kg": 60}))),
            vec![("weight_kg", ErrorCode::ValidationFailed)]
        );
        assert_eq!(refused(&base("ecg", serde_json::json!({}))), vec![("ecg_file_id", ErrorCode::ValidationFailed)]);
    }

    #[test]
    fn times_in_the_future_or_long_ago_are_refused() {
        let at = |t: &str| {
            let mut r = bp(serde_json::json!({"systolic_mmhg": 130, "diastolic_mmhg": 80}));
            r.measured_at = crate::db::ClientTime::parse(t).unwrap();
            r
        };
        assert!(check(&at("2026-12-01T10:04:00+08:00"), now()).is_ok(), "a few minutes of clock drift");
        assert_eq!(refused(&at("2026-12-01T11:00:00+08:00")), vec![("measured_at", ErrorCode::MeasuredAtOutOfRange)]);
        assert_eq!(refused(&at("2000-01-01T00:00:00Z")), vec![("measured_at", ErrorCode::MeasuredAtOutOfRange)]);
    }

    #[test]
    fn the_client_id_is_a_uuid() {
        let mut r = bp(serde_json::json!({"systolic_mmhg": 130, "diastolic_mmhg": 80}));
        r.client_id = "reading-1".into();
        assert_eq!(refused(&r), vec![("client_id", ErrorCode::ValidationFailed)]);
    }
}
