//! Error classes shared by every crate: what whoever handles a failure should do with it.

/// What a failure means for its handler, after Arroyo's split of user, external and
/// internal errors. Every `thiserror` enum of ours implements [`Classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The input is bad: report it and dead-letter it. Retrying cannot help.
    BadData,
    /// A service failed or could not be reached: retry with backoff.
    Retryable,
    /// An invariant of ours broke: stop loudly, commit nothing.
    Bug,
}

/// Implemented by every error type of the workspace's libraries.
pub trait Classify {
    /// The class of this particular error value.
    fn class(&self) -> ErrorClass;
}
