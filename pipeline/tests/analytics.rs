//! The KPI views on golden data: eight hand-made sessions of five users over February,
//! March and April 2026 go through the pipeline into DuckDB and into the BigQuery
//! emulator, and every KPI, read for all time, a quarter, a month, a date range and an
//! empty month, must equal `tests/data/analytics/expected.txt`, whose values were worked
//! out by hand from the sessions below (no file here is written by the code it checks).
//! The data-quality checks pass on them and fail where they must. Then the dashboard
//! drawn from them opens in real headless Chromium.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;

use pipeline::analytics::{BigQueryKpis, DuckDbKpis, KpiSource, Snapshot, check};
use pipeline::sinks::{BigQuery, DuckDb};
use serde_json::json;
use warehouse::analytics::Period;
use warehouse::quality::CheckKind;
use warehouse::raw::EventKind;
use xtask::emulator::ScratchEmulator;

use common::{options, run_into, temp_dir};

/// (user id, first name, level, city, zip, state, lat, lon).
type User = (
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
);

const ADA: User = (1, "Ada", "free", "Boston", "02108", "MA", 42.3588, -71.0654);
const BO: User = (2, "Bo", "paid", "Austin", "78701", "TX", 30.2672, -97.7431);
const CY: User = (3, "Cy", "free", "Tampa", "33602", "FL", 27.9506, -82.4572);
const CY_PAID: User = (3, "Cy", "paid", "Tampa", "33602", "FL", 27.9506, -82.4572);
const DI: User = (4, "Di", "paid", "Boston", "02115", "MA", 42.3429, -71.0892);
const ED: User = (5, "Ed", "free", "Denver", "80202", "CO", 39.7392, -104.9903);

