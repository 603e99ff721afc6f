//! `cargo xtask up` and `cargo xtask down`: the full environment on this machine — the
//! Kafka broker, the BigQuery emulator, the simulator in real time, and the pipeline
//! into DuckDB and into the emulator — each a background process with a pid file and a
//! log under `data/up/`, and stopped again in the reverse order.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::emulator::{Emulator, PROJECT};
use xtask::kafka::Broker;
use xtask::process::{alive, running_pid, stop, tail};

use crate::{build_binaries, project_root};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Native,
    Docker,
    Gcp,
}

#[derive(Debug)]
pub struct Up {
    pub mode: Mode,
    pub users: u32,
    /// Simulated seconds per second.
    pub speed: f64,
}

impl Default for Up {
    fn default() -> Up {
        Up {
            mode: Mode::Native,
            users: 1_000,
            speed: 60.0,
        }
    }
}

/// The background processes `up` starts besides the broker and the emulator, in order.
const PROCESSES: [&str; 3] = ["simulator", "pipeline-duckdb", "pipeline-bigquery"];

fn state_dir() -> PathBuf {
    project_root().join("data/up")
}

pub fn up(up: &Up) -> Result<()> {
    match up.mode {
        Mode::Native => {}
        Mode::Docker => bail!(
            "up --docker runs infra/compose.yaml, which is not in the repository yet (the infra issue); use --native"
        ),
        Mode::Gcp => bail!(
            "up --gcp applies infra/terraform and infra/k8s, which are not in the repository yet (the infra issue); use --native"
        ),
    }
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("up [1/6] build the simulator and the pipeline");
    let bins = build_binaries(false)?;
    let (simulator, pipeline) = (bins.simulator, bins.pipeline);

    println!("\nup [2/6] the Kafka broker");
    let broker = Broker::new(None, None);
    broker.start()?;
    println!("\nup [3/6] the BigQuery emulator");
    let emulator = Emulator::new(None, None);
    emulator.start()?;
    let bootstrap = broker.bootstrap();

    println!(
        "\nup [4/6] the simulator, {} users at {}x real time",
        up.users, up.speed
    );
    background(
        "simulator",
        Command::new(&simulator)
            .args(["-n", &up.users.to_string(), "--continuous"])
            .args(["--speed", &up.speed.to_string(), "-r", "1"])
            .args(["--kafka-brokers", &bootstrap, "--partitions", "6"]),
    )?;
    println!("\nup [5/6] the pipeline into DuckDB (data/live.duckdb)");
    let live = project_root().join("data/live.duckdb");
    background(
        "pipeline-duckdb",
        Command::new(&pipeline)
            .args(["run", "--kafka-brokers", &bootstrap, "--group", "up-duckdb"])
            .args(["--duckdb", &live.display().to_string()])
            .args(["--listen", "127.0.0.1:9464"]),
    )?;
    println!("\nup [6/6] the pipeline into the BigQuery emulator ({PROJECT}.live)");
    background(
        "pipeline-bigquery",
        Command::new(&pipeline)
            .args([
                "run",
                "--kafka-brokers",
                &bootstrap,
                "--group",
                "up-bigquery",
            ])
            .args(["--bigquery", &format!("{PROJECT}.live")])
            .args(["--staging", &dir.join("staging").display().to_string()])
            .args(["--bigquery-auth", "none"])
            .args([
                "--bigquery-endpoint",
                &format!("{}/bigquery/v2", emulator.endpoint()),
            ])
            .args(["--listen", "127.0.0.1:9465"]),
    )?;

    println!(
        "\nup: running.
  Kafka                  {bootstrap} (topics listen_events, page_view_events, auth_events, status_change_events; dead letters <topic>.dlq)
  BigQuery emulator      {endpoint}, dataset {PROJECT}.live
  dashboard (live)       http://127.0.0.1:9464/dashboard (from DuckDB), http://127.0.0.1:9465/dashboard (from the emulator); they reload every 15 s
  pipeline -> DuckDB     metrics http://127.0.0.1:9464/metrics; warehouse {live} (DuckDB lets one process at a time open it: stop with `cargo xtask down` to query it)
  pipeline -> BigQuery   metrics http://127.0.0.1:9465/metrics
  logs and pid files     {dir}
Stop everything with `cargo xtask down`.",
        endpoint = emulator.endpoint(),
        live = live.display(),
        dir = dir.display(),
    );
    Ok(())
}

/// Starts `command` in the background, unless its pid file names a live process, with
/// its output in `<name>.log`; fails with the log's tail if it dies at once.
fn background(name: &str, command: &mut Command) -> Result<()> {
    let dir = state_dir();
    let pid_file = dir.join(format!("{name}.pid"));
    let log = dir.join(format!("{name}.log"));
    if let Some(pid) = running_pid(&pid_file) {
        println!("{name}: already running (pid {pid}); log {}", log.display());
        return Ok(());
    }
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group, so Ctrl-C in this terminal does not reach it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    std::fs::write(&pid_file, child.id().to_string())?;
    std::thread::sleep(Duration::from_secs(2));
    if !alive(child.id()) {
        bail!(
            "{name} exited at once; read {}\n{}",
            log.display(),
            tail(&log)
        );
    }
    println!(
        "{name}: running (pid {}); log {}",
        child.id(),
        log.display()
    );
    Ok(())
}

pub fn down() -> Result<()> {
    let dir = state_dir();
    for name in PROCESSES.iter().rev() {
        stop_background(name, &dir)?;
    }
    Emulator::new(None, None).stop()?;
    Broker::new(None, None).stop()?;
    println!("down: everything `cargo xtask up` started is stopped");
    Ok(())
}

fn stop_background(name: &str, dir: &Path) -> Result<()> {
    let pid_file = dir.join(format!("{name}.pid"));
    match running_pid(&pid_file) {
        Some(pid) => {
            println!("{name}: stopping (pid {pid})");
            // The pipeline finishes its batch and commits; give it time to.
            stop(pid, Duration::from_secs(60))?;
            println!("{name}: stopped");
        }
        None => println!("{name}: not running"),
    }
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}
