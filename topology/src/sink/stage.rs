//! The sink stage's loop: read commands, recognise events already processed, coalesce, dispatch
//! batches to the [`Writer`] with bounded concurrency, record and emit every event's outcome, and
//! store each offset once everything its message produced is delivered.
//!
//! Every team's commands are held and written apart: coalescers per team and object, each batch
//! written with its own team's connection (its token, its portal's budget and state). Batches
//! are taken from the teams in turn, so one team's backlog does not hold the others' live records
//! back. When HubSpot refuses a team's token that team pauses alone: its batch waits,
//! `/healthz` names it, and its token is probed with backoff; once it works the team resumes
//! where it stopped. Nothing is dead-lettered for it, and the other teams go on.
//!
//! Replayed commands ([`crate::lineage`]) arrive on their own topic and form a backfill
//! lane: coalescers of their own (holding up to `stages.sink.replay_max_pending` commands, each
//! record for at least [`REPLAY_MIN_LINGER`] and until the topic has been quiet for
//! [`REPLAY_QUIET`], so a record's whole history merges into one write, while live records keep
//! their linger), batches of their own ([`REPLAY_BATCHES`] at once, beside the
//! live ones), HubSpot calls in the budget's
//! backfill lane, and processed-event keys `{run}:{event_id}`. Replayed commands are read by a
//! consumer of their own, only when no live command waits, and it is paused while the lane holds
//! its most: live commands never queue behind replayed ones. A record is written by one lane at
//! a time. Stopping, the stage writes the live commands it holds but leaves replayed ones not yet
//! in a batch unacknowledged, to be read again at the next start.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::join_all;
use hubsync_schemas::{
    HubSpotCommand, HubSpotObjectType, IdentityKind, OutcomeStatus, SyncOutcome,
};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::changelog::Restorer;
use super::coalesce::{Arriving, Coalescer, Member, PendingRecord};
use super::receipt::{Names, Receipt};
use super::reread::Rereader;
use super::spill::Spill;
use super::verdict::{self, Unavailable};
use super::writer::{Resolution, Writer};
use crate::admin::{Health, StageHealth};
use crate::codec::AvroCodec;
use crate::emit::{Delivery, Emitter};
use crate::hubspot::budget::backfill;
use crate::hubspot::{HubSpotClient, ObjectType};
use crate::kafka::{Assignment, OffsetTracker, original};
use crate::lineage::Lineage;
use crate::outcomes::{self, Failure, Original, Verdict, now_ms};
use crate::position::Position;
use crate::state::{StateError, record_key};
use crate::teams::{self, Served, Shared};

pub const STAGE: &str = "sink";

/// The directory, under `state.dir`, where commands beyond a team's share of memory wait.
pub const SPILL_DIR: &str = "sink-spill";

/// How long the replay commands topic must have been quiet (nothing read, because nothing
/// more came or because the lane is full and its topic paused) before replayed records are
/// written: while a replay is read, each record's later events may still come.
pub const REPLAY_QUIET: Duration = Duration::from_secs(2);

/// How often coalescers left empty are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Replayed batches written at once (live batches have `max_in_flight` of their own): each ends
/// in many outcomes and much state to remember, work the live lane shares the CPU with.
pub const REPLAY_BATCHES: usize = 2;

/// The least a replayed record waits for more of its history before it is written (or the
/// sink's linger, if longer): a replay has no one waiting on it, and every event of the record
/// that arrives meanwhile rides along in the same write.
pub const REPLAY_MIN_LINGER: Duration = Duration::from_secs(10);

/// A batch task being written: its lane, and its records to give back when it ends.
struct Running {
    lane: Lane,
    /// Commands in the batch: their offsets stay unstored if the task fails.
    commands: usize,
    slot: Slot,
    keys: Vec<String>,
}

/// Where a record waits: its team and its object type.
type Slot = (Arc<str>, HubSpotObjectType);

/// How many of a lane's batches one team may be writing at once.
#[derive(Clone, Copy)]
struct Shares<'a> {
    /// Batches being written, per team.
    writing: &'a HashMap<Arc<str>, usize>,
    /// While another team has a batch due.
    fair: usize,
    /// While no other team has one.
    alone: usize,
}

impl<'a> Shares<'a> {
    /// Half the lane's batches while others wait. Alone, a live team keeps one free for the
    /// next team's live records; a replay (whose lane live records never wait for) takes all.
    fn of(lane: Lane, most: usize, writing: &'a HashMap<Arc<str>, usize>) -> Self {
        let fair = most.div_ceil(2);
        let alone = match lane {
            Lane::Live => (most - 1).max(fair),
            Lane::Replay => most,
        };
        Shares {
            writing,
            fair,
            alone,
        }
    }
}

/// Whether a team's portal has room in its budget for another of the team's batches: a batch
/// that would wait for its calls' slots is not started, so that it does not hold a place the
/// other teams' batches could write in (a backlog spends its portal's window, then waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    Now,
    /// The window takes a call again then.
    At(std::time::Instant),
    /// The room left is for the team's batches being written; one of them ends first.
    AfterOwn,
}

/// What the sink keeps of a team it serves: its connection to its portal, and its writer (that
/// connection and the portal's own state).
pub struct SinkTeam {
    pub writer: Writer,
    pub client: HubSpotClient,
}

/// A team whose records wait: HubSpot refuses its token, or does not answer. When HubSpot is
/// asked again.
struct Paused {
    reason: String,
    cause: PauseCause,
    /// Since when (for the metric that says how long).
    since: std::time::SystemTime,
    delay: Duration,
    /// When it is probed next; `None` while a probe is out.
    at: Option<Instant>,
}

/// Why a team's records wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PauseCause {
    /// HubSpot refuses the team's token.
    Auth,
    /// HubSpot does not answer (5xx, timeouts, connection errors) for the team's portal.
    Outage,
}

impl PauseCause {
    fn as_str(self) -> &'static str {
        match self {
            PauseCause::Auth => "auth",
            PauseCause::Outage => "outage",
        }
    }
}

/// Why a batch's team must pause.
struct Pause {
    reason: String,
    cause: PauseCause,
}

/// Live commands, or replayed ones (the backfill lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Live,
    Replay,
}

impl Lane {
    fn of(lineage: &Lineage) -> Lane {
        if lineage.replay.is_some() {
            Lane::Replay
        } else {
            Lane::Live
        }
    }
}

/// The records waiting to be written, per lane, team and object type.
#[derive(Debug, Default)]
struct Pending {
    live: HashMap<Slot, Coalescer>,
    replay: HashMap<Slot, Coalescer>,
    /// Every slot of either lane, in the order first seen: batches are looked for from `next`
    /// on, so the teams take turns.
    slots: Vec<Slot>,
    next: usize,
    /// Topic, team and run names the held commands share.
    names: Names,
    /// The team whose commands were last kept on disk, by those commands' key (their portal).
    /// While that team has commands on disk, the next ones of its portal go behind them as they
    /// were read, decoded only when taken back: reading a large backlog costs a copy each.
    spilling: HashMap<Vec<u8>, Arc<str>>,
}

impl Pending {
    fn lane_mut(&mut self, lane: Lane) -> &mut HashMap<Slot, Coalescer> {
        match lane {
            Lane::Live => &mut self.live,
            Lane::Replay => &mut self.replay,
        }
    }

    fn lane(&self, lane: Lane) -> &HashMap<Slot, Coalescer> {
        match lane {
            Lane::Live => &self.live,
            Lane::Replay => &self.replay,
        }
    }

