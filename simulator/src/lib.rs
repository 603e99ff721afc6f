//! The eventsim-compatible simulator. So far: eventsim's JSON config, validated and
//! compiled into a page-transition model, and eventsim's song catalogue format. The
//! generator and the `simulator` binary are still to come (issue #8).

pub mod config;
pub mod songs;
