//! The loop that turns a source into warehouse rows: poll a micro-batch, skip what the
//! warehouse already holds, transform, write rows, offsets and state in one transaction,
//! then tell the source; a batch is written while the next is read and transformed.
//! Stops between batches when asked, so nothing is half-written.
//! A write that fails for a reason that may pass is retried whole (see [`Retry`]); any
//! other failure stops the run with the batch uncommitted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use warehouse::{Classify as _, ErrorClass};

use crate::error::{PipelineError, chain};
use crate::metrics::Metrics;
use crate::sinks::{Batch, Checkpoint, CheckpointCost, DeadLetterTopics, Sink, columnar, fnv1a};
use crate::sources::{BatchLimits, InFlight, Polled, Source};
use crate::transforms::arrow::Columnar;
use crate::transforms::state::State;
use crate::transforms::{Config, Message, Output, Stats, Transformer};

/// How a run ends besides a stop request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Run until stopped.
    Stopped,
    /// Stop once the source has been caught up (no lag) with nothing new for this long,
    /// closing every session as at the end of the input (for runs over a finite stream,
    /// such as the demo).
    IdleFor(Duration),
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub batches: u64,
    pub stats: Stats,
    /// Messages read again after a restart that the warehouse already held.
    pub skipped: u64,
    pub rows: u64,
    /// From the run's start to the end of its last batch that carried messages: the
    /// run's working time, without the idle wait of a run that exits when caught up.
    pub busy: Duration,
    /// The idle wait before a run that exits when caught up closed its sessions.
    pub idle: Duration,
    /// Checkpoints written, and what writing their state cost in all.
    pub checkpoints: u64,
    pub checkpoint_bytes: u64,
    pub checkpoint_time: Duration,
}

/// Told about each written batch: progress output of the binary.
pub trait Observer {
    fn on_batch(&mut self, totals: &Totals, batch: &Stats, took: Duration);
}

#[derive(Debug)]
pub struct Runner<S, K> {
    source: S,
    sink: K,
    transformer: Transformer,
    limits: BatchLimits,
    /// The next offset to read per partition, as the warehouse records it.
    next: BTreeMap<(String, i32), i64>,
    metrics: Arc<Metrics>,
    dead_letter_topics: Option<DeadLetterTopics>,
    /// When the current run began.
    started: Instant,
    /// How often the state and offsets are checkpointed; zero is every batch.
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    /// Next offsets of the partitions that moved since the last checkpoint.
    uncheckpointed: BTreeMap<(String, i32), i64>,
    retry: Retry,
}

/// How a write that fails with a retryable error (the warehouse, BigQuery or the
/// dead-letter topics' broker unreachable or failing) is retried: exponential backoff
/// from `first` up to `max` with jitter, until the pauses add up to `give_up_after`.
/// A batch is all or nothing, so a retry writes it whole; while it retries, `/readyz`
/// says not ready. Bad data and bugs are not retried: they stop the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            give_up_after: Duration::from_secs(15 * 60),
        }
    }
}

/// The default time between checkpoints of a sink that may checkpoint every so often:
/// BigQuery, whose rows become visible when a checkpoint flushes its write streams. Ten
/// seconds keeps them about as fresh as the dashboard reloads, for two small objects in
/// the staging bucket and a FlushRows per table each time.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// How often consumer lag is measured: it asks the brokers.
const LAG_EVERY: Duration = Duration::from_secs(10);

impl<S: Source, K: Sink> Runner<S, K> {
    /// Resumes from the warehouse's checkpoint, if it has one.
    pub fn new(
        source: S,
        mut sink: K,
        config: Config,
        limits: BatchLimits,
    ) -> Result<Runner<S, K>, PipelineError> {
        let transformer = match sink.state()? {
            Some(state) => Transformer::with_state(config, state),
            None => Transformer::new(config),
        };
        let next = sink.offsets()?.into_iter().collect();
        let metrics = Arc::new(Metrics::new(sink.api_calls()));
        Ok(Runner {
            source,
            sink,
            transformer,
            limits,
            next,
            metrics,
            dead_letter_topics: None,
            started: Instant::now(),
            checkpoint_every: CHECKPOINT_EVERY,
            last_checkpoint: Instant::now(),
            uncheckpointed: BTreeMap::new(),
            retry: Retry::default(),
        })
    }

    /// Retries failed writes so (see [`Retry`]).
    pub fn with_retry(mut self, retry: Retry) -> Runner<S, K> {
        self.retry = retry;
        self
    }

