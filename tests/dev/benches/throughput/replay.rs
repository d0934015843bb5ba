//! Figure 4: a replay beside live traffic. A source topic pre-filled with N contact events over
//! N/10 contacts (in random order, as history accumulates) is replayed while new contacts
//! arrive live at a steady rate, both stages running against HubSpot's Professional limit.
//!
//! 1. The history is published to `crm.contact.changes` and the process stage's group is set
//!    to start after it, so the pipeline never saw it live (a replay then creates every one of
//!    its contacts: the most work a replay can be).
//! 2. Live alone: new contacts at the live rate for a while; event-to-outcome latency.
//! 3. Live and replay: the same live stream while the history is copied to the replay topic
//!    (the library `hubsync replay` runs, in this process) and written through the backfill
//!    lane; latency of the live events, and what the replay cost: write calls, the records it
//!    wrote, its wall time, and the share of the ten-second budget each lane used.
//!
//! The sink's linger is shortened for the live lane (so its latency shows any wait behind the
//! replay); replayed records wait at least [`hubsync::sink::stage::REPLAY_MIN_LINGER`].

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use hubsync::admin::Health;
use hubsync::ops::Ops;
use hubsync::ops::replay::checkpoint::{self, Checkpoint};
use hubsync::ops::replay::copy::{self, CopyOptions, Tally};
use hubsync::ops::replay::plan::{self, Selection};
use hubsync::outcomes::now_ms;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_hubspot::BudgetStats;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{OutcomeStatus, SchemaKind, default_subject};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::events::{Contact, Rng, Shape};
use crate::world::{Call, OutcomeSeen, Setup, World};

/// HubSpot's Professional limit the sandbox enforces, per ten seconds.
const PER_10S: f64 = 190.0;

/// Live contacts are numbered from here, apart from the history's.
const LIVE_FROM: u64 = 10_000_000;

#[derive(Debug, Clone)]
pub struct Params {
    /// Events in the pre-filled history, over `events / 10` contacts.
    pub events: usize,
    /// Live contact events per second.
    pub live_rate: u32,
    /// How long the live stream runs alone.
    pub live_alone: Duration,
    /// How long it runs again while the replay goes on.
    pub live_with_replay: Duration,
    /// The sink's linger (the live lane's).
    pub linger: Duration,
    /// Extra `[kafka.properties]` for the pipeline.
    pub kafka: Vec<(String, String)>,
}

/// Latencies of live events, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub events: usize,
    pub p50: i64,
    pub p99: i64,
    pub max: i64,
}

impl Latency {
    pub fn of(outcomes: &[&OutcomeSeen]) -> Self {
        Latency::of_ms(
            outcomes
                .iter()
                .map(|o| o.processed_ms - o.event_ms)
                .collect(),
        )
    }

    /// The summary of latencies in milliseconds, in any order.
    pub fn of_ms(mut ms: Vec<i64>) -> Self {
        ms.sort_unstable();
        let at = |q: f64| {
            let index = ((ms.len() as f64 * q).ceil() as usize).saturating_sub(1);
            ms.get(index).copied().unwrap_or_default()
        };
        Latency {
            events: ms.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: ms.last().copied().unwrap_or_default(),
        }
    }
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    pub contacts: usize,
    pub alone: Latency,
    pub beside_replay: Latency,
    /// The live events' p99 latency per 5 s (by event time), alone and from the replay's start.
    pub alone_by_5s: Vec<i64>,
    pub beside_by_5s: Vec<i64>,
    /// Write calls per 5 s from the replay's start: how many, and the longest the sandbox took
    /// to answer one, in milliseconds.
    pub writes_by_5s: Vec<(usize, u128)>,
    /// What the copy to the replay topic did, and how long it took.
    pub copy: Tally,
    pub copy_took: Duration,
    /// From the replay's start to its last outcome.
    pub replay_wall: Duration,
    /// Outcomes of replayed events, by status.
    pub replay_outcomes: BTreeMap<&'static str, usize>,
    /// Contacts in HubSpot from the history.
    pub replay_records: usize,
    /// HubSpot calls while the replay ran, by lane (from the client's budget).
    pub replay_calls: u64,
    pub live_calls: u64,
    /// Write calls (upserts, creates) and their inputs while the replay ran, both lanes.
    pub write_calls: usize,
    pub write_inputs: usize,
    pub rate_limited: usize,
    /// How long the window from the replay's start to its last outcome lasted, for the shares.
    pub budget_window: Duration,
    /// How long the replay lane's sends and the live lane's waited for the budget, in all.
    pub replay_waited: Duration,
    pub live_waited: Duration,
}

