//! A development Kafka broker: librdkafka's mock cluster, hosted so that pipelines can be run,
//! killed and restarted against a broker that outlives them.
//!
//! rdkafka's `MockCluster` wraps a raw pointer and is not `Send`, so one dedicated OS thread
//! creates it, owns it and applies every change; [`DevBroker`] and the HTTP control API talk to
//! that thread over a bounded channel. The cluster lives as long as the [`DevBroker`] does: the
//! control API holds only a weak link and answers `503` once the broker is gone.
//!
//! What the mock does and does not do, as clients see it:
//! - produce, fetch, consumer groups and committed offsets work; topics are auto-created on first
//!   use (4 partitions) unless created here first. The CreateTopics admin request is not
//!   supported: create topics through [`DevBroker::create_topic`] or `POST /topics`.
//! - a group's first join waits 3 s (like `group.initial.rebalance.delay.ms`). After a member
//!   leaves, the group stays in a rebalance for the members' `session.timeout.ms` less one second,
//!   even when empty, so a restarted consumer waits that long: keep it short in development.
//! - a broker taken down closes its connections and stops listening; leadership does not move,
//!   so its partitions are unavailable until it comes back up on the same port.
//!
//! librdkafka binds every mock broker to `127.0.0.1` on a free port (the listen address is fixed
//! in librdkafka, not configurable), so nothing here is reachable from another machine.
//!
//! Control API (JSON in and out; errors are `{"error": "..."}` with a matching status):
//!
//! | request | effect |
//! |---|---|
//! | `GET /` | bootstrap servers and each broker's state |
//! | `POST /brokers/{id}/down` | close the broker's connections and refuse new ones |
//! | `POST /brokers/{id}/up` | accept connections again, on the same port |
//! | `PUT /brokers/{id}/latency` `{"ms": 300}` | delay every response of that broker |
//! | `GET /topics` | topics the cluster knows, from a metadata request |
//! | `POST /topics` `{"name": "t", "partitions": 3}` | create a topic (`replication_factor` optional) |

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

/// hubsync's default topic names; every deployment can rename them.
pub const DEFAULT_TOPICS: [&str; 11] = [
    "crm.contact.changes",
    "crm.company.changes",
    "crm.activity.events",
    "hubsync.commands",
    "hubsync.outcomes",
    "hubsync.dlq",
    "crm.hubspot.changes",
    "hubsync.replay",
    "hubsync.replay.commands",
    "hubsync.hubspot.webhooks",
    "hubsync.sink.state",
];

/// Partitions of a topic created without saying how many.
pub const DEFAULT_PARTITIONS: i32 = 3;

/// Upper bound on brokers in one mock cluster; a development broker never needs more.
pub const MAX_BROKERS: i32 = 32;

/// Upper bound on partitions per topic; the mock allocates every partition up front.
pub const MAX_PARTITIONS: i32 = 1_000;

/// Upper bound on injected latency; longer than any client timeout worth testing.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// Kafka's own limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Commands waiting for the cluster thread; senders wait when it is full.
const COMMAND_QUEUE: usize = 64;

/// How long `list_topics` waits for any broker to answer a metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);

