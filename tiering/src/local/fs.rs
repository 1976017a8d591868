//! The filesystem seam of the hot tier: every segment, index, journal and checkpoint byte goes
//! through [`Fs`] and [`LogFile`], so tests can swap the disk for one that forgets what was never
//! made durable ([`super::sim_fs::SimFs`]) or fails on demand.
//!
//! The interface is the handful of calls the log makes and no more (as raft-engine's
//! `env::FileSystem`): append-only writes, positional reads, `fdatasync`, truncation, and the
//! directory operations whose durability needs a directory fsync (create, rename, remove).
//! [`StdFs`] is the real one: `std::fs` plus `pread`, `syncfs`.

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open file of the log. Writes always go to the end; reads are positional, so readers and the
/// writer share one handle without a cursor.
pub trait LogFile: Send + Sync + std::fmt::Debug {
    /// Exactly `len` bytes at `pos`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, pos: u64, len: usize) -> std::io::Result<Vec<u8>>;
    /// Appends every byte of `bufs` (one vectored write where the platform allows).
    fn append(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<()>;
    /// `fdatasync`: the bytes written so far survive a power cut (the name does once its
    /// directory is synced).
    fn sync_data(&self) -> std::io::Result<()>;
    /// `syncfs` of the filesystem holding the file: every file and directory on it is durable.
    fn sync_filesystem(&self) -> std::io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes. Durable after `sync_data`.
    fn set_len(&self, len: u64) -> std::io::Result<()>;
    /// The file's current size.
    fn len(&self) -> std::io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> std::io::Result<bool> {
        self.len().map(|n| n == 0)
    }
    /// The descriptor of a real file, for `sendfile(2)` (zero-copy reads, [`super::send`]);
    /// `None` for a file that is not one (a simulated filesystem).
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// The directory operations of the log. Creations, renames and removals are durable only once
/// [`Fs::sync_dir`] ran on the directory holding them.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Opens for reading and appending, creating the file if it is missing.
    fn open_append(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>>;
    /// Creates a new, empty file for appending; fails if it exists.
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>>;
    /// Creates the file, or empties the one there, for reading and appending.
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>>;
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>>;
    /// Opens an existing file to write it again from its start: `append` writes over its old
    /// bytes, which stay past the last write (a recycled journal file: no block allocation, and
    /// an fdatasync with no metadata to commit).
    fn reuse(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// The size of a file.
    fn len(&self, path: &Path) -> std::io::Result<u64>;
    fn exists(&self, path: &Path) -> bool;
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()>;
    /// The names of a directory's entries (files and folders), in no particular order.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    /// fsyncs a directory: the creations, renames and removals in it survive a power cut.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

/// The filesystem used when none is injected.
pub fn std_fs() -> Arc<dyn Fs> {
    Arc::new(StdFs)
}

#[derive(Debug)]
struct StdFile(File);

impl LogFile for StdFile {
    fn read_exact_at(&self, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
        read_exact_at_uninit(&self.0, pos, len)
    }
    fn append(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<()> {
        // Empty slices are left out: a vectored write of only empty slices returns 0.
        let mut owned: Vec<IoSlice<'_>> = bufs.iter().filter(|b| !b.is_empty()).copied().collect();
        let mut bufs = &mut owned[..];
        while !bufs.is_empty() {
            let n = (&self.0).write_vectored(&bufs[..bufs.len().min(1024)])?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn sync_filesystem(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs only reads the descriptor, which `self` keeps open for the call.
        let rc = unsafe { libc::syncfs(self.0.as_raw_fd()) };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.metadata().map(|m| m.len())
    }
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.0.as_fd())
    }
}

fn shared(f: File) -> Arc<dyn LogFile> {
    Arc::new(StdFile(f))
}

impl Fs for StdFs {
    fn open_append(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        OpenOptions::new().read(true).append(true).create(true).open(path).map(shared)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        OpenOptions::new().read(true).append(true).create_new(true).open(path).map(shared)
    }
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        // Reopened in append mode so that `append` needs no cursor.
        drop(f);
        OpenOptions::new().read(true).append(true).open(path).map(shared)
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        File::open(path).map(shared)
    }
    fn reuse(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        // Not in append mode: `append` writes at the cursor, which starts at 0.
        OpenOptions::new().read(true).write(true).open(path).map(shared)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        std::fs::metadata(path).map(|m| m.len())
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            out.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }
}

/// `pread` of exactly `len` bytes into a fresh buffer, without zero-filling it first: reads of a
/// megabyte from the page cache would otherwise spend a third of their time on the fill.
fn read_exact_at_uninit(file: &File, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        let spare = buf.spare_capacity_mut();
        let off = libc::off_t::try_from(pos + done as u64)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: the destination is the vector's spare capacity, `len - done` bytes long and
        // writable; pread writes at most that many bytes into it.
        let n = unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), len - done, off) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: pread initialised the next `n` bytes of the spare capacity.
        unsafe { buf.set_len(done + n as usize) };
        done += n as usize;
    }
    Ok(buf)
}

/// Removes a file; one already gone is fine.
pub(crate) fn remove_if_present(fs: &dyn Fs, path: &Path) -> std::io::Result<bool> {
    match fs.remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The paths of a directory's entries; an absent directory has none.
pub(crate) fn list_paths(fs: &dyn Fs, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match fs.list(dir) {
        Ok(names) => Ok(names.into_iter().map(|n| dir.join(n)).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
