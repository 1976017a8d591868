//! An in-memory [`Fs`] for fault and power-cut tests: it keeps, beside what every file and
//! directory holds now, what would survive a power cut, and forgets the rest when told to cut.
//!
//! The model is strict POSIX, the least a real disk promises:
//! - a file's bytes are durable up to its last `sync_data` (or `sync_filesystem`); bytes appended
//!   after it may survive in part (a torn tail, any prefix of them) or not at all;
//! - a file's name (its creation, rename or removal) is durable only once its directory was synced;
//! - a directory is durable once its parent was synced.
//!
//! [`SimFs::power_cut`] returns the filesystem as a restarted machine finds it; every handle of
//! the old one fails from then on, as a dead process's would. Faults ([`SimFs::fail_sync`],
//! [`SimFs::fail_writes`]) make calls on matching paths fail with `EIO` until cleared.

use std::collections::{BTreeMap, HashMap};
use std::io::{Error as IoError, ErrorKind, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};

use super::fs::{Fs, LogFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Everything before this position is the same in `data` and `durable`.
    dirty_from: usize,
    /// Written over through a [`Fs::reuse`] handle since its last sync: a power cut may keep any
    /// prefix of the unsynced writes over the durable bytes.
    overwritten: bool,
}

impl Inode {
    fn sync(&mut self) {
        self.durable.truncate(self.dirty_from);
        self.durable.extend_from_slice(&self.data[self.dirty_from.min(self.data.len())..]);
        self.dirty_from = self.data.len();
        self.overwritten = false;
    }
}

#[derive(Debug, Default)]
struct State {
    /// False once the power was cut: every call fails.
    alive: bool,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    live: BTreeMap<PathBuf, Entry>,
    durable: BTreeMap<PathBuf, Entry>,
    fail_sync: Option<String>,
    fail_writes: Option<String>,
    syncs: u64,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    path: PathBuf,
    /// Where the next write goes, for a [`Fs::reuse`] handle (others append).
    cursor: Option<Mutex<usize>>,
}

fn eio(what: &str) -> IoError {
    IoError::other(format!("simulated IO error: {what}"))
}
fn dead() -> IoError {
    IoError::other("simulated power cut: the filesystem is gone")
}
fn not_found(p: &Path) -> IoError {
    IoError::new(ErrorKind::NotFound, format!("{} not found", p.display()))
}

fn matches(filter: &Option<String>, path: &Path) -> bool {
    filter.as_ref().is_some_and(|f| path.to_string_lossy().contains(f.as_str()))
}

/// A directory with no parent (`/` or a relative path's first component) always exists.
fn is_root(p: &Path) -> bool {
    p.parent().is_none_or(|q| q.as_os_str().is_empty())
}

