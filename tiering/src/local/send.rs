//! Read path, zero-copy: whole batches of a local segment handed out as a range of the segment
//! file (a [`FileSpan`]) instead of bytes in memory, so that a server moves them from the page
//! cache to its socket with `sendfile(2)` and never copies them through user space (what Apache
//! Kafka does for plaintext fetches).
//!
//! A span is handed out only for bytes that cannot be wrong: whole published batches whose CRC
//! was already checked (written by this process, checked by recovery, or by an earlier read;
//! anything else goes through the ordinary read, which checks it), of a segment that the span
//! keeps alive, so retention only unlinks it (its blocks are freed once the span is gone) and a
//! compaction rewrite renames new bytes over its name but never over this file.
//!
//! [`Batches`] is what a read that may be zero-copy returns: a span, or bytes in memory (the
//! bucket's tier, a filesystem without real files, a range not checked yet, a small read).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

use bytes::Bytes;

use super::fs::LogFile;
use super::partition::Partition;
use super::segment::Segment;
use crate::error::{Error, Result};
use crate::stats;

/// Spans shorter than this are read into memory: one `sendfile` costs about what copying this
/// many bytes does, and a small answer goes out in one vectored write with its frame.
pub const SPAN_MIN_BYTES: usize = 16 << 10;

/// Whole batches at `pos..pos + len` of a segment file, known to pass their CRC.
#[derive(Clone)]
pub struct FileSpan {
    /// Held so that retention frees the file's blocks only once the span is gone.
    _segment: Arc<Segment>,
    file: Arc<dyn LogFile>,
    pos: u64,
    len: usize,
    /// Ends of the whole batches the span is known to hold (not necessarily every one: between
    /// two sparse index entries some are not looked at), relative to `pos`, ascending; the last
    /// is `len`. What [`FileSpan::cut`] may cut at.
    ends: Vec<u32>,
}

impl std::fmt::Debug for FileSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpan").field("pos", &self.pos).field("len", &self.len).finish_non_exhaustive()
    }
}

impl FileSpan {
    /// `ends` relative to `pos`, ascending, the last being the span's length. `None` when the
    /// file has no descriptor to send from (a simulated filesystem).
    pub(crate) fn new(segment: Arc<Segment>, file: Arc<dyn LogFile>, pos: u64, ends: Vec<u32>) -> Option<Self> {
        let len = *ends.last()? as usize;
        let fd = file.as_fd()?;
        // Start reading the bytes from disk now, on the reader's thread, so the send (on the
        // connection's task) finds them in the page cache. A hint only: errors do not matter.
        // SAFETY: the descriptor is open for the call (`file` holds it); fadvise reads no memory.
        unsafe {
            libc::posix_fadvise(fd.as_raw_fd(), pos as libc::off_t, len as libc::off_t, libc::POSIX_FADV_WILLNEED);
        }
        Some(Self { _segment: segment, file, pos, len, ends })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The longest prefix of the known whole batches within `limit` bytes; the first batch even
    /// when it alone is over, if `at_least_one`. `None` when that is nothing.
    pub fn cut(&self, limit: usize, at_least_one: bool) -> Option<FileSpan> {
        if self.len <= limit {
            return Some(self.clone());
        }
        let keep = self.ends.partition_point(|&e| e as usize <= limit);
        let keep = if keep == 0 && at_least_one { 1 } else { keep };
        (keep > 0).then(|| FileSpan {
            ends: self.ends[..keep].to_vec(),
            len: self.ends[keep - 1] as usize,
            ..self.clone()
        })
    }

    /// Sends bytes `from..` of the span to `out` with one `sendfile(2)`; how many went. A full
    /// non-blocking socket gives `WouldBlock`; 0 means the file ended before the span did.
    pub fn send_to(&self, from: usize, out: BorrowedFd<'_>) -> std::io::Result<usize> {
        if from >= self.len {
            return Ok(0);
        }
        let fd = self.file.as_fd().ok_or(std::io::ErrorKind::Unsupported)?;
        let mut offset = (self.pos + from as u64) as libc::off_t;
        // SAFETY: both descriptors are open for the call (`self.file` and the caller's borrow);
        // `offset` is a valid, writable off_t that sendfile updates.
        let n = unsafe { libc::sendfile(out.as_raw_fd(), fd.as_raw_fd(), &mut offset, self.len - from) };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// The span's bytes, read into memory.
    pub fn read(&self) -> Result<Bytes> {
        self.file.read_exact_at(self.pos, self.len).map(Bytes::from).map_err(|error| Error::Io {
            op: "read segment span",
            path: self._segment.path().to_path_buf(),
            error,
        })
    }
}

impl Partition {
    /// [`Partition::read`], zero-copy where it can be: whole batches of one segment as a
    /// [`FileSpan`] to send with `sendfile` when they were CRC-checked before and the file is a
    /// real one ([`Segment::read_span`]), with the high watermark; `None` when the caller should
    /// `read` instead. Blocking file IO (a small read of batch headers).
    pub fn read_span(&self, offset: i64, max_bytes: usize) -> Result<Option<(FileSpan, i64)>> {
        let (start, hw) = self.bounds();
        if offset < start || offset >= hw {
            return Ok(None);
        }
        let Some(seg) = self.segment_at_or_after(offset, false) else { return Ok(None) };
        let span = seg.read_span(offset, max_bytes, self.config().index_interval_bytes)?;
        Ok(span.map(|s| {
            metrics::counter!(stats::READ_BYTES, "tier" => "local").increment(s.len() as u64);
            (s, hw)
        }))
    }
}

/// Whole batches from a read that may be zero-copy.
#[derive(Debug, Clone)]
pub enum Batches {
    Memory(Bytes),
    File(FileSpan),
}

impl Batches {
    pub fn len(&self) -> usize {
        match self {
            Batches::Memory(b) => b.len(),
            Batches::File(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest prefix of whole batches within `limit` bytes; the first batch even when it
    /// alone is over, if `at_least_one`.
    pub fn cut(self, limit: usize, at_least_one: bool) -> Batches {
        match self {
            // Whole batches already: within the limit, nothing to look at.
            Batches::Memory(b) if b.len() <= limit => Batches::Memory(b),
            Batches::Memory(b) => Batches::Memory(crate::batch::whole_batches(b, limit, at_least_one)),
            Batches::File(s) => s.cut(limit, at_least_one).map_or(Batches::Memory(Bytes::new()), Batches::File),
        }
    }

    /// The bytes, read into memory if they are a span.
    pub fn into_bytes(self) -> Result<Bytes> {
        match self {
            Batches::Memory(b) => Ok(b),
            Batches::File(s) => s.read(),
        }
    }
}

/// A read that may be zero-copy, with the partition's offsets (as [`super::ReadResult`]).
#[derive(Debug, Clone)]
pub struct SendableRead {
    pub batches: Batches,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}
