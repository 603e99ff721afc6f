//! DuckDB renderings of the tables: the DDL of the embedded warehouse file.

use std::fmt::Write as _;

use super::{ColumnType, TABLES, Table};

/// The DuckDB type of a column type.
pub fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int64 => "BIGINT",
        ColumnType::Float64 => "DOUBLE",
        ColumnType::Bool => "BOOLEAN",
        ColumnType::String => "VARCHAR",
        ColumnType::Bytes => "BLOB",
        ColumnType::Timestamp => "TIMESTAMPTZ",
        ColumnType::Date => "DATE",
    }
}

/// `CREATE TABLE IF NOT EXISTS` and the comments of one table. An enforced primary key
/// is declared, so that loads can use `INSERT OR IGNORE`; the others are named in the
/// table's comment.
pub fn create_table(table: &Table) -> String {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|column| {
            let not_null = if column.nullable { "" } else { " NOT NULL" };
            format!("  \"{}\" {}{not_null}", column.name, sql_type(column.ty))
        })
        .collect();
    let description = if table.key_enforced {
        let quoted: Vec<String> = table
            .primary_key
            .iter()
            .map(|name| format!("\"{name}\""))
            .collect();
        lines.push(format!("  PRIMARY KEY ({})", quoted.join(", ")));
        table.description.to_owned()
    } else {
        format!(
            "{} Unique on ({}) by construction; not enforced.",
            table.description,
            table.primary_key.join(", ")
        )
    };
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS \"{}\" (\n{}\n);",
        table.name,
        lines.join(",\n")
    );
    let _ = write!(
        sql,
        "\nCOMMENT ON TABLE \"{}\" IS {};",
        table.name,
        string_literal(&description)
    );
    for column in table.columns {
        let _ = write!(
            sql,
            "\nCOMMENT ON COLUMN \"{}\".\"{}\" IS {};",
            table.name,
            column.name,
            string_literal(column.description)
        );
    }
    sql
}

/// The DDL of every table, as one script.
pub fn schema_script() -> String {
    let mut sql = String::from(super::GENERATED_HEADER);
    sql.push_str("-- DuckDB: the embedded warehouse.\n");
    for table in TABLES {
        sql.push('\n');
        sql.push_str(&create_table(table));
        sql.push('\n');
    }
    sql
}

/// A SQL single-quoted string literal.
pub(crate) fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{DEAD_LETTERS, EVENT_SESSION_BRIDGE};

    #[test]
    fn bridge_ddl_names_its_unenforced_key_in_the_comment() {
        assert_eq!(
            create_table(&EVENT_SESSION_BRIDGE),
            r#"CREATE TABLE IF NOT EXISTS "event_session_bridge" (
  "session_key" BIGINT NOT NULL,
  "event_key" BIGINT NOT NULL
);
COMMENT ON TABLE "event_session_bridge" IS 'Which events belong to which session. Unique on (session_key, event_key) by construction; not enforced.';
COMMENT ON COLUMN "event_session_bridge"."session_key" IS 'Session key: FARM_FINGERPRINT of session_dim, session_id and user_id (\N for guests).';
COMMENT ON COLUMN "event_session_bridge"."event_key" IS 'Event key: FARM_FINGERPRINT of event_dim, session_id, item_in_session and ts in epoch milliseconds.';"#
        );
    }

    #[test]
    fn an_enforced_composite_key_is_declared() {
        let ddl = create_table(&DEAD_LETTERS);
        assert!(
            ddl.contains(
                "  \"received_at\" TIMESTAMPTZ NOT NULL,\n  PRIMARY KEY (\"source_topic\", \"source_partition\", \"source_offset\")\n);"
            ),
            "{ddl}"
        );
    }

    #[test]
    fn quotes_in_comments_are_doubled() {
        assert_eq!(string_literal("it's"), "'it''s'");
    }
}
