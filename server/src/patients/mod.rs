//! Patient records: who may see which patient (by role AND relationship), the resident ID
//! number masked for those who need not see it, and an audit event for every read and write.
//! A record the caller may not see answers 404, as if it did not exist. Records are never
//! deleted.

pub mod health_card;
pub mod identifiers;
pub mod resident_id;

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::audit::{self, Outcome};
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, Db};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// SQL predicate over `patients p` that holds when the caller may see the record.
/// Binds: `$1` the caller's user id, `$2` the caller's organisation id.
pub fn visibility_predicate(role: Role) -> &'static str {
    match role {
        Role::Admin => "($1 <> '' OR $2 <> '')",
        Role::Coordinator => {
            "(p.home_organisation_id = $2 OR p.home_organisation_id IN (SELECT centre_id FROM consortium_links WHERE hospital_id = $2) OR $1 = '')"
        }
        Role::CommunityDoctor => {
            "(p.home_organisation_id = $2
              OR p.id IN (SELECT patient_id FROM referrals WHERE to_organisation_id = $2 AND status IN ('requested', 'accepted'))
              OR $1 = '')"
        }
        Role::Expert => {
            "(p.id IN (SELECT c.patient_id FROM consultations c JOIN consultation_participants cp ON cp.consultation_id = c.id
                       WHERE cp.user_id = $1 AND cp.status <> 'declined')
              OR p.id IN (SELECT patient_id FROM referrals WHERE assigned_to = $1 AND status IN ('requested', 'accepted'))
              OR $2 = '')"
        }
        Role::Patient => "(p.user_id = $1 OR $2 = '')",
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Patient {
    pub id: String,
    pub name: String,
    pub sex: String,
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

const PATIENT_SELECT: &str = "SELECT p.id, p.name, p.sex, p.birth_date, p.phone, p.resident_id, p.home_organisation_id,
        o.name AS home_organisation_name, p.user_id, p.created_at, p.updated_at
     FROM patients p JOIN organisations o ON o.id = p.home_organisation_id";

/// Whether `user` sees the full resident ID number of `p`: admins, the staff of the
/// patient's home centre, and the patient themself.
fn sees_full_resident_id(user: &AuthUser, p: &Patient) -> bool {
    match user.role {
        Role::Admin => true,
        Role::CommunityDoctor | Role::Coordinator => p.home_organisation_id == user.org,
        Role::Patient => p.user_id.as_deref() == Some(user.id.as_str()),
        Role::Expert => false,
    }
}

/// Whether `user` may edit the record `p` (which they can see): admins, and the community
/// doctors and coordinators of the patient's home organisation. A coordinator who sees a
/// linked centre's patients does not edit that centre's records.
pub fn may_edit(user: &AuthUser, p: &Patient) -> bool {
    match user.role {
        Role::Admin => true,
        Role::CommunityDoctor | Role::Coordinator => p.home_organisation_id == user.org,
        Role::Expert | Role::Patient => false,
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
    let sql = format!("{PATIENT_SELECT} WHERE p.id = $3 AND {}", visibility_predicate(user.role));
    let row: Option<Patient> =
        sqlx::query_as(&sql).bind(&user.id).bind(&user.org).bind(id).fetch_optional(&db.pool).await?;
    Ok(row)
}

/// Loads a visible patient for `action`, auditing the access or the refusal.
pub async fn load_for(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<Patient> {
    match find_visible(db, user, id).await? {
        Some(p) => {
            audit::event(user, action, "patient", id).patient(id).record(db).await?;
            Ok(present(user, p))
        }
        None => {
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT id FROM patients WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
            audit::event(user, action, "patient", id)
                .maybe_patient(exists.map(|e| e.0))
                .outcome(Outcome::Denied)
                .record(db)
                .await?;
            Err(ApiError::not_found("patient"))
        }
    }
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
    let sql = format!(
        "{PATIENT_SELECT} WHERE {} AND ($3 = '' OR p.name LIKE $3) AND ($4 = '' OR p.id = $4 OR p.resident_id = $5)
         ORDER BY p.id LIMIT $6 OFFSET $7",
        visibility_predicate(user.role)
    );
    let prefix = name_prefix.trim().replace(['%', '_'], "");
    let rows: Vec<Patient> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&user.org)
        .bind(if prefix.is_empty() { String::new() } else { format!("{prefix}%") })
        .bind(identifier.trim())
        .bind(identifier.trim().to_uppercase())
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&db.pool)
        .await?;
    let rows: Vec<Patient> = rows
        .into_iter()
        .filter(|p| identifier.is_empty() || p.id == identifier || sees_full_resident_id(user, p))
        .collect();
    let mut tx = db.begin_write().await?;
    for p in &rows {
        audit::event(user, action, "patient", &p.id).patient(&p.id).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
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
    let sql = format!(
        "{PATIENT_SELECT} WHERE {} AND ($3 = '' OR p.name LIKE $3 OR p.phone LIKE $3) AND ($4 = '' OR p.id > $4) ORDER BY p.id LIMIT $5",
        visibility_predicate(user.role)
    );
    let q = f.q.map(|q| q.trim().replace(['%', '_'], "")).filter(|q| !q.is_empty()).map(|q| format!("%{q}%"));
    let rows: Vec<Patient> = sqlx::query_as(&sql)
        .bind(&user.id)
        .bind(&user.org)
        .bind(q.unwrap_or_default())
        .bind(crate::api::page_cursor(f.cursor)?)
        .bind(limit as i64 + 1)
        .fetch_all(&state.db.pool)
        .await?;
    let page = crate::api::page(rows, limit, |p| p.id.clone());
    let mut tx = state.db.begin_write().await?;
    for p in &page.items {
        audit::event(&user, "list", "patient", &p.id).patient(&p.id).record_with(&mut *tx).await?;
    }
    tx.commit().await?;
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
        if !matches!(s, "female" | "male" | "other" | "unknown") {
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
        Role::Admin | Role::Coordinator => {}
        Role::CommunityDoctor if home == actor.org => {}
        Role::CommunityDoctor => {
            return Err(ApiError::forbidden("community doctors register patients of their own centre"))
        }
        _ => return Err(ApiError::forbidden("only community doctors, coordinators and admins register patients")),
    }
    let id = new_id();
    let now = now_ts();
    let mut tx = audit::begin(db).await?;
    sqlx::query(
        "INSERT INTO patients (id, name, sex, birth_date, phone, resident_id, home_organisation_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(p.name.trim())
    .bind(&p.sex)
    .bind(&p.birth_date)
    .bind(p.phone.trim())
    .bind(p.resident_id.trim().to_uppercase())
    .bind(&home)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
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
    let before = load_for(&state.db, &user, &id, "read_for_update").await?;
    if !may_edit(&user, &before) {
        audit::event(&user, "update", "patient", &id).patient(&id).outcome(Outcome::Denied).record(&state.db).await?;
        return Err(ApiError::forbidden("patient records are edited by their home organisation's staff and admins"));
    }
    validate_fields(
        p.name.as_deref(),
        p.sex.as_deref(),
        p.birth_date.as_deref(),
        p.phone.as_deref(),
        p.resident_id.as_deref(),
    )?;
    let mut tx = audit::begin(&state.db).await?;
    sqlx::query(
        "UPDATE patients SET name = COALESCE($1, name), sex = COALESCE($2, sex), birth_date = COALESCE($3, birth_date),
            phone = COALESCE($4, phone), resident_id = COALESCE($5, resident_id), updated_at = $6 WHERE id = $7",
    )
    .bind(p.name.map(|n| n.trim().to_string()))
    .bind(p.sex)
    .bind(p.birth_date)
    .bind(p.phone)
    .bind(p.resident_id.map(|r| r.trim().to_uppercase()))
    .bind(now_ts())
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    tx.audit(audit::event(&user, "update", "patient", &id).patient(&id)).await?;
    tx.commit().await?;
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
