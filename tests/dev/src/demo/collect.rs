//! Reading what the pipeline recorded: every outcome, every dead letter and every HubSpot change
//! sent upstream, from the start of their topics, while the pipeline runs and until the end of
//! the topics once it has stopped.
//!
//! The reader is assigned the topics' partitions rather than joining a consumer group, so it
//! reads from the first moment (no group join to wait for) and never disturbs the pipeline's
//! groups.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use hubsync_schemas::{
    DeadLetter, HubSpotChange, HubSpotChangeKind, HubSpotObjectType, OutcomeStatus, SyncOutcome,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use hubsync::codec::AvroCodec;
use hubsync::config::Topics;

/// One outcome as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub status: OutcomeStatus,
    pub reason_code: String,
    pub hubspot_id: Option<String>,
}

/// One dead letter as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub event_id: Option<String>,
    pub code: String,
    pub stage: String,
}

/// One HubSpot change as read from `crm.hubspot.changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub team: Option<String>,
    pub kind: HubSpotChangeKind,
    /// The HubSpot record.
    pub object_id: String,
    /// The upstream record it is, when the pipeline knows.
    pub record_id: Option<String>,
    pub property: Option<String>,
    /// Each upstream field the change sets, and its value.
    pub fields: Vec<(String, Option<String>)>,
    /// Who made it in HubSpot: `CRM_UI` (a user), `INTEGRATION` (an app)...
    pub change_source: Option<String>,
}

impl From<HubSpotChange> for Change {
    fn from(change: HubSpotChange) -> Self {
        Change {
            team: change.team_id,
            kind: change.change,
            object_id: change.object_id,
            record_id: change.record_id,
            property: change.property_name,
            fields: change
                .fields
                .into_iter()
                .map(|field| (field.field, field.value))
                .collect(),
            change_source: change.change_source,
        }
    }
}

/// Everything read so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Outcomes per event id, in the order read.
    pub outcomes: HashMap<String, Vec<Seen>>,
    pub dead_letters: Vec<Letter>,
    /// Events waited for that have no outcome yet.
    pub missing: HashSet<String>,
    /// Dead letters of records that could not be decoded (no event id).
    pub undecodable: usize,
    /// Records that could not be read back (should stay 0).
    pub unreadable: usize,
    /// HubSpot's changes sent upstream, in the order read.
    pub changes: Vec<Change>,
    /// Outcomes that tie a HubSpot contact or company to its upstream record: those the
    /// inbound stage learns upstream ids from.
    pub identities: usize,
}

impl Tally {
    fn outcome(&mut self, outcome: SyncOutcome, topics: &Topics) {
        if ties_identity(&outcome, topics) {
            self.identities += 1;
        }
        self.missing.remove(&outcome.event_id);
        self.outcomes
            .entry(outcome.event_id)
            .or_default()
            .push(Seen {
                status: outcome.status,
                reason_code: outcome.reason_code,
                hubspot_id: outcome.hubspot_id,
            });
    }

    fn dead_letter(&mut self, letter: DeadLetter) {
        if letter.event_id.is_none() {
            self.undecodable += 1;
        }
        self.dead_letters.push(Letter {
            event_id: letter.event_id,
            code: letter.error.code,
            stage: letter.error.stage,
        });
    }
}

/// Whether the inbound stage learns an upstream id from `outcome`: a contact or company event's,
/// naming the HubSpot record it was written to.
fn ties_identity(outcome: &SyncOutcome, topics: &Topics) -> bool {
    let object = if outcome.source_topic == topics.contact_changes {
        HubSpotObjectType::Contact
    } else if outcome.source_topic == topics.company_changes {
        HubSpotObjectType::Company
    } else {
        return false;
    };
    matches!(
        outcome.status,
        OutcomeStatus::Created | OutcomeStatus::Updated | OutcomeStatus::Unchanged
    ) && outcome.hubspot_object_type == Some(object)
        && outcome.hubspot_id.is_some()
        && outcome.source_key.is_some()
}

