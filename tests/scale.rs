//! Many partitions: an idle partition holds no open file and costs a stop and a reopen no
//! write, and the per-topic and per-node partition bounds refuse what is past them.

mod common;

use std::os::unix::fs::MetadataExt;

use bytes::Bytes;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, Error, TopicConfig};

const PARTITIONS: u32 = 1_500;
const WRITTEN: [u32; 3] = [0, 700, 1_499];

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The inode of every partition's recovery checkpoint: a rewrite (tmp file + rename) changes it.
fn checkpoint_inodes(data: &std::path::Path) -> Vec<u64> {
    (0..PARTITIONS)
        .map(|p| std::fs::metadata(data.join(format!("wide-{p}/recovery-checkpoint"))).unwrap().ino())
        .collect()
}

fn batch(p: u32, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("p{p}-v{i}"))),
            headers: vec![],
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .collect();
    BatchBuilder::from_records(Compression::None, &records)
}

async fn values(engine: &Engine, p: u32) -> Vec<String> {
    let r = engine.read("wide", p, 0, 1 << 20).await.unwrap();
    r.records()
        .unwrap()
        .into_iter()
        .map(|rec| String::from_utf8(Record::from(rec).value.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partitions_hold_no_files_and_cost_a_stop_and_a_reopen_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path());
    let data = cfg.data_dir.clone();
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let before = open_files();
    engine.create_topic("wide", TopicConfig { partitions: PARTITIONS, ..Default::default() }).await.unwrap();
    let created = open_files();
    assert!(created < before + 50, "{PARTITIONS} idle partitions hold {} files", created - before);
    for p in WRITTEN {
        engine.append("wide", p, batch(p, 3)).await.unwrap();
    }
    engine.tick().await.unwrap();
    let inodes = checkpoint_inodes(&data);
    engine.close().await.unwrap();
    drop(engine);

    let after_close = checkpoint_inodes(&data);
    for p in 0..PARTITIONS {
        let written = WRITTEN.contains(&p);
        // Written partitions are checkpointed at their end on close; idle ones are left alone.
        assert_eq!(inodes[p as usize] != after_close[p as usize], written, "checkpoint of partition {p}");
    }

    let before = open_files();
    let engine = Engine::open(cfg).await.unwrap();
    let reopened = open_files();
    assert!(reopened < before + 50, "a reopen of {PARTITIONS} idle partitions holds {} files", reopened - before);
    assert_eq!(checkpoint_inodes(&data), after_close, "a clean reopen rewrites no checkpoint");
    for p in WRITTEN {
        assert_eq!(values(&engine, p).await, vec![format!("p{p}-v0"), format!("p{p}-v1"), format!("p{p}-v2")]);
    }
    assert!(values(&engine, 1).await.is_empty());
    // Appends after a reopen open the file on first use.
    let at = engine.append("wide", 1, batch(1, 2)).await.unwrap();
    assert_eq!((at.base_offset, at.last_offset), (0, 1));
    assert_eq!(values(&engine, 1).await, vec!["p1-v0".to_owned(), "p1-v1".to_owned()]);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn partition_bounds_refuse_topics_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.max_partitions_per_topic = 8;
    cfg.max_partitions = 12;
    let engine = Engine::open(cfg).await.unwrap();
    let err = engine.create_topic("a", TopicConfig { partitions: 9, ..Default::default() }).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "partitions"), "{err}");
    assert!(err.to_string().contains("max_partitions_per_topic (8)"), "{err}");
    engine.create_topic("a", TopicConfig { partitions: 8, ..Default::default() }).await.unwrap();
    let err = engine.create_topic("b", TopicConfig { partitions: 5, ..Default::default() }).await.unwrap_err();
    assert!(err.to_string().contains("holds 8 partitions; 5 more would pass max_partitions (12)"), "{err}");
    assert!(engine.list_topics().iter().all(|t| t != "b"), "a refused topic is not created");
    let err = engine.add_partitions("a", 9).await.unwrap_err();
    assert!(err.to_string().contains("max_partitions_per_topic"), "{err}");
    engine.create_topic("b", TopicConfig { partitions: 4, ..Default::default() }).await.unwrap();
    let err = engine.add_partitions("b", 5).await.unwrap_err();
    assert!(err.to_string().contains("holds 12 partitions; 1 more"), "{err}");
    assert_eq!(engine.topic_config("b").unwrap().partitions, 4);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_uploader_finds_sealed_segments_among_idle_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.tiering.poll_ms = 20;
    let engine = Engine::open(cfg).await.unwrap();
    let mut tc = TopicConfig { partitions: 200, ..Default::default() };
    tc.log.segment_bytes = 4096;
    engine.create_topic("wide", tc).await.unwrap();
    for i in 0..20 {
        engine.append("wide", 137, batch(137, 20 + i)).await.unwrap();
    }
    let sealed = engine.describe_topic("wide").unwrap().partitions[137].segments.iter().filter(|s| s.sealed).count();
    assert!(sealed >= 2, "{sealed} sealed segments");
    common::eventually("the sealed segments are uploaded by the background uploader", || {
        engine.remote_head("wide", 137).unwrap().totals.segments as usize >= sealed
    })
    .await;
    assert_eq!(engine.remote_head("wide", 0).unwrap().totals.segments, 0);
    engine.close().await.unwrap();
}
