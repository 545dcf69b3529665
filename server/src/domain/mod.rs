//! The vocabulary shared by HTTP, the stores and signaling: the states and kinds each area
//! stores as text, as enums with the same snake_case names on the wire and in the database
//! (snake_case), each decoding a stored value with an error on an unknown one, never a default.

pub mod consultation;
pub mod files;
pub mod people;
pub mod record;
pub mod time;
pub mod vitals;
