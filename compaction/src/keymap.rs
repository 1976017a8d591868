//! The key -> offset map of a compaction pass: for each key of the dirty section, the offset of
//! its latest record there. Keys are stored as 128-bit hashes (XXH3-128), so an entry costs the
//! same whatever the key's size; two keys sharing a 128-bit hash are as likely as a random
//! collision among 2^128 values (about 10^-20 for a billion keys). The table hashes those hashes
//! no further: it takes their low 64 bits as they are.
//!
//! **Memory.** The table starts small and grows (doubling) with the keys it holds, so a pass over
//! few keys touches a table that fits the CPU caches. Its largest size is the biggest power of two
//! of [`SLOT_BYTES`]-byte slots that, together with the half-size table it is grown from, fits the
//! budget; it holds up to 7/8 of its slots (the table's load factor). The default 128 MiB budget
//! holds 1.8M keys per pass (52 MB of table, 78 MB while it last grows).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Bytes of one table slot: a 16-byte key hash, an 8-byte offset, one control byte.
pub const SLOT_BYTES: u64 = 25;

/// The bytes of budget per key to plan with (a slot at 7/8 load, plus the growth from half size,
/// rounded up).
pub const ENTRY_BYTES: u64 = 43;

/// A 128-bit key hash as two words (8-byte aligned, so a slot is 24 bytes plus its control byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyHash(u64, u64);

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
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
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// The 128-bit hash of a key.
pub fn key_hash(key: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(key)
}

fn split(h: u128) -> KeyHash {
    KeyHash(h as u64, (h >> 64) as u64)
}

/// A bounded map from key hash to the latest offset of that key.
#[derive(Debug)]
pub struct KeyMap {
    map: HashMap<KeyHash, i64, BuildHasherDefault<Prehashed>>,
    capacity: usize,
}

impl KeyMap {
    /// A map whose table, growing, never takes more than `bytes`.
    pub fn with_memory(bytes: u64) -> Self {
        let mut slots = 16u64;
        // The largest table plus the one it grew from: 1.5x its size.
        while slots * 2 * SLOT_BYTES * 3 / 2 <= bytes {
            slots *= 2;
        }
        Self { map: HashMap::default(), capacity: (slots / 8 * 7) as usize }
    }

    /// A map of exactly `keys` keys (tests, and callers that size it themselves).
    pub fn with_key_capacity(keys: usize) -> Self {
        Self { map: HashMap::with_capacity_and_hasher(keys, Default::default()), capacity: keys }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Keys it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    /// Whether `more` new keys surely fit.
    pub fn has_room(&self, more: usize) -> bool {
        self.map.len() + more <= self.capacity
    }

    /// Records `offset` as the latest of `key` (offsets arrive in increasing order). The caller
    /// checks [`KeyMap::has_room`] first.
    pub fn insert(&mut self, key: &[u8], offset: i64) {
        self.map.insert(split(key_hash(key)), offset);
    }

    /// The latest offset of `key`, if the map holds it.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&split(key_hash(key))).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_wins_and_capacity_follows_memory() {
        // 128 MiB: 2^21 slots of 25 bytes (52 MB, 78 MB while growing), 7/8 of them usable.
        assert_eq!(KeyMap::with_memory(128 << 20).capacity(), (1 << 21) / 8 * 7);
        assert_eq!(KeyMap::with_memory(64 << 20).capacity(), (1 << 20) / 8 * 7);
        assert_eq!(std::mem::size_of::<(KeyHash, i64)>(), 24);
        let mut m = KeyMap::with_memory(SLOT_BYTES * 48);
        assert_eq!(m.capacity(), 28);
        m.insert(b"a", 1);
        m.insert(b"b", 2);
        m.insert(b"a", 5);
        assert_eq!(m.latest(b"a"), Some(5));
        assert_eq!(m.latest(b"b"), Some(2));
        assert_eq!(m.latest(b"c"), None);
        assert!(m.has_room(26));
        assert!(!m.has_room(27));
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
    }
}
