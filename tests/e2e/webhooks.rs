//! The inbound stage's webhook receiver, run as `hubsync run --stage inbound` against the
//! development broker: HubSpot's signed event arrays end on `hubsync.hubspot.webhooks`, one
//! record per event, before the answer; forged, stale, oversized, malformed and foreign
//! requests write nothing; with the broker down the answer is 503, never 2xx.

mod support;

use std::time::Duration;

use hubsync_dev::sandbox_config::{render_sandbox_service, render_sandbox_team};
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, SandboxOptions};
use serde_json::{Value, json};
use support::hook::{APP_SECRET, Hook, now_ms, read_topic, sign};
use support::world::World;
use support::{Child, events};

const FOREIGN_PORTAL: u64 = 990_001;

fn event(portal: u64, object: u64, value: &str) -> Value {
    json!({
        "eventId": object * 10, "subscriptionId": 77, "portalId": portal, "appId": 4242,
        "occurredAt": 1_765_000_000_000_u64 + object, "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0, "objectId": object, "propertyName": "firstname",
        "propertyValue": value, "changeSource": "CRM_UI", "sourceId": "userId:1"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_events_are_on_kafka_before_the_answer_and_nothing_else_is() {
    let port = support::free_port();
    let admin_port = support::free_port();
    let world = World::start(SandboxOptions::default(), 1, |text| {
        text.replace(
            "[hubspot]\n",
            "[hubspot]\nclient_secret = { env = \"TEST_APP_SECRET\" }\n",
        )
        .replace(
            "[state]\n",
            &format!(
                "[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n\
                 webhook_max_body = \"64KiB\"\nwebhook_produce_timeout = \"2s\"\n\
                 webhook_max_in_flight = 1\n\
                 [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[state]\n"
            ),
        )
    })
    .await;
    let portal = world.hubspot.portal_id();
    let team = world.config.team.id.clone();
    let topic = world.config.topics.hubspot_webhooks.clone();
    assert_eq!(topic, "hubsync.hubspot.webhooks");
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let _child = Child::spawn_with_env(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--stage",
            "inbound",
        ],
        &[
            ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
            ("TEST_APP_SECRET", APP_SECRET),
        ],
    );
    let hook = Hook::new(port);
    hook.wait_ready().await;
    let health: Value = reqwest::get(format!("http://127.0.0.1:{admin_port}/healthz"))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("healthz is JSON");
    assert_eq!(health["stages"]["inbound"]["state"], "running", "{health}");

    // A batch of the team's portal, and one mixing it with a portal no team serves.
    let batch = serde_json::to_vec(&json!([
        event(portal, 101, "Ada"),
        event(portal, 102, "Grace")
    ]))
    .expect("json");
    let (status, body) = hook.post(&batch).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    let mixed = serde_json::to_vec(&json!([
        event(FOREIGN_PORTAL, 500, "Eve"),
        event(portal, 103, "Alan")
    ]))
    .expect("json");
    let (status, body) = hook.post(&mixed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["refused"], 1, "{body}");

    // Refused: wholly foreign, forged, signed with another secret, stale, from the future,
    // oversized, malformed.
    let foreign =
        serde_json::to_vec(&json!([event(FOREIGN_PORTAL, 501, "Mallory")])).expect("json");
    let (status, body) = hook.post(&foreign).await;
    assert_eq!(status, 403, "{body}");
    let forged_body = serde_json::to_vec(&json!([event(portal, 666, "forged")])).expect("json");
    let timestamp = now_ms().to_string();
    let forged = hook
        .http
        .post(&hook.url)
        .header("x-hubspot-request-timestamp", &timestamp)
        .header(
            "x-hubspot-signature-v3",
            sign(APP_SECRET, &hook.url, &batch, &timestamp),
        )
        .body(forged_body.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status().as_u16(), 401);
    let (status, body) = hook.post_as("another-secret", &forged_body, now_ms()).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match"),
        "{body}"
    );
    let (status, body) = hook
        .post_as(APP_SECRET, &forged_body, now_ms() - 301_000)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("300 s"),
        "{body}"
    );
    let (status, _) = hook
        .post_as(APP_SECRET, &forged_body, now_ms() + 301_000)
        .await;
    assert_eq!(status, 401);
    let huge: Vec<Value> = (0..2_000).map(|n| event(portal, 10_000 + n, "x")).collect();
    let huge = serde_json::to_vec(&huge).expect("json");
    assert!(huge.len() > 64 * 1024);
    let (status, answer) = hook.post_head_only(&huge, port).await;
    assert_eq!(status, 413, "{answer}");
    let (status, body) = hook.post(b"[{\"portalId\": ").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error", "{body}");

    // Exactly the accepted events are on the topic, verbatim, keyed and labelled.
    let records = read_topic(
        world.broker.bootstrap_servers(),
        &topic,
        3,
        Duration::from_secs(3),
    )
    .await;
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("{portal}:101"),
            format!("{portal}:102"),
            format!("{portal}:103")
        ],
        "only the accepted events"
    );
    assert_eq!(records[0].value, event(portal, 101, "Ada"));
    assert_eq!(records[2].value, event(portal, 103, "Alan"));
    for record in &records {
        assert_eq!(record.headers.get("hubsync.team"), Some(&team));
        assert_eq!(
            record.headers.get("hubsync.portal"),
            Some(&portal.to_string())
        );
        let received: i64 = record.headers["hubsync.received_at"]
            .parse()
            .expect("epoch ms");
        assert!((now_ms() - received).abs() < 120_000, "{received}");
    }

    // With the broker down Kafka cannot confirm: 503, so HubSpot retries; once it is back the
    // same request is answered 200 and its event is on the topic.
    let late = serde_json::to_vec(&json!([event(portal, 104, "Barbara")])).expect("json");
    world.broker.broker_down(1).await.expect("broker down");
    let asked = std::time::Instant::now();
    // Two at once, one allowed in flight: the second is answered 503 at once.
    let (first, second) = tokio::join!(hook.post(&late), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answer = hook.post(&late).await;
        (answer, asked.elapsed())
    });
    let ((status, body), ((busy, busy_body), busy_after)) = (first, second);
    assert_eq!(busy, 503, "{busy_body}");
    assert!(
        busy_body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("in flight"),
        "{busy_body}"
    );
    assert!(busy_after < Duration::from_secs(2), "{busy_after:?}");
    assert_eq!(status, 503, "{body}");
    // Within HubSpot's 5 s wait, or HubSpot counts a timeout instead of the 503.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "503 after {:?}",
        asked.elapsed()
    );
    world.broker.broker_up(1).await.expect("broker up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = hook.post(&late).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never accepted again: {body}"
        );
    }
    let records = read_topic(
        world.broker.bootstrap_servers(),
        &topic,
        4,
        Duration::from_secs(3),
    )
    .await;
    assert!(
        records.iter().any(|r| r.key == format!("{portal}:104")),
        "the retried event is on the topic"
    );
}

