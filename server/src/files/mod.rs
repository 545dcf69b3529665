//! Shared files of a consultation: ECGs, DICOM studies, photos and documents.
//!
//! This module owns getting bytes in and out safely. Uploads arrive as one request
//! ([`routes`]: `POST /api/v1/consultations/{id}/files`) or resumably over the tus 1.0
//! protocol ([`tus`]); either way the body is streamed to [`storage`] (a local directory or
//! S3-compatible object storage) with its SHA-256 computed on the way in, then classified by
//! content ([`classify`]) and only then recorded, so a refused or interrupted upload leaves
//! nothing visible. DICOM files are indexed into studies and series ([`crate::dicom::store`])
//! for DICOMweb ([`dicomweb`]), and ECGs get their computer-assisted pre-read
//! ([`ecg_review`]). Downloads stream with `Range`. All SQL is in [`store`].
//!
//! Access: the files of a consultation are for its participants (requester, invited and
//! accepted experts; not those who declined) and its patient; anyone else is answered 404.
//! Every list, read and write records an audit event naming the consultation's patient.

pub mod classify;
pub mod dicomweb;
pub mod ecg_review;
pub mod routes;
pub mod storage;
pub mod store;
pub mod tus;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{new_id, now_ts, Db};
use crate::dicom::DicomInfo;
use crate::domain::files::FileKind;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use classify::Kind;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use storage::Storage;

pub use routes::routes;

/// Largest DICOM file whose attributes are read for indexing; the attributes precede the
/// pixel data, so only this much of a larger file is read.
const DICOM_HEAD_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `.zip` read whole to see whether it holds a WFDB record.
const ZIP_CLASSIFY_BYTES: u64 = 64 * 1024 * 1024;

/// File storage and the upload limits, shared by all requests.
pub struct Files {
    pub storage: Storage,
    pub max_upload_bytes: u64,
    /// Bytes kept free on the local storage's disk (`files_reserve_bytes`).
    pub reserve_bytes: u64,
    pub upload_expiry: Duration,
    /// Running SHA-256 of resumable uploads by id, with the offset it has seen up to. Lost
    /// on restart (or on another instance): completion then hashes the stored parts.
    hashers: Mutex<HashMap<String, (u64, Sha256)>>,
}

impl Files {
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Files> {
        Ok(Files {
            storage: Storage::from_config(config)?,
            max_upload_bytes: config.files_max_upload_bytes,
            reserve_bytes: config.files_reserve_bytes,
            upload_expiry: Duration::from_secs(config.files_upload_expiry_secs.max(1)),
            hashers: Mutex::new(HashMap::new()),
        })
    }

    /// Refuses, with 507 `insufficient_storage`, an upload of `length` bytes that would not
    /// leave `reserve_bytes` free on the storage's disk.
    pub fn check_room(&self, length: u64) -> ApiResult<()> {
        if fits(length, self.storage.free_bytes(), self.reserve_bytes) {
            Ok(())
        } else {
            Err(ApiError::insufficient_storage(format!("an upload of {length} bytes does not fit on the file storage")))
        }
    }

    fn take_hasher(&self, upload: &str, offset: u64) -> Option<Sha256> {
        let mut map = self.hashers.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(upload) {
            Some((at, h)) if at == offset => Some(h),
            _ => None,
        }
    }

    fn put_hasher(&self, upload: &str, offset: u64, hasher: Sha256) {
        self.hashers.lock().unwrap_or_else(|p| p.into_inner()).insert(upload.to_string(), (offset, hasher));
    }

    fn forget_hasher(&self, upload: &str) {
        self.hashers.lock().unwrap_or_else(|p| p.into_inner()).remove(upload);
    }
}

/// The consultation a request is about, once the caller's access is established.
#[derive(Debug, Clone)]
pub struct ConsultationAccess {
    pub consultation_id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub patient_resident_id: String,
}

