//! Reads from the remote tier: manifest -> segment -> index -> byte range -> ranged GET.
//!
//! Every batch that comes back is CRC-checked and matched against its index row before it is
//! returned: a corrupt or mismatched object is [`Error::Corrupt`], never data. The check happens
//! once, as the bytes arrive from the bucket (see [`super::cache`]); bytes the cache could not
//! mark verified are checked on every read.
//!
//! Sequential readers are recognised by where they start: a read that begins at the offset where
//! an earlier read ended continues a stream. Streams read as scans (see [`super::cache`]) and
//! fetch `read_ahead_bytes` ahead, past the end of the segment into the next one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::ObjectStoreExt;

use super::cache::ChunkCache;
use super::index::{SegmentIndex, check_rows};
use super::manifest::{Manifest, SegmentEntry};
use crate::batch::records::decode_records;
use crate::error::{Error, Result, remote};
use crate::local::TimeOffset;
use crate::local::producers::{PRODUCER_EXPIRY_MS, Producers};
use crate::stats;

/// Parsed segment indexes kept in memory per partition.
const INDEX_CACHE: usize = 64;

/// The most segment indexes a restore reads to rebuild the idempotent producers' state.
pub const RESTORE_PRODUCER_SEGMENTS: usize = 32;
/// Streams remembered per partition for read-ahead.
const STREAMS: usize = 16;
/// Bytes per read-ahead GET: large enough that a replay costs well under one GET per 8 MiB and
/// that per-request overhead vanishes, small enough to keep several in flight.
pub const READ_AHEAD_WINDOW: u64 = 16 << 20;

/// The size of one read-ahead GET: [`READ_AHEAD_WINDOW`], or `read_ahead_bytes` when smaller;
/// whole chunks of `chunk_bytes`.
pub fn read_ahead_window(read_ahead_bytes: u64, chunk_bytes: u64) -> u64 {
    (read_ahead_bytes.min(READ_AHEAD_WINDOW) / chunk_bytes).max(1) * chunk_bytes
}

/// One partition's remote tier, as readers see it.
pub struct RemoteReader {
    manifest: Arc<Manifest>,
    cache: Arc<ChunkCache>,
    read_ahead: u64,
    indexes: Mutex<VecDeque<(String, Arc<SegmentIndex>)>>,
    index_load: tokio::sync::Mutex<()>,
    /// Where recent reads started and ended: a read starting within one continues its stream.
    streams: Mutex<VecDeque<(i64, i64)>>,
    /// This partition's streams, for the cache's read-ahead budget.
    stream: u64,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader").field("manifest", &self.manifest).finish()
    }
}

impl RemoteReader {
    pub fn new(manifest: Arc<Manifest>, cache: Arc<ChunkCache>, read_ahead: u64) -> Arc<Self> {
        let stream = super::cache::object_hash(&manifest.keys().root());
        Arc::new(Self {
            stream,
            manifest,
            cache,
            read_ahead,
            indexes: Mutex::new(VecDeque::new()),
            index_load: tokio::sync::Mutex::new(()),
            streams: Mutex::new(VecDeque::new()),
        })
    }

