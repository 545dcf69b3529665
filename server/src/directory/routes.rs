//! HTTP side of the directory: extracts, authorizes, calls [`super`] and [`super::store`],
//! answers.

use super::policy::{self, Change};
use super::{
    as_manager, non_empty, store, validate_password, ConsortiumLink, Department, EndLink, EndedLink, ExpertFilter,
    ExpertSummary, NewDepartment, NewLink, NewOrganisation, NewUser, Organisation, OrganisationPatch, Specialty,
    UserFilter, UserPatch, UserView,
};
use crate::api::{Json, Page, Path, Query, Routes};
use crate::app::AppState;
use crate::db::{Db, Id};
use crate::domain::people::{OrgKind, Role};
use crate::error::{ApiError, ApiResult};
use crate::principal::AuthUser;
use axum::extract::State;
use axum::http::StatusCode;

// ---------- organisations ----------

async fn list_organisations(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Page<Organisation>>> {
    let items = store::organisations(&state.db).await?;
    Ok(Json(Page { items, next: None }))
}

async fn organisation(db: &Db, id: &str) -> ApiResult<Organisation> {
    store::organisation(db, id).await?.ok_or_else(|| ApiError::not_found("organisation"))
}

async fn get_organisation(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<Organisation>> {
    organisation(&state.db, &id).await.map(Json)
}

async fn post_organisation(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewOrganisation>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator && body.kind.parse() == Ok(OrgKind::TertiaryHospital) {
        return Err(ApiError::forbidden(
            "coordinators add community centres and medical corners; hospitals are added by admins",
        ));
    }
    let id = super::create_organisation(&state.db, &body).await?;
    Ok((StatusCode::CREATED, Json(organisation(&state.db, &id).await?)))
}

async fn patch_organisation(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(p): Json<OrganisationPatch>,
) -> ApiResult<Json<Organisation>> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator
        && id != user.org
        && !store::linked_centres(&state.db, &user.org).await?.contains(&id)
    {
        return Err(ApiError::forbidden("coordinators manage their own hospital and its linked centres"));
    }
    // Deactivating an organisation ends its people's access (but an admin's) and its devices'.
    if user.role == Role::Coordinator && id == user.org && p.active.is_some() {
        return Err(ApiError::forbidden("a hospital is deactivated or reactivated by an admin"));
    }
    let name = p.name.as_deref().map(|n| non_empty("name", n, 200)).transpose()?;
    if store::update_organisation(&state.db, &id, name, p.address, p.active).await? == 0 {
        return Err(ApiError::not_found("organisation"));
    }
    if let Some(active) = p.active {
        let members = store::member_ids(&state.db, &id).await?;
        let mut tx = state.db.begin_write().await?;
        if !active {
            // As deactivating each account would: its sessions end for good (the organisation
            // inactive already refuses them; this keeps them refused after a reactivation).
            for (member, role) in &members {
                if *role != Role::Admin {
                    store::revoke_refresh_tokens(&mut tx, member, None).await?;
                    store::bump_generation(&mut tx, member).await?;
                }
            }
        }
        crate::audit::event(&user, if active { "activate" } else { "deactivate" }, "organisation", &id)
            .record_with(&mut *tx)
            .await?;
        tx.commit().await?;
        for (member, _) in &members {
            state.accounts.changed(member).await;
        }
    }
    organisation(&state.db, &id).await.map(Json)
}

// ---------- consortium links ----------

async fn list_links(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Page<ConsortiumLink>>> {
    let items = store::links(&state.db).await?;
    Ok(Json(Page { items, next: None }))
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
    let id = super::create_link_as(&state.db, &user, &body.hospital_id, &body.centre_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "hospital_id": body.hospital_id, "centre_id": body.centre_id})),
    ))
}

/// Ends a link (admins only: it takes a centre out of a hospital's consortium, as moving or
/// sharing one is an admin's); a reason is required.
async fn end_link(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<EndLink>,
) -> ApiResult<Json<EndedLink>> {
    user.require(&[Role::Admin])?;
    let reason = crate::consultations::state::Reason::parse(&body.reason)
        .map_err(|e| ApiError::validation("reason", e.to_string()))?;
    super::end_link_as(&state.db, &user, &id, reason.as_str())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("consortium link"))
}

// ---------- specialties and departments ----------