/// The caller's access to a consultation's files: participants (not those who declined) and
/// the patient; anyone else, and a consultation that does not exist, is 404.
pub async fn access(db: &Db, user: &AuthUser, consultation_id: &str) -> ApiResult<ConsultationAccess> {
    match store::consultation_access(db, consultation_id, &user.id).await? {
        Some(row) if row.allowed => Ok(ConsultationAccess {
            consultation_id: consultation_id.to_string(),
            patient_id: row.patient_id,
            patient_name: row.patient_name,
            patient_resident_id: row.patient_resident_id,
        }),
        Some(row) => {
            crate::audit::event(user, "read", "consultation_files", consultation_id)
                .patient(row.patient_id)
                .outcome(crate::audit::Outcome::Denied)
                .record(db)
                .await?;
            Err(ApiError::not_found("consultation"))
        }
        None => Err(ApiError::not_found("consultation")),
    }
}

/// [`access`] to add to a consultation's files (an upload, a resumable upload, a DICOM
/// store): an expert of the consultation once they have accepted it.
pub async fn access_to_add(db: &Db, user: &AuthUser, consultation_id: &str) -> ApiResult<ConsultationAccess> {
    let consultation = access(db, user, consultation_id).await?;
    crate::consultations::store::require_answered(db, consultation_id, user, "upload").await?;
    Ok(consultation)
}

/// A stored file as listed and returned after an upload.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FileView {
    pub id: String,
    pub consultation_id: String,
    pub name: String,
    #[schemars(with = "String")]
    pub kind: FileKind,
    pub ecg_format: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub created_at: String,
    #[serde(skip)]
    pub storage_key: String,
    #[serde(serialize_with = "warnings_as_list")]
    #[schemars(with = "Vec<String>")]
    pub warnings: String,
}

fn warnings_as_list<S: serde::Serializer>(raw: &str, s: S) -> Result<S::Ok, S::Error> {
    let list: Vec<String> = serde_json::from_str(raw).unwrap_or_default();
    list.serialize(s)
}

/// Bytes already written to storage under `key`, with their digest and leading bytes.
pub struct Stored {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub head: Vec<u8>,
}

/// Hashes the body while it is written: the running digest and the first
/// [`classify::HEAD_BYTES`] bytes for classification.
pub struct Intake {
    pub hasher: Sha256,
    pub head: Vec<u8>,
}

