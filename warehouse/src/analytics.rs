//! The dashboard's KPIs: one view per KPI over the star schema, generated for DuckDB and
//! BigQuery, and the query that reads each view for a period (a month, a quarter, any
//! date range).
//!
//! Views keep a date grain (`date`, or `month_start` for monthly KPIs) plus `year`,
//! `quarter` and `month`, so that anyone can filter them by period in plain SQL; the
//! period queries do the final aggregation (top five, averages as ratios of sums), which
//! stays correct for any range because it sums counts and seconds, never averages of
//! averages or rounded figures.
//! Only current record versions (`is_record_valid`) count.

use std::fmt::{self, Write as _};

use crate::schema::{self, GENERATED_HEADER};
use crate::time::{civil_from_days, days_from_civil, parse_iso_date};
use crate::{Classify, ErrorClass};

/// The SQL dialect a view or query is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    /// Table names are `${dataset}.table`, with `${dataset}` standing for
    /// `project.dataset` (the placeholder Terraform's `templatefile` fills too); see
    /// [`instantiate`].
    BigQuery,
}

/// The placeholder of BigQuery renderings, replaced by `project.dataset`.
pub const DATASET_PLACEHOLDER: &str = "${dataset}";

/// Replaces the dataset placeholder of a BigQuery rendering.
pub fn instantiate(sql: &str, project_dataset: &str) -> String {
    sql.replace(DATASET_PLACEHOLDER, project_dataset)
}

impl Dialect {
    pub(crate) fn table(self, name: &str) -> String {
        match self {
            Dialect::DuckDb => name.to_owned(),
            Dialect::BigQuery => format!("`{DATASET_PLACEHOLDER}.{name}`"),
        }
    }

    fn month_start(self, year: &str, month: &str) -> String {
        match self {
            Dialect::DuckDb => format!("make_date({year}, {month}, 1)"),
            Dialect::BigQuery => format!("DATE({year}, {month}, 1)"),
        }
    }

    /// A column as text under its own name (dates as `YYYY-MM-DD` in both dialects).
    fn text(self, column: &str) -> String {
        match self {
            Dialect::DuckDb => format!("CAST({column} AS VARCHAR) AS {column}"),
            Dialect::BigQuery => format!("CAST({column} AS STRING) AS {column}"),
        }
    }
}

/// The type of a column of a period query's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int,
    Float,
    /// Text, dates included (as `YYYY-MM-DD`).
    Text,
}

/// A range of whole days, both ends included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// How people call it: `all`, `2026-Q1`, `2026-01` or `2026-01-05..2026-01-11`.
    pub label: String,
    /// First day, in days since 1970-01-01.
    pub from: i64,
    /// Last day, in days since 1970-01-01.
    pub to: i64,
}

/// Why a period could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a period: use all, a quarter (2026-Q1), a month (2026-01) or a date range (2026-01-05..2026-01-11)"
)]
pub struct BadPeriod(pub String);

impl Classify for BadPeriod {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadData
    }
}

impl Period {
    pub fn all() -> Period {
        Period {
            label: "all".to_owned(),
            from: days_from_civil(1, 1, 1),
            to: days_from_civil(9999, 12, 31),
        }
    }

    pub fn month(year: i64, month: u32) -> Period {
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        Period {
            label: format!("{year:04}-{month:02}"),
            from: days_from_civil(year, month, 1),
            to: days_from_civil(next_year, next_month, 1) - 1,
        }
    }

    pub fn quarter(year: i64, quarter: u32) -> Period {
        let first = Period::month(year, quarter * 3 - 2);
        let last = Period::month(year, quarter * 3);
        Period {
            label: format!("{year:04}-Q{quarter}"),
            from: first.from,
            to: last.to,
        }
    }

    /// Reads `all`, `2026-Q1`, `2026-01` or `2026-01-05..2026-01-11`.
    pub fn parse(text: &str) -> Result<Period, BadPeriod> {
        let bad = || BadPeriod(text.to_owned());
        if text == "all" {
            return Ok(Period::all());
        }
        if let Some((from, to)) = text.split_once("..") {
            let (from, to) = (
                parse_iso_date(from).ok_or_else(bad)?,
                parse_iso_date(to).ok_or_else(bad)?,
            );
            if from > to {
                return Err(bad());
            }
            return Ok(Period {
                label: text.to_owned(),
                from,
                to,
            });
        }
        let (year, rest) = text.split_once('-').ok_or_else(bad)?;
        let year: i64 = year.parse().map_err(|_| bad())?;
        if !(1..=9999).contains(&year) {
            return Err(bad());
        }
        if let Some(quarter) = rest.strip_prefix('Q') {
            return match quarter.parse() {
                Ok(q @ 1..=4) => Ok(Period::quarter(year, q)),
                _ => Err(bad()),
            };
        }
        match rest.parse() {
            Ok(m @ 1..=12) if rest.len() == 2 => Ok(Period::month(year, m)),
            _ => Err(bad()),
        }
    }

