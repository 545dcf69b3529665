//! Patient records: who may see which patient (by role AND relationship), the resident ID
//! number masked for those who need not see it, and an audit event for every read and write.
//! A record the caller may not see answers 404, as if it did not exist. Records are never
//! deleted.

pub mod health_card;
pub mod identifiers;
pub mod resident_id;
pub mod store;

pub use store::patient_visible;

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::audit::{self, Outcome};
use crate::db::Db;
use crate::domain::people::Role;
use crate::error::{ApiError, ApiResult};
use crate::principal::AuthUser;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Patient {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub sex: crate::domain::people::Sex,
    pub birth_date: String,
    pub phone: String,
    pub resident_id: String,
    pub home_organisation_id: String,
    pub home_organisation_name: String,
    pub user_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Identifiers in use beyond the resident ID, masked (on one record's answers, not in lists).
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Vec<identifiers::IdentifierView>>,
}

/// Whether `user` sees the full resident ID number of `p`: the staff of the patient's home
/// centre, and the patient themself.
pub(crate) fn sees_full_resident_id(user: &AuthUser, p: &Patient) -> bool {
    match user.role {
        Role::CommunityDoctor | Role::Coordinator => p.home_organisation_id == user.org,
        Role::Patient => p.user_id.as_deref() == Some(user.id.as_str()),
        Role::Expert | Role::Admin => false,
    }
}

/// Whether `user` may edit the record `p` (which they can see): the community doctors and
/// coordinators of the patient's home organisation. A coordinator who sees a linked centre's
/// patients does not edit that centre's records.
pub fn may_edit(user: &AuthUser, p: &Patient) -> bool {
    match user.role {
        Role::CommunityDoctor | Role::Coordinator => p.home_organisation_id == user.org,
        Role::Expert | Role::Patient | Role::Admin => false,
    }
}

fn present(user: &AuthUser, mut p: Patient) -> Patient {
    if !sees_full_resident_id(user, &p) {
        p.resident_id = resident_id::mask(&p.resident_id);
    }
    p
}

/// The patient record if `user` may see it; otherwise `None` (callers answer 404).
pub async fn find_visible(db: &Db, user: &AuthUser, id: &str) -> ApiResult<Option<Patient>> {
    store::find_visible(db, viewer(user), id).await
}

/// The caller as the visibility rules see it.
pub fn viewer(user: &AuthUser) -> store::Viewer<'_> {
    store::Viewer { role: user.role, user_id: &user.id, org: &user.org }
}

