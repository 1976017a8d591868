//! # tierlog: a tiered-storage log engine
//!
//! Services and brokers append Kafka RecordBatch v2 batches to partitions of topics; tierlog keeps
//! them in hot segments on local disk with group-committed, fsynced writes, uploads sealed
//! segments to a bucket (a local directory by default, or any S3-compatible store) with Parquet
//! indexes and a fenced manifest, and serves reads by offset and by time from either tier.
//!
//! # Layout
//! - [`engine`]: the [`Engine`]: topics, partitions, `append` / `read` / `offset_for_time`.
//! - [`config`]: [`EngineConfig`] and [`TopicConfig`] (TOML, validated).
//! - [`error`]: the public [`Error`] and its [`ErrorKind`].
//! - [`replay`]: ordered record streams over offset or time ranges, across both tiers.
//! - [`state`]: the latest value of every key as of a time or offset (`state_at`).
//! - [`records`]: producing JSON lines into batches and batches into JSON lines (the CLI's format).
//! - [`server`]: the HTTP/JSON API (axum) and Prometheus `/metrics` (feature `servers`).
//! - [`kafka`]: the Kafka wire-protocol broker (feature `servers`).
//! - [`cli`]: the `tierlog` command line, including `demo`.
//! - [`bench`]: the benchmarks behind `tierlog bench` and `benches/`, each against its raw limit.
//!
//! Storage itself (record format, segments, group commit, recovery) lives in the `tiering` crate.
//!
//! ```no_run
//! # async fn example() -> tierlog::Result<()> {
//! use tierlog::{Engine, EngineConfig, TopicConfig};
//! use tierlog::batch::{BatchBuilder, Compression, Record};
//!
//! let engine = Engine::open(EngineConfig::new("/var/lib/tierlog")).await?;
//! engine.create_topic("orders", TopicConfig { partitions: 4, ..Default::default() }).await?;
//! let batch = BatchBuilder::from_records(Compression::Lz4, &[Record {
//!     key: Some("order-1".into()), value: Some("{\"total\": 12}".into()), headers: vec![], timestamp: 1_700_000_000_000,
//! }]);
//! let at = engine.append("orders", 0, batch).await?;
//! let read = engine.read("orders", 0, at.base_offset, 1 << 20).await?;
//! engine.close().await?;
//! # Ok(()) }
//! ```

pub mod bench;
pub mod cli;
pub mod compactor;
pub mod config;
pub mod engine;
pub mod error;
#[cfg(feature = "servers")]
pub mod groups;
pub mod ingest;
mod internal;
#[cfg(feature = "servers")]
pub mod kafka;
pub mod records;
pub mod replay;
#[cfg(feature = "servers")]
pub mod server;
pub mod state;

pub use compaction::{CompactionConfig, CompactorConfig, Phase, Progress, Report as CompactionReport};
pub use compactor::{CompactionStatus, PartitionCompaction, ProgressFn};
pub use config::{CleanupPolicy, EngineConfig, TopicConfig};
pub use engine::{Engine, PartitionDescription, PartitionProblem, TopicDescription};
pub use error::{Error, ErrorKind, Result};
pub use replay::{Merge, Position, Replay, ReplayRecord, ReplaySpec};
pub use state::{At, StateEntry, StateSpec, StateStream};
pub use tiering::batch;
pub use tiering::clock::{self, Clock, system_clock};
pub use tiering::local::{AppendInfo, Batches, FileSpan, OffsetSpec, ReadResult, SendableRead, TimeOffset};
pub use tiering::remote::{CacheConfig, ObjectStoreConfig, PassReport, RequestCounts, TieringConfig};
pub use tiering::{Durability, LogConfig, ManualClock, object_store, remote};
