//! Authentication and access: accounts sign in with a password, receive a short-lived JWT
//! access token and a rotating refresh token; every request names its user through
//! [`AuthUser`], and each role is one of [`Role`].

pub mod accounts;
pub mod jwt;
pub mod password;
pub mod routes;
pub mod throttle;

use crate::app::AppState;
use crate::error::ApiError;
use crate::error::ErrorCode;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Coordinator,
    CommunityDoctor,
    Expert,
    Patient,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
            Role::CommunityDoctor => "community_doctor",
            Role::Expert => "expert",
            Role::Patient => "patient",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "coordinator" => Role::Coordinator,
            "community_doctor" => Role::CommunityDoctor,
            "expert" => Role::Expert,
            "patient" => Role::Patient,
            _ => return None,
        })
    }

    /// Clinicians: the roles that treat patients.
    pub fn is_clinician(self) -> bool {
        matches!(self, Role::CommunityDoctor | Role::Expert)
    }

    pub fn is_manager(self) -> bool {
        matches!(self, Role::Admin | Role::Coordinator)
    }
}

/// The signed-in caller of a request, with the address the request came from.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub org: String,
    pub client_addr: String,
    /// The refresh-token family the access token came with (empty if none).
    pub family: String,
}

impl AuthUser {
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("the {} role may not do this", self.role.as_str())))
        }
    }
}

/// The client's address: the socket peer, or what a trusted proxy forwarded
/// ([`crate::proxy::client_addr`]).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl ClientAddr {
    pub fn of(parts: &Parts, trusted: &[crate::proxy::IpNet]) -> ClientAddr {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return ClientAddr("unknown".into());
        };
        ClientAddr(crate::proxy::client_addr(peer, &parts.headers, trusted).to_string())
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr::of(parts, &state.trusted_proxies))
    }
}

/// Reads a bearer token from an `Authorization` header value.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            let device = matches!(
                crate::devices::presented(
                    parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
                ),
                crate::devices::Presented::Device(_)
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
        let account = state.accounts.state(&claims.sub).await?;
        accounts::decide(claims.gen, account, parts.uri.path())?;
        if !jwt::scope_allows(&claims.scope, parts.uri.path()) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                ErrorCode::OutsideTokenScope,
                "Outside the token's scope",
                "this access was handed out for one consultation only (a kiosk check-in); sign in for anything else",
            ));
        }
        let ClientAddr(client_addr) = ClientAddr::of(parts, &state.trusted_proxies);
        Ok(AuthUser {
            id: claims.sub,
            username: claims.name,
            role: claims.role,
            org: claims.org,
            client_addr,
            family: claims.fam,
        })
    }
}
