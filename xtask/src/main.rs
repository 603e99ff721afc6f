//! `cargo xtask`: every task of the repository, as plain Rust that shells out readably.

mod bench;
mod ci;
mod codegen;
mod dashboard;
mod demo;
mod duckdb;
mod infra;
mod tidy;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lexopt::ValueExt as _;
use xtask::{emulator, gcs, kafka};

const HELP: &str = "\
cargo xtask <command>

Commands:
  codegen [--check]   Write the generated DDL, schemas and KPI views under
                      warehouse/ddl/ and the dashboard map's land cells; with --check,
                      fail instead if any of them is stale.
  kafka start|stop|status [--port N] [--state-dir DIR]
                      A real single-node Kafka broker (KRaft) on 127.0.0.1, from
                      Maven Central's jars (fetched once). Default port 9092; the
                      controller listens on the next port.
  kafka topics [--port N] -- ARGS...
                      Kafka's own topic tool against that broker, for example
                      `cargo xtask kafka topics -- --list`.
  emulator start|stop|status [--port N] [--state-dir DIR]
                      A BigQuery API emulator (PyPI's bqemulator, installed once into
                      a virtual environment in the cache) on 127.0.0.1, default REST
                      port 9050 (gRPC ten above), project music-analytics.
  gcs start|stop|status [--port N] [--state-dir DIR]
                      A Cloud Storage API emulator (fsouza's fake-gcs-server, built
                      once with Go from the module proxy; in memory) on 127.0.0.1,
                      default port 9023, with the bucket music-analytics-local.
  demo [--users N] [--days D] [--seed S] [--out PATH]
                      The main job, embedded: simulate (default 2,000 users, 59 days
                      from 2026-01-01: January and February, seed 1), stream through
                      the pipeline into DuckDB (default data/warehouse.duckdb), print
                      what landed and draw the dashboard (data/dashboard.html).
  dashboard [--duckdb PATH | --bigquery PROJECT.DATASET [--emulator]] [--out FILE]
            [--period P]... [--screenshot PNG]
                      The KPIs as one self-contained HTML page (default
                      data/dashboard.html from data/warehouse.duckdb): every period
                      with data, or the given ones (all, 2026-Q1, 2026-01,
                      2026-01-05..2026-01-11). --bigquery reads BigQuery with
                      application-default credentials (or --bigquery-auth MODE);
                      --emulator reads the local emulator instead. --screenshot
                      also saves a picture from headless Chromium.
  duckdb              Fetch DuckDB's official prebuilt C library (npm's
                      @duckdb/node-bindings-linux-x64, checked against a pinned
                      SHA-256) into .duckdb/lib, where the build links it from. Every
                      command that builds does this first.
  e2e [--users N] [--days D] [--seed S]
                      End to end against a real broker and the BigQuery emulator:
                      simulate (default 500 users, 5 days, seed 7) into Kafka with
                      malformed messages, consume into DuckDB and BigQuery, check that
                      nothing is lost or duplicated and both agree, then again with the
                      pipeline killed three times. Logs and warehouses in data/e2e/.
  bench [--users N]   The release binaries measured: the simulator (default 100,000
                      users, one day) into a null sink, files and Kafka; the transform
                      per core; the pipeline from Kafka and from files into DuckDB, for
                      N users and N/10. One table of events/s and peak memory, one of
                      checkpoint sizes and times and of resuming N users' checkpoint.
  up [--native] [--users N] [--speed X]
                      The full environment in the background: the broker, the
                      BigQuery emulator, the simulator in real time (default 1,000
                      users at 60x) and the pipeline into DuckDB (data/live.duckdb) and
                      into the emulator, with /metrics and the live /dashboard on ports
                      9464 and 9465. Prints where everything is.
  up --docker         The same stack in containers: infra/compose.yaml (needs Docker
                      with the compose plugin), plus Kafka UI on 8080.
  up --gcp --project P [--region R] [--env dev|prod]
                      Terraform apply of the environment, images built and pushed to
                      its Artifact Registry, Strimzi and the gcp overlay applied to its
                      GKE cluster (needs gcloud, docker and kubectl, logged in).
  down                Stops everything `up` started (for --gcp: the workloads; the
                      cloud resources stay until `infra destroy`).
  infra check         The offline checks of infra/: terraform fmt and validate,
                      every kustomization rendered and validated against the Kubernetes
                      and Strimzi schemas, docker compose config, the Airflow DAG test.
                      What cannot run here is skipped with the reason.
  infra plan|apply|destroy --project P [--env dev|prod] [--region R]
                      Terraform for an environment, its state in gs://P-tfstate.
  ci                  Every check CI runs: fmt, clippy, codegen --check, infra check,
                      all tests, e2e. Installs missing toolchain components first.
  help                This text.
