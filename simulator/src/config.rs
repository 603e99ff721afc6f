//! eventsim's JSON simulation config: read strictly, checked with errors that name the
//! JSON path of each problem, and compiled into a model of page transitions.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use warehouse::raw::{Auth, Level};
use warehouse::{Classify, ErrorClass};

/// Probabilities of one state may exceed 1 by this much, for rounding in hand-written
/// configs.
const PROBABILITY_SLACK: f64 = 1e-9;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// Not the JSON of an eventsim config: a syntax error, a wrong type, an unknown key.
    #[error("config {file}: {path}: {message}")]
    Syntax {
        file: String,
        path: String,
        message: String,
    },
    /// Well-formed, but the values do not make a simulation; every problem is listed.
    #[error("config {file} has {} problem(s):{}", problems.len(), ProblemList(problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

impl Classify for ConfigError {
    fn class(&self) -> ErrorClass {
        match self {
            ConfigError::Read { .. } => ErrorClass::Retryable,
            ConfigError::Syntax { .. } | ConfigError::Invalid { .. } => ErrorClass::BadData,
        }
    }
}

/// One problem of a config, at a JSON path such as `transitions[17].p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {}: {}", problem.path, problem.message)?;
        }
        Ok(())
    }
}

/// eventsim's config file, key for key. Unknown keys are errors, so a misspelt key
/// cannot silently fall back to a default.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventsimConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Mean seconds between events within a session.
    pub alpha: f64,
    /// Mean seconds between sessions.
    pub beta: f64,
    /// Depth of the daily cycle: the night-time dip in activity, 0 for none.
    pub damping: f64,
    /// Fraction by which activity drops at weekends.
    pub weekend_damping: f64,
    /// Minutes before the weekend's midnights at which the ramp into (or out of) the
    /// weekend damping starts.
    pub weekend_damping_offset: i64,
    /// Minutes the ramp into and out of the weekend takes.
    pub weekend_damping_scale: i64,
    /// Seconds of inactivity that end a session.
    pub session_gap: i64,
    /// The auth state in which a user has left for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churned_state: Option<String>,
    pub show_user_details: Vec<ShowUserDetails>,
    pub levels: Vec<LevelWeight>,
    pub auths: Vec<AuthWeight>,
    pub new_session: Vec<NewSession>,
    pub new_user_auth: String,
    pub new_user_level: String,
    #[serde(default)]
    pub upgrades: Vec<Transition>,
    #[serde(default)]
    pub downgrades: Vec<Transition>,
    pub transitions: Vec<Transition>,
    // Run options eventsim also reads from the file; command-line flags override them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_users: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attrition_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShowUserDetails {
    pub auth: String,
    pub show: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LevelWeight {
    pub level: String,
    pub weight: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthWeight {
    pub auth: String,
    pub weight: f64,
}

/// A page a session may start on, for users of the given auth and level.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub page: String,
    pub method: String,
    pub status: u16,
    pub auth: String,
    pub level: String,
    pub weight: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub source: StateSpec,
    pub dest: StateSpec,
    pub p: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    pub page: String,
    pub method: String,
    pub status: u16,
    pub auth: String,
    pub level: String,
}