impl Figures {
    /// Calls a lane made as a share of what the limit allows over the replay's window.
    pub fn share(&self, calls: u64) -> f64 {
        let allowed = PER_10S * self.budget_window.as_secs_f64() / 10.0;
        calls as f64 / allowed.max(1.0)
    }

    /// Replay write calls per 1,000 replayed events.
    pub fn replay_calls_per_1000(&self) -> f64 {
        self.replay_calls as f64 * 1_000.0 / self.params.events as f64
    }

    /// How long the replay's calls take at the budget share live traffic leaves it (never less
    /// than `backfill_share`, which it has even while live commands wait).
    pub fn calls_need(&self) -> Duration {
        let share = (1.0 - self.share(self.live_calls)).max(0.3);
        Duration::from_secs_f64(self.replay_calls as f64 / (PER_10S / 10.0 * share))
    }

    /// The fewest write calls the replay could take: every contact once, 100 per call.
    pub fn floor_calls(&self) -> usize {
        self.contacts.div_ceil(100)
    }
}

/// Partitions of every topic for a history of `events`: the development broker keeps 5 MiB per
/// partition (about 40,000 of these records), so the history and its copies are spread wide.
pub fn partitions(events: usize) -> i32 {
    i32::try_from(events / 20_000).unwrap_or(i32::MAX).max(16)
}

/// The pipeline's `fetch.wait.max.ms` in this figure, unless `--kafka` sets it. The development
/// broker answers a fetch that finds no data only after the whole wait (librdkafka's mock does
/// not cut it short when a producer writes, as Kafka does) and keeps 5 MiB per partition, while
/// every replayed command of the team goes to its portal's one partition: at the default 500 ms,
/// the sink's replay consumer came back to find its place deleted (32,371 of 1,000,000 events
/// written). Not for every figure: set for all of them, the many-teams figure (16 partitions of
/// every topic, seven consumers fetching 50 times a second) wrote its backlog at half the rate
/// (947 records/s against 1,901) with live p99 3,545 ms alone (1,559 before).
const FETCH_WAIT_MS: &str = "20";

