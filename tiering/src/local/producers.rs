//! Idempotent producers: per producer id, the epoch and the last five batches appended to this
//! partition (first and last sequence, offsets), as Apache Kafka keeps them. The writer task checks
//! every batch that carries a producer id against it before giving the batch offsets:
//!
//! - an unknown producer may start at any sequence;
//! - a lower epoch than the known one is `InvalidProducerEpoch`;
//! - a higher epoch must start at sequence 0, else `OutOfOrderSequence`;
//! - an exact duplicate of a kept batch (same epoch, first and last sequence) is acknowledged with
//!   the original offsets and written again nowhere;
//! - otherwise the batch must follow the last one (sequences wrap at `i32::MAX`), else
//!   `OutOfOrderSequence`.
//!
//! The state is rebuilt on open from a snapshot written with the recovery checkpoint
//! (`producer-state`) plus the batch headers of the log after it; after a restore it comes from the
//! producer columns of the newest segment indexes in the bucket.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fs::Fs;
use super::segment::write_durable;
use crate::batch::BatchHeader;
use crate::error::{Error, Result};

/// Batches kept per producer for duplicate detection (Kafka's `max.in.flight.requests` bound).
pub const KEPT_BATCHES: usize = 5;

/// A producer with no append for this long is forgotten (Kafka's `producer.id.expiration.ms`).
pub const PRODUCER_EXPIRY_MS: i64 = 86_400_000;

pub const SNAPSHOT_FILE: &str = "producer-state";

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// What is known about one producer on this partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`KEPT_BATCHES`].
    pub batches: VecDeque<KeptBatch>,
    /// Clock time of its last append, for expiry.
    pub last_append_ms: i64,
}

/// The verdict on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not idempotent, or the next batch of its producer: append it.
    Append,
    /// An exact duplicate: answer with these offsets and write nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// The producer state of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producers {
    entries: HashMap<i64, ProducerEntry>,
}

/// The last sequence of a batch of `count` records starting at `first` (wrapping at `i32::MAX`).
pub fn last_sequence(first: i32, count: i32) -> i32 {
    ((first as i64 + count as i64 - 1) % (i32::MAX as i64 + 1)) as i32
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

impl Producers {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id)
    }

    /// Checks a batch before it is given offsets. `partition` names it in errors.
    pub fn check(&self, partition: &str, h: &BatchHeader) -> Result<Verdict> {
        if h.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        let Some(e) = self.entries.get(&h.producer_id) else { return Ok(Verdict::Append) };
        let (pid, epoch, first) = (h.producer_id, h.producer_epoch, h.base_sequence);
        if epoch < e.epoch {
            return Err(Error::InvalidProducerEpoch {
                partition: partition.to_owned(),
                producer_id: pid,
                epoch,
                current: e.epoch,
            });
        }
        let out_of_order = |expected| Error::OutOfOrderSequence {
            partition: partition.to_owned(),
            producer_id: pid,
            epoch,
            expected,
            got: first,
        };
        if epoch > e.epoch {
            return if first == 0 { Ok(Verdict::Append) } else { Err(out_of_order(0)) };
        }
        let last = last_sequence(first, h.record_count);
        if let Some(b) = e.batches.iter().find(|b| b.first_seq == first && b.last_seq == last) {
            return Ok(Verdict::Duplicate { base_offset: b.base_offset, last_offset: b.last_offset });
        }
        let expected = e.batches.back().map_or(first, |b| next_sequence(b.last_seq));
        if first == expected { Ok(Verdict::Append) } else { Err(out_of_order(expected)) }
    }

    /// Records a batch appended at `base_offset..=last_offset` (its header has the producer
    /// fields). Batches without a producer id are ignored.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64, last_offset: i64, now_ms: i64) {
        let (pid, epoch, seq, count) = (h.producer_id, h.producer_epoch, h.base_sequence, h.record_count);
        self.record_parts(pid, epoch, seq, count, (base_offset, last_offset), now_ms);
    }

    /// [`Producers::record`] from the producer fields alone (a remote segment index's row).
    pub fn record_parts(
        &mut self,
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        record_count: i32,
        (base_offset, last_offset): (i64, i64),
        now_ms: i64,
    ) {
        if producer_id < 0 {
            return;
        }
        let batch = KeptBatch {
            first_seq: base_sequence,
            last_seq: last_sequence(base_sequence, record_count),
            base_offset,
            last_offset,
        };
        let e = self.entries.entry(producer_id).or_insert_with(|| ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_append_ms: now_ms,
        });
        if epoch != e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
        if e.batches.len() == KEPT_BATCHES {
            e.batches.pop_front();
        }
        e.batches.push_back(batch);
        e.last_append_ms = e.last_append_ms.max(now_ms);
    }

    /// Takes every producer of `newer` over this state's entry for it.
    pub fn absorb(&mut self, newer: Producers) {
        self.entries.extend(newer.entries);
    }

    /// Forgets producers idle for [`PRODUCER_EXPIRY_MS`].
    pub fn expire(&mut self, now_ms: i64) {
        self.entries.retain(|_, e| now_ms - e.last_append_ms < PRODUCER_EXPIRY_MS);
    }
}

