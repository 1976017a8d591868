//! Remote retention: which entries leave the manifest (by time or size), and the deferred deletes
//! of their objects once the grace period has passed.

use super::*;

/// Deletes the pending objects whose grace period has passed; returns their keys.
pub(super) async fn delete_due(inner: &Arc<Inner>, log: &RemoteLog, now: i64) -> Result<Vec<String>> {
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
pub(super) async fn plan_retention(log: &RemoteLog, new: &[SegmentEntry], now: i64) -> Result<Option<i64>> {
    let r = log.local.retention();
    let (by_time, by_size) = (r.remote_ms, r.remote_bytes);
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