    fn first_day_literal(&self) -> String {
        date_literal(self.from)
    }

    fn last_day_literal(&self) -> String {
        date_literal(self.to)
    }

    /// The first day of the month of the period's start, so that a period starting
    /// mid-month keeps that month in monthly KPIs.
    fn first_month_literal(&self) -> String {
        let (y, m, _) = civil_from_days(self.from);
        date_literal(days_from_civil(y, m, 1))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// `YYYY-MM-DD` of a day count.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn date_literal(days: i64) -> String {
    format!("DATE '{}'", format_date(days))
}

/// One KPI: a view over the star schema and the query that answers it for a period.
#[derive(Debug)]
pub struct Kpi {
    /// The view's name, also the KPI's id in the dashboard.
    pub name: &'static str,
    /// A chart title.
    pub title: &'static str,
    /// What the view holds, as its comment.
    pub description: &'static str,
    /// The columns of the period query's answer.
    pub columns: &'static [(&'static str, Type)],
    view: fn(Dialect) -> String,
    query: fn(Dialect, &str, &Period) -> String,
}

impl Kpi {
    /// The view's `SELECT`.
    pub fn view_sql(&self, dialect: Dialect) -> String {
        (self.view)(dialect)
    }

    /// The query answering the KPI over a period, reading the view.
    pub fn query_sql(&self, dialect: Dialect, period: &Period) -> String {
        (self.query)(dialect, &dialect.table(self.name), period)
    }

    /// `CREATE OR REPLACE VIEW` with the view's description.
    pub fn create_view(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::DuckDb => format!(
                "CREATE OR REPLACE VIEW {name} AS\n{select};\nCOMMENT ON VIEW {name} IS {comment};",
                name = self.name,
                select = self.view_sql(dialect),
                comment = schema::duckdb::string_literal(self.description),
            ),
            Dialect::BigQuery => format!(
                "CREATE OR REPLACE VIEW {name}\nOPTIONS (description = {comment}) AS\n{select};",
                name = dialect.table(self.name),
                select = self.view_sql(dialect),
                comment = schema::bigquery::string_literal(self.description),
            ),
        }
    }
}

/// Every KPI, in the dashboard's order.
pub const KPIS: &[&Kpi] = &[
    &LISTENS,
    &HOURS_LISTENED,
    &SESSION_LISTENING_TIME,
    &ACTIVE_USERS_30D,
    &TOP_ARTISTS,
    &TOP_STATES,
    &LISTENS_BY_LEVEL,
    &PAID_FREE_USERS_MOM,
    &LISTENS_MONTHLY,
    &USERS_PER_STATE_MONTHLY,
    &LISTENING_CITIES,
];

/// The KPI of a view name.
pub fn kpi(name: &str) -> Option<&'static Kpi> {
    KPIS.iter().copied().find(|k| k.name == name)
}

/// The date columns every daily view starts with.
const DAY: &str = "d.date, d.year, d.quarter, d.month";

/// Valid listens with their day: the base of most views.
fn listens_by_day(d: Dialect) -> String {
    format!(
        "FROM {event_fact} AS f\nJOIN {date_dim} AS d ON d.date_key = f.date_key\nWHERE f.is_record_valid",
        event_fact = d.table("event_fact"),
        date_dim = d.table("date_dim"),
    )
}

/// The month columns every monthly view starts with.
fn month_columns(d: Dialect) -> String {
    format!(
        "d.year, d.quarter, d.month, {} AS month_start",
        d.month_start("d.year", "d.month")
    )
}

fn in_period(column: &str, period: &Period) -> String {
    format!(
        "{column} BETWEEN {} AND {}",
        period.first_day_literal(),
        period.last_day_literal()
    )
}

fn months_in_period(period: &Period) -> String {
    format!(
        "month_start BETWEEN {} AND {}",
        period.first_month_literal(),
        period.last_day_literal()
    )
}

pub const LISTENS: Kpi = Kpi {
    name: "kpi_listens",
    title: "Listens",
    description: "Listens (songs started) per day.",
    columns: &[("listens", Type::Int)],
    view: |d| {
        format!(
            "SELECT {DAY}, COUNT(*) AS listens\n{}\nGROUP BY {DAY}",
            listens_by_day(d)
        )
    },
    query: |_, view, p| {
        format!(
            "SELECT COALESCE(SUM(listens), 0) AS listens FROM {view} WHERE {}",
            in_period("date", p)
        )
    },
};

