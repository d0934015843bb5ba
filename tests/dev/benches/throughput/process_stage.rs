//! How fast the process stage turns a backlog of contact events into commands, Kafka included:
//! the events are on `crm.contact.changes` before the stage starts, and the commands are
//! counted as they arrive on `hubsync.commands`. No HubSpot call is made per event (the stage
//! reads the portal's properties once at start).

use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_schemas::{SchemaKind, default_subject};

use crate::cpu;
use crate::events::{Contact, Rng, Shape};
use crate::world::{Setup, World};

#[derive(Debug, Clone)]
pub struct Params {
    pub events: usize,
    pub kafka: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Figures {
    pub events: usize,
    pub commands: usize,
    /// From the first command's arrival to the last one's.
    pub window: Duration,
    /// What the whole process used from the stage's start to the last command read.
    pub usage: cpu::Usage,
}

impl Figures {
    pub fn per_second(&self) -> f64 {
        self.commands as f64 / self.window.as_secs_f64().max(1e-3)
    }
}

pub async fn measure(params: Params) -> Figures {
    let world = World::start(Setup {
        brokers: 1,
        teams: 1,
        partitions: 3,
        contact_defaults: true,
        kafka: params.kafka.clone(),
        unlimited: false,
        linger: None,
    })
    .await;
    let topic = world.config.topics.contact_changes.clone();
    let writer = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(&topic))
        .await
        .expect("the contact schema registers");
    let mut rng = Rng::new(0x5eed_0004);
    let start = hubsync::outcomes::now_ms();
    let records: Vec<(String, Vec<u8>)> = (0..params.events)
        .map(|index| {
            let mut contact = Contact::generate(index as u64, Shape::TYPICAL, &mut rng);
            let time = start + index as i64;
            let event = if rng.chance(0.4) {
                contact.created(time, &mut rng)
            } else {
                contact.varied_update(time, &mut rng)
            };
            let value = writer.encode(&event).expect("encodes");
            (event.contact_id, value)
        })
        .collect();
    world.publish_all(&topic, &records).await;
    world.assert_retained(&topic, records.len());
    drop(records);

    let commands = world.config.topics.commands.clone();
    let collector = world.count_records(&commands, params.events, Duration::from_secs(120));
    let meter = cpu::Meter::start();
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::Process,
        Health::default(),
    )
    .await
    .expect("the process stage starts");
    let read = collector.finish().await;
    let usage = meter.stop();
    pipeline
        .stop()
        .await
        .expect("the process stage stops cleanly");
    world.stop().await;
    let window = match (read.first_at, read.last_at) {
        (Some(first), Some(last)) => last.saturating_sub(first),
        _ => Duration::ZERO,
    };
    Figures {
        events: params.events,
        commands: read.count,
        window,
        usage,
    }
}
