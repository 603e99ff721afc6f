//! `cargo xtask bench`: the release binaries measured against each other on this
//! machine, one table: the simulator into a null sink, files and a real Kafka broker;
//! the transformation core per core (the `transform` benchmark); the pipeline from that
//! broker, and from files, into DuckDB, for the users asked and a tenth of them (per-event
//! cost should not grow with users); then the dashboard and the data-quality checks over
//! the larger warehouse. A second table: what checkpoints cost, and how long resuming
//! the larger warehouse's checkpoint takes. Each pipeline run is timed whole, from start
//! to exit, less only the idle wait of a run over Kafka that exits once caught up. Peak
//! memory is read from `/proc` while each process runs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use warehouse::raw::EventKind;
use xshell::{Shell, cmd};
use xtask::kafka::ScratchBroker;

use crate::{build_binaries, nested_cargo, project_root};

/// One simulated day; the simulator's own benchmark uses the same.
const START: &str = "2026-01-05T00:00:00";
const END: &str = "2026-01-06T00:00:00";

#[derive(Debug)]
pub struct Bench {
    pub users: u32,
}

impl Default for Bench {
    fn default() -> Bench {
        Bench { users: 100_000 }
    }
}

struct Row {
    case: String,
    events: u64,
    seconds: f64,
    peak_mb: Option<u64>,
}

/// What a pipeline run's checkpoints cost, from its `done` line.
struct Checkpoints {
    case: String,
    count: u64,
    bytes: u64,
    ms: u64,
}

/// One pipeline run: its row, its checkpoints, and how long it took to resume.
struct PipelineRun {
    row: Row,
    checkpoints: Checkpoints,
    resumed_ms: u64,
}

