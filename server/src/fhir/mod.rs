//! A read-only HL7 FHIR R4 facade under `/fhir/r4` (JSON, `application/fhir+json`) for
//! regional health platforms and FHIR clients: patients, practitioners, organisations,
//! schedules and slots, and each consultation's story (request and consent, appointment,
//! live session and chat, shared files and images, ECG measurements, the signed opinion,
//! referrals and follow-up). The platform's own API stays the source of truth.
//!
//! [`map`] holds the pure mappings from the platform's rows to FHIR JSON, [`search`] the
//! search surface (parameters, dates, includes, paging, the CapabilityStatement), and
//! [`routes`] the endpoints that load through the shared stores and access helpers.

pub mod map;
pub mod routes;
pub mod search;
pub mod store;

pub use routes::routes;
