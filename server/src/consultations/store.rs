//! Storage of consultations: who may see one, who takes part, applying an action through
//! the state machine with the transition stored (who, when, from, to, reason), and every
//! other statement the consultation API and the visit rules run. Rows come back typed: a
//! stored state, role, status or kind that is not one of its names is an error, never a
//! default.

use super::state::{transition, Action, Mode, State, Title, Urgency};
use super::visit::RoomEvent;
use super::{ConsentView, ConsultationSummary, Transition};
use crate::auth::{AuthUser, Role};
use crate::db::filter::Filtered;
use crate::db::{new_id, now_ts, Db};
use crate::domain::consultation::{AddresseeKind, AppointmentStatus, ParticipantRole, ParticipantStatus};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------
// Who may see a consultation
// ---------------------------------------------------------------------------------------

/// An expert's title as a rank (resident 0, attending 1, associate chief 2, chief 3), the
/// order of [`Title`], as SQL over the table's column named.
macro_rules! title_rank {
    ($table:literal, $column:literal) => {
        concat!(
            "(CASE ",
            $table,
            ".",
            $column,
            " WHEN 'chief' THEN 3 WHEN 'associate_chief' THEN 2 WHEN 'attending' THEN 1 ELSE 0 END)"
        )
    };
}

/// An open pool request `$c` that the caller `{user}` (an expert of `{org}`) may take: at their
/// hospital, of one of their specialties, asking for their title or a lower one, and not
/// declined by them.
macro_rules! open_pool_request_for_expert {
    ($c:literal) => {
        concat!(
            $c,
            ".state = 'requested' AND ",
            $c,
            ".addressee_kind = 'pool' AND ",
            $c,
            ".pool_organisation_id = {org}
             AND ",
            $c,
            ".specialty IN (SELECT specialty FROM expert_specialties WHERE user_id = {user})
             AND EXISTS (SELECT 1 FROM expert_profiles ep WHERE ep.user_id = {user}
                         AND ",
            title_rank!("ep", "title"),
            " >= ",
            title_rank!($c, "min_title"),
            ")
             AND NOT EXISTS (SELECT 1 FROM consultation_transitions vt
                             WHERE vt.consultation_id = ",
            $c,
            ".id AND vt.actor_id = {user} AND vt.action = 'decline')"
        )
    };
}

/// The visibility rule per role, over `consultations c`, with `{user}` standing for the
/// caller's user id and `{org}` for the caller's organisation id.
/// A participant who has not declined; an expert also an open pool request of their
/// department's specialty, asking for their title or a lower one, that they have not declined
/// (an expert under the title asked for neither sees nor claims it); a coordinator the
/// consultations of its hospital and linked centres; an admin, who manages accounts and
/// organisations and takes part in no care, none.
fn visibility_rule(role: Role) -> Option<&'static str> {
    match role {
        Role::Admin => Some("(1 = 0)"),
        Role::Coordinator => Some(
            "(c.requesting_organisation_id = {org} OR c.pool_organisation_id = {org} OR c.requesting_organisation_id IN
               (SELECT centre_id FROM consortium_links WHERE hospital_id = {org}))",
        ),
        Role::CommunityDoctor | Role::Patient => Some(
            "c.id IN (SELECT consultation_id FROM consultation_participants WHERE user_id = {user} AND status <> 'declined')",
        ),
        // One `IN` over a `UNION`: with the two branches joined by `OR`, PostgreSQL walked every
        // consultation in id order to find an expert's page (219 ms for an expert with 20 of
        // 500,000; 10 s for one with 480,000, by `EXPLAIN ANALYZE`); this way the expert's own
        // rows are read (1 ms; 21 ms for 20,000). The open pool requests' declines are probed
        // per request: `NOT IN` read all 2,000,000 transitions whenever one was open (108 ms).
        Role::Expert => Some(concat!(
            "(c.id IN (SELECT consultation_id FROM consultation_participants WHERE user_id = {user} AND status <> 'declined'
               UNION SELECT pc.id FROM consultations pc WHERE ",
            open_pool_request_for_expert!("pc"),
            "))"
        )),
    }
}

/// The same rule as [`visibility_rule`], written for one consultation (`c.id` fixed): the
/// participant checks are probes of that consultation's own rows, so the cost of an access
/// check does not grow with the number of consultations the caller ever took part in
/// (`c.id IN (SELECT ...)` under an `OR` reads them all on both databases).
fn visibility_rule_one(role: Role) -> Option<&'static str> {
    match role {
        Role::Admin | Role::Coordinator => visibility_rule(role),
        Role::CommunityDoctor | Role::Patient => Some(
            "EXISTS (SELECT 1 FROM consultation_participants vp
                      WHERE vp.consultation_id = c.id AND vp.user_id = {user} AND vp.status <> 'declined')",
        ),
        Role::Expert => Some(concat!(
            "(EXISTS (SELECT 1 FROM consultation_participants vp
                       WHERE vp.consultation_id = c.id AND vp.user_id = {user} AND vp.status <> 'declined')
              OR (",
            open_pool_request_for_expert!("c"),
            "))"
        )),
    }
}

