//! The generator run on eventsim's example config and song file (`../shared/eventsim/`):
//! deterministic across thread counts, valid raw events, listens mirroring NextSong page
//! views, causal per-user timelines, sessions apart by the session gap, and transition
//! frequencies, daily and weekly cycles and growth matching the config statistically.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use common::shared;
use simulator::clock::{DAY_MS, HOUR_MS, WEEK_MS, parse_date_time};
use simulator::config::{EventsimConfig, SiteModel};
use simulator::engine::{self, Options, Quiet, Summary};
use simulator::population::Places;
use simulator::random::Stream;
use simulator::sinks::Memory;
use simulator::songs::Catalogue;
use simulator::world::{RunSpec, World};
use warehouse::raw::{EventKind, RawEvent};

fn example() -> &'static (EventsimConfig, SiteModel) {
    static EXAMPLE: OnceLock<(EventsimConfig, SiteModel)> = OnceLock::new();
    EXAMPLE.get_or_init(|| EventsimConfig::load(&shared("example-config.json")).unwrap())
}

fn songs() -> Catalogue {
    static SONGS: OnceLock<Catalogue> = OnceLock::new();
    SONGS
        .get_or_init(|| Catalogue::load(&shared("listen_counts.txt.gz")).unwrap())
        .clone()
}

const START: &str = "2026-01-05T00:00:00";

fn world(users: u32, days: i64, seed: u64, growth_rate: f64) -> World {
    let (config, model) = example();
    let start_ms = parse_date_time(START).unwrap();
    let run = RunSpec {
        seed,
        start_ms,
        end_ms: start_ms + days * DAY_MS,
        users,
        first_user_id: 1,
        growth_rate,
        attrition_rate: 0.0,
    };
    World::new(config, model.clone(), songs(), Places::us(), run).unwrap()
}

/// Events as written: kind, Kafka key and JSON.
type Events = Vec<(EventKind, i64, Vec<u8>)>;

fn run(world: &World, threads: usize) -> (Summary, Events) {
    let mut sink = Memory::default();
    let options = Options {
        threads,
        pacing: None,
    };
    let summary = engine::run(
        world,
        &options,
        &mut sink,
        &AtomicBool::new(false),
        &mut Quiet,
    )
    .unwrap();
    (summary, sink.events)
}

/// One week of 4,000 users and strong growth (so that guests register too), shared by
/// the tests that inspect a run's events.
fn week() -> &'static (Summary, Events) {
    static WEEK: OnceLock<(Summary, Events)> = OnceLock::new();
    WEEK.get_or_init(|| run(&world(4_000, 7, 11, 20.0), 2))
}

fn parsed(kind: EventKind, json: &[u8]) -> RawEvent<'_> {
    RawEvent::parse(kind, json)
        .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(json)))
}

#[test]
fn the_same_seed_gives_identical_output_whatever_the_thread_count() {
    let world = world(1_000, 3, 5, 2.0);
    let (one, events) = run(&world, 1);
    assert!(events.len() > 5_000, "{} events", events.len());
    for threads in [2, 3, 8] {
        let (summary, again) = run(&world, threads);
        assert_eq!(summary, one, "{threads} threads");
        assert!(again == events, "{threads} threads gave other events");
    }
    let (_, other_seed) = run(&self::world(1_000, 3, 6, 2.0), 2);
    assert!(other_seed != events, "another seed gave the same events");
}

#[test]
fn every_event_is_a_valid_raw_event_and_counts_add_up() {
    let (summary, events) = week();
    for (kind, _, json) in events {
        let event = parsed(*kind, json);
        assert_eq!(event.kind(), *kind);
    }
    for kind in EventKind::ALL {
        let n = events.iter().filter(|(k, _, _)| *k == kind).count() as u64;
        assert_eq!(summary.counts.of(kind), n, "{kind:?}");
        assert!(n > 0, "no {kind:?} events");
    }
    assert!(summary.users > 4_000, "growth added no users");
}

#[test]
fn listens_match_next_song_page_views_one_for_one() {
    let (_, events) = week();
    let mut views = Vec::new();
    let mut listens = Vec::new();
    for (kind, _, json) in events {
        match parsed(*kind, json) {
            RawEvent::PageView(v) if v.page == "NextSong" => {
                let song = v.song.unwrap();
                let user = v.user.unwrap();
                views.push((v.context, song, user, v.auth));
            }
            RawEvent::Listen(l) => listens.push((l.context, l.song, l.user, l.auth)),
            _ => {}
        }
    }
    assert!(listens.len() > 10_000, "{} listens", listens.len());
    assert_eq!(views, listens);
}

