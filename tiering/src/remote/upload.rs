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

/// One partition's remote tier as its writer holds it.
pub struct RemoteLog {
    local: Arc<Partition>,
    reader: Arc<RemoteReader>,
    epoch: u64,
    /// Set once the partition was fenced (`(epoch, current)`): no more uploads.
    fenced: Mutex<Option<(u64, u64)>>,
    /// Held while a pass runs; the background loop skips a busy partition.
    work: tokio::sync::Mutex<()>,
    last_sweep_ms: AtomicI64,
    /// Set when the last pass failed (for `describe` and tests).
    last_error: Mutex<Option<String>>,
    /// Clock time (ms) at which the bucket last confirmed this writer's epoch: the lease.
    confirmed_ms: AtomicI64,
    /// Held while the lease is renewed, so concurrent appends share one GET.
    renewing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteLog").field("partition", &self.local.name()).field("epoch", &self.epoch).finish()
    }
}

impl RemoteLog {
    /// Becomes the partition's writer: bumps the manifest epoch (fencing any previous writer) and
    /// tells the local partition how far the bucket already holds its log.
    pub async fn acquire(
        local: Arc<Partition>,
        reader: Arc<RemoteReader>,
        writer: &str,
        now_ms: i64,
    ) -> Result<Arc<Self>> {
        let epoch = reader.manifest().acquire(writer).await?;
        local.set_tiered_offset(reader.manifest().head().next_offset);
        Ok(Arc::new(Self {
            local,
            reader,
            epoch,
            fenced: Mutex::new(None),
            work: tokio::sync::Mutex::new(()),
            last_sweep_ms: AtomicI64::new(i64::MIN),
            last_error: Mutex::new(None),
            confirmed_ms: AtomicI64::new(now_ms),
            renewing: tokio::sync::Mutex::new(()),
        }))
    }