/// Adds the caller's visibility rule (see [`visibility_rule`]) over `consultations c` as a
/// condition, binding only the values the rule names.
pub fn visible(q: &mut Filtered<'_>, user: &AuthUser) {
    if let Some(rule) = visibility_rule(user.role) {
        q.condition().push_rule(rule, &user.id, &user.org);
    }
}

/// [`visible`] for one consultation (`c.id` fixed): the same rule written as probes. Also the
/// rule of a list of open consultations ([`list`]), which are few whatever the history.
pub fn visible_one(q: &mut Filtered<'_>, user: &AuthUser) {
    if let Some(rule) = visibility_rule_one(user.role) {
        q.condition().push_rule(rule, &user.id, &user.org);
    }
}

// ---------------------------------------------------------------------------------------
// The essentials of a consultation, access checks and the lifecycle
// ---------------------------------------------------------------------------------------

/// The essentials of a consultation, as access checks and actions need them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsultationCore {
    pub id: String,
    pub patient_id: String,
    pub requesting_organisation_id: String,
    pub requested_by: String,
    pub specialty: String,
    #[sqlx(try_from = "String")]
    pub min_title: Title,
    #[sqlx(try_from = "String")]
    pub urgency: Urgency,
    #[sqlx(try_from = "String")]
    pub mode: Mode,
    #[sqlx(try_from = "String")]
    pub addressee_kind: AddresseeKind,
    pub pool_organisation_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: State,
    pub assigned_expert_id: Option<String>,
}

const CORE_SELECT: &str =
    "SELECT c.id, c.patient_id, c.requesting_organisation_id, c.requested_by, c.specialty, c.min_title,
    c.urgency, c.mode, c.addressee_kind, c.pool_organisation_id, c.state, c.assigned_expert_id FROM consultations c";

impl ConsultationCore {
    pub fn state(&self) -> State {
        self.state
    }
}

/// The consultation if the caller may see it.
pub async fn find_visible(db: &Db, user: &AuthUser, id: &str) -> ApiResult<Option<ConsultationCore>> {
    let mut q = Filtered::new(format!("{CORE_SELECT} WHERE c.id = "));
    q.after_where();
    q.push_bind(id.to_string());
    visible_one(&mut q, user);
    Ok(q.build_query_as().fetch_optional(&db.pool).await?)
}

/// The patient of a consultation, whoever may see it (for the audit event of a refusal).
async fn patient_of(db: &Db, id: &str) -> ApiResult<Option<String>> {
    let patient: Option<(String,)> =
        sqlx::query_as("SELECT patient_id FROM consultations WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    Ok(patient.map(|p| p.0))
}

/// Loads a visible consultation to read it, auditing the access (or the refusal, answered 404).
pub async fn load_for(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<ConsultationCore> {
    let c = load_to_act(db, user, id, action).await?;
    acted(user, &c, action).record(db).await?;
    Ok(c)
}

/// Loads a visible consultation for `action`, a change that records its own outcome: its
/// success with [`acted`] in the transaction of its writes, a refusal after this with
/// [`crate::audit::AuditEvent::if_refused`]. Not visible: audited as denied, answered 404.
pub async fn load_to_act(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<ConsultationCore> {
    match find_visible(db, user, id).await? {
        Some(c) => Ok(c),
        None => {
            crate::audit::event(user, action, "consultation", id)
                .maybe_patient(patient_of(db, id).await?)
                .outcome(crate::audit::Outcome::Denied)
                .record(db)
                .await?;
            Err(ApiError::not_found("consultation"))
        }
    }
}

/// The audit event of `user`'s `action` on consultation `c`.
pub fn acted(user: &AuthUser, c: &ConsultationCore, action: &str) -> crate::audit::AuditEvent {
    crate::audit::event(user, action, "consultation", &c.id).patient(&c.patient_id)
}

/// The caller's role in the consultation, if any and not declined.
pub async fn role_of(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<Option<ParticipantRole>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2 AND status <> 'declined'",
    )
    .bind(consultation_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| ParticipantRole::try_from(r.0).map_err(ApiError::internal)).transpose()
}

/// The status of `user_id` as an expert of the consultation (`invited`, `accepted`,
/// `active`, `declined`), if they are one.
pub async fn expert_status(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT status FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2 AND role = 'expert'",
    )
    .bind(consultation_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| r.0))
}

