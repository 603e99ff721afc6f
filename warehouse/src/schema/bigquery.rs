//! BigQuery renderings of the tables: DDL, JSON table schemas and a manifest for Terraform.
//!
//! In BigQuery every table is written by appending only, so that no statement of the
//! pipeline's hot path is DML (BigQuery allows few at a time per table, and cancels
//! concurrent transactions that touch one): rows go to `<table>_log`, stamped with when
//! they were appended, and `<table>` is a view of the current rows, as DuckDB's table of
//! the same name holds them. Of the rows of one primary key, the view keeps the first
//! appended where DuckDB inserts if absent, and the last where DuckDB replaces (facts,
//! and `user_dim`, whose rows close versions); `event_fact` also applies the closes of
//! superseded listen facts, appended to [`SUPERSEDED_EVENT_FACTS`]'s log.

use std::fmt::Write as _;

use super::{ColumnType, TABLES, Table, TableKind};
use crate::analytics::Dialect;

/// The column every appended row carries: when the pipeline appended it (strictly
/// increasing for one writer), which orders the rows of one key.
pub const LOADED_AT: &str = "_loaded_at";

/// The listen facts a later version of their session superseded: `event_fact`'s view
/// closes them, as DuckDB updates them in place.
pub const SUPERSEDED_EVENT_FACTS: Table = Table {
    name: "superseded_event_facts",
    kind: TableKind::Operational,
    description: "Listen-fact versions superseded by a later version of their session: event_fact closes its rows of the session and version.",
    columns: &[
        super::required(
            "session_key",
            ColumnType::Int64,
            "The session whose version was superseded.",
        ),
        super::required(
            "valid_from",
            ColumnType::Timestamp,
            "record_valid_from of the superseded version.",
        ),
        super::required(
            "valid_to",
            ColumnType::Timestamp,
            "When the next version began: the superseded rows' record_valid_to.",
        ),
    ],
    primary_key: &["session_key", "valid_from"],
    key_enforced: false,
    partition_by: None,
    cluster_by: &["session_key"],
};

/// Every table rows are appended to: the warehouse's and [`SUPERSEDED_EVENT_FACTS`].
pub fn log_tables() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().copied().chain([&SUPERSEDED_EVENT_FACTS])
}

/// The name of the table `table`'s rows are appended to.
pub fn log_table(table: &Table) -> String {
    format!("{}_log", table.name)
}

/// The GoogleSQL type of a column type.
pub fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int64 => "INT64",
        ColumnType::Float64 => "FLOAT64",
        ColumnType::Bool => "BOOL",
        ColumnType::String => "STRING",
        ColumnType::Bytes => "BYTES",
        ColumnType::Timestamp => "TIMESTAMP",
        ColumnType::Date => "DATE",
    }
}

/// The type name of the JSON schema format. The API answers with these legacy names, so
/// using them keeps Terraform from seeing a change on every plan.
pub fn json_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int64 => "INTEGER",
        ColumnType::Float64 => "FLOAT",
        ColumnType::Bool => "BOOLEAN",
        ColumnType::String => "STRING",
        ColumnType::Bytes => "BYTES",
        ColumnType::Timestamp => "TIMESTAMP",
        ColumnType::Date => "DATE",
    }
}

/// The `PARTITION BY` expression: a timestamp partitions by its UTC date.
pub fn partition_expression(table: &Table) -> Option<String> {
    let name = table.partition_by?;
    let column = table.column(name)?;
    Some(match column.ty {
        ColumnType::Date => format!("`{name}`"),
        _ => format!("DATE(`{name}`)"),
    })
}

/// `CREATE TABLE IF NOT EXISTS` for a table's log. Names are unqualified: run it with
/// the target dataset as the job's default dataset. No primary key is declared: a log
/// holds every appended row of a key.
pub fn create_table(table: &Table) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS `{}` (\n", log_table(table));
    for column in table.columns {
        let not_null = if column.nullable { "" } else { " NOT NULL" };
        let _ = writeln!(
            sql,
            "  `{}` {}{not_null} OPTIONS (description = {}),",
            column.name,
            sql_type(column.ty),
            string_literal(column.description)
        );
    }
    let _ = writeln!(
        sql,
        "  `{LOADED_AT}` TIMESTAMP NOT NULL OPTIONS (description = {})",
        string_literal(LOADED_AT_DESCRIPTION)
    );
    sql.push(')');
    if let Some(partition) = partition_expression(table) {
        let _ = write!(sql, "\nPARTITION BY {partition}");
    }
    if !table.cluster_by.is_empty() {
        let _ = write!(sql, "\nCLUSTER BY {}", quoted_list(table.cluster_by));
    }
    let _ = write!(
        sql,
        "\nOPTIONS (description = {});",
        string_literal(&log_description(table))
    );
    sql
}

