//! The key -> offset map of a compaction pass: for each key of the dirty section, the offset of
//! its latest record there. Keys are stored as 128-bit hashes (two SipHash-1-3 halves), so a map
//! entry costs a fixed [`ENTRY_BYTES`] whatever the key's size; two keys sharing a 128-bit hash
//! are as likely as a random collision among 2^128 values.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Bytes one entry costs, with the hash table's own overhead (16-byte hash, 8-byte offset, control
/// byte and spare capacity at the table's load factor).
pub const ENTRY_BYTES: u64 = 32;

/// A bounded map from key hash to the latest offset of that key.
#[derive(Debug)]
pub struct KeyMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

/// The 128-bit hash of a key.
pub fn key_hash(key: &[u8]) -> u128 {
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    ((half(0) as u128) << 64) | half(1) as u128
}

impl KeyMap {
    /// A map that holds at most `bytes / ENTRY_BYTES` keys.
    pub fn with_memory(bytes: u64) -> Self {
        let capacity = (bytes / ENTRY_BYTES).max(1) as usize;
        Self { map: HashMap::new(), capacity }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Whether `more` new keys surely fit.
    pub fn has_room(&self, more: usize) -> bool {
        self.map.len() + more <= self.capacity
    }

    /// Records `offset` as the latest of `key` (offsets arrive in increasing order).
    pub fn insert(&mut self, key: &[u8], offset: i64) {
        self.map.insert(key_hash(key), offset);
    }

    /// The latest offset of `key`, if the map holds it.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_hash(key)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_wins_and_capacity_follows_memory() {
        let mut m = KeyMap::with_memory(ENTRY_BYTES * 3);
        assert_eq!(m.capacity(), 3);
        m.insert(b"a", 1);
        m.insert(b"b", 2);
        m.insert(b"a", 5);
        assert_eq!(m.latest(b"a"), Some(5));
        assert_eq!(m.latest(b"b"), Some(2));
        assert_eq!(m.latest(b"c"), None);
        assert!(m.has_room(1));
        assert!(!m.has_room(2));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
    }
}
