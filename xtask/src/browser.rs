//! Headless Chromium (Debian's `chromium` package, which `cargo xtask ci` installs) for
//! the dashboard's tests: the page's DOM after its scripts ran, every console message it
//! printed, and screenshots.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What a page left behind once its scripts ran.
#[derive(Debug)]
pub struct Loaded {
    /// The DOM, serialized.
    pub dom: String,
    /// Every console message and uncaught error, as Chromium logged them.
    pub console: Vec<String>,
}

/// The Chromium binary: `$CHROMIUM`, else `chromium` on the PATH.
pub fn chromium() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    crate::process::on_path("chromium").context(
        "Chromium is not installed: `cargo xtask ci` installs Debian's chromium package (or set CHROMIUM to a Chromium binary)",
    )
}

fn headless(profile: &Path) -> Result<Command> {
    let mut command = Command::new(chromium()?);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        // Scripts get this much (virtual) time before the DOM is read or the picture taken.
        "--virtual-time-budget=10000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    Ok(command)
}

/// Opens `url`, lets its scripts run, and returns the DOM and the console.
pub fn load(url: &str, profile: &Path) -> Result<Loaded> {
    let output = headless(profile)?
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom", url])
        .output()
        .context("starting Chromium")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("Chromium failed on {url} ({}):\n{stderr}", output.status);
    }
    Ok(Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    })
}

/// A PNG of `url` in a window of `width` by `height` pixels.
pub fn screenshot(url: &str, png: &Path, width: u32, height: u32, profile: &Path) -> Result<()> {
    let output = headless(profile)?
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .context("starting Chromium")?;
    if !output.status.success() || !png.is_file() {
        bail!(
            "Chromium took no screenshot of {url} ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
