//! One writer per partition, end to end: a stale writer that restarts never takes its partition
//! back silently (nor serves the records its disk holds at offsets the bucket holds differently),
//! a fresh data dir cannot create a second history of a topic the bucket holds, and a writer that
//! another engine took over stops acknowledging within its lease. Two engines share one local
//! bucket.

mod common;

use bytes::Bytes;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, Error, ManualClock, ObjectStoreConfig, TopicConfig};

const T0: i64 = 1_700_000_000_000;

fn batch(tag: &str, n: usize) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: vec![],
            timestamp: T0 + i as i64,
        })
        .collect();
    BatchBuilder::from_records(Compression::None, &recs)
}

/// A second node's config: its own data dir, the same bucket as `common::config(root)`.
fn second_node(root: &std::path::Path, name: &str) -> EngineConfig {
    let mut c = common::config(root);
    c.data_dir = root.join(name);
    c.object_store = Some(ObjectStoreConfig::Local { path: root.join("bucket") });
    c
}

/// The values of every record from `from` to the end, across both tiers.
async fn values(engine: &Engine, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = engine.read("t", 0, offset, 1 << 20).await.unwrap();
        let Some(next) = r.next_offset() else { break };
        for rec in r.records().unwrap() {
            if rec.offset >= offset {
                out.push((rec.offset, String::from_utf8(rec.value.unwrap().to_vec()).unwrap()));
            }
        }
        offset = next;
    }
    out
}

#[tokio::test]
async fn a_stale_writer_that_restarts_refuses_its_partition_until_told_and_then_continues_the_buckets_history() {
    let root = tempfile::tempdir().unwrap();
    let a_cfg = common::config(root.path());
    let a = Engine::open(a_cfg.clone()).await.unwrap();
    a.create_topic("t", common::topic(None)).await.unwrap();
    a.append("t", 0, batch("a", 10)).await.unwrap();
    a.roll("t", 0).await.unwrap();
    a.tier_now("t", 0).await.unwrap(); // the bucket holds [0, 10)
    a.append("t", 0, batch("a-local", 5)).await.unwrap(); // [10, 15) only on A's disk
    a.close().await.unwrap();

    // B restores from the bucket and writes [10, 13) with other records.
    let mut b_cfg = second_node(root.path(), "b");
    b_cfg.restore = true;
    let b = Engine::open(b_cfg).await.unwrap();
    assert_eq!(b.append("t", 0, batch("b", 3)).await.unwrap().base_offset, 10);
    b.roll("t", 0).await.unwrap();
    b.tier_now("t", 0).await.unwrap();
    let b_epoch = b.remote_head("t", 0).unwrap().epoch;
    let history = values(&b, 0).await;
    b.close().await.unwrap();

    // A restarts: it must neither take the partition back nor serve its own [10, 15).
    let a = Engine::open(a_cfg.clone()).await.unwrap();
    let err = a.append("t", 0, batch("a-again", 1)).await.unwrap_err();
    assert!(matches!(&err, Error::PartitionUnavailable { reason, .. } if reason.contains("take_over")), "{err}");
    let d = a.describe_topic("t").unwrap();
    assert!(d.partitions[0].refused.is_some());
    assert_eq!(a.remote_head("t", 0).unwrap().epoch, b_epoch, "A bumped no epoch");
    assert_eq!(values(&a, 0).await, history, "A serves the bucket's history, not its own disk");
    let problems = a.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!((problems[0].topic.as_str(), problems[0].partition, problems[0].state), ("t", 0, "refused"));
    // /health says so: 503, naming the partition and the reason.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tierlog::server::serve(a.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["partitions"][0]["state"], "refused");
    assert!(body["partitions"][0]["reason"].as_str().unwrap().contains("restore"), "{body}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    a.close().await.unwrap();

    // Told to, A takes it back: its local copy goes, and it continues the bucket's history.
    let mut a_cfg = a_cfg;
    a_cfg.take_over = true;
    let a = Engine::open(a_cfg).await.unwrap();
    assert_eq!(a.append("t", 0, batch("a-after", 2)).await.unwrap().base_offset, 13);
    let mut expected = history.clone();
    expected.extend([(13, "a-after-0".to_owned()), (14, "a-after-1".to_owned())]);
    assert_eq!(values(&a, 0).await, expected);
    assert!(a.remote_head("t", 0).unwrap().epoch > b_epoch);
    a.close().await.unwrap();
}

#[tokio::test]
async fn creating_a_topic_the_bucket_holds_fails_and_fences_nobody() {
    let root = tempfile::tempdir().unwrap();
    let a = Engine::open(common::config(root.path())).await.unwrap();
    a.create_topic("t", common::topic(None)).await.unwrap();
    a.append("t", 0, batch("a", 4)).await.unwrap();
    let epoch = a.remote_head("t", 0).unwrap().epoch;

    let fresh = Engine::open(second_node(root.path(), "fresh")).await.unwrap();
    let err = fresh.create_topic("t", TopicConfig::default()).await.unwrap_err();
    assert!(matches!(err, Error::TopicExists { in_bucket: true, .. }), "{err}");
    assert!(err.to_string().contains("restore"), "{err}");
    assert!(fresh.list_topics().is_empty());
    fresh.close().await.unwrap();

    // The real writer was not fenced and keeps its history.
    assert_eq!(a.remote_head("t", 0).unwrap().epoch, epoch);
    assert_eq!(a.append("t", 0, batch("a", 1)).await.unwrap().base_offset, 4);
    a.roll("t", 0).await.unwrap();
    a.tier_now("t", 0).await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test]
async fn a_writer_taken_over_stops_acknowledging_within_its_lease() {
    let root = tempfile::tempdir().unwrap();
    let mut a_cfg = common::config(root.path());
    a_cfg.lease_ms = 1_000;
    let clock = ManualClock::new(T0);
    let a = Engine::open_with_clock(a_cfg, clock.clone()).await.unwrap();
    a.create_topic("t", common::topic(None)).await.unwrap();
    a.append("t", 0, batch("a", 3)).await.unwrap();
    // Within the lease no request is made; past it, one conditional GET renews it.
    let gets = a.object_store_counts().gets();
    a.append("t", 0, batch("a", 1)).await.unwrap();
    assert_eq!(a.object_store_counts().gets(), gets);
    clock.advance(1_000);
    a.append("t", 0, batch("a", 1)).await.unwrap();
    a.append("t", 0, batch("a", 1)).await.unwrap();
    assert_eq!(a.object_store_counts().gets(), gets + 1, "one GET renews the lease for the next second");

    // B takes the partition over (a restore into its own data dir).
    let mut b_cfg = second_node(root.path(), "b");
    b_cfg.restore = true;
    let b = Engine::open(b_cfg).await.unwrap();
    // A may still acknowledge until its lease runs out, and not after.
    clock.advance(999);
    a.append("t", 0, batch("a", 1)).await.unwrap();
    clock.advance(1);
    let err = a.append("t", 0, batch("a", 1)).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { .. }), "{err}");
    // Fenced for good: no more requests to find that out.
    let gets = a.object_store_counts().gets();
    assert!(matches!(a.append("t", 0, batch("a", 1)).await, Err(Error::Fenced { .. })));
    assert_eq!(a.object_store_counts().gets(), gets);
    b.close().await.unwrap();
    a.close().await.unwrap();
}

