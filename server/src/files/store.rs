//! All SQL of the files domain: who may see a consultation's files, the `files` rows, and the
//! resumable uploads of `uploads`. Writes run on the connection or pool the caller holds, so
//! an upload's rows commit in the caller's transaction (and SQLite writer turn).

use super::FileView;
use crate::db::filter::Filtered;
use crate::db::{now_ts, Db};
use crate::domain::files::{FileKind, UploadState};
use crate::error::ApiResult;

const FILE_COLUMNS: &str =
    "id, consultation_id, name, kind, ecg_format, content_type, size, sha256, uploaded_by, created_at, storage_key, warnings";

/// A `files` row as stored.
#[derive(sqlx::FromRow)]
struct FileRow {
    id: String,
    consultation_id: String,
    name: String,
    kind: String,
    ecg_format: Option<String>,
    content_type: String,
    size: i64,
    sha256: String,
    uploaded_by: String,
    created_at: String,
    storage_key: String,
    warnings: String,
}

impl FileRow {
    fn view(self) -> ApiResult<FileView> {
        Ok(FileView {
            kind: self.kind.parse::<FileKind>()?,
            id: self.id,
            consultation_id: self.consultation_id,
            name: self.name,
            ecg_format: self.ecg_format,
            content_type: self.content_type,
            size: self.size,
            sha256: self.sha256,
            uploaded_by: self.uploaded_by,
            created_at: self.created_at,
            storage_key: self.storage_key,
            warnings: self.warnings,
        })
    }
}

/// A consultation's patient and whether `user_id` may see its files (its patient, or a
/// participant who has not declined); `None` when the consultation does not exist.
pub struct AccessRow {
    pub patient_id: String,
    pub patient_name: String,
    pub patient_resident_id: String,
    pub allowed: bool,
}

pub async fn consultation_access(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<Option<AccessRow>> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT c.patient_id, p.name, p.resident_id,
                CASE WHEN p.user_id = $2 OR EXISTS (SELECT 1 FROM consultation_participants cp
                     WHERE cp.consultation_id = c.id AND cp.user_id = $2 AND cp.status <> 'declined')
                THEN 1 ELSE 0 END
         FROM consultations c JOIN patients p ON p.id = c.patient_id WHERE c.id = $1",
    )
    .bind(consultation_id)
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|(patient_id, patient_name, patient_resident_id, allowed)| AccessRow {
        patient_id,
        patient_name,
        patient_resident_id,
        allowed: allowed == 1,
    }))
}

