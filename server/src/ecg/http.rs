//! The ECG side of the review endpoint (`GET /api/v1/files/{id}/ecg`, routed with the files
//! it reads, [`crate::files::ecg_review`]): an ECG file's bytes normalised to leads in
//! microvolts with the computer-assisted measurements, optionally decimated for an overview.
//! The measurements are computed when the file is uploaded and kept in `ecg_analyses`.
//! Works on bytes; reading them from storage and deciding who may is the caller's.

use crate::db::Db;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use serde::Deserialize;

/// Largest ECG file parsed (a 24-hour Holter record fits).
pub const MAX_ECG_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EcgQuery {
    /// Decimate each lead to at most this many points (keeping each block's extremes).
    pub max_points: Option<usize>,
}

/// Parses an ECG file's bytes and computes its measurements (on a blocking thread); a file
/// that cannot be read as an ECG answers 422 saying what was wrong.
async fn parse_and_analyse(name: &str, bytes: Vec<u8>) -> ApiResult<(super::EcgRecord, super::Measurements)> {
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
pub async fn pre_read(name: &str, bytes: Vec<u8>) -> ApiResult<super::Measurements> {
    parse_and_analyse(name, bytes).await.map(|(_, m)| m)
}

/// The record and its stored measurements (computed now, and kept, for a file stored
/// without them).
async fn load(
    db: &Db,
    file_id: &str,
    name: &str,
    bytes: Vec<u8>,
) -> ApiResult<(super::EcgRecord, super::Measurements)> {
    let (record, computed) = parse_and_analyse(name, bytes).await?;
    let stored = super::store::measurements_json(db, file_id).await?;
    if let Some(m) = stored.and_then(|json| serde_json::from_str(&json).ok()) {
        return Ok((record, m));
    }
    let mut conn = db.pool.acquire().await?;
    match super::store::insert_measurements(&mut conn, file_id, &computed).await {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok((record, computed))
}

/// The review of an ECG file the caller may read: its leads and measurements.
pub async fn review(db: &Db, file_id: &str, name: &str, bytes: Vec<u8>, q: &EcgQuery) -> ApiResult<super::EcgView> {
    let (record, measurements) = load(db, file_id, name, bytes).await?;
    let max = q.max_points.map(|m| m.clamp(100, 1_000_000));
    Ok(super::to_view(&record, &measurements, max))
}
