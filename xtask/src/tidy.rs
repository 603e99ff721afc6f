//! Repository-wide conventions that no compiler checks: tests of xtask, and the check
//! `cargo xtask ci` ends with, that no C dependency was built twice in one profile.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Result, bail};

/// The crates whose build scripts compile C or C++, and so cost minutes per build.
const C_BUILDS: [&str; 3] = ["libduckdb-sys", "rdkafka-sys", "libz-sys"];

/// Fails when a profile of the target folder got more than one build of a C crate since
/// `since`. Cargo keeps one folder per build-script run under
/// `<profile>/build/<crate>-<hash>/` (the one with an `output` file); two of them mean two
/// resolved feature sets, so the C or C++ was compiled twice. Runs older than `since` are
/// left out because a persistent target folder keeps the builds of earlier commits (an
/// older DuckDB, other features), which say nothing about this one.
pub fn check_built_once(target: &Path, since: SystemTime) -> Result<()> {
    let runs = c_build_runs(target, since);
    if runs.is_empty() {
        println!("  no C dependency was built in this run (all cached)");
    }
    for ((profile, krate), n) in &runs {
        println!("  {profile}: {krate} built {n} time(s)");
    }
    let twice: Vec<String> = runs
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((profile, krate), n)| format!("{krate} {n} times in {profile}"))
        .collect();
    if !twice.is_empty() {
        bail!(
            "C dependencies were built more than once per profile: {}. Two commands resolved \
             different features for them; make both resolve the workspace-hack's (run \
             `cargo hakari generate`), or build every binary in one invocation",
            twice.join(", ")
        );
    }
    Ok(())
}

/// Build-script runs of the C crates since `since`, per (profile, crate).
fn c_build_runs(target: &Path, since: SystemTime) -> BTreeMap<(String, &'static str), usize> {
    let mut runs = BTreeMap::new();
    let Ok(profiles) = fs::read_dir(target) else {
        return runs;
    };
    for profile in profiles.flatten() {
        let Ok(builds) = fs::read_dir(profile.path().join("build")) else {
            continue;
        };
        let profile = profile.file_name().to_string_lossy().into_owned();
        for build in builds.flatten() {
            let name = build.file_name().to_string_lossy().into_owned();
            let Some((krate, hash)) = name.rsplit_once('-') else {
                continue;
            };
            let Some(krate) = C_BUILDS.into_iter().find(|c| *c == krate) else {
                continue;
            };
            let ran_since = fs::metadata(build.path().join("output"))
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified >= since);
            if hash.len() == 16 && ran_since {
                *runs.entry((profile.clone(), krate)).or_default() += 1;
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use crate::project_root;

    /// A target folder with the given build-script folders, `output` files in the runs;
    /// runs marked stale get an `output` dated a day back.
    fn target_with(builds: &[(&str, &str, Run)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "xtask-built-once-{}-{}",
            std::process::id(),
            builds.len()
        ));
        let _ = fs::remove_dir_all(&root);
        for (profile, name, run) in builds {
            let dir = root.join(profile).join("build").join(name);
            fs::create_dir_all(&dir).unwrap();
            if *run != Run::None {
                fs::write(dir.join("output"), "").unwrap();
            }
            if *run == Run::Stale {
                let day_ago = SystemTime::now() - Duration::from_secs(86_400);
                fs::File::options()
                    .write(true)
                    .open(dir.join("output"))
                    .unwrap()
                    .set_modified(day_ago)
                    .unwrap();
            }
        }
        root
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Run {
        /// The build script's folder only, as cargo leaves it for the compiled script.
        None,
        Fresh,
        Stale,
    }

    fn an_hour_ago() -> SystemTime {
        SystemTime::now() - Duration::from_secs(3_600)
    }

    #[test]
    fn one_build_of_each_c_crate_per_profile_passes() {
        let target = target_with(&[
            ("debug", "libduckdb-sys-0123456789abcdef", Run::Fresh),
            ("debug", "libduckdb-sys-fedcba9876543210", Run::None),
            ("debug", "libduckdb-sys-4444444444444444", Run::Stale),
            ("release", "libduckdb-sys-1111111111111111", Run::Fresh),
            ("debug", "rdkafka-sys-2222222222222222", Run::Fresh),
        ]);
        super::check_built_once(&target, an_hour_ago()).unwrap();
        fs::remove_dir_all(target).unwrap();
    }

    #[test]
    fn two_duckdb_builds_in_one_profile_fail() {
        let target = target_with(&[
            ("debug", "libduckdb-sys-0123456789abcdef", Run::Fresh),
            ("debug", "libduckdb-sys-fedcba9876543210", Run::Fresh),
            ("debug", "libduckdb-sys-3333333333333333", Run::None),
        ]);
        let error = super::check_built_once(&target, an_hour_ago())
            .unwrap_err()
            .to_string();
        assert!(error.contains("libduckdb-sys 2 times in debug"), "{error}");
        fs::remove_dir_all(target).unwrap();
    }

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_starts_with_a_doc_line() {
        let mut files = Vec::new();
        rust_files(&project_root(), &mut files);
        assert!(files.len() > 10, "found only {} Rust files", files.len());
        let missing: Vec<_> = files
            .iter()
            .filter(|path| !fs::read_to_string(path).unwrap().starts_with("//! "))
            .map(|path| {
                path.strip_prefix(project_root())
                    .unwrap_or(path)
                    .display()
                    .to_string()
            })
            .collect();
        assert!(
            missing.is_empty(),
            "files without a `//!` first line: {missing:?}"
        );
    }
}
