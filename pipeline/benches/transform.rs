//! Throughput of the transformation core: `cargo bench -p pipeline`.
//!
//! Simulated events (the simulator's built-in config and songs) laid out in six Kafka
//! partitions per topic are transformed in batches of 10,000 messages, from raw JSON
//! bytes to Arrow record batches of every table, on one core. Best of three runs.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use pipeline::transforms::arrow::record_batches;
use pipeline::transforms::{Config, Message, Transformer};
use simulator::engine::{self, Options, Quiet};
use simulator::population::Places;
use simulator::sinks::Memory;
use simulator::songs::Catalogue;
use simulator::world::{RunSpec, World};
use warehouse::raw::EventKind;

const PARTITIONS: i64 = 6;
const BATCH: usize = 10_000;

fn main() {
    let config = simulator::defaults::config();
    let model = config.compile().expect("the built-in config compiles");
    let start_ms = simulator::clock::parse_date_time("2026-01-05").expect("a date");
    let run = RunSpec {
        seed: 3,
        start_ms,
        end_ms: start_ms + 2 * simulator::clock::DAY_MS,
        users: 100_000,
        first_user_id: 1,
        growth_rate: 0.0,
        attrition_rate: 0.0,
    };
    let world =
        World::new(&config, model, Catalogue::builtin(), Places::us(), run).expect("a valid world");
    let mut events = Memory::default();
    let options = Options {
        threads: 2,
        pacing: None,
    };
    engine::run(
        &world,
        &options,
        &mut events,
        &AtomicBool::new(false),
        &mut Quiet,
    )
    .expect("the simulation runs");
    let events = events.events;
    let bytes: usize = events.iter().map(|(_, _, json)| json.len()).sum();
    let topics: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| k.topic().to_owned())
        .collect();

    let mut best = f64::MAX;
    let mut rows = 0;
    for _ in 0..3 {
        let mut transformer = Transformer::new(Config::default());
        for (slot, kind) in EventKind::ALL.iter().enumerate() {
            for p in 0..PARTITIONS {
                transformer.track(*kind, &topics[slot], p as i32);
            }
        }
        let began = Instant::now();
        rows = 0;
        let mut offset = 0;
        for chunk in events.chunks(BATCH) {
            let messages = chunk.iter().map(|(kind, key, json)| {
                offset += 1;
                Message {
                    kind: *kind,
                    topic: &topics[kind.index()],
                    partition: key.rem_euclid(PARTITIONS) as i32,
                    offset,
                    payload: json,
                }
            });
            let output = transformer.process(messages, 0);
            let batches = record_batches(&output.tables).expect("valid batches");
            rows += batches.iter().map(|(_, b)| b.num_rows()).sum::<usize>();
        }
        let output = transformer.finish();
        let batches = record_batches(&output.tables).expect("valid batches");
        rows += batches.iter().map(|(_, b)| b.num_rows()).sum::<usize>();
        best = best.min(began.elapsed().as_secs_f64());
    }
    println!(
        "transform, raw JSON -> Arrow, one core: {} events ({:.0} MB) -> {rows} rows in {best:.2}s: {:.0} events/s, {:.0} MB/s",
        events.len(),
        bytes as f64 / 1e6,
        events.len() as f64 / best,
        bytes as f64 / best / 1e6
    );
}
