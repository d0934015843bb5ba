//! One process holding everything a pipeline talks to: the development broker, the schema
//! registry and the HubSpot sandbox on loopback, plus a configuration pointing at them.
//!
//! Every HubSpot request is also recorded on its way in (endpoint, arrival, status, number of
//! batch inputs), so the figures can say when the first write arrived and how full each batch
//! was without trusting the client's own account.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hubsync::codec::{AvroCodec, RegistryClient};
use hubsync::config::{Config, Secrets};
use hubsync_hubspot::Tier;
use hubsync_sandbox::broker::{BrokerConfig, DEFAULT_TOPICS, DevBroker, TopicSpec};
use hubsync_sandbox::hubspot::ratelimit::Limits;
use hubsync_sandbox::hubspot::{
    DEFAULT_PORTAL_ID, DEFAULT_TOKEN, HubSpotSandbox, Portals, SandboxOptions,
};
use hubsync_sandbox::registry::SchemaRegistry;
use hubsync_sandbox::server::{RunningServer, loopback};
use hubsync_schemas::{OutcomeStatus, SyncOutcome};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use tokio::sync::oneshot;

use crate::{cpu, events};

const TOKEN_ENV: &str = "BENCH_HUBSPOT_TOKEN";

/// Requests per 10 s of a world without HubSpot limits: far more than hubsync can send.
const UNLIMITED_PER_10S: u32 = 10_000_000;

/// One HubSpot request as the sandbox received it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Arrival, since the world started.
    pub at: Duration,
    /// `POST /crm/v3/objects/contacts/batch/upsert`.
    pub endpoint: String,
    pub status: u16,
    /// `inputs` in the body of a batch request; 0 otherwise.
    pub inputs: usize,
    /// How long the sandbox took to answer.
    pub took: Duration,
}

impl Call {
    /// A batch create, update or upsert: a call that writes records.
    pub fn is_write(&self) -> bool {
        self.endpoint.starts_with("POST ")
            && ["/batch/upsert", "/batch/create", "/batch/update"]
                .iter()
                .any(|op| self.endpoint.ends_with(op))
    }

    /// A batch upsert or create: each input is a record written (a batch update may instead
    /// follow an upsert to set a new record's defaults).
    pub fn creates_or_upserts(&self) -> bool {
        self.endpoint.starts_with("POST ")
            && (self.endpoint.ends_with("/batch/upsert")
                || self.endpoint.ends_with("/batch/create"))
    }
}

