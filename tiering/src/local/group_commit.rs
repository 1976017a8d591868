//! Group commit: one writer task per disk serves every partition on it.
//!
//! Producers validate their batch on their own task, then queue it here. The writer takes
//! everything queued (up to `max_group_bytes`), writes each partition's share with one vectored
//! write, fsyncs every dirty partition of the group at once (in parallel, so the filesystem can
//! fold them into one journal commit), publishes, and only then acknowledges each waiter. While it
//! syncs, new appends queue up and form the next group, so the group size follows the load.
//!
//! The same task takes ticks (seal by age, interval fsync, checkpoints, retention, reopening
//! failed partitions with backoff), forced rolls,
//! flushes and shutdown, so all writes to a partition's files come from one place. Wait time in the
//! queue, write time and sync time are measured separately (see [`crate::stats`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::task::Task;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::fs::LogFile;
use super::journal::{self, Entry, Journal};
use super::partition::{AppendInfo, Durable, Partition};
use crate::batch::ValidatedBatch;
use crate::batch::header::HEADER_LEN;
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::stats;

/// Settings of a disk's writer task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Appends that may wait in the queue before producers are made to wait (backpressure).
    /// Default 8192; at least 1.
    pub queue_capacity: usize,
    /// Most bytes one group takes from the queue. Default 16 MiB; at least 64 KiB. Larger groups
    /// mean fewer fsyncs but a longer wait for the first append of a group.
    pub max_group_bytes: usize,
    /// How often periodic work runs (segment age, interval fsync, checkpoints, retention).
    /// Default 100 ms; bounds 1..=60000.
    pub tick_ms: u64,
    /// How a group with several dirty partitions is made durable. `auto` (default): one
    /// `syncfs(2)` on the data dir's filesystem, which costs about one fsync whatever the number of
    /// partitions, but also flushes anything else dirty on that filesystem: best on a disk
    /// dedicated to tierlog (it falls back to `per-file` on kernels before 5.8, whose syncfs does
    /// not report write errors). `per-file`: fdatasync each partition, in parallel.
    pub sync_strategy: SyncStrategy,
    /// Use the disk journal for groups that dirty at least `journal_min_partitions` partitions
    /// under fsync durability: their batches are appended to one journal file and made durable
    /// with one fdatasync; segment files are fsynced later, before the journal forgets them.
    /// Costs a second copy of those bytes on disk. Default true.
    pub journal: bool,
    /// See `journal`. Default 4; at least 2.
    pub journal_min_partitions: usize,
    /// Start a new journal file (after fsyncing the segments the current one covers) once it
    /// reaches this size. Bounds the journal's disk use and what recovery replays. Default
    /// 128 MiB; bounds 1 MiB..=16 GiB.
    pub journal_file_bytes: u64,
    /// Threads that fdatasync the partitions of one group in parallel under `per-file`.
    /// Default 16; bounds 1..=256.
    pub sync_threads: usize,
}

/// See [`WriterConfig::sync_strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStrategy {
    #[default]
    Auto,
    PerFile,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
            max_group_bytes: 16 << 20,
            tick_ms: 100,
            journal: true,
            journal_min_partitions: 4,
            journal_file_bytes: 128 << 20,
            sync_strategy: SyncStrategy::Auto,
            sync_threads: 16,
        }
    }
}

impl WriterConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| Err(Error::InvalidConfig { field, reason: reason.to_owned() });
        if self.queue_capacity == 0 {
            return bad("writer.queue_capacity", "must be at least 1");
        }
        if self.max_group_bytes < 64 << 10 {
            return bad("writer.max_group_bytes", "must be at least 65536");
        }
        if !(1..=60_000).contains(&self.tick_ms) {
            return bad("writer.tick_ms", "must be within 1..=60000");
        }
        if self.journal_min_partitions < 2 {
            return bad("writer.journal_min_partitions", "must be at least 2");
        }
        if !((1 << 20)..=(16 << 30)).contains(&self.journal_file_bytes) {
            return bad("writer.journal_file_bytes", "must be within 1048576..=17179869184");
        }
        if !(1..=256).contains(&self.sync_threads) {
            return bad("writer.sync_threads", "must be within 1..=256");
        }
        Ok(())
    }
}

