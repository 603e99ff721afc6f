//! What the transformation keeps between batches: event-time clocks per partition, open
//! sessions, recently closed ones, and per-user history. Checkpointed as keyed records (one
//! per session, one per user, one for the clocks) in a compact binary encoding, so that a
//! checkpoint writes only what changed since the last one.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use warehouse::keys;

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
    /// Not stored: a checkpoint holds the views and listens they derive from, and
    /// restoring rebuilds them ([`Session::rebuild_keys`]).
    #[serde(skip)]
    pub view_keys: HashSet<i64, KeyHash>,
    #[serde(skip)]
    pub listen_keys: HashSet<i64, KeyHash>,
    /// The times of its page views and listens, in order: where it paused. Not stored,
    /// rebuilt with the keys.
    #[serde(skip)]
    pub times: Vec<i64>,
    /// Set when a late event reopened a closed session: what its last version was.
    pub previous: Option<Box<Emitted>>,
}

/// What a session's last close emitted, kept so that a late event can supersede it: its
/// session_fact row, which the new version writes again closed (its listens' rows are
/// closed in the warehouse by the version's start, see
/// [`SupersededFacts`](super::rows::SupersededFacts)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    pub session_fact: SessionFactRow,
    /// Where formats 5 and before kept the version's event_fact rows.
    #[serde(rename = "event_facts")]
    former_facts: FormerFacts,
    /// The user's listen trail just before the session, so that a new version starts
    /// from the same place.
    pub trail_before: Option<ListenTrail>,
}

impl Emitted {
    pub fn new(session_fact: SessionFactRow, trail_before: Option<ListenTrail>) -> Emitted {
        Emitted {
            session_fact,
            former_facts: FormerFacts,
            trail_before,
        }
    }
}

/// The event_fact rows of a version as formats 5 and before stored them: read and
/// dropped, and written as none, so that records of every format share one layout.
/// (The rows were a third of the state's bytes, kept only to be written again closed.)
#[derive(Clone, Copy, Debug, PartialEq)]
struct FormerFacts;

impl Serialize for FormerFacts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(std::iter::empty::<EventFactRow>())
    }
}

impl<'de> Deserialize<'de> for FormerFacts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<EventFactRow>::deserialize(deserializer).map(|_| FormerFacts)
    }
}

/// A closed session, kept for a while to recognise redeliveries and late events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub session: Session,
    pub emitted: Emitted,
    /// When the watermark passes this, the session is forgotten.
    pub evict_after_ms: i64,
}

/// What a user's later events need: when they registered, the history of their level,
/// and their listen trail. Not their details: every logged-in event carries those, and
/// a version's rows take them from the event that makes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    pub registration_ms: i64,
    /// Every version: when it began and whether the user was paying.
    pub versions: Vec<(i64, bool)>,
    pub trail: Option<ListenTrail>,
}

/// A user's record in format 4, which also held their details as
/// first seen; read, and the details dropped.
#[derive(Deserialize)]
struct PreviousUserState {
    _first_name: String,
    _last_name: String,
    _gender: String,
    registration_ms: i64,
    _city: String,
    _zip: String,
    _state: String,
    _lon: f64,
    _lat: f64,
    versions: Vec<(i64, bool)>,
    trail: Option<ListenTrail>,
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

/// The keys whose records changed since the last checkpoint. A key whose record is gone
/// from the state (a session closed and forgotten) stands for a deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub sessions: HashMap<i64, SessionChange, KeyHash>,
    pub users: HashSet<i64, KeyHash>,
}

/// How a session's record changed since the last checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionChange {
    /// Opened, closed, reopened, versioned or forgotten: the record is written again.
    Whole,
    /// An open session that only gained page views and listens: those from these
    /// positions on are written beside its record, so that a long session is not
    /// written again at every checkpoint.
    Appended {
        views_from: usize,
        listens_from: usize,
    },
}

impl Changes {
    /// The session's record is to be written whole (or deleted, if it is gone).
    pub fn session(&mut self, key: i64) {
        self.sessions.insert(key, SessionChange::Whole);
    }

    /// The open session is about to gain an event; it holds `views` page views and
    /// `listens` listens before it.
    pub fn appending(&mut self, key: i64, views: usize, listens: usize) {
        self.sessions.entry(key).or_insert(SessionChange::Appended {
            views_from: views,
            listens_from: listens,
        });
    }
}

/// The version of the records' encoding: the first byte of every record. A record of a
/// format this pipeline does not read is refused rather than misread.
pub const RECORD_FORMAT: u8 = 6;

/// The formats read: 4 held users' details ([`PreviousUserState`]), and 4 and 5 a closed
/// version's event_fact rows ([`FormerFacts`]); both are dropped on reading, so that a
/// warehouse of an earlier version resumes. A pipeline of those versions refuses format
/// 6, whose closed sessions hold no rows to supersede.
pub const READ_RECORD_FORMATS: std::ops::RangeInclusive<u8> = 4..=RECORD_FORMAT;

