//! The simulator's settings, layered: built-in defaults, then the eventsim config file's
//! run options, then `SIMULATOR_*` environment variables, then command-line flags. clap
//! reads the last two from one declaration per setting.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};
use simulator::clock::{DAY_MS, parse_date_time};
use simulator::config::EventsimConfig;
use warehouse::raw::EventKind;

/// What `--help` adds after the flags.
const AFTER_HELP: &str = "\
Every long flag can also be set as SIMULATOR_<FLAG>, e.g. SIMULATOR_KAFKA_BROKERS=host:9092
or SIMULATOR_CONTINUOUS=1; flags win over the environment, which wins over the config file.
eventsim's --generate-counts, --generate-similars and --useAvro are not implemented and
are refused; their --no forms are accepted.";

/// The default backfill period starts here: fixed, so that a run without dates is
/// reproducible on any day.
const DEFAULT_START: &str = "2026-01-05T00:00:00";
const DEFAULT_DAYS: i64 = 7;
const DEFAULT_USERS: u64 = 1000;

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Dir { path: PathBuf, gzip: bool },
    Stdout,
    Kafka { brokers: String },
}

/// eventsim-compatible events of a music-streaming service.
// Everything the command line and the `SIMULATOR_*` environment say, before the config
// file fills the gaps: one declaration per setting.
#[derive(Clone, Debug, Default, PartialEq, Parser)]
#[command(
    name = "simulator",
    version,
    long_about = None,
    after_help = AFTER_HELP,
    override_usage = "simulator [OPTIONS] (--output-dir DIR | --stdout | --kafka-brokers HOSTS | DIR)"
)]
pub struct Flags {
    /// eventsim JSON config (default: the built-in site model)
    #[arg(short = 'c', long, env = "SIMULATOR_CONFIG", value_name = "FILE", help_heading = SIMULATION)]
    pub config: Option<PathBuf>,
    /// First instant, ISO local date-time in UTC (default 2026-01-05T00:00:00; now with --continuous)
    #[arg(short = 's', long = "start-time", env = "SIMULATOR_START_TIME", value_name = "TIME", help_heading = SIMULATION)]
    pub start: Option<String>,
    /// End, exclusive (default start + 7 days; none with --continuous)
    #[arg(short = 'e', long = "end-time", env = "SIMULATOR_END_TIME", value_name = "TIME", help_heading = SIMULATION)]
    pub end: Option<String>,
    /// Without -s, start N days before now (eventsim's --from)
    #[arg(long = "from", env = "SIMULATOR_FROM", value_name = "N", allow_negative_numbers = true, help_heading = SIMULATION)]
    pub from_days: Option<u32>,
    /// Without -e, end N days before now (eventsim's --to)
    #[arg(long = "to", env = "SIMULATOR_TO", value_name = "N", allow_negative_numbers = true, help_heading = SIMULATION)]
    pub to_days: Option<u32>,
    /// Initial users (default 1000)
    #[arg(short = 'n', long = "nusers", env = "SIMULATOR_NUSERS", value_name = "N", help_heading = SIMULATION)]
    pub users: Option<u64>,
    /// Yearly growth of the user base, e.g. 0.2 (default 0)
    #[arg(short = 'g', long, env = "SIMULATOR_GROWTH_RATE", value_name = "R", help_heading = SIMULATION)]
    pub growth_rate: Option<f64>,
    /// Fraction of users who leave within a year (default 0)
    #[arg(short = 'a', long, env = "SIMULATOR_ATTRITION_RATE", value_name = "R", help_heading = SIMULATION)]
    pub attrition_rate: Option<f64>,
    /// First user id (default 1)
    #[arg(short = 'u', long = "userid", env = "SIMULATOR_USERID", value_name = "ID", help_heading = SIMULATION)]
    pub first_user_id: Option<i64>,
    /// Seed (default: the config's seed, else 0)
    #[arg(short = 'r', long = "randomseed", env = "SIMULATOR_RANDOMSEED", value_name = "SEED", help_heading = SIMULATION)]
    pub seed: Option<u64>,
    /// Song catalogue, eventsim's listen_counts.txt(.gz) format (default: a built-in catalogue of 12,000 songs)
    #[arg(long, env = "SIMULATOR_SONGS", value_name = "FILE", help_heading = SIMULATION)]
    pub songs: Option<PathBuf>,
    /// Real time: events are released when their time comes (--nocontinuous: a backfill, the default)
    #[arg(long, env = "SIMULATOR_CONTINUOUS", value_parser = BoolishValueParser::new(), overrides_with = "nocontinuous", help_heading = SIMULATION)]
    pub continuous: bool,
    #[arg(long, hide = true, overrides_with = "continuous")]
    nocontinuous: bool,
    /// With --continuous, simulated seconds per second (default 1)
    #[arg(long, env = "SIMULATOR_SPEED", value_name = "FACTOR", help_heading = SIMULATION)]
    pub speed: Option<f64>,
    /// Worker threads (default: all cores); output is the same for every N
    #[arg(long, env = "SIMULATOR_THREADS", value_name = "N", help_heading = SIMULATION)]
    pub threads: Option<usize>,

