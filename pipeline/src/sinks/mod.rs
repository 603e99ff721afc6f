//! Where rows go: the embedded warehouse (DuckDB) or BigQuery through Parquet staging;
//! dead letters also to Kafka. A sink stores the consumed offsets and the transformation
//! state with the rows, so that the pipeline resumes from what the warehouse holds.

pub mod bigquery;
pub mod checkpoint_log;
pub mod dead_letter_topics;
pub mod duckdb;
pub mod staging;

use std::collections::HashMap;
use std::time::Duration;

pub use self::bigquery::BigQuery;
pub use self::checkpoint_log::{CheckpointLog, StreamRows};
pub use self::dead_letter_topics::DeadLetterTopics;
pub use self::duckdb::DuckDb;
pub use self::staging::Staging;

use crate::error::PipelineError;
use crate::metrics::ApiCalls;
use crate::transforms::arrow::Columnar;
use crate::transforms::rows::Tables;
use crate::transforms::state::{Changes, Records, State};

/// Where a partition's next message to read starts.
pub type Offsets = HashMap<(String, i32), i64>;

/// The version of the checkpoint's JSON, the whole state as one string, which BigQuery
/// datasets and DuckDB warehouses of earlier versions stored and which both sinks
/// migrate on open; a checkpoint of another version is refused.
pub const STATE_FORMAT: i32 = 2;

/// One micro-batch as a sink writes it; `T` is the state as that sink stores it.
#[derive(Debug)]
pub struct Batch<'a, T> {
    /// Names the batch after the offsets it consumed: the same input, the same name.
    pub id: &'a str,
    /// The rows of every table, as Arrow columns.
    pub rows: &'a Columnar,
    /// Written with the rows, in the same transaction, every so often: where to resume.
    pub checkpoint: Option<Checkpoint<'a, T>>,
}

/// Where the pipeline resumes after a restart. A sink that checkpoints with every batch
/// (DuckDB) never sees a row twice, so it may append; one that checkpoints every so
/// often (BigQuery) is given again the rows written after its checkpoint, derived anew
/// from the same input, and merges them unchanged.
#[derive(Debug)]
pub struct Checkpoint<'a, T> {
    /// The next offset to read per partition, for those that moved since the last one.
    pub offsets: &'a [(String, i32, i64)],
    /// The transformation state after this batch, encoded by [`Sink::snapshot`].
    pub state: &'a T,
}

/// What storing one checkpoint's state cost: the bytes of state written and the time
/// spent writing them within the batch's transaction (the runner adds the encoding's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointCost {
    pub bytes: u64,
    pub took: Duration,
}

/// A warehouse that stores a batch's rows, offsets and state all or nothing. It is
/// `Send` because it writes a batch on a thread of its own while the next one is
/// transformed.
pub trait Sink: std::fmt::Debug + Send {
    /// The state as this sink stores it at a checkpoint.
    type Snapshot: Send + Sync;
    /// Encodes the state after a batch (`changes` says which keys changed since the last
    /// checkpoint, for sinks that write it incrementally), before the next batch moves
    /// it on.
    fn snapshot(state: &State, changes: &Changes) -> Result<Self::Snapshot, PipelineError>
    where
        Self: Sized;
    /// The offsets stored with the last batch.
    fn offsets(&mut self) -> Result<Offsets, PipelineError>;
    /// The transformation state stored with the last batch, if any.
    fn state(&mut self) -> Result<Option<State>, PipelineError>;
    /// Writes the batch, and its checkpoint if it has one (saying what that cost); when
    /// this returns `Ok` it is durable.
    fn write(
        &mut self,
        batch: &Batch<'_, Self::Snapshot>,
    ) -> Result<Option<CheckpointCost>, PipelineError>;
    /// Whether every batch must carry a checkpoint: a sink that appends rows the
    /// transformation knows are new would otherwise store twice those a restart derives
    /// again.
    fn checkpoints_every_batch(&self) -> bool {
        false
    }
    /// Where the rows go, for logs.
    fn describe(&self) -> String;
    /// The requests this sink makes to cloud services, if it counts them, for
    /// `/metrics`.
    fn api_calls(&self) -> Option<ApiCalls> {
        None
    }
}

/// `tables` as the sinks write them; Arrow refusing them is a bug of ours.
pub fn columnar(tables: &Tables) -> Result<Columnar, PipelineError> {
    Columnar::of(tables).map_err(|e| PipelineError::Bug(format!("Arrow refused a batch: {e}")))
}

/// Reads a checkpoint, refusing one of another format.
pub(crate) fn decode_state(format: i32, json: &str, place: &str) -> Result<State, PipelineError> {
    if format != STATE_FORMAT {
        return Err(unreadable_format(
            place,
            format,
            &format!("format {STATE_FORMAT}"),
        ));
    }
    let mut state: State = serde_json::from_str(json).map_err(|e| {
        PipelineError::Incompatible(format!("{place}: the checkpoint does not read: {e}"))
    })?;
    state.rebuild_keys();
    Ok(state)
}

/// The refusal of a checkpoint written in a format this version does not read.
/// `reads` names the formats read ("format 3", "formats 4 to 6").
pub(crate) fn unreadable_format(place: &str, format: i32, reads: &str) -> PipelineError {
    PipelineError::Incompatible(format!(
        "{place} holds a checkpoint of format {format}, this pipeline reads {reads}; start a new warehouse"
    ))
}

/// The records of the keys that changed since the last checkpoint: what both sinks
/// store of the state.
pub(crate) fn encode_records(state: &State, changes: &Changes) -> Result<Records, PipelineError> {
    state
        .records(changes)
        .map_err(|e| PipelineError::Bug(format!("the state does not encode: {e}")))
}

/// FNV-1a: a digest for names, stable across runs and platforms, unlike std's hasher.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