impl EventsimConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<(EventsimConfig, SiteModel), ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        EventsimConfig::parse(&file, &text)
    }

    /// Parses and checks a config; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<(EventsimConfig, SiteModel), ConfigError> {
        let mut json = serde_json::Deserializer::from_str(text);
        let config: EventsimConfig =
            serde_path_to_error::deserialize(&mut json).map_err(|e| ConfigError::Syntax {
                file: file.to_owned(),
                path: json_path(e.path()),
                message: e.inner().to_string(),
            })?;
        let model = config.compile().map_err(|problems| ConfigError::Invalid {
            file: file.to_owned(),
            problems,
        })?;
        Ok((config, model))
    }

    /// Checks every value and builds the transition model, listing all problems found.
    pub fn compile(&self) -> Result<SiteModel, Vec<Problem>> {
        let mut problems = Problems::default();
        for (path, value) in [("alpha", self.alpha), ("beta", self.beta)] {
            problems.check(
                value.is_finite() && value > 0.0,
                path,
                "must be a positive number of seconds",
            );
        }
        problems.check(
            (0.0..1.0).contains(&self.damping),
            "damping",
            "must be at least 0 and below 1",
        );
        problems.check(
            (0.0..=1.0).contains(&self.weekend_damping),
            "weekend-damping",
            "must be from 0 to 1",
        );
        // Ramps longer than a day, or starting over a day early, would overlap the next
        // day off's; a day has 1440 minutes.
        problems.check(
            (0..=1440).contains(&self.weekend_damping_offset),
            "weekend-damping-offset",
            "must be from 0 to 1440 minutes",
        );
        problems.check(
            (1..=1440).contains(&self.weekend_damping_scale),
            "weekend-damping-scale",
            "must be from 1 to 1440 minutes",
        );
        problems.check(
            self.session_gap > 0,
            "session-gap",
            "must be a positive number of seconds",
        );
        if let Some(rate) = self.growth_rate {
            problems.check(
                rate.is_finite() && rate >= 0.0,
                "growth-rate",
                "must not be negative",
            );
        }
        if let Some(rate) = self.attrition_rate {
            problems.check(
                (0.0..=1.0).contains(&rate),
                "attrition-rate",
                "must be from 0 to 1",
            );
        }

        let churned_state = self
            .churned_state
            .as_deref()
            .and_then(|name| problems.auth("churned-state", name));
        let new_user_auth = problems.auth("new-user-auth", &self.new_user_auth);
        let new_user_level = problems.level("new-user-level", &self.new_user_level);

        let mut show_user_details = HashMap::new();
        for (i, entry) in self.show_user_details.iter().enumerate() {
            if let Some(auth) = problems.auth(&format!("show-user-details[{i}].auth"), &entry.auth)
            {
                show_user_details.insert(auth, entry.show);
            }
        }
        let levels = problems.weighted(
            "levels",
            "level",
            self.levels.iter().map(|e| (e.level.as_str(), e.weight)),
            Problems::level,
        );
        let auths = problems.weighted(
            "auths",
            "auth",
            self.auths.iter().map(|e| (e.auth.as_str(), e.weight)),
            Problems::auth,
        );

        let mut states = StateTable::default();
        let mut new_session: HashMap<(Auth, Level), Vec<(StateId, f64)>> = HashMap::new();
        for (i, entry) in self.new_session.iter().enumerate() {
            let spec = StateSpec {
                page: entry.page.clone(),
                method: entry.method.clone(),
                status: entry.status,
                auth: entry.auth.clone(),
                level: entry.level.clone(),
            };
            let path = format!("new-session[{i}]");
            let state = states.intern(&mut problems, &path, &spec);
            let weight = problems.weight(&format!("{path}.weight"), entry.weight);
            if let (Some(state), Some(weight)) = (state, weight) {
                let s = &states.states[state.index()];
                new_session
                    .entry((s.auth, s.level))
                    .or_default()
                    .push((state, weight));
            }
        }
        problems.check(
            new_session.values().flatten().any(|(_, w)| *w > 0.0),
            "new-session",
            "needs a page with a positive weight",
        );

        // Upgrades and downgrades are transitions too; eventsim kept them apart only
        // to pace level changes, which the transition probabilities already do.
        let lists = [
            ("transitions", &self.transitions),
            ("upgrades", &self.upgrades),
            ("downgrades", &self.downgrades),
        ];
        let mut outgoing: HashMap<StateId, Vec<(StateId, f64, String)>> = HashMap::new();
        for (list, transitions) in lists {
            for (i, t) in transitions.iter().enumerate() {
                let path = format!("{list}[{i}]");
                let source = states.intern(&mut problems, &format!("{path}.source"), &t.source);
                let dest = states.intern(&mut problems, &format!("{path}.dest"), &t.dest);
                let p_ok = t.p.is_finite() && (0.0..=1.0).contains(&t.p);
                problems.check(
                    p_ok,
                    &format!("{path}.p"),
                    "must be a probability from 0 to 1",
                );
                if let (Some(source), Some(dest), true) = (source, dest, p_ok) {
                    outgoing.entry(source).or_default().push((dest, t.p, path));
                }
            }
        }
        let mut next = vec![Vec::new(); states.states.len()];
        let mut sources: Vec<_> = outgoing.into_iter().collect();
        sources.sort_by_key(|(source, _)| *source);
        for (source, edges) in sources {
            let total: f64 = edges.iter().map(|(_, p, _)| p).sum();
            if total > 1.0 + PROBABILITY_SLACK {
                let paths: Vec<&str> = edges.iter().map(|(_, _, path)| path.as_str()).collect();
                problems.push(
                    &paths.join(", "),
                    format!(
                        "probabilities out of state {} sum to {total}, above 1",
                        states.states[source.index()]
                    ),
                );
                continue;
            }
            next[source.index()] = cumulative(edges.into_iter().map(|(dest, p, _)| (dest, p)));
        }

        if !problems.0.is_empty() {
            return Err(problems.0);
        }
        Ok(SiteModel {
            states: states.states,
            next,
            new_session: new_session
                .into_iter()
                .map(|(pair, entries)| (pair, cumulative(entries)))
                .collect(),
            show_user_details,
            levels,
            auths,
            churned_state,
            // Checked above: a problem would have returned early.
            new_user_auth: new_user_auth.unwrap_or(Auth::Guest),
            new_user_level: new_user_level.unwrap_or(Level::Free),
        })
    }
}

