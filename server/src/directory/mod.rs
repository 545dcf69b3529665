//! The directory of the consortium: organisations (tertiary hospitals, community health
//! centres, medical corners), consortium links between a hospital and its centres,
//! departments and specialties, user accounts with one role each, and expert profiles.
//! Who may manage which account is [`policy`].

pub mod policy;

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::password::hash_password;
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, Db};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

pub const ORG_KINDS: [&str; 3] = ["tertiary_hospital", "community_health_centre", "medical_corner"];
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
    pub kind: String,
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
    if !ORG_KINDS.contains(&org.kind.as_str()) {
        return Err(ApiError::validation("kind", format!("one of {}", ORG_KINDS.join(", "))));
    }
    let id = new_id();
    let now = now_ts();
    sqlx::query(
        "INSERT INTO organisations (id, name, kind, address, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(&org.kind)
    .bind(org.address.trim())
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(id)
}

async fn list_organisations(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<crate::api::Page<Organisation>>> {
    let items: Vec<Organisation> =
        sqlx::query_as("SELECT id, name, kind, address, active, created_at FROM organisations ORDER BY name")
            .fetch_all(&state.db.pool)
            .await?;
    Ok(Json(crate::api::Page { items, next: None }))
}

async fn get_organisation(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
) -> ApiResult<Json<Organisation>> {
    sqlx::query_as("SELECT id, name, kind, address, active, created_at FROM organisations WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("organisation"))
}

async fn post_organisation(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewOrganisation>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator && body.kind == "tertiary_hospital" {
        return Err(ApiError::forbidden(
            "coordinators add community centres and medical corners; hospitals are added by admins",
        ));
    }
    let id = create_organisation(&state.db, &body).await?;
    let Json(org) = get_organisation(State(state), user, Path(crate::db::Id(id))).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationPatch {
    pub name: Option<String>,
    pub address: Option<String>,
    pub active: Option<bool>,
}

async fn patch_organisation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
    Json(p): Json<OrganisationPatch>,
) -> ApiResult<Json<Organisation>> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator && id != user.org && !linked_centres(&state.db, &user.org).await?.contains(&id) {
        return Err(ApiError::forbidden("coordinators manage their own hospital and its linked centres"));
    }
    let name = p.name.as_deref().map(|n| non_empty("name", n, 200)).transpose()?;
    let done = sqlx::query(
        "UPDATE organisations SET name = COALESCE($1, name), address = COALESCE($2, address), active = COALESCE($3, active), updated_at = $4 WHERE id = $5",
    )
    .bind(name)
    .bind(p.address)
    .bind(p.active.map(i64::from))
    .bind(now_ts())
    .bind(&id)
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("organisation"));
    }
    get_organisation(State(state), user, Path(crate::db::Id(id))).await
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub hospital_id: String,
    pub centre_id: String,
}

pub async fn create_link(db: &Db, hospital_id: &str, centre_id: &str) -> ApiResult<String> {
    let kinds: Vec<(String, String)> = sqlx::query_as("SELECT id, kind FROM organisations WHERE id = $1 OR id = $2")
        .bind(hospital_id)
        .bind(centre_id)
        .fetch_all(&db.pool)
        .await?;
    let kind_of = |id: &str| kinds.iter().find(|(i, _)| i == id).map(|(_, k)| k.as_str());
    if kind_of(hospital_id) != Some("tertiary_hospital") {
        return Err(ApiError::validation("hospital_id", "must name a tertiary hospital"));
    }
    if !matches!(kind_of(centre_id), Some("community_health_centre" | "medical_corner")) {
        return Err(ApiError::validation("centre_id", "must name a community health centre or medical corner"));
    }
    let id = new_id();
    sqlx::query("INSERT INTO consortium_links (id, hospital_id, centre_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(hospital_id)
        .bind(centre_id)
        .bind(now_ts())
        .execute(&db.pool)
        .await?;
    Ok(id)
}

async fn list_links(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<crate::api::Page<ConsortiumLink>>> {
    let items: Vec<ConsortiumLink> = sqlx::query_as(
        "SELECT l.id, l.hospital_id, h.name AS hospital_name, l.centre_id, c.name AS centre_name, l.created_at
         FROM consortium_links l JOIN organisations h ON h.id = l.hospital_id JOIN organisations c ON c.id = l.centre_id
         ORDER BY h.name, c.name",
    )
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(crate::api::Page { items, next: None }))
}

async fn post_link(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewLink>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator && body.hospital_id != user.org {
        return Err(ApiError::forbidden("coordinators link centres to their own hospital"));
    }
    let id = create_link(&state.db, &body.hospital_id, &body.centre_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "hospital_id": body.hospital_id, "centre_id": body.centre_id})),
    ))
}

