//! The partition manifest: the only record of what the bucket holds for a partition.
//!
//! It has two parts (DESIGN.md §2):
//! - the **head**, `manifest/head.json`: small JSON that every commit rewrites with a
//!   compare-and-swap on its ETag (`PutMode::Update`). It holds the writer epoch, the remote log
//!   bounds, running totals, the newest segment entries (at most `2 * chunk_segments`), a
//!   reference per older chunk, and the objects waiting for deferred deletion;
//! - **chunks**, `manifest/chunks/<base>-<epoch>-<id>.parquet`: immutable Parquet files (one row
//!   per segment) written create-only (`PutMode::Create`) when the head's entries overflow. Each
//!   chunk reference in the head carries the chunk's offset and time bounds.
//!
//! So a commit writes at most the head plus one chunk, and a lookup by offset or time reads the
//! head (kept in memory by the partition's tier) and at most one chunk (cached in memory).
//!
//! **Fencing.** A writer takes over a partition by bumping the head's epoch with a CAS. Every later
//! commit is a CAS on the ETag it last wrote, so once another writer has bumped the epoch the old
//! writer's next commit fails; it re-reads the head, sees the higher epoch, and reports
//! [`Error::Fenced`]. Object keys carry the epoch and a random id, so writers never overwrite each
//! other's objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::keys::{self, PartitionKeys};
use super::parquet_io::{self, Column, Table};
use crate::error::{Error, Result, remote};

/// The manifest format this code writes and reads.
pub const FORMAT: u32 = 1;

/// One remote segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub base_offset: i64,
    /// The offset after the segment's last record.
    pub next_offset: i64,
    /// Smallest and largest record timestamps (batch base / max timestamps).
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Bytes of the segment object and of its index object.
    pub size: u64,
    pub index_size: u64,
    pub records: u64,
    pub batches: u64,
    /// Writer epoch and random id: part of both object keys.
    pub epoch: u64,
    pub id: String,
    pub uploaded_ms: i64,
}

impl SegmentEntry {
    pub fn segment_key(&self, keys: &PartitionKeys) -> Path {
        keys.segment(self.base_offset, self.epoch, &self.id)
    }
    pub fn index_key(&self, keys: &PartitionKeys) -> Path {
        keys.index(self.base_offset, self.epoch, &self.id)
    }
}

/// An immutable chunk of older entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// 0: written from the head's overflow (`chunk_segments` entries); 1: merged from
    /// [`MERGE_FANOUT`] level-0 chunks.
    #[serde(default)]
    pub level: u8,
    pub base_offset: i64,
    pub next_offset: i64,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    pub segments: u64,
    pub bytes: u64,
    pub records: u64,
    pub epoch: u64,
    pub id: String,
}

impl ChunkRef {
    pub fn key(&self, keys: &PartitionKeys) -> Path {
        keys.chunk(self.base_offset, self.epoch, &self.id)
    }
}

/// An object dropped from the manifest, deleted once `delete_after_ms` has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelete {
    pub key: String,
    pub delete_after_ms: i64,
}

/// Running totals of the live remote log, so retention by size is O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub segments: u64,
    pub bytes: u64,
    pub records: u64,
}

/// The manifest head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub format: u32,
    pub topic: String,
    pub partition: u32,
    /// The epoch of the writer that owns the partition; bumped by every new writer.
    pub epoch: u64,
    /// Who holds the epoch (for operators; not used for decisions).
    pub writer: String,
    /// Commit counter: every commit writes `seq + 1`.
    pub seq: u64,
    /// The first offset the remote tier serves (retention moves it forward).
    pub log_start_offset: i64,
    /// The offset after the last remote segment.
    pub next_offset: i64,
    pub totals: Totals,
    /// Older entries, oldest first.
    pub chunks: Vec<ChunkRef>,
    /// The newest entries, oldest first, all at or above every chunk.
    pub segments: Vec<SegmentEntry>,
    pub pending_deletes: Vec<PendingDelete>,
    /// State snapshots, oldest first (at most [`MAX_SNAPSHOTS`]; older ones are deleted).
    #[serde(default)]
    pub snapshots: Vec<SnapshotRef>,
    /// What compaction and merging did to the remote log.
    #[serde(default)]
    pub compaction: CompactionState,
}

