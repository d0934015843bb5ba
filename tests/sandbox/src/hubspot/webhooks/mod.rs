//! Webhook delivery: the changes of every portal an app is installed in, sent to the app's
//! target URL as HubSpot's v3 events, signed, batched, retried, and on request duplicated and
//! reordered, on the sandbox's tokio runtime, never holding up an API call.
//!
//! ```text
//! PUT /__admin/webhooks {"app_id":3141592,"target_url":"http://127.0.0.1:9000/hooks","client_secret":"s"}
//! POST /crm/v3/objects/contacts (a token of app 3141592) {"properties":{"email":"a@b.io"}}
//!   ~20 ms later: POST http://127.0.0.1:9000/hooks
//!     X-HubSpot-Request-Timestamp: 1767225600123
//!     X-HubSpot-Signature-v3: base64(HMAC-SHA256(s, "POST" + url + body + "1767225600123"))
//!     [{"subscriptionType":"contact.creation",...},{"subscriptionType":"contact.propertyChange","propertyName":"email",...}]
//! GET /__admin/webhooks/deliveries -> every attempt: status or error, events, attempt number
//! ```
//!
//! An app is *installed* in a portal when the portal has a token of it that is not revoked (a
//! private-app token, or an OAuth access token issued for it). Changes made while the app is
//! not installed there, or before its webhook was configured, are not sent.
//!
//! The layout follows a sink's: [`config`] (settings and defaults), [`events`] (changes to
//! events, pure), [`signature`] (pure), [`delivery`] (retry decisions, pure, and the one HTTP
//! call); this module runs them: one dispatcher task per app gathering events per portal, one
//! task per request with its retries, a semaphore per portal bounding requests in flight.

mod config;
mod delivery;
mod events;
mod signature;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use config::{SUBSCRIPTION_TYPES, WebhookConfig};
pub use delivery::Attempt;
pub use events::Event;
pub use signature::{sign, signed_url};

use super::{HubSpotSandbox, Inner};
use crate::clock::rfc3339_ms;
use delivery::backoff;
use events::{Audience, events_of};

/// HubSpot sends fewer than 100 events per request.
pub const MAX_EVENTS_PER_REQUEST: usize = 99;
/// Attempts the admin API keeps; older ones are dropped.
const ATTEMPT_LOG_CAP: usize = 10_000;
/// The first event id handed out.
const FIRST_EVENT_ID: u64 = 1_000;
/// The first subscription id handed out.
const FIRST_SUBSCRIPTION_ID: u64 = 500_001;

/// The webhooks of one sandbox: shared by every portal of a [`super::Portals`], as an app's
/// webhook is one for all the accounts it is installed in.
pub struct Webhooks {
    state: Mutex<HooksState>,
    client: Result<reqwest::Client, String>,
    next_event_id: AtomicU64,
    next_request_id: AtomicU64,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct HooksState {
    portals: Vec<Weak<Inner>>,
    apps: BTreeMap<u64, Running>,
    attempts: VecDeque<Attempt>,
    next_subscription_id: u64,
}

/// A configured app's webhook and its dispatcher's handles.
struct Running {
    config: Arc<WebhookConfig>,
    subscriptions: Arc<BTreeMap<String, u64>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Counters {
    /// Events gathered and not yet in a request.
    pending_events: AtomicUsize,
    /// Requests not yet delivered or given up.
    unfinished_requests: AtomicUsize,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self::new()
    }
}

impl Webhooks {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"));
        Webhooks {
            state: Mutex::new(HooksState {
                next_subscription_id: FIRST_SUBSCRIPTION_ID,
                ..HooksState::default()
            }),
            client,
            next_event_id: AtomicU64::new(FIRST_EVENT_ID),
            next_request_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HooksState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn register(&self, portal: Weak<Inner>) {
        self.lock().portals.push(portal);
    }

    fn portals(&self) -> Vec<HubSpotSandbox> {
        self.lock()
            .portals
            .iter()
            .filter_map(Weak::upgrade)
            .map(|inner| HubSpotSandbox { inner })
            .collect()
    }

    /// Sets (or replaces) an app's webhook and starts sending its events; must be called on
    /// a tokio runtime. Answers the settings with their defaults filled in.
    pub fn configure(self: &Arc<Self>, config: WebhookConfig) -> Result<Value, String> {
        config.validate()?;
        let client = self.client.clone()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "webhooks run on a tokio runtime; configure them from one".to_string())?;
        // Changes from now on are sent; those before are not.
        let cursors: BTreeMap<u64, u64> = self
            .portals()
            .iter()
            .map(|p| (p.portal_id(), p.lock().store.last_seq()))
            .collect();
        let config = Arc::new(config);
        let mut state = self.lock();
        let mut subscriptions = BTreeMap::new();
        for kind in &config.subscriptions {
            subscriptions.insert(kind.clone(), state.next_subscription_id);
            state.next_subscription_id += 1;
        }
        let running = Running {
            config: config.clone(),
            subscriptions: Arc::new(subscriptions),
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
        };
        let dispatcher = Dispatcher {
            hooks: Arc::downgrade(self),
            client,
            config,
            subscriptions: running.subscriptions.clone(),
            stop: running.stop.clone(),
            counters: running.counters.clone(),
            cursors,
        };
        runtime.spawn(dispatcher.run());
        let answer = view(&running);
        // Replacing a webhook stops the old one's dispatcher (see `Drop for Running`).
        state.apps.insert(running.config.app_id, running);
        Ok(answer)
    }

