//! `cargo xtask gcs start|stop|status`: a Cloud Storage API emulator for tests, fsouza's
//! fake-gcs-server (in memory) from the Go module proxy, built once into the cache
//! folder from `xtask/fake-gcs/` and started in the background like the broker.
//!
//! `xtask/fake-gcs/main.go` serves the server's library unchanged and adds the one route
//! of the XML API that `object_store` writes with and the server lacks, forwarding it to
//! the server's own upload with the same precondition (its comment says how).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::kafka::cache_dir;
use crate::process;

const DEFAULT_PORT: u16 = 9023;
/// The bucket the emulator starts with.
pub const BUCKET: &str = "music-analytics-local";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and how to run one emulator.
#[derive(Debug, Clone)]
pub struct Gcs {
    pub port: u16,
    /// Log and pid file of this emulator.
    pub state_dir: PathBuf,
}

impl Gcs {
    pub fn new(port: Option<u16>, state_dir: Option<PathBuf>) -> Gcs {
        let port = port.unwrap_or(DEFAULT_PORT);
        let state_dir =
            state_dir.unwrap_or_else(|| cache_dir().join(format!("gcs-emulator/gcs-{port}")));
        Gcs { port, state_dir }
    }

    /// The API's base, as clients take it.
    pub fn endpoint(&self) -> String {
        self.service().endpoint()
    }

    /// A service-account key that points `object_store` at this emulator without OAuth:
    /// the value of `GOOGLE_SERVICE_ACCOUNT_KEY`, the way the pipeline reads credentials
    /// from its environment in production too.
    pub fn service_account_key(&self) -> String {
        serde_json::json!({
            "private_key": "unused",
            "private_key_id": "unused",
            "client_email": "emulator@music-analytics.local",
            "disable_oauth": true,
            "gcs_base_url": self.endpoint(),
        })
        .to_string()
    }

    fn service(&self) -> process::Service<'_> {
        process::Service {
            name: "gcs",
            what: "the Cloud Storage emulator",
            port: self.port,
            state_dir: &self.state_dir,
        }
    }

    pub fn start(&self) -> Result<()> {
        let service = self.service();
        if service.already_running(self.ready())? {
            return Ok(());
        }
        let program = ensure_built()?;
        println!(
            "gcs: starting the Cloud Storage emulator at {} with bucket {BUCKET} (log: {})",
            self.endpoint(),
            service.log_file().display()
        );
        process::start_detached(
            Command::new(program)
                .args(["-port", &self.port.to_string()])
                .args(["-bucket", BUCKET]),
            "the Cloud Storage emulator",
            &service.log_file(),
            &service.pid_file(),
            START_TIMEOUT,
            || self.ready(),
        )
    }

    /// Whether the emulator lists the bucket it starts with.
    fn ready(&self) -> bool {
        process::serves_ok(self.port, &format!("/storage/v1/b/{BUCKET}"))
    }

    pub fn stop(&self) -> Result<()> {
        self.service().stop(STOP_TIMEOUT)
    }

    /// Prints the emulator's state; an error when it is not running, for scripts.
    pub fn status(&self) -> Result<()> {
        self.service()
            .status(self.ready(), &format!(", bucket {BUCKET}"))
    }
}

/// The emulator's program, built the first time and whenever its sources change (the
/// folder is named after a digest of them).
pub fn ensure_built() -> Result<PathBuf> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-gcs");
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    for name in ["main.go", "go.mod", "go.sum"] {
        let path = sources.join(name);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        digest = bytes.iter().fold(digest, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    }
    let program = cache_dir().join(format!("fake-gcs/{digest:016x}/fake-gcs"));
    if program.is_file() {
        return Ok(program);
    }
    if process::on_path("go").is_none() {
        bail!(
            "the Cloud Storage emulator is built with Go, which is not on the PATH; install Go 1.26 or later"
        );
    }
    println!(
        "building the Cloud Storage emulator (fake-gcs-server, Go) into {} (once)",
        program.display()
    );
    process::run(
        Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&program)
            .arg(".")
            .current_dir(&sources)
            // The toolchain of the machine, never one fetched because go.mod asks.
            .env("GOTOOLCHAIN", "local"),
        "go build of the Cloud Storage emulator",
    )?;
    Ok(program)
}

/// An emulator for one test: on a free port, with its own state folder, stopped and
/// removed when dropped however the test ends.
#[derive(Debug)]
pub struct ScratchGcs(Gcs);

impl ScratchGcs {
    pub fn start(name: &str) -> Result<ScratchGcs> {
        let port = crate::kafka::free_port_pair();
        let state_dir = std::env::temp_dir().join(format!("{name}-gcs-{port}"));
        let _ = fs::remove_dir_all(&state_dir);
        let scratch = ScratchGcs(Gcs::new(Some(port), Some(state_dir)));
        scratch.0.start()?;
        Ok(scratch)
    }

    pub fn gcs(&self) -> &Gcs {
        &self.0
    }
}

impl Drop for ScratchGcs {
    fn drop(&mut self) {
        let _ = self.0.stop();
        let _ = fs::remove_dir_all(&self.0.state_dir);
    }
}