// ---------- specialties and departments ----------

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Specialty {
    pub code: String,
    pub name_en: String,
    pub name_zh: String,
}

async fn list_specialties(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<crate::api::Page<Specialty>>> {
    let items = sqlx::query_as("SELECT code, name_en, name_zh FROM specialties ORDER BY code")
        .fetch_all(&state.db.pool)
        .await?;
    Ok(Json(crate::api::Page { items, next: None }))
}

pub async fn create_specialty(db: &Db, s: &Specialty) -> ApiResult<()> {
    let code = s.code.trim().to_lowercase();
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(ApiError::validation("code", "lowercase letters and '_'"));
    }
    sqlx::query("INSERT INTO specialties (code, name_en, name_zh) VALUES ($1, $2, $3)")
        .bind(code)
        .bind(non_empty("name_en", &s.name_en, 100)?)
        .bind(non_empty("name_zh", &s.name_zh, 100)?)
        .execute(&db.pool)
        .await?;
    Ok(())
}

async fn post_specialty(
    State(state): State<AppState>,
    user: AuthUser,
    Json(s): Json<Specialty>,
) -> ApiResult<(StatusCode, Json<Specialty>)> {
    user.require(&[Role::Admin])?;
    create_specialty(&state.db, &s).await?;
    Ok((StatusCode::CREATED, Json(s)))
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
    let id = new_id();
    sqlx::query(
        "INSERT INTO departments (id, organisation_id, name, specialty, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(org)
    .bind(non_empty("name", &d.name, 200)?)
    .bind(&d.specialty)
    .bind(now_ts())
    .execute(&db.pool)
    .await?;
    Ok(id)
}

async fn list_departments(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(crate::db::Id(org)): Path<crate::db::Id>,
) -> ApiResult<Json<crate::api::Page<Department>>> {
    let items = sqlx::query_as(
        "SELECT id, organisation_id, name, specialty FROM departments WHERE organisation_id = $1 ORDER BY name",
    )
    .bind(org)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(crate::api::Page { items, next: None }))
}

async fn post_department(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(org)): Path<crate::db::Id>,
    Json(d): Json<NewDepartment>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator && org != user.org {
        return Err(ApiError::forbidden("coordinators add departments to their own hospital"));
    }
    let id = create_department(&state.db, &org, &d).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "organisation_id": org, "name": d.name, "specialty": d.specialty})),
    ))
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
    pub role: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub organisation_kind: String,
    pub department_id: Option<String>,
    pub active: bool,
    pub expert: Option<ExpertView>,
    pub patient_id: Option<String>,
    /// A one-time password is in use: the user must set their own before anything else.
    pub must_change_password: bool,
    #[serde(skip)]
    pub token_generation: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    role: String,
    organisation_id: String,
    organisation_name: String,
    organisation_kind: String,
    department_id: Option<String>,
    active: i64,
    title: Option<String>,
    time_zone: Option<String>,
    patient_id: Option<String>,
    token_generation: i64,
    must_change_password: i64,
}

const USER_SELECT: &str =
    "SELECT u.id, u.username, u.display_name, u.role, u.organisation_id, o.name AS organisation_name,
        o.kind AS organisation_kind, u.department_id, u.active, e.title, e.time_zone, p.id AS patient_id,
        u.token_generation, u.must_change_password
     FROM users u JOIN organisations o ON o.id = u.organisation_id
     LEFT JOIN expert_profiles e ON e.user_id = u.id
     LEFT JOIN patients p ON p.user_id = u.id";