enum Command {
    Append {
        partition: Arc<Partition>,
        batch: ValidatedBatch,
        enqueued: Instant,
        ack: oneshot::Sender<Result<AppendInfo>>,
    },
    Register(Arc<Partition>),
    /// Stops the periodic work on a partition (its topic is being deleted) and closes it, after
    /// every append queued before.
    Unregister {
        partition: Arc<Partition>,
        ack: oneshot::Sender<Result<()>>,
    },
    Roll {
        partition: Arc<Partition>,
        ack: oneshot::Sender<Result<()>>,
    },
    Tick {
        ack: Option<oneshot::Sender<()>>,
    },
    Flush {
        ack: oneshot::Sender<Result<()>>,
    },
    Shutdown {
        ack: oneshot::Sender<Result<()>>,
    },
}

/// Handle to a disk's writer task. Cheap to share behind an `Arc`.
pub struct LogWriter {
    tx: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    ticker: Task<()>,
}

/// Sends the writer its periodic `Tick`.
struct Ticker(mpsc::WeakSender<Command>);

impl crate::task::Worker for Ticker {
    type Msg = ();
    async fn tick(&mut self) -> Result<()> {
        let Some(tx) = self.0.upgrade() else { return Ok(()) };
        // A stopped writer is not an error of the ticker: the writer's owner closes both.
        let _ = tx.send(Command::Tick { ack: None }).await;
        Ok(())
    }
    async fn message(&mut self, (): ()) -> Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

fn closed() -> Error {
    Error::Closed { reason: None }
}

impl LogWriter {
    /// Starts the writer thread and its ticker (a [`crate::task`] on `clock`, on the current tokio
    /// runtime). `journal` is the disk journal (see [`super::journal`]), already replayed; `None`
    /// runs without one.
    pub fn start(config: WriterConfig, journal: Option<Journal>, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Closed { reason: Some("LogWriter::start must run on a tokio runtime".into()) });
        }
        let journal = journal.filter(|_| config.journal);
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let thread = std::thread::Builder::new()
            .name("tierlog-writer".into())
            .spawn({
                let config = config.clone();
                move || run(rx, config, journal)
            })
            .map_err(Error::io("spawn writer thread", "tierlog-writer"))?;
        // The ticker holds a weak sender, so dropping every `LogWriter` handle still stops the task.
        let ticker = crate::task::spawn("writer-ticker", clock, config.tick_ms, Ticker(tx.downgrade()));
        Ok(Self { tx, thread: Mutex::new(Some(thread)), ticker })
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        self.tx.send(cmd).await.map_err(|_| closed())
    }

    /// Hands a partition to this writer, for its periodic work.
    pub async fn register(&self, partition: Arc<Partition>) -> Result<()> {
        self.send(Command::Register(partition)).await
    }

    /// Takes a partition back: its queued appends are written first, then it is closed (synced
    /// and checkpointed) and gets no more periodic work.
    pub async fn unregister(&self, partition: &Arc<Partition>) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.send(Command::Unregister { partition: partition.clone(), ack }).await?;
        rx.await.map_err(|_| closed())?
    }

    /// Queues a validated batch and waits for it to be written (and synced, per durability).
    pub async fn append(&self, partition: &Arc<Partition>, batch: ValidatedBatch) -> Result<AppendInfo> {
        self.enqueue(partition, batch).await?.await
    }

    /// Queues a validated batch and returns once it is in the queue: batches queued one after
    /// another on a partition get offsets in that order. The returned future resolves when the
    /// batch is acknowledged. This is how a producer keeps several batches in flight.
    pub async fn enqueue(&self, partition: &Arc<Partition>, batch: ValidatedBatch) -> Result<AppendTicket> {
        let (ack, rx) = oneshot::channel();
        let cmd = Command::Append { partition: partition.clone(), batch, enqueued: Instant::now(), ack };
        self.send(cmd).await?;
        Ok(AppendTicket { rx })
    }

    /// Seals the partition's active segment now, if it holds anything.
    pub async fn roll(&self, partition: &Arc<Partition>) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.send(Command::Roll { partition: partition.clone(), ack }).await?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs the periodic work once now and waits for it (tests drive time with a manual clock).
    pub async fn tick(&self) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.send(Command::Tick { ack: Some(ack) }).await?;
        rx.await.map_err(|_| closed())
    }

    /// fsyncs every partition and writes their checkpoints.
    pub async fn flush(&self) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.send(Command::Flush { ack }).await?;
        rx.await.map_err(|_| closed())?
    }

    /// Finishes every queued append, fsyncs and checkpoints every partition, and stops the task.
    pub async fn shutdown(&self) -> Result<()> {
        self.ticker.close().await;
        let (ack, rx) = oneshot::channel();
        if self.send(Command::Shutdown { ack }).await.is_err() {
            return Ok(()); // already stopped
        }
        let res = rx.await.map_err(|_| closed())?;
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        res
    }
}

