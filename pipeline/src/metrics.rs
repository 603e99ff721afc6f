//! Operational metrics, kept and rendered by `prometheus-client` (OpenMetrics text), and
//! the liveness and readiness the `/healthz` and `/readyz` endpoints report.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::sinks::CheckpointCost;
use crate::transforms::Output;

/// A loop that has not ticked for this long is reported unhealthy.
const STALL: Duration = Duration::from_secs(120);

/// One label: the families below each split by one dimension.
type Label = [(&'static str, String); 1];

/// Requests a sink made to the services it writes to, by service (`bigquery`, `gcs`,
/// `file`) and call (`jobs.insert:load`, `objects.put`, …): what quotas count. A sink
/// keeps its own (cloning shares the counts) and the runner exposes it.
#[derive(Clone, Debug, Default)]
pub struct ApiCalls(Family<[(&'static str, String); 2], Counter>);

impl ApiCalls {
    /// Counts one request (each attempt of a retried one too: quotas count those).
    pub fn count(&self, service: &'static str, call: &'static str) {
        self.0
            .get_or_create(&[("service", service.to_owned()), ("call", call.to_owned())])
            .inc();
    }

    /// The requests counted of one service and call.
    pub fn get(&self, service: &'static str, call: &'static str) -> u64 {
        self.0
            .get_or_create(&[("service", service.to_owned()), ("call", call.to_owned())])
            .get()
    }
}

/// Shared between the runner, which records, and the HTTP server, which reads. Every
/// figure is an atomic or a family behind `prometheus-client`'s own lock, so a scrape
/// never waits for a batch.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<Label, Counter>,
    rows: Family<Label, Counter>,
    dead_letters: Family<Label, Counter>,
    duplicates: Counter,
    skipped: Counter,
    sessions_closed: Counter,
    batches: Counter,
    batch_seconds: Histogram,
    commit_seconds: Histogram,
    last_batch_seconds: Gauge<f64, AtomicU64>,
    retries: Family<Label, Counter>,
    checkpoint_bytes: Counter,
    checkpoint_seconds: Histogram,
    /// The consumer lag, present only while it is known.
    lag: Family<Vec<(&'static str, String)>, Gauge>,
    ready: AtomicBool,
    /// Set while a failed write is being retried: not ready then, however the loop runs.
    retrying: AtomicBool,
    last_tick: Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(None)
    }
}

impl Metrics {
    /// The figures, with a sink's requests to its services if it counts them.
    pub fn new(api_calls: Option<ApiCalls>) -> Metrics {
        let mut registry = Registry::default();
        let seconds = || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let metrics = Metrics {
            registry: Registry::default(),
            messages: Family::default(),
            rows: Family::default(),
            dead_letters: Family::default(),
            duplicates: Counter::default(),
            skipped: Counter::default(),
            sessions_closed: Counter::default(),
            batches: Counter::default(),
            batch_seconds: seconds(),
            commit_seconds: seconds(),
            last_batch_seconds: Gauge::default(),
            retries: Family::default(),
            checkpoint_bytes: Counter::default(),
            checkpoint_seconds: seconds(),
            lag: Family::default(),
            ready: AtomicBool::new(false),
            retrying: AtomicBool::new(false),
            last_tick: Mutex::new(None),
        };
        // Counters are registered without `_total`: the encoder appends it.
        let m = &metrics;
        registry.register(
            "pipeline_messages",
            "Messages consumed, by topic",
            m.messages.clone(),
        );
        registry.register("pipeline_rows", "Rows written, by table", m.rows.clone());
        registry.register(
            "pipeline_dead_letters",
            "Messages dead-lettered, by reason",
            m.dead_letters.clone(),
        );
        registry.register(
            "pipeline_duplicates",
            "Redelivered messages dropped",
            m.duplicates.clone(),
        );
        registry.register(
            "pipeline_skipped",
            "Messages read again after a restart that the warehouse already held",
            m.skipped.clone(),
        );
        registry.register(
            "pipeline_sessions_closed",
            "Sessions closed",
            m.sessions_closed.clone(),
        );
        registry.register(
            "pipeline_batches",
            "Micro-batches written",
            m.batches.clone(),
        );
        registry.register(
            "pipeline_batch_seconds",
            "Seconds a batch took, from poll to commit",
            m.batch_seconds.clone(),
        );
        registry.register(
            "pipeline_commit_seconds",
            "Seconds a batch's commit to the warehouse took",
            m.commit_seconds.clone(),
        );
        registry.register(
            "pipeline_last_batch_seconds",
            "Seconds the last batch took",
            m.last_batch_seconds.clone(),
        );
        registry.register(
            "pipeline_retries",
            "Failed attempts that were retried, by what failed",
            m.retries.clone(),
        );
        registry.register(
            "pipeline_checkpoint_bytes",
            "Bytes of transformation state written by checkpoints",
            m.checkpoint_bytes.clone(),
        );
        registry.register(
            "pipeline_checkpoint_seconds",
            "Seconds a checkpoint spent encoding and writing the state",
            m.checkpoint_seconds.clone(),
        );
        registry.register(
            "pipeline_consumer_lag",
            "Messages behind the end of the assigned partitions",
            m.lag.clone(),
        );
        if let Some(calls) = api_calls {
            registry.register(
                "pipeline_api_calls",
                "Requests made to the warehouse's services, by service and call",
                calls.0,
            );
        }
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The loop is alive (called on every poll, even an empty one).
    pub fn tick(&self) {
        *self
            .last_tick
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Marks a write as failing and being retried (or no longer).
    pub fn set_retrying(&self, retrying: bool) {
        self.retrying.store(retrying, Ordering::Relaxed);
    }

    /// Counts one failed attempt of `what` that will be retried.
    pub fn retry(&self, what: &'static str) {
        self.retries
            .get_or_create(&[("what", what.to_owned())])
            .inc();
    }

    /// Records what writing one checkpoint's state cost.
    pub fn checkpoint(&self, cost: CheckpointCost) {
        self.checkpoint_bytes.inc_by(cost.bytes);
        self.checkpoint_seconds.observe(cost.took.as_secs_f64());
    }

    pub fn set_lag(&self, lag: Option<i64>) {
        match lag {
            Some(lag) => {
                self.lag.get_or_create(&Vec::new()).set(lag);
            }
            None => self.lag.clear(),
        }
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
        let tables = &output.tables;
        for (topic, n) in messages {
            self.messages
                .get_or_create(&[("topic", topic.clone())])
                .inc_by(*n);
        }
        for (table, n) in tables.row_counts() {
            self.rows
                .get_or_create(&[("table", table.to_owned())])
                .inc_by(n as u64);
        }
        for dead in &tables.dead_letters {
            self.dead_letters
                .get_or_create(&[("reason", dead.reason.to_owned())])
                .inc();
        }
        self.duplicates.inc_by(output.stats.duplicates);
        self.skipped.inc_by(skipped);
        self.sessions_closed.inc_by(output.stats.sessions_closed);
        self.batches.inc();
        self.batch_seconds.observe(took.as_secs_f64());
        self.commit_seconds.observe(commit.as_secs_f64());
        self.last_batch_seconds.set(took.as_secs_f64());
    }

    pub fn healthy(&self) -> bool {
        self.last_tick
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some_and(|t| t.elapsed() < STALL)
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.retrying.load(Ordering::Relaxed)
    }

    /// Everything in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug of the
        // library, and a scrape then gets what was written.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot render the metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_each_family_with_its_labels_and_hides_an_unknown_lag() {
        let metrics = Metrics::default();
        let mut output = Output::default();
        output.stats.duplicates = 2;
        let messages = BTreeMap::from([("listen_events".to_owned(), 5)]);
        metrics.batch(
            &messages,
            1,
            &output,
            Duration::from_millis(30),
            Duration::from_millis(10),
        );
        let text = metrics.render();
        assert!(
            text.contains("pipeline_messages_total{topic=\"listen_events\"} 5"),
            "{text}"
        );
        assert!(text.contains("pipeline_batches_total 1"), "{text}");
        assert!(text.contains("pipeline_duplicates_total 2"), "{text}");
        assert!(text.contains("pipeline_batch_seconds_count 1"), "{text}");
        metrics.checkpoint(CheckpointCost {
            bytes: 1234,
            took: Duration::from_millis(3),
        });
        let text = metrics.render();
        assert!(
            text.contains("pipeline_checkpoint_bytes_total 1234"),
            "{text}"
        );
        assert!(
            text.contains("pipeline_checkpoint_seconds_count 1"),
            "{text}"
        );
        assert!(!text.contains("pipeline_consumer_lag "), "{text}");
        metrics.set_lag(Some(7));
        assert!(metrics.render().contains("pipeline_consumer_lag 7"));
        metrics.set_lag(None);
        assert!(!metrics.render().contains("pipeline_consumer_lag "));
    }

    #[test]
    fn retrying_makes_the_pipeline_not_ready_until_it_ends() {
        let metrics = Metrics::default();
        metrics.set_ready(true);
        assert!(metrics.ready());
        metrics.set_retrying(true);
        metrics.retry("warehouse");
        assert!(!metrics.ready());
        assert!(
            metrics
                .render()
                .contains("pipeline_retries_total{what=\"warehouse\"} 1")
        );
        metrics.set_retrying(false);
        assert!(metrics.ready());
    }
}
