//! Where events go: JSON-lines files (one per topic), stdout, Kafka, or nowhere (for
//! benchmarks). Every sink takes events in order, one JSON object each.

mod files;
mod kafka;

pub use files::{Files, Memory, Null, Stdout};
pub use kafka::{Kafka, KafkaOptions, KafkaReport};

use warehouse::raw::EventKind;
use warehouse::{Classify, ErrorClass};

/// A sink that cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("internal error: {0}")]
    Bug(String),
}

impl Classify for SinkError {
    fn class(&self) -> ErrorClass {
        match self {
            SinkError::Io { .. } | SinkError::Kafka(_) => ErrorClass::Retryable,
            SinkError::Bug(_) => ErrorClass::Bug,
        }
    }
}

pub trait Sink {
    /// Takes one event's JSON (without a newline); `key` is the user id, or the session
    /// id for events without user details.
    fn write(&mut self, kind: EventKind, key: i64, json: &[u8]) -> Result<(), SinkError>;

    /// Makes everything written so far durable (or delivered).
    fn flush(&mut self) -> Result<(), SinkError>;
}
