//! Hand-written events (`tests/data/golden/messages.jsonl`) covering guests, logins that
//! succeed and fail, an upgrade and a downgrade, completed and skipped songs, a user
//! who moves, a redelivered event, a late event, one too late to place, and malformed
//! messages; the rows of every table are written out in full in `expected.txt`.
//! `UPDATE_GOLDEN=1 cargo test -p pipeline --test golden` rewrites it, for review.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::{Warehouse, apply};
use pipeline::transforms::{Config, Message, Stats, Transformer};
use serde::Deserialize;
use warehouse::raw::EventKind;

#[derive(Deserialize)]
struct Line {
    batch: u32,
    topic: String,
    partition: i32,
    offset: i64,
    payload: String,
}

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(file)
}

fn lines() -> Vec<Line> {
    std::fs::read_to_string(data("messages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs the messages in the given groups; returns the warehouse and the summed counts.
fn run(groups: &[Vec<&Line>]) -> (Warehouse, Stats) {
    let mut transformer = Transformer::new(Config::default());
    for kind in EventKind::ALL {
        transformer.track(kind, kind.topic(), 0);
    }
    let mut warehouse = Warehouse::default();
    let mut total = Stats::default();
    for group in groups {
        let messages = group.iter().map(|l| Message {
            kind: EventKind::from_topic(&l.topic).unwrap(),
            topic: &l.topic,
            partition: l.partition,
            offset: l.offset,
            payload: l.payload.as_bytes(),
        });
        let output = transformer.process(messages, 1_767_700_000_000);
        total.add(&output.stats);
        apply(&mut warehouse, &output);
    }
    let output = transformer.finish();
    total.add(&output.stats);
    apply(&mut warehouse, &output);
    (warehouse, total)
}

#[test]
fn hand_written_events_give_the_expected_rows_in_every_table() {
    let lines = lines();
    let batches: Vec<Vec<&Line>> = (1..=2)
        .map(|b| lines.iter().filter(|l| l.batch == b).collect())
        .collect();
    let (warehouse, stats) = run(&batches);
    assert_eq!(
        stats,
        Stats {
            consumed: 38,
            landed: 32,
            duplicates: 2,
            rejected: 4,
            sessions_closed: 8,
            late: 1,
        }
    );
    let text = warehouse.text();
    let expected = data("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected, &text).unwrap();
    }
    let want = std::fs::read_to_string(&expected).unwrap();
    assert!(
        text == want,
        "rows differ from {}:\n{text}",
        expected.display()
    );

    // One message at a time, the same tables.
    let singles: Vec<Vec<&Line>> = batches.iter().flatten().map(|l| vec![*l]).collect();
    let (one_by_one, _) = run(&singles);
    assert_eq!(one_by_one.text(), text);
}
