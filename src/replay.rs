//! Replay: the records of an offset or time range of a partition or a whole topic, across both
//! tiers, as a pull stream.
//!
//! - **Order.** Each partition in offset order. For a whole topic, partitions one after another
//!   (`Merge::Sequential`) or merged by timestamp (`Merge::ByTime`): the next record is the one
//!   with the smallest timestamp among the partitions' next records (ties: lower partition).
//!   Within a partition offset order always wins, so with non-monotonic timestamps the merged
//!   stream is ordered by time only as far as each partition's own order allows.
//! - **Range.** Half-open: from `from` (inclusive) to `to` (exclusive). A time start is the first
//!   offset whose timestamp is >= it (Kafka's ListOffsets); a time end stops before the first
//!   offset whose timestamp is >= it, so "to time t" means exactly the records "as of t". The end
//!   is fixed when the replay starts (`Position::Latest` is the high watermark then).
//! - **Memory and backpressure.** Nothing is read until the consumer asks: each partition holds
//!   at most one read (`read_bytes`, default 1 MiB) of decoded records, whatever the size of the
//!   range, and a slow consumer simply pulls more slowly. (Reads from the bucket still read ahead
//!   a bounded window; see the remote tier.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use bytes::Bytes;
use tiering::batch::{Header, RecordView};
use tiering::local::OffsetSpec;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// A point of a partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The log start offset (the oldest record still kept, in either tier).
    Earliest,
    /// The high watermark when the replay starts.
    Latest,
    Offset(i64),
    /// Timestamp in ms since the epoch: the first offset whose timestamp is >= it.
    Time(i64),
}

/// How a whole-topic replay orders partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Merge {
    /// Partition 0 to the end of the range, then partition 1, ...
    #[default]
    Sequential,
    /// One stream, merged by timestamp (see the module docs).
    ByTime,
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    /// `None`: every partition of the topic.
    pub partitions: Option<Vec<u32>>,
    pub from: Position,
    pub to: Position,
    pub merge: Merge,
    /// Bytes per read. Default 1 MiB.
    pub read_bytes: usize,
}

impl Default for ReplaySpec {
    fn default() -> Self {
        Self {
            partitions: None,
            from: Position::Earliest,
            to: Position::Latest,
            merge: Merge::Sequential,
            read_bytes: 1 << 20,
        }
    }
}

impl ReplaySpec {
    pub fn partition(p: u32) -> Self {
        Self { partitions: Some(vec![p]), ..Default::default() }
    }
}

/// One record of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRecord {
    pub partition: u32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl ReplayRecord {
    fn new(partition: u32, r: RecordView) -> Self {
        Self { partition, offset: r.offset, timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers }
    }
}

/// The offsets `[start, end)` of partition `p` that `from` and `to` select.
pub async fn resolve_range(engine: &Engine, topic: &str, p: u32, from: Position, to: Position) -> Result<(i64, i64)> {
    let at = |spec| async move { engine.offset_for_time(topic, p, spec).await };
    let earliest = at(OffsetSpec::Earliest).await?.map_or(0, |t| t.offset);
    let latest = at(OffsetSpec::Latest).await?.map_or(0, |t| t.offset);
    let resolve = |pos: Position| async move {
        Ok::<i64, Error>(match pos {
            Position::Earliest => earliest,
            Position::Latest => latest,
            Position::Offset(o) => o,
            Position::Time(t) => at(OffsetSpec::Timestamp(t)).await?.map_or(latest, |t| t.offset),
        })
    };
    let start = resolve(from).await?;
    if start < earliest || start > latest {
        return Err(Error::OffsetOutOfRange {
            topic: topic.to_owned(),
            partition: p,
            offset: start,
            start: earliest,
            end: latest,
        });
    }
    let end = resolve(to).await?.clamp(start, latest);
    Ok((start, end))
}

/// One partition's position in a replay.
struct Cursor {
    partition: u32,
    next: i64,
    end: i64,
    buffered: VecDeque<ReplayRecord>,
}

