//! The pipeline's one config, layered: built-in defaults, then a TOML file (`--config`),
//! then `MUSIC_ANALYTICS__<KEY>` environment variables, then flags. One declaration per
//! setting ([`Layer`]) serves serde for the file and clap for the other two. Unknown keys
//! are errors at every layer.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use serde::Deserialize;
use warehouse::raw::EventKind;

/// What `--help` adds after the flags.
const AFTER_HELP: &str = "\
Every setting is also a key of the TOML file (--config) and a MUSIC_ANALYTICS__<KEY>
variable: the long flag with '_' for '-', e.g. kafka_brokers = \"host:9092\" and
MUSIC_ANALYTICS__KAFKA_BROKERS=host:9092. topics and kafka_settings are tables in the file
(one flag per pair; the variables take several pairs, separated by ',' and ';'). Flags win
over the environment, which wins over the file; unknown keys and variables are errors.";

const SOURCE: &str = "Source (one of)";
const SINK: &str = "Sink (one of)";
const BIGQUERY: &str = "BigQuery";

/// music-analytics events into the star schema.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, long_about = None, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Job,
    #[command(flatten)]
    flags: Layer,
    /// A TOML file with any of the settings
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Consume events into the warehouse, resuming where it stopped
    Run,
    /// Rows per table and headline analytics of a DuckDB warehouse
    Report,
    /// The KPIs as one self-contained HTML page
    Dashboard {
        /// Where the page goes
        #[arg(long, value_name = "FILE", default_value = "data/dashboard.html")]
        out: PathBuf,
        /// all, 2026-Q1, 2026-01 or 2026-01-05..2026-01-11 (repeatable; default: all,
        /// then each quarter and month with data)
        #[arg(long = "period", value_name = "P")]
        periods: Vec<String>,
    },
    /// Data-quality checks of a day; exit code 1 when one fails
    Check {
        #[arg(value_parser = ["row-counts", "keys", "duplicates", "all"])]
        check: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
    },
    /// Recompute a day's session facts (idempotent), in DuckDB or BigQuery
    Batch {
        #[arg(value_parser = ["session-fact"])]
        job: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
    },
}

