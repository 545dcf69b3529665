//! Storage side of kiosk check-ins: the consultation booked today at the kiosk's site, the
//! check-ins themselves, and telling the doctors on duty. Patients are found through
//! [`crate::patients::store`], the doctors through [`crate::directory::store`].

use crate::db::{new_id, Db};
use crate::error::ApiResult;

/// A consultation booked for today.
#[derive(sqlx::FromRow)]
pub struct Booked {
    pub id: String,
    pub urgency: String,
    pub start_at: String,
    pub expert_name: Option<String>,
}

/// The patient's first consultation requested at `org` and booked (still to be held or
/// under way) between `from` and `to`.
pub async fn booked_between(db: &Db, patient_id: &str, org: &str, from: &str, to: &str) -> ApiResult<Option<Booked>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.urgency, a.start_at, u.display_name AS expert_name
           FROM consultations c JOIN appointments a ON a.consultation_id = c.id LEFT JOIN users u ON u.id = a.expert_id
          WHERE c.patient_id = $1 AND c.requesting_organisation_id = $2 AND c.state IN ('scheduled', 'in_progress')
            AND a.status = 'booked' AND a.start_at >= $3 AND a.start_at < $4
          ORDER BY a.start_at LIMIT 1",
    )
    .bind(patient_id)
    .bind(org)
    .bind(from)
    .bind(to)
    .fetch_optional(&db.pool)
    .await?)
}

/// Records a check-in within the caller's audited transaction; answers its id.
pub async fn insert_checkin(
    conn: &mut sqlx::AnyConnection,
    device_id: &str,
    patient_id: &str,
    consultation_id: Option<&str>,
    method: &str,
    at: &str,
) -> ApiResult<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO kiosk_checkins (id, device_id, patient_id, consultation_id, method, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(device_id)
    .bind(patient_id)
    .bind(consultation_id)
    .bind(method)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// A check-in of this kiosk, with its patient's name.
#[derive(sqlx::FromRow)]
pub struct CheckinRow {
    pub patient_id: String,
    pub consultation_id: Option<String>,
    pub created_at: String,
    pub duty_notified_at: Option<String>,
    pub name: String,
}

pub async fn checkin(db: &Db, id: &str, device_id: &str) -> ApiResult<Option<CheckinRow>> {
    Ok(sqlx::query_as(
        "SELECT k.patient_id, k.consultation_id, k.created_at, k.duty_notified_at, p.name
           FROM kiosk_checkins k JOIN patients p ON p.id = k.patient_id WHERE k.id = $1 AND k.device_id = $2",
    )
    .bind(id)
    .bind(device_id)
    .fetch_optional(&db.pool)
    .await?)
}

/// Marks the check-in's doctors as told, within the caller's audited transaction.
pub async fn mark_duty_notified(conn: &mut sqlx::AnyConnection, id: &str, at: &str) -> ApiResult<()> {
    sqlx::query("UPDATE kiosk_checkins SET duty_notified_at = $1 WHERE id = $2 AND duty_notified_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
