//! The pipeline's errors, each classed as retryable, bad data or a bug: the runner
//! retries the first and stops on the others (see `runner::Retry`).

use rdkafka::error::KafkaError;
use warehouse::{Classify, ErrorClass};

/// Any underlying error, kept whole as the cause rather than flattened into text.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The broker is unreachable or refused a request.
    #[error("Kafka: {doing}")]
    Kafka {
        doing: String,
        #[source]
        error: KafkaError,
    },
    /// librdkafka refuses the client settings themselves: fix them and start again.
    #[error("Kafka settings: {doing}")]
    KafkaSettings {
        doing: String,
        #[source]
        error: KafkaError,
    },
    /// The warehouse could not be opened, read or written.
    #[error("DuckDB ({path}): {doing}")]
    DuckDb {
        path: String,
        doing: String,
        #[source]
        error: duckdb::Error,
    },
    /// A Parquet staging file could not be written.
    #[error("staging ({location}): {doing}")]
    Staging {
        location: String,
        doing: String,
        #[source]
        error: Cause,
    },
    /// BigQuery refused or failed a request; `retryable` after retries ran out means it
    /// kept failing (throttling, server errors, the network).
    #[error("BigQuery: {message}")]
    BigQuery { message: String, retryable: bool },
    /// A file or folder could not be read or made.
    #[error("{doing}")]
    Io {
        doing: String,
        #[source]
        error: std::io::Error,
    },
    /// The HTTP endpoint's address cannot be listened on (taken, or not an address).
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        error: std::io::Error,
    },
    /// A setting or argument that cannot work, such as a malformed date.
    #[error("{0}")]
    Setting(String),
    /// What the warehouse holds cannot be resumed from (a checkpoint of another version).
    #[error("{0}")]
    Incompatible(String),
    /// Another pipeline took over this one's instance name (its checkpoint log): this
    /// one must stop rather than commit over the newer one's checkpoints.
    #[error("{0}")]
    Fenced(String),
    /// Something that should not happen, such as Arrow refusing our own batches.
    #[error("internal error: {0}")]
    Bug(String),
}

impl PipelineError {
    pub fn kafka(doing: impl Into<String>) -> impl FnOnce(KafkaError) -> PipelineError {
        let doing = doing.into();
        move |error| PipelineError::Kafka { doing, error }
    }

    /// The settings themselves refused by librdkafka, as `who` (a client) reports it.
    pub fn kafka_settings(who: &str) -> impl FnOnce(KafkaError) -> PipelineError {
        let doing = format!("{who} refuses its settings");
        move |error| PipelineError::KafkaSettings { doing, error }
    }

    pub fn duckdb(
        path: impl Into<String>,
        doing: impl Into<String>,
    ) -> impl FnOnce(duckdb::Error) -> PipelineError {
        let (path, doing) = (path.into(), doing.into());
        move |error| PipelineError::DuckDb { path, doing, error }
    }

    pub fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> PipelineError {
        let doing = doing.into();
        move |error| PipelineError::Io { doing, error }
    }
}

impl Classify for PipelineError {
    fn class(&self) -> ErrorClass {
        match self {
            PipelineError::Kafka { .. }
            | PipelineError::Staging { .. }
            | PipelineError::Io { .. }
            | PipelineError::BigQuery {
                retryable: true, ..
            } => ErrorClass::Retryable,
            PipelineError::DuckDb { error, .. } => duckdb_class(error),
            // A request BigQuery refuses (credentials, permissions, a bad schema) fails
            // the same way when retried; so do settings, a warehouse of another kind and
            // a pipeline whose instance another took over.
            PipelineError::KafkaSettings { .. }
            | PipelineError::Bind { .. }
            | PipelineError::Setting(_)
            | PipelineError::Incompatible(_)
            | PipelineError::Fenced(_)
            | PipelineError::BigQuery {
                retryable: false, ..
            } => ErrorClass::BadData,
            PipelineError::Bug(_) => ErrorClass::Bug,
        }
    }
}

/// DuckDB reports its error kind as the message's first words. A broken key constraint
/// means the pipeline wrote a row twice, which its design rules out; a table or column
/// that does not bind means the file holds another schema; anything else (I/O, a full
/// disk, a lock, memory) may pass.
fn duckdb_class(error: &duckdb::Error) -> ErrorClass {
    let text = error.to_string();
    if text.starts_with("Constraint Error") {
        ErrorClass::Bug
    } else if ["Catalog Error", "Binder Error", "Parser Error"]
        .iter()
        .any(|kind| text.starts_with(kind))
    {
        ErrorClass::BadData
    } else {
        ErrorClass::Retryable
    }
}

/// An error with its causes, one after the other: what logs and messages show.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_errors_are_classed_by_their_kind() {
        let connection = duckdb::Connection::open_in_memory().unwrap();
        let class = |sql: &str| {
            let error = connection.execute_batch(sql).unwrap_err();
            PipelineError::duckdb("memory", "test")(error).class()
        };
        connection
            .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)")
            .unwrap();
        assert_eq!(class("INSERT INTO t VALUES (1)"), ErrorClass::Bug);
        assert_eq!(class("SELECT * FROM missing"), ErrorClass::BadData);
        assert_eq!(
            class("COPY t FROM '/nonexistent/folder/file.csv'"),
            ErrorClass::Retryable
        );
    }

    #[test]
    fn the_chain_shows_every_cause() {
        let error = PipelineError::Bind {
            address: "nowhere:1".to_owned(),
            error: std::io::Error::other("no such host"),
        };
        assert_eq!(chain(&error), "cannot listen on nowhere:1: no such host");
        assert_eq!(error.class(), ErrorClass::BadData);
    }
}
