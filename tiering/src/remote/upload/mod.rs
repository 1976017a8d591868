//! The upload path: sealed local segments -> the bucket -> the manifest.
//!
//! One [`Uploader`] per engine runs in the background. For each partition it finds the sealed
//! local segments past the remote log end and, for up to `upload_concurrency` of them at once:
//! 1. PUTs the segment (one PUT up to `single_put_max_bytes`, multipart above it), checking every
//!    batch's CRC on the way, so a segment that rotted on disk is never archived;
//! 2. PUTs its Parquet index;
//! 3. commits them to the manifest with one CAS of the head, together with remote retention and
//!    the deferred deletes that fell due.
//!
//! Only after the commit does the local partition learn its new tiered offset, and only then may
//! local retention delete those segments. Every object-store operation is retried with
//! exponential backoff and full jitter. Uploads are exactly-once in effect: object keys carry the
//! writer epoch and a fresh id, a retry rewrites the same key, and a segment becomes part of the
//! log only through the one manifest commit; objects of uploads that never committed (a crash, a
//! fenced writer) are orphans the sweep deletes.
//!
//! Files, by concern: this one holds the [`Uploader`] task and the pass over a partition;
//! [`remote_log`] one partition's writer side (epoch, lease, fencing); [`segment`] uploading one
//! segment and its index; [`retention`] remote retention and deferred deletes; [`sweep`] the
//! orphan sweep. Every request goes through the one retry policy of [`crate::remote::retry`].

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use tokio::sync::Semaphore;

use super::config::TieringConfig;
use super::index::{Scanner, SegmentIndex};
use super::keys::{self, parse_object_name};
use super::manifest::{Change, Manifest, SegmentEntry, SnapshotRef};
use super::reader::RemoteReader;
use crate::clock::Clock;
use crate::error::{Error, Result, remote};
use crate::local::{Partition, SegmentInfo};
use crate::stats;
use crate::task::Task;

mod remote_log;
mod retention;
mod segment;
mod sweep;

pub use remote_log::{InFlight, RemoteLog};
use retention::{delete_due, plan_retention};
use segment::{put_index, upload_segment};
use sweep::sweep;

/// What one pass over a partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub uploaded_segments: u64,
    pub uploaded_bytes: u64,
    pub dropped_segments: u64,
    pub deleted_objects: u64,
    pub orphans_deleted: u64,
}

struct Inner {
    config: TieringConfig,
    clock: Arc<dyn Clock>,
    store: Arc<dyn ObjectStore>,
    permits: Arc<Semaphore>,
    partitions: Mutex<Vec<Arc<RemoteLog>>>,
    stopping: AtomicBool,
}

/// The background uploader of an engine: a [`crate::task`] that looks for work every `poll_ms`
/// and whenever it is woken (after a roll or a registration).
pub struct Uploader {
    inner: Arc<Inner>,
    task: Task<Option<Arc<RemoteLog>>>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader").finish()
    }
}

