//! Storage side of devices: a device found by its token's hash, the time it was last seen,
//! devices as their managers list them, issuing and revoking. Stored kinds decode into
//! [`DeviceKind`]; an unknown one is an error.

use super::{policy, DeviceKind, DeviceView};
use crate::db::filter::Filtered;
use crate::db::{new_id, now_ts, Db};
use crate::domain::people::Role;
use crate::error::ApiResult;

/// A device as its token finds it.
#[derive(sqlx::FromRow)]
pub struct TokenRow {
    pub id: String,
    pub organisation_id: String,
    #[sqlx(try_from = "String")]
    pub kind: DeviceKind,
    pub label: String,
    pub patient_id: Option<String>,
    pub revoked_at: Option<String>,
    pub last_seen_at: Option<String>,
    /// Whether the device's organisation is active (a deactivated one's devices are refused).
    pub organisation_active: i64,
}

/// The device whose token has this hash, revoked or not.
pub async fn by_token_hash(db: &Db, token_hash: &str) -> ApiResult<Option<TokenRow>> {
    Ok(sqlx::query_as(
        "SELECT d.id, d.organisation_id, d.kind, d.label, d.patient_id, d.revoked_at, d.last_seen_at,
                o.active AS organisation_active
           FROM devices d JOIN organisations o ON o.id = d.organisation_id WHERE d.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&db.pool)
    .await?)
}

/// Whether the device may still act: not revoked, and its organisation active. Asked on
/// every request of an access a device handed out (a kiosk's check-in), and at every
/// heartbeat of the call it joined.
pub async fn is_active(db: &Db, id: &str) -> ApiResult<bool> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM devices d JOIN organisations o ON o.id = d.organisation_id
          WHERE d.id = $1 AND d.revoked_at IS NULL AND o.active = 1",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await?;
    Ok(n > 0)
}

/// [`is_active`] of many devices in one statement: the active ones among `ids`.
pub async fn active_among(db: &Db, ids: &[&str]) -> ApiResult<std::collections::HashSet<String>> {
    let mut active = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT d.id FROM devices d JOIN organisations o ON o.id = d.organisation_id
              WHERE d.id IN ({}) AND d.revoked_at IS NULL AND o.active = 1",
            crate::db::batch::list(chunk.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String,)>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        active.extend(q.fetch_all(&db.pool).await?.into_iter().map(|(id,)| id));
    }
    Ok(active)
}

pub async fn touch_last_seen(db: &Db, id: &str, at: &str) -> ApiResult<()> {
    sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(&mut *db.writer().await?)
        .await?;
    Ok(())
}

/// A device as its managers see it, with what the rules need.
#[derive(sqlx::FromRow)]
pub struct ViewRow {
    pub id: String,
    pub organisation_id: String,
    pub organisation_name: String,
    #[sqlx(try_from = "String")]
    pub kind: DeviceKind,
    pub label: String,
    pub patient_id: Option<String>,
    pub patient_home_org: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<String>,
    pub last_seen_at: Option<String>,
}

impl ViewRow {
    pub fn target(&self) -> policy::Target<'_> {
        policy::Target {
            org: &self.organisation_id,
            kind: self.kind,
            patient_home_org: self.patient_home_org.as_deref(),
        }
    }

    pub fn view(self) -> DeviceView {
        DeviceView {
            kind: self.kind,
            id: self.id,
            organisation_id: self.organisation_id,
            organisation_name: self.organisation_name,
            label: self.label,
            patient_id: self.patient_id,
            created_by: self.created_by,
            created_at: self.created_at,
            revoked_by: self.revoked_by,
            revoked_at: self.revoked_at,
            last_seen_at: self.last_seen_at,
        }
    }
}

const VIEW_SELECT: &str = "SELECT d.id, d.organisation_id, o.name AS organisation_name, d.kind, d.label, d.patient_id,
        p.home_organisation_id AS patient_home_org, d.created_by, d.created_at, d.revoked_by, d.revoked_at, d.last_seen_at
     FROM devices d JOIN organisations o ON o.id = d.organisation_id LEFT JOIN patients p ON p.id = d.patient_id";

pub async fn view_row(db: &Db, id: &str) -> ApiResult<Option<ViewRow>> {
    Ok(sqlx::query_as(&format!("{VIEW_SELECT} WHERE d.id = $1")).bind(id).fetch_optional(&db.pool).await?)
}

/// What a listing selects beyond the caller's scope; `None` selects any.
pub struct ListFilter<'a> {
    pub organisation_id: Option<&'a str>,
    pub kind: Option<DeviceKind>,
    pub patient_id: Option<&'a str>,
    pub include_revoked: bool,
    /// Devices after this one (by id).
    pub after: Option<&'a str>,
}

/// Up to `limit` devices in the scope of a caller of `role` at `org` (the rules are applied
/// again on each row), by id.
pub async fn list(db: &Db, role: Role, org: &str, f: ListFilter<'_>, limit: i64) -> ApiResult<Vec<ViewRow>> {
    let mut q = Filtered::new(VIEW_SELECT);
    match role {
        Role::Admin => {}
        Role::Coordinator => {
            q.condition()
                .push("(d.organisation_id = ")
                .push_bind(org)
                .push(" OR d.organisation_id IN (SELECT centre_id FROM consortium_links WHERE hospital_id = ")
                .push_bind(org)
                .push("))");
        }
        _ => {
            q.condition()
                .push("(d.organisation_id = ")
                .push_bind(org)
                .push(" AND d.kind = ")
                .push_bind(DeviceKind::Home.as_str())
                .push(" AND p.home_organisation_id = ")
                .push_bind(org)
                .push(")");
        }
    }
    if let Some(o) = f.organisation_id {
        q.condition().push("d.organisation_id = ").push_bind(o);
    }
    if let Some(k) = f.kind {
        q.condition().push("d.kind = ").push_bind(k.as_str());
    }
    if let Some(p) = f.patient_id {
        q.condition().push("d.patient_id = ").push_bind(p);
    }
    if !f.include_revoked {
        q.condition().push("d.revoked_at IS NULL");
    }
    if let Some(after) = f.after {
        q.condition().push("d.id > ").push_bind(after);
    }
    q.push(" ORDER BY d.id LIMIT ").push_bind(limit);
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// A new device as stored (its token as its hash).
pub struct NewDeviceRow<'a> {
    pub organisation_id: &'a str,
    pub kind: DeviceKind,
    pub label: &'a str,
    pub patient_id: Option<&'a str>,
    pub token_hash: &'a str,
    pub created_by: &'a str,
}

/// Inserts the device within `conn`'s transaction; answers its id.
pub async fn insert(conn: &mut sqlx::AnyConnection, d: &NewDeviceRow<'_>) -> ApiResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO devices (id, organisation_id, kind, label, patient_id, token_hash, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(d.organisation_id)
    .bind(d.kind.as_str())
    .bind(d.label)
    .bind(d.patient_id)
    .bind(d.token_hash)
    .bind(d.created_by)
    .bind(now_ts())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

pub async fn revoke(conn: &mut sqlx::AnyConnection, id: &str, by: &str) -> ApiResult<()> {
    sqlx::query("UPDATE devices SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
        .bind(now_ts())
        .bind(by)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
