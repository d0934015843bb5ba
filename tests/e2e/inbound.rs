//! HubSpot -> upstream, end to end with `hubsync run` as a child process: a contact hubsync
//! wrote is edited in HubSpot, HubSpot's webhooks reach the receiver, and `crm.hubspot.changes`
//! carries one change per real edit of a mapped field, keyed by the upstream id and named by the
//! upstream field; copies, hubsync's own writes, older edits delivered late and fields that only
//! flow to HubSpot send nothing. The sink learns from the same changes: an upstream event older
//! than HubSpot's edit of a `both` field leaves HubSpot's value, a newer one wins, and a contact
//! deleted in HubSpot is not written again.

mod support;

use std::time::Duration;

use hubsync_sandbox::hubspot::{DEFAULT_PRIVATE_APP_ID, DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{
    ChangeKind, ContactChanged, HubSpotChange, HubSpotChangeKind, OutcomeStatus, SchemaKind,
    SyncOutcome,
};
use serde_json::{Value, json};
use support::hook::{APP_SECRET, Hook};
use support::world::World;
use support::{Child, events};

/// hubsync's app id in this test's configuration.
const APP_ID: u64 = 4242;

fn property_change(
    portal: u64,
    object: &str,
    property: &str,
    value: &str,
    at: i64,
    source: (&str, &str),
) -> Value {
    json!({
        "eventId": 1, "subscriptionId": 7, "portalId": portal, "appId": APP_ID,
        "occurredAt": at, "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
        "objectId": object.parse::<u64>().expect("a HubSpot id"), "propertyName": property,
        "propertyValue": value, "changeSource": source.0, "sourceId": source.1
    })
}

async fn metric(port: u16, name: &str) -> f64 {
    let Ok(answer) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    let text = answer.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_edit_goes_upstream_once_and_hubsyncs_own_writes_never_do() {
    let port = support::free_port();
    let admin_port = support::free_port();
    let world = World::start(SandboxOptions::default(), 1, |text| {
        text.replace(
            "[hubspot]\n",
            &format!(
                "[hubspot]\nclient_secret = {{ env = \"TEST_APP_SECRET\" }}\napp_id = {APP_ID}\n"
            ),
        )
        .replace(
            "[[sync.contacts.mapping]]\nsource = \"phone\"",
            "[[sync.contacts.mapping]]\nsource = \"stage\"\nproperty = \"lifecyclestage\"\n\
             direction = \"from_hubspot\"\n\n[[sync.contacts.mapping]]\nsource = \"phone\"",
        )
        .replace(
            "[state]\n",
            &format!(
                "[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n\
                 [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[state]\n"
            ),
        )
    })
    .await;
    assert!(
        world.config_text().contains("direction = \"from_hubspot\""),
        "the mapping edit applied"
    );
    let portal = world.hubspot.portal_id();
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let _child = Child::spawn_with_env(
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[
            ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
            ("TEST_APP_SECRET", APP_SECRET),
        ],
    );
    let hook = Hook::new(port);
    hook.wait_ready().await;

    // hubsync writes the contact; the inbound stage learns its upstream id from the outcome.
    let created = events::contact("c_ada", Some("ada@example.com"), ChangeKind::Created);
    let outcome = &contact_outcome(&world, "c_ada", &created, 90).await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let hubspot_id = outcome.hubspot_id.clone().expect("a HubSpot id");
    wait_for(admin_port, "hubsync_inbound_identities_learned_total", 1.0).await;

    let t = support::hook::now_ms();
    let user = ("CRM_UI", "userId:8812");
    let ours = ("INTEGRATION", "4242");
    let edit = property_change(portal, &hubspot_id, "jobtitle", "CTO", t, user);
    let mut again = edit.clone();
    again["attemptNumber"] = json!(1);
    again["eventId"] = json!(2);
    let requests = [
        // A user's edit, and HubSpot delivering it a second time.
        json!([edit.clone()]),
        json!([again]),
        // hubsync's own write, then a user's older edit delivered after it.
        json!([
            property_change(portal, &hubspot_id, "jobtitle", "VP", t + 10, ours),
            property_change(portal, &hubspot_id, "jobtitle", "Director", t + 5, user),
        ]),
        // A field that only flows to HubSpot, and a from_hubspot field.
        json!([
            property_change(portal, &hubspot_id, "phone", "+1 555", t + 20, user),
            property_change(
                portal,
                &hubspot_id,
                "lifecyclestage",
                "customer",
                t + 30,
                user
            ),
        ]),
        // The first edit, once more, much later.
        json!([edit]),
    ];
    for request in requests {
        let body = serde_json::to_vec(&request).expect("json");
        let (status, answer) = hook.post(&body).await;
        assert_eq!(status, 200, "{answer}");
    }

    let topic = world.config.topics.hubspot_changes.clone();
    let changes: Vec<HubSpotChange> = world
        .read_until(
            &topic,
            Duration::from_secs(60),
            |read: &[HubSpotChange]| read.len() >= 2,
        )
        .await;
    // Nothing else follows.
    let settled: Vec<HubSpotChange> = world
        .read_until(
            &topic,
            Duration::from_secs(5),
            |read: &[HubSpotChange]| read.len() > 2,
        )
        .await;
    assert_eq!(settled.len(), 2, "{settled:#?}");
    let summary: Vec<(String, Option<String>, String, Option<String>)> = changes
        .iter()
        .map(|c| {
            assert_eq!(c.change, HubSpotChangeKind::PropertyChanged);
            assert_eq!(c.object_id, hubspot_id);
            assert_eq!(c.team_id.as_deref(), Some(world.config.team.id.as_str()));
            assert_eq!(c.via.as_deref(), Some("webhook"));
            assert_eq!(c.change_source.as_deref(), Some("CRM_UI"));
            assert_eq!(c.fields.len(), 1, "{c:?}");
            (
                c.key().to_string(),
                c.record_id.clone(),
                c.fields[0].field.clone(),
                c.fields[0].value.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "c_ada".to_string(),
                Some("c_ada".to_string()),
                "job_title".to_string(),
                Some("CTO".to_string())
            ),
            (
                "c_ada".to_string(),
                Some("c_ada".to_string()),
                "stage".to_string(),
                Some("customer".to_string())
            ),
        ]
    );
    assert_eq!(changes[0].fields[0].changed_at, t);
    assert_ne!(changes[0].event_id, changes[1].event_id);
    let dropped = |reason: &'static str| {
        let name = format!("hubsync_inbound_events_total{{result=\"{reason}\"}}");
        async move { metric(admin_port, &name).await }
    };
    assert_eq!(dropped("duplicate").await, 2.0);
    assert_eq!(dropped("echo").await, 1.0);
    assert_eq!(dropped("stale").await, 1.0);
    assert_eq!(dropped("unmapped").await, 1.0);

    // The sink has read both changes: HubSpot's job title is newer than an upstream event
    // older than the edit, and older than one made after it.
    wait_for(admin_port, "hubsync_sink_hubspot_changes_total", 2.0).await;
    // Its reader of HubSpot's changes reports how far behind it is, under its own name.
    let lag = "hubsync_consumer_lag{stage=\"sink-hubspot-changes\",topic=\"crm.hubspot.changes\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics"))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        // Both changes read: nothing behind, once a report came after them.
        let line = text.lines().find(|line| line.starts_with(lag));
        if line == Some(format!("{lag} 0").as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{lag} not 0 in 15 s: {line:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let job_title = |title: &str, at: i64| {
        let mut event = events::contact("c_ada", Some("ada@example.com"), ChangeKind::Updated);
        event.job_title = Some(title.to_string());
        event.changed_fields = vec!["job_title".to_string()];
        event.event_time = at;
        event
    };
    let before = contact(&world, &hubspot_id)["jobtitle"].clone();
    assert_ne!(before, "Intern");
    let older = job_title("Intern", t - 60_000);
    let newer = job_title("Chief Scientist", t + 60_000);
    for (event, status, title) in [
        (&older, OutcomeStatus::Unchanged, before),
        (&newer, OutcomeStatus::Updated, json!("Chief Scientist")),
    ] {
        let outcome = &contact_outcome(&world, "c_ada", event, 60).await;
        assert_eq!(outcome.status, status, "{outcome:?}");
        assert_eq!(outcome.hubspot_id.as_deref(), Some(hubspot_id.as_str()));
        let held = contact(&world, &hubspot_id);
        assert_eq!(held["jobtitle"], title, "{held}");
    }

    // Deleted in HubSpot: later upstream events are skipped, saying why.
    let deletion = json!([{
        "eventId": 9, "subscriptionId": 8, "portalId": portal, "appId": APP_ID,
        "occurredAt": t + 120_000, "subscriptionType": "contact.deletion", "attemptNumber": 0,
        "objectId": hubspot_id.parse::<u64>().expect("id"), "changeSource": "CRM_UI",
        "sourceId": "userId:8812"
    }]);
    let (status, answer) = hook
        .post(&serde_json::to_vec(&deletion).expect("json"))
        .await;
    assert_eq!(status, 200, "{answer}");
    wait_for(admin_port, "hubsync_sink_hubspot_changes_total", 3.0).await;
    let after = job_title("Emeritus", t + 180_000);
    let outcome = &contact_outcome(&world, "c_ada", &after, 60).await;
    assert_eq!(
        (outcome.status, outcome.reason_code.as_str()),
        (OutcomeStatus::Skipped, "DELETED_IN_HUBSPOT"),
        "{outcome:?}"
    );
    assert_eq!(contact(&world, &hubspot_id)["jobtitle"], "Chief Scientist");
}

/// Publishes an upstream contact event and waits up to `secs` for its outcome.
async fn contact_outcome(
    world: &World,
    key: &str,
    event: &ContactChanged,
    secs: u64,
) -> SyncOutcome {
    world
        .publish(
            SchemaKind::ContactChanged,
            &world.config.topics.contact_changes,
            key,
            event,
        )
        .await;
    let outcomes = world
        .outcomes_for(
            std::slice::from_ref(&event.event_id),
            Duration::from_secs(secs),
        )
        .await;
    outcomes[&event.event_id][0].clone()
}

/// The sandbox's properties of a contact.
fn contact(world: &World, id: &str) -> Value {
    world
        .records(hubsync_sandbox::hubspot::model::ObjectType::Contacts)
        .into_iter()
        .find(|record| record["id"] == id)
        .map(|record| record["properties"].clone())
        .unwrap_or(Value::Null)
}

async fn wait_for(port: u16, name: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(port, name).await < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// HubSpot (the sandbox) delivers its own webhooks, signed, with copies and out of order, for
/// everything that happens in the portal: hubsync's writes, a user's edit and a merge. Only what
/// the user did goes upstream, and the merge redirects the merged record's later upstream events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandboxs_own_webhooks_bring_users_changes_and_none_of_hubsyncs() {
    let port = support::free_port();
    let admin_port = support::free_port();
    let world = World::start(SandboxOptions::default(), 1, |text| {
        let text = text
            .replace(
                "[hubspot]\n",
                "[hubspot]\nclient_secret = { env = \"TEST_APP_SECRET\" }\n",
            )
            .replace(
                "[state]\n",
                &format!(
                    "[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n\
                     [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[state]\n"
                ),
            )
            .replacen(
                "owner_strategy = \"if_empty\"",
                "owner_strategy = \"bidirectional\"",
                1,
            );
        // Two upstream users share Grace Hopper's owner: the first in the file goes up.
        format!(
            "{text}\n[[users.mapping]]\nuser = \"u_grace\"\nowner = \"70000002\"\n\
             \n[[users.mapping]]\nuser = \"u_grace_assistant\"\nowner = \"70000002\"\n"
        )
    })
    .await;
    assert_eq!(
        world.config.rules.sync.contacts.owner_strategy,
        hubsync_processors::rules::OwnerStrategy::Bidirectional
    );
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let _child = Child::spawn_with_env(
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[
            ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
            ("TEST_APP_SECRET", APP_SECRET),
        ],
    );
    let hook = Hook::new(port);
    hook.wait_ready().await;

    // The app hubsync writes with is the one whose webhooks it receives; no app id configured.
    let http = reqwest::Client::new();
    let admin = format!("{}/__admin", world.hubspot_server.url());
    let apps: Value = http
        .get(format!("{admin}/apps"))
        .send()
        .await
        .expect("apps")
        .json()
        .await
        .expect("json");
    let app_id = apps["apps"][0]["app_id"].as_u64().expect("the token's app");
    let answer = http
        .put(format!("{admin}/webhooks"))
        .json(&json!({
            "app_id": app_id, "target_url": hook.url, "client_secret": APP_SECRET,
            "duplicate_rate": 0.5, "reorder": true, "seed": 7
        }))
        .send()
        .await
        .expect("webhook configured");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);

    // hubsync writes three contacts: HubSpot reports each creation and property to the app.
    let people = [
        ("c_ada", "ada@example.com"),
        ("c_grace", "grace@example.com"),
        ("c_alan", "alan@example.com"),
    ];
    let mut created = Vec::new();
    for (id, email) in people {
        let event = events::contact(id, Some(email), ChangeKind::Created);
        world
            .publish(
                SchemaKind::ContactChanged,
                &world.config.topics.contact_changes,
                id,
                &event,
            )
            .await;
        created.push(event.event_id);
    }
    let outcomes = world.outcomes_for(&created, Duration::from_secs(90)).await;
    let ids: Vec<String> = created
        .iter()
        .map(|event| {
            let outcome = &outcomes[event][0];
            assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
            outcome.hubspot_id.clone().expect("id")
        })
        .collect();
    wait_for(admin_port, "hubsync_inbound_identities_learned_total", 3.0).await;
    // Every echo of hubsync's writes is in and dropped before users act.
    wait_for(
        admin_port,
        "hubsync_inbound_events_total{result=\"echo\"}",
        3.0,
    )
    .await;

    // A user edits Ada's job title and owner, and merges Alan into Grace.
    let answer = http
        .patch(format!("{admin}/objects/contacts/{}", ids[0]))
        .json(&json!({
            "properties": {"jobtitle": "Countess", "hubspot_owner_id": "70000002"},
            "user_id": 8812
        }))
        .send()
        .await
        .expect("edit");
    assert!(answer.status().is_success());
    let answer = http
        .post(format!("{admin}/objects/contacts/merge"))
        .json(&json!({"primaryObjectId": ids[1], "objectIdToMerge": ids[2], "user_id": 8812}))
        .send()
        .await
        .expect("merge");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);

    let topic = world.config.topics.hubspot_changes.clone();
    let changes: Vec<HubSpotChange> = world
        .read_until(
            &topic,
            Duration::from_secs(60),
            |read: &[HubSpotChange]| {
                read.iter().any(|c| c.change == HubSpotChangeKind::Merged)
                    && read
                        .iter()
                        .filter(|c| c.change == HubSpotChangeKind::PropertyChanged)
                        .count()
                        >= 2
            },
        )
        .await;
    let settled: Vec<HubSpotChange> = world
        .read_until(
            &topic,
            Duration::from_secs(5),
            |read: &[HubSpotChange]| read.len() > changes.len(),
        )
        .await;
    assert_eq!(settled.len(), changes.len(), "{settled:#?}");
    for change in &changes {
        assert_ne!(
            change.change_source.as_deref(),
            Some("INTEGRATION"),
            "an echo of hubsync's own write: {change:?}"
        );
    }
    let mut edits: Vec<(&str, &str, Option<&str>, Option<&str>)> = changes
        .iter()
        .filter(|c| c.change == HubSpotChangeKind::PropertyChanged)
        .map(|c| {
            assert_eq!(c.source_id.as_deref(), Some("userId:8812"), "{c:?}");
            assert_eq!(c.fields.len(), 1, "{c:?}");
            (
                c.key(),
                c.fields[0].field.as_str(),
                c.fields[0].value.as_deref(),
                c.fields[0].hubspot_value.as_deref(),
            )
        })
        .collect();
    edits.sort_unstable();
    assert_eq!(
        edits,
        [
            ("c_ada", "job_title", Some("Countess"), None),
            ("c_ada", "owner", Some("u_grace"), Some("70000002")),
        ],
        "{changes:#?}"
    );
    let merges: Vec<&HubSpotChange> = changes
        .iter()
        .filter(|c| c.change == HubSpotChangeKind::Merged)
        .collect();
    assert_eq!(merges.len(), 1, "{changes:#?}");
    assert_eq!(merges[0].record_id.as_deref(), Some("c_grace"));
    assert_eq!(merges[0].merged_object_ids, [ids[2].clone()]);
    assert_eq!(merges[0].merged_record_ids, ["c_alan"]);

    // Alan's next upstream change reaches the survivor, Grace's record.
    wait_for(admin_port, "hubsync_sink_hubspot_changes_total", 2.0).await;
    let mut alan = events::contact("c_alan", Some("alan@example.com"), ChangeKind::Updated);
    alan.job_title = Some("Cryptanalyst".to_string());
    let outcome = &contact_outcome(&world, "c_alan", &alan, 60).await;
    assert_eq!(
        outcome.hubspot_id.as_deref(),
        Some(ids[1].as_str()),
        "{outcome:?}"
    );

    let deliveries: Value = http
        .get(format!("{admin}/webhooks/deliveries"))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    let attempts = deliveries["deliveries"].as_array().map_or(0, Vec::len);
    assert!(attempts > 0, "{deliveries}");
    assert!(
        metric(
            admin_port,
            "hubsync_inbound_events_total{result=\"duplicate\"}"
        )
        .await
            > 0.0,
        "copies were delivered and dropped"
    );
}

