//! The embedded warehouse: a DuckDB file. One transaction per micro-batch writes every
//! table, the offsets consumed and the transformation state, so a crash at any instant
//! leaves the warehouse at a batch boundary it can resume from exactly. The state is kept
//! as keyed records (a session, a user, the clocks), and a checkpoint writes only those
//! that changed since the last one.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use arrow_array::{Array as _, ArrayRef, BinaryArray, Int64Array, RecordBatch};
use duckdb::{Connection, OptionalExt as _, params};
use warehouse::analytics::{self, Dialect};
use warehouse::schema;

use super::{
    Batch, Checkpoint, CheckpointCost, Offsets, Sink, columnar, decode_state, encode_records,
    unreadable_format,
};
use crate::error::PipelineError;
use crate::transforms::Output;
use crate::transforms::arrow::Columnar;
use crate::transforms::state::{Changes, READ_RECORD_FORMATS, RECORD_FORMAT, Records, State};

/// Bookkeeping tables beside the warehouse's own: the offsets and the clocks. The
/// state's record tables are [`STATE_TABLES`].
const BOOKKEEPING: &str = "
CREATE TABLE IF NOT EXISTS pipeline_offsets (
  topic VARCHAR NOT NULL,
  \"partition\" BIGINT NOT NULL,
  next_offset BIGINT NOT NULL,
  PRIMARY KEY (topic, \"partition\")
);
CREATE TABLE IF NOT EXISTS pipeline_checkpoint (
  id INTEGER PRIMARY KEY,
  format INTEGER NOT NULL,
  clocks BLOB NOT NULL
);
";

/// The state's record tables and their keys. Records are only ever appended, each
/// with `seq`, the number of the checkpoint that wrote it: a key's latest record is the
/// one that counts, and a null record says the key is gone. Deleting the record a new
/// one replaces would cost a scan of the table per checkpoint (DuckDB has no index
/// here: it would rewrite a million users' index at each of its own checkpoints), which
/// took a fifth of the writing time of a million users' day; the stale records are
/// deleted now and then instead ([`COMPACT_AT`]). Events appended to an open session
/// count while they are newer than the session's latest record.
const STATE_TABLES: [(&str, &str); 3] = [
    ("pipeline_state_sessions", "session_key"),
    ("pipeline_state_session_events", "session_key"),
    ("pipeline_state_users", "user_id"),
];

/// The record tables are compacted when they hold this many times the records the
/// state has, or more: a million users' day compacts the sessions' tables seven times
/// in a 39–41 s run (2 cores, 2026-12-06), and resuming reads at most three times the
/// records that count (0.8 s for that day's end).
const COMPACT_AT: u64 = 3;

/// Below this many records a table is not compacted, whatever its share of stale ones:
/// a small state's rewrite would cost more in statements than it saves.
const COMPACT_ABOVE: u64 = 1_000;

/// A record table shaped as this version writes it, under `name`.
fn state_table(name: &str, key: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} ({key} BIGINT NOT NULL, record BLOB, seq BIGINT NOT NULL);"
    )
}

/// DuckDB's buffers by default, in MB. A million users' day from files (2 cores,
/// 2026-12-06, alternated): 192 MB peaked at 833–850 MB of the process in 29.7–30.2 s
/// against 993–998 MB in 28.9–29.3 s at 256 MB; 160 MB took 31.9 s and 128 MB 33.9 s
/// for little less memory (848, 802 MB). 192 keeps the whole command under 1 GB with
/// room for a Kafka consumer's buffers, for about 3 % of the time.
pub const MEMORY_LIMIT_MB: u64 = 192;

/// How much write-ahead log DuckDB gathers before it checkpoints into the file, in MB.
/// Each of its checkpoints compresses what changed and rewrites the indexes of the
/// tables written, a cost per checkpoint: at DuckDB's default of 16 MB a million users'
/// day spent 85 s of its 140 s committing (with the state's records still indexed);
/// without those indexes the run took 77 s at 128 MB and 64 s at 256 MB (2 cores,
/// 2026-12-06). The price is at start after a crash, when the log is replayed: 3.4 s
/// for a full 256 MB.
const CHECKPOINT_THRESHOLD_MB: u64 = 256;

