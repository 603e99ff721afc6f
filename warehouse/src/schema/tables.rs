//! The star schema: every table of the warehouse, its columns and their meaning.
//!
//! Kept from the original model: every table and column, renamed to snake_case. Changed:
//! hashed keys are 64-bit (see `keys`), `user_dim` is a type-2 slowly changing
//! dimension on `level`, every fact row carries the key of the event or session it came
//! from, times are `TIMESTAMP`s instead of epoch numbers, and flags are `BOOL`. Added so
//! that no event kind is ignored: `auth_fact` (login attempts) and `level_change_fact`
//! (upgrades and downgrades), plus `dead_letters` for the pipeline's rejects.

use super::ColumnType::{Bool, Bytes, Date, Float64, Int64, String, Timestamp};
use super::{Table, TableKind, nullable, required};

/// Every table, dimensions first, in an order that satisfies foreign keys.
pub const TABLES: &[&Table] = &[
    &SONG_DIM,
    &LOCATION_DIM,
    &DATE_DIM,
    &DATE_TIME_DIM,
    &USER_DIM,
    &EVENT_DIM,
    &SESSION_DIM,
    &EVENT_SESSION_BRIDGE,
    &EVENT_FACT,
    &SESSION_FACT,
    &AUTH_FACT,
    &LEVEL_CHANGE_FACT,
    &DEAD_LETTERS,
];

const SONG_KEY: &str = "Song key: FARM_FINGERPRINT of song_dim, artist and song.";
const LOCATION_KEY: &str =
    "Location key: FARM_FINGERPRINT of location_dim, city, zip, state, lon and lat.";
const DATE_KEY: &str = "Date key: the UTC date as the number YYYYMMDD.";
const DATE_TIME_KEY: &str = "Date-time key: the UTC instant as the number YYYYMMDDhhmmss.";
const USER_KEY: &str =
    "User version key: FARM_FINGERPRINT of user_dim, user_id and valid_from in epoch milliseconds.";
const EVENT_KEY: &str = "Event key: FARM_FINGERPRINT of event_dim, session_id, item_in_session and ts in epoch milliseconds.";
const SESSION_KEY: &str =
    "Session key: FARM_FINGERPRINT of session_dim, session_id and user_id (\\N for guests).";
const LEVEL: &str = "Subscription level at the time: free or paid.";
const VALID_FROM: &str = "Event time from which this version of the row holds.";
const VALID_TO: &str = "Event time at which a newer version replaced this one; NULL while current.";
const IS_VALID: &str = "True for the current version of the row.";

pub const SONG_DIM: Table = Table {
    name: "song_dim",
    kind: TableKind::Dimension,
    description: "Songs that were listened to, one row per artist and title.",
    columns: &[
        required("song_key", Int64, SONG_KEY),
        required("artist", String, "Artist name as the event gave it."),
        required("song", String, "Song title as the event gave it."),
    ],
    primary_key: &["song_key"],
    key_enforced: true,
    partition_by: None,
    cluster_by: &["artist"],
};

pub const LOCATION_DIM: Table = Table {
    name: "location_dim",
    kind: TableKind::Dimension,
    description: "Places users were at, one row per city, zip code and coordinates.",
    columns: &[
        required("location_key", Int64, LOCATION_KEY),
        required(
            "city",
            String,
            "City name, as eventsim writes it (for example Tampa-St. Petersburg-Clearwater).",
        ),
        required("zip", String, "ZIP code, as text to keep leading zeros."),
        required("state", String, "Two-letter US state code."),
        required("lon", Float64, "Longitude in degrees."),
        required("lat", Float64, "Latitude in degrees."),
    ],
    primary_key: &["location_key"],
    key_enforced: true,
    partition_by: None,
    cluster_by: &["state", "city"],
};

