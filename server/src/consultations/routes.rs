//! The consultation API: a community doctor's request with the patient's consent, listing
//! what the caller may see, the actions of the lifecycle (submit, accept, decline, claim,
//! cancel, complete). The ranked expert candidates are served by `scheduling::candidates`
//! (their earliest free slot is part of the ranking).

use super::state::{transition, Action, Mode, Reason, State as CState, Title, Urgency};
use super::store::{self, ConsultationCore};
pub use super::{ConsentView, ConsultationDetail, ConsultationSummary, Participant, Transition};
use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::config::Config;
use crate::db::{new_id, now_ts, ts, Db, Id};
use crate::domain::consultation::{AddresseeKind, ConsentGiver, ConsentMethod, ParticipantRole, ParticipantStatus};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::notifications::Notification;
use crate::notifications::{self, Notice, NotificationHub, Text};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Addressee {
    /// One named expert.
    Expert { expert_id: String },
    /// A hospital department pool: any qualified expert of the specialty may claim it.
    Pool {
        #[serde(default)]
        specialty: Option<String>,
        /// The hospital; defaults to a hospital linked to the requesting centre that has the specialty.
        #[serde(default)]
        organisation_id: Option<String>,
    },
    /// Several experts (multidisciplinary team).
    Mdt { expert_ids: Vec<String> },
}

#[derive(Debug, Deserialize, Serialize, Clone, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// `patient` or `guardian`.
    pub given_by: String,
    #[serde(default)]
    pub guardian_name: String,
    /// `written` or `recorded_verbal`.
    pub method: String,
    pub at: crate::db::ClientTime,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsultation {
    pub patient_id: String,
    pub reason: String,
    #[serde(default)]
    pub record_summary: String,
    pub specialty: String,
    pub min_title: Title,
    pub urgency: Urgency,
    pub mode: Mode,
    pub addressee: Addressee,
    #[serde(default)]
    pub consent: Option<ConsentInput>,
    /// Send the request now (default) or keep it as a draft.
    #[serde(default = "default_true")]
    pub submit: bool,
}

/// One consultation with its participants, consent, transitions and appointments, as the
/// caller sees it.
pub async fn detail(db: &Db, config: &Config, user: &AuthUser, id: &str) -> ApiResult<ConsultationDetail> {
    let summary = store::summary(db, id).await?.ok_or_else(|| ApiError::not_found("consultation"))?;
    let participants = store::participants(db, id).await?;
    let consent = store::latest_consent(db, id).await?;
    let transitions = store::transitions(db, id).await?;
    let my_role = participants.iter().find(|p| p.user_id == user.id && p.status.takes_part()).map(|p| p.role);
    Ok(ConsultationDetail {
        summary,
        my_role,
        participants: participants
            .into_iter()
            .map(|p| Participant { user_id: p.user_id, name: p.name, role: p.role, status: p.status, reason: p.reason })
            .collect(),
        consent,
        transitions,
        appointments: super::visit::appointments_of(db, id, config.call_open_before_mins, config.no_show_after_mins)
            .await?,
    })
}

fn parse_uuid(field: &str, s: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(s).map(|u| u.to_string()).map_err(|_| ApiError::validation(field, "not a valid id"))
}