/// The calls recorded so far; clones share them.
#[derive(Debug, Clone)]
pub struct CallLog {
    origin: Instant,
    /// `origin` on the wall clock, in milliseconds since the Unix epoch.
    origin_ms: i64,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl CallLog {
    fn new(origin: Instant) -> Self {
        CallLog {
            origin,
            // The wall clock at `origin`, not now: the broker and the registry started since.
            origin_ms: hubsync::outcomes::now_ms()
                - i64::try_from(origin.elapsed().as_millis()).unwrap_or(0),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The calls recorded after the first `from`, in arrival order.
    pub fn since(&self, from: usize) -> Vec<Call> {
        let calls = self.lock();
        let mut out = calls[from.min(calls.len())..].to_vec();
        drop(calls);
        out.sort_by_key(|c| c.at);
        out
    }

    pub fn elapsed(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    /// A wall-clock time (a Kafka record's timestamp) on the same scale as [`Call::at`].
    pub fn elapsed_at_ms(&self, at_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(at_ms - self.origin_ms).unwrap_or(0))
    }
}

async fn record(State(log): State<CallLog>, request: Request, next: Next) -> Response {
    let at = log.elapsed(Instant::now());
    let endpoint = format!("{} {}", request.method(), request.uri().path());
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let inputs = if endpoint.contains("/batch/") {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|body| body.get("inputs").and_then(|i| i.as_array()).map(Vec::len))
            .unwrap_or(0)
    } else {
        0
    };
    let handled = Instant::now();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    log.lock().push(Call {
        at,
        endpoint,
        status: response.status().as_u16(),
        inputs,
        took: handled.elapsed(),
    });
    response
}

/// The team of portal `n` (the configuration's own for the first).
pub fn team_of(n: usize) -> String {
    if n == 0 {
        crate::events::TEAM.to_string()
    } else {
        format!("team-{n}")
    }
}

fn portal_of(n: usize) -> u64 {
    DEFAULT_PORTAL_ID + n as u64
}

fn token_of(n: usize) -> String {
    if n == 0 {
        DEFAULT_TOKEN.to_string()
    } else {
        format!("bench-token-{n}")
    }
}

/// `kafka` with `fetch.wait.max.ms` set to `ms` unless it sets one already (a figure's own
/// default, which `--kafka` overrides).
pub fn with_fetch_wait(mut kafka: Vec<(String, String)>, ms: &str) -> Vec<(String, String)> {
    if !kafka.iter().any(|(name, _)| name == "fetch.wait.max.ms") {
        kafka.push(("fetch.wait.max.ms".into(), ms.into()));
    }
    kafka
}

/// A producer of the upstream services the bench plays: records gathered for `linger_ms`, at
/// most `queued` waiting, `batch` to a batch. The development broker keeps 5 MiB per partition
/// and drops older records: it compresses, so that a pre-filled topic fits (checked by
/// `assert_retained`).
fn upstream_producer(
    bootstrap: &str,
    linger_ms: u128,
    queued: usize,
    batch: usize,
) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", queued.to_string())
        .set("batch.num.messages", batch.to_string())
        .create()
        .expect("producer")
}

/// What a world is set up with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub partitions: i32,
    /// Keep the sandbox config's contact defaults (`lifecyclestage = "lead"`).
    pub contact_defaults: bool,
    /// Extra `[kafka.properties]` for the pipeline, `name=value`.
    pub kafka: Vec<(String, String)>,
    /// Lift HubSpot's rate limits in the sandbox and in hubsync's budget, to see how fast
    /// hubsync itself goes. The budget is set past what the config allows, on purpose.
    pub unlimited: bool,
    /// The sink's linger instead of the default.
    pub linger: Option<Duration>,
    /// Teams, each on its own portal behind the one sandbox URL ([`World::teams`]).
    pub teams: usize,
    /// Brokers of the development cluster, the partitions' leaders spread over them. A consumer
    /// fetches from each broker at once, and the development broker answers a fetch with one
    /// batch per partition (Kafka answers up to `max.partition.fetch.bytes` of each), so reading
    /// a large backlog goes as fast as the round trips to its brokers.
    pub brokers: i32,
}

pub struct World {
    pub broker: DevBroker,
    pub registry: RunningServer,
    /// The first portal, the configuration's team's.
    pub hubspot: HubSpotSandbox,
    /// Every portal, a team's each.
    pub portals: Portals,
    pub hubspot_server: RunningServer,
    pub calls: CallLog,
    pub config: Config,
    pub secrets: Secrets,
    /// The bench's own codec, for what it publishes and reads back.
    pub codec: AvroCodec,
    pub producer: FutureProducer,
    partitions: i32,
    _state_dir: tempfile::TempDir,
    sandbox_runtime: SandboxRuntime,
}

/// The runtime the HubSpot sandbox serves on, let go without blocking when the world ends (a
/// runtime cannot be dropped on another's thread).
struct SandboxRuntime(Option<tokio::runtime::Runtime>);

