//! Local state in sled, kept by the sink stage:
//!
//! - the identity map: how a record is known upstream (email, domain, source id) -> its HubSpot id,
//!   so a record hubsync created is found again before HubSpot's search has indexed it;
//! - processed events: event id -> the outcome recorded for it, so a redelivered or replayed event
//!   gets the same outcome again and causes no second write; bounded, oldest forgotten first;
//! - last written values: HubSpot id -> what hubsync last wrote there, to skip writes that change
//!   nothing and, later, to recognise its own changes coming back;
//! - create intents: a record about to be created without a unique key HubSpot enforces; an intent
//!   still present after a crash means "this record may exist although the identity map does not
//!   know it", and the sink must look before creating;
//! - when the store began (`meta`): a record hubsync creates by lookup whose event is older than
//!   that may have been created by a store since lost, and is looked up before it is created;
//! - what happened in HubSpot (`hubspot_side`, fed from `crm.hubspot.changes`): per record and
//!   property, the time of HubSpot's newest change that went upstream (an older upstream event
//!   does not overwrite it); records deleted there (not written again until restored); records
//!   merged into another (their id resolves to the survivor);
//! - company links waiting for their company (`pending_links`, `company key \0 contact id`): a
//!   contact whose company hubsync has not written yet is linked to it when hubsync writes it.
//!
//! Writes are buffered by sled and made durable by [`State::flush`], which the sink calls once per
//! batch, after the HubSpot call and before the batch's outcomes are produced.
//!
//! Every entry belongs to a portal (its key begins `{portal id}/`), and so to the partition the
//! portal's commands are on. With a [`Changelog`], every change is also sent to the state
//! changelog topic on that partition, and [`State::flush`] waits for the broker to have it: an
//! instance that takes the partition over restores the entries from there
//! ([`Changelog::restore`], which applies them with [`State::apply_logged`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sink::changelog::Changelog;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot open the state database at {path}: {source}; check the directory exists and is writable, and that no other hubsync process uses it"
    )]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("state database error: {0}")]
    Db(#[from] sled::Error),
    #[error("corrupt state entry in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// The outcome remembered for a processed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedOutcome {
    pub status: String,
    pub reason_code: String,
    pub reason: String,
    pub hubspot_id: Option<String>,
    pub attempts: i32,
    #[serde(default)]
    pub missing_fields: Vec<String>,
    pub at_ms: i64,
    /// Where the command this outcome answered was read (`topic/partition/offset`), once the
    /// outcome (and its dead letter) reached Kafka: that message read again (a restart, or its
    /// partition moved before the offset was committed) needs no second outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<String>,
}

/// A contact to link to a company once the company is in HubSpot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingLink {
    pub contact_id: String,
    pub category: String,
    pub type_id: i32,
}

/// A create about to be sent for a record HubSpot cannot find by a unique key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIntent {
    pub trace_id: String,
    pub at_ms: i64,
}

/// The flushes of one store. One runs at a time (sled 0.34 can deadlock its I/O threads when
/// several `flush_async` calls overlap), and batches written at once each ask for one: those
/// that ask while a flush runs are all covered by the next one (a group commit), instead of
/// waiting in line for one each, every team's batch behind every other's.
#[derive(Debug, Default)]
struct Flushes {
    running: tokio::sync::Mutex<()>,
    /// Flushes asked for so far.
    asked: std::sync::atomic::AtomicU64,
    /// Every flush asked for up to this count is done.
    done: std::sync::atomic::AtomicU64,
    /// Flushes made.
    ran: std::sync::atomic::AtomicU64,
}

/// How often sled writes out and syncs the local copy on its own (its default, stated here
/// because a state with a changelog relies on it: see [`State::flush`]).
pub const LOCAL_FLUSH_EVERY_MS: u64 = 500;

#[derive(Debug, Clone)]
pub struct State {
    db: sled::Db,
    identity: sled::Tree,
    processed: sled::Tree,
    /// `at_ms (big-endian) ++ event id` -> (), the order processed events are forgotten in.
    processed_order: sled::Tree,
    last_written: sled::Tree,
    intents: sled::Tree,
    pending_links: sled::Tree,
    hubspot_side: sled::Tree,
    /// When this store was first opened (ms since the epoch).
    began_at_ms: i64,
    max_processed: u64,
    /// Entries of `processed_order`, counted here: sled's `len` walks the whole tree.
    processed_len: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// One flush at a time, each covering every flush asked for before it began.
    flushes: std::sync::Arc<Flushes>,
    /// Put before every key: `{portal id}/`, so that the state of one portal is never read for
    /// another (a sink pointed at a new portal starts from nothing).
    scope: std::sync::Arc<str>,
    /// Where every change is also sent, when the state is backed by a changelog topic.
    changelog: Option<std::sync::Arc<Changelog>>,
    meta: sled::Tree,
}