    /// Checkpoints at most this often (zero: with every batch), unless the sink asks for
    /// every batch. Between checkpoints, batches write rows only and offsets are not
    /// committed to the source; a restart reads again from the last checkpoint and
    /// rewrites the same rows.
    pub fn with_checkpoint_every(mut self, every: Duration) -> Runner<S, K> {
        self.checkpoint_every = every;
        self
    }

    /// Also sends every dead letter to `<topic>.dlq` on Kafka.
    pub fn with_dead_letter_topics(mut self, topics: DeadLetterTopics) -> Runner<S, K> {
        self.dead_letter_topics = Some(topics);
        self
    }

    /// The metrics this runner records, for the HTTP endpoint.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The transformation state, as restored before the run or as it stands.
    pub fn state(&self) -> &State {
        self.transformer.state()
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn into_sink(self) -> K {
        self.sink
    }

    /// Runs until `until` or a stop. After an error the runner is spent: what it had
    /// transformed but not written is gone, and a new one resumes from the warehouse.
    pub fn run(
        &mut self,
        until: Until,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
    ) -> Result<Totals, PipelineError> {
        let mut totals = Totals::default();
        self.started = Instant::now();
        let mut idle_since = Instant::now();
        let mut lag_measured: Option<Instant> = None;
        self.metrics.set_ready(true);
        let result = self
            .run_loop(
                until,
                stop,
                observer,
                &mut totals,
                &mut idle_since,
                &mut lag_measured,
            )
            .and_then(|()| self.checkpoint_if_behind(stop, &mut totals, observer));
        self.metrics.set_ready(false);
        result.map(|()| totals)
    }

    fn run_loop(
        &mut self,
        until: Until,
        stop: &AtomicBool,
        observer: &mut dyn Observer,
        totals: &mut Totals,
        idle_since: &mut Instant,
        lag_measured: &mut Option<Instant>,
    ) -> Result<(), PipelineError> {
        // The batch transformed last, written while the next one is read and transformed.
        let mut pending: Option<Job<K::Snapshot>> = None;
        while !stop.load(Ordering::Relaxed) {
            self.metrics.tick();
            // Measured every few seconds once known; until then (the group still forming,
            // or the broker away) on every turn.
            if lag_measured.is_none_or(|t| t.elapsed() >= LAG_EVERY) {
                let lag = self.source.lag();
                self.metrics.set_lag(lag);
                *lag_measured = lag.map(|_| Instant::now());
            }
            // Both cores: the batch before this one is written on a thread of its own
            // while this one is read and transformed. Its state was encoded when it was
            // transformed, so this batch moving the state on cannot reach it; a source
            // that gives partitions up meanwhile waits for the write (see `InFlight`).
            let retrying = Retrying {
                policy: self.retry,
                metrics: &self.metrics,
                stop,
            };
            let in_flight = self.source.in_flight();
            // Decided before reading, so that the batch's state is encoded on the
            // reading thread too.
            let due = self.checkpoint_due(false);
            let sink = &mut self.sink;
            let mut reading = Reading {
                source: &mut self.source,
                transformer: &mut self.transformer,
                next: &self.next,
                limits: &self.limits,
            };
            let (read, written) = std::thread::scope(|scope| {
                let writing = pending.as_ref().map(|job| {
                    let (retrying, in_flight) = (&retrying, in_flight.as_deref());
                    if let Some(in_flight) = in_flight {
                        in_flight.begin();
                    }
                    scope.spawn(move || write_in_flight(sink, job, retrying, in_flight))
                });
                let read = reading.next_batch().and_then(|read| {
                    let encoded = match &read {
                        Read::Batch(batch) => {
                            Some(encode::<K>(reading.transformer, &batch.output, due)?)
                        }
                        Read::End | Read::Nothing => None,
                    };
                    Ok((read, encoded))
                });
                // `write_in_flight` turns a panic into an error.
                let written = writing.map(|writing| {
                    writing
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p))
                });
                (read, written)
            });
            if let (Some(job), Some((written, took))) = (pending.take(), written) {
                self.complete(job, written?, took, totals, observer)?;
            }
            let (read, encoded) = read?;
            match read {
                Read::End => {
                    self.finish(stop, totals, observer)?;
                    break;
                }
                Read::Nothing => {
                    if let Until::IdleFor(idle) = until {
                        // Idle means caught up: a source that is behind, or cannot say (a
                        // broker that is down), is waited for.
                        if self.source.lag() != Some(0) {
                            *idle_since = Instant::now();
                        } else if idle_since.elapsed() >= idle {
                            totals.idle = idle_since.elapsed();
                            self.finish(stop, totals, observer)?;
                            break;
                        }
                    }
                }
                Read::Batch(batch) => {
                    *idle_since = Instant::now();
                    totals.skipped += batch.skipped;
                    pending = Some(self.prepare(*batch, encoded, false, stop)?);
                }
            }
        }
        // Asked to stop: the batch transformed is written before the way out.
        if let Some(job) = pending.take() {
            self.write(job, stop, totals, observer)?;
        }
        Ok(())
    }

    /// Whether the next batch carries a checkpoint: `asked`, or the sink wants one with
    /// every batch, or the last is old enough.
    fn checkpoint_due(&self, asked: bool) -> bool {
        asked
            || self.sink.checkpoints_every_batch()
            || self.last_checkpoint.elapsed() >= self.checkpoint_every
    }

    /// Makes a transformed batch ready to write: sends its dead letters to Kafka, and
    /// when a checkpoint is due (or `checkpoint` asks for one) adds the state with every
    /// offset that moved since the last one. What the reading thread has `encoded`
    /// already is taken as it is; the rest is encoded here.
    fn prepare(
        &mut self,
        batch: Transformed,
        encoded: Option<Encoded<K::Snapshot>>,
        checkpoint: bool,
        stop: &AtomicBool,
    ) -> Result<Job<K::Snapshot>, PipelineError> {
        if let Some(topics) = &self.dead_letter_topics {
            let retrying = Retrying {
                policy: self.retry,
                metrics: &self.metrics,
                stop,
            };
            retrying.run("dead_letter_topics", || {
                topics.send(&batch.output.tables.dead_letters)
            })?;
        }
        let mut moved = std::mem::take(&mut self.uncheckpointed);
        for (topic, partition, next) in &batch.offsets {
            moved.insert((topic.clone(), *partition), *next);
            self.next.insert((topic.clone(), *partition), *next);
        }
        let due = self.checkpoint_due(checkpoint);
        let Encoded { rows, state } = match encoded {
            Some(encoded) => encoded,
            None => encode::<K>(&self.transformer, &batch.output, due)?,
        };
        // A checkpoint that fell due while the batch was read is encoded now.
        let state = match state {
            None if due => Some(snapshot::<K>(&self.transformer)?),
            state => state,
        };
        let checkpoint = if let Some((state, took)) = state {
            self.transformer.checkpointed();
            self.last_checkpoint = Instant::now();
            Some(Due {
                offsets: moved
                    .into_iter()
                    .map(|((topic, partition), next)| (topic, partition, next))
                    .collect(),
                state,
                took,
            })
        } else {
            self.uncheckpointed = moved;
            None
        };
        Ok(Job {
            batch,
            rows,
            checkpoint,
            counted: true,
        })
    }

    /// Writes a batch now, retried on its own.
    fn write(
        &mut self,
        job: Job<K::Snapshot>,
        stop: &AtomicBool,
        totals: &mut Totals,
        observer: &mut dyn Observer,
    ) -> Result<(), PipelineError> {
        let retrying = Retrying {
            policy: self.retry,
            metrics: &self.metrics,
            stop,
        };
        let (written, took) = write_job(&mut self.sink, &job, &retrying);
        self.complete(job, written?, took, totals, observer)
    }

    /// After a batch is durable: commits its checkpoint's offsets to the source and
    /// counts it.
    fn complete(
        &mut self,
        job: Job<K::Snapshot>,
        cost: Option<CheckpointCost>,
        took: Duration,
        totals: &mut Totals,
        observer: &mut dyn Observer,
    ) -> Result<(), PipelineError> {
        if let Some(due) = &job.checkpoint {
            let cost = CheckpointCost {
                bytes: cost.map_or(0, |c| c.bytes),
                took: due.took + cost.map_or(Duration::ZERO, |c| c.took),
            };
            self.metrics.checkpoint(cost);
            totals.checkpoints += 1;
            totals.checkpoint_bytes += cost.bytes;
            totals.checkpoint_time += cost.took;
            // The warehouse holds the offsets that count; the source's copy only spares
            // a restart from reading again what the warehouse would skip.
            match self.source.commit(&due.offsets) {
                Err(e) if e.class() == ErrorClass::Retryable => {
                    tracing::warn!(error = %chain(&e), "cannot commit offsets to the source; the warehouse has them");
                }
                result => result?,
            }
        }
        // A checkpoint alone is not a batch.
        if !job.counted {
            return Ok(());
        }
        let batch = &job.batch;
        totals.stats.add(&batch.output.stats);
        if !batch.offsets.is_empty() {
            totals.busy = self.started.elapsed();
        }
        if !batch.offsets.is_empty() || batch.output.tables.row_count() > 0 {
            totals.batches += 1;
        }
        totals.rows += batch.output.tables.row_count() as u64;
        self.metrics.batch(
            &batch.by_topic,
            batch.skipped,
            &batch.output,
            batch.began.elapsed(),
            took,
        );
        observer.on_batch(totals, &batch.output.stats, batch.began.elapsed());
        Ok(())
    }

    /// Closes every open session and writes what that produces.
    fn finish(
        &mut self,
        stop: &AtomicBool,
        totals: &mut Totals,
        observer: &mut dyn Observer,
    ) -> Result<(), PipelineError> {
        let began = Instant::now();
        let output = self.transformer.finish();
        // Named after where every partition stands, so a rerun of the same end has the
        // same name.
        let id = position_id("final", &self.next);
        let job = self.prepare(Transformed::closing(id, output, began), None, true, stop)?;
        self.write(job, stop, totals, observer)
    }

    /// On the way out after a stop: checkpoints what was written since the last one, so
    /// that the next start need not read it again.
    fn checkpoint_if_behind(
        &mut self,
        stop: &AtomicBool,
        totals: &mut Totals,
        observer: &mut dyn Observer,
    ) -> Result<(), PipelineError> {
        if self.uncheckpointed.is_empty() {
            return Ok(());
        }
        let id = position_id("checkpoint", &self.uncheckpointed);
        let batch = Transformed::closing(id, Output::default(), Instant::now());
        let mut job = self.prepare(batch, None, true, stop)?;
        job.counted = false;
        self.write(job, stop, totals, observer)
    }
}

