//! What the transformation keeps between batches: event-time clocks per partition, open
//! sessions, recently closed ones, and per-user history. Serializable, so that it is
//! checkpointed with the batch it belongs to.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::rows::{EventFactRow, KeyHash, SessionFactRow};

/// The latest event time seen on one partition of a session-bearing topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionClock {
    pub topic: String,
    pub partition: i32,
    /// `None` until the partition delivers an event: it then holds the watermark back.
    pub latest_ms: Option<i64>,
}

/// One page view of a session, as far as the session's facts need it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub item: i64,
    pub ts_ms: i64,
    pub location_key: i64,
    pub paid: bool,
}

/// One listen of a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Listen {
    pub item: i64,
    pub ts_ms: i64,
    pub event_key: i64,
    pub location_key: i64,
    pub song_key: i64,
    /// The artist's fingerprint: the listen trail compares artists, nothing more.
    pub artist_key: i64,
    pub duration: f64,
    pub paid: bool,
    pub user_id: i64,
    pub registration_ms: i64,
}

/// What a user's previous listen leaves for the next one: where it was, its artist, and
/// how many listens in a row were by that artist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenTrail {
    pub location_key: i64,
    pub artist_key: i64,
    pub streak: i64,
}

/// A session (of one user, or the anonymous part of a session) still receiving events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: i64,
    pub user_id: Option<i64>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub views: Vec<View>,
    pub listens: Vec<Listen>,
    /// Event keys of the page views and of the listens seen, to drop redelivered ones.
    pub view_keys: HashSet<i64, KeyHash>,
    pub listen_keys: HashSet<i64, KeyHash>,
    /// Set when a late event reopened a closed session: what its last version was.
    pub previous: Option<Box<Emitted>>,
}

/// The facts a session's last close emitted, kept so that a late event can supersede them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    pub session_fact: SessionFactRow,
    pub event_facts: Vec<EventFactRow>,
    /// The user's listen trail just before the session, so that a new version starts
    /// from the same place.
    pub trail_before: Option<ListenTrail>,
}

/// A closed session, kept for a while to recognise redeliveries and late events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub session: Session,
    pub emitted: Emitted,
    /// When the watermark passes this, the session is forgotten.
    pub evict_after_ms: i64,
}

/// A user's details as first seen, and the history of their level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    pub registration_ms: i64,
    pub city: String,
    pub zip: String,
    pub state: String,
    pub lon: f64,
    pub lat: f64,
    /// Every version: when it began and whether the user was paying.
    pub versions: Vec<(i64, bool)>,
    pub trail: Option<ListenTrail>,
}

/// Everything that crosses batch boundaries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub clocks: Vec<PartitionClock>,
    pub open: HashMap<i64, Session, KeyHash>,
    pub closed: HashMap<i64, Closed, KeyHash>,
    pub users: HashMap<i64, UserState, KeyHash>,
}

impl State {
    /// The event time before which every session-bearing partition has moved on: the
    /// least of the partitions' latest times. `None` while some partition has delivered
    /// nothing.
    pub fn watermark(&self) -> Option<i64> {
        let mut least: Option<i64> = None;
        for clock in &self.clocks {
            let latest = clock.latest_ms?;
            least = Some(least.map_or(latest, |l| l.min(latest)));
        }
        least
    }

    pub fn clock(&mut self, topic: &str, partition: i32) -> &mut PartitionClock {
        let i = match self
            .clocks
            .iter()
            .position(|c| c.partition == partition && c.topic == topic)
        {
            Some(i) => i,
            None => {
                self.clocks.push(PartitionClock {
                    topic: topic.to_owned(),
                    partition,
                    latest_ms: None,
                });
                self.clocks.len() - 1
            }
        };
        &mut self.clocks[i]
    }
}
