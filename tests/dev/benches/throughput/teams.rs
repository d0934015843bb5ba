//! Figure 7: many teams in one service. `teams` teams, each on its own portal with its own token
//! and its own Professional limit (190 requests per 10 s), are served by one pipeline.
//!
//! 1. Every team connects (its token's portal and its rules checked), and writes one contact.
//! 2. Live alone: the other teams send new contacts at a steady rate, spread over them in turn;
//!    event-to-outcome latency.
//! 3. Live beside a backlog: the same stream while team 0's backlog of new contacts arrives at
//!    once (an import upstream). The live teams' latency again, how long the backlog took
//!    against its own portal's limit, and the 429s over every portal.
//! 4. The CPU time per event over step 3, of the whole process and of its threads that stand in
//!    for what runs elsewhere (the sandbox's, the broker's), and per live event over step 2; the
//!    bench compares it with the same run with one team.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hubsync::admin::Health;
use hubsync::codec::Writer;
use hubsync::outcomes::now_ms;
use hubsync::pipeline::{Pipeline, Refusal, Stages};
use hubsync_schemas::{OutcomeStatus, SchemaKind, default_subject};

use crate::cpu;
use crate::events::{Contact, Rng, Shape};
use crate::replay::{self, Latency, count};
use crate::world::{OutcomeSeen, Setup, World, team_of};

/// The backlog's contacts are numbered from here, the live ones from [`LIVE_FROM`].
const BACKLOG_FROM: u64 = 20_000_000;
const LIVE_FROM: u64 = 30_000_000;

#[derive(Debug, Clone)]
pub struct Params {
    /// Teams served, at least 2: team 0 has the backlog, the others send live.
    pub teams: usize,
    /// New contacts of team 0 published at once.
    pub backlog: usize,
    /// Live contact events per second, over all the other teams.
    pub live_rate: u32,
    pub live_alone: Duration,
    pub live_beside: Duration,
    /// The sink's linger.
    pub linger: Duration,
    pub kafka: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    /// From the start of the pipeline until every team was connected and checked.
    pub connected_in: Duration,
    pub alone: Latency,
    pub beside: Latency,
    /// The live events' p99 latency per second of event time from the backlog's publication.
    pub beside_by_second: Vec<i64>,
    /// From the backlog's first publication until the broker held all of it.
    pub backlog_published: Duration,
    /// The live events beside the backlog: from the event to its command (read by the process
    /// stage and decided), and from its command to its outcome (the sink).
    pub beside_before_sink: Latency,
    pub beside_in_sink: Latency,
    /// The first of those, p99 per second from the backlog's publication.
    pub beside_before_sink_by_second: Vec<i64>,
    /// From the backlog's publication to its last outcome.
    pub backlog_wall: Duration,
    /// The backlog's contacts created.
    pub backlog_created: usize,
    /// Live events whose outcome is not a write.
    pub live_not_written: usize,
    /// HubSpot's 429s over every portal, the whole run.
    pub rate_limited: u64,
    /// CPU time per event from the backlog's publication to its last outcome, live events
    /// included: the whole process (pipeline, broker, sandbox, bench), and how it divides.
    pub cpu: cpu::Split,
    /// CPU time per live event while the live events alone were sent (step 2, at a steady
    /// rate; the process's every thread, idle work included): with many teams each is a write
    /// of its own, with one they share the team's batches.
    pub cpu_alone: cpu::Split,
}

impl Figures {
    /// The backlog's records written per second.
    pub fn backlog_rate(&self) -> f64 {
        self.backlog_created as f64 / self.backlog_wall.as_secs_f64().max(0.001)
    }
}

