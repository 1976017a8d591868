//! Compaction as the engine runs it: [`Engine::compact`] on request (`tierlog compact`), and a
//! background task that, every `compactor.interval_ms`, compacts and merges each partition the
//! planner finds work in, and writes the scheduled state snapshots that are due.
//!
//! One compaction runs at a time per engine. Key compaction runs only on topics whose cleanup
//! policy includes `compact`; merging and snapshots on every topic.

use std::sync::Arc;

use compaction::local::{LocalState, compact_local};
use compaction::remote::compact_remote;
use compaction::{Progress, Report, Run};
use tiering::local::Partition;
use tiering::remote::{RemoteLog, SnapshotRef};

use crate::config::TopicConfig;
use crate::engine::{Engine, WeakEngine};
use crate::error::{Error, Result};

/// Partitions the background compactor found nothing to do in: (manifest head seq, tiered
/// offset) then, and when.
type Idle = std::collections::HashMap<(String, u32), ((u64, i64), i64)>;

/// How long a partition with nothing to do is left alone if nothing changes in it.
const RECHECK_MS: i64 = 600_000;

/// Passes per partition per background round (a dirty section bigger than the key map goes on in
/// the next round); `tierlog compact` runs until the partition is clean.
const PASSES_PER_ROUND: u64 = 4;
const PASSES_ON_REQUEST: u64 = u64::MAX;

/// Receives progress of a compaction: the partition and how far its current phase is.
pub type ProgressFn = Arc<dyn Fn(u32, Progress) + Send + Sync>;

/// What compaction did to one partition.
#[derive(Debug, Clone)]
pub struct PartitionCompaction {
    pub partition: u32,
    /// Key compaction of the local segments (empty for topics that do not compact).
    pub local: Report,
    /// Key compaction and merging of the remote segments.
    pub remote: Report,
}

/// A partition's compaction state, for `describe` and `inspect`.
#[derive(Debug, Clone, Copy)]
pub struct CompactionStatus {
    pub local: LocalState,
    pub remote: tiering::remote::manifest::CompactionState,
}

impl Engine {
    /// Compacts the topic's partitions (all, or `partitions`) now: uploads what is sealed, then
    /// key compaction of local and remote segments until clean (for `compact` topics), then
    /// merging of small remote segments.
    pub async fn compact(
        &self,
        topic: &str,
        partitions: Option<&[u32]>,
        progress: Option<ProgressFn>,
    ) -> Result<Vec<PartitionCompaction>> {
        let (config, owned) = self.compaction_targets(topic)?;
        let all: Vec<u32> = (0..owned.len() as u32).collect();
        let chosen = partitions.unwrap_or(&all);
        if let Some(&p) = chosen.iter().find(|&&p| p as usize >= owned.len()) {
            return Err(Error::UnknownPartition { topic: topic.into(), partition: p, partitions: owned.len() as u32 });
        }
        let progress = progress.unwrap_or_else(|| Arc::new(|_, _| {}));
        let mut out = Vec::new();
        for &p in chosen {
            self.tier_now(topic, p).await?;
            let (local, remote) = self.owned(topic, &owned, p)?;
            let done = self.compact_partition(topic, &config, &local, &remote, p, PASSES_ON_REQUEST, &progress).await?;
            out.push(done);
        }
        Ok(out)
    }

    /// The compaction state of a partition: how far its local and remote logs are clean.
    pub fn compaction_status(&self, topic: &str, partition: u32) -> Result<CompactionStatus> {
        let t = self.tiered(topic, partition)?;
        let local = t.local.as_ref().map(|l| LocalState::load(l.dir())).unwrap_or_default();
        let remote = t.remote.as_ref().map(|r| r.manifest().head().compaction).unwrap_or_default();
        Ok(CompactionStatus { local, remote })
    }

