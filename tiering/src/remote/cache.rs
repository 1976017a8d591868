//! The read cache in front of the bucket: object bytes in aligned chunks, in a foyer
//! `HybridCache` (memory + local disk).
//!
//! - **Chunks.** A read of bytes `[a, b)` of an object needs chunks `a / chunk ..= (b - 1) / chunk`.
//!   Chunks not cached are fetched with one ranged GET per run of consecutive missing chunks.
//! - **Shared misses.** A chunk being fetched is registered in flight; a concurrent reader that
//!   needs it waits for that GET instead of issuing its own.
//! - **Scan resistance.** Reads marked as scans (sequential replays and their read-ahead) insert
//!   their chunks memory-only (`Location::InMem`), so a replay never rewrites the disk tier, and
//!   with low priority (`Hint::Low`): the memory tier is an LRU with two pools, and low-priority
//!   chunks are always evicted before any other. A replay larger than the cache recycles its own
//!   chunks and leaves what point readers use alone; a replay that fits stays cached (nothing is
//!   evicted below capacity). Chunks fetched by other reads go to the high-priority pool
//!   (`HIGH_PRIORITY_RATIO` of the memory) and, when evicted from memory, to the disk tier.
//! - **Verified once.** A GET of segment bytes given the segment's index CRC-checks every batch
//!   wholly inside it as it arrives, and marks each chunk whose overlapping batches all passed.
//!   Reads whose chunks are all marked skip the check; others (chunks cut through a batch at a
//!   GET's edge, chunks fetched without an index) are checked by the reader on every read. The
//!   mark lives in the cache entry, so re-fetched bytes are verified afresh; the disk tier keeps
//!   it under foyer's own per-entry checksum.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, EvictionConfig, FsDeviceBuilder, Hint, HybridCache, HybridCacheBuilder,
    HybridCacheProperties, Location, LruConfig, RecoverMode,
};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::config::CacheConfig;
use super::index::{SegmentIndex, unverified_ranges};
use crate::error::{Error, Result, remote};
use crate::stats;

/// Share of the memory tier kept for chunks of non-scan reads.
pub const HIGH_PRIORITY_RATIO: f64 = 0.5;

type Flight = Shared<BoxFuture<'static, std::result::Result<Arc<Vec<Chunk>>, Arc<Error>>>>;

/// A cached chunk of an object, and whether every batch overlapping it was verified against the
/// segment index when it was fetched.
#[derive(Debug, Clone)]
pub struct Chunk {
    bytes: Bytes,
    verified: bool,
}

impl Code for Chunk {
    fn encode(&self, writer: &mut impl std::io::Write) -> foyer::Result<()> {
        self.verified.encode(writer)?;
        self.bytes.encode(writer)
    }

    fn decode(reader: &mut impl std::io::Read) -> foyer::Result<Self> {
        let verified = bool::decode(reader)?;
        Ok(Self { verified, bytes: Bytes::decode(reader)? })
    }

    fn estimated_size(&self) -> usize {
        1 + self.bytes.estimated_size()
    }
}

/// Bytes read through the cache.
#[derive(Debug, Clone)]
pub struct Read {
    pub bytes: Bytes,
    /// Every batch overlapping these bytes was CRC-checked against the index when fetched.
    pub verified: bool,
}

/// Where the chunks of one in-flight GET start.
struct InFlight {
    first_chunk: u64,
    flight: Flight,
}

/// Chunked, shared, cached reads of immutable objects.
pub struct ChunkCache {
    cache: HybridCache<u128, Chunk>,
    store: Arc<dyn ObjectStore>,
    chunk: u64,
    inflight: Mutex<HashMap<u128, Arc<InFlight>>>,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache").field("chunk", &self.chunk).finish()
    }
}

fn object_hash(key: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    key.as_ref().hash(&mut h);
    h.finish()
}

fn cache_key(object: u64, chunk: u64) -> u128 {
    ((object as u128) << 64) | chunk as u128
}

