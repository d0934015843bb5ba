//! Coalescing: commands for one record that arrive within the linger window become one write,
//! and up to `batch_size` records of one object type become one batch request.
//!
//! Each record is held until its oldest command has waited `linger`: that is the latest it may be
//! written, and the longer it waits the more of its later changes ride along in the same write.
//! When the oldest record is due, the batch takes it and the next oldest records, up to
//! `batch_size`, so writes stay full at any rate. Holding only pays while HubSpot's budget could
//! still write everything held on time: once more than `hold` records wait (a backlog, a replay),
//! full batches go out at once, oldest first, and the budget paces them.
//!
//! For each property the value with the newest event time wins (arrival order breaks ties).
//! A record whose previous batch is still in flight is held back until that batch is done, so
//! writes to one record never overtake each other. The sink keeps replayed commands in
//! coalescers of their own, apart from live ones; each side leaves out the records the other has
//! in flight ([`Coalescer::take_batch_avoiding`]), so the two never write one record at once.
//!
//! ```text
//! in:  {ada@acme.io firstname=Ada t=1}, {ada@acme.io jobtitle=CTO t=3}, {ada@acme.io firstname=Ada L. t=2}
//! out: one record ada@acme.io {firstname: "Ada L.", jobtitle: "CTO"} with three members
//! ```

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use hubsync_schemas::{HubSpotCommand, Identity};

pub use super::merged::Merged;
pub use super::receipt::Member;

/// A command as it arrives: its values are merged into its record, and only its member (the
/// receipt of its event) is kept.
#[derive(Debug, Clone)]
pub struct Arriving {
    pub command: HubSpotCommand,
    pub member: Member,
}

/// The merged write for one record, and the commands it answers for.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    /// `object:KIND:value`, see [`crate::state::record_key`].
    pub key: String,
    /// How upstream names it: its first command's identity.
    pub identity: Identity,
    pub merged: Merged,
    pub members: Vec<Member>,
    pub first_seen: Instant,
    /// Not to be written before this (a record waiting for HubSpot's search to catch up).
    pub not_before: Option<Instant>,
    /// A batch holding it failed as a whole while HubSpot answered other requests: written
    /// alone from now on, so that an input HubSpot cannot take fails by itself.
    pub alone: bool,
}

impl PendingRecord {
    fn new(key: String, identity: Identity, now: Instant) -> Self {
        PendingRecord {
            key,
            identity,
            merged: Merged::default(),
            members: Vec::new(),
            first_seen: now,
            not_before: None,
            alone: false,
        }
    }

    fn absorb(&mut self, mut arriving: Arriving) {
        self.merged.absorb_owned(arriving.command);
        if let Some(last) = self.members.last() {
            arriving.member.receipt.share_key(&last.receipt);
        }
        // Grown by a quarter at a time, not doubled: a replay holds a million of these.
        if self.members.len() == self.members.capacity() {
            self.members.reserve_exact((self.members.len() / 4).max(1));
        }
        self.members.push(arriving.member);
    }

    /// When the record may go: its linger has run out, and its own time has come if it has one.
    fn due(&self, linger: Duration) -> Instant {
        let lingered = self.first_seen + linger;
        self.not_before.map_or(lingered, |at| at.max(lingered))
    }

    /// The member whose command is newest by event time.
    pub fn newest(&self) -> Option<&Member> {
        self.members.iter().max_by_key(|m| m.receipt.event_time)
    }

    /// The event time of its oldest command.
    pub fn oldest_event_time(&self) -> Option<i64> {
        self.members.iter().map(|m| m.receipt.event_time).min()
    }
}

/// Pending records of one object type, in first-seen order.
///
/// Every operation costs in proportion to the records it touches, not to all records held: the
/// oldest records are at the front of `order` and records put back to wait are kept by the time
/// they are due, so the next batch and the next deadline are found at the front of either. A
/// replay may hold a million commands at once.
#[derive(Debug)]
pub struct Coalescer {
    linger: Duration,
    batch_size: usize,
    /// Records held for their linger at most; beyond it full batches are due at once.
    hold: usize,
    records: HashMap<String, PendingRecord>,
    /// Keys of `records`, oldest first; a record put back to wait goes to the back.
    order: VecDeque<String>,
    in_flight: HashSet<String>,
    /// Commands held in `records`.
    commands: usize,
    /// Records in `records` with a `not_before`, by when they are due: that time, or the end of
    /// their linger if later.
    waiting: BTreeSet<(Instant, String)>,
}