impl Uploader {
    /// Starts the background loop on the current tokio runtime.
    pub fn start(config: TieringConfig, store: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>) -> Self {
        let inner = Arc::new(Inner {
            permits: Arc::new(Semaphore::new(config.upload_concurrency)),
            config,
            clock,
            store,
            partitions: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let (clock, poll) = (inner.clock.clone(), inner.config.poll_ms);
        let task =
            crate::task::spawn("uploader", clock, poll, Passes { inner: inner.clone(), running: Default::default() });
        Self { inner, task }
    }

    /// Adds a partition; a pass runs on it now if it has work (sealed segments the bucket lacks).
    pub fn register(&self, log: Arc<RemoteLog>) {
        self.inner.partitions.lock().expect("invariant: lock not poisoned").push(log.clone());
        self.task.send(Some(log));
    }

    /// Takes a partition off the uploader (its topic is being deleted) once any pass running on it
    /// has finished; no pass starts on it after.
    pub async fn unregister(&self, log: &Arc<RemoteLog>) {
        self.inner.partitions.lock().expect("invariant: lock not poisoned").retain(|l| !Arc::ptr_eq(l, log));
        let _done = log.work.lock().await;
    }

    /// Asks the loop to look for work now in every partition (after a roll).
    pub fn wake(&self) {
        self.task.send(None);
    }

    /// The uploader task's state (its last error, its runs).
    pub fn status(&self) -> &crate::task::TaskStatus {
        self.task.status()
    }

    /// Runs one pass over `log` now and waits for it: uploads everything sealed, commits,
    /// applies retention and due deletes.
    pub async fn pass(&self, log: &Arc<RemoteLog>) -> Result<PassReport> {
        pass(&self.inner, log, true).await
    }

    /// Writes a state snapshot of `log`'s partition (covering offsets `<= offset`) to the bucket
    /// and records it in the manifest, serialised with the partition's uploads. The object is
    /// written create-only under a fresh key; if the commit fails it is an orphan for the sweep.
    pub async fn commit_snapshot(
        &self,
        log: &Arc<RemoteLog>,
        offset: i64,
        bytes: Bytes,
        keys: u64,
    ) -> Result<SnapshotRef> {
        let _g = log.work.lock().await;
        if let Some(e) = log.fenced_error() {
            return Err(e);
        }
        let inner = &self.inner;
        let key = log.manifest().keys().snapshot(offset, log.epoch, &keys::new_id());
        let pin = InFlight::new(log);
        pin.add(&key);
        let size = bytes.len() as u64;
        let create = PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        retry(&inner.config, "upload snapshot", &key, || {
            inner.store.put_opts(&key, PutPayload::from(bytes.clone()), create.clone())
        })
        .await?;
        let now = inner.clock.now_ms();
        let snap = SnapshotRef { offset, key: key.to_string(), size, keys, created_ms: now };
        let change = Change { snapshot: Some(snap.clone()), ..Default::default() };
        log.manifest().commit(log.epoch, change, now, inner.config.delete_grace_ms).await?;
        drop(pin);
        Ok(snap)
    }

    /// Writes a rewritten segment (the output of key compaction or merging) as a new object with
    /// its index, checking every batch's CRC and that its batches cover exactly `base..next`.
    /// It is not part of the log until [`Uploader::commit_rewrite`] swaps it in; if that never
    /// happens it is an orphan for the sweep. Its keys are registered in `pin`: keep it until
    /// the commit is done, so the sweep leaves the objects alone meanwhile.
    pub async fn put_rewritten(
        &self,
        log: &Arc<RemoteLog>,
        pin: &InFlight<'_>,
        base: i64,
        next: i64,
        data: Bytes,
    ) -> Result<SegmentEntry> {
        let inner = &self.inner;
        let id = keys::new_id();
        let key = log.manifest().keys().segment(base, log.epoch, &id);
        pin.add(&key);
        let scan = data.clone();
        let index = tokio::task::spawn_blocking(move || super::index::scan_segment(&scan))
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("index task failed: {e}")) })?
            .map_err(|(position, reason)| Error::Corrupt { path: key.to_string().into(), position, reason })?;
        let size = data.len() as u64;
        let _permit = inner.permits.acquire().await.map_err(|_| Error::Closed { reason: None })?;
        retry(&inner.config, "upload rewritten segment", &key, || {
            inner.store.put(&key, PutPayload::from(data.clone()))
        })
        .await?;
        put_index(inner, log, pin, &id, (base, next), size, &index).await
    }

    /// Swaps rewritten segments (written by [`Uploader::put_rewritten`]) for the ones they
    /// replace, in one manifest commit serialised with the partition's uploads, and records the
    /// compaction state. The old objects are deleted after the grace period. On
    /// [`Error::Conflict`] (the old segments changed meanwhile) the new objects are deleted.
    pub async fn commit_rewrite(
        &self,
        log: &Arc<RemoteLog>,
        replace: Vec<super::manifest::Replace>,
        compaction: super::manifest::CompactionState,
    ) -> Result<Arc<super::manifest::Head>> {
        let result = {
            let _g = log.work.lock().await;
            if let Some(e) = log.fenced_error() {
                return Err(e);
            }
            let now = self.inner.clock.now_ms();
            let change = Change { replace: replace.clone(), compaction: Some(compaction), ..Default::default() };
            log.manifest().commit(log.epoch, change, now, self.inner.config.delete_grace_ms).await
        };
        if let Err(Error::Conflict { .. }) = &result {
            let keys = log.manifest().keys();
            for e in replace.iter().flat_map(|r| r.new.iter()) {
                for key in [e.segment_key(keys), e.index_key(keys)] {
                    if let Err(err) = self.inner.store.delete(&key).await {
                        tracing::debug!(%key, error = %err, "delete of an unused rewritten object failed; the sweep will");
                    }
                }
            }
        }
        result
    }

    /// Runs the orphan sweep over `log` now, whatever its schedule, deleting unreferenced objects
    /// older than `min_age_ms` (default: `orphan_min_age_ms`). Objects this engine is writing for
    /// a commit still to come are never deleted, whatever their age; a smaller age is for an
    /// operator who knows no other process writes the partition.
    pub async fn sweep(&self, log: &Arc<RemoteLog>, min_age_ms: Option<u64>) -> Result<u64> {
        let _g = log.work.lock().await;
        sweep(&self.inner, log, min_age_ms.unwrap_or(self.inner.config.orphan_min_age_ms)).await
    }

    /// Stops the loop; a pass in progress finishes its current request and stops.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.task.close().await;
    }
}