/// A dense index into [`SiteModel::states`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(u32);

impl StateId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One state of a session: the page requested and the user's state while on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub page: String,
    pub method: String,
    pub status: u16,
    pub auth: Auth,
    pub level: Level,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({} {} {} {} {})",
            self.page,
            self.method,
            self.status,
            self.auth.name(),
            self.level.name()
        )
    }
}

/// A checked config as a Markov chain: sampling needs a uniform number and no lookups.
#[derive(Clone, Debug)]
pub struct SiteModel {
    pub states: Vec<State>,
    /// Per state, the cumulative probability and destination of each transition.
    next: Vec<Vec<(f64, StateId)>>,
    /// Per auth and level, the cumulative weight and state of each first page.
    new_session: HashMap<(Auth, Level), Vec<(f64, StateId)>>,
    pub show_user_details: HashMap<Auth, bool>,
    pub levels: Vec<(Level, f64)>,
    pub auths: Vec<(Auth, f64)>,
    pub churned_state: Option<Auth>,
    pub new_user_auth: Auth,
    pub new_user_level: Level,
}

impl SiteModel {
    pub fn state(&self, id: StateId) -> &State {
        &self.states[id.index()]
    }

    /// Every state's id, in the order of [`SiteModel::states`].
    pub fn ids(&self) -> impl Iterator<Item = StateId> + use<> {
        (0..self.states.len() as u32).map(StateId)
    }

    /// The state after `from`, given `u` drawn uniformly from [0, 1); `None` ends the
    /// session, which happens with whatever probability the transitions leave.
    pub fn next(&self, from: StateId, u: f64) -> Option<StateId> {
        draw(&self.next[from.index()], u)
    }

    /// The first state of a new session of a user in `auth` and `level`, weighted among
    /// the `new-session` entries for that pair; `None` when the config has none.
    pub fn first(&self, auth: Auth, level: Level, u: f64) -> Option<StateId> {
        let table = self.new_session.get(&(auth, level))?;
        let &(total, last) = table.last()?;
        // Rounding can carry `u * total` up to the total itself: that is the last page.
        draw(table, u * total).or(Some(last))
    }

    /// Whether events of users in this auth state carry their user details.
    pub fn shows_user_details(&self, auth: Auth) -> bool {
        self.show_user_details
            .get(&auth)
            .copied()
            .unwrap_or(auth == Auth::LoggedIn)
    }
}

