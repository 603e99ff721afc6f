//! `cargo xtask demo`: the main job on the embedded default. Simulates users, streams
//! their events through the pipeline into a DuckDB file, prints what landed and draws
//! the dashboard.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use warehouse::time::civil_from_days;
use xshell::{Shell, cmd};

use crate::{build_binaries, project_root};

/// The demo's simulated time starts here, so that it is the same on any day.
const START_DAY: i64 = 20_454; // 2026-01-01

#[derive(Debug)]
pub struct Demo {
    pub users: u32,
    pub days: u32,
    pub seed: u64,
    pub out: PathBuf,
    pub dashboard: PathBuf,
}

impl Default for Demo {
    fn default() -> Demo {
        Demo {
            users: 2_000,
            // January and February whole: the month-over-month figures, the monthly
            // charts and the state-by-month table need two months to say anything.
            days: 59,
            seed: 1,
            out: PathBuf::from("data/warehouse.duckdb"),
            dashboard: PathBuf::from("data/dashboard.html"),
        }
    }
}

fn date(epoch_day: i64) -> String {
    let (y, m, d) = civil_from_days(epoch_day);
    format!("{y:04}-{m:02}-{d:02}T00:00:00")
}

pub fn run(demo: &Demo) -> Result<()> {
    if demo.users == 0 || demo.days == 0 {
        bail!("demo: --users and --days must be at least 1");
    }
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    let began = Instant::now();
    let events = PathBuf::from("data/demo-events");
    let out = &demo.out;
    let (users, seed) = (demo.users.to_string(), demo.seed.to_string());
    let (start, end) = (date(START_DAY), date(START_DAY + i64::from(demo.days)));

    let mut bins = None;
    step(1, "build the simulator and the pipeline", || {
        bins = Some(build_binaries(false)?);
        Ok(())
    })?;
    let bins = bins.context("the build step built nothing")?;
    let (simulator, pipeline) = (&bins.simulator, &bins.pipeline);
    step(
        2,
        &format!("simulate {users} users from {start} to {end} (seed {seed})"),
        || {
            let _ = std::fs::remove_dir_all(sh.current_dir().join(&events));
            cmd!(
                sh,
                "{simulator} -n {users} -s {start} -e {end} -r {seed} --output-dir {events}"
            )
            .run()
            .context("the simulator failed; its message is above")
        },
    )?;
    step(
        3,
        &format!(
            "stream the events through the pipeline into {}",
            out.display()
        ),
        || {
            // A fresh warehouse: the demo's output is a function of its flags alone.
            for suffix in ["", ".wal"] {
                let mut path = sh.current_dir().join(out).into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
            cmd!(sh, "{pipeline} run --input {events} --duckdb {out}")
                .run()
                .context("the pipeline failed; its message is above")
        },
    )?;
    step(4, "report", || {
        cmd!(sh, "{pipeline} report --duckdb {out}")
            .run()
            .context("the report failed")
    })?;
    let dashboard = &demo.dashboard;
    step(5, "draw the dashboard", || {
        cmd!(sh, "{pipeline} dashboard --duckdb {out} --out {dashboard}")
            .run()
            .context("the dashboard failed; its message is above")
    })?;
    println!(
        "\ndemo: done in {:.0?}. The warehouse is {} — open it with any DuckDB client, e.g.\n  duckdb {} \"SELECT * FROM kpi_top_artists LIMIT 5\"\nThe dashboard is {} — open it in a browser (it needs no network).",
        began.elapsed(),
        project_root().join(out).display(),
        out.display(),
        project_root().join(dashboard).display(),
    );
    Ok(())
}

fn step(n: u32, what: &str, run: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\ndemo [{n}/5] {what}");
    let began = Instant::now();
    run().with_context(|| format!("demo step {n} ({what})"))?;
    println!("demo [{n}/5] done in {:.1?}", began.elapsed());
    Ok(())
}
