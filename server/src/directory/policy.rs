//! Who may manage which account: decided by role hierarchy AND organisation, pure.
//!
//! - An admin manages every account (but makes no patient login and sets no patient's
//!   password: that would open her record to someone in no care of her); nobody else
//!   touches an admin's account.
//! - A coordinator manages the community doctors, experts and patients of its own hospital
//!   and of the centres linked to it; coordinators are managed by admins.
//! - Nobody changes their own role or status; one's own password is changed with the current
//!   one (`POST /api/v1/me/password`), never through account management.
//! - Roles change only between admin, coordinator and community doctor (expert and patient
//!   accounts carry a profile or a patient record), and only by an admin.

use crate::domain::people::Role;

/// The caller managing accounts, with the organisations it manages.
#[derive(Debug, Clone)]
pub struct Manager<'a> {
    pub id: &'a str,
    pub role: Role,
    pub org: &'a str,
    /// Centres linked to the manager's hospital.
    pub linked_centres: &'a [String],
}

/// An account as the rules see it (existing, or about to be created).
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    pub id: &'a str,
    pub role: Role,
    pub org: &'a str,
}

/// One change to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    DisplayName,
    /// Setting a one-time password for someone else.
    ResetPassword,
    Active,
    Department,
    Role(Role),
    /// An expert's title, specialties or time zone: what matching and the pool requests they
    /// see are decided by.
    ExpertProfile,
}

/// Why a change is refused: `Hidden` answers 404 (the caller may not even see the account),
/// `Forbidden` 403 with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Hidden,
    Forbidden(&'static str),
}

/// Whether `m` manages what belongs to organisation `org` (its accounts, its devices): an
/// admin every organisation, a coordinator its own hospital and the centres linked to it.
pub fn manages_organisation(m: &Manager<'_>, org: &str) -> bool {
    match m.role {
        Role::Admin => true,
        Role::Coordinator => org == m.org || m.linked_centres.iter().any(|c| c == org),
        _ => false,
    }
}

/// Whether `m` may see the account at all (read it, list it).
pub fn may_see(m: &Manager<'_>, a: &Account<'_>) -> bool {
    match m.role {
        Role::Admin | Role::Coordinator => manages_organisation(m, a.org),
        _ => m.id == a.id,
    }
}

fn manages(m: &Manager<'_>, a: &Account<'_>) -> bool {
    match m.role {
        Role::Admin => true,
        Role::Coordinator => {
            matches!(a.role, Role::CommunityDoctor | Role::Expert | Role::Patient) && manages_organisation(m, a.org)
        }
        _ => false,
    }
}

