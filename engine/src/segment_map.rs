//! The children of a path-trie node: a short list while a node has few, a hash map beyond that.
//!
//! Nearly every node of a large table has one child (`/team/svc/v1`: each `svc` node leads only
//! to its `v1`). An empty hash map allocates nothing, but its first insert allocates room for four
//! entries and their control bytes: 156 bytes on wasm32, 15,598 of them (2.4 MB of the 9.7 MB
//! table) in the Envoy benchmark's 10,000 routes, every one a fresh page to touch in a new VM
//! (`docs/benchmarks.md`, *The lean Wasm path*). A list of exactly one entry is 36 bytes. Finding
//! a segment among a few short keys costs about what hashing it does, and a node with many
//! children (a prefix per team or service) still finds them in one probe.

use crate::hash::FastMap;
use crate::index::{push_first_exactly, with_slot};

/// How many children a node keeps in a list before it moves them into a hash map.
const LIST_LIMIT: usize = 8;

#[derive(Debug)]
pub(crate) enum SegmentMap<V> {
    /// At most [`LIST_LIMIT`] entries, in insertion order, keys distinct.
    List(Vec<(Box<str>, V)>),
    Hashed(FastMap<Box<str>, V>),
}

impl<V> Default for SegmentMap<V> {
    fn default() -> Self {
        SegmentMap::List(Vec::new())
    }
}

impl<V> SegmentMap<V> {
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        match self {
            SegmentMap::List(list) => list.iter().find(|(k, _)| **k == *key).map(|(_, v)| v),
            SegmentMap::Hashed(map) => map.get(key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        match self {
            SegmentMap::List(list) => list.iter_mut().find(|(k, _)| **k == *key).map(|(_, v)| v),
            SegmentMap::Hashed(map) => map.get_mut(key),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            SegmentMap::List(list) => list.is_empty(),
            SegmentMap::Hashed(map) => map.is_empty(),
        }
    }

    #[cfg(test)]
    pub(crate) fn is_hashed(&self) -> bool {
        matches!(self, SegmentMap::Hashed(_))
    }
}

impl<V: Default> SegmentMap<V> {
    /// Calls `then` with the value under `key`, inserting a default first when the key is missing.
    /// The key is copied only when it is inserted.
    pub(crate) fn with_slot<R>(&mut self, key: &str, then: impl FnOnce(&mut V) -> R) -> R {
        match self {
            SegmentMap::List(list) => {
                if let Some((_, value)) = list.iter_mut().find(|(k, _)| **k == *key) {
                    return then(value);
                }
                if list.len() < LIST_LIMIT {
                    // Filled before it goes in, so no lookup (and no panic path) after the push.
                    let mut value = V::default();
                    let result = then(&mut value);
                    push_first_exactly(list, (key.into(), value));
                    return result;
                }
                let mut map = FastMap::with_capacity_and_hasher(LIST_LIMIT + 1, Default::default());
                map.extend(std::mem::take(list));
                let result = then(map.entry(key.into()).or_default());
                *self = SegmentMap::Hashed(map);
                result
            }
            SegmentMap::Hashed(map) => with_slot(map, key, then),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_before_and_after_the_list_becomes_a_hash_map() {
        let mut map: SegmentMap<u32> = SegmentMap::default();
        assert!(map.is_empty());
        for round in 0..2 {
            for (i, key) in ["a", "b", "ab", "", "c", "d", "e", "f", "g", "h", "i"]
                .into_iter()
                .enumerate()
            {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                map.with_slot(key, |v| *v += i + 1);
                assert_eq!(map.get(key), Some(&((i + 1) * (round + 1))), "{key:?}");
                assert_eq!(map.is_hashed(), round == 1 || i >= 8, "after {key:?}");
            }
        }
        assert_eq!(map.get("x"), None);
        assert_eq!(map.get("A"), None);
        if let Some(v) = map.get_mut("ab") {
            *v = 100;
        }
        assert_eq!(map.get("ab"), Some(&100));
        assert!(!map.is_empty());
    }

    #[test]
    fn a_first_child_gets_a_list_of_exactly_one() {
        let mut map: SegmentMap<u32> = SegmentMap::default();
        map.with_slot("only", |v| *v = 7);
        match &map {
            SegmentMap::List(list) => assert_eq!(list.capacity(), 1),
            SegmentMap::Hashed(_) => panic!("one child must stay in a list"),
        }
        // Found again, not inserted twice.
        map.with_slot("only", |v| *v += 1);
        assert_eq!(map.get("only"), Some(&8));
        assert!(matches!(&map, SegmentMap::List(list) if list.len() == 1));
    }
}