/// What went wrong, and whose fault it is: the caller's (bad name, unknown broker, topic
/// exists) or the cluster's (stopped, unreachable).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker count must be between 1 and {MAX_BROKERS}, got {0}")]
    BrokerCount(i32),
    #[error("no broker with id {id}: this cluster has brokers 1 to {count}")]
    UnknownBroker { id: i32, count: i32 },
    #[error("invalid topic name {name:?}: {reason}")]
    TopicName { name: String, reason: &'static str },
    #[error("topic {name:?} needs between 1 and {MAX_PARTITIONS} partitions, got {partitions}")]
    Partitions { name: String, partitions: i32 },
    #[error(
        "topic {name:?} asks for replication factor {factor}, but the cluster has {brokers} \
         broker(s): use 1 to {brokers}"
    )]
    Replication {
        name: String,
        factor: i32,
        brokers: i32,
    },
    #[error("latency of {ms} ms is above the {} ms limit", MAX_LATENCY.as_millis())]
    Latency { ms: u128 },
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("the mock cluster could not {action}: {source}")]
    Cluster {
        action: String,
        #[source]
        source: KafkaError,
    },
    #[error(
        "no broker answered a metadata request within {}s; bring a broker up and retry",
        METADATA_TIMEOUT.as_secs()
    )]
    Metadata(#[source] KafkaError),
    #[error("the metadata lookup did not finish: {0}")]
    MetadataTask(#[source] tokio::task::JoinError),
    #[error("could not start the broker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the development broker has stopped")]
    Stopped,
}

impl BrokerError {
    /// The HTTP status the control API answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BrokerCount(_)
            | Self::TopicName { .. }
            | Self::Partitions { .. }
            | Self::Replication { .. }
            | Self::Latency { .. } => StatusCode::BAD_REQUEST,
            Self::UnknownBroker { .. } => StatusCode::NOT_FOUND,
            Self::TopicExists(_) => StatusCode::CONFLICT,
            Self::Metadata(_) | Self::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            Self::Cluster { .. } | Self::MetadataTask(_) | Self::Thread(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    pub name: String,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Defaults to the broker count, at most 3 (librdkafka's own default).
    #[serde(default)]
    pub replication_factor: Option<i32>,
}

fn default_partitions() -> i32 {
    DEFAULT_PARTITIONS
}

impl TopicSpec {
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: None,
        }
    }

    pub fn with_replication_factor(mut self, factor: i32) -> Self {
        self.replication_factor = Some(factor);
        self
    }

    /// The replication factor used on a cluster of `brokers`.
    pub fn replication_for(&self, brokers: i32) -> i32 {
        self.replication_factor.unwrap_or(brokers.min(3))
    }

    /// Checks the name, the partition count and the replication factor against a cluster of
    /// `brokers`.
    pub fn validate(&self, brokers: i32) -> Result<(), BrokerError> {
        validate_topic_name(&self.name)?;
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(BrokerError::Partitions {
                name: self.name.clone(),
                partitions: self.partitions,
            });
        }
        let factor = self.replication_for(brokers);
        if !(1..=brokers).contains(&factor) {
            return Err(BrokerError::Replication {
                name: self.name.clone(),
                factor,
                brokers,
            });
        }
        Ok(())
    }
}

/// Kafka's rules for topic names: 1 to 249 characters from `[a-zA-Z0-9._-]`, and neither `.`
/// nor `..`.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let reason = if name.is_empty() {
        Some("a topic name cannot be empty")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("a topic name has at most 249 characters")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are reserved")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("use only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BrokerError::TopicName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// How many brokers to start and which topics to create before reporting ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub brokers: i32,
    pub topics: Vec<TopicSpec>,
}

impl Default for BrokerConfig {
    /// One broker with hubsync's default topics, [`DEFAULT_PARTITIONS`] partitions each.
    fn default() -> Self {
        Self::new(1).with_default_topics(DEFAULT_PARTITIONS)
    }
}

impl BrokerConfig {
    /// `brokers` brokers and no topics.
    pub fn new(brokers: i32) -> Self {
        Self {
            brokers,
            topics: Vec::new(),
        }
    }

    pub fn with_topic(mut self, topic: TopicSpec) -> Self {
        self.topics.push(topic);
        self
    }

    /// Adds every topic of [`DEFAULT_TOPICS`] with `partitions` partitions.
    pub fn with_default_topics(mut self, partitions: i32) -> Self {
        self.topics.extend(
            DEFAULT_TOPICS
                .iter()
                .map(|name| TopicSpec::new(*name, partitions)),
        );
        self
    }