/// `hubsync run` with the config at `config` and `stage`: its exit code and stderr.
fn run_refused(
    config: &std::path::Path,
    stage: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args([
            "run",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--stage",
            stage,
        ])
        .envs(env.iter().copied())
        .env("HUBSYNC_LOG", "off")
        .output()
        .expect("hubsync runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_stage_refuses_to_start_without_its_listener_or_the_app_secret() {
    let admin_port = support::free_port();
    let world = World::start(SandboxOptions::default(), 1, |text| {
        text.replace(
            "[state]\n",
            &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[state]\n"),
        )
    })
    .await;
    let config = world.state_dir.path().join("hubsync.toml");
    std::fs::write(&config, world.config_text()).expect("config written");
    let env = [("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN)];
    let (code, stderr) = run_refused(&config, "inbound", &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("stages.inbound.webhook_listen is not set"),
        "{stderr}"
    );

    // A listener without the app's secret is a configuration problem naming the field.
    let port = support::free_port();
    let text = world.config_text().replace(
        "[state]\n",
        &format!("[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n[state]\n"),
    );
    std::fs::write(&config, text).expect("config written");
    let (code, stderr) = run_refused(&config, "all", &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("hubspot.client_secret"), "{stderr}");

    // A secret named but not there refuses the start too, naming it.
    let text = world
        .config_text()
        .replace(
            "[hubspot]\n",
            "[hubspot]\nclient_secret = { env = \"TEST_APP_SECRET_UNSET\" }\n",
        )
        .replace(
            "[state]\n",
            &format!("[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n[state]\n"),
        );
    std::fs::write(&config, text).expect("config written");
    let (code, stderr) = run_refused(&config, "inbound", &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("hubspot.client_secret") && stderr.contains("TEST_APP_SECRET_UNSET"),
        "{stderr}"
    );
}

const ACME_PORTAL: u64 = 7_700_001;
const ACME_TOKEN: &str = "pat-na1-acme-0000";
const INITECH_PORTAL: u64 = 7_700_002;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_routes_each_portals_events_to_its_team_and_takes_a_team_once_it_connects() {
    let acme = SandboxOptions {
        portal_id: ACME_PORTAL,
        tokens: vec![ACME_TOKEN.to_string()],
        ..SandboxOptions::default()
    };
    let world = World::start_portals(vec![SandboxOptions::default(), acme], 1, |c| c).await;
    let sandbox_portal = world.hubspot.portal_id();
    let port = support::free_port();
    let dir = world.state_dir.path();
    let service = render_sandbox_service(
        world.broker.bootstrap_servers(),
        &world.registry.url(),
        &world.hubspot_server.url(),
    )
    .replace(
        "dir = \"teams\"\n",
        "dir = \"teams\"\nreload_interval = \"1s\"\n",
    )
    .replace(
        "dir = \"hubsync-state\"",
        &format!("dir = {:?}", dir.join("state").display().to_string()),
    )
    .replace(
        "[hubspot]\n",
        "[hubspot]\nclient_secret = { env = \"TEST_APP_SECRET\" }\n",
    )
    .replace(
        "[state]\n",
        &format!(
            "[stages.inbound]\nwebhook_listen = \"127.0.0.1:{port}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[state]\n"
        ),
    );
    let service_path = dir.join("hubsync.toml");
    std::fs::write(&service_path, service).expect("service file");
    let teams = dir.join("teams");
    std::fs::create_dir_all(&teams).expect("teams dir");
    std::fs::write(
        teams.join("sandbox.toml"),
        render_sandbox_team(events::TEAM_ID, sandbox_portal, "TEST_HUBSPOT_TOKEN"),
    )
    .expect("team file");
    std::fs::write(
        teams.join("initech.toml"),
        render_sandbox_team("initech", INITECH_PORTAL, "INITECH_TOKEN")
            .replace("[team]\n", "[team]\nstatus = \"paused\"\n"),
    )
    .expect("team file");
    let _child = Child::spawn_with_env(
        &[
            "run",
            "--config",
            service_path.to_str().expect("utf-8 path"),
            "--stage",
            "inbound",
        ],
        &[
            ("TEST_HUBSPOT_TOKEN", DEFAULT_TOKEN),
            ("ACME_TOKEN", ACME_TOKEN),
            ("TEST_APP_SECRET", APP_SECRET),
        ],
    );
    let hook = Hook::new(port);
    hook.wait_ready().await;

    // One request, four portals: the served team's event is taken; acme (no file yet), the
    // paused initech and a portal nobody names are refused.
    let mixed = serde_json::to_vec(&json!([
        event(sandbox_portal, 1, "a"),
        event(ACME_PORTAL, 2, "b"),
        event(INITECH_PORTAL, 3, "c"),
        event(FOREIGN_PORTAL, 4, "d"),
    ]))
    .expect("json");
    let (status, body) = hook.post(&mixed).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["refused"].as_u64()),
        (Some(1), Some(3)),
        "{body}"
    );

    // acme's file added while running: its portal's events are taken once it connected.
    std::fs::write(
        teams.join("acme.toml"),
        render_sandbox_team("acme", ACME_PORTAL, "ACME_TOKEN"),
    )
    .expect("team file");
    let only_acme = serde_json::to_vec(&json!([event(ACME_PORTAL, 5, "e")])).expect("json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = hook.post(&only_acme).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 403, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "acme never served: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let both = serde_json::to_vec(&json!([
        event(sandbox_portal, 6, "f"),
        event(ACME_PORTAL, 7, "g")
    ]))
    .expect("json");
    let (status, body) = hook.post(&both).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "{body}"
    );

    let records = read_topic(
        world.broker.bootstrap_servers(),
        &world.config.topics.hubspot_webhooks,
        4,
        Duration::from_secs(3),
    )
    .await;
    let routed: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.headers.get("hubsync.team").cloned().unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        (format!("{sandbox_portal}:1"), events::TEAM_ID),
        (format!("{ACME_PORTAL}:5"), "acme"),
        (format!("{sandbox_portal}:6"), events::TEAM_ID),
        (format!("{ACME_PORTAL}:7"), "acme"),
    ]
    .into_iter()
    .map(|(key, team)| (key, team.to_string()))
    .collect();
    assert_eq!(
        routed, expected,
        "each event under its own team, nothing else"
    );
}
