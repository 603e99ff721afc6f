//! Lets the binaries and tests that link DuckDB find its prebuilt library at run time.
//!
//! Without the `duckdb-bundled` feature the `duckdb` crate links `libduckdb.so` from
//! `DUCKDB_LIB_DIR` (set by `.cargo/config.toml`, filled by `cargo xtask duckdb`). The
//! linker needs the folder, and so does every program started later, by cargo or not
//! (xtask runs the built binaries directly): this script records it as the binaries'
//! run path and says what to do when the library is missing, where the linker would
//! only say that `-lduckdb` was not found. The e2e crate uses this file too; it has no
//! feature of its own, so only the pipeline's build (which every build of e2e's
//! dependents includes) judges whether the library must be there.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DUCKDB_BUNDLED").is_some() {
        return;
    }
    let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR").map(PathBuf::from) else {
        panic!(
            "DUCKDB_LIB_DIR is not set (the checkout's .cargo/config.toml sets it): point it at \
             a folder holding DuckDB 1.5.6's libduckdb.so, or build with \
             `--features pipeline/duckdb-bundled` to compile DuckDB"
        );
    };
    let library = dir.join("libduckdb.so");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let judge = std::env::var("CARGO_PKG_NAME").is_ok_and(|name| name == "pipeline");
    if linux && judge && !library.exists() {
        panic!(
            "{} is missing: run `cargo xtask duckdb` to fetch DuckDB's official prebuilt \
             library (every other xtask command does it too), or build with \
             `--features pipeline/duckdb-bundled` to compile DuckDB from source (about 25 \
             minutes on two cores)",
            library.display()
        );
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