    pub fn validate(&self) -> Result<(), BrokerError> {
        if !(1..=MAX_BROKERS).contains(&self.brokers) {
            return Err(BrokerError::BrokerCount(self.brokers));
        }
        for (i, topic) in self.topics.iter().enumerate() {
            topic.validate(self.brokers)?;
            if self.topics[..i].iter().any(|t| t.name == topic.name) {
                return Err(BrokerError::TopicExists(topic.name.clone()));
            }
        }
        Ok(())
    }
}

/// One broker as the control API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub id: i32,
    pub up: bool,
    pub latency_ms: u64,
}

/// The cluster as a whole: where to connect and how each broker is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerStatus {
    pub bootstrap_servers: String,
    pub brokers: Vec<BrokerState>,
}

/// A topic the cluster knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
}

/// Position of broker `id` (1-based, as librdkafka numbers mock brokers) in a cluster of `count`.
fn broker_index(id: i32, count: usize) -> Result<usize, BrokerError> {
    let unknown = || BrokerError::UnknownBroker {
        id,
        count: i32::try_from(count).unwrap_or(i32::MAX),
    };
    let index = usize::try_from(id)
        .ok()
        .and_then(|id| id.checked_sub(1))
        .ok_or_else(unknown)?;
    if index < count {
        Ok(index)
    } else {
        Err(unknown())
    }
}

fn latency_ms(latency: Duration) -> Result<u64, BrokerError> {
    if latency > MAX_LATENCY {
        return Err(BrokerError::Latency {
            ms: latency.as_millis(),
        });
    }
    // Bounded by MAX_LATENCY above, so this always fits.
    Ok(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX))
}

/// What the cluster thread is asked to do; each carries where to send the answer.
#[derive(Debug)]
enum Command {
    Status(oneshot::Sender<Vec<BrokerState>>),
    SetUp {
        id: i32,
        up: bool,
        reply: oneshot::Sender<Result<BrokerState, BrokerError>>,
    },
    SetLatency {
        id: i32,
        latency: Duration,
        reply: oneshot::Sender<Result<BrokerState, BrokerError>>,
    },
    CreateTopic {
        topic: TopicSpec,
        reply: oneshot::Sender<Result<TopicInfo, BrokerError>>,
    },
}

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// The body of the cluster thread: creates the cluster and the configured topics, reports the
/// bootstrap servers, then applies commands until every strong sender is gone.
fn host_cluster(
    config: BrokerConfig,
    ready: oneshot::Sender<Result<String, BrokerError>>,
    mut inbox: mpsc::Receiver<Command>,
) {
    let cluster = match open_cluster(&config) {
        Ok(cluster) => cluster,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let mut brokers: Vec<BrokerState> = (1..=config.brokers)
        .map(|id| BrokerState {
            id,
            up: true,
            latency_ms: 0,
        })
        .collect();
    if ready.send(Ok(cluster.bootstrap_servers())).is_err() {
        return;
    }
    while let Some(command) = inbox.blocking_recv() {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(brokers.clone());
            }
            Command::SetUp { id, up, reply } => {
                let _ = reply.send(set_up(&cluster, &mut brokers, id, up));
            }
            Command::SetLatency { id, latency, reply } => {
                let _ = reply.send(set_latency(&cluster, &mut brokers, id, latency));
            }
            Command::CreateTopic { topic, reply } => {
                let _ = reply.send(create_topic(&cluster, config.brokers, &topic));
            }
        }
    }
    drop(cluster);
    debug!("mock cluster destroyed");
}

fn open_cluster(config: &BrokerConfig) -> Result<Cluster, BrokerError> {
    let cluster = MockCluster::new(config.brokers).map_err(|source| BrokerError::Cluster {
        action: format!("start {} broker(s)", config.brokers),
        source,
    })?;
    for topic in &config.topics {
        create_topic(&cluster, config.brokers, topic)?;
    }
    Ok(cluster)
}