/// The format whose users' records hold their details.
const DETAILED_USERS_FORMAT: u8 = 4;

/// A session's record: open, or closed and remembered for a while.
#[derive(Deserialize)]
enum SessionRecord {
    Open(Session),
    Closed(Box<Closed>),
}

/// [`SessionRecord`] borrowed, for writing without a copy: the same encoding.
#[derive(Serialize)]
enum SessionRecordRef<'a> {
    Open(&'a Session),
    Closed(&'a Closed),
}

/// A record that does not decode: of another format, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {problem}")]
pub struct RecordError {
    what: String,
    problem: String,
}

/// What a checkpoint writes: the clocks, per changed key its record or `None` for a
/// deletion, and the events appended to open sessions whose record stands. A session
/// written whole (or deleted) drops the events stored beside it before.
#[derive(Debug, Default)]
pub struct Records {
    pub clocks: Vec<u8>,
    pub sessions: Vec<(i64, Option<Vec<u8>>)>,
    pub session_events: Vec<(i64, Vec<u8>)>,
    pub users: Vec<(i64, Option<Vec<u8>>)>,
    /// How many sessions (open and closed) and users the state holds: a store that
    /// keeps superseded records beside the current ones can tell from these how much of
    /// it is stale.
    pub live_sessions: usize,
    pub live_users: usize,
}

/// Page views and listens appended to an open session since a checkpoint, and from
/// which positions: restored in that order after the session's record.
#[derive(Deserialize)]
struct SessionEvents {
    views_from: usize,
    listens_from: usize,
    views: Vec<View>,
    listens: Vec<Listen>,
}

/// [`SessionEvents`] borrowed, for writing without a copy: the same encoding.
#[derive(Serialize)]
struct SessionEventsRef<'a> {
    views_from: usize,
    listens_from: usize,
    views: &'a [View],
    listens: &'a [Listen],
}

