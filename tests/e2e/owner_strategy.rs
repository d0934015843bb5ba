//! End-to-end: the four owner strategies for contacts, each against a contact whose HubSpot owner
//! is already set, one without an owner, and one hubsync creates.

use std::time::Duration;

use hubsync::admin::Health;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_sandbox::hubspot::SandboxOptions;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_schemas::{ChangeKind, ContactChanged, SchemaKind};
use serde_json::Value;

mod support;
use support::events;
use support::world::World;

const WAIT: Duration = Duration::from_secs(60);
/// The owner a HubSpot user gave the contact.
const THEIRS: &str = "70000001";
/// The owner upstream's user maps to.
const OURS: &str = "70000003";

fn owner_changed(email: &str) -> ContactChanged {
    let mut event = events::contact(&format!("ct-{email}"), Some(email), ChangeKind::Updated);
    event.owner_user_id = Some("usr_alan".to_string());
    event.changed_fields = vec!["owner_user_id".to_string()];
    event
}

fn owner_of(world: &World, email: &str) -> Value {
    let records = world.records(ObjectType::Contacts);
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["properties"]["email"] == email)
        .collect();
    assert_eq!(found.len(), 1, "one contact {email}: {records:?}");
    found[0]["properties"]["hubspot_owner_id"].clone()
}

/// Owners after one owner change upstream: (already owned, not owned, created).
async fn owners_after(strategy: &str) -> (Value, Value, Value) {
    let world = World::start(SandboxOptions::default(), 1, |config| {
        config
            .replace(
                "owner_strategy = \"if_empty\"",
                &format!("owner_strategy = \"{strategy}\""),
            )
            .replace(
                "[sync.contacts]\n",
                &format!(
                    "[[users.mapping]]\nuser = \"usr_alan\"\nowner = \"{OURS}\"\n\n[sync.contacts]\n"
                ),
            )
    })
    .await;
    assert!(
        world
            .config_text()
            .contains(&format!("owner_strategy = \"{strategy}\"")),
        "the strategy is in the config"
    );
    world
        .http_admin_create(
            "contacts",
            serde_json::json!({"email": "owned@acme.io", "hubspot_owner_id": THEIRS}),
        )
        .await;
    world
        .http_admin_create("contacts", serde_json::json!({"email": "free@acme.io"}))
        .await;
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("pipeline starts");
    let mut ids = Vec::new();
    for email in ["owned@acme.io", "free@acme.io", "new@acme.io"] {
        let event = owner_changed(email);
        ids.push(event.event_id.clone());
        world
            .publish(
                SchemaKind::ContactChanged,
                &world.config.topics.contact_changes,
                &event.contact_id,
                &event,
            )
            .await;
    }
    let outcomes = world.outcomes_for(&ids, WAIT).await;
    assert_eq!(
        outcomes.len(),
        3,
        "every event has its outcome: {outcomes:?}"
    );
    pipeline.stop().await.expect("stops");
    (
        owner_of(&world, "owned@acme.io"),
        owner_of(&world, "free@acme.io"),
        owner_of(&world, "new@acme.io"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_overwrites_the_owner() {
    assert_eq!(
        owners_after("always").await,
        (OURS.into(), OURS.into(), OURS.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_empty_keeps_an_owner_hubspot_has() {
    assert_eq!(
        owners_after("if_empty").await,
        (THEIRS.into(), OURS.into(), OURS.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_writes_no_owner() {
    assert_eq!(
        owners_after("never").await,
        (THEIRS.into(), Value::Null, Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_writes_the_newest_owner() {
    assert_eq!(
        owners_after("bidirectional").await,
        (OURS.into(), OURS.into(), OURS.into())
    );
}