pub const DATE_DIM: Table = Table {
    name: "date_dim",
    kind: TableKind::Dimension,
    description: "Calendar days (UTC) on which events happened.",
    columns: &[
        required("date_key", Int64, DATE_KEY),
        required("date", Date, "The calendar date, UTC."),
        required(
            "timestamp",
            Timestamp,
            "Midnight UTC at the start of the day.",
        ),
        required(
            "timestamp_unix",
            Int64,
            "Midnight UTC at the start of the day, in epoch seconds.",
        ),
        required("year", Int64, "Calendar year."),
        required("quarter", Int64, "Quarter of the year, 1 to 4."),
        required("month", Int64, "Month, 1 to 12."),
        required("day", Int64, "Day of the month, 1 to 31."),
        required(
            "day_of_week",
            Int64,
            "ISO day of the week: 1 is Monday, 7 is Sunday.",
        ),
        required("is_weekend", Bool, "True on Saturdays and Sundays."),
    ],
    primary_key: &["date_key"],
    key_enforced: true,
    partition_by: None,
    cluster_by: &[],
};

pub const DATE_TIME_DIM: Table = Table {
    name: "date_time_dim",
    kind: TableKind::Dimension,
    description: "Instants (UTC, to the second) at which events happened.",
    columns: &[
        required("date_time_key", Int64, DATE_TIME_KEY),
        required(
            "timestamp",
            Timestamp,
            "The instant, truncated to the second.",
        ),
        required("timestamp_unix", Int64, "The instant in epoch seconds."),
        required("year", Int64, "Calendar year."),
        required("month", Int64, "Month, 1 to 12."),
        required("day", Int64, "Day of the month, 1 to 31."),
        required("hour", Int64, "Hour, 0 to 23."),
        required("minute", Int64, "Minute, 0 to 59."),
        required("second", Int64, "Second, 0 to 59."),
        required("date_key", Int64, DATE_KEY),
    ],
    primary_key: &["date_time_key"],
    key_enforced: true,
    partition_by: None,
    cluster_by: &["date_key"],
};

pub const USER_DIM: Table = Table {
    name: "user_dim",
    kind: TableKind::Dimension,
    description: "Registered users, type-2 slowly changing on level: each level period of a user is one row.",
    columns: &[
        required("user_key", Int64, USER_KEY),
        required(
            "user_id",
            Int64,
            "The user's id in the service; the same in every version.",
        ),
        required("first_name", String, "First name."),
        required("last_name", String, "Last name."),
        required(
            "gender",
            String,
            "Gender as the service records it (M or F).",
        ),
        required(
            "level",
            String,
            "Subscription level during this version: free or paid.",
        ),
        required("registration_ts", Timestamp, "When the user registered."),
        required(
            "registration_city",
            String,
            "City of the user's earliest event.",
        ),
        required(
            "registration_zip",
            String,
            "ZIP code of the user's earliest event.",
        ),
        required(
            "registration_state",
            String,
            "State of the user's earliest event.",
        ),
        required(
            "registration_lon",
            Float64,
            "Longitude of the user's earliest event.",
        ),
        required(
            "registration_lat",
            Float64,
            "Latitude of the user's earliest event.",
        ),
        required(
            "valid_from",
            Timestamp,
            "Event time at which this level began.",
        ),
        nullable(
            "valid_to",
            Timestamp,
            "Event time at which the next level began; NULL while current.",
        ),
        required("is_current", Bool, "True for the user's current version."),
    ],
    primary_key: &["user_key"],
    key_enforced: false,
    partition_by: None,
    cluster_by: &["user_id"],
};

pub const EVENT_DIM: Table = Table {
    name: "event_dim",
    kind: TableKind::Dimension,
    description: "Every page view, the grain of user activity.",
    columns: &[
        required("event_key", Int64, EVENT_KEY),
        required("timestamp", Timestamp, "When the page was requested."),
        nullable(
            "user_id",
            Int64,
            "The user's id; NULL for guests and logged-out users.",
        ),
        required(
            "session_id",
            Int64,
            "The session's id as the service numbered it.",
        ),
        required(
            "item_in_session",
            Int64,
            "Position of the event in its session, from 0.",
        ),
        required("user_agent", String, "The client's user agent."),
        required(
            "page",
            String,
            "The page requested, such as NextSong or Home.",
        ),
        required(
            "auth",
            String,
            "Authentication state: Logged In, Logged Out, Guest or Cancelled.",
        ),
        required("method", String, "HTTP method: GET or PUT."),
        required("status", Int64, "HTTP status of the response."),
        required("level", String, LEVEL),
        required(
            "is_listen_event",
            Bool,
            "True for NextSong pages, which start a song.",
        ),
    ],
    primary_key: &["event_key"],
    key_enforced: false,
    partition_by: Some("timestamp"),
    cluster_by: &["page", "user_id"],
};

