//! One partition across both tiers: reads and time lookups go to the local log at or above its
//! start offset and to the bucket below it, behind one API.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::local::{OffsetSpec, Partition, ReadResult, TimeOffset};
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

/// A partition's local log and, when the engine tiers, its remote tier.
#[derive(Debug, Clone)]
pub struct TieredPartition {
    pub local: Arc<Partition>,
    pub remote: Option<Arc<RemoteReader>>,
}

impl TieredPartition {
    /// The first offset either tier serves.
    pub fn log_start_offset(&self) -> i64 {
        let local = self.local.log_start_offset();
        match self.remote_start() {
            Some(r) => r.min(local),
            None => local,
        }
    }

    fn remote_start(&self) -> Option<i64> {
        let head = self.remote.as_ref()?.manifest().head();
        (!head.is_empty() && head.log_start_offset < head.next_offset).then_some(head.log_start_offset)
    }

    /// Whole batches from `offset`, from whichever tier holds it (see [`Partition::read`]).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        if self.remote.is_some() && offset < self.local.log_start_offset() {
            return self.read_remote(offset, max_bytes).await;
        }
        let local = self.local.clone();
        match blocking_read(move || local.read(offset, max_bytes)).await? {
            // Local retention deleted the segment since the check: the bucket has it.
            Err(Error::OffsetOutOfRange { .. }) if self.remote.is_some() && offset < self.local.log_start_offset() => {
                self.read_remote(offset, max_bytes).await
            }
            Ok(mut r) => {
                r.log_start_offset = self.log_start_offset();
                Ok(r)
            }
            other => other,
        }
    }

    async fn read_remote(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let remote = self.remote.as_ref().expect("invariant: called with a remote tier");
        let high_watermark = self.local.high_watermark();
        match remote.read(offset, max_bytes).await? {
            Some(batches) => Ok(ReadResult { batches, high_watermark, log_start_offset: self.log_start_offset() }),
            None => Err(Error::OffsetOutOfRange { offset, start: self.log_start_offset(), end: high_watermark }),
        }
    }

    /// Kafka ListOffsets across both tiers.
    pub async fn offset_for_time(&self, spec: OffsetSpec) -> Result<Option<TimeOffset>> {
        if spec == OffsetSpec::Earliest {
            return Ok(Some(TimeOffset { offset: self.log_start_offset(), timestamp: -1 }));
        }
        if let (OffsetSpec::Timestamp(t), Some(remote), Some(start)) = (spec, &self.remote, self.remote_start())
            && start < self.local.log_start_offset()
            && let Some(found) = remote.offset_for_time(t).await?
        {
            return Ok(Some(found));
        }
        let local = self.local.clone();
        tokio::task::spawn_blocking(move || local.offset_for_time(spec))
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("blocking task failed: {e}")) })?
    }
}
