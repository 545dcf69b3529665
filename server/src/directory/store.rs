//! Storage side of the directory: organisations, consortium links, specialties,
//! departments, user accounts with their expert profiles, and the end of an account's
//! sessions. Stored kinds and roles decode into [`crate::domain::people`]; an unknown one is
//! an error.

use super::{ConsortiumLink, Department, ExpertView, Organisation, Specialty, UserView};
use crate::db::filter::Filtered;
use crate::db::{new_id, now_ts, Db};
use crate::domain::people::{OrgKind, Role};
use crate::error::ApiResult;

// ---------- organisations ----------

#[derive(sqlx::FromRow)]
struct OrganisationRow {
    id: String,
    name: String,
    #[sqlx(try_from = "String")]
    kind: OrgKind,
    address: String,
    active: i64,
    created_at: String,
}

impl OrganisationRow {
    fn view(self) -> Organisation {
        Organisation {
            id: self.id,
            name: self.name,
            kind: self.kind,
            address: self.address,
            active: self.active,
            created_at: self.created_at,
        }
    }
}

const ORGANISATION_SELECT: &str = "SELECT id, name, kind, address, active, created_at FROM organisations";

pub async fn insert_organisation(db: &Db, name: &str, kind: OrgKind, address: &str) -> ApiResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO organisations (id, name, kind, address, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(kind.as_str())
    .bind(address)
    .bind(now_ts())
    .execute(&mut *db.writer().await?)
    .await?;
    Ok(id)
}

/// Every organisation, by name.
pub async fn organisations(db: &Db) -> ApiResult<Vec<Organisation>> {
    let rows: Vec<OrganisationRow> =
        sqlx::query_as(&format!("{ORGANISATION_SELECT} ORDER BY name")).fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(OrganisationRow::view).collect())
}

pub async fn organisation(db: &Db, id: &str) -> ApiResult<Option<Organisation>> {
    let row: Option<OrganisationRow> =
        sqlx::query_as(&format!("{ORGANISATION_SELECT} WHERE id = $1")).bind(id).fetch_optional(&db.pool).await?;
    Ok(row.map(OrganisationRow::view))
}

/// Whether the database holds any organisation (an empty one gets the demo consortium).
pub async fn has_organisations(db: &Db) -> ApiResult<bool> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM organisations").fetch_one(&db.pool).await?;
    Ok(count > 0)
}

/// Whether an active organisation has this id.
pub async fn is_active_organisation(db: &Db, id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM organisations WHERE id = $1 AND active = 1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.is_some())
}

pub async fn organisation_name(db: &Db, id: &str) -> ApiResult<String> {
    let (name,): (String,) =
        sqlx::query_as("SELECT name FROM organisations WHERE id = $1").bind(id).fetch_one(&db.pool).await?;
    Ok(name)
}

/// The kinds of the organisations among `ids` that exist.
pub async fn organisation_kinds(db: &Db, a: &str, b: &str) -> ApiResult<Vec<(String, OrgKind)>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, kind FROM organisations WHERE id = $1 OR id = $2")
        .bind(a)
        .bind(b)
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter().map(|(id, kind)| Ok((id, kind.parse::<OrgKind>()?))).collect()
}

/// Updates the fields given; the rows changed (0: no such organisation).
pub async fn update_organisation(
    db: &Db,
    id: &str,
    name: Option<String>,
    address: Option<String>,
    active: Option<bool>,
) -> ApiResult<u64> {
    Ok(sqlx::query(
        "UPDATE organisations SET name = COALESCE($1, name), address = COALESCE($2, address), active = COALESCE($3, active), updated_at = $4 WHERE id = $5",
    )
    .bind(name)
    .bind(address)
    .bind(active.map(i64::from))
    .bind(now_ts())
    .bind(id)
    .execute(&mut *db.writer().await?)
    .await?
    .rows_affected())
}

// ---------- consortium links ----------