/// Every setting, each optional so that layers can be merged: the TOML file's keys, the
/// `MUSIC_ANALYTICS__*` variables and the flags, from this one declaration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Consume the four topics as a consumer group
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__KAFKA_BROKERS", value_name = "HOSTS", help_heading = SOURCE)]
    pub kafka_brokers: Option<String>,
    /// Read DIR/<topic>.jsonl(.gz) as the simulator writes them; - reads standard input
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__INPUT", value_name = "DIR", help_heading = SOURCE)]
    pub input: Option<PathBuf>,
    /// The warehouse file (default data/warehouse.duckdb)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__DUCKDB", value_name = "PATH", help_heading = SINK)]
    pub duckdb: Option<PathBuf>,
    /// Memory for DuckDB's buffers in MB, beyond which it spills beside the file (default 192)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__DUCKDB_MEMORY_MB", value_name = "MB", help_heading = SINK)]
    pub duckdb_memory_mb: Option<u64>,
    /// BigQuery: rows appended through the Storage Write API, views of the current rows
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__BIGQUERY", value_name = "PROJECT.DATASET", help_heading = SINK)]
    pub bigquery: Option<String>,
    /// gs://BUCKET/PREFIX for the checkpoints (and the batch job's Parquet files); a local directory works too
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__STAGING", value_name = "LOCATION", help_heading = BIGQUERY)]
    pub staging: Option<String>,
    /// application-default (default), workload-identity, service-account:PATH, or none (the emulator)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__BIGQUERY_AUTH", value_name = "MODE", help_heading = BIGQUERY)]
    pub bigquery_auth: Option<String>,
    /// REST base up to /bigquery/v2 (default Google's)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__BIGQUERY_ENDPOINT", value_name = "URL", help_heading = BIGQUERY)]
    pub bigquery_endpoint: Option<String>,
    /// The Storage Write API's gRPC endpoint (default https://bigquerystorage.googleapis.com)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__BIGQUERY_WRITE_ENDPOINT", value_name = "URL", help_heading = BIGQUERY)]
    pub bigquery_write_endpoint: Option<String>,
    /// The endpoints are the BigQuery emulator (bqemulator): take its FlushRows offset as exclusive, not BigQuery's inclusive
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__BIGQUERY_EMULATOR", value_name = "BOOL", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true", help_heading = BIGQUERY)]
    pub bigquery_emulator: Option<bool>,
    /// Where a missing dataset is created (default US)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__BIGQUERY_LOCATION", value_name = "LOC", help_heading = BIGQUERY)]
    pub bigquery_location: Option<String>,
    /// Names this pipeline's checkpoint in BigQuery (default the consumer group)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__INSTANCE", value_name = "NAME", help_heading = BIGQUERY)]
    pub instance: Option<String>,
    /// Kafka consumer group (default music-analytics-pipeline)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__GROUP", value_name = "ID")]
    pub group: Option<String>,
    /// Rename a topic, e.g. listen_events=listens (repeatable)
    #[arg(long = "topic", global = true, env = "MUSIC_ANALYTICS__TOPICS", value_name = "KIND=NAME", value_parser = key_value, value_delimiter = ',')]
    #[serde(default, deserialize_with = "pairs")]
    pub topics: Vec<(String, String)>,
    /// Any librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable)
    #[arg(short = 'X', long = "kafka-setting", global = true, env = "MUSIC_ANALYTICS__KAFKA_SETTINGS", value_name = "K=V", value_parser = key_value, value_delimiter = ';')]
    #[serde(default, deserialize_with = "pairs")]
    pub kafka_settings: Vec<(String, String)>,
    /// Cut a micro-batch at N messages (default 50000)
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__BATCH_MAX_MESSAGES",
        value_name = "N"
    )]
    pub batch_max_messages: Option<usize>,
    /// ... or at N bytes (default 33554432)
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__BATCH_MAX_BYTES",
        value_name = "N"
    )]
    pub batch_max_bytes: Option<usize>,
    /// ... or after N milliseconds (default 1000)
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__BATCH_MAX_MS",
        value_name = "N"
    )]
    pub batch_max_ms: Option<u64>,
    /// BigQuery: write the state and offsets, then make the rows streamed since visible, every N ms (default 10000; 0: with every batch); a restart re-reads from the last checkpoint. DuckDB checkpoints with every batch
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__CHECKPOINT_EVERY_MS",
        value_name = "N"
    )]
    pub checkpoint_every_ms: Option<u64>,
    /// A session closes N seconds after its last event (default 1800)
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__SESSION_TIMEOUT_S",
        value_name = "N"
    )]
    pub session_timeout_s: Option<i64>,
    /// Closed sessions are remembered N seconds (default 7200)
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__RETENTION_S",
        value_name = "N"
    )]
    pub retention_s: Option<i64>,
    /// Close every session and exit once caught up (no lag) and idle for N seconds
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__EXIT_WHEN_IDLE_S",
        value_name = "N"
    )]
    pub exit_when_idle_s: Option<u64>,
    /// Retry a write that fails for a reason that may pass (warehouse, BigQuery or broker away) until the pauses add up to N seconds (default 900)
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__RETRY_FOR_S",
        value_name = "N"
    )]
    pub retry_for_s: Option<u64>,
    /// Serve /metrics, /healthz, /readyz and the live /dashboard, e.g. 0.0.0.0:9464
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__LISTEN",
        value_name = "ADDR"
    )]
    pub listen: Option<String>,
    /// With Kafka, also send dead letters to <topic>.dlq (default true)
    #[arg(long, global = true, env = "MUSIC_ANALYTICS__DEAD_LETTER_TOPICS", value_name = "BOOL", value_parser = BoolishValueParser::new(), hide = true)]
    pub dead_letter_topics: Option<bool>,
    /// With Kafka, keep dead letters in the warehouse only (by default they also go to <topic>.dlq)
    #[arg(long, global = true)]
    #[serde(skip)]
    pub no_dead_letter_topics: bool,
    /// text (default) or json, one object a line
    #[arg(
        long,
        global = true,
        env = "MUSIC_ANALYTICS__LOG_FORMAT",
        value_name = "F"
    )]
    pub log_format: Option<String>,
    /// Warnings and errors only
    #[arg(short = 'q', long, global = true, env = "MUSIC_ANALYTICS__QUIET", value_name = "BOOL", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub quiet: Option<bool>,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| "expected KEY=VALUE".to_owned())
}

