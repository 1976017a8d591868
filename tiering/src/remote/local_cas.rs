//! Compare-and-swap for the local-directory bucket.
//!
//! `object_store`'s `LocalFileSystem` implements create-only puts (`PutMode::Create`) but not
//! `PutMode::Update`, which the manifest head needs. This wrapper adds it: under an exclusive
//! lock of the object's stripe (one of [`STRIPES`], by a hash of its name: a mutex in this process
//! and an open-file-description lock on that byte of `<bucket>/.cas.lock`, so writers in other
//! processes on the same machine are excluded too, while updates of different objects, such as
//! the manifest heads of thousands of partitions opening together, go on at once) it reads the
//! object's current ETag, refuses with `Precondition` when it differs from the
//! expected one, and otherwise replaces the object with the same atomic staged rename a plain put
//! uses. Every other operation goes straight to `LocalFileSystem`, with fsync on, so an object
//! that a put reported is on disk.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// A local directory used as a bucket, with `PutMode::Update` support.
#[derive(Debug)]
pub struct LocalBucket {
    inner: Arc<LocalFileSystem>,
    lock_path: std::path::PathBuf,
    /// Serializes updates of one stripe inside this process; the byte-range lock does it across
    /// processes.
    local: Vec<tokio::sync::Mutex<()>>,
}

/// How many independent locks conditional updates are spread over.
const STRIPES: usize = 256;

impl LocalBucket {
    pub fn new(root: &std::path::Path) -> Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true).with_fsync(true);
        let local = (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        Ok(Self { inner: Arc::new(inner), lock_path: root.join(".cas.lock"), local })
    }

    async fn update(&self, location: &Path, payload: PutPayload, expected: Option<String>) -> Result<PutResult> {
        let stripe = crc32c::crc32c(location.as_ref().as_bytes()) as usize % STRIPES;
        let _guard = self.local[stripe].lock().await;
        let lock_path = self.lock_path.clone();
        let lock = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let f = File::options().create(true).truncate(false).write(true).open(&lock_path)?;
            // SAFETY: an all-zero `flock` is a valid value of the plain C struct.
            let mut range: libc::flock = unsafe { std::mem::zeroed() };
            range.l_type = libc::F_WRLCK as libc::c_short;
            range.l_whence = libc::SEEK_SET as libc::c_short;
            range.l_start = stripe as libc::off_t;
            range.l_len = 1;
            // SAFETY: an open-file-description lock on a descriptor we own, with a valid `flock`;
            // it is released when `f` is closed.
            if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLKW, &range) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f)
        })
        .await
        .map_err(|e| object_store::Error::Generic { store: "LocalBucket", source: Box::new(e) })?
        .map_err(|e| object_store::Error::Generic { store: "LocalBucket", source: Box::new(e) })?;
        let current = match self.inner.head(location).await {
            Ok(meta) => meta.e_tag,
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let result = if current.is_some() && current == expected {
            self.put_plain(location, payload, PutOptions::default()).await
        } else {
            Err(object_store::Error::Precondition {
                path: location.to_string(),
                source: format!(
                    "expected ETag {}, found {}",
                    expected.as_deref().unwrap_or("(none)"),
                    current.as_deref().unwrap_or("(none)")
                )
                .into(),
            })
        };
        drop(lock);
        result
    }
}

/// The longest object file name `LocalFileSystem` can stage: it writes `<name>#<n>` and renames
/// it, and file names are at most 255 bytes on Linux file systems.
const MAX_STAGED_NAME: usize = 255 - 4;

impl LocalBucket {
    /// A create or overwrite put. Names too long for `LocalFileSystem`'s staging file (a
    /// 249-character topic's catalog entry is 254 bytes) are staged here under a short name
    /// that its listings skip (`#<digits>`, as its own staging files), fsynced, and moved into
    /// place the same way: a rename to overwrite, a hard link to create only if absent.
    async fn put_plain(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if location.filename().is_none_or(|f| f.len() <= MAX_STAGED_NAME)
            || opts.mode != PutMode::Overwrite && opts.mode != PutMode::Create
        {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let dest = self.inner.path_to_filesystem(location)?;
        let create = opts.mode == PutMode::Create;
        let path = location.to_string();
        tokio::task::spawn_blocking(move || -> std::result::Result<(), object_store::Error> {
            use std::io::Write;
            let generic =
                |e: std::io::Error| object_store::Error::Generic { store: "LocalBucket", source: Box::new(e) };
            let dir = dest.parent().expect("invariant: an object path has a parent");
            std::fs::create_dir_all(dir).map_err(generic)?;
            let staged = dir.join(format!("#{}", rand::random::<u64>()));
            let mut f = File::options().write(true).create_new(true).open(&staged).map_err(generic)?;
            let written = payload.iter().try_for_each(|chunk| f.write_all(chunk)).and_then(|()| f.sync_all());
            let placed = written.and_then(|()| {
                if create { std::fs::hard_link(&staged, &dest) } else { std::fs::rename(&staged, &dest) }
            });
            if create || placed.is_err() {
                let _ = std::fs::remove_file(&staged);
            }
            match placed {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(object_store::Error::AlreadyExists { path, source: Box::new(e) });
                }
                other => other.map_err(generic)?,
            }
            File::open(dir).and_then(|d| d.sync_all()).map_err(generic)
        })
        .await
        .map_err(|e| object_store::Error::Generic { store: "LocalBucket", source: Box::new(e) })??;
        let meta = self.inner.head(location).await?;
        Ok(PutResult { e_tag: meta.e_tag, version: meta.version, extensions: Default::default() })
    }
}

impl std::fmt::Display for LocalBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalBucket({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalBucket {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        match opts.mode {
            PutMode::Update(version) => self.update(location, payload, version.e_tag).await,
            _ => self.put_plain(location, payload, opts).await,
        }
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
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
        self.inner.copy_opts(from, to, options).await
    }
}
