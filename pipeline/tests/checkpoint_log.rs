//! The checkpoint log in object storage (BigQuery's checkpoints), on a local directory
//! and on a real Cloud Storage API emulator (`cargo xtask gcs`, fsouza's
//! fake-gcs-server) through the same credentials path as production: the state read
//! back equals the state checkpointed batch by batch, the log folds itself into a base
//! as it grows, offsets are the furthest any instance wrote, and a second pipeline of
//! one instance fences out the first, by the store's refusal to create a name twice.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use pipeline::error::PipelineError;
use pipeline::sinks::{BigQuery, CheckpointLog, Sink, Staging, StreamRows};
use xtask::gcs::{BUCKET, ScratchGcs};

use common::{simulated, temp_dir, transformer_over};

/// Where the GCS run of the scenarios writes, set by the test that starts the emulator.
const LOCATION_VARIABLE: &str = "CHECKPOINT_LOG_TEST_LOCATION";

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    )
}

fn staging(location: &str) -> Staging {
    Staging::open(location, runtime()).unwrap()
}

/// A day of 1,500 users in 40 batches, each checkpointed; the log read back after each
/// tenth holds the transformation's state and offsets, and it has folded its objects
/// into a base on the way (the state objects in force are fewer than the checkpoints).
fn a_state_checkpointed_batch_by_batch_reads_back_whole(location: &str) {
    let partitions = simulated(1_500, 1, 5, 2);
    let mut transformer = transformer_over(&partitions);
    let mut log = CheckpointLog::open(&staging(location), "p.d", "stream").unwrap();
    assert!(log.state().unwrap().is_none(), "a new log holds no state");
    let batches = 40;
    let mut next = vec![0_usize; partitions.len()];
    let mut folded = false;
    for batch in 1..=batches {
        let mut offsets = Vec::new();
        let mut messages = Vec::new();
        for (p, partition) in partitions.iter().enumerate() {
            let end = partition.payloads.len() * batch / batches;
            messages.extend((next[p]..end).map(|i| partition.message(i)));
            next[p] = end;
            offsets.push((partition.topic.clone(), partition.partition, end as i64));
        }
        transformer.process(messages, 0);
        if batch == batches {
            transformer.finish();
        }
        let records = BigQuery::snapshot(transformer.state(), transformer.changes()).unwrap();
        let objects_before = log.objects();
        let streams = [StreamRows {
            table: "song_dim_log".to_owned(),
            stream: format!("streams/{}", batch % 3),
            rows: batch as i64,
        }];
        let cost = log.commit(&records, &offsets, &streams).unwrap();
        transformer.checkpointed();
        assert!(cost.bytes > 0);
        folded |= log.objects() < objects_before + 1;
        if batch % 10 == 0 {
            let reopened = CheckpointLog::open(&staging(location), "p.d", "stream").unwrap();
            assert_eq!(
                reopened.state().unwrap().as_ref(),
                Some(transformer.state()),
                "after batch {batch}"
            );
            assert_eq!(
                reopened.streams(),
                streams,
                "the streams after batch {batch}"
            );
            let stored = reopened.offsets().unwrap();
            for (topic, partition, next) in &offsets {
                assert_eq!(stored[&(topic.clone(), *partition)], *next);
            }
            // The reopening claimed the log: the pipeline writing it goes on as the
            // new owner, as a restarted one would.
            log = reopened;
        }
    }
    assert!(folded, "40 checkpoints never folded the log into a base");
}

/// A partition's offset is the furthest of any instance's of one warehouse: partitions
/// move between instances of a group only forward.
fn offsets_are_the_furthest_any_instance_wrote(location: &str) {
    let mut a = CheckpointLog::open(&staging(location), "p.d", "a").unwrap();
    let mut b = CheckpointLog::open(&staging(location), "p.d", "b").unwrap();
    let records = pipeline::transforms::state::Records::default();
    let topic = "listen_events".to_owned();
    a.commit(
        &records,
        &[(topic.clone(), 0, 10), (topic.clone(), 1, 5)],
        &[],
    )
    .unwrap();
    b.commit(&records, &[(topic.clone(), 0, 20)], &[]).unwrap();
    // A pipeline of another warehouse sharing the bucket reads and moves none of them.
    let mut other = CheckpointLog::open(&staging(location), "p.other", "a").unwrap();
    other
        .commit(&records, &[(topic.clone(), 0, 99)], &[])
        .unwrap();
    for log in [&a, &b] {
        let offsets = log.offsets().unwrap();
        assert_eq!(offsets[&(topic.clone(), 0)], 20);
        assert_eq!(offsets[&(topic.clone(), 1)], 5);
        assert_eq!(offsets.len(), 2);
    }
    assert_eq!(other.offsets().unwrap()[&(topic.clone(), 0)], 99);
}