/// A TOML table of strings as pairs, in the file's order.
fn pairs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let table = toml::Table::deserialize(d)?;
    table
        .into_iter()
        .map(|(key, value)| match value {
            toml::Value::String(text) => Ok((key, text)),
            other => Err(serde::de::Error::custom(format!(
                "{key}: expected a string, found a {}",
                other.type_str()
            ))),
        })
        .collect()
}

impl Layer {
    /// `other`'s settings over this one's.
    fn over(self, other: Layer) -> Layer {
        let pairs = |mut a: Vec<(String, String)>, b: Vec<(String, String)>| {
            a.extend(b);
            a
        };
        Layer {
            kafka_brokers: other.kafka_brokers.or(self.kafka_brokers),
            input: other.input.or(self.input),
            duckdb: other.duckdb.or(self.duckdb),
            duckdb_memory_mb: other.duckdb_memory_mb.or(self.duckdb_memory_mb),
            bigquery: other.bigquery.or(self.bigquery),
            staging: other.staging.or(self.staging),
            bigquery_auth: other.bigquery_auth.or(self.bigquery_auth),
            bigquery_endpoint: other.bigquery_endpoint.or(self.bigquery_endpoint),
            bigquery_write_endpoint: other
                .bigquery_write_endpoint
                .or(self.bigquery_write_endpoint),
            bigquery_emulator: other.bigquery_emulator.or(self.bigquery_emulator),
            bigquery_location: other.bigquery_location.or(self.bigquery_location),
            instance: other.instance.or(self.instance),
            group: other.group.or(self.group),
            topics: pairs(self.topics, other.topics),
            kafka_settings: pairs(self.kafka_settings, other.kafka_settings),
            batch_max_messages: other.batch_max_messages.or(self.batch_max_messages),
            batch_max_bytes: other.batch_max_bytes.or(self.batch_max_bytes),
            batch_max_ms: other.batch_max_ms.or(self.batch_max_ms),
            checkpoint_every_ms: other.checkpoint_every_ms.or(self.checkpoint_every_ms),
            session_timeout_s: other.session_timeout_s.or(self.session_timeout_s),
            retention_s: other.retention_s.or(self.retention_s),
            exit_when_idle_s: other.exit_when_idle_s.or(self.exit_when_idle_s),
            retry_for_s: other.retry_for_s.or(self.retry_for_s),
            listen: other.listen.or(self.listen),
            dead_letter_topics: other
                .no_dead_letter_topics
                .then_some(false)
                .or(other.dead_letter_topics)
                .or(self.dead_letter_topics),
            no_dead_letter_topics: false,
            log_format: other.log_format.or(self.log_format),
            quiet: other.quiet.or(self.quiet),
        }
    }
}

/// What the command line says: the job, its arguments, the config file, and the layer
/// of flags and `MUSIC_ANALYTICS__*` variables.
#[derive(Debug, Default)]
pub struct Command {
    pub name: String,
    /// A check's or batch job's name.
    pub job: Option<String>,
    /// A check's or batch job's day.
    pub date: Option<String>,
    /// Where `dashboard` writes its page.
    pub out: Option<PathBuf>,
    /// The periods `dashboard` shows, when not every one with data.
    pub periods: Vec<String>,
    pub config: Option<PathBuf>,
    pub flags: Layer,
}

