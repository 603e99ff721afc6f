//! The transformation on simulated events, checked against the events themselves: every
//! listen is one current event_fact row, session facts add up over their events, every
//! foreign key is found in its dimension, and every message is accounted for.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};

use common::{Warehouse, apply, simulated};
use pipeline::transforms::rows::Tables;
use warehouse::keys;
use warehouse::raw::{EventKind, RawEvent};

/// Every row of every output, merged by primary key as the sinks merge them.
#[derive(Default)]
struct Merged {
    event_fact: HashMap<(i64, i64), pipeline::transforms::rows::EventFactRow>,
    session_fact: HashMap<(i64, i64), pipeline::transforms::rows::SessionFactRow>,
    keys: HashMap<&'static str, HashSet<i64>>,
}

impl Merged {
    fn add(&mut self, t: &Tables) {
        for r in t.event_fact.rows() {
            self.event_fact
                .insert((r.event_key, r.record_valid_from_ms), r.clone());
        }
        for v in &t.superseded_event_facts {
            for r in self.event_fact.values_mut() {
                if r.session_key == v.session_key && r.record_valid_from_ms == v.valid_from_ms {
                    r.record_valid_to_ms = Some(v.valid_to_ms);
                    r.is_record_valid = false;
                }
            }
        }
        for r in t.session_fact.rows() {
            self.session_fact
                .insert((r.session_key, r.record_valid_from_ms), r.clone());
        }
        let mut put = |table, key| {
            self.keys.entry(table).or_default().insert(key);
        };
        t.song_dim
            .rows()
            .iter()
            .for_each(|r| put("song", r.song_key));
        t.location_dim
            .rows()
            .iter()
            .for_each(|r| put("location", r.location_key));
        t.date_dim
            .rows()
            .iter()
            .for_each(|r| put("date", r.date_key));
        t.date_time_dim
            .rows()
            .iter()
            .for_each(|r| put("date_time", r.date_time_key));
        t.user_dim
            .rows()
            .iter()
            .for_each(|r| put("user", r.user_key));
        t.event_dim
            .rows()
            .iter()
            .for_each(|r| put("event", r.event_key));
        t.session_dim
            .rows()
            .iter()
            .for_each(|r| put("session", r.session_key));
    }

    fn has(&self, table: &str, key: i64) -> bool {
        self.keys.get(table).is_some_and(|keys| keys.contains(&key))
    }
}

#[test]
fn simulated_events_become_consistent_facts() {
    let partitions = simulated(300, 4, 8, 4);
    let mut transformer = common::transformer_over(&partitions);
    // Round-robin over partitions, a few messages at a time, in batches of 1,000.
    let mut order = Vec::new();
    let longest = partitions.iter().map(|p| p.payloads.len()).max().unwrap();
    for start in (0..longest).step_by(7) {
        for (i, p) in partitions.iter().enumerate() {
            for offset in start..(start + 7).min(p.payloads.len()) {
                order.push((i, offset));
            }
        }
    }
    let mut merged = Merged::default();
    let mut warehouse = Warehouse::default();
    let (mut consumed, mut landed) = (0, 0);
    for chunk in order.chunks(1_000) {
        let output = transformer.process(
            chunk
                .iter()
                .map(|&(i, offset)| partitions[i].message(offset)),
            0,
        );
        consumed += output.stats.consumed;
        landed += output.stats.landed;
        assert_eq!(output.stats.duplicates + output.stats.rejected, 0);
        merged.add(&output.tables);
        apply(&mut warehouse, &output);
    }
    let output = transformer.finish();
    merged.add(&output.tables);
    apply(&mut warehouse, &output);
    assert_eq!(consumed, order.len() as u64);
    assert_eq!(landed, consumed);
    assert!(transformer.state().open.is_empty());

    // Every listen is exactly one current event_fact row, and nothing else is.
    let listens: Vec<(i64, f64)> = partitions
        .iter()
        .filter(|p| p.kind == EventKind::Listen)
        .flat_map(|p| p.payloads.iter())
        .map(
            |json| match RawEvent::parse(EventKind::Listen, json).unwrap() {
                RawEvent::Listen(l) => (
                    keys::event_key(
                        l.context.session_id,
                        l.context.item_in_session,
                        l.context.ts,
                    ),
                    l.song.duration,
                ),
                _ => unreachable!(),
            },
        )
        .collect();
    assert!(listens.len() > 5_000, "{} listens", listens.len());
    let current: Vec<_> = merged
        .event_fact
        .values()
        .filter(|r| r.is_record_valid)
        .collect();
    assert_eq!(current.len(), listens.len());
    let fact_keys: HashSet<i64> = current.iter().map(|r| r.event_key).collect();
    assert_eq!(fact_keys.len(), listens.len());
    assert!(listens.iter().all(|(key, _)| fact_keys.contains(key)));

    // Session facts add up over their listens, and each session has one current row.
    let mut per_session: HashMap<i64, (f64, i64, usize, usize)> = HashMap::new();
    for r in &current {
        let entry = per_session.entry(r.session_key).or_default();
        entry.0 += r.duration;
        entry.1 += 1;
        entry.2 += usize::from(r.is_first_listen_event);
        entry.3 += usize::from(r.is_last_listen_event);
    }
    let sessions: Vec<_> = merged
        .session_fact
        .values()
        .filter(|r| r.is_record_valid)
        .collect();
    let session_keys: HashSet<i64> = sessions.iter().map(|r| r.session_key).collect();
    assert_eq!(session_keys.len(), sessions.len());
    for s in &sessions {
        let (time, count, firsts, lasts) =
            per_session.get(&s.session_key).copied().unwrap_or_default();
        assert!((s.listening_time - time).abs() < 1e-6, "{s:?}");
        assert_eq!(s.listen_count, count);
        if count > 0 {
            assert_eq!((firsts, lasts), (1, 1), "{s:?}");
        }
        assert!(s.start_ms <= s.end_ms);
        assert!(merged.has("session", s.session_key));
        assert!(merged.has("location", s.primary_location_key));
        assert!(s.user_key.is_none_or(|k| merged.has("user", k)));
    }
    assert!(per_session.keys().all(|k| session_keys.contains(k)));

    // Foreign keys of every event fact.
    for r in &current {
        for (table, key) in [
            ("user", r.user_key),
            ("session", r.session_key),
            ("date_time", r.date_time_key),
            ("date", r.date_key),
            ("location", r.location_key),
            ("song", r.song_key),
            ("event", r.event_key),
        ] {
            assert!(merged.has(table, key), "{table} {key} of {r:?}");
        }
    }
    // Users: one current version each, and paid and free ones both exist.
    let users = warehouse.rows("user_dim");
    assert!(users.iter().any(|r| r.contains("level=\"paid\"")));
    assert!(
        users.iter().any(|r| r.contains("is_current=false")),
        "no level changes"
    );
}
