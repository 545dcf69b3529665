//! The directory of the consortium: organisations (tertiary hospitals, community health
//! centres, medical corners), consortium links between a hospital and its centres,
//! departments and specialties, user accounts with one role each (and their password
//! hashes, [`password`]), and expert profiles. Who may manage which account is [`policy`];
//! the HTTP side is [`routes`], all SQL is in [`store`].

pub mod password;
pub mod policy;
pub mod routes;
pub mod store;

pub use routes::routes;

use crate::db::{new_id, now_ts, Db};
use crate::domain::people::{OrgKind, Role};
use crate::error::{ApiError, ApiResult};
use crate::principal::AuthUser;
use password::hash_password;
use serde::{Deserialize, Serialize};

pub const TITLES: [&str; 4] = ["resident", "attending", "associate_chief", "chief"];

/// A username: 3 to 64 characters of lowercase letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Username, ApiError> {
        let s = s.trim().to_lowercase();
        let ok = (3..=64).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Username(s))
        } else {
            Err(ApiError::validation("username", "3-64 characters: lowercase letters, digits, '.', '_' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn validate_password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < 10 || p.len() > 200 {
        return Err(ApiError::validation("password", "between 10 and 200 characters"));
    }
    Ok(())
}

fn non_empty(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::validation(field, format!("must be 1 to {max} characters")));
    }
    Ok(v.to_string())
}

// ---------- organisations ----------

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: OrgKind,
    pub address: String,
    pub active: i64,
    pub created_at: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub address: String,
}

pub async fn create_organisation(db: &Db, org: &NewOrganisation) -> ApiResult<String> {
    let name = non_empty("name", &org.name, 200)?;
    let kind: OrgKind = org.kind.parse().map_err(|_| {
        let all: Vec<&str> = OrgKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::validation("kind", format!("one of {}", all.join(", ")))
    })?;
    store::insert_organisation(db, &name, kind, org.address.trim()).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationPatch {
    pub name: Option<String>,
    pub address: Option<String>,
    pub active: Option<bool>,
}

// ---------- consortium links ----------

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ConsortiumLink {
    pub id: String,
    pub hospital_id: String,
    pub hospital_name: String,
    pub centre_id: String,
    pub centre_name: String,
    pub created_at: String,
}

/// A link just ended.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EndedLink {
    pub id: String,
    pub hospital_id: String,
    pub centre_id: String,
    pub reason: String,
}

/// Why a link ends (required: the centre's people lose their hospital's coordinators).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndLink {
    pub reason: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub hospital_id: String,
    pub centre_id: String,
}

/// Links a centre to a hospital (the demo data's links; no actor, no audit event).
pub async fn create_link(db: &Db, hospital_id: &str, centre_id: &str) -> ApiResult<String> {
    check_link_kinds(db, hospital_id, centre_id).await?;
    let mut tx = db.begin_write().await?;
    let id = store::insert_link(&mut tx, hospital_id, centre_id).await?;
    tx.commit().await?;
    Ok(id)
}

