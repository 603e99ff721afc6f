//! The invariant that matters: the warehouse is a function of the set of events. The
//! same simulated events in any batching, any interleaving of partitions (each
//! partition's order kept, as Kafka keeps it), with redelivered ranges, and with the
//! state checkpointed and restored between batches, give identical tables.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{Partition, Warehouse, apply, simulated};
use pipeline::transforms::state::State;
use pipeline::transforms::{Config, Message, Transformer};
use proptest::prelude::*;

fn events() -> &'static Vec<Partition> {
    static EVENTS: OnceLock<Vec<Partition>> = OnceLock::new();
    EVENTS.get_or_init(|| simulated(150, 3, 21, 3))
}

/// A way of feeding the partitions to the transformation.
#[derive(Clone, Debug)]
struct Schedule {
    /// Which partition delivers next, drawn until all are exhausted.
    picks: Vec<usize>,
    /// Messages per batch, cycled.
    batch_sizes: Vec<usize>,
    /// Redeliveries: (after this many messages of the partition, rewind by this many).
    rewinds: Vec<(usize, usize, usize)>,
    /// Checkpoint and restore the state after every batch.
    checkpoint: bool,
}

fn run(schedule: Option<&Schedule>) -> (Warehouse, u64, u64) {
    let partitions = events();
    let mut transformer = Transformer::new(Config::default());
    for p in partitions {
        transformer.track(p.kind, &p.topic, p.partition);
    }
    // The delivery order: (partition, offset), with rewinds replaying ranges.
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut next = vec![0usize; partitions.len()];
    let mut replayed = vec![false; partitions.len()];
    let mut pick = 0;
    loop {
        let open: Vec<usize> = (0..partitions.len())
            .filter(|&i| next[i] < partitions[i].payloads.len())
            .collect();
        if open.is_empty() {
            break;
        }
        let i = match schedule {
            Some(s) => open[s.picks[pick % s.picks.len()] % open.len()],
            None => open[0],
        };
        pick += 1;
        order.push((i, next[i]));
        next[i] += 1;
        if let Some(s) = schedule {
            for &(p, after, back) in &s.rewinds {
                if p % partitions.len() == i && next[i] == after && !replayed[i] {
                    replayed[i] = true;
                    next[i] = next[i].saturating_sub(back);
                }
            }
        }
    }
    let mut warehouse = Warehouse::default();
    let (mut consumed, mut accounted) = (0, 0);
    let mut start = 0;
    let mut batch = 0;
    while start < order.len() {
        let size = schedule.map_or(order.len(), |s| s.batch_sizes[batch % s.batch_sizes.len()]);
        let end = (start + size.max(1)).min(order.len());
        let messages: Vec<Message<'_>> = order[start..end]
            .iter()
            .map(|&(i, offset)| partitions[i].message(offset))
            .collect();
        let output = transformer.process(messages, 0);
        consumed += output.stats.consumed;
        accounted += output.stats.landed + output.stats.duplicates + output.stats.rejected;
        apply(&mut warehouse, &output);
        if schedule.is_some_and(|s| s.checkpoint) {
            // Through the checkpoint's own records, as a restart reads them.
            let held = transformer.state();
            let records = held.records(&held.everything()).unwrap();
            let present = |rows: Vec<(i64, Option<Vec<u8>>)>| {
                rows.into_iter()
                    .filter_map(|(key, record)| Some((key, record?)))
                    .collect::<Vec<_>>()
            };
            let state = State::from_records(
                &records.clocks,
                present(records.sessions),
                present(records.users),
            )
            .unwrap();
            transformer = Transformer::with_state(Config::default(), state);
        }
        start = end;
        batch += 1;
    }
    apply(&mut warehouse, &transformer.finish());
    (warehouse, consumed, accounted)
}

fn reference() -> &'static Warehouse {
    static REFERENCE: OnceLock<Warehouse> = OnceLock::new();
    REFERENCE.get_or_init(|| run(None).0)
}

#[test]
fn the_reference_run_fills_every_table_but_dead_letters() {
    let warehouse = reference();
    for table in warehouse::schema::TABLES {
        let rows = warehouse.rows(table.name).len();
        if table.name == "dead_letters" {
            assert_eq!(rows, 0);
        } else {
            assert!(rows > 0, "{} is empty", table.name);
        }
    }
}

fn schedules() -> impl Strategy<Value = Schedule> {
    (
        prop::collection::vec(0usize..64, 1..40),
        prop::collection::vec(20usize..3000, 1..6),
        prop::collection::vec((0usize..64, 1usize..300, 1usize..60), 0..4),
        any::<bool>(),
    )
        .prop_map(|(picks, batch_sizes, rewinds, checkpoint)| Schedule {
            picks,
            batch_sizes,
            rewinds,
            checkpoint,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn batching_interleaving_redelivery_and_restarts_change_nothing(schedule in schedules()) {
        let (warehouse, consumed, accounted) = run(Some(&schedule));
        prop_assert_eq!(consumed, accounted);
        // Redelivered events too old to place are dead-lettered, not lost: the tables
        // themselves must not differ.
        let reference = reference();
        for table in warehouse::schema::TABLES {
            if table.name == "dead_letters" {
                continue;
            }
            let ours = warehouse.rows(table.name);
            let theirs = reference.rows(table.name);
            prop_assert!(ours == theirs, "{} differs ({} vs {} rows)", table.name, ours.len(), theirs.len());
        }
    }
}