    fn coalescer(&mut self, lane: Lane, slot: Slot, settings: &SinkSettings) -> &mut Coalescer {
        if !self.live.contains_key(&slot) && !self.replay.contains_key(&slot) {
            self.slots.push(slot.clone());
        }
        self.lane_mut(lane).entry(slot).or_insert_with(|| {
            let (linger, hold) = match lane {
                Lane::Live => (settings.linger, settings.hold),
                Lane::Replay => (
                    settings.linger.max(REPLAY_MIN_LINGER),
                    settings.replay_max_pending,
                ),
            };
            Coalescer::new(linger, settings.batch_size, hold)
        })
    }

    /// The lane's next due batch of a team not `paused`, leaving out records the other lane is
    /// writing. The search starts after the slot the last batch came from, so every team's due
    /// records get their turn. A team writing `shares.fair` of the lane's batches already gets
    /// another only when no other team has one due, and never more than `shares.alone`: a
    /// backlog, whose calls may wait for its portal's budget, leaves room for the others.
    fn take_batch(
        &mut self,
        lane: Lane,
        now: std::time::Instant,
        flush: bool,
        paused: &HashMap<Arc<str>, Paused>,
        shares: Shares<'_>,
        ready: &dyn Fn(&Arc<str>, Lane) -> Ready,
    ) -> Option<(Slot, Vec<PendingRecord>)> {
        let (mine, other) = match lane {
            Lane::Live => (&mut self.live, &self.replay),
            Lane::Replay => (&mut self.replay, &self.live),
        };
        let count = self.slots.len();
        let writing = |team: &Arc<str>| shares.writing.get(team).copied().unwrap_or(0);
        for most in [shares.fair, shares.alone] {
            // Whether a team was passed over for its share alone: only then is the second
            // round, up to `alone`, worth making.
            let mut capped = false;
            for turn in 0..count {
                let index = (self.next + turn) % count;
                let slot = &self.slots[index];
                let Some(c) = mine.get_mut(slot) else {
                    continue;
                };
                if c.pending_records() == 0 || paused.contains_key(&slot.0) {
                    continue;
                }
                let held = writing(&slot.0);
                if held >= most {
                    capped |= held < shares.alone;
                    continue;
                }
                let busy = |key: &str| other.get(slot).is_some_and(|o| o.is_in_flight(key));
                // The budget is asked last, and only of a slot with a batch due: at many teams
                // most hold a record or two still lingering.
                if !c.may_be_due(now, flush, busy) || (!flush && ready(&slot.0, lane) != Ready::Now)
                {
                    continue;
                }
                if let Some(batch) = c.take_batch_avoiding(now, flush, busy) {
                    self.next = (index + 1) % count;
                    return Some((slot.clone(), batch));
                }
            }
            if !capped {
                break;
            }
        }
        None
    }

    /// Live commands held for `team`, of every object type.
    fn live_of(&self, team: &Arc<str>) -> usize {
        HubSpotObjectType::ALL
            .iter()
            .filter_map(|object| self.live.get(&(team.clone(), *object)))
            .map(Coalescer::pending_commands)
            .sum()
    }

    /// Drops the live records waiting for a time still to come; returns how many commands they
    /// held.
    fn drop_waiting(&mut self, now: std::time::Instant) -> usize {
        self.live.values_mut().map(|c| c.drop_waiting(now)).sum()
    }

    /// Drops the lane's records not in a batch; returns how many commands they held.
    fn abandon(&mut self, lane: Lane) -> usize {
        self.lane_mut(lane)
            .values_mut()
            .map(Coalescer::clear_pending)
            .sum()
    }

    /// Drops the coalescers that hold nothing and write nothing, so that a quiet team costs
    /// nothing when batches are looked for: the turns go over the teams with records only.
    fn prune(&mut self) {
        self.live.retain(|_, c| !c.is_idle());
        self.replay.retain(|_, c| !c.is_idle());
        let (live, replay) = (&self.live, &self.replay);
        self.slots
            .retain(|slot| live.contains_key(slot) || replay.contains_key(slot));
        if self.next >= self.slots.len() {
            self.next = 0;
        }
    }

    /// Commands held for these teams, in either lane.
    fn pending_of<'a>(&self, teams: impl Iterator<Item = &'a Arc<str>>) -> usize {
        let teams: Vec<&Arc<str>> = teams.collect();
        self.live
            .iter()
            .chain(&self.replay)
            .filter(|(slot, _)| teams.contains(&&slot.0))
            .map(|(_, c)| c.pending_commands())
            .sum()
    }

    fn pending_commands(&self, lane: Lane) -> usize {
        self.lane(lane)
            .values()
            .map(Coalescer::pending_commands)
            .sum()
    }

    /// When the next record of a lane that may start a batch (`open`: live, replay) is due,
    /// among teams not `paused`; replayed records not before `replay_from`.
    fn next_due(
        &self,
        open: [bool; 2],
        replay_from: std::time::Instant,
        paused: &HashMap<Arc<str>, Paused>,
        ready: &dyn Fn(&Arc<str>, Lane) -> Ready,
    ) -> Option<std::time::Instant> {
        let due =
            |lane: Lane, mine: &HashMap<Slot, Coalescer>, other: &HashMap<Slot, Coalescer>| {
                let mut soonest: Option<std::time::Instant> = None;
                for (slot, c) in mine {
                    if c.pending_records() == 0 || paused.contains_key(&slot.0) {
                        continue;
                    }
                    let Some(due) = c.next_due_avoiding(|key| {
                        other.get(slot).is_some_and(|o| o.is_in_flight(key))
                    }) else {
                        continue;
                    };
                    // The budget can only put a record later: not asked when the record is no
                    // sooner than one found already.
                    if soonest.is_some_and(|soonest| due >= soonest) {
                        continue;
                    }
                    let due = match ready(&slot.0, lane) {
                        Ready::Now => due,
                        Ready::At(at) => due.max(at),
                        Ready::AfterOwn => continue,
                    };
                    soonest = Some(soonest.map_or(due, |soonest| soonest.min(due)));
                }
                soonest
            };
        let live = open[0]
            .then(|| due(Lane::Live, &self.live, &self.replay))
            .flatten();
        let replay = open[1]
            .then(|| due(Lane::Replay, &self.replay, &self.live))
            .flatten()
            .map(|due| due.max(replay_from));
        live.into_iter().chain(replay).min()
    }
}

#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub linger: Duration,
    pub batch_size: usize,
    /// Records held for their linger at most (see [`Coalescer`]).
    pub hold: usize,
    /// Batches written at once.
    pub max_in_flight: usize,
    /// Replayed commands held at most: the replay commands topic is paused beyond it and
    /// resumed below three quarters of it.
    pub replay_max_pending: usize,
    /// Commands held in memory (read, not yet written); reading pauses beyond it.
    pub max_pending: usize,
    /// Live commands one team holds in memory at most: its next ones wait on disk
    /// ([`Spill`]), so that one team's backlog leaves the others room.
    pub team_max_pending: usize,
}

/// Commands waiting on disk at most, of every team: reading pauses beyond it (as it does when
/// the sink runs without an overflow).
pub const MAX_SPILLED: usize = 2_000_000;

/// Commands read at most in one turn of the loop, of those the consumer already holds.
const READ_AT_ONCE: usize = 500;

/// Commands taken back from disk per turn of the loop, so reading and writing go on meanwhile.
const READMIT_PER_TURN: usize = 1_000;

pub struct SinkStage {
    /// Reads the commands topic; its context says which partitions it holds.
    pub consumer: StreamConsumer<Assignment>,
    /// Reads the replay commands topic (its own group, `…sink-replay`).
    pub replay_consumer: StreamConsumer<Assignment>,
    pub codec: AvroCodec,
    pub emitter: Emitter,
    /// The teams this service serves, each with its connection; a command of any other team is
    /// never written.
    pub teams: Shared<SinkTeam>,
    pub health: Health,
    pub settings: SinkSettings,
    /// Where a team's commands beyond its share of memory wait; without it, reading pauses for
    /// every team when the memory bound is reached.
    pub spill: Option<Spill>,
    /// Reads a replayed command's message again for its dead letter.
    pub reread: Arc<Rereader>,
    /// Restores a commands partition's state from the changelog before its first command is
    /// handled (when the state has a changelog).
    pub restorer: Option<Restorer>,
    /// What the consumer's group assigned it, and took away.
    pub assignment: Assignment,
}

