//! The pipeline's errors, each classed as retryable, bad data or a bug.

use warehouse::{Classify, ErrorClass};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The broker is unreachable or refused a request.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The warehouse could not be opened or written.
    #[error("DuckDB ({path}): {message}")]
    DuckDb { path: String, message: String },
    /// A Parquet staging file could not be written.
    #[error("staging ({location}): {message}")]
    Staging { location: String, message: String },
    /// BigQuery refused or failed a request; `retryable` after retries ran out means it
    /// kept failing (throttling, server errors, the network).
    #[error("BigQuery: {message}")]
    BigQuery { message: String, retryable: bool },
    /// An input file could not be read.
    #[error("cannot read {path}: {error}")]
    Input { path: String, error: std::io::Error },
    /// What the warehouse holds cannot be resumed from (a checkpoint of another version).
    #[error("{0}")]
    Incompatible(String),
    /// Something that should not happen, such as Arrow refusing our own batches.
    #[error("internal error: {0}")]
    Bug(String),
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Kafka(_)
            | PipelineError::DuckDb { .. }
            | PipelineError::Staging { .. }
            | PipelineError::Input { .. }
            | PipelineError::BigQuery {
                retryable: true, ..
            } => ErrorClass::Retryable,
            // A request BigQuery refuses (credentials, permissions, a bad schema) fails
            // the same way when retried.
            PipelineError::Incompatible(_)
            | PipelineError::BigQuery {
                retryable: false, ..
            } => ErrorClass::BadData,
            PipelineError::Bug(_) => ErrorClass::Bug,
        }
    }
}
