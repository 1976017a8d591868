//! The Parquet index of a remote segment: one row per batch.
//!
//! Columns (all int64): `base_offset`, `last_offset`, `first_timestamp` (the batch's base
//! timestamp), `max_timestamp`, `position` and `size` (the batch's byte range in the segment
//! object), `record_count`, `crc` (the batch's CRC-32C as stored), `producer_id`,
//! `producer_epoch`, `base_sequence`, `attributes` (codec, timestamp type, transactional and
//! control bits). Rows are in offset order; row groups of [`parquet_io::ROW_GROUP_ROWS`] rows and
//! pages of [`parquet_io::PAGE_ROWS`] rows carry min/max statistics and a page index, so a reader
//! (tierlog, pyarrow, DuckDB) prunes by offset or time. tierlog fetches a segment's index whole
//! (one GET: it is a few bytes per batch) and keeps it parsed in memory.

use bytes::Bytes;

use crate::batch::header::check_batch;

use super::parquet_io::{self, Column, Table};
use crate::batch::BatchHeader;
use crate::batch::header::HEADER_LEN;

/// One batch of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRow {
    pub base_offset: i64,
    pub last_offset: i64,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub position: u64,
    pub size: u32,
    pub record_count: i32,
    pub crc: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
}

/// A segment's parsed index.
#[derive(Debug, Clone, Default)]
pub struct SegmentIndex {
    pub rows: Vec<IndexRow>,
}

/// Walks a whole segment's bytes, checking every batch's header and CRC, and returns its index.
/// `Err((position, reason))` names the first bad batch.
pub fn scan_segment(data: &[u8]) -> Result<SegmentIndex, (u64, String)> {
    let mut s = Scanner::default();
    s.feed(data)?;
    s.finish()
}

/// Builds a segment's index from its bytes fed in pieces (multipart uploads read a part at a
/// time), checking every batch's CRC. A batch split across pieces is carried over.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Segment position of the first byte not yet consumed (the carry's start).
    pos: u64,
    carry: Vec<u8>,
    rows: Vec<IndexRow>,
}

impl Scanner {
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), (u64, String)> {
        while !self.carry.is_empty() && !data.is_empty() {
            let need = if self.carry.len() < HEADER_LEN {
                HEADER_LEN - self.carry.len()
            } else {
                let h = BatchHeader::parse(&self.carry).map_err(|e| (self.pos, e.to_string()))?;
                h.total_len() - self.carry.len()
            };
            let take = need.min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() >= HEADER_LEN {
                let h = BatchHeader::parse(&self.carry).map_err(|e| (self.pos, e.to_string()))?;
                if self.carry.len() == h.total_len() {
                    let carry = std::mem::take(&mut self.carry);
                    self.batch(&carry)?;
                }
            }
        }
        let mut at = 0usize;
        while at < data.len() {
            let rest = &data[at..];
            if rest.len() < HEADER_LEN {
                break;
            }
            let h = BatchHeader::parse(rest).map_err(|e| (self.pos, e.to_string()))?;
            if rest.len() < h.total_len() {
                break;
            }
            self.batch(&rest[..h.total_len()])?;
            at += h.total_len();
        }
        self.carry.extend_from_slice(&data[at..]);
        Ok(())
    }

    fn batch(&mut self, batch: &[u8]) -> Result<(), (u64, String)> {
        let h = crate::batch::header::check_batch(batch).map_err(|e| (self.pos, e.to_string()))?;
        self.rows.push(IndexRow::new(&h, self.pos, batch.len() as u32));
        self.pos += batch.len() as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<SegmentIndex, (u64, String)> {
        if !self.carry.is_empty() {
            return Err((self.pos, format!("the segment ends inside a batch ({} bytes left)", self.carry.len())));
        }
        Ok(SegmentIndex { rows: self.rows })
    }
}

impl IndexRow {
    pub fn new(h: &BatchHeader, position: u64, size: u32) -> Self {
        Self {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            first_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            position,
            size,
            record_count: h.record_count,
            crc: h.crc,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            attributes: h.attributes,
        }
    }
    pub fn end(&self) -> u64 {
        self.position + self.size as u64
    }
}

