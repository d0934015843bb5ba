//! The outcomes index against reading the topic: a week of outcomes of many teams on the
//! outcomes topic, and one team's logs over that week asked for three ways, side by side in one
//! run:
//! - the topic read from the range's start, filtered (what `hubsync logs --no-index` does and
//!   what `hubsync logs` did before the index);
//! - the index, caught up and then asked (what `hubsync logs` does now);
//! - the console's API over HTTP (`GET /api/v1/outcomes?team=..&since=7d`).
//!
//! Each asks for the newest 500 rows and the event counts of the team.

use std::time::{Duration, Instant};

use hubsync::admin::Health;
use hubsync::console::{self, Console};
use hubsync::ops::Ops;
use hubsync::ops::logs::index::{OutcomeIndex, catch_up};
use hubsync::ops::logs::{Counts, LoggedOutcome, Newest, OutcomeFilter};
use hubsync::ops::range::Window;
use hubsync::ops::scan::Flow;
use hubsync_schemas::{OutcomeStatus, SchemaKind, SyncOutcome, default_subject, examples};
use rdkafka::producer::FutureRecord;

use crate::report::Spread;
use crate::world::{Setup, World};

const DAY_MS: i64 = 86_400_000;
/// Rows asked for, as `hubsync logs` shows by default.
const ROWS: usize = 500;

#[derive(Debug, Clone)]
pub struct Params {
    pub outcomes: usize,
    pub teams: usize,
    pub runs: usize,
}

#[derive(Debug, Clone)]
pub struct Figures {
    pub outcomes: usize,
    pub teams: usize,
    /// Events and outcome records of the team asked about.
    pub team_events: u64,
    pub team_records: u64,
    /// Seconds: reading the topic for the team's week, per run.
    pub topic: Spread,
    /// Seconds: the first catch-up, from nothing.
    pub build: f64,
    /// Seconds: catch-up (nothing new) and the query and counts, per run.
    pub index: Spread,
    /// Seconds: the API's answer over HTTP, per run.
    pub api: Spread,
    /// The index's size on disk, in bytes.
    pub index_bytes: u64,
}

