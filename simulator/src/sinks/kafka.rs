//! The Kafka sink: an idempotent, compressing producer that keys events by user, so each
//! user's events stay in order on one partition, and counts what the broker confirmed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use warehouse::raw::EventKind;

use super::{Sink, SinkError};

/// How long connecting and creating topics may take before the run gives up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the final flush waits for the broker's acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq)]
pub struct KafkaOptions {
    pub brokers: String,
    /// Topic names, in the order of [`EventKind::ALL`].
    pub topics: [String; 4],
    /// Partitions of topics that are created because they are missing.
    pub partitions: i32,
    /// Their replication factor; -1 takes the broker's default.
    pub replication_factor: i32,
    /// `none`, `gzip`, `snappy` or `lz4`.
    pub compression: String,
    /// Sent as a `tag` header with every message (eventsim's `--tag`).
    pub tag: Option<String>,
    /// Further librdkafka settings (`security.protocol`, `sasl.mechanism`, …).
    pub settings: Vec<(String, String)>,
}

/// What the broker confirmed, per topic in the order of [`EventKind::ALL`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaReport {
    pub delivered: [u64; 4],
    pub failed: [u64; 4],
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Deliveries {
    delivered: [AtomicU64; 4],
    failed: [AtomicU64; 4],
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        match result {
            Ok(_) => {
                self.delivered[slot].fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed[slot].fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

pub struct Kafka {
    producer: ThreadedProducer<Deliveries>,
    options: KafkaOptions,
    headers: Option<OwnedHeaders>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("options", &self.options)
            .finish()
    }
}

impl Kafka {
    /// Connects, creates missing topics and returns a producer ready to send.
    pub fn connect(options: KafkaOptions) -> Result<Kafka, SinkError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &options.brokers)
            .set("enable.idempotence", "true")
            .set("compression.type", &options.compression)
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144")
            .set("message.timeout.ms", "120000");
        for (key, value) in &options.settings {
            config.set(key, value);
        }
        let producer: ThreadedProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| SinkError::Kafka(format!("bad producer settings: {e}")))?;
        producer
            .client()
            .fetch_metadata(None, SETUP_TIMEOUT)
            .map_err(|e| {
                SinkError::Kafka(format!(
                    "cannot reach the brokers at {} within {}s: {e}",
                    options.brokers,
                    SETUP_TIMEOUT.as_secs()
                ))
            })?;
        create_missing_topics(&config, &options)?;
        let headers = options.tag.as_ref().map(|tag| {
            OwnedHeaders::new().insert(Header {
                key: "tag",
                value: Some(tag.as_bytes()),
            })
        });
        Ok(Kafka {
            producer,
            options,
            headers,
        })
    }

    /// What the broker has confirmed so far.
    pub fn report(&self) -> KafkaReport {
        let context = self.producer.context();
        let load =
            |counters: &[AtomicU64; 4]| counters.each_ref().map(|c| c.load(Ordering::Relaxed));
        KafkaReport {
            delivered: load(&context.delivered),
            failed: load(&context.failed),
            first_error: context.first_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

fn create_missing_topics(config: &ClientConfig, options: &KafkaOptions) -> Result<(), SinkError> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| SinkError::Kafka(format!("cannot create an admin client: {e}")))?;
    let topics: Vec<NewTopic<'_>> = options
        .topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                options.partitions,
                TopicReplication::Fixed(options.replication_factor),
            )
        })
        .collect();
    let admin_options = AdminOptions::new().operation_timeout(Some(SETUP_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics(&topics, &admin_options))
        .map_err(|e| SinkError::Kafka(format!("cannot create topics: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(SinkError::Kafka(format!(
                    "cannot create topic {topic}: {code}"
                )));
            }
        }
    }
    Ok(())
}

impl Sink for Kafka {
    fn write(&mut self, kind: EventKind, key: i64, json: &[u8]) -> Result<(), SinkError> {
        let slot = kind.index();
        let mut digits = itoa::Buffer::new();
        let key = digits.format(key);
        let mut record = BaseRecord::with_opaque_to(&self.options.topics[slot], slot)
            .key(key)
            .payload(json);
        if let Some(headers) = &self.headers {
            record = record.headers(headers.clone());
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                // The local queue is full: wait for the background thread to deliver some.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(SinkError::Kafka(format!(
                        "cannot send to {}: {e}",
                        self.options.topics[slot]
                    )));
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| {
            SinkError::Kafka(format!(
                "not every event was acknowledged within {}s: {e}",
                FLUSH_TIMEOUT.as_secs()
            ))
        })?;
        let report = self.report();
        let failed: u64 = report.failed.iter().sum();
        if failed > 0 {
            return Err(SinkError::Kafka(format!(
                "{failed} events were not delivered; the first error: {}",
                report.first_error.unwrap_or_default()
            )));
        }
        Ok(())
    }
}