pub const SESSION_DIM: Table = Table {
    name: "session_dim",
    kind: TableKind::Dimension,
    description: "Sessions, one row per session and user.",
    columns: &[
        required("session_key", Int64, SESSION_KEY),
        required(
            "session_id",
            Int64,
            "The session's id as the service numbered it.",
        ),
        nullable(
            "user_id",
            Int64,
            "The user's id; NULL for a guest's session.",
        ),
    ],
    primary_key: &["session_key"],
    key_enforced: true,
    partition_by: None,
    cluster_by: &["user_id"],
};

pub const EVENT_SESSION_BRIDGE: Table = Table {
    name: "event_session_bridge",
    kind: TableKind::Bridge,
    description: "Which events belong to which session.",
    columns: &[
        required("session_key", Int64, SESSION_KEY),
        required("event_key", Int64, EVENT_KEY),
    ],
    primary_key: &["session_key", "event_key"],
    key_enforced: false,
    partition_by: None,
    cluster_by: &["session_key"],
};

pub const EVENT_FACT: Table = Table {
    name: "event_fact",
    kind: TableKind::Fact,
    description: "One row per listen (NextSong event), written when its session closes; an event arriving after that makes a new version.",
    columns: &[
        required("event_key", Int64, EVENT_KEY),
        required(
            "user_key",
            Int64,
            "Key of the user_dim version in force at the event.",
        ),
        required("user_id", Int64, "The user's id."),
        required("session_key", Int64, SESSION_KEY),
        required("date_time_key", Int64, DATE_TIME_KEY),
        required("date_key", Int64, DATE_KEY),
        required("location_key", Int64, LOCATION_KEY),
        required("song_key", Int64, SONG_KEY),
        required("timestamp", Timestamp, "When the song started."),
        required("level", String, LEVEL),
        required("duration", Float64, "Length of the song in seconds."),
        required(
            "is_moving",
            Bool,
            "True when the user's location differs from their previous listen.",
        ),
        required(
            "consecutive_no_song",
            Int64,
            "How many listens in a row, up to and including this one, were by the same artist.",
        ),
        required(
            "is_first_listen_event",
            Bool,
            "True for the first listen of the session.",
        ),
        required(
            "is_last_listen_event",
            Bool,
            "True for the last listen of the session.",
        ),
        nullable(
            "is_song_skipped",
            Bool,
            "True when the session's next page view came before the song's end; NULL when the session has none after it.",
        ),
        nullable(
            "next_listen_event_time_gap",
            Float64,
            "Seconds to the next listen of the session; NULL for the last one.",
        ),
        required("record_valid_from", Timestamp, VALID_FROM),
        nullable("record_valid_to", Timestamp, VALID_TO),
        required("is_record_valid", Bool, IS_VALID),
    ],
    primary_key: &["event_key", "record_valid_from"],
    key_enforced: false,
    partition_by: Some("timestamp"),
    cluster_by: &["user_id", "song_key"],
};

