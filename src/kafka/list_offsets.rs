//! ListOffsets: latest (-1, the high watermark), earliest (-2, the real log start after
//! retention, across both tiers), a timestamp (the first offset whose record timestamp is >= it,
//! searched inside batches in either tier), max timestamp (-3: the first record with the largest
//! timestamp), earliest local (-4) and latest tiered (-5).

use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::codes;
use super::dispatch::{Ctx, Reply};
use super::metadata::{LEADER_EPOCH, check_leader_epoch};
use crate::OffsetSpec;
use crate::engine::Engine;
use crate::error::Error;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(super) async fn handle(ctx: Ctx, req: ListOffsetsRequest) -> Reply {
    let engine = ctx.broker.engine.clone();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let epoch = if ctx.version >= 4 { p.current_leader_epoch } else { -1 };
            let found = match (u32::try_from(p.partition_index), check_leader_epoch(epoch)) {
                (Err(_), _) => Err(K::UnknownTopicOrPartition),
                (_, Some(code)) => Err(code),
                (Ok(id), None) => lookup(&engine, &name, id, p.timestamp, ctx.version).await,
            };
            match found {
                Ok(Some((offset, timestamp))) => {
                    (r.offset, r.timestamp) = (offset, timestamp);
                    if ctx.version >= 4 {
                        r.leader_epoch = LEADER_EPOCH;
                    }
                }
                Ok(None) => {}
                Err(code) => r.error_code = ctx.code(code.code()),
            }
            parts.push(r);
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(parts));
    }
    ctx.respond(&ListOffsetsResponse::default().with_topics(topics))
}

/// `(offset, timestamp)` for one partition's spec; `None` when no record matches.
async fn lookup(
    engine: &Engine,
    topic: &str,
    partition: u32,
    spec: i64,
    version: i16,
) -> Result<Option<(i64, i64)>, K> {
    let log = engine.log(topic, partition).map_err(|e| codes::of(&e))?;
    // The special values each came with a version; below it they are plain (negative) times.
    let spec = match spec {
        MAX_TIMESTAMP if version < 7 => 0,
        EARLIEST_LOCAL if version < 8 => 0,
        LATEST_TIERED if version < 9 => 0,
        s => s,
    };
    let time = |spec| async move {
        match engine.offset_for_time(topic, partition, spec).await {
            Ok(found) => Ok(found.map(|f| (f.offset, f.timestamp))),
            Err(e) => {
                if !matches!(e, Error::OffsetOutOfRange { .. }) {
                    tracing::warn!(topic, partition, error = %e, "ListOffsets failed");
                }
                Err(codes::of(&e))
            }
        }
    };
    let found = match spec {
        LATEST => Some((log.high_watermark(), -1)),
        EARLIEST => Some((log.log_start_offset(), -1)),
        EARLIEST_LOCAL => {
            let start = log.tiers().local.as_ref().map_or(log.high_watermark(), |l| l.log_start_offset());
            Some((start, -1))
        }
        LATEST_TIERED => {
            let head = log.tiers().remote.as_ref().map(|r| r.manifest().head());
            Some((head.filter(|h| !h.is_empty()).map_or(-1, |h| h.next_offset - 1), -1))
        }
        MAX_TIMESTAMP => time(OffsetSpec::MaxTimestamp).await?,
        t => time(OffsetSpec::Timestamp(t.max(0))).await?,
    };
    Ok(found)
}