    /// Stops and forgets one app's webhook (`Some`) or every one (`None`); whether any was.
    pub fn remove(&self, app_id: Option<u64>) -> bool {
        let mut state = self.lock();
        match app_id {
            Some(app_id) => state.apps.remove(&app_id).is_some(),
            None => {
                let any = !state.apps.is_empty();
                state.apps.clear();
                any
            }
        }
    }

    /// The configured webhooks, with their subscription ids and what is still to send.
    pub fn list(&self) -> Vec<Value> {
        self.lock().apps.values().map(view).collect()
    }

    /// Every attempt logged (of one app's webhook with `Some`), oldest first, with the events
    /// still to send and the requests not yet finished.
    pub fn deliveries(&self, app_id: Option<u64>) -> Value {
        let state = self.lock();
        let attempts: Vec<&Attempt> = state
            .attempts
            .iter()
            .filter(|a| app_id.is_none_or(|id| a.app_id == id))
            .collect();
        let running = state
            .apps
            .values()
            .filter(|r| app_id.is_none_or(|id| r.config.app_id == id));
        let (mut pending, mut unfinished) = (0, 0);
        for r in running {
            pending += r.counters.pending_events.load(Ordering::SeqCst);
            unfinished += r.counters.unfinished_requests.load(Ordering::SeqCst);
        }
        json!({
            "deliveries": attempts,
            "pending_events": pending,
            "unfinished_requests": unfinished,
        })
    }

    pub fn clear_deliveries(&self) {
        self.lock().attempts.clear();
    }

