//! End-to-end: activity and deal commands through the sink stage into the HubSpot sandbox.
//! Activities are created once per upstream activity, linked inline to their contact (and deal),
//! take their contact's owner when they have none of their own, and wait for a contact HubSpot
//! does not hold yet.

use std::collections::BTreeMap;
use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync::sink::owned::{ACTIVITY_ID_PROPERTY, DEAL_KEY_PROPERTY};
use hubsync_sandbox::broker::TopicSpec;
use hubsync_sandbox::hubspot::SandboxOptions;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{
    Association, CommandAction, HubSpotCommand, HubSpotObjectType, Identity, IdentityKind,
    OutcomeStatus, SchemaKind, SyncOutcome, examples,
};

mod support;
use support::world::World;

const WAIT: Duration = Duration::from_secs(60);
const OWNER: &str = "70000002";

fn contact_link(email: &str, type_id: i32) -> Association {
    Association {
        to_object_type: HubSpotObjectType::Contact,
        to_hubspot_id: None,
        to_identity: Some(Identity {
            kind: IdentityKind::Email,
            property: "email".into(),
            value: email.into(),
        }),
        association_category: "HUBSPOT_DEFINED".into(),
        association_type_id: type_id,
    }
}

fn deal_link(key: &str, type_id: i32) -> Association {
    Association {
        to_object_type: HubSpotObjectType::Deal,
        to_hubspot_id: None,
        to_identity: Some(Identity {
            kind: IdentityKind::SourceId,
            property: DEAL_KEY_PROPERTY.into(),
            value: key.into(),
        }),
        association_category: "HUBSPOT_DEFINED".into(),
        association_type_id: type_id,
    }
}

fn base(object: HubSpotObjectType, action: CommandAction, identity: Identity) -> HubSpotCommand {
    let mut command = examples::hubspot_command();
    command.team_id = support::events::TEAM_ID.to_string();
    command.event_id = uuid::Uuid::new_v4().to_string();
    command.command_id = uuid::Uuid::new_v4().to_string();
    command.event_time = chrono::Utc::now().timestamp_millis();
    command.object_type = object;
    command.action = action;
    command.identity = identity;
    command.properties.clear();
    command.create_only_properties.clear();
    command.fill_if_empty.clear();
    command.associations.clear();
    command.may_create = true;
    command
}

/// A note for `activity` on the contact `email`, inheriting the contact's owner.
fn note(activity: &str, email: &str, deal: Option<&str>) -> HubSpotCommand {
    let mut command = base(
        HubSpotObjectType::Note,
        CommandAction::CreateActivity,
        Identity {
            kind: IdentityKind::SourceId,
            property: ACTIVITY_ID_PROPERTY.into(),
            value: activity.into(),
        },
    );
    command.properties = BTreeMap::from([
        (
            "hs_timestamp".to_string(),
            Some("2026-11-20T09:30:00.000Z".to_string()),
        ),
        (
            "hs_note_body".to_string(),
            Some(format!("Email opened: {activity}")),
        ),
    ]);
    command.fill_if_empty = vec!["hubspot_owner_id".into()];
    command.associations.push(contact_link(email, 202));
    if let Some(deal) = deal {
        command.associations.push(deal_link(deal, 214));
    }
    command
}

/// A company known upstream by its domain.
fn company(domain: &str) -> HubSpotCommand {
    let mut command = base(
        HubSpotObjectType::Company,
        CommandAction::Upsert,
        Identity {
            kind: IdentityKind::Domain,
            property: "domain".into(),
            value: domain.into(),
        },
    );
    command.properties = BTreeMap::from([
        ("domain".to_string(), Some(domain.to_string())),
        ("name".to_string(), Some(format!("Company {domain}"))),
    ]);
    command
}

