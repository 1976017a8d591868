//! Making the archive smaller and faster to replay (DESIGN.md §3, "Compaction"). Depends on
//! `tiering` only; `tierlog` schedules the work.
//!
//! - [`plan`]: the planner, a pure function of a log's segments, its compaction state and the
//!   config: which key-compaction pass to run and which small segments to merge.
//! - [`keymap`], [`rewrite`]: the memory-bounded key -> offset map of a pass, and the rewrite of
//!   one segment's batches without superseded records (offsets kept, batches still tiling the log).
//! - [`local`], [`remote`]: the executors on local segments and on remote ones (new objects, one
//!   conditional manifest commit per swap, old objects deleted after the grace period).
//! - [`snapshot`]: state snapshots, the latest value of every key of a partition as of an offset,
//!   as a Parquet file (key, value, offset, timestamp, partition) that `state_at` starts from.

pub mod config;
pub mod keymap;
pub mod local;
pub mod plan;
pub mod remote;
pub mod report;
pub mod rewrite;
pub mod snapshot;
pub mod stats;

pub use config::{CompactionConfig, CompactorConfig};
pub use report::{Phase, Progress, Report, Run};
