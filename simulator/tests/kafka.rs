//! The simulator's Kafka output against a real broker (the one `cargo xtask kafka`
//! starts, from Maven Central's jars): topics are created with the asked partition count,
//! every event arrives once with the same bytes as the file output, keyed by user (or
//! session), and each key's events keep their order within its partition.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use warehouse::raw::{EventKind, RawEvent};
use xtask::kafka::ScratchBroker;

const RUN: [&str; 7] = ["-n", "300", "-s", "2026-03-02", "-e", "2026-03-06", "-r"];

#[test]
fn events_reach_kafka_once_in_per_key_order_with_the_file_bytes() {
    let scratch = ScratchBroker::start("simulator-test").unwrap();
    let broker = scratch.broker();
    let bootstrap = broker.bootstrap();
    let state = &broker.state_dir;

    let files = state.join("files");
    let mut args = RUN.to_vec();
    args.extend(["7", "--output-dir", files.to_str().unwrap(), "-q"]);
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut args = RUN.to_vec();
    args.extend([
        "7",
        "-k",
        &bootstrap,
        "--partitions",
        "3",
        "--topic",
        "listen_events=listens",
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_simulator"))
        .args(&args)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    assert!(summary.contains("0 failed"), "{summary}");

    let topics = [
        (EventKind::Listen, "listens"),
        (EventKind::PageView, "page_view_events"),
        (EventKind::Auth, "auth_events"),
        (EventKind::StatusChange, "status_change_events"),
    ];
    let expected: HashMap<&str, Vec<String>> = topics
        .iter()
        .map(|(kind, topic)| {
            let text =
                std::fs::read_to_string(files.join(format!("{}.jsonl", kind.topic()))).unwrap();
            (*topic, text.lines().map(str::to_owned).collect())
        })
        .collect();
    let total: usize = expected.values().map(Vec::len).sum();
    assert!(total > 2_000, "{total} events");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "simulator-test")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some("listens"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 3);
    consumer.subscribe(&topics.map(|(_, topic)| topic)).unwrap();

    // Per topic, the messages as (partition, offset, key, payload).
    let mut received: HashMap<String, Vec<(i32, i64, String, String)>> = HashMap::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while count < total && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        received
            .entry(message.topic().to_owned())
            .or_default()
            .push((message.partition(), message.offset(), key, payload));
        count += 1;
    }
    // Nothing more than expected arrives either.
    assert!(consumer.poll(Duration::from_secs(2)).is_none());

    for (kind, topic) in topics {
        let mut messages = received.remove(topic).unwrap_or_default();
        let mut payloads: Vec<&String> = messages.iter().map(|m| &m.3).collect();
        let mut lines: Vec<&String> = expected[topic].iter().collect();
        payloads.sort();
        lines.sort();
        assert_eq!(payloads, lines, "{topic}");

        messages.sort_by_key(|m| (m.0, m.1));
        let mut last_ts: HashMap<(i32, String), i64> = HashMap::new();
        let mut partitions = std::collections::HashSet::new();
        for (partition, _, key, payload) in &messages {
            let event = RawEvent::parse(kind, payload.as_bytes()).unwrap();
            let expected_key = event
                .user()
                .map_or(event.context().session_id, |u| u.user_id);
            assert_eq!(key, &expected_key.to_string(), "{topic}");
            let ts = event.context().ts;
            let previous = last_ts
                .insert((*partition, key.clone()), ts)
                .unwrap_or(i64::MIN);
            assert!(ts >= previous, "{topic}: key {key} went back in time");
            partitions.insert(*partition);
        }
        if messages.len() > 100 {
            assert_eq!(partitions.len(), 3, "{topic} used {partitions:?}");
        }
    }
}
