//! The vocabulary shared by HTTP, storage and signaling: one enum per word, with the same
//! snake_case names on the wire and in the database.

pub mod people;
pub mod record;
