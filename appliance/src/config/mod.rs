//! The first-boot file: its schema, parsing and validation.
mod schema;

pub use schema::*;