/// Writes a batch into `sink`, retried under `retrying`, and says how long that took:
/// on the loop's thread or on the thread that writes while the next batch is
/// transformed.
fn write_job<K: Sink>(
    sink: &mut K,
    job: &Job<K::Snapshot>,
    retrying: &Retrying<'_>,
) -> (Result<Option<CheckpointCost>, PipelineError>, Duration) {
    let writing = Instant::now();
    let written = retrying.run("warehouse", || sink.write(&job.batch()));
    (written, writing.elapsed())
}

/// Writes a batch on the thread beside the loop's, telling the source's [`InFlight`]
/// when it ends and what it made durable. A panic ends the flight too: a source waiting
/// for it must not wait forever.
fn write_in_flight<K: Sink>(
    sink: &mut K,
    job: &Job<K::Snapshot>,
    retrying: &Retrying<'_>,
    in_flight: Option<&InFlight>,
) -> (Result<Option<CheckpointCost>, PipelineError>, Duration) {
    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_job(sink, job, retrying)
    }));
    if let Some(in_flight) = in_flight {
        match (&written, &job.checkpoint) {
            (Ok((Ok(_), _)), Some(due)) => in_flight.end(&due.offsets),
            _ => in_flight.end(&[]),
        }
    }
    written.unwrap_or_else(|_| {
        let bug = PipelineError::Bug("the writing thread panicked".to_owned());
        (Err(bug), Duration::ZERO)
    })
}

