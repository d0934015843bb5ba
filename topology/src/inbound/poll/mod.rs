//! Polling: the pull path of the inbound stage, the safety net behind the webhooks. What it finds
//! goes on `[topics] hubspot_webhooks` shaped exactly as HubSpot's webhook events (plus
//! `"hubsync_via": "poll"`), with the receiver's key and headers, so the translator reads both
//! paths alike and a change seen both ways dedupes on its key.
//!
//! Per team (a [`PollTarget`]), every `[stages.inbound] poll_interval`:
//! - per object type it watches (contacts, companies, deals): search records by last-modified
//!   time from the stored cursor up to `now - search_lag` (`cursor`: the walk, pure), read the
//!   page's records with the history of the watched properties (50 a request), and put every
//!   version not sent before on the topic as a `<object>.propertyChange` (and the record's
//!   `<object>.creation` when it was created since), with the version's source as
//!   `changeSource`/`sourceId` (`shape`: pure). The cursor and the records' marks are stored
//!   (`store`, sled) only once Kafka confirmed the page's events;
//! - every `poll_archived_every`: list deleted records, `<object>.deletion` for those deleted
//!   since the last listing;
//! - every `refresh_interval`, when set: walk every record again from the epoch at a cursor of
//!   its own, a few pages a run, sending each watched property's current version, so upstream
//!   converges after changes both paths missed (the translator drops what it has);
//! - every `poll_lists_every`: read each followed list's members in join order, send
//!   `list.membershipAdded` for newcomers (all members at the first read: an import, once) and,
//!   once the whole list was read and HubSpot says it is processed, `list.membershipRemoved`
//!   for those gone (at the time the absence was seen).
//!
//! A team never polled starts at its first poll's `now - search_lag` (or `poll_from`): what
//! changed before is not sent. HubSpot's reads go through the team's client in the budget's
//! backfill lane, giving way to the sink's live writes; searches keep their own per-second
//! lane. A failure (HubSpot, Kafka) ends that part of the run with nothing stored; the next
//! run repeats it.

mod cursor;
mod lists;
mod shape;
mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use self::cursor::{Position, Query, Seen, Walk};
use self::shape::{Emit, Synthetic};
use super::publish::{self, Outgoing};
use crate::config::InboundStage;
use crate::hubspot::{
    self, Clock, ErrorClass, Filter, FilterGroup, HubSpotClient, ObjectType, Operator,
    SearchRequest, Sort, SortDirection, SystemClock,
};

pub use shape::{VIA_FIELD, VIA_POLL};
pub use store::{ListCursor, ObjectCursor, PollStore, StoreError};

/// Search pages one run reads per object type before it lets the next run go on; a run that
/// stops there is run again at once (the budget paces it).
const MAX_PAGES_PER_RUN: usize = 100;
/// Refresh pages one run reads per object type: a refresh is never urgent.
const REFRESH_PAGES_PER_RUN: usize = 20;
/// Deleted records are listed 100 a page; HubSpot keeps them 90 days.
const ARCHIVED_PAGE: u32 = hubspot::MAX_ARCHIVED_PAGE;
const MAX_ARCHIVED_PAGES: usize = 10_000;
/// List members are read 250 a page.
const LIST_PAGE: u32 = hubspot::MAX_LIST_PAGE;
const MAX_LIST_PAGES: usize = 10_000;
/// Events sent to Kafka at once.
const PRODUCE_CHUNK: usize = 1_000;
/// How long one chunk may wait for room in the producer's queue, and for Kafka to confirm it.
const PRODUCE_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often each type's old record marks are pruned.
const PRUNE_EVERY_MS: i64 = 86_400_000;

/// The object types polled: those HubSpot sends webhook events for.
pub const POLLED_TYPES: [ObjectType; 3] = [
    ObjectType::Contacts,
    ObjectType::Companies,
    ObjectType::Deals,
];

/// The property a type's records are searched by: contacts `lastmodifieddate`, other objects
/// `hs_lastmodifieddate`.
pub fn modified_property(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Contacts => "lastmodifieddate",
        _ => "hs_lastmodifieddate",
    }
}

