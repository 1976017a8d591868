//! The hot tier: partition folders of segment files on local disk.
//!
//! Write path: [`group_commit`] -> [`partition`] -> [`segment`] + [`index`].
//! Read path: [`partition`] -> [`segment`]. Recovery: [`recover`] + [`checkpoint`].

pub mod checkpoint;
pub mod group_commit;
pub mod index;
pub mod journal;
pub mod partition;
pub mod recover;
pub mod segment;

pub use group_commit::{AppendTicket, LogWriter, SyncStrategy, WriterConfig};
pub use partition::{AppendInfo, OffsetSpec, Partition, ReadResult, TimeOffset};
pub use segment::SegmentInfo;