/// Refuses (403, audited as `action` denied) an expert invited to the consultation who has not
/// answered yet: until they accept it they may read it, to decide, and accept or decline it;
/// nothing else (its appointments, files, images, room, the patient's readings and plans).
pub async fn require_answered(db: &Db, consultation_id: &str, user: &AuthUser, action: &str) -> ApiResult<()> {
    if user.role != Role::Expert || expert_status(db, consultation_id, &user.id).await?.as_deref() != Some("invited") {
        return Ok(());
    }
    crate::audit::event(user, action, "consultation", consultation_id)
        .outcome(crate::audit::Outcome::Denied)
        .detail("invitation not answered")
        .record(db)
        .await?;
    Err(invitation_unanswered())
}

/// The refusal of an expert who has not answered the invitation yet.
pub fn invitation_unanswered() -> ApiError {
    ApiError::forbidden(
        "accept the consultation first: an invited expert may read it and accept or decline it, nothing more",
    )
}

/// [`role_of`] by its name (`requester`, `expert`, `patient`).
pub async fn participant_role(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<Option<String>> {
    Ok(role_of(db, consultation_id, user_id).await?.map(|r| r.as_str().to_string()))
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
    State::try_from(state).map_err(ApiError::internal)
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
    insert_transitions(conn, &[(id, from, to)], action, actor_id, &now).await?;
    if to == State::Completed {
        // The appointment closes with the consultation (attended or no-show).
        super::visit::close_appointments(conn, id).await?;
    }
    Ok(to)
}

/// Stores the transitions `(consultation, from, to)` that `action` made at `now`, in one
/// statement.
async fn insert_transitions(
    conn: &mut sqlx::AnyConnection,
    moves: &[(&str, State, State)],
    action: &Action,
    actor_id: Option<&str>,
    now: &str,
) -> ApiResult<()> {
    let sql = format!(
        "INSERT INTO consultation_transitions (id, consultation_id, from_state, to_state, action, actor_id, reason, at)
         VALUES {}",
        crate::db::batch::values(moves.len(), 8, 1)
    );
    let reason = action.reason().map(|r| r.as_str().to_string()).unwrap_or_default();
    let mut q = sqlx::query(&sql);
    for (id, from, to) in moves {
        q = q
            .bind(new_id())
            .bind(*id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(action.name())
            .bind(actor_id)
            .bind(reason.clone())
            .bind(now);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Applies `user`'s `action` (audited as `name`) to consultation `c` in its own transaction,
/// the state change and its audit event committed together; returns the new state.
pub async fn apply_audited(
    db: &Db,
    c: &ConsultationCore,
    user: &AuthUser,
    action: &Action,
    name: &str,
) -> ApiResult<State> {
    let mut tx = crate::audit::begin(db).await?;
    let from = lock(&mut tx, &c.id).await?;
    let to = apply_locked(&mut tx, &c.id, from, Some(&user.id), action).await?;
    tx.audit(acted(user, c, name)).await?;
    tx.commit().await?;
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

/// Starts those of `ids` that the state machine lets start (a system action: no actor), in
/// one transaction of the same statements as [`apply_action`] whatever their number: the
/// rows locked and read, the new state stored, a transition row each. A consultation that
/// cannot start (already in progress, as every room is after a restart; cancelled; unknown)
/// is left as it is. Returns the ids started, in the order given.
pub async fn start_many(db: &Db, ids: &[String]) -> ApiResult<Vec<String>> {
    let mut started = Vec::new();
    for chunk in ids.chunks(500) {
        let mut tx = db.begin_write().await?;
        // The lock of `lock`, over the rows that may start: they keep their state meanwhile.
        let sql = format!(
            "UPDATE consultations SET updated_at = updated_at WHERE id IN ({}) AND state IN ('scheduled', 'accepted')
             RETURNING id, state",
            crate::db::batch::list(chunk.len(), 1)
        );
        let mut q = sqlx::query_as::<_, (String, String)>(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        let mut locked: HashMap<String, String> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let mut moves = Vec::new();
        for id in chunk {
            // `remove`: an id given twice starts once.
            let Some(state) = locked.remove(id) else { continue };
            let from = State::try_from(state).map_err(ApiError::internal)?;
            if let Ok(to) = transition(from, &Action::Start) {
                moves.push((id, from, to));
            }
        }
        if moves.is_empty() {
            tx.commit().await?;
            continue;
        }
        let now = now_ts();
        let mut targets: Vec<State> = Vec::new();
        for m in &moves {
            if !targets.contains(&m.2) {
                targets.push(m.2);
            }
        }
        for to in targets {
            let ids: Vec<&String> = moves.iter().filter(|m| m.2 == to).map(|m| m.0).collect();
            let sql = format!(
                "UPDATE consultations SET state = $1, updated_at = $2 WHERE id IN ({})",
                crate::db::batch::list(ids.len(), 3)
            );
            let mut q = sqlx::query(&sql).bind(to.as_str()).bind(&now);
            for id in ids {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        let moved: Vec<(&str, State, State)> = moves.iter().map(|(id, from, to)| (id.as_str(), *from, *to)).collect();
        insert_transitions(&mut tx, &moved, &Action::Start, None, &now).await?;
        tx.commit().await?;
        started.extend(moves.into_iter().map(|(id, _, _)| id.clone()));
    }
    Ok(started)
}

// ---------------------------------------------------------------------------------------
// Reading a consultation for its detail and lists
// ---------------------------------------------------------------------------------------

/// The columns of a [`ConsultationSummary`], over `consultations c` and [`summary_joins!`].
macro_rules! summary_columns {
    () => {
        "c.id, c.patient_id, p.name AS patient_name, c.requesting_organisation_id,
    o.name AS requesting_organisation_name, c.requested_by, r.display_name AS requested_by_name, c.reason, c.record_summary,
    c.specialty, c.min_title, c.urgency, c.mode, c.addressee_kind, c.pool_organisation_id, c.state, c.assigned_expert_id,
    x.display_name AS assigned_expert_name, c.created_at, c.updated_at"
    };
}

/// The names a summary shows, joined to `consultations c`.
macro_rules! summary_joins {
    () => {
        "JOIN patients p ON p.id = c.patient_id JOIN organisations o ON o.id = c.requesting_organisation_id
    JOIN users r ON r.id = c.requested_by LEFT JOIN users x ON x.id = c.assigned_expert_id"
    };
}

const SUMMARY_SELECT: &str = concat!("SELECT ", summary_columns!(), " FROM consultations c ", summary_joins!());

pub async fn summary(db: &Db, id: &str) -> ApiResult<Option<ConsultationSummary>> {
    Ok(sqlx::query_as(&format!("{SUMMARY_SELECT} WHERE c.id = $1")).bind(id).fetch_optional(&db.pool).await?)
}

/// A participant row, typed.
#[derive(Debug, sqlx::FromRow)]
pub struct ParticipantRow {
    pub user_id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: ParticipantRole,
    #[sqlx(try_from = "String")]
    pub status: ParticipantStatus,
    pub reason: String,
}

/// Every participant, declined ones included, in the order they were added.
pub async fn participants(db: &Db, id: &str) -> ApiResult<Vec<ParticipantRow>> {
    Ok(sqlx::query_as(
        "SELECT cp.user_id, u.display_name AS name, cp.role, cp.status, cp.reason FROM consultation_participants cp
         JOIN users u ON u.id = cp.user_id WHERE cp.consultation_id = $1 ORDER BY cp.added_at, cp.user_id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?)
}

/// The consent recorded last.
pub async fn latest_consent(db: &Db, id: &str) -> ApiResult<Option<ConsentView>> {
    Ok(sqlx::query_as(
        "SELECT k.given_by, k.guardian_name, k.method, k.given_at, k.witness_id, u.display_name AS witness_name
         FROM consultation_consents k JOIN users u ON u.id = k.witness_id WHERE k.consultation_id = $1 ORDER BY k.created_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?)
}

pub async fn transitions(db: &Db, id: &str) -> ApiResult<Vec<Transition>> {
    Ok(sqlx::query_as(
        "SELECT t.from_state, t.to_state, t.action, t.actor_id, u.display_name AS actor_name, t.reason, t.at
         FROM consultation_transitions t LEFT JOIN users u ON u.id = t.actor_id WHERE t.consultation_id = $1 ORDER BY t.at, t.id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?)
}

/// What a list of consultations is narrowed to; `None` filters nothing.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub state: Option<State>,
    /// `Some(true)`: open states only; `Some(false)`: terminal ones only.
    pub active: Option<bool>,
    pub mode: Option<Mode>,
    pub urgency: Option<Urgency>,
    /// Created at or after (stored timestamp text).
    pub created_from: Option<String>,
    /// Created before.
    pub created_before: Option<String>,
    /// Ids below this one (the page cursor).
    pub before_id: Option<String>,
    pub limit: i64,
}

/// The consultations the caller may see, newest id first.
///
/// The page is chosen from `consultations` alone and the names joined to its rows only (a
/// plan that joined first did so for every candidate row). An `active` list is matched
/// consultation by consultation ([`visible_one`]): the open consultations, checked against
/// the caller's participations read once; the participations as a set joined to the open
/// consultations were planned, on statistics from before the open ones came, as a nested
/// loop that compared each with each (690 ms for an expert with 2,542 participations).
pub async fn list(db: &Db, user: &AuthUser, f: &ListQuery) -> ApiResult<Vec<ConsultationSummary>> {
    let mut q = Filtered::new(concat!("SELECT ", summary_columns!(), " FROM (SELECT c.* FROM consultations c"));
    if f.active == Some(true) {
        visible_one(&mut q, user);
    } else {
        visible(&mut q, user);
    }
    for (column, value) in [
        ("c.state = ", f.state.map(State::as_str)),
        ("c.mode = ", f.mode.map(Mode::as_str)),
        ("c.urgency = ", f.urgency.map(Urgency::as_str)),
        ("c.created_at >= ", f.created_from.as_deref()),
        ("c.created_at < ", f.created_before.as_deref()),
        ("c.id < ", f.before_id.as_deref()),
    ] {
        if let Some(v) = value {
            q.condition().push(column).push_bind(v.to_string());
        }
    }
    if let Some(active) = f.active {
        // The states as values (not `NOT IN`), so the state index can find the few open ones.
        q.condition().push("c.state IN (");
        for (i, state) in State::ALL.iter().filter(|s| s.is_terminal() != active).enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push_bind(state.as_str());
        }
        q.push(")");
    }
    q.push(" ORDER BY c.id DESC LIMIT ").push_bind(f.limit);
    q.push(concat!(") c ", summary_joins!(), " ORDER BY c.id DESC"));
    // Planned with its values, like patient searches: PostgreSQL's generic plan of the kept
    // statement walks every consultation in id order (219 ms at 500,000 for an expert's page).
    Ok(q.build_query_as().persistent(false).fetch_all(&db.pool).await?)
}

// ---------------------------------------------------------------------------------------
// What a request names: specialty, experts, pool
// ---------------------------------------------------------------------------------------

pub async fn specialty_exists(db: &Db, code: &str) -> ApiResult<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT code FROM specialties WHERE code = $1").bind(code).fetch_optional(&db.pool).await?;
    Ok(row.is_some())
}

/// An active expert's organisation and title.
#[derive(Debug, sqlx::FromRow)]
pub struct ExpertFacts {
    pub id: String,
    pub organisation_id: String,
    #[sqlx(try_from = "String")]
    pub title: Title,
}

pub async fn expert_facts(db: &Db, id: &str) -> ApiResult<Option<ExpertFacts>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.organisation_id, e.title FROM users u JOIN expert_profiles e ON e.user_id = u.id WHERE u.id = $1 AND u.active = 1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?)
}

pub async fn has_specialty(db: &Db, expert: &str, specialty: &str) -> ApiResult<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM expert_specialties WHERE user_id = $1 AND specialty = $2")
            .bind(expert)
            .bind(specialty)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.is_some())
}

/// The hospital `org` if it has a department of the specialty.
pub async fn department_of(db: &Db, org: &str, specialty: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT organisation_id FROM departments WHERE organisation_id = $1 AND specialty = $2")
            .bind(org)
            .bind(specialty)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// The first hospital linked to the centre that has a department of the specialty.
pub async fn linked_department(db: &Db, centre: &str, specialty: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT d.organisation_id FROM departments d JOIN consortium_links l ON l.hospital_id = d.organisation_id
         WHERE l.centre_id = $1 AND d.specialty = $2 ORDER BY d.organisation_id LIMIT 1",
    )
    .bind(centre)
    .bind(specialty)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| r.0))
}

/// The active experts of a hospital practising the specialty with at least `min_title`.
pub async fn pool_experts(
    conn: &mut sqlx::AnyConnection,
    org: &str,
    specialty: &str,
    min_title: Title,
) -> ApiResult<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.id, e.title FROM users u JOIN expert_profiles e ON e.user_id = u.id JOIN expert_specialties s ON s.user_id = u.id
         WHERE u.organisation_id = $1 AND s.specialty = $2 AND u.active = 1 ORDER BY u.id",
    )
    .bind(org)
    .bind(specialty)
    .fetch_all(&mut *conn)
    .await?;
    let mut experts = Vec::new();
    for (user, title) in rows {
        if Title::try_from(title).map_err(ApiError::internal)? >= min_title {
            experts.push(user);
        }
    }
    Ok(experts)
}

