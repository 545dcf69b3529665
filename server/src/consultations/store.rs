//! Storage of consultations: who may see one, who takes part, and applying an action through
//! the state machine with the transition stored (who, when, from, to, reason).

use super::state::{transition, Action, State};
use crate::auth::{AuthUser, Role};
use crate::db::{new_id, now_ts, Db};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use std::str::FromStr;

/// SQL predicate over `consultations c` that holds when the caller may see it: a participant
/// who has not declined; an expert also an open pool request of their department's
/// specialty they have not declined; a coordinator the consultations of its hospital and
/// linked centres; an admin all. Binds: `$1` the caller's user id, `$2` the caller's
/// organisation id.
pub fn visibility_predicate(role: Role) -> &'static str {
    match role {
        Role::Admin => "($1 <> '' OR $2 <> '')",
        Role::Coordinator => {
            "(c.requesting_organisation_id = $2 OR c.pool_organisation_id = $2 OR c.requesting_organisation_id IN
               (SELECT centre_id FROM consortium_links WHERE hospital_id = $2) OR $1 = '')"
        }
        Role::CommunityDoctor | Role::Patient => {
            "(c.id IN (SELECT consultation_id FROM consultation_participants WHERE user_id = $1 AND status <> 'declined') OR $2 = '')"
        }
        Role::Expert => {
            "(c.id IN (SELECT consultation_id FROM consultation_participants WHERE user_id = $1 AND status <> 'declined')
              OR (c.addressee_kind = 'pool' AND c.state = 'requested' AND c.pool_organisation_id = $2
                  AND c.specialty IN (SELECT specialty FROM expert_specialties WHERE user_id = $1)
                  AND c.id NOT IN (SELECT consultation_id FROM consultation_transitions WHERE actor_id = $1 AND action = 'decline')))"
        }
    }
}

/// The same rule as [`visibility_predicate`], written for one consultation (`c.id` fixed):
/// the participant checks are probes of that consultation's own rows, so the cost of an
/// access check does not grow with the number of consultations the caller ever took part in
/// (`c.id IN (SELECT ...)` under an `OR` reads them all on both databases). Same binds.
pub fn visibility_predicate_one(role: Role) -> &'static str {
    match role {
        Role::Admin | Role::Coordinator => visibility_predicate(role),
        Role::CommunityDoctor | Role::Patient => {
            "(EXISTS (SELECT 1 FROM consultation_participants vp
                       WHERE vp.consultation_id = c.id AND vp.user_id = $1 AND vp.status <> 'declined') OR $2 = '')"
        }
        Role::Expert => {
            "(EXISTS (SELECT 1 FROM consultation_participants vp
                       WHERE vp.consultation_id = c.id AND vp.user_id = $1 AND vp.status <> 'declined')
              OR (c.addressee_kind = 'pool' AND c.state = 'requested' AND c.pool_organisation_id = $2
                  AND c.specialty IN (SELECT specialty FROM expert_specialties WHERE user_id = $1)
                  AND NOT EXISTS (SELECT 1 FROM consultation_transitions vt
                                   WHERE vt.consultation_id = c.id AND vt.actor_id = $1 AND vt.action = 'decline')))"
        }
    }
}

/// The essentials of a consultation, as access checks and actions need them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsultationCore {
    pub id: String,
    pub patient_id: String,
    pub requesting_organisation_id: String,
    pub requested_by: String,
    pub specialty: String,
    pub min_title: String,
    pub urgency: String,
    pub mode: String,
    pub addressee_kind: String,
    pub pool_organisation_id: Option<String>,
    pub state: String,
    pub assigned_expert_id: Option<String>,
}

const CORE_SELECT: &str =
    "SELECT c.id, c.patient_id, c.requesting_organisation_id, c.requested_by, c.specialty, c.min_title,
    c.urgency, c.mode, c.addressee_kind, c.pool_organisation_id, c.state, c.assigned_expert_id FROM consultations c";

impl ConsultationCore {
    pub fn state(&self) -> State {
        State::from_str(&self.state).unwrap_or(State::Draft)
    }
}