fn statuses() -> [(OutcomeStatus, &'static str); 5] {
    [
        (OutcomeStatus::Created, "CREATED"),
        (OutcomeStatus::Updated, "UPDATED"),
        (OutcomeStatus::Unchanged, "UNCHANGED"),
        (OutcomeStatus::Parked, "PARKED_MISSING_FIELDS"),
        (OutcomeStatus::DeadLettered, "INVALID_OPTION"),
    ]
}

pub async fn measure(params: Params) -> Figures {
    let world = World::start(Setup {
        brokers: 1,
        partitions: 32,
        contact_defaults: false,
        kafka: Vec::new(),
        unlimited: false,
        linger: None,
        teams: 1,
    })
    .await;
    let topic = world.config.topics.outcomes.clone();
    let writer = world
        .codec
        .writer(SchemaKind::SyncOutcome, &default_subject(&topic))
        .await
        .expect("the outcome schema registers");
    // A week, oldest first; one record in 33 is a second outcome of an earlier event (a
    // redelivery), so records outnumber events.
    let now = hubsync::outcomes::now_ms();
    let start = now - 7 * DAY_MS + 60_000;
    let step = (7 * DAY_MS - 120_000) / params.outcomes as i64;
    let asked = crate::world::team_of(0);
    let mut team_records = 0u64;
    let mut team_events = std::collections::HashSet::new();
    let mut sends = Vec::new();
    for n in 0..params.outcomes {
        let mut outcome = examples::sync_outcome();
        let team = n % params.teams;
        // A redelivery repeats the team's previous event.
        let event = match n.checked_sub(params.teams) {
            Some(earlier) if n % 33 == 32 => earlier,
            _ => n,
        };
        let (status, code) = statuses()[n % 5];
        outcome.team_id = crate::world::team_of(team);
        outcome.event_id = format!("ev-{event}");
        outcome.status = status;
        outcome.reason_code = code.to_string();
        outcome.record = Some(format!("person{}@company{}.io", event % 5_000, team));
        outcome.processed_time = start + n as i64 * step;
        outcome.source_offset = n as i64;
        if outcome.team_id == asked {
            team_records += 1;
            team_events.insert(outcome.event_id.clone());
        }
        let value = writer.encode(&outcome).expect("the outcome encodes");
        let key = format!("ct_{event}");
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .timestamp(outcome.processed_time);
        sends.push(
            world
                .producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("the producer refused an outcome: {e}")),
        );
        if sends.len() >= 20_000 {
            World::delivered(std::mem::take(&mut sends)).await;
        }
    }
    World::delivered(sends).await;
    world.assert_retained(&topic, params.outcomes);

    let ops = Ops::new(world.config.clone(), world.secrets.clone()).expect("ops");
    let reader = ops.reader(false).expect("a reader");
    let filter = OutcomeFilter {
        team: Some(asked.clone()),
        ..OutcomeFilter::default()
    };
    let week = Window {
        since: Some(now - 7 * DAY_MS),
        until: None,
    };

    // The topic, read from the week's start at each call.
    let mut topic_runs = Vec::new();
    for _ in 0..params.runs {
        let began = Instant::now();
        let mut newest = Newest::new(Some(ROWS));
        let mut counts = Counts::default();
        reader
            .scan::<SyncOutcome>(&topic, week, |scanned| {
                if let Ok(outcome) = scanned.record
                    && filter.matches(&outcome)
                {
                    counts.add(&outcome);
                    let logged = LoggedOutcome::new(outcome, &scanned.message);
                    newest.push(logged.time(), logged);
                }
                Flow::Continue
            })
            .await
            .expect("the topic reads");
        let rows = newest.into_sorted();
        topic_runs.push(began.elapsed().as_secs_f64());
        assert_eq!(rows.len(), ROWS.min(team_records as usize));
        assert_eq!(counts.total, team_records, "every record of the team read");
    }

    // The index: built once, then caught up and asked at each call.
    let dir = world.config.state.dir.join("outcomes-index");
    let index = OutcomeIndex::open(&dir).expect("the index opens");
    let began = Instant::now();
    let caught = catch_up(&index, &reader, &topic).await.expect("catch up");
    index.flush().expect("flush");
    let build = began.elapsed().as_secs_f64();
    assert_eq!(caught.read, params.outcomes as u64);
    let mut index_runs = Vec::new();
    for _ in 0..params.runs {
        let began = Instant::now();
        let caught = catch_up(&index, &reader, &topic).await.expect("catch up");
        let page = index.query(&filter, week, Some(ROWS)).expect("query");
        let counts = index.counts(&filter, week).expect("counts");
        index_runs.push(began.elapsed().as_secs_f64());
        assert_eq!(caught.read, 0);
        assert_eq!(page.outcomes.len(), ROWS.min(team_events.len()));
        assert_eq!(
            counts.total,
            team_events.len() as u64,
            "events, not records"
        );
    }
    drop(index);
    let index_bytes = dir_size(&dir);

    // The console's API over HTTP, on the same index.
    let mut settings = world.config.clone();
    settings.admin.listen = "127.0.0.1:0".into();
    let console = Console::new(
        std::path::PathBuf::from("unused.toml"),
        settings,
        world.secrets.clone(),
        Some(asked.clone()),
        Health::default(),
    )
    .expect("the console");
    let server = hubsync::admin::serve_router(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        console::router(console),
    )
    .await
    .expect("the console serves");
    let http = reqwest::Client::new();
    let mut api_runs = Vec::new();
    for _ in 0..params.runs {
        let began = Instant::now();
        let answer: serde_json::Value = http
            .get(format!(
                "{}/api/v1/outcomes?team={asked}&since=7d&limit={ROWS}",
                server.url()
            ))
            .send()
            .await
            .expect("the API answers")
            .json()
            .await
            .expect("JSON");
        api_runs.push(began.elapsed().as_secs_f64());
        assert_eq!(
            answer["outcomes"].as_array().map(Vec::len),
            Some(ROWS.min(team_events.len())),
            "{}",
            answer["error"]
        );
    }
    let _ = server.shutdown().await;
    world.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Figures {
        outcomes: params.outcomes,
        teams: params.teams,
        team_events: team_events.len() as u64,
        team_records,
        topic: Spread::of(topic_runs),
        build,
        index: Spread::of(index_runs),
        api: Spread::of(api_runs),
        index_bytes,
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
