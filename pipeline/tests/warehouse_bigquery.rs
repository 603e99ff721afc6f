//! The BigQuery sink against a real BigQuery API emulator (`cargo xtask emulator`, PyPI's
//! bqemulator), with Parquet staging in a local directory that the emulator loads from:
//! the same rows as DuckDB, a batch loaded twice shows once, a failed batch moves no
//! offset, the session-fact batch job repairs BigQuery as it repairs DuckDB, a dataset
//! of the previous layout resumes, and two instances of one consumer group (on the real
//! broker of `cargo xtask kafka`) write what one writes.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;

use pipeline::batch::session_fact;
use pipeline::sinks::{Batch, BigQuery, Checkpoint, DuckDb, Sink, columnar};
use pipeline::transforms::{Config, Transformer};
use warehouse::raw::EventKind;
use warehouse::schema::bigquery::log_tables;
use xtask::emulator::{Emulator, ScratchEmulator};
use xtask::kafka::ScratchBroker;

use common::processes::{
    consumed_until_exit, files_warehouse, four_partitions_each, group_member, kill_after_batches,
    pipeline, wait_for_assignment, warehouse_at,
};
use common::{
    assert_same_rows, bigquery_tables, duckdb_tables, options, run_into, simulate, simulated,
    temp_dir, transformer_over, without_receive_times,
};

/// Simulated events as the simulator's files, one partition per topic, with malformed
/// lines among them.
fn input_files(dir: &Path) -> usize {
    let mut count = 0;
    for partition in simulated(40, 2, 21, 1) {
        let mut file =
            std::fs::File::create(dir.join(format!("{}.jsonl", partition.topic))).unwrap();
        for (i, payload) in partition.payloads.iter().enumerate() {
            if i == 3 {
                file.write_all(b"{\"ts\": \"not a number\"}\nnot json at all\n")
                    .unwrap();
                count += 2;
            }
            file.write_all(payload).unwrap();
            file.write_all(b"\n").unwrap();
            count += 1;
        }
    }
    count
}

