//! Response frames that reference the stored bytes instead of copying them: the encoder of the
//! `kafka-protocol` crate writes into a [`FrameBuf`], which keeps every slice it is given that
//! lies inside one of the response's own record buffers (the `Bytes` a Fetch read from the log or
//! the cache) as a reference to that buffer, and copies everything else (headers, lengths, small
//! fields). The frame is then a list of chunks written with vectored writes: a Fetch's records go
//! from the page cache or the read cache to the socket with no copy in user space.

use std::ops::Range;

use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Slices at least this long are referenced rather than copied.
const SHARE_MIN: usize = 4096;

/// A frame under construction: finished chunks, and the owned tail being written.
pub(super) struct FrameBuf {
    done: Vec<Bytes>,
    /// Bytes in `done`.
    done_len: usize,
    cur: BytesMut,
    shared: Vec<Bytes>,
}

impl FrameBuf {
    /// A buffer that may reference slices of `shared`.
    pub(super) fn new(shared: Vec<Bytes>, capacity: usize) -> Self {
        Self { done: Vec::new(), done_len: 0, cur: BytesMut::with_capacity(capacity), shared }
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            let c = self.cur.split().freeze();
            self.done_len += c.len();
            self.done.push(c);
        }
    }

    /// The frame's chunks, in order.
    pub(super) fn finish(mut self) -> Vec<Bytes> {
        self.flush();
        self.done
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
        if src.len() >= SHARE_MIN
            && let Some(owner) = self.owner(src)
        {
            let chunk = owner.slice_ref(src);
            self.flush();
            self.done_len += chunk.len();
            self.done.push(chunk);
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
        let mut f = FrameBuf::new(vec![records.clone()], 64);
        f.put_i32(5);
        f.put_slice(&records[100..9_100]);
        f.put_slice(&[1, 2, 3]);
        f.put_slice(&vec![9u8; 5000]); // not from a shared buffer: copied
        assert_eq!(f.offset(), 4 + 9000 + 3 + 5000);
        let chunks = f.finish();
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
