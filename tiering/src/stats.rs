//! Metric names of the tiering crate, with units in the name. Recorded through the `metrics`
//! facade; the binary decides whether and how to export them.

/// Batches appended (counter).
pub const APPEND_BATCHES: &str = "tierlog_append_batches_total";
/// Bytes appended (counter).
pub const APPEND_BYTES: &str = "tierlog_append_bytes_total";
/// Records appended (counter).
pub const APPEND_RECORDS: &str = "tierlog_append_records_total";
/// Time an append waited in the writer's queue before its group started (histogram).
pub const GROUP_QUEUE_SECONDS: &str = "tierlog_group_commit_queue_seconds";
/// Time the writer spent writing one group (histogram).
pub const GROUP_WRITE_SECONDS: &str = "tierlog_group_commit_write_seconds";
/// Time the writer spent in fsync for one group, all partitions (histogram).
pub const GROUP_SYNC_SECONDS: &str = "tierlog_group_commit_sync_seconds";
/// Bytes in one group (histogram).
pub const GROUP_BYTES: &str = "tierlog_group_commit_bytes";
/// Partitions fsynced in one group (histogram).
pub const GROUP_PARTITIONS: &str = "tierlog_group_commit_partitions";
/// Time from an append call to its acknowledgement (histogram).
pub const APPEND_SECONDS: &str = "tierlog_append_seconds";
/// Time of one read (histogram), label `tier` = `local` | `remote`.
pub const READ_SECONDS: &str = "tierlog_read_seconds";
/// Time to upload one segment and its index, before the manifest commit (histogram).
pub const UPLOAD_SEGMENT_SECONDS: &str = "tierlog_upload_segment_seconds";
/// Bytes read from local segments (counter).
pub const READ_BYTES: &str = "tierlog_read_bytes_total";
/// Segments sealed (counter), label `reason` = size | age | forced.
pub const SEGMENTS_ROLLED: &str = "tierlog_segments_rolled_total";
/// Local segments deleted by retention (counter).
pub const RETENTION_DELETED_SEGMENTS: &str = "tierlog_local_retention_deleted_segments_total";
/// Deleted segment logs whose blocks were freed at once, not in steps, because the reclaim
/// queue was full (`local::reclaim`).
pub const RECLAIM_SKIPPED_FILES: &str = "tierlog_reclaim_skipped_files_total";
/// Bytes cut from segment tails during recovery (counter).
pub const RECOVERY_TRUNCATED_BYTES: &str = "tierlog_recovery_truncated_bytes_total";
/// Object-store requests (counter), label `op` = put | multipart_part | multipart_control | get |
/// ranged_get | head | list | delete | copy.
pub const OBJECT_STORE_REQUESTS: &str = "tierlog_object_store_requests_total";
/// Object-store bytes (counter), label `direction` = out (written) | in (read).
pub const OBJECT_STORE_BYTES: &str = "tierlog_object_store_bytes_total";
/// Segments uploaded and committed to a manifest; label `kind` = `put` | `multipart`.
pub const UPLOADED_SEGMENTS: &str = "tierlog_uploaded_segments_total";
/// Bytes of segments uploaded and committed.
pub const UPLOADED_BYTES: &str = "tierlog_uploaded_bytes_total";
/// Object-store operations retried by the uploader; label `op`.
pub const UPLOAD_RETRIES: &str = "tierlog_upload_retries_total";
/// Times a writer found another writer owned its partition.
pub const FENCED: &str = "tierlog_fenced_total";
/// Partitions an engine refused to write at open (another writer took them over, or the local
/// log cannot continue the bucket's); label `topic`. A gauge.
pub const REFUSED_PARTITIONS: &str = "tierlog_refused_partitions";
/// Conditional GETs of a manifest head that renewed a writer's lease on the append path.
pub const LEASE_CHECKS: &str = "tierlog_lease_checks_total";
/// Objects deleted after their grace period, or as orphans; label `reason` = `retention` | `orphan`.
pub const REMOTE_DELETED_OBJECTS: &str = "tierlog_remote_deleted_objects_total";
/// Remote read cache lookups; label `result` = `hit` | `miss` | `shared` (waited on another miss).
pub const CACHE_LOOKUPS: &str = "tierlog_remote_cache_lookups_total";
/// Attempts to reopen a failed partition from its files; label `outcome` = `reopened` | `failed`.
pub const PARTITION_REOPENS: &str = "tierlog_partition_reopens_total";
/// Batches that failed their CRC check on a read; label `tier` = `local` | `remote`.
pub const CORRUPT_BATCHES: &str = "tierlog_corrupt_batches_total";
/// Runs of a background task that failed; label `task` (`uploader`, `compactor`, `replica-poll`,
/// `writer-ticker`).
pub const TASK_FAILURES: &str = "tierlog_task_failures_total";
/// Partitions that opened damaged (acknowledged records missing or corrupt below the recovery
/// checkpoint); they refuse appends until `tierlog repair`.
pub const DAMAGED_PARTITIONS: &str = "tierlog_damaged_partitions_total";
/// Batches of idempotent producers answered as duplicates (original offsets, nothing written).
pub const DUPLICATE_BATCHES: &str = "tierlog_duplicate_batches_total";
/// Segment file handles closed because their partition sat idle (`IDLE_CLOSE_MS`): append handles
/// after a period without writes, read handles after one without reads.
pub const IDLE_HANDLES_CLOSED: &str = "tierlog_idle_handles_closed_total";
/// Bytes sequential readers of the bucket fetched themselves because read-ahead had not started
/// them (a stream's first reads, or its share of the read-ahead budget was full): near zero
/// while read-ahead keeps up.
pub const READ_AHEAD_MISSED_BYTES: &str = "tierlog_read_ahead_missed_bytes_total";