/// The person's display name (王建国, not the login name).
pub async fn display_name(db: &Db, user_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT display_name FROM users WHERE id = $1").bind(user_id).fetch_optional(&db.pool).await?;
    Ok(row.map(|r| r.0))
}

// ---------------------------------------------------------------------------------------
// Creating a request
// ---------------------------------------------------------------------------------------

/// A new consultation row, stored as a draft.
pub struct NewRow<'a> {
    pub id: &'a str,
    pub patient_id: &'a str,
    pub requesting_organisation_id: &'a str,
    pub requested_by: &'a str,
    pub reason: &'a str,
    pub record_summary: &'a str,
    pub specialty: &'a str,
    pub min_title: Title,
    pub urgency: Urgency,
    pub mode: Mode,
    pub addressee_kind: AddresseeKind,
    pub pool_organisation_id: Option<&'a str>,
    pub now: &'a str,
}

pub async fn insert_draft(conn: &mut sqlx::AnyConnection, c: &NewRow<'_>) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO consultations (id, patient_id, requesting_organisation_id, requested_by, reason, record_summary, specialty, min_title,
            urgency, mode, addressee_kind, pool_organisation_id, state, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'draft', $13, $13)",
    )
    .bind(c.id)
    .bind(c.patient_id)
    .bind(c.requesting_organisation_id)
    .bind(c.requested_by)
    .bind(c.reason)
    .bind(c.record_summary)
    .bind(c.specialty)
    .bind(c.min_title.as_str())
    .bind(c.urgency.as_str())
    .bind(c.mode.as_str())
    .bind(c.addressee_kind.as_str())
    .bind(c.pool_organisation_id)
    .bind(c.now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The patient's consent as the requesting doctor witnessed it.
pub struct NewConsent<'a> {
    pub given_by: &'a str,
    pub guardian_name: &'a str,
    pub method: &'a str,
    pub given_at: &'a str,
    pub witness_id: &'a str,
}

