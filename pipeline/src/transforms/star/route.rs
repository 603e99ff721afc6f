//! Parsing and routing: each message parsed, its partition clock moved, and the event
//! handed to the part of the star schema it feeds.

use warehouse::keys;
use warehouse::raw::{AuthEvent, Level, ListenEvent, PageViewEvent, RawEvent, StatusChangeEvent};

use super::{Landed, Message, Output, Part, TOO_LATE, Transformer, session_bearing};
use crate::transforms::rows::{
    AuthFactRow, BridgeRow, DeadLetterRow, EventRow, LevelChangeFactRow,
};
use crate::transforms::state::{Listen, View};

impl Transformer {
    /// One message: parsed or dead-lettered, its partition clock moved, and routed.
    pub(super) fn one(&mut self, message: Message<'_>, received_at_ms: i64, out: &mut Output) {
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

    pub(super) fn page_view(&mut self, view: &PageViewEvent<'_>, out: &mut Output) -> Landed {
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
            .event_session_bridge
            .insert_if_absent((session_key, event_key), || BridgeRow {
                session_key,
                event_key,
            });
        Landed::Yes
    }

    pub(super) fn listen(&mut self, listen: &ListenEvent<'_>, out: &mut Output) -> Landed {
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

    pub(super) fn auth(&mut self, auth: &AuthEvent<'_>, out: &mut Output) {
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

    pub(super) fn status_change(&mut self, change: &StatusChangeEvent<'_>, out: &mut Output) {
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