impl Intake {
    pub fn new() -> Intake {
        Intake { hasher: Sha256::new(), head: Vec::new() }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        if self.head.len() < classify::HEAD_BYTES {
            let take = (classify::HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
    }
}

impl Default for Intake {
    fn default() -> Self {
        Intake::new()
    }
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Problem for a file whose content is none of the accepted kinds.
pub fn unsupported_kind() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedFileType,
        "Unsupported file type",
        "the content is not one of the accepted kinds: DICOM, PDF, JPEG, PNG, or an ECG \
         (DICOM waveform, HL7 aECG XML, WFDB record, the documented CSV layout)",
    )
}

/// Whether `length` bytes fit in `free` bytes (unknown: they do) while `reserve` stays free.
pub fn fits(length: u64, free: Option<u64>, reserve: u64) -> bool {
    free.is_none_or(|free| length <= free.saturating_sub(reserve))
}

/// A file storage failure: 507 `insufficient_storage` when the disk is full, else 500.
pub fn storage_error(e: std::io::Error) -> ApiError {
    ApiError::from_io("file storage", e)
}

/// Classifies stored bytes and records them as a file of the consultation, with its DICOM
/// index entry. On refusal the stored object is removed and nothing is recorded.
pub async fn ingest(
    db: &Db,
    files: &Files,
    user: &AuthUser,
    consultation: &ConsultationAccess,
    file_id: &str,
    name: &str,
    stored: Stored,
) -> ApiResult<FileView> {
    let result = ingest_inner(db, &files.storage, user, consultation, (file_id, name), &stored).await;
    if result.is_err() {
        let _ = files.storage.delete(&stored.key).await;
    }
    result
}

async fn ingest_inner(
    db: &Db,
    storage: &Storage,
    user: &AuthUser,
    consultation: &ConsultationAccess,
    (file_id, name): (&str, &str),
    stored: &Stored,
) -> ApiResult<FileView> {
    let mut kind = classify_stored(storage, name, stored).await?;
    let mut warnings: Vec<String> = Vec::new();
    let dicom = match kind {
        Kind::Dicom => Some(read_dicom(storage, stored, consultation, &mut kind, &mut warnings).await?),
        _ => None,
    };
    let ecg_pre_read = match kind {
        Kind::Ecg(_) => {
            let bytes = storage.read_head(&stored.key, crate::ecg::http::MAX_ECG_BYTES).await.map_err(storage_error)?;
            Some(crate::ecg::http::pre_read(name, bytes).await?)
        }
        _ => None,
    };
    let now = now_ts();
    let content_type = kind.content_type(&stored.head);
    let mut tx = db.begin_write().await?;
    let first_copy = match &dicom {
        Some(info) => note_duplicate(&mut tx, consultation, info, &mut warnings).await?,
        None => false,
    };
    let warnings_json = serde_json::to_string(&warnings).unwrap_or_else(|_| "[]".into());
    let file = store::NewFile {
        id: file_id,
        consultation_id: &consultation.consultation_id,
        uploaded_by: &user.id,
        name,
        kind: kind.file_kind(),
        ecg_format: kind.ecg_format(),
        content_type,
        size: stored.size as i64,
        sha256: &stored.sha256,
        storage_key: &stored.key,
        warnings_json: &warnings_json,
        created_at: &now,
    };
    store::insert_file(&mut tx, &file).await?;
    if let Some(info) = dicom.as_ref().filter(|_| first_copy) {
        crate::dicom::store::index_instance(&mut tx, file_id, &consultation.consultation_id, info, &now).await?;
    }
    if let Some(m) = &ecg_pre_read {
        crate::ecg::store::insert_measurements(&mut tx, file_id, m).await?;
    }
    crate::audit::event(user, "create", "file", file_id)
        .patient(&consultation.patient_id)
        .detail(format!("{} {} bytes sha256 {}", kind.as_str(), stored.size, stored.sha256))
        .record_with(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(FileView {
        id: file_id.to_string(),
        consultation_id: consultation.consultation_id.clone(),
        name: name.to_string(),
        kind: kind.file_kind(),
        ecg_format: kind.ecg_format().map(str::to_string),
        content_type: content_type.to_string(),
        size: stored.size as i64,
        sha256: stored.sha256.clone(),
        uploaded_by: user.id.clone(),
        created_at: now,
        storage_key: stored.key.clone(),
        warnings: warnings_json,
    })
}

/// The kind of the stored bytes, reading a `.zip` whole to look for a WFDB record.
async fn classify_stored(storage: &Storage, name: &str, stored: &Stored) -> ApiResult<Kind> {
    let mut kind = classify::classify(name, &stored.head);
    if kind.is_none() && classify::is_zip(&stored.head) && stored.size <= ZIP_CLASSIFY_BYTES {
        let whole = storage.read_head(&stored.key, ZIP_CLASSIFY_BYTES).await.map_err(storage_error)?;
        kind = classify::classify(name, &whole);
    }
    kind.ok_or_else(unsupported_kind)
}

/// Reads a DICOM file's attributes: a waveform becomes an ECG, and a patient other than the
/// consultation's is warned about.
async fn read_dicom(
    storage: &Storage,
    stored: &Stored,
    consultation: &ConsultationAccess,
    kind: &mut Kind,
    warnings: &mut Vec<String>,
) -> ApiResult<DicomInfo> {
    let bytes = if stored.head.len() as u64 == stored.size {
        stored.head.clone()
    } else {
        storage.read_head(&stored.key, DICOM_HEAD_BYTES).await.map_err(storage_error)?
    };
    let info = crate::dicom::parse_info(&bytes)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidDicom, e.to_string()))?;
    if info.is_waveform() {
        *kind = Kind::Ecg(crate::ecg::EcgFormat::DicomWaveform);
    }
    let ids = [consultation.patient_id.as_str(), consultation.patient_resident_id.as_str()];
    if !crate::dicom::patient_matches(&info.patient_name, &info.patient_id, &consultation.patient_name, &ids) {
        warnings.push(format!(
            "the DICOM patient ({} , ID {}) does not match the consultation's patient",
            if info.patient_name.is_empty() { "no name" } else { &info.patient_name },
            if info.patient_id.is_empty() { "none" } else { &info.patient_id },
        ));
    }
    Ok(info)
}