/// A pipeline started as an instance that another still runs as claims the log; the
/// older one's next commit is refused, and the newer one goes on.
fn a_second_pipeline_of_one_instance_fences_out_the_first(location: &str) {
    let records = pipeline::transforms::state::Records::default();
    let offsets = [("listen_events".to_owned(), 0, 7)];
    let mut first = CheckpointLog::open(&staging(location), "p.d", "i").unwrap();
    first.commit(&records, &offsets, &[]).unwrap();
    let mut second = CheckpointLog::open(&staging(location), "p.d", "i").unwrap();
    assert_eq!(
        second.head(),
        (3, 2),
        "claimed with the next number and epoch"
    );
    let error = first.commit(&records, &offsets, &[]).unwrap_err();
    assert!(matches!(error, PipelineError::Fenced(_)), "{error}");
    assert!(error.to_string().contains("--instance"), "{error}");
    second.commit(&records, &offsets, &[]).unwrap();
    assert_eq!(second.head(), (4, 2));
    let third = CheckpointLog::open(&staging(location), "p.d", "i").unwrap();
    assert_eq!(third.head(), (5, 3));
}

#[test]
fn a_local_log_reads_back_the_state_and_fences() {
    let dir = temp_dir("checkpoint-log-local");
    let location = dir.display().to_string();
    a_state_checkpointed_batch_by_batch_reads_back_whole(&format!("{location}/one"));
    offsets_are_the_furthest_any_instance_wrote(&format!("{location}/two"));
    a_second_pipeline_of_one_instance_fences_out_the_first(&format!("{location}/three"));
    // The fenced pipeline's state object was written before its manifest was refused;
    // the last claim removed it with the stale manifests.
    let folder = dir.join("three/_checkpoints/p.d/i");
    let names = |sub: &str| {
        let mut names: Vec<String> = std::fs::read_dir(folder.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names("manifests"), ["00000000000000000005.json"]);
    assert_eq!(
        names("state"),
        [
            "00000000000000000002-1.records",
            "00000000000000000004-2.records"
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_log_on_the_cloud_storage_emulator_reads_back_the_state_and_fences() {
    let scratch = ScratchGcs::start("checkpoint-log").unwrap();
    // object_store reads its credentials from the environment, as in production; the
    // scenarios run in a child process of this test binary whose environment holds a
    // key that points at the emulator, since this process may not change its own.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "the_scenarios_on_gcs",
            "--nocapture",
        ])
        .env(
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            scratch.gcs().service_account_key(),
        )
        .env(LOCATION_VARIABLE, format!("gs://{BUCKET}/checkpoint-log"))
        .status()
        .unwrap();
    assert!(status.success(), "the scenarios failed on GCS: {status}");
    // What the fencing scenario's last claim left in the bucket, as its JSON API lists
    // it: the stale manifests and the fenced pipeline's state object were deleted.
    let (code, listing) = xtask::process::http(
        scratch.gcs().port,
        "GET",
        &format!("/storage/v1/b/{BUCKET}/o?prefix=checkpoint-log/three/"),
        "",
    )
    .unwrap();
    assert_eq!(code, 200, "{listing}");
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let mut names: Vec<&str> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "checkpoint-log/three/_checkpoints/p.d/i/manifests/00000000000000000005.json",
            "checkpoint-log/three/_checkpoints/p.d/i/state/00000000000000000002-1.records",
            "checkpoint-log/three/_checkpoints/p.d/i/state/00000000000000000004-2.records",
        ]
    );
}

#[test]
#[ignore = "run by the test above, in a process whose environment points at the emulator"]
fn the_scenarios_on_gcs() {
    let location = std::env::var(LOCATION_VARIABLE).unwrap_or_else(|_| {
        panic!("{LOCATION_VARIABLE} is unset: run a_log_on_the_cloud_storage_emulator_… instead")
    });
    assert!(location.starts_with("gs://"), "{location}");
    a_state_checkpointed_batch_by_batch_reads_back_whole(&format!("{location}/one"));
    offsets_are_the_furthest_any_instance_wrote(&format!("{location}/two"));
    a_second_pipeline_of_one_instance_fences_out_the_first(&format!("{location}/three"));
}

#[test]
fn a_manifest_of_another_format_is_refused_with_its_format() {
    let dir = temp_dir("checkpoint-log-format");
    let location = dir.display().to_string();
    CheckpointLog::open(&staging(&location), "p.d", "i").unwrap();
    let manifest = dir.join("_checkpoints/p.d/i/manifests/00000000000000000001.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = text.replace("\"format\": 1", "\"format\": 99");
    assert_ne!(changed, text);
    std::fs::write(&manifest, changed).unwrap();
    let error = CheckpointLog::open(&staging(&location), "p.d", "i").unwrap_err();
    assert!(error.to_string().contains("format 99"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}
