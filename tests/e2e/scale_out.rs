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
use hubsync_schemas::{
    ActivityRecorded, ActivityType, ChangeKind, ContactChanged, SchemaKind, SyncOutcome,
};
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

async fn publish_contact(world: &World, event: &ContactChanged) {
    let topic = &world.config.topics.contact_changes;
    world
        .publish(SchemaKind::ContactChanged, topic, &event.contact_id, event)
        .await;
}

async fn publish_activity(world: &World, event: &ActivityRecorded) {
    let topic = &world.config.topics.activity_events;
    world
        .publish(
            SchemaKind::ActivityRecorded,
            topic,
            &event.contact_id,
            event,
        )
        .await;
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
        publish_contact(&world, &created).await;
        publish_activity(&world, &opened).await;
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
        publish_contact(&world, created).await;
        publish_activity(&world, opened).await;
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
        publish_activity(&world, &clicked).await;
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

const TEAMS: usize = 8;
const PER_TEAM: usize = 50;

fn team_name(n: usize) -> String {
    format!("team{n}")
}

fn portal_of(n: usize) -> u64 {
    7_800_001 + n as u64
}

fn token_of(n: usize) -> String {
    format!("pat-na1-scale-{n:04}")
}

/// A service file (and the team files beside it) of one instance, with its own state directory.
fn instance_files(
    world: &World,
    root: &std::path::Path,
    group: &str,
    name: &str,
) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("teams")).expect("instance dir");
    let service = world.service_text(&dir, group);
    let path = dir.join("hubsync.toml");
    std::fs::write(&path, service).expect("service file");
    for n in 0..TEAMS {
        let team = hubsync_dev::sandbox_config::render_sandbox_team(
            &team_name(n),
            portal_of(n),
            &format!("SCALE_TOKEN_{n}"),
        );
        std::fs::write(
            dir.join("teams").join(format!("{}.toml", team_name(n))),
            team,
        )
        .expect("team file");
    }
    path
}