pub fn run(bench: &Bench) -> Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("bench [1/8] build the release binaries (DuckDB's first release build takes a while)");
    let bins = build_binaries(true)?;
    let (simulator, pipeline) = (bins.simulator, bins.pipeline);
    let work = project_root().join("data/bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let users = bench.users.to_string();
    let simulate_for = |users: &str, end: &str, args: &[&str]| -> Command {
        let mut command = Command::new(&simulator);
        command
            .args(["-n", users, "-s", START, "-e", end])
            .args(args)
            .stdin(Stdio::null());
        command
    };
    let simulate = |args: &[&str]| simulate_for(&users, END, args);
    let mut rows = Vec::new();

    let few = (bench.users / 10).max(1).to_string();
    // The N/10 users' run goes through topics of its own on the same broker.
    let few_topics: Vec<String> = EventKind::ALL
        .iter()
        .flat_map(|kind| {
            let topic = kind.topic();
            ["--topic".to_owned(), format!("{topic}=few.{topic}")]
        })
        .collect();

    println!(
        "bench [2/8] the simulator: {users} users for a day into a null sink and into files; sparse runs into files; {few} users into files"
    );
    let mut null = simulate(&["--stdout"]);
    null.stdout(Stdio::null());
    rows.push(simulator_row(
        "simulator -> null (--stdout > /dev/null)",
        null,
        &work,
    )?);
    let files = work.join("events");
    rows.push(simulator_row(
        "simulator -> JSON-lines files",
        simulate(&["--output-dir", &files.display().to_string()]),
        &work,
    )?);
    // Sparse shapes, few users over many days, as eventsim's examples run: speed must
    // not depend on how densely events fall in simulated time.
    let sparse = work.join("sparse-events");
    let sparse_dir = sparse.display().to_string();
    for (users, end, case) in [
        (
            "20000",
            "2026-02-04T00:00:00",
            "simulator -> files, 20,000 users x 30 days",
        ),
        (
            "2000",
            "2027-01-05T00:00:00",
            "simulator -> files, 2,000 users x 365 days",
        ),
    ] {
        rows.push(simulator_row(
            case,
            simulate_for(users, end, &["--output-dir", &sparse_dir]),
            &work,
        )?);
    }
    let _ = std::fs::remove_dir_all(&sparse);
    let few_files = work.join("events-few");
    rows.push(simulator_row(
        &format!("simulator -> JSON-lines files, {few} users"),
        simulate_for(
            &few,
            END,
            &["--output-dir", &few_files.display().to_string()],
        ),
        &work,
    )?);

    println!("bench [3/8] the simulator into a real Kafka broker (6 partitions, lz4)");
    let broker = ScratchBroker::start("bench")?;
    let bootstrap = broker.broker().bootstrap();
    rows.push(simulator_row(
        "simulator -> Kafka",
        simulate(&["--kafka-brokers", &bootstrap, "--partitions", "6"]),
        &work,
    )?);
    let mut few_to_kafka = vec!["--kafka-brokers", &bootstrap, "--partitions", "6"];
    few_to_kafka.extend(few_topics.iter().map(String::as_str));
    rows.push(simulator_row(
        &format!("simulator -> Kafka, {few} users"),
        simulate_for(&few, END, &few_to_kafka),
        &work,
    )?);

    println!("bench [4/8] the transformation core (cargo bench -p pipeline --bench transform)");
    let output = nested_cargo(cmd!(
        sh,
        "{cargo} bench --quiet -p pipeline --bench transform"
    ))
    .read()
    .context("the transform benchmark failed; its output is above")?;
    // "transform, …, one core: N events (…) -> R rows in S s: E events/s, M MB/s"
    let line = output
        .lines()
        .find(|l| l.starts_with("transform,"))
        .with_context(|| format!("no result line in:\n{output}"))?;
    let events: u64 = field(line, "one core: ", " events")?;
    let seconds: f64 = field(line, " rows in ", "s:")?;
    rows.push(Row {
        case: "transform, raw JSON -> Arrow, one core".to_owned(),
        events,
        seconds,
        peak_mb: None,
    });

    let mut checkpoints = Vec::new();
    println!("bench [5/8] the pipeline from the broker into DuckDB, {few} users then {users}");
    let mut from_few_topics = vec!["--kafka-brokers", &bootstrap, "--group", "bench-few"];
    from_few_topics.extend(few_topics.iter().map(String::as_str));
    for (case, source, warehouse) in [
        (
            format!("pipeline Kafka -> DuckDB, {few} users"),
            from_few_topics,
            "kafka-few.duckdb",
        ),
        (
            format!("pipeline Kafka -> DuckDB, {users} users"),
            vec!["--kafka-brokers", &bootstrap, "--group", "bench"],
            "kafka.duckdb",
        ),
    ] {
        let run = pipeline_run(&case, &pipeline, &source, &work.join(warehouse), &work)?;
        rows.push(run.row);
        checkpoints.push(run.checkpoints);
    }
    drop(broker);

    println!("bench [6/8] the pipeline from the files into DuckDB, {few} users then {users}");
    let warehouse = work.join("files.duckdb");
    let mut events = 0;
    for (case, input, into) in [
        (
            format!("pipeline files -> DuckDB, {few} users"),
            &few_files,
            work.join("files-few.duckdb"),
        ),
        (
            format!("pipeline files -> DuckDB, {users} users"),
            &files,
            warehouse.clone(),
        ),
    ] {
        let input = input.display().to_string();
        let run = pipeline_run(&case, &pipeline, &["--input", &input], &into, &work)?;
        events = run.row.events;
        rows.push(run.row);
        checkpoints.push(run.checkpoints);
    }

    println!("bench [7/8] resuming the {users} users' warehouse (its end-of-run checkpoint)");
    // Empty topic files: the run restores the checkpoint, finds nothing new, and ends.
    let nothing = work.join("nothing");
    std::fs::create_dir_all(&nothing)?;
    for kind in EventKind::ALL {
        std::fs::write(nothing.join(format!("{}.jsonl", kind.topic())), "")?;
    }
    let resumed = pipeline_run(
        "resume",
        &pipeline,
        &["--input", &nothing.display().to_string()],
        &warehouse,
        &work,
    )?;

    println!("bench [8/8] the dashboard and the data-quality checks over that warehouse");
    let duckdb = warehouse.display().to_string();
    let page = work.join("dashboard.html").display().to_string();
    rows.push(timed_row(
        "dashboard, every KPI and period (DuckDB)",
        Command::new(&pipeline).args(["dashboard", "--duckdb", &duckdb, "--out", &page]),
        events,
    )?);
    rows.push(timed_row(
        "pipeline check all, the first day (DuckDB)",
        Command::new(&pipeline).args(["check", "all", "--date", &START[..10], "--duckdb", &duckdb]),
        events,
    )?);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nbench: {cores} cores; release builds; {users} users, one simulated day");
    println!(
        "{:<42} {:>11} {:>9} {:>12} {:>8}",
        "case", "events", "seconds", "events/s", "peak MB"
    );
    for row in &rows {
        println!(
            "{:<42} {:>11} {:>9.2} {:>12.0} {:>8}",
            row.case,
            row.events,
            row.seconds,
            row.events as f64 / row.seconds.max(1e-9),
            row.peak_mb.map_or("-".to_owned(), |mb| mb.to_string())
        );
    }
    println!(
        "\n{:<42} {:>11} {:>11} {:>12}",
        "checkpoints (state written)", "count", "KB each", "ms each"
    );
    for c in &checkpoints {
        let each = |total: u64| total as f64 / c.count.max(1) as f64;
        println!(
            "{:<42} {:>11} {:>11.0} {:>12.1}",
            c.case,
            c.count,
            each(c.bytes) / 1024.0,
            each(c.ms)
        );
    }
    println!(
        "{:<42} {:>11} {:>11} {:>12}",
        format!("resume {users} users' checkpoint, to ready"),
        "",
        "",
        resumed.resumed_ms
    );
    Ok(())
}

