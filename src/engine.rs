//! The [`Engine`]: topics and partitions over one data dir, and the per-partition API
//! (`append`, `read`, `offset_for_time`). It validates requests, owns the disk's group-commit
//! writer, keeps topic metadata durable in `<data_dir>/topics/`, and runs blocking file IO off the
//! async runtime.
//!
//! Append path: `append` -> batch validation (caller's task) -> `LogWriter` (group commit) ->
//! partition. Upload path: sealed segments -> `Uploader` (background) -> bucket + manifest.
//! Read path: `read` / `offset_for_time` -> `TieredPartition` -> the local segment at or above
//! the local start offset, the bucket (through the cache) below it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};

use bytes::Bytes;
use tiering::clock::{Clock, system_clock};
pub use tiering::local::recover::Repaired;
use tiering::local::{AppendInfo, LogWriter, OffsetSpec, Partition, ReadResult, SegmentInfo, SendableRead, TimeOffset};
use tiering::log::{PartitionLog, Writing};
use tiering::object_store::ObjectStore;
use tiering::remote::{
    ChunkCache, CountingStore, Head, Manifest, PassReport, RemoteLog, RemoteReader, RequestCounts, SegmentEntry,
    Uploader,
};
use tiering::tiered::TieredPartition;
use tiering::topic::validate_topic_name;
use tokio::sync::Mutex as AsyncMutex;
use tracing::instrument;

use crate::config::{EngineConfig, TopicConfig};
use crate::error::{Error, Result};
use crate::internal::refuse_internal;
pub use crate::internal::{OFFSETS_TOPIC, is_internal_topic};

mod attach;
mod data_dir;
use attach::{in_parallel, load_manifests, open_partitions};
use data_dir::{TOPICS_DIR, load_topic_configs, lock_data_dir, partition_dir, remove_topic_files, write_topic_config};

const JOURNAL_DIR: &str = "journal";

/// A topic opened from disk or restored: name, settings, partitions, and their manifests when a
/// restore already loaded them.
type Loaded = (String, TopicConfig, Vec<Opened>, Vec<Arc<Manifest>>);

/// A partition folder as opened: its log, or the damage recovery found in it (acknowledged
/// records gone: truncated below its checkpoint, a missing segment, a corrupt batch below the
/// checkpoint). A damaged partition is served from the bucket alone and refuses appends until
/// `tierlog repair` cuts it back; the other partitions are not affected.
pub(crate) enum Opened {
    Log(Arc<Partition>),
    Damaged { id: u32, reason: String },
}

impl Opened {
    fn log(&self) -> Option<&Arc<Partition>> {
        match self {
            Opened::Log(p) => Some(p),
            Opened::Damaged { .. } => None,
        }
    }
}

/// A partition this engine writes: its local log and its remote log.
pub(crate) type Owned = (Arc<Partition>, Arc<RemoteLog>);

/// A topic's settings and, per partition, its local and remote logs when this engine writes it,
/// as compaction works on them.
pub(crate) type CompactionTargets = (TopicConfig, Vec<Option<Owned>>);

/// One topic: its settings and its partitions' logs ([`PartitionLog`]): each reads from both
/// tiers; one this engine writes also appends, and one it refused to write (see
/// [`tiering::remote::owner`]) or found damaged has the reason instead and is read from the bucket.
#[derive(Debug)]
struct Topic {
    config: TopicConfig,
    logs: Vec<Arc<PartitionLog>>,
}

/// What `describe_topic` tells about a partition.
#[derive(Debug, Clone)]
pub struct PartitionDescription {
    pub partition: u32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: Vec<SegmentInfo>,
    /// The partition's manifest head: what the bucket holds.
    pub remote: Arc<Head>,
    /// Set when another writer took the partition over in the bucket.
    pub fenced: Option<String>,
    /// The last tiering error, if the last pass failed.
    pub tiering_error: Option<String>,
    /// Set when this engine refused to write the partition (it is served from the bucket): why,
    /// and what to do.
    pub refused: Option<String>,
}

/// A partition that takes no appends, as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionProblem {
    pub topic: String,
    pub partition: u32,
    /// `refused` (at open: another writer took it over, or its local log cannot continue the
    /// bucket's), `fenced` (taken over while this engine wrote it) or `failed` (a write or fsync
    /// failed; it takes no appends until reopened).
    pub state: &'static str,
    pub reason: String,
}

/// What [`Engine::health`] reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// Partitions that take no appends (`refused`, `fenced`, `failed`), with the reason.
    pub partitions: Vec<PartitionProblem>,
    /// Partitions whose last upload pass failed, with the error: appends work, but the bucket
    /// falls behind (and local retention keeps what is not uploaded).
    pub tiering: Vec<PartitionProblem>,
    /// Free and total bytes of the data dir's file system (`None` if it cannot be read); full
    /// below `min_free_disk_bytes`.
    pub disk: Option<DiskSpace>,
    /// The background uploader's last error, if its last round failed.
    pub uploader_error: Option<String>,
}

impl Health {
    /// Whether every partition takes appends and the disk has room.
    pub fn writable(&self) -> bool {
        self.partitions.is_empty() && !self.disk.as_ref().is_some_and(|d| d.full)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub full: bool,
}

/// (available, total) bytes of the file system holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a statvfs the call fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// What `describe_topic` tells about a topic.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    pub name: String,
    pub config: TopicConfig,
    pub partitions: Vec<PartitionDescription>,
}

