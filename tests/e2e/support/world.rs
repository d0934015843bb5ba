//! An in-process world for pipeline tests: the development broker, the schema registry and the
//! HubSpot sandbox, a configuration pointing at them, and helpers to publish upstream events and
//! collect what the pipeline emits.

use std::collections::HashMap;
use std::time::Duration;

use hubsync::codec::{AvroCodec, RegistryClient};
use hubsync::config::{Config, Secrets};
use hubsync_dev::sandbox_config::render_sandbox_config;
use hubsync_sandbox::broker::{BrokerConfig, DevBroker, TopicSpec};
use hubsync_sandbox::hubspot::{DEFAULT_TOKEN, HubSpotSandbox, Portals, SandboxOptions};
use hubsync_sandbox::registry::SchemaRegistry;
use hubsync_sandbox::server::{RunningServer, loopback};
use hubsync_schemas::{AvroRecord, DeadLetter, SchemaKind, SyncOutcome, default_subject};
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

pub struct World {
    pub broker: DevBroker,
    pub registry: RunningServer,
    /// The first portal: the one the configuration's team writes to.
    pub hubspot: HubSpotSandbox,
    /// Every portal of the sandbox, behind one base URL.
    pub portals: Portals,
    pub hubspot_server: RunningServer,
    pub config: Config,
    config_text: String,
    pub secrets: Secrets,
    pub codec: AvroCodec,
    pub state_dir: tempfile::TempDir,
    producer: FutureProducer,
}

impl World {
    /// Every topic with one partition (so order across keys is easy to reason about in tests)
    /// unless `partitions` says otherwise; `edit` adjusts the configuration text.
    pub async fn start(
        options: SandboxOptions,
        partitions: i32,
        edit: impl FnOnce(String) -> String,
    ) -> World {
        Self::start_portals(vec![options], partitions, edit).await
    }

    /// [`World::start`] with several portals behind the one HubSpot URL (each answers the tokens
    /// of its options); the configuration's team writes to the first.
    pub async fn start_portals(
        portals: Vec<SandboxOptions>,
        partitions: i32,
        edit: impl FnOnce(String) -> String,
    ) -> World {
        // `HUBSYNC_LOG=debug cargo test ...` shows the pipeline's logs of a failing test.
        if let Ok(filter) = std::env::var("HUBSYNC_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let mut broker_config = BrokerConfig::new(1);
        for topic in hubsync_sandbox::broker::DEFAULT_TOPICS {
            broker_config = broker_config.with_topic(TopicSpec::new(topic, partitions));
        }
        let broker = DevBroker::start(broker_config).await.expect("broker");
        let registry = SchemaRegistry::new()
            .serve(loopback(0))
            .await
            .expect("registry");
        let portals = Portals::new(portals);
        let hubspot = portals.all().first().expect("a portal").clone();
        let hubspot_server = portals.serve(loopback(0)).await.expect("hubspot");
        let state_dir = tempfile::tempdir().expect("state dir");
        let text = render_sandbox_config(
            broker.bootstrap_servers(),
            &registry.url(),
            &hubspot_server.url(),
            hubspot.portal_id(),
            "TEST_HUBSPOT_TOKEN",
        );
        let text = text.replace(
            "dir = \"hubsync-state\"",
            &format!("dir = {:?}", state_dir.path().display().to_string()),
        );
        let text = text.replace(
            "group_id_prefix = \"hubsync-sandbox\"\n",
            &format!(
                "group_id_prefix = \"t{}\"\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
                uuid::Uuid::new_v4().simple()
            ),
        );
        let mut text = edit(text);
        // Tests write each record within a quarter second unless they set their own linger.
        if !text.contains("[stages.sink]") {
            text = text.replace("[state]\n", "[stages.sink]\nlinger = \"250ms\"\n[state]\n");
        }
        let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let secrets = config
            .resolve_secrets_with(&|name| {
                (name == "TEST_HUBSPOT_TOKEN").then(|| DEFAULT_TOKEN.to_string())
            })
            .expect("secrets");
        let registry_client = RegistryClient::new(&config.registry, None).expect("registry client");
        let codec = AvroCodec::new(registry_client, 100).expect("codec");
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .create()
            .expect("producer");
        World {
            broker,
            registry,
            hubspot,
            portals,
            hubspot_server,
            config,
            config_text: text,
            secrets,
            codec,
            state_dir,
            producer,
        }
    }

    /// A service file for this world (teams in `teams/` beside it): state under `dir/state`,
    /// consumer groups under `group`, short sessions, a 200 ms linger, the admin endpoint on
    /// a free port.
    pub fn service_text(&self, dir: &std::path::Path, group: &str) -> String {
        hubsync_dev::sandbox_config::render_sandbox_service(
            self.broker.bootstrap_servers(),
            &self.registry.url(),
            &self.hubspot_server.url(),
        )
        .replace(
            "dir = \"hubsync-state\"",
            &format!("dir = {:?}", dir.join("state").display().to_string()),
        )
        .replace(
            "group_id_prefix = \"hubsync-sandbox\"\n",
            &format!(
                "group_id_prefix = \"{group}\"\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n"
            ),
        )
        .replace(
            "[state]\n",
            "[stages.sink]\nlinger = \"200ms\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[state]\n",
        )
    }

    /// The configuration as TOML, for a pipeline run as a child process (its token is read from
    /// `TEST_HUBSPOT_TOKEN`).
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// Publishes an upstream record, Avro-encoded under its topic's value subject.
    pub async fn publish<T: AvroRecord>(
        &self,
        kind: SchemaKind,
        topic: &str,
        key: &str,
        record: &T,
    ) {
        let payload = self.encode(kind, topic, record).await;
        self.publish_raw(topic, key, &payload).await;
    }

    /// A record Avro-encoded under its topic's value subject, as upstream services publish it.
    pub async fn encode<T: AvroRecord>(
        &self,
        kind: SchemaKind,
        topic: &str,
        record: &T,
    ) -> Vec<u8> {
        let writer = self
            .codec
            .writer(kind, &default_subject(topic))
            .await
            .expect("writer");
        writer.encode(record).expect("encode")
    }

    /// Publishes an Avro record with headers; returns its encoded bytes.
    pub async fn publish_with_headers<T: AvroRecord>(
        &self,
        kind: SchemaKind,
        topic: &str,
        key: &str,
        record: &T,
        headers: &[(&str, &str)],
    ) -> Vec<u8> {
        let payload = self.encode(kind, topic, record).await;
        let mut owned = rdkafka::message::OwnedHeaders::new();
        for (name, value) in headers {
            owned = owned.insert(rdkafka::message::Header {
                key: name,
                value: Some(*value),
            });
        }
        self.producer
            .send(
                FutureRecord::to(topic)
                    .key(key)
                    .payload(&payload)
                    .headers(owned),
                Duration::from_secs(10),
            )
            .await
            .expect("publish");
        payload
    }

    /// Publishes raw bytes, for malformed input.
    pub async fn publish_raw(&self, topic: &str, key: &str, payload: &[u8]) {
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("publish");
    }

    /// A consumer of `topic` from its start, in a group of its own.
    fn reader(&self, topic: &str) -> StreamConsumer {
        self.broker.reader(topic)
    }

    /// Reads `topic` from the start until `until` holds for the records read so far or the
    /// deadline passes; returns what was read.
    pub async fn read_until<T: AvroRecord>(
        &self,
        topic: &str,
        timeout: Duration,
        until: impl Fn(&[T]) -> bool,
    ) -> Vec<T> {
        let consumer = self.reader(topic);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut records = Vec::new();
        while !until(&records) {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => {
                    let bytes = message.payload().unwrap_or_default();
                    records.push(self.codec.decode::<T>(bytes).await.expect("decode"));
                }
                Ok(Err(error)) => panic!("consumer error: {error}"),
                Err(_) => break,
            }
        }
        records
    }

