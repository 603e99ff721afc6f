//! `cargo xtask dashboard`: a warehouse's KPIs as one self-contained HTML page, drawn by
//! `pipeline dashboard`, and on request a screenshot of it from headless Chromium.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use xtask::process;

use crate::{build_binaries, project_root};

#[derive(Debug)]
pub struct Dashboard {
    /// Where the KPIs come from: `--duckdb PATH` or `--bigquery ...`, passed on as given.
    pub source: Vec<String>,
    pub out: PathBuf,
    pub periods: Vec<String>,
    pub screenshot: Option<PathBuf>,
}

impl Default for Dashboard {
    fn default() -> Dashboard {
        Dashboard {
            source: Vec::new(),
            out: PathBuf::from("data/dashboard.html"),
            periods: Vec::new(),
            screenshot: None,
        }
    }
}

/// The BigQuery emulator `cargo xtask up` starts, as `pipeline` flags.
pub fn emulator_flags() -> Vec<String> {
    [
        "--bigquery-endpoint",
        "http://127.0.0.1:9050/bigquery/v2",
        "--bigquery-auth",
        "none",
    ]
    .map(str::to_owned)
    .to_vec()
}

pub fn run(dashboard: &Dashboard) -> Result<()> {
    let bins = build_binaries(false)?;
    let root = project_root();
    let out = root.join(&dashboard.out);
    let mut command = Command::new(&bins.pipeline);
    command
        .current_dir(&root)
        .arg("dashboard")
        .args(&dashboard.source)
        .arg("--out")
        .arg(&out);
    for period in &dashboard.periods {
        command.args(["--period", period]);
    }
    process::run(&mut command, "pipeline dashboard")?;
    if let Some(png) = &dashboard.screenshot {
        let png = root.join(png);
        let profile = std::env::temp_dir().join(format!("xtask-chromium-{}", std::process::id()));
        xtask::browser::screenshot(
            &format!("file://{}", out.display()),
            &png,
            1440,
            1250,
            &profile,
        )?;
        let _ = std::fs::remove_dir_all(profile);
        println!("dashboard: screenshot {}", png.display());
    }
    println!(
        "dashboard: open file://{} in a browser (no network needed)",
        out.display()
    );
    Ok(())
}
