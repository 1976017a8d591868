//! The append path's validation of a producer's batch: the header checks of [`super::header`]
//! plus the walk of every record ([`super::records::check_records`]), compressed or not.

use bytes::Bytes;

use super::compression::Compression;
use super::header::{BatchHeader, HEADER_LEN, MAX_RECORDS_PER_BATCH, check_batch};
use super::records;
use crate::error::BatchError;

/// A producer batch that passed the append path's checks, ready to be given offsets.
#[derive(Debug, Clone)]
pub struct ValidatedBatch {
    bytes: Bytes,
    header: BatchHeader,
}

impl ValidatedBatch {
    /// The append path's validation: header, exact length, magic, CRC, a record count in range that
    /// matches `lastOffsetDelta`, and a records section that holds exactly that many records.
    ///
    /// Every record's length, attributes, timestamp delta and offset delta are decoded (see
    /// [`records::check_records`]); keys, values and headers are not. A compressed batch is
    /// decompressed (bounded) and walked the same way.
    pub fn validate(bytes: Bytes, max_batch_bytes: usize) -> Result<Self, BatchError> {
        Self::validate_for(bytes, max_batch_bytes, false)
    }

    /// [`ValidatedBatch::validate`]; with `require_keys` (a compacted topic, as Kafka does) a
    /// record without a key is [`BatchError::KeylessRecord`]: compaction keeps the latest record
    /// per key, and a keyless record has none.
    pub fn validate_for(bytes: Bytes, max_batch_bytes: usize, require_keys: bool) -> Result<Self, BatchError> {
        if bytes.len() > max_batch_bytes {
            return Err(BatchError::TooLarge { size: bytes.len(), limit: max_batch_bytes });
        }
        let header = check_batch(&bytes)?;
        if header.record_count < 1 || header.record_count > MAX_RECORDS_PER_BATCH {
            return Err(BatchError::BadRecordCount { count: header.record_count, max: MAX_RECORDS_PER_BATCH });
        }
        if header.last_offset_delta != header.record_count - 1 {
            return Err(BatchError::BadLastOffsetDelta {
                last_offset_delta: header.last_offset_delta,
                count: header.record_count,
            });
        }
        if header.is_control() || header.is_transactional() {
            return Err(BatchError::Transactional);
        }
        let codec = header.compression()?;
        let section = &bytes[HEADER_LEN..];
        let present = match codec {
            Compression::None => records::check_records(section, &header, require_keys)?,
            _ => records::check_records(&codec.decompress(section)?, &header, require_keys)?,
        };
        if present != header.record_count as i64 {
            return Err(BatchError::RecordCountMismatch { declared: header.record_count, actual: present });
        }
        Ok(Self { bytes, header })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Records this batch will occupy in the offset space.
    pub fn offset_span(&self) -> i64 {
        self.header.last_offset_delta as i64 + 1
    }
}