/// May `m` make `change` to `a`?
pub fn may_change(m: &Manager<'_>, a: &Account<'_>, change: Change) -> Result<(), Refusal> {
    let own = m.id == a.id;
    if own {
        return match change {
            Change::DisplayName => Ok(()),
            Change::ResetPassword => {
                Err(Refusal::Forbidden("change your own password with the current one (POST /api/v1/me/password)"))
            }
            Change::Role(_) => Err(Refusal::Forbidden("nobody changes their own role")),
            Change::Active => Err(Refusal::Forbidden("nobody deactivates their own account")),
            Change::Department | Change::Create | Change::ExpertProfile => {
                Err(Refusal::Forbidden("an account does not manage itself"))
            }
        };
    }
    if change != Change::Create && !may_see(m, a) {
        return Err(Refusal::Hidden);
    }
    if !manages(m, a) {
        return Err(Refusal::Forbidden(match (m.role, a.role) {
            (Role::Coordinator, Role::Admin) => "nobody but an admin manages an admin account",
            (Role::Coordinator, Role::Coordinator) => "coordinator accounts are managed by admins",
            (Role::Coordinator, _) => "coordinators manage accounts of their own hospital and its linked centres",
            _ => "only admins and coordinators manage accounts",
        }));
    }
    // A patient's login opens her whole record, files and images: the admin, who takes part
    // in no care, neither makes one nor sets its password (which would let them sign in as
    // her); her consortium's coordinators do, who see her record.
    if m.role == Role::Admin && a.role == Role::Patient && matches!(change, Change::Create | Change::ResetPassword) {
        return Err(Refusal::Forbidden(
            "a patient's login and its password are set by the coordinators of her consortium, who see her record",
        ));
    }
    if let Change::Role(to) = change {
        if m.role != Role::Admin {
            return Err(Refusal::Forbidden("only admins change roles"));
        }
        let plain = |r: Role| matches!(r, Role::Admin | Role::Coordinator | Role::CommunityDoctor);
        if !plain(a.role) || !plain(to) {
            return Err(Refusal::Forbidden(
                "roles change only between admin, coordinator and community doctor; expert and patient accounts are created as such",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSPITAL: &str = "hospital";
    const OTHER_HOSPITAL: &str = "other-hospital";
    const CENTRE: &str = "centre";
    const FAR_CENTRE: &str = "far-centre";

    fn linked() -> Vec<String> {
        vec![CENTRE.to_string()]
    }

    fn coordinator(linked: &[String]) -> Manager<'_> {
        Manager { id: "coord", role: Role::Coordinator, org: HOSPITAL, linked_centres: linked }
    }

    fn admin() -> Manager<'static> {
        Manager { id: "admin", role: Role::Admin, org: HOSPITAL, linked_centres: &[] }
    }

    fn account(id: &'static str, role: Role, org: &'static str) -> Account<'static> {
        Account { id, role, org }
    }

    #[test]
    fn the_admin_neither_makes_a_patient_login_nor_sets_its_password() {
        let zhang = account("zhang", Role::Patient, CENTRE);
        for change in [Change::Create, Change::ResetPassword] {
            assert!(matches!(may_change(&admin(), &zhang, change), Err(Refusal::Forbidden(_))), "{change:?}");
        }
        // Keeping the account running stays the admin's; her coordinators set her password.
        assert_eq!(may_change(&admin(), &zhang, Change::Active), Ok(()));
        assert_eq!(may_change(&admin(), &zhang, Change::DisplayName), Ok(()));
        let l = linked();
        assert_eq!(may_change(&coordinator(&l), &zhang, Change::ResetPassword), Ok(()));
    }

    #[test]
    fn a_coordinator_never_touches_an_admin_or_another_coordinator() {
        let l = linked();
        let c = coordinator(&l);
        for change in [Change::ResetPassword, Change::Active, Change::DisplayName, Change::Department] {
            assert!(matches!(
                may_change(&c, &account("root", Role::Admin, HOSPITAL), change),
                Err(Refusal::Forbidden(_))
            ));
            assert!(matches!(
                may_change(&c, &account("c2", Role::Coordinator, HOSPITAL), change),
                Err(Refusal::Forbidden(_))
            ));
        }
        assert!(may_change(&c, &account("new", Role::Admin, HOSPITAL), Change::Create).is_err());
    }

    #[test]
    fn a_coordinator_manages_clinicians_and_patients_of_its_hospital_and_linked_centres_only() {
        let l = linked();
        let c = coordinator(&l);
        for (role, org) in [(Role::Expert, HOSPITAL), (Role::CommunityDoctor, CENTRE), (Role::Patient, CENTRE)] {
            assert_eq!(may_change(&c, &account("x", role, org), Change::ResetPassword), Ok(()));
            assert_eq!(may_change(&c, &account("x", role, org), Change::Active), Ok(()));
            assert_eq!(may_change(&c, &account("x", role, org), Change::Create), Ok(()));
        }
        // Unlinked organisations: not even visible; creating there is forbidden.
        for org in [FAR_CENTRE, OTHER_HOSPITAL] {
            assert_eq!(may_change(&c, &account("x", Role::CommunityDoctor, org), Change::Active), Err(Refusal::Hidden));
            assert!(matches!(
                may_change(&c, &account("x", Role::CommunityDoctor, org), Change::Create),
                Err(Refusal::Forbidden(_))
            ));
        }
        assert!(may_change(&c, &account("x", Role::CommunityDoctor, CENTRE), Change::Role(Role::Coordinator)).is_err());
    }

    #[test]
    fn nobody_changes_their_own_role_status_or_password_through_management() {
        let a = admin();
        let me = account("admin", Role::Admin, HOSPITAL);
        assert_eq!(may_change(&a, &me, Change::DisplayName), Ok(()));
        for change in [Change::Role(Role::CommunityDoctor), Change::Active, Change::ResetPassword, Change::Department] {
            assert!(matches!(may_change(&a, &me, change), Err(Refusal::Forbidden(_))), "{change:?}");
        }
        let doctor = Manager { id: "doc", role: Role::CommunityDoctor, org: CENTRE, linked_centres: &[] };
        assert_eq!(may_change(&doctor, &account("doc", Role::CommunityDoctor, CENTRE), Change::DisplayName), Ok(()));
        assert_eq!(
            may_change(&doctor, &account("doc", Role::CommunityDoctor, CENTRE), Change::Role(Role::Admin)),
            Err(Refusal::Forbidden("nobody changes their own role"))
        );
        assert_eq!(
            may_change(&doctor, &account("other", Role::CommunityDoctor, CENTRE), Change::DisplayName),
            Err(Refusal::Hidden)
        );
    }

    #[test]
    fn admins_change_roles_only_between_plain_roles() {
        let a = admin();
        assert_eq!(
            may_change(&a, &account("d", Role::CommunityDoctor, CENTRE), Change::Role(Role::Coordinator)),
            Ok(())
        );
        assert!(may_change(&a, &account("e", Role::Expert, HOSPITAL), Change::Role(Role::Coordinator)).is_err());
        assert!(may_change(&a, &account("d", Role::CommunityDoctor, CENTRE), Change::Role(Role::Patient)).is_err());
    }

    #[test]
    fn an_experts_profile_is_changed_by_those_who_manage_the_account_never_by_the_expert() {
        let expert = account("e", Role::Expert, HOSPITAL);
        assert_eq!(may_change(&admin(), &expert, Change::ExpertProfile), Ok(()));
        let linked = [CENTRE.to_string()];
        assert_eq!(may_change(&coordinator(&linked), &expert, Change::ExpertProfile), Ok(()));
        let herself = Manager { id: "e", role: Role::Expert, org: HOSPITAL, linked_centres: &[] };
        assert_eq!(
            may_change(&herself, &expert, Change::ExpertProfile),
            Err(Refusal::Forbidden("an account does not manage itself"))
        );
    }
}
