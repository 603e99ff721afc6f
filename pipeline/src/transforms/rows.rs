//! One row type per warehouse table, and `Tables`: the rows of one output, with at most
//! one row per primary key (the last state wins), as a MERGE into the warehouse needs,
//! and the fact versions that later ones close.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq)]
pub struct SongRow {
    pub song_key: i64,
    pub artist: String,
    pub song: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocationRow {
    pub location_key: i64,
    pub city: String,
    pub zip: String,
    pub state: String,
    pub lon: f64,
    pub lat: f64,
}

/// A date is its key; the other columns follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRow {
    pub date_key: i64,
    /// Days since 1970-01-01.
    pub epoch_day: i64,
}

/// An instant to the second is its key; the other columns follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTimeRow {
    pub date_time_key: i64,
    pub epoch_second: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub user_key: i64,
    pub user_id: i64,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub level: String,
    pub registration_ms: i64,
    pub registration_city: String,
    pub registration_zip: String,
    pub registration_state: String,
    pub registration_lon: f64,
    pub registration_lat: f64,
    pub valid_from_ms: i64,
    pub valid_to_ms: Option<i64>,
    pub is_current: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub event_key: i64,
    pub ts_ms: i64,
    pub user_id: Option<i64>,
    pub session_id: i64,
    pub item_in_session: i64,
    /// Shared: a few user agents, pages and methods repeat across millions of events.
    pub user_agent: Arc<str>,
    pub page: Arc<str>,
    pub auth: &'static str,
    pub method: Arc<str>,
    pub status: i64,
    pub level: &'static str,
    pub is_listen_event: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub session_key: i64,
    pub session_id: i64,
    pub user_id: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BridgeRow {
    pub session_key: i64,
    pub event_key: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventFactRow {
    pub event_key: i64,
    pub user_key: i64,
    pub user_id: i64,
    pub session_key: i64,
    pub date_time_key: i64,
    pub date_key: i64,
    pub location_key: i64,
    pub song_key: i64,
    pub ts_ms: i64,
    pub level: String,
    pub duration: f64,
    pub is_moving: bool,
    pub consecutive_no_song: i64,
    pub is_first_listen_event: bool,
    pub is_last_listen_event: bool,
    pub is_song_skipped: Option<bool>,
    pub next_listen_event_time_gap: Option<f64>,
    pub record_valid_from_ms: i64,
    pub record_valid_to_ms: Option<i64>,
    pub is_record_valid: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionFactRow {
    pub session_key: i64,
    pub user_key: Option<i64>,
    pub user_id: Option<i64>,
    pub date_key: i64,
    pub date_time_key: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub level: String,
    pub session_duration: f64,
    pub listening_time: f64,
    pub listen_count: i64,
    pub event_count: i64,
    pub primary_location_key: i64,
    pub record_valid_from_ms: i64,
    pub record_valid_to_ms: Option<i64>,
    pub is_record_valid: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthFactRow {
    pub event_key: i64,
    pub session_key: i64,
    pub user_id: Option<i64>,
    pub date_time_key: i64,
    pub date_key: i64,
    pub location_key: i64,
    pub ts_ms: i64,
    pub level: &'static str,
    pub success: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LevelChangeFactRow {
    pub event_key: i64,
    pub user_id: i64,
    pub session_key: i64,
    pub date_time_key: i64,
    pub date_key: i64,
    pub location_key: i64,
    pub ts_ms: i64,
    pub auth: &'static str,
    pub level: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRow {
    pub source_topic: String,
    pub source_partition: i64,
    pub source_offset: i64,
    pub reason: &'static str,
    pub field: Option<String>,
    pub detail: String,
    pub payload: Vec<u8>,
    pub received_at_ms: i64,
}

/// A hasher for integer keys, most of them fingerprints already: one multiplication
/// spreads them (Fx-style), far cheaper than the default SipHash, which guards against
/// adversarial keys that fingerprints and dates are not.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

/// Builds [`KeyHasher`]s.
pub type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

/// Rows keyed by primary key, in first-insertion order; a later row with the same key
/// replaces the earlier one in place.
#[derive(Clone, Debug)]
pub struct Keyed<K, R> {
    index: HashMap<K, usize, KeyHash>,
    rows: Vec<R>,
}

impl<K, R> Default for Keyed<K, R> {
    fn default() -> Self {
        Keyed {
            index: HashMap::default(),
            rows: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq, R> Keyed<K, R> {
    /// Adds a row, or replaces the row with the same key.
    pub fn upsert(&mut self, key: K, row: R) {
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    /// Adds a row unless one with the same key is there: for rows that are a function of
    /// their key.
    pub fn insert_if_absent(&mut self, key: K, row: impl FnOnce() -> R) {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.index.entry(key) {
            entry.insert(self.rows.len());
            self.rows.push(row());
        }
    }

    pub fn contains(&self, key: &K) -> bool {
        self.index.contains_key(key)
    }

    pub fn rows(&self) -> &[R] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The rows of one output, for every table.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub song_dim: Keyed<i64, SongRow>,
    pub location_dim: Keyed<i64, LocationRow>,
    pub date_dim: Keyed<i64, DateRow>,
    pub date_time_dim: Keyed<i64, DateTimeRow>,
    pub user_dim: Keyed<i64, UserRow>,
    pub event_dim: Keyed<i64, EventRow>,
    pub session_dim: Keyed<i64, SessionRow>,
    pub event_session_bridge: Keyed<(i64, i64), BridgeRow>,
    pub event_fact: Keyed<(i64, i64), EventFactRow>,
    pub session_fact: Keyed<(i64, i64), SessionFactRow>,
    pub auth_fact: Keyed<i64, AuthFactRow>,
    pub level_change_fact: Keyed<i64, LevelChangeFactRow>,
    /// Rejects are never merged: each is one message.
    pub dead_letters: Vec<DeadLetterRow>,
    /// Versions of sessions' event_fact rows that a later version replaces, closed after
    /// the rows above are written (they may be among them).
    pub superseded_event_facts: Vec<SupersededFacts>,
}

/// A version of a session's listen facts that a later version replaces: every event_fact
/// row of the session that began at `valid_from_ms` ends at `valid_to_ms`. Sinks close
/// them with one update per batch, so that the state need not keep the rows themselves
/// to write them again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupersededFacts {
    pub session_key: i64,
    pub valid_from_ms: i64,
    pub valid_to_ms: i64,
}

impl Tables {
    /// Rows per table, by table name.
    pub fn row_counts(&self) -> [(&'static str, usize); 13] {
        [
            ("song_dim", self.song_dim.len()),
            ("location_dim", self.location_dim.len()),
            ("date_dim", self.date_dim.len()),
            ("date_time_dim", self.date_time_dim.len()),
            ("user_dim", self.user_dim.len()),
            ("event_dim", self.event_dim.len()),
            ("session_dim", self.session_dim.len()),
            ("event_session_bridge", self.event_session_bridge.len()),
            ("event_fact", self.event_fact.len()),
            ("session_fact", self.session_fact.len()),
            ("auth_fact", self.auth_fact.len()),
            ("level_change_fact", self.level_change_fact.len()),
            ("dead_letters", self.dead_letters.len()),
        ]
    }

    /// Rows in all tables.
    pub fn row_count(&self) -> usize {
        self.row_counts().iter().map(|(_, n)| n).sum()
    }
}
