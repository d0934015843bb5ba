//! Kafka clients as hubsync uses them, and the bookkeeping of at-least-once delivery.
//!
//! Consumers never commit by themselves what they have merely read: `enable.auto.offset.store` is
//! off, and an offset is stored only once everything its message produced (command, outcome or
//! dead letter) has been delivered; the auto-commit then writes stored offsets on its interval.
//! [`OffsetTracker`] turns completions, which arrive out of order, into the offset that is safe
//! to store for each partition.

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};

use crate::lock;
use crate::outcomes::Original;

use crate::config::{Config, KafkaProperty, Secrets};

/// Which kind of client a setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Consumer,
    Producer,
}

/// librdkafka settings only one kind of client understands (the other warns about them).
const CONSUMER_ONLY: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "auto.offset.reset",
    "isolation.level",
    "partition.assignment.strategy",
    "group.instance.id",
    "group.protocol",
    "fetch.",
    "queued.",
    "check.crcs",
];
const PRODUCER_ONLY: &[&str] = &[
    "acks",
    "linger.ms",
    "compression.",
    "enable.idempotence",
    "message.timeout.ms",
    "batch.",
    "queue.buffering.",
    "delivery.timeout.ms",
    "retries",
    "transactional.id",
];

fn applies(name: &str, kind: Kind) -> bool {
    let other = match kind {
        Kind::Consumer => PRODUCER_ONLY,
        Kind::Producer => CONSUMER_ONLY,
    };
    !other.iter().any(|p| {
        if p.ends_with('.') {
            name.starts_with(p)
        } else {
            name == *p
        }
    })
}

/// Settings every hubsync client of `kind` shares: brokers, client id, the file's extra
/// properties that apply to it.
fn base_config(config: &Config, secrets: &Secrets, kind: Kind) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("client.id", &config.kafka.client_id);
    for (name, value) in &config.kafka.properties {
        if let KafkaProperty::Value(value) = value
            && applies(name, kind)
        {
            client.set(name, value);
        }
    }
    for (name, secret) in &secrets.kafka_properties {
        if applies(name, kind) {
            client.set(name, secret.expose());
        }
    }
    client
}

/// How long a group waits for a member that stopped answering before its partitions move
/// (`session.timeout.ms`): the least Kafka's brokers accept by default
/// (`group.min.session.timeout.ms`), so a killed instance's partitions move within seconds. A
/// restarted instance with a `kafka.instance_id` that comes back within it keeps its partitions
/// without a rebalance.
pub const SESSION_TIMEOUT_MS: &str = "6000";

/// Heartbeats a third of the session apart, so one lost heartbeat never ends a session.
pub const HEARTBEAT_INTERVAL_MS: &str = "2000";

