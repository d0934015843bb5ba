//! What the poller remembers between runs and restarts, in sled (the inbound stage's state
//! directory, `[state] dir/inbound`):
//!
//! - `poll_cursors`: `team:portal:object` -> the [`ObjectCursor`] of one object type (JSON);
//!   `team:portal:list:<listId>` -> the [`ListCursor`] of one followed list.
//! - `poll_marks`: `team:portal:object:` + record id (8 bytes, big-endian) -> the newest version
//!   time sent for that record (8 bytes, big-endian). A record's history is read whole; only
//!   versions after its mark are sent, so the record is found again (modified again, at a
//!   boundary, by a refresh) without its old changes being sent twice, and a change is never
//!   left out because the record was last modified again before the poll came to it. Marks are
//!   kept only for records something was sent for, and pruned a while after (see
//!   [`MARK_HORIZON_MS`]).
//! - `poll_lists`: `team:portal:list:<listId>:` + record id (8 bytes) -> when it joined
//!   (8 bytes): the members last seen.
//!
//! Everything is written only after Kafka confirmed the events it accounts for.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cursor::Position;
use crate::hubspot::ObjectType;

/// How long a record's mark is kept after the live poll passed it. A record found again later
/// has its versions since `max(origin, pruned_below)` sent: at worst some again, which the
/// translator's dedupe absorbs.
pub const MARK_HORIZON_MS: i64 = 7 * 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the inbound stage's state at {path}: {source}; check the directory exists \
         and is writable, and that no other hubsync process uses it"
    )]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("inbound state database error: {0}")]
    Db(#[from] sled::Error),
    #[error("corrupt poll cursor {key}: {source}; delete it to start that walk again")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Where the polling of one object type of one team stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCursor {
    /// The live walk by last-modified time.
    pub live: Position,
    /// Where polling began for this team and type: versions older than this are not sent.
    pub origin_ms: i64,
    /// Marks older than this have been pruned; a record without a mark has its versions after
    /// `max(origin_ms, pruned_below_ms)` sent.
    #[serde(default)]
    pub pruned_below_ms: i64,
    #[serde(default)]
    pub pruned_at_ms: i64,
    /// The refresh in progress, if one is.
    #[serde(default)]
    pub refresh: Option<Refresh>,
    /// When the last refresh started; the next is due `refresh_interval` after it.
    #[serde(default)]
    pub refresh_started_ms: Option<i64>,
    /// Deletions archived at or before this have been sent.
    pub archived_ms: i64,
    /// When archived records were last listed.
    pub archived_polled_ms: i64,
}

/// A full walk from the epoch to `upper_ms`, re-sending the current values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub position: Position,
    pub upper_ms: i64,
}

impl ObjectCursor {
    /// The cursor of a type never polled: everything from `origin_ms` on is to be read, and the
    /// first listing of deleted records is due an interval from now.
    pub fn start(origin_ms: i64, now_ms: i64) -> Self {
        ObjectCursor {
            live: Position::at(origin_ms),
            origin_ms,
            pruned_below_ms: origin_ms,
            pruned_at_ms: now_ms,
            refresh: None,
            refresh_started_ms: None,
            archived_ms: origin_ms.saturating_sub(1),
            archived_polled_ms: now_ms,
        }
    }

    /// Versions after this are sent for a record without a mark: those at or after the origin
    /// (and after what pruning forgot).
    pub fn default_mark(&self) -> i64 {
        self.origin_ms.max(self.pruned_below_ms).saturating_sub(1)
    }
}

/// Where the reading of one followed list stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ListCursor {
    /// When the members were last read in full.
    pub read_ms: Option<i64>,
}

/// The poller's sled trees.
#[derive(Debug, Clone)]
pub struct PollStore {
    db: sled::Db,
    cursors: sled::Tree,
    marks: sled::Tree,
    lists: sled::Tree,
}

fn object_key(team: &str, portal: u64, object: ObjectType) -> String {
    format!("{team}:{portal}:{}", object.path_name())
}

fn list_key(team: &str, portal: u64, list_id: &str) -> String {
    format!("{team}:{portal}:list:{list_id}")
}

