//! `e2e`: the whole path against real services, the binary `cargo xtask e2e` builds
//! together with the simulator and the pipeline and then runs. A Kafka broker, the
//! BigQuery emulator and the Cloud Storage emulator start; the simulator writes a few
//! days of a few hundred users into six-partition topics, beside a known set of
//! malformed messages; the pipeline consumes them into DuckDB and, as a second consumer
//! group, into the emulator through its Storage Write API, checkpointing in the Cloud
//! Storage emulator. The checks: every
//! message accounted for per topic, exactly the malformed ones dead-lettered, no duplicate
//! keys, every fact's keys found in their dimensions, session facts consistent with their
//! events, and the same rows in DuckDB and BigQuery. Then the fault run: the same input
//! with the pipeline killed (-9) three times at random points; it must end with the clean
//! run's tables.
//!
//! It lives outside xtask because it reads DuckDB files: xtask itself links no DuckDB,
//! so that `cargo xtask` builds in seconds on a fresh machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::tables::{Tables, bigquery_tables, duckdb_tables, without_receive_times};
use lexopt::ValueExt as _;
use warehouse::analytics::Dialect;
use warehouse::quality::{CheckKind, checks};
use warehouse::schema::TABLES;
use xtask::emulator::{PROJECT, ScratchEmulator};
use xtask::gcs::ScratchGcs;
use xtask::kafka::{ScratchBroker, ensure_jars};

const HELP: &str = "\
e2e [--users N] [--days D] [--seed S] [--work DIR]

The end-to-end run against a real broker and the BigQuery and Cloud Storage emulators (default 500 users,
5 days, seed 7; logs and warehouses in DIR, default data/e2e). Run it through
`cargo xtask e2e`, which builds it beside the simulator and the pipeline it runs.
";

fn main() -> ExitCode {
    xtask::exit_code(parse().and_then(|e2e| run(&e2e)))
}

fn parse() -> Result<E2e> {
    let mut e2e = E2e::default();
    let mut args = lexopt::Parser::from_env();
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("users") => e2e.users = args.value()?.parse()?,
            lexopt::Arg::Long("days") => e2e.days = args.value()?.parse()?,
            lexopt::Arg::Long("seed") => e2e.seed = args.value()?.parse()?,
            lexopt::Arg::Long("work") => e2e.work = args.value()?.into(),
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => bail!("e2e: {}\n\n{HELP}", other.unexpected()),
        }
    }
    Ok(e2e)
}

/// The simulator and pipeline binaries of the build this binary came from: cargo puts
/// every binary of one profile in one folder.
struct Binaries {
    simulator: PathBuf,
    pipeline: PathBuf,
}

fn sibling_binaries() -> Result<Binaries> {
    let me = std::env::current_exe().context("finding the e2e binary's own path")?;
    let dir = me.parent().context("the e2e binary has no folder")?;
    let bins = Binaries {
        simulator: dir.join("simulator"),
        pipeline: dir.join("pipeline"),
    };
    for bin in [&bins.simulator, &bins.pipeline] {
        if !bin.exists() {
            bail!(
                "no {} beside the e2e binary: run `cargo xtask e2e`, which builds all three",
                bin.display()
            );
        }
    }
    Ok(bins)
}

/// The simulated days start here, so that a run is the same on any day.
const START: &str = "2026-01-05T00:00:00";

/// Messages that must be dead-lettered, one kind of fault each, by topic.
const MALFORMED: [(&str, &str); 6] = [
    ("listen_events", "not json at all"),
    ("listen_events", "{\"ts\": \"yesterday\"}"),
    (
        "page_view_events",
        "{\"ts\": 1767571200000, \"sessionId\": 1}",
    ),
    ("page_view_events", "[1, 2, 3]"),
    ("auth_events", "{}"),
    (
        "status_change_events",
        "{\"ts\": 1767571200000, \"userId\": \"seven\"}",
    ),
];

