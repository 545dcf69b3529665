//! The audit trail: who read or wrote which patient data, when, from where, and with what
//! outcome. Events are written in the same request that touches the data; a request whose
//! audit event cannot be written fails.

use crate::api::{Json, Page, Query, Routes};
use crate::app::AppState;
pub mod store;

use crate::db::{new_id, now_ts, Db, WriteTx};
use crate::domain::people::Role;
use crate::error::{ApiError, ApiResult};
use crate::principal::AuthUser;
use serde::{Deserialize, Serialize};

crate::domain::named_enum! {
    /// How an audited action ended (`audit_events.outcome`).
    Outcome, "audit outcome" {
        Success => "success",
        Denied => "denied",
        Failed => "failed",
    }
}

/// One event to record; built with [`event`].
#[derive(Debug, Clone)]
pub struct AuditEvent {
    actor_id: Option<String>,
    actor_role: String,
    client_addr: String,
    action: String,
    resource_type: String,
    resource_id: String,
    patient_id: Option<String>,
    outcome: Outcome,
    detail: String,
}

/// An event by `actor`: `action` (read, create, update, ...) on a resource.
pub fn event(actor: &AuthUser, action: &str, resource_type: &str, resource_id: &str) -> AuditEvent {
    AuditEvent {
        actor_id: Some(actor.id.clone()),
        actor_role: actor.role.as_str().to_string(),
        client_addr: actor.client_addr.clone(),
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
        patient_id: None,
        outcome: Outcome::Success,
        detail: String::new(),
    }
}

/// An event with no signed-in actor: `actor_role` names what acted (`system` for the
/// server's own sweeps).
pub fn unattended_event(
    actor_role: &str,
    client_addr: &str,
    action: &str,
    resource_type: &str,
    resource_id: &str,
) -> AuditEvent {
    AuditEvent {
        actor_id: None,
        actor_role: actor_role.to_string(),
        client_addr: client_addr.to_string(),
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
        patient_id: None,
        outcome: Outcome::Success,
        detail: String::new(),
    }
}

/// An event by a device (`actor_role` `device`; no device when its token was not recognised).
pub fn device_event(
    device_id: Option<&str>,
    client_addr: &str,
    action: &str,
    resource_type: &str,
    resource_id: &str,
) -> AuditEvent {
    AuditEvent {
        actor_id: device_id.map(str::to_string),
        actor_role: "device".to_string(),
        client_addr: client_addr.to_string(),
        action: action.to_string(),
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
        patient_id: None,
        outcome: Outcome::Success,
        detail: String::new(),
    }
}

/// An event by `actor` on a user account (sign-in data, role, status): account management
/// is audited like patient data.
pub fn account_event(actor: &AuthUser, action: &str, user_id: &str) -> AuditEvent {
    event(actor, action, "user", user_id)
}

impl AuditEvent {
    pub fn patient(mut self, patient_id: impl Into<String>) -> Self {
        self.patient_id = Some(patient_id.into());
        self
    }

    pub fn maybe_patient(mut self, patient_id: Option<String>) -> Self {
        self.patient_id = patient_id;
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Hands `result` on, recording this event first as its refusal when it is an error:
    /// `denied` for 401, 403 and 404, `failed` for any other (a conflict with the record's
    /// state, invalid input, the server's own failure), the problem's code as the detail. An
    /// action records its success itself, in the transaction of its writes; what it refused
    /// it did not do, and the trail must not read as if it had.
    pub async fn if_refused<T>(self, db: &Db, result: ApiResult<T>) -> ApiResult<T> {
        if let Err(e) = &result {
            let outcome = if matches!(e.status.as_u16(), 401 | 403 | 404) { Outcome::Denied } else { Outcome::Failed };
            let event = self.outcome(outcome).detail(e.code.as_str());
            if let Err(audit) = event.record(db).await {
                // The request fails anyway, with its own error; this one is logged.
                tracing::error!(detail = %audit.detail, "the audit event of a refusal could not be recorded");
            }
        }
        result
    }

    /// Records the event on its own (an access that writes nothing else). Events recorded
    /// at the same moment by many requests share one statement and one commit
    /// ([`crate::db::batch`]); this returns once the event is committed.
    pub async fn record(self, db: &Db) -> ApiResult<()> {
        let row = self.into_row();
        let batcher = db.audit.get_or_init(|| {
            let plain = db.plain();
            crate::db::batch::Batcher::start(
                BATCH_ROWS,
                Box::new(move |rows: Vec<Row>| {
                    let db = plain.clone();
                    Box::pin(async move { store::write_rows(&db, &rows).await.map(|()| vec![(); rows.len()]) })
                }),
            )
        });
        match batcher.submit(row.clone()).await {
            Some(result) => result,
            // The batcher's runtime is gone (a handle used from another runtime): on its own.
            None => store::write_rows(db, std::slice::from_ref(&row)).await,
        }
    }

    /// Records inside a transaction (or on any executor).
    pub async fn record_with<'e, E>(self, executor: E) -> ApiResult<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        store::write_one(executor, &self.into_row()).await
    }