#[test]
fn no_event_precedes_its_users_registration_and_user_time_never_goes_back() {
    let (_, events) = week();
    let mut last: HashMap<i64, i64> = HashMap::new();
    for (kind, _, json) in events {
        let event = parsed(*kind, json);
        let ts = event.context().ts;
        if let Some(user) = event.user() {
            assert!(
                ts >= user.registration,
                "user {} before registration",
                user.user_id
            );
            let previous = last.insert(user.user_id, ts).unwrap_or(i64::MIN);
            assert!(ts >= previous, "user {} went back in time", user.user_id);
        }
    }
    // Kafka keys: the user when shown, else the session.
    for (kind, key, json) in events {
        let event = parsed(*kind, json);
        let expected = event
            .user()
            .map_or(event.context().session_id, |u| u.user_id);
        assert_eq!(*key, expected);
    }
}

#[test]
fn a_user_who_reaches_the_churned_state_is_never_seen_again() {
    let (_, events) = week();
    let mut churned: HashMap<i64, i64> = HashMap::new();
    let mut seen_after = Vec::new();
    for (kind, _, json) in events {
        let event = parsed(*kind, json);
        let Some(user) = event.user() else {
            continue;
        };
        if let Some(at) = churned.get(&user.user_id) {
            seen_after.push((user.user_id, *at, event.context().ts));
        }
        if let RawEvent::PageView(view) = &event
            && view.page == "Cancellation Confirmation"
        {
            churned.insert(user.user_id, view.context.ts);
        }
    }
    assert!(
        !churned.is_empty(),
        "nobody cancelled, so nothing was tested"
    );
    assert!(
        seen_after.is_empty(),
        "(user, cancelled, seen): {seen_after:?}"
    );
}