/// Which table holds what landed of each topic, and how to count it.
const LANDED: [(&str, &str); 4] = [
    (
        "listen_events",
        "SELECT count(*) FROM event_fact WHERE is_record_valid",
    ),
    ("page_view_events", "SELECT count(*) FROM event_dim"),
    ("auth_events", "SELECT count(*) FROM auth_fact"),
    (
        "status_change_events",
        "SELECT count(*) FROM level_change_fact",
    ),
];

#[derive(Debug)]
struct E2e {
    users: u32,
    days: u32,
    seed: u64,
    work: PathBuf,
}

impl Default for E2e {
    fn default() -> E2e {
        E2e {
            users: 500,
            days: 5,
            seed: 7,
            work: PathBuf::from("data/e2e"),
        }
    }
}

/// What the run found; its last line.
#[derive(Debug, Default)]
struct Outcome {
    produced: u64,
    landed: u64,
    dead_lettered: u64,
    lost: u64,
    duplicates: u64,
    fault_runs_identical: bool,
}

fn run(e2e: &E2e) -> Result<()> {
    let began = Instant::now();
    let work = &e2e.work;
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let bins = sibling_binaries()?;
    let mut steps = Steps::new(7);

    let (broker, emulator, gcs) = steps.run(
        "start a Kafka broker, the BigQuery emulator and the Cloud Storage emulator",
        || {
            Ok((
                ScratchBroker::start("e2e")?,
                ScratchEmulator::start("e2e")?,
                ScratchGcs::start("e2e")?,
            ))
        },
    )?;
    let bootstrap = broker.broker().bootstrap();
    let produced = steps.run(
        &format!(
            "simulate {} users for {} days (seed {}) into 6-partition topics, plus {} malformed messages",
            e2e.users,
            e2e.days,
            e2e.seed,
            MALFORMED.len()
        ),
        || produce(e2e, &bins, &broker, work),
    )?;
    let clean = work.join("clean.duckdb");
    steps.run(
        "run the pipeline into DuckDB and, as a second group, into BigQuery",
        || {
            let duckdb = spawn_pipeline(
                &mut Command::new(&bins.pipeline),
                &work.join("clean.log"),
                &[
                    "--kafka-brokers",
                    &bootstrap,
                    "--group",
                    "e2e-clean",
                    "--duckdb",
                    &clean.display().to_string(),
                ],
            )?;
            let endpoint = format!("{}/bigquery/v2", emulator.emulator().endpoint());
            // Its checkpoints go to the Cloud Storage emulator, with credentials from
            // the environment as in production.
            let bigquery = spawn_pipeline(
                Command::new(&bins.pipeline).env(
                    "GOOGLE_SERVICE_ACCOUNT_KEY",
                    gcs.gcs().service_account_key(),
                ),
                &work.join("bigquery.log"),
                &[
                    "--kafka-brokers",
                    &bootstrap,
                    "--group",
                    "e2e-bigquery",
                    "--bigquery",
                    &format!("{PROJECT}.e2e"),
                    "--staging",
                    &format!("gs://{}/e2e", xtask::gcs::BUCKET),
                    "--bigquery-auth",
                    "none",
                    "--bigquery-endpoint",
                    &endpoint,
                    "--bigquery-write-endpoint",
                    &emulator.emulator().write_endpoint(),
                    "--bigquery-emulator",
                ],
            )?;
            finish(duckdb, &work.join("clean.log"))?;
            finish(bigquery, &work.join("bigquery.log"))
        },
    )?;
    let mut outcome = Outcome::default();
    let clean_tables = steps.run("check the DuckDB warehouse", || {
        check(&clean, &produced, &mut outcome)
    })?;
    steps.run("compare DuckDB with BigQuery, table by table", || {
        let stored = bigquery_tables(emulator.emulator(), "e2e")?;
        compare("BigQuery", &stored, &clean_tables)
    })?;
    outcome.fault_runs_identical = steps.run(
        "fault run: the same input, the pipeline killed (-9) three times",
        || {
            let total = produced.values().sum();
            fault_run(
                e2e.seed,
                total,
                &bins.pipeline,
                &bootstrap,
                work,
                &clean_tables,
            )
        },
    )?;
    steps.run("stop the broker and the emulators", || {
        drop((broker, emulator, gcs));
        Ok(())
    })?;
    println!(
        "\ne2e: done in {:.0?}; logs and warehouses in {}",
        began.elapsed(),
        work.display()
    );
    let o = &outcome;
    println!(
        "e2e: produced={} landed={} dead_lettered={} lost={} duplicates={} fault_runs_identical={}",
        o.produced, o.landed, o.dead_lettered, o.lost, o.duplicates, o.fault_runs_identical
    );
    if o.lost != 0 || o.duplicates != 0 || !o.fault_runs_identical {
        bail!("e2e failed: the last line says what");
    }
    Ok(())
}

