//! The pre-call network check: the server is the other WebRTC peer (the webrtc crate, 0.17
//! line), the client connects to it with the same ICE servers as a real call, and the server
//! echoes data-channel probes and counts bulk bytes. The result names the path the server's
//! ICE agent selected, the round trip, the loss, the upload throughput and a plain verdict, and
//! is kept per organisation so coordinators see which clinics have network trouble.
//!
//! - [`verdict`]: the pure part: message framing, path naming, statistics, thresholds.
//! - [`session`]: the live sessions, capped in number and in time.
//!
//! The contract is documented in `docs/netcheck.md`.

pub mod session;
pub mod store;
pub mod verdict;

pub use session::Sessions;

use crate::api::{Json, Page, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{ts, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use verdict::ClientReport;

pub fn routes() -> Routes {
    Routes::new("network check")
        .post(
            "/api/v1/netcheck",
            "Start a network check: the server becomes a WebRTC peer; answers the ICE servers and the probe plan (201; 503 netcheck_busy when full)",
            start,
        ).json::<StartResponse>(201)
        .get(
            "/api/v1/netcheck/results",
            "Network check results of the organisations the caller oversees (coordinator, admin)",
            list_results,
        ).query::<ResultFilter>().json::<Page<ResultView>>(200)
        .post(
            "/api/v1/netcheck/{id}/offer",
            "The client's complete (non-trickle) SDP offer; answers the server's complete SDP answer",
            offer,
        ).body::<SdpBody>().json::<SdpAnswer>(200).errors(&[409])
        .post(
            "/api/v1/netcheck/{id}/complete",
            "Report the client's measurements; closes the session and answers the stored result with its verdict",
            complete,
        ).body::<verdict::ClientReport>().json::<ResultView>(200).errors(&[409])
        .get("/api/v1/netcheck/{id}", "One network check result (its owner)", get_result).json::<ResultView>(200)
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct ProbePlan {
    count: u32,
    interval_ms: u32,
    bytes: u32,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct BulkPlan {
    duration_ms: u32,
    chunk_bytes: u32,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct StartResponse {
    id: String,
    ice_servers: Vec<crate::signaling::IceServer>,
    expires_at: String,
    probe: ProbePlan,
    bulk: BulkPlan,
}

async fn start(State(state): State<AppState>, user: AuthUser) -> ApiResult<(StatusCode, Json<StartResponse>)> {
    let now = chrono::Utc::now();
    let ice_servers = crate::signaling::ice_servers(&state.config, &user.id, now);
    let (id, expires) = state.netcheck.start(&user.id, &user.org, &ice_servers).await?;
    tracing::info!(netcheck = %id, user = %user.id, organisation = %user.org, "network check started");
    Ok((
        StatusCode::CREATED,
        Json(StartResponse {
            id,
            ice_servers,
            expires_at: ts(expires),
            probe: ProbePlan {
                count: verdict::PROBE_COUNT,
                interval_ms: verdict::PROBE_INTERVAL_MS,
                bytes: verdict::PROBE_BYTES,
            },
            bulk: BulkPlan { duration_ms: verdict::BULK_DURATION_MS, chunk_bytes: verdict::BULK_CHUNK_BYTES },
        }),
    ))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SdpBody {
    sdp: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct SdpAnswer {
    sdp: String,
}

async fn offer(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<SdpBody>,
) -> ApiResult<Json<SdpAnswer>> {
    let sdp = state.netcheck.answer(&id, &user.id, body.sdp).await?;
    Ok(Json(SdpAnswer { sdp }))
}

async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(report): Json<ClientReport>,
) -> ApiResult<Json<ResultView>> {
    report.check().map_err(|(field, message)| ApiError::validation(field, message))?;
    let (session, server) = state.netcheck.finish(&id, &user.id).await?;
    let outcome = verdict::evaluate(&report, &server);
    store::insert(&state.db, &session, &outcome).await?;
    tracing::info!(netcheck = %id, verdict = ?outcome.verdict, path = ?outcome.path, "network check completed");
    store::result(&state.db, &id).await?.map(Json).ok_or_else(|| ApiError::internal("stored result vanished"))
}

/// Who ran a check and when, as stored with its outcome.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: String,
    pub organisation_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// One stored result with who ran it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ResultView {
    pub id: String,
    pub user_id: String,
    pub user_name: String,
    pub organisation_id: String,
    pub organisation_name: String,
    pub started_at: String,
    pub completed_at: String,
    #[serde(flatten)]
    pub outcome: Value,
}

async fn get_result(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ResultView>> {
    match store::result(&state.db, &id).await? {
        Some(r) if r.user_id == user.id => Ok(Json(r)),
        _ => Err(ApiError::not_found("network check result")),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResultFilter {
    organisation_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Admins see every organisation; a coordinator their own organisation and the centres linked
/// to it in the consortium (the scope of their figures and consultations).
async fn list_results(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<ResultFilter>,
) -> ApiResult<Json<Page<ResultView>>> {
    user.require(&[Role::Admin, Role::Coordinator])?;
    let scope = if user.role == Role::Admin { store::Scope::All } else { store::Scope::Oversees(&user.org) };
    let limit = crate::api::page_limit(f.limit, 500)? as i64;
    let cursor = crate::api::page_cursor(f.cursor)?;
    let organisation = f.organisation_id.as_deref().filter(|o| !o.is_empty());
    let before = Some(cursor.as_str()).filter(|c| !c.is_empty());
    let items = store::results(&state.db, scope, organisation, before, limit + 1).await?;
    Ok(Json(crate::api::page(items, limit as usize, |r: &ResultView| r.id.clone())))
}
