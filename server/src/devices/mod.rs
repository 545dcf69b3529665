//! Devices that act without a person at the keyboard: kiosks at a medical corner or clinic,
//! measuring devices at home (bound to one patient) or in a clinic. Each has its own token,
//! shown once when it is issued and kept only as its SHA-256; revocation is immediate (every
//! request looks the device up). Who may issue and revoke which device is [`policy`].
//!
//! Device routes authenticate with `Authorization: Device <token>` through [`DeviceAuth`]; user
//! routes accept only user access tokens (`Bearer`), and device routes refuse them. Failed
//! device authentication is throttled per client address (`auth::throttle`) and audited.

pub mod policy;

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::audit::{self, Outcome};
use crate::auth::throttle::{Key, Verdict};
use crate::auth::{AuthUser, ClientAddr, Role};
use crate::db::{new_id, now_ts, ts, Db, Id};
use crate::directory::policy::Manager;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The authorization scheme of device tokens.
pub const SCHEME: &str = "Device";

/// Every device token starts with this, so one found in a log or a paste is recognisable.
pub const TOKEN_PREFIX: &str = "tcdev_";

/// `last_seen_at` is written at most this often per device (seconds), so that a busy device
/// does not turn every request into a write.
pub const LAST_SEEN_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A check-in kiosk at a medical corner or clinic (a browser opened with `?kiosk=1`).
    Kiosk,
    /// A measuring device at a patient's home, bound to that patient.
    Home,
    /// A measuring device in a clinic.
    Clinic,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Kiosk => "kiosk",
            DeviceKind::Home => "home",
            DeviceKind::Clinic => "clinic",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceKind> {
        Some(match s {
            "kiosk" => DeviceKind::Kiosk,
            "home" => DeviceKind::Home,
            "clinic" => DeviceKind::Clinic,
            _ => return None,
        })
    }
}

/// The device a request comes from, authenticated by its token (`Authorization: Device
/// <token>`): use it as an extractor on device routes.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    pub device_id: String,
    pub organisation_id: String,
    pub kind: DeviceKind,
    /// The patient a home device is bound to.
    pub patient_id: Option<String>,
    pub label: String,
    pub client_addr: String,
}

impl DeviceAuth {
    /// Refuses a device of another kind (403 `forbidden`).
    pub fn require(&self, kinds: &[DeviceKind]) -> ApiResult<()> {
        if kinds.contains(&self.kind) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("a {} device may not do this", self.kind.as_str())))
        }
    }

    /// An audit event by this device.
    pub fn event(&self, action: &str, resource_type: &str, resource_id: &str) -> audit::AuditEvent {
        audit::device_event(Some(&self.device_id), &self.client_addr, action, resource_type, resource_id)
    }
}

/// What the `Authorization` header presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    Device(&'a str),
    /// Another scheme (a user's `Bearer` token).
    Other,
}

/// Pure: reads the `Authorization` header's value.
pub fn presented(header: Option<&str>) -> Presented<'_> {
    let Some(value) = header else { return Presented::None };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(SCHEME) && !token.trim().is_empty() => {
            Presented::Device(token.trim())
        }
        _ => Presented::Other,
    }
}

/// A new device token: the prefix and 256 random bits.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", crate::signaling::tickets::random_token())
}

/// The stored form of a device token.
pub fn token_hash(token: &str) -> String {
    crate::signaling::tickets::hash(token)
}

/// Pure: whether `last_seen_at` (stored text, or none) is old enough at `now` to be written again.
pub fn last_seen_due(last_seen_at: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> bool {
    match last_seen_at.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        None => true,
        Some(t) => (now - t.with_timezone(&chrono::Utc)).num_seconds() >= LAST_SEEN_EVERY_SECS,
    }
}

fn device_revoked() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::DeviceRevoked,
        "Device revoked",
        "this device's token has been revoked; ask the clinic's administrator for a new one",
    )
}

