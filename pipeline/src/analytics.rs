//! Reads the KPIs of `warehouse::analytics` out of a warehouse, DuckDB or BigQuery, for
//! every period worth a look: all time, each quarter and each month that has data; and
//! runs the data-quality checks of `warehouse::quality`.

use duckdb::Connection;
use duckdb::types::Value;
use serde::Serialize;
use warehouse::analytics::{self, Dialect, KPIS, Kpi, Period, Type};
use warehouse::quality::{self, Check, CheckKind};

use crate::error::PipelineError;
use crate::sinks::bigquery::api::Api;
use crate::sinks::bigquery::{self, BigQueryOptions};

/// How many of the latest months and quarters get their own period.
const MONTHS: usize = 24;
const QUARTERS: usize = 8;

/// One cell of a KPI's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Int(v) => write!(f, "{v}"),
            // Debug keeps the shortest text that reads back to the same number, with a
            // decimal point even for whole numbers.
            Cell::Float(v) => write!(f, "{v:?}"),
            Cell::Text(v) => f.write_str(v),
        }
    }
}

pub type Rows = Vec<Vec<Cell>>;

/// A warehouse the KPIs can be read from.
pub trait KpiSource {
    /// Where the KPIs come from, for people.
    fn describe(&self) -> String;
    /// Every (year, month) that has data, ascending.
    fn months(&mut self) -> Result<Vec<(i64, u32)>, PipelineError>;
    /// The KPI's answer over the period.
    fn answer(&mut self, kpi: &Kpi, period: &Period) -> Result<Rows, PipelineError>;
    /// The one count a query answers, its SQL in this warehouse's dialect (BigQuery's
    /// with the dataset placeholder).
    fn count(&mut self, doing: &str, sql: &str) -> Result<u64, PipelineError>;
    fn dialect(&self) -> Dialect;
}

/// One data-quality check and what it counted.
#[derive(Clone, Debug)]
pub struct Checked {
    pub check: Check,
    pub count: u64,
}

impl Checked {
    pub fn passed(&self) -> bool {
        self.check.expect.holds(self.count)
    }
}

/// Runs the checks of `kind`, limited to the day `date_key` (YYYYMMDD) where tables are
/// keyed by day.
pub fn check(
    source: &mut dyn KpiSource,
    kind: CheckKind,
    date_key: Option<i64>,
) -> Result<Vec<Checked>, PipelineError> {
    quality::checks(kind, source.dialect(), date_key)
        .into_iter()
        .map(|check| {
            let count = source.count(&format!("checking {}", check.name), &check.sql)?;
            Ok(Checked { check, count })
        })
        .collect()
}

/// All time, then the latest quarters and months, newest first.
pub fn periods(months: &[(i64, u32)]) -> Vec<Period> {
    let mut periods = vec![Period::all()];
    let mut quarters: Vec<(i64, u32)> = months.iter().map(|&(y, m)| (y, m.div_ceil(3))).collect();
    quarters.dedup();
    periods.extend(
        quarters
            .iter()
            .rev()
            .take(QUARTERS)
            .map(|&(y, q)| Period::quarter(y, q)),
    );
    periods.extend(
        months
            .iter()
            .rev()
            .take(MONTHS)
            .map(|&(y, m)| Period::month(y, m)),
    );
    periods
}

/// Every KPI's answer for one period.
#[derive(Clone, Debug, Serialize)]
pub struct PeriodAnswers {
    pub label: String,
    pub from: String,
    pub to: String,
    /// Indexed like [`KPIS`].
    pub answers: Vec<Rows>,
}

/// What a dashboard shows: every KPI over every period.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub source: String,
    pub periods: Vec<PeriodAnswers>,
}

impl Snapshot {
    /// Reads every KPI for `periods`, or for every period with data when `None`.
    pub fn read(
        source: &mut dyn KpiSource,
        periods: Option<Vec<Period>>,
    ) -> Result<Snapshot, PipelineError> {
        let periods = match periods {
            Some(periods) => periods,
            None => self::periods(&source.months()?),
        };
        let mut read = Vec::with_capacity(periods.len());
        for period in periods {
            let answers = KPIS
                .iter()
                .map(|kpi| source.answer(kpi, &period))
                .collect::<Result<Vec<_>, _>>()?;
            read.push(PeriodAnswers {
                from: analytics::format_date(period.from.max(0)),
                to: analytics::format_date(period.to),
                label: period.label,
                answers,
            });
        }
        Ok(Snapshot {
            source: source.describe(),
            periods: read,
        })
    }

