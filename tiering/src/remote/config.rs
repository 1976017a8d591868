//! Settings of the remote tier: uploads, deferred deletion, the manifest and the read cache.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Uploads, deletion and the manifest. Engine-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TieringConfig {
    /// Upload sealed segments in the background (default). Off: segments are uploaded only when
    /// asked (`Engine::tier_now`), e.g. to measure the hot path alone.
    pub auto_upload: bool,
    /// Object-store requests the uploader keeps in flight at most (segment PUTs and parts). Each
    /// holds up to `part_bytes` (or a whole single-PUT segment) in memory. Default 4.
    pub upload_concurrency: usize,
    /// Segments up to this size go in one PUT; larger ones as multipart uploads. Default 256 MiB.
    pub single_put_max_bytes: u64,
    /// Part size of multipart uploads. Default 256 MiB (a 1 GiB segment is create + 4 parts +
    /// complete); at least 5 MiB, as S3 requires.
    pub part_bytes: u64,
    /// Attempts per object-store operation of the uploader, on top of the client's own retries of
    /// transient HTTP errors. Backoff doubles from `retry_base_ms` up to `retry_max_ms`, with full
    /// jitter. Default 8, 100 ms, 10 s; `1 <= retry_base_ms <= retry_max_ms <= 600000` (a zero
    /// or inverted backoff would retry a struggling store in a tight loop).
    pub upload_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How often the uploader looks for sealed segments (it is also woken on every roll). Default 1 s.
    pub poll_ms: u64,
    /// Objects dropped from a manifest are deleted this long after (readers that found them just
    /// before the drop can finish). Default 1 hour; at least 60000 (a reader holding the old
    /// entries gets at least a minute, twice the default request timeout).
    pub delete_grace_ms: u64,
    /// The orphan sweep deletes unreferenced objects older than this. Objects this engine is
    /// writing for a commit still to come are spared whatever their age; the age covers what it
    /// cannot know of (the skew between its clock and the store's, which stamps the objects).
    /// Default 1 hour; at least 600000 (10 minutes).
    pub orphan_min_age_ms: u64,
    /// How often the orphan sweep runs (it LISTs the partition's prefix). Default 6 hours; at
    /// least 60000 (a LIST per partition per minute at most).
    pub orphan_sweep_interval_ms: u64,
    /// Manifest entries per level-0 chunk: the head keeps fewer than twice this many; 16 level-0
    /// chunks merge into one. Default 256.
    pub manifest_chunk_segments: usize,
    pub cache: CacheConfig,
}

impl Default for TieringConfig {
    fn default() -> Self {
        Self {
            auto_upload: true,
            upload_concurrency: 4,
            single_put_max_bytes: 256 << 20,
            part_bytes: 256 << 20,
            upload_attempts: 8,
            retry_base_ms: 100,
            retry_max_ms: 10_000,
            poll_ms: 1000,
            delete_grace_ms: 3_600_000,
            orphan_min_age_ms: 3_600_000,
            orphan_sweep_interval_ms: 6 * 3_600_000,
            manifest_chunk_segments: 256,
            cache: CacheConfig::default(),
        }
    }
}

/// The foyer hybrid cache in front of the bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory tier capacity. Default 256 MiB.
    pub memory_bytes: u64,
    /// Disk tier capacity (0 disables the disk tier). Default (absent): a tenth of the space
    /// free on the cache directory's disk when the engine opens, at most 1 GiB, and no disk tier
    /// when that is under 64 MiB. One-shot readers (the CLI's read commands) use none.
    pub disk_bytes: Option<u64>,
    /// Disk tier directory. Default `<data_dir>/cache`.
    pub dir: Option<PathBuf>,
    /// GETs fetch aligned chunks of this size (the cache's unit). Default 1 MiB.
    pub chunk_bytes: u64,
    /// Sequential readers keep this much in flight ahead of them, across segment boundaries, in
    /// aligned 16 MiB windows (or one window of this size when smaller), each fetched with one
    /// GET. Default 48 MiB: three 16 MiB GETs in flight per stream.
    pub read_ahead_bytes: u64,
}

/// The most the default disk tier takes.
pub const AUTO_DISK_MAX_BYTES: u64 = 1 << 30;
/// Below this, the default gives no disk tier.
pub const AUTO_DISK_MIN_BYTES: u64 = 64 << 20;

impl CacheConfig {
    /// The disk tier's capacity on a disk with `free_bytes` free: the configured one, or the
    /// default rule (a tenth of the free space, at most 1 GiB, none under 64 MiB).
    pub fn disk_capacity(&self, free_bytes: u64) -> u64 {
        self.disk_bytes.unwrap_or_else(|| {
            let auto = (free_bytes / 10).min(AUTO_DISK_MAX_BYTES);
            if auto < AUTO_DISK_MIN_BYTES { 0 } else { auto & !((4 << 20) - 1) }
        })
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { memory_bytes: 256 << 20, disk_bytes: None, dir: None, chunk_bytes: 1 << 20, read_ahead_bytes: 48 << 20 }
    }
}

