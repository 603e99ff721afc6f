//! The small dimensions (places, songs, dates and instants), emitted once per key as
//! far as memory goes.

use warehouse::keys;
use warehouse::time::DateTimeParts;

use super::{Output, Transformer};
use crate::transforms::rows::{DateRow, DateTimeRow, LocationRow, SongRow};

impl Transformer {
    /// Emits a dimension row the first time its key is seen (as far as memory goes).
    pub(super) fn remember(&mut self, key: i64) -> bool {
        if self.remembered.len() >= self.config.max_remembered_keys {
            self.remembered.clear();
        }
        self.remembered.insert(key)
    }

    pub(super) fn location(
        &mut self,
        location: &warehouse::raw::Location<'_>,
        out: &mut Output,
    ) -> i64 {
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

    pub(super) fn song(&mut self, artist: &str, song: &str, out: &mut Output) -> i64 {
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

    /// The date and date-time rows of an instant; date-time and date keys are remembered
    /// too, as they cannot collide with hashed keys or each other in practice (they are
    /// below 10^14, and date keys below 10^8).
    pub(super) fn instant(&mut self, ts_ms: i64, out: &mut Output) -> DateTimeParts {
        let parts = DateTimeParts::from_epoch_millis(ts_ms);
        let date_time_key = keys::date_time_key(&parts);
        if self.remember(date_time_key) {
            out.tables
                .date_time_dim
                .insert_if_absent(date_time_key, || DateTimeRow {
                    date_time_key,
                    epoch_second: parts.epoch_seconds(),
                });
            // A day's row once per day remembered, rather than with each new instant:
            // an empty date_dim batch costs DuckDB nothing, a one-row one a statement.
            let date_key = keys::date_key(&parts);
            if self.remember(date_key) {
                out.tables.date_dim.insert_if_absent(date_key, || DateRow {
                    date_key,
                    epoch_day: parts.epoch_day,
                });
            }
        }
        parts
    }
}
