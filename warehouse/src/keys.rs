//! Surrogate keys: stable 64-bit keys derived from canonical natural keys.
//!
//! Hashed keys are FarmHash Fingerprint64 of a canonical text, read as a signed 64-bit
//! integer: exactly BigQuery's `FARM_FINGERPRINT`, so every key can be recomputed in SQL.
//! The canonical text is the table name and the natural-key parts, joined by U+001F (the
//! ASCII unit separator). In a part, `\` is written `\\` and U+001F is written `\u001f`, so
//! that distinct keys never share a text; a missing part is `\N`. Integers are decimal,
//! floats the shortest text that reads back as the same `f64`.
//!
//! Date and date-time keys are not hashed: `YYYYMMDD` and `YYYYMMDDhhmmss` are already
//! unique, ordered and readable. Spark's 32-bit `hash()`, which the original used, collides
//! after about 77,000 keys with even odds; 64-bit fingerprints reach even odds only after
//! about five billion.

use std::cell::Cell;

use crate::time::DateTimeParts;

/// The separator between the parts of a canonical key text.
pub const SEPARATOR: char = '\u{1f}';

thread_local! {
    /// The text buffer of the last key built on this thread, reused by the next: keys are
    /// built for every event, and an allocation each would be a good part of the cost.
    static SPARE: Cell<String> = const { Cell::new(String::new()) };
}

/// Builds the canonical text of one natural key and fingerprints it.
#[derive(Debug)]
pub struct KeyText {
    text: String,
}

impl KeyText {
    pub fn new(table: &str) -> KeyText {
        let mut text = SPARE.with(Cell::take);
        text.clear();
        text.reserve(64);
        text.push_str(table);
        KeyText { text }
    }

    pub fn str(mut self, part: &str) -> KeyText {
        self.text.push(SEPARATOR);
        if part.contains(['\\', SEPARATOR]) {
            for ch in part.chars() {
                match ch {
                    '\\' => self.text.push_str("\\\\"),
                    SEPARATOR => self.text.push_str("\\u001f"),
                    ch => self.text.push(ch),
                }
            }
        } else {
            self.text.push_str(part);
        }
        self
    }

    pub fn int(mut self, part: i64) -> KeyText {
        self.text.push(SEPARATOR);
        self.text.push_str(itoa::Buffer::new().format(part));
        self
    }

    pub fn float(mut self, part: f64) -> KeyText {
        self.text.push(SEPARATOR);
        self.text.push_str(ryu::Buffer::new().format(part));
        self
    }

    pub fn opt_int(self, part: Option<i64>) -> KeyText {
        match part {
            Some(part) => self.int(part),
            None => self.null(),
        }
    }

    pub fn null(mut self) -> KeyText {
        self.text.push(SEPARATOR);
        self.text.push_str("\\N");
        self
    }

    /// The canonical text, as `FARM_FINGERPRINT` would be given it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn key(&self) -> i64 {
        fingerprint(&self.text)
    }
}

impl Drop for KeyText {
    fn drop(&mut self) {
        let text = std::mem::take(&mut self.text);
        SPARE.with(|spare| spare.set(text));
    }
}

/// BigQuery's `FARM_FINGERPRINT` of a string.
pub fn fingerprint(text: &str) -> i64 {
    // The fingerprint is an unsigned 64-bit value; BigQuery reads the same bits as INT64.
    farmhash::fingerprint64(text.as_bytes()) as i64
}

/// `song_dim`: a song is its artist and title.
pub fn song_key(artist: &str, song: &str) -> i64 {
    KeyText::new("song_dim").str(artist).str(song).key()
}

/// `location_dim`: every attribute is part of the key, so the dimension row is a function
/// of its key whatever order events arrive in.
pub fn location_key(city: &str, zip: &str, state: &str, lon: f64, lat: f64) -> i64 {
    KeyText::new("location_dim")
        .str(city)
        .str(zip)
        .str(state)
        .float(lon)
        .float(lat)
        .key()
}

/// `event_dim`: eventsim numbers events within a session; the time guards against two
/// simulators that reuse session ids.
pub fn event_key(session_id: i64, item_in_session: i64, ts_millis: i64) -> i64 {
    KeyText::new("event_dim")
        .int(session_id)
        .int(item_in_session)
        .int(ts_millis)
        .key()
}

/// `session_dim`: a session of one user; guests' sessions have no user.
pub fn session_key(session_id: i64, user_id: Option<i64>) -> i64 {
    KeyText::new("session_dim")
        .int(session_id)
        .opt_int(user_id)
        .key()
}

