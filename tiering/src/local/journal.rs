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
//! File `<data_dir>/journal/<seq:020>.wal`: a 16-byte header `["TLJ2"][seq u64][crc u32]`, then
//! one frame per entry, `[len u32][crc u32][name_len u16][partition name][batch]`, where `len`
//! counts what follows `crc` and `crc` (CRC-32C) covers the file's `seq`, the name and the
//! batch's first 21 bytes (base offset, length, leader epoch, magic and the batch's own CRC, which
//! covers the rest). A frame that is torn or fails a check ends the file. (Files without the
//! header, from before it, hold frames from byte 0 whose CRC leaves out the `seq`.)
//!
//! Recycling: a retired file (its entries durable in their segments) is kept as a spare,
//! `spare-<old seq>.wal` (at most [`SPARES`]), and the next file is the spare renamed and written
//! again from its start. Overwriting allocated blocks makes each group's fdatasync a data flush
//! with no filesystem metadata to commit, and the writes land in pages already cached. The old
//! frames left past the last write carry the old `seq` in their CRC, so replay stops at them, and
//! a renamed spare whose new header never became durable still carries its old `seq` and is
//! skipped: nothing in it was acknowledged.

use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fs::{Fs, LogFile, list_paths};

use crate::batch::header::{ATTRIBUTES, HEADER_LEN, check_batch};
use crate::error::{Error, Result};

const EXT: &str = "wal";
const FRAME_HEADER: usize = 8;
const MAGIC: [u8; 4] = *b"TLJ2";
const FILE_HEADER: usize = 16;
/// Retired journal files kept to be written again.
pub const SPARES: usize = 2;

/// The header of journal file `seq`.
fn file_header(seq: u64) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[..4].copy_from_slice(&MAGIC);
    h[4..12].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&crc.to_be_bytes());
    h
}

/// A frame's CRC: over the file's `seq` (none in files from before the header), the name's
/// length and bytes, and the batch header's first bytes.
fn frame_crc(seq: Option<u64>, name: &[u8], batch_head: &[u8]) -> u32 {
    let name_len = (name.len() as u16).to_be_bytes();
    let crc = match seq {
        Some(s) => crc32c::crc32c_append(crc32c::crc32c(&s.to_be_bytes()), &name_len),
        None => crc32c::crc32c(&name_len),
    };
    crc32c::crc32c_append(crc32c::crc32c_append(crc, name), &batch_head[..ATTRIBUTES])
}

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
        let file = match list_spares(&**fs, dir)?.first() {
            Some((_, spare)) => {
                fs.rename(spare, &path).map_err(Error::io("recycle journal", spare))?;
                fs.reuse(&path).map_err(Error::io("recycle journal", &path))?
            }
            None => fs.create_new(&path).map_err(Error::io("create journal", &path))?,
        };
        // The name is durable before any entry is acknowledged in the file; the header becomes
        // durable with the first entries' fdatasync.
        super::segment::sync_dir(&**fs, dir)?;
        file.append(&[IoSlice::new(&file_header(seq))]).map_err(Error::io("write journal", &path))?;
        Ok(Self { fs: fs.clone(), dir: dir.to_owned(), seq, file, size: FILE_HEADER as u64 })
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
            let crc = frame_crc(Some(self.seq), name, e.header);
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
    /// through the current one durable in its segments; then all older files are retired.
    pub fn rotate(&mut self) -> Result<()> {
        let next = Journal::create(&self.fs, &self.dir)?;
        let old = std::mem::replace(self, next);
        drop(old);
        retire_before(&*self.fs, &self.dir, self.seq)
    }

    /// Retires every journal file (at close, after every partition was synced).
    pub fn retire_all(self) -> Result<()> {
        let (fs, dir) = (self.fs.clone(), self.dir.clone());
        drop(self);
        retire_before(&*fs, &dir, u64::MAX)
    }
}

fn spare_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("spare-{seq:020}.{EXT}"))
}

/// The spare journal files in `dir`, oldest first.
fn list_spares(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    list_named(fs, dir, "spare-")
}

