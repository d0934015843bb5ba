//! End-to-end: upstream contact and company changes through the process and sink stages into the
//! HubSpot sandbox, with every event ending in exactly one outcome.

use std::collections::HashMap;
use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Refusal, Stages};
use hubsync_sandbox::hubspot::SandboxOptions;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{ChangeKind, ContactChanged, OutcomeStatus, SchemaKind, SyncOutcome};
use serde_json::Value;

mod support;
use support::events;
use support::events::company;
use support::world::World;

const WAIT: Duration = Duration::from_secs(90);

fn contact(id: &str, email: &str, change: ChangeKind) -> ContactChanged {
    events::contact(id, Some(email), change)
}

fn fast(config: String) -> String {
    config.replace("[state]\n", "[stages.sink]\nlinger = \"100ms\"\n[state]\n")
}

async fn start(world: &World) -> Pipeline {
    Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("pipeline starts")
}

fn only(outcomes: &HashMap<String, Vec<SyncOutcome>>, event_id: &str) -> SyncOutcome {
    let found = outcomes
        .get(event_id)
        .unwrap_or_else(|| panic!("no outcome for {event_id}"));
    assert_eq!(
        found.len(),
        1,
        "exactly one outcome for {event_id}: {found:?}"
    );
    found[0].clone()
}

