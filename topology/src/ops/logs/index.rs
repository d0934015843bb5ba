//! The outcomes index: the outcomes topic kept in a local sled database, so that a team's logs
//! over a week are answered from disk instead of by reading the topic from the range's start at
//! every call. `hubsync logs` keeps one in a cache directory and catches it up before it answers;
//! `hubsync run` keeps one for the admin API and tails the topic into it.
//!
//! One event, one entry: an outcome record whose event already has an entry replaces it when it
//! is newer (a redelivered or redriven event) and is dropped when it is older, so counts count
//! events, by their latest outcome.
//!
//! Everything lives in one tree, under one-letter prefixes, so that each catch-up step (its
//! records and the positions it read up to) lands in one atomic batch; a crash between two steps
//! re-reads at most one step, and re-reading a record changes nothing.
//!
//! ```text
//! o team 0 time partition offset        -> the outcome and where it was on the topic
//! e team 0 event_id                     -> time partition offset of the event's entry
//! t team 0 term 0 time partition offset -> ()     terms: label value, @domain of an email,
//!                                                  HubSpot id (lower case)
//! b team 0 minute                       -> counts by status, reason and source topic (JSON)
//! n team                                -> ()     the teams seen
//! p topic                               -> next offset per partition (JSON)
//! ```
//!
//! Entries are written compactly (postcard, behind a format byte): 1.6 to 2.2 KB on disk per
//! outcome with sled's overhead (3.9 KB with JSON entries). sled's page compression would halve
//! that but triples the time to apply an outcome (zstd makes a context per page), measured at
//! 60 us per outcome without it; the outcomes index favours catching up fast.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use hubsync_schemas::{OutcomeStatus, SyncOutcome};
use serde::{Deserialize, Serialize};

use super::{Counts, LogPosition, LoggedOutcome, OutcomeFilter};
use crate::ops::range::Window;
use crate::ops::record::RecordLabel;
use crate::ops::scan::{Flow, ScanError, TopicReader};

/// Records applied in one atomic step while catching up.
pub const STEP: usize = 5_000;
const MINUTE_MS: i64 = 60_000;
/// Time, partition and offset: the tail of an entry's key.
const SUFFIX: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the outcomes index at {path} cannot be opened: {source}")]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("the outcomes index: {0}")]
    Storage(#[from] sled::Error),
    #[error("the outcomes index holds an entry it cannot read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// What one catch-up read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaughtUp {
    /// Outcome records read and applied.
    pub read: u64,
    /// Records on the topic that are not outcomes hubsync can read (left out).
    pub undecodable: u64,
}

/// Reads what `topic` holds past the index's positions into the index, in atomic steps.
pub async fn catch_up(
    index: &OutcomeIndex,
    reader: &TopicReader,
    topic: &str,
) -> Result<CaughtUp, IndexError> {
    let mut next = index.positions(topic)?;
    // A position past a partition's end: the topic was made again (or the brokers are others);
    // what the index holds is of another topic.
    let bounds = reader.bounds(topic)?;
    if next
        .iter()
        .any(|(partition, at)| bounds.get(partition).is_none_or(|(_, high)| at > high))
    {
        tracing::warn!(
            topic,
            "the outcomes index is ahead of the topic: indexing it again"
        );
        index.clear()?;
        next.clear();
    }
    let mut pending = Vec::new();
    let mut caught = CaughtUp::default();
    let mut failed = None;
    reader
        .scan_from::<SyncOutcome>(topic, &next, |scanned| {
            let log = LogPosition::of(&scanned.message);
            match scanned.record {
                Ok(outcome) => {
                    caught.read += 1;
                    pending.push((log, outcome));
                }
                Err(error) => {
                    tracing::debug!(%error, offset = log.offset, "undecodable outcome record");
                    caught.undecodable += 1;
                    // Its position still moves on (it will not decode the next time either),
                    // after what was read before it.
                    let before = std::mem::take(&mut pending);
                    if let Err(error) = index
                        .apply(topic, before)
                        .and_then(|()| index.skip(topic, &log))
                    {
                        failed = Some(error);
                        return Flow::Stop;
                    }
                }
            }
            if pending.len() >= STEP
                && let Err(error) = index.apply(topic, std::mem::take(&mut pending))
            {
                failed = Some(error);
                return Flow::Stop;
            }
            Flow::Continue
        })
        .await?;
    if let Some(error) = failed {
        return Err(error);
    }
    if !pending.is_empty() {
        index.apply(topic, pending)?;
    }
    Ok(caught)
}

