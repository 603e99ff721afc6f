//! The pipeline into its DuckDB warehouse: the golden events land row for row, a
//! pipeline killed (-9) at arbitrary points and restarted ends with the same tables as
//! a clean run, Kafka and files give the same warehouse, and two instances in one
//! consumer group split the partitions and together hold what one would. Uses the real
//! broker of `cargo xtask kafka`.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::processes::{
    Running, consumed_until_exit, files_warehouse, four_partitions_each, group_member,
    kill_after_batches, pipeline, spawn, wait_for_assignment, warehouse_at,
};
use common::{
    Silent, Warehouse, assert_same_rows, duckdb_tables, simulate, temp_dir, without_receive_times,
};
use pipeline::runner::{Runner, Until};
use pipeline::sinks::{DuckDb, columnar};
use pipeline::sources::{BatchLimits, Polled, Record, Source};
use pipeline::transforms::Config;
use serde::Deserialize;
use simulator::sinks::{Files, Kafka, KafkaOptions};
use warehouse::raw::EventKind;
use xtask::kafka::ScratchBroker;

#[derive(Deserialize)]
struct Line {
    batch: usize,
    topic: String,
    partition: i32,
    offset: i64,
    payload: String,
}

/// The golden messages, delivered in their batches.
struct Golden(Vec<Vec<Record>>);

impl Source for Golden {
    fn poll(&mut self, _: &BatchLimits) -> Result<Polled, pipeline::PipelineError> {
        Ok(if self.0.is_empty() {
            Polled::End
        } else {
            Polled::Records(self.0.remove(0))
        })
    }

    fn partitions(&self) -> Vec<(EventKind, String, i32)> {
        EventKind::ALL
            .iter()
            .map(|k| (*k, k.topic().to_owned(), 0))
            .collect()
    }

    fn commit(&mut self, _: &[(String, i32, i64)]) -> Result<(), pipeline::PipelineError> {
        Ok(())
    }
}

