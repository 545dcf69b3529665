//! Storage side of the clinical record: every statement on notes, opinions, referrals,
//! follow-up plans and visits, the record's timeline, chat and files, and the coordinators'
//! figures. Reads take the [`Db`]; writes take the connection of the caller's write
//! transaction (an [`crate::audit::AuditedTx`] or a [`crate::db::WriteTx`]), so that the row
//! and its audit event commit together, in this process's writer turn on SQLite.

use super::export::{ChatLine, FileEntry, TimelineEvent};
use super::followup::Visit;
use super::notes::Note;
use super::opinions::{Opinion, OpinionContent};
use super::referrals::{Referral, ReferralEvent};
use crate::auth::{AuthUser, Role};
use crate::db::filter::Filtered;
use crate::db::{new_id, Db};
use crate::domain::record::{Direction, NoteKind, NoteStatus, OpinionKind, ReferralStatus, VisitStatus};
use crate::error::ApiResult;
use sqlx::AnyConnection;

// ---------------------------------------------------------------------------------------
// Referrals

const REFERRAL_SELECT: &str = "SELECT r.id, r.consultation_id, r.patient_id, p.name AS patient_name, r.direction, r.from_organisation_id,
    f.name AS from_organisation_name, r.to_organisation_id, t.name AS to_organisation_name, r.to_department_id, r.created_by, r.reason,
    r.urgency, r.care_plan, r.status, r.appointment_at, r.assigned_to, r.created_at, r.updated_at
    FROM referrals r JOIN patients p ON p.id = r.patient_id JOIN organisations f ON f.id = r.from_organisation_id
    JOIN organisations t ON t.id = r.to_organisation_id";

/// The kind of an organisation (`tertiary_hospital`, `community_health_centre`, …).
pub async fn org_kind(db: &Db, id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT kind FROM organisations WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    Ok(row.map(|r| r.0))
}

/// The first consortium hospital a centre is linked to.
pub async fn consortium_hospital(db: &Db, centre: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT hospital_id FROM consortium_links WHERE centre_id = $1 ORDER BY hospital_id LIMIT 1")
            .bind(centre)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// A new referral, as written (status `requested`).
pub struct NewReferralRow<'a> {
    pub id: &'a str,
    pub consultation_id: Option<&'a str>,
    pub patient_id: &'a str,
    pub direction: Direction,
    pub from_organisation_id: &'a str,
    pub to_organisation_id: &'a str,
    pub to_department_id: Option<&'a str>,
    pub created_by: &'a str,
    pub reason: &'a str,
    pub urgency: &'a str,
    pub care_plan: &'a str,
    pub now: &'a str,
}

/// Inserts the referral and its first history event.
pub async fn insert_referral(conn: &mut AnyConnection, r: &NewReferralRow<'_>) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO referrals (id, consultation_id, patient_id, direction, from_organisation_id, to_organisation_id, to_department_id, created_by,
            reason, urgency, care_plan, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
    )
    .bind(r.id)
    .bind(r.consultation_id)
    .bind(r.patient_id)
    .bind(r.direction.as_str())
    .bind(r.from_organisation_id)
    .bind(r.to_organisation_id)
    .bind(r.to_department_id)
    .bind(r.created_by)
    .bind(r.reason)
    .bind(r.urgency)
    .bind(r.care_plan)
    .bind(ReferralStatus::Requested.as_str())
    .bind(r.now)
    .execute(&mut *conn)
    .await?;
    insert_referral_event(conn, r.id, "", ReferralStatus::Requested.as_str(), r.created_by, r.reason, r.now).await
}

