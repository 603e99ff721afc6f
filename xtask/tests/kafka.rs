//! `cargo xtask kafka`: starts a real broker, which keeps its topics across a restart,
//! answers Kafka's own tools, and stops cleanly. Needs Java and Maven, as CI has.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `xtask kafka <action> --port … --state-dir … [-- tool args…]`.
fn xtask(args: &[&str], state_dir: &Path, port: u16) -> Output {
    let (action, tool_args) = args.split_at(2);
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(action)
        .arg("--port")
        .arg(port.to_string())
        .arg("--state-dir")
        .arg(state_dir);
    command.args(tool_args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Stops the test's broker however the test ends, so a failure leaks no process.
struct StopOnDrop {
    state: PathBuf,
    port: u16,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        xtask(&["kafka", "stop"], &self.state, self.port);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

#[test]
fn broker_starts_keeps_topics_across_restart_and_stops() {
    let state = std::env::temp_dir().join(format!("xtask-kafka-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let port = xtask::kafka::free_port_pair();
    let _stop = StopOnDrop {
        state: state.clone(),
        port,
    };

    let started = xtask(&["kafka", "start"], &state, port);
    assert!(started.status.success(), "{}", text(&started));
    let again = xtask(&["kafka", "start"], &state, port);
    assert!(text(&again).contains("already running"), "{}", text(&again));

    let create = xtask(
        &[
            "kafka",
            "topics",
            "--",
            "--create",
            "--topic",
            "listen_events",
            "--partitions",
            "6",
        ],
        &state,
        port,
    );
    assert!(create.status.success(), "{}", text(&create));

    let stopped = xtask(&["kafka", "stop"], &state, port);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let status = xtask(&["kafka", "status"], &state, port);
    assert!(
        !status.status.success() && text(&status).contains("not running"),
        "{}",
        text(&status)
    );

    let restarted = xtask(&["kafka", "start"], &state, port);
    assert!(restarted.status.success(), "{}", text(&restarted));
    assert!(
        !text(&restarted).contains("formatting"),
        "storage must be reused: {}",
        text(&restarted)
    );
    let described = xtask(
        &[
            "kafka",
            "topics",
            "--",
            "--describe",
            "--topic",
            "listen_events",
        ],
        &state,
        port,
    );
    let stopped = xtask(&["kafka", "stop"], &state, port);
    assert!(described.status.success(), "{}", text(&described));
    assert!(
        text(&described).contains("PartitionCount: 6"),
        "{}",
        text(&described)
    );
    assert!(stopped.status.success(), "{}", text(&stopped));
    let _ = std::fs::remove_dir_all(&state);
}
