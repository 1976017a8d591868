//! The commit protocol: a change (new segments, replaced segments, retention, snapshots,
//! compaction state) applied to the head, chunks written first when it overflows, then one CAS.

use super::*;

pub(super) fn head_pending(key: Path, delete_after_ms: i64) -> PendingDelete {
    PendingDelete { key: key.to_string(), delete_after_ms }
}

impl Manifest {
    /// Applies `change` as writer `epoch`: writes a chunk if the head overflows, then CASes the
    /// head. Fails with [`Error::Fenced`] once another writer has taken over. Only one task may
    /// commit at a time (the partition's uploader).
    pub async fn commit(&self, epoch: u64, change: Change, now_ms: i64, grace_ms: u64) -> Result<Arc<Head>> {
        let current = self.head();
        if current.epoch != epoch {
            return Err(self.fenced(epoch, current.epoch));
        }
        let mut head = (*current).clone();
        head.seq += 1;
        for e in change.append {
            if e.base_offset != head.next_offset && !head.is_empty() {
                return Err(corrupt(
                    &self.keys.head(),
                    format!("segment at {} does not follow the remote log end {}", e.base_offset, head.next_offset),
                ));
            }
            if head.is_empty() {
                head.log_start_offset = e.base_offset;
            }
            head.next_offset = e.next_offset;
            head.totals.segments += 1;
            head.totals.bytes += e.size;
            head.totals.records += e.records;
            head.segments.push(e);
        }
        let mut chunk_writes = 0;
        for r in change.replace {
            chunk_writes += self.replace(epoch, &mut head, r, now_ms + grace_ms as i64).await?;
        }
        if let Some(c) = change.compaction {
            head.compaction = c;
        }
        if let Some(cut) = change.drop_before {
            self.drop_before(&mut head, cut, now_ms + grace_ms as i64).await?;
        }
        head.pending_deletes.retain(|p| !change.deleted.contains(&p.key));
        if let Some(snap) = change.snapshot {
            if head.snapshots.last().is_some_and(|s| s.offset >= snap.offset) || snap.offset >= head.next_offset {
                return Err(corrupt(
                    &self.keys.head(),
                    format!(
                        "snapshot at {} is not newer than the head's, or past the log end {}",
                        snap.offset, head.next_offset
                    ),
                ));
            }
            head.snapshots.push(snap);
            while head.snapshots.len() > MAX_SNAPSHOTS {
                let old = head.snapshots.remove(0);
                head.pending_deletes.push(PendingDelete { key: old.key, delete_after_ms: now_ms + grace_ms as i64 });
            }
        }
        // At most one chunk per commit: merge level-0 chunks when enough have gathered, else
        // move the head's overflow into a new level-0 chunk.
        let level0 = head.chunks.iter().rev().take_while(|c| c.level == 0).count();
        if level0 >= MERGE_FANOUT {
            let from = head.chunks.len() - level0;
            let mut merged = Vec::with_capacity(level0 * self.chunk_segments);
            for c in &head.chunks[from..] {
                merged.extend(self.chunk(c).await?.iter().cloned());
            }
            let r = self.write_chunk(epoch, &merged, 1).await?;
            for c in head.chunks.drain(from..) {
                head.pending_deletes.push(head_pending(c.key(&self.keys), now_ms + grace_ms as i64));
            }
            head.chunks.push(r);
        } else if head.segments.len() >= 2 * self.chunk_segments && chunk_writes == 0 {
            let moved: Vec<SegmentEntry> = head.segments.drain(..self.chunk_segments).collect();
            let r = self.write_chunk(epoch, &moved, 0).await?;
            head.chunks.push(r);
        }
        let version = self.version.lock().expect("invariant: manifest lock not poisoned").clone();
        let mode = match version {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let key = self.keys.head();
        let payload = head.encode();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let put = self.store.put_opts(&key, PutPayload::from(payload.clone()), PutOptions::from(mode.clone()));
            match put.await {
                Ok(r) => {
                    self.install(head, r);
                    return Ok(self.head());
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    // Either another writer took over, or an earlier attempt of this very commit
                    // landed and its response was lost: the head tells which.
                    return match read_head(&self.store, &self.keys).await? {
                        Some((h, v)) if h.epoch == epoch && h == head => {
                            *self.version.lock().expect("invariant: manifest lock not poisoned") = Some(v);
                            self.set_head(h);
                            Ok(self.head())
                        }
                        Some((h, _)) => Err(self.fenced(epoch, h.epoch)),
                        None => Err(self.fenced(epoch, 0)),
                    };
                }
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(%key, attempt, error = %e, "manifest commit failed; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(remote("write manifest head", &key)(e)),
            }
        }
    }

    /// Applies one [`Replace`] to `head`: splices the new entries in where the old ones were, in the
    /// head's entries or (rewriting them as one new chunk) in the chunks that hold them, and queues
    /// the old objects (and chunks) for deletion. Returns the chunks written.
    pub(super) async fn replace(&self, epoch: u64, head: &mut Head, r: Replace, delete_after_ms: i64) -> Result<usize> {
        let Some((from, to)) = r.bounds() else {
            return Err(corrupt(
                &self.keys.head(),
                "a rewrite's old and new segments do not cover the same offsets".into(),
            ));
        };
        let conflict = |why: &str| Error::Conflict {
            reason: format!("segments {from}..{to} of {}-{} {why}", head.topic, head.partition),
        };
        if head.is_empty() || from < head.log_start_offset || to > head.next_offset {
            return Err(conflict("are no longer all in the remote log"));
        }
        let same = |a: &[SegmentEntry], b: &[SegmentEntry]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.base_offset == y.base_offset && x.id == y.id)
        };
        let splice = |entries: &mut Vec<SegmentEntry>| -> bool {
            let Some(p) = entries.iter().position(|e| e.base_offset == from) else { return false };
            if p + r.old.len() > entries.len() || !same(&entries[p..p + r.old.len()], &r.old) {
                return false;
            }
            entries.splice(p..p + r.old.len(), r.new.iter().cloned());
            true
        };
        let overlapping: Vec<usize> = (0..head.chunks.len())
            .filter(|&i| head.chunks[i].base_offset < to && head.chunks[i].next_offset > from)
            .collect();
        let mut written = 0;
        if overlapping.is_empty() {
            if !splice(&mut head.segments) {
                return Err(conflict("changed since the rewrite was planned"));
            }
        } else {
            let (first, last) = (overlapping[0], *overlapping.last().expect("invariant: not empty"));
            let mut entries = Vec::new();
            for c in &head.chunks[first..=last] {
                entries.extend(self.chunk(c).await?.iter().cloned());
            }
            // A range that runs past the last chunk takes the head's first entries with it.
            let mut taken = 0;
            while head.chunks[last].next_offset < to
                && taken < head.segments.len()
                && head.segments[taken].base_offset < to
            {
                entries.push(head.segments[taken].clone());
                taken += 1;
            }
            if !splice(&mut entries) {
                return Err(conflict("changed since the rewrite was planned"));
            }
            let level = head.chunks[first..=last].iter().map(|c| c.level).max().unwrap_or(0);
            let new_ref = self.write_chunk(epoch, &entries, level).await?;
            written += 1;
            for c in head.chunks.splice(first..=last, [new_ref]) {
                head.pending_deletes.push(head_pending(c.key(&self.keys), delete_after_ms));
            }
            head.segments.drain(..taken);
        }
        for e in &r.old {
            head.totals.bytes -= e.size;
            head.totals.records -= e.records;
            head.pending_deletes.push(head_pending(e.segment_key(&self.keys), delete_after_ms));
            head.pending_deletes.push(head_pending(e.index_key(&self.keys), delete_after_ms));
        }
        for e in &r.new {
            head.totals.bytes += e.size;
            head.totals.records += e.records;
        }
        head.totals.segments = head.totals.segments + r.new.len() as u64 - r.old.len() as u64;
        Ok(written)
    }

    /// Moves the log start to `cut` (a segment boundary at or below the remote end) and queues the
    /// dropped objects for deletion.
    pub(super) async fn drop_before(&self, head: &mut Head, cut: i64, delete_after_ms: i64) -> Result<()> {
        if cut <= head.log_start_offset || head.is_empty() {
            return Ok(());
        }
        let cut = cut.min(head.next_offset);
        let queue = |key: Path| head_pending(key, delete_after_ms);
        let mut pending = Vec::new();
        let mut dropped = Totals::default();
        // Whole chunks below the cut go at once; a chunk the cut falls inside is read.
        let mut keep_chunks = Vec::new();
        for c in std::mem::take(&mut head.chunks) {
            if c.next_offset <= cut {
                let entries = self.chunk(&c).await?;
                for e in entries.iter().filter(|e| e.base_offset >= head.log_start_offset) {
                    dropped.add(e);
                    pending.push(queue(e.segment_key(&self.keys)));
                    pending.push(queue(e.index_key(&self.keys)));
                }
                pending.push(queue(c.key(&self.keys)));
            } else {
                if c.base_offset < cut {
                    let entries = self.chunk(&c).await?;
                    for e in entries.iter().filter(|e| e.base_offset >= head.log_start_offset && e.next_offset <= cut) {
                        dropped.add(e);
                        pending.push(queue(e.segment_key(&self.keys)));
                        pending.push(queue(e.index_key(&self.keys)));
                    }
                }
                keep_chunks.push(c);
            }
        }
        head.chunks = keep_chunks;
        let mut new_start = cut;
        head.segments.retain(|e| {
            if e.next_offset <= cut {
                dropped.add(e);
                pending.push(head_pending(e.segment_key(&self.keys), delete_after_ms));
                pending.push(head_pending(e.index_key(&self.keys), delete_after_ms));
                false
            } else {
                new_start = new_start.min(e.base_offset);
                true
            }
        });
        head.log_start_offset = if dropped.segments == head.totals.segments { head.next_offset } else { new_start };
        head.totals.segments -= dropped.segments;
        head.totals.bytes -= dropped.bytes;
        head.totals.records -= dropped.records;
        head.pending_deletes.extend(pending);
        Ok(())
    }
}