fn by_email<'a>(records: &'a [Value], email: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["properties"]["email"] == email)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contacts_are_created_updated_and_deduplicated_with_one_outcome_each() {
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    let pipeline = start(&world).await;
    let topic = world.config.topics.contact_changes.clone();

    let mut ada = contact("ct_1", "Ada@Example.org", ChangeKind::Created);
    ada.first_name = Some("Ada".into());
    ada.last_name = Some("Lovelace".into());
    let mut grace = contact("ct_2", "grace@example.org", ChangeKind::Created);
    grace.first_name = Some("Grace".into());
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &ada)
        .await;
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_2", &grace)
        .await;
    let first = world
        .outcomes_for(&[ada.event_id.clone(), grace.event_id.clone()], WAIT)
        .await;
    assert_eq!(only(&first, &ada.event_id).status, OutcomeStatus::Created);
    assert_eq!(only(&first, &grace.event_id).status, OutcomeStatus::Created);

    // An update of Ada: the default lifecycle stage written at creation stays as it is.
    let mut update = contact("ct_1", "ada@example.org", ChangeKind::Updated);
    update.job_title = Some("Analyst".into());
    update.changed_fields = vec!["job_title".into()];
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &update)
        .await;
    let second = world
        .outcomes_for(std::slice::from_ref(&update.event_id), WAIT)
        .await;
    let updated = only(&second, &update.event_id);
    assert_eq!(updated.status, OutcomeStatus::Updated, "{updated:?}");
    assert_eq!(updated.hubspot_id, only(&first, &ada.event_id).hubspot_id);

    // The same event delivered twice (a producer retry upstream) is answered, not written again.
    let calls_before = world.hubspot.request_counts().values().sum::<u64>();
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &update)
        .await;
    let replayed = world
        .read_until(
            &world.config.topics.outcomes,
            WAIT,
            |read: &[SyncOutcome]| {
                read.iter()
                    .filter(|o| o.event_id == update.event_id)
                    .count()
                    >= 2
            },
        )
        .await;
    let again: Vec<&SyncOutcome> = replayed
        .iter()
        .filter(|o| o.event_id == update.event_id)
        .collect();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].status, again[1].status);
    assert_eq!(again[0].hubspot_id, again[1].hubspot_id);
    let calls_after = world.hubspot.request_counts().values().sum::<u64>();
    assert_eq!(
        calls_after, calls_before,
        "a redelivered event costs no HubSpot call"
    );

    pipeline.stop().await.expect("pipeline stops cleanly");
    let contacts = world.records(ObjectType::Contacts);
    assert_eq!(contacts.len(), 2, "{contacts:#?}");
    let ada_record = by_email(&contacts, "ada@example.org");
    assert_eq!(ada_record.len(), 1);
    assert_eq!(ada_record[0]["properties"]["firstname"], "Ada");
    assert_eq!(ada_record[0]["properties"]["jobtitle"], "Analyst");
    assert_eq!(ada_record[0]["properties"]["lifecyclestage"], "lead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parked_invalid_and_malformed_events_each_get_their_outcome_or_dead_letter() {
    let world = World::start(SandboxOptions::default(), 1, |config| {
        fast(config)
            .replace("mandatory = [\"email\"]", "mandatory = [\"email\", \"last_name\"]")
            .replacen(
                "[[sync.companies.mapping]]",
                "[[sync.contacts.mapping]]\nsource = \"stage\"\nproperty = \"hs_lead_status\"\n\n[[sync.companies.mapping]]",
                1,
            )
    })
    .await;
    let pipeline = start(&world).await;
    let topic = world.config.topics.contact_changes.clone();

    let mut parked = contact("ct_p", "parked@example.org", ChangeKind::Created);
    parked.first_name = Some("Pat".into());
    parked.last_name = None;
    let mut invalid = contact("ct_i", "invalid@example.org", ChangeKind::Created);
    invalid.last_name = Some("Ivy".into());
    invalid.fields.insert("stage".into(), Some("new".into()));
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_p", &parked)
        .await;
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_i", &invalid)
        .await;
    world.publish_raw(&topic, "ct_x", b"not avro at all").await;

    let outcomes = world
        .outcomes_for(&[parked.event_id.clone(), invalid.event_id.clone()], WAIT)
        .await;
    let parked_outcome = only(&outcomes, &parked.event_id);
    assert_eq!(
        parked_outcome.status,
        OutcomeStatus::Parked,
        "{parked_outcome:?}"
    );
    assert_eq!(parked_outcome.missing_fields, ["last_name"]);
    let invalid_outcome = only(&outcomes, &invalid.event_id);
    assert_eq!(
        invalid_outcome.status,
        OutcomeStatus::DeadLettered,
        "{invalid_outcome:?}"
    );
    assert_eq!(invalid_outcome.reason_code, "INVALID_OPTION");

    let letters = world.dead_letters(2, WAIT).await;
    assert_eq!(letters.len(), 2, "{letters:#?}");
    let invalid_letter = letters
        .iter()
        .find(|l| l.event_id.as_deref() == Some(invalid.event_id.as_str()))
        .expect("the invalid event is dead-lettered");
    assert!(
        invalid_letter.error.message.contains("hs_lead_status"),
        "{}",
        invalid_letter.error.message
    );
    let malformed = letters
        .iter()
        .find(|l| l.event_id.is_none())
        .expect("the malformed message is dead-lettered");
    assert_eq!(malformed.error.code, "NOT_CONFLUENT_FRAMED");
    assert_eq!(
        malformed.original_value.as_deref(),
        Some(&b"not avro at all"[..])
    );
    assert_eq!(malformed.original_key.as_deref(), Some(&b"ct_x"[..]));
    // Its position stands in for the event id it does not have, so it too has an outcome.
    let position = format!(
        "{}/{}/{}",
        malformed.original_topic, malformed.original_partition, malformed.original_offset
    );
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&position), WAIT)
        .await;
    let undecodable = only(&outcomes, &position);
    assert_eq!(undecodable.status, OutcomeStatus::DeadLettered);
    assert_eq!(undecodable.reason_code, "NOT_CONFLUENT_FRAMED");

    pipeline.stop().await.expect("pipeline stops cleanly");
    assert!(
        world.records(ObjectType::Contacts).is_empty(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn companies_are_found_by_domain_and_never_created_twice_while_search_lags() {
    let options = SandboxOptions {
        search_index_lag: Duration::from_secs(30),
        ..SandboxOptions::default()
    };
    let world = World::start(options, 1, fast).await;
    let pipeline = start(&world).await;
    let topic = world.config.topics.company_changes.clone();

    let first = company("co_1", "acme.io", "Acme");
    world
        .publish(SchemaKind::CompanyChanged, &topic, "co_1", &first)
        .await;
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&first.event_id), WAIT)
        .await;
    let created = only(&outcomes, &first.event_id);
    assert_eq!(created.status, OutcomeStatus::Created);

    // Seconds later search still does not show it; the identity map does.
    let second = company("co_1", "ACME.io", "Acme Inc");
    world
        .publish(SchemaKind::CompanyChanged, &topic, "co_1", &second)
        .await;
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&second.event_id), WAIT)
        .await;
    let updated = only(&outcomes, &second.event_id);
    assert_eq!(updated.status, OutcomeStatus::Updated, "{updated:?}");
    assert_eq!(updated.hubspot_id, created.hubspot_id);

    pipeline.stop().await.expect("pipeline stops cleanly");
    let companies = world.records(ObjectType::Companies);
    assert_eq!(companies.len(), 1, "{companies:#?}");
    assert_eq!(companies[0]["properties"]["name"], "Acme Inc");
}

fn contacts(prefix: &str, count: usize) -> Vec<ContactChanged> {
    (0..count)
        .map(|i| {
            let mut event = contact(
                &format!("{prefix}_{i}"),
                &format!("{prefix}{i}@example.org"),
                ChangeKind::Created,
            );
            event.first_name = Some(format!("First{i}"));
            event
        })
        .collect()
}