/// The patient a request is for: one of the caller's own centre (404 otherwise).
/// Answers the patient's id and their user account, if they have one.
async fn requested_patient(db: &Db, user: &AuthUser, raw_id: &str) -> ApiResult<(String, Option<String>)> {
    let patient_id = parse_uuid("patient_id", raw_id)?;
    let patient =
        crate::patients::find_visible(db, user, &patient_id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    if patient.home_organisation_id != user.org {
        return Err(ApiError::not_found("patient"));
    }
    Ok((patient_id, patient.user_id))
}

/// The request's own fields: reason, summary length, a known specialty.
async fn check_request(db: &Db, b: &NewConsultation) -> ApiResult<Reason> {
    let reason = Reason::parse(&b.reason).map_err(|e| ApiError::validation("reason", e.to_string()))?;
    if b.record_summary.chars().count() > 20_000 {
        return Err(ApiError::validation("record_summary", "at most 20,000 characters"));
    }
    if !store::specialty_exists(db, &b.specialty).await? {
        return Err(ApiError::validation("specialty", "not a known specialty"));
    }
    Ok(reason)
}

/// The patient's informed consent, checked.
struct Consent {
    given_by: ConsentGiver,
    guardian_name: String,
    method: ConsentMethod,
    at: DateTime<Utc>,
}

fn check_consent(consent: Option<&ConsentInput>) -> ApiResult<Consent> {
    let Some(consent) = consent else {
        return Err(ApiError::unprocessable(
            ErrorCode::ConsentRequired,
            "the patient's informed consent must be recorded before a consultation is requested",
        ));
    };
    let given_by: ConsentGiver =
        consent.given_by.parse().map_err(|_| ApiError::validation("consent.given_by", "patient or guardian"))?;
    let guardian_name = consent.guardian_name.trim().to_string();
    if given_by == ConsentGiver::Guardian && guardian_name.is_empty() {
        return Err(ApiError::validation("consent.guardian_name", "the guardian's name is required"));
    }
    let method: ConsentMethod =
        consent.method.parse().map_err(|_| ApiError::validation("consent.method", "written or recorded_verbal"))?;
    let at: DateTime<Utc> = consent.at.into();
    if at > Utc::now() + Duration::minutes(5) {
        return Err(ApiError::validation("consent.at", "consent cannot be given in the future"));
    }
    Ok(Consent { given_by, guardian_name, method, at })
}

/// Whom a request goes to: the experts invited (none for a pool) or the pool's hospital.
struct Resolved {
    kind: AddresseeKind,
    experts: Vec<String>,
    pool_org: Option<String>,
}

/// What an addressee is checked against: the request's specialty, minimum title and mode.
struct Criteria<'a> {
    specialty: &'a str,
    min_title: Title,
    mode: Mode,
}

async fn resolve_addressee(db: &Db, user: &AuthUser, addressee: &Addressee, b: Criteria<'_>) -> ApiResult<Resolved> {
    let resolved = match addressee {
        Addressee::Expert { expert_id } => {
            let id = parse_uuid("addressee.expert_id", expert_id)?;
            let e = store::expert_facts(db, &id)
                .await?
                .ok_or_else(|| ApiError::validation("addressee.expert_id", "not an active expert"))?;
            if e.title < b.min_title {
                return Err(ApiError::validation(
                    "addressee.expert_id",
                    "the expert's title is below the minimum asked for",
                ));
            }
            if !store::has_specialty(db, &e.id, b.specialty).await? {
                return Err(ApiError::validation("addressee.expert_id", "the expert does not practise this specialty"));
            }
            Resolved { kind: AddresseeKind::Expert, experts: vec![e.id], pool_org: None }
        }
        Addressee::Mdt { expert_ids } => {
            if expert_ids.len() < 2 || expert_ids.len() > 8 {
                return Err(ApiError::validation("addressee.expert_ids", "an MDT names 2 to 8 experts"));
            }
            let mut experts: Vec<String> = Vec::new();
            for (i, raw) in expert_ids.iter().enumerate() {
                let id = parse_uuid(&format!("addressee.expert_ids[{i}]"), raw)?;
                store::expert_facts(db, &id).await?.ok_or_else(|| {
                    ApiError::validation(&format!("addressee.expert_ids[{i}]"), "not an active expert")
                })?;
                if !experts.contains(&id) {
                    experts.push(id);
                }
            }
            Resolved { kind: AddresseeKind::Mdt, experts, pool_org: None }
        }
        Addressee::Pool { specialty, organisation_id } => {
            if specialty.as_deref().is_some_and(|s| s != b.specialty) {
                return Err(ApiError::validation("addressee.specialty", "must match the consultation's specialty"));
            }
            let org = match organisation_id {
                Some(o) => store::department_of(db, &parse_uuid("addressee.organisation_id", o)?, b.specialty).await?,
                None => store::linked_department(db, &user.org, b.specialty).await?,
            };
            let Some(org) = org else {
                return Err(ApiError::unprocessable(
                    ErrorCode::NoPool,
                    "no hospital department of this specialty takes pool requests from this centre",
                ));
            };
            Resolved { kind: AddresseeKind::Pool, experts: Vec::new(), pool_org: Some(org) }
        }
    };
    if b.mode == Mode::Mdt && resolved.kind != AddresseeKind::Mdt {
        return Err(ApiError::validation("addressee", "an MDT consultation is addressed to several experts"));
    }
    Ok(resolved)
}

