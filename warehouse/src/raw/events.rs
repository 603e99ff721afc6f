//! The four event types, assembled from a read record and written back in key order.

use std::borrow::Cow;

use super::field::{
    AUTH_LAYOUT, Field, FieldSet, LISTEN_LAYOUT, PAGE_VIEW_LAYOUT, SONG_GROUP,
    STATUS_CHANGE_LAYOUT, USER_GROUP,
};
use super::read::{Fields, read_record};
use super::write::ObjectWriter;
use super::{Auth, EventKind, Level, Location, RejectReason, Rejection, Song, User};

/// What every event carries: when, in which session, where, and from which client.
#[derive(Clone, Debug, PartialEq)]
pub struct EventContext<'a> {
    /// Event time, epoch milliseconds.
    pub ts: i64,
    pub session_id: i64,
    pub level: Level,
    pub item_in_session: i64,
    pub location: Location<'a>,
    pub user_agent: Cow<'a, str>,
}

/// A song played to its end or interrupted: eventsim's `listen_events`.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenEvent<'a> {
    pub song: Song<'a>,
    pub auth: Auth,
    pub context: EventContext<'a>,
    pub user: User<'a>,
}

/// Every page a user requests: eventsim's `page_view_events`.
#[derive(Clone, Debug, PartialEq)]
pub struct PageViewEvent<'a> {
    pub page: Cow<'a, str>,
    pub auth: Auth,
    pub method: Cow<'a, str>,
    /// HTTP status, 100 to 599.
    pub status: u16,
    pub context: EventContext<'a>,
    pub user: Option<User<'a>>,
    pub song: Option<Song<'a>>,
}

/// A level change (upgrade or downgrade): eventsim's `status_change_events`.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChangeEvent<'a> {
    pub auth: Auth,
    pub context: EventContext<'a>,
    pub user: User<'a>,
}

/// A login attempt and its outcome: eventsim's `auth_events`.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthEvent<'a> {
    pub context: EventContext<'a>,
    pub user: Option<User<'a>>,
    pub success: bool,
}

/// An event of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum RawEvent<'a> {
    Listen(ListenEvent<'a>),
    PageView(PageViewEvent<'a>),
    Auth(AuthEvent<'a>),
    StatusChange(StatusChangeEvent<'a>),
}

impl<'a> RawEvent<'a> {
    /// Parses one record of the given kind (one line, without or with its newline).
    pub fn parse(kind: EventKind, record: &'a [u8]) -> Result<RawEvent<'a>, Rejection> {
        Ok(match kind {
            EventKind::Listen => RawEvent::Listen(ListenEvent::parse(record)?),
            EventKind::PageView => RawEvent::PageView(PageViewEvent::parse(record)?),
            EventKind::Auth => RawEvent::Auth(AuthEvent::parse(record)?),
            EventKind::StatusChange => RawEvent::StatusChange(StatusChangeEvent::parse(record)?),
        })
    }

    pub fn kind(&self) -> EventKind {
        match self {
            RawEvent::Listen(_) => EventKind::Listen,
            RawEvent::PageView(_) => EventKind::PageView,
            RawEvent::Auth(_) => EventKind::Auth,
            RawEvent::StatusChange(_) => EventKind::StatusChange,
        }
    }

    pub fn context(&self) -> &EventContext<'a> {
        match self {
            RawEvent::Listen(e) => &e.context,
            RawEvent::PageView(e) => &e.context,
            RawEvent::Auth(e) => &e.context,
            RawEvent::StatusChange(e) => &e.context,
        }
    }

    /// The user's details, unless they are hidden (guests, logged-out users).
    pub fn user(&self) -> Option<&User<'a>> {
        match self {
            RawEvent::Listen(e) => Some(&e.user),
            RawEvent::PageView(e) => e.user.as_ref(),
            RawEvent::Auth(e) => e.user.as_ref(),
            RawEvent::StatusChange(e) => Some(&e.user),
        }
    }

    /// Appends the event as one JSON object, without a newline.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            RawEvent::Listen(e) => e.write_json(out),
            RawEvent::PageView(e) => e.write_json(out),
            RawEvent::Auth(e) => e.write_json(out),
            RawEvent::StatusChange(e) => e.write_json(out),
        }
    }
}