/// The consultation if the caller may see it.
pub async fn find_visible(db: &Db, user: &AuthUser, id: &str) -> ApiResult<Option<ConsultationCore>> {
    let sql = format!("{CORE_SELECT} WHERE c.id = $3 AND {}", visibility_predicate_one(user.role));
    Ok(sqlx::query_as(&sql).bind(&user.id).bind(&user.org).bind(id).fetch_optional(&db.pool).await?)
}

/// Loads a visible consultation, auditing the access (or the refusal, answered 404).
pub async fn load_for(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<ConsultationCore> {
    match find_visible(db, user, id).await? {
        Some(c) => {
            crate::audit::event(user, action, "consultation", id).patient(&c.patient_id).record(db).await?;
            Ok(c)
        }
        None => {
            let patient: Option<(String,)> = sqlx::query_as("SELECT patient_id FROM consultations WHERE id = $1")
                .bind(id)
                .fetch_optional(&db.pool)
                .await?;
            crate::audit::event(user, action, "consultation", id)
                .maybe_patient(patient.map(|p| p.0))
                .outcome(crate::audit::Outcome::Denied)
                .record(db)
                .await?;
            Err(ApiError::not_found("consultation"))
        }
    }
}

/// The caller's role in the consultation (`requester`, `expert`, `patient`), if any and
/// not declined.
pub async fn participant_role(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2 AND status <> 'declined'",
    )
    .bind(consultation_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| r.0))
}

/// User ids of the consultation's participants that are not declined.
pub async fn participant_ids(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT user_id FROM consultation_participants WHERE consultation_id = $1 AND status <> 'declined' ORDER BY user_id",
    )
    .bind(consultation_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Locks the consultation row for the rest of the transaction (the first statement of a
/// transaction that changes a consultation), and returns its current state.
pub async fn lock(conn: &mut sqlx::AnyConnection, id: &str) -> ApiResult<State> {
    // One round trip: take the row lock and read the state (RETURNING: SQLite 3.35+, PostgreSQL).
    let row: Option<(String,)> =
        sqlx::query_as("UPDATE consultations SET updated_at = updated_at WHERE id = $1 RETURNING state")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((state,)) = row else {
        return Err(ApiError::not_found("consultation"));
    };
    Ok(State::from_str(&state).unwrap_or(State::Draft))
}

/// Applies `action` to a consultation whose row this transaction has locked with [`lock`]:
/// checks it against the state machine (409 `invalid_transition` naming the current state),
/// stores the new state and the transition.
pub async fn apply_locked(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    from: State,
    actor_id: Option<&str>,
    action: &Action,
) -> ApiResult<State> {
    let to = transition(from, action).map_err(|e| {
        let mut err = ApiError::conflict(ErrorCode::InvalidTransition, format!("{e} (current state: {from})"));
        err.title = "Invalid transition";
        err
    })?;
    let now = now_ts();
    sqlx::query("UPDATE consultations SET state = $1, updated_at = $2 WHERE id = $3")
        .bind(to.as_str())
        .bind(&now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO consultation_transitions (id, consultation_id, from_state, to_state, action, actor_id, reason, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(action.name())
    .bind(actor_id)
    .bind(action.reason().map(|r| r.as_str().to_string()).unwrap_or_default())
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    if to == State::Completed {
        // The appointment closes with the consultation (attended or no-show).
        crate::scheduling::visit::close_appointments(conn, id).await?;
    }
    Ok(to)
}

/// Applies `action` in its own transaction and returns the new state.
pub async fn apply_action(
    db: &Db,
    consultation_id: &str,
    actor: Option<&AuthUser>,
    action: &Action,
) -> ApiResult<State> {
    let mut tx = db.begin_write().await?;
    let from = lock(&mut tx, consultation_id).await?;
    let to = apply_locked(&mut tx, consultation_id, from, actor.map(|a| a.id.as_str()), action).await?;
    tx.commit().await?;
    Ok(to)
}
