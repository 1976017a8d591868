//! One partition's local log: its segments, offsets, rolling, reads, time lookups and retention.
//!
//! Two sides share it. The **writer side** (`write_group`, `publish`, `tick`, `close`) is called
//! only from the disk's writer task (see [`super::group_commit`]), under the `writer` mutex: it
//! assigns offsets, writes, rolls segments and publishes what is durable. The **read side**
//! (`read`, `offset_for_time`, `segments`) takes a snapshot of the segment list under a short read
//! lock and then reads files without holding any lock. Readers never see past the high watermark:
//! under fsync durability that is the end of the last fsynced group.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use tracing::instrument;

use super::checkpoint::{self, Checkpoint};
use super::fs::{Fs, LogFile, remove_if_present, std_fs};
use super::index::SegmentIndex;
use super::producers::{self, Producers, Verdict};
use super::recover::recover;
use super::segment::{
    INDEX_EXT, LOG_EXT, ScanMode, ScanOutcome, Segment, SegmentInfo, SegmentMeta, TIME_INDEX_EXT, open_for_append,
    remove_segment_files, scan, segment_path, sync_dir,
};
use crate::batch::header::{HEADER_LEN, patch_header, set_crc};
use crate::batch::{TimestampType, ValidatedBatch};
use crate::clock::Clock;
use crate::config::{Durability, LogConfig};
use crate::error::{Error, Result};
use crate::stats;

/// How often the writer rewrites a partition's recovery checkpoint while it is being written to.
/// Recovery validates at most this much of recent log with CRCs.
pub const CHECKPOINT_INTERVAL_MS: i64 = 5_000;
/// A partition written to but then left alone this long closes its active segment's append
/// handle (after an fsync), and a segment not read for one to two of these periods closes its read
/// handle, so a node whose thousands of partitions were each written or read once holds no file
/// for each of them. The next write or read opens the file again.
pub const IDLE_CLOSE_MS: i64 = 30_000;

/// The first wait before a failed partition is reopened, and the longest (it doubles per failure).
const MIN_REOPEN_BACKOFF_MS: i64 = 100;
const MAX_REOPEN_BACKOFF_MS: i64 = 30_000;

/// The read view and writer state of a freshly recovered partition folder.
fn recovered_state(fs: &Arc<dyn Fs>, rec: super::recover::Recovered, now: i64) -> (View, WriterState) {
    let active = rec.segments.last().expect("invariant: recovery yields an active segment").clone();
    let m = active.meta();
    let state = WriterState {
        file: ActiveFile::new(fs, active.path(), None),
        position: m.size,
        next_offset: m.next_offset,
        active_since_ms: (m.size > 0).then_some(now),
        last_write_ms: now,
        last_handle_sweep_ms: now,
        pending: Vec::new(),
        synced: (active.base_offset, m.size),
        checkpointed: (active.base_offset, m.size),
        last_checkpoint_ms: now,
        last_sync_ms: now,
        failed: None,
        retry_at_ms: 0,
        retry_backoff_ms: MIN_REOPEN_BACKOFF_MS,
        journaled: false,
        producers: Producers::default(),
        producers_dirty: false,
        active,
    };
    let segments: BTreeMap<i64, Arc<Segment>> = rec.segments.into_iter().map(|s| (s.base_offset, s)).collect();
    (View { segments, high_watermark: m.next_offset }, state)
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Set when the topic uses log-append time: the timestamp every record of the batch now has.
    pub log_append_time: Option<i64>,
}

/// The answer to a read: whole batches (zero-copy slices of one buffer) and the log bounds.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub batches: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// What `offset_for_time` looks for, as in Kafka's ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
    /// The first record with the largest timestamp (Kafka's ListOffsets -3).
    MaxTimestamp,
}

/// An offset found by `offset_for_time`; `timestamp` is the record's, or -1 for earliest/latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOffset {
    pub offset: i64,
    pub timestamp: i64,
}

struct View {
    segments: BTreeMap<i64, Arc<Segment>>,
    high_watermark: i64,
}

/// A batch written but not yet visible to readers.
struct Pending {
    segment: Arc<Segment>,
    base_offset: i64,
    position: u64,
    len: u32,
    max_ts: i64,
    next_offset: i64,
}

/// The append handle of the active segment, opened on the first write (or fsync) that needs it:
/// a partition nobody writes holds no open file.
struct ActiveFile {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    cell: std::sync::OnceLock<Arc<dyn LogFile>>,
}

impl ActiveFile {
    fn new(fs: &Arc<dyn Fs>, path: &Path, file: Option<Arc<dyn LogFile>>) -> Self {
        let cell = std::sync::OnceLock::new();
        if let Some(f) = file {
            let _ = cell.set(f);
        }
        Self { fs: fs.clone(), path: path.to_owned(), cell }
    }

    fn get(&self) -> Result<&Arc<dyn LogFile>> {
        if let Some(f) = self.cell.get() {
            return Ok(f);
        }
        let f = open_for_append(&*self.fs, &self.path)?;
        Ok(self.cell.get_or_init(|| f))
    }

    fn is_open(&self) -> bool {
        self.cell.get().is_some()
    }

    /// Drops the append handle; the next write opens the file again. Callers fsync first: a
    /// handle opened later cannot vouch for what this one wrote.
    fn close(&mut self) {
        self.cell = std::sync::OnceLock::new();
    }

    /// fsyncs what this process wrote (nothing, if it never opened the file).
    fn sync_data(&self) -> Result<()> {
        match self.cell.get() {
            Some(f) => f.sync_data().map_err(Error::io("fsync segment", &self.path)),
            None => Ok(()),
        }
    }
}

