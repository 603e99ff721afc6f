//! What the simulator's integration tests share: the path of eventsim's reference files.

use std::path::PathBuf;

/// A file of `../shared/eventsim/` beside the checkout, where the reference data lies.
pub fn shared(file: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/eventsim")
        .join(file);
    assert!(
        path.exists(),
        "{} is missing: the shared reference data lies beside the repository",
        path.display()
    );
    path
}
