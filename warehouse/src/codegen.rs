//! The generated files under `warehouse/ddl/`, rendered in memory; `cargo xtask codegen`
//! writes them and `cargo xtask codegen --check` compares them with what is committed.

use crate::analytics::{self, Dialect, KPIS};
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
    files.extend(bigquery::log_tables().map(|table| GeneratedFile {
        path: format!("bigquery/schemas/{}.json", table.name),
        contents: bigquery::json_schema(table),
    }));
    // One file per current view: its SELECT, for Terraform's `templatefile`.
    files.extend(TABLES.iter().map(|table| GeneratedFile {
        path: format!("bigquery/current/{}.sql", table.name),
        contents: format!("{}\n", bigquery::current_view(table)),
    }));
    files.push(GeneratedFile {
        path: "duckdb/views.sql".into(),
        contents: analytics::views_script(Dialect::DuckDb),
    });
    files.push(GeneratedFile {
        path: "bigquery/views.sql".into(),
        contents: analytics::views_script(Dialect::BigQuery),
    });
    files.push(GeneratedFile {
        path: "bigquery/views.json".into(),
        contents: analytics::views_manifest(),
    });
    // One file per view: its SELECT, which Terraform's `templatefile` turns into a view.
    files.extend(KPIS.iter().map(|kpi| GeneratedFile {
        path: format!("bigquery/views/{}.sql", kpi.name),
        contents: format!(
            "{}
",
            kpi.view_sql(Dialect::BigQuery)
        ),
    }));
    files
}