/// State only the writer task touches.
struct WriterState {
    active: Arc<Segment>,
    file: ActiveFile,
    /// Bytes written (or assigned in this group) to the active segment.
    position: u64,
    /// The next offset to assign.
    next_offset: i64,
    /// Clock time of the first append to the active segment, for `segment_ms`.
    active_since_ms: Option<i64>,
    /// Clock time of the last append, for [`IDLE_CLOSE_MS`].
    last_write_ms: i64,
    /// When segments' unread read handles were last let go (every [`IDLE_CLOSE_MS`]).
    last_handle_sweep_ms: i64,
    pending: Vec<Pending>,
    /// `(segment base, position)` known to be on disk.
    synced: (i64, u64),
    checkpointed: (i64, u64),
    last_checkpoint_ms: i64,
    last_sync_ms: i64,
    /// Set after an IO error the partition cannot safely continue from; cleared by reopening.
    failed: Option<String>,
    /// While failed: when the next reopen may be tried, and the wait after that one fails.
    retry_at_ms: i64,
    retry_backoff_ms: i64,
    /// Bytes were acknowledged through the disk journal but not yet fsynced in the segment.
    journaled: bool,
    /// Idempotent producers' state, as of `next_offset` (batches written, durable or not).
    producers: Producers,
    /// Changed since the last snapshot written with a checkpoint.
    producers_dirty: bool,
}

/// How a written group was made durable, as `publish` is told.
pub(crate) enum Durable {
    /// Not needed by this partition's durability.
    NotNeeded,
    /// The segment file was fdatasynced (or syncfs'd).
    Synced(std::io::Result<()>),
    /// The batches went to the disk journal, which was fdatasynced; the segment was not.
    Journaled(std::io::Result<()>),
}

/// What `write_group` did: one result per batch, the file to fsync if the durability asks for it
/// now, and each batch's header as written (for the journal).
pub(crate) struct Written {
    pub results: Vec<Result<AppendInfo>>,
    pub sync: Option<Arc<dyn LogFile>>,
    /// The batches written (by index in the group) and their headers as written.
    pub headers: Vec<(usize, [u8; HEADER_LEN])>,
}

/// A partition's local log. See the module docs for who calls what.
pub struct Partition {
    topic: String,
    id: u32,
    /// `<topic>-<partition>`: the folder name, and the partition's name in the disk journal.
    name: String,
    dir: PathBuf,
    config: LogConfig,
    /// The retention in force (see [`Partition::set_retention`]).
    retention: RwLock<crate::config::Retention>,
    clock: Arc<dyn Clock>,
    fs: Arc<dyn Fs>,
    leader_epoch: AtomicI32,
    /// With a remote tier: the offset below which the bucket holds the log (committed to its
    /// manifest). Local retention never deletes a segment past it. `i64::MIN`: no remote tier.
    tiered: AtomicI64,
    view: RwLock<View>,
    writer: Mutex<WriterState>,
    /// The high watermark, for [`Partition::watch_high_watermark`]: set with the view's.
    hw: tokio::sync::watch::Sender<i64>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("topic", &self.topic).field("id", &self.id).finish()
    }
}

