//! Opening a topic's partitions: local recovery, manifest loads, the ownership decision and the
//! take-over in the bucket, many partitions at a time.

use super::*;

impl Engine {
    /// Decides for each partition whether this engine may write it ([`tiering::remote::owner`]),
    /// then registers the ones it writes with the writer, takes each over in the bucket (bumping
    /// its manifest epoch) and hands them to the uploader. A refused partition is served from the
    /// bucket alone and refuses appends with the reason.
    /// `manifests`: the partitions' manifests when already loaded (a restore), else empty.
    /// `restoring`: the partitions were just created empty at their manifests' ends by a restore.
    pub(super) async fn attach(
        &self,
        name: &str,
        config: TopicConfig,
        partitions: Vec<Opened>,
        manifests: Vec<Arc<Manifest>>,
        restoring: bool,
    ) -> Result<Arc<Topic>> {
        let mut manifests = manifests.into_iter();
        let jobs: Vec<_> = partitions.into_iter().map(|opened| (opened, manifests.next())).collect();
        use futures::{StreamExt, TryStreamExt};
        let logs: Vec<Arc<PartitionLog>> = futures::stream::iter(jobs)
            .map(|(opened, manifest)| self.attach_partition(name, &config, opened, manifest, restoring))
            .buffered(OPEN_PARALLELISM)
            .try_collect()
            .await?;
        Ok(Arc::new(Topic { config, logs }))
    }

    /// One partition of [`Engine::attach`].
    async fn attach_partition(
        &self,
        name: &str,
        config: &TopicConfig,
        opened: Opened,
        manifest: Option<Arc<Manifest>>,
        restoring: bool,
    ) -> Result<Arc<PartitionLog>> {
        use tiering::remote::owner::{LocalLog, Ownership, decide};
        let chunk_segments = self.inner.config.tiering.manifest_chunk_segments;
        let read_ahead = self.inner.config.tiering.cache.read_ahead_bytes;
        let id = match &opened {
            Opened::Log(p) => p.id(),
            Opened::Damaged { id, .. } => *id,
        };
        let manifest = match manifest {
            Some(m) => m,
            None => Manifest::load(self.inner.store.clone(), name, id, chunk_segments)
                .await
                .map_err(|e| Error::storage(name, id, e))?,
        };
        let reader = RemoteReader::new(manifest.clone(), self.inner.cache.clone(), read_ahead);
        let p = match opened {
            Opened::Log(p) => p,
            Opened::Damaged { reason, .. } => {
                let reason = format!(
                    "{reason}; served from the bucket, appends refused: stop the engine and run `tierlog repair --topic {name} --partition {id}` to cut the local log back to its last intact batch"
                );
                tracing::error!(topic = name, partition = id, %reason, "partition damaged");
                let tiers = TieredPartition { local: None, remote: Some(reader) };
                return Ok(Arc::new(PartitionLog::reading(name, id, tiers, Some(("damaged", reason)))));
            }
        };
        if self.inner.reader {
            // Registered so that closing syncs what journal recovery wrote into it.
            self.inner.writer.register(p.clone()).await?;
            let tiers = TieredPartition { local: Some(p), remote: Some(reader) };
            return Ok(Arc::new(PartitionLog::reading(name, id, tiers, None)));
        }
        let local = LocalLog {
            name: p.name(),
            log_start_offset: p.log_start_offset(),
            log_end_offset: p.high_watermark(),
            writer: &self.inner.writer_id,
            restoring,
            take_over: self.inner.config.take_over,
        };
        // Set when the local log starts afresh at the bucket's end.
        let mut fresh = restoring;
        let p = match decide(&local, &manifest.head()) {
            Ownership::Continue => p,
            Ownership::Refuse { reason } => {
                tracing::error!(topic = name, partition = id, %reason, "partition refused: served from the bucket, appends fail");
                metrics::gauge!(tiering::stats::REFUSED_PARTITIONS, "topic" => name.to_owned()).increment(1.0);
                let tiers = TieredPartition { local: None, remote: Some(reader) };
                return Ok(Arc::new(PartitionLog::reading(name, id, tiers, Some(("refused", reason)))));
            }
            Ownership::Reset { next_offset, reason } => {
                let (dir, cfg, clock, topic) =
                    (p.dir().to_owned(), config.log.clone(), self.inner.clock.clone(), name.to_owned());
                drop(p);
                let (dropped, p) = blocking(move || -> tiering::Result<_> {
                    let dropped = tiering::local::recover::discard_log(&tiering::local::StdFs, &dir)?;
                    Ok((dropped, Partition::open_at(&topic, id, &dir, cfg, clock, next_offset)?))
                })
                .await?
                .map_err(|e| Error::storage(name, id, e))?;
                tracing::warn!(topic = name, partition = id, dropped_bytes = dropped, next_offset, %reason, "local log dropped");
                fresh = true;
                p
            }
        };
        // A log that starts where the bucket's ends (restored, or reset to the bucket's end)
        // learns its idempotent producers from the bucket's newest segment indexes.
        let head = manifest.head();
        if fresh && !head.is_empty() && p.high_watermark() == head.next_offset {
            let producers =
                reader.producer_state(self.inner.clock.now_ms()).await.map_err(|e| Error::storage(name, id, e))?;
            p.seed_producers(producers);
        }
        let now = self.inner.clock.now_ms();
        let remote = RemoteLog::acquire(p.clone(), reader.clone(), &self.inner.writer_id, now)
            .await
            .map_err(|e| Error::storage(name, id, e))?;
        let tiers = TieredPartition { local: Some(p.clone()), remote: Some(reader) };
        let writing = Writing {
            local: p,
            remote,
            writer: self.inner.writer.clone(),
            clock: self.inner.clock.clone(),
            lease_ms: self.inner.config.lease_ms,
            require_keys: config.cleanup_policy.compacts(),
        };
        let log = Arc::new(PartitionLog::writing(name, id, tiers, writing));
        log.start(&self.inner.uploader).await.map_err(|e| Error::storage(name, id, e))?;
        Ok(log)
    }
}

