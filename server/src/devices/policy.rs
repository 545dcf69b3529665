//! Who may issue, see and revoke which device: decided by role AND relationship, pure.
//!
//! - An admin manages every device.
//! - A coordinator manages the devices of the organisations it manages (its hospital and the
//!   centres linked to it: [`crate::directory::policy::manages_organisation`]).
//! - A community doctor manages the `home` devices of their own centre that are bound to one
//!   of the centre's patients (a blood-pressure cuff lent to a resident), and no others.
//! - Nobody else manages devices.

use super::DeviceKind;
use crate::directory::policy::{manages_organisation, Manager};
use crate::domain::people::Role;

/// A device as the rules see it (existing, or about to be issued).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub org: &'a str,
    pub kind: DeviceKind,
    /// The home organisation of the patient a home device is bound to.
    pub patient_home_org: Option<&'a str>,
}

/// Why an action is refused: `Hidden` answers 404 (the caller may not even see the device),
/// `Forbidden` 403 with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Hidden,
    Forbidden(&'static str),
}

fn doctor_manages(m: &Manager<'_>, t: &Target<'_>) -> bool {
    m.role == Role::CommunityDoctor
        && t.kind == DeviceKind::Home
        && t.org == m.org
        && t.patient_home_org.is_some_and(|o| o == m.org)
}

/// Whether `m` may see the device (list it).
pub fn may_see(m: &Manager<'_>, t: &Target<'_>) -> bool {
    match m.role {
        Role::Admin | Role::Coordinator => manages_organisation(m, t.org),
        Role::CommunityDoctor => doctor_manages(m, t),
        Role::Expert | Role::Patient => false,
    }
}

/// Whether `m` may list devices at all (the list is then filtered by [`may_see`]).
pub fn may_list(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Coordinator | Role::CommunityDoctor)
}

/// May `m` issue the device `t`?
pub fn may_issue(m: &Manager<'_>, t: &Target<'_>) -> Result<(), Refusal> {
    match m.role {
        Role::Admin => Ok(()),
        Role::Coordinator if manages_organisation(m, t.org) => Ok(()),
        Role::Coordinator => {
            Err(Refusal::Forbidden("coordinators issue devices for their own hospital and the centres linked to it"))
        }
        Role::CommunityDoctor if doctor_manages(m, t) => Ok(()),
        Role::CommunityDoctor => {
            Err(Refusal::Forbidden("community doctors issue only home devices bound to a patient of their own centre"))
        }
        Role::Expert | Role::Patient => {
            Err(Refusal::Forbidden("only admins, coordinators and community doctors issue devices"))
        }
    }
}

/// May `m` revoke the (existing) device `t`?
pub fn may_revoke(m: &Manager<'_>, t: &Target<'_>) -> Result<(), Refusal> {
    if !may_list(m.role) {
        return Err(Refusal::Forbidden("only admins, coordinators and community doctors revoke devices"));
    }
    if !may_see(m, t) {
        return Err(Refusal::Hidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSPITAL: &str = "hospital";
    const CENTRE: &str = "centre";
    const FAR_CENTRE: &str = "far-centre";

    fn m<'a>(role: Role, org: &'a str, linked: &'a [String]) -> Manager<'a> {
        Manager { id: "me", role, org, linked_centres: linked }
    }

    fn kiosk(org: &str) -> Target<'_> {
        Target { org, kind: DeviceKind::Kiosk, patient_home_org: None }
    }

    fn home<'a>(org: &'a str, patient_org: &'a str) -> Target<'a> {
        Target { org, kind: DeviceKind::Home, patient_home_org: Some(patient_org) }
    }

    #[test]
    fn admins_manage_every_device() {
        let a = m(Role::Admin, HOSPITAL, &[]);
        assert_eq!(may_issue(&a, &kiosk(FAR_CENTRE)), Ok(()));
        assert_eq!(may_revoke(&a, &home(CENTRE, CENTRE)), Ok(()));
    }

    #[test]
    fn coordinators_manage_devices_of_their_hospital_and_linked_centres_only() {
        let linked = vec![CENTRE.to_string()];
        let c = m(Role::Coordinator, HOSPITAL, &linked);
        for org in [HOSPITAL, CENTRE] {
            assert_eq!(may_issue(&c, &kiosk(org)), Ok(()));
            assert_eq!(may_revoke(&c, &kiosk(org)), Ok(()));
        }
        assert!(matches!(may_issue(&c, &kiosk(FAR_CENTRE)), Err(Refusal::Forbidden(_))));
        assert_eq!(may_revoke(&c, &kiosk(FAR_CENTRE)), Err(Refusal::Hidden));
        assert!(!may_see(&c, &home(FAR_CENTRE, FAR_CENTRE)));
    }

    #[test]
    fn a_community_doctor_manages_only_home_devices_of_their_centres_patients() {
        let d = m(Role::CommunityDoctor, CENTRE, &[]);
        assert_eq!(may_issue(&d, &home(CENTRE, CENTRE)), Ok(()));
        assert_eq!(may_revoke(&d, &home(CENTRE, CENTRE)), Ok(()));
        // A kiosk of their own centre: not theirs to issue, and not shown to them.
        assert!(matches!(may_issue(&d, &kiosk(CENTRE)), Err(Refusal::Forbidden(_))));
        assert_eq!(may_revoke(&d, &kiosk(CENTRE)), Err(Refusal::Hidden));
        // A home device without a patient, or for another centre's patient.
        let unbound = Target { org: CENTRE, kind: DeviceKind::Home, patient_home_org: None };
        assert!(matches!(may_issue(&d, &unbound), Err(Refusal::Forbidden(_))));
        assert!(matches!(may_issue(&d, &home(CENTRE, FAR_CENTRE)), Err(Refusal::Forbidden(_))));
        assert_eq!(may_revoke(&d, &home(FAR_CENTRE, FAR_CENTRE)), Err(Refusal::Hidden));
    }

    #[test]
    fn experts_and_patients_manage_no_device() {
        for role in [Role::Expert, Role::Patient] {
            let x = m(role, CENTRE, &[]);
            assert!(!may_list(role));
            assert!(matches!(may_issue(&x, &home(CENTRE, CENTRE)), Err(Refusal::Forbidden(_))));
            assert!(matches!(may_revoke(&x, &home(CENTRE, CENTRE)), Err(Refusal::Forbidden(_))));
        }
    }
}