/// What a finished batch hands back to the loop.
struct BatchDone {
    retry: Vec<(PendingRecord, Option<Duration>)>,
    paused: Option<Pause>,
    delivered: Vec<Position>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("subscribing to the commands topic: {0}")]
    Subscribe(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl SinkStage {
    /// Reads commands from `topic` and replayed ones from `replay_topic` until `shutdown`.
    pub async fn run(
        mut self,
        topic: &str,
        replay_topic: &str,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SinkError> {
        self.consumer.subscribe(&[topic])?;
        self.replay_consumer.subscribe(&[replay_topic])?;
        self.health.set(STAGE, StageHealth::Running);
        info!(topic, replay_topic, "sink stage started");
        let (acks, mut acked) = mpsc::channel::<Position>(self.settings.max_pending.max(64) * 2);
        let mut coalescers = Pending::default();
        let mut spill = self.spill.take();
        // Batches being written per lane, and each batch task's lane and commands.
        let mut writing = [0usize; 2];
        let mut running: HashMap<tokio::task::Id, Running> = HashMap::new();
        let mut replay_paused = false;
        let mut report = tokio::time::interval(REPORT_EVERY);
        // Teams whose budget gauges are exported: those that came near a limit once.
        let mut reported = HashSet::new();
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        metrics::gauge!("hubsync_sink_paused_teams").set(0.0);
        // When the last replayed command was read.
        let mut replay_read_at = Instant::now();
        // Commands whose offsets will not be stored (replayed ones dropped at shutdown, those of
        // a failed batch task): read again at the next start.
        let mut abandoned = 0usize;
        let mut tracker = OffsetTracker::default();
        let mut batches: JoinSet<BatchDone> = JoinSet::new();
        // Teams whose token HubSpot refuses, and when each is tried again.
        let mut paused: HashMap<Arc<str>, Paused> = HashMap::new();
        // Probes of paused teams being made, each answering whether HubSpot takes the team's
        // requests again: apart from the loop, which goes on for every other team meanwhile.
        let mut probes: JoinSet<(Arc<str>, bool)> = JoinSet::new();
        // Each probe's team, by its task.
        let mut probing: HashMap<tokio::task::Id, Arc<str>> = HashMap::new();
        let mut draining = false;
        let mut draining_since: Option<Instant> = None;
        let mut pruned_at = Instant::now();
        // Batches each lane may write at once.
        let most = [
            self.settings.max_in_flight,
            REPLAY_BATCHES.min(self.settings.max_in_flight),
        ];

        loop {
            let now = Instant::now();
            self.follow_assignment(&mut tracker, &mut coalescers, spill.as_mut());
            if now >= pruned_at + PRUNE_EVERY {
                coalescers.prune();
                pruned_at = now;
            }
            if draining {
                // Writing a replay's backlog could take minutes of budget: what is not in a
                // batch yet stays unacknowledged, and is read again after the restart.
                abandoned += coalescers.abandon(Lane::Replay);
                // Nor is a wait for search to show an interrupted create, or a backoff, waited
                // out: such commands stay unacknowledged and are read again at the next start.
                abandoned += coalescers.drop_waiting(now.into_std());
                // What waits on disk was never acknowledged either.
                if let Some(spill) = spill.as_mut()
                    && !spill.is_empty()
                {
                    abandoned += spill.clear();
                }
            }
            {
                // Replayed records wait for the replay to be read (or the lane to be full).
                let replay_quiet = draining || now >= replay_read_at + REPLAY_QUIET;
                for lane in [Lane::Live, Lane::Replay] {
                    if lane == Lane::Replay && !replay_quiet {
                        continue;
                    }
                    while writing[lane as usize] < most[lane as usize] {
                        let per_team = writing_by_team(&running, lane);
                        let shares = Shares::of(lane, most[lane as usize], &per_team);
                        let teams_now = self.teams.current();
                        let ready = |team: &Arc<str>, lane: Lane| {
                            let writing = per_team.get(team).copied().unwrap_or(0);
                            budget_ready(&teams_now, team, lane, writing)
                        };
                        let Some((slot, records)) = coalescers.take_batch(
                            lane,
                            now.into_std(),
                            draining,
                            &paused,
                            shares,
                            &ready,
                        ) else {
                            break;
                        };
                        let teams = self.teams.current();
                        let team = match teams.served(&slot.0) {
                            Served::Active(team) => team.clone(),
                            served => {
                                // Held while its team was active; paused, disconnected or
                                // removed since: answered as a command of such a team is.
                                let why = match served {
                                    Served::NotConnected(why) => why.to_string(),
                                    _ => format!("team {} is no longer served", slot.0),
                                };
                                let verdict = teams::not_connected(&why);
                                if let Some(c) = coalescers.lane_mut(lane).get_mut(&slot) {
                                    c.release(records.iter().map(|r| r.key.clone()));
                                }
                                for record in &records {
                                    for member in &record.members {
                                        let outcome = member.receipt.outcome(
                                            &verdict,
                                            STAGE,
                                            &record.identity.value,
                                            now_ms(),
                                        );
                                        self.answer(outcome, member.receipt.position(), &acks)
                                            .await;
                                    }
                                }
                                continue;
                            }
                        };
                        writing[lane as usize] += 1;
                        let started = Running {
                            lane,
                            commands: records.iter().map(|r| r.members.len()).sum(),
                            slot: slot.clone(),
                            keys: records.iter().map(|r| r.key.clone()).collect(),
                        };
                        let batch = write_batch(
                            team.writer.clone(),
                            team.client.clone(),
                            self.emitter.clone(),
                            self.reread.clone(),
                            slot.1,
                            records,
                        );
                        // A revocation of the team's partition waits for the write to end.
                        let writing = self
                            .partition_of(&team)
                            .map(|partition| self.assignment.writing(partition));
                        let batch = batch.inspect(move |_| drop(writing));
                        let task = match lane {
                            Lane::Live => batches.spawn(batch),
                            // Its HubSpot calls give way to live ones.
                            Lane::Replay => batches.spawn(backfill(batch)),
                        };
                        running.insert(task.id(), started);
                    }
                }
            }
            if let Some(spill) = spill.as_mut()
                && !draining
                && !spill.is_empty()
            {
                abandoned += self.readmit(spill, &mut coalescers, &acks).await?;
            }
            let live_pending = coalescers.pending_commands(Lane::Live);
            let replay_pending = coalescers.pending_commands(Lane::Replay);
            let pending = live_pending + replay_pending;
            {
                let most_replayed = self.settings.replay_max_pending;
                let full = replay_pending >= most_replayed;
                let room = replay_pending < most_replayed / 4 * 3;
                if (full && !replay_paused) || (room && replay_paused) {
                    replay_paused = full;
                    debug!(
                        replay_pending,
                        paused = full,
                        "replay commands topic paused or resumed"
                    );
                    self.pause_replay(full);
                }
            }
            // What a paused team holds stays unacknowledged: read again at the next start.
            let held_paused: usize = coalescers.pending_of(paused.keys());
            if draining
                && pending <= held_paused
                && batches.is_empty()
                && tracker.in_flight() <= abandoned + held_paused
            {
                break;
            }
            // Only lanes that could start a batch: with every slot of a lane taken, its due
            // records wait for a batch to finish instead of waking the loop again and again.
            let open = [0, 1].map(|lane| writing[lane] < most[lane]);
            let next_due = {
                let per_team =
                    [Lane::Live, Lane::Replay].map(|lane| writing_by_team(&running, lane));
                let teams_now = self.teams.current();
                let ready = |team: &Arc<str>, lane: Lane| {
                    let writing = per_team[lane as usize].get(team).copied().unwrap_or(0);
                    // A team writing the most it may: its records wait for one of its batches
                    // to end, which wakes the loop, not for a time.
                    let most = most[lane as usize];
                    if writing >= Shares::of(lane, most, &per_team[lane as usize]).alone {
                        return Ready::AfterOwn;
                    }
                    budget_ready(&teams_now, team, lane, writing)
                };
                coalescers
                    .next_due(
                        open,
                        (replay_read_at + REPLAY_QUIET).into_std(),
                        &paused,
                        &ready,
                    )
                    .map(Instant::from_std)
            };
            let probe_at = paused.values().filter_map(|p| p.at).min();
            let spilled = spill.as_ref().map_or(0, Spill::len);
            let can_read =
                !draining && live_pending < self.settings.max_pending && spilled < MAX_SPILLED;
            tokio::select! {
                biased;
                changed = shutdown.changed(), if !draining => {
                    if changed.is_err() || *shutdown.borrow() {
                        info!(pending, in_flight = batches.len(), "sink stage stopping: writing what it holds, but for replayed commands not in a batch yet (read again at the next start)");
                        draining = true;
                        draining_since = Some(Instant::now());
                        // Fetching stops; the consumer is still polled (below) so that the group
                        // can rebalance meanwhile.
                        pause_assigned(&self.consumer, true);
                    }
                }
                // While stopping, the consumer is polled only to take part in rebalances: a
                // partition taken from this instance leaves its held commands to the next owner
                // (`follow_assignment`) instead of being written by two instances. A message
                // read meanwhile (of a partition assigned since) is not taken: its offset is not
                // stored, so the partition's owner reads it again.
                message = self.consumer.recv(), if draining => {
                    if let Ok(message) = message {
                        let mut list = rdkafka::TopicPartitionList::new();
                        list.add_partition(message.topic(), message.partition());
                        if let Err(error) = self.consumer.pause(&list) {
                            debug!(%error, "could not pause a partition assigned while stopping");
                        }
                    }
                }
                Some(position) = acked.recv() => {
                    self.complete(&mut tracker, replay_topic, position);
                    // The others delivered meanwhile, in the same turn.
                    while let Ok(position) = acked.try_recv() {
                        self.complete(&mut tracker, replay_topic, position);
                    }
                }
                Some(joined) = batches.join_next_with_id() => {
                    let (id, written) = match joined {
                        Ok((id, done)) => (id, Ok(done)),
                        Err(failure) => (failure.id(), Err(failure)),
                    };
                    // Every batch task spawned is in `running`.
                    let Some(batch) = running.remove(&id) else {
                        continue;
                    };
                    writing[batch.lane as usize] = writing[batch.lane as usize].saturating_sub(1);
                    // Its records may be written again (their later commands, or themselves).
                    if let Some(c) = coalescers.lane_mut(batch.lane).get_mut(&batch.slot) {
                        c.release(batch.keys);
                    }
                    let done = match written {
                        Ok(done) => done,
                        Err(panic) => {
                            // The batch's offsets stay unstored: its commands are read again after
                            // a restart, and stopping need not wait for them.
                            abandoned += batch.commands;
                            error!(%panic, "a batch task failed; its commands will be read again after a restart");
                            continue;
                        }
                    };
                    for position in done.delivered {
                        self.complete(&mut tracker, replay_topic, position);
                    }
                    // A live record to try again whose partition was taken meanwhile is its
                    // next owner's: that one reads its commands again and writes them.
                    let given_away = batch.lane == Lane::Live
                        && !done.retry.is_empty()
                        && !self.owns_partition_of(&batch.slot.0, topic);
                    if given_away {
                        let commands: usize = done.retry.iter().map(|(r, _)| r.members.len()).sum();
                        info!(team = %batch.slot.0, commands, "partition revoked while its batch was written: what it would try again is left to the next owner");
                    }
                    // While stopping, what must wait for a later time is dropped at the top of
                    // the loop (`drop_waiting`).
                    for (record, later) in done.retry.into_iter().filter(|_| !given_away) {
                        let c = coalescers.coalescer(batch.lane, batch.slot.clone(), &self.settings);
                        match later {
                            Some(delay) => c.requeue_at(record, (Instant::now() + delay).into_std()),
                            None => c.requeue(record),
                        }
                    }
                    if let Some(pause) = done.paused && !paused.contains_key(&batch.slot.0) {
                        let team = batch.slot.0.clone();
                        let Pause { reason, cause } = pause;
                        warn!(team = %team, %reason, cause = cause.as_str(), "pausing the team's writes until hubspot takes them again; its records wait");
                        metrics::counter!("hubsync_sink_pauses_total", "cause" => cause.as_str()).increment(1);
                        let delay = Duration::from_secs(2);
                        paused.insert(team, Paused {
                            reason,
                            cause,
                            since: std::time::SystemTime::now(),
                            delay,
                            at: Some(Instant::now() + delay),
                        });
                        self.report_paused(&paused);
                    }
                }
                message = self.consumer.recv(), if can_read => {
                    match message {
                        Ok(message) => self.accept(&message, true, &mut tracker, &mut coalescers, spill.as_mut(), &acks).await?,
                        Err(error) => warn!(%error, "kafka consumer error; continuing"),
                    }
                }
                // Only when no live command waits; polled while paused too, so the consumer
                // stays in its group.
                message = self.replay_consumer.recv(), if !draining => {
                    match message {
                        Ok(message) => {
                            if replay_paused {
                                // A partition assigned since the pause: it holds back too.
                                self.pause_replay(true);
                            }
                            replay_read_at = Instant::now();
                            self.accept(&message, false, &mut tracker, &mut coalescers, None, &acks).await?;
                            // What else the consumer holds already, as for live commands, up
                            // to the lane's bound.
                            let room = self
                                .settings
                                .replay_max_pending
                                .saturating_sub(replay_pending + 1);
                            for _ in 0..room.min(READ_AT_ONCE) {
                                match self.replay_consumer.recv().now_or_never() {
                                    Some(Ok(message)) => {
                                        self.accept(&message, false, &mut tracker, &mut coalescers, None, &acks).await?
                                    }
                                    Some(Err(error)) => warn!(%error, "kafka consumer error on the replay commands; continuing"),
                                    None => break,
                                }
                            }
                        }
                        Err(error) => warn!(%error, "kafka consumer error on the replay commands; continuing"),
                    }
                }
                _ = report.tick() => {
                    self.report(&mut reported);
                    if let Some(since) = draining_since {
                        let waited_s = since.elapsed().as_secs();
                        let unacknowledged = tracker.in_flight();
                        let batches = batches.len();
                        if since.elapsed() >= crate::pipeline::STOP_REPORT {
                            warn!(pending, batches, unacknowledged, abandoned, held_paused, waited_s, "sink stage still stopping");
                        } else {
                            info!(pending, batches, unacknowledged, abandoned, held_paused, waited_s, "sink stage still stopping");
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_due.unwrap_or(now + Duration::from_secs(3600))), if next_due.is_some() => {}
                _ = tokio::time::sleep_until(probe_at.unwrap_or(now)), if probe_at.is_some() => {
                    self.start_probes(&mut paused, &mut probes, &mut probing);
                }
                Some(probed) = probes.join_next_with_id(), if !probes.is_empty() => {
                    match probed {
                        Ok((id, (team, answers))) => {
                            probing.remove(&id);
                            self.probed(&mut paused, team, answers);
                        }
                        Err(failure) => {
                            // A probe that failed to run answers nothing: its team is asked again
                            // in its turn.
                            error!(%failure, "a probe of hubspot failed to run");
                            if let Some(team) = probing.remove(&failure.id()) {
                                self.probed(&mut paused, team, false);
                            }
                        }
                    }
                }
            }
            // What else the consumer holds already, whichever branch woke the loop (deliveries
            // and batches ending one after another must not keep reading waiting), before the
            // loop looks at every team's records again: one look per message would cost the
            // teams' count each.
            if !draining {
                let held = coalescers.pending_commands(Lane::Live);
                let spilled = spill.as_ref().map_or(0, Spill::len);
                let room = self
                    .settings
                    .max_pending
                    .saturating_sub(held)
                    .min(MAX_SPILLED.saturating_sub(spilled));
                for _ in 0..room.min(READ_AT_ONCE) {
                    match self.consumer.recv().now_or_never() {
                        Some(Ok(message)) => {
                            self.accept(
                                &message,
                                true,
                                &mut tracker,
                                &mut coalescers,
                                spill.as_mut(),
                                &acks,
                            )
                            .await?
                        }
                        Some(Err(error)) => warn!(%error, "kafka consumer error; continuing"),
                        None => break,
                    }
                }
            }
        }
        // Both consumers leave at once: a stop waits for the slower, not for the two in turn.
        futures::join!(
            crate::kafka::leave_group(STAGE, self.consumer, crate::kafka::Commit::Stored),
            crate::kafka::leave_group(
                crate::pipeline::SINK_REPLAY_GROUP,
                self.replay_consumer,
                crate::kafka::Commit::Stored
            ),
        );
        self.health
            .set(STAGE, StageHealth::Stopped("shut down".into()));
        info!("sink stage stopped");
        Ok(())
    }

    /// A message's outputs are delivered: stores the offset below which all of its partition's
    /// are.
    fn complete(&self, tracker: &mut OffsetTracker, replay_topic: &str, position: Position) {
        let consumer = if position.topic == replay_topic {
            &self.replay_consumer
        } else {
            &self.consumer
        };
        tracker.complete_and_store(
            consumer,
            &position.topic,
            position.partition,
            position.offset,
        );
    }

    /// Asks HubSpot, for every paused team whose time has come, whether it takes the team's
    /// requests again (one request, never retried); the answers come back to [`Self::probed`].
    fn start_probes(
        &self,
        paused: &mut HashMap<Arc<str>, Paused>,
        probes: &mut JoinSet<(Arc<str>, bool)>,
        probing: &mut HashMap<tokio::task::Id, Arc<str>>,
    ) {
        let now = Instant::now();
        let teams = self.teams.current();
        for (team, pause) in paused.iter_mut() {
            if pause.at.is_none_or(|at| at > now) {
                continue;
            }
            pause.at = None;
            let team = team.clone();
            let task = match teams.served(&team) {
                Served::Active(kept) => {
                    let client = kept.client.clone();
                    let team = team.clone();
                    probes.spawn(async move {
                        let answers = match client.probe().await {
                            Ok(()) => true,
                            Err(error) => {
                                debug!(team = %team, %error, "hubspot still does not take the team's requests");
                                false
                            }
                        };
                        (team, answers)
                    })
                }
                // No longer served as it was: nothing left to wait for.
                _ => {
                    let team = team.clone();
                    probes.spawn(async move { (team, true) })
                }
            };
            probing.insert(task.id(), team);
        }
    }

    /// A probe's answer: the team resumes, or waits twice as long (at most a minute).
    fn probed(&self, paused: &mut HashMap<Arc<str>, Paused>, team: Arc<str>, answers: bool) {
        if answers {
            if let Some(pause) = paused.remove(&team) {
                let waited = pause.since.elapsed().unwrap_or_default();
                info!(team = %team, cause = pause.cause.as_str(), waited_s = waited.as_secs(), "hubspot takes the team's requests again: resuming it");
            }
            metrics::gauge!("hubsync_team_paused", "team" => team.to_string()).set(0.0);
            metrics::gauge!("hubsync_team_paused_since_seconds", "team" => team.to_string())
                .set(0.0);
        } else if let Some(pause) = paused.get_mut(&team) {
            pause.delay = (pause.delay * 2).min(Duration::from_secs(60));
            pause.at = Some(Instant::now() + pause.delay);
        }
        self.report_paused(paused);
    }

    /// `/healthz`: running, or degraded naming every paused team and why.
    fn report_paused(&self, paused: &HashMap<Arc<str>, Paused>) {
        // A series per team that ever paused: a handful among thousands of teams.
        metrics::gauge!("hubsync_sink_paused_teams").set(paused.len() as f64);
        for (team, pause) in paused {
            metrics::gauge!("hubsync_team_paused", "team" => team.to_string()).set(1.0);
            let since = pause
                .since
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            metrics::gauge!("hubsync_team_paused_since_seconds", "team" => team.to_string())
                .set(since.as_secs_f64());
        }
        if paused.is_empty() {
            self.health.set(STAGE, StageHealth::Running);
            return;
        }
        let mut teams: Vec<String> = paused
            .iter()
            .map(|(team, p)| format!("team {team}: {}", p.reason))
            .collect();
        teams.sort();
        self.health
            .set(STAGE, StageHealth::Degraded(teams.join("; ")));
    }

    /// Pauses or resumes fetching replayed commands.
    fn pause_replay(&self, pause: bool) {
        pause_assigned(&self.replay_consumer, pause);
    }

    /// One command read: its offset is tracked from now on, then it is [admitted](Self::admit).
    async fn accept(
        &self,
        message: &BorrowedMessage<'_>,
        live: bool,
        tracker: &mut OffsetTracker,
        coalescers: &mut Pending,
        mut spill: Option<&mut Spill>,
        acks: &mpsc::Sender<Position>,
    ) -> Result<(), SinkError> {
        self.follow_assignment(tracker, coalescers, spill.as_deref_mut());
        // A live command's partition is this instance's (the replay consumer's group assigns
        // its topic apart).
        if live
            && let Some(restorer) = &self.restorer
            && restorer.ensure(message.partition(), &self.health).await
        {
            self.taken_over(restorer, message.partition())?;
        }
        tracker.track(message.topic(), message.partition(), message.offset());
        metrics::counter!("hubsync_sink_commands_total").increment(1);
        if live
            && let Some(spill) = spill.as_deref_mut()
            && let Some(team) = message.key().and_then(|key| coalescers.spilling.get(key))
            && spill.holds(team)
        {
            let team = team.clone();
            if keep_on_disk(spill, &team, &original(message)) {
                return Ok(());
            }
        }
        self.admit(Incoming::Read(message), coalescers, spill, acks)
            .await
    }

    /// Forgets what the consumer knew of the partitions taken from it: their offsets in flight
    /// (they cannot be stored any more) and that their state was restored (a partition that
    /// comes back is restored again, from where the local copy stopped).
    /// Live commands held for its teams are dropped, here and on disk: the partition's next
    /// owner reads them from Kafka.
    fn follow_assignment(
        &self,
        tracker: &mut OffsetTracker,
        coalescers: &mut Pending,
        mut spill: Option<&mut Spill>,
    ) {
        for (topic, partition) in self.replay_consumer.context().take_revoked() {
            tracker.forget(&topic, partition);
        }
        for (topic, partition) in self.assignment.take_revoked() {
            tracker.forget(&topic, partition);
            let Some(restorer) = &self.restorer else {
                continue;
            };
            restorer.forget(partition);
            let mut dropped = 0;
            for (team_id, team) in self.teams.current().active() {
                if self.partition_of(team) != Some(partition) {
                    continue;
                }
                let team_id = coalescers.names.team(team_id);
                for object in HubSpotObjectType::ALL {
                    if let Some(c) = coalescers.live.get_mut(&(team_id.clone(), *object)) {
                        dropped += c.clear_pending();
                    }
                }
                if let Some(spill) = spill.as_deref_mut() {
                    dropped += spill.clear_team(&team_id);
                }
            }
            info!(
                topic,
                partition,
                dropped,
                "partition revoked: its held commands are left to its next owner"
            );
        }
    }

    /// Whether this instance holds the commands partition of `team`'s portal: true too when
    /// partitions are not followed or the team is not served (its commands are answered so).
    fn owns_partition_of(&self, team: &str, topic: &str) -> bool {
        let teams = self.teams.current();
        let Served::Active(team) = teams.served(team) else {
            return true;
        };
        self.partition_of(team)
            .is_none_or(|partition| self.assignment.holds(topic, partition))
    }

    /// The commands partition of a team's portal (when partitions are followed).
    fn partition_of(&self, team: &SinkTeam) -> Option<i32> {
        let restorer = self.restorer.as_ref()?;
        let portal = team.writer.state().portal()?;
        Some(restorer.changelog.partition_of(portal))
    }

    /// After `partition` was restored, for each portal on it: its store begins now unless the
    /// changelog knew an earlier beginning, and its first request goes alone, so that what
    /// HubSpot says is left of its window (which the previous owner may have spent) is known
    /// before more are sent.
    fn taken_over(&self, restorer: &Restorer, partition: i32) -> Result<(), SinkError> {
        for (_, team) in self.teams.current().active() {
            let state = team.writer.state();
            if state
                .portal()
                .is_some_and(|portal| restorer.changelog.partition_of(portal) == partition)
            {
                state.mark_began()?;
                team.client.budget().reprobe();
            }
        }
        Ok(())
    }

    /// Takes back from disk the commands of each team that has room for them again, oldest
    /// first, up to [`READMIT_PER_TURN`]; returns how many could not be read back (left
    /// unacknowledged, read again from Kafka at the next start).
    async fn readmit(
        &self,
        spill: &mut Spill,
        coalescers: &mut Pending,
        acks: &mpsc::Sender<Position>,
    ) -> Result<usize, SinkError> {
        let mut turn = READMIT_PER_TURN;
        let mut unreadable = 0;
        for team in spill.teams() {
            while turn > 0 && coalescers.live_of(&team) < self.settings.team_max_pending {
                match spill.pop(&team) {
                    Ok(Some(message)) => {
                        turn -= 1;
                        self.admit(Incoming::Kept(message), coalescers, None, acks)
                            .await?;
                    }
                    Ok(None) => break,
                    Err(error) => {
                        error!(team = %team, %error, "a command kept on disk is lost here; it is read again from kafka after a restart");
                        unreadable += 1;
                    }
                }
            }
        }
        Ok(unreadable)
    }

    /// One command, read now or taken back from disk: dead-letter it if it does not decode,
    /// answer it from state if its event was processed before (by its run, for a replayed one),
    /// keep it on disk while its team holds its share of memory (given `spill`), otherwise hold
    /// it for its record's next batch.
    async fn admit(
        &self,
        incoming: Incoming<'_>,
        coalescers: &mut Pending,
        spill: Option<&mut Spill>,
        acks: &mpsc::Sender<Position>,
    ) -> Result<(), SinkError> {
        let position = incoming.position();
        let lineage = incoming.lineage();
        let command = match self
            .codec
            .decode_waiting::<HubSpotCommand>(incoming.value())
            .await
        {
            Ok(command) => command,
            Err(error) => {
                let failure = Failure::new(error.class(), error.code(), error.to_string());
                let original = incoming.into_original();
                let deliveries =
                    dead_letter_only(&self.emitter, &original, None, None, &failure).await;
                spawn_ack(deliveries, position, acks.clone());
                return Ok(());
            }
        };
        let teams = self.teams.current();
        let team = match teams.served(&command.team_id) {
            Served::Active(team) => team.clone(),
            Served::Unknown => {
                // Made by a process stage that serves a team this one does not: not ours to write.
                teams::count_unserved(STAGE);
                spawn_ack(Vec::new(), position, acks.clone());
                return Ok(());
            }
            Served::NotConnected(why) => {
                let verdict = teams::not_connected(why);
                self.answer(
                    command_outcome(&command, &lineage, &verdict),
                    position,
                    acks,
                )
                .await;
                return Ok(());
            }
        };
        let processed = lineage.processed_key(&command.event_id);
        let remembered = team.writer.state().processed(&processed)?;
        if let Some(remembered) = &remembered
            && lineage.redrive_of.is_some()
            && OutcomeStatus::from_symbol(&remembered.status) == OutcomeStatus::DeadLettered
        {
            // Redriven after it was dead-lettered here: it is written again, not answered.
            team.writer.state().forget(&processed)?;
        } else if let Some(remembered) = remembered {
            metrics::counter!("hubsync_sink_redelivered_total").increment(1);
            if remembered.answered.as_deref() == Some(position.to_string().as_str()) {
                // The very command answered before, read again: its outcome is in Kafka already.
                spawn_ack(Vec::new(), position, acks.clone());
                return Ok(());
            }
            // Redelivered, or copied again by its run: the event keeps the outcome it has.
            let verdict = Verdict::from_remembered(&remembered);
            self.answer(
                command_outcome(&command, &lineage, &verdict),
                position,
                acks,
            )
            .await;
            return Ok(());
        }
        let key = command_key(&command);
        let object = command.object_type;
        let command_team = coalescers.names.team(&command.team_id);
        let since = waiting_since(command.processed_time, now_ms(), self.settings.linger);
        let lane = Lane::of(&lineage);
        let mut incoming = incoming;
        if lane == Lane::Live
            && let Some(spill) = spill
            && (spill.holds(&command_team)
                || coalescers.live_of(&command_team) >= self.settings.team_max_pending)
        {
            let original = incoming.into_original();
            if keep_on_disk(spill, &command_team, &original) {
                if let Some(key) = &original.key
                    && coalescers.spilling.get(key) != Some(&command_team)
                {
                    coalescers.spilling.insert(key.clone(), command_team);
                }
                return Ok(());
            }
            incoming = Incoming::Kept(original);
        }
        let receipt = Receipt::new(&command, &lineage, &position, &mut coalescers.names);
        let arriving = Arriving {
            member: Member::new(receipt, || incoming.into_original()),
            command,
        };
        coalescers
            .coalescer(lane, (command_team, object), &self.settings)
            .add(key, arriving, since);
        Ok(())
    }
}

/// A command's message as the sink takes it: read from Kafka just now, or back from disk.
enum Incoming<'a> {
    Read(&'a BorrowedMessage<'a>),
    Kept(Original),
}

impl Incoming<'_> {
    fn position(&self) -> Position {
        match self {
            Incoming::Read(message) => {
                Position::new(message.topic(), message.partition(), message.offset())
            }
            Incoming::Kept(original) => original.position(),
        }
    }

    fn lineage(&self) -> Lineage {
        match self {
            Incoming::Read(message) => Lineage::of_message(*message),
            Incoming::Kept(original) => Lineage::of_headers(
                original
                    .headers
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_deref())),
            ),
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            Incoming::Read(message) => message.payload().unwrap_or_default(),
            Incoming::Kept(original) => original.value.as_deref().unwrap_or_default(),
        }
    }

    /// The whole message, copied out of Kafka's buffer when it was read just now.
    fn into_original(self) -> Original {
        match self {
            Incoming::Read(message) => original(message),
            Incoming::Kept(original) => original,
        }
    }
}

