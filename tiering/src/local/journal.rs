//! The disk journal: one append-only file per data dir that makes a multi-partition group durable
//! with one sequential write and one fdatasync, instead of one fsync per partition file.
//!
//! Write path: when a group dirties several partitions under fsync durability, the writer task
//! writes their batches to the segment files as usual (no fsync), appends the same bytes to the
//! journal in one vectored write, fdatasyncs the journal, and acknowledges. Segment files catch up
//! later: before a journal file is deleted (at rotation and at close) every partition written
//! through it is fsynced.
//!
//! Recovery: after each partition has recovered its segments (cutting any torn tail), [`replay`]
//! hands every journal entry to its partition, which appends the ones past its end. So an
//! acknowledged batch is either durable in its segment or durable in the journal, and recovery puts
//! it back in the segment either way.
//!
//! File `<data_dir>/journal/<seq:020>.wal`; each entry is a frame
//! `[len u32][crc u32][name_len u16][partition name][batch]`, where `len` counts what follows `crc`
//! and `crc` (CRC-32C) covers the name and the batch's first 21 bytes (base offset, length, leader
//! epoch, magic and the batch's own CRC, which covers the rest). A frame that is torn or fails a
//! check ends the file.

use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::{Fs, LogFile, list_paths};

use crate::batch::header::{ATTRIBUTES, HEADER_LEN, check_batch};
use crate::error::{Error, Result};

const EXT: &str = "wal";
const FRAME_HEADER: usize = 8;

/// The open journal of a writer task.
#[derive(Debug)]
pub struct Journal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    seq: u64,
    file: Arc<dyn LogFile>,
    size: u64,
}

/// One batch to journal: the partition's folder name, the batch's (patched) header and the rest of
/// its bytes as they were written to the segment.
pub struct Entry<'a> {
    pub partition: &'a str,
    pub header: &'a [u8; HEADER_LEN],
    pub rest: &'a [u8],
}

fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.{EXT}"))
}

/// The journal files in `dir`, oldest first.
pub fn list(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    list_named(fs, dir, "")
}