";

fn main() -> ExitCode {
    xtask::exit_code(run())
}

fn run() -> Result<()> {
    let mut args = lexopt::Parser::from_env();
    let command = match args.next().context("reading the command line")? {
        Some(lexopt::Arg::Value(command)) => command.string()?,
        Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h')) | None => {
            print!("{HELP}");
            return Ok(());
        }
        Some(other) => bail!("{}\n\n{HELP}", other.unexpected()),
    };
    match command.as_str() {
        "codegen" => {
            let mut check = false;
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("check") => check = true,
                    other => bail!("codegen: {}", other.unexpected()),
                }
            }
            codegen::run(check)
        }
        "kafka" => {
            let action = match args.next()? {
                Some(lexopt::Arg::Value(action)) => action.string()?,
                _ => bail!("kafka: expected start, stop, status or topics"),
            };
            let (mut port, mut state_dir, mut rest) = (None, None, Vec::new());
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("port") => port = Some(args.value()?.parse()?),
                    lexopt::Arg::Long("state-dir") => state_dir = Some(args.value()?.into()),
                    // Everything after `--` goes to Kafka's topic tool.
                    lexopt::Arg::Value(value) if action == "topics" => rest.push(value.string()?),
                    other => bail!("kafka: {}", other.unexpected()),
                }
            }
            let broker = kafka::Broker::new(port, state_dir);
            match action.as_str() {
                "start" => broker.start(),
                "stop" => broker.stop(),
                "status" => broker.status(),
                "topics" => broker.topics_command(&rest),
                other => {
                    bail!("kafka: unknown action `{other}`; expected start, stop, status or topics")
                }
            }
        }
        "emulator" => {
            let (action, port, state_dir) = service_args(&mut args, "emulator")?;
            let emulator = emulator::Emulator::new(port, state_dir);
            match action.as_str() {
                "start" => emulator.start(),
                "stop" => emulator.stop(),
                _ => emulator.status(),
            }
        }
        "gcs" => {
            let (action, port, state_dir) = service_args(&mut args, "gcs")?;
            let gcs = gcs::Gcs::new(port, state_dir);
            match action.as_str() {
                "start" => gcs.start(),
                "stop" => gcs.stop(),
                _ => gcs.status(),
            }
        }
        "ci" => {
            no_more_args(&mut args, "ci")?;
            ci::run()
        }
        "up" => {
            let mut up = up::Up::default();
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("native") => up.mode = up::Mode::Native,
                    lexopt::Arg::Long("docker") => up.mode = up::Mode::Docker,
                    lexopt::Arg::Long("gcp") => up.mode = up::Mode::Gcp,
                    lexopt::Arg::Long("users") => up.users = args.value()?.parse()?,
                    lexopt::Arg::Long("speed") => up.speed = args.value()?.parse()?,
                    lexopt::Arg::Long("env") => up.gcp.env = args.value()?.string()?,
                    lexopt::Arg::Long("project") => up.gcp.project = args.value()?.string()?,
                    lexopt::Arg::Long("region") => up.gcp.region = args.value()?.string()?,
                    other => bail!("up: {}", other.unexpected()),
                }
            }
            up::up(&up)
        }
        "infra" => {
            let action = match args.next()? {
                Some(lexopt::Arg::Value(action)) => action.string()?,
                _ => bail!("infra: expected check, plan, apply or destroy"),
            };
            let mut target = infra::Target {
                env: "dev".to_owned(),
                project: std::env::var("GOOGLE_CLOUD_PROJECT").unwrap_or_default(),
                region: "us-central1".to_owned(),
            };
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("env") => target.env = args.value()?.string()?,
                    lexopt::Arg::Long("project") => target.project = args.value()?.string()?,
                    lexopt::Arg::Long("region") => target.region = args.value()?.string()?,
                    other => bail!("infra: {}", other.unexpected()),
                }
            }
            let action = match action.as_str() {
                "check" => return infra::check(),
                "plan" => infra::Action::Plan,
                "apply" => infra::Action::Apply,
                "destroy" => infra::Action::Destroy,
                other => {
                    bail!("infra: unknown action `{other}`; expected check, plan, apply or destroy")
                }
            };
            if target.project.is_empty() {
                bail!(
                    "infra {action:?}: name the GCP project with --project (or GOOGLE_CLOUD_PROJECT)"
                );
            }
            infra::terraform_action(&target, action)
        }
        "down" => {
            no_more_args(&mut args, "down")?;
            up::down()
        }
        "bench" => {
            let mut bench = bench::Bench::default();
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("users") => bench.users = args.value()?.parse()?,
                    other => bail!("bench: {}", other.unexpected()),
                }
            }
            bench::run(&bench)
        }
        "duckdb" => {
            no_more_args(&mut args, "duckdb")?;
            duckdb::ensure_library().map(drop)
        }
        "e2e" => {
            let mut flags = Vec::new();
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long(flag @ ("users" | "days" | "seed")) => {
                        let flag = format!("--{flag}");
                        let value: u64 = args.value()?.parse()?;
                        flags.extend([flag, value.to_string()]);
                    }
                    other => bail!("e2e: {}", other.unexpected()),
                }
            }
            e2e(&flags)
        }
        "dashboard" => {
            let mut dashboard = dashboard::Dashboard::default();
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long(
                        flag @ ("duckdb" | "bigquery" | "bigquery-endpoint" | "bigquery-auth"),
                    ) => {
                        let flag = format!("--{flag}");
                        dashboard.source.push(flag);
                        dashboard.source.push(args.value()?.string()?);
                    }
                    lexopt::Arg::Long("emulator") => {
                        dashboard.source.extend(dashboard::emulator_flags());
                    }
                    lexopt::Arg::Long("out") => dashboard.out = args.value()?.into(),
                    lexopt::Arg::Long("period") => {
                        dashboard.periods.push(args.value()?.string()?);
                    }
                    lexopt::Arg::Long("screenshot") => {
                        dashboard.screenshot = Some(args.value()?.into());
                    }
                    other => bail!("dashboard: {}", other.unexpected()),
                }
            }
            dashboard::run(&dashboard)
        }
        "demo" => {
            let mut demo = demo::Demo::default();
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("users") => demo.users = args.value()?.parse()?,
                    lexopt::Arg::Long("days") => demo.days = args.value()?.parse()?,
                    lexopt::Arg::Long("seed") => demo.seed = args.value()?.parse()?,
                    lexopt::Arg::Long("out") => demo.out = args.value()?.into(),
                    other => bail!("demo: {}", other.unexpected()),
                }
            }
            demo::run(&demo)
        }
        "help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// The action (start, stop or status) and the `--port` and `--state-dir` of a