/// Numbered steps, each timed; a failure names its step.
struct Steps {
    done: usize,
    total: usize,
}

impl Steps {
    fn new(total: usize) -> Steps {
        Steps { done: 0, total }
    }

    fn run<T>(&mut self, what: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
        self.done += 1;
        let (n, total) = (self.done, self.total);
        println!("\ne2e [{n}/{total}] {what}");
        let began = Instant::now();
        let value = step().with_context(|| format!("e2e step {n} ({what})"))?;
        println!("e2e [{n}/{total}] done in {:.1?}", began.elapsed());
        Ok(value)
    }
}

/// Produces the simulated events and the malformed messages; returns the messages of
/// each topic, as the broker counts them.
fn produce(
    e2e: &E2e,
    bins: &Binaries,
    broker: &ScratchBroker,
    work: &Path,
) -> Result<BTreeMap<String, u64>> {
    let end_day = warehouse::time::days_from_civil(2026, 1, 5) + i64::from(e2e.days);
    let (y, m, d) = warehouse::time::civil_from_days(end_day);
    let end = format!("{y:04}-{m:02}-{d:02}T00:00:00");
    let log = work.join("simulator.log");
    let status = Command::new(&bins.simulator)
        .args(["-n", &e2e.users.to_string(), "-s", START, "-e", &end])
        .args(["-r", &e2e.seed.to_string(), "--partitions", "6"])
        .args(["--kafka-brokers", &broker.broker().bootstrap()])
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("simulator.err"))?)
        .status()
        .context("running the simulator")?;
    if !status.success() {
        bail!(
            "the simulator failed ({status}); read {}",
            work.join("simulator.err").display()
        );
    }
    let libs = ensure_jars()?;
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (topic, payload) in MALFORMED {
        by_topic.entry(topic).or_default().push(payload);
    }
    for (topic, payloads) in by_topic {
        let input = payloads.join("\n") + "\n";
        broker.broker().tool(
            &libs,
            "org.apache.kafka.tools.ConsoleProducer",
            &["--topic", topic],
            input.as_bytes(),
        )?;
    }
    let mut produced = BTreeMap::new();
    for (topic, _) in LANDED {
        let out = broker.broker().tool(
            &libs,
            "org.apache.kafka.tools.GetOffsetShell",
            &["--topic", topic],
            b"",
        )?;
        // One `topic:partition:end offset` line per partition.
        let mut total = 0;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let end: u64 = line
                .rsplit(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .with_context(|| format!("GetOffsetShell answered {line:?}"))?;
            total += end;
        }
        println!("  {topic}: {total} messages");
        produced.insert(topic.to_owned(), total);
    }
    Ok(produced)
}