async fn list_specialties(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Page<Specialty>>> {
    let items = store::specialties(&state.db).await?;
    Ok(Json(Page { items, next: None }))
}

async fn post_specialty(
    State(state): State<AppState>,
    user: AuthUser,
    Json(s): Json<Specialty>,
) -> ApiResult<(StatusCode, Json<Specialty>)> {
    user.require(&[Role::Admin])?;
    super::create_specialty(&state.db, &s).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

async fn list_departments(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(Id(org)): Path<Id>,
) -> ApiResult<Json<Page<Department>>> {
    let items = store::departments(&state.db, &org).await?;
    Ok(Json(Page { items, next: None }))
}

async fn post_department(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(org)): Path<Id>,
    Json(d): Json<NewDepartment>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    if user.role == Role::Coordinator && org != user.org {
        return Err(ApiError::forbidden("coordinators add departments to their own hospital"));
    }
    let id = super::create_department(&state.db, &org, &d).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": id, "organisation_id": org, "name": d.name, "specialty": d.specialty})),
    ))
}

// ---------- users and experts ----------

fn refused(r: policy::Refusal) -> ApiError {
    match r {
        policy::Refusal::Hidden => ApiError::not_found("user"),
        policy::Refusal::Forbidden(why) => ApiError::forbidden(why),
    }
}

fn manager<'a>(user: &'a AuthUser, linked: &'a [String]) -> policy::Manager<'a> {
    policy::Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: linked }
}

fn account(v: &UserView) -> policy::Account<'_> {
    policy::Account { id: &v.id, role: v.role, org: &v.organisation_id }
}

async fn list_users(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<UserFilter>,
) -> ApiResult<Json<Page<UserView>>> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    let linked = as_manager(&state.db, &user).await?;
    let m = manager(&user, &linked);
    let org = f.organisation_id.as_deref().filter(|o| !o.is_empty());
    let items: Vec<UserView> =
        store::users(&state.db, f.role, org).await?.into_iter().filter(|v| policy::may_see(&m, &account(v))).collect();
    // Accounts are audited like patient data, and a patient's login names its patient.
    let events = items.iter().map(|v| account_read(&user, "list", v));
    crate::audit::record_all(&state.db, events.collect()).await?;
    Ok(Json(Page { items, next: None }))
}

/// The audit event of reading account `v` (with its patient, for a patient's login).
fn account_read(user: &AuthUser, action: &str, v: &UserView) -> crate::audit::AuditEvent {
    crate::audit::account_event(user, action, &v.id).maybe_patient(v.patient_id.clone())
}