fn set_up(
    cluster: &Cluster,
    brokers: &mut [BrokerState],
    id: i32,
    up: bool,
) -> Result<BrokerState, BrokerError> {
    let index = broker_index(id, brokers.len())?;
    let (result, word) = if up {
        (cluster.broker_up(id), "up")
    } else {
        (cluster.broker_down(id), "down")
    };
    result.map_err(|source| BrokerError::Cluster {
        action: format!("take broker {id} {word}"),
        source,
    })?;
    brokers[index].up = up;
    info!(broker = id, "broker {word}");
    Ok(brokers[index])
}

fn set_latency(
    cluster: &Cluster,
    brokers: &mut [BrokerState],
    id: i32,
    latency: Duration,
) -> Result<BrokerState, BrokerError> {
    let index = broker_index(id, brokers.len())?;
    let ms = latency_ms(latency)?;
    cluster
        .broker_round_trip_time(id, latency)
        .map_err(|source| BrokerError::Cluster {
            action: format!("set the latency of broker {id}"),
            source,
        })?;
    brokers[index].latency_ms = ms;
    info!(broker = id, latency_ms = ms, "broker latency set");
    Ok(brokers[index])
}

fn create_topic(
    cluster: &Cluster,
    brokers: i32,
    topic: &TopicSpec,
) -> Result<TopicInfo, BrokerError> {
    topic.validate(brokers)?;
    let factor = topic.replication_for(brokers);
    cluster
        .create_topic(&topic.name, topic.partitions, factor)
        .map_err(|source| match source {
            KafkaError::MockCluster(RDKafkaErrorCode::TopicAlreadyExists) => {
                BrokerError::TopicExists(topic.name.clone())
            }
            source => BrokerError::Cluster {
                action: format!("create topic {:?}", topic.name),
                source,
            },
        })?;
    info!(
        topic = %topic.name,
        partitions = topic.partitions,
        replication_factor = factor,
        "topic created"
    );
    Ok(TopicInfo {
        name: topic.name.clone(),
        partitions: topic.partitions,
        replication_factor: factor,
    })
}

/// Asks the cluster thread and waits for its answer.
async fn ask<T>(
    commands: &mpsc::Sender<Command>,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, BrokerError> {
    let (reply, answer) = oneshot::channel();
    commands
        .send(command(reply))
        .await
        .map_err(|_| BrokerError::Stopped)?;
    answer.await.map_err(|_| BrokerError::Stopped)
}

async fn status(
    commands: &mpsc::Sender<Command>,
    bootstrap: &str,
) -> Result<BrokerStatus, BrokerError> {
    let brokers = ask(commands, Command::Status).await?;
    Ok(BrokerStatus {
        bootstrap_servers: bootstrap.to_string(),
        brokers,
    })
}

/// Lists topics as a client sees them, so topics that clients auto-created are included. The
/// mock cluster has no listing call of its own, hence a short-lived metadata client.
async fn list_topics(bootstrap: &str) -> Result<Vec<TopicInfo>, BrokerError> {
    let bootstrap = bootstrap.to_string();
    tokio::task::spawn_blocking(move || fetch_topics(&bootstrap))
        .await
        .map_err(BrokerError::MetadataTask)?
}

fn fetch_topics(bootstrap: &str) -> Result<Vec<TopicInfo>, BrokerError> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "hubsync-dev-broker-control")
        .create()
        .map_err(BrokerError::Metadata)?;
    let metadata = client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(BrokerError::Metadata)?;
    let mut topics: Vec<TopicInfo> = metadata
        .topics()
        .iter()
        .map(|topic| TopicInfo {
            name: topic.name().to_string(),
            partitions: i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX),
            replication_factor: topic
                .partitions()
                .first()
                .map_or(0, |p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX)),
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// A running mock cluster. Dropping it stops the cluster in the background; [`DevBroker::shutdown`]
/// also waits until the cluster is gone.
#[derive(Debug)]
pub struct DevBroker {
    commands: mpsc::Sender<Command>,
    bootstrap: Arc<str>,
    broker_count: i32,
    thread: std::thread::JoinHandle<()>,
}

