//! The simulated world and its users: what one user does from session to session, as a
//! pure function of the world, the user's own random stream and the time. Events are
//! written into a [`Batch`] with the key that orders them.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use warehouse::raw::{
    Auth, AuthEvent, EventContext, EventKind, Level, ListenEvent, Location, PageViewEvent, Song,
    StatusChangeEvent, User as RawUser,
};

use crate::clock::{Activity, MINUTE_MS, SECOND_MS, YEAR_MS};
use crate::config::{EventsimConfig, SiteModel, StateId};
use crate::population::{self, Places};
use crate::random::Stream;
use crate::songs::Catalogue;

/// How much users differ in their pace: the spread of the logarithm of each user's
/// factor on `alpha` and `beta`, whose mean is 1. eventsim draws the factor as
/// `exp(N(0, 1)) / √e`, a log-normal of spread 1 and mean 1, and so do we: the spread
/// sets the volume, since a user's session rate goes with the inverse of the factor,
/// whose mean is `exp(σ²)` (e ≈ 2.72 here; a spread of 0.5 gave half eventsim's sessions).
pub const PACE_SIGMA: f64 = 1.0;
/// Initial users registered up to this long before the start.
const REGISTRATION_SPAN_MS: i64 = YEAR_MS;
/// Thinning gives up after this many rejected candidates and takes the next one, so that
/// a config that damps activity to almost nothing cannot stall the run.
const MAX_THINNING_ROUNDS: u32 = 10_000;

/// What a run simulates: the period, the population and its seed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub seed: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub users: u32,
    pub first_user_id: i64,
    /// Yearly growth of the population, compounding: 0.1 adds 10% a year.
    pub growth_rate: f64,
    /// Fraction of users who leave within a year.
    pub attrition_rate: f64,
}

/// What a page does besides being viewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// NextSong: a listen, and the next event waits for the song to end.
    Song,
    /// A login attempt: an auth event, successful when the next page is logged in.
    Login,
    /// Submit Upgrade or Submit Downgrade: a status change event.
    LevelChange,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Page {
    role: Role,
    /// 3xx answers are followed by the redirect one second later.
    redirect: bool,
    churns: bool,
    shows_user: bool,
}

/// Everything shared and read-only during a run.
#[derive(Debug)]
pub struct World {
    pub model: SiteModel,
    pub songs: Catalogue,
    pub places: Places,
    pub run: RunSpec,
    alpha_ms: f64,
    beta_ms: f64,
    session_gap_ms: i64,
    activity: Activity,
    pages: Vec<Page>,
    /// Per catalogue song, its duration in whole milliseconds.
    song_ms: Vec<i64>,
}

impl World {
    pub fn new(
        config: &EventsimConfig,
        model: SiteModel,
        songs: Catalogue,
        places: Places,
        run: RunSpec,
    ) -> Result<World, String> {
        if run.end_ms <= run.start_ms {
            return Err("the end time must be after the start time".to_owned());
        }
        if run.growth_rate > 0.0
            && model
                .first(model.new_user_auth, model.new_user_level, 0.0)
                .is_none()
        {
            return Err(format!(
                "growth adds users as {} {}, but the config's new-session has no page for them",
                model.new_user_auth.name(),
                model.new_user_level.name()
            ));
        }
        let pages = model
            .ids()
            .map(|id| {
                let state = model.state(id);
                let role = match state.page.as_str() {
                    "NextSong" => Role::Song,
                    "Login" => Role::Login,
                    "Submit Upgrade" | "Submit Downgrade" => Role::LevelChange,
                    _ => Role::Other,
                };
                Page {
                    role,
                    redirect: (300..400).contains(&state.status),
                    churns: Some(state.auth) == model.churned_state,
                    shows_user: model.shows_user_details(state.auth),
                }
            })
            .collect();
        let song_ms = songs
            .songs()
            .iter()
            .map(|s| libm::round(s.duration * 1000.0) as i64)
            .collect();
        Ok(World {
            alpha_ms: config.alpha * 1000.0,
            beta_ms: config.beta * 1000.0,
            session_gap_ms: config.session_gap * SECOND_MS,
            activity: Activity {
                damping: config.damping,
                weekend_damping: config.weekend_damping,
                weekend_offset_ms: config.weekend_damping_offset * MINUTE_MS,
                weekend_scale_ms: config.weekend_damping_scale * MINUTE_MS,
            },
            model,
            songs,
            places,
            run,
            pages,
            song_ms,
        })
    }

    pub fn session_gap_ms(&self) -> i64 {
        self.session_gap_ms
    }

