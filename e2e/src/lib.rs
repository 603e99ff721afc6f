//! What the end-to-end run and the pipeline's integration tests share: warehouse tables
//! read from DuckDB or the BigQuery emulator as comparable text.

pub mod tables;
