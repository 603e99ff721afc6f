//! BigQuery renderings of the tables: DDL, JSON table schemas and a manifest for Terraform.

use std::fmt::Write as _;

use super::{ColumnType, TABLES, Table};

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

/// `CREATE TABLE IF NOT EXISTS` for one table. Names are unqualified: run it with the
/// target dataset as the job's default dataset.
pub fn create_table(table: &Table) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS `{}` (\n", table.name);
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
        "  PRIMARY KEY ({}) NOT ENFORCED",
        quoted_list(table.primary_key)
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
        string_literal(table.description)
    );
    sql
}

/// A `MERGE` of `source` into `target` (both fully qualified, unquoted) on the table's
/// primary key: rows that can change are updated, new rows inserted, so that merging the
/// same rows twice leaves one copy.
pub fn merge(table: &Table, target: &str, source: &str) -> String {
    let on = table
        .primary_key
        .iter()
        .map(|k| format!("T.`{k}` = S.`{k}`"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut sql = format!("MERGE `{target}` T USING `{source}` S ON {on}");
    let updates: Vec<String> = table
        .non_key_columns()
        .map(|c| format!("`{0}` = S.`{0}`", c.name))
        .collect();
    if table.rows_change() && !updates.is_empty() {
        let _ = write!(sql, "\nWHEN MATCHED THEN UPDATE SET {}", updates.join(", "));
    }
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let values: Vec<String> = names.iter().map(|n| format!("S.`{n}`")).collect();
    // Columns are listed: `INSERT ROW` is not understood everywhere.
    let _ = write!(
        sql,
        "\nWHEN NOT MATCHED THEN INSERT ({}) VALUES ({});",
        quoted_list(&names),
        values.join(", ")
    );
    sql
}

/// The DDL of every table, as one script.
pub fn schema_script() -> String {
    let mut sql = String::from(super::GENERATED_HEADER);
    sql.push_str("-- BigQuery: run with the target dataset as the default dataset.\n");
    for table in TABLES {
        sql.push('\n');
        sql.push_str(&create_table(table));
        sql.push('\n');
    }
    sql
}

/// The table's schema in the JSON format of `bq mk --schema` and Terraform's
/// `google_bigquery_table.schema`.
pub fn json_schema(table: &Table) -> String {
    let columns: Vec<serde_json::Value> = table
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
    pretty(&serde_json::Value::Array(columns))
}

/// One entry per table with what Terraform needs beside the schema: partitioning,
/// clustering and the schema file.
pub fn manifest() -> String {
    let tables: Vec<serde_json::Value> = TABLES
        .iter()
        .map(|table| {
            serde_json::json!({
                "name": table.name,
                "kind": format!("{:?}", table.kind).to_lowercase(),
                "description": table.description,
                "schema_file": format!("schemas/{}.json", table.name),
                "primary_key": table.primary_key,
                "partition_field": table.partition_by,
                "clustering": table.cluster_by,
            })
        })
        .collect();
    pretty(&serde_json::json!({ "tables": tables }))
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
    fn dimension_ddl_has_key_and_clustering_but_no_partition() {
        assert_eq!(
            create_table(&SONG_DIM),
            r#"CREATE TABLE IF NOT EXISTS `song_dim` (
  `song_key` INT64 NOT NULL OPTIONS (description = "Song key: FARM_FINGERPRINT of song_dim, artist and song."),
  `artist` STRING NOT NULL OPTIONS (description = "Artist name as the event gave it."),
  `song` STRING NOT NULL OPTIONS (description = "Song title as the event gave it."),
  PRIMARY KEY (`song_key`) NOT ENFORCED
)
CLUSTER BY `artist`
OPTIONS (description = "Songs that were listened to, one row per artist and title.");"#
        );
    }

    #[test]
    fn merges_update_only_rows_that_can_change() {
        assert_eq!(
            merge(&SONG_DIM, "p.d.song_dim", "p.d.stage"),
            "MERGE `p.d.song_dim` T USING `p.d.stage` S ON T.`song_key` = S.`song_key`\n\
             WHEN NOT MATCHED THEN INSERT (`song_key`, `artist`, `song`) VALUES (S.`song_key`, S.`artist`, S.`song`);"
        );
        let fact = merge(&EVENT_FACT, "p.d.event_fact", "p.d.stage");
        assert!(
            fact.contains("ON T.`event_key` = S.`event_key` AND T.`record_valid_from` = S.`record_valid_from`\nWHEN MATCHED THEN UPDATE SET `user_key` = S.`user_key`, "),
            "{fact}"
        );
        assert!(
            !fact.contains("`event_key` = S.`event_key`,"),
            "keys are not updated: {fact}"
        );
        assert!(!merge(&DEAD_LETTERS, "t", "s").contains("WHEN MATCHED"));
    }

    #[test]
    fn facts_are_partitioned_by_event_date() {
        let ddl = create_table(&EVENT_FACT);
        assert!(
            ddl.contains("\nPARTITION BY DATE(`timestamp`)\nCLUSTER BY `user_id`, `song_key`\n"),
            "{ddl}"
        );
        assert!(ddl.contains("PRIMARY KEY (`event_key`, `record_valid_from`) NOT ENFORCED"));
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
    }
}
