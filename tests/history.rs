//! History end to end: restore from the bucket alone (local directory and SeaweedFS).

mod common;

use bytes::Bytes;
use common::{config, produce, s3_config, topic};
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, Error, TopicConfig};

/// Every batch of `[from, to)` of a partition, as the engine returns it.
async fn batches(engine: &Engine, topic: &str, partition: u32, from: i64, to: i64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut off = from;
    while off < to {
        let r = engine.read(topic, partition, off, 100_000).await.unwrap();
        for (h, b) in r.batches() {
            if h.base_offset < to {
                out.push(b);
            }
        }
        off = r.next_offset().unwrap();
    }
    out
}

/// Writes two topics, tiers most of it, keeps writing (that tail is never committed to the
/// bucket), then restores a fresh data dir from the bucket alone and checks every archived
/// offset byte for byte, then appends.
async fn restore_from(cfg: EngineConfig, fresh: EngineConfig) {
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("orders", topic(Some(1))).await.unwrap();
    let two = TopicConfig { partitions: 2, ..topic(None) };
    engine.create_topic("audit", two.clone()).await.unwrap();
    produce(&engine, "orders", 600, 1).await;
    for p in 0..2 {
        for b in 0..50i64 {
            let rec = Record {
                key: Some(format!("k{b}").into()),
                value: Some(vec![p as u8; 900].into()),
                headers: vec![],
                timestamp: 1_000 + b,
            };
            engine.append("audit", p, BatchBuilder::from_records(Compression::Lz4, &[rec])).await.unwrap();
        }
    }
    let mut archived = Vec::new();
    for (t, parts) in [("orders", 1u32), ("audit", 2)] {
        for p in 0..parts {
            engine.roll(t, p).await.unwrap();
            engine.tier_now(t, p).await.unwrap();
            let head = engine.remote_head(t, p).unwrap();
            assert!(head.next_offset > 0);
            archived.push((
                t,
                p,
                head.log_start_offset,
                head.next_offset,
                batches(&engine, t, p, head.log_start_offset, head.next_offset).await,
            ));
        }
    }
    // Acknowledged but not yet in the bucket: a restore does not bring this back.
    produce(&engine, "orders", 5, 2).await;
    engine.close().await.unwrap();

    let restored = Engine::open(fresh).await.unwrap();
    let c = restored.object_store_counts();
    assert_eq!(c.list, 1, "the catalog is listed once, segments never: {c:?}");
    assert_eq!(restored.list_topics(), vec!["audit".to_string(), "orders".to_string()]);
    assert_eq!(restored.describe_topic("audit").unwrap().config, two);
    for (t, p, start, next, want) in &archived {
        let d = restored.describe_topic(t).unwrap();
        let part = &d.partitions[*p as usize];
        assert_eq!((part.log_start_offset, part.high_watermark), (*start, *next), "{t}-{p}");
        assert_eq!(&batches(&restored, t, *p, *start, *next).await, want, "{t}-{p} reads back byte for byte");
        let err = restored.read(t, *p, *next + 1, 100).await.unwrap_err();
        assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    }
    // Appends continue at the right next offset, and tier on top of the restored log.
    let (_, _, _, next, _) = &archived[0];
    let rec = Record { key: None, value: Some("after".into()), headers: vec![], timestamp: 5_000 };
    let at = restored.append("orders", 0, BatchBuilder::from_records(Compression::None, &[rec])).await.unwrap();
    assert_eq!(at.base_offset, *next);
    restored.roll("orders", 0).await.unwrap();
    restored.tier_now("orders", 0).await.unwrap();
    assert_eq!(restored.remote_head("orders", 0).unwrap().next_offset, next + 1);
    let r = restored.read("orders", 0, *next, 100).await.unwrap();
    assert_eq!(r.records().unwrap()[0].value.as_deref(), Some(&b"after"[..]));
    restored.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_a_local_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut fresh = cfg.clone();
    fresh.data_dir = dir.path().join("restored");
    fresh.restore = true;
    restore_from(cfg, fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_s3() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), "restore");
    let mut fresh = cfg.clone();
    fresh.data_dir = dir.path().join("restored");
    fresh.restore = true;
    restore_from(cfg, fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_leaves_a_data_dir_with_topics_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("a", topic(None)).await.unwrap();
    engine.close().await.unwrap();
    // Another writer adds a topic to the same bucket.
    let mut other = cfg.clone();
    other.data_dir = dir.path().join("other");
    let engine = Engine::open(other).await.unwrap();
    engine.create_topic("b", topic(None)).await.unwrap();
    engine.close().await.unwrap();
    cfg.restore = true;
    let engine = Engine::open(cfg).await.unwrap();
    assert_eq!(engine.list_topics(), vec!["a".to_string()], "restore only fills an empty data dir");
    engine.close().await.unwrap();
}