/// Compaction and merging of a partition's remote log, as recorded in its manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionState {
    /// Key compaction has cleaned the log below this offset: every record there is the latest of
    /// its key as of this offset (or newer records of its key follow).
    pub cleaned_to: i64,
    /// Key-compaction passes committed.
    pub passes: u64,
    /// Records removed by key compaction, in all.
    pub removed_records: u64,
    /// Segments merged away (input segments minus output segments), in all.
    pub merged_segments: u64,
    /// When the last rewrite was committed (ms since the epoch; 0: never).
    pub last_ms: i64,
}

/// Live segments swapped for rewritten ones that cover exactly the same offsets (key compaction,
/// merging). Readers holding the old entries keep reading the old objects, which are deleted
/// only after the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replace {
    /// The live entries replaced: contiguous, and the commit fails with [`Error::Conflict`]
    /// unless the manifest still holds exactly these.
    pub old: Vec<SegmentEntry>,
    /// Their replacement: contiguous, from the first old base offset to the last old next offset.
    pub new: Vec<SegmentEntry>,
}

impl Replace {
    fn bounds(&self) -> Option<(i64, i64)> {
        let contiguous = |v: &[SegmentEntry]| v.windows(2).all(|w| w[0].next_offset == w[1].base_offset);
        let (of, ol) = (self.old.first()?, self.old.last()?);
        let (nf, nl) = (self.new.first()?, self.new.last()?);
        let ok = contiguous(&self.old)
            && contiguous(&self.new)
            && of.base_offset == nf.base_offset
            && ol.next_offset == nl.next_offset;
        ok.then_some((of.base_offset, ol.next_offset))
    }
}

/// Snapshots a manifest keeps; an older one is dropped (and deleted after the grace period)
/// when a new one is committed.
pub const MAX_SNAPSHOTS: usize = 4;

/// A state snapshot in the bucket: the state of the partition as of offsets `<= offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    pub offset: i64,
    /// Object key.
    pub key: String,
    pub size: u64,
    /// Live keys in it.
    pub keys: u64,
    pub created_ms: i64,
}

impl Head {
    /// The newest snapshot covering at most offsets `< end`.
    pub fn snapshot_before(&self, end: i64) -> Option<&SnapshotRef> {
        self.snapshots.iter().rev().find(|s| s.offset < end)
    }

    pub fn empty(topic: &str, partition: u32) -> Self {
        Head {
            format: FORMAT,
            topic: topic.to_owned(),
            partition,
            epoch: 0,
            writer: String::new(),
            seq: 0,
            log_start_offset: 0,
            next_offset: 0,
            totals: Totals::default(),
            chunks: Vec::new(),
            segments: Vec::new(),
            pending_deletes: Vec::new(),
            snapshots: Vec::new(),
            compaction: CompactionState::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.totals.segments == 0
    }

    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("invariant: the head serializes"))
    }

    fn decode(key: &Path, bytes: &[u8]) -> Result<Self> {
        let head: Head = serde_json::from_slice(bytes).map_err(|e| corrupt(key, format!("manifest head: {e}")))?;
        if head.format != FORMAT {
            return Err(corrupt(key, format!("manifest format {} is not {FORMAT}", head.format)));
        }
        Ok(head)
    }
}

fn corrupt(key: &Path, reason: String) -> Error {
    Error::Corrupt { path: key.as_ref().into(), position: 0, reason }
}

fn encode_chunk(entries: &[SegmentEntry]) -> Result<Bytes, String> {
    let i64s = |name, f: &dyn Fn(&SegmentEntry) -> i64| Column::I64(name, entries.iter().map(f).collect());
    parquet_io::write(vec![
        i64s("base_offset", &|e| e.base_offset),
        i64s("next_offset", &|e| e.next_offset),
        i64s("min_timestamp", &|e| e.min_timestamp),
        i64s("max_timestamp", &|e| e.max_timestamp),
        i64s("size", &|e| e.size as i64),
        i64s("index_size", &|e| e.index_size as i64),
        i64s("records", &|e| e.records as i64),
        i64s("batches", &|e| e.batches as i64),
        i64s("epoch", &|e| e.epoch as i64),
        Column::Str("id", entries.iter().map(|e| e.id.clone()).collect()),
        i64s("uploaded_ms", &|e| e.uploaded_ms),
    ])
}

