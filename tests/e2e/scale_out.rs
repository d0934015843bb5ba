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
    ActivityRecorded, ActivityType, ChangeKind, ContactChanged, HubSpotChange, HubSpotChangeKind,
    HubSpotObjectType, SchemaKind, SyncOutcome,
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
    // Stopped, not killed: its offsets are committed, so the second instance reads only the
    // copies below. (A kill this soon after the last outcome leaves commands uncommitted, and
    // each one read again is answered a second time: the repeats the tests below count.)
    first.terminate(Duration::from_secs(60)).await;
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

/// HubSpot's changes reach every sink instance, so whichever owns a portal's commands knows
/// them: with two sinks, contacts deleted in HubSpot are skipped `DELETED_IN_HUBSPOT` in every
/// portal, never written again. (Read by one consumer group, each change reached one of the two
/// sinks, seldom the one owning its portal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_knows_what_was_deleted_in_hubspot_whichever_owns_the_portal() {
    const TEAMS: usize = 12;
    let fleet = Fleet::start(TEAMS, 12).await;
    let world = &fleet.world;
    let mut instances = vec![
        fleet.spawn("process-1", "process"),
        fleet.spawn("sink-1", "sink"),
        fleet.spawn("sink-2", "sink"),
    ];

    // One contact per portal, created by hubsync.
    let contact_of = |n: usize, kind: ChangeKind| {
        let mut event = contact(
            &format!("ct_{n}"),
            Some(&format!("gone@{}.example", team_name(n))),
            kind,
        );
        event.team_id = team_name(n);
        event
    };
    let created: Vec<ContactChanged> = (0..TEAMS)
        .map(|n| contact_of(n, ChangeKind::Created))
        .collect();
    for event in &created {
        publish_contact(world, event).await;
    }
    let ids: Vec<String> = created.iter().map(|e| e.event_id.clone()).collect();
    let outcomes = world.outcomes_for(&ids, Duration::from_secs(120)).await;
    let hubspot_ids: Vec<String> = ids
        .iter()
        .map(|id| {
            let all = statuses(&outcomes, id);
            assert_eq!(all.len(), 1, "{id}: {all:?}");
            assert_eq!(all[0].0, "CREATED", "{id}: {all:?}");
            all[0].1.clone().expect("a created contact's HubSpot id")
        })
        .collect();

    // Each is deleted in HubSpot, as the inbound stage reports it.
    let changes = world.config.topics.hubspot_changes.clone();
    for (n, hubspot_id) in hubspot_ids.iter().enumerate() {
        let deleted = HubSpotChange {
            event_id: uuid::Uuid::new_v4().to_string(),
            portal_id: i64::try_from(portal_of(n)).expect("portal id"),
            team_id: Some(team_name(n)),
            object_type: HubSpotObjectType::Contact,
            object_id: hubspot_id.clone(),
            change: HubSpotChangeKind::Deleted,
            property_name: None,
            property_value: None,
            occurred_at: hubsync::outcomes::now_ms(),
            change_source: Some("CRM_UI".to_string()),
            source_id: Some("userId:1".to_string()),
            properties: Default::default(),
            record_id: Some(format!("ct_{n}")),
            fields: Vec::new(),
            merged_object_ids: Vec::new(),
            merged_record_ids: Vec::new(),
            association: None,
            list_id: None,
            via: Some("webhook".to_string()),
        };
        world
            .publish(SchemaKind::HubSpotChange, &changes, deleted.key(), &deleted)
            .await;
    }
    // A sink applies a change as it reads it; the next events come well after.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let updated: Vec<ContactChanged> = (0..TEAMS)
        .map(|n| {
            let mut event = contact_of(n, ChangeKind::Updated);
            event.first_name = Some("Again".to_string());
            event
        })
        .collect();
    for event in &updated {
        publish_contact(world, event).await;
    }
    let ids: Vec<String> = updated.iter().map(|e| e.event_id.clone()).collect();
    let outcomes = world.outcomes_for(&ids, Duration::from_secs(120)).await;
    let written: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (n, statuses(&outcomes, id)))
        .filter(|(_, all)| all.iter().any(|(status, _)| status != "SKIPPED"))
        .collect();
    assert!(
        written.is_empty(),
        "contacts deleted in HubSpot written again (portal index, outcomes): {written:?}"
    );
    for (id, all) in ids.iter().map(|id| (id, &outcomes[id])) {
        assert_eq!(all.len(), 1, "{id}: {all:?}");
        assert_eq!(
            all[0].reason_code, "DELETED_IN_HUBSPOT",
            "{id}: {:?}",
            all[0]
        );
    }
    for n in 0..TEAMS {
        let held = world.portals.all()[n].snapshot(ObjectType::Contacts);
        assert!(
            held.iter().all(|c| c["properties"]["firstname"] != "Again"),
            "portal {n}: {held:?}"
        );
    }
    for child in &mut instances {
        let status = child.terminate(Duration::from_secs(60)).await;
        assert!(status.success(), "{status}");
    }
}

