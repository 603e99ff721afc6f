//! Throughput of parsing and writing raw events: `cargo bench -p warehouse --bench raw`.
//!
//! A plain harness with no benchmark framework, to keep the build lean: each measurement
//! runs for about a second after a warm-up and reports the best of three runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use warehouse::raw::{EventKind, RawEvent};

fn main() {
    // A stream shaped like eventsim's output: mostly page views, a listen for most of
    // them, a few logins and level changes.
    let mut records: Vec<(EventKind, Vec<u8>)> = Vec::new();
    for kind in EventKind::ALL {
        let path = format!(
            "{}/tests/data/events/{}.jsonl",
            env!("CARGO_MANIFEST_DIR"),
            kind.topic()
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let copies = match kind {
            EventKind::PageView | EventKind::Listen => 20,
            EventKind::Auth | EventKind::StatusChange => 1,
        };
        for _ in 0..copies {
            records.extend(text.lines().map(|line| (kind, line.as_bytes().to_vec())));
        }
    }
    let bytes: usize = records.iter().map(|(_, r)| r.len()).sum();
    let events: Vec<RawEvent<'_>> = records
        .iter()
        .map(|(kind, record)| RawEvent::parse(*kind, record).expect("golden records parse"))
        .collect();

    report("parse", records.len(), bytes, || {
        for (kind, record) in &records {
            black_box(RawEvent::parse(*kind, black_box(record)).is_ok());
        }
    });
    let mut out = Vec::with_capacity(bytes * 2);
    report("write", events.len(), bytes, || {
        out.clear();
        for event in &events {
            event.write_json(&mut out);
            out.push(b'\n');
        }
        black_box(&out);
    });
}

fn report(name: &str, events: usize, bytes: usize, mut pass: impl FnMut()) {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let mut passes = 0u32;
        while started.elapsed() < Duration::from_secs(1) {
            pass();
            passes += 1;
        }
        best = best.min(started.elapsed() / passes);
    }
    let secs = best.as_secs_f64();
    println!(
        "{name}: {:.2} M events/s, {:.0} MB/s ({events} events of {:.0} bytes on average)",
        events as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6,
        bytes as f64 / events as f64
    );
}