impl Coalescer {
    pub fn new(linger: Duration, batch_size: usize, hold: usize) -> Self {
        let batch_size = batch_size.max(1);
        Coalescer {
            linger,
            batch_size,
            hold: hold.max(batch_size),
            records: HashMap::new(),
            order: VecDeque::new(),
            in_flight: HashSet::new(),
            commands: 0,
            waiting: BTreeSet::new(),
        }
    }

    /// Holds a command for its record; `since` is when it started waiting.
    pub fn add(&mut self, key: String, arriving: Arriving, since: Instant) {
        let record = self.records.entry(key.clone()).or_insert_with(|| {
            self.order.push_back(key.clone());
            PendingRecord::new(key, arriving.command.identity.clone(), since)
        });
        record.absorb(arriving);
        self.commands += 1;
    }

    /// Puts a record back (a batch that must be tried again), keeping its place at the front.
    pub fn requeue(&mut self, mut record: PendingRecord) {
        self.in_flight.remove(&record.key);
        record.not_before = None;
        self.put_back(record, true);
    }

    /// Puts a record back to be written again no earlier than `at`, behind the others.
    pub fn requeue_at(&mut self, mut record: PendingRecord, at: Instant) {
        self.in_flight.remove(&record.key);
        record.not_before = Some(at);
        self.put_back(record, false);
    }

    fn put_back(&mut self, mut record: PendingRecord, front: bool) {
        self.commands += record.members.len();
        match self.records.get_mut(&record.key) {
            // Newer commands arrived meanwhile: merge the older members in first.
            Some(newer) => {
                if newer.not_before.is_some() {
                    let due = newer.due(self.linger);
                    self.waiting.remove(&(due, newer.key.clone()));
                }
                record.first_seen = record.first_seen.min(newer.first_seen);
                record
                    .merged
                    .absorb_merged(std::mem::take(&mut newer.merged));
                record.members.append(&mut newer.members);
                if record.not_before.is_some() {
                    self.waiting
                        .insert((record.due(self.linger), record.key.clone()));
                }
                *newer = record;
            }
            None => {
                if record.not_before.is_some() {
                    self.waiting
                        .insert((record.due(self.linger), record.key.clone()));
                }
                if front {
                    self.order.push_front(record.key.clone());
                } else {
                    self.order.push_back(record.key.clone());
                }
                self.records.insert(record.key.clone(), record);
            }
        }
    }

    /// Drops every record not handed out (records in flight stay known as such); returns how
    /// many commands they held.
    pub fn clear_pending(&mut self) -> usize {
        let commands = self.commands;
        self.records.clear();
        self.order.clear();
        self.commands = 0;
        self.waiting.clear();
        commands
    }

    /// Drops the records put back to wait that may not go before a time still to come (after
    /// an interrupted create, a backoff); returns how many commands they held.
    pub fn drop_waiting(&mut self, now: Instant) -> usize {
        let later: HashSet<String> = self
            .waiting
            .iter()
            .filter(|(_, key)| {
                self.records
                    .get(key)
                    .is_some_and(|r| r.not_before.is_some_and(|at| at > now))
            })
            .map(|(_, key)| key.clone())
            .collect();
        if later.is_empty() {
            return 0;
        }
        let mut commands = 0;
        for key in &later {
            if let Some(record) = self.records.remove(key) {
                commands += record.members.len();
            }
        }
        self.waiting.retain(|(_, key)| !later.contains(key));
        self.order.retain(|key| !later.contains(key));
        self.commands -= commands;
        commands
    }

    /// Records not yet handed out.
    pub fn pending_records(&self) -> usize {
        self.records.len()
    }

    /// Commands not yet handed out.
    pub fn pending_commands(&self) -> usize {
        self.commands
    }

    /// May this record go into a batch now?
    fn eligible(&self, key: &str, now: Instant) -> bool {
        !self.in_flight.contains(key)
            && self
                .records
                .get(key)
                .is_some_and(|r| r.not_before.is_none_or(|at| at <= now))
    }

