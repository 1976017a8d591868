//! One partition across both tiers: reads and time lookups go to the local log at or above its
//! start offset and to the bucket below it, behind one API.

use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::local::send::SPAN_MIN_BYTES;
use crate::local::{Batches, OffsetSpec, Partition, ReadResult, SendableRead, TimeOffset};
use crate::remote::RemoteReader;

/// Runs a local read's file IO: in place on a multi-threaded runtime (reads are short and mostly
/// served from the page cache, so handing them to the blocking pool would cost a fifth of a 1 MiB
/// read), on the blocking pool otherwise.
pub async fn blocking_read<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => Ok(tokio::task::block_in_place(f)),
        _ => tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("blocking task failed: {e}")) }),
    }
}

/// A partition's local log and, when the engine tiers, its remote tier; or the remote tier alone
/// (a read-only replica serving history from the bucket).
#[derive(Debug, Clone)]
pub struct TieredPartition {
    pub local: Option<Arc<Partition>>,
    pub remote: Option<Arc<RemoteReader>>,
}

impl TieredPartition {
    /// The first offset either tier serves.
    pub fn log_start_offset(&self) -> i64 {
        match (&self.local, self.remote_start()) {
            (Some(l), Some(r)) => r.min(l.log_start_offset()),
            (Some(l), None) => l.log_start_offset(),
            (None, Some(r)) => r,
            (None, None) => self.remote_end(),
        }
    }

    /// The end of the log: the local high watermark, or the end of the bucket's log.
    pub fn high_watermark(&self) -> i64 {
        match &self.local {
            Some(l) => l.high_watermark(),
            None => self.remote_end(),
        }
    }

    fn remote_start(&self) -> Option<i64> {
        let head = self.remote.as_ref()?.manifest().head();
        (!head.is_empty() && head.log_start_offset < head.next_offset).then_some(head.log_start_offset)
    }

    fn remote_end(&self) -> i64 {
        self.remote.as_ref().map_or(0, |r| r.manifest().head().next_offset)
    }

    /// Where the remote tier's reads stop: the local start, or everything without a local log.
    fn local_start(&self) -> i64 {
        self.local.as_ref().map_or(i64::MAX, |l| l.log_start_offset())
    }

    /// Follows this partition's end: the local high watermark, or (remote only) the end of the
    /// bucket's log as the manifest poll sees it.
    fn watch_end(&self) -> tokio::sync::watch::Receiver<i64> {
        match (&self.local, &self.remote) {
            (Some(l), _) => l.watch_high_watermark(),
            (None, Some(r)) => r.manifest().watch_end(),
            (None, None) => tokio::sync::watch::Sender::new(0).subscribe(),
        }
    }

    /// Waits until the high watermark passes `offset` (a read at `offset` has data), woken by the
    /// append path (or a replica's manifest poll), or until `timeout_ms` of `clock` passed.
    /// Returns the high watermark then.
    pub async fn wait_for(&self, offset: i64, clock: &dyn Clock, timeout_ms: u64) -> i64 {
        wait_any(std::slice::from_ref(&(self.clone(), offset)), clock, timeout_ms).await;
        self.high_watermark()
    }

