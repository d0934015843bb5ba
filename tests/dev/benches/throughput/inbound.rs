//! Figure 9: HubSpot -> upstream. Users' edits in HubSpot reach `crm.hubspot.changes`, by one
//! way in per run, each in a world of its own:
//! - **webhook**: the sandbox delivers its own signed webhooks (every subscription type, 5% of
//!   the events sent twice) to the pipeline's receiver; polling off;
//! - **poll**: no webhooks; the poller every `poll_interval`, reading what is older than
//!   `search_lag`, just above the sandbox's 5 s search index lag.
//!
//! Each run: the pipeline (all stages, one team, the sandbox config's rules: `job_title` <->
//! `jobtitle` is `both`) writes `contacts` new contacts, so that hubsync's own writes come back
//! as webhook events or polled changes (echoes: none may go up); then users edit the job title
//! `edits` times through the sandbox's admin API (`PATCH /__admin/objects/contacts/{id}` as
//! user 8812, 8 at a time, round robin over the contacts, each value new), and every record on
//! `crm.hubspot.changes` is read back from its start.
//!
//! Latency is from HubSpot's change time (`occurred_at`, the sandbox's clock at the edit) to the
//! change's Kafka timestamp on `crm.hubspot.changes` (CreateTime: when hubsync's producer sent
//! it), both wall-clock milliseconds of this machine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hubsync::admin::Health;
use hubsync::config::{Secret, SecretSource};
use hubsync::outcomes::now_ms;
use hubsync::pipeline::{Pipeline, Stages};
use hubsync_sandbox::hubspot::DEFAULT_TOKEN;
use hubsync_sandbox::hubspot::model::ObjectType;
use hubsync_sandbox::hubspot::webhooks::WebhookConfig;
use hubsync_schemas::{HubSpotChange, HubSpotChangeKind, SchemaKind, default_subject};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::events::{Contact, Rng, Shape};
use crate::replay::Latency;
use crate::world::{Call, Setup, World};

/// The HubSpot user who edits.
const USER_ID: u64 = 8812;
/// Edits in flight at once.
const EDITORS: usize = 8;
/// The client secret of the sandbox's app, as the receiver knows it.
const APP_SECRET: &str = "bench-app-secret";
/// Share of webhook events HubSpot (the sandbox) sends a second time.
const DUPLICATE_RATE: f64 = 0.05;
/// How long the reader goes on after the last edit's change arrived, for late copies and echoes.
const SETTLE: Duration = Duration::from_secs(3);

/// The way HubSpot's changes come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Webhook,
    Poll,
}

