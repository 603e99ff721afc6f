//! The four eventsim event kinds: one Rust type each, strict parsing with typed
//! rejections, and JSON-lines output in eventsim's exact key order.
//!
//! The same types serve the simulator (writing) and the pipeline (reading). Strings
//! borrow from the record they were read from unless they contain escapes, so parsing
//! allocates nothing in the common case.

mod events;
pub mod field;
mod read;
mod reject;
mod write;

use std::borrow::Cow;

pub use events::{
    AuthEvent, EventContext, ListenEvent, PageViewEvent, RawEvent, StatusChangeEvent,
};
pub use reject::{RejectReason, Rejection};

/// The largest record accepted, in bytes. eventsim's records are under 1 KiB; anything
/// near this size is garbage or an attack and is dead-lettered as `too_large`.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// 9999-12-31T23:59:59.999Z, the last instant both BigQuery and DuckDB can store.
pub const MAX_EPOCH_MILLIS: i64 = 253_402_300_799_999;

/// The longest song duration accepted, in seconds: one day.
pub const MAX_SONG_SECONDS: f64 = 86_400.0;

/// One of the four event kinds, each with its own Kafka topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Listen,
    PageView,
    Auth,
    StatusChange,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Listen,
        EventKind::PageView,
        EventKind::Auth,
        EventKind::StatusChange,
    ];

    /// The kind's position in [`EventKind::ALL`], for arrays indexed by kind.
    pub const fn index(self) -> usize {
        match self {
            EventKind::Listen => 0,
            EventKind::PageView => 1,
            EventKind::Auth => 2,
            EventKind::StatusChange => 3,
        }
    }

    /// The default topic name, which is also the file stem of JSON-lines output.
    pub const fn topic(self) -> &'static str {
        match self {
            EventKind::Listen => "listen_events",
            EventKind::PageView => "page_view_events",
            EventKind::Auth => "auth_events",
            EventKind::StatusChange => "status_change_events",
        }
    }

    pub fn from_topic(topic: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.topic() == topic)
    }

    /// The record's keys in the order eventsim writes them.
    pub const fn layout(self) -> &'static [field::Field] {
        match self {
            EventKind::Listen => &field::LISTEN_LAYOUT,
            EventKind::PageView => &field::PAGE_VIEW_LAYOUT,
            EventKind::Auth => &field::AUTH_LAYOUT,
            EventKind::StatusChange => &field::STATUS_CHANGE_LAYOUT,
        }
    }
}

/// A user's authentication state, as eventsim names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Auth {
    LoggedIn,
    LoggedOut,
    Guest,
    Cancelled,
}

impl Auth {
    pub const ALL: [Auth; 4] = [
        Auth::LoggedIn,
        Auth::LoggedOut,
        Auth::Guest,
        Auth::Cancelled,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Auth::LoggedIn => "Logged In",
            Auth::LoggedOut => "Logged Out",
            Auth::Guest => "Guest",
            Auth::Cancelled => "Cancelled",
        }
    }

    pub fn from_name(name: &str) -> Option<Auth> {
        Auth::ALL.into_iter().find(|auth| auth.name() == name)
    }
}

/// A user's subscription level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Free,
    Paid,
}

impl Level {
    pub const ALL: [Level; 2] = [Level::Free, Level::Paid];

    pub const fn name(self) -> &'static str {
        match self {
            Level::Free => "free",
            Level::Paid => "paid",
        }
    }

    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.name() == name)
    }
}

/// Where a user is: every event carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct Location<'a> {
    pub city: Cow<'a, str>,
    pub zip: Cow<'a, str>,
    pub state: Cow<'a, str>,
    pub lon: f64,
    pub lat: f64,
}

/// The user-detail group, hidden for guests and logged-out users.
#[derive(Clone, Debug, PartialEq)]
pub struct User<'a> {
    pub user_id: i64,
    pub last_name: Cow<'a, str>,
    pub first_name: Cow<'a, str>,
    pub gender: Cow<'a, str>,
    /// Registration time, epoch milliseconds.
    pub registration: i64,
}

/// The song group of listens and `NextSong` page views.
#[derive(Clone, Debug, PartialEq)]
pub struct Song<'a> {
    pub artist: Cow<'a, str>,
    pub song: Cow<'a, str>,
    /// Length of the song in seconds.
    pub duration: f64,
}
