//! The simulator's settings, layered: built-in defaults, then the eventsim config file's
//! run options, then `SIMULATOR_*` environment variables, then command-line flags.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use lexopt::ValueExt as _;
use simulator::clock::{DAY_MS, parse_date_time};
use simulator::config::EventsimConfig;
use warehouse::raw::EventKind;

pub const USAGE: &str = "\
simulator: eventsim-compatible events of a music-streaming service

USAGE: simulator [OPTIONS] (--output-dir DIR | --stdout | --kafka-brokers HOSTS | DIR)

Simulation (flags override the config file's values):
  -c, --config FILE           eventsim JSON config (default: the built-in site model)
  -s, --start-time TIME       first instant, ISO local date-time in UTC
                              (default 2026-01-05T00:00:00; now with --continuous)
  -e, --end-time TIME         end, exclusive (default start + 7 days; none with --continuous)
      --from N                without -s, start N days before now (eventsim's --from)
      --to N                  without -e, end N days before now (eventsim's --to)
  -n, --nusers N              initial users (default 1000)
  -g, --growth-rate R         yearly growth of the user base, e.g. 0.2 (default 0)
  -a, --attrition-rate R      fraction of users who leave within a year (default 0)
  -u, --userid ID             first user id (default 1)
  -r, --randomseed SEED       seed (default: the config's seed, else 0)
      --songs FILE            song catalogue, eventsim's listen_counts.txt(.gz) format
                              (default: a built-in catalogue of 12,000 songs)
      --continuous            real time: events are released when their time comes
                              (--nocontinuous: a backfill, the default)
      --speed FACTOR          with --continuous, simulated seconds per second (default 1)
      --threads N             worker threads (default: all cores); output is the same
                              for every N

Output (one of):
      --output-dir DIR        DIR/<topic>.jsonl for the four topics; a trailing DIR
                              argument, as eventsim takes it, means the same
      --gzip                  with --output-dir, write <topic>.jsonl.gz
      --stdout                every event as a JSON line on stdout
  -k, --kafka-brokers HOSTS   Kafka bootstrap servers (alias --kafkaBrokerList)

Kafka:
      --topic KIND=NAME       rename a topic, e.g. listen_events=listens (repeatable)
      --partitions N          partitions of topics created when missing (default 6)
      --replication-factor N  their replication factor (default: the broker's)
      --compression C         none, gzip, snappy or lz4 (default lz4)
  -X, --kafka-setting K=V     any librdkafka setting, e.g. security.protocol=SASL_SSL
      --tag TAG               sent as a `tag` header with every message

Other:
      --print-default-config  print the built-in config as eventsim JSON and exit
  -q, --quiet                 no progress output (eventsim's --noverbose is the same;
                              --verbose is the default progress output)
  -h, --help                  this text

Every long flag can also be set as SIMULATOR_<FLAG>, e.g. SIMULATOR_KAFKA_BROKERS=host:9092
or SIMULATOR_CONTINUOUS=1; flags win over the environment. eventsim's --generate-counts,
--generate-similars and --useAvro are not implemented and are refused; their --no forms
are accepted.
";

/// The default backfill period starts here: fixed, so that a run without dates is
/// reproducible on any day.
const DEFAULT_START: &str = "2026-01-05T00:00:00";
const DEFAULT_DAYS: i64 = 7;
const DEFAULT_USERS: u64 = 1000;

/// Flags that take a value, as they are spelt in the environment (after `SIMULATOR_`).
const VALUE_FLAGS: [&str; 21] = [
    "config",
    "start-time",
    "end-time",
    "from",
    "to",
    "nusers",
    "growth-rate",
    "attrition-rate",
    "userid",
    "randomseed",
    "songs",
    "speed",
    "threads",
    "output-dir",
    "kafka-brokers",
    "topic",
    "partitions",
    "replication-factor",
    "compression",
    "kafka-setting",
    "tag",
];
const SWITCH_FLAGS: [&str; 4] = ["continuous", "gzip", "stdout", "quiet"];

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Dir { path: PathBuf, gzip: bool },
    Stdout,
    Kafka { brokers: String },
}

/// Everything the command line can say, before the config file fills the gaps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub start: Option<String>,
    pub end: Option<String>,
    /// eventsim's `--from`/`--to`: days before now, where no start or end time is given.
    pub from_days: Option<u32>,
    pub to_days: Option<u32>,
    pub users: Option<u64>,
    pub growth_rate: Option<f64>,
    pub attrition_rate: Option<f64>,
    pub first_user_id: Option<i64>,
    pub seed: Option<u64>,
    pub songs: Option<PathBuf>,
    pub continuous: bool,
    pub speed: Option<f64>,
    pub threads: Option<usize>,
    pub output_dir: Option<PathBuf>,
    pub gzip: bool,
    pub stdout: bool,
    pub kafka_brokers: Option<String>,
    pub topics: Vec<(EventKind, String)>,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    pub compression: Option<String>,
    pub kafka_settings: Vec<(String, String)>,
    pub tag: Option<String>,
    pub quiet: bool,
    pub print_default_config: bool,
    pub help: bool,
}

/// Environment variables as flags, placed before the real ones so that flags win.
pub fn env_args(vars: impl Iterator<Item = (String, String)>) -> Result<Vec<OsString>> {
    let mut args = Vec::new();
    for (name, value) in vars {
        let Some(flag) = name.strip_prefix("SIMULATOR_") else {
            continue;
        };
        let flag = flag.to_ascii_lowercase().replace('_', "-");
        if VALUE_FLAGS.contains(&flag.as_str()) {
            args.push(format!("--{flag}").into());
            args.push(value.into());
        } else if SWITCH_FLAGS.contains(&flag.as_str()) {
            match value.as_str() {
                "1" | "true" | "yes" => args.push(format!("--{flag}").into()),
                "0" | "false" | "no" | "" => {}
                _ => bail!("{name}={value}: expected 1 or 0"),
            }
        } else {
            bail!("unknown environment variable {name}: no flag --{flag}");
        }
    }
    Ok(args)
}

pub fn parse_flags(args: impl IntoIterator<Item = OsString>) -> Result<Flags> {
    use lexopt::Arg::{Long, Short, Value};
    let mut parser = lexopt::Parser::from_args(args);
    let mut f = Flags::default();
    while let Some(arg) = parser.next()? {
        let flag = match &arg {
            Long(name) => format!("--{name}"),
            Short(c) => format!("-{c}"),
            // eventsim's trailing output directory.
            Value(v) if f.output_dir.is_none() => {
                f.output_dir = Some(v.into());
                continue;
            }
            Value(v) => bail!("unexpected argument {v:?}; see --help"),
        };
        let mut value = || -> Result<String> {
            parser
                .value()
                .with_context(|| format!("{flag} needs a value"))?
                .string()
                .with_context(|| format!("{flag}: not UTF-8"))
        };
        macro_rules! parsed {
            () => {{
                let text = value()?;
                text.parse()
                    .map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))?
            }};
        }
        match flag.as_str() {
            "-c" | "--config" => f.config = Some(value()?.into()),
            "-s" | "--start-time" => f.start = Some(value()?),
            "-e" | "--end-time" => f.end = Some(value()?),
            "--from" => f.from_days = Some(parsed!()),
            "--to" => f.to_days = Some(parsed!()),
            "-n" | "--nusers" => f.users = Some(parsed!()),
            "-g" | "--growth-rate" => f.growth_rate = Some(parsed!()),
            "-a" | "--attrition-rate" => f.attrition_rate = Some(parsed!()),
            "-u" | "--userid" => f.first_user_id = Some(parsed!()),
            "-r" | "--randomseed" => f.seed = Some(parsed!()),
            "--songs" => f.songs = Some(value()?.into()),
            "--continuous" => f.continuous = true,
            "--nocontinuous" => f.continuous = false,
            "--speed" => f.speed = Some(parsed!()),
            "--threads" => f.threads = Some(parsed!()),
            "--output-dir" => f.output_dir = Some(value()?.into()),
            "--gzip" => f.gzip = true,
            "--stdout" => f.stdout = true,
            "-k" | "--kafka-brokers" | "--kafkaBrokerList" => {
                f.kafka_brokers = Some(value()?);
            }
            "--topic" => {
                let text = value()?;
                let (kind, name) = text
                    .split_once('=')
                    .filter(|(_, name)| !name.is_empty())
                    .with_context(|| format!("--topic {text:?}: expected KIND=NAME"))?;
                let kind = EventKind::from_topic(kind).with_context(|| {
                    let kinds: Vec<_> = EventKind::ALL.iter().map(|k| k.topic()).collect();
                    format!("--topic {text:?}: KIND must be one of {}", kinds.join(", "))
                })?;
                f.topics.push((kind, name.to_owned()));
            }
            "--partitions" => f.partitions = Some(parsed!()),
            "--replication-factor" => f.replication_factor = Some(parsed!()),
            "--compression" => f.compression = Some(value()?),
            "-X" | "--kafka-setting" => {
                let text = value()?;
                let (key, val) = text
                    .split_once('=')
                    .with_context(|| format!("{flag} {text:?}: expected KEY=VALUE"))?;
                f.kafka_settings.push((key.to_owned(), val.to_owned()));
            }
            "--tag" => f.tag = Some(value()?),
            "-q" | "--quiet" | "--noverbose" => f.quiet = true,
            "-v" | "--verbose" => f.quiet = false,
            "--generate-counts" | "--generate-similars" | "--useAvro" => bail!(
                "{flag} is an eventsim mode this simulator does not implement: it writes \
                 JSON events only (listen counts come from --songs FILE)"
            ),
            // eventsim's toggles default to off, so their negations change nothing.
            "--nogenerate-counts" | "--nogenerate-similars" | "--nouseAvro" => {}
            "--print-default-config" => f.print_default_config = true,
            "-h" | "--help" => f.help = true,
            _ => bail!("unknown flag {flag}; see --help"),
        }
    }
    Ok(f)
}

/// A run's settings once flags, environment and config file are combined and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub start_ms: i64,
    /// `None`: a continuous run without an end.
    pub end_ms: Option<i64>,
    pub users: u32,
    pub growth_rate: f64,
    pub attrition_rate: f64,
    pub first_user_id: i64,
    pub seed: u64,
    pub continuous: bool,
    pub speed: f64,
    pub threads: usize,
    pub output: Output,
    pub topics: [String; 4],
    pub partitions: i32,
    pub replication_factor: i32,
    pub compression: String,
    pub kafka_settings: Vec<(String, String)>,
    pub tag: Option<String>,
}

