//! The executors of key compaction and merging on a partition's remote segments.
//!
//! Both read whole segment objects, write the rewritten segments as new objects with new indexes
//! ([`Uploader::put_rewritten`]), and swap them for the old ones in one conditional manifest commit
//! ([`Uploader::commit_rewrite`], serialised with the partition's uploads). A reader that holds
//! the old manifest entries keeps reading the old objects: they are deleted only after the grace
//! period. A failure before the commit leaves the manifest as it was (the new objects are orphans
//! for the sweep, or deleted at once on a conflict); a failure after it changes nothing the
//! commit did not.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tiering::object_store::ObjectStoreExt;
use tiering::remote::manifest::{CompactionState, Replace};
use tiering::remote::{InFlight, RemoteLog, SegmentEntry, Uploader};
use tiering::{Error, Result};

use crate::config::CompactionConfig;
use crate::keymap::KeyMap;
use crate::plan::{PlanInput, SegmentStat, plan};
use crate::report::{OnProgress, Phase, Progress, Report, Run};
use crate::rewrite::{Rules, compact_segment, index_segment};

/// Rewritten segments swapped in per manifest commit during a compaction pass.
const REPLACES_PER_COMMIT: usize = 32;

/// The live remote segments of a partition, oldest first.
pub async fn live_segments(log: &RemoteLog) -> Result<Vec<SegmentEntry>> {
    let mut out = Vec::new();
    log.manifest()
        .scan(|e| {
            out.push(e.clone());
            true
        })
        .await?;
    Ok(out)
}

fn stats(entries: &[SegmentEntry]) -> Vec<SegmentStat> {
    entries
        .iter()
        .map(|e| SegmentStat {
            base_offset: e.base_offset,
            next_offset: e.next_offset,
            size: e.size,
            max_timestamp: e.max_timestamp,
        })
        .collect()
}

async fn get(log: &RemoteLog, e: &SegmentEntry) -> Result<Bytes> {
    let key = e.segment_key(log.manifest().keys());
    let store = log.manifest().store();
    let r = store.get(&key).await.map_err(tiering::error::remote("read segment for compaction", &key))?;
    let bytes = r.bytes().await.map_err(tiering::error::remote("read segment for compaction", &key))?;
    if bytes.len() as u64 != e.size {
        return Err(Error::Corrupt {
            path: key.to_string().into(),
            position: 0,
            reason: format!("object holds {} bytes, the manifest says {}", bytes.len(), e.size),
        });
    }
    Ok(bytes)
}

/// The objects of `entries` in order, each GET started while the one before is processed (one
/// segment ahead: at most two segments in memory).
fn prefetch<'a>(
    log: &'a RemoteLog,
    entries: &'a [&'a SegmentEntry],
) -> impl futures::Stream<Item = Result<Bytes>> + Unpin + 'a {
    Box::pin(futures::stream::iter(entries.iter().map(move |e| get(log, e))).buffered(2))
}

fn corrupt(log: &RemoteLog, e: &SegmentEntry) -> impl Fn(crate::rewrite::BadSegment) -> Error {
    let key = e.segment_key(log.manifest().keys()).to_string();
    move |b| Error::Corrupt { path: key.clone().into(), position: b.position, reason: b.reason }
}

/// Runs key-compaction passes over the partition's remote segments (when `compact`: the topic's
/// policy includes compaction), at most `run.max_passes`, then merges small adjacent segments.
pub async fn compact_remote(log: &Arc<RemoteLog>, uploader: &Uploader, compact: bool, run: &Run<'_>) -> Result<Report> {
    let Run { config, now_ms, max_passes, progress, .. } = *run;
    let started = Instant::now();
    let mut report = Report { cleaned_to: log.manifest().head().compaction.cleaned_to, ..Default::default() };
    while compact && report.passes < max_passes {
        let entries = live_segments(log).await?;
        let state = log.manifest().head().compaction;
        let s = stats(&entries);
        let input = PlanInput { segments: &s, cleaned_to: state.cleaned_to, now_ms, compact: true, merge: false };
        let Some(cp) = plan(&input, config).compact else { break };
        let pass = compact_pass(log, uploader, run, &entries, cp, state).await?;
        report.passes += 1;
        report.bytes_in += pass.bytes_in;
        report.bytes_out += pass.bytes_out;
        report.bytes_indexed += pass.bytes_indexed;
        report.records_removed += pass.records_removed;
        report.segments_rewritten += pass.segments_rewritten;
        report.cleaned_to = pass.cleaned_to;
    }
    let compacted = Report { duration: started.elapsed(), ..report };
    if compacted.passes > 0 {
        compacted.record("remote", "compact");
    }
    let merge_started = Instant::now();
    let merged = merge_remote(log, uploader, config, progress).await?;
    let merged = Report { duration: merge_started.elapsed(), ..merged };
    if merged.segments_merged > 0 {
        merged.record("remote", "merge");
    }
    report.bytes_in += merged.bytes_in;
    report.bytes_out += merged.bytes_out;
    report.segments_merged += merged.segments_merged;
    report.duration = started.elapsed();
    Ok(report)
}

