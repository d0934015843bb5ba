//! The HubSpot sandbox's webhook delivery, against a receiver in the test that records every
//! request, checks its signature on its own (HMAC from the crates, not the sandbox's code), and
//! fails, stalls or counts requests on demand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use hubsync_sandbox::clock::Clock;
use hubsync_sandbox::hubspot::{
    DEFAULT_PRIVATE_APP_ID, DEFAULT_TOKEN, HubSpotSandbox, Portals, SandboxOptions,
};
use hubsync_sandbox::server::{RunningServer, loopback};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const SECRET: &str = "receiver-client-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    events: Vec<Value>,
    signature_ok: bool,
    content_type: Option<String>,
    timestamp_ms: Option<i64>,
}

#[derive(Default)]
struct ReceiverState {
    url: Mutex<String>,
    requests: Mutex<Vec<Received>>,
    /// Answer `fail_status` to this many requests first.
    fail_first: AtomicUsize,
    fail_status: AtomicU16,
    /// Hold every request this long before answering.
    delay_ms: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Receiver {
    state: Arc<ReceiverState>,
    /// Kept so the receiver lives as long as the test.
    _server: RunningServer,
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(state.clone());
        let server = RunningServer::spawn(router, loopback(0))
            .await
            .expect("serve receiver");
        *state.url.lock().expect("lock") = format!("{}/hooks?team=acme", server.url());
        Receiver {
            state,
            _server: server,
        }
    }

    fn url(&self) -> String {
        self.state.url.lock().expect("lock").clone()
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("lock").clone()
    }

    fn events(&self) -> Vec<Value> {
        self.requests().into_iter().flat_map(|r| r.events).collect()
    }

    fn fail(&self, first: usize, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
        self.state.fail_first.store(first, Ordering::SeqCst);
    }
}

/// The signature worked out apart from the sandbox: "POST" + URL + body + timestamp.
fn expected_signature(url: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(b"POST");
    mac.update(url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let timestamp = header("x-hubspot-request-timestamp");
    let url = state.url.lock().expect("lock").clone();
    let signature_ok = match (&timestamp, header("x-hubspot-signature-v3")) {
        (Some(at), Some(signature)) => expected_signature(&url, &body, at) == signature,
        _ => false,
    };
    let events: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
    state.requests.lock().expect("lock").push(Received {
        events,
        signature_ok,
        content_type: header("content-type"),
        timestamp_ms: timestamp.and_then(|t| t.parse().ok()),
    });
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let failing = state
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        AxumStatus::from_u16(state.fail_status.load(Ordering::SeqCst))
            .unwrap_or(AxumStatus::INTERNAL_SERVER_ERROR)
    } else {
        AxumStatus::NO_CONTENT
    }
}

struct Api {
    sandbox: HubSpotSandbox,
    server: RunningServer,
    http: reqwest::Client,
}

async fn start() -> Api {
    let sandbox = HubSpotSandbox::new(SandboxOptions {
        clock: Clock::manual(T0),
        ..SandboxOptions::default()
    });
    let server = sandbox.serve(loopback(0)).await.expect("serve");
    Api {
        sandbox,
        server,
        http: reqwest::Client::new(),
    }
}

impl Api {
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.server.url(), path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn api(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, body) = self
            .call(Some(DEFAULT_TOKEN), method, path, Some(body))
            .await;
        assert!(status.is_success(), "{status} {body}");
        body
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(None, method, path, body).await
    }

    async fn hook(&self, receiver: &Receiver, options: Value) -> Value {
        let mut config = json!({
            "app_id": DEFAULT_PRIVATE_APP_ID,
            "target_url": receiver.url(),
            "client_secret": SECRET,
            "retry_backoff_ms": 10,
            "batch_delay_ms": 10,
        });
        if let (Some(config), Some(options)) = (config.as_object_mut(), options.as_object()) {
            config.extend(options.clone());
        }
        let (status, body) = self
            .admin(Method::PUT, "/__admin/webhooks", Some(config))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until every event is sent and every request finished, and `done` holds.
    async fn settle(&self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self
                .admin(Method::GET, "/__admin/webhooks/deliveries", None)
                .await;
            let idle = body["pending_events"] == 0 && body["unfinished_requests"] == 0;
            if idle && done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "never settled: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn create_contact(&self, email: &str) -> String {
        let body = self
            .api(
                Method::POST,
                "/crm/v3/objects/contacts",
                json!({"properties": {"email": email, "firstname": "Ada"}}),
            )
            .await;
        body["id"].as_str().expect("id").to_string()
    }
}

