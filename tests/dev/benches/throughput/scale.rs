//! Figure 12: what scale-out costs.
//!
//! - **Restore**: the sink's state of one portal (half remembered outcomes, half identities) is
//!   written through the changelog; an empty state then restores the portal's partition from
//!   the changelog, as an instance given the partition does. Timed per 100,000 entries.
//! - **First write after a restart**: a pipeline stops cleanly and starts again on the same
//!   state and group, and one new contact is published as it starts: the time from the start
//!   to that contact's write arriving at HubSpot. The group rebalances first: the development
//!   broker, told the old member left, still waits `session.timeout.ms` less a second for it
//!   before it assigns (a real broker assigns once the members it knows have rejoined). Static
//!   membership is not measured: the development broker does not implement it for the classic
//!   protocol (a restarted static member joins beside its old self).
//! - **Sink instances**: 1, 2 and 3 sink pipelines (each its own state directory, one consumer
//!   group) drain the same backlog of commands (contacts of 12 teams on 12 portals, made by the
//!   process stage first) from an unlimited sandbox: records/s from the first outcome to the
//!   last, and the ratio to one instance. All of it shares this machine's cores with the
//!   broker and the sandbox, so the ratio shows what several instances cost here, not what
//!   they gain on machines of their own.
//! - **429s during rebalances**: 12 portals each limited to 30 requests per 10 s (hubsync's
//!   budget set the same), contacts arriving steadily (about 540 a second over the 12), and a 100 ms
//!   linger, so the sinks would call more often than the limit allows and their budgets pace
//!   them; two sinks, then a third joins, then one of the first two stops: HubSpot's 429s over
//!   the whole run (target 0: a portal's new owner believes HubSpot's rate-limit headers before
//!   it spends) and the calls made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubsync::admin::Health;
use hubsync::config::{Config, Secrets};
use hubsync::kafka::{producer_config, reader_config};
use hubsync::pipeline::{Pipeline, Refusal, Stages};
use hubsync::sink::changelog::Changelog;
use hubsync::state::{RememberedOutcome, State, record_key};
use hubsync_schemas::{SchemaKind, default_subject};

use crate::events::{Contact, Rng, Shape};
use crate::world::{Setup, World, team_of};

