//! The shared vocabulary of the domains: the enumerations that HTTP bodies, stored rows and
//! the signaling protocol spell alike (snake_case, the same strings on the wire and in the
//! database). Each decodes a stored value with an error on an unknown one, never a default.

pub mod consultation;
pub mod time;