/// A consumer of `stage`'s group that stores offsets only when told to.
///
/// Partitions are assigned cooperative-sticky: when an instance joins or leaves, only the
/// partitions that must move are revoked, and the others are read on without a pause. With
/// `group.protocol = "consumer"` (KIP-848, where the brokers support it) the brokers assign, as
/// incrementally, and hold the session timeout themselves.
pub fn consumer_config(config: &Config, secrets: &Secrets, stage: &str) -> ClientConfig {
    let mut client = base_config(config, secrets, Kind::Consumer);
    client
        .set("group.id", config.group_id(stage))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000");
    if !config.kafka.instance_id.is_empty() {
        client.set("group.instance.id", &config.kafka.instance_id);
    }
    let mut defaults = vec![
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
    ];
    // Under Kafka's consumer group protocol (KIP-848) the broker assigns and times sessions.
    if !next_generation_protocol(config) {
        defaults.push(("session.timeout.ms", SESSION_TIMEOUT_MS));
        defaults.push(("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS));
        defaults.push(("partition.assignment.strategy", "cooperative-sticky"));
    }
    for (name, default) in defaults {
        if !config.kafka.properties.contains_key(name) {
            client.set(name, default);
        }
    }
    client
}

/// Whether `kafka.properties` choose Kafka's consumer group protocol (KIP-848,
/// `group.protocol = "consumer"`): assignment on the broker, incremental, without the classic
/// protocol's group-wide rebalance.
pub fn next_generation_protocol(config: &Config) -> bool {
    matches!(
        config.kafka.properties.get("group.protocol"),
        Some(KafkaProperty::Value(protocol)) if protocol == "consumer"
    )
}

/// A consumer that reads by assignment only: the configuration's Kafka settings, a group id of
/// its own (`{group}-{purpose}-{random}`) that never commits.
pub fn reader_config(config: &Config, secrets: &Secrets, purpose: &str) -> ClientConfig {
    let mut client = consumer_config(config, secrets, purpose);
    client.remove("group.instance.id");
    client
        .set(
            "group.id",
            format!(
                "{}-{}",
                config.group_id(purpose),
                uuid::Uuid::new_v4().simple()
            ),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    client
}

/// A producer that never duplicates on its own retries and waits for every in-sync replica.
pub fn producer_config(config: &Config, secrets: &Secrets) -> ClientConfig {
    let mut client = base_config(config, secrets, Kind::Producer);
    for (name, default) in [
        ("enable.idempotence", "true"),
        ("acks", "all"),
        // Java's default: a portal's commands land on the partition `portal_partition` names.
        ("partitioner", "murmur2_random"),
        ("linger.ms", "5"),
        ("compression.type", "lz4"),
        ("message.timeout.ms", "300000"),
    ] {
        if !config.kafka.properties.contains_key(name) {
            client.set(name, default);
        }
    }
    client
}

/// A consumer's context that keeps track of what its group assigned it: the partitions it
/// holds (for `/healthz` and `hubsync_assigned_partitions`), and those taken from it since the
/// stage last asked ([`Assignment::take_revoked`]), so the stage forgets what it knew of them.
///
/// Before a partition is taken away, the writes being made for it are let finish (up to
/// [`REVOKE_WAIT`]): their state changes reach the changelog before the next owner restores it.
#[derive(Clone)]
pub struct Assignment {
    stage: &'static str,
    health: crate::admin::Health,
    held: std::sync::Arc<std::sync::Mutex<BTreeSet<(String, i32)>>>,
    /// Kept only for a stage that asks for them ([`Assignment::tracking_revoked`]).
    revoked: std::sync::Arc<std::sync::Mutex<Vec<(String, i32)>>>,
    track_revoked: bool,
    /// Writes being made, per partition, and a signal when one ends.
    writing: std::sync::Arc<(std::sync::Mutex<BTreeMap<i32, usize>>, std::sync::Condvar)>,
}

/// How long a revocation waits for the partition's writes being made to end.
pub const REVOKE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A write being made for a partition; ends when dropped.
pub struct Writing {
    partition: i32,
    writing: std::sync::Arc<(std::sync::Mutex<BTreeMap<i32, usize>>, std::sync::Condvar)>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let (counts, ended) = &*self.writing;
        let mut counts = lock(counts);
        if let Some(count) = counts.get_mut(&self.partition) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.partition);
            }
        }
        ended.notify_all();
    }
}

impl Assignment {
    pub fn new(stage: &'static str, health: crate::admin::Health) -> Self {
        Assignment {
            stage,
            health,
            held: Default::default(),
            revoked: Default::default(),
            track_revoked: false,
            writing: Default::default(),
        }
    }

    /// Keeps the partitions taken away until [`Assignment::take_revoked`] takes them.
    pub fn tracking_revoked(self) -> Self {
        Assignment {
            track_revoked: true,
            ..self
        }
    }

    /// A write for `partition` begins; a revocation of the partition waits until it ends.
    pub fn writing(&self, partition: i32) -> Writing {
        *lock(&self.writing.0).entry(partition).or_default() += 1;
        Writing {
            partition,
            writing: self.writing.clone(),
        }
    }