pub const HOURS_LISTENED: Kpi = Kpi {
    name: "kpi_hours_listened",
    title: "Hours listened",
    description: "Seconds of music started per day (the sum of the listened songs' lengths); the period query turns them into hours.",
    columns: &[("hours", Type::Float)],
    view: |d| {
        format!(
            "SELECT {DAY}, SUM(f.duration) AS seconds\n{}\nGROUP BY {DAY}",
            listens_by_day(d)
        )
    },
    query: |_, view, p| {
        format!(
            "SELECT COALESCE(SUM(seconds), 0) / 3600 AS hours FROM {view} WHERE {}",
            in_period("date", p)
        )
    },
};

pub const SESSION_LISTENING_TIME: Kpi = Kpi {
    name: "kpi_session_listening_time",
    title: "Average listening time per session",
    description: "Sessions per day of their start and the seconds of music they played; the period query divides one by the other.",
    columns: &[("sessions", Type::Int), ("average_minutes", Type::Float)],
    view: |d| {
        format!(
            "SELECT {DAY}, COUNT(*) AS sessions, SUM(s.listening_time) AS listening_seconds\n\
             FROM {session_fact} AS s\nJOIN {date_dim} AS d ON d.date_key = s.date_key\n\
             WHERE s.is_record_valid\nGROUP BY {DAY}",
            session_fact = d.table("session_fact"),
            date_dim = d.table("date_dim"),
        )
    },
    query: |_, view, p| {
        format!(
            "SELECT COALESCE(SUM(sessions), 0) AS sessions, \
             SUM(listening_seconds) / 60 / NULLIF(SUM(sessions), 0) AS average_minutes \
             FROM {view} WHERE {}",
            in_period("date", p)
        )
    },
};

pub const ACTIVE_USERS_30D: Kpi = Kpi {
    name: "kpi_active_users_30d",
    title: "Active users, last 30 days",
    description: "For each day, the users who listened in the 30 days ending that day (both included).",
    columns: &[("date", Type::Text), ("active_users", Type::Int)],
    // Listeners per day first, so that the 30-day window joins user-days, not every
    // listen thirty times.
    view: |d| {
        format!(
            "WITH listeners AS (\n\
             SELECT DISTINCT f.date_key, f.user_id FROM {event_fact} AS f WHERE f.is_record_valid\n)\n\
             SELECT {DAY}, COUNT(DISTINCT l.user_id) AS active_users\n\
             FROM {date_dim} AS d\n\
             JOIN {date_dim} AS w ON w.timestamp_unix BETWEEN d.timestamp_unix - 29 * 86400 AND d.timestamp_unix\n\
             LEFT JOIN listeners AS l ON l.date_key = w.date_key\n\
             GROUP BY {DAY}",
            date_dim = d.table("date_dim"),
            event_fact = d.table("event_fact"),
        )
    },
    // The period's last day that has data: "the last 30 days" as of the period's end.
    query: |d, view, p| {
        format!(
            "SELECT {}, active_users FROM {view} WHERE {} ORDER BY date DESC LIMIT 1",
            d.text("date"),
            in_period("date", p)
        )
    },
};

pub const TOP_ARTISTS: Kpi = Kpi {
    name: "kpi_top_artists",
    title: "Top 5 artists",
    description: "Listens per artist and day; the period query keeps the five most listened.",
    columns: &[("artist", Type::Text), ("listens", Type::Int)],
    view: |d| {
        format!(
            "SELECT {DAY}, s.artist, COUNT(*) AS listens\n{}\n\
             GROUP BY {DAY}, s.artist",
            listens_by_day(d).replace(
                "\nWHERE",
                &format!(
                    "\nJOIN {} AS s ON s.song_key = f.song_key\nWHERE",
                    d.table("song_dim")
                )
            )
        )
    },
    query: |_, view, p| {
        format!(
            "SELECT artist, SUM(listens) AS listens FROM {view} WHERE {} \
             GROUP BY artist ORDER BY listens DESC, artist LIMIT 5",
            in_period("date", p)
        )
    },
};

/// Joins listens to where they happened.
fn listens_with_location(d: Dialect) -> String {
    listens_by_day(d).replace(
        "\nWHERE",
        &format!(
            "\nJOIN {} AS l ON l.location_key = f.location_key\nWHERE",
            d.table("location_dim")
        ),
    )
}