/// How often the sink sets its gauges of consumer lag and HubSpot budget.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// A team's budget gauges are exported once it uses this share of its window or of its day.
const NOTABLE_SHARE: f64 = 0.5;

impl SinkStage {
    /// Sets the gauges an operator watches: how far the consumers are behind, and how much of
    /// HubSpot's ten-second window and daily quota the teams use: the highest and lowest share
    /// over all teams, and per team only once a team reaches half of either (a series per team
    /// that came near a limit, not one per team served).
    fn report(&self, reported: &mut HashSet<String>) {
        crate::kafka::report_lag(&self.consumer, STAGE);
        crate::kafka::report_lag(&self.replay_consumer, STAGE);
        let (mut window_max, mut daily_min) = (0.0_f64, 1.0_f64);
        let now = crate::outcomes::now_ms();
        for (id, team) in self.teams.current().active() {
            let usage = team.client.budget().usage();
            let window = usage.window_used as f64 / usage.window_limit.max(1) as f64;
            let daily = usage.daily_left as f64 / usage.daily_limit.max(1) as f64;
            self.health.record_budget(id, now, window, daily);
            window_max = window_max.max(window);
            daily_min = daily_min.min(daily);
            let notable = window >= NOTABLE_SHARE || daily <= 1.0 - NOTABLE_SHARE;
            if notable || reported.contains(id) {
                let team = id.to_string();
                metrics::gauge!("hubsync_hubspot_window_used_ratio", "team" => team.clone())
                    .set(window);
                metrics::gauge!("hubsync_hubspot_daily_remaining_ratio", "team" => team.clone())
                    .set(daily);
                reported.insert(team);
            }
        }
        metrics::gauge!("hubsync_hubspot_window_used_ratio_max").set(window_max);
        metrics::gauge!("hubsync_hubspot_daily_remaining_ratio_min").set(daily_min);
        if let Some(restorer) = &self.restorer {
            let state = &restorer.state;
            let size = state.size_on_disk();
            let processed = state.processed_count();
            metrics::gauge!("hubsync_state_bytes").set(size as f64);
            metrics::gauge!("hubsync_state_processed_events").set(processed as f64);
            self.health.set_state_size(size, processed);
        }
    }

