//! Sessions and their facts: opening, admitting events (dropping redeliveries), closing
//! by the watermark, and the facts a closed session emits, superseding an earlier
//! version when a late event reopened it.

use std::collections::HashMap;

use warehouse::keys;
use warehouse::raw::EventContext;
use warehouse::time::DateTimeParts;

use super::{Landed, Output, Part, Place, Transformer};
use crate::transforms::rows::{EventFactRow, KeyHash, SessionFactRow, SessionRow, SupersededFacts};
use crate::transforms::rules::{level_name, starting_level, superseding_from, version_at};
use crate::transforms::state::{Closed, Emitted, ListenTrail, Session, SessionChange};

impl Transformer {
    /// The session a page view or listen belongs to, opened or reopened as needed.
    pub(super) fn session(
        &mut self,
        key: i64,
        context: &EventContext<'_>,
        user_id: Option<i64>,
    ) -> Place {
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
        self.changes.session(key);
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
    pub(super) fn admit(
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
            // A session's row is written once, when it opens.
            Place::New => {
                out.tables
                    .session_dim
                    .insert_if_absent(session_key, || SessionRow {
                        session_key,
                        session_id: c.session_id,
                        user_id,
                    });
            }
            Place::Open => {}
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
        self.changes
            .appending(session_key, session.views.len(), session.listens.len());
        // An event a timeout or more from the events next to it in time, either side,
        // makes a pause inside the session: one that the watermark may confirm later.
        // (Page views and listens come through partitions of their own, so an event may
        // also land between two seen before.)
        let timeout = self.config.session_timeout_ms;
        let at = session.times.partition_point(|&t| t <= c.ts);
        let before = at.checked_sub(1).map(|i| session.times[i]);
        let after = session.times.get(at).copied();
        if before.is_some_and(|t| c.ts - t >= timeout) || after.is_some_and(|t| t - c.ts >= timeout)
        {
            self.pausing.insert(session_key);
        }
        session.times.insert(at, c.ts);
        session.first_ms = session.first_ms.min(c.ts);
        session.last_ms = session.last_ms.max(c.ts);
        Ok(())
    }

    /// Reopens a closed session for a late event, remembering what it had emitted.
    pub(super) fn reopen(&mut self, key: i64) {
        self.changes.session(key);
        if let Some(closed) = self.state.closed.remove(&key) {
            let mut session = closed.session;
            session.previous = Some(Box::new(closed.emitted));
            self.state.open.insert(key, session);
        }
    }

    /// Closes the open sessions whose last event is a session timeout or more before
    /// `watermark`, and versions the sessions that paused that long and went on, in order
    /// of their start so that each user's listens are followed in time; forgets closed
    /// sessions past their retention.
    pub(super) fn close_until(&mut self, watermark: i64, out: &mut Output) {
        let timeout = self.config.session_timeout_ms;
        // A session's anonymous and named parts have keys of their own, but the session
        // ends only when all of them have gone quiet: a user who logs out again after
        // hours of listening is still in the same session.
        let mut last_of_session: HashMap<i64, i64, KeyHash> = HashMap::default();
        for s in self.state.open.values() {
            let last = last_of_session.entry(s.session_id).or_insert(s.last_ms);
            *last = (*last).max(s.last_ms);
        }
        // Each step is (first event, key, cut): a version of the events up to the cut
        // for a session that went on after a pause, or the close (`i64::MAX`).
        let mut steps: Vec<(i64, i64, i64)> = self
            .state
            .open
            .iter()
            .filter(|(_, s)| last_of_session[&s.session_id].saturating_add(timeout) <= watermark)
            .map(|(key, s)| (s.first_ms, *key, i64::MAX))
            .collect();
        // Pauses are a part's own: its anonymous and named parts may come through
        // different partitions, and instances that see one part each must agree with
        // one that sees both.
        let open = &self.state.open;
        self.pausing.retain(|key| {
            let Some(s) = open.get(key) else {
                return false;
            };
            let (cuts, unconfirmed) = pauses(s, timeout, watermark);
            steps.extend(cuts.into_iter().map(|cut| (s.first_ms, *key, cut)));
            unconfirmed
        });
        steps.sort_unstable();
        for (_, key, cut) in steps {
            if cut == i64::MAX {
                if let Some(s) = self.state.open.get(&key) {
                    let last = last_of_session[&s.session_id];
                    self.close(key, last, out);
                }
            } else {
                self.version_until(key, cut, out);
            }
        }
        let changed = &mut self.changes.sessions;
        self.state.closed.retain(|key, closed| {
            let keep = closed.evict_after_ms > watermark || watermark == i64::MAX;
            if !keep {
                changed.insert(*key, SessionChange::Whole);
            }
            keep
        });
    }

    /// Closes an open session whose whole session went quiet at `last_of_session`.
    fn close(&mut self, key: i64, last_of_session: i64, out: &mut Output) {
        let Some(mut session) = self.state.open.remove(&key) else {
            return;
        };
        self.pausing.remove(&key);
        self.changes.session(key);
        let emitted = self.emit_session(key, &mut session, out);
        out.stats.sessions_closed += 1;
        let evict_after_ms = last_of_session
            .saturating_add(self.config.session_timeout_ms)
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

    /// Emits the version of an open session that holds its events up to `cut`, where it
    /// paused, as a close there would have; the session stays open, superseding it later.
    fn version_until(&mut self, key: i64, cut: i64, out: &mut Output) {
        let Some(session) = self.state.open.get_mut(&key) else {
            return;
        };
        let before_cut = session.times.partition_point(|&t| t <= cut);
        let Some(&last_ms) = session.times.get(before_cut.wrapping_sub(1)) else {
            return;
        };
        // A version up to this pause exists already (a close there, then a late event).
        if session
            .previous
            .as_ref()
            .is_some_and(|p| p.session_fact.end_ms >= last_ms)
        {
            return;
        }
        let views = session.views.iter().filter(|v| v.ts_ms <= cut).cloned();
        let listens = session.listens.iter().filter(|l| l.ts_ms <= cut).cloned();
        let (views, listens) = (views.collect(), listens.collect());
        let mut until = Session {
            session_id: session.session_id,
            user_id: session.user_id,
            first_ms: session.first_ms,
            last_ms,
            views,
            listens,
            previous: session.previous.take(),
            ..Session::default()
        };
        self.changes.session(key);
        let emitted = self.emit_session(key, &mut until, out);
        if let Some(session) = self.state.open.get_mut(&key) {
            session.previous = Some(Box::new(emitted));
        }
    }

    /// The session's facts: its session_fact row and an event_fact row per listen,
    /// superseding the previous version when a late event reopened it.
    pub(super) fn emit_session(
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
        let valid_from = superseding_from(
            session.last_ms,
            previous.map(|p| p.session_fact.record_valid_from_ms),
        );
        let user = session.user_id.and_then(|id| self.state.users.get(&id));
        let versions = user.map(|u| u.versions.clone());
        let user_key_at = |user_id: i64, registration_ms: i64, ts: i64| match &versions {
            Some(versions) => {
                keys::user_key(user_id, version_at(versions, |v| v.0, ts).unwrap_or(ts))
            }
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
            && let Some(user_id) = session.user_id
            && let Some(state) = self.state.users.get_mut(&user_id)
        {
            state.trail = trail;
            self.changes.users.insert(user_id);
        }

        // The session's row.
        let first_view = views.iter().min_by_key(|v| (v.ts_ms, v.item));
        let first_listen = listens.iter().min_by_key(|l| (l.ts_ms, l.item));
        let start_paid = starting_level(
            first_view.map(|v| (v.ts_ms, v.paid)),
            first_listen.map(|l| (l.ts_ms, l.paid)),
        )
        .unwrap_or(false);
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

        // The previous version's session row is written again, closed; its listens' rows
        // are closed where they lie, by the version's start.
        if let Some(p) = previous {
            let old = p.session_fact.superseded_at(valid_from);
            out.tables
                .session_fact
                .upsert((session_key, old.record_valid_from_ms), old);
            out.tables.superseded_event_facts.push(SupersededFacts {
                session_key,
                valid_from_ms: p.session_fact.record_valid_from_ms,
                valid_to_ms: valid_from,
            });
        }
        out.tables
            .session_fact
            .upsert((session_key, valid_from), session_fact.clone());
        for fact in event_facts {
            out.tables
                .event_fact
                .upsert((fact.event_key, valid_from), fact);
        }
        Emitted::new(session_fact, trail_before)
    }
}

/// The pauses of a timeout or more between a session's events: the last event before
/// each pause the watermark has confirmed (every event before it has arrived), and
/// whether a pause remains that it has not.
fn pauses(session: &Session, timeout: i64, watermark: i64) -> (Vec<i64>, bool) {
    let mut cuts = Vec::new();
    let mut unconfirmed = false;
    for pair in session.times.windows(2) {
        if pair[1] - pair[0] >= timeout {
            if pair[0].saturating_add(timeout) <= watermark {
                cuts.push(pair[0]);
            } else {
                unconfirmed = true;
            }
        }
    }
    (cuts, unconfirmed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_prefers_the_most_frequent_then_the_smallest_value() {
        assert_eq!(mode(&[1, 2, 2, 3]), 2);
        assert_eq!(mode(&[1, 1, 3, 3]), 1);
        assert_eq!(mode(&[7]), 7);
    }
}