/// The uploader's work: on every tick or wake-up, a pass for each partition that has work due
/// and none running (passes of different partitions run concurrently, bounded by
/// `upload_concurrency` permits). An idle partition costs a few comparisons per tick: no task,
/// no request.
struct Passes {
    inner: Arc<Inner>,
    running: FuturesUnordered<tokio::task::JoinHandle<()>>,
}

impl Passes {
    fn round(&mut self, only: Option<Arc<RemoteLog>>) {
        // Reap the passes that finished.
        while let Some(Some(_)) = futures::FutureExt::now_or_never(self.running.next()) {}
        let inner = &self.inner;
        if inner.stopping.load(Ordering::SeqCst) || !inner.config.auto_upload {
            return;
        }
        let parts = match only {
            Some(log) => vec![log],
            None => inner.partitions.lock().expect("invariant: lock not poisoned").clone(),
        };
        let now = inner.clock.now_ms();
        for log in parts {
            if log.fenced().is_some() || !has_work(inner, &log, now) || log.work.try_lock().is_err() {
                continue;
            }
            let inner = inner.clone();
            self.running.push(tokio::spawn(async move {
                if let Err(e) = pass(&inner, &log, false).await {
                    tracing::warn!(partition = %log.local.name(), error = %e, "tiering pass failed; will retry");
                }
            }));
        }
    }
}

/// Whether a pass over `log` would do anything now: sealed segments the bucket lacks, deletes
/// whose grace period passed, remote retention to apply, an orphan sweep due, or an
/// error to retry. Reads in-memory state only.
fn has_work(inner: &Inner, log: &RemoteLog, now: i64) -> bool {
    let head = log.manifest().head();
    let unsent = log.local.sealed_end().is_some_and(|end| head.is_empty() || end > head.next_offset);
    let r = log.local.retention();
    // Local retention runs on the writer's tick as well; only the remote side needs a pass.
    let retention = r.remote_ms.is_some() || r.remote_bytes.is_some_and(|limit| head.totals.bytes > limit);
    let deletes = head.pending_deletes.iter().any(|p| p.delete_after_ms <= now);
    let last = log.last_sweep_ms.load(Ordering::Relaxed);
    if last == i64::MIN {
        // The first sweep of each partition falls somewhere in the first interval, so thousands
        // of partitions opened together do not all LIST at once.
        let interval = inner.config.orphan_sweep_interval_ms.max(1);
        let spread = crc32c::crc32c(log.local.name().as_bytes()) as u64 % interval;
        log.last_sweep_ms.store(now - spread as i64, Ordering::Relaxed);
    }
    let sweep = last != i64::MIN && now.saturating_sub(last) >= inner.config.orphan_sweep_interval_ms as i64;
    let failed = log.last_error.lock().expect("invariant: lock not poisoned").is_some();
    unsent || retention || deletes || sweep || failed
}

impl crate::task::Worker for Passes {
    type Msg = Option<Arc<RemoteLog>>;
    async fn tick(&mut self) -> Result<()> {
        self.round(None);
        Ok(())
    }
    async fn message(&mut self, only: Option<Arc<RemoteLog>>) -> Result<()> {
        self.round(only);
        Ok(())
    }
    async fn drain(&mut self) {
        while self.running.next().await.is_some() {}
    }
}

