//! The planner: what compaction and merging should do to a partition's log, as a pure function of
//! the log's segments (from the manifest, or the local segment list), the compaction state and the
//! config. No IO; the executors ([`crate::local`], [`crate::remote`]) carry plans out.

use std::ops::Range;

use crate::config::CompactionConfig;

/// A segment as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStat {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
}

/// What the planner looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The segments the executor may rewrite: contiguous, oldest first (never the active one).
    pub segments: &'a [SegmentStat],
    /// Key compaction cleaned the log below this offset.
    pub cleaned_to: i64,
    pub now_ms: i64,
    /// The topic's cleanup policy includes `compact`.
    pub compact: bool,
    /// Plan merges (the remote tier merges; local segments are not merged).
    pub merge: bool,
}

/// A key-compaction pass to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactPlan {
    /// Segments `..segments` (indexes into the input) are eligible: old enough for the minimum lag.
    pub segments: usize,
    /// The dirty section: `dirty_from..eligible_end`.
    pub dirty_from: i64,
    pub eligible_end: i64,
    /// Bytes of the dirty section (a segment the clean point cuts counts in proportion) and of
    /// the whole eligible log.
    pub dirty_bytes: u64,
    pub eligible_bytes: u64,
}

impl CompactPlan {
    pub fn dirty_ratio(&self) -> f64 {
        if self.eligible_bytes == 0 { 0.0 } else { self.dirty_bytes as f64 / self.eligible_bytes as f64 }
    }
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub compact: Option<CompactPlan>,
    /// Runs of adjacent segments (index ranges into the input) to merge, each into one segment.
    pub merges: Vec<Range<usize>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.compact.is_none() && self.merges.is_empty()
    }
}

/// Plans key compaction (if the policy compacts, something is dirty and the dirty ratio is
/// reached) and merges (runs of adjacent segments each under half the target, up to the target,
/// once a run holds half the target or `merge_min_segments` segments).
pub fn plan(input: &PlanInput<'_>, config: &CompactionConfig) -> Plan {
    Plan {
        compact: if input.compact { plan_compaction(input, config) } else { None },
        merges: if input.merge {
            plan_merges(input.segments, config.merge_target_bytes, config.merge_min_segments as usize)
        } else {
            Vec::new()
        },
    }
}

fn plan_compaction(input: &PlanInput<'_>, config: &CompactionConfig) -> Option<CompactPlan> {
    let horizon = input.now_ms.saturating_sub(config.min_compaction_lag_ms as i64);
    let eligible = input.segments.iter().take_while(|s| s.max_timestamp <= horizon).count();
    let segs = &input.segments[..eligible];
    let last = segs.last()?;
    if last.next_offset <= input.cleaned_to {
        return None;
    }
    let mut dirty_bytes = 0u64;
    for s in segs.iter().filter(|s| s.next_offset > input.cleaned_to) {
        let span = (s.next_offset - s.base_offset).max(1) as u128;
        let dirty = (s.next_offset - input.cleaned_to.max(s.base_offset)) as u128;
        dirty_bytes += (s.size as u128 * dirty / span) as u64;
    }
    let plan = CompactPlan {
        segments: eligible,
        dirty_from: input.cleaned_to.max(segs[0].base_offset),
        eligible_end: last.next_offset,
        dirty_bytes,
        eligible_bytes: segs.iter().map(|s| s.size).sum(),
    };
    (plan.dirty_ratio() >= config.min_dirty_ratio && plan.dirty_bytes > 0).then_some(plan)
}