impl ChunkCache {
    /// Builds the cache; the disk tier, of `disk_bytes` (0: none), lives in `dir` (emptied:
    /// cached chunks are not trusted across restarts).
    pub async fn new(
        store: Arc<dyn ObjectStore>,
        config: &CacheConfig,
        disk_bytes: u64,
        dir: &std::path::Path,
    ) -> Result<Arc<Self>> {
        let memory = HybridCacheBuilder::new()
            .with_name("tierlog-remote")
            .memory(config.memory_bytes as usize)
            // Each shard evicts on its own with capacity / shards, so keys hashed unevenly fill
            // some shards early: with 64 chunks per shard a replay that fit the cache lost a
            // tenth of its chunks. A chunk is a 1 MiB-scale operation, so lock contention is
            // no concern: one shard per 1024 chunks.
            .with_shards(((config.memory_bytes / config.chunk_bytes) / 1024).clamp(1, 16) as usize)
            .with_eviction_config(EvictionConfig::Lru(LruConfig { high_priority_pool_ratio: HIGH_PRIORITY_RATIO }))
            .with_weighter(|_k: &u128, v: &Chunk| v.bytes.len() + 24);
        let storage = memory.storage();
        let cache = if disk_bytes > 0 {
            let device = FsDeviceBuilder::new(dir)
                .with_capacity(disk_bytes as usize)
                .build()
                .map_err(|e| Error::InvalidConfig { field: "tiering.cache.dir", reason: e.to_string() })?;
            let block = (config.chunk_bytes as usize * 4).max(4 << 20);
            storage
                .with_engine_config(BlockEngineConfig::new(device).with_block_size(block))
                .with_recover_mode(RecoverMode::None)
                .build()
                .await
        } else {
            storage.build().await
        };
        let cache = cache.map_err(|e| Error::InvalidConfig { field: "tiering.cache", reason: e.to_string() })?;
        Ok(Arc::new(Self { cache, store, chunk: config.chunk_bytes, inflight: Mutex::new(HashMap::new()) }))
    }

    pub fn chunk_bytes(&self) -> u64 {
        self.chunk
    }

    /// Bytes `range` of the object `key` of `size` bytes. `scan` marks sequential replays (see
    /// the module docs); `index`, the segment's index when `key` is a segment, lets GETs verify
    /// what they fetch.
    pub async fn get_range(
        self: &Arc<Self>,
        key: &Path,
        size: u64,
        range: Range<u64>,
        scan: bool,
        index: Option<&Arc<SegmentIndex>>,
    ) -> Result<Read> {
        if range.start >= range.end || range.end > size {
            return Err(Error::Corrupt {
                path: key.as_ref().into(),
                position: range.start,
                reason: format!("range {range:?} is outside the object's {size} bytes"),
            });
        }
        let object = object_hash(key);
        let (first, last) = (range.start / self.chunk, (range.end - 1) / self.chunk);
        let mut chunks: Vec<Option<Chunk>> = Vec::with_capacity((last - first + 1) as usize);
        for c in first..=last {
            let hit = self.cache.get(&cache_key(object, c)).await.ok().flatten().map(|e| e.value().clone());
            metrics::counter!(stats::CACHE_LOOKUPS, "result" => if hit.is_some() { "hit" } else { "miss" })
                .increment(1);
            chunks.push(hit);
        }
        // Missing chunks: wait for flights already fetching them, start one GET per other run.
        let mut c = first;
        while c <= last {
            if chunks[(c - first) as usize].is_some() {
                c += 1;
                continue;
            }
            // Decided under the in-flight lock: a flight that finished since the lookup above has
            // put its chunks in the cache before leaving the in-flight map, so the chunk is found
            // in one or the other, and no second GET starts for it.
            let decision = {
                let mut inflight = self.inflight.lock().expect("invariant: cache lock not poisoned");
                let k = cache_key(object, c);
                if let Some(f) = inflight.get(&k) {
                    metrics::counter!(stats::CACHE_LOOKUPS, "result" => "shared").increment(1);
                    Some(f.clone())
                } else if self.cache.contains(&k) {
                    None
                } else {
                    let free = |i: u64| {
                        let k = cache_key(object, i);
                        !inflight.contains_key(&k) && !self.cache.contains(&k)
                    };
                    let mut end = c + 1;
                    while end <= last && chunks[(end - first) as usize].is_none() && free(end) {
                        end += 1;
                    }
                    Some(self.start_flight(&mut inflight, key, object, size, c, end, scan, index.cloned()))
                }
            };
            let Some(f) = decision else {
                // Cached meanwhile (or evicted again at once: then look again from the top).
                if let Some(hit) = self.cache.get(&cache_key(object, c)).await.ok().flatten() {
                    chunks[(c - first) as usize] = Some(hit.value().clone());
                    c += 1;
                }
                continue;
            };
            let got = f.flight.clone().await.map_err(|e| Error::Remote {
                op: "read segment",
                key: key.to_string(),
                error: object_store::Error::Generic { store: "cache", source: e.to_string().into() },
            })?;
            let mut i = c;
            while i <= last && i >= f.first_chunk && ((i - f.first_chunk) as usize) < got.len() {
                if chunks[(i - first) as usize].is_none() {
                    chunks[(i - first) as usize] = Some(got[(i - f.first_chunk) as usize].clone());
                }
                i += 1;
            }
            c = i.max(c + 1);
        }
        let chunks: Vec<Chunk> = chunks.into_iter().map(|c| c.expect("invariant: every chunk was fetched")).collect();
        let verified = chunks.iter().all(|c| c.verified);
        let skip = (range.start - first * self.chunk) as usize;
        let len = (range.end - range.start) as usize;
        if chunks.len() == 1 {
            return Ok(Read { bytes: chunks[0].bytes.slice(skip..skip + len), verified });
        }
        let mut out = BytesMut::with_capacity(len);
        let mut need = (skip, len);
        for ch in &chunks {
            let take = (ch.bytes.len() - need.0).min(need.1);
            out.extend_from_slice(&ch.bytes[need.0..need.0 + take]);
            need = (0, need.1 - take);
        }
        Ok(Read { bytes: out.freeze(), verified })
    }