    /// Waits until no write is being made for any of `partitions`, up to `timeout`; false when
    /// some still are.
    fn wait_written(&self, partitions: &[i32], timeout: std::time::Duration) -> bool {
        let (counts, ended) = &*self.writing;
        let deadline = std::time::Instant::now() + timeout;
        let mut counts = lock(counts);
        loop {
            if !partitions.iter().any(|p| counts.contains_key(p)) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            counts = ended
                .wait_timeout(counts, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Whether `partition` of `topic` is assigned to this consumer now.
    pub fn holds(&self, topic: &str, partition: i32) -> bool {
        lock(&self.held).contains(&(topic.to_string(), partition))
    }

    /// The partitions taken from this consumer since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *lock(&self.revoked))
    }

    fn changed(&self, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        use rdkafka::consumer::Rebalance;
        let mut held = lock(&self.held);
        match rebalance {
            Rebalance::Assign(list) => {
                for element in list.elements() {
                    held.insert((element.topic().to_string(), element.partition()));
                }
                tracing::info!(stage = self.stage, partitions = ?names(list), "partitions assigned");
            }
            Rebalance::Revoke(list) => {
                let mut revoked = lock(&self.revoked);
                for element in list.elements() {
                    let partition = (element.topic().to_string(), element.partition());
                    held.remove(&partition);
                    if self.track_revoked {
                        revoked.push(partition);
                    }
                }
                tracing::info!(stage = self.stage, partitions = ?names(list), "partitions revoked");
                metrics::counter!("hubsync_partitions_revoked_total", "stage" => self.stage)
                    .increment(list.count() as u64);
            }
            Rebalance::Error(error) => {
                tracing::warn!(stage = self.stage, %error, "rebalance failed");
            }
        }
        metrics::gauge!("hubsync_assigned_partitions", "stage" => self.stage)
            .set(held.len() as f64);
        self.health
            .set_partitions(self.stage, held.iter().cloned().collect());
    }
}

fn names(list: &rdkafka::TopicPartitionList) -> Vec<String> {
    list.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect()
}

impl rdkafka::ClientContext for Assignment {}

impl rdkafka::consumer::ConsumerContext for Assignment {
    fn pre_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(list) = rebalance {
            let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            // The callback runs inside a poll, on a runtime worker: the wait hands the worker's
            // other tasks (the writes waited for among them) to another thread first, or they
            // could not end before the wait does.
            let wait = || self.wait_written(&partitions, REVOKE_WAIT);
            let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
                handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            });
            let written = if multi_thread {
                tokio::task::block_in_place(wait)
            } else {
                wait()
            };
            if !written {
                tracing::warn!(
                    stage = self.stage,
                    ?partitions,
                    "partitions revoked while writes for them were still being made"
                );
            }
            self.changed(rebalance);
        }
    }

    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if !matches!(rebalance, rdkafka::consumer::Rebalance::Revoke(_)) {
            self.changed(rebalance);
        }
    }
}

/// What a consumer commits as it leaves ([`leave_group`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The offsets its stage stored: a group's member.
    Stored,
    /// Nothing: a reader by assignment, whose positions are kept elsewhere.
    Nothing,
}