/// Where warehouses before the keyed records kept the state: one JSON string.
const LEGACY_STATE_TABLE: &str = "pipeline_state";

/// Opens a DuckDB file with the time zone pinned to UTC (see [`pin_utc`]).
pub fn connect(path: &Path, config: duckdb::Config) -> duckdb::Result<Connection> {
    let connection = Connection::open_with_flags(path, config)?;
    pin_utc(&connection)?;
    Ok(connection)
}

/// Makes UTC the time zone of every connection to `connection`'s database.
///
/// DuckDB's prebuilt library carries the ICU extension, which takes the host's time
/// zone as the default: dates cast from timestamps would then follow the machine the
/// pipeline or a report runs on, and Arrow exports would name that zone. A build
/// without ICU (the bundled one) has no such setting and is UTC already.
pub fn pin_utc(connection: &Connection) -> duckdb::Result<()> {
    let has_time_zone: bool = connection.query_row(
        "SELECT count(*) > 0 FROM duckdb_settings() WHERE name = 'TimeZone'",
        [],
        |row| row.get(0),
    )?;
    if has_time_zone {
        connection.execute_batch("SET GLOBAL TimeZone = 'UTC'")?;
    }
    Ok(())
}

pub struct DuckDb {
    connection: Connection,
    path: String,
    /// The warehouse tables whose primary key this file enforces with an index: those
    /// declared so, and any table of a warehouse created before its key was left
    /// unenforced, which stays an upsert.
    indexed: HashSet<&'static str>,
    /// Where the record tables stand.
    log: RecordLog,
}

/// Where the state's record tables stand after a checkpoint: its number, which its
/// records carry, and how many records each of [`STATE_TABLES`] holds, stale ones
/// included. A write makes the next one, kept once its transaction commits.
#[derive(Clone, Copy, Debug, Default)]
struct RecordLog {
    seq: i64,
    rows: [u64; 3],
}

impl std::fmt::Debug for DuckDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDb").field("path", &self.path).finish()
    }
}

