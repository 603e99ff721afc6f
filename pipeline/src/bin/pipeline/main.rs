//! The `pipeline` binary: events from Kafka or files into the DuckDB or BigQuery
//! warehouse, resuming exactly where the warehouse says it stopped.

mod report;
mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline::runner::{Observer, Runner, Totals, Until};
use pipeline::sinks::{BigQuery, DeadLetterTopics, DuckDb, Sink};
use pipeline::sources::Source;
use pipeline::sources::files::Files;
use pipeline::sources::kafka::{Kafka, KafkaOptions};
use pipeline::sources::stdin::Stdin;
use pipeline::transforms::Stats;

use crate::settings::{Input, Output, Settings, USAGE};

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pipeline: error: {error:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run() -> Result<i32> {
    let command = settings::parse_args(std::env::args_os().skip(1))?;
    if command.help || command.name.is_none() {
        print!("{USAGE}");
        return Ok(if command.help { 0 } else { 2 });
    }
    if command.name.as_deref() != Some("batch")
        && let Some(extra) = command.rest.first()
    {
        bail!("unexpected argument {extra:?}; see --help");
    }
    match command.name.as_deref() {
        Some("run") => {}
        Some("report") => {
            let path = command
                .flags
                .duckdb
                .clone()
                .unwrap_or_else(|| "data/warehouse.duckdb".into());
            report::print(&path)?;
            return Ok(0);
        }
        Some("batch") => {
            let (job, date) = (command.rest.first(), command.date.as_deref());
            let (Some("session-fact"), Some(date)) = (job.map(String::as_str), date) else {
                bail!(
                    "usage: pipeline batch session-fact --date YYYY-MM-DD [--duckdb PATH | --bigquery PROJECT.DATASET --staging LOCATION]"
                );
            };
            let file = match &command.config {
                Some(path) => settings::file_layer(path)?,
                None => settings::Layer::default(),
            };
            let env = settings::env_layer(std::env::vars())?;
            let report = match settings::resolve_output(file, env, command.flags.clone())? {
                Output::DuckDb(path) => {
                    pipeline::batch::session_fact(&mut DuckDb::open(&path)?, date)?
                }
                Output::BigQuery(options) => pipeline::batch::session_fact(
                    &mut BigQuery::open(&options).context("cannot open the BigQuery warehouse")?,
                    date,
                )?,
            };
            println!(
                "pipeline batch session-fact {date}: {} sessions, {} rewritten",
                report.sessions, report.rewritten
            );
            return Ok(0);
        }
        Some(other) => {
            bail!("unknown command {other:?}; expected run, report or batch (see --help)")
        }
        None => unreachable!("checked above"),
    }
    let file = match &command.config {
        Some(path) => settings::file_layer(path)?,
        None => settings::Layer::default(),
    };
    let env = settings::env_layer(std::env::vars())?;
    let settings = Settings::resolve(file, env, command.flags)?;
    init_logs(&settings)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::Relaxed) {
                tracing::warn!("stopped again; exiting before the batch is written");
                std::process::exit(130);
            }
        })
        .context("cannot install the signal handler")?;
    }

    let totals = match &settings.output {
        Output::DuckDb(path) => consume(DuckDb::open(path)?, &settings, &stop)?,
        Output::BigQuery(options) => consume(
            BigQuery::open(options).context("cannot open the BigQuery warehouse")?,
            &settings,
            &stop,
        )?,
    };
    let s = &totals.stats;
    tracing::info!(
        consumed = s.consumed,
        batches = totals.batches,
        landed = s.landed,
        duplicates = s.duplicates,
        dead_lettered = s.rejected,
        skipped = totals.skipped,
        sessions_closed = s.sessions_closed,
        rows = totals.rows,
        busy_ms = totals.busy.as_millis() as u64,
        "{}",
        if stop.load(Ordering::Relaxed) {
            "stopped"
        } else {
            "done"
        },
    );
    Ok(0)
}

/// Runs the configured source into `sink`.
fn consume<K: Sink>(sink: K, settings: &Settings, stop: &AtomicBool) -> Result<Totals> {
    let until = settings
        .exit_when_idle
        .map_or(Until::Stopped, Until::IdleFor);
    Ok(match &settings.input {
        Input::Stdin => {
            let source = Stdin::new(
                Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin())),
                &settings.topics,
            );
            announce(settings, &sink, "standard input");
            drive(source, sink, settings, until, stop, None)?
        }
        Input::Files(dir) => {
            let source = Files::open(dir, &settings.topics)?;
            announce(settings, &sink, &format!("files in {}", dir.display()));
            drive(source, sink, settings, until, stop, None)?
        }
        Input::Kafka { brokers, group } => {
            let source = Kafka::connect(KafkaOptions {
                brokers: brokers.clone(),
                group: group.clone(),
                topics: settings.topics.clone(),
                settings: settings.kafka_settings.clone(),
            })?;
            announce(
                settings,
                &sink,
                &format!("Kafka at {brokers} (group {group})"),
            );
            let dead_letters = if settings.dead_letter_topics {
                Some(DeadLetterTopics::connect(
                    brokers,
                    &settings.kafka_settings,
                )?)
            } else {
                None
            };
            drive(source, sink, settings, until, stop, dead_letters)?
        }
    })
}

fn announce(settings: &Settings, sink: &dyn Sink, from: &str) {
    tracing::info!(
        from,
        into = %sink.describe(),
        batch_max_messages = settings.limits.max_messages,
        batch_max_ms = settings.limits.max_wait.as_millis() as u64,
        "starting"
    );
}

/// Logs on stderr, as text or one JSON object a line; `--quiet` keeps warnings only.
fn init_logs(settings: &Settings) -> Result<()> {
    let level = if settings.quiet {
        tracing::Level::WARN
    } else {
        tracing::Level::INFO
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let result = if settings.json_logs {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn drive<S: Source, K: Sink>(
    source: S,
    sink: K,
    settings: &Settings,
    until: Until,
    stop: &AtomicBool,
    dead_letters: Option<DeadLetterTopics>,
) -> Result<Totals> {
    let mut runner = Runner::new(source, sink, settings.transform.clone(), settings.limits)?
        .with_checkpoint_every(settings.checkpoint_every);
    if let Some(topics) = dead_letters {
        runner = runner.with_dead_letter_topics(topics);
    }
    if let Some(address) = &settings.listen {
        let bound = pipeline::serve::spawn(address, runner.metrics())?;
        tracing::info!("serving http://{bound}/metrics, /healthz and /readyz");
    }
    let mut progress = Progress {
        last: Instant::now(),
        began: Instant::now(),
    };
    Ok(runner.run(until, stop, &mut progress)?)
}

/// A line every ten seconds: what came in, what went out, how long batches take.
struct Progress {
    last: Instant,
    began: Instant,
}

impl Observer for Progress {
    fn on_batch(&mut self, totals: &Totals, batch: &Stats, took: Duration) {
        if self.last.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last = Instant::now();
        let rate = totals.stats.consumed as f64 / self.began.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(
            consumed = totals.stats.consumed,
            per_second = rate as u64,
            dead_lettered = totals.stats.rejected,
            sessions_closed = totals.stats.sessions_closed,
            rows = totals.rows,
            last_batch_messages = batch.consumed,
            last_batch_ms = took.as_millis() as u64,
            "progress"
        );
    }
}
