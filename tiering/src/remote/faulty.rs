//! A store wrapper that fails on purpose, for fault tests: a fraction of requests return errors,
//! a fraction stall and then fail like timeouts, a fraction of multipart parts fail, and writes to
//! keys containing a given string can be made to fail every time (to stop a writer between its
//! uploads and its manifest commit). Rates can change while it is in use.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// What to break, and how often.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fraction of requests (PUT, GET, HEAD, DELETE, multipart create/complete) that fail at once.
    pub error_rate: f64,
    /// Fraction of requests that stall for `timeout_ms` and then fail.
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Fraction of multipart parts that fail.
    pub part_error_rate: f64,
    /// Writes to keys containing this always fail.
    pub fail_writes_containing: Option<String>,
    /// Writes to keys containing this wait for a permit of the semaphore (one per write), so a
    /// test can hold a writer between two of its PUTs.
    pub hold_writes_containing: Option<(String, Arc<tokio::sync::Semaphore>)>,
}

/// The failing wrapper.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Mutex<Faults>>,
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic { store: "FaultyStore", source: format!("injected fault: {what}").into() }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, faults: Faults) -> Self {
        Self { inner, faults: Arc::new(Mutex::new(faults)) }
    }

    /// Changes the faults from now on.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().expect("invariant: lock not poisoned") = faults;
    }

    fn faults(&self) -> Faults {
        self.faults.lock().expect("invariant: lock not poisoned").clone()
    }

    async fn maybe_fail(&self, key: Option<&Path>, write: bool) -> Result<()> {
        let f = self.faults();
        if write
            && let (Some(k), Some(s)) = (key, &f.fail_writes_containing)
            && k.as_ref().contains(s.as_str())
        {
            return Err(injected("write refused"));
        }
        if write
            && let (Some(k), Some((s, gate))) = (key, &f.hold_writes_containing)
            && k.as_ref().contains(s.as_str())
        {
            gate.acquire().await.map_err(|_| injected("hold gate closed"))?.forget();
        }
        let roll: f64 = rand::random();
        if roll < f.error_rate {
            return Err(injected("error"));
        }
        if roll < f.error_rate + f.timeout_rate {
            crate::clock::real_sleep(f.timeout_ms).await;
            return Err(injected("timeout"));
        }
        Ok(())
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    faults: Arc<Mutex<Faults>>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let rate = self.faults.lock().expect("invariant: lock not poisoned").part_error_rate;
        if rand::random::<f64>() < rate {
            return Box::pin(async { Err(injected("part")) });
        }
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }
    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.maybe_fail(Some(location), true).await?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.maybe_fail(Some(location), true).await?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload { inner, faults: self.faults.clone() }))
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.maybe_fail(Some(location), false).await?;
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.maybe_fail(Some(location), false).await?;
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.maybe_fail(Some(to), true).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