#[tokio::test]
async fn a_reader_engine_reads_both_tiers_and_writes_nothing_to_the_bucket() {
    let root = tempfile::tempdir().unwrap();
    let cfg = common::config(root.path());
    let a = Engine::open(cfg.clone()).await.unwrap();
    a.create_topic("t", common::topic(Some(1))).await.unwrap();
    let model = common::produce(&a, "t", 60, 3).await;
    a.roll("t", 0).await.unwrap();
    a.tier_now("t", 0).await.unwrap();
    let head = a.remote_head("t", 0).unwrap();
    a.close().await.unwrap();

    let r = Engine::open_reader(cfg.clone()).await.unwrap();
    let got: Vec<(i64, String)> = values(&r, 0).await;
    assert_eq!(got.len(), model.len());
    assert!(got.iter().zip(&model).all(|((o, v), (mo, _, mv))| o == mo && v.as_bytes() == &mv[..]));
    r.offset_for_time("t", 0, tierlog::OffsetSpec::Timestamp(T0 + 500)).await.unwrap();
    let mut state = r.state_at("t", tierlog::StateSpec::new(tierlog::At::Time(T0 + 3_000))).await.unwrap();
    while state.next().await.unwrap().is_some() {}
    let d = r.describe_topic("t").unwrap();
    assert_eq!(d.partitions[0].high_watermark, model.len() as i64);
    assert!(matches!(r.append("t", 0, batch("r", 1)).await, Err(Error::ReadOnly { .. })));
    assert!(matches!(r.create_topic("u", TopicConfig::default()).await, Err(Error::ReadOnly { .. })));
    let c = r.object_store_counts();
    assert_eq!((c.put, c.multipart_part, c.multipart_control, c.delete, c.copy), (0, 0, 0, 0, 0), "{c:?}");
    assert_eq!(r.remote_head("t", 0).unwrap().epoch, head.epoch, "no take-over");
    r.close().await.unwrap();

    // The writer reopens as the owner it was.
    let a = Engine::open(cfg).await.unwrap();
    assert_eq!(a.append("t", 0, batch("a", 1)).await.unwrap().base_offset, model.len() as i64);
    a.close().await.unwrap();
}