fn spawn_pipeline(pipeline: &mut Command, log: &Path, args: &[&str]) -> Result<Child> {
    pipeline
        .arg("run")
        .args(args)
        .args(["--exit-when-idle-s", "3", "--batch-max-ms", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {:?}", pipeline.get_program()))
}

fn finish(mut child: Child, log: &Path) -> Result<()> {
    let status = child.wait()?;
    if !status.success() {
        bail!("the pipeline failed ({status}); read {}", log.display());
    }
    Ok(())
}

fn count(connection: &duckdb::Connection, sql: &str) -> Result<u64> {
    let n: i64 = connection
        .query_row(sql, [], |row| row.get(0))
        .with_context(|| format!("running {sql}"))?;
    Ok(n as u64)
}

/// The checks on a warehouse; fills the outcome's counts and returns its tables.
fn check(path: &Path, produced: &BTreeMap<String, u64>, outcome: &mut Outcome) -> Result<Tables> {
    let connection =
        duckdb::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut failures = Vec::new();

    // Every message is accounted for, per topic.
    let mut dead: BTreeMap<String, u64> = BTreeMap::new();
    {
        let mut statement =
            connection.prepare("SELECT source_topic, count(*) FROM dead_letters GROUP BY 1")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (topic, n) = row?;
            dead.insert(topic, n as u64);
        }
    }
    for (topic, sql) in LANDED {
        let landed = count(&connection, sql)?;
        let dead = dead.get(topic).copied().unwrap_or(0);
        let sent = produced.get(topic).copied().unwrap_or(0);
        println!("  {topic}: produced {sent} = landed {landed} + dead-lettered {dead}");
        outcome.produced += sent;
        outcome.landed += landed;
        outcome.dead_lettered += dead;
        outcome.lost += sent.saturating_sub(landed + dead);
        outcome.duplicates += (landed + dead).saturating_sub(sent);
    }

    // Exactly the malformed messages are dead letters.
    let mut statement = connection.prepare("SELECT source_topic, payload FROM dead_letters")?;
    let letters: BTreeSet<(String, String)> = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                String::from_utf8_lossy(&row.get::<_, Vec<u8>>(1)?).into_owned(),
            ))
        })?
        .collect::<duckdb::Result<_>>()?;
    let expected: BTreeSet<(String, String)> = MALFORMED
        .iter()
        .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
        .collect();
    if letters != expected {
        failures.push(format!(
            "dead letters are not the malformed messages: unexpected {:?}, missing {:?}",
            letters.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&letters).collect::<Vec<_>>()
        ));
    }

    // No primary key twice, and every foreign key found: the checks the daily DAG runs.
    for check in checks(CheckKind::Duplicates, Dialect::DuckDb, None) {
        let twice = count(&connection, &check.sql)?;
        outcome.duplicates += twice;
        if !check.expect.holds(twice) {
            failures.push(format!("{}: {twice}", check.name));
        }
    }
    let mut foreign = 0;
    for check in checks(CheckKind::Keys, Dialect::DuckDb, None) {
        let missing = count(&connection, &check.sql)?;
        foreign += 1;
        if !check.expect.holds(missing) {
            failures.push(format!("{}: {missing}", check.name));
        }
    }
    println!("  {foreign} foreign keys checked");

    // Session facts agree with their events.
    let inconsistent = count(
        &connection,
        "WITH l AS (
           SELECT session_key, count(*) AS n, sum(duration) AS seconds
           FROM event_fact WHERE is_record_valid GROUP BY session_key
         ), v AS (
           SELECT session_key, count(*) AS n FROM event_session_bridge GROUP BY session_key
         )
         SELECT count(*) FROM session_fact s
         LEFT JOIN l USING (session_key) LEFT JOIN v USING (session_key)
         WHERE s.is_record_valid AND (
           s.listen_count <> coalesce(l.n, 0)
           OR s.event_count <> coalesce(v.n, 0)
           OR abs(s.listening_time - coalesce(l.seconds, 0)) > 1e-6 * greatest(1, s.listening_time)
           OR s.session_end_ts < s.session_start_ts)",
    )?;
    let sessions = count(
        &connection,
        "SELECT count(*) FROM session_fact WHERE is_record_valid",
    )?;
    println!("  {sessions} session facts checked against their events");
    if inconsistent > 0 {
        failures.push(format!(
            "{inconsistent} session facts disagree with their events"
        ));
    }
    if sessions == 0 {
        failures.push("no session facts at all".to_owned());
    }

    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    duckdb_tables(&connection)
}

