//! The user's files: the desired-state model, loading, validation, CSV import
//! and atomic edits of `config/*.json`.

pub mod model;

pub use model::*;