    /// Answers a command without writing it: its event's outcome, then its offset once that is
    /// delivered. An outcome that cannot be encoded leaves the offset unstored: the command is
    /// read again after a restart.
    async fn answer(
        &self,
        outcome: SyncOutcome,
        position: Position,
        acks: &mpsc::Sender<Position>,
    ) {
        match self.emitter.outcome(&outcome).await {
            Ok(delivery) => spawn_ack(vec![delivery], position, acks.clone()),
            Err(error) => {
                error!(%error, "cannot encode an outcome; its event is read again after a restart");
            }
        }
    }
}

/// The outcome of a command answered as it is read.
fn command_outcome(command: &HubSpotCommand, lineage: &Lineage, verdict: &Verdict) -> SyncOutcome {
    lineage.stamp(outcomes::for_command(
        command,
        verdict,
        &lineage.stage_label(STAGE),
        now_ms(),
    ))
}

/// Puts a command of `team` on disk behind the team's others; false (and a warning) when it
/// cannot, and the command is held in memory instead.
fn keep_on_disk(spill: &mut Spill, team: &Arc<str>, message: &Original) -> bool {
    match spill.push(team, message) {
        Ok(()) => true,
        Err(error) => {
            warn!(team = %team, %error, "cannot keep a command on disk; holding it in memory");
            false
        }
    }
}

