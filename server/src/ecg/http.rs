//! The ECG review endpoint: an uploaded ECG file normalised to leads in microvolts with the
//! computer-assisted measurements, optionally decimated for an overview. The measurements
//! are computed when the file is uploaded and kept in `ecg_analyses`.

use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{now_ts, Id};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use serde::Deserialize;

/// Largest ECG file parsed (a 24-hour Holter record fits).
const MAX_ECG_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcgQuery {
    /// Decimate each lead to at most this many points (keeping each block's extremes).
    pub max_points: Option<usize>,
}

/// Parses a stored ECG file and computes its measurements; a file that cannot be read as an
/// ECG answers 422 saying what was wrong.
async fn parse_and_analyse(
    state: &AppState,
    name: &str,
    storage_key: &str,
) -> ApiResult<(super::EcgRecord, super::Measurements)> {
    let bytes = crate::files::routes::read_all(state, storage_key, MAX_ECG_BYTES).await?;
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let record = super::parse(&[(name.as_str(), bytes.as_slice())])?;
        let m = super::analyze(&record);
        Ok::<_, super::EcgError>((record, m))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidEcg, e.to_string()))
}

/// The computer-assisted pre-read of an uploaded ECG, computed when it is uploaded (a broken
/// file is refused then, with what was wrong).
pub async fn pre_read(state: &AppState, name: &str, storage_key: &str) -> ApiResult<super::Measurements> {
    parse_and_analyse(state, name, storage_key).await.map(|(_, m)| m)
}

/// Stores the pre-read with its file, in the transaction that records the file.
pub async fn store_measurements(
    conn: &mut sqlx::AnyConnection,
    file_id: &str,
    m: &super::Measurements,
) -> ApiResult<()> {
    sqlx::query("INSERT INTO ecg_analyses (file_id, measurements, created_at) VALUES ($1, $2, $3)")
        .bind(file_id)
        .bind(serde_json::to_string(m).map_err(ApiError::internal)?)
        .bind(now_ts())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The record and its stored measurements (computed now for a file stored without them).
async fn load(
    state: &AppState,
    file_id: &str,
    name: &str,
    storage_key: &str,
) -> ApiResult<(super::EcgRecord, super::Measurements)> {
    let (record, computed) = parse_and_analyse(state, name, storage_key).await?;
    let stored: Option<(String,)> = sqlx::query_as("SELECT measurements FROM ecg_analyses WHERE file_id = $1")
        .bind(file_id)
        .fetch_optional(&state.db.pool)
        .await?;
    if let Some(m) = stored.and_then(|(json,)| serde_json::from_str(&json).ok()) {
        return Ok((record, m));
    }
    let mut conn = state.db.pool.acquire().await?;
    match store_measurements(&mut conn, file_id, &computed).await {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok((record, computed))
}

async fn ecg(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Query(q): Query<EcgQuery>,
) -> ApiResult<Json<super::EcgView>> {
    let (file, consultation) = crate::files::readable_file(&state, &user, &id).await?;
    if file.kind != "ecg" {
        return Err(ApiError::unprocessable(ErrorCode::NotAnEcg, "the file is not an ECG recording"));
    }
    crate::audit::event(&user, "read", "file", &id)
        .patient(&consultation.patient_id)
        .detail("ecg")
        .record(&state.db)
        .await?;
    let (record, measurements) = load(&state, &id, &file.name, &file.storage_key).await?;
    let max = q.max_points.map(|m| m.clamp(100, 1_000_000));
    Ok(Json(super::to_view(&record, &measurements, max)))
}

pub fn routes() -> Routes {
    Routes::new("ecg")
        .get(
            "/api/v1/files/{id}/ecg",
            "An ECG file as leads in microvolts with computer-assisted measurements (?max_points= to decimate)",
            ecg,
        )
        .query::<EcgQuery>()
        .json::<super::EcgView>(200)
        .errors(&[409])
}
