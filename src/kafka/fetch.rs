//! Fetch: whole stored batches (the one holding the fetch offset included) from either tier, as
//! the bytes that are stored, with the high watermark, last stable offset (the high watermark:
//! tierlog has no transactions) and log start. A long poll waits on the partitions' high
//! watermarks (`Engine::wait_for_any`, woken by appends) until `min_bytes` are there or
//! `max_wait_ms` passed. Sessions are not kept: session id 0 always (KIP-227 sessionless
//! fetches), FETCH_SESSION_ID_NOT_FOUND for any other.
//!
//! Records go out zero-copy: from the hot tier as ranges of the segment files, sent with
//! `sendfile(2)` (`Engine::read_sendable`), from the bucket's cache as the cached bytes.

use bytes::Bytes;
use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::codes;
use super::dispatch::{Ctx, Reply};
use super::frame::{MAX_SPAN_BYTES, MAX_SPANS, stand_in};
use super::metadata::check_leader_epoch;
use crate::engine::Engine;
use crate::error::Error;
use tiering::local::{Batches, FileSpan, SendableRead};

/// The longest a Fetch is held, whatever `max_wait_ms` asks.
const MAX_WAIT_MS: u64 = 300_000;

struct Want {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// Refused before reading (bad partition number, leader epoch).
    refused: Option<K>,
}

pub(super) async fn handle(ctx: Ctx, req: FetchRequest) -> Reply {
    let engine = ctx.broker.engine.clone();
    let mut resp = FetchResponse::default().with_session_id(0);
    if req.session_id != 0 {
        resp.error_code = ctx.code(K::FetchSessionIdNotFound.code());
        return ctx.respond(&resp);
    }
    if !matches!(req.session_epoch, -1 | 0) {
        resp.error_code = ctx.code(K::InvalidFetchSessionEpoch.code());
        return ctx.respond(&resp);
    }
    let mut names: Vec<TopicName> = Vec::with_capacity(req.topics.len());
    let mut wants: Vec<Vec<Want>> = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = t.topic.0.to_string();
        let parts = t
            .partitions
            .into_iter()
            .map(|p| Want {
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                refused: if p.partition < 0 {
                    Some(K::UnknownTopicOrPartition)
                } else {
                    check_leader_epoch(if ctx.version >= 9 { p.current_leader_epoch } else { -1 })
                },
            })
            .collect();
        names.push(t.topic);
        wants.push(parts);
    }
    let max_bytes = req.max_bytes.max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    let wait_ms = (req.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS);
    let clock = engine.clock().clone();
    let deadline = clock.now_ms().saturating_add(wait_ms as i64);
    let (parts, spans) = loop {
        let (parts, spans, total) = read_all(&engine, &wants, max_bytes, read_committed).await;
        let remaining = deadline - clock.now_ms();
        let failed = parts.iter().flatten().any(|p| p.error_code != 0);
        if total >= min_bytes.max(1) || remaining <= 0 || failed || parts.iter().all(|t| t.is_empty()) {
            break (parts, spans);
        }
        // Wait for any partition to grow past what this read saw.
        let targets: Vec<(&str, u32, i64)> = wants
            .iter()
            .flatten()
            .zip(parts.iter().flatten())
            .map(|(w, p)| (w.topic.as_str(), w.partition as u32, p.high_watermark.max(w.offset)))
            .collect();
        match engine.wait_for_any(&targets, remaining as u64).await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break (parts, spans),
        }
    };
    resp.responses = names
        .into_iter()
        .zip(parts)
        .map(|(topic, partitions)| FetchableTopicResponse::default().with_topic(topic).with_partitions(partitions))
        .collect();
    for p in resp.responses.iter().flat_map(|t| &t.partitions) {
        super::codes::count(ctx.api(), p.error_code);
    }
    // The records go out as the stored bytes themselves, not copied into the frame: slices of
    // what was read into memory, and file spans behind their stand-ins.
    let shared = resp.responses.iter().flat_map(|t| &t.partitions).filter_map(|p| p.records.clone()).collect();
    ctx.respond_sharing(&resp, shared, spans)
}

