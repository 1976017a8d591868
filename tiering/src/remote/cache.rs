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
//! - **Read-ahead within the memory, pinned until read.** Read-ahead chunks fetched, or in
//!   flight, and not read yet are counted against a budget of a quarter of the memory tier: a
//!   prefetch that would pass it starts nothing, and the reader fetches those bytes itself when
//!   it gets there. While they wait, the cache holds their entries, which pins them (foyer's LRU
//!   evicts no entry in use): a read moves its chunks to the young end of the LRU, so without
//!   the pin, read-ahead waiting its turn was older than what was just read and went first when
//!   a Fetch of many partitions filled the memory, and was fetched again. Once read (claimed),
//!   a chunk is unpinned and ages like any scanned chunk. Chunks neither read nor evicted within
//!   `AHEAD_TTL` (a reader that stopped) are unpinned and no longer count. The budget bounds what
//!   is pinned, leaving three quarters of the memory to reads and point readers.
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
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, EvictionConfig, FsDeviceBuilder, Hint, HybridCache, HybridCacheBuilder,
    HybridCacheEntry, HybridCacheProperties, Location, LruConfig, RecoverMode,
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

/// How long a read-ahead chunk nobody has read counts against the read-ahead budget.
const AHEAD_TTL: Duration = Duration::from_secs(30);

/// How long a stream that asked for read-ahead counts as reading, for the budget's shares.
const STREAM_ACTIVE: Duration = Duration::from_secs(2);

type Flight = Shared<BoxFuture<'static, std::result::Result<Arc<Vec<Chunk>>, Arc<Error>>>>;

/// A cached chunk of an object, and whether every batch overlapping it was verified against the
/// segment index when it was fetched.
#[derive(Debug, Clone)]
pub struct Chunk {
    bytes: Bytes,
    verified: bool,
    /// The buffer of the GET that fetched `bytes` (`bytes` lies inside it; a chunk read from
    /// the disk tier is its own): a read of adjacent chunks of one GET is a slice of it, with
    /// no copy. It costs no memory of its own: the chunks of a GET share its allocation anyway.
    whole: Bytes,
}

impl Code for Chunk {
    fn encode(&self, writer: &mut impl std::io::Write) -> foyer::Result<()> {
        self.verified.encode(writer)?;
        self.bytes.encode(writer)
    }

