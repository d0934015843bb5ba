//! End-to-end: `hubsync-dev sandbox` starts broker, registry and HubSpot sandbox, answers on the
//! endpoints it prints, and stops cleanly on SIGTERM.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

mod support;
use support::{Child, free_port};

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_answers_on_the_printed_endpoints_and_stops_on_sigterm() {
    let hubspot_port = free_port();
    let registry_port = free_port();
    let config_path =
        std::env::temp_dir().join(format!("hubsync-sandbox-{}.toml", std::process::id()));
    let mut child = Child::spawn_dev(&[
        "sandbox",
        "--hubspot-tier",
        "starter",
        "--hubspot-port",
        &hubspot_port.to_string(),
        "--registry-port",
        &registry_port.to_string(),
        "--search-lag",
        "0s",
        "--write-config",
        config_path.to_str().expect("utf-8 path"),
    ]);
    let env: HashMap<String, String> = child
        .read_env(&[
            "HUBSYNC_KAFKA_BROKERS",
            "HUBSYNC_REGISTRY_URL",
            "HUBSYNC_HUBSPOT_URL",
            "HUBSYNC_HUBSPOT_TOKEN",
        ])
        .await;
    assert_eq!(
        env["HUBSYNC_HUBSPOT_URL"],
        format!("http://127.0.0.1:{hubspot_port}")
    );
    assert_eq!(
        env["HUBSYNC_REGISTRY_URL"],
        format!("http://127.0.0.1:{registry_port}")
    );

    let http = reqwest::Client::new();
    // HubSpot: the token works and the starter tier's limits apply.
    let answer = http
        .get(format!(
            "{}/account-info/v3/details",
            env["HUBSYNC_HUBSPOT_URL"]
        ))
        .bearer_auth(&env["HUBSYNC_HUBSPOT_TOKEN"])
        .send()
        .await
        .expect("hubspot answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer
            .headers()
            .get("x-hubspot-ratelimit-max")
            .and_then(|v| v.to_str().ok()),
        Some("100")
    );

    // Registry: every schema is registered under its topic's value subject.
    let subjects: Vec<String> = http
        .get(format!("{}/subjects", env["HUBSYNC_REGISTRY_URL"]))
        .send()
        .await
        .expect("registry answers")
        .json()
        .await
        .expect("subject list");
    for topic in hubsync_schemas::SchemaKind::ALL.map(|kind| kind.default_topic()) {
        assert!(
            subjects.contains(&format!("{topic}-value")),
            "{topic}-value missing from {subjects:?}"
        );
    }
    let latest: Value = http
        .get(format!(
            "{}/subjects/crm.contact.changes-value/versions/latest",
            env["HUBSYNC_REGISTRY_URL"]
        ))
        .send()
        .await
        .expect("registry answers")
        .json()
        .await
        .expect("version");
    assert!(
        latest["schema"]
            .as_str()
            .unwrap_or("")
            .contains("ContactChanged")
    );

    // Broker: the topics exist.
    let brokers = env["HUBSYNC_KAFKA_BROKERS"].clone();
    let topics = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        metadata
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect::<HashMap<_, _>>()
    })
    .await
    .expect("metadata task");
    for topic in hubsync_sandbox::broker::DEFAULT_TOPICS {
        assert_eq!(topics.get(topic), Some(&3), "{topic} in {topics:?}");
    }

    // The written one-file configuration is valid as it stands.
    if let Err(problems) = hubsync::config::Config::load(&config_path) {
        panic!("the written configuration is refused: {problems}");
    }
    let _ = std::fs::remove_file(&config_path);

    let status = child.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "sandbox exited with {status}");
}

/// `--portals 2`: two portals behind the one URL, each answering its own token with its own
/// portal id, and a service file with a team file per portal that hubsync accepts.
#[tokio::test(flavor = "multi_thread")]
async fn several_portals_each_with_a_team_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("hubsync.toml");
    let mut child = Child::spawn_dev(&[
        "sandbox",
        "--portals",
        "2",
        "--portal-id",
        "1001",
        "--write-config",
        config_path.to_str().expect("utf-8 path"),
    ]);
    let env = child
        .read_env(&[
            "HUBSYNC_HUBSPOT_URL",
            "HUBSYNC_HUBSPOT_TOKEN",
            "HUBSYNC_HUBSPOT_TOKEN_2",
        ])
        .await;
    let client = reqwest::Client::new();
    for (token, portal) in [
        ("HUBSYNC_HUBSPOT_TOKEN", 1001),
        ("HUBSYNC_HUBSPOT_TOKEN_2", 1002),
    ] {
        let details: Value = client
            .get(format!(
                "{}/account-info/v3/details",
                env["HUBSYNC_HUBSPOT_URL"]
            ))
            .bearer_auth(&env[token])
            .send()
            .await
            .expect("details")
            .json()
            .await
            .expect("json");
        assert_eq!(details["portalId"], portal, "{token}: {details}");
    }
    let service = hubsync::config::Service::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
    let (teams, refused) = service.read_teams();
    assert!(refused.is_empty(), "{refused:?}");
    let mut portals: Vec<u64> = teams
        .iter()
        .map(|t| t.config.team.hubspot_portal_id)
        .collect();
    portals.sort_unstable();
    assert_eq!(portals, [1001, 1002]);
    let status = child.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "sandbox exited with {status}");
}