/// A contact naming its company by domain, with create-only defaults when `defaults`.
fn contact(email: &str, domain: &str, defaults: bool) -> HubSpotCommand {
    let mut command = base(
        HubSpotObjectType::Contact,
        CommandAction::Upsert,
        Identity {
            kind: IdentityKind::Email,
            property: "email".into(),
            value: email.into(),
        },
    );
    command.properties = BTreeMap::from([
        ("email".to_string(), Some(email.to_string())),
        ("jobtitle".to_string(), Some("CTO".to_string())),
    ]);
    if defaults {
        command.create_only_properties =
            BTreeMap::from([("lifecyclestage".to_string(), "lead".to_string())]);
    }
    command.associations.push(Association {
        to_object_type: HubSpotObjectType::Company,
        to_hubspot_id: None,
        to_identity: Some(Identity {
            kind: IdentityKind::Domain,
            property: "domain".into(),
            value: domain.into(),
        }),
        association_category: "HUBSPOT_DEFINED".into(),
        association_type_id: 1,
    });
    command
}

/// Searches of `object` (`notes`, `deals`...) HubSpot answered.
fn search_calls(world: &World, object: &str) -> u64 {
    let path = format!("/crm/v3/objects/{object}/search");
    world
        .hubspot
        .request_counts()
        .iter()
        .filter(|((call, _), _)| call.contains(&path))
        .map(|(_, n)| n)
        .sum()
}

fn association_calls(world: &World) -> u64 {
    world
        .hubspot
        .request_counts()
        .iter()
        .filter(|((call, _), _)| call.contains("/crm/v4/associations/contacts/companies"))
        .map(|(_, n)| n)
        .sum()
}

fn deal(key: &str, email: &str) -> HubSpotCommand {
    let mut command = base(
        HubSpotObjectType::Deal,
        CommandAction::Upsert,
        Identity {
            kind: IdentityKind::SourceId,
            property: DEAL_KEY_PROPERTY.into(),
            value: key.into(),
        },
    );
    command.create_only_properties = BTreeMap::from([
        ("dealname".to_string(), format!("Deal {key}")),
        ("pipeline".to_string(), "default".to_string()),
        ("dealstage".to_string(), "appointmentscheduled".to_string()),
    ]);
    command.associations.push(contact_link(email, 3));
    command
}

async fn publish(world: &World, key: &str, command: &HubSpotCommand) {
    world
        .publish(
            SchemaKind::HubSpotCommand,
            &world.config.topics.commands,
            key,
            command,
        )
        .await;
}

async fn outcome(world: &World, command: &HubSpotCommand) -> SyncOutcome {
    let id = command.event_id.clone();
    let mut found = world.outcomes_for(std::slice::from_ref(&id), WAIT).await;
    let outcomes = found.remove(&id).unwrap_or_default();
    assert_eq!(outcomes.len(), 1, "one outcome for {id}: {outcomes:?}");
    outcomes[0].clone()
}

fn id_of(outcome: &SyncOutcome) -> u64 {
    outcome
        .hubspot_id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a HubSpot id in {outcome:?}"))
}