impl Records {
    /// The bytes a checkpoint of these records writes: each record with its key.
    pub fn bytes(&self) -> u64 {
        let keyed = |records: &[(i64, Option<Vec<u8>>)]| {
            records
                .iter()
                .map(|(_, r)| 8 + r.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
        };
        let appended: usize = self.session_events.iter().map(|(_, r)| 8 + r.len()).sum();
        (self.clocks.len() + keyed(&self.sessions) + appended + keyed(&self.users)) as u64
    }
}

fn encode(what: &str, value: &impl Serialize) -> Result<Vec<u8>, RecordError> {
    let mut bytes = vec![RECORD_FORMAT];
    let encoded = postcard::to_allocvec(value).map_err(|e| RecordError {
        what: what.to_owned(),
        problem: e.to_string(),
    })?;
    bytes.extend_from_slice(&encoded);
    Ok(bytes)
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, RecordError> {
    let fail = |problem: String| RecordError {
        what: what.to_owned(),
        problem,
    };
    match bytes.split_first() {
        Some((format, rest)) if READ_RECORD_FORMATS.contains(format) => {
            postcard::from_bytes(rest).map_err(|e| fail(e.to_string()))
        }
        Some((format, _)) => Err(fail(format!(
            "written in format {format}, this pipeline reads formats {} to {}",
            READ_RECORD_FORMATS.start(),
            READ_RECORD_FORMATS.end()
        ))),
        None => Err(fail("empty".to_owned())),
    }
}

/// A user's record, in any format read.
fn decode_user(key: i64, bytes: &[u8]) -> Result<UserState, RecordError> {
    let what = format!("user {key}");
    if bytes.first() != Some(&DETAILED_USERS_FORMAT) {
        return decode(&what, bytes);
    }
    let previous: PreviousUserState = decode(&what, bytes)?;
    Ok(UserState {
        registration_ms: previous.registration_ms,
        versions: previous.versions,
        trail: previous.trail,
    })
}

impl Session {
    /// The event keys and times of its page views and listens, from the views and
    /// listens: what a restored session needs to recognise redeliveries and pauses.
    pub fn rebuild_keys(&mut self) {
        self.view_keys = self
            .views
            .iter()
            .map(|v| keys::event_key(self.session_id, v.item, v.ts_ms))
            .collect();
        self.listen_keys = self.listens.iter().map(|l| l.event_key).collect();
        self.times = self.views.iter().map(|v| v.ts_ms).collect();
        self.times.extend(self.listens.iter().map(|l| l.ts_ms));
        self.times.sort_unstable();
    }
}

impl State {
    /// Rebuilds what checkpoints do not store (see [`Session::rebuild_keys`]).
    pub fn rebuild_keys(&mut self) {
        let closed = self.closed.values_mut().map(|c| &mut c.session);
        for session in self.open.values_mut().chain(closed) {
            session.rebuild_keys();
        }
    }

    /// Every key, as changed: what a first checkpoint (or a migration) writes.
    pub fn everything(&self) -> Changes {
        Changes {
            sessions: self
                .open
                .keys()
                .chain(self.closed.keys())
                .map(|key| (*key, SessionChange::Whole))
                .collect(),
            users: self.users.keys().copied().collect(),
        }
    }

    /// The records of the changed keys, each encoded with the format byte first. `Err`
    /// only for a value serde cannot describe: a bug.
    pub fn records(&self, changes: &Changes) -> Result<Records, RecordError> {
        let mut sessions = Vec::with_capacity(changes.sessions.len());
        let mut session_events = Vec::new();
        for (key, change) in &changes.sessions {
            if let (
                SessionChange::Appended {
                    views_from,
                    listens_from,
                },
                Some(open),
            ) = (change, self.open.get(key))
                && *views_from <= open.views.len()
                && *listens_from <= open.listens.len()
            {
                let events = SessionEventsRef {
                    views_from: *views_from,
                    listens_from: *listens_from,
                    views: &open.views[*views_from..],
                    listens: &open.listens[*listens_from..],
                };
                session_events.push((*key, encode("a session's events", &events)?));
                continue;
            }
            let record = match (self.open.get(key), self.closed.get(key)) {
                (Some(open), _) => Some(SessionRecordRef::Open(open)),
                (None, Some(closed)) => Some(SessionRecordRef::Closed(closed)),
                (None, None) => None,
            };
            let bytes = record.map(|r| encode("a session", &r)).transpose()?;
            sessions.push((*key, bytes));
        }
        let mut users = Vec::with_capacity(changes.users.len());
        for key in &changes.users {
            let bytes = self
                .users
                .get(key)
                .map(|u| encode("a user", u))
                .transpose()?;
            users.push((*key, bytes));
        }
        // In key order, so that a checkpoint's bytes do not depend on hashing.
        sessions.sort_unstable_by_key(|(key, _)| *key);
        session_events.sort_unstable_by_key(|(key, _)| *key);
        users.sort_unstable_by_key(|(key, _)| *key);
        Ok(Records {
            clocks: encode("the partition clocks", &self.clocks)?,
            sessions,
            session_events,
            users,
            live_sessions: self.open.len() + self.closed.len(),
            live_users: self.users.len(),
        })
    }

    /// The state the records describe: each session's record, then the events stored
    /// beside it, in the order they were appended.
    pub fn from_records(
        clocks: &[u8],
        sessions: impl IntoIterator<Item = (i64, Vec<u8>)>,
        session_events: impl IntoIterator<Item = (i64, Vec<u8>)>,
        users: impl IntoIterator<Item = (i64, Vec<u8>)>,
    ) -> Result<State, RecordError> {
        let mut state = State {
            clocks: decode("the partition clocks", clocks)?,
            ..State::default()
        };
        for (key, bytes) in sessions {
            match decode(&format!("session {key}"), &bytes)? {
                SessionRecord::Open(session) => {
                    state.open.insert(key, session);
                }
                SessionRecord::Closed(closed) => {
                    state.closed.insert(key, *closed);
                }
            }
        }
        let mut appended = session_events
            .into_iter()
            .map(|(key, bytes)| {
                let events: SessionEvents = decode(&format!("session {key}'s events"), &bytes)?;
                Ok((key, events))
            })
            .collect::<Result<Vec<_>, RecordError>>()?;
        appended.sort_by_key(|(key, e)| (*key, e.views_from, e.listens_from));
        let mut extended = Vec::with_capacity(appended.len());
        for (key, events) in appended {
            let fail = |problem: &str| RecordError {
                what: format!("session {key}'s events"),
                problem: problem.to_owned(),
            };
            let session = state
                .open
                .get_mut(&key)
                .ok_or_else(|| fail("stored beside no open session"))?;
            if events.views_from != session.views.len()
                || events.listens_from != session.listens.len()
            {
                return Err(fail("do not follow the events the session holds"));
            }
            session.views.extend(events.views);
            session.listens.extend(events.listens);
            extended.push(key);
        }
        for (key, bytes) in users {
            state.users.insert(key, decode_user(key, &bytes)?);
        }
        state.rebuild_keys();
        // The record holds the session's first and last times as they were when it was
        // written; the events appended since may reach past them.
        for key in extended {
            if let Some(session) = state.open.get_mut(&key)
                && let (Some(&first), Some(&last)) = (session.times.first(), session.times.last())
            {
                session.first_ms = session.first_ms.min(first);
                session.last_ms = session.last_ms.max(last);
            }
        }
        Ok(state)
    }
}
