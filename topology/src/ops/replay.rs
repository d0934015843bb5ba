//! Replay: source records re-processed with the current rules, which is how a mapping change
//! reaches history, and how parked events are tried again once the rules let them through.
//!
//! `hubsync replay` copies the selected records of a source topic (by time, by offsets, or the
//! positions of events whose latest outcome is `PARKED`) onto the replay topic
//! (`topics.replay`), each unchanged but for two headers:
//!
//! ```text
//! crm.contact.changes/2/812  {key, value, headers}
//!   -> hubsync.replay  key, value, headers + hubsync.replay.run=mapping-v2
//!                                          + hubsync.replay.of=crm.contact.changes/2/812
//! ```
//!
//! The process stage reads the replay topic beside the source topics, decodes each record as its
//! origin's topic says, and sends the command it makes to the replay commands topic
//! (`topics.replay_commands`) carrying the run. The sink treats those commands as a backfill
//! lane: their own coalescers, a share of HubSpot's budget that gives way to live work, and
//! processed-event keys `{run}:{event_id}`, so a replayed event is written again although its
//! event id was processed live, while a run resumed after an interruption writes nothing twice.
//!
//! Outcomes of replayed events name the origin's topic, partition and offset (as live outcomes
//! do) and say the run in `stage`: `sink replay:mapping-v2`, `process replay:mapping-v2`. The
//! headers, run names, processed keys and stage labels are [`crate::lineage`]'s, which the
//! stages read too.
//!
//! # Layout
//! - this module: what can go wrong, and [`plan_run`]: a new run's checkpoint from its selection;
//! - [`plan`]: what a selection covers, partition by partition (Kafka lookups);
//! - [`checkpoint`]: a run's progress in `state.dir/replay/<run>.json`;
//! - [`copy`]: reading the planned records and publishing them to the replay topic, chunk by
//!   chunk, each chunk delivered before the checkpoint moves past it;
//! - [`parked`]: the source positions of events whose latest outcome is still `PARKED`.

pub mod checkpoint;
pub mod copy;
pub mod parked;
pub mod plan;

use rdkafka::consumer::StreamConsumer;
use rdkafka::error::KafkaError;

use crate::config::Config;
use crate::lineage::RunName;
use crate::ops::range::Window;
use crate::ops::scan::TopicReader;
use crate::outcomes::now_ms;
use checkpoint::Checkpoint;
use plan::Selection;

/// A new run's checkpoint: the spans its selection covers now (for parked events, how many are
/// no longer on their topic too).
pub async fn plan_run(
    config: &Config,
    consumer: &StreamConsumer,
    reader: &TopicReader,
    name: &RunName,
    selection: Selection,
) -> Result<Checkpoint, ReplayError> {
    let mut missing = 0;
    let spans = match &selection {
        Selection::Time { topic, since, .. } => {
            plan::by_time(consumer, reader, topic, *since).await?
        }
        Selection::Offsets { topic, from, to } => plan::by_offsets(consumer, topic, from, to)?,
        Selection::Parked {
            topic,
            since,
            until,
            team,
        } => {
            let window = Window {
                since: *since,
                until: *until,
            };
            let (spans, gone) = parked::spans(
                config,
                consumer,
                reader,
                topic.as_deref(),
                window,
                team.as_deref(),
            )
            .await?;
            missing = gone;
            spans
        }
    };
    let mut checkpoint = Checkpoint::new(
        name.as_str(),
        selection,
        &config.topics.replay,
        spans,
        now_ms(),
    );
    checkpoint.missing = missing;
    Ok(checkpoint)
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot create a Kafka client: {0}; check [kafka] in the configuration")]
    Client(#[source] KafkaError),
    #[error(
        "topic {topic} does not exist on the brokers; check --topic, [topics] in the configuration and kafka.brokers"
    )]
    NoSuchTopic { topic: String },
    #[error(
        "topic {topic} has no partition {partition} (its partitions are 0 to {last}); check --from-offsets and --to-offsets"
    )]
    NoSuchPartition {
        topic: String,
        partition: i32,
        last: i32,
    },
    #[error("cannot read the {what} of {topic}: {source}; are the brokers reachable?")]
    Kafka {
        what: &'static str,
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "reading {topic} stalled: no record for {seconds}s while partitions {partitions:?} were unfinished; are the brokers reachable?"
    )]
    Stalled {
        topic: String,
        partitions: Vec<i32>,
        seconds: u64,
    },
    #[error(
        "cannot publish the copy of {of} to {topic}: {source}; the run stopped before its checkpoint moved past it, so running it again copies it again"
    )]
    Publish {
        of: String,
        topic: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error(transparent)]
    Scan(#[from] super::scan::ScanError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
}

/// A Kafka lookup that failed, naming what and where.
pub(crate) fn kafka(what: &'static str, topic: &str, source: KafkaError) -> ReplayError {
    ReplayError::Kafka {
        what,
        topic: topic.to_string(),
        source,
    }
}
