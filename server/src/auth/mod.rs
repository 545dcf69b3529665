//! Authentication and access: accounts sign in with a password, receive a short-lived JWT
//! access token and a rotating refresh token; every request names its user through
//! [`AuthUser`] (defined in [`crate::principal`], filled in here), and each role is one of
//! [`Role`].

pub mod accounts;
pub mod jwt;
pub mod routes;
pub mod store;
pub mod throttle;

/// Password hashing lives with the accounts it protects ([`crate::directory::password`]).
pub use crate::directory::password;
pub use crate::domain::people::Role;
pub use crate::principal::{bearer_token, AuthUser, ClientAddr};

use crate::app::AppState;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::principal::{presented, Presented};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            let device = matches!(
                presented(parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())),
                Presented::Device(_)
            );
            ApiError::unauthorized(if device {
                "device tokens are accepted only on device routes; this route needs a user's bearer access token"
            } else {
                "a bearer access token is required"
            })
        })?;
        let claims = state
            .jwt
            .verify(token)
            .map_err(|e| ApiError::unauthorized(format!("the access token is not valid: {e}")))?;
        let ClientAddr(client_addr) = ClientAddr::of(parts, &state.trusted_proxies);
        crate::audit::request_caller(&claims.sub, claims.role, &client_addr);
        let account = state.accounts.state(&claims.sub).await?;
        accounts::decide(claims.gen, account, parts.uri.path())?;
        // Access handed out by a device (a kiosk's check-in) lasts only as long as the device.
        if !claims.dev.is_empty() && !crate::devices::store::is_active(&state.db, &claims.dev).await? {
            crate::audit::device_event(Some(&claims.dev), &client_addr, "authenticate", "device", &claims.dev)
                .outcome(crate::audit::Outcome::Denied)
                .detail(format!("access handed out by a device no longer active (revoked, or its organisation deactivated), for {}, on {}", claims.sub, parts.uri.path()))
                .record(&state.db)
                .await?;
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                ErrorCode::DeviceRevoked,
                "Device revoked",
                "the kiosk that handed out this access has been revoked; check in again, or sign in",
            ));
        }
        if !jwt::scope_allows(&claims.scope, parts.uri.path()) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                ErrorCode::OutsideTokenScope,
                "Outside the token's scope",
                "this access was handed out for one consultation only (a kiosk check-in); sign in for anything else",
            ));
        }
        Ok(AuthUser {
            id: claims.sub,
            username: claims.name,
            role: claims.role,
            org: claims.org,
            client_addr,
            family: claims.fam,
            device: (!claims.dev.is_empty()).then_some(claims.dev),
        })
    }
}
