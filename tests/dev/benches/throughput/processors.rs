//! Figure 1: the process stage's CPU work per ContactChanged on one thread: Confluent-framed
//! bytes -> `decode_cached` -> `decide_contact` -> `to_command`, and its two halves alone.
//!
//! The events are encoded once through a schema registry (as an upstream producer would), and a
//! second codec, warmed with the writer id, decodes them (as the process stage does). Nothing
//! else runs on the measuring thread; the registry's server thread is idle while it measures.

use std::hint::black_box;

use hubsync::codec::{AvroCodec, RegistryClient};
use hubsync::config::Config;
use hubsync_processors::catalog::PropertyCatalog;
use hubsync_processors::command::{Envelope, to_command};
use hubsync_processors::decide::decide_contact;
use hubsync_processors::{Decision, Rules};
use hubsync_sandbox::registry::SchemaRegistry;
use hubsync_sandbox::server::loopback;
use hubsync_schemas::{ContactChanged, SchemaKind, SourcePosition, default_subject};

use crate::cpu;
use crate::events::{self, Contact, Rng, Shape};
use crate::report::Spread;

const TOPIC: &str = "crm.contact.changes";

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub events: usize,
    pub runs: usize,
}

#[derive(Debug)]
pub struct Figures {
    pub events: usize,
    pub runs: usize,
    pub mean_frame_bytes: usize,
    /// The machine's one-minute load average before and after the timed runs.
    pub load: (f64, f64),
    pub writes: usize,
    pub skips: usize,
    pub invalid: usize,
    pub chain: Rates,
    pub decode: Rates,
    pub rules: Rates,
    pub chain_and_encode: Rates,
}

/// Events per second of several runs, by wall-clock time and by the thread's CPU time.
#[derive(Debug)]
pub struct Rates {
    pub wall: Spread,
    pub cpu: Spread,
}

impl Rates {
    /// From `(per wall second, per CPU second)` of each run.
    pub fn of(runs: Vec<(f64, f64)>) -> Self {
        let (wall, cpu) = runs.into_iter().unzip();
        Rates {
            wall: Spread::of(wall),
            cpu: Spread::of(cpu),
        }
    }
}

