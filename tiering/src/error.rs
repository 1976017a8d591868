//! Errors of the `tiering` crate: one enum with structured fields, so callers match on variants,
//! never on message text. `BatchError` says exactly what is wrong with a record batch.

use std::path::PathBuf;

/// Why a record batch was rejected. Every variant names the field that was wrong and the values seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch is {len} bytes, shorter than the {min}-byte RecordBatch v2 header")]
    TooShort { len: usize, min: usize },
    #[error("batch length field says {declared} bytes follow it, but {actual} bytes do")]
    LengthMismatch { declared: i64, actual: usize },
    #[error("magic byte is {magic}, only RecordBatch v2 (magic 2) is supported")]
    BadMagic { magic: i8 },
    #[error("CRC-32C mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("unknown compression codec {code} in attributes")]
    UnknownCompression { code: u8 },
    #[error("record count is {count}: a batch must hold between 1 and {max} records")]
    BadRecordCount { count: i32, max: i32 },
    #[error("header declares {declared} records but the records section holds {actual}")]
    RecordCountMismatch { declared: i32, actual: i64 },
    #[error("lastOffsetDelta is {last_offset_delta} but the batch holds {count} records")]
    BadLastOffsetDelta { last_offset_delta: i32, count: i32 },
    #[error("record {index}: {reason}")]
    BadRecord { index: i64, reason: &'static str },
    #[error("{codec} records section could not be decompressed: {reason}")]
    Decompress { codec: &'static str, reason: String },
    #[error("{codec} records section decompresses to more than {limit} bytes")]
    DecompressedTooLarge { codec: &'static str, limit: usize },
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("control and transactional batches are not accepted from producers")]
    Transactional,
    #[error("record {index} has no key: a compacted topic keeps the latest record per key, so every record needs one")]
    KeylessRecord { index: i64 },
}

/// Errors of segments and the local tier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("offset {offset} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt { path: PathBuf, position: u64, reason: String },
    #[error("{op} {path}: {error}")]
    Io { op: &'static str, path: PathBuf, error: std::io::Error },
    #[error("object store: {op} {key}: {error}")]
    Remote { op: &'static str, key: String, error: object_store::Error },
    #[error(
        "fenced: this writer (epoch {epoch}) of {partition} was replaced by epoch {current}; it stopped writing to the bucket"
    )]
    Fenced { partition: String, epoch: u64, current: u64 },
    #[error("the log writer has stopped{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed { reason: Option<String> },
    /// An idempotent producer's batch does not follow its last one (a gap, or a new epoch that
    /// does not start at 0): Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER. Nothing was written.
    #[error(
        "out-of-order sequence on {partition}: producer {producer_id} (epoch {epoch}) sent sequence {got}, expected {expected}"
    )]
    OutOfOrderSequence { partition: String, producer_id: i64, epoch: i16, expected: i32, got: i32 },
    /// An idempotent producer's epoch is older than the one the partition has seen: a newer
    /// instance of the producer took over (Kafka's INVALID_PRODUCER_EPOCH). Nothing was written.
    #[error(
        "invalid producer epoch on {partition}: producer {producer_id} sent epoch {epoch}, the partition is at {current}"
    )]
    InvalidProducerEpoch { partition: String, producer_id: i64, epoch: i16, current: i16 },
    /// This node takes no appends for the partition (another writer owns it, or its local log is
    /// damaged); the reason says what to do. Reads are served from the bucket.
    #[error("partition {partition} takes no appends here: {reason}")]
    Unavailable { partition: String, reason: String },
    /// A rewrite (compaction, merging) was planned on segments that changed before its commit
    /// (retention, another rewrite): nothing was changed; plan again.
    #[error("conflict: {reason}")]
    Conflict { reason: String },
}

impl Error {
    /// Wraps an IO error with the operation and the path it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { op, path, error }
    }
}

/// Wraps an object-store error with the operation and the key it concerned.
pub fn remote(op: &'static str, key: &object_store::path::Path) -> impl FnOnce(object_store::Error) -> Error {
    let key = key.to_string();
    move |error| Error::Remote { op, key, error }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
