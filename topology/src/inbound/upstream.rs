//! From HubSpot's events to upstream: reads `[topics] hubspot_webhooks` (what the receiver and
//! polling put there, HubSpot's JSON verbatim), translates each event with its team's rules and
//! sends the result on `[topics] hubspot_changes`.
//!
//! ```text
//! hubsync.hubspot.webhooks --(batch of up to 500)--> translate --> crm.hubspot.changes
//!                                                       |             (wait for the broker)
//!                                                       v
//!                                     remember ids, clocks --> store offsets
//! ```
//!
//! At least once, and each change with one id: a batch's offsets are stored, and what it
//! remembers is written, only after all its changes are on the broker, so a crash sends a batch
//! again with the same ids rather than losing it; consumers drop a change whose id they have.
//!
//! Beside it, [`learn_identities`] reads the sink's outcomes to learn which upstream record each
//! HubSpot record is (the key and `record_id` of a change).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hubsync_schemas::{ErrorClass, HubSpotObjectType, OutcomeStatus, ReasonCode, SyncOutcome};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::codec::AvroCodec;
use crate::emit::Emitter;
use crate::kafka::original;
use crate::outcomes::{Failure, now_ms};
use crate::state::State;

use super::Portals;
use super::memory::{Memory, SEEN_FOR};
use super::translate::{Effect, HubSpotEvent, Translator, object_path};

/// Events translated together, and remembered together once on Kafka.
const BATCH: usize = 500;
/// How long a batch waits for more events once it has one.
const GATHER: Duration = Duration::from_millis(20);

pub struct Forwarder {
    pub consumer: StreamConsumer,
    pub emitter: Emitter,
    pub topic: String,
    pub portals: Portals,
    pub memory: Memory,
    /// The sink's state, when the sink runs in this process: its last-written values are echoes.
    pub sink_state: Option<State>,
    pub stage: &'static str,
    pub health: crate::admin::Health,
}

