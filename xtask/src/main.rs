//! `cargo xtask`: every task of the repository, as plain Rust that shells out readably.

mod ci;
mod codegen;
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
