//! One partition's log as the node that serves it holds it: the owner of the partition's
//! invariants. It appends (validation, then offsets, idempotent-producer checks and durability
//! through the disk's group-commit writer, after the lease says this node still owns the
//! partition), reads from both tiers, gives the high watermark and a way to wait on it, and
//! knows its fencing state and why it takes no appends when it does not. An engine is a registry
//! of these; its background work (the writer's ticks, the uploader's passes) is registered by the
//! log's parts with the engine's tasks.

use std::sync::Arc;

use bytes::Bytes;

use crate::batch::ValidatedBatch;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::local::{AppendInfo, AppendTicket, LogWriter, OffsetSpec, Partition, ReadResult, SendableRead, TimeOffset};
use crate::remote::RemoteLog;
use crate::tiered::TieredPartition;

/// What a node that writes a partition holds of it.
#[derive(Debug, Clone)]
pub struct Writing {
    pub local: Arc<Partition>,
    pub remote: Arc<RemoteLog>,
    pub writer: Arc<LogWriter>,
    pub clock: Arc<dyn Clock>,
    /// How long a confirmation of ownership holds (see [`RemoteLog::check_lease`]).
    pub lease_ms: u64,
    /// Refuse records without a key (a compacted topic) from the start.
    pub require_keys: bool,
}

/// One partition's log. See the module docs.
#[derive(Debug)]
pub struct PartitionLog {
    topic: String,
    id: u32,
    tiers: TieredPartition,
    writing: Option<Writing>,
    /// Why this node takes no appends for the partition, when it writes none: a state
    /// (`refused`, `damaged`) and the reason.
    unavailable: Option<(&'static str, String)>,
    /// Refuse records without a key (the topic is compacted); changes with the topic's settings.
    require_keys: std::sync::atomic::AtomicBool,
}

impl PartitionLog {
    /// A partition this node writes.
    pub fn writing(topic: &str, id: u32, tiers: TieredPartition, writing: Writing) -> Self {
        let require_keys = writing.require_keys.into();
        Self { topic: topic.to_owned(), id, tiers, writing: Some(writing), unavailable: None, require_keys }
    }

    /// A partition this node only reads: a replica's, a read-only engine's, or one it refused or
    /// found damaged (`unavailable` says which and why).
    pub fn reading(topic: &str, id: u32, tiers: TieredPartition, unavailable: Option<(&'static str, String)>) -> Self {
        Self { topic: topic.to_owned(), id, tiers, writing: None, unavailable, require_keys: false.into() }
    }

    /// Starts the partition's background work: the writer's periodic work on its local log (seal
    /// by age, interval fsync, checkpoints, retention, reopening after IO errors) and the
    /// uploader's passes over its remote log. A log this node only reads has none.
    pub async fn start(&self, uploader: &crate::remote::Uploader) -> Result<()> {
        if let Some(w) = &self.writing {
            w.writer.register(w.local.clone()).await?;
            uploader.register(w.remote.clone());
        }
        Ok(())
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn id(&self) -> u32 {
        self.id
    }
    /// The view across both tiers.
    pub fn tiers(&self) -> &TieredPartition {
        &self.tiers
    }
    /// The local and remote logs, when this node writes the partition.
    pub fn owned(&self) -> Option<(&Arc<Partition>, &Arc<RemoteLog>)> {
        self.writing.as_ref().map(|w| (&w.local, &w.remote))
    }
    /// Why appends are refused at open (`refused`, `damaged`), if they are.
    pub fn unavailable(&self) -> Option<&(&'static str, String)> {
        self.unavailable.as_ref()
    }

    /// Why the partition takes no appends now, if it does not: refused or damaged at open,
    /// fenced by another writer, or failed after an IO error (until it reopens itself).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(u) = &self.unavailable {
            return Some(u.clone());
        }
        let w = self.writing.as_ref()?;
        w.remote.fenced().map(|r| ("fenced", r)).or_else(|| w.local.failure().map(|r| ("failed", r)))
    }

    /// The writer side, once the lease confirms this node still owns the partition.
    async fn writer(&self) -> Result<&Writing> {
        let Some(w) = &self.writing else {
            let reason = self.unavailable.as_ref().map_or("this node does not write it", |(_, r)| r.as_str());
            return Err(Error::Unavailable {
                partition: format!("{}-{}", self.topic, self.id),
                reason: reason.to_owned(),
            });
        };
        w.remote.check_lease(w.clock.now_ms(), w.lease_ms).await?;
        Ok(w)
    }

    /// Validates `batch` (every record, against the topic's batch limit) and appends it; resolves
    /// once it is durable as the topic's durability asks.
    pub async fn append(&self, batch: Bytes) -> Result<AppendInfo> {
        self.enqueue(batch).await?.await
    }

    /// [`PartitionLog::append`], returning once the batch is queued: batches enqueued one after
    /// another get offsets in that order, so a producer can keep several in flight.
    pub async fn enqueue(&self, batch: Bytes) -> Result<AppendTicket> {
        let w = self.writer().await?;
        let keys = self.require_keys.load(std::sync::atomic::Ordering::Relaxed);
        let batch = ValidatedBatch::validate_for(batch, w.local.config().batch_limit(), keys)?;
        w.writer.enqueue(&w.local, batch).await
    }

    /// The topic's settings changed: retention and whether records need keys. Applies to the
    /// next append, retention on the next tick or pass.
    pub fn set_settings(&self, retention: crate::config::Retention, require_keys: bool) {
        self.require_keys.store(require_keys, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = &self.writing {
            w.local.set_retention(retention);
        }
    }

    /// Stops the partition's background work and closes its local log (its topic is being
    /// deleted): uploads finish first, queued appends are written, then nothing more runs on it.
    pub async fn stop(&self, uploader: &crate::remote::Uploader) -> Result<()> {
        if let Some(w) = &self.writing {
            uploader.unregister(&w.remote).await;
            w.writer.unregister(&w.local).await?;
        }
        Ok(())
    }

    /// Whole batches from `offset`, from whichever tier holds it.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        self.tiers.read(offset, max_bytes).await
    }

    /// [`PartitionLog::read`], zero-copy where it can be (see [`TieredPartition::read_sendable`]).
    pub async fn read_sendable(&self, offset: i64, max_bytes: usize) -> Result<SendableRead> {
        self.tiers.read_sendable(offset, max_bytes).await
    }

    /// Kafka's ListOffsets across both tiers.
    pub async fn offset_for_time(&self, spec: OffsetSpec) -> Result<Option<TimeOffset>> {
        self.tiers.offset_for_time(spec).await
    }

    pub fn high_watermark(&self) -> i64 {
        self.tiers.high_watermark()
    }
    pub fn log_start_offset(&self) -> i64 {
        self.tiers.log_start_offset()
    }

    /// Waits until the high watermark passes `offset` or `timeout_ms` of `clock` passed (see
    /// [`TieredPartition::wait_for`]).
    pub async fn wait_for(&self, offset: i64, clock: &dyn Clock, timeout_ms: u64) -> i64 {
        self.tiers.wait_for(offset, clock, timeout_ms).await
    }
}