impl Forwarder {
    pub async fn run(self, mut stopping: watch::Receiver<bool>) -> anyhow::Result<()> {
        self.consumer.subscribe(&[&self.topic])?;
        info!(topic = self.topic, "forwarding HubSpot's changes upstream");
        self.health
            .set(self.stage, crate::admin::StageHealth::Running);
        let mut pruned_at = 0i64;
        loop {
            let first = tokio::select! {
                message = self.consumer.recv() => message,
                _ = stopping.changed() => break,
            };
            if *stopping.borrow() {
                break;
            }
            let first = match first {
                Ok(message) => message,
                Err(error) => {
                    // librdkafka reconnects by itself; the events wait on the topic.
                    warn!(%error, "reading HubSpot's events; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match tokio::time::timeout(GATHER, self.consumer.recv()).await {
                    Ok(Ok(message)) => batch.push(message),
                    Ok(Err(error)) => {
                        warn!(%error, "reading HubSpot's events");
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.forward(&batch).await?;
            let now = now_ms();
            if now - pruned_at > 3_600_000 {
                let forgotten = self.memory.prune_seen(now - SEEN_FOR.as_millis() as i64)?;
                debug!(forgotten, "forgot the ids of changes sent long ago");
                pruned_at = now;
            }
        }
        crate::kafka::leave_group(self.stage, self.consumer, crate::kafka::Commit::Stored).await;
        Ok(())
    }

    /// Translates, sends and remembers one batch, then stores its offsets.
    async fn forward(&self, batch: &[BorrowedMessage<'_>]) -> anyhow::Result<()> {
        let mut translator = Translator::new(&self.memory, self.sink_state.as_ref());
        let mut deliveries = Vec::new();
        let mut effects = Vec::new();
        for message in batch {
            let Some(payload) = message.payload() else {
                continue;
            };
            let event: HubSpotEvent = match serde_json::from_slice(payload) {
                Ok(event) => event,
                Err(error) => {
                    let failure = Failure::new(
                        ErrorClass::Data,
                        ReasonCode::MalformedHubSpotEvent,
                        format!("not a HubSpot event hubsync can read: {error}"),
                    );
                    deliveries.push(
                        self.emitter
                            .dead_letter(&original(message), None, None, &failure, self.stage)
                            .await?,
                    );
                    continue;
                }
            };
            let Some(view) = self.portals.view(event.portal_id) else {
                // The team was removed or paused since the event was received.
                metrics::counter!("hubsync_inbound_events_total", "result" => "unserved")
                    .increment(1);
                continue;
            };
            let translated = translator.translate(&view, &event)?;
            match &translated.sent {
                Ok(change) => {
                    metrics::counter!(
                        "hubsync_inbound_changes_total",
                        "change" => change.change.as_str(),
                        "via" => change.via.clone().unwrap_or_default()
                    )
                    .increment(1);
                    deliveries.push(self.emitter.hubspot_change(change).await?);
                }
                Err(why) => {
                    metrics::counter!("hubsync_inbound_events_total", "result" => why.as_str())
                        .increment(1);
                }
            }
            effects.extend(
                translated
                    .effects
                    .into_iter()
                    .map(|e| (view.team.clone(), e)),
            );
        }
        futures::future::join_all(deliveries).await;
        let now = now_ms();
        for (team, effect) in effects {
            match effect {
                Effect::Seen(id) => self.memory.mark_seen(&id, now)?,
                Effect::Clock(key, at) => self.memory.advance_clock(&key, at)?,
                Effect::Upstream {
                    object,
                    hubspot_id,
                    upstream_id,
                } => self
                    .memory
                    .set_upstream_id(&team, object, &hubspot_id, &upstream_id)?,
            }
        }
        self.memory.flush()?;
        let mut last: HashMap<i32, i64> = HashMap::new();
        for message in batch {
            let offset = last.entry(message.partition()).or_insert(message.offset());
            *offset = (*offset).max(message.offset());
        }
        for (partition, offset) in last {
            if let Err(error) = self.consumer.store_offset(&self.topic, partition, offset) {
                debug!(%error, partition, "offset not stored (partition reassigned?)");
            }
        }
        Ok(())
    }
}

/// Learns from the sink's outcomes which upstream record each HubSpot contact and company is:
/// an outcome that names a HubSpot id for an event of the contact or company topic ties the
/// event's key (the upstream id) to it, per team.
pub async fn learn_identities(
    consumer: StreamConsumer,
    codec: AvroCodec,
    outcomes_topic: String,
    record_topics: Arc<[(String, HubSpotObjectType)]>,
    memory: Memory,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let learner = IdentityLearner {
        codec,
        record_topics,
        memory,
    };
    crate::kafka::follow(
        crate::pipeline::INBOUND_IDENTITY_GROUP,
        consumer,
        &outcomes_topic,
        1000,
        crate::kafka::Resume::Group,
        stopping,
        learner,
    )
    .await
}

struct IdentityLearner {
    codec: AvroCodec,
    record_topics: Arc<[(String, HubSpotObjectType)]>,
    memory: Memory,
}

impl crate::kafka::Follower for IdentityLearner {
    async fn apply(&mut self, payload: Vec<u8>) -> anyhow::Result<()> {
        match self.codec.decode::<SyncOutcome>(&payload).await {
            Ok(outcome) => {
                if let Some((object, hubspot_id, upstream_id)) =
                    identity(&outcome, &self.record_topics)
                {
                    self.memory.set_upstream_id(
                        &outcome.team_id,
                        object,
                        hubspot_id,
                        upstream_id,
                    )?;
                    metrics::counter!("hubsync_inbound_identities_learned_total").increment(1);
                }
            }
            Err(error) => debug!(%error, "an outcome hubsync cannot read; skipped"),
        }
        Ok(())
    }

    async fn flush(&mut self, _: &std::collections::HashMap<i32, i64>) -> anyhow::Result<()> {
        Ok(self.memory.flush()?)
    }
}

/// `(object, HubSpot id, upstream id)` an outcome ties together.
fn identity<'a>(
    outcome: &'a SyncOutcome,
    record_topics: &[(String, HubSpotObjectType)],
) -> Option<(&'static str, &'a str, &'a str)> {
    if !matches!(
        outcome.status,
        OutcomeStatus::Created | OutcomeStatus::Updated | OutcomeStatus::Unchanged
    ) {
        return None;
    }
    let (_, object) = record_topics
        .iter()
        .find(|(topic, _)| *topic == outcome.source_topic)?;
    if outcome.hubspot_object_type != Some(*object) {
        return None;
    }
    Some((
        object_path(*object),
        outcome.hubspot_id.as_deref()?,
        outcome.source_key.as_deref()?,
    ))
}