/// Whether this is the first copy of the instance in the consultation (DICOMweb serves the
/// first); a later copy is kept as a file with a warning.
async fn note_duplicate(
    conn: &mut sqlx::AnyConnection,
    consultation: &ConsultationAccess,
    info: &DicomInfo,
    warnings: &mut Vec<String>,
) -> ApiResult<bool> {
    let earlier =
        crate::dicom::store::instance_file(conn, &consultation.consultation_id, &info.sop_instance_uid).await?;
    if earlier.is_some() {
        warnings
            .push(format!("instance {} was uploaded before; DICOMweb serves the first copy", info.sop_instance_uid));
    }
    Ok(earlier.is_none())
}

/// A file the caller may read, with the consultation's patient for the audit event.
pub async fn readable_file(db: &Db, user: &AuthUser, file_id: &str) -> ApiResult<(FileView, ConsultationAccess)> {
    let file = store::file(db, file_id).await?.ok_or_else(|| ApiError::not_found("file"))?;
    let access = access(db, user, &file.consultation_id).await.map_err(|e| {
        if e.status == axum::http::StatusCode::NOT_FOUND {
            ApiError::not_found("file")
        } else {
            e
        }
    })?;
    Ok((file, access))
}

/// Removes expired resumable uploads and their stored parts, and stale temporary files.
/// Runs every minute (or every `expiry / 4` when that is shorter) until the process ends.
pub fn spawn_sweeper(state: AppState) {
    let period = (state.files.upload_expiry / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = tus::sweep_expired(&state.db, &state.files).await {
                tracing::warn!(error = %e, "sweeping expired uploads failed");
            }
            let _ = state.files.storage.sweep_temporary(state.files.upload_expiry).await;
        }
    });
}

/// Request headers a browser on another allowed origin may send: the API's own plus those
/// of tus clients, Range requests and DICOMweb viewers.
pub fn cors_allow_headers() -> Vec<axum::http::HeaderName> {
    use axum::http::{header, HeaderName};
    let mut names = vec![header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT, header::RANGE];
    for tus in
        ["tus-resumable", "upload-length", "upload-offset", "upload-metadata", "upload-checksum", "upload-defer-length"]
    {
        names.push(HeaderName::from_static(tus));
    }
    names
}

/// Response headers such a browser may read: where a tus upload lives and how far it got.
pub fn cors_expose_headers() -> Vec<axum::http::HeaderName> {
    use axum::http::{header, HeaderName};
    let mut names = vec![header::LOCATION, header::CONTENT_RANGE, header::CONTENT_DISPOSITION, header::ETAG];
    for tus in [
        "tus-resumable",
        "tus-version",
        "tus-extension",
        "tus-max-size",
        "tus-checksum-algorithm",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "upload-expires",
        "teleconsult-file-id",
    ] {
        names.push(HeaderName::from_static(tus));
    }
    names
}

/// A fresh file id and its storage key.
pub fn new_file_key() -> (String, String) {
    let id = new_id();
    let key = format!("files/{id}");
    (id, key)
}

#[cfg(test)]
mod tests {
    use super::fits;

    #[test]
    fn an_upload_fits_in_the_free_space_less_the_reserve() {
        assert!(fits(100, Some(1000), 900));
        assert!(!fits(101, Some(1000), 900));
        assert!(!fits(1, Some(10), 64));
        assert!(fits(u64::MAX, None, 64), "object storage has no free-space figure");
    }
}