/// One team to poll, as the stage wiring gives it: the team's client (its budget shared with
/// the team's sink) and, per object type, the HubSpot properties to watch.
#[derive(Debug, Clone)]
pub struct PollTarget {
    pub team: String,
    pub portal: u64,
    pub client: HubSpotClient,
    /// Per object type polled, the properties whose changes are sent. A type mapped to no
    /// property still has its creations and deletions sent; a type not in the map is not polled.
    pub watched: BTreeMap<ObjectType, Vec<String>>,
    /// The ids of the HubSpot lists the team follows (`[[lists]] list_id`).
    pub lists: Vec<String>,
}

/// `[stages.inbound]` as the poller uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSettings {
    pub interval: Duration,
    pub page_size: u32,
    pub search_lag: Duration,
    pub poll_from_ms: Option<i64>,
    pub refresh_interval: Option<Duration>,
    pub archived_every: Duration,
    pub lists_every: Duration,
}

impl PollSettings {
    pub fn from_config(stage: &InboundStage) -> Self {
        PollSettings {
            interval: stage.poll_interval,
            page_size: u32::try_from(stage.page_size)
                .unwrap_or(hubspot::request::MAX_SEARCH_LIMIT)
                .clamp(1, hubspot::request::MAX_SEARCH_LIMIT),
            search_lag: stage.search_lag,
            poll_from_ms: stage.poll_from_ms(),
            refresh_interval: stage.refresh_interval,
            archived_every: stage.poll_archived_every,
            lists_every: stage.poll_lists_every,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Why a part of a run failed; nothing of it was stored, the next run repeats it.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    HubSpot(#[from] hubspot::Error),
    #[error("reading record {id}: {error}")]
    Read {
        id: String,
        error: hubspot::InputError,
    },
    #[error("{0}: the events are read again at the next poll")]
    Kafka(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PollError {
    /// Whether HubSpot refused the team's token: polling the team's other parts is pointless.
    pub fn is_auth(&self) -> bool {
        matches!(self, PollError::HubSpot(error) if matches!(error.class(), Some(ErrorClass::Auth { .. })))
    }
}

/// A part of a run that failed.
#[derive(Debug)]
pub struct PollFailure {
    /// `contacts`, `companies deletions`, `list 42`...
    pub part: String,
    pub error: PollError,
}

/// What one run of a team did.
#[derive(Debug, Default)]
pub struct PollReport {
    /// Events put on the topic (and confirmed), per kind.
    pub emitted: BTreeMap<&'static str, u64>,
    pub failures: Vec<PollFailure>,
    /// A walk stopped at its page limit with more to read: the next run should follow at once.
    pub behind: bool,
}

impl PollReport {
    pub fn total(&self) -> u64 {
        self.emitted.values().sum()
    }

    /// Events of one kind: `property_change`, `creation`, `deletion`, `membership_added`,
    /// `membership_removed`.
    pub fn count(&self, kind: &str) -> u64 {
        self.emitted.get(kind).copied().unwrap_or(0)
    }

    fn fail(&mut self, part: impl Into<String>, error: PollError) {
        let part = part.into();
        let label = part.split_whitespace().next().unwrap_or("poll").to_string();
        metrics::counter!("hubsync_poll_failures_total", "part" => label).increment(1);
        self.failures.push(PollFailure { part, error });
    }
}

/// The teams to poll, kept up to date by the stage as team files change. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PollTargets {
    inner: Arc<Mutex<TargetsInner>>,
    changed: Arc<watch::Sender<u64>>,
}

#[derive(Debug, Default)]
struct TargetsInner {
    version: u64,
    /// team -> (the version it was set at, its target).
    targets: BTreeMap<String, (u64, Arc<PollTarget>)>,
}

impl Default for PollTargets {
    fn default() -> Self {
        PollTargets {
            inner: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl PollTargets {
    /// Polls `target`'s team with these settings from now on (a team already polled restarts
    /// with them; its cursors are kept).
    pub fn set(&self, target: PollTarget) {
        let version = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.version += 1;
            let version = inner.version;
            inner
                .targets
                .insert(target.team.clone(), (version, Arc::new(target)));
            version
        };
        self.changed.send_replace(version);
    }

    /// Stops polling `team` (paused, disconnected, removed); its cursors are kept.
    pub fn remove(&self, team: &str) {
        let version = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.targets.remove(team).is_none() {
                return;
            }
            inner.version += 1;
            inner.version
        };
        self.changed.send_replace(version);
    }

    /// The teams polled.
    pub fn teams(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.targets.keys().cloned().collect()
    }

    fn snapshot(&self) -> BTreeMap<String, (u64, Arc<PollTarget>)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.targets.clone()
    }
}

/// The poller of every team in [`PollTargets`].
pub struct Poller {
    settings: PollSettings,
    store: PollStore,
    producer: FutureProducer,
    topic: String,
    targets: PollTargets,
    clock: Arc<dyn Clock>,
    /// Teams whose polling fell [`BEHIND_LABELLED_SECONDS`] behind: labelled in metrics for good.
    behind: Arc<Mutex<HashSet<String>>>,
}

/// How far behind HubSpot a team's polling is before `hubsync_poll_behind_seconds` names it:
/// volume and health metrics carry a `team` label only for teams that went wrong, so the series
/// stay with them (a label for each of 10,000 teams and three object types would be 30,000).
pub const BEHIND_LABELLED_SECONDS: f64 = 300.0;

/// A team's polling task and how to stop it.
struct Running {
    version: u64,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Poller {
    /// A poller writing to `topic` (`[topics] hubspot_webhooks`) through `producer`, remembering
    /// where it stands in `store`, for the teams in `targets`.
    pub fn new(
        settings: PollSettings,
        store: PollStore,
        producer: FutureProducer,
        topic: impl Into<String>,
        targets: PollTargets,
    ) -> Self {
        Poller {
            settings,
            store,
            producer,
            topic: topic.into(),
            targets,
            clock: Arc::new(SystemClock::new()),
            behind: Arc::default(),
        }
    }

    /// The same poller reading the time from `clock` (tests move it by hand, as HubSpot's
    /// sandbox does its own).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Poller { clock, ..self }
    }

    /// Polls every team in the targets, each on its own task every `poll_interval` (first runs
    /// spread over one interval), starting and stopping tasks as the targets change, until
    /// `stopping`. A run in progress is abandoned at the stop: what it stored is consistent, and
    /// what it sent unstored is sent again (and deduped) after the restart.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        let poller = Arc::new(self);
        let mut changes = poller.targets.changed.subscribe();
        let mut running: HashMap<String, Running> = HashMap::new();
        info!(
            interval = %humantime::format_duration(poller.settings.interval),
            "poller started"
        );
        loop {
            let wanted = poller.targets.snapshot();
            running.retain(|team, task| {
                let keep = wanted.get(team).is_some_and(|(v, _)| *v == task.version);
                if !keep {
                    let _ = task.stop.send(true);
                }
                keep
            });
            for (team, (version, target)) in wanted {
                if running.contains_key(&team) {
                    continue;
                }
                let (stop, stopped) = watch::channel(false);
                let task = tokio::spawn(team_loop(poller.clone(), target, stopped));
                running.insert(
                    team,
                    Running {
                        version,
                        stop,
                        task,
                    },
                );
            }
            if *stopping.borrow() {
                break;
            }
            tokio::select! {
                changed = stopping.changed() => if changed.is_err() || *stopping.borrow() {
                    break;
                },
                _ = changes.changed() => {}
            }
        }
        for (_, task) in running.drain() {
            let _ = task.stop.send(true);
            let _ = task.task.await;
        }
        info!("poller stopped");
    }

    /// One run for one team: every watched type's changes, and whatever else is due (deletions,
    /// the refresh, the lists). Each part that fails is reported and left for the next run; an
    /// auth failure or Kafka failing ends the run.
    pub async fn poll_once(&self, target: &PollTarget) -> PollReport {
        let mut report = PollReport::default();
        let now = self.clock.now_ms();
        let result: Result<(), ()> = hubspot::budget::backfill(async {
            for (object, watched) in &target.watched {
                if !POLLED_TYPES.contains(object) {
                    debug!(team = target.team, %object, "not a type hubsync polls: skipped");
                    continue;
                }
                self.poll_type(target, *object, watched, now, &mut report)
                    .await?;
            }
            for list_id in &target.lists {
                if let Err(error) = self.poll_list(target, list_id, now, &mut report).await {
                    let stop = matches!(error, PollError::Kafka(_)) || error.is_auth();
                    report.fail(format!("list {list_id}"), error);
                    if stop {
                        return Err(());
                    }
                }
            }
            Ok(())
        })
        .await;
        if result.is_ok()
            && let Err(error) = self.store.flush().await
        {
            report.fail("state", error.into());
        }
        for failure in &report.failures {
            warn!(team = target.team, part = failure.part, error = %failure.error, "poll failed: retried at the next poll");
        }
        report
    }

    /// The parts of one type: changes, then what is due of deletions and the refresh. Returns
    /// `Err` when the run should end (auth, Kafka).
    async fn poll_type(
        &self,
        target: &PollTarget,
        object: ObjectType,
        watched: &[String],
        now: i64,
        report: &mut PollReport,
    ) -> Result<(), ()> {
        let upper = now.saturating_sub(millis(self.settings.search_lag));
        let mut cursor = match self.store.cursor(&target.team, target.portal, object) {
            Ok(Some(cursor)) => cursor,
            Ok(None) => {
                let origin = self.settings.poll_from_ms.unwrap_or(upper);
                info!(team = target.team, %object, origin, "first poll of this type: changes from origin on are sent");
                ObjectCursor::start(origin, now)
            }
            Err(error) => {
                report.fail(object.path_name(), error.into());
                return Ok(());
            }
        };
        let outcome = self
            .poll_changes(target, object, watched, &mut cursor, now, report)
            .await;
        if !self.settle(target, object, "", outcome, &cursor, report)? {
            return Ok(());
        }
        let outcome = self
            .poll_deletions(target, object, &mut cursor, now, report)
            .await;
        if !self.settle(target, object, " deletions", outcome, &cursor, report)? {
            return Ok(());
        }
        let outcome = self
            .poll_refresh(target, object, watched, &mut cursor, now, report)
            .await;
        if !self.settle(target, object, " refresh", outcome, &cursor, report)? {
            return Ok(());
        }
        let behind = (now - cursor.live.from_ms).max(0) as f64 / 1000.0;
        let labelled = {
            let mut teams = self.behind.lock().unwrap_or_else(|e| e.into_inner());
            if behind >= BEHIND_LABELLED_SECONDS {
                teams.insert(target.team.clone());
            }
            teams.contains(&target.team)
        };
        if labelled {
            metrics::gauge!("hubsync_poll_behind_seconds", "team" => target.team.clone(), "object" => object.path_name())
                .set(behind);
        }
        Ok(())
    }

    /// Stores the cursor after a part and reports the part's failure. `Ok(true)`: go on with
    /// the type; `Ok(false)`: leave the type for this run; `Err`: end the run (auth, Kafka).
    fn settle(
        &self,
        target: &PollTarget,
        object: ObjectType,
        part: &str,
        outcome: Result<(), PollError>,
        cursor: &ObjectCursor,
        report: &mut PollReport,
    ) -> Result<bool, ()> {
        let saved = self
            .store
            .put_cursor(&target.team, target.portal, object, cursor);
        let mut go_on = true;
        if let Err(error) = outcome {
            let stop = matches!(error, PollError::Kafka(_)) || error.is_auth();
            report.fail(format!("{object}{part}"), error);
            if stop {
                return Err(());
            }
            go_on = false;
        }
        if let Err(error) = saved {
            report.fail(format!("{object}{part}"), error.into());
            go_on = false;
        }
        Ok(go_on)
    }

    /// The live walk: records modified since the cursor, their versions not sent yet.
    async fn poll_changes(
        &self,
        target: &PollTarget,
        object: ObjectType,
        watched: &[String],
        cursor: &mut ObjectCursor,
        now: i64,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let upper = now.saturating_sub(millis(self.settings.search_lag));
        let mut walk = Walk::new(cursor.live, upper);
        let mut pages = 0;
        while let Some(query) = walk.query() {
            if pages == MAX_PAGES_PER_RUN {
                report.behind = true;
                break;
            }
            pages += 1;
            let (ids, seen, more) = self.search(target, object, query).await?;
            let default_since = cursor.default_mark();
            self.send_records(target, object, watched, &ids, report, |mark| {
                Emit::Changes {
                    since_ms: mark.unwrap_or(default_since),
                    upper_ms: upper,
                }
            })
            .await?;
            cursor.live = walk.advance(&seen, more);
            self.store
                .put_cursor(&target.team, target.portal, object, cursor)?;
        }
        if now - cursor.pruned_at_ms >= PRUNE_EVERY_MS {
            let below = cursor.live.from_ms.saturating_sub(store::MARK_HORIZON_MS);
            if below > cursor.pruned_below_ms {
                let pruned = self
                    .store
                    .prune_marks(&target.team, target.portal, object, below)?;
                debug!(team = target.team, %object, pruned, "old record marks pruned");
                cursor.pruned_below_ms = below;
            }
            cursor.pruned_at_ms = now;
        }
        Ok(())
    }

    /// Deleted records, when a listing is due: `<object>.deletion` for each archived since the
    /// last listing (and at least `search_lag` ago, as for changes).
    async fn poll_deletions(
        &self,
        target: &PollTarget,
        object: ObjectType,
        cursor: &mut ObjectCursor,
        now: i64,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        if now - cursor.archived_polled_ms < millis(self.settings.archived_every) {
            return Ok(());
        }
        let upper = now.saturating_sub(millis(self.settings.search_lag));
        let since = cursor.archived_ms;
        let mut after: Option<String> = None;
        let mut complete = false;
        for _ in 0..MAX_ARCHIVED_PAGES {
            let page = target
                .client
                .archived_page(object, after.as_deref(), ARCHIVED_PAGE, &[])
                .await?;
            let events: Vec<Synthetic> = page
                .results
                .iter()
                .filter_map(|record| {
                    let id = record.id.parse::<u64>().ok()?;
                    let at = record.archived_at_ms.or(record.updated_ms)?;
                    (at > since && at <= upper)
                        .then(|| shape::deletion(target.portal, object, id, at))
                })
                .collect();
            self.produce(target, &events, report).await?;
            match page.next_after {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        cursor.archived_polled_ms = now;
        if complete {
            cursor.archived_ms = cursor.archived_ms.max(upper);
        } else {
            warn!(team = target.team, %object, pages = MAX_ARCHIVED_PAGES, "more deleted records than one listing reads: the next listing starts over");
        }
        Ok(())
    }

    /// The refresh, when one is due or in progress: a few more pages of the full walk, each
    /// record's watched properties sent at their current version.
    async fn poll_refresh(
        &self,
        target: &PollTarget,
        object: ObjectType,
        watched: &[String],
        cursor: &mut ObjectCursor,
        now: i64,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let Some(every) = self.settings.refresh_interval else {
            cursor.refresh = None;
            return Ok(());
        };
        let mut refresh = match cursor.refresh {
            Some(refresh) => refresh,
            None if cursor
                .refresh_started_ms
                .is_none_or(|at| now - at >= millis(every)) =>
            {
                let upper = now.saturating_sub(millis(self.settings.search_lag));
                info!(team = target.team, %object, "refresh started");
                cursor.refresh_started_ms = Some(now);
                store::Refresh {
                    position: Position::at(0),
                    upper_ms: upper,
                }
            }
            None => return Ok(()),
        };
        let mut walk = Walk::new(refresh.position, refresh.upper_ms);
        let mut pages = 0;
        while let Some(query) = walk.query() {
            if pages == REFRESH_PAGES_PER_RUN {
                break;
            }
            pages += 1;
            let (ids, seen, more) = self.search(target, object, query).await?;
            let upper_ms = refresh.upper_ms;
            self.send_records(target, object, watched, &ids, report, |_| Emit::Current {
                upper_ms,
            })
            .await?;
            refresh.position = walk.advance(&seen, more);
            cursor.refresh = Some(refresh);
            self.store
                .put_cursor(&target.team, target.portal, object, cursor)?;
        }
        if walk.finished() {
            info!(team = target.team, %object, "refresh done");
            cursor.refresh = None;
        } else {
            cursor.refresh = Some(refresh);
        }
        Ok(())
    }

    /// One search page: the ids found (in order, once each), the records the walk can place,
    /// and whether more follow.
    async fn search(
        &self,
        target: &PollTarget,
        object: ObjectType,
        query: Query,
    ) -> Result<(Vec<u64>, Vec<Seen>, bool), PollError> {
        let request = search_request(object, query, self.settings.page_size);
        let page = target.client.search(object, &request).await?;
        let (ids, seen) = seen_records(object, &page.results);
        if ids.len() < page.results.len() {
            warn!(team = target.team, %object, "search results without a numeric id were skipped");
        }
        Ok((ids, seen, page.next_after.is_some()))
    }

    /// Reads `ids` with the history of the watched properties, sends what `emit` (given each
    /// record's mark) says, then raises the records' marks to what was sent.
    async fn send_records(
        &self,
        target: &PollTarget,
        object: ObjectType,
        watched: &[String],
        ids: &[u64],
        report: &mut PollReport,
        emit: impl Fn(Option<i64>) -> Emit,
    ) -> Result<(), PollError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(u64::to_string).collect();
        let mut with_history: Vec<String> = watched.to_vec();
        if !with_history.iter().any(|p| p == "createdate") {
            with_history.push("createdate".to_owned());
        }
        let reads = target
            .client
            .batch_read_history(object, &keys, &[], &with_history)
            .await?;
        let marks = self.store.marks(&target.team, target.portal, object, ids)?;
        let mut events = Vec::new();
        let mut raised = BTreeMap::new();
        for read in reads {
            let Ok(id) = read.key.parse::<u64>() else {
                continue;
            };
            let history = match read.result {
                Ok(history) => history,
                // Deleted since it was found: the listing of deleted records reports it.
                Err(error) if error.class == ErrorClass::NotFound => continue,
                Err(error) => {
                    return Err(PollError::Read {
                        id: read.key,
                        error,
                    });
                }
            };
            let found = shape::record_events(
                target.portal,
                object,
                id,
                &history,
                watched,
                emit(marks.get(&id).copied()),
            );
            if let Some(newest) = found.iter().map(|e| e.occurred_at).max() {
                raised.insert(id, newest);
            }
            events.extend(found);
        }
        self.produce(target, &events, report).await?;
        self.store
            .raise_marks(&target.team, target.portal, object, &raised)?;
        Ok(())
    }

    /// A followed list, when a read is due: who joined since the last read, and, after a full
    /// read of a list HubSpot has finished processing, who left.
    async fn poll_list(
        &self,
        target: &PollTarget,
        list_id: &str,
        now: i64,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let (team, portal) = (target.team.as_str(), target.portal);
        let mut state = self.store.list_cursor(team, portal, list_id)?;
        if state
            .read_ms
            .is_some_and(|at| now - at < millis(self.settings.lists_every))
        {
            return Ok(());
        }
        let info = target.client.list(list_id).await?;
        let type_id = info.object_type_id.as_deref();
        let known = self.store.members(team, portal, list_id)?;
        let mut present: HashSet<u64> = HashSet::with_capacity(known.len());
        let mut after: Option<String> = None;
        let mut complete = false;
        for _ in 0..MAX_LIST_PAGES {
            let page = target
                .client
                .list_memberships_page(list_id, after.as_deref(), LIST_PAGE)
                .await?;
            let joined = lists::newcomers(&known, &page.results, now, &mut present);
            let events: Vec<Synthetic> = joined
                .iter()
                .map(|(id, at)| shape::membership(portal, list_id, type_id, *id, true, *at))
                .collect();
            self.produce(target, &events, report).await?;
            self.store
                .update_members(team, portal, list_id, &joined, &HashSet::new())?;
            match page.next_after {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        let processed = lists::processed(&info);
        if complete && processed {
            let left = lists::leavers(&known, &present);
            let events: Vec<Synthetic> = left
                .iter()
                .map(|id| shape::membership(portal, list_id, type_id, *id, false, now))
                .collect();
            self.produce(target, &events, report).await?;
            self.store
                .update_members(team, portal, list_id, &[], &left.into_iter().collect())?;
        } else {
            debug!(
                team,
                list_id, complete, processed, "members who left are looked for at the next read"
            );
        }
        state.read_ms = Some(now);
        self.store.put_list_cursor(team, portal, list_id, &state)?;
        Ok(())
    }

    /// Puts `events` on the topic with the receiver's key and headers and waits until Kafka
    /// confirmed every one.
    async fn produce(
        &self,
        target: &PollTarget,
        events: &[Synthetic],
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        for chunk in events.chunks(PRODUCE_CHUNK) {
            let read_at = self.clock.now_ms();
            let keys: Vec<String> = chunk
                .iter()
                .map(|e| format!("{}:{}", target.portal, e.object_id))
                .collect();
            let payloads: Vec<Vec<u8>> = chunk
                .iter()
                .map(|e| e.value.to_string().into_bytes())
                .collect();
            let records = keys.iter().zip(&payloads).map(|(key, payload)| Outgoing {
                key,
                payload,
                headers: publish::headers(&target.team, target.portal, read_at),
            });
            publish::produce_confirmed(
                &self.producer,
                &self.topic,
                records,
                PRODUCE_QUEUE_TIMEOUT,
                PRODUCE_TIMEOUT,
            )
            .await
            .map_err(PollError::Kafka)?;
            for event in chunk {
                let kind = event.kind.label();
                *report.emitted.entry(kind).or_default() += 1;
                metrics::counter!("hubsync_poll_events_total", "kind" => kind).increment(1);
            }
        }
        Ok(())
    }
}

/// Polls one team every interval until told to stop; a run left behind is followed at once.
async fn team_loop(poller: Arc<Poller>, target: Arc<PollTarget>, mut stop: watch::Receiver<bool>) {
    let interval = poller.settings.interval;
    // Spread the teams' first runs over one interval.
    let first = interval.mul_f64(rand::random::<f64>());
    let mut next = tokio::time::Instant::now() + first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let started = tokio::time::Instant::now();
        let report = tokio::select! {
            report = poller.poll_once(&target) => report,
            _ = stop.changed() => return,
        };
        if report.total() > 0 {
            info!(team = target.team, events = report.total(), emitted = ?report.emitted, "poll sent changes");
        }
        next = if report.behind && report.failures.is_empty() {
            tokio::time::Instant::now()
        } else {
            started + interval
        };
    }
}

/// The search one walk step sends.
fn search_request(object: ObjectType, query: Query, page_size: u32) -> SearchRequest {
    let modified = modified_property(object);
    let (filters, sort) = match query {
        Query::Scan { from_ms, upper_ms } => (
            vec![
                Filter::gte(modified, from_ms.to_string()),
                Filter::compare(modified, Operator::Lte, upper_ms.to_string()),
            ],
            modified,
        ),
        // One millisecond as a closed range rather than EQ: how EQ compares a datetime is
        // documented loosely, a range of one millisecond cannot be read as a whole day.
        Query::Drain { ms, after_id } => (
            vec![
                Filter::gte(modified, ms.to_string()),
                Filter::compare(modified, Operator::Lte, ms.to_string()),
                Filter::compare("hs_object_id", Operator::Gt, after_id.to_string()),
            ],
            "hs_object_id",
        ),
    };
    SearchRequest {
        filter_groups: vec![FilterGroup { filters }],
        sorts: vec![Sort {
            property_name: sort.to_owned(),
            direction: SortDirection::Ascending,
        }],
        query: None,
        properties: vec![modified.to_owned(), "hs_object_id".to_owned()],
        limit: Some(page_size),
        after: None,
    }
}

/// A search page's records: their ids (in order, once each) and, for those whose modification
/// time can be read, where the walk places them.
fn seen_records(object: ObjectType, results: &[hubspot::Record]) -> (Vec<u64>, Vec<Seen>) {
    let modified = modified_property(object);
    let mut ids = Vec::with_capacity(results.len());
    let mut seen = Vec::with_capacity(results.len());
    let mut once = HashSet::new();
    for record in results {
        let Ok(id) = record.id.parse::<u64>() else {
            continue;
        };
        if !once.insert(id) {
            continue;
        }
        ids.push(id);
        let at = record
            .property(modified)
            .map(|v| serde_json::Value::String(v.to_owned()))
            .or_else(|| record.updated_at.clone().map(serde_json::Value::String))
            .and_then(|v| hubspot::response::timestamp_ms(&v));
        if let Some(modified_ms) = at {
            seen.push(Seen { id, modified_ms });
        }
    }
    (ids, seen)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scans_search_a_window_by_modified_time_and_drains_search_one_millisecond_by_id() {
        let scan = search_request(
            ObjectType::Contacts,
            Query::Scan {
                from_ms: 1_000,
                upper_ms: 2_000,
            },
            100,
        );
        assert_eq!(
            hubspot::request::search_body(&scan).unwrap(),
            json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1000"},
                    {"propertyName": "lastmodifieddate", "operator": "LTE", "value": "2000"},
                ]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["lastmodifieddate", "hs_object_id"],
                "limit": 100,
            })
        );
        let drain = search_request(
            ObjectType::Deals,
            Query::Drain {
                ms: 1_500,
                after_id: 77,
            },
            200,
        );
        assert_eq!(
            hubspot::request::search_body(&drain).unwrap(),
            json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "1500"},
                    {"propertyName": "hs_lastmodifieddate", "operator": "LTE", "value": "1500"},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": "77"},
                ]}],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": ["hs_lastmodifieddate", "hs_object_id"],
                "limit": 200,
            })
        );
    }

    #[test]
    fn search_results_are_placed_by_their_modified_time_in_any_form() {
        let record = |id: &str, modified: Option<&str>, updated: Option<&str>| hubspot::Record {
            id: id.into(),
            properties: modified
                .map(|m| BTreeMap::from([("hs_lastmodifieddate".to_owned(), Some(m.to_owned()))]))
                .unwrap_or_default(),
            updated_at: updated.map(str::to_owned),
            ..hubspot::Record::default()
        };
        let (ids, seen) = seen_records(
            ObjectType::Companies,
            &[
                record("5", Some("2026-01-01T00:00:00.000Z"), None),
                record("6", Some("1767225600001"), None),
                record("7", None, Some("2026-01-01T00:00:00.002Z")),
                record("8", None, None),
                record("x", Some("1"), None),
                record("5", Some("1"), None),
            ],
        );
        assert_eq!(ids, [5, 6, 7, 8]);
        assert_eq!(
            seen,
            [
                Seen {
                    id: 5,
                    modified_ms: 1_767_225_600_000
                },
                Seen {
                    id: 6,
                    modified_ms: 1_767_225_600_001
                },
                Seen {
                    id: 7,
                    modified_ms: 1_767_225_600_002
                },
            ]
        );
    }

    #[test]
    fn settings_come_from_the_inbound_section() {
        let stage = InboundStage {
            page_size: 500,
            poll_from: Some("2026-01-01T00:00:00Z".into()),
            ..InboundStage::default()
        };
        let settings = PollSettings::from_config(&stage);
        assert_eq!(settings.page_size, 200);
        assert_eq!(settings.poll_from_ms, Some(1_767_225_600_000));
        assert_eq!(settings.refresh_interval, None);
    }

    #[test]
    fn targets_are_set_replaced_and_removed_by_team() {
        let targets = PollTargets::default();
        let mut changes = targets.changed.subscribe();
        let client = HubSpotClient::new(
            hubspot::ClientSettings {
                base_url: "http://127.0.0.1:9".into(),
                request_timeout: Duration::from_secs(1),
                limits: hubspot::BudgetLimits::for_tier(hubspot::Tier::Starter),
                retry: hubspot::RetryParams::default(),
            },
            hubspot::Secret::new("t"),
        )
        .unwrap();
        let target = |team: &str| PollTarget {
            team: team.into(),
            portal: 1,
            client: client.clone(),
            watched: BTreeMap::new(),
            lists: vec![],
        };
        targets.set(target("acme"));
        targets.set(target("globex"));
        let first = targets.snapshot()["acme"].0;
        targets.set(target("acme"));
        assert!(
            targets.snapshot()["acme"].0 > first,
            "a new setting restarts the team"
        );
        targets.remove("globex");
        targets.remove("never-there");
        assert_eq!(targets.teams(), ["acme"]);
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), 4);
    }
}