impl Drop for SandboxRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl World {
    pub async fn start(setup: Setup) -> World {
        let origin = Instant::now();
        let mut broker_config = BrokerConfig::new(setup.brokers);
        for topic in DEFAULT_TOPICS {
            broker_config = broker_config.with_topic(TopicSpec::new(topic, setup.partitions));
        }
        let broker = DevBroker::start(broker_config)
            .await
            .expect("broker starts");
        let registry = SchemaRegistry::new()
            .serve(loopback(0))
            .await
            .expect("schema registry starts");
        let options = |n: usize| SandboxOptions {
            portal_id: portal_of(n),
            tokens: vec![token_of(n)],
            tier: Tier::Professional,
            limits: setup.unlimited.then_some(Limits {
                per_window: UNLIMITED_PER_10S,
                daily: u64::from(UNLIMITED_PER_10S) * 100,
                search_per_second: 1_000,
                utc_offset_minutes: 0,
            }),
            search_index_lag: Duration::from_secs(5),
            ..SandboxOptions::default()
        };
        let portals = Portals::new((0..setup.teams.max(1)).map(options).collect());
        let hubspot = portals.all()[0].clone();
        let calls = CallLog::new(origin);
        let router = portals
            .router()
            .layer(axum::middleware::from_fn_with_state(calls.clone(), record));
        // The sandbox serves on its own threads, so that its CPU time, HubSpot's in production,
        // can be told from the pipeline's (`cpu::Split`).
        let sandbox_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(cpu::SANDBOX_THREADS)
            .enable_all()
            .build()
            .expect("the sandbox's runtime");
        let hubspot_server = sandbox_runtime
            .spawn(RunningServer::spawn(router, loopback(0)))
            .await
            .expect("the sandbox's runtime runs")
            .expect("hubspot sandbox starts");
        let state_dir = tempfile::tempdir().expect("a state directory");

        let mut text = events::sandbox_config_text(
            broker.bootstrap_servers(),
            &registry.url(),
            &hubspot_server.url(),
            hubspot.portal_id(),
            TOKEN_ENV,
        );
        if !setup.contact_defaults {
            text = events::without_contact_defaults(&text);
        }
        let text = text
            .replace(
                "dir = \"hubsync-state\"",
                &format!("dir = {:?}", state_dir.path().display().to_string()),
            )
            .replace(
                "group_id_prefix = \"hubsync-sandbox\"\n",
                &format!(
                    "group_id_prefix = \"bench{}\"\n",
                    uuid::Uuid::new_v4().simple()
                ),
            );
        let text = if setup.kafka.is_empty() {
            text
        } else {
            let mut section = String::from("[kafka.properties]\n");
            for (name, value) in &setup.kafka {
                section.push_str(&format!("{name:?} = {value:?}\n"));
            }
            text.replacen("\n[registry]\n", &format!("\n{section}\n[registry]\n"), 1)
        };
        let mut config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        if let Some(linger) = setup.linger {
            config.stages.sink.linger = linger;
        }
        if setup.unlimited {
            config.hubspot.requests_per_10s = Some(UNLIMITED_PER_10S);
            config.hubspot.daily_limit = Some(u64::from(UNLIMITED_PER_10S) * 100);
        }
        let secrets = config
            .resolve_secrets_with(&|name| (name == TOKEN_ENV).then(|| DEFAULT_TOKEN.to_owned()))
            .expect("the token resolves");
        let codec = AvroCodec::new(
            RegistryClient::new(&config.registry, None).expect("registry client"),
            100,
        )
        .expect("the embedded schemas parse");
        let producer = upstream_producer(broker.bootstrap_servers(), 10, 500_000, 5_000);
        World {
            broker,
            registry,
            hubspot,
            portals,
            hubspot_server,
            calls,
            config,
            secrets,
            codec,
            producer,
            partitions: setup.partitions,
            _state_dir: state_dir,
            sandbox_runtime: SandboxRuntime(Some(sandbox_runtime)),
        }
    }

    /// Every team of the world, each on its own portal with its own token: the configuration's
    /// team first, then `team-1`, `team-2`...
    pub fn teams(&self) -> Vec<(Config, Secrets)> {
        (0..self.portals.all().len())
            .map(|n| {
                let mut config = self.config.clone();
                let mut secrets = self.secrets.clone();
                if n > 0 {
                    config.team.id = team_of(n);
                }
                config.team.hubspot_portal_id = portal_of(n);
                secrets.hubspot_token = hubsync::config::Secret::new(token_of(n));
                (config, secrets)
            })
            .collect()
    }

    /// HubSpot's 429s so far, over every portal.
    pub fn rate_limited(&self) -> u64 {
        self.portals
            .all()
            .iter()
            .flat_map(|portal| portal.request_counts())
            .filter(|((_, status), _)| *status == 429)
            .map(|(_, count)| count)
            .sum()
    }

    /// Sends framed records `(key, value)` and waits until the broker has all of them.
    /// Hands one record to the producer now, for a caller that paces its own sending.
    pub fn send_now(&self, topic: &str, key: &str, payload: &[u8]) -> DeliveryFuture {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.producer.send_result(record) {
            Ok(delivery) => delivery,
            Err((error, _)) => panic!("the producer refused an event: {error}"),
        }
    }

    /// Waits until the broker has taken every record [`World::send_now`] handed over.
    pub async fn delivered(deliveries: Vec<DeliveryFuture>) {
        for delivery in deliveries {
            delivery
                .await
                .expect("delivery report")
                .expect("the broker takes the event");
        }
    }

    pub async fn publish_all(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        Self::publish_with(&self.producer, topic, records, 5_000).await;
    }