/// What the loop's thread needs to read and transform a batch, apart from the sink
/// that the other thread writes with meanwhile.
struct Reading<'a, S> {
    source: &'a mut S,
    transformer: &'a mut Transformer,
    /// The next offset per partition the warehouse holds, with the batches prepared.
    next: &'a BTreeMap<(String, i32), i64>,
    limits: &'a BatchLimits,
}

/// What one poll came to.
enum Read {
    /// The input has ended.
    End,
    /// No message arrived in time.
    Nothing,
    Batch(Box<Transformed>),
}

impl<S: Source> Reading<'_, S> {
    /// Polls the source, skips what the warehouse holds already, and transforms the rest.
    fn next_batch(&mut self) -> Result<Read, PipelineError> {
        let began = Instant::now();
        let records = match self.source.poll(self.limits)? {
            Polled::End => return Ok(Read::End),
            Polled::Records(records) => records,
        };
        for (topic, partition) in self.source.revoked() {
            self.transformer.untrack(&topic, partition);
        }
        for (kind, topic, partition) in self.source.partitions() {
            self.transformer.track(kind, &topic, partition);
        }
        if records.is_empty() {
            return Ok(Read::Nothing);
        }
        // What a crash left between the warehouse's commit and the source's is read
        // again; the warehouse's offsets say what to skip.
        let fresh: Vec<_> = records
            .iter()
            .filter(|r| {
                let next = self.next.get(&(r.topic.clone(), r.partition)).copied();
                next.is_none_or(|n| r.offset >= n)
            })
            .collect();
        let skipped = (records.len() - fresh.len()) as u64;
        // First offset and next offset per partition.
        let mut advanced: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        let mut by_topic: BTreeMap<String, u64> = BTreeMap::new();
        for r in &fresh {
            let range = advanced
                .entry((r.topic.clone(), r.partition))
                .or_insert((r.offset, r.offset + 1));
            range.0 = range.0.min(r.offset);
            range.1 = range.1.max(r.offset + 1);
            *by_topic.entry(r.topic.clone()).or_default() += 1;
        }
        let id = batch_id(&advanced);
        let offsets = advanced
            .into_iter()
            .map(|((topic, partition), (_, next))| (topic, partition, next))
            .collect();
        let output = self.transformer.process(
            fresh.iter().map(|r| Message {
                kind: r.kind,
                topic: &r.topic,
                partition: r.partition,
                offset: r.offset,
                payload: &r.payload,
            }),
            now_ms(),
        );
        Ok(Read::Batch(Box::new(Transformed {
            id,
            output,
            offsets,
            began,
            by_topic,
            skipped,
        })))
    }
}

