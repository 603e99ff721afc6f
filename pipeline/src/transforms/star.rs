//! The star-schema transformation: messages in, rows of every table and rejects out.
//! Pure: no IO, no clock (the caller passes the receive time for dead letters).
//!
//! Sessions close by event time: when the watermark (the least latest event time over
//! the partitions of `page_view_events` and `listen_events`) has passed a session's last
//! event by the session timeout. Because every partition is in event-time order (the
//! simulator produces in time order, keyed by user), no event of a session can arrive
//! after that, so a session's facts depend only on its events: the tables are a function
//! of the set of events, whatever the batching, the interleaving of partitions, or
//! redelivery. Events that do arrive for a closed session (an out-of-order producer)
//! make a new version of its facts; events too old to place are dead-lettered as
//! `too_late`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use warehouse::keys;
use warehouse::raw::{
    AuthEvent, EventContext, EventKind, Level, ListenEvent, PageViewEvent, RawEvent,
    StatusChangeEvent,
};
use warehouse::time::DateTimeParts;

use super::rows::{
    AuthFactRow, BridgeRow, DateRow, DateTimeRow, DeadLetterRow, EventFactRow, EventRow, KeyHash,
    LevelChangeFactRow, LocationRow, SessionFactRow, SessionRow, SongRow, Tables, UserRow,
};
use super::state::{Closed, Emitted, Listen, ListenTrail, Session, State, UserState, View};

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
        Transformer {
            config,
            state,
            remembered: HashSet::default(),
            interned: Interner::default(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Declares a partition the caller reads, so that the watermark waits for it even
    /// before it delivers anything. Only page views and listens carry sessions, so only
    /// their partitions count.
    pub fn track(&mut self, kind: EventKind, topic: &str, partition: i32) {
        if session_bearing(kind) {
            self.state.clock(topic, partition);
        }
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

    fn one(&mut self, message: Message<'_>, received_at_ms: i64, out: &mut Output) {
        let reject = |reason: &'static str, field: Option<String>, detail: String| DeadLetterRow {
            source_topic: message.topic.to_owned(),
            source_partition: i64::from(message.partition),
            source_offset: message.offset,
            reason,
            field,
            detail,
            payload: message.payload.to_vec(),
            received_at_ms,
        };
        let event = match RawEvent::parse(message.kind, message.payload) {
            Ok(event) => event,
            Err(rejection) => {
                out.stats.rejected += 1;
                out.tables.dead_letters.push(reject(
                    rejection.reason.code(),
                    rejection.field.as_deref().map(str::to_owned),
                    rejection.to_string(),
                ));
                return;
            }
        };
        let ts = event.context().ts;
        if session_bearing(message.kind) {
            let clock = self.state.clock(message.topic, message.partition);
            clock.latest_ms = Some(clock.latest_ms.map_or(ts, |l| l.max(ts)));
        }
        let landed = match &event {
            RawEvent::PageView(view) => self.page_view(view, out),
            RawEvent::Listen(listen) => self.listen(listen, out),
            RawEvent::Auth(auth) => {
                self.auth(auth, out);
                Landed::Yes
            }
            RawEvent::StatusChange(change) => {
                self.status_change(change, out);
                Landed::Yes
            }
        };
        match landed {
            Landed::Yes => out.stats.landed += 1,
            Landed::Duplicate => out.stats.duplicates += 1,
            Landed::TooLate(watermark) => {
                out.stats.rejected += 1;
                out.tables.dead_letters.push(reject(
                    TOO_LATE,
                    Some("ts".to_owned()),
                    format!(
                        "event time {ts} is more than the session timeout and retention before the watermark {watermark}, and its session is unknown"
                    ),
                ));
            }
        }
    }

    /// The session a page view or listen belongs to, opened or reopened as needed.
    fn session(&mut self, key: i64, context: &EventContext<'_>, user_id: Option<i64>) -> Place {
        if self.state.open.contains_key(&key) {
            return Place::Open;
        }
        if self.state.closed.contains_key(&key) {
            return Place::Closed;
        }
        if let Some(watermark) = self.state.watermark()
            && context.ts + self.config.session_timeout_ms + self.config.retention_ms < watermark
        {
            return Place::TooLate(watermark);
        }
        self.state.open.insert(
            key,
            Session {
                session_id: context.session_id,
                user_id,
                first_ms: context.ts,
                last_ms: context.ts,
                ..Session::default()
            },
        );
        Place::New
    }

    /// Places a page view or listen in its session: opened, or reopened for a late event,
    /// and marked as seen. `Err` says what became of an event that is not placed (a
    /// redelivery, or too late).
    fn admit(
        &mut self,
        session_key: i64,
        event_key: i64,
        c: &EventContext<'_>,
        user_id: Option<i64>,
        part: Part,
        out: &mut Output,
    ) -> Result<(), Landed> {
        match self.session(session_key, c, user_id) {
            Place::TooLate(watermark) => return Err(Landed::TooLate(watermark)),
            Place::Closed => {
                if part
                    .keys(&self.state.closed[&session_key].session)
                    .contains(&event_key)
                {
                    return Err(Landed::Duplicate);
                }
                out.stats.late += 1;
                self.reopen(session_key);
            }
            Place::Open | Place::New => {}
        }
        let Some(session) = self.state.open.get_mut(&session_key) else {
            return Err(Landed::Duplicate);
        };
        let fresh = match part {
            Part::View => session.view_keys.insert(event_key),
            Part::Listen => session.listen_keys.insert(event_key),
        };
        if !fresh {
            return Err(Landed::Duplicate);
        }
        session.first_ms = session.first_ms.min(c.ts);
        session.last_ms = session.last_ms.max(c.ts);
        Ok(())
    }

    /// Reopens a closed session for a late event, remembering what it had emitted.
    fn reopen(&mut self, key: i64) {
        if let Some(closed) = self.state.closed.remove(&key) {
            let mut session = closed.session;
            session.previous = Some(Box::new(closed.emitted));
            self.state.open.insert(key, session);
        }
    }

    fn page_view(&mut self, view: &PageViewEvent<'_>, out: &mut Output) -> Landed {
        let c = &view.context;
        let user_id = view.user.as_ref().map(|u| u.user_id);
        let session_key = keys::session_key(c.session_id, user_id);
        let event_key = keys::event_key(c.session_id, c.item_in_session, c.ts);
        if let Err(landed) = self.admit(session_key, event_key, c, user_id, Part::View, out) {
            return landed;
        }
        let location_key = self.location(&c.location, out);
        if let Some(session) = self.state.open.get_mut(&session_key) {
            session.views.push(View {
                item: c.item_in_session,
                ts_ms: c.ts,
                location_key,
                paid: c.level == Level::Paid,
            });
        }
        self.instant(c.ts, out);
        if let Some(song) = &view.song {
            self.song(&song.artist, &song.song, out);
        }
        if let Some(user) = &view.user {
            self.user_level(user.user_id, c, user, out);
        }
        let tables = &mut out.tables;
        let interned = &mut self.interned;
        tables.event_dim.insert_if_absent(event_key, || EventRow {
            event_key,
            ts_ms: c.ts,
            user_id,
            session_id: c.session_id,
            item_in_session: c.item_in_session,
            user_agent: interned.get(&c.user_agent),
            page: interned.get(&view.page),
            auth: view.auth.name(),
            method: interned.get(&view.method),
            status: i64::from(view.status),
            level: c.level.name(),
            is_listen_event: view.page == "NextSong",
        });
        tables
            .session_dim
            .insert_if_absent(session_key, || SessionRow {
                session_key,
                session_id: c.session_id,
                user_id,
            });
        tables
            .event_session_bridge
            .insert_if_absent((session_key, event_key), || BridgeRow {
                session_key,
                event_key,
            });
        Landed::Yes
    }

    fn listen(&mut self, listen: &ListenEvent<'_>, out: &mut Output) -> Landed {
        let c = &listen.context;
        let user_id = listen.user.user_id;
        let session_key = keys::session_key(c.session_id, Some(user_id));
        let event_key = keys::event_key(c.session_id, c.item_in_session, c.ts);
        if let Err(landed) = self.admit(session_key, event_key, c, Some(user_id), Part::Listen, out)
        {
            return landed;
        }
        let location_key = self.location(&c.location, out);
        let song_key = self.song(&listen.song.artist, &listen.song.song, out);
        self.instant(c.ts, out);
        if let Some(session) = self.state.open.get_mut(&session_key) {
            session.listens.push(Listen {
                item: c.item_in_session,
                ts_ms: c.ts,
                event_key,
                location_key,
                song_key,
                artist_key: keys::fingerprint(&listen.song.artist),
                duration: listen.song.duration,
                paid: c.level == Level::Paid,
                user_id,
                registration_ms: listen.user.registration,
            });
        }
        Landed::Yes
    }

    fn auth(&mut self, auth: &AuthEvent<'_>, out: &mut Output) {
        let c = &auth.context;
        let user_id = auth.user.as_ref().map(|u| u.user_id);
        let event_key = keys::event_key(c.session_id, c.item_in_session, c.ts);
        let location_key = self.location(&c.location, out);
        let parts = self.instant(c.ts, out);
        out.tables
            .auth_fact
            .insert_if_absent(event_key, || AuthFactRow {
                event_key,
                session_key: keys::session_key(c.session_id, user_id),
                user_id,
                date_time_key: keys::date_time_key(&parts),
                date_key: keys::date_key(&parts),
                location_key,
                ts_ms: c.ts,
                level: c.level.name(),
                success: auth.success,
            });
    }

    fn status_change(&mut self, change: &StatusChangeEvent<'_>, out: &mut Output) {
        let c = &change.context;
        let user_id = change.user.user_id;
        let event_key = keys::event_key(c.session_id, c.item_in_session, c.ts);
        let location_key = self.location(&c.location, out);
        let parts = self.instant(c.ts, out);
        out.tables
            .level_change_fact
            .insert_if_absent(event_key, || LevelChangeFactRow {
                event_key,
                user_id,
                session_key: keys::session_key(c.session_id, Some(user_id)),
                date_time_key: keys::date_time_key(&parts),
                date_key: keys::date_key(&parts),
                location_key,
                ts_ms: c.ts,
                auth: change.auth.name(),
                level: c.level.name(),
            });
    }
}

impl Transformer {
    /// Emits a dimension row the first time its key is seen (as far as memory goes).
    fn remember(&mut self, key: i64) -> bool {
        if self.remembered.len() >= self.config.max_remembered_keys {
            self.remembered.clear();
        }
        self.remembered.insert(key)
    }

    fn location(&mut self, location: &warehouse::raw::Location<'_>, out: &mut Output) -> i64 {
        let key = keys::location_key(
            &location.city,
            &location.zip,
            &location.state,
            location.lon,
            location.lat,
        );
        if self.remember(key) {
            out.tables
                .location_dim
                .insert_if_absent(key, || LocationRow {
                    location_key: key,
                    city: location.city.to_string(),
                    zip: location.zip.to_string(),
                    state: location.state.to_string(),
                    lon: location.lon,
                    lat: location.lat,
                });
        }
        key
    }

    fn song(&mut self, artist: &str, song: &str, out: &mut Output) -> i64 {
        let key = keys::song_key(artist, song);
        if self.remember(key) {
            out.tables.song_dim.insert_if_absent(key, || SongRow {
                song_key: key,
                artist: artist.to_owned(),
                song: song.to_owned(),
            });
        }
        key
    }

    /// The date and date-time rows of an instant; date-time keys are remembered too, as
    /// they cannot collide with hashed keys in practice (they are below 10^14).
    fn instant(&mut self, ts_ms: i64, out: &mut Output) -> DateTimeParts {
        let parts = DateTimeParts::from_epoch_millis(ts_ms);
        let date_time_key = keys::date_time_key(&parts);
        if self.remember(date_time_key) {
            out.tables
                .date_time_dim
                .insert_if_absent(date_time_key, || DateTimeRow {
                    date_time_key,
                    epoch_second: parts.epoch_seconds(),
                });
            let date_key = keys::date_key(&parts);
            out.tables.date_dim.insert_if_absent(date_key, || DateRow {
                date_key,
                epoch_day: parts.epoch_day,
            });
        }
        parts
    }

    /// Type-2 history of a user's level, from their page views, which reach us in order.
    /// The first version starts at registration, so that its key does not depend on
    /// which event came first.
    fn user_level(
        &mut self,
        user_id: i64,
        c: &EventContext<'_>,
        user: &warehouse::raw::User<'_>,
        out: &mut Output,
    ) {
        let paid = c.level == Level::Paid;
        let state = self
            .state
            .users
            .entry(user_id)
            .or_insert_with(|| UserState {
                first_name: user.first_name.to_string(),
                last_name: user.last_name.to_string(),
                gender: user.gender.to_string(),
                registration_ms: user.registration,
                city: c.location.city.to_string(),
                zip: c.location.zip.to_string(),
                state: c.location.state.to_string(),
                lon: c.location.lon,
                lat: c.location.lat,
                versions: Vec::new(),
                trail: None,
            });
        let emit = |state: &UserState, i: usize, out: &mut Output| {
            let (from, paid) = state.versions[i];
            let to = state.versions.get(i + 1).map(|(next, _)| *next);
            let user_key = keys::user_key(user_id, from);
            out.tables.user_dim.upsert(
                user_key,
                UserRow {
                    user_key,
                    user_id,
                    first_name: state.first_name.clone(),
                    last_name: state.last_name.clone(),
                    gender: state.gender.clone(),
                    level: level_name(paid).to_owned(),
                    registration_ms: state.registration_ms,
                    registration_city: state.city.clone(),
                    registration_zip: state.zip.clone(),
                    registration_state: state.state.clone(),
                    registration_lon: state.lon,
                    registration_lat: state.lat,
                    valid_from_ms: from,
                    valid_to_ms: to,
                    is_current: to.is_none(),
                },
            );
        };
        match state.versions.last() {
            None => {
                let from = state.registration_ms.min(c.ts);
                state.versions.push((from, paid));
                emit(state, 0, out);
            }
            Some(&(from, current)) if current != paid && c.ts > from => {
                state.versions.push((c.ts, paid));
                let n = state.versions.len();
                emit(state, n - 2, out);
                emit(state, n - 1, out);
            }
            Some(_) => {}
        }
    }

    /// Closes the open sessions whose last event is a session timeout or more before
    /// `watermark`, in order of their start so that each user's listens are followed in
    /// time, and forgets closed sessions past their retention.
    fn close_until(&mut self, watermark: i64, out: &mut Output) {
        let timeout = self.config.session_timeout_ms;
        // A session's anonymous and named parts have keys of their own, but the session
        // ends only when all of them have gone quiet: a user who logs out again after
        // hours of listening is still in the same session.
        let mut last_of_session: HashMap<i64, i64, KeyHash> = HashMap::default();
        for s in self.state.open.values() {
            let last = last_of_session.entry(s.session_id).or_insert(s.last_ms);
            *last = (*last).max(s.last_ms);
        }
        let mut closing: Vec<(i64, i64)> = self
            .state
            .open
            .iter()
            .filter(|(_, s)| last_of_session[&s.session_id].saturating_add(timeout) <= watermark)
            .map(|(key, s)| (s.first_ms, *key))
            .collect();
        closing.sort_unstable();
        for (_, key) in closing {
            let Some(mut session) = self.state.open.remove(&key) else {
                continue;
            };
            let emitted = self.emit_session(key, &mut session, out);
            out.stats.sessions_closed += 1;
            let evict_after_ms = last_of_session[&session.session_id]
                .saturating_add(timeout)
                .saturating_add(self.config.retention_ms);
            self.state.closed.insert(
                key,
                Closed {
                    session,
                    emitted,
                    evict_after_ms,
                },
            );
        }
        self.state
            .closed
            .retain(|_, closed| closed.evict_after_ms > watermark || watermark == i64::MAX);
    }

    /// The session's facts: its session_fact row and an event_fact row per listen,
    /// superseding the previous version when a late event reopened it.
    fn emit_session(
        &mut self,
        session_key: i64,
        session: &mut Session,
        out: &mut Output,
    ) -> Emitted {
        session.views.sort_by_key(|v| (v.item, v.ts_ms));
        session.listens.sort_by_key(|l| (l.item, l.ts_ms));
        let session = &*session;
        let (views, listens) = (&session.views, &session.listens);
        let previous = session.previous.as_deref();
        // A version holds from the session's last event; a later version from at least a
        // millisecond after the one it replaces.
        let valid_from = match previous {
            Some(p) => session.last_ms.max(p.session_fact.record_valid_from_ms + 1),
            None => session.last_ms,
        };
        let user = session.user_id.and_then(|id| self.state.users.get(&id));
        let versions = user.map(|u| u.versions.clone());
        let user_key_at = |user_id: i64, registration_ms: i64, ts: i64| match &versions {
            Some(versions) => keys::user_key(user_id, version_at(versions, ts)),
            None => keys::user_key(user_id, registration_ms),
        };

        // Listens, with what crosses sessions taken from the user's trail.
        let trail_before = match previous {
            Some(p) => p.trail_before.clone(),
            None => user.and_then(|u| u.trail.clone()),
        };
        let mut trail = trail_before.clone();
        let mut event_facts = Vec::with_capacity(listens.len());
        for (i, listen) in listens.iter().enumerate() {
            let parts = DateTimeParts::from_epoch_millis(listen.ts_ms);
            let next_listen = listens.get(i + 1);
            let next_view = views.iter().find(|v| v.item > listen.item);
            let streak = match &trail {
                Some(t) if t.artist_key == listen.artist_key => t.streak + 1,
                _ => 1,
            };
            let is_moving = trail
                .as_ref()
                .is_some_and(|t| t.location_key != listen.location_key);
            trail = Some(ListenTrail {
                location_key: listen.location_key,
                artist_key: listen.artist_key,
                streak,
            });
            let played_ms = (listen.duration * 1000.0).round() as i64;
            event_facts.push(EventFactRow {
                event_key: listen.event_key,
                user_key: user_key_at(listen.user_id, listen.registration_ms, listen.ts_ms),
                user_id: listen.user_id,
                session_key,
                date_time_key: keys::date_time_key(&parts),
                date_key: keys::date_key(&parts),
                location_key: listen.location_key,
                song_key: listen.song_key,
                ts_ms: listen.ts_ms,
                level: level_name(listen.paid).to_owned(),
                duration: listen.duration,
                is_moving,
                consecutive_no_song: streak,
                is_first_listen_event: i == 0,
                is_last_listen_event: next_listen.is_none(),
                is_song_skipped: next_view.map(|v| v.ts_ms - listen.ts_ms < played_ms),
                next_listen_event_time_gap: next_listen
                    .map(|n| (n.ts_ms - listen.ts_ms) as f64 / 1000.0),
                record_valid_from_ms: valid_from,
                record_valid_to_ms: None,
                is_record_valid: true,
            });
        }
        if previous.is_none()
            && let Some(state) = session.user_id.and_then(|id| self.state.users.get_mut(&id))
        {
            state.trail = trail;
        }

        // The session's row.
        let first_view = views.iter().min_by_key(|v| (v.ts_ms, v.item));
        let first_listen = listens.iter().min_by_key(|l| (l.ts_ms, l.item));
        let start_paid = match (first_view, first_listen) {
            (Some(v), Some(l)) if l.ts_ms < v.ts_ms => l.paid,
            (Some(v), _) => v.paid,
            (None, Some(l)) => l.paid,
            (None, None) => false,
        };
        let mut locations: Vec<i64> = if views.is_empty() {
            listens.iter().map(|l| l.location_key).collect()
        } else {
            views.iter().map(|v| v.location_key).collect()
        };
        locations.sort_unstable();
        let primary_location_key = mode(&locations);
        let parts = DateTimeParts::from_epoch_millis(session.first_ms);
        let registration = listens.first().map_or(0, |l| l.registration_ms);
        let session_fact = SessionFactRow {
            session_key,
            user_key: session
                .user_id
                .map(|id| user_key_at(id, registration, session.first_ms)),
            user_id: session.user_id,
            date_key: keys::date_key(&parts),
            date_time_key: keys::date_time_key(&parts),
            start_ms: session.first_ms,
            end_ms: session.last_ms,
            level: level_name(start_paid).to_owned(),
            session_duration: (session.last_ms - session.first_ms) as f64 / 1000.0,
            // A fold from +0 rather than `sum`, whose empty sum is -0.
            listening_time: listens.iter().fold(0.0, |total, l| total + l.duration),
            listen_count: listens.len() as i64,
            event_count: views.len() as i64,
            primary_location_key,
            record_valid_from_ms: valid_from,
            record_valid_to_ms: None,
            is_record_valid: true,
        };

        if let Some(p) = previous {
            let mut old = p.session_fact.clone();
            old.record_valid_to_ms = Some(valid_from);
            old.is_record_valid = false;
            out.tables
                .session_fact
                .upsert((session_key, old.record_valid_from_ms), old);
            for fact in &p.event_facts {
                let mut old = fact.clone();
                old.record_valid_to_ms = Some(valid_from);
                old.is_record_valid = false;
                out.tables
                    .event_fact
                    .upsert((old.event_key, old.record_valid_from_ms), old);
            }
        }
        out.tables
            .session_fact
            .upsert((session_key, valid_from), session_fact.clone());
        for fact in &event_facts {
            out.tables
                .event_fact
                .upsert((fact.event_key, valid_from), fact.clone());
        }
        Emitted {
            session_fact,
            event_facts,
            trail_before,
        }
    }
}

/// The start of the version in force at `ts_ms`: the last one begun by then, or the
/// first one for an instant before it.
fn version_at(versions: &[(i64, bool)], ts_ms: i64) -> i64 {
    let i = versions.partition_point(|(from, _)| *from <= ts_ms);
    versions.get(i.saturating_sub(1)).map_or(ts_ms, |v| v.0)
}

/// The most frequent value of a sorted list; the smallest among equally frequent ones.
fn mode(sorted: &[i64]) -> i64 {
    let mut best = (0usize, 0i64);
    let mut i = 0;
    while i < sorted.len() {
        let run = sorted[i..].iter().take_while(|&&v| v == sorted[i]).count();
        if run > best.0 {
            best = (run, sorted[i]);
        }
        i += run;
    }
    best.1
}

fn session_bearing(kind: EventKind) -> bool {
    matches!(kind, EventKind::PageView | EventKind::Listen)
}

fn level_name(paid: bool) -> &'static str {
    if paid { Level::Paid } else { Level::Free }.name()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_prefers_the_most_frequent_then_the_smallest_value() {
        assert_eq!(mode(&[1, 2, 2, 3]), 2);
        assert_eq!(mode(&[1, 1, 3, 3]), 1);
        assert_eq!(mode(&[7]), 7);
    }

    #[test]
    fn the_version_in_force_is_the_last_begun() {
        let versions = [(100, false), (200, true), (300, false)];
        assert_eq!(version_at(&versions, 50), 100);
        assert_eq!(version_at(&versions, 100), 100);
        assert_eq!(version_at(&versions, 299), 200);
        assert_eq!(version_at(&versions, 300), 300);
    }
}