/// Checks that `bytes`, read at segment position `start`, are exactly the batches `rows`
/// describe (consecutive rows), each with a good CRC and the offsets and CRC its row records.
/// `Err((position, reason))` names the first bad batch.
pub fn check_rows(rows: &[IndexRow], bytes: &[u8], start: u64) -> Result<(), (u64, String)> {
    let mut pos = 0usize;
    for r in rows {
        let at = start + pos as u64;
        let end = pos + r.size as usize;
        if end > bytes.len() {
            return Err((at, "object is shorter than its index".into()));
        }
        let h = check_batch(&bytes[pos..end]).map_err(|e| (at, e.to_string()))?;
        if h.base_offset != r.base_offset || h.crc != r.crc || h.last_offset() != r.last_offset {
            return Err((at, format!("batch at offset {} does not match its index row", h.base_offset)));
        }
        pos = end;
    }
    Ok(())
}

/// Verifies what a GET of segment bytes `[start, start + bytes.len())` holds: every batch wholly
/// inside is checked with [`check_rows`]. Returns the byte ranges that are *not* verified: the
/// pieces of batches cut by either end of the range, and any batch that failed.
pub fn unverified_ranges(rows: &[IndexRow], bytes: &[u8], start: u64) -> Vec<std::ops::Range<u64>> {
    let end = start + bytes.len() as u64;
    let first = rows.partition_point(|r| r.position < start);
    // Up to the first batch that starts inside: the tail of a batch cut by the range's start.
    let mut covered = rows.get(first).map_or(end, |r| r.position.min(end));
    let mut out = Vec::new();
    if covered > start {
        out.push(start..covered);
    }
    for r in rows[first..].iter().take_while(|r| r.end() <= end) {
        let from = (r.position - start) as usize;
        if check_rows(std::slice::from_ref(r), &bytes[from..from + r.size as usize], r.position).is_err() {
            out.push(r.position..r.end());
        }
        covered = r.end();
    }
    // The head of a batch cut by the range's end (or bytes past the last row).
    if covered < end {
        out.push(covered..end);
    }
    out
}

impl SegmentIndex {
    pub fn records(&self) -> u64 {
        self.rows.iter().map(|r| r.record_count.max(0) as u64).sum()
    }
    pub fn first_timestamp(&self) -> i64 {
        self.rows.iter().map(|r| r.first_timestamp).min().unwrap_or(-1)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.rows.iter().map(|r| r.max_timestamp).max().unwrap_or(-1)
    }

    /// The row of the batch that holds `offset`, or the first batch after it.
    pub fn find_offset(&self, offset: i64) -> Option<usize> {
        let i = self.rows.partition_point(|r| r.last_offset < offset);
        (i < self.rows.len()).then_some(i)
    }

    /// The first batch (in offset order) whose max timestamp is >= `t`.
    pub fn find_time(&self, t: i64) -> Option<usize> {
        self.rows.iter().position(|r| r.max_timestamp >= t)
    }

    pub fn encode(&self) -> Result<Bytes, String> {
        let col = |name, f: &dyn Fn(&IndexRow) -> i64| Column::I64(name, self.rows.iter().map(f).collect());
        parquet_io::write(vec![
            col("base_offset", &|r| r.base_offset),
            col("last_offset", &|r| r.last_offset),
            col("first_timestamp", &|r| r.first_timestamp),
            col("max_timestamp", &|r| r.max_timestamp),
            col("position", &|r| r.position as i64),
            col("size", &|r| r.size as i64),
            col("record_count", &|r| r.record_count as i64),
            col("crc", &|r| r.crc as i64),
            col("producer_id", &|r| r.producer_id),
            col("producer_epoch", &|r| r.producer_epoch as i64),
            col("base_sequence", &|r| r.base_sequence as i64),
            col("attributes", &|r| r.attributes as i64),
        ])
    }

