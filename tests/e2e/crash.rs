//! End-to-end: `hubsync run` as a child process, killed with SIGKILL at random moments while it
//! works through tens of thousands of events. Afterwards HubSpot holds exactly the expected
//! records and activities, none twice, and every event has one final outcome.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use hubsync_sandbox::hubspot::DEFAULT_TOKEN;
use hubsync_sandbox::hubspot::SandboxOptions;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{ActivityType, ChangeKind, SchemaKind, SyncOutcome, examples};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod support;
use support::Child;
use support::world::World;

const CONTACT_EVENTS: usize = 16_000;
const DISTINCT_CONTACTS: usize = 6_000;
const COMPANY_EVENTS: usize = 4_000;
const DISTINCT_COMPANIES: usize = 500;
/// Activity events, some sent again under a new event id as a producer retry would.
const ACTIVITY_EVENTS: usize = 4_000;
const DISTINCT_ACTIVITIES: usize = 3_000;
const KILLS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let options = SandboxOptions {
        search_index_lag: Duration::from_secs(2),
        ..SandboxOptions::default()
    };
    let world = World::start(options, 3, |config| {
        config.replace(
            "[state]\n",
            "[stages.sink]\nlinger = \"200ms\"\n[stages.inbound]\nsearch_lag = \"3s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[state]\n",
        )
    })
    .await;
    let config_path = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config_path, world.config_text()).expect("config file");

    let mut rng = StdRng::seed_from_u64(0x5eed_c0de);
    let mut event_ids = Vec::with_capacity(CONTACT_EVENTS + COMPANY_EVENTS);
    let contact_topic = world.config.topics.contact_changes.clone();
    for i in 0..CONTACT_EVENTS {
        let n = if i < DISTINCT_CONTACTS {
            i
        } else {
            rng.random_range(0..DISTINCT_CONTACTS)
        };
        let mut event = examples::contact_changed();
        event.team_id = support::events::TEAM_ID.to_string();
        event.event_id = uuid::Uuid::new_v4().to_string();
        event.event_time = 1_767_225_600_000 + i as i64;
        event.contact_id = format!("ct_{n}");
        event.change = if i < DISTINCT_CONTACTS {
            ChangeKind::Created
        } else {
            ChangeKind::Updated
        };
        event.email = Some(format!("person{n}@crash.example"));
        event.first_name = Some(format!("First{n}"));
        event.job_title = Some(format!("Title {i}"));
        event.owner_user_id = None;
        event.campaign_id = None;
        event.fields.clear();
        event.changed_fields.clear();
        world
            .publish(
                SchemaKind::ContactChanged,
                &contact_topic,
                &event.contact_id,
                &event,
            )
            .await;
        event_ids.push(event.event_id);
    }
    let company_topic = world.config.topics.company_changes.clone();
    for i in 0..COMPANY_EVENTS {
        let n = if i < DISTINCT_COMPANIES {
            i
        } else {
            rng.random_range(0..DISTINCT_COMPANIES)
        };
        let mut event = examples::company_changed();
        event.team_id = support::events::TEAM_ID.to_string();
        event.event_id = uuid::Uuid::new_v4().to_string();
        event.event_time = 1_767_225_600_000 + i as i64;
        event.company_id = format!("co_{n}");
        event.domain = Some(format!("company{n}.crash.example"));
        event.name = Some(format!("Company {n} rev {i}"));
        event.owner_user_id = None;
        event.fields.clear();
        event.changed_fields.clear();
        world
            .publish(
                SchemaKind::CompanyChanged,
                &company_topic,
                &event.company_id,
                &event,
            )
            .await;
        event_ids.push(event.event_id);
    }

    let activity_topic = world.config.topics.activity_events.clone();
    for i in 0..ACTIVITY_EVENTS {
        let n = if i < DISTINCT_ACTIVITIES {
            i
        } else {
            rng.random_range(0..DISTINCT_ACTIVITIES)
        };
        let contact = n % DISTINCT_CONTACTS;
        let mut event = examples::activity_recorded();
        event.team_id = support::events::TEAM_ID.to_string();
        event.event_id = uuid::Uuid::new_v4().to_string();
        event.event_time = 1_767_225_600_000 + i as i64;
        event.activity_id = format!("act_{n}");
        event.contact_id = format!("ct_{contact}");
        event.contact_email = Some(format!("person{contact}@crash.example"));
        event.company_id = None;
        event.activity_type = ActivityType::EmailOpened;
        event.activity_type_name = "email_opened".to_string();
        event.campaign = None;
        event.sender = None;
        event.url = None;
        world
            .publish(
                SchemaKind::ActivityRecorded,
                &activity_topic,
                &event.contact_id,
                &event,
            )
            .await;
        event_ids.push(event.event_id);
    }

    let args = ["run", "--config", config_path.to_str().expect("utf-8 path")];
    let env = [("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)];
    for kill in 0..KILLS {
        let mut child = Child::spawn_with_env(&args, &env);
        let lifetime = Duration::from_millis(rng.random_range(1_500..6_000));
        tokio::time::sleep(lifetime).await;
        child.kill();
        eprintln!("kill {}: after {lifetime:?}", kill + 1);
    }
    let mut child = Child::spawn_with_env(&args, &env);
    let outcomes = world
        .outcomes_for(&event_ids, Duration::from_secs(600))
        .await;
    let status = child.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "the last run stops cleanly: {status}");

    // Every event has an outcome, and an event read again after a kill got the same one.
    let mut redelivered = 0;
    for id in &event_ids {
        let found: &Vec<SyncOutcome> = outcomes
            .get(id)
            .unwrap_or_else(|| panic!("event {id} has no outcome"));
        let finals: BTreeSet<(String, Option<String>)> = found
            .iter()
            .map(|o| (o.status.as_str().to_string(), o.hubspot_id.clone()))
            .collect();
        assert_eq!(
            finals.len(),
            1,
            "event {id} has one final outcome: {found:?}"
        );
        redelivered += found.len() - 1;
    }
    eprintln!(
        "{} events, {redelivered} outcome records repeated after kills",
        event_ids.len()
    );

    // HubSpot holds each contact and each company once.
    let contacts = world.records(ObjectType::Contacts);
    let emails: HashMap<String, usize> =
        contacts.iter().fold(HashMap::new(), |mut seen, record| {
            let email = record["properties"]["email"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            *seen.entry(email).or_insert(0) += 1;
            seen
        });
    assert_eq!(
        contacts.len(),
        DISTINCT_CONTACTS,
        "no contact missing or created twice"
    );
    assert!(emails.values().all(|n| *n == 1));
    let companies = world.records(ObjectType::Companies);
    let domains: BTreeSet<String> = companies
        .iter()
        .map(|r| {
            r["properties"]["domain"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        companies.len(),
        DISTINCT_COMPANIES,
        "no company missing or created twice"
    );
    assert_eq!(domains.len(), DISTINCT_COMPANIES);

    // Each activity once, as a note linked to its contact.
    let notes = world.records(ObjectType::Notes);
    let activities: BTreeSet<String> = notes
        .iter()
        .map(|r| {
            r["properties"]["hubsync_activity_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        notes.len(),
        DISTINCT_ACTIVITIES,
        "no activity missing or created twice"
    );
    assert_eq!(activities.len(), DISTINCT_ACTIVITIES);
    let unlinked = notes
        .iter()
        .filter(|r| {
            let id = r["id"].as_str().and_then(|id| id.parse().ok()).unwrap_or(0);
            world
                .hubspot
                .associations_of(ObjectType::Notes, id, ObjectType::Contacts)
                .is_empty()
        })
        .count();
    assert_eq!(unlinked, 0, "every note is linked to its contact");
}
