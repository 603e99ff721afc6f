//! `pipeline batch session-fact`: recomputes one day's session facts from what the
//! warehouse holds (page views through the bridge, current event facts, user versions)
//! and writes a new version wherever the current row disagrees, closing the old one.
//! With the same definitions as the streaming core, a consistent warehouse is left
//! unchanged, and a second run after a first changes nothing.

use std::collections::HashMap;

use warehouse::keys;
use warehouse::time::DateTimeParts;

use crate::error::PipelineError;
use crate::sinks::{BigQuery, DuckDb};
use crate::transforms::Output;
use crate::transforms::rows::SessionFactRow;
use crate::transforms::rules::{level_name, starting_level, superseding_from, version_at};

/// One session's aggregates as a warehouse computes them: its user, then its page views
/// and its listens, each as (count, first and last epoch milliseconds, first level).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionAggregate {
    pub session_key: i64,
    pub user_id: Option<i64>,
    pub views: Option<(i64, i64, i64, String)>,
    pub listens: Option<(i64, i64, i64, String)>,
}

/// What the job reads from a warehouse and how it writes there: the same job runs on
/// DuckDB and on BigQuery.
pub trait SessionFactStore {
    fn aggregates(&mut self) -> Result<Vec<SessionAggregate>, PipelineError>;
    /// Every valid listen's (session key, duration), in session order: by position in
    /// the session, then time.
    fn listen_durations(&mut self) -> Result<Vec<(i64, f64)>, PipelineError>;
    /// The valid `session_fact` row of each session.
    fn current_session_facts(&mut self) -> Result<HashMap<i64, SessionFactRow>, PipelineError>;
    /// Each user's version start times, ascending.
    fn user_versions(&mut self) -> Result<HashMap<i64, Vec<i64>>, PipelineError>;
    /// Upserts rows, moving no offsets.
    fn upsert(&mut self, output: &Output) -> Result<(), PipelineError>;
}

/// The `date_dim` key (`YYYYMMDD`) of a `YYYY-MM-DD` date, if it is one.
pub fn day_key(date: &str) -> Option<i64> {
    let day = warehouse::time::parse_iso_date(date)?;
    Some(keys::date_key(&DateTimeParts::from_epoch_millis(
        day * 86_400_000,
    )))
}

/// What a run found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFactReport {
    /// Sessions that started on the day.
    pub sessions: u64,
    /// Of those, how many got a new version.
    pub rewritten: u64,
}

/// Aggregates of one session over what the warehouse holds.
#[derive(Debug, Default)]
struct Recomputed {
    start_ms: i64,
    end_ms: i64,
    first_view: Option<(i64, String)>,
    first_listen: Option<(i64, String)>,
    event_count: i64,
    listen_count: i64,
    listening_time: f64,
    user_id: Option<i64>,
}