    /// Every period's answers as text: `## period`, then each KPI's columns and rows.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for (i, period) in self.periods.iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&format!("## {}\n", period.label));
            for (kpi, rows) in KPIS.iter().zip(&period.answers) {
                let names: Vec<&str> = kpi.columns.iter().map(|(name, _)| *name).collect();
                text.push_str(&format!("{}: {}\n", kpi.name, names.join(" | ")));
                for row in rows {
                    let cells: Vec<String> = row.iter().map(Cell::to_string).collect();
                    text.push_str(&format!("  {}\n", cells.join(" | ")));
                }
            }
        }
        text
    }
}

const MONTHS_SQL: &str = "SELECT DISTINCT year, month FROM {date_dim} ORDER BY year, month";

/// KPIs from a DuckDB warehouse, through a connection of its own.
pub struct DuckDbKpis {
    connection: Connection,
    path: String,
}

impl std::fmt::Debug for DuckDbKpis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbKpis")
            .field("path", &self.path)
            .finish()
    }
}

impl DuckDbKpis {
    /// Reads through `connection`: a clone of the writer's, so that a running pipeline
    /// serves its own warehouse.
    pub fn new(connection: Connection, path: &str) -> DuckDbKpis {
        DuckDbKpis {
            connection,
            path: path.to_owned(),
        }
    }

    fn error(&self, doing: &str, e: duckdb::Error) -> PipelineError {
        PipelineError::duckdb(&self.path, doing)(e)
    }
}

impl KpiSource for DuckDbKpis {
    fn describe(&self) -> String {
        format!("DuckDB {}", self.path)
    }

    fn months(&mut self) -> Result<Vec<(i64, u32)>, PipelineError> {
        let sql = MONTHS_SQL.replace("{date_dim}", "date_dim");
        let read = || -> duckdb::Result<Vec<(i64, u32)>> {
            let mut statement = self.connection.prepare(&sql)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        read().map_err(|e| self.error("listing the months with data", e))
    }

    fn count(&mut self, doing: &str, sql: &str) -> Result<u64, PipelineError> {
        let count: i64 = self
            .connection
            .query_row(sql, [], |r| r.get(0))
            .map_err(|e| self.error(doing, e))?;
        u64::try_from(count).map_err(|_| PipelineError::Bug(format!("{doing}: counted {count}")))
    }

    fn dialect(&self) -> Dialect {
        Dialect::DuckDb
    }

    fn answer(&mut self, kpi: &Kpi, period: &Period) -> Result<Rows, PipelineError> {
        let sql = kpi.query_sql(Dialect::DuckDb, period);
        let doing = format!("reading {} for {period}", kpi.name);
        let read = || -> duckdb::Result<Vec<Vec<Value>>> {
            let mut statement = self.connection.prepare(&sql)?;
            let rows = statement.query_map([], |r| {
                (0..kpi.columns.len())
                    .map(|i| r.get::<_, Value>(i))
                    .collect()
            })?;
            rows.collect()
        };
        read()
            .map_err(|e| self.error(&doing, e))?
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(kpi.columns)
                    .map(|(value, (name, ty))| duckdb_cell(value, *ty, name, &doing))
                    .collect()
            })
            .collect()
    }
}

fn duckdb_cell(value: Value, ty: Type, column: &str, doing: &str) -> Result<Cell, PipelineError> {
    let int = |v: i128| {
        i64::try_from(v)
            .map_err(|_| PipelineError::Bug(format!("{doing}: {column} = {v} overflows")))
    };
    Ok(match (ty, value) {
        (_, Value::Null) => Cell::Null,
        (Type::Int, Value::BigInt(v)) => Cell::Int(v),
        (Type::Int, Value::Int(v)) => Cell::Int(i64::from(v)),
        (Type::Int, Value::HugeInt(v)) => Cell::Int(int(v)?),
        (Type::Float, Value::Double(v)) => Cell::Float(v),
        (Type::Float, Value::Float(v)) => Cell::Float(f64::from(v)),
        (Type::Text, Value::Text(v)) => Cell::Text(v),
        (_, other) => {
            return Err(PipelineError::Bug(format!(
                "{doing}: {column} came back as {other:?}, not {ty:?}"
            )));
        }
    })
}

/// KPIs from a BigQuery dataset.
pub struct BigQueryKpis {
    api: Api,
    dataset: String,
}

impl std::fmt::Debug for BigQueryKpis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQueryKpis")
            .field("dataset", &self.dataset)
            .finish()
    }
}

impl BigQueryKpis {
    /// Connects with the sink's settings; the views are the sink's to create.
    pub fn open(options: &BigQueryOptions) -> Result<BigQueryKpis, PipelineError> {
        Ok(BigQueryKpis {
            api: bigquery::connect(options)?.0,
            dataset: options.dataset.clone(),
        })
    }

