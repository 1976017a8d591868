//! Kafka RecordBatch v2, the format of every byte tierlog stores: on local segments, in the bucket,
//! and on the wire. Batches are kept byte-for-byte as producers sent them; tierlog rewrites only the
//! base offset and partition leader epoch (outside the CRC), and the max timestamp when a topic uses
//! log-append time (then the CRC is recomputed).
//!
//! - [`header`]: the fixed 61-byte header, parsing and validation (the append path's fast check).
//! - [`records`]: decoding the records section, zero-copy.
//! - [`validate`]: the append path's full check of a producer's batch ([`ValidatedBatch`]).
//! - [`compression`]: gzip, snappy (xerial framing or raw), lz4 (frame) and zstd codecs.
//! - [`builder`]: encoding records into a batch.
//! - [`varint`]: the zigzag varints of the records section.

pub mod builder;
pub mod compression;
pub mod header;
pub mod records;
pub mod validate;
pub mod varint;

pub use builder::BatchBuilder;
pub use compression::Compression;
pub use header::{BatchHeader, HEADER_LEN, TimestampType, batches_in, whole_batches};
pub use records::{Header, Record, RecordView};
pub use validate::ValidatedBatch;