/// How long a stopping stage waits for one of its consumers to commit and leave its group.
pub const LEAVE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Commits the offsets a stopping consumer has stored and leaves its group, on a thread of its
/// own, waiting up to [`LEAVE_WAIT`]; false when the consumer had not closed by then.
///
/// librdkafka's close waits, with no bound, for the group coordinator to take the member's
/// leave (and for a revocation being made to end), and a coordinator in the middle of a
/// rebalance can keep it waiting for good. Waiting on a thread of its own keeps that from a
/// runtime worker, and the bound keeps a stop from hanging on it: past it, the stage stops
/// anyway. Nothing is lost then: the group drops the member after `session.timeout.ms`, and what
/// was not committed is read again by the partition's next owner, as after a crash.
pub async fn leave_group<C, K>(group: &'static str, consumer: K, commit: Commit) -> bool
where
    C: rdkafka::consumer::ConsumerContext + 'static,
    K: Consumer<C> + Send + 'static,
{
    let began = std::time::Instant::now();
    let (left, closed) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("leave-{group}"))
        .spawn(move || {
            if let Commit::Stored = commit
                && let Err(error) =
                    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
            {
                tracing::debug!(group, %error, "final offset commit failed; what it held is read again");
            }
            // Dropping a consumer closes it: it leaves the group once its partitions are revoked.
            drop(consumer);
            let _ = left.send(());
        });
    if let Err(error) = spawned {
        tracing::warn!(group, %error, "no thread to close a consumer on; leaving it to the session timeout");
        return false;
    }
    match tokio::time::timeout(LEAVE_WAIT, closed).await {
        Ok(_) => {
            tracing::info!(
                group,
                took_ms = began.elapsed().as_millis() as u64,
                "consumer left its group"
            );
            true
        }
        Err(_) => {
            tracing::warn!(
                group,
                waited_s = LEAVE_WAIT.as_secs(),
                "a consumer did not leave its group in time; stopping without it (the group drops it after its session timeout, and what it had not committed is read again)"
            );
            false
        }
    }
}

/// Kafka's murmur2 hash of a key, as Java clients' default partitioner and librdkafka's
/// `murmur2_random` compute it.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let words = data.chunks_exact(4);
    let tail = words.remainder();
    for word in words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The partition of a topic with `partitions` partitions that a portal's records are on: its
/// commands (keyed by the portal id, hubsync's producers partition with murmur2) and its share
/// of the sink's state changelog.
pub fn portal_partition(portal_id: u64, partitions: i32) -> i32 {
    let partitions = partitions.max(1) as u32;
    ((murmur2(portal_id.to_string().as_bytes()) & 0x7fff_ffff) % partitions) as i32
}

/// Which offsets of each partition are still in flight, and how far it is safe to commit.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// By topic, then partition: a message's topic is looked up without a copy of its name.
    partitions: BTreeMap<String, BTreeMap<i32, PartitionOffsets>>,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    pending: BTreeSet<i64>,
    highest_done: Option<i64>,
    /// The last offset handed out for storing; the first tracked offset less one at the start.
    stored: Option<i64>,
}

impl OffsetTracker {
    /// A message was read and its work has started.
    pub fn track(&mut self, topic: &str, partition: i32, offset: i64) {
        let partitions = match self.partitions.get_mut(topic) {
            Some(partitions) => partitions,
            None => self.partitions.entry(topic.to_string()).or_default(),
        };
        let entry = partitions.entry(partition).or_default();
        if entry.stored.is_none() && entry.pending.is_empty() {
            entry.stored = Some(offset - 1);
        }
        entry.pending.insert(offset);
    }

    /// A message's work is delivered. Returns the last offset of the partition below which
    /// everything is done, when that moved: the offset to store (librdkafka commits it + 1).
    pub fn complete(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let entry = self.partitions.get_mut(topic)?.get_mut(&partition)?;
        if !entry.pending.remove(&offset) {
            return None;
        }
        entry.highest_done = Some(entry.highest_done.map_or(offset, |h| h.max(offset)));
        let safe = match entry.pending.first() {
            Some(lowest_pending) => lowest_pending - 1,
            None => entry.highest_done?,
        };
        if entry.stored.is_some_and(|stored| stored >= safe) {
            return None;
        }
        entry.stored = Some(safe);
        Some(safe)
    }

    /// [`OffsetTracker::complete`], then stores the safe offset with `consumer` (the one that
    /// read the message) for its next commit.
    pub fn complete_and_store<C: rdkafka::consumer::ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) {
        if let Some(safe) = self.complete(topic, partition, offset)
            && let Err(error) = consumer.store_offset(topic, partition, safe)
        {
            tracing::debug!(%error, topic, partition, "offset not stored (partition reassigned?)");
        }
    }

    /// Forgets partitions this consumer no longer owns (after a rebalance).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.partitions.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    /// Messages read whose work is not delivered yet.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .flat_map(BTreeMap::values)
            .map(|p| p.pending.len())
            .sum()
    }
}

