//! The JSON keys of eventsim records, and which of them each event kind carries.

/// One JSON key of an eventsim record. The discriminant is a bit position in [`FieldSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Field {
    Ts,
    SessionId,
    Page,
    Auth,
    Method,
    Status,
    Level,
    ItemInSession,
    City,
    Zip,
    State,
    UserAgent,
    Lon,
    Lat,
    UserId,
    LastName,
    FirstName,
    Gender,
    Registration,
    Artist,
    Song,
    Duration,
    Success,
}

impl Field {
    /// The key as eventsim writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::SessionId => "sessionId",
            Field::Page => "page",
            Field::Auth => "auth",
            Field::Method => "method",
            Field::Status => "status",
            Field::Level => "level",
            Field::ItemInSession => "itemInSession",
            Field::City => "city",
            Field::Zip => "zip",
            Field::State => "state",
            Field::UserAgent => "userAgent",
            Field::Lon => "lon",
            Field::Lat => "lat",
            Field::UserId => "userId",
            Field::LastName => "lastName",
            Field::FirstName => "firstName",
            Field::Gender => "gender",
            Field::Registration => "registration",
            Field::Artist => "artist",
            Field::Song => "song",
            Field::Duration => "duration",
            Field::Success => "success",
        }
    }

    /// The field a key names, if any event kind has it.
    pub fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "ts" => Field::Ts,
            "sessionId" => Field::SessionId,
            "page" => Field::Page,
            "auth" => Field::Auth,
            "method" => Field::Method,
            "status" => Field::Status,
            "level" => Field::Level,
            "itemInSession" => Field::ItemInSession,
            "city" => Field::City,
            "zip" => Field::Zip,
            "state" => Field::State,
            "userAgent" => Field::UserAgent,
            "lon" => Field::Lon,
            "lat" => Field::Lat,
            "userId" => Field::UserId,
            "lastName" => Field::LastName,
            "firstName" => Field::FirstName,
            "gender" => Field::Gender,
            "registration" => Field::Registration,
            "artist" => Field::Artist,
            "song" => Field::Song,
            "duration" => Field::Duration,
            "success" => Field::Success,
            _ => return None,
        })
    }
}

/// A set of fields as a bit mask; `const` so that each kind's layout is a constant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet(0);

    pub const fn of(fields: &[Field]) -> FieldSet {
        let mut bits = 0;
        let mut i = 0;
        while i < fields.len() {
            bits |= 1 << fields[i] as u32;
            i += 1;
        }
        FieldSet(bits)
    }

    pub const fn contains(self, field: Field) -> bool {
        self.0 & (1 << field as u32) != 0
    }

    pub fn insert(&mut self, field: Field) {
        self.0 |= 1 << field as u32;
    }
}

/// The user-detail group, absent as a whole for users whose details are hidden.
pub const USER_GROUP: [Field; 5] = [
    Field::UserId,
    Field::LastName,
    Field::FirstName,
    Field::Gender,
    Field::Registration,
];

/// The song group of a page view, present as a whole on `NextSong` pages.
pub const SONG_GROUP: [Field; 3] = [Field::Artist, Field::Song, Field::Duration];

/// Key order of `listen_events` records.
pub const LISTEN_LAYOUT: [Field; 19] = [
    Field::Artist,
    Field::Song,
    Field::Duration,
    Field::Ts,
    Field::SessionId,
    Field::Auth,
    Field::Level,
    Field::ItemInSession,
    Field::City,
    Field::Zip,
    Field::State,
    Field::UserAgent,
    Field::Lon,
    Field::Lat,
    Field::UserId,
    Field::LastName,
    Field::FirstName,
    Field::Gender,
    Field::Registration,
];

/// Key order of `page_view_events` records.
pub const PAGE_VIEW_LAYOUT: [Field; 22] = [
    Field::Ts,
    Field::SessionId,
    Field::Page,
    Field::Auth,
    Field::Method,
    Field::Status,
    Field::Level,
    Field::ItemInSession,
    Field::City,
    Field::Zip,
    Field::State,
    Field::UserAgent,
    Field::Lon,
    Field::Lat,
    Field::UserId,
    Field::LastName,
    Field::FirstName,
    Field::Gender,
    Field::Registration,
    Field::Artist,
    Field::Song,
    Field::Duration,
];

/// Key order of `status_change_events` records.
pub const STATUS_CHANGE_LAYOUT: [Field; 16] = [
    Field::Ts,
    Field::SessionId,
    Field::Auth,
    Field::Level,
    Field::ItemInSession,
    Field::City,
    Field::Zip,
    Field::State,
    Field::UserAgent,
    Field::Lon,
    Field::Lat,
    Field::UserId,
    Field::LastName,
    Field::FirstName,
    Field::Gender,
    Field::Registration,
];

/// Key order of `auth_events` records.
pub const AUTH_LAYOUT: [Field; 16] = [
    Field::Ts,
    Field::SessionId,
    Field::Level,
    Field::ItemInSession,
    Field::City,
    Field::Zip,
    Field::State,
    Field::UserAgent,
    Field::Lon,
    Field::Lat,
    Field::UserId,
    Field::LastName,
    Field::FirstName,
    Field::Gender,
    Field::Registration,
    Field::Success,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_key_round_trips_through_from_key() {
        for field in PAGE_VIEW_LAYOUT.iter().chain(&AUTH_LAYOUT) {
            assert_eq!(Field::from_key(field.name()), Some(*field));
        }
        assert_eq!(Field::from_key("userid"), None);
    }

    #[test]
    fn field_set_holds_exactly_its_members() {
        let set = FieldSet::of(&SONG_GROUP);
        assert!(set.contains(Field::Artist) && set.contains(Field::Duration));
        assert!(!set.contains(Field::Ts) && !FieldSet::EMPTY.contains(Field::Artist));
    }
}
