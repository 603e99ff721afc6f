//! `cargo xtask infra`: the offline checks of `infra/` (`check`, a step of `cargo xtask
//! ci`) and Terraform's `plan`, `apply` and `destroy` for an environment.
//!
//! The checks install what they need into the cache folder when the machine lacks it:
//! Terraform and kustomize built from the Go module proxy, the manifest validator's npm
//! packages, Apache Airflow in a virtual environment. What cannot run here is skipped
//! with the reason printed, never silently.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xtask::kafka::cache_dir;
use xtask::process::{on_path, python_venv, run};

use crate::project_root;

/// Pinned so that an install today is the install of any later day.
/// The last release under the MPL; later ones cannot be built with `go install` (their
/// go.mod has replace directives).
const TERRAFORM: &str = "github.com/hashicorp/terraform@v1.5.7";
const KUSTOMIZE: &str = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0";
/// The Python the checks run: Airflow for the DAG test, python-hcl2 for Terraform's
/// wiring test, pytest for both, kubernetes-validate for strict manifest checks.
const PYTHON_TOOLS: [&str; 5] = [
    "apache-airflow==3.1.8",
    "apache-airflow-providers-cncf-kubernetes==10.25.0",
    "kubernetes-validate==1.37.0",
    "python-hcl2==7.3.1",
    "pytest==8.4.2",
];
/// The Kubernetes version manifests are checked against (GKE's regular channel).
const KUBERNETES: &str = "1.33";
pub const ENVIRONMENTS: [&str; 2] = ["dev", "prod"];
/// Every kustomization CI renders and validates.
const KUSTOMIZATIONS: [&str; 3] = [
    "infra/k8s/overlays/local",
    "infra/k8s/overlays/gcp",
    "infra/k8s/load-test",
];

fn bin_dir() -> PathBuf {
    cache_dir().join("bin")
}

/// A program on the PATH or in the cache's bin folder.
fn find(program: &str) -> Option<PathBuf> {
    on_path(program).or_else(|| Some(bin_dir().join(program)).filter(|p| p.is_file()))
}

/// A Go program, built once from the Go module proxy into the cache's bin folder.
fn go_install(program: &str, module: &str) -> Result<PathBuf> {
    if let Some(found) = find(program) {
        return Ok(found);
    }
    println!(
        "infra: {program} is missing; building {module} from the Go module proxy (a few minutes, once)"
    );
    let started = Instant::now();
    run(
        Command::new("go")
            .args(["install", module])
            .env("GOBIN", bin_dir()),
        &format!("go install {module}"),
    )?;
    println!("infra: built {program} in {:.0?}", started.elapsed());
    Ok(bin_dir().join(program))
}

fn terraform() -> Result<PathBuf> {
    go_install("terraform", TERRAFORM)
}

