//! The rules of the star schema that both the streaming core and the batch job apply,
//! written once: the level a session starts at, where a superseding version begins, and
//! the user version in force at an instant.

use warehouse::raw::Level;

use super::rows::SessionFactRow;

/// The level a session starts at, from its first page view and first listen (each as
/// its time and level): the listen's when it came strictly first, else the view's;
/// `None` for a session with neither.
pub fn starting_level<L>(
    first_view: Option<(i64, L)>,
    first_listen: Option<(i64, L)>,
) -> Option<L> {
    match (first_view, first_listen) {
        (Some((view_ms, _)), Some((listen_ms, level))) if listen_ms < view_ms => Some(level),
        (Some((_, level)), _) | (None, Some((_, level))) => Some(level),
        (None, None) => None,
    }
}

/// Where a new version of a session's facts begins: at the session's last event, and
/// at least a millisecond after the version it replaces.
pub fn superseding_from(last_event_ms: i64, previous_valid_from_ms: Option<i64>) -> i64 {
    match previous_valid_from_ms {
        Some(previous) => last_event_ms.max(previous + 1),
        None => last_event_ms,
    }
}

impl SessionFactRow {
    /// This version, closed where the one replacing it begins.
    pub fn superseded_at(&self, valid_to_ms: i64) -> SessionFactRow {
        SessionFactRow {
            record_valid_to_ms: Some(valid_to_ms),
            is_record_valid: false,
            ..self.clone()
        }
    }
}

/// The start of the version in force at `ts_ms` among versions in order of their
/// starts: the last one begun by then, or the first one for an instant before it;
/// `None` without versions.
pub fn version_at<V>(versions: &[V], start: impl Fn(&V) -> i64, ts_ms: i64) -> Option<i64> {
    let i = versions.partition_point(|v| start(v) <= ts_ms);
    versions.get(i.saturating_sub(1)).map(start)
}

/// The level's name for a paid flag.
pub fn level_name(paid: bool) -> &'static str {
    if paid { Level::Paid } else { Level::Free }.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_in_force_is_the_last_begun() {
        let versions = [(100, false), (200, true), (300, false)];
        let at = |ts| version_at(&versions, |v| v.0, ts);
        assert_eq!(at(50), Some(100));
        assert_eq!(at(100), Some(100));
        assert_eq!(at(299), Some(200));
        assert_eq!(at(300), Some(300));
        assert_eq!(version_at(&[] as &[i64], |v| *v, 5), None);
    }

    #[test]
    fn a_session_starts_at_its_first_listens_level_only_when_that_came_strictly_first() {
        assert_eq!(
            starting_level(Some((10, "free")), Some((9, "paid"))),
            Some("paid")
        );
        assert_eq!(
            starting_level(Some((10, "free")), Some((10, "paid"))),
            Some("free")
        );
        assert_eq!(starting_level(None, Some((10, "paid"))), Some("paid"));
        assert_eq!(starting_level::<&str>(None, None), None);
    }

    #[test]
    fn a_new_version_begins_after_the_one_it_replaces() {
        assert_eq!(superseding_from(500, None), 500);
        assert_eq!(superseding_from(500, Some(100)), 500);
        assert_eq!(superseding_from(500, Some(500)), 501);
    }
}
