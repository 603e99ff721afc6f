//! What the pipeline's integration tests share: simulated events laid out in Kafka
//! partitions, and a model warehouse that applies outputs as the sinks do (upsert on
//! each table's primary key) and renders every row as text for comparison.

// Each test binary uses part of this module; a panic is how a test reports a failure.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use pipeline::transforms::arrow::record_batches;
use pipeline::transforms::{Message, Output};
use simulator::engine::{self, Options, Quiet};
use simulator::population::Places;
use simulator::sinks::{Memory, Sink};
use simulator::songs::Catalogue;
use simulator::world::{RunSpec, World};
use warehouse::raw::EventKind;
use warehouse::schema::Table;

/// One partition of one topic: its messages in offset order.
#[derive(Clone, Debug)]
pub struct Partition {
    pub kind: EventKind,
    pub topic: String,
    pub partition: i32,
    pub payloads: Vec<Vec<u8>>,
}

impl Partition {
    pub fn message(&self, offset: usize) -> Message<'_> {
        Message {
            kind: self.kind,
            topic: &self.topic,
            partition: self.partition,
            offset: offset as i64,
            payload: &self.payloads[offset],
        }
    }
}

/// Simulated events into `sink`: the built-in config with sessions every few hours rather
/// than weekly (so that users have many, and what crosses sessions is exercised), the
/// built-in songs, a week from 2026-01-05 cut to `days`.
pub fn simulate(sink: &mut dyn Sink, users: u32, days: i64, seed: u64, growth_rate: f64) {
    let mut config = simulator::defaults::config();
    config.beta = 6.0 * 3600.0;
    let model = config.compile().unwrap();
    let start_ms = simulator::clock::parse_date_time("2026-01-05").unwrap();
    let run = RunSpec {
        seed,
        start_ms,
        end_ms: start_ms + days * simulator::clock::DAY_MS,
        users,
        first_user_id: 1,
        growth_rate,
        attrition_rate: 0.0,
    };
    let world = World::new(&config, model, Catalogue::builtin(), Places::us(), run).unwrap();
    let options = Options {
        threads: 2,
        pacing: None,
    };
    engine::run(&world, &options, sink, &AtomicBool::new(false), &mut Quiet).unwrap();
}

/// Simulated events in `partitions` partitions per topic, keyed as the simulator's Kafka
/// output keys them.
pub fn simulated(users: u32, days: i64, seed: u64, partitions: i32) -> Vec<Partition> {
    let mut sink = Memory::default();
    simulate(&mut sink, users, days, seed, 5.0);
    let mut out: Vec<Partition> = EventKind::ALL
        .iter()
        .flat_map(|kind| {
            (0..partitions).map(|p| Partition {
                kind: *kind,
                topic: kind.topic().to_owned(),
                partition: p,
                payloads: Vec::new(),
            })
        })
        .collect();
    for (kind, key, json) in sink.events {
        let p = key.rem_euclid(i64::from(partitions)) as usize;
        out[kind.index() * partitions as usize + p]
            .payloads
            .push(json);
    }
    out
}

/// Every table's rows by primary key, each rendered as `column=value` text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Warehouse {
    pub tables: BTreeMap<&'static str, BTreeMap<String, String>>,
}

impl Warehouse {
    /// Applies one output as a sink does: every row is an upsert on its primary key.
    pub fn apply(&mut self, output: &Output) {
        for (table, batch) in record_batches(&output.tables).unwrap() {
            let rows = self.tables.entry(table.name).or_default();
            for (key, row) in render(table, &batch) {
                rows.insert(key, row);
            }
        }
    }

    pub fn rows(&self, table: &str) -> Vec<&String> {
        self.tables
            .get(table)
            .map(|rows| rows.values().collect())
            .unwrap_or_default()
    }

    /// Every table, empty ones too, as `## table` and its rows, one a line.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for table in warehouse::schema::TABLES {
            text.push_str(&format!("## {}\n", table.name));
            for row in self.rows(table.name) {
                text.push_str(row);
                text.push('\n');
            }
            text.push('\n');
        }
        text
    }

    /// The same warehouse without one table.
    pub fn without(&self, table: &str) -> Warehouse {
        let mut copy = self.clone();
        copy.tables.remove(table);
        copy
    }
}

/// Every table of a DuckDB warehouse, rendered as the model warehouse renders outputs.
pub fn duckdb_tables(connection: &duckdb::Connection) -> Warehouse {
    let mut warehouse = Warehouse::default();
    for table in warehouse::schema::TABLES {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM \"{}\"", table.name))
            .unwrap();
        let rows = warehouse.tables.entry(table.name).or_default();
        for batch in statement.query_arrow([]).unwrap() {
            for (key, row) in render(table, &batch) {
                rows.insert(key, row);
            }
        }
        if rows.is_empty() {
            warehouse.tables.remove(table.name);
        }
    }
    warehouse
}