/// What is kept of one outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    outcome: SyncOutcome,
    log: LogPosition,
}

/// Counts of one minute, by status, reason code and source topic.
type Bucket = BTreeMap<String, i64>;

fn bucket_key(outcome: &SyncOutcome) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        outcome.status.as_str(),
        outcome.reason_code,
        outcome.source_topic
    )
}

/// Times as big-endian bytes that sort as the numbers do, negative ones first.
fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(bytes: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(raw) ^ (1 << 63)) as i64
}

fn suffix(time: i64, partition: i32, offset: i64) -> [u8; SUFFIX] {
    let mut out = [0u8; SUFFIX];
    out[..8].copy_from_slice(&time_bytes(time));
    out[8..12].copy_from_slice(&partition.to_be_bytes());
    out[12..].copy_from_slice(&offset.to_be_bytes());
    out
}

fn key(kind: u8, team: &str, rest: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + team.len() + rest.iter().map(|r| r.len()).sum::<usize>());
    out.push(kind);
    out.extend_from_slice(team.as_bytes());
    out.push(0);
    for part in rest {
        out.extend_from_slice(part);
    }
    out
}

/// What people search an outcome by, lower case.
fn terms(outcome: &SyncOutcome) -> BTreeSet<String> {
    let mut terms = BTreeSet::new();
    if let Some(label) = RecordLabel::of_outcome(outcome) {
        let value = label.value.to_ascii_lowercase();
        if label.kind == "email"
            && let Some((_, domain)) = value.rsplit_once('@')
        {
            terms.insert(format!("@{domain}"));
        }
        terms.insert(value);
    }
    if let Some(id) = outcome.hubspot_id.as_deref().filter(|id| !id.is_empty()) {
        terms.insert(id.to_ascii_lowercase());
    }
    // The event id is not a term: its `e` key finds the entry.
    terms
}

/// The terms a record filter's value may be indexed under: the value itself, and for a bare
/// domain the emails at it.
fn query_terms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if !value.contains('@') {
        out.push(format!("@{value}"));
    }
    out
}

/// A query's answer: the newest matching outcomes (oldest first) and how many match in all.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub outcomes: Vec<LoggedOutcome>,
    pub matched: u64,
}

/// Outcomes per time step, by status, for charts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Series {
    /// The start of each step, in milliseconds.
    pub starts: Vec<i64>,
    pub step_ms: i64,
    /// Status -> one count per step.
    pub by_status: BTreeMap<String, Vec<u64>>,
}

/// The outcomes index; see the module's documentation.
#[derive(Clone)]
pub struct OutcomeIndex {
    db: sled::Db,
    tree: sled::Tree,
}

