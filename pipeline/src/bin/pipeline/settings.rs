//! The pipeline's one config, layered: built-in defaults, then a TOML file (`--config`),
//! then `MUSIC_ANALYTICS__<KEY>` environment variables, then flags. Unknown keys are
//! errors at every layer.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lexopt::ValueExt as _;
use serde::Deserialize;
use warehouse::raw::EventKind;

pub const USAGE: &str = "\
pipeline: music-analytics events into the star schema

USAGE: pipeline run [OPTIONS] (--kafka-brokers HOSTS | --input DIR)
       pipeline report [--duckdb PATH]     rows per table and headline analytics
       pipeline dashboard [SINK] [--out FILE] [--period P]...
                                           the KPIs as one self-contained HTML page
                                           (default data/dashboard.html); P is all,
                                           2026-Q1, 2026-01 or 2026-01-05..2026-01-11
                                           (default: all, then each quarter and month)
       pipeline check row-counts|keys|duplicates|all --date YYYY-MM-DD [SINK]
                                           data-quality checks of a day; exit code 1
                                           when one fails
       pipeline batch session-fact --date YYYY-MM-DD [SINK]
                                           recompute a day's session facts (idempotent),
                                           in DuckDB or BigQuery

Source (one of):
      --kafka-brokers HOSTS     consume the four topics as a consumer group
      --input DIR               read DIR/<topic>.jsonl(.gz), as the simulator writes them
      --input -                 read standard input, as `simulator --stdout` writes it
Sink (one of):
      --duckdb PATH             the warehouse file (default data/warehouse.duckdb)
      --bigquery PROJECT.DATASET
                                BigQuery: each batch staged as Parquet, loaded and MERGEd
BigQuery:
      --staging LOCATION        gs://BUCKET/PREFIX for the Parquet files BigQuery loads (a
                                local directory works with the emulator only)
      --bigquery-auth MODE      application-default (default), workload-identity,
                                service-account:PATH, or none (the emulator)
      --bigquery-endpoint URL   REST base up to /bigquery/v2 (default Google's)
      --bigquery-location LOC   where a missing dataset is created (default US)
      --instance NAME           names this pipeline's checkpoint in BigQuery (default
                                the consumer group)
Options:
      --config FILE             a TOML file with any of the keys below
      --group ID                Kafka consumer group (default music-analytics-pipeline)
      --topic KIND=NAME         rename a topic, e.g. listen_events=listens (repeatable)
  -X, --kafka-setting K=V       any librdkafka setting, e.g. security.protocol=SASL_SSL
      --batch-max-messages N    cut a micro-batch at N messages (default 50000)
      --batch-max-bytes N       ... or at N bytes (default 33554432)
      --batch-max-ms N          ... or after N milliseconds (default 1000)
      --checkpoint-every-ms N   write the state and offsets at most every N ms (default
                                10000; 0: with every batch); a restart re-reads from the
                                last checkpoint and rewrites the same rows
      --session-timeout-s N     a session closes N seconds after its last event (default 1800)
      --retention-s N           closed sessions are remembered N seconds (default 7200)
      --exit-when-idle-s N      close every session and exit once caught up (no lag) and
                                idle for N seconds
      --listen ADDR             serve /metrics, /healthz, /readyz and the live /dashboard,
                                e.g. 0.0.0.0:9464
      --no-dead-letter-topics   with Kafka, keep dead letters in the warehouse only (by
                                default they also go to <topic>.dlq)
      --log-format F            text (default) or json, one object a line
  -q, --quiet                   warnings and errors only
  -h, --help                    this text

Config keys are the long flags with '_' for '-' (kafka_brokers = \"...\"; topics and
kafka settings are tables). Environment: MUSIC_ANALYTICS__<KEY>, e.g.
MUSIC_ANALYTICS__KAFKA_BROKERS=host:9092. Flags win over the environment, which wins over
the file.
";