const LOADED_AT_DESCRIPTION: &str =
    "When the pipeline appended the row; orders the rows of one key for the current view.";

fn log_description(table: &Table) -> String {
    format!(
        "Every row appended for {}, the view of the current ones: {}",
        table.name, table.description
    )
}

/// Whether a later row of a key replaces the earlier (as DuckDB's `INSERT OR REPLACE`
/// and version closes do) rather than being ignored (`INSERT OR IGNORE`).
fn later_rows_win(table: &Table) -> bool {
    table.rows_change()
}

/// The `SELECT` of `table`'s current rows from its log, with `${dataset}` standing for
/// `project.dataset` (see [`crate::analytics::instantiate`]).
pub fn current_view(table: &Table) -> String {
    let order = if later_rows_win(table) { "DESC" } else { "ASC" };
    let latest = format!(
        "SELECT * EXCEPT (`{LOADED_AT}`) FROM {}\nQUALIFY ROW_NUMBER() OVER (PARTITION BY {} ORDER BY `{LOADED_AT}` {order}) = 1",
        Dialect::BigQuery.table(&log_table(table)),
        quoted_list(table.primary_key)
    );
    if table.name != "event_fact" {
        return latest;
    }
    format!(
        "SELECT f.* REPLACE (\n  IFNULL(c.valid_to, f.record_valid_to) AS record_valid_to,\n  f.is_record_valid AND c.valid_to IS NULL AS is_record_valid)\n\
         FROM ({latest}) AS f\n\
         LEFT JOIN (SELECT session_key, valid_from, MIN(valid_to) AS valid_to FROM {} GROUP BY session_key, valid_from) AS c\n\
         ON f.session_key = c.session_key AND f.record_valid_from = c.valid_from",
        Dialect::BigQuery.table(&log_table(&SUPERSEDED_EVENT_FACTS))
    )
}

/// `CREATE OR REPLACE VIEW` of every table's current rows, one script.
pub fn current_views_script() -> String {
    TABLES
        .iter()
        .map(|table| {
            format!(
                "CREATE OR REPLACE VIEW {}\nOPTIONS (description = {})\nAS {};\n",
                Dialect::BigQuery.table(table.name),
                string_literal(table.description),
                current_view(table)
            )
        })
        .collect()
}

/// The DDL of every log table and current view, as one script.
pub fn schema_script() -> String {
    let mut sql = String::from(super::GENERATED_HEADER);
    sql.push_str(
        "-- BigQuery: run with the target dataset as the default dataset, after replacing\n",
    );
    sql.push_str("-- ${dataset} with project.dataset.\n");
    for table in log_tables() {
        sql.push('\n');
        sql.push_str(&create_table(table));
        sql.push('\n');
    }
    sql.push('\n');
    sql.push_str(&current_views_script());
    sql
}

/// The schema of the table's log in the JSON format of `bq mk --schema` and
/// Terraform's `google_bigquery_table.schema`: its columns, then [`LOADED_AT`].
pub fn json_schema(table: &Table) -> String {
    let mut columns: Vec<serde_json::Value> = table
        .columns
        .iter()
        .map(|column| {
            serde_json::json!({
                "name": column.name,
                "type": json_type(column.ty),
                "mode": if column.nullable { "NULLABLE" } else { "REQUIRED" },
                "description": column.description,
            })
        })
        .collect();
    columns.push(serde_json::json!({
        "name": LOADED_AT,
        "type": json_type(ColumnType::Timestamp),
        "mode": "REQUIRED",
        "description": LOADED_AT_DESCRIPTION,
    }));
    pretty(&serde_json::Value::Array(columns))
}