    /// Fetches chunks `[first, end)` with one GET, verifies them against `index` (when given),
    /// caches them, and registers the flight in `inflight` (the caller holds its lock) so
    /// concurrent readers share it.
    #[allow(clippy::too_many_arguments)]
    fn start_flight(
        self: &Arc<Self>,
        inflight: &mut HashMap<u128, Arc<InFlight>>,
        key: &Path,
        object: u64,
        size: u64,
        first: u64,
        end: u64,
        scan: bool,
        index: Option<Arc<SegmentIndex>>,
    ) -> Arc<InFlight> {
        let this = self.clone();
        let key = key.clone();
        let range = first * self.chunk..(end * self.chunk).min(size);
        let fut = async move {
            let got =
                this.store.get_range(&key, range.clone()).await.map_err(|e| Arc::new(remote("read segment", &key)(e)));
            let result = got.and_then(|bytes| {
                if bytes.len() as u64 != range.end - range.start {
                    return Err(Arc::new(Error::Corrupt {
                        path: key.as_ref().into(),
                        position: range.start,
                        reason: format!("short read: {} of {} bytes", bytes.len(), range.end - range.start),
                    }));
                }
                let bad = match &index {
                    Some(idx) => unverified_ranges(&idx.rows, &bytes, range.start),
                    None => vec![range.clone()],
                };
                let mut chunks = Vec::with_capacity((end - first) as usize);
                for (i, c) in (first..end).enumerate() {
                    let from = i * this.chunk as usize;
                    let to = (from + this.chunk as usize).min(bytes.len());
                    let at = range.start + from as u64..range.start + to as u64;
                    let verified = !bad.iter().any(|b| b.start < at.end && at.start < b.end);
                    let chunk = Chunk { bytes: bytes.slice(from..to), verified };
                    let props = if scan {
                        HybridCacheProperties::default().with_location(Location::InMem).with_hint(Hint::Low)
                    } else {
                        HybridCacheProperties::default()
                    };
                    this.cache.insert_with_properties(cache_key(object, c), chunk.clone(), props);
                    chunks.push(chunk);
                }
                Ok(Arc::new(chunks))
            });
            let mut inflight = this.inflight.lock().expect("invariant: cache lock not poisoned");
            for c in first..end {
                inflight.remove(&cache_key(object, c));
            }
            result
        }
        .boxed()
        .shared();
        let f = Arc::new(InFlight { first_chunk: first, flight: fut });
        for c in first..end {
            inflight.insert(cache_key(object, c), f.clone());
        }
        f
    }

    /// Starts fetching `range` in the background (read-ahead): one GET per run of chunks neither
    /// cached nor in flight, registered before this returns, so a read that follows shares it.
    /// Errors are left for the reader that needs the bytes.
    pub fn prefetch(self: &Arc<Self>, key: &Path, size: u64, range: Range<u64>, index: Option<&Arc<SegmentIndex>>) {
        let range = range.start..range.end.min(size);
        if range.start >= range.end {
            return;
        }
        let object = object_hash(key);
        let (first, last) = (range.start / self.chunk, (range.end - 1) / self.chunk);
        let mut inflight = self.inflight.lock().expect("invariant: cache lock not poisoned");
        let missing = |inflight: &HashMap<u128, Arc<InFlight>>, c: u64| {
            let k = cache_key(object, c);
            !self.cache.contains(&k) && !inflight.contains_key(&k)
        };
        let mut c = first;
        while c <= last {
            if !missing(&inflight, c) {
                c += 1;
                continue;
            }
            let mut end = c + 1;
            while end <= last && missing(&inflight, end) {
                end += 1;
            }
            let f = self.start_flight(&mut inflight, key, object, size, c, end, true, index.cloned());
            tokio::spawn(async move {
                let _ = f.flight.clone().await;
            });
            c = end;
        }
    }