/// background service's command.
fn service_args(
    args: &mut lexopt::Parser,
    command: &str,
) -> Result<(String, Option<u16>, Option<PathBuf>)> {
    let action = match args.next()? {
        Some(lexopt::Arg::Value(action)) => action.string()?,
        _ => bail!("{command}: expected start, stop or status"),
    };
    if !["start", "stop", "status"].contains(&action.as_str()) {
        bail!("{command}: unknown action `{action}`; expected start, stop or status");
    }
    let (mut port, mut state_dir) = (None, None);
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("port") => port = Some(args.value()?.parse()?),
            lexopt::Arg::Long("state-dir") => state_dir = Some(args.value()?.into()),
            other => bail!("{command}: {}", other.unexpected()),
        }
    }
    Ok((action, port, state_dir))
}

fn no_more_args(args: &mut lexopt::Parser, command: &str) -> Result<()> {
    match args.next()? {
        Some(arg) => bail!("{command}: {}", arg.unexpected()),
        None => Ok(()),
    }
}

/// A cargo command without the variables `cargo run` gave xtask about its own package
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …). A nested cargo would inherit them, and
/// build scripts that watch them (ring's does) would see a change whenever the
/// checkout's folder changes, then rebuild everything after them, DuckDB's C++ included.
fn nested_cargo(mut cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    for (key, _) in std::env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        let per_package = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "CARGO_PRIMARY_PACKAGE";
        if per_package {
            cmd = cmd.env_remove(&key);
        }
    }
    cmd
}