/// A checked request, ready to store.
struct Request<'a> {
    id: String,
    patient_id: String,
    patient_user: Option<String>,
    reason: Reason,
    consent: Consent,
    to: Resolved,
    body: &'a NewConsultation,
}

/// Stores the request in one transaction: the draft, the consent, the participants and the
/// audit event, then submits it and stores the notifications of the experts it is addressed
/// to (the pool's qualified experts for a pool request), which the caller publishes.
async fn store_request(db: &Db, user: &AuthUser, r: &Request<'_>) -> ApiResult<Vec<(String, Notification)>> {
    let b = r.body;
    let now = now_ts();
    let mut tx = db.begin_write().await?;
    store::insert_draft(
        &mut tx,
        &store::NewRow {
            id: &r.id,
            patient_id: &r.patient_id,
            requesting_organisation_id: &user.org,
            requested_by: &user.id,
            reason: r.reason.as_str(),
            record_summary: b.record_summary.trim(),
            specialty: &b.specialty,
            min_title: b.min_title,
            urgency: b.urgency,
            mode: b.mode,
            addressee_kind: r.to.kind,
            pool_organisation_id: r.to.pool_org.as_deref(),
            now: &now,
        },
    )
    .await?;
    let consent = store::NewConsent {
        given_by: r.consent.given_by.as_str(),
        guardian_name: &r.consent.guardian_name,
        method: r.consent.method.as_str(),
        given_at: &ts(r.consent.at),
        witness_id: &user.id,
    };
    store::insert_consent(&mut tx, &r.id, &consent, &now).await?;
    let mut participants = vec![(user.id.as_str(), ParticipantRole::Requester, ParticipantStatus::Active)];
    if let Some(pu) = &r.patient_user {
        participants.push((pu, ParticipantRole::Patient, ParticipantStatus::Invited));
    }
    for e in &r.to.experts {
        participants.push((e, ParticipantRole::Expert, ParticipantStatus::Invited));
    }
    for (uid, role, status) in participants {
        store::insert_participant(&mut tx, &r.id, uid, role, status, &now).await?;
    }
    crate::audit::event(user, "create", "consultation", &r.id).patient(&r.patient_id).record_with(&mut *tx).await?;
    let mut stored = Vec::new();
    if b.submit {
        store::apply_locked(&mut tx, &r.id, CState::Draft, Some(&user.id), &Action::Submit).await?;
        let recipients = match &r.to.pool_org {
            Some(org) => store::pool_experts(&mut tx, org, &b.specialty, b.min_title).await?,
            None => r.to.experts.clone(),
        };
        stored = notifications::store(
            &mut tx,
            &recipients,
            &Notice::new(
                "request_matched",
                Text::new("request_matched").with("urgency", b.urgency),
                r.reason.to_string(),
                Some(&r.id),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(stored)
}

async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(b): Json<NewConsultation>,
) -> ApiResult<(StatusCode, Json<ConsultationDetail>)> {
    user.require(&[Role::CommunityDoctor])?;
    let (patient_id, patient_user) = requested_patient(&state.db, &user, &b.patient_id).await?;
    let reason = check_request(&state.db, &b).await?;
    let consent = check_consent(b.consent.as_ref())?;
    let criteria = Criteria { specialty: &b.specialty, min_title: b.min_title, mode: b.mode };
    let to = resolve_addressee(&state.db, &user, &b.addressee, criteria).await?;
    let request = Request { id: new_id(), patient_id, patient_user, reason, consent, to, body: &b };
    let stored = store_request(&state.db, &user, &request).await?;
    notifications::publish(&state.notifications, &stored);
    Ok((StatusCode::CREATED, Json(detail(&state.db, &state.config, &user, &request.id).await?)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    pub state: Option<CState>,
    /// `true`: only consultations still open (any state but completed, declined, cancelled and
    /// no-show), what a home screen shows; `false`: only ended ones.
    pub active: Option<bool>,
    pub mode: Option<Mode>,
    pub urgency: Option<Urgency>,
    /// Created at or after (RFC 3339).
    pub from: Option<crate::db::ClientTime>,
    /// Created before (RFC 3339).
    pub to: Option<crate::db::ClientTime>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<ListFilter>,
) -> ApiResult<Json<crate::api::Page<ConsultationSummary>>> {
    let limit = crate::api::page_limit(f.limit, 200)?;
    let cursor = crate::api::page_cursor(f.cursor)?;
    let query = store::ListQuery {
        state: f.state,
        active: f.active,
        mode: f.mode,
        urgency: f.urgency,
        created_from: f.from.map(|t| ts(t.into())),
        created_before: f.to.map(|t| ts(t.into())),
        before_id: Some(cursor).filter(|c| !c.is_empty()),
        limit: limit as i64 + 1,
    };
    let rows = store::list(&state.db, &user, &query).await?;
    let page = crate::api::page(rows, limit, |c| c.id.clone());
    let events =
        page.items.iter().map(|c| crate::audit::event(&user, "list", "consultation", &c.id).patient(&c.patient_id));
    crate::audit::record_all(&state.db, events.collect()).await?;
    Ok(Json(page))
}

async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    store::load_for(&state.db, &user, &id, "read").await?;
    Ok(Json(detail(&state.db, &state.config, &user, &id).await?))
}

#[derive(Debug, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

fn required_reason(body: &ReasonBody) -> ApiResult<Reason> {
    let text = body.reason.clone().unwrap_or_default();
    Reason::parse(&text).map_err(|e| ApiError::validation("reason", e.to_string()))
}

/// The person's name as notifications show it (王建国, not the login name).
async fn display_name(db: &Db, user: &AuthUser) -> ApiResult<String> {
    Ok(store::display_name(db, &user.id).await?.unwrap_or_else(|| user.username.clone()))
}

/// Notifies the consultation's participants except the actor.
async fn tell_others(
    db: &Db,
    hub: &NotificationHub,
    c: &ConsultationCore,
    actor: &AuthUser,
    kind: &str,
    text: Text,
    body: String,
) -> ApiResult<()> {
    let mut conn = db.pool.acquire().await?;
    let recipients: Vec<String> =
        store::participant_ids(&mut conn, &c.id).await?.into_iter().filter(|u| *u != actor.id).collect();
    drop(conn);
    notifications::notify(db, hub, &recipients, Notice::new(kind, text, body, Some(&c.id))).await
}

/// Tells the others that `user` took the consultation on (accepted or claimed it), and
/// answers the consultation as it is now.
async fn taken_on(
    db: &Db,
    hub: &NotificationHub,
    config: &Config,
    c: &ConsultationCore,
    user: &AuthUser,
) -> ApiResult<Json<ConsultationDetail>> {
    let name = display_name(db, user).await?;
    tell_others(db, hub, c, user, "accepted", Text::new("expert_accepted").with("name", &name), name).await?;
    respond(db, config, user, &c.id).await
}

async fn respond(db: &Db, config: &Config, user: &AuthUser, id: &str) -> ApiResult<Json<ConsultationDetail>> {
    Ok(Json(detail(db, config, user, id).await?))
}

async fn submit(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    let c = store::load_to_act(&state.db, &user, &id, "submit").await?;
    let done = async {
        if c.requested_by != user.id {
            return Err(ApiError::forbidden("only the requesting doctor submits the request"));
        }
        store::apply_audited(&state.db, &c, &user, &Action::Submit, "submit").await
    };
    store::acted(&user, &c, "submit").if_refused(&state.db, done.await).await?;
    respond(&state.db, &state.config, &user, &id).await
}

async fn accept(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    user.require(&[Role::Expert])?;
    let c = store::load_to_act(&state.db, &user, &id, "accept").await?;
    let done = async {
        let invited = {
            let mut conn = state.db.pool.acquire().await?;
            store::participant_status(&mut conn, &id, &user.id, true).await?
        };
        match invited {
            Some(ParticipantStatus::Invited) => {}
            Some(ParticipantStatus::Accepted | ParticipantStatus::Active) => {
                return Err(ApiError::conflict(
                    ErrorCode::AlreadyAccepted,
                    "you have already accepted this consultation",
                ))
            }
            Some(ParticipantStatus::Declined) => {
                return Err(ApiError::conflict(ErrorCode::AlreadyDeclined, "you declined this consultation"))
            }
            None if c.addressee_kind == AddresseeKind::Pool => {
                return Err(ApiError::conflict(ErrorCode::UseClaim, "a pool request is taken with POST .../claim"));
            }
            None => return Err(ApiError::forbidden("the consultation is not addressed to you")),
        }
        let mut tx = crate::audit::begin(&state.db).await?;
        let from = store::lock(&mut tx, &id).await?;
        // The first MDT expert to accept moves the consultation on; the others join it.
        if !(c.addressee_kind == AddresseeKind::Mdt && from != CState::Requested && !from.is_terminal()) {
            store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Accept).await?;
        }
        store::accept(&mut tx, &id, &user.id).await?;
        if c.addressee_kind == AddresseeKind::Mdt {
            // An MDT already booked with another expert holds this one's calendar too.
            crate::scheduling::store::hold_booked_for(&mut tx, &id, &user.id).await?;
        }
        tx.audit(store::acted(&user, &c, "accept")).await?;
        tx.commit().await
    };
    store::acted(&user, &c, "accept").if_refused(&state.db, done.await).await?;
    taken_on(&state.db, &state.notifications, &state.config, &c, &user).await
}

async fn decline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Json<serde_json::Value>> {
    user.require(&[Role::Expert])?;
    let reason = required_reason(&body)?;
    let c = store::load_to_act(&state.db, &user, &id, "decline").await?;
    let done = async {
        let mut tx = crate::audit::begin(&state.db).await?;
        let from = store::lock(&mut tx, &id).await?;
        match (c.addressee_kind, store::participant_status(&mut tx, &id, &user.id, false).await?) {
            (_, Some(ParticipantStatus::Declined)) => {
                return Err(ApiError::conflict(ErrorCode::AlreadyDeclined, "you have already declined"))
            }
            // A pool decline is kept in the transition log only: the expert was never a participant.
            (AddresseeKind::Pool, None) => {}
            (_, Some(ParticipantStatus::Invited | ParticipantStatus::Accepted)) => {
                store::mark_declined(&mut tx, &id, &user.id, reason.as_str()).await?;
            }
            _ => return Err(ApiError::forbidden("the consultation is not addressed to you")),
        }
        let others = store::experts_left(&mut tx, &id).await?;
        let reopens = c.addressee_kind == AddresseeKind::Pool || (c.addressee_kind == AddresseeKind::Mdt && others > 0);
        let mut to = from;
        if from == CState::Requested || !reopens {
            to = store::apply_locked(
                &mut tx,
                &id,
                from,
                Some(&user.id),
                &Action::Decline { reopens, reason: reason.clone() },
            )
            .await?;
        }
        if c.assigned_expert_id.as_deref() == Some(user.id.as_str()) {
            store::unassign(&mut tx, &id).await?;
        }
        // Their calendar is free again at the MDT's appointment, and one booked in their name
        // passes to an expert who attends.
        crate::scheduling::store::release_holds(&mut tx, &id, &user.id).await?;
        if let Some(handed) = crate::scheduling::store::hand_over_booked(&mut tx, &id, &user.id).await? {
            tx.audit(
                crate::audit::event(&user, "reschedule", "appointment", &handed)
                    .patient(&c.patient_id)
                    .detail("handed over to another expert of the MDT: the expert it was booked with declined"),
            )
            .await?;
        }
        tx.audit(store::acted(&user, &c, "decline").detail(reason.as_str())).await?;
        tx.commit().await?;
        Ok(to)
    };
    let to = store::acted(&user, &c, "decline").if_refused(&state.db, done.await).await?;
    // Out of the call too, at once, if they are in it (an MDT's, the others carrying on).
    state.accounts.access_changed(&id).await;
    tell_others(
        &state.db,
        &state.notifications,
        &c,
        &user,
        "declined",
        Text::new("expert_declined"),
        reason.to_string(),
    )
    .await?;
    // The expert who declined no longer sees the consultation: the answer says only what
    // became of it.
    Ok(Json(serde_json::json!({"id": id, "state": to.as_str(), "declined": true, "reason": reason.as_str()})))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReaddressBody {
    /// Whom the declined request goes to now: as when it was made (an expert, a pool or an MDT).
    pub addressee: Addressee,
}

/// The requesting doctor addresses a declined request anew: matching starts again with the
/// request as it is (reason, summary, consent, files), to experts who have not declined it
/// (or a department pool, whose experts who declined it are not told again).
async fn readdress(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(b): Json<ReaddressBody>,
) -> ApiResult<Json<ConsultationDetail>> {
    user.require(&[Role::CommunityDoctor])?;
    let c = store::load_to_act(&state.db, &user, &id, "readdress").await?;
    let done = async {
        if c.requested_by != user.id {
            return Err(ApiError::forbidden("the doctor who made the request addresses it anew"));
        }
        let criteria = Criteria { specialty: &c.specialty, min_title: c.min_title, mode: c.mode };
        let to = resolve_addressee(&state.db, &user, &b.addressee, criteria).await?;
        let mut tx = crate::audit::begin(&state.db).await?;
        let from = store::lock(&mut tx, &id).await?;
        transition(from, &Action::Readdress)
            .map_err(|e| ApiError::conflict(ErrorCode::InvalidTransition, e.to_string()))?;
        for (i, e) in to.experts.iter().enumerate() {
            if store::participant_status(&mut tx, &id, e, false).await?.is_some() {
                let field = if to.kind == AddresseeKind::Mdt {
                    format!("addressee.expert_ids[{i}]")
                } else {
                    "addressee.expert_id".into()
                };
                return Err(ApiError::validation(&field, "this expert has already been asked and declined"));
            }
        }
        let now = now_ts();
        store::set_addressee(&mut tx, &id, to.kind, to.pool_org.as_deref()).await?;
        for e in &to.experts {
            store::insert_participant(&mut tx, &id, e, ParticipantRole::Expert, ParticipantStatus::Invited, &now)
                .await?;
        }
        store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Readdress).await?;
        let recipients = match &to.pool_org {
            Some(org) => {
                let mut experts = store::pool_experts(&mut tx, org, &c.specialty, c.min_title).await?;
                let declined = store::declined_by(&mut tx, &id).await?;
                experts.retain(|e| !declined.contains(e));
                experts
            }
            None => to.experts.clone(),
        };
        let reason = store::reason_of(&mut tx, &id).await?;
        let stored = notifications::store(
            &mut tx,
            &recipients,
            &Notice::new("request_matched", Text::new("request_matched").with("urgency", c.urgency), reason, Some(&id)),
        )
        .await?;
        tx.audit(store::acted(&user, &c, "readdress").detail(to.kind.as_str())).await?;
        tx.commit().await?;
        Ok(stored)
    };
    let stored = store::acted(&user, &c, "readdress").if_refused(&state.db, done.await).await?;
    notifications::publish(&state.notifications, &stored);
    Ok(Json(detail(&state.db, &state.config, &user, &id).await?))
}

async fn claim(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    user.require(&[Role::Expert])?;
    let c = match store::load_to_act(&state.db, &user, &id, "claim").await {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            // A pool request claimed a moment ago by another expert of the same pool is no
            // longer visible to the rest: they lost the race, which is a conflict.
            return Err(if store::claimed_from_users_pool(&state.db, &id, &user.id).await? {
                ApiError::conflict(ErrorCode::InvalidTransition, "another expert of the pool claimed it first")
            } else {
                e
            });
        }
        Err(e) => return Err(e),
    };
    let done = async {
        if c.addressee_kind != AddresseeKind::Pool {
            return Err(ApiError::conflict(ErrorCode::NotAPoolRequest, "only pool requests are claimed"));
        }
        let me =
            store::expert_facts(&state.db, &user.id).await?.ok_or_else(|| ApiError::forbidden("no expert profile"))?;
        if me.title < c.min_title || !store::has_specialty(&state.db, &user.id, &c.specialty).await? {
            return Err(ApiError::forbidden("your specialty or title does not meet the request"));
        }
        if c.pool_organisation_id.as_deref() != Some(me.organisation_id.as_str()) {
            return Err(ApiError::not_found("consultation"));
        }
        let mut tx = crate::audit::begin(&state.db).await?;
        let from = store::lock(&mut tx, &id).await?;
        store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Claim).await?;
        store::claim(&mut tx, &id, &user.id).await?;
        tx.audit(store::acted(&user, &c, "claim")).await?;
        tx.commit().await
    };
    store::acted(&user, &c, "claim").if_refused(&state.db, done.await).await?;
    taken_on(&state.db, &state.notifications, &state.config, &c, &user).await
}