/// Every setting, each optional so that layers can be merged.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub kafka_brokers: Option<String>,
    pub input: Option<PathBuf>,
    pub duckdb: Option<PathBuf>,
    pub bigquery: Option<String>,
    pub staging: Option<String>,
    pub bigquery_auth: Option<String>,
    pub bigquery_endpoint: Option<String>,
    pub bigquery_location: Option<String>,
    pub instance: Option<String>,
    pub group: Option<String>,
    pub topics: Option<BTreeMap<String, String>>,
    pub kafka_settings: Option<BTreeMap<String, String>>,
    pub batch_max_messages: Option<usize>,
    pub batch_max_bytes: Option<usize>,
    pub batch_max_ms: Option<u64>,
    pub checkpoint_every_ms: Option<u64>,
    pub session_timeout_s: Option<i64>,
    pub retention_s: Option<i64>,
    pub exit_when_idle_s: Option<u64>,
    pub listen: Option<String>,
    pub dead_letter_topics: Option<bool>,
    pub log_format: Option<String>,
    pub quiet: Option<bool>,
}

impl Layer {
    /// `other`'s settings over this one's.
    fn over(self, other: Layer) -> Layer {
        let merge =
            |a: Option<BTreeMap<String, String>>, b: Option<BTreeMap<String, String>>| match (a, b)
            {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                (a, b) => b.or(a),
            };
        Layer {
            kafka_brokers: other.kafka_brokers.or(self.kafka_brokers),
            input: other.input.or(self.input),
            duckdb: other.duckdb.or(self.duckdb),
            bigquery: other.bigquery.or(self.bigquery),
            staging: other.staging.or(self.staging),
            bigquery_auth: other.bigquery_auth.or(self.bigquery_auth),
            bigquery_endpoint: other.bigquery_endpoint.or(self.bigquery_endpoint),
            bigquery_location: other.bigquery_location.or(self.bigquery_location),
            instance: other.instance.or(self.instance),
            group: other.group.or(self.group),
            topics: merge(self.topics, other.topics),
            kafka_settings: merge(self.kafka_settings, other.kafka_settings),
            batch_max_messages: other.batch_max_messages.or(self.batch_max_messages),
            batch_max_bytes: other.batch_max_bytes.or(self.batch_max_bytes),
            batch_max_ms: other.batch_max_ms.or(self.batch_max_ms),
            checkpoint_every_ms: other.checkpoint_every_ms.or(self.checkpoint_every_ms),
            session_timeout_s: other.session_timeout_s.or(self.session_timeout_s),
            retention_s: other.retention_s.or(self.retention_s),
            exit_when_idle_s: other.exit_when_idle_s.or(self.exit_when_idle_s),
            listen: other.listen.or(self.listen),
            dead_letter_topics: other.dead_letter_topics.or(self.dead_letter_topics),
            log_format: other.log_format.or(self.log_format),
            quiet: other.quiet.or(self.quiet),
        }
    }
}

/// What the command line says: the layer of flags, the config file, and the command.
#[derive(Debug, Default)]
pub struct Command {
    pub name: Option<String>,
    /// Words after the command, such as a batch job's name.
    pub rest: Vec<String>,
    /// A batch job's day.
    pub date: Option<String>,
    /// Where `dashboard` writes its page.
    pub out: Option<PathBuf>,
    /// The periods `dashboard` shows, when not every one with data.
    pub periods: Vec<String>,
    pub config: Option<PathBuf>,
    pub flags: Layer,
    pub help: bool,
}

impl Command {
    /// The layers under the flags: the config file's (empty without `--config`) and the
    /// environment's.
    pub fn file_and_env(&self) -> Result<(Layer, Layer)> {
        let file = match &self.config {
            Some(path) => file_layer(path)?,
            None => Layer::default(),
        };
        Ok((file, env_layer(std::env::vars())?))
    }
}

fn key_value(flag: &str, text: &str) -> Result<(String, String)> {
    text.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .with_context(|| format!("{flag} {text:?}: expected KEY=VALUE"))
}

pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command> {
    use lexopt::Arg::{Long, Short, Value};
    let mut parser = lexopt::Parser::from_args(args);
    let mut command = Command::default();
    while let Some(arg) = parser.next()? {
        let flag = match &arg {
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            Value(v) if command.name.is_none() => {
                command.name = Some(v.clone().string()?);
                continue;
            }
            Value(v) => {
                command.rest.push(v.clone().string()?);
                continue;
            }
        };
        let mut value = || -> Result<String> {
            parser
                .value()
                .with_context(|| format!("{flag} needs a value"))?
                .string()
                .with_context(|| format!("{flag}: not UTF-8"))
        };
        macro_rules! parsed {
            () => {{
                let text = value()?;
                Some(
                    text.parse()
                        .map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))?,
                )
            }};
        }
        let f = &mut command.flags;
        match flag.as_str() {
            "--kafka-brokers" => f.kafka_brokers = Some(value()?),
            "--input" => f.input = Some(value()?.into()),
            "--duckdb" => f.duckdb = Some(value()?.into()),
            "--bigquery" => f.bigquery = Some(value()?),
            "--staging" => f.staging = Some(value()?),
            "--bigquery-auth" => f.bigquery_auth = Some(value()?),
            "--bigquery-endpoint" => f.bigquery_endpoint = Some(value()?),
            "--bigquery-location" => f.bigquery_location = Some(value()?),
            "--instance" => f.instance = Some(value()?),
            "--config" => command.config = Some(value()?.into()),
            "--date" => command.date = Some(value()?),
            "--out" => command.out = Some(value()?.into()),
            "--period" => command.periods.push(value()?),
            "--group" => f.group = Some(value()?),
            "--topic" => {
                let (k, v) = key_value(&flag, &value()?)?;
                f.topics.get_or_insert_default().insert(k, v);
            }
            "-X" | "--kafka-setting" => {
                let (k, v) = key_value(&flag, &value()?)?;
                f.kafka_settings.get_or_insert_default().insert(k, v);
            }
            "--batch-max-messages" => f.batch_max_messages = parsed!(),
            "--batch-max-bytes" => f.batch_max_bytes = parsed!(),
            "--batch-max-ms" => f.batch_max_ms = parsed!(),
            "--checkpoint-every-ms" => f.checkpoint_every_ms = parsed!(),
            "--session-timeout-s" => f.session_timeout_s = parsed!(),
            "--retention-s" => f.retention_s = parsed!(),
            "--exit-when-idle-s" => f.exit_when_idle_s = parsed!(),
            "--listen" => f.listen = Some(value()?),
            "--no-dead-letter-topics" => f.dead_letter_topics = Some(false),
            "--log-format" => f.log_format = Some(value()?),
            "-q" | "--quiet" => f.quiet = Some(true),
            "-h" | "--help" => command.help = true,
            _ => bail!("unknown flag {flag}; see --help"),
        }
    }
    Ok(command)
}

/// The `MUSIC_ANALYTICS__*` variables as a layer, parsed as TOML values.
pub fn env_layer(vars: impl Iterator<Item = (String, String)>) -> Result<Layer> {
    let mut table = toml::Table::new();
    for (name, value) in vars {
        let Some(key) = name.strip_prefix("MUSIC_ANALYTICS__") else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        // Numbers and booleans as such; anything else as a string.
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_str())
            .unwrap_or(toml::Value::String(value));
        table.insert(key, parsed);
    }
    Layer::deserialize(table).map_err(|e| anyhow::anyhow!("MUSIC_ANALYTICS__* variables: {e}"))
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
    BigQuery(pipeline::sinks::bigquery::BigQueryOptions),
}

/// The settings of a run, every layer applied and checked.
pub struct Settings {
    pub input: Input,
    pub output: Output,
    pub topics: Vec<(EventKind, String)>,
    pub kafka_settings: Vec<(String, String)>,
    pub limits: pipeline::sources::BatchLimits,
    pub checkpoint_every: std::time::Duration,
    pub transform: pipeline::transforms::Config,
    pub exit_when_idle: Option<std::time::Duration>,
    pub listen: Option<String>,
    pub dead_letter_topics: bool,
    pub json_logs: bool,
    pub quiet: bool,
}