fn plan_merges(segments: &[SegmentStat], target: u64, min_segments: usize) -> Vec<Range<usize>> {
    if target == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    let close = |start: usize, end: usize, bytes: u64, out: &mut Vec<Range<usize>>| {
        let n = end - start;
        if n >= 2 && (bytes >= target / 2 || n >= min_segments.max(2)) {
            out.push(start..end);
        }
    };
    for (i, s) in segments.iter().enumerate() {
        if s.size >= target / 2 {
            close(start, i, bytes, &mut out);
            start = i + 1;
            bytes = 0;
        } else if bytes + s.size > target {
            close(start, i, bytes, &mut out);
            start = i;
            bytes = s.size;
        } else {
            bytes += s.size;
        }
    }
    close(start, segments.len(), bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(sizes: &[u64]) -> Vec<SegmentStat> {
        let mut base = 0;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let s =
                    SegmentStat { base_offset: base, next_offset: base + 100, size, max_timestamp: 1_000 * i as i64 };
                base += 100;
                s
            })
            .collect()
    }

    fn input(s: &[SegmentStat], cleaned_to: i64, now_ms: i64) -> PlanInput<'_> {
        PlanInput { segments: s, cleaned_to, now_ms, compact: true, merge: true }
    }

    #[test]
    fn compacts_when_the_dirty_ratio_is_reached() {
        let s = segs(&[1000, 1000, 1000, 1000]);
        let c = CompactionConfig { merge_target_bytes: 0, ..Default::default() };
        // Nothing cleaned yet: all dirty.
        let p = plan(&input(&s, 0, 10_000), &c).compact.unwrap();
        assert_eq!((p.dirty_from, p.eligible_end, p.segments), (0, 400, 4));
        assert_eq!(p.dirty_ratio(), 1.0);
        // Three quarters clean: under the default ratio of 0.5.
        assert_eq!(plan(&input(&s, 300, 10_000), &c).compact, None);
        // Half clean, and the clean point inside a segment counts in proportion.
        let p = plan(&input(&s, 150, 10_000), &c).compact.unwrap();
        assert_eq!(p.dirty_bytes, 2500);
        // Everything clean.
        assert!(plan(&input(&s, 400, 10_000), &c).is_empty());
        // Not a compact topic.
        let i = PlanInput { compact: false, ..input(&s, 0, 10_000) };
        assert!(plan(&i, &c).is_empty());
    }

    #[test]
    fn the_minimum_lag_keeps_young_segments_out() {
        let s = segs(&[1000, 1000, 1000, 1000]);
        let c = CompactionConfig { min_compaction_lag_ms: 1_500, merge_target_bytes: 0, ..Default::default() };
        // now 3000: segments with max_timestamp <= 1500 (the first two) are eligible.
        let p = plan(&input(&s, 0, 3_000), &c).compact.unwrap();
        assert_eq!((p.segments, p.eligible_end), (2, 200));
        assert_eq!(plan(&input(&s, 0, 1_000), &c).compact, None);
        assert_eq!(plan(&input(&[], 0, 1_000), &c), Plan::default());
    }

    #[test]
    fn merges_runs_of_small_segments_up_to_the_target() {
        let c = CompactionConfig { merge_target_bytes: 1000, merge_min_segments: 3, ..Default::default() };
        let p = |sizes: &[u64]| plan(&PlanInput { compact: false, ..input(&segs(sizes), 0, 0) }, &c).merges;
        assert_eq!(p(&[100, 100, 100]), vec![0..3]);
        // A run under half the target waits for merge_min_segments segments.
        assert_eq!(p(&[100, 100]), Vec::<Range<usize>>::new());
        assert_eq!(p(&[300, 300]), vec![0..2]);
        // A big segment splits runs; a lone small segment is not merged.
        assert_eq!(p(&[100, 100, 900, 100, 100, 100, 600, 100]), vec![3..6]);
        assert_eq!(p(&[300, 200, 900, 100, 100, 100, 600, 100]), vec![0..2, 3..6]);
        // Runs stop at the target.
        assert_eq!(p(&[400, 400, 400, 400]), vec![0..2, 2..4]);
        assert_eq!(p(&[100]), Vec::<Range<usize>>::new());
        // Merged runs (now big) are not merged again with a few new small segments.
        assert_eq!(p(&[450, 10]), Vec::<Range<usize>>::new());
        let off = CompactionConfig { merge_target_bytes: 0, ..Default::default() };
        assert!(plan(&PlanInput { compact: false, ..input(&segs(&[1, 1]), 0, 0) }, &off).merges.is_empty());
    }
}
