//! The sink's state changelog: every change to the sink's state (an identity learnt, an event's
//! outcome remembered, a create about to be made, values written) is also sent to a compacted
//! topic, keyed by the entry it changes and partitioned like the commands: by the portal the
//! entry belongs to ([`portal_partition`]). The instance that owns a commands partition owns the
//! state of its portals; an instance that takes a partition over restores that partition's state
//! from the changelog before it handles the partition's first command, from the checkpoint its
//! local copy has reached (from the start for an empty state directory), so a sink moved to a
//! fresh machine answers redelivered events from state and knows which creates may have
//! happened.
//!
//! A record's key is `{tree}\0{entry key}` (the entry key begins with `{portal id}/`), its value
//! the entry's bytes, or none when the entry is removed (a tombstone, which compaction keeps
//! until it has removed what it deletes). [`State::flush`](crate::state::State::flush) waits for
//! the broker to have every record sent before it: a create intent is on the changelog before
//! HubSpot is called.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::admin::{Health, RestoreReport};
use crate::emit::{Outgoing, deliver};
use crate::kafka::portal_partition;
use crate::lock;
use crate::state::{State, StateError};

/// How long a restore waits for the broker to answer before it gives up (and is tried again
/// with the partition's next command).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the sink's state changes go.
pub struct Changelog {
    producer: FutureProducer,
    topic: String,
    /// Partitions of the commands topic (and of the changelog, which has as many).
    partitions: i32,
    /// Changes noted and not sent yet.
    unsent: Mutex<Vec<Outgoing>>,
    /// Per partition, the offset the local copy has every changelog record before: moved on by
    /// a restore, and by this instance's own records while nothing else was written between.
    caught_up: Mutex<HashMap<i32, i64>>,
}

