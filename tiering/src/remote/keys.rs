//! Where a partition's objects live in the bucket (DESIGN.md §2):
//!
//! ```text
//! <hh>/<topic>/<partition>/segments/<base:020>-<epoch>-<id>.log             the segment, as is
//! <hh>/<topic>/<partition>/segments/<base:020>-<epoch>-<id>.index.parquet   one row per batch
//! <hh>/<topic>/<partition>/manifest/head.json                                the manifest head (CAS)
//! <hh>/<topic>/<partition>/manifest/chunks/<base:020>-<epoch>-<id>.parquet   older entries, immutable
//! catalog/topics/<topic>.json                                                 topic configuration
//! catalog/producer-ids.json                                                   next producer-id block (CAS)
//! ```
//!
//! `<hh>` is two hex digits of a hash of `<topic>/<partition>`: stores that partition their key
//! space by prefix spread the partitions' request load. Epoch and a random id in every data key
//! mean two writers never write the same key.

use object_store::path::Path;

/// The keys of one partition.
#[derive(Debug, Clone)]
pub struct PartitionKeys {
    root: String,
}

impl PartitionKeys {
    /// `topic` must be a valid topic name (it is a key component).
    pub fn new(topic: &str, partition: u32) -> Self {
        let hash = crc32c::crc32c(format!("{topic}/{partition}").as_bytes()) & 0xff;
        Self { root: format!("{hash:02x}/{topic}/{partition}") }
    }
    pub fn root(&self) -> Path {
        Path::from(self.root.as_str())
    }
    pub fn head(&self) -> Path {
        Path::from(format!("{}/manifest/head.json", self.root))
    }
    pub fn chunk(&self, base: i64, epoch: u64, id: &str) -> Path {
        Path::from(format!("{}/manifest/chunks/{base:020}-{epoch}-{id}.parquet", self.root))
    }
    pub fn segments_dir(&self) -> Path {
        Path::from(format!("{}/segments", self.root))
    }
    pub fn segment(&self, base: i64, epoch: u64, id: &str) -> Path {
        Path::from(format!("{}/segments/{base:020}-{epoch}-{id}.log", self.root))
    }
    /// A state snapshot covering offsets `<= offset`.
    pub fn snapshot(&self, offset: i64, epoch: u64, id: &str) -> Path {
        Path::from(format!("{}/snapshots/{offset:020}-{epoch}-{id}.parquet", self.root))
    }
    pub fn snapshots_dir(&self) -> Path {
        Path::from(format!("{}/snapshots", self.root))
    }
    pub fn index(&self, base: i64, epoch: u64, id: &str) -> Path {
        Path::from(format!("{}/segments/{base:020}-{epoch}-{id}.index.parquet", self.root))
    }
}

/// `catalog/topics/<topic>.json`.
pub fn catalog_topic(topic: &str) -> Path {
    Path::from(format!("catalog/topics/{topic}.json"))
}

/// `catalog/topics/`.
pub fn catalog_dir() -> Path {
    Path::from("catalog/topics")
}

/// `catalog/producer-ids.json`: the next block of idempotent producer ids to hand out.
pub fn producer_ids() -> Path {
    Path::from("catalog/producer-ids.json")
}

/// A fresh 16-hex-digit id for object keys.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Parses `<base:020>-<epoch>-<id>` off the start of a segment object's file name.
pub fn parse_object_name(name: &str) -> Option<(i64, u64, &str)> {
    let stem = name.split('.').next()?;
    let mut parts = stem.splitn(3, '-');
    let base = parts.next()?.parse().ok()?;
    let epoch = parts.next()?.parse().ok()?;
    let id = parts.next()?;
    Some((base, epoch, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_offset_epoch_and_id() {
        let k = PartitionKeys::new("orders", 3);
        let seg = k.segment(42, 7, "00000000deadbeef");
        assert!(seg.as_ref().ends_with("/orders/3/segments/00000000000000000042-7-00000000deadbeef.log"), "{seg}");
        let name = seg.filename().unwrap();
        assert_eq!(parse_object_name(name), Some((42, 7, "00000000deadbeef")));
        let idx = k.index(42, 7, "00000000deadbeef");
        assert_eq!(parse_object_name(idx.filename().unwrap()), Some((42, 7, "00000000deadbeef")));
        assert_eq!(parse_object_name("junk"), None);
    }
}
