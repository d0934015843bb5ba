//! The inbound stage's poller against the HubSpot sandbox and the development broker, on the
//! sandbox's manual clock: a record changed as a HubSpot user ends on `hubsync.hubspot.webhooks`
//! as one `contact.propertyChange` with `changeSource: CRM_UI`, carrying the same dedupe key
//! as the webhook HubSpot sends for that change; polling again sends nothing again; the
//! cursor survives a restart; the integration's own writes come with its app id (for the
//! translator's echo suppression); deletions come from the archived listing; a followed list's
//! members are imported once and those who leave are reported once.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hubsync::inbound::poll::{PollSettings, PollStore, PollTarget, PollTargets, Poller};
use hubsync_hubspot::budget::{BudgetLimits, RequestBudget};
use hubsync_hubspot::retry::InstantSleeper;
use hubsync_hubspot::{
    ClientSettings, HubSpotClient, ObjectType, Properties, RetryParams, Secret, UpdateInput,
};
use hubsync_sandbox::broker::{BrokerConfig, DevBroker, TopicSpec};
use hubsync_sandbox::clock::Clock;
use hubsync_sandbox::hubspot::webhooks::WebhookConfig;
use hubsync_sandbox::hubspot::{
    DEFAULT_PRIVATE_APP_ID, DEFAULT_TOKEN, DEFAULT_USER_ID, HubSpotSandbox, SandboxOptions,
};
use hubsync_sandbox::server::{RunningServer, loopback};
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use serde_json::{Value, json};
use support::hook::read_topic;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const TOPIC: &str = "hubsync.hubspot.webhooks";
const TEAM: &str = "acme-sales";

/// The sandbox's clock, as the poller reads the time.
#[derive(Debug)]
struct SandboxTime(Clock);

impl hubsync_hubspot::Clock for SandboxTime {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

struct Setup {
    sandbox: HubSpotSandbox,
    server: RunningServer,
    broker: DevBroker,
    http: reqwest::Client,
    state: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let sandbox = HubSpotSandbox::new(SandboxOptions {
            clock: Clock::manual(T0),
            search_index_lag: Duration::from_secs(5),
            ..SandboxOptions::default()
        });
        let server = sandbox.serve(loopback(0)).await.expect("sandbox serves");
        let broker = DevBroker::start(BrokerConfig::new(1).with_topic(TopicSpec::new(TOPIC, 1)))
            .await
            .expect("broker");
        Setup {
            sandbox,
            server,
            broker,
            http: reqwest::Client::new(),
            state: tempfile::tempdir().expect("state dir"),
        }
    }

    fn advance(&self, seconds: u64) {
        assert!(self.sandbox.clock().advance(Duration::from_secs(seconds)));
    }

    fn client(&self) -> HubSpotClient {
        let settings = ClientSettings {
            base_url: self.server.url(),
            request_timeout: Duration::from_secs(10),
            limits: BudgetLimits::for_tier(hubsync_hubspot::Tier::Professional),
            retry: RetryParams {
                base: Duration::from_millis(10),
                max: Duration::from_millis(100),
                max_attempts: 3,
            },
        };
        let budget = Arc::new(RequestBudget::new(settings.limits));
        HubSpotClient::with_parts(
            settings,
            Secret::new(DEFAULT_TOKEN),
            budget,
            Arc::new(InstantSleeper::new()),
        )
        .expect("client")
    }

    /// A poller of the one team on a fresh open of the state directory.
    fn poller(&self) -> (Poller, PollTarget) {
        let store = PollStore::open(&self.state.path().join("inbound")).expect("state opens");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .create()
            .expect("producer");
        let settings = PollSettings {
            interval: Duration::from_secs(30),
            page_size: 100,
            search_lag: Duration::from_secs(10),
            poll_from_ms: None,
            refresh_interval: None,
            archived_every: Duration::from_secs(1),
            lists_every: Duration::from_secs(60),
        };
        let poller = Poller::new(settings, store, producer, TOPIC, PollTargets::default())
            .with_clock(Arc::new(SandboxTime(self.sandbox.clock().clone())));
        let target = PollTarget {
            team: TEAM.into(),
            portal: self.sandbox.portal_id(),
            client: self.client(),
            watched: BTreeMap::from([(ObjectType::Contacts, vec!["firstname".to_owned()])]),
            lists: Vec::new(),
        };
        (poller, target)
    }

    /// A call to HubSpot's API with the team's token.
    async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(DEFAULT_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("hubspot answers");
        assert!(answer.status().is_success(), "{}", answer.status());
        answer.json().await.unwrap_or(Value::Null)
    }

    /// A change as a HubSpot user makes it (`CRM_UI`).
    async fn as_user(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self
            .http
            .request(method, format!("{}/__admin/{path}", self.server.url()))
            .json(&body)
            .send()
            .await
            .expect("admin answers");
        assert!(answer.status().is_success(), "{}", answer.status());
        answer.json().await.unwrap_or(Value::Null)
    }
}

