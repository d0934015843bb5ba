//! The walk over one object type's records in last-modified order: a pure state machine that
//! says which search to send next and, once a page is processed, where the walk stands.
//!
//! ```text
//! position {from: 1000}, upper 5000, page_size 3
//! query  -> Scan  lastmodified GTE 1000 AND LTE 5000, sorted ascending, limit 3
//! page   <- [a@1000, b@1200, c@1200], more        -> store {from: 1200}   (1200 may go on)
//! query  -> Scan  GTE 1200 ...
//! page   <- [b@1200, c@1200, d@1200], more        -> store {from: 1200, drain_after: 0}
//! query  -> Drain lastmodified = 1200 AND hs_object_id GT 0, sorted by id, limit 3
//! page   <- [b, c, d], more                       -> store {from: 1200, drain_after: id of d}
//! page   <- [e], no more                          -> store {from: 1201}
//! query  -> Scan  GTE 1201 ...
//! page   <- [f@4000], no more                     -> store {from: 5001}; nothing to ask
//! ```
//!
//! Every page is a fresh search from the last millisecond the walk has not finished: search's
//! `after` is an offset into a result set that shifts whenever a record in it is modified again
//! (it leaves the window), so paging by offset would skip records, and it stops at 10,000
//! results. Searching again from the page's last millisecond never pages at all; the records of
//! that millisecond are read again (the boundary), and nothing else is. When a whole page shares
//! one millisecond (HubSpot's bulk updates stamp thousands of records alike), no search by time
//! can get past it: that millisecond is drained by record id (last modified `= ms`,
//! `hs_object_id GT last`), then the walk moves on to the next millisecond.
//!
//! The walk ends at `upper` (now minus the search lag: search indexes writes late, and a
//! record the index has not caught up with must not be stepped over). A position is stored only
//! after everything its page produced is on Kafka, so a crash repeats a page, never skips one.

use serde::{Deserialize, Serialize};

/// Where a walk stands between pages and between runs (stored per team, portal and type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Records last modified before this millisecond have been read.
    pub from_ms: i64,
    /// Draining the millisecond `from_ms` by record id: records of it with a greater id are
    /// still to be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_after: Option<u64>,
}

impl Position {
    /// A walk that reads records modified at or after `from_ms`.
    pub fn at(from_ms: i64) -> Self {
        Position {
            from_ms,
            drain_after: None,
        }
    }
}

/// The next search to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Last modified `GTE from_ms` and `LTE upper_ms`, sorted by last modified ascending.
    Scan { from_ms: i64, upper_ms: i64 },
    /// Last modified at `ms` and `hs_object_id GT after_id`, sorted by `hs_object_id` ascending.
    Drain { ms: i64, after_id: u64 },
}

/// One record of a search page: its id and when it was last modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    pub modified_ms: i64,
}

/// One run of a walk, from a stored position up to `upper_ms`.
#[derive(Debug, Clone)]
pub struct Walk {
    position: Position,
    upper_ms: i64,
    /// A page promised more but brought nothing new: the run ends where it is rather than
    /// asking the same question again.
    stalled: bool,
}

impl Walk {
    pub fn new(position: Position, upper_ms: i64) -> Self {
        Walk {
            position,
            upper_ms,
            stalled: false,
        }
    }

    /// Where the walk stands: what to store once the pages read so far are processed.
    #[cfg(test)]
    pub fn position(&self) -> Position {
        self.position
    }

    /// Whether everything up to `upper_ms` has been read (and not merely this run stalled).
    pub fn finished(&self) -> bool {
        self.position.drain_after.is_none() && self.position.from_ms > self.upper_ms
    }

    /// The search to send next; `None` when this run has read everything up to `upper_ms`.
    pub fn query(&self) -> Option<Query> {
        if self.stalled {
            return None;
        }
        match self.position.drain_after {
            Some(after_id) => Some(Query::Drain {
                ms: self.position.from_ms,
                after_id,
            }),
            None if self.position.from_ms > self.upper_ms => None,
            None => Some(Query::Scan {
                from_ms: self.position.from_ms,
                upper_ms: self.upper_ms,
            }),
        }
    }