async fn user_views(db: &Db, rows: Vec<UserRow>) -> ApiResult<Vec<UserView>> {
    let specs: Vec<(String, String)> = if rows.iter().any(|r| r.title.is_some()) {
        sqlx::query_as("SELECT user_id, specialty FROM expert_specialties ORDER BY specialty")
            .fetch_all(&db.pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let expert = r.title.map(|title| ExpertView {
                title,
                specialties: specs.iter().filter(|(u, _)| *u == r.id).map(|(_, s)| s.clone()).collect(),
                time_zone: r.time_zone.unwrap_or_else(|| "Asia/Shanghai".into()),
            });
            UserView {
                id: r.id,
                username: r.username,
                display_name: r.display_name,
                role: r.role,
                organisation_id: r.organisation_id,
                organisation_name: r.organisation_name,
                organisation_kind: r.organisation_kind,
                department_id: r.department_id,
                active: r.active != 0,
                expert,
                patient_id: r.patient_id,
                must_change_password: r.must_change_password != 0,
                token_generation: r.token_generation,
            }
        })
        .collect())
}

pub async fn load_user(db: &Db, id: &str) -> ApiResult<Option<UserView>> {
    let rows: Vec<UserRow> =
        sqlx::query_as(&format!("{USER_SELECT} WHERE u.id = $1")).bind(id).fetch_all(&db.pool).await?;
    Ok(user_views(db, rows).await?.into_iter().next())
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

/// Creates the account; with an `actor`, its audit event is written in the same transaction
/// (and, for a patient login, one on the patient record).
async fn create_user_as(db: &Db, u: &NewUser, actor: Option<&AuthUser>) -> ApiResult<String> {
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
    let password = u.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let id = new_id();
    let now = now_ts();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash, role, organisation_id, department_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(username.as_str())
    .bind(display_name)
    .bind(hash)
    .bind(u.role.as_str())
    .bind(&u.organisation_id)
    .bind(&u.department_id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    if let Some(e) = &u.expert {
        sqlx::query("INSERT INTO expert_profiles (user_id, title, time_zone) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(&e.title)
            .bind(e.time_zone.clone().unwrap_or_else(|| "Asia/Shanghai".into()))
            .execute(&mut *tx)
            .await?;
        for s in &e.specialties {
            sqlx::query("INSERT INTO expert_specialties (user_id, specialty) VALUES ($1, $2)")
                .bind(&id)
                .bind(s)
                .execute(&mut *tx)
                .await?;
        }
    }
    if let Some(pid) = &u.patient_id {
        let linked = sqlx::query("UPDATE patients SET user_id = $1, updated_at = $2 WHERE id = $3 AND user_id IS NULL")
            .bind(&id)
            .bind(&now)
            .bind(pid)
            .execute(&mut *tx)
            .await?;
        if linked.rows_affected() == 0 {
            return Err(ApiError::validation("patient_id", "no unlinked patient record with this id"));
        }
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
    Ok(id)
}

/// The centres linked to a hospital.
pub async fn linked_centres(db: &Db, hospital_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT centre_id FROM consortium_links WHERE hospital_id = $1")
        .bind(hospital_id)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

fn refused(r: policy::Refusal) -> ApiError {
    match r {
        policy::Refusal::Hidden => ApiError::not_found("user"),
        policy::Refusal::Forbidden(why) => ApiError::forbidden(why),
    }
}

/// The caller as account management sees it (with its hospital's linked centres).
async fn as_manager(db: &Db, user: &AuthUser) -> ApiResult<Vec<String>> {
    if user.role == Role::Coordinator {
        linked_centres(db, &user.org).await
    } else {
        Ok(Vec::new())
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub organisation_id: Option<String>,
}

async fn list_users(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<UserFilter>,
) -> ApiResult<Json<crate::api::Page<UserView>>> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    let linked = as_manager(&state.db, &user).await?;
    let m = policy::Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "{USER_SELECT} WHERE ($1 = '' OR u.role = $1) AND ($2 = '' OR u.organisation_id = $2) ORDER BY u.username"
    ))
    .bind(f.role.map(|r| r.as_str()).unwrap_or(""))
    .bind(f.organisation_id.unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let items = user_views(&state.db, rows)
        .await?
        .into_iter()
        .filter(|v| {
            let role = Role::parse(&v.role).unwrap_or(Role::Patient);
            policy::may_see(&m, &policy::Account { id: &v.id, role, org: &v.organisation_id })
        })
        .collect();
    Ok(Json(crate::api::Page { items, next: None }))
}

async fn get_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
) -> ApiResult<Json<UserView>> {
    let view = load_user(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let linked = as_manager(&state.db, &user).await?;
    let m = policy::Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let role = Role::parse(&view.role).ok_or_else(|| ApiError::internal("stored role is unknown"))?;
    if !policy::may_see(&m, &policy::Account { id: &view.id, role, org: &view.organisation_id }) {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(view))
}

async fn post_user(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    let linked = as_manager(&state.db, &user).await?;
    let m = policy::Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    policy::may_change(
        &m,
        &policy::Account { id: "", role: body.role, org: &body.organisation_id },
        policy::Change::Create,
    )
    .map_err(refused)?;
    if let Some(pid) = &body.patient_id {
        // A patient login is bound only to a record the caller may see, at the account's organisation.
        let patient = crate::patients::find_visible(&state.db, &user, pid).await?;
        if patient.is_none_or(|p| p.home_organisation_id != body.organisation_id) {
            return Err(ApiError::validation(
                "patient_id",
                "no patient record you may see at this organisation has this id",
            ));
        }
    }
    let id = create_user_as(&state.db, &body, Some(&user)).await?;
    let view = load_user(&state.db, &id).await?.ok_or_else(|| ApiError::internal("created user vanished"))?;
    Ok((StatusCode::CREATED, Json(view)))
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
}

async fn patch_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
    Json(p): Json<UserPatch>,
) -> ApiResult<Json<UserView>> {
    use policy::Change;
    let target = load_user(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let target_role = Role::parse(&target.role).ok_or_else(|| ApiError::internal("stored role is unknown"))?;
    let linked = as_manager(&state.db, &user).await?;
    let m = policy::Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let account = policy::Account { id: &target.id, role: target_role, org: &target.organisation_id };
    if !policy::may_see(&m, &account) {
        return Err(ApiError::not_found("user"));
    }
    let mut changes = Vec::new();
    if p.display_name.is_some() {
        changes.push(Change::DisplayName);
    }
    if p.password.is_some() {
        changes.push(Change::ResetPassword);
    }
    if p.active.is_some_and(|a| a != target.active) {
        changes.push(Change::Active);
    }
    if p.department_id.is_some() {
        changes.push(Change::Department);
    }
    if let Some(r) = p.role.filter(|r| *r != target_role) {
        changes.push(Change::Role(r));
    }
    for c in &changes {
        if let Err(r) = policy::may_change(&m, &account, *c) {
            crate::audit::account_event(&user, "update", &id)
                .outcome(crate::audit::Outcome::Denied)
                .detail(format!("{c:?}"))
                .record(&state.db)
                .await?;
            return Err(refused(r));
        }
    }
    let display_name = p.display_name.as_deref().map(|n| non_empty("display_name", n, 100)).transpose()?;
    let hash = match p.password {
        Some(pw) => {
            validate_password(&pw)?;
            Some(
                tokio::task::spawn_blocking(move || hash_password(&pw))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(ApiError::internal)?,
            )
        }
        None => None,
    };
    let reset = hash.is_some();
    let deactivated = p.active == Some(false) && target.active;
    let role_changed = changes.iter().any(|c| matches!(c, Change::Role(_)));
    let revoke = reset || deactivated || role_changed;
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($1, display_name), password_hash = COALESCE($2, password_hash),
            must_change_password = CASE WHEN $2 IS NULL THEN must_change_password ELSE 1 END,
            active = COALESCE($3, active), department_id = COALESCE($4, department_id), role = COALESCE($5, role),
            updated_at = $6 WHERE id = $7",
    )
    .bind(display_name)
    .bind(hash)
    .bind(p.active.map(i64::from))
    .bind(p.department_id)
    .bind(p.role.map(|r| r.as_str()))
    .bind(now_ts())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if revoke {
        crate::auth::accounts::revoke_refresh_tokens(&mut tx, &id, None).await?;
        crate::auth::accounts::bump_generation(&mut tx, &id).await?;
    }
    for c in &changes {
        let (action, detail) = match c {
            Change::DisplayName => ("update", "display name".to_string()),
            Change::ResetPassword => ("reset_password", "one-time password set; sessions ended".to_string()),
            Change::Active if deactivated => ("deactivate", "sessions ended".to_string()),
            Change::Active => ("reactivate", String::new()),
            Change::Department => ("update", "department".to_string()),
            Change::Role(to) => ("change_role", format!("{} -> {}", target.role, to.as_str())),
            Change::Create => continue,
        };
        crate::audit::account_event(&user, action, &id).detail(detail).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
    if revoke {
        state.accounts.changed(&id).await;
    }
    load_user(&state.db, &id).await?.map(Json).ok_or_else(|| ApiError::not_found("user"))
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

async fn list_experts(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(f): Query<ExpertFilter>,
) -> ApiResult<Json<crate::api::Page<ExpertSummary>>> {
    let rows: Vec<UserRow> = sqlx::query_as(&format!(
        "{USER_SELECT} WHERE u.role = 'expert' AND u.active = 1
           AND ($1 = '' OR u.id IN (SELECT user_id FROM expert_specialties WHERE specialty = $1))
         ORDER BY u.display_name"
    ))
    .bind(f.specialty.unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?;
    let items = user_views(&state.db, rows)
        .await?
        .into_iter()
        .filter_map(|u| {
            let e = u.expert?;
            Some(ExpertSummary {
                id: u.id,
                name: u.display_name,
                title: e.title,
                specialties: e.specialties,
                organisation_id: u.organisation_id,
                organisation_name: u.organisation_name,
                time_zone: e.time_zone,
            })
        })
        .collect();
    Ok(Json(crate::api::Page { items, next: None }))
}

pub fn routes() -> Routes {
    Routes::new("directory")
        .get("/api/v1/organisations", "Organisations of the consortium", list_organisations)
        .json::<crate::api::Page<Organisation>>(200)
        .post("/api/v1/organisations", "Create an organisation (admin, coordinator)", post_organisation)
        .body::<NewOrganisation>()
        .json::<Organisation>(201)
        .errors(&[409])
        .get("/api/v1/organisations/{id}", "One organisation", get_organisation)
        .json::<Organisation>(200)
        .patch("/api/v1/organisations/{id}", "Update an organisation (admin, coordinator)", patch_organisation)
        .body::<OrganisationPatch>()
        .json::<Organisation>(200)
        .get("/api/v1/organisations/{id}/departments", "Departments of an organisation", list_departments)
        .json::<crate::api::Page<Department>>(200)
        .post("/api/v1/organisations/{id}/departments", "Create a department (admin, coordinator)", post_department)
        .body::<NewDepartment>()
        .json::<Department>(201)
        .errors(&[409])
        .get("/api/v1/consortium-links", "Links between hospitals and community centres", list_links)
        .json::<crate::api::Page<ConsortiumLink>>(200)
        .post("/api/v1/consortium-links", "Link a hospital and a centre (admin, coordinator)", post_link)
        .body::<NewLink>()
        .json::<serde_json::Value>(201)
        .errors(&[409])
        .get("/api/v1/specialties", "Specialties", list_specialties)
        .json::<crate::api::Page<Specialty>>(200)
        .post("/api/v1/specialties", "Create a specialty (admin)", post_specialty)
        .body::<Specialty>()
        .json::<Specialty>(201)
        .errors(&[409])
        .get("/api/v1/users", "User accounts (admin, coordinator)", list_users)
        .query::<UserFilter>()
        .json::<crate::api::Page<UserView>>(200)
        .post("/api/v1/users", "Create a user account (admin, coordinator)", post_user)
        .body::<NewUser>()
        .json::<UserView>(201)
        .errors(&[404, 409])
        .get("/api/v1/users/{id}", "One user account (managers, or oneself)", get_user)
        .json::<UserView>(200)
        .patch("/api/v1/users/{id}", "Update a user account; deactivation instead of deletion", patch_user)
        .body::<UserPatch>()
        .json::<UserView>(200)
        .get("/api/v1/experts", "Active experts with title and specialties", list_experts)
        .query::<ExpertFilter>()
        .json::<crate::api::Page<ExpertSummary>>(200)
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
