//! Devices that act without a person at the keyboard: kiosks at a medical corner or clinic,
//! measuring devices at home (bound to one patient) or in a clinic. Each has its own token,
//! shown once when it is issued and kept only as its SHA-256; revocation is immediate (every
//! request looks the device up). Who may issue and revoke which device is [`policy`].
//!
//! Device routes authenticate with `Authorization: Device <token>` through [`DeviceAuth`]; user
//! routes accept only user access tokens (`Bearer`), and device routes refuse them. Failed
//! device authentication is throttled per client address (`auth::throttle`) and audited.

pub mod policy;
pub mod routes;
pub mod store;

pub use routes::routes;

pub use crate::domain::people::DeviceKind;
pub use crate::principal::{presented, Presented, DEVICE_SCHEME as SCHEME};

use crate::app::AppState;
use crate::audit::{self, Outcome};
use crate::auth::throttle::{Key, Verdict};
use crate::db::ts;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::principal::ClientAddr;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Every device token starts with this, so one found in a log or a paste is recognisable.
pub const TOKEN_PREFIX: &str = "tcdev_";

/// `last_seen_at` is written at most this often per device (seconds), so that a busy device
/// does not turn every request into a write.
pub const LAST_SEEN_EVERY_SECS: i64 = 60;

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
        let row = if token.len() > 200 { None } else { store::by_token_hash(&state.db, &token_hash(&token)).await? };
        let path = parts.uri.path().to_string();
        let Some(row) = row else {
            audit::device_event(None, &client_addr, "authenticate", "device", "")
                .outcome(Outcome::Denied)
                .detail(format!("unknown device token on {path}"))
                .record(&state.db)
                .await?;
            return Err(ApiError::unauthorized("the device token is not valid"));
        };
        if row.revoked_at.is_some() || row.organisation_active == 0 {
            let why =
                if row.revoked_at.is_some() { "revoked device token" } else { "device of a deactivated organisation" };
            audit::device_event(Some(&row.id), &client_addr, "authenticate", "device", &row.id)
                .outcome(Outcome::Denied)
                .detail(format!("{why} on {path}"))
                .record(&state.db)
                .await?;
            return Err(device_revoked());
        }
        state.throttle.lock().unwrap_or_else(|e| e.into_inner()).succeeded(&keys, started, "");
        let now = chrono::Utc::now();
        if last_seen_due(row.last_seen_at.as_deref(), now) {
            store::touch_last_seen(&state.db, &row.id, &ts(now)).await?;
        }
        Ok(DeviceAuth {
            device_id: row.id,
            organisation_id: row.organisation_id,
            kind: row.kind,
            patient_id: row.patient_id,
            label: row.label,
            client_addr,
        })
    }
}

// ---------- management by users ----------

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceFilter {
    pub organisation_id: Option<String>,
    pub kind: Option<DeviceKind>,
    /// Only the home devices bound to this patient (a patient's record page).
    pub patient_id: Option<String>,
    /// Include revoked devices (default: only those in use).
    pub include_revoked: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeDevice {
    /// Why (kept in the audit trail).
    #[serde(default)]
    pub reason: String,
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