/// What one restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub partition: i32,
    /// Changelog records applied.
    pub records: u64,
    /// Where the restore started and ended on the changelog partition.
    pub from: i64,
    pub to: i64,
    pub took: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("reading the state changelog {topic} partition {partition}: {source}")]
    Kafka {
        topic: String,
        partition: i32,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "reading the state changelog {topic} partition {partition} stalled at offset {at} of {end} for {seconds}s; are the brokers reachable?"
    )]
    Stalled {
        topic: String,
        partition: i32,
        at: i64,
        end: i64,
        seconds: u64,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "topics.state_changelog ({changelog_topic}) has {changelog} partitions and topics.commands ({commands_topic}) {commands}: they must have as many, since a portal's state is on the partition its commands are; create the changelog with {commands} partitions (cleanup.policy=compact)"
    )]
    Partitions {
        commands_topic: String,
        commands: i32,
        changelog_topic: String,
        changelog: i32,
    },
    #[error(
        "topic {topic} does not exist on the broker (or has no partitions): create it; the sink needs it ({source})"
    )]
    Missing {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

/// How many partitions `topic` has, from the brokers' metadata.
async fn partition_count(producer: &FutureProducer, topic: &str) -> Result<i32, ChangelogError> {
    use rdkafka::producer::Producer;
    let producer = producer.clone();
    let name = topic.to_string();
    let counted = tokio::task::spawn_blocking(move || {
        let metadata = producer
            .client()
            .fetch_metadata(Some(&name), RESTORE_TIMEOUT)?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .filter(|t| t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if count == 0 {
            return Err(rdkafka::error::KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        Ok(count)
    })
    .await;
    match counted {
        Ok(Ok(count)) => Ok(count),
        Ok(Err(source)) => Err(ChangelogError::Missing {
            topic: topic.to_string(),
            source,
        }),
        Err(join) => {
            warn!(%join, "the metadata request stopped");
            Err(ChangelogError::Missing {
                topic: topic.to_string(),
                source: rdkafka::error::KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::Fail,
                ),
            })
        }
    }
}

impl std::fmt::Debug for Changelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changelog")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl Changelog {
    pub fn new(producer: FutureProducer, topic: &str, partitions: i32) -> Self {
        Changelog {
            producer,
            topic: topic.to_string(),
            partitions: partitions.max(1),
            unsent: Mutex::new(Vec::new()),
            caught_up: Mutex::new(HashMap::new()),
        }
    }

    /// The changelog of `topics.state_changelog`, which must have as many partitions as
    /// `topics.commands`: the state of a portal is on the partition its commands are.
    pub async fn for_topics(
        producer: &FutureProducer,
        topics: &crate::config::Topics,
    ) -> Result<Self, ChangelogError> {
        let commands = partition_count(producer, &topics.commands).await?;
        let changelog = partition_count(producer, &topics.state_changelog).await?;
        if commands != changelog {
            return Err(ChangelogError::Partitions {
                commands_topic: topics.commands.clone(),
                commands,
                changelog_topic: topics.state_changelog.clone(),
                changelog,
            });
        }
        Ok(Changelog::new(
            producer.clone(),
            &topics.state_changelog,
            commands,
        ))
    }

    /// The partition (of the commands and of the changelog) a portal's records are on.
    pub fn partition_of(&self, portal_id: u64) -> i32 {
        portal_partition(portal_id, self.partitions)
    }

    /// Notes the change of `key` in `tree` (`value` none: removed), to be sent at the next
    /// [`flush`](Self::flush). Keys outside any portal's scope are not the changelog's.
    pub fn record(&self, tree: &str, key: &[u8], value: Option<&[u8]>) {
        let Some(portal) = portal_of(key) else {
            return;
        };
        let mut logged = Vec::with_capacity(tree.len() + 1 + key.len());
        logged.extend_from_slice(tree.as_bytes());
        logged.push(0);
        logged.extend_from_slice(key);
        let outgoing = Outgoing {
            partition: Some(self.partition_of(portal)),
            ..Outgoing::new(&self.topic, Some(logged), value.map(<[u8]>::to_vec), None)
        };
        let mut unsent = lock(&self.unsent);
        unsent.push(outgoing);
        metrics::gauge!("hubsync_state_changelog_unsent").set(unsent.len() as f64);
    }

    /// Sends every change noted so far, in the order noted, and waits until the broker has
    /// them. Returns, per partition, the offset the local copy is now caught up to, where this
    /// instance's records moved it. Flushes must not overlap (the state's own lock sees to it).
    pub async fn flush(&self) -> HashMap<i32, i64> {
        let unsent = std::mem::take(&mut *lock(&self.unsent));
        metrics::gauge!("hubsync_state_changelog_unsent").set(0.0);
        metrics::counter!("hubsync_state_changelog_records_total").increment(unsent.len() as u64);
        let mut sent = Vec::with_capacity(unsent.len());
        for outgoing in unsent {
            sent.push(deliver(&self.producer, outgoing).await);
        }
        let mut landed = Vec::with_capacity(sent.len());
        for delivered in sent {
            landed.push(delivered.await);
        }
        let mut moved = HashMap::new();
        let mut caught_up = lock(&self.caught_up);
        for (partition, offset) in landed {
            // Only while nothing else was written between: otherwise the local copy lacks
            // what was, until the partition is restored again.
            if let Some(next) = caught_up.get_mut(&partition)
                && *next == offset
            {
                *next = offset + 1;
                moved.insert(partition, *next);
            }
        }
        moved
    }

    /// Reads partition `partition` of the changelog from where `state` is caught up to its end
    /// and applies every record to `state`. Blocking: run it apart from the runtime's workers.
    pub fn restore(
        &self,
        reader: ClientConfig,
        state: &State,
        partition: i32,
    ) -> Result<Restored, ChangelogError> {
        let started = Instant::now();
        let kafka = |source| ChangelogError::Kafka {
            topic: self.topic.clone(),
            partition,
            source,
        };
        let consumer: BaseConsumer = reader.create().map_err(kafka)?;
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, RESTORE_TIMEOUT)
            .map_err(kafka)?;
        let from = state
            .changelog_checkpoint(partition)?
            .unwrap_or(low)
            .max(low);
        let mut records = 0u64;
        if from < high {
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&self.topic, partition, Offset::Offset(from))
                .map_err(kafka)?;
            consumer.assign(&assignment).map_err(kafka)?;
            let mut at = from;
            let mut quiet_since = Instant::now();
            while at < high {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(message)) => {
                        quiet_since = Instant::now();
                        at = message.offset() + 1;
                        let Some((tree, key)) = message.key().and_then(split_key) else {
                            continue;
                        };
                        match state.apply_logged(tree, key, message.payload()) {
                            Ok(()) => records += 1,
                            // One bad record must not hold the partition back for ever: it is
                            // left out, said, and counted.
                            Err(error @ StateError::Corrupt { .. }) => {
                                warn!(topic = self.topic, partition, offset = message.offset(), %error, "a changelog record that does not decode is left out");
                                metrics::counter!("hubsync_state_changelog_unreadable_total")
                                    .increment(1);
                            }
                            Err(error) => return Err(error.into()),
                        }
                    }
                    Some(Err(error)) => return Err(kafka(error)),
                    None if quiet_since.elapsed() > RESTORE_TIMEOUT => {
                        return Err(ChangelogError::Stalled {
                            topic: self.topic.clone(),
                            partition,
                            at,
                            end: high,
                            seconds: RESTORE_TIMEOUT.as_secs(),
                        });
                    }
                    // Transaction markers and compacted gaps end a partition short of its
                    // high watermark: the position says how far reading got.
                    None => {
                        if let Ok(Offset::Offset(position)) = consumer
                            .position()
                            .map_err(kafka)?
                            .find_partition(&self.topic, partition)
                            .map(|p| p.offset())
                            .ok_or(())
                        {
                            at = at.max(position);
                        }
                    }
                }
            }
        }
        let to = high.max(from);
        state.set_changelog_checkpoint(partition, to)?;
        lock(&self.caught_up).insert(partition, to);
        let took = started.elapsed();
        metrics::histogram!("hubsync_state_restore_seconds").record(took.as_secs_f64());
        metrics::counter!("hubsync_state_restored_records_total").increment(records);
        info!(
            topic = self.topic,
            partition,
            from,
            to,
            records,
            took_ms = took.as_millis() as u64,
            "state restored from the changelog"
        );
        Ok(Restored {
            partition,
            records,
            from,
            to,
            took,
        })
    }

    /// Stops counting this instance's records towards `partition`'s checkpoint (the partition
    /// went to another instance; its records may follow ours).
    pub fn released(&self, partition: i32) {
        lock(&self.caught_up).remove(&partition);
    }
}

