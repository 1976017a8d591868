//! One partition's remote tier as its writer holds it: the epoch it took, the lease, fencing.

use super::*;

/// One partition's remote tier as its writer holds it.
pub struct RemoteLog {
    pub(super) local: Arc<Partition>,
    pub(super) reader: Arc<RemoteReader>,
    pub(super) epoch: u64,
    /// Set once the partition was fenced (`(epoch, current)`): no more uploads.
    pub(super) fenced: Mutex<Option<(u64, u64)>>,
    /// Held while a pass runs; the background loop skips a busy partition.
    pub(super) work: tokio::sync::Mutex<()>,
    pub(super) last_sweep_ms: AtomicI64,
    /// Set when the last pass failed (for `describe` and tests).
    pub(super) last_error: Mutex<Option<String>>,
    /// Clock time (ms) at which the bucket last confirmed this writer's epoch: the lease.
    pub(super) confirmed_ms: AtomicI64,
    /// Held while the lease is renewed, so concurrent appends share one GET.
    pub(super) renewing: tokio::sync::Mutex<()>,
    /// Keys of objects being written for a manifest commit that has not happened yet (see
    /// [`InFlight`]): the orphan sweep never deletes them.
    pub(super) in_flight: Mutex<std::collections::HashSet<String>>,
    /// Where the bucket's log ended when this writer took the partition.
    acquired_next_offset: i64,
}

/// The objects one upload, rewrite or snapshot writes before the manifest commit that will
/// reference them. Each key is registered on its partition before its first PUT is sent and
/// stays registered until this is dropped (after the commit, or once the work failed), so the
/// orphan sweep never deletes an object a pending commit will reference, whatever the clocks of
/// the node and the store say about its age.
pub struct InFlight<'a> {
    log: &'a RemoteLog,
    keys: Mutex<Vec<String>>,
}

impl<'a> InFlight<'a> {
    pub fn new(log: &'a RemoteLog) -> Self {
        Self { log, keys: Mutex::new(Vec::new()) }
    }

    pub(super) fn add(&self, key: &Path) {
        let key = key.to_string();
        self.log.in_flight.lock().expect("invariant: lock not poisoned").insert(key.clone());
        self.keys.lock().expect("invariant: lock not poisoned").push(key);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut *self.keys.lock().expect("invariant: lock not poisoned"));
        let mut set = self.log.in_flight.lock().expect("invariant: lock not poisoned");
        for k in keys {
            set.remove(&k);
        }
    }
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
        let acquired_next_offset = reader.manifest().head().next_offset;
        local.set_tiered_offset(acquired_next_offset);
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
            in_flight: Mutex::new(Default::default()),
            acquired_next_offset,
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
    /// Where the bucket's log ended when this writer took the partition: what lies past it was
    /// uploaded by this writer.
    pub fn acquired_next_offset(&self) -> i64 {
        self.acquired_next_offset
    }

    /// Whether `key` is being written for a commit that has not happened yet.
    pub fn is_in_flight(&self, key: &str) -> bool {
        self.in_flight.lock().expect("invariant: lock not poisoned").contains(key)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("invariant: lock not poisoned").clone()
    }
}
