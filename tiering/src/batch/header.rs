//! The fixed RecordBatch v2 header and the checks of the append path.
//!
//! ```text
//! 0  baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records
//! ```
//! The CRC-32C covers bytes 21..end, so base offset, length and leader epoch can be rewritten
//! without touching it.

use bytes::Bytes;

use super::compression::Compression;
use crate::error::BatchError;

/// Bytes in the fixed header; the records section starts here.
pub const HEADER_LEN: usize = 61;
/// Bytes before and including the batch length field; `batchLength` counts what follows them.
pub const LOG_OVERHEAD: usize = 12;
pub(crate) const BASE_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH: usize = 8;
pub(crate) const LEADER_EPOCH: usize = 12;
pub(crate) const MAGIC: usize = 16;
pub(crate) const CRC: usize = 17;
pub(crate) const ATTRIBUTES: usize = 21;
pub(crate) const LAST_OFFSET_DELTA: usize = 23;
pub(crate) const BASE_TIMESTAMP: usize = 27;
pub(crate) const MAX_TIMESTAMP: usize = 35;
pub(crate) const PRODUCER_ID: usize = 43;
pub(crate) const PRODUCER_EPOCH: usize = 51;
pub(crate) const BASE_SEQUENCE: usize = 53;
pub(crate) const RECORD_COUNT: usize = 57;

const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;

/// Most records one batch may declare; bounds the work any header can ask for.
pub const MAX_RECORDS_PER_BATCH: i32 = 1 << 24;

/// Whether record timestamps are the producer's (create time) or tierlog's (log-append time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

pub(crate) fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("invariant: 4-byte slice"))
}
pub(crate) fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("invariant: 8-byte slice"))
}

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the front of `buf`. Checks the magic byte and that the declared length
    /// is at least a header; it does not need the whole batch to be present.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::TooShort { len: buf.len(), min: HEADER_LEN });
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::BadMagic { magic });
        }
        let batch_length = be_i32(buf, BATCH_LENGTH);
        if (batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::LengthMismatch {
                declared: batch_length as i64,
                actual: buf.len().saturating_sub(LOG_OVERHEAD),
            });
        }
        Ok(Self {
            base_offset: be_i64(buf, BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH),
            magic,
            crc: u32::from_be_bytes(buf[CRC..CRC + 4].try_into().expect("invariant: 4 bytes")),
            attributes: be_i16(buf, ATTRIBUTES),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP),
            producer_id: be_i64(buf, PRODUCER_ID),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH),
            base_sequence: be_i32(buf, BASE_SEQUENCE),
            record_count: be_i32(buf, RECORD_COUNT),
        })
    }

    /// Bytes of the whole batch, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// CRC-32C of a whole batch as the header's `crc` field should read.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// Checks the stored CRC of a complete batch against its bytes.
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(BatchError::CrcMismatch { expected: header.crc, actual });
    }
    Ok(())
}

/// Parses and checks one complete batch: exact length, magic, CRC. Used on every batch read from
/// storage that is not trusted yet (recovery, remote reads, inspect).
pub fn check_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(BatchError::LengthMismatch {
            declared: header.batch_length as i64,
            actual: batch.len() - LOG_OVERHEAD,
        });
    }
    verify_crc(batch, &header)?;
    Ok(header)
}

/// Splits a buffer of concatenated batches into `(header, bytes)` pairs, zero-copy. Stops at the
/// first incomplete or unparsable batch; the caller decides whether that tail is an error.
pub fn batches_in(buf: &Bytes) -> impl Iterator<Item = (BatchHeader, Bytes)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(&buf[pos..]).ok()?;
        let end = pos.checked_add(header.total_len())?;
        if end > buf.len() {
            return None;
        }
        let batch = buf.slice(pos..end);
        pos = end;
        Some((header, batch))
    })
}

/// The longest prefix of whole batches of `buf` within `limit` bytes (a batch cut by the end of
/// `buf` is left out); the first batch even when it alone is over `limit`, if `at_least_one`.
pub fn whole_batches(buf: Bytes, limit: usize, at_least_one: bool) -> Bytes {
    let mut end = 0usize;
    for (h, _) in batches_in(&buf) {
        let next = end + h.total_len();
        if next > limit && !(end == 0 && at_least_one) {
            break;
        }
        end = next;
    }
    buf.slice(..end)
}

/// Rewrites the fields tierlog owns in a stored copy of the header: base offset and leader epoch
/// (outside the CRC) and, for log-append time, the timestamp type and max timestamp; returns
/// whether the CRC must be recomputed.
pub(crate) fn patch_header(
    hdr: &mut [u8; HEADER_LEN],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> bool {
    hdr[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    hdr[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now) = log_append_time {
        let attrs = be_i16(hdr, ATTRIBUTES) | ATTR_TIMESTAMP_TYPE;
        hdr[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
        hdr[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.to_be_bytes());
        return true;
    }
    false
}

/// Sets the CRC field of a patched header, given the records section that follows it.
pub(crate) fn set_crc(hdr: &mut [u8; HEADER_LEN], records_section: &[u8]) {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&hdr[ATTRIBUTES..]), records_section);
    hdr[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}