/// A batch as the transformation left it.
struct Transformed {
    id: String,
    output: Output,
    /// The next offset per partition it read, none for the final close.
    offsets: Vec<(String, i32, i64)>,
    /// When its poll began, what it read per topic and what it skipped: for metrics.
    began: Instant,
    by_topic: BTreeMap<String, u64>,
    skipped: u64,
}

impl Transformed {
    /// Rows that come from no message read: the final close, or none at all.
    fn closing(id: String, output: Output, began: Instant) -> Transformed {
        Transformed {
            id,
            output,
            offsets: Vec::new(),
            began,
            by_topic: BTreeMap::new(),
            skipped: 0,
        }
    }
}

/// What a sink writes of a transformed batch: its rows as columns and, when its
/// checkpoint is due, the state after it and how long encoding that took. Made on the
/// reading thread while the writing thread writes the batch before.
struct Encoded<T> {
    rows: Columnar,
    state: Option<(T, Duration)>,
}

/// Encodes `output`'s rows, and the transformer's state if `checkpoint`.
fn encode<K: Sink>(
    transformer: &Transformer,
    output: &Output,
    checkpoint: bool,
) -> Result<Encoded<K::Snapshot>, PipelineError> {
    Ok(Encoded {
        rows: columnar(&output.tables)?,
        state: checkpoint.then(|| snapshot::<K>(transformer)).transpose()?,
    })
}

/// The transformer's state as `K` stores it, and how long encoding it took.
fn snapshot<K: Sink>(transformer: &Transformer) -> Result<(K::Snapshot, Duration), PipelineError> {
    let encoding = Instant::now();
    let state = K::snapshot(transformer.state(), transformer.changes())?;
    Ok((state, encoding.elapsed()))
}

/// A batch ready for the sink, with its checkpoint when one is due.
struct Job<T> {
    batch: Transformed,
    rows: Columnar,
    checkpoint: Option<Due<T>>,
    /// Whether it counts as a batch (a checkpoint alone does not).
    counted: bool,
}

/// A checkpoint to write: every offset that moved since the last one, and the state
/// encoded as the sink stores it.
struct Due<T> {
    offsets: Vec<(String, i32, i64)>,
    state: T,
    /// Encoding the state.
    took: Duration,
}

impl<T> Job<T> {
    fn batch(&self) -> Batch<'_, T> {
        Batch {
            id: &self.batch.id,
            rows: &self.rows,
            checkpoint: self.checkpoint.as_ref().map(|due| Checkpoint {
                offsets: &due.offsets,
                state: &due.state,
            }),
        }
    }
}

/// One step of a write, retried under a policy.
struct Retrying<'a> {
    policy: Retry,
    metrics: &'a Metrics,
    stop: &'a AtomicBool,
}