/// Loads a visible patient to read it for `action`, auditing the access or the refusal.
pub async fn load_for(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<Patient> {
    let p = load_to_act(db, user, id, action).await?;
    acted(user, id, action).record(db).await?;
    Ok(p)
}

/// The audit event of `user`'s `action` on patient `id`'s record.
pub fn acted(user: &AuthUser, id: &str, action: &str) -> audit::AuditEvent {
    audit::event(user, action, "patient", id).patient(id)
}

/// Loads a visible patient for `action`, a change that records its own outcome: its success
/// in the transaction of its writes, a refusal after this with
/// [`audit::AuditEvent::if_refused`]. Not visible: audited as denied, answered 404.
pub async fn load_to_act(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<Patient> {
    match find_visible(db, user, id).await? {
        Some(p) => Ok(present(user, p)),
        None => {
            let exists = store::exists(db, id).await?;
            audit::event(user, action, "patient", id)
                .maybe_patient(exists.then(|| id.to_string()))
                .outcome(Outcome::Denied)
                .record(db)
                .await?;
            Err(ApiError::not_found("patient"))
        }
    }
}

/// Refuses (403, audited as `action` denied) an expert who sees the patient only through
/// invitations they have not answered: they write to the patient's record (plans, visits)
/// once they have accepted one of the patient's consultations ([`store::expert_acts_for`]).
pub async fn require_acting(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<()> {
    if user.role != Role::Expert || store::expert_acts_for(db, id, &user.id).await? {
        return Ok(());
    }
    audit::event(user, action, "patient", id)
        .patient(id)
        .outcome(Outcome::Denied)
        .detail("invitation not answered")
        .record(db)
        .await?;
    Err(crate::consultations::store::invitation_unanswered())
}

/// Visible patients whose name starts with `name_prefix` (empty: any) and whose platform id
/// or resident ID number is `identifier` (empty: any; the number only for callers who see
/// it in full), ordered by id, presented for the caller; each one returned is audited as
/// `action`.
pub async fn search_visible(
    db: &Db,
    user: &AuthUser,
    name_prefix: &str,
    identifier: &str,
    limit: usize,
    offset: usize,
    action: &str,
) -> ApiResult<Vec<Patient>> {
    let prefix = name_prefix.trim().replace(['%', '_'], "");
    let wanted = identifier.trim();
    let search = store::Search {
        name_like: (!prefix.is_empty()).then(|| format!("{prefix}%")),
        identifier: (!wanted.is_empty()).then(|| (wanted, wanted.to_uppercase())),
    };
    let rows = store::search(db, viewer(user), search, limit as i64, offset as i64).await?;
    let rows: Vec<Patient> = rows
        .into_iter()
        .filter(|p| identifier.is_empty() || p.id == identifier || sees_full_resident_id(user, p))
        .collect();
    audit::record_all(db, rows.iter().map(|p| audit::event(user, action, "patient", &p.id).patient(&p.id)).collect())
        .await?;
    Ok(rows.into_iter().map(|p| present(user, p)).collect())
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientFilter {
    /// Matches the name or the phone number.
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<PatientFilter>,
) -> ApiResult<Json<crate::api::Page<Patient>>> {
    let limit = crate::api::page_limit(f.limit, 200)?;
    let q = f.q.map(|q| q.trim().replace(['%', '_'], "")).filter(|q| !q.is_empty()).map(|q| format!("%{q}%"));
    let cursor = crate::api::page_cursor(f.cursor)?;
    let after = Some(cursor.as_str()).filter(|c| !c.is_empty());
    let rows = store::list(&state.db, viewer(&user), q, after, limit as i64 + 1).await?;
    let page = crate::api::page(rows, limit, |p| p.id.clone());
    let events = page.items.iter().map(|p| audit::event(&user, "list", "patient", &p.id).patient(&p.id));
    audit::record_all(&state.db, events.collect()).await?;
    Ok(Json(crate::api::Page { items: page.items.into_iter().map(|p| present(&user, p)).collect(), next: page.next }))
}

/// The record with its identifiers, for one record's answers.
async fn with_identifiers(db: &Db, mut p: Patient) -> ApiResult<Patient> {
    p.identifiers = Some(identifiers::in_use(db, &p.id).await?);
    Ok(p)
}

async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
) -> ApiResult<Json<Patient>> {
    let p = load_for(&state.db, &user, &id, "read").await?;
    with_identifiers(&state.db, p).await.map(Json)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPatient {
    pub name: String,
    pub sex: String,
    pub birth_date: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub resident_id: String,
    /// Defaults to the caller's organisation.
    #[serde(default)]
    pub home_organisation_id: Option<String>,
    /// Identifiers beyond the resident ID (health card, insurance number, phone).
    #[serde(default)]
    pub identifiers: Vec<identifiers::NewIdentifier>,
}

fn validate_fields(
    name: Option<&str>,
    sex: Option<&str>,
    birth_date: Option<&str>,
    phone: Option<&str>,
    rid: Option<&str>,
) -> ApiResult<()> {
    if let Some(n) = name {
        if n.trim().is_empty() || n.chars().count() > 100 {
            return Err(ApiError::validation("name", "1 to 100 characters"));
        }
    }
    if let Some(s) = sex {
        if s.parse::<crate::domain::people::Sex>().is_err() {
            return Err(ApiError::validation("sex", "one of female, male, other, unknown"));
        }
    }
    if let Some(b) = birth_date {
        let d = chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d")
            .map_err(|_| ApiError::validation("birth_date", "a date as YYYY-MM-DD"))?;
        if d > chrono::Utc::now().date_naive() || d.year_ce().1 < 1880 {
            return Err(ApiError::validation("birth_date", "must lie between 1880 and today"));
        }
    }
    if let Some(p) = phone {
        if p.len() > 30 || !p.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ')) {
            return Err(ApiError::validation("phone", "digits, spaces, '+' and '-' only"));
        }
    }
    if let Some(r) = rid {
        if !r.is_empty() {
            resident_id::validate(r).map_err(|m| ApiError::validation("resident_id", m))?;
        }
    }
    Ok(())
}

use chrono::Datelike;

pub async fn create_patient(db: &Db, actor: &AuthUser, p: &NewPatient, qr_format: &str) -> ApiResult<String> {
    validate_fields(Some(&p.name), Some(&p.sex), Some(&p.birth_date), Some(&p.phone), Some(&p.resident_id))?;
    if p.identifiers.len() > 10 {
        return Err(ApiError::validation("identifiers", "at most 10"));
    }
    let parser = health_card::parser_for(qr_format).ok_or_else(|| ApiError::internal("unknown health card format"))?;
    let checked = p
        .identifiers
        .iter()
        .enumerate()
        .map(|(i, n)| identifiers::check(n, parser.as_ref(), &format!("identifiers[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    let home = p.home_organisation_id.clone().unwrap_or_else(|| actor.org.clone());
    match actor.role {
        Role::Coordinator
            if home == actor.org || crate::directory::linked_centres(db, &actor.org).await?.contains(&home) => {}
        Role::Coordinator => {
            return Err(ApiError::forbidden(
                "coordinators register patients of their own hospital and its linked centres",
            ))
        }
        Role::CommunityDoctor if home == actor.org => {}
        Role::CommunityDoctor => {
            return Err(ApiError::forbidden("community doctors register patients of their own centre"))
        }
        _ => {
            return Err(ApiError::forbidden(
                "patients are registered by their centre's community doctors or their consortium's coordinators",
            ))
        }
    }
    let mut tx = audit::begin(db).await?;
    let resident_id = p.resident_id.trim().to_uppercase();
    let record = store::NewRecord {
        name: p.name.trim(),
        sex: &p.sex,
        birth_date: &p.birth_date,
        phone: p.phone.trim(),
        resident_id: &resident_id,
        home_organisation_id: &home,
    };
    let id = store::insert(&mut tx, &record).await?;
    tx.audit(audit::event(actor, "create", "patient", &id).patient(&id)).await?;
    identifiers::insert(&mut tx, actor, &id, &checked).await?;
    tx.commit().await?;
    Ok(id)
}

async fn post(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewPatient>,
) -> ApiResult<(StatusCode, Json<Patient>)> {
    let id = create_patient(&state.db, &user, &body, &state.config.health_card_qr_format).await?;
    let p = find_visible(&state.db, &user, &id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    Ok((StatusCode::CREATED, Json(with_identifiers(&state.db, present(&user, p)).await?)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientPatch {
    pub name: Option<String>,
    pub sex: Option<String>,
    pub birth_date: Option<String>,
    pub phone: Option<String>,
    pub resident_id: Option<String>,
}

async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
    Json(p): Json<PatientPatch>,
) -> ApiResult<Json<Patient>> {
    // Seeing a record is not editing it: the record is kept by its home organisation's staff.
    let before = load_to_act(&state.db, &user, &id, "update").await?;
    let done = async {
        if !may_edit(&user, &before) {
            return Err(ApiError::forbidden("patient records are edited by their home organisation's staff"));
        }
        validate_fields(
            p.name.as_deref(),
            p.sex.as_deref(),
            p.birth_date.as_deref(),
            p.phone.as_deref(),
            p.resident_id.as_deref(),
        )?;
        let update = store::RecordUpdate {
            name: p.name.map(|n| n.trim().to_string()),
            sex: p.sex,
            birth_date: p.birth_date,
            phone: p.phone,
            resident_id: p.resident_id.map(|r| r.trim().to_uppercase()),
        };
        // An editor sees the record in full (its resident ID unmasked): what it replaces is kept.
        let previous = crate::record::revisions::replaced(&[
            ("name", &before.name, update.name.as_deref()),
            ("sex", before.sex.as_str(), update.sex.as_deref()),
            ("birth_date", &before.birth_date, update.birth_date.as_deref()),
            ("phone", &before.phone, update.phone.as_deref()),
            ("resident_id", &before.resident_id, update.resident_id.as_deref()),
        ]);
        let mut tx = audit::begin(&state.db).await?;
        crate::record::revisions::keep(&mut tx, &id, "patient", &id, &user.id, previous).await?;
        store::update(&mut tx, &id, update).await?;
        tx.audit(acted(&user, &id, "update")).await?;
        tx.commit().await
    };
    acted(&user, &id, "update").if_refused(&state.db, done.await).await?;
    let after = find_visible(&state.db, &user, &id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    Ok(Json(present(&user, after)))
}

pub fn routes() -> Routes {
    Routes::new("patients")
        .get("/api/v1/patients", "Patients the caller may see (search with q)", list)
        .query::<PatientFilter>()
        .json::<crate::api::Page<Patient>>(200)
        .post("/api/v1/patients", "Register a patient at a centre", post)
        .body::<NewPatient>()
        .json::<Patient>(201)
        .errors(&[409])
        .get("/api/v1/patients/{id}", "One patient record (404 if not visible)", get_one)
        .json::<Patient>(200)
        .patch("/api/v1/patients/{id}", "Update a patient record (home centre staff, admins)", patch)
        .body::<PatientPatch>()
        .json::<Patient>(200)
        .post(
            "/api/v1/patients/{id}/identifiers",
            "Add an identifier (health card by number or QR code, insurance number, phone)",
            identifiers::add,
        )
        .body::<identifiers::NewIdentifier>()
        .json::<identifiers::IdentifierView>(201)
        .errors(&[409])
        .post(
            "/api/v1/patients/{id}/identifiers/{identifier_id}/retire",
            "Retire an identifier (kept for the record, no longer matched)",
            identifiers::retire,
        )
        .body::<identifiers::RetireIdentifier>()
        .json::<identifiers::IdentifierView>(200)
}