fn device_token_required(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::DeviceTokenRequired, "Device token required", detail)
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    organisation_id: String,
    kind: String,
    label: String,
    patient_id: Option<String>,
    revoked_at: Option<String>,
    last_seen_at: Option<String>,
}

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = match presented(header) {
            Presented::Device(t) => t.to_string(),
            Presented::None => {
                return Err(device_token_required("this route is for devices: send Authorization: Device <token>"))
            }
            Presented::Other => {
                return Err(device_token_required(
                    "user access tokens are not accepted on device routes: send Authorization: Device <token>",
                ))
            }
        };
        let ClientAddr(client_addr) = ClientAddr::of(parts, &state.trusted_proxies);
        let key_name = format!("device-auth:{client_addr}");
        let keys = [Key { name: &key_name, limit: state.config.device_auth_failures_per_minute }];
        let started = Instant::now();
        let verdict = state.throttle.lock().unwrap_or_else(|e| e.into_inner()).begin(&keys, started);
        if let Verdict::Refused { retry_after_secs } = verdict {
            tracing::warn!(%client_addr, "device authentication refused: too many failures");
            return Err(ApiError::rate_limited(retry_after_secs));
        }
        let row: Option<DeviceRow> = if token.len() > 200 {
            None
        } else {
            sqlx::query_as(
                "SELECT id, organisation_id, kind, label, patient_id, revoked_at, last_seen_at FROM devices WHERE token_hash = $1",
            )
            .bind(token_hash(&token))
            .fetch_optional(&state.db.pool)
            .await?
        };
        let path = parts.uri.path().to_string();
        let Some(row) = row else {
            audit::device_event(None, &client_addr, "authenticate", "device", "")
                .outcome(Outcome::Denied)
                .detail(format!("unknown device token on {path}"))
                .record(&state.db)
                .await?;
            return Err(ApiError::unauthorized("the device token is not valid"));
        };
        if row.revoked_at.is_some() {
            audit::device_event(Some(&row.id), &client_addr, "authenticate", "device", &row.id)
                .outcome(Outcome::Denied)
                .detail(format!("revoked device token on {path}"))
                .record(&state.db)
                .await?;
            return Err(device_revoked());
        }
        state.throttle.lock().unwrap_or_else(|e| e.into_inner()).succeeded(&keys, started, "");
        let now = chrono::Utc::now();
        if last_seen_due(row.last_seen_at.as_deref(), now) {
            sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
                .bind(ts(now))
                .bind(&row.id)
                .execute(&state.db.pool)
                .await?;
        }
        let kind = DeviceKind::parse(&row.kind).ok_or_else(|| ApiError::internal("stored device kind is unknown"))?;
        Ok(DeviceAuth {
            device_id: row.id,
            organisation_id: row.organisation_id,
            kind,
            patient_id: row.patient_id,
            label: row.label,
            client_addr,
        })
    }
}

// ---------- management by users ----------

#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct DeviceView {
    pub id: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub kind: DeviceKind,
    pub label: String,
    /// The patient a home device is bound to.
    pub patient_id: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<String>,
    pub last_seen_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ViewRow {
    id: String,
    organisation_id: String,
    organisation_name: String,
    kind: String,
    label: String,
    patient_id: Option<String>,
    patient_home_org: Option<String>,
    created_by: String,
    created_at: String,
    revoked_by: Option<String>,
    revoked_at: Option<String>,
    last_seen_at: Option<String>,
}

impl ViewRow {
    fn kind(&self) -> DeviceKind {
        DeviceKind::parse(&self.kind).unwrap_or(DeviceKind::Clinic)
    }

