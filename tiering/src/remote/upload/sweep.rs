//! The orphan sweep: objects under a partition's prefix that the manifest does not reference
//! (failed uploads, crashes between upload and commit, fenced writers), deleted once old enough.

use super::*;

/// Deletes objects under the partition's prefix that the manifest does not reference and that
/// are older than `min_age_ms`: what failed uploads, crashes between upload and commit, and
/// fenced writers leave behind. Keys in flight (registered by an [`InFlight`] of an upload, a
/// rewrite or a snapshot whose commit is still to come) are skipped whatever their age. It
/// LISTs; it runs rarely.
pub(super) async fn sweep(inner: &Arc<Inner>, log: &RemoteLog, min_age_ms: u64) -> Result<u64> {
    let manifest = log.manifest();
    let keys = manifest.keys();
    let head = manifest.head();
    // Compared with the objects' last-modified times, which the store's wall clock wrote.
    let now_wall = (crate::clock::wall_clock_nanos() / 1_000_000) as i64;
    // A deleted topic of the same name: its objects wait for their own grace period.
    let held = crate::remote::deleted::pending_keys(&inner.store, log.local.topic()).await?;
    let mut deleted = 0;
    for dir in [keys.segments_dir(), Path::from(format!("{}/manifest/chunks", keys.root())), keys.snapshots_dir()] {
        let mut listing = inner.store.list(Some(&dir));
        let mut orphans = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(remote("list", &dir))?;
            if now_wall - meta.last_modified.timestamp_millis() < min_age_ms as i64 {
                continue;
            }
            let key = meta.location.to_string();
            if head.pending_deletes.iter().any(|p| p.key == key) || held.contains(&key) || log.is_in_flight(&key) {
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
