//! The object-store tier (DESIGN.md §2-3). By the path of the data:
//!
//! - [`store`], [`local_cas`]: the bucket from [`ObjectStoreConfig`] (a local directory with
//!   compare-and-swap, an S3-compatible store, or memory for unit tests); [`instrumented`] counts
//!   requests by kind; [`faulty`] injects failures for fault tests.
//! - [`keys`]: the object layout.
//! - upload path: [`upload`] (sealed segment -> PUT -> [`index`] -> [`manifest`] commit, retention,
//!   deferred deletes, the orphan sweep).
//! - read path: [`reader`] (manifest -> index -> byte range) over [`cache`] (aligned chunks in a
//!   foyer hybrid cache, shared misses, read-ahead, scan resistance).
//! - [`catalog`]: topic configurations in the bucket.

pub mod cache;
pub mod catalog;
pub mod config;
pub mod deleted;
pub mod faulty;
pub mod index;
pub mod instrumented;
pub mod keys;
pub mod local_cas;
pub mod manifest;
pub mod owner;
mod parquet_io;
pub mod producer_ids;
pub mod reader;
pub mod retry;
pub mod store;
pub mod upload;

pub use cache::ChunkCache;
pub use config::{CacheConfig, TieringConfig};
pub use instrumented::{CountingStore, RequestCounts};
pub use manifest::{Head, Manifest, SegmentEntry, SnapshotRef};
pub use reader::RemoteReader;
pub use store::ObjectStoreConfig;
pub use upload::{InFlight, PassReport, RemoteLog, Uploader};
