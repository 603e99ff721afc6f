//! Dead letters on Kafka: each rejected message goes, byte for byte, to `<topic>.dlq`,
//! with why in its headers. Sent and flushed before the batch's offsets are committed,
//! so a crash can repeat a dead letter but never lose one.
//!
//! A dead letter must never stop the pipeline, so a `<topic>.dlq` is created to take
//! whatever its source topic takes (the source's `max.message.bytes`), and a message
//! that still does not fit (a topic that existed with a lower limit, a broker that
//! refuses it) goes as a truncated copy whose headers give its original size and
//! SHA-256; the `dead_letters` table keeps the whole record either way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::error::PipelineError;
use crate::transforms::rows::DeadLetterRow;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The broker's default `max.message.bytes` (1 MiB plus record-batch overhead), assumed
/// where a topic's own setting cannot be read.
const BROKER_DEFAULT_MAX_BYTES: usize = 1_048_588;
/// Room kept in a message's size limit for its headers, key and batch framing: a dead
/// letter's detail header is at most a few hundred bytes.
const ENVELOPE_BYTES: usize = 16 * 1024;
/// A truncated copy keeps this much of the payload: more than any valid record (64 KiB
/// at most), far less than any topic's limit.
const TRUNCATED_BYTES: usize = 64 * 1024;

/// Records which sends the broker (or the client) refused, by their place in the batch.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Vec<(usize, KafkaError)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((error, _)) = result
            && let Ok(mut failed) = self.failed.lock()
        {
            failed.push((index, error.clone()));
        }
    }
}

pub struct DeadLetterTopics {
    producer: ThreadedProducer<Deliveries>,
    /// The size limit of each dead-letter topic, as far as it could be read.
    limits: HashMap<String, usize>,
}

impl std::fmt::Debug for DeadLetterTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterTopics")
            .field("limits", &self.limits)
            .finish()
    }
}

/// The dead-letter topic of a topic.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

impl DeadLetterTopics {
    /// Connects the producer and makes sure each source topic's dead-letter topic
    /// exists and takes messages as large as the source does.
    pub fn connect(
        brokers: &str,
        settings: &[(String, String)],
        sources: &[String],
    ) -> Result<DeadLetterTopics, PipelineError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (key, value) in settings {
            config.set(key, value);
        }
        let limits = prepare_topics(&config, sources)?;
        config.set("enable.idempotence", "true");
        // The client refuses messages over its own limit before the broker sees them:
        // raise it to the largest dead-letter topic's, unless the user set it.
        if !settings.iter().any(|(key, _)| key == "message.max.bytes") {
            let largest = limits.values().copied().max().unwrap_or(0);
            let client_limit = largest.clamp(BROKER_DEFAULT_MAX_BYTES, 1_000_000_000);
            config.set("message.max.bytes", client_limit.to_string());
        }
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(PipelineError::kafka_settings("the dead-letter producer"))?;
        Ok(DeadLetterTopics { producer, limits })
    }

    /// Sends the batch's dead letters and waits until the broker has them. One that is
    /// too large for its topic goes again as a truncated copy.
    pub fn send(&self, rows: &[DeadLetterRow]) -> Result<(), PipelineError> {
        if rows.is_empty() {
            return Ok(());
        }
        // Failures left by an earlier attempt that gave up (a flush that timed out) are
        // of rows that attempt's batch held, and it is being sent again whole.
        self.take_failures();
        for (index, row) in rows.iter().enumerate() {
            let topic = dlq_topic(&row.source_topic);
            let limit = self
                .limits
                .get(&topic)
                .copied()
                .unwrap_or(BROKER_DEFAULT_MAX_BYTES);
            let truncate = row.payload.len() + row.detail.len() + ENVELOPE_BYTES > limit;
            self.produce(&topic, row, index, truncate)?;
        }
        self.flush()?;
        let refused = self.take_failures();
        if refused.is_empty() {
            return Ok(());
        }
        let mut resent = 0;
        for (index, error) in refused {
            let Some(row) = rows.get(index) else {
                return Err(PipelineError::Bug(format!(
                    "a delivery report names dead letter {index} of a batch of {}",
                    rows.len()
                )));
            };
            if !is_too_large(&error) {
                return Err(PipelineError::Kafka {
                    doing: format!(
                        "the broker refused a dead letter for {}",
                        dlq_topic(&row.source_topic)
                    ),
                    error,
                });
            }
            self.produce(&dlq_topic(&row.source_topic), row, index, true)?;
            resent += 1;
        }
        tracing::warn!(
            resent,
            "dead letters too large for their topic were sent truncated; the dead_letters table holds them whole"
        );
        self.flush()?;
        match self.take_failures().first() {
            None => Ok(()),
            Some((index, error)) => Err(PipelineError::Kafka {
                doing: format!(
                    "the broker refused a truncated dead letter for {}",
                    rows.get(*index).map_or_else(
                        || "a dead-letter topic".to_owned(),
                        |row| dlq_topic(&row.source_topic)
                    )
                ),
                error: error.clone(),
            }),
        }
    }

    fn produce(
        &self,
        topic: &str,
        row: &DeadLetterRow,
        index: usize,
        truncate: bool,
    ) -> Result<(), PipelineError> {
        let partition = row.source_partition.to_string();
        let offset = row.source_offset.to_string();
        let received = row.received_at_ms.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(row.reason),
            })
            .insert(Header {
                key: "detail",
                value: Some(&row.detail),
            })
            .insert(Header {
                key: "source_topic",
                value: Some(&row.source_topic),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(&offset),
            })
            .insert(Header {
                key: "received_at_ms",
                value: Some(&received),
            });
        if let Some(field) = &row.field {
            headers = headers.insert(Header {
                key: "field",
                value: Some(field),
            });
        }
        let mut payload: &[u8] = &row.payload;
        if truncate && payload.len() > TRUNCATED_BYTES {
            payload = &payload[..TRUNCATED_BYTES];
            let size = row.payload.len().to_string();
            let digest = sha256_hex(&row.payload);
            headers = headers
                .insert(Header {
                    key: "truncated",
                    value: Some("true"),
                })
                .insert(Header {
                    key: "original_bytes",
                    value: Some(&size),
                })
                .insert(Header {
                    key: "original_sha256",
                    value: Some(&digest),
                });
        }
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, index)
            .payload(payload)
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                // The client's own size check: the same as the broker refusing it.
                Err((error, _)) if is_too_large(&error) && !truncate => {
                    return self.produce(topic, row, index, true);
                }
                Err((error, _)) => {
                    return Err(PipelineError::Kafka {
                        doing: format!("cannot send a dead letter to {topic}"),
                        error,
                    });
                }
            }
        }
    }

    fn flush(&self) -> Result<(), PipelineError> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(PipelineError::kafka(format!(
                "dead letters were not acknowledged within {}s",
                FLUSH_TIMEOUT.as_secs()
            )))
    }

    fn take_failures(&self) -> Vec<(usize, KafkaError)> {
        self.producer
            .context()
            .failed
            .lock()
            .map(|mut failed| std::mem::take(&mut *failed))
            .unwrap_or_default()
    }
}

