//! Storage side of the FHIR facade: the few statements it needs beyond the platform's own
//! stores (which consultation a resource belongs to, a consultation's ECG analyses and DICOM
//! instances, practitioner and organisation searches, booked slots, the consultations a
//! search covers). Searches narrow with bound values only when a parameter is given.

use super::map::DicomInstance;
use crate::auth::AuthUser;
use crate::db::filter::Filtered;
use crate::db::Db;
use crate::error::ApiResult;
use sqlx::AnyConnection;

/// The consultation a consultation-scoped resource belongs to (`None`: no such resource, or
/// a type that is not consultation-scoped).
pub async fn consultation_of(db: &Db, kind: &str, id: &str) -> ApiResult<Option<String>> {
    let (sql, key) = match kind {
        "ServiceRequest" => match id.strip_prefix("referral-") {
            Some(r) => ("SELECT consultation_id FROM referrals WHERE id = $1", r),
            None => ("SELECT id FROM consultations WHERE id = $1", id),
        },
        "Consent" | "Encounter" => ("SELECT id FROM consultations WHERE id = $1", id),
        "Task" => ("SELECT consultation_id FROM referrals WHERE id = $1", id),
        "Appointment" => ("SELECT consultation_id FROM appointments WHERE id = $1", id),
        "Communication" => ("SELECT consultation_id FROM consultation_messages WHERE id = $1", id),
        "DocumentReference" | "ImagingStudy" => ("SELECT consultation_id FROM files WHERE id = $1", id),
        // An ECG measurement's id is its file's id and the measurement's suffix.
        "Observation" => {
            ("SELECT consultation_id FROM files WHERE id = $1", id.rsplit_once('-').map_or(id, |(f, _)| f))
        }
        "DiagnosticReport" => ("SELECT consultation_id FROM opinions WHERE id = $1", id),
        "CarePlan" => (
            "SELECT COALESCE(p.consultation_id, r.consultation_id) FROM follow_up_plans p
             LEFT JOIN referrals r ON r.id = p.referral_id WHERE p.id = $1",
            id,
        ),
        _ => return Ok(None),
    };
    let row: Option<(Option<String>,)> = sqlx::query_as(sql).bind(key).fetch_optional(&db.pool).await?;
    Ok(row.and_then(|r| r.0))
}

/// A consultation's ECG analyses: file id, the file's time, and the measurements as JSON.
pub async fn ecg_analyses(db: &Db, consultation_id: &str) -> ApiResult<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT a.file_id, f.created_at, a.measurements FROM ecg_analyses a JOIN files f ON f.id = a.file_id
         WHERE f.consultation_id = $1 ORDER BY f.created_at, f.id",
    )
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

pub async fn dicom_instances(db: &Db, consultation_id: &str) -> ApiResult<Vec<DicomInstance>> {
    Ok(sqlx::query_as(
        "SELECT file_id, study_uid, series_uid, sop_instance_uid, sop_class_uid, modality, body_part, study_date,
                study_description, series_description, series_number, instance_number
         FROM dicom_instances WHERE consultation_id = $1 ORDER BY study_uid, series_number, series_uid, instance_number, file_id",
    )
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

/// Staff accounts (not patients), by id: those whose display name starts with
/// `name_prefix`, the one with `id`, only experts, only clinicians (community doctors and
/// experts); each when given.
pub async fn staff_ids(
    db: &Db,
    name_prefix: &str,
    id: Option<&str>,
    experts_only: bool,
    clinicians_only: bool,
) -> ApiResult<Vec<String>> {
    let mut q = Filtered::new("SELECT id FROM users WHERE role <> 'patient'");
    if clinicians_only {
        q.push(" AND role IN ('community_doctor', 'expert')");
    }
    if !name_prefix.is_empty() {
        q.push(" AND display_name LIKE ").push_bind(format!("{name_prefix}%"));
    }
    if let Some(id) = id.filter(|i| !i.is_empty()) {
        q.push(" AND id = ").push_bind(id.to_string());
    }
    if experts_only {
        q.push(" AND role = 'expert'");
    }
    q.push(" ORDER BY id");
    let rows: Vec<(String,)> = q.build_query_as().fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Organisations whose name starts with `name_prefix` and with `id`, each when given.
pub async fn organisations(db: &Db, name_prefix: &str, id: &str) -> ApiResult<Vec<crate::directory::Organisation>> {
    let mut q = Filtered::new("SELECT id, name, kind, address, active, created_at FROM organisations");
    if !name_prefix.is_empty() {
        q.condition().push("name LIKE ").push_bind(format!("{name_prefix}%"));
    }
    if !id.is_empty() {
        q.condition().push("id = ").push_bind(id.to_string());
    }
    q.push(" ORDER BY id");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// Start and end of the expert's booked appointments starting in `[from, to)`.
pub async fn booked(conn: &mut AnyConnection, expert: &str, from: &str, to: &str) -> ApiResult<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT start_at, end_at FROM appointments WHERE expert_id = $1 AND status = 'booked' AND start_at >= $2 AND start_at < $3",
    )
    .bind(expert)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?)
}

/// Ids of the consultations the caller sees, of one patient and with an appointment of one
/// practitioner when given, oldest first, at most `limit`.
pub async fn visible_consultations(
    db: &Db,
    user: &AuthUser,
    patient: Option<&str>,
    practitioner: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<String>> {
    let mut q = Filtered::new("SELECT c.id FROM consultations c");
    crate::consultations::store::visible(&mut q, user);
    if let Some(p) = patient.filter(|p| !p.is_empty()) {
        q.condition().push("c.patient_id = ").push_bind(p.to_string());
    }
    if let Some(e) = practitioner.filter(|e| !e.is_empty()) {
        q.condition()
            .push("c.id IN (SELECT consultation_id FROM appointments WHERE expert_id = ")
            .push_bind(e.to_string())
            .push(")");
    }
    q.push(" ORDER BY c.created_at, c.id LIMIT ").push_bind(limit);
    let rows: Vec<(String,)> = q.build_query_as().fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
