//! What a compaction run did, and the progress it reports while it runs.

use std::time::Duration;

/// The phase a run is in, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the dirty section into the key map.
    Index,
    /// Rewriting segments without the records the map supersedes.
    Rewrite,
    /// Merging small adjacent segments.
    Merge,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Index => "index",
            Phase::Rewrite => "rewrite",
            Phase::Merge => "merge",
        }
    }
}

/// Progress of a phase: bytes done of bytes planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// Receives progress; `tierlog compact` draws a bar with it.
pub type OnProgress<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// How one compaction run over a partition's tier goes.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// The topic's settings.
    pub config: &'a crate::config::CompactionConfig,
    /// Memory of the key map of each pass.
    pub map_bytes: u64,
    /// The clock reading the whole run uses (minimum lag, tombstone expiry).
    pub now_ms: i64,
    /// Key-compaction passes it may run.
    pub max_passes: u64,
    pub progress: OnProgress<'a>,
}

/// What one run over one partition's tier did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Key-compaction passes run (more than one when the dirty section outgrew the key map).
    pub passes: u64,
    /// Bytes of segments read to rewrite or merge them, and bytes written.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bytes read to build key maps.
    pub bytes_indexed: u64,
    pub records_removed: u64,
    pub segments_rewritten: u64,
    /// Segments merged away (inputs minus outputs).
    pub segments_merged: u64,
    /// Key compaction cleaned the log below this offset (unchanged if no pass ran).
    pub cleaned_to: i64,
    pub duration: Duration,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.passes == 0 && self.segments_merged == 0
    }

    /// MB/s of segment bytes read for rewriting and merging.
    pub fn mb_per_s_in(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.duration.as_secs_f64().max(1e-9)
    }

    pub(crate) fn record(&self, tier: &'static str, kind: &'static str) {
        use crate::stats;
        metrics::counter!(stats::BYTES_IN, "tier" => tier, "kind" => kind).increment(self.bytes_in);
        metrics::counter!(stats::BYTES_OUT, "tier" => tier, "kind" => kind).increment(self.bytes_out);
        metrics::counter!(stats::RECORDS_REMOVED, "tier" => tier).increment(self.records_removed);
        metrics::counter!(stats::SEGMENTS_MERGED, "tier" => tier).increment(self.segments_merged);
        metrics::histogram!(stats::SECONDS, "tier" => tier, "kind" => kind).record(self.duration.as_secs_f64());
    }
}