fn is_too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Creates the missing dead-letter topics with their source's size limit and returns
/// each dead-letter topic's limit. Where the limits cannot be read (no permission to
/// describe topics), the broker's default is assumed and larger dead letters are sent
/// truncated.
fn prepare_topics(
    config: &ClientConfig,
    sources: &[String],
) -> Result<HashMap<String, usize>, PipelineError> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(PipelineError::kafka_settings("the admin client"))?;
    let options = AdminOptions::new().operation_timeout(Some(SETUP_TIMEOUT));
    let source_limits = max_message_bytes(&admin, &options, sources);
    // Each dead-letter topic with the limit it should have: its source's.
    let wanted: Vec<(&String, String, usize)> = sources
        .iter()
        .map(|source| {
            let limit = source_limits
                .get(source)
                .copied()
                .unwrap_or(BROKER_DEFAULT_MAX_BYTES);
            (source, dlq_topic(source), limit)
        })
        .collect();
    let limit_texts: Vec<String> = wanted.iter().map(|(_, _, l)| l.to_string()).collect();
    // Partitions and replication as the broker's defaults (-1).
    let new_topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .zip(&limit_texts)
        .map(|((_, name, _), limit)| {
            NewTopic::new(name, -1, TopicReplication::Fixed(-1)).set("max.message.bytes", limit)
        })
        .collect();
    // The limit of a topic created here is the one it was created with (reading it
    // back right away can miss it while the topic's metadata spreads); the others'
    // limits are read.
    let mut limits = HashMap::new();
    let mut existing = Vec::new();
    match futures_executor::block_on(admin.create_topics(&new_topics, &options)) {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(topic) => {
                        if let Some((_, name, limit)) =
                            wanted.iter().find(|(_, name, _)| *name == topic)
                        {
                            limits.insert(name.clone(), *limit);
                        }
                    }
                    Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(topic),
                    Err((topic, code)) => tracing::warn!(
                        topic,
                        %code,
                        "cannot create the dead-letter topic; the broker may create it with its defaults"
                    ),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot create the dead-letter topics"),
    }
    limits.extend(max_message_bytes(&admin, &options, &existing));
    for (source, dlq, _) in &wanted {
        if let (Some(from), Some(to)) = (source_limits.get(*source), limits.get(dlq))
            && to < from
        {
            tracing::warn!(
                topic = dlq.as_str(),
                limit = to,
                source_limit = from,
                "the dead-letter topic takes smaller messages than its source; larger dead letters go truncated"
            );
        }
    }
    Ok(limits)
}

/// Each topic's `max.message.bytes`, for the topics whose configuration could be read.
fn max_message_bytes(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    topics: &[String],
) -> HashMap<String, usize> {
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let mut limits = HashMap::new();
    let results = match futures_executor::block_on(admin.describe_configs(&resources, options)) {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the topics' size limits");
            return limits;
        }
    };
    for (topic, result) in topics.iter().zip(results) {
        let limit = result.ok().and_then(|resource| {
            resource
                .get("max.message.bytes")
                .and_then(|entry| entry.value.as_deref()?.parse::<usize>().ok())
        });
        if let Some(limit) = limit {
            limits.insert(topic.clone(), limit);
        }
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_in_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
