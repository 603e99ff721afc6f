//! The Kafka source: one consumer group over the four topics, so instances share the
//! partitions. Offsets are committed to Kafka only after the sink has written the batch;
//! the sink's own record of offsets is what a restart trusts.
//!
//! The group uses Kafka's consumer protocol (KIP-848) with the broker's range assignor:
//! rebalances are incremental, like cooperative-sticky, and the same partition number
//! of every topic goes to the same instance. Sessions are built from all four topics,
//! which the simulator keys alike, so an instance must see a user's events of each.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use warehouse::raw::EventKind;

use super::{BatchLimits, InFlight, Polled, Record, Source};
use crate::error::PipelineError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long asking the brokers for partitions' ends or committed offsets may take.
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq)]
pub struct KafkaOptions {
    pub brokers: String,
    pub group: String,
    /// The topic of each kind.
    pub topics: Vec<(EventKind, String)>,
    /// Further librdkafka settings, such as `security.protocol` and `sasl.*`.
    pub settings: Vec<(String, String)>,
}

/// Hears the group's rebalances, which librdkafka reports from inside a poll.
#[derive(Default)]
struct Rebalances {
    /// Partitions revoked since the source last looked.
    revoked: Mutex<Vec<(String, i32)>>,
    /// The batch the runner writes while this instance polls.
    in_flight: Arc<InFlight>,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let partitions: Vec<(String, i32)> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        // The batch being written may hold messages of these partitions. Their next
        // owner starts at the offsets committed here, so the partitions go only once
        // that write has landed and its offsets are committed (synchronously: an
        // asynchronous commit may reach the group after the new owner asked).
        let mut landed = TopicPartitionList::new();
        for (topic, partition, next) in self.in_flight.landed() {
            if partitions
                .iter()
                .any(|(t, p)| *t == topic && *p == partition)
                && let Err(error) =
                    landed.add_partition_offset(&topic, partition, Offset::Offset(next))
            {
                tracing::warn!(%error, topic, partition, "cannot list an offset to commit");
            }
        }
        if landed.count() > 0
            && let Err(error) = consumer.commit(&landed, CommitMode::Sync)
        {
            tracing::warn!(%error, "cannot commit the offsets of revoked partitions; their next owner reads again what this instance wrote");
        }
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(partitions);
    }
}

pub struct Kafka {
    consumer: BaseConsumer<Rebalances>,
    kinds: HashMap<String, EventKind>,
    options: KafkaOptions,
    /// The partitions last reported, to log when the group moves them.
    assigned: RefCell<Vec<(String, i32)>>,
    /// Partitions revoked whose messages were dropped, for [`Source::revoked`].
    revoked: Vec<(String, i32)>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("options", &self.options)
            .finish()
    }
}

impl Kafka {
    pub fn connect(options: KafkaOptions) -> Result<Kafka, PipelineError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &options.brokers)
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Once the prefetch queue is full, librdkafka waits this long before fetching
            // a partition again (1 s by default): the pipeline drains 64 MB of queue in a
            // few batches and then stalled for most of that second, a third of a million
            // users' run (49 s, against 36 s at 20 ms, same peak memory).
            .set("fetch.queue.backoff.ms", "20")
            // The prefetch queue holds 16 MB rather than 64: still more than a batch of
            // 50,000 events (about 12 MB), and a million users' day peaked at 913–955 MB
            // against 1,017–1,064 MB with the default (four runs each, 2026-12-06).
            .set("queued.max.messages.kbytes", "16384");
        // Brokers before Kafka 4.0 lack the consumer protocol; with
        // `-X group.protocol=classic` the classic protocol's range assignor keeps the
        // co-partitioning (its rebalances stop the whole group).
        let setting = |key: &str| {
            options
                .settings
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if setting("group.protocol") == Some("classic") {
            config.set("partition.assignment.strategy", "range");
        } else {
            config
                .set("group.protocol", "consumer")
                .set("group.remote.assignor", "range");
        }
        for (key, value) in &options.settings {
            config.set(key, value);
        }
        let consumer: BaseConsumer<Rebalances> = config
            .create_with_context(Rebalances::default())
            .map_err(PipelineError::kafka_settings("the consumer"))?;
        consumer
            .fetch_metadata(None, CONNECT_TIMEOUT)
            .map_err(PipelineError::kafka(format!(
                "cannot reach the brokers at {} within {}s",
                options.brokers,
                CONNECT_TIMEOUT.as_secs()
            )))?;
        let names: Vec<&str> = options.topics.iter().map(|(_, t)| t.as_str()).collect();
        consumer
            .subscribe(&names)
            .map_err(PipelineError::kafka(format!(
                "cannot subscribe to {names:?}"
            )))?;
        let kinds = options
            .topics
            .iter()
            .map(|(kind, topic)| (topic.clone(), *kind))
            .collect();
        Ok(Kafka {
            consumer,
            kinds,
            options,
            assigned: RefCell::new(Vec::new()),
            revoked: Vec::new(),
        })
    }

    /// Drops from a batch being filled the messages of partitions the group revoked
    /// during the last poll: their new owner reads them again from the offsets this
    /// instance committed, so writing them here too would write them twice.
    fn drop_revoked(&mut self, records: &mut Vec<Record>, bytes: &mut usize) {
        let revoked = std::mem::take(
            &mut *self
                .consumer
                .context()
                .revoked
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if revoked.is_empty() {
            return;
        }
        let before = records.len();
        records.retain(|r| {
            !revoked
                .iter()
                .any(|(topic, partition)| *partition == r.partition && *topic == r.topic)
        });
        *bytes = records.iter().map(|r| r.payload.len()).sum();
        tracing::info!(
            partitions = revoked.len(),
            dropped = before - records.len(),
            "the group revoked partitions; their messages not yet written are left to the new owner"
        );
        self.revoked.extend(revoked);
    }
}