/// The batches of `lane` being written, per team.
fn writing_by_team(
    running: &HashMap<tokio::task::Id, Running>,
    lane: Lane,
) -> HashMap<Arc<str>, usize> {
    let mut per_team = HashMap::new();
    for batch in running.values().filter(|r| r.lane == lane) {
        *per_team.entry(batch.slot.0.clone()).or_default() += 1;
    }
    per_team
}

/// Whether `team`'s portal has room for another of its batches of `lane`, `writing` of them
/// being written (a team this sink does not write for is answered at once).
fn budget_ready(teams: &teams::Teams<SinkTeam>, team: &str, lane: Lane, writing: usize) -> Ready {
    let Served::Active(served) = teams.served(team) else {
        return Ready::Now;
    };
    match served.client.budget().room(lane == Lane::Replay) {
        Err(wait) => Ready::At(std::time::Instant::now() + wait),
        Ok(room) if room <= writing => Ready::AfterOwn,
        Ok(_) => Ready::Now,
    }
}

/// What a record spends in the sink at least (its whole linger when that is shorter), however
/// long its first command took to arrive: time for the next records to join its batch.
const MIN_HOLD: Duration = Duration::from_millis(250);

/// When a command started waiting: when the process stage made it, so a command read from a
/// backlog (after a restart, behind a replay) has mostly waited already and is not held a whole
/// linger again. It still gets [`MIN_HOLD`] here, and never more than its linger in all; a clock
/// ahead of ours counts as now.
fn waiting_since(processed_ms: i64, now_ms: i64, linger: Duration) -> std::time::Instant {
    let credit = linger.saturating_sub(MIN_HOLD.min(linger));
    let credit_ms = i64::try_from(credit.as_millis()).unwrap_or(i64::MAX);
    let age = u64::try_from((now_ms - processed_ms).clamp(0, credit_ms)).unwrap_or(0);
    let now = std::time::Instant::now();
    now.checked_sub(Duration::from_millis(age)).unwrap_or(now)
}

