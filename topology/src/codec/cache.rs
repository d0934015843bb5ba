//! The bounded map of writer schemas by registry id.
//!
//! A registry id names one schema forever, so entries never go stale and need no TTL; the bound
//! only keeps a process that meets many ids (a replay across years of schema versions) from
//! growing without limit. When full, the entry cached first leaves first: live traffic uses a
//! handful of ids, and an evicted one costs a single fetch.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

#[derive(Debug)]
pub struct BoundedCache<V> {
    capacity: usize,
    entries: HashMap<u32, Arc<V>>,
    /// Ids in the order they were cached, oldest first.
    order: VecDeque<u32>,
}

impl<V> BoundedCache<V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, id: u32) -> Option<&Arc<V>> {
        self.entries.get(&id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Caches `value` under `id` unless `id` is cached already, and returns the cached entry.
    pub fn insert(&mut self, id: u32, value: Arc<V>) -> Arc<V> {
        if let Some(existing) = self.entries.get(&id) {
            return Arc::clone(existing);
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.order.push_back(id);
        self.entries.insert(id, Arc::clone(&value));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_evicts_the_oldest() {
        let mut cache = BoundedCache::new(2);
        cache.insert(1, Arc::new("one"));
        cache.insert(2, Arc::new("two"));
        cache.insert(3, Arc::new("three"));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(1).is_none());
        assert_eq!(cache.get(2).map(|v| **v), Some("two"));
        assert_eq!(cache.get(3).map(|v| **v), Some("three"));
    }

    #[test]
    fn the_first_entry_for_an_id_wins() {
        let mut cache = BoundedCache::new(4);
        cache.insert(7, Arc::new("first"));
        let kept = cache.insert(7, Arc::new("second"));
        assert_eq!(*kept, "first");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn zero_capacity_still_holds_one() {
        let mut cache = BoundedCache::new(0);
        cache.insert(1, Arc::new(1));
        cache.insert(2, Arc::new(2));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(2).is_some());
    }
}
