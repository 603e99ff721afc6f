//! Simulator throughput and memory: `cargo bench -p simulator`.
//!
//! A plain harness, as in the warehouse's benchmark. In-process runs measure events/s
//! into a null sink and into JSON-lines files (best of three); runs of the release
//! binary measure the whole program, peak memory included: dense runs (100,000 and
//! 1,000,000 users over one simulated day) and sparse ones (20,000 users over 30 days,
//! 2,000 users over a year, the shape of eventsim's own examples). Uses the built-in
//! config and catalogue.

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use simulator::clock::{DAY_MS, parse_date_time};
use simulator::engine::{self, Options, Quiet};
use simulator::population::Places;
use simulator::sinks::{Files, Null, Sink};
use simulator::songs::Catalogue;
use simulator::world::{RunSpec, World};

const START: &str = "2026-01-05T00:00:00";

fn world(users: u32) -> World {
    let config = simulator::defaults::config();
    let model = config.compile().expect("the built-in config compiles");
    let start_ms = parse_date_time(START).expect("a valid date");
    let run = RunSpec {
        seed: 1,
        start_ms,
        end_ms: start_ms + DAY_MS,
        users,
        first_user_id: 1,
        growth_rate: 0.0,
        attrition_rate: 0.0,
    };
    World::new(&config, model, Catalogue::builtin(), Places::us(), run).expect("a valid world")
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("simulator benchmark ({threads} threads; built-in config; one simulated day)");
    println!(
        "{:<44} {:>12} {:>14} {:>10}",
        "case", "events", "events/s", "MB/s"
    );

    let world = world(300_000);
    measure(
        "in-process, 300,000 users -> null sink",
        &world,
        threads,
        || Box::new(Null),
    );
    let dir = std::env::temp_dir().join(format!("simulator-bench-{}", std::process::id()));
    measure(
        "in-process, 300,000 users -> files",
        &world,
        threads,
        || Box::new(Files::create(&dir, false).expect("a writable temp dir")),
    );
    measure(
        "in-process, 300,000 users -> files (gzip)",
        &world,
        threads,
        || Box::new(Files::create(&dir, true).expect("a writable temp dir")),
    );
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!(
        "{:<44} {:>12} {:>14} {:>10}",
        "binary, --stdout > /dev/null", "events", "events/s", "peak MB"
    );
    for (users, end, shape) in [
        ("100000", "2026-01-06T00:00:00", "100,000 users, 1 day"),
        ("1000000", "2026-01-06T00:00:00", "1,000,000 users, 1 day"),
        ("20000", "2026-02-04T00:00:00", "20,000 users, 30 days"),
        ("2000", "2027-01-05T00:00:00", "2,000 users, 365 days"),
    ] {
        binary(users, end, shape);
    }
}

fn measure(name: &str, world: &World, threads: usize, sink: impl Fn() -> Box<dyn Sink>) {
    let options = Options {
        threads,
        pacing: None,
    };
    let mut best: Option<(f64, u64, u64)> = None;
    for _ in 0..3 {
        let mut sink = sink();
        let began = Instant::now();
        let summary = engine::run(
            world,
            &options,
            sink.as_mut(),
            &AtomicBool::new(false),
            &mut Quiet,
        )
        .expect("the run completes");
        let seconds = began.elapsed().as_secs_f64();
        let run = (
            seconds,
            summary.counts.total_events(),
            summary.counts.total_bytes(),
        );
        if best.is_none_or(|b| run.0 < b.0) {
            best = Some(run);
        }
    }
    if let Some((seconds, events, bytes)) = best {
        println!(
            "{name:<44} {events:>12} {:>14.0} {:>10.0}",
            events as f64 / seconds,
            bytes as f64 / seconds / 1e6
        );
    }
}

/// Runs the release binary and reads its summary line for the rate and peak memory.
fn binary(users: &str, end: &str, shape: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(["-n", users, "-s", START, "-e", end, "--stdout"])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("the simulator binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary = stderr
        .lines()
        .find(|l| l.contains(": done: "))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let field = |before: &str, after: &str| -> String {
        summary
            .split(before)
            .nth(1)
            .and_then(|rest| rest.split(after).next())
            .unwrap_or("?")
            .replace(',', "")
    };
    println!(
        "{:<44} {:>12} {:>14} {:>10}",
        shape,
        field("done: ", " events"),
        field("s (", "/s)"),
        field("peak memory ", " MB"),
    );
}