/// A message as read, kept whole so a dead letter can carry it.
pub fn original(message: &BorrowedMessage<'_>) -> Original {
    Original {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Kafka Connect's dead-letter headers, so existing tooling can read hubsync's dead letters.
pub struct ConnectErrorHeaders<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub exception_class: &'a str,
    pub message: &'a str,
    pub stage: &'a str,
}

impl ConnectErrorHeaders<'_> {
    pub fn to_headers(&self) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        OwnedHeaders::new()
            .insert(header("__connect.errors.topic", self.topic))
            .insert(header("__connect.errors.partition", &partition))
            .insert(header("__connect.errors.offset", &offset))
            .insert(header(
                "__connect.errors.exception.class.name",
                self.exception_class,
            ))
            .insert(header("__connect.errors.exception.message", self.message))
            .insert(header("__connect.errors.stage", self.stage))
            .insert(header("__connect.errors.connector.name", "hubsync"))
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Sets `hubsync_consumer_lag{stage, topic}`: for each topic `consumer` is assigned, the records
/// between its position and the end of each partition, as far as the consumer knows them (the
/// watermarks its fetches brought; no request is made). A partition not read yet counts 0.
/// The partitions of `topic` in order, as the brokers' metadata names them; none when the topic
/// does not exist.
pub fn topic_partitions(
    consumer: &rdkafka::consumer::StreamConsumer,
    topic: &str,
    timeout: std::time::Duration,
) -> rdkafka::error::KafkaResult<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions.sort_unstable();
    Ok(partitions)
}

pub fn report_lag<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
    stage: &str,
) {
    use rdkafka::consumer::Consumer;
    let Ok(positions) = consumer.position() else {
        return;
    };
    let mut lag: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for element in positions.elements() {
        let behind = match (
            element.offset(),
            cached_high_watermark(consumer, element.topic(), element.partition()),
        ) {
            (rdkafka::Offset::Offset(position), Some(high)) => (high - position).max(0),
            _ => 0,
        };
        *lag.entry(element.topic().to_string()).or_default() += behind;
    }
    for (topic, behind) in lag {
        metrics::gauge!("hubsync_consumer_lag", "stage" => stage.to_string(), "topic" => topic)
            .set(behind as f64);
    }
}

/// The end of a partition as the consumer's last fetch left it, without asking the broker
/// (librdkafka's cached watermarks; `rdkafka` wraps only the call that asks).
fn cached_high_watermark<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    use rdkafka::consumer::Consumer;
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is valid while `consumer` lives; librdkafka only reads the
    // topic name and writes the two offsets during the call.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// What [`follow`] hands a topic's records to: it keeps what it learns in local state.