    /// The idempotent producers' state as the bucket's newest segments give it (the producer
    /// columns of their indexes): for a partition restored from the bucket, so that a producer's
    /// retry of a batch that reached the bucket is still recognised. Reads the indexes of the
    /// segments uploaded within the producer expiry, at most [`RESTORE_PRODUCER_SEGMENTS`].
    pub async fn producer_state(&self, now_ms: i64) -> Result<Producers> {
        let head = self.manifest.head();
        let mut entries: Vec<SegmentEntry> = Vec::new();
        if head.segments.len() < RESTORE_PRODUCER_SEGMENTS
            && let Some(last) = head.chunks.last()
        {
            entries.extend(self.manifest.chunk(last).await?.iter().cloned());
        }
        entries.extend(head.segments.iter().cloned());
        let recent: Vec<&SegmentEntry> = entries
            .iter()
            .rev()
            .take_while(|e| now_ms - e.uploaded_ms < PRODUCER_EXPIRY_MS)
            .take(RESTORE_PRODUCER_SEGMENTS)
            .collect();
        let mut producers = Producers::default();
        for e in recent.into_iter().rev() {
            for r in &self.index(e).await?.rows {
                let offsets = (r.base_offset, r.last_offset);
                producers.record_parts(
                    r.producer_id,
                    r.producer_epoch,
                    r.base_sequence,
                    r.record_count,
                    offsets,
                    now_ms,
                );
            }
        }
        Ok(producers)
    }

    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The segment's parsed index: one GET of the whole index object the first time.
    pub async fn index(&self, e: &SegmentEntry) -> Result<Arc<SegmentIndex>> {
        let id = format!("{}-{}", e.epoch, e.id);
        let cached = || {
            self.indexes
                .lock()
                .expect("invariant: lock not poisoned")
                .iter()
                .find(|(k, _)| *k == id)
                .map(|(_, i)| i.clone())
        };
        if let Some(idx) = cached() {
            return Ok(idx);
        }
        // One load at a time: concurrent readers missing the same index wait for the first
        // one's GET instead of each making their own.
        let _loading = self.index_load.lock().await;
        if let Some(idx) = cached() {
            return Ok(idx);
        }
        let key = e.index_key(self.manifest.keys());
        let bytes = self
            .manifest
            .store()
            .get(&key)
            .await
            .map_err(remote("read segment index", &key))?
            .bytes()
            .await
            .map_err(remote("read segment index", &key))?;
        crate::remote::manifest::check_object(&bytes, Some(e.index_size), e.index_crc32c)
            .map_err(|r| corrupt(&key, 0, format!("index: {r}")))?;
        let idx = SegmentIndex::decode(bytes, e.base_offset, e.size).map_err(|r| corrupt(&key, 0, r))?;
        if idx.rows.last().map(|r| r.last_offset + 1) != Some(e.next_offset) {
            return Err(corrupt(&key, 0, "index does not end where the manifest entry does".into()));
        }
        let idx = Arc::new(idx);
        let mut cache = self.indexes.lock().expect("invariant: lock not poisoned");
        if cache.len() >= INDEX_CACHE {
            cache.pop_front();
        }
        cache.push_back((id, idx.clone()));
        Ok(idx)
    }

