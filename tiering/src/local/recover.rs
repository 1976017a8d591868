//! Opening a partition folder after any kind of stop. Segments before the recovery checkpoint are
//! trusted (their index files are loaded, or rebuilt from headers); bytes after it are checked batch
//! by batch (length, magic, CRC, dense offsets) and the log is cut at the first bad batch: a torn
//! write from a crash. Segments after a cut are removed, since offsets must stay dense. The log end
//! offset is then exactly the offset after the last good batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint::{self, Checkpoint};
use super::fs::{Fs, list_paths, remove_if_present};
use super::index::SegmentIndex;
use super::segment::{
    INDEX_EXT, LOG_EXT, ScanMode, Segment, SegmentMeta, TIME_INDEX_EXT, open_for_append, remove_segment_files, scan,
    segment_path, sync_dir,
};
use crate::error::{Error, Result};
use crate::stats;

/// A partition folder after recovery: its segments (the last one is active).
pub struct Recovered {
    pub segments: Vec<Arc<Segment>>,
    pub truncated_bytes: u64,
}

fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<i64>> {
    let mut logs = Vec::new();
    let mut others = Vec::new();
    for path in list_paths(fs, dir).map_err(Error::io("list partition folder", dir))? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".tmp") {
            let _ = fs.remove_file(&path);
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else { continue };
        let Ok(base) = stem.parse::<i64>() else { continue };
        if stem.len() != 20 {
            continue;
        }
        match ext {
            LOG_EXT => logs.push(base),
            INDEX_EXT | TIME_INDEX_EXT => others.push((base, path)),
            _ => {}
        }
    }
    logs.sort_unstable();
    // Index files whose log is gone (a crash during retention) are removed.
    for (base, path) in others {
        if logs.binary_search(&base).is_err() {
            let _ = fs.remove_file(&path);
        }
    }
    Ok(logs)
}

/// Loads a sealed segment's index files if they are present and sound.
fn load_index(fs: &dyn Fs, dir: &Path, base: i64, size: u64, next_offset: i64) -> Option<SegmentIndex> {
    let offs = fs.read(&segment_path(dir, base, INDEX_EXT)).ok()?;
    let times = fs.read(&segment_path(dir, base, TIME_INDEX_EXT)).ok()?;
    SegmentIndex::decode(&offs, &times, size, u32::try_from(next_offset - base).ok()?)
}

