//! Fault tests of the upload path with a failing store: errors and timeouts on a fraction of
//! requests, multipart uploads whose parts fail, and a writer stopped between its uploads and its
//! manifest commit. Nothing acknowledged is lost, the manifest stays consistent, every object it
//! references exists, and what failed uploads leave behind is swept.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::object_store::ObjectStore;
use tierlog::remote::faulty::{Faults, FaultyStore};
use tierlog::remote::keys::PartitionKeys;
use tierlog::{Engine, EngineConfig, LogConfig, ManualClock, ObjectStoreConfig, TopicConfig};

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir.join("data"));
    c.tiering.poll_ms = 3_600_000;
    c.tiering.upload_attempts = 10;
    c.tiering.retry_base_ms = 2;
    c.tiering.retry_max_ms = 40;
    c.tiering.cache.disk_bytes = Some(0);
    c.tiering.cache.memory_bytes = 16 << 20;
    c
}

fn topic(segment_bytes: u64) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        log: LogConfig { segment_bytes, local_retention_bytes: Some(1), ..Default::default() },
        ..Default::default()
    }
}

/// Appends `n` batches of `size`-byte values; returns every acknowledged (offset, value).
async fn produce(engine: &Engine, n: usize, size: usize) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    for b in 0..n {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![(b * 4 + i) as u8; size])),
                headers: vec![],
                timestamp: 1_000 + b as i64,
            })
            .collect();
        let at = engine.append("t", 0, BatchBuilder::from_records(Compression::None, &records)).await.unwrap();
        out.extend(records.into_iter().enumerate().map(|(i, r)| (at.base_offset + i as i64, r.value.unwrap())));
    }
    out
}

/// Tiers until the bucket holds everything sealed, tolerating failed passes.
async fn tier_all(engine: &Engine) {
    let hw = engine.describe_topic("t").unwrap().partitions[0].high_watermark;
    for _ in 0..50 {
        let _ = engine.tier_now("t", 0).await;
        if engine.remote_head("t", 0).unwrap().next_offset == hw {
            return;
        }
    }
    panic!("the bucket never caught up: {:?}", engine.describe_topic("t").unwrap().partitions[0].tiering_error);
}

/// Every record acknowledged reads back; the manifest is contiguous; every object it references
/// exists; and (after a sweep) the bucket holds nothing else under the partition.
async fn check(engine: &Engine, store: &Arc<dyn ObjectStore>, acked: &[(i64, Bytes)]) {
    let mut got = Vec::new();
    let mut off = 0;
    let end = acked.last().unwrap().0 + 1;
    while off < end {
        let r = engine.read("t", 0, off, 1 << 20).await.unwrap();
        got.extend(r.records().unwrap().into_iter().map(|v| (v.offset, v.value.unwrap())));
        off = r.next_offset().unwrap();
    }
    assert_eq!(got, acked);
    common::bucket_matches_manifest(engine, store, "t", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_errors_and_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ObjectStoreConfig::Local { path: dir.path().join("bucket") }.build().unwrap();
    let faulty = Arc::new(FaultyStore::new(inner.clone(), Faults::default()));
    let mut cfg = config(dir.path());
    cfg.tiering.manifest_chunk_segments = 4;
    let engine = Engine::open_with_store(cfg, tierlog::system_clock(), faulty.clone()).await.unwrap();
    engine.create_topic("t", topic(32 << 10)).await.unwrap();
    faulty.set(Faults { error_rate: 0.2, timeout_rate: 0.05, timeout_ms: 30, ..Default::default() });
    let mut acked = Vec::new();
    for _ in 0..4 {
        acked.extend(produce(&engine, 60, 500).await);
        engine.roll("t", 0).await.unwrap();
        let _ = engine.tier_now("t", 0).await;
        // Reads under faults give the right data or an error, never wrong data.
        if let Ok(r) = engine.read("t", 0, 0, 4096).await {
            let first = r.records().unwrap()[0].clone();
            assert_eq!((first.offset, first.value.unwrap()), acked[0].clone());
        }
    }
    tier_all(&engine).await;
    faulty.set(Faults::default());
    assert!(engine.remote_head("t", 0).unwrap().chunks.len() >= 2, "commits wrote manifest chunks too");
    check(&engine, &inner, &acked).await;
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_with_failing_parts() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ObjectStoreConfig::Local { path: dir.path().join("bucket") }.build().unwrap();
    let faulty = Arc::new(FaultyStore::new(inner.clone(), Faults::default()));
    let mut cfg = config(dir.path());
    cfg.tiering.single_put_max_bytes = 1 << 20;
    cfg.tiering.part_bytes = 5 << 20;
    let engine = Engine::open_with_store(cfg, tierlog::system_clock(), faulty.clone()).await.unwrap();
    engine.create_topic("t", topic(12 << 20)).await.unwrap();
    faulty.set(Faults { part_error_rate: 0.3, ..Default::default() });
    let acked = produce(&engine, 60, 256 << 10).await; // 60 MiB: segments of three parts
    engine.roll("t", 0).await.unwrap();
    tier_all(&engine).await;
    faulty.set(Faults::default());
    let head = engine.remote_head("t", 0).unwrap();
    assert!(head.segments.iter().all(|e| e.size > 5 << 20), "multipart-sized segments");
    check(&engine, &inner, &acked).await;
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_stopped_between_upload_and_commit_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inner = ObjectStoreConfig::Local { path: dir.path().join("bucket") }.build().unwrap();
    let faulty = Arc::new(FaultyStore::new(inner.clone(), Faults::default()));
    let clock = ManualClock::new(1_000_000);
    let engine = Engine::open_with_store(config(dir.path()), clock.clone(), faulty.clone()).await.unwrap();
    engine.create_topic("t", topic(32 << 10)).await.unwrap();
    let mut acked = produce(&engine, 100, 500).await;
    engine.roll("t", 0).await.unwrap();
    // Segments and indexes upload; the manifest commit never lands.
    faulty.set(Faults { fail_writes_containing: Some("manifest/head".into()), ..Default::default() });
    let err = engine.tier_now("t", 0).await.unwrap_err();
    assert!(err.to_string().contains("manifest"), "{err}");
    assert!(engine.remote_head("t", 0).unwrap().is_empty());
    // Local retention must not have deleted anything: none of it is committed.
    let p = &engine.describe_topic("t").unwrap().partitions[0];
    assert_eq!(p.segments.first().unwrap().base_offset, 0);
    let keys = PartitionKeys::new("t", 0);
    let orphans: Vec<_> = inner.list(Some(&keys.segments_dir())).try_collect().await.unwrap();
    assert!(!orphans.is_empty(), "the uploads landed");
    engine.close().await.unwrap();

    // The next writer (a restart) re-uploads under its own epoch, commits, and the sweep removes
    // the first writer's orphans.
    faulty.set(Faults::default());
    let engine = Engine::open_with_store(config(dir.path()), clock.clone(), faulty.clone()).await.unwrap();
    acked.extend(produce(&engine, 20, 500).await);
    engine.roll("t", 0).await.unwrap();
    tier_all(&engine).await;
    assert_eq!(engine.remote_head("t", 0).unwrap().epoch, 2);
    check(&engine, &inner, &acked).await;
    let left: Vec<_> = inner.list(Some(&keys.segments_dir())).try_collect().await.unwrap();
    assert!(left.iter().all(|m| m.location.as_ref().contains("-2-")), "only epoch 2 objects remain");
    engine.close().await.unwrap();
}
