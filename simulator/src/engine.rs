//! Runs a world in parallel and in time order. Simulated time is cut into windows; in
//! each, every worker steps its own users, and the main thread merges the workers'
//! events by (time, user, sequence) into the sink. Session ids are handed out by the main
//! thread in order of session start. Because each user has its own random stream and the
//! merge order is total, output is the same for any number of workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warehouse::raw::EventKind;

use crate::clock::{SECOND_MS, YEAR_MS};
use crate::random::Stream;
use crate::sinks::{Sink, SinkError};
use crate::world::{Batch, Shard, Start, World};

/// Windows in real-time mode, so that events are released at most this late.
const REALTIME_WINDOW_MS: i64 = 1_000;
/// A backfill's windows are sized to hold about this many events: enough to amortise
/// the hand-over between threads (a round trip costs tens of microseconds), few enough
/// to keep the windows in memory at once small. Measured on 1,000,000 users' day:
/// 50,000 cost 100 MB more peak memory than 60-second windows did, 20,000 cost 33 MB,
/// 10,000 10 MB, at the same speed within the machine's noise.
const TARGET_WINDOW_EVENTS: u64 = 20_000;
/// A backfill's first window, before any window's events have been counted.
const FIRST_WINDOW_MS: i64 = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Worker threads; the main thread merges and writes besides them.
    pub threads: usize,
    /// Real-time pacing; `None` runs as fast as possible (backfill).
    pub pacing: Option<Pacing>,
}

/// How a real-time run keeps pace with the wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacing {
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// The simulated instant that corresponds to the moment the run starts: events
    /// before it (a start in the past) are caught up as fast as possible.
    pub from_ms: i64,
}

/// Events and bytes written so far, per kind (in the order of [`EventKind::ALL`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: [u64; 4],
    pub bytes: [u64; 4],
}

impl Counts {
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    pub fn of(&self, kind: EventKind) -> u64 {
        self.events[kind.index()]
    }
}

/// Where a run stands, after each window.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Everything before this simulated instant has been written.
    pub simulated_ms: i64,
    pub counts: &'a Counts,
    pub users: u64,
    pub sessions: u64,
    pub active_sessions: usize,
}