impl Partition {
    /// Opens (recovering) or creates the partition folder `dir`. Blocking: call it off the async
    /// runtime.
    #[instrument(skip_all, fields(topic, partition = id))]
    pub fn open(topic: &str, id: u32, dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>> {
        Self::open_at(topic, id, dir, config, clock, 0)
    }

    /// [`Partition::open`]; a partition created by this call (no folder or no segments yet)
    /// starts at `start_offset` (a restore continues where the bucket's log ends).
    pub fn open_at(
        topic: &str,
        id: u32,
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        start_offset: i64,
    ) -> Result<Arc<Self>> {
        Self::open_on(std_fs(), topic, id, dir, config, clock, start_offset)
    }

    /// [`Partition::open_at`] on a given filesystem (tests use one that simulates power cuts and
    /// IO errors).
    #[allow(clippy::too_many_arguments)]
    pub fn open_on(
        fs: Arc<dyn Fs>,
        topic: &str,
        id: u32,
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        start_offset: i64,
    ) -> Result<Arc<Self>> {
        let started = std::time::Instant::now();
        let rec = recover(&fs, dir, config.index_interval_bytes, start_offset)?;
        let truncated = rec.truncated_bytes;
        let (view, state) = recovered_state(&fs, rec, clock.now_ms());
        tracing::debug!(
            topic,
            partition = id,
            segments = view.segments.len(),
            log_end = view.high_watermark,
            truncated,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition recovered"
        );
        let p = Arc::new(Self {
            topic: topic.to_owned(),
            id,
            name: format!("{topic}-{id}"),
            dir: dir.to_owned(),
            retention: RwLock::new(config.retention()),
            config,
            clock,
            fs,
            leader_epoch: AtomicI32::new(0),
            tiered: AtomicI64::new(i64::MIN),
            hw: tokio::sync::watch::Sender::new(view.high_watermark),
            view: RwLock::new(view),
            writer: Mutex::new(state),
        });
        p.load_producers()?;
        Ok(p)
    }

    /// Rebuilds the idempotent producers' state: the snapshot written with the last checkpoint,
    /// then the headers of every batch after it (all of the local log without a usable snapshot).
    fn load_producers(&self) -> Result<()> {
        let (start, end) = (self.log_start_offset(), self.high_watermark());
        let (mut producers, from) = match producers::read_snapshot(&*self.fs, &self.dir) {
            Some((p, covered)) if covered <= end => (p, covered.max(start)),
            _ => (Producers::default(), start),
        };
        let segments: Vec<Arc<Segment>> = self.view().segments.values().cloned().collect();
        let now = self.clock.now_ms();
        for seg in segments.iter().filter(|s| s.meta().next_offset > from) {
            seg.for_each_header(from, |h| {
                if h.base_offset >= from {
                    producers.record(h, h.base_offset, h.last_offset(), now);
                }
            })?;
        }
        let mut st = self.lock_writer();
        // Whatever was scanned goes into the next snapshot (even an empty state), so the next open
        // scans only what follows it, not the whole log again.
        st.producers_dirty = from < end;
        st.producers = producers;
        Ok(())
    }

    /// Seeds the idempotent producers' state of a partition that starts where the bucket's log
    /// ends (a restore, or a local log dropped for the bucket's): from
    /// [`crate::remote::RemoteReader::producer_state`]. Producers the local log already knows
    /// keep their state.
    pub fn seed_producers(&self, from_bucket: Producers) {
        let mut st = self.lock_writer();
        let mut merged = from_bucket;
        merged.absorb(std::mem::take(&mut st.producers));
        st.producers = merged;
        st.producers_dirty = true;
    }

    /// The idempotent producers' state (for tests and `inspect`).
    pub fn producers(&self) -> Producers {
        self.lock_writer().producers.clone()
    }

    /// Reopens a failed partition from its files once its backoff has passed, without a process
    /// restart. Called by the writer task on its ticks, with the disk journal's location.
    ///
    /// The log is first cut back to what is known durable (the last successful fsync): after a
    /// failed fsync the page cache may hold bytes that never reached the disk, and must not be
    /// trusted. Batches acknowledged through the journal are then appended again from it, and the
    /// segment is fsynced. Any IO error leaves the partition failed and doubles the wait (100 ms
    /// up to 30 s). Returns whether the partition was reopened.
    pub(crate) fn reopen_if_due(&self, journal: Option<(&dyn Fs, &Path)>) -> Result<bool> {
        let now = self.clock.now_ms();
        {
            let mut st = self.lock_writer();
            if st.failed.is_none() || now < st.retry_at_ms {
                return Ok(false);
            }
            let res = self.reopen_locked(&mut st, now);
            if let Err(e) = res {
                st.retry_backoff_ms = (st.retry_backoff_ms * 2).min(MAX_REOPEN_BACKOFF_MS);
                st.retry_at_ms = now + st.retry_backoff_ms;
                metrics::counter!(stats::PARTITION_REOPENS, "outcome" => "failed").increment(1);
                tracing::warn!(topic = %self.topic, partition = self.id, error = %e, retry_in_ms = st.retry_backoff_ms, "reopening a failed partition failed");
                return Err(e);
            }
        }
        if let Some((fs, dir)) = journal {
            let name = self.name.clone();
            super::journal::replay(
                fs,
                dir,
                |n, batch| if n == name { self.replay_batch(batch).map(|_| ()) } else { Ok(()) },
            )
            .inspect_err(|e| self.fail_io(&format!("replaying the journal after a reopen: {e}")))?;
        }
        let mut st = self.lock_writer();
        if st.journaled
            && let Err(e) = st.file.sync_data()
        {
            self.fail(&mut st, &e.to_string());
            return Err(e);
        }
        st.synced = (st.active.base_offset, st.position);
        st.journaled = false;
        self.write_checkpoint(&mut st)?;
        metrics::counter!(stats::PARTITION_REOPENS, "outcome" => "reopened").increment(1);
        tracing::info!(topic = %self.topic, partition = self.id, log_end = st.next_offset, "failed partition reopened");
        Ok(true)
    }

    fn reopen_locked(&self, st: &mut WriterState, now: i64) -> Result<()> {
        let fs = &*self.fs;
        let (base, position) = st.synced;
        // Segments past the durable one hold nothing known durable.
        let later: Vec<i64> = self.view().segments.range(base + 1..).map(|(b, _)| *b).collect();
        for b in later {
            remove_segment_files(fs, &self.dir, b)?;
        }
        let path = segment_path(&self.dir, base, LOG_EXT);
        let f = open_for_append(fs, &path)?;
        if f.len().map_err(Error::io("stat segment", &path))? > position {
            f.set_len(position).map_err(Error::io("truncate segment", &path))?;
        }
        f.sync_data().map_err(Error::io("fsync segment", &path))?;
        sync_dir(fs, &self.dir)?;
        let start = self.log_start_offset();
        let rec = recover(&self.fs, &self.dir, self.config.index_interval_bytes, start)?;
        let (view, state) = recovered_state(&self.fs, rec, now);
        // The producers' state stays: it covers what is written, and the cut dropped only
        // batches that were never acknowledged.
        let producers = std::mem::take(&mut st.producers);
        *st = state;
        st.producers = producers;
        let hw = view.high_watermark;
        *self.view.write().expect("invariant: partition view lock not poisoned") = view;
        self.hw.send_replace(hw);
        Ok(())
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn id(&self) -> u32 {
        self.id
    }
    /// `<topic>-<partition>`.
    /// The error of an operation this partition cannot do now: it failed (an IO error) and has
    /// not reopened yet.
    pub(crate) fn unavailable(&self, reason: &str) -> Error {
        Error::Unavailable { partition: self.name().to_owned(), reason: reason.to_owned() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn durability(&self) -> Durability {
        self.config.durability
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The retention in force: the config's, until [`Partition::set_retention`] changes it.
    pub fn retention(&self) -> crate::config::Retention {
        *self.retention.read().expect("invariant: retention lock not poisoned")
    }

    /// Changes the partition's retention (a topic's settings altered while it runs); local
    /// retention applies it on the next tick, remote retention on the next upload pass.
    pub fn set_retention(&self, r: crate::config::Retention) {
        *self.retention.write().expect("invariant: retention lock not poisoned") = r;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// The leader epoch stamped into every batch appended from now on.
    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Relaxed);
    }

    /// Records that the bucket holds the log below `offset` (after a manifest commit). Once set,
    /// local retention deletes only segments entirely below it.
    pub fn set_tiered_offset(&self, offset: i64) {
        self.tiered.store(offset, Ordering::SeqCst);
    }
    /// The offset below which the bucket holds the log, if this partition tiers.
    pub fn tiered_offset(&self) -> Option<i64> {
        let t = self.tiered.load(Ordering::SeqCst);
        (t != i64::MIN).then_some(t)
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().expect("invariant: partition view lock not poisoned")
    }
    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().expect("invariant: partition writer lock not poisoned")
    }

    /// The offset after the last acknowledged (and, under fsync durability, durable) batch.
    pub fn high_watermark(&self) -> i64 {
        self.view().high_watermark
    }
    /// Follows the high watermark: the receiver sees every change, as the append path publishes
    /// it (for [`crate::tiered::TieredPartition::wait_for`]).
    pub fn watch_high_watermark(&self) -> tokio::sync::watch::Receiver<i64> {
        self.hw.subscribe()
    }
    /// The first offset still held locally.
    pub fn log_start_offset(&self) -> i64 {
        self.view().segments.keys().next().copied().unwrap_or(0)
    }
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.view().segments.values().map(|s| s.info()).collect()
    }
    /// The offset after the newest sealed segment that holds anything (None when none does):
    /// what the uploader compares with the bucket's end to learn whether it has work, without
    /// listing the segments.
    pub fn sealed_end(&self) -> Option<i64> {
        self.view().segments.values().rev().find_map(|s| {
            let m = s.meta.read().expect("invariant: segment meta lock not poisoned");
            (m.sealed && m.size > 0).then_some(m.next_offset)
        })
    }

    pub fn size_bytes(&self) -> u64 {
        self.view().segments.values().map(|s| s.meta.read().map(|m| m.size).unwrap_or(0)).sum()
    }

    /// The log start offset and the high watermark, as one reader sees them.
    pub(super) fn bounds(&self) -> (i64, i64) {
        let v = self.view();
        (v.segments.keys().next().copied().unwrap_or(0), v.high_watermark)
    }

    pub(super) fn segment_at_or_after(&self, offset: i64, after: bool) -> Option<Arc<Segment>> {
        let v = self.view();
        if after {
            v.segments.range(offset + 1..).next().map(|(_, s)| s.clone())
        } else {
            v.segments.range(..=offset).next_back().map(|(_, s)| s.clone())
        }
    }

    /// Whole batches from `offset`: at most `max_bytes`, but at least one batch when any exists at
    /// or past `offset`. Blocking file IO.
    #[instrument(skip_all, fields(topic = %self.topic, partition = self.id, offset))]
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        let (start, hw) = self.bounds();
        let result = |batches| ReadResult { batches, high_watermark: hw, log_start_offset: start };
        if offset < start || offset > hw {
            return Err(Error::OffsetOutOfRange { offset, start, end: hw });
        }
        let mut seg = self.segment_at_or_after(offset, false);
        while let Some(s) = seg {
            if offset >= hw {
                break;
            }
            let read = s.read(offset, max_bytes, self.config.index_interval_bytes);
            // Retention may delete the segment between the lookup and the read.
            if let Err(Error::Io { error, .. }) = &read
                && error.kind() == std::io::ErrorKind::NotFound
                && offset < self.log_start_offset()
            {
                return Err(Error::OffsetOutOfRange { offset, start: self.log_start_offset(), end: hw });
            }
            if let Some(bytes) = read? {
                metrics::counter!(stats::READ_BYTES, "tier" => "local").increment(bytes.len() as u64);
                return Ok(result(bytes));
            }
            seg = self.segment_at_or_after(s.base_offset, true);
        }
        Ok(result(Bytes::new()))
    }

    /// `len` bytes at `pos` of the segment at `base` (the uploader reads sealed segments this
    /// way, through the partition's filesystem). Blocking file IO.
    pub fn read_segment_bytes(&self, base: i64, pos: u64, len: usize) -> Result<Bytes> {
        // The view's guard must be gone before the error is built: taking the read lock twice in
        // one statement deadlocks once a writer waits between the two.
        let seg = self.view().segments.get(&base).cloned();
        let seg = seg.ok_or_else(|| Error::OffsetOutOfRange {
            offset: base,
            start: self.log_start_offset(),
            end: self.high_watermark(),
        })?;
        seg.read_at(pos, len)
    }

    /// Kafka ListOffsets: the first offset whose record timestamp is >= `t` (None when there is
    /// none), or the earliest / latest offset. Blocking file IO.
    #[instrument(skip_all, fields(topic = %self.topic, partition = self.id))]
    /// The largest record timestamp of the local log, if it holds a record.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.view().segments.values().map(|s| s.meta().index.max_timestamp()).max().filter(|&t| t >= 0)
    }