pub const TOP_STATES: Kpi = Kpi {
    name: "kpi_top_states",
    title: "Listens in the top 5 states",
    description: "Listens per state and day, by where the listener was; the period query keeps the five states with most.",
    columns: &[("state", Type::Text), ("listens", Type::Int)],
    view: |d| {
        format!(
            "SELECT {DAY}, l.state, COUNT(*) AS listens\n{}\nGROUP BY {DAY}, l.state",
            listens_with_location(d)
        )
    },
    query: |_, view, p| {
        format!(
            "SELECT state, SUM(listens) AS listens FROM {view} WHERE {} \
             GROUP BY state ORDER BY listens DESC, state LIMIT 5",
            in_period("date", p)
        )
    },
};

pub const LISTENS_BY_LEVEL: Kpi = Kpi {
    name: "kpi_listens_by_level",
    title: "Share of listens by level",
    description: "Listens per subscription level (free or paid, at the time of the listen) and day.",
    columns: &[
        ("level", Type::Text),
        ("listens", Type::Int),
        ("percent", Type::Float),
    ],
    view: |d| {
        format!(
            "SELECT {DAY}, f.level, COUNT(*) AS listens\n{}\nGROUP BY {DAY}, f.level",
            listens_by_day(d)
        )
    },
    query: |_, view, p| {
        format!(
            "SELECT level, SUM(listens) AS listens, \
             100 * SUM(listens) / SUM(SUM(listens)) OVER () AS percent \
             FROM {view} WHERE {} GROUP BY level ORDER BY level",
            in_period("date", p)
        )
    },
};

pub const PAID_FREE_USERS_MOM: Kpi = Kpi {
    name: "kpi_paid_free_users_mom",
    title: "Free and paid users, month over month",
    description: "Users who listened at each level per month, the previous calendar month's count and the change in percent (NULL without a previous month).",
    columns: &[
        ("month_start", Type::Text),
        ("level", Type::Text),
        ("users", Type::Int),
        ("previous_users", Type::Int),
        ("percent_change", Type::Float),
    ],
    view: |d| {
        format!(
            "WITH m AS (\n\
             SELECT d.year, d.quarter, d.month, f.level, COUNT(DISTINCT f.user_id) AS users\n\
             {}\nGROUP BY d.year, d.quarter, d.month, f.level\n)\n\
             SELECT m.year, m.quarter, m.month, {} AS month_start, m.level, m.users,\n\
             p.users AS previous_users,\n\
             100 * (m.users - p.users) / NULLIF(p.users, 0) AS percent_change\n\
             FROM m\nLEFT JOIN m AS p ON p.level = m.level AND p.year * 12 + p.month = m.year * 12 + m.month - 1",
            listens_by_day(d),
            d.month_start("m.year", "m.month"),
        )
    },
    query: |d, view, p| {
        format!(
            "SELECT {}, level, users, previous_users, percent_change FROM {view} \
             WHERE {} ORDER BY month_start, level",
            d.text("month_start"),
            months_in_period(p)
        )
    },
};

pub const LISTENS_MONTHLY: Kpi = Kpi {
    name: "kpi_listens_monthly",
    title: "Listens and hours listened per month",
    description: "Listens and the hours of music they started, per month.",
    columns: &[
        ("month_start", Type::Text),
        ("listens", Type::Int),
        ("hours", Type::Float),
    ],
    view: |d| {
        format!(
            "SELECT {}, COUNT(*) AS listens, SUM(f.duration) / 3600 AS hours\n{}\n\
             GROUP BY d.year, d.quarter, d.month",
            month_columns(d),
            listens_by_day(d)
        )
    },
    query: |d, view, p| {
        format!(
            "SELECT {}, listens, hours FROM {view} WHERE {} ORDER BY month_start",
            d.text("month_start"),
            months_in_period(p)
        )
    },
};

pub const USERS_PER_STATE_MONTHLY: Kpi = Kpi {
    name: "kpi_users_per_state_monthly",
    title: "Users per state per month",
    description: "Users who listened from each state per month (a user who travelled counts in each state).",
    columns: &[
        ("month_start", Type::Text),
        ("state", Type::Text),
        ("users", Type::Int),
    ],
    view: |d| {
        format!(
            "SELECT {}, l.state, COUNT(DISTINCT f.user_id) AS users\n{}\n\
             GROUP BY d.year, d.quarter, d.month, l.state",
            month_columns(d),
            listens_with_location(d)
        )
    },
    query: |d, view, p| {
        format!(
            "SELECT {}, state, users FROM {view} WHERE {} ORDER BY month_start, state",
            d.text("month_start"),
            months_in_period(p)
        )
    },
};