pub async fn insert_link(conn: &mut sqlx::AnyConnection, hospital_id: &str, centre_id: &str) -> ApiResult<String> {
    let id = new_id();
    sqlx::query("INSERT INTO consortium_links (id, hospital_id, centre_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(hospital_id)
        .bind(centre_id)
        .bind(now_ts())
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Ends a link: it leaves `consortium_links` for `consortium_links_ended`, with who ended it,
/// when and why. Returns the hospital and the centre it linked; `None` when no link has that id.
pub async fn end_link(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    actor_id: &str,
    reason: &str,
) -> ApiResult<Option<(String, String)>> {
    let link: Option<(String, String)> =
        sqlx::query_as("SELECT hospital_id, centre_id FROM consortium_links WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if link.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "INSERT INTO consortium_links_ended (id, hospital_id, centre_id, created_at, ended_at, ended_by, reason)
         SELECT id, hospital_id, centre_id, created_at, $2, $3, $4 FROM consortium_links WHERE id = $1",
    )
    .bind(id)
    .bind(now_ts())
    .bind(actor_id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM consortium_links WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(link)
}

/// The ids and roles of the accounts of an organisation.
pub async fn member_ids(db: &Db, organisation_id: &str) -> ApiResult<Vec<(String, Role)>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, role FROM users WHERE organisation_id = $1")
        .bind(organisation_id)
        .fetch_all(&db.pool)
        .await?;
    rows.into_iter()
        .map(|(id, role)| Ok((id, role.parse::<Role>().map_err(crate::error::ApiError::internal)?)))
        .collect()
}

/// Locks an organisation's row for the rest of the transaction (on PostgreSQL; SQLite's write
/// transactions are serial already): two links of the same centre made at once are decided one
/// after the other, the second seeing the first.
pub async fn lock_organisation(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE organisations SET updated_at = updated_at WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// Whether two organisations are linked in the consortium (either way round).
pub async fn linked(db: &Db, a: &str, b: &str) -> ApiResult<bool> {
    let (links,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM consortium_links WHERE (hospital_id = $1 AND centre_id = $2) OR (hospital_id = $2 AND centre_id = $1)",
    )
    .bind(a)
    .bind(b)
    .fetch_one(&db.pool)
    .await?;
    Ok(links > 0)
}

/// Whether any hospital holds the centre in its consortium.
pub async fn centre_is_linked(conn: &mut sqlx::AnyConnection, centre_id: &str) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM consortium_links WHERE centre_id = $1 LIMIT 1")
        .bind(centre_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Every link, by hospital and centre name.
pub async fn links(db: &Db) -> ApiResult<Vec<ConsortiumLink>> {
    Ok(sqlx::query_as(
        "SELECT l.id, l.hospital_id, h.name AS hospital_name, l.centre_id, c.name AS centre_name, l.created_at
         FROM consortium_links l JOIN organisations h ON h.id = l.hospital_id JOIN organisations c ON c.id = l.centre_id
         ORDER BY h.name, c.name",
    )
    .fetch_all(&db.pool)
    .await?)
}

/// The centres linked to a hospital.
pub async fn linked_centres(db: &Db, hospital_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT centre_id FROM consortium_links WHERE hospital_id = $1")
        .bind(hospital_id)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

// ---------- specialties and departments ----------

pub async fn specialties(db: &Db) -> ApiResult<Vec<Specialty>> {
    Ok(sqlx::query_as("SELECT code, name_en, name_zh FROM specialties ORDER BY code").fetch_all(&db.pool).await?)
}

pub async fn insert_specialty(db: &Db, code: &str, name_en: &str, name_zh: &str) -> ApiResult<()> {
    sqlx::query("INSERT INTO specialties (code, name_en, name_zh) VALUES ($1, $2, $3)")
        .bind(code)
        .bind(name_en)
        .bind(name_zh)
        .execute(&mut *db.writer().await?)
        .await?;
    Ok(())
}

pub async fn insert_department(db: &Db, org: &str, name: &str, specialty: &str) -> ApiResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO departments (id, organisation_id, name, specialty, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(specialty)
    .bind(now_ts())
    .execute(&mut *db.writer().await?)
    .await?;
    Ok(id)
}

/// The departments of an organisation, by name.
pub async fn departments(db: &Db, org: &str) -> ApiResult<Vec<Department>> {
    Ok(sqlx::query_as(
        "SELECT id, organisation_id, name, specialty FROM departments WHERE organisation_id = $1 ORDER BY name",
    )
    .bind(org)
    .fetch_all(&db.pool)
    .await?)
}

// ---------- users ----------

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    #[sqlx(try_from = "String")]
    role: Role,
    organisation_id: String,
    organisation_name: String,
    #[sqlx(try_from = "String")]
    organisation_kind: OrgKind,
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

/// The views of `rows`, with the specialties of the experts among them.
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

pub async fn user(db: &Db, id: &str) -> ApiResult<Option<UserView>> {
    let rows: Vec<UserRow> =
        sqlx::query_as(&format!("{USER_SELECT} WHERE u.id = $1")).bind(id).fetch_all(&db.pool).await?;
    Ok(user_views(db, rows).await?.into_iter().next())
}

/// Accounts of `role` and of organisation `org` (each: any when `None`), by username.
pub async fn users(db: &Db, role: Option<Role>, org: Option<&str>) -> ApiResult<Vec<UserView>> {
    let mut q = Filtered::new(USER_SELECT);
    if let Some(role) = role {
        q.condition().push("u.role = ").push_bind(role.as_str());
    }
    if let Some(org) = org {
        q.condition().push("u.organisation_id = ").push_bind(org);
    }
    q.push(" ORDER BY u.username");
    let rows: Vec<UserRow> = q.build_query_as().fetch_all(&db.pool).await?;
    user_views(db, rows).await
}

/// Active expert accounts, of `specialty` if given, by display name.
pub async fn experts(db: &Db, specialty: Option<&str>) -> ApiResult<Vec<UserView>> {
    let mut q = Filtered::new(USER_SELECT);
    q.push(" WHERE u.role = ").push_bind(Role::Expert.as_str()).push(" AND u.active = 1");
    if let Some(s) = specialty {
        q.push(" AND u.id IN (SELECT user_id FROM expert_specialties WHERE specialty = ").push_bind(s).push(")");
    }
    q.push(" ORDER BY u.display_name");
    let rows: Vec<UserRow> = q.build_query_as().fetch_all(&db.pool).await?;
    user_views(db, rows).await
}

/// The active accounts of `role` at organisation `org`, by id.
pub async fn active_user_ids(db: &Db, org: &str, role: Role) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM users WHERE organisation_id = $1 AND role = $2 AND active = 1 ORDER BY id")
            .bind(org)
            .bind(role.as_str())
            .fetch_all(&db.pool)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// A new account as stored (its password already hashed).
pub struct NewAccount<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub organisation_id: &'a str,
    pub department_id: Option<&'a str>,
    pub created_at: &'a str,
}

pub async fn insert_user(conn: &mut sqlx::AnyConnection, a: &NewAccount<'_>) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash, role, organisation_id, department_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(a.id)
    .bind(a.username)
    .bind(a.display_name)
    .bind(a.password_hash)
    .bind(a.role.as_str())
    .bind(a.organisation_id)
    .bind(a.department_id)
    .bind(a.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn insert_expert_profile(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    title: &str,
    time_zone: &str,
    specialties: &[String],
) -> ApiResult<()> {
    sqlx::query("INSERT INTO expert_profiles (user_id, title, time_zone) VALUES ($1, $2, $3)")
        .bind(user_id)
        .bind(title)
        .bind(time_zone)
        .execute(&mut *conn)
        .await?;
    insert_specialties(conn, user_id, specialties).await
}

async fn insert_specialties(conn: &mut sqlx::AnyConnection, user_id: &str, specialties: &[String]) -> ApiResult<()> {
    for s in specialties {
        sqlx::query("INSERT INTO expert_specialties (user_id, specialty) VALUES ($1, $2)")
            .bind(user_id)
            .bind(s)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Changes an expert's profile: each given part replaces the one stored.
pub async fn update_expert_profile(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    title: Option<&str>,
    time_zone: Option<&str>,
    specialties: Option<&[String]>,
) -> ApiResult<()> {
    sqlx::query("UPDATE expert_profiles SET title = COALESCE($1, title), time_zone = COALESCE($2, time_zone) WHERE user_id = $3")
        .bind(title)
        .bind(time_zone)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    if let Some(list) = specialties {
        sqlx::query("DELETE FROM expert_specialties WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
        insert_specialties(conn, user_id, list).await?;
    }
    Ok(())
}

/// Links a patient record with no login yet to the account; false if there is no such record.
pub async fn link_patient_login(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    patient_id: &str,
    now: &str,
) -> ApiResult<bool> {
    let linked = sqlx::query("UPDATE patients SET user_id = $1, updated_at = $2 WHERE id = $3 AND user_id IS NULL")
        .bind(user_id)
        .bind(now)
        .bind(patient_id)
        .execute(&mut *conn)
        .await?;
    Ok(linked.rows_affected() > 0)
}

/// Makes the account's password a one-time password (the owner must change it).
pub async fn require_password_change(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE users SET must_change_password = 1 WHERE id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// The changes of an account management update; `None` leaves a field as it is. A password
/// hash set here is a one-time password (the owner must change it).
pub struct AccountUpdate {
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub active: Option<bool>,
    pub department_id: Option<String>,
    pub role: Option<Role>,
}

pub async fn update_user(conn: &mut sqlx::AnyConnection, id: &str, u: AccountUpdate) -> ApiResult<()> {
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($1, display_name), password_hash = COALESCE($2, password_hash),
            must_change_password = CASE WHEN $2 IS NULL THEN must_change_password ELSE 1 END,
            active = COALESCE($3, active), department_id = COALESCE($4, department_id), role = COALESCE($5, role),
            updated_at = $6 WHERE id = $7",
    )
    .bind(u.display_name)
    .bind(u.password_hash)
    .bind(u.active.map(i64::from))
    .bind(u.department_id)
    .bind(u.role.map(|r| r.as_str()))
    .bind(now_ts())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Revokes the user's refresh tokens (all, or all but one family) within `conn`'s transaction.
pub async fn revoke_refresh_tokens(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    keep_family: Option<&str>,
) -> ApiResult<u64> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND family_id <> $3",
    )
    .bind(now_ts())
    .bind(user_id)
    .bind(keep_family.unwrap_or(""))
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Ends every access token the user holds (bumps the generation) within `conn`'s
/// transaction; call `Accounts::changed` once it has committed.
pub async fn bump_generation(conn: &mut sqlx::AnyConnection, user_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
