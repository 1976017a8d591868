//! The object-store tier (in progress: issue 3). What exists so far is the store itself:
//!
//! - [`store`]: building an `Arc<dyn ObjectStore>` from [`ObjectStoreConfig`] (a local directory,
//!   an S3-compatible bucket, or memory for unit tests), with retries, timeouts and credentials that
//!   never reach logs or errors.
//! - [`instrumented`]: a wrapper that counts requests by kind and the bytes they move, for metrics,
//!   tests ("a cold lookup costs at most 3 GETs") and the benchmarks.

pub mod instrumented;
pub mod store;

pub use instrumented::{CountingStore, RequestCounts};
pub use store::ObjectStoreConfig;
