//! The single source of truth of music-analytics' data contracts: the raw eventsim
//! events, the star schema, surrogate keys, the KPI views, the data-quality checks, and the
//! DDL generated from them.
//!
//! This crate depends on no other crate of the workspace and does no IO.

pub mod analytics;
pub mod codegen;
pub mod error;
pub mod keys;
pub mod quality;
pub mod raw;
pub mod schema;
pub mod time;

pub use error::{Classify, ErrorClass};