impl Settings {
    /// Combines flags (already layered over the environment) with the config file's run
    /// options; `now_ms` is the default start of a continuous run.
    pub fn resolve(flags: &Flags, file: &EventsimConfig, now_ms: i64) -> Result<Settings> {
        let date = |flag: &str, text: &str| -> Result<i64> {
            parse_date_time(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
        };
        let start = match (&flags.start, &file.start_date) {
            (Some(text), _) => Some(date("--start-time", text)?),
            (None, Some(text)) => Some(date("config start-date", text)?),
            (None, None) => None,
        };
        let end = match (&flags.end, &file.end_date) {
            (Some(text), _) => Some(date("--end-time", text)?),
            (None, Some(text)) => Some(date("config end-date", text)?),
            (None, None) => None,
        };
        // Now, in whole seconds, as eventsim's times have them.
        let now_s = now_ms - now_ms.rem_euclid(1000);
        let days_ago = |days: u32| now_s - i64::from(days) * DAY_MS;
        let start = start.or(flags.from_days.map(days_ago));
        let end = end.or(flags.to_days.map(days_ago));
        let week = DEFAULT_DAYS * DAY_MS;
        let (start_ms, end_ms) = match (start, end, flags.continuous) {
            (Some(s), Some(e), _) => (s, Some(e)),
            (Some(s), None, true) => (s, None),
            (None, e, true) => (now_s, e),
            (Some(s), None, false) => (s, Some(s + week)),
            (None, Some(e), false) => (e - week, Some(e)),
            (None, None, false) => {
                let s = date("default start", DEFAULT_START)?;
                (s, Some(s + week))
            }
        };
        if let Some(end_ms) = end_ms
            && end_ms <= start_ms
        {
            bail!("the end time must be after the start time");
        }

        let users = flags.users.or(file.n_users).unwrap_or(DEFAULT_USERS);
        let users = u32::try_from(users)
            .ok()
            .filter(|&n| n < u32::MAX / 2)
            .with_context(|| format!("--nusers {users}: at most {} users", u32::MAX / 2 - 1))?;
        let growth_rate = flags.growth_rate.or(file.growth_rate).unwrap_or(0.0);
        if !(growth_rate.is_finite() && growth_rate >= 0.0) {
            bail!("--growth-rate {growth_rate}: must be 0 or more");
        }
        let attrition_rate = flags.attrition_rate.or(file.attrition_rate).unwrap_or(0.0);
        if !(0.0..=1.0).contains(&attrition_rate) {
            bail!("--attrition-rate {attrition_rate}: must be from 0 to 1");
        }
        let speed = flags.speed.unwrap_or(1.0);
        if !(speed.is_finite() && speed > 0.0) {
            bail!("--speed {speed}: must be a positive factor");
        }
        if flags.speed.is_some() && !flags.continuous {
            bail!("--speed only applies with --continuous");
        }
        let threads = match flags.threads {
            Some(0) => bail!("--threads 0: at least one worker is needed"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };

        let outputs = [
            flags.output_dir.is_some(),
            flags.stdout,
            flags.kafka_brokers.is_some(),
        ];
        let output = match (&flags.output_dir, flags.stdout, &flags.kafka_brokers) {
            _ if outputs.iter().filter(|&&o| o).count() > 1 => {
                bail!("choose one output: --output-dir, --stdout or --kafka-brokers")
            }
            (Some(path), _, _) => Output::Dir {
                path: path.clone(),
                gzip: flags.gzip,
            },
            (None, true, _) => Output::Stdout,
            (None, false, Some(brokers)) => Output::Kafka {
                brokers: brokers.clone(),
            },
            (None, false, None) => {
                bail!("say where events go: --output-dir DIR, --stdout or --kafka-brokers HOSTS")
            }
        };
        if flags.gzip && !matches!(output, Output::Dir { .. }) {
            bail!("--gzip only applies with --output-dir");
        }
        let kafka = matches!(output, Output::Kafka { .. });
        let kafka_only = !flags.topics.is_empty()
            || flags.partitions.is_some()
            || flags.replication_factor.is_some()
            || flags.compression.is_some()
            || !flags.kafka_settings.is_empty();
        if kafka_only && !kafka {
            bail!(
                "--topic, --partitions, --replication-factor, --compression and -X only apply with --kafka-brokers"
            );
        }
        let mut topics = EventKind::ALL.map(|k| k.topic().to_owned());
        for (kind, name) in &flags.topics {
            topics[kind.index()] = name.clone();
        }
        let partitions = flags.partitions.unwrap_or(6);
        if partitions < 1 {
            bail!("--partitions {partitions}: at least 1");
        }
        let replication_factor = flags.replication_factor.unwrap_or(-1);
        if replication_factor == 0 || replication_factor < -1 {
            bail!("--replication-factor {replication_factor}: at least 1");
        }
        let compression = flags
            .compression
            .clone()
            .unwrap_or_else(|| "lz4".to_owned());
        if !["none", "gzip", "snappy", "lz4"].contains(&compression.as_str()) {
            bail!("--compression {compression}: expected none, gzip, snappy or lz4");
        }
        Ok(Settings {
            start_ms,
            end_ms,
            users,
            growth_rate,
            attrition_rate,
            first_user_id: flags.first_user_id.or(file.first_user_id).unwrap_or(1),
            seed: flags.seed.or(file.seed).unwrap_or(0),
            continuous: flags.continuous,
            speed,
            threads,
            output,
            topics,
            partitions,
            replication_factor,
            compression,
            kafka_settings: flags.kafka_settings.clone(),
            tag: flags.tag.clone().or_else(|| file.tag.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        parse_flags(args.iter().map(OsString::from)).unwrap()
    }

    fn resolve(args: &[&str]) -> Result<Settings> {
        Settings::resolve(&flags(args), &simulator::defaults::config(), 0)
    }

    #[test]
    fn eventsim_flags_and_aliases_are_accepted() {
        let f = flags(&[
            "-c",
            "x.json",
            "-s",
            "2026-01-01T00:00:00",
            "-e",
            "2026-01-02T00:00:00",
            "-n",
            "5",
            "-g",
            "0.1",
            "-a",
            "0.2",
            "-u",
            "100",
            "-r",
            "7",
            "--kafkaBrokerList",
            "h:1",
            "--tag",
            "A",
        ]);
        assert_eq!(f.config, Some("x.json".into()));
        assert_eq!(f.users, Some(5));
        assert_eq!(f.growth_rate, Some(0.1));
        assert_eq!(f.attrition_rate, Some(0.2));
        assert_eq!(f.first_user_id, Some(100));
        assert_eq!(f.seed, Some(7));
        assert_eq!(f.kafka_brokers.as_deref(), Some("h:1"));
        assert_eq!(f.tag.as_deref(), Some("A"));
    }

    #[test]
    fn eventsims_trailing_directory_days_ago_and_toggles_are_accepted() {
        let day = DAY_MS;
        let now = 400 * day + 1234;
        let f = flags(&["-n", "5", "--from", "3", "--to", "1", "--noverbose", "out/"]);
        assert_eq!(f.output_dir, Some("out/".into()));
        assert!(f.quiet);
        let s = Settings::resolve(&f, &simulator::defaults::config(), now).unwrap();
        assert_eq!(
            (s.start_ms, s.end_ms),
            (397 * day + 1000, Some(399 * day + 1000))
        );
        // An explicit start wins over --from, as in eventsim.
        let f = flags(&["-s", "2026-01-01", "--from", "3", "--stdout"]);
        let s = Settings::resolve(&f, &simulator::defaults::config(), now).unwrap();
        assert_eq!(s.start_ms, parse_date_time("2026-01-01").unwrap());
        let f = flags(&[
            "--continuous",
            "--nocontinuous",
            "--nogenerate-counts",
            "--nogenerate-similars",
            "--nouseAvro",
            "--verbose",
            "--stdout",
        ]);
        assert!(!f.continuous && !f.quiet);
    }

    #[test]
    fn flags_override_the_config_file() {
        let mut file = simulator::defaults::config();
        file.n_users = Some(50);
        file.start_date = Some("2025-01-01T00:00:00".to_owned());
        let s = Settings::resolve(&flags(&["--stdout", "-n", "7"]), &file, 0).unwrap();
        assert_eq!(s.users, 7);
        assert_eq!(s.start_ms, parse_date_time("2025-01-01").unwrap());
        assert_eq!(s.end_ms, Some(s.start_ms + 7 * DAY_MS));
    }

    #[test]
    fn environment_variables_are_flags_that_flags_override() {
        let vars = [
            ("SIMULATOR_NUSERS".to_owned(), "9".to_owned()),
            ("SIMULATOR_STDOUT".to_owned(), "1".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let mut args = env_args(vars.into_iter()).unwrap();
        args.extend(["-n", "3"].map(OsString::from));
        let f = parse_flags(args).unwrap();
        assert_eq!(f.users, Some(3));
        assert!(f.stdout);
        let unknown = [("SIMULATOR_NUSER".to_owned(), "9".to_owned())];
        let error = env_args(unknown.into_iter()).unwrap_err().to_string();
        assert!(error.contains("SIMULATOR_NUSER"), "{error}");
    }

    #[test]
    fn bad_flags_get_clear_errors() {
        for (args, expected) in [
            (&["--stdout", "-n", "many"][..], "-n \"many\""),
            (&["--stdout", "--bogus"][..], "unknown flag --bogus"),
            (&["-n", "5"][..], "say where events go"),
            (&["--stdout", "--output-dir", "d"][..], "choose one output"),
            (&["--stdout", "-s", "2026-13-01"][..], "--start-time"),
            (
                &["--stdout", "-s", "2026-01-02", "-e", "2026-01-01"][..],
                "after the start",
            ),
            (
                &["--stdout", "--speed", "2"][..],
                "only applies with --continuous",
            ),
            (
                &["--stdout", "--partitions", "3"][..],
                "only apply with --kafka-brokers",
            ),
            (
                &["-k", "h:1", "--compression", "zip"][..],
                "--compression zip",
            ),
            (
                &["--stdout", "--topic", "listens=x"][..],
                "KIND must be one of",
            ),
            (&["--stdout", "-a", "1.5"][..], "--attrition-rate"),
            (&["out", "more"][..], "unexpected argument \"more\""),
            (&["--stdout", "out"][..], "choose one output"),
            (&["--generate-counts", "out"][..], "does not implement"),
            (&["--generate-similars", "out"][..], "does not implement"),
            (&["--stdout", "--from", "-2"][..], "--from"),
        ] {
            let error = match parse_flags(args.iter().map(OsString::from)) {
                Err(e) => e,
                Ok(f) => Settings::resolve(&f, &simulator::defaults::config(), 0).unwrap_err(),
            };
            let text = format!("{error:#}");
            assert!(text.contains(expected), "{args:?}: {text}");
        }
    }

    #[test]
    fn a_continuous_run_starts_now_and_has_no_end() {
        let f = flags(&["--stdout", "--continuous", "--speed", "10"]);
        let s = Settings::resolve(&f, &simulator::defaults::config(), 1_234_567).unwrap();
        assert_eq!(s.start_ms, 1_234_000);
        assert_eq!(s.end_ms, None);
        assert_eq!(s.speed, 10.0);
        assert!(resolve(&["--stdout"]).unwrap().end_ms.is_some());
    }
}
