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

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubsync::admin::Health;
use hubsync::kafka::{producer_config, reader_config};
use hubsync::pipeline::{Pipeline, Stages};
use hubsync::sink::changelog::Changelog;
use hubsync::state::{RememberedOutcome, State, record_key};
use hubsync_schemas::{SchemaKind, default_subject};

use crate::events::{Contact, Rng, Shape};
use crate::world::{Setup, World};

#[derive(Debug)]
pub struct Figures {
    /// Entries written and restored each run.
    pub entries: u64,
    pub restores: Vec<Duration>,
    /// Per membership (dynamic, static): from each restart to its first write.
    pub first_write: Vec<(&'static str, Vec<Duration>)>,
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
    let world = World::start(Setup {
        teams: 1,
        partitions: 3,
        contact_defaults: false,
        kafka: Vec::new(),
        unlimited: true,
        linger: Some(Duration::from_millis(100)),
    })
    .await;
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
    Figures {
        entries: entries as u64,
        restores,
        first_write,
    }
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
