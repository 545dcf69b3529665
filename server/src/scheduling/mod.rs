//! Scheduling: when an expert can be booked, and the appointments booked.
//!
//! The pure rules (which slots an expert's weekly availability, exceptions and existing
//! appointments leave open) live in [`slots`] and know nothing of storage or HTTP;
//! [`store`] loads their inputs, [`availability`] and [`appointments`] serve them.

pub mod appointments;
pub mod availability;
pub mod slots;
pub mod store;
pub mod visit;

pub fn routes() -> crate::api::Routes {
    availability::routes().merge(appointments::routes())
}