/// The pipeline's `fetch.wait.max.ms` in this figure, unless `--kafka` sets it. The development
/// broker answers a fetch that finds no data only once the whole wait is over (Kafka answers as
/// soon as a record arrives) and keeps only a partition's newest 5 MiB, while all 100,000 of
/// team 0's commands go to its portal's one partition: at the default 500 ms the process stage
/// wrote more than that between two of the sink's fetches, and the sink came back to find its
/// place deleted (tens of thousands of commands lost in most runs of 2026-12-06 and -07). Both
/// halves of the figure, alone and beside the backlog, run with it.
pub const FETCH_WAIT_MS: &str = "100";

/// Brokers of the figure's development cluster, as Kafka clusters run three or more. The
/// development broker answers a fetch with one batch per partition, and a consumer fetches from
/// each broker at once: with one, reading the backlog goes as fast as the round trips to it.
/// Both halves of the figure run on three.
pub const BROKERS: i32 = 3;

/// How long the import job upstream gathers the backlog's records into batches.
pub const IMPORT_LINGER: Duration = Duration::from_millis(100);

/// The `fetch.wait.max.ms` the figure ran with.
pub fn fetch_wait(kafka: &[(String, String)]) -> &str {
    kafka
        .iter()
        .find(|(name, _)| name == "fetch.wait.max.ms")
        .map_or("500", |(_, value)| value.as_str())
}