async fn publish_contacts(world: &World, events: &[ContactChanged]) {
    let topic = world.config.topics.contact_changes.clone();
    for event in events {
        world
            .publish(SchemaKind::ContactChanged, &topic, &event.contact_id, event)
            .await;
    }
}

fn ids(events: &[ContactChanged]) -> Vec<String> {
    events.iter().map(|e| e.event_id.clone()).collect()
}

fn statuses(
    outcomes: &HashMap<String, Vec<SyncOutcome>>,
    events: &[ContactChanged],
) -> HashMap<OutcomeStatus, usize> {
    let mut counts = HashMap::new();
    for event in events {
        *counts
            .entry(only(outcomes, &event.event_id).status)
            .or_insert(0) += 1;
    }
    counts
}

fn status_count(world: &World, status: u16) -> u64 {
    world
        .hubspot
        .request_counts()
        .iter()
        .filter(|((_, s), _)| *s == status)
        .map(|(_, count)| count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_pauses_the_sink_and_a_restored_one_resumes_it_without_dead_letters() {
    use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, TokenState};
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    let health = Health::default();
    let pipeline = Pipeline::start(&world.config, &world.secrets, Stages::All, health.clone())
        .await
        .expect("pipeline starts");
    let before = contacts("before", 3);
    publish_contacts(&world, &before).await;
    world.outcomes_for(&ids(&before), WAIT).await;

    world.hubspot.set_token(DEFAULT_TOKEN, TokenState::Revoked);
    let during = contacts("during", 5);
    publish_contacts(&world, &during).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while health.healthy() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sink never paused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stages = health.snapshot();
    assert!(
        matches!(stages.get("sink"), Some(hubsync::admin::StageHealth::Degraded(why)) if why.contains("refuses the token")),
        "{stages:?}"
    );
    assert!(
        health.serving(),
        "a team's refused token degrades, never stops"
    );

    world.hubspot.set_token(DEFAULT_TOKEN, TokenState::Valid);
    let outcomes = world.outcomes_for(&ids(&during), WAIT).await;
    assert_eq!(
        statuses(&outcomes, &during),
        HashMap::from([(OutcomeStatus::Created, 5)])
    );
    assert!(health.healthy(), "{:?}", health.snapshot());
    pipeline.stop().await.expect("pipeline stops cleanly");
    let letters = world.dead_letters(1, Duration::from_secs(3)).await;
    assert!(
        letters.is_empty(),
        "nothing is dead-lettered for a revoked token: {letters:#?}"
    );
    assert_eq!(world.records(ObjectType::Contacts).len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_storm_loses_nothing_and_costs_few_extra_calls() {
    use hubsync_sandbox::hubspot::faults::Faults;
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    let pipeline = start(&world).await;
    world
        .hubspot
        .set_faults(Faults {
            storm_429_requests: 6,
            ..Faults::default()
        })
        .expect("faults");
    let events = contacts("storm", 60);
    publish_contacts(&world, &events).await;
    let outcomes = world.outcomes_for(&ids(&events), WAIT).await;
    assert_eq!(
        statuses(&outcomes, &events),
        HashMap::from([(OutcomeStatus::Created, 60)])
    );
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(world.records(ObjectType::Contacts).len(), 60);
    let refused = status_count(&world, 429);
    assert_eq!(
        refused, 6,
        "only the injected 429s: the budget itself caused none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_errors_and_hung_requests_are_retried_to_success() {
    use hubsync_sandbox::hubspot::faults::Faults;
    let world = World::start(SandboxOptions::default(), 1, |config| {
        fast(config).replace(
            "tier = \"professional\"",
            "tier = \"professional\"\nrequest_timeout = \"1s\"",
        )
    })
    .await;
    let pipeline = start(&world).await;
    world
        .hubspot
        .set_faults(Faults {
            error_rate: 0.3,
            hang_rate: 0.1,
            hang_ms: Some(5_000),
            path_prefix: Some("/crm/v3/objects/contacts/batch".into()),
            ..Faults::default()
        })
        .expect("faults");
    let events = contacts("flaky", 40);
    publish_contacts(&world, &events).await;
    let outcomes = world.outcomes_for(&ids(&events), WAIT).await;
    assert_eq!(
        statuses(&outcomes, &events),
        HashMap::from([(OutcomeStatus::Created, 40)])
    );
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        world.records(ObjectType::Contacts).len(),
        40,
        "retries created nothing twice"
    );
    let errors: u64 = (500..=504).map(|s| status_count(&world, s)).sum();
    assert!(errors > 0, "faults were injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_company_already_in_hubspot_is_found_by_search_and_updated() {
    let options = SandboxOptions {
        search_index_lag: Duration::ZERO,
        ..SandboxOptions::default()
    };
    let world = World::start(options, 1, fast).await;
    let existing = world
        .http_admin_create(
            "companies",
            serde_json::json!({"domain": "globex.com", "name": "Globex"}),
        )
        .await;
    let pipeline = start(&world).await;
    let event = company("co_9", "globex.com", "Globex Corporation");
    world
        .publish(
            SchemaKind::CompanyChanged,
            &world.config.topics.company_changes.clone(),
            "co_9",
            &event,
        )
        .await;
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&event.event_id), WAIT)
        .await;
    let outcome = only(&outcomes, &event.event_id);
    assert_eq!(outcome.status, OutcomeStatus::Updated, "{outcome:?}");
    assert_eq!(outcome.hubspot_id.as_deref(), Some(existing.as_str()));
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(world.records(ObjectType::Companies).len(), 1);
}

/// Isolation: the upstream topics carry every team's events. The same contact published for the
/// configured team and for a team this service does not serve reaches HubSpot once, with the
/// configured team's values; the other team's event gets no write, no outcome and no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_of_a_team_not_served_is_never_written() {
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    let pipeline = start(&world).await;
    let topic = world.config.topics.contact_changes.clone();

    let mut theirs = contact("ct_1", "ada@example.org", ChangeKind::Created);
    theirs.team_id = "globex".into();
    theirs.first_name = Some("Globex's Ada".into());
    let mut nobodys = contact("ct_1", "ada@example.org", ChangeKind::Created);
    nobodys.team_id = String::new();
    nobodys.first_name = Some("Nobody's Ada".into());
    let mut ours = contact("ct_1", "ada@example.org", ChangeKind::Created);
    ours.first_name = Some("Ada".into());
    // One partition, read in order: once ours has its outcome, the others were read before it.
    for event in [&theirs, &nobodys, &ours] {
        world
            .publish(SchemaKind::ContactChanged, &topic, "ct_1", event)
            .await;
    }
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&ours.event_id), WAIT)
        .await;
    pipeline.stop().await.expect("pipeline stops cleanly");

    assert_eq!(
        only(&outcomes, &ours.event_id).status,
        OutcomeStatus::Created
    );
    assert!(
        !outcomes.contains_key(&theirs.event_id) && !outcomes.contains_key(&nobodys.event_id),
        "events of teams not served get no outcome: {outcomes:?}"
    );
    let letters = world.dead_letters(1, Duration::from_secs(2)).await;
    assert!(letters.is_empty(), "and no dead letter: {letters:?}");
    let contacts = world.records(ObjectType::Contacts);
    let ada = by_email(&contacts, "ada@example.org");
    assert_eq!(ada.len(), 1, "{contacts:?}");
    assert_eq!(ada[0]["properties"]["firstname"], "Ada");
}

