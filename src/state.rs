//! State at a point: the latest value of every key among the records at or before a time or an
//! offset, tombstones applied, streamed in key order.
//!
//! - **The point.** `At::Time(t)` covers, in each partition, the records with offset
//!   `< offset_for_time(t)`: Kafka's "as of t". With non-monotonic timestamps that is decided by
//!   offset, not by each record's own timestamp: a record appended before the first record stamped
//!   `>= t` counts even if its own timestamp is later than `t`, and one appended after it does not
//!   count even if stamped earlier. `At::Offset(o)` covers offsets `<= o` of each partition.
//! - **Latest.** Within a partition the record with the highest offset wins. When a key appears
//!   in several partitions (producers that pick partitions themselves), the record with the
//!   latest timestamp wins, ties going to the higher partition. A record with a null value (a
//!   tombstone) deletes its key; keyless records are not state and are skipped.
//! - **Memory.** Records are folded into a map until it holds about `memory_bytes`; then the map
//!   is sorted by key and spilled to a run file under `<data_dir>/tmp/`, and the output is a
//!   merge of the runs. Memory stays near `memory_bytes` whatever the number of keys; the output
//!   is a stream (a bounded channel fed by a merging thread), so a slow consumer holds it back.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::io;
use crate::error::{Error, Result};
use crate::replay::{Merge, Position, ReplaySpec, resolve_range};
use tiering::object_store::ObjectStoreExt;
use tiering::remote::SnapshotRef;

/// The point of a state query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// As of this time (ms since the epoch): offsets `< offset_for_time(t)`.
    Time(i64),
    /// Up to and including this offset, in each partition.
    Offset(i64),
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct StateSpec {
    /// `None`: every partition of the topic.
    pub partitions: Option<Vec<u32>>,
    pub at: At,
    /// The fold map's budget before it spills to disk. Default 64 MiB.
    pub memory_bytes: usize,
    /// Start each partition from its newest state snapshot inside the range (default true);
    /// false replays from the log start (to check snapshots, or measure without them).
    pub use_snapshots: bool,
}

impl StateSpec {
    pub fn new(at: At) -> Self {
        Self { partitions: None, at, memory_bytes: 64 << 20, use_snapshots: true }
    }
}

/// One key's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub key: Bytes,
    pub value: Bytes,
    /// Where the winning record is.
    pub partition: u32,
    pub offset: i64,
    pub timestamp: i64,
}

/// The latest record of a key so far (`value: None` is a tombstone).
#[derive(Debug, Clone)]
struct Latest {
    value: Option<Bytes>,
    partition: u32,
    offset: i64,
    timestamp: i64,
}

impl Latest {
    /// Whether `self` supersedes `other` (see the module docs).
    fn newer_than(&self, other: &Latest) -> bool {
        if self.partition == other.partition {
            self.offset > other.offset
        } else {
            (self.timestamp, self.partition) > (other.timestamp, other.partition)
        }
    }
}

/// Fixed bytes per map entry on top of key and value (map slot, Bytes headers).
const ENTRY_OVERHEAD: usize = 96;

/// A state computation's scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// State in key order: call [`StateStream::next`] until `None`.
pub struct StateStream {
    rx: mpsc::Receiver<Result<StateEntry>>,
    /// Records replayed from the log, rows read from snapshots, and runs spilled to disk.
    pub records: u64,
    pub from_snapshots: u64,
    pub spilled_runs: usize,
}

impl StateStream {
    pub async fn next(&mut self) -> Result<Option<StateEntry>> {
        self.rx.recv().await.transpose()
    }
}

/// The fold: key -> latest, spilled to sorted runs past the budget.
struct Fold {
    map: HashMap<Bytes, Latest>,
    used: usize,
    budget: usize,
    runs: Vec<PathBuf>,
    scratch: Scratch,
}

impl Fold {
    async fn add(&mut self, key: Bytes, latest: Latest) -> Result<()> {
        let size = latest.value.as_ref().map_or(0, |v| v.len());
        match self.map.get_mut(&key) {
            Some(old) => {
                if latest.newer_than(old) {
                    self.used = self.used.saturating_sub(old.value.as_ref().map_or(0, |v| v.len())) + size;
                    *old = latest;
                }
            }
            None => {
                self.used += key.len() + size + ENTRY_OVERHEAD;
                self.map.insert(key, latest);
            }
        }
        if self.used >= self.budget {
            self.spill().await?;
        }
        Ok(())
    }

    async fn spill(&mut self) -> Result<()> {
        let path = self.scratch.0.join(format!("run-{}.bin", self.runs.len()));
        let entries = sorted(std::mem::take(&mut self.map));
        let path = blocking(move || write_run(&path, &entries).map(|()| path)).await??;
        self.runs.push(path);
        self.used = 0;
        Ok(())
    }

