//! Sparse indexes of one segment, kept in memory and written beside a sealed segment.
//!
//! - Offset index: `(offset - base, position)` of the batch that starts each `index_interval_bytes`
//!   stretch of log; a lookup returns where to start scanning headers. File `<base>.index`,
//!   8 bytes an entry (u32 BE, u32 BE).
//! - Time index: at the same points, `(max timestamp of everything before, offset - base)`; every
//!   record before that offset has a timestamp at most the entry's, so a lookup for `t` may start at
//!   the last entry below `t`. Non-monotonic timestamps are fine. A sealed segment's file ends with
//!   `(segment max timestamp, next offset - base)`. File `<base>.timeindex`, 12 bytes an entry.

/// The in-memory index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    offsets: Vec<(u32, u32)>,
    times: Vec<(i64, u32)>,
    /// Bytes of log since the last offset entry.
    bytes_since_entry: u64,
    /// Greatest batch max timestamp so far (-1 when empty).
    max_timestamp: i64,
}

impl SegmentIndex {
    pub fn new() -> Self {
        Self { max_timestamp: -1, ..Default::default() }
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub fn entries(&self) -> usize {
        self.offsets.len()
    }

    /// Records one appended batch: `rel_offset` is its base offset minus the segment base.
    pub fn on_append(&mut self, rel_offset: u32, position: u32, len: u32, max_ts: i64, interval: u32) {
        if position > 0 && self.bytes_since_entry >= interval as u64 {
            self.offsets.push((rel_offset, position));
            if self.times.last().is_none_or(|&(t, _)| self.max_timestamp > t) {
                self.times.push((self.max_timestamp, rel_offset));
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += len as u64;
        self.max_timestamp = self.max_timestamp.max(max_ts);
    }

    /// Whether two indexes hold the same entries (ignoring where the next entry is due).
    pub fn same_entries(&self, other: &SegmentIndex) -> bool {
        self.offsets == other.offsets && self.times == other.times && self.max_timestamp == other.max_timestamp
    }

    /// Where to start scanning for `rel_offset`: the position of the last entry at or below it.
    pub fn lookup_offset(&self, rel_offset: u32) -> u32 {
        let i = self.offsets.partition_point(|&(o, _)| o <= rel_offset);
        if i == 0 { 0 } else { self.offsets[i - 1].1 }
    }

    /// Positions of the offset entries in `(after, upto]`, ascending: each is where a batch
    /// starts, so where the one before it ends.
    pub fn positions_between(&self, after: u64, upto: u64) -> impl Iterator<Item = u64> + '_ {
        let from = self.offsets.partition_point(|&(_, p)| p as u64 <= after);
        self.offsets[from..].iter().map(|&(_, p)| p as u64).take_while(move |&p| p <= upto)
    }

    /// Where to start scanning for the first record with timestamp >= `t`.
    pub fn lookup_time(&self, t: i64) -> u32 {
        let i = self.times.partition_point(|&(ts, _)| ts < t);
        if i == 0 { 0 } else { self.lookup_offset(self.times[i - 1].1) }
    }

    /// The offset index file.
    pub fn encode_offsets(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.offsets.len() * 8);
        for &(o, p) in &self.offsets {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// The time index file of a sealed segment whose next offset is `base + next_rel`.
    pub fn encode_times(&self, next_rel: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.times.len() + 1) * 12);
        for &(t, o) in self.times.iter().chain(std::iter::once(&(self.max_timestamp, next_rel))) {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    /// Loads the index files of a sealed segment of `log_size` bytes and `next_rel` offsets. Returns
    /// `None` when they are malformed (wrong size, not increasing, past the log), so the caller
    /// rebuilds them from the log.
    pub fn decode(offsets: &[u8], times: &[u8], log_size: u64, next_rel: u32) -> Option<Self> {
        if !offsets.len().is_multiple_of(8) || !times.len().is_multiple_of(12) || times.is_empty() {
            return None;
        }
        let offs: Vec<(u32, u32)> = offsets
            .chunks_exact(8)
            .map(|c| {
                let o = u32::from_be_bytes(c[..4].try_into().expect("invariant: 4 bytes"));
                let p = u32::from_be_bytes(c[4..].try_into().expect("invariant: 4 bytes"));
                (o, p)
            })
            .collect();
        let mut ts: Vec<(i64, u32)> = times
            .chunks_exact(12)
            .map(|c| {
                let t = i64::from_be_bytes(c[..8].try_into().expect("invariant: 8 bytes"));
                let o = u32::from_be_bytes(c[8..].try_into().expect("invariant: 4 bytes"));
                (t, o)
            })
            .collect();
        let (max_timestamp, last_rel) = ts.pop()?;
        let increasing = offs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let in_log = offs.iter().all(|&(o, p)| (p as u64) < log_size && o < next_rel);
        let times_ok = ts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            && ts.iter().all(|&(t, o)| t <= max_timestamp && o < next_rel);
        if !increasing || !in_log || !times_ok || last_rel != next_rel {
            return None;
        }
        Some(Self { offsets: offs, times: ts, bytes_since_entry: 0, max_timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_roundtrip() {
        let mut idx = SegmentIndex::new();
        // 10 batches of 10 records, 1000 bytes each; timestamps go up by 100 per batch but batch 5
        // carries a late (old) timestamp.
        for b in 0..10u32 {
            let ts = if b == 5 { 50 } else { 1000 + b as i64 * 100 };
            idx.on_append(b * 10, b * 1000, 1000, ts, 2000);
        }
        assert_eq!(idx.lookup_offset(0), 0);
        assert_eq!(idx.lookup_offset(25), 2000);
        assert_eq!(idx.lookup_offset(95), 8000);
        // First record with ts >= 1150 is in batch 2 (ts 1200); scanning must start at or before.
        assert!(idx.lookup_time(1150) <= 2000);
        assert_eq!(idx.lookup_time(0), 0);
        assert_eq!(idx.max_timestamp(), 1900);
        let dec = SegmentIndex::decode(&idx.encode_offsets(), &idx.encode_times(100), 10_000, 100).expect("decodes");
        assert_eq!(dec.lookup_offset(95), 8000);
        assert_eq!(dec.lookup_time(1150), idx.lookup_time(1150));
        assert_eq!(dec.max_timestamp(), 1900);
        // Entries past the log, or the wrong end offset, are rejected.
        assert!(SegmentIndex::decode(&idx.encode_offsets(), &idx.encode_times(100), 5000, 100).is_none());
        assert!(SegmentIndex::decode(&idx.encode_offsets(), &idx.encode_times(100), 10_000, 99).is_none());
        assert!(SegmentIndex::decode(&[1, 2, 3], &idx.encode_times(100), 10_000, 100).is_none());
    }
}
