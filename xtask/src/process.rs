//! Background services (the Kafka broker, the BigQuery emulator, the pipeline): their
//! pid files, liveness, stopping, the tail of their logs for error messages, and one
//! plain HTTP request to their endpoints; and the tools around them: finding a program,
//! running a command, a Python virtual environment of pinned packages.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The pid in `pid_file`, if that process is alive.
pub fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    alive(pid).then_some(pid)
}

/// Whether something accepts connections on this port of 127.0.0.1.
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

pub fn alive(pid: u32) -> bool {
    // A zombie has exited even though its pid still exists.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn signal(pid: u32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() && alive(pid) {
        bail!("kill -{name} {pid} failed: {status}");
    }
    Ok(())
}

/// Asks a process to end (SIGTERM) and kills it if it has not within `patience`.
pub fn stop(pid: u32, patience: Duration) -> Result<()> {
    signal(pid, "TERM")?;
    let started = Instant::now();
    while alive(pid) {
        if started.elapsed() > patience {
            println!("no clean exit after {patience:?}; killing pid {pid}");
            signal(pid, "KILL")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The last lines of a log, for error messages.
pub fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One HTTP request to 127.0.0.1:`port`, with `body` as JSON unless it is empty: the
/// status code, whatever it is, and the whole body.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    request(port, method, path, body, None)
}

/// Whether a GET of `path` on 127.0.0.1:`port` answers 200 within two seconds: a
/// readiness probe, which a service that accepts connections but hangs must fail.
pub fn serves_ok(port: u16, path: &str) -> bool {
    request(port, "GET", path, "", Some(Duration::from_secs(2)))
        .is_ok_and(|(status, _)| status == 200)
}

/// [`http`], given up after `within` when that is set.
fn request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    within: Option<Duration>,
) -> Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(within)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    let answer = if body.is_empty() {
        agent.run(request.body(())?)
    } else {
        agent.run(
            request
                .header("Content-Type", "application/json")
                .body(body)?,
        )
    };
    let doing = || format!("{method} {path} on 127.0.0.1:{port}");
    let mut answer = answer.with_context(doing)?;
    let status = answer.status().as_u16();
    let text = answer
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .with_context(doing)?;
    Ok((status, text))
}

/// The sum of a metric's series on a pipeline's `/metrics` at 127.0.0.1:`port`; `None`
/// when it does not answer or has no such series. `name` may give the first labels of
/// the series wanted, as in `pipeline_retries_total{what="warehouse"}`.
pub fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http(port, "GET", "/metrics", "").ok()?;
    let (prefix, next): (&str, &[char]) = match name.strip_suffix('}') {
        Some(labelled) => (labelled, &['}', ',']),
        None => (name, &[' ', '{']),
    };
    let values: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(next))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// `program` on the PATH.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs `command`, failing with what it was for; its output goes to the terminal.
pub fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot start {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status}); its output is above");
    }
    Ok(())
}

/// One of xtask's background services as its commands see it: its name (in messages,
/// commands and file names), its port, and the folder of its pid file and log.
#[derive(Debug)]
pub struct Service<'a> {
    pub name: &'static str,
    /// What it is, in sentences: "the Cloud Storage emulator".
    pub what: &'static str,
    pub port: u16,
    pub state_dir: &'a Path,
}

impl Service<'_> {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_file(&self) -> PathBuf {
        self.state_dir.join(format!("{}.log", self.name))
    }

    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join(format!("{}.pid", self.name))
    }

    /// Before a start: whether it runs and answers already (`ready`), so that there is
    /// nothing to do; an error when a process of it is alive but does not answer, or
    /// something else holds its port.
    pub fn already_running(&self, ready: bool) -> Result<bool> {
        if let Some(pid) = running_pid(&self.pid_file()) {
            if ready {
                println!(
                    "{}: already running (pid {pid}) at {}",
                    self.name,
                    self.endpoint()
                );
                return Ok(true);
            }
            bail!(
                "a process of {} (pid {pid}) exists but does not answer at {}; run `cargo xtask {} stop` first (log: {})",
                self.what,
                self.endpoint(),
                self.name,
                self.log_file().display()
            );
        }
        if answers(self.port) {
            bail!(
                "port {} is taken by another process; choose another with --port",
                self.port
            );
        }
        fs::create_dir_all(self.state_dir)
            .with_context(|| format!("creating {}", self.state_dir.display()))?;
        Ok(false)
    }

    /// Stops it if it runs, waiting up to `patience` for a clean exit.
    pub fn stop(&self, patience: Duration) -> Result<()> {
        let Some(pid) = running_pid(&self.pid_file()) else {
            println!("{}: not running", self.name);
            let _ = fs::remove_file(self.pid_file());
            return Ok(());
        };
        println!("{}: stopping (pid {pid})", self.name);
        stop(pid, patience)?;
        let _ = fs::remove_file(self.pid_file());
        println!("{}: stopped", self.name);
        Ok(())
    }

    /// Prints its state (with `detail` after the endpoint); an error when it is not
    /// running, for scripts.
    pub fn status(&self, ready: bool, detail: &str) -> Result<()> {
        match running_pid(&self.pid_file()) {
            Some(pid) if ready => {
                println!(
                    "{}: running (pid {pid}) at {}{detail}; log: {}",
                    self.name,
                    self.endpoint(),
                    self.log_file().display()
                );
                Ok(())
            }
            Some(pid) => bail!(
                "{}: process {pid} is alive but does not answer at {}",
                self.name,
                self.endpoint()
            ),
            None => bail!(
                "{}: not running (state in {})",
                self.name,
                self.state_dir.display()
            ),
        }
    }
}

/// Starts `command` in the background in a process group of its own (so that Ctrl-C in
/// this terminal does not reach it), its output in `log` and its pid in `pid_file`, and
/// waits until `ready` says it answers. `what` names it in messages.
pub fn start_detached(
    command: &mut Command,
    what: &str,
    log: &Path,
    pid_file: &Path,
    timeout: Duration,
    ready: impl Fn() -> bool,
) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    use std::process::Stdio;
    let log_file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    fs::write(pid_file, child.id().to_string())?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        if !alive(child.id()) {
            bail!(
                "{what} exited during start-up; read {}\n{}",
                log.display(),
                tail(log)
            );
        }
        if ready() {
            println!("{what}: ready after {:.1?}", started.elapsed());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!(
        "{what} did not answer within {timeout:?}; read {}\n{}",
        log.display(),
        tail(log)
    )
}

/// A virtual environment in `dir/venv` holding `packages` (pinned), created and filled
/// the first time and again whenever the pins change; `finish` completes it before it
/// counts as installed. `what` names it in the progress line.
pub fn python_venv(
    dir: &Path,
    packages: &[&str],
    what: &str,
    finish: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let stamp = dir.join("installed");
    let pins = packages.join("\n");
    if fs::read_to_string(&stamp).is_ok_and(|text| text == pins) {
        return Ok(venv);
    }
    println!("installing {what} from PyPI into {} (once)", venv.display());
    let _ = fs::remove_dir_all(&venv);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (is python3-venv installed?)",
    )?;
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
        &format!("pip install of {what}"),
    )?;
    finish(&venv)?;
    fs::write(&stamp, pins)?;
    Ok(venv)
}
