//! The session rate follows the model's formula: each user's pace factor `X` is
//! log-normal with spread 1 and mean 1 (as eventsim draws it), a user waits on average
//! `beta · X` between sessions, plus the session gap, and the daily cycle moves session
//! starts within the day without removing any. The expected sessions per user per day
//! are worked out from those formulas by quadrature, then compared with a large run.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;

use simulator::clock::{DAY_MS, parse_date_time};
use simulator::config::EventsimConfig;
use simulator::engine::{self, Options, Quiet};
use simulator::population::Places;
use simulator::sinks::Memory;
use simulator::songs::Catalogue;
use simulator::world::{PACE_SIGMA, RunSpec, World};
use warehouse::raw::EventKind;

/// A site of one page: every session is a single page view, so sessions are counted
/// exactly and their length adds nothing to the time between them.
fn one_page_site(beta_s: f64, session_gap_s: i64, damping: f64) -> String {
    format!(
        r#"{{
  "alpha": 60.0, "beta": {beta_s}, "damping": {damping},
  "weekend-damping": 0.0, "weekend-damping-offset": 180, "weekend-damping-scale": 360,
  "session-gap": {session_gap_s},
  "show-user-details": [{{"auth": "Logged In", "show": true}}],
  "levels": [{{"level": "free", "weight": 1}}],
  "auths": [{{"auth": "Logged In", "weight": 1}}],
  "new-session": [{{"page": "Home", "method": "GET", "status": 200,
                   "auth": "Logged In", "level": "free", "weight": 1}}],
  "new-user-auth": "Logged In", "new-user-level": "free",
  "transitions": []
}}"#
    )
}

/// Expected sessions per user per day: the mean over `X` of one session per
/// `beta · X + gap` seconds, by Simpson's rule over the standard normal `Z`, with
/// `X = exp(σ Z − σ² / 2)`.
fn expected_sessions_per_day(beta_s: f64, gap_s: f64) -> f64 {
    let (lo, hi, steps) = (-9.0f64, 9.0f64, 6_000);
    let h = (hi - lo) / f64::from(steps);
    let f = |z: f64| {
        let density = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let x = (PACE_SIGMA * z - PACE_SIGMA * PACE_SIGMA / 2.0).exp();
        density * 86_400.0 / (beta_s * x + gap_s)
    };
    let mut sum = f(lo) + f(hi);
    for i in 1..steps {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += weight * f(lo + f64::from(i) * h);
    }
    sum * h / 3.0
}

#[test]
fn sessions_per_user_per_day_match_the_models_formula() {
    // These figures are what the formula gives; the test checks the formula too, so
    // that a change to the pace spread shows here as well as in the run.
    let (beta_s, gap_s) = (86_400.0, 1_800);
    let expected = expected_sessions_per_day(beta_s, gap_s as f64);
    // With a spread of 1 the mean of 1/X is e: about e sessions a day, a little less
    // because of the gap that follows each session.
    assert!(
        (2.3..2.72).contains(&expected),
        "formula gives {expected:.4} sessions per user per day"
    );

    let (users, days) = (20_000u32, 3i64);
    let (config, model) =
        EventsimConfig::parse("one-page.json", &one_page_site(beta_s, gap_s, 0.09375)).unwrap();
    let start_ms = parse_date_time("2026-01-06T00:00:00").unwrap();
    let run = RunSpec {
        seed: 42,
        start_ms,
        end_ms: start_ms + days * DAY_MS,
        users,
        first_user_id: 1,
        growth_rate: 0.0,
        attrition_rate: 0.0,
    };
    let world = World::new(&config, model, Catalogue::builtin(), Places::us(), run).unwrap();
    let mut sink = Memory::default();
    let options = Options {
        threads: 2,
        pacing: None,
    };
    let summary = engine::run(
        &world,
        &options,
        &mut sink,
        &AtomicBool::new(false),
        &mut Quiet,
    )
    .unwrap();
    let sessions = summary.counts.of(EventKind::PageView) as f64;
    let measured = sessions / f64::from(users) / days as f64;
    // The run's own noise (mostly from the spread of X over 20,000 users) is about 1 %.
    let error = (measured - expected) / expected;
    assert!(
        error.abs() < 0.03,
        "measured {measured:.4} sessions per user per day, formula {expected:.4} ({:+.2} %)",
        100.0 * error
    );
}