async fn get_user(State(state): State<AppState>, user: AuthUser, Path(Id(id)): Path<Id>) -> ApiResult<Json<UserView>> {
    let view = store::user(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let linked = as_manager(&state.db, &user).await?;
    if !policy::may_see(&manager(&user, &linked), &account(&view)) {
        account_read(&user, "read", &view).outcome(crate::audit::Outcome::Denied).record(&state.db).await?;
        return Err(ApiError::not_found("user"));
    }
    account_read(&user, "read", &view).record(&state.db).await?;
    Ok(Json(view))
}

async fn post_user(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    let linked = as_manager(&state.db, &user).await?;
    policy::may_change(
        &manager(&user, &linked),
        &policy::Account { id: "", role: body.role, org: &body.organisation_id },
        Change::Create,
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
    let id = super::create_user_as(&state.db, &body, Some(&user)).await?;
    let view = store::user(&state.db, &id).await?.ok_or_else(|| ApiError::internal("created user vanished"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The changes `p` asks of `target`, in the order they are checked and audited.
fn changes_of(p: &UserPatch, target: &UserView) -> Vec<Change> {
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
    if let Some(r) = p.role.filter(|r| *r != target.role) {
        changes.push(Change::Role(r));
    }
    if p.expert.is_some() {
        changes.push(Change::ExpertProfile);
    }
    changes
}

/// The audit action and detail of one applied change (`None`: not audited as an update).
fn change_event(c: &Change, deactivated: bool, from: Role) -> Option<(&'static str, String)> {
    Some(match c {
        Change::DisplayName => ("update", "display name".to_string()),
        Change::ResetPassword => ("reset_password", "one-time password set; sessions ended".to_string()),
        Change::Active if deactivated => ("deactivate", "sessions ended".to_string()),
        Change::Active => ("reactivate", String::new()),
        Change::Department => ("update", "department".to_string()),
        Change::Role(to) => ("change_role", format!("{} -> {}", from.as_str(), to.as_str())),
        // Audited with what it replaced, where it is applied.
        Change::Create | Change::ExpertProfile => return None,
    })
}

async fn patch_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(p): Json<UserPatch>,
) -> ApiResult<Json<UserView>> {
    let target = store::user(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let linked = as_manager(&state.db, &user).await?;
    let m = manager(&user, &linked);
    if !policy::may_see(&m, &account(&target)) {
        return Err(ApiError::not_found("user"));
    }
    let changes = changes_of(&p, &target);
    for c in &changes {
        if let Err(r) = policy::may_change(&m, &account(&target), *c) {
            crate::audit::account_event(&user, "update", &id)
                .outcome(crate::audit::Outcome::Denied)
                .detail(format!("{c:?}"))
                .record(&state.db)
                .await?;
            return Err(refused(r));
        }
    }
    let display_name = p.display_name.as_deref().map(|n| non_empty("display_name", n, 100)).transpose()?;
    let expert_change = match (&p.expert, &target.expert) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ApiError::validation("expert", "only expert accounts have an expert profile"));
        }
        (Some(e), Some(before)) => {
            let known: Vec<String> = store::specialties(&state.db).await?.into_iter().map(|s| s.code).collect();
            super::check_expert_patch(e, &known)?;
            Some((e, before.clone()))
        }
    };
    let password_hash = match p.password {
        Some(pw) => {
            validate_password(&pw)?;
            Some(super::hash_off_thread(pw).await?)
        }
        None => None,
    };
    let deactivated = p.active == Some(false) && target.active;
    let role_changed = changes.iter().any(|c| matches!(c, Change::Role(_)));
    let revoke = password_hash.is_some() || deactivated || role_changed;
    let update = store::AccountUpdate {
        display_name,
        password_hash,
        active: p.active,
        department_id: p.department_id,
        role: p.role,
    };
    let mut tx = state.db.begin_write().await?;
    store::update_user(&mut tx, &id, update).await?;
    if let Some((e, before)) = expert_change {
        store::update_expert_profile(
            &mut tx,
            &id,
            e.title.as_deref(),
            e.time_zone.as_deref(),
            e.specialties.as_deref(),
        )
        .await?;
        let mut said = Vec::new();
        if let Some(t) = e.title.as_deref().filter(|t| *t != before.title) {
            said.push(format!("title {} -> {t}", before.title));
        }
        if let Some(list) = e.specialties.as_ref().filter(|l| **l != before.specialties) {
            said.push(format!("specialties {} -> {}", before.specialties.join(","), list.join(",")));
        }
        if let Some(tz) = e.time_zone.as_deref().filter(|tz| *tz != before.time_zone) {
            said.push(format!("time zone {} -> {tz}", before.time_zone));
        }
        crate::audit::account_event(&user, "update_expert_profile", &id)
            .detail(said.join("; "))
            .record_with(&mut *tx)
            .await?;
    }
    if revoke {
        store::revoke_refresh_tokens(&mut tx, &id, None).await?;
        store::bump_generation(&mut tx, &id).await?;
    }
    for (action, detail) in changes.iter().filter_map(|c| change_event(c, deactivated, target.role)) {
        crate::audit::account_event(&user, action, &id).detail(detail).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
    if revoke {
        state.accounts.changed(&id).await;
    }
    store::user(&state.db, &id).await?.map(Json).ok_or_else(|| ApiError::not_found("user"))
}

async fn list_experts(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(f): Query<ExpertFilter>,
) -> ApiResult<Json<Page<ExpertSummary>>> {
    let specialty = f.specialty.as_deref().filter(|s| !s.is_empty());
    let items = store::experts(&state.db, specialty)
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
    Ok(Json(Page { items, next: None }))
}

pub fn routes() -> Routes {
    Routes::new("directory")
        .get("/api/v1/organisations", "Organisations of the consortium", list_organisations)
        .json::<Page<Organisation>>(200)
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
        .json::<Page<Department>>(200)
        .post("/api/v1/organisations/{id}/departments", "Create a department (admin, coordinator)", post_department)
        .body::<NewDepartment>()
        .json::<Department>(201)
        .errors(&[409])
        .get("/api/v1/consortium-links", "Links between hospitals and community centres", list_links)
        .json::<Page<ConsortiumLink>>(200)
        .post("/api/v1/consortium-links", "Link a hospital and a centre (admin, coordinator)", post_link)
        .body::<NewLink>()
        .json::<serde_json::Value>(201)
        .errors(&[409])
        .post("/api/v1/consortium-links/{id}/end", "End a link, with a reason (admin)", end_link)
        .body::<EndLink>()
        .json::<EndedLink>(200)
        .get("/api/v1/specialties", "Specialties", list_specialties)
        .json::<Page<Specialty>>(200)
        .post("/api/v1/specialties", "Create a specialty (admin)", post_specialty)
        .body::<Specialty>()
        .json::<Specialty>(201)
        .errors(&[409])
        .get("/api/v1/users", "User accounts (admin, coordinator)", list_users)
        .query::<UserFilter>()
        .json::<Page<UserView>>(200)
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
        .json::<Page<ExpertSummary>>(200)
}