/// One wave of events for every team: new contacts, updates of earlier ones, and activities.
async fn wave(world: &World, wave: usize, ids: &mut Vec<String>) {
    for n in 0..TEAMS {
        let team = team_name(n);
        for i in 0..PER_TEAM / 2 {
            let index = wave * PER_TEAM / 2 + i;
            let email = format!("p{index}@{team}.example");
            let mut created = contact(&format!("ct_{index}"), Some(&email), ChangeKind::Created);
            created.team_id = team.clone();
            publish_contact(world, &created).await;
            ids.push(created.event_id);
            let mut opened = activity(
                ActivityType::EmailOpened,
                &format!("ct_{index}"),
                Some(&email),
            );
            opened.team_id = team.clone();
            publish_activity(world, &opened).await;
            ids.push(opened.event_id);
            if wave > 0 {
                let earlier = i;
                let mut updated = contact(
                    &format!("ct_{earlier}"),
                    Some(&format!("p{earlier}@{team}.example")),
                    ChangeKind::Updated,
                );
                updated.team_id = team.clone();
                updated.first_name = Some(format!("Wave{wave}"));
                publish_contact(world, &updated).await;
                ids.push(updated.event_id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sinks_killed_added_and_restarted_mid_stream_write_everything_once_in_its_own_portal() {
    let portals: Vec<SandboxOptions> = (0..TEAMS)
        .map(|n| SandboxOptions {
            portal_id: portal_of(n),
            tokens: vec![token_of(n)],
            ..SandboxOptions::default()
        })
        .collect();
    let world = World::start_portals(portals, 6, |c| c).await;
    let root = tempfile::tempdir().expect("instances");
    let group = format!("t{}", uuid::Uuid::new_v4().simple());
    let env: Vec<(String, String)> = (0..TEAMS)
        .map(|n| (format!("SCALE_TOKEN_{n}"), token_of(n)))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let spawn = |name: &str, stage: &str| {
        let path = instance_files(&world, root.path(), &group, name);
        let path = path.to_str().expect("utf-8 path").to_string();
        Child::spawn_with_env(&["run", "--config", &path, "--stage", stage], &env)
    };
    let mut process = [spawn("process-1", "process"), spawn("process-2", "process")];
    let mut first = spawn("sink-1", "sink");
    let mut second = spawn("sink-2", "sink");

    let mut ids = Vec::new();
    wave(&world, 0, &mut ids).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // One sink dies mid-stream, a new one on an empty state directory joins.
    first.kill();
    let mut third = spawn("sink-3", "sink");
    wave(&world, 1, &mut ids).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Every instance restarted in turn, as a rolling upgrade does.
    let status = second.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}");
    let mut second = spawn("sink-2", "sink");
    wave(&world, 2, &mut ids).await;
    let status = third.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}");
    let mut third = spawn("sink-3", "sink");
    let status = process[0].terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}");
    process[0] = spawn("process-1", "process");

    let outcomes = world.outcomes_for(&ids, Duration::from_secs(300)).await;
    let mut repeated = 0;
    for id in &ids {
        let all = statuses(&outcomes, id);
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 1, "event {id}: one final outcome: {all:?}");
        repeated += all.len() - 1;
    }
    for n in 0..TEAMS {
        let portal = &world.portals.all()[n];
        let contacts = portal.snapshot(ObjectType::Contacts);
        let emails: std::collections::BTreeSet<String> = contacts
            .iter()
            .map(|c| {
                c["properties"]["email"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(
            contacts.len(),
            3 * PER_TEAM / 2,
            "team {n}: every contact once"
        );
        assert_eq!(emails.len(), contacts.len(), "team {n}: no contact twice");
        assert!(
            emails
                .iter()
                .all(|e| e.ends_with(&format!("@{}.example", team_name(n)))),
            "team {n}'s portal holds only its own contacts: {emails:?}"
        );
        assert_eq!(
            portal.count(ObjectType::Notes),
            3 * PER_TEAM / 2,
            "team {n}: every activity once"
        );
        let limited: u64 = portal
            .request_counts()
            .iter()
            .filter(|((_, status), _)| *status == 429)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(limited, 0, "team {n}: no call over the portal's limit");
    }
    eprintln!(
        "{} events; {repeated} outcome records repeated after the kill and restarts",
        ids.len()
    );
    for child in [&mut second, &mut third] {
        let status = child.terminate(Duration::from_secs(60)).await;
        assert!(status.success(), "{status}");
    }
    for child in &mut process {
        let status = child.terminate(Duration::from_secs(60)).await;
        assert!(status.success(), "{status}");
    }
}

/// An instance that died after HubSpot created a contact but before the event's outcome was
/// recorded left the upsert's intent behind: the event read again finds the contact and says
/// `CREATED`, as it happened, not `UPDATED` or `UNCHANGED`. A contact that was in HubSpot before
/// the intent, or that no intent names, is not taken for hubsync's creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_read_again_after_an_interrupted_attempt_says_created() {
    use hubsync::admin::Health;
    use hubsync::pipeline::{Pipeline, Stages};
    use hubsync::state::{CreateIntent, State, record_key};

    let world = World::start(SandboxOptions::default(), 1, |c| c).await;
    let now = hubsync::outcomes::now_ms();
    {
        let state = State::open(&world.config.state.stage_dir("sink"), 1 << 20, 1_000)
            .expect("the sink's state")
            .scoped(&world.hubspot.portal_id().to_string());
        for (email, at_ms) in [
            ("ada@moved.example", now - 1_000),
            ("bob@moved.example", now + 120_000),
        ] {
            state
                .set_intent(
                    &record_key("contacts", "EMAIL", email),
                    &CreateIntent {
                        trace_id: "an earlier attempt".to_string(),
                        at_ms,
                    },
                )
                .expect("intent");
        }
        state.flush().await.expect("flushed");
    }
    for email in [
        "ada@moved.example",
        "bob@moved.example",
        "carol@moved.example",
    ] {
        world
            .http_admin_create("contacts", serde_json::json!({ "email": email }))
            .await;
    }
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("starts");
    let mut ids = Vec::new();
    for (n, email) in [
        "ada@moved.example",
        "bob@moved.example",
        "carol@moved.example",
    ]
    .into_iter()
    .enumerate()
    {
        let event = contact(&format!("ct_{n}"), Some(email), ChangeKind::Created);
        publish_contact(&world, &event).await;
        ids.push(event.event_id);
    }
    let outcomes = world.outcomes_for(&ids, Duration::from_secs(120)).await;
    let status = |n: usize| statuses(&outcomes, &ids[n])[0].0.clone();
    assert_eq!(
        status(0),
        "CREATED",
        "ada: the interrupted attempt created her"
    );
    assert_ne!(status(1), "CREATED", "bob was in HubSpot before the intent");
    assert_ne!(status(2), "CREATED", "carol: no attempt of hubsync's");
    pipeline.stop().await.expect("stops");
    let state = State::open(&world.config.state.stage_dir("sink"), 1 << 20, 1_000)
        .expect("the sink's state")
        .scoped(&world.hubspot.portal_id().to_string());
    for email in ["ada@moved.example", "bob@moved.example"] {
        assert_eq!(
            state
                .intent(&record_key("contacts", "EMAIL", email))
                .expect("reads"),
            None,
            "{email}: the intent is settled by the answer"
        );
    }
    assert_eq!(world.hubspot.count(ObjectType::Contacts), 3);
}
