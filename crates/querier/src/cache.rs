//! A small size-bounded LRU cache for immutable per-block data.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

struct Entry<V> {
    value: Arc<V>,
    bytes: usize,
    used: u64,
}

/// Least-recently-used cache bounded by the approximate bytes of its values.
pub(crate) struct Cache<K, V> {
    inner: Mutex<State<K, V>>,
    capacity: usize,
}

struct State<K, V> {
    map: HashMap<K, Entry<V>>,
    bytes: usize,
    clock: u64,
}

impl<K: Hash + Eq + Clone, V> Cache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Cache {
            inner: Mutex::new(State {
                map: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
            capacity,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.clock += 1;
        let clock = s.clock;
        s.map.get_mut(key).map(|e| {
            e.used = clock;
            Arc::clone(&e.value)
        })
    }

    pub(crate) fn insert(&self, key: K, value: Arc<V>, bytes: usize) {
        if bytes > self.capacity {
            return;
        }
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.clock += 1;
        let used = s.clock;
        if let Some(old) = s.map.insert(key, Entry { value, bytes, used }) {
            s.bytes -= old.bytes;
        }
        s.bytes += bytes;
        while s.bytes > self.capacity {
            let Some(victim) = s
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = s.map.remove(&victim) {
                s.bytes -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let c: Cache<u32, u32> = Cache::new(10);
        c.insert(1, Arc::new(1), 4);
        c.insert(2, Arc::new(2), 4);
        assert!(c.get(&1).is_some());
        c.insert(3, Arc::new(3), 4);
        assert!(c.get(&2).is_none(), "2 was least recently used");
        assert!(c.get(&1).is_some());
        assert!(c.get(&3).is_some());
        c.insert(4, Arc::new(4), 100);
        assert!(c.get(&4).is_none(), "too large to cache");
    }
}