/// The size of a run with several instances: `teams` teams on as many portals, `4 * per_team`
/// events each (contacts created in three waves, each followed by an activity of the contact,
/// and updates of the first wave's contacts in the later two), topics of `partitions`
/// partitions, `sinks` sink instances at the start beside two process instances.
#[derive(Clone, Copy)]
struct Scale {
    teams: usize,
    per_team: usize,
    partitions: i32,
    sinks: usize,
}

impl Scale {
    fn events(self) -> usize {
        self.teams * self.per_team * 4
    }
}

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
    teams: usize,
) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("teams")).expect("instance dir");
    let service = world.service_text(&dir, group);
    let path = dir.join("hubsync.toml");
    std::fs::write(&path, service).expect("service file");
    for n in 0..teams {
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

/// A world of `teams` teams on as many sandbox portals, and what its instances share: a
/// consumer group prefix of its own, a directory per instance, the teams' tokens.
struct Fleet {
    world: World,
    root: tempfile::TempDir,
    group: String,
    teams: usize,
    env: Vec<(String, String)>,
}

impl Fleet {
    async fn start(teams: usize, partitions: i32) -> Fleet {
        let portals: Vec<SandboxOptions> = (0..teams)
            .map(|n| SandboxOptions {
                portal_id: portal_of(n),
                tokens: vec![token_of(n)],
                ..SandboxOptions::default()
            })
            .collect();
        Fleet {
            world: World::start_portals(portals, partitions, |c| c).await,
            root: tempfile::tempdir().expect("instances"),
            group: format!("t{}", uuid::Uuid::new_v4().simple()),
            teams,
            env: (0..teams)
                .map(|n| (format!("SCALE_TOKEN_{n}"), token_of(n)))
                .collect(),
        }
    }

    /// `hubsync run --stage STAGE` as instance `name` (its files and state under its name).
    fn spawn(&self, name: &str, stage: &str) -> Child {
        let path = instance_files(&self.world, self.root.path(), &self.group, name, self.teams);
        let path = path.to_str().expect("utf-8 path").to_string();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Child::spawn_with_env(&["run", "--config", &path, "--stage", stage], &env)
    }
}

/// One wave of events for every team, encoded: new contacts, each followed by an activity of
/// it, and (after the first wave) updates of the first wave's contacts. Their ids join `ids`.
async fn wave(
    world: &World,
    scale: Scale,
    wave: usize,
    ids: &mut Vec<String>,
) -> Vec<(String, String, Vec<u8>)> {
    let contacts = &world.config.topics.contact_changes;
    let activities = &world.config.topics.activity_events;
    let mut records = Vec::new();
    let half = scale.per_team / 2;
    for n in 0..scale.teams {
        let team = team_name(n);
        for i in 0..half {
            let index = wave * half + i;
            let email = format!("p{index}@{team}.example");
            let mut created = contact(&format!("ct_{index}"), Some(&email), ChangeKind::Created);
            created.team_id = team.clone();
            let payload = world
                .encode(SchemaKind::ContactChanged, contacts, &created)
                .await;
            records.push((contacts.clone(), created.contact_id.clone(), payload));
            ids.push(created.event_id);
            let mut opened = activity(
                ActivityType::EmailOpened,
                &format!("ct_{index}"),
                Some(&email),
            );
            opened.team_id = team.clone();
            let payload = world
                .encode(SchemaKind::ActivityRecorded, activities, &opened)
                .await;
            records.push((activities.clone(), opened.contact_id.clone(), payload));
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
                let payload = world
                    .encode(SchemaKind::ContactChanged, contacts, &updated)
                    .await;
                records.push((contacts.clone(), updated.contact_id.clone(), payload));
                ids.push(updated.event_id);
            }
        }
    }
    records
}