pub const LISTENING_CITIES: Kpi = Kpi {
    name: "kpi_listening_cities",
    title: "Where people listen",
    description: "Listens per place (city, state and coordinates) and day; the period query ranks cities, each at the listen-weighted mean of its coordinates.",
    columns: &[
        ("city", Type::Text),
        ("state", Type::Text),
        ("lat", Type::Float),
        ("lon", Type::Float),
        ("listens", Type::Int),
    ],
    view: |d| {
        format!(
            "SELECT {DAY}, l.city, l.state, l.lat, l.lon, COUNT(*) AS listens\n{}\n\
             GROUP BY {DAY}, l.city, l.state, l.lat, l.lon",
            listens_with_location(d)
        )
    },
    // Rounded to about 100 m, so that engines summing in different orders agree.
    query: |_, view, p| {
        format!(
            "SELECT city, state, ROUND(SUM(lat * listens) / SUM(listens), 3) AS lat, \
             ROUND(SUM(lon * listens) / SUM(listens), 3) AS lon, SUM(listens) AS listens \
             FROM {view} WHERE {} GROUP BY city, state \
             ORDER BY listens DESC, state, city LIMIT 100",
            in_period("date", p)
        )
    },
};

/// Every view as one script, for `warehouse/ddl/<dialect>/views.sql`.
pub fn views_script(dialect: Dialect) -> String {
    let mut sql = String::from(GENERATED_HEADER).replace("schema/tables.rs", "analytics.rs");
    sql.push_str(match dialect {
        Dialect::DuckDb => "-- DuckDB: the KPI views of the embedded warehouse.\n",
        Dialect::BigQuery => {
            "-- BigQuery: the KPI views; replace ${dataset} with project.dataset.\n"
        }
    });
    for kpi in KPIS {
        let _ = write!(sql, "\n{}\n", kpi.create_view(dialect));
    }
    sql
}

/// Every view's name, description and `SELECT` file, for Terraform:
/// `warehouse/ddl/bigquery/views.json`.
pub fn views_manifest() -> String {
    let views: Vec<serde_json::Value> = KPIS
        .iter()
        .map(|kpi| {
            serde_json::json!({
                "name": kpi.name,
                "description": kpi.description,
                "query_file": format!("views/{}.sql", kpi.name),
            })
        })
        .collect();
    let manifest = serde_json::json!({ "views": views });
    // A value of strings only always serializes.
    serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_months_quarters_ranges_and_all() {
        let january = Period::parse("2026-01").unwrap();
        assert_eq!(
            (format_date(january.from), format_date(january.to)),
            ("2026-01-01".into(), "2026-01-31".into())
        );
        let q1 = Period::parse("2024-Q1").unwrap();
        assert_eq!(
            (format_date(q1.from), format_date(q1.to)),
            ("2024-01-01".into(), "2024-03-31".into())
        );
        let q4 = Period::parse("2026-Q4").unwrap();
        assert_eq!(format_date(q4.to), "2026-12-31");
        let range = Period::parse("2026-01-05..2026-02-10").unwrap();
        assert_eq!(range.to - range.from, 36);
        assert_eq!(Period::parse("all").unwrap(), Period::all());
        for bad in [
            "",
            "2026",
            "2026-13",
            "2026-1",
            "2026-Q5",
            "2026-Q0",
            "2026-02-30..2026-03-01",
            "2026-03-01..2026-02-01",
            "last week",
        ] {
            assert_eq!(Period::parse(bad), Err(BadPeriod(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn a_period_starting_mid_month_keeps_its_month_in_monthly_kpis() {
        let range = Period::parse("2026-01-20..2026-02-10").unwrap();
        let sql = LISTENS_MONTHLY.query_sql(Dialect::DuckDb, &range);
        assert!(
            sql.contains("month_start BETWEEN DATE '2026-01-01' AND DATE '2026-02-10'"),
            "{sql}"
        );
    }

    #[test]
    fn bigquery_views_read_only_dataset_qualified_tables() {
        for kpi in KPIS {
            let sql = kpi.view_sql(Dialect::BigQuery);
            for table in schema::TABLES {
                let bare = format!(" {} AS", table.name);
                assert!(!sql.contains(&bare), "{}: {sql}", kpi.name);
            }
            assert!(sql.contains("`${dataset}."), "{}", kpi.name);
        }
    }

    #[test]
    fn kpi_names_are_unique_and_found() {
        for each in KPIS {
            assert_eq!(kpi(each.name).map(|k| k.title), Some(each.title));
            assert!(each.name.starts_with("kpi_"));
        }
        assert!(kpi("kpi_nothing").is_none());
    }
}
