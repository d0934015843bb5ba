//! End-to-end: `hubsync-dev dev-broker` runs as its own process, and real rdkafka clients produce,
//! consume and commit against it while the control API takes brokers down and slows them.
//!
//! Every test starts its own broker process (a guard kills it on drop) and uses fresh topic and
//! group names, so tests run in parallel without seeing each other.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use hubsync_sandbox::broker::{DEFAULT_TOPICS, TopicInfo};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

mod support;

/// Generous bounds for a loaded 2-core machine; tests finish far sooner when things work.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(15);

/// A `hubsync-dev dev-broker` child process and the endpoints it printed; killed on drop.
struct DevBrokerProcess {
    child: support::Child,
    brokers: String,
    control_url: String,
}

impl DevBrokerProcess {
    async fn spawn(args: &[&str]) -> Self {
        let mut all = vec!["dev-broker"];
        all.extend_from_slice(args);
        let mut child = support::Child::spawn_dev(&all);
        let env = child
            .read_env(&["HUBSYNC_KAFKA_BROKERS", "HUBSYNC_BROKER_CONTROL_URL"])
            .await;
        let process = Self {
            child,
            brokers: env["HUBSYNC_KAFKA_BROKERS"].clone(),
            control_url: env["HUBSYNC_BROKER_CONTROL_URL"].clone(),
        };
        assert!(
            process.control_url.starts_with("http://127.0.0.1:"),
            "{}",
            process.control_url
        );
        for server in process.brokers.split(',') {
            assert!(
                server.starts_with("127.0.0.1:"),
                "broker on loopback: {server}"
            );
        }
        process
    }

    async fn terminate(&mut self) -> ExitStatus {
        self.child.terminate(support::STARTUP_TIMEOUT).await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request =
            reqwest::Client::new().request(method.clone(), format!("{}{path}", self.control_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control API answers");
        let status = response.status();
        let body: Value = response.json().await.expect("control API answers JSON");
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        self.control(
            reqwest::Method::POST,
            "/topics",
            Some(json!({"name": name, "partitions": partitions})),
        )
        .await;
    }

    fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config.create().expect("producer")
    }

    /// A group member that commits only when told to. The short session timeout matters: once a
    /// member leaves, the mock cluster holds the group in a rebalance for the session timeout
    /// less a second, even with nobody left in it (librdkafka's default would make that 44 s).
    fn consumer(&self, group: &str) -> StreamConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "3000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .expect("consumer")
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Produces one record and waits for the broker's answer: `(partition, offset)`.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &str,
) -> Result<(i32, i64), KafkaError> {
    let record = FutureRecord::to(topic).key(key).payload(payload);
    producer
        .send(record, KAFKA_TIMEOUT)
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(error, _message)| error)
}