/// Retires the journal files older than `seq`, whose entries are durable in their segments: the
/// newest become spares, up to [`SPARES`], the others are deleted.
pub fn retire_before(fs: &dyn Fs, dir: &Path, seq: u64) -> Result<()> {
    let mut spares = list_spares(fs, dir)?.len();
    for (s, path) in list(fs, dir)?.into_iter().rev().filter(|(s, _)| *s < seq) {
        if spares < SPARES {
            fs.rename(&path, &spare_path(dir, s)).map_err(Error::io("retire journal", &path))?;
            spares += 1;
        } else {
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
    for (seq, path) in list(fs, dir)? {
        applied += replay_file(fs, seq, &path, &mut apply)?;
    }
    Ok(applied)
}

/// The journal files kept for partitions that could not take their entries (damaged at open):
/// `kept-<seq:020>.wal`, oldest first. Rotation never deletes them; each start replays them again
/// and deletes them once every partition they name took its entries.
pub fn list_kept(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    list_named(fs, dir, "kept-")
}

/// Where the frames of file `seq` start, and the `seq` their CRCs cover; `None` when the file
/// holds no entries (its header is not this file's: a recycled spare whose new header never
/// became durable, or a header cut short).
fn frames_start(data: &[u8], seq: u64) -> Option<(usize, Option<u64>)> {
    let n = data.len().min(MAGIC.len());
    if data[..n] != MAGIC[..n] {
        // From before the header (a frame there starts with its length, far below "TLJ2").
        return Some((0, None));
    }
    (data.get(..FILE_HEADER)? == file_header(seq)).then_some((FILE_HEADER, Some(seq)))
}

fn replay_file(fs: &dyn Fs, seq: u64, path: &Path, apply: &mut impl FnMut(&str, &[u8]) -> Result<()>) -> Result<u64> {
    let mut applied = 0u64;
    let data = fs.read(path).map_err(Error::io("read journal", path))?;
    let Some((mut pos, crc_seq)) = frames_start(&data, seq) else {
        return Ok(0);
    };
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
        let want = frame_crc(crc_seq, name, batch);
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
        entries += replay_file(&**fs, *seq, path, &mut |name, batch| {
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
    retire_before(&**fs, dir, journal.seq)?;
    Ok(journal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};
    use crate::local::sim_fs::SimFs;

    fn batch(base: i64, value: &[u8]) -> Vec<u8> {
        let mut b = BatchBuilder::new(Compression::None).base_offset(base);
        b.push(&Record { value: Some(value.to_vec().into()), timestamp: base, ..Default::default() });
        b.build().to_vec()
    }

    fn append(j: &mut Journal, name: &str, batches: &[Vec<u8>]) {
        let headers: Vec<[u8; HEADER_LEN]> = batches.iter().map(|b| b[..HEADER_LEN].try_into().unwrap()).collect();
        let entries: Vec<Entry<'_>> = batches
            .iter()
            .zip(&headers)
            .map(|(b, h)| Entry { partition: name, header: h, rest: &b[HEADER_LEN..] })
            .collect();
        j.append(&entries).unwrap();
    }

    fn replayed(fs: &dyn Fs, dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        replay(fs, dir, |name, batch| {
            out.push((name.to_owned(), batch.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    /// `dir` and the folders above it, durable.
    /// A simulated filesystem with `/data/journal` created and durable.
    fn sim_journal_dir() -> (SimFs, Arc<dyn Fs>, &'static Path) {
        let sim = SimFs::new();
        let fs: Arc<dyn Fs> = Arc::new(sim.clone());
        let dir = Path::new("/data/journal");
        sim.create_dir_all(dir).unwrap();
        for d in dir.ancestors().skip(1) {
            sim.sync_dir(d).unwrap();
        }
        (sim, fs, dir)
    }

    #[test]
    fn recycled_files_replay_only_their_own_entries() {
        let (sim, fs, dir) = sim_journal_dir();
        let mut j = Journal::create(&fs, dir).unwrap();
        let old: Vec<Vec<u8>> = (0..20).map(|i| batch(i, &[i as u8; 3000])).collect();
        append(&mut j, "t-0", &old);
        let written = j.size();
        j.rotate().unwrap(); // file 1 is new; file 0 becomes a spare
        assert_eq!(list_spares(&*fs, dir).unwrap().len(), 1);
        j.rotate().unwrap(); // file 2 is the spare, written again from its start
        assert_eq!(j.seq(), 2);
        assert!(list_spares(&*fs, dir).unwrap().iter().all(|(s, _)| *s == 1));
        let new = vec![batch(100, b"new")];
        append(&mut j, "t-1", &new);
        let path = file_path(dir, 2);
        assert_eq!(fs.len(&path).unwrap(), written, "the old frames are still there, past the new ones");
        assert_eq!(replayed(&*fs, dir), vec![("t-1".to_owned(), new[0].clone())], "the old frames are not replayed");

        // Cut the power at every seed: the new entry was synced, so it is always replayed, and
        // the stale frames never are.
        for seed in 0..32 {
            let after = sim.power_cut(seed);
            assert_eq!(replayed(&after, dir), vec![("t-1".to_owned(), new[0].clone())], "seed {seed}");
        }
    }

    #[test]
    fn a_recycled_file_whose_new_header_never_reached_the_disk_holds_nothing() {
        let (sim, fs, dir) = sim_journal_dir();
        let mut j = Journal::create(&fs, dir).unwrap();
        append(&mut j, "t-0", &[batch(0, b"acknowledged long ago")]);
        j.rotate().unwrap();
        append(&mut j, "t-0", &[batch(1, b"acknowledged a while ago")]);
        j.rotate().unwrap(); // file 2: file 0's bytes and header under a new name, not yet synced
        append(&mut j, "t-0", &[batch(2, b"ours")]);
        let unsynced = Journal::create(&fs, dir).unwrap(); // file 3: spare 1, renamed, header unsynced
        assert_eq!(unsynced.seq(), 3);
        let mut torn = 0;
        for seed in 0..64 {
            let after = sim.power_cut(seed);
            let got = replayed(&after, dir);
            assert_eq!(got.len(), 1, "seed {seed}: only file 2's own entry, never file 3's old ones");
            assert_eq!(got[0].1, batch(2, b"ours"));
            torn += usize::from(after.contents(&file_path(dir, 3)).unwrap()[..FILE_HEADER] != file_header(3));
        }
        assert!(torn > 0, "some cuts kept file 3's old header");
    }

    #[test]
    fn files_from_before_the_header_still_replay() {
        let sim = SimFs::new();
        let dir = Path::new("/data/journal");
        sim.create_dir_all(dir).unwrap();
        let b = batch(7, b"written by an older tierlog");
        let name = b"t-3";
        let len = (2 + name.len() + b.len()) as u32;
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&frame_crc(None, name, &b).to_be_bytes());
        frame.extend_from_slice(&(name.len() as u16).to_be_bytes());
        frame.extend_from_slice(name);
        frame.extend_from_slice(&b);
        let f = sim.create_new(&file_path(dir, 5)).unwrap();
        f.append(&[IoSlice::new(&frame), IoSlice::new(&frame[..20])]).unwrap();
        assert_eq!(replayed(&sim, dir), vec![("t-3".to_owned(), b)]);
    }
}
