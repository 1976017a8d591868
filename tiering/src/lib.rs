//! # tiering: segments and the tiers they live in
//!
//! The storage half of tierlog. It owns the bytes: the record-batch format, hot local segments with
//! group-committed writes and crash recovery; the object-store tier builds on it.
//!
//! # Layout
//! - [`batch`]: Kafka RecordBatch v2: header checks, records, compression, builder.
//! - [`local`]: the hot tier, one folder per partition. Follow the data by file name:
//!   - write path: [`local::group_commit`] (one writer task per disk, one write and one fsync per
//!     group) -> [`local::partition`] (offsets, rolling) -> [`local::segment`] (files) with
//!     [`local::index`] (sparse offset and time indexes);
//!   - read path: [`local::partition`] `read` / `offset_for_time` -> [`local::segment`];
//!   - recovery: [`local::recover`] (checkpoint, tail validation, truncation) and
//!     [`local::checkpoint`];
//!   - retention: [`local::partition`] `apply_retention`, driven by the writer's ticks.
//! - [`log`]: [`log::PartitionLog`], one partition across both tiers as the node that serves it
//!   holds it: append (with the lease), reads, the high watermark and waiting on it, its state.
//! - [`config`]: the per-topic log settings ([`LogConfig`]).
//! - [`clock`], [`topic`], [`error`], [`stats`]: time, names, errors, metric names.

pub mod batch;
pub mod clock;
pub mod config;
pub mod error;
pub mod local;
pub mod log;
pub mod remote;
pub mod stats;
pub mod task;
pub mod tiered;
pub mod topic;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Durability, LogConfig, Retention};
pub use error::{BatchError, Error, Result};
pub use object_store;