pub const SESSION_FACT: Table = Table {
    name: "session_fact",
    kind: TableKind::Fact,
    description: "One row per session and user, emitted when the session closes by event time and versioned by late events.",
    columns: &[
        required("session_key", Int64, SESSION_KEY),
        nullable(
            "user_key",
            Int64,
            "Key of the user_dim version in force at the session's start; NULL for guests.",
        ),
        nullable("user_id", Int64, "The user's id; NULL for guests."),
        required("date_key", Int64, "Date key of the session's start."),
        required(
            "date_time_key",
            Int64,
            "Date-time key of the session's start.",
        ),
        required(
            "session_start_ts",
            Timestamp,
            "Time of the session's first event.",
        ),
        required(
            "session_end_ts",
            Timestamp,
            "Time of the session's last event.",
        ),
        required(
            "level",
            String,
            "Subscription level at the session's start.",
        ),
        required(
            "session_duration",
            Float64,
            "Seconds from the first to the last event.",
        ),
        required(
            "listening_time",
            Float64,
            "Seconds of music played: the sum over the session's listens.",
        ),
        required("listen_count", Int64, "Number of listens in the session."),
        required("event_count", Int64, "Number of page views in the session."),
        required(
            "primary_s_location",
            Int64,
            "Location key where most of the session's events happened.",
        ),
        required("record_valid_from", Timestamp, VALID_FROM),
        nullable("record_valid_to", Timestamp, VALID_TO),
        required("is_record_valid", Bool, IS_VALID),
    ],
    primary_key: &["session_key", "record_valid_from"],
    key_enforced: false,
    partition_by: Some("session_start_ts"),
    cluster_by: &["user_id"],
};

pub const AUTH_FACT: Table = Table {
    name: "auth_fact",
    kind: TableKind::Fact,
    description: "One row per login attempt, from auth_events.",
    columns: &[
        required("event_key", Int64, EVENT_KEY),
        required("session_key", Int64, SESSION_KEY),
        nullable(
            "user_id",
            Int64,
            "The user's id; NULL when the attempt failed before one was known.",
        ),
        required("date_time_key", Int64, DATE_TIME_KEY),
        required("date_key", Int64, DATE_KEY),
        required("location_key", Int64, LOCATION_KEY),
        required("timestamp", Timestamp, "When the attempt was made."),
        required("level", String, LEVEL),
        required("success", Bool, "True when the login succeeded."),
    ],
    primary_key: &["event_key"],
    key_enforced: true,
    partition_by: Some("timestamp"),
    cluster_by: &["success", "user_id"],
};

pub const LEVEL_CHANGE_FACT: Table = Table {
    name: "level_change_fact",
    kind: TableKind::Fact,
    description: "One row per upgrade or downgrade, from status_change_events.",
    columns: &[
        required("event_key", Int64, EVENT_KEY),
        required("user_id", Int64, "The user's id."),
        required("session_key", Int64, SESSION_KEY),
        required("date_time_key", Int64, DATE_TIME_KEY),
        required("date_key", Int64, DATE_KEY),
        required("location_key", Int64, LOCATION_KEY),
        required("timestamp", Timestamp, "When the change was submitted."),
        required("auth", String, "Authentication state at the change."),
        required("level", String, "Level as the event reported it."),
    ],
    primary_key: &["event_key"],
    key_enforced: true,
    partition_by: Some("timestamp"),
    cluster_by: &["user_id"],
};

pub const DEAD_LETTERS: Table = Table {
    name: "dead_letters",
    kind: TableKind::Operational,
    description: "Records the pipeline rejected, with the reason, kept byte for byte.",
    columns: &[
        required(
            "source_topic",
            String,
            "Topic (or file) the record came from.",
        ),
        required("source_partition", Int64, "Kafka partition; 0 for files."),
        required(
            "source_offset",
            Int64,
            "Kafka offset, or line number for files.",
        ),
        required(
            "reason",
            String,
            "Stable reason code, such as invalid_json or missing_field.",
        ),
        nullable(
            "field",
            String,
            "The JSON key concerned, when there is one.",
        ),
        required("detail", String, "Human explanation of the rejection."),
        required("payload", Bytes, "The record exactly as received."),
        required(
            "received_at",
            Timestamp,
            "When the pipeline read the record.",
        ),
    ],
    primary_key: &["source_topic", "source_partition", "source_offset"],
    key_enforced: true,
    partition_by: Some("received_at"),
    cluster_by: &["reason"],
};