    /// Takes the next batch if one is due: the oldest record not in flight has waited `linger`,
    /// or more than `hold` records wait and a full batch is there, or `flush` asks for whatever
    /// there is. The batch is the records put back to wait whose time has come (they stand
    /// behind younger records in `order`), then the oldest records, up to `batch_size`.
    #[cfg(test)]
    pub fn take_batch(&mut self, now: Instant, flush: bool) -> Option<Vec<PendingRecord>> {
        self.take_batch_avoiding(now, flush, |_| false)
    }

    /// [`Coalescer::take_batch`] leaving out the records `busy` names (in flight elsewhere):
    /// they keep their place and wait.
    pub fn take_batch_avoiding(
        &mut self,
        now: Instant,
        flush: bool,
        busy: impl Fn(&str) -> bool,
    ) -> Option<Vec<PendingRecord>> {
        // Records put back to wait go once both their time and their linger have come (or at a
        // flush, once their time has): `next_due` names that moment for them.
        let mut put_back: Vec<String> = Vec::new();
        for (due, key) in &self.waiting {
            if put_back.len() == self.batch_size || (!flush && *due > now) {
                break;
            }
            if self.eligible(key, now) && !busy(key) {
                put_back.push(key.clone());
            }
        }
        // Then the oldest records that never waited, by their place in `order`.
        let mut picked: Vec<usize> = Vec::with_capacity(self.batch_size - put_back.len());
        let hurry = flush || !put_back.is_empty() || self.records.len() > self.hold;
        if put_back.len() < self.batch_size {
            for (index, key) in self.order.iter().enumerate() {
                let Some(record) = self.records.get(key) else {
                    continue;
                };
                if record.not_before.is_some() || !self.eligible(key, now) || busy(key) {
                    continue;
                }
                // The oldest has not lingered and nothing else hurries: nothing is due yet.
                if picked.is_empty()
                    && !hurry
                    && now.duration_since(record.first_seen) < self.linger
                {
                    return None;
                }
                picked.push(index);
                if put_back.len() + picked.len() == self.batch_size {
                    break;
                }
            }
        }
        let oldest_lingered = picked
            .first()
            .and_then(|index| self.records.get(&self.order[*index]))
            .is_some_and(|r| now.duration_since(r.first_seen) >= self.linger);
        let size = put_back.len() + picked.len();
        let backlog = self.records.len() > self.hold && size >= self.batch_size;
        let due = flush || backlog || oldest_lingered || !put_back.is_empty();
        if size == 0 || !due {
            return None;
        }
        // The oldest first, while the indices in `picked` still hold.
        let mut oldest = Vec::with_capacity(picked.len());
        if let Some(&last) = picked.last() {
            let mut prefix: Vec<String> = self.order.drain(..=last).collect();
            for index in picked.iter().rev() {
                let key = prefix.remove(*index);
                oldest.extend(self.hand_out(key));
            }
            oldest.reverse();
            // The records passed over keep their places at the front.
            for key in prefix.into_iter().rev() {
                self.order.push_front(key);
            }
        }
        let mut batch = Vec::with_capacity(size);
        for key in put_back {
            // Put back at the end of `order` mostly, so it is looked for from there.
            if let Some(index) = self.order.iter().rposition(|k| *k == key) {
                self.order.remove(index);
            }
            batch.extend(self.hand_out(key));
        }
        batch.extend(oldest);
        Some(batch)
    }

    /// Removes a record taken into a batch from `records` (its key is out of `order` already)
    /// and marks it in flight.
    fn hand_out(&mut self, key: String) -> Option<PendingRecord> {
        let record = self.records.remove(&key)?;
        self.commands -= record.members.len();
        if record.not_before.is_some() {
            self.waiting.remove(&(record.due(self.linger), key.clone()));
        }
        self.in_flight.insert(key);
        Some(record)
    }