async fn pass(inner: &Arc<Inner>, log: &Arc<RemoteLog>, wait: bool) -> Result<PassReport> {
    let _g = if wait {
        log.work.lock().await
    } else {
        match log.work.try_lock() {
            Ok(g) => g,
            Err(_) => return Ok(PassReport::default()),
        }
    };
    if let Some(e) = log.fenced_error() {
        return Err(e);
    }
    let result = pass_locked(inner, log).await;
    *log.last_error.lock().expect("invariant: lock not poisoned") = result.as_ref().err().map(|e| e.to_string());
    if let Err(e @ Error::Fenced { epoch, current, .. }) = &result {
        tracing::error!(partition = %log.local.name(), error = %e, "fenced: uploads to this partition stopped");
        *log.fenced.lock().expect("invariant: lock not poisoned") = Some((*epoch, *current));
    }
    result
}

async fn pass_locked(inner: &Arc<Inner>, log: &Arc<RemoteLog>) -> Result<PassReport> {
    let mut report = PassReport::default();
    loop {
        let head = log.manifest().head();
        let now = inner.clock.now_ms();
        let ready: Vec<SegmentInfo> = log
            .local
            .segments()
            .into_iter()
            .filter(|s| s.sealed && s.size > 0 && (head.is_empty() || s.next_offset > head.next_offset))
            .take(inner.config.upload_concurrency)
            .collect();
        if let Some(first) = ready.first()
            && !head.is_empty()
            && first.base_offset != head.next_offset
        {
            return Err(Error::Corrupt {
                path: first.path.clone(),
                position: 0,
                reason: format!(
                    "the local segment at {} does not continue the remote log, which ends at {}",
                    first.base_offset, head.next_offset
                ),
            });
        }
        let pin = InFlight::new(log);
        let uploads = ready.iter().map(|s| upload_segment(inner, log, &pin, s));
        let entries = futures::future::try_join_all(uploads).await?;
        let deleted = delete_due(inner, log, now).await?;
        let cut = plan_retention(log, &entries, now).await?;
        if entries.is_empty() && deleted.is_empty() && cut.is_none() {
            break;
        }
        let before = head.totals.segments + entries.len() as u64;
        let uploaded: u64 = entries.iter().map(|e| e.size).sum();
        let n = entries.len() as u64;
        let change = Change { append: entries, drop_before: cut, deleted: deleted.clone(), ..Default::default() };
        let head = log.manifest().commit(log.epoch, change, now, inner.config.delete_grace_ms).await?;
        log.local.set_tiered_offset(head.next_offset);
        metrics::counter!(stats::UPLOADED_BYTES).increment(uploaded);
        report.uploaded_segments += n;
        report.uploaded_bytes += uploaded;
        report.deleted_objects += deleted.len() as u64;
        report.dropped_segments += before - head.totals.segments;
        if n == 0 {
            break;
        }
    }
    // Local retention may now delete what was tiered.
    log.local.apply_retention(inner.clock.now_ms())?;
    let now = inner.clock.now_ms();
    let last = log.last_sweep_ms.load(Ordering::Relaxed);
    if last == i64::MIN {
        log.last_sweep_ms.store(now, Ordering::Relaxed);
    } else if now.saturating_sub(last) >= inner.config.orphan_sweep_interval_ms as i64 {
        log.last_sweep_ms.store(now, Ordering::Relaxed);
        report.orphans_deleted += sweep(inner, log, inner.config.orphan_min_age_ms).await?;
    }
    Ok(report)
}

/// Retries `f` under the tiering config's policy (see [`super::retry`]).
async fn retry<T, F, Fut>(config: &TieringConfig, op: &'static str, key: &Path, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    let on_retry = |attempt, e: &object_store::Error, sleep_ms| {
        tracing::debug!(%key, op, attempt, error = %e, sleep_ms, "retrying");
        metrics::counter!(stats::UPLOAD_RETRIES, "op" => op).increment(1);
    };
    let policy = (config.retry_base_ms, config.retry_max_ms);
    crate::remote::retry::retry(config.upload_attempts, policy, on_retry, f).await.map_err(remote(op, key))
}
