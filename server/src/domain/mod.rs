//! The vocabulary shared by HTTP, the stores and signaling: the states and kinds each area
//! stores as text, as enums that decode a stored value or refuse it.

pub mod files;
pub mod vitals;
