//! `cargo xtask ci`: every check CI runs, in order, each step timed and named on failure.

use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::project_root;

pub fn run() -> Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let started = Instant::now();
    let since = SystemTime::now();

    ensure_prerequisites(&sh, &cargo)?;

    let total = Step::ALL.len();
    for (i, step) in Step::ALL.into_iter().enumerate() {
        let name = step.name();
        println!("\nci [{}/{total}] {name}", i + 1);
        let step_started = Instant::now();
        step.run(&sh, &cargo, since)
            .with_context(|| format!("ci step `{name}` failed; its output is above"))?;
        println!(
            "ci [{}/{total}] {name} passed in {:.0?}",
            i + 1,
            step_started.elapsed()
        );
    }
    println!(
        "\nci: all {total} steps passed in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Fmt,
    Clippy,
    Codegen,
    Infra,
    Test,
    E2e,
    Bundled,
    BuiltOnce,
}

impl Step {
    const ALL: [Step; 8] = [
        Step::Fmt,
        Step::Clippy,
        Step::Codegen,
        Step::Infra,
        Step::Test,
        Step::E2e,
        Step::Bundled,
        Step::BuiltOnce,
    ];

    fn name(self) -> &'static str {
        match self {
            Step::Fmt => "fmt",
            Step::Clippy => "clippy",
            Step::Codegen => "codegen --check",
            Step::Infra => "infra check",
            Step::Test => "test",
            Step::E2e => "e2e",
            Step::Bundled => "duckdb-bundled fallback",
            Step::BuiltOnce => "each C dependency built once per profile",
        }
    }

    fn run(self, sh: &Shell, cargo: &str, since: SystemTime) -> Result<()> {
        let cargo_step = |args: &str| {
            let args = args.split_whitespace();
            crate::nested_cargo(cmd!(sh, "{cargo} {args...}")).run()
        };
        match self {
            Step::Fmt => cargo_step("fmt --all --check")?,
            Step::Clippy => cargo_step("clippy --workspace --all-targets --locked -- -D warnings")?,
            Step::Codegen => crate::codegen::run(true)?,
            Step::Infra => crate::infra::check()?,
            Step::Test => cargo_step("test --workspace --locked")?,
            Step::E2e => crate::e2e(&[])?,
            // The fallback for platforms without the prebuilt library: DuckDB compiled
            // from source (once per machine, in a profile of its own), then the DDL and
            // the DuckDB sink's tests against it.
            Step::Bundled => cargo_step(
                "test --profile duckdb-bundled --locked -p pipeline --features duckdb-bundled \
                 --lib --test duckdb_ddl",
            )?,
            Step::BuiltOnce => crate::tidy::check_built_once(&crate::target_dir(), since)?,
        }
        Ok(())
    }
}

/// Installs what the checks need and a fresh machine may lack: the rustfmt and clippy
/// components, a C++ compiler for DuckDB's bundled build, Java with Maven for the Kafka
/// broker, Chromium for the dashboard's test, Go and Node.js for the infra checks, and
/// DuckDB's prebuilt library (through npm) that every other step links.
fn ensure_prerequisites(sh: &Shell, cargo: &str) -> Result<()> {
    for (component, subcommand) in [("rustfmt", "fmt"), ("clippy", "clippy")] {
        let probe = cmd!(sh, "{cargo} {subcommand} --version")
            .quiet()
            .ignore_stdout()
            .ignore_stderr();
        if probe.run().is_err() {
            println!("ci: installing the {component} component");
            cmd!(sh, "rustup component add {component}")
                .run()
                .with_context(|| {
                    format!("installing {component}: rustup component add {component}")
                })?;
        }
    }
    // Each tool the tests need, the Debian package that provides it, and why.
    let tools = [
        (
            "c++",
            "--version",
            "g++",
            "the duckdb-bundled fallback and librdkafka are compiled",
        ),
        (
            "pkg-config",
            "--version",
            "pkg-config",
            "librdkafka's build finds OpenSSL with it",
        ),
        (
            "java",
            "-version",
            "openjdk-17-jdk-headless",
            "the Kafka broker runs on it",
        ),
        (
            "mvn",
            "--version",
            "maven",
            "it fetches the Kafka broker's jars",
        ),
        (
            "chromium",
            "--version",
            "chromium",
            "the dashboard's test opens the page in it, headless",
        ),
        (
            "go",
            "version",
            "golang-go",
            "infra check builds Terraform or kustomize with it when they are missing",
        ),
        (
            "npm",
            "--version",
            "npm",
            "DuckDB's prebuilt library comes from npm; infra check validates the manifests with Node.js packages",
        ),
    ];
    let mut missing = Vec::new();
    for (tool, flag, package, why) in tools {
        if cmd!(sh, "{tool} {flag}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_err()
        {
            println!("ci: {tool} is missing ({why}); installing {package}");
            missing.push(package);
        }
    }
    // Python's venv module, for the BigQuery emulator's virtual environment.
    let venv = cmd!(sh, "python3 -m venv --help")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run();
    if venv.is_err() {
        println!(
            "ci: python3's venv module is missing (the BigQuery emulator runs in one); installing python3-venv"
        );
        missing.push("python3-venv");
    }
    // OpenSSL's headers: librdkafka is built with TLS (and SASL over it).
    let openssl = cmd!(sh, "pkg-config --exists openssl")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run();
    if openssl.is_err() {
        println!(
            "ci: OpenSSL's headers are missing (librdkafka is built with TLS); installing libssl-dev"
        );
        missing.push("libssl-dev");
    }
    if !missing.is_empty() {
        if cmd!(sh, "id -u").quiet().read()? != "0" {
            bail!("missing packages {missing:?}: install them, or run as root to let ci do it");
        }
        cmd!(sh, "apt-get update -q")
            .run()
            .context("apt-get update")?;
        cmd!(sh, "apt-get install -y -q {missing...}")
            .run()
            .context("apt-get install")?;
    }
    crate::duckdb::ensure_library()?;
    Ok(())
}
