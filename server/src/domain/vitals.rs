//! The vital-sign values a checked reading carries, shared by the vitals store and the live
//! readings signaling forwards into a call ([`crate::vitals::reading`] checks them).

use serde::{Deserialize, Serialize};

named_enum! {
    GlucoseContext, "glucose context" {
        Fasting => "fasting",
        /// Two hours after a meal.
        Postprandial => "postprandial",
        Random => "random",
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

named_enum! {
    /// The kinds of item on a resident's timeline (`?kind=` and each item's `kind`).
    TimelineKind, "timeline kind" {
        Consultation => "consultation",
        Opinion => "opinion",
        Referral => "referral",
        FollowUp => "follow_up",
        File => "file",
        Ecg => "ecg",
        Vital => "vital",
    }
}

named_enum! {
    /// Where a worklist item stands.
    WorklistStatus, "worklist status" {
        Open => "open",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_kinds_and_glucose_contexts_round_trip() {
        for &k in TimelineKind::ALL {
            assert_eq!(k.as_str().parse::<TimelineKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!("photo".parse::<TimelineKind>().is_err());
        for &c in GlucoseContext::ALL {
            assert_eq!(c.as_str().parse::<GlucoseContext>(), Ok(c));
        }
        assert!("after_lunch".parse::<GlucoseContext>().is_err());
        for &w in WorklistStatus::ALL {
            assert_eq!(w.as_str().parse::<WorklistStatus>(), Ok(w));
        }
        assert!("snoozed".parse::<WorklistStatus>().is_err());
    }
}
