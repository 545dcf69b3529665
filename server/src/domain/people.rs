//! People, organisations and what identifies them: account roles, organisation kinds,
//! device kinds and patient identifier kinds, made with [`named_enum!`](super::named_enum):
//! each serialises as the snake_case string stored in the database, and decoding a stored value
//! that is not one of them is an error ([`UnknownName`](super::UnknownName)), never a silent
//! default. (Plain comments on the enums: a doc comment would become their schema's
//! description in the API document.)

// The one role of an account.
named_enum! {
    Role, "role" {
        Admin => "admin",
        Coordinator => "coordinator",
        CommunityDoctor => "community_doctor",
        Expert => "expert",
        Patient => "patient",
    }
}

impl Role {
    /// Clinicians: the roles that treat patients.
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::CommunityDoctor | Role::Expert)
    }

    pub fn is_manager(self) -> bool {
        matches!(self, Role::Admin | Role::Coordinator)
    }
}

named_enum! {
    /// What an organisation of the consortium is.
    OrgKind, "organisation kind" {
        TertiaryHospital => "tertiary_hospital",
        CommunityHealthCentre => "community_health_centre",
        MedicalCorner => "medical_corner",
    }
}

impl OrgKind {
    /// A community health centre or a medical corner: what a hospital links to.
    pub fn is_centre(self) -> bool {
        matches!(self, OrgKind::CommunityHealthCentre | OrgKind::MedicalCorner)
    }
}

// A device that acts without a person at the keyboard.
named_enum! {
    DeviceKind, "device kind" {
        /// A check-in kiosk at a medical corner or clinic (a browser opened with `?kiosk=1`).
        Kiosk => "kiosk",
        /// A measuring device at a patient's home, bound to that patient.
        Home => "home",
        /// A measuring device in a clinic.
        Clinic => "clinic",
    }
}

// A patient identifier beyond the resident ID.
named_enum! {
    IdentifierKind, "identifier kind" {
        /// The electronic health card (电子健康卡).
        HealthCard => "health_card",
        /// The medical insurance number (医保号).
        Insurance => "insurance",
        Phone => "phone",
    }
}

// A patient's administrative sex, as FHIR's AdministrativeGender names it.
named_enum! {
    Sex, "sex" {
        Female => "female",
        Male => "male",
        Other => "other",
        Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnknownName;
    use serde::{Deserialize, Serialize};

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
        round_trips(Sex::ALL);
        assert_eq!(Role::CommunityDoctor.as_str(), "community_doctor");
        assert_eq!(OrgKind::CommunityHealthCentre.as_str(), "community_health_centre");
        assert_eq!(IdentifierKind::HealthCard.as_str(), "health_card");
    }

    #[test]
    fn an_unknown_stored_value_is_an_error() {
        let e = "superuser".parse::<Role>().unwrap_err();
        assert_eq!(e, UnknownName { kind: "role", value: "superuser".into() });
        assert!(OrgKind::try_from("clinic".to_string()).is_err());
        assert!("".parse::<DeviceKind>().is_err());
        assert!("Health_Card".parse::<IdentifierKind>().is_err());
    }
}