/// Each row of a batch as (primary key text, row text).
pub fn render(table: &Table, batch: &RecordBatch) -> Vec<(String, String)> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            let cell = |name: &str| {
                let i = schema.index_of(name).unwrap();
                value(batch.column(i).as_ref(), row)
            };
            let key: Vec<String> = table.primary_key.iter().map(|c| cell(c)).collect();
            let text: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{}={}", f.name(), cell(f.name())))
                .collect();
            (key.join("|"), text.join(" "))
        })
        .collect()
}

fn value(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_owned();
    }
    match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Utf8 => format!("{:?}", array.as_string::<i32>().value(row)),
        DataType::Binary => format!(
            "{:?}",
            String::from_utf8_lossy(array.as_binary::<i32>().value(row))
        ),
        DataType::Timestamp(_, _) => {
            timestamp_text(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Date32 => array.as_primitive::<Date32Type>().value(row).to_string(),
        other => panic!("no rendering for {other}"),
    }
}

fn timestamp_text(micros: i64) -> String {
    simulator::clock::format_date_time(micros / 1000) + &format!(".{:03}Z", micros / 1000 % 1000)
}

/// Every warehouse table of a dataset in the BigQuery emulator, rendered as `render`
/// renders Arrow rows, so that the two warehouses compare as text.
pub fn bigquery_tables(emulator: &xtask::emulator::Emulator, dataset: &str) -> Warehouse {
    bigquery_tables_except(emulator, dataset, "")
}

/// `bigquery_tables` without the table `skipped`.
pub fn bigquery_tables_except(
    emulator: &xtask::emulator::Emulator,
    dataset: &str,
    skipped: &str,
) -> Warehouse {
    use warehouse::schema::ColumnType;
    let mut warehouse = Warehouse::default();
    for table in warehouse::schema::TABLES
        .iter()
        .filter(|t| t.name != skipped)
    {
        let response = emulator
            .query(&format!("SELECT * FROM `{dataset}.{}`", table.name))
            .unwrap();
        let names: Vec<String> = response["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        let rows = warehouse.tables.entry(table.name).or_default();
        for row in response["rows"].as_array().into_iter().flatten() {
            let cells = row["f"].as_array().unwrap();
            let cell = |name: &str| -> String {
                let i = names.iter().position(|n| n == name).unwrap();
                let Some(v) = cells[i]["v"].as_str() else {
                    return "NULL".to_owned();
                };
                match table.column(name).unwrap().ty {
                    ColumnType::Int64 => v.parse::<i64>().unwrap().to_string(),
                    ColumnType::Float64 => v.parse::<f64>().unwrap().to_string(),
                    ColumnType::Bool => v.parse::<bool>().unwrap().to_string(),
                    ColumnType::String => format!("{v:?}"),
                    ColumnType::Bytes => format!("{:?}", String::from_utf8_lossy(&base64(v))),
                    // Microseconds as the emulator answers, or seconds as BigQuery does.
                    ColumnType::Timestamp => timestamp_text(
                        v.parse::<i64>()
                            .unwrap_or_else(|_| (v.parse::<f64>().unwrap() * 1e6).round() as i64),
                    ),
                    ColumnType::Date => {
                        let parts: Vec<i64> = v.split('-').map(|p| p.parse().unwrap()).collect();
                        warehouse::time::days_from_civil(parts[0], parts[1] as u32, parts[2] as u32)
                            .to_string()
                    }
                }
            };
            let key: Vec<String> = table.primary_key.iter().map(|c| cell(c)).collect();
            let text: Vec<String> = table
                .columns
                .iter()
                .map(|c| format!("{}={}", c.name, cell(c.name)))
                .collect();
            rows.insert(key.join("|"), text.join(" "));
        }
        if rows.is_empty() {
            warehouse.tables.remove(table.name);
        }
    }
    warehouse
}

/// Standard base64, as BigQuery's REST API writes BYTES.
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|a| *a == byte).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

/// The rendering without dead letters' `received_at`, the one wall-clock column.
pub fn without_receive_times(text: &str) -> String {
    text.lines()
        .map(|l| l.split(" received_at=").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Panics with the first rows that differ rather than with two whole warehouses.
pub fn assert_same_rows(actual: &str, expected: &str) {
    if actual == expected {
        return;
    }
    let actual_lines: std::collections::BTreeSet<&str> = actual.lines().collect();
    let expected_lines: std::collections::BTreeSet<&str> = expected.lines().collect();
    let missing: Vec<_> = expected_lines.difference(&actual_lines).take(5).collect();
    let unexpected: Vec<_> = actual_lines.difference(&expected_lines).take(5).collect();
    panic!("the warehouses differ\nmissing: {missing:#?}\nunexpected: {unexpected:#?}");
}