/// An append in flight; resolves to its offsets once acknowledged.
#[derive(Debug)]
pub struct AppendTicket {
    rx: oneshot::Receiver<Result<AppendInfo>>,
}

impl std::future::Future for AppendTicket {
    type Output = Result<AppendInfo>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| r.map_err(|_| closed()).and_then(|r| r))
    }
}

type Waiter = (Instant, oneshot::Sender<Result<AppendInfo>>);

/// The appends of one group, by partition in arrival order.
#[derive(Default)]
struct Appends {
    order: Vec<Arc<Partition>>,
    by_partition: HashMap<*const Partition, (Vec<ValidatedBatch>, Vec<Waiter>)>,
}

impl Appends {
    /// Keeps an append; gives any other command back.
    fn take(&mut self, cmd: Command) -> Option<Command> {
        let Command::Append { partition, batch, enqueued, ack } = cmd else { return Some(cmd) };
        let slot = self.by_partition.entry(Arc::as_ptr(&partition)).or_insert_with(|| {
            self.order.push(partition.clone());
            (Vec::new(), Vec::new())
        });
        slot.0.push(batch);
        slot.1.push((enqueued, ack));
        None
    }

    fn commit(
        self,
        config: &WriterConfig,
        journal: &mut Option<Journal>,
        partitions: &[Arc<Partition>],
        rotation: &mut Option<Rotation>,
    ) {
        if !self.order.is_empty() {
            commit_group(config, journal, self.order, self.by_partition);
            maybe_rotate(config, journal, partitions, rotation, false);
        }
    }
}

/// fsyncs one tick may spend closing the handles of partitions gone idle (see
/// `Partition::tick`): at the default 100 ms tick, 80 a second.
const IDLE_SYNCS_PER_TICK: u32 = 8;

/// How long the writer polls its queue before parking. A producer that waits for its ack sends its
/// next batch a few microseconds after it; catching it without a park and wake-up saves tens of
/// microseconds per append on a lightly loaded disk.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(60);

fn append_bytes(cmd: &Command) -> usize {
    if let Command::Append { batch, .. } = cmd { batch.len() } else { 0 }
}

