//! `/api/v1/auth/*` and `/api/v1/me`: sign-in with throttling, refresh-token rotation with
//! reuse detection (reusing a rotated token revokes its whole family), sign-out, and the
//! user's own password change (which needs the current password and ends the other sessions).

use super::jwt::JwtKeys;
use super::store;
use super::throttle::{Key, LoginThrottle, Verdict};
use super::{AuthUser, ClientAddr};
use crate::api::{Json, Routes};
use crate::app::AppState;
use crate::config::Config;
use crate::db::{new_id, now_ts, ts, Db};
use crate::directory::password::{decoy_hash, hash_password, verify_password};
use crate::error::ErrorCode;
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
        .body::<LoginRequest>()
        .json::<TokenResponse>(200)
        .errors(&[401, 429])
        .post_public("/api/v1/auth/refresh", "Exchange a refresh token for new tokens (rotation)", refresh)
        .body::<RefreshRequest>()
        .json::<TokenResponse>(200)
        .errors(&[401])
        .post_public("/api/v1/auth/logout", "Revoke a refresh token and its family", logout)
        .body::<RefreshRequest>()
        .answers(204, None, "signed out")
        .get("/api/v1/me", "The signed-in user", me)
        .json::<crate::directory::UserView>(200)
        .post("/api/v1/me/password", "Change one's own password (current password required)", change_password)
        .body::<PasswordChange>()
        .answers(204, None, "password changed")
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: crate::directory::UserView,
}

#[derive(Deserialize, schemars::JsonSchema)]
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
    // An account is throttled per client address, so that guessing from one place cannot lock
    // its owner out everywhere; an address is throttled across accounts too.
    let pair_key = format!("acct:{username}|{addr}");
    let addr_key = format!("addr:{addr}");
    let per_account = state.config.login_failures_per_minute;
    let keys = [Key { name: &pair_key, limit: per_account }, Key { name: &addr_key, limit: per_account * 4 }];
    let started = Instant::now();
    let failures = match state.throttle.lock().unwrap_or_else(|e| e.into_inner()).begin(&keys, started) {
        Verdict::Refused { retry_after_secs } => {
            tracing::warn!(%username, %addr, "login refused: too many failures");
            return Err(ApiError::rate_limited(retry_after_secs));
        }
        Verdict::Allowed { failures } => failures,
    };

    let row = store::credentials(&state.db, &username).await?;
    let (user_id, hash) = match &row {
        Some((id, h)) => (Some(id.clone()), h.clone()),
        None => (None, decoy_hash().to_string()),
    };
    let password = req.password;
    let ok =
        tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.map_err(ApiError::internal)?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        tokio::time::sleep(LoginThrottle::penalty(failures + 1)).await;
        tracing::info!(%username, %addr, "login failed");
        return Err(ApiError::invalid_credentials());
    };
    state.throttle.lock().unwrap_or_else(|e| e.into_inner()).succeeded(&keys, started, &pair_key);
    let family = new_id();
    issue_tokens(&state.db, &state.jwt, &state.config, &user_id, &family).await.map(Json)
}

async fn issue_tokens(
    db: &Db,
    jwt: &JwtKeys,
    config: &Config,
    user_id: &str,
    family: &str,
) -> ApiResult<TokenResponse> {
    let user = crate::directory::load_user(db, user_id).await?.ok_or_else(ApiError::invalid_credentials)?;
    // The account, or its organisation (`store::account_state`), deactivated.
    if !super::store::account_state(db, user_id).await?.is_some_and(|a| a.active) {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            ErrorCode::AccountInactive,
            "Account deactivated",
            "this account has been deactivated",
        ));
    }
    let (access_token, _) = jwt
        .issue(super::jwt::Subject {
            user_id: &user.id,
            name: &user.username,
            role: user.role,
            org: &user.organisation_id,
            generation: user.token_generation,
            family,
            device: "",
        })
        .map_err(ApiError::internal)?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let refresh_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(config.refresh_token_ttl_secs as i64);
    store::insert_refresh_token(db, family, user_id, &hash_token(&refresh_token), &ts(expires)).await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: config.access_token_ttl_secs,
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
    let claimed = store::claim_refresh_token(&state.db, &hash, &now).await?;
    let Some((family, user_id)) = store::refresh_token_owner(&state.db, &hash).await? else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidRefreshToken,
            "Invalid refresh token",
            "the refresh token is not known",
        ));
    };
    if claimed == 0 {
        // Used before, revoked or expired: a used token presented again means it leaked.
        store::revoke_family(&state.db, &family, &now).await?;
        tracing::warn!(%user_id, "refresh token reuse or expiry: family revoked");
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidRefreshToken,
            "Invalid refresh token",
            "the refresh token was already used, revoked or expired; sign in again",
        ));
    }
    issue_tokens(&state.db, &state.jwt, &state.config, &user_id, &family).await.map(Json)
}

async fn logout(State(state): State<AppState>, Json(req): Json<RefreshRequest>) -> ApiResult<axum::http::StatusCode> {
    let hash = hash_token(&req.refresh_token);
    store::revoke_family_of(&state.db, &hash).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<crate::directory::UserView>> {
    crate::directory::load_user(&state.db, &user.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// The user sets their own password: the current one is required, the new one must differ,
/// and every other session's refresh tokens are revoked (this session's family stays). Ends
/// a pending one-time password.
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<PasswordChange>,
) -> ApiResult<axum::http::StatusCode> {
    crate::directory::validate_password(&req.new_password).map_err(|mut e| {
        e.errors.iter_mut().for_each(|f| f.field = "new_password".into());
        e
    })?;
    if req.new_password == req.current_password {
        return Err(ApiError::validation("new_password", "must differ from the current password"));
    }
    let hash = store::password_hash(&state.db, &user.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    let current = req.current_password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&current, &hash)).await.map_err(ApiError::internal)?;
    if !ok {
        crate::audit::account_event(&user, "change_password", &user.id)
            .outcome(crate::audit::Outcome::Denied)
            .record(&state.db)
            .await?;
        return Err(ApiError::validation("current_password", "the current password is wrong"));
    }
    let new = req.new_password;
    let new_hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut tx = state.db.begin_write().await?;
    store::set_own_password(&mut tx, &user.id, &new_hash).await?;
    let keep = (!user.family.is_empty()).then_some(user.family.as_str());
    let revoked = crate::directory::store::revoke_refresh_tokens(&mut tx, &user.id, keep).await?;
    crate::audit::account_event(&user, "change_password", &user.id)
        .detail(format!("{revoked} refresh tokens of other sessions revoked"))
        .record_with(&mut *tx)
        .await?;
    tx.commit().await?;
    state.accounts.changed(&user.id).await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
