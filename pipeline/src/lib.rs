//! The pipeline: raw events from Kafka (or files) into the star schema. `transforms` is
//! the pure core; `sources` read messages, `sinks` write rows, `runner` joins them,
//! `metrics` and `serve` report on it.

pub mod batch;
pub mod error;
pub mod metrics;
pub mod runner;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod transforms;

pub use error::PipelineError;