    /// A producer as an import job upstream would run one: records gathered for up to
    /// `linger` into batches of up to 10,000 (Kafka's 1 MB batch size allowing), for
    /// throughput rather than latency.
    pub fn import_producer(&self, linger: Duration) -> FutureProducer {
        upstream_producer(
            self.broker.bootstrap_servers(),
            linger.as_millis(),
            1_000_000,
            10_000,
        )
    }

    /// Publishes `records` with `producer`, `chunk` at a time, each chunk's deliveries
    /// awaited before the next is sent.
    pub async fn publish_with(
        producer: &FutureProducer,
        topic: &str,
        records: &[(String, Vec<u8>)],
        chunk: usize,
    ) {
        for chunk in records.chunks(chunk.max(1)) {
            let sends = chunk.iter().map(|(key, value)| {
                producer.send(
                    FutureRecord::to(topic).key(key).payload(value),
                    Duration::from_secs(30),
                )
            });
            for result in futures::future::join_all(sends).await {
                result.expect("the broker takes the record");
            }
        }
    }

    /// The records `topic` holds now, over its partitions.
    pub fn held(&self, topic: &str) -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .create()
            .expect("consumer");
        (0..self.partitions)
            .map(|partition| {
                let (low, high) = consumer
                    .fetch_watermarks(topic, partition, Duration::from_secs(10))
                    .expect("watermarks");
                usize::try_from(high - low).unwrap_or(0)
            })
            .sum()
    }

    /// Fails loudly when the broker no longer holds `expected` records of `topic` from offset 0
    /// on: librdkafka's mock cluster keeps at most 5 MiB (or 100,000 message sets) per
    /// partition and silently drops the oldest beyond that.
    pub fn assert_retained(&self, topic: &str, expected: usize) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .create()
            .expect("consumer");
        let mut held = 0;
        for partition in 0..self.partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks");
            assert_eq!(
                low, 0,
                "the development broker dropped the first {low} records of {topic} partition \
                 {partition} (it keeps 5 MiB per partition): pre-fill fewer records or use more \
                 partitions"
            );
            held += usize::try_from(high - low).unwrap_or(0);
        }
        assert_eq!(held, expected, "records of {topic} on the broker");
    }

    /// Starts reading the outcomes topic from its beginning; the collection ends once `expected`
    /// outcomes are read or `timeout` passes, whichever is first.
    pub fn collect_outcomes(&self, expected: usize, timeout: Duration) -> Collector {
        self.collect(&self.config.topics.outcomes, true, expected, timeout)
    }

    /// Counts the records arriving on `topic`, without decoding them.
    pub fn count_records(&self, topic: &str, expected: usize, timeout: Duration) -> Collector {
        self.collect(topic, false, expected, timeout)
    }

    fn collect(
        &self,
        topic: &str,
        outcomes: bool,
        expected: usize,
        timeout: Duration,
    ) -> Collector {
        let consumer = self.broker.reader(topic);
        let codec = self.codec.clone();
        let calls = self.calls.clone();
        let (done, result) = oneshot::channel();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut read = Outcomes::default();
            while read.count < expected {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(Ok(message)) => {
                        // When the record was produced, not when this reader got to it.
                        let at = match message.timestamp().to_millis() {
                            Some(ms) => calls.elapsed_at_ms(ms),
                            None => calls.elapsed(Instant::now()),
                        };
                        if outcomes {
                            let bytes = message.payload().unwrap_or_default();
                            let outcome: SyncOutcome = match codec.decode_cached(bytes) {
                                Ok(outcome) => outcome,
                                Err(_) => codec.decode(bytes).await.expect("an outcome decodes"),
                            };
                            read.add(&outcome);
                        }
                        read.arrived(at);
                    }
                    Ok(Err(error)) => panic!("consumer of the bench: {error}"),
                    Err(_) => break,
                }
            }
            let _ = done.send(read);
        });
        Collector { result }
    }

    /// Starts reading the commands topic from its beginning, noting when the process stage made
    /// each record's command (by its identity, lowercase; the last one of a record): where a
    /// live event's wait was spent, before the sink or in it. It reads along with the run, as
    /// the development broker keeps only the newest 5 MiB of a partition.
    pub fn watch_commands(&self) -> CommandWatch {
        let consumer = self.broker.reader(&self.config.topics.commands);
        let codec = self.codec.clone();
        let made: Arc<Mutex<std::collections::HashMap<String, i64>>> = Arc::default();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let noted = made.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = consumer.recv() => message.expect("the bench reads the commands"),
                    _ = &mut stopped => break,
                };
                let bytes = message.payload().unwrap_or_default();
                let command: hubsync_schemas::HubSpotCommand = match codec.decode_cached(bytes) {
                    Ok(command) => command,
                    Err(_) => codec.decode(bytes).await.expect("a command decodes"),
                };
                noted.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    command.identity.value.to_ascii_lowercase(),
                    command.processed_time,
                );
            }
        });
        CommandWatch { made, _stop: stop }
    }

    pub async fn stop(self) {
        let _ = self.hubspot_server.shutdown().await;
        drop(self.sandbox_runtime);
        let _ = self.registry.shutdown().await;
        drop(self.producer);
        self.broker.shutdown().await;
    }
}