pub trait Follower: Send {
    /// One record's value.
    fn apply(&mut self, payload: Vec<u8>) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Makes what was applied durable; with [`Resume::Kept`], together with `read`, the last
    /// offset applied of each partition since the last flush.
    fn flush(
        &mut self,
        read: &std::collections::HashMap<i32, i64>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// With [`Resume::Kept`]: the next offset of each partition, as the follower last flushed it
    /// (a partition it never read is read from its beginning).
    fn kept(&self) -> anyhow::Result<std::collections::HashMap<i32, i64>> {
        Ok(std::collections::HashMap::new())
    }
}

/// Where a [`follow`]er's reading resumes, and who reads what.
#[derive(Debug, Clone, Copy)]
pub enum Resume {
    /// The consumer's group shares the topic's partitions among its members and keeps their
    /// positions: each record is applied by one instance.
    Group,
    /// Every partition is read by this instance, from the positions its follower keeps with
    /// what it applied ([`Follower::kept`]): each instance learns every record.
    Kept,
}

/// How often a [`Resume::Kept`] follower looks for partitions added to its topic: every minute,
/// and every 5 s while it found none (the topic not there yet, or the broker not answering).
fn partitions_check(assigned: i32) -> std::time::Duration {
    std::time::Duration::from_secs(if assigned == 0 { 5 } else { 60 })
}

/// Reads `topic` for as long as `stopping` is false, handing each record's value to
/// `follower`. Positions are kept only once flushed (every `every` records, and after a quiet
/// second), so a crash reads again what was not kept, never skips it. For topics whose records
/// are facts to remember (the sink's outcomes for the inbound stage, HubSpot's changes for the
/// sink). `group` names the consumer's group in what is logged.
pub async fn follow(
    group: &'static str,
    consumer: rdkafka::consumer::StreamConsumer,
    topic: &str,
    every: usize,
    resume: Resume,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    mut follower: impl Follower,
) -> anyhow::Result<()> {
    let mut assigned = 0;
    let kept = match resume {
        Resume::Group => {
            consumer.subscribe(&[topic])?;
            std::collections::HashMap::new()
        }
        Resume::Kept => {
            let kept = follower.kept()?;
            assigned = assign_new(&consumer, topic, assigned, &kept)?;
            kept
        }
    };
    let mut checked = tokio::time::Instant::now();
    let mut unflushed: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    let mut read = 0usize;
    let mut report = tokio::time::interval(std::time::Duration::from_secs(5));
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            _ = stopping.changed() => break,
            _ = report.tick() => {
                report_lag(&consumer, group);
                continue;
            }
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)), if !unflushed.is_empty() => {
                flush_followed(&mut follower, &consumer, topic, resume, &mut unflushed).await?;
                read = 0;
                continue;
            }
            _ = tokio::time::sleep_until(checked + partitions_check(assigned)), if matches!(resume, Resume::Kept) => {
                checked = tokio::time::Instant::now();
                assigned = assign_new(&consumer, topic, assigned, &kept)?;
                continue;
            }
        };
        if *stopping.borrow() {
            break;
        }
        let (payload, partition, offset) = match message {
            Ok(message) => (
                message.payload().map(<[u8]>::to_vec),
                message.partition(),
                message.offset(),
            ),
            Err(error) => {
                // librdkafka reconnects by itself; the records wait on the topic.
                tracing::warn!(%error, topic, "reading; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Some(payload) = payload {
            follower.apply(payload).await?;
        }
        unflushed.insert(partition, offset);
        read += 1;
        if read >= every {
            flush_followed(&mut follower, &consumer, topic, resume, &mut unflushed).await?;
            read = 0;
        }
    }
    flush_followed(&mut follower, &consumer, topic, resume, &mut unflushed).await?;
    let commit = match resume {
        Resume::Group => Commit::Stored,
        Resume::Kept => Commit::Nothing,
    };
    leave_group(group, consumer, commit).await;
    Ok(())
}

/// Flushes what `follower` applied, and keeps the positions read as `resume` says.
async fn flush_followed(
    follower: &mut impl Follower,
    consumer: &rdkafka::consumer::StreamConsumer,
    topic: &str,
    resume: Resume,
    unflushed: &mut std::collections::HashMap<i32, i64>,
) -> anyhow::Result<()> {
    follower.flush(unflushed).await?;
    match resume {
        Resume::Group => store_all(consumer, topic, unflushed),
        Resume::Kept => unflushed.clear(),
    }
    Ok(())
}

/// Assigns the partitions of `topic` from `assigned` on (those added since the last call), each
/// from its offset in `from` or from its beginning; the partitions assigned now.
fn assign_new(
    consumer: &rdkafka::consumer::StreamConsumer,
    topic: &str,
    assigned: i32,
    from: &std::collections::HashMap<i32, i64>,
) -> anyhow::Result<i32> {
    let partitions = match consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(5)) {
        Ok(metadata) => metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len() as i32),
        Err(error) => {
            // Looked for again later: the records wait on the topic.
            tracing::warn!(%error, topic, "the topic's partitions could not be read; trying again");
            return Ok(assigned);
        }
    };
    if partitions == 0 {
        tracing::warn!(
            topic,
            "the topic has no partitions yet; looking again in 5 s"
        );
    }
    if partitions <= assigned {
        return Ok(assigned);
    }
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in assigned..partitions {
        let offset = from
            .get(&partition)
            .map_or(rdkafka::Offset::Beginning, |next| {
                rdkafka::Offset::Offset(*next)
            });
        list.add_partition_offset(topic, partition, offset)?;
    }
    consumer.incremental_assign(&list)?;
    tracing::info!(
        topic,
        from = assigned,
        to = partitions,
        "following every partition of the topic"
    );
    Ok(partitions)
}