impl Cursor {
    /// The next record, reading when the buffer is empty; `None` at the end of the range.
    async fn peek(&mut self, engine: &Engine, topic: &str, read_bytes: usize) -> Result<Option<&ReplayRecord>> {
        while self.buffered.is_empty() && self.next < self.end {
            let r = engine.read(topic, self.partition, self.next, read_bytes).await?;
            let Some(after) = r.next_offset() else { break };
            let (from, end) = (self.next, self.end);
            let records = r.records().map_err(|reason| Error::CorruptBatch {
                topic: topic.to_owned(),
                partition: self.partition,
                offset: from,
                reason,
            })?;
            self.buffered.extend(
                records
                    .into_iter()
                    .filter(|v| v.offset >= from && v.offset < end)
                    .map(|v| ReplayRecord::new(self.partition, v)),
            );
            self.next = after;
        }
        Ok(self.buffered.front())
    }
}

/// A replay in progress: call [`Replay::next`] until it returns `None`.
pub struct Replay {
    engine: Engine,
    topic: String,
    read_bytes: usize,
    merge: Merge,
    cursors: Vec<Cursor>,
    /// Sequential: the cursor being drained. By time: unused.
    current: usize,
    /// By time: (timestamp, partition index) of each cursor's next record.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    started: bool,
    /// The range of each partition, as resolved.
    ranges: Vec<(u32, i64, i64)>,
}

impl Replay {
    pub(crate) async fn start(engine: &Engine, topic: &str, spec: ReplaySpec) -> Result<Replay> {
        let all = engine.partition_count(topic)?;
        let partitions = spec.partitions.clone().unwrap_or_else(|| (0..all).collect());
        let mut cursors = Vec::with_capacity(partitions.len());
        let mut ranges = Vec::with_capacity(partitions.len());
        for p in partitions {
            if p >= all {
                return Err(Error::UnknownPartition { topic: topic.to_owned(), partition: p, partitions: all });
            }
            let (start, end) = resolve_range(engine, topic, p, spec.from, spec.to).await?;
            ranges.push((p, start, end));
            cursors.push(Cursor { partition: p, next: start, end, buffered: VecDeque::new() });
        }
        Ok(Replay {
            engine: engine.clone(),
            topic: topic.to_owned(),
            read_bytes: spec.read_bytes.max(1),
            merge: spec.merge,
            cursors,
            current: 0,
            heap: BinaryHeap::new(),
            started: false,
            ranges,
        })
    }

    /// `(partition, start, end)` of every partition replayed: offsets `[start, end)`.
    pub fn ranges(&self) -> &[(u32, i64, i64)] {
        &self.ranges
    }

    /// The next record, or `None` when the range is done.
    pub async fn next(&mut self) -> Result<Option<ReplayRecord>> {
        let (engine, topic, read_bytes) = (&self.engine, self.topic.as_str(), self.read_bytes);
        match self.merge {
            Merge::Sequential => {
                while let Some(c) = self.cursors.get_mut(self.current) {
                    if c.peek(engine, topic, read_bytes).await?.is_some() {
                        return Ok(c.buffered.pop_front());
                    }
                    self.current += 1;
                }
                Ok(None)
            }
            Merge::ByTime => {
                if !self.started {
                    self.started = true;
                    for i in 0..self.cursors.len() {
                        if let Some(r) = self.cursors[i].peek(engine, topic, read_bytes).await? {
                            self.heap.push(Reverse((r.timestamp, i)));
                        }
                    }
                }
                let Some(Reverse((_, i))) = self.heap.pop() else { return Ok(None) };
                let c = &mut self.cursors[i];
                let rec = c.buffered.pop_front();
                if let Some(r) = c.peek(engine, topic, read_bytes).await? {
                    self.heap.push(Reverse((r.timestamp, i)));
                }
                Ok(rec)
            }
        }
    }

    /// The replay as a `futures` stream.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<ReplayRecord>> {
        futures::stream::try_unfold(self, |mut r| async move { Ok(r.next().await?.map(|rec| (rec, r))) })
    }
}

impl Engine {
    /// Replays the records of an offset or time range of a partition or a whole topic, across
    /// both tiers, as a pull stream with bounded memory (see [`crate::replay`]).
    pub async fn replay(&self, topic: &str, spec: ReplaySpec) -> Result<Replay> {
        self.check_open()?;
        Replay::start(self, topic, spec).await
    }
}