    /// Parses an index file and checks that its rows tile a segment of `segment_size` bytes
    /// from `base_offset` on.
    pub fn decode(bytes: Bytes, base_offset: i64, segment_size: u64) -> Result<Self, String> {
        let t = Table::read(bytes)?;
        let cols: Vec<Vec<i64>> = [
            "base_offset",
            "last_offset",
            "first_timestamp",
            "max_timestamp",
            "position",
            "size",
            "record_count",
            "crc",
            "producer_id",
            "producer_epoch",
            "base_sequence",
            "attributes",
        ]
        .iter()
        .map(|n| t.i64(n))
        .collect::<Result<_, _>>()?;
        let mut rows = Vec::with_capacity(t.rows());
        let (mut pos, mut next) = (0u64, base_offset);
        let cell = |k: usize, i: usize| cols[k][i];
        for i in 0..t.rows() {
            let c = |k: usize| cell(k, i);
            let row = IndexRow {
                base_offset: c(0),
                last_offset: c(1),
                first_timestamp: c(2),
                max_timestamp: c(3),
                position: c(4) as u64,
                size: c(5) as u32,
                record_count: c(6) as i32,
                crc: c(7) as u32,
                producer_id: c(8),
                producer_epoch: c(9) as i16,
                base_sequence: c(10) as i32,
                attributes: c(11) as i16,
            };
            if row.position != pos || row.base_offset != next || row.last_offset < row.base_offset {
                return Err(format!("row {i} does not follow the previous one (position {pos}, offset {next})"));
            }
            if (row.size as usize) < HEADER_LEN {
                return Err(format!("row {i} has an impossible size {}", row.size));
            }
            pos = row.end();
            next = row.last_offset + 1;
            rows.push(row);
        }
        if pos != segment_size {
            return Err(format!("rows cover {pos} bytes but the segment has {segment_size}"));
        }
        Ok(Self { rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};

    fn segment(batches: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for b in 0..batches {
            let mut builder = BatchBuilder::new(Compression::None).base_offset(b as i64 * 5);
            for i in 0..5 {
                builder.push(&Record {
                    key: Some(format!("k{i}").into()),
                    value: Some(vec![b as u8; 100].into()),
                    headers: Vec::new(),
                    timestamp: 1000 + b as i64 * 10 + i,
                });
            }
            out.extend_from_slice(&builder.build());
        }
        out
    }

    #[test]
    fn fetched_ranges_are_verified_batch_by_batch() {
        let mut data = segment(10);
        let idx = scan_segment(&data).unwrap();
        let (r2, r5) = (idx.rows[2], idx.rows[5]);
        // Whole batches only: nothing unverified.
        let range = r2.position as usize..r5.end() as usize;
        assert!(unverified_ranges(&idx.rows, &data[range.clone()], r2.position).is_empty());
        assert!(check_rows(&idx.rows[2..=5], &data[range], r2.position).is_ok());
        // Cut through batches 2 and 5: their pieces are unverified, 3 and 4 are checked.
        let (a, b) = (r2.position + 10, r5.position + 7);
        assert_eq!(
            unverified_ranges(&idx.rows, &data[a as usize..b as usize], a),
            vec![a..idx.rows[3].position, r5.position..b]
        );
        // Inside one batch: all of it unverified.
        assert_eq!(unverified_ranges(&idx.rows, &data[a as usize..a as usize + 5], a), vec![a..a + 5]);
        // A flipped byte in batch 3 fails that batch alone.
        let flip = idx.rows[3].position as usize + 70;
        data[flip] ^= 1;
        let range = r2.position as usize..r5.end() as usize;
        assert_eq!(
            unverified_ranges(&idx.rows, &data[range.clone()], r2.position),
            vec![idx.rows[3].position..idx.rows[3].end()]
        );
        let err = check_rows(&idx.rows[2..=5], &data[range.clone()], r2.position).unwrap_err();
        assert_eq!(err.0, idx.rows[3].position);
        // Bytes that do not match the index rows they are checked against.
        assert!(check_rows(&idx.rows[3..=4], &data[range], r2.position).is_err());
    }

    #[test]
    fn index_round_trips_and_finds() {
        let data = segment(1000);
        let idx = scan_segment(&data).unwrap();
        assert_eq!(idx.rows.len(), 1000);
        assert_eq!(idx.records(), 5000);
        let enc = idx.encode().unwrap();
        let back = SegmentIndex::decode(enc.clone(), 0, data.len() as u64).unwrap();
        assert_eq!(back.rows, idx.rows);
        assert_eq!(back.find_offset(7), Some(1));
        assert_eq!(back.find_offset(4999), Some(999));
        assert_eq!(back.find_offset(5000), None);
        assert_eq!(back.find_time(1000 + 50 * 10 + 3), Some(50));
        assert!(SegmentIndex::decode(enc, 0, data.len() as u64 + 1).is_err());
    }

    #[test]
    fn scanner_handles_any_split() {
        let data = segment(20);
        let whole = scan_segment(&data).unwrap();
        for piece in [1usize, 7, 61, 62, 100, 333, 4096] {
            let mut s = Scanner::default();
            for chunk in data.chunks(piece) {
                s.feed(chunk).unwrap();
            }
            assert_eq!(s.finish().unwrap().rows, whole.rows, "piece {piece}");
        }
        let mut s = Scanner::default();
        s.feed(&data[..data.len() - 1]).unwrap();
        assert!(s.finish().is_err());
    }

    #[test]
    fn scan_rejects_a_flipped_byte() {
        let mut data = segment(3);
        let n = data.len();
        data[n - 3] ^= 1;
        assert!(scan_segment(&data).is_err());
    }
}