/// Links a centre to a hospital on behalf of `actor`, audited. A link gives the hospital's
/// coordinators the management of the centre (its accounts, devices and patients' records as
/// coordinators see them), so a coordinator links only a centre that no hospital holds yet
/// (one just added); a centre already in a hospital's consortium is moved or shared by an
/// admin.
pub async fn create_link_as(db: &Db, actor: &AuthUser, hospital_id: &str, centre_id: &str) -> ApiResult<String> {
    check_link_kinds(db, hospital_id, centre_id).await?;
    let mut tx = db.begin_write().await?;
    store::lock_organisation(&mut tx, centre_id).await?;
    if actor.role == Role::Coordinator && store::centre_is_linked(&mut tx, centre_id).await? {
        return Err(ApiError::forbidden(
            "this centre is linked to a hospital already; only an admin links it to another",
        ));
    }
    let id = store::insert_link(&mut tx, hospital_id, centre_id).await?;
    crate::audit::event(actor, "link", "organisation", centre_id)
        .detail(format!("to hospital {hospital_id}"))
        .record_with(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Ends a link on behalf of an admin, audited (`unlink` on the centre, naming the hospital and
/// the reason). The hospital's coordinators lose the centre's accounts, devices, patients and
/// consultations at their next request: every rule reads the live links. The link is kept
/// among the ended ones; `None` when no live link has that id.
pub async fn end_link_as(db: &Db, actor: &AuthUser, id: &str, reason: &str) -> ApiResult<Option<EndedLink>> {
    let mut tx = db.begin_write().await?;
    let Some((hospital_id, centre_id)) = store::end_link(&mut tx, id, &actor.id, reason).await? else {
        return Ok(None);
    };
    crate::audit::event(actor, "unlink", "organisation", &centre_id)
        .detail(format!("from hospital {hospital_id}: {reason}"))
        .record_with(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(EndedLink { id: id.to_string(), hospital_id, centre_id, reason: reason.to_string() }))
}

async fn check_link_kinds(db: &Db, hospital_id: &str, centre_id: &str) -> ApiResult<()> {
    let kinds = store::organisation_kinds(db, hospital_id, centre_id).await?;
    let kind_of = |id: &str| kinds.iter().find(|(i, _)| i == id).map(|(_, k)| *k);
    if kind_of(hospital_id) != Some(OrgKind::TertiaryHospital) {
        return Err(ApiError::validation("hospital_id", "must name a tertiary hospital"));
    }
    if !kind_of(centre_id).is_some_and(OrgKind::is_centre) {
        return Err(ApiError::validation("centre_id", "must name a community health centre or medical corner"));
    }
    Ok(())
}

// ---------- specialties and departments ----------

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Specialty {
    pub code: String,
    pub name_en: String,
    pub name_zh: String,
}

pub async fn create_specialty(db: &Db, s: &Specialty) -> ApiResult<()> {
    let code = s.code.trim().to_lowercase();
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(ApiError::validation("code", "lowercase letters and '_'"));
    }
    let name_en = non_empty("name_en", &s.name_en, 100)?;
    let name_zh = non_empty("name_zh", &s.name_zh, 100)?;
    store::insert_specialty(db, &code, &name_en, &name_zh).await
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Department {
    pub id: String,
    pub organisation_id: String,
    pub name: String,
    pub specialty: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    pub name: String,
    pub specialty: String,
}

pub async fn create_department(db: &Db, org: &str, d: &NewDepartment) -> ApiResult<String> {
    let name = non_empty("name", &d.name, 200)?;
    store::insert_department(db, org, &name, &d.specialty).await
}

// ---------- users and experts ----------

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExpertView {
    pub title: String,
    pub specialties: Vec<String>,
    pub time_zone: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub organisation_id: String,
    pub organisation_name: String,
    pub organisation_kind: OrgKind,
    pub department_id: Option<String>,
    pub active: bool,
    pub expert: Option<ExpertView>,
    pub patient_id: Option<String>,
    /// A one-time password is in use: the user must set their own before anything else.
    pub must_change_password: bool,
    #[serde(skip)]
    pub token_generation: i64,
}

pub async fn load_user(db: &Db, id: &str) -> ApiResult<Option<UserView>> {
    store::user(db, id).await
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExpertProfile {
    pub title: String,
    pub specialties: Vec<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
    pub organisation_id: String,
    #[serde(default)]
    pub department_id: Option<String>,
    #[serde(default)]
    pub expert: Option<NewExpertProfile>,
    /// For a patient account: the patient record it belongs to.
    #[serde(default)]
    pub patient_id: Option<String>,
}

pub async fn create_user(db: &Db, u: &NewUser) -> ApiResult<String> {
    create_user_as(db, u, None).await
}

/// Pure: checks a new account's fields beyond its password.
fn check_new_user(u: &NewUser) -> ApiResult<(Username, String)> {
    let username = Username::parse(&u.username)?;
    let display_name = non_empty("display_name", &u.display_name, 100)?;
    validate_password(&u.password)?;
    if let Some(e) = &u.expert {
        if !TITLES.contains(&e.title.as_str()) {
            return Err(ApiError::validation("expert.title", format!("one of {}", TITLES.join(", "))));
        }
        if e.specialties.is_empty() {
            return Err(ApiError::validation("expert.specialties", "at least one specialty"));
        }
        if let Some(tz) = &e.time_zone {
            if tz.parse::<chrono_tz::Tz>().is_err() {
                return Err(ApiError::validation("expert.time_zone", "an IANA time zone such as Asia/Shanghai"));
            }
        }
    }
    if u.role == Role::Expert && u.expert.is_none() {
        return Err(ApiError::validation("expert", "an expert account needs a title and specialties"));
    }
    if u.role != Role::Expert && u.expert.is_some() {
        return Err(ApiError::validation("expert", "only expert accounts have an expert profile"));
    }
    if u.patient_id.is_some() && u.role != Role::Patient {
        return Err(ApiError::validation("patient_id", "only patient accounts link to a patient record"));
    }
    Ok((username, display_name))
}

/// Hashes a password off the async threads.
pub async fn hash_off_thread(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Creates the account; with an `actor`, its audit event is written in the same transaction
/// (and, for a patient login, one on the patient record).
async fn create_user_as(db: &Db, u: &NewUser, actor: Option<&AuthUser>) -> ApiResult<String> {
    let (username, display_name) = check_new_user(u)?;
    let hash = hash_off_thread(u.password.clone()).await?;
    let id = new_id();
    let now = now_ts();
    let mut tx = db.begin_write().await?;
    let account = store::NewAccount {
        id: &id,
        username: username.as_str(),
        display_name: &display_name,
        password_hash: &hash,
        role: u.role,
        organisation_id: &u.organisation_id,
        department_id: u.department_id.as_deref(),
        created_at: &now,
    };
    store::insert_user(&mut tx, &account).await?;
    if let Some(e) = &u.expert {
        let tz = e.time_zone.clone().unwrap_or_else(|| "Asia/Shanghai".into());
        store::insert_expert_profile(&mut tx, &id, &e.title, &tz, &e.specialties).await?;
    }
    if let Some(pid) = &u.patient_id {
        if !store::link_patient_login(&mut tx, &id, pid, &now).await? {
            return Err(ApiError::validation("patient_id", "no unlinked patient record with this id"));
        }
    }
    if actor.is_some() {
        // Whoever made the account knows its first password: it opens nothing but the
        // password change, so what the account does is its owner's (a coordinator who made an
        // expert's account cannot sign opinions as the expert; a patient login used before its
        // patient would no longer open for them). Accounts of the seed have no creator.
        store::require_password_change(&mut tx, &id).await?;
    }
    if let Some(actor) = actor {
        crate::audit::account_event(actor, "create", &id)
            .detail(format!("role {}", u.role.as_str()))
            .record_with(&mut *tx)
            .await?;
        if let Some(pid) = &u.patient_id {
            crate::audit::event(actor, "create_patient_login", "patient", pid)
                .patient(pid)
                .detail(format!("login {}", username.as_str()))
                .record_with(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    if u.expert.is_some() {
        db.rosters.changed();
    }
    Ok(id)
}

/// The caller's linked centres as account management sees them (a coordinator's hospital's).
async fn as_manager(db: &Db, user: &AuthUser) -> ApiResult<Vec<String>> {
    if user.role == Role::Coordinator {
        store::linked_centres(db, &user.org).await
    } else {
        Ok(Vec::new())
    }
}

/// The centres linked to a hospital.
pub async fn linked_centres(db: &Db, hospital_id: &str) -> ApiResult<Vec<String>> {
    store::linked_centres(db, hospital_id).await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub organisation_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    /// A one-time password set for someone else: they must change it at next sign-in, and
    /// every session they have ends.
    pub password: Option<String>,
    pub active: Option<bool>,
    pub department_id: Option<String>,
    pub role: Option<Role>,
    /// An expert's profile: a new title, a new set of specialties, a time zone (each optional).
    /// Admins and the coordinators who manage the account change it, never the expert.
    pub expert: Option<ExpertPatch>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpertPatch {
    pub title: Option<String>,
    pub specialties: Option<Vec<String>>,
    pub time_zone: Option<String>,
}

/// Pure: checks an expert profile change against the specialties that exist.
pub fn check_expert_patch(e: &ExpertPatch, known_specialties: &[String]) -> ApiResult<()> {
    if let Some(t) = &e.title {
        if !TITLES.contains(&t.as_str()) {
            return Err(ApiError::validation("expert.title", format!("one of {}", TITLES.join(", "))));
        }
    }
    if let Some(list) = &e.specialties {
        if list.is_empty() {
            return Err(ApiError::validation("expert.specialties", "at least one specialty"));
        }
        if let Some(unknown) = list.iter().find(|s| !known_specialties.contains(s)) {
            return Err(ApiError::validation("expert.specialties", format!("no specialty {unknown:?}")));
        }
    }
    if let Some(tz) = &e.time_zone {
        if tz.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::validation("expert.time_zone", "an IANA time zone such as Asia/Shanghai"));
        }
    }
    Ok(())
}

/// An expert as the consultation screens show one.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ExpertSummary {
    pub id: String,
    pub name: String,
    pub title: String,
    pub specialties: Vec<String>,
    pub organisation_id: String,
    pub organisation_name: String,
    pub time_zone: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpertFilter {
    pub specialty: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_parsed() {
        assert_eq!(Username::parse(" Dr.Li ").unwrap().as_str(), "dr.li");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("dr li").is_err());
        assert!(Username::parse("../etc").is_err());
    }
}