    /// The answer to [`Walk::query`]'s search: its records in the order given, and whether the
    /// search said more results follow. Returns the position to store once the page's records
    /// are processed. Records outside what was asked (a search answering loosely) are ignored
    /// for the walk's progress.
    pub fn advance(&mut self, page: &[Seen], more: bool) -> Position {
        match self.position.drain_after {
            Some(after_id) => {
                let ms = self.position.from_ms;
                let last = page
                    .iter()
                    .filter(|seen| seen.modified_ms == ms && seen.id > after_id)
                    .map(|seen| seen.id)
                    .max();
                match (last, more) {
                    (Some(last), true) => self.position.drain_after = Some(last),
                    (None, true) => self.stalled = true,
                    (_, false) => self.position = Position::at(ms.saturating_add(1)),
                }
            }
            None => {
                let from = self.position.from_ms;
                if !more {
                    // Everything up to `upper_ms` has been read.
                    self.position = Position::at(self.upper_ms.saturating_add(1).max(from));
                    return self.position;
                }
                let last = page
                    .iter()
                    .map(|seen| seen.modified_ms)
                    .filter(|ms| (from..=self.upper_ms).contains(ms))
                    .max();
                match last {
                    Some(last) if last > from => self.position = Position::at(last),
                    // The whole page shares the millisecond the search started from.
                    Some(_) => self.position.drain_after = Some(0),
                    None => self.stalled = true,
                }
            }
        }
        self.position
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// A search index as HubSpot's behaves for the walk: one sort, ties in an order of its own
    /// (not by id), `limit` results, "more" when more match.
    struct Index {
        records: Vec<Seen>,
    }

    impl Index {
        fn answer(&self, query: Query, limit: usize) -> (Vec<Seen>, bool) {
            let mut matching: Vec<Seen> = match query {
                Query::Scan { from_ms, upper_ms } => {
                    let mut found: Vec<Seen> = self
                        .records
                        .iter()
                        .copied()
                        .filter(|s| (from_ms..=upper_ms).contains(&s.modified_ms))
                        .collect();
                    // Ties come in an order unrelated to ids.
                    found.sort_by_key(|s| (s.modified_ms, s.id.wrapping_mul(0x9e37_79b9) % 1009));
                    found
                }
                Query::Drain { ms, after_id } => {
                    let mut found: Vec<Seen> = self
                        .records
                        .iter()
                        .copied()
                        .filter(|s| s.modified_ms == ms && s.id > after_id)
                        .collect();
                    found.sort_by_key(|s| s.id);
                    found
                }
            };
            let more = matching.len() > limit;
            matching.truncate(limit);
            (matching, more)
        }
    }

    /// Runs walks from `position` until one ends at `upper`; returns how often each record was
    /// read, the milliseconds searches started from (the boundaries), and the queries sent.
    fn walk_all(
        index: &Index,
        position: Position,
        upper: i64,
        limit: usize,
    ) -> (BTreeMap<u64, u32>, BTreeSet<i64>, Vec<Query>, Position) {
        let mut reads = BTreeMap::new();
        let mut boundaries = BTreeSet::new();
        let mut queries = Vec::new();
        let mut walk = Walk::new(position, upper);
        while let Some(query) = walk.query() {
            queries.push(query);
            assert!(queries.len() < 100_000, "the walk does not end");
            match query {
                Query::Scan { from_ms, .. } => boundaries.insert(from_ms),
                Query::Drain { ms, .. } => boundaries.insert(ms),
            };
            let (page, more) = index.answer(query, limit);
            for seen in &page {
                *reads.entry(seen.id).or_insert(0) += 1;
            }
            walk.advance(&page, more);
        }
        (reads, boundaries, queries, walk.position())
    }

    #[test]
    fn twenty_five_thousand_records_with_twelve_thousand_in_one_millisecond() {
        const BULK_MS: i64 = 1_700_000_050_000;
        let mut records = Vec::new();
        // 6,500 before the bulk update, two or three a millisecond; 12,000 stamped alike; 6,500
        // after, one every other millisecond.
        for n in 0..6_500_u64 {
            records.push(Seen {
                id: 1_000_000 + n,
                modified_ms: 1_700_000_000_000 + (n as i64) * 2 / 5,
            });
        }
        for n in 0..12_000_u64 {
            records.push(Seen {
                id: 2 + n * 2,
                modified_ms: BULK_MS,
            });
        }
        for n in 0..6_500_u64 {
            records.push(Seen {
                id: 100_000 + n,
                modified_ms: BULK_MS + 1 + (n as i64) * 2,
            });
        }
        let ids: BTreeSet<u64> = records.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), 25_000);
        let modified: BTreeMap<u64, i64> = records.iter().map(|s| (s.id, s.modified_ms)).collect();
        let index = Index { records };
        let upper = BULK_MS + 20_000;

