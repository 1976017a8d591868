//! Topic administration through the engine: deleting a topic (local files, catalog entry and
//! heads at once, the bucket's other objects after the grace period, the name free again),
//! adding partitions, and changing a live topic's retention and compaction settings.

mod common;

use bytes::Bytes;
use futures::StreamExt;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::object_store::ObjectStore;
use tierlog::{CleanupPolicy, Engine, EngineConfig, Error, ManualClock};

const T0: i64 = 1_700_000_000_000;

fn batch(tag: &str, n: usize, keyed: bool) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: keyed.then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: vec![],
            timestamp: T0 + i as i64,
        })
        .collect();
    BatchBuilder::from_records(Compression::None, &recs)
}

async fn keys(store: &dyn ObjectStore) -> Vec<String> {
    let mut out: Vec<String> = store.list(None).map(|m| m.unwrap().location.to_string()).collect().await;
    out.sort();
    out
}

async fn values(engine: &Engine, topic: &str, p: u32) -> Vec<String> {
    let r = engine.read(topic, p, engine.log(topic, p).unwrap().log_start_offset(), 1 << 20).await.unwrap();
    r.records().unwrap().into_iter().map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()).collect()
}

#[tokio::test]
async fn a_deleted_topic_leaves_at_once_its_objects_after_the_grace_period_and_its_name_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: EngineConfig = common::config(dir.path());
    cfg.tiering.delete_grace_ms = 60_000;
    let clock = ManualClock::new(T0);
    let engine = Engine::open_with_clock(cfg.clone(), clock.clone()).await.unwrap();
    engine.create_topic("gone", tierlog::TopicConfig { partitions: 2, ..common::topic(None) }).await.unwrap();
    for p in 0..2 {
        engine.append("gone", p, batch("old", 20, true)).await.unwrap();
        engine.roll("gone", p).await.unwrap();
        engine.tier_now("gone", p).await.unwrap();
    }
    let store = engine.object_store();
    let before = keys(&*store).await;
    assert!(before.iter().any(|k| k.contains("/gone/1/segments/")), "{before:?}");

    engine.delete_topic("gone").await.unwrap();
    assert!(!engine.list_topics().contains(&"gone".to_owned()));
    assert!(matches!(engine.append("gone", 0, batch("x", 1, true)).await, Err(Error::UnknownTopic { .. })));
    assert!(!cfg.data_dir.join("gone-0").exists() && !cfg.data_dir.join("topics/gone.json").exists());
    let after = keys(&*store).await;
    assert!(!after.iter().any(|k| k == "catalog/topics/gone.json" || k.ends_with("/manifest/head.json")), "{after:?}");
    let waiting: Vec<&String> = after.iter().filter(|k| k.contains("/gone/")).collect();
    assert!(!waiting.is_empty(), "segments wait out the grace period");

    // The name is free again, and the new topic's objects survive the old one's deletion.
    engine.create_topic("gone", common::topic(None)).await.unwrap();
    engine.append("gone", 0, batch("new", 5, true)).await.unwrap();
    engine.roll("gone", 0).await.unwrap();
    engine.tier_now("gone", 0).await.unwrap();
    assert_eq!(engine.sweep_deleted_topics().await.unwrap(), 0, "not before the grace period");
    // Past it, the sweep (the background one, fired by the clock, or this one) deletes them.
    clock.advance(60_001);
    engine.sweep_deleted_topics().await.unwrap();
    let left = keys(&*store).await;
    assert!(left.iter().all(|k| !waiting.contains(&k)), "every object of the old topic went");
    assert!(!left.iter().any(|k| k.contains("/gone/1/")));
    assert!(left.iter().any(|k| k.contains("/gone/0/segments/")), "the new topic's segment stays: {left:?}");
    let head = tierlog::remote::keys::PartitionKeys::new("gone", 0).head();
    assert!(left.contains(&head.to_string()), "the new topic's manifest head (same key as the old one's) stays");
    assert_eq!(values(&engine, "gone", 0).await, (0..5).map(|i| format!("new-{i}")).collect::<Vec<_>>());
    engine.close().await.unwrap();

    // A restart (and a restore) see only the new topic.
    let engine = Engine::open(cfg.clone()).await.unwrap();
    assert_eq!(engine.topic_config("gone").unwrap().partitions, 1);
    engine.close().await.unwrap();
    // The old topic's deletion left the new one's manifest head (same key) alone.
    let restored = EngineConfig { data_dir: dir.path().join("restored"), restore: true, ..cfg };
    let engine = Engine::open(restored).await.unwrap();
    assert_eq!(values(&engine, "gone", 0).await, (0..5).map(|i| format!("new-{i}")).collect::<Vec<_>>());
    engine.close().await.unwrap();
}