impl Retrying<'_> {
    /// Runs `attempt` until it succeeds, fails with an error that is not retryable, the
    /// pauses add up to the policy's limit, or a stop is asked for; `what` names it in
    /// logs and in `pipeline_retries_total`.
    fn run<T>(
        &self,
        what: &'static str,
        mut attempt: impl FnMut() -> Result<T, PipelineError>,
    ) -> Result<T, PipelineError> {
        // backon's pauses, with our own loop around them: its blocking sleeper must be
        // 'static, and this one watches the stop flag and keeps `/healthz` alive.
        let mut pauses = ExponentialBuilder::new()
            .with_min_delay(self.policy.first)
            .with_max_delay(self.policy.max)
            .with_jitter()
            .without_max_times()
            .with_total_delay(Some(self.policy.give_up_after))
            .build();
        let result = loop {
            let error = match attempt() {
                Ok(done) => break Ok(done),
                Err(error) => error,
            };
            let retryable =
                error.class() == ErrorClass::Retryable && !self.stop.load(Ordering::Relaxed);
            let Some(pause) = pauses.next().filter(|_| retryable) else {
                break Err(error);
            };
            self.metrics.retry(what);
            self.metrics.set_retrying(true);
            tracing::warn!(
                what,
                error = %chain(&error),
                retry_in_ms = pause.as_millis() as u64,
                "a write failed; retrying"
            );
            self.pause(pause);
        };
        self.metrics.set_retrying(false);
        result
    }

    /// Waits, in short steps so that a stop is noticed and `/healthz` stays alive.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.stop.load(Ordering::Relaxed) {
            self.metrics.tick();
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// A name for a write that consumed nothing, from where the partitions stand.
fn position_id(prefix: &str, positions: &BTreeMap<(String, i32), i64>) -> String {
    let ends: BTreeMap<(String, i32), (i64, i64)> = positions
        .iter()
        .map(|(key, next)| (key.clone(), (*next, *next)))
        .collect();
    format!("{prefix}-{}", batch_id(&ends))
}

