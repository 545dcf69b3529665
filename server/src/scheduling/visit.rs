//! How a consultation, its appointment and its call agree: the rules live with the
//! consultation they move, in [`crate::consultations::visit`]; this name is kept for the
//! signaling hub, the kiosk and the record that call them.

pub use crate::consultations::visit::*;
