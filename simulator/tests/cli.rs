//! The `simulator` binary as users run it: files, gzip and stdout agree; the built-in
//! config prints and loads back; bad configs and flags fail with a clear message and
//! exit code 2, never a panic.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::shared;

fn simulator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(args)
        .env_remove("SIMULATOR_KAFKA_BROKERS")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("simulator-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SMALL: [&str; 7] = ["-n", "150", "-s", "2026-02-02", "-e", "2026-02-05", "-q"];

fn lines_of(path: &Path) -> Vec<String> {
    let mut text = String::new();
    let file = std::fs::File::open(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .unwrap();
    }
    text.lines().map(str::to_owned).collect()
}

#[test]
fn files_gzip_and_stdout_carry_the_same_events() {
    let dir = temp_dir("outputs");
    let plain = dir.join("plain");
    let gzip = dir.join("gzip");
    let mut args = SMALL.to_vec();
    args.extend(["--output-dir", plain.to_str().unwrap()]);
    let out = simulator(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = SMALL.to_vec();
    args.extend(["--output-dir", gzip.to_str().unwrap(), "--gzip"]);
    let out = simulator(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = SMALL.to_vec();
    args.push("--stdout");
    let out = simulator(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();

    let mut all_files = Vec::new();
    for topic in [
        "listen_events",
        "page_view_events",
        "auth_events",
        "status_change_events",
    ] {
        let lines = lines_of(&plain.join(format!("{topic}.jsonl")));
        assert_eq!(
            lines,
            lines_of(&gzip.join(format!("{topic}.jsonl.gz"))),
            "{topic}"
        );
        all_files.extend(lines);
    }
    assert!(all_files.len() > 1_000, "{} events", all_files.len());
    let mut sorted_stdout = stdout.clone();
    sorted_stdout.sort();
    all_files.sort();
    assert_eq!(sorted_stdout, all_files);
    std::fs::remove_dir_all(dir).unwrap();
}

/// eventsim's own command line: `eventsim -c config.json -n 100 out/`, with the output
/// directory as a trailing argument, relative to where it runs.
#[test]
fn eventsims_command_line_with_a_trailing_output_directory_works() {
    let dir = temp_dir("eventsim-form");
    let config = shared("example-config.json");
    let config = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
            .current_dir(&dir)
            .args(args)
            .env_remove("SIMULATOR_KAFKA_BROKERS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    run(&["-c", config, "-n", "100", "--noverbose", "out/"]);
    run(&["-c", config, "-n", "100", "-q", "--output-dir", "flag"]);
    for topic in [
        "page_view_events",
        "listen_events",
        "auth_events",
        "status_change_events",
    ] {
        let file = format!("{topic}.jsonl");
        let trailing = std::fs::read(dir.join("out").join(&file)).unwrap();
        let flagged = std::fs::read(dir.join("flag").join(&file)).unwrap();
        assert!(trailing == flagged, "{file} differs between the two forms");
        if topic == "page_view_events" {
            assert!(lines_of(&dir.join("out").join(&file)).len() > 500);
        }
    }
}

#[test]
fn the_printed_default_config_loads_back_and_behaves_the_same() {
    let dir = temp_dir("default-config");
    let out = simulator(&["--print-default-config"]);
    assert!(out.status.success());
    let config = dir.join("default.json");
    std::fs::write(&config, &out.stdout).unwrap();
    let mut builtin = SMALL.to_vec();
    builtin.push("--stdout");
    let mut from_file = builtin.clone();
    from_file.extend(["-c", config.to_str().unwrap()]);
    let (a, b) = (simulator(&builtin), simulator(&from_file));
    assert!(a.status.success() && b.status.success(), "{}", stderr(&b));
    assert!(!a.stdout.is_empty());
    assert!(
        a.stdout == b.stdout,
        "the printed config behaves differently"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_config_is_refused_with_the_json_path_of_each_problem() {
    let dir = temp_dir("bad-config");
    let out = simulator(&["--print-default-config"]);
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["transitions"][0]["p"] = serde_json::json!(0.9);
    json["alpha"] = serde_json::json!(-1);
    let config = dir.join("bad.json");
    std::fs::write(&config, json.to_string()).unwrap();
    let out = simulator(&["-c", config.to_str().unwrap(), "--stdout"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("alpha: must be a positive number"), "{text}");
    assert!(text.contains("transitions[0]"), "{text}");
    assert!(text.contains("above 1"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    std::fs::write(&config, "{\"alpha\": 1,").unwrap();
    let out = simulator(&["-c", config.to_str().unwrap(), "--stdout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.json"), "{}", stderr(&out));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_flags_and_missing_files_are_one_line_errors() {
    for (args, expected) in [
        (
            &["-n", "ten", "--stdout"][..],
            "invalid value 'ten' for '--nusers <N>'",
        ),
        (
            &["--stdout", "--songs", "/nonexistent/songs.txt"][..],
            "/nonexistent/songs.txt",
        ),
        (
            &["-c", "/nonexistent/config.json", "--stdout"][..],
            "/nonexistent/config.json",
        ),
        (&["--stdout", "--threads", "0"][..], "--threads 0"),
        (&[][..], "say where events go"),
    ] {
        let out = simulator(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let text = stderr(&out);
        // clap's own usage errors are followed by a hint to try --help.
        assert!(
            text.starts_with("simulator: error: ") || text.starts_with("error: "),
            "{args:?}: {text}"
        );
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
    let out = simulator(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--kafkaBrokerList"));
}

#[test]
fn environment_variables_set_flags_and_flags_win() {
    let run = |vars: &[(&str, &str)], args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_simulator"));
        command.env_remove("SIMULATOR_KAFKA_BROKERS");
        for (name, value) in vars {
            command.env(name, value);
        }
        let hour = [
            "-s",
            "2026-01-05T00:00:00",
            "-e",
            "2026-01-05T01:00:00",
            "-q",
        ];
        command.args(hour).args(args).output().unwrap()
    };
    let out = run(
        &[("SIMULATOR_NUSERS", "many"), ("SIMULATOR_STDOUT", "1")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'many'"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &[("SIMULATOR_NUSERS", "many"), ("SIMULATOR_STDOUT", "1")],
        &["-n", "300"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!out.stdout.is_empty(), "SIMULATOR_STDOUT=1 chose stdout");
    let out = run(&[("SIMULATOR_NUSER", "3")], &["--stdout"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SIMULATOR_NUSER"), "{}", stderr(&out));
}
