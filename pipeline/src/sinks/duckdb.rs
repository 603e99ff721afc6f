//! The embedded warehouse: a DuckDB file. One transaction per micro-batch writes every
//! table, the offsets consumed and the transformation state, so a crash at any instant
//! leaves the warehouse at a batch boundary it can resume from exactly.

use std::path::Path;

use duckdb::{Connection, params};
use warehouse::analytics::{self, Dialect};
use warehouse::schema;

use super::{Batch, Checkpoint, Offsets, STATE_FORMAT, Sink, decode_state, encode_state};
use crate::error::PipelineError;
use crate::transforms::Output;
use crate::transforms::arrow::record_batches;
use crate::transforms::state::State;

/// Bookkeeping tables beside the warehouse's own.
const BOOKKEEPING: &str = "
CREATE TABLE IF NOT EXISTS pipeline_offsets (
  topic VARCHAR NOT NULL,
  \"partition\" BIGINT NOT NULL,
  next_offset BIGINT NOT NULL,
  PRIMARY KEY (topic, \"partition\")
);
CREATE TABLE IF NOT EXISTS pipeline_state (
  id INTEGER PRIMARY KEY,
  format INTEGER NOT NULL,
  state VARCHAR NOT NULL
);
";

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
        let sink = DuckDb {
            connection,
            path: path.display().to_string(),
        };
        sink.connection
            .execute_batch(&schema::duckdb::schema_script())
            .and_then(|()| sink.connection.execute_batch(BOOKKEEPING))
            .and_then(|()| {
                sink.connection
                    .execute_batch(&analytics::views_script(Dialect::DuckDb))
            })
            .map_err(|e| sink.error("cannot create the tables and views", e))?;
        Ok(sink)
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
        let row = self
            .connection
            .query_row(
                "SELECT format, state FROM pipeline_state WHERE id = 1",
                [],
                |row| Ok((row.get::<_, i32>(0)?, row.get::<_, String>(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                duckdb::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(|e| self.error("cannot read the checkpoint", e))?;
        row.map(|(format, json)| decode_state(format, &json, &self.path))
            .transpose()
    }

    /// Writes one batch's rows and, when given, the checkpoint (offsets consumed up to
    /// and the state after it), in one transaction.
    pub fn write(
        &mut self,
        output: &Output,
        checkpoint: Option<&Checkpoint<'_>>,
    ) -> Result<(), PipelineError> {
        let Some(Checkpoint { offsets, state }) = checkpoint else {
            return self.upsert(output);
        };
        let state = encode_state(state)?;
        self.transaction(output, |tx, fail| {
            for (topic, partition, next) in offsets.iter() {
                tx.execute(
                    "INSERT OR REPLACE INTO pipeline_offsets VALUES (?, ?, ?)",
                    params![topic, partition, next],
                )
                .map_err(|e| fail("cannot store offsets", e))?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO pipeline_state VALUES (1, ?, ?)",
                params![STATE_FORMAT, state],
            )
            .map_err(|e| fail("cannot store the checkpoint", e))?;
            Ok(())
        })
    }

    /// Writes rows alone, in one transaction: for batch jobs, which move no offsets.
    pub fn upsert(&mut self, output: &Output) -> Result<(), PipelineError> {
        self.transaction(output, |_, _| Ok(()))
    }

    /// Upserts the output's rows, then runs `more` in the same transaction.
    fn transaction(
        &mut self,
        output: &Output,
        more: impl FnOnce(
            &duckdb::Transaction<'_>,
            &dyn Fn(&str, duckdb::Error) -> PipelineError,
        ) -> Result<(), PipelineError>,
    ) -> Result<(), PipelineError> {
        let batches = record_batches(&output.tables)
            .map_err(|e| PipelineError::Bug(format!("Arrow refused a batch: {e}")))?;
        let path = self.path.clone();
        let fail = move |doing: &str, e: duckdb::Error| PipelineError::duckdb(&path, doing)(e);
        let tx = self
            .connection
            .transaction()
            .map_err(|e| fail("cannot begin a transaction", e))?;
        for (table, batch) in batches {
            let name = table.name;
            let stage = format!("stage_{name}");
            tx.execute_batch(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT * FROM \"{name}\" LIMIT 0; DELETE FROM temp.{stage};"
            ))
            .map_err(|e| fail(&format!("cannot stage {name}"), e))?;
            {
                let mut appender = tx
                    .appender_to_catalog_and_db(&stage, "temp", "main")
                    .map_err(|e| fail(&format!("cannot stage {name}"), e))?;
                appender
                    .append_record_batch(batch)
                    .and_then(|()| appender.flush())
                    .map_err(|e| fail(&format!("cannot stage {name}"), e))?;
            }
            // Rows that can change are upserts on the primary key; the others are kept
            // once (a dead letter redelivered after a crash is the same message).
            let verb = if table.rows_change() {
                "INSERT OR REPLACE"
            } else {
                "INSERT OR IGNORE"
            };
            tx.execute(
                &format!("{verb} INTO \"{name}\" SELECT * FROM temp.{stage}"),
                [],
            )
            .map_err(|e| fail(&format!("cannot write {name}"), e))?;
        }
        more(&tx, &fail)?;
        tx.commit().map_err(|e| fail("cannot commit", e))
    }
}

impl Sink for DuckDb {
    fn offsets(&mut self) -> Result<Offsets, PipelineError> {
        self.stored_offsets()
    }

    fn state(&mut self) -> Result<Option<State>, PipelineError> {
        self.stored_state()
    }

    fn write(&mut self, batch: &Batch<'_>) -> Result<(), PipelineError> {
        DuckDb::write(self, batch.output, batch.checkpoint.as_ref())
    }

    fn describe(&self) -> String {
        self.path.clone()
    }
}
