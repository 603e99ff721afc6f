//! The `simulator` binary: eventsim's command line over the parallel engine, writing to
//! Kafka, JSON-lines files or stdout, with progress on stderr.

mod progress;
mod settings;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use simulator::config::EventsimConfig;
use simulator::engine::{self, Options, Pacing};
use simulator::population::Places;
use simulator::sinks::{Files, Kafka, KafkaOptions, Sink, Stdout};
use simulator::songs::Catalogue;
use simulator::world::{RunSpec, World};

use crate::progress::Bar;
use crate::settings::{Flags, Output, Settings};

/// The end of a continuous run without `--end-time`: far enough never to come.
const NO_END_MS: i64 = i64::MAX / 4;

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("simulator: error: {error:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run() -> Result<i32> {
    let flags = match settings::parse_flags(std::env::args_os(), std::env::vars()) {
        Ok(flags) => flags,
        // Help and version on stdout with 0; usage errors on stderr with 2.
        Err(error) => {
            error.print().context("cannot print")?;
            return Ok(if error.use_stderr() { 2 } else { 0 });
        }
    };
    if flags.print_default_config {
        let json = serde_json::to_string_pretty(&simulator::defaults::config())
            .context("cannot print the default config")?;
        println!("{json}");
        return Ok(0);
    }
    let (file, model) = match &flags.config {
        Some(path) => EventsimConfig::load(path)?,
        None => {
            let config = simulator::defaults::config();
            let model = config.compile().map_err(|problems| {
                anyhow::anyhow!("the built-in config is invalid: {problems:?}")
            })?;
            (config, model)
        }
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let settings = Settings::resolve(&flags, &file, now_ms)?;
    let songs = match &flags.songs {
        Some(path) => Catalogue::load(path)?,
        None => Catalogue::builtin(),
    };
    let run = RunSpec {
        seed: settings.seed,
        start_ms: settings.start_ms,
        end_ms: settings.end_ms.unwrap_or(NO_END_MS),
        users: settings.users,
        first_user_id: settings.first_user_id,
        growth_rate: settings.growth_rate,
        attrition_rate: settings.attrition_rate,
    };
    let world = World::new(&file, model, songs, Places::us(), run)
        .map_err(|problem| anyhow::anyhow!("{problem}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::Relaxed) {
                eprintln!("\nsimulator: stopped again; exiting without flushing");
                std::process::exit(130);
            }
        })
        .context("cannot install the Ctrl-C handler")?;
    }

    let options = Options {
        threads: settings.threads,
        pacing: settings.continuous.then_some(Pacing {
            speed: settings.speed,
            from_ms: settings.start_ms.max(now_ms),
        }),
    };
    announce(&flags, &settings, &world);
    let mut bar = Bar::new(&settings, flags.quiet);
    let began = Instant::now();
    let (summary, kafka) = match &settings.output {
        Output::Dir { path, gzip } => {
            let mut files = Files::create(path, *gzip)?;
            (
                run_into(&world, &options, &mut files, &stop, &mut bar)?,
                None,
            )
        }
        Output::Stdout => {
            let mut stdout = Stdout::new();
            (
                run_into(&world, &options, &mut stdout, &stop, &mut bar)?,
                None,
            )
        }
        Output::Kafka { brokers } => {
            let mut kafka = Kafka::connect(KafkaOptions {
                brokers: brokers.clone(),
                topics: settings.topics.clone(),
                partitions: settings.partitions,
                replication_factor: settings.replication_factor,
                compression: settings.compression.clone(),
                tag: settings.tag.clone(),
                settings: settings.kafka_settings.clone(),
            })?;
            let summary = run_into(&world, &options, &mut kafka, &stop, &mut bar)?;
            let report = kafka.report();
            (summary, Some(report))
        }
    };
    bar.finish();
    if !flags.quiet {
        progress::print_summary(&settings, &summary, kafka.as_ref(), began.elapsed());
    }
    Ok(if summary.interrupted { 130 } else { 0 })
}

fn run_into(
    world: &World,
    options: &Options,
    sink: &mut dyn Sink,
    stop: &AtomicBool,
    bar: &mut Bar,
) -> Result<engine::Summary> {
    engine::run(world, options, sink, stop, bar).context("the run stopped")
}

/// One line saying what is about to happen, so that defaults are never a surprise.
fn announce(flags: &Flags, settings: &Settings, world: &World) {
    if flags.quiet {
        return;
    }
    let config = flags
        .config
        .as_deref()
        .map_or("built-in config".to_owned(), |p: &Path| {
            p.display().to_string()
        });
    let songs = flags
        .songs
        .as_deref()
        .map_or("built-in songs".to_owned(), |p: &Path| {
            p.display().to_string()
        });
    let end = settings
        .end_ms
        .map_or("no end".to_owned(), simulator::clock::format_date_time);
    eprintln!(
        "simulator: {} users from {} to {} (seed {}, {}, {} songs from {}, {} threads) -> {}",
        settings.users,
        simulator::clock::format_date_time(settings.start_ms),
        end,
        settings.seed,
        config,
        world.songs.len(),
        songs,
        settings.threads,
        progress::describe(&settings.output),
    );
}