/// Opens (recovering) every partition folder of a topic. Damage that recovery will not repair
/// silently makes that partition [`Opened::Damaged`]; any other error fails the open.
pub(super) fn open_partitions(
    data_dir: &Path,
    name: &str,
    cfg: &TopicConfig,
    clock: &Arc<dyn Clock>,
    ids: std::ops::Range<u32>,
) -> Result<Vec<Opened>> {
    in_parallel(ids, |i| {
        match Partition::open(name, i, &partition_dir(data_dir, name, i), cfg.log.clone(), clock.clone()) {
            Ok(p) => Ok(Opened::Log(p)),
            Err(e @ tiering::Error::Corrupt { .. }) => {
                metrics::counter!(tiering::stats::DAMAGED_PARTITIONS).increment(1);
                Ok(Opened::Damaged { id: i, reason: e.to_string() })
            }
            Err(e) => Err(Error::storage(name, i, e)),
        }
    })
}

/// The manifests of a topic's partitions, loaded [`OPEN_PARALLELISM`] at a time.
pub(super) async fn load_manifests(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    partitions: u32,
    chunk_segments: usize,
) -> Result<Vec<Arc<Manifest>>> {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(0..partitions)
        .map(|p| async move {
            Manifest::load(store.clone(), name, p, chunk_segments).await.map_err(|e| Error::storage(name, p, e))
        })
        .buffered(OPEN_PARALLELISM)
        .try_collect()
        .await
}

/// How many partitions are opened, created or attached at once: their work is mostly waiting
/// for fsyncs and object-store requests, which the disk and the store serve better together.
const OPEN_PARALLELISM: usize = 64;

/// `f` over every id of `ids` on up to [`OPEN_PARALLELISM`] threads; the results in id order, or
/// the error of the lowest failing id. Blocking: call it off the async runtime.
pub(super) fn in_parallel<T: Send>(ids: std::ops::Range<u32>, f: impl Fn(u32) -> Result<T> + Sync) -> Result<Vec<T>> {
    let n = ids.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = OPEN_PARALLELISM.min(n);
    let mut results: Vec<(u32, Result<T>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= n {
                            return out;
                        }
                        let id = ids.start + k as u32;
                        out.push((id, f(id)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("invariant: partition open threads do not panic")).collect()
    });
    results.sort_unstable_by_key(|(id, _)| *id);
    results.into_iter().map(|(_, r)| r).collect()
}