pub async fn measure(params: Params) -> Figures {
    assert!(params.teams >= 1, "at least the backlog's team");
    let world = World::start(Setup {
        teams: params.teams,
        brokers: BROKERS,
        partitions: 16,
        contact_defaults: false,
        kafka: params.kafka.clone(),
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
    let mut rng = Rng::new(0x5eed_0007);

    let began = Instant::now();
    let pipeline = Pipeline::start_teams(
        &world.config,
        &world.secrets,
        &world.teams(),
        Stages::All,
        Health::default(),
        Refusal::Stop,
    )
    .await
    .expect("the pipeline starts with every team");
    let connected_in = began.elapsed();
    let commands = world.watch_commands();
    let warm_up = world.collect_outcomes(params.teams, Duration::from_secs(120));
    let mut deliveries = Vec::new();
    let mut warm_up_emails = HashSet::new();
    for n in 0..params.teams {
        let person = Contact::generate(LIVE_FROM - 1 - n as u64, Shape::PLAIN, &mut rng);
        warm_up_emails.insert(person.email.to_ascii_lowercase());
        let mut event = person.created(now_ms(), &mut rng);
        event.team_id = team_of(n);
        let payload = writer.encode(&event).expect("encodes");
        deliveries.push(world.send_now(&topic, &event.contact_id, &payload));
    }
    World::delivered(deliveries).await;
    assert_eq!(
        warm_up.finish().await.count,
        params.teams,
        "every team's first contact has its outcome"
    );

    let alone_count = count(params.live_rate, params.live_alone);
    let beside_count = count(params.live_rate, params.live_beside);
    // The collector reads the outcomes from the start: the warm-up's are counted again.
    let expected = params.teams + alone_count + beside_count + params.backlog;
    let timeout = params.live_alone + params.live_beside + Duration::from_secs(300);
    let collector = world.collect_outcomes(expected, timeout);
    let cpu_before_alone = cpu::Split::now();
    let alone_emails = live(&world, &writer, &params, alone_count, LIVE_FROM, &mut rng).await;
    let cpu_alone = cpu::Split::now().since(cpu_before_alone);

    let backlog: Vec<(String, Vec<u8>)> = (0..params.backlog as u64)
        .map(|i| {
            let person = Contact::generate(BACKLOG_FROM + i, Shape::PLAIN, &mut rng);
            let event = person.created(now_ms(), &mut rng);
            (
                event.contact_id.clone(),
                writer.encode(&event).expect("encodes"),
            )
        })
        .collect();
    let import = world.import_producer(IMPORT_LINGER);
    let mut live_rng = Rng::new(0x5eed_0017);
    let backlog_started_ms = now_ms();
    let cpu_before = cpu::Split::now();
    let (beside_emails, published_ms) = tokio::join!(
        live(
            &world,
            &writer,
            &params,
            beside_count,
            LIVE_FROM + alone_count as u64,
            &mut live_rng,
        ),
        async {
            World::publish_with(&import, &topic, &backlog, backlog.len()).await;
            now_ms() - backlog_started_ms
        }
    );
    let outcomes = collector.finish().await;
    let cpu_beside = cpu::Split::now().since(cpu_before);
    pipeline.stop().await.expect("the pipeline stops cleanly");
    let made = commands.made(&beside_emails, Duration::from_secs(30)).await;
    drop(commands);

    let of = |emails: &HashSet<String>| -> Vec<&OutcomeSeen> {
        outcomes
            .each
            .iter()
            .filter(|o| emails.contains(&o.record.to_ascii_lowercase()))
            .collect()
    };
    let alone = of(&alone_emails);
    let beside = of(&beside_emails);
    let backlog_outcomes: Vec<&OutcomeSeen> = outcomes
        .each
        .iter()
        .filter(|o| !alone_emails.contains(&o.record.to_ascii_lowercase()))
        .filter(|o| !beside_emails.contains(&o.record.to_ascii_lowercase()))
        .filter(|o| !warm_up_emails.contains(&o.record.to_ascii_lowercase()))
        .collect();
    let last = backlog_outcomes.iter().map(|o| o.processed_ms).max();
    let backlog_wall = Duration::from_millis(
        u64::try_from(last.unwrap_or(backlog_started_ms) - backlog_started_ms).unwrap_or(0),
    );
    let written =
        |o: &&&OutcomeSeen| matches!(o.status, OutcomeStatus::Created | OutcomeStatus::Updated);
    // Each live event's wait beside the backlog, split where its command was made: before
    // (reading and the process stage) and after (the sink: reading, linger, the write).
    let (before_sink, in_sink): (Vec<OutcomeSeen>, Vec<OutcomeSeen>) = beside
        .iter()
        .filter_map(|o| {
            let at = *made.get(&o.record.to_ascii_lowercase())?;
            let before = OutcomeSeen {
                processed_ms: at,
                ..(*o).clone()
            };
            let after = OutcomeSeen {
                event_ms: at,
                ..(*o).clone()
            };
            Some((before, after))
        })
        .unzip();
    let figures = Figures {
        beside_before_sink: Latency::of(&before_sink.iter().collect::<Vec<_>>()),
        beside_in_sink: Latency::of(&in_sink.iter().collect::<Vec<_>>()),
        beside_before_sink_by_second: replay::p99_by(
            &before_sink.iter().collect::<Vec<_>>(),
            backlog_started_ms,
            Duration::from_secs(1),
        ),
        connected_in,
        alone: Latency::of(&alone),
        beside: Latency::of(&beside),
        beside_by_second: replay::p99_by(&beside, backlog_started_ms, Duration::from_secs(1)),
        backlog_wall,
        backlog_published: Duration::from_millis(u64::try_from(published_ms).unwrap_or(0)),
        backlog_created: backlog_outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Created)
            .count(),
        live_not_written: alone.iter().chain(&beside).filter(|o| !written(o)).count()
            + (alone_count + beside_count).saturating_sub(alone.len() + beside.len()),
        rate_limited: world.rate_limited(),
        cpu: cpu_beside.per(params.backlog + beside_count),
        cpu_alone: cpu_alone.per(alone_count),
        params,
    };
    world.stop().await;
    figures
}

/// The live stream: each event of the next live team in turn.
async fn live(
    world: &World,
    writer: &Writer,
    params: &Params,
    events: usize,
    first: u64,
    rng: &mut Rng,
) -> HashSet<String> {
    // Every team but the backlog's in turn; with one team, that team (the one-team figure).
    let live_teams = params.teams - 1;
    let team = |i: usize| {
        Some(if live_teams == 0 {
            team_of(0)
        } else {
            team_of(1 + i % live_teams)
        })
    };
    replay::live_of(world, writer, params.live_rate, events, first, rng, team).await
}