fn be_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl PollStore {
    /// Opens (or creates) the database in `dir`, for a poller that has the directory to itself.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir).map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source,
        })?;
        Self::new(&db)
    }

    /// The poller's trees in a database the inbound stage already opened.
    pub fn new(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(PollStore {
            db: db.clone(),
            cursors: db.open_tree("poll_cursors")?,
            marks: db.open_tree("poll_marks")?,
            lists: db.open_tree("poll_lists")?,
        })
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.cursors.get(key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        key: key.to_owned(),
                        source,
                    })
            }
        }
    }

    fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Corrupt {
            key: key.to_owned(),
            source,
        })?;
        self.cursors.insert(key.as_bytes(), bytes)?;
        Ok(())
    }

    pub fn cursor(
        &self,
        team: &str,
        portal: u64,
        object: ObjectType,
    ) -> Result<Option<ObjectCursor>, StoreError> {
        self.get_json(&object_key(team, portal, object))
    }

    pub fn put_cursor(
        &self,
        team: &str,
        portal: u64,
        object: ObjectType,
        cursor: &ObjectCursor,
    ) -> Result<(), StoreError> {
        self.put_json(&object_key(team, portal, object), cursor)
    }

    pub fn list_cursor(
        &self,
        team: &str,
        portal: u64,
        list_id: &str,
    ) -> Result<ListCursor, StoreError> {
        Ok(self
            .get_json(&list_key(team, portal, list_id))?
            .unwrap_or_default())
    }

    pub fn put_list_cursor(
        &self,
        team: &str,
        portal: u64,
        list_id: &str,
        cursor: &ListCursor,
    ) -> Result<(), StoreError> {
        self.put_json(&list_key(team, portal, list_id), cursor)
    }

    fn mark_prefix(team: &str, portal: u64, object: ObjectType) -> Vec<u8> {
        let mut prefix = object_key(team, portal, object).into_bytes();
        prefix.push(b':');
        prefix
    }

    /// The marks of `ids` that have one.
    pub fn marks(
        &self,
        team: &str,
        portal: u64,
        object: ObjectType,
        ids: &[u64],
    ) -> Result<BTreeMap<u64, i64>, StoreError> {
        let prefix = Self::mark_prefix(team, portal, object);
        let mut marks = BTreeMap::new();
        for id in ids {
            let mut key = prefix.clone();
            key.extend_from_slice(&id.to_be_bytes());
            if let Some(mark) = self.marks.get(key)?.and_then(|v| be_i64(&v)) {
                marks.insert(*id, mark);
            }
        }
        Ok(marks)
    }

    /// Raises the marks of `marks`' records to the given times (a mark never goes back).
    pub fn raise_marks(
        &self,
        team: &str,
        portal: u64,
        object: ObjectType,
        marks: &BTreeMap<u64, i64>,
    ) -> Result<(), StoreError> {
        let prefix = Self::mark_prefix(team, portal, object);
        let known = self.marks(
            team,
            portal,
            object,
            &marks.keys().copied().collect::<Vec<_>>(),
        )?;
        let mut batch = sled::Batch::default();
        for (id, mark) in marks {
            if known.get(id).is_some_and(|old| old >= mark) {
                continue;
            }
            let mut key = prefix.clone();
            key.extend_from_slice(&id.to_be_bytes());
            batch.insert(key, &mark.to_be_bytes());
        }
        self.marks.apply_batch(batch)?;
        Ok(())
    }

    /// Forgets the marks below `below_ms`; returns how many.
    pub fn prune_marks(
        &self,
        team: &str,
        portal: u64,
        object: ObjectType,
        below_ms: i64,
    ) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut pruned = 0;
        for entry in self
            .marks
            .scan_prefix(Self::mark_prefix(team, portal, object))
        {
            let (key, value) = entry?;
            if be_i64(&value).is_none_or(|mark| mark < below_ms) {
                batch.remove(key);
                pruned += 1;
            }
        }
        self.marks.apply_batch(batch)?;
        Ok(pruned)
    }

    fn member_prefix(team: &str, portal: u64, list_id: &str) -> Vec<u8> {
        let mut prefix = list_key(team, portal, list_id).into_bytes();
        prefix.push(b':');
        prefix
    }

    /// The members of a list as last seen: record id -> when it joined.
    pub fn members(
        &self,
        team: &str,
        portal: u64,
        list_id: &str,
    ) -> Result<BTreeMap<u64, i64>, StoreError> {
        let prefix = Self::member_prefix(team, portal, list_id);
        let mut members = BTreeMap::new();
        for entry in self.lists.scan_prefix(&prefix) {
            let (key, value) = entry?;
            if let (Some(id), Some(joined)) = (be_u64(&key[prefix.len()..]), be_i64(&value)) {
                members.insert(id, joined);
            }
        }
        Ok(members)
    }

    /// Records `joined` as members (id -> when it joined) and forgets `left`.
    pub fn update_members(
        &self,
        team: &str,
        portal: u64,
        list_id: &str,
        joined: &[(u64, i64)],
        left: &HashSet<u64>,
    ) -> Result<(), StoreError> {
        let prefix = Self::member_prefix(team, portal, list_id);
        let key = |id: u64| {
            let mut key = prefix.clone();
            key.extend_from_slice(&id.to_be_bytes());
            key
        };
        let mut batch = sled::Batch::default();
        for (id, at) in joined {
            batch.insert(key(*id), &at.to_be_bytes());
        }
        for id in left {
            batch.remove(key(*id));
        }
        self.lists.apply_batch(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, PollStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = PollStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn cursors_survive_a_reopen_and_are_kept_per_team_portal_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut cursor = ObjectCursor::start(1_000, 2_000);
        cursor.live = Position {
            from_ms: 1_500,
            drain_after: Some(42),
        };
        {
            let store = PollStore::open(dir.path()).unwrap();
            assert_eq!(store.cursor("acme", 1, ObjectType::Contacts).unwrap(), None);
            store
                .put_cursor("acme", 1, ObjectType::Contacts, &cursor)
                .unwrap();
            store
                .put_list_cursor("acme", 1, "42", &ListCursor { read_ms: Some(9) })
                .unwrap();
        }
        let store = PollStore::open(dir.path()).unwrap();
        assert_eq!(
            store.cursor("acme", 1, ObjectType::Contacts).unwrap(),
            Some(cursor)
        );
        assert_eq!(store.cursor("acme", 1, ObjectType::Deals).unwrap(), None);
        assert_eq!(store.cursor("acme", 2, ObjectType::Contacts).unwrap(), None);
        assert_eq!(
            store.cursor("globex", 1, ObjectType::Contacts).unwrap(),
            None
        );
        assert_eq!(store.list_cursor("acme", 1, "42").unwrap().read_ms, Some(9));
        assert_eq!(store.list_cursor("acme", 1, "43").unwrap().read_ms, None);
    }

    #[test]
    fn a_corrupt_cursor_is_named() {
        let (_dir, store) = store();
        store.cursors.insert("acme:1:contacts", "{").unwrap();
        let error = store
            .cursor("acme", 1, ObjectType::Contacts)
            .unwrap_err()
            .to_string();
        assert!(error.contains("acme:1:contacts"), "{error}");
    }

    #[test]
    fn marks_only_rise_and_are_pruned_below_a_time() {
        let (_dir, store) = store();
        let c = ObjectType::Contacts;
        store
            .raise_marks("acme", 1, c, &BTreeMap::from([(5, 100), (6, 200)]))
            .unwrap();
        store
            .raise_marks("acme", 1, c, &BTreeMap::from([(5, 50), (6, 300)]))
            .unwrap();
        store
            .raise_marks("acme", 1, ObjectType::Deals, &BTreeMap::from([(5, 1)]))
            .unwrap();
        assert_eq!(
            store.marks("acme", 1, c, &[5, 6, 7]).unwrap(),
            BTreeMap::from([(5, 100), (6, 300)])
        );
        assert_eq!(store.prune_marks("acme", 1, c, 200).unwrap(), 1);
        assert_eq!(
            store.marks("acme", 1, c, &[5, 6]).unwrap(),
            BTreeMap::from([(6, 300)])
        );
        assert_eq!(
            store.marks("acme", 1, ObjectType::Deals, &[5]).unwrap(),
            BTreeMap::from([(5, 1)])
        );
    }

    #[test]
    fn list_members_are_kept_per_list() {
        let (_dir, store) = store();
        store
            .update_members("acme", 1, "42", &[(5, 10), (6, 11)], &HashSet::new())
            .unwrap();
        store
            .update_members("acme", 1, "43", &[(5, 12)], &HashSet::new())
            .unwrap();
        store
            .update_members("acme", 1, "42", &[(7, 13)], &HashSet::from([5]))
            .unwrap();
        assert_eq!(
            store.members("acme", 1, "42").unwrap(),
            BTreeMap::from([(6, 11), (7, 13)])
        );
        assert_eq!(
            store.members("acme", 1, "43").unwrap(),
            BTreeMap::from([(5, 12)])
        );
        assert!(store.members("acme", 1, "4").unwrap().is_empty());
    }
}