    /// When the next batch is due: the oldest eligible record's linger runs out, or a record
    /// waiting for later may go again.
    #[cfg(test)]
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due_avoiding(|_| false)
    }

    /// [`Coalescer::next_due`] of the records `busy` does not name.
    pub fn next_due_avoiding(&self, busy: impl Fn(&str) -> bool) -> Option<Instant> {
        let free = |key: &str| !self.in_flight.contains(key) && !busy(key);
        let oldest = self
            .order
            .iter()
            .filter(|k| free(k))
            .filter_map(|k| self.records.get(k))
            .find(|r| r.not_before.is_none())
            .map(|r| r.due(self.linger));
        let waiting = self
            .waiting
            .iter()
            .find(|(_, key)| free(key))
            .map(|(due, _)| *due);
        match (oldest, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether [`Coalescer::take_batch_avoiding`] could answer a batch at `now`: never `false`
    /// when it would, and much cheaper, so a caller can ask it before whatever else a batch
    /// needs (its portal's budget).
    pub fn may_be_due(&self, now: Instant, flush: bool, busy: impl Fn(&str) -> bool) -> bool {
        flush
            || self.records.len() > self.hold
            || self.next_due_avoiding(busy).is_some_and(|due| due <= now)
    }

    /// A batch is done with these records: they may be written again.
    pub fn release(&mut self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            self.in_flight.remove(&key);
        }
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether a batch holding this record is being written.
    pub fn is_in_flight(&self, key: &str) -> bool {
        self.in_flight.contains(key)
    }

    /// Holds nothing and writes nothing: it may be dropped and made again when needed.
    pub fn is_idle(&self) -> bool {
        self.records.is_empty() && self.in_flight.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hubsync_schemas::examples;

    fn member(email: &str, time: i64, props: &[(&str, Option<&str>)]) -> Arriving {
        let mut command = examples::hubspot_command();
        command.event_time = time;
        command.event_id = format!("e-{time}");
        command.identity.value = email.to_string();
        command.properties = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        command.fill_if_empty.clear();
        command.create_only_properties.clear();
        command.may_create = false;
        arriving(command)
    }

    pub(crate) fn arriving(command: HubSpotCommand) -> Arriving {
        let receipt = super::super::receipt::Receipt::new(
            &command,
            &crate::lineage::Lineage::default(),
            &crate::position::Position::new("hubsync.commands", 0, 0),
            &mut Default::default(),
        );
        Arriving {
            member: Member::new(receipt, crate::outcomes::Original::default),
            command,
        }
    }

    #[test]
    fn merging_two_merges_equals_merging_every_command_in_order() {
        let mut commands = Vec::new();
        for (time, props, fill, create, may_create) in [
            (
                5,
                vec![("firstname", Some("Ada"))],
                vec![],
                vec![("lifecyclestage", "lead")],
                false,
            ),
            (3, vec![("phone", Some("1"))], vec!["phone"], vec![], true),
            (
                7,
                vec![("phone", Some("2")), ("jobtitle", None)],
                vec![],
                vec![],
                false,
            ),
            (
                7,
                vec![("firstname", Some("Ada L."))],
                vec![],
                vec![("lifecyclestage", "customer")],
                false,
            ),
            (1, vec![("phone", Some("0"))], vec!["phone"], vec![], false),
        ] {
            let mut command = member("a@x.io", time, &props).command;
            command.fill_if_empty = fill.into_iter().map(str::to_string).collect();
            command.create_only_properties = create
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            command.may_create = may_create;
            if time == 7 {
                command.associations = examples::hubspot_command().associations;
            }
            commands.push(command);
        }
        let mut all = Merged::default();
        for command in &commands {
            all.absorb(command);
        }
        for split in 0..=commands.len() {
            let (first, second) = commands.split_at(split);
            let mut merged = Merged::default();
            first.iter().for_each(|c| merged.absorb(c));
            let mut later = Merged::default();
            second.iter().for_each(|c| later.absorb(c));
            merged.absorb_merged(later);
            assert_eq!(merged, all, "split at {split}");
        }
    }

    #[test]
    fn newest_value_per_property_wins_whatever_the_arrival_order() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::from_millis(100), 100, 1_000);
        c.add(
            "k".into(),
            member("a@x.io", 1, &[("firstname", Some("Ada"))]),
            now,
        );
        c.add(
            "k".into(),
            member("a@x.io", 3, &[("jobtitle", Some("CTO"))]),
            now,
        );
        c.add(
            "k".into(),
            member(
                "a@x.io",
                2,
                &[("firstname", Some("Ada L.")), ("jobtitle", Some("CEO"))],
            ),
            now,
        );
        let batch = c.take_batch(now, true).expect("batch");
        assert_eq!(batch.len(), 1);
        let record = &batch[0];
        assert_eq!(record.members.len(), 3);
        assert_eq!(
            record.merged.property("firstname").flatten(),
            Some("Ada L.")
        );
        assert_eq!(record.merged.property("jobtitle").flatten(), Some("CTO"));
        assert_eq!(record.newest().map(|m| m.receipt.event_time), Some(3));
    }

    fn keys(batch: &[PendingRecord]) -> Vec<&str> {
        batch.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn a_full_batch_still_waits_for_the_oldest_records_linger() {
        let start = Instant::now();
        let linger = Duration::from_millis(100);
        let mut c = Coalescer::new(linger, 2, 10);
        c.add("a".into(), member("a@x.io", 1, &[]), start);
        let later = start + Duration::from_millis(60);
        for key in ["b", "c"] {
            c.add(key.into(), member(&format!("{key}@x.io"), 1, &[]), later);
        }
        assert!(
            c.take_batch(later, false).is_none(),
            "three records, none lingered: nothing is due"
        );
        assert_eq!(c.next_due(), Some(start + linger));
        // A repeat inside the window joins its record instead of costing a write of its own.
        c.add("a".into(), member("a@x.io", 2, &[]), later);
        let due = c.take_batch(start + linger, false).expect("a has lingered");
        assert_eq!(
            keys(&due),
            ["a", "b"],
            "the oldest record and the next oldest"
        );
        assert_eq!(due[0].members.len(), 2);
        assert!(
            c.take_batch(start + linger, false).is_none(),
            "c is younger"
        );
        assert!(c.take_batch(later + linger, false).is_some());
    }

    #[test]
    fn beyond_the_hold_full_batches_go_at_once_and_partial_ones_wait() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(10), 2, 2);
        for key in ["a", "b", "c"] {
            c.add(key.into(), member(&format!("{key}@x.io"), 1, &[]), now);
        }
        let first = c.take_batch(now, false).expect("three held, hold is two");
        assert_eq!(keys(&first), ["a", "b"]);
        assert!(
            c.take_batch(now, false).is_none(),
            "one record left: within the hold, it lingers"
        );
        let flushed = c.take_batch(now, true).expect("flush takes what there is");
        assert_eq!(keys(&flushed), ["c"]);
    }

    #[test]
    fn counts_follow_records_through_batches_and_requeues() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 2, 100);
        c.add("a".into(), member("a@x.io", 1, &[]), now);
        c.add("a".into(), member("a@x.io", 2, &[]), now);
        c.add("b".into(), member("b@x.io", 1, &[]), now);
        c.add("c".into(), member("c@x.io", 1, &[]), now);
        assert_eq!((c.pending_records(), c.pending_commands()), (3, 4));
        let batch = c.take_batch(now, false).expect("due");
        assert_eq!(keys(&batch), ["a", "b"]);
        assert_eq!((c.pending_records(), c.pending_commands()), (1, 1));
        c.add("a".into(), member("a@x.io", 3, &[]), now);
        let mut batch = batch.into_iter();
        let a = batch.next().expect("a");
        c.requeue_at(a, now + Duration::from_secs(5));
        c.release(batch.map(|r| r.key));
        assert_eq!((c.pending_records(), c.pending_commands()), (2, 4));
        assert_eq!(c.next_due(), Some(now), "c is due; a waits");
        let next = c.take_batch(now, false).expect("c");
        assert_eq!(keys(&next), ["c"]);
        assert_eq!(c.next_due(), Some(now + Duration::from_secs(5)));
        let later = c
            .take_batch(now + Duration::from_secs(5), false)
            .expect("a again");
        assert_eq!(
            later[0].members.len(),
            3,
            "the requeued and the newer commands"
        );
        assert_eq!((c.pending_records(), c.pending_commands()), (0, 0));
    }

    #[test]
    fn a_record_in_flight_waits_for_its_batch() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 10, 1_000);
        c.add(
            "a".into(),
            member("a@x.io", 1, &[("firstname", Some("A"))]),
            now,
        );
        let first = c.take_batch(now, true).expect("batch");
        c.add(
            "a".into(),
            member("a@x.io", 2, &[("firstname", Some("B"))]),
            now,
        );
        assert!(
            c.take_batch(now, true).is_none(),
            "held back while in flight"
        );
        c.release(first.into_iter().map(|r| r.key));
        let second = c.take_batch(now, true).expect("released");
        assert_eq!(second[0].merged.property("firstname").flatten(), Some("B"));
    }

    #[test]
    fn a_record_requeued_for_later_waits_without_holding_others_back() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 10, 1_000);
        c.add("a".into(), member("a@x.io", 1, &[]), now);
        let batch = c.take_batch(now, true).expect("batch");
        for record in batch {
            c.requeue_at(record, now + Duration::from_secs(30));
        }
        c.add("b".into(), member("b@x.io", 1, &[]), now);
        let next = c.take_batch(now, true).expect("b is due");
        assert_eq!(next[0].key, "b");
        assert!(c.take_batch(now, true).is_none(), "a waits");
        assert_eq!(c.next_due(), Some(now + Duration::from_secs(30)));
        assert!(c.take_batch(now + Duration::from_secs(30), false).is_some());
    }

    #[test]
    fn records_waiting_for_later_are_dropped_and_the_rest_stays() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::from_secs(10), 10, 1_000);
        c.add("a".into(), member("a@x.io", 1, &[]), now);
        c.add("b".into(), member("b@x.io", 1, &[]), now);
        let batch = c.take_batch(now, true).expect("batch");
        for record in batch {
            if record.key == "a" {
                c.requeue_at(record, now + Duration::from_secs(30));
            } else {
                c.requeue(record);
            }
        }
        c.add("a".into(), member("a@x.io", 2, &[]), now);
        c.add("c".into(), member("c@x.io", 1, &[]), now);
        assert_eq!(c.pending_commands(), 4);
        assert_eq!(c.drop_waiting(now), 2, "a's two commands");
        assert_eq!(c.pending_commands(), 2);
        assert_eq!(c.next_due(), Some(now + Duration::from_secs(10)));
        let rest = c.take_batch(now, true).expect("the rest");
        let keys: Vec<&str> = rest.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(c.drop_waiting(now), 0, "nothing waits");
    }

    #[test]
    fn a_requeued_record_merges_with_newer_commands() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 10, 1_000);
        c.add(
            "a".into(),
            member(
                "a@x.io",
                1,
                &[("firstname", Some("Old")), ("city", Some("Paris"))],
            ),
            now,
        );
        let batch = c.take_batch(now, true).expect("batch");
        c.add(
            "a".into(),
            member("a@x.io", 5, &[("firstname", Some("New"))]),
            now,
        );
        for record in batch {
            c.requeue(record);
        }
        let retried = c.take_batch(now, true).expect("batch");
        assert_eq!(retried[0].members.len(), 2);
        assert_eq!(
            retried[0].merged.property("firstname").flatten(),
            Some("New")
        );
        assert_eq!(retried[0].merged.property("city").flatten(), Some("Paris"));
    }

    #[test]
    fn records_busy_elsewhere_keep_their_place_and_wait() {
        let now = Instant::now();
        let linger = Duration::from_millis(100);
        let mut live = Coalescer::new(linger, 10, 1_000);
        let mut replay = Coalescer::new(linger, 10, 1_000);
        live.add("a".into(), member("a@x.io", 5, &[]), now);
        let in_flight = live.take_batch(now, true).expect("live batch");
        replay.add("a".into(), member("a@x.io", 1, &[]), now);
        replay.add("b".into(), member("b@x.io", 1, &[]), now);
        let due = now + linger;
        let busy = |key: &str| live.is_in_flight(key);
        assert_eq!(replay.next_due_avoiding(busy), Some(due));
        let batch = replay
            .take_batch_avoiding(due, false, busy)
            .expect("b is due");
        assert_eq!(keys(&batch), ["b"], "a is being written by the live side");
        assert_eq!(replay.next_due_avoiding(busy), None);
        assert_eq!(replay.pending_records(), 1);
        live.release(in_flight.into_iter().map(|r| r.key));
        let busy = |key: &str| live.is_in_flight(key);
        let batch = replay
            .take_batch_avoiding(due, false, busy)
            .expect("a is free now");
        assert_eq!(keys(&batch), ["a"]);
    }

    #[test]
    fn a_record_put_back_behind_younger_ones_is_taken_when_its_time_comes() {
        let start = Instant::now();
        let linger = Duration::from_secs(10);
        let mut c = Coalescer::new(linger, 10, 1_000);
        c.add("a".into(), member("a@x.io", 1, &[]), start);
        c.add("a".into(), member("a@x.io", 2, &[]), start);
        let batch = c.take_batch(start, true).expect("a goes");
        assert_eq!(c.pending_commands(), 0);
        c.add(
            "b".into(),
            member("b@x.io", 1, &[]),
            start + Duration::from_secs(1),
        );
        for record in batch {
            c.requeue_at(record, start + Duration::from_secs(2));
        }
        // a is behind b in order but lingered first: the loop wakes for it and finds it due.
        assert_eq!(c.next_due(), Some(start + linger));
        assert_eq!((c.pending_records(), c.pending_commands()), (2, 3));
        assert!(
            c.take_batch(start + Duration::from_secs(5), false)
                .is_none()
        );
        let due = c.take_batch(start + linger, false).expect("a is due");
        assert_eq!(keys(&due), ["a", "b"], "b fills the batch a is due in");
        assert_eq!(c.pending_commands(), 0);
        assert_eq!(c.next_due(), None);
        // Nothing is left in `order` for the records handed out.
        c.release(["a".to_string(), "b".to_string()]);
        c.add("c".into(), member("c@x.io", 1, &[]), start + linger);
        let next = c.take_batch(start + linger * 2, false).expect("c lingered");
        assert_eq!(keys(&next), ["c"]);
    }

    #[test]
    fn many_younger_records_do_not_hide_one_put_back_that_is_due() {
        let start = Instant::now();
        let linger = Duration::from_secs(10);
        let mut c = Coalescer::new(linger, 2, 1_000);
        c.add("old".into(), member("old@x.io", 1, &[]), start);
        let batch = c.take_batch(start, true).expect("old goes");
        let later = start + Duration::from_secs(5);
        for key in ["p", "q", "r", "s"] {
            c.add(key.into(), member(&format!("{key}@x.io"), 1, &[]), later);
        }
        for record in batch {
            c.requeue_at(record, start + Duration::from_secs(1));
        }
        assert_eq!(c.next_due(), Some(start + linger));
        let due = c.take_batch(start + linger, false).expect("old is due");
        assert_eq!(keys(&due), ["old", "p"]);
        assert_eq!(c.next_due(), Some(later + linger));
    }

    #[test]
    fn a_waiting_record_that_takes_more_commands_leaves_no_trace_once_written() {
        let start = Instant::now();
        let linger = Duration::from_secs(1);
        let mut c = Coalescer::new(linger, 10, 1_000);
        c.add("a".into(), member("a@x.io", 1, &[]), start);
        let batch = c.take_batch(start, true).expect("a goes");
        // Written while put back: newer commands arrive, then the record comes back.
        c.add("a".into(), member("a@x.io", 2, &[]), start);
        for record in batch {
            c.requeue_at(record, start + Duration::from_secs(3));
        }
        c.add("a".into(), member("a@x.io", 3, &[]), start);
        assert_eq!(c.next_due(), Some(start + Duration::from_secs(3)));
        assert!(
            c.take_batch(start + Duration::from_secs(2), false)
                .is_none()
        );
        let due = c
            .take_batch(start + Duration::from_secs(3), false)
            .expect("its time has come");
        assert_eq!(due[0].members.len(), 3);
        assert_eq!((c.pending_records(), c.pending_commands()), (0, 0));
        assert_eq!(c.next_due(), None, "nothing left waiting");
    }

    #[test]
    fn a_record_put_back_ahead_of_the_oldest_ones_leaves_their_places_intact() {
        let start = Instant::now();
        let linger = Duration::from_secs(1);
        let mut c = Coalescer::new(linger, 10, 1_000);
        c.add("a".into(), member("a@x.io", 1, &[]), start);
        let batch = c.take_batch(start, true).expect("a goes");
        // While a is written, a newer command for it takes the front of `order`.
        c.add("a".into(), member("a@x.io", 2, &[]), start);
        for key in ["b", "c"] {
            c.add(key.into(), member(&format!("{key}@x.io"), 1, &[]), start);
        }
        for record in batch {
            c.requeue_at(record, start + Duration::from_millis(500));
        }
        let due = c.take_batch(start + linger, false).expect("all are due");
        assert_eq!(keys(&due), ["a", "b", "c"]);
        assert_eq!(due[0].members.len(), 2);
        assert_eq!((c.pending_records(), c.pending_commands()), (0, 0));
        c.release(["a".to_string(), "b".to_string(), "c".to_string()]);
        c.add("d".into(), member("d@x.io", 1, &[]), start + linger);
        let next = c.take_batch(start + linger * 2, false).expect("d lingered");
        assert_eq!(
            keys(&next),
            ["d"],
            "no key of a handed-out record is left in `order`"
        );
    }

    #[test]
    fn clearing_drops_what_waits_and_keeps_what_is_in_flight() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 1, 1_000);
        c.add("a".into(), member("a@x.io", 1, &[]), now);
        let in_flight = c.take_batch(now, true).expect("a goes");
        c.add("b".into(), member("b@x.io", 1, &[]), now);
        c.add("b".into(), member("b@x.io", 2, &[]), now);
        c.add("c".into(), member("c@x.io", 1, &[]), now);
        assert_eq!(c.clear_pending(), 3);
        assert_eq!((c.pending_records(), c.in_flight()), (0, 1));
        assert!(c.take_batch(now, true).is_none());
        assert_eq!(c.next_due(), None);
        c.release(in_flight.into_iter().map(|r| r.key));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn fill_if_empty_holds_only_while_no_member_sends_the_value_outright() {
        let now = Instant::now();
        let mut c = Coalescer::new(Duration::ZERO, 10, 1_000);
        let mut first = member("a@x.io", 1, &[("phone", Some("1"))]);
        first.command.fill_if_empty = vec!["phone".into()];
        first.command.may_create = true;
        c.add("a".into(), first, now);
        let record = c.take_batch(now, true).expect("batch").remove(0);
        assert!(record.merged.fills("phone"));
        assert!(record.merged.may_create);

        let mut c = Coalescer::new(Duration::ZERO, 10, 1_000);
        let mut first = member("a@x.io", 1, &[("phone", Some("1"))]);
        first.command.fill_if_empty = vec!["phone".into()];
        c.add("a".into(), first, now);
        c.add(
            "a".into(),
            member("a@x.io", 2, &[("phone", Some("2"))]),
            now,
        );
        let record = c.take_batch(now, true).expect("batch").remove(0);
        assert!(!record.merged.fills("phone"));
        assert_eq!(record.merged.property("phone").flatten(), Some("2"));
    }

    proptest::proptest! {
        /// `may_be_due` is asked before a batch's budget: were it ever `false` while
        /// `take_batch_avoiding` would answer a batch, that batch would wait for nothing.
        #[test]
        fn may_be_due_is_never_false_when_a_batch_is_due(
            steps in proptest::collection::vec((0u8..5, 0u8..6, 0u16..400, proptest::bool::ANY), 1..80),
            hold in 1usize..6,
        ) {
            let start = Instant::now();
            let mut c = Coalescer::new(Duration::from_millis(200), 3, hold);
            let mut now = start;
            let mut taken: Vec<Vec<PendingRecord>> = Vec::new();
            let mut time = 0i64;
            for (op, key, ms, flag) in steps {
                now += Duration::from_millis(u64::from(ms));
                let key = format!("k{key}");
                match op {
                    0 | 1 => {
                        time += 1;
                        c.add(key.clone(), member(&format!("{key}@x.io"), time, &[]), now);
                    }
                    2 => {
                        // Some records are written by the other lane meanwhile.
                        let busy = |k: &str| flag && k == key;
                        let flush = !flag && ms % 7 == 0;
                        let may = c.may_be_due(now, flush, busy);
                        if let Some(batch) = c.take_batch_avoiding(now, flush, busy) {
                            proptest::prop_assert!(may, "a batch was due at {:?}", now - start);
                            taken.push(batch);
                        }
                    }
                    3 => {
                        if let Some(batch) = taken.pop() {
                            c.release(batch.into_iter().map(|r| r.key));
                        }
                    }
                    _ => {
                        if let Some(batch) = taken.pop() {
                            for record in batch {
                                c.requeue_at(record, now + Duration::from_millis(u64::from(ms)));
                            }
                        }
                    }
                }
            }
        }
    }
}