impl DuckDb {
    /// Opens (or creates) the warehouse file and its tables.
    pub fn open(path: &Path) -> Result<DuckDb, PipelineError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(PipelineError::io(format!(
                "cannot create the folder of {}",
                path.display()
            )))?;
        }
        let connection = connect(path, duckdb::Config::default()).map_err(
            PipelineError::duckdb(path.display().to_string(), "cannot open"),
        )?;
        let mut sink = DuckDb {
            connection,
            path: path.display().to_string(),
            indexed: HashSet::new(),
            log: RecordLog::default(),
        };
        sink.limit_memory(MEMORY_LIMIT_MB)?;
        sink.connection
            .execute_batch(&format!(
                "SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD_MB}MB'"
            ))
            .map_err(|e| sink.error("cannot tune the database", e))?;
        sink.connection
            .execute_batch(&schema::duckdb::schema_script())
            .and_then(|()| sink.connection.execute_batch(BOOKKEEPING))
            .and_then(|()| {
                let tables: String = STATE_TABLES
                    .iter()
                    .map(|(name, key)| state_table(name, key))
                    .collect();
                sink.connection.execute_batch(&tables)
            })
            .and_then(|()| {
                sink.connection
                    .execute_batch(&analytics::views_script(Dialect::DuckDb))
            })
            .map_err(|e| sink.error("cannot create the tables and views", e))?;
        sink.append_only_state()?;
        sink.log = RecordLog::read(&sink.connection)
            .map_err(|e| sink.error("cannot count the checkpoint's records", e))?;
        sink.migrate_legacy_state()?;
        sink.indexed = sink.indexed_tables()?;
        Ok(sink)
    }

    /// Rewrites record tables that earlier versions made for replacing records in
    /// place (no `seq`, some with a key index) as this version appends them, each in a
    /// transaction of its own; their records become those of checkpoint 0.
    fn append_only_state(&mut self) -> Result<(), PipelineError> {
        for (name, key) in STATE_TABLES {
            let appended: bool = self
                .connection
                .query_row(
                    "SELECT count(*) > 0 FROM duckdb_columns()
                     WHERE schema_name = 'main' AND table_name = ? AND column_name = 'seq'",
                    [name],
                    |row| row.get(0),
                )
                .map_err(|e| self.error("cannot read the checkpoint's tables", e))?;
            if appended {
                continue;
            }
            let upgraded = format!("{name}_upgraded");
            let script = format!(
                "BEGIN TRANSACTION;
                 {create}
                 INSERT INTO {upgraded} SELECT {key}, record, 0 FROM {name};
                 DROP TABLE {name};
                 ALTER TABLE {upgraded} RENAME TO {name};
                 COMMIT;",
                create = state_table(&upgraded, key),
            );
            self.connection
                .execute_batch(&script)
                .map_err(|e| self.error(&format!("cannot rewrite {name} for appending"), e))?;
            tracing::info!(
                table = name,
                "an earlier version's checkpoint table was rewritten for appending"
            );
        }
        Ok(())
    }

    /// The warehouse tables that have a primary-key index in this file.
    fn indexed_tables(&self) -> Result<HashSet<&'static str>, PipelineError> {
        let read = || -> duckdb::Result<HashSet<String>> {
            let mut statement = self.connection.prepare(
                "SELECT DISTINCT table_name FROM duckdb_constraints()
                 WHERE schema_name = 'main' AND constraint_type = 'PRIMARY KEY'",
            )?;
            let names = statement.query_map([], |row| row.get(0))?;
            names.collect()
        };
        let names = read().map_err(|e| self.error("cannot read the tables' keys", e))?;
        let indexed: HashSet<&'static str> = schema::TABLES
            .iter()
            .map(|t| t.name)
            .filter(|name| names.contains(*name))
            .collect();
        let older: Vec<&str> = schema::TABLES
            .iter()
            .filter(|t| !t.key_enforced && indexed.contains(t.name))
            .map(|t| t.name)
            .collect();
        if !older.is_empty() {
            tracing::info!(
                tables = older.join(","),
                "these tables were created with a key index by an earlier version and are written as upserts; a new warehouse file appends to them, which is faster"
            );
        }
        Ok(indexed)
    }

    /// Rewrites the one-string state of a warehouse written before the keyed records as
    /// records, in one transaction with dropping the old table; a state of a format this
    /// version cannot read is refused with what to do.
    fn migrate_legacy_state(&mut self) -> Result<(), PipelineError> {
        let legacy: bool = self
            .connection
            .query_row(
                "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?",
                [LEGACY_STATE_TABLE],
                |row| row.get(0),
            )
            .map_err(|e| self.error("cannot look for an older checkpoint", e))?;
        if !legacy {
            return Ok(());
        }
        let row = self
            .connection
            .query_row(
                &format!("SELECT format, state FROM {LEGACY_STATE_TABLE} WHERE id = 1"),
                [],
                |row| Ok((row.get::<_, i32>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(|e| self.error("cannot read the older checkpoint", e))?;
        let records = match &row {
            Some((format, json)) => {
                let state = decode_state(*format, json, &self.path)?;
                Some(encode_records(&state, &state.everything())?)
            }
            None => None,
        };
        let path = self.path.clone();
        let tx = self
            .connection
            .transaction()
            .map_err(PipelineError::duckdb(&path, "cannot begin a transaction"))?;
        let mut log = self.log;
        if let Some(records) = &records {
            log = log.write(&tx, records).map_err(PipelineError::duckdb(
                &path,
                "cannot migrate the checkpoint",
            ))?;
        }
        tx.execute_batch(&format!("DROP TABLE {LEGACY_STATE_TABLE}"))
            .and_then(|()| tx.commit())
            .map_err(PipelineError::duckdb(
                &path,
                "cannot migrate the checkpoint",
            ))?;
        self.log = log;
        if let Some(records) = &records {
            tracing::info!(
                sessions = records.sessions.len(),
                users = records.users.len(),
                "the checkpoint of an older version was rewritten as keyed records"
            );
        }
        Ok(())
    }

    /// Caps the memory DuckDB's buffers take (it spills to a folder beside the file
    /// past it); DuckDB's own default is 80 % of the machine's.
    pub fn limit_memory(&self, mb: u64) -> Result<(), PipelineError> {
        self.connection
            .execute_batch(&format!("SET memory_limit = '{mb}MB'"))
            .map_err(|e| self.error("cannot limit its memory", e))
    }

    /// Caps the threads DuckDB works with (the machine's cores by default).
    pub fn limit_threads(&self, threads: usize) -> Result<(), PipelineError> {
        self.connection
            .execute_batch(&format!("SET threads = {threads}"))
            .map_err(|e| self.error("cannot limit its threads", e))
    }

    pub(crate) fn error(&self, doing: &str, e: duckdb::Error) -> PipelineError {
        PipelineError::duckdb(&self.path, doing)(e)
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The offsets committed with the last batch.
    pub fn stored_offsets(&self) -> Result<Offsets, PipelineError> {
        let read = || -> duckdb::Result<Offsets> {
            let mut statement = self
                .connection
                .prepare("SELECT topic, \"partition\", next_offset FROM pipeline_offsets")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    (row.get::<_, String>(0)?, row.get::<_, i32>(1)?),
                    row.get(2)?,
                ))
            })?;
            rows.collect()
        };
        read().map_err(|e| self.error("cannot read the stored offsets", e))
    }

    /// The transformation state checkpointed with the last batch, if any.
    pub fn stored_state(&self) -> Result<Option<State>, PipelineError> {
        let meta = self
            .connection
            .query_row(
                "SELECT format, clocks FROM pipeline_checkpoint WHERE id = 1",
                [],
                |row| Ok((row.get::<_, i32>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(|e| self.error("cannot read the checkpoint", e))?;
        let Some((format, clocks)) = meta else {
            return Ok(None);
        };
        // Earlier formats' records read too (dropping what is no longer kept).
        if !u8::try_from(format).is_ok_and(|f| READ_RECORD_FORMATS.contains(&f)) {
            let (first, last) = (READ_RECORD_FORMATS.start(), READ_RECORD_FORMATS.end());
            return Err(unreadable_format(
                &self.path,
                format,
                &format!("formats {first} to {last}"),
            ));
        }
        let read = |sql: &str| -> duckdb::Result<Vec<(i64, Vec<u8>)>> {
            let mut statement = self.connection.prepare(sql)?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        };
        let [
            (sessions, session_key),
            (session_events, _),
            (users, user_id),
        ] = STATE_TABLES;
        // Events with no record of their session are kept, for the restore to refuse.
        let events = format!(
            "SELECT e.session_key, e.record FROM {session_events} e
             ANTI JOIN {sessions} s ON e.session_key = s.{session_key} AND s.seq >= e.seq"
        );
        let sessions = read(&current(sessions, session_key))
            .map_err(|e| self.error("cannot read the checkpointed sessions", e))?;
        let session_events =
            read(&events).map_err(|e| self.error("cannot read the checkpointed sessions", e))?;
        let users = read(&current(users, user_id))
            .map_err(|e| self.error("cannot read the checkpointed users", e))?;
        State::from_records(&clocks, sessions, session_events, users)
            .map(Some)
            .map_err(|e| {
                PipelineError::Incompatible(format!(
                    "{}: the checkpoint does not read: {e}",
                    self.path
                ))
            })
    }

    /// Writes one batch's rows and its checkpoint (offsets consumed up to, and the
    /// records of the state that changed), in one transaction. Since every batch is
    /// checkpointed, no row of the stream reaches the warehouse twice: rows are appended,
    /// and only those that close a version replace the row they supersede.
    pub fn write(
        &mut self,
        columnar: &Columnar,
        checkpoint: &Checkpoint<'_, Records>,
    ) -> Result<CheckpointCost, PipelineError> {
        let Checkpoint {
            offsets,
            state: records,
        } = checkpoint;
        let mut took = Duration::ZERO;
        let mut log = self.log;
        self.transaction(columnar, Rows::New, |tx, fail| {
            for (topic, partition, next) in offsets.iter() {
                tx.execute(
                    "INSERT OR REPLACE INTO pipeline_offsets VALUES (?, ?, ?)",
                    params![topic, partition, next],
                )
                .map_err(|e| fail("cannot store offsets", e))?;
            }
            let writing = Instant::now();
            log = log
                .write(tx, records)
                .map_err(|e| fail("cannot store the checkpoint", e))?;
            took += writing.elapsed();
            Ok(())
        })?;
        self.log = log;
        Ok(CheckpointCost {
            bytes: records.bytes(),
            took,
        })
    }

    /// Writes rows alone, in one transaction, each replacing any row of its key: for
    /// batch jobs, which move no offsets and may be run again over the same day.
    pub fn upsert(&mut self, output: &Output) -> Result<(), PipelineError> {
        self.transaction(&columnar(&output.tables)?, Rows::Replacing, |_, _| Ok(()))
    }

    /// Writes the rows, then runs `more` in the same transaction.
    fn transaction(
        &mut self,
        columnar: &Columnar,
        rows: Rows,
        more: impl FnOnce(
            &duckdb::Transaction<'_>,
            &dyn Fn(&str, duckdb::Error) -> PipelineError,
        ) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        let path = self.path.clone();
        let fail = move |doing: &str, e: duckdb::Error| PipelineError::duckdb(&path, doing)(e);
        let tx = self
            .connection
            .transaction()
            .map_err(|e| fail("cannot begin a transaction", e))?;
        for (table, batch) in &columnar.tables {
            let name = table.name;
            let failed = |e| fail(&format!("cannot write {name}"), e);
            if self.indexed.contains(name) {
                // Rows that can change are upserts on the primary key; the others are
                // kept once (a dimension seen again, a redelivered dead letter).
                stage(&tx, name, batch.clone()).map_err(failed)?;
                let verb = if table.rows_change() {
                    "INSERT OR REPLACE"
                } else {
                    "INSERT OR IGNORE"
                };
                tx.execute(
                    &format!("{verb} INTO \"{name}\" SELECT * FROM temp.stage_{name}"),
                    [],
                )
                .map_err(failed)?;
            } else if rows == Rows::Replacing || closes_versions(batch) {
                stage(&tx, name, batch.clone()).map_err(failed)?;
                let matching: Vec<String> = table
                    .primary_key
                    .iter()
                    .map(|k| format!("\"{name}\".\"{k}\" = s.\"{k}\""))
                    .collect();
                tx.execute_batch(&format!(
                    "DELETE FROM \"{name}\" USING temp.stage_{name} AS s WHERE {};
                     INSERT INTO \"{name}\" SELECT * FROM temp.stage_{name};",
                    matching.join(" AND ")
                ))
                .map_err(failed)?;
            } else {
                let mut appender = tx.appender(name).map_err(failed)?;
                appender
                    .append_record_batch(batch.clone())
                    .and_then(|()| appender.flush())
                    .map_err(failed)?;
            }
        }
        if let Some(superseded) = &columnar.superseded {
            close_superseded(&tx, superseded.clone())
                .map_err(|e| fail("cannot close superseded event_fact versions", e))?;
        }
        more(&tx, &fail)?;
        tx.commit().map_err(|e| fail("cannot commit", e))
    }
}

/// Which rows of a write may have a row of their key in the warehouse already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// A checkpointed batch of the stream: only rows that close a version (and rows of
    /// tables that keep their key enforced).
    New,
    /// A batch job's output: any row.
    Replacing,
}

/// Puts a batch into an empty temporary table shaped like `name`.
fn stage(tx: &duckdb::Transaction<'_>, name: &str, batch: RecordBatch) -> duckdb::Result<()> {
    let shape = format!("AS SELECT * FROM \"{name}\" LIMIT 0");
    stage_as(tx, &format!("stage_{name}"), &shape, batch)
}

/// Puts a batch into the temporary table `stage`, emptied first and created on first
/// use as `shape` says (a column list, or `AS` a query).
fn stage_as(
    tx: &duckdb::Transaction<'_>,
    stage: &str,
    shape: &str,
    batch: RecordBatch,
) -> duckdb::Result<()> {
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {stage} {shape}; DELETE FROM temp.{stage};"
    ))?;
    let mut appender = tx.appender_to_catalog_and_db(stage, "temp", "main")?;
    appender.append_record_batch(batch)?;
    appender.flush()
}

