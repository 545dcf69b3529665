//! Storage side of authentication: credentials of active accounts, the state every request
//! checks ([`super::accounts`]), refresh tokens (stored as their SHA-256) and one's own
//! password change. Ending an account's sessions from account management is
//! [`crate::directory::store::revoke_refresh_tokens`].

use super::accounts::AccountState;
use crate::db::{new_id, now_ts, Db};
use crate::error::ApiResult;

/// The id and password hash of the active account named `username`.
pub async fn credentials(db: &Db, username: &str) -> ApiResult<Option<(String, String)>> {
    Ok(sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1 AND active = 1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?)
}

/// The account's state as a request checks it (`None`: no such account). An account of a
/// deactivated organisation is inactive too, but for an admin's (who must be able to undo it).
pub async fn account_state(db: &Db, user_id: &str) -> ApiResult<Option<AccountState>> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT u.active, o.active, u.role, u.token_generation, u.must_change_password
           FROM users u JOIN organisations o ON o.id = u.organisation_id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(account_of))
}

/// [`account_state`] of many accounts in one statement: those that exist, by id.
pub async fn account_states(db: &Db, user_ids: &[&str]) -> ApiResult<std::collections::HashMap<String, AccountState>> {
    let mut found = std::collections::HashMap::new();
    for chunk in user_ids.chunks(500) {
        let sql = format!(
            "SELECT u.id, u.active, o.active, u.role, u.token_generation, u.must_change_password
               FROM users u JOIN organisations o ON o.id = u.organisation_id WHERE u.id IN ({})",
            crate::db::batch::list(chunk.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String, i64, i64, String, i64, i64)>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for (id, active, org_active, role, generation, must) in q.fetch_all(&db.pool).await? {
            found.insert(id, account_of((active, org_active, role, generation, must)));
        }
    }
    Ok(found)
}

/// `active`, the organisation's `active`, `role`, `token_generation`, `must_change_password`.
type AccountRow = (i64, i64, String, i64, i64);

fn account_of((active, org_active, role, generation, must): AccountRow) -> AccountState {
    AccountState {
        active: active != 0 && (org_active != 0 || role == crate::domain::people::Role::Admin.as_str()),
        generation,
        must_change_password: must != 0,
    }
}

/// Stores a new refresh token of `family` (by its hash), valid until `expires_at`.
pub async fn insert_refresh_token(
    db: &Db,
    family: &str,
    user_id: &str,
    token_hash: &str,
    expires_at: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(family)
    .bind(user_id)
    .bind(token_hash)
    .bind(expires_at)
    .bind(now_ts())
    .execute(&mut *db.writer().await?)
    .await?;
    Ok(())
}

/// Marks the token used in the same statement that checks it is still fresh (of two
/// concurrent refreshes with one token, one wins): the rows claimed, 0 or 1.
pub async fn claim_refresh_token(db: &Db, token_hash: &str, now: &str) -> ApiResult<u64> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token_hash)
    .execute(&mut *db.writer().await?)
    .await?
    .rows_affected())
}

/// The family and user of a known refresh token, used or not.
pub async fn refresh_token_owner(db: &Db, token_hash: &str) -> ApiResult<Option<(String, String)>> {
    Ok(sqlx::query_as("SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(&db.pool)
        .await?)
}

/// Revokes every token of `family` not revoked yet.
pub async fn revoke_family(db: &Db, family: &str, now: &str) -> ApiResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(family)
        .execute(&mut *db.writer().await?)
        .await?;
    Ok(())
}

/// Revokes the family of the token with this hash (signing out).
pub async fn revoke_family_of(db: &Db, token_hash: &str) -> ApiResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN (SELECT family_id FROM refresh_tokens WHERE token_hash = $2)",
    )
    .bind(now_ts())
    .bind(token_hash)
    .execute(&mut *db.writer().await?)
    .await?;
    Ok(())
}

/// The account's password hash (`None`: no such account).
pub async fn password_hash(db: &Db, user_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT password_hash FROM users WHERE id = $1").bind(user_id).fetch_optional(&db.pool).await?;
    Ok(row.map(|r| r.0))
}

/// Sets one's own password within `conn`'s transaction, ending a pending one-time password.
pub async fn set_own_password(conn: &mut sqlx::AnyConnection, user_id: &str, hash: &str) -> ApiResult<()> {
    sqlx::query("UPDATE users SET password_hash = $1, must_change_password = 0, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now_ts())
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
