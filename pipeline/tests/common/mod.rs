//! What the pipeline's integration tests share: simulated events laid out in Kafka
//! partitions, and a model warehouse that applies outputs as the sinks do (upsert on
//! each table's primary key) and renders every row as text for comparison.

// Each test binary uses part of this module; a panic is how a test reports a failure.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub mod processes;

use std::sync::atomic::AtomicBool;

use pipeline::transforms::arrow::record_batches;
use pipeline::transforms::{Config, Message, Output, Transformer};
use simulator::engine::{self, Options, Quiet};
use simulator::population::Places;
use simulator::sinks::{Memory, Sink};
use simulator::songs::Catalogue;
use simulator::world::{RunSpec, World};
use warehouse::raw::EventKind;

/// One partition of one topic: its messages in offset order.
#[derive(Clone, Debug)]
pub struct Partition {
    pub kind: EventKind,
    pub topic: String,
    pub partition: i32,
    pub payloads: Vec<Vec<u8>>,
}

/// A transformation with the default settings that waits for every one of `partitions`.
pub fn transformer_over(partitions: &[Partition]) -> Transformer {
    let mut transformer = Transformer::new(Config::default());
    for p in partitions {
        transformer.track(p.kind, &p.topic, p.partition);
    }
    transformer
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

/// Every table's rows by primary key, rendered as text: the same model `cargo xtask e2e`
/// compares warehouses with.
pub use e2e::tables::{Tables as Warehouse, render, without_receive_times};

/// Applies one output as a sink does: a row replaces the one of its primary key, then the
/// event_fact rows of superseded versions are closed.
pub fn apply(warehouse: &mut Warehouse, output: &Output) {
    for (table, batch) in record_batches(&output.tables).unwrap() {
        let rows = warehouse.tables.entry(table.name).or_default();
        rows.extend(render(table, &batch).unwrap());
    }
    let millis = |ms: i64| e2e::tables::timestamp_text(ms * 1000);
    let closed: std::collections::HashMap<(String, String), String> = output
        .tables
        .superseded_event_facts
        .iter()
        .map(|v| {
            let version = (v.session_key.to_string(), millis(v.valid_from_ms));
            (version, millis(v.valid_to_ms))
        })
        .collect();
    if closed.is_empty() {
        return;
    }
    for row in warehouse
        .tables
        .entry("event_fact")
        .or_default()
        .values_mut()
    {
        let cell = |name: &str| {
            row.split(' ')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .unwrap()
                .to_owned()
        };
        if let Some(valid_to) = closed.get(&(cell("session_key"), cell("record_valid_from"))) {
            *row = row
                .replace(
                    "record_valid_to=NULL",
                    &format!("record_valid_to={valid_to}"),
                )
                .replace("is_record_valid=true", "is_record_valid=false");
        }
    }
}

/// Every table of a DuckDB warehouse.
pub fn duckdb_tables(connection: &duckdb::Connection) -> Warehouse {
    e2e::tables::duckdb_tables(connection).unwrap()
}

/// Every warehouse table of a dataset in the BigQuery emulator.
pub fn bigquery_tables(emulator: &xtask::emulator::Emulator, dataset: &str) -> Warehouse {
    e2e::tables::bigquery_tables(emulator, dataset).unwrap()
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

/// A fresh folder for one test, named after it and this process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pipeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An observer of runs that reports nothing.
pub struct Silent;

impl pipeline::runner::Observer for Silent {
    fn on_batch(
        &mut self,
        _: &pipeline::runner::Totals,
        _: &pipeline::transforms::Stats,
        _: std::time::Duration,
    ) {
    }
}

/// The sink settings of a dataset in the emulator, staging in a local folder, with short
/// retries.
pub fn options(
    emulator: &xtask::emulator::Emulator,
    dataset: &str,
    staging: &std::path::Path,
) -> pipeline::sinks::bigquery::BigQueryOptions {
    pipeline::sinks::bigquery::BigQueryOptions {
        project: xtask::emulator::PROJECT.to_owned(),
        dataset: dataset.to_owned(),
        location: "US".to_owned(),
        endpoint: Some(format!("{}/bigquery/v2", emulator.endpoint())),
        write_endpoint: Some(emulator.write_endpoint()),
        emulator: true,
        auth: pipeline::sinks::bigquery::Auth::None,
        staging: staging.display().to_string(),
        instance: "test".to_owned(),
        retry: pipeline::sinks::bigquery::Retry {
            attempts: 2,
            first_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(10),
        },
    }
}

/// Every topic under its default name.
pub fn topics() -> Vec<(EventKind, String)> {
    EventKind::ALL
        .iter()
        .map(|k| (*k, k.topic().to_owned()))
        .collect()
}

/// Runs the files of `input` into `sink` to the end, in batches of 1,500 messages,
/// checkpointing at the end only (and with every batch where the sink needs it).
pub fn run_into<K: pipeline::sinks::Sink>(
    input: &std::path::Path,
    sink: K,
) -> (pipeline::runner::Totals, K) {
    let limits = pipeline::sources::BatchLimits {
        max_messages: 1500,
        ..pipeline::sources::BatchLimits::default()
    };
    let source = pipeline::sources::files::Files::open(input, &topics()).unwrap();
    let mut runner = pipeline::runner::Runner::new(source, sink, Config::default(), limits)
        .unwrap()
        .with_checkpoint_every(std::time::Duration::from_secs(3600));
    let totals = runner
        .run(
            pipeline::runner::Until::IdleFor(std::time::Duration::ZERO),
            &AtomicBool::new(false),
            &mut Silent,
        )
        .unwrap();
    (totals, runner.into_sink())
}