impl OutcomeIndex {
    /// Opens (or makes) the index in `dir`. Fails when another process holds it.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|source| IndexError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        let tree = db.open_tree("outcomes")?;
        Ok(OutcomeIndex { db, tree })
    }

    /// Where the index has read `topic` up to: partition -> next offset.
    pub fn positions(&self, topic: &str) -> Result<BTreeMap<i32, i64>, IndexError> {
        match self.tree.get(key(b'p', topic, &[]))? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| IndexError::Corrupt(e.to_string()))
            }
            None => Ok(BTreeMap::new()),
        }
    }

    /// A step of catching up: records read from `topic` at their positions, applied with the
    /// positions after them in one atomic batch.
    pub fn apply(
        &self,
        topic: &str,
        records: Vec<(LogPosition, SyncOutcome)>,
    ) -> Result<(), IndexError> {
        let mut positions = self.positions(topic)?;
        let mut step = Step::new(&self.tree);
        for (log, outcome) in records {
            let next = positions.entry(log.partition).or_insert(0);
            if log.offset < *next {
                continue; // applied already: positions land with their entries
            }
            *next = log.offset + 1;
            step.add(Entry { outcome, log })?;
        }
        let mut batch = step.finish()?;
        batch.insert(key(b'p', topic, &[]), json(&positions)?);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Moves the position past a record that is not an outcome.
    fn skip(&self, topic: &str, log: &LogPosition) -> Result<(), IndexError> {
        let mut positions = self.positions(topic)?;
        let next = positions.entry(log.partition).or_insert(0);
        *next = (*next).max(log.offset + 1);
        self.tree.insert(key(b'p', topic, &[]), json(&positions)?)?;
        Ok(())
    }

    /// Forgets entries older than `before` (rounded down to its minute), with their counts.
    pub fn prune(&self, before: i64) -> Result<u64, IndexError> {
        let before = before.div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut removed = 0;
        for team in self.teams()? {
            let mut step = Step::new(&self.tree);
            let start = key(b'o', &team, &[]);
            let end = key(b'o', &team, &[&time_bytes(before)]);
            for item in self.tree.range(start..end) {
                let (k, v) = item?;
                let entry = decode(&v)?;
                step.remove_entry(&team, &k[k.len() - SUFFIX..], &entry)?;
                removed += 1;
            }
            let start = key(b'b', &team, &[]);
            let end = key(b'b', &team, &[&time_bytes(before.div_euclid(MINUTE_MS))]);
            let mut gone = Vec::new();
            for item in self.tree.range(start..end) {
                let (k, _) = item?;
                gone.push(k.to_vec());
            }
            let mut batch = step.finish()?;
            for k in gone {
                batch.remove(k);
            }
            self.tree.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// Forgets everything.
    pub fn clear(&self) -> Result<(), IndexError> {
        self.tree.clear()?;
        Ok(())
    }

    /// Makes what was applied durable.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.tree.scan_prefix([b'o']).count()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.scan_prefix([b'o']).next().is_none()
    }

    /// The teams the index has entries of (the empty team: records too broken to name one).
    pub fn teams(&self) -> Result<Vec<String>, IndexError> {
        let mut teams = Vec::new();
        for item in self.tree.scan_prefix([b'n']) {
            let (k, _) = item?;
            let name = &k[1..k.len() - 1];
            teams.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(teams)
    }

    /// The teams a filter reads: its own and the empty one, or every team.
    fn teams_of(&self, filter: &OutcomeFilter) -> Result<Vec<String>, IndexError> {
        Ok(match &filter.team {
            Some(team) => {
                let mut teams = vec![team.clone()];
                if !team.is_empty() {
                    teams.push(String::new());
                }
                teams
            }
            None => self.teams()?,
        })
    }

    /// The newest `limit` outcomes that match (oldest first; every one without a limit) and
    /// how many match in all.
    pub fn query(
        &self,
        filter: &OutcomeFilter,
        window: Window,
        limit: Option<usize>,
    ) -> Result<Page, IndexError> {
        let mut newest = super::Newest::new(limit);
        let matched;
        if let Some(record) = &filter.record {
            // The terms narrow the candidates; the filter decides.
            let mut seen = BTreeSet::new();
            let mut count = 0u64;
            for team in self.teams_of(filter)? {
                // An event id, as it was given or in lower case (event ids keep their case).
                let ids: BTreeSet<&str> = [record.given(), record.value()].into();
                for id in ids {
                    if let Some(tail) = self.tree.get(key(b'e', &team, &[id.as_bytes()]))?
                        && window.contains(time_of(&tail))
                        && seen.insert((team.clone(), tail.to_vec()))
                        && let Some(v) = self.tree.get(key(b'o', &team, &[&tail]))?
                    {
                        let entry = decode(&v)?;
                        if filter.matches(&entry.outcome) {
                            count += 1;
                            newest.push(time_of(&tail), logged(entry));
                        }
                    }
                }
                for term in query_terms(record.value()) {
                    let prefix = key(b't', &team, &[term.as_bytes(), &[0]]);
                    for item in self.tree.scan_prefix(&prefix) {
                        let (k, _) = item?;
                        let tail = k[k.len() - SUFFIX..].to_vec();
                        let time = time_of(&tail);
                        if !window.contains(time) || !seen.insert((team.clone(), tail.clone())) {
                            continue;
                        }
                        let Some(v) = self.tree.get(key(b'o', &team, &[&tail]))? else {
                            continue;
                        };
                        let entry = decode(&v)?;
                        if filter.matches(&entry.outcome) {
                            count += 1;
                            newest.push(time, logged(entry));
                        }
                    }
                }
            }
            matched = count;
        } else {
            for team in self.teams_of(filter)? {
                let (start, end) = range(b'o', &team, window);
                let mut taken = 0usize;
                for item in self.tree.range(start..end).rev() {
                    if limit.is_some_and(|cap| taken >= cap) {
                        break;
                    }
                    let (_, v) = item?;
                    let entry = decode(&v)?;
                    if filter.matches(&entry.outcome) {
                        taken += 1;
                        newest.push(entry.outcome.processed_time, logged(entry));
                    }
                }
            }
            matched = self.counts(filter, window)?.total;
        }
        Ok(Page {
            outcomes: newest.into_sorted(),
            matched,
        })
    }

    /// Events counted by their latest outcome's status and reason code.
    pub fn counts(&self, filter: &OutcomeFilter, window: Window) -> Result<Counts, IndexError> {
        let mut counts = Counts::default();
        if filter.record.is_some() {
            for logged in self.query_all(filter, window)? {
                counts.add(&logged.outcome);
            }
            return Ok(counts);
        }
        for team in self.teams_of(filter)? {
            self.walk_minutes(&team, filter, window, &mut |_, outcome_key, n| {
                let mut parts = outcome_key.split('\u{1f}');
                let (Some(status), Some(reason)) = (parts.next(), parts.next()) else {
                    return;
                };
                let n = u64::try_from(n).unwrap_or(0);
                if n == 0 {
                    return;
                }
                counts.total += n;
                *counts.by_status.entry(status.to_string()).or_insert(0) += n;
                *counts.by_reason.entry(reason.to_string()).or_insert(0) += n;
            })?;
        }
        Ok(counts)
    }

    /// Outcomes per step of `step_ms` in `window`, by status (charts).
    pub fn series(
        &self,
        filter: &OutcomeFilter,
        since: i64,
        until: i64,
        step_ms: i64,
    ) -> Result<Series, IndexError> {
        let step_ms = step_ms.max(MINUTE_MS) / MINUTE_MS * MINUTE_MS;
        let first = since.div_euclid(step_ms) * step_ms;
        let steps = usize::try_from((until - first) / step_ms + 1).unwrap_or(0);
        let mut series = Series {
            starts: (0..steps).map(|i| first + i as i64 * step_ms).collect(),
            step_ms,
            by_status: BTreeMap::new(),
        };
        let window = Window {
            since: Some(first),
            until: Some(until),
        };
        let whole = OutcomeFilter {
            record: None,
            ..filter.clone()
        };
        for team in self.teams_of(&whole)? {
            self.walk_minutes(&team, &whole, window, &mut |time, outcome_key, n| {
                let Some(status) = outcome_key.split('\u{1f}').next() else {
                    return;
                };
                let Ok(slot) = usize::try_from((time - first) / step_ms) else {
                    return;
                };
                let row = series
                    .by_status
                    .entry(status.to_string())
                    .or_insert_with(|| vec![0; steps]);
                if let Some(cell) = row.get_mut(slot) {
                    *cell += u64::try_from(n).unwrap_or(0);
                }
            })?;
        }
        Ok(series)
    }

    fn query_all(
        &self,
        filter: &OutcomeFilter,
        window: Window,
    ) -> Result<Vec<LoggedOutcome>, IndexError> {
        Ok(self.query(filter, window, None)?.outcomes)
    }

    /// Hands `visit` the counts in `window` that the filter's status, reason and topic keep, as
    /// (time, status/reason/topic key, count): whole minutes from their buckets, the window's
    /// partial minutes at its ends from the entries themselves.
    fn walk_minutes(
        &self,
        team: &str,
        filter: &OutcomeFilter,
        window: Window,
        visit: &mut dyn FnMut(i64, &str, i64),
    ) -> Result<(), IndexError> {
        let keeps = |k: &str| {
            let mut parts = k.split('\u{1f}');
            let (status, reason, topic) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            (filter.statuses.is_empty()
                || filter
                    .statuses
                    .contains(&OutcomeStatus::from_symbol(status)))
                && (filter.reasons.is_empty()
                    || filter
                        .reasons
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(reason)))
                && filter.topic.as_deref().is_none_or(|t| t == topic)
        };
        // Whole minutes: [first_full, last_full) in minutes.
        let first_full = window
            .since
            .map(|s| (s + MINUTE_MS - 1).div_euclid(MINUTE_MS))
            .unwrap_or(i64::MIN / MINUTE_MS);
        let end_full = window
            .until
            .map(|u| (u + 1).div_euclid(MINUTE_MS))
            .unwrap_or(i64::MAX / MINUTE_MS);
        if first_full < end_full {
            let start = key(b'b', team, &[&time_bytes(first_full)]);
            let end = key(b'b', team, &[&time_bytes(end_full)]);
            for item in self.tree.range(start..end) {
                let (k, v) = item?;
                let minute = time_of(&k[k.len() - 8..]);
                let bucket: Bucket =
                    serde_json::from_slice(&v).map_err(|e| IndexError::Corrupt(e.to_string()))?;
                for (outcome_key, n) in &bucket {
                    if keeps(outcome_key) {
                        visit(minute * MINUTE_MS, outcome_key, *n);
                    }
                }
            }
        }
        // The partial minutes at the ends, entry by entry.
        let mut edges = Vec::new();
        if first_full < end_full {
            if let Some(since) = window.since {
                edges.push((since, first_full * MINUTE_MS - 1));
            }
            if let Some(until) = window.until {
                edges.push((end_full * MINUTE_MS, until));
            }
        } else if let (Some(since), Some(until)) = (window.since, window.until) {
            edges.push((since, until));
        }
        for (from, to) in edges {
            if from > to {
                continue;
            }
            let (start, end) = range(
                b'o',
                team,
                Window {
                    since: Some(from),
                    until: Some(to),
                },
            );
            for item in self.tree.range(start..end) {
                let (_, v) = item?;
                let entry = decode(&v)?;
                let outcome_key = bucket_key(&entry.outcome);
                if keeps(&outcome_key) {
                    visit(entry.outcome.processed_time, &outcome_key, 1);
                }
            }
        }
        Ok(())
    }
}

/// The keys of `kind` entries of `team` inside `window`.
fn range(kind: u8, team: &str, window: Window) -> (Vec<u8>, Vec<u8>) {
    let start = match window.since {
        Some(since) => key(kind, team, &[&time_bytes(since)]),
        None => key(kind, team, &[]),
    };
    let end = match window.until.and_then(|u| u.checked_add(1)) {
        Some(after) => key(kind, team, &[&time_bytes(after)]),
        None => {
            let mut end = key(kind, team, &[]);
            // The byte after the separator: past every key of the team.
            if let Some(last) = end.last_mut() {
                *last = 1;
            }
            end
        }
    };
    (start, end)
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, IndexError> {
    serde_json::to_vec(value).map_err(|e| IndexError::Corrupt(e.to_string()))
}

/// The first byte of an entry: how the rest is written (postcard, this struct's fields).
const ENTRY_FORMAT: u8 = 1;

fn encode(entry: &Entry) -> Result<Vec<u8>, IndexError> {
    let mut out = vec![ENTRY_FORMAT];
    out.extend(postcard::to_stdvec(entry).map_err(|e| IndexError::Corrupt(e.to_string()))?);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<Entry, IndexError> {
    match bytes.split_first() {
        Some((&ENTRY_FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|e| IndexError::Corrupt(e.to_string()))
        }
        _ => Err(IndexError::Corrupt(
            "an entry of another format: remove the index directory, it is built again".into(),
        )),
    }
}

fn logged(entry: Entry) -> LoggedOutcome {
    LoggedOutcome::at(entry.outcome, entry.log)
}

/// One atomic step's writes, read back before they land; the minutes' counts it touches are
/// kept decoded until the step ends.
struct Step<'a> {
    tree: &'a sled::Tree,
    writes: HashMap<Vec<u8>, Option<Vec<u8>>>,
    buckets: HashMap<Vec<u8>, Bucket>,
}

impl<'a> Step<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Step {
            tree,
            writes: HashMap::new(),
            buckets: HashMap::new(),
        }
    }

    /// The step as one batch.
    fn finish(self) -> Result<sled::Batch, IndexError> {
        let mut batch = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        for (k, bucket) in self.buckets {
            if bucket.is_empty() {
                batch.remove(k);
            } else {
                batch.insert(k, json(&bucket)?);
            }
        }
        Ok(batch)
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        match self.writes.get(k) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.tree.get(k)?.map(|v| v.to_vec())),
        }
    }

    fn add(&mut self, entry: Entry) -> Result<(), IndexError> {
        let outcome = &entry.outcome;
        let team = outcome.team_id.clone();
        let tail = suffix(
            outcome.processed_time,
            entry.log.partition,
            entry.log.offset,
        );
        let entry_key = key(b'o', &team, &[&tail]);
        let event_key = key(b'e', &team, &[outcome.event_id.as_bytes()]);
        if let Some(held) = self.get(&event_key)? {
            if held.as_slice() > tail.as_slice() {
                return Ok(()); // an older outcome of an event with a newer one
            }
            if let Some(old) = self.get(&key(b'o', &team, &[&held]))? {
                let old = decode(&old)?;
                self.remove_entry(&team, &held, &old)?;
            }
        }
        self.writes.insert(event_key, Some(tail.to_vec()));
        for term in terms(outcome) {
            self.writes.insert(
                key(b't', &team, &[term.as_bytes(), &[0], &tail]),
                Some(vec![]),
            );
        }
        self.count(&team, outcome, 1)?;
        self.writes.insert(key(b'n', &team, &[]), Some(Vec::new()));
        self.writes.insert(entry_key, Some(encode(&entry)?));
        Ok(())
    }

    fn remove_entry(&mut self, team: &str, tail: &[u8], entry: &Entry) -> Result<(), IndexError> {
        let outcome = &entry.outcome;
        self.writes.insert(key(b'o', team, &[tail]), None);
        for term in terms(outcome) {
            self.writes
                .insert(key(b't', team, &[term.as_bytes(), &[0], tail]), None);
        }
        let event_key = key(b'e', team, &[outcome.event_id.as_bytes()]);
        if self.get(&event_key)?.as_deref() == Some(tail) {
            self.writes.insert(event_key, None);
        }
        self.count(team, outcome, -1)
    }

    fn count(&mut self, team: &str, outcome: &SyncOutcome, delta: i64) -> Result<(), IndexError> {
        let minute = outcome.processed_time.div_euclid(MINUTE_MS);
        let k = key(b'b', team, &[&time_bytes(minute)]);
        let bucket = match self.buckets.entry(k) {
            std::collections::hash_map::Entry::Occupied(held) => held.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let stored = match self.tree.get(slot.key())? {
                    Some(v) => serde_json::from_slice(&v)
                        .map_err(|e| IndexError::Corrupt(e.to_string()))?,
                    None => Bucket::new(),
                };
                slot.insert(stored)
            }
        };
        let name = bucket_key(outcome);
        let count = bucket.entry(name.clone()).or_insert(0);
        *count += delta;
        if *count <= 0 {
            bucket.remove(&name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::record::RecordQuery;
    use hubsync_schemas::examples;

    const T0: i64 = 1_795_348_800_000; // 2026-11-22T12:00:00Z

    fn outcome(
        team: &str,
        event: &str,
        status: OutcomeStatus,
        at: i64,
        email: &str,
    ) -> SyncOutcome {
        let mut outcome = examples::sync_outcome();
        outcome.team_id = team.to_string();
        outcome.event_id = event.to_string();
        outcome.status = status;
        outcome.reason_code = status.as_str().to_string();
        outcome.processed_time = at;
        outcome.record = Some(email.to_string());
        outcome
    }

    fn at(partition: i32, offset: i64) -> LogPosition {
        LogPosition {
            topic: "hubsync.outcomes".into(),
            partition,
            offset,
            timestamp: None,
        }
    }

    fn team(name: &str) -> OutcomeFilter {
        OutcomeFilter {
            team: Some(name.into()),
            ..OutcomeFilter::default()
        }
    }

    fn index() -> (tempfile::TempDir, OutcomeIndex) {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = OutcomeIndex::open(&dir.path().join("index")).expect("open");
        (dir, index)
    }

    #[test]
    fn one_entry_per_event_its_latest_outcome_and_reading_again_changes_nothing() {
        let (_dir, index) = index();
        let first = outcome("acme", "ev1", OutcomeStatus::DeadLettered, T0, "a@acme.io");
        let redriven = outcome(
            "acme",
            "ev1",
            OutcomeStatus::Created,
            T0 + 90_000,
            "a@acme.io",
        );
        let other = outcome(
            "acme",
            "ev2",
            OutcomeStatus::Updated,
            T0 + 1_000,
            "b@acme.io",
        );
        let records = vec![
            (at(0, 0), first.clone()),
            (at(0, 1), other),
            (at(0, 2), redriven),
        ];
        index
            .apply("hubsync.outcomes", records.clone())
            .expect("apply");
        // Read again (a crash before the positions were stored) and an older copy arriving late.
        index.apply("hubsync.outcomes", records).expect("apply");
        index
            .apply("hubsync.outcomes", vec![(at(1, 0), first)])
            .expect("apply");
        let counts = index
            .counts(&team("acme"), Window::default())
            .expect("counts");
        assert_eq!(counts.total, 2, "{counts:?}");
        assert_eq!(counts.by_status.get("CREATED"), Some(&1));
        assert_eq!(counts.by_status.get("DEAD_LETTERED"), None);
        let page = index
            .query(&team("acme"), Window::default(), Some(10))
            .expect("query");
        let events: Vec<_> = page
            .outcomes
            .iter()
            .map(|l| (l.outcome.event_id.as_str(), l.outcome.status))
            .collect();
        assert_eq!(
            events,
            vec![
                ("ev2", OutcomeStatus::Updated),
                ("ev1", OutcomeStatus::Created)
            ]
        );
        assert_eq!(page.matched, 2);
        assert_eq!(
            index.positions("hubsync.outcomes").expect("positions"),
            BTreeMap::from([(0, 3), (1, 1)])
        );
    }

    #[test]
    fn teams_never_see_each_others_entries() {
        let (_dir, index) = index();
        index
            .apply(
                "t",
                vec![
                    (
                        at(0, 0),
                        outcome("acme", "a1", OutcomeStatus::Created, T0, "a@x.io"),
                    ),
                    (
                        at(0, 1),
                        outcome("globex", "g1", OutcomeStatus::Created, T0, "g@x.io"),
                    ),
                    (
                        at(0, 2),
                        outcome("", "t/0/9", OutcomeStatus::Skipped, T0, ""),
                    ),
                ],
            )
            .expect("apply");
        let page = index
            .query(&team("acme"), Window::default(), None)
            .expect("query");
        let ids: BTreeSet<_> = page
            .outcomes
            .iter()
            .map(|l| l.outcome.event_id.clone())
            .collect();
        assert_eq!(ids, BTreeSet::from(["a1".to_string(), "t/0/9".to_string()]));
        assert_eq!(page.matched, 2);
        let by_record = OutcomeFilter {
            record: Some(RecordQuery::parse("g@x.io")),
            ..team("acme")
        };
        assert_eq!(
            index
                .query(&by_record, Window::default(), None)
                .expect("q")
                .matched,
            0
        );
        let all = index
            .query(&OutcomeFilter::default(), Window::default(), None)
            .expect("query");
        assert_eq!(all.matched, 3);
    }

    /// The index answers as the filter over every record would, for windows cutting minutes.
    #[test]
    fn counts_and_pages_agree_with_filtering_every_entry() {
        let (_dir, index) = index();
        let statuses = [
            OutcomeStatus::Created,
            OutcomeStatus::Updated,
            OutcomeStatus::Parked,
            OutcomeStatus::DeadLettered,
        ];
        let mut all = Vec::new();
        for i in 0..600i64 {
            let status = statuses[(i % 4) as usize];
            let email = format!("p{}@d{}.io", i % 50, i % 3);
            let o = outcome("acme", &format!("ev{i}"), status, T0 + i * 7_919, &email);
            all.push(o.clone());
            index.apply("t", vec![(at(0, i), o)]).expect("apply");
        }
        let windows = [
            Window::default(),
            Window {
                since: Some(T0 + 30_001),
                until: Some(T0 + 2_000_017),
            },
            Window {
                since: Some(T0 + 100),
                until: Some(T0 + 50_000),
            },
            Window {
                since: None,
                until: Some(T0 + 3_333_333),
            },
        ];
        let filters = [
            team("acme"),
            OutcomeFilter {
                statuses: vec![OutcomeStatus::Parked],
                ..team("acme")
            },
            OutcomeFilter {
                reasons: vec!["created".into()],
                ..team("acme")
            },
            OutcomeFilter {
                record: Some(RecordQuery::parse("d1.io")),
                ..team("acme")
            },
            OutcomeFilter {
                record: Some(RecordQuery::parse("ev17")),
                ..team("acme")
            },
        ];
        for window in windows {
            for filter in &filters {
                let expected: Vec<&SyncOutcome> = all
                    .iter()
                    .filter(|o| filter.matches(o) && window.contains(o.processed_time))
                    .collect();
                let counts = index.counts(filter, window).expect("counts");
                assert_eq!(counts.total, expected.len() as u64, "{filter:?} {window:?}");
                let page = index.query(filter, window, Some(5)).expect("query");
                assert_eq!(page.matched, expected.len() as u64, "{filter:?} {window:?}");
                let newest: Vec<&str> = expected
                    .iter()
                    .rev()
                    .take(5)
                    .rev()
                    .map(|o| o.event_id.as_str())
                    .collect();
                let got: Vec<&str> = page
                    .outcomes
                    .iter()
                    .map(|l| l.outcome.event_id.as_str())
                    .collect();
                assert_eq!(got, newest, "{filter:?} {window:?}");
            }
        }
        let series = index
            .series(&team("acme"), T0, T0 + 600 * 7_919, 3_600_000)
            .expect("series");
        let charted: u64 = series.by_status.values().flatten().sum();
        assert_eq!(charted, 600);
        let removed = index.prune(T0 + 2 * MINUTE_MS).expect("prune");
        let left = index
            .counts(&team("acme"), Window::default())
            .expect("counts");
        assert_eq!(left.total, 600 - removed, "{removed} removed");
        assert_eq!(index.len() as u64, left.total);
    }
}