    /// The first time from `earliest` on at which a user starts a session: candidates
    /// come at exponential gaps and are kept with the probability of the activity factor
    /// at the user's local time. The gaps' mean is `beta_ms` times the daily cycle's
    /// mean factor, so that the cycle moves sessions within the day without removing
    /// any, as eventsim's time warp does; days off remove sessions, as in eventsim.
    pub fn next_session_start(
        &self,
        rng: &mut Stream,
        place: u32,
        beta_ms: f64,
        earliest: i64,
    ) -> i64 {
        let zone = self.places.get(place).zone;
        let mean_gap_ms = beta_ms * self.activity.daily_mean();
        let mut t = earliest;
        for _ in 0..MAX_THINNING_ROUNDS {
            t = t.saturating_add(libm::ceil(rng.exponential(mean_gap_ms)) as i64);
            if rng.uniform() < self.activity.factor(zone.local(t)) {
                break;
            }
        }
        t
    }

    pub fn activity(&self) -> &Activity {
        &self.activity
    }
}

/// One simulated user. Small (no strings of its own), because a run holds every user
/// that has appeared; what a session needs is drawn from the user's stream.
#[derive(Clone, Debug)]
pub struct User {
    rng: Stream,
    idx: u32,
    alpha_ms: f64,
    beta_ms: f64,
    registration: i64,
    leaves_at: i64,
    place: u32,
    agent: u8,
    auth: Auth,
    level: Level,
    first_name: &'static str,
    last_name: &'static str,
    gender: &'static str,
    /// Events emitted so far: orders a user's events that share a millisecond.
    seq: u32,
    /// While waiting, the first page of the next session; in a session, the next page.
    next_state: Option<StateId>,
    session_id: i64,
    item_in_session: i64,
}

impl User {
    /// A user as the run finds them at its start, or as growth adds them at `joined`.
    fn new(world: &World, idx: u32, joined: Option<i64>) -> User {
        let run = &world.run;
        let mut rng = Stream::new(run.seed, u64::from(idx));
        let place = world.places.draw(&mut rng);
        let agent = population::draw_user_agent(&mut rng);
        let (first_name, last_name, gender) = population::draw_name(&mut rng);
        let alpha_ms = world.alpha_ms * rng.log_normal_factor(PACE_SIGMA);
        let beta_ms = world.beta_ms * rng.log_normal_factor(PACE_SIGMA);
        let model = &world.model;
        let (registration, auth, level) = match joined {
            Some(at) => (at, model.new_user_auth, model.new_user_level),
            None => {
                let before = rng.below(REGISTRATION_SPAN_MS as u64) as i64;
                let auth = draw_weighted(&mut rng, &model.auths);
                let level = draw_weighted(&mut rng, &model.levels);
                (run.start_ms - 1 - before, auth, level)
            }
        };
        let leaves_at = if run.attrition_rate >= 1.0 {
            // Everyone leaves within the year: spread evenly over it.
            registration.max(run.start_ms) + rng.below(YEAR_MS as u64) as i64
        } else if run.attrition_rate > 0.0 {
            let mean = YEAR_MS as f64 / -libm::log(1.0 - run.attrition_rate);
            registration.max(run.start_ms) + rng.exponential(mean) as i64
        } else {
            i64::MAX
        };
        User {
            rng,
            idx,
            alpha_ms,
            beta_ms,
            registration,
            leaves_at,
            place,
            agent,
            auth,
            level,
            first_name,
            last_name,
            gender,
            seq: 0,
            next_state: None,
            session_id: 0,
            item_in_session: 0,
        }
    }

    pub fn user_id(&self, world: &World) -> i64 {
        world.run.first_user_id + i64::from(self.idx)
    }

    /// Draws when and how the next session starts, from `earliest` on; `None` when the
    /// user has none left in the run (left, churned, or past its end).
    fn schedule(&mut self, world: &World, earliest: i64) -> Option<i64> {
        let t = world.next_session_start(&mut self.rng, self.place, self.beta_ms, earliest);
        if t >= self.leaves_at || t >= world.run.end_ms {
            return None;
        }
        let first = world
            .model
            .first(self.auth, self.level, self.rng.uniform())?;
        self.next_state = Some(first);
        Some(t)
    }
}

fn draw_weighted<T: Copy>(rng: &mut Stream, entries: &[(T, f64)]) -> T {
    let total: f64 = entries.iter().map(|(_, w)| w).sum();
    let mut target = rng.uniform() * total;
    for &(value, weight) in entries {
        if target < weight {
            return value;
        }
        target -= weight;
    }
    // Rounding: the last entry with weight.
    entries
        .iter()
        .rev()
        .find(|(_, w)| *w > 0.0)
        .map(|(v, _)| *v)
        .unwrap_or(entries[0].0)
}

