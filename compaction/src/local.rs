//! The executor of key compaction on a partition's local segments (blocking file IO: run it on a
//! blocking thread).
//!
//! It rewrites sealed segments only (never the active one) and, on a partition with a remote tier,
//! only segments the bucket already holds: the uploader reads sealed segments by path while it
//! uploads them, and the bucket's copy is compacted on its own by [`crate::remote`]. Each segment
//! is swapped with [`Partition::replace_sealed`] (temporary file, fsync, rename). How far the
//! local log is clean is kept in `<partition dir>/compaction.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tiering::local::{Partition, SegmentInfo};
use tiering::{Error, Result};

use crate::keymap::KeyMap;
use crate::plan::{PlanInput, SegmentStat, plan};
use crate::report::{Phase, Progress, Report, Run};
use crate::rewrite::{BadSegment, Rules, compact_segment, index_segment};

const STATE_FILE: &str = "compaction.json";

/// How far a partition's local log is compacted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    pub cleaned_to: i64,
    pub passes: u64,
    pub removed_records: u64,
    pub last_ms: i64,
}

impl LocalState {
    /// The state of the partition folder `dir` (default when never compacted or unreadable: a
    /// lost state file only means the next pass redoes work).
    pub fn load(dir: &Path) -> Self {
        std::fs::read(dir.join(STATE_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec(self).expect("invariant: the state serializes");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(Error::io("write compaction state", &path))
    }
}

fn corrupt(path: &Path) -> impl Fn(BadSegment) -> Error + '_ {
    move |b| Error::Corrupt { path: path.to_owned(), position: b.position, reason: b.reason }
}

fn read(s: &SegmentInfo) -> Result<Bytes> {
    match std::fs::read(&s.path) {
        Ok(b) if b.len() as u64 == s.size => Ok(Bytes::from(b)),
        Ok(_) => Err(Error::Conflict { reason: format!("{} changed while it was compacted", s.path.display()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::Conflict { reason: format!("{} was deleted while it was compacted", s.path.display()) })
        }
        Err(e) => Err(Error::Io { op: "read segment for compaction", path: s.path.clone(), error: e }),
    }
}

/// The sealed segments compaction may rewrite, oldest first.
fn candidates(p: &Partition) -> Vec<SegmentInfo> {
    let tiered = p.tiered_offset();
    p.segments().into_iter().filter(|s| s.sealed && tiered.is_none_or(|t| s.next_offset <= t)).collect()
}

/// Runs key-compaction passes over the partition's local segments until the planner finds nothing
/// more to do (or `run.max_passes` ran). For topics whose policy includes compaction.
pub fn compact_local(p: &Partition, run: &Run<'_>) -> Result<Report> {
    let Run { config, map_bytes, now_ms, max_passes, progress } = *run;
    let started = Instant::now();
    let dir: PathBuf = p.dir().to_owned();
    let mut state = LocalState::load(&dir);
    let mut report = Report { cleaned_to: state.cleaned_to, ..Default::default() };
    while report.passes < max_passes {
        let segs = candidates(p);
        let stats: Vec<SegmentStat> = segs
            .iter()
            .map(|s| SegmentStat {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                size: s.size,
                max_timestamp: s.max_timestamp,
            })
            .collect();
        let input = PlanInput { segments: &stats, cleaned_to: state.cleaned_to, now_ms, compact: true, merge: false };
        let Some(cp) = plan(&input, config).compact else { break };
        // Index: the dirty section into the key map, until it is full.
        let mut map_end = cp.dirty_from;
        let dirty: Vec<&SegmentInfo> = segs[..cp.segments].iter().filter(|s| s.next_offset > cp.dirty_from).collect();
        let total: u64 = dirty.iter().map(|s| s.size).sum();
        let mut map = KeyMap::with_memory(map_bytes);
        let mut done = 0;
        for s in dirty {
            let data = read(s)?;
            map_end = index_segment(&data, &mut map, map_end).map_err(corrupt(&s.path))?;
            done += s.size;
            report.bytes_indexed += s.size;
            progress(Progress { phase: Phase::Index, done_bytes: done, total_bytes: total });
            if map_end < s.next_offset {
                break;
            }
        }
        // Rewrite: every segment below the map's end.
        let rules = Rules {
            tombstones_before_ts: now_ms.saturating_sub(config.delete_retention_ms as i64),
            tombstones_below: state.cleaned_to,
        };
        let rewrite: Vec<&SegmentInfo> = segs.iter().filter(|s| s.base_offset < map_end).collect();
        let total: u64 = rewrite.iter().map(|s| s.size).sum();
        let mut done = 0;
        for s in rewrite {
            let data = read(s)?;
            report.bytes_in += s.size;
            if let Some(c) = compact_segment(&data, &map, rules).map_err(corrupt(&s.path))? {
                p.replace_sealed(s.base_offset, &c.data)?;
                report.bytes_out += c.data.len() as u64;
                report.records_removed += c.removed();
                report.segments_rewritten += 1;
                state.removed_records += c.removed();
            } else {
                report.bytes_out += s.size;
            }
            done += s.size;
            progress(Progress { phase: Phase::Rewrite, done_bytes: done, total_bytes: total });
        }
        state.cleaned_to = map_end;
        state.passes += 1;
        state.last_ms = now_ms;
        state.store(&dir)?;
        report.passes += 1;
        report.cleaned_to = map_end;
        tracing::info!(partition = %p.name(), cleaned_to = map_end, keys = map.len(), "local compaction pass done");
    }
    report.duration = started.elapsed();
    if !report.is_empty() {
        report.record("local", "compact");
    }
    Ok(report)
}
