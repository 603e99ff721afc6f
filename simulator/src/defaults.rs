//! The built-in site model, used when no `--config` is given: the pages, auth states and
//! levels of eventsim's example site, with transition probabilities of our own.
//! `simulator --print-default-config` writes it as an eventsim config to start from.

use crate::config::{
    AuthWeight, EventsimConfig, LevelWeight, NewSession, ShowUserDetails, StateSpec, Transition,
};

const LOGGED_IN: &str = "Logged In";
const LOGGED_OUT: &str = "Logged Out";
const GUEST: &str = "Guest";
const CANCELLED: &str = "Cancelled";

/// A page as eventsim names it: the method and status follow from the page.
fn state(page: &str, auth: &str, level: &str) -> StateSpec {
    let (method, status) = match page {
        "NextSong" => ("PUT", 200),
        "Error" => ("GET", 404),
        "Login"
        | "Logout"
        | "Save Settings"
        | "Submit Registration"
        | "Submit Upgrade"
        | "Submit Downgrade"
        | "Cancel" => ("PUT", 307),
        _ => ("GET", 200),
    };
    StateSpec {
        page: page.to_owned(),
        method: method.to_owned(),
        status,
        auth: auth.to_owned(),
        level: level.to_owned(),
    }
}

struct Builder {
    transitions: Vec<Transition>,
    new_session: Vec<NewSession>,
}

impl Builder {
    /// Transitions out of `page` for users in `auth` and `level`; each destination may
    /// move the user to another auth or level. What the probabilities leave ends the
    /// session.
    fn from(&mut self, page: &str, auth: &str, level: &str, to: &[(&str, &str, &str, f64)]) {
        for &(dest, dest_auth, dest_level, p) in to {
            self.transitions.push(Transition {
                source: state(page, auth, level),
                dest: state(dest, dest_auth, dest_level),
                p,
            });
        }
    }

    fn starts(&mut self, auth: &str, level: &str, pages: &[(&str, f64)]) {
        for &(page, weight) in pages {
            let spec = state(page, auth, level);
            self.new_session.push(NewSession {
                page: spec.page,
                method: spec.method,
                status: spec.status,
                auth: spec.auth,
                level: spec.level,
                weight,
            });
        }
    }
}

