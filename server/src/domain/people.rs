//! People, organisations and what identifies them: account roles, organisation kinds,
//! device kinds and patient identifier kinds. Each enum serialises as the snake_case string
//! stored in the database; decoding a stored value that is not one of them is an error
//! ([`UnknownValue`]), never a silent default.

use serde::{Deserialize, Serialize};

/// A stored string that names none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.value)
    }
}

impl std::error::Error for UnknownValue {}

impl From<UnknownValue> for crate::error::ApiError {
    fn from(e: UnknownValue) -> Self {
        crate::error::ApiError::internal(format!("stored {}", e))
    }
}

/// Declares `as_str`, `parse` (`None` on an unknown string), `decode` (an [`UnknownValue`]
/// error) and `TryFrom<String>` (for `#[sqlx(try_from = "String")]` row fields).
macro_rules! vocabulary {
    ($ty:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }

            /// A stored value: an error if it names none of the values.
            pub fn decode(s: &str) -> Result<$ty, UnknownValue> {
                $ty::parse(s).ok_or_else(|| UnknownValue { what: $what, value: s.to_string() })
            }
        }

        impl TryFrom<String> for $ty {
            type Error = UnknownValue;
            fn try_from(s: String) -> Result<$ty, UnknownValue> {
                $ty::decode(&s)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// The one role of an account. (Plain comments on the enums of the API: a doc comment would
// become their schema's description.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Coordinator,
    CommunityDoctor,
    Expert,
    Patient,
}

vocabulary!(Role, "role", {
    Admin => "admin",
    Coordinator => "coordinator",
    CommunityDoctor => "community_doctor",
    Expert => "expert",
    Patient => "patient",
});

impl Role {
    /// Clinicians: the roles that treat patients.
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::CommunityDoctor | Role::Expert)
    }

    pub fn is_manager(self) -> bool {
        matches!(self, Role::Admin | Role::Coordinator)
    }
}

/// What an organisation of the consortium is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    TertiaryHospital,
    CommunityHealthCentre,
    MedicalCorner,
}

vocabulary!(OrgKind, "organisation kind", {
    TertiaryHospital => "tertiary_hospital",
    CommunityHealthCentre => "community_health_centre",
    MedicalCorner => "medical_corner",
});

impl OrgKind {
    /// A community health centre or a medical corner: what a hospital links to.
    pub fn is_centre(self) -> bool {
        matches!(self, OrgKind::CommunityHealthCentre | OrgKind::MedicalCorner)
    }
}

// A device that acts without a person at the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A check-in kiosk at a medical corner or clinic (a browser opened with `?kiosk=1`).
    Kiosk,
    /// A measuring device at a patient's home, bound to that patient.
    Home,
    /// A measuring device in a clinic.
    Clinic,
}

vocabulary!(DeviceKind, "device kind", {
    Kiosk => "kiosk",
    Home => "home",
    Clinic => "clinic",
});

// A patient identifier beyond the resident ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// The electronic health card (电子健康卡).
    HealthCard,
    /// The medical insurance number (医保号).
    Insurance,
    Phone,
}

vocabulary!(IdentifierKind, "identifier kind", {
    HealthCard => "health_card",
    Insurance => "insurance",
    Phone => "phone",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings on the wire (serde) are the stored ones (`as_str`), and each decodes back.
    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + Serialize + for<'de> Deserialize<'de> + TryFrom<String>,
        T: std::fmt::Display,
    {
        for v in all {
            let wire = serde_json::to_value(v).unwrap();
            assert_eq!(wire, serde_json::Value::String(v.to_string()));
            assert_eq!(serde_json::from_value::<T>(wire).unwrap(), *v);
            assert!(T::try_from(v.to_string()).ok() == Some(*v));
        }
    }

    #[test]
    fn wire_and_stored_strings_agree() {
        round_trips(Role::ALL);
        round_trips(OrgKind::ALL);
        round_trips(DeviceKind::ALL);
        round_trips(IdentifierKind::ALL);
        assert_eq!(Role::CommunityDoctor.as_str(), "community_doctor");
        assert_eq!(OrgKind::CommunityHealthCentre.as_str(), "community_health_centre");
        assert_eq!(IdentifierKind::HealthCard.as_str(), "health_card");
    }

    #[test]
    fn an_unknown_stored_value_is_an_error() {
        let e = Role::decode("superuser").unwrap_err();
        assert_eq!(e, UnknownValue { what: "role", value: "superuser".into() });
        assert!(OrgKind::try_from("clinic".to_string()).is_err());
        assert!(DeviceKind::decode("").is_err());
        assert!(IdentifierKind::decode("Health_Card").is_err());
    }
}