impl DevBroker {
    /// Starts the cluster on a thread of its own, creates the configured topics, and returns once
    /// clients can connect.
    pub async fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        config.validate()?;
        let broker_count = config.brokers;
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let (ready, started) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("hubsync-dev-broker".to_string())
            .spawn(move || host_cluster(config, ready, inbox))
            .map_err(BrokerError::Thread)?;
        // An error means the thread has already returned; its handle can simply be dropped.
        let bootstrap = started.await.map_err(|_| BrokerError::Stopped)??;
        info!(bootstrap_servers = %bootstrap, brokers = broker_count, "development broker started");
        Ok(Self {
            commands,
            bootstrap: Arc::from(bootstrap),
            broker_count,
            thread,
        })
    }

    /// `host:port,host:port` of every broker, all on 127.0.0.1.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn broker_count(&self) -> i32 {
        self.broker_count
    }

    /// A consumer of `topic` from its beginning, in a group of its own that commits nothing:
    /// for tests and benches reading what a pipeline wrote. Panics when it cannot be made.
    pub fn reader(&self, topic: &str) -> rdkafka::consumer::StreamConsumer {
        use rdkafka::consumer::Consumer;
        let consumer: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .set(
                "group.id",
                format!("reader-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("a reader of the development broker");
        consumer.subscribe(&[topic]).expect("the reader subscribes");
        consumer
    }

    pub async fn status(&self) -> Result<BrokerStatus, BrokerError> {
        status(&self.commands, &self.bootstrap).await
    }

    /// Closes broker `id`'s connections and refuses new ones until [`DevBroker::broker_up`].
    /// Partition leadership does not move.
    pub async fn broker_down(&self, id: i32) -> Result<BrokerState, BrokerError> {
        ask(&self.commands, |reply| Command::SetUp {
            id,
            up: false,
            reply,
        })
        .await?
    }

    /// Lets broker `id` accept connections again, on the same port.
    pub async fn broker_up(&self, id: i32) -> Result<BrokerState, BrokerError> {
        ask(&self.commands, |reply| Command::SetUp {
            id,
            up: true,
            reply,
        })
        .await?
    }

    /// Delays every response of broker `id` by `latency`; zero removes the delay.
    pub async fn set_latency(
        &self,
        id: i32,
        latency: Duration,
    ) -> Result<BrokerState, BrokerError> {
        ask(&self.commands, |reply| Command::SetLatency {
            id,
            latency,
            reply,
        })
        .await?
    }

    pub async fn create_topic(&self, topic: TopicSpec) -> Result<TopicInfo, BrokerError> {
        ask(&self.commands, |reply| Command::CreateTopic {
            topic,
            reply,
        })
        .await?
    }

    /// Topics the cluster knows, sorted by name; needs at least one broker up.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, BrokerError> {
        list_topics(&self.bootstrap).await
    }

    /// The HTTP control API (see the module docs). It keeps no broker alive: once this
    /// `DevBroker` is dropped or shut down, every route answers `503`.
    pub fn control_router(&self) -> Router {
        let control = Control {
            commands: self.commands.downgrade(),
            bootstrap: Arc::clone(&self.bootstrap),
        };
        Router::new()
            .route("/", get(get_status))
            .route("/brokers/{id}/down", post(post_down))
            .route("/brokers/{id}/up", post(post_up))
            .route("/brokers/{id}/latency", put(put_latency))
            .route("/topics", get(get_topics).post(post_topic))
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .with_state(control)
    }

    /// Stops the cluster and waits until its brokers have closed their ports.
    pub async fn shutdown(self) {
        let Self {
            commands, thread, ..
        } = self;
        drop(commands);
        // The thread ends as soon as it sees the channel closed; joining does not wait long.
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => info!("development broker stopped"),
            Ok(Err(_)) => tracing::error!("the broker thread panicked"),
            Err(error) => tracing::error!(%error, "could not wait for the broker thread"),
        }
    }
}

/// What the control API's handlers share: a weak link to the cluster thread.
#[derive(Debug, Clone)]
struct Control {
    commands: mpsc::WeakSender<Command>,
    bootstrap: Arc<str>,
}