/// A team whose integration is paused: its events end SKIPPED TEAM_NOT_CONNECTED, so its log
/// says why, and nothing reaches HubSpot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_team_s_events_are_skipped_with_the_reason() {
    let paused = |config: String| fast(config).replace("[team]\n", "[team]\nstatus = \"paused\"\n");
    let world = World::start(SandboxOptions::default(), 1, paused).await;
    let pipeline = start(&world).await;
    let topic = world.config.topics.contact_changes.clone();
    let event = contact("ct_1", "ada@example.org", ChangeKind::Created);
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &event)
        .await;
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&event.event_id), WAIT)
        .await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    let outcome = only(&outcomes, &event.event_id);
    assert_eq!(outcome.status, OutcomeStatus::Skipped);
    assert_eq!(outcome.reason_code, "TEAM_NOT_CONNECTED");
    assert!(outcome.reason.contains("paused"), "{}", outcome.reason);
    assert!(world.records(ObjectType::Contacts).is_empty());
}

/// The second team of the multi-team tests, and its portal.
const ACME_PORTAL: u64 = 7_700_001;

/// The world's configuration and secrets with team acme on its own portal.
fn acme_team(world: &World) -> (hubsync::config::Config, hubsync::config::Secrets) {
    let mut acme = world.config.clone();
    acme.team.id = "acme".into();
    acme.team.hubspot_portal_id = ACME_PORTAL;
    (acme, world.secrets.clone())
}

/// A service of the world's team and `other`; a team that cannot be connected is refused alone.
async fn start_two(
    world: &World,
    other: (hubsync::config::Config, hubsync::config::Secrets),
    health: Health,
) -> Pipeline {
    let teams = [(world.config.clone(), world.secrets.clone()), other];
    Pipeline::start_teams(
        &world.config,
        &world.secrets,
        &teams,
        Stages::All,
        health,
        Refusal::Team,
    )
    .await
    .expect("the service starts")
}