    /// The append path's fencing check: fails with [`Error::Fenced`] once this writer is known to
    /// be replaced, and otherwise makes sure the bucket confirmed its epoch less than `lease_ms`
    /// ago. When the last confirmation is older, one conditional GET of the manifest head renews
    /// it (304 Not Modified: still ours); concurrent callers share that GET. So a writer that
    /// another node took over stops acknowledging within `lease_ms` of the take-over (plus one
    /// GET), not at its next manifest commit. A bucket that cannot be reached fails the check
    /// (`Remote`): without it this writer cannot know it still owns the partition.
    /// `lease_ms == 0` turns the check off.
    pub async fn check_lease(&self, now_ms: i64, lease_ms: u64) -> Result<()> {
        if let Some(e) = self.fenced_error() {
            return Err(e);
        }
        let fresh = |now: i64| lease_ms == 0 || now - self.confirmed_ms.load(Ordering::Acquire) < lease_ms as i64;
        if fresh(now_ms) {
            return Ok(());
        }
        let _renewing = self.renewing.lock().await;
        if fresh(now_ms) {
            return Ok(());
        }
        if let Some(e) = self.fenced_error() {
            return Err(e);
        }
        metrics::counter!(stats::LEASE_CHECKS).increment(1);
        match self.manifest().confirm_epoch(self.epoch).await {
            Ok(()) => {
                self.confirmed_ms.fetch_max(now_ms, Ordering::AcqRel);
                Ok(())
            }
            Err(e @ Error::Fenced { epoch, current, .. }) => {
                tracing::error!(partition = %self.local.name(), error = %e, "fenced: appends and uploads stopped");
                *self.fenced.lock().expect("invariant: lock not poisoned") = Some((epoch, current));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    pub fn local(&self) -> &Arc<Partition> {
        &self.local
    }
    pub fn reader(&self) -> &Arc<RemoteReader> {
        &self.reader
    }
    pub fn manifest(&self) -> &Arc<Manifest> {
        self.reader.manifest()
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// Why this writer stopped uploading, if it was fenced.
    pub fn fenced(&self) -> Option<String> {
        self.fenced_error().map(|e| e.to_string())
    }

    /// The [`Error::Fenced`] this writer got, if it was fenced.
    pub fn fenced_error(&self) -> Option<Error> {
        let f = *self.fenced.lock().expect("invariant: lock not poisoned");
        f.map(|(epoch, current)| Error::Fenced { partition: self.local.name().to_owned(), epoch, current })
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("invariant: lock not poisoned").clone()
    }
}

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
    task: Task<()>,
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

    pub fn register(&self, log: Arc<RemoteLog>) {
        self.inner.partitions.lock().expect("invariant: lock not poisoned").push(log);
        self.wake();
    }

    /// Asks the loop to look for work now (after a roll).
    pub fn wake(&self) {
        self.task.send(());
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
        Ok(snap)
    }

    /// Writes a rewritten segment (the output of key compaction or merging) as a new object with
    /// its index, checking every batch's CRC and that its batches cover exactly `base..next`.
    /// It is not part of the log until [`Uploader::commit_rewrite`] swaps it in; if that never
    /// happens it is an orphan for the sweep.
    pub async fn put_rewritten(&self, log: &Arc<RemoteLog>, base: i64, next: i64, data: Bytes) -> Result<SegmentEntry> {
        let inner = &self.inner;
        let id = keys::new_id();
        let key = log.manifest().keys().segment(base, log.epoch, &id);
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
        put_index(inner, log, &id, (base, next), size, &index).await
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

    /// Runs the orphan sweep over `log` now, whatever its schedule.
    pub async fn sweep(&self, log: &Arc<RemoteLog>) -> Result<u64> {
        let _g = log.work.lock().await;
        sweep(&self.inner, log).await
    }

    /// Stops the loop; a pass in progress finishes its current request and stops.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.task.close().await;
    }
}

/// The uploader's work: on every tick or wake-up, a pass for each partition that has none running
/// (passes of different partitions run concurrently, bounded by `upload_concurrency` permits).
struct Passes {
    inner: Arc<Inner>,
    running: FuturesUnordered<tokio::task::JoinHandle<()>>,
}

impl Passes {
    fn round(&mut self) {
        // Reap the passes that finished.
        while let Some(Some(_)) = futures::FutureExt::now_or_never(self.running.next()) {}
        let inner = &self.inner;
        if inner.stopping.load(Ordering::SeqCst) || !inner.config.auto_upload {
            return;
        }
        let parts = inner.partitions.lock().expect("invariant: lock not poisoned").clone();
        for log in parts {
            if log.fenced().is_some() || log.work.try_lock().is_err() {
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

impl crate::task::Worker for Passes {
    type Msg = ();
    async fn tick(&mut self) -> Result<()> {
        self.round();
        Ok(())
    }
    async fn message(&mut self, (): ()) -> Result<()> {
        self.round();
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
        let uploads = ready.iter().map(|s| upload_segment(inner, log, s));
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
        report.orphans_deleted += sweep(inner, log).await?;
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
    super::retry::retry(config.upload_attempts, policy, on_retry, f).await.map_err(remote(op, key))
}

fn read_file(path: &std::path::Path, pos: u64, len: usize) -> Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(Error::io("open segment for upload", path))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, pos).map_err(Error::io("read segment for upload", path))?;
    Ok(Bytes::from(buf))
}

async fn read_part(path: &std::path::Path, pos: u64, len: usize) -> Result<Bytes> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || read_file(&path, pos, len))
        .await
        .map_err(|e| Error::Closed { reason: Some(format!("upload reader task failed: {e}")) })?
}

async fn upload_segment(inner: &Arc<Inner>, log: &RemoteLog, s: &SegmentInfo) -> Result<SegmentEntry> {
    let started = std::time::Instant::now();
    let keys = log.manifest().keys().clone();
    let id = keys::new_id();
    let key = keys.segment(s.base_offset, log.epoch, &id);
    let config = &inner.config;
    let corrupt = |(position, reason): (u64, String)| Error::Corrupt { path: s.path.clone(), position, reason };
    let kind;
    let index: SegmentIndex = if s.size <= config.single_put_max_bytes {
        kind = "put";
        let _permit = inner.permits.acquire().await.map_err(|_| Error::Closed { reason: None })?;
        let data = read_part(&s.path, 0, s.size as usize).await?;
        let scan = data.clone();
        // The scan (every batch's CRC) runs on the blocking pool while the PUT is on the wire;
        // a bad batch fails the upload before the commit, so nothing damaged is ever referenced.
        let scan = tokio::task::spawn_blocking(move || super::index::scan_segment(&scan));
        let put = retry(config, "upload segment", &key, || inner.store.put(&key, PutPayload::from(data.clone())));
        let (scanned, put) = tokio::join!(scan, put);
        let index =
            scanned.map_err(|e| Error::Closed { reason: Some(format!("index task failed: {e}")) })?.map_err(corrupt)?;
        put?;
        index
    } else {
        kind = "multipart";
        let mut attempt = 0;
        loop {
            attempt += 1;
            match upload_multipart(inner, &key, s).await {
                Ok(index) => break index,
                Err(e @ Error::Corrupt { .. }) => return Err(e),
                Err(e) if attempt < config.upload_attempts => {
                    tracing::debug!(%key, attempt, error = %e, "multipart upload failed; retrying");
                    metrics::counter!(stats::UPLOAD_RETRIES, "op" => "multipart upload").increment(1);
                    super::retry::pause(config.retry_base_ms, config.retry_max_ms, attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    };
    let bounds = (s.base_offset, s.next_offset);
    let entry = put_index(inner, log, &id, bounds, s.size, &index).await.map_err(|e| match e {
        Error::Corrupt { position, reason, .. } => corrupt((position, reason)),
        e => e,
    })?;
    metrics::counter!(stats::UPLOADED_SEGMENTS, "kind" => kind).increment(1);
    metrics::histogram!(stats::UPLOAD_SEGMENT_SECONDS).record(started.elapsed().as_secs_f64());
    tracing::debug!(partition = %log.local.name(), base = s.base_offset, size = s.size, kind, "segment uploaded");
    Ok(entry)
}

/// Checks that a segment object's index covers exactly `base..next`, PUTs the index, and returns
/// the segment's manifest entry (the segment object itself is already written).
async fn put_index(
    inner: &Arc<Inner>,
    log: &RemoteLog,
    id: &str,
    (base, next): (i64, i64),
    size: u64,
    index: &SegmentIndex,
) -> Result<SegmentEntry> {
    let keys = log.manifest().keys();
    let key = keys.segment(base, log.epoch, id);
    let corrupt = |reason: String| Error::Corrupt { path: key.to_string().into(), position: 0, reason };
    let last = index.rows.last().ok_or_else(|| corrupt("segment has no batches".into()))?;
    if index.rows[0].base_offset != base || last.last_offset + 1 != next {
        return Err(corrupt(format!(
            "segment holds {}..={}, not {base}..{next}",
            index.rows[0].base_offset, last.last_offset
        )));
    }
    let index_key = keys.index(base, log.epoch, id);
    let encoded = index.encode().map_err(|e| corrupt(format!("encode index: {e}")))?;
    retry(&inner.config, "upload index", &index_key, || inner.store.put(&index_key, PutPayload::from(encoded.clone())))
        .await?;
    Ok(SegmentEntry {
        base_offset: base,
        next_offset: next,
        min_timestamp: index.first_timestamp(),
        max_timestamp: index.max_timestamp(),
        size,
        index_size: encoded.len() as u64,
        records: index.records(),
        batches: index.rows.len() as u64,
        epoch: log.epoch,
        id: id.to_owned(),
        uploaded_ms: inner.clock.now_ms(),
    })
}

/// One multipart upload attempt: parts read from the file one at a time, at most two in flight,
/// each under an upload permit, and each scanned for the index (CRCs) on the blocking pool while
/// it is on the wire. Aborted on any failure.
async fn upload_multipart(inner: &Arc<Inner>, key: &Path, s: &SegmentInfo) -> Result<SegmentIndex> {
    let mut upload = inner.store.put_multipart(key).await.map_err(remote("start multipart upload", key))?;
    let part = inner.config.part_bytes;
    let mut scanner = Some(Scanner::default());
    let scan_error = |(p, r)| Error::Corrupt { path: s.path.clone(), position: p, reason: r };
    let mut in_flight = FuturesUnordered::new();
    let mut pos = 0u64;
    let result: Result<()> = async {
        while pos < s.size {
            let len = part.min(s.size - pos) as usize;
            let permit = inner.permits.clone().acquire_owned().await.map_err(|_| Error::Closed { reason: None })?;
            let data = read_part(&s.path, pos, len).await?;
            let fut = upload.put_part(PutPayload::from(data.clone()));
            // A task of its own: the part progresses (and frees its permit) while this loop waits
            // for the next permit.
            in_flight.push(tokio::spawn(async move {
                let r = fut.await;
                drop(permit);
                r
            }));
            let mut sc = scanner.take().expect("invariant: the scanner is returned after each part");
            let (sc, fed) = tokio::task::spawn_blocking(move || {
                let fed = sc.feed(&data);
                (sc, fed)
            })
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("index task failed: {e}")) })?;
            scanner = Some(sc);
            fed.map_err(scan_error)?;
            pos += len as u64;
            while in_flight.len() >= 2 {
                if let Some(r) = in_flight.next().await {
                    part_result(r).map_err(remote("upload part", key))?;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            part_result(r).map_err(remote("upload part", key))?;
        }
        Ok(())
    }
    .await;
    drop(in_flight);
    match result {
        Ok(()) => {
            let index =
                scanner.expect("invariant: the scanner is returned after each part").finish().map_err(scan_error)?;
            upload.complete().await.map_err(remote("complete multipart upload", key))?;
            Ok(index)
        }
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::debug!(%key, error = %abort, "abort of a failed multipart upload failed; the sweep will remove it");
            }
            Err(e)
        }
    }
}

fn part_result(r: std::result::Result<object_store::Result<()>, tokio::task::JoinError>) -> object_store::Result<()> {
    r.unwrap_or_else(|e| Err(object_store::Error::Generic { store: "upload", source: Box::new(e) }))
}

/// Deletes the pending objects whose grace period has passed; returns their keys.
async fn delete_due(inner: &Arc<Inner>, log: &RemoteLog, now: i64) -> Result<Vec<String>> {
    let head = log.manifest().head();
    let mut done = Vec::new();
    for p in head.pending_deletes.iter().filter(|p| p.delete_after_ms <= now) {
        let key = Path::from(p.key.as_str());
        match retry(&inner.config, "delete object", &key, || inner.store.delete(&key)).await {
            Ok(()) => {}
            Err(Error::Remote { error: object_store::Error::NotFound { .. }, .. }) => {}
            Err(e) => return Err(e),
        }
        metrics::counter!(stats::REMOTE_DELETED_OBJECTS, "reason" => "retention").increment(1);
        done.push(p.key.clone());
    }
    Ok(done)
}

/// The offset remote retention cuts the log at, if it drops anything: the oldest segments whose
/// newest record is past `remote_retention_ms`, or while the log is over `remote_retention_bytes`.
async fn plan_retention(log: &RemoteLog, new: &[SegmentEntry], now: i64) -> Result<Option<i64>> {
    let config = log.local.config();
    let (by_time, by_size) = (config.remote_retention_ms, config.remote_retention_bytes);
    if by_time.is_none() && by_size.is_none() {
        return Ok(None);
    }
    let head = log.manifest().head();
    let mut total = head.totals.bytes + new.iter().map(|e| e.size).sum::<u64>();
    let mut cut = None;
    let mut check = |e: &SegmentEntry| {
        let expired = by_time.is_some_and(|ms| e.max_timestamp < now - ms as i64);
        let oversize = by_size.is_some_and(|limit| total > limit);
        if expired || oversize {
            total -= e.size;
            cut = Some(e.next_offset);
            true
        } else {
            false
        }
    };
    let mut going = true;
    log.manifest()
        .scan(|e| {
            going = check(e);
            going
        })
        .await?;
    if going {
        for e in new {
            if !check(e) {
                break;
            }
        }
    }
    Ok(cut)
}

/// Deletes objects under the partition's prefix that the manifest does not reference and that
/// are older than `orphan_min_age_ms`: what failed uploads, crashes between upload and commit,
/// and fenced writers leave behind. It LISTs; it runs rarely.
async fn sweep(inner: &Arc<Inner>, log: &RemoteLog) -> Result<u64> {
    let manifest = log.manifest();
    let keys = manifest.keys();
    let head = manifest.head();
    // Compared with the objects' last-modified times, which the store's wall clock wrote.
    let now_wall = (crate::clock::wall_clock_nanos() / 1_000_000) as i64;
    let mut deleted = 0;
    for dir in [keys.segments_dir(), Path::from(format!("{}/manifest/chunks", keys.root())), keys.snapshots_dir()] {
        let mut listing = inner.store.list(Some(&dir));
        let mut orphans = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(remote("list", &dir))?;
            if now_wall - meta.last_modified.timestamp_millis() < inner.config.orphan_min_age_ms as i64 {
                continue;
            }
            let key = meta.location.to_string();
            if head.pending_deletes.iter().any(|p| p.key == key) {
                continue;
            }
            let Some((base, epoch, id)) = meta.location.filename().and_then(parse_object_name) else { continue };
            let referenced = if key.contains("/manifest/chunks/") {
                head.chunks.iter().any(|c| c.id == id && c.epoch == epoch)
            } else if key.contains("/snapshots/") {
                head.snapshots.iter().any(|s| s.key == key)
            } else {
                manifest
                    .find_offset(base)
                    .await?
                    .is_some_and(|e| e.base_offset == base && e.epoch == epoch && e.id == id)
            };
            if !referenced {
                orphans.push(meta.location);
            }
        }
        for key in orphans {
            match inner.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote("delete orphan", &key)(e)),
            }
            tracing::info!(%key, "deleted an orphaned object");
            metrics::counter!(stats::REMOTE_DELETED_OBJECTS, "reason" => "orphan").increment(1);
            deleted += 1;
        }
    }
    Ok(deleted)
}