/// Pauses or resumes fetching every partition `consumer` is assigned.
fn pause_assigned(consumer: &StreamConsumer<Assignment>, pause: bool) {
    let result = consumer.assignment().and_then(|assignment| {
        if pause {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        }
    });
    if let Err(error) = result {
        warn!(%error, pause, "could not change the fetching of assigned partitions");
    }
}

/// The key a member's event is remembered under: `{run}:{event_id}` when it was replayed.
fn processed_key(member: &Member) -> String {
    member.receipt.processed_key()
}

/// The key a command's record is coalesced and known by.
pub fn command_key(command: &HubSpotCommand) -> String {
    let value = match command.identity.kind {
        IdentityKind::Email | IdentityKind::Domain => {
            command.identity.value.trim().to_ascii_lowercase()
        }
        _ => command.identity.value.clone(),
    };
    let object = ObjectType::of_command(command.object_type).map_or("unknown", |o| o.path_name());
    record_key(object, command.identity.kind.as_str(), &value)
}

fn spawn_ack(deliveries: Vec<Delivery>, position: Position, acks: mpsc::Sender<Position>) {
    tokio::spawn(async move {
        join_all(deliveries).await;
        let _ = acks.send(position).await;
    });
}

async fn dead_letter_only(
    emitter: &Emitter,
    original: &Original,
    event_id: Option<String>,
    team_id: Option<String>,
    failure: &Failure,
) -> Vec<Delivery> {
    match emitter
        .dead_letter(original, event_id, team_id, failure, STAGE)
        .await
    {
        Ok(delivery) => vec![delivery],
        Err(error) => {
            error!(%error, "cannot encode a dead letter");
            Vec::new()
        }
    }
}

/// A held command's message, for its dead letter: kept for a live command, read again from
/// Kafka for a replayed one. One that cannot be read again is dead-lettered by its position
/// alone, with why in a header, rather than lost.
async fn message_of(member: &Member, reread: &Rereader) -> Original {
    if let Some(message) = &member.message {
        return (**message).clone();
    }
    let position = member.receipt.position();
    match reread.read(&position).await {
        Ok(message) => message,
        Err(error) => {
            warn!(%position, %error, "a replayed command's message could not be read again; its dead letter names its position only");
            Original {
                topic: position.topic,
                partition: position.partition,
                offset: position.offset,
                headers: vec![("hubsync.dlq.unread".to_string(), Some(error.into_bytes()))],
                ..Original::default()
            }
        }
    }
}

