//! JSON-lines on standard input, as `simulator --stdout` writes them: the four kinds
//! interleaved in time order. A line's kind is told by its top-level keys: `page` makes
//! a page view, `success` a login attempt, `artist` a listen, anything else a status
//! change (so a line that is no event at all becomes a dead letter of that topic, not a
//! loss). Each kind is partition 0 of its topic, with offsets counted per topic from 0.

use std::io::BufRead;

use warehouse::raw::EventKind;

use super::{BatchLimits, Polled, Record, Source, read_line};
use crate::error::PipelineError;

pub struct Stdin {
    reader: Box<dyn BufRead + Send>,
    /// The topic of each kind, by `EventKind::index`.
    topics: [String; 4],
    next_offsets: [i64; 4],
    done: bool,
}

impl std::fmt::Debug for Stdin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stdin")
            .field("topics", &self.topics)
            .finish()
    }
}

impl Stdin {
    /// Reads `reader` (standard input in the binary).
    pub fn new(reader: Box<dyn BufRead + Send>, topics: &[(EventKind, String)]) -> Stdin {
        let mut names: [String; 4] = EventKind::ALL.map(|k| k.topic().to_owned());
        for (kind, topic) in topics {
            names[kind.index()] = topic.clone();
        }
        Stdin {
            reader,
            topics: names,
            next_offsets: [0; 4],
            done: false,
        }
    }
}

/// The kind of event a JSON line is, by its top-level keys.
pub fn kind_of(line: &[u8]) -> EventKind {
    if has_key(line, b"page") {
        EventKind::PageView
    } else if has_key(line, b"success") {
        EventKind::Auth
    } else if has_key(line, b"artist") {
        EventKind::Listen
    } else {
        EventKind::StatusChange
    }
}

/// Whether `"name"` stands as a key: after `{` or `,` and before `:`, spaces aside. Inside
/// a string value the quotes would be escaped, so a value cannot pass for a key.
fn has_key(line: &[u8], name: &[u8]) -> bool {
    let quoted_len = name.len() + 2;
    (0..line.len().saturating_sub(quoted_len - 1)).any(|at| {
        line[at] == b'"'
            && &line[at + 1..at + 1 + name.len()] == name
            && line[at + 1 + name.len()] == b'"'
            && line[..at]
                .iter()
                .rev()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{' || *b == b',')
            && line[at + quoted_len..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b':')
    })
}

impl Source for Stdin {
    fn poll(&mut self, limits: &BatchLimits) -> Result<Polled, PipelineError> {
        let mut records = Vec::new();
        let mut bytes = 0;
        while !self.done && records.len() < limits.max_messages && bytes < limits.max_bytes {
            let Some(line) = read_line(&mut self.reader, &"standard input")? else {
                self.done = true;
                break;
            };
            let kind = kind_of(&line);
            let slot = kind.index();
            bytes += line.len();
            records.push(Record {
                kind,
                topic: self.topics[slot].clone(),
                partition: 0,
                offset: self.next_offsets[slot],
                payload: line,
            });
            self.next_offsets[slot] += 1;
        }
        if records.is_empty() && self.done {
            return Ok(Polled::End);
        }
        Ok(Polled::Records(records))
    }

    fn partitions(&self) -> Vec<(EventKind, String, i32)> {
        EventKind::ALL
            .iter()
            .map(|k| (*k, self.topics[k.index()].clone(), 0))
            .collect()
    }

    fn commit(&mut self, _: &[(String, i32, i64)]) -> Result<(), PipelineError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_keys_not_by_values() {
        assert_eq!(kind_of(br#"{"ts":1,"page":"Home"}"#), EventKind::PageView);
        assert_eq!(kind_of(br#"{"ts":1, "success" : true}"#), EventKind::Auth);
        assert_eq!(kind_of(br#"{"artist":"a","song":"s"}"#), EventKind::Listen);
        assert_eq!(
            kind_of(br#"{"ts":1,"level":"paid"}"#),
            EventKind::StatusChange
        );
        // A song called "page": a value, not a key.
        assert_eq!(
            kind_of(br#"{"artist":"a","song":"\"page\": yes"}"#),
            EventKind::Listen
        );
        assert_eq!(kind_of(b"not json"), EventKind::StatusChange);
    }

    #[test]
    fn lines_become_records_numbered_per_topic() {
        let input = b"{\"page\":\"Home\"}\n{\"artist\":\"a\"}\n{\"page\":\"NextSong\"}\n".to_vec();
        let mut stdin = Stdin::new(
            Box::new(std::io::Cursor::new(input)),
            &[(EventKind::Listen, "listens".to_owned())],
        );
        let Polled::Records(records) = stdin.poll(&BatchLimits::default()).unwrap() else {
            panic!("no records");
        };
        let seen: Vec<(&str, i64)> = records
            .iter()
            .map(|r| (r.topic.as_str(), r.offset))
            .collect();
        assert_eq!(
            seen,
            [
                ("page_view_events", 0),
                ("listens", 0),
                ("page_view_events", 1)
            ]
        );
        assert!(matches!(
            stdin.poll(&BatchLimits::default()).unwrap(),
            Polled::End
        ));
    }
}
