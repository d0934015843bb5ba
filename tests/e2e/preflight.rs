//! End-to-end: `hubsync check --json` against the in-process broker, schema registry and HubSpot
//! sandbox, on a good setup and with one thing wrong at a time. Each case runs the real binary
//! and asserts on its exit status and on the kinds and fields of the problems it reports.

use std::time::Duration;

use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use hubsync_schemas::{SchemaKind, default_subject};
use serde_json::{Value, json};

mod support;
use support::world::World;

/// Environment variables that would change which services the binary talks to.
const OVERRIDES: [&str; 4] = [
    "HUBSYNC_KAFKA_BROKERS",
    "HUBSYNC_REGISTRY_URL",
    "HUBSYNC_HUBSPOT_URL",
    "HUBSYNC_HUBSPOT_TOKEN",
];

/// What `hubsync check` printed and how it exited.
struct Checked {
    code: Option<i32>,
    doc: Value,
}

impl Checked {
    /// The status of one check.
    fn status(&self, check: &str) -> &str {
        self.doc["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|row| row["check"] == check)
            .unwrap_or_else(|| panic!("no {check} row in {}", self.doc))["status"]
            .as_str()
            .expect("status is text")
    }

    /// Every problem as (check, kind, field).
    fn problems(&self) -> Vec<(String, String, String)> {
        self.doc["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(|p| {
                let text = |key: &str| p[key].as_str().expect("text").to_owned();
                (text("check"), text("kind"), text("field"))
            })
            .collect()
    }