async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<ReasonBody>,
) -> ApiResult<Json<ConsultationDetail>> {
    let reason = required_reason(&body)?;
    let c = store::load_to_act(&state.db, &user, &id, "cancel").await?;
    let done = async {
        if !(c.requested_by == user.id || user.role.is_manager()) {
            return Err(ApiError::forbidden("the requesting doctor or a coordinator cancels a consultation"));
        }
        let mut tx = crate::audit::begin(&state.db).await?;
        let from = store::lock(&mut tx, &id).await?;
        store::apply_locked(&mut tx, &id, from, Some(&user.id), &Action::Cancel { reason: reason.clone() }).await?;
        store::cancel_booked_appointments(&mut tx, &id, reason.as_str()).await?;
        tx.audit(store::acted(&user, &c, "cancel").detail(reason.as_str())).await?;
        tx.commit().await
    };
    store::acted(&user, &c, "cancel").if_refused(&state.db, done.await).await?;
    // A call going on closes for everyone in it, at once.
    state.accounts.access_changed(&id).await;
    tell_others(
        &state.db,
        &state.notifications,
        &c,
        &user,
        "cancelled",
        Text::new("consultation_cancelled"),
        reason.to_string(),
    )
    .await?;
    respond(&state.db, &state.config, &user, &id).await
}