    /// The state, in key order, through a bounded channel.
    async fn finish(mut self, records: u64, from_snapshots: u64) -> Result<StateStream> {
        let (tx, rx) = mpsc::channel(1024);
        let spilled_runs = self.runs.len();
        if self.runs.is_empty() {
            let entries = sorted(self.map);
            tokio::spawn(async move {
                for (key, l) in entries {
                    if let Some(e) = entry(key, l)
                        && tx.send(Ok(e)).await.is_err()
                    {
                        return;
                    }
                }
            });
        } else {
            if !self.map.is_empty() {
                self.spill().await?;
            }
            // The merge runs on a blocking thread (it reads the run files) and feeds the channel.
            let (runs, budget, scratch) = (self.runs, self.budget, self.scratch);
            tokio::task::spawn_blocking(move || {
                let _scratch = scratch;
                if let Err(e) = merge_runs(&runs, budget, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            });
        }
        Ok(StateStream { rx, records, from_snapshots, spilled_runs })
    }
}

pub(crate) async fn state_at(engine: &Engine, topic: &str, spec: StateSpec) -> Result<StateStream> {
    let to = match spec.at {
        At::Time(t) => Position::Time(t),
        At::Offset(o) => Position::Offset(o.saturating_add(1)),
    };
    let all = engine.partition_count(topic)?;
    let partitions = spec.partitions.clone().unwrap_or_else(|| (0..all).collect());
    let scratch_dir = engine.config().data_dir.join("tmp").join(format!(
        "state-{}-{}",
        std::process::id(),
        tiering::clock::wall_clock_nanos()
    ));
    let mut fold = Fold {
        map: HashMap::new(),
        used: 0,
        budget: spec.memory_bytes,
        runs: Vec::new(),
        scratch: Scratch(scratch_dir),
    };
    let (mut records, mut from_snapshots) = (0u64, 0u64);
    for p in partitions {
        if p >= all {
            return Err(Error::UnknownPartition { topic: topic.to_owned(), partition: p, partitions: all });
        }
        // Start from the newest snapshot inside the range, if any, and replay only what follows.
        let (start, end) = resolve_range(engine, topic, p, Position::Earliest, to).await?;
        let mut from = start;
        if spec.use_snapshots
            && let Some(snap) = engine.remote_head(topic, p)?.snapshot_before(end).cloned()
        {
            for row in load_snapshot(engine, &snap).await? {
                from_snapshots += 1;
                let latest =
                    Latest { value: Some(row.value), partition: p, offset: row.offset, timestamp: row.timestamp };
                fold.add(row.key, latest).await?;
            }
            from = from.max(snap.offset + 1);
        }
        let replay_spec = ReplaySpec {
            partitions: Some(vec![p]),
            from: Position::Offset(from),
            to: Position::Offset(end),
            merge: Merge::Sequential,
            ..Default::default()
        };
        let mut replay = engine.replay(topic, replay_spec).await?;
        while let Some(r) = replay.next().await? {
            records += 1;
            let Some(key) = r.key else { continue };
            fold.add(key, Latest { value: r.value, partition: r.partition, offset: r.offset, timestamp: r.timestamp })
                .await?;
        }
    }
    fold.finish(records, from_snapshots).await
}

/// A snapshot's rows (one GET of the object).
async fn load_snapshot(
    engine: &Engine,
    snap: &tiering::remote::manifest::SnapshotRef,
) -> Result<Vec<compaction::snapshot::SnapshotRow>> {
    let key = tiering::object_store::path::Path::from(snap.key.as_str());
    let store = engine.object_store();
    let remote = |error| Error::Remote { op: "read snapshot", key: snap.key.clone(), error };
    let bytes = store.get(&key).await.map_err(remote)?.bytes().await.map_err(remote)?;
    blocking(move || compaction::snapshot::decode(bytes)).await?.map_err(|reason| Error::Corrupt {
        path: snap.key.clone().into(),
        position: 0,
        reason: format!("snapshot: {reason}"),
    })
}

fn entry(key: Bytes, l: Latest) -> Option<StateEntry> {
    l.value.map(|value| StateEntry { key, value, partition: l.partition, offset: l.offset, timestamp: l.timestamp })
}

fn sorted(map: HashMap<Bytes, Latest>) -> Vec<(Bytes, Latest)> {
    let mut v: Vec<(Bytes, Latest)> = map.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Closed { reason: Some(format!("state task failed: {e}")) })
}