impl State {
    pub fn open(dir: &Path, cache_bytes: u64, max_processed: u64) -> Result<Self, StateError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(LOCAL_FLUSH_EVERY_MS))
            .open()
            .map_err(|source| StateError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        let processed_order = db.open_tree("processed_order")?;
        let processed_len = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
            processed_order.len() as u64,
        ));
        let meta = db.open_tree("meta")?;
        let began_at_ms = match meta.get(BEGAN_AT)? {
            Some(bytes) => decode(&bytes, "meta")?,
            None => {
                let now = chrono::Utc::now().timestamp_millis();
                meta.insert(BEGAN_AT, encode(&now))?;
                now
            }
        };
        Ok(State {
            pending_links: db.open_tree("pending_links")?,
            hubspot_side: db.open_tree("hubspot_side")?,
            began_at_ms,
            identity: db.open_tree("identity")?,
            processed: db.open_tree("processed")?,
            processed_order,
            processed_len,
            last_written: db.open_tree("last_written")?,
            intents: db.open_tree("intents")?,
            db,
            max_processed,
            flushes: std::sync::Arc::default(),
            scope: "".into(),
            changelog: None,
            meta,
        })
    }

    /// The same store, every change of which is also sent to `changelog`.
    pub fn with_changelog(self, changelog: std::sync::Arc<Changelog>) -> State {
        State {
            changelog: Some(changelog),
            ..self
        }
    }

    /// Notes a change for the changelog (`key` is the entry's whole key, scope included).
    fn log(&self, tree: &str, key: &[u8], value: Option<&[u8]>) {
        if let Some(changelog) = &self.changelog {
            changelog.record(tree, key, value);
        }
    }

    /// Applies a change read from the changelog, as the instance that made it did (without
    /// sending it again). Processed events stay bounded.
    pub fn apply_logged(
        &self,
        tree: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let quiet = State {
            changelog: None,
            scope: "".into(),
            ..self.clone()
        };
        let target = match tree {
            "processed" => {
                let event = String::from_utf8_lossy(key);
                return match value {
                    Some(value) => quiet.remember(&event, &decode(value, "processed")?),
                    None => quiet.forget(&event),
                };
            }
            "meta" => {
                // When a portal's store began: the earliest any instance knew.
                if let Some(value) = value {
                    let theirs: i64 = decode(value, "meta")?;
                    let ours = self
                        .meta
                        .get(key)?
                        .map(|v| decode::<i64>(&v, "meta"))
                        .transpose()?;
                    if ours.is_none_or(|ours| theirs < ours) {
                        self.meta.insert(key, value)?;
                    }
                }
                return Ok(());
            }
            "identity" => &self.identity,
            "last_written" => &self.last_written,
            "intents" => &self.intents,
            "pending_links" => &self.pending_links,
            "hubspot_side" => &self.hubspot_side,
            // A tree a newer hubsync added: not this one's to know.
            _ => return Ok(()),
        };
        match value {
            Some(value) => target.insert(key, value)?,
            None => target.remove(key)?,
        };
        Ok(())
    }

    /// The changelog offset of `partition` this store has every record before.
    pub fn changelog_checkpoint(&self, partition: i32) -> Result<Option<i64>, StateError> {
        self.meta
            .get(checkpoint_key(partition))?
            .map(|v| decode(&v, "meta"))
            .transpose()
    }

    pub fn set_changelog_checkpoint(&self, partition: i32, offset: i64) -> Result<(), StateError> {
        self.meta
            .insert(checkpoint_key(partition), encode(&offset))?;
        Ok(())
    }

    /// The next offset of each partition of `topic` whose records before it this store has
    /// applied ([`State::set_followed`]); local to this store, never on the changelog.
    pub fn followed(&self, topic: &str) -> Result<std::collections::HashMap<i32, i64>, StateError> {
        let prefix = followed_key(topic, "");
        let mut next = std::collections::HashMap::new();
        for entry in self.meta.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let partition = key
                .get(prefix.len()..)
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(partition) = partition {
                next.insert(partition, decode::<i64>(&value, "meta")?);
            }
        }
        Ok(next)
    }

    /// Keeps that the records of `topic`'s `partition` before `next` are applied.
    pub fn set_followed(&self, topic: &str, partition: i32, next: i64) -> Result<(), StateError> {
        self.meta
            .insert(followed_key(topic, &partition.to_string()), encode(&next))?;
        Ok(())
    }

    /// The same store, whose changes are not sent to the changelog: for what this instance
    /// learns of a partition another instance owns (its owner sends it).
    pub fn unlogged(&self) -> State {
        State {
            changelog: None,
            ..self.clone()
        }
    }

    /// The changelog this store's changes are sent to, if any.
    pub fn changelog(&self) -> Option<&std::sync::Arc<Changelog>> {
        self.changelog.as_ref()
    }

    /// Records when this portal's store began, unless an earlier beginning is known (restored
    /// from the changelog): creates from before then are looked up first.
    pub fn mark_began(&self) -> Result<(), StateError> {
        self.mark_once(BEGAN_AT, self.began_at_ms)
    }

    /// Records that hubsync's own id property of `object` (`notes`, `deals`...) was created in
    /// this portal just now, by this instance: no record of that type can carry it from before,
    /// so every create hubsync makes of it from now on has its intent in this store (and on the
    /// changelog), and a record this store does not know was never created by hubsync.
    pub fn mark_owned_new(&self, object: &str) -> Result<(), StateError> {
        self.mark_once(
            &owned_new_key(object),
            chrono::Utc::now().timestamp_millis(),
        )
    }

    /// Keeps `at_ms` under this portal's `name` in `meta` (and on the changelog) unless a value
    /// is there already; nothing for the unscoped store.
    fn mark_once(&self, name: &str, at_ms: i64) -> Result<(), StateError> {
        let key = self.key(name);
        if self.scope.is_empty() || self.meta.get(&key)?.is_some() {
            return Ok(());
        }
        let value = encode(&at_ms);
        self.meta.insert(&key, value.clone())?;
        self.log("meta", key.as_bytes(), Some(&value));
        Ok(())
    }

    /// Whether this portal's store holds every create of `object` hubsync ever made
    /// ([`State::mark_owned_new`]).
    pub fn owned_new(&self, object: &str) -> Result<bool, StateError> {
        Ok(!self.scope.is_empty() && self.meta.get(self.key(&owned_new_key(object)))?.is_some())
    }

    /// The same store, with every key of this view kept apart under `scope` (a portal id).
    /// Processed events are bounded across every scope together.
    pub fn scoped(&self, scope: &str) -> State {
        State {
            scope: format!("{scope}/").into(),
            ..self.clone()
        }
    }

    /// The portal this view is scoped to.
    pub fn portal(&self) -> Option<u64> {
        self.scope.strip_suffix('/')?.parse().ok()
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.scope)
    }

    /// Makes every write so far durable. Flushes wait for each other; a flush that waited
    /// still covers the writes made before it was asked for.
    ///
    /// With a changelog, durable means on the changelog: the flush waits until the broker has
    /// every change noted so far, and leaves the local copy to sled's own writer, which writes
    /// it out every [`LOCAL_FLUSH_EVERY_MS`]. After a crash sled recovers a prefix of its log,
    /// so the local copy's checkpoint never claims a change it lacks, and restoring from that
    /// checkpoint brings back whatever the crash took. A local sync here as well would cost
    /// every batch a round trip to sled's I/O threads and the disk for nothing the changelog
    /// does not keep already (in figure 7, about a fifth of hubsync's CPU time per live event
    /// written in a batch of its own). Without a changelog the local copy is all there is, and
    /// it is synced.
    pub async fn flush(&self) -> Result<(), StateError> {
        use std::sync::atomic::Ordering::SeqCst;
        let flushes = &self.flushes;
        let asked = flushes.asked.fetch_add(1, SeqCst) + 1;
        let _one_at_a_time = flushes.running.lock().await;
        if flushes.done.load(SeqCst) >= asked {
            // A flush that began after this one was asked for covered its writes.
            return Ok(());
        }
        // Every flush asked for by now follows writes made by now: this one covers them.
        let covers = flushes.asked.load(SeqCst);
        if let Some(changelog) = &self.changelog {
            for (partition, offset) in changelog.flush().await {
                self.set_changelog_checkpoint(partition, offset)?;
            }
        }
        if self.changelog.is_none() {
            self.db.flush_async().await?;
        }
        flushes.done.fetch_max(covers, SeqCst);
        flushes.ran.fetch_add(1, SeqCst);
        metrics::counter!("hubsync_state_flushes_total").increment(1);
        Ok(())
    }

    // ----- identity map -----

    /// `key` is [`record_key`]`(object, kind, value)`. A record merged into another in
    /// HubSpot resolves to the survivor.
    pub fn identity(&self, key: &str) -> Result<Option<String>, StateError> {
        let Some(mut id) = self
            .identity
            .get(self.key(key))?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
        else {
            return Ok(None);
        };
        let object = key.split(':').next().unwrap_or_default();
        // A few hops at most: a survivor merged again later.
        for _ in 0..8 {
            match self.hubspot_side.get(self.key(&merged_key(object, &id)))? {
                Some(survivor) => id = String::from_utf8_lossy(&survivor).into_owned(),
                None => break,
            }
        }
        Ok(Some(id))
    }

    pub fn set_identity(&self, key: &str, hubspot_id: &str) -> Result<(), StateError> {
        let key = self.key(key);
        self.identity.insert(&key, hubspot_id.as_bytes())?;
        self.log("identity", key.as_bytes(), Some(hubspot_id.as_bytes()));
        Ok(())
    }

    /// Forgets a record's HubSpot id (it was deleted or merged away there).
    pub fn clear_identity(&self, key: &str) -> Result<(), StateError> {
        let key = self.key(key);
        self.identity.remove(&key)?;
        self.log("identity", key.as_bytes(), None);
        Ok(())
    }

    // ----- processed events -----

    pub fn processed(&self, event_id: &str) -> Result<Option<RememberedOutcome>, StateError> {
        self.processed
            .get(self.key(event_id))?
            .map(|v| decode(&v, "processed"))
            .transpose()
    }

    /// Remembers an event's outcome, forgetting the oldest events beyond the bound.
    pub fn remember(&self, event_id: &str, outcome: &RememberedOutcome) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        let event_id = &self.key(event_id);
        let value = encode(outcome);
        self.log("processed", event_id.as_bytes(), Some(&value));
        let previous = self.processed.insert(event_id, value)?;
        if let Some(previous) = previous {
            let previous: RememberedOutcome = decode(&previous, "processed")?;
            if self
                .processed_order
                .remove(order_key(previous.at_ms, event_id))?
                .is_some()
            {
                self.processed_len.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self
            .processed_order
            .insert(order_key(outcome.at_ms, event_id), &[])?
            .is_none()
        {
            self.processed_len.fetch_add(1, Ordering::Relaxed);
        }
        while self.processed_len.load(Ordering::Relaxed) > self.max_processed {
            let Some((key, _)) = self.processed_order.pop_min()? else {
                break;
            };
            self.processed_len.fetch_sub(1, Ordering::Relaxed);
            if let Some(event_id) = key.get(8..) {
                self.processed.remove(event_id)?;
                self.log("processed", event_id, None);
            }
        }
        Ok(())
    }

    /// Notes that an event's remembered outcome reached Kafka in answer to the command read at
    /// `position`; nothing when the event is not remembered (evicted meanwhile).
    pub fn mark_answered(&self, event_id: &str, position: &str) -> Result<(), StateError> {
        let key = self.key(event_id);
        let Some(old) = self.processed.get(&key)? else {
            return Ok(());
        };
        let mut outcome: RememberedOutcome = decode(&old, "processed")?;
        if outcome.answered.as_deref() == Some(position) {
            return Ok(());
        }
        outcome.answered = Some(position.to_string());
        let value = encode(&outcome);
        // Its time is unchanged, so its place in the bound is too; an event evicted (or
        // remembered again) meanwhile is left as it is.
        if self
            .processed
            .compare_and_swap(&key, Some(old), Some(value.as_slice()))?
            .is_ok()
        {
            self.log("processed", key.as_bytes(), Some(&value));
        }
        Ok(())
    }

    /// Forgets an event's outcome, so the event is processed again when it next arrives (a
    /// redriven event that was dead-lettered).
    pub fn forget(&self, event_id: &str) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        let event_id = &self.key(event_id);
        let Some(previous) = self.processed.remove(event_id)? else {
            return Ok(());
        };
        self.log("processed", event_id.as_bytes(), None);
        let previous: RememberedOutcome = decode(&previous, "processed")?;
        if self
            .processed_order
            .remove(order_key(previous.at_ms, event_id))?
            .is_some()
        {
            self.processed_len.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The database's size on disk, in bytes (0 when it cannot be told).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Events remembered (counted, not walked).
    pub fn processed_count(&self) -> u64 {
        self.processed_len
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    // ----- last written values -----

    pub fn last_written(&self, key: &str) -> Result<BTreeMap<String, String>, StateError> {
        Ok(self
            .last_written
            .get(self.key(key))?
            .map(|v| decode(&v, "last_written"))
            .transpose()?
            .unwrap_or_default())
    }

    /// Records values just written; an empty value (a clear) is remembered as empty.
    pub fn merge_last_written(
        &self,
        key: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut current = self.last_written(key)?;
        current.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (key, value) = (self.key(key), encode(&current));
        self.log("last_written", key.as_bytes(), Some(&value));
        self.last_written.insert(key, value)?;
        Ok(())
    }

    // ----- what happened in HubSpot -----

    /// HubSpot's change to `property` of the record at `key` ([`hubspot_key`]) at `at_ms` went
    /// upstream; the newest time is kept.
    pub fn hubspot_changed(&self, key: &str, property: &str, at_ms: i64) -> Result<(), StateError> {
        let key = self.key(&format!("{key}\0{property}"));
        let newer = self.hubspot_side.update_and_fetch(&key, |old| match old {
            Some(old) if decode::<i64>(old, "hubspot_side").is_ok_and(|t| t >= at_ms) => {
                Some(old.to_vec())
            }
            _ => Some(encode(&at_ms)),
        })?;
        self.log("hubspot_side", key.as_bytes(), newer.as_deref());
        Ok(())
    }

    /// When HubSpot's newest change to `property` of the record at `key` was made.
    pub fn hubspot_changed_at(&self, key: &str, property: &str) -> Result<Option<i64>, StateError> {
        self.hubspot_side
            .get(self.key(&format!("{key}\0{property}")))?
            .map(|v| decode(&v, "hubspot_side"))
            .transpose()
    }

    /// The record at `key` was deleted in HubSpot (`privacy`: for good, at the person's
    /// request); what hubsync wrote there is forgotten.
    pub fn hubspot_deleted(&self, key: &str, privacy: bool) -> Result<(), StateError> {
        let kind = if privacy {
            "PRIVACY_DELETED"
        } else {
            "DELETED"
        };
        let deleted = self.key(&format!("{key}\0#deleted"));
        self.hubspot_side.insert(&deleted, kind.as_bytes())?;
        self.log("hubspot_side", deleted.as_bytes(), Some(kind.as_bytes()));
        let written = self.key(key);
        self.last_written.remove(&written)?;
        self.log("last_written", written.as_bytes(), None);
        Ok(())
    }

    /// The record at `key` was restored in HubSpot: written again (a privacy deletion is never
    /// undone).
    pub fn hubspot_restored(&self, key: &str) -> Result<(), StateError> {
        let deleted = self.key(&format!("{key}\0#deleted"));
        if self.hubspot_side.get(&deleted)?.as_deref() != Some(b"PRIVACY_DELETED".as_slice()) {
            self.hubspot_side.remove(&deleted)?;
            self.log("hubspot_side", deleted.as_bytes(), None);
        }
        Ok(())
    }

    /// `Some("DELETED" | "PRIVACY_DELETED")` when the record at `key` was deleted in HubSpot.
    pub fn deleted_in_hubspot(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .hubspot_side
            .get(self.key(&format!("{key}\0#deleted")))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// HubSpot merged record `merged` of `object` into `survivor`: its id resolves to the
    /// survivor from now on, and what hubsync wrote to it is forgotten.
    pub fn hubspot_merged(
        &self,
        object: &str,
        merged: &str,
        survivor: &str,
    ) -> Result<(), StateError> {
        if merged == survivor {
            return Ok(());
        }
        let redirect = self.key(&merged_key(object, merged));
        self.hubspot_side.insert(&redirect, survivor.as_bytes())?;
        self.log(
            "hubspot_side",
            redirect.as_bytes(),
            Some(survivor.as_bytes()),
        );
        for id in [merged, survivor] {
            let written = self.key(&hubspot_key(object, id));
            self.last_written.remove(&written)?;
            self.log("last_written", written.as_bytes(), None);
        }
        Ok(())
    }

    // ----- create intents -----

    pub fn intent(&self, key: &str) -> Result<Option<CreateIntent>, StateError> {
        self.intents
            .get(self.key(key))?
            .map(|v| decode(&v, "intents"))
            .transpose()
    }

    pub fn set_intent(&self, key: &str, intent: &CreateIntent) -> Result<(), StateError> {
        let (key, value) = (self.key(key), encode(intent));
        self.log("intents", key.as_bytes(), Some(&value));
        self.intents.insert(key, value)?;
        Ok(())
    }

    pub fn clear_intent(&self, key: &str) -> Result<(), StateError> {
        let key = self.key(key);
        if self.intents.remove(&key)?.is_some() {
            self.log("intents", key.as_bytes(), None);
        }
        Ok(())
    }

    /// When this store (this portal's, when scoped and known) was first opened: creates made
    /// before then are not in it.
    pub fn began_at_ms(&self) -> i64 {
        if !self.scope.is_empty()
            && let Ok(Some(bytes)) = self.meta.get(self.key(BEGAN_AT))
            && let Ok(at) = decode::<i64>(&bytes, "meta")
        {
            return at;
        }
        self.began_at_ms
    }

    // ----- links waiting for their company -----

    /// `company_key` is the company's [`record_key`]; one entry per waiting contact.
    pub fn add_waiting_link(
        &self,
        company_key: &str,
        link: &WaitingLink,
    ) -> Result<(), StateError> {
        let (key, value) = (
            self.waiting_key(company_key, &link.contact_id),
            encode(link),
        );
        self.log("pending_links", key.as_bytes(), Some(&value));
        self.pending_links.insert(key, value)?;
        Ok(())
    }

    pub fn waiting_links(&self, company_key: &str) -> Result<Vec<WaitingLink>, StateError> {
        self.pending_links
            .scan_prefix(self.waiting_key(company_key, ""))
            .map(|entry| decode(&entry?.1, "pending_links"))
            .collect()
    }

    pub fn remove_waiting_link(
        &self,
        company_key: &str,
        contact_id: &str,
    ) -> Result<(), StateError> {
        let key = self.waiting_key(company_key, contact_id);
        if self.pending_links.remove(&key)?.is_some() {
            self.log("pending_links", key.as_bytes(), None);
        }
        Ok(())
    }

    fn waiting_key(&self, company_key: &str, contact_id: &str) -> String {
        format!("{}{company_key}\0{contact_id}", self.scope)
    }
}

const BEGAN_AT: &str = "began_at_ms";

fn owned_new_key(object: &str) -> String {
    format!("owned_new/{object}")
}

fn followed_key(topic: &str, partition: &str) -> String {
    format!("followed/{topic}/{partition}")
}

fn checkpoint_key(partition: i32) -> String {
    format!("changelog-checkpoint/{partition}")
}

/// The key a record is known by in the identity map and intents: `contacts:EMAIL:ada@acme.io`.
pub fn record_key(object: &str, kind: &str, value: &str) -> String {
    format!("{object}:{kind}:{value}")
}

fn merged_key(object: &str, hubspot_id: &str) -> String {
    format!("{object}:{hubspot_id}\0#merged")
}

/// The key of a HubSpot record in the last-written tree: `contacts:12345`.
pub fn hubspot_key(object: &str, hubspot_id: &str) -> String {
    format!("{object}:{hubspot_id}")
}

fn order_key(at_ms: i64, event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + event_id.len());
    key.extend_from_slice(&at_ms.to_be_bytes());
    key.extend_from_slice(event_id.as_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs and maps to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], tree: &'static str) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|source| StateError::Corrupt { tree, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(max: u64) -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path(), 1 << 20, max).expect("open");
        (dir, state)
    }

    /// Batches that ask for a flush while one runs share the next: twenty asking behind a
    /// running flush cause one more, not twenty, and each returns once its writes are covered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flushes_asked_for_while_one_runs_share_the_next() {
        use std::sync::atomic::Ordering::SeqCst;
        let (_dir, state) = open(10);
        let running = state.flushes.running.lock().await;
        let before = state.flushes.asked.load(SeqCst);
        let mut waiting = Vec::new();
        for n in 0..20 {
            let state = state.clone();
            waiting.push(tokio::spawn(async move {
                state.set_identity(&format!("contacts:email:{n}@example.com"), "1")?;
                state.flush().await
            }));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while state.flushes.asked.load(SeqCst) < before + 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "the flushes never asked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let ran = state.flushes.ran.load(SeqCst);
        drop(running);
        for flush in waiting {
            flush.await.expect("the task ends").expect("flushed");
        }
        assert_eq!(
            state.flushes.ran.load(SeqCst),
            ran + 1,
            "one flush for the twenty"
        );
        assert_eq!(state.flushes.done.load(SeqCst), before + 20);
        // A flush asked for after that one is one of its own.
        state.flush().await.expect("flushed");
        assert_eq!(state.flushes.ran.load(SeqCst), ran + 2);
    }

    #[test]
    fn followed_positions_are_kept_per_topic_and_partition_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let state = State::open(dir.path(), 1 << 20, 10).expect("state");
            assert!(
                state
                    .followed("crm.hubspot.changes")
                    .expect("read")
                    .is_empty()
            );
            state
                .set_followed("crm.hubspot.changes", 0, 12)
                .expect("kept");
            state
                .set_followed("crm.hubspot.changes", 11, 3)
                .expect("kept");
            state
                .set_followed("crm.hubspot.changes", 0, 15)
                .expect("kept");
            // A topic whose name the first one begins with is another topic.
            state
                .set_followed("crm.hubspot.changes.v2", 1, 7)
                .expect("kept");
            // The changelog's own checkpoint is not a followed position.
            state.set_changelog_checkpoint(0, 99).expect("checkpoint");
            state.db.flush().expect("flushed");
        }
        let state = State::open(dir.path(), 1 << 20, 10).expect("reopened");
        let followed = state.followed("crm.hubspot.changes").expect("read");
        assert_eq!(
            followed,
            std::collections::HashMap::from([(0, 15), (11, 3)])
        );
        assert_eq!(
            state.followed("crm.hubspot.changes.v2").expect("read"),
            std::collections::HashMap::from([(1, 7)])
        );
    }

    #[test]
    fn changelog_records_apply_as_their_instance_made_them() {
        let (_dir, state) = open(2);
        let ada = record_key("contacts", "EMAIL", "ada@example.com");
        let outcome = |at_ms| RememberedOutcome {
            status: "CREATED".into(),
            reason_code: "CREATED".into(),
            reason: "created".into(),
            hubspot_id: Some("51".into()),
            answered: None,
            attempts: 1,
            missing_fields: Vec::new(),
            at_ms,
        };
        state
            .apply_logged("identity", format!("7/{ada}").as_bytes(), Some(b"51"))
            .unwrap();
        for (n, event) in ["e1", "e2", "e3"].iter().enumerate() {
            let value = encode(&outcome(n as i64));
            state
                .apply_logged("processed", format!("7/{event}").as_bytes(), Some(&value))
                .unwrap();
        }
        let portal = state.scoped("7");
        assert_eq!(portal.identity(&ada).unwrap().as_deref(), Some("51"));
        // The bound holds for restored events too: the oldest is forgotten.
        assert_eq!(portal.processed_count(), 2);
        assert_eq!(portal.processed("e1").unwrap(), None);
        assert_eq!(portal.processed("e3").unwrap(), Some(outcome(2)));
        // A tombstone removes; another portal's entries stay its own.
        state
            .apply_logged("identity", format!("7/{ada}").as_bytes(), None)
            .unwrap();
        assert_eq!(portal.identity(&ada).unwrap(), None);
        assert_eq!(state.scoped("8").processed("e3").unwrap(), None);
        // The earliest beginning of a portal's store wins; a tree unknown here is left alone.
        state
            .apply_logged("meta", b"7/began_at_ms", Some(&encode(&500_i64)))
            .unwrap();
        state
            .apply_logged("meta", b"7/began_at_ms", Some(&encode(&900_i64)))
            .unwrap();
        assert_eq!(portal.began_at_ms(), 500);
        state
            .apply_logged("a_future_tree", b"7/x", Some(b"y"))
            .unwrap();
        // A record that does not decode is refused as corrupt (a restore skips it).
        assert!(matches!(
            state.apply_logged("processed", b"7/e4", Some(b"not json")),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn what_happened_in_hubspot_is_kept_per_portal() {
        let (_dir, state) = open(10);
        let acme = state.scoped("1");
        let other = state.scoped("2");
        let ada = record_key("contacts", "EMAIL", "ada@example.com");
        let grace = record_key("contacts", "EMAIL", "grace@example.com");
        acme.set_identity(&ada, "51").unwrap();
        acme.set_identity(&grace, "52").unwrap();
        other.set_identity(&grace, "52").unwrap();
        let written = BTreeMap::from([("jobtitle".to_string(), "CTO".to_string())]);
        acme.merge_last_written(&hubspot_key("contacts", "51"), &written)
            .unwrap();

        // Per property, the newest time.
        let key = hubspot_key("contacts", "51");
        acme.hubspot_changed(&key, "jobtitle", 200).unwrap();
        acme.hubspot_changed(&key, "jobtitle", 100).unwrap();
        assert_eq!(
            acme.hubspot_changed_at(&key, "jobtitle").unwrap(),
            Some(200)
        );
        assert_eq!(acme.hubspot_changed_at(&key, "phone").unwrap(), None);
        assert_eq!(other.hubspot_changed_at(&key, "jobtitle").unwrap(), None);

        // 52 merged into 51: grace resolves to 51 in this portal only, and nothing hubsync wrote
        // to either is trusted any more.
        acme.hubspot_merged("contacts", "52", "51").unwrap();
        assert_eq!(acme.identity(&grace).unwrap().as_deref(), Some("51"));
        assert_eq!(other.identity(&grace).unwrap().as_deref(), Some("52"));
        assert!(acme.last_written(&key).unwrap().is_empty());

        // Deleted, restored; a privacy deletion is not undone.
        acme.hubspot_deleted(&key, false).unwrap();
        assert_eq!(
            acme.deleted_in_hubspot(&key).unwrap().as_deref(),
            Some("DELETED")
        );
        assert_eq!(other.deleted_in_hubspot(&key).unwrap(), None);
        acme.hubspot_restored(&key).unwrap();
        assert_eq!(acme.deleted_in_hubspot(&key).unwrap(), None);
        acme.hubspot_deleted(&key, true).unwrap();
        acme.hubspot_restored(&key).unwrap();
        assert_eq!(
            acme.deleted_in_hubspot(&key).unwrap().as_deref(),
            Some("PRIVACY_DELETED")
        );
    }

    fn outcome(at_ms: i64) -> RememberedOutcome {
        RememberedOutcome {
            status: "CREATED".into(),
            reason_code: "CREATED".into(),
            reason: "created".into(),
            hubspot_id: Some("101".into()),
            answered: None,
            attempts: 1,
            missing_fields: vec![],
            at_ms,
        }
    }

    #[test]
    fn an_answered_outcome_names_the_command_it_answered_and_keeps_its_place() {
        let (_dir, state) = open(2);
        state.remember("e1", &outcome(10)).expect("remember");
        state.remember("e2", &outcome(20)).expect("remember");
        state
            .mark_answered("e1", "hubsync.commands/3/41")
            .expect("marked");
        let e1 = state.processed("e1").expect("reads").expect("remembered");
        assert_eq!(e1.answered.as_deref(), Some("hubsync.commands/3/41"));
        assert_eq!(e1.at_ms, 10, "the outcome is the one remembered");
        // An event no longer remembered is not brought back by the note.
        state
            .mark_answered("e9", "hubsync.commands/3/42")
            .expect("no-op");
        assert_eq!(state.processed("e9").expect("reads"), None);
        // The mark did not count as a new event: a third one evicts the oldest, e1.
        state.remember("e3", &outcome(30)).expect("remember");
        assert_eq!(state.processed("e1").expect("reads"), None);
        assert!(state.processed("e2").expect("reads").is_some());
        // Outcomes stored before the field existed read as not answered.
        let old = br#"{"status":"CREATED","reason_code":"CREATED","reason":"created","hubspot_id":"7","attempts":1,"at_ms":5}"#;
        let read: RememberedOutcome = decode(old, "processed").expect("decodes");
        assert_eq!(read.answered, None);
    }

    #[test]
    fn identity_map_round_trips() {
        let (_dir, state) = open(10);
        let key = record_key("contacts", "EMAIL", "ada@acme.io");
        assert_eq!(state.identity(&key).expect("read"), None);
        state.set_identity(&key, "101").expect("write");
        assert_eq!(state.identity(&key).expect("read").as_deref(), Some("101"));
    }

    #[test]
    fn a_portal_whose_own_property_hubsync_made_holds_every_create_of_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State::open(dir.path(), 1 << 20, 10).expect("opens");
        assert!(!state.owned_new("notes").expect("reads"), "unscoped: never");
        let portal = state.scoped("101");
        assert!(!portal.owned_new("notes").expect("reads"));
        portal.mark_owned_new("notes").expect("marks");
        assert!(portal.owned_new("notes").expect("reads"));
        assert!(
            !portal.owned_new("deals").expect("reads"),
            "per object type"
        );
        assert!(
            !state.scoped("102").owned_new("notes").expect("reads"),
            "per portal"
        );
    }

    #[test]
    fn the_state_remembers_when_it_began_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let began = State::open(dir.path(), 1 << 20, 10)
            .expect("open")
            .began_at_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let again = State::open(dir.path(), 1 << 20, 10).expect("reopen");
        assert_eq!(again.began_at_ms(), began);
    }

    #[test]
    fn links_wait_per_company_and_per_portal() {
        let (_dir, state) = open(10);
        let (one, other) = (state.scoped("1001"), state.scoped("1002"));
        let acme = record_key("companies", "DOMAIN", "acme.io");
        let acme_two = record_key("companies", "DOMAIN", "acme.io2");
        let link = |id: &str| WaitingLink {
            contact_id: id.into(),
            category: "HUBSPOT_DEFINED".into(),
            type_id: 1,
        };
        one.add_waiting_link(&acme, &link("11")).expect("add");
        one.add_waiting_link(&acme, &link("12")).expect("add");
        one.add_waiting_link(&acme, &link("11")).expect("add again");
        one.add_waiting_link(&acme_two, &link("13")).expect("add");
        assert_eq!(
            one.waiting_links(&acme).expect("read"),
            vec![link("11"), link("12")],
            "a company's links only, once each"
        );
        assert!(other.waiting_links(&acme).expect("read").is_empty());
        one.remove_waiting_link(&acme, "11").expect("remove");
        assert_eq!(one.waiting_links(&acme).expect("read"), vec![link("12")]);
    }

    #[test]
    fn one_portal_never_reads_another_portal_s_state() {
        let (_dir, state) = open(10);
        let (one, other) = (state.scoped("1001"), state.scoped("1002"));
        let key = record_key("contacts", "EMAIL", "ada@acme.io");
        one.set_identity(&key, "101").expect("write");
        one.merge_last_written("contacts:101", &BTreeMap::from([("a".into(), "1".into())]))
            .expect("write");
        one.remember("e1", &outcome(1)).expect("remember");
        assert_eq!(other.identity(&key).expect("read"), None);
        assert!(other.last_written("contacts:101").expect("read").is_empty());
        assert_eq!(other.processed("e1").expect("read"), None);
        assert!(one.processed("e1").expect("read").is_some());
        one.forget("e1").expect("forget");
        assert_eq!(one.processed("e1").expect("read"), None);
        assert_eq!(state.processed_count(), 0);
    }

    #[test]
    fn processed_events_are_bounded_oldest_first() {
        let (_dir, state) = open(3);
        for i in 0..5 {
            state
                .remember(&format!("e{i}"), &outcome(i))
                .expect("remember");
        }
        assert_eq!(state.processed_count(), 3);
        assert_eq!(state.processed("e0").expect("read"), None);
        assert_eq!(state.processed("e1").expect("read"), None);
        assert_eq!(state.processed("e4").expect("read"), Some(outcome(4)));
        // Remembering an event again moves it, it does not count twice.
        state.remember("e2", &outcome(9)).expect("remember");
        assert_eq!(state.processed_count(), 3);
        state.remember("e5", &outcome(10)).expect("remember");
        assert!(state.processed("e2").expect("read").is_some());
        assert!(state.processed("e3").expect("read").is_none());
    }

    #[test]
    fn a_forgotten_event_is_processed_again_and_no_longer_counted() {
        let (_dir, state) = open(10);
        state.remember("e1", &outcome(1)).expect("remember");
        state.remember("e2", &outcome(2)).expect("remember");
        state.forget("e1").expect("forget");
        assert_eq!(state.processed("e1").expect("read"), None);
        assert_eq!(state.processed_count(), 1);
        state
            .forget("never-seen")
            .expect("forgetting nothing is fine");
        state.remember("e1", &outcome(3)).expect("remember again");
        assert_eq!(state.processed_count(), 2);
    }

    #[test]
    fn last_written_merges_and_intents_clear() {
        let (_dir, state) = open(10);
        let key = hubspot_key("contacts", "101");
        let first = BTreeMap::from([("firstname".to_string(), "Ada".to_string())]);
        let second = BTreeMap::from([("jobtitle".to_string(), "CTO".to_string())]);
        state.merge_last_written(&key, &first).expect("merge");
        state.merge_last_written(&key, &second).expect("merge");
        assert_eq!(state.last_written(&key).expect("read").len(), 2);
        let intent = CreateIntent {
            trace_id: "t".into(),
            at_ms: 5,
        };
        state
            .set_intent("companies:DOMAIN:acme.io", &intent)
            .expect("intent");
        assert_eq!(
            state.intent("companies:DOMAIN:acme.io").expect("read"),
            Some(intent)
        );
        state
            .clear_intent("companies:DOMAIN:acme.io")
            .expect("clear");
        assert_eq!(
            state.intent("companies:DOMAIN:acme.io").expect("read"),
            None
        );
    }

    #[tokio::test]
    async fn state_survives_a_reopen_after_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let state = State::open(dir.path(), 1 << 20, 10).expect("open");
            state.set_identity("k", "7").expect("write");
            state.flush().await.expect("flush");
        }
        let state = State::open(dir.path(), 1 << 20, 10).expect("reopen");
        assert_eq!(state.identity("k").expect("read").as_deref(), Some("7"));
    }
}
