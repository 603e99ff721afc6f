//! `cargo xtask up` and `cargo xtask down`: the full environment. Natively (the default),
//! the Kafka broker, the BigQuery emulator, the simulator in real time, and the pipeline
//! into DuckDB and into the emulator, each a background process with a pid file and a
//! log under `data/up/`, stopped again in the reverse order. `--docker` runs the same
//! stack from `infra/compose.yaml`; `--gcp` deploys it to Google Cloud with Terraform
//! and kubectl. `data/up/mode` remembers which, for `down`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::emulator::{Emulator, PROJECT};
use xtask::kafka::Broker;
use xtask::process::{alive, run, running_pid, stop, tail};

use crate::infra::{self, Target};
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
    /// Where `--gcp` deploys.
    pub gcp: Target,
}

impl Default for Up {
    fn default() -> Up {
        Up {
            mode: Mode::Native,
            users: 1_000,
            speed: 60.0,
            gcp: Target {
                env: "dev".to_owned(),
                project: std::env::var("GOOGLE_CLOUD_PROJECT").unwrap_or_default(),
                region: "us-central1".to_owned(),
            },
        }
    }
}

const COMPOSE: &str = "infra/compose.yaml";
/// Strimzi's operator, installed to watch the namespace of our manifests.
const STRIMZI: &str = "https://strimzi.io/install/latest?namespace=music-analytics";

/// The background processes `up` starts besides the broker and the emulator, in order.
const PROCESSES: [&str; 3] = ["simulator", "pipeline-duckdb", "pipeline-bigquery"];

fn state_dir() -> PathBuf {
    project_root().join("data/up")
}

pub fn up(up: &Up) -> Result<()> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    match up.mode {
        Mode::Native => {}
        Mode::Docker => return up_docker(&dir),
        Mode::Gcp => return up_gcp(&up.gcp, &dir),
    }
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
            .args(["--bigquery-write-endpoint", &emulator.write_endpoint()])
            .args(["--bigquery-emulator"])
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

/// Runs `program` with `args` from the repository root, naming the step on failure.
fn step(what: &str, program: &str, args: &[&str]) -> Result<()> {
    println!("up: {what}: {program} {}", args.join(" "));
    run(
        Command::new(program).current_dir(project_root()).args(args),
        what,
    )
}

fn up_docker(dir: &Path) -> Result<()> {
    if !infra::has_compose() {
        bail!(
            "up --docker needs Docker with the compose plugin (`docker compose version` fails here); use --native"
        );
    }
    step(
        "build and start the stack",
        "docker",
        &[
            "compose", "-f", COMPOSE, "up", "--detach", "--build", "--wait",
        ],
    )?;
    std::fs::write(dir.join("mode"), "docker")?;
    println!(
        "\nup: running in Docker ({COMPOSE}).
  dashboard (live)       http://localhost:9464/dashboard (DuckDB), http://localhost:9465/dashboard (emulator)
  Kafka                  localhost:9092; Kafka UI http://localhost:8080
  BigQuery emulator      http://localhost:9050, dataset {PROJECT}.live
  logs                   docker compose -f {COMPOSE} logs --follow
Stop everything with `cargo xtask down`."
    );
    Ok(())
}

fn up_gcp(target: &Target, dir: &Path) -> Result<()> {
    if target.project.is_empty() {
        bail!("up --gcp: name the GCP project with --project (or GOOGLE_CLOUD_PROJECT)");
    }
    infra::terraform_action(target, infra::Action::Apply)?;
    let outputs = infra::outputs(target)?;
    let text = |pointer: &str| infra::output(&outputs, pointer);
    let repository = text("/image_repository")?;
    let (cluster, location) = (text("/cluster/name")?, text("/cluster/location")?);
    let tag = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(project_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "latest".to_owned());
    let registry = repository.split('/').next().unwrap_or_default().to_owned();
    step(
        "let docker push to Artifact Registry",
        "gcloud",
        &["auth", "configure-docker", &registry, "--quiet"],
    )?;
    for image in ["pipeline", "simulator"] {
        let name = format!("{repository}/{image}:{tag}");
        step(
            &format!("build the {image} image"),
            "docker",
            &[
                "build",
                "-f",
                "infra/docker/Dockerfile",
                "--target",
                image,
                "-t",
                &name,
                ".",
            ],
        )?;
        step(
            &format!("push the {image} image"),
            "docker",
            &["push", &name],
        )?;
    }
    step(
        "credentials for the cluster",
        "gcloud",
        &[
            "container",
            "clusters",
            "get-credentials",
            &cluster,
            "--region",
            &location,
            "--project",
            &target.project,
        ],
    )?;
    let overlay_dir = dir.join("gcp");
    infra::write_gcp_overlay(&overlay_dir, &outputs, &tag)?;
    // The namespace first, so that Strimzi's operator can be installed into it.
    step(
        "the namespace",
        "kubectl",
        &["apply", "-f", "infra/k8s/base/namespace.yaml"],
    )?;
    step(
        "the Strimzi operator",
        "kubectl",
        &["apply", "-n", "music-analytics", "-f", STRIMZI],
    )?;
    let overlay_path = overlay_dir.display().to_string();
    step(
        "music-analytics",
        "kubectl",
        &["apply", "-k", &overlay_path],
    )?;
    step(
        "wait for the pipeline",
        "kubectl",
        &[
            "-n",
            "music-analytics",
            "rollout",
            "status",
            "deployment/pipeline",
            "--timeout=15m",
        ],
    )?;
    std::fs::write(dir.join("mode"), "gcp")?;
    println!(
        "\nup: running on GKE cluster {cluster} ({location}), images tagged {tag}.
  dashboard (live)       kubectl -n music-analytics port-forward svc/pipeline 9464, then http://localhost:9464/dashboard
  BigQuery               {dataset}
  logs                   kubectl -n music-analytics logs deployment/pipeline --follow
Stop the workloads with `cargo xtask down`; remove the cloud resources with
`cargo xtask infra destroy --env {env} --project {project}`.",
        dataset = text("/bigquery_dataset")?,
        env = target.env,
        project = target.project,
    );
    Ok(())
}

pub fn down() -> Result<()> {
    let dir = state_dir();
    let mode = std::fs::read_to_string(dir.join("mode")).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join("mode"));
    match mode.trim() {
        "docker" => {
            step(
                "stop the stack",
                "docker",
                &["compose", "-f", COMPOSE, "down"],
            )?;
            println!(
                "down: the Docker stack is stopped (volumes kept; `docker compose -f {COMPOSE} down --volumes` removes them)"
            );
            return Ok(());
        }
        "gcp" => {
            let overlay = dir.join("gcp").display().to_string();
            step(
                "remove the workloads",
                "kubectl",
                &["delete", "-k", &overlay, "--ignore-not-found"],
            )?;
            println!(
                "down: the workloads are removed from GKE; the cloud resources stay until `cargo xtask infra destroy`"
            );
            return Ok(());
        }
        _ => {}
    }
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
