//! Making the archive smaller and faster to replay (DESIGN.md §3, "Compaction"). Depends on
//! `tiering` only; `tierlog` schedules the work.
//!
//! - [`snapshot`]: state snapshots, the latest value of every key of a partition as of an offset,
//!   as a Parquet file (key, value, offset, timestamp, partition) that `state_at` starts from.

pub mod snapshot;
