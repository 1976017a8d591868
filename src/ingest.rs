//! JSON lines -> batches -> appends, several in flight per partition with their order kept:
//! shared by `tierlog produce` and `POST /topics/{t}/records`.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;

use anyhow::Context as _;
use bytes::Bytes;
use tiering::batch::{BatchBuilder, Compression};

use crate::engine::Engine;
use crate::records::{PartitionProduced, ProduceSummary, record_from_json};

/// How to turn JSON lines into appends.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub topic: String,
    /// Everything to this partition; `None`: by key (CRC-32C), keyless records round-robin.
    pub partition: Option<u32>,
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub compression: Compression,
    pub in_flight: usize,
}

pub fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::ALL
        .into_iter()
        .find(|c| c.name() == s)
        .ok_or_else(|| format!("{s:?}: use none, gzip, snappy, lz4 or zstd"))
}

/// A produce that stopped: what it had appended before, and why.
#[derive(Debug)]
pub struct ProduceFailed {
    pub appended: ProduceSummary,
    pub error: anyhow::Error,
}

impl std::fmt::Display for ProduceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}; {} records before it were appended", self.error, self.appended.records)
    }
}

impl std::error::Error for ProduceFailed {}

/// The size a record takes in a batch, near enough to keep batches under their limit.
fn record_size(record: &tiering::batch::Record) -> usize {
    32 + record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + record.headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 8).sum::<usize>()
}

/// The most record bytes one batch of `topic` may hold: its `max_batch_bytes` (and segment size),
/// less room for the batch header. A produce aims for smaller batches (`batch_bytes`); a record
/// bigger than that goes alone in a batch, up to this.
pub fn record_limit(engine: &Engine, topic: &str) -> crate::Result<usize> {
    let config = engine.topic_config(topic)?;
    Ok(config.log.batch_limit().saturating_sub(256).max(1))
}

/// Parses one line of a produce and checks it fits in a batch of `limit` bytes.
pub fn parse_line(line: &str, now: i64, limit: usize) -> anyhow::Result<tiering::batch::Record> {
    let record = record_from_json(line, now)?;
    let size = record_size(&record);
    anyhow::ensure!(
        size <= limit,
        "the record takes about {size} bytes; the topic's batches hold at most {limit} (log.max_batch_bytes)"
    );
    Ok(record)
}

/// A batch's acknowledgement (see [`Engine::enqueue_append`]).
type Ack = std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<tiering::local::AppendInfo>> + Send>>;

struct Producer<'a> {
    engine: &'a Engine,
    topic: &'a str,
    in_flight: usize,
    /// (partition, acknowledgement) of each batch in flight, in send order.
    pending: VecDeque<(u32, Ack)>,
    records: u64,
    batches: u64,
    /// Per partition: (records, first offset, last offset) acknowledged.
    done: BTreeMap<u32, (u64, i64, i64)>,
}

impl Producer<'_> {
    async fn send(&mut self, partition: u32, batch: Bytes) -> anyhow::Result<()> {
        let fut = self.engine.enqueue_append(self.topic, partition, batch).await?;
        self.pending.push_back((partition, Box::pin(fut)));
        while self.pending.len() >= self.in_flight {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> anyhow::Result<()> {
        if let Some((p, f)) = self.pending.pop_front() {
            let info = f.await?;
            let n = (info.last_offset - info.base_offset + 1) as u64;
            self.records += n;
            self.batches += 1;
            let e = self.done.entry(p).or_insert((0, info.base_offset, info.last_offset));
            e.0 += n;
            e.1 = e.1.min(info.base_offset);
            e.2 = e.2.max(info.last_offset);
        }
        Ok(())
    }

    /// Waits for every batch in flight; what was acknowledged.
    async fn finish(&mut self) -> (ProduceSummary, Option<anyhow::Error>) {
        let mut error = None;
        while !self.pending.is_empty() {
            if let Err(e) = self.settle_one().await {
                error.get_or_insert(e);
            }
        }
        let partitions = self
            .done
            .iter()
            .map(|(&partition, &(records, first_offset, last_offset))| PartitionProduced {
                partition,
                records,
                first_offset,
                last_offset,
            })
            .collect();
        (ProduceSummary { records: self.records, batches: self.batches, partitions }, error)
    }
}

/// Produces the JSON lines of `input`; returns what was appended. A bad line stops it: the lines
/// before it are appended, it and the rest are not, and the error names it.
pub async fn produce(
    engine: &Engine,
    args: &ProduceOptions,
    input: impl BufRead,
) -> Result<ProduceSummary, ProduceFailed> {
    let failed = |error: anyhow::Error| ProduceFailed { appended: ProduceSummary::default(), error };
    let partitions = engine.partition_count(&args.topic).map_err(|e| failed(e.into()))?;
    let limit = record_limit(engine, &args.topic).map_err(|e| failed(e.into()))?;
    let batch_bytes = args.batch_bytes.min(limit);
    if let Some(p) = args.partition
        && p >= partitions
    {
        return Err(failed(anyhow::anyhow!("topic {:?} has no partition {p} (it has {partitions})", args.topic)));
    }
    let mut producer = Producer {
        engine,
        topic: &args.topic,
        in_flight: args.in_flight.max(1),
        pending: VecDeque::new(),
        records: 0,
        batches: 0,
        done: BTreeMap::new(),
    };
    let mut error = None;
    let res = async {
        let mut builders: Vec<BatchBuilder> = (0..partitions).map(|_| BatchBuilder::new(args.compression)).collect();
        let mut round_robin = 0u32;
        for (n, line) in input.lines().enumerate() {
            let line = line.context("reading the input")?;
            if line.trim().is_empty() {
                continue;
            }
            let record = match parse_line(&line, engine.clock().now_ms(), limit) {
                Ok(r) => r,
                Err(e) => {
                    error = Some(e.context(format!("line {}", n + 1)));
                    break;
                }
            };
            let p = match (args.partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(k)) => crc32c::crc32c(k) % partitions,
                (None, None) => round_robin % partitions,
            };
            let size = record_size(&record);
            let b = &mut builders[p as usize];
            if !b.is_empty() && b.records_bytes() + size > batch_bytes {
                let full = std::mem::replace(b, BatchBuilder::new(args.compression));
                producer.send(p, full.build()).await?;
            }
            let b = &mut builders[p as usize];
            b.push(&record);
            if b.len() >= args.batch_records {
                let full = std::mem::replace(b, BatchBuilder::new(args.compression));
                producer.send(p, full.build()).await?;
                round_robin = round_robin.wrapping_add(1);
            }
        }
        for (p, b) in builders.into_iter().enumerate() {
            if !b.is_empty() {
                producer.send(p as u32, b.build()).await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    let (appended, settle_error) = producer.finish().await;
    match res.err().or(error).or(settle_error) {
        Some(error) => Err(ProduceFailed { appended, error }),
        None => Ok(appended),
    }
}
