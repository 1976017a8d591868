//! Idempotent producers through the Engine: producer ids never handed out twice (restarts, a
//! second node on the bucket, a restore), and a producer's retry of a batch recognised after a
//! restart and after a restore from the bucket alone (the segment indexes' producer columns).

mod common;

use bytes::Bytes;
use common::{config, topic};
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, Error};

fn batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BatchBuilder::new(Compression::Zstd).producer(pid, epoch, seq);
    for i in 0..3 {
        b.push(&Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{pid}-{seq}-{i}-{}", "v".repeat(400)))),
            headers: vec![],
            timestamp: 1_700_000_000_000 + seq as i64,
        });
    }
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_are_never_reused_and_retries_are_recognised_after_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        assert!(seen.insert(engine.init_producer_id().await.unwrap()));
    }
    // A second node on the same bucket takes its own block.
    let other_cfg = EngineConfig { data_dir: dir.path().join("other"), ..cfg.clone() };
    let other = Engine::open(other_cfg).await.unwrap();
    for _ in 0..3 {
        assert!(seen.insert(other.init_producer_id().await.unwrap()), "{seen:?}");
    }
    other.close().await.unwrap();

    engine.create_topic("t", topic(None)).await.unwrap();
    let pid = engine.init_producer_id().await.unwrap();
    assert!(seen.insert(pid));
    let mut acked = Vec::new();
    for seq in 0..30 {
        acked.push(engine.append("t", 0, batch(pid, 0, seq * 3)).await.unwrap().base_offset);
    }
    // A retry while running, and a gap.
    assert_eq!(engine.append("t", 0, batch(pid, 0, 87)).await.unwrap().base_offset, acked[29]);
    assert!(matches!(engine.append("t", 0, batch(pid, 0, 99)).await, Err(Error::OutOfOrderSequence { .. })));
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    engine.close().await.unwrap();

    // Restarted: a new block (the old one's remainder is skipped), and the retry still known.
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let id = engine.init_producer_id().await.unwrap();
    assert!(seen.insert(id) && id > *seen.iter().take(seen.len() - 1).max().unwrap());
    assert_eq!(engine.append("t", 0, batch(pid, 0, 84)).await.unwrap().base_offset, acked[28]);
    engine.close().await.unwrap();

    // Restored from the bucket alone into a new data dir: the producer's last batches come from
    // the segment indexes, and producer ids keep going up.
    let restored = EngineConfig { data_dir: dir.path().join("restored"), restore: true, ..cfg.clone() };
    let engine = Engine::open(restored).await.unwrap();
    let hw = engine.describe_topic("t").unwrap().partitions[0].high_watermark;
    assert_eq!(engine.append("t", 0, batch(pid, 0, 87)).await.unwrap().base_offset, acked[29]);
    assert_eq!(engine.describe_topic("t").unwrap().partitions[0].high_watermark, hw, "nothing written");
    assert!(matches!(engine.append("t", 0, batch(pid, 0, 93)).await, Err(Error::OutOfOrderSequence { .. })));
    assert_eq!(engine.append("t", 0, batch(pid, 0, 90)).await.unwrap().base_offset, hw);
    assert!(seen.insert(engine.init_producer_id().await.unwrap()));
    engine.close().await.unwrap();

    // A read-only engine hands out none.
    let reader = Engine::open_reader(cfg).await.unwrap();
    assert!(matches!(reader.init_producer_id().await, Err(Error::ReadOnly { .. })));
    reader.close().await.unwrap();
}