/// Every offline check of `infra/`, in order; fails on the first that fails.
pub fn check() -> Result<()> {
    let root = project_root();
    let started = Instant::now();
    let mut skipped = Vec::new();

    println!("infra [1/5] terraform fmt, wiring and validate");
    let terraform = terraform()?;
    run(
        Command::new(&terraform)
            .args(["fmt", "-check", "-recursive", "-diff"])
            .arg(root.join("infra/terraform")),
        "terraform fmt -check (run `terraform fmt -recursive infra/terraform`)",
    )?;
    let python = python_tools()?;
    run(
        Command::new(&python)
            .current_dir(root.join("infra/terraform"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]),
        "Terraform's wiring test (infra/terraform/tests)",
    )?;
    for env in ENVIRONMENTS {
        let dir = root.join("infra/terraform/environments").join(env);
        // Providers come from registry.terraform.io, which CI machines may not reach.
        let init = Command::new(&terraform)
            .current_dir(&dir)
            .args(["init", "-backend=false", "-input=false", "-no-color"])
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .context("terraform init")?;
        if !init.status.success() {
            let stderr = String::from_utf8_lossy(&init.stderr);
            let reason = stderr
                .lines()
                .map(|l| l.trim_start_matches(['│', '╷', '╵', ' ']))
                .find(|l| l.starts_with("Error"))
                .unwrap_or("")
                .to_owned();
            let why = format!(
                "terraform validate of environments/{env}: `terraform init` cannot install the hashicorp/google provider (registry.terraform.io is unreachable from CI machines, and the Go module proxy served no version of github.com/hashicorp/terraform-provider-google to build a filesystem mirror from when this check was written){}",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!("; terraform said: {reason}")
                }
            );
            println!("infra: SKIPPED {why}");
            skipped.push(why);
            continue;
        }
        run(
            Command::new(&terraform)
                .current_dir(&dir)
                .args(["validate", "-no-color"]),
            &format!("terraform validate of environments/{env}"),
        )?;
    }

    println!("infra [2/5] kustomize: render every overlay");
    let rendered = cache_dir().join("infra/rendered");
    fs::create_dir_all(&rendered)?;
    let mut files = Vec::new();
    for kustomization in KUSTOMIZATIONS {
        let out = rendered.join(format!("{}.yaml", kustomization.replace('/', "_")));
        let yaml = render(&root.join(kustomization))?;
        fs::write(&out, &yaml)?;
        println!(
            "  {kustomization}: {} documents",
            yaml.matches("\nkind: ").count() + usize::from(yaml.starts_with("kind: "))
        );
        files.push(out);
    }

    // The overlay `up --gcp` writes, from outputs shaped like Terraform's.
    let generated = root.join("data/infra-check/gcp");
    write_gcp_overlay(&generated, &example_outputs(), "example")?;
    let yaml = render(&generated)?;
    if yaml.contains("PROJECT_ID") {
        bail!("the generated gcp overlay still holds a placeholder:\n{yaml}");
    }
    let out = rendered.join("up-gcp.yaml");
    fs::write(&out, yaml)?;
    println!("  the overlay `up --gcp` generates: rendered");
    files.push(out);

    println!("infra [3/5] the rendered manifests against the Kubernetes and Strimzi schemas");
    let validator = root.join("infra/k8s/validate");
    npm_ci(&validator)?;
    run(
        Command::new("node")
            .current_dir(&validator)
            .arg("validate.mjs")
            .args(&files),
        "validating the manifests",
    )?;
    // Kubernetes' own schemas allow unknown fields; strict mode catches a misspelt one in
    // the core objects (Strimzi's kinds are the step above's).
    let strict = python.with_file_name("kubernetes-validate");
    run(
        Command::new(&strict)
            .args(["--strict", "--no-warn", "--quiet", "-k", KUBERNETES])
            .args(&files),
        "strict validation of the core objects (kubernetes-validate --strict)",
    )?;
    println!(
        "  core objects: no unknown field (kubernetes-validate --strict, Kubernetes {KUBERNETES})"
    );

    println!("infra [4/5] docker compose config");
    if has_compose() {
        run(
            Command::new("docker")
                .args(["compose", "-f"])
                .arg(root.join("infra/compose.yaml"))
                .args(["config", "--quiet"]),
            "docker compose config",
        )?;
    } else {
        let why = "docker compose config: the docker compose plugin is not installed (CI machines have no Docker, and `go install` of github.com/docker/compose/v2 is refused for its go.mod's exclude directives)".to_owned();
        println!("infra: SKIPPED {why}");
        skipped.push(why);
    }

    println!("infra [5/5] the Airflow DAG in Apache Airflow");
    let home = cache_dir().join("infra/airflow-home");
    fs::create_dir_all(&home)?;
    run(
        Command::new(&python)
            .current_dir(root.join("infra/airflow"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
            .env("AIRFLOW_HOME", &home)
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False"),
        "the DAG test (infra/airflow/tests)",
    )?;

    println!(
        "infra: checks passed in {:.0?}; {} skipped{}",
        started.elapsed(),
        skipped.len(),
        skipped
            .iter()
            .map(|s| format!("\n  - {s}"))
            .collect::<String>()
    );
    Ok(())
}

/// Outputs as an environment of project `example-project` in europe-west4 would give.
fn example_outputs() -> serde_json::Value {
    serde_json::json!({
        "bigquery_dataset": "example-project.music_analytics",
        "staging_uri": "gs://example-project-music-analytics-staging/staging",
        "image_repository": "europe-west4-docker.pkg.dev/example-project/music-analytics",
        "pipeline_service_account": "ma-pipeline@example-project.iam.gserviceaccount.com",
        "simulator_service_account": "ma-simulator@example-project.iam.gserviceaccount.com",
    })
}

/// `kubectl kustomize DIR`, or `kustomize build DIR` where kubectl is missing.
pub fn render(dir: &Path) -> Result<String> {
    let mut command = match find("kubectl") {
        Some(kubectl) => {
            let mut c = Command::new(kubectl);
            c.arg("kustomize");
            c
        }
        None => {
            let mut c = Command::new(go_install("kustomize", KUSTOMIZE)?);
            c.arg("build");
            c
        }
    };
    let output = command
        .arg(dir)
        .output()
        .with_context(|| format!("rendering {}", dir.display()))?;
    if !output.status.success() {
        bail!(
            "rendering {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("the rendered manifests are not UTF-8")
}

/// `npm ci` when `node_modules` is missing or older than the lock file.
fn npm_ci(dir: &Path) -> Result<()> {
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules/.package-lock.json");
    let fresh = match (fs::metadata(&lock), fs::metadata(&stamp)) {
        (Ok(lock), Ok(stamp)) => stamp.modified()? >= lock.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    run(
        Command::new("npm").current_dir(dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
        "npm ci in infra/k8s/validate",
    )
}

/// A virtual environment with the Python tools, installed once per set of pins.
fn python_tools() -> Result<PathBuf> {
    let venv = python_venv(
        &cache_dir().join("infra/python"),
        &PYTHON_TOOLS,
        "the Python tools (Airflow, python-hcl2, kubernetes-validate, pytest)",
        |_| Ok(()),
    )?;
    Ok(venv.join("bin/python"))
}

/// What `cargo xtask infra plan|apply|destroy` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Plan,
    Apply,
    Destroy,
}

/// Where an environment goes.
#[derive(Debug)]
pub struct Target {
    pub env: String,
    pub project: String,
    pub region: String,
}

impl Target {
    fn dir(&self) -> Result<PathBuf> {
        if !ENVIRONMENTS.contains(&self.env.as_str()) {
            bail!(
                "no environment {:?}: choose one of {}",
                self.env,
                ENVIRONMENTS.join(", ")
            );
        }
        Ok(project_root()
            .join("infra/terraform/environments")
            .join(&self.env))
    }

    /// The GCS bucket holding Terraform's state: `<project>-tfstate`.
    pub fn state_bucket(&self) -> String {
        format!("{}-tfstate", self.project)
    }
}

/// `terraform init` against the state bucket, then the action, with the project and
/// region as variables.
pub fn terraform_action(target: &Target, action: Action) -> Result<()> {
    let dir = target.dir()?;
    let terraform = terraform()?;
    run(
        Command::new(&terraform)
            .current_dir(&dir)
            .args(["init", "-input=false"])
            .arg(format!("-backend-config=bucket={}", target.state_bucket())),
        &format!(
            "terraform init (is the state bucket gs://{} there? see infra/README.md)",
            target.state_bucket()
        ),
    )?;
    let verb = match action {
        Action::Plan => "plan",
        Action::Apply => "apply",
        Action::Destroy => "destroy",
    };
    run(
        Command::new(&terraform)
            .current_dir(&dir)
            .args([verb, "-input=false"])
            .arg(format!("-var=project_id={}", target.project))
            .arg(format!("-var=region={}", target.region)),
        &format!("terraform {verb} of environments/{}", target.env),
    )
}

/// The environment's outputs, as Terraform gives them in JSON.
pub fn outputs(target: &Target) -> Result<serde_json::Value> {
    let output = Command::new(terraform()?)
        .current_dir(target.dir()?)
        .args(["output", "-json"])
        .output()
        .context("terraform output")?;
    if !output.status.success() {
        bail!(
            "terraform output failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let all: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(all["music_analytics"]["value"].clone())
}

/// One text of Terraform's outputs, by JSON pointer (`/cluster/name`).
pub fn output(outputs: &serde_json::Value, pointer: &str) -> Result<String> {
    outputs
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("Terraform's outputs lack {pointer}"))
}

/// Whether Docker's compose plugin is installed.
pub fn has_compose() -> bool {
    Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes the kustomization of [`gcp_overlay`] into `dir`, which must lie inside the
/// repository (kustomize reads resources by relative path only).
pub fn write_gcp_overlay(dir: &Path, outputs: &serde_json::Value, tag: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let root = project_root();
    let depth = dir
        .strip_prefix(&root)
        .with_context(|| format!("{} is outside the repository", dir.display()))?
        .components()
        .count();
    let overlay = format!("{}infra/k8s/overlays/gcp", "../".repeat(depth));
    fs::write(
        dir.join("kustomization.yaml"),
        gcp_overlay(outputs, tag, &overlay)?,
    )
    .with_context(|| format!("writing {}", dir.display()))
}

/// The image repository the committed `gcp` overlay names, replaced by Terraform's.
const PLACEHOLDER_REPOSITORY: &str = "us-central1-docker.pkg.dev/PROJECT_ID/music-analytics";

/// The kustomization `up --gcp` applies: the `gcp` overlay with Terraform's outputs in
/// place of its placeholders. `overlay` is the path of `infra/k8s/overlays/gcp` as seen
/// from where the file is written.
pub fn gcp_overlay(outputs: &serde_json::Value, tag: &str, overlay: &str) -> Result<String> {
    let text = |pointer: &str| output(outputs, pointer);
    let repository = text("/image_repository")?;
    let dataset = text("/bigquery_dataset")?;
    let staging = text("/staging_uri")?;
    let pipeline = text("/pipeline_service_account")?;
    let simulator = text("/simulator_service_account")?;
    Ok(format!(
        "# Written by `cargo xtask up --gcp` from Terraform's outputs; not committed.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {overlay}
images:
  - name: {PLACEHOLDER_REPOSITORY}/pipeline
    newName: {repository}/pipeline
    newTag: {tag}
  - name: {PLACEHOLDER_REPOSITORY}/simulator
    newName: {repository}/simulator
    newTag: {tag}
configMapGenerator:
  - name: warehouse-config
    namespace: music-analytics
    behavior: merge
    literals:
      - MUSIC_ANALYTICS__BIGQUERY={dataset}
      - MUSIC_ANALYTICS__STAGING={staging}
patches:
  - patch: |-
      apiVersion: v1
      kind: ServiceAccount
      metadata:
        name: pipeline
        namespace: music-analytics
        annotations:
          iam.gke.io/gcp-service-account: {pipeline}
  - patch: |-
      apiVersion: v1
      kind: ServiceAccount
      metadata:
        name: simulator
        namespace: music-analytics
        annotations:
          iam.gke.io/gcp-service-account: {simulator}
"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gcp_overlay_carries_every_output_and_no_placeholder() {
        let text = gcp_overlay(&example_outputs(), "abc1234", "../overlays/gcp").unwrap();
        for expected in [
            "newName: europe-west4-docker.pkg.dev/example-project/music-analytics/pipeline",
            "newTag: abc1234",
            "MUSIC_ANALYTICS__BIGQUERY=example-project.music_analytics",
            "iam.gke.io/gcp-service-account: ma-simulator@example-project.iam.gserviceaccount.com",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
        // The placeholder appears only where the overlay's images are matched by name.
        for line in text.lines().filter(|l| l.contains("PROJECT_ID")) {
            assert!(line.trim_start().starts_with("- name: "), "{line}");
        }
    }

    #[test]
    fn missing_outputs_are_named() {
        let error = gcp_overlay(&serde_json::json!({}), "t", "x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/image_repository"), "{error}");
    }
}
