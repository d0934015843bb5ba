//! The process stage: decode upstream contact and company changes and activities, apply the
//! team's rules (pure, in `hubsync-processors`), and emit for each event a command for the sink,
//! or its outcome when a rule decides it (skipped), or a dead letter when the record cannot be
//! written as it is. Each event's offset is stored once what it produced is delivered.
//!
//! An activity that triggers a deal makes two commands, the deal's first (so the sink knows the
//! deal before the activity that links to it) and then the activity's, which answers for the
//! event; the deal's carries the derived event id `{event_id}:deal`
//! (`hubsync_processors::command::Envelope::for_deal`). Both are keyed by the activity's contact,
//! like the contact's own commands. The owner directory for `users.auto_map_by_email` is read
//! from HubSpot once at start ([`owner_directory`]).
//!
//! Records on the replay topic are handled as records of the topic they were copied from
//! ([`crate::lineage`]): their commands go to the replay commands topic carrying the run, and
//! their outcomes name the origin's position and say the run in `stage`. The replay topic is read
//! by a consumer of its own, and only when no live event is waiting: live events never queue
//! behind a replay.
//!
//! Live events are read ahead of the rules ([`ReadAhead`], at most [`READ_AHEAD`] events), by
//! team, and the teams are handled in turn, each team's events in the order read: one team's
//! import, on the same partitions as every team's events, is read past, and the others' events
//! behind it are handled as they come instead of after it. Each offset is still stored only
//! once everything before it in its partition is delivered.

use std::collections::{HashMap, VecDeque};

use futures::FutureExt;
use futures::future::join_all;
use hubsync_processors::activity::planned_object;
use hubsync_processors::catalog::PropertyCatalog;
use hubsync_processors::command::{Envelope, correlation_id, to_command};
use hubsync_processors::decide::{decide_company, decide_contact};
use hubsync_processors::decision::{ACTIVITY_ID_PROPERTY, Problem, SkipCode, error_class, summary};
use hubsync_processors::rules::{Rules, UserRules};
use hubsync_processors::{ActivityDecision, Decision, OwnerDirectory, decide_activity};
use hubsync_schemas::{
    ActivityRecorded, CompanyChanged, ContactChanged, ErrorClass, HubSpotCommand,
    HubSpotObjectType, ReasonCode, SourcePosition,
};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::admin::{Health, StageHealth};
use crate::codec::{AvroCodec, DecodeError};
use crate::config::Topics;
use crate::emit::{Delivery, Emitter};
use crate::hubspot::HubSpotClient;
use crate::kafka::{OffsetTracker, original};
use crate::lineage::{Lineage, REPLAY_OF, REPLAY_RUN, ReplayMark};
use crate::outcomes::{self, EventRef, Failure, Verdict, now_ms};
use crate::position::Position;
use crate::teams::{self, Served, Shared};

pub const STAGE: &str = "process";

pub struct ProcessStage {
    pub consumer: StreamConsumer<crate::kafka::Assignment>,
    /// Reads the replay topic (its own group, `…process-replay`).
    pub replay_consumer: StreamConsumer<crate::kafka::Assignment>,
    pub codec: AvroCodec,
    pub emitter: Emitter,
    pub topics: Topics,
    /// The team of messages too broken to name theirs: the one team a one-team service serves
    /// (empty when it serves several).
    pub team_id: String,
    /// The teams this service serves, each with its rules; an event of any other is left alone.
    pub teams: Shared<ProcessTeam>,
    pub health: Health,
    /// Events read whose outputs are not delivered yet; reading waits beyond it.
    pub max_in_flight: usize,
}

/// Live events read ahead at most (not handled yet), and their bytes at most: enough to read
/// past one team's import of this size to the other teams' live events behind it.
pub const READ_AHEAD: usize = 100_000;
pub const READ_AHEAD_BYTES: usize = 64 << 20;

/// Messages the consumer holds already, read in one turn of the loop.
const READ_AT_ONCE: usize = 500;

/// Events handled in one turn of the loop, before it reads and looks at acknowledgements again.
const HANDLE_AT_ONCE: usize = 64;

