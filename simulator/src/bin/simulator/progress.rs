//! Progress on stderr: a bar with the simulated clock, events/s and an ETA for backfills
//! (one line every ten seconds when stderr is not a terminal), periodic stats in
//! continuous mode, and the summary per topic at the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use simulator::clock::format_date_time;
use simulator::engine::{Counts, Observer, Progress, Summary};
use simulator::sinks::KafkaReport;
use warehouse::raw::EventKind;

use crate::settings::{Output, Settings};

#[derive(Debug)]
pub struct Bar {
    quiet: bool,
    terminal: bool,
    start_ms: i64,
    end_ms: Option<i64>,
    began: Instant,
    last_print: Instant,
    /// Events at the last print, for the rate over the last interval.
    last_events: u64,
    drawn: bool,
}

impl Bar {
    pub fn new(settings: &Settings, quiet: bool) -> Bar {
        let now = Instant::now();
        Bar {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            start_ms: settings.start_ms,
            end_ms: if settings.continuous {
                None
            } else {
                settings.end_ms
            },
            began: now,
            last_print: now,
            last_events: 0,
            drawn: false,
        }
    }

    fn interval(&self) -> Duration {
        match (self.terminal, self.end_ms) {
            (true, Some(_)) => Duration::from_millis(250),
            _ => Duration::from_secs(10),
        }
    }

    /// Ends the bar's line, so that what follows starts on a fresh one.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Observer for Bar {
    fn on_window(&mut self, progress: &Progress<'_>) {
        if self.quiet || self.last_print.elapsed() < self.interval() {
            return;
        }
        let events = progress.counts.total_events();
        let elapsed = self.began.elapsed().as_secs_f64().max(1e-9);
        let since = self.last_print.elapsed().as_secs_f64().max(1e-9);
        let recent_rate = (events - self.last_events) as f64 / since;
        self.last_print = Instant::now();
        self.last_events = events;
        let clock = format_date_time(progress.simulated_ms);
        let line = match self.end_ms {
            Some(end) => {
                let done = (progress.simulated_ms - self.start_ms) as f64
                    / (end - self.start_ms).max(1) as f64;
                let eta = if done > 0.0 {
                    elapsed * (1.0 - done) / done
                } else {
                    0.0
                };
                let width = 24;
                let filled = ((done * width as f64) as usize).min(width);
                format!(
                    "[{}{}] {:>3.0}% {clock} | {} events | {}/s | ETA {}",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    done * 100.0,
                    thousands(events),
                    thousands(recent_rate as u64),
                    duration(eta),
                )
            }
            None => format!(
                "{clock} | {} events | {}/s | {} users | {} sessions, {} active",
                thousands(events),
                thousands(recent_rate as u64),
                thousands(progress.users),
                thousands(progress.sessions),
                thousands(progress.active_sessions as u64),
            ),
        };
        let mut err = std::io::stderr().lock();
        if self.terminal && self.end_ms.is_some() {
            let _ = write!(err, "\r{line}\x1b[K");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "simulator: {line}");
        }
        let _ = err.flush();
    }
}

pub fn describe(output: &Output) -> String {
    match output {
        Output::Dir { path, gzip } => format!(
            "{}/<topic>.jsonl{}",
            path.display(),
            if *gzip { ".gz" } else { "" }
        ),
        Output::Stdout => "stdout".to_owned(),
        Output::Kafka { brokers } => format!("Kafka at {brokers}"),
    }
}

pub fn print_summary(
    settings: &Settings,
    summary: &Summary,
    kafka: Option<&KafkaReport>,
    elapsed: Duration,
) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let counts: &Counts = &summary.counts;
    let ending = if summary.interrupted {
        format!(
            "interrupted at {} (everything before it was written)",
            format_date_time(summary.simulated_until)
        )
    } else {
        "done".to_owned()
    };
    let memory = peak_memory_mb().map_or(String::new(), |mb| format!("; peak memory {mb} MB"));
    eprintln!(
        "simulator: {ending}: {} events, {:.1} MB in {:.1}s ({}/s); {} users, {} sessions{memory}",
        thousands(counts.total_events()),
        counts.total_bytes() as f64 / 1e6,
        seconds,
        thousands((counts.total_events() as f64 / seconds) as u64),
        thousands(summary.users),
        thousands(summary.sessions),
    );
    for (slot, kind) in EventKind::ALL.into_iter().enumerate() {
        let delivery = kafka.map_or(String::new(), |report| {
            format!(
                ", {} delivered, {} failed",
                thousands(report.delivered[slot]),
                thousands(report.failed[slot])
            )
        });
        eprintln!(
            "  {:<22} {:>12} events {:>10.1} MB{delivery}",
            settings.topics[slot],
            thousands(counts.of(kind)),
            counts.bytes[slot] as f64 / 1e6,
        );
    }
}

/// The process's peak resident memory, where the system says (Linux's `VmHWM`).
fn peak_memory_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// 1234567 as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(duration(3725.2), "1:02:05");
    }
}