    fn message(&self, field: &str) -> String {
        self.doc["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .find(|p| p["field"] == field)
            .unwrap_or_else(|| panic!("no problem at {field} in {}", self.doc))["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }
}

fn problem(check: &str, kind: &str, field: &str) -> (String, String, String) {
    (check.to_owned(), kind.to_owned(), field.to_owned())
}

async fn start() -> World {
    World::start(SandboxOptions::default(), 1, |text| text).await
}

/// Runs `hubsync check --json` on `config` with `token` as the HubSpot token.
async fn check(config: &str, token: &str) -> Checked {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hubsync.toml");
    std::fs::write(&path, config).expect("write config");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubsync"));
    command
        .args(["check", "--json", "--timeout", "3s", "--config"])
        .arg(&path)
        .env("TEST_HUBSPOT_TOKEN", token)
        .env("HUBSYNC_LOG", "error");
    for name in OVERRIDES {
        command.env_remove(name);
    }
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("hubsync check ends")
        .expect("hubsync runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Checked {
        code: output.status.code(),
        doc,
    }
}

/// The text with `addition` inserted before the first `marker`.
fn insert_before(text: &str, marker: &str, addition: &str) -> String {
    assert!(text.contains(marker), "{marker:?} not in the config");
    text.replacen(marker, &format!("{addition}{marker}"), 1)
}

/// Registers hubsync's schema of every topic under its value subject, as a deployed system has.
async fn register_all(world: &World) {
    let topics = world.config.topics.clone();
    for ((_, topic), kind) in topics.all().into_iter().zip(SchemaKind::ALL) {
        world
            .codec
            .writer(kind, &default_subject(topic))
            .await
            .expect("schema registers");
    }
}

/// A configuration that holds everywhere: owners that exist, schemas registered.
fn good(world: &World) -> String {
    format!(
        "{}\n[users]\ndefault_owner = \"70000002\"\n[[users.mapping]]\nuser = \"usr_ada\"\nowner = \"70000001\"\n",
        world.config_text()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_setup_passes() {
    let world = start().await;
    register_all(&world).await;
    let checked = check(&good(&world), DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(0), "{}", checked.doc);
    assert_eq!(checked.doc["ok"], true);
    assert_eq!(checked.problems(), []);
    for name in [
        "config",
        "hubspot_token",
        "hubspot_portal",
        "properties",
        "owners",
        "topics",
        "registry",
    ] {
        assert_eq!(checked.status(name), "ok", "{}", checked.doc);
    }
    let details: Vec<&str> = checked.doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|row| row["detail"].as_str().expect("detail"))
        .collect();
    assert!(
        details.iter().any(|d| d.starts_with("10 of 10 topics on ")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("7 subjects compatible with their latest version")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("2 configured owner ids against 4 active HubSpot owners")),
        "{details:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_hubspot_refuses_is_named_and_later_hubspot_checks_are_skipped() {
    let world = start().await;
    let checked = check(&good(&world), "pat-na1-not-a-token").await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem("hubspot_token", "token_rejected", "hubspot.token")]
    );
    assert!(
        checked
            .message("hubspot.token")
            .contains("refused the token"),
        "{}",
        checked.doc
    );
    assert!(
        checked.doc["checks"][1]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("HTTP 401")),
        "{}",
        checked.doc
    );
    assert_eq!(checked.status("hubspot_token"), "problem");
    for name in ["hubspot_portal", "properties", "owners"] {
        assert_eq!(checked.status(name), "skipped", "{}", checked.doc);
    }
    // Kafka and the registry are still checked.
    assert_eq!(checked.status("topics"), "ok");
    assert_eq!(checked.status("registry"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_portal_is_refused() {
    let world = start().await;
    let portal = world.hubspot.portal_id();
    let text = good(&world).replace(
        &format!("hubspot_portal_id = {portal}"),
        "hubspot_portal_id = 1234567",
    );
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem(
            "hubspot_portal",
            "wrong_portal",
            "team.hubspot_portal_id"
        )]
    );
    let message = checked.message("team.hubspot_portal_id");
    assert!(
        message.contains(&portal.to_string()) && message.contains("1234567"),
        "{message}"
    );
    assert_eq!(checked.status("hubspot_token"), "ok");
    assert_eq!(checked.status("properties"), "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_property_the_portal_lacks_is_named() {
    let world = start().await;
    let text = insert_before(
        &good(&world),
        "[[sync.companies.mapping]]",
        "[[sync.contacts.mapping]]\nsource = \"nickname\"\nproperty = \"hs_nickname\"\n\n",
    );
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem(
            "properties",
            "property_missing",
            "sync.contacts.mapping[5].property"
        )]
    );
    assert!(
        checked
            .message("sync.contacts.mapping[5].property")
            .contains("\"hs_nickname\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_text_field_mapped_to_a_number_property_is_named() {
    let world = start().await;
    let text = insert_before(
        &good(&world),
        "[sync.deals]",
        "[[sync.companies.mapping]]\nsource = \"website\"\nproperty = \"numberofemployees\"\n\n",
    );
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem(
            "properties",
            "property_type",
            "sync.companies.mapping[2].property"
        )]
    );
    assert!(
        checked
            .message("sync.companies.mapping[2].property")
            .contains("number"),
        "{}",
        checked.doc
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enumeration_default_that_is_not_an_option_is_named() {
    let world = start().await;
    let text = good(&world).replace(
        "defaults = { lifecyclestage = \"lead\" }",
        "defaults = { lifecyclestage = \"Lead\" }",
    );
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem(
            "properties",
            "invalid_option",
            "sync.contacts.defaults.lifecyclestage"
        )]
    );
    assert!(
        checked
            .message("sync.contacts.defaults.lifecyclestage")
            .contains("did you mean \"lead\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_properties_must_have_unique_values() {
    let world = start().await;
    let text = insert_before(
        &good(&world),
        "create = { enabled = true",
        "id_property = \"jobtitle\"\n",
    );
    let text = insert_before(
        &text,
        "[[sync.companies.mapping]]",
        "[sync.companies]\nid_property = \"name\"\n\n",
    );
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [
            problem(
                "properties",
                "id_property_not_unique",
                "sync.contacts.id_property"
            ),
            problem(
                "properties",
                "id_property_not_unique",
                "sync.companies.id_property"
            ),
        ]
    );

    // A property created in the portal with unique values identifies contacts.
    let created = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/properties/contacts",
            world.hubspot_server.url()
        ))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&json!({
            "name": "external_id",
            "label": "External id",
            "type": "string",
            "fieldType": "text",
            "groupName": "contactinformation",
            "hasUniqueValue": true,
        }))
        .send()
        .await
        .expect("create property");
    assert!(created.status().is_success(), "{:?}", created.status());
    let text = text
        .replace(
            "id_property = \"jobtitle\"",
            "id_property = \"external_id\"",
        )
        .replace("id_property = \"name\"", "id_property = \"domain\"");
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(0), "{}", checked.doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_owner_hubspot_lacks_is_named() {
    let world = start().await;
    let text = format!(
        "{}\n[users]\ndefault_owner = \"70000001\"\n[[users.mapping]]\nuser = \"usr_grace\"\nowner = \"70000002\"\n[[users.mapping]]\nuser = \"usr_ghost\"\nowner = \"99999999\"\n",
        world.config_text()
    );
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem("owners", "owner_missing", "users.mapping[1].owner")]
    );
    assert!(
        checked
            .message("users.mapping[1].owner")
            .contains("\"99999999\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_broker_lacks_is_named() {
    let world = start().await;
    let text = format!("{}\n[topics]\ndlq = \"hubsync.dlq.absent\"\n", good(&world));
    let checked = check(&text, DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem("topics", "topic_missing", "topics.dlq")]
    );
    assert!(
        checked
            .message("topics.dlq")
            .contains("\"hubsync.dlq.absent\"")
    );
    // Asking did not create it.
    let topics = world.broker.list_topics().await.expect("topics");
    assert!(!topics.iter().any(|t| t.name == "hubsync.dlq.absent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_registered_schema_is_named() {
    let world = start().await;
    register_all(&world).await;
    let subject = default_subject(&world.config.topics.contact_changes);
    // Registering another record under the subject needs the level to allow it.
    let registry = world.codec.registry();
    let url = registry.url().clone();
    let level = reqwest::Client::new()
        .put(format!("{url}config/{subject}"))
        .json(&json!({"compatibility": "NONE"}))
        .send()
        .await
        .expect("set level");
    assert!(level.status().is_success(), "{:?}", level.status());
    registry
        .register(
            &subject,
            r#"{"type":"record","name":"ContactChanged","namespace":"io.hubsync","fields":[{"name":"contact_id","type":"long"}]}"#,
        )
        .await
        .expect("register the foreign schema");
    let back = reqwest::Client::new()
        .put(format!("{url}config/{subject}"))
        .json(&json!({"compatibility": "BACKWARD"}))
        .send()
        .await
        .expect("set level");
    assert!(back.status().is_success(), "{:?}", back.status());

    let checked = check(&good(&world), DEFAULT_TOKEN).await;
    assert_eq!(checked.code, Some(2), "{}", checked.doc);
    assert_eq!(
        checked.problems(),
        [problem(
            "registry",
            "schema_incompatible",
            "topics.contact_changes"
        )]
    );
    let message = checked.message("topics.contact_changes");
    assert!(message.contains(&subject), "{message}");
    assert!(message.contains("BACKWARD"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_exits_1_and_the_rest_is_still_checked() {
    let world = start().await;
    let closed = format!("127.0.0.1:{}", support::free_port());
    let text = good(&world).replace(world.broker.bootstrap_servers(), &closed);
    let checked = check(&text, "pat-na1-not-a-token").await;
    assert_eq!(checked.code, Some(1), "{}", checked.doc);
    assert_eq!(checked.status("topics"), "unreachable");
    assert_eq!(checked.status("registry"), "ok");
    assert_eq!(
        checked.problems(),
        [problem("hubspot_token", "token_rejected", "hubspot.token")]
    );
}