fn next_command(rx: &mut mpsc::Receiver<Command>) -> Option<Command> {
    let start = Instant::now();
    while start.elapsed() < SPIN_BEFORE_PARK {
        match rx.try_recv() {
            Ok(cmd) => return Some(cmd),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.blocking_recv()
}

/// The writer task's loop.
fn run(mut rx: mpsc::Receiver<Command>, config: WriterConfig, mut journal: Option<Journal>) {
    let mut partitions: Vec<Arc<Partition>> = Vec::new();
    let mut shutdown: Option<oneshot::Sender<Result<()>>> = None;
    let mut rotation: Option<Rotation> = None;
    while shutdown.is_none() {
        let Some(first) = next_command(&mut rx) else { break };
        let mut bytes = append_bytes(&first);
        let mut group = vec![first];
        while bytes < config.max_group_bytes {
            match rx.try_recv() {
                Ok(cmd) => {
                    bytes += append_bytes(&cmd);
                    group.push(cmd);
                }
                Err(_) => break,
            }
        }
        // Appends first, grouped by partition in arrival order; then the rest in order.
        let mut appends = Appends::default();
        let mut others = Vec::new();
        for cmd in group {
            match appends.take(cmd) {
                Some(Command::Register(p)) => partitions.push(p),
                Some(other) => others.push(other),
                None => {}
            }
        }
        appends.commit(&config, &mut journal, &partitions, &mut rotation);
        for cmd in others {
            match cmd {
                Command::Tick { ack } => {
                    maybe_rotate(&config, &mut journal, &partitions, &mut rotation, false);
                    let mut idle_syncs = IDLE_SYNCS_PER_TICK;
                    for p in &partitions {
                        // A failed partition's error was logged when it failed, and a failed
                        // reopen logs its own; either way it stays failed until a reopen works.
                        let _ = p.reopen_if_due(journal.as_ref().map(|j| (j.fs(), j.dir())));
                        if let Err(e) = p.tick(&mut idle_syncs) {
                            tracing::warn!(topic = p.topic(), partition = p.id(), error = %e, "periodic work failed");
                        }
                    }
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                }
                Command::Roll { partition, ack } => {
                    let _ = ack.send(partition.roll());
                }
                Command::Unregister { partition, ack } => {
                    partitions.retain(|p| !Arc::ptr_eq(p, &partition));
                    let _ = ack.send(partition.close());
                }
                Command::Flush { ack } => {
                    maybe_rotate(&config, &mut journal, &partitions, &mut rotation, true);
                    // Every segment is synced: the journal can start afresh.
                    let res = close_all(&partitions).and_then(|()| journal.as_mut().map_or(Ok(()), |j| j.rotate()));
                    let _ = ack.send(res);
                }
                Command::Shutdown { ack } => shutdown = Some(ack),
                Command::Append { .. } | Command::Register(_) => {}
            }
        }
    }
    // Take no more; finish what is queued.
    rx.close();
    let mut leftover = Vec::new();
    while let Ok(cmd) = rx.try_recv() {
        leftover.push(cmd);
    }
    let mut appends = Appends::default();
    for cmd in leftover {
        match appends.take(cmd) {
            Some(Command::Register(p)) => partitions.push(p),
            Some(
                Command::Roll { ack, .. }
                | Command::Flush { ack }
                | Command::Shutdown { ack }
                | Command::Unregister { ack, .. },
            ) => {
                let _ = ack.send(Err(closed()));
            }
            _ => {}
        }
    }
    appends.commit(&config, &mut journal, &partitions, &mut rotation);
    maybe_rotate(&config, &mut journal, &partitions, &mut rotation, true);
    let mut res = close_all(&partitions);
    // Every segment is synced now; the journal is no longer needed.
    if let (Ok(()), Some(j)) = (&res, journal) {
        res = j.retire_all();
    }
    if let Err(e) = &res {
        tracing::error!(error = %e, "closing partitions failed");
    }
    if let Some(ack) = shutdown {
        let _ = ack.send(res);
    }
}

/// Closes every partition, a few at a time (their fsyncs overlap on the disk).
fn close_all(partitions: &[Arc<Partition>]) -> Result<()> {
    const THREADS: usize = 8;
    let close = |chunk: &[Arc<Partition>]| {
        let mut first_err = None;
        for p in chunk {
            if let Err(e) = p.close() {
                tracing::error!(topic = p.topic(), partition = p.id(), error = %e, "close failed");
                first_err.get_or_insert(e);
            }
        }
        first_err
    };
    let per = partitions.len().div_ceil(THREADS).max(1);
    let errors: Vec<Option<Error>> = std::thread::scope(|s| {
        let workers: Vec<_> = partitions.chunks(per).map(|c| s.spawn(move || close(c))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Some(closed()))).collect()
    });
    errors.into_iter().flatten().next().map_or(Ok(()), Err)
}

/// One group: write every partition's batches, fsync the dirty ones together, publish, ack.
fn commit_group(
    config: &WriterConfig,
    journal: &mut Option<Journal>,
    order: Vec<Arc<Partition>>,
    mut appends: HashMap<*const Partition, (Vec<ValidatedBatch>, Vec<Waiter>)>,
) {
    let started = Instant::now();
    let mut group_bytes = 0usize;
    let mut work = Vec::with_capacity(order.len());
    for p in order {
        let (batches, waiters) =
            appends.remove(&Arc::as_ptr(&p)).expect("invariant: every ordered partition has appends");
        for (enqueued, _) in &waiters {
            metrics::histogram!(stats::GROUP_QUEUE_SECONDS).record(started.duration_since(*enqueued).as_secs_f64());
        }
        group_bytes += batches.iter().map(|b| b.len()).sum::<usize>();
        let records: i64 = batches.iter().map(|b| b.header().record_count as i64).sum();
        let written = p.write_group(&batches);
        work.push((p, written, batches, waiters, records));
    }
    let written = Instant::now();
    metrics::histogram!(stats::GROUP_WRITE_SECONDS).record(written.duration_since(started).as_secs_f64());

    let mut durable: Vec<Durable> = (0..work.len()).map(|_| Durable::NotNeeded).collect();
    // Partitions that must be durable now under fsync durability: through the journal when there
    // are enough of them.
    let fsync_now: Vec<usize> =
        (0..work.len()).filter(|&i| work[i].1.sync.is_some() && work[i].0.durability() == Durability::Fsync).collect();
    let mut journaled = vec![false; work.len()];
    if let Some(j) = journal.as_mut().filter(|_| fsync_now.len() >= config.journal_min_partitions) {
        let mut entries = Vec::new();
        for &i in &fsync_now {
            let (p, w, batches, _, _) = &work[i];
            for (b, h) in &w.headers {
                entries.push(Entry { partition: p.name(), header: h, rest: &batches[*b].bytes()[HEADER_LEN..] });
            }
        }
        let res = j.append(&entries);
        if let Err(e) = &res {
            tracing::error!(error = %e, "journal append failed; continuing in a new journal file");
            if let Err(e) = j.start_next_file() {
                tracing::error!(error = %e, "cannot start a new journal file; journaling stops until restart");
                *journal = None;
            }
        }
        for &i in &fsync_now {
            journaled[i] = true;
            durable[i] =
                Durable::Journaled(res.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string())));
        }
    }
    let files: Vec<(usize, Arc<dyn LogFile>)> = work
        .iter()
        .enumerate()
        .filter(|(i, _)| !journaled[*i])
        .filter_map(|(i, w)| w.1.sync.clone().map(|f| (i, f)))
        .collect();
    for (i, res) in sync_files(&files, config) {
        durable[i] = Durable::Synced(res);
    }
    metrics::histogram!(stats::GROUP_SYNC_SECONDS).record(written.elapsed().as_secs_f64());
    metrics::histogram!(stats::GROUP_BYTES).record(group_bytes as f64);
    metrics::histogram!(stats::GROUP_PARTITIONS).record(work.len() as f64);

    for ((p, written, batches, waiters, records), how) in work.into_iter().zip(durable) {
        let mut results = written.results;
        let batches = batches.len();
        if let Err(e) = p.publish(how) {
            let reason = e.to_string();
            for r in results.iter_mut() {
                if r.is_ok() {
                    *r = Err(p.unavailable(&reason));
                }
            }
        }
        if results.iter().all(|r| r.is_ok()) {
            metrics::counter!(stats::APPEND_BATCHES).increment(batches as u64);
            metrics::counter!(stats::APPEND_RECORDS).increment(records as u64);
        }
        for ((_, ack), r) in waiters.into_iter().zip(results) {
            let _ = ack.send(r);
        }
    }
    metrics::counter!(stats::APPEND_BYTES).increment(group_bytes as u64);
}