/// Recovers the partition folder `dir` (created if missing). `start_offset` is the base of the
/// first segment of a brand-new partition.
pub fn recover(fs: &Arc<dyn Fs>, dir: &Path, interval: u32, start_offset: i64) -> Result<Recovered> {
    let fsd = &**fs;
    if !fs.exists(dir) {
        fs.create_dir_all(dir).map_err(Error::io("create partition folder", dir))?;
        // The folder's own entry must be durable before anything in it is acknowledged.
        if let Some(parent) = dir.parent() {
            sync_dir(fsd, parent)?;
        }
    }
    let bases = list_segments(fsd, dir)?;
    let cp = checkpoint::read(fsd, dir);
    let corrupt = |path: PathBuf, position, reason| Error::Corrupt { path, position, reason };
    // The checkpoint vouches for bytes that were durable: if they are gone, acknowledged records
    // were lost, and recovery must say so rather than start over from what is left.
    if let Some(c) = cp {
        let path = segment_path(dir, c.segment_base, LOG_EXT);
        // Retention never deletes the segment a checkpoint names (the active one, or a later one).
        if bases.binary_search(&c.segment_base).is_err() {
            return Err(corrupt(
                path,
                c.position,
                format!(
                    "segment {} that the recovery checkpoint names (up to offset {}) is missing",
                    c.segment_base, c.next_offset
                ),
            ));
        }
        if let Ok(size) = fs.len(&path)
            && size < c.position
        {
            return Err(corrupt(
                path,
                size,
                format!("segment is {size} bytes, shorter than the {} the recovery checkpoint vouches for", c.position),
            ));
        }
    }
    let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
    let mut truncated_bytes = 0u64;
    let mut expected = bases.first().copied().unwrap_or(start_offset);
    let mut dir_changed = false;
    let mut cut_at: Option<usize> = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment_path(dir, base, LOG_EXT);
        let size = fs.len(&path).map_err(Error::io("stat segment", &path))?;
        // How much of this segment is trusted.
        let trusted = match cp {
            Some(c) if base < c.segment_base => size,
            Some(c) if base == c.segment_base => c.position.min(size),
            _ => 0,
        };
        if base != expected {
            if trusted > 0 {
                return Err(corrupt(path, 0, format!("segment starts at offset {base}, expected {expected}")));
            }
            cut_at = Some(i);
            break;
        }
        let sealed_next = bases.get(i + 1).copied();
        // Fast path: a sealed, trusted segment with sound index files.
        if let (true, Some(next)) = (trusted == size, sealed_next)
            && let Some(index) = load_index(fsd, dir, base, size, next)
        {
            let meta = SegmentMeta { index, size, next_offset: next, sealed: true };
            segments.push(Arc::new(Segment::new(fs, dir, base, meta, None)));
            expected = next;
            continue;
        }
        let file = fs.open(&path).map_err(Error::io("open segment", &path))?;
        let mut index = SegmentIndex::new();
        let io = Error::io("scan segment", &path);
        let head = scan(&*file, 0, trusted, base, base, ScanMode::Trusted, &mut index, interval).map_err(io)?;
        if let Some(reason) = head.stopped {
            return Err(corrupt(path, head.end, format!("below the recovery checkpoint: {reason}")));
        }
        let tail = scan(&*file, trusted, size, base, head.next_offset, ScanMode::Validate, &mut index, interval)
            .map_err(Error::io("scan segment", &path))?;
        drop(file);
        let mut end = tail.end;
        if let Some(reason) = &tail.stopped {
            let cut = size - tail.end;
            tracing::warn!(segment = %path.display(), position = tail.end, cut, %reason, "truncating torn or corrupt tail");
            let f = open_for_append(fsd, &path)?;
            f.set_len(tail.end).map_err(Error::io("truncate segment", &path))?;
            f.sync_data().map_err(Error::io("fsync segment", &path))?;
            truncated_bytes += cut;
            end = tail.end;
        } else if tail.end > trusted {
            // Bytes past the checkpoint that a crashed process wrote may sit in the page cache
            // only: durable before the new checkpoint vouches for them.
            let f = open_for_append(fsd, &path)?;
            f.sync_data().map_err(Error::io("fsync segment", &path))?;
        }
        let meta = SegmentMeta { index, size: end, next_offset: tail.next_offset, sealed: false };
        let seg = Segment::new(fs, dir, base, meta, None);
        seg.mark_verified(trusted, end);
        segments.push(Arc::new(seg));
        expected = tail.next_offset;
        if tail.stopped.is_some() {
            cut_at = Some(i + 1);
            break;
        }
    }
    // Everything after a cut goes: offsets must stay dense.
    if let Some(i) = cut_at {
        for &base in &bases[i..] {
            tracing::warn!(base, "removing segment after a truncated one");
            truncated_bytes += fs.len(&segment_path(dir, base, LOG_EXT)).unwrap_or(0);
            remove_segment_files(fsd, dir, base)?;
            dir_changed = true;
        }
    }
    // Seal every segment but the last (writing index files that were missing or rebuilt); the last
    // one is active and has none.
    let n = segments.len();
    for (i, seg) in segments.iter().enumerate() {
        if i + 1 < n {
            let m = seg.meta();
            if m.sealed {
                continue;
            }
            // Index files that match what the scan rebuilt are kept as they are.
            let on_disk = load_index(fsd, dir, seg.base_offset, m.size, m.next_offset);
            if on_disk.is_some_and(|ix| ix.same_entries(&m.index)) {
                seg.meta.write().expect("invariant: segment meta lock not poisoned").sealed = true;
            } else {
                seg.seal(dir)?;
                dir_changed = true;
            }
        } else {
            for ext in [INDEX_EXT, TIME_INDEX_EXT] {
                if remove_if_present(fsd, &segment_path(dir, seg.base_offset, ext)).unwrap_or(false) {
                    dir_changed = true;
                }
            }
        }
    }
    if segments.is_empty() {
        let meta = SegmentMeta { index: SegmentIndex::new(), size: 0, next_offset: expected, sealed: false };
        segments.push(Arc::new(Segment::new(fs, dir, expected, meta, None)));
        dir_changed = true;
    }
    let active = segments.last().expect("invariant: at least one segment");
    // The active segment's file exists from here on; the writer opens it again on its first
    // write, so a partition nobody writes holds no open file.
    drop(open_for_append(fsd, active.path())?);
    if dir_changed {
        sync_dir(fsd, dir)?;
    }
    let m = active.meta();
    let at_end = Checkpoint { segment_base: active.base_offset, position: m.size, next_offset: m.next_offset };
    // A checkpoint that already says this (a clean stop) is not written again.
    if cp != Some(at_end) {
        checkpoint::write(fsd, dir, &at_end)?;
    }
    if truncated_bytes > 0 {
        metrics::counter!(stats::RECOVERY_TRUNCATED_BYTES).increment(truncated_bytes);
    }
    let reopened = Segment::new(fs, dir, active.base_offset, m, None);
    reopened.copy_verified_from(active);
    let active = Arc::new(reopened);
    segments.pop();
    segments.push(active);
    Ok(Recovered { segments, truncated_bytes })
}

