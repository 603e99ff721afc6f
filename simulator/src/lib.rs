//! The eventsim-compatible simulator: eventsim's JSON config compiled into a model of
//! page transitions, a population of users with their own random streams, and an engine
//! that runs them in parallel, in time windows, into Kafka, files or stdout.

pub mod clock;
pub mod config;
pub mod defaults;
pub mod engine;
pub mod population;
pub mod random;
pub mod sinks;
pub mod songs;
pub mod world;
