//! Golden DDL: the committed files under `warehouse/ddl/` are exactly what the
//! definitions generate (`cargo xtask codegen` rewrites them).

use std::path::PathBuf;

#[test]
fn committed_ddl_matches_the_generator() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ddl");
    for file in warehouse::codegen::generated_files() {
        let path = dir.join(&file.path);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask codegen`", path.display()));
        assert!(
            committed == file.contents,
            "{} is stale; run `cargo xtask codegen`",
            file.path
        );
    }
}

#[test]
fn generated_json_files_are_valid_json() {
    for file in warehouse::codegen::generated_files()
        .iter()
        .filter(|f| f.path.ends_with(".json"))
    {
        serde_json::from_str::<serde_json::Value>(&file.contents)
            .unwrap_or_else(|e| panic!("{}: {e}", file.path));
    }
}
