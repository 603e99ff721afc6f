//! `pipeline report`: what a warehouse holds, table by table, and a few headline
//! analytics, as a quick look after a run.

use std::path::Path;

use anyhow::{Context, Result};
use duckdb::{AccessMode, Config, Connection};

pub fn print(path: &Path) -> Result<()> {
    let config = Config::default()
        .access_mode(AccessMode::ReadOnly)
        .context("DuckDB's read-only mode")?;
    let db = Connection::open_with_flags(path, config)
        .with_context(|| format!("cannot open the warehouse {}", path.display()))?;
    let count = |table: &str| -> Result<i64> {
        db.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .with_context(|| format!("counting {table}"))
    };
    println!("warehouse {}", path.display());
    for table in warehouse::schema::TABLES {
        println!("  {:<22} {:>10} rows", table.name, count(table.name)?);
    }
    let mut reasons = db.prepare(
        "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY count(*) DESC, reason",
    )?;
    let reasons: Vec<(String, i64)> = reasons
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (reason, n) in reasons {
        println!("  dead letters: {n} {reason}");
    }

    let (listens, hours, users, sessions, minutes): (i64, f64, i64, i64, f64) = db.query_row(
        "SELECT
           (SELECT count(*) FROM event_fact WHERE is_record_valid),
           (SELECT coalesce(sum(duration), 0) / 3600 FROM event_fact WHERE is_record_valid),
           (SELECT count(DISTINCT user_id) FROM event_dim WHERE user_id IS NOT NULL),
           (SELECT count(*) FROM session_fact WHERE is_record_valid),
           (SELECT coalesce(avg(session_duration), 0) / 60 FROM session_fact WHERE is_record_valid)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    println!(
        "  {listens} listens, {hours:.0} hours listened, {users} active users, {sessions} sessions ({minutes:.1} minutes on average)"
    );
    let mut top = db.prepare(
        "SELECT s.artist, count(*) AS listens
         FROM event_fact f JOIN song_dim s USING (song_key)
         WHERE f.is_record_valid
         GROUP BY s.artist ORDER BY listens DESC, s.artist LIMIT 5",
    )?;
    let top: Vec<(String, i64)> = top
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    println!("  top artists:");
    for (i, (artist, n)) in top.iter().enumerate() {
        println!("    {}. {artist} ({n} listens)", i + 1);
    }
    Ok(())
}
