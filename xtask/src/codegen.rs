//! `cargo xtask codegen`: writes, or with `--check` verifies, the files that
//! `warehouse::codegen` renders, the simulator's home places and the dashboard map's
//! land cells (both from the `zipcodes` crate's data) and the workspace-hack crate's
//! dependencies (through `cargo hakari`, where it is installed).

use std::fs;

use anyhow::{Context, Result, bail};

use crate::project_root;

pub fn run(check: bool) -> Result<()> {
    generated(LAND, &land_cells(), check)?;
    generated(PLACES, &places(), check)?;
    workspace_hack(check)?;
    let dir = project_root().join("warehouse/ddl");
    let files = warehouse::codegen::generated_files();
    let mut stale = Vec::new();
    for file in &files {
        let path = dir.join(&file.path);
        let current = fs::read_to_string(&path).ok();
        if current.as_deref() == Some(file.contents.as_str()) {
            continue;
        }
        if check {
            stale.push(file.path.clone());
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, &file.contents).with_context(|| format!("writing {}", path.display()))?;
        println!("codegen: wrote warehouse/ddl/{}", file.path);
    }
    let extra = unexpected_files(&dir, &files)?;
    if check {
        if !stale.is_empty() || !extra.is_empty() {
            bail!(
                "generated files are stale: {}{}\nrun `cargo xtask codegen` and commit the result",
                stale.join(", "),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("; not generated: {}", extra.join(", "))
                }
            );
        }
        println!("codegen: {} files up to date", files.len());
    } else {
        for path in extra {
            fs::remove_file(dir.join(&path)).with_context(|| format!("removing {path}"))?;
            println!("codegen: removed warehouse/ddl/{path}");
        }
    }
    Ok(())
}

/// The workspace-hack crate, which `cargo hakari` writes from the whole dependency
/// graph. Where hakari is not installed the step says so and goes on: the ci step that
/// counts C builds per profile still catches a hack that no longer unifies them.
fn workspace_hack(check: bool) -> Result<()> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let installed = xshell::cmd!(sh, "{cargo} hakari --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    if !installed {
        println!(
            "codegen: workspace-hack not checked: cargo-hakari is not installed \
             (`cargo install --locked cargo-hakari`)"
        );
        return Ok(());
    }
    if check {
        crate::nested_cargo(xshell::cmd!(sh, "{cargo} hakari generate --diff"))
            .quiet()
            .ignore_stdout()
            .run()
            .context(
                "workspace-hack/Cargo.toml is stale\nrun `cargo xtask codegen` and commit the result",
            )?;
        println!("codegen: workspace-hack up to date");
    } else {
        crate::nested_cargo(xshell::cmd!(sh, "{cargo} hakari generate"))
            .quiet()
            .run()
            .context("cargo hakari generate")?;
        crate::nested_cargo(xshell::cmd!(sh, "{cargo} hakari manage-deps --yes"))
            .quiet()
            .run()
            .context("cargo hakari manage-deps")?;
    }
    Ok(())
}

/// Files under the generated folder that codegen does not produce, such as the schema
/// of a table that was dropped.
fn unexpected_files(
    dir: &std::path::Path,
    files: &[warehouse::codegen::GeneratedFile],
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .with_context(|| format!("listing {}", folder.display()))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let relative = relative.to_string_lossy().replace('\\', "/");
                if !files.iter().any(|f| f.path == relative) {
                    found.push(relative);
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Where the dashboard keeps its land cells.
const LAND: &str = "pipeline/src/dashboard/us_land.txt";

/// The half-degree cells holding an active US ZIP code, as `lat*2,lon*2` pairs (floored)
/// separated by spaces: the map's background, a silhouette drawn from the data itself.
fn land_cells() -> String {
    let mut cells = std::collections::BTreeSet::new();
    for zip in zipcodes::database() {
        if !zip.active {
            continue;
        }
        if let (Ok(lat), Ok(lon)) = (zip.lat.parse::<f64>(), zip.long.parse::<f64>()) {
            cells.insert(((lat * 2.0).floor() as i32, (lon * 2.0).floor() as i32));
        }
    }
    let cells: Vec<String> = cells
        .iter()
        .map(|(lat, lon)| format!("{lat},{lon}"))
        .collect();
    format!("{}\n", cells.join(" "))
}

/// Where the simulator keeps its home places.
const PLACES: &str = "simulator/src/us_places.tsv";

/// The simulator's home places: active, standard (street-address) ZIP codes with a
/// position, in the data's order, one a line as `zip, city, state, lat, lon, time zone,
/// weight` separated by tabs, the weight being the number of telephone area codes that
/// serve the ZIP code (at least 1). Generated rather than read from the crate at run
/// time: decompressing the crate's data took about 0.2 s of every simulator run.
fn places() -> String {
    let mut out = String::new();
    for zip in zipcodes::database() {
        if !zip.active || zip.zip_code_type != "STANDARD" {
            continue;
        }
        if zip.lat.parse::<f64>().is_err() || zip.long.parse::<f64>().is_err() {
            continue;
        }
        let fields = [
            zip.zip_code.as_str(),
            zip.city.as_str(),
            zip.state.as_str(),
            zip.lat.as_str(),
            zip.long.as_str(),
            zip.timezone.as_str(),
        ];
        out.push_str(&fields.join("\t"));
        out.push_str(&format!("\t{}\n", zip.area_codes.len().max(1)));
    }
    out
}

/// Writes a generated file, or with `check` fails when it differs from what is written.
fn generated(path: &str, contents: &str, check: bool) -> Result<()> {
    let full = project_root().join(path);
    if fs::read_to_string(&full).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    if check {
        bail!("{path} is stale\nrun `cargo xtask codegen` and commit the result");
    }
    fs::write(&full, contents).with_context(|| format!("writing {}", full.display()))?;
    println!("codegen: wrote {path}");
    Ok(())
}
