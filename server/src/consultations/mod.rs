//! Consultations: a community doctor's request for an expert, from submission to the signed
//! opinion.
//!
//! The pure rules live in [`state`] (the lifecycle: which action may move a consultation
//! from which state, and the vocabulary of urgency, mode and professional title),
//! [`matching`] (which experts to propose, in what order, and why) and [`visit`] (how a
//! consultation, its appointment and its call agree). [`store`] holds all their SQL and
//! [`routes`] serves them over HTTP.
//!
//! Consultations sit below scheduling: an appointment is booked for a consultation and moves
//! it through its lifecycle, so scheduling uses this module, never the reverse. What a
//! consultation shows of its appointments ([`AppointmentView`]) is read here.

pub mod matching;
pub mod routes;
pub mod state;
pub mod store;
pub mod visit;

pub use routes::routes;

use crate::domain::consultation::{
    AddresseeKind, AppointmentStatus, ConsentGiver, ConsentMethod, ParticipantRole, ParticipantStatus,
};
use serde::Serialize;
use state::{Mode, State, Title, Urgency};

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Participant {
    pub user_id: String,
    pub name: String,
    pub role: ParticipantRole,
    pub status: ParticipantStatus,
    pub reason: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Transition {
    #[sqlx(try_from = "String")]
    pub from_state: State,
    #[sqlx(try_from = "String")]
    pub to_state: State,
    pub action: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ConsentView {
    #[sqlx(try_from = "String")]
    pub given_by: ConsentGiver,
    pub guardian_name: String,
    #[sqlx(try_from = "String")]
    pub method: ConsentMethod,
    pub given_at: String,
    pub witness_id: String,
    pub witness_name: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ConsultationSummary {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub requesting_organisation_id: String,
    pub requesting_organisation_name: String,
    pub requested_by: String,
    pub requested_by_name: String,
    pub reason: String,
    pub record_summary: String,
    pub specialty: String,
    #[sqlx(try_from = "String")]
    pub min_title: Title,
    #[sqlx(try_from = "String")]
    pub urgency: Urgency,
    #[sqlx(try_from = "String")]
    pub mode: Mode,
    #[sqlx(try_from = "String")]
    pub addressee_kind: AddresseeKind,
    pub pool_organisation_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: State,
    pub assigned_expert_id: Option<String>,
    pub assigned_expert_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConsultationDetail {
    #[serde(flatten)]
    pub summary: ConsultationSummary,
    pub my_role: Option<ParticipantRole>,
    pub participants: Vec<Participant>,
    pub consent: Option<ConsentView>,
    pub transitions: Vec<Transition>,
    pub appointments: Vec<AppointmentView>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AppointmentView {
    pub id: String,
    pub consultation_id: String,
    pub expert_id: String,
    pub expert_name: String,
    pub patient_id: String,
    pub start: String,
    pub end: String,
    pub status: AppointmentStatus,
    pub cancel_reason: String,
    pub replaced_by: Option<String>,
    /// For a booked appointment seen with its consultation: when the call's room opens (UTC).
    /// Absent when it opens at once (urgent requests) or the appointment is not booked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_opens_at: Option<String>,
    /// For a booked appointment seen with its consultation: from when a participant who did
    /// not come may be recorded as a no-show (UTC; `no_show_after_mins` after the start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_show_from: Option<String>,
}