/// Told about progress after each window: the binary's progress bar.
pub trait Observer {
    fn on_window(&mut self, progress: &Progress<'_>);
}

/// An observer that ignores progress.
#[derive(Debug)]
pub struct Quiet;

impl Observer for Quiet {
    fn on_window(&mut self, _: &Progress<'_>) {}
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub counts: Counts,
    /// Users who existed at some point of the run.
    pub users: u64,
    pub sessions: u64,
    /// Everything before this simulated instant was written.
    pub simulated_until: i64,
    /// Whether the run was stopped before its end time.
    pub interrupted: bool,
}

struct Command {
    until: i64,
    next_until: i64,
    session_ids: Vec<i64>,
    joined: Vec<(u32, i64, i64)>,
    batch: Batch,
}

struct Reply {
    worker: usize,
    batch: Batch,
    starts: Vec<Start>,
    active: usize,
}

/// Runs the world from its start to its end (or until `stop` is set), writing every event
/// to `sink` and flushing it at the end.
pub fn run(
    world: &World,
    options: &Options,
    sink: &mut dyn Sink,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<Summary, SinkError> {
    let workers = options.threads.max(1);
    let mut windows = match options.pacing {
        Some(_) => Windows::fixed(REALTIME_WINDOW_MS.min(world.session_gap_ms())),
        None => Windows::sized_by_events(world.session_gap_ms()),
    };
    let start = world.run.start_ms;
    let end = world.run.end_ms;
    let first_until = (start + windows.size_ms).min(end);

    std::thread::scope(|scope| {
        let (reply_tx, reply_rx) = mpsc::channel::<Reply>();
        let mut command_txs = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (tx, rx) = mpsc::channel::<Command>();
            command_txs.push(tx);
            let reply_tx = reply_tx.clone();
            scope.spawn(move || {
                let mut shard = Shard::new(world, worker as u32, workers as u32);
                let mut starts = shard.starts_before(first_until);
                let ready = Reply {
                    worker,
                    batch: Batch::default(),
                    starts: starts.clone(),
                    active: 0,
                };
                if reply_tx.send(ready).is_err() {
                    return;
                }
                for mut command in rx {
                    command.batch.clear();
                    shard.run_until(
                        command.until,
                        &starts,
                        &command.session_ids,
                        &command.joined,
                        &mut command.batch,
                    );
                    starts = shard.starts_before(command.next_until);
                    let reply = Reply {
                        worker,
                        batch: command.batch,
                        starts: starts.clone(),
                        active: shard.active_sessions(),
                    };
                    if reply_tx.send(reply).is_err() {
                        return;
                    }
                }
            });
        }
        drop(reply_tx);

        let mut replies = collect(&reply_rx, workers);
        let mut growth = Growth::new(world);
        let mut next_session_id = 1i64;
        let mut counts = Counts::default();
        let mut written_until = start;
        let mut pending: Option<(i64, Vec<Batch>, usize)> = None;
        let pacing = options.pacing.map(|pacing| (Instant::now(), pacing));
        let mut interrupted = false;
        let mut window_start = start;

        let mut write_pending = |pending: (i64, Vec<Batch>, usize),
                                 counts: &mut Counts,
                                 sessions: i64,
                                 users: u64|
         -> Result<Vec<Batch>, SinkError> {
            let (until, batches, active_sessions) = pending;
            if let Some((began, pacing)) = pacing {
                let ahead_ms = (until - pacing.from_ms).max(0) as f64;
                let due = Duration::from_secs_f64(ahead_ms / 1000.0 / pacing.speed);
                // In short naps, so that a stop request is heard promptly.
                while !stop.load(Ordering::Relaxed) {
                    let Some(left) = due.checked_sub(began.elapsed()) else {
                        break;
                    };
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
            }
            merge_into(&batches, sink, counts)?;
            observer.on_window(&Progress {
                simulated_ms: until,
                counts,
                users,
                sessions: (sessions - 1) as u64,
                active_sessions,
            });
            Ok(batches)
        };

        let mut recycled: Vec<Batch> = Vec::new();
        // The end of the window whose session starts the workers have reported.
        let mut planned_until = first_until;
        while window_start < end {
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let until = planned_until;
            let next_until = (until + windows.size_ms).min(end);

            // Hand out session ids in order of start, across workers and new users.
            let joined = growth.joined_before(until);
            let mut all: Vec<(i64, u32, usize, usize)> = Vec::new();
            for reply in &replies {
                for (pos, &(t, idx)) in reply.starts.iter().enumerate() {
                    all.push((t, idx, reply.worker, pos));
                }
            }
            let mut joined_by_worker = vec![Vec::new(); workers];
            for (pos, &(idx, t)) in joined.iter().enumerate() {
                all.push((t, idx, usize::MAX, pos));
            }
            all.sort_unstable();
            let mut ids: Vec<Vec<i64>> = replies.iter().map(|r| vec![0; r.starts.len()]).collect();
            for &(t, idx, worker, pos) in &all {
                let id = next_session_id;
                next_session_id += 1;
                if worker == usize::MAX {
                    joined_by_worker[idx as usize % workers].push((idx, t, id));
                } else {
                    ids[worker][pos] = id;
                }
            }
            for ((tx, session_ids), joined) in command_txs.iter().zip(ids).zip(joined_by_worker) {
                let command = Command {
                    until,
                    next_until,
                    session_ids,
                    joined,
                    batch: recycled.pop().unwrap_or_default(),
                };
                if tx.send(command).is_err() {
                    return Err(SinkError::Bug("a simulator worker stopped".to_owned()));
                }
            }

            // Write the previous window while the workers compute this one.
            if let Some(previous) = pending.take() {
                written_until = previous.0;
                recycled = write_pending(previous, &mut counts, next_session_id, growth.users)?;
            }
            replies = collect(&reply_rx, workers);
            let active = replies.iter().map(|r| r.active).sum();
            let batches: Vec<Batch> = replies
                .iter_mut()
                .map(|r| std::mem::take(&mut r.batch))
                .collect();
            windows.observe(
                batches.iter().map(|b| b.records.len() as u64).sum(),
                until - window_start,
            );
            pending = Some((until, batches, active));
            window_start = until;
            planned_until = next_until;
        }
        drop(command_txs);
        if let Some(previous) = pending.take() {
            written_until = previous.0;
            write_pending(previous, &mut counts, next_session_id, growth.users)?;
        }
        sink.flush()?;
        Ok(Summary {
            counts,
            users: growth.users,
            sessions: (next_session_id - 1) as u64,
            simulated_until: written_until,
            interrupted,
        })
    })
}

/// How long the windows of simulated time are.
///
/// Any window no longer than the session gap gives the same output: no session can start
/// in the window its predecessor ended in, so a window's session starts (and their ids)
/// are known before it runs, and events are merged in a total order. Sizes only trade
/// hand-overs between threads against memory, so a backfill sizes them by the events
/// they hold: a sparse run (few users, many days) crosses its quiet hours in windows of
/// up to the session gap rather than stepping through them a minute at a time. Sizes
/// follow the run's events, never the number of workers, so they are deterministic too.
#[derive(Debug)]
struct Windows {
    size_ms: i64,
    /// `None`: fixed windows (real time).
    range_ms: Option<(i64, i64)>,
}

impl Windows {
    fn fixed(size_ms: i64) -> Windows {
        Windows {
            size_ms: size_ms.max(1),
            range_ms: None,
        }
    }

    fn sized_by_events(longest_ms: i64) -> Windows {
        let longest_ms = longest_ms.max(1);
        Windows {
            size_ms: FIRST_WINDOW_MS.min(longest_ms),
            range_ms: Some((SECOND_MS.min(longest_ms), longest_ms)),
        }
    }

    /// Sizes the window after next from the events the window just run held over its
    /// length: proportionally, but at most twice that length, so that a quiet night
    /// does not make the morning's first window overfull.
    fn observe(&mut self, events: u64, length_ms: i64) {
        let Some((shortest, longest)) = self.range_ms else {
            return;
        };
        let scale = TARGET_WINDOW_EVENTS as f64 / events.max(1) as f64;
        let size = length_ms as f64 * scale.min(2.0);
        self.size_ms = (size as i64).clamp(shortest, longest);
    }
}

/// One reply from every worker, in worker order.
fn collect(rx: &mpsc::Receiver<Reply>, workers: usize) -> Vec<Reply> {
    let mut replies: Vec<Reply> = rx.iter().take(workers).collect();
    replies.sort_by_key(|r| r.worker);
    replies
}

/// Writes the workers' events of one window in (time, user, sequence) order.
fn merge_into(
    batches: &[Batch],
    sink: &mut dyn Sink,
    counts: &mut Counts,
) -> Result<(), SinkError> {
    let mut next = vec![0usize; batches.len()];
    loop {
        let mut best: Option<usize> = None;
        for (b, batch) in batches.iter().enumerate() {
            let Some(record) = batch.records.get(next[b]) else {
                continue;
            };
            if best.is_none_or(|o| record.order() < batches[o].records[next[o]].order()) {
                best = Some(b);
            }
        }
        let Some(b) = best else {
            return Ok(());
        };
        let i = next[b];
        next[b] += 1;
        let record = batches[b].records[i];
        let json = batches[b].json(i);
        sink.write(record.kind, record.key, json)?;
        let k = record.kind.index();
        counts.events[k] += 1;
        counts.bytes[k] += json.len() as u64 + 1;
    }
}

/// New users: arrivals of a Poisson process whose rate grows with the population, so
/// that it compounds to `(1 + growth-rate)` times the initial users after a year.
struct Growth {
    rng: Stream,
    initial: f64,
    log_growth: f64,
    start: i64,
    /// The running sum of unit exponentials: arrivals happen where the expected count
    /// of arrivals reaches it.
    level: f64,
    next: Option<i64>,
    /// Users so far, initial ones included; the next one gets this index.
    users: u64,
}

impl Growth {
    fn new(world: &World) -> Growth {
        let run = &world.run;
        let mut growth = Growth {
            rng: Stream::new(run.seed, u64::MAX),
            initial: f64::from(run.users),
            log_growth: libm::log1p(run.growth_rate),
            start: run.start_ms,
            level: 0.0,
            next: None,
            users: u64::from(run.users),
        };
        if growth.initial > 0.0 && growth.log_growth > 0.0 {
            growth.advance();
        }
        growth
    }

    fn advance(&mut self) {
        self.level += self.rng.exponential(1.0);
        let years = libm::log1p(self.level / self.initial) / self.log_growth;
        let t = self.start as f64 + years * YEAR_MS as f64;
        self.next = (t < i64::MAX as f64).then_some(t as i64);
    }

    /// The users (index, arrival time) who join before `until`.
    fn joined_before(&mut self, until: i64) -> Vec<(u32, i64)> {
        let mut joined = Vec::new();
        while let Some(t) = self.next {
            if t >= until || self.users >= u64::from(u32::MAX) {
                break;
            }
            joined.push((self.users as u32, t));
            self.users += 1;
            self.advance();
        }
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_windows_grow_over_quiet_time_and_shrink_when_busy() {
        let gap = 1_800_000;
        let mut windows = Windows::sized_by_events(gap);
        assert_eq!(windows.size_ms, FIRST_WINDOW_MS);
        // An empty window doubles the size, up to the session gap.
        let mut sizes = Vec::new();
        for _ in 0..10 {
            windows.observe(0, windows.size_ms);
            sizes.push(windows.size_ms);
        }
        assert_eq!(sizes[..3], [20_000, 40_000, 80_000]);
        assert_eq!(windows.size_ms, gap);
        // Sizes follow the window that was observed, not the one planned since: a
        // minute that held half the target makes the next window two minutes.
        windows.observe(TARGET_WINDOW_EVENTS / 2, 60_000);
        assert_eq!(windows.size_ms, 120_000);
        // Ten times the target shrinks it tenfold, but never under a second.
        windows.observe(10 * TARGET_WINDOW_EVENTS, gap);
        assert_eq!(windows.size_ms, gap / 10);
        windows.observe(u64::MAX, gap);
        assert_eq!(windows.size_ms, SECOND_MS);
        // Real-time windows never change.
        let mut fixed = Windows::fixed(REALTIME_WINDOW_MS);
        fixed.observe(0, REALTIME_WINDOW_MS);
        assert_eq!(fixed.size_ms, REALTIME_WINDOW_MS);
    }
}