impl<'a> ListenEvent<'a> {
    pub fn parse(record: &'a [u8]) -> Result<ListenEvent<'a>, Rejection> {
        let mut f = read_record(record, LISTEN_KEYS)?;
        check_required(&f, &LISTEN_LAYOUT, &[])?;
        Ok(ListenEvent {
            song: song(&mut f)?,
            auth: need(f.auth, Field::Auth)?,
            context: context(&mut f)?,
            user: user(&mut f)?,
        })
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        let c = &self.context;
        write_song(&mut w, &self.song);
        w.int(Field::Ts, c.ts);
        w.int(Field::SessionId, c.session_id);
        w.str(Field::Auth, self.auth.name());
        w.str(Field::Level, c.level.name());
        w.int(Field::ItemInSession, c.item_in_session);
        write_place(&mut w, c);
        write_user(&mut w, &self.user);
        w.finish();
    }
}

impl<'a> PageViewEvent<'a> {
    pub fn parse(record: &'a [u8]) -> Result<PageViewEvent<'a>, Rejection> {
        let mut f = read_record(record, PAGE_VIEW_KEYS)?;
        check_required(&f, &PAGE_VIEW_LAYOUT, &[&USER_GROUP, &SONG_GROUP])?;
        Ok(PageViewEvent {
            page: need(f.page.take(), Field::Page)?,
            auth: need(f.auth, Field::Auth)?,
            method: need(f.method.take(), Field::Method)?,
            // The reader has checked the range 100..=599.
            status: need(f.status, Field::Status)? as u16,
            context: context(&mut f)?,
            user: optional_group(&mut f, &USER_GROUP, user)?,
            song: optional_group(&mut f, &SONG_GROUP, song)?,
        })
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        let c = &self.context;
        w.int(Field::Ts, c.ts);
        w.int(Field::SessionId, c.session_id);
        w.str(Field::Page, &self.page);
        w.str(Field::Auth, self.auth.name());
        w.str(Field::Method, &self.method);
        w.int(Field::Status, i64::from(self.status));
        w.str(Field::Level, c.level.name());
        w.int(Field::ItemInSession, c.item_in_session);
        write_place(&mut w, c);
        if let Some(user) = &self.user {
            write_user(&mut w, user);
        }
        if let Some(song) = &self.song {
            write_song(&mut w, song);
        }
        w.finish();
    }
}

impl<'a> StatusChangeEvent<'a> {
    pub fn parse(record: &'a [u8]) -> Result<StatusChangeEvent<'a>, Rejection> {
        let mut f = read_record(record, STATUS_CHANGE_KEYS)?;
        check_required(&f, &STATUS_CHANGE_LAYOUT, &[])?;
        Ok(StatusChangeEvent {
            auth: need(f.auth, Field::Auth)?,
            context: context(&mut f)?,
            user: user(&mut f)?,
        })
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        let c = &self.context;
        w.int(Field::Ts, c.ts);
        w.int(Field::SessionId, c.session_id);
        w.str(Field::Auth, self.auth.name());
        w.str(Field::Level, c.level.name());
        w.int(Field::ItemInSession, c.item_in_session);
        write_place(&mut w, c);
        write_user(&mut w, &self.user);
        w.finish();
    }
}

impl<'a> AuthEvent<'a> {
    pub fn parse(record: &'a [u8]) -> Result<AuthEvent<'a>, Rejection> {
        let mut f = read_record(record, AUTH_KEYS)?;
        check_required(&f, &AUTH_LAYOUT, &[&USER_GROUP])?;
        Ok(AuthEvent {
            context: context(&mut f)?,
            user: optional_group(&mut f, &USER_GROUP, user)?,
            success: need(f.success, Field::Success)?,
        })
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::new(out);
        let c = &self.context;
        w.int(Field::Ts, c.ts);
        w.int(Field::SessionId, c.session_id);
        w.str(Field::Level, c.level.name());
        w.int(Field::ItemInSession, c.item_in_session);
        write_place(&mut w, c);
        if let Some(user) = &self.user {
            write_user(&mut w, user);
        }
        w.bool(Field::Success, self.success);
        w.finish();
    }
}

const LISTEN_KEYS: FieldSet = FieldSet::of(&LISTEN_LAYOUT);
const PAGE_VIEW_KEYS: FieldSet = FieldSet::of(&PAGE_VIEW_LAYOUT);
const STATUS_CHANGE_KEYS: FieldSet = FieldSet::of(&STATUS_CHANGE_LAYOUT);
const AUTH_KEYS: FieldSet = FieldSet::of(&AUTH_LAYOUT);

/// Names the first required key, in the kind's key order, that the record lacks. A key
/// of an optional group is required only when some key of its group is present.
fn check_required(
    f: &Fields<'_>,
    layout: &[Field],
    optional: &[&[Field]],
) -> Result<(), Rejection> {
    let required = |field: &Field| match optional.iter().find(|group| group.contains(field)) {
        Some(group) => group.iter().any(|member| f.present.contains(*member)),
        None => true,
    };
    match layout
        .iter()
        .filter(|field| required(field))
        .find(|field| !f.present.contains(**field))
    {
        Some(field) => Err(missing(*field)),
        None => Ok(()),
    }
}

/// Takes a value that [`check_required`] has already found present; the error path
/// only keeps a broken invariant from becoming a panic.
fn need<T>(value: Option<T>, field: Field) -> Result<T, Rejection> {
    value.ok_or_else(|| missing(field))
}

fn missing(field: Field) -> Rejection {
    Rejection::new(RejectReason::MissingField, "required key is absent or null").field(field.name())
}

/// A group that is absent as a whole is `None`; a partly present one names its first
/// missing key.
fn optional_group<'a, T>(
    f: &mut Fields<'a>,
    group: &[Field],
    take: fn(&mut Fields<'a>) -> Result<T, Rejection>,
) -> Result<Option<T>, Rejection> {
    if group.iter().any(|field| f.present.contains(*field)) {
        take(f).map(Some)
    } else {
        Ok(None)
    }
}

fn context<'a>(f: &mut Fields<'a>) -> Result<EventContext<'a>, Rejection> {
    Ok(EventContext {
        ts: need(f.ts, Field::Ts)?,
        session_id: need(f.session_id, Field::SessionId)?,
        level: need(f.level, Field::Level)?,
        item_in_session: need(f.item_in_session, Field::ItemInSession)?,
        location: Location {
            city: need(f.city.take(), Field::City)?,
            zip: need(f.zip.take(), Field::Zip)?,
            state: need(f.state.take(), Field::State)?,
            lon: need(f.lon, Field::Lon)?,
            lat: need(f.lat, Field::Lat)?,
        },
        user_agent: need(f.user_agent.take(), Field::UserAgent)?,
    })
}

fn user<'a>(f: &mut Fields<'a>) -> Result<User<'a>, Rejection> {
    Ok(User {
        user_id: need(f.user_id, Field::UserId)?,
        last_name: need(f.last_name.take(), Field::LastName)?,
        first_name: need(f.first_name.take(), Field::FirstName)?,
        gender: need(f.gender.take(), Field::Gender)?,
        registration: need(f.registration, Field::Registration)?,
    })
}