/// What [`repair`] did to a partition folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The offsets the log holds after the repair: `[log_start_offset, log_end_offset)`.
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// How far the recovery checkpoint said the log reached before the repair, if it was readable.
    pub checkpoint_end_offset: Option<i64>,
    pub dropped_bytes: u64,
    /// Segment files removed whole (they followed the cut).
    pub dropped_segments: Vec<i64>,
}

/// Cuts a damaged partition folder back to its last intact batch: every batch is checked (length,
/// magic, CRC, dense offsets) from the first segment, the log ends before the first bad one, and
/// later segments are removed. For a partition that opens as damaged; the caller makes sure no
/// engine has the folder open. Records past the cut are lost locally (the bucket may still hold
/// them: the next open continues from the bucket's end if it is further).
pub fn repair(fs: &Arc<dyn Fs>, dir: &Path, interval: u32) -> Result<Repaired> {
    let fsd = &**fs;
    let before = list_segments(fsd, dir)?;
    let checkpoint_end_offset = checkpoint::read(fsd, dir).map(|c| c.next_offset);
    remove_if_present(fsd, &checkpoint::path(dir)).map_err(Error::io("remove checkpoint", checkpoint::path(dir)))?;
    sync_dir(fsd, dir)?;
    let start = before.first().copied().unwrap_or(0);
    let rec = recover(fs, dir, interval, start)?;
    let after: Vec<i64> = rec.segments.iter().map(|s| s.base_offset).collect();
    let end = rec.segments.last().map_or(start, |s| s.meta().next_offset);
    Ok(Repaired {
        log_start_offset: after.first().copied().unwrap_or(start),
        log_end_offset: end,
        checkpoint_end_offset,
        dropped_bytes: rec.truncated_bytes,
        dropped_segments: before.into_iter().filter(|b| !after.contains(b)).collect(),
    })
}

/// Deletes a partition folder's whole local log (segments, indexes, checkpoint), for a partition
/// that must continue from the bucket's end instead (see [`crate::remote::owner`]). Returns the
/// bytes of log dropped. The folder stays; the next open starts it afresh.
pub fn discard_log(fs: &dyn Fs, dir: &Path) -> Result<u64> {
    let bases = list_segments(fs, dir)?;
    let mut dropped = 0u64;
    for &base in &bases {
        dropped += fs.len(&segment_path(dir, base, LOG_EXT)).unwrap_or(0);
        remove_segment_files(fs, dir, base)?;
    }
    remove_if_present(fs, &checkpoint::path(dir)).map_err(Error::io("remove checkpoint", checkpoint::path(dir)))?;
    // The producers' state of the dropped history must not outlive it.
    let snapshot = super::producers::snapshot_path(dir);
    remove_if_present(fs, &snapshot).map_err(Error::io("remove producer state", &snapshot))?;
    sync_dir(fs, dir)?;
    Ok(dropped)
}