#[derive(Debug)]
pub struct Figures {
    /// Entries written and restored each run.
    pub entries: u64,
    pub restores: Vec<Duration>,
    /// Per membership (dynamic, static): from each restart to its first write.
    pub first_write: Vec<(&'static str, Vec<Duration>)>,
    /// Commands drained per run.
    pub backlog: usize,
    /// Per count of sink instances: records/s of each run.
    pub instances: Vec<(usize, Vec<f64>)>,
    /// 429s HubSpot answered while sinks joined and left, and the calls made meanwhile.
    pub rebalance_429s: u64,
    pub rebalance_calls: u64,
    /// Contacts of that run, and how many of them were written (created) by its end.
    pub rebalance_events: usize,
    pub rebalance_written: usize,
}

impl Figures {
    pub fn restore_per_100k(&self) -> Vec<f64> {
        self.restores
            .iter()
            .map(|took| took.as_secs_f64() * 100_000.0 / self.entries.max(1) as f64)
            .collect()
    }
}

pub async fn measure(quick: bool) -> Figures {
    let entries = if quick { 20_000 } else { 100_000 };
    let world = bench_world(1, 3, true).await;
    let restores = restore_runs(&world, entries, if quick { 2 } else { 3 }).await;
    let mut first_write = Vec::new();
    // The consumer protocol (KIP-848) is not measured: on the development broker a second
    // restart under it stalled (see the README).
    let variants = [("classic protocol, dynamic member", false, "")];
    for (index, (label, kip_848, instance)) in variants.into_iter().enumerate() {
        let mut config = world.config.clone();
        config.kafka.instance_id = instance.to_string();
        if kip_848 {
            config.kafka.properties.insert(
                "group.protocol".to_string(),
                hubsync::config::KafkaProperty::Value("consumer".to_string()),
            );
        }
        // A group of its own per variant, so the runs do not meet each other's members.
        config.kafka.group_id_prefix = format!("{}-{index}", config.kafka.group_id_prefix);
        let runs = first_writes(&world, &config, if quick { 2 } else { 3 }).await;
        first_write.push((label, runs));
    }
    world.stop().await;
    let backlog = if quick { 6_000 } else { 36_000 };
    let mut instances = Vec::new();
    for count in 1..=3 {
        let mut runs = Vec::new();
        for run in 0..if quick { 1 } else { 2 } {
            runs.push(drain_rate(count, backlog, 0x5eed_1200 + run).await);
        }
        instances.push((count, runs));
    }
    let rebalance = rebalances(quick).await;
    Figures {
        entries: entries as u64,
        restores,
        first_write,
        backlog,
        instances,
        rebalance_429s: rebalance.0,
        rebalance_calls: rebalance.1,
        rebalance_events: rebalance.2,
        rebalance_written: rebalance.3,
    }
}

const PORTALS: usize = 12;

/// A world of `teams` portals, topics of `partitions`, the sink lingering 100 ms; HubSpot's
/// limits lifted when `unlimited`.
async fn bench_world(teams: usize, partitions: i32, unlimited: bool) -> World {
    World::start(Setup {
        brokers: 1,
        teams,
        partitions,
        contact_defaults: false,
        kafka: Vec::new(),
        unlimited,
        linger: Some(Duration::from_millis(100)),
    })
    .await
}

/// `n` empty state directories, one per sink instance.
fn state_dirs(n: usize) -> Vec<tempfile::TempDir> {
    (0..n)
        .map(|_| tempfile::tempdir().expect("a state directory"))
        .collect()
}

/// `count` sink pipelines in one group, each on its own state directory; every team of the
/// world served by each.
async fn start_sinks(world: &World, count: usize, dirs: &[tempfile::TempDir]) -> Vec<Pipeline> {
    let mut sinks = Vec::new();
    for dir in dirs.iter().take(count) {
        sinks.push(start_sink(world, dir).await);
    }
    sinks
}

async fn start_sink(world: &World, dir: &tempfile::TempDir) -> Pipeline {
    let on_dir = |config: &Config| {
        let mut config = config.clone();
        config.state.dir = dir.path().to_path_buf();
        config
    };
    let teams: Vec<(Config, Secrets)> = world
        .teams()
        .iter()
        .map(|(config, secrets)| (on_dir(config), secrets.clone()))
        .collect();
    Pipeline::start_teams(
        &on_dir(&world.config),
        &world.secrets,
        &teams,
        Stages::Sink,
        Health::default(),
        Refusal::Stop,
    )
    .await
    .expect("a sink instance starts")
}

/// The process stage of every team of the world.
async fn start_process(world: &World) -> Pipeline {
    Pipeline::start_teams(
        &world.config,
        &world.secrets,
        &world.teams(),
        Stages::Process,
        Health::default(),
        Refusal::Stop,
    )
    .await
    .expect("the process stage starts")
}

/// New contacts `from..from + n`, spread over the world's teams, encoded.
async fn contacts(world: &World, from: u64, n: usize, rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    let topic = &world.config.topics.contact_changes;
    let writer = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(topic))
        .await
        .expect("the contact schema registers");
    (0..n)
        .map(|i| {
            let person = Contact::generate(from + i as u64, Shape::PLAIN, rng);
            let mut event = person.created(hubsync::outcomes::now_ms(), rng);
            event.team_id = team_of(i % PORTALS);
            (
                event.contact_id.clone(),
                writer.encode(&event).expect("encodes"),
            )
        })
        .collect()
}

