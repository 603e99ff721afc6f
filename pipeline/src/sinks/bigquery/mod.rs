//! The BigQuery warehouse, written by appending only (see `warehouse::schema::bigquery`):
//! each batch is staged as Parquet (one file per table, every row stamped with when it
//! was appended) and loaded into the tables' logs, `<table>_log`, whose views `<table>`
//! show the current rows. The consumed offsets and the state are checkpointed after the
//! batch, every so often, in the staging bucket ([`CheckpointLog`]): rows appended after
//! the last checkpoint (or by a batch that failed part way) are appended again on a
//! restart, the same rows, which the views count once.

pub(crate) mod api;
mod credentials;
mod proto_rows;
mod write_api;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::Field;
use gcp_bigquery_client::model::clustering::Clustering;
use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_configuration_load::JobConfigurationLoad;
use gcp_bigquery_client::model::table::Table as BqTable;
use gcp_bigquery_client::model::table_reference::TableReference;
use gcp_bigquery_client::model::table_schema::TableSchema;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;
use prost_types::DescriptorProto;
use warehouse::analytics::{self, Dialect};
use warehouse::schema::bigquery::{
    LOADED_AT, SUPERSEDED_EVENT_FACTS, current_views_script, json_schema, log_table, log_tables,
};
use warehouse::schema::{ColumnType, TABLES, Table, arrow_type};

use self::api::Api;
pub use self::api::{Auth, Retry};
use self::write_api::{Appended, WriteApi};
use super::{
    Batch, CheckpointCost, CheckpointLog, Offsets, Sink, Staging, StreamRows, columnar,
    decode_state, encode_records,
};
use crate::error::PipelineError;
use crate::metrics::ApiCalls;
use crate::transforms::Output;
use crate::transforms::arrow::Columnar;
use crate::transforms::state::{Changes, Records, State};

/// Where and how to reach BigQuery.
#[derive(Clone, Debug)]
pub struct BigQueryOptions {
    pub project: String,
    pub dataset: String,
    /// Where the dataset is created when missing.
    pub location: String,
    /// The REST base up to `/bigquery/v2`; `None` is Google's.
    pub endpoint: Option<String>,
    /// The Storage Write API's gRPC endpoint; `None` is Google's.
    pub write_endpoint: Option<String>,
    /// The endpoints are bqemulator's, whose FlushRows offset is exclusive.
    pub emulator: bool,
    pub auth: Auth,
    /// `gs://bucket/prefix`, or a local directory (which only the emulator can load from).
    pub staging: String,
    /// Names this pipeline's checkpoint log, so that pipelines can share a dataset.
    pub instance: String,
    pub retry: Retry,
}

/// Where earlier versions kept the offsets and the state (as one JSON string per
/// instance), read once to migrate a dataset to the checkpoint log.
const LEGACY_OFFSETS_TABLE: &str = "pipeline_offsets";
const LEGACY_STATE_TABLE: &str = "pipeline_state";

pub struct BigQuery {
    api: Api,
    staging: Staging,
    dataset: String,
    instance: String,
    /// Claimed when the runner first asks for the state, so that a batch job, which
    /// checkpoints nothing, does not fence out the streaming pipeline of its instance.
    checkpoints: Option<CheckpointLog>,
    /// The `_loaded_at` of the last batch staged, in microseconds: the next is later,
    /// even if the clock steps back.
    last_stamp: i64,
    /// Requests to BigQuery and the staging location, for `/metrics`.
    calls: ApiCalls,
    /// Files a batch job staged, per table: loaded together, one job per table, since
    /// BigQuery counts load jobs per table and day.
    pending: BTreeMap<&'static str, (&'static Table, BTreeSet<String>)>,
    write: WriteApi,
    /// This run's write streams, one per log, created on first use.
    streams: BTreeMap<&'static str, LiveStream>,
    /// The batch being streamed: its stamp and where each table's rows start in their
    /// stream, kept so that a retried write appends the same rows at the same offsets.
    current: Option<Current>,
    /// Whether the dataset held an earlier version's `pipeline_state` when opened.
    legacy_state: bool,
}