/// A snapshot of the producer state as of `next_offset` (the batches before it).
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    next_offset: i64,
    producers: Producers,
}

pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Writes the snapshot (atomically; the caller syncs the directory when it must survive).
pub fn write_snapshot(fs: &dyn Fs, dir: &Path, producers: &Producers, next_offset: i64) -> Result<()> {
    let body = serde_json::to_vec(&Snapshot { next_offset, producers: producers.clone() })
        .expect("invariant: producer state serialises");
    let mut data = crc32c::crc32c(&body).to_be_bytes().to_vec();
    data.extend_from_slice(&body);
    write_durable(fs, &snapshot_path(dir), &data)
}

/// Reads the snapshot: the state and the offset it covers up to. `None` when missing or damaged
/// (the state is then rebuilt from the whole local log).
pub fn read_snapshot(fs: &dyn Fs, dir: &Path) -> Option<(Producers, i64)> {
    let data = fs.read(&snapshot_path(dir)).ok()?;
    if data.len() < 4 || u32::from_be_bytes(data[..4].try_into().ok()?) != crc32c::crc32c(&data[4..]) {
        tracing::warn!(dir = %dir.display(), "producer state snapshot is damaged; rebuilding it from the log");
        return None;
    }
    let s: Snapshot = serde_json::from_slice(&data[4..]).ok()?;
    Some((s.producers, s.next_offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};

    fn header(pid: i64, epoch: i16, seq: i32, n: usize) -> BatchHeader {
        let recs: Vec<Record> =
            (0..n).map(|_| Record { key: None, value: Some("v".into()), headers: vec![], timestamp: 1 }).collect();
        let mut b = BatchBuilder::new(Compression::None).producer(pid, epoch, seq);
        for r in &recs {
            b.push(r);
        }
        BatchHeader::parse(&b.build()).unwrap()
    }

    #[test]
    fn kafkas_rules() {
        let mut p = Producers::default();
        let h = header(7, 0, 10, 3); // an unknown producer may start anywhere
        assert_eq!(p.check("t-0", &h).unwrap(), Verdict::Append);
        p.record(&h, 100, 102, 0);
        // Exact duplicate: the original offsets.
        assert_eq!(p.check("t-0", &h).unwrap(), Verdict::Duplicate { base_offset: 100, last_offset: 102 });
        // Next in sequence.
        let next = header(7, 0, 13, 2);
        assert_eq!(p.check("t-0", &next).unwrap(), Verdict::Append);
        p.record(&next, 103, 104, 0);
        // A gap, and a partial overlap, are out of order.
        assert!(matches!(p.check("t-0", &header(7, 0, 16, 1)), Err(Error::OutOfOrderSequence { expected: 15, .. })));
        assert!(matches!(p.check("t-0", &header(7, 0, 11, 2)), Err(Error::OutOfOrderSequence { .. })));
        // A lower epoch is fenced; a new epoch must start at 0.
        assert!(matches!(p.check("t-0", &header(7, -1, 15, 1)), Err(Error::InvalidProducerEpoch { current: 0, .. })));
        assert!(matches!(p.check("t-0", &header(7, 1, 15, 1)), Err(Error::OutOfOrderSequence { expected: 0, .. })));
        let bumped = header(7, 1, 0, 1);
        assert_eq!(p.check("t-0", &bumped).unwrap(), Verdict::Append);
        p.record(&bumped, 105, 105, 0);
        assert!(matches!(p.check("t-0", &header(7, 0, 15, 1)), Err(Error::InvalidProducerEpoch { current: 1, .. })));
        // Only the last five batches are kept.
        for i in 1..=5 {
            p.record(&header(7, 1, i, 1), 105 + i as i64, 105 + i as i64, 0);
        }
        assert_eq!(p.get(7).unwrap().batches.len(), KEPT_BATCHES);
        assert!(matches!(p.check("t-0", &bumped), Err(Error::OutOfOrderSequence { .. })));
        // Sequences wrap.
        assert_eq!(last_sequence(i32::MAX - 1, 3), 0);
        p.record(&header(9, 0, i32::MAX - 1, 2), 200, 201, 0);
        assert_eq!(p.check("t-0", &header(9, 0, 0, 1)).unwrap(), Verdict::Append);
        // Batches without a producer id are not tracked; idle producers expire.
        assert_eq!(p.check("t-0", &header(-1, -1, -1, 1)).unwrap(), Verdict::Append);
        p.expire(PRODUCER_EXPIRY_MS);
        assert!(p.is_empty());
    }
}
