//! The records section of a batch: counting records (the append path's cheap walk over length
//! prefixes) and decoding them into zero-copy views of the batch bytes.

use bytes::Bytes;

use super::header::{BatchHeader, HEADER_LEN, TimestampType, check_batch};
use super::varint::{read_varint, read_varlong};
use crate::error::BatchError;

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A record to append: what a producer gives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Create time, ms since the epoch.
    pub timestamp: i64,
}

/// A record as stored: its offset and the timestamp readers see (the batch's max timestamp when the
/// batch uses log-append time). Keys, values and header values are slices of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl From<RecordView> for Record {
    fn from(v: RecordView) -> Self {
        Record { key: v.key, value: v.value, headers: v.headers, timestamp: v.timestamp }
    }
}

/// The append path's walk over an uncompressed records section: every record's length,
/// attributes, timestamp delta and offset delta are decoded (keys, values and headers are only
/// skipped over, by the record length). Offset deltas must run `0..n` in order, every record's
/// timestamp must fit in an i64 and, under create time, not exceed the batch's `maxTimestamp`
/// (time lookups trust it), and the records must tile the section exactly. Returns the number of
/// records.
pub fn check_records(section: &[u8], header: &BatchHeader, require_keys: bool) -> Result<i64, BatchError> {
    let create_time = header.timestamp_type() == TimestampType::CreateTime;
    let mut pos = 0usize;
    let mut count = 0i64;
    while pos < section.len() {
        let bad = |reason| BatchError::BadRecord { index: count, reason };
        let (len, n) = read_varint(&section[pos..]).ok_or(bad("unreadable length varint"))?;
        // attributes (1 byte) + three 1-byte varints (timestamp delta, offset delta, key length)
        // + value length + header count: a record is at least 6 bytes.
        if len < 6 {
            return Err(bad("record length below 6"));
        }
        pos += n;
        if len as usize > section.len() - pos {
            return Err(bad("record length runs past the batch"));
        }
        let record = &section[pos..pos + len as usize];
        // Record attributes are unused in v2; Kafka ignores them and so does tierlog.
        let mut at = 1usize;
        let (ts_delta, n) = read_varlong(&record[at..]).ok_or(bad("bad timestamp delta"))?;
        at += n;
        let (offset_delta, n) = read_varint(&record[at..]).ok_or(bad("bad offset delta"))?;
        if offset_delta as i64 != count {
            return Err(bad("offset deltas must run 0, 1, 2, ... in order"));
        }
        if require_keys {
            at += n;
            let (key_len, _) = read_varint(&record[at..]).ok_or(bad("bad key length"))?;
            if key_len < 0 {
                return Err(BatchError::KeylessRecord { index: count });
            }
        }
        let ts = header.base_timestamp.checked_add(ts_delta).ok_or(bad("timestamp overflows"))?;
        if create_time && ts > header.max_timestamp {
            return Err(bad("timestamp is above the batch's maxTimestamp"));
        }
        pos += len as usize;
        count += 1;
    }
    Ok(count)
}

/// A cursor over one record's bytes that never reads past them.
struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
    index: i64,
}

impl Cursor<'_> {
    fn fail(&self, reason: &'static str) -> BatchError {
        BatchError::BadRecord { index: self.index, reason }
    }
    fn varint(&mut self, what: &'static str) -> Result<i32, BatchError> {
        let (v, n) = read_varint(&self.buf[self.pos..self.end]).ok_or(self.fail(what))?;
        self.pos += n;
        Ok(v)
    }
    fn varlong(&mut self, what: &'static str) -> Result<i64, BatchError> {
        let (v, n) = read_varlong(&self.buf[self.pos..self.end]).ok_or(self.fail(what))?;
        self.pos += n;
        Ok(v)
    }
    fn bytes(&mut self, len: i32, what: &'static str) -> Result<Option<Bytes>, BatchError> {
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.end - self.pos {
            return Err(self.fail(what));
        }
        let out = self.buf.slice(self.pos..self.pos + len as usize);
        self.pos += len as usize;
        Ok(Some(out))
    }
}

/// Decodes every record of a complete batch (CRC already checked by the caller, or not needed).
pub fn decode_records(header: &BatchHeader, batch: &Bytes) -> Result<Vec<RecordView>, BatchError> {
    let codec = header.compression()?;
    let section = match codec {
        super::Compression::None => batch.slice(HEADER_LEN..),
        c => Bytes::from(c.decompress(&batch[HEADER_LEN..])?),
    };
    let log_append = header.timestamp_type() == TimestampType::LogAppendTime;
    let mut out = Vec::with_capacity(header.record_count.clamp(0, 4096) as usize);
    let mut pos = 0usize;
    let mut index = 0i64;
    while pos < section.len() {
        let (len, n) =
            read_varint(&section[pos..]).ok_or(BatchError::BadRecord { index, reason: "unreadable length varint" })?;
        pos += n;
        if len < 0 || len as usize > section.len() - pos {
            return Err(BatchError::BadRecord { index, reason: "record length runs past the batch" });
        }
        let mut c = Cursor { buf: &section, pos, end: pos + len as usize, index };
        if c.pos >= c.end {
            return Err(c.fail("empty record"));
        }
        c.pos += 1; // record attributes: unused in v2
        let ts_delta = c.varlong("bad timestamp delta")?;
        let offset_delta = c.varint("bad offset delta")?;
        let key_len = c.varint("bad key length")?;
        let key = c.bytes(key_len, "key length runs past the record")?;
        let value_len = c.varint("bad value length")?;
        let value = c.bytes(value_len, "value length runs past the record")?;
        let header_count = c.varint("bad header count")?;
        if header_count < 0 || header_count as usize > c.end - c.pos {
            return Err(c.fail("header count out of range"));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let klen = c.varint("bad header key length")?;
            if klen < 0 {
                return Err(c.fail("null header key"));
            }
            let kbytes = c.bytes(klen, "header key runs past the record")?.unwrap_or_default();
            let key = String::from_utf8(kbytes.to_vec()).map_err(|_| c.fail("header key is not UTF-8"))?;
            let vlen = c.varint("bad header value length")?;
            let value = c.bytes(vlen, "header value runs past the record")?;
            headers.push(Header { key, value });
        }
        if c.pos != c.end {
            return Err(c.fail("record length does not match its fields"));
        }
        let timestamp = if log_append { header.max_timestamp } else { header.base_timestamp.wrapping_add(ts_delta) };
        out.push(RecordView { offset: header.base_offset + offset_delta as i64, timestamp, key, value, headers });
        pos = c.end;
        index += 1;
    }
    if index != header.record_count as i64 {
        return Err(BatchError::RecordCountMismatch { declared: header.record_count, actual: index });
    }
    Ok(out)
}

/// Checks a complete batch (length, magic, CRC) and decodes its records.
pub fn decode_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<RecordView>), BatchError> {
    let header = check_batch(batch)?;
    let records = decode_records(&header, batch)?;
    Ok((header, records))
}
