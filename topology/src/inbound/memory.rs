//! What the inbound stage remembers, in sled (its own state directory):
//!
//! | tree | key | value | what for |
//! |---|---|---|---|
//! | `seen` | the change's id (16 bytes) | when it was sent up (ms) | HubSpot delivers a change more than once, and webhooks and polling both see it: sent once |
//! | `clock` | `portal:object:id:property` | HubSpot's time of the newest change seen (ms) | an older change arriving after a newer one is not sent up (newest wins) |
//! | `upstream` | `team:object:hubspot id` | the upstream record id | the key and `record_id` of a change, learned from the sink's outcomes |
//!
//! The stage writes `seen` and `clock` only after the changes are on Kafka, so a crash between
//! the two sends a change again (with the same id) rather than losing it.

use std::time::Duration;

use crate::state::StateError;

/// How long a sent change's id is kept: HubSpot retries a webhook for up to 24 hours, and the
/// polling lag window is minutes, so three days catch every second copy.
pub const SEEN_FOR: Duration = Duration::from_secs(3 * 24 * 3600);

#[derive(Clone)]
pub struct Memory {
    db: sled::Db,
    seen: sled::Tree,
    clock: sled::Tree,
    upstream: sled::Tree,
}

/// The inbound stage's database, in `dir`; polling keeps its cursors in it too.
pub fn open_db(dir: &std::path::Path, cache_bytes: u64) -> Result<sled::Db, StateError> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .open()
        .map_err(|source| StateError::Open {
            path: dir.display().to_string(),
            source,
        })
}

impl Memory {
    pub fn open(db: &sled::Db) -> Result<Self, StateError> {
        Ok(Memory {
            db: db.clone(),
            seen: db.open_tree("seen")?,
            clock: db.open_tree("clock")?,
            upstream: db.open_tree("upstream")?,
        })
    }

    /// Whether the change with this id was sent up already.
    pub fn seen(&self, id: &[u8; 16]) -> Result<bool, StateError> {
        Ok(self.seen.contains_key(id)?)
    }

    pub fn mark_seen(&self, id: &[u8; 16], at_ms: i64) -> Result<(), StateError> {
        self.seen.insert(id, &at_ms.to_be_bytes())?;
        Ok(())
    }

    /// Forgets ids sent up before `before_ms`; returns how many.
    pub fn prune_seen(&self, before_ms: i64) -> Result<usize, StateError> {
        let mut old = Vec::new();
        for entry in self.seen.iter() {
            let (key, value) = entry?;
            if millis(&value) < before_ms {
                old.push(key);
            }
        }
        for key in &old {
            self.seen.remove(key)?;
        }
        Ok(old.len())
    }

    /// HubSpot's time of the newest change seen to one property of one record.
    pub fn clock(&self, key: &str) -> Result<Option<i64>, StateError> {
        Ok(self.clock.get(key)?.map(|v| millis(&v)))
    }

    /// Moves a property's clock forward to `at_ms` (never back).
    pub fn advance_clock(&self, key: &str, at_ms: i64) -> Result<(), StateError> {
        self.clock.fetch_and_update(key, |old| match old {
            Some(old) if millis(old) >= at_ms => Some(old.to_vec()),
            _ => Some(at_ms.to_be_bytes().to_vec()),
        })?;
        Ok(())
    }

    /// The upstream id of a HubSpot record of `team`.
    pub fn upstream_id(
        &self,
        team: &str,
        object: &str,
        hubspot_id: &str,
    ) -> Result<Option<String>, StateError> {
        Ok(self
            .upstream
            .get(upstream_key(team, object, hubspot_id))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn set_upstream_id(
        &self,
        team: &str,
        object: &str,
        hubspot_id: &str,
        upstream_id: &str,
    ) -> Result<(), StateError> {
        self.upstream.insert(
            upstream_key(team, object, hubspot_id),
            upstream_id.as_bytes(),
        )?;
        Ok(())
    }

    /// Makes what was written durable.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush()?;
        Ok(())
    }
}

fn upstream_key(team: &str, object: &str, hubspot_id: &str) -> String {
    format!("{team}:{object}:{hubspot_id}")
}

fn millis(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> (tempfile::TempDir, Memory) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let memory = Memory::open(&db).unwrap();
        (dir, memory)
    }

    #[test]
    fn clocks_only_move_forward() {
        let (_dir, memory) = memory();
        assert_eq!(memory.clock("1:contacts:5:phone").unwrap(), None);
        memory.advance_clock("1:contacts:5:phone", 200).unwrap();
        memory.advance_clock("1:contacts:5:phone", 100).unwrap();
        assert_eq!(memory.clock("1:contacts:5:phone").unwrap(), Some(200));
        memory.advance_clock("1:contacts:5:phone", 300).unwrap();
        assert_eq!(memory.clock("1:contacts:5:phone").unwrap(), Some(300));
    }

    #[test]
    fn seen_ids_are_forgotten_after_their_time() {
        let (_dir, memory) = memory();
        memory.mark_seen(&[1; 16], 1_000).unwrap();
        memory.mark_seen(&[2; 16], 5_000).unwrap();
        assert!(memory.seen(&[1; 16]).unwrap());
        assert_eq!(memory.prune_seen(2_000).unwrap(), 1);
        assert!(!memory.seen(&[1; 16]).unwrap());
        assert!(memory.seen(&[2; 16]).unwrap());
    }

    #[test]
    fn upstream_ids_are_per_team() {
        let (_dir, memory) = memory();
        memory
            .set_upstream_id("acme", "contacts", "51", "c_1")
            .unwrap();
        assert_eq!(
            memory.upstream_id("acme", "contacts", "51").unwrap(),
            Some("c_1".to_string())
        );
        assert_eq!(
            memory.upstream_id("initech", "contacts", "51").unwrap(),
            None
        );
    }
}