impl Control {
    fn commands(&self) -> Result<mpsc::Sender<Command>, ControlError> {
        self.commands
            .upgrade()
            .ok_or(ControlError::Broker(BrokerError::Stopped))
    }
}

/// Why a control request failed; answered as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("broker id must be an integer, got {0:?}")]
    BrokerId(String),
    #[error("invalid request body: {0}")]
    Body(#[from] serde_json::Error),
    #[error("no route for {method} {uri}; routes are {ROUTES}")]
    NoRoute { method: String, uri: String },
    #[error("{uri} does not take {method}; routes are {ROUTES}")]
    WrongMethod { method: String, uri: String },
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Broker(error) => error.status(),
            Self::BrokerId(_) | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::WrongMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
        };
        let body = serde_json::json!({ "error": self.to_string() });
        (status, Json(body)).into_response()
    }
}

type ControlResult<T> = Result<T, ControlError>;

/// Named in the answer to a request that matches no route.
const ROUTES: &str = "GET /, POST /brokers/{id}/down, POST /brokers/{id}/up, \
                      PUT /brokers/{id}/latency, GET /topics, POST /topics";

fn parse_id(id: &str) -> ControlResult<i32> {
    id.parse()
        .map_err(|_| ControlError::BrokerId(id.to_string()))
}

async fn get_status(State(control): State<Control>) -> ControlResult<Json<BrokerStatus>> {
    let commands = control.commands()?;
    Ok(Json(status(&commands, &control.bootstrap).await?))
}

async fn post_down(
    State(control): State<Control>,
    Path(id): Path<String>,
) -> ControlResult<Json<BrokerState>> {
    let id = parse_id(&id)?;
    let commands = control.commands()?;
    Ok(Json(
        ask(&commands, |reply| Command::SetUp {
            id,
            up: false,
            reply,
        })
        .await??,
    ))
}

