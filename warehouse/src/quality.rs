//! Data-quality checks of a warehouse, as SQL for DuckDB or BigQuery: rows per day, every
//! foreign key found in its dimension, no primary key stored twice. Each check is one
//! query answering one count; `pipeline check` runs them, the daily DAG calls that.

use crate::analytics::Dialect;
use crate::schema::{TABLES, Table, foreign_keys};

/// The three families of checks, one task each in the daily DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// Rows of the day in every table keyed by day; the day must have sessions.
    RowCounts,
    /// Every fact's (and the bridge's) foreign keys resolve in their dimensions.
    Keys,
    /// No table holds a primary key twice.
    Duplicates,
}

impl CheckKind {
    pub const ALL: [CheckKind; 3] = [CheckKind::RowCounts, CheckKind::Keys, CheckKind::Duplicates];

    /// The name on the command line and in the DAG: `row-counts`, `keys`, `duplicates`.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::RowCounts => "row-counts",
            CheckKind::Keys => "keys",
            CheckKind::Duplicates => "duplicates",
        }
    }

    pub fn from_name(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What a check's count must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Zero,
    AtLeastOne,
    /// Any count: reported, never failing.
    Any,
}

impl Expect {
    pub fn holds(self, count: u64) -> bool {
        match self {
            Expect::Zero => count == 0,
            Expect::AtLeastOne => count >= 1,
            Expect::Any => true,
        }
    }
}

/// One query counting one thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    /// What is counted, for people: `event_fact.song_key not in song_dim`.
    pub name: String,
    pub sql: String,
    pub expect: Expect,
}

fn has_day(table: &Table) -> bool {
    table.column("date_key").is_some()
}

/// The checks of one kind; `date_key` (YYYYMMDD) limits them to a day's rows where a
/// table is keyed by day (dimensions and duplicate checks always cover whole tables).
/// BigQuery renderings name tables `${dataset}.table`; see `analytics::instantiate`.
pub fn checks(kind: CheckKind, dialect: Dialect, date_key: Option<i64>) -> Vec<Check> {
    let day = |alias: &str, table: &Table| match date_key {
        Some(key) if has_day(table) => format!(" AND {alias}date_key = {key}"),
        _ => String::new(),
    };
    match kind {
        CheckKind::RowCounts => TABLES
            .iter()
            .filter(|t| has_day(t))
            .map(|table| {
                let expect = if table.name == "session_fact" || table.name == "date_dim" {
                    Expect::AtLeastOne
                } else {
                    Expect::Any
                };
                Check {
                    kind,
                    name: format!("{} rows", table.name),
                    sql: format!(
                        "SELECT COUNT(*) FROM {} WHERE TRUE{}",
                        dialect.table(table.name),
                        day("", table)
                    ),
                    expect,
                }
            })
            .collect(),
        CheckKind::Keys => foreign_keys()
            .into_iter()
            .map(|fk| Check {
                kind,
                name: format!(
                    "{}.{} not in {}",
                    fk.table.name, fk.column, fk.dimension.name
                ),
                sql: format!(
                    "SELECT COUNT(*) FROM {t} AS f LEFT JOIN {d} AS d ON d.{k} = f.{c} \
                     WHERE f.{c} IS NOT NULL AND d.{k} IS NULL{day}",
                    t = dialect.table(fk.table.name),
                    d = dialect.table(fk.dimension.name),
                    k = fk.key,
                    c = fk.column,
                    day = day("f.", fk.table),
                ),
                expect: Expect::Zero,
            })
            .collect(),
        CheckKind::Duplicates => TABLES
            .iter()
            .map(|table| {
                let key = table.primary_key.join(", ");
                Check {
                    kind,
                    name: format!("{} keys stored twice", table.name),
                    sql: format!(
                        "SELECT COUNT(*) FROM (SELECT {key} FROM {} GROUP BY {key} HAVING COUNT(*) > 1) AS twice",
                        dialect.table(table.name)
                    ),
                    expect: Expect::Zero,
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_and_the_bridge_have_their_keys_checked() {
        let names: Vec<String> = checks(CheckKind::Keys, Dialect::DuckDb, None)
            .into_iter()
            .map(|c| c.name)
            .collect();
        for expected in [
            "event_fact.song_key not in song_dim",
            "session_fact.primary_s_location not in location_dim",
            "event_session_bridge.event_key not in event_dim",
            "level_change_fact.session_key not in session_dim",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("event_fact.event_key")));
    }

    #[test]
    fn a_day_limits_day_keyed_tables_only() {
        let keys = checks(CheckKind::Keys, Dialect::BigQuery, Some(20_260_105));
        let bridge = keys
            .iter()
            .find(|c| c.name.starts_with("event_session_bridge"))
            .unwrap();
        assert!(!bridge.sql.contains("date_key"), "{}", bridge.sql);
        let fact = keys
            .iter()
            .find(|c| c.name.starts_with("event_fact.song_key"))
            .unwrap();
        assert!(
            fact.sql.ends_with(" AND f.date_key = 20260105"),
            "{}",
            fact.sql
        );
        assert!(fact.sql.contains("`${dataset}.song_dim`"), "{}", fact.sql);
        let counts = checks(CheckKind::RowCounts, Dialect::DuckDb, Some(20_260_105));
        assert!(
            counts
                .iter()
                .all(|c| c.sql.ends_with("date_key = 20260105"))
        );
        assert!(counts.iter().any(|c| c.expect == Expect::AtLeastOne));
    }

    #[test]
    fn kinds_read_back_from_their_names() {
        for kind in CheckKind::ALL {
            assert_eq!(CheckKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(CheckKind::from_name("everything"), None);
    }
}