pub struct Collector {
    tally: Arc<Mutex<Tally>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Collector {
    /// Starts reading the outcomes, the dead letters and HubSpot's changes from their
    /// beginnings; `wanted` are the event ids whose outcomes are waited for.
    pub fn start(
        brokers: &str,
        codec: AvroCodec,
        topics: &Topics,
        wanted: HashSet<String>,
    ) -> anyhow::Result<Collector> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "hubsync-demo-reader")
            .set("enable.auto.commit", "false")
            .set("client.id", "hubsync-demo-reader")
            .create()
            .context("creating the outcome reader")?;
        let mut assignment = TopicPartitionList::new();
        for topic in [&topics.outcomes, &topics.dlq, &topics.hubspot_changes] {
            let metadata = tokio::task::block_in_place(|| {
                consumer.fetch_metadata(Some(topic), Duration::from_secs(10))
            })
            .with_context(|| format!("reading the partitions of {topic}"))?;
            for t in metadata.topics() {
                for partition in t.partitions() {
                    assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
                }
            }
        }
        consumer
            .assign(&assignment)
            .context("assigning the outcome, dead-letter and HubSpot change partitions")?;
        let tally = Arc::new(Mutex::new(Tally {
            missing: wanted,
            ..Tally::default()
        }));
        let (stop, stopping) = watch::channel(false);
        let reader = Reader {
            consumer,
            codec,
            topics: topics.clone(),
            tally: tally.clone(),
            next: HashMap::new(),
        };
        let task = tokio::spawn(reader.run(stopping));
        Ok(Collector { tally, stop, task })
    }

    /// What has been read so far.
    pub fn tally(&self) -> MutexGuard<'_, Tally> {
        lock(&self.tally)
    }

    /// Reads on to the end of both topics as they are now, then stops; returns everything read.
    pub async fn finish(self) -> anyhow::Result<Tally> {
        let _ = self.stop.send(true);
        self.task.await.context("the outcome reader failed")??;
        let tally = Arc::try_unwrap(self.tally)
            .map_err(|_| anyhow::anyhow!("the outcome reader still holds its tally"))?;
        Ok(tally.into_inner().unwrap_or_else(|p| p.into_inner()))
    }
}

fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Reader {
    consumer: StreamConsumer,
    codec: AvroCodec,
    topics: Topics,
    tally: Arc<Mutex<Tally>>,
    /// The next offset to read per partition.
    next: HashMap<(String, i32), i64>,
}

impl Reader {
    async fn run(mut self, mut stopping: watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                changed = stopping.changed() => {
                    if changed.is_err() || *stopping.borrow() {
                        break;
                    }
                }
                message = self.consumer.recv() => match message {
                    Ok(message) => handle(&self.codec, &self.topics, &self.tally, &mut self.next, &message).await,
                    Err(error) => warn!(%error, "reading outcomes; continuing"),
                },
            }
        }
        self.read_to_end().await
    }

    /// Reads until every assigned partition is at its high watermark as of now.
    async fn read_to_end(&mut self) -> anyhow::Result<()> {
        let assignment = self.consumer.assignment()?;
        let mut ends = Vec::new();
        for element in assignment.elements() {
            let (topic, partition) = (element.topic().to_string(), element.partition());
            let (_, high) = tokio::task::block_in_place(|| {
                self.consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            })
            .with_context(|| format!("reading the end of {topic}/{partition}"))?;
            ends.push(((topic, partition), high));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let behind = ends
                .iter()
                .any(|(at, high)| self.next.get(at).copied().unwrap_or(0) < *high);
            if !behind {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    handle(
                        &self.codec,
                        &self.topics,
                        &self.tally,
                        &mut self.next,
                        &message,
                    )
                    .await
                }
                Ok(Err(error)) => warn!(%error, "reading outcomes; continuing"),
                Err(_) => anyhow::bail!(
                    "the outcome, dead-letter and HubSpot change topics could not be read to their end within 30 s"
                ),
            }
        }
    }
}

/// Records one message read from the outcome, dead-letter or HubSpot change topic.
async fn handle(
    codec: &AvroCodec,
    topics: &Topics,
    tally: &Mutex<Tally>,
    next: &mut HashMap<(String, i32), i64>,
    message: &BorrowedMessage<'_>,
) {
    next.insert(
        (message.topic().to_string(), message.partition()),
        message.offset() + 1,
    );
    let bytes = message.payload().unwrap_or_default();
    if message.topic() == topics.outcomes {
        match codec.decode::<SyncOutcome>(bytes).await {
            Ok(outcome) => lock(tally).outcome(outcome, topics),
            Err(error) => {
                warn!(%error, offset = message.offset(), "an outcome could not be decoded");
                lock(tally).unreadable += 1;
            }
        }
    } else if message.topic() == topics.hubspot_changes {
        match codec.decode::<HubSpotChange>(bytes).await {
            Ok(change) => lock(tally).changes.push(change.into()),
            Err(error) => {
                warn!(%error, offset = message.offset(), "a HubSpot change could not be decoded");
                lock(tally).unreadable += 1;
            }
        }
    } else {
        match codec.decode::<DeadLetter>(bytes).await {
            Ok(letter) => lock(tally).dead_letter(letter),
            Err(error) => {
                warn!(%error, offset = message.offset(), "a dead letter could not be decoded");
                lock(tally).unreadable += 1;
            }
        }
    }
}