/// Compares two warehouses row for row, wall-clock columns aside.
fn compare(what: &str, stored: &Tables, expected: &Tables) -> Result<()> {
    let mut differ = Vec::new();
    for table in TABLES {
        let text = |t: &Tables| {
            without_receive_times(
                &t.rows(table.name)
                    .into_iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        };
        let (a, b) = (text(stored), text(expected));
        let digest = |s: &str| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
        };
        let rows = expected.rows(table.name).len();
        if a == b {
            println!(
                "  {:<22} {rows:>7} rows  checksum {:016x}  same",
                table.name,
                digest(&b)
            );
        } else {
            println!(
                "  {:<22} {rows:>7} rows  checksum {:016x}  {what}: {} rows, checksum {:016x}",
                table.name,
                digest(&b),
                stored.rows(table.name).len(),
                digest(&a)
            );
            differ.push(table.name);
        }
    }
    if !differ.is_empty() {
        bail!("{what} differs in {}", differ.join(", "));
    }
    Ok(())
}

/// Runs the pipeline over the same topics as a new group, killing it three times at
/// pseudo-random points (seeded, printed) before letting it finish; true when it ends
/// with the clean run's tables.
fn fault_run(
    seed: u64,
    produced: u64,
    pipeline: &Path,
    bootstrap: &str,
    work: &Path,
    clean: &Tables,
) -> Result<bool> {
    let path = work.join("fault.duckdb");
    let warehouse = path.display().to_string();
    let args = [
        "--kafka-brokers",
        bootstrap,
        "--group",
        "e2e-fault",
        "--duckdb",
        &warehouse,
        // Small batches, so that a kill lands between and inside many of them.
        "--batch-max-messages",
        "300",
    ];
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    for kill in 1..=3 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis((state >> 33) % 400);
        let log = work.join(format!("fault-{kill}.log"));
        let mut listening = args.to_vec();
        listening.extend(["--listen", "127.0.0.1:0"]);
        let mut child = spawn_pipeline(&mut Command::new(pipeline), &log, &listening)?;
        // The clock starts when this run has written its first batch, so that every
        // kill lands while it is consuming.
        let started = Instant::now();
        loop {
            let written = metrics_port(&log)
                .and_then(|port| xtask::process::metric(port, "pipeline_batches_total"))
                .unwrap_or(0.0);
            if written >= 1.0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(90) || child.try_wait()?.is_some() {
                let _ = child.kill();
                bail!(
                    "the pipeline wrote no batch within 90 s; read {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(after);
        let exited = child.try_wait()?.is_some();
        child.kill().ok();
        child.wait()?;
        let stored = duckdb::Connection::open(&path)
            .and_then(|c| {
                c.query_row(
                    "SELECT coalesce(sum(next_offset), 0) FROM pipeline_offsets",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .unwrap_or(0);
        println!(
            "  kill {kill}: {after:.1?} after its first batch{}; the warehouse then held offsets summing to {stored} of {produced}",
            if exited {
                " (it had already finished)"
            } else {
                ""
            }
        );
    }
    let log = work.join("fault-final.log");
    finish(
        spawn_pipeline(&mut Command::new(pipeline), &log, &args)?,
        &log,
    )?;
    let connection = duckdb::Connection::open(&path)?;
    let tables = duckdb_tables(&connection)?;
    Ok(compare("the fault run", &tables, clean).map_or_else(
        |e| {
            println!("  {e}");
            false
        },
        |()| true,
    ))
}

/// The port of a pipeline's metrics endpoint, once its log names it.
fn metrics_port(log: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(log).ok()?;
    let address = text.split("serving http://").nth(1)?.split('/').next()?;
    address.rsplit(':').next()?.parse().ok()
}