/// The text between `before` and `after` in `line`, parsed, with thousands separators
/// dropped.
fn field<T: std::str::FromStr>(line: &str, before: &str, after: &str) -> Result<T> {
    line.split(before)
        .nth(1)
        .and_then(|rest| rest.split(after).next())
        .map(|text| text.trim().replace(',', ""))
        .and_then(|text| text.parse().ok())
        .with_context(|| format!("no number between {before:?} and {after:?} in {line:?}"))
}

/// Runs the simulator, timing it and reading its event count from its summary.
fn simulator_row(case: &str, mut command: Command, work: &Path) -> Result<Row> {
    let log = work.join("simulator.err");
    command.stderr(std::fs::File::create(&log)?);
    let began = Instant::now();
    let (status, peak_mb) = watch(command.spawn().context("starting the simulator")?)?;
    let seconds = began.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log)?;
    if !status.success() {
        bail!("the simulator failed ({status}):\n{text}");
    }
    let summary = text
        .lines()
        .find(|l| l.contains(": done: "))
        .with_context(|| format!("no summary in:\n{text}"))?;
    Ok(Row {
        case: case.to_owned(),
        events: field(summary, "done: ", " events")?,
        seconds,
        peak_mb,
    })
}

/// Runs a command that reads the warehouse of `events` events, timing it whole.
fn timed_row(case: &str, command: &mut Command, events: u64) -> Result<Row> {
    let began = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {case}"))?;
    let (status, peak_mb) = watch(child)?;
    if !status.success() {
        bail!("{case} failed ({status}); its message is above");
    }
    Ok(Row {
        case: case.to_owned(),
        events,
        seconds: began.elapsed().as_secs_f64(),
        peak_mb,
    })
}

/// Runs the pipeline to the end of its input, timing the whole command less the idle
/// wait before a run over Kafka ends (a run over files ends at their end).
fn pipeline_run(
    case: &str,
    pipeline: &Path,
    source: &[&str],
    warehouse: &Path,
    work: &Path,
) -> Result<PipelineRun> {
    let log = work.join("pipeline.log");
    let began = Instant::now();
    let child = Command::new(pipeline)
        .arg("run")
        .args(source)
        .args(["--duckdb", &warehouse.display().to_string()])
        .args(["--exit-when-idle-s", "1", "--log-format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("starting the pipeline")?;
    let (status, peak_mb) = watch(child)?;
    let wall = began.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log)?;
    if !status.success() {
        bail!("the pipeline failed ({status}); read {}", log.display());
    }
    let line = |message: &str| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == message)
            .with_context(|| format!("no `{message}` line in {}", log.display()))
    };
    let (done, resumed) = (line("done")?, line("resumed")?);
    let number = |line: &serde_json::Value, name: &str| {
        line["fields"][name]
            .as_u64()
            .with_context(|| format!("no {name} in {line} of {}", log.display()))
    };
    Ok(PipelineRun {
        row: Row {
            case: case.to_owned(),
            events: number(&done, "consumed")?,
            seconds: wall - number(&done, "idle_ms")? as f64 / 1000.0,
            peak_mb,
        },
        checkpoints: Checkpoints {
            case: case.replacen("pipeline ", "", 1),
            count: number(&done, "checkpoints")?,
            bytes: number(&done, "checkpoint_bytes")?,
            ms: number(&done, "checkpoint_ms")?,
        },
        resumed_ms: number(&resumed, "since_start_ms")?,
    })
}

/// Waits for a child, reading its peak resident memory (`VmHWM`) as it runs.
fn watch(mut child: Child) -> Result<(std::process::ExitStatus, Option<u64>)> {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        }) {
            peak = Some(kb / 1024);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
