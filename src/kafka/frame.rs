//! Response frames that reference the stored bytes instead of copying them: the encoder of the
//! `kafka-protocol` crate writes into a [`FrameBuf`], which keeps every slice it is given that
//! lies inside one of the response's own record buffers (the `Bytes` a Fetch read from the log or
//! the cache) as a reference to that buffer, and copies everything else (headers, lengths, small
//! fields). Records that are a range of a local segment file ([`FileSpan`]) go into the response
//! as a stand-in slice (see [`stand_in`]) and come out of the frame as that span, which the
//! connection sends with `sendfile(2)`. The frame is then a list of chunks written with vectored
//! writes and `sendfile`: a Fetch's records go from the page cache or the read cache to the
//! socket with no copy in user space.

use std::ops::Range;

use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use tiering::local::FileSpan;

/// Slices at least this long are referenced rather than copied.
const SHARE_MIN: usize = 4096;

/// The longest file span a response may carry, and how many spans it may carry: the bounds of
/// the stand-in region.
pub(super) const MAX_SPAN_BYTES: usize = 64 << 20;
pub(super) const MAX_SPANS: usize = 1 << 16;

/// Never read or written: a slice of it stands in for a file span's bytes while the response is
/// encoded (the encoder only hands its address and length to [`FrameBuf::put_slice`]). Zeroed,
/// so it takes no memory until touched, and it never is.
static STAND_IN: [u8; MAX_SPAN_BYTES + MAX_SPANS] = [0; MAX_SPAN_BYTES + MAX_SPANS];

/// The stand-in for span number `i` of a response, `len` bytes: spans are told apart by where
/// their stand-in starts. `i < MAX_SPANS` and `len <= MAX_SPAN_BYTES`.
pub(super) fn stand_in(i: usize, len: usize) -> Bytes {
    Bytes::from_static(&STAND_IN[i..i + len])
}

/// One piece of a response frame.
#[derive(Debug, Clone)]
pub(super) enum Chunk {
    Memory(Bytes),
    /// Sent from the segment file with `sendfile`.
    File(FileSpan),
}

impl Chunk {
    pub(super) fn len(&self) -> usize {
        match self {
            Chunk::Memory(b) => b.len(),
            Chunk::File(s) => s.len(),
        }
    }
}

/// A frame under construction: finished chunks, and the owned tail being written.
pub(super) struct FrameBuf {
    done: Vec<Chunk>,
    /// Bytes in `done`.
    done_len: usize,
    cur: BytesMut,
    shared: Vec<Bytes>,
    /// Span `i` stands behind `stand_in(i, its length)`.
    files: Vec<FileSpan>,
    /// A stand-in slice that names no span of this frame (a bug): the frame is not sent.
    unknown_stand_in: bool,
}

impl FrameBuf {
    /// A buffer that may reference slices of `shared`, and stand `files` for their stand-ins.
    pub(super) fn new(shared: Vec<Bytes>, files: Vec<FileSpan>, capacity: usize) -> Self {
        Self {
            done: Vec::new(),
            done_len: 0,
            cur: BytesMut::with_capacity(capacity),
            shared,
            files,
            unknown_stand_in: false,
        }
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            let c = self.cur.split().freeze();
            self.done_len += c.len();
            self.done.push(Chunk::Memory(c));
        }
    }

    /// The frame's chunks, in order; `None` if a stand-in named no span of the frame.
    pub(super) fn finish(mut self) -> Option<Vec<Chunk>> {
        self.flush();
        (!self.unknown_stand_in).then_some(self.done)
    }

    /// The span behind a stand-in slice, if `src` is one.
    fn span(&mut self, src: &[u8]) -> Option<Option<FileSpan>> {
        let base = STAND_IN.as_ptr() as usize;
        let at = (src.as_ptr() as usize).checked_sub(base).filter(|&at| at < MAX_SPANS)?;
        Some(self.files.get(at).filter(|s| s.len() == src.len()).cloned())
    }

    fn owner(&self, src: &[u8]) -> Option<&Bytes> {
        let (start, end) = (src.as_ptr() as usize, src.as_ptr() as usize + src.len());
        self.shared.iter().find(|b| {
            let (bs, be) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
            bs <= start && end <= be
        })
    }
}

// SAFETY: every method forwards to the owned tail `cur`, a `BytesMut`, whose own `BufMut`
// implementation upholds the contract; `put_slice` either forwards too or appends a whole
// chunk without touching `cur`'s uninitialised memory.
unsafe impl BufMut for FrameBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which is `cur`'s.
        unsafe { self.cur.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }
    fn put_slice(&mut self, src: &[u8]) {
        if let Some(span) = self.span(src) {
            let Some(span) = span else {
                self.unknown_stand_in = true;
                return;
            };
            self.flush();
            self.done_len += span.len();
            self.done.push(Chunk::File(span));
            return;
        }
        if src.len() >= SHARE_MIN
            && let Some(owner) = self.owner(src)
        {
            let chunk = owner.slice_ref(src);
            self.flush();
            self.done_len += chunk.len();
            self.done.push(Chunk::Memory(chunk));
            return;
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for FrameBuf {
    fn offset(&self) -> usize {
        self.done_len + self.cur.len()
    }
    /// Message encoding never seeks (only the crate's record encoder does, which tierlog does not
    /// use); a seek before the owned tail keeps the tail as it is.
    fn seek(&mut self, offset: usize) {
        if offset >= self.done_len {
            self.cur.resize(offset - self.done_len, 0);
        }
    }
    /// See `seek`: a range outside the owned tail is clamped to it.
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let len = self.cur.len();
        let start = r.start.saturating_sub(self.done_len).min(len);
        let end = r.end.saturating_sub(self.done_len).clamp(start, len);
        &mut self.cur[start..end]
    }
}

/// A request frame as a client sends it (length, header at the API's header version, body): for
/// tools, benches and tests that speak to a broker without a client library.
pub fn request_frame<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("tierlog")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, R::header_version(version))?;
    body.encode(&mut buf, version)?;
    let len = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_slices_of_the_shared_buffers_are_referenced_and_the_rest_copied() {
        let records = Bytes::from(vec![7u8; 10_000]);
        let mut f = FrameBuf::new(vec![records.clone()], Vec::new(), 64);
        f.put_i32(5);
        f.put_slice(&records[100..9_100]);
        f.put_slice(&[1, 2, 3]);
        f.put_slice(&vec![9u8; 5000]); // not from a shared buffer: copied
        assert_eq!(f.offset(), 4 + 9000 + 3 + 5000);
        let chunks: Vec<Bytes> = f
            .finish()
            .expect("no stand-in")
            .into_iter()
            .map(|c| match c {
                Chunk::Memory(b) => b,
                Chunk::File(_) => panic!("no file span was given"),
            })
            .collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), records[100..].as_ptr(), "no copy");
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut want = 5i32.to_be_bytes().to_vec();
        want.extend_from_slice(&records[100..9_100]);
        want.extend_from_slice(&[1, 2, 3]);
        want.extend(std::iter::repeat_n(9u8, 5000));
        assert_eq!(all, want);
    }
}