const AGGREGATES: &str = "
WITH views AS (
  SELECT b.session_key, epoch_ms(e.\"timestamp\") AS ts, e.item_in_session AS item, e.level
  FROM event_session_bridge b JOIN event_dim e USING (event_key)
), listens AS (
  SELECT session_key, epoch_ms(\"timestamp\") AS ts, duration, level
  FROM event_fact WHERE is_record_valid
), v AS (
  SELECT session_key, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts,
         arg_min(level, ts * 100000 + item) AS first_level
  FROM views GROUP BY session_key
), l AS (
  SELECT session_key, count(*) AS n, min(ts) AS first_ts,
         max(ts) AS last_ts, arg_min(level, ts) AS first_level
  FROM listens GROUP BY session_key
)
SELECT s.session_key, s.user_id,
       v.n, v.first_ts, v.last_ts, v.first_level,
       l.n, l.first_ts, l.last_ts, l.first_level
FROM session_dim s LEFT JOIN v USING (session_key) LEFT JOIN l USING (session_key)
";

/// Recomputes the session facts of sessions that started on `date` (UTC).
pub fn session_fact(
    store: &mut dyn SessionFactStore,
    date: &str,
) -> Result<SessionFactReport, PipelineError> {
    let date_key = day_key(date)
        .ok_or_else(|| PipelineError::Setting(format!("--date {date:?}: expected YYYY-MM-DD")))?;

    let mut sessions: HashMap<i64, Recomputed> = HashMap::new();
    for a in store.aggregates()? {
        let view_first = a.views.as_ref().map(|v| v.1);
        let listen_first = a.listens.as_ref().map(|l| l.1);
        let firsts = [view_first, listen_first].into_iter().flatten();
        let lasts = [
            a.views.as_ref().map(|v| v.2),
            a.listens.as_ref().map(|l| l.2),
        ]
        .into_iter()
        .flatten();
        let recomputed = Recomputed {
            start_ms: firsts.min().unwrap_or(0),
            end_ms: lasts.max().unwrap_or(0),
            first_view: a.views.as_ref().map(|v| (v.1, v.3.clone())),
            first_listen: a.listens.as_ref().map(|l| (l.1, l.3.clone())),
            event_count: a.views.as_ref().map_or(0, |v| v.0),
            listen_count: a.listens.as_ref().map_or(0, |l| l.0),
            // Summed below, in the streaming core's order.
            listening_time: 0.0,
            user_id: a.user_id,
        };
        if recomputed.event_count + recomputed.listen_count > 0 {
            sessions.insert(a.session_key, recomputed);
        }
    }
    // Listening time is summed here, in the streaming core's order (by position in the
    // session), so that the same listens give the same bits.
    for (key, duration) in store.listen_durations()? {
        if let Some(s) = sessions.get_mut(&key) {
            s.listening_time += duration;
        }
    }
    let current = store.current_session_facts()?;
    let versions = store.user_versions()?;

    let mut report = SessionFactReport::default();
    let mut output = Output::default();
    let mut keys_of_day: Vec<i64> = sessions
        .iter()
        .filter(|(_, s)| keys::date_key(&DateTimeParts::from_epoch_millis(s.start_ms)) == date_key)
        .map(|(k, _)| *k)
        .collect();
    keys_of_day.sort_unstable();
    for session_key in keys_of_day {
        let s = &sessions[&session_key];
        report.sessions += 1;
        let old = current.get(&session_key);
        let parts = DateTimeParts::from_epoch_millis(s.start_ms);
        let level = starting_level(s.first_view.clone(), s.first_listen.clone())
            .unwrap_or_else(|| level_name(false).to_owned());
        let user_key = s.user_id.map(|id| {
            versions
                .get(&id)
                .and_then(|v| version_at(v, |from| *from, s.start_ms))
                .map(|from| keys::user_key(id, from))
                .or(old.and_then(|o| o.user_key))
                .unwrap_or_default()
        });
        let mut row = SessionFactRow {
            session_key,
            user_key,
            user_id: s.user_id,
            date_key: keys::date_key(&parts),
            date_time_key: keys::date_time_key(&parts),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            level,
            session_duration: (s.end_ms - s.start_ms) as f64 / 1000.0,
            listening_time: s.listening_time,
            listen_count: s.listen_count,
            event_count: s.event_count,
            // Page views' places are not kept, so the streaming core's choice stands.
            primary_location_key: old.map_or(0, |o| o.primary_location_key),
            record_valid_from_ms: 0,
            record_valid_to_ms: None,
            is_record_valid: true,
        };
        let valid_from = match old {
            Some(o) => {
                if agrees(&row, o) {
                    continue;
                }
                let from = superseding_from(s.end_ms, Some(o.record_valid_from_ms));
                let closed = o.superseded_at(from);
                output
                    .tables
                    .session_fact
                    .upsert((session_key, closed.record_valid_from_ms), closed);
                from
            }
            None => s.end_ms,
        };
        row.record_valid_from_ms = valid_from;
        output
            .tables
            .session_fact
            .upsert((session_key, valid_from), row);
        report.rewritten += 1;
    }
    store.upsert(&output)?;
    Ok(report)
}

/// Whether a recomputed row says what the current one says. Listening time is a sum of
/// floats, whose last bits depend on the order of addition.
fn agrees(recomputed: &SessionFactRow, current: &SessionFactRow) -> bool {
    let mut a = recomputed.clone();
    a.record_valid_from_ms = current.record_valid_from_ms;
    if (a.listening_time - current.listening_time).abs() < 1e-6 {
        a.listening_time = current.listening_time;
    }
    a == *current
}

impl SessionFactStore for DuckDb {
    fn aggregates(&mut self) -> Result<Vec<SessionAggregate>, PipelineError> {
        let read = || -> duckdb::Result<Vec<SessionAggregate>> {
            let mut statement = self.connection().prepare(AGGREGATES)?;
            let rows = statement.query_map([], |r| {
                let part = |at: usize| -> duckdb::Result<Option<(i64, i64, i64, String)>> {
                    Ok(
                        match (r.get(at)?, r.get(at + 1)?, r.get(at + 2)?, r.get(at + 3)?) {
                            (Some(n), Some(first), Some(last), Some(level)) => {
                                Some((n, first, last, level))
                            }
                            _ => None,
                        },
                    )
                };
                Ok(SessionAggregate {
                    session_key: r.get(0)?,
                    user_id: r.get(1)?,
                    views: part(2)?,
                    listens: part(6)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.error("cannot aggregate sessions", e))
    }

    fn listen_durations(&mut self) -> Result<Vec<(i64, f64)>, PipelineError> {
        let read = || -> duckdb::Result<Vec<(i64, f64)>> {
            let mut statement = self.connection().prepare(
                "SELECT f.session_key, f.duration FROM event_fact f
                 LEFT JOIN event_dim e USING (event_key)
                 WHERE f.is_record_valid
                 ORDER BY f.session_key, e.item_in_session NULLS LAST, f.\"timestamp\"",
            )?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|e| self.error("cannot read listens", e))
    }

    fn current_session_facts(&mut self) -> Result<HashMap<i64, SessionFactRow>, PipelineError> {
        let read = || -> duckdb::Result<HashMap<i64, SessionFactRow>> {
            let mut statement = self.connection().prepare(
                "SELECT session_key, user_key, user_id, date_key, date_time_key,
                        epoch_ms(session_start_ts), epoch_ms(session_end_ts), level,
                        session_duration, listening_time, listen_count, event_count,
                        primary_s_location, epoch_ms(record_valid_from)
                 FROM session_fact WHERE is_record_valid",
            )?;
            let rows = statement.query_map([], |r| {
                Ok(SessionFactRow {
                    session_key: r.get(0)?,
                    user_key: r.get(1)?,
                    user_id: r.get(2)?,
                    date_key: r.get(3)?,
                    date_time_key: r.get(4)?,
                    start_ms: r.get(5)?,
                    end_ms: r.get(6)?,
                    level: r.get(7)?,
                    session_duration: r.get(8)?,
                    listening_time: r.get(9)?,
                    listen_count: r.get(10)?,
                    event_count: r.get(11)?,
                    primary_location_key: r.get(12)?,
                    record_valid_from_ms: r.get(13)?,
                    record_valid_to_ms: None,
                    is_record_valid: true,
                })
            })?;
            rows.map(|r| r.map(|row| (row.session_key, row))).collect()
        };
        read().map_err(|e| self.error("cannot read session_fact", e))
    }

    fn user_versions(&mut self) -> Result<HashMap<i64, Vec<i64>>, PipelineError> {
        let read = || -> duckdb::Result<HashMap<i64, Vec<i64>>> {
            let mut statement = self.connection().prepare(
                "SELECT user_id, epoch_ms(valid_from) FROM user_dim ORDER BY user_id, valid_from",
            )?;
            let mut versions: HashMap<i64, Vec<i64>> = HashMap::new();
            for row in statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (user, from) = row?;
                versions.entry(user).or_default().push(from);
            }
            Ok(versions)
        };
        read().map_err(|e| self.error("cannot read user_dim", e))
    }

    fn upsert(&mut self, output: &Output) -> Result<(), PipelineError> {
        DuckDb::upsert(self, output)
    }
}

/// The BigQuery renderings of the same reads; names are qualified by the sink.
impl SessionFactStore for BigQuery {
    fn aggregates(&mut self) -> Result<Vec<SessionAggregate>, PipelineError> {
        let sql = self.qualify(
            "WITH views AS (
               SELECT b.session_key, UNIX_MILLIS(e.`timestamp`) AS ts, e.item_in_session AS item, e.level
               FROM `{event_session_bridge}` b JOIN `{event_dim}` e USING (event_key)
             ), listens AS (
               SELECT session_key, UNIX_MILLIS(`timestamp`) AS ts, level
               FROM `{event_fact}` WHERE is_record_valid
             ), v AS (
               SELECT session_key, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts,
                      ARRAY_AGG(level ORDER BY ts, item LIMIT 1)[OFFSET(0)] AS first_level
               FROM views GROUP BY session_key
             ), l AS (
               SELECT session_key, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts,
                      ARRAY_AGG(level ORDER BY ts LIMIT 1)[OFFSET(0)] AS first_level
               FROM listens GROUP BY session_key
             )
             SELECT s.session_key, s.user_id,
                    v.n, v.first_ts, v.last_ts, v.first_level,
                    l.n, l.first_ts, l.last_ts, l.first_level
             FROM `{session_dim}` s LEFT JOIN v USING (session_key) LEFT JOIN l USING (session_key)",
        );
        self.rows("aggregate sessions", &sql, 10)?
            .into_iter()
            .map(|row| {
                let part = |at: usize| -> Result<Option<(i64, i64, i64, String)>, PipelineError> {
                    Ok(match (&row[at], &row[at + 1], &row[at + 2], &row[at + 3]) {
                        (Some(n), Some(first), Some(last), Some(level)) => {
                            Some((int(n)?, int(first)?, int(last)?, level.clone()))
                        }
                        _ => None,
                    })
                };
                Ok(SessionAggregate {
                    session_key: int(required(&row[0])?)?,
                    user_id: row[1].as_deref().map(int).transpose()?,
                    views: part(2)?,
                    listens: part(6)?,
                })
            })
            .collect()
    }

    fn listen_durations(&mut self) -> Result<Vec<(i64, f64)>, PipelineError> {
        let sql = self.qualify(
            "SELECT f.session_key, f.duration FROM `{event_fact}` f
             LEFT JOIN `{event_dim}` e USING (event_key)
             WHERE f.is_record_valid
             ORDER BY f.session_key, e.item_in_session NULLS LAST, f.`timestamp`",
        );
        self.rows("read listens", &sql, 2)?
            .into_iter()
            .map(|row| Ok((int(required(&row[0])?)?, float(required(&row[1])?)?)))
            .collect()
    }

    fn current_session_facts(&mut self) -> Result<HashMap<i64, SessionFactRow>, PipelineError> {
        let sql = self.qualify(
            "SELECT session_key, user_key, user_id, date_key, date_time_key,
                    UNIX_MILLIS(session_start_ts), UNIX_MILLIS(session_end_ts), level,
                    session_duration, listening_time, listen_count, event_count,
                    primary_s_location, UNIX_MILLIS(record_valid_from)
             FROM `{session_fact}` WHERE is_record_valid",
        );
        self.rows("read session_fact", &sql, 14)?
            .into_iter()
            .map(|r| {
                let optional = |at: usize| r[at].as_deref().map(int).transpose();
                let row = SessionFactRow {
                    session_key: int(required(&r[0])?)?,
                    user_key: optional(1)?,
                    user_id: optional(2)?,
                    date_key: int(required(&r[3])?)?,
                    date_time_key: int(required(&r[4])?)?,
                    start_ms: int(required(&r[5])?)?,
                    end_ms: int(required(&r[6])?)?,
                    level: required(&r[7])?.to_owned(),
                    session_duration: float(required(&r[8])?)?,
                    listening_time: float(required(&r[9])?)?,
                    listen_count: int(required(&r[10])?)?,
                    event_count: int(required(&r[11])?)?,
                    primary_location_key: int(required(&r[12])?)?,
                    record_valid_from_ms: int(required(&r[13])?)?,
                    record_valid_to_ms: None,
                    is_record_valid: true,
                };
                Ok((row.session_key, row))
            })
            .collect()
    }

    fn user_versions(&mut self) -> Result<HashMap<i64, Vec<i64>>, PipelineError> {
        let sql = self.qualify(
            "SELECT user_id, UNIX_MILLIS(valid_from) FROM `{user_dim}` ORDER BY user_id, valid_from",
        );
        let mut versions: HashMap<i64, Vec<i64>> = HashMap::new();
        for row in self.rows("read user_dim", &sql, 2)? {
            let (user, from) = (int(required(&row[0])?)?, int(required(&row[1])?)?);
            versions.entry(user).or_default().push(from);
        }
        Ok(versions)
    }

    fn upsert(&mut self, output: &Output) -> Result<(), PipelineError> {
        BigQuery::upsert(self, output)
    }
}

fn answer_error(what: &str) -> PipelineError {
    PipelineError::BigQuery {
        message: format!("unexpected answer: {what}"),
        retryable: false,
    }
}

fn required(cell: &Option<String>) -> Result<&str, PipelineError> {
    cell.as_deref()
        .ok_or_else(|| answer_error("a NULL where a value belongs"))
}

fn int(text: &str) -> Result<i64, PipelineError> {
    text.parse()
        .map_err(|_| answer_error(&format!("{text:?} is not an integer")))
}

fn float(text: &str) -> Result<f64, PipelineError> {
    text.parse()
        .map_err(|_| answer_error(&format!("{text:?} is not a number")))
}