impl Command {
    /// The layer under the flags and the environment: the config file's (empty without
    /// `--config`).
    pub fn file(&self) -> Result<Layer> {
        match &self.config {
            Some(path) => file_layer(path),
            None => Ok(Layer::default()),
        }
    }
}

/// Parses the command line (the program's name first) and the `MUSIC_ANALYTICS__*`
/// environment; `Err` carries clap's own message, `--help` and `--version` included.
pub fn parse_args(
    args: impl IntoIterator<Item = OsString>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Command, clap::Error> {
    let cli = Cli::try_parse_from(args)?;
    unknown_variables(vars)?;
    let mut command = Command {
        config: cli.config,
        flags: cli.flags,
        ..Command::default()
    };
    match cli.command {
        Job::Run => command.name = "run".to_owned(),
        Job::Report => command.name = "report".to_owned(),
        Job::Dashboard { out, periods } => {
            command.name = "dashboard".to_owned();
            command.out = Some(out);
            command.periods = periods;
        }
        Job::Check { check, date } => {
            command.name = "check".to_owned();
            command.job = Some(check);
            command.date = Some(date);
        }
        Job::Batch { job, date } => {
            command.name = "batch".to_owned();
            command.job = Some(job);
            command.date = Some(date);
        }
    }
    Ok(command)
}

/// A `MUSIC_ANALYTICS__*` variable no setting reads is a mistake worth stopping for.
fn unknown_variables(vars: impl Iterator<Item = (String, String)>) -> Result<(), clap::Error> {
    let command = Cli::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    for (name, _) in vars {
        if name.starts_with("MUSIC_ANALYTICS__") && !known.contains(&name) {
            return Err(command.clone().error(
                ErrorKind::UnknownArgument,
                format!("unknown environment variable {name}: no setting reads it"),
            ));
        }
    }
    Ok(())
}

pub fn file_layer(path: &std::path::Path) -> Result<Layer> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

pub enum Input {
    Kafka {
        brokers: String,
        group: String,
    },
    Files(PathBuf),
    /// `--input -`: what `simulator --stdout` writes.
    Stdin,
}

pub enum Output {
    DuckDb(PathBuf),
    BigQuery(Box<pipeline::sinks::bigquery::BigQueryOptions>),
}

/// The settings of a run, every layer applied and checked.
pub struct Settings {
    pub input: Input,
    pub output: Output,
    pub topics: Vec<(EventKind, String)>,
    pub kafka_settings: Vec<(String, String)>,
    pub limits: pipeline::sources::BatchLimits,
    pub checkpoint_every: std::time::Duration,
    pub duckdb_memory_mb: u64,
    pub transform: pipeline::transforms::Config,
    pub exit_when_idle: Option<std::time::Duration>,
    pub retry: pipeline::runner::Retry,
    pub listen: Option<String>,
    pub dead_letter_topics: bool,
    pub json_logs: bool,
    pub quiet: bool,
}

impl Settings {
    pub fn resolve(file: Layer, flags: Layer) -> Result<Settings> {
        let s = file.over(flags);
        let input = match (&s.kafka_brokers, &s.input) {
            (Some(_), Some(_)) => bail!("choose one source: --kafka-brokers or --input"),
            (Some(brokers), None) => Input::Kafka {
                brokers: brokers.clone(),
                group: s
                    .group
                    .clone()
                    .unwrap_or_else(|| "music-analytics-pipeline".to_owned()),
            },
            (None, Some(dir)) if dir.as_os_str() == "-" => Input::Stdin,
            (None, Some(dir)) => Input::Files(dir.clone()),
            (None, None) => {
                bail!("say where events come from: --kafka-brokers HOSTS or --input DIR")
            }
        };
        let mut topics: Vec<(EventKind, String)> = EventKind::ALL
            .iter()
            .map(|k| (*k, k.topic().to_owned()))
            .collect();
        for (kind, name) in s.topics.clone() {
            let Some(slot) = topics.iter().position(|(k, _)| k.topic() == kind) else {
                bail!(
                    "topic {kind:?}: not one of listen_events, page_view_events, auth_events, status_change_events"
                );
            };
            topics[slot].1 = name;
        }
        let output = output(&s, true)?;
        if matches!(output, Output::DuckDb(_)) && s.checkpoint_every_ms.is_some_and(|ms| ms > 0) {
            bail!(
                "checkpoint_every_ms is for BigQuery: DuckDB checkpoints with every batch, since it appends rows that a batch without its checkpoint would write again after a restart"
            );
        }
        let defaults = pipeline::sources::BatchLimits::default();
        let positive = |name: &str, v: Option<i64>, default: i64| -> Result<i64> {
            match v {
                Some(v) if v <= 0 => bail!("{name} {v}: must be positive"),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        let config = pipeline::transforms::Config::default();
        let limits = pipeline::sources::BatchLimits {
            max_messages: s.batch_max_messages.unwrap_or(defaults.max_messages).max(1),
            max_bytes: s.batch_max_bytes.unwrap_or(defaults.max_bytes).max(1),
            max_wait: s
                .batch_max_ms
                .map_or(defaults.max_wait, std::time::Duration::from_millis),
        };
        Ok(Settings {
            input,
            output,
            topics,
            kafka_settings: s.kafka_settings.clone(),
            limits,
            checkpoint_every: s.checkpoint_every_ms.map_or(
                pipeline::runner::CHECKPOINT_EVERY,
                std::time::Duration::from_millis,
            ),
            duckdb_memory_mb: match s.duckdb_memory_mb {
                Some(0) => bail!("duckdb_memory_mb 0: must be positive"),
                Some(mb) => mb,
                None => pipeline::sinks::duckdb::MEMORY_LIMIT_MB,
            },
            transform: pipeline::transforms::Config {
                session_timeout_ms: positive(
                    "session_timeout_s",
                    s.session_timeout_s,
                    config.session_timeout_ms / 1000,
                )? * 1000,
                retention_ms: positive("retention_s", s.retention_s, config.retention_ms / 1000)?
                    * 1000,
                ..config
            },
            exit_when_idle: s.exit_when_idle_s.map(std::time::Duration::from_secs),
            retry: pipeline::runner::Retry {
                give_up_after: s.retry_for_s.map_or(
                    pipeline::runner::Retry::default().give_up_after,
                    std::time::Duration::from_secs,
                ),
                ..pipeline::runner::Retry::default()
            },
            listen: s.listen.clone(),
            dead_letter_topics: s.dead_letter_topics.unwrap_or(true),
            json_logs: match s.log_format.as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => bail!("log format {other:?}: expected text or json"),
            },
            quiet: s.quiet.unwrap_or(false),
        })
    }
}

/// The sink alone, every layer applied: for batch jobs, which read no source.
pub fn resolve_output(file: Layer, flags: Layer) -> Result<Output> {
    output(&file.over(flags), true)
}

/// The warehouse the layers choose, to read from: BigQuery needs no staging then.
pub fn resolve_reader(file: Layer, flags: Layer) -> Result<Output> {
    output(&file.over(flags), false)
}

/// The sink the layers choose, checked: BigQuery needs a staging location, and settings
/// of one sink given with the other are mistakes.
fn output(s: &Layer, writes: bool) -> Result<Output> {
    let Some(target) = &s.bigquery else {
        if let Some(key) = [
            ("staging", s.staging.is_some()),
            ("bigquery_auth", s.bigquery_auth.is_some()),
            ("bigquery_endpoint", s.bigquery_endpoint.is_some()),
            (
                "bigquery_write_endpoint",
                s.bigquery_write_endpoint.is_some(),
            ),
            ("bigquery_emulator", s.bigquery_emulator.is_some()),
            ("bigquery_location", s.bigquery_location.is_some()),
        ]
        .iter()
        .find_map(|(key, set)| set.then_some(key))
        {
            bail!("{key} is a BigQuery setting; add --bigquery PROJECT.DATASET");
        }
        return Ok(Output::DuckDb(
            s.duckdb
                .clone()
                .unwrap_or_else(|| PathBuf::from("data/warehouse.duckdb")),
        ));
    };
    if s.duckdb.is_some() {
        bail!("choose one sink: --duckdb or --bigquery");
    }
    let Some((project, dataset)) = target
        .split_once('.')
        .filter(|(p, d)| !p.is_empty() && !d.is_empty() && !d.contains('.'))
    else {
        bail!("bigquery {target:?}: expected PROJECT.DATASET");
    };
    let staging = match s.staging.clone() {
        Some(staging) => staging,
        None if !writes => String::new(),
        None => bail!(
            "BigQuery keeps its checkpoints in a staging location: add --staging gs://BUCKET/PREFIX"
        ),
    };
    let auth = match &s.bigquery_auth {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("bigquery_auth {e}"))?,
        None => pipeline::sinks::bigquery::Auth::ApplicationDefault,
    };
    Ok(Output::BigQuery(Box::new(
        pipeline::sinks::bigquery::BigQueryOptions {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            location: s
                .bigquery_location
                .clone()
                .unwrap_or_else(|| "US".to_owned()),
            endpoint: s.bigquery_endpoint.clone(),
            write_endpoint: s.bigquery_write_endpoint.clone(),
            emulator: s.bigquery_emulator.unwrap_or(false),
            auth,
            staging,
            instance: s
                .instance
                .clone()
                .or_else(|| s.group.clone())
                .unwrap_or_else(|| "music-analytics-pipeline".to_owned()),
            retry: pipeline::sinks::bigquery::Retry::default(),
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Command {
        let list = std::iter::once("pipeline").chain(list.iter().copied());
        parse_args(list.map(OsString::from), std::iter::empty()).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_and_tables_merge_pair_by_pair() {
        let file: Layer = toml::from_str(
            "kafka_brokers = \"file:1\"\ngroup = \"g\"\nbatch_max_ms = 5\n[topics]\nlisten_events = \"l\"\nauth_events = \"a\"",
        )
        .unwrap();
        let flags = args(&[
            "run",
            "--kafka-brokers",
            "flag:1",
            "--topic",
            "auth_events=b",
        ])
        .flags;
        let s = Settings::resolve(file, flags).unwrap();
        let Input::Kafka { brokers, group } = s.input else {
            panic!("not Kafka");
        };
        assert_eq!((brokers.as_str(), group.as_str()), ("flag:1", "g"));
        assert_eq!(s.limits.max_wait, std::time::Duration::from_millis(5));
        assert_eq!(s.topics[0], (EventKind::Listen, "l".to_owned()));
        let auth = s
            .topics
            .iter()
            .find(|(k, _)| *k == EventKind::Auth)
            .unwrap();
        assert_eq!(auth.1, "b");
    }

    #[test]
    fn flags_may_come_before_or_after_the_job_and_switches_read_as_settings() {
        let a = args(&["-q", "--no-dead-letter-topics", "run", "--input", "d"]).flags;
        let b = args(&["run", "--input", "d", "-q", "--no-dead-letter-topics"]).flags;
        assert_eq!(a, b);
        let s = Settings::resolve(Layer::default(), a).unwrap();
        assert!(s.quiet && !s.dead_letter_topics);
        let file: Layer = toml::from_str("quiet = true\ndead_letter_topics = false").unwrap();
        let s = Settings::resolve(file, args(&["run", "--input", "d"]).flags).unwrap();
        assert!(s.quiet && !s.dead_letter_topics, "the file's switches hold");
    }

    #[test]
    fn bigquery_needs_staging_and_its_settings_need_bigquery() {
        let resolve = |list: &[&str]| {
            Settings::resolve(Layer::default(), args(list).flags)
                .map(|s| s.output)
                .map_err(|e| e.to_string())
        };
        let error = resolve(&["run", "--input", "d", "--bigquery", "p.d"])
            .err()
            .unwrap();
        assert!(error.contains("--staging"), "{error}");
        let error = resolve(&["run", "--input", "d", "--staging", "gs://b"])
            .err()
            .unwrap();
        assert!(error.contains("add --bigquery"), "{error}");
        let error = resolve(&[
            "run",
            "--input",
            "d",
            "--bigquery",
            "nodot",
            "--staging",
            "x",
        ])
        .err()
        .unwrap();
        assert!(error.contains("PROJECT.DATASET"), "{error}");
        let Ok(Output::BigQuery(options)) = resolve(&[
            "run",
            "--input",
            "d",
            "--bigquery",
            "p.d",
            "--staging",
            "gs://b/x",
            "--bigquery-auth",
            "none",
            "--group",
            "g",
        ]) else {
            panic!("not BigQuery");
        };
        assert_eq!(
            (options.project.as_str(), options.dataset.as_str()),
            ("p", "d")
        );
        assert_eq!(options.instance, "g", "the instance defaults to the group");
        assert_eq!(options.auth, pipeline::sinks::bigquery::Auth::None);
    }

    #[test]
    fn a_checkpoint_interval_is_refused_for_duckdb_which_checkpoints_every_batch() {
        let resolve = |list: &[&str]| Settings::resolve(Layer::default(), args(list).flags);
        let error = resolve(&["run", "--input", "d", "--checkpoint-every-ms", "500"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("DuckDB checkpoints with every batch"),
            "{error}"
        );
        assert!(resolve(&["run", "--input", "d", "--checkpoint-every-ms", "0"]).is_ok());
        let s = resolve(&["run", "--input", "d", "--duckdb-memory-mb", "64"]).unwrap();
        assert_eq!(s.duckdb_memory_mb, 64);
        let bigquery = resolve(&[
            "run",
            "--input",
            "d",
            "--bigquery",
            "p.d",
            "--staging",
            "gs://b",
            "--checkpoint-every-ms",
            "500",
        ]);
        assert!(bigquery.is_ok_and(|s| s.checkpoint_every.as_millis() == 500));
    }

    #[test]
    fn unknown_keys_variables_flags_and_jobs_are_errors_naming_them() {
        let error = toml::from_str::<Layer>("kafka_broker = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("kafka_broker"), "{error}");
        let error = toml::from_str::<Layer>("no_dead_letter_topics = true")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no_dead_letter_topics"), "{error}");
        let vars = [("MUSIC_ANALYTICS__NOPE".to_owned(), "1".to_owned())];
        let error = unknown_variables(vars.into_iter()).unwrap_err().to_string();
        assert!(error.contains("MUSIC_ANALYTICS__NOPE"), "{error}");
        let vars = [("MUSIC_ANALYTICS__KAFKA_BROKERS".to_owned(), "h".to_owned())];
        assert!(unknown_variables(vars.into_iter()).is_ok());
        for (list, expected) in [
            (&["pipeline", "run", "--bogus"][..], "--bogus"),
            (&["pipeline", "launch"][..], "launch"),
            (&["pipeline", "check", "keys"][..], "--date"),
            (
                &["pipeline", "check", "nope", "--date", "2026-01-01"][..],
                "nope",
            ),
        ] {
            let error = parse_args(list.iter().map(OsString::from), std::iter::empty())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{list:?}: {error}");
        }
        let none = Settings::resolve(Layer::default(), Layer::default());
        assert!(none.is_err_and(|e| e.to_string().contains("say where events come from")));
    }
}