    /// Outcomes by event id, waiting until every id in `events` has one (or the timeout).
    pub async fn outcomes_for(
        &self,
        events: &[String],
        timeout: Duration,
    ) -> HashMap<String, Vec<SyncOutcome>> {
        let mut waiting: std::collections::HashSet<&str> =
            events.iter().map(String::as_str).collect();
        let consumer = self.reader(&self.config.topics.outcomes);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut by_event: HashMap<String, Vec<SyncOutcome>> = HashMap::new();
        while !waiting.is_empty() {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => {
                    let bytes = message.payload().unwrap_or_default();
                    let outcome: SyncOutcome = self.codec.decode(bytes).await.expect("decode");
                    waiting.remove(outcome.event_id.as_str());
                    by_event
                        .entry(outcome.event_id.clone())
                        .or_default()
                        .push(outcome);
                }
                Ok(Err(error)) => panic!("consumer error: {error}"),
                Err(_) => break,
            }
        }
        by_event
    }

    /// Publishes many encoded `(topic, key, payload)` records at once (up to a thousand in
    /// flight, handed to the producer in the order given), for tests of size.
    pub async fn publish_many(&self, records: &[(String, String, Vec<u8>)]) {
        use futures::StreamExt;
        futures::stream::iter(records)
            .map(|(topic, key, payload)| {
                self.producer.send(
                    FutureRecord::to(topic).key(key).payload(payload),
                    Duration::from_secs(30),
                )
            })
            .buffer_unordered(1_000)
            .for_each(|sent| async move {
                sent.expect("publish");
            })
            .await;
    }

    pub async fn dead_letters(&self, at_least: usize, timeout: Duration) -> Vec<DeadLetter> {
        self.read_until(&self.config.topics.dlq, timeout, |read: &[DeadLetter]| {
            read.len() >= at_least
        })
        .await
    }

    /// Creates a record as a HubSpot user would (admin API); returns its id.
    pub async fn http_admin_create(
        &self,
        object_type: &str,
        properties: serde_json::Value,
    ) -> String {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!(
                "{}/__admin/objects/{object_type}",
                self.hubspot_server.url()
            ))
            .json(&serde_json::json!({ "properties": properties }))
            .send()
            .await
            .expect("admin create")
            .json()
            .await
            .expect("json");
        answer["id"].as_str().expect("id").to_string()
    }

    /// The sandbox's live records of a type, by property value.
    pub fn records(
        &self,
        object_type: hubsync_sandbox::hubspot::model::ObjectType,
    ) -> Vec<serde_json::Value> {
        self.hubspot.snapshot(object_type)
    }
}
