//! Produce: each partition's batches are checked (framing, magic, codec for the version), handed
//! to the partition log in request order before the connection reads its next request, and
//! answered once acknowledged: durable as the topic's durability asks, for `acks=1` and `acks=-1`
//! alike (a single node has no followers to wait for). `acks=0` gets no response.
//!
//! Batches are stored as sent; the partition log validates every record, stamps the base offset
//! and leader epoch, and answers an idempotent producer's retry with the original offsets.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::codes;
use super::dispatch::{Ctx, ReplyFuture};
use crate::AppendInfo;
use crate::batch::{BatchHeader, Compression, ValidatedBatch};
use crate::engine::Engine;
use crate::error::Result;

type Ack = Pin<Box<dyn Future<Output = Result<AppendInfo>> + Send>>;

/// A partition's share of the request: refused up front, or queued with one ack per batch.
enum Slot {
    Refused(K, String),
    Queued(Vec<Ack>),
}

pub(super) async fn handle(ctx: Ctx, req: ProduceRequest) -> ReplyFuture {
    let engine = ctx.broker.engine.clone();
    let acks = req.acks;
    let refused = if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        Some((K::TransactionalIdAuthorizationFailed, "transactions are not supported by tierlog".to_owned()))
    } else if !matches!(acks, -1..=1) {
        Some((K::InvalidRequiredAcks, format!("acks must be -1, 0 or 1, not {acks}")))
    } else {
        None
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let name = t.name.0.to_string();
        let mut parts = Vec::with_capacity(t.partition_data.len());
        for pd in t.partition_data {
            let slot = match &refused {
                Some((code, msg)) => Slot::Refused(*code, msg.clone()),
                None => enqueue(&engine, &name, pd.index, pd.records.unwrap_or_default(), ctx.version).await,
            };
            parts.push((pd.index, slot));
        }
        topics.push((t.name, name, parts));
    }
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (topic, name, parts) in topics {
            let mut out = Vec::with_capacity(parts.len());
            for (index, slot) in parts {
                let mut r = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                match acknowledged(slot).await {
                    Ok(info) => {
                        r.base_offset = info.base_offset;
                        r.log_append_time_ms = info.log_append_time.unwrap_or(-1);
                        r.log_start_offset = engine.log(&name, index as u32).map_or(-1, |l| l.log_start_offset());
                    }
                    Err((code, message)) => {
                        tracing::debug!(topic = %name, partition = index, code = ?code, %message, "produce refused");
                        r.error_code = ctx.code(code.code());
                        if ctx.version >= 8 {
                            r.error_message = Some(StrBytes::from_string(message));
                        }
                    }
                }
                out.push(r);
            }
            responses.push(TopicProduceResponse::default().with_name(topic).with_partition_responses(out));
        }
        if acks == 0 {
            return ctx.silent();
        }
        ctx.respond(&ProduceResponse::default().with_responses(responses))
    })
}

/// The offsets of a partition's first batch once every batch is acknowledged, or the first error.
async fn acknowledged(slot: Slot) -> std::result::Result<AppendInfo, (K, String)> {
    let acks = match slot {
        Slot::Refused(code, msg) => return Err((code, msg)),
        Slot::Queued(acks) => acks,
    };
    let mut first = None;
    for ack in acks {
        let info = ack.await.map_err(|e| (codes::of(&e), e.to_string()))?;
        first.get_or_insert(info);
    }
    first.ok_or((K::InvalidRecord, "no record batch".to_owned()))
}

/// Checks a partition's records and queues its batches, in order. With several batches every
/// one is validated before any is queued, so a partition's share is all or nothing.
async fn enqueue(engine: &Engine, topic: &str, index: i32, records: Bytes, version: i16) -> Slot {
    let Ok(partition) = u32::try_from(index) else {
        return Slot::Refused(K::UnknownTopicOrPartition, format!("no partition {index}"));
    };
    let batches = match split(&records, version) {
        Ok(b) => b,
        Err((code, msg)) => return Slot::Refused(code, msg),
    };
    if batches.len() > 1 {
        let config = match engine.topic_config(topic) {
            Ok(c) => c,
            Err(e) => return Slot::Refused(codes::of(&e), e.to_string()),
        };
        for b in &batches {
            if let Err(e) =
                ValidatedBatch::validate_for(b.clone(), config.log.batch_limit(), config.cleanup_policy.compacts())
            {
                return Slot::Refused(codes::of_batch(&e), format!("invalid record batch: {e}"));
            }
        }
    }
    let mut acks: Vec<Ack> = Vec::with_capacity(batches.len());
    for b in batches {
        match engine.enqueue_append(topic, partition, b).await {
            Ok(ack) => acks.push(Box::pin(ack)),
            Err(e) if acks.is_empty() => return Slot::Refused(codes::of(&e), e.to_string()),
            Err(e) => {
                acks.push(Box::pin(std::future::ready(Err(e))));
                break;
            }
        }
    }
    Slot::Queued(acks)
}

/// The batches of a Produce partition's records field, zero-copy. Framing, magic and the codec
/// are checked here (zstd needs Produce v7+, as in Kafka); the records are checked by the append.
fn split(records: &Bytes, version: i16) -> std::result::Result<Vec<Bytes>, (K, String)> {
    if records.is_empty() {
        return Err((K::InvalidRecord, "no record batch".to_owned()));
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let header = BatchHeader::parse(&records[pos..])
            .map_err(|e| (codes::of_batch(&e), format!("invalid record batch at byte {pos}: {e}")))?;
        let end = pos + header.total_len();
        if end > records.len() {
            return Err((
                K::CorruptMessage,
                format!(
                    "record batch at byte {pos} declares {} bytes; {} remain",
                    header.total_len(),
                    records.len() - pos
                ),
            ));
        }
        if header.compression() == Ok(Compression::Zstd) && version < 7 {
            return Err((
                K::UnsupportedCompressionType,
                format!("zstd needs Produce v7 or later; this request is v{version}"),
            ));
        }
        out.push(records.slice(pos..end));
        pos = end;
    }
    Ok(out)
}
