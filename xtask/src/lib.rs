//! The parts of `cargo xtask` that tests use too: integration tests start the same real
//! Kafka broker and BigQuery emulator that `cargo xtask kafka start` and
//! `cargo xtask emulator start` do, and compare warehouses as `cargo xtask e2e` does.

pub mod emulator;
pub mod kafka;
pub mod process;
pub mod tables;
