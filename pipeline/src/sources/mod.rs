//! Where messages come from: Kafka (a consumer group over the four topics) or the
//! JSON-lines files the simulator writes.

pub mod files;
pub mod kafka;
pub mod stdin;

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use warehouse::raw::EventKind;

use crate::error::PipelineError;

/// One message as read, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: EventKind,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// When a micro-batch is cut: whichever limit is reached first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

impl Default for BatchLimits {
    fn default() -> BatchLimits {
        BatchLimits {
            max_messages: 50_000,
            max_bytes: 32 << 20,
            max_wait: Duration::from_millis(1_000),
        }
    }
}

/// What a poll found.
#[derive(Debug)]
pub enum Polled {
    /// Messages, possibly none if nothing arrived in time.
    Records(Vec<Record>),
    /// The input has ended (files only).
    End,
}

pub trait Source {
    /// The next batch, cut by `limits`.
    fn poll(&mut self, limits: &BatchLimits) -> Result<Polled, PipelineError>;

    /// The partitions this source reads now, as (kind, topic, partition).
    fn partitions(&self) -> Vec<(EventKind, String, i32)>;

    /// Tells the source everything before these offsets is durably written.
    fn commit(&mut self, next_offsets: &[(String, i32, i64)]) -> Result<(), PipelineError>;

    /// For a source whose partitions can move to another instance during a poll (a
    /// consumer group): where the runner tells it about the batch it writes meanwhile,
    /// so that before giving partitions up it waits for that write and commits what it
    /// wrote, and their new owner starts after it (see [`InFlight`]).
    fn in_flight(&self) -> Option<Arc<InFlight>> {
        None
    }

    /// Partitions taken away from this source since the last call (a consumer group's
    /// revocation): the transformation stops waiting for their event time.
    fn revoked(&mut self) -> Vec<(String, i32)> {
        Vec::new()
    }

    /// Messages behind the end of the input, where the source can tell.
    fn lag(&self) -> Option<i64> {
        None
    }
}

/// The batch the runner writes on another thread while the source polls. A source that
/// gives partitions up during a poll waits in [`InFlight::landed`] for that write, so
/// that it can commit the offsets written before the partitions go: otherwise their new
/// owner would start before them and write the same messages again.
#[derive(Debug, Default)]
pub struct InFlight {
    flight: Mutex<Flight>,
    ended: Condvar,
}

#[derive(Debug, Default)]
struct Flight {
    writing: bool,
    /// The next offsets of the last write that succeeded with a checkpoint, not yet
    /// taken by [`InFlight::landed`].
    written: Vec<(String, i32, i64)>,
}

impl InFlight {
    /// A write begins.
    pub fn begin(&self) {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        flight.writing = true;
        flight.written.clear();
    }

    /// The write ended, having made these offsets durable (none if it failed or
    /// checkpointed nothing).
    pub fn end(&self, written: &[(String, i32, i64)]) {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        flight.writing = false;
        flight.written = written.to_vec();
        self.ended.notify_all();
    }

    /// Waits for the write under way, if any, and takes the offsets the last one made
    /// durable.
    pub fn landed(&self) -> Vec<(String, i32, i64)> {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        while flight.writing {
            flight = self
                .ended
                .wait(flight)
                .unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::take(&mut flight.written)
    }
}

/// The next line of `reader` without its newline, or `None` at the end; `place` names
/// the input in the error (rendered only then: this runs for every line).
pub(crate) fn read_line(
    reader: &mut dyn std::io::BufRead,
    place: &dyn std::fmt::Display,
) -> Result<Option<Vec<u8>>, PipelineError> {
    let mut line = Vec::new();
    let read = reader
        .read_until(b'\n', &mut line)
        .map_err(|error| PipelineError::Io {
            doing: format!("cannot read {place}"),
            error,
        })?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}