/// Live events read and waiting to be handled, per team, each team's in the order read. The
/// teams take turns, one event each: one team's backlog (an import upstream, on the same
/// partitions as everyone's events) does not hold the others' live events back behind it.
/// Events of one record are of one team, so each record's events keep their order.
struct ReadAhead<M> {
    queues: HashMap<Option<String>, VecDeque<M>>,
    /// Teams with events waiting, in turn.
    turns: VecDeque<Option<String>>,
    len: usize,
    bytes: usize,
}

impl<M> Default for ReadAhead<M> {
    fn default() -> Self {
        ReadAhead {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
            bytes: 0,
        }
    }
}

impl<M: Message> ReadAhead<M> {
    fn has_room(&self) -> bool {
        self.len < READ_AHEAD && self.bytes < READ_AHEAD_BYTES
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Teams with events waiting (events that name no team count as one).
    fn teams_waiting(&self) -> usize {
        self.turns.len()
    }

    fn push(&mut self, team: Option<String>, message: M) {
        self.len += 1;
        self.bytes += message_size(&message);
        let queue = self.queues.entry(team.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(team);
        }
        queue.push_back(message);
    }

    /// The next team's oldest event.
    fn next(&mut self) -> Option<M> {
        let team = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&team)?;
        let message = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&team);
        } else {
            self.turns.push_back(team);
        }
        self.len -= 1;
        self.bytes = self.bytes.saturating_sub(message_size(&message));
        Some(message)
    }

    /// Forgets the events read of a partition taken from this instance; returns how many.
    fn drop_partition(&mut self, topic: &str, partition: i32) -> usize {
        let mut dropped = 0;
        for queue in self.queues.values_mut() {
            queue.retain(|message| {
                let theirs = message.topic() == topic && message.partition() == partition;
                if theirs {
                    dropped += 1;
                    self.bytes = self.bytes.saturating_sub(message_size(message));
                }
                !theirs
            });
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        let queues = &self.queues;
        self.turns.retain(|team| queues.contains_key(team));
        self.len -= dropped;
        dropped
    }
}

fn message_size(message: &impl Message) -> usize {
    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len)
}

/// What the process stage keeps of a team it serves.
#[derive(Debug)]
pub struct ProcessTeam {
    /// Where the team's commands go: its commands are keyed by it.
    pub portal_id: u64,
    pub rules: Rules,
    /// The portal's property definitions.
    pub catalog: PropertyCatalog,
    /// The portal's owners by email, for `users.auto_map_by_email` (empty when it is off).
    pub owners: OwnerDirectory,
}

/// The upstream event a message holds.
enum Event {
    Contact(ContactChanged),
    Company(CompanyChanged),
    Activity(ActivityRecorded),
}

impl Event {
    fn team_id(&self) -> &str {
        match self {
            Event::Contact(event) => &event.team_id,
            Event::Company(event) => &event.team_id,
            Event::Activity(event) => &event.team_id,
        }
    }
}

/// A rule's skip, as an outcome's verdict.
fn skipped(code: SkipCode, reason: String) -> Decided {
    Decided::Skip(Verdict::skipped(code.reason(), reason))
}

/// What the rules decided for one event, whatever its kind.
enum Decided {
    /// Commands to emit in this order; the last answers for the event.
    Write(Vec<HubSpotCommand>),
    /// Not written: a rule's skip, or a team whose integration does not run now.
    Skip(Verdict),
    Invalid {
        problems: Vec<Problem>,
    },
}

/// The owners `users.auto_map_by_email` matches senders against: every active owner with an
/// email address, read once (`GET /crm/v3/owners`); empty without a call when auto-mapping is
/// off.
pub async fn owner_directory(
    client: &HubSpotClient,
    users: &UserRules,
) -> Result<OwnerDirectory, crate::hubspot::Error> {
    if !users.auto_map_by_email {
        return Ok(OwnerDirectory::new());
    }
    let owners = client.owners(None).await?;
    let directory: OwnerDirectory = owners
        .iter()
        .filter(|owner| !owner.archived)
        .filter_map(|owner| Some((owner.email.as_deref()?, owner.id.as_str())))
        .collect();
    info!(
        owners = directory.len(),
        "owners read for auto-mapping by email"
    );
    Ok(directory)
}