    /// DIR/<topic>.jsonl for the four topics
    #[arg(long, env = "SIMULATOR_OUTPUT_DIR", value_name = "DIR", help_heading = OUTPUT)]
    pub output_dir: Option<PathBuf>,
    /// The same as --output-dir, as eventsim takes it
    #[arg(value_name = "DIR", conflicts_with = "output_dir")]
    trailing_dir: Option<PathBuf>,
    /// With --output-dir, write <topic>.jsonl.gz
    #[arg(long, env = "SIMULATOR_GZIP", value_parser = BoolishValueParser::new(), help_heading = OUTPUT)]
    pub gzip: bool,
    /// Every event as a JSON line on stdout
    #[arg(long, env = "SIMULATOR_STDOUT", value_parser = BoolishValueParser::new(), help_heading = OUTPUT)]
    pub stdout: bool,
    /// Kafka bootstrap servers
    #[arg(short = 'k', long, visible_alias = "kafkaBrokerList", env = "SIMULATOR_KAFKA_BROKERS", value_name = "HOSTS", help_heading = OUTPUT)]
    pub kafka_brokers: Option<String>,

    /// Rename a topic, e.g. listen_events=listens (repeatable)
    #[arg(long = "topic", env = "SIMULATOR_TOPIC", value_name = "KIND=NAME", value_parser = topic, help_heading = KAFKA)]
    pub topics: Vec<(EventKind, String)>,
    /// Partitions of topics created when missing (default 6)
    #[arg(long, env = "SIMULATOR_PARTITIONS", value_name = "N", help_heading = KAFKA)]
    pub partitions: Option<i32>,
    /// Their replication factor (default: the broker's)
    #[arg(long, env = "SIMULATOR_REPLICATION_FACTOR", value_name = "N", help_heading = KAFKA)]
    pub replication_factor: Option<i32>,
    /// none, gzip, snappy or lz4 (default lz4)
    #[arg(long, env = "SIMULATOR_COMPRESSION", value_name = "C", help_heading = KAFKA)]
    pub compression: Option<String>,
    /// Any librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable)
    #[arg(short = 'X', long = "kafka-setting", env = "SIMULATOR_KAFKA_SETTING", value_name = "K=V", value_parser = key_value, help_heading = KAFKA)]
    pub kafka_settings: Vec<(String, String)>,
    /// Sent as a `tag` header with every message
    #[arg(long, env = "SIMULATOR_TAG", value_name = "TAG", help_heading = KAFKA)]
    pub tag: Option<String>,

    /// Print the built-in config as eventsim JSON and exit
    #[arg(long)]
    pub print_default_config: bool,
    /// No progress output (eventsim's --noverbose is the same)
    #[arg(short = 'q', long, visible_alias = "noverbose", env = "SIMULATOR_QUIET", value_parser = BoolishValueParser::new(), overrides_with = "verbose")]
    pub quiet: bool,
    /// Progress output on stderr (the default)
    #[arg(short = 'v', long, overrides_with = "quiet")]
    verbose: bool,

