//! Transforms: pure functions from raw messages to warehouse rows and rejects.

pub mod arrow;
pub mod rows;
pub mod rules;
pub mod star;
pub mod state;

pub use star::{Config, Message, Output, Stats, TOO_LATE, Transformer};
