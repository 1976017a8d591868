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
//!
//! Files, by concern: this one holds the types and the in-memory manifest; [`head`] loading,
//! polling, confirming and taking over the head; [`chunks`] writing and reading chunks;
//! [`commit`] the commit protocol (one CAS per change); [`lookup`] finding entries by offset or
//! time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::keys::{self, PartitionKeys};
use super::parquet_io::{self, Column, Table};
use crate::error::{Error, Result, remote};

mod chunks;
pub use chunks::check_object;
mod commit;
mod head;
mod lookup;

use head::read_head;

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
    /// CRC-32C of the index object, checked with its size on every load. `None` in entries
    /// written before it was recorded (their index is checked by size and by decoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_crc32c: Option<u32>,
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
    /// Size and CRC-32C of the chunk object, checked on every load. `None` in references written
    /// before they were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<u32>,
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

/// Level-0 chunks merged into one level-1 chunk. With the default 256 entries per chunk, a head
/// holds under 512 entries, at most 16 level-0 references and one reference per 4096 older
/// segments: about 170 KB of JSON at a million segments.
pub const MERGE_FANOUT: usize = 16;

/// Attempts of a manifest write (head CAS or chunk) before the commit fails; a later pass retries.
const COMMIT_ATTEMPTS: u32 = 6;

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
}

impl Totals {
    fn add(&mut self, e: &SegmentEntry) {
        self.segments += 1;
        self.bytes += e.size;
        self.records += e.records;
    }
}