/// A BUFFERED write stream of this run.
#[derive(Debug)]
struct LiveStream {
    table: &'static Table,
    name: String,
    /// The rows' message type.
    schema: DescriptorProto,
    /// Rows appended, and of those made visible.
    rows: i64,
    flushed: i64,
}

#[derive(Debug)]
struct Current {
    batch: String,
    stamp: i64,
    starts: BTreeMap<&'static str, i64>,
}

impl std::fmt::Debug for BigQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQuery")
            .field("dataset", &self.qualified(""))
            .field("staging", &self.staging)
            .finish()
    }
}

/// A client of the options' project, with a runtime of its own.
pub(crate) fn connect(
    options: &BigQueryOptions,
) -> Result<(Api, Arc<tokio::runtime::Runtime>), PipelineError> {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PipelineError::Bug(format!("cannot start a runtime: {e}")))?,
    );
    let api = Api::connect(
        &options.project,
        options.endpoint.as_deref(),
        &options.auth,
        Arc::clone(&runtime),
    )?
    .with_retry(options.retry);
    Ok((api, runtime))
}

impl BigQuery {
    /// Connects, and creates the dataset and any missing table from the warehouse schema.
    pub fn open(options: &BigQueryOptions) -> Result<BigQuery, PipelineError> {
        let calls = ApiCalls::default();
        let (api, runtime) = connect(options)?;
        let api = api.with_calls(calls.clone());
        let write = WriteApi::connect(
            options
                .write_endpoint
                .as_deref()
                .unwrap_or(write_api::GOOGLE_ENDPOINT),
            api.credentials.clone(),
            Arc::clone(&runtime),
            options.retry,
            calls.clone(),
            options.emulator,
        )?;
        let staging = Staging::open(&options.staging, runtime)?.with_calls(calls.clone());
        let mut sink = BigQuery {
            write,
            streams: BTreeMap::new(),
            current: None,
            api,
            staging,
            calls,
            dataset: options.dataset.clone(),
            instance: options.instance.clone(),
            checkpoints: None,
            last_stamp: 0,
            pending: BTreeMap::new(),
            legacy_state: false,
        };
        sink.api.ensure_dataset(&sink.dataset, &options.location)?;
        let existing = sink.api.tables(&sink.dataset)?;
        let has = |name: &str, kind: &str| existing.iter().any(|(n, k)| n == name && k == kind);
        sink.legacy_state = has(LEGACY_STATE_TABLE, "TABLE");
        for table in log_tables() {
            if !has(&log_table(table), "TABLE") {
                tracing::info!(table = log_table(table), "creating the BigQuery table");
                sink.api.create_table(sink.table_definition(table)?)?;
            }
        }
        // An earlier version kept each table's rows in a table of its own name, where
        // the view of the current rows goes now: its rows move to the log first, older
        // than any appended since. Not in a transaction, which BigQuery's DDL cannot
        // join: a crash in between leaves rows in both, and the next start appends them
        // again, which the views count once.
        let mut script = String::new();
        for table in TABLES.iter().filter(|t| has(t.name, "TABLE")) {
            let columns = table
                .columns
                .iter()
                .map(|c| format!("`{}`", c.name))
                .collect::<Vec<_>>()
                .join(", ");
            script.push_str(&format!(
                "INSERT INTO `{log}` ({columns}, `{LOADED_AT}`) SELECT {columns}, TIMESTAMP_MICROS(0) FROM `{old}`;\nDROP TABLE `{old}`;\n",
                log = sink.qualified(&log_table(table)),
                old = sink.qualified(table.name),
            ));
        }
        if !script.is_empty() {
            tracing::info!("moving the tables of an earlier version into their logs");
            sink.api
                .query("move earlier tables into their logs", &script)?;
        }
        // Views are cheap to replace, and replacing keeps them those of this version: one
        // script, one job, rather than a job per view at every start.
        let project_dataset = sink.qualified("");
        let views = analytics::instantiate(
            &format!(
                "{}{}",
                current_views_script(),
                analytics::views_script(Dialect::BigQuery)
            ),
            project_dataset.trim_end_matches('.'),
        );
        sink.api.query("creating the views", &views)?;
        Ok(sink)
    }

    /// `project.dataset.name`.
    fn qualified(&self, name: &str) -> String {
        format!("{}.{}.{name}", self.api.project, self.dataset)
    }