#[test]
fn bigquery_holds_the_same_rows_as_duckdb_and_a_retried_append_lands_once() {
    let scratch = ScratchEmulator::start("pipeline-bq").unwrap();
    let emulator = scratch.emulator();
    let dir = temp_dir("bq-same");
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let messages = input_files(&input);

    let (duckdb_totals, duckdb) = run_into(&input, DuckDb::open(&dir.join("w.duckdb")).unwrap());
    let staging = dir.join("staging");
    let bigquery = BigQuery::open(&options(emulator, "warehouse", &staging)).unwrap();
    let (totals, mut bigquery) = run_into(&input, bigquery);
    assert_eq!(totals.stats.consumed as usize, messages);
    assert_eq!(totals.stats.rejected, 8, "two malformed lines per topic");
    assert!(totals.batches > 3, "several batches: {}", totals.batches);
    assert_eq!(totals.stats, duckdb_totals.stats);
    // Rows are streamed: no load job, a write stream per log, flushed at the one
    // checkpoint (at the end).
    let calls = bigquery.api_calls().unwrap();
    assert_eq!(calls.get("bigquery", "jobs.insert:load"), 0);
    let streams = calls.get("bigquery_storage", "CreateWriteStream");
    assert_eq!(streams as usize, log_tables().count(), "one stream per log");
    assert_eq!(calls.get("bigquery_storage", "FlushRows"), streams);
    assert!(calls.get("bigquery_storage", "AppendRows") >= totals.batches);

    let expected = duckdb_tables(duckdb.connection());
    // Superseded listen facts are closed by an update, which the comparison covers.
    assert!(
        expected
            .rows("event_fact")
            .iter()
            .any(|r| r.contains("is_record_valid=false")),
        "no listen fact was superseded: the case is not tested"
    );
    let stored = bigquery_tables(emulator, "warehouse");
    assert_eq!(
        stored.tables.keys().collect::<Vec<_>>(),
        expected.tables.keys().collect::<Vec<_>>()
    );
    assert_same_rows(
        &without_receive_times(&stored.text()),
        &without_receive_times(&expected.text()),
    );

    // An append retried after its answer was lost lands once: the batch is appended
    // without a checkpoint, then written again with one, at the same offsets, where
    // the stream answers ALREADY_EXISTS. Its rows are in the log once (event_dim's are
    // one per page view, so its log counts them), and visible after the checkpoint.
    assert_eq!(
        bigquery.offsets().unwrap(),
        duckdb.stored_offsets().unwrap()
    );
    let partitions = simulated(40, 2, 11, 1);
    let views = partitions
        .iter()
        .find(|p| p.kind == EventKind::PageView)
        .unwrap();
    let mut transformer = Transformer::new(Config::default());
    let output = transformer.process((0..20).map(|i| views.message(i)), 0);
    assert!(!output.tables.event_dim.rows().is_empty());
    let replay = [(views.topic.clone(), 0, 20)];
    let state = BigQuery::snapshot(transformer.state(), transformer.changes()).unwrap();
    let logged = |emulator: &Emulator| logged_rows(emulator, "warehouse", "event_dim");
    let before = logged(emulator);
    let rows = columnar(&output.tables).unwrap();
    let mut batch = Batch {
        id: "retried",
        rows: &rows,
        checkpoint: None,
    };
    bigquery.write(&batch).unwrap();
    assert_eq!(
        bigquery_tables(emulator, "warehouse"),
        stored,
        "appended rows are invisible until a checkpoint flushes them"
    );
    batch.checkpoint = Some(Checkpoint {
        offsets: &replay,
        state: &state,
    });
    bigquery.write(&batch).unwrap();
    assert_eq!(
        logged(emulator),
        before + output.tables.event_dim.rows().len()
    );
    let written = bigquery_tables(emulator, "warehouse");
    assert_eq!(
        written.rows("event_dim").len(),
        stored.rows("event_dim").len() + output.tables.event_dim.rows().len()
    );
    assert_eq!(bigquery.offsets().unwrap()[&(views.topic.clone(), 0)], 20);

    // A batch whose append fails (its log is gone) moves no offset.
    let others = simulated(10, 1, 99, 1);
    let other_views = others
        .iter()
        .find(|p| p.kind == EventKind::PageView)
        .unwrap();
    let output = transformer.process((0..60).map(|i| other_views.message(i)), 0);
    let rows = columnar(&output.tables).unwrap();
    assert!(rows.tables.len() >= 2, "the batch writes several tables");
    let last = rows.tables.last().unwrap().0.name;
    emulator
        .query(&format!("DROP TABLE warehouse.{last}_log"))
        .unwrap();
    let failing = [(views.topic.clone(), 0, 80)];
    let state = BigQuery::snapshot(transformer.state(), transformer.changes()).unwrap();
    let error = bigquery
        .write(&Batch {
            id: "failing",
            rows: &rows,
            checkpoint: Some(Checkpoint {
                offsets: &failing,
                state: &state,
            }),
        })
        .unwrap_err();
    assert!(
        error.to_string().contains(&format!("{last}_log")),
        "{error}"
    );
    assert_eq!(bigquery.offsets().unwrap()[&(views.topic.clone(), 0)], 20);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bigquery_that_cannot_be_reached_is_a_clear_error() {
    let dir = temp_dir("bq-unreachable");
    let emulator = Emulator::new(Some(xtask::kafka::free_port_pair()), Some(dir.clone()));
    let error = BigQuery::open(&options(&emulator, "warehouse", &dir.join("staging")))
        .unwrap_err()
        .to_string();
    assert!(error.contains("read dataset warehouse"), "{error}");
    assert!(error.contains("gave up after 2 attempts"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_session_fact_job_repairs_bigquery_as_it_repairs_duckdb() {
    let scratch = ScratchEmulator::start("pipeline-bq-batch").unwrap();
    let emulator = scratch.emulator();
    let dir = temp_dir("bq-batch");
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    input_files(&input);
    let (_, mut duckdb) = run_into(&input, DuckDb::open(&dir.join("w.duckdb")).unwrap());
    let bigquery = BigQuery::open(&options(emulator, "warehouse", &dir.join("staging"))).unwrap();
    let (_, mut bigquery) = run_into(&input, bigquery);
    let day = "2026-01-05";

    let first = session_fact(&mut duckdb, day).unwrap();
    assert!(first.sessions > 10, "{first:?}");
    assert_eq!(first.rewritten, 0);
    assert_eq!(session_fact(&mut bigquery, day).unwrap(), first);

    // The same damage in both (in BigQuery to the rows of the log that the view shows);
    // the job repairs both alike, in BigQuery by appending the repaired rows.
    let damage = "UPDATE {target} SET listen_count = listen_count + 7, listening_time = 0
                  WHERE session_key IN (SELECT session_key FROM {session_fact}
                                        WHERE date_key = 20260105 ORDER BY session_key LIMIT 3)";
    duckdb
        .connection()
        .execute_batch(
            &damage
                .replace("{target}", "session_fact")
                .replace("{session_fact}", "session_fact"),
        )
        .unwrap();
    emulator
        .query(
            &damage
                .replace("{target}", "warehouse.session_fact_log")
                .replace("{session_fact}", "warehouse.session_fact"),
        )
        .unwrap();
    assert_eq!(session_fact(&mut duckdb, day).unwrap().rewritten, 3);
    assert_eq!(session_fact(&mut bigquery, day).unwrap().rewritten, 3);
    assert_eq!(
        session_fact(&mut bigquery, day).unwrap().rewritten,
        0,
        "idempotent"
    );
    assert_same_rows(
        &without_receive_times(&bigquery_tables(emulator, "warehouse").text()),
        &without_receive_times(&duckdb_tables(duckdb.connection()).text()),
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_dataset_of_an_earlier_version_resumes_from_its_checkpoint_and_keeps_its_rows() {
    let scratch = ScratchEmulator::start("pipeline-bq-legacy").unwrap();
    let emulator = scratch.emulator();
    let dir = temp_dir("bq-legacy");
    let partitions = simulated(40, 1, 3, 1);
    let mut transformer = transformer_over(&partitions);
    for partition in &partitions {
        let half = partition.payloads.len() / 2;
        transformer.process((0..half).map(|i| partition.message(i)), 0);
    }
    assert!(!transformer.state().open.is_empty(), "sessions are open");
    // The dataset as an earlier version left it: the state as one JSON string per
    // instance, the offsets in a table of their own, and each table's rows in a table
    // of the name the view of its current rows has now.
    let options = options(emulator, "warehouse", &dir.join("staging"));
    drop(BigQuery::open(&options).unwrap());
    let json = serde_json::to_string(transformer.state()).unwrap();
    let literal = json.replace('\\', "\\\\").replace('\'', "\\'");
    emulator
        .query(&format!(
            "CREATE TABLE warehouse.pipeline_state (instance STRING NOT NULL, format INT64 NOT NULL, state STRING NOT NULL);
             INSERT INTO warehouse.pipeline_state VALUES ('{}', 2, '{literal}');
             CREATE TABLE warehouse.pipeline_offsets (topic STRING NOT NULL, kafka_partition INT64 NOT NULL, next_offset INT64 NOT NULL);
             INSERT INTO warehouse.pipeline_offsets VALUES ('listen_events', 0, 123);
             DROP VIEW warehouse.song_dim;
             CREATE TABLE warehouse.song_dim (song_key INT64 NOT NULL, artist STRING NOT NULL, song STRING NOT NULL);
             INSERT INTO warehouse.song_dim VALUES (42, 'An Artist', 'A Song')",
            options.instance
        ))
        .unwrap();

    let mut sink = BigQuery::open(&options).unwrap();
    let songs = emulator
        .query("SELECT song_key, song FROM warehouse.song_dim")
        .unwrap();
    assert_eq!(
        songs["rows"],
        serde_json::json!([{"f": [{"v": "42"}, {"v": "A Song"}]}]),
        "the earlier table's rows, through the view of its log"
    );
    assert_eq!(sink.state().unwrap().as_ref(), Some(transformer.state()));
    let offsets = sink.offsets().unwrap();
    assert_eq!(offsets[&("listen_events".to_owned(), 0)], 123);
    drop(sink);
    // Moved into the checkpoint log: read from there once the old tables are gone.
    emulator
        .query("DROP TABLE warehouse.pipeline_state; DROP TABLE warehouse.pipeline_offsets")
        .unwrap();
    let mut sink = BigQuery::open(&options).unwrap();
    assert_eq!(sink.state().unwrap().as_ref(), Some(transformer.state()));
    assert_eq!(sink.offsets().unwrap(), offsets);
    std::fs::remove_dir_all(dir).unwrap();
}

/// How many rows the log of `table` in `dataset` holds: every row appended, where the
/// view counts each key once.
fn logged_rows(emulator: &Emulator, dataset: &str, table: &str) -> usize {
    emulator
        .query(&format!("SELECT COUNT(*) AS n FROM {dataset}.{table}_log"))
        .unwrap()["rows"][0]["f"][0]["v"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The flags of a pipeline writing into `dataset` of the emulator through both its APIs,
/// checkpointing in `staging`.
fn sink_flags(emulator: &Emulator, dataset: &str, staging: &Path) -> Vec<String> {
    [
        "--bigquery",
        &format!("{}.{dataset}", xtask::emulator::PROJECT),
        "--staging",
        &staging.display().to_string(),
        "--bigquery-auth",
        "none",
        "--bigquery-endpoint",
        &format!("{}/bigquery/v2", emulator.endpoint()),
        "--bigquery-write-endpoint",
        &emulator.write_endpoint(),
        "--bigquery-emulator",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Two instances of one consumer group append into one dataset with no transaction
/// between them, each with its own checkpoint log; the views hold what one pipeline
/// over the same events holds in DuckDB.
#[test]
fn two_instances_in_one_group_into_one_dataset_hold_what_one_holds() {
    let dir = temp_dir("bq-two");
    let broker = ScratchBroker::start("pipeline-bq-two").unwrap();
    let bootstrap = broker.broker().bootstrap();
    let scratch = ScratchEmulator::start("pipeline-bq-two").unwrap();
    let emulator = scratch.emulator();
    // Connecting creates the topics, four partitions each, before the pipelines start.
    let mut kafka = four_partitions_each(&bootstrap);
    let sink = sink_flags(emulator, "shared", &dir.join("staging"));
    let mut instances: Vec<_> = ["a", "b"]
        .map(|name| {
            let mut flags: Vec<&str> = sink.iter().map(String::as_str).collect();
            flags.extend(["--instance", name, "--checkpoint-every-ms", "1000"]);
            group_member(&dir, &bootstrap, "two-bigquery", name, "10", &flags)
        })
        .into_iter()
        .collect();
    for (log, running) in &mut instances {
        wait_for_assignment(log, 8, running);
    }
    simulate(&mut kafka, 100, 2, 12, 2.0);
    let produced: u64 = kafka.report().delivered.iter().sum();
    drop(kafka);
    let consumed: Vec<u64> = instances
        .iter_mut()
        .map(|(log, running)| consumed_until_exit(log, running))
        .collect();
    assert_eq!(consumed.iter().sum::<u64>(), produced, "{consumed:?}");
    for name in ["a", "b"] {
        let manifests = dir.join(format!(
            "staging/_checkpoints/{}.shared/{name}/manifests",
            xtask::emulator::PROJECT
        ));
        assert!(manifests.is_dir(), "instance {name} has no checkpoint log");
    }

    let one = files_warehouse(&dir, 100);
    let stored = bigquery_tables(emulator, "shared");
    assert!(stored.rows("session_fact").len() > 40);
    assert_same_rows(
        &without_receive_times(&stored.text()),
        &without_receive_times(&warehouse_at(&one).text()),
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Killed (-9) three times wherever it is (appending, committing a checkpoint, flushing
/// the streams), the pipeline resumes to the tables of a clean run, and every log holds
/// each row once: what a killed run appended after its last checkpoint stays unflushed
/// in a stream the next run leaves, and is appended again to the next run's. The
/// emulator runs throughout: it keeps write streams in memory only, where BigQuery
/// keeps them.
#[test]
fn a_pipeline_killed_three_times_writes_the_tables_of_a_clean_run_and_each_row_once() {
    let scratch = ScratchEmulator::start("pipeline-bq-kill").unwrap();
    let emulator = scratch.emulator();
    let dir = temp_dir("bq-kill");
    let clean = files_warehouse(&dir, 150);
    let events = dir.join("events");

    let sink = sink_flags(emulator, "killed", &dir.join("staging"));
    let input = events.display().to_string();
    let mut args: Vec<&str> = vec!["--input", &input];
    args.extend(sink.iter().map(String::as_str));
    args.extend([
        "--batch-max-messages",
        "150",
        "--checkpoint-every-ms",
        "300",
    ]);
    kill_after_batches(&args, &[4, 7, 3]);
    assert!(pipeline(&args).status().unwrap().success());

    let stored = bigquery_tables(emulator, "killed");
    let expected = warehouse_at(&clean);
    assert!(expected.rows("event_fact").len() > 500);
    assert_same_rows(
        &without_receive_times(&stored.text()),
        &without_receive_times(&expected.text()),
    );
    for table in ["event_dim", "event_session_bridge", "event_fact"] {
        assert_eq!(
            logged_rows(emulator, "killed", table),
            expected.rows(table).len(),
            "{table}_log"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