/// What Terraform needs beside the schemas: one entry per log table (partitioning,
/// clustering, the schema file) and one per current view (the query file).
pub fn manifest() -> String {
    let tables: Vec<serde_json::Value> = log_tables()
        .map(|table| {
            serde_json::json!({
                "name": log_table(table),
                "kind": format!("{:?}", table.kind).to_lowercase(),
                "description": log_description(table),
                "schema_file": format!("schemas/{}.json", table.name),
                "partition_field": table.partition_by,
                "clustering": table.cluster_by,
            })
        })
        .collect();
    let views: Vec<serde_json::Value> = TABLES
        .iter()
        .map(|table| {
            serde_json::json!({
                "name": table.name,
                "description": table.description,
                "query_file": format!("current/{}.sql", table.name),
                "primary_key": table.primary_key,
            })
        })
        .collect();
    pretty(&serde_json::json!({ "tables": tables, "current_views": views }))
}

fn pretty(value: &serde_json::Value) -> String {
    // Serializing a `Value` built from strings and arrays cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A GoogleSQL double-quoted string literal.
pub(crate) fn string_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for ch in text.chars() {
        match ch {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push_str("\\n"),
            ch => literal.push(ch),
        }
    }
    literal.push('"');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{DEAD_LETTERS, EVENT_FACT, SONG_DIM};

    #[test]
    fn a_dimension_log_has_the_columns_the_stamp_and_clustering_but_no_key_or_partition() {
        assert_eq!(
            create_table(&SONG_DIM),
            r#"CREATE TABLE IF NOT EXISTS `song_dim_log` (
  `song_key` INT64 NOT NULL OPTIONS (description = "Song key: FARM_FINGERPRINT of song_dim, artist and song."),
  `artist` STRING NOT NULL OPTIONS (description = "Artist name as the event gave it."),
  `song` STRING NOT NULL OPTIONS (description = "Song title as the event gave it."),
  `_loaded_at` TIMESTAMP NOT NULL OPTIONS (description = "When the pipeline appended the row; orders the rows of one key for the current view.")
)
CLUSTER BY `artist`
OPTIONS (description = "Every row appended for song_dim, the view of the current ones: Songs that were listened to, one row per artist and title.");"#
        );
    }

    #[test]
    fn current_views_keep_the_first_row_of_a_dimension_and_the_last_of_a_fact() {
        assert_eq!(
            current_view(&SONG_DIM),
            "SELECT * EXCEPT (`_loaded_at`) FROM `${dataset}.song_dim_log`\n\
             QUALIFY ROW_NUMBER() OVER (PARTITION BY `song_key` ORDER BY `_loaded_at` ASC) = 1"
        );
        let fact = current_view(&EVENT_FACT);
        assert!(
            fact.contains(
                "PARTITION BY `event_key`, `record_valid_from` ORDER BY `_loaded_at` DESC"
            ),
            "{fact}"
        );
        assert!(
            fact.contains("FROM `${dataset}.superseded_event_facts_log`"),
            "event_fact applies the closes: {fact}"
        );
        assert!(!current_view(&DEAD_LETTERS).contains("DESC"));
    }

    #[test]
    fn facts_are_partitioned_by_event_date() {
        let ddl = create_table(&EVENT_FACT);
        assert!(
            ddl.contains("\nPARTITION BY DATE(`timestamp`)\nCLUSTER BY `user_id`, `song_key`\n"),
            "{ddl}"
        );
        assert!(!ddl.contains("PRIMARY KEY"), "{ddl}");
        assert!(
            ddl.contains("`is_song_skipped` BOOL OPTIONS"),
            "nullable columns have no NOT NULL"
        );
    }

    #[test]
    fn backslashes_in_descriptions_are_escaped() {
        assert_eq!(string_literal(r#"a\N "b""#), r#""a\\N \"b\"""#);
    }

    #[test]
    fn json_schema_uses_legacy_type_names_and_modes() {
        let schema: serde_json::Value = serde_json::from_str(&json_schema(&DEAD_LETTERS)).unwrap();
        assert_eq!(schema[0]["name"], "source_topic");
        assert_eq!(schema[1]["type"], "INTEGER");
        assert_eq!(schema[4]["mode"], "NULLABLE");
        assert_eq!(schema[6]["type"], "BYTES");
        let last = schema.as_array().unwrap().last().unwrap();
        assert_eq!(last["name"], LOADED_AT);
        assert_eq!(last["mode"], "REQUIRED");
    }
}
