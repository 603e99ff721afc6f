//! The star-schema transformation: messages in, rows of every table and rejects out.
//! Pure: no IO, no clock (the caller passes the receive time for dead letters).
//!
//! Sessions close by event time: when the watermark (the least latest event time over
//! the partitions of `page_view_events` and `listen_events`) has passed a session's last
//! event by the session timeout. Because every partition is in event-time order (the
//! simulator produces in time order, keyed by user), no event of a session can arrive
//! after that, so a session's facts depend only on its events: the tables are a function
//! of the set of events, whatever the batching, the interleaving of partitions, or
//! redelivery. A session whose events pause for a timeout or more (a quiet user of
//! eventsim's) has a version ending at each such pause, whether or not the watermark
//! passed the pause before the events after it arrived. Events that do arrive for a
//! closed session (an out-of-order producer) make a new version of its facts; events
//! too old to place are dead-lettered as `too_late`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use warehouse::raw::EventKind;

use super::rows::{KeyHash, Tables};
use super::state::{Changes, Session, State};

mod dimensions;
mod route;
mod sessions;
mod users;

/// A message as the source read it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// What the topic carries; the runtime maps topic names to kinds.
    pub kind: EventKind,
    /// The topic (or file) name, for dead letters and event-time clocks.
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
}

/// Tunables of the transformation.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// A session closes once the watermark is this far past its last event: eventsim's
    /// `session-gap`.
    pub session_timeout_ms: i64,
    /// How long after closing a session is remembered, to drop redeliveries and version
    /// late events; older events of unknown sessions are dead-lettered as `too_late`.
    pub retention_ms: i64,
    /// How many dimension keys are remembered to avoid re-emitting the same row; past
    /// this the memory is cleared (rows are insert-if-absent, so repeats are harmless).
    pub max_remembered_keys: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            session_timeout_ms: 30 * 60 * 1000,
            retention_ms: 2 * 60 * 60 * 1000,
            max_remembered_keys: 1 << 20,
        }
    }
}

/// Counts of one batch: every message consumed is landed, a duplicate, or rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub consumed: u64,
    pub landed: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub sessions_closed: u64,
    /// Late events that made a new version of a closed session.
    pub late: u64,
}

impl Stats {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, other: &Stats) {
        self.consumed += other.consumed;
        self.landed += other.landed;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.sessions_closed += other.sessions_closed;
        self.late += other.late;
    }
}

/// What one call produced.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub tables: Tables,
    pub stats: Stats,
}

/// The reason code of events that arrive too late to place.
pub const TOO_LATE: &str = "too_late";

/// The transformation with its state.
#[derive(Debug)]
pub struct Transformer {
    config: Config,
    state: State,
    /// Dimension keys already emitted; not checkpointed (repeats are harmless).
    remembered: HashSet<i64, KeyHash>,
    interned: Interner,
    /// The keys whose state records changed since the last checkpoint.
    changes: Changes,
    /// Open sessions that may hold a pause of a timeout or more between their events,
    /// to be looked at when the watermark moves. Not checkpointed: on resuming, every
    /// open session is looked at once.
    pausing: HashSet<i64, KeyHash>,
}

/// Shared copies of strings that repeat across events (user agents, pages, methods), so
/// that a row costs a reference count rather than an allocation.
#[derive(Debug, Default)]
struct Interner(HashMap<Box<str>, Arc<str>>);

impl Interner {
    /// Past this many strings the table starts over: a bound on memory, whatever comes.
    const LIMIT: usize = 4_096;

    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return Arc::clone(shared);
        }
        if self.0.len() >= Interner::LIMIT {
            self.0.clear();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(text.into(), Arc::clone(&shared));
        shared
    }
}

impl Transformer {
    pub fn new(config: Config) -> Transformer {
        Transformer::with_state(config, State::default())
    }

    /// Resumes from a checkpointed state.
    pub fn with_state(config: Config, state: State) -> Transformer {
        let pausing = state.open.keys().copied().collect();
        Transformer {
            config,
            state,
            remembered: HashSet::default(),
            interned: Interner::default(),
            changes: Changes::default(),
            pausing,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// What changed in the state since the last checkpoint: what an incremental
    /// checkpoint writes.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The state is durable as it stands: changes count from here.
    pub fn checkpointed(&mut self) {
        self.changes = Changes::default();
    }

    /// Declares a partition the caller reads, so that the watermark waits for it even
    /// before it delivers anything. Only page views and listens carry sessions, so only
    /// their partitions count.
    pub fn track(&mut self, kind: EventKind, topic: &str, partition: i32) {
        if session_bearing(kind) {
            self.state.clock(topic, partition);
        }
    }

    /// Forgets a partition the caller no longer reads: the watermark stops waiting for
    /// it, which it would otherwise hold back for good.
    pub fn untrack(&mut self, topic: &str, partition: i32) {
        self.state
            .clocks
            .retain(|c| c.partition != partition || c.topic != topic);
    }

    /// Transforms a batch. Sessions the watermark has passed are closed at its end.
    pub fn process<'a>(
        &mut self,
        messages: impl IntoIterator<Item = Message<'a>>,
        received_at_ms: i64,
    ) -> Output {
        let mut out = Output::default();
        for message in messages {
            out.stats.consumed += 1;
            self.one(message, received_at_ms, &mut out);
        }
        if let Some(watermark) = self.state.watermark() {
            self.close_until(watermark, &mut out);
        }
        out
    }

    /// Closes every open session, as at the end of a finite input.
    pub fn finish(&mut self) -> Output {
        let mut out = Output::default();
        self.close_until(i64::MAX, &mut out);
        out
    }
}

/// Only page views and listens carry sessions.
fn session_bearing(kind: EventKind) -> bool {
    matches!(kind, EventKind::PageView | EventKind::Listen)
}

/// Which of a session's streams an event belongs to.
#[derive(Clone, Copy)]
enum Part {
    View,
    Listen,
}

impl Part {
    fn keys(self, session: &Session) -> &HashSet<i64, KeyHash> {
        match self {
            Part::View => &session.view_keys,
            Part::Listen => &session.listen_keys,
        }
    }
}

enum Place {
    Open,
    New,
    Closed,
    TooLate(i64),
}

enum Landed {
    Yes,
    Duplicate,
    TooLate(i64),
}