async fn complete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<ConsultationDetail>> {
    let c = store::load_to_act(&state.db, &user, &id, "complete").await?;
    let done = async {
        let role = store::role_of(&state.db, &id, &user.id).await?;
        if !matches!(role, Some(ParticipantRole::Requester | ParticipantRole::Expert)) {
            return Err(ApiError::forbidden("the consultation's doctors complete it"));
        }
        // An expert invited to an MDT who has not accepted is not yet one of its doctors.
        if role == Some(ParticipantRole::Expert)
            && !crate::record::store::expert_has_accepted(&state.db, &id, &user.id).await?
        {
            return Err(ApiError::forbidden("an expert completes the consultation once they have accepted it"));
        }
        store::apply_audited(&state.db, &c, &user, &Action::Complete, "complete").await
    };
    store::acted(&user, &c, "complete").if_refused(&state.db, done.await).await?;
    tell_others(
        &state.db,
        &state.notifications,
        &c,
        &user,
        "completed",
        Text::new("consultation_completed"),
        String::new(),
    )
    .await?;
    respond(&state.db, &state.config, &user, &id).await
}

pub fn routes() -> Routes {
    Routes::new("consultations")
        .post(
            "/api/v1/consultations",
            "Request a consultation for a patient of the caller's centre (consent required)",
            create,
        )
        .body::<NewConsultation>()
        .json::<ConsultationDetail>(201)
        .errors(&[404, 409])
        .get(
            "/api/v1/consultations",
            "Consultations the caller may see (filters: state, mode, urgency, from, to)",
            list,
        )
        .query::<ListFilter>()
        .json::<crate::api::Page<ConsultationSummary>>(200)
        .get(
            "/api/v1/consultations/{id}",
            "One consultation with participants, consent, transitions and appointments",
            get_one,
        )
        .json::<ConsultationDetail>(200)
        .post("/api/v1/consultations/{id}/submit", "Send a draft request", submit)
        .json::<ConsultationDetail>(200)
        .errors(&[409])
        .post("/api/v1/consultations/{id}/accept", "The addressed expert accepts", accept)
        .json::<ConsultationDetail>(200)
        .errors(&[409])
        .post(
            "/api/v1/consultations/{id}/decline",
            "An expert declines with a reason (pool requests re-open matching)",
            decline,
        )
        .body::<ReasonBody>()
        .json::<serde_json::Value>(200)
        .errors(&[409])
        .post(
            "/api/v1/consultations/{id}/readdress",
            "The requesting doctor addresses a declined request anew (matching starts again)",
            readdress,
        )
        .body::<ReaddressBody>()
        .json::<ConsultationDetail>(200)
        .errors(&[409])
        .post("/api/v1/consultations/{id}/claim", "An expert takes a department-pool request (one wins)", claim)
        .json::<ConsultationDetail>(200)
        .errors(&[409])
        .post("/api/v1/consultations/{id}/cancel", "Cancel with a reason", cancel)
        .body::<ReasonBody>()
        .json::<ConsultationDetail>(200)
        .errors(&[409])
        .post("/api/v1/consultations/{id}/complete", "Complete the consultation", complete)
        .json::<ConsultationDetail>(200)
        .errors(&[409])
}