fn store_all(
    consumer: &rdkafka::consumer::StreamConsumer,
    topic: &str,
    offsets: &mut std::collections::HashMap<i32, i64>,
) {
    for (partition, offset) in offsets.drain() {
        if let Err(error) = consumer.store_offset(topic, partition, offset) {
            tracing::debug!(%error, topic, "offset not stored (partition reassigned?)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_advance_only_over_contiguous_completions() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..15 {
            tracker.track("t", 0, offset);
        }
        assert_eq!(
            tracker.complete("t", 0, 12),
            None,
            "10 and 11 are still pending"
        );
        assert_eq!(tracker.complete("t", 0, 10), Some(10));
        assert_eq!(tracker.complete("t", 0, 11), Some(12));
        assert_eq!(tracker.complete("t", 0, 14), None);
        assert_eq!(tracker.complete("t", 0, 13), Some(14));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent_and_unknown_completions_ignored() {
        let mut tracker = OffsetTracker::default();
        tracker.track("t", 0, 0);
        tracker.track("t", 1, 0);
        assert_eq!(tracker.complete("t", 1, 0), Some(0));
        assert_eq!(
            tracker.complete("t", 1, 0),
            None,
            "a second completion is ignored"
        );
        assert_eq!(tracker.complete("u", 0, 0), None);
        tracker.forget("t", 0);
        assert_eq!(tracker.complete("t", 0, 0), None);
    }

    #[test]
    fn murmur2_is_kafkas() {
        // Kafka's own test vectors for the hash its Java clients partition with.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(portal_partition(7, 1), 0);
        for portal in 0..1000 {
            assert!((0..12).contains(&portal_partition(portal, 12)));
        }
    }

    #[test]
    fn client_specific_settings_go_only_to_their_kind_of_client() {
        assert!(applies("session.timeout.ms", Kind::Consumer));
        assert!(!applies("session.timeout.ms", Kind::Producer));
        assert!(!applies("fetch.max.bytes", Kind::Producer));
        assert!(!applies("linger.ms", Kind::Consumer));
        assert!(applies("security.protocol", Kind::Consumer));
        assert!(applies("security.protocol", Kind::Producer));
    }

    /// A real cluster is reached over TLS with SASL/SCRAM (the example configuration's
    /// setting); a librdkafka built without OpenSSL refuses that when the client is created.
    #[test]
    fn clients_can_speak_tls_and_scram() {
        for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
            let mut client = ClientConfig::new();
            client
                .set("bootstrap.servers", "127.0.0.1:9")
                .set("security.protocol", "SASL_SSL")
                .set("sasl.mechanism", mechanism)
                .set("sasl.username", "hubsync")
                .set("sasl.password", "secret");
            let created: Result<rdkafka::producer::BaseProducer, _> = client.create();
            assert!(created.is_ok(), "{mechanism}: {:?}", created.err());
        }
    }

    #[test]
    fn connect_headers_name_the_source() {
        use rdkafka::message::Headers;
        let headers = ConnectErrorHeaders {
            topic: "crm.contact.changes",
            partition: 2,
            offset: 41,
            exception_class: "DATA",
            message: "bad",
            stage: "process",
        }
        .to_headers();
        let found: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert!(found.contains(&("__connect.errors.offset".into(), "41".into())));
        assert!(found.contains(&(
            "__connect.errors.topic".into(),
            "crm.contact.changes".into()
        )));
    }
}
