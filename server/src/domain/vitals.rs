//! The vital-sign values a checked reading carries, shared by the vitals store and the live
//! readings signaling forwards into a call ([`crate::vitals::reading`] checks them).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GlucoseContext {
    Fasting,
    /// Two hours after a meal.
    Postprandial,
    Random,
}

impl GlucoseContext {
    pub fn as_str(self) -> &'static str {
        match self {
            GlucoseContext::Fasting => "fasting",
            GlucoseContext::Postprandial => "postprandial",
            GlucoseContext::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<GlucoseContext> {
        [GlucoseContext::Fasting, GlucoseContext::Postprandial, GlucoseContext::Random]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// The values of a checked reading, in stored units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Values {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systolic_mmhg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diastolic_mmhg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulse_bpm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glucose_mmol_l: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glucose_context: Option<GlucoseContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spo2_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecg_file_id: Option<String>,
}

// Values are checked finite before they are kept, so equality is an equivalence.
impl Eq for Values {}

/// The kinds of item on a resident's timeline (`?kind=` and each item's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Consultation,
    Opinion,
    Referral,
    FollowUp,
    File,
    Ecg,
    Vital,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 7] = [
        TimelineKind::Consultation,
        TimelineKind::Opinion,
        TimelineKind::Referral,
        TimelineKind::FollowUp,
        TimelineKind::File,
        TimelineKind::Ecg,
        TimelineKind::Vital,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Consultation => "consultation",
            TimelineKind::Opinion => "opinion",
            TimelineKind::Referral => "referral",
            TimelineKind::FollowUp => "follow_up",
            TimelineKind::File => "file",
            TimelineKind::Ecg => "ecg",
            TimelineKind::Vital => "vital",
        }
    }

    pub fn parse(s: &str) -> Option<TimelineKind> {
        TimelineKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a worklist item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorklistStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl WorklistStatus {
    pub const ALL: [WorklistStatus; 3] = [WorklistStatus::Open, WorklistStatus::Acknowledged, WorklistStatus::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            WorklistStatus::Open => "open",
            WorklistStatus::Acknowledged => "acknowledged",
            WorklistStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<WorklistStatus> {
        WorklistStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// A status read from the database; an unknown one is an error, never a default.
    pub fn from_db(s: &str) -> crate::error::ApiResult<WorklistStatus> {
        WorklistStatus::parse(s)
            .ok_or_else(|| crate::error::ApiError::internal(format!("unknown worklist status {s:?} stored")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_kinds_and_glucose_contexts_round_trip() {
        for k in TimelineKind::ALL {
            assert_eq!(TimelineKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(TimelineKind::parse("photo"), None);
        for c in [GlucoseContext::Fasting, GlucoseContext::Postprandial, GlucoseContext::Random] {
            assert_eq!(GlucoseContext::parse(c.as_str()), Some(c));
        }
        assert_eq!(GlucoseContext::parse("after_lunch"), None);
        for w in WorklistStatus::ALL {
            assert_eq!(WorklistStatus::from_db(w.as_str()).unwrap(), w);
        }
        assert!(WorklistStatus::from_db("snoozed").is_err());
    }
}
