//! Committed offsets as records of `__consumer_offsets`, a compacted topic.
//!
//! Keys and values are JSON (readable with `tierlog consume __consumer_offsets`); a key's fields
//! are written in one fixed order, so equal keys are equal bytes and compaction keeps the last:
//!
//! - `{"type":"offset","group":G,"topic":T,"partition":P}` ->
//!   `{"offset":O,"leader_epoch":E,"metadata":M,"commit_ms":C}`
//! - `{"type":"group","group":G}` -> `{"generation":N,"empty_since_ms":S}`, written when a group
//!   that holds offsets loses its last member (its offsets expire from then).
//!
//! A null value (a tombstone) removes the key: a deleted group, a deleted or expired offset.
//! Every record of a group goes to partition `xxh3(group) % partitions`, so a commit of many
//! offsets is one batch, appended and made durable at once.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tiering::batch::{BatchBuilder, Compression, Record};

use super::OffsetCommit;
use super::group::{Committed, Group};
use crate::config::{CleanupPolicy, GroupsConfig, TopicConfig};
use crate::engine::{Engine, OFFSETS_TOPIC};
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Key {
    Offset { group: String, topic: String, partition: i32 },
    Group { group: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct OffsetValue {
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
    commit_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupValue {
    generation: i32,
    empty_since_ms: i64,
}

/// The settings `__consumer_offsets` is created with: compacted, fsync on every commit, 100 MiB
/// segments (Kafka's `offsets.topic.segment.bytes`) sealed at `offsets_segment_ms` at the latest,
/// so the bucket (and a restore) is never more than that behind the commits.
pub(super) fn topic_config(config: &GroupsConfig) -> TopicConfig {
    let mut t = TopicConfig {
        partitions: config.offsets_topic_partitions,
        cleanup_policy: CleanupPolicy::Compact,
        ..TopicConfig::default()
    };
    t.log.durability = tiering::Durability::Fsync;
    t.log.segment_bytes = 100 << 20;
    t.log.segment_ms = config.offsets_segment_ms;
    t
}

pub(super) fn partition_of(group: &str, partitions: u32) -> u32 {
    (twox_hash::XxHash3_128::oneshot(group.as_bytes()) % partitions as u128) as u32
}

fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("invariant: plain structs serialise"))
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    json(&Key::Offset { group: group.to_owned(), topic: topic.to_owned(), partition })
}

pub(super) fn offset_record(group: &str, o: &OffsetCommit, now: i64) -> Record {
    let value =
        OffsetValue { offset: o.offset, leader_epoch: o.leader_epoch, metadata: o.metadata.clone(), commit_ms: now };
    Record {
        key: Some(offset_key(group, &o.topic, o.partition)),
        value: Some(json(&value)),
        headers: Vec::new(),
        timestamp: now,
    }
}

pub(super) fn offset_tombstone(group: &str, topic: &str, partition: i32) -> Record {
    Record { key: Some(offset_key(group, topic, partition)), value: None, headers: Vec::new(), timestamp: 0 }
}

pub(super) fn group_record(group: &str, generation: i32, since: i64) -> Record {
    let key = json(&Key::Group { group: group.to_owned() });
    let value = json(&GroupValue { generation, empty_since_ms: since });
    Record { key: Some(key), value: Some(value), headers: Vec::new(), timestamp: since }
}

pub(super) fn group_tombstone(group: &str) -> Record {
    Record { key: Some(json(&Key::Group { group: group.to_owned() })), value: None, headers: Vec::new(), timestamp: 0 }
}

/// One batch of `records`, stamped now where they carry no time.
pub(super) fn batch(records: &[Record]) -> Bytes {
    let now = records.iter().map(|r| r.timestamp).max().unwrap_or(0);
    let mut b = BatchBuilder::new(Compression::None);
    for r in records {
        let mut r = r.clone();
        if r.timestamp == 0 {
            r.timestamp = now;
        }
        b.push(&r);
    }
    b.build()
}

/// Reads every partition of `__consumer_offsets` from its start: the latest record of each key
/// wins, tombstones remove. A record that does not parse is skipped with a warning (it is not
/// one tierlog wrote).
pub(super) async fn load(engine: &Engine, partitions: u32) -> Result<HashMap<String, Group>> {
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut recorded: HashMap<String, GroupValue> = HashMap::new();
    for p in 0..partitions {
        let mut replay = engine.replay(OFFSETS_TOPIC, crate::replay::ReplaySpec::partition(p)).await?;
        while let Some(r) = replay.next().await? {
            let Some(key) = r.key.as_ref() else { continue };
            let key: Key = match serde_json::from_slice(key) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(partition = p, offset = r.offset, error = %e, "skipping a __consumer_offsets record with a key tierlog does not write");
                    continue;
                }
            };
            match key {
                Key::Offset { group, topic, partition } => {
                    let g = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
                    match r.value.as_deref().map(serde_json::from_slice::<OffsetValue>) {
                        None => {
                            g.offsets.remove(&(topic, partition));
                        }
                        Some(Ok(v)) => {
                            let c = Committed {
                                offset: v.offset,
                                leader_epoch: v.leader_epoch,
                                metadata: v.metadata,
                                commit_ms: v.commit_ms,
                                log_offset: r.offset,
                            };
                            g.offsets.insert((topic, partition), c);
                        }
                        Some(Err(e)) => {
                            return Err(Error::Corrupt {
                                path: format!("{OFFSETS_TOPIC}-{p}").into(),
                                position: r.offset as u64,
                                reason: format!("committed offset value does not parse: {e}"),
                            });
                        }
                    }
                }
                Key::Group { group } => match r.value.as_deref().map(serde_json::from_slice::<GroupValue>) {
                    None => {
                        recorded.remove(&group);
                    }
                    Some(Ok(v)) => {
                        recorded.insert(group, v);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(partition = p, offset = r.offset, error = %e, "skipping a group record that does not parse");
                    }
                },
            }
        }
    }
    groups.retain(|_, g| !g.offsets.is_empty());
    for (id, v) in recorded {
        if let Some(g) = groups.get_mut(&id) {
            g.generation = v.generation;
            g.empty_since_ms = Some(v.empty_since_ms);
        }
    }
    Ok(groups)
}