impl Way {
    pub fn label(self) -> &'static str {
        match self {
            Way::Webhook => "webhook",
            Way::Poll => "poll",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub way: Way,
    /// Contacts hubsync writes first.
    pub contacts: usize,
    /// Users' edits of the job title, over those contacts in turn.
    pub edits: usize,
    pub poll_interval: Duration,
    pub search_lag: Duration,
    /// How long the edits' changes may take to arrive.
    pub timeout: Duration,
    pub kafka: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Figures {
    pub params: Params,
    /// HubSpot's events about hubsync's own writes that came in before the edits (records on
    /// `hubsync.hubspot.webhooks`): the echoes offered.
    pub own_events: usize,
    /// Every event on `hubsync.hubspot.webhooks` that is no user's edit, by subscription type,
    /// property and source.
    pub own_kinds: BTreeMap<String, usize>,
    /// How long the users took to make the edits (the offered load).
    pub edits_took: Duration,
    /// From the first edit to the last edit's change on Kafka.
    pub wall: Duration,
    /// Milliseconds from `occurred_at` to the change's Kafka timestamp.
    pub latency: Latency,
    /// Users' edits with a change on the topic (deduplicated by event id).
    pub delivered: usize,
    /// Missing edits whose contact's later edit did arrive (the translator drops an older change
    /// delivered after a newer one of the same property as stale).
    pub missing_superseded: usize,
    /// Missing edits that reached hubsync (on `hubsync.hubspot.webhooks`) after a newer edit of
    /// the same contact: dropped as stale by design.
    pub missing_out_of_order: usize,
    /// Users' edits that reached hubsync after a newer edit of the same contact, in all.
    pub out_of_order: usize,
    /// Contacts whose newest edit went up: upstream ends with HubSpot's value.
    pub converged: usize,
    /// Records on the topic, and their distinct event ids.
    pub records: usize,
    pub distinct: usize,
    /// Users' edits that went up under more than one event id.
    pub twice: usize,
    /// Distinct changes on the topic that are no user's edit, by kind and source.
    pub echoes: BTreeMap<String, usize>,
    /// Changes of the edits that carry the upstream id (`record_id`).
    pub keyed: usize,
    /// HubSpot calls from the first edit to the last change, by endpoint (and status when not
    /// 200).
    pub calls: BTreeMap<String, usize>,
    /// The sandbox's webhook delivery attempts over the run, and those not answered 2xx.
    pub webhook_attempts: usize,
    pub webhook_retried: usize,
}

impl Figures {
    pub fn expected(&self) -> usize {
        self.params.edits
    }

    pub fn missing(&self) -> usize {
        self.params.edits - self.delivered
    }

    pub fn echo_count(&self) -> usize {
        self.echoes.values().sum()
    }

    pub fn duplicates(&self) -> usize {
        self.records - self.distinct
    }

    pub fn per_second(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64().max(0.001)
    }

    fn calls_matching(&self, what: &str) -> usize {
        self.calls
            .iter()
            .filter(|(endpoint, _)| endpoint.contains(what))
            .map(|(_, n)| n)
            .sum()
    }

    /// Search calls per 1,000 changes delivered.
    pub fn searches_per_1000(&self) -> f64 {
        self.calls_matching("/search") as f64 * 1_000.0 / self.delivered.max(1) as f64
    }

    /// Batch reads per 1,000 changes delivered.
    pub fn reads_per_1000(&self) -> f64 {
        self.calls_matching("/batch/read") as f64 * 1_000.0 / self.delivered.max(1) as f64
    }

    pub fn searches(&self) -> usize {
        self.calls_matching("/search")
    }

    pub fn reads(&self) -> usize {
        self.calls_matching("/batch/read")
    }
}

/// One record read from `crm.hubspot.changes`.
#[derive(Debug, Clone)]
struct Seen {
    change: HubSpotChange,
    /// Its Kafka timestamp.
    at_ms: i64,
}

pub async fn measure(params: Params) -> Figures {
    let mut world = World::start(Setup {
        brokers: 1,
        teams: 1,
        partitions: 4,
        contact_defaults: false,
        kafka: params.kafka.clone(),
        unlimited: false,
        linger: Some(Duration::from_millis(250)),
    })
    .await;
    // hubsync's app id, as a deployment sets it: polling needs it to tell hubsync's own writes.
    world.config.hubspot.app_id = Some(world.hubspot.app_of(DEFAULT_TOKEN));
    let inbound = &mut world.config.stages.inbound;
    match params.way {
        Way::Webhook => {
            inbound.webhook_listen = Some("127.0.0.1:0".to_string());
            world.config.hubspot.client_secret =
                Some(SecretSource::Value(Secret::new(APP_SECRET.to_string())));
        }
        Way::Poll => {
            inbound.poll = true;
            inbound.poll_interval = params.poll_interval;
            inbound.search_lag = params.search_lag;
        }
    }
    let pipeline = Pipeline::start(
        &world.config,
        &world.secrets,
        Stages::All,
        Health::default(),
    )
    .await
    .expect("the pipeline starts with its inbound stage");
    if params.way == Way::Webhook {
        let addr = pipeline.webhook_addr.expect("the receiver listens");
        world
            .hubspot
            .webhooks()
            .configure(WebhookConfig {
                // The app of the token hubsync writes with: its own writes come back too.
                app_id: world.hubspot.app_of(DEFAULT_TOKEN),
                target_url: format!("http://{addr}{}", world.config.stages.inbound.webhook_path),
                client_secret: APP_SECRET.to_string(),
                duplicate_rate: DUPLICATE_RATE,
                seed: 9,
                ..WebhookConfig::default()
            })
            .expect("the webhook is configured");
    }

    // hubsync writes the contacts; HubSpot reports its writes like anyone's.
    let topic = world.config.topics.contact_changes.clone();
    let writer = world
        .codec
        .writer(SchemaKind::ContactChanged, &default_subject(&topic))
        .await
        .expect("the contact schema registers");
    let mut rng = Rng::new(0x5eed_0009);
    let written = world.collect_outcomes(params.contacts, Duration::from_secs(120));
    let now = now_ms();
    let batch: Vec<(String, Vec<u8>)> = (0..params.contacts as u64)
        .map(|n| {
            let event = Contact::generate(n, Shape::PLAIN, &mut rng).created(now, &mut rng);
            (
                event.contact_id.clone(),
                writer.encode(&event).expect("encodes"),
            )
        })
        .collect();
    world.publish_all(&topic, &batch).await;
    let outcomes = written.finish().await;
    assert_eq!(
        outcomes.written(),
        params.contacts,
        "every contact is written: {:?}",
        outcomes.other_reasons
    );
    let ids: Vec<String> = world
        .hubspot
        .snapshot(ObjectType::Contacts)
        .iter()
        .filter_map(|record| record["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), params.contacts, "HubSpot holds the contacts");
    // Every event about hubsync's writes is in before users act.
    match params.way {
        Way::Webhook => wait_for_webhooks(&world).await,
        Way::Poll => wait_for_polls(&world, &params).await,
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let own_events = world.held(&world.config.topics.hubspot_webhooks);
    let attempts_before = webhook_attempts(&world);

    // Users edit the job title; the reader reads the topic from its start.
    let edits: Vec<(String, String)> = (0..params.edits)
        .map(|n| (ids[n % ids.len()].clone(), format!("Title {n}")))
        .collect();
    let by_value: HashMap<String, String> = edits
        .iter()
        .map(|(id, value)| (value.clone(), id.clone()))
        .collect();
    let (reader, mut arrived) = read_changes(&world, by_value.clone());
    let first_call = world.calls.len();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let admin = format!("{}/__admin/objects/contacts", world.hubspot_server.url());
    let first_edit_ms = now_ms();
    let began = Instant::now();
    let mut answers = futures::stream::iter(edits.iter().map(|(id, value)| {
        let request = http
            .patch(format!("{admin}/{id}"))
            .json(&serde_json::json!({
                "properties": {"jobtitle": value},
                "user_id": USER_ID
            }))
            .send();
        async move { request.await.map(|answer| answer.status()) }
    }))
    .buffered(EDITORS);
    while let Some(answer) = answers.next().await {
        let status = answer.expect("the sandbox answers an edit");
        assert!(status.is_success(), "an edit was refused: {status}");
    }
    let edits_took = began.elapsed();

    let deadline = tokio::time::Instant::now() + params.timeout;
    while *arrived.borrow() < params.edits {
        if tokio::time::timeout_at(deadline, arrived.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    tokio::time::sleep(SETTLE).await;
    let seen = reader.stop().await;
    let (late, own_kinds) = out_of_order(&world, &by_value);
    let webhook_attempts_after = webhook_attempts(&world);
    pipeline.stop().await.expect("the pipeline stops cleanly");

    // Each edit's changes, by event id; everything else is an echo.
    let mut ids_of_edit: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut first_of_edit: HashMap<&str, &Seen> = HashMap::new();
    let mut echo_ids: HashMap<&str, String> = HashMap::new();
    let mut event_ids = HashSet::new();
    for seen in &seen {
        let change = &seen.change;
        event_ids.insert(change.event_id.as_str());
        match user_edit(change, &by_value) {
            Some(value) => {
                ids_of_edit
                    .entry(value)
                    .or_default()
                    .insert(change.event_id.as_str());
                let first = first_of_edit.entry(value).or_insert(seen);
                if seen.at_ms < first.at_ms {
                    *first = seen;
                }
            }
            None => {
                echo_ids.insert(
                    change.event_id.as_str(),
                    format!(
                        "{} {} {}",
                        change.change.as_str(),
                        change.property_name.as_deref().unwrap_or("-"),
                        change.change_source.as_deref().unwrap_or("-")
                    ),
                );
            }
        }
    }
    let mut echoes = BTreeMap::new();
    for what in echo_ids.into_values() {
        *echoes.entry(what).or_default() += 1;
    }
    // A missing edit is superseded when a later edit of its contact arrived.
    let index_of = |value: &str| -> usize {
        value
            .trim_start_matches("Title ")
            .parse()
            .unwrap_or_default()
    };
    let mut newest_arrived: HashMap<&str, usize> = HashMap::new();
    for value in first_of_edit.keys() {
        let contact = by_value[*value].as_str();
        let index = index_of(value);
        let newest = newest_arrived.entry(contact).or_insert(index);
        *newest = (*newest).max(index);
    }
    let missing_superseded = edits
        .iter()
        .filter(|(_, value)| !first_of_edit.contains_key(value.as_str()))
        .filter(|(id, value)| {
            newest_arrived
                .get(id.as_str())
                .is_some_and(|newest| *newest > index_of(value))
        })
        .count();
    let missing_out_of_order = late
        .iter()
        .filter(|value| !first_of_edit.contains_key(value.as_str()))
        .count();
    let converged = newest_arrived
        .iter()
        .filter(|(contact, newest)| {
            let last = edits
                .iter()
                .rposition(|(id, _)| id == *contact)
                .unwrap_or_default();
            **newest == last
        })
        .count();
    let last_ms = first_of_edit.values().map(|s| s.at_ms).max();
    let latency = Latency::of_ms(
        first_of_edit
            .values()
            .map(|s| s.at_ms - s.change.occurred_at)
            .collect(),
    );
    let until = last_ms.map(|ms| world.calls.elapsed_at_ms(ms));
    let calls: Vec<Call> = world
        .calls
        .since(first_call)
        .into_iter()
        .filter(|call| until.is_none_or(|until| call.at <= until))
        .filter(|call| !call.endpoint.contains("/__admin/"))
        .collect();
    let mut by_endpoint = BTreeMap::new();
    for call in &calls {
        let name = if call.status == 200 {
            call.endpoint.clone()
        } else {
            format!("{} ({})", call.endpoint, call.status)
        };
        *by_endpoint.entry(name).or_default() += 1;
    }
    let figures = Figures {
        own_events,
        own_kinds,
        edits_took,
        wall: Duration::from_millis(
            u64::try_from(last_ms.unwrap_or(first_edit_ms) - first_edit_ms).unwrap_or(0),
        ),
        latency,
        delivered: first_of_edit.len(),
        missing_superseded,
        missing_out_of_order,
        out_of_order: late.len(),
        converged,
        records: seen.len(),
        distinct: event_ids.len(),
        twice: ids_of_edit.values().filter(|ids| ids.len() > 1).count(),
        echoes,
        keyed: first_of_edit
            .values()
            .filter(|s| s.change.record_id.is_some())
            .count(),
        calls: by_endpoint,
        webhook_attempts: webhook_attempts_after.0 - attempts_before.0,
        webhook_retried: webhook_attempts_after.1 - attempts_before.1,
        params,
    };
    world.stop().await;
    figures
}

/// The edit a change reports (its value), if it is one of the users' edits.
fn user_edit<'a>(change: &HubSpotChange, by_value: &'a HashMap<String, String>) -> Option<&'a str> {
    if change.change != HubSpotChangeKind::PropertyChanged
        || change.property_name.as_deref() != Some("jobtitle")
    {
        return None;
    }
    let value = change.property_value.as_deref()?;
    let (value, contact) = by_value.get_key_value(value)?;
    (*contact == change.object_id).then_some(value.as_str())
}

/// The users' edits (their values) that reached hubsync after a newer edit of the same contact:
/// `hubsync.hubspot.webhooks` read from its start, in order per partition (a record's events
/// share one).
fn out_of_order(
    world: &World,
    by_value: &HashMap<String, String>,
) -> (HashSet<String>, BTreeMap<String, usize>) {
    let topic = &world.config.topics.hubspot_webhooks;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", world.broker.bootstrap_servers())
        .set(
            "group.id",
            format!("bench-webhooks-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    let mut left = 0;
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .expect("watermarks");
        left += usize::try_from(high - low).unwrap_or(0);
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&assignment).expect("assign");
    let index = |value: &str| -> usize {
        value
            .trim_start_matches("Title ")
            .parse()
            .unwrap_or_default()
    };
    let mut newest: HashMap<String, usize> = HashMap::new();
    let mut arrived = HashSet::new();
    let mut late = HashSet::new();
    let mut others = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while left > 0 && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("the bench reads hubsync.hubspot.webhooks");
        left -= 1;
        let Ok(event) =
            serde_json::from_slice::<serde_json::Value>(message.payload().unwrap_or_default())
        else {
            continue;
        };
        let object = event["objectId"].as_u64().map(|id| id.to_string());
        let edit = match (event["propertyValue"].as_str(), object) {
            (Some(value), Some(object))
                if event["propertyName"] == "jobtitle" && by_value.get(value) == Some(&object) =>
            {
                Some((value, object))
            }
            _ => None,
        };
        let Some((value, object)) = edit else {
            let kind = format!(
                "{} {} {}",
                event["subscriptionType"].as_str().unwrap_or("-"),
                event["propertyName"].as_str().unwrap_or("-"),
                event["changeSource"].as_str().unwrap_or("-")
            );
            *others.entry(kind).or_default() += 1;
            continue;
        };
        if !arrived.insert(value.to_string()) {
            continue;
        }
        let newest = newest.entry(object).or_insert(index(value));
        if *newest > index(value) {
            late.insert(value.to_string());
        }
        *newest = (*newest).max(index(value));
    }
    (late, others)
}

/// Waits until the sandbox has no webhook event left to send.
async fn wait_for_webhooks(world: &World) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deliveries = world.hubspot.webhooks().deliveries(None);
        if deliveries["pending_events"] == 0 && deliveries["unfinished_requests"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sandbox's webhooks never drained: {}",
            deliveries["pending_events"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the poller found hubsync's writes: `hubsync.hubspot.webhooks` has records and
/// no more came for two poll intervals and a second.
async fn wait_for_polls(world: &World, params: &Params) {
    let topic = &world.config.topics.hubspot_webhooks;
    let deadline = Instant::now() + Duration::from_secs(90);
    let quiet = 2 * params.poll_interval + Duration::from_secs(1);
    tokio::time::sleep(params.search_lag).await;
    let mut held = world.held(topic);
    let mut since = Instant::now();
    while held == 0 || since.elapsed() < quiet {
        assert!(
            Instant::now() < deadline,
            "the poller never settled: {held} events"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = world.held(topic);
        if now != held {
            held = now;
            since = Instant::now();
        }
    }
}

/// The webhook delivery attempts the sandbox logged so far, and those not answered 2xx.
fn webhook_attempts(world: &World) -> (usize, usize) {
    let deliveries = world.hubspot.webhooks().deliveries(None);
    let attempts = deliveries["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failed = attempts
        .iter()
        .filter(|attempt| attempt["result"] != "delivered")
        .count();
    (attempts.len(), failed)
}

struct Reader {
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<Vec<Seen>>,
}

impl Reader {
    async fn stop(self) -> Vec<Seen> {
        let _ = self.stop.send(true);
        self.done.await.expect("the reader ends")
    }
}

/// Reads `crm.hubspot.changes` from its start until stopped; the watch counts the distinct
/// users' edits arrived.
fn read_changes(
    world: &World,
    by_value: HashMap<String, String>,
) -> (Reader, watch::Receiver<usize>) {
    let consumer = world.broker.reader(&world.config.topics.hubspot_changes);
    let codec = world.codec.clone();
    let (stop, mut stopping) = watch::channel(false);
    let (count, arrived) = watch::channel(0usize);
    let done = tokio::spawn(async move {
        let mut edits = HashSet::new();
        let mut read = Vec::new();
        loop {
            let message = tokio::select! {
                message = consumer.recv() => message,
                _ = stopping.changed() => break,
            };
            let message = message.expect("the bench reads crm.hubspot.changes");
            let at_ms = message.timestamp().to_millis().unwrap_or_else(now_ms);
            let bytes = message.payload().unwrap_or_default();
            let change: HubSpotChange = match codec.decode_cached(bytes) {
                Ok(change) => change,
                Err(_) => codec.decode(bytes).await.expect("a change decodes"),
            };
            if let Some(value) = user_edit(&change, &by_value)
                && edits.insert(value.to_string())
            {
                let _ = count.send(edits.len());
            }
            read.push(Seen { change, at_ms });
        }
        read
    });
    (Reader { stop, done }, arrived)
}