async fn sink_only(world: &World) -> Pipeline {
    Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::Sink,
        Health::default(),
    )
    .await
    .expect("the sink starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_and_deals_are_created_once_with_their_links_and_owner() {
    let world = World::start(SandboxOptions::default(), 1, |c| c).await;
    let contact: u64 = world
        .http_admin_create(
            "contacts",
            serde_json::json!({"email": "ada@acme.io", "hubspot_owner_id": OWNER}),
        )
        .await
        .parse()
        .expect("contact id");
    let pipeline = sink_only(&world).await;

    let first_deal = deal("ct_1:camp_1", "ada@acme.io");
    publish(&world, "ada@acme.io", &first_deal).await;
    let created = outcome(&world, &first_deal).await;
    assert_eq!(created.status, OutcomeStatus::Created, "{created:?}");
    let deal_id = id_of(&created);
    assert_eq!(
        world
            .hubspot
            .associations_of(ObjectType::Deals, deal_id, ObjectType::Contacts),
        vec![(contact, vec![3])],
        "the deal is linked to its contact by the create itself"
    );

    let first_note = note("act-1", "ada@acme.io", Some("ct_1:camp_1"));
    publish(&world, "ada@acme.io", &first_note).await;
    let created = outcome(&world, &first_note).await;
    assert_eq!(created.status, OutcomeStatus::Created, "{created:?}");
    let note_id = id_of(&created);
    let notes = world.records(ObjectType::Notes);
    assert_eq!(notes.len(), 1);
    let properties = &notes[0]["properties"];
    assert_eq!(properties[ACTIVITY_ID_PROPERTY], "act-1");
    assert_eq!(
        properties["hubspot_owner_id"], OWNER,
        "the note takes its contact's owner"
    );
    assert_eq!(
        world
            .hubspot
            .associations_of(ObjectType::Notes, note_id, ObjectType::Contacts),
        vec![(contact, vec![202])]
    );
    assert_eq!(
        world
            .hubspot
            .associations_of(ObjectType::Notes, note_id, ObjectType::Deals),
        vec![(deal_id, vec![214])]
    );

    // The same activity and deal again, as a replay re-processes them under new event ids.
    let replayed_note = note("act-1", "ada@acme.io", Some("ct_1:camp_1"));
    let replayed_deal = deal("ct_1:camp_1", "ada@acme.io");
    publish(&world, "ada@acme.io", &replayed_note).await;
    publish(&world, "ada@acme.io", &replayed_deal).await;
    let again = outcome(&world, &replayed_note).await;
    assert_eq!(again.status, OutcomeStatus::Unchanged, "{again:?}");
    assert_eq!(id_of(&again), note_id);
    let again = outcome(&world, &replayed_deal).await;
    assert_eq!(again.status, OutcomeStatus::Unchanged, "{again:?}");
    assert_eq!(id_of(&again), deal_id);
    assert_eq!(world.hubspot.count(ObjectType::Notes), 1, "no second note");
    assert_eq!(world.hubspot.count(ObjectType::Deals), 1, "no second deal");

    pipeline.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_waits_for_its_contact_and_is_parked_when_it_never_comes() {
    let world = World::start(SandboxOptions::default(), 1, |c| {
        c.replace(
            "[state]\n",
            "[stages.sink]\nlinger = \"100ms\"\ncontact_wait = \"12s\"\n[state]\n",
        )
    })
    .await;
    let pipeline = sink_only(&world).await;

    let waits = note("act-2", "bob@acme.io", None);
    let never = note("act-3", "carol@acme.io", None);
    publish(&world, "bob@acme.io", &waits).await;
    publish(&world, "carol@acme.io", &never).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        world.hubspot.count(ObjectType::Notes),
        0,
        "no note before its contact exists"
    );
    // Bob's contact arrives in HubSpot: his note follows, linked to him, without an owner.
    let bob: u64 = world
        .http_admin_create("contacts", serde_json::json!({"email": "bob@acme.io"}))
        .await
        .parse()
        .expect("contact id");
    let created = outcome(&world, &waits).await;
    assert_eq!(created.status, OutcomeStatus::Created, "{created:?}");
    let note_id = id_of(&created);
    assert_eq!(
        world
            .hubspot
            .associations_of(ObjectType::Notes, note_id, ObjectType::Contacts),
        vec![(bob, vec![202])]
    );
    let notes = world.records(ObjectType::Notes);
    assert!(
        notes[0]["properties"]["hubspot_owner_id"].is_null(),
        "no owner to inherit and none given: {notes:?}"
    );

    let parked = outcome(&world, &never).await;
    assert_eq!(parked.status, OutcomeStatus::Parked, "{parked:?}");
    assert_eq!(parked.reason_code, "PARKED_CONTACT_MISSING");
    assert_eq!(
        parked.missing_fields,
        vec!["email:carol@acme.io".to_string()]
    );
    assert_eq!(world.hubspot.count(ObjectType::Notes), 1);

    pipeline.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_linked_to_their_primary_company_once_and_as_soon_as_it_is_written() {
    let world = World::start(SandboxOptions::default(), 1, |c| c).await;
    let pipeline = sink_only(&world).await;
    let companies_of = |contact: u64| {
        world
            .hubspot
            .associations_of(ObjectType::Contacts, contact, ObjectType::Companies)
    };

    let acme_event = company("acme.io");
    publish(&world, "acme.io", &acme_event).await;
    let acme = id_of(&outcome(&world, &acme_event).await);

    // Upserted (no defaults): linked by one association call after the write.
    let ada_event = contact("ada@acme.io", "acme.io", false);
    publish(&world, "ada@acme.io", &ada_event).await;
    let written = outcome(&world, &ada_event).await;
    assert_eq!(written.status, OutcomeStatus::Created, "{written:?}");
    let ada = id_of(&written);
    assert_eq!(companies_of(ada), vec![(acme, vec![1, 279])]);
    assert_eq!(association_calls(&world), 1);

    // Created with its defaults: linked by the create itself, no association call.
    let eve_event = contact("eve@acme.io", "ACME.io", true);
    publish(&world, "eve@acme.io", &eve_event).await;
    let written = outcome(&world, &eve_event).await;
    assert_eq!(written.status, OutcomeStatus::Created, "{written:?}");
    let eve = id_of(&written);
    assert_eq!(companies_of(eve), vec![(acme, vec![1, 279])]);
    assert_eq!(association_calls(&world), 1, "the create carried the link");

    // The same contact again: already linked, nothing is called.
    let again = contact("ada@acme.io", "acme.io", false);
    publish(&world, "ada@acme.io", &again).await;
    assert_eq!(
        outcome(&world, &again).await.status,
        OutcomeStatus::Unchanged
    );
    assert_eq!(
        association_calls(&world),
        1,
        "an unchanged link costs nothing"
    );

    // A company hubsync has not written yet: the contact is written, its link waits for the
    // company, and the company's write makes it.
    let bob_event = contact("bob@new.io", "new.io", false);
    publish(&world, "bob@new.io", &bob_event).await;
    let written = outcome(&world, &bob_event).await;
    assert_eq!(written.status, OutcomeStatus::Created, "{written:?}");
    assert!(written.reason.contains("new.io"), "{}", written.reason);
    let bob = id_of(&written);
    assert!(companies_of(bob).is_empty());
    let new_event = company("new.io");
    publish(&world, "new.io", &new_event).await;
    let new_company = id_of(&outcome(&world, &new_event).await);
    assert_eq!(companies_of(bob), vec![(new_company, vec![1, 279])]);

    // Ada moves to the new company: it becomes her primary one, the old link stays unlabelled.
    let moved = contact("ada@acme.io", "new.io", false);
    publish(&world, "ada@acme.io", &moved).await;
    outcome(&world, &moved).await;
    assert_eq!(
        companies_of(ada),
        vec![(acme, vec![279]), (new_company, vec![1, 279])]
    );

    pipeline.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_looks_activities_and_deals_up_instead_of_creating_them_again() {
    let world = World::start(
        SandboxOptions {
            search_index_lag: Duration::from_secs(1),
            ..SandboxOptions::default()
        },
        1,
        |c| {
            c.replace(
                "[state]\n",
                "[stages.inbound]\nsearch_lag = \"2s\"\n[state]\n",
            )
        },
    )
    .await;
    world
        .http_admin_create("contacts", serde_json::json!({"email": "ada@acme.io"}))
        .await;
    let pipeline = sink_only(&world).await;
    let first_note = note("act-9", "ada@acme.io", None);
    let first_deal = deal("ct_1:camp_9", "ada@acme.io");
    publish(&world, "ada@acme.io", &first_note).await;
    publish(&world, "ada@acme.io", &first_deal).await;
    let note_id = id_of(&outcome(&world, &first_note).await);
    let deal_id = id_of(&outcome(&world, &first_deal).await);
    pipeline.stop().await.expect("stops");

    // The state is lost (a new volume, and a changelog that does not have it: one from
    // before the changelog, or deleted), and the same activity and deal come again, as a
    // replay or a re-read of uncommitted commands brings them.
    let dir = world.state_dir.path();
    std::fs::remove_dir_all(dir).expect("state removed");
    std::fs::create_dir_all(dir).expect("state dir");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut lost = world.config.clone();
    lost.topics.state_changelog = "hubsync.sink.state.new".to_string();
    world
        .broker
        .create_topic(TopicSpec::new(&lost.topics.state_changelog, 1))
        .await
        .expect("an empty changelog");
    let pipeline = Pipeline::start(&lost, &world.secrets, Stages::Sink, Health::default())
        .await
        .expect("the sink starts");
    let mut again_note = note("act-9", "ada@acme.io", None);
    again_note.event_time = first_note.event_time;
    let mut again_deal = deal("ct_1:camp_9", "ada@acme.io");
    again_deal.event_time = first_deal.event_time;
    publish(&world, "ada@acme.io", &again_note).await;
    publish(&world, "ada@acme.io", &again_deal).await;
    let found = outcome(&world, &again_note).await;
    assert_eq!(found.status, OutcomeStatus::Unchanged, "{found:?}");
    assert_eq!(id_of(&found), note_id);
    assert!(found.reason.contains("found"), "{}", found.reason);
    assert_eq!(id_of(&outcome(&world, &again_deal).await), deal_id);
    assert!(
        search_calls(&world, "notes") >= 1,
        "the property was there before this state: what it lacks is looked for"
    );
    assert_eq!(world.hubspot.count(ObjectType::Notes), 1, "no second note");
    assert_eq!(world.hubspot.count(ObjectType::Deals), 1, "no second deal");

    // A new activity is still created, once.
    let new_note = note("act-10", "ada@acme.io", None);
    publish(&world, "ada@acme.io", &new_note).await;
    assert_eq!(
        outcome(&world, &new_note).await.status,
        OutcomeStatus::Created
    );
    assert_eq!(world.hubspot.count(ObjectType::Notes), 2);
    pipeline.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_portals_history_of_activities_is_created_without_looking_first() {
    let world = World::start(SandboxOptions::default(), 1, |c| c).await;
    world
        .http_admin_create("contacts", serde_json::json!({"email": "ada@acme.io"}))
        .await;
    let pipeline = sink_only(&world).await;
    let mut notes = Vec::new();
    for n in 0..3 {
        let mut old = note(&format!("act-{n}"), "ada@acme.io", None);
        // A day old: older than the sink's state, as a new team's history is.
        old.event_time -= 86_400_000;
        publish(&world, "ada@acme.io", &old).await;
        notes.push(old);
    }
    for old in &notes {
        assert_eq!(outcome(&world, old).await.status, OutcomeStatus::Created);
    }
    assert_eq!(world.hubspot.count(ObjectType::Notes), 3);
    assert_eq!(
        search_calls(&world, "notes"),
        0,
        "hubsync made its activity id property in this portal: no note of its own can be there \
         to find"
    );
    pipeline.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_command_is_held_without_its_message_and_dead_lettered_with_it() {
    let world = World::start(SandboxOptions::default(), 1, |c| c).await;
    let pipeline = sink_only(&world).await;
    let mut refused = contact("zed@acme.io", "acme.io", false);
    refused.properties.insert(
        "lifecyclestage".to_string(),
        Some("not-a-stage".to_string()),
    );
    let payload = world
        .publish_with_headers(
            SchemaKind::HubSpotCommand,
            &world.config.topics.replay_commands,
            "zed@acme.io",
            &refused,
            &[
                ("hubsync.replay.run", "backfill-7"),
                ("hubsync.replay.of", "crm.contact.changes/0/41"),
            ],
        )
        .await;
    let dead = outcome(&world, &refused).await;
    assert_eq!(dead.status, OutcomeStatus::DeadLettered, "{dead:?}");
    assert_eq!(dead.stage, "sink replay:backfill-7");
    let letters = world.dead_letters(1, WAIT).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.original_topic, world.config.topics.replay_commands);
    assert_eq!(
        letter.original_value.as_deref(),
        Some(payload.as_slice()),
        "the dead letter carries the command as it was on Kafka, read again"
    );
    assert!(
        letter
            .original_headers
            .iter()
            .any(|h| h.key == "hubsync.replay.run"),
        "{:?}",
        letter.original_headers
    );
    assert_eq!(letter.event_id.as_deref(), Some(refused.event_id.as_str()));
    pipeline.stop().await.expect("stops");
}
