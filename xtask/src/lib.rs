//! The parts of `cargo xtask` that tests and the e2e run use too: they start the same
//! real Kafka broker and BigQuery emulator that `cargo xtask kafka start` and
//! `cargo xtask emulator start` do, and open pages in headless Chromium.

pub mod browser;
pub mod emulator;
pub mod kafka;
pub mod process;
