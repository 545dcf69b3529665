//! Revocation that takes effect at once: every authenticated request checks, beyond the
//! token's signature, that its account is still active, that the token's generation is still
//! the account's (deactivation, a password reset by someone else and a role change bump it),
//! and that no password change is pending. The account states are cached in memory for a
//! few seconds; a change evicts the entry here at once and, with several instances, on every
//! other instance over NATS (subject [`SUBJECT`]), so an instance that misses the message
//! still refuses within [`CACHE_TTL`].
//!
//! What is already open (a call's signaling connection, the live notification stream) hears
//! of a change at once too: [`Accounts::watch`] hands out a receiver of the ids whose access
//! changed (an account, a device, a consultation whose participants changed), fed by the
//! changes made here and by those announced on NATS, and each open connection that names the
//! id checks its standing right then instead of at its next heartbeat.

use crate::db::Db;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cached account state is trusted without a change message.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// NATS subject on which instances announce a changed account (payload: the user id), a
/// revoked device (its id) or a consultation whose participants changed (its id).
pub const SUBJECT: &str = "teleconsult.accounts.changed";

/// Routes a token with a pending password change may still use.
pub const PASSWORD_CHANGE_PATHS: [&str; 2] = ["/api/v1/me", "/api/v1/me/password"];

/// What a request needs to know of its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountState {
    pub active: bool,
    pub generation: i64,
    pub must_change_password: bool,
}

/// Why a valid token may not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is gone or deactivated, or the token predates a revocation.
    Revoked,
    /// A one-time password is in use: only the password change is open.
    PasswordChangeRequired,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        match r {
            Refusal::Revoked => ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::TokenRevoked,
                "Access revoked",
                "this access token no longer grants access (the account was deactivated or its access was revoked); sign in again",
            ),
            Refusal::PasswordChangeRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PasswordChangeRequired,
                "Password change required",
                "the password was set by someone else: set your own password first (POST /api/v1/me/password)",
            ),
        }
    }
}

/// Pure: may a token of `token_generation` be used on `path` for an account in `state`?
pub fn decide(token_generation: i64, state: Option<AccountState>, path: &str) -> Result<(), Refusal> {
    let Some(s) = state else { return Err(Refusal::Revoked) };
    if !s.active || token_generation < s.generation {
        return Err(Refusal::Revoked);
    }
    if s.must_change_password && !PASSWORD_CHANGE_PATHS.contains(&path) {
        return Err(Refusal::PasswordChangeRequired);
    }
    Ok(())
}

/// The account states of this instance, cached, with eviction across instances.
pub struct Accounts {
    db: Db,
    cache: Mutex<HashMap<String, (Option<AccountState>, Instant)>>,
    nats: Option<async_nats::Client>,
    /// The ids whose access changed, for the connections open on this instance.
    access: tokio::sync::broadcast::Sender<std::sync::Arc<str>>,
}

/// How many access changes an open connection may fall behind before it is told it lagged
/// (and then checks its standing anyway).
const ACCESS_CHANGES_BUFFERED: usize = 1024;

impl Accounts {
    /// Without `nats`, one instance; with it, changes are announced to and received from the
    /// other instances.
    pub async fn start(db: Db, nats: Option<async_nats::Client>) -> anyhow::Result<std::sync::Arc<Accounts>> {
        let (access, _) = tokio::sync::broadcast::channel(ACCESS_CHANGES_BUFFERED);
        let accounts = std::sync::Arc::new(Accounts { db, cache: Mutex::default(), nats: nats.clone(), access });
        if let Some(client) = nats {
            let mut changes = client.subscribe(SUBJECT).await?;
            let weak = std::sync::Arc::downgrade(&accounts);
            tokio::spawn(async move {
                use futures_util::StreamExt;
                while let Some(msg) = changes.next().await {
                    let Some(accounts) = weak.upgrade() else { break };
                    if let Ok(id) = std::str::from_utf8(&msg.payload) {
                        accounts.evict(id);
                        accounts.tell_open_connections(id);
                    }
                }
            });
        }
        Ok(accounts)
    }

    fn evict(&self, user_id: &str) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(user_id);
    }

    fn tell_open_connections(&self, id: &str) {
        // No receiver (nothing open) is not an error.
        let _ = self.access.send(std::sync::Arc::from(id));
    }

    /// The ids whose access changes from now on (accounts, devices, consultations), for a
    /// connection that stays open: it checks its standing when one of them is its own.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<str>> {
        self.access.subscribe()
    }

    /// The account's state (`None`: no such account), from the cache when fresh.
    pub async fn state(&self, user_id: &str) -> ApiResult<Option<AccountState>> {
        let now = Instant::now();
        if let Some((s, at)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(user_id) {
            if now.duration_since(*at) < CACHE_TTL {
                return Ok(*s);
            }
        }
        let state = super::store::account_state(&self.db, user_id).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 100_000 {
            cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
        }
        cache.insert(user_id.to_string(), (state, now));
        Ok(state)
    }

    /// Call after a committed change of the account's state: forgets it here and on the
    /// other instances.
    pub async fn changed(&self, user_id: &str) {
        self.access_changed(user_id).await;
    }

    /// Call after a committed change of who may use `id` (an account, a device, or a
    /// consultation whose participants or state changed): the open connections that name it,
    /// here and on the other instances, check their standing at once.
    pub async fn access_changed(&self, id: &str) {
        self.evict(id);
        self.tell_open_connections(id);
        if let Some(client) = &self.nats {
            if let Err(e) = client.publish(SUBJECT, id.to_string().into()).await {
                tracing::warn!(error = %e, %id, "an access change could not be announced on NATS");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: AccountState = AccountState { active: true, generation: 3, must_change_password: false };

    #[test]
    fn a_current_token_of_an_active_account_passes() {
        assert_eq!(decide(3, Some(OK), "/api/v1/patients"), Ok(()));
        assert_eq!(decide(4, Some(OK), "/api/v1/patients"), Ok(()));
    }

    #[test]
    fn deactivation_an_older_generation_and_a_missing_account_revoke() {
        let inactive = AccountState { active: false, ..OK };
        assert_eq!(decide(3, Some(inactive), "/api/v1/me"), Err(Refusal::Revoked));
        assert_eq!(decide(2, Some(OK), "/api/v1/me"), Err(Refusal::Revoked));
        assert_eq!(decide(3, None, "/api/v1/me"), Err(Refusal::Revoked));
    }

    #[test]
    fn a_pending_password_change_opens_only_the_change() {
        let must = AccountState { must_change_password: true, ..OK };
        assert_eq!(decide(3, Some(must), "/api/v1/me/password"), Ok(()));
        assert_eq!(decide(3, Some(must), "/api/v1/me"), Ok(()));
        assert_eq!(decide(3, Some(must), "/api/v1/patients"), Err(Refusal::PasswordChangeRequired));
        // Revocation wins over the pending change.
        assert_eq!(decide(2, Some(must), "/api/v1/me/password"), Err(Refusal::Revoked));
    }
}