    // eventsim's modes that this simulator does not implement: refused by name, and
    // their negations (eventsim's defaults) accepted.
    #[arg(long = "generate-counts", hide = true)]
    generate_counts: bool,
    #[arg(long = "generate-similars", hide = true)]
    generate_similars: bool,
    #[arg(long = "useAvro", hide = true)]
    use_avro: bool,
    #[arg(long = "nogenerate-counts", hide = true)]
    no_generate_counts: bool,
    #[arg(long = "nogenerate-similars", hide = true)]
    no_generate_similars: bool,
    #[arg(long = "nouseAvro", hide = true)]
    no_use_avro: bool,
}

const SIMULATION: &str = "Simulation (flags override the config file's values)";
const OUTPUT: &str = "Output (one of)";
const KAFKA: &str = "Kafka";

fn topic(text: &str) -> Result<(EventKind, String), String> {
    let (kind, name) = text
        .split_once('=')
        .filter(|(_, name)| !name.is_empty())
        .ok_or("expected KIND=NAME")?;
    let kind = EventKind::from_topic(kind).ok_or_else(|| {
        let kinds: Vec<_> = EventKind::ALL.iter().map(|k| k.topic()).collect();
        format!("KIND must be one of {}", kinds.join(", "))
    })?;
    Ok((kind, name.to_owned()))
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| "expected KEY=VALUE".to_owned())
}

/// Parses the command line (the program's name first) and the `SIMULATOR_*`
/// environment; `Err` carries clap's own message, `--help` and `--version` included.
pub fn parse_flags(
    args: impl IntoIterator<Item = OsString>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Flags, clap::Error> {
    let mut flags = Flags::try_parse_from(args)?;
    unknown_variables(vars)?;
    if let Some(dir) = flags.trailing_dir.take() {
        flags.output_dir = Some(dir);
    }
    let refused = [
        ("--generate-counts", flags.generate_counts),
        ("--generate-similars", flags.generate_similars),
        ("--useAvro", flags.use_avro),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(Flags::command().error(
            ErrorKind::ArgumentConflict,
            format!(
                "{flag} is an eventsim mode this simulator does not implement: it writes \
                 JSON events only (listen counts come from --songs FILE)"
            ),
        ));
    }
    Ok(flags)
}

/// A `SIMULATOR_*` variable no flag reads is a mistake worth stopping for (a typo would
/// otherwise be silently ignored).
fn unknown_variables(vars: impl Iterator<Item = (String, String)>) -> Result<(), clap::Error> {
    let command = Flags::command();
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    for (name, _) in vars {
        if name.starts_with("SIMULATOR_") && !known.contains(&name) {
            return Err(command.clone().error(
                ErrorKind::UnknownArgument,
                format!("unknown environment variable {name}: no flag reads it"),
            ));
        }
    }
    Ok(())
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

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        let args = std::iter::once("simulator").chain(args.iter().copied());
        parse_flags(args.map(OsString::from), std::iter::empty())
    }

    fn flags(args: &[&str]) -> Flags {
        parse(args).unwrap()
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
    fn an_unknown_simulator_variable_is_an_error_naming_it() {
        let vars = [
            ("SIMULATOR_NUSERS".to_owned(), "9".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        assert!(unknown_variables(vars.into_iter()).is_ok());
        let unknown = [("SIMULATOR_NUSER".to_owned(), "9".to_owned())];
        let error = unknown_variables(unknown.into_iter())
            .unwrap_err()
            .to_string();
        assert!(error.contains("SIMULATOR_NUSER"), "{error}");
    }

    #[test]
    fn bad_flags_get_clear_errors() {
        for (args, expected) in [
            (
                &["--stdout", "-n", "many"][..],
                "invalid value 'many' for '--nusers <N>'",
            ),
            (
                &["--stdout", "--bogus"][..],
                "unexpected argument '--bogus'",
            ),
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
            (&["out", "more"][..], "unexpected argument 'more'"),
            (&["--stdout", "out"][..], "choose one output"),
            (&["--generate-counts", "out"][..], "does not implement"),
            (&["--generate-similars", "out"][..], "does not implement"),
            (&["--stdout", "--from", "-2"][..], "--from"),
        ] {
            let error = match parse(args) {
                Err(e) => anyhow::Error::from(e),
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