pub async fn file(db: &Db, file_id: &str) -> ApiResult<Option<FileView>> {
    let row: Option<FileRow> = sqlx::query_as(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1"))
        .bind(file_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(FileRow::view).transpose()
}

/// Up to `limit` files of a consultation, newest first, those before the id `before` when given.
pub async fn files_page(db: &Db, consultation_id: &str, before: Option<&str>, limit: i64) -> ApiResult<Vec<FileView>> {
    let mut q = Filtered::new(format!("SELECT {FILE_COLUMNS} FROM files WHERE consultation_id = "));
    q.push_bind(consultation_id);
    if let Some(before) = before {
        q.push(" AND id < ").push_bind(before);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows: Vec<FileRow> = q.build_query_as().fetch_all(&db.pool).await?;
    rows.into_iter().map(FileRow::view).collect()
}

/// A file about to be recorded.
pub struct NewFile<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub uploaded_by: &'a str,
    pub name: &'a str,
    pub kind: FileKind,
    pub ecg_format: Option<&'a str>,
    pub content_type: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
    pub warnings_json: &'a str,
    pub created_at: &'a str,
}

pub async fn insert_file(conn: &mut sqlx::AnyConnection, f: &NewFile<'_>) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO files (id, consultation_id, uploaded_by, name, kind, ecg_format, content_type, size, sha256,
                            storage_key, warnings, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(f.id)
    .bind(f.consultation_id)
    .bind(f.uploaded_by)
    .bind(f.name)
    .bind(f.kind.as_str())
    .bind(f.ecg_format)
    .bind(f.content_type)
    .bind(f.size)
    .bind(f.sha256)
    .bind(f.storage_key)
    .bind(f.warnings_json)
    .bind(f.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- resumable uploads ------------------------------------------------------------------

/// A resumable upload as stored.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: String,
    pub consultation_id: String,
    pub name: String,
    pub length: i64,
    pub upload_offset: i64,
    pub metadata: String,
    pub state: UploadState,
    pub file_id: Option<String>,
    pub expires_at: String,
}

#[derive(sqlx::FromRow)]
struct UploadRow {
    id: String,
    consultation_id: String,
    name: String,
    length: i64,
    upload_offset: i64,
    metadata: String,
    state: String,
    file_id: Option<String>,
    expires_at: String,
}

/// The upload `upload_id` of the consultation made by `created_by`, whatever its state (an
/// upload in progress is its creator's: another participant neither resumes, reads nor ends it).
pub async fn upload(db: &Db, consultation_id: &str, upload_id: &str, created_by: &str) -> ApiResult<Option<Upload>> {
    let row: Option<UploadRow> = sqlx::query_as(
        "SELECT id, consultation_id, name, length, upload_offset, metadata, state, file_id, expires_at
         FROM uploads WHERE id = $1 AND consultation_id = $2 AND created_by = $3",
    )
    .bind(upload_id)
    .bind(consultation_id)
    .bind(created_by)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(Upload {
        state: r.state.parse::<UploadState>()?,
        id: r.id,
        consultation_id: r.consultation_id,
        name: r.name,
        length: r.length,
        upload_offset: r.upload_offset,
        metadata: r.metadata,
        file_id: r.file_id,
        expires_at: r.expires_at,
    }))
}

/// An upload about to be opened at offset 0.
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub consultation_id: &'a str,
    pub created_by: &'a str,
    pub name: &'a str,
    pub length: i64,
    pub metadata: &'a str,
    pub expires_at: &'a str,
    pub now: &'a str,
}

pub async fn insert_upload(conn: &mut sqlx::AnyConnection, u: &NewUpload<'_>) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO uploads (id, consultation_id, created_by, name, length, upload_offset, metadata, state,
                              expires_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $9)",
    )
    .bind(u.id)
    .bind(u.consultation_id)
    .bind(u.created_by)
    .bind(u.name)
    .bind(u.length)
    .bind(u.metadata)
    .bind(UploadState::Open.as_str())
    .bind(u.expires_at)
    .bind(u.now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves an open upload from offset `from` to `to`; false when it is no longer open at `from`
/// (another request moved it).
pub async fn advance_offset(
    conn: &mut sqlx::AnyConnection,
    upload_id: &str,
    from: i64,
    to: i64,
    expires_at: &str,
) -> ApiResult<bool> {
    let updated = sqlx::query(
        "UPDATE uploads SET upload_offset = $1, expires_at = $2, updated_at = $3
         WHERE id = $4 AND upload_offset = $5 AND state = $6",
    )
    .bind(to)
    .bind(expires_at)
    .bind(now_ts())
    .bind(upload_id)
    .bind(from)
    .bind(UploadState::Open.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Moves an open upload to `to`; false when it was not open (another request got there first).
pub async fn leave_open(conn: &mut sqlx::AnyConnection, upload_id: &str, to: UploadState) -> ApiResult<bool> {
    let done = sqlx::query("UPDATE uploads SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
        .bind(to.as_str())
        .bind(now_ts())
        .bind(upload_id)
        .bind(UploadState::Open.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(done == 1)
}

/// Records how a completing upload ended: `Completed` with its file, or `Rejected`.
pub async fn finish_upload(
    conn: &mut sqlx::AnyConnection,
    upload_id: &str,
    state: UploadState,
    file_id: Option<&str>,
) -> ApiResult<()> {
    sqlx::query("UPDATE uploads SET state = $1, file_id = $2, updated_at = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(file_id)
        .bind(now_ts())
        .bind(upload_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Uploads open or completing past their expiry: `(upload, patient)`.
pub async fn expired_uploads(db: &Db) -> ApiResult<Vec<(String, String)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.id, c.patient_id FROM uploads u JOIN consultations c ON c.id = u.consultation_id
         WHERE u.state IN ($1, $2) AND u.expires_at < $3",
    )
    .bind(UploadState::Open.as_str())
    .bind(UploadState::Completing.as_str())
    .bind(now_ts())
    .fetch_all(&db.pool)
    .await?;
    Ok(rows)
}

/// Marks an upload still open or completing as expired; false when it moved on meanwhile.
pub async fn expire_upload(conn: &mut sqlx::AnyConnection, upload_id: &str) -> ApiResult<bool> {
    let done = sqlx::query("UPDATE uploads SET state = $1, updated_at = $2 WHERE id = $3 AND state IN ($4, $5)")
        .bind(UploadState::Expired.as_str())
        .bind(now_ts())
        .bind(upload_id)
        .bind(UploadState::Open.as_str())
        .bind(UploadState::Completing.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(done == 1)
}