pub async fn measure(params: Params) -> Figures {
    let registry = SchemaRegistry::new()
        .serve(loopback(0))
        .await
        .expect("schema registry starts");
    let text = events::sandbox_config_text(
        "127.0.0.1:9092",
        &registry.url(),
        "http://127.0.0.1:8080",
        1,
        "BENCH_TOKEN",
    );
    let config = Config::from_toml_str(&text).expect("the sandbox config parses");
    let rules = config.rules.clone();
    let catalog = events::sandbox_catalog();
    events::assert_rules_fit(&rules, &catalog);

    // The producer's side: register under the topic's subject and encode every event.
    let producer = codec(&config);
    let writer = producer
        .writer(SchemaKind::ContactChanged, &default_subject(TOPIC))
        .await
        .expect("the contact schema registers");
    let frames: Vec<Vec<u8>> = generate(params.events)
        .iter()
        .map(|event| writer.encode(event).expect("a generated event encodes"))
        .collect();
    let mean_frame_bytes = frames.iter().map(Vec::len).sum::<usize>() / frames.len().max(1);

    // The process stage's side: a codec of its own, warmed with the writer id from the registry.
    let consumer = codec(&config);
    let _: ContactChanged = consumer
        .decode(&frames[0])
        .await
        .expect("the first event decodes through the registry");
    assert!(consumer.is_cached(writer.schema_id()));
    let commands = consumer
        .writer(SchemaKind::HubSpotCommand, "hubsync.commands-value")
        .await
        .expect("the command schema registers");

    // One untimed pass warms caches and the allocator, and counts the decisions.
    let (mut writes, mut skips, mut invalid) = (0, 0, 0);
    for frame in &frames {
        let event: ContactChanged = consumer.decode_cached(frame).expect("decodes");
        match decide_contact(&event, &rules, &catalog) {
            Decision::Write(_) => writes += 1,
            Decision::Skip { .. } => skips += 1,
            Decision::Invalid { .. } => invalid += 1,
        }
    }
    let decoded: Vec<ContactChanged> = frames
        .iter()
        .map(|frame| consumer.decode_cached(frame).expect("decodes"))
        .collect();

    let load_before = cpu::load_average();
    let mut chain = Vec::new();
    let mut decode = Vec::new();
    let mut rules_only = Vec::new();
    let mut chain_and_encode = Vec::new();
    for _ in 0..params.runs {
        chain.push(rate(frames.len(), || {
            for (offset, frame) in frames.iter().enumerate() {
                let event: ContactChanged = consumer.decode_cached(frame).expect("decodes");
                black_box(decide_and_command(&event, offset, &rules, &catalog));
            }
        }));
        decode.push(rate(frames.len(), || {
            for frame in &frames {
                let event: ContactChanged = consumer.decode_cached(frame).expect("decodes");
                black_box(event);
            }
        }));
        rules_only.push(rate(decoded.len(), || {
            for (offset, event) in decoded.iter().enumerate() {
                black_box(decide_and_command(event, offset, &rules, &catalog));
            }
        }));
        chain_and_encode.push(rate(frames.len(), || {
            let mut out = Vec::with_capacity(1024);
            for (offset, frame) in frames.iter().enumerate() {
                let event: ContactChanged = consumer.decode_cached(frame).expect("decodes");
                if let Some(command) = decide_and_command(&event, offset, &rules, &catalog) {
                    out.clear();
                    commands
                        .encode_into(&command, &mut out)
                        .expect("a command encodes");
                    black_box(&out);
                }
            }
        }));
    }
    let load = (load_before, cpu::load_average());
    let _ = registry.shutdown().await;
    Figures {
        events: frames.len(),
        runs: params.runs,
        mean_frame_bytes,
        load,
        writes,
        skips,
        invalid,
        chain: Rates::of(chain),
        decode: Rates::of(decode),
        rules: Rates::of(rules_only),
        chain_and_encode: Rates::of(chain_and_encode),
    }
}

/// What the process stage does with a decoded event: decide, and make the command of a write.
pub fn decide_and_command(
    event: &ContactChanged,
    offset: usize,
    rules: &Rules,
    catalog: &PropertyCatalog,
) -> Option<hubsync_schemas::HubSpotCommand> {
    match decide_contact(event, rules, catalog) {
        Decision::Write(draft) => {
            let source = SourcePosition {
                topic: TOPIC.to_owned(),
                partition: 0,
                offset: offset as i64,
                key: Some(event.contact_id.clone()),
            };
            let envelope = Envelope::of_contact(event, source, 1_760_000_000_000);
            Some(to_command(draft, envelope))
        }
        other => {
            black_box(other);
            None
        }
    }
}

/// One timed pass: events per second of wall-clock time and per second of the thread's CPU
/// time.
fn rate(events: usize, pass: impl FnOnce()) -> (f64, f64) {
    let lap = cpu::Lap::start();
    pass();
    lap.rates(events)
}

fn codec(config: &Config) -> AvroCodec {
    let registry = RegistryClient::new(&config.registry, None).expect("registry client");
    AvroCodec::new(registry, 100).expect("the embedded schemas parse")
}

/// `count` distinct events: 40% creations, 60% varied updates, each of a different contact.
fn generate(count: usize) -> Vec<ContactChanged> {
    let mut rng = Rng::new(0x00c0_ffee);
    let shape = Shape::TYPICAL;
    let start = 1_760_000_000_000_i64;
    (0..count)
        .map(|index| {
            let mut contact = Contact::generate(index as u64, shape, &mut rng);
            let time = start + index as i64;
            if rng.chance(0.4) {
                contact.created(time, &mut rng)
            } else {
                contact.varied_update(time, &mut rng)
            }
        })
        .collect()
}