/// Running totals of the weights, dropping zero weights, so that one binary search
/// draws an entry.
fn cumulative(entries: impl IntoIterator<Item = (StateId, f64)>) -> Vec<(f64, StateId)> {
    let mut total = 0.0;
    entries
        .into_iter()
        .filter(|(_, weight)| *weight > 0.0)
        .map(|(id, weight)| {
            total += weight;
            (total, id)
        })
        .collect()
}

/// The entry whose span of running totals holds `target`; `None` past the last one.
fn draw(table: &[(f64, StateId)], target: f64) -> Option<StateId> {
    let i = table.partition_point(|(total, _)| *total <= target);
    table.get(i).map(|(_, id)| *id)
}

#[derive(Default)]
struct StateTable {
    states: Vec<State>,
    ids: HashMap<State, StateId>,
}

impl StateTable {
    fn intern(&mut self, problems: &mut Problems, path: &str, spec: &StateSpec) -> Option<StateId> {
        let auth = problems.auth(&format!("{path}.auth"), &spec.auth);
        let level = problems.level(&format!("{path}.level"), &spec.level);
        problems.check(
            !spec.page.is_empty(),
            &format!("{path}.page"),
            "must not be empty",
        );
        problems.check(
            (100..=599).contains(&spec.status),
            &format!("{path}.status"),
            "must be an HTTP status from 100 to 599",
        );
        let state = State {
            page: spec.page.clone(),
            method: spec.method.clone(),
            status: spec.status,
            auth: auth?,
            level: level?,
        };
        let next = StateId(self.states.len() as u32);
        let id = *self.ids.entry(state.clone()).or_insert(next);
        if id == next {
            self.states.push(state);
        }
        Some(id)
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: &str, message: String) {
        self.0.push(Problem {
            path: path.to_owned(),
            message,
        });
    }

    fn check(&mut self, ok: bool, path: &str, message: &str) {
        if !ok {
            self.push(path, message.to_owned());
        }
    }

    fn auth(&mut self, path: &str, name: &str) -> Option<Auth> {
        let auth = Auth::from_name(name);
        if auth.is_none() {
            let names: Vec<_> = Auth::ALL
                .iter()
                .map(|a| format!("{:?}", a.name()))
                .collect();
            self.push(
                path,
                format!(
                    "unknown auth {name:?}; expected one of {}",
                    names.join(", ")
                ),
            );
        }
        auth
    }

    fn level(&mut self, path: &str, name: &str) -> Option<Level> {
        let level = Level::from_name(name);
        if level.is_none() {
            self.push(
                path,
                format!("unknown level {name:?}; expected \"free\" or \"paid\""),
            );
        }
        level
    }

    /// A list of `{"<key>": name, "weight": w}` entries, of which some weight is positive.
    fn weighted<'a, T>(
        &mut self,
        list: &str,
        key: &str,
        entries: impl Iterator<Item = (&'a str, f64)>,
        parse: fn(&mut Problems, &str, &str) -> Option<T>,
    ) -> Vec<(T, f64)> {
        let parsed: Vec<(T, f64)> = entries
            .enumerate()
            .filter_map(|(i, (name, weight))| {
                let value = parse(self, &format!("{list}[{i}].{key}"), name);
                let weight = self.weight(&format!("{list}[{i}].weight"), weight);
                Some((value?, weight?))
            })
            .collect();
        self.check(
            parsed.iter().any(|(_, w)| *w > 0.0),
            list,
            "needs a positive weight",
        );
        parsed
    }

    fn weight(&mut self, path: &str, weight: f64) -> Option<f64> {
        let ok = weight.is_finite() && weight >= 0.0;
        self.check(ok, path, "must be a weight of 0 or more");
        ok.then_some(weight)
    }
}

/// serde_path_to_error's path in the notation of the problems: `a.b[3].c`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        "(top level)".to_owned()
    } else {
        text
    }
}
