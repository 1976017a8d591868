//! The key -> offset map of a compaction pass: for each key of the dirty section, the offset of
//! its latest record there. Keys are stored as 128-bit hashes (XXH3-128), so a map entry costs a
//! fixed [`ENTRY_BYTES`] whatever the key's size; two keys sharing a 128-bit hash are as likely
//! as a random collision among 2^128 values (about 10^-20 for a billion keys). The table hashes
//! those hashes no further: it takes their low 64 bits as they are.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Bytes one entry costs, with the hash table's own overhead (16-byte hash, 8-byte offset, control
/// byte and spare capacity at the table's load factor).
pub const ENTRY_BYTES: u64 = 32;

/// A bounded map from key hash to the latest offset of that key.
#[derive(Debug)]
pub struct KeyMap {
    map: HashMap<u128, i64, BuildHasherDefault<Prehashed>>,
    capacity: usize,
}

/// The table's hasher for keys that are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

/// The 128-bit hash of a key.
pub fn key_hash(key: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(key)
}

impl KeyMap {
    /// A map that holds at most `bytes / ENTRY_BYTES` keys.
    pub fn with_memory(bytes: u64) -> Self {
        let capacity = (bytes / ENTRY_BYTES).max(1) as usize;
        Self { map: HashMap::default(), capacity }
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
