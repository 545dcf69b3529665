//! Who is calling: the signed-in user of a request ([`AuthUser`]), the client's address
//! ([`ClientAddr`]) and which credential the `Authorization` header presents
//! ([`presented`]). The domains that act for a caller (audit, directory, devices, patients,
//! ...) depend on this module; `auth` fills it in (its extractor verifies the token) and
//! depends on them, not the other way round.

use crate::app::AppState;
use crate::domain::people::Role;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::net::SocketAddr;

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
    /// The device the access token was handed out through (a kiosk's check-in), if any:
    /// checked on every request, and carried into the signaling seat the token takes.
    pub device: Option<String>,
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

/// The authorization scheme of device tokens.
pub const DEVICE_SCHEME: &str = "Device";

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
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(DEVICE_SCHEME) && !token.trim().is_empty() => {
            Presented::Device(token.trim())
        }
        _ => Presented::Other,
    }
}
