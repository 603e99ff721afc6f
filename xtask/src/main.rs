//! `cargo xtask`: every task of the repository, as plain Rust that shells out readably.

mod ci;
mod codegen;
mod kafka;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lexopt::ValueExt as _;

const HELP: &str = "\
cargo xtask <command>

Commands:
  codegen [--check]   Write the generated DDL and schemas under warehouse/ddl/;
                      with --check, fail instead if any of them is stale.
  kafka start|stop|status [--port N] [--state-dir DIR]
                      A real single-node Kafka broker (KRaft) on 127.0.0.1, from
                      Maven Central's jars (fetched once). Default port 9092; the
                      controller listens on the next port.
  kafka topics [--port N] -- ARGS...
                      Kafka's own topic tool against that broker, for example
                      `cargo xtask kafka topics -- --list`.
  ci                  Every check CI runs: fmt, clippy, codegen --check, all tests.
                      Installs missing toolchain components first.
  help                This text.
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain of contexts, one line each, without a backtrace: the failing
            // step's own output is already on the terminal above.
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = lexopt::Parser::from_env();
    let command = match args.next().context("reading the command line")? {
        Some(lexopt::Arg::Value(command)) => command.string()?,
        Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h')) | None => {
            print!("{HELP}");
            return Ok(());
        }
        Some(other) => bail!("{}\n\n{HELP}", other.unexpected()),
    };
    match command.as_str() {
        "codegen" => {
            let mut check = false;
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("check") => check = true,
                    other => bail!("codegen: {}", other.unexpected()),
                }
            }
            codegen::run(check)
        }
        "kafka" => {
            let action = match args.next()? {
                Some(lexopt::Arg::Value(action)) => action.string()?,
                _ => bail!("kafka: expected start, stop or status"),
            };
            let (mut port, mut state_dir, mut rest) = (None, None, Vec::new());
            while let Some(arg) = args.next()? {
                match arg {
                    lexopt::Arg::Long("port") => port = Some(args.value()?.parse()?),
                    lexopt::Arg::Long("state-dir") => state_dir = Some(args.value()?.into()),
                    // Everything after `--` goes to Kafka's topic tool.
                    lexopt::Arg::Value(value) if action == "topics" => rest.push(value.string()?),
                    other => bail!("kafka: {}", other.unexpected()),
                }
            }
            let broker = kafka::Broker::new(port, state_dir);
            match action.as_str() {
                "start" => broker.start(),
                "stop" => broker.stop(),
                "status" => broker.status(),
                "topics" => broker.topics_command(&rest),
                other => {
                    bail!("kafka: unknown action `{other}`; expected start, stop, status or topics")
                }
            }
        }
        "ci" => {
            no_more_args(&mut args, "ci")?;
            ci::run()
        }
        "help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

fn no_more_args(args: &mut lexopt::Parser, command: &str) -> Result<()> {
    match args.next()? {
        Some(arg) => bail!("{command}: {}", arg.unexpected()),
        None => Ok(()),
    }
}

/// The repository's root, found from this crate's location rather than the working
/// directory, so `cargo xtask` works from any folder of the checkout.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
