//! Lookups over the whole manifest: the segment holding an offset, the first segment with a record
//! at or after a time, and a scan of every entry.

use super::*;

impl Manifest {
    /// The live segment holding `offset`, if the remote tier has it.
    pub async fn find_offset(&self, offset: i64) -> Result<Option<SegmentEntry>> {
        let head = self.head();
        if head.is_empty() || offset < head.log_start_offset || offset >= head.next_offset {
            return Ok(None);
        }
        if let Some(first) = head.segments.first()
            && offset >= first.base_offset
        {
            let i = head.segments.partition_point(|e| e.next_offset <= offset);
            return Ok(head.segments.get(i).cloned());
        }
        let ci = head.chunks.partition_point(|c| c.next_offset <= offset);
        let Some(c) = head.chunks.get(ci) else { return Ok(None) };
        let entries = self.chunk(c).await?;
        let i = entries.partition_point(|e| e.next_offset <= offset);
        Ok(entries.get(i).cloned())
    }

    /// The first live segment (in offset order) holding a record with timestamp >= `t`.
    pub async fn find_time(&self, t: i64) -> Result<Option<SegmentEntry>> {
        let head = self.head();
        if head.is_empty() {
            return Ok(None);
        }
        for c in head.chunks.iter().filter(|c| c.max_timestamp >= t && c.next_offset > head.log_start_offset) {
            let entries = self.chunk(c).await?;
            if let Some(e) = entries.iter().find(|e| e.base_offset >= head.log_start_offset && e.max_timestamp >= t) {
                return Ok(Some(e.clone()));
            }
        }
        Ok(head.segments.iter().find(|e| e.base_offset >= head.log_start_offset && e.max_timestamp >= t).cloned())
    }

    /// The largest record timestamp of the live remote log (a chunk's own bound where it lies
    /// wholly inside the live log, its entries where retention cut into it).
    pub async fn max_timestamp(&self) -> Result<Option<i64>> {
        let head = self.head();
        let mut max = None;
        for c in head.chunks.iter().filter(|c| c.next_offset > head.log_start_offset) {
            if c.base_offset >= head.log_start_offset {
                max = max.max(Some(c.max_timestamp));
                continue;
            }
            for e in self.chunk(c).await?.iter().filter(|e| e.base_offset >= head.log_start_offset) {
                max = max.max(Some(e.max_timestamp));
            }
        }
        for e in head.segments.iter().filter(|e| e.base_offset >= head.log_start_offset) {
            max = max.max(Some(e.max_timestamp));
        }
        Ok(max.filter(|&t| t >= 0))
    }

    /// The live segments holding offsets at or past `from`, oldest first (chunks that end before
    /// it are not loaded).
    pub async fn segments_from(&self, from: i64) -> Result<Vec<SegmentEntry>> {
        let head = self.head();
        let live = |e: &&SegmentEntry| e.base_offset >= head.log_start_offset && e.next_offset > from;
        let mut out = Vec::new();
        for c in head.chunks.iter().filter(|c| c.next_offset > head.log_start_offset.max(from)) {
            out.extend(self.chunk(c).await?.iter().filter(live).cloned());
        }
        out.extend(head.segments.iter().filter(live).cloned());
        Ok(out)
    }

    /// The oldest live segments, in order, until `stop` says so (for retention and inspection).
    pub async fn scan(&self, mut visit: impl FnMut(&SegmentEntry) -> bool) -> Result<()> {
        let head = self.head();
        for c in head.chunks.iter().filter(|c| c.next_offset > head.log_start_offset) {
            for e in self.chunk(c).await?.iter().filter(|e| e.base_offset >= head.log_start_offset) {
                if !visit(e) {
                    return Ok(());
                }
            }
        }
        for e in head.segments.iter().filter(|e| e.base_offset >= head.log_start_offset) {
            if !visit(e) {
                return Ok(());
            }
        }
        Ok(())
    }
}
