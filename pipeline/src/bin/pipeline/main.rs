//! The `pipeline` binary: events from Kafka or files into the DuckDB or BigQuery
//! warehouse, resuming exactly where the warehouse says it stopped.

/// mimalloc rather than the system's allocator: a run allocates rows, strings and state
/// records by the million, and a million users' day from files took 40.9 s with it
/// (twice) against 47.8 s with glibc's, at the same peak memory (2 cores, 2026-12-06).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod report;
mod settings;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline::analytics::{BigQueryKpis, DuckDbKpis, KpiSource, Snapshot};
use pipeline::dashboard::Live;
use pipeline::runner::{Observer, Runner, Totals, Until};
use pipeline::sinks::{BigQuery, DeadLetterTopics, DuckDb, Sink};
use pipeline::sources::Source;
use pipeline::sources::files::Files;
use pipeline::sources::kafka::{Kafka, KafkaOptions};
use pipeline::sources::stdin::Stdin;
use pipeline::transforms::Stats;
use warehouse::analytics::Period;
use warehouse::quality::CheckKind;

use crate::settings::{Input, Output, Settings};

/// When the process started: resuming is timed from here.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

fn main() {
    LazyLock::force(&STARTED);
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
    let command = match settings::parse_args(std::env::args_os(), std::env::vars()) {
        Ok(command) => command,
        // Help and version on stdout with 0; usage errors on stderr with 2.
        Err(error) => {
            error.print().context("cannot print")?;
            return Ok(if error.use_stderr() { 2 } else { 0 });
        }
    };
    match command.name.as_str() {
        "report" => {
            let path = command
                .flags
                .duckdb
                .clone()
                .unwrap_or_else(|| "data/warehouse.duckdb".into());
            report::print(&path)?;
            return Ok(0);
        }
        "batch" => {
            // clap has checked the job's name and that a date is given.
            let date = command.date.as_deref().unwrap_or_default();
            let report = match settings::resolve_output(command.file()?, command.flags.clone())? {
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
        "dashboard" => {
            dashboard(&command)?;
            return Ok(0);
        }
        "check" => return check(&command),
        _ => {}
    }
    let settings = Settings::resolve(command.file()?, command.flags)?;
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

    // The live dashboard reads through a connection of its own.
    let serving = settings.listen.is_some();
    let totals = match &settings.output {
        Output::DuckDb(path) => {
            let sink = DuckDb::open(path)?;
            sink.limit_memory(settings.duckdb_memory_mb)?;
            // The pipeline transforms a batch on its own thread while DuckDB writes the
            // one before: DuckDB working on one thread leaves it a core. A million users'
            // day from files on 2 cores, two runs each, alternated: 60.0 and 60.2 s
            // with DuckDB on two threads, 57.4 and 56.8 s on one (2026-12-06).
            sink.limit_threads(1)?;
            let live = if serving {
                let connection = sink
                    .connection()
                    .try_clone()
                    .context("a second connection to the warehouse, for the dashboard")?;
                let source = DuckDbKpis::new(connection, &path.display().to_string());
                Some(Live::new(Box::new(source), LIVE_MAX_AGE))
            } else {
                None
            };
            consume(sink, &settings, &stop, live)?
        }
        Output::BigQuery(options) => {
            let sink = BigQuery::open(options).context("cannot open the BigQuery warehouse")?;
            let live = if serving {
                let source = BigQueryKpis::open(options)?;
                Some(Live::new(Box::new(source), LIVE_MAX_AGE))
            } else {
                None
            };
            consume(sink, &settings, &stop, live)?
        }
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
        idle_ms = totals.idle.as_millis() as u64,
        checkpoints = totals.checkpoints,
        checkpoint_bytes = totals.checkpoint_bytes,
        checkpoint_ms = totals.checkpoint_time.as_millis() as u64,
        "{}",
        if stop.load(Ordering::Relaxed) {
            "stopped"
        } else {
            "done"
        },
    );
    Ok(0)
}

/// `pipeline dashboard`: every KPI for every period with data (or the `--period`s given)
/// into one self-contained HTML page.
fn dashboard(command: &settings::Command) -> Result<()> {
    let began = Instant::now();
    let periods = if command.periods.is_empty() {
        None
    } else {
        Some(
            command
                .periods
                .iter()
                .map(|p| Period::parse(p))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let snapshot = Snapshot::read(reader(command)?.as_mut(), periods)?;
    let out = command.out.clone().context("clap gives --out a default")?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let page = pipeline::dashboard::render(&snapshot, &pipeline::dashboard::now_utc(), None);
    std::fs::write(&out, &page).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "dashboard: wrote {} ({} KB, {} periods from {}) in {:.1?}",
        out.display(),
        page.len() / 1024,
        snapshot.periods.len(),
        snapshot.source,
        began.elapsed()
    );
    Ok(())
}

/// `pipeline check KIND --date D`: the data-quality checks, one line each; exit code 1
/// when any fails.
fn check(command: &settings::Command) -> Result<i32> {
    // clap has checked the check's name and that a date is given.
    let (name, date) = (
        command.job.as_deref().unwrap_or("all"),
        command.date.as_deref().unwrap_or_default(),
    );
    let kinds: Vec<CheckKind> = if name == "all" {
        CheckKind::ALL.to_vec()
    } else {
        vec![CheckKind::from_name(name).with_context(|| format!("no check {name:?}"))?]
    };
    let date_key = pipeline::batch::day_key(date)
        .with_context(|| format!("--date {date:?}: expected YYYY-MM-DD"))?;
    let mut source = reader(command)?;
    let mut failed = 0;
    for kind in kinds {
        for checked in pipeline::analytics::check(source.as_mut(), kind, Some(date_key))? {
            let verdict = if checked.passed() { "ok  " } else { "FAIL" };
            failed += usize::from(!checked.passed());
            println!(
                "{verdict} {} {}: {}",
                kind.name(),
                checked.check.name,
                checked.count
            );
        }
    }
    println!(
        "pipeline check {name} {date}: {} in {}",
        if failed == 0 {
            "passed".to_owned()
        } else {
            format!("{failed} failed")
        },
        source.describe()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

/// The warehouse `dashboard` and `check` read. A DuckDB path with no file is refused
/// rather than made into an empty warehouse (a mistyped path would otherwise draw an
/// empty dashboard).
fn reader(command: &settings::Command) -> Result<Box<dyn KpiSource>> {
    Ok(
        match settings::resolve_reader(command.file()?, command.flags.clone())? {
            Output::DuckDb(path) => {
                if !path.is_file() {
                    bail!(
                        "no warehouse at {}: run the pipeline into it first (or `cargo xtask demo`)",
                        path.display()
                    );
                }
                let sink = DuckDb::open(&path).with_context(|| {
                    format!(
                        "a running pipeline holds {}? It serves the dashboard at /dashboard",
                        path.display()
                    )
                })?;
                Box::new(DuckDbKpis::new(
                    sink.connection().try_clone()?,
                    &path.display().to_string(),
                ))
            }
            Output::BigQuery(options) => Box::new(BigQueryKpis::open(&options)?),
        },
    )
}

/// How often the live dashboard reads the warehouse again (and the page reloads).
const LIVE_MAX_AGE: Duration = Duration::from_secs(15);

/// Runs the configured source into `sink`.
fn consume<K: Sink>(
    sink: K,
    settings: &Settings,
    stop: &AtomicBool,
    live: Option<Live>,
) -> Result<Totals> {
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
            drive(source, sink, settings, until, stop, None, live)?
        }
        Input::Files(dir) => {
            let source = Files::open(dir, &settings.topics)?;
            announce(settings, &sink, &format!("files in {}", dir.display()));
            drive(source, sink, settings, until, stop, None, live)?
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
                let sources: Vec<String> = settings
                    .topics
                    .iter()
                    .map(|(_, name)| name.clone())
                    .collect();
                Some(DeadLetterTopics::connect(
                    brokers,
                    &settings.kafka_settings,
                    &sources,
                )?)
            } else {
                None
            };
            drive(source, sink, settings, until, stop, dead_letters, live)?
        }
    })
}

fn announce<K: Sink>(settings: &Settings, sink: &K, from: &str) {
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
    live: Option<Live>,
) -> Result<Totals> {
    let mut runner = Runner::new(source, sink, settings.transform.clone(), settings.limits)?
        .with_checkpoint_every(settings.checkpoint_every)
        .with_retry(settings.retry);
    let state = runner.state();
    tracing::info!(
        open_sessions = state.open.len(),
        closed_sessions = state.closed.len(),
        users = state.users.len(),
        since_start_ms = STARTED.elapsed().as_millis() as u64,
        "resumed"
    );
    if let Some(topics) = dead_letters {
        runner = runner.with_dead_letter_topics(topics);
    }
    if let Some(address) = &settings.listen {
        let bound = pipeline::serve::spawn(
            address,
            runner.metrics(),
            live,
            pipeline::serve::Limits::default(),
        )?;
        tracing::info!("serving http://{bound}/metrics, /healthz, /readyz and /dashboard");
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