/// A run file: entries sorted by key, each `[key len u32][key][has value u8][value len u32]
/// [value][partition u32][offset i64][timestamp i64]`, little-endian.
fn write_run(path: &Path, entries: &[(Bytes, Latest)]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create state scratch dir", dir))?;
    }
    let file = File::create(path).map_err(io("create state run", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut put = |bytes: &[u8]| w.write_all(bytes);
    for (key, l) in entries {
        let value = l.value.as_deref().unwrap_or_default();
        (|| -> std::io::Result<()> {
            put(&(key.len() as u32).to_le_bytes())?;
            put(key)?;
            put(&[l.value.is_some() as u8])?;
            put(&(value.len() as u32).to_le_bytes())?;
            put(value)?;
            put(&l.partition.to_le_bytes())?;
            put(&l.offset.to_le_bytes())?;
            put(&l.timestamp.to_le_bytes())
        })()
        .map_err(io("write state run", path))?;
    }
    w.flush().map_err(io("write state run", path))
}

struct RunReader {
    path: PathBuf,
    r: BufReader<File>,
}

impl RunReader {
    fn next(&mut self) -> Result<Option<(Bytes, Latest)>> {
        let mut len = [0u8; 4];
        match self.r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io("read state run", &self.path)(e)),
        }
        let path = self.path.clone();
        let mut read = |n: usize| -> Result<Vec<u8>> {
            let mut b = vec![0u8; n];
            self.r.read_exact(&mut b).map_err(io("read state run", &path))?;
            Ok(b)
        };
        let key = read(u32::from_le_bytes(len) as usize)?;
        let has = read(1)?[0] == 1;
        let vlen = u32::from_le_bytes(read(4)?.try_into().expect("invariant: 4 bytes"));
        let value = read(vlen as usize)?;
        let partition = u32::from_le_bytes(read(4)?.try_into().expect("invariant: 4 bytes"));
        let offset = i64::from_le_bytes(read(8)?.try_into().expect("invariant: 8 bytes"));
        let timestamp = i64::from_le_bytes(read(8)?.try_into().expect("invariant: 8 bytes"));
        let value = has.then(|| Bytes::from(value));
        Ok(Some((Bytes::from(key), Latest { value, partition, offset, timestamp })))
    }
}

/// Heap item: the next entry of run `run`, ordered by key (smallest first).
struct Head {
    key: Bytes,
    latest: Latest,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.run == other.run
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key).then(other.run.cmp(&self.run))
    }
}

/// Merges sorted runs: for each key, the newest entry across runs; tombstones dropped.
/// The runs' read buffers share `budget` (each between 8 and 256 KiB), so the merge stays within
/// the memory the fold had.
fn merge_runs(runs: &[PathBuf], budget: usize, tx: &mpsc::Sender<Result<StateEntry>>) -> Result<()> {
    let mut readers = Vec::with_capacity(runs.len());
    let mut heap = BinaryHeap::with_capacity(runs.len());
    let buffer = (budget / runs.len().max(1)).clamp(8 << 10, 256 << 10);
    for (i, path) in runs.iter().enumerate() {
        let f = File::open(path).map_err(io("open state run", path))?;
        let mut r = RunReader { path: path.clone(), r: BufReader::with_capacity(buffer, f) };
        if let Some((key, latest)) = r.next()? {
            heap.push(Head { key, latest, run: i });
        }
        readers.push(r);
    }
    while let Some(Head { key, mut latest, run }) = heap.pop() {
        if let Some((k, l)) = readers[run].next()? {
            heap.push(Head { key: k, latest: l, run });
        }
        while heap.peek().is_some_and(|h| h.key == key) {
            let h = heap.pop().expect("invariant: peeked");
            if h.latest.newer_than(&latest) {
                latest = h.latest;
            }
            if let Some((k, l)) = readers[h.run].next()? {
                heap.push(Head { key: k, latest: l, run: h.run });
            }
        }
        if let Some(e) = entry(key, latest)
            && tx.blocking_send(Ok(e)).is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

impl Engine {
    /// Writes a state snapshot of the partition as of the end of what the bucket holds (its
    /// manifest's `next_offset - 1`) and records it in the manifest; `state_at` then starts from
    /// it. `None` when there is nothing new to snapshot.
    pub async fn snapshot(&self, topic: &str, partition: u32) -> Result<Option<SnapshotRef>> {
        let remote = self.remote_log(topic, partition)?;
        let head = remote.manifest().head();
        if head.next_offset <= head.log_start_offset
            || head.snapshots.last().is_some_and(|s| s.offset >= head.next_offset - 1)
        {
            return Ok(None);
        }
        let offset = head.next_offset - 1;
        let spec = StateSpec { partitions: Some(vec![partition]), ..StateSpec::new(At::Offset(offset)) };
        let mut state = self.state_at(topic, spec).await?;
        let encode = |reason: String| Error::Closed {
            reason: Some(format!("encoding a snapshot of {topic}-{partition}: {reason}")),
        };
        let mut writer = compaction::snapshot::SnapshotWriter::new(partition).map_err(encode)?;
        while let Some(e) = state.next().await? {
            let row = compaction::snapshot::SnapshotRow {
                key: e.key,
                value: e.value,
                offset: e.offset,
                timestamp: e.timestamp,
            };
            writer.push(row).map_err(encode)?;
        }
        let (bytes, keys) = tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("blocking task failed: {e}")) })?
            .map_err(encode)?;
        let snap = self
            .uploader()
            .commit_snapshot(&remote, offset, bytes, keys)
            .await
            .map_err(|e| Error::storage(topic, partition, e))?;
        tracing::info!(topic, partition, offset, keys, size = snap.size, "state snapshot written");
        Ok(Some(snap))
    }

    /// The latest value of every key as of a time or an offset, tombstones applied, streamed in
    /// key order with bounded memory (see [`crate::state`]).
    pub async fn state_at(&self, topic: &str, spec: StateSpec) -> Result<StateStream> {
        self.check_open()?;
        state_at(self, topic, spec).await
    }
}