impl TieringConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| Err(Error::InvalidConfig { field, reason: reason.into() });
        if self.upload_concurrency == 0 {
            return bad("tiering.upload_concurrency", "must be at least 1");
        }
        if self.part_bytes < 5 << 20 || self.part_bytes > 5 << 30 {
            return bad("tiering.part_bytes", "must be within 5 MiB..=5 GiB");
        }
        if self.single_put_max_bytes == 0 || self.single_put_max_bytes > 5 << 30 {
            return bad("tiering.single_put_max_bytes", "must be within 1..=5 GiB");
        }
        if self.upload_attempts == 0 {
            return bad("tiering.upload_attempts", "must be at least 1");
        }
        if self.retry_base_ms == 0 || self.retry_base_ms > self.retry_max_ms {
            return bad("tiering.retry_base_ms", "must be at least 1 and at most retry_max_ms");
        }
        if self.retry_max_ms > 600_000 {
            return bad("tiering.retry_max_ms", "must be at most 600000");
        }
        if self.delete_grace_ms < 60_000 {
            return bad(
                "tiering.delete_grace_ms",
                "must be at least 60000 (readers of dropped objects need time to finish)",
            );
        }
        if self.orphan_min_age_ms < 600_000 {
            return bad("tiering.orphan_min_age_ms", "must be at least 600000 (it covers clock skew with the store)");
        }
        if self.orphan_sweep_interval_ms < 60_000 {
            return bad("tiering.orphan_sweep_interval_ms", "must be at least 60000 (each sweep LISTs the partition)");
        }
        if self.poll_ms == 0 {
            return bad("tiering.poll_ms", "must be at least 1");
        }
        if self.manifest_chunk_segments < 2 {
            return bad("tiering.manifest_chunk_segments", "must be at least 2");
        }
        let c = &self.cache;
        if c.chunk_bytes < 4096 || c.chunk_bytes > 64 << 20 {
            return bad("tiering.cache.chunk_bytes", "must be within 4 KiB..=64 MiB");
        }
        if c.read_ahead_bytes < 2 * c.chunk_bytes {
            return bad("tiering.cache.read_ahead_bytes", "must be at least two chunks");
        }
        if c.memory_bytes < c.chunk_bytes * 4 {
            return bad("tiering.cache.memory_bytes", "must hold at least 4 chunks");
        }
        if c.disk_bytes.is_some_and(|d| d > 0 && d < 16 << 20) {
            return bad("tiering.cache.disk_bytes", "must be 0 (no disk tier) or at least 16 MiB");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_disk_tier_is_sized_from_free_space() {
        let auto = CacheConfig::default();
        assert_eq!(auto.disk_capacity(100 << 30), 1 << 30, "at most 1 GiB");
        assert_eq!(auto.disk_capacity(4 << 30), ((4u64 << 30) / 10) & !((4 << 20) - 1), "a tenth, in 4 MiB blocks");
        assert_eq!(auto.disk_capacity(600 << 20), 0, "no disk tier under 64 MiB");
        let set = CacheConfig { disk_bytes: Some(32 << 20), ..Default::default() };
        assert_eq!(set.disk_capacity(0), 32 << 20, "a configured size is kept");
    }

    #[test]
    fn unsafe_retry_sweep_and_grace_settings_are_refused() {
        let with = |f: fn(&mut TieringConfig)| {
            let mut c = TieringConfig::default();
            f(&mut c);
            match c.validate() {
                Err(Error::InvalidConfig { field, .. }) => field,
                other => panic!("accepted: {other:?}"),
            }
        };
        assert_eq!(with(|c| c.retry_base_ms = 20_000), "tiering.retry_base_ms");
        assert_eq!(with(|c| c.retry_base_ms = 0), "tiering.retry_base_ms");
        assert_eq!(with(|c| c.retry_max_ms = 0), "tiering.retry_base_ms");
        assert_eq!(with(|c| c.retry_max_ms = 3_600_000), "tiering.retry_max_ms");
        assert_eq!(with(|c| c.orphan_sweep_interval_ms = 0), "tiering.orphan_sweep_interval_ms");
        assert_eq!(with(|c| c.delete_grace_ms = 0), "tiering.delete_grace_ms");
        assert_eq!(with(|c| c.orphan_min_age_ms = 0), "tiering.orphan_min_age_ms");
        let mut c = TieringConfig { retry_base_ms: 1, retry_max_ms: 1, ..Default::default() };
        c.delete_grace_ms = 60_000;
        c.orphan_min_age_ms = 600_000;
        c.orphan_sweep_interval_ms = 60_000;
        c.validate().unwrap();
    }
}