impl State {
    fn check(&self) -> std::io::Result<()> {
        if self.alive { Ok(()) } else { Err(dead()) }
    }
    fn dir_exists(&self, p: &Path) -> bool {
        is_root(p) || self.live.get(p) == Some(&Entry::Dir)
    }
    fn file(&self, p: &Path) -> std::io::Result<u64> {
        match self.live.get(p) {
            Some(Entry::File(ino)) => Ok(*ino),
            Some(Entry::Dir) => Err(IoError::new(ErrorKind::IsADirectory, p.display().to_string())),
            None => Err(not_found(p)),
        }
    }
    fn new_file(&mut self, p: &Path) -> std::io::Result<u64> {
        if !p.parent().is_some_and(|d| self.dir_exists(d)) {
            return Err(not_found(p));
        }
        if matches(&self.fail_writes, p) {
            return Err(eio("create"));
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.inodes.insert(ino, Inode::default());
        self.live.insert(p.to_owned(), Entry::File(ino));
        Ok(ino)
    }
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

impl SimFs {
    pub fn new() -> Self {
        Self { state: Arc::new(Mutex::new(State { alive: true, ..State::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Cuts the power: this filesystem and every handle on it fail from now on, and the returned
    /// one holds what survived. Bytes past a file's durable end survive as a random prefix (a
    /// torn write), chosen by `seed`.
    pub fn power_cut(&self, seed: u64) -> SimFs {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut st = self.lock();
        st.alive = false;
        let mut next = State { alive: true, next_ino: st.next_ino, ..State::default() };
        let durable = st.durable.clone();
        for (path, entry) in &durable {
            // An entry survives only if every folder above it did.
            let reachable = path.ancestors().skip(1).all(|a| is_root(a) || durable.get(a) == Some(&Entry::Dir));
            if !reachable {
                continue;
            }
            if let Entry::File(ino) = entry
                && !next.inodes.contains_key(ino)
            {
                let old = &st.inodes[ino];
                let mut data = old.durable.clone();
                let appended_only = old.dirty_from >= old.durable.len() && old.data.len() > old.durable.len();
                if appended_only && rng.random_bool(0.5) {
                    let extra = rng.random_range(0..=old.data.len() - old.durable.len());
                    data.extend_from_slice(&old.data[old.durable.len()..old.durable.len() + extra]);
                } else if old.overwritten && old.data.len() > old.dirty_from && rng.random_bool(0.5) {
                    // A torn overwrite: the first `extra` unsynced bytes reached the disk.
                    let extra = rng.random_range(0..=old.data.len() - old.dirty_from);
                    let torn = &old.data[old.dirty_from..old.dirty_from + extra];
                    let end = old.dirty_from + extra;
                    if data.len() < end {
                        data.resize(end, 0);
                    }
                    data[old.dirty_from..end].copy_from_slice(torn);
                }
                next.inodes
                    .insert(*ino, Inode { durable: data.clone(), dirty_from: data.len(), data, overwritten: false });
            }
            next.live.insert(path.clone(), *entry);
        }
        next.durable = next.live.clone();
        SimFs { state: Arc::new(Mutex::new(next)) }
    }

    /// Every fsync (file, directory or filesystem) of a path containing `filter` fails from now
    /// on; `None` ends the fault.
    pub fn fail_sync(&self, filter: Option<&str>) {
        self.lock().fail_sync = filter.map(str::to_owned);
    }

    /// Every write, truncation and file creation on a path containing `filter` fails; `None`
    /// ends the fault.
    pub fn fail_writes(&self, filter: Option<&str>) {
        self.lock().fail_writes = filter.map(str::to_owned);
    }

    /// How many fsyncs (of files, directories and the filesystem) succeeded.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The current bytes of a file (for tests that damage or inspect files).
    pub fn contents(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.read(path)
    }

    /// Overwrites part of a file in place, durably (for tests that damage files).
    pub fn overwrite(&self, path: &Path, pos: usize, bytes: &[u8]) -> std::io::Result<()> {
        let mut st = self.lock();
        let ino = st.file(path)?;
        let node = st.inodes.get_mut(&ino).expect("invariant: a live entry has an inode");
        if node.data.len() < pos + bytes.len() {
            node.data.resize(pos + bytes.len(), 0);
        }
        node.data[pos..pos + bytes.len()].copy_from_slice(bytes);
        node.dirty_from = node.dirty_from.min(pos);
        node.sync();
        Ok(())
    }
}

fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    // A test thread that panicked holding the lock leaves state that is still consistent.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, &mut Inode) -> std::io::Result<T>) -> std::io::Result<T> {
        let mut st = lock(&self.state);
        st.check()?;
        let mut node = st.inodes.remove(&self.ino).ok_or_else(|| not_found(&self.path))?;
        let r = f(&mut st, &mut node);
        st.inodes.insert(self.ino, node);
        r
    }
}

impl LogFile for SimFile {
    fn read_exact_at(&self, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.with(|_, n| {
            let start = usize::try_from(pos).map_err(|_| IoError::from(ErrorKind::InvalidInput))?;
            n.data.get(start..start + len).map(<[u8]>::to_vec).ok_or_else(|| ErrorKind::UnexpectedEof.into())
        })
    }
    fn append(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<()> {
        let path = self.path.clone();
        self.with(|st, n| {
            if matches(&st.fail_writes, &path) {
                return Err(eio("write"));
            }
            let Some(cursor) = &self.cursor else {
                for b in bufs {
                    n.data.extend_from_slice(b);
                }
                return Ok(());
            };
            let mut pos = cursor.lock().unwrap_or_else(|p| p.into_inner());
            for b in bufs {
                let end = *pos + b.len();
                if n.data.len() < end {
                    n.data.resize(end, 0);
                }
                n.data[*pos..end].copy_from_slice(b);
                n.dirty_from = n.dirty_from.min(*pos);
                n.overwritten = true;
                *pos = end;
            }
            Ok(())
        })
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let path = self.path.clone();
        self.with(|st, n| {
            if matches(&st.fail_sync, &path) {
                return Err(eio("fsync"));
            }
            n.sync();
            st.syncs += 1;
            Ok(())
        })
    }
    fn sync_filesystem(&self) -> std::io::Result<()> {
        self.with(|st, n| {
            // syncfs writes back every file: it fails if any of them does.
            if let Some(f) = st.fail_sync.clone()
                && st.live.keys().any(|p| p.to_string_lossy().contains(f.as_str()))
            {
                return Err(eio("syncfs"));
            }
            n.sync();
            for node in st.inodes.values_mut() {
                node.sync();
            }
            st.durable = st.live.clone();
            st.syncs += 1;
            Ok(())
        })
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let path = self.path.clone();
        self.with(|st, n| {
            if matches(&st.fail_writes, &path) {
                return Err(eio("truncate"));
            }
            let len = usize::try_from(len).map_err(|_| IoError::from(ErrorKind::InvalidInput))?;
            n.data.resize(len, 0);
            n.dirty_from = n.dirty_from.min(len);
            Ok(())
        })
    }
    fn len(&self) -> std::io::Result<u64> {
        self.with(|_, n| Ok(n.data.len() as u64))
    }
}

impl SimFs {
    fn handle(&self, ino: u64, path: &Path) -> Arc<dyn LogFile> {
        Arc::new(SimFile { state: self.state.clone(), ino, path: path.to_owned(), cursor: None })
    }
}

impl Fs for SimFs {
    fn open_append(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        let mut st = self.lock();
        st.check()?;
        let ino = match st.file(path) {
            Ok(ino) => ino,
            Err(e) if e.kind() == ErrorKind::NotFound => st.new_file(path)?,
            Err(e) => return Err(e),
        };
        Ok(self.handle(ino, path))
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        let mut st = self.lock();
        st.check()?;
        if st.live.contains_key(path) {
            return Err(ErrorKind::AlreadyExists.into());
        }
        let ino = st.new_file(path)?;
        Ok(self.handle(ino, path))
    }
    fn create(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        let mut st = self.lock();
        st.check()?;
        let ino = match st.file(path) {
            Ok(ino) => {
                if matches(&st.fail_writes, path) {
                    return Err(eio("truncate"));
                }
                let n = st.inodes.get_mut(&ino).expect("invariant: a live entry has an inode");
                n.data.clear();
                n.dirty_from = 0;
                ino
            }
            Err(e) if e.kind() == ErrorKind::NotFound => st.new_file(path)?,
            Err(e) => return Err(e),
        };
        Ok(self.handle(ino, path))
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        let st = self.lock();
        st.check()?;
        let ino = st.file(path)?;
        Ok(self.handle(ino, path))
    }
    fn reuse(&self, path: &Path) -> std::io::Result<Arc<dyn LogFile>> {
        let st = self.lock();
        st.check()?;
        if matches(&st.fail_writes, path) {
            return Err(eio("open for writing"));
        }
        let ino = st.file(path)?;
        Ok(Arc::new(SimFile { state: self.state.clone(), ino, path: path.to_owned(), cursor: Some(Mutex::new(0)) }))
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let st = self.lock();
        st.check()?;
        let ino = st.file(path)?;
        Ok(st.inodes[&ino].data.clone())
    }
    fn len(&self, path: &Path) -> std::io::Result<u64> {
        let st = self.lock();
        st.check()?;
        let ino = st.file(path)?;
        Ok(st.inodes[&ino].data.len() as u64)
    }
    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        st.alive && (st.live.contains_key(path) || is_root(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut st = self.lock();
        st.check()?;
        if matches(&st.fail_writes, to) {
            return Err(eio("rename"));
        }
        let entry = st.live.remove(from).ok_or_else(|| not_found(from))?;
        st.live.insert(to.to_owned(), entry);
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut st = self.lock();
        st.check()?;
        st.file(path)?;
        st.live.remove(path);
        Ok(())
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        let mut st = self.lock();
        st.check()?;
        let mut missing: Vec<&Path> = path.ancestors().take_while(|a| !is_root(a)).collect();
        missing.reverse();
        for a in missing {
            match st.live.get(a) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(ErrorKind::AlreadyExists.into()),
                None => {
                    st.live.insert(a.to_owned(), Entry::Dir);
                }
            }
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let st = self.lock();
        st.check()?;
        if !st.dir_exists(dir) {
            return Err(not_found(dir));
        }
        Ok(st
            .live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut st = self.lock();
        st.check()?;
        if matches(&st.fail_sync, dir) {
            return Err(eio("fsync directory"));
        }
        if !st.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let children = |m: &BTreeMap<PathBuf, Entry>| -> Vec<PathBuf> {
            m.keys().filter(|p| p.parent() == Some(dir)).cloned().collect()
        };
        for p in children(&st.durable) {
            st.durable.remove(&p);
        }
        for p in children(&st.live) {
            let e = st.live[&p];
            st.durable.insert(p, e);
        }
        st.syncs += 1;
        Ok(())
    }
}
