//! The hot tier: partition folders of segment files on local disk.
//!
//! Write path: [`group_commit`] -> [`partition`] -> [`segment`] + [`index`].
//! Read path: [`partition`] -> [`segment`], zero-copy through [`send`]. Recovery: [`recover`] + [`checkpoint`].
//! Every file operation goes through [`fs`] (the real disk, or [`sim_fs`] in fault and power-cut
//! tests).

pub mod checkpoint;
pub mod fs;
pub mod group_commit;
pub mod index;
pub mod journal;
pub mod partition;
pub mod producers;
pub mod reclaim;
pub mod recover;
pub mod segment;
pub mod send;
pub mod sim_fs;

pub use fs::{Fs, LogFile, StdFs, std_fs};
pub use group_commit::{AppendTicket, LogWriter, SyncStrategy, WriterConfig};
pub use partition::{AppendInfo, OffsetSpec, Partition, ReadResult, TimeOffset};
pub use segment::SegmentInfo;
pub use send::{Batches, FileSpan, SendableRead};
pub use sim_fs::SimFs;
