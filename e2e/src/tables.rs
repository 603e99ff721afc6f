//! Warehouse tables as comparable text, read from a DuckDB file or from the BigQuery
//! emulator: every row keyed by its primary key and rendered as `column=value` pairs in
//! one format whatever the engine, so that two warehouses compare row for row.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use warehouse::schema::{ColumnType, TABLES, Table};

use xtask::emulator::Emulator;

/// Every table's rows by primary key, each rendered as `column=value` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub tables: BTreeMap<&'static str, BTreeMap<String, String>>,
}

impl Tables {
    pub fn rows(&self, table: &str) -> Vec<&String> {
        self.tables
            .get(table)
            .map(|rows| rows.values().collect())
            .unwrap_or_default()
    }

    /// Every table, empty ones too, as `## table` and its rows, one a line.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for table in TABLES {
            let _ = writeln!(text, "## {}", table.name);
            for row in self.rows(table.name) {
                text.push_str(row);
                text.push('\n');
            }
            text.push('\n');
        }
        text
    }

    /// Rows per table, for reports.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        self.tables
            .iter()
            .map(|(t, rows)| (*t, rows.len()))
            .collect()
    }
}

/// The rendering without dead letters' `received_at`, the one wall-clock column.
pub fn without_receive_times(text: &str) -> String {
    text.lines()
        .map(|l| l.split(" received_at=").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(primary key, row)` texts of an Arrow batch of `table`.
pub fn render(table: &Table, batch: &RecordBatch) -> Result<Vec<(String, String)>> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            let cell = |name: &str| -> Result<String> {
                let i = schema
                    .index_of(name)
                    .with_context(|| format!("{}: no column {name}", table.name))?;
                arrow_value(batch.column(i).as_ref(), row)
            };
            let key = table
                .primary_key
                .iter()
                .map(|c| cell(c))
                .collect::<Result<Vec<_>>>()?;
            let text = schema
                .fields()
                .iter()
                .map(|f| Ok(format!("{}={}", f.name(), cell(f.name())?)))
                .collect::<Result<Vec<_>>>()?;
            Ok((key.join("|"), text.join(" ")))
        })
        .collect()
}

fn arrow_value(array: &dyn Array, row: usize) -> Result<String> {
    if array.is_null(row) {
        return Ok("NULL".to_owned());
    }
    Ok(match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Utf8 => format!("{:?}", array.as_string::<i32>().value(row)),
        DataType::Binary => bytes_text(array.as_binary::<i32>().value(row)),
        DataType::Timestamp(_, _) => {
            timestamp_text(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Date32 => array.as_primitive::<Date32Type>().value(row).to_string(),
        other => anyhow::bail!("no rendering for {other}"),
    })
}

fn bytes_text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// ISO 8601 to the millisecond, UTC: how a timestamp cell renders.
pub fn timestamp_text(micros: i64) -> String {
    let millis = micros.div_euclid(1000);
    let parts = warehouse::time::DateTimeParts::from_epoch_millis(millis);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        parts.year,
        parts.month,
        parts.day,
        parts.hour,
        parts.minute,
        parts.second,
        millis.rem_euclid(1000)
    )
}

/// Every warehouse table of a DuckDB file; empty tables are left out.
pub fn duckdb_tables(connection: &duckdb::Connection) -> Result<Tables> {
    let mut tables = Tables::default();
    for table in TABLES {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM \"{}\"", table.name))
            .with_context(|| format!("reading {}", table.name))?;
        let rows = tables.tables.entry(table.name).or_default();
        for batch in statement.query_arrow([])? {
            for (key, text) in render(table, &batch)? {
                keep_once(table, rows, key, text)?;
            }
        }
        if rows.is_empty() {
            tables.tables.remove(table.name);
        }
    }
    Ok(tables)
}

/// Every warehouse table of a dataset in the BigQuery emulator (the views of their
/// current rows), rendered as DuckDB's are; empty tables are left out.
pub fn bigquery_tables(emulator: &Emulator, dataset: &str) -> Result<Tables> {
    let mut tables = Tables::default();
    for table in TABLES {
        let response = emulator.query(&format!("SELECT * FROM `{dataset}.{}`", table.name))?;
        let names: Vec<&str> = response["schema"]["fields"]
            .as_array()
            .context("a query answer without a schema")?
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        let rows = tables.tables.entry(table.name).or_default();
        for row in response["rows"].as_array().into_iter().flatten() {
            let cells = row["f"].as_array().context("a row without cells")?;
            let cell = |name: &str| -> Result<String> {
                let i = names
                    .iter()
                    .position(|n| *n == name)
                    .with_context(|| format!("{}: no column {name}", table.name))?;
                let column = table
                    .column(name)
                    .with_context(|| format!("{}: unknown column {name}", table.name))?;
                json_value(column.ty, &cells[i]["v"])
                    .with_context(|| format!("{}.{name}: {}", table.name, cells[i]["v"]))
            };
            let key = table
                .primary_key
                .iter()
                .map(|c| cell(c))
                .collect::<Result<Vec<_>>>()?;
            let text = table
                .columns
                .iter()
                .map(|c| Ok(format!("{}={}", c.name, cell(c.name)?)))
                .collect::<Result<Vec<_>>>()?;
            keep_once(table, rows, key.join("|"), text.join(" "))?;
        }
        if rows.is_empty() {
            tables.tables.remove(table.name);
        }
    }
    Ok(tables)
}

/// Adds a row under its key, failing on a key seen before: a table whose key is not
/// enforced must still hold it once, and a map would hide the second row.
fn keep_once(
    table: &Table,
    rows: &mut BTreeMap<String, String>,
    key: String,
    text: String,
) -> Result<()> {
    if let Some(earlier) = rows.insert(key.clone(), text) {
        anyhow::bail!(
            "{} holds its key {key} twice (one row: {earlier})",
            table.name
        );
    }
    Ok(())
}

/// A cell of BigQuery's REST answer, rendered as `arrow_value` renders its type.
fn json_value(ty: ColumnType, value: &serde_json::Value) -> Result<String> {
    let Some(v) = value.as_str() else {
        return Ok("NULL".to_owned());
    };
    Ok(match ty {
        ColumnType::Int64 => v.parse::<i64>()?.to_string(),
        ColumnType::Float64 => v.parse::<f64>()?.to_string(),
        ColumnType::Bool => v.parse::<bool>()?.to_string(),
        ColumnType::String => format!("{v:?}"),
        ColumnType::Bytes => bytes_text(&base64(v)?),
        // Microseconds as the emulator answers, or seconds as BigQuery does.
        ColumnType::Timestamp => timestamp_text(match v.parse::<i64>() {
            Ok(micros) => micros,
            Err(_) => (v.parse::<f64>()? * 1e6).round() as i64,
        }),
        ColumnType::Date => {
            let mut parts = v.splitn(3, '-').map(str::parse::<i64>);
            let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) =
                (parts.next(), parts.next(), parts.next())
            else {
                anyhow::bail!("not a date");
            };
            warehouse::time::days_from_civil(y, m as u32, d as u32).to_string()
        }
    })
}

/// Standard base64, as BigQuery's REST API writes BYTES.
fn base64(text: &str) -> Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == byte)
            .context("not base64")? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigquery_cells_render_as_arrow_values_do() {
        let json = |v: &str| serde_json::Value::String(v.to_owned());
        assert_eq!(
            json_value(ColumnType::Bytes, &json("aGk/")).unwrap(),
            "\"hi?\""
        );
        assert_eq!(
            json_value(ColumnType::Timestamp, &json("1767607200123456")).unwrap(),
            "2026-01-05T10:00:00.123Z"
        );
        assert_eq!(
            json_value(ColumnType::Timestamp, &json("1.767607200123E9")).unwrap(),
            "2026-01-05T10:00:00.123Z"
        );
        assert_eq!(
            json_value(ColumnType::Date, &json("1970-01-02")).unwrap(),
            "1"
        );
        assert_eq!(
            json_value(ColumnType::Int64, &serde_json::Value::Null).unwrap(),
            "NULL"
        );
    }
}
