//! One segment: the log file `<base_offset:020>.log`, its sparse indexes, and the operations on its
//! bytes shared by the read path (`read`, `find_time`), recovery (`scan`) and sealing (`seal`).
//!
//! Readers take an `Arc<Segment>` from the partition and then work without the partition lock: the
//! published size in [`SegmentMeta`] says how far the bytes are complete. The writer appends
//! through the same file handle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use super::fs::{Fs, LogFile, remove_if_present};
use super::index::SegmentIndex;
use super::send::FileSpan;
use crate::batch::header::{BatchHeader, HEADER_LEN, verify_crc, whole_batches};
use crate::batch::records::decode_records;
use crate::error::{Error, Result};

pub const LOG_EXT: &str = "log";
pub const INDEX_EXT: &str = "index";
pub const TIME_INDEX_EXT: &str = "timeindex";

/// `<dir>/<base:020>.<ext>`
pub fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// What readers may see of a segment; changed only by the writer, after the bytes are written (and
/// synced, under fsync durability).
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    pub index: SegmentIndex,
    /// Published bytes: readers never look past this.
    pub size: u64,
    /// The offset after the last published batch.
    pub next_offset: i64,
    /// Sealed segments never change again.
    pub sealed: bool,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    path: PathBuf,
    fs: Arc<dyn Fs>,
    /// The read handle, opened on first use and let go by [`Segment::close_if_unread`].
    file: RwLock<Option<Arc<dyn LogFile>>>,
    /// Read since the last [`Segment::close_if_unread`].
    touched: AtomicBool,
    /// The handle must stay open: the path may come to name other bytes (a rewrite renamed over
    /// it) while readers still hold this segment.
    pinned: AtomicBool,
    pub(crate) meta: RwLock<SegmentMeta>,
    /// Byte ranges (sorted, merged) whose batches are known to pass their CRC: written by this
    /// process, validated by recovery, or checked by an earlier read. Reads check the rest once.
    verified: Mutex<Vec<(u64, u64)>>,
}

/// A summary of a segment for `describe` and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub sealed: bool,
    pub path: PathBuf,
}

/// How [`scan`] treats the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// Bytes known to be durable and checked before (below the recovery checkpoint, or a sealed
    /// segment): read headers only.
    Trusted,
    /// Bytes of unknown state (past the checkpoint): check every batch's length, magic, CRC and
    /// offset continuity.
    Validate,
}

/// Where a scan stopped and why.
#[derive(Debug)]
pub struct ScanOutcome {
    /// End of the last good batch.
    pub end: u64,
    pub next_offset: i64,
    pub batches: u64,
    /// Why it stopped before the end, if it did.
    pub stopped: Option<String>,
}

impl Segment {
    pub(crate) fn new(
        fs: &Arc<dyn Fs>,
        dir: &Path,
        base_offset: i64,
        meta: SegmentMeta,
        file: Option<Arc<dyn LogFile>>,
    ) -> Self {
        let path = segment_path(dir, base_offset, LOG_EXT);
        Self {
            base_offset,
            path,
            fs: fs.clone(),
            touched: AtomicBool::new(file.is_some()),
            file: RwLock::new(file),
            pinned: AtomicBool::new(false),
            meta: RwLock::new(meta),
            verified: Mutex::default(),
        }
    }

    /// Records that the batches in `start..end` pass their CRC.
    pub(crate) fn mark_verified(&self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut v = self.verified.lock().expect("invariant: verified ranges lock not poisoned");
        // The common case, on every publish: the range continues the last one.
        if let Some(last) = v.last_mut()
            && last.0 <= start
            && start <= last.1
        {
            last.1 = last.1.max(end);
            return;
        }
        v.push((start, end));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(a, b) in v.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *v = merged;
    }

    pub(crate) fn copy_verified_from(&self, other: &Segment) {
        let ranges = other.verified.lock().expect("invariant: verified ranges lock not poisoned").clone();
        *self.verified.lock().expect("invariant: verified ranges lock not poisoned") = ranges;
    }

    fn is_verified(&self, start: u64, end: u64) -> bool {
        self.verified_until(start) >= end
    }

    /// The end of the checked range that holds `start` (`start` itself when none does).
    fn verified_until(&self, start: u64) -> u64 {
        let v = self.verified.lock().expect("invariant: verified ranges lock not poisoned");
        // The last range starting at or before `start`.
        let i = v.partition_point(|&(a, _)| a <= start);
        if i > 0 { v[i - 1].1.max(start) } else { start }
    }