    /// Whole batches from `offset` (at most `max_bytes`, at least one), or `None` when the remote
    /// tier does not hold `offset`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>> {
        let Some(e) = self.manifest.find_offset(offset).await? else { return Ok(None) };
        let idx = self.index(&e).await?;
        let Some(first) = idx.find_offset(offset) else { return Ok(None) };
        let mut last = first;
        let mut total = idx.rows[first].size as u64;
        while last + 1 < idx.rows.len() && total + idx.rows[last + 1].size as u64 <= max_bytes as u64 {
            last += 1;
            total += idx.rows[last].size as u64;
        }
        let range = idx.rows[first].position..idx.rows[last].end();
        let next = idx.rows[last].last_offset + 1;
        let sequential = self.continues_stream(offset, next);
        let key = e.segment_key(self.manifest.keys());
        // A stream keeps `read_ahead_bytes` past this read in flight or cached, within its share
        // of the cache's read-ahead budget. The bytes of this read no longer wait to be read, and
        // are fetched on their own GET when read-ahead did not start them: the read does not wait
        // on a larger one.
        self.cache.claim(self.stream, &key, range.clone());
        if sequential {
            self.read_ahead(&e, &idx, range.end).await;
        }
        let read = self.cache.get_range(&key, e.size, range.clone(), sequential, Some(&idx)).await?;
        if !read.verified {
            check_rows(&idx.rows[first..=last], &read.bytes, range.start).map_err(|(at, r)| corrupt(&key, at, r))?;
        }
        metrics::counter!(stats::READ_BYTES, "tier" => "remote").increment(read.bytes.len() as u64);
        Ok(Some(read.bytes))
    }

    /// Records that a read from `offset` ended at `next`; whether it continued a stream: it
    /// starts where a recent read ended, or inside it (a Kafka Fetch whose response had room for
    /// only part of what it read resumes from where the response was cut).
    fn continues_stream(&self, offset: i64, next: i64) -> bool {
        let mut s = self.streams.lock().expect("invariant: lock not poisoned");
        let found = s.iter().position(|&(from, end)| from < offset && offset <= end).and_then(|i| s.remove(i));
        if found.is_none() && s.len() >= STREAMS {
            s.pop_front();
        }
        s.push_back((offset, next));
        found.is_some()
    }

    /// Keeps the `read_ahead_bytes` after byte `from` of segment `e` in flight or cached, up to
    /// the end of the aligned window holding the last of them, in GETs of at most a window: what
    /// is missing appears a window at a time, so a replay costs about one GET per window whatever
    /// its reads' sizes (and a stream held to less by the budget fetches its room in one GET).
    /// Past the segment's end, the next segments' first windows. Stops where the budget does.
    async fn read_ahead(&self, e: &SegmentEntry, idx: &Arc<SegmentIndex>, from: u64) {
        let window = self.window();
        let (mut seg, mut seg_idx) = (e.clone(), idx.clone());
        let (mut at, mut left) = (from, self.read_ahead);
        while left > 0 {
            if at >= seg.size {
                let Ok(Some(next)) = self.manifest.find_offset(seg.next_offset).await else { return };
                // The next segment's index, which its reads need anyway, verifies the prefetch.
                let Ok(next_idx) = self.index(&next).await else { return };
                (seg, seg_idx, at) = (next, next_idx, 0);
                continue;
            }
            let end = (at + left).div_ceil(window) * window;
            let key = seg.segment_key(self.manifest.keys());
            if !self.cache.prefetch(self.stream, &key, seg.size, at..end, Some(&seg_idx), window) {
                return;
            }
            left = left.saturating_sub(end.min(seg.size) - at);
            at = end;
        }
    }

    fn window(&self) -> u64 {
        read_ahead_window(self.read_ahead, self.cache.chunk_bytes())
    }

    /// The first record with timestamp >= `t` in the remote tier: at most three GETs when nothing
    /// is cached (a manifest chunk unless the head holds the segment, the index, one byte range).
    pub async fn offset_for_time(&self, t: i64) -> Result<Option<TimeOffset>> {
        let Some(e) = self.manifest.find_time(t).await? else { return Ok(None) };
        let idx = self.index(&e).await?;
        let start = self.manifest.head().log_start_offset;
        let Some(i) = idx.rows.iter().position(|r| r.last_offset >= start && r.max_timestamp >= t) else {
            return Ok(None);
        };
        let row = idx.rows[i];
        let key = e.segment_key(self.manifest.keys());
        let read = self.cache.get_range(&key, e.size, row.position..row.end(), false, Some(&idx)).await?;
        let bytes = read.bytes;
        if !read.verified {
            check_rows(&idx.rows[i..=i], &bytes, row.position).map_err(|(at, r)| corrupt(&key, at, r))?;
        }
        let h = crate::batch::BatchHeader::parse(&bytes).map_err(|err| corrupt(&key, row.position, err.to_string()))?;
        let records = decode_records(&h, &bytes).map_err(|err| corrupt(&key, row.position, err.to_string()))?;
        Ok(records
            .iter()
            .find(|r| r.offset >= start && r.timestamp >= t)
            .map(|r| TimeOffset { offset: r.offset, timestamp: r.timestamp }))
    }
}

fn corrupt(key: &object_store::path::Path, position: u64, reason: String) -> Error {
    Error::Corrupt { path: key.as_ref().into(), position, reason }
}
