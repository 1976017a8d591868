//! Resetting a group's committed offsets, as Kafka's `kafka-consumer-groups.sh --reset-offsets`
//! does: to an instant, the earliest or latest offset, an offset, a shift, or a duration ago;
//! new offsets are kept inside the log's range. A dry run unless executed; a group with live
//! members is refused (its consumers would overwrite the reset with their next commit).

use serde::Serialize;

use super::{Coordinator, GroupError, OffsetCommit, State};
use crate::engine::Engine;
use crate::error::{Error, Result};
use tiering::local::OffsetSpec;

/// Where to move the offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first offset at or after this instant (ms since the epoch); the log end if none is.
    Datetime(i64),
    Earliest,
    Latest,
    Offset(i64),
    /// The committed offset plus this (negative: back).
    ShiftBy(i64),
    /// As `Datetime(now - ms)`.
    ByDuration(u64),
}

/// One partition's reset.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResetRow {
    pub topic: String,
    pub partition: i32,
    /// The committed offset before (none: nothing committed).
    pub old: Option<i64>,
    pub new: i64,
}

/// What a reset needs of one partition's log: its range, and the first offset at or after the
/// instant asked for (when the target is a time).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub earliest: i64,
    pub latest: i64,
    pub at_time: Option<i64>,
}

impl ResetTo {
    /// The instant a time target means at `now`.
    pub fn instant(self, now: i64) -> Option<i64> {
        match self {
            ResetTo::Datetime(t) => Some(t),
            ResetTo::ByDuration(d) => Some(now.saturating_sub(d.min(i64::MAX as u64) as i64)),
            _ => None,
        }
    }

    /// The new offset of a partition whose committed offset is `old`, inside `b`'s range.
    pub fn apply(self, old: Option<i64>, b: &Bounds) -> std::result::Result<i64, String> {
        let new = match self {
            ResetTo::Earliest => b.earliest,
            ResetTo::Latest => b.latest,
            ResetTo::Offset(o) => o,
            ResetTo::ShiftBy(n) => match old {
                Some(o) => o.saturating_add(n),
                None => return Err("no committed offset to shift from".into()),
            },
            ResetTo::Datetime(_) | ResetTo::ByDuration(_) => b.at_time.unwrap_or(b.latest),
        };
        Ok(new.clamp(b.earliest, b.latest.max(b.earliest)))
    }
}

/// The bounds of `topic`-`p` in `engine` for `to` at `now`.
pub async fn engine_bounds(engine: &Engine, topic: &str, p: u32, to: ResetTo, now: i64) -> Result<Bounds> {
    let at = |spec| async move { engine.offset_for_time(topic, p, spec).await };
    let earliest = at(OffsetSpec::Earliest).await?.map_or(0, |t| t.offset);
    let latest = at(OffsetSpec::Latest).await?.map_or(0, |t| t.offset);
    let at_time = match to.instant(now) {
        Some(t) => at(OffsetSpec::Timestamp(t)).await?.map(|t| t.offset),
        None => None,
    };
    Ok(Bounds { earliest, latest, at_time })
}

impl Coordinator {
    /// Plans (and with `execute`, commits) a reset of `group`'s offsets on `topic` (one
    /// partition, or every partition). Refused while the group has members.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: ResetTo,
        execute: bool,
    ) -> Result<Vec<ResetRow>> {
        let state = self.describe(group).map_or(State::Empty.name(), |d| d.state);
        if state != State::Empty.name() {
            return Err(Error::InvalidConfig {
                field: "group".into(),
                reason: format!(
                    "offsets of group {group:?} can only be reset while it has no members; it is {state} (stop its consumers first)"
                ),
            });
        }
        let partitions: Vec<u32> = match partition {
            Some(p) => {
                self.engine.log(topic, p)?;
                vec![p]
            }
            None => (0..self.engine.topic_config(topic)?.partitions).collect(),
        };
        let wanted = [(topic.to_owned(), partitions.iter().map(|&p| p as i32).collect::<Vec<_>>())];
        let committed = self.committed(group, Some(&wanted));
        let now = self.now();
        let mut rows = Vec::with_capacity(partitions.len());
        for (t, p, c) in committed {
            let bounds = engine_bounds(&self.engine, &t, p as u32, to, now).await?;
            let old = c.map(|c| c.offset);
            let new =
                to.apply(old, &bounds).map_err(|reason| Error::InvalidConfig { field: format!("{t}-{p}"), reason })?;
            rows.push(ResetRow { topic: t, partition: p, old, new });
        }
        if execute {
            let offsets: Vec<OffsetCommit> = rows
                .iter()
                .map(|r| OffsetCommit {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: r.new,
                    leader_epoch: -1,
                    metadata: None,
                })
                .collect();
            let answers = self.commit(group, -1, "", None, &offsets).await.map_err(|e| refused(group, e))?;
            if let Some((row, e)) = rows.iter().zip(answers).find(|(_, e)| !e.is_ok()) {
                return Err(Error::Conflict {
                    reason: format!("committing {}-{} failed: {e}", row.topic, row.partition),
                });
            }
        }
        Ok(rows)
    }
}

fn refused(group: &str, e: GroupError) -> Error {
    match e {
        GroupError::UnknownMemberId => Error::InvalidConfig {
            field: "group".into(),
            reason: format!("group {group:?} got members meanwhile: its offsets can only be reset while it has none"),
        },
        other => Error::Conflict { reason: format!("committing the reset of group {group:?} failed: {other}") },
    }
}