    #[allow(clippy::too_many_arguments)]
    async fn compact_partition(
        &self,
        topic: &str,
        config: &TopicConfig,
        local: &Arc<Partition>,
        remote: &Arc<RemoteLog>,
        partition: u32,
        max_passes: u64,
        progress: &ProgressFn,
    ) -> Result<PartitionCompaction> {
        let _one = self.compaction_lock().lock().await;
        if let Some(e) = remote.fenced_error() {
            return Err(Error::storage(topic, partition, e));
        }
        let map_bytes = self.config().compactor.map_bytes;
        let now = self.clock().now_ms();
        let compacts = config.cleanup_policy.compacts();
        let local_report = if compacts {
            let (p, c, pr) = (local.clone(), config.compaction.clone(), progress.clone());
            tokio::task::spawn_blocking(move || {
                let progress = |x| pr(partition, x);
                compact_local(&p, &Run { config: &c, map_bytes, now_ms: now, max_passes, progress: &progress })
            })
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("compaction task failed: {e}")) })?
            .map_err(|e| Error::storage(topic, partition, e))?
        } else {
            Report::default()
        };
        let on_progress = |x| progress(partition, x);
        let run = Run { config: &config.compaction, map_bytes, now_ms: now, max_passes, progress: &on_progress };
        let remote_report = compact_remote(remote, self.uploader(), compacts, &run)
            .await
            .map_err(|e| Error::storage(topic, partition, e))?;
        Ok(PartitionCompaction { partition, local: local_report, remote: remote_report })
    }

    /// One round of the background task over every topic and partition. A partition the last
    /// round found nothing to do in is planned again only once its manifest or its tiered offset
    /// changed, or [`RECHECK_MS`] later (segments age into eligibility under the minimum lag):
    /// planning reads every manifest entry, which for a long log means chunk GETs.
    async fn background_round(&self, idle: &mut Idle) {
        let no_progress: ProgressFn = Arc::new(|_, _| {});
        for topic in self.list_all_topics() {
            let Ok((config, owned)) = self.compaction_targets(&topic) else { return };
            for (i, slot) in owned.iter().enumerate() {
                let Some((local, remote)) = slot else { continue };
                let p = i as u32;
                if remote.fenced().is_some() {
                    continue;
                }
                let now = self.clock().now_ms();
                let state = || (remote.manifest().head().seq, local.tiered_offset().unwrap_or(-1));
                let key = (topic.clone(), p);
                if idle.get(&key).is_some_and(|&(seen, at)| seen == state() && now - at < RECHECK_MS) {
                    match self.snapshot_if_due(&topic, &config, remote, p).await {
                        Err(Error::Closed { .. }) => return,
                        Err(e) => snapshot_failed(&topic, p, &e),
                        Ok(_) => {}
                    }
                    continue;
                }
                match self.compact_partition(&topic, &config, local, remote, p, PASSES_PER_ROUND, &no_progress).await {
                    Ok(done) if !done.local.is_empty() || !done.remote.is_empty() => {
                        idle.remove(&key);
                        tracing::info!(topic, partition = p, local = ?done.local, remote = ?done.remote, "compacted");
                    }
                    Ok(_) => {
                        idle.insert(key, (state(), now));
                    }
                    Err(Error::Closed { .. }) => return,
                    Err(e) => {
                        metrics::counter!(compaction::stats::FAILURES).increment(1);
                        tracing::warn!(topic, partition = p, error = %e, "compaction failed; the next round retries");
                    }
                }
                match self.snapshot_if_due(&topic, &config, remote, p).await {
                    Err(Error::Closed { .. }) => return,
                    Err(e) => snapshot_failed(&topic, p, &e),
                    Ok(_) => {}
                }
            }
        }
    }

    /// Writes the partition's state snapshot if its topic's `snapshot_interval_ms` has passed since
    /// the last one (and the archived log grew).
    async fn snapshot_if_due(
        &self,
        topic: &str,
        config: &TopicConfig,
        remote: &RemoteLog,
        partition: u32,
    ) -> Result<Option<SnapshotRef>> {
        let Some(every) = config.compaction.snapshot_interval_ms else { return Ok(None) };
        let head = remote.manifest().head();
        let now = self.clock().now_ms();
        if head.is_empty() || head.snapshots.last().is_some_and(|s| now - s.created_ms < every as i64) {
            return Ok(None);
        }
        let _one = self.compaction_lock().lock().await;
        self.snapshot(topic, partition).await
    }
}

/// The background compactor's work (a [`tiering::task`]): a round every `compactor.interval_ms`
/// of the engine's clock. It holds the engine only while a round runs.
pub(crate) struct Compactor {
    engine: WeakEngine,
    idle: Idle,
}

impl Engine {
    /// The background compactor's work, for the task the engine starts at open.
    pub(crate) fn compactor_worker(&self) -> Compactor {
        Compactor { engine: self.downgrade(), idle: Idle::new() }
    }
}

impl tiering::task::Worker for Compactor {
    type Msg = ();
    async fn tick(&mut self) -> tiering::Result<()> {
        let Some(engine) = self.engine.upgrade() else { return Ok(()) };
        // A round runs to its end (`close` waits for it): a rewrite is never cut in half. It
        // stops early once the engine is closed (every call then fails with `Closed`).
        engine.background_round(&mut self.idle).await;
        Ok(())
    }
    async fn message(&mut self, (): ()) -> tiering::Result<()> {
        Ok(())
    }
}

/// A scheduled snapshot failed for a reason other than shutdown: the next round retries.
fn snapshot_failed(topic: &str, partition: u32, e: &Error) {
    tracing::warn!(topic, partition, error = %e, "scheduled snapshot failed; the next round retries");
}