#[tokio::test]
async fn partitions_are_added_and_kept_across_restarts_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", common::topic(None)).await.unwrap();
    engine.append("t", 0, batch("p0", 3, true)).await.unwrap();
    let err = engine.add_partitions("t", 1).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "partitions"), "{err}");
    engine.add_partitions("t", 3).await.unwrap();
    assert_eq!(engine.describe_topic("t").unwrap().partitions.len(), 3);
    engine.append("t", 2, batch("p2", 2, true)).await.unwrap();
    for p in 0..3 {
        engine.roll("t", p).await.ok();
        engine.tier_now("t", p).await.unwrap();
    }
    engine.close().await.unwrap();

    let engine = Engine::open(cfg.clone()).await.unwrap();
    assert_eq!(engine.topic_config("t").unwrap().partitions, 3);
    assert_eq!(values(&engine, "t", 2).await, ["p2-0", "p2-1"]);
    assert_eq!(values(&engine, "t", 0).await, ["p0-0", "p0-1", "p0-2"]);
    engine.close().await.unwrap();

    let restored = EngineConfig { data_dir: dir.path().join("restored"), restore: true, ..cfg };
    let engine = Engine::open(restored).await.unwrap();
    assert_eq!(engine.topic_config("t").unwrap().partitions, 3);
    assert_eq!(values(&engine, "t", 2).await, ["p2-0", "p2-1"]);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn retention_and_compaction_settings_change_on_a_live_topic_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", common::topic(None)).await.unwrap();
    engine.append("t", 0, batch("keyless", 2, false)).await.unwrap();
    for _ in 0..3 {
        engine.append("t", 0, batch("x", 200, true)).await.unwrap();
        engine.roll("t", 0).await.unwrap();
    }
    engine.tier_now("t", 0).await.unwrap();
    let segments = engine.describe_topic("t").unwrap().partitions[0].segments.len();

    // Local retention of 1 byte: every tiered, sealed segment goes at the next pass.
    let mut c = engine.topic_config("t").unwrap();
    c.log.local_retention_bytes = Some(1);
    c.cleanup_policy = CleanupPolicy::Compact;
    engine.alter_topic_config("t", c.clone()).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    assert!(engine.describe_topic("t").unwrap().partitions[0].segments.len() < segments);
    // Compacted now: keyless records are refused, keyed ones taken.
    let err = engine.append("t", 0, batch("keyless", 1, false)).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidBatch { reason: tierlog::error::BatchError::KeylessRecord { .. }, .. }),
        "{err}"
    );
    engine.append("t", 0, batch("keyed", 1, true)).await.unwrap();

    let mut bad = c.clone();
    bad.log.segment_bytes *= 2;
    let err = engine.alter_topic_config("t", bad).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "log.segment_bytes"), "{err}");
    let mut bad = c.clone();
    bad.partitions = 2;
    assert!(matches!(engine.alter_topic_config("t", bad).await, Err(Error::InvalidConfig { .. })));
    engine.close().await.unwrap();

    let engine = Engine::open(cfg).await.unwrap();
    assert_eq!(engine.topic_config("t").unwrap(), c, "kept across a restart");
    assert!(engine.append("t", 0, batch("keyless", 1, false)).await.is_err());
    engine.close().await.unwrap();
}

/// The longest topic name Kafka allows (249 characters) works in the local bucket and in S3:
/// created, appended to, tiered, reopened, restored from the bucket, deleted and created again,
/// and the old objects deleted after the grace period.
#[tokio::test]
async fn the_longest_topic_names_live_their_whole_life_in_either_bucket() {
    for s3 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = if s3 { common::s3_config(dir.path(), "long-names") } else { common::config(dir.path()) };
        cfg.tiering.delete_grace_ms = 60_000;
        cfg.compactor.enabled = false; // no snapshot lands while the bucket is compared with the manifest
        let clock = ManualClock::new(T0);
        let names: Vec<String> = (247..=249).map(|n| "n".repeat(n)).collect();
        let engine = Engine::open_with_clock(cfg.clone(), clock.clone()).await.unwrap();
        for name in &names {
            engine.create_topic(name, tierlog::TopicConfig { partitions: 2, ..common::topic(None) }).await.unwrap();
            for p in 0..2 {
                engine.append(name, p, batch(&format!("old{p}"), 3, true)).await.unwrap();
                engine.roll(name, p).await.unwrap();
                engine.tier_now(name, p).await.unwrap();
            }
        }
        engine.close().await.unwrap();
        let engine = Engine::open_with_clock(cfg.clone(), clock.clone()).await.unwrap();
        for name in &names {
            assert_eq!(values(&engine, name, 1).await, ["old1-0", "old1-1", "old1-2"], "s3 {s3}");
        }
        let restored = EngineConfig { data_dir: dir.path().join("restored"), restore: true, ..cfg.clone() };
        let replica = Engine::open_with_clock(restored, clock.clone()).await.unwrap();
        let mut listed = replica.list_topics();
        listed.retain(|t| t.len() >= 247);
        assert_eq!(listed.len(), 3, "s3 {s3}");
        replica.close().await.unwrap();

        for name in &names {
            engine.delete_topic(name).await.unwrap();
            engine.create_topic(name, common::topic(None)).await.unwrap();
            engine.append(name, 0, batch("new", 2, true)).await.unwrap();
            engine.roll(name, 0).await.unwrap();
            engine.tier_now(name, 0).await.unwrap();
        }
        clock.advance(60_001);
        assert!(engine.sweep_deleted_topics().await.unwrap() > 0, "s3 {s3}");
        let store = engine.object_store();
        let left = keys(&*store).await;
        for name in &names {
            assert_eq!(values(&engine, name, 0).await, ["new-0", "new-1"]);
            assert!(!left.iter().any(|k| k.contains(&format!("/{name}/1/"))), "s3 {s3}: {left:?}");
            common::bucket_matches_manifest(&engine, &store, name, 0).await;
        }
        engine.close().await.unwrap();
    }
}
