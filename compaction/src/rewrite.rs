//! Key compaction of one segment's bytes: which records stay, and the batches that hold them.
//!
//! **Offsets never change and never leave a gap between batches.** A rewritten batch keeps the base
//! offset of the first input batch it covers and spans (through `lastOffsetDelta`) every offset up
//! to the last input batch it covers, records removed or not, as Kafka's cleaner keeps a batch's
//! last offset. So the rewritten segment covers exactly the offsets the old one did, batch after
//! batch with no hole, and every reader (local scan, remote index, `read`, replay) sees a dense
//! sequence of batches, some of which hold fewer records (or none). Each rewritten batch gets a
//! fresh CRC-32C; a batch whose records all stay is still rebuilt only if it shares an output
//! batch with one that lost records: a segment that loses nothing is not rewritten at all.

use bytes::Bytes;
use tiering::BatchError;
use tiering::batch::header::check_batch;
use tiering::batch::records::{Record, decode_records};
use tiering::batch::{BatchBuilder, BatchHeader, Compression};

use crate::keymap::KeyMap;

/// Records of an output batch are gathered up to about this many bytes (uncompressed).
pub const OUT_BATCH_BYTES: usize = 1 << 20;

/// What may be dropped besides records superseded by a later record of their key.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A tombstone that is the latest record of its key is dropped when its timestamp is before
    /// this (now minus `delete_retention_ms`)...
    pub tombstones_before_ts: i64,
    /// ...and it lies below this offset (it was in the clean part of the log already, so it was
    /// kept for at least one pass).
    pub tombstones_below: i64,
}

/// A segment after key compaction.
#[derive(Debug, Clone)]
pub struct Compacted {
    pub data: Bytes,
    pub records_in: u64,
    pub records_out: u64,
}

impl Compacted {
    pub fn removed(&self) -> u64 {
        self.records_in - self.records_out
    }
}

/// Why a segment could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSegment {
    pub position: u64,
    pub reason: String,
}

fn bad(position: usize, e: impl std::fmt::Display) -> BadSegment {
    BadSegment { position: position as u64, reason: e.to_string() }
}

/// Every batch of `data`, each checked (length, magic, CRC), with its position.
pub fn batches(data: &Bytes) -> Result<Vec<(usize, BatchHeader, Bytes)>, BadSegment> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let h = BatchHeader::parse(&data[pos..]).map_err(|e| bad(pos, e))?;
        let end = pos.checked_add(h.total_len()).filter(|&e| e <= data.len());
        let end = end.ok_or_else(|| bad(pos, "batch runs past the end of the segment"))?;
        let batch = data.slice(pos..end);
        check_batch(&batch).map_err(|e| bad(pos, e))?;
        out.push((pos, h, batch));
        pos = end;
    }
    Ok(out)
}

/// Adds the keyed records of `data` at or after offset `from` to `map`, batch by batch, stopping
/// before a batch whose records might not fit (a map with no room for even one batch takes it
/// anyway, so a pass always advances). Returns the offset the map covers up to (exclusive).
pub fn index_segment(data: &Bytes, map: &mut KeyMap, from: i64) -> Result<i64, BadSegment> {
    let mut end = from;
    for (pos, h, batch) in batches(data)? {
        if h.next_offset() <= from {
            continue;
        }
        if !map.has_room(h.record_count.max(0) as usize) && !map.is_empty() {
            break;
        }
        for r in decode_records(&h, &batch).map_err(|e| bad(pos, e))? {
            if let Some(k) = &r.key {
                map.insert(k, r.offset);
            }
        }
        end = h.next_offset();
    }
    Ok(end)
}

/// An output batch being gathered.
struct Out {
    base: i64,
    last: i64,
    max_ts: i64,
    codec: Compression,
    leader_epoch: i32,
    records: Vec<(Record, i32)>,
    bytes: usize,
}