    /// The table's log as the warehouse declares it: schema, partitioning and clustering.
    fn table_definition(&self, table: &Table) -> Result<BqTable, PipelineError> {
        let mut definition = BqTable::new(
            &self.api.project,
            &self.dataset,
            &log_table(table),
            log_schema(table)?,
        )
        .description(table.description);
        if let Some(column) = table.partition_by {
            let mut partitioning = TimePartitioning::per_day();
            partitioning.field = Some(column.to_owned());
            definition = definition.time_partitioning(partitioning);
        }
        if !table.cluster_by.is_empty() {
            definition = definition.clustering(Clustering {
                fields: Some(table.cluster_by.iter().map(|c| (*c).to_owned()).collect()),
            });
        }
        Ok(definition)
    }

    /// Appends the files staged since the last load to their tables' logs, one job per
    /// table, all at once, and waits. They stay pending until every job succeeded: a
    /// retry loads again what had landed, which the views count once.
    fn load_pending(&mut self) -> Result<(), PipelineError> {
        let mut running = Vec::new();
        for (table, uris) in self.pending.values() {
            let log = log_table(table);
            let job = Job {
                configuration: Some(JobConfiguration {
                    load: Some(JobConfigurationLoad {
                        source_uris: Some(uris.iter().cloned().collect()),
                        source_format: Some("PARQUET".to_owned()),
                        destination_table: Some(TableReference::new(
                            &self.api.project,
                            &self.dataset,
                            &log,
                        )),
                        create_disposition: Some("CREATE_NEVER".to_owned()),
                        write_disposition: Some("WRITE_APPEND".to_owned()),
                        schema: Some(log_schema(table)?),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let doing = format!("load {} staged files into {log}", uris.len());
            let (id, location) = self.api.start_job(&doing, job)?;
            running.push((doing, id, location));
        }
        for (doing, id, location) in running {
            self.api.wait_for_job(&doing, &id, location.as_deref())?;
        }
        self.pending.clear();
        Ok(())
    }

    /// Stages the tables' rows, with the closes of the superseded listen facts, for the
    /// next load. Each batch has a stamp of its own, so that of two rows of one key the
    /// view tells the later even when one job loads both.
    fn stage_batch(&mut self, id: &str, columnar: &Columnar) -> Result<(), PipelineError> {
        if log_batches(columnar).next().is_none() {
            return Ok(());
        }
        let stamp = next_stamp(&mut self.last_stamp);
        for (table, rows) in log_batches(columnar) {
            let rows = stamped(rows, stamp)?;
            let uri = self.staging.put(table.name, id, &rows)?;
            self.pending
                .entry(table.name)
                .or_insert_with(|| (table, BTreeSet::new()))
                .1
                .insert(uri);
        }
        Ok(())
    }

    /// Appends the rows to the tables' write streams (created on first use),
    /// unflushed: invisible until a checkpoint covers them. A batch written again after
    /// a failure is appended at the offsets of its first attempt, where the rows that
    /// landed then are recognised (`ALREADY_EXISTS`) rather than duplicated.
    fn stream_batch(&mut self, id: &str, columnar: &Columnar) -> Result<(), PipelineError> {
        let current = match &mut self.current {
            Some(current) if current.batch == id => current,
            slot => slot.insert(Current {
                batch: id.to_owned(),
                stamp: next_stamp(&mut self.last_stamp),
                starts: BTreeMap::new(),
            }),
        };
        for (table, rows) in log_batches(columnar) {
            let stream = match self.streams.entry(table.name) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let parent = format!(
                        "projects/{}/datasets/{}/tables/{}",
                        self.api.project,
                        self.dataset,
                        log_table(table)
                    );
                    let name = self.write.create_stream(&parent)?;
                    tracing::info!(stream = name, "opened a write stream");
                    entry.insert(LiveStream {
                        table,
                        name,
                        schema: proto_rows::descriptor(table),
                        rows: 0,
                        flushed: 0,
                    })
                }
            };
            let start = *current.starts.entry(table.name).or_insert(stream.rows);
            let encoded = proto_rows::encode(table, rows, current.stamp)?;
            if self
                .write
                .append(&stream.name, &stream.schema, &encoded, start)?
                == Appended::AlreadyThere
            {
                tracing::info!(
                    stream = stream.name,
                    offset = start,
                    "rows of a retried append were there already"
                );
            }
            stream.rows = start + encoded.len() as i64;
        }
        Ok(())
    }

    /// Makes every stream's appended rows visible.
    fn flush_streams(&mut self) -> Result<(), PipelineError> {
        for stream in self.streams.values_mut() {
            if stream.rows > stream.flushed {
                self.write.flush(&stream.name, stream.rows)?;
                stream.flushed = stream.rows;
            }
        }
        Ok(())
    }

    /// The streams at this point, as a checkpoint records them.
    fn stream_rows(&self) -> Vec<StreamRows> {
        self.streams
            .values()
            .map(|s| StreamRows {
                table: log_table(s.table),
                stream: s.name.clone(),
                rows: s.rows,
            })
            .collect()
    }

    /// The instance's checkpoint log, claimed on first use. Claiming it flushes the
    /// streams of the previous run up to what its last checkpoint covers (a crash may
    /// have come between the checkpoint and the flush), and leaves those streams: the
    /// rows appended to them after that checkpoint stay invisible for good, and are
    /// appended again, from the checkpoint's offsets, to this run's streams.
    fn checkpoints(&mut self) -> Result<&mut CheckpointLog, PipelineError> {
        let log = match self.checkpoints.take() {
            Some(log) => log,
            None => {
                let warehouse = format!("{}.{}", self.api.project, self.dataset);
                let log = CheckpointLog::open(&self.staging, &warehouse, &self.instance)?;
                for stream in log.streams().iter().filter(|s| s.rows > 0) {
                    self.write.flush(&stream.stream, stream.rows)?;
                }
                log
            }
        };
        Ok(self.checkpoints.insert(log))
    }

    /// The state and offsets an earlier version kept in the dataset for this instance,
    /// if it did: `pipeline_state` (one JSON string) and `pipeline_offsets`.
    fn legacy_checkpoint(&self) -> Result<Option<(State, Offsets)>, PipelineError> {
        if !self.legacy_state {
            return Ok(None);
        }
        let place = self.qualified(LEGACY_STATE_TABLE);
        let sql = format!(
            "SELECT format, state FROM `{place}` WHERE instance = '{}'",
            self.instance.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let state = match self
            .rows("read the earlier checkpoint", &sql, 2)?
            .as_slice()
        {
            [] => return Ok(None),
            [row] => match row.as_slice() {
                [Some(format), Some(json)] => {
                    let format = format.parse().map_err(|_| {
                        PipelineError::Incompatible(format!("{place}: format {format:?}"))
                    })?;
                    decode_state(format, json, &place)?
                }
                _ => {
                    return Err(PipelineError::Incompatible(format!(
                        "{place}: an empty checkpoint"
                    )));
                }
            },
            _ => {
                return Err(PipelineError::Incompatible(format!(
                    "{place}: several checkpoints for instance {}",
                    self.instance
                )));
            }
        };
        let place = self.qualified(LEGACY_OFFSETS_TABLE);
        let sql = format!("SELECT topic, kafka_partition, next_offset FROM `{place}`");
        let mut offsets = Offsets::new();
        for row in self.rows("read the earlier offsets", &sql, 3)? {
            let parsed = match row.as_slice() {
                [Some(topic), Some(partition), Some(next)] => partition
                    .parse()
                    .ok()
                    .zip(next.parse().ok())
                    .map(|(p, n)| ((topic.clone(), p), n)),
                _ => None,
            };
            let Some((key, next)) = parsed else {
                return Err(PipelineError::Incompatible(format!(
                    "{place}: a row does not read: {row:?}"
                )));
            };
            offsets.insert(key, next);
        }
        Ok(Some((state, offsets)))
    }

    /// Rows of a query, one `Vec` of text cells each, every page.
    pub(crate) fn rows(
        &self,
        doing: &str,
        sql: &str,
        columns: usize,
    ) -> Result<Vec<Vec<Option<String>>>, PipelineError> {
        self.api.rows(doing, sql, columns)
    }

    /// `sql` with each `{table}` of the warehouse replaced by its qualified name.
    pub(crate) fn qualify(&self, sql: &str) -> String {
        TABLES.iter().fold(sql.to_owned(), |sql, table| {
            sql.replace(&format!("{{{}}}", table.name), &self.qualified(table.name))
        })
    }

    /// Appends rows alone: for batch jobs, which move no offsets.
    /// Their staging files are named after the time, as a batch job is not replayed.
    pub fn upsert(&mut self, output: &Output) -> Result<(), PipelineError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.stage_batch(&format!("upsert-{now}"), &columnar(&output.tables)?)?;
        self.load_pending()
    }
}

impl Sink for BigQuery {
    /// The records of the keys that changed, as DuckDB stores them too.
    type Snapshot = Records;

    fn snapshot(state: &State, changes: &Changes) -> Result<Records, PipelineError> {
        encode_records(state, changes)
    }

    fn offsets(&mut self) -> Result<Offsets, PipelineError> {
        self.checkpoints()?.offsets()
    }

    /// The log's state; for a dataset an earlier version checkpointed into, that
    /// checkpoint, written to the log first so that it is read from there from now on.
    fn state(&mut self) -> Result<Option<State>, PipelineError> {
        if let Some(state) = self.checkpoints()?.state()? {
            return Ok(Some(state));
        }
        let Some((state, offsets)) = self.legacy_checkpoint()? else {
            return Ok(None);
        };
        let offsets: Vec<(String, i32, i64)> = offsets
            .into_iter()
            .map(|((topic, partition), next)| (topic, partition, next))
            .collect();
        let records = encode_records(&state, &state.everything())?;
        let legacy = self.qualified(LEGACY_STATE_TABLE);
        let log = self.checkpoints()?;
        log.commit(&records, &offsets, &[])?;
        tracing::info!("moved the checkpoint of {legacy} into {log:?}");
        Ok(Some(state))
    }

    fn write(
        &mut self,
        batch: &Batch<'_, Records>,
    ) -> Result<Option<CheckpointCost>, PipelineError> {
        self.stream_batch(batch.id, batch.rows)?;
        let Some(checkpoint) = &batch.checkpoint else {
            return Ok(None);
        };
        let streams = self.stream_rows();
        let cost = self
            .checkpoints()?
            .commit(checkpoint.state, checkpoint.offsets, &streams)?;
        self.flush_streams()?;
        Ok(Some(cost))
    }

    fn describe(&self) -> String {
        format!(
            "bigquery:{} (staging {})",
            self.qualified(""),
            self.staging.url()
        )
    }

    fn api_calls(&self) -> Option<ApiCalls> {
        Some(self.calls.clone())
    }
}

/// A `_loaded_at` later than `last` (which it becomes), from the clock if it moved on.
fn next_stamp(last: &mut i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    *last = now.max(*last + 1);
    *last
}

/// The rows per log: the tables', then the closes of superseded listen facts.
fn log_batches(columnar: &Columnar) -> impl Iterator<Item = (&'static Table, &RecordBatch)> {
    let tables = columnar.tables.iter().map(|(table, rows)| (*table, rows));
    let closes = columnar
        .superseded
        .iter()
        .map(|rows| (&SUPERSEDED_EVENT_FACTS, rows));
    tables.chain(closes)
}

/// The schema of a table's log, as the warehouse generates it.
fn log_schema(table: &Table) -> Result<TableSchema, PipelineError> {
    let fields: serde_json::Value = serde_json::from_str(&json_schema(table))
        .map_err(|e| PipelineError::Bug(format!("generated schema of {}: {e}", table.name)))?;
    serde_json::from_value(serde_json::json!({ "fields": fields }))
        .map_err(|e| PipelineError::Bug(format!("generated schema of {}: {e}", table.name)))
}

/// `rows` with the `_loaded_at` column of the batch added last, as the logs have it.
fn stamped(rows: &RecordBatch, micros: i64) -> Result<RecordBatch, PipelineError> {
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        LOADED_AT,
        arrow_type(ColumnType::Timestamp),
        false,
    ));
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![micros; rows.num_rows()]).with_timezone("UTC"),
    ));
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
        .map_err(|e| PipelineError::Bug(format!("Arrow refused a batch: {e}")))
}
