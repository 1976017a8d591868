//! Encoding records into a RecordBatch v2, as the Kafka Java producer lays it out: base timestamp
//! is the first record's, offsets and timestamps are deltas, the CRC-32C covers attributes..end.

use bytes::Bytes;

use super::compression::Compression;
use super::header::{ATTRIBUTES, BATCH_LENGTH, CRC, HEADER_LEN, LOG_OVERHEAD};
use super::records::Record;
use super::varint::{put_varint, put_varlong};

/// Builds one batch from records. Producer id, epoch and base sequence default to -1 (not an
/// idempotent producer); base offset defaults to 0 and is assigned by the log at append.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: Vec<u8>,
    count: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    /// Offset delta of the next record (`push` numbers records densely; `push_at` leaves gaps).
    next_delta: i32,
    /// Set by `span`: the batch covers more offsets than its records (a compacted batch).
    last_offset_delta: Option<i32>,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        Self {
            compression,
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: Vec::new(),
            count: 0,
            base_timestamp: None,
            max_timestamp: -1,
            next_delta: 0,
            last_offset_delta: None,
        }
    }

    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }
    /// Marks the batch as coming from an idempotent producer.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Bytes of the (uncompressed) records section so far: for sizing batches.
    pub fn records_bytes(&self) -> usize {
        self.records.len()
    }

    /// Makes the batch cover offsets `base..=base + last_offset_delta` whatever records it holds
    /// (compaction: the offsets of removed records stay inside the batch, so batches still tile the
    /// log with no gap, as Kafka's cleaner keeps them). An empty batch takes `timestamp` as its
    /// base and max timestamp.
    /// Call it after the last `push_at`.
    pub fn set_span(&mut self, last_offset_delta: i32, timestamp: i64) {
        self.last_offset_delta = Some(last_offset_delta);
        if self.base_timestamp.is_none() {
            self.base_timestamp = Some(timestamp);
            self.max_timestamp = self.max_timestamp.max(timestamp);
        }
    }

    /// Appends one record at `offset_delta` from the base offset. Deltas should increase and the
    /// span cover them; the builder writes what it is given (readers of tierlog's compaction check).
    pub fn push_at(&mut self, record: &Record, offset_delta: i32) {
        self.next_delta = offset_delta;
        self.push(record);
    }

    /// Appends one record.
    pub fn push(&mut self, record: &Record) {
        let base = *self.base_timestamp.get_or_insert(record.timestamp);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        let mut body = Vec::with_capacity(
            16 + record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len()),
        );
        body.push(0); // record attributes
        put_varlong(&mut body, record.timestamp.wrapping_sub(base));
        put_varint(&mut body, self.next_delta);
        self.next_delta += 1;
        put_bytes(&mut body, record.key.as_deref());
        put_bytes(&mut body, record.value.as_deref());
        put_varint(&mut body, record.headers.len() as i32);
        for h in &record.headers {
            put_bytes(&mut body, Some(h.key.as_bytes()));
            put_bytes(&mut body, h.value.as_deref());
        }
        put_varint(&mut self.records, body.len() as i32);
        self.records.extend_from_slice(&body);
        self.count += 1;
    }

    /// Encodes the batch.
    pub fn build(self) -> Bytes {
        let section = self.compression.compress(&self.records);
        let mut out = Vec::with_capacity(HEADER_LEN + section.len());
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // batch length, set below
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(2); // magic
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
        out.extend_from_slice(&self.compression.attribute_bits().to_be_bytes());
        out.extend_from_slice(&self.last_offset_delta.unwrap_or(self.next_delta - 1).to_be_bytes());
        let base_ts = self.base_timestamp.unwrap_or(-1);
        out.extend_from_slice(&base_ts.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        debug_assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(&section);
        let batch_length = (out.len() - LOG_OVERHEAD) as i32;
        out[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
        out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(out)
    }

    /// Builds a batch from a slice of records in one call.
    pub fn from_records(compression: Compression, records: &[Record]) -> Bytes {
        let mut b = BatchBuilder::new(compression);
        for r in records {
            b.push(r);
        }
        b.build()
    }
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}