    fn into_row(self) -> Row {
        mark_recorded();
        Row { id: new_id(), at: now_ts(), event: self }
    }
}

/// What the audit knows of the request being served: who is calling (once their token is
/// verified) and whether the request recorded an event. Set up for every routed request by
/// [`refusals`].
#[derive(Default)]
pub struct RequestTrail {
    caller: std::sync::Mutex<Option<(String, String, String)>>,
    recorded: std::sync::atomic::AtomicBool,
}

tokio::task_local! {
    static TRAIL: std::sync::Arc<RequestTrail>;
}

/// Names the signed-in caller of the request being served (the authentication extractor
/// calls it once the token is verified, before the account's state is decided).
pub fn request_caller(user_id: &str, role: Role, client_addr: &str) {
    let _ = TRAIL.try_with(|t| {
        if let Ok(mut caller) = t.caller.lock() {
            *caller = Some((user_id.to_string(), role.as_str().to_string(), client_addr.to_string()));
        }
    });
}

/// Notes that the request being served recorded an audit event (outside a request: nothing).
pub(crate) fn mark_recorded() {
    let _ = TRAIL.try_with(|t| t.recorded.store(true, std::sync::atomic::Ordering::Relaxed));
}

/// Middleware: every refusal of a signed-in caller leaves an audit event. A request answered
/// 401, 403 or 404 for which nothing was recorded, from a caller whose token was genuine (a
/// deactivated account's, a role check before any record is looked at, a record the caller
/// may not see), gets one: the caller, `action` the method and route template,
/// `resource_type` `route`, `resource_id` the path, outcome `denied`, the status as the
/// detail. A request without a genuine token names no caller and is not recorded (the login
/// throttle and the request log see those). Handlers that audit their own refusals (with the
/// patient) are left as they are.
pub async fn refusals(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(route) = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_string()) else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_ascii_lowercase();
    let path = req.uri().path().to_string();
    let trail = std::sync::Arc::new(RequestTrail::default());
    let resp = TRAIL.scope(trail.clone(), next.run(req)).await;
    let status = resp.status().as_u16();
    if matches!(status, 401 | 403 | 404) && !trail.recorded.load(std::sync::atomic::Ordering::Relaxed) {
        let caller = trail.caller.lock().ok().and_then(|mut c| c.take());
        if let Some((actor_id, actor_role, client_addr)) = caller {
            let event = AuditEvent {
                actor_id: Some(actor_id),
                actor_role,
                client_addr,
                action: format!("{method} {route}"),
                resource_type: "route".to_string(),
                resource_id: path,
                patient_id: None,
                outcome: Outcome::Denied,
                detail: format!("answered {status}"),
            };
            if let Err(e) = event.record(&state.db).await {
                tracing::error!(detail = %e.detail, "the audit event of a refusal could not be recorded");
            }
        }
    }
    resp
}

/// Records the events of one request together (a list leaves one event per item it shows):
/// one write transaction of multi-row statements, so they commit all or none, and this
/// returns once they have. Nothing is written for no event.
pub async fn record_all(db: &Db, events: Vec<AuditEvent>) -> ApiResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    store::write_all(&mut tx, &events, &now_ts()).await?;
    tx.commit().await?;
    Ok(())
}

/// An event with its id and time, as stored.
#[derive(Debug, Clone)]
pub struct Row {
    id: String,
    at: String,
    event: AuditEvent,
}

