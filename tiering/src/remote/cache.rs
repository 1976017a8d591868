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

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, DeviceBuilder, EvictionConfig, FsDeviceBuilder, Hint, HybridCache, HybridCacheBuilder,
    HybridCacheProperties, Location, LruConfig, RecoverMode,
};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::config::CacheConfig;
use crate::error::{Error, Result, remote};
use crate::stats;

/// Share of the memory tier kept for chunks of non-scan reads.
pub const HIGH_PRIORITY_RATIO: f64 = 0.5;

type Flight = Shared<BoxFuture<'static, std::result::Result<Arc<Vec<Bytes>>, Arc<Error>>>>;

/// Where the chunks of one in-flight GET start.
struct InFlight {
    first_chunk: u64,
    flight: Flight,
}

/// Chunked, shared, cached reads of immutable objects.
pub struct ChunkCache {
    cache: HybridCache<u128, Bytes>,
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
    /// Builds the cache; the disk tier lives in `dir` (emptied: cached chunks are not trusted
    /// across restarts).
    pub async fn new(store: Arc<dyn ObjectStore>, config: &CacheConfig, dir: &std::path::Path) -> Result<Arc<Self>> {
        let memory = HybridCacheBuilder::new()
            .with_name("tierlog-remote")
            .memory(config.memory_bytes as usize)
            // Each shard evicts on its own with capacity / shards: keep at least 64 chunks per
            // shard so that the pools mean something.
            .with_shards(((config.memory_bytes / config.chunk_bytes) / 64).clamp(1, 16) as usize)
            .with_eviction_config(EvictionConfig::Lru(LruConfig { high_priority_pool_ratio: HIGH_PRIORITY_RATIO }))
            .with_weighter(|_k: &u128, v: &Bytes| v.len() + 16);
        let storage = memory.storage();
        let cache = if config.disk_bytes > 0 {
            let device = FsDeviceBuilder::new(dir)
                .with_capacity(config.disk_bytes as usize)
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
    /// the module docs).
    pub async fn get_range(self: &Arc<Self>, key: &Path, size: u64, range: Range<u64>, scan: bool) -> Result<Bytes> {
        if range.start >= range.end || range.end > size {
            return Err(Error::Corrupt {
                path: key.as_ref().into(),
                position: range.start,
                reason: format!("range {range:?} is outside the object's {size} bytes"),
            });
        }
        let object = object_hash(key);
        let (first, last) = (range.start / self.chunk, (range.end - 1) / self.chunk);
        let mut chunks: Vec<Option<Bytes>> = Vec::with_capacity((last - first + 1) as usize);
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
            let existing =
                self.inflight.lock().expect("invariant: cache lock not poisoned").get(&cache_key(object, c)).cloned();
            let f = match existing {
                Some(f) => {
                    metrics::counter!(stats::CACHE_LOOKUPS, "result" => "shared").increment(1);
                    f
                }
                None => {
                    let mut end = c + 1;
                    while end <= last && chunks[(end - first) as usize].is_none() {
                        end += 1;
                    }
                    self.start_flight(key, object, size, c, end, scan)
                }
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
        let chunks: Vec<Bytes> = chunks.into_iter().map(|c| c.expect("invariant: every chunk was fetched")).collect();
        let skip = (range.start - first * self.chunk) as usize;
        let len = (range.end - range.start) as usize;
        if chunks.len() == 1 {
            return Ok(chunks[0].slice(skip..skip + len));
        }
        let mut out = BytesMut::with_capacity(len);
        let mut need = (skip, len);
        for ch in &chunks {
            let take = (ch.len() - need.0).min(need.1);
            out.extend_from_slice(&ch[need.0..need.0 + take]);
            need = (0, need.1 - take);
        }
        Ok(out.freeze())
    }

    /// Fetches chunks `[first, end)` with one GET, caches them, and registers the flight so
    /// concurrent readers share it.
    fn start_flight(
        self: &Arc<Self>,
        key: &Path,
        object: u64,
        size: u64,
        first: u64,
        end: u64,
        scan: bool,
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
                let mut chunks = Vec::with_capacity((end - first) as usize);
                for (i, c) in (first..end).enumerate() {
                    let from = i * this.chunk as usize;
                    let to = (from + this.chunk as usize).min(bytes.len());
                    let chunk = bytes.slice(from..to);
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
        let mut inflight = self.inflight.lock().expect("invariant: cache lock not poisoned");
        for c in first..end {
            inflight.insert(cache_key(object, c), f.clone());
        }
        f
    }

    /// Starts fetching `range` in the background (read-ahead): one GET per run of chunks neither
    /// cached nor in flight, registered before this returns, so a read that follows shares it.
    /// Errors are left for the reader that needs the bytes.
    pub fn prefetch(self: &Arc<Self>, key: &Path, size: u64, range: Range<u64>) {
        let range = range.start..range.end.min(size);
        if range.start >= range.end {
            return;
        }
        let object = object_hash(key);
        let (first, last) = (range.start / self.chunk, (range.end - 1) / self.chunk);
        let missing = |c: u64| {
            let k = cache_key(object, c);
            !self.cache.contains(&k)
                && !self.inflight.lock().expect("invariant: cache lock not poisoned").contains_key(&k)
        };
        let mut c = first;
        while c <= last {
            if !missing(c) {
                c += 1;
                continue;
            }
            let mut end = c + 1;
            while end <= last && missing(end) {
                end += 1;
            }
            let f = self.start_flight(key, object, size, c, end, true);
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