pub async fn measure(params: Params) -> Figures {
    let kafka = crate::world::with_fetch_wait(params.kafka.clone(), FETCH_WAIT_MS);
    let world = World::start(Setup {
        brokers: 1,
        teams: 1,
        partitions: partitions(params.events),
        contact_defaults: false,
        kafka,
        unlimited: false,
        linger: Some(params.linger),
    })
    .await;
    let topic = world.config.topics.contact_changes.clone();
    let writer = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(&topic))
        .await
        .expect("the contact schema registers");
    let mut rng = Rng::new(0x5eed_0004);
    let contacts = (params.events / 10).max(1);
    let history = history(params.events, contacts, &mut rng);
    let records: Vec<(String, Vec<u8>)> = history
        .iter()
        .map(|event| {
            (
                event.contact_id.clone(),
                writer.encode(event).expect("encodes"),
            )
        })
        .collect();
    world.publish_all(&topic, &records).await;
    world.assert_retained(&topic, records.len());
    drop(records);
    let history_end = skip_history(&world, &topic);

    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("the pipeline starts");
    let warm_up = world.collect_outcomes(1, Duration::from_secs(60));
    live(&world, &writer, 1, 1, LIVE_FROM - 1, &mut rng).await;
    assert_eq!(
        warm_up.finish().await.count,
        1,
        "the warm-up has its outcome"
    );

    let live_alone = count(params.live_rate, params.live_alone);
    let live_beside = count(params.live_rate, params.live_with_replay);
    let expected = 1 + live_alone + live_beside + params.events;
    let timeout = params.live_alone + params.live_with_replay + Duration::from_secs(300);
    let collector = world.collect_outcomes(expected, timeout);

    let alone_started_ms = now_ms();
    let alone_emails = live(
        &world,
        &writer,
        params.live_rate,
        live_alone,
        LIVE_FROM,
        &mut rng,
    )
    .await;
    let before: BudgetStats = pipeline.client.stats();
    let first_call = world.calls.len();
    let replay_started_ms = now_ms();
    let (beside_emails, (copy, copy_took)) = tokio::join!(
        live(
            &world,
            &writer,
            params.live_rate,
            live_beside,
            LIVE_FROM + live_alone as u64,
            &mut rng,
        ),
        replay(&world, &history_end)
    );
    let outcomes = collector.finish().await;
    let after: BudgetStats = pipeline.client.stats();
    pipeline.stop().await.expect("the pipeline stops cleanly");

    let of = |emails: &HashSet<String>| -> Vec<&OutcomeSeen> {
        outcomes
            .each
            .iter()
            .filter(|o| emails.contains(&o.record.to_ascii_lowercase()))
            .collect()
    };
    let alone = of(&alone_emails);
    let beside = of(&beside_emails);
    let history_emails: HashSet<String> = (0..contacts as u64)
        .map(|i| history_contact(i).email.to_ascii_lowercase())
        .collect();
    let replayed: Vec<&OutcomeSeen> = outcomes
        .each
        .iter()
        .filter(|o| !alone_emails.contains(&o.record.to_ascii_lowercase()))
        .filter(|o| !beside_emails.contains(&o.record.to_ascii_lowercase()))
        .filter(|o| o.processed_ms >= replay_started_ms)
        .collect();
    let mut replay_outcomes = BTreeMap::new();
    for outcome in &replayed {
        *replay_outcomes.entry(outcome.status.as_str()).or_insert(0) += 1;
    }
    let last_replayed = replayed.iter().map(|o| o.processed_ms).max();
    let replay_wall = Duration::from_millis(
        u64::try_from(last_replayed.unwrap_or(replay_started_ms) - replay_started_ms).unwrap_or(0),
    );
    let calls = world.calls.since(first_call);
    let writes: Vec<&Call> = calls.iter().filter(|c| c.creates_or_upserts()).collect();
    let replay_calls = after.backfill_sent - before.backfill_sent;
    let replay_started_at = world.calls.elapsed_at_ms(replay_started_ms);
    let mut writes_by_5s: Vec<(usize, u128)> = Vec::new();
    for call in &writes {
        let bucket = (call.at.saturating_sub(replay_started_at).as_secs() / 5) as usize;
        if writes_by_5s.len() <= bucket {
            writes_by_5s.resize(bucket + 1, (0, 0));
        }
        let entry = &mut writes_by_5s[bucket];
        entry.0 += 1;
        entry.1 = entry.1.max(call.took.as_millis());
    }
    let figures = Figures {
        contacts,
        alone: Latency::of(&alone),
        beside_replay: Latency::of(&beside),
        alone_by_5s: p99_by(&alone, alone_started_ms, Duration::from_secs(5)),
        beside_by_5s: p99_by(&beside, replay_started_ms, Duration::from_secs(5)),
        writes_by_5s,
        copy,
        copy_took,
        replay_wall,
        replay_outcomes,
        replay_records: world
            .hubspot
            .snapshot(ObjectType::Contacts)
            .iter()
            .filter(|r| {
                r["properties"]["email"]
                    .as_str()
                    .is_some_and(|e| history_emails.contains(&e.to_ascii_lowercase()))
            })
            .count(),
        replay_calls,
        live_calls: (after.sent - before.sent) - replay_calls,
        write_calls: writes.len(),
        write_inputs: writes.iter().map(|c| c.inputs).sum(),
        rate_limited: calls.iter().filter(|c| c.status == 429).count(),
        budget_window: replay_wall.max(params.live_with_replay),
        replay_waited: after.backfill_waited - before.backfill_waited,
        live_waited: (after.waited - before.waited)
            .saturating_sub(after.backfill_waited - before.backfill_waited),
        params,
    };
    world.stop().await;
    figures
}

/// p99 latency of the outcomes per `window` of event time from `from_ms`.
pub fn p99_by(outcomes: &[&OutcomeSeen], from_ms: i64, window: Duration) -> Vec<i64> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
    let mut buckets: Vec<Vec<&OutcomeSeen>> = Vec::new();
    for outcome in outcomes {
        let bucket = usize::try_from((outcome.event_ms - from_ms).max(0) / window_ms).unwrap_or(0);
        if buckets.len() <= bucket {
            buckets.resize(bucket + 1, Vec::new());
        }
        buckets[bucket].push(outcome);
    }
    buckets.iter().map(|b| Latency::of(b).p99).collect()
}

/// History contact number `index`, the same every time it is asked for.
fn history_contact(index: u64) -> Contact {
    Contact::generate(index, Shape::PLAIN, &mut Rng::new(0x4157_0000 ^ index))
}

/// Events at `rate` per second for `duration`.
pub fn count(rate: u32, duration: Duration) -> usize {
    (f64::from(rate) * duration.as_secs_f64()).round() as usize
}