fn song<'a>(f: &mut Fields<'a>) -> Result<Song<'a>, Rejection> {
    Ok(Song {
        artist: need(f.artist.take(), Field::Artist)?,
        song: need(f.song.take(), Field::Song)?,
        duration: need(f.duration, Field::Duration)?,
    })
}

/// eventsim writes the user agent between the place's name and its coordinates.
fn write_place(w: &mut ObjectWriter<'_>, c: &EventContext<'_>) {
    w.str(Field::City, &c.location.city);
    w.str(Field::Zip, &c.location.zip);
    w.str(Field::State, &c.location.state);
    w.str(Field::UserAgent, &c.user_agent);
    w.float(Field::Lon, c.location.lon);
    w.float(Field::Lat, c.location.lat);
}

fn write_user(w: &mut ObjectWriter<'_>, user: &User<'_>) {
    w.int(Field::UserId, user.user_id);
    w.str(Field::LastName, &user.last_name);
    w.str(Field::FirstName, &user.first_name);
    w.str(Field::Gender, &user.gender);
    w.int(Field::Registration, user.registration);
}

fn write_song(w: &mut ObjectWriter<'_>, song: &Song<'_>) {
    w.str(Field::Artist, &song.artist);
    w.str(Field::Song, &song.song);
    w.float(Field::Duration, song.duration);
}