/// The files `<prefix><seq>.wal` in `dir`, oldest first.
fn list_named(fs: &dyn Fs, dir: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for path in list_paths(fs, dir).map_err(Error::io("list journal", dir))? {
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

impl Journal {
    /// Starts a new journal file after any existing ones (which must have been replayed).
    pub fn create(fs: &Arc<dyn Fs>, dir: &Path) -> Result<Self> {
        if !fs.exists(dir) {
            fs.create_dir_all(dir).map_err(Error::io("create journal folder", dir))?;
            if let Some(parent) = dir.parent() {
                super::segment::sync_dir(&**fs, parent)?;
            }
        }
        let last = list(&**fs, dir)?.last().map(|(s, _)| *s).max(list_kept(&**fs, dir)?.last().map(|(s, _)| *s));
        let seq = last.map_or(0, |s| s + 1);
        let path = file_path(dir, seq);
        let file = fs.create_new(&path).map_err(Error::io("create journal", &path))?;
        super::segment::sync_dir(&**fs, dir)?;
        Ok(Self { fs: fs.clone(), dir: dir.to_owned(), seq, file, size: 0 })
    }

    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn seq(&self) -> u64 {
        self.seq
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn fs(&self) -> &dyn Fs {
        &*self.fs
    }

    /// Appends the entries with one vectored write and fdatasyncs: when this returns Ok they are
    /// durable.
    pub fn append(&mut self, entries: &[Entry<'_>]) -> std::io::Result<()> {
        let mut frames: Vec<[u8; FRAME_HEADER + 2]> = Vec::with_capacity(entries.len());
        let mut total = 0u64;
        for e in entries {
            let name = e.partition.as_bytes();
            let len = (2 + name.len() + HEADER_LEN + e.rest.len()) as u32;
            let mut crc = crc32c::crc32c(&(name.len() as u16).to_be_bytes());
            crc = crc32c::crc32c_append(crc, name);
            crc = crc32c::crc32c_append(crc, &e.header[..ATTRIBUTES]);
            let mut f = [0u8; FRAME_HEADER + 2];
            f[..4].copy_from_slice(&len.to_be_bytes());
            f[4..8].copy_from_slice(&crc.to_be_bytes());
            f[8..10].copy_from_slice(&(name.len() as u16).to_be_bytes());
            frames.push(f);
            total += FRAME_HEADER as u64 + len as u64;
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(entries.len() * 4);
        for (f, e) in frames.iter().zip(entries) {
            slices.push(IoSlice::new(f));
            slices.push(IoSlice::new(e.partition.as_bytes()));
            slices.push(IoSlice::new(e.header));
            slices.push(IoSlice::new(e.rest));
        }
        self.file.append(&slices)?;
        self.file.sync_data()?;
        self.size += total;
        Ok(())
    }

    /// Continues in a new file and keeps the current one, for after a failed append: its tail
    /// may hold a torn frame, and replay stops at the first bad frame of a file.
    pub fn start_next_file(&mut self) -> Result<()> {
        let next = Journal::create(&self.fs, &self.dir)?;
        drop(std::mem::replace(self, next));
        Ok(())
    }

    /// Starts the next journal file. The caller must first have made every partition written
    /// through the current one durable in its segments; then all older files are deleted.
    pub fn rotate(&mut self) -> Result<()> {
        let next = Journal::create(&self.fs, &self.dir)?;
        let old = std::mem::replace(self, next);
        drop(old);
        remove_before(&*self.fs, &self.dir, self.seq)
    }

    /// Deletes every journal file (at close, after every partition was synced).
    pub fn remove_all(self) -> Result<()> {
        let (fs, dir) = (self.fs.clone(), self.dir.clone());
        drop(self);
        remove_before(&*fs, &dir, u64::MAX)
    }
}

/// Deletes journal files older than `seq`.
pub fn remove_before(fs: &dyn Fs, dir: &Path, seq: u64) -> Result<()> {
    for (s, path) in list(fs, dir)? {
        if s < seq {
            fs.remove_file(&path).map_err(Error::io("delete journal", &path))?;
        }
    }
    super::segment::sync_dir(fs, dir)
}

/// Reads every entry of every journal file in order and gives `(partition name, batch)` to
/// `apply`. A file ends at its first torn or failing frame (a crash mid-append: those entries were
/// never acknowledged).
pub fn replay(fs: &dyn Fs, dir: &Path, mut apply: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<u64> {
    let mut applied = 0u64;
    for (_, path) in list(fs, dir)? {
        applied += replay_file(fs, &path, &mut apply)?;
    }
    Ok(applied)
}

/// The journal files kept for partitions that could not take their entries (damaged at open):
/// `kept-<seq:020>.wal`, oldest first. Rotation never deletes them; each start replays them again
/// and deletes them once every partition they name took its entries.
pub fn list_kept(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    list_named(fs, dir, "kept-")
}

fn replay_file(fs: &dyn Fs, path: &Path, apply: &mut impl FnMut(&str, &[u8]) -> Result<()>) -> Result<u64> {
    let mut applied = 0u64;
    let data = fs.read(path).map_err(Error::io("read journal", path))?;
    let mut pos = 0usize;
    while data.len() - pos >= FRAME_HEADER + 2 {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("invariant: 4 bytes")) as usize;
        let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().expect("invariant: 4 bytes"));
        let body = &data[pos + FRAME_HEADER..];
        if len > body.len() || len < 2 + HEADER_LEN {
            break;
        }
        let body = &body[..len];
        let name_len = u16::from_be_bytes([body[0], body[1]]) as usize;
        if 2 + name_len + HEADER_LEN > len {
            break;
        }
        let (name, batch) = body[2..].split_at(name_len);
        let mut want = crc32c::crc32c(&body[..2]);
        want = crc32c::crc32c_append(want, name);
        want = crc32c::crc32c_append(want, &batch[..ATTRIBUTES]);
        let (Ok(name), true, Ok(_)) = (std::str::from_utf8(name), want == crc, check_batch(batch)) else {
            tracing::warn!(journal = %path.display(), position = pos, "journal ends in a torn or bad frame");
            break;
        };
        apply(name, batch)?;
        applied += 1;
        pos += FRAME_HEADER + len;
    }
    Ok(applied)
}

/// Recovery of a data dir's journal: replays it into `partitions` (already recovered from their
/// segments), fsyncs what it appended, and starts a fresh journal, deleting the replayed files.
/// A file with entries for a partition that is not in `partitions` (one that opened damaged, or
/// whose folder is gone) is kept, as `kept-<seq>.wal`, and replayed again at the next start:
/// acknowledged batches are never dropped silently.
pub fn recover(fs: &Arc<dyn Fs>, dir: &Path, partitions: &[Arc<super::Partition>]) -> Result<Journal> {
    let by_name: std::collections::HashMap<&str, &Arc<super::Partition>> =
        partitions.iter().map(|p| (p.name(), p)).collect();
    let mut touched = std::collections::BTreeSet::new();
    let (mut appended, mut entries) = (0u64, 0u64);
    let mut files = list(&**fs, dir)?;
    files.extend(list_kept(&**fs, dir)?);
    files.sort();
    let mut keep = Vec::new();
    for (seq, path) in &files {
        let mut orphaned = std::collections::BTreeSet::new();
        entries += replay_file(&**fs, path, &mut |name, batch| {
            let Some(p) = by_name.get(name) else {
                orphaned.insert(name.to_owned());
                return Ok(());
            };
            match p.replay_batch(batch) {
                Ok(true) => {
                    appended += 1;
                    touched.insert(name.to_owned());
                }
                Ok(false) => {}
                // The log ends before this entry (it was cut by a repair): the entry is kept.
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::error!(partition = name, error = %e, "journal entry past the end of its partition's log");
                    orphaned.insert(name.to_owned());
                }
                Err(e) => return Err(e),
            }
            Ok(())
        })?;
        if !orphaned.is_empty() {
            tracing::error!(journal = %path.display(), partitions = ?orphaned, "journal holds acknowledged batches of partitions that did not open; the file is kept");
            keep.push((*seq, path.clone()));
        }
    }
    for name in &touched {
        let p = by_name[name.as_str()];
        if let Some((f, base, position)) = p.journaled_file() {
            f.sync_data().map_err(Error::io("fsync segment", p.dir()))?;
            p.segment_synced(base, position);
        }
    }
    if entries > 0 {
        tracing::info!(entries, appended, partitions = touched.len(), "journal replayed");
    }
    for (seq, path) in &keep {
        let kept = dir.join(format!("kept-{seq:020}.{EXT}"));
        if *path != kept {
            fs.rename(path, &kept).map_err(Error::io("keep journal", path))?;
        }
    }
    for (_, path) in list_kept(&**fs, dir)? {
        if !keep.iter().any(|(s, _)| path.ends_with(format!("kept-{s:020}.{EXT}"))) {
            fs.remove_file(&path).map_err(Error::io("delete journal", &path))?;
        }
    }
    let journal = Journal::create(fs, dir)?;
    remove_before(&**fs, dir, journal.seq)?;
    Ok(journal)
}