/// `events` events over `contacts` contacts in random order: each contact's first creates it,
/// the others change its job title; stamped in the past, a millisecond apart.
fn history(events: usize, contacts: usize, rng: &mut Rng) -> Vec<hubsync_schemas::ContactChanged> {
    let mut people: Vec<Contact> = (0..contacts as u64).map(history_contact).collect();
    let mut order: Vec<usize> = (0..events).map(|i| i % contacts).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let start = now_ms() - events as i64;
    let mut seen = vec![false; contacts];
    order
        .into_iter()
        .enumerate()
        .map(|(i, contact)| {
            let time = start + i as i64;
            let person = &mut people[contact];
            if std::mem::replace(&mut seen[contact], true) {
                person.retitled(time, rng)
            } else {
                person.created(time, rng)
            }
        })
        .collect()
}

/// Commits the process stage's group at the end of `topic`, so the pipeline starts after the
/// history instead of reading it live; returns the last offset of the history per partition.
fn skip_history(world: &World, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", world.broker.bootstrap_servers())
        .set("group.id", world.config.group_id(hubsync::process::STAGE))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer of the process stage's group");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut ends = TopicPartitionList::new();
    let mut last = BTreeMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .expect("watermarks");
        ends.add_partition_offset(topic, partition.id(), Offset::Offset(high))
            .expect("an offset");
        last.insert(partition.id(), high - 1);
    }
    consumer
        .commit(&ends, CommitMode::Sync)
        .expect("the process stage's group starts after the history");
    last
}

/// Publishes `events` new contacts at `rate` per second, each stamped when it is sent; returns
/// their emails (lower case, as outcomes name them).
async fn live(
    world: &World,
    writer: &hubsync::codec::Writer,
    rate: u32,
    events: usize,
    first: u64,
    rng: &mut Rng,
) -> HashSet<String> {
    live_of(world, writer, rate, events, first, rng, |_| None).await
}

/// [`live`], the `i`-th event of the team `team(i)` names (the configuration's team for none).
pub async fn live_of(
    world: &World,
    writer: &hubsync::codec::Writer,
    rate: u32,
    events: usize,
    first: u64,
    rng: &mut Rng,
    team: impl Fn(usize) -> Option<String>,
) -> HashSet<String> {
    let topic = &world.config.topics.contact_changes;
    let origin = tokio::time::Instant::now();
    let mut emails = HashSet::with_capacity(events);
    let mut deliveries = Vec::with_capacity(events);
    for i in 0..events {
        let at = Duration::from_secs_f64(i as f64 / f64::from(rate.max(1)));
        tokio::time::sleep_until(origin + at).await;
        let person = Contact::generate(first + i as u64, Shape::PLAIN, rng);
        emails.insert(person.email.to_ascii_lowercase());
        let mut event = person.created(now_ms(), rng);
        if let Some(team) = team(i) {
            event.team_id = team;
        }
        let payload = writer.encode(&event).expect("encodes");
        deliveries.push(world.send_now(topic, &event.contact_id, &payload));
    }
    World::delivered(deliveries).await;
    emails
}

/// The whole history replayed, as `hubsync replay --from-offsets 0:0,1:0,... --to-offsets
/// 0:LAST,1:LAST,...` does (the live events that followed it are left out).
async fn replay(world: &World, history_end: &BTreeMap<i32, i64>) -> (Tally, Duration) {
    let started = Instant::now();
    let ops = Ops::new(world.config.clone(), world.secrets.clone()).expect("operator context");
    let consumer = copy::consumer(&ops.config, &ops.secrets).expect("a consumer");
    let topic = ops.config.topics.contact_changes.clone();
    let from: BTreeMap<i32, i64> = history_end.keys().map(|p| (*p, 0)).collect();
    let spans = plan::by_offsets(&consumer, &topic, &from, history_end).expect("spans");
    let selection = Selection::Offsets {
        topic,
        from,
        to: history_end.clone(),
    };
    let mut run = Checkpoint::new(
        "bench",
        selection,
        &ops.config.topics.replay,
        spans,
        now_ms(),
    );
    let path = checkpoint::path(&ops.config.state.dir, "bench");
    let producer = ops.producer().expect("a producer");
    let (_stop, stopping) = watch::channel(false);
    let tally = copy::copy(
        &consumer,
        &producer,
        &mut run,
        Some(&path),
        &HashSet::new(),
        &CopyOptions::default(),
        stopping,
    )
    .await
    .expect("the history is copied");
    assert!(run.done, "the replay copied everything");
    (tally, started.elapsed())
}

/// Status counts for printing.
pub fn statuses(counts: &BTreeMap<&'static str, usize>) -> String {
    counts
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether every replayed event ended written.
pub fn all_written(f: &Figures) -> bool {
    let written = [OutcomeStatus::Created, OutcomeStatus::Updated]
        .iter()
        .map(|s| f.replay_outcomes.get(s.as_str()).copied().unwrap_or(0))
        .sum::<usize>();
    written == f.params.events
}
