//! Helpers shared by the end-to-end tests of the remote tier and of history (replay, state,
//! restore).
#![allow(dead_code)]

use bytes::Bytes;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, LogConfig, ObjectStoreConfig, TopicConfig};

/// (offset, timestamp, value) of every record appended, in offset order.
pub type Model = Vec<(i64, i64, Bytes)>;

pub fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir.join("data"));
    c.object_store = Some(ObjectStoreConfig::Local { path: dir.join("bucket") });
    c.tiering.poll_ms = 3_600_000; // tests drive passes with tier_now
    c.tiering.cache.memory_bytes = 32 << 20;
    c.tiering.cache.disk_bytes = 0;
    c.tiering.cache.chunk_bytes = 64 << 10;
    c.tiering.cache.read_ahead_bytes = 512 << 10;
    c
}

pub fn topic(local_retention_bytes: Option<u64>) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        log: LogConfig { segment_bytes: 64 << 10, local_retention_bytes, ..Default::default() },
        ..Default::default()
    }
}

/// Appends `batches` batches of mixed codecs and sizes with jittered (non-monotonic) timestamps.
pub async fn produce(engine: &Engine, topic: &str, batches: usize, seed: u64) -> Model {
    let mut model = Vec::new();
    let codecs = Compression::ALL;
    for b in 0..batches {
        let n = 1 + (b * 7 + seed as usize) % 40;
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let ts = 1_700_000_000_000 + (b as i64) * 100 + ((i as i64 * 37 + seed as i64) % 150);
                Record {
                    key: Some(Bytes::from(format!("k{}", (b + i) % 97))),
                    value: Some(Bytes::from(format!("v{b}-{i}-{}", "x".repeat((b * 13 + i) % 300)))),
                    headers: vec![],
                    timestamp: ts,
                }
            })
            .collect();
        let batch = BatchBuilder::from_records(codecs[b % codecs.len()], &records);
        let at = engine.append(topic, 0, batch).await.unwrap();
        for (i, r) in records.into_iter().enumerate() {
            model.push((at.base_offset + i as i64, r.timestamp, r.value.unwrap()));
        }
    }
    model
}

/// A config whose bucket is the SeaweedFS of scripts/test.sh, under a fresh prefix. Fails (never
/// skips) when the server is not there.
pub fn s3_config(dir: &std::path::Path, name: &str) -> EngineConfig {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut c = config(dir);
    c.object_store =
        Some(ObjectStoreConfig::s3_test_server(&format!("test-{name}-{}-{nanos}", std::process::id())).expect(
            "TIERLOG_S3_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts SeaweedFS",
        ));
    c
}