/// Two teams in one service, each with its own portal and token: the same contact published for
/// both and for a team the service does not serve ends, in each portal, as that team's own, with
/// one outcome per served event naming its team, and nothing of the third team anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_teams_each_write_only_to_their_own_portal() {
    const ACME_TOKEN: &str = "pat-na1-acme-0000";
    let acme_portal = SandboxOptions {
        portal_id: ACME_PORTAL,
        tokens: vec![ACME_TOKEN.to_string()],
        ..SandboxOptions::default()
    };
    let world = World::start_portals(vec![SandboxOptions::default(), acme_portal], 1, fast).await;
    let (acme, mut acme_secrets) = acme_team(&world);
    acme_secrets.hubspot_token = hubsync::config::Secret::new(ACME_TOKEN);
    let pipeline = start_two(&world, (acme, acme_secrets), Health::default()).await;
    let topic = world.config.topics.contact_changes.clone();

    let mut ours = contact("ct_1", "ada@example.org", ChangeKind::Created);
    ours.first_name = Some("Sandbox's Ada".into());
    let mut acmes = contact("ct_1", "ada@example.org", ChangeKind::Created);
    acmes.team_id = "acme".into();
    acmes.first_name = Some("Acme's Ada".into());
    let mut theirs = contact("ct_1", "ada@example.org", ChangeKind::Created);
    theirs.team_id = "globex".into();
    theirs.first_name = Some("Globex's Ada".into());
    for event in [&theirs, &acmes, &ours] {
        world
            .publish(SchemaKind::ContactChanged, &topic, "ct_1", event)
            .await;
    }
    let outcomes = world
        .outcomes_for(&[ours.event_id.clone(), acmes.event_id.clone()], WAIT)
        .await;
    pipeline.stop().await.expect("pipeline stops cleanly");

    for (event, team) in [(&ours, "sandbox"), (&acmes, "acme")] {
        let outcome = only(&outcomes, &event.event_id);
        assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
        assert_eq!(outcome.team_id, team);
    }
    assert!(!outcomes.contains_key(&theirs.event_id), "{outcomes:?}");
    let first_names = |portal: &hubsync_sandbox::hubspot::HubSpotSandbox| -> Vec<Value> {
        portal
            .snapshot(ObjectType::Contacts)
            .iter()
            .map(|c| c["properties"]["firstname"].clone())
            .collect()
    };
    let acme_sandbox = world.portals.portal(ACME_PORTAL).expect("acme's portal");
    assert_eq!(
        first_names(&world.hubspot),
        vec![Value::from("Sandbox's Ada")]
    );
    assert_eq!(first_names(acme_sandbox), vec![Value::from("Acme's Ada")]);
}

/// A team whose token belongs to another portal is refused (fail closed) while the other team
/// starts: its events end SKIPPED TEAM_NOT_CONNECTED naming the portal, nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_with_another_portal_s_token_is_refused_and_the_others_go_on() {
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    let (mut wrong, secrets) = acme_team(&world);
    wrong.team.hubspot_portal_id = 999;
    let pipeline = start_two(&world, (wrong, secrets), Health::default()).await;
    let topic = world.config.topics.contact_changes.clone();
    let ours = contact("ct_1", "ada@example.org", ChangeKind::Created);
    let mut acmes = contact("ct_2", "grace@example.org", ChangeKind::Created);
    acmes.team_id = "acme".into();
    for (key, event) in [("ct_2", &acmes), ("ct_1", &ours)] {
        world
            .publish(SchemaKind::ContactChanged, &topic, key, event)
            .await;
    }
    let outcomes = world
        .outcomes_for(&[ours.event_id.clone(), acmes.event_id.clone()], WAIT)
        .await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        only(&outcomes, &ours.event_id).status,
        OutcomeStatus::Created
    );
    let refused = only(&outcomes, &acmes.event_id);
    assert_eq!(refused.status, OutcomeStatus::Skipped);
    assert_eq!(refused.reason_code, "TEAM_NOT_CONNECTED");
    assert!(refused.reason.contains("999"), "{}", refused.reason);
    let contacts = world.records(ObjectType::Contacts);
    assert!(
        by_email(&contacts, "grace@example.org").is_empty(),
        "{contacts:?}"
    );
}