/// Rows per batched statement (11 values each: well under both databases' limits).
const BATCH_ROWS: usize = 256;

/// A write of patient data together with its audit events: the rows and the events commit in
/// one transaction or not at all, and committing without an event is refused. The stores
/// write patient-data tables only through it (`tests/audited_writes.rs` reads the sources to
/// keep it so). Dereferences to the connection, like a [`WriteTx`].
pub struct AuditedTx {
    tx: WriteTx,
    events: usize,
}

/// Begins a write of patient data.
pub async fn begin(db: &Db) -> ApiResult<AuditedTx> {
    Ok(AuditedTx { tx: db.begin_write().await?, events: 0 })
}

impl AuditedTx {
    /// Records `event` in this transaction.
    pub async fn audit(&mut self, event: AuditEvent) -> ApiResult<()> {
        event.record_with(&mut *self.tx).await?;
        self.events += 1;
        Ok(())
    }

    /// Records many events in this transaction, in multi-row statements (a batch of readings
    /// leaves one event per reading without one round trip each).
    pub async fn audit_all(&mut self, events: Vec<AuditEvent>) -> ApiResult<()> {
        store::write_all(&mut self.tx, &events, &now_ts()).await?;
        self.events += events.len();
        Ok(())
    }

    /// Commits the rows and their events; refused (rolled back) if no event was recorded.
    pub async fn commit(self) -> ApiResult<()> {
        if self.events == 0 {
            return Err(ApiError::internal("a write of patient data without an audit event was rolled back"));
        }
        self.tx.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for AuditedTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for AuditedTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct AuditEventView {
    pub id: String,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub actor_role: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub patient_id: Option<String>,
    pub client_addr: String,
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub patient_id: Option<String>,
    pub actor_id: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub from: Option<crate::db::ClientTime>,
    /// RFC 3339 upper bound (exclusive).
    pub to: Option<crate::db::ClientTime>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub fn routes() -> Routes {
    Routes::new("audit")
        .get("/api/v1/audit", "Audit events (admins: all; patients: accesses to their own record)", list)
        .query::<AuditFilter>()
        .json::<Page<AuditEventView>>(200)
}

async fn list(
    state: axum::extract::State<AppState>,
    user: AuthUser,
    Query(mut f): Query<AuditFilter>,
) -> ApiResult<Json<Page<AuditEventView>>> {
    match user.role {
        Role::Admin => {}
        Role::Patient => {
            let Some(own) = store::own_patient_id(&state.db, &user.id).await? else {
                return Ok(Json(Page { items: vec![], next: None }));
            };
            if f.patient_id.as_deref().is_some_and(|p| p != own) {
                return Err(ApiError::not_found("patient"));
            }
            f.patient_id = Some(own);
        }
        _ => return Err(ApiError::forbidden("only admins, and patients for their own record, read the audit trail")),
    }
    let limit = crate::api::page_limit(f.limit, 500)? as i64;
    let cursor = crate::api::page_cursor(f.cursor)?;
    let filter = store::EventFilter {
        patient_id: f.patient_id.as_deref(),
        actor_id: f.actor_id.as_deref(),
        from: f.from.map(|t| crate::db::ts(t.into())),
        to: f.to.map(|t| crate::db::ts(t.into())),
        before: Some(&cursor),
    };
    let rows = store::events(&state.db, filter, limit + 1).await?;
    let page = crate::api::page(rows, limit as usize, |r| r.id.clone());
    // Reading the trail is itself a read of what was done with patients' records.
    let mut asked: Vec<String> = Vec::new();
    if let Some(a) = &f.actor_id {
        asked.push(format!("actor {a}"));
    }
    if let Some(from) = &f.from {
        asked.push(format!("from {}", crate::db::ts((*from).into())));
    }
    if let Some(to) = &f.to {
        asked.push(format!("to {}", crate::db::ts((*to).into())));
    }
    event(&user, "read", "audit_trail", "")
        .maybe_patient(f.patient_id.clone())
        .detail(format!("{} events{}{}", page.items.len(), if asked.is_empty() { "" } else { "; " }, asked.join(", ")))
        .record(&state.db)
        .await?;
    Ok(Json(page))
}
