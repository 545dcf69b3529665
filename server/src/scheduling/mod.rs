//! Scheduling: when an expert can be booked, and the appointments booked.
//!
//! The pure rules (which slots an expert's weekly availability, exceptions and existing
//! appointments leave open) live in [`slots`] and know nothing of storage or HTTP;
//! [`store`] holds all of scheduling's SQL, [`availability`] and [`appointments`] serve them,
//! and [`candidates`] ranks experts for a request with their earliest free slot.
//!
//! Scheduling sits above consultations: booking an appointment moves its consultation
//! through the lifecycle (`consultations::store`), and the rules of the visit (when the room
//! opens, how the appointment closes) live with the consultation ([`visit`] re-exports them).

pub mod appointments;
pub mod availability;
pub mod candidates;
pub mod roster;
pub mod slots;
pub mod store;
pub mod visit;

use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult, FieldError};
use chrono::{DateTime, Utc};

/// The latest start an appointment may be booked at from `now` (`booking_horizon_days`).
pub fn booking_horizon(config: &crate::config::Config, now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::days(i64::from(config.booking_horizon_days))
}

/// Refuses a booking, slot or exception time further ahead than the booking horizon: 422
/// `beyond_booking_horizon` naming `field`.
pub fn within_horizon(config: &crate::config::Config, field: &str, t: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    if t <= booking_horizon(config, Utc::now()) {
        return Ok(t);
    }
    let message = format!("at most {} days ahead", config.booking_horizon_days);
    let mut e = ApiError::unprocessable(ErrorCode::BeyondBookingHorizon, format!("{field}: {message}"));
    e.errors.push(FieldError { field: field.to_string(), message });
    Err(e)
}

pub fn routes() -> crate::api::Routes {
    availability::routes().merge(appointments::routes()).merge(candidates::routes())
}