/// When each record's command was made, as [`World::watch_commands`] reads them; the reading
/// stops when this is dropped.
pub struct CommandWatch {
    made: Arc<Mutex<std::collections::HashMap<String, i64>>>,
    _stop: oneshot::Sender<()>,
}

impl CommandWatch {
    /// When the command of each of `wanted` was made, waiting up to `timeout` for the last.
    pub async fn made(
        &self,
        wanted: &std::collections::HashSet<String>,
        timeout: Duration,
    ) -> std::collections::HashMap<String, i64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found: std::collections::HashMap<String, i64> = self
                .made
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(record, _)| wanted.contains(*record))
                .map(|(record, at)| (record.clone(), *at))
                .collect();
            if found.len() == wanted.len() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Records read so far, and for outcomes their statuses.
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    pub count: usize,
    pub by_status: BTreeMap<&'static str, usize>,
    /// Reason codes of outcomes other than created, updated and unchanged.
    pub other_reasons: BTreeMap<String, usize>,
    /// When the first and the last record read were produced (with several partitions, the
    /// earliest and the latest).
    pub first_at: Option<Duration>,
    pub last_at: Option<Duration>,
    /// Every outcome's record, status, event time and processed time.
    pub each: Vec<OutcomeSeen>,
}

#[derive(Debug, Clone)]
pub struct OutcomeSeen {
    pub record: String,
    pub status: OutcomeStatus,
    pub event_ms: i64,
    pub processed_ms: i64,
}

impl Outcomes {
    fn add(&mut self, outcome: &SyncOutcome) {
        *self.by_status.entry(outcome.status.as_str()).or_default() += 1;
        self.each.push(OutcomeSeen {
            record: outcome.record.clone().unwrap_or_default(),
            status: outcome.status,
            event_ms: outcome.event_time,
            processed_ms: outcome.processed_time,
        });
        if !matches!(
            outcome.status,
            OutcomeStatus::Created | OutcomeStatus::Updated | OutcomeStatus::Unchanged
        ) {
            *self
                .other_reasons
                .entry(format!(
                    "{} {}",
                    outcome.status.as_str(),
                    outcome.reason_code
                ))
                .or_default() += 1;
        }
    }

    fn arrived(&mut self, at: Duration) {
        self.count += 1;
        self.first_at = Some(self.first_at.map_or(at, |first| first.min(at)));
        self.last_at = Some(self.last_at.map_or(at, |last| last.max(at)));
    }

    pub fn status(&self, status: OutcomeStatus) -> usize {
        self.by_status.get(status.as_str()).copied().unwrap_or(0)
    }

    pub fn written(&self) -> usize {
        self.status(OutcomeStatus::Created) + self.status(OutcomeStatus::Updated)
    }
}

pub struct Collector {
    result: oneshot::Receiver<Outcomes>,
}

impl Collector {
    pub async fn finish(self) -> Outcomes {
        self.result.await.expect("the bench's reader ends")
    }
}

/// Calls per endpoint and status, in a stable order.
pub fn by_endpoint(calls: &[Call]) -> BTreeMap<(String, u16), (usize, usize)> {
    let mut counts: BTreeMap<(String, u16), (usize, usize)> = BTreeMap::new();
    for call in calls {
        let entry = counts
            .entry((call.endpoint.clone(), call.status))
            .or_default();
        entry.0 += 1;
        entry.1 += call.inputs;
    }
    counts
}