/// Closes the event_fact rows of superseded versions, which this batch's rows may hold
/// too: staged, then one update joined on the session and the version's start.
fn close_superseded(tx: &duckdb::Transaction<'_>, superseded: RecordBatch) -> duckdb::Result<()> {
    stage_as(
        tx,
        "superseded_event_facts",
        "(session_key BIGINT NOT NULL, valid_from TIMESTAMPTZ NOT NULL, valid_to TIMESTAMPTZ NOT NULL)",
        superseded,
    )?;
    tx.execute(
        "UPDATE event_fact SET record_valid_to = s.valid_to, is_record_valid = false
         FROM temp.superseded_event_facts s
         WHERE event_fact.session_key = s.session_key AND event_fact.record_valid_from = s.valid_from",
        [],
    )
    .map(drop)
}

/// Whether any row of a versioned table's batch closes a version (its end is set): such
/// a row supersedes one an earlier batch may have written.
fn closes_versions(batch: &RecordBatch) -> bool {
    ["valid_to", "record_valid_to"]
        .iter()
        .filter_map(|column| batch.column_by_name(column))
        .any(|ends| ends.null_count() < ends.len())
}

impl Sink for DuckDb {
    type Snapshot = Records;

    fn snapshot(state: &State, changes: &Changes) -> Result<Records, PipelineError> {
        encode_records(state, changes)
    }