    pub fn offset_for_time(&self, spec: OffsetSpec) -> Result<Option<TimeOffset>> {
        let t = match spec {
            OffsetSpec::Earliest => return Ok(Some(TimeOffset { offset: self.log_start_offset(), timestamp: -1 })),
            OffsetSpec::Latest => return Ok(Some(TimeOffset { offset: self.high_watermark(), timestamp: -1 })),
            OffsetSpec::Timestamp(t) => t,
            // The first record stamped with the largest timestamp is the first at or after it.
            OffsetSpec::MaxTimestamp => match self.max_timestamp() {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        let segments: Vec<Arc<Segment>> = self.view().segments.values().cloned().collect();
        for s in segments {
            if let Some((offset, timestamp)) = s.find_time(t)? {
                return Ok(Some(TimeOffset { offset, timestamp }));
            }
        }
        Ok(None)
    }

    // ----- writer side: called only from the group-commit writer task -----

    /// Assigns offsets to `batches` and writes them (one vectored write per segment touched),
    /// rolling segments as needed. Returns one result per batch and whether the group must be
    /// fsynced before it is published.
    pub(crate) fn write_group(&self, batches: &[ValidatedBatch]) -> Written {
        let mut st = self.lock_writer();
        if let Some(reason) = &st.failed {
            let reason = format!("partition {}-{} failed: {reason}", self.topic, self.id);
            let results = batches.iter().map(|_| Err(self.unavailable(&reason))).collect();
            return Written { results, sync: None, headers: Vec::new() };
        }
        let now = self.clock.now_ms();
        let log_append = (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let epoch = self.leader_epoch.load(Ordering::Relaxed);
        let mut results: Vec<Result<AppendInfo>> = Vec::with_capacity(batches.len());
        // The batches written, by index, with their headers as written.
        let mut headers: Vec<(usize, [u8; HEADER_LEN])> = Vec::with_capacity(batches.len());
        // Where the current run (one vectored write) starts: in `headers`, and in `batches`.
        let (mut run_start, mut run_from) = (0usize, 0usize);
        for (i, b) in batches.iter().enumerate() {
            // Idempotent producers: duplicates are answered with their original offsets, and
            // batches out of sequence are refused, before anything is written.
            match st.producers.check(&self.name, b.header()) {
                Ok(Verdict::Append) => {}
                Ok(Verdict::Duplicate { base_offset, last_offset }) => {
                    metrics::counter!(stats::DUPLICATE_BATCHES).increment(1);
                    results.push(Ok(AppendInfo { base_offset, last_offset, log_append_time: None }));
                    continue;
                }
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            }
            let len = b.len() as u64;
            let too_old = st.active_since_ms.is_some_and(|t| now - t >= self.config.segment_ms as i64);
            if st.position > 0 && (st.position + len > self.config.segment_bytes || too_old) {
                let reason = if too_old { "age" } else { "size" };
                let step = self
                    .write_run(&st, &headers[run_start..], batches)
                    .and_then(|()| self.roll_locked(&mut st, reason));
                if let Err(e) = step {
                    let results = self.fail_rest(&mut st, results, batches.len(), run_from, e);
                    return Written { results, sync: None, headers };
                }
                (run_start, run_from) = (headers.len(), i);
            }
            let base = st.next_offset;
            let mut hdr: [u8; HEADER_LEN] =
                b.bytes()[..HEADER_LEN].try_into().expect("invariant: validated batch has a header");
            if patch_header(&mut hdr, base, epoch, log_append) {
                set_crc(&mut hdr, &b.bytes()[HEADER_LEN..]);
            }
            headers.push((i, hdr));
            let next = base + b.offset_span();
            let pending = Pending {
                segment: st.active.clone(),
                base_offset: base,
                position: st.position,
                len: len as u32,
                max_ts: log_append.unwrap_or(b.header().max_timestamp),
                next_offset: next,
            };
            st.pending.push(pending);
            st.position += len;
            st.next_offset = next;
            st.active_since_ms.get_or_insert(now);
            st.last_write_ms = now;
            if b.header().producer_id >= 0 {
                st.producers.record(b.header(), base, next - 1, now);
                st.producers_dirty = true;
            }
            results.push(Ok(AppendInfo { base_offset: base, last_offset: next - 1, log_append_time: log_append }));
        }
        if let Err(e) = self.write_run(&st, &headers[run_start..], batches) {
            let results = self.fail_rest(&mut st, results, batches.len(), run_from, e);
            return Written { results, sync: None, headers };
        }
        let sync = match self.config.durability {
            Durability::Fsync => !st.pending.is_empty(),
            Durability::Interval { ms } => now - st.last_sync_ms >= ms as i64,
            Durability::None => false,
        };
        // Nothing to sync when this process never opened the file (it wrote nothing to it).
        let sync = sync.then(|| st.file.cell.get().cloned()).flatten();
        Written { results, sync, headers }
    }

    fn write_run(&self, st: &WriterState, run: &[(usize, [u8; HEADER_LEN])], batches: &[ValidatedBatch]) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(run.len() * 2);
        for (i, h) in run {
            slices.push(IoSlice::new(h));
            slices.push(IoSlice::new(&batches[*i].bytes()[HEADER_LEN..]));
        }
        st.file.get()?.append(&slices).map_err(Error::io("write segment", st.active.path()))
    }

    /// After an IO error: the batches from `from` on are failed, and so is the partition.
    fn fail_rest(
        &self,
        st: &mut WriterState,
        mut results: Vec<Result<AppendInfo>>,
        total: usize,
        from: usize,
        e: Error,
    ) -> Vec<Result<AppendInfo>> {
        let reason = e.to_string();
        self.fail(st, &reason);
        results.truncate(from);
        results.extend((from..total).map(|_| Err(self.unavailable(&reason))));
        results
    }

    /// Marks the partition failed after an IO error and cuts the active segment back to what was
    /// published: after a failed write or fsync the bytes past it are of unknown state.
    fn fail(&self, st: &mut WriterState, reason: &str) {
        tracing::error!(topic = %self.topic, partition = self.id, %reason, "partition failed; reopen to recover");
        st.pending.clear();
        let published = st.active.meta.read().map(|m| (m.size, m.next_offset)).unwrap_or((0, 0));
        if let Some(f) = st.file.cell.get() {
            let _ = f.set_len(published.0);
        }
        st.position = published.0;
        st.next_offset = published.1;
        st.failed = Some(reason.to_owned());
        st.retry_backoff_ms = MIN_REOPEN_BACKOFF_MS;
        st.retry_at_ms = self.clock.now_ms() + MIN_REOPEN_BACKOFF_MS;
    }

    /// Makes written batches visible once they are durable as their durability asks (`how`).
    pub(crate) fn publish(&self, how: Durable) -> Result<()> {
        let mut st = self.lock_writer();
        let failed = match how {
            Durable::NotNeeded => None,
            Durable::Synced(Ok(())) => {
                st.synced = (st.active.base_offset, st.position);
                st.last_sync_ms = self.clock.now_ms();
                None
            }
            Durable::Journaled(Ok(())) => {
                st.journaled = true;
                None
            }
            Durable::Synced(Err(e)) => Some(("fsync segment", e)),
            Durable::Journaled(Err(e)) => Some(("write journal", e)),
        };
        if let Some((op, error)) = failed {
            let e = Error::Io { op, path: st.active.path().to_owned(), error };
            self.fail(&mut st, &e.to_string());
            return Err(e);
        }
        self.publish_locked(&mut st);
        Ok(())
    }

    /// The active segment's file if it holds journaled bytes not yet fsynced in the segment, with
    /// how far it is written. A failed partition too: its acknowledged batches are still only in
    /// the journal.
    pub(crate) fn journaled_file(&self) -> Option<(Arc<dyn LogFile>, i64, u64)> {
        let st = self.lock_writer();
        st.journaled.then(|| st.file.cell.get().map(|f| (f.clone(), st.active.base_offset, st.position))).flatten()
    }

    /// Records that the active segment was fsynced after `journaled_file` gave `(base, position)`:
    /// the journal may now forget this partition's entries up to there.
    pub(crate) fn segment_synced(&self, base: i64, position: u64) {
        let mut st = self.lock_writer();
        if st.active.base_offset == base && st.synced.0 == base && st.synced.1 < position {
            st.synced = (base, position);
        }
        if st.active.base_offset == base && st.position == position {
            st.journaled = false;
        }
    }

    /// Recovery from the disk journal: appends `batch` (as it was written, offsets assigned) if it
    /// is the next one; skips it if the segment already holds it. A batch past the end is a gap
    /// that nothing can fill: reported as corruption.
    pub(crate) fn replay_batch(&self, batch: &[u8]) -> Result<bool> {
        let mut st = self.lock_writer();
        let h = crate::batch::BatchHeader::parse(batch).map_err(Error::InvalidBatch)?;
        if h.base_offset < st.next_offset {
            return Ok(false);
        }
        if h.base_offset > st.next_offset {
            return Err(Error::Corrupt {
                path: st.active.path().to_owned(),
                position: st.position,
                reason: format!("journal holds offset {} but the log ends at {}", h.base_offset, st.next_offset),
            });
        }
        st.file.get()?.append(&[IoSlice::new(batch)]).map_err(Error::io("write segment", st.active.path()))?;
        let pending = Pending {
            segment: st.active.clone(),
            base_offset: h.base_offset,
            position: st.position,
            len: batch.len() as u32,
            max_ts: h.max_timestamp,
            next_offset: h.next_offset(),
        };
        st.pending.push(pending);
        st.position += batch.len() as u64;
        st.next_offset = h.next_offset();
        st.journaled = true;
        let now = self.clock.now_ms();
        st.producers.record(&h, h.base_offset, h.last_offset(), now);
        st.producers_dirty |= h.producer_id >= 0;
        self.publish_locked(&mut st);
        Ok(true)
    }

    fn publish_locked(&self, st: &mut WriterState) {
        let Some(last) = st.pending.last().map(|p| p.next_offset) else { return };
        let interval = self.config.index_interval_bytes;
        // Bytes this process wrote were validated on append: their CRCs need no check on read.
        let mut written: Option<(Arc<Segment>, u64, u64)> = None;
        for p in st.pending.drain(..) {
            let mut m = p.segment.meta.write().expect("invariant: segment meta lock not poisoned");
            let rel = (p.base_offset - p.segment.base_offset) as u32;
            m.index.on_append(rel, p.position as u32, p.len, p.max_ts, interval);
            m.size = p.position + p.len as u64;
            m.next_offset = p.next_offset;
            drop(m);
            match &mut written {
                Some((seg, _, end)) if Arc::ptr_eq(seg, &p.segment) && *end == p.position => {
                    *end = p.position + p.len as u64
                }
                _ => {
                    if let Some((seg, a, b)) = written.take() {
                        seg.mark_verified(a, b);
                    }
                    written = Some((p.segment.clone(), p.position, p.position + p.len as u64));
                }
            }
        }
        if let Some((seg, a, b)) = written {
            seg.mark_verified(a, b);
        }
        self.view.write().expect("invariant: partition view lock not poisoned").high_watermark = last;
        self.hw.send_replace(last);
    }

    /// Seals the active segment (fsync, publish, index files) and starts a new one.
    fn roll_locked(&self, st: &mut WriterState, reason: &'static str) -> Result<()> {
        st.file.sync_data()?;
        st.synced = (st.active.base_offset, st.position);
        st.journaled = false;
        self.publish_locked(st);
        st.active.seal(&self.dir)?;
        let base = st.next_offset;
        let new_path = segment_path(&self.dir, base, LOG_EXT);
        let file = open_for_append(&*self.fs, &new_path)?;
        sync_dir(&*self.fs, &self.dir)?;
        let meta = SegmentMeta { index: SegmentIndex::new(), size: 0, next_offset: base, sealed: false };
        let seg = Arc::new(Segment::new(&self.fs, &self.dir, base, meta, Some(file.clone())));
        self.view.write().expect("invariant: partition view lock not poisoned").segments.insert(base, seg.clone());
        st.active = seg;
        st.file = ActiveFile::new(&self.fs, &new_path, Some(file));
        st.position = 0;
        st.active_since_ms = None;
        st.synced = (base, 0);
        self.write_checkpoint(st)?;
        metrics::counter!(stats::SEGMENTS_ROLLED, "reason" => reason).increment(1);
        tracing::debug!(topic = %self.topic, partition = self.id, base, reason, "segment rolled");
        Ok(())
    }

    fn write_checkpoint(&self, st: &mut WriterState) -> Result<()> {
        let (segment_base, position) = st.synced;
        // The offset at the synced position: the active segment's published end when all is synced.
        let next_offset = if position == st.position {
            st.next_offset
        } else {
            st.active.meta.read().map(|m| m.next_offset).unwrap_or(0)
        };
        // The producers' snapshot first, when it matches the checkpoint exactly (everything
        // written is synced); a checkpoint without a fresh snapshot only costs a longer rebuild.
        if st.producers_dirty && position == st.position {
            st.producers.expire(self.clock.now_ms());
            producers::write_snapshot(&*self.fs, &self.dir, &st.producers, st.next_offset)?;
            st.producers_dirty = false;
        }
        checkpoint::write(&*self.fs, &self.dir, &Checkpoint { segment_base, position, next_offset })?;
        st.checkpointed = st.synced;
        st.last_checkpoint_ms = self.clock.now_ms();
        Ok(())
    }

    /// Seals the active segment now if it holds anything (for tests and for tiering). An IO error
    /// fails the partition (see [`Partition::failure`]).
    pub(crate) fn roll(&self) -> Result<()> {
        let mut st = self.lock_writer();
        if let Some(reason) = &st.failed {
            return Err(self.unavailable(reason));
        }
        if st.position == 0 {
            return Ok(());
        }
        let res = self.roll_locked(&mut st, "forced");
        if let Err(e) = &res {
            self.fail(&mut st, &e.to_string());
        }
        res
    }

    /// Periodic work: seal by age, interval fsync, checkpoint, local retention.
    ///
    /// A failed write or fsync fails the partition; it is never retried. After a failed fsync
    /// Linux may have dropped the dirty pages and cleared the error, so a retry could report
    /// success for bytes that are not on disk, and the checkpoint would then vouch for them.
    ///
    /// `idle_syncs` is how many more fsyncs this round of ticks may spend closing idle handles
    /// (the writer shares it across its partitions): thousands of partitions going idle at once
    /// must not stall the writer for thousands of fsyncs in one tick. A partition over the budget
    /// closes on a later tick.
    pub(crate) fn tick(&self, idle_syncs: &mut u32) -> Result<()> {
        let now = self.clock.now_ms();
        {
            let mut st = self.lock_writer();
            if st.failed.is_some() {
                return Ok(());
            }
            let res = (|| -> Result<()> {
                if st.position > 0 && st.active_since_ms.is_some_and(|t| now - t >= self.config.segment_ms as i64) {
                    self.roll_locked(&mut st, "age")?;
                }
                if let Durability::Interval { ms } = self.config.durability
                    && st.synced != (st.active.base_offset, st.position)
                    && now - st.last_sync_ms >= ms as i64
                {
                    st.file.sync_data()?;
                    st.synced = (st.active.base_offset, st.position);
                    st.last_sync_ms = now;
                }
                if st.synced != st.checkpointed && now - st.last_checkpoint_ms >= CHECKPOINT_INTERVAL_MS {
                    self.write_checkpoint(&mut st)?;
                }
                // Idle: fsync what is not yet synced and let the file go. Not while a group is
                // between write and publish, nor while the disk journal holds batches that only
                // this handle's fsync will release (its rotation syncs them, and a later tick
                // closes the file).
                let end = (st.active.base_offset, st.position);
                if st.file.is_open()
                    && st.pending.is_empty()
                    && !st.journaled
                    && now - st.last_write_ms >= IDLE_CLOSE_MS
                    && (st.synced == end || *idle_syncs > 0)
                {
                    if st.synced != end {
                        *idle_syncs -= 1;
                        st.file.sync_data()?;
                        st.synced = end;
                        st.last_sync_ms = now;
                    }
                    st.file.close();
                    metrics::counter!(stats::IDLE_HANDLES_CLOSED).increment(1);
                }
                // Read handles of segments nobody read for a sweep interval go too: a node that
                // once read every segment of thousands of partitions keeps no file for each.
                if now - st.last_handle_sweep_ms >= IDLE_CLOSE_MS {
                    st.last_handle_sweep_ms = now;
                    let closed = self.view().segments.values().filter(|seg| seg.close_if_unread()).count();
                    if closed > 0 {
                        metrics::counter!(stats::IDLE_HANDLES_CLOSED).increment(closed as u64);
                    }
                }
                Ok(())
            })();
            if let Err(e) = res {
                self.fail(&mut st, &e.to_string());
                return Err(e);
            }
        }
        self.apply_retention(now)?;
        Ok(())
    }

    /// Why the partition failed, if it did: after a failed write or fsync it takes no appends
    /// until it is reopened from its files.
    pub fn failure(&self) -> Option<String> {
        self.lock_writer().failed.clone()
    }

    /// Fails the partition from outside the write path (a failed fsync of its segment before a
    /// journal rotation): the journal keeps its entries, and the partition takes no more appends.
    pub(crate) fn fail_io(&self, reason: &str) {
        let mut st = self.lock_writer();
        if st.failed.is_none() {
            self.fail(&mut st, reason);
        }
    }

    /// Deletes the oldest whole segments that local retention (time or size) no longer keeps;
    /// never the active segment, and with a remote tier never a segment not yet committed to the
    /// bucket's manifest. Returns how many were deleted.
    pub fn apply_retention(&self, now: i64) -> Result<usize> {
        let r = self.retention();
        let (by_time, by_size) = (r.local_ms, r.local_bytes);
        if by_time.is_none() && by_size.is_none() {
            return Ok(0);
        }
        let st = self.lock_writer();
        let mut removed = Vec::new();
        {
            let mut v = self.view.write().expect("invariant: partition view lock not poisoned");
            let mut total: u64 = v.segments.values().map(|s| s.meta.read().map(|m| m.size).unwrap_or(0)).sum();
            while let Some((&base, seg)) = v.segments.iter().next() {
                if base == st.active.base_offset {
                    break;
                }
                let m = seg.meta();
                if self.tiered_offset().is_some_and(|t| m.next_offset > t) {
                    break;
                }
                let expired = by_time.is_some_and(|ms| m.index.max_timestamp() < now - ms as i64);
                let oversize = by_size.is_some_and(|limit| total > limit);
                if !expired && !oversize {
                    break;
                }
                total -= m.size;
                removed.push((base, m.size, v.segments.remove(&base)));
            }
        }
        drop(st);
        for (base, size, seg) in &mut removed {
            // Out of the view, a large segment held by nobody else cannot be read again: its
            // blocks are freed a step at a time (`reclaim`), so a large deletion does not stall
            // the fsyncs behind it. One a reader still holds is only unlinked: that reader reads
            // it whole. A small one is only unlinked too: freeing it at once is cheap.
            let unread = seg.take().is_some_and(|seg| Arc::strong_count(&seg) == 1);
            let log = segment_path(&self.dir, *base, LOG_EXT);
            let reclaim = unread && *size > super::reclaim::STEP && self.fs.exists(&log);
            let held = if reclaim { self.fs.open_append(&log).ok() } else { None };
            remove_segment_files(&*self.fs, &self.dir, *base)?;
            if let Some(f) = held {
                super::reclaim::free_gradually(f);
            }
        }
        if !removed.is_empty() {
            tracing::info!(topic = %self.topic, partition = self.id, segments = removed.len(), "local retention deleted segments");
            metrics::counter!(stats::RETENTION_DELETED_SEGMENTS).increment(removed.len() as u64);
        }
        Ok(removed.len())
    }

    /// Replaces the bytes of the sealed segment at `base` with `data` (compaction). The batches of
    /// `data` must tile exactly the offsets the segment covers (same first base offset, no gap,
    /// same next offset) with sound CRCs; otherwise nothing changes and the error says why.
    ///
    /// The new log is written to a temporary file and fsynced, then renamed over the old one and
    /// swapped into the segment list under the writer lock; its index files are written after.
    /// Readers that took the old segment keep reading the old file (its handle is opened before the
    /// rename), so no read sees a mix of the two. A crash at any point leaves either the old log or
    /// the new one (recovery rebuilds missing index files and removes the temporary file).
    /// Blocking file IO.
    pub fn replace_sealed(&self, base: i64, data: &[u8]) -> Result<u64> {
        let old = self.view().segments.get(&base).cloned();
        let old = old.ok_or(Error::OffsetOutOfRange {
            offset: base,
            start: self.log_start_offset(),
            end: self.high_watermark(),
        })?;
        let m = old.meta();
        let log = segment_path(&self.dir, base, LOG_EXT);
        let invalid = |reason: String| Error::Corrupt { path: log.clone(), position: 0, reason };
        if !m.sealed {
            return Err(invalid("the active segment is never rewritten".into()));
        }
        let tmp = super::segment::unique_tmp(&log);
        let fs = &*self.fs;
        let written = (|| -> std::io::Result<(Arc<dyn LogFile>, SegmentIndex, ScanOutcome)> {
            let f = fs.create(&tmp)?;
            f.append(&[IoSlice::new(data)])?;
            f.sync_data()?;
            let mut index = SegmentIndex::new();
            let len = data.len() as u64;
            let interval = self.config.index_interval_bytes;
            let scanned = scan(&*f, 0, len, base, base, ScanMode::Validate, &mut index, interval)?;
            Ok((f, index, scanned))
        })();
        let (file, index, scanned) = match written {
            Ok(v) => v,
            Err(e) => {
                let _ = fs.remove_file(&tmp);
                return Err(Error::Io { op: "write rewritten segment", path: tmp, error: e });
            }
        };
        if let Some(reason) = scanned.stopped.clone().or_else(|| {
            (scanned.next_offset != m.next_offset)
                .then(|| format!("rewritten batches end at {}, the segment at {}", scanned.next_offset, m.next_offset))
        }) {
            let _ = fs.remove_file(&tmp);
            return Err(invalid(format!("rewritten segment rejected: {reason}")));
        }
        // Readers holding the old segment keep its file open across the rename.
        old.hold_open()?;
        let meta = SegmentMeta { index, size: data.len() as u64, next_offset: m.next_offset, sealed: true };
        let new = Arc::new(Segment::new(&self.fs, &self.dir, base, meta, Some(file)));
        new.mark_verified(0, data.len() as u64);
        {
            let _st = self.lock_writer();
            let mut v = self.view.write().expect("invariant: partition view lock not poisoned");
            if !v.segments.get(&base).is_some_and(|s| Arc::ptr_eq(s, &old)) {
                drop(v);
                let _ = fs.remove_file(&tmp);
                return Err(Error::Conflict {
                    reason: format!(
                        "segment {} changed (retention or another rewrite) while it was rewritten",
                        log.display()
                    ),
                });
            }
            // Stale index files must not outlive the log they describe, even across a crash.
            for ext in [INDEX_EXT, TIME_INDEX_EXT] {
                remove_if_present(fs, &segment_path(&self.dir, base, ext))
                    .map_err(Error::io("remove index file", &log))?;
            }
            fs.rename(&tmp, &log).map_err(Error::io("rename rewritten segment", &log))?;
            v.segments.insert(base, new.clone());
        }
        new.seal(&self.dir)?;
        sync_dir(fs, &self.dir)?;
        Ok(m.size.saturating_sub(data.len() as u64))
    }

    /// fsyncs what was written and records a checkpoint at the end of the log.
    pub(crate) fn close(&self) -> Result<()> {
        let mut st = self.lock_writer();
        if st.failed.is_some() {
            return Ok(());
        }
        // Nothing written since the last checkpoint: nothing to do (an idle partition costs a
        // shutdown nothing).
        let end = (st.active.base_offset, st.position);
        if st.synced == end && st.checkpointed == end && !st.producers_dirty && !st.journaled {
            return Ok(());
        }
        let res = st.file.sync_data().and_then(|()| {
            st.synced = (st.active.base_offset, st.position);
            st.journaled = false;
            self.publish_locked(&mut st);
            self.write_checkpoint(&mut st)
        });
        if let Err(e) = &res {
            self.fail(&mut st, &e.to_string());
        }
        res
    }
}

impl ReadResult {
    /// The batches read, each a zero-copy slice.
    pub fn batches(&self) -> impl Iterator<Item = (crate::batch::BatchHeader, Bytes)> + '_ {
        crate::batch::batches_in(&self.batches)
    }

    /// Every record of every batch read (decompressing as needed).
    pub fn records(&self) -> std::result::Result<Vec<crate::batch::RecordView>, crate::BatchError> {
        let mut out = Vec::new();
        for (h, b) in self.batches() {
            out.extend(crate::batch::records::decode_records(&h, &b)?);
        }
        Ok(out)
    }

    /// The offset after the last batch read (where the next read starts), if any was read.
    pub fn next_offset(&self) -> Option<i64> {
        self.batches().last().map(|(h, _)| h.next_offset())
    }
}
