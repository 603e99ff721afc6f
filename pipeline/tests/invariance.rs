//! The invariant that matters: the warehouse is a function of the set of events. The
//! same simulated events in any batching, any interleaving of partitions (each
//! partition's order kept, as Kafka keeps it), with redelivered ranges, and with the
//! state checkpointed and restored between batches, give identical tables.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::{Partition, Warehouse, apply, simulated};
use pipeline::transforms::state::{Records, State};
use pipeline::transforms::{Config, Message, Transformer};
use proptest::prelude::*;
use warehouse::raw::EventKind;

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

/// The checkpoint records as a sink keeps them: a record per key, and the events
/// appended to open sessions beside theirs until the session is written whole again.
#[derive(Default)]
struct Store {
    clocks: Vec<u8>,
    sessions: BTreeMap<i64, Vec<u8>>,
    session_events: Vec<(i64, Vec<u8>)>,
    users: BTreeMap<i64, Vec<u8>>,
}

impl Store {
    fn write(&mut self, records: Records) {
        self.clocks = records.clocks;
        for (key, record) in records.sessions {
            self.session_events.retain(|(k, _)| *k != key);
            match record {
                Some(record) => self.sessions.insert(key, record),
                None => self.sessions.remove(&key),
            };
        }
        self.session_events.extend(records.session_events);
        for (key, record) in records.users {
            match record {
                Some(record) => self.users.insert(key, record),
                None => self.users.remove(&key),
            };
        }
    }

    fn restore(&self) -> State {
        State::from_records(
            &self.clocks,
            self.sessions.clone(),
            self.session_events.clone(),
            self.users.clone(),
        )
        .unwrap()
    }
}

fn run(schedule: Option<&Schedule>) -> (Warehouse, u64, u64) {
    let partitions = events();
    let mut transformer = common::transformer_over(partitions);
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
    let mut store = Store::default();
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
            // Through the checkpoint's own records, only what changed, as a sink keeps
            // them and a restart reads them.
            let records = transformer.state().records(transformer.changes()).unwrap();
            store.write(records);
            transformer = Transformer::with_state(Config::default(), store.restore());
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

/// Whether every table but the dead letters equals the reference run's. Redelivered
/// events too old to place are dead-lettered, not lost: the tables themselves must not
/// differ.
fn differences(warehouse: &Warehouse) -> Result<(), String> {
    let reference = reference();
    for table in warehouse::schema::TABLES {
        if table.name == "dead_letters" {
            continue;
        }
        let (ours, theirs) = (warehouse.rows(table.name), reference.rows(table.name));
        if ours != theirs {
            return Err(format!(
                "{} differs ({} vs {} rows)",
                table.name,
                ours.len(),
                theirs.len()
            ));
        }
    }
    Ok(())
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
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn batching_interleaving_redelivery_and_restarts_change_nothing(schedule in schedules()) {
        let (warehouse, consumed, accounted) = run(Some(&schedule));
        prop_assert_eq!(consumed, accounted);
        if let Err(difference) = differences(&warehouse) {
            return Err(TestCaseError::fail(difference));
        }
    }
}

/// A listen of `user` in `session` at `minute` past 08:00 on 2026-01-05.
fn listen(user: i64, session: i64, item: i64, minute: i64) -> Vec<u8> {
    let ts = 1_767_600_000_000 + minute * 60_000;
    format!(
        r#"{{"artist":"Artist X","song":"Song One","duration":200.0,"ts":{ts},"sessionId":{session},"auth":"Logged In","level":"free","itemInSession":{item},"city":"Boston","zip":"02108","state":"MA","userAgent":"Mozilla/5.0","lon":-71.0654,"lat":42.3588,"userId":{user},"lastName":"L","firstName":"F","gender":"F","registration":1766736000000}}"#
    )
    .into_bytes()
}

#[test]
fn a_session_that_pauses_past_the_timeout_has_the_same_versions_however_it_is_batched() {
    // One partition in time order: a user listens, pauses for an hour (twice the session
    // timeout) and listens again in the same session; another user's listen in the
    // pause moves the watermark past it.
    let partition = Partition {
        kind: EventKind::Listen,
        topic: "listen_events".to_owned(),
        partition: 0,
        payloads: vec![
            listen(10, 100, 0, 0),
            listen(10, 100, 1, 5),
            listen(20, 200, 0, 40),
            listen(10, 100, 2, 65),
            listen(10, 100, 3, 70),
        ],
    };
    let run = |cuts: &[usize]| {
        let mut transformer = Transformer::new(Config::default());
        transformer.track(partition.kind, &partition.topic, partition.partition);
        let mut warehouse = Warehouse::default();
        let mut start = 0;
        for &end in cuts.iter().chain([&partition.payloads.len()]) {
            let messages = (start..end).map(|offset| partition.message(offset));
            apply(&mut warehouse, &transformer.process(messages, 0));
            start = end;
        }
        apply(&mut warehouse, &transformer.finish());
        warehouse
    };
    // The watermark passes the pause before the listens after it arrive, or it does not.
    let closed_in_the_pause = run(&[3]);
    let all_at_once = run(&[]);
    let versions = |w: &Warehouse| {
        w.rows("session_fact")
            .iter()
            .filter(|r| r.contains("user_id=10 "))
            .map(|r| r.contains("is_record_valid=true"))
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&closed_in_the_pause).len(), 2);
    assert_eq!(
        versions(&closed_in_the_pause)
            .iter()
            .filter(|&&current| current)
            .count(),
        1
    );
    for table in warehouse::schema::TABLES {
        assert_eq!(
            all_at_once.rows(table.name),
            closed_in_the_pause.rows(table.name),
            "{}",
            table.name
        );
    }
}

#[test]
fn schedules_the_property_test_once_failed_on_change_nothing() {
    let schedules = [
        // User 17 pauses for 78 minutes inside a session, and the watermark passed the
        // pause before the listens after it arrived.
        Schedule {
            picks: vec![
                48, 7, 35, 49, 62, 6, 46, 2, 45, 35, 30, 47, 33, 15, 38, 12, 46, 61, 60, 22, 15,
                29, 52, 10, 47, 29, 32, 62, 61, 21, 9, 30, 21,
            ],
            batch_sizes: vec![1788, 2351, 1044, 120],
            rewinds: vec![(20, 180, 57)],
            checkpoint: false,
        },
        // User 38's listens run ahead of their page views, and two late page views
        // split a pause already versioned into two.
        Schedule {
            picks: vec![25, 11, 24, 16, 15, 7, 0],
            batch_sizes: vec![20],
            rewinds: vec![],
            checkpoint: false,
        },
    ];
    for schedule in &schedules {
        let (warehouse, consumed, accounted) = run(Some(schedule));
        assert_eq!(consumed, accounted);
        if let Err(difference) = differences(&warehouse) {
            panic!("{difference} with {schedule:?}");
        }
    }
}