    fn record(&self, attempt: Attempt) {
        let mut state = self.lock();
        if state.attempts.len() == ATTEMPT_LOG_CAP {
            state.attempts.pop_front();
        }
        state.attempts.push_back(attempt);
    }
}

fn view(running: &Running) -> Value {
    let mut value = serde_json::to_value(&*running.config).unwrap_or(Value::Null);
    value["subscription_ids"] = json!(*running.subscriptions);
    value["pending_events"] = json!(running.counters.pending_events.load(Ordering::SeqCst));
    value["unfinished_requests"] =
        json!(running.counters.unfinished_requests.load(Ordering::SeqCst));
    value
}

/// Events gathered for one portal.
#[derive(Default)]
struct Queue {
    events: Vec<Event>,
    /// Second copies of events already sent, for a later request.
    copies: Vec<Event>,
    /// When the oldest event waiting was gathered.
    since: Option<Instant>,
}

/// One app's sender: reads each portal's new changes, gathers their events, cuts requests.
struct Dispatcher {
    hooks: Weak<Webhooks>,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    subscriptions: Arc<BTreeMap<String, u64>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    /// Per portal: the last change looked at.
    cursors: BTreeMap<u64, u64>,
}

impl Dispatcher {
    async fn run(mut self) {
        let mut rng = StdRng::seed_from_u64(self.config.seed);
        let mut queues: BTreeMap<u64, Queue> = BTreeMap::new();
        let mut semaphores: BTreeMap<u64, Arc<Semaphore>> = BTreeMap::new();
        let delay = Duration::from_millis(self.config.batch_delay_ms);
        let tick = Duration::from_millis(self.config.batch_delay_ms.clamp(1, 25));
        loop {
            tokio::time::sleep(tick).await;
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let Some(hooks) = self.hooks.upgrade() else {
                return;
            };
            let portals = hooks.portals();
            if portals.is_empty() {
                return;
            }
            for portal in portals {
                let portal_id = portal.portal_id();
                let queue = queues.entry(portal_id).or_default();
                let gathered = self.gather(&hooks, &portal);
                if !gathered.is_empty() {
                    self.counters
                        .pending_events
                        .fetch_add(gathered.len(), Ordering::SeqCst);
                    queue.events.extend(gathered);
                    queue.since.get_or_insert_with(Instant::now);
                }
                let due = queue.since.is_some_and(|t| t.elapsed() >= delay)
                    || queue.events.len() >= MAX_EVENTS_PER_REQUEST;
                if !due {
                    continue;
                }
                let semaphore = semaphores
                    .entry(portal_id)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.config.max_concurrent)))
                    .clone();
                let mut originals = std::mem::take(&mut queue.events);
                let copies = std::mem::take(&mut queue.copies);
                queue.since = None;
                if self.config.reorder {
                    originals.shuffle(&mut rng);
                }
                for chunk in originals.chunks(MAX_EVENTS_PER_REQUEST) {
                    for event in chunk {
                        if self.config.duplicate_rate > 0.0
                            && rng.random_bool(self.config.duplicate_rate)
                        {
                            queue.copies.push(event.clone());
                        }
                    }
                    self.send(&hooks, portal_id, chunk.to_vec(), &semaphore);
                }
                for chunk in copies.chunks(MAX_EVENTS_PER_REQUEST) {
                    self.send(&hooks, portal_id, chunk.to_vec(), &semaphore);
                }
                if !queue.copies.is_empty() {
                    queue.since = Some(Instant::now());
                    self.counters
                        .pending_events
                        .fetch_add(queue.copies.len(), Ordering::SeqCst);
                }
            }
        }
    }

    /// The events of the changes `portal` logged since the last look, when the app is
    /// installed there.
    fn gather(&mut self, hooks: &Webhooks, portal: &HubSpotSandbox) -> Vec<Event> {
        let app_id = self.config.app_id;
        let portal_id = portal.portal_id();
        let (changes, installed) = {
            let state = portal.lock();
            let cursor = *self
                .cursors
                .entry(portal_id)
                .or_insert_with(|| state.store.last_seq());
            let changes: Vec<_> = state.store.changes_after(cursor).cloned().collect();
            (changes, state.has_app(app_id))
        };
        if let Some(last) = changes.last() {
            self.cursors.insert(portal_id, last.seq);
        }
        if !installed {
            return Vec::new();
        }
        let audience = Audience {
            portal_id,
            app_id,
            subscriptions: &self.subscriptions,
        };
        let mut next_id = || hooks.next_event_id.fetch_add(1, Ordering::SeqCst);
        changes
            .iter()
            .flat_map(|change| events_of(change, &audience, &mut next_id))
            .collect()
    }

    /// Hands one request to a task of its own, which sends it and its retries.
    fn send(
        &self,
        hooks: &Arc<Webhooks>,
        portal_id: u64,
        events: Vec<Event>,
        semaphore: &Arc<Semaphore>,
    ) {
        self.counters
            .pending_events
            .fetch_sub(events.len(), Ordering::SeqCst);
        self.counters
            .unfinished_requests
            .fetch_add(1, Ordering::SeqCst);
        let request = Request {
            hooks: hooks.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
            stop: self.stop.clone(),
            counters: self.counters.clone(),
            semaphore: semaphore.clone(),
            portal_id,
            request_id: hooks.next_request_id.fetch_add(1, Ordering::SeqCst),
        };
        tokio::spawn(request.run(events));
    }
}

/// One request of events and its attempts.
struct Request {
    hooks: Arc<Webhooks>,
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    semaphore: Arc<Semaphore>,
    portal_id: u64,
    request_id: u64,
}

impl Request {
    async fn run(self, mut events: Vec<Event>) {
        for attempt_number in 0..self.config.max_attempts {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            for event in &mut events {
                event.attempt_number = attempt_number;
            }
            let body = serde_json::to_vec(&events).unwrap_or_default();
            // At most max_concurrent requests of this app in flight in this portal.
            let Ok(permit) = self.semaphore.acquire().await else {
                break;
            };
            let timestamp_ms =
                chrono::Utc::now().timestamp_millis() + self.config.timestamp_skew_ms;
            let (outcome, took) =
                delivery::attempt(&self.client, &self.config, body, timestamp_ms).await;
            drop(permit);
            let last = attempt_number + 1 == self.config.max_attempts;
            let delivered = outcome.delivered();
            let retry = !delivered && !last && outcome.retryable(self.config.retry_4xx);
            let (status, error) = match &outcome {
                delivery::Outcome::Answered(status) => (Some(*status), None),
                delivery::Outcome::TimedOut => (
                    None,
                    Some(format!("no answer within {} ms", self.config.timeout_ms)),
                ),
                delivery::Outcome::Failed(error) => (None, Some(error.clone())),
            };
            self.hooks.record(Attempt {
                app_id: self.config.app_id,
                portal_id: self.portal_id,
                request_id: self.request_id,
                attempt_number,
                at: rfc3339_ms(timestamp_ms),
                timestamp_ms,
                duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                status,
                error,
                events: events.len(),
                event_ids: events.iter().map(|e| e.event_id).collect(),
                result: if delivered {
                    "delivered"
                } else if retry {
                    "retrying"
                } else {
                    "gave_up"
                },
            });
            if !retry {
                break;
            }
            tokio::time::sleep(backoff(&self.config, attempt_number)).await;
        }
        self.counters
            .unfinished_requests
            .fetch_sub(1, Ordering::SeqCst);
    }
}