    /// Checks the CRC of every batch of `buf` (read from file position `at`) not verified yet.
    /// A bad first batch is a `Corrupt` error; a bad later one ends the result before it, so the
    /// next read, starting there, gets the error and the intact batches before it stay readable.
    fn verified_batches(&self, at: u64, buf: Bytes) -> Result<Bytes> {
        if self.is_verified(at, at + buf.len() as u64) {
            return Ok(buf);
        }
        let mut end = 0usize;
        while end < buf.len() {
            let checked = BatchHeader::parse(&buf[end..]).and_then(|h| {
                let len = h.total_len();
                let pos = at + end as u64;
                let Some(batch) = buf.get(end..end + len) else {
                    return Err(crate::BatchError::LengthMismatch { declared: len as i64, actual: buf.len() - end });
                };
                if !self.is_verified(pos, pos + len as u64) {
                    verify_crc(batch, &h)?;
                }
                Ok(len)
            });
            match checked {
                Ok(len) => end += len,
                Err(e) if end == 0 => {
                    metrics::counter!(crate::stats::CORRUPT_BATCHES, "tier" => "local").increment(1);
                    return Err(self.corrupt(at, e.to_string()));
                }
                Err(_) => break,
            }
        }
        self.mark_verified(at, at + end as u64);
        Ok(buf.slice(..end))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read handle, opened on first use (sealed segments are opened lazily, so a partition
    /// of thousands of segments costs no file descriptors until read).
    pub fn file(&self) -> Result<Arc<dyn LogFile>> {
        // Written only when it changes: concurrent readers of one segment share the flag's
        // cache line, and a store on every read would bounce it between cores.
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
        if let Some(f) = &*self.file.read().expect("invariant: segment file lock not poisoned") {
            return Ok(f.clone());
        }
        let mut cell = self.file.write().expect("invariant: segment file lock not poisoned");
        if let Some(f) = &*cell {
            return Ok(f.clone());
        }
        let f = self.fs.open(&self.path).map_err(Error::io("open segment", &self.path))?;
        *cell = Some(f.clone());
        Ok(f)
    }

    /// Opens the read handle and keeps it for the life of this segment: called before a rewrite
    /// renames new bytes over the path, so readers holding this segment keep reading the old ones.
    pub(crate) fn hold_open(&self) -> Result<()> {
        self.pinned.store(true, Ordering::Relaxed);
        self.file().map(drop)
    }

    /// Lets the read handle go if nothing read through it since the last call (and it is not
    /// held open); returns whether a handle was closed. Readers that cloned it keep theirs.
    pub(crate) fn close_if_unread(&self) -> bool {
        if self.touched.swap(false, Ordering::Relaxed) || self.pinned.load(Ordering::Relaxed) {
            return false;
        }
        let mut cell = self.file.write().expect("invariant: segment file lock not poisoned");
        // A reader may have opened it between the two checks: it set `touched` first.
        if self.touched.load(Ordering::Relaxed) || self.pinned.load(Ordering::Relaxed) {
            return false;
        }
        cell.take().is_some()
    }

    pub fn meta(&self) -> SegmentMeta {
        self.meta.read().expect("invariant: segment meta lock not poisoned").clone()
    }

    pub fn info(&self) -> SegmentInfo {
        let m = self.meta.read().expect("invariant: segment meta lock not poisoned");
        SegmentInfo {
            base_offset: self.base_offset,
            next_offset: m.next_offset,
            size: m.size,
            max_timestamp: m.index.max_timestamp(),
            sealed: m.sealed,
            path: self.path.clone(),
        }
    }

    /// Reads exactly `len` bytes at `pos`.
    pub fn read_at(&self, pos: u64, len: usize) -> Result<Bytes> {
        self.file()?.read_exact_at(pos, len).map(Bytes::from).map_err(Error::io("read segment", &self.path))
    }

    /// Whole batches starting with the one that holds `offset`, at most `max_bytes` of them but
    /// always at least one. `None` when this segment holds nothing at or after `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize, interval: u32) -> Result<Option<Bytes>> {
        let (start, size) = {
            let m = self.meta.read().expect("invariant: segment meta lock not poisoned");
            if offset >= m.next_offset {
                return Ok(None);
            }
            let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
            (m.index.lookup_offset(rel) as u64, m.size)
        };
        let want = (max_bytes as u64).saturating_add(2 * interval as u64 + HEADER_LEN as u64);
        let chunk = self.read_at(start, want.min(size - start) as usize)?;
        // Skip batches before `offset`.
        let mut pos = 0usize;
        let first = loop {
            let Ok(h) = BatchHeader::parse(&chunk[pos..]) else {
                if start + (pos as u64) >= size {
                    return Ok(None);
                }
                // The skip ran past the chunk: continue from there with a fresh read.
                return self.read_from(start + pos as u64, offset, max_bytes, size);
            };
            if h.last_offset() >= offset {
                break h;
            }
            if h.total_len() < HEADER_LEN {
                return Err(self.corrupt(start + pos as u64, "batch length is shorter than a header".into()));
            }
            pos += h.total_len();
            if pos >= chunk.len() {
                if start + pos as u64 >= size {
                    return Ok(None);
                }
                return self.read_from(start + pos as u64, offset, max_bytes, size);
            }
        };
        if pos + first.total_len() > chunk.len() {
            return self.read_from(start + pos as u64, offset, max_bytes, size);
        }
        let at = start + pos as u64;
        self.verified_batches(at, whole_batches(chunk.slice(pos..), max_bytes, true)).map(Some)
    }

    /// The slow path of `read`: a batch at `pos` that the first chunk did not hold whole.
    fn read_from(&self, pos: u64, offset: i64, max_bytes: usize, size: u64) -> Result<Option<Bytes>> {
        let mut pos = pos;
        loop {
            if pos >= size {
                return Ok(None);
            }
            let hdr = self.read_at(pos, HEADER_LEN.min((size - pos) as usize))?;
            let h = BatchHeader::parse(&hdr).map_err(|e| self.corrupt(pos, e.to_string()))?;
            if h.last_offset() < offset {
                pos += h.total_len() as u64;
                continue;
            }
            let len = (h.total_len().max(max_bytes) as u64).min(size - pos);
            if (len as usize) < h.total_len() {
                return Err(self.corrupt(pos, "batch runs past the published size".into()));
            }
            let chunk = self.read_at(pos, len as usize)?;
            return self.verified_batches(pos, whole_batches(chunk, max_bytes, true)).map(Some);
        }
    }

    /// `read` as a range of this file ([`FileSpan`], for `sendfile`): whole batches from the one
    /// holding `offset`, at most `max_bytes` of them but at least one. `None` when that is not
    /// known cheaply to be safe, and the caller reads the bytes instead: the range was not
    /// CRC-checked yet, the batch holding `offset` is not within a small read of its index entry,
    /// the file is not a real one, or the segment holds nothing at or after `offset`.
    ///
    /// Where the batches end is known from the headers in that small read, the sparse offset
    /// index (each entry starts a batch) and the published size, so the span may stop short of
    /// `max_bytes` by at most an index interval. The batches' bytes are not read.
    pub(crate) fn read_span(
        self: &Arc<Self>,
        offset: i64,
        max_bytes: usize,
        interval: u32,
    ) -> Result<Option<FileSpan>> {
        let (start, size, indexed) = {
            let m = self.meta.read().expect("invariant: segment meta lock not poisoned");
            if offset >= m.next_offset {
                return Ok(None);
            }
            let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
            let start = m.index.lookup_offset(rel) as u64;
            let upto = start.saturating_add(max_bytes as u64).saturating_add(2 * interval as u64 + HEADER_LEN as u64);
            (start, m.size, m.index.positions_between(start, upto.min(m.size)).collect::<Vec<u64>>())
        };
        let file = self.file()?;
        if file.as_fd().is_none() {
            return Ok(None);
        }
        let scan = (2 * interval as u64 + HEADER_LEN as u64).min(size - start);
        let chunk = file.read_exact_at(start, scan as usize).map_err(Error::io("read segment", &self.path))?;
        // The headers in the chunk: skip to the batch holding `offset`, then note where batches end.
        let (mut pos, mut first) = (0usize, None);
        let mut ends: Vec<u64> = Vec::new();
        while let Ok(h) = BatchHeader::parse(&chunk[pos..]) {
            let at = start + pos as u64;
            let end = at + h.total_len() as u64;
            if h.total_len() < HEADER_LEN || end > size {
                return Ok(None);
            }
            if first.is_none() && h.last_offset() >= offset {
                first = Some(at);
            }
            if first.is_some() {
                ends.push(end);
            }
            pos += h.total_len();
            if pos >= chunk.len() {
                break;
            }
        }
        let Some(at) = first else { return Ok(None) };
        ends.extend(indexed.into_iter().filter(|&p| p > at));
        ends.push(size);
        ends.sort_unstable();
        ends.dedup();
        // The first batch always, then what fits in `max_bytes`; all of it checked before.
        let limit = at.saturating_add(max_bytes as u64).max(ends[0]).min(self.verified_until(at));
        let ends: Vec<u32> = ends.into_iter().take_while(|&e| e <= limit).map(|e| (e - at) as u32).collect();
        if ends.is_empty() {
            return Ok(None);
        }
        Ok(FileSpan::new(self.clone(), file, at, ends))
    }

    /// Calls `f` with the header of every published batch that ends at or after `offset`, in
    /// order (headers only: a chunked read of the segment from the index entry before `offset`).
    pub(crate) fn for_each_header(&self, offset: i64, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        let (start, size) = {
            let m = self.meta.read().expect("invariant: segment meta lock not poisoned");
            let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
            (m.index.lookup_offset(rel) as u64, m.size)
        };
        let file = self.file()?;
        let mut reader = ChunkReader { file: &*file, end: size, buf: Vec::new(), at: start };
        let mut pos = start;
        while pos + HEADER_LEN as u64 <= size {
            let h = BatchHeader::parse(reader.get(pos, HEADER_LEN).map_err(Error::io("read segment", &self.path))?)
                .map_err(|e| self.corrupt(pos, e.to_string()))?;
            if h.last_offset() >= offset {
                f(&h);
            }
            pos += h.total_len() as u64;
        }
        Ok(())
    }

    /// The first record with timestamp >= `t` in this segment: `(offset, timestamp)`.
    pub fn find_time(&self, t: i64) -> Result<Option<(i64, i64)>> {
        let (mut pos, size) = {
            let m = self.meta.read().expect("invariant: segment meta lock not poisoned");
            if m.index.max_timestamp() < t {
                return Ok(None);
            }
            (m.index.lookup_time(t) as u64, m.size)
        };
        while pos < size {
            let hdr = self.read_at(pos, HEADER_LEN.min((size - pos) as usize))?;
            let h = BatchHeader::parse(&hdr).map_err(|e| self.corrupt(pos, e.to_string()))?;
            if h.max_timestamp >= t {
                let batch = self.verified_batches(pos, self.read_at(pos, h.total_len())?)?;
                if batch.is_empty() {
                    return Err(self.corrupt(pos, "batch runs past the end of the segment".into()));
                }
                let records = decode_records(&h, &batch).map_err(|e| self.corrupt(pos, e.to_string()))?;
                return Ok(records.iter().find(|r| r.timestamp >= t).map(|r| (r.offset, r.timestamp)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Writes the index files of a sealed segment and marks it sealed. The log itself must already
    /// be synced by the caller.
    pub(crate) fn seal(&self, dir: &Path) -> Result<()> {
        let mut m = self.meta.write().expect("invariant: segment meta lock not poisoned");
        let next_rel = (m.next_offset - self.base_offset) as u32;
        let fs = &*self.fs;
        write_durable(fs, &segment_path(dir, self.base_offset, INDEX_EXT), &m.index.encode_offsets())?;
        write_durable(fs, &segment_path(dir, self.base_offset, TIME_INDEX_EXT), &m.index.encode_times(next_rel))?;
        m.sealed = true;
        Ok(())
    }

    fn corrupt(&self, position: u64, reason: String) -> Error {
        Error::Corrupt { path: self.path.clone(), position, reason }
    }
}

/// A temp file name beside `path` that no other writer uses: `<name>.<pid>-<n>.tmp`. Two writers
/// of one file (a checkpoint written by a closing writer and by a recovery) must never share a
/// temp file, or one renames the other's half-written bytes into place or fails on a name that
/// the other already renamed. Recovery deletes every `*.tmp` it finds.
pub(crate) fn unique_tmp(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.{}-{n}.tmp", std::process::id()))
}

/// Writes a small file atomically and durably: temp file, fsync, rename. The caller syncs the
/// directory when the rename itself must survive a crash.
pub(crate) fn write_durable(fs: &dyn Fs, path: &Path, data: &[u8]) -> Result<()> {
    let tmp = unique_tmp(path);
    let f = fs.create(&tmp).map_err(Error::io("create", &tmp))?;
    f.append(&[std::io::IoSlice::new(data)]).map_err(Error::io("write", &tmp))?;
    f.sync_data().map_err(Error::io("fsync", &tmp))?;
    fs.rename(&tmp, path).map_err(Error::io("rename", path))?;
    Ok(())
}

/// Deletes a segment's log and index files; files already gone are fine.
pub(crate) fn remove_segment_files(fs: &dyn Fs, dir: &Path, base: i64) -> Result<()> {
    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
        let p = segment_path(dir, base, ext);
        remove_if_present(fs, &p).map_err(Error::io("remove segment file", &p))?;
    }
    Ok(())
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(Error::io("fsync directory", dir))
}

/// Opens (creating if needed) a segment log for appending and reading.
pub(crate) fn open_for_append(fs: &dyn Fs, path: &Path) -> Result<Arc<dyn LogFile>> {
    fs.open_append(path).map_err(Error::io("open segment for append", path))
}

/// Reads a file front to back in large chunks, for `scan`.
struct ChunkReader<'a> {
    file: &'a dyn LogFile,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    at: u64,
}

impl ChunkReader<'_> {
    const CHUNK: u64 = 1 << 20;

    /// `len` bytes at `pos` (which must not be before the previous request's position).
    fn get(&mut self, pos: u64, len: usize) -> std::io::Result<&[u8]> {
        let have = pos >= self.at && pos + len as u64 <= self.at + self.buf.len() as u64;
        if !have {
            let want = (len as u64).max(Self::CHUNK).min(self.end.saturating_sub(pos)).max(len as u64);
            self.buf = self.file.read_exact_at(pos, want as usize)?;
            self.at = pos;
        }
        let from = (pos - self.at) as usize;
        Ok(&self.buf[from..from + len])
    }
}

/// Walks the batches of `file` from `start` to `end`, feeding `index`. Stops at the first batch
/// that is incomplete, unparsable, out of offset sequence or (in `Validate` mode) fails its CRC.
#[allow(clippy::too_many_arguments)]
pub fn scan(
    file: &dyn LogFile,
    start: u64,
    end: u64,
    base_offset: i64,
    mut expected_offset: i64,
    mode: ScanMode,
    index: &mut SegmentIndex,
    interval: u32,
) -> std::io::Result<ScanOutcome> {
    let mut reader = ChunkReader { file, end, buf: Vec::new(), at: start };
    let mut pos = start;
    let mut batches = 0u64;
    let stop = |reason: String, pos, next, batches| {
        Ok(ScanOutcome { end: pos, next_offset: next, batches, stopped: Some(reason) })
    };
    while pos < end {
        if end - pos < HEADER_LEN as u64 {
            return stop(format!("{} trailing bytes are less than a header", end - pos), pos, expected_offset, batches);
        }
        let h = match BatchHeader::parse(reader.get(pos, HEADER_LEN)?) {
            Ok(h) => h,
            Err(e) => return stop(e.to_string(), pos, expected_offset, batches),
        };
        let len = h.total_len() as u64;
        if pos + len > end {
            return stop(format!("batch of {len} bytes runs past the end ({end})"), pos, expected_offset, batches);
        }
        if h.base_offset != expected_offset || h.last_offset_delta < 0 {
            return stop(
                format!("batch base offset {} where {} was expected", h.base_offset, expected_offset),
                pos,
                expected_offset,
                batches,
            );
        }
        if mode == ScanMode::Validate
            && let Err(e) = verify_crc(reader.get(pos, len as usize)?, &h)
        {
            return stop(e.to_string(), pos, expected_offset, batches);
        }
        let rel = (h.base_offset - base_offset) as u32;
        index.on_append(rel, pos as u32, len as u32, h.max_timestamp, interval);
        expected_offset = h.next_offset();
        pos += len;
        batches += 1;
    }
    Ok(ScanOutcome { end: pos, next_offset: expected_offset, batches, stopped: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::fs::StdFs;

    fn segment(fs: &Arc<dyn Fs>, dir: &Path, bytes: &[u8]) -> Segment {
        std::fs::write(segment_path(dir, 0, LOG_EXT), bytes).unwrap();
        let meta = SegmentMeta { index: SegmentIndex::new(), size: bytes.len() as u64, next_offset: 1, sealed: true };
        Segment::new(fs, dir, 0, meta, None)
    }

    #[test]
    fn an_unread_handle_closes_but_a_held_one_keeps_the_old_bytes_across_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let seg = segment(&fs, dir.path(), b"old bytes");
        assert!(!seg.close_if_unread(), "never opened: nothing to close");
        assert_eq!(&seg.read_at(0, 9).unwrap()[..], b"old bytes");
        assert!(!seg.close_if_unread(), "read since the last sweep: kept");
        assert!(seg.close_if_unread(), "unread for a sweep: closed");
        assert_eq!(&seg.read_at(0, 9).unwrap()[..], b"old bytes", "reopened on the next read");

        // A rewrite holds the old handle open, then renames new bytes over the path: readers of
        // this segment keep seeing the old bytes, however many sweeps pass.
        seg.hold_open().unwrap();
        let tmp = dir.path().join("new.tmp");
        std::fs::write(&tmp, b"new bytes").unwrap();
        std::fs::rename(&tmp, seg.path()).unwrap();
        for _ in 0..3 {
            assert!(!seg.close_if_unread());
        }
        assert_eq!(&seg.read_at(0, 9).unwrap()[..], b"old bytes");
    }
}