async fn compact_pass(
    log: &Arc<RemoteLog>,
    uploader: &Uploader,
    run: &Run<'_>,
    entries: &[SegmentEntry],
    cp: crate::plan::CompactPlan,
    mut state: CompactionState,
) -> Result<Report> {
    let Run { config, map_bytes, now_ms, progress, .. } = *run;
    let mut report = Report::default();
    let mut map_end = cp.dirty_from;
    let dirty: Vec<&SegmentEntry> = entries[..cp.segments].iter().filter(|e| e.next_offset > cp.dirty_from).collect();
    let mut map = KeyMap::with_memory(map_bytes);
    let total: u64 = dirty.iter().map(|e| e.size).sum();
    let mut fetched = prefetch(log, &dirty);
    for e in &dirty {
        let data = fetched.next().await.expect("invariant: one fetch per segment")?;
        let (from, bad) = (map_end, corrupt(log, e));
        let (m, end) = tokio::task::spawn_blocking(move || {
            let end = index_segment(&data, &mut map, from);
            (map, end)
        })
        .await
        .map_err(|e| Error::Closed { reason: Some(format!("compaction task failed: {e}")) })?;
        map = m;
        map_end = end.map_err(bad)?;
        report.bytes_indexed += e.size;
        progress(Progress { phase: Phase::Index, done_bytes: report.bytes_indexed, total_bytes: total });
        if map_end < e.next_offset {
            break;
        }
    }
    let rules = Rules {
        tombstones_before_ts: now_ms.saturating_sub(config.delete_retention_ms as i64),
        tombstones_below: state.cleaned_to,
    };
    let map = Arc::new(map);
    drop(fetched);
    let rewrite: Vec<&SegmentEntry> = entries.iter().filter(|e| e.base_offset < map_end).collect();
    let total: u64 = rewrite.iter().map(|e| e.size).sum();
    let mut replaces = Vec::new();
    // The rewritten objects' keys stay registered until their commit, so the sweep spares them.
    let mut pin = InFlight::new(log);
    let mut fetched = prefetch(log, &rewrite);
    for (i, e) in rewrite.iter().enumerate() {
        let data = fetched.next().await.expect("invariant: one fetch per segment")?;
        report.bytes_in += e.size;
        let (m, bad) = (map.clone(), corrupt(log, e));
        let compacted = tokio::task::spawn_blocking(move || compact_segment(&data, &m, rules))
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("compaction task failed: {e}")) })?
            .map_err(bad)?;
        match compacted {
            Some(c) => {
                report.bytes_out += c.data.len() as u64;
                report.records_removed += c.removed();
                report.segments_rewritten += 1;
                state.removed_records += c.removed();
                let new = uploader.put_rewritten(log, &pin, e.base_offset, e.next_offset, c.data).await?;
                replaces.push(Replace { old: vec![(*e).clone()], new: vec![new] });
            }
            None => report.bytes_out += e.size,
        }
        progress(Progress { phase: Phase::Rewrite, done_bytes: report.bytes_in, total_bytes: total });
        let last = i + 1 == rewrite.len();
        if replaces.len() >= REPLACES_PER_COMMIT || last {
            if last {
                state.cleaned_to = map_end;
                state.passes += 1;
            }
            state.last_ms = now_ms;
            uploader.commit_rewrite(log, std::mem::take(&mut replaces), state).await?;
            pin = InFlight::new(log);
        }
    }
    if rewrite.is_empty() {
        state.cleaned_to = map_end;
        state.passes += 1;
        uploader.commit_rewrite(log, Vec::new(), state).await?;
    }
    report.cleaned_to = map_end;
    tracing::info!(head = %log.manifest().keys().head(), cleaned_to = map_end, keys = map.len(),
        removed = report.records_removed, "remote compaction pass committed");
    Ok(report)
}

/// Merges runs of small adjacent remote segments (as the planner groups them), one manifest
/// commit per merged run.
pub async fn merge_remote(
    log: &Arc<RemoteLog>,
    uploader: &Uploader,
    config: &CompactionConfig,
    progress: OnProgress<'_>,
) -> Result<Report> {
    let mut report = Report::default();
    let entries = live_segments(log).await?;
    let s = stats(&entries);
    let cleaned_to = log.manifest().head().compaction.cleaned_to;
    let input = PlanInput { segments: &s, cleaned_to, now_ms: 0, compact: false, merge: true };
    let groups = plan(&input, config).merges;
    let total: u64 = groups.iter().flat_map(|g| entries[g.clone()].iter()).map(|e| e.size).sum();
    for g in groups {
        let group = &entries[g];
        let mut data = BytesMut::with_capacity(group.iter().map(|e| e.size as usize).sum());
        for e in group {
            data.extend_from_slice(&get(log, e).await?);
            report.bytes_in += e.size;
        }
        let (base, next) = (group[0].base_offset, group[group.len() - 1].next_offset);
        let data = data.freeze();
        report.bytes_out += data.len() as u64;
        let pin = InFlight::new(log);
        let new = uploader.put_rewritten(log, &pin, base, next, data).await?;
        let mut state = log.manifest().head().compaction;
        state.merged_segments += group.len() as u64 - 1;
        state.last_ms = new.uploaded_ms;
        uploader.commit_rewrite(log, vec![Replace { old: group.to_vec(), new: vec![new] }], state).await?;
        drop(pin);
        report.segments_merged += group.len() as u64 - 1;
        progress(Progress { phase: Phase::Merge, done_bytes: report.bytes_in, total_bytes: total });
    }
    Ok(report)
}
