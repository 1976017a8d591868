//! JSON lines -> batches -> appends, several in flight per partition with their order kept:
//! shared by `tierlog produce` and `POST /topics/{t}/records`.

use std::collections::VecDeque;
use std::io::BufRead;

use anyhow::Context as _;
use bytes::Bytes;
use tiering::batch::{BatchBuilder, Compression};

use crate::engine::Engine;
use crate::records::{ProduceSummary, record_from_json};

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

struct Producer<'a> {
    engine: &'a Engine,
    topic: &'a str,
    in_flight: usize,
    pending: VecDeque<
        std::pin::Pin<Box<dyn std::future::Future<Output = crate::Result<tiering::local::AppendInfo>> + Send>>,
    >,
    summary: ProduceSummary,
}

impl Producer<'_> {
    async fn send(&mut self, partition: u32, batch: Bytes, records: u64) -> anyhow::Result<()> {
        let fut = self.engine.enqueue_append(self.topic, partition, batch).await?;
        self.pending.push_back(Box::pin(fut));
        self.summary.records += records;
        self.summary.batches += 1;
        while self.pending.len() >= self.in_flight {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> anyhow::Result<()> {
        if let Some(f) = self.pending.pop_front() {
            let info = f.await?;
            self.summary.first_offset =
                Some(self.summary.first_offset.map_or(info.base_offset, |o| o.min(info.base_offset)));
            self.summary.last_offset =
                Some(self.summary.last_offset.map_or(info.last_offset, |o| o.max(info.last_offset)));
        }
        Ok(())
    }
}

/// Produces the JSON lines of `input`; returns what was appended.
pub async fn produce(engine: &Engine, args: &ProduceOptions, input: impl BufRead) -> anyhow::Result<ProduceSummary> {
    let topic = engine.describe_topic(&args.topic)?;
    let partitions = topic.partitions.len() as u32;
    // Keep each batch under the topic's limit (a header and some slack for record framing).
    let batch_bytes = args.batch_bytes.min(topic.config.log.batch_limit().saturating_sub(256).max(1));
    if let Some(p) = args.partition {
        anyhow::ensure!(p < partitions, "topic {:?} has no partition {p} (it has {partitions})", args.topic);
    }
    let mut producer = Producer {
        engine,
        topic: &args.topic,
        in_flight: args.in_flight.max(1),
        pending: VecDeque::new(),
        summary: ProduceSummary { records: 0, batches: 0, first_offset: None, last_offset: None },
    };
    let mut builders: Vec<BatchBuilder> = (0..partitions).map(|_| BatchBuilder::new(args.compression)).collect();
    let mut round_robin = 0u32;
    let mut failure = None;
    for (n, line) in input.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let now = engine.clock().now_ms();
        let record = match record_from_json(&line, now) {
            Ok(r) => r,
            Err(e) => {
                failure = Some(anyhow::anyhow!("line {}: {e}", n + 1));
                break;
            }
        };
        let p = match (args.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(k)) => crc32c::crc32c(k) % partitions,
            (None, None) => round_robin % partitions,
        };
        let size = 32
            + record.key.as_ref().map_or(0, |k| k.len())
            + record.value.as_ref().map_or(0, |v| v.len())
            + record.headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 8).sum::<usize>();
        let b = &mut builders[p as usize];
        if !b.is_empty() && b.records_bytes() + size > batch_bytes {
            let full = std::mem::replace(b, BatchBuilder::new(args.compression));
            let count = full.len() as u64;
            producer.send(p, full.build(), count).await?;
        }
        let b = &mut builders[p as usize];
        b.push(&record);
        if b.len() >= args.batch_records {
            let full = std::mem::replace(b, BatchBuilder::new(args.compression));
            let count = full.len() as u64;
            producer.send(p, full.build(), count).await?;
            round_robin = round_robin.wrapping_add(1);
        }
    }
    for (p, b) in builders.into_iter().enumerate() {
        if !b.is_empty() {
            let count = b.len() as u64;
            producer.send(p as u32, b.build(), count).await?;
        }
    }
    while !producer.pending.is_empty() {
        producer.settle_one().await?;
    }
    match failure {
        Some(e) => {
            Err(e.context(format!("stopped; {} records before the bad line were appended", producer.summary.records)))
        }
        None => Ok(producer.summary),
    }
}