impl Source for Kafka {
    fn in_flight(&self) -> Option<Arc<InFlight>> {
        Some(Arc::clone(&self.consumer.context().in_flight))
    }

    fn poll(&mut self, limits: &BatchLimits) -> Result<Polled, PipelineError> {
        let began = Instant::now();
        let mut records = Vec::new();
        let mut bytes = 0;
        while records.len() < limits.max_messages && bytes < limits.max_bytes {
            // A revocation runs inside a poll: this takes out what the last one revoked.
            self.drop_revoked(&mut records, &mut bytes);
            let Some(left) = limits.max_wait.checked_sub(began.elapsed()) else {
                break;
            };
            let Some(result) = self.consumer.poll(left) else {
                break;
            };
            // librdkafka retries broker failures itself; what reaches here is reported
            // and the loop goes on.
            let message = match result {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka");
                    continue;
                }
            };
            let Some(kind) = self.kinds.get(message.topic()).copied() else {
                continue;
            };
            let payload = message.payload().unwrap_or_default().to_vec();
            bytes += payload.len();
            records.push(Record {
                kind,
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                payload,
            });
        }
        self.drop_revoked(&mut records, &mut bytes);
        Ok(Polled::Records(records))
    }

    fn revoked(&mut self) -> Vec<(String, i32)> {
        std::mem::take(&mut self.revoked)
    }

    fn partitions(&self) -> Vec<(EventKind, String, i32)> {
        let Ok(assignment) = self.consumer.assignment() else {
            return Vec::new();
        };
        let partitions: Vec<(EventKind, String, i32)> = assignment
            .elements()
            .iter()
            .filter_map(|e| {
                let kind = self.kinds.get(e.topic())?;
                Some((*kind, e.topic().to_owned(), e.partition()))
            })
            .collect();
        let now: Vec<(String, i32)> = partitions
            .iter()
            .map(|(_, topic, partition)| (topic.clone(), *partition))
            .collect();
        if *self.assigned.borrow() != now {
            let numbers: std::collections::BTreeSet<i32> = now.iter().map(|(_, p)| *p).collect();
            tracing::info!(
                partitions = now.len(),
                numbers = ?numbers,
                "the group assigned partitions"
            );
            *self.assigned.borrow_mut() = now;
        }
        partitions
    }

    fn lag(&self) -> Option<i64> {
        let positions = self.consumer.position().ok()?;
        // No partitions yet (the group is still forming): nothing says we are caught up.
        if positions.count() == 0 {
            return None;
        }
        // A partition this consumer has read nothing from has no position yet: it
        // stands at the group's committed offset, or at the start without one.
        let mut unread = TopicPartitionList::new();
        let mut ends = TopicPartitionList::new();
        for e in positions.elements() {
            if !matches!(e.offset(), Offset::Offset(_)) {
                unread.add_partition(e.topic(), e.partition());
            }
            // The offset for the time "end" is the partition's end: one request for
            // all partitions, where asking each its watermarks costs a round trip each.
            ends.add_partition_offset(e.topic(), e.partition(), Offset::End)
                .ok()?;
        }
        let committed = if unread.count() == 0 {
            unread
        } else {
            self.consumer
                .committed_offsets(unread, OFFSETS_TIMEOUT)
                .ok()?
        };
        let ends = self
            .consumer
            .offsets_for_times(ends, OFFSETS_TIMEOUT)
            .ok()?;
        let mut lag = 0;
        for e in positions.elements() {
            let Some(Offset::Offset(high)) = ends
                .find_partition(e.topic(), e.partition())
                .map(|end| end.offset())
            else {
                return None;
            };
            let position = match e.offset() {
                Offset::Offset(n) => n,
                _ => match committed
                    .find_partition(e.topic(), e.partition())
                    .map(|c| c.offset())
                {
                    Some(Offset::Offset(n)) => n,
                    _ => 0,
                },
            };
            lag += (high - position).max(0);
        }
        Some(lag)
    }

    fn commit(&mut self, next_offsets: &[(String, i32, i64)]) -> Result<(), PipelineError> {
        if next_offsets.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition, next) in next_offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|error| {
                    PipelineError::Bug(format!("offset {topic}/{partition}: {error}"))
                })?;
        }
        // Asynchronous: the warehouse holds the offsets that matter; Kafka's copy only
        // saves a restart from re-reading what the warehouse would skip anyway.
        self.consumer
            .commit(&list, CommitMode::Async)
            .map_err(PipelineError::kafka("cannot commit offsets"))
    }
}