/// Two process and `scale.sinks` sink instances in one group over `scale.teams` portals, while
/// three waves of events are published: after the first, a sink is SIGKILLed and a new one
/// joins on an empty state directory; during the third, every instance is restarted in turn,
/// as a rolling upgrade does. Afterwards every contact and activity is in HubSpot once, in its
/// own portal, every event has one final outcome, and no portal was ever called over its limit.
async fn killed_added_and_restarted(scale: Scale) {
    let fleet = Fleet::start(scale.teams, scale.partitions).await;
    let world = &fleet.world;
    let spawn = |name: &str, stage: &str| fleet.spawn(name, stage);
    let started = std::time::Instant::now();
    let mut instances: Vec<(String, &str, Child)> = Vec::new();
    for n in 1..=2 {
        let name = format!("process-{n}");
        let child = spawn(&name, "process");
        instances.push((name, "process", child));
    }
    for n in 1..=scale.sinks {
        let name = format!("sink-{n}");
        let child = spawn(&name, "sink");
        instances.push((name, "sink", child));
    }

    let mut ids = Vec::new();
    world
        .publish_many(&wave(world, scale, 0, &mut ids).await)
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // One sink dies mid-stream, a new one on an empty state directory joins.
    let killed = instances
        .iter()
        .position(|(_, stage, _)| *stage == "sink")
        .expect("a sink");
    let (_, _, mut dead) = instances.remove(killed);
    dead.kill();
    let name = format!("sink-{}", scale.sinks + 1);
    let child = spawn(&name, "sink");
    instances.push((name, "sink", child));
    world
        .publish_many(&wave(world, scale, 1, &mut ids).await)
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Every instance restarted in turn while the last wave arrives, as a rolling upgrade does.
    let last = wave(world, scale, 2, &mut ids).await;
    let chunk = last.len().div_ceil(instances.len());
    let mut pieces = last.chunks(chunk);
    for (name, stage, child) in &mut instances {
        if let Some(piece) = pieces.next() {
            world.publish_many(piece).await;
        }
        let status = child.terminate(Duration::from_secs(60)).await;
        assert!(status.success(), "{name}: {status}");
        *child = spawn(name, stage);
    }
    for piece in pieces {
        world.publish_many(piece).await;
    }
    assert_eq!(ids.len(), scale.events());

    let outcomes = world.outcomes_for(&ids, Duration::from_secs(600)).await;
    let mut repeated = 0;
    let mut not_one = Vec::new();
    for id in &ids {
        let all = statuses(&outcomes, id);
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        if distinct.len() != 1 {
            not_one.push((id, all.clone()));
        }
        repeated += all.len().saturating_sub(1);
    }
    let written = started.elapsed();
    let notes: Vec<usize> = (0..scale.teams)
        .map(|n| world.portals.all()[n].count(ObjectType::Notes))
        .collect();
    assert!(
        not_one.is_empty(),
        "{} of {} events without exactly one final outcome, e.g. {:?}; notes per portal {notes:?}",
        not_one.len(),
        ids.len(),
        &not_one[..not_one.len().min(5)]
    );
    let per_portal = 3 * scale.per_team / 2;
    for n in 0..scale.teams {
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
        assert_eq!(contacts.len(), per_portal, "team {n}: every contact once");
        assert_eq!(emails.len(), contacts.len(), "team {n}: no contact twice");
        assert!(
            emails
                .iter()
                .all(|e| e.ends_with(&format!("@{}.example", team_name(n)))),
            "team {n}'s portal holds only its own contacts: {emails:?}"
        );
        assert_eq!(
            portal.count(ObjectType::Notes),
            per_portal,
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
        "{} events over {} portals in {:.1} s; {repeated} outcome records repeated after the kill \
         and restarts",
        ids.len(),
        scale.teams,
        written.as_secs_f64()
    );
    for (name, _, child) in &mut instances {
        let status = child.terminate(Duration::from_secs(60)).await;
        assert!(status.success(), "{name}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sinks_killed_added_and_restarted_mid_stream_write_everything_once_in_its_own_portal() {
    killed_added_and_restarted(Scale {
        teams: 8,
        per_team: 50,
        partitions: 6,
        sinks: 2,
    })
    .await;
}

/// The full size: 3 sinks and 2 process instances, 50 teams on 50 portals, 50,000 events, topics
/// of 12 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_portals_and_fifty_thousand_events_over_three_sinks_come_out_whole() {
    killed_added_and_restarted(Scale {
        teams: 50,
        per_team: 250,
        partitions: 12,
        sinks: 3,
    })
    .await;
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
