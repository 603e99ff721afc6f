//! The generated files under `warehouse/ddl/`, rendered in memory; `cargo xtask codegen`
//! writes them and `cargo xtask codegen --check` compares them with what is committed.

use crate::schema::{TABLES, bigquery, duckdb};

/// One generated file, its path relative to `warehouse/ddl/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: String,
}

/// Every generated file, in a fixed order.
pub fn generated_files() -> Vec<GeneratedFile> {
    let mut files = vec![
        GeneratedFile {
            path: "duckdb/schema.sql".into(),
            contents: duckdb::schema_script(),
        },
        GeneratedFile {
            path: "bigquery/schema.sql".into(),
            contents: bigquery::schema_script(),
        },
        GeneratedFile {
            path: "bigquery/tables.json".into(),
            contents: bigquery::manifest(),
        },
    ];
    files.extend(TABLES.iter().map(|table| GeneratedFile {
        path: format!("bigquery/schemas/{}.json", table.name),
        contents: bigquery::json_schema(table),
    }));
    files
}