/// The `cargo xtask e2e` run: the e2e binary of the dev build, with the checkout's
/// `data/e2e` as its work folder.
fn e2e(flags: &[String]) -> Result<()> {
    let bins = build_binaries(false)?;
    let work = project_root().join("data/e2e");
    let status = std::process::Command::new(&bins.e2e)
        .args(flags)
        .arg("--work")
        .arg(&work)
        .status()
        .with_context(|| format!("starting {}", bins.e2e.display()))?;
    if !status.success() {
        bail!("the end-to-end run failed ({status}); its output is above");
    }
    Ok(())
}

/// The binaries of one build.
struct Binaries {
    simulator: PathBuf,
    pipeline: PathBuf,
    e2e: PathBuf,
}

/// Builds every binary any command runs, in the release profile or in the dev profile
/// the tests use, and finds them. It is one `cargo build` of the same packages for every
/// command, and the workspace-hack crate gives it the features the tests resolve, so
/// that no command builds a C dependency (DuckDB, librdkafka, zlib) a second time.
fn build_binaries(release: bool) -> Result<Binaries> {
    duckdb::ensure_library()?;
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let profile = release.then_some("--release");
    nested_cargo(xshell::cmd!(
        sh,
        "{cargo} build {profile...} --quiet --locked -p simulator -p pipeline -p e2e"
    ))
    .run()
    .context("the build failed; its output is above")?;
    let target = target_dir().join(if release { "release" } else { "debug" });
    let bins = Binaries {
        simulator: target.join("simulator"),
        pipeline: target.join("pipeline"),
        e2e: target.join("e2e"),
    };
    for bin in [&bins.simulator, &bins.pipeline, &bins.e2e] {
        if !bin.exists() {
            bail!("the build left no {}", bin.display());
        }
    }
    Ok(bins)
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, or `target/` in the checkout.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// The repository's root, found from this crate's location rather than the working
/// directory, so `cargo xtask` works from any folder of the checkout.
fn project_root() -> PathBuf {
    // `cargo run` names the manifest's folder at run time too, and that one wins: with a
    // target folder shared by two checkouts (as `.ci/run` shares one), cargo may run an
    // xtask built from the other checkout, whose compile-time path is not this one.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nested_cargo_does_not_inherit_this_packages_variables() {
        // `cargo test` gives this process the same per-package variables as `cargo run`.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let sh = xshell::Shell::new().unwrap();
        let env = super::nested_cargo(xshell::cmd!(sh, "env")).read().unwrap();
        let leaked: Vec<&str> = env
            .lines()
            .filter(|line| line.starts_with("CARGO_MANIFEST_") || line.starts_with("CARGO_PKG_"))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        assert!(
            env.lines().any(|line| line.starts_with("PATH=")),
            "other variables stay"
        );
    }
}
