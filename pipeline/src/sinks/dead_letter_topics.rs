//! Dead letters on Kafka: each rejected message goes, byte for byte, to `<topic>.dlq`,
//! with why in its headers. Sent and flushed before the batch's offsets are committed,
//! so a crash can repeat a dead letter but never lose one.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::error::PipelineError;
use crate::transforms::rows::DeadLetterRow;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

pub struct DeadLetterTopics {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl std::fmt::Debug for DeadLetterTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeadLetterTopics")
    }
}

/// The dead-letter topic of a topic.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

impl DeadLetterTopics {
    pub fn connect(
        brokers: &str,
        settings: &[(String, String)],
    ) -> Result<DeadLetterTopics, PipelineError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true");
        for (key, value) in settings {
            config.set(key, value);
        }
        let producer = config.create().map_err(|e| {
            PipelineError::Kafka(format!("cannot create the dead-letter producer: {e}"))
        })?;
        Ok(DeadLetterTopics { producer })
    }

    /// Sends the batch's dead letters and waits until the broker has them.
    pub fn send(&self, rows: &[DeadLetterRow]) -> Result<(), PipelineError> {
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            let topic = dlq_topic(&row.source_topic);
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
            let mut record = BaseRecord::<(), [u8]>::to(&topic)
                .payload(&row.payload)
                .headers(headers);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        return Err(PipelineError::Kafka(format!(
                            "cannot send a dead letter to {topic}: {e}"
                        )));
                    }
                }
            }
        }
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| {
            PipelineError::Kafka(format!(
                "dead letters were not acknowledged within {}s: {e}",
                FLUSH_TIMEOUT.as_secs()
            ))
        })
    }
}
