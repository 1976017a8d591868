//! The manifest head: loading it, polling it (replicas), confirming the epoch (the lease), taking
//! the partition over (bumping the epoch with a CAS), and installing what a write returned.

use super::*;

/// Attempts to take a manifest over before giving up (backing off between them: about 20 s in all).
pub(super) const ACQUIRE_ATTEMPTS: u32 = 24;

pub(super) async fn read_head(
    store: &Arc<dyn ObjectStore>,
    keys: &PartitionKeys,
) -> Result<Option<(Head, UpdateVersion)>> {
    let key = keys.head();
    let r = match store.get(&key).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(remote("read manifest head", &key)(e)),
    };
    let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
    let bytes = r.bytes().await.map_err(remote("read manifest head", &key))?;
    Ok(Some((Head::decode(&key, &bytes)?, version)))
}

impl Manifest {
    /// Re-reads the head from the bucket (for readers that do not write).
    pub async fn refresh(&self) -> Result<()> {
        if let Some((h, v)) = read_head(&self.store, &self.keys).await? {
            self.set_head(h);
            *self.version.lock().expect("invariant: manifest lock not poisoned") = Some(v);
        }
        Ok(())
    }

    /// For readers that do not write (replicas): fetches the head only if it changed since the
    /// one held, with a conditional GET (`If-None-Match` on its ETag). Returns whether it changed.
    /// One GET per call, never a LIST.
    pub async fn poll(&self) -> Result<bool> {
        let (head, version) = match self.fetch_if_changed("poll manifest head").await {
            Ok(Some(changed)) => changed,
            // Unchanged, or no writer has created the head yet.
            Ok(None) | Err(Error::Remote { error: object_store::Error::NotFound { .. }, .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.set_head(head);
        *self.version.lock().expect("invariant: manifest lock not poisoned") = Some(version);
        Ok(true)
    }

    /// For the writer of `epoch`: checks with a conditional GET (`If-None-Match` on the ETag it
    /// last read or wrote) that the bucket's head still carries its epoch. Unchanged (304) or
    /// changed at the same epoch: `Ok`. A higher epoch, or no head at all: [`Error::Fenced`].
    pub async fn confirm_epoch(&self, epoch: u64) -> Result<()> {
        match self.fetch_if_changed("confirm manifest epoch").await {
            Ok(None) => Ok(()),
            Ok(Some((head, _))) if head.epoch == epoch => Ok(()),
            Ok(Some((head, _))) => Err(self.fenced(epoch, head.epoch)),
            Err(Error::Remote { error: object_store::Error::NotFound { .. }, .. }) => Err(self.fenced(epoch, 0)),
            Err(e) => Err(e),
        }
    }

    /// The head, if it changed since the one held: one conditional GET (`If-None-Match` on its
    /// ETag). `None` when unchanged (304); a missing head is a `Remote` NotFound error.
    pub(super) async fn fetch_if_changed(&self, op: &'static str) -> Result<Option<(Head, UpdateVersion)>> {
        let key = self.keys.head();
        let etag =
            self.version.lock().expect("invariant: manifest lock not poisoned").as_ref().and_then(|v| v.e_tag.clone());
        let options = object_store::GetOptions { if_none_match: etag, ..Default::default() };
        let r = match self.store.get_opts(&key, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotModified { .. }) => return Ok(None),
            Err(e) => return Err(remote(op, &key)(e)),
        };
        let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
        let bytes = r.bytes().await.map_err(remote(op, &key))?;
        Ok(Some((Head::decode(&key, &bytes)?, version)))
    }

    /// Takes the partition over as its writer: bumps the epoch with a CAS (or creates the head).
    /// Returns the new epoch. A writer that held the previous epoch is fenced from now on.
    pub async fn acquire(&self, writer: &str) -> Result<u64> {
        for attempt in 1..=ACQUIRE_ATTEMPTS {
            if attempt > 1 {
                // Lost the compare-and-swap to a commit (or another take-over) between reading
                // the head and writing it: back off with jitter, so a busy writer's commits leave
                // a window.
                backoff(attempt - 1).await;
            }
            let current = read_head(&self.store, &self.keys).await?;
            let (mut head, mode) = match current {
                Some((h, v)) => (h, PutMode::Update(v)),
                None => (Head::empty(&self.head().topic, self.head().partition), PutMode::Create),
            };
            head.epoch += 1;
            head.seq += 1;
            head.writer = writer.to_owned();
            let key = self.keys.head();
            match self.store.put_opts(&key, PutPayload::from(head.encode()), PutOptions::from(mode)).await {
                Ok(r) => {
                    let epoch = head.epoch;
                    self.install(head, r);
                    tracing::info!(head = %self.keys.head(), epoch, "took over the partition's manifest");
                    return Ok(epoch);
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(remote("write manifest head", &self.keys.head())(e)),
            }
        }
        let key = self.keys.head();
        Err(remote("take over manifest head", &key)(object_store::Error::Precondition {
            path: key.to_string(),
            source: format!("lost the compare-and-swap {ACQUIRE_ATTEMPTS} times to concurrent writers").into(),
        }))
    }

    pub(super) fn install(&self, head: Head, r: object_store::PutResult) {
        self.set_head(head);
        *self.version.lock().expect("invariant: manifest lock not poisoned") =
            Some(UpdateVersion { e_tag: r.e_tag, version: r.version });
    }

    pub(super) fn fenced(&self, epoch: u64, current: u64) -> Error {
        let h = self.head();
        tracing::warn!(head = %self.keys.head(), epoch, current, "fenced: another writer owns the partition");
        metrics::counter!(crate::stats::FENCED).increment(1);
        Error::Fenced { partition: format!("{}-{}", h.topic, h.partition), epoch, current }
    }
}
