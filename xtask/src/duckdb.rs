//! `cargo xtask duckdb`: DuckDB's official prebuilt C library, which the workspace links
//! against instead of compiling DuckDB's C++ (about 25 minutes on two cores).
//!
//! DuckDB publishes `libduckdb.so` for linux-x64 in the npm package
//! `@duckdb/node-bindings-linux-x64`, the same build as its GitHub release artifact. The
//! npm registry is reachable where GitHub's release downloads may not be, so the library
//! comes from there: `npm pack` once into the machine's cache, checked against a pinned
//! SHA-256, then unpacked into the folder `DUCKDB_LIB_DIR` names (`.cargo/config.toml`
//! sets it to `.duckdb/lib` in the checkout). Builds with the pipeline's
//! `duckdb-bundled` feature need none of this.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use xtask::kafka::cache_dir;

/// The DuckDB release the `duckdb` crate's bindings were generated for (crate version
/// 1.10506.x is DuckDB 1.5.6); a library of another release must not be linked.
const VERSION: &str = "1.5.6";
/// The npm package and version carrying that release's library.
const PACKAGE: &str = "@duckdb/node-bindings-linux-x64@1.5.6-r.1";
const TARBALL: &str = "duckdb-node-bindings-linux-x64-1.5.6-r.1.tgz";
/// SHA-256 of the tarball and of the library inside it, as fetched on 2026-12-02.
const TARBALL_SHA256: &str = "1b9f82478539bb9a1d1df44bd103121a12ae52142c07158dc52b97d2ec1d69ff";
const LIBRARY_SHA256: &str = "3f4962cdd266eab2b479a5b5a4a6d063d279b2954ae814ed00385d553b747633";
const LIBRARY: &str = "libduckdb.so";

/// Makes sure the prebuilt library is where the build looks for it, fetching it when it
/// is not, and returns its folder.
pub fn ensure_library() -> Result<PathBuf> {
    let dir = library_dir()?;
    let library = dir.join(LIBRARY);
    if library.exists() {
        return Ok(dir);
    }
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        bail!(
            "DuckDB's prebuilt library is fetched for linux-x64 only; on this platform build \
             with `--features pipeline/duckdb-bundled` (compiles DuckDB), or set DUCKDB_LIB_DIR \
             to a folder holding DuckDB {VERSION}'s C library"
        );
    }
    let sh = Shell::new()?;
    let cache = cache_dir().join("duckdb");
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let tarball = cache.join(TARBALL);
    if !tarball.exists() || sha256(&sh, &tarball)? != TARBALL_SHA256 {
        println!(
            "duckdb: fetching DuckDB {VERSION}'s prebuilt library ({PACKAGE}, 24 MB) from npm"
        );
        if cmd!(sh, "npm --version")
            .quiet()
            .ignore_stdout()
            .run()
            .is_err()
        {
            bail!(
                "npm is needed to fetch DuckDB's prebuilt library (`apt-get install npm`; \
                 `cargo xtask ci` installs it as root); or build with \
                 `--features pipeline/duckdb-bundled` to compile DuckDB instead"
            );
        }
        cmd!(sh, "npm pack --silent {PACKAGE} --pack-destination {cache}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("npm pack {PACKAGE}"))?;
        let found = sha256(&sh, &tarball)?;
        if found != TARBALL_SHA256 {
            let _ = fs::remove_file(&tarball);
            bail!("{TARBALL} has SHA-256 {found}, expected {TARBALL_SHA256}: refusing to link it");
        }
    }
    // Unpacked beside its final place and renamed into it, so that an interrupted run
    // never leaves a partial library for the linker.
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let unpack = dir.join(".unpack");
    let _ = fs::remove_dir_all(&unpack);
    fs::create_dir_all(&unpack)?;
    cmd!(
        sh,
        "tar -xzf {tarball} -C {unpack} --strip-components=1 package/{LIBRARY}"
    )
    .quiet()
    .run()
    .with_context(|| format!("unpacking {}", tarball.display()))?;
    let unpacked = unpack.join(LIBRARY);
    let found = sha256(&sh, &unpacked)?;
    if found != LIBRARY_SHA256 {
        bail!("{LIBRARY} in {TARBALL} has SHA-256 {found}, expected {LIBRARY_SHA256}");
    }
    fs::rename(&unpacked, &library)
        .with_context(|| format!("moving the library to {}", library.display()))?;
    let _ = fs::remove_dir_all(&unpack);
    println!("duckdb: DuckDB {VERSION} is in {}", dir.display());
    Ok(dir)
}

/// The folder the build links DuckDB from: `DUCKDB_LIB_DIR`, which cargo sets for every
/// command it runs from `.cargo/config.toml` unless the environment already has it.
fn library_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("DUCKDB_LIB_DIR").context(
        "DUCKDB_LIB_DIR is not set: run xtask through `cargo xtask`, whose config sets it",
    )?;
    Ok(PathBuf::from(dir))
}

fn sha256(sh: &Shell, path: &Path) -> Result<String> {
    let line = cmd!(sh, "sha256sum {path}")
        .quiet()
        .read()
        .with_context(|| format!("sha256sum {}", path.display()))?;
    Ok(line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}
