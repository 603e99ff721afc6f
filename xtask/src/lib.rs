//! The parts of `cargo xtask` that tests use too: integration tests start the same real
//! Kafka broker that `cargo xtask kafka start` does.

pub mod kafka;
