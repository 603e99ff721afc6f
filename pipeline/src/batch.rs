//! `pipeline batch session-fact`: recomputes one day's session facts from what the
//! warehouse holds (page views through the bridge, current event facts, user versions)
//! and writes a new version wherever the current row disagrees, closing the old one.
//! With the same definitions as the streaming core, a consistent warehouse is left
//! unchanged, and a second run after a first changes nothing.

use std::collections::HashMap;

use warehouse::keys;
use warehouse::time::DateTimeParts;

use crate::error::PipelineError;
use crate::sinks::DuckDb;
use crate::transforms::Output;
use crate::transforms::rows::SessionFactRow;

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
pub fn session_fact(sink: &mut DuckDb, date: &str) -> Result<SessionFactReport, PipelineError> {
    let date_key: i64 = date
        .replace('-', "")
        .parse()
        .ok()
        .filter(|_| date.len() == 10)
        .ok_or_else(|| {
            PipelineError::Incompatible(format!("--date {date:?}: expected YYYY-MM-DD"))
        })?;
    let db_error = |doing: &str, e: duckdb::Error| PipelineError::DuckDb {
        path: "the warehouse".to_owned(),
        message: format!("{doing}: {e}"),
    };

    let mut sessions: HashMap<i64, Recomputed> = HashMap::new();
    {
        let mut statement = sink
            .connection()
            .prepare(AGGREGATES)
            .map_err(|e| db_error("cannot aggregate sessions", e))?;
        let rows = statement
            .query_map([], |r| {
                let session_key: i64 = r.get(0)?;
                let user_id: Option<i64> = r.get(1)?;
                let views: Option<i64> = r.get(2)?;
                let view_first: Option<i64> = r.get(3)?;
                let view_last: Option<i64> = r.get(4)?;
                let view_level: Option<String> = r.get(5)?;
                let listens: Option<i64> = r.get(6)?;
                let listen_first: Option<i64> = r.get(7)?;
                let listen_last: Option<i64> = r.get(8)?;
                let listen_level: Option<String> = r.get(9)?;
                let firsts = [view_first, listen_first].into_iter().flatten();
                let lasts = [view_last, listen_last].into_iter().flatten();
                Ok((
                    session_key,
                    Recomputed {
                        start_ms: firsts.min().unwrap_or(0),
                        end_ms: lasts.max().unwrap_or(0),
                        first_view: view_first.zip(view_level),
                        first_listen: listen_first.zip(listen_level),
                        event_count: views.unwrap_or(0),
                        listen_count: listens.unwrap_or(0),
                        // Summed below, in the streaming core's order.
                        listening_time: 0.0,
                        user_id,
                    },
                ))
            })
            .map_err(|e| db_error("cannot aggregate sessions", e))?;
        for row in rows {
            let (key, recomputed) = row.map_err(|e| db_error("cannot read an aggregate", e))?;
            if recomputed.event_count + recomputed.listen_count > 0 {
                sessions.insert(key, recomputed);
            }
        }
    }
    // Listening time is summed here, in the streaming core's order (by position in the
    // session), so that the same listens give the same bits.
    {
        let mut statement = sink
            .connection()
            .prepare(
                "SELECT f.session_key, f.duration FROM event_fact f
                 LEFT JOIN event_dim e USING (event_key)
                 WHERE f.is_record_valid
                 ORDER BY f.session_key, e.item_in_session NULLS LAST, f.\"timestamp\"",
            )
            .map_err(|e| db_error("cannot read listens", e))?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
            .map_err(|e| db_error("cannot read listens", e))?;
        for row in rows {
            let (key, duration) = row.map_err(|e| db_error("cannot read a listen", e))?;
            if let Some(s) = sessions.get_mut(&key) {
                s.listening_time += duration;
            }
        }
    }
    let current = current_rows(sink).map_err(|e| db_error("cannot read session_fact", e))?;
    let versions = user_versions(sink).map_err(|e| db_error("cannot read user_dim", e))?;

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
        let level = match (&s.first_view, &s.first_listen) {
            (Some((v, _)), Some((l, level))) if l < v => level.clone(),
            (Some((_, level)), _) | (None, Some((_, level))) => level.clone(),
            (None, None) => "free".to_owned(),
        };
        let user_key = s.user_id.map(|id| {
            versions
                .get(&id)
                .map(|v| version_key(id, v, s.start_ms))
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
                let mut closed = o.clone();
                let from = s.end_ms.max(o.record_valid_from_ms + 1);
                closed.record_valid_to_ms = Some(from);
                closed.is_record_valid = false;
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
    sink.upsert(&output)?;
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

fn version_key(user_id: i64, versions: &[i64], ts: i64) -> i64 {
    let i = versions.partition_point(|from| *from <= ts);
    keys::user_key(user_id, versions[i.saturating_sub(1)])
}

fn user_versions(sink: &DuckDb) -> duckdb::Result<HashMap<i64, Vec<i64>>> {
    let mut statement = sink.connection().prepare(
        "SELECT user_id, epoch_ms(valid_from) FROM user_dim ORDER BY user_id, valid_from",
    )?;
    let mut versions: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in statement.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (user, from) = row?;
        versions.entry(user).or_default().push(from);
    }
    Ok(versions)
}

fn current_rows(sink: &DuckDb) -> duckdb::Result<HashMap<i64, SessionFactRow>> {
    let mut statement = sink.connection().prepare(
        "SELECT session_key, user_key, user_id, date_key, date_time_key,
                epoch_ms(session_start_ts), epoch_ms(session_end_ts), level, session_duration,
                listening_time, listen_count, event_count, primary_s_location,
                epoch_ms(record_valid_from)
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
}