/// Receives the next message as `(partition, offset, key, payload)`, within `deadline`.
async fn next_message(
    consumer: &StreamConsumer,
    deadline: tokio::time::Instant,
) -> (i32, i64, String, String) {
    let message = tokio::time::timeout_at(deadline, consumer.recv())
        .await
        .expect("message arrives before the deadline")
        .expect("consumer receives without error");
    let text =
        |bytes: Option<&[u8]>| String::from_utf8(bytes.expect("present").to_vec()).expect("utf-8");
    (
        message.partition(),
        message.offset(),
        text(message.key()),
        text(message.payload()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_commits_survive_a_new_member() {
    const FIRST: usize = 30;
    const LATER: usize = 10;
    let broker = DevBrokerProcess::spawn(&["--topic", "unused.seed.topic"]).await;
    let topic = unique("e2e-groups");
    let group = unique("e2e-group");
    broker.create_topic(&topic, 3).await;

    let producer = broker.producer(&[("message.timeout.ms", "15000")]);
    let mut partitions = BTreeSet::new();
    for i in 0..FIRST {
        let (partition, _) = produce(
            &producer,
            &topic,
            &format!("key-{i}"),
            &format!("payload-{i}"),
        )
        .await
        .expect("delivered");
        partitions.insert(partition);
    }
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );

    // First member: read everything, check it, commit synchronously.
    let first = broker.consumer(&group);
    first.subscribe(&[&topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + CONSUME_TIMEOUT;
    let mut seen = BTreeMap::new();
    let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
    while seen.len() < FIRST {
        let (partition, offset, key, payload) = next_message(&first, deadline).await;
        let index = key.strip_prefix("key-").expect("an early key");
        assert_eq!(payload, format!("payload-{index}"));
        assert!(seen.insert(key, payload).is_none(), "no duplicates");
        let next = next_offsets.entry(partition).or_default();
        *next = (*next).max(offset + 1);
    }
    let mut commit = TopicPartitionList::new();
    for (partition, offset) in &next_offsets {
        commit
            .add_partition_offset(&topic, *partition, Offset::Offset(*offset))
            .expect("offset");
    }
    first.commit(&commit, CommitMode::Sync).expect("commit");
    let committed_by_first = first
        .committed(KAFKA_TIMEOUT)
        .expect("committed")
        .to_topic_map();
    assert_eq!(committed_by_first, commit.to_topic_map());
    drop(first);

    // Second member of the same group: sees the commit, then only what is produced after it.
    let second = broker.consumer(&group);
    let mut query = TopicPartitionList::new();
    for partition in next_offsets.keys() {
        query.add_partition(&topic, *partition);
    }
    let committed = second
        .committed_offsets(query, KAFKA_TIMEOUT)
        .expect("committed offsets");
    assert_eq!(committed.to_topic_map(), commit.to_topic_map());

    for i in 0..LATER {
        produce(
            &producer,
            &topic,
            &format!("late-{i}"),
            &format!("late-payload-{i}"),
        )
        .await
        .expect("delivered");
    }
    second.subscribe(&[&topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + CONSUME_TIMEOUT;
    let mut late = BTreeSet::new();
    // Within a partition old records come before new ones, so had the group restarted from
    // the beginning, an early key would show up before the last new one.
    while late.len() < LATER {
        let (partition, offset, key, payload) = next_message(&second, deadline).await;
        let index = key
            .strip_prefix("late-")
            .unwrap_or_else(|| panic!("only new records after the commit, got {key}"));
        assert_eq!(payload, format!("late-payload-{index}"));
        let from = next_offsets.get(&partition).copied().unwrap_or(0);
        assert!(
            offset >= from,
            "offset {offset} on {partition} is past the commit {from}"
        );
        assert!(late.insert(key), "no duplicates");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_fails_produce_and_up_restores_it() {
    let topic = unique("e2e-down");
    let broker = DevBrokerProcess::spawn(&["--topic", &topic, "--partitions", "1"]).await;
    let producer = broker.producer(&[
        ("message.timeout.ms", "1500"),
        ("reconnect.backoff.ms", "50"),
        ("reconnect.backoff.max.ms", "250"),
    ]);
    produce(&producer, &topic, "k", "before")
        .await
        .expect("delivered while up");

    let state = broker
        .control(reqwest::Method::POST, "/brokers/1/down", None)
        .await;
    assert_eq!(state["up"], json!(false));
    let status = broker.control(reqwest::Method::GET, "/", None).await;
    assert_eq!(status["brokers"][0]["up"], json!(false));
    let failed = produce(&producer, &topic, "k", "while-down").await;
    assert!(
        failed.is_err(),
        "a produce to a down broker fails: {failed:?}"
    );

    let state = broker
        .control(reqwest::Method::POST, "/brokers/1/up", None)
        .await;
    assert_eq!(state["up"], json!(true));
    // The producer reconnects on its own schedule; retry until it does or the deadline passes.
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match produce(&producer, &topic, "k", &format!("after-{attempt}")).await {
            Ok(_) => break,
            Err(error) => assert!(
                Instant::now() < deadline,
                "produce still failing {CONSUME_TIMEOUT:?} after the broker came up: {error}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_slows_a_round_trip_and_resets() {
    const LATENCY: Duration = Duration::from_millis(300);
    let topic = unique("e2e-latency");
    let broker = DevBrokerProcess::spawn(&["--topic", &topic]).await;
    let producer = broker.producer(&[]);
    // Connect and learn the topic's metadata before timing anything.
    produce(&producer, &topic, "k", "warm-up")
        .await
        .expect("delivered");

    let ms = u64::try_from(LATENCY.as_millis()).expect("small");
    let state = broker
        .control(
            reqwest::Method::PUT,
            "/brokers/1/latency",
            Some(json!({"ms": ms})),
        )
        .await;
    assert_eq!(state["latency_ms"], json!(ms));
    let started = Instant::now();
    produce(&producer, &topic, "k", "slow")
        .await
        .expect("delivered");
    let took = started.elapsed();
    assert!(
        took >= LATENCY,
        "round trip took {took:?}, expected at least {LATENCY:?}"
    );

    let state = broker
        .control(
            reqwest::Method::PUT,
            "/brokers/1/latency",
            Some(json!({"ms": 0})),
        )
        .await;
    assert_eq!(state["latency_ms"], json!(0));
    produce(&producer, &topic, "k", "fast again")
        .await
        .expect("delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_topics_exist_and_sigterm_stops_cleanly() {
    let mut broker = DevBrokerProcess::spawn(&["--partitions", "2"]).await;
    let listed = broker.control(reqwest::Method::GET, "/topics", None).await;
    let topics: Vec<TopicInfo> =
        serde_json::from_value(listed["topics"].clone()).expect("topic list");
    for name in DEFAULT_TOPICS {
        assert!(
            topics.iter().any(|t| t.name == name && t.partitions == 2),
            "{name} missing from {topics:?}"
        );
    }

    let status = broker.terminate().await;
    assert!(status.success(), "exit after SIGTERM: {status}");
}