/// `hubsync run --stage inbound` killed with SIGKILL in the middle of a burst of HubSpot's
/// webhooks, and started again: HubSpot retries what was not answered, and every user's change
/// reaches upstream; a change sent twice carries the same event id both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_stage_killed_mid_burst_loses_no_change() {
    const CONTACTS: usize = 120;
    let port = support::free_port();
    let world = World::start(SandboxOptions::default(), 3, |text| {
        text.replace(
            "[hubspot]\n",
            "[hubspot]\nclient_secret = { env = \"TEST_APP_SECRET\" }\n",
        )
        .replace(
            "[state]\n",
            &format!("[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n[state]\n"),
        )
    })
    .await;
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let args = [
        "run",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--stage",
        "inbound",
    ];
    let env = [
        ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
        ("TEST_APP_SECRET", APP_SECRET),
    ];
    let mut child = Child::spawn_with_env(&args, &env);
    let hook = Hook::new(port);
    hook.wait_ready().await;
    let http = reqwest::Client::new();
    let admin = format!("{}/__admin", world.hubspot_server.url());
    let answer = http
        .put(format!("{admin}/webhooks"))
        .json(&json!({
            "app_id": DEFAULT_PRIVATE_APP_ID, "target_url": hook.url, "client_secret": APP_SECRET,
            "max_attempts": 30, "retry_backoff_max_ms": 1000, "duplicate_rate": 0.2, "seed": 3
        }))
        .send()
        .await
        .expect("webhook configured");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);

    // Users create contacts, then edit each one's job title; the stage dies a third of the way
    // through the edits and comes back when they are done.
    let mut ids = Vec::new();
    for n in 0..CONTACTS {
        let record: Value = http
            .post(format!("{admin}/objects/contacts"))
            .json(&json!({"properties": {"email": format!("p{n}@example.com")}, "user_id": 5}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    for (n, id) in ids.iter().enumerate() {
        if n == CONTACTS / 3 {
            child.kill();
        }
        let answer = http
            .patch(format!("{admin}/objects/contacts/{id}"))
            .json(&json!({"properties": {"jobtitle": format!("title-{n}")}, "user_id": 5}))
            .send()
            .await
            .expect("edit");
        assert!(answer.status().is_success());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _child = Child::spawn_with_env(&args, &env);

    let topic = world.config.topics.hubspot_changes.clone();
    let wanted = |read: &[HubSpotChange]| {
        let titles: std::collections::HashSet<&str> = read
            .iter()
            .filter_map(|c| c.property_value.as_deref())
            .collect();
        let created: std::collections::HashSet<&str> = read
            .iter()
            .filter(|c| c.change == HubSpotChangeKind::Created)
            .map(|c| c.object_id.as_str())
            .collect();
        titles.len() >= CONTACTS && created.len() >= CONTACTS
    };
    let changes: Vec<HubSpotChange> = world
        .read_until(&topic, Duration::from_secs(120), wanted)
        .await;
    assert!(
        wanted(&changes),
        "{} changes read, not every edit and creation",
        changes.len()
    );
    // Copies (sent again after the kill) carry one id per change.
    let mut ids_by_change: std::collections::HashMap<(String, Option<String>), Vec<String>> =
        std::collections::HashMap::new();
    for change in &changes {
        ids_by_change
            .entry((change.object_id.clone(), change.property_value.clone()))
            .or_default()
            .push(change.event_id.clone());
    }
    for (change, event_ids) in &ids_by_change {
        assert!(
            event_ids.iter().all(|id| *id == event_ids[0]),
            "{change:?} went up with different ids: {event_ids:?}"
        );
    }
    assert_eq!(
        ids_by_change.len(),
        2 * CONTACTS,
        "one creation and one edit per contact"
    );
    // The kill did interrupt deliveries: HubSpot had to try again.
    let deliveries: Value = http
        .get(format!("{admin}/webhooks/deliveries"))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    let retried = deliveries["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|attempt| attempt["result"] == "retrying")
        .count();
    assert!(retried > 0, "no delivery failed while the stage was down");
}

/// The pull path alone, as `hubsync run --stage inbound` with polling on and no webhooks: a
/// user's edit of a mapped field and a followed list's members joining and leaving reach
/// `crm.hubspot.changes`, each once, marked as polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_brings_a_users_edit_and_a_followed_lists_joins_and_leaves() {
    let world = World::start(SandboxOptions::default(), 1, |text| {
        text.replace(
            "[hubspot]\n",
            &format!("[hubspot]\napp_id = {DEFAULT_PRIVATE_APP_ID}\n"),
        )
        .replace(
            "[state]\n",
            // The sandbox's search index lags 5 s behind writes, as HubSpot's does (up to
            // about 30 s there): polling reads only what is older than that.
            "[stages.inbound]\npoll = true\npoll_interval = \"1s\"\nsearch_lag = \"6s\"\n\
             poll_lists_every = \"1s\"\n[state]\n",
        )
    })
    .await;
    let http = reqwest::Client::new();
    let admin = format!("{}/__admin", world.hubspot_server.url());
    let hubspot = world.hubspot_server.url();
    let mut ids = Vec::new();
    for email in ["ann@example.org", "bob@example.org"] {
        let record: Value = http
            .post(format!("{admin}/objects/contacts"))
            .json(&json!({"properties": {"email": email}, "user_id": 5}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        ids.push(record["id"].as_str().expect("id").to_string());
    }
    let list: Value = http
        .post(format!("{hubspot}/crm/v3/lists"))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({"name": "Webinar", "objectTypeId": "0-1", "processingType": "MANUAL"}))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let list_id = list["list"]["listId"]
        .as_str()
        .expect("list id")
        .to_string();
    let members = format!("{hubspot}/crm/v3/lists/{list_id}/memberships/add-and-remove");
    let answer = http
        .put(&members)
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({"recordIdsToAdd": [ids[0], ids[1]]}))
        .send()
        .await
        .expect("members");
    assert!(answer.status().is_success());

    let config = world.state_dir.path().join("hubsync.toml");
    let text = format!(
        "{}\n[[lists]]\nlist_id = \"{list_id}\"\naction = \"import\"\n",
        world.config_text()
    );
    std::fs::write(&config, text).expect("config written");
    let _child = Child::spawn_with_env(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--stage",
            "inbound",
        ],
        &[("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)],
    );
    // Once the poller runs, a user edits Ann's job title and Bob leaves the list.
    let topic = world.config.topics.hubspot_changes.clone();
    let joined = world
        .read_until(
            &topic,
            Duration::from_secs(60),
            |read: &[HubSpotChange]| {
                read.iter()
                    .filter(|c| c.change == HubSpotChangeKind::ListJoined)
                    .count()
                    >= 2
            },
        )
        .await;
    assert_eq!(joined.len(), 2, "{joined:#?}");
    let answer = http
        .patch(format!("{admin}/objects/contacts/{}", ids[0]))
        .json(&json!({"properties": {"jobtitle": "Keynote speaker"}, "user_id": 5}))
        .send()
        .await
        .expect("edit");
    assert!(answer.status().is_success());
    let answer = http
        .put(&members)
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({"recordIdsToRemove": [ids[1]]}))
        .send()
        .await
        .expect("members");
    assert!(answer.status().is_success());

    let wanted = |read: &[HubSpotChange]| {
        read.iter().any(|c| c.change == HubSpotChangeKind::ListLeft)
            && read
                .iter()
                .any(|c| c.change == HubSpotChangeKind::PropertyChanged)
    };
    let changes = world
        .read_until(&topic, Duration::from_secs(60), wanted)
        .await;
    assert!(wanted(&changes), "{changes:#?}");
    let settled: Vec<HubSpotChange> = world
        .read_until(
            &topic,
            Duration::from_secs(4),
            |read: &[HubSpotChange]| read.len() > changes.len(),
        )
        .await;
    let mut seen: Vec<(HubSpotChangeKind, String, Option<String>)> = settled
        .iter()
        .map(|c| {
            assert_eq!(c.via.as_deref(), Some("poll"), "{c:?}");
            let what = match c.change {
                HubSpotChangeKind::PropertyChanged => {
                    assert_eq!(c.change_source.as_deref(), Some("CRM_UI"), "{c:?}");
                    Some(format!("{}={:?}", c.fields[0].field, c.fields[0].value))
                }
                _ => c.list_id.clone(),
            };
            (c.change, c.object_id.clone(), what)
        })
        .collect();
    seen.sort_by_key(|(kind, id, _)| (kind.as_str(), id.clone()));
    // The contacts were created within the first poll's reach (its `now - search_lag`).
    let mut expected = vec![
        (HubSpotChangeKind::Created, ids[0].clone(), None),
        (HubSpotChangeKind::Created, ids[1].clone(), None),
        (
            HubSpotChangeKind::ListJoined,
            ids[0].clone(),
            Some(list_id.clone()),
        ),
        (
            HubSpotChangeKind::ListJoined,
            ids[1].clone(),
            Some(list_id.clone()),
        ),
        (
            HubSpotChangeKind::ListLeft,
            ids[1].clone(),
            Some(list_id.clone()),
        ),
        (
            HubSpotChangeKind::PropertyChanged,
            ids[0].clone(),
            Some("job_title=Some(\"Keynote speaker\")".to_string()),
        ),
    ];
    expected.sort_by_key(|(kind, id, _)| (kind.as_str(), id.clone()));
    assert_eq!(seen, expected);
}