    /// Whether the cache holds chunk `chunk` of `key` (in memory or on disk).
    pub fn contains(&self, key: &Path, chunk: u64) -> bool {
        self.cache.contains(&cache_key(object_hash(key), chunk))
    }

    pub async fn close(&self) {
        let _ = self.cache.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};
    use crate::remote::index::scan_segment;
    use crate::remote::instrumented::CountingStore;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    /// 40 batches of about 3 KiB: several per 4 KiB chunk and some across chunk edges.
    fn segment() -> Vec<u8> {
        let mut out = Vec::new();
        for b in 0..40i64 {
            let mut builder = BatchBuilder::new(Compression::None).base_offset(b * 3);
            for i in 0..3 {
                builder.push(&Record {
                    value: Some(vec![b as u8; 1000].into()),
                    timestamp: b * 10 + i,
                    ..Default::default()
                });
            }
            out.extend_from_slice(&builder.build());
        }
        out
    }

    async fn cache(store: Arc<dyn ObjectStore>) -> Arc<ChunkCache> {
        let config = CacheConfig {
            memory_bytes: 1 << 20,
            disk_bytes: Some(0),
            dir: None,
            chunk_bytes: 4096,
            read_ahead_bytes: 16384,
        };
        ChunkCache::new(store, &config, 0, std::path::Path::new("/nonexistent")).await.unwrap()
    }

    #[tokio::test]
    async fn fetched_chunks_are_verified_once_and_shared() {
        let data = segment();
        let idx = Arc::new(scan_segment(&data).unwrap());
        let counting = Arc::new(CountingStore::new(Arc::new(InMemory::new())));
        let key = Path::from("seg.log");
        counting.put(&key, PutPayload::from(data.clone())).await.unwrap();
        let c = cache(counting.clone()).await;
        let size = data.len() as u64;
        // Fetch everything with one GET (what read-ahead does), then read batch by batch.
        c.prefetch(&key, size, 0..size, Some(&idx));
        let before = counting.counts();
        let mut unverified = 0;
        for r in &idx.rows {
            let read = c.get_range(&key, size, r.position..r.end(), true, Some(&idx)).await.unwrap();
            assert_eq!(&read.bytes[..], &data[r.position as usize..r.end() as usize]);
            unverified += usize::from(!read.verified);
        }
        assert_eq!(unverified, 0, "one GET of the whole object verifies every chunk");
        assert!(counting.counts().since(&before).gets() <= 1, "reads shared the read-ahead GET");

        // Without the index nothing is marked: readers check those bytes themselves.
        let other = Path::from("other.log");
        counting.put(&other, PutPayload::from(data.clone())).await.unwrap();
        let read = c.get_range(&other, size, 0..idx.rows[0].end(), false, None).await.unwrap();
        assert!(!read.verified);
    }

    #[tokio::test]
    async fn a_corrupt_batch_is_never_marked_verified() {
        let mut data = segment();
        let idx = Arc::new(scan_segment(&data).unwrap());
        let bad = idx.rows[20];
        data[bad.position as usize + 100] ^= 0x01;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let key = Path::from("seg.log");
        store.put(&key, PutPayload::from(data.clone())).await.unwrap();
        let c = cache(store).await;
        let size = data.len() as u64;
        c.prefetch(&key, size, 0..size, Some(&idx));
        for r in &idx.rows {
            let read = c.get_range(&key, size, r.position..r.end(), true, Some(&idx)).await.unwrap();
            let chunks = r.position / 4096..=(r.end() - 1) / 4096;
            let touches_bad = chunks.contains(&(bad.position / 4096)) || chunks.contains(&((bad.end() - 1) / 4096));
            if touches_bad {
                assert!(!read.verified, "row at {} shares a chunk with the corrupt batch", r.position);
            } else {
                assert!(read.verified, "row at {}", r.position);
            }
        }
    }
}
