//! The `pipeline` binary as integration tests run it: processes killed when a test
//! ends, members of a consumer group, the reference warehouse from files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use simulator::sinks::{Files, Kafka, KafkaOptions};
use warehouse::raw::EventKind;

use super::{Warehouse, duckdb_tables, simulate};

/// A pipeline process that is killed when the test ends, even by a failed assertion,
/// so that a failure leaves no process behind holding the test's output open.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(command: &mut Command) -> Running {
    Running(command.spawn().unwrap())
}

/// `pipeline run -q` with `args`.
pub fn pipeline(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pipeline"));
    command.arg("run").arg("-q").args(args);
    command
}

pub fn warehouse_at(path: &Path) -> Warehouse {
    let connection = duckdb::Connection::open(path).unwrap();
    duckdb_tables(&connection)
}

/// Simulated users' events as files in `dir/events`, run through the pipeline into
/// `dir/files.duckdb`: the reference warehouse other runs compare with.
pub fn files_warehouse(dir: &Path, users: u32) -> PathBuf {
    let events = dir.join("events");
    let mut files = Files::create(&events, false).unwrap();
    simulate(&mut files, users, 2, 12, 2.0);
    drop(files);
    let warehouse = dir.join("files.duckdb");
    let status = pipeline(&[
        "--input",
        events.to_str().unwrap(),
        "--duckdb",
        warehouse.to_str().unwrap(),
    ])
    .status()
    .unwrap();
    assert!(status.success());
    warehouse
}

/// Waits until the pipeline logging to `log` reports `want` assigned partitions.
pub fn wait_for_assignment(log: &Path, want: usize, running: &mut Running) {
    let line = format!("partitions={want} ");
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last = text
            .lines()
            .rfind(|l| l.contains("the group assigned partitions"));
        if last.is_some_and(|l| l.contains(&line)) {
            return;
        }
        assert!(
            running.0.try_wait().unwrap().is_none(),
            "the pipeline exited early:\n{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no assignment of {want} partitions within a minute:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A producer to the four topics, which it creates with four partitions each.
pub fn four_partitions_each(bootstrap: &str) -> Kafka {
    Kafka::connect(KafkaOptions {
        brokers: bootstrap.to_owned(),
        topics: EventKind::ALL.map(|k| k.topic().to_owned()),
        partitions: 4,
        replication_factor: 1,
        compression: "lz4".to_owned(),
        tag: None,
        settings: Vec::new(),
    })
    .unwrap()
}

/// A pipeline in consumer group `group` writing where `sink` (its flags) says, logging
/// to `<name>.log` in `dir`, that exits once idle for `idle_s` seconds.
pub fn group_member(
    dir: &Path,
    bootstrap: &str,
    group: &str,
    name: &str,
    idle_s: &str,
    sink: &[&str],
) -> (PathBuf, Running) {
    let log = dir.join(format!("{name}.log"));
    let running = spawn(
        Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(["run", "--kafka-brokers", bootstrap, "--group", group])
            .args(sink)
            .args(["--exit-when-idle-s", idle_s, "--batch-max-ms", "300"])
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    (log, running)
}

/// Waits for a pipeline to exit, which it must do cleanly, and says how many messages
/// its `done` line counts; none is a failure.
pub fn consumed_until_exit(log: &Path, running: &mut Running) -> u64 {
    let status = running.0.wait().unwrap();
    let text = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{text}");
    let done = text.lines().rfind(|l| l.contains(" done ")).unwrap();
    let n: u64 = done
        .split("consumed=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(n > 0, "an instance consumed nothing:\n{text}");
    n
}

/// Runs `pipeline run -q` with `args` once per round, each killed (-9) once it has
/// written that round's number of batches more (its `/metrics` says), wherever it then
/// is. A run that finishes before it is killed fails the test: the input is too small.
pub fn kill_after_batches(args: &[&str], rounds: &[u64]) {
    for (round, after_batches) in rounds.iter().enumerate() {
        let port = xtask::kafka::free_port_pair();
        let listen = format!("127.0.0.1:{port}");
        let mut child = spawn(
            pipeline(args)
                .args(["--listen", &listen])
                .stderr(std::process::Stdio::null()),
        );
        let batches = || xtask::process::metric(port, "pipeline_batches_total").unwrap_or(0.0);
        while batches() < *after_batches as f64 {
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "round {round}: the pipeline finished before it could be killed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
    }
}