impl Settings {
    pub fn resolve(file: Layer, env: Layer, flags: Layer) -> Result<Settings> {
        let s = file.over(env).over(flags);
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
        for (kind, name) in s.topics.clone().unwrap_or_default() {
            let Some(slot) = topics.iter().position(|(k, _)| k.topic() == kind) else {
                bail!(
                    "topic {kind:?}: not one of listen_events, page_view_events, auth_events, status_change_events"
                );
            };
            topics[slot].1 = name;
        }
        let output = output(&s, true)?;
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
            kafka_settings: s
                .kafka_settings
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            limits,
            checkpoint_every: s.checkpoint_every_ms.map_or(
                pipeline::runner::CHECKPOINT_EVERY,
                std::time::Duration::from_millis,
            ),
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
pub fn resolve_output(file: Layer, env: Layer, flags: Layer) -> Result<Output> {
    output(&file.over(env).over(flags), true)
}

/// The warehouse the layers choose, to read from: BigQuery needs no staging then.
pub fn resolve_reader(file: Layer, env: Layer, flags: Layer) -> Result<Output> {
    output(&file.over(env).over(flags), false)
}

/// The sink the layers choose, checked: BigQuery needs a staging location, and settings
/// of one sink given with the other are mistakes.
fn output(s: &Layer, writes: bool) -> Result<Output> {
    let Some(target) = &s.bigquery else {
        if let Some(key) = [
            ("staging", s.staging.is_some()),
            ("bigquery_auth", s.bigquery_auth.is_some()),
            ("bigquery_endpoint", s.bigquery_endpoint.is_some()),
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
        None => bail!("BigQuery loads from Parquet staging: add --staging gs://BUCKET/PREFIX"),
    };
    let auth = match &s.bigquery_auth {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("bigquery_auth {e}"))?,
        None => pipeline::sinks::bigquery::Auth::ApplicationDefault,
    };
    Ok(Output::BigQuery(
        pipeline::sinks::bigquery::BigQueryOptions {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            location: s
                .bigquery_location
                .clone()
                .unwrap_or_else(|| "US".to_owned()),
            endpoint: s.bigquery_endpoint.clone(),
            auth,
            staging,
            instance: s
                .instance
                .clone()
                .or_else(|| s.group.clone())
                .unwrap_or_else(|| "music-analytics-pipeline".to_owned()),
            retry: pipeline::sinks::bigquery::Retry::default(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Command {
        parse_args(list.iter().map(OsString::from)).unwrap()
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file() {
        let file: Layer = toml::from_str(
            "kafka_brokers = \"file:1\"\ngroup = \"g\"\nbatch_max_ms = 5\n[topics]\nlisten_events = \"l\"",
        )
        .unwrap();
        let env = env_layer(
            [
                (
                    "MUSIC_ANALYTICS__KAFKA_BROKERS".to_owned(),
                    "env:1".to_owned(),
                ),
                ("MUSIC_ANALYTICS__BATCH_MAX_MS".to_owned(), "7".to_owned()),
                ("HOME".to_owned(), "/root".to_owned()),
            ]
            .into_iter(),
        )
        .unwrap();
        let flags = args(&["run", "--kafka-brokers", "flag:1"]).flags;
        let s = Settings::resolve(file, env, flags).unwrap();
        let Input::Kafka { brokers, group } = s.input else {
            panic!("not Kafka");
        };
        assert_eq!((brokers.as_str(), group.as_str()), ("flag:1", "g"));
        assert_eq!(s.limits.max_wait, std::time::Duration::from_millis(7));
        assert_eq!(s.topics[0], (EventKind::Listen, "l".to_owned()));
    }

    #[test]
    fn bigquery_needs_staging_and_its_settings_need_bigquery() {
        let resolve = |list: &[&str]| {
            Settings::resolve(Layer::default(), Layer::default(), args(list).flags)
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
    fn unknown_keys_and_bad_values_are_errors_naming_them() {
        let error = toml::from_str::<Layer>("kafka_broker = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("kafka_broker"), "{error}");
        let error = env_layer([("MUSIC_ANALYTICS__NOPE".to_owned(), "1".to_owned())].into_iter())
            .unwrap_err()
            .to_string();
        assert!(error.contains("nope"), "{error}");
        let error = parse_args(["run", "--bogus"].map(OsString::from))
            .unwrap_err()
            .to_string();
        assert!(error.contains("--bogus"), "{error}");
        let none = Settings::resolve(Layer::default(), Layer::default(), Layer::default());
        assert!(none.is_err_and(|e| e.to_string().contains("say where events come from")));
    }
}
