//! The generated DuckDB DDL executes in a real embedded DuckDB, and the tables it makes
//! agree with the definitions and with the Arrow schemas sinks will write.

// Test helpers panic on purpose: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use duckdb::{Connection, OptionalExt as _};
use warehouse::schema::{self, ColumnType, TABLES};

fn warehouse() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    pipeline::sinks::duckdb::pin_utc(&conn).unwrap();
    conn.execute_batch(&schema::duckdb::schema_script())
        .unwrap();
    conn
}

/// DuckDB's own names for the types, written out rather than taken from the generator.
fn duckdb_type_name(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int64 => "BIGINT",
        ColumnType::Float64 => "DOUBLE",
        ColumnType::Bool => "BOOLEAN",
        ColumnType::String => "VARCHAR",
        ColumnType::Bytes => "BLOB",
        ColumnType::Timestamp => "TIMESTAMP WITH TIME ZONE",
        ColumnType::Date => "DATE",
    }
}

#[test]
fn schema_script_runs_twice_without_error() {
    let conn = warehouse();
    conn.execute_batch(&schema::duckdb::schema_script())
        .unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, TABLES.len() as i64);
}

#[test]
fn columns_types_and_nullability_match_the_definitions() {
    let conn = warehouse();
    for table in TABLES {
        let mut stmt = conn
            .prepare(
                "SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns() \
                 WHERE table_name = ? ORDER BY column_index",
            )
            .unwrap();
        let found: Vec<(String, String, bool, Option<String>)> = stmt
            .query_map([table.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(String, String, bool, Option<String>)> = table
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.to_owned(),
                    duckdb_type_name(c.ty).to_owned(),
                    c.nullable,
                    Some(c.description.to_owned()),
                )
            })
            .collect();
        assert_eq!(found, expected, "{}", table.name);
    }
}

#[test]
fn enforced_primary_keys_match_and_reject_duplicates_and_the_others_have_no_index() {
    let conn = warehouse();
    for table in TABLES {
        let key: Option<Vec<String>> = conn
            .query_row(
                "SELECT constraint_column_names FROM duckdb_constraints() \
                 WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [table.name],
                |r| r.get::<_, duckdb::types::Value>(0),
            )
            .map(|value| match value {
                duckdb::types::Value::List(names) => names
                    .into_iter()
                    .map(|n| match n {
                        duckdb::types::Value::Text(name) => name,
                        other => panic!("{other:?}"),
                    })
                    .collect(),
                other => panic!("{other:?}"),
            })
            .optional()
            .unwrap();
        let declared: Option<Vec<String>> = table
            .key_enforced
            .then(|| table.primary_key.iter().map(|c| (*c).to_owned()).collect());
        assert_eq!(key, declared, "{}", table.name);
    }
    conn.execute_batch("INSERT INTO song_dim VALUES (1, 'Muse', 'Uprising')")
        .unwrap();
    conn.execute_batch(
        "INSERT INTO song_dim VALUES (1, 'Muse', 'Uprising') ON CONFLICT DO NOTHING",
    )
    .unwrap();
    assert!(
        conn.execute_batch("INSERT INTO song_dim VALUES (1, 'Other', 'Row')")
            .is_err()
    );
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM song_dim", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn duckdb_exports_the_arrow_types_sinks_write() {
    let conn = warehouse();
    for table in TABLES {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{}\"", table.name))
            .unwrap();
        let exported = stmt.query_arrow([]).unwrap().get_schema();
        let ours = schema::arrow_schema(table);
        let types =
            |s: &arrow_schema_types::Schema| -> Vec<(String, arrow_schema_types::DataType)> {
                s.fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect()
            };
        assert_eq!(types(&exported), types(&ours), "{}", table.name);
    }
}

/// DuckDB's Arrow types, which are the same crate version as ours.
mod arrow_schema_types {
    pub use duckdb::arrow::datatypes::{DataType, Schema};
}

#[test]
fn kpi_views_are_created_twice_with_their_descriptions_and_answer_on_empty_tables() {
    use warehouse::analytics::{self, Dialect, KPIS, Period};
    let conn = warehouse();
    for _ in 0..2 {
        conn.execute_batch(&analytics::views_script(Dialect::DuckDb))
            .unwrap();
    }
    for kpi in KPIS {
        let comment: Option<String> = conn
            .query_row(
                "SELECT comment FROM duckdb_views() WHERE view_name = ?",
                [kpi.name],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(comment.as_deref(), Some(kpi.description), "{}", kpi.name);
        let sql = kpi.query_sql(Dialect::DuckDb, &Period::parse("2026-Q1").unwrap());
        let mut statement = conn.prepare(&sql).unwrap();
        // Runs it: an answer of no rows or one is fine on empty tables.
        statement.query([]).unwrap().next().unwrap();
        assert_eq!(statement.column_count(), kpi.columns.len(), "{sql}");
        for (i, (name, _)) in kpi.columns.iter().enumerate() {
            assert_eq!(statement.column_name(i).unwrap(), name, "{sql}");
        }
    }
}