    fn decode(reader: &mut impl std::io::Read) -> foyer::Result<Self> {
        let verified = bool::decode(reader)?;
        let bytes = Bytes::decode(reader)?;
        Ok(Self { verified, whole: bytes.clone(), bytes })
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

/// A read-ahead chunk fetched, or in flight, and not read yet.
struct Waiting {
    /// When it was asked for.
    at: Instant,
    /// For which stream.
    stream: u64,
    /// Its memory-cache entry once fetched. Held, it is pinned (foyer's LRU evicts no entry in
    /// use), so read-ahead is never evicted before it is read; dropped when it is read, or
    /// abandoned after [`AHEAD_TTL`].
    pin: Option<HybridCacheEntry<u128, Chunk>>,
}

/// The read-ahead budget's accounting.
#[derive(Default)]
struct Ahead {
    /// Read-ahead chunks fetched or in flight and not read yet.
    chunks: HashMap<u128, Waiting>,
    /// The streams reading ahead: when each last asked.
    streams: HashMap<u64, Instant>,
}

impl Ahead {
    /// Records that `stream` read or read ahead at `now`, and forgets streams quiet for
    /// [`STREAM_ACTIVE`].
    fn active(&mut self, stream: u64, now: Instant) {
        self.streams.retain(|_, at| now.duration_since(*at) < STREAM_ACTIVE);
        self.streams.insert(stream, now);
    }
}

/// Chunked, shared, cached reads of immutable objects.
pub struct ChunkCache {
    cache: HybridCache<u128, Chunk>,
    store: Arc<dyn ObjectStore>,
    chunk: u64,
    inflight: Mutex<HashMap<u128, Arc<InFlight>>>,
    ahead: Mutex<Ahead>,
    /// The most bytes `ahead` may hold.
    ahead_budget: u64,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache").field("chunk", &self.chunk).finish()
    }
}

/// A stable 64-bit name for an object key (or any path).
pub fn object_hash(key: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    key.as_ref().hash(&mut h);
    h.finish()
}

fn cache_key(object: u64, chunk: u64) -> u128 {
    ((object as u128) << 64) | chunk as u128
}

/// When `chunks` lie back to back in one GET's buffer: the buffer, and where the first starts in it.
fn one_buffer(chunks: &[Chunk]) -> Option<(&Bytes, usize)> {
    let whole = &chunks.first()?.whole;
    let same = |b: &Bytes| b.as_ptr() == whole.as_ptr() && b.len() == whole.len();
    let adjacent =
        chunks.windows(2).all(|w| w[0].bytes.as_ptr() as usize + w[0].bytes.len() == w[1].bytes.as_ptr() as usize);
    if !adjacent || !chunks.iter().all(|c| same(&c.whole)) {
        return None;
    }
    Some((whole, chunks[0].bytes.as_ptr() as usize - whole.as_ptr() as usize))
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
        Ok(Arc::new(Self {
            cache,
            store,
            chunk: config.chunk_bytes,
            inflight: Mutex::new(HashMap::new()),
            ahead: Mutex::new(Ahead::default()),
            ahead_budget: (config.memory_bytes as f64 * (1.0 - HIGH_PRIORITY_RATIO) / 2.0) as u64,
        }))
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
                    let free = |i: u64| !self.held(&inflight, cache_key(object, i));
                    let mut end = c + 1;
                    while end <= last && chunks[(end - first) as usize].is_none() && free(end) {
                        end += 1;
                    }
                    if scan {
                        // A stream's bytes its read-ahead had not started.
                        metrics::counter!(stats::READ_AHEAD_MISSED_BYTES).increment((end - c) * self.chunk);
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
        self.release(key, range.clone());
        let verified = chunks.iter().all(|c| c.verified);
        let skip = (range.start - first * self.chunk) as usize;
        let len = (range.end - range.start) as usize;
        if chunks.len() == 1 {
            return Ok(Read { bytes: chunks[0].bytes.slice(skip..skip + len), verified });
        }
        if let Some((whole, at)) = one_buffer(&chunks) {
            return Ok(Read { bytes: whole.slice(at + skip..at + skip + len), verified });
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
                    let chunk = Chunk { bytes: bytes.slice(from..to), verified, whole: bytes.clone() };
                    let props = if scan {
                        HybridCacheProperties::default().with_location(Location::InMem).with_hint(Hint::Low)
                    } else {
                        HybridCacheProperties::default()
                    };
                    this.cache.insert_with_properties(cache_key(object, c), chunk.clone(), props);
                    chunks.push(chunk);
                }
                // Read-ahead waiting to be read is pinned until it is.
                let mut ahead = this.ahead.lock().expect("invariant: cache lock not poisoned");
                for c in first..end {
                    if let Some(w) = ahead.chunks.get_mut(&cache_key(object, c)) {
                        w.pin = this.cache.memory().get(&cache_key(object, c));
                    }
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

    /// Starts fetching `range` in the background, read ahead for `stream`: GETs of at most
    /// `get_bytes` for each run of chunks neither cached nor in flight, registered before this
    /// returns, so a read that follows shares them. Only as much as the stream's share of the
    /// read-ahead budget has room for, from the start of `range` (see the module docs); a run the
    /// room would cut to less
    /// than half the share waits for more room (the reader fetches those bytes itself if it gets
    /// there first), so GETs stay large. Whether all of `range` is now cached or on its way.
    /// Errors are left for the reader that needs the bytes.
    pub fn prefetch(
        self: &Arc<Self>,
        stream: u64,
        key: &Path,
        size: u64,
        range: Range<u64>,
        index: Option<&Arc<SegmentIndex>>,
        get_bytes: u64,
    ) -> bool {
        let range = range.start..range.end.min(size);
        let per_get = get_bytes.div_ceil(self.chunk).max(1);
        if range.start >= range.end {
            return true;
        }
        let object = object_hash(key);
        let (first, last) = (range.start / self.chunk, (range.end - 1) / self.chunk);
        let mut inflight = self.inflight.lock().expect("invariant: cache lock not poisoned");
        let mut ahead = self.ahead.lock().expect("invariant: cache lock not poisoned");
        // What still waits to be read: not evicted meanwhile, its GET not failed, not abandoned.
        let now = Instant::now();
        ahead.chunks.retain(|k, w| now.duration_since(w.at) < AHEAD_TTL && self.held(&inflight, *k));
        ahead.active(stream, now);
        // This stream's room: its equal share of the budget among the streams reading ahead now
        // (so concurrent streams each keep some read-ahead), within what the budget has left.
        let budget = self.ahead_budget / self.chunk;
        let share = (budget / ahead.streams.len() as u64).max(1);
        let mine = ahead.chunks.values().filter(|w| w.stream == stream).count() as u64;
        let mut room = share.saturating_sub(mine).min(budget.saturating_sub(ahead.chunks.len() as u64));
        let missing = |inflight: &HashMap<u128, Arc<InFlight>>, c: u64| !self.held(inflight, cache_key(object, c));
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
            let take = (end - c).min(room);
            if take < end - c && take < (share / 2).max(1) {
                return false;
            }
            let mut g = c;
            while g < c + take {
                let e = (g + per_get).min(c + take);
                for i in g..e {
                    ahead.chunks.insert(cache_key(object, i), Waiting { at: now, stream, pin: None });
                }
                let f = self.start_flight(&mut inflight, key, object, size, g, e, true, index.cloned());
                tokio::spawn(async move {
                    let _ = f.flight.clone().await;
                });
                g = e;
            }
            if take < end - c {
                return false;
            }
            room -= take;
            c = end;
        }
        true
    }

    /// `stream` reads bytes `range` of `key`: read-ahead of them no longer waits to be read, and
    /// the stream counts as reading for the budget's shares (from its first read, so streams
    /// that start together share the budget from their first read-ahead).
    pub fn claim(&self, stream: u64, key: &Path, range: Range<u64>) {
        let mut ahead = self.ahead.lock().expect("invariant: cache lock not poisoned");
        ahead.active(stream, Instant::now());
        self.release_locked(&mut ahead, key, range);
    }

    /// Read-ahead of bytes `range` of `key` no longer waits to be read.
    fn release(&self, key: &Path, range: Range<u64>) {
        self.release_locked(&mut self.ahead.lock().expect("invariant: cache lock not poisoned"), key, range);
    }

    fn release_locked(&self, ahead: &mut Ahead, key: &Path, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        let object = object_hash(key);
        if !ahead.chunks.is_empty() {
            for c in range.start / self.chunk..=(range.end - 1) / self.chunk {
                ahead.chunks.remove(&cache_key(object, c));
            }
        }
    }

    /// Whether the cache holds chunk `chunk` of `key` (in memory or on disk).
    pub fn contains(&self, key: &Path, chunk: u64) -> bool {
        self.cache.contains(&cache_key(object_hash(key), chunk))
    }

    /// Whether chunk `k` is cached or in `inflight` (the caller holds the in-flight lock).
    fn held(&self, inflight: &HashMap<u128, Arc<InFlight>>, k: u128) -> bool {
        inflight.contains_key(&k) || self.cache.contains(&k)
    }

    pub async fn close(&self) {
        self.ahead.lock().expect("invariant: cache lock not poisoned").chunks.clear();
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
            memory_bytes: 2 << 20,
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
        c.prefetch(1, &key, size, 0..size, Some(&idx), size);
        let before = counting.counts();
        let mut unverified = 0;
        for r in &idx.rows {
            let read = c.get_range(&key, size, r.position..r.end(), true, Some(&idx)).await.unwrap();
            assert_eq!(&read.bytes[..], &data[r.position as usize..r.end() as usize]);
            unverified += usize::from(!read.verified);
        }
        assert_eq!(unverified, 0, "one GET of the whole object verifies every chunk");
        assert!(counting.counts().since(&before).gets() <= 1, "reads shared the read-ahead GET");
        // A read across chunks of one GET is a slice of its buffer, not a copy.
        let (x, y) = (
            c.get_range(&key, size, 100..size - 100, true, Some(&idx)).await.unwrap(),
            c.get_range(&key, size, 100..size - 100, true, Some(&idx)).await.unwrap(),
        );
        assert_eq!(&x.bytes[..], &data[100..data.len() - 100]);
        assert_eq!(x.bytes.as_ptr(), y.bytes.as_ptr(), "both reads share the GET's buffer");

        // Without the index nothing is marked: readers check those bytes themselves.
        let other = Path::from("other.log");
        counting.put(&other, PutPayload::from(data.clone())).await.unwrap();
        let read = c.get_range(&other, size, 0..idx.rows[0].end(), false, None).await.unwrap();
        assert!(!read.verified);
    }

    impl ChunkCache {
        /// Waits for every GET in flight.
        async fn settle(&self) {
            let flights: Vec<Flight> = self.inflight.lock().unwrap().values().map(|f| f.flight.clone()).collect();
            for f in flights {
                let _ = f.await;
            }
        }
    }

    /// Two objects `a.log` and `b.log` of the same `len` bytes in a counting in-memory store, and
    /// a cache of 2 MiB in front of it.
    struct TwoObjects {
        data: Vec<u8>,
        counting: Arc<CountingStore>,
        a: Path,
        b: Path,
        c: Arc<ChunkCache>,
    }

    async fn two_objects(len: u32) -> TwoObjects {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let counting = Arc::new(CountingStore::new(Arc::new(InMemory::new())));
        let (a, b) = (Path::from("a.log"), Path::from("b.log"));
        counting.put(&a, PutPayload::from(data.clone())).await.unwrap();
        counting.put(&b, PutPayload::from(data.clone())).await.unwrap();
        let c = cache(counting.clone()).await;
        TwoObjects { data, counting, a, b, c }
    }

    #[tokio::test]
    async fn read_ahead_waiting_to_be_read_stays_within_a_quarter_of_the_memory() {
        // 2 MiB of memory: 512 KiB (128 chunks of 4 KiB) of read-ahead may wait to be read.
        const K: u64 = 1 << 10;
        let TwoObjects { data, counting, a, b, c } = two_objects(2 << 20).await;
        let size = data.len() as u64;
        let (sa, sb) = (1, 2);
        // Prefetches, waits for their GETs; the bytes they fetched.
        let prefetch = async |stream: u64, key: &Path, from: u64, whole: bool| {
            let t = counting.counts();
            assert_eq!(c.prefetch(stream, key, size, from..size, None, 64 * K), whole);
            c.settle().await;
            counting.counts().since(&t).bytes_read
        };
        let read = async |key: &Path, range: Range<u64>| {
            let got = c.get_range(key, size, range.clone(), true, None).await.unwrap();
            assert_eq!(&got.bytes[..], &data[range.start as usize..range.end as usize]);
        };

        assert_eq!(prefetch(sa, &a, 0, false).await, 512 * K, "one stream: the whole budget, from the start");
        assert_eq!(prefetch(sb, &b, 0, false).await, 0, "the budget is full");
        // Reading what was fetched frees its room; a second stream now gets half of the budget.
        let t = counting.counts();
        for at in (0..256 * K).step_by(64 << 10) {
            read(&a, at..at + 64 * K).await;
        }
        assert_eq!(counting.counts().since(&t).bytes_read, 0, "the reads were served by the read-ahead");
        assert_eq!(prefetch(sb, &b, 0, false).await, 256 * K, "b's share");
        assert_eq!(prefetch(sa, &a, 512 * K, false).await, 0, "a holds its share, unread");
        // Room for less than half a share waits, so GETs stay large.
        c.claim(sa, &a, 256 * K..320 * K);
        assert_eq!(prefetch(sa, &a, 512 * K, false).await, 0, "64 KiB of room is less than half a share");
        c.claim(sa, &a, 320 * K..384 * K);
        assert_eq!(prefetch(sa, &a, 512 * K, false).await, 128 * K);
        // A range within the room is fetched whole; reads past the read-ahead fetch on demand.
        c.claim(sb, &b, 0..256 * K);
        assert_eq!(prefetch(sb, &b, size - 64 * K, true).await, 64 * K);
        let t = counting.counts();
        read(&b, 1 << 20..(1 << 20) + 100).await;
        assert_eq!(counting.counts().since(&t).bytes_read, 4 * K);
        read(&b, size - 10..size).await;
        read(&a, 384 * K..640 * K).await;
    }

    #[tokio::test]
    async fn read_ahead_waiting_to_be_read_is_not_evicted_by_other_reads() {
        // 2 MiB of memory; 512 KiB of `a` read ahead, then 4 MiB of `b` scanned through the
        // same low-priority pool: the read-ahead is pinned, so reading it fetches nothing.
        const K: u64 = 1 << 10;
        let TwoObjects { data, counting, a, b, c } = two_objects(4 << 20).await;
        let size = data.len() as u64;
        assert!(!c.prefetch(1, &a, size, 0..size, None, 64 * K), "the budget holds 512 KiB");
        c.settle().await;
        for at in (0..size).step_by(64 << 10) {
            let got = c.get_range(&b, size, at..at + 64 * K, true, None).await.unwrap();
            assert_eq!(&got.bytes[..], &data[at as usize..(at + 64 * K) as usize]);
        }
        assert!(!c.contains(&b, 0), "the scan of b went through the memory and evicted its start");
        let t = counting.counts();
        for at in (0..512 * K).step_by(64 << 10) {
            c.claim(1, &a, at..at + 64 * K);
            let got = c.get_range(&a, size, at..at + 64 * K, true, None).await.unwrap();
            assert_eq!(&got.bytes[..], &data[at as usize..(at + 64 * K) as usize]);
        }
        assert_eq!(counting.counts().since(&t).bytes_read, 0, "the read-ahead of a was still cached");
        // Read, it is no longer pinned: another scan evicts it.
        for at in (0..size).step_by(64 << 10) {
            c.get_range(&b, size, at..at + 64 * K, true, None).await.unwrap();
        }
        assert!(!c.contains(&a, 0), "read-ahead once read is evicted like any scanned chunk");
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
        c.prefetch(1, &key, size, 0..size, Some(&idx), size);
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