fn decode_chunk(bytes: Bytes, r: &ChunkRef) -> Result<Vec<SegmentEntry>, String> {
    let t = Table::read(bytes)?;
    let names = [
        "base_offset",
        "next_offset",
        "min_timestamp",
        "max_timestamp",
        "size",
        "index_size",
        "records",
        "batches",
        "epoch",
        "uploaded_ms",
    ];
    let c: Vec<Vec<i64>> = names.iter().map(|n| t.i64(n)).collect::<Result<_, _>>()?;
    let ids = t.str("id")?;
    let entries: Vec<SegmentEntry> = (0..t.rows())
        .map(|i| SegmentEntry {
            base_offset: c[0][i],
            next_offset: c[1][i],
            min_timestamp: c[2][i],
            max_timestamp: c[3][i],
            size: c[4][i] as u64,
            index_size: c[5][i] as u64,
            records: c[6][i] as u64,
            batches: c[7][i] as u64,
            epoch: c[8][i] as u64,
            id: ids[i].clone(),
            uploaded_ms: c[9][i],
        })
        .collect();
    let contiguous = entries.windows(2).all(|w| w[0].next_offset == w[1].base_offset);
    let bounds = entries.first().map(|e| e.base_offset) == Some(r.base_offset)
        && entries.last().map(|e| e.next_offset) == Some(r.next_offset)
        && entries.len() as u64 == r.segments;
    if !contiguous || !bounds {
        return Err("chunk entries do not match the head's reference".into());
    }
    Ok(entries)
}

/// Level-0 chunks merged into one level-1 chunk. With the default 256 entries per chunk, a head
/// holds under 512 entries, at most 16 level-0 references and one reference per 4096 older
/// segments: about 170 KB of JSON at a million segments.
pub const MERGE_FANOUT: usize = 16;

/// Attempts of a manifest write (head CAS or chunk) before the commit fails; a later pass retries.
const COMMIT_ATTEMPTS: u32 = 6;

/// Attempts to take a manifest over before giving up (backing off between them: about 20 s in all).
const ACQUIRE_ATTEMPTS: u32 = 24;

/// Backoff between manifest attempts: 20 ms doubling to 2 s, with full jitter.
async fn backoff(attempt: u32) {
    super::retry::pause(20, 2_000, attempt).await;
}

/// How many chunks a manifest keeps parsed in memory.
const CHUNK_CACHE: usize = 32;

/// A partition's manifest as one process sees it: the head in memory, chunks fetched on demand.
/// Writers change it only through [`Manifest::commit`].
pub struct Manifest {
    store: Arc<dyn ObjectStore>,
    keys: PartitionKeys,
    head: RwLock<Arc<Head>>,
    /// The head's `next_offset`, for [`Manifest::watch_end`]: set with the head.
    end: tokio::sync::watch::Sender<i64>,
    /// The head's version as last read or written: the CAS condition of the next commit.
    version: Mutex<Option<UpdateVersion>>,
    chunks: Mutex<HashMap<String, Arc<Vec<SegmentEntry>>>>,
    /// Entries per chunk when the head overflows.
    chunk_segments: usize,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest").field("head", &self.keys.head()).finish()
    }
}

/// Changes a commit makes to the head, applied in this order.
#[derive(Debug, Default)]
pub struct Change {
    /// New segments, contiguous from the head's `next_offset`.
    pub append: Vec<SegmentEntry>,
    /// Drop every segment that ends at or before this offset (retention); their objects go to
    /// `pending_deletes` with the grace period.
    pub drop_before: Option<i64>,
    /// Objects deleted already: removed from `pending_deletes`.
    pub deleted: Vec<String>,
    /// A new state snapshot (its object already written), newer than any in the head.
    pub snapshot: Option<SnapshotRef>,
    /// Rewritten segments swapped in (their objects already written), applied in order.
    pub replace: Vec<Replace>,
    /// The compaction state after this commit.
    pub compaction: Option<CompactionState>,
}