/// One emitted event: where its JSON ends in [`Batch::bytes`], and what orders it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub ts: i64,
    pub idx: u32,
    pub seq: u32,
    pub kind: EventKind,
    /// The Kafka key: the user id, or the session id for events without user details.
    pub key: i64,
    pub end: u32,
}

impl Record {
    pub fn order(&self) -> (i64, u32, u32) {
        (self.ts, self.idx, self.seq)
    }
}

/// Events of one window from one shard, in order, as JSON without newlines.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub records: Vec<Record>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }

    pub fn json(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.records[i - 1].end as usize
        };
        &self.bytes[start..self.records[i].end as usize]
    }
}

/// A session about to start: when, for which user, and (once assigned) its id.
pub type Start = (i64, u32);

/// The users one worker simulates: those whose index leaves `shard` modulo `shards`.
#[derive(Debug)]
pub struct Shard<'w> {
    world: &'w World,
    shard: u32,
    shards: u32,
    users: Vec<User>,
    /// Users between sessions, by the start of their next one.
    waiting: BinaryHeap<Reverse<(i64, u32)>>,
    /// Users in a session, by the time of their next event.
    active: BinaryHeap<Reverse<(i64, u32)>>,
}

impl<'w> Shard<'w> {
    /// Creates this shard's share of the initial users and schedules their first sessions.
    pub fn new(world: &'w World, shard: u32, shards: u32) -> Shard<'w> {
        let mut this = Shard {
            world,
            shard,
            shards,
            users: Vec::new(),
            waiting: BinaryHeap::new(),
            active: BinaryHeap::new(),
        };
        let mut idx = shard;
        while idx < world.run.users {
            let mut user = User::new(world, idx, None);
            if let Some(t) = user.schedule(world, world.run.start_ms) {
                this.waiting.push(Reverse((t, idx)));
            }
            this.users.push(user);
            idx += shards;
        }
        this
    }

    fn user(&mut self, idx: u32) -> &mut User {
        &mut self.users[(idx / self.shards) as usize]
    }

    /// Takes the sessions that start before `until`, in order.
    pub fn starts_before(&mut self, until: i64) -> Vec<Start> {
        let mut starts = Vec::new();
        while let Some(&Reverse((t, idx))) = self.waiting.peek() {
            if t >= until {
                break;
            }
            self.waiting.pop();
            starts.push((t, idx));
        }
        starts
    }

    /// Runs every event before `until`: first opening the given sessions (with their
    /// assigned ids) and adding the users who joined, then stepping users in time order.
    pub fn run_until(
        &mut self,
        until: i64,
        starts: &[Start],
        session_ids: &[i64],
        joined: &[(u32, i64, i64)],
        out: &mut Batch,
    ) {
        for (&(t, idx), &id) in starts.iter().zip(session_ids) {
            let user = self.user(idx);
            user.session_id = id;
            user.item_in_session = 0;
            self.active.push(Reverse((t, idx)));
        }
        for &(idx, at, id) in joined {
            debug_assert_eq!(idx % self.shards, self.shard);
            debug_assert_eq!((idx / self.shards) as usize, self.users.len());
            let mut user = User::new(self.world, idx, Some(at));
            user.next_state = self
                .world
                .model
                .first(user.auth, user.level, user.rng.uniform());
            user.session_id = id;
            self.users.push(user);
            self.active.push(Reverse((at, idx)));
        }
        while let Some(&Reverse((t, idx))) = self.active.peek() {
            if t >= until {
                break;
            }
            self.active.pop();
            let world = self.world;
            let user = self.user(idx);
            match step(world, user, t, out) {
                Next::Event(at) => self.active.push(Reverse((at, idx))),
                Next::Session(at) => self.waiting.push(Reverse((at, idx))),
                Next::Done => {}
            }
        }
    }

    /// Users in a session right now.
    pub fn active_sessions(&self) -> usize {
        self.active.len()
    }
}

enum Next {
    Event(i64),
    Session(i64),
    Done,
}

/// Emits the user's event at `ts` and decides what follows it.
fn step(world: &World, user: &mut User, ts: i64, out: &mut Batch) -> Next {
    let Some(state_id) = user.next_state else {
        return Next::Done;
    };
    let state = world.model.state(state_id);
    let page = world.pages[state_id.index()];
    user.auth = state.auth;
    user.level = state.level;
    let song = (page.role == Role::Song).then(|| {
        let i = world.songs.pick_index(user.rng.uniform());
        (&world.songs.songs()[i], world.song_ms[i])
    });
    let next = world.model.next(state_id, user.rng.uniform());

    let place = world.places.get(user.place);
    let context = EventContext {
        ts,
        session_id: user.session_id,
        level: state.level,
        item_in_session: user.item_in_session,
        location: Location {
            city: Cow::Borrowed(&place.city),
            zip: Cow::Borrowed(&place.zip),
            state: Cow::Borrowed(&place.state),
            lon: place.lon,
            lat: place.lat,
        },
        user_agent: Cow::Borrowed(population::user_agent(user.agent)),
    };
    let raw_user = RawUser {
        user_id: user.user_id(world),
        last_name: Cow::Borrowed(user.last_name),
        first_name: Cow::Borrowed(user.first_name),
        gender: Cow::Borrowed(user.gender),
        registration: user.registration,
    };
    let shown = page.shows_user.then(|| raw_user.clone());
    let raw_song = song.map(|(s, _)| Song {
        artist: Cow::Borrowed(s.artist.as_str()),
        song: Cow::Borrowed(s.title.as_str()),
        duration: s.duration,
    });
    // Kafka keys: the user where the event names them, else the session.
    let key = if page.shows_user {
        raw_user.user_id
    } else {
        user.session_id
    };
    let mut emit = |kind: EventKind, key: i64, write: &dyn Fn(&mut Vec<u8>)| {
        write(&mut out.bytes);
        out.records.push(Record {
            ts,
            idx: user.idx,
            seq: user.seq,
            kind,
            key,
            end: out.bytes.len() as u32,
        });
        user.seq = user.seq.wrapping_add(1);
    };
    emit(EventKind::PageView, key, &|buf| {
        PageViewEvent {
            page: Cow::Borrowed(&state.page),
            auth: state.auth,
            method: Cow::Borrowed(&state.method),
            status: state.status,
            context: context.clone(),
            user: shown.clone(),
            song: raw_song.clone(),
        }
        .write_json(buf)
    });
    match page.role {
        Role::Song => {
            if let Some(song) = &raw_song {
                emit(EventKind::Listen, raw_user.user_id, &|buf| {
                    ListenEvent {
                        song: song.clone(),
                        auth: state.auth,
                        context: context.clone(),
                        user: raw_user.clone(),
                    }
                    .write_json(buf)
                });
            }
        }
        Role::LevelChange => emit(EventKind::StatusChange, raw_user.user_id, &|buf| {
            StatusChangeEvent {
                auth: state.auth,
                context: context.clone(),
                user: raw_user.clone(),
            }
            .write_json(buf)
        }),
        Role::Login => {
            let success = next.is_some_and(|n| world.model.state(n).auth == Auth::LoggedIn);
            // A successful login identifies the user, whatever the page before showed.
            let user_shown = if success {
                Some(raw_user.clone())
            } else {
                shown.clone()
            };
            let auth_key = if user_shown.is_some() {
                raw_user.user_id
            } else {
                key
            };
            emit(EventKind::Auth, auth_key, &|buf| {
                AuthEvent {
                    context: context.clone(),
                    user: user_shown.clone(),
                    success,
                }
                .write_json(buf)
            });
        }
        Role::Other => {}
    }
    user.item_in_session += 1;

    let listening_ms = song.map_or(0, |(_, ms)| ms);
    match next {
        Some(next) => {
            let delay = if page.role == Role::Song {
                listening_ms
            } else if page.redirect {
                SECOND_MS
            } else {
                libm::ceil(user.rng.exponential(user.alpha_ms)) as i64
            };
            user.next_state = Some(next);
            Next::Event(ts + delay.max(1))
        }
        None => {
            user.next_state = None;
            if page.churns {
                return Next::Done;
            }
            let earliest = ts + listening_ms + world.session_gap_ms;
            match user.schedule(world, earliest) {
                Some(t) => Next::Session(t),
                None => Next::Done,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY_MS;

    fn world(attrition_rate: f64) -> World {
        let config = crate::defaults::config();
        let model = config.compile().unwrap();
        let run = RunSpec {
            seed: 2,
            start_ms: 0,
            end_ms: DAY_MS,
            users: 1,
            first_user_id: 1,
            growth_rate: 0.0,
            attrition_rate,
        };
        World::new(&config, model, Catalogue::builtin(), Places::us(), run).unwrap()
    }

    #[test]
    fn attrition_takes_the_stated_fraction_of_users_within_a_year() {
        for rate in [0.1, 0.5, 1.0] {
            let world = world(rate);
            let n = 20_000;
            let gone = (0..n)
                .filter(|&idx| User::new(&world, idx, None).leaves_at < YEAR_MS)
                .count() as f64;
            let share = gone / f64::from(n);
            assert!((share - rate).abs() < 0.015, "rate {rate}: {share}");
        }
        let never = User::new(&world(0.0), 0, None);
        assert_eq!(never.leaves_at, i64::MAX);
    }
}
