//! `/api/v1/auth/*` and `/api/v1/me`: sign-in with throttling, refresh-token rotation with
//! reuse detection (reusing a rotated token revokes its whole family), sign-out.

use super::password::{decoy_hash, verify_password};
use super::throttle::{LoginThrottle, Verdict};
use super::{AuthUser, ClientAddr, Role};
use crate::api::{Json, Routes};
use crate::app::AppState;
use crate::db::{new_id, now_ts, ts};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Instant;

pub fn routes() -> Routes {
    Routes::new("auth")
        .post_public("/api/v1/auth/login", "Sign in with username and password", login)
        .post_public("/api/v1/auth/refresh", "Exchange a refresh token for new tokens (rotation)", refresh)
        .post_public("/api/v1/auth/logout", "Revoke a refresh token and its family", logout)
        .get("/api/v1/me", "The signed-in user", me)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: crate::directory::UserView,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let username = req.username.trim().to_lowercase();
    if username.is_empty() || username.len() > 100 || req.password.len() > 1000 {
        return Err(ApiError::invalid_credentials());
    }
    let user_key = format!("user:{username}");
    let addr_key = format!("addr:{addr}");
    let keys = [user_key.as_str(), addr_key.as_str()];
    let failures = match state.throttle.lock().unwrap_or_else(|e| e.into_inner()).check(&keys, Instant::now()) {
        Verdict::Refused { retry_after_secs } => {
            tracing::warn!(%username, %addr, "login refused: too many failures");
            return Err(ApiError::rate_limited(retry_after_secs));
        }
        Verdict::Allowed { failures } => failures,
    };

    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1 AND active = 1")
            .bind(&username)
            .fetch_optional(&state.db.pool)
            .await?;
    let (user_id, hash) = match &row {
        Some((id, h)) => (Some(id.clone()), h.clone()),
        None => (None, decoy_hash().to_string()),
    };
    let password = req.password;
    let ok =
        tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.map_err(ApiError::internal)?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        state.throttle.lock().unwrap_or_else(|e| e.into_inner()).record_failure(&keys, Instant::now());
        tokio::time::sleep(LoginThrottle::penalty(failures + 1)).await;
        tracing::info!(%username, %addr, "login failed");
        return Err(ApiError::invalid_credentials());
    };
    state.throttle.lock().unwrap_or_else(|e| e.into_inner()).clear(&user_key);
    let family = new_id();
    issue_tokens(&state, &user_id, &family).await.map(Json)
}

async fn issue_tokens(state: &AppState, user_id: &str, family: &str) -> ApiResult<TokenResponse> {
    let user = crate::directory::load_user(&state.db, user_id).await?.ok_or_else(ApiError::invalid_credentials)?;
    let role = Role::parse(&user.role).ok_or_else(|| ApiError::internal("stored role is unknown"))?;
    let (access_token, _) =
        state.jwt.issue(&user.id, &user.username, role, &user.organisation_id).map_err(ApiError::internal)?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let refresh_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(state.config.refresh_token_ttl_secs as i64);
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(family)
    .bind(user_id)
    .bind(hash_token(&refresh_token))
    .bind(ts(expires))
    .bind(now_ts())
    .execute(&state.db.pool)
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.config.access_token_ttl_secs,
        refresh_token,
        user,
    })
}

fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn refresh(State(state): State<AppState>, Json(req): Json<RefreshRequest>) -> ApiResult<Json<TokenResponse>> {
    let hash = hash_token(&req.refresh_token);
    let now = now_ts();
    // Mark the token used in the same statement that checks it is still fresh: of two
    // concurrent refreshes with one token, one wins and the other sees reuse.
    let claimed = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(&now)
    .bind(&hash)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT family_id, user_id, revoked_at FROM refresh_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(&state.db.pool)
            .await?;
    let Some((family, user_id, _)) = row else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            "Invalid refresh token",
            "the refresh token is not known",
        ));
    };
    if claimed == 0 {
        // Used before, revoked or expired: a used token presented again means it leaked.
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(&now)
            .bind(&family)
            .execute(&state.db.pool)
            .await?;
        tracing::warn!(%user_id, "refresh token reuse or expiry: family revoked");
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
            "Invalid refresh token",
            "the refresh token was already used, revoked or expired; sign in again",
        ));
    }
    issue_tokens(&state, &user_id, &family).await.map(Json)
}

async fn logout(State(state): State<AppState>, Json(req): Json<RefreshRequest>) -> ApiResult<axum::http::StatusCode> {
    let hash = hash_token(&req.refresh_token);
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)",
    )
    .bind(now_ts())
    .bind(&hash)
    .execute(&state.db.pool)
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<crate::directory::UserView>> {
    crate::directory::load_user(&state.db, &user.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))
}
