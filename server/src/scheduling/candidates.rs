//! Expert candidates for a consultation request: the matching rules of
//! [`crate::consultations::matching`] fed with each expert's specialties, open workload and
//! earliest free slot, which is why they are served here, above the calendar.

use super::roster::StandingCalendar;
use super::slots::first_free_slot;
use crate::api::{Json, Path, Routes};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::consultations::matching::{self, CandidateInput};
use crate::consultations::state::{Title, Urgency};
use crate::consultations::store as cstore;
use crate::db::{Db, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Candidates {
    pub items: Vec<matching::RankedCandidate>,
    pub next: Option<String>,
}

async fn candidates(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<Candidates>> {
    let c = cstore::load_for(&state.db, &user, &id, "match").await?;
    let criteria = Criteria { specialty: c.specialty.clone(), min_title: c.min_title, urgency: c.urgency };
    let items = rank_candidates(&state.db, &criteria, &c.requesting_organisation_id).await?;
    Ok(Json(Candidates { items, next: None }))
}

/// What a request asks of its expert: the criteria matching ranks candidates on.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    pub specialty: String,
    pub min_title: Title,
    pub urgency: Urgency,
}

/// Ranks candidates for criteria that are not (yet) a stored request, as if the caller's
/// centre requested them. No patient data is read or sent, so no audit event is recorded.
async fn candidates_for_criteria(
    State(state): State<AppState>,
    user: AuthUser,
    Json(criteria): Json<Criteria>,
) -> ApiResult<Json<Candidates>> {
    user.require(&[Role::CommunityDoctor])?;
    if !cstore::specialty_exists(&state.db, &criteria.specialty).await? {
        return Err(ApiError::validation("specialty", "not a known specialty"));
    }
    let items = rank_candidates(&state.db, &criteria, &user.org).await?;
    Ok(Json(Candidates { items, next: None }))
}

/// The active experts of the criteria's specialty, ranked by [`matching::rank`] for a request
/// from `requesting_org`. Reads in five statements however many experts practise the
/// specialty (the active experts, the centre's links, their open workloads, and what moves in
/// their calendars: [`super::store::moving_of_specialty`]), with the standing part of their
/// calendars and their specialties from the instance's roster
/// ([`super::store::roster_of_specialty`], three more statements when it is read again), then
/// finds each earliest free slot in memory.
async fn rank_candidates(
    db: &Db,
    criteria: &Criteria,
    requesting_org: &str,
) -> ApiResult<Vec<matching::RankedCandidate>> {
    let now = Utc::now();
    let horizon = now + Duration::days(14);
    let experts = cstore::experts_of_specialty(db, &criteria.specialty).await?;
    let linked = cstore::linked_hospitals(db, requesting_org).await?;
    let open = cstore::open_consultations_of_experts(db, &criteria.specialty).await?;
    let roster = super::store::roster_of_specialty(db, &criteria.specialty).await?;
    let mut moving = super::store::moving_of_specialty(db, &criteria.specialty, now, horizon).await?;
    let no_calendar = StandingCalendar::default();
    let mut inputs = Vec::with_capacity(experts.len());
    for e in experts {
        let mut specialties = roster.specialties.get(&e.id).cloned().unwrap_or_default();
        // The requested specialty first: it is the one this request is matched on.
        specialties.sort_by_key(|s| *s != criteria.specialty);
        let standing = roster.calendars.get(&e.id).unwrap_or(&no_calendar);
        let (exceptions, busy) = moving.remove(&e.id).unwrap_or_default();
        let earliest = first_free_slot(&standing.rules, &exceptions, &busy, &standing.policy, now, now, horizon)
            .ok()
            .flatten()
            .map(|slot| slot.start);
        inputs.push(CandidateInput {
            expert_id: uuid::Uuid::parse_str(&e.id).map_err(ApiError::internal)?,
            name: e.display_name,
            specialties,
            title: e.title,
            organisation_linked: linked.contains(&e.organisation_id),
            earliest_slot: earliest,
            open_consultations: open.get(&e.id).map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX)),
        });
    }
    let request = matching::Request {
        specialty: criteria.specialty.clone(),
        min_title: criteria.min_title,
        urgency: criteria.urgency,
        now,
    };
    Ok(matching::rank(&request, inputs))
}

pub fn routes() -> Routes {
    // Listed with the consultations they rank experts for.
    Routes::new("consultations")
        .get("/api/v1/consultations/{id}/candidates", "Experts ranked for this request, with reasons", candidates)
        .json::<Candidates>(200)
        .post(
            "/api/v1/consultations/candidates",
            "Experts ranked for request criteria not yet saved (specialty, min_title, urgency), for the caller's centre",
            candidates_for_criteria,
        )
        .body::<Criteria>()
        .json::<Candidates>(200)
}