pub(crate) struct Inner {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    writer: Arc<LogWriter>,
    /// The bucket, behind the request counter.
    store: Arc<CountingStore>,
    cache: Arc<ChunkCache>,
    uploader: Uploader,
    /// This engine's name in manifest heads it owns: `<node id>/<pid>@<data dir>`.
    writer_id: String,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation, so two creators of one name cannot both win.
    create: AsyncMutex<()>,
    closed: std::sync::atomic::AtomicBool,
    /// The data dir's lock, held until `close`: one engine per data dir.
    lock: std::sync::Mutex<Option<File>>,
    /// One compaction (or scheduled snapshot) at a time per engine.
    compacting: AsyncMutex<()>,
    /// Background tasks this engine started (the compactor, a replica's manifest poller), each
    /// closed and joined by `close`.
    tasks: std::sync::Mutex<Vec<tiering::task::Task<()>>>,
    /// Opened by [`Engine::open_reader`]: reads the local data dir and the bucket, writes
    /// neither the bucket nor the log.
    reader: bool,
    /// Idempotent producer ids, reserved in blocks in the bucket.
    producer_ids: tiering::remote::producer_ids::ProducerIds,
}

/// A tierlog engine over one data dir. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// An [`Engine`] that background work holds without keeping it alive: see [`Engine::downgrade`].
#[derive(Clone)]
pub struct WeakEngine(Weak<Inner>);

impl WeakEngine {
    /// The engine, while anything else still holds it.
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

impl std::fmt::Debug for WeakEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakEngine").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("data_dir", &self.inner.config.data_dir).finish()
    }
}

use crate::error::io;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Closed { reason: Some(format!("blocking task failed: {e}")) })
}