/// Dead letters carry the time they were received; masked for comparison.
#[test]
fn golden_events_land_in_duckdb_row_for_row() {
    let dir = temp_dir("golden");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let lines: Vec<Line> = std::fs::read_to_string(golden.join("messages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut batches = vec![Vec::new(); 2];
    for l in lines {
        batches[l.batch - 1].push(Record {
            kind: EventKind::from_topic(&l.topic).unwrap(),
            topic: l.topic,
            partition: l.partition,
            offset: l.offset,
            payload: l.payload.into_bytes(),
        });
    }
    let sink = DuckDb::open(&dir.join("w.duckdb")).unwrap();
    let mut runner = Runner::new(
        Golden(batches),
        sink,
        Config::default(),
        BatchLimits::default(),
    )
    .unwrap();
    let totals = runner
        .run(Until::Stopped, &AtomicBool::new(false), &mut Silent)
        .unwrap();
    assert_eq!(totals.stats.consumed, 38);
    let stored = duckdb_tables(runner.sink().connection());
    let expected = std::fs::read_to_string(golden.join("expected.txt")).unwrap();
    assert_eq!(
        without_receive_times(&stored.text()),
        without_receive_times(&expected)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs the pipeline from the broker into a DuckDB file until it has been idle 4 s.
fn consume_until_idle(bootstrap: &str, duckdb: &Path) -> std::process::ExitStatus {
    pipeline(&[
        "--kafka-brokers",
        bootstrap,
        "--duckdb",
        duckdb.to_str().unwrap(),
        "--exit-when-idle-s",
        "4",
        "--batch-max-ms",
        "300",
    ])
    .status()
    .unwrap()
}

/// The one integer a query answers, such as `SELECT count(*) ...`.
fn count(connection: &duckdb::Connection, sql: &str) -> i64 {
    connection.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every table of `a` holds the rows `b`'s does; `after` says what `b` went through.
fn assert_same_tables(a: &Warehouse, b: &Warehouse, after: &str) {
    for table in warehouse::schema::TABLES {
        assert!(
            a.rows(table.name) == b.rows(table.name),
            "{} differs {after}",
            table.name
        );
    }
}

#[test]
fn a_pipeline_killed_at_any_point_resumes_to_the_same_tables() {
    let dir = temp_dir("crash");
    let events = dir.join("events");
    let mut files = Files::create(&events, false).unwrap();
    simulate(&mut files, 300, 3, 12, 2.0);
    drop(files);
    let input = events.to_str().unwrap();

    let clean = dir.join("clean.duckdb");
    let status = pipeline(&["--input", input, "--duckdb", clean.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());

    let crashed = dir.join("crashed.duckdb");
    let crashed_arg = crashed.to_str().unwrap();
    let small = ["--batch-max-messages", "150"];
    // Three rounds: each is killed (-9) once it has written a few more batches, wherever
    // it then is: polling, transforming or inside the warehouse's transaction, where
    // its rows are appended with the batch's checkpoint.
    kill_after_batches(
        &[
            "--input",
            input,
            "--duckdb",
            crashed_arg,
            small[0],
            small[1],
        ],
        &[3, 5, 2],
    );
    let status = pipeline(&["--input", input, "--duckdb", crashed_arg])
        .args(small)
        .status()
        .unwrap();
    assert!(status.success());

    let (a, b) = (warehouse_at(&clean), warehouse_at(&crashed));
    assert!(a.rows("event_fact").len() > 1_000);
    assert_same_tables(&a, &b, "after crashes");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A scratch broker holding simulated events in three partitions per topic, and the
/// warehouse a run over the same events as files gives.
fn kafka_and_files(dir: &Path, name: &str) -> (ScratchBroker, PathBuf) {
    let scratch = ScratchBroker::start(name).unwrap();
    simulate_to_kafka(&scratch.broker().bootstrap(), 3, "lz4", 100, 2, 12);
    (scratch, files_warehouse(dir, 100))
}

/// Simulates users (growth 2.0) into the broker's four topics, created with the given
/// partitions, and returns the events the broker acknowledged per topic.
fn simulate_to_kafka(
    bootstrap: &str,
    partitions: i32,
    compression: &str,
    users: u32,
    days: i64,
    seed: u64,
) -> [u64; 4] {
    let mut kafka = Kafka::connect(KafkaOptions {
        brokers: bootstrap.to_owned(),
        topics: EventKind::ALL.map(|k| k.topic().to_owned()),
        partitions,
        replication_factor: 1,
        compression: compression.to_owned(),
        tag: None,
        settings: Vec::new(),
    })
    .unwrap();
    simulate(&mut kafka, users, days, seed, 2.0);
    kafka.report().delivered
}

#[test]
fn kafka_and_files_give_the_same_warehouse() {
    let dir = temp_dir("kafka");
    let (scratch, from_files) = kafka_and_files(&dir, "pipeline-test");
    let bootstrap = scratch.broker().bootstrap();
    let from_kafka = dir.join("kafka.duckdb");
    let status = consume_until_idle(&bootstrap, &from_kafka);
    assert!(status.success());
    let (a, b) = (warehouse_at(&from_files), warehouse_at(&from_kafka));
    assert!(a.rows("session_fact").len() > 100);
    assert_same_tables(&a, &b, "between files and Kafka");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A message read back from a dead-letter topic.
struct DeadLetterMessage {
    topic: String,
    payload: Vec<u8>,
    headers: std::collections::BTreeMap<String, String>,
}

/// Reads the given dead-letter topics from their start until `want` distinct payloads
/// have come, waiting up to a minute; fewer if fewer arrive. Dead letters are sent at
/// least once (again after a crash, or after a delivery that failed while the broker was
/// away), so a payload may come twice; counting messages would stop short of one sent
/// last.
fn read_dead_letters(bootstrap: &str, topics: &[&str], want: usize) -> Vec<DeadLetterMessage> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;

    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "dead-letter-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(topics).unwrap();
    let mut read = Vec::new();
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..120 {
        if distinct.len() == want {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            distinct.insert(m.payload().unwrap_or_default().to_vec());
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .filter_map(|h| {
                            let value = String::from_utf8_lossy(h.value?).into_owned();
                            Some((h.key.to_owned(), value))
                        })
                        .collect()
                })
                .unwrap_or_default();
            read.push(DeadLetterMessage {
                topic: m.topic().to_owned(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
    }
    read
}

/// GET `path` on the pipeline's HTTP endpoint: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    xtask::process::http(port, "GET", path, "").ok()
}

#[test]
fn malformed_kafka_messages_reach_the_dead_letter_topic_and_the_metrics_and_dashboard_answer() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

    let dir = temp_dir("dlq");
    let scratch = ScratchBroker::start("pipeline-dlq-test").unwrap();
    let bootstrap = scratch.broker().bootstrap();
    let produced: u64 = simulate_to_kafka(&bootstrap, 2, "none", 40, 1, 12)
        .iter()
        .sum();
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let bad: [&[u8]; 3] = [b"not json", b"{\"ts\":1}", b""];
    for payload in bad {
        producer
            .send(BaseRecord::<(), [u8]>::to("page_view_events").payload(payload))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let port = xtask::kafka::free_port_pair();
    let duckdb = dir.join("w.duckdb");
    let mut child = spawn(&mut pipeline(&[
        "--kafka-brokers",
        &bootstrap,
        "--duckdb",
        duckdb.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--exit-when-idle-s",
        "6",
        "--batch-max-ms",
        "300",
    ]));
    let expected = produced + bad.len() as u64;
    let mut consumed = 0;
    let mut ready = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        if let Some((200, _)) = http_get(port, "/readyz") {
            ready = true;
        }
        if let Some((200, body)) = http_get(port, "/metrics") {
            consumed = body
                .lines()
                .filter(|l| l.starts_with("pipeline_messages_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            if consumed == expected {
                assert!(
                    body.contains("pipeline_dead_letters_total{reason=\"invalid_json\"} 1"),
                    "{body}"
                );
                assert!(
                    body.contains("pipeline_dead_letters_total{reason=\"empty\"} 1"),
                    "{body}"
                );
                assert!(body.contains("pipeline_consumer_lag"), "{body}");
                assert_eq!(http_get(port, "/healthz").map(|r| r.0), Some(200));
                // The live dashboard reads the warehouse being written, and reloads.
                let (status, page) = http_get(port, "/dashboard").unwrap();
                assert_eq!(status, 200);
                assert!(page.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
                assert!(page.contains("\"source\":\"DuckDB "), "{}", &page[..200]);
                break;
            }
        }
    }
    assert!(ready, "/readyz never answered 200");
    assert_eq!(
        consumed, expected,
        "the metrics never counted every message"
    );
    assert!(child.0.wait().unwrap().success());

    // The warehouse and the dead-letter topic hold the three, byte for byte.
    let connection = duckdb::Connection::open(&duckdb).unwrap();
    let mut statement = connection
        .prepare("SELECT payload, reason FROM dead_letters ORDER BY source_offset")
        .unwrap();
    let stored: Vec<(Vec<u8>, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut stored_payloads: Vec<Vec<u8>> = stored.iter().map(|(p, _)| p.clone()).collect();
    stored_payloads.sort();
    let mut sent: Vec<Vec<u8>> = bad.iter().map(|b| b.to_vec()).collect();
    sent.sort();
    assert_eq!(stored_payloads, sent);

    let dlq = read_dead_letters(&bootstrap, &["page_view_events.dlq"], 3);
    let mut dlq_payloads: Vec<Vec<u8>> = dlq.iter().map(|m| m.payload.clone()).collect();
    dlq_payloads.sort();
    assert_eq!(dlq_payloads, sent);
    assert!(dlq.iter().all(|m| m.headers.contains_key("reason")));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A source topic that takes 16 MB messages receives an 11 MB malformed one ahead of
/// valid events. Its dead-letter topic either did not exist (the pipeline creates it
/// with the source's limit, and the copy goes whole) or existed with the broker's 1 MB
/// default (the copy goes truncated, its headers saying so). Either way the valid
/// events behind it land, the table holds it whole, and the pipeline exits 0.
#[test]
fn an_oversized_dead_letter_never_stops_the_pipeline() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

    let dir = temp_dir("dlq-oversized");
    let scratch = ScratchBroker::start("pipeline-dlq-oversized").unwrap();
    let bootstrap = scratch.broker().bootstrap();
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let sixteen_mb = (16 << 20).to_string();
    let mut topics: Vec<NewTopic<'_>> = EventKind::ALL
        .iter()
        .map(|k| {
            NewTopic::new(k.topic(), 2, TopicReplication::Fixed(1))
                .set("max.message.bytes", &sixteen_mb)
        })
        .collect();
    // This dead-letter topic exists already, with the broker's default limit.
    topics.push(NewTopic::new(
        "page_view_events.dlq",
        1,
        TopicReplication::Fixed(1),
    ));
    for result in
        futures_executor::block_on(admin.create_topics(&topics, &AdminOptions::new())).unwrap()
    {
        result.unwrap();
    }

    // The oversized records first, in partition 0, so that valid events follow them.
    let huge: Vec<u8> = (0..11 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.max.bytes", (20 << 20).to_string())
        .create()
        .unwrap();
    for topic in ["listen_events", "page_view_events"] {
        producer
            .send(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition(0)
                    .payload(&huge[..]),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let delivered = simulate_to_kafka(&bootstrap, 2, "none", 40, 1, 13);

    let duckdb = dir.join("w.duckdb");
    let status = consume_until_idle(&bootstrap, &duckdb);
    assert!(status.success(), "the pipeline exited with {status}");

    // Every valid page view landed; both oversized records are dead letters, whole.
    let connection = duckdb::Connection::open(&duckdb).unwrap();
    assert_eq!(
        count(&connection, "SELECT count(*) FROM event_dim") as u64,
        delivered[EventKind::PageView.index()]
    );
    assert_eq!(
        count(
            &connection,
            "SELECT count(*) FROM dead_letters WHERE reason = 'too_large'"
        ),
        2
    );
    assert_eq!(
        count(
            &connection,
            "SELECT min(octet_length(payload)) FROM dead_letters"
        ),
        huge.len() as i64
    );

    // On the topics: whole where the pipeline created the dead-letter topic, truncated
    // with its size and digest where the topic was too small.
    let seen: std::collections::BTreeMap<String, _> = read_dead_letters(
        &bootstrap,
        &["listen_events.dlq", "page_view_events.dlq"],
        2,
    )
    .into_iter()
    .map(|m| {
        let header = |key: &str| m.headers.get(key).cloned();
        let summary = (
            m.payload.len(),
            header("truncated"),
            header("original_bytes"),
            header("original_sha256"),
        );
        (m.topic, summary)
    })
    .collect();
    assert_eq!(seen["listen_events.dlq"], (huge.len(), None, None, None));
    let (bytes, truncated, original, digest) = &seen["page_view_events.dlq"];
    assert_eq!(*bytes, 64 * 1024);
    assert_eq!(truncated.as_deref(), Some("true"));
    assert_eq!(original.as_deref(), Some(huge.len().to_string().as_str()));
    let expected: String = ring::digest::digest(&ring::digest::SHA256, &huge)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest.as_deref(), Some(expected.as_str()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_session_fact_batch_job_repairs_a_day_and_is_idempotent() {
    let dir = temp_dir("batch");
    let events = dir.join("events");
    let mut files = Files::create(&events, false).unwrap();
    simulate(&mut files, 80, 2, 12, 2.0);
    drop(files);
    let topics: Vec<(EventKind, String)> = EventKind::ALL
        .iter()
        .map(|k| (*k, k.topic().to_owned()))
        .collect();
    let source = pipeline::sources::files::Files::open(&events, &topics).unwrap();
    let path = dir.join("w.duckdb");
    let sink = DuckDb::open(&path).unwrap();
    let mut runner = Runner::new(source, sink, Config::default(), BatchLimits::default()).unwrap();
    runner
        .run(Until::Stopped, &AtomicBool::new(false), &mut Silent)
        .unwrap();
    drop(runner);
    let mut sink = DuckDb::open(&path).unwrap();

    // The streaming core and the batch job agree: nothing to do.
    let first = pipeline::batch::session_fact(&mut sink, "2026-01-05").unwrap();
    assert!(first.sessions > 50, "{first:?}");
    assert_eq!(first.rewritten, 0);
    let before = duckdb_tables(sink.connection());

    // Damage three sessions of the day; the job writes new versions that repair them.
    sink.connection()
        .execute_batch(
            "UPDATE session_fact SET listen_count = listen_count + 7, listening_time = 0
             WHERE session_key IN (SELECT session_key FROM session_fact
                                   WHERE date_key = 20260105 ORDER BY session_key LIMIT 3)",
        )
        .unwrap();
    let repaired = pipeline::batch::session_fact(&mut sink, "2026-01-05").unwrap();
    assert_eq!(repaired.rewritten, 3);
    let after = duckdb_tables(sink.connection());
    let current = |w: &Warehouse| -> Vec<String> {
        w.rows("session_fact")
            .into_iter()
            .filter(|r| r.ends_with("is_record_valid=true"))
            .map(|r| r.split(" record_valid_from=").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        current(&after),
        current(&before),
        "the repaired values differ"
    );
    assert_eq!(
        after.rows("session_fact").len(),
        before.rows("session_fact").len() + 3,
        "the damaged rows are kept as closed versions"
    );

    // Again: nothing changes.
    let again = pipeline::batch::session_fact(&mut sink, "2026-01-05").unwrap();
    assert_eq!(again.rewritten, 0);
    assert_eq!(duckdb_tables(sink.connection()), after);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_broker_restart_during_a_run_loses_nothing() {
    let dir = temp_dir("restart");
    let (scratch, from_files) = kafka_and_files(&dir, "pipeline-restart-test");
    let broker = scratch.broker();
    let bootstrap = broker.bootstrap();

    // Small batches, so that the run is still going when the broker goes away.
    let from_kafka = dir.join("kafka.duckdb");
    let port = xtask::kafka::free_port_pair();
    let listen = format!("127.0.0.1:{port}");
    let mut child = spawn(
        pipeline(&[
            "--listen",
            &listen,
            "--kafka-brokers",
            &bootstrap,
            "--duckdb",
            from_kafka.to_str().unwrap(),
            "--exit-when-idle-s",
            "3",
            "--batch-max-messages",
            "50",
            "--batch-max-ms",
            "200",
        ])
        .stderr(Stdio::null()),
    );
    // Stop the broker as soon as the pipeline has consumed something.
    for _ in 0..200 {
        if xtask::process::metric(port, "pipeline_messages_total").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.stop().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the pipeline gave up while the broker was down"
    );
    broker.start().unwrap();
    assert!(child.0.wait().unwrap().success());
    let (a, b) = (warehouse_at(&from_files), warehouse_at(&from_kafka));
    assert_same_tables(&a, &b, "after a broker restart");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A group member writing `<name>.duckdb` in `dir`: its log, warehouse and process.
fn duckdb_member(
    dir: &Path,
    bootstrap: &str,
    group: &str,
    name: &str,
    idle_s: &str,
) -> (PathBuf, PathBuf, Running) {
    let warehouse = dir.join(format!("{name}.duckdb"));
    let (log, running) = group_member(
        dir,
        bootstrap,
        group,
        name,
        idle_s,
        &["--duckdb", warehouse.to_str().unwrap()],
    );
    (log, warehouse, running)
}

/// A member that loses partitions to another joining the group stops waiting for their
/// event time: its checkpointed clocks are those of the partitions it kept. (A clock
/// left behind would hold its watermark back, and no session would close before the
/// end.)
#[test]
fn partitions_revoked_from_an_instance_leave_its_watermark() {
    let dir = temp_dir("revoked");
    let scratch = ScratchBroker::start("pipeline-revoked-test").unwrap();
    let bootstrap = scratch.broker().bootstrap();
    let mut kafka = four_partitions_each(&bootstrap);
    let member =
        |name: &str, idle_s: &str| duckdb_member(&dir, &bootstrap, "revoked", name, idle_s);
    // The first member alone holds all sixteen partitions, then gives half to the
    // second; the second outlasts it, so the first never gets them back.
    let (a_log, a_warehouse, mut a) = member("a", "5");
    wait_for_assignment(&a_log, 16, &mut a);
    let (b_log, _, mut b) = member("b", "15");
    wait_for_assignment(&b_log, 8, &mut b);
    wait_for_assignment(&a_log, 8, &mut a);
    simulate(&mut kafka, 60, 1, 12, 2.0);
    let produced: u64 = kafka.report().delivered.iter().sum();
    drop(kafka);
    let consumed = consumed_until_exit(&a_log, &mut a) + consumed_until_exit(&b_log, &mut b);
    assert_eq!(consumed, produced);
    let text = std::fs::read_to_string(&a_log).unwrap();
    assert!(text.contains("the group revoked partitions"), "{text}");
    // Page views and listens carry sessions: two topics, two partition numbers kept.
    let state = DuckDb::open(&a_warehouse)
        .unwrap()
        .stored_state()
        .unwrap()
        .unwrap();
    assert_eq!(state.clocks.len(), 4, "{:?}", state.clocks);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_instances_in_one_group_split_the_partitions_and_together_equal_one() {
    let dir = temp_dir("two");
    let scratch = ScratchBroker::start("pipeline-two-test").unwrap();
    let bootstrap = scratch.broker().bootstrap();
    // Connecting creates the topics, four partitions each, before the pipelines start.
    let mut kafka = four_partitions_each(&bootstrap);
    let mut instances: Vec<_> = ["a", "b"]
        .map(|name| duckdb_member(&dir, &bootstrap, "two", name, "10"))
        .into_iter()
        .collect();
    // Both members in: each holds two partition numbers of each of the four topics.
    for (log, _, running) in &mut instances {
        wait_for_assignment(log, 8, running);
    }
    simulate(&mut kafka, 100, 2, 12, 2.0);
    let produced: u64 = kafka.report().delivered.iter().sum();
    drop(kafka);
    // Each consumed a share; the one that finishes first leaves the group, and the
    // other may take its partitions over with nothing left on them.
    let consumed: Vec<u64> = instances
        .iter_mut()
        .map(|(log, _, running)| consumed_until_exit(log, running))
        .collect();
    assert_eq!(consumed.iter().sum::<u64>(), produced, "{consumed:?}");

    let one = files_warehouse(&dir, 100);

    let (a, b) = (warehouse_at(&instances[0].1), warehouse_at(&instances[1].1));
    assert!(a.rows("session_fact").len() > 20 && b.rows("session_fact").len() > 20);
    let mut union = a.clone();
    for (table, rows) in &b.tables {
        let merged = union.tables.entry(table).or_default();
        for (key, row) in rows {
            if let Some(existing) = merged.insert(key.clone(), row.clone()) {
                assert_eq!(&existing, row, "{table} {key}: the instances disagree");
            }
        }
    }
    assert_same_rows(
        &without_receive_times(&union.text()),
        &without_receive_times(&warehouse_at(&one).text()),
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn standard_input_gives_the_warehouse_the_files_give() {
    use std::io::Write as _;
    let dir = temp_dir("stdin");
    let from_files = files_warehouse(&dir, 60);

    // What `simulator --stdout` writes: every kind interleaved, one event a line.
    let mut memory = simulator::sinks::Memory::default();
    simulate(&mut memory, 60, 2, 12, 2.0);
    let from_stdin = dir.join("stdin.duckdb");
    let mut child = spawn(
        pipeline(&["--input", "-", "--duckdb", from_stdin.to_str().unwrap()]).stdin(Stdio::piped()),
    );
    {
        let mut stdin = child.0.stdin.take().unwrap();
        for (_, _, json) in &memory.events {
            stdin.write_all(json).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    assert!(child.0.wait().unwrap().success());
    let (a, b) = (warehouse_at(&from_files), warehouse_at(&from_stdin));
    assert!(a.rows("session_fact").len() > 20);
    assert_same_rows(&b.text(), &a.text());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn readers_refuse_a_missing_warehouse_instead_of_creating_an_empty_one() {
    let dir = temp_dir("missing");
    let path = dir.join("typo.duckdb");
    for args in [
        vec!["dashboard", "--duckdb"],
        vec!["check", "all", "--date", "2026-01-05", "--duckdb"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("no warehouse at"), "{stderr}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }
}

/// DuckDB cannot write its log while a folder stands where the file would go (root too
/// is refused), which the test puts there after a checkpoint has removed the log: the
/// runner retries the first batch, says not ready meanwhile, and once the folder is gone
/// writes what a run that never failed writes.
#[test]
fn a_warehouse_unwritable_for_a_while_is_retried_and_ends_as_a_clean_run() {
    use pipeline::runner::Retry;
    use pipeline::sources::files::Files as FileSource;

    let dir = temp_dir("unwritable");
    let clean = files_warehouse(&dir, 60);
    let path = dir.join("retried.duckdb");
    let sink = DuckDb::open(&path).unwrap();
    sink.connection().execute_batch("CHECKPOINT").unwrap();
    let log = dir.join("retried.duckdb.wal");
    assert!(!log.exists(), "a checkpoint leaves no log");
    std::fs::create_dir(&log).unwrap();

    let topics: Vec<(EventKind, String)> = EventKind::ALL
        .iter()
        .map(|k| (*k, k.topic().to_owned()))
        .collect();
    let source = FileSource::open(&dir.join("events"), &topics).unwrap();
    let mut runner = Runner::new(source, sink, Config::default(), BatchLimits::default())
        .unwrap()
        .with_retry(Retry {
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
            give_up_after: Duration::from_secs(60),
        });
    let metrics = runner.metrics();
    let watcher = std::thread::spawn(move || {
        let retries = |text: String| {
            text.lines()
                .find(|l| l.starts_with("pipeline_retries_total{what=\"warehouse\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let began = std::time::Instant::now();
        while retries(metrics.render()) < 3 {
            assert!(began.elapsed() < Duration::from_secs(30), "no retries seen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ready_while_failing = metrics.ready();
        std::fs::remove_dir(&log).unwrap();
        ready_while_failing
    });
    let totals = runner
        .run(Until::Stopped, &AtomicBool::new(false), &mut Silent)
        .unwrap();
    assert!(!watcher.join().unwrap(), "ready while retrying");
    assert!(totals.rows > 0);
    drop(runner);
    let (a, b) = (warehouse_at(&clean), warehouse_at(&path));
    assert_same_tables(&a, &b, "after the retries");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The broker goes away for longer than the dead-letter producer waits for a delivery
/// (2 s here), while malformed messages are still to come: each batch's dead letters
/// are retried until it is back, `/readyz` says not ready meanwhile, and every message
/// is in the warehouse once, as a row or a dead letter.
#[test]
fn dead_letters_wait_for_a_broker_that_went_away_and_nothing_is_lost() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

    let dir = temp_dir("dlq-retry");
    let scratch = ScratchBroker::start("pipeline-dlq-retry-test").unwrap();
    let broker = scratch.broker();
    let bootstrap = broker.bootstrap();
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    // Malformed messages at the end of every partition of every topic: the pipeline
    // has fetched them before the broker goes, and reaches them after.
    let mut produced: u64 = simulate_to_kafka(&bootstrap, 2, "none", 100, 1, 12)
        .iter()
        .sum();
    let mut bad = 0;
    for kind in EventKind::ALL {
        for partition in 0..2 {
            for n in 0..5 {
                let payload = format!("not json {kind:?} {partition} {n}");
                producer
                    .send(
                        BaseRecord::<(), str>::to(kind.topic())
                            .partition(partition)
                            .payload(&payload),
                    )
                    .unwrap();
                bad += 1;
            }
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    produced += bad;

    let port = xtask::kafka::free_port_pair();
    let duckdb = dir.join("w.duckdb");
    let mut child = spawn(
        pipeline(&[
            "--kafka-brokers",
            &bootstrap,
            "--duckdb",
            duckdb.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-X",
            "message.timeout.ms=2000",
            "--exit-when-idle-s",
            "3",
            "--batch-max-messages",
            "10",
            "--batch-max-ms",
            "200",
        ])
        .stderr(Stdio::null()),
    );
    let metric = |name: &str| xtask::process::metric(port, name).unwrap_or(0.0);
    let began = std::time::Instant::now();
    while metric("pipeline_messages_total") < 50.0 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "nothing consumed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.stop().unwrap();
    let began = std::time::Instant::now();
    let mut not_ready = false;
    while metric("pipeline_retries_total{what=\"dead_letter_topics\"}") < 2.0 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no dead-letter retries while the broker was down"
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the pipeline gave up"
        );
        not_ready |= http_get(port, "/readyz").is_some_and(|(status, _)| status == 503);
        std::thread::sleep(Duration::from_millis(100));
    }
    not_ready |= http_get(port, "/readyz").is_some_and(|(status, _)| status == 503);
    assert!(not_ready, "/readyz said ready while retrying");
    broker.start().unwrap();
    assert!(child.0.wait().unwrap().success());

    let connection = duckdb::Connection::open(&duckdb).unwrap();
    let rows = |sql: &str| count(&connection, sql) as u64;
    let landed = rows("SELECT count(*) FROM event_fact WHERE is_record_valid")
        + rows("SELECT count(*) FROM event_dim")
        + rows("SELECT count(*) FROM auth_fact")
        + rows("SELECT count(*) FROM level_change_fact");
    let dead = rows("SELECT count(*) FROM dead_letters");
    assert_eq!(dead, bad);
    assert_eq!(landed + dead, produced, "landed {landed} + dead {dead}");
    let topics: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| format!("{}.dlq", k.topic()))
        .collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut sent: Vec<Vec<u8>> = read_dead_letters(&bootstrap, &topics, bad as usize)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    sent.sort();
    sent.dedup();
    assert_eq!(
        sent.len() as u64,
        bad,
        "every dead letter reached its topic"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Checkpoints written record by record, each only with what changed since the last
/// one (the events a long session gained beside its record rather than the record
/// again), give back the state the transformation holds, at any batch, and also after
/// the stale records were compacted away.
#[test]
fn incremental_checkpoints_restore_the_state_the_transformation_holds() {
    use pipeline::sinks::Checkpoint;

    let dir = temp_dir("incremental");
    let path = dir.join("w.duckdb");
    let partitions = common::simulated(60, 2, 21, 2);
    let mut transformer = common::transformer_over(&partitions);
    let mut sink = DuckDb::open(&path).unwrap();
    let longest = partitions.iter().map(|p| p.payloads.len()).max().unwrap();
    let (mut written, mut held) = (Vec::new(), Vec::new());
    let (mut appended, mut session_records) = (0, 0);
    for start in (0..longest).step_by(97) {
        let messages = partitions.iter().flat_map(|p| {
            (start..(start + 97).min(p.payloads.len())).map(|offset| p.message(offset))
        });
        let output = transformer.process(messages, 0);
        let changes = transformer.changes().clone();
        let state = transformer.state();
        let records = state.records(&changes).unwrap();
        appended += records.session_events.len();
        session_records += records.sessions.len();
        written.push(records.bytes());
        held.push(state.records(&state.everything()).unwrap().bytes());
        let checkpoint = Checkpoint {
            offsets: &[],
            state: &records,
        };
        sink.write(&columnar(&output.tables).unwrap(), &checkpoint)
            .unwrap();
        transformer.checkpointed();
        // Reopened, as a restart would.
        drop(sink);
        sink = DuckDb::open(&path).unwrap();
        let restored = sink.stored_state().unwrap().unwrap();
        assert!(
            restored == *transformer.state(),
            "the state restored after the batch at {start} differs"
        );
    }
    // Past the first batches, a checkpoint writes less than the state holds.
    let later: u64 = written[2..].iter().sum();
    let whole: u64 = held[2..].iter().sum();
    assert!(later < whole, "bytes written {later}, held {whole}");
    assert!(
        appended > 0,
        "no session's events were appended beside its record"
    );
    // Records are appended and the stale ones dropped now and then: states restored
    // after a compaction are among those compared above.
    let kept = usize::try_from(count(
        sink.connection(),
        "SELECT count(*) FROM pipeline_state_sessions",
    ))
    .unwrap();
    assert!(
        kept < session_records,
        "the sessions' records were never compacted: {kept} kept of {session_records} written"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A checkpoint as an earlier version wrote it (records of format 4, where a user's
/// held their details and a closed session's the event_fact rows of its version; record
/// tables that replaced a record in place, the keys indexed) is read back whole: the
/// tables are rewritten for appending when the warehouse opens, and what is no longer
/// kept dropped.
#[test]
fn a_checkpoint_of_an_earlier_version_reads_back_after_the_upgrade() {
    use pipeline::transforms::rows::{EventFactRow, SessionFactRow};
    use pipeline::transforms::state::{ListenTrail, Session};

    const FORMAT: u8 = 4;

    /// A user's record in format 4.
    #[derive(serde::Serialize)]
    struct PreviousUser<'a> {
        first_name: &'a str,
        last_name: &'a str,
        gender: &'a str,
        registration_ms: i64,
        city: &'a str,
        zip: &'a str,
        state: &'a str,
        lon: f64,
        lat: f64,
        versions: &'a [(i64, bool)],
        trail: &'a Option<ListenTrail>,
    }

    /// A session's record in format 4: a closed one holds its version's listen facts.
    #[derive(serde::Serialize)]
    enum PreviousSession<'a> {
        Open(&'a Session),
        Closed {
            session: &'a Session,
            emitted: PreviousEmitted<'a>,
            evict_after_ms: i64,
        },
    }

    #[derive(serde::Serialize)]
    struct PreviousEmitted<'a> {
        session_fact: &'a SessionFactRow,
        event_facts: Vec<EventFactRow>,
        trail_before: &'a Option<ListenTrail>,
    }

    let dir = temp_dir("record-tables");
    let path = dir.join("w.duckdb");
    let partitions = common::simulated(40, 1, 21, 2);
    let mut transformer = common::transformer_over(&partitions);
    // Half of each partition, so that some sessions are still open.
    transformer.process(
        partitions
            .iter()
            .flat_map(|p| (0..p.payloads.len() / 2).map(|offset| p.message(offset))),
        0,
    );
    let state = transformer.state();
    let records = state.records(&state.everything()).unwrap();
    assert!(!state.open.is_empty() && !state.closed.is_empty() && !state.users.is_empty());
    fn encoded(value: &impl serde::Serialize) -> Vec<u8> {
        [vec![FORMAT], postcard::to_allocvec(value).unwrap()].concat()
    }
    {
        let connection = duckdb::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE pipeline_checkpoint (id INTEGER PRIMARY KEY, format INTEGER NOT NULL, clocks BLOB NOT NULL);
                 CREATE TABLE pipeline_state_sessions (session_key BIGINT PRIMARY KEY, record BLOB NOT NULL);
                 CREATE TABLE pipeline_state_session_events (session_key BIGINT NOT NULL, record BLOB NOT NULL);
                 CREATE TABLE pipeline_state_users (user_id BIGINT PRIMARY KEY, record BLOB NOT NULL);",
            )
            .unwrap();
        // The clocks encode as they did; only the format byte differs.
        connection
            .execute(
                "INSERT INTO pipeline_checkpoint VALUES (1, ?, ?)",
                duckdb::params![
                    i32::from(FORMAT),
                    [&[FORMAT], &records.clocks[1..]].concat()
                ],
            )
            .unwrap();
        let sessions = state
            .open
            .iter()
            .map(|(key, s)| (key, PreviousSession::Open(s)));
        let closed = state.closed.iter().map(|(key, c)| {
            let fact = c.emitted.session_fact.clone();
            // A listen fact of the version, as format 4 kept them.
            let listen = EventFactRow {
                event_key: fact.session_key ^ 1,
                user_key: fact.user_key.unwrap_or(0),
                user_id: fact.user_id.unwrap_or(0),
                session_key: fact.session_key,
                date_time_key: fact.date_time_key,
                date_key: fact.date_key,
                location_key: fact.primary_location_key,
                song_key: 7,
                ts_ms: fact.start_ms,
                level: fact.level.clone(),
                duration: 180.5,
                is_moving: false,
                consecutive_no_song: 1,
                is_first_listen_event: true,
                is_last_listen_event: true,
                is_song_skipped: None,
                next_listen_event_time_gap: None,
                record_valid_from_ms: fact.record_valid_from_ms,
                record_valid_to_ms: None,
                is_record_valid: true,
            };
            let record = PreviousSession::Closed {
                session: &c.session,
                emitted: PreviousEmitted {
                    session_fact: &c.emitted.session_fact,
                    event_facts: vec![listen],
                    trail_before: &c.emitted.trail_before,
                },
                evict_after_ms: c.evict_after_ms,
            };
            (key, record)
        });
        for (key, record) in sessions.chain(closed) {
            connection
                .execute(
                    "INSERT INTO pipeline_state_sessions VALUES (?, ?)",
                    duckdb::params![key, encoded(&record)],
                )
                .unwrap();
        }
        for (key, user) in &state.users {
            let details = PreviousUser {
                first_name: "Ada",
                last_name: "Lovelace",
                gender: "F",
                registration_ms: user.registration_ms,
                city: "London",
                zip: "W1",
                state: "GB",
                lon: -0.14,
                lat: 51.5,
                versions: &user.versions,
                trail: &user.trail,
            };
            connection
                .execute(
                    "INSERT INTO pipeline_state_users VALUES (?, ?)",
                    duckdb::params![key, encoded(&details)],
                )
                .unwrap();
        }
    }
    let sink = DuckDb::open(&path).unwrap();
    let restored = sink.stored_state().unwrap().unwrap();
    assert!(
        restored == *state,
        "the upgraded checkpoint reads back otherwise"
    );
    let columns = count(
        sink.connection(),
        "SELECT count(*) FROM duckdb_columns() WHERE table_name LIKE 'pipeline_state_%' AND column_name = 'seq'",
    );
    assert_eq!(columns, 3, "every record table is appended to now");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A warehouse whose checkpoint is the one JSON string of earlier versions is rewritten
/// as records when opened, nothing lost; one of a format no version here reads is
/// refused with what to do.
#[test]
fn a_checkpoint_of_the_previous_format_is_migrated_and_an_unknown_one_refused() {
    use pipeline::transforms::Transformer;

    let dir = temp_dir("migrate");
    let partitions = common::simulated(30, 1, 5, 1);
    let mut transformer = Transformer::new(Config::default());
    for p in &partitions {
        let _ = transformer.process((0..p.payloads.len() / 2).map(|o| p.message(o)), 0);
    }
    let json = serde_json::to_string(transformer.state()).unwrap();
    let legacy = |path: &Path, format: i32| {
        let connection = duckdb::Connection::open(path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE pipeline_state (id INTEGER PRIMARY KEY, format INTEGER NOT NULL, state VARCHAR NOT NULL)",
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO pipeline_state VALUES (1, ?, ?)",
                duckdb::params![format, json],
            )
            .unwrap();
    };
    let old = dir.join("old.duckdb");
    legacy(&old, 2);
    let sink = DuckDb::open(&old).unwrap();
    let restored = sink.stored_state().unwrap().unwrap();
    // Bit for bit, floats included (serde_json parses them exactly with the workspace's
    // `float_roundtrip`).
    assert!(
        restored == *transformer.state(),
        "the migrated state differs"
    );
    let legacy_left = count(
        sink.connection(),
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pipeline_state'",
    );
    assert_eq!(legacy_left, 0, "the old table is gone");

    let older = dir.join("older.duckdb");
    legacy(&older, 1);
    let error = DuckDb::open(&older).unwrap_err().to_string();
    assert!(
        error.contains("format 1") && error.contains("start a new warehouse"),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_warehouse_whose_tables_an_earlier_version_indexed_is_upserted_to_the_same_tables() {
    let dir = temp_dir("indexed");
    let events = dir.join("events");
    let mut files = Files::create(&events, false).unwrap();
    simulate(&mut files, 150, 2, 21, 2.0);
    drop(files);
    let input = events.to_str().unwrap();

    // The tables as earlier versions made them: every key enforced, the state's too.
    let indexed = dir.join("indexed.duckdb");
    {
        let connection = duckdb::Connection::open(&indexed).unwrap();
        for table in warehouse::schema::TABLES {
            let with_index = warehouse::schema::Table {
                key_enforced: true,
                ..**table
            };
            connection
                .execute_batch(&warehouse::schema::duckdb::create_table(&with_index))
                .unwrap();
        }
        connection
            .execute_batch(
                "CREATE TABLE pipeline_state_sessions (session_key BIGINT PRIMARY KEY, record BLOB NOT NULL);
                 CREATE TABLE pipeline_state_users (user_id BIGINT PRIMARY KEY, record BLOB NOT NULL);",
            )
            .unwrap();
    }
    let fresh = dir.join("fresh.duckdb");
    for path in [&indexed, &fresh] {
        // Small batches, so that versions superseded in a later batch replace rows.
        let status = pipeline(&["--input", input, "--duckdb", path.to_str().unwrap()])
            .args(["--batch-max-messages", "200"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let superseded = count(
        &duckdb::Connection::open(&fresh).unwrap(),
        "SELECT count(*) FROM event_fact WHERE NOT is_record_valid",
    );
    assert!(
        superseded > 0,
        "no version was superseded: the case is not tested"
    );
    assert_same_tables(
        &warehouse_at(&fresh),
        &warehouse_at(&indexed),
        "in a warehouse with key indexes",
    );
    std::fs::remove_dir_all(dir).unwrap();
}