    fn offsets(&mut self) -> Result<Offsets, PipelineError> {
        self.stored_offsets()
    }

    fn state(&mut self) -> Result<Option<State>, PipelineError> {
        self.stored_state()
    }

    fn write(
        &mut self,
        batch: &Batch<'_, Records>,
    ) -> Result<Option<CheckpointCost>, PipelineError> {
        let Some(checkpoint) = &batch.checkpoint else {
            return Err(PipelineError::Bug(
                "a batch for DuckDB came without its checkpoint".to_owned(),
            ));
        };
        DuckDb::write(self, batch.rows, checkpoint).map(Some)
    }

    fn checkpoints_every_batch(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        self.path.clone()
    }
}

/// The records of `changes`; failing only for a value serde cannot describe, a bug.
impl RecordLog {
    /// How many records the record tables hold and the last checkpoint's number.
    fn read(connection: &Connection) -> duckdb::Result<RecordLog> {
        let mut log = RecordLog::default();
        for (i, (name, _)) in STATE_TABLES.iter().enumerate() {
            let (rows, seq): (i64, Option<i64>) = connection.query_row(
                &format!("SELECT count(*), max(seq) FROM {name}"),
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            log.rows[i] = rows.unsigned_abs();
            log.seq = log.seq.max(seq.unwrap_or(0));
        }
        Ok(log)
    }

    /// Appends a checkpoint's records as the next checkpoint: the clocks replaced, each
    /// changed session and user (a null record where it is gone), and the events
    /// appended to the other open sessions; then compacts the tables that have grown
    /// stale. Says where the tables stand after.
    fn write(self, tx: &duckdb::Transaction<'_>, records: &Records) -> duckdb::Result<RecordLog> {
        let RecordLog { seq, mut rows } = self;
        let seq = seq + 1;
        tx.execute(
            "INSERT OR REPLACE INTO pipeline_checkpoint VALUES (1, ?, ?)",
            params![i32::from(RECORD_FORMAT), records.clocks],
        )?;
        let [sessions, session_events, users] = STATE_TABLES;
        let events: Vec<(i64, Option<&[u8]>)> = records
            .session_events
            .iter()
            .map(|(k, r)| (*k, Some(r.as_slice())))
            .collect();
        rows[0] += append_records(tx, sessions.0, &keyed(&records.sessions), seq)?;
        rows[1] += append_records(tx, session_events.0, &events, seq)?;
        rows[2] += append_records(tx, users.0, &keyed(&records.users), seq)?;
        let stale =
            |rows: u64, live: usize| rows > COMPACT_ABOVE && rows >= COMPACT_AT * live as u64;
        // A session's events go stale only when its record is written again, so they
        // are compacted with the sessions.
        if stale(rows[0], records.live_sessions) {
            rows[0] = compact(tx, sessions, None)?;
            rows[1] = compact(tx, session_events, Some(sessions))?;
        }
        if stale(rows[2], records.live_users) {
            rows[2] = compact(tx, users, None)?;
        }
        Ok(RecordLog { seq, rows })
    }
}

/// Keyed records as [`append_records`] takes them.
fn keyed(records: &[(i64, Option<Vec<u8>>)]) -> Vec<(i64, Option<&[u8]>)> {
    records.iter().map(|(k, r)| (*k, r.as_deref())).collect()
}

/// Appends `(key, record)` rows of checkpoint `seq` to `table`, as one Arrow batch (a
/// row at a time through the appender took twice as long); says how many.
fn append_records(
    tx: &duckdb::Transaction<'_>,
    table: &str,
    records: &[(i64, Option<&[u8]>)],
    seq: i64,
) -> duckdb::Result<u64> {
    if records.is_empty() {
        return Ok(0);
    }
    let keys = Int64Array::from_iter_values(records.iter().map(|(key, _)| *key));
    let bytes = BinaryArray::from_iter(records.iter().map(|(_, record)| *record));
    let seqs = Int64Array::from_value(seq, records.len());
    let batch = RecordBatch::try_from_iter([
        ("key", Arc::new(keys) as ArrayRef),
        ("record", Arc::new(bytes) as ArrayRef),
        ("seq", Arc::new(seqs) as ArrayRef),
    ])
    .map_err(|e| duckdb::Error::ToSqlConversionFailure(Box::new(e)))?;
    let mut appender = tx.appender(table)?;
    appender.append_record_batch(batch)?;
    appender.flush()?;
    Ok(records.len() as u64)
}

/// The latest record of each key of a record table that still has one, as `(key,
/// record, seq)`. A semi join builds its table of the right side, the keys and
/// numbers alone, and streams the records past it: an inner join may build on the
/// records and run out of DuckDB's memory.
fn current(name: &str, key: &str) -> String {
    format!(
        "SELECT t.{key}, t.record, t.seq FROM {name} t
         SEMI JOIN (SELECT {key}, max(seq) AS seq FROM {name} GROUP BY ALL) l
         ON t.{key} = l.{key} AND t.seq = l.seq
         WHERE t.record IS NOT NULL"
    )
}

/// Deletes a record table's stale records: all but each key's latest, and the null
/// ones; for session events (`of` names the sessions' table, compacted first) those
/// not newer than a record of their session. Says how many records are left. Deleting
/// in place only marks rows; rebuilding the table in the batch's transaction held the
/// whole of it in DuckDB's memory, which 128 MB did not fit.
fn compact(
    tx: &duckdb::Transaction<'_>,
    (name, key): (&str, &str),
    of: Option<(&str, &str)>,
) -> duckdb::Result<u64> {
    let stale = match of {
        None => format!(
            "t.record IS NULL OR EXISTS (SELECT 1 FROM {name} n WHERE n.{key} = t.{key} AND n.seq > t.seq)"
        ),
        Some((sessions, session_key)) => format!(
            "NOT EXISTS (SELECT 1 FROM {sessions} s WHERE s.{session_key} = t.{key} AND s.seq < t.seq)"
        ),
    };
    tx.execute(&format!("DELETE FROM {name} t WHERE {stale}"), [])?;
    let left: i64 = tx.query_row(&format!("SELECT count(*) FROM {name}"), [], |row| {
        row.get(0)
    })?;
    Ok(left.unsigned_abs())
}
