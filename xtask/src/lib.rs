//! The parts of `cargo xtask` that tests use too: integration tests start the same real
//! Kafka broker and BigQuery emulator that `cargo xtask kafka start` and
//! `cargo xtask emulator start` do, compare warehouses as `cargo xtask e2e` does, and
//! open pages in headless Chromium.

pub mod browser;
pub mod emulator;
pub mod kafka;
pub mod process;
pub mod tables;