/// Captures what the sandbox's webhook delivers, as the receiver would get it.
async fn webhook_catcher() -> (String, Arc<Mutex<Vec<Value>>>) {
    let caught = Arc::new(Mutex::new(Vec::new()));
    let keep = caught.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::Json<Vec<Value>>| {
            let keep = keep.clone();
            async move {
                keep.lock().expect("lock").extend(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, caught)
}

/// What the translator dedupes on.
fn dedupe_key(event: &Value) -> (Value, Value, Value, Value, Value) {
    (
        event["subscriptionType"].clone(),
        event["objectId"].clone(),
        event["occurredAt"].clone(),
        event["propertyName"].clone(),
        event["propertyValue"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_changes_are_polled_once_each_and_the_cursor_survives_a_restart() {
    let setup = Setup::start().await;
    let portal = setup.sandbox.portal_id();
    let (hook_url, hooked) = webhook_catcher().await;
    setup
        .sandbox
        .webhooks()
        .configure(WebhookConfig {
            app_id: DEFAULT_PRIVATE_APP_ID,
            target_url: hook_url,
            client_secret: "s".into(),
            subscriptions: vec!["contact.propertyChange".into()],
            ..WebhookConfig::default()
        })
        .expect("webhook configured");

    // A contact that exists before polling starts: its past is not sent.
    let created = setup
        .as_user(
            reqwest::Method::POST,
            "objects/contacts",
            json!({"properties": {"email": "ada@example.org", "firstname": "Ada"}}),
        )
        .await;
    let id: u64 = created["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .or_else(|| created["id"].as_u64())
        .expect("the contact's id");
    setup.advance(60);
    let (poller, target) = setup.poller();
    let first = poller.poll_once(&target).await;
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(first.total(), 0, "{:?}", first.emitted);

    // A HubSpot user changes the first name: one event, CRM_UI.
    setup
        .as_user(
            reqwest::Method::PATCH,
            &format!("objects/contacts/{id}"),
            json!({"properties": {"firstname": "Grace"}}),
        )
        .await;
    let changed_at = setup.sandbox.clock().now_ms();
    setup.advance(20);
    let second = poller.poll_once(&target).await;
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    assert_eq!(second.count("property_change"), 1, "{:?}", second.emitted);
    assert_eq!(second.total(), 1, "{:?}", second.emitted);

    // Polling again sends nothing again.
    setup.advance(20);
    let third = poller.poll_once(&target).await;
    assert_eq!(third.total(), 0, "{:?}", third.emitted);

    // hubsync's own write comes back with its app id, for the translator to recognise.
    setup
        .client()
        .batch_update(
            ObjectType::Contacts,
            &[UpdateInput {
                trace_id: "evt-1".into(),
                id: id.to_string(),
                properties: Properties::from([("firstname".to_owned(), "Ada".to_owned())]),
            }],
        )
        .await
        .expect("the integration writes");
    setup.advance(20);
    let fourth = poller.poll_once(&target).await;
    assert_eq!(fourth.count("property_change"), 1, "{:?}", fourth.emitted);

    // A restart: the cursor and the marks are where they were.
    drop(poller);
    setup.advance(20);
    let (poller, target) = setup.poller();
    let after_restart = poller.poll_once(&target).await;
    assert!(
        after_restart.failures.is_empty(),
        "{:?}",
        after_restart.failures
    );
    assert_eq!(after_restart.total(), 0, "{:?}", after_restart.emitted);
    drop(poller);
    let store = PollStore::open(&setup.state.path().join("inbound")).expect("state opens");
    let cursor = store
        .cursor(TEAM, portal, ObjectType::Contacts)
        .expect("readable")
        .expect("stored");
    assert!(
        cursor.live.from_ms > changed_at,
        "{cursor:?} after {changed_at}"
    );
    drop(store);

    // A user deletes the contact: the archived listing reports it, once.
    setup
        .as_user(
            reqwest::Method::DELETE,
            &format!("objects/contacts/{id}"),
            Value::Null,
        )
        .await;
    let deleted_at = setup.sandbox.clock().now_ms();
    setup.advance(20);
    let (poller, target) = setup.poller();
    let deletion = poller.poll_once(&target).await;
    assert!(deletion.failures.is_empty(), "{:?}", deletion.failures);
    assert_eq!(deletion.count("deletion"), 1, "{:?}", deletion.emitted);
    setup.advance(20);
    assert_eq!(poller.poll_once(&target).await.total(), 0);

    // On the topic: exactly those three, keyed and labelled as the receiver's.
    let records = read_topic(
        setup.broker.bootstrap_servers(),
        TOPIC,
        3,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(record.key, format!("{portal}:{id}"));
        assert_eq!(
            record.headers.get("hubsync.team").map(String::as_str),
            Some(TEAM)
        );
        assert_eq!(
            record.headers.get("hubsync.portal"),
            Some(&portal.to_string())
        );
        assert!(record.headers.contains_key("hubsync.received_at"));
        assert_eq!(record.value["hubsync_via"], "poll");
        assert_eq!(record.value["portalId"], portal);
        assert_eq!(record.value["objectId"], id);
        assert_eq!(record.value["attemptNumber"], 0);
        assert!(record.value["eventId"].as_u64().is_some());
    }
    let by_user = &records[0].value;
    assert_eq!(by_user["subscriptionType"], "contact.propertyChange");
    assert_eq!(by_user["propertyName"], "firstname");
    assert_eq!(by_user["propertyValue"], "Grace");
    assert_eq!(by_user["changeSource"], "CRM_UI");
    assert_eq!(by_user["sourceId"], format!("userId:{DEFAULT_USER_ID}"));
    assert_eq!(by_user["occurredAt"], changed_at);
    let ours = &records[1].value;
    assert_eq!(ours["propertyValue"], "Ada");
    assert_eq!(ours["changeSource"], "INTEGRATION");
    assert_eq!(ours["sourceId"], DEFAULT_PRIVATE_APP_ID.to_string());
    let deleted = &records[2].value;
    assert_eq!(deleted["subscriptionType"], "contact.deletion");
    assert_eq!(deleted["occurredAt"], deleted_at);

    // The webhook HubSpot sent for the user's change dedupes with the polled event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let hooked_grace = loop {
        let found = hooked
            .lock()
            .expect("lock")
            .iter()
            .find(|e| e["propertyValue"] == "Grace")
            .cloned();
        if let Some(event) = found {
            break event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no webhook for the change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dedupe_key(&hooked_grace), dedupe_key(by_user));
    assert_eq!(hooked_grace["changeSource"], by_user["changeSource"]);
    assert_eq!(hooked_grace["sourceId"], by_user["sourceId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_lists_members_are_imported_once_and_leavers_reported_once() {
    let setup = Setup::start().await;
    let portal = setup.sandbox.portal_id();
    let mut ids = Vec::new();
    for email in ["a@example.org", "b@example.org", "c@example.org"] {
        let created = setup
            .as_user(
                reqwest::Method::POST,
                "objects/contacts",
                json!({"properties": {"email": email}}),
            )
            .await;
        ids.push(
            created["id"]
                .as_str()
                .and_then(|id| id.parse::<u64>().ok())
                .or_else(|| created["id"].as_u64())
                .expect("the contact's id"),
        );
    }
    let list = setup
        .api(
            reqwest::Method::POST,
            "/crm/v3/lists",
            json!({"name": "Webinar", "objectTypeId": "0-1", "processingType": "MANUAL"}),
        )
        .await;
    let list_id = list["list"]["listId"]
        .as_str()
        .expect("a list id")
        .to_owned();
    let members = format!("/crm/v3/lists/{list_id}/memberships/add-and-remove");
    setup
        .api(
            reqwest::Method::PUT,
            &members,
            json!({"recordIdsToAdd": [ids[0].to_string(), ids[1].to_string()]}),
        )
        .await;
    let joined_at = setup.sandbox.clock().now_ms();

    let (poller, mut target) = setup.poller();
    target.watched.clear();
    target.lists = vec![list_id.clone()];
    // The first read: every member is new, an import once.
    let first = poller.poll_once(&target).await;
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(first.count("membership_added"), 2, "{:?}", first.emitted);
    // Before poll_lists_every passes the list is not read again.
    setup.advance(30);
    assert_eq!(poller.poll_once(&target).await.total(), 0);

    // One joins, one leaves; read again after the interval (and after a restart).
    setup
        .api(
            reqwest::Method::PUT,
            &members,
            json!({"recordIdsToAdd": [ids[2].to_string()], "recordIdsToRemove": [ids[0].to_string()]}),
        )
        .await;
    let changed_at = setup.sandbox.clock().now_ms();
    drop(poller);
    setup.advance(40);
    let (poller, target) = {
        let (poller, mut target) = setup.poller();
        target.watched.clear();
        target.lists = vec![list_id.clone()];
        (poller, target)
    };
    let seen_at = setup.sandbox.clock().now_ms();
    let second = poller.poll_once(&target).await;
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    assert_eq!(second.count("membership_added"), 1, "{:?}", second.emitted);
    assert_eq!(
        second.count("membership_removed"),
        1,
        "{:?}",
        second.emitted
    );
    setup.advance(61);
    assert_eq!(poller.poll_once(&target).await.total(), 0);

    let records = read_topic(
        setup.broker.bootstrap_servers(),
        TOPIC,
        4,
        Duration::from_secs(3),
    )
    .await;
    let seen: Vec<(String, u64, i64)> = records
        .iter()
        .map(|r| {
            assert_eq!(r.value["listId"], list_id.as_str());
            assert_eq!(r.value["objectTypeId"], "0-1");
            assert_eq!(r.value["hubsync_via"], "poll");
            assert_eq!(r.key, format!("{portal}:{}", r.value["objectId"]));
            assert_eq!(
                r.headers.get("hubsync.team").map(String::as_str),
                Some(TEAM)
            );
            (
                r.value["subscriptionType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r.value["objectId"].as_u64().unwrap_or_default(),
                r.value["occurredAt"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("list.membershipAdded".to_owned(), ids[0], joined_at),
            ("list.membershipAdded".to_owned(), ids[1], joined_at),
            ("list.membershipAdded".to_owned(), ids[2], changed_at),
            ("list.membershipRemoved".to_owned(), ids[0], seen_at),
        ]
    );
}