#[test]
fn sessions_are_separated_by_at_least_the_session_gap() {
    let (config, _) = example();
    let gap_ms = config.session_gap * 1000;
    let (_, events) = week();
    // Per session: its user (when ever shown), first event, and when its last one ended.
    let mut sessions: BTreeMap<i64, (Option<i64>, i64, i64, i64)> = BTreeMap::new();
    for (kind, _, json) in events {
        let RawEvent::PageView(view) = parsed(*kind, json) else {
            continue;
        };
        let c = &view.context;
        let ended = c.ts
            + view
                .song
                .as_ref()
                .map_or(0, |s| (s.duration * 1000.0).round() as i64);
        let entry = sessions
            .entry(c.session_id)
            .or_insert((None, c.ts, ended, c.item_in_session));
        entry.0 = entry.0.or(view.user.as_ref().map(|u| u.user_id));
        entry.2 = entry.2.max(ended);
        assert_eq!(
            c.item_in_session, entry.3,
            "session {} skips an item",
            c.session_id
        );
        entry.3 += 1;
    }
    let mut by_user: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for (user, first, ended, _) in sessions.values() {
        if let Some(user) = user {
            by_user.entry(*user).or_default().push((*first, *ended));
        }
    }
    let mut checked = 0;
    for (user, mut list) in by_user {
        list.sort();
        for pair in list.windows(2) {
            assert!(pair[1].0 - pair[0].1 >= gap_ms, "user {user}: {pair:?}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} session pairs");
    // Session ids follow start order.
    let mut starts: Vec<(i64, i64)> = sessions.iter().map(|(id, s)| (s.1, *id)).collect();
    starts.sort();
    assert!(starts.windows(2).all(|w| w[0].1 < w[1].1));
}

#[test]
fn transition_frequencies_match_the_config() {
    let (config, _) = example();
    let mut p: HashMap<(String, String), f64> = HashMap::new();
    let name = |s: &simulator::config::StateSpec| {
        format!(
            "{}|{}|{}|{}|{}",
            s.page, s.method, s.status, s.auth, s.level
        )
    };
    for t in &config.transitions {
        *p.entry((name(&t.source), name(&t.dest))).or_default() += t.p;
    }
    let (_, events) = week();
    let mut previous: HashMap<i64, String> = HashMap::new();
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    let mut totals: HashMap<String, u64> = HashMap::new();
    for (kind, _, json) in events {
        let RawEvent::PageView(v) = parsed(*kind, json) else {
            continue;
        };
        let state = format!(
            "{}|{}|{}|{}|{}",
            v.page,
            v.method,
            v.status,
            v.auth.name(),
            v.context.level.name()
        );
        if let Some(from) = previous.insert(v.context.session_id, state.clone()) {
            *counts.entry((from.clone(), state)).or_default() += 1;
            *totals.entry(from).or_default() += 1;
        }
    }
    let mut tested = 0;
    for ((from, to), &expected) in &p {
        let n = totals.get(from).copied().unwrap_or(0);
        // Sessions end too, so the transitions seen out of a state are a sample of the
        // continuing ones: compare shares of the continuing probability mass.
        let out: f64 = p
            .iter()
            .filter(|((f, _), _)| f == from)
            .map(|(_, q)| q)
            .sum();
        if n < 1_000 || out <= 0.0 {
            continue;
        }
        let share = expected / out;
        let seen = counts
            .get(&(from.clone(), to.clone()))
            .copied()
            .unwrap_or(0) as f64
            / n as f64;
        let tolerance = 5.0 * (share * (1.0 - share) / n as f64).sqrt() + 1e-3;
        assert!(
            (seen - share).abs() <= tolerance,
            "{from} -> {to}: seen {seen:.4}, expected {share:.4} ± {tolerance:.4} (n = {n})"
        );
        tested += 1;
    }
    assert!(tested >= 20, "only {tested} transitions had enough samples");
}

/// The session-start process alone (no sessions in between), for many starts: their
/// local hour of the week must follow the activity factor, chi-square within bounds.
#[test]
fn session_starts_follow_the_daily_cycle_and_weekend_damping() {
    let world = world(1, 1, 3, 0.0);
    let activity = *world.activity();
    // A place in New York's zone, whose offset is known.
    let place = (0..world.places.len() as u32)
        .find(|&i| world.places.get(i).state == "NY")
        .unwrap();
    let zone = world.places.get(place).zone;
    let mut rng = Stream::new(9, 9);
    let first = parse_date_time(START).unwrap();
    let mut t = first;
    let mut observed = [0f64; 168];
    let n = 200_000;
    // Hour of a week that starts on Monday 00:00 (epoch day 4 was a Monday).
    let hour_of_week = |local: i64| ((local - 4 * DAY_MS).rem_euclid(WEEK_MS) / HOUR_MS) as usize;
    for _ in 0..n {
        t = world.next_session_start(&mut rng, place, HOUR_MS as f64, t);
        observed[hour_of_week(zone.local(t))] += 1.0;
    }
    // The expected share of each hour of the week: the factor summed over the local
    // times the run went through, every ten minutes, so that the holidays of those
    // years count as they fell.
    let mut weights = vec![0f64; 168];
    let step = 10 * 60_000;
    let (from, to) = (zone.local(first), zone.local(t));
    for local in (from / step..to / step).map(|i| i * step + step / 2) {
        weights[hour_of_week(local)] += activity.factor(local);
    }
    let total: f64 = weights.iter().sum();
    let chi2: f64 = observed
        .iter()
        .zip(&weights)
        .map(|(o, w)| {
            let e = w / total * f64::from(n);
            (o - e) * (o - e) / e
        })
        .sum();
    // 167 degrees of freedom: mean 167, standard deviation about 18.3.
    assert!(chi2 < 167.0 + 5.0 * 18.3, "chi-square {chi2:.1}");
    // And the two effects, read directly: afternoons over nights on weekdays, and
    // weekend middays over weekday middays.
    let sum = |days: &[usize], hours: std::ops::Range<usize>| -> f64 {
        days.iter()
            .flat_map(|d| hours.clone().map(move |h| observed[d * 24 + h]))
            .sum()
    };
    // Four standard errors of a ratio of two counts.
    let check = |what: &str, a: f64, b: f64, expected: f64, slack: f64| {
        let ratio = a / b;
        let tolerance = 4.0 * ratio * (1.0 / a + 1.0 / b).sqrt() + slack;
        assert!(
            (ratio - expected).abs() < tolerance,
            "{what}: {ratio:.4}, expected {expected:.4} ± {tolerance:.4}"
        );
    };
    let weekdays = [0, 1, 2, 3];
    // The dip is deepest at 03:00 and these three hours straddle it: allow the
    // difference between the mean over them and the minimum.
    check(
        "night over afternoon",
        sum(&weekdays, 2..5),
        sum(&weekdays, 14..17),
        1.0 - example().0.damping,
        0.01,
    );
    check(
        "weekend over weekday middays",
        sum(&[5, 6], 10..20),
        sum(&[1, 2], 10..20),
        1.0 - example().0.weekend_damping,
        0.0,
    );
}

#[test]
fn growth_adds_users_at_the_configured_yearly_rate() {
    // 100-fold a year: over a week, 1,000 users become 1,000 * 101^(7/365.25).
    let (summary, _) = run(&world(1_000, 7, 4, 100.0), 2);
    let expected = 1_000.0 * (101f64.powf(7.0 / 365.25) - 1.0);
    let joined = (summary.users - 1_000) as f64;
    assert!(
        (joined - expected).abs() < 4.0 * expected.sqrt(),
        "{joined} joined, expected {expected:.1}"
    );
}