impl ProcessStage {
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let topics = [
            self.topics.contact_changes.as_str(),
            self.topics.company_changes.as_str(),
            self.topics.activity_events.as_str(),
        ];
        self.consumer.subscribe(&topics)?;
        self.replay_consumer.subscribe(&[&self.topics.replay])?;
        self.health.set(STAGE, StageHealth::Running);
        info!(
            ?topics,
            replay = self.topics.replay,
            "process stage started"
        );
        let (acks, mut acked) = mpsc::channel::<Position>(self.max_in_flight.max(64) * 2);
        let mut tracker = OffsetTracker::default();
        // Live events read and not handled yet, per team, handled in turn.
        let mut ahead = ReadAhead::default();
        // Live and replayed events being handled (their outputs not delivered yet): each side
        // has its bound.
        let mut live_in_flight = 0usize;
        let mut replay_in_flight = 0usize;
        let mut draining = false;
        let mut report = tokio::time::interval(std::time::Duration::from_secs(5));
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            for (topic, partition) in self.consumer.context().take_revoked() {
                // Its next owner reads them again; not handled here too.
                let dropped = ahead.drop_partition(&topic, partition);
                tracker.forget(&topic, partition);
                if dropped > 0 {
                    info!(
                        topic,
                        partition,
                        dropped,
                        "partition revoked: the events read ahead of it are left to its next owner"
                    );
                }
            }
            // Stopping, what was read ahead is handled first: its offsets are stored, and it
            // is not read and answered again at the next start.
            if draining && tracker.in_flight() == 0 && ahead.is_empty() {
                break;
            }
            let can_handle = !ahead.is_empty() && live_in_flight < self.max_in_flight;
            let mut reading = false;
            tokio::select! {
                biased;
                _ = report.tick() => {
                    crate::kafka::report_lag(&self.consumer, STAGE);
                    crate::kafka::report_lag(&self.replay_consumer, STAGE);
                    metrics::gauge!("hubsync_process_read_ahead").set(ahead.len() as f64);
                }
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        info!(in_flight = tracker.in_flight(), read_ahead = ahead.len(), "process stage stopping");
                        draining = true;
                    }
                }
                Some(done) = acked.recv() => {
                    // And every other delivered meanwhile: one turn each would leave the
                    // consumer unread while deliveries keep coming (this branch goes first).
                    let mut next = Some(done);
                    while let Some(done) = next {
                        let consumer = if done.topic == self.topics.replay {
                            replay_in_flight = replay_in_flight.saturating_sub(1);
                            &self.replay_consumer
                        } else {
                            live_in_flight = live_in_flight.saturating_sub(1);
                            &self.consumer
                        };
                        tracker.complete_and_store(
                            consumer,
                            &done.topic,
                            done.partition,
                            done.offset,
                        );
                        next = acked.try_recv().ok();
                    }
                }
                message = self.consumer.recv(), if !draining && ahead.has_room() => {
                    reading = true;
                    self.read_ahead(message, &mut tracker, &mut ahead).await;
                }
                // Replayed events only while no live one waits.
                message = self.replay_consumer.recv(), if !draining && ahead.is_empty() && replay_in_flight < self.max_in_flight => {
                    if let Some(message) = self.track(message, &mut tracker) {
                        self.handle_and_ack(&message, &acks).await;
                        replay_in_flight += 1;
                    }
                }
                () = std::future::ready(()), if can_handle => {}
            }
            // What the consumer holds already, whichever branch woke the loop: deliveries
            // arriving without a pause must not keep reading waiting.
            if !draining {
                for _ in 0..READ_AT_ONCE {
                    if !ahead.has_room() {
                        break;
                    }
                    match self.consumer.recv().now_or_never() {
                        Some(message) => {
                            reading = true;
                            self.read_ahead(message, &mut tracker, &mut ahead).await;
                        }
                        None => break,
                    }
                }
            }
            // The teams' events in turn, each team's in the order read. While there is more to
            // read, one round of the teams waiting: reading on finds the other teams' events
            // behind a backlog sooner than handling the backlog would.
            let most = if reading {
                ahead.teams_waiting().min(HANDLE_AT_ONCE)
            } else {
                HANDLE_AT_ONCE
            };
            let mut handled = 0;
            while handled < most && live_in_flight < self.max_in_flight {
                let Some(message) = ahead.next() else {
                    break;
                };
                self.handle_and_ack(&message, &acks).await;
                live_in_flight += 1;
                handled += 1;
            }
        }
        // Both consumers leave at once: a stop waits for the slower, not for the two in turn.
        futures::join!(
            crate::kafka::leave_group(STAGE, self.consumer, crate::kafka::Commit::Stored),
            crate::kafka::leave_group(
                crate::pipeline::PROCESS_REPLAY_GROUP,
                self.replay_consumer,
                crate::kafka::Commit::Stored
            ),
        );
        self.health
            .set(STAGE, StageHealth::Stopped("shut down".into()));
        info!("process stage stopped");
        Ok(())
    }

    /// A message read, its offset tracked from now until what it produced is delivered.
    fn track<'a>(
        &self,
        message: rdkafka::error::KafkaResult<BorrowedMessage<'a>>,
        tracker: &mut OffsetTracker,
    ) -> Option<BorrowedMessage<'a>> {
        match message {
            Ok(message) => {
                tracker.track(message.topic(), message.partition(), message.offset());
                Some(message)
            }
            Err(error) => {
                warn!(%error, "kafka consumer error; continuing");
                None
            }
        }
    }

    /// A live message read: kept behind its team's others until its turn. Its team is read
    /// from the event (decoding is cheap beside the rest of its handling, and is done again
    /// then); a message that does not decode waits with the others that name no team.
    async fn read_ahead<'a>(
        &self,
        message: rdkafka::error::KafkaResult<BorrowedMessage<'a>>,
        tracker: &mut OffsetTracker,
        ahead: &mut ReadAhead<BorrowedMessage<'a>>,
    ) {
        let Some(message) = self.track(message, tracker) else {
            return;
        };
        let team = self.team_of(&message).await;
        ahead.push(team, message);
    }

    /// The team a live event names, or none when it does not decode.
    async fn team_of(&self, message: &BorrowedMessage<'_>) -> Option<String> {
        let bytes = message.payload().unwrap_or_default();
        let event = self.decode(message.topic(), bytes).await?.ok()?;
        Some(event.team_id().to_owned())
    }

    /// The event `bytes` of `topic` hold; `None` for a topic no rules read.
    async fn decode(&self, topic: &str, bytes: &[u8]) -> Option<Result<Event, DecodeError>> {
        let topics = &self.topics;
        Some(if topic == topics.contact_changes {
            self.codec
                .decode_waiting::<ContactChanged>(bytes)
                .await
                .map(Event::Contact)
        } else if topic == topics.company_changes {
            self.codec
                .decode_waiting::<CompanyChanged>(bytes)
                .await
                .map(Event::Company)
        } else if topic == topics.activity_events {
            self.codec
                .decode_waiting::<ActivityRecorded>(bytes)
                .await
                .map(Event::Activity)
        } else {
            return None;
        })
    }

    /// Handles a message read; its offset is stored once what it produced is delivered.
    async fn handle_and_ack(&self, message: &BorrowedMessage<'_>, acks: &mpsc::Sender<Position>) {
        let position = Position::of(message);
        let deliveries = self.handle(message).await;
        let acks = acks.clone();
        tokio::spawn(async move {
            join_all(deliveries).await;
            let _ = acks.send(position).await;
        });
    }

    /// Everything one message produces; its offset may be stored once these are delivered.
    async fn handle(&self, message: &BorrowedMessage<'_>) -> Vec<Delivery> {
        metrics::counter!("hubsync_process_events_total").increment(1);
        let bytes = message.payload().unwrap_or_default();
        let mut lineage = Lineage::of_message(message);
        if message.topic() != self.topics.replay {
            // Replay marks count only on the replay topic, where `hubsync replay` puts them.
            lineage.replay = None;
        }
        let replay = if message.topic() == self.topics.replay {
            match &lineage.replay {
                Some(mark) => Some(mark),
                None => {
                    let failure = Failure::new(
                        ErrorClass::Data,
                        ReasonCode::ReplayUnmarked,
                        format!(
                            "a record on {} without the {REPLAY_RUN} and {REPLAY_OF} headers; \
                             records reach it through `hubsync replay`",
                            message.topic()
                        ),
                    );
                    return self.dead_letter(message, None, None, &failure).await;
                }
            }
        } else {
            None
        };
        // A replayed record is read as a record of the topic it was copied from.
        let topic = replay.map_or(message.topic(), |m| m.of.topic.as_str());
        let source = origin(message, replay);
        let Some(event) = self.decode(topic, bytes).await else {
            let failure = Failure::new(
                ErrorClass::Config,
                ReasonCode::UnexpectedTopic,
                format!("no rules read topic {topic}"),
            );
            return self.dead_letter(message, None, None, &failure).await;
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                // No event id can be read: the message's position stands in for it, so this
                // input too ends in an outcome.
                let failure = Failure::new(error.class(), error.code(), error.to_string());
                let position = format!("{}/{}/{}", source.topic, source.partition, source.offset);
                let object = if topic == self.topics.company_changes {
                    Some(HubSpotObjectType::Company)
                } else if topic == self.topics.activity_events {
                    // The activity's type, and so its object, is in the bytes that did not decode.
                    None
                } else {
                    Some(HubSpotObjectType::Contact)
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
                    object_type: object,
                    record: None,
                };
                return self
                    .dead_letter_with_outcome(message, &lineage, &undecoded, None, &failure)
                    .await;
            }
        };
        // An event is decided with its own team's rules, and only for a team this service serves.
        let teams = self.teams.current();
        let team = match teams.served(event.team_id()) {
            Served::Active(team) => Ok(team.clone()),
            Served::NotConnected(why) => Err(why.to_string()),
            Served::Unknown => {
                teams::count_unserved(STAGE);
                return Vec::new();
            }
        };
        let gate = |decide: &dyn Fn(&ProcessTeam) -> Decided| match &team {
            Ok(team) => decide(team),
            Err(why) => Decided::Skip(teams::not_connected(why)),
        };
        let now = now_ms();
        let (decided, event_ref) = match &event {
            Event::Contact(contact) => (
                gate(&|team| {
                    written(
                        decide_contact(contact, &team.rules, &team.catalog),
                        Envelope::of_contact(contact, source.clone(), now),
                    )
                }),
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
                gate(&|team| {
                    written(
                        decide_company(company, &team.rules, &team.catalog),
                        Envelope::of_company(company, source.clone(), now),
                    )
                }),
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
            Event::Activity(activity) => (
                gate(&|team| {
                    activity_written(
                        decide_activity(activity, &team.rules, &team.catalog, &team.owners),
                        Envelope::of_activity(activity, source.clone(), now),
                    )
                }),
                event_ref(
                    &activity.event_id,
                    &activity.team_id,
                    activity.event_time,
                    &source,
                    team.as_ref().map_or(HubSpotObjectType::Unknown, |team| {
                        planned_object(activity, &team.rules.activities)
                    }),
                    Some(format!("{ACTIVITY_ID_PROPERTY}:{}", activity.activity_id)),
                ),
            ),
        };
        match decided {
            Decided::Write(commands) => {
                // Only an active team's rules write commands.
                let portal = team.as_ref().map_or(0, |team| team.portal_id);
                let mut deliveries = Vec::with_capacity(commands.len());
                for command in &commands {
                    metrics::counter!("hubsync_process_commands_total").increment(1);
                    let carried = lineage.carried();
                    let sent = if replay.is_some() {
                        self.emitter.replay_command(command, portal, carried).await
                    } else {
                        self.emitter.command(command, portal, carried).await
                    };
                    match sent {
                        Ok(delivery) => deliveries.push(delivery),
                        Err(error) => {
                            let failure = Failure::new(
                                ErrorClass::Internal,
                                ReasonCode::EncodeFailed,
                                error.to_string(),
                            );
                            let letter = self
                                .dead_letter_with_outcome(
                                    message,
                                    &lineage,
                                    &event_ref,
                                    Some(event_ref.event_id.clone()),
                                    &failure,
                                )
                                .await;
                            deliveries.extend(letter);
                            break;
                        }
                    }
                }
                deliveries
            }
            Decided::Skip(verdict) => {
                let outcome = lineage.stamp(outcomes::for_event(
                    &event_ref,
                    &verdict,
                    &lineage.stage_label(STAGE),
                    now,
                ));
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
            Decided::Invalid { problems } => {
                let code = problems
                    .first()
                    .map_or(ReasonCode::InvalidRecord, |p| p.code.reason());
                let failure = Failure::new(error_class(&problems), code, summary(&problems));
                self.dead_letter_with_outcome(
                    message,
                    &lineage,
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
        lineage: &Lineage,
        event: &EventRef,
        letter_event_id: Option<String>,
        failure: &Failure,
    ) -> Vec<Delivery> {
        let team_id = Some(event.team_id.clone()).filter(|team| !team.is_empty());
        let mut deliveries = self
            .dead_letter(message, letter_event_id, team_id, failure)
            .await;
        let verdict = Verdict::dead_lettered(failure);
        let outcome = lineage.stamp(outcomes::for_event(
            event,
            &verdict,
            &lineage.stage_label(STAGE),
            now_ms(),
        ));
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
        team_id: Option<String>,
        failure: &Failure,
    ) -> Vec<Delivery> {
        match self
            .emitter
            .dead_letter(&original(message), event_id, team_id, failure, STAGE)
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

/// A contact's or company's decision, with its command made.
fn written(decision: Decision, envelope: Envelope) -> Decided {
    match decision {
        Decision::Write(draft) => Decided::Write(vec![to_command(draft, envelope)]),
        Decision::Skip { code, reason } => skipped(code, reason),
        Decision::Invalid { problems } => Decided::Invalid { problems },
    }
}

/// An activity's decision, with its commands made: the deal's (if any), then the activity's.
fn activity_written(decision: ActivityDecision, envelope: Envelope) -> Decided {
    match decision {
        ActivityDecision::Write { activity, deal } => {
            let mut commands = Vec::with_capacity(2);
            if let Some(deal) = deal {
                commands.push(to_command(*deal, envelope.for_deal()));
            }
            commands.push(to_command(activity, envelope));
            Decided::Write(commands)
        }
        ActivityDecision::Skip { code, reason } => skipped(code, reason),
        ActivityDecision::Invalid { problems } => Decided::Invalid { problems },
    }
}

/// Where an event was first published: the message's own position, or for a replayed record
/// its origin's.
fn origin(message: &BorrowedMessage<'_>, replay: Option<&ReplayMark>) -> SourcePosition {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    fn message(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(vec![0; 10]),
            Some(b"key".to_vec()),
            "crm.contact.changes".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    fn team(name: &str) -> Option<String> {
        Some(name.to_owned())
    }

    /// A team's import read first does not keep another team's events, read after it, waiting
    /// for all of it: the teams take turns, each team's events in the order read.
    #[test]
    fn teams_take_turns_and_each_keeps_its_order() {
        let mut ahead = ReadAhead::default();
        for offset in 0..5 {
            ahead.push(team("import"), message(0, offset));
        }
        ahead.push(team("live"), message(0, 5));
        ahead.push(None, message(1, 0));
        ahead.push(team("live"), message(1, 1));
        assert_eq!(ahead.len(), 8);
        let order: Vec<i64> = std::iter::from_fn(|| ahead.next())
            .map(|m| m.partition() as i64 * 100 + m.offset())
            .collect();
        assert_eq!(order, vec![0, 5, 100, 1, 101, 2, 3, 4]);
        assert!(ahead.is_empty());
        assert_eq!(ahead.bytes, 0);
    }

    /// A partition taken away leaves nothing of its events behind, of any team, and the others
    /// keep their turns.
    #[test]
    fn a_revoked_partitions_events_are_dropped() {
        let mut ahead = ReadAhead::default();
        ahead.push(team("a"), message(0, 0));
        ahead.push(team("a"), message(1, 0));
        ahead.push(team("b"), message(0, 1));
        ahead.push(team("a"), message(0, 2));
        assert_eq!(ahead.drop_partition("crm.contact.changes", 0), 3);
        assert_eq!(ahead.drop_partition("crm.company.changes", 1), 0);
        assert_eq!(ahead.len(), 1);
        assert_eq!(ahead.bytes, 13);
        let left = ahead.next().expect("one left");
        assert_eq!((left.partition(), left.offset()), (1, 0));
        assert!(ahead.next().is_none());
    }

    /// Reading ahead stops at its bound in events or in bytes.
    #[test]
    fn reading_ahead_is_bounded() {
        let mut ahead = ReadAhead::default();
        assert!(ahead.has_room());
        let big = OwnedMessage::new(
            Some(vec![0; READ_AHEAD_BYTES]),
            None,
            "crm.contact.changes".into(),
            Timestamp::NotAvailable,
            0,
            0,
            None,
        );
        ahead.push(team("a"), big);
        assert!(!ahead.has_room());
        ahead.next();
        assert!(ahead.has_room());
        for offset in 0..READ_AHEAD as i64 {
            ahead.push(team("a"), message(0, offset));
        }
        assert!(!ahead.has_room());
    }
}
