//! The process stage: decode upstream contact and company changes, apply the team's rules (pure,
//! in `hubsync-processors`), and emit for each event a command for the sink, or its outcome when
//! a rule decides it (skipped), or a dead letter when the record cannot be written as it is.
//! Each event's offset is stored once what it produced is delivered.
//!
//! Records on the replay topic are handled as records of the topic they were copied from
//! ([`crate::ops::replay`]): their commands go to the replay commands topic carrying the run, and
//! their outcomes name the origin's position and say the run in `stage`.

use std::sync::Arc;

use futures::future::join_all;
use hubsync_processors::Decision;
use hubsync_processors::catalog::PropertyCatalog;
use hubsync_processors::command::{Envelope, correlation_id, to_command};
use hubsync_processors::decide::{decide_company, decide_contact};
use hubsync_processors::decision::{error_class, summary};
use hubsync_processors::rules::Rules;
use hubsync_schemas::{
    CompanyChanged, ContactChanged, ErrorClass, HubSpotObjectType, SourcePosition,
};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::admin::{Health, StageHealth};
use crate::codec::AvroCodec;
use crate::config::Topics;
use crate::emit::{Delivery, Emitter};
use crate::kafka::{OffsetTracker, original};
use crate::ops::redrive;
use crate::ops::replay::{self, Mark, REPLAY_OF, REPLAY_RUN};
use crate::outcomes::{self, EventRef, Failure, Verdict, now_ms};

pub const STAGE: &str = "process";

pub struct ProcessStage {
    pub consumer: StreamConsumer,
    pub codec: AvroCodec,
    pub emitter: Emitter,
    pub rules: Arc<Rules>,
    pub catalog: Arc<PropertyCatalog>,
    pub topics: Topics,
    /// `team.id`, for the outcomes of messages too broken to name their team.
    pub team_id: String,
    pub health: Health,
    /// Events read whose outputs are not delivered yet; reading waits beyond it.
    pub max_in_flight: usize,
}

type Position = (String, i32, i64);

/// The upstream event a message holds.
enum Event {
    Contact(ContactChanged),
    Company(CompanyChanged),
}

