//! Figure 2: the sink stage against the HubSpot sandbox's Professional limit (190 requests per
//! rolling 10 s, on the system clock).
//!
//! The commands topic is filled before the pipeline starts with one `HubSpotCommand` per
//! distinct new contact, made by the processors from generated `ContactChanged` events exactly
//! as the process stage makes them; then only the sink stage runs. Measured from the arrival of
//! the first HubSpot write to the arrival of the last outcome on the outcomes topic.

use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_hubspot::BudgetStats;
use hubsync_processors::Decision;
use hubsync_processors::command::{Envelope, to_command};
use hubsync_processors::decide::decide_contact;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{HubSpotCommand, SchemaKind, SourcePosition, default_subject};

use crate::cpu;
use crate::events::{self, Contact, Rng, Shape};
use crate::world::{Call, Outcomes, Setup, World, by_endpoint};

/// Records per batch times requests per second: HubSpot's ceiling on Professional.
pub const CEILING: f64 = 1_900.0;

#[derive(Debug, Clone)]
pub struct Params {
    pub records: usize,
    pub shape: Shape,
    pub contact_defaults: bool,
    /// Extra `[kafka.properties]` for the pipeline.
    pub kafka: Vec<(String, String)>,
    /// HubSpot's limits lifted: how fast the sink itself goes.
    pub unlimited: bool,
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    pub prefilled_bytes: usize,
    /// Records sent in whole 10 s windows from the first write, per second, over 1,900.
    pub steady_share: Option<f64>,
    pub whole_windows: usize,
    /// What the whole process used from the sink's start to the last outcome read.
    pub usage: cpu::Usage,
    pub outcomes: Outcomes,
    /// From the first write's arrival to the last outcome's.
    pub window: Duration,
    pub written_per_second: f64,
    pub calls: Vec<Call>,
    pub write_calls: usize,
    pub write_inputs: usize,
    pub rate_limited: usize,
    /// Calls in each 10 s from the first write.
    pub calls_per_10s: Vec<usize>,
    /// Records sent by write calls arriving in each second from the first write.
    pub records_per_second: Vec<usize>,
    /// Mean time the sandbox took to answer a write, per tenth of the run.
    pub write_service_ms: Vec<f64>,
    /// Longest time between two consecutive write arrivals.
    pub longest_write_gap: Duration,
    pub client: BudgetStats,
    pub contacts_in_hubspot: usize,
    pub sandbox_calls: u64,
}

impl Figures {
    pub fn ceiling_share(&self) -> f64 {
        self.written_per_second / CEILING
    }

    pub fn fill(&self) -> f64 {
        self.write_inputs as f64 / self.write_calls.max(1) as f64
    }

    pub fn rate_limited_share(&self) -> f64 {
        self.rate_limited as f64 / self.calls.len().max(1) as f64
    }
}