async fn post_up(
    State(control): State<Control>,
    Path(id): Path<String>,
) -> ControlResult<Json<BrokerState>> {
    let id = parse_id(&id)?;
    let commands = control.commands()?;
    Ok(Json(
        ask(&commands, |reply| Command::SetUp {
            id,
            up: true,
            reply,
        })
        .await??,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyBody {
    ms: u64,
}

async fn put_latency(
    State(control): State<Control>,
    Path(id): Path<String>,
    body: Bytes,
) -> ControlResult<Json<BrokerState>> {
    let id = parse_id(&id)?;
    let body: LatencyBody = serde_json::from_slice(&body)?;
    let latency = Duration::from_millis(body.ms);
    let commands = control.commands()?;
    Ok(Json(
        ask(&commands, |reply| Command::SetLatency {
            id,
            latency,
            reply,
        })
        .await??,
    ))
}

#[derive(Debug, Serialize)]
struct TopicList {
    topics: Vec<TopicInfo>,
}

async fn get_topics(State(control): State<Control>) -> ControlResult<Json<TopicList>> {
    // Held across the lookup so the cluster cannot stop underneath it.
    let _commands = control.commands()?;
    let topics = list_topics(&control.bootstrap).await?;
    Ok(Json(TopicList { topics }))
}

async fn post_topic(
    State(control): State<Control>,
    body: Bytes,
) -> ControlResult<(StatusCode, Json<TopicInfo>)> {
    let topic: TopicSpec = serde_json::from_slice(&body)?;
    let commands = control.commands()?;
    let created = ask(&commands, |reply| Command::CreateTopic { topic, reply }).await??;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn no_route(method: Method, uri: Uri) -> ControlError {
    ControlError::NoRoute {
        method: method.to_string(),
        uri: uri.to_string(),
    }
}

async fn wrong_method(method: Method, uri: Uri) -> ControlError {
    ControlError::WrongMethod {
        method: method.to_string(),
        uri: uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{RunningServer, loopback};

    #[test]
    fn topic_names_follow_kafka_rules() {
        for good in ["crm.contact.changes", "a", "A-b_c.9", &"x".repeat(249)] {
            assert!(
                validate_topic_name(good).is_ok(),
                "{good:?} should be valid"
            );
        }
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "slash/name",
            "ümlaut",
            &"x".repeat(250),
        ] {
            assert!(
                matches!(validate_topic_name(bad), Err(BrokerError::TopicName { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn default_topics_are_valid_names() {
        for name in DEFAULT_TOPICS {
            assert!(validate_topic_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn replication_defaults_to_broker_count_capped_at_three() {
        let topic = TopicSpec::new("t", 1);
        assert_eq!(topic.replication_for(1), 1);
        assert_eq!(topic.replication_for(2), 2);
        assert_eq!(topic.replication_for(5), 3);
        assert_eq!(topic.with_replication_factor(2).replication_for(5), 2);
    }

    #[test]
    fn topic_spec_rejects_bad_partitions_and_replication() {
        assert!(matches!(
            TopicSpec::new("t", 0).validate(1),
            Err(BrokerError::Partitions { partitions: 0, .. })
        ));
        assert!(matches!(
            TopicSpec::new("t", MAX_PARTITIONS + 1).validate(1),
            Err(BrokerError::Partitions { .. })
        ));
        assert!(matches!(
            TopicSpec::new("t", 1)
                .with_replication_factor(2)
                .validate(1),
            Err(BrokerError::Replication {
                factor: 2,
                brokers: 1,
                ..
            })
        ));
        assert!(matches!(
            TopicSpec::new("t", 1)
                .with_replication_factor(0)
                .validate(3),
            Err(BrokerError::Replication { .. })
        ));
        assert!(
            TopicSpec::new("t", 1)
                .with_replication_factor(3)
                .validate(3)
                .is_ok()
        );
    }

    #[test]
    fn config_rejects_bad_broker_counts_and_repeated_topics() {
        assert!(BrokerConfig::default().validate().is_ok());
        assert_eq!(BrokerConfig::default().topics.len(), DEFAULT_TOPICS.len());
        assert!(matches!(
            BrokerConfig::new(0).validate(),
            Err(BrokerError::BrokerCount(0))
        ));
        assert!(matches!(
            BrokerConfig::new(MAX_BROKERS + 1).validate(),
            Err(BrokerError::BrokerCount(_))
        ));
        let repeated = BrokerConfig::new(1)
            .with_topic(TopicSpec::new("t", 1))
            .with_topic(TopicSpec::new("t", 2));
        assert!(matches!(repeated.validate(), Err(BrokerError::TopicExists(name)) if name == "t"));
    }

    #[test]
    fn broker_ids_are_one_based() {
        assert_eq!(broker_index(1, 3).ok(), Some(0));
        assert_eq!(broker_index(3, 3).ok(), Some(2));
        for id in [0, 4, -1, i32::MIN, i32::MAX] {
            assert!(
                matches!(
                    broker_index(id, 3),
                    Err(BrokerError::UnknownBroker { count: 3, .. })
                ),
                "{id}"
            );
        }
    }

    #[test]
    fn latency_is_bounded() {
        assert_eq!(latency_ms(Duration::from_millis(300)).ok(), Some(300));
        assert_eq!(latency_ms(Duration::ZERO).ok(), Some(0));
        assert!(latency_ms(MAX_LATENCY).is_ok());
        assert!(matches!(
            latency_ms(MAX_LATENCY + Duration::from_millis(1)),
            Err(BrokerError::Latency { .. })
        ));
    }

    #[test]
    fn topic_body_defaults_partitions_and_refuses_unknown_fields() {
        let topic: TopicSpec = serde_json::from_str(r#"{"name":"t"}"#).expect("minimal body");
        assert_eq!(topic, TopicSpec::new("t", DEFAULT_PARTITIONS));
        assert!(serde_json::from_str::<TopicSpec>(r#"{"name":"t","partition":2}"#).is_err());
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(
            BrokerError::BrokerCount(0).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            BrokerError::UnknownBroker { id: 9, count: 1 }.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            BrokerError::TopicExists("t".into()).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            BrokerError::Stopped.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = request.send().await.expect("control api answers");
        let status = response.status().as_u16();
        let body = response.json().await.expect("control api answers json");
        (status, body)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn control_api_drives_the_cluster() {
        let broker = DevBroker::start(BrokerConfig::new(2).with_topic(TopicSpec::new("seeded", 2)))
            .await
            .expect("broker starts");
        assert!(
            broker
                .bootstrap_servers()
                .split(',')
                .all(|s| s.starts_with("127.0.0.1:"))
        );
        let server = RunningServer::spawn(broker.control_router(), loopback(0))
            .await
            .expect("control api binds");
        let url = server.url();
        let http = reqwest::Client::new();

        let (code, status) = send(http.get(format!("{url}/"))).await;
        assert_eq!(code, 200);
        assert_eq!(status["bootstrap_servers"], broker.bootstrap_servers());
        assert_eq!(status["brokers"].as_array().map(Vec::len), Some(2));

        let (code, created) = send(
            http.post(format!("{url}/topics"))
                .json(&serde_json::json!({"name": "made", "partitions": 4})),
        )
        .await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["replication_factor"], 2);
        let (code, again) = send(
            http.post(format!("{url}/topics"))
                .json(&serde_json::json!({"name": "made", "partitions": 4})),
        )
        .await;
        assert_eq!(code, 409, "{again}");
        assert!(
            again["error"]
                .as_str()
                .is_some_and(|m| m.contains("already exists"))
        );

        let (code, listed) = send(http.get(format!("{url}/topics"))).await;
        assert_eq!(code, 200, "{listed}");
        let topics: Vec<TopicInfo> =
            serde_json::from_value(listed["topics"].clone()).expect("topic list");
        assert!(topics.contains(&TopicInfo {
            name: "made".into(),
            partitions: 4,
            replication_factor: 2
        }));
        assert!(
            topics
                .iter()
                .any(|t| t.name == "seeded" && t.partitions == 2)
        );

        let (code, down) = send(http.post(format!("{url}/brokers/2/down"))).await;
        assert_eq!((code, &down["up"]), (200, &serde_json::json!(false)));
        let (code, slow) = send(
            http.put(format!("{url}/brokers/1/latency"))
                .json(&serde_json::json!({"ms": 25})),
        )
        .await;
        assert_eq!((code, &slow["latency_ms"]), (200, &serde_json::json!(25)));
        let status = broker.status().await.expect("status");
        assert_eq!(
            status.brokers,
            vec![
                BrokerState {
                    id: 1,
                    up: true,
                    latency_ms: 25
                },
                BrokerState {
                    id: 2,
                    up: false,
                    latency_ms: 0
                },
            ]
        );
        let (code, _) = send(http.post(format!("{url}/brokers/2/up"))).await;
        assert_eq!(code, 200);

        for (request, expected) in [
            (http.post(format!("{url}/brokers/3/down")), 404),
            (http.post(format!("{url}/brokers/one/down")), 400),
            (
                http.put(format!("{url}/brokers/1/latency"))
                    .body("{\"ms\":"),
                400,
            ),
            (
                http.put(format!("{url}/brokers/1/latency"))
                    .json(&serde_json::json!({"ms": 3_600_000})),
                400,
            ),
            (
                http.post(format!("{url}/topics"))
                    .json(&serde_json::json!({"name": "bad name"})),
                400,
            ),
            (http.get(format!("{url}/nowhere")), 404),
            (http.delete(format!("{url}/topics")), 405),
        ] {
            let (code, body) = send(request).await;
            assert_eq!(code, expected, "{body}");
            assert!(body["error"].is_string(), "{body}");
        }

        broker.shutdown().await;
        let (code, body) = send(http.get(format!("{url}/"))).await;
        assert_eq!(code, 503, "{body}");
        server.shutdown().await.expect("control api stops");
    }
}
