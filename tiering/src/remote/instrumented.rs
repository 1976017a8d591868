//! A wrapper around any object store that counts requests by kind and the bytes they move. The
//! counts feed the metrics (`tierlog_object_store_requests_total{op}`,
//! `tierlog_object_store_bytes_total{direction}`), tests that bound request counts, and the
//! benchmarks' "requests per GiB" figures.
//!
//! Counting is per request as tierlog issues it: a `get_ranges` is counted as the ranged GETs it
//! turns into, a multipart upload as its parts plus its create/complete/abort calls, a bulk delete
//! per object, and a listing once per call.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use crate::stats;

/// Kinds of request, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    MultipartPart,
    /// Create, complete or abort of a multipart upload.
    MultipartControl,
    Get,
    RangedGet,
    Head,
    List,
    Delete,
    Copy,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::MultipartPart => "multipart_part",
            Op::MultipartControl => "multipart_control",
            Op::Get => "get",
            Op::RangedGet => "ranged_get",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
            Op::Copy => "copy",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    ops: [AtomicU64; 9],
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
}

impl Counters {
    fn count(&self, op: Op) {
        self.ops[op as usize].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(stats::OBJECT_STORE_REQUESTS, "op" => op.name()).increment(1);
    }
    fn wrote(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(stats::OBJECT_STORE_BYTES, "direction" => "out").increment(n);
    }
    fn read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(stats::OBJECT_STORE_BYTES, "direction" => "in").increment(n);
    }
}

/// A snapshot of the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub put: u64,
    pub multipart_part: u64,
    pub multipart_control: u64,
    pub get: u64,
    pub ranged_get: u64,
    pub head: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

impl RequestCounts {
    /// GETs of any kind (whole and ranged).
    pub fn gets(&self) -> u64 {
        self.get + self.ranged_get
    }
    /// Requests that write: PUTs, multipart parts and controls, copies.
    pub fn writes(&self) -> u64 {
        self.put + self.multipart_part + self.multipart_control + self.copy
    }
    /// The counts since `earlier`.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            put: self.put - earlier.put,
            multipart_part: self.multipart_part - earlier.multipart_part,
            multipart_control: self.multipart_control - earlier.multipart_control,
            get: self.get - earlier.get,
            ranged_get: self.ranged_get - earlier.ranged_get,
            head: self.head - earlier.head,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            copy: self.copy - earlier.copy,
            bytes_written: self.bytes_written - earlier.bytes_written,
            bytes_read: self.bytes_read - earlier.bytes_read,
        }
    }
}

/// Counts every request made through it, then passes it on.
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, counters: Arc::new(Counters::default()) }
    }

    pub fn counts(&self) -> RequestCounts {
        let c = &self.counters;
        let op = |o: Op| c.ops[o as usize].load(Ordering::Relaxed);
        RequestCounts {
            put: op(Op::Put),
            multipart_part: op(Op::MultipartPart),
            multipart_control: op(Op::MultipartControl),
            get: op(Op::Get),
            ranged_get: op(Op::RangedGet),
            head: op(Op::Head),
            list: op(Op::List),
            delete: op(Op::Delete),
            copy: op(Op::Copy),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<Counters>,
}

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.counters.count(Op::MultipartPart);
        self.counters.wrote(data.content_length() as u64);
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> Result<PutResult> {
        self.counters.count(Op::MultipartControl);
        self.inner.complete().await
    }
    async fn abort(&mut self) -> Result<()> {
        self.counters.count(Op::MultipartControl);
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.counters.count(Op::Put);
        self.counters.wrote(payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.counters.count(Op::MultipartControl);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload { inner, counters: self.counters.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head {
            Op::Head
        } else if options.range.is_some() {
            Op::RangedGet
        } else {
            Op::Get
        };
        self.counters.count(op);
        let result = self.inner.get_opts(location, options).await?;
        if op != Op::Head {
            let Range { start, end } = result.range;
            self.counters.read(end - start);
        }
        Ok(result)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let counters = self.counters.clone();
        let counted = locations
            .map(move |p| {
                counters.count(Op::Delete);
                p
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counters.count(Op::List);
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counters.count(Op::List);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.counters.count(Op::List);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.counters.count(Op::Copy);
        self.inner.copy_opts(from, to, options).await
    }
}

/// `Bytes` helper for tests and callers that want a payload from a slice.
pub fn payload(b: &[u8]) -> PutPayload {
    PutPayload::from(Bytes::copy_from_slice(b))
}