/// Records/s of `count` sink instances draining `backlog` commands made beforehand.
async fn drain_rate(count: usize, backlog: usize, seed: u64) -> f64 {
    let world = bench_world(PORTALS, 6, true).await;
    let mut rng = Rng::new(seed);
    let process = start_process(&world).await;
    let made = world.count_records(
        &world.config.topics.commands,
        backlog,
        Duration::from_secs(600),
    );
    let records = contacts(&world, 1, backlog, &mut rng).await;
    world
        .publish_all(&world.config.topics.contact_changes, &records)
        .await;
    assert_eq!(made.finish().await.count, backlog, "every command made");
    let outcomes = world.collect_outcomes(backlog, Duration::from_secs(600));
    let dirs = state_dirs(count);
    let sinks = start_sinks(&world, count, &dirs).await;
    let read = outcomes.finish().await;
    assert_eq!(read.count, backlog, "every command answered");
    let span = read
        .last_at
        .zip(read.first_at)
        .map(|(last, first)| last.saturating_sub(first))
        .unwrap_or_default();
    for sink in sinks {
        sink.stop().await.expect("a sink stops");
    }
    process.stop().await.expect("the process stage stops");
    world.stop().await;
    (backlog.saturating_sub(1)) as f64 / span.as_secs_f64().max(0.001)
}

/// Requests per 10 s each portal (and hubsync's budget) allows in the rebalance run.
const REBALANCE_LIMIT: u32 = 30;

/// Two sinks, then a third, then one of the first two gone, while contacts arrive steadily and
/// the budgets pace the calls; returns (429s, calls, contacts, written).
async fn rebalances(quick: bool) -> (u64, u64, usize, usize) {
    let mut world = bench_world(PORTALS, 6, false).await;
    world.config.hubspot.requests_per_10s = Some(REBALANCE_LIMIT);
    for portal in world.portals.all() {
        let mut settings = portal.settings();
        settings.limits.per_window = REBALANCE_LIMIT;
        portal.apply_settings(settings);
    }
    let mut rng = Rng::new(0x5eed_1299);
    let process = start_process(&world).await;
    let dirs = state_dirs(3);
    let mut sinks = start_sinks(&world, 2, &dirs).await;
    // A phase per change: two sinks, a third joined, one of the first two gone.
    let phase = Duration::from_secs(if quick { 8 } else { 15 });
    let per_tick = if quick { 40 } else { 60 };
    let tick = Duration::from_millis(100);
    let topic = world.config.topics.contact_changes.clone();
    let mut published = 0;
    let mut next = 1_000_000u64;
    for step in 0..3 {
        match step {
            1 => sinks.push(start_sink(&world, &dirs[2]).await),
            2 => sinks.remove(0).stop().await.expect("a sink stops"),
            _ => {}
        }
        let until = Instant::now() + phase;
        while Instant::now() < until {
            let records = contacts(&world, next, per_tick, &mut rng).await;
            next += per_tick as u64;
            published += records.len();
            let sent: Vec<_> = records
                .iter()
                .map(|(key, payload)| world.send_now(&topic, key, payload))
                .collect();
            World::delivered(sent).await;
            tokio::time::sleep(tick).await;
        }
    }
    // The rest is written within the budgets: wait for every contact's outcome.
    let read = world
        .collect_outcomes(published, Duration::from_secs(900))
        .finish()
        .await;
    let calls = world.calls.len() as u64;
    let limited = world.rate_limited();
    for sink in sinks {
        sink.stop().await.expect("a sink stops");
    }
    process.stop().await.expect("the process stage stops");
    world.stop().await;
    (limited, calls, published, read.written())
}