impl Engine {
    /// Opens the data dir (creating it if needed), recovers every partition of every topic, and
    /// starts the writer.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        Self::open_with_clock(config, system_clock()).await
    }

    /// [`Engine::open`] with an injected clock (tests drive segment age and retention with it).
    pub async fn open_with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Engine> {
        config.validate()?;
        let store = config.object_store().build()?;
        Self::open_with_store(config, clock, store).await
    }

    /// [`Engine::open_with_clock`] on a given bucket (tests wrap stores to count or fail requests).
    pub async fn open_with_store(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Engine> {
        Self::open_inner(config, clock, store, false).await
    }

    /// Opens the data dir for reading only (the CLI's `consume`, `replay`, `state-at`,
    /// `offset-for-time` and `topic list|describe`): the local log and the bucket are read, but no
    /// partition is taken over (no epoch bump), nothing is uploaded, compacted, restored or
    /// written to the bucket, and appends and topic changes fail with `ReadOnly`. The local log is
    /// recovered as by any open (a torn tail is cut), and the data dir is locked while it is open.
    pub async fn open_reader(config: EngineConfig) -> Result<Engine> {
        config.validate()?;
        let store = config.object_store().build()?;
        Self::open_inner(config, system_clock(), store, true).await
    }

    /// [`Engine::open_reader`] on a given bucket and clock.
    pub async fn open_reader_with_store(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Engine> {
        Self::open_inner(config, clock, store, true).await
    }

    #[instrument(skip_all, fields(data_dir = %config.data_dir.display(), reader))]
    async fn open_inner(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ObjectStore>,
        reader: bool,
    ) -> Result<Engine> {
        config.validate()?;
        let dir = config.data_dir.clone();
        let topics_dir = dir.join(TOPICS_DIR);
        std::fs::create_dir_all(&topics_dir).map_err(io("create data dir", &topics_dir))?;
        let lock = lock_data_dir(&dir)?;
        let (topic_list, clock2) = (load_topic_configs(&topics_dir)?, clock.clone());
        if config.read_only && !topic_list.is_empty() {
            return Err(Error::InvalidConfig {
                field: "read_only".into(),
                reason: format!("a read-only replica needs a data dir of its own; {} holds topics", dir.display()),
            });
        }
        let data_dir = dir.clone();
        let journal_dir = dir.join(JOURNAL_DIR);
        let (loaded, journal) = blocking(move || -> Result<_> {
            let mut out = Vec::new();
            for (name, cfg) in topic_list {
                let partitions = open_partitions(&data_dir, &name, &cfg, &clock2, 0..cfg.partitions)?;
                out.push((name, cfg, partitions));
            }
            // Acknowledged batches that only the journal holds go back into their segments.
            let all: Vec<Arc<Partition>> =
                out.iter().flat_map(|(_, _, p)| p.iter().filter_map(|o: &Opened| o.log().cloned())).collect();
            let journal = tiering::local::journal::recover(&tiering::local::std_fs(), &journal_dir, &all)?;
            Ok((out, journal))
        })
        .await??;
        let writer = Arc::new(LogWriter::start(config.writer.clone(), Some(journal), clock.clone())?);
        let store = Arc::new(CountingStore::new(store));
        let cache_dir = config.cache_dir();
        if cache_dir.exists() {
            // Cached chunks are not trusted across restarts.
            std::fs::remove_dir_all(&cache_dir).map_err(io("clear cache dir", &cache_dir))?;
        }
        // A one-shot reader (a CLI read command) gains nothing from a disk tier emptied at start.
        let free = disk_space(&config.data_dir).map_or(0, |(free, _)| free);
        let disk_bytes = if reader { 0 } else { config.tiering.cache.disk_capacity(free) };
        tracing::debug!(disk_bytes, "remote cache disk tier");
        let cache = ChunkCache::new(store.clone(), &config.tiering.cache, disk_bytes, &cache_dir).await?;
        let uploader = Uploader::start(config.tiering.clone(), store.clone(), clock.clone());
        let node = tiering::remote::owner::node_id(&dir)?;
        let writer_id = tiering::remote::owner::writer_name(&node, &dir);
        let producer_ids = tiering::remote::producer_ids::ProducerIds::new(store.clone());
        let inner = Arc::new(Inner {
            config,
            clock,
            writer,
            store,
            cache,
            uploader,
            writer_id,
            topics: RwLock::new(BTreeMap::new()),
            create: AsyncMutex::new(()),
            closed: false.into(),
            lock: std::sync::Mutex::new(Some(lock)),
            compacting: AsyncMutex::new(()),
            tasks: std::sync::Mutex::new(Vec::new()),
            reader,
            producer_ids,
        });
        let engine = Engine { inner };
        if engine.inner.config.read_only {
            engine.open_replica().await?;
            return Ok(engine);
        }
        let mut loaded: Vec<Loaded> = loaded.into_iter().map(|(n, c, p)| (n, c, p, Vec::new())).collect();
        let restoring = engine.inner.config.restore && loaded.is_empty() && !reader;
        if restoring {
            loaded = engine.restore_from_bucket().await?;
        }
        for (name, cfg, partitions, manifests) in loaded {
            let topic = engine.attach(&name, cfg, partitions, manifests, restoring).await?;
            engine.inner.topics.write().expect("invariant: topics lock not poisoned").insert(name, topic);
        }
        if !reader {
            // Deleted topics' objects leave the bucket once their grace period passed.
            let every = (engine.inner.config.tiering.delete_grace_ms / 10).clamp(1000, 600_000);
            let store: Arc<dyn ObjectStore> = engine.inner.store.clone();
            let sweep = DeletedSweep { store, clock: engine.inner.clock.clone() };
            engine.start_task(tiering::task::spawn("deleted-topics", engine.inner.clock.clone(), every, sweep));
        }
        if engine.inner.config.compactor.enabled && !reader {
            let work = engine.compactor_worker();
            let every = engine.inner.config.compactor.interval_ms;
            engine.start_task(tiering::task::spawn("compactor", engine.inner.clock.clone(), every, work));
        }
        tracing::info!(topics = engine.list_topics().len(), "engine open");
        Ok(engine)
    }

    /// A read-only replica: every topic of the bucket's catalog, each partition read from its
    /// manifest alone; a task polls the manifest heads (conditional GETs) so new segments show up.
    async fn open_replica(&self) -> Result<()> {
        let store: Arc<dyn ObjectStore> = self.inner.store.clone();
        let chunk_segments = self.inner.config.tiering.manifest_chunk_segments;
        let read_ahead = self.inner.config.tiering.cache.read_ahead_bytes;
        let mut manifests = Vec::new();
        for (name, cfg) in catalog_topics(&store).await? {
            let mut logs = Vec::with_capacity(cfg.partitions as usize);
            for (p, manifest) in (0..).zip(load_manifests(&store, &name, cfg.partitions, chunk_segments).await?) {
                manifests.push(manifest.clone());
                let reader = RemoteReader::new(manifest, self.inner.cache.clone(), read_ahead);
                let tiers = TieredPartition { local: None, remote: Some(reader) };
                logs.push(Arc::new(PartitionLog::reading(&name, p, tiers, None)));
            }
            let topic = Arc::new(Topic { config: cfg, logs });
            self.inner.topics.write().expect("invariant: topics lock not poisoned").insert(name, topic);
        }
        let every = self.inner.config.replica_poll_ms;
        self.start_task(tiering::task::spawn("replica-poll", self.inner.clock.clone(), every, ReplicaPoll(manifests)));
        tracing::info!(topics = self.list_topics().len(), "read-only replica open");
        Ok(())
    }

    /// Rebuilds the topics of an empty data dir from the bucket: the catalog (one LIST of its
    /// prefix, one GET per topic) and each partition's manifest head (one GET), never a LIST of
    /// segments. Each partition is created empty at its manifest's `next_offset`.
    async fn restore_from_bucket(&self) -> Result<Vec<Loaded>> {
        let store: Arc<dyn ObjectStore> = self.inner.store.clone();
        let mut out = Vec::new();
        for (name, cfg) in catalog_topics(&store).await? {
            let manifests =
                load_manifests(&store, &name, cfg.partitions, self.inner.config.tiering.manifest_chunk_segments)
                    .await?;
            let starts: Vec<i64> = manifests.iter().map(|m| m.head().next_offset).collect();
            let (dir, name2, cfg2, clock) =
                (self.inner.config.data_dir.clone(), name.clone(), cfg.clone(), self.inner.clock.clone());
            let partitions = blocking(move || -> Result<Vec<Opened>> {
                let partitions = in_parallel(0..starts.len() as u32, |i| {
                    let dir = partition_dir(&dir, &name2, i);
                    Partition::open_at(&name2, i, &dir, cfg2.log.clone(), clock.clone(), starts[i as usize])
                        .map(Opened::Log)
                        .map_err(|e| Error::storage(&name2, i, e))
                })?;
                write_topic_config(&dir.join(TOPICS_DIR), &name2, &cfg2)?;
                Ok(partitions)
            })
            .await??;
            tracing::info!(topic = name, partitions = cfg.partitions, "topic restored from the bucket");
            out.push((name, cfg, partitions, manifests));
        }
        Ok(out)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Refuses a topic of `topic_partitions`, or `adding` partitions to this node, past the
    /// configured bounds. Called under the create lock.
    fn check_partition_limits(&self, topic_partitions: u32, adding: u32) -> Result<()> {
        let c = &self.inner.config;
        if topic_partitions > c.max_partitions_per_topic {
            return Err(Error::InvalidConfig {
                field: "partitions".into(),
                reason: format!(
                    "{topic_partitions} is more than max_partitions_per_topic ({})",
                    c.max_partitions_per_topic
                ),
            });
        }
        let held: u64 = self
            .inner
            .topics
            .read()
            .expect("invariant: topics lock not poisoned")
            .values()
            .map(|t| t.logs.len() as u64)
            .sum();
        if held + adding as u64 > c.max_partitions as u64 {
            return Err(Error::InvalidConfig {
                field: "partitions".into(),
                reason: format!(
                    "this node holds {held} partitions; {adding} more would pass max_partitions ({})",
                    c.max_partitions
                ),
            });
        }
        Ok(())
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.inner.config.read_only || self.inner.reader {
            return Err(Error::ReadOnly { op });
        }
        Ok(())
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed { reason: None });
        }
        Ok(())
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .read()
            .expect("invariant: topics lock not poisoned")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic { topic: name.to_owned() })
    }

    /// The local and remote logs of a partition this engine writes, or why it does not.
    fn owned_partition(&self, topic: &str, partition: u32) -> Result<Owned> {
        self.check_open()?;
        self.check_writable("a write")?;
        let log = self.log(topic, partition)?;
        match log.owned() {
            Some((local, remote)) => Ok((local.clone(), remote.clone())),
            None => Err(Error::PartitionUnavailable {
                topic: topic.to_owned(),
                partition,
                reason: log.unavailable().map_or_else(|| "this engine does not write it".into(), |(_, r)| r.clone()),
            }),
        }
    }

    /// The log of a partition for a client's append: refused on a read-only engine and for an
    /// internal topic (written by tierlog itself, through [`Engine::enqueue_internal`]).
    fn writable_log(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>> {
        refuse_internal(topic, "it is an internal topic, written by tierlog's group coordinator only")?;
        self.internal_log(topic, partition)
    }

    fn internal_log(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>> {
        self.check_open()?;
        self.check_writable("a write")?;
        self.log(topic, partition)
    }

    /// The log of a partition: the handle every read, append and status query goes through.
    pub fn log(&self, topic: &str, partition: u32) -> Result<Arc<PartitionLog>> {
        self.check_open()?;
        let t = self.topic(topic)?;
        Ok(t.logs[self.index(&t, topic, partition)?].clone())
    }

    /// The local and remote logs of partition `p` of `owned` (from [`Engine::compaction_targets`]),
    /// or why this engine does not write it.
    pub(crate) fn owned(&self, topic: &str, owned: &[Option<Owned>], p: u32) -> Result<Owned> {
        match owned.get(p as usize) {
            Some(Some(o)) => Ok(o.clone()),
            Some(None) => self.owned_partition(topic, p),
            None => Err(Error::UnknownPartition { topic: topic.into(), partition: p, partitions: owned.len() as u32 }),
        }
    }

    fn index(&self, t: &Topic, topic: &str, partition: u32) -> Result<usize> {
        if (partition as usize) < t.logs.len() {
            return Ok(partition as usize);
        }
        Err(Error::UnknownPartition { topic: topic.to_owned(), partition, partitions: t.logs.len() as u32 })
    }

    /// A partition's view across both tiers (for reads and status).
    pub(crate) fn tiered(&self, topic: &str, partition: u32) -> Result<TieredPartition> {
        self.check_open()?;
        Ok(self.log(topic, partition)?.tiers().clone())
    }

    /// Waits until the partition's high watermark passes `offset` (a read at `offset` has data) or
    /// `timeout_ms` of the engine's clock passed; returns the high watermark. Woken by the append
    /// path, or on a read-only replica by its manifest poll; never polls.
    pub async fn wait_for(&self, topic: &str, partition: u32, offset: i64, timeout_ms: u64) -> Result<i64> {
        let log = self.log(topic, partition)?;
        Ok(log.wait_for(offset, &*self.inner.clock, timeout_ms).await)
    }

    /// [`Engine::wait_for`] over several `(topic, partition, offset)`: resolves when any of them
    /// has data, with its index, or `None` after `timeout_ms`.
    pub async fn wait_for_any(&self, targets: &[(&str, u32, i64)], timeout_ms: u64) -> Result<Option<usize>> {
        let mut parts = Vec::with_capacity(targets.len());
        for &(topic, partition, offset) in targets {
            parts.push((self.tiered(topic, partition)?, offset));
        }
        Ok(tiering::tiered::wait_any(&parts, &*self.inner.clock, timeout_ms).await)
    }

    /// A producer id for an idempotent producer (Kafka's InitProducerId): never handed out twice,
    /// across restarts, restores and nodes sharing the bucket (see
    /// [`tiering::remote::producer_ids`]). Costs one conditional write per 1000 ids.
    pub async fn init_producer_id(&self) -> Result<i64> {
        self.check_open()?;
        self.check_writable("allocating a producer id")?;
        Ok(self.inner.producer_ids.next().await?)
    }

    /// The remote log of a partition this engine writes (its upload and manifest side).
    pub(crate) fn remote_log(&self, topic: &str, partition: u32) -> Result<Arc<RemoteLog>> {
        Ok(self.owned_partition(topic, partition)?.1)
    }

    /// What compaction works on in a topic: its settings, local partitions and remote logs.
    pub(crate) fn compaction_targets(&self, topic: &str) -> Result<CompactionTargets> {
        self.check_open()?;
        self.check_writable("compaction")?;
        let t = self.topic(topic)?;
        let owned = t.logs.iter().map(|l| l.owned().map(|(a, b)| (a.clone(), b.clone()))).collect();
        Ok((t.config.clone(), owned))
    }

    pub(crate) fn uploader(&self) -> &Uploader {
        &self.inner.uploader
    }

    pub(crate) fn compaction_lock(&self) -> &AsyncMutex<()> {
        &self.inner.compacting
    }

    fn start_task(&self, task: tiering::task::Task<()>) {
        self.inner.tasks.lock().expect("invariant: lock not poisoned").push(task);
    }

    /// A handle that does not keep the engine open (for background work it started).
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// Creates a topic with its partitions; its settings are stored durably first.
    #[instrument(skip_all, fields(topic = name))]
    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        refuse_internal(name, "it is an internal topic, created by tierlog itself")?;
        self.create_any_topic(name, config).await
    }

    /// Creates an internal topic (see [`is_internal_topic`]) unless it exists: the group
    /// coordinator's start.
    #[cfg(feature = "servers")]
    pub(crate) async fn ensure_internal_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        debug_assert!(is_internal_topic(name));
        match self.create_any_topic(name, config).await {
            Ok(()) | Err(Error::TopicExists { in_bucket: false, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_any_topic(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        self.check_writable("create topic")?;
        validate_topic_name(name)?;
        config.validate()?;
        let _guard = self.inner.create.lock().await;
        if self.topic(name).is_ok() {
            return Err(Error::TopicExists { topic: name.to_owned(), in_bucket: false });
        }
        self.check_partition_limits(config.partitions, config.partitions)?;
        // A topic the bucket already holds belongs to another node, or to this data dir before it
        // was emptied: creating it again would start a second history at offset 0 beside it.
        let store: Arc<dyn ObjectStore> = self.inner.store.clone();
        if tiering::remote::catalog::get(&store, name).await?.is_some() {
            return Err(Error::TopicExists { topic: name.to_owned(), in_bucket: true });
        }
        // The bucket's catalog first: a node restored from the bucket alone finds every topic.
        let json = serde_json::to_vec_pretty(&config).expect("invariant: topic config serialises");
        tiering::remote::catalog::put(&store, name, json.into()).await?;
        let (dir, name2, cfg, clock) =
            (self.inner.config.data_dir.clone(), name.to_owned(), config.clone(), self.inner.clock.clone());
        let partitions = blocking(move || -> Result<Vec<Opened>> {
            let partitions = open_partitions(&dir, &name2, &cfg, &clock, 0..cfg.partitions)?;
            // The metadata is written last: a crash before it leaves only empty folders, which a
            // later create of the same name reuses.
            write_topic_config(&dir.join(TOPICS_DIR), &name2, &cfg)?;
            Ok(partitions)
        })
        .await??;
        let topic = self.attach(name, config, partitions, Vec::new(), false).await?;
        self.inner.topics.write().expect("invariant: topics lock not poisoned").insert(name.to_owned(), topic);
        tracing::info!(topic = name, "topic created");
        Ok(())
    }

    /// Deletes a topic: it stops taking requests at once; its partitions' background work stops
    /// and their local files go; in the bucket its manifest heads and catalog entry go at once
    /// (the name can be created again) and its other objects after `tiering.delete_grace_ms`
    /// (see [`tiering::remote::deleted`]). Refused while another node writes any of its partitions.
    #[instrument(skip_all, fields(topic = name))]
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        refuse_internal(name, "it is an internal topic, kept by tierlog itself")?;
        self.check_open()?;
        self.check_writable("delete topic")?;
        let _guard = self.inner.create.lock().await;
        let _compaction = self.inner.compacting.lock().await;
        let t = self.topic(name)?;
        if let Some((i, log)) = t.logs.iter().enumerate().find(|(_, l)| l.owned().is_none()) {
            let reason = log.unavailable().map_or_else(|| "this engine does not write it".into(), |(_, r)| r.clone());
            return Err(Error::PartitionUnavailable {
                topic: name.into(),
                partition: i as u32,
                reason: format!("{reason}; a topic is deleted by the node that writes all of its partitions"),
            });
        }
        self.inner.topics.write().expect("invariant: topics lock not poisoned").remove(name);
        for (i, log) in t.logs.iter().enumerate() {
            log.stop(&self.inner.uploader).await.map_err(|e| Error::storage(name, i as u32, e))?;
        }
        // The local metadata first: a crash after it leaves no topic behind locally.
        let (dir, topic, n) = (self.inner.config.data_dir.clone(), name.to_owned(), t.config.partitions);
        blocking(move || remove_topic_files(&dir, &topic, n)).await??;
        let store: Arc<dyn ObjectStore> = self.inner.store.clone();
        let grace = self.inner.config.tiering.delete_grace_ms;
        let waiting = tiering::remote::deleted::delete_topic(&store, name, n, self.inner.clock.now_ms(), grace).await?;
        tracing::info!(topic = name, partitions = n, objects = waiting, grace_ms = grace, "topic deleted");
        Ok(())
    }

    /// Deletes the bucket objects of deleted topics whose grace period has passed (the
    /// background sweeper does this on its own schedule). Returns how many deletes it sent.
    pub async fn sweep_deleted_topics(&self) -> Result<u64> {
        self.check_open()?;
        self.check_writable("sweeping deleted topics")?;
        let store: Arc<dyn ObjectStore> = self.inner.store.clone();
        Ok(tiering::remote::deleted::sweep(&store, self.inner.clock.now_ms()).await?)
    }

    /// Grows a topic to `partitions` partitions (partitions are only ever added: keys of the
    /// existing ones would move). The new partitions start empty; the catalog and the local
    /// metadata say the new count once they are open.
    #[instrument(skip_all, fields(topic = name))]
    pub async fn add_partitions(&self, name: &str, partitions: u32) -> Result<()> {
        refuse_internal(name, "it is an internal topic: its partition count places the groups")?;
        self.check_open()?;
        self.check_writable("add partitions")?;
        let _guard = self.inner.create.lock().await;
        let t = self.topic(name)?;
        let current = t.config.partitions;
        if partitions <= current {
            return Err(Error::InvalidConfig {
                field: "partitions".into(),
                reason: format!(
                    "the topic has {current} partitions; {partitions} would not add any (partitions can only be added)"
                ),
            });
        }
        let config = TopicConfig { partitions, ..t.config.clone() };
        config.validate()?;
        self.check_partition_limits(partitions, partitions - current)?;
        let (dir, topic, cfg, clock) =
            (self.inner.config.data_dir.clone(), name.to_owned(), config.clone(), self.inner.clock.clone());
        let opened = blocking(move || open_partitions(&dir, &topic, &cfg, &clock, current..partitions)).await??;
        let added = self.attach(name, config.clone(), opened, Vec::new(), false).await?;
        self.store_topic_config(name, &config).await?;
        let logs = t.logs.iter().chain(&added.logs).cloned().collect();
        let topic = Arc::new(Topic { config, logs });
        self.inner.topics.write().expect("invariant: topics lock not poisoned").insert(name.to_owned(), topic);
        tracing::info!(topic = name, from = current, to = partitions, "partitions added");
        Ok(())
    }

    /// Changes a live topic's retention and compaction settings (`cleanup_policy`, the
    /// `log.*_retention_*` limits, `compaction.*`): stored in the bucket's catalog and the data
    /// dir, applied to the next append (a compacted topic refuses records without a key), the
    /// next retention tick and upload pass, and the next compaction round. Any other change is
    /// `InvalidConfig` naming the field (partitions grow with [`Engine::add_partitions`]).
    #[instrument(skip_all, fields(topic = name))]
    pub async fn alter_topic_config(&self, name: &str, config: TopicConfig) -> Result<()> {
        self.check_open()?;
        self.check_writable("alter topic config")?;
        config.validate()?;
        let _guard = self.inner.create.lock().await;
        let t = self.topic(name)?;
        let fixed = |field: &str| Error::InvalidConfig {
            field: field.into(),
            reason: "cannot change on a live topic (retention and compaction settings can)".into(),
        };
        if config.partitions != t.config.partitions {
            return Err(fixed("partitions"));
        }
        let (old, new) = (&t.config.log, &config.log);
        let same_log = tiering::LogConfig {
            local_retention_ms: old.local_retention_ms,
            local_retention_bytes: old.local_retention_bytes,
            remote_retention_ms: old.remote_retention_ms,
            remote_retention_bytes: old.remote_retention_bytes,
            ..new.clone()
        };
        if &same_log != old {
            let field = [
                ("log.segment_bytes", old.segment_bytes != new.segment_bytes),
                ("log.segment_ms", old.segment_ms != new.segment_ms),
                ("log.index_interval_bytes", old.index_interval_bytes != new.index_interval_bytes),
                ("log.durability", old.durability != new.durability),
                ("log.timestamp_type", old.timestamp_type != new.timestamp_type),
                ("log.max_batch_bytes", old.max_batch_bytes != new.max_batch_bytes),
            ]
            .into_iter()
            .find_map(|(f, changed)| changed.then_some(f))
            .unwrap_or("log");
            return Err(fixed(field));
        }
        self.store_topic_config(name, &config).await?;
        for log in &t.logs {
            log.set_settings(config.log.retention(), config.cleanup_policy.compacts());
        }
        let topic = Arc::new(Topic { config, logs: t.logs.clone() });
        self.inner.topics.write().expect("invariant: topics lock not poisoned").insert(name.to_owned(), topic);
        tracing::info!(topic = name, "topic settings changed");
        Ok(())
    }

    /// Stores a topic's settings: the bucket's catalog first (what a restore reads), then the
    /// data dir.
    async fn store_topic_config(&self, name: &str, config: &TopicConfig) -> Result<()> {
        let store: Arc<dyn ObjectStore> = self.inner.store.clone();
        let json = serde_json::to_vec_pretty(config).expect("invariant: topic config serialises");
        tiering::remote::catalog::put(&store, name, json.into()).await?;
        let (dir, topic, cfg) = (self.inner.config.data_dir.join(TOPICS_DIR), name.to_owned(), config.clone());
        blocking(move || write_topic_config(&dir, &topic, &cfg)).await?
    }

    /// Names of the topics clients made, sorted (internal topics left out, as Kafka's listings
    /// leave them out).
    pub fn list_topics(&self) -> Vec<String> {
        let topics = self.inner.topics.read().expect("invariant: topics lock not poisoned");
        topics.keys().filter(|t| !is_internal_topic(t)).cloned().collect()
    }

    /// Names of every topic, internal ones included, sorted.
    pub fn list_all_topics(&self) -> Vec<String> {
        self.inner.topics.read().expect("invariant: topics lock not poisoned").keys().cloned().collect()
    }

    /// Every partition of this engine that takes no appends, and why. Empty when all is well (and
    /// always on a read-only replica, which writes nothing).
    pub fn problems(&self) -> Vec<PartitionProblem> {
        let topics = self.inner.topics.read().expect("invariant: topics lock not poisoned").clone();
        let mut out = Vec::new();
        for (name, t) in topics {
            for (i, log) in t.logs.iter().enumerate() {
                if let Some((state, reason)) = log.problem() {
                    out.push(PartitionProblem { topic: name.clone(), partition: i as u32, state, reason });
                }
            }
        }
        out
    }

    /// What `/health` reports: the partitions that take no appends ([`Engine::problems`]), those
    /// whose uploads to the bucket keep failing (appends still work; the bucket falls behind), and
    /// the data dir's disk.
    pub fn health(&self) -> Health {
        let topics = self.inner.topics.read().expect("invariant: topics lock not poisoned").clone();
        let mut tiering = Vec::new();
        for (name, t) in topics {
            for (i, log) in t.logs.iter().enumerate() {
                if let Some(reason) = log.owned().and_then(|(_, r)| r.last_error()) {
                    tiering.push(PartitionProblem {
                        topic: name.clone(),
                        partition: i as u32,
                        state: "tiering",
                        reason,
                    });
                }
            }
        }
        tiering.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let mut partitions = self.problems();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let disk = disk_space(&self.inner.config.data_dir).map(|(free_bytes, total_bytes)| DiskSpace {
            free_bytes,
            total_bytes,
            full: free_bytes < self.inner.config.min_free_disk_bytes,
        });
        Health { partitions, tiering, disk, uploader_error: self.inner.uploader.status().last_error() }
    }

    /// A topic's settings.
    pub fn topic_config(&self, name: &str) -> Result<TopicConfig> {
        Ok(self.topic(name)?.config.clone())
    }

    /// How many partitions a topic has (cheap, unlike [`Engine::describe_topic`], which describes
    /// every partition).
    pub fn partition_count(&self, name: &str) -> Result<u32> {
        Ok(self.topic(name)?.logs.len() as u32)
    }

    /// A topic's settings and the state of each partition.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let t = self.topic(name)?;
        let partitions = t
            .logs
            .iter()
            .enumerate()
            .map(|(i, log)| {
                let tp = log.tiers();
                let r = log.owned().map(|(_, r)| r);
                PartitionDescription {
                    partition: i as u32,
                    log_start_offset: tp.log_start_offset(),
                    high_watermark: tp.high_watermark(),
                    size_bytes: tp.local.as_ref().map_or(0, |l| l.size_bytes()),
                    segments: tp.local.as_ref().map_or_else(Vec::new, |l| l.segments()),
                    remote: tp.remote.as_ref().expect("invariant: every partition has a remote tier").manifest().head(),
                    fenced: r.and_then(|r| r.fenced()),
                    refused: log.unavailable().map(|(_, r)| r.clone()),
                    tiering_error: r.and_then(|r| r.last_error()),
                }
            })
            .collect();
        Ok(TopicDescription { name: name.to_owned(), config: t.config.clone(), partitions })
    }

    /// Appends one Kafka RecordBatch v2. The batch is validated (length, magic, CRC, record count)
    /// on the caller's task, given offsets by the writer, and acknowledged once it is written and,
    /// under fsync durability, on disk.
    #[instrument(skip_all, fields(topic, partition))]
    pub async fn append(&self, topic: &str, partition: u32, batch: Bytes) -> Result<AppendInfo> {
        let started = std::time::Instant::now();
        let log = self.writable_log(topic, partition)?;
        let info = log.append(batch).await.map_err(|e| Error::storage(topic, partition, e))?;
        metrics::histogram!(tiering::stats::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(info)
    }

    /// [`Engine::enqueue_append`] to an internal topic (the group coordinator's commits).
    #[cfg(feature = "servers")]
    pub(crate) async fn enqueue_internal(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> Result<impl std::future::Future<Output = Result<AppendInfo>> + use<>> {
        debug_assert!(is_internal_topic(topic));
        let log = self.internal_log(topic, partition)?;
        let ticket = log.enqueue(batch).await.map_err(|e| Error::storage(topic, partition, e))?;
        let topic = topic.to_owned();
        Ok(async move { ticket.await.map_err(|e| Error::storage(&topic, partition, e)) })
    }

    /// Like [`Engine::append`], but returns as soon as the batch is queued, with a future for
    /// its acknowledgement. Batches enqueued one after another on a partition get offsets in that
    /// order, so a producer can keep many in flight and still keep its order.
    pub async fn enqueue_append(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> Result<impl std::future::Future<Output = Result<AppendInfo>> + use<>> {
        let started = std::time::Instant::now();
        let log = self.writable_log(topic, partition)?;
        let ticket = log.enqueue(batch).await.map_err(|e| Error::storage(topic, partition, e))?;
        let topic = topic.to_owned();
        Ok(async move {
            let info = ticket.await.map_err(|e| Error::storage(&topic, partition, e))?;
            metrics::histogram!(tiering::stats::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
            Ok(info)
        })
    }

    /// Whole batches from `offset`: up to `max_bytes`, and at least one batch if any exists.
    /// Reading at the high watermark returns no batches; past it, or below the log start, is
    /// `OffsetOutOfRange`.
    #[instrument(skip_all, fields(topic, partition, offset))]
    pub async fn read(&self, topic: &str, partition: u32, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let log = self.log(topic, partition)?;
        log.read(offset, max_bytes).await.map_err(|e| Error::storage(topic, partition, e))
    }

    /// [`Engine::read`], zero-copy where it can be: whole batches of the local tier that were
    /// CRC-checked before come as a [`tiering::local::FileSpan`], a range of the segment file
    /// that a server sends with `sendfile(2)` (`FileSpan::send_to`) instead of copying it through
    /// memory; the rest as bytes. The Kafka broker's Fetch reads this way.
    pub async fn read_sendable(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<SendableRead> {
        let log = self.log(topic, partition)?;
        log.read_sendable(offset, max_bytes).await.map_err(|e| Error::storage(topic, partition, e))
    }

    /// Kafka ListOffsets: the first offset whose timestamp is >= t, or the earliest or latest
    /// offset. `None` when no record has a timestamp >= t.
    #[instrument(skip_all, fields(topic, partition))]
    pub async fn offset_for_time(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<Option<TimeOffset>> {
        let log = self.log(topic, partition)?;
        log.offset_for_time(spec).await.map_err(|e| Error::storage(topic, partition, e))
    }

    /// Uploads every sealed segment of the partition now and waits for the manifest commit, then
    /// applies remote retention, due deletes and local retention (the background uploader does
    /// the same on its own schedule).
    pub async fn tier_now(&self, topic: &str, partition: u32) -> Result<PassReport> {
        let r = self.remote_log(topic, partition)?;
        self.inner.uploader.pass(&r).await.map_err(|e| Error::storage(topic, partition, e))
    }

    /// Runs the orphan sweep of the partition now; returns how many objects it deleted. It deletes
    /// unreferenced objects older than `min_age_ms` (`None`: `tiering.orphan_min_age_ms`). Objects
    /// this engine is writing for a commit still to come (uploads, compaction rewrites,
    /// snapshots) are never deleted, whatever their age; an age below the configured one is for
    /// an operator who knows no other process writes the partition.
    pub async fn sweep_orphans(&self, topic: &str, partition: u32, min_age_ms: Option<u64>) -> Result<u64> {
        let r = self.remote_log(topic, partition)?;
        self.inner.uploader.sweep(&r, min_age_ms).await.map_err(|e| Error::storage(topic, partition, e))
    }

    /// The partition's manifest head as this engine holds it.
    pub fn remote_head(&self, topic: &str, partition: u32) -> Result<Arc<Head>> {
        let t = self.tiered(topic, partition)?;
        Ok(t.remote.as_ref().expect("invariant: every partition has a remote tier").manifest().head())
    }

    /// The partition's segments in the bucket that hold offsets at or past `from`, oldest first.
    pub async fn remote_segments_from(&self, topic: &str, partition: u32, from: i64) -> Result<Vec<SegmentEntry>> {
        let t = self.tiered(topic, partition)?;
        let remote = t.remote.as_ref().expect("invariant: every partition has a remote tier");
        remote.manifest().segments_from(from).await.map_err(|e| Error::storage(topic, partition, e))
    }

    /// Requests this engine made to the bucket so far, by kind.
    pub fn object_store_counts(&self) -> RequestCounts {
        self.inner.store.counts()
    }

    /// The bucket (behind the request counter).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.store.clone()
    }

    /// Seals the partition's active segment now (it would otherwise wait for `segment_bytes` or
    /// `segment_ms`).
    pub async fn roll(&self, topic: &str, partition: u32) -> Result<()> {
        let p = self.owned_partition(topic, partition)?.0;
        self.inner.writer.roll(&p).await.map_err(Error::from)?;
        self.inner.uploader.wake();
        Ok(())
    }

    /// Runs the periodic work (segment age, interval fsync, checkpoints, retention) now.
    pub async fn tick(&self) -> Result<()> {
        self.check_open()?;
        self.inner.writer.tick().await.map_err(Error::from)?;
        self.inner.uploader.wake();
        Ok(())
    }

    /// fsyncs every partition.
    pub async fn flush(&self) -> Result<()> {
        self.check_open()?;
        self.inner.writer.flush().await.map_err(Error::from)
    }

    /// Finishes queued appends, fsyncs and checkpoints every partition, and stops the writer.
    /// Every later call returns `Closed`.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().expect("invariant: lock not poisoned"));
        for t in &tasks {
            t.close().await;
        }
        self.inner.uploader.shutdown().await;
        let res = self.inner.writer.shutdown().await.map_err(Error::from);
        self.inner.cache.close().await;
        // Released only once everything is flushed: another engine may now open the data dir.
        drop(self.inner.lock.lock().ok().and_then(|mut l| l.take()));
        res
    }
}

/// A replica's manifest poller: every `replica_poll_ms`, one conditional GET per manifest head, so
/// segments the writer commits show up.
struct ReplicaPoll(Vec<Arc<Manifest>>);

impl tiering::task::Worker for ReplicaPoll {
    type Msg = ();
    async fn tick(&mut self) -> tiering::Result<()> {
        let mut first_err = None;
        for m in &self.0 {
            if let Err(e) = m.poll().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
    async fn message(&mut self, (): ()) -> tiering::Result<()> {
        Ok(())
    }
}

/// Deletes deleted topics' objects from the bucket once their grace period passed: one LIST of
/// `catalog/deleted/` per tick (every tenth of `delete_grace_ms`, within 1 s..=10 min).
struct DeletedSweep {
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
}

impl tiering::task::Worker for DeletedSweep {
    type Msg = ();
    async fn tick(&mut self) -> tiering::Result<()> {
        tiering::remote::deleted::sweep(&self.store, self.clock.now_ms()).await.map(|_| ())
    }
    async fn message(&mut self, (): ()) -> tiering::Result<()> {
        Ok(())
    }
}

/// The topics of the bucket's catalog (one LIST of its prefix, one GET per topic), validated.
async fn catalog_topics(store: &Arc<dyn ObjectStore>) -> Result<Vec<(String, TopicConfig)>> {
    let mut out = Vec::new();
    for name in tiering::remote::catalog::list(store).await? {
        if validate_topic_name(&name).is_err() {
            tracing::warn!(topic = name, "catalog entry with an invalid topic name skipped");
            continue;
        }
        let Some(json) = tiering::remote::catalog::get(store, &name).await? else { continue };
        let key = tiering::remote::keys::catalog_topic(&name);
        let cfg: TopicConfig = serde_json::from_slice(&json).map_err(|e| Error::Corrupt {
            path: key.as_ref().into(),
            position: 0,
            reason: format!("topic catalog entry: {e}"),
        })?;
        cfg.validate()?;
        out.push((name, cfg));
    }
    Ok(out)
}

impl Engine {
    /// Cuts a damaged partition's local log back to its last intact batch (see
    /// [`tiering::local::recover::repair`]) on a data dir no engine has open, and says what was
    /// dropped. The bucket is not touched: at the next open the partition continues from the
    /// bucket's end if that is further.
    pub fn repair_partition(config: &EngineConfig, topic: &str, partition: u32) -> Result<Repaired> {
        validate_topic_name(topic)?;
        let topics_dir = config.data_dir.join(TOPICS_DIR);
        let _lock = lock_data_dir(&config.data_dir)?;
        let cfg = load_topic_configs(&topics_dir)?
            .into_iter()
            .find_map(|(n, c)| (n == topic).then_some(c))
            .ok_or_else(|| Error::UnknownTopic { topic: topic.to_owned() })?;
        if partition >= cfg.partitions {
            return Err(Error::UnknownPartition { topic: topic.into(), partition, partitions: cfg.partitions });
        }
        let dir = partition_dir(&config.data_dir, topic, partition);
        let repaired = tiering::local::recover::repair(&tiering::local::std_fs(), &dir, cfg.log.index_interval_bytes)
            .map_err(|e| Error::storage(topic, partition, e))?;
        tracing::warn!(
            topic,
            partition,
            log_start_offset = repaired.log_start_offset,
            log_end_offset = repaired.log_end_offset,
            dropped_bytes = repaired.dropped_bytes,
            dropped_segments = repaired.dropped_segments.len(),
            "partition repaired"
        );
        Ok(repaired)
    }
}