/// Appends one line to a referral's history (`from` is empty for its creation).
pub async fn insert_referral_event(
    conn: &mut AnyConnection,
    referral_id: &str,
    from: &str,
    to: &str,
    actor_id: &str,
    reason: &str,
    at: &str,
) -> ApiResult<()> {
    sqlx::query("INSERT INTO referral_events (id, referral_id, from_status, to_status, actor_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(new_id())
        .bind(referral_id)
        .bind(from)
        .bind(to)
        .bind(actor_id)
        .bind(reason)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The active coordinators and community doctors of an organisation: who receives its
/// referrals.
pub async fn referral_receivers(conn: &mut AnyConnection, org: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE organisation_id = $1 AND active = 1 AND role IN ('coordinator', 'community_doctor') ORDER BY id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn referral(db: &Db, id: &str) -> ApiResult<Option<Referral>> {
    Ok(sqlx::query_as(&format!("{REFERRAL_SELECT} WHERE r.id = $1")).bind(id).fetch_optional(&db.pool).await?)
}

pub async fn referrals_of_consultation(db: &Db, consultation_id: &str) -> ApiResult<Vec<Referral>> {
    Ok(sqlx::query_as(&format!("{REFERRAL_SELECT} WHERE r.consultation_id = $1 ORDER BY r.created_at"))
        .bind(consultation_id)
        .fetch_all(&db.pool)
        .await?)
}

/// The patient's own account, if they have one.
pub async fn patient_user(db: &Db, patient_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT user_id FROM patients WHERE id = $1").bind(patient_id).fetch_optional(&db.pool).await?;
    Ok(row.and_then(|r| r.0))
}

pub async fn referral_history(db: &Db, id: &str) -> ApiResult<Vec<ReferralEvent>> {
    Ok(sqlx::query_as(
        "SELECT from_status, to_status, actor_id, reason, at FROM referral_events WHERE referral_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?)
}

/// Which referrals of the caller's a listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sent,
    Received,
    Both,
}

/// Referrals the caller sees (the same rule as `referrals::may_see`, by side), newest first,
/// at most 500; `direction` and `status` narrow when given (an unknown value matches none).
pub async fn list_referrals(
    db: &Db,
    user: &AuthUser,
    side: Side,
    direction: Option<&str>,
    status: Option<&str>,
) -> ApiResult<Vec<Referral>> {
    let mut q = Filtered::new(REFERRAL_SELECT);
    let id = || user.id.clone();
    let org = || user.org.clone();
    q.condition();
    match (user.role, side) {
        // An admin takes part in no care: no referral.
        (Role::Admin, _) => q.push("1 = 0"),
        (Role::Patient, _) => q.push("p.user_id = ").push_bind(id()),
        // The desks of both sides.
        (Role::Coordinator | Role::CommunityDoctor, Side::Sent) => {
            q.push("(r.from_organisation_id = ").push_bind(org()).push(" OR r.created_by = ").push_bind(id()).push(")")
        }
        (Role::Coordinator | Role::CommunityDoctor, Side::Received) => {
            q.push("(r.to_organisation_id = ").push_bind(org()).push(" OR r.assigned_to = ").push_bind(id()).push(")")
        }
        (Role::Coordinator | Role::CommunityDoctor, Side::Both) => q
            .push("(r.from_organisation_id = ")
            .push_bind(org())
            .push(" OR r.to_organisation_id = ")
            .push_bind(org())
            .push(" OR r.created_by = ")
            .push_bind(id())
            .push(" OR r.assigned_to = ")
            .push_bind(id())
            .push(")"),
        (Role::Expert, Side::Sent) => q.push("r.created_by = ").push_bind(id()),
        (Role::Expert, Side::Received) => q.push("r.assigned_to = ").push_bind(id()),
        (Role::Expert, Side::Both) => {
            q.push("(r.created_by = ").push_bind(id()).push(" OR r.assigned_to = ").push_bind(id()).push(")")
        }
    };
    if let Some(d) = direction.filter(|d| !d.is_empty()) {
        q.condition().push("r.direction = ").push_bind(d.to_string());
    }
    if let Some(s) = status.filter(|s| !s.is_empty()) {
        q.condition().push("r.status = ").push_bind(s.to_string());
    }
    q.push(" ORDER BY r.created_at DESC LIMIT 500");
    // Planned with its values: the generic plan of the kept statement reads every referral
    // (107 ms at 300,000 for an expert's list, 0.5 ms planned with its values).
    Ok(q.build_query_as().persistent(false).fetch_all(&db.pool).await?)
}

/// Moves a referral from `from` to `to` (and sets the appointment offered, if any); `false`
/// when it was no longer in `from`.
pub async fn move_referral(
    conn: &mut AnyConnection,
    id: &str,
    from: ReferralStatus,
    to: ReferralStatus,
    appointment_at: Option<String>,
    now: &str,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE referrals SET status = $1, appointment_at = COALESCE($2, appointment_at), updated_at = $3 WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(appointment_at)
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// `user_id` if it is an active clinician (expert or community doctor) of `org`.
pub async fn clinician_of(db: &Db, user_id: &str, org: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM users WHERE id = $1 AND organisation_id = $2 AND active = 1 AND role IN ('expert', 'community_doctor')",
    )
    .bind(user_id)
    .bind(org)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| r.0))
}

pub async fn assign_referral(conn: &mut AnyConnection, id: &str, assignee: &str, now: &str) -> ApiResult<()> {
    sqlx::query("UPDATE referrals SET assigned_to = $1, updated_at = $2 WHERE id = $3")
        .bind(assignee)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Opinions

const OPINION_SELECT: &str = "SELECT id, consultation_id, author_id, kind, version, supersedes, status, findings, impression,
    recommendations, referral_advice, follow_up_advice, patient_summary, amendment_reason, signer_name, signer_title, signed_at, content_sha256,
    created_at, updated_at FROM opinions";

/// Whether `user_id` is an expert of the consultation who has accepted it (the one who may write
/// its opinion and notes and complete it; one invited who has not answered may only read).
pub async fn expert_has_accepted(db: &Db, consultation_id: &str, user_id: &str) -> ApiResult<bool> {
    let status = crate::consultations::store::expert_status(db, consultation_id, user_id).await?;
    Ok(matches!(status.as_deref(), Some("accepted" | "active")))
}

/// Every opinion version of a consultation; drafts only the viewer's own.
pub async fn opinions_of(db: &Db, consultation_id: &str, viewer_id: &str) -> ApiResult<Vec<Opinion>> {
    Ok(sqlx::query_as(&format!(
        "{OPINION_SELECT} WHERE consultation_id = $1 AND (status <> 'draft' OR author_id = $2) ORDER BY kind, author_id, version"
    ))
    .bind(consultation_id)
    .bind(viewer_id)
    .fetch_all(&db.pool)
    .await?)
}

/// The author's latest version of their opinion of that kind.
pub async fn latest_opinion(
    db: &Db,
    consultation_id: &str,
    author_id: &str,
    kind: OpinionKind,
) -> ApiResult<Option<Opinion>> {
    latest_opinion_on(&mut *db.pool.acquire().await?, consultation_id, author_id, kind).await
}

/// [`latest_opinion`] on a connection the caller holds (inside its transaction: a second
/// connection taken from the pool while one is held can wait forever once the pool is full
/// of such holders).
pub async fn latest_opinion_on(
    conn: &mut AnyConnection,
    consultation_id: &str,
    author_id: &str,
    kind: OpinionKind,
) -> ApiResult<Option<Opinion>> {
    Ok(sqlx::query_as(&format!(
        "{OPINION_SELECT} WHERE consultation_id = $1 AND author_id = $2 AND kind = $3 ORDER BY version DESC LIMIT 1"
    ))
    .bind(consultation_id)
    .bind(author_id)
    .bind(kind.as_str())
    .fetch_optional(&mut *conn)
    .await?)
}

/// Rewrites a draft's content (only while it is a draft).
pub async fn update_draft(conn: &mut AnyConnection, id: &str, c: &OpinionContent, now: &str) -> ApiResult<()> {
    sqlx::query(
        "UPDATE opinions SET findings = $1, impression = $2, recommendations = $3, referral_advice = $4, follow_up_advice = $5, updated_at = $6,
            patient_summary = $8
         WHERE id = $7 AND status = 'draft'",
    )
    .bind(c.findings.clone())
    .bind(c.impression.clone())
    .bind(c.recommendations.clone())
    .bind(c.referral_advice.clone())
    .bind(c.follow_up_advice.clone())
    .bind(now)
    .bind(id)
    .bind(c.patient_summary.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Starts the author's first draft (version 1).
pub async fn insert_draft(
    conn: &mut AnyConnection,
    consultation_id: &str,
    author_id: &str,
    kind: OpinionKind,
    c: &OpinionContent,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO opinions (id, consultation_id, author_id, kind, version, status, findings, impression, recommendations,
            referral_advice, follow_up_advice, created_at, updated_at, patient_summary)
         VALUES ($1, $2, $3, $4, 1, 'draft', $5, $6, $7, $8, $9, $10, $10, $11)",
    )
    .bind(new_id())
    .bind(consultation_id)
    .bind(author_id)
    .bind(kind.as_str())
    .bind(c.findings.clone())
    .bind(c.impression.clone())
    .bind(c.recommendations.clone())
    .bind(c.referral_advice.clone())
    .bind(c.follow_up_advice.clone())
    .bind(now)
    .bind(c.patient_summary.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The signer's name and professional title, for an expert.
pub async fn signer(db: &Db, user_id: &str) -> ApiResult<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT u.display_name, e.title FROM users u JOIN expert_profiles e ON e.user_id = u.id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(&db.pool)
    .await?)
}

/// Inserts an amendment, already signed (`o` carries its signature and hash).
pub async fn insert_signed(conn: &mut AnyConnection, o: &Opinion) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO opinions (id, consultation_id, author_id, kind, version, supersedes, status, findings, impression, recommendations,
            referral_advice, follow_up_advice, amendment_reason, signer_name, signer_title, signed_at, content_sha256, created_at, updated_at,
            patient_summary)
         VALUES ($1, $2, $3, $4, $5, $6, 'signed', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $15, $15, $17)",
    )
    .bind(o.id.clone())
    .bind(o.consultation_id.clone())
    .bind(o.author_id.clone())
    .bind(o.kind.as_str())
    .bind(o.version)
    .bind(o.supersedes.clone())
    .bind(o.findings.clone())
    .bind(o.impression.clone())
    .bind(o.recommendations.clone())
    .bind(o.referral_advice.clone())
    .bind(o.follow_up_advice.clone())
    .bind(o.amendment_reason.clone())
    .bind(o.signer_name.clone())
    .bind(o.signer_title.clone())
    .bind(o.signed_at.clone().unwrap_or_default())
    .bind(o.content_sha256.clone())
    .bind(o.patient_summary.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Signs a stored draft with `o`'s signature and hash; `false` when it was no longer a draft.
pub async fn sign_draft(conn: &mut AnyConnection, o: &Opinion) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE opinions SET status = 'signed', signer_name = $1, signer_title = $2, signed_at = $3, content_sha256 = $4, updated_at = $3
         WHERE id = $5 AND status = 'draft'",
    )
    .bind(o.signer_name.clone())
    .bind(o.signer_title.clone())
    .bind(o.signed_at.clone().unwrap_or_default())
    .bind(o.content_sha256.clone())
    .bind(o.id.clone())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

/// Marks a signed version superseded by its amendment; `false` when it was no longer signed.
pub async fn supersede(conn: &mut AnyConnection, id: &str, now: &str) -> ApiResult<bool> {
    let done =
        sqlx::query("UPDATE opinions SET status = 'superseded', updated_at = $1 WHERE id = $2 AND status = 'signed'")
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    Ok(done > 0)
}

// ---------------------------------------------------------------------------------------
// Notes

pub async fn notes_of(db: &Db, consultation_id: &str) -> ApiResult<Vec<Note>> {
    Ok(sqlx::query_as(
        "SELECT n.id, n.author_id, u.display_name AS author_name, n.kind, n.body, n.status, n.withdrawn_reason, n.created_at
         FROM consultation_notes n JOIN users u ON u.id = n.author_id WHERE n.consultation_id = $1 ORDER BY n.created_at, n.id",
    )
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

pub async fn insert_note(
    conn: &mut AnyConnection,
    id: &str,
    consultation_id: &str,
    author_id: &str,
    kind: NoteKind,
    body: &str,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO consultation_notes (id, consultation_id, author_id, kind, body, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(consultation_id)
    .bind(author_id)
    .bind(kind.as_str())
    .bind(body)
    .bind(NoteStatus::Current.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the author's current note entered in error; `false` when there is no such note.
pub async fn withdraw_note(
    conn: &mut AnyConnection,
    id: &str,
    consultation_id: &str,
    author_id: &str,
    reason: &str,
) -> ApiResult<bool> {
    let done = sqlx::query(
        "UPDATE consultation_notes SET status = $1, withdrawn_reason = $2
         WHERE id = $3 AND consultation_id = $4 AND author_id = $5 AND status = $6",
    )
    .bind(NoteStatus::EnteredInError.as_str())
    .bind(reason)
    .bind(id)
    .bind(consultation_id)
    .bind(author_id)
    .bind(NoteStatus::Current.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}

// ---------------------------------------------------------------------------------------
// Follow-up plans and visits

const VISIT_SELECT: &str =
    "SELECT v.id, v.plan_id, v.seq, v.due_date, v.status, v.note, p.patient_id, x.name AS patient_name, p.condition
    FROM follow_up_visits v JOIN follow_up_plans p ON p.id = v.plan_id JOIN patients x ON x.id = p.patient_id";

/// A new follow-up plan, as written (status `active`).
pub struct NewPlanRow<'a> {
    pub id: &'a str,
    pub patient_id: &'a str,
    pub consultation_id: Option<&'a str>,
    pub referral_id: Option<&'a str>,
    pub organisation_id: &'a str,
    pub condition: &'a str,
    pub interval_weeks: i64,
    pub visits: i64,
    pub instructions: &'a str,
    pub created_by: &'a str,
    pub now: &'a str,
    /// The targets, as JSON.
    pub targets: String,
}

/// Inserts the plan and its visits (`due_dates` as YYYY-MM-DD, numbered from 1).
pub async fn insert_plan(conn: &mut AnyConnection, p: NewPlanRow<'_>, due_dates: &[String]) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO follow_up_plans (id, patient_id, consultation_id, referral_id, organisation_id, condition, interval_weeks, visits, instructions, created_by, status, created_at, targets)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12)",
    )
    .bind(p.id)
    .bind(p.patient_id)
    .bind(p.consultation_id)
    .bind(p.referral_id)
    .bind(p.organisation_id)
    .bind(p.condition)
    .bind(p.interval_weeks)
    .bind(p.visits)
    .bind(p.instructions)
    .bind(p.created_by)
    .bind(p.now)
    .bind(p.targets)
    .execute(&mut *conn)
    .await?;
    for (i, due) in due_dates.iter().enumerate() {
        sqlx::query("INSERT INTO follow_up_visits (id, plan_id, seq, due_date, status, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(new_id())
            .bind(p.id)
            .bind(i as i64 + 1)
            .bind(due.as_str())
            .bind(VisitStatus::Planned.as_str())
            .bind(p.now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn visits_of_plan(db: &Db, plan_id: &str) -> ApiResult<Vec<Visit>> {
    Ok(sqlx::query_as(&format!("{VISIT_SELECT} WHERE v.plan_id = $1 ORDER BY v.due_date, v.seq"))
        .bind(plan_id)
        .fetch_all(&db.pool)
        .await?)
}

pub async fn visit(db: &Db, id: &str) -> ApiResult<Option<Visit>> {
    Ok(sqlx::query_as(&format!("{VISIT_SELECT} WHERE v.id = $1")).bind(id).fetch_optional(&db.pool).await?)
}

/// Visits of the consultation's plans and of the plans of its referrals.
pub async fn visits_of_consultation(db: &Db, consultation_id: &str) -> ApiResult<Vec<Visit>> {
    Ok(sqlx::query_as(&format!(
        "{VISIT_SELECT} WHERE p.consultation_id = $1 OR p.referral_id IN (SELECT id FROM referrals WHERE consultation_id = $1)
         ORDER BY v.due_date, v.seq"
    ))
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

/// Visits of active plans of the patients the caller sees, at most 500; only those planned
/// and due before `overdue_before` when given; only one patient's when given.
pub async fn list_visits(
    db: &Db,
    user: &AuthUser,
    overdue_before: Option<String>,
    patient_id: Option<String>,
) -> ApiResult<Vec<Visit>> {
    let mut q = Filtered::new(format!("{VISIT_SELECT} WHERE p.status = 'active'"));
    q.after_where();
    crate::patients::patient_visible(&mut q, "p.patient_id", user);
    if let Some(today) = overdue_before {
        q.push(" AND v.status = ").push_bind(VisitStatus::Planned.as_str()).push(" AND v.due_date < ").push_bind(today);
    }
    if let Some(p) = patient_id.filter(|p| !p.is_empty()) {
        q.push(" AND p.patient_id = ").push_bind(p);
    }
    q.push(" ORDER BY v.due_date, v.seq LIMIT 500");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// Moves or closes a visit: absent fields keep their value.
pub async fn update_visit(
    conn: &mut AnyConnection,
    id: &str,
    due_date: Option<String>,
    status: Option<VisitStatus>,
    note: Option<String>,
    user_id: &str,
    now: &str,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE follow_up_visits SET due_date = COALESCE($1, due_date), status = COALESCE($2, status), note = COALESCE($3, note), updated_by = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(due_date)
    .bind(status.map(|s| s.as_str()))
    .bind(note)
    .bind(user_id)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The record's other parts

pub async fn timeline(db: &Db, consultation_id: &str) -> ApiResult<Vec<TimelineEvent>> {
    Ok(sqlx::query_as(
        "SELECT e.user_id, u.display_name AS user_name, e.room_role, e.kind, e.at FROM room_events e JOIN users u ON u.id = e.user_id
         WHERE e.consultation_id = $1 ORDER BY e.at, e.id",
    )
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

pub async fn chat(db: &Db, consultation_id: &str) -> ApiResult<Vec<ChatLine>> {
    Ok(sqlx::query_as(
        "SELECT m.id, m.sender_id, u.display_name AS sender_name, m.body, m.sent_at FROM consultation_messages m JOIN users u ON u.id = m.sender_id
         WHERE m.consultation_id = $1 ORDER BY m.sent_at, m.id",
    )
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

pub async fn files(db: &Db, consultation_id: &str) -> ApiResult<Vec<FileEntry>> {
    Ok(sqlx::query_as(
        "SELECT id, name, kind, content_type, size, sha256, created_at FROM files WHERE consultation_id = $1 ORDER BY created_at, id",
    )
    .bind(consultation_id)
    .fetch_all(&db.pool)
    .await?)
}

// ---------------------------------------------------------------------------------------
// Figures

/// A window of creation times: from (inclusive) and to (exclusive), each optional.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Window {
    fn narrow(&self, q: &mut Filtered<'_>, column: &str) {
        if let Some(from) = &self.from {
            q.condition().push(column).push(" >= ").push_bind(from.clone());
        }
        if let Some(to) = &self.to {
            q.condition().push(column).push(" < ").push_bind(to.clone());
        }
    }
}

/// Consultations the caller sees created in the window: id, state, mode, specialty and
/// requesting centre's name.
pub async fn figure_consultations(
    db: &Db,
    user: &AuthUser,
    w: &Window,
) -> ApiResult<Vec<(String, String, String, String, String)>> {
    let mut q = Filtered::new(
        "SELECT c.id, c.state, c.mode, c.specialty, o.name FROM consultations c JOIN organisations o ON o.id = c.requesting_organisation_id
",
    );
    crate::consultations::store::visible(&mut q, user);
    w.narrow(&mut q, "c.created_at");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// The submit, accept, claim and sign_opinion transitions of those consultations: id,
/// action, time, in time order.
pub async fn figure_transitions(db: &Db, user: &AuthUser, w: &Window) -> ApiResult<Vec<(String, String, String)>> {
    let mut q = Filtered::new(
        "SELECT t.consultation_id, t.action, t.at FROM consultation_transitions t JOIN consultations c ON c.id = t.consultation_id
         WHERE t.action IN ('submit', 'accept', 'claim', 'sign_opinion')",
    );
    q.after_where();
    crate::consultations::store::visible(&mut q, user);
    w.narrow(&mut q, "c.created_at");
    q.push(" ORDER BY t.at");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}

/// Referrals per month (YYYY-MM) and direction, not entered in error: all for admins, else
/// those of the caller's organisation and of the centres linked to it.
pub async fn figure_referrals(db: &Db, user: &AuthUser, w: &Window) -> ApiResult<Vec<(String, String, i64)>> {
    let mut q = Filtered::new(
        "SELECT substr(r.created_at, 1, 7) AS month, r.direction, COUNT(*) FROM referrals r WHERE r.status <> ",
    );
    q.after_where();
    q.push_bind(ReferralStatus::EnteredInError.as_str());
    if user.role != Role::Admin {
        q.push(" AND (r.from_organisation_id = ")
            .push_bind(user.org.clone())
            .push(" OR r.to_organisation_id = ")
            .push_bind(user.org.clone())
            .push(" OR r.from_organisation_id IN (SELECT centre_id FROM consortium_links WHERE hospital_id = ")
            .push_bind(user.org.clone())
            .push("))");
    }
    w.narrow(&mut q, "r.created_at");
    q.push(" GROUP BY substr(r.created_at, 1, 7), r.direction");
    Ok(q.build_query_as().fetch_all(&db.pool).await?)
}
