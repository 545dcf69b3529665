//! All SQL of the DICOM index (`dicom_instances`): instances recorded with their file when it
//! is uploaded, and read back for DICOMweb search and retrieval.

use super::qido::Instance;
use super::DicomInfo;
use crate::db::filter::Filtered;
use crate::db::Db;
use crate::error::ApiResult;
use std::collections::HashMap;

/// Records an instance in the consultation's DICOM index (inside the upload's transaction).
pub async fn index_instance(
    conn: &mut sqlx::AnyConnection,
    file_id: &str,
    consultation_id: &str,
    info: &DicomInfo,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO dicom_instances (file_id, consultation_id, study_uid, series_uid, sop_instance_uid, sop_class_uid,
            transfer_syntax, modality, body_part, study_date, study_time, study_description, series_description,
            series_number, instance_number, accession_number, study_id, patient_name, patient_id, patient_birth_date,
            patient_sex, rows_count, columns_count, frames, metadata_json, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                 $23, $24, $25, $26)",
    )
    .bind(file_id)
    .bind(consultation_id)
    .bind(&info.study_uid)
    .bind(&info.series_uid)
    .bind(&info.sop_instance_uid)
    .bind(&info.sop_class_uid)
    .bind(&info.transfer_syntax)
    .bind(&info.modality)
    .bind(&info.body_part)
    .bind(&info.study_date)
    .bind(&info.study_time)
    .bind(&info.study_description)
    .bind(&info.series_description)
    .bind(info.series_number)
    .bind(info.instance_number)
    .bind(&info.accession_number)
    .bind(&info.study_id)
    .bind(&info.patient_name)
    .bind(&info.patient_id)
    .bind(&info.patient_birth_date)
    .bind(&info.patient_sex)
    .bind(info.rows)
    .bind(info.columns)
    .bind(info.frames)
    .bind(info.metadata.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The file an instance of the consultation was first indexed from, if any.
pub async fn instance_file(
    conn: &mut sqlx::AnyConnection,
    consultation_id: &str,
    sop_instance_uid: &str,
) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT file_id FROM dicom_instances WHERE consultation_id = $1 AND sop_instance_uid = $2")
            .bind(consultation_id)
            .bind(sop_instance_uid)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id,)| id))
}

/// Narrows a query of `dicom_instances` (aliased `prefix`) to a study, series and instance
/// when given.
fn within<'a>(
    q: &mut Filtered<'a>,
    prefix: &str,
    study: Option<&'a str>,
    series: Option<&'a str>,
    instance: Option<&'a str>,
) {
    for (column, value) in [("study_uid", study), ("series_uid", series), ("sop_instance_uid", instance)] {
        if let Some(v) = value {
            q.push(" AND ").push(prefix).push(column).push(" = ").push_bind(v);
        }
    }
}

/// The consultation's instances, optionally of one study, series or instance, in series and
/// instance order.
pub async fn instances(
    db: &Db,
    consultation_id: &str,
    study: Option<&str>,
    series: Option<&str>,
    instance: Option<&str>,
) -> ApiResult<Vec<Instance>> {
    let mut q = Filtered::new(
        "SELECT d.file_id, f.storage_key, f.size, d.study_uid, d.series_uid, d.sop_instance_uid, d.sop_class_uid,
                d.transfer_syntax, d.modality, d.body_part, d.study_date, d.study_time, d.study_description,
                d.series_description, d.series_number, d.instance_number, d.accession_number, d.study_id,
                d.patient_name, d.patient_id, d.patient_birth_date, d.patient_sex, d.rows_count, d.columns_count,
                d.frames
         FROM dicom_instances d JOIN files f ON f.id = d.file_id
         WHERE d.consultation_id = ",
    );
    q.push_bind(consultation_id);
    within(&mut q, "d.", study, series, instance);
    q.push(" ORDER BY d.study_uid, d.series_number, d.series_uid, d.instance_number, d.sop_instance_uid");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// The stored JSON models of some instances of a consultation, by file id (a model that is
/// not JSON is left out).
pub async fn models(
    db: &Db,
    consultation_id: &str,
    file_ids: &[&str],
) -> ApiResult<HashMap<String, serde_json::Value>> {
    let mut out = HashMap::new();
    for chunk in file_ids.chunks(200) {
        let mut q = Filtered::new("SELECT file_id, metadata_json FROM dicom_instances WHERE consultation_id = ");
        q.push_bind(consultation_id).push(" AND file_id IN (");
        for (n, id) in chunk.iter().enumerate() {
            if n > 0 {
                q.push(", ");
            }
            q.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&db.pool).await?;
        for (id, json) in rows {
            if let Ok(v) = serde_json::from_str(&json) {
                out.insert(id, v);
            }
        }
    }
    Ok(out)
}

/// An instance's place and its stored JSON model, for WADO-RS metadata.
#[derive(sqlx::FromRow)]
pub struct Model {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub metadata_json: String,
}

/// The stored models of a study's instances, of one series or instance when given.
pub async fn study_models(
    db: &Db,
    consultation_id: &str,
    study: &str,
    series: Option<&str>,
    instance: Option<&str>,
) -> ApiResult<Vec<Model>> {
    let mut q = Filtered::new(
        "SELECT study_uid, series_uid, sop_instance_uid, metadata_json FROM dicom_instances WHERE consultation_id = ",
    );
    q.push_bind(consultation_id);
    within(&mut q, "", Some(study), series, instance);
    q.push(" ORDER BY series_number, series_uid, instance_number, sop_instance_uid");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}