/// (session id, user, start "YYYY-MM-DDTHH:MM", listens as (artist, seconds)).
type Session = (i64, User, &'static str, &'static [(&'static str, f64)]);

const SESSIONS: &[Session] = &[
    (
        1,
        ADA,
        "2026-02-10T10:00",
        &[
            ("Artist A", 240.0),
            ("Artist B", 180.0),
            ("Artist A", 300.0),
        ],
    ),
    (
        2,
        BO,
        "2026-02-10T12:00",
        &[("Artist A", 240.0), ("Artist C", 120.0)],
    ),
    (3, CY, "2026-02-20T09:00", &[("Artist B", 180.0)]),
    (
        4,
        DI,
        "2026-03-05T18:00",
        &[
            ("Artist D", 300.0),
            ("Artist D", 300.0),
            ("Artist A", 240.0),
        ],
    ),
    (
        5,
        ADA,
        "2026-03-15T20:00",
        &[("Artist E", 60.0), ("Artist E", 45.0)],
    ),
    (
        6,
        CY_PAID,
        "2026-04-01T08:00",
        &[("Artist C", 120.0), ("Artist F", 360.0)],
    ),
    (
        7,
        ED,
        "2026-04-02T21:00",
        &[
            ("Artist A", 240.0),
            ("Artist B", 180.0),
            ("Artist G", 150.0),
        ],
    ),
    (8, BO, "2026-04-03T07:00", &[("Artist F", 360.0)]),
];

fn epoch_ms(start: &str) -> i64 {
    let (date, time) = start.split_once('T').unwrap();
    let day = warehouse::time::parse_iso_date(date).unwrap();
    let (hour, minute) = time.split_once(':').unwrap();
    (day * 86_400 + hour.parse::<i64>().unwrap() * 3600 + minute.parse::<i64>().unwrap() * 60)
        * 1000
}

/// The sessions as the simulator's files: each song starting when the one before it
/// ends, with the `NextSong` page view that goes with every listen, as in eventsim.
fn write_events(dir: &Path) {
    for kind in EventKind::ALL {
        std::fs::File::create(dir.join(format!("{}.jsonl", kind.topic()))).unwrap();
    }
    let mut file = std::fs::File::create(dir.join("listen_events.jsonl")).unwrap();
    let mut views = std::fs::File::create(dir.join("page_view_events.jsonl")).unwrap();
    let mut lines: Vec<(i64, String)> = Vec::new();
    let mut view_lines: Vec<(i64, String)> = Vec::new();
    for &(session, user, start, listens) in SESSIONS {
        let (id, first, level, city, zip, state, lat, lon) = user;
        let mut ts = epoch_ms(start);
        for (item, (artist, duration)) in listens.iter().enumerate() {
            let event = json!({
                "artist": artist, "song": format!("{artist} song"), "duration": duration,
                "ts": ts, "sessionId": session, "auth": "Logged In", "level": level,
                "itemInSession": item, "city": city, "zip": zip, "state": state,
                "userAgent": "Mozilla/5.0", "lon": lon, "lat": lat, "userId": id,
                "lastName": "Golden", "firstName": first, "gender": "F",
                "registration": 1_767_225_600_000_i64,
            });
            lines.push((ts, event.to_string()));
            let view = json!({
                "ts": ts, "sessionId": session, "page": "NextSong", "auth": "Logged In",
                "method": "PUT", "status": 200, "level": level, "itemInSession": item,
                "city": city, "zip": zip, "state": state, "userAgent": "Mozilla/5.0",
                "lon": lon, "lat": lat, "userId": id, "lastName": "Golden",
                "firstName": first, "gender": "F", "registration": 1_767_225_600_000_i64,
            });
            view_lines.push((ts, view.to_string()));
            ts += (*duration as i64) * 1000;
        }
    }
    lines.sort();
    view_lines.sort();
    for (_, line) in lines {
        writeln!(file, "{line}").unwrap();
    }
    for (_, line) in view_lines {
        writeln!(views, "{line}").unwrap();
    }
}

fn periods() -> Vec<Period> {
    [
        "all",
        "2026-Q1",
        "2026-04",
        "2026-02-15..2026-03-10",
        "2025-01",
    ]
    .iter()
    .map(|p| Period::parse(p).unwrap())
    .collect()
}

fn expected() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/analytics/expected.txt"),
    )
    .unwrap()
}

fn answers(source: &mut dyn KpiSource) -> String {
    Snapshot::read(source, Some(periods())).unwrap().text()
}

#[test]
fn duckdb_kpi_views_give_the_hand_computed_values() {
    let dir = temp_dir("analytics-duckdb");
    write_events(&dir);
    let path = dir.join("w.duckdb");
    let (totals, sink) = run_into(&dir, DuckDb::open(&path).unwrap());
    assert_eq!(totals.stats.landed, 34, "17 listens and their page views");
    let mut kpis = DuckDbKpis::new(sink.connection().try_clone().unwrap(), "w.duckdb");
    pretty_assert(&answers(&mut kpis), &expected());
    quality_checks_pass_on_data_and_fail_without(&mut kpis);
    // A song lost from its dimension: its one listen (2 April) no longer resolves.
    sink.connection()
        .execute("DELETE FROM song_dim WHERE song = 'Artist G song'", [])
        .unwrap();
    let failed: Vec<String> = check(&mut kpis, CheckKind::Keys, Some(20_260_402))
        .unwrap()
        .into_iter()
        .filter(|c| !c.passed())
        .map(|c| format!("{}: {}", c.check.name, c.count))
        .collect();
    assert_eq!(failed, ["event_fact.song_key not in song_dim: 1"]);
    // Every period with data is offered: all time, two quarters, three months.
    let labels: Vec<String> = Snapshot::read(&mut kpis, None)
        .unwrap()
        .periods
        .into_iter()
        .map(|p| p.label)
        .collect();
    assert_eq!(
        labels,
        ["all", "2026-Q2", "2026-Q1", "2026-04", "2026-03", "2026-02"]
    );
}

/// The opening tag of the element whose `data-kpi` is `kpi`, in a serialized DOM.
fn card<'a>(dom: &'a str, kpi: &str) -> &'a str {
    let at = dom
        .find(&format!("data-kpi=\"{kpi}\""))
        .unwrap_or_else(|| panic!("no card for {kpi}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[test]
fn the_dashboard_draws_every_kpi_in_headless_chromium() {
    let dir = temp_dir("analytics-dashboard");
    write_events(&dir);
    let (_, sink) = run_into(&dir, DuckDb::open(&dir.join("w.duckdb")).unwrap());
    let mut kpis = DuckDbKpis::new(sink.connection().try_clone().unwrap(), "w.duckdb");
    let snapshot = Snapshot::read(&mut kpis, None).unwrap();
    let page = dir.join("dashboard.html");
    std::fs::write(&page, pipeline::dashboard::render(&snapshot, "now", None)).unwrap();
    let url = format!("file://{}", page.display());

    // Marks each chart must draw from the golden data: one per tile, bar, cell or circle.
    let all_time = [
        ("kpi_listens", 1),
        ("kpi_hours_listened", 1),
        ("kpi_session_listening_time", 1),
        ("kpi_active_users_30d", 1),
        ("kpi_top_artists", 5),
        ("kpi_top_states", 4),
        ("kpi_listens_by_level", 2),
        ("kpi_paid_free_users_mom", 6),
        ("kpi_listens_monthly", 3),
        ("kpi_users_per_state_monthly", 7),
        ("kpi_listening_cities", 4),
    ];
    let april = [
        ("kpi_top_artists", 5),
        ("kpi_top_states", 3),
        ("kpi_paid_free_users_mom", 2),
        ("kpi_listens_monthly", 1),
        ("kpi_users_per_state_monthly", 3),
        ("kpi_listening_cities", 3),
    ];
    for (address, period, marks) in [
        (url.clone(), "all", &all_time[..]),
        (format!("{url}#2026-04"), "2026-04", &april[..]),
    ] {
        let loaded = xtask::browser::load(&address, &dir.join("chromium")).unwrap();
        assert!(
            loaded.console.is_empty(),
            "the page wrote to the console: {:#?}",
            loaded.console
        );
        let html = card(&loaded.dom, "kpi_listens");
        assert!(html.contains("data-points"), "{html}");
        let root = &loaded.dom[..loaded.dom.find("<head").unwrap()];
        assert!(!root.contains("data-errors"), "errors: {root}");
        let body = &loaded.dom[loaded.dom.find("<body").unwrap()..];
        let body = &body[..body.find('>').unwrap()];
        assert_eq!(attribute(body, "data-rendered"), Some("true"), "{body}");
        assert_eq!(attribute(body, "data-period"), Some(period), "{body}");
        for (kpi, expected) in marks {
            let tag = card(&loaded.dom, kpi);
            assert_eq!(
                attribute(tag, "data-points"),
                Some(expected.to_string().as_str()),
                "{kpi} in {period}: {tag}"
            );
        }
    }
    assert_eq!(
        snapshot.periods.len(),
        6,
        "the page offers all, 2 quarters and 3 months"
    );

    // The picture is kept for people (CI uploads it); that it was taken is all that is
    // checked of it.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    xtask::browser::screenshot(&url, &png, 1440, 1250, &dir.join("chromium")).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    println!("dashboard screenshot: {}", png.display());
}

#[test]
fn bigquery_kpi_views_give_the_hand_computed_values() {
    let scratch = ScratchEmulator::start("pipeline-analytics").unwrap();
    let dir = temp_dir("analytics-bigquery");
    write_events(&dir);
    let options = options(scratch.emulator(), "golden", &dir.join("staging"));
    let (totals, _sink) = run_into(&dir, BigQuery::open(&options).unwrap());
    assert_eq!(totals.stats.landed, 34, "17 listens and their page views");
    let mut kpis = BigQueryKpis::open(&options).unwrap();
    pretty_assert(&answers(&mut kpis), &expected());
    quality_checks_pass_on_data_and_fail_without(&mut kpis);
}

/// Every check passes on a day with sessions (10 February), and the row counts of a
/// day without any fail on exactly the tables that must have rows.
fn quality_checks_pass_on_data_and_fail_without(source: &mut dyn KpiSource) {
    for kind in CheckKind::ALL {
        for checked in check(source, kind, Some(20_260_210)).unwrap() {
            assert!(
                checked.passed(),
                "{}: {}",
                checked.check.name,
                checked.count
            );
        }
    }
    let sessions = check(source, CheckKind::RowCounts, Some(20_260_210)).unwrap();
    let count = |name: &str| {
        sessions
            .iter()
            .find(|c| c.check.name == name)
            .unwrap()
            .count
    };
    assert_eq!(
        (count("session_fact rows"), count("event_fact rows")),
        (2, 5)
    );
    let failed: Vec<String> = check(source, CheckKind::RowCounts, Some(20_250_101))
        .unwrap()
        .into_iter()
        .filter(|c| !c.passed())
        .map(|c| c.check.name)
        .collect();
    assert_eq!(failed, ["date_dim rows", "session_fact rows"]);
}

/// Shows the first line that differs, not two whole texts.
fn pretty_assert(actual: &str, expected: &str) {
    for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "line {} differs; whole answer:\n{actual}", i + 1);
    }
    assert_eq!(actual.lines().count(), expected.lines().count(), "{actual}");
}