impl Manifest {
    /// Reads the partition's head (one GET), or starts from an empty one if the bucket has none.
    pub async fn load(
        store: Arc<dyn ObjectStore>,
        topic: &str,
        partition: u32,
        chunk_segments: usize,
    ) -> Result<Arc<Self>> {
        let keys = PartitionKeys::new(topic, partition);
        let (head, version) = match read_head(&store, &keys).await? {
            Some((h, v)) => (h, Some(v)),
            None => (Head::empty(topic, partition), None),
        };
        Ok(Arc::new(Self {
            store,
            keys,
            end: tokio::sync::watch::Sender::new(head.next_offset),
            head: RwLock::new(Arc::new(head)),
            version: Mutex::new(version),
            chunks: Mutex::new(HashMap::new()),
            chunk_segments: chunk_segments.max(1),
        }))
    }

    pub fn keys(&self) -> &PartitionKeys {
        &self.keys
    }
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
    pub fn head(&self) -> Arc<Head> {
        self.head.read().expect("invariant: manifest lock not poisoned").clone()
    }

    fn set_head(&self, head: Head) {
        let end = head.next_offset;
        *self.head.write().expect("invariant: manifest lock not poisoned") = Arc::new(head);
        self.end.send_replace(end);
    }

    /// Follows the end of the bucket's log (the head's `next_offset`) as commits and polls
    /// install new heads: what a replica waits on for new data.
    pub fn watch_end(&self) -> tokio::sync::watch::Receiver<i64> {
        self.end.subscribe()
    }

    /// Re-reads the head from the bucket (for readers that do not write).
    pub async fn refresh(&self) -> Result<()> {
        if let Some((h, v)) = read_head(&self.store, &self.keys).await? {
            self.set_head(h);
            *self.version.lock().expect("invariant: manifest lock not poisoned") = Some(v);
        }
        Ok(())
    }

