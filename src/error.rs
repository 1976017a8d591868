//! The public error of tierlog: variants with structured fields, and [`Error::kind`] to tell the
//! caller what to do about it (fix the request, retry, or look at the data).

use std::path::PathBuf;

pub use tiering::BatchError;

/// What the caller can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong (bad name, bad batch, bad config, offset out of range): fix it.
    Invalid,
    /// The topic or partition does not exist.
    NotFound,
    /// Stored data failed a check.
    Data,
    /// The engine (or a partition) has stopped; reopen it.
    Closed,
    /// An IO or system failure; retrying may help.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("topic {topic:?} already exists{}", if *.in_bucket {
        " in the bucket's catalog (another node wrote it, or this data dir was emptied): restore it \
         (`tierlog restore`, or `restore = true` on an empty data dir) instead of creating it"
    } else { "" })]
    TopicExists { topic: String, in_bucket: bool },
    /// The partition takes no appends now: its disk failed a write or fsync (it reopens itself
    /// once IO works), or this node does not write it (another writer took it over in the
    /// bucket, or its local log cannot continue the bucket's). The reason says which, and what
    /// to do. Reads are served from what is intact and from the bucket. Kind `Unavailable`.
    #[error("partition {topic}-{partition} takes no appends now: {reason}")]
    PartitionUnavailable { topic: String, partition: u32, reason: String },
    #[error("unknown topic {topic:?}")]
    UnknownTopic { topic: String },
    #[error("topic {topic:?} has no partition {partition} (it has {partitions})")]
    UnknownPartition { topic: String, partition: u32, partitions: u32 },
    #[error("invalid record batch for {topic}-{partition}: {reason}")]
    InvalidBatch { topic: String, partition: u32, reason: BatchError },
    #[error("offset {offset} is out of range for {topic}-{partition}: it holds [{start}, {end})")]
    OffsetOutOfRange { topic: String, partition: u32, offset: i64, start: i64, end: i64 },
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig { field: String, reason: String },
    #[error("data dir {path} is in use by another tierlog process")]
    DataDirLocked { path: PathBuf },
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
    #[error("the stored batch at {topic}-{partition} offset {offset} does not decode: {reason}")]
    CorruptBatch { topic: String, partition: u32, offset: i64, reason: BatchError },
    #[error("{op} {path}: {error}")]
    Io { op: &'static str, path: PathBuf, error: std::io::Error },
    #[error("object store: {op} {key}: {error}")]
    Remote { op: &'static str, key: String, error: tiering::object_store::Error },
    #[error(
        "partition {partition} is fenced: another writer (epoch {current}) owns it in the bucket; this one (epoch {epoch}) stopped"
    )]
    Fenced { partition: String, epoch: u64, current: u64 },
    #[error(
        "this engine is read-only (a replica, or opened for a read-only command): {op} is refused (write through the engine that owns the partitions)"
    )]
    ReadOnly { op: &'static str },
    #[error("tierlog is closed{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed { reason: Option<String> },
    /// An idempotent producer's batch is not the next in its sequence (Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER); nothing was written.
    #[error(
        "out-of-order sequence on {partition}: producer {producer_id} (epoch {epoch}) sent sequence {got}, expected {expected}"
    )]
    OutOfOrderSequence { partition: String, producer_id: i64, epoch: i16, expected: i32, got: i32 },
    /// An idempotent producer's epoch is older than the partition's (a newer instance took over:
    /// Kafka's INVALID_PRODUCER_EPOCH); nothing was written.
    #[error(
        "invalid producer epoch on {partition}: producer {producer_id} sent epoch {epoch}, the partition is at {current}"
    )]
    InvalidProducerEpoch { partition: String, producer_id: i64, epoch: i16, current: i16 },
    /// Compaction found the segments it planned on changed (retention ran meanwhile); nothing was
    /// changed, and the next run plans again.
    #[error("conflict: {reason}")]
    Conflict { reason: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidTopicName { .. }
            | Error::TopicExists { .. }
            | Error::InvalidBatch { .. }
            | Error::OffsetOutOfRange { .. }
            | Error::InvalidConfig { .. }
            | Error::OutOfOrderSequence { .. }
            | Error::InvalidProducerEpoch { .. } => ErrorKind::Invalid,
            Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => ErrorKind::NotFound,
            Error::Corrupt { .. } | Error::CorruptBatch { .. } => ErrorKind::Data,
            Error::Closed { .. } | Error::Fenced { .. } => ErrorKind::Closed,
            Error::ReadOnly { .. } => ErrorKind::Invalid,
            Error::DataDirLocked { .. }
            | Error::Io { .. }
            | Error::Remote { .. }
            | Error::Conflict { .. }
            | Error::PartitionUnavailable { .. } => ErrorKind::Unavailable,
        }
    }

    /// Lifts a storage error, adding the topic and partition it concerned.
    pub(crate) fn storage(topic: &str, partition: u32, e: tiering::Error) -> Error {
        use tiering::Error as T;
        match e {
            T::InvalidBatch(reason) => Error::InvalidBatch { topic: topic.into(), partition, reason },
            T::OffsetOutOfRange { offset, start, end } => {
                Error::OffsetOutOfRange { topic: topic.into(), partition, offset, start, end }
            }
            T::Unavailable { reason, .. } => Error::PartitionUnavailable { topic: topic.into(), partition, reason },
            other => Error::from(other),
        }
    }
}

impl From<tiering::Error> for Error {
    fn from(e: tiering::Error) -> Self {
        use tiering::Error as T;
        match e {
            T::InvalidBatch(reason) => Error::InvalidBatch { topic: String::new(), partition: 0, reason },
            T::InvalidTopicName { name, reason } => Error::InvalidTopicName { name, reason },
            T::InvalidConfig { field, reason } => Error::InvalidConfig { field: field.into(), reason },
            T::OffsetOutOfRange { offset, start, end } => {
                Error::OffsetOutOfRange { topic: String::new(), partition: 0, offset, start, end }
            }
            T::Corrupt { path, position, reason } => Error::Corrupt { path, position, reason },
            T::Io { op, path, error } => Error::Io { op, path, error },
            T::Closed { reason } => Error::Closed { reason },
            T::Remote { op, key, error } => Error::Remote { op, key, error },
            T::Fenced { partition, epoch, current } => Error::Fenced { partition, epoch, current },
            T::Conflict { reason } => Error::Conflict { reason },
            T::Unavailable { partition, reason } => {
                Error::PartitionUnavailable { topic: partition, partition: 0, reason }
            }
            T::OutOfOrderSequence { partition, producer_id, epoch, expected, got } => {
                Error::OutOfOrderSequence { partition, producer_id, epoch, expected, got }
            }
            T::InvalidProducerEpoch { partition, producer_id, epoch, current } => {
                Error::InvalidProducerEpoch { partition, producer_id, epoch, current }
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an IO error with the operation and the path it concerned.
pub(crate) fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |error| Error::Io { op, path, error }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    /// A partition whose disk failed is `Unavailable` (retry later), as IO errors are; a closed
    /// engine is `Closed`.
    #[test]
    fn a_failed_partition_is_unavailable_not_closed() {
        let failed = tiering::Error::Unavailable { partition: "t-0".into(), reason: "fsync failed".into() };
        let e = Error::storage("t", 0, failed);
        assert!(matches!(&e, Error::PartitionUnavailable { partition: 0, .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(Error::from(tiering::Error::Closed { reason: None }).kind(), ErrorKind::Closed);
    }
}