pub fn config() -> EventsimConfig {
    let mut b = Builder {
        transitions: Vec::new(),
        new_session: Vec::new(),
    };
    for level in ["free", "paid"] {
        let (li, lo) = (LOGGED_IN, LOGGED_OUT);
        // Listening is what a session is mostly made of.
        let mut home = vec![
            ("NextSong", li, level, 0.62),
            ("Home", li, level, 0.04),
            ("Settings", li, level, 0.02),
            ("Help", li, level, 0.015),
            ("About", li, level, 0.005),
            ("Logout", li, level, 0.02),
            ("Error", li, level, 0.002),
        ];
        let mut song = vec![
            ("NextSong", li, level, 0.86),
            ("Home", li, level, 0.05),
            ("Settings", li, level, 0.004),
            ("Help", li, level, 0.003),
            ("Logout", li, level, 0.006),
            ("Error", li, level, 0.001),
        ];
        if level == "free" {
            home.push(("Upgrade", li, level, 0.03));
            song.push(("Upgrade", li, level, 0.006));
            b.from(
                "Upgrade",
                li,
                level,
                &[
                    ("Submit Upgrade", li, level, 0.35),
                    ("Home", li, level, 0.35),
                    ("NextSong", li, level, 0.25),
                ],
            );
            b.from("Submit Upgrade", li, level, &[("Home", li, "paid", 1.0)]);
        } else {
            home.push(("Downgrade", li, level, 0.01));
            song.push(("Downgrade", li, level, 0.002));
            b.from(
                "Downgrade",
                li,
                level,
                &[
                    ("Submit Downgrade", li, level, 0.25),
                    ("Cancel", li, level, 0.05),
                    ("Home", li, level, 0.4),
                    ("NextSong", li, level, 0.25),
                ],
            );
            b.from("Submit Downgrade", li, level, &[("Home", li, "free", 1.0)]);
        }
        b.from("Home", li, level, &home);
        b.from("NextSong", li, level, &song);
        b.from(
            "Settings",
            li,
            level,
            &[
                ("Save Settings", li, level, 0.35),
                ("Cancel", li, level, 0.02),
                ("Home", li, level, 0.35),
                ("NextSong", li, level, 0.2),
            ],
        );
        b.from(
            "Save Settings",
            li,
            level,
            &[("Home", li, level, 0.6), ("NextSong", li, level, 0.35)],
        );
        for page in ["Help", "About", "Error"] {
            b.from(
                page,
                li,
                level,
                &[
                    ("Home", li, level, 0.55),
                    ("NextSong", li, level, 0.3),
                    ("Help", li, level, 0.05),
                ],
            );
        }
        b.from(
            "Cancel",
            li,
            level,
            &[
                ("Cancellation Confirmation", CANCELLED, level, 0.99),
                ("Error", li, level, 0.01),
            ],
        );
        b.from("Logout", li, level, &[("Home", lo, level, 1.0)]);

        b.from(
            "Home",
            lo,
            level,
            &[
                ("Login", lo, level, 0.6),
                ("Home", lo, level, 0.08),
                ("About", lo, level, 0.04),
                ("Help", lo, level, 0.04),
                ("Error", lo, level, 0.002),
            ],
        );
        b.from(
            "Login",
            lo,
            level,
            &[
                ("Home", li, level, 0.92),
                ("Home", lo, level, 0.07),
                ("Error", lo, level, 0.01),
            ],
        );
        for page in ["About", "Help", "Error"] {
            b.from(
                page,
                lo,
                level,
                &[("Home", lo, level, 0.6), ("Login", lo, level, 0.25)],
            );
        }
        b.starts(
            li,
            level,
            &[
                ("NextSong", 1600.0),
                ("Home", 1000.0),
                ("Help", 10.0),
                ("About", 5.0),
                ("Error", 1.0),
            ],
        );
        b.starts(
            lo,
            level,
            &[
                ("Home", 1000.0),
                ("Login", 500.0),
                ("About", 10.0),
                ("Help", 10.0),
                ("Error", 1.0),
            ],
        );
    }
    // Guests are new users who have not registered yet; registering makes them free users.
    let (g, free) = (GUEST, "free");
    b.from(
        "Home",
        g,
        free,
        &[
            ("Register", g, free, 0.25),
            ("Home", g, free, 0.2),
            ("About", g, free, 0.1),
            ("Help", g, free, 0.1),
            ("Error", g, free, 0.005),
        ],
    );
    b.from(
        "Register",
        g,
        free,
        &[
            ("Submit Registration", LOGGED_IN, free, 0.65),
            ("Home", g, free, 0.2),
            ("Register", g, free, 0.05),
        ],
    );
    b.from(
        "Submit Registration",
        LOGGED_IN,
        free,
        &[("Home", LOGGED_IN, free, 1.0)],
    );
    for page in ["About", "Help", "Error"] {
        b.from(
            page,
            g,
            free,
            &[("Home", g, free, 0.5), ("Register", g, free, 0.15)],
        );
    }
    b.starts(
        g,
        free,
        &[
            ("Home", 100.0),
            ("Register", 30.0),
            ("About", 20.0),
            ("Help", 10.0),
            ("Error", 5.0),
        ],
    );

    let show = |auth: &str, show| ShowUserDetails {
        auth: auth.to_owned(),
        show,
    };
    EventsimConfig {
        seed: Some(1),
        alpha: 90.0,
        beta: 604_800.0,
        damping: 0.09375,
        weekend_damping: 0.5,
        weekend_damping_offset: 180,
        weekend_damping_scale: 360,
        session_gap: 1800,
        churned_state: Some(CANCELLED.to_owned()),
        show_user_details: vec![
            show(GUEST, false),
            show(LOGGED_IN, true),
            show(LOGGED_OUT, false),
            show(CANCELLED, true),
        ],
        levels: vec![
            LevelWeight {
                level: "free".to_owned(),
                weight: 10.0,
            },
            LevelWeight {
                level: "paid".to_owned(),
                weight: 2.0,
            },
        ],
        auths: vec![
            AuthWeight {
                auth: LOGGED_IN.to_owned(),
                weight: 10.0,
            },
            AuthWeight {
                auth: LOGGED_OUT.to_owned(),
                weight: 1.0,
            },
        ],
        new_session: b.new_session,
        new_user_auth: GUEST.to_owned(),
        new_user_level: "free".to_owned(),
        upgrades: Vec::new(),
        downgrades: Vec::new(),
        transitions: b.transitions,
        start_date: None,
        end_date: None,
        n_users: None,
        first_user_id: None,
        growth_rate: None,
        attrition_rate: None,
        tag: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_config_compiles_and_round_trips_through_json() {
        let config = config();
        let model = config.compile().unwrap();
        assert!(model.states.len() > 30);
        let json = serde_json::to_string_pretty(&config).unwrap();
        let (_, again) = EventsimConfig::parse("(printed)", &json).unwrap();
        assert_eq!(again.states, model.states);
    }
}