/// One team connects through the platform's public app (OAuth), the other with a private-app
/// token. When the app is uninstalled from the first team's portal (its refresh token revoked),
/// that team alone pauses, named in `/healthz`, and nothing of it is dead-lettered, while the
/// other team keeps writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_oauth_installation_pauses_its_team_alone() {
    const REFRESH: &str = "refresh-acme-1";
    let acme_portal = SandboxOptions {
        portal_id: ACME_PORTAL,
        tokens: Vec::new(),
        refresh_tokens: vec![REFRESH.to_string()],
        ..SandboxOptions::default()
    };
    let world = World::start_portals(vec![SandboxOptions::default(), acme_portal], 1, fast).await;
    let app = world.portals.app().clone();
    let (mut acme, mut acme_secrets) = acme_team(&world);
    acme.hubspot.client_id = Some(app.client_id.clone());
    acme.hubspot.refresh_token = Some(hubsync::config::SecretSource::Value(
        hubsync::config::Secret::new(REFRESH),
    ));
    acme_secrets.oauth = Some(hubsync::config::OAuthSecrets {
        client_secret: hubsync::config::Secret::new(app.client_secret.clone()),
        refresh_token: hubsync::config::Secret::new(REFRESH),
    });
    let health = Health::default();
    let pipeline = start_two(&world, (acme, acme_secrets), health.clone()).await;
    let topic = world.config.topics.contact_changes.clone();
    let mut first = contact("ct_1", "ada@acme.example", ChangeKind::Created);
    first.team_id = "acme".into();
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_1", &first)
        .await;
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&first.event_id), WAIT)
        .await;
    assert_eq!(
        only(&outcomes, &first.event_id).status,
        OutcomeStatus::Created
    );
    assert!(
        world.portals.refreshes() >= 1,
        "acme writes with an OAuth access token"
    );

    assert!(world.portals.revoke_refresh_token(REFRESH));
    let mut second = contact("ct_2", "grace@acme.example", ChangeKind::Created);
    second.team_id = "acme".into();
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_2", &second)
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    let paused = loop {
        let sink = health.snapshot().get("sink").cloned();
        if let Some(hubsync::admin::StageHealth::Degraded(reason)) = sink {
            break reason;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acme never paused: {sink:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(paused.contains("team acme"), "{paused}");

    let ours = contact("ct_3", "ada@example.org", ChangeKind::Created);
    world
        .publish(SchemaKind::ContactChanged, &topic, "ct_3", &ours)
        .await;
    let outcomes = world
        .outcomes_for(std::slice::from_ref(&ours.event_id), WAIT)
        .await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        only(&outcomes, &ours.event_id).status,
        OutcomeStatus::Created
    );
    assert!(
        !outcomes.contains_key(&second.event_id),
        "the paused team's event waits for its token: {outcomes:?}"
    );
    let letters = world.dead_letters(1, Duration::from_secs(1)).await;
    assert!(
        letters.is_empty(),
        "nothing dead-lettered for a refused token: {letters:?}"
    );
}

/// A paused team's commands beyond its share of the sink's memory wait on disk: the other
/// team's live event, read after them, is still written, and once the paused team's token works
/// again every one of its commands is written, once, in order of arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_teams_backlog_beyond_its_share_waits_on_disk_while_others_write() {
    use hubsync_sandbox::hubspot::TokenState;
    const ACME_TOKEN: &str = "pat-na1-acme-0000";
    // 10 per batch and 8 batches at once: the sink holds at most 160 commands in memory, and
    // one team at most 120 of them.
    let small = |config: String| {
        config.replace(
            "[state]\n",
            "[stages.sink]\nlinger = \"100ms\"\nbatch_size = 10\nchannel_capacity = 1\n[state]\n",
        )
    };
    let acme_portal = SandboxOptions {
        portal_id: ACME_PORTAL,
        tokens: vec![ACME_TOKEN.to_string()],
        ..SandboxOptions::default()
    };
    let world = World::start_portals(vec![SandboxOptions::default(), acme_portal], 1, small).await;
    let (acme, mut acme_secrets) = acme_team(&world);
    acme_secrets.hubspot_token = hubsync::config::Secret::new(ACME_TOKEN);
    let health = Health::default();
    let pipeline = start_two(&world, (acme, acme_secrets), health.clone()).await;
    let acme_sandbox = world.portals.portal(ACME_PORTAL).expect("acme's portal");

    acme_sandbox.set_token(ACME_TOKEN, TokenState::Revoked);
    let acmes: Vec<ContactChanged> = contacts("acme", 400)
        .into_iter()
        .map(|mut event| {
            event.team_id = "acme".into();
            event
        })
        .collect();
    publish_contacts(&world, &acmes[..1]).await;
    let deadline = std::time::Instant::now() + WAIT;
    while health.healthy() {
        assert!(std::time::Instant::now() < deadline, "acme never paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publish_contacts(&world, &acmes[1..]).await;
    let ours = contacts("ours", 1);
    publish_contacts(&world, &ours).await;
    let outcomes = world.outcomes_for(&ids(&ours), WAIT).await;
    assert_eq!(
        statuses(&outcomes, &ours),
        HashMap::from([(OutcomeStatus::Created, 1)]),
        "read behind 400 commands of a paused team, more than the sink holds in memory"
    );
    assert!(
        acme_sandbox.snapshot(ObjectType::Contacts).is_empty(),
        "nothing of the paused team is written"
    );

    acme_sandbox.set_token(ACME_TOKEN, TokenState::Valid);
    let outcomes = world.outcomes_for(&ids(&acmes), WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        statuses(&outcomes, &acmes),
        HashMap::from([(OutcomeStatus::Created, 400)])
    );
    assert_eq!(acme_sandbox.snapshot(ObjectType::Contacts).len(), 400);
    let letters = world.dead_letters(1, Duration::from_secs(3)).await;
    assert!(letters.is_empty(), "{letters:#?}");
}

/// The client gives up on a failing call quickly: the sink's decisions show within seconds.
fn quick_retries(config: String) -> String {
    config.replace(
        "[state]\n",
        "[stages.sink]\nlinger = \"100ms\"\nmax_attempts = 2\nbackoff_base = \"50ms\"\nbackoff_max = \"100ms\"\n[state]\n",
    )
}

/// HubSpot answers nothing but 503s for a while as events keep coming: the team's writes pause
/// (the sink says degraded, naming the team and why), nothing is dead-lettered, and once HubSpot
/// answers again every event is written, each with one outcome. The outage here lasts about
/// 20 s with retries cut short; a longer one only probes longer (at most once a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_waits_and_dead_letters_nothing() {
    use hubsync_sandbox::hubspot::faults::Faults;
    let world = World::start(SandboxOptions::default(), 1, quick_retries).await;
    let health = Health::default();
    let pipeline = Pipeline::start(&world.config, &world.secrets, Stages::All, health.clone())
        .await
        .expect("pipeline starts");
    let before = contacts("before", 3);
    publish_contacts(&world, &before).await;
    world.outcomes_for(&ids(&before), WAIT).await;

    world
        .hubspot
        .set_faults(Faults {
            error_rate: 1.0,
            error_status: Some(503),
            ..Faults::default()
        })
        .expect("faults");
    let during = contacts("during", 20);
    publish_contacts(&world, &during[..10]).await;
    let deadline = std::time::Instant::now() + WAIT;
    let reason = loop {
        let sink = health.snapshot().get("sink").cloned();
        if let Some(hubsync::admin::StageHealth::Degraded(reason)) = sink {
            break reason;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never degraded: {sink:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(reason.contains("hubspot unavailable"), "{reason}");
    // The outage goes on while events keep coming.
    for chunk in during[10..].chunks(5) {
        publish_contacts(&world, chunk).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Every outcome so far (the read runs its whole time): none of the events held back.
    let seen: Vec<SyncOutcome> = world
        .read_until(
            &world.config.topics.outcomes,
            Duration::from_secs(10),
            |_: &[SyncOutcome]| false,
        )
        .await;
    assert!(seen.len() >= before.len(), "the earlier outcomes are read");
    assert!(
        seen.iter()
            .all(|o| during.iter().all(|e| e.event_id != o.event_id)),
        "nothing is decided while HubSpot is down: {seen:?}"
    );
    world
        .hubspot
        .set_faults(Faults::default())
        .expect("faults cleared");

    let outcomes = world.outcomes_for(&ids(&during), WAIT).await;
    assert_eq!(
        statuses(&outcomes, &during),
        HashMap::from([(OutcomeStatus::Created, 20)])
    );
    let deadline = std::time::Instant::now() + WAIT;
    while !health.healthy() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            health.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pipeline.stop().await.expect("pipeline stops cleanly");
    let letters = world.dead_letters(1, Duration::from_secs(3)).await;
    assert!(
        letters.is_empty(),
        "an outage dead-letters nothing: {letters:#?}"
    );
    assert_eq!(world.records(ObjectType::Contacts).len(), 23);
}

/// One contact HubSpot fails with a 500 whatever the batch: the batch is split, that contact is
/// tried alone and dead-lettered, the others are written, and the team never pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_input_is_dead_lettered_alone_and_never_blocks_the_others() {
    use hubsync_sandbox::hubspot::faults::Faults;
    let world = World::start(SandboxOptions::default(), 1, quick_retries).await;
    world
        .hubspot
        .set_faults(Faults {
            poison: Some("poison7@example.org".into()),
            ..Faults::default()
        })
        .expect("faults");
    let health = Health::default();
    let pipeline = Pipeline::start(&world.config, &world.secrets, Stages::All, health.clone())
        .await
        .expect("pipeline starts");
    let events = contacts("poison", 30);
    publish_contacts(&world, &events).await;
    let outcomes = world.outcomes_for(&ids(&events), WAIT).await;
    let letters = world.dead_letters(1, WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    for event in &events {
        let outcome = only(&outcomes, &event.event_id);
        if event.email.as_deref() == Some("poison7@example.org") {
            assert_eq!(outcome.status, OutcomeStatus::DeadLettered, "{outcome:?}");
            assert_eq!(outcome.reason_code, "RETRIES_EXHAUSTED");
        } else {
            assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
        }
    }
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(world.records(ObjectType::Contacts).len(), 29);
}

fn calls_to(world: &World, endpoint: &str) -> u64 {
    world
        .hubspot
        .request_counts()
        .iter()
        .filter(|((e, _), _)| e == endpoint)
        .map(|(_, count)| count)
        .sum()
}

/// With the sandbox's rules (a default, a fill-if-empty phone), new contacts cost a read and a
/// create: the read finding them absent lets the create carry their defaults and their phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_contacts_with_defaults_cost_a_read_and_a_create() {
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    let pipeline = start(&world).await;
    let events = contacts("fresh", 20);
    assert!(
        events.iter().all(|e| e.phone.is_some()),
        "each carries a phone"
    );
    publish_contacts(&world, &events).await;
    let outcomes = world.outcomes_for(&ids(&events), WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert_eq!(
        statuses(&outcomes, &events),
        HashMap::from([(OutcomeStatus::Created, 20)])
    );
    let reads = calls_to(&world, "POST /crm/v3/objects/contacts/batch/read");
    let creates = calls_to(&world, "POST /crm/v3/objects/contacts/batch/create");
    let others = calls_to(&world, "POST /crm/v3/objects/contacts/batch/upsert")
        + calls_to(&world, "POST /crm/v3/objects/contacts/batch/update");
    assert!(
        reads >= 1 && creates >= 1,
        "{:?}",
        world.hubspot.request_counts()
    );
    assert_eq!(reads, creates, "a read and a create per batch");
    assert_eq!(others, 0, "{:?}", world.hubspot.request_counts());
    for contact in world.records(ObjectType::Contacts) {
        assert_eq!(contact["properties"]["lifecyclestage"], "lead", "{contact}");
        assert!(contact["properties"]["phone"].is_string(), "{contact}");
    }
}

/// A contact someone else creates between hubsync's read and its create: HubSpot answers the
/// create 409, and hubsync upserts instead, so that contact keeps what its creator set and gets
/// no defaults, while the others of the batch are created with theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_contact_created_meanwhile_gets_no_defaults() {
    use hubsync_sandbox::hubspot::faults::Faults;
    let world = World::start(SandboxOptions::default(), 1, fast).await;
    world
        .hubspot
        .set_faults(Faults {
            latency_ms: 3_000,
            path_prefix: Some("/crm/v3/objects/contacts/batch/create".into()),
            ..Faults::default()
        })
        .expect("faults");
    let pipeline = start(&world).await;
    let events = contacts("race", 5);
    publish_contacts(&world, &events).await;
    let deadline = std::time::Instant::now() + WAIT;
    while calls_to(&world, "POST /crm/v3/objects/contacts/batch/read") == 0 {
        assert!(std::time::Instant::now() < deadline, "no read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Someone else creates race0 while hubsync's create waits at HubSpot's door.
    let answer = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/contacts",
            world.hubspot_server.url()
        ))
        .bearer_auth(hubsync_sandbox::hubspot::DEFAULT_TOKEN)
        .json(&serde_json::json!({"properties": {
            "email": "race0@example.org",
            "lifecyclestage": "customer"
        }}))
        .send()
        .await
        .expect("created by someone else");
    assert_eq!(answer.status(), 201);
    let outcomes = world.outcomes_for(&ids(&events), WAIT).await;
    pipeline.stop().await.expect("pipeline stops cleanly");
    assert!(
        calls_to(&world, "POST /crm/v3/objects/contacts/batch/upsert") >= 1,
        "the refused create was upserted instead: {:?}",
        world.hubspot.request_counts()
    );
    let contacts = world.records(ObjectType::Contacts);
    assert_eq!(contacts.len(), 5, "{contacts:?}");
    for event in &events {
        let email = event.email.clone().expect("an email");
        let found = by_email(&contacts, &email);
        assert_eq!(found.len(), 1, "{email}");
        let stage = &found[0]["properties"]["lifecyclestage"];
        if email == "race0@example.org" {
            assert_eq!(stage, "customer", "its creator's value stays");
            assert_eq!(
                only(&outcomes, &event.event_id).status,
                OutcomeStatus::Updated
            );
        } else {
            assert_eq!(stage, "lead", "{email}");
            assert_eq!(
                only(&outcomes, &event.event_id).status,
                OutcomeStatus::Created
            );
        }
    }
}
