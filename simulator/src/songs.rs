//! Song catalogues in eventsim's `listen_counts.txt` format (plain or gzipped): one song
//! a line, `trackId`, artist, title, duration in seconds and play count, tab-separated.
//! Songs are drawn in proportion to their play count, which gives the long tail. A
//! built-in catalogue stands in when no file is given.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use fake::locales::{Data, EN};
use warehouse::{Classify, ErrorClass};

use crate::random::Stream;

/// A catalogue that cannot be used, with the line at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read song catalogue {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("song catalogue {file}, line {line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("song catalogue {file}: {message}")]
    Empty { file: String, message: &'static str },
}

impl Classify for CatalogueError {
    fn class(&self) -> ErrorClass {
        match self {
            CatalogueError::Read { .. } => ErrorClass::Retryable,
            CatalogueError::Line { .. } | CatalogueError::Empty { .. } => ErrorClass::BadData,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CatalogueSong {
    pub track_id: String,
    pub artist: String,
    pub title: String,
    /// Seconds.
    pub duration: f64,
    pub count: u64,
}

/// Songs and the running total of their counts, for drawing by popularity.
#[derive(Clone, Debug)]
pub struct Catalogue {
    songs: Vec<CatalogueSong>,
    cumulative: Vec<u64>,
}

impl Catalogue {
    /// Reads a catalogue file; gzip is recognised by its magic bytes, not its name.
    pub fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
        let file = path.display().to_string();
        let read_error = |source| CatalogueError::Read {
            file: file.clone(),
            source,
        };
        let mut reader = BufReader::new(std::fs::File::open(path).map_err(read_error)?);
        let gzipped = reader
            .fill_buf()
            .map_err(read_error)?
            .starts_with(&[0x1f, 0x8b]);
        if gzipped {
            Catalogue::parse(
                &file,
                BufReader::new(flate2::bufread::GzDecoder::new(reader)),
            )
        } else {
            Catalogue::parse(&file, reader)
        }
    }

    /// Parses a catalogue; `file` names it in errors.
    pub fn parse(file: &str, mut reader: impl BufRead) -> Result<Catalogue, CatalogueError> {
        let mut songs = Vec::new();
        let mut buffer = Vec::new();
        let mut line = 0;
        loop {
            buffer.clear();
            let read =
                reader
                    .read_until(b'\n', &mut buffer)
                    .map_err(|source| CatalogueError::Read {
                        file: file.to_owned(),
                        source,
                    })?;
            if read == 0 {
                break;
            }
            line += 1;
            let text = std::str::from_utf8(&buffer).map_err(|_| CatalogueError::Line {
                file: file.to_owned(),
                line,
                message: "not UTF-8".to_owned(),
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            let song = parse_line(text).map_err(|message| CatalogueError::Line {
                file: file.to_owned(),
                line,
                message,
            })?;
            songs.push(song);
        }
        Catalogue::new(file, songs)
    }

    /// The catalogue used when no `--songs` file is given: 12,000 invented songs by
    /// 4,000 invented artists, with durations spread log-normally around four minutes, and
    /// a popularity curve shaped like a real catalogue's: the song of rank r is played in
    /// proportion to 1 / (r + 60), so the head is flat (the most played song has about
    /// 0.4 % of all plays and the most played artist well under 1 %, as in eventsim's
    /// 10,000-song sample) and the tail long. Always the same.
    pub fn builtin() -> Catalogue {
        const ARTISTS: usize = 4_000;
        const SONGS: usize = 12_000;
        let mut rng = Stream::new(BUILTIN_SEED, 0);
        let mut artists: Vec<String> = Vec::with_capacity(ARTISTS);
        let mut seen = HashSet::new();
        while artists.len() < ARTISTS {
            let name = invent_artist(&mut rng);
            if seen.insert(name.clone()) {
                artists.push(name);
            }
        }
        // Ranks are shuffled so that popularity does not follow artist order.
        let mut ranks: Vec<usize> = (1..=SONGS).collect();
        for i in (1..ranks.len()).rev() {
            ranks.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut songs = Vec::with_capacity(SONGS);
        let mut titles = HashSet::new();
        while songs.len() < SONGS {
            let artist = &artists[rng.below(ARTISTS as u64) as usize];
            let title = invent_title(&mut rng);
            if !titles.insert((artist.clone(), title.clone())) {
                continue;
            }
            let duration = (240.0 * rng.log_normal_factor(0.3)).clamp(60.0, 900.0);
            let rank = ranks[songs.len()] as f64;
            songs.push(CatalogueSong {
                track_id: format!("BUILTIN{:06}", songs.len()),
                artist: artist.clone(),
                title,
                // Milliseconds are the finest precision events carry.
                duration: libm::round(duration * 1000.0) / 1000.0,
                count: libm::round(1_000_000.0 / (rank + 60.0)).max(1.0) as u64,
            });
        }
        match Catalogue::new("(built-in)", songs) {
            Ok(catalogue) => catalogue,
            Err(e) => unreachable!("the built-in catalogue has songs with counts: {e}"),
        }
    }

    fn new(file: &str, songs: Vec<CatalogueSong>) -> Result<Catalogue, CatalogueError> {
        if songs.is_empty() {
            return Err(CatalogueError::Empty {
                file: file.to_owned(),
                message: "has no songs",
            });
        }
        let mut total = 0u64;
        let cumulative: Vec<u64> = songs
            .iter()
            .map(|song| {
                total = total.saturating_add(song.count);
                total
            })
            .collect();
        if total == 0 {
            return Err(CatalogueError::Empty {
                file: file.to_owned(),
                message: "every song has a count of 0, so none can be drawn",
            });
        }
        Ok(Catalogue { songs, cumulative })
    }

    pub fn len(&self) -> usize {
        self.songs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.songs.is_empty()
    }

    pub fn songs(&self) -> &[CatalogueSong] {
        &self.songs
    }

    /// The song drawn for `u`, uniform in [0, 1): each song's chance is its count over
    /// the total.
    pub fn pick(&self, u: f64) -> &CatalogueSong {
        &self.songs[self.pick_index(u)]
    }

    /// The index in [`Catalogue::songs`] of the song [`Catalogue::pick`] draws.
    pub fn pick_index(&self, u: f64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        // Truncation keeps the target below the total for every u below 1.
        let target = ((u * total as f64) as u64).min(total.saturating_sub(1));
        let i = self.cumulative.partition_point(|&c| c <= target);
        i.min(self.songs.len() - 1)
    }
}

/// Seeds the built-in catalogue's stream; any fixed number would do.
const BUILTIN_SEED: u64 = 0x5150_4e47;

fn word<'a>(rng: &mut Stream, words: &[&'a str]) -> &'a str {
    words[rng.below(words.len() as u64) as usize]
}

// The built-in catalogue's words: written for it, so that invented names read like band
// names and song titles rather than like the business jargon of `fake`'s lists.
const ADJECTIVES: &[&str] = &[
    "Amber", "Ancient", "Blue", "Broken", "Burning", "Velvet", "Crimson", "Dark", "Electric",
    "Empty", "Endless", "Fading", "Faraway", "Frozen", "Golden", "Gentle", "Hollow", "Honey",
    "Hungry", "Lonely", "Lost", "Lucky", "Midnight", "Neon", "Northern", "Paper", "Pale", "Quiet",
    "Restless", "Rusty", "Salty", "Scarlet", "Secret", "Silver", "Sleepy", "Southern", "Strange",
    "Sweet", "Tender", "Twisted", "Wild", "Wooden", "Young", "Summer", "Winter", "Silent",
    "Bright", "Little", "Heavy", "Sunday",
];
const NOUNS: &[&str] = &[
    "Arrow",
    "Avenue",
    "Bird",
    "Bone",
    "Bridge",
    "Candle",
    "Canyon",
    "Chorus",
    "City",
    "Cloud",
    "Comet",
    "Crow",
    "Dawn",
    "Desert",
    "Diamond",
    "Dream",
    "Echo",
    "Ember",
    "Engine",
    "Feather",
    "Fire",
    "Flower",
    "Forest",
    "Ghost",
    "Harbor",
    "Heart",
    "Highway",
    "Horizon",
    "Island",
    "Lantern",
    "Light",
    "Lion",
    "Machine",
    "Mirror",
    "Moon",
    "Mountain",
    "Ocean",
    "Orchid",
    "Parade",
    "Planet",
    "Radio",
    "Rain",
    "River",
    "Rose",
    "Satellite",
    "Shadow",
    "Signal",
    "Sky",
    "Smoke",
    "Sparrow",
    "Star",
    "Stone",
    "Storm",
    "Street",
    "Sun",
    "Thunder",
    "Tide",
    "Train",
    "Valley",
    "Wave",
    "Wheel",
    "Window",
    "Wolf",
];
const VERBS: &[&str] = &[
    "Chasing", "Dancing", "Drifting", "Falling", "Burning", "Calling", "Running", "Waiting",
    "Holding", "Leaving", "Losing", "Breaking", "Dreaming", "Shining", "Walking", "Counting",
];
const PLACES: &[&str] = &[
    "Memphis",
    "Tokyo",
    "Paris",
    "Berlin",
    "Lisbon",
    "Havana",
    "Nashville",
    "Brooklyn",
    "Rio",
    "Dublin",
    "Cairo",
    "Detroit",
    "Oslo",
    "Austin",
    "Bombay",
    "Seville",
];
const SUFFIXES: &[&str] = &[
    " (Live)",
    " (Acoustic)",
    " (Remastered)",
    " (Radio Edit)",
    " - Demo",
    " (Reprise)",
];

fn invent_artist(rng: &mut Stream) -> String {
    match rng.below(7) {
        0 | 1 => format!(
            "{} {}",
            word(rng, EN::NAME_FIRST_NAME),
            word(rng, EN::NAME_LAST_NAME)
        ),
        2 => format!("The {} {}s", word(rng, ADJECTIVES), word(rng, NOUNS)),
        3 => format!("{} {}", word(rng, ADJECTIVES), word(rng, NOUNS)),
        4 => format!(
            "{} & the {}s",
            word(rng, EN::NAME_FIRST_NAME),
            word(rng, NOUNS)
        ),
        5 => format!("{} of {}", word(rng, NOUNS), word(rng, PLACES)),
        _ => format!("DJ {}", word(rng, EN::NAME_LAST_NAME)),
    }
}

fn invent_title(rng: &mut Stream) -> String {
    let title = match rng.below(6) {
        0 => format!("{} {}", word(rng, ADJECTIVES), word(rng, NOUNS)),
        1 => format!("{} the {}", word(rng, VERBS), word(rng, NOUNS)),
        2 => format!("{} of the {}", word(rng, NOUNS), word(rng, NOUNS)),
        3 => format!("{} Nights in {}", word(rng, ADJECTIVES), word(rng, PLACES)),
        4 => format!(
            "{}, {}",
            word(rng, EN::NAME_FIRST_NAME),
            word(rng, ADJECTIVES)
        ),
        _ => format!("Under the {} {}", word(rng, ADJECTIVES), word(rng, NOUNS)),
    };
    // A few versions of a song, as real catalogues have.
    if rng.below(12) == 0 {
        format!("{title}{}", word(rng, SUFFIXES))
    } else {
        title
    }
}

fn parse_line(text: &str) -> Result<CatalogueSong, String> {
    let fields: Vec<&str> = text.split('\t').collect();
    let [track_id, artist, title, duration, count] = fields[..] else {
        return Err(format!(
            "expected 5 tab-separated fields (trackId, artist, title, duration, count), found {}",
            fields.len()
        ));
    };
    if artist.trim().is_empty() || title.trim().is_empty() {
        return Err("artist and title must not be empty".to_owned());
    }
    let duration: f64 = duration
        .trim()
        .parse()
        .ok()
        .filter(|d: &f64| d.is_finite() && *d > 0.0 && *d <= warehouse::raw::MAX_SONG_SECONDS)
        .ok_or_else(|| {
            format!("duration {duration:?} is not a number of seconds above 0 and up to a day")
        })?;
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| format!("count {count:?} is not a whole number of 0 or more"))?;
    Ok(CatalogueSong {
        track_id: track_id.to_owned(),
        artist: artist.to_owned(),
        title: title.to_owned(),
        duration,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(text: &str) -> Result<Catalogue, CatalogueError> {
        Catalogue::parse("test.txt", text.as_bytes())
    }

    fn line_error(text: &str) -> (usize, String) {
        match catalogue(text) {
            Err(CatalogueError::Line { line, message, .. }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn the_builtin_catalogue_has_a_flat_head_like_a_real_one() {
        let catalogue = Catalogue::builtin();
        let total: u64 = catalogue.songs().iter().map(|s| s.count).sum();
        let mut by_artist: std::collections::HashMap<&str, u64> = Default::default();
        for song in catalogue.songs() {
            *by_artist.entry(song.artist.as_str()).or_default() += song.count;
        }
        let top_song = catalogue.songs().iter().map(|s| s.count).max().unwrap();
        let top_artist = by_artist.values().copied().max().unwrap();
        let share = |n: u64| n as f64 / total as f64;
        // eventsim's 10,000-song sample: 0.41 % and 0.48 %.
        assert!(share(top_song) < 0.006, "top song {}", share(top_song));
        assert!(share(top_artist) < 0.01, "top artist {}", share(top_artist));
        assert!(by_artist.len() > 3_500, "{} artists", by_artist.len());
    }

    #[test]
    fn songs_are_drawn_in_proportion_to_their_counts() {
        let songs =
            catalogue("A\tX\tOne\t100.5\t1\nB\tY\tTwo\t200\t3\n\nC\tZ\tThree\t300\t0\n").unwrap();
        assert_eq!(songs.len(), 3);
        let draws = 4000;
        let twos = (0..draws)
            .filter(|i| songs.pick(f64::from(*i) / f64::from(draws)).title == "Two")
            .count();
        assert_eq!(twos, 3000, "three quarters of a uniform sweep");
        assert!((0..draws).all(|i| songs.pick(f64::from(i) / f64::from(draws)).title != "Three"));
        assert_eq!(songs.pick(0.999_999_999).title, "Two");
    }

    #[test]
    fn malformed_lines_name_their_line_and_problem() {
        let (line, message) = line_error("A\tX\tOne\t100\t1\nB\tY\tTwo\t200\n");
        assert_eq!(line, 2);
        assert!(
            message.contains("expected 5 tab-separated fields"),
            "{message}"
        );
        assert!(
            line_error("A\tX\tOne\tlong\t1")
                .1
                .contains("duration \"long\"")
        );
        assert!(line_error("A\tX\tOne\t-3\t1").1.contains("duration"));
        assert!(line_error("A\tX\tOne\t3\t-1").1.contains("count \"-1\""));
        assert!(
            line_error("A\t \tOne\t3\t1")
                .1
                .contains("must not be empty")
        );
        let invalid = Catalogue::parse("bad", &b"A\tX\t\xff\t3\t1\n"[..]);
        assert!(
            matches!(invalid, Err(CatalogueError::Line { line: 1, .. })),
            "{invalid:?}"
        );
    }

    #[test]
    fn catalogues_without_drawable_songs_are_refused() {
        assert!(matches!(catalogue(""), Err(CatalogueError::Empty { .. })));
        assert!(matches!(
            catalogue("A\tX\tOne\t3\t0\n"),
            Err(CatalogueError::Empty { .. })
        ));
    }
}