fn attempts(deliveries: &Value) -> Vec<Value> {
    deliveries["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["subscriptionType"] == kind)
        .collect()
}

#[tokio::test]
async fn every_kind_of_change_arrives_as_signed_v3_events() {
    let api = start().await;
    let receiver = Receiver::start().await;
    let config = api.hook(&receiver, json!({})).await;
    assert_eq!(config["max_attempts"], 10);
    assert_eq!(config["subscriptions"].as_array().map(Vec::len), Some(19));

    let contact = api.create_contact("hooked@example.org").await;
    let company = api
        .api(
            Method::POST,
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme"}}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    api.sandbox.clock().advance(Duration::from_millis(1_500));
    let (status, _) = api
        .admin(
            Method::PATCH,
            &format!("/__admin/objects/contacts/{contact}"),
            Some(json!({"properties": {"jobtitle": "CTO"}, "user_id": 9_000_002})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    api.api(
        Method::POST,
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": contact}, "to": {"id": company}}]}),
    )
    .await;
    api.call(
        Some(DEFAULT_TOKEN),
        Method::DELETE,
        &format!("/crm/v3/objects/companies/{company}"),
        None,
    )
    .await;
    api.settle(|d| !attempts(d).is_empty()).await;

    let requests = receiver.requests();
    for request in &requests {
        assert!(request.signature_ok, "{request:?}");
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        let skew = request.timestamp_ms.expect("timestamp") - chrono::Utc::now().timestamp_millis();
        assert!(
            skew.abs() < 60_000,
            "the timestamp is the wall clock: {skew}"
        );
    }
    let events = receiver.events();
    let contact_id: u64 = contact.parse().expect("numeric");
    let company_id: u64 = company.parse().expect("numeric");

    let creation = of_type(&events, "contact.creation");
    assert_eq!(creation.len(), 1);
    let creation = creation[0];
    assert_eq!(creation["objectId"], contact_id);
    assert_eq!(creation["changeFlag"], "CREATED");
    assert_eq!(creation["changeSource"], "INTEGRATION");
    assert_eq!(creation["sourceId"], DEFAULT_PRIVATE_APP_ID.to_string());
    assert_eq!(creation["portalId"], api.sandbox.portal_id());
    assert_eq!(creation["appId"], DEFAULT_PRIVATE_APP_ID);
    assert_eq!(creation["occurredAt"], T0);
    assert_eq!(creation["attemptNumber"], 0);
    assert!(creation["eventId"].is_u64() && creation["subscriptionId"].is_u64());
    assert_eq!(
        config["subscription_ids"]["contact.creation"],
        creation["subscriptionId"]
    );

    let changes: BTreeMap<String, (String, String, String)> =
        of_type(&events, "contact.propertyChange")
            .into_iter()
            .map(|e| {
                (
                    e["propertyName"].as_str().unwrap_or("").to_string(),
                    (
                        e["propertyValue"].as_str().unwrap_or("").to_string(),
                        e["changeSource"].as_str().unwrap_or("").to_string(),
                        e["sourceId"].as_str().unwrap_or("").to_string(),
                    ),
                )
            })
            .collect();
    let app = DEFAULT_PRIVATE_APP_ID.to_string();
    assert_eq!(
        changes,
        BTreeMap::from([
            (
                "email".to_string(),
                (
                    "hooked@example.org".into(),
                    "INTEGRATION".into(),
                    app.clone()
                )
            ),
            (
                "firstname".to_string(),
                ("Ada".into(), "INTEGRATION".into(), app.clone())
            ),
            (
                "jobtitle".to_string(),
                ("CTO".into(), "CRM_UI".into(), "userId:9000002".into())
            ),
        ])
    );
    let cto = of_type(&events, "contact.propertyChange")
        .into_iter()
        .find(|e| e["propertyName"] == "jobtitle")
        .expect("jobtitle");
    assert_eq!(cto["occurredAt"], T0 + 1_500, "the change's time");

    let links = of_type(&events, "contact.associationChange");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["associationType"], "CONTACT_TO_COMPANY");
    assert_eq!(links[0]["fromObjectId"], contact_id);
    assert_eq!(links[0]["toObjectId"], company_id);
    assert_eq!(links[0]["associationRemoved"], false);
    assert_eq!(links[0]["isPrimaryAssociation"], false);
    let back = of_type(&events, "company.associationChange");
    assert_eq!(back[0]["associationType"], "COMPANY_TO_CONTACT");
    assert_eq!(back[0]["fromObjectId"], company_id);

    let deletion = of_type(&events, "company.deletion");
    assert_eq!(deletion.len(), 1);
    assert_eq!(deletion[0]["objectId"], company_id);
    let ids: BTreeSet<u64> = events
        .iter()
        .filter_map(|e| e["eventId"].as_u64())
        .collect();
    assert_eq!(ids.len(), events.len(), "no duplicates unless asked");
}

#[tokio::test]
async fn failed_requests_are_retried_with_the_attempt_number() {
    let api = start().await;
    let receiver = Receiver::start().await;
    receiver.fail(2, 503);
    api.hook(&receiver, json!({"subscriptions": ["contact.creation"]}))
        .await;
    api.create_contact("retry@example.org").await;
    let deliveries = api.settle(|d| attempts(d).len() >= 3).await;
    let log = attempts(&deliveries);
    let summary: Vec<(u64, u64, &str)> = log
        .iter()
        .map(|a| {
            (
                a["attempt_number"].as_u64().unwrap_or(99),
                a["status"].as_u64().unwrap_or(0),
                a["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 503, "retrying"),
            (1, 503, "retrying"),
            (2, 204, "delivered")
        ]
    );
    assert!(
        log.iter()
            .all(|a| a["events"] == 1 && a["request_id"] == log[0]["request_id"])
    );
    let numbers: Vec<u64> = receiver
        .events()
        .iter()
        .filter_map(|e| e["attemptNumber"].as_u64())
        .collect();
    assert_eq!(numbers, [0, 1, 2]);
    let ids: BTreeSet<u64> = receiver
        .events()
        .iter()
        .filter_map(|e| e["eventId"].as_u64())
        .collect();
    assert_eq!(ids.len(), 1, "a retry carries the same event");
}

#[tokio::test]
async fn a_4xx_is_retried_unless_retry_4xx_is_off_and_attempts_run_out() {
    let api = start().await;
    let receiver = Receiver::start().await;
    receiver.fail(1, 400);
    api.hook(&receiver, json!({"subscriptions": ["contact.creation"]}))
        .await;
    api.create_contact("fourxx@example.org").await;
    let deliveries = api.settle(|d| attempts(d).len() >= 2).await;
    assert_eq!(attempts(&deliveries)[1]["result"], "delivered");

    let (status, _) = api
        .admin(Method::DELETE, "/__admin/webhooks/deliveries", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    receiver.fail(1, 400);
    api.hook(
        &receiver,
        json!({"subscriptions": ["contact.creation"], "retry_4xx": false}),
    )
    .await;
    api.create_contact("fourxx-2@example.org").await;
    let deliveries = api.settle(|d| !attempts(d).is_empty()).await;
    let log = attempts(&deliveries);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status"], 400);
    assert_eq!(log[0]["result"], "gave_up");

    receiver.fail(5, 500);
    api.admin(Method::DELETE, "/__admin/webhooks/deliveries", None)
        .await;
    api.hook(
        &receiver,
        json!({"subscriptions": ["contact.creation"], "max_attempts": 3}),
    )
    .await;
    api.create_contact("fourxx-3@example.org").await;
    let deliveries = api.settle(|d| attempts(d).len() >= 3).await;
    let results: Vec<&str> = attempts(&deliveries)
        .iter()
        .map(|a| a["result"].as_str().unwrap_or(""))
        .map(|r| match r {
            "retrying" => "retrying",
            "gave_up" => "gave_up",
            _ => "other",
        })
        .collect();
    assert_eq!(results, ["retrying", "retrying", "gave_up"]);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retried() {
    let api = start().await;
    let receiver = Receiver::start().await;
    receiver.state.delay_ms.store(400, Ordering::SeqCst);
    api.hook(
        &receiver,
        json!({"subscriptions": ["contact.creation"], "timeout_ms": 100, "max_attempts": 2}),
    )
    .await;
    api.create_contact("slow@example.org").await;
    let deliveries = api.settle(|d| attempts(d).len() >= 2).await;
    for attempt in attempts(&deliveries) {
        assert_eq!(attempt["error"], "no answer within 100 ms", "{attempt}");
        assert!(attempt.get("status").is_none());
    }

    // Nothing listens on a port just freed.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr").port()
    };
    api.admin(Method::DELETE, "/__admin/webhooks/deliveries", None)
        .await;
    let (status, body) = api
        .admin(
            Method::PUT,
            "/__admin/webhooks",
            Some(json!({
                "app_id": DEFAULT_PRIVATE_APP_ID,
                "target_url": format!("http://127.0.0.1:{closed}/hooks"),
                "client_secret": SECRET,
                "subscriptions": ["contact.creation"],
                "max_attempts": 3,
                "retry_backoff_ms": 5,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.create_contact("refused@example.org").await;
    let deliveries = api.settle(|d| attempts(d).len() >= 3).await;
    let log = attempts(&deliveries);
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|a| a["error"].is_string()), "{log:?}");
    assert_eq!(log[2]["result"], "gave_up");
}

#[tokio::test]
async fn requests_carry_fewer_than_100_events_and_keep_to_max_concurrent() {
    let api = start().await;
    let receiver = Receiver::start().await;
    receiver.state.delay_ms.store(150, Ordering::SeqCst);
    api.hook(&receiver, json!({"max_concurrent": 2})).await;
    for batch in 0..3 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {"email": format!("b{batch}-{i}@example.org")}}))
            .collect();
        api.api(
            Method::POST,
            "/crm/v3/objects/contacts/batch/create",
            json!({"inputs": inputs}),
        )
        .await;
    }
    api.settle(|_| receiver.events().len() >= 600).await;
    let requests = receiver.requests();
    assert!(requests.len() >= 7, "{} requests", requests.len());
    assert!(
        requests
            .iter()
            .all(|r| !r.events.is_empty() && r.events.len() < 100)
    );
    let ids: BTreeSet<u64> = receiver
        .events()
        .iter()
        .filter_map(|e| e["eventId"].as_u64())
        .collect();
    assert_eq!(ids.len(), 600, "every event once");
    assert_eq!(receiver.events().len(), 600);
    assert_eq!(receiver.state.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn duplicates_and_reordering_on_request() {
    let api = start().await;
    let receiver = Receiver::start().await;
    api.hook(
        &receiver,
        json!({"subscriptions": ["contact.creation"], "duplicate_rate": 1.0, "reorder": true, "seed": 7}),
    )
    .await;
    let inputs: Vec<Value> = (0..40)
        .map(|i| json!({"properties": {"email": format!("d{i}@example.org")}}))
        .collect();
    api.api(
        Method::POST,
        "/crm/v3/objects/contacts/batch/create",
        json!({"inputs": inputs}),
    )
    .await;
    api.settle(|_| receiver.events().len() >= 80).await;
    let requests = receiver.requests();
    let mut seen: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (index, request) in requests.iter().enumerate() {
        for event in &request.events {
            seen.entry(event["eventId"].as_u64().expect("id"))
                .or_default()
                .push(index);
        }
    }
    assert_eq!(seen.len(), 40);
    for (id, requests) in &seen {
        assert_eq!(requests.len(), 2, "event {id} twice");
        assert_ne!(requests[0], requests[1], "event {id} in two requests");
    }
    let first: Vec<u64> = requests[0]
        .events
        .iter()
        .filter_map(|e| e["eventId"].as_u64())
        .collect();
    let mut sorted = first.clone();
    sorted.sort_unstable();
    assert_ne!(first, sorted, "shuffled");
}

#[tokio::test]
async fn only_portals_where_the_app_has_a_token_send_its_events() {
    let api = start().await;
    let receiver = Receiver::start().await;
    api.hook(
        &receiver,
        json!({"app_id": 999, "subscriptions": ["contact.creation"]}),
    )
    .await;
    api.create_contact("elsewhere@example.org").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.requests().is_empty(), "app 999 is not installed");

    let (status, _) = api
        .admin(
            Method::PUT,
            "/__admin/tokens/pat-na1-app-999",
            Some(json!({"state": "valid", "app_id": 999})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = api.create_contact("installed@example.org").await;
    api.settle(|_| !receiver.events().is_empty()).await;
    let events = receiver.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["objectId"], id.parse::<u64>().expect("numeric"));
    assert_eq!(events[0]["appId"], 999);
    // The change was made with the default app's token: its source is that app.
    assert_eq!(events[0]["sourceId"], DEFAULT_PRIVATE_APP_ID.to_string());

    let (status, _) = api.admin(Method::DELETE, "/__admin/webhooks", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.create_contact("stopped@example.org").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.events().len(), 1, "no webhook, no events");
}

#[tokio::test]
async fn a_webhook_that_cannot_work_is_refused_with_a_validation_error() {
    let api = start().await;
    for config in [
        json!({"target_url": "http://127.0.0.1:1/h", "client_secret": "s"}),
        json!({"app_id": 1, "target_url": "not a url", "client_secret": "s"}),
        json!({"app_id": 1, "target_url": "http://127.0.0.1:1/h"}),
        json!({"app_id": 1, "target_url": "http://127.0.0.1:1/h", "client_secret": "s", "subscriptions": ["ticket.creation"]}),
        json!({"app_id": 1, "target_url": "http://127.0.0.1:1/h", "client_secret": "s", "retries": 3}),
    ] {
        let (status, body) = api
            .admin(Method::PUT, "/__admin/webhooks", Some(config.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{config}");
        assert_eq!(body["category"], "VALIDATION_ERROR", "{body}");
    }
}

#[tokio::test]
async fn one_webhook_serves_every_portal_the_app_is_installed_in() {
    let options = |portal_id: u64, token: &str| SandboxOptions {
        portal_id,
        tokens: vec![token.to_string()],
        clock: Clock::manual(T0),
        ..SandboxOptions::default()
    };
    let portals = Portals::new(vec![options(1_001, "pat-one"), options(1_002, "pat-two")]);
    let server = portals.serve(loopback(0)).await.expect("serve");
    let receiver = Receiver::start().await;
    let http = reqwest::Client::new();
    let configured = http
        .put(format!("{}/__admin/portals/1002/webhooks", server.url()))
        .json(&json!({
            "app_id": DEFAULT_PRIVATE_APP_ID,
            "target_url": receiver.url(),
            "client_secret": SECRET,
            "subscriptions": ["contact.creation"],
            "batch_delay_ms": 5,
        }))
        .send()
        .await
        .expect("configure");
    assert_eq!(configured.status(), StatusCode::OK);
    for token in ["pat-one", "pat-two"] {
        let created = http
            .post(format!("{}/crm/v3/objects/contacts", server.url()))
            .bearer_auth(token)
            .json(&json!({"properties": {"email": format!("{token}@example.org")}}))
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.events().len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", receiver.requests());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let portals_seen: BTreeSet<u64> = receiver
        .events()
        .iter()
        .filter_map(|e| e["portalId"].as_u64())
        .collect();
    assert_eq!(portals_seen, BTreeSet::from([1_001, 1_002]));
    assert!(
        receiver.requests().iter().all(|r| r.events.len() == 1),
        "one portal per request"
    );
}

#[tokio::test]
async fn merges_restores_gdpr_deletes_and_unlinks_arrive_as_their_events() {
    let api = start().await;
    let receiver = Receiver::start().await;
    let contact = api.create_contact("primary@example.org").await;
    let other = api.create_contact("secondary@example.org").await;
    let company = api
        .api(
            Method::POST,
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Linked"}}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    api.api(
        Method::POST,
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": contact}, "to": {"id": company}}]}),
    )
    .await;
    api.hook(
        &receiver,
        json!({"subscriptions": [
            "contact.merge", "contact.restore", "contact.deletion", "contact.privacyDeletion",
            "contact.associationChange", "company.associationChange"
        ]}),
    )
    .await;

    let (status, body) = api
        .admin(
            Method::POST,
            "/__admin/objects/contacts/merge",
            Some(json!({"primaryObjectId": contact, "objectIdToMerge": other})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api
        .call(
            Some(DEFAULT_TOKEN),
            Method::POST,
            "/crm/v4/associations/contacts/companies/batch/archive",
            Some(json!({"inputs": [{"from": {"id": contact}, "to": [{"id": company}]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.call(
        Some(DEFAULT_TOKEN),
        Method::DELETE,
        &format!("/crm/v3/objects/contacts/{contact}"),
        None,
    )
    .await;
    let (status, body) = api
        .admin(
            Method::POST,
            &format!("/__admin/objects/contacts/{contact}/restore"),
            Some(json!({"user_id": 9_000_003})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api
        .call(
            Some(DEFAULT_TOKEN),
            Method::POST,
            "/crm/v3/objects/contacts/gdpr-delete",
            Some(json!({"objectId": contact})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    api.settle(|_| receiver.events().len() >= 7).await;

    let mut events = receiver.events();
    events.sort_by_key(|e| e["eventId"].as_u64());
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["subscriptionType"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "contact.merge",
            "contact.associationChange",
            "company.associationChange",
            "contact.deletion",
            "contact.restore",
            "contact.privacyDeletion",
            "contact.deletion",
        ]
    );
    let (contact_id, other_id): (u64, u64) = (
        contact.parse().expect("numeric"),
        other.parse().expect("numeric"),
    );
    assert_eq!(events[0]["primaryObjectId"], contact_id);
    assert_eq!(events[0]["mergedObjectIds"], json!([other_id]));
    assert_eq!(events[0]["newObjectId"], contact_id);
    assert_eq!(events[0]["changeSource"], "CRM_UI");
    assert_eq!(events[0]["sourceId"], "userId:9000001");
    assert_eq!(events[1]["associationRemoved"], true);
    assert_eq!(events[1]["associationType"], "CONTACT_TO_COMPANY");
    assert_eq!(events[2]["associationType"], "COMPANY_TO_CONTACT");
    assert_eq!(events[3]["changeFlag"], "DELETED");
    assert_eq!(events[4]["sourceId"], "userId:9000003");
    assert_eq!(events[5]["objectId"], contact_id);
    assert_eq!(events[6]["objectId"], contact_id);
    assert_eq!(events[6]["changeSource"], "INTEGRATION");
}
