//! The pipeline: raw events from Kafka (or files) into the star schema. `transforms` is
//! the pure core; `sources` read messages, `sinks` write rows, `runner` joins them,
//! `metrics` and `serve` report on it, `analytics` reads the KPIs back.

pub mod analytics;
pub mod batch;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod runner;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod transforms;

pub use error::PipelineError;