        let (reads, boundaries, queries, end) =
            walk_all(&index, Position::at(1_700_000_000_000), upper, 200);
        // Nothing lost.
        assert_eq!(reads.len(), 25_000);
        // Nothing read twice but records of a millisecond a search started from.
        for (id, count) in &reads {
            if *count > 1 {
                assert!(
                    boundaries.contains(&modified[id]),
                    "record {id} read {count} times at {}",
                    modified[id]
                );
            }
        }
        // The bulk millisecond was drained by id, 200 at a time, and left behind.
        let drains = queries
            .iter()
            .filter(|q| matches!(q, Query::Drain { ms: BULK_MS, .. }))
            .count();
        assert_eq!(drains, 60);
        assert!(queries.contains(&Query::Scan {
            from_ms: BULK_MS + 1,
            upper_ms: upper
        }));
        // Re-reading stays small: each page repeats at most its boundary millisecond, and the
        // bulk millisecond is read twice (once while the scan reached it, once drained).
        let total: u32 = reads.values().sum();
        assert!(
            total < 25_000 + 12_000 + 2 * 200 + queries.len() as u32 * 3,
            "{total}"
        );
        // The walk ends past upper, and a walk from there asks nothing.
        assert_eq!(end, Position::at(upper + 1));
        assert_eq!(Walk::new(end, upper).query(), None);
        assert!(Walk::new(end, upper).finished());
    }

    #[test]
    fn a_walk_stopped_anywhere_resumes_from_its_stored_position_without_loss() {
        let records: Vec<Seen> = (0..1_000_u64)
            .map(|n| Seen {
                id: n + 1,
                // 400 records share 5_000; the others spread around it.
                modified_ms: if n % 5 < 2 { 5_000 } else { n as i64 * 10 },
            })
            .collect();
        let index = Index { records };
        let mut position = Position::at(0);
        let mut read = BTreeSet::new();
        // One page a run, each run starting from what the last stored.
        for _ in 0..10_000 {
            let mut walk = Walk::new(position, 20_000);
            let Some(query) = walk.query() else { break };
            let (page, more) = index.answer(query, 50);
            read.extend(page.iter().map(|s| s.id));
            position = walk.advance(&page, more);
            // The stored form survives a round trip.
            let stored = serde_json::to_string(&position).unwrap();
            position = serde_json::from_str(&stored).unwrap();
        }
        assert_eq!(read.len(), 1_000);
        assert_eq!(position, Position::at(20_001));
    }

    #[test]
    fn records_modified_since_upper_wait_for_a_later_run() {
        let index = Index {
            records: vec![
                Seen {
                    id: 1,
                    modified_ms: 100,
                },
                Seen {
                    id: 2,
                    modified_ms: 300,
                },
            ],
        };
        let (reads, _, _, end) = walk_all(&index, Position::at(50), 200, 10);
        assert_eq!(reads.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(end, Position::at(201));
        let (reads, _, _, end) = walk_all(&index, end, 400, 10);
        assert_eq!(reads.keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(end, Position::at(401));
        // A run whose upper has not moved past the position asks nothing.
        assert_eq!(Walk::new(end, 400).query(), None);
    }

    #[test]
    fn a_page_that_promises_more_but_brings_nothing_ends_the_run_where_it_is() {
        let mut walk = Walk::new(Position::at(10), 100);
        let stored = walk.advance(&[], true);
        assert_eq!(stored, Position::at(10));
        assert_eq!(walk.query(), None);
        assert!(!walk.finished());
        // Records outside the window asked for do not move the walk.
        let mut walk = Walk::new(Position::at(10), 100);
        let loose = [Seen {
            id: 1,
            modified_ms: 5_000,
        }];
        assert_eq!(walk.advance(&loose, true), Position::at(10));
        assert_eq!(walk.query(), None);
        // A drain page of nothing new ends the run too.
        let mut walk = Walk::new(
            Position {
                from_ms: 10,
                drain_after: Some(7),
            },
            100,
        );
        let old = [Seen {
            id: 7,
            modified_ms: 10,
        }];
        walk.advance(&old, true);
        assert_eq!(walk.query(), None);
        assert_eq!(walk.position().drain_after, Some(7));
    }

    #[test]
    fn positions_are_stored_compactly() {
        assert_eq!(
            serde_json::to_string(&Position::at(5)).unwrap(),
            r#"{"from_ms":5}"#
        );
        let draining = Position {
            from_ms: 5,
            drain_after: Some(9),
        };
        assert_eq!(
            serde_json::from_str::<Position>(r#"{"from_ms":5,"drain_after":9}"#).unwrap(),
            draining
        );
    }
}
