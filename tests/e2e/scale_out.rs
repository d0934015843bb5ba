//! Scale-out: a portal's commands are on the partition its id names, and the sink's state
//! follows that partition through the changelog, so a sink started on an empty state directory
//! (a pod rescheduled without its volume) takes a partition over knowing what its previous owner
//! knew.

use std::collections::HashMap;
use std::time::Duration;

use hubsync::kafka::{portal_partition, producer_config};
use hubsync_sandbox::broker::{BrokerConfig, DevBroker, TopicSpec};
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{ActivityType, ChangeKind, SchemaKind, SyncOutcome};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

mod support;
use support::Child;
use support::events::{activity, contact};
use support::world::World;

const CONTACTS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_land_on_the_partition_their_portal_names() {
    let broker =
        DevBroker::start(BrokerConfig::new(1).with_topic(TopicSpec::new("hubsync.commands", 12)))
            .await
            .expect("broker");
    let world_config = hubsync::config::Config::from_toml_str(&format!(
        "[team]\nid = \"acme\"\nhubspot_portal_id = 1\n[users]\ndefault_owner = \"1\"\n[kafka]\nbrokers = {:?}\n",
        broker.bootstrap_servers()
    ))
    .expect("config");
    let secrets = world_config
        .resolve_secrets_with(&|_| Some("unused".to_string()))
        .expect("secrets");
    let producer: FutureProducer = producer_config(&world_config, &secrets)
        .create()
        .expect("producer");
    for portal in (1..200u64).map(|n| n * 7919) {
        let key = portal.to_string();
        let delivery = producer
            .send(
                FutureRecord::to("hubsync.commands").key(&key).payload("x"),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .expect("delivered");
        assert_eq!(
            delivery.partition,
            portal_partition(portal, 12),
            "portal {portal}: librdkafka's murmur2 partitioner and hubsync's agree"
        );
    }
}

/// The outcomes of `events`, each event's list in the order they were written.
fn statuses(
    outcomes: &HashMap<String, Vec<SyncOutcome>>,
    event: &str,
) -> Vec<(String, Option<String>)> {
    outcomes
        .get(event)
        .map(|all| {
            all.iter()
                .map(|o| (o.status.as_str().to_string(), o.hubspot_id.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Calls that read or write records (not the start's checks of the token, the properties and
/// the owners).
fn calls(world: &World) -> u64 {
    world
        .hubspot
        .request_counts()
        .iter()
        .filter(|((path, _), _)| path.contains("/objects/") || path.contains("/associations/"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moved_to_a_fresh_instance_restores_its_state_from_the_changelog() {
    let admin_port = support::free_port();
    let world = World::start(SandboxOptions::default(), 4, |config| {
        config.replace(
            "[state]\n",
            &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[state]\n"),
        )
    })
    .await;
    let first_dir = tempfile::tempdir().expect("state dir");
    let second_dir = tempfile::tempdir().expect("state dir");
    let config_in = |dir: &tempfile::TempDir| {
        let path = dir.path().join("hubsync.toml");
        let text = world.config_text().replace(
            &format!("{:?}", world.state_dir.path().display().to_string()),
            &format!("{:?}", dir.path().join("state").display().to_string()),
        );
        std::fs::write(&path, text).expect("config file");
        path
    };
    let env = [("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)];

    // The first instance creates the contacts and their activities.
    let mut events = Vec::new();
    for n in 0..CONTACTS {
        let email = format!("p{n}@moved.example");
        let created = contact(&format!("ct_{n}"), Some(&email), ChangeKind::Created);
        let opened = activity(ActivityType::EmailOpened, &created.contact_id, Some(&email));
        world
            .publish(
                SchemaKind::ContactChanged,
                &world.config.topics.contact_changes,
                &created.contact_id,
                &created,
            )
            .await;
        world
            .publish(
                SchemaKind::ActivityRecorded,
                &world.config.topics.activity_events,
                &opened.contact_id,
                &opened,
            )
            .await;
        events.push((created, opened));
    }
    let ids: Vec<String> = events
        .iter()
        .flat_map(|(c, a)| [c.event_id.clone(), a.event_id.clone()])
        .collect();
    let first_config = config_in(&first_dir);
    let path = first_config.to_str().expect("utf-8 path");
    let mut first = Child::spawn_with_env(&["run", "--config", path], &env);
    let before = world.outcomes_for(&ids, Duration::from_secs(120)).await;
    first.kill();
    for id in &ids {
        assert_eq!(statuses(&before, id).len(), 1, "event {id}: one outcome");
    }
    assert_eq!(world.hubspot.count(ObjectType::Contacts), CONTACTS);
    let written = calls(&world);

    // The same events again (as a producer retrying would send them), to a second instance on
    // an empty state directory: it must know them all from the changelog.
    for (created, opened) in &events {
        world
            .publish(
                SchemaKind::ContactChanged,
                &world.config.topics.contact_changes,
                &created.contact_id,
                created,
            )
            .await;
        world
            .publish(
                SchemaKind::ActivityRecorded,
                &world.config.topics.activity_events,
                &opened.contact_id,
                opened,
            )
            .await;
    }
    let second_config = config_in(&second_dir);
    let path = second_config.to_str().expect("utf-8 path");
    let mut second = Child::spawn_with_env(&["run", "--config", path], &env);
    let after = world
        .read_until(
            &world.config.topics.outcomes,
            Duration::from_secs(120),
            |read: &[SyncOutcome]| read.len() >= ids.len() * 2,
        )
        .await;
    let mut by_event: HashMap<String, Vec<SyncOutcome>> = HashMap::new();
    for outcome in after {
        by_event
            .entry(outcome.event_id.clone())
            .or_default()
            .push(outcome);
    }
    for id in &ids {
        let both = statuses(&by_event, id);
        assert_eq!(
            both.len(),
            2,
            "event {id}: its outcome again for the copy: {both:?}"
        );
        assert_eq!(
            both[0], both[1],
            "event {id}: the copy answered from the restored state"
        );
    }
    for (created, _) in &events {
        assert_eq!(statuses(&by_event, &created.event_id)[1].0, "CREATED");
    }
    assert_eq!(
        calls(&world),
        written,
        "every copy was answered from state, with no call for a record: {:?}",
        world.hubspot.request_counts()
    );

    // New activities of the known contacts are written once, without looking the contacts up.
    let mut fresh = Vec::new();
    for (created, _) in events.iter().take(10) {
        let clicked = activity(
            ActivityType::EmailClicked,
            &created.contact_id,
            created.email.as_deref(),
        );
        world
            .publish(
                SchemaKind::ActivityRecorded,
                &world.config.topics.activity_events,
                &clicked.contact_id,
                &clicked,
            )
            .await;
        fresh.push(clicked.event_id);
    }
    let outcomes = world.outcomes_for(&fresh, Duration::from_secs(120)).await;
    for id in &fresh {
        assert_eq!(statuses(&outcomes, id)[0].0, "CREATED", "event {id}");
    }
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{admin_port}/healthz"))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    let restored = &health["instance"]["restored"];
    let records: u64 = restored
        .as_array()
        .expect("restores listed")
        .iter()
        .map(|r| r["records"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        records > 0,
        "the second instance restored entries: {health}"
    );
    assert!(
        !health["instance"]["partitions"]["sink"]
            .as_array()
            .expect("the sink's partitions")
            .is_empty(),
        "{health}"
    );
    let status = second.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}");
    assert_eq!(
        world.hubspot.count(ObjectType::Notes),
        CONTACTS + fresh.len(),
        "each activity once"
    );
    assert_eq!(world.hubspot.count(ObjectType::Contacts), CONTACTS);
    eprintln!("the second instance restored {records} state entries");
}
