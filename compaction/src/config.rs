//! Compaction settings: per topic ([`CompactionConfig`], in the topic's config) and per engine
//! ([`CompactorConfig`]: the background task and its memory).

use serde::{Deserialize, Serialize};

/// A topic's compaction, merging and snapshot settings. Key compaction applies only to topics
/// whose cleanup policy includes `compact`; merging and snapshots apply to every topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// How long a tombstone (a record with a null value) is kept after it is the latest record of
    /// its key, so consumers that read the log see the delete. Default 24 h (Kafka's
    /// `delete.retention.ms`).
    pub delete_retention_ms: u64,
    /// Records younger than this are never compacted (a segment is compacted only once its newest
    /// record is this old). Default 0.
    pub min_compaction_lag_ms: u64,
    /// Key compaction runs once the dirty (not yet compacted) part of the eligible log is at least
    /// this share of it. Default 0.5; bounds 0..=1.
    pub min_dirty_ratio: f64,
    /// Adjacent remote segments are merged into objects of up to this many bytes (fewer objects and
    /// GETs per replay). A segment of at least half of it is never merged. 0 turns merging off.
    /// Default 128 MiB.
    pub merge_target_bytes: u64,
    /// A run of small adjacent segments is merged once it reaches half the target in bytes, or
    /// this many segments: so a slow partition's small segments are merged in batches rather than
    /// one more each time (each byte is rewritten about log_16 of the segments it joins times, not
    /// once per new segment). Default 16; at least 2.
    pub merge_min_segments: u32,
    /// Write a state snapshot of each partition to the bucket this often, when the archived log has
    /// grown since the last one. `None` (JSON `null`), or 0 in any format (TOML has no null; the
    /// CLI's `--snapshot-interval-ms 0`), turns scheduled snapshots off. Default 1 h; otherwise at
    /// least 1000.
    #[serde(deserialize_with = "zero_is_off")]
    pub snapshot_interval_ms: Option<u64>,
}

/// `0` reads as `None` (off), so TOML, JSON and the CLI say "off" the same way.
fn zero_is_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.filter(|&ms| ms > 0))
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_dirty_ratio: 0.5,
            merge_target_bytes: 128 << 20,
            merge_min_segments: 16,
            snapshot_interval_ms: Some(3_600_000),
        }
    }
}

impl CompactionConfig {
    /// Checks the bounds; returns the field that is wrong and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.min_dirty_ratio) {
            return Err(("min_dirty_ratio", format!("{} is outside 0..=1", self.min_dirty_ratio)));
        }
        if self.merge_target_bytes != 0 && self.merge_target_bytes < 1 << 16 {
            return Err((
                "merge_target_bytes",
                format!("{} is under 64 KiB (0 turns merging off)", self.merge_target_bytes),
            ));
        }
        if self.merge_target_bytes > 4 << 30 {
            return Err(("merge_target_bytes", format!("{} is over 4 GiB", self.merge_target_bytes)));
        }
        if self.merge_min_segments < 2 {
            return Err(("merge_min_segments", format!("{} is under 2", self.merge_min_segments)));
        }
        if self.snapshot_interval_ms.is_some_and(|ms| ms < 1_000) {
            return Err(("snapshot_interval_ms", "is under a second (0 turns snapshots off)".into()));
        }
        Ok(())
    }
}

/// The engine's background compactor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Run the background task. Default true. `tierlog compact` works either way.
    pub enabled: bool,
    /// How often the task looks at every partition. Default 60 s.
    pub interval_ms: u64,
    /// Memory of the key -> offset map of one compaction pass: its table never exceeds this
    /// (about [`crate::keymap::ENTRY_BYTES`] bytes per distinct key; 128 MiB holds 1.8M keys). A
    /// dirty section with more keys is compacted in several passes. Default 128 MiB (Kafka's
    /// cleaner dedupe buffer is the same size).
    pub map_bytes: u64,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self { enabled: true, interval_ms: 60_000, map_bytes: 128 << 20 }
    }
}

impl CompactorConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.interval_ms < 100 {
            return Err(("interval_ms", format!("{} is under 100 ms", self.interval_ms)));
        }
        if self.map_bytes < 1 << 16 {
            return Err(("map_bytes", format!("{} is under 64 KiB", self.map_bytes)));
        }
        Ok(())
    }
}