/// Whether this kernel's syncfs reports writeback errors (Linux 5.8 and later).
fn syncfs_reports_errors() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
        let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= (5, 8)
    })
}

/// A journal rotation in flight: the segments the old files cover are being fsynced on a
/// background thread; the old files are deleted when that succeeds.
struct Rotation {
    /// Files before this sequence number are covered.
    keep_from: u64,
    snapshots: Vec<(Arc<Partition>, i64, u64)>,
    done: std::sync::mpsc::Receiver<bool>,
}

/// Finishes a rotation whose syncs are done (`wait`: block until they are), and starts one when
/// the journal file is full. Rotation never stops the writer: new groups go to a new file at once.
fn maybe_rotate(
    config: &WriterConfig,
    journal: &mut Option<Journal>,
    partitions: &[Arc<Partition>],
    rotation: &mut Option<Rotation>,
    wait: bool,
) {
    if let Some(r) = rotation.as_ref() {
        let outcome = if wait { r.done.recv().ok() } else { r.done.try_recv().ok() };
        match outcome {
            None if !wait => return, // still syncing
            Some(true) => {
                for (p, base, position) in &r.snapshots {
                    p.segment_synced(*base, *position);
                }
                if let Some(j) = journal.as_ref()
                    && let Err(e) = journal::retire_before(j.fs(), j.dir(), r.keep_from)
                {
                    tracing::error!(error = %e, "retiring old journal files failed");
                }
            }
            _ => tracing::error!("fsync before journal rotation failed; old journal files are kept"),
        }
        *rotation = None;
    }
    let Some(j) = journal.as_mut().filter(|j| j.size() >= config.journal_file_bytes) else { return };
    if let Err(e) = j.start_next_file() {
        tracing::error!(error = %e, "cannot start a new journal file");
        return;
    }
    let keep_from = j.seq();
    let mut snapshots = Vec::new();
    let mut files = Vec::new();
    for p in partitions {
        if let Some((f, base, position)) = p.journaled_file() {
            // Indexed like `snapshots`, so a failed sync names its partition.
            files.push((snapshots.len(), f));
            snapshots.push((p.clone(), base, position));
        }
    }
    let (tx, done) = std::sync::mpsc::channel();
    let config = config.clone();
    let failing: Vec<Arc<Partition>> = snapshots.iter().map(|(p, _, _)| p.clone()).collect();
    let spawned = std::thread::Builder::new().name("tierlog-journal-sync".into()).spawn(move || {
        let mut ok = true;
        for (i, r) in sync_files(&files, &config) {
            if let Err(e) = r {
                // Never retried into a false success: the partition fails, the journal keeps
                // its entries, and recovery rewrites them into the segment.
                failing[i].fail_io(&format!("fsync segment before journal rotation: {e}"));
                ok = false;
            }
        }
        let _ = tx.send(ok);
    });
    match spawned {
        Ok(_) => *rotation = Some(Rotation { keep_from, snapshots, done }),
        Err(e) => tracing::error!(error = %e, "cannot start the journal sync thread"),
    }
}

/// Makes the files durable: one fdatasync for one file; for several, one syncfs (every partition of
/// a writer lives under its data dir, on one filesystem) or parallel fdatasyncs.
fn sync_files(files: &[(usize, Arc<dyn LogFile>)], config: &WriterConfig) -> Vec<(usize, std::io::Result<()>)> {
    if files.len() <= 1 {
        return files.iter().map(|(i, f)| (*i, f.sync_data())).collect();
    }
    if config.sync_strategy == SyncStrategy::Auto && syncfs_reports_errors() {
        let res = files[0].1.sync_filesystem();
        return files
            .iter()
            .map(|(i, _)| (*i, res.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string()))))
            .collect();
    }
    let threads = config.sync_threads;
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.min(files.len()) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((i, f)) = files.get(k) else { break };
                    let r = f.sync_data();
                    out.lock().expect("invariant: sync results lock not poisoned").push((*i, r));
                }
            });
        }
    });
    out.into_inner().expect("invariant: sync results lock not poisoned")
}