    fn project_dataset(&self) -> String {
        format!("{}.{}", self.api.project, self.dataset)
    }
}

impl KpiSource for BigQueryKpis {
    fn describe(&self) -> String {
        format!("BigQuery {}", self.project_dataset())
    }

    fn months(&mut self) -> Result<Vec<(i64, u32)>, PipelineError> {
        let sql = MONTHS_SQL.replace(
            "{date_dim}",
            &format!("`{}.date_dim`", self.project_dataset()),
        );
        let doing = "listing the months with data";
        self.api
            .rows(doing, &sql, 2)?
            .into_iter()
            .map(|row| {
                let year = bigquery_cell(row[0].as_deref(), Type::Int, "year", doing)?;
                let month = bigquery_cell(row[1].as_deref(), Type::Int, "month", doing)?;
                match (year, month) {
                    (Cell::Int(y), Cell::Int(m)) => Ok((y, u32::try_from(m).unwrap_or(0))),
                    other => Err(PipelineError::Bug(format!("{doing}: got {other:?}"))),
                }
            })
            .collect()
    }

    fn count(&mut self, doing: &str, sql: &str) -> Result<u64, PipelineError> {
        let sql = analytics::instantiate(sql, &self.project_dataset());
        let rows = self.api.rows(doing, &sql, 1)?;
        match rows.first().map(|row| row[0].as_deref()) {
            Some(Some(text)) => text.parse().map_err(|_| PipelineError::BigQuery {
                message: format!("{doing}: {text:?} is not a count"),
                retryable: false,
            }),
            _ => Err(PipelineError::BigQuery {
                message: format!("{doing}: no count came back"),
                retryable: false,
            }),
        }
    }

    fn dialect(&self) -> Dialect {
        Dialect::BigQuery
    }

    fn answer(&mut self, kpi: &Kpi, period: &Period) -> Result<Rows, PipelineError> {
        let sql = analytics::instantiate(
            &kpi.query_sql(Dialect::BigQuery, period),
            &self.project_dataset(),
        );
        let doing = format!("reading {} for {period}", kpi.name);
        self.api
            .rows(&doing, &sql, kpi.columns.len())?
            .into_iter()
            .map(|row| {
                row.iter()
                    .zip(kpi.columns)
                    .map(|(text, (name, ty))| bigquery_cell(text.as_deref(), *ty, name, &doing))
                    .collect()
            })
            .collect()
    }
}

/// BigQuery answers every cell as text; the KPI says what it holds.
fn bigquery_cell(
    text: Option<&str>,
    ty: Type,
    column: &str,
    doing: &str,
) -> Result<Cell, PipelineError> {
    let Some(text) = text else {
        return Ok(Cell::Null);
    };
    let bad = || PipelineError::BigQuery {
        message: format!("{doing}: {column} = {text:?} is not a {ty:?}"),
        retryable: false,
    };
    Ok(match ty {
        Type::Int => Cell::Int(text.parse().map_err(|_| bad())?),
        Type::Float => Cell::Float(text.parse().map_err(|_| bad())?),
        Type::Text => Cell::Text(text.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_all_then_quarters_then_months_newest_first() {
        let labels: Vec<String> = periods(&[(2025, 12), (2026, 1), (2026, 2), (2026, 4)])
            .into_iter()
            .map(|p| p.label)
            .collect();
        assert_eq!(
            labels,
            [
                "all", "2026-Q2", "2026-Q1", "2025-Q4", "2026-04", "2026-02", "2026-01", "2025-12"
            ]
        );
    }

    #[test]
    fn cells_print_floats_with_a_point_and_nulls_as_null() {
        let cells = [
            Cell::Float(50.0),
            Cell::Float(0.1 + 0.2),
            Cell::Int(-3),
            Cell::Null,
            Cell::Text("MA".into()),
        ];
        let text: Vec<String> = cells.iter().map(Cell::to_string).collect();
        assert_eq!(text, ["50.0", "0.30000000000000004", "-3", "NULL", "MA"]);
    }

    #[test]
    fn bigquery_text_is_read_by_the_kpi_column_type() {
        assert_eq!(
            bigquery_cell(Some("1.5E1"), Type::Float, "x", "t").unwrap(),
            Cell::Float(15.0)
        );
        assert_eq!(
            bigquery_cell(None, Type::Int, "x", "t").unwrap(),
            Cell::Null
        );
        let error = bigquery_cell(Some("abc"), Type::Int, "listens", "reading kpi_listens")
            .unwrap_err()
            .to_string();
        assert!(error.contains("listens = \"abc\""), "{error}");
    }
}