/// `user_dim`: one version of a user, which starts at `valid_from_millis`.
pub fn user_key(user_id: i64, valid_from_millis: i64) -> i64 {
    KeyText::new("user_dim")
        .int(user_id)
        .int(valid_from_millis)
        .key()
}

/// `date_dim`: `YYYYMMDD` of the UTC date.
pub fn date_key(parts: &DateTimeParts) -> i64 {
    parts.year * 10_000 + i64::from(parts.month * 100 + parts.day)
}

/// `date_time_dim`: `YYYYMMDDhhmmss` of the UTC instant, to the second.
pub fn date_time_key(parts: &DateTimeParts) -> i64 {
    date_key(parts) * 1_000_000 + i64::from(parts.hour * 10_000 + parts.minute * 100 + parts.second)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published `FARM_FINGERPRINT` results (BigQuery's and Redshift's documentation),
    /// which pin the hash function itself.
    #[test]
    fn fingerprint_matches_published_bigquery_values() {
        for (text, expected) in [
            ("1footrue", -1_541_654_101_129_638_711),
            ("2applefalse", 2_794_438_866_806_483_259),
            ("3true", -4_880_158_226_897_771_312),
            ("alphabet", -2_427_165_924_636_348_523),
            ("Amazon Redshift", 8_085_098_817_162_212_970),
        ] {
            assert_eq!(fingerprint(text), expected, "{text:?}");
        }
    }

    /// Longer inputs take other code paths of Fingerprint64 (17-32, 33-64 and over 64
    /// bytes). Values cross-checked with the reference C++ library through `pyfarmhash`.
    #[test]
    fn fingerprint_matches_reference_library_on_every_length_class() {
        for (text, expected) in [
            ("", -7_286_425_919_675_154_353),
            ("0123456789abcdef0123", 8_665_324_875_548_751_069),
            (
                "0123456789abcdef0123456789abcdef0123456789",
                5_335_915_844_556_941_122,
            ),
            (&"x".repeat(100), 6_590_480_085_648_050_719),
        ] {
            assert_eq!(fingerprint(text), expected, "{text:?}");
        }
    }

    #[test]
    fn canonical_texts_join_parts_with_the_unit_separator() {
        let text = KeyText::new("song_dim").str("Muse").str("Uprising");
        assert_eq!(text.as_str(), "song_dim\u{1f}Muse\u{1f}Uprising");
        let text = KeyText::new("location_dim")
            .str("Tampa")
            .float(-82.0)
            .float(27.95);
        assert_eq!(
            text.as_str(),
            "location_dim\u{1f}Tampa\u{1f}-82.0\u{1f}27.95"
        );
        let text = KeyText::new("session_dim").int(42).opt_int(None);
        assert_eq!(text.as_str(), "session_dim\u{1f}42\u{1f}\\N");
    }

    #[test]
    fn separators_and_backslashes_inside_parts_cannot_forge_another_key() {
        assert_ne!(song_key("a\u{1f}b", "c"), song_key("a", "b\u{1f}c"));
        assert_ne!(
            session_key(1, None),
            KeyText::new("session_dim").int(1).str("\\N").key()
        );
        assert_eq!(
            KeyText::new("t").str("a\\b\u{1f}").as_str(),
            "t\u{1f}a\\\\b\\u001f"
        );
    }

    /// The keys of the star schema, pinned: a change here re-keys every warehouse.
    #[test]
    fn surrogate_keys_are_stable() {
        assert_eq!(song_key("Kings Of Leon", "Use Somebody"), SONG);
        assert_eq!(
            location_key("Tampa", "33602", "FL", -82.45843, 27.9506),
            LOCATION
        );
        assert_eq!(event_key(1234, 7, 1_700_000_000_000), EVENT);
        assert_eq!(session_key(1234, Some(77)), SESSION);
        assert_eq!(session_key(1234, None), GUEST_SESSION);
        assert_eq!(user_key(77, 1_700_000_000_000), USER);
    }

    // Computed with the reference C++ FarmHash (pyfarmhash) from texts joined by hand.
    const SONG: i64 = 8_708_741_816_748_820_295;
    const LOCATION: i64 = 7_475_273_862_110_963_123;
    const EVENT: i64 = 4_344_411_449_146_396_607;
    const SESSION: i64 = 4_823_649_424_385_181_180;
    const GUEST_SESSION: i64 = 3_368_684_763_565_852_955;
    const USER: i64 = -948_394_135_306_132_159;

    #[test]
    fn date_keys_are_readable_calendar_numbers() {
        let parts = DateTimeParts::from_epoch_millis(1_709_251_199_999);
        assert_eq!(date_key(&parts), 20_240_229);
        assert_eq!(date_time_key(&parts), 20_240_229_235_959);
    }
}