/// A batch's name from its offset ranges: the first range in full, then how many more and
/// a digest of them all, so names stay short however many partitions a batch spans.
fn batch_id(ranges: &BTreeMap<(String, i32), (i64, i64)>) -> String {
    let Some(((topic, partition), (first, next))) = ranges.iter().next() else {
        return "empty".to_owned();
    };
    let mut id = format!("{topic}-{partition}-{first}-{}", next - 1);
    if ranges.len() > 1 {
        let all: String = ranges
            .iter()
            .map(|((topic, partition), (first, next))| {
                format!("{topic}/{partition}/{first}/{next};")
            })
            .collect();
        let digest = fnv1a(&all);
        id.push_str(&format!("-and-{}-more-{digest:016x}", ranges.len() - 1));
    }
    id
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use warehouse::raw::EventKind;

    use super::*;
    use crate::sinks::{CheckpointCost, Offsets};
    use crate::sources::{InFlight, Record};
    use crate::transforms::state::{Changes, State};

    /// Two messages (one not JSON, so it is dead-lettered), then the end.
    #[derive(Debug)]
    struct Fixed(Option<Vec<Record>>);

    impl Fixed {
        fn new() -> Fixed {
            let record = |offset, payload: &[u8]| Record {
                kind: EventKind::Listen,
                topic: "listen_events".to_owned(),
                partition: 0,
                offset,
                payload: payload.to_vec(),
            };
            Fixed(Some(vec![record(0, b"{"), record(1, b"[]")]))
        }
    }

    impl Source for Fixed {
        fn poll(&mut self, _: &BatchLimits) -> Result<Polled, PipelineError> {
            Ok(self.0.take().map_or(Polled::End, Polled::Records))
        }
        fn partitions(&self) -> Vec<(EventKind, String, i32)> {
            Vec::new()
        }
        fn commit(&mut self, _: &[(String, i32, i64)]) -> Result<(), PipelineError> {
            Ok(())
        }
    }

    /// A warehouse scripted to fail on cue, which no real one does: the integration
    /// tests make DuckDB and the broker fail for real; this checks each class alone.
    #[derive(Debug, Default)]
    struct Flaky {
        failures: VecDeque<PipelineError>,
        /// Fails every attempt with an I/O error.
        always: bool,
        attempts: usize,
        written: Vec<String>,
        /// Batches written, as others may look on.
        count: Arc<std::sync::Mutex<usize>>,
    }

    impl Sink for Flaky {
        type Snapshot = ();

        fn snapshot(_: &State, _: &Changes) -> Result<(), PipelineError> {
            Ok(())
        }

        fn offsets(&mut self) -> Result<Offsets, PipelineError> {
            Ok(Offsets::new())
        }
        fn state(&mut self) -> Result<Option<State>, PipelineError> {
            Ok(None)
        }
        fn write(
            &mut self,
            batch: &Batch<'_, ()>,
        ) -> Result<Option<CheckpointCost>, PipelineError> {
            self.attempts += 1;
            if self.always {
                return Err(disk_away());
            }
            if let Some(error) = self.failures.pop_front() {
                return Err(error);
            }
            self.written.push(batch.id.to_owned());
            *self.count.lock().unwrap() += 1;
            Ok(batch.checkpoint.as_ref().map(|_| CheckpointCost::default()))
        }
        fn describe(&self) -> String {
            "scripted".to_owned()
        }
    }

    fn disk_away() -> PipelineError {
        PipelineError::Io {
            doing: "cannot write".to_owned(),
            error: std::io::Error::other("the disk went away"),
        }
    }

    struct Silent;

    impl Observer for Silent {
        fn on_batch(&mut self, _: &Totals, _: &Stats, _: Duration) {}
    }

    fn run(sink: Flaky, give_up_after: Duration) -> (Result<Totals, PipelineError>, Flaky, String) {
        let mut runner = Runner::new(
            Fixed::new(),
            sink,
            Config::default(),
            BatchLimits::default(),
        )
        .unwrap()
        .with_retry(Retry {
            first: Duration::from_millis(1),
            max: Duration::from_millis(5),
            give_up_after,
        });
        let result = runner.run(Until::Stopped, &AtomicBool::new(false), &mut Silent);
        let metrics = runner.metrics().render();
        (result, runner.into_sink(), metrics)
    }

    /// Three one-message batches, then the end. Each poll acts as a consumer group's
    /// revocation does: it waits for the batch in flight and takes the offsets it made
    /// durable, noting those and how many batches the sink (a [`Flaky`] that does not
    /// fail) had written by then.
    #[derive(Debug)]
    struct Revoked {
        left: VecDeque<Record>,
        in_flight: Arc<InFlight>,
        written: Arc<std::sync::Mutex<usize>>,
        /// Per poll: batches written, and the offsets taken.
        polls: Vec<(usize, Landed)>,
    }

    type Landed = Vec<(String, i32, i64)>;

    impl Source for Revoked {
        fn poll(&mut self, _: &BatchLimits) -> Result<Polled, PipelineError> {
            let landed = self.in_flight.landed();
            let written = *self.written.lock().unwrap();
            self.polls.push((written, landed));
            Ok(self
                .left
                .pop_front()
                .map_or(Polled::End, |record| Polled::Records(vec![record])))
        }
        fn partitions(&self) -> Vec<(EventKind, String, i32)> {
            Vec::new()
        }
        fn commit(&mut self, _: &[(String, i32, i64)]) -> Result<(), PipelineError> {
            Ok(())
        }
        fn in_flight(&self) -> Option<Arc<InFlight>> {
            Some(Arc::clone(&self.in_flight))
        }
    }

    #[test]
    fn a_source_giving_partitions_up_mid_poll_gets_the_batch_in_flight_written_first() {
        let sink = Flaky::default();
        let written = Arc::clone(&sink.count);
        let left = (0..3)
            .map(|offset| Record {
                kind: EventKind::Listen,
                topic: "listen_events".to_owned(),
                partition: 0,
                offset,
                payload: b"{".to_vec(),
            })
            .collect();
        let source = Revoked {
            left,
            in_flight: Arc::default(),
            written: Arc::clone(&written),
            polls: Vec::new(),
        };
        let mut runner = Runner::new(source, sink, Config::default(), BatchLimits::default())
            .unwrap()
            .with_checkpoint_every(Duration::ZERO);
        let totals = runner
            .run(Until::Stopped, &AtomicBool::new(false), &mut Silent)
            .unwrap();
        assert_eq!(totals.stats.rejected, 3);
        assert_eq!(*written.lock().unwrap(), 4, "three batches and the close");
        // Each batch is written while the next poll runs, and a poll that waits for it
        // finds it written, with the offsets to commit.
        let landed = |next| vec![("listen_events".to_owned(), 0, next)];
        assert_eq!(
            runner.source.polls,
            [(0, vec![]), (1, landed(1)), (2, landed(2)), (3, landed(3))]
        );
    }

    /// Two one-message batches from `listen_events`: before the first it reads
    /// partitions 0 and 1, and the group revokes 1 before the second.
    #[derive(Debug)]
    struct Revoking {
        polls: usize,
        revoked: Vec<(String, i32)>,
    }

    impl Source for Revoking {
        fn poll(&mut self, _: &BatchLimits) -> Result<Polled, PipelineError> {
            self.polls += 1;
            if self.polls == 2 {
                self.revoked.push(("listen_events".to_owned(), 1));
            }
            if self.polls > 2 {
                return Ok(Polled::End);
            }
            Ok(Polled::Records(vec![Record {
                kind: EventKind::Listen,
                topic: "listen_events".to_owned(),
                partition: 0,
                offset: self.polls as i64,
                payload: b"{".to_vec(),
            }]))
        }
        fn partitions(&self) -> Vec<(EventKind, String, i32)> {
            let numbers = if self.polls < 2 { 0..2 } else { 0..1 };
            numbers
                .map(|n| (EventKind::Listen, "listen_events".to_owned(), n))
                .collect()
        }
        fn revoked(&mut self) -> Vec<(String, i32)> {
            std::mem::take(&mut self.revoked)
        }
        fn commit(&mut self, _: &[(String, i32, i64)]) -> Result<(), PipelineError> {
            Ok(())
        }
    }

    #[test]
    fn a_revoked_partition_no_longer_holds_the_watermark_back() {
        let source = Revoking {
            polls: 0,
            revoked: Vec::new(),
        };
        let mut runner = Runner::new(
            source,
            Flaky::default(),
            Config::default(),
            BatchLimits::default(),
        )
        .unwrap();
        runner
            .run(Until::Stopped, &AtomicBool::new(false), &mut Silent)
            .unwrap();
        let clocks: Vec<(&str, i32)> = runner
            .state()
            .clocks
            .iter()
            .map(|c| (c.topic.as_str(), c.partition))
            .collect();
        // A clock left behind would wait for a partition that delivers here no more.
        assert_eq!(clocks, [("listen_events", 0)]);
    }

    #[test]
    fn a_retryable_failure_is_retried_until_the_batch_lands_once() {
        let sink = Flaky {
            failures: VecDeque::from([disk_away(), disk_away()]),
            ..Flaky::default()
        };
        let (result, sink, metrics) = run(sink, Duration::from_secs(60));
        let totals = result.unwrap();
        assert_eq!(totals.stats.rejected, 2, "both messages dead-lettered");
        assert_eq!(sink.written.len(), 2, "the batch and the final close");
        assert_eq!(sink.attempts, 4);
        assert!(
            metrics.contains("pipeline_retries_total{what=\"warehouse\"} 2"),
            "{metrics}"
        );
    }

    #[test]
    fn a_bug_or_bad_data_stops_at_once_with_nothing_written() {
        for error in [
            PipelineError::Bug("an invariant broke".to_owned()),
            PipelineError::Incompatible("another schema".to_owned()),
        ] {
            let class = error.class();
            let sink = Flaky {
                failures: VecDeque::from([error]),
                ..Flaky::default()
            };
            let (result, sink, _) = run(sink, Duration::from_secs(60));
            assert_eq!(result.unwrap_err().class(), class);
            assert_eq!((sink.attempts, sink.written.len()), (1, 0), "{class:?}");
        }
    }

    #[test]
    fn retrying_gives_up_once_the_pauses_add_up_to_the_limit() {
        let sink = Flaky {
            always: true,
            ..Flaky::default()
        };
        let (result, sink, _) = run(sink, Duration::from_millis(50));
        assert_eq!(result.unwrap_err().class(), ErrorClass::Retryable);
        assert!(sink.attempts > 2, "{} attempts", sink.attempts);
        assert!(sink.written.is_empty());
    }

    #[test]
    fn batch_ids_name_the_first_range_and_digest_the_rest() {
        let mut ranges = BTreeMap::new();
        ranges.insert(("listen_events".to_owned(), 3), (100, 200));
        assert_eq!(batch_id(&ranges), "listen_events-3-100-199");
        ranges.insert(("auth_events".to_owned(), 0), (5, 6));
        let two = batch_id(&ranges);
        assert!(two.starts_with("auth_events-0-5-5-and-1-more-"), "{two}");
        assert_eq!(two, batch_id(&ranges.clone()), "deterministic");
        ranges.insert(("auth_events".to_owned(), 0), (5, 7));
        assert_ne!(batch_id(&ranges), two, "another range, another name");
    }
}
