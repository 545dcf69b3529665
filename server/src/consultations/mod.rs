//! Consultations: a community doctor's request for an expert, from submission to the signed
//! opinion.
//!
//! The pure rules live in [`state`] (the lifecycle: which action may move a consultation
//! from which state, and the vocabulary of urgency, mode and professional title) and
//! [`matching`] (which experts to propose, in what order, and why).

pub mod matching;
pub mod routes;
pub mod state;
pub mod store;

pub use routes::routes;