impl Out {
    fn build(self) -> Bytes {
        let codec = if self.records.is_empty() { Compression::None } else { self.codec };
        let mut b = BatchBuilder::new(codec).base_offset(self.base).partition_leader_epoch(self.leader_epoch);
        for (r, delta) in &self.records {
            b.push_at(r, *delta);
        }
        b.set_span((self.last - self.base) as i32, self.max_ts);
        b.build()
    }
}

/// Key compaction of one segment: keeps a record unless `map` holds a later offset for its key,
/// or it is a tombstone `rules` let go. Records without a key always stay. Returns `None` when
/// nothing would be removed (the segment stays as it is).
pub fn compact_segment(data: &Bytes, map: &KeyMap, rules: Rules) -> Result<Option<Compacted>, BadSegment> {
    let mut out: Vec<u8> = Vec::with_capacity(data.len());
    let mut cur: Option<Out> = None;
    let (mut records_in, mut records_out) = (0u64, 0u64);
    // Record offsets must rise strictly and stay inside their batch: a batch that says otherwise
    // (a producer's odd offset deltas) is not rewritten, since its records could not be placed.
    let mut last_offset = i64::MIN;
    let flush = |cur: &mut Option<Out>, out: &mut Vec<u8>| {
        if let Some(o) = cur.take() {
            out.extend_from_slice(&o.build());
        }
    };
    for (pos, h, batch) in batches(data)? {
        if h.is_control() {
            flush(&mut cur, &mut out);
            out.extend_from_slice(&batch);
            records_in += h.record_count.max(0) as u64;
            records_out += h.record_count.max(0) as u64;
            continue;
        }
        let records = decode_records(&h, &batch).map_err(|e| bad(pos, e))?;
        let codec = h.compression().map_err(|e: BatchError| bad(pos, e))?;
        let o = cur.get_or_insert_with(|| Out {
            base: h.base_offset,
            last: h.last_offset(),
            max_ts: h.max_timestamp,
            codec,
            leader_epoch: h.partition_leader_epoch,
            records: Vec::new(),
            bytes: 0,
        });
        for r in records {
            records_in += 1;
            if r.offset <= last_offset || r.offset < h.base_offset || r.offset > h.last_offset() {
                return Err(bad(
                    pos,
                    format!(
                        "record offset {} is out of order in batch {}..={}",
                        r.offset,
                        h.base_offset,
                        h.last_offset()
                    ),
                ));
            }
            last_offset = r.offset;
            let keep = match &r.key {
                None => true,
                Some(k) => {
                    let superseded = map.latest(k).is_some_and(|latest| r.offset < latest);
                    let expired_tombstone = r.value.is_none()
                        && r.timestamp < rules.tombstones_before_ts
                        && r.offset < rules.tombstones_below;
                    !superseded && !expired_tombstone
                }
            };
            if keep {
                records_out += 1;
                o.bytes += r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + 16;
                let delta = (r.offset - o.base) as i32;
                o.records.push((Record::from(r), delta));
            }
        }
        o.last = h.last_offset();
        o.max_ts = o.max_ts.max(h.max_timestamp);
        // Close the output batch at an input boundary once it is big enough, or before its offset
        // span or record count could overflow what a batch header holds.
        let span = o.last - o.base;
        if o.bytes >= OUT_BATCH_BYTES || span >= (i32::MAX / 2) as i64 || o.records.len() >= 1 << 20 {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    if records_out == records_in {
        return Ok(None);
    }
    Ok(Some(Compacted { data: Bytes::from(out), records_in, records_out }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiering::batch::batches_in;

    fn batch(base: i64, recs: &[(&str, Option<&str>)]) -> Bytes {
        let records: Vec<Record> = recs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Vec::new(),
                timestamp: 1_000 + base + i as i64,
            })
            .collect();
        let b = BatchBuilder::from_records(Compression::None, &records);
        let mut v = b.to_vec();
        v[..8].copy_from_slice(&base.to_be_bytes());
        Bytes::from(v)
    }

    fn segment(batches: &[Bytes]) -> Bytes {
        Bytes::from(batches.concat())
    }

    #[test]
    fn keeps_latest_per_key_and_tiles_offsets() {
        let seg = segment(&[
            batch(10, &[("a", Some("1")), ("b", Some("1"))]),
            batch(12, &[("a", Some("2")), ("c", None)]),
            batch(14, &[("b", Some("2"))]),
        ]);
        let mut map = KeyMap::with_key_capacity(100);
        assert_eq!(index_segment(&seg, &mut map, 10).unwrap(), 15);
        let rules = Rules { tombstones_before_ts: 0, tombstones_below: 0 };
        let c = compact_segment(&seg, &map, rules).unwrap().expect("something removed");
        assert_eq!((c.records_in, c.records_out), (5, 3));
        let out: Vec<_> = batches_in(&c.data).collect();
        assert_eq!(out.first().unwrap().0.base_offset, 10);
        assert_eq!(out.last().unwrap().0.next_offset(), 15);
        assert!(out.windows(2).all(|w| w[0].0.next_offset() == w[1].0.base_offset));
        let kept: Vec<(i64, Option<Bytes>)> =
            out.iter().flat_map(|(h, b)| decode_records(h, b).unwrap()).map(|r| (r.offset, r.value)).collect();
        assert_eq!(kept, vec![(12, Some(Bytes::from("2"))), (13, None), (14, Some(Bytes::from("2")))]);
        for (h, b) in &out {
            check_batch(b).unwrap_or_else(|e| panic!("batch at {}: {e}", h.base_offset));
        }
        // The tombstone goes once it is old and below the clean point.
        let rules = Rules { tombstones_before_ts: i64::MAX, tombstones_below: 15 };
        let c = compact_segment(&seg, &map, rules).unwrap().unwrap();
        assert_eq!(c.records_out, 2);
        // Nothing to remove: no rewrite.
        let empty = KeyMap::with_key_capacity(100);
        assert!(
            compact_segment(&seg, &empty, Rules { tombstones_before_ts: 0, tombstones_below: 0 }).unwrap().is_none()
        );
    }

    #[test]
    fn a_full_map_stops_at_a_batch_boundary() {
        let seg =
            segment(&[batch(0, &[("a", Some("1")), ("b", Some("1"))]), batch(2, &[("c", Some("1")), ("d", None)])]);
        let mut map = KeyMap::with_key_capacity(3);
        assert_eq!(index_segment(&seg, &mut map, 0).unwrap(), 2);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn records_out_of_order_are_refused_not_rewritten() {
        // A valid batch whose records claim offset deltas 0, 5 in a batch spanning 0..=1.
        let r = |k: &str| Record { key: Some(Bytes::from(k.to_owned())), value: None, headers: vec![], timestamp: 1 };
        let mut b = BatchBuilder::new(Compression::None);
        b.push_at(&r("a"), 0);
        b.push_at(&r("a"), 5);
        b.set_span(1, 1);
        let seg = segment(&[b.build()]);
        let mut map = KeyMap::with_key_capacity(10);
        index_segment(&seg, &mut map, 0).unwrap();
        let err = compact_segment(&seg, &map, Rules { tombstones_before_ts: 0, tombstones_below: 0 }).unwrap_err();
        assert!(err.reason.contains("out of order"), "{err:?}");
    }

    #[test]
    fn a_flipped_byte_is_an_error_not_a_panic() {
        let seg = segment(&[batch(0, &[("a", Some("1"))])]);
        let mut v = seg.to_vec();
        let n = v.len();
        v[n - 1] ^= 1;
        let map = KeyMap::with_key_capacity(100);
        assert!(
            compact_segment(&Bytes::from(v), &map, Rules { tombstones_before_ts: 0, tombstones_below: 0 }).is_err()
        );
        assert!(batches(&seg.slice(..seg.len() - 3)).is_err());
    }
}