/// Writes one batch, remembers every event's outcome durably, then emits outcomes and dead
/// letters and waits for their delivery.
async fn write_batch(
    writer: Writer,
    client: HubSpotClient,
    emitter: Emitter,
    reread: Arc<Rereader>,
    object: HubSpotObjectType,
    records: Vec<PendingRecord>,
) -> BatchDone {
    let mut done = BatchDone {
        retry: Vec::new(),
        paused: None,
        delivered: Vec::new(),
    };
    // A command read again while its first copy was in flight passed the check on reading:
    // check again now, so an event processed meanwhile keeps its outcome and is not written twice.
    let mut records = records;
    let mut answered: Vec<(Member, String, Verdict)> = Vec::new();
    for record in &mut records {
        let mut keep = Vec::with_capacity(record.members.len());
        for member in record.members.drain(..) {
            match writer.state().processed(&processed_key(&member)) {
                Ok(Some(remembered)) => answered.push((
                    member,
                    record.identity.value.clone(),
                    Verdict::from_remembered(&remembered),
                )),
                _ => keep.push(member),
            }
        }
        record.members = keep;
    }
    records.retain(|r| !r.members.is_empty());
    // Records a batch failed for while HubSpot answered go in calls of their own.
    let (alone, together): (Vec<PendingRecord>, Vec<PendingRecord>) =
        records.into_iter().partition(|r| r.alone);
    let calls = std::iter::once(together)
        .filter(|batch| !batch.is_empty())
        .chain(alone.into_iter().map(|record| vec![record]));
    let mut results = Vec::new();
    for batch in calls {
        let started = std::time::Instant::now();
        match writer.write(object, batch.clone(), now_ms()).await {
            Ok(written) => {
                metrics::histogram!("hubsync_sink_batch_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("hubsync_sink_batch_records").record(written.len() as f64);
                results.extend(written);
            }
            Err(error) => {
                // Local state failed: nothing is acknowledged, the records wait and are tried
                // again.
                error!(%error, "state database error; the batch will be tried again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                done.retry.extend(batch.into_iter().map(|r| (r, None)));
            }
        }
    }
    let now = now_ms();
    let mut emits: Vec<(Position, Vec<Delivery>)> = Vec::new();
    // Members whose outcome is being delivered.
    let mut answering = Vec::new();
    let mut finished = Vec::new();
    let mut unavailable = Vec::new();
    for (record, resolution) in results {
        match resolution {
            Resolution::Later(delay) => done.retry.push((record, Some(delay))),
            Resolution::Paused(reason) => {
                done.paused.get_or_insert(Pause {
                    reason,
                    cause: PauseCause::Auth,
                });
                done.retry.push((record, None));
            }
            Resolution::Unavailable(reason) => unavailable.push((record, reason)),
            Resolution::Done(verdict) => finished.push((record, verdict, None)),
            Resolution::DeadLetter(failure) => {
                let verdict = Verdict::dead_lettered(&failure);
                finished.push((record, verdict, Some(failure)));
            }
        }
    }
    if !unavailable.is_empty() {
        // An outage, or something in the batch HubSpot cannot take: HubSpot's own answer to
        // one more request tells them apart.
        let answers = client.probe().await.is_ok();
        for (mut record, reason) in unavailable {
            match verdict::unavailable(&reason, answers, record.alone) {
                Unavailable::Outage(why) => {
                    done.paused.get_or_insert(Pause {
                        reason: why,
                        cause: PauseCause::Outage,
                    });
                    done.retry.push((record, None));
                }
                Unavailable::TryAlone => {
                    record.alone = true;
                    done.retry.push((record, None));
                }
                Unavailable::Poison(failure) => {
                    let verdict = Verdict::dead_lettered(&failure);
                    finished.push((record, verdict, Some(failure)));
                }
            }
        }
    }
    // Outcomes are remembered before they are emitted: a crash in between re-emits the same ones.
    for (record, verdict, _) in &finished {
        for member in &record.members {
            if let Err(error) = writer
                .state()
                .remember(&processed_key(member), &verdict.remember(now))
            {
                error!(%error, "cannot remember an outcome");
            }
        }
    }
    if let Err(error) = writer.state().flush().await {
        error!(%error, "state flush failed; outcomes are emitted anyway and may be written again after a crash");
    }
    for (record, verdict, failure) in &finished {
        metrics::counter!("hubsync_outcomes_total", "stage" => STAGE, "status" => verdict.status.as_str()).increment(record.members.len() as u64);
        for member in &record.members {
            let mut deliveries = Vec::new();
            if let Some(failure) = failure {
                let message = message_of(member, &reread).await;
                let dead = dead_letter_only(
                    &emitter,
                    &message,
                    Some(member.receipt.event_id()),
                    Some(member.receipt.team_id().to_string()),
                    failure,
                )
                .await;
                deliveries.extend(dead);
            }
            let outcome = member
                .receipt
                .outcome(verdict, STAGE, &record.identity.value, now);
            match emitter.outcome(&outcome).await {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    answering.push(member);
                }
                Err(error) => error!(%error, "cannot encode an outcome"),
            }
            emits.push((member.receipt.position(), deliveries));
        }
    }
    for (member, record, verdict) in &answered {
        let outcome = member.receipt.outcome(verdict, STAGE, record, now);
        let deliveries = match emitter.outcome(&outcome).await {
            Ok(delivery) => vec![delivery],
            Err(error) => {
                error!(%error, "cannot encode an outcome");
                Vec::new()
            }
        };
        emits.push((member.receipt.position(), deliveries));
    }
    let waits = emits.into_iter().map(|(position, deliveries)| async move {
        join_all(deliveries).await;
        position
    });
    done.delivered = join_all(waits).await;
    // Each event's outcome is in Kafka now: its command read again (before its offset is
    // committed) is acknowledged without a second outcome. The notes reach the changelog with
    // the next flush.
    for member in answering {
        let position = member.receipt.position().to_string();
        if let Err(error) = writer
            .state()
            .mark_answered(&processed_key(member), &position)
        {
            warn!(%error, "cannot note that an outcome was delivered; the event may get it again");
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubsync_schemas::examples;

    #[test]
    fn a_command_waits_from_when_it_was_made_within_one_linger() {
        let linger = Duration::from_secs(10);
        let now_ms = 1_000_000;
        let before = std::time::Instant::now();
        let fresh = waiting_since(now_ms, now_ms, linger);
        assert!(fresh >= before, "made now: waits from now");
        let made_3s_ago = waiting_since(now_ms - 3_000, now_ms, linger);
        let waited = std::time::Instant::now().duration_since(made_3s_ago);
        assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(4));
        let backlog = waiting_since(now_ms - 3_600_000, now_ms, linger);
        let waited = std::time::Instant::now().duration_since(backlog);
        assert!(
            waited >= linger - MIN_HOLD && waited < linger,
            "a backlog still gets its minimum hold: {waited:?}"
        );
        let short = Duration::from_millis(200);
        let held = waiting_since(now_ms - 3_600_000, now_ms, short);
        assert!(
            held >= before,
            "a linger shorter than the minimum hold is kept whole"
        );
        let future = waiting_since(now_ms + 5_000, now_ms, linger);
        assert!(
            future >= before,
            "a clock ahead of ours does not make it wait longer"
        );
    }

    #[test]
    fn command_keys_fold_case_of_emails_and_domains_only() {
        let mut command = examples::hubspot_command();
        command.object_type = HubSpotObjectType::Contact;
        command.identity.kind = IdentityKind::Email;
        command.identity.value = " Ada@Acme.IO".into();
        assert_eq!(command_key(&command), "contacts:EMAIL:ada@acme.io");
        command.identity.kind = IdentityKind::SourceId;
        command.identity.value = "Lead-7".into();
        assert_eq!(command_key(&command), "contacts:SOURCE_ID:Lead-7");
    }
}