impl ProcessStage {
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let topics = [
            self.topics.contact_changes.as_str(),
            self.topics.company_changes.as_str(),
            self.topics.replay.as_str(),
        ];
        self.consumer.subscribe(&topics)?;
        self.health.set(STAGE, StageHealth::Running);
        info!(?topics, "process stage started");
        let (acks, mut acked) = mpsc::channel::<Position>(self.max_in_flight.max(64) * 2);
        let mut tracker = OffsetTracker::default();
        let mut draining = false;
        loop {
            if draining && tracker.in_flight() == 0 {
                break;
            }
            tokio::select! {
                biased;
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        info!(in_flight = tracker.in_flight(), "process stage stopping");
                        draining = true;
                    }
                }
                Some((topic, partition, offset)) = acked.recv() => {
                    if let Some(safe) = tracker.complete(&topic, partition, offset)
                        && let Err(error) = self.consumer.store_offset(&topic, partition, safe)
                    {
                        debug!(%error, topic, partition, "offset not stored (partition reassigned?)");
                    }
                }
                message = self.consumer.recv(), if !draining && tracker.in_flight() < self.max_in_flight => {
                    match message {
                        Ok(message) => {
                            let position = (message.topic().to_string(), message.partition(), message.offset());
                            tracker.track(&position.0, position.1, position.2);
                            let deliveries = self.handle(&message).await;
                            let acks = acks.clone();
                            tokio::spawn(async move {
                                join_all(deliveries).await;
                                let _ = acks.send(position).await;
                            });
                        }
                        Err(error) => warn!(%error, "kafka consumer error; continuing"),
                    }
                }
            }
        }
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            debug!(%error, "final offset commit failed; the last events will be read again");
        }
        self.health
            .set(STAGE, StageHealth::Stopped("shut down".into()));
        info!("process stage stopped");
        Ok(())
    }

    /// Everything one message produces; its offset may be stored once these are delivered.
    async fn handle(&self, message: &BorrowedMessage<'_>) -> Vec<Delivery> {
        metrics::counter!("hubsync_process_events_total").increment(1);
        let bytes = message.payload().unwrap_or_default();
        let replay = if message.topic() == self.topics.replay {
            match replay::mark_of(message) {
                Some(mark) => Some(mark),
                None => {
                    let failure = Failure::new(
                        ErrorClass::Data,
                        "REPLAY_UNMARKED",
                        format!(
                            "a record on {} without the {REPLAY_RUN} and {REPLAY_OF} headers; \
                             records reach it through `hubsync replay`",
                            message.topic()
                        ),
                    );
                    return self.dead_letter(message, None, &failure).await;
                }
            }
        } else {
            None
        };
        // A replayed record is read as a record of the topic it was copied from.
        let topic = replay
            .as_ref()
            .map_or(message.topic(), |m| m.of.topic.as_str());
        let source = origin(message, replay.as_ref());
        let event = if topic == self.topics.contact_changes {
            self.codec
                .decode_waiting::<ContactChanged>(bytes)
                .await
                .map(Event::Contact)
        } else if topic == self.topics.company_changes {
            self.codec
                .decode_waiting::<CompanyChanged>(bytes)
                .await
                .map(Event::Company)
        } else {
            let failure = Failure::new(
                ErrorClass::Config,
                "UNEXPECTED_TOPIC",
                format!("no rules read topic {topic}"),
            );
            return self.dead_letter(message, None, &failure).await;
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // No event id can be read: the message's position stands in for it, so this
                // input too ends in an outcome.
                let failure = Failure::new(error.class(), error.code(), error.to_string());
                let position = format!("{}/{}/{}", source.topic, source.partition, source.offset);
                let object = if topic == self.topics.company_changes {
                    HubSpotObjectType::Company
                } else {
                    HubSpotObjectType::Contact
                };
                let undecoded = EventRef {
                    event_id: position.clone(),
                    correlation_id: position,
                    team_id: self.team_id.clone(),
                    topic: source.topic.clone(),
                    partition: source.partition,
                    offset: source.offset,
                    key: source.key.clone(),
                    event_time: message.timestamp().to_millis().unwrap_or_else(now_ms),
                    object_type: Some(object),
                    record: None,
                };
                return self
                    .dead_letter_with_outcome(message, &undecoded, None, &failure)
                    .await;
            }
        };
        let now = now_ms();
        let (decision, envelope, event_ref) = match &event {
            Event::Contact(contact) => (
                decide_contact(contact, &self.rules, &self.catalog),
                Envelope::of_contact(contact, source.clone(), now),
                event_ref(
                    &contact.event_id,
                    &contact.team_id,
                    contact.event_time,
                    &source,
                    HubSpotObjectType::Contact,
                    contact
                        .email
                        .clone()
                        .or_else(|| Some(contact.contact_id.clone())),
                ),
            ),
            Event::Company(company) => (
                decide_company(company, &self.rules, &self.catalog),
                Envelope::of_company(company, source.clone(), now),
                event_ref(
                    &company.event_id,
                    &company.team_id,
                    company.event_time,
                    &source,
                    HubSpotObjectType::Company,
                    company
                        .domain
                        .clone()
                        .or_else(|| Some(company.company_id.clone())),
                ),
            ),
        };
        match decision {
            Decision::Write(draft) => {
                let command = to_command(draft, envelope);
                metrics::counter!("hubsync_process_commands_total").increment(1);
                let redrive_of = redrive::redrive_of(message);
                let sent = match &replay {
                    Some(mark) => {
                        let carried = replay::carried(redrive_of.as_deref(), mark);
                        self.emitter.replay_command(&command, Some(carried)).await
                    }
                    None => {
                        let carried = redrive::carried(redrive_of.as_deref());
                        self.emitter.command_with_headers(&command, carried).await
                    }
                };
                match sent {
                    Ok(delivery) => vec![delivery],
                    Err(error) => {
                        let failure =
                            Failure::new(ErrorClass::Internal, "ENCODE_FAILED", error.to_string());
                        self.dead_letter_with_outcome(
                            message,
                            &event_ref,
                            Some(event_ref.event_id.clone()),
                            &failure,
                        )
                        .await
                    }
                }
            }
            Decision::Skip { code, reason } => {
                let outcome = redrive::with_redrive(
                    outcomes::for_event(
                        &event_ref,
                        &Verdict::skipped(code.as_str(), reason),
                        &outcome_stage(message),
                        now,
                    ),
                    redrive::redrive_of(message),
                );
                metrics::counter!("hubsync_outcomes_total", "stage" => STAGE, "status" => "SKIPPED").increment(1);
                self.emitter
                    .outcome(&outcome)
                    .await
                    .map(|d| vec![d])
                    .unwrap_or_else(|error| {
                        error!(%error, "cannot encode an outcome");
                        Vec::new()
                    })
            }
            Decision::Invalid { problems } => {
                let code = problems
                    .first()
                    .map_or("INVALID_RECORD", |p| p.code.as_str());
                let failure = Failure::new(error_class(&problems), code, summary(&problems));
                self.dead_letter_with_outcome(
                    message,
                    &event_ref,
                    Some(event_ref.event_id.clone()),
                    &failure,
                )
                .await
            }
        }
    }

    /// A dead letter and the outcome that says so. `letter_event_id` is the event id the dead
    /// letter names: none when the message could not be decoded.
    async fn dead_letter_with_outcome(
        &self,
        message: &BorrowedMessage<'_>,
        event: &EventRef,
        letter_event_id: Option<String>,
        failure: &Failure,
    ) -> Vec<Delivery> {
        let mut deliveries = self.dead_letter(message, letter_event_id, failure).await;
        let verdict = Verdict::dead_lettered(
            &failure.code,
            format!(
                "dead-lettered ({}): {}",
                failure.class.as_str(),
                failure.message
            ),
        );
        let outcome = redrive::with_redrive(
            outcomes::for_event(event, &verdict, &outcome_stage(message), now_ms()),
            redrive::redrive_of(message),
        );
        metrics::counter!("hubsync_outcomes_total", "stage" => STAGE, "status" => "DEAD_LETTERED")
            .increment(1);
        match self.emitter.outcome(&outcome).await {
            Ok(delivery) => deliveries.push(delivery),
            Err(error) => error!(%error, "cannot encode an outcome"),
        }
        deliveries
    }

    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        event_id: Option<String>,
        failure: &Failure,
    ) -> Vec<Delivery> {
        match self
            .emitter
            .dead_letter(&original(message), event_id, failure, STAGE)
            .await
        {
            Ok(delivery) => vec![delivery],
            Err(error) => {
                error!(%error, "cannot encode a dead letter");
                Vec::new()
            }
        }
    }
}

/// Where an event was first published: the message's own position, or for a replayed record
/// its origin's.
fn origin(message: &BorrowedMessage<'_>, replay: Option<&Mark>) -> SourcePosition {
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    match replay {
        Some(mark) => SourcePosition {
            topic: mark.of.topic.clone(),
            partition: mark.of.partition,
            offset: mark.of.offset,
            key,
        },
        None => SourcePosition {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key,
        },
    }
}

/// The `stage` of an outcome this stage records: `process`, or `process replay:{run}`.
fn outcome_stage(message: &BorrowedMessage<'_>) -> String {
    let run = replay::mark_of(message).map(|mark| mark.run);
    replay::stage_label(STAGE, run.as_deref())
}

fn event_ref(
    event_id: &str,
    team_id: &str,
    event_time: i64,
    source: &SourcePosition,
    object: HubSpotObjectType,
    record: Option<String>,
) -> EventRef {
    EventRef {
        event_id: event_id.to_string(),
        correlation_id: correlation_id(source),
        team_id: team_id.to_string(),
        topic: source.topic.clone(),
        partition: source.partition,
        offset: source.offset,
        key: source.key.clone(),
        event_time,
        object_type: Some(object),
        record,
    }
}