async fn restore_runs(world: &World, entries: usize, runs: usize) -> Vec<Duration> {
    let producer = producer_config(&world.config, &world.secrets)
        .create()
        .expect("a producer");
    let changelog = Arc::new(
        Changelog::for_topics(&producer, &world.config.topics)
            .await
            .expect("the changelog topic"),
    );
    let written = tempfile::tempdir().expect("a state directory");
    let state = State::open(written.path(), 64 << 20, entries as u64)
        .expect("state opens")
        .with_changelog(changelog.clone());
    let portal = world.hubspot.portal_id();
    let scoped = state.scoped(&portal.to_string());
    for n in 0..entries / 2 {
        let outcome = RememberedOutcome {
            status: "CREATED".to_string(),
            reason_code: "CREATED".to_string(),
            reason: "created".to_string(),
            hubspot_id: Some(format!("{}", 1_000_000 + n)),
            attempts: 1,
            missing_fields: Vec::new(),
            at_ms: 1_767_225_600_000 + n as i64,
            answered: None,
        };
        scoped
            .remember(&format!("event-{n}"), &outcome)
            .expect("remembered");
        scoped
            .set_identity(
                &record_key("contacts", "EMAIL", &format!("person{n}@bench.example")),
                &format!("{}", 1_000_000 + n),
            )
            .expect("identity");
        if n % 5_000 == 0 {
            scoped.flush().await.expect("flushed");
        }
    }
    scoped.flush().await.expect("flushed");
    let partition = changelog.partition_of(portal);
    let mut took = Vec::new();
    for _ in 0..runs {
        let fresh = tempfile::tempdir().expect("a state directory");
        let empty = State::open(fresh.path(), 64 << 20, entries as u64).expect("state opens");
        let reader = reader_config(&world.config, &world.secrets, "bench-restore");
        let restorer = changelog.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let restored = restorer.restore(reader, &empty, partition);
            (restored, empty)
        })
        .await
        .expect("the restore runs");
        let (restored, empty) = restored;
        let restored = restored.expect("restores");
        assert_eq!(restored.records, entries as u64, "every entry restored");
        let known = empty
            .scoped(&portal.to_string())
            .identity(&record_key("contacts", "EMAIL", "person7@bench.example"))
            .expect("reads");
        assert_eq!(known.as_deref(), Some("1000007"));
        took.push(restored.took);
    }
    took
}

/// Restarts the pipeline `runs` times; each time publishes a new contact as it starts and
/// times the start to the contact's write.
async fn first_writes(
    world: &World,
    config: &hubsync::config::Config,
    runs: usize,
) -> Vec<Duration> {
    let topic = config.topics.contact_changes.clone();
    let writer = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(&topic))
        .await
        .expect("the contact schema registers");
    let mut rng = Rng::new(0x5eed_0012);
    let mut index = 0u64;
    let mut publish = |rng: &mut Rng| {
        index += 1;
        let person = Contact::generate(900_000 + index, Shape::PLAIN, rng);
        let event = person.created(hubsync::outcomes::now_ms(), rng);
        (
            event.contact_id.clone(),
            writer.encode(&event).expect("encodes"),
        )
    };
    // The first start joins the group and writes one contact.
    let pipeline = Pipeline::start(config, &world.secrets, Stages::All, Health::default())
        .await
        .expect("the pipeline starts");
    let warming = world.collect_outcomes(1, Duration::from_secs(60));
    world.publish_all(&topic, &[publish(&mut rng)]).await;
    assert_eq!(
        warming.finish().await.count,
        1,
        "the warm-up contact is written"
    );
    pipeline.stop().await.expect("stops");
    let mut took = Vec::new();
    for _ in 0..runs {
        let written_before = world.calls.len();
        let started = world.calls.elapsed(Instant::now());
        let record = publish(&mut rng);
        let pipeline = Pipeline::start(config, &world.secrets, Stages::All, Health::default())
            .await
            .expect("the pipeline starts again");
        world.publish_all(&topic, &[record]).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        let first = loop {
            if let Some(call) = world
                .calls
                .since(written_before)
                .into_iter()
                .find(|c| c.is_write())
            {
                break call.at.saturating_sub(started);
            }
            assert!(
                Instant::now() < deadline,
                "no write within 120 s of the restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        took.push(first);
        pipeline.stop().await.expect("stops");
    }
    took
}
