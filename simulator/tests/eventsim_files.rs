//! eventsim's own files load unchanged: the shared example config and song catalogue
//! (`../shared/eventsim/`). Bad configs name the JSON path of every problem.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::shared;
use serde_json::{Value, json};
use simulator::config::{ConfigError, EventsimConfig};
use simulator::songs::Catalogue;
use warehouse::raw::{Auth, Level};

fn example() -> Value {
    serde_json::from_str(&std::fs::read_to_string(shared("example-config.json")).unwrap()).unwrap()
}

/// Number of sweep points per unit; probabilities in the example have three decimals.
const SWEEP: u32 = 100_000;

#[test]
fn example_config_loads_and_its_transitions_are_the_model() {
    let (config, model) = EventsimConfig::load(&shared("example-config.json")).unwrap();
    assert_eq!(
        (config.alpha, config.beta, config.session_gap),
        (90.0, 604_800.0, 1800)
    );
    assert_eq!(config.transitions.len(), 198);
    assert_eq!(model.churned_state, Some(Auth::Cancelled));
    assert_eq!(
        (model.new_user_auth, model.new_user_level),
        (Auth::Guest, Level::Free)
    );

    // Read the expected probabilities straight from the JSON, then sweep each source
    // state's uniform draw and count where it lands.
    let mut expected: HashMap<(String, String), f64> = HashMap::new();
    for t in example()["transitions"].as_array().unwrap() {
        let key = |s: &Value| {
            format!(
                "{} {} {} {} {}",
                s["page"], s["method"], s["status"], s["auth"], s["level"]
            )
        };
        *expected
            .entry((key(&t["source"]), key(&t["dest"])))
            .or_default() += t["p"].as_f64().unwrap();
    }
    let key = |i: usize| {
        let s = &model.states[i];
        format!(
            "{:?} {:?} {} {:?} {:?}",
            s.page,
            s.method,
            s.status,
            s.auth.name(),
            s.level.name()
        )
    };
    let mut sources_checked = 0;
    for from in model.ids() {
        let mut landed: HashMap<usize, u32> = HashMap::new();
        for step in 0..SWEEP {
            if let Some(dest) = model.next(from, f64::from(step) / f64::from(SWEEP)) {
                *landed.entry(dest.index()).or_default() += 1;
            }
        }
        for (dest, hits) in &landed {
            let p = expected[&(key(from.index()), key(*dest))];
            let share = f64::from(*hits) / f64::from(SWEEP);
            let close = (share - p).abs() < 2.0 / f64::from(SWEEP);
            assert!(
                close,
                "{} -> {}: {share} vs {p}",
                key(from.index()),
                key(*dest)
            );
        }
        sources_checked += usize::from(!landed.is_empty());
    }
    assert_eq!(sources_checked, 38, "the example has 38 source states");
}

#[test]
fn new_sessions_start_by_the_weights_of_the_users_auth_and_level() {
    let (_, model) = EventsimConfig::load(&shared("example-config.json")).unwrap();
    let mut weights: HashMap<String, f64> = HashMap::new();
    for entry in example()["new-session"].as_array().unwrap() {
        if entry["auth"] == "Logged In" && entry["level"] == "paid" {
            *weights
                .entry(entry["page"].as_str().unwrap().to_owned())
                .or_default() += entry["weight"].as_f64().unwrap();
        }
    }
    let total: f64 = weights.values().sum();
    let mut landed: HashMap<String, u32> = HashMap::new();
    for step in 0..SWEEP {
        let id = model
            .first(
                Auth::LoggedIn,
                Level::Paid,
                f64::from(step) / f64::from(SWEEP),
            )
            .unwrap();
        let state = model.state(id);
        assert_eq!((state.auth, state.level), (Auth::LoggedIn, Level::Paid));
        *landed.entry(state.page.clone()).or_default() += 1;
    }
    assert_eq!(landed.len(), weights.len());
    for (page, hits) in landed {
        let share = f64::from(hits) / f64::from(SWEEP);
        assert!(
            (share - weights[&page] / total).abs() < 2.0 / f64::from(SWEEP),
            "{page}"
        );
    }
}

fn problems(config: &Value) -> Vec<(String, String)> {
    match EventsimConfig::parse("bad.json", &config.to_string()) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| (p.path, p.message)).collect()
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn probabilities_above_one_name_the_transitions_and_the_state() {
    let mut config = example();
    config["transitions"][0]["p"] = json!(0.9);
    let found = problems(&config);
    assert_eq!(found.len(), 1, "{found:?}");
    let (path, message) = &found[0];
    assert!(path.starts_with("transitions[0], transitions[1]"), "{path}");
    assert!(
        message.contains("(About GET 200 Guest free)") && message.contains("above 1"),
        "{message}"
    );
}

#[test]
fn every_bad_value_is_listed_with_its_path() {
    let mut config = example();
    config["transitions"][3]["source"]["auth"] = json!("LoggedIn");
    config["levels"][1]["weight"] = json!(-2);
    config["damping"] = json!(1.5);
    config["new-user-level"] = json!("gold");
    config["transitions"][5]["p"] = json!(1.5);
    let paths: Vec<String> = problems(&config)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    for expected in [
        "damping",
        "new-user-level",
        "levels[1].weight",
        "transitions[3].source.auth",
        "transitions[5].p",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:?}"
        );
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_syntax_errors_with_paths() {
    let mut config = example();
    config
        .as_object_mut()
        .unwrap()
        .insert("session_gap".to_owned(), json!(60));
    let error = EventsimConfig::parse("bad.json", &config.to_string()).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `session_gap`"),
        "{error}"
    );

    let mut config = example();
    config["transitions"][2]["dest"]["status"] = json!("200");
    match EventsimConfig::parse("bad.json", &config.to_string()).unwrap_err() {
        ConfigError::Syntax { path, .. } => assert_eq!(path, "transitions[2].dest.status"),
        other => panic!("{other:?}"),
    }
    let error = EventsimConfig::parse("bad.json", "{\"alpha\": 1,").unwrap_err();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
}

#[test]
fn shared_song_catalogue_loads_gzipped() {
    let catalogue = Catalogue::load(&shared("listen_counts.txt.gz")).unwrap();
    assert_eq!(catalogue.len(), 10_000);
    assert!(
        catalogue
            .songs()
            .iter()
            .all(|s| s.duration > 0.0 && !s.artist.is_empty())
    );
    let total: u64 = catalogue.songs().iter().map(|s| s.count).sum();
    let top = catalogue.songs().iter().max_by_key(|s| s.count).unwrap();
    // The most played song's share of a uniform sweep is its share of all plays.
    let hits = (0..SWEEP)
        .filter(|i| catalogue.pick(f64::from(*i) / f64::from(SWEEP)) == top)
        .count();
    let share = top.count as f64 / total as f64;
    assert!(
        (hits as f64 / f64::from(SWEEP) - share).abs() < 2.0 / f64::from(SWEEP),
        "{hits} vs {share}"
    );
}