/// One pass over every partition: whole batches within the limits (the first batch of the
/// response even when it alone is over them, as KIP-74), and the partition's offsets.
///
/// The partitions that the response can hold even if each filled its own limit are read at once
/// (on both cores; a fetch of many partitions waits for the slowest, not for their sum), the rest
/// one by one with what is left of `max_bytes`. Results are then taken in request order under the
/// same limits as a one-by-one pass, cut at whole batches, so the answer does not depend on which
/// read finished first.
///
/// Records read as file spans are in the answer as stand-ins (`frame::stand_in`), the
/// spans themselves returned beside it, in order.
async fn read_all(
    engine: &Engine,
    wants: &[Vec<Want>],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<Vec<PartitionData>>, Vec<FileSpan>, usize) {
    // The partitions read together: in order, while the limits before them leave room.
    let mut eager: Vec<Option<tokio::task::JoinHandle<crate::Result<SendableRead>>>> = Vec::new();
    let mut budget = max_bytes;
    for w in wants.iter().flatten() {
        if budget == 0 && !eager.is_empty() {
            break;
        }
        let limit = w.max_bytes.min(max_bytes).max(1);
        budget = budget.saturating_sub(limit);
        eager.push(w.refused.is_none().then(|| {
            let (engine, topic, partition, offset) = (engine.clone(), w.topic.clone(), w.partition as u32, w.offset);
            tokio::spawn(async move { read(&engine, &topic, partition, offset, limit).await })
        }));
    }
    let mut eager = eager.into_iter();
    let mut total = 0usize;
    let mut spans = Vec::new();
    let mut out = Vec::with_capacity(wants.len());
    for topic in wants {
        let mut parts = Vec::with_capacity(topic.len());
        for w in topic {
            let early = eager.next();
            let mut p = PartitionData::default()
                .with_partition_index(w.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_aborted_transactions(read_committed.then(Vec::new))
                .with_records(Some(Bytes::new()));
            if let Some(code) = w.refused {
                p.error_code = code.code();
                parts.push(p);
                continue;
            }
            let limit = w.max_bytes.min(max_bytes.saturating_sub(total));
            let log = match engine.log(&w.topic, w.partition as u32) {
                Ok(l) => l,
                Err(e) => {
                    p.error_code = codes::of(&e).code();
                    parts.push(p);
                    continue;
                }
            };
            if limit == 0 && total > 0 {
                // The response is full: offsets only.
                let hw = log.high_watermark();
                (p.high_watermark, p.last_stable_offset, p.log_start_offset) = (hw, hw, log.log_start_offset());
                parts.push(p);
                continue;
            }
            let read = match early.flatten() {
                Some(handle) => handle.await.unwrap_or_else(|e| {
                    Err(Error::PartitionUnavailable {
                        topic: w.topic.clone(),
                        partition: w.partition as u32,
                        reason: format!("the read task failed: {e}"),
                    })
                }),
                None => read(engine, &w.topic, w.partition as u32, w.offset, limit.max(1)).await,
            };
            match read {
                Ok(r) => {
                    (p.high_watermark, p.last_stable_offset, p.log_start_offset) =
                        (r.high_watermark, r.high_watermark, r.log_start_offset);
                    // Past the limits only as the response's first batch.
                    let records = match r.batches.cut(limit, total == 0) {
                        // A response carries at most MAX_SPANS spans; the rest is read.
                        Batches::File(span) if spans.len() >= MAX_SPANS => span.read().map(Batches::Memory),
                        other => Ok(other),
                    };
                    match records {
                        Ok(records) => {
                            total += records.len();
                            p.records = Some(match records {
                                Batches::Memory(b) => b,
                                Batches::File(span) => {
                                    let bytes = stand_in(spans.len(), span.len());
                                    spans.push(span);
                                    bytes
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(topic = %w.topic, partition = w.partition, offset = w.offset, error = %e, "fetch failed");
                            p.error_code = K::KafkaStorageError.code();
                        }
                    }
                }
                Err(Error::OffsetOutOfRange { start, end, .. }) => {
                    p.error_code = K::OffsetOutOfRange.code();
                    (p.high_watermark, p.last_stable_offset, p.log_start_offset) = (end, end, start);
                }
                Err(e) => {
                    tracing::warn!(topic = %w.topic, partition = w.partition, offset = w.offset, error = %e, "fetch failed");
                    p.error_code = codes::of(&e).code();
                }
            }
            parts.push(p);
        }
        out.push(parts);
    }
    (out, spans, total)
}

/// A partition's read for a Fetch: zero-copy where the engine can, within what one response
/// can carry as file spans.
async fn read(engine: &Engine, topic: &str, partition: u32, offset: i64, limit: usize) -> crate::Result<SendableRead> {
    if limit <= MAX_SPAN_BYTES {
        return engine.read_sendable(topic, partition, offset, limit).await;
    }
    let r = engine.read(topic, partition, offset, limit).await?;
    Ok(SendableRead {
        batches: Batches::Memory(r.batches),
        high_watermark: r.high_watermark,
        log_start_offset: r.log_start_offset,
    })
}