pub async fn insert_consent(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    k: &NewConsent<'_>,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO consultation_consents (id, consultation_id, given_by, guardian_name, method, given_at, witness_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(consultation_id)
    .bind(k.given_by)
    .bind(k.guardian_name)
    .bind(k.method)
    .bind(k.given_at)
    .bind(k.witness_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn insert_participant(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    user_id: &str,
    role: ParticipantRole,
    status: ParticipantStatus,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        // With the start of the consultation's latest appointment, as booking keeps it for the
        // other participants (migration 0020); the consultation's row is locked by now, so no
        // booking of it is under way.
        "INSERT INTO consultation_participants (consultation_id, user_id, role, status, added_at, latest_start_at)
         VALUES ($1, $2, $3, $4, $5, (SELECT MAX(start_at) FROM appointments WHERE consultation_id = $1))",
    )
    .bind(consultation_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(status.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// An expert's answer: accept, decline, claim; cancelling
// ---------------------------------------------------------------------------------------

/// The status of the user's part in the consultation, `expert_only`: as an expert.
pub async fn participant_status(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    user_id: &str,
    expert_only: bool,
) -> ApiResult<Option<ParticipantStatus>> {
    let sql = if expert_only {
        "SELECT status FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2 AND role = 'expert'"
    } else {
        "SELECT status FROM consultation_participants WHERE consultation_id = $1 AND user_id = $2"
    };
    let row: Option<(String,)> =
        sqlx::query_as(sql).bind(consultation_id).bind(user_id).fetch_optional(&mut *conn).await?;
    row.map(|r| ParticipantStatus::try_from(r.0).map_err(ApiError::internal)).transpose()
}

/// Records an invited expert's acceptance and assigns them unless an expert already is.
pub async fn accept(conn: &mut sqlx::AnyConnection, consultation_id: &str, expert_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE consultation_participants SET status = 'accepted' WHERE consultation_id = $1 AND user_id = $2")
        .bind(consultation_id)
        .bind(expert_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE consultations SET assigned_expert_id = COALESCE(assigned_expert_id, $1) WHERE id = $2")
        .bind(expert_id)
        .bind(consultation_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn mark_declined(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    user_id: &str,
    reason: &str,
) -> ApiResult<()> {
    sqlx::query("UPDATE consultation_participants SET status = 'declined', reason = $1 WHERE consultation_id = $2 AND user_id = $3")
        .bind(reason)
        .bind(consultation_id)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many experts still take part (not declined).
pub async fn experts_left(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM consultation_participants WHERE consultation_id = $1 AND role = 'expert' AND status <> 'declined'",
    )
    .bind(consultation_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

pub async fn unassign(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<()> {
    sqlx::query("UPDATE consultations SET assigned_expert_id = NULL WHERE id = $1")
        .bind(consultation_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Addresses a request anew (see `routes::readdress`): the kind of addressee and the pool's
/// hospital, no expert assigned.
pub async fn set_addressee(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    kind: AddresseeKind,
    pool_organisation_id: Option<&str>,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE consultations SET addressee_kind = $1, pool_organisation_id = $2, assigned_expert_id = NULL WHERE id = $3",
    )
    .bind(kind.as_str())
    .bind(pool_organisation_id)
    .bind(consultation_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The experts who declined a consultation: its participants who declined, and the pool's
/// experts whose decline is in its transitions.
pub async fn declined_by(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT user_id FROM consultation_participants WHERE consultation_id = $1 AND status = 'declined'
         UNION SELECT actor_id FROM consultation_transitions WHERE consultation_id = $1 AND action = 'decline' AND actor_id IS NOT NULL",
    )
    .bind(consultation_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The request's reason, as the notification of a new match carries it.
pub async fn reason_of(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<String> {
    let (reason,): (String,) = sqlx::query_as("SELECT reason FROM consultations WHERE id = $1")
        .bind(consultation_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(reason)
}

/// Whether the consultation is a pool request of the user's organisation that left the
/// pool (claimed by someone, or further on).
pub async fn claimed_from_users_pool(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<bool> {
    let taken: Option<(String,)> = sqlx::query_as(
        "SELECT c.state FROM consultations c JOIN users u ON u.id = $2
         WHERE c.id = $1 AND c.addressee_kind = 'pool' AND c.pool_organisation_id = u.organisation_id
           AND c.state <> 'requested' AND c.state <> 'draft'",
    )
    .bind(consultation_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(taken.is_some())
}

/// Makes the claiming expert an accepted participant and the assigned expert.
pub async fn claim(conn: &mut sqlx::AnyConnection, consultation_id: &str, expert_id: &str) -> ApiResult<()> {
    insert_participant(
        conn,
        consultation_id,
        expert_id,
        ParticipantRole::Expert,
        ParticipantStatus::Accepted,
        &now_ts(),
    )
    .await?;
    sqlx::query("UPDATE consultations SET assigned_expert_id = $1 WHERE id = $2")
        .bind(expert_id)
        .bind(consultation_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels the consultation's booked appointments with its cancellation reason.
pub async fn cancel_booked_appointments(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    reason: &str,
) -> ApiResult<()> {
    sqlx::query("UPDATE appointments SET status = 'cancelled', cancelled_at = $1, cancel_reason = $2 WHERE consultation_id = $3 AND status = 'booked'")
        .bind(now_ts())
        .bind(reason)
        .bind(consultation_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Candidates for matching
// ---------------------------------------------------------------------------------------

/// An active expert practising a specialty.
#[derive(Debug, sqlx::FromRow)]
pub struct ExpertRow {
    pub id: String,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub title: Title,
    pub organisation_id: String,
}

/// The active experts practising `specialty`, by id.
pub async fn experts_of_specialty(db: &Db, specialty: &str) -> ApiResult<Vec<ExpertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT u.id, u.display_name, e.title, u.organisation_id FROM users u JOIN expert_profiles e ON e.user_id = u.id
         WHERE u.role = 'expert' AND u.active = 1 AND u.id IN ({EXPERTS_OF_SPECIALTY}) ORDER BY u.id"
    ))
    .bind(specialty)
    .fetch_all(&db.pool)
    .await?)
}

/// The hospitals a centre is linked to.
pub async fn linked_hospitals(db: &Db, centre: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT hospital_id FROM consortium_links WHERE centre_id = $1")
        .bind(centre)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The experts practising `specialty`, as a statement's subquery (`$1` is the specialty).
pub const EXPERTS_OF_SPECIALTY: &str = "SELECT user_id FROM expert_specialties WHERE specialty = $1";

/// How many consultations each expert practising `specialty` has taken on that are still
/// open (experts with none are absent).
pub async fn open_consultations_of_experts(db: &Db, specialty: &str) -> ApiResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT cp.user_id, COUNT(*) FROM consultation_participants cp JOIN consultations k ON k.id = cp.consultation_id
         WHERE cp.role = 'expert' AND cp.status IN ('accepted', 'active')
           AND k.state IN ('accepted', 'scheduled', 'in_progress', 'awaiting_opinion')
           AND cp.user_id IN ({EXPERTS_OF_SPECIALTY})
         GROUP BY cp.user_id"
    ))
    .bind(specialty)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().collect())
}

// ---------------------------------------------------------------------------------------
// The visit: appointments as the consultation shows them, the room timeline
// ---------------------------------------------------------------------------------------

/// An appointment row with its expert's name and time zone.
#[derive(Debug, sqlx::FromRow)]
pub struct AppointmentRow {
    pub id: String,
    pub consultation_id: String,
    pub expert_id: String,
    pub expert_name: String,
    pub time_zone: String,
    pub patient_id: String,
    pub start_at: String,
    pub end_at: String,
    #[sqlx(try_from = "String")]
    pub status: AppointmentStatus,
    pub cancel_reason: String,
    pub replaced_by: Option<String>,
}

/// The columns of [`AppointmentRow`], from an appointment `a`, its expert `u` and profile `e`
/// (a macro, so that [`APPOINTMENT_SELECT`] can be one `concat!`).
macro_rules! appointment_columns {
    () => {
        "a.id, a.consultation_id, a.expert_id, u.display_name AS expert_name, e.time_zone, \
         a.patient_id, a.start_at, a.end_at, a.status, a.cancel_reason, a.replaced_by"
    };
}
pub const APPOINTMENT_COLUMNS: &str = appointment_columns!();

/// The select of [`AppointmentRow`], over `appointments a`, for a `WHERE` to follow.
pub const APPOINTMENT_SELECT: &str = concat!(
    "SELECT ",
    appointment_columns!(),
    " FROM appointments a JOIN users u ON u.id = a.expert_id JOIN expert_profiles e ON e.user_id = a.expert_id"
);

pub async fn appointment(db: &Db, id: &str) -> ApiResult<Option<AppointmentRow>> {
    Ok(sqlx::query_as(&format!("{APPOINTMENT_SELECT} WHERE a.id = $1")).bind(id).fetch_optional(&db.pool).await?)
}

/// Every appointment of a consultation, earliest first.
pub async fn appointments_of(db: &Db, consultation_id: &str) -> ApiResult<Vec<AppointmentRow>> {
    Ok(sqlx::query_as(&format!("{APPOINTMENT_SELECT} WHERE a.consultation_id = $1 ORDER BY a.start_at"))
        .bind(consultation_id)
        .fetch_all(&db.pool)
        .await?)
}

pub async fn urgency_of(db: &Db, consultation_id: &str) -> ApiResult<Option<Urgency>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT urgency FROM consultations WHERE id = $1")
        .bind(consultation_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Urgency::try_from(r.0).map_err(ApiError::internal)).transpose()
}

pub async fn mode_of(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<Option<Mode>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT mode FROM consultations WHERE id = $1")
        .bind(consultation_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| Mode::try_from(r.0).map_err(ApiError::internal)).transpose()
}

/// Whether an opinion of `kind` (`individual`, `joint`) is signed for the consultation.
pub async fn opinion_signed(conn: &mut sqlx::AnyConnection, consultation_id: &str, kind: &str) -> ApiResult<bool> {
    let signed: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM opinions WHERE consultation_id = $1 AND kind = $2 AND status = 'signed' LIMIT 1",
    )
    .bind(consultation_id)
    .bind(kind)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(signed.is_some())
}

/// The start of the consultation's earliest booked appointment.
pub async fn booked_start(conn: &mut sqlx::AnyConnection, consultation_id: &str) -> ApiResult<Option<String>> {
    let start: Option<(String,)> = sqlx::query_as(
        "SELECT start_at FROM appointments WHERE consultation_id = $1 AND status = 'booked' ORDER BY start_at LIMIT 1",
    )
    .bind(consultation_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(start.map(|s| s.0))
}

/// Sets the consultation's booked appointments to `outcome` (attended or no-show).
pub async fn close_booked_appointments(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    outcome: AppointmentStatus,
) -> ApiResult<()> {
    sqlx::query("UPDATE appointments SET status = $1 WHERE consultation_id = $2 AND status = 'booked'")
        .bind(outcome.as_str())
        .bind(consultation_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The room timeline of a consultation since `since`, in order.
pub async fn room_events(conn: &mut sqlx::AnyConnection, id: &str, since: &str) -> ApiResult<Vec<RoomEvent>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT participant_id, room_role, kind FROM room_events WHERE consultation_id = $1 AND at >= $2 ORDER BY at, id",
    )
    .bind(id)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(participant, role, kind)| RoomEvent { participant, role, kind }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone(role: Role) -> AuthUser {
        AuthUser {
            id: "u1".into(),
            username: "wang".into(),
            role,
            org: "o1".into(),
            client_addr: String::new(),
            family: String::new(),
            device: None,
        }
    }

    #[test]
    fn the_rule_binds_only_what_it_names_for_every_role() {
        for role in [Role::Admin, Role::Coordinator, Role::CommunityDoctor, Role::Patient, Role::Expert] {
            for push in [visible, visible_one] {
                let mut q = Filtered::new("SELECT 1 FROM consultations c WHERE c.id = ");
                q.after_where();
                q.push_bind("c1");
                push(&mut q, &someone(role));
                let sql = q.sql();
                assert!(!sql.contains('{') && !sql.contains("u1") && !sql.contains("o1"), "{role:?}: {sql}");
                assert!(!sql.contains("<> ''") && !sql.contains("= ''"), "{role:?}: {sql}");
            }
        }
        let mut q = Filtered::new("SELECT 1 FROM consultations c WHERE c.id = ");
        q.after_where();
        q.push_bind("c1");
        visible(&mut q, &someone(Role::Expert));
        assert!(q.sql().contains("user_id = $2") && q.sql().contains("pool_organisation_id = $3"), "{}", q.sql());
        assert!(q.sql().contains("ep.user_id = $5") && q.sql().contains("actor_id = $6"), "{}", q.sql());
        let mut q = Filtered::new("SELECT 1 FROM consultations c WHERE c.id = ");
        q.after_where();
        q.push_bind("c1");
        visible(&mut q, &someone(Role::Admin));
        assert_eq!(q.sql(), "SELECT 1 FROM consultations c WHERE c.id = $1 AND (1 = 0)", "an admin sees none");
    }
}
