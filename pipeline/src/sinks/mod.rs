//! Where rows go: the embedded warehouse, DuckDB; and dead letters to Kafka.

pub mod dead_letter_topics;
pub mod duckdb;

pub use self::dead_letter_topics::DeadLetterTopics;
pub use self::duckdb::DuckDb;
