//! The vocabulary shared by HTTP, the stores and signaling: the states and kinds each area
//! stores as text, as enums with the same snake_case names on the wire and in the database,
//! that decode a stored value or refuse it.

pub mod files;
pub mod people;
pub mod record;
pub mod vitals;