pub async fn measure(params: Params) -> Figures {
    let world = World::start(Setup {
        brokers: 1,
        teams: 1,
        partitions: 3,
        contact_defaults: params.contact_defaults,
        kafka: params.kafka.clone(),
        unlimited: params.unlimited,
        linger: None,
    })
    .await;
    let topic = world.config.topics.commands.clone();
    let commands = commands(&world, params.records, params.shape);
    let writer = world
        .codec
        .writer(SchemaKind::HubSpotCommand, &default_subject(&topic))
        .await
        .expect("the command schema registers");
    let records: Vec<(String, Vec<u8>)> = commands
        .iter()
        .map(|command| {
            let key = format!(
                "{}:{}",
                command.object_type.as_str(),
                command.identity.value
            );
            (key, writer.encode(command).expect("a command encodes"))
        })
        .collect();
    world.publish_all(&topic, &records).await;
    world.assert_retained(&topic, records.len());
    let prefilled_bytes = records.iter().map(|(k, v)| k.len() + v.len()).sum();
    drop(records);

    // At the ceiling the run takes records / 1,900 s; allow for far slower before giving up.
    let timeout = Duration::from_secs_f64(60.0 + 4.0 * params.records as f64 / CEILING);
    let collector = world.collect_outcomes(params.records, timeout);
    let first_call = world.calls.len();
    let meter = cpu::Meter::start();
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::Sink,
        Health::default(),
    )
    .await
    .expect("the sink starts");
    let outcomes = collector.finish().await;
    let usage = meter.stop();
    let client = pipeline.client.stats();
    pipeline.stop().await.expect("the sink stops cleanly");

    let calls = world.calls.since(first_call);
    let writes: Vec<&Call> = calls
        .iter()
        .filter(|c| c.is_write() && (200..300).contains(&c.status))
        .collect();
    let first_write = writes.first().map_or(Duration::ZERO, |c| c.at);
    let last_outcome = outcomes.last_at.unwrap_or(first_write);
    let window = last_outcome.saturating_sub(first_write);
    let mut calls_per_10s = Vec::new();
    for call in calls.iter().filter(|c| c.at >= first_write) {
        let bucket = ((call.at - first_write).as_secs() / 10) as usize;
        if calls_per_10s.len() <= bucket {
            calls_per_10s.resize(bucket + 1, 0);
        }
        calls_per_10s[bucket] += 1;
    }
    let mut records_per_second = Vec::new();
    for call in &writes {
        let bucket = (call.at - first_write).as_secs() as usize;
        if records_per_second.len() <= bucket {
            records_per_second.resize(bucket + 1, 0);
        }
        records_per_second[bucket] += call.inputs;
    }
    let tenth = writes.len().div_ceil(10).max(1);
    let write_service_ms = writes
        .chunks(tenth)
        .map(|chunk| {
            chunk.iter().map(|c| c.took.as_secs_f64()).sum::<f64>() * 1e3 / chunk.len() as f64
        })
        .collect();
    let longest_write_gap = writes
        .windows(2)
        .map(|pair| pair[1].at - pair[0].at)
        .max()
        .unwrap_or_default();
    // Whole 10 s windows from the first write: the sustained rate, free of the burst a rolling
    // window allows at the start and of the partial window at the end.
    let whole_windows = (window.as_secs() / 10) as usize;
    let steady_records: usize = writes
        .iter()
        .filter(|c| c.creates_or_upserts())
        .filter(|c| c.at - first_write < Duration::from_secs(10 * whole_windows as u64))
        .map(|c| c.inputs)
        .sum();
    let figures = Figures {
        steady_share: (whole_windows > 0)
            .then(|| steady_records as f64 / (whole_windows as f64 * 10.0) / CEILING),
        whole_windows,
        prefilled_bytes,
        usage,
        params,
        written_per_second: outcomes.written() as f64 / window.as_secs_f64().max(1e-3),
        window,
        write_calls: writes.len(),
        write_inputs: writes.iter().map(|c| c.inputs).sum(),
        rate_limited: calls.iter().filter(|c| c.status == 429).count(),
        calls_per_10s,
        records_per_second,
        write_service_ms,
        longest_write_gap,
        client,
        contacts_in_hubspot: world.hubspot.count(ObjectType::Contacts),
        sandbox_calls: world.hubspot.request_counts().values().sum(),
        outcomes,
        calls,
    };
    world.stop().await;
    figures
}

/// The commands the process stage makes for `count` new, distinct contacts.
fn commands(world: &World, count: usize, shape: Shape) -> Vec<HubSpotCommand> {
    let rules = &world.config.rules;
    let catalog = events::sandbox_catalog();
    events::assert_rules_fit(rules, &catalog);
    let mut rng = Rng::new(0x5eed_0002);
    let start = hubsync::outcomes::now_ms();
    (0..count)
        .map(|index| {
            let contact = Contact::generate(index as u64, shape, &mut rng);
            let event = contact.created(start + index as i64, &mut rng);
            let draft = match decide_contact(&event, rules, &catalog) {
                Decision::Write(draft) => draft,
                other => panic!("a generated contact is not written: {other:?}"),
            };
            let source = SourcePosition {
                topic: world.config.topics.contact_changes.clone(),
                partition: 0,
                offset: index as i64,
                key: Some(event.contact_id.clone()),
            };
            to_command(draft, Envelope::of_contact(&event, source, start))
        })
        .collect()
}

/// Calls per endpoint and status, one line each.
pub fn endpoint_lines(calls: &[Call]) -> Vec<String> {
    by_endpoint(calls)
        .into_iter()
        .map(|((endpoint, status), (count, inputs))| {
            if inputs > 0 {
                format!(
                    "{endpoint} -> {status}: {count} calls, {inputs} inputs ({:.1} per call)",
                    inputs as f64 / count as f64
                )
            } else {
                format!("{endpoint} -> {status}: {count} calls")
            }
        })
        .collect()
}