/// Restores each commands partition's state when it is first needed after its assignment.
pub struct Restorer {
    pub changelog: Arc<Changelog>,
    /// The whole state (every portal's).
    pub state: State,
    /// How a changelog reader is made (a consumer by assignment only, never committing).
    pub reader: ClientConfig,
    /// Partitions restored since they were assigned.
    restored: Mutex<HashSet<i32>>,
}

impl Restorer {
    pub fn new(changelog: Arc<Changelog>, state: State, reader: ClientConfig) -> Self {
        Restorer {
            changelog,
            state,
            reader,
            restored: Mutex::new(HashSet::new()),
        }
    }

    /// Restores `partition`'s state unless it was since its assignment; true when it restored
    /// now. A failed restore (the broker unreachable) is tried again, with backoff, until it
    /// succeeds: no command of the partition is handled before.
    pub async fn ensure(&self, partition: i32, health: &Health) -> bool {
        if lock(&self.restored).contains(&partition) {
            return false;
        }
        health.restoring(partition, None);
        let mut backoff = Duration::from_millis(500);
        loop {
            let changelog = self.changelog.clone();
            let state = self.state.clone();
            let reader = self.reader.clone();
            let restored =
                tokio::task::spawn_blocking(move || changelog.restore(reader, &state, partition))
                    .await;
            match restored {
                Ok(Ok(restored)) => {
                    health.restoring(
                        partition,
                        Some(RestoreReport {
                            partition,
                            records: restored.records,
                            took_ms: restored.took.as_millis() as u64,
                        }),
                    );
                    lock(&self.restored).insert(partition);
                    return true;
                }
                Ok(Err(error)) => {
                    warn!(partition, %error, "restoring the partition's state failed; trying again");
                }
                Err(error) => {
                    warn!(partition, %error, "the restore of the partition's state stopped; trying again");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// The partition was taken from this instance: restored again when it comes back, from
    /// where the local copy stopped.
    pub fn forget(&self, partition: i32) {
        lock(&self.restored).remove(&partition);
        self.changelog.released(partition);
    }
}

/// The portal an entry key is scoped to: the number before its first `/`.
fn portal_of(key: &[u8]) -> Option<u64> {
    let end = key.iter().position(|b| *b == b'/')?;
    std::str::from_utf8(&key[..end]).ok()?.parse().ok()
}

/// `{tree}\0{key}` back into its parts.
fn split_key(logged: &[u8]) -> Option<(&str, &[u8])> {
    let end = logged.iter().position(|b| *b == 0)?;
    Some((
        std::str::from_utf8(&logged[..end]).ok()?,
        &logged[end + 1..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_tree_and_portal() {
        assert_eq!(portal_of(b"62515/contacts:EMAIL:a@b.io"), Some(62515));
        assert_eq!(portal_of(b"contacts:EMAIL:a@b.io"), None);
        assert_eq!(portal_of(b"run/62515"), None);
        assert_eq!(
            split_key(b"identity\x0062515/contacts:EMAIL:a\x00b"),
            Some(("identity", b"62515/contacts:EMAIL:a\x00b".as_slice()))
        );
        assert_eq!(split_key(b"no tree"), None);
    }
}
