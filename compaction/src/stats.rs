//! Metric names of the compaction crate (recorded through the `metrics` facade). Label `tier` =
//! `local` | `remote`; `kind` = `compact` | `merge`.

/// Bytes of segments read by compaction and merging (counter).
pub const BYTES_IN: &str = "tierlog_compaction_bytes_in_total";
/// Bytes of segments written by compaction and merging (counter).
pub const BYTES_OUT: &str = "tierlog_compaction_bytes_out_total";
/// Records removed by key compaction (superseded, or expired tombstones) (counter).
pub const RECORDS_REMOVED: &str = "tierlog_compaction_records_removed_total";
/// Segments merged away (counter).
pub const SEGMENTS_MERGED: &str = "tierlog_compaction_segments_merged_total";
/// Duration of one compaction or merge run over a partition (histogram).
pub const SECONDS: &str = "tierlog_compaction_seconds";
/// Runs that failed (counter).
pub const FAILURES: &str = "tierlog_compaction_failures_total";
