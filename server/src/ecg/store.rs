//! All SQL of the ECG pre-reads (`ecg_analyses`): the measurements computed when a file is
//! uploaded, kept with it.

use crate::db::{now_ts, Db};
use crate::error::{ApiError, ApiResult};

/// Stores the pre-read of a file, in the transaction that records the file.
pub async fn insert_measurements(
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

/// The stored pre-read of a file as JSON, if any.
pub async fn measurements_json(db: &Db, file_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT measurements FROM ecg_analyses WHERE file_id = $1")
        .bind(file_id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|(json,)| json))
}
