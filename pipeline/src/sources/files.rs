//! JSON-lines input: `DIR/<topic>.jsonl` (or `.jsonl.gz`) for each topic, as the
//! simulator's `--output-dir` writes it. Each file is partition 0 of its topic and a
//! line's number (from 0) is its offset, so a restart skips what is already written.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use warehouse::raw::EventKind;

use super::{BatchLimits, Polled, Record, Source, read_line};
use crate::error::PipelineError;

struct Input {
    kind: EventKind,
    topic: String,
    path: PathBuf,
    reader: Box<dyn BufRead + Send>,
    next_offset: i64,
    done: bool,
}

/// Reads the topics' files in turns, a slice of each at a time, so that event time
/// advances on every topic together as it would on Kafka.
pub struct Files {
    inputs: Vec<Input>,
    turn: usize,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self.inputs.iter().map(|i| &i.path).collect();
        f.debug_struct("Files").field("paths", &paths).finish()
    }
}

/// Lines read from one file per turn.
const SLICE: usize = 1_000;

impl Files {
    /// Opens every topic's file in `dir`; a missing file is an error naming it.
    pub fn open(dir: &Path, topics: &[(EventKind, String)]) -> Result<Files, PipelineError> {
        let mut inputs = Vec::new();
        for (kind, topic) in topics {
            let plain = dir.join(format!("{topic}.jsonl"));
            let gzip = dir.join(format!("{topic}.jsonl.gz"));
            let path = if plain.exists() || !gzip.exists() {
                plain
            } else {
                gzip
            };
            let file = File::open(&path)
                .map_err(PipelineError::io(format!("cannot read {}", path.display())))?;
            let reader: Box<dyn BufRead + Send> = if path.extension().is_some_and(|e| e == "gz") {
                Box::new(BufReader::new(MultiGzDecoder::new(file)))
            } else {
                Box::new(BufReader::with_capacity(1 << 20, file))
            };
            inputs.push(Input {
                kind: *kind,
                topic: topic.clone(),
                path,
                reader,
                next_offset: 0,
                done: false,
            });
        }
        Ok(Files { inputs, turn: 0 })
    }
}

impl Source for Files {
    fn poll(&mut self, limits: &BatchLimits) -> Result<Polled, PipelineError> {
        let mut records = Vec::new();
        let mut bytes = 0;
        while records.len() < limits.max_messages && bytes < limits.max_bytes {
            if self.inputs.iter().all(|i| i.done) {
                break;
            }
            let count = self.inputs.len();
            let input = &mut self.inputs[self.turn % count];
            self.turn += 1;
            for _ in 0..SLICE {
                if input.done {
                    break;
                }
                let Some(line) = read_line(&mut input.reader, &input.path.display())? else {
                    input.done = true;
                    break;
                };
                bytes += line.len();
                records.push(Record {
                    kind: input.kind,
                    topic: input.topic.clone(),
                    partition: 0,
                    offset: input.next_offset,
                    payload: line,
                });
                input.next_offset += 1;
            }
        }
        if records.is_empty() && self.inputs.iter().all(|i| i.done) {
            return Ok(Polled::End);
        }
        Ok(Polled::Records(records))
    }

    fn partitions(&self) -> Vec<(EventKind, String, i32)> {
        self.inputs
            .iter()
            .map(|i| (i.kind, i.topic.clone(), 0))
            .collect()
    }

    fn commit(&mut self, _: &[(String, i32, i64)]) -> Result<(), PipelineError> {
        Ok(())
    }
}