    fn target(&self) -> policy::Target<'_> {
        policy::Target {
            org: &self.organisation_id,
            kind: self.kind(),
            patient_home_org: self.patient_home_org.as_deref(),
        }
    }

    fn view(self) -> DeviceView {
        DeviceView {
            kind: self.kind(),
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

async fn load_row(db: &Db, id: &str) -> ApiResult<Option<ViewRow>> {
    Ok(sqlx::query_as(&format!("{VIEW_SELECT} WHERE d.id = $1")).bind(id).fetch_optional(&db.pool).await?)
}

/// The caller's linked centres (coordinators), for the rules.
async fn linked_of(db: &Db, user: &AuthUser) -> ApiResult<Vec<String>> {
    if user.role == Role::Coordinator {
        crate::directory::linked_centres(db, &user.org).await
    } else {
        Ok(Vec::new())
    }
}

fn refused(r: policy::Refusal) -> ApiError {
    match r {
        policy::Refusal::Hidden => ApiError::not_found("device"),
        policy::Refusal::Forbidden(why) => ApiError::forbidden(why),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub kind: DeviceKind,
    /// What staff call it ("东湖中心大厅自助机", "张三家血压计"), 1 to 100 characters.
    pub label: String,
    /// The organisation the device serves; defaults to the bound patient's home centre for a
    /// home device, else to the caller's organisation.
    #[serde(default)]
    pub organisation_id: Option<String>,
    /// The patient a home device is bound to (home devices only).
    #[serde(default)]
    pub patient_id: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct IssuedDevice {
    pub device: DeviceView,
    /// The device's token, shown this once: the server keeps only its hash. Send it as
    /// `Authorization: Device <token>`.
    pub token: String,
}

async fn issue(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewDevice>,
) -> ApiResult<(StatusCode, Json<IssuedDevice>)> {
    if !policy::may_list(user.role) {
        return Err(ApiError::forbidden("only admins, coordinators and community doctors issue devices"));
    }
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::validation("label", "1 to 100 characters"));
    }
    // The patient's home centre decides (the rules then require the caller to manage it,
    // which implies seeing the record).
    let patient_home_org = match (&body.patient_id, body.kind) {
        (Some(_), k) if k != DeviceKind::Home => {
            return Err(ApiError::validation("patient_id", "only a home device is bound to a patient"))
        }
        (Some(pid), _) => {
            let row: Option<(String,)> = sqlx::query_as("SELECT home_organisation_id FROM patients WHERE id = $1")
                .bind(pid)
                .fetch_optional(&state.db.pool)
                .await?;
            Some(row.ok_or_else(|| ApiError::validation("patient_id", "no patient record has this id"))?.0)
        }
        (None, _) => None,
    };
    let org = body.organisation_id.clone().or_else(|| patient_home_org.clone()).unwrap_or_else(|| user.org.clone());
    if patient_home_org.as_ref().is_some_and(|home| *home != org) {
        return Err(ApiError::validation(
            "organisation_id",
            "a home device serves the home centre of the patient it is bound to",
        ));
    }
    let linked = linked_of(&state.db, &user).await?;
    let m = Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let target = policy::Target { org: &org, kind: body.kind, patient_home_org: patient_home_org.as_deref() };
    if let Err(r) = policy::may_issue(&m, &target) {
        audit::event(&user, "issue", "device", "")
            .maybe_patient(body.patient_id.clone())
            .outcome(Outcome::Denied)
            .detail(format!("{} device for organisation {org}", body.kind.as_str()))
            .record(&state.db)
            .await?;
        return Err(refused(r));
    }
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM organisations WHERE id = $1 AND active = 1")
        .bind(&org)
        .fetch_optional(&state.db.pool)
        .await?;
    if exists.is_none() {
        return Err(ApiError::validation("organisation_id", "no active organisation has this id"));
    }
    let id = new_id();
    let token = new_token();
    let mut tx = audit::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO devices (id, organisation_id, kind, label, patient_id, token_hash, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&org)
    .bind(body.kind.as_str())
    .bind(label)
    .bind(&body.patient_id)
    .bind(token_hash(&token))
    .bind(&user.id)
    .bind(now_ts())
    .execute(&mut *tx)
    .await?;
    tx.audit(
        audit::event(&user, "issue", "device", &id)
            .maybe_patient(body.patient_id.clone())
            .detail(format!("{} device \"{label}\"", body.kind.as_str())),
    )
    .await?;
    tx.commit().await?;
    let device = load_row(&state.db, &id).await?.ok_or_else(|| ApiError::internal("issued device vanished"))?.view();
    Ok((StatusCode::CREATED, Json(IssuedDevice { device, token })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceFilter {
    pub organisation_id: Option<String>,
    pub kind: Option<DeviceKind>,
    /// Include revoked devices (default: only those in use).
    pub include_revoked: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<DeviceFilter>,
) -> ApiResult<Json<crate::api::Page<DeviceView>>> {
    if !policy::may_list(user.role) {
        return Err(ApiError::forbidden("only admins, coordinators and community doctors see devices"));
    }
    let limit = crate::api::page_limit(f.limit, 200)?;
    // The scope in SQL (so pages are full), the rules again on each row.
    let scope = match user.role {
        Role::Admin => "$1 <> ''",
        Role::Coordinator => {
            "(d.organisation_id = $1 OR d.organisation_id IN (SELECT centre_id FROM consortium_links WHERE hospital_id = $1))"
        }
        _ => "(d.organisation_id = $1 AND d.kind = 'home' AND p.home_organisation_id = $1)",
    };
    let rows: Vec<ViewRow> = sqlx::query_as(&format!(
        "{VIEW_SELECT} WHERE {scope} AND ($2 = '' OR d.organisation_id = $2) AND ($3 = '' OR d.kind = $3)
           AND ($4 = 1 OR d.revoked_at IS NULL) AND ($5 = '' OR d.id > $5) ORDER BY d.id LIMIT $6"
    ))
    .bind(&user.org)
    .bind(f.organisation_id.unwrap_or_default())
    .bind(f.kind.map(|k| k.as_str()).unwrap_or(""))
    .bind(i64::from(f.include_revoked.unwrap_or(false)))
    .bind(crate::api::page_cursor(f.cursor)?)
    .bind(limit as i64 + 1)
    .fetch_all(&state.db.pool)
    .await?;
    let linked = linked_of(&state.db, &user).await?;
    let m = Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let page = crate::api::page(rows, limit, |r| r.id.clone());
    let items: Vec<ViewRow> = page.items.into_iter().filter(|r| policy::may_see(&m, &r.target())).collect();
    // A home device names its patient: reading the binding is a read of patient data.
    let bound: Vec<&ViewRow> = items.iter().filter(|r| r.patient_id.is_some()).collect();
    if !bound.is_empty() {
        let mut tx = state.db.begin_write().await?;
        for r in bound {
            audit::event(&user, "list", "device", &r.id)
                .maybe_patient(r.patient_id.clone())
                .record_with(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(Json(crate::api::Page { items: items.into_iter().map(ViewRow::view).collect(), next: page.next }))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeDevice {
    /// Why (kept in the audit trail).
    #[serde(default)]
    pub reason: String,
}

async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<RevokeDevice>,
) -> ApiResult<Json<DeviceView>> {
    if body.reason.chars().count() > 500 {
        return Err(ApiError::validation("reason", "at most 500 characters"));
    }
    if !policy::may_list(user.role) {
        return Err(ApiError::forbidden("only admins, coordinators and community doctors revoke devices"));
    }
    let row = load_row(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("device"))?;
    let linked = linked_of(&state.db, &user).await?;
    let m = Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    if let Err(refusal) = policy::may_revoke(&m, &row.target()) {
        audit::event(&user, "revoke", "device", &id)
            .maybe_patient(row.patient_id.clone())
            .outcome(Outcome::Denied)
            .record(&state.db)
            .await?;
        return Err(refused(refusal));
    }
    if row.revoked_at.is_none() {
        let mut tx = audit::begin(&state.db).await?;
        sqlx::query("UPDATE devices SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(now_ts())
            .bind(&user.id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.audit(
            audit::event(&user, "revoke", "device", &id)
                .maybe_patient(row.patient_id.clone())
                .detail(body.reason.trim()),
        )
        .await?;
        tx.commit().await?;
    }
    let after = load_row(&state.db, &id).await?.ok_or_else(|| ApiError::internal("revoked device vanished"))?;
    Ok(Json(after.view()))
}

// ---------- the device itself ----------

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CallingDevice {
    pub id: String,
    pub kind: DeviceKind,
    pub label: String,
    pub organisation_id: String,
    pub organisation_name: String,
}

/// The calling device, as a kiosk's setup screen checks a pasted token.
async fn me(State(state): State<AppState>, device: DeviceAuth) -> ApiResult<Json<CallingDevice>> {
    let (organisation_name,): (String,) = sqlx::query_as("SELECT name FROM organisations WHERE id = $1")
        .bind(&device.organisation_id)
        .fetch_one(&state.db.pool)
        .await?;
    Ok(Json(CallingDevice {
        id: device.device_id,
        kind: device.kind,
        label: device.label,
        organisation_id: device.organisation_id,
        organisation_name,
    }))
}

pub fn routes() -> Routes {
    Routes::new("devices")
        .post("/api/v1/devices", "Issue a device and its token (shown once)", issue)
        .body::<NewDevice>()
        .json::<IssuedDevice>(201)
        .get("/api/v1/devices", "Devices the caller manages", list)
        .query::<DeviceFilter>()
        .json::<crate::api::Page<DeviceView>>(200)
        .post("/api/v1/devices/{id}/revoke", "Revoke a device: its token stops working at once", revoke)
        .body::<RevokeDevice>()
        .json::<DeviceView>(200)
        .get("/api/v1/device", "The calling device (device token)", me)
        .device_auth()
        .json::<CallingDevice>(200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_scheme_is_told_apart_from_bearer_tokens() {
        assert_eq!(presented(None), Presented::None);
        assert_eq!(presented(Some("Device tcdev_abc")), Presented::Device("tcdev_abc"));
        assert_eq!(presented(Some("device  tcdev_abc ")), Presented::Device("tcdev_abc"));
        assert_eq!(presented(Some("Bearer eyJ.x.y")), Presented::Other);
        assert_eq!(presented(Some("Device ")), Presented::Other);
        assert_eq!(presented(Some("Devicetcdev_abc")), Presented::Other);
    }

    #[test]
    fn tokens_are_random_prefixed_and_stored_hashed() {
        let a = new_token();
        let b = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert!(!token_hash(&a).contains(&a[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn last_seen_is_written_at_most_once_a_minute() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T08:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert!(last_seen_due(None, now));
        assert!(!last_seen_due(Some("2026-12-04T07:59:30.000000Z"), now));
        assert!(last_seen_due(Some("2026-12-04T07:59:00.000000Z"), now));
        assert!(last_seen_due(Some("garbage"), now));
    }
}
