//! `cargo xtask emulator start|stop|status`: a BigQuery API emulator for tests, PyPI's
//! `bqemulator` (REST and gRPC over an embedded DuckDB), installed once into a virtual
//! environment in the cache folder and started in the background like the broker.
//!
//! It starts without network access when pinned as below, with the spatial extension of
//! `duckdb-extension-spatial` copied where DuckDB 1.5.5 looks for extensions.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::kafka::cache_dir;
use crate::process;

/// Every package pinned, so that an install today is the install of any later day.
const PACKAGES: [&str; 4] = [
    "bqemulator==1.4.0",
    "duckdb==1.5.5",
    "duckdb-extension-spatial==1.5.5",
    "numpy==2.4.6",
];
const DUCKDB_VERSION: &str = "v1.5.5";
const DEFAULT_PORT: u16 = 9050;
/// The project id requests use when they name none.
pub const PROJECT: &str = "music-analytics";
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and how to run one emulator.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// REST port; gRPC listens ten ports above.
    pub port: u16,
    /// Log and pid file of this emulator.
    pub state_dir: PathBuf,
}

impl Emulator {
    pub fn new(port: Option<u16>, state_dir: Option<PathBuf>) -> Emulator {
        let port = port.unwrap_or(DEFAULT_PORT);
        let state_dir =
            state_dir.unwrap_or_else(|| cache_dir().join(format!("bqemulator/emulator-{port}")));
        Emulator { port, state_dir }
    }

    /// The REST endpoint, as BigQuery clients take it.
    pub fn endpoint(&self) -> String {
        self.service().endpoint()
    }

    /// The Storage Write API's gRPC endpoint, ten ports above.
    pub fn write_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port + 10)
    }

    fn service(&self) -> process::Service<'_> {
        process::Service {
            name: "emulator",
            what: "the BigQuery emulator",
            port: self.port,
            state_dir: &self.state_dir,
        }
    }

    pub fn start(&self) -> Result<()> {
        let service = self.service();
        if service.already_running(self.ready())? {
            return Ok(());
        }
        let venv = ensure_installed()?;
        println!(
            "emulator: starting the BigQuery emulator at {} (log: {})",
            self.endpoint(),
            service.log_file().display()
        );
        process::start_detached(
            Command::new(venv.join("bin/bqemulator"))
                .args([
                    "start",
                    "--ephemeral",
                    "--project",
                    PROJECT,
                    "--log-format",
                    "json",
                ])
                .args(["--rest-port", &self.port.to_string()])
                .args(["--grpc-port", &(self.port + 10).to_string()]),
            "the BigQuery emulator",
            &service.log_file(),
            &service.pid_file(),
            START_TIMEOUT,
            || self.ready(),
        )
    }

    /// One REST call to the emulator: the status code and the body.
    pub fn call(&self, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
        process::http(self.port, method, path, body)
            .with_context(|| format!("calling the emulator at {}", self.endpoint()))
    }

    /// Runs GoogleSQL in the emulator's project and returns the whole response; a failed
    /// query is an error with the emulator's message.
    pub fn query(&self, sql: &str) -> Result<serde_json::Value> {
        let body =
            serde_json::json!({"query": sql, "useLegacySql": false, "maxResults": 1_000_000});
        let (status, text) = self.call(
            "POST",
            &format!("/bigquery/v2/projects/{PROJECT}/queries"),
            &body.to_string(),
        )?;
        let response: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("the emulator answered {status} with: {text}"))?;
        if status != 200
            || response
                .get("errors")
                .is_some_and(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        {
            bail!("the emulator refused {sql:?}: {text}");
        }
        Ok(response)
    }

    /// Whether the REST API answers a request (listing the project's datasets).
    fn ready(&self) -> bool {
        process::serves_ok(
            self.port,
            &format!("/bigquery/v2/projects/{PROJECT}/datasets"),
        )
    }

    pub fn stop(&self) -> Result<()> {
        self.service().stop(STOP_TIMEOUT)
    }

    /// Prints the emulator's state; an error when it is not running, for scripts.
    pub fn status(&self) -> Result<()> {
        self.service().status(self.ready(), "")
    }
}

/// The virtual environment with the emulator, created and filled the first time.
pub fn ensure_installed() -> Result<PathBuf> {
    process::python_venv(
        &cache_dir().join("bqemulator"),
        &PACKAGES,
        "the BigQuery emulator",
        install_spatial_extension,
    )
}

/// DuckDB loads the spatial extension from `~/.duckdb/extensions/<version>/<platform>/`
/// and would otherwise try to download it.
fn install_spatial_extension(venv: &Path) -> Result<()> {
    let found = find(venv, "spatial.duckdb_extension")
        .context("the duckdb-extension-spatial package has no spatial.duckdb_extension")?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let target =
        PathBuf::from(home).join(format!(".duckdb/extensions/{DUCKDB_VERSION}/linux_amd64"));
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    fs::copy(&found, target.join("spatial.duckdb_extension"))
        .with_context(|| format!("copying {} into {}", found.display(), target.display()))?;
    Ok(())
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir()
            && !path.is_symlink()
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

/// An emulator for one test: on a free port, with its own state folder, stopped and
/// removed when dropped however the test ends.
#[derive(Debug)]
pub struct ScratchEmulator(Emulator);

impl ScratchEmulator {
    pub fn start(name: &str) -> Result<ScratchEmulator> {
        let port = loop {
            let port = crate::kafka::free_port_pair();
            if port < u16::MAX - 10 && !process::answers(port + 10) {
                break port;
            }
        };
        let state_dir = std::env::temp_dir().join(format!("{name}-bqemulator-{port}"));
        let _ = fs::remove_dir_all(&state_dir);
        let scratch = ScratchEmulator(Emulator::new(Some(port), Some(state_dir)));
        scratch.0.start()?;
        Ok(scratch)
    }

    pub fn emulator(&self) -> &Emulator {
        &self.0
    }
}

impl Drop for ScratchEmulator {
    fn drop(&mut self) {
        let _ = self.0.stop();
        let _ = fs::remove_dir_all(&self.0.state_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compose_image_pins_what_the_tests_install() {
        let dockerfile = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/docker/bqemulator.Dockerfile"),
        )
        .unwrap();
        for package in PACKAGES {
            assert!(
                dockerfile.contains(package),
                "{package} is not pinned there"
            );
        }
        assert!(dockerfile.contains(&format!("extensions/{DUCKDB_VERSION}/linux_amd64")));
    }
}
