//! Where rows go. So far the embedded warehouse, DuckDB.

pub mod duckdb;

pub use self::duckdb::DuckDb;
