//! Operational metrics in Prometheus' text format, and the liveness and readiness the
//! `/healthz` and `/readyz` endpoints report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::transforms::Output;

/// A loop that has not ticked for this long is reported unhealthy.
const STALL: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct Values {
    messages_by_topic: BTreeMap<String, u64>,
    rows_by_table: BTreeMap<&'static str, u64>,
    dead_letters_by_reason: BTreeMap<&'static str, u64>,
    duplicates: u64,
    skipped: u64,
    sessions_closed: u64,
    batches: u64,
    batch_seconds_sum: f64,
    last_batch_seconds: f64,
    commit_seconds_sum: f64,
    lag: Option<i64>,
    ready: bool,
    last_tick: Option<Instant>,
}

/// Shared between the runner, which records, and the HTTP server, which reads.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Values) -> T) -> T {
        // A panic elsewhere while holding the lock leaves values that are still numbers.
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut values)
    }

    /// The loop is alive (called on every poll, even an empty one).
    pub fn tick(&self) {
        self.with(|v| v.last_tick = Some(Instant::now()));
    }

    pub fn set_ready(&self, ready: bool) {
        self.with(|v| v.ready = ready);
    }

    pub fn set_lag(&self, lag: Option<i64>) {
        self.with(|v| v.lag = lag);
    }

    /// Records one written batch.
    pub fn batch(
        &self,
        messages: &BTreeMap<String, u64>,
        skipped: u64,
        output: &Output,
        took: Duration,
        commit: Duration,
    ) {
        let t = &output.tables;
        let rows = t.row_counts();
        self.with(|v| {
            for (topic, n) in messages {
                *v.messages_by_topic.entry(topic.clone()).or_default() += n;
            }
            for (table, n) in rows {
                *v.rows_by_table.entry(table).or_default() += n as u64;
            }
            for dead in &t.dead_letters {
                *v.dead_letters_by_reason.entry(dead.reason).or_default() += 1;
            }
            v.duplicates += output.stats.duplicates;
            v.skipped += skipped;
            v.sessions_closed += output.stats.sessions_closed;
            v.batches += 1;
            v.batch_seconds_sum += took.as_secs_f64();
            v.last_batch_seconds = took.as_secs_f64();
            v.commit_seconds_sum += commit.as_secs_f64();
        });
    }

    pub fn healthy(&self) -> bool {
        self.with(|v| v.last_tick.is_some_and(|t| t.elapsed() < STALL))
    }

    pub fn ready(&self) -> bool {
        self.with(|v| v.ready)
    }

    /// Everything in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        self.with(|v| {
            let mut out = String::new();
            let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, value) in samples {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            };
            let labelled = |label: &str, values: Vec<(String, u64)>| -> Vec<(String, String)> {
                values
                    .into_iter()
                    .map(|(k, n)| (format!("{{{label}=\"{k}\"}}"), n.to_string()))
                    .collect()
            };
            let plain = |value: String| vec![(String::new(), value)];
            family(
                "pipeline_messages_total",
                "counter",
                "Messages consumed, by topic.",
                &labelled(
                    "topic",
                    v.messages_by_topic
                        .iter()
                        .map(|(k, n)| (k.clone(), *n))
                        .collect(),
                ),
            );
            family(
                "pipeline_rows_total",
                "counter",
                "Rows written, by table.",
                &labelled(
                    "table",
                    v.rows_by_table
                        .iter()
                        .map(|(k, n)| ((*k).to_owned(), *n))
                        .collect(),
                ),
            );
            family(
                "pipeline_dead_letters_total",
                "counter",
                "Messages dead-lettered, by reason.",
                &labelled(
                    "reason",
                    v.dead_letters_by_reason
                        .iter()
                        .map(|(k, n)| ((*k).to_owned(), *n))
                        .collect(),
                ),
            );
            family(
                "pipeline_duplicates_total",
                "counter",
                "Redelivered messages dropped.",
                &plain(v.duplicates.to_string()),
            );
            family(
                "pipeline_skipped_total",
                "counter",
                "Messages read again after a restart that the warehouse already held.",
                &plain(v.skipped.to_string()),
            );
            family(
                "pipeline_sessions_closed_total",
                "counter",
                "Sessions closed.",
                &plain(v.sessions_closed.to_string()),
            );
            family(
                "pipeline_batches_total",
                "counter",
                "Micro-batches written.",
                &plain(v.batches.to_string()),
            );
            family(
                "pipeline_batch_seconds_sum",
                "counter",
                "Seconds spent on batches, from poll to commit.",
                &plain(v.batch_seconds_sum.to_string()),
            );
            family(
                "pipeline_commit_seconds_sum",
                "counter",
                "Seconds spent committing batches to the warehouse.",
                &plain(v.commit_seconds_sum.to_string()),
            );
            family(
                "pipeline_last_batch_seconds",
                "gauge",
                "Seconds the last batch took.",
                &plain(v.last_batch_seconds.to_string()),
            );
            if let Some(lag) = v.lag {
                family(
                    "pipeline_consumer_lag",
                    "gauge",
                    "Messages behind the end of the assigned partitions.",
                    &plain(lag.to_string()),
                );
            }
            out
        })
    }
}