    /// For readers that do not write (replicas): fetches the head only if it changed since the
    /// one held, with a conditional GET (`If-None-Match` on its ETag). Returns whether it changed.
    /// One GET per call, never a LIST.
    pub async fn poll(&self) -> Result<bool> {
        let (head, version) = match self.fetch_if_changed("poll manifest head").await {
            Ok(Some(changed)) => changed,
            // Unchanged, or no writer has created the head yet.
            Ok(None) | Err(Error::Remote { error: object_store::Error::NotFound { .. }, .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.set_head(head);
        *self.version.lock().expect("invariant: manifest lock not poisoned") = Some(version);
        Ok(true)
    }

    /// For the writer of `epoch`: checks with a conditional GET (`If-None-Match` on the ETag it
    /// last read or wrote) that the bucket's head still carries its epoch. Unchanged (304) or
    /// changed at the same epoch: `Ok`. A higher epoch, or no head at all: [`Error::Fenced`].
    pub async fn confirm_epoch(&self, epoch: u64) -> Result<()> {
        match self.fetch_if_changed("confirm manifest epoch").await {
            Ok(None) => Ok(()),
            Ok(Some((head, _))) if head.epoch == epoch => Ok(()),
            Ok(Some((head, _))) => Err(self.fenced(epoch, head.epoch)),
            Err(Error::Remote { error: object_store::Error::NotFound { .. }, .. }) => Err(self.fenced(epoch, 0)),
            Err(e) => Err(e),
        }
    }

    /// The head, if it changed since the one held: one conditional GET (`If-None-Match` on its
    /// ETag). `None` when unchanged (304); a missing head is a `Remote` NotFound error.
    async fn fetch_if_changed(&self, op: &'static str) -> Result<Option<(Head, UpdateVersion)>> {
        let key = self.keys.head();
        let etag =
            self.version.lock().expect("invariant: manifest lock not poisoned").as_ref().and_then(|v| v.e_tag.clone());
        let options = object_store::GetOptions { if_none_match: etag, ..Default::default() };
        let r = match self.store.get_opts(&key, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotModified { .. }) => return Ok(None),
            Err(e) => return Err(remote(op, &key)(e)),
        };
        let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
        let bytes = r.bytes().await.map_err(remote(op, &key))?;
        Ok(Some((Head::decode(&key, &bytes)?, version)))
    }

    /// Takes the partition over as its writer: bumps the epoch with a CAS (or creates the head).
    /// Returns the new epoch. A writer that held the previous epoch is fenced from now on.
    pub async fn acquire(&self, writer: &str) -> Result<u64> {
        for attempt in 1..=ACQUIRE_ATTEMPTS {
            if attempt > 1 {
                // Lost the compare-and-swap to a commit (or another take-over) between reading
                // the head and writing it: back off with jitter, so a busy writer's commits leave
                // a window.
                backoff(attempt - 1).await;
            }
            let current = read_head(&self.store, &self.keys).await?;
            let (mut head, mode) = match current {
                Some((h, v)) => (h, PutMode::Update(v)),
                None => (Head::empty(&self.head().topic, self.head().partition), PutMode::Create),
            };
            head.epoch += 1;
            head.seq += 1;
            head.writer = writer.to_owned();
            let key = self.keys.head();
            match self.store.put_opts(&key, PutPayload::from(head.encode()), PutOptions::from(mode)).await {
                Ok(r) => {
                    let epoch = head.epoch;
                    self.install(head, r);
                    tracing::info!(head = %self.keys.head(), epoch, "took over the partition's manifest");
                    return Ok(epoch);
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(remote("write manifest head", &self.keys.head())(e)),
            }
        }
        let key = self.keys.head();
        Err(remote("take over manifest head", &key)(object_store::Error::Precondition {
            path: key.to_string(),
            source: format!("lost the compare-and-swap {ACQUIRE_ATTEMPTS} times to concurrent writers").into(),
        }))
    }

    fn install(&self, head: Head, r: object_store::PutResult) {
        self.set_head(head);
        *self.version.lock().expect("invariant: manifest lock not poisoned") =
            Some(UpdateVersion { e_tag: r.e_tag, version: r.version });
    }

    /// Applies `change` as writer `epoch`: writes a chunk if the head overflows, then CASes the
    /// head. Fails with [`Error::Fenced`] once another writer has taken over. Only one task may
    /// commit at a time (the partition's uploader).
    pub async fn commit(&self, epoch: u64, change: Change, now_ms: i64, grace_ms: u64) -> Result<Arc<Head>> {
        let current = self.head();
        if current.epoch != epoch {
            return Err(self.fenced(epoch, current.epoch));
        }
        let mut head = (*current).clone();
        head.seq += 1;
        for e in change.append {
            if e.base_offset != head.next_offset && !head.is_empty() {
                return Err(corrupt(
                    &self.keys.head(),
                    format!("segment at {} does not follow the remote log end {}", e.base_offset, head.next_offset),
                ));
            }
            if head.is_empty() {
                head.log_start_offset = e.base_offset;
            }
            head.next_offset = e.next_offset;
            head.totals.segments += 1;
            head.totals.bytes += e.size;
            head.totals.records += e.records;
            head.segments.push(e);
        }
        let mut chunk_writes = 0;
        for r in change.replace {
            chunk_writes += self.replace(epoch, &mut head, r, now_ms + grace_ms as i64).await?;
        }
        if let Some(c) = change.compaction {
            head.compaction = c;
        }
        if let Some(cut) = change.drop_before {
            self.drop_before(&mut head, cut, now_ms + grace_ms as i64).await?;
        }
        head.pending_deletes.retain(|p| !change.deleted.contains(&p.key));
        if let Some(snap) = change.snapshot {
            if head.snapshots.last().is_some_and(|s| s.offset >= snap.offset) || snap.offset >= head.next_offset {
                return Err(corrupt(
                    &self.keys.head(),
                    format!(
                        "snapshot at {} is not newer than the head's, or past the log end {}",
                        snap.offset, head.next_offset
                    ),
                ));
            }
            head.snapshots.push(snap);
            while head.snapshots.len() > MAX_SNAPSHOTS {
                let old = head.snapshots.remove(0);
                head.pending_deletes.push(PendingDelete { key: old.key, delete_after_ms: now_ms + grace_ms as i64 });
            }
        }
        // At most one chunk per commit: merge level-0 chunks when enough have gathered, else
        // move the head's overflow into a new level-0 chunk.
        let level0 = head.chunks.iter().rev().take_while(|c| c.level == 0).count();
        if level0 >= MERGE_FANOUT {
            let from = head.chunks.len() - level0;
            let mut merged = Vec::with_capacity(level0 * self.chunk_segments);
            for c in &head.chunks[from..] {
                merged.extend(self.chunk(c).await?.iter().cloned());
            }
            let r = self.write_chunk(epoch, &merged, 1).await?;
            for c in head.chunks.drain(from..) {
                head.pending_deletes.push(head_pending(c.key(&self.keys), now_ms + grace_ms as i64));
            }
            head.chunks.push(r);
        } else if head.segments.len() >= 2 * self.chunk_segments && chunk_writes == 0 {
            let moved: Vec<SegmentEntry> = head.segments.drain(..self.chunk_segments).collect();
            let r = self.write_chunk(epoch, &moved, 0).await?;
            head.chunks.push(r);
        }
        let version = self.version.lock().expect("invariant: manifest lock not poisoned").clone();
        let mode = match version {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let key = self.keys.head();
        let payload = head.encode();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let put = self.store.put_opts(&key, PutPayload::from(payload.clone()), PutOptions::from(mode.clone()));
            match put.await {
                Ok(r) => {
                    self.install(head, r);
                    return Ok(self.head());
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    // Either another writer took over, or an earlier attempt of this very commit
                    // landed and its response was lost: the head tells which.
                    return match read_head(&self.store, &self.keys).await? {
                        Some((h, v)) if h.epoch == epoch && h == head => {
                            *self.version.lock().expect("invariant: manifest lock not poisoned") = Some(v);
                            self.set_head(h);
                            Ok(self.head())
                        }
                        Some((h, _)) => Err(self.fenced(epoch, h.epoch)),
                        None => Err(self.fenced(epoch, 0)),
                    };
                }
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(%key, attempt, error = %e, "manifest commit failed; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(remote("write manifest head", &key)(e)),
            }
        }
    }

    fn fenced(&self, epoch: u64, current: u64) -> Error {
        let h = self.head();
        tracing::warn!(head = %self.keys.head(), epoch, current, "fenced: another writer owns the partition");
        metrics::counter!(crate::stats::FENCED).increment(1);
        Error::Fenced { partition: format!("{}-{}", h.topic, h.partition), epoch, current }
    }

    async fn write_chunk(&self, epoch: u64, entries: &[SegmentEntry], level: u8) -> Result<ChunkRef> {
        let first = entries.first().expect("invariant: a chunk has entries");
        let last = entries.last().expect("invariant: a chunk has entries");
        let r = ChunkRef {
            level,
            base_offset: first.base_offset,
            next_offset: last.next_offset,
            min_timestamp: entries.iter().map(|e| e.min_timestamp).min().unwrap_or(-1),
            max_timestamp: entries.iter().map(|e| e.max_timestamp).max().unwrap_or(-1),
            segments: entries.len() as u64,
            bytes: entries.iter().map(|e| e.size).sum(),
            records: entries.iter().map(|e| e.records).sum(),
            epoch,
            id: keys::new_id(),
        };
        let key = r.key(&self.keys);
        let bytes = encode_chunk(entries).map_err(|e| corrupt(&key, e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let put = self.store.put_opts(&key, PutPayload::from(bytes.clone()), PutOptions::from(PutMode::Create));
            match put.await {
                // The key has a fresh id: if it exists, an earlier attempt of ours wrote it.
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => break,
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(%key, attempt, error = %e, "manifest chunk write failed; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(remote("write manifest chunk", &key)(e)),
            }
        }
        self.chunks
            .lock()
            .expect("invariant: manifest lock not poisoned")
            .insert(r.id.clone(), Arc::new(entries.to_vec()));
        Ok(r)
    }

    /// Applies one [`Replace`] to `head`: splices the new entries in where the old ones were, in the
    /// head's entries or (rewriting them as one new chunk) in the chunks that hold them, and queues
    /// the old objects (and chunks) for deletion. Returns the chunks written.
    async fn replace(&self, epoch: u64, head: &mut Head, r: Replace, delete_after_ms: i64) -> Result<usize> {
        let Some((from, to)) = r.bounds() else {
            return Err(corrupt(
                &self.keys.head(),
                "a rewrite's old and new segments do not cover the same offsets".into(),
            ));
        };
        let conflict = |why: &str| Error::Conflict {
            reason: format!("segments {from}..{to} of {}-{} {why}", head.topic, head.partition),
        };
        if head.is_empty() || from < head.log_start_offset || to > head.next_offset {
            return Err(conflict("are no longer all in the remote log"));
        }
        let same = |a: &[SegmentEntry], b: &[SegmentEntry]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.base_offset == y.base_offset && x.id == y.id)
        };
        let splice = |entries: &mut Vec<SegmentEntry>| -> bool {
            let Some(p) = entries.iter().position(|e| e.base_offset == from) else { return false };
            if p + r.old.len() > entries.len() || !same(&entries[p..p + r.old.len()], &r.old) {
                return false;
            }
            entries.splice(p..p + r.old.len(), r.new.iter().cloned());
            true
        };
        let overlapping: Vec<usize> = (0..head.chunks.len())
            .filter(|&i| head.chunks[i].base_offset < to && head.chunks[i].next_offset > from)
            .collect();
        let mut written = 0;
        if overlapping.is_empty() {
            if !splice(&mut head.segments) {
                return Err(conflict("changed since the rewrite was planned"));
            }
        } else {
            let (first, last) = (overlapping[0], *overlapping.last().expect("invariant: not empty"));
            let mut entries = Vec::new();
            for c in &head.chunks[first..=last] {
                entries.extend(self.chunk(c).await?.iter().cloned());
            }
            // A range that runs past the last chunk takes the head's first entries with it.
            let mut taken = 0;
            while head.chunks[last].next_offset < to
                && taken < head.segments.len()
                && head.segments[taken].base_offset < to
            {
                entries.push(head.segments[taken].clone());
                taken += 1;
            }
            if !splice(&mut entries) {
                return Err(conflict("changed since the rewrite was planned"));
            }
            let level = head.chunks[first..=last].iter().map(|c| c.level).max().unwrap_or(0);
            let new_ref = self.write_chunk(epoch, &entries, level).await?;
            written += 1;
            for c in head.chunks.splice(first..=last, [new_ref]) {
                head.pending_deletes.push(head_pending(c.key(&self.keys), delete_after_ms));
            }
            head.segments.drain(..taken);
        }
        for e in &r.old {
            head.totals.bytes -= e.size;
            head.totals.records -= e.records;
            head.pending_deletes.push(head_pending(e.segment_key(&self.keys), delete_after_ms));
            head.pending_deletes.push(head_pending(e.index_key(&self.keys), delete_after_ms));
        }
        for e in &r.new {
            head.totals.bytes += e.size;
            head.totals.records += e.records;
        }
        head.totals.segments = head.totals.segments + r.new.len() as u64 - r.old.len() as u64;
        Ok(written)
    }

    /// Moves the log start to `cut` (a segment boundary at or below the remote end) and queues the
    /// dropped objects for deletion.
    async fn drop_before(&self, head: &mut Head, cut: i64, delete_after_ms: i64) -> Result<()> {
        if cut <= head.log_start_offset || head.is_empty() {
            return Ok(());
        }
        let cut = cut.min(head.next_offset);
        let queue = |key: Path| head_pending(key, delete_after_ms);
        let mut pending = Vec::new();
        let mut dropped = Totals::default();
        // Whole chunks below the cut go at once; a chunk the cut falls inside is read.
        let mut keep_chunks = Vec::new();
        for c in std::mem::take(&mut head.chunks) {
            if c.next_offset <= cut {
                let entries = self.chunk(&c).await?;
                for e in entries.iter().filter(|e| e.base_offset >= head.log_start_offset) {
                    dropped.add(e);
                    pending.push(queue(e.segment_key(&self.keys)));
                    pending.push(queue(e.index_key(&self.keys)));
                }
                pending.push(queue(c.key(&self.keys)));
            } else {
                if c.base_offset < cut {
                    let entries = self.chunk(&c).await?;
                    for e in entries.iter().filter(|e| e.base_offset >= head.log_start_offset && e.next_offset <= cut) {
                        dropped.add(e);
                        pending.push(queue(e.segment_key(&self.keys)));
                        pending.push(queue(e.index_key(&self.keys)));
                    }
                }
                keep_chunks.push(c);
            }
        }
        head.chunks = keep_chunks;
        let mut new_start = cut;
        head.segments.retain(|e| {
            if e.next_offset <= cut {
                dropped.add(e);
                pending.push(head_pending(e.segment_key(&self.keys), delete_after_ms));
                pending.push(head_pending(e.index_key(&self.keys), delete_after_ms));
                false
            } else {
                new_start = new_start.min(e.base_offset);
                true
            }
        });
        head.log_start_offset = if dropped.segments == head.totals.segments { head.next_offset } else { new_start };
        head.totals.segments -= dropped.segments;
        head.totals.bytes -= dropped.bytes;
        head.totals.records -= dropped.records;
        head.pending_deletes.extend(pending);
        Ok(())
    }

    /// The entries of chunk `r` (one GET the first time, then from memory).
    pub async fn chunk(&self, r: &ChunkRef) -> Result<Arc<Vec<SegmentEntry>>> {
        if let Some(c) = self.chunks.lock().expect("invariant: manifest lock not poisoned").get(&r.id) {
            return Ok(c.clone());
        }
        let key = r.key(&self.keys);
        let bytes = self.store.get(&key).await.map_err(remote("read manifest chunk", &key))?;
        let bytes = bytes.bytes().await.map_err(remote("read manifest chunk", &key))?;
        let entries = Arc::new(decode_chunk(bytes, r).map_err(|e| corrupt(&key, e))?);
        let mut cache = self.chunks.lock().expect("invariant: manifest lock not poisoned");
        if cache.len() >= CHUNK_CACHE {
            cache.clear();
        }
        cache.insert(r.id.clone(), entries.clone());
        Ok(entries)
    }

    /// The live segment holding `offset`, if the remote tier has it.
    pub async fn find_offset(&self, offset: i64) -> Result<Option<SegmentEntry>> {
        let head = self.head();
        if head.is_empty() || offset < head.log_start_offset || offset >= head.next_offset {
            return Ok(None);
        }
        if let Some(first) = head.segments.first()
            && offset >= first.base_offset
        {
            let i = head.segments.partition_point(|e| e.next_offset <= offset);
            return Ok(head.segments.get(i).cloned());
        }
        let ci = head.chunks.partition_point(|c| c.next_offset <= offset);
        let Some(c) = head.chunks.get(ci) else { return Ok(None) };
        let entries = self.chunk(c).await?;
        let i = entries.partition_point(|e| e.next_offset <= offset);
        Ok(entries.get(i).cloned())
    }

    /// The first live segment (in offset order) holding a record with timestamp >= `t`.
    pub async fn find_time(&self, t: i64) -> Result<Option<SegmentEntry>> {
        let head = self.head();
        if head.is_empty() {
            return Ok(None);
        }
        for c in head.chunks.iter().filter(|c| c.max_timestamp >= t && c.next_offset > head.log_start_offset) {
            let entries = self.chunk(c).await?;
            if let Some(e) = entries.iter().find(|e| e.base_offset >= head.log_start_offset && e.max_timestamp >= t) {
                return Ok(Some(e.clone()));
            }
        }
        Ok(head.segments.iter().find(|e| e.base_offset >= head.log_start_offset && e.max_timestamp >= t).cloned())
    }

    /// The oldest live segments, in order, until `stop` says so (for retention and inspection).
    pub async fn scan(&self, mut visit: impl FnMut(&SegmentEntry) -> bool) -> Result<()> {
        let head = self.head();
        for c in head.chunks.iter().filter(|c| c.next_offset > head.log_start_offset) {
            for e in self.chunk(c).await?.iter().filter(|e| e.base_offset >= head.log_start_offset) {
                if !visit(e) {
                    return Ok(());
                }
            }
        }
        for e in head.segments.iter().filter(|e| e.base_offset >= head.log_start_offset) {
            if !visit(e) {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn head_pending(key: Path, delete_after_ms: i64) -> PendingDelete {
    PendingDelete { key: key.to_string(), delete_after_ms }
}

impl Totals {
    fn add(&mut self, e: &SegmentEntry) {
        self.segments += 1;
        self.bytes += e.size;
        self.records += e.records;
    }
}

async fn read_head(store: &Arc<dyn ObjectStore>, keys: &PartitionKeys) -> Result<Option<(Head, UpdateVersion)>> {
    let key = keys.head();
    let r = match store.get(&key).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(remote("read manifest head", &key)(e)),
    };
    let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
    let bytes = r.bytes().await.map_err(remote("read manifest head", &key))?;
    Ok(Some((Head::decode(&key, &bytes)?, version)))
}