    /// Whole batches from `offset` (at most `max_bytes`, at least one).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        // Reads served from the cache complete without waiting on anything: a reader looping over
        // cached data would otherwise keep its worker thread forever, starving the tasks queued
        // behind it there (S3 connections included). This yields once the task's budget is spent.
        tokio::task::coop::consume_budget().await;
        let started = std::time::Instant::now();
        let remote = self.local.as_ref().is_none_or(|l| offset < l.log_start_offset());
        let r = self.read_inner(offset, max_bytes).await;
        metrics::histogram!(crate::stats::READ_SECONDS, "tier" => if remote { "remote" } else { "local" })
            .record(started.elapsed().as_secs_f64());
        r
    }

    /// [`TieredPartition::read`], zero-copy where it can be: from the local tier, whole batches
    /// checked before come as a [`FileSpan`] (for `sendfile`) when they are at least
    /// [`SPAN_MIN_BYTES`]; everything else as bytes, as `read` returns them.
    pub async fn read_sendable(&self, offset: i64, max_bytes: usize) -> Result<SendableRead> {
        if let Some(local) = &self.local
            && offset >= local.log_start_offset()
        {
            tokio::task::coop::consume_budget().await;
            let started = std::time::Instant::now();
            let l = local.clone();
            // Any failure here is left to `read`, which reports it the one way it always does.
            let span = blocking_read(move || {
                let (span, hw) = l.read_span(offset, max_bytes).ok()??;
                Some(if span.len() >= SPAN_MIN_BYTES {
                    (Batches::File(span), hw)
                } else {
                    (Batches::Memory(span.read().ok()?), hw)
                })
            })
            .await
            .ok()
            .flatten();
            if let Some((batches, high_watermark)) = span {
                metrics::histogram!(crate::stats::READ_SECONDS, "tier" => "local")
                    .record(started.elapsed().as_secs_f64());
                return Ok(SendableRead { batches, high_watermark, log_start_offset: self.log_start_offset() });
            }
        }
        let r = self.read(offset, max_bytes).await?;
        Ok(SendableRead {
            batches: Batches::Memory(r.batches),
            high_watermark: r.high_watermark,
            log_start_offset: r.log_start_offset,
        })
    }

    async fn read_inner(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let Some(local) = self.local.clone() else {
            if offset == self.remote_end() {
                let end = self.remote_end();
                return Ok(ReadResult {
                    batches: bytes::Bytes::new(),
                    high_watermark: end,
                    log_start_offset: self.log_start_offset(),
                });
            }
            return self.read_remote(offset, max_bytes).await;
        };
        if self.remote.is_some() && offset < local.log_start_offset() {
            return self.read_remote(offset, max_bytes).await;
        }
        let l = local.clone();
        match blocking_read(move || l.read(offset, max_bytes)).await? {
            Err(Error::OffsetOutOfRange { .. }) if self.remote.is_some() && offset < local.log_start_offset() => {
                self.read_remote(offset, max_bytes).await
            }
            // A local batch that fails its check while the bucket holds its offset (a sealed,
            // uploaded segment) is served from the bucket, whose copy is checked on its own.
            Err(Error::Corrupt { path, position, reason }) if self.remote.is_some() && offset < self.remote_end() => {
                tracing::error!(path = %path.display(), position, %reason, offset, "corrupt local batch; reading it from the bucket");
                self.read_remote(offset, max_bytes).await
            }
            Ok(mut r) => {
                r.log_start_offset = self.log_start_offset();
                Ok(r)
            }
            // Out of range of the local log is out of range of the whole log: say the whole
            // log's range (the bucket may start far below the local log).
            Err(Error::OffsetOutOfRange { offset, end, .. }) => {
                Err(Error::OffsetOutOfRange { offset, start: self.log_start_offset(), end })
            }
            other => other,
        }
    }

    async fn read_remote(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let remote = self.remote.as_ref().expect("invariant: called with a remote tier");
        let high_watermark = self.high_watermark();
        match remote.read(offset, max_bytes).await? {
            Some(batches) => Ok(ReadResult { batches, high_watermark, log_start_offset: self.log_start_offset() }),
            None => Err(Error::OffsetOutOfRange { offset, start: self.log_start_offset(), end: high_watermark }),
        }
    }

    /// Kafka's ListOffsets across both tiers.
    pub async fn offset_for_time(&self, spec: OffsetSpec) -> Result<Option<TimeOffset>> {
        if spec == OffsetSpec::MaxTimestamp {
            // The first record stamped with the largest timestamp of either tier is the first
            // record at or after that timestamp.
            let local = self.local.as_ref().and_then(|l| l.max_timestamp());
            let remote = match &self.remote {
                Some(r) => r.manifest().max_timestamp().await?,
                None => None,
            };
            let Some(t) = local.max(remote) else { return Ok(None) };
            return Box::pin(self.offset_for_time(OffsetSpec::Timestamp(t))).await;
        }
        if spec == OffsetSpec::Earliest {
            return Ok(Some(TimeOffset { offset: self.log_start_offset(), timestamp: -1 }));
        }
        if let (OffsetSpec::Timestamp(t), Some(remote), Some(start)) = (spec, &self.remote, self.remote_start())
            && start < self.local_start()
            && let Some(found) = remote.offset_for_time(t).await?
        {
            return Ok(Some(found));
        }
        let Some(local) = self.local.clone() else {
            // Remote only: latest is the end of the bucket's log; a time past every record has
            // no offset.
            return Ok(match spec {
                OffsetSpec::Latest => Some(TimeOffset { offset: self.remote_end(), timestamp: -1 }),
                _ => None,
            });
        };
        tokio::task::spawn_blocking(move || local.offset_for_time(spec))
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("blocking task failed: {e}")) })?
    }
}

/// Waits until any of `targets` (a partition and an offset) has its high watermark past its
/// offset, or until `timeout_ms` of `clock` passed. Returns the index of the first partition that
/// has data, if any did. No polling: each partition's end is a watch channel that the append
/// path (or the manifest poll) updates.
pub async fn wait_any(targets: &[(TieredPartition, i64)], clock: &dyn Clock, timeout_ms: u64) -> Option<usize> {
    if let Some(i) = targets.iter().position(|(p, o)| p.high_watermark() > *o) {
        return Some(i);
    }
    if targets.is_empty() || timeout_ms == 0 {
        return None;
    }
    let waits = targets.iter().enumerate().map(|(i, (p, offset))| {
        let mut rx = p.watch_end();
        let offset = *offset;
        Box::pin(async move {
            // The guard `wait_for` returns is dropped at once (it must not live across an await);
            // a closed channel (its partition gone) never passes.
            let passed = rx.wait_for(|end| *end > offset).await.is_ok();
            if !passed {
                std::future::pending::<()>().await;
            }
            i
        })
    });
    tokio::select! {
        (i, _, _) = futures::future::select_all(waits) => Some(i),
        _ = clock.sleep(timeout_ms) => None,
    }
}
