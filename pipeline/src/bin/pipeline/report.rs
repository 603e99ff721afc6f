//! `pipeline report`: what a warehouse holds, table by table, and a few headline
//! analytics (the dashboard's KPIs over all time), as a quick look after a run.

use std::path::Path;

use anyhow::{Context, Result};
use duckdb::{AccessMode, Config};
use pipeline::analytics::{Cell, DuckDbKpis, Snapshot};
use warehouse::analytics::{
    ACTIVE_USERS_30D, HOURS_LISTENED, KPIS, Kpi, LISTENS, Period, SESSION_LISTENING_TIME,
    TOP_ARTISTS,
};

pub fn print(path: &Path) -> Result<()> {
    let config = Config::default()
        .access_mode(AccessMode::ReadOnly)
        .context("DuckDB's read-only mode")?;
    let db = pipeline::sinks::duckdb::connect(path, config)
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

    // The headline figures are the dashboard's KPIs, so that both always agree.
    let mut kpis = DuckDbKpis::new(db, &path.display().to_string());
    let snapshot = Snapshot::read(&mut kpis, Some(vec![Period::all()]))
        .context("reading the KPI views (a warehouse written by an older pipeline lacks them; run the pipeline on it once)")?;
    let answers = &snapshot.periods[0].answers;
    let answer = |kpi: &Kpi| -> &[Vec<Cell>] {
        KPIS.iter()
            .position(|k| k.name == kpi.name)
            .map_or(&[], |i| answers[i].as_slice())
    };
    let first = |kpi: &Kpi, column: usize| -> String {
        answer(kpi)
            .first()
            .and_then(|row| row.get(column))
            .map_or_else(|| "-".to_owned(), Cell::to_string)
    };
    let hours: f64 = first(&HOURS_LISTENED, 0).parse().unwrap_or(0.0);
    let minutes: f64 = first(&SESSION_LISTENING_TIME, 1).parse().unwrap_or(0.0);
    println!(
        "  {} listens, {hours:.0} hours listened, {} sessions ({minutes:.1} minutes of music each on average), {} users active in the 30 days to {}",
        first(&LISTENS, 0),
        first(&SESSION_LISTENING_TIME, 0),
        first(&ACTIVE_USERS_30D, 1),
        first(&ACTIVE_USERS_30D, 0),
    );
    println!("  top artists:");
    for (i, row) in answer(&TOP_ARTISTS).iter().enumerate() {
        println!("    {}. {} ({} listens)", i + 1, row[0], row[1]);
    }
    Ok(())
}
