//! The parts of `cargo xtask` that tests and the e2e run use too: they start the same
//! real Kafka broker, BigQuery emulator and Cloud Storage emulator that `cargo xtask
//! kafka start`, `cargo xtask emulator start` and `cargo xtask gcs start` do, and open
//! pages in headless Chromium.

pub mod browser;
pub mod emulator;
pub mod gcs;
pub mod kafka;
pub mod process;

use std::process::ExitCode;

/// The exit of a `main` that runs `result`: on failure the chain of contexts, one line
/// each, without a backtrace, since the failing step's own output is already on the
/// terminal above.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
