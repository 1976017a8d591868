//! The remote tier end to end through the Engine: one conformance suite for reads and time lookups,
//! run on the local tier and on the remote tier (local-directory bucket and SeaweedFS); GET counts
//! of cold lookups; corrupt objects; remote retention with deferred deletes; fencing of a second
//! writer; scan resistance of the cache; read-ahead across segment boundaries; concurrent misses
//! sharing one GET; quiet partitions tiering by segment age.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Model, config, eventually, eventually_advancing, produce, s3_config, topic};
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::object_store::{ObjectStore, ObjectStoreExt};
use tierlog::{Engine, EngineConfig, Error, ManualClock, OffsetSpec, TopicConfig};

/// The conformance suite: whatever tier serves them, reads and time lookups match the model.
async fn conformance(engine: &Engine, topic: &str, model: &Model) {
    let hw = model.last().unwrap().0 + 1;
    let start = model[0].0;
    // Consume everything with several fetch sizes.
    for max in [1usize, 5_000, 300_000] {
        let (mut off, mut got) = (start, Vec::new());
        while off < hw {
            let r = engine.read(topic, 0, off, max).await.unwrap();
            assert_eq!(r.high_watermark, hw);
            let recs = r.records().unwrap();
            assert!(!recs.is_empty(), "read at {off} returned nothing");
            got.extend(recs.into_iter().filter(|v| v.offset >= off).map(|v| (v.offset, v.timestamp, v.value.unwrap())));
            off = r.next_offset().unwrap();
        }
        assert_eq!(&got, model, "consume with max_bytes {max}");
    }
    // Reads starting in the middle of batches.
    for (o, ts, v) in model.iter().step_by(61) {
        let r = engine.read(topic, 0, *o, 1).await.unwrap();
        let recs = r.records().unwrap();
        let hit = recs.iter().find(|x| x.offset == *o).expect("the batch holding the offset");
        assert_eq!((hit.timestamp, hit.value.as_ref().unwrap()), (*ts, v));
    }
    // Time lookups: the first offset whose timestamp is >= t.
    let (lo, hi) = (model.iter().map(|m| m.1).min().unwrap(), model.iter().map(|m| m.1).max().unwrap());
    for t in (lo - 5..=hi + 5).step_by(97) {
        let want = model.iter().find(|m| m.1 >= t).map(|m| (m.0, m.1));
        let got = engine.offset_for_time(topic, 0, OffsetSpec::Timestamp(t)).await.unwrap();
        assert_eq!(got.map(|g| (g.offset, g.timestamp)), want, "offset_for_time({t})");
    }
    let earliest = engine.offset_for_time(topic, 0, OffsetSpec::Earliest).await.unwrap().unwrap();
    assert_eq!(earliest.offset, start);
    let latest = engine.offset_for_time(topic, 0, OffsetSpec::Latest).await.unwrap().unwrap();
    assert_eq!(latest.offset, hw);
    let err = engine.read(topic, 0, hw + 1, 1000).await.unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    let err = engine.read(topic, 0, -1, 1000).await.unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
}

/// Produces the same data to a topic that keeps everything locally and to one whose local copy
/// is deleted once tiered, then runs the suite on both, and again on a reopened engine (cold cache).
async fn local_and_remote_agree(mut cfg: EngineConfig) {
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("hot", topic(None)).await.unwrap();
    engine.create_topic("cold", topic(Some(1))).await.unwrap();
    let model = produce(&engine, "hot", 1500, 1).await;
    let model2 = produce(&engine, "cold", 1500, 1).await;
    assert_eq!(model, model2);
    engine.roll("cold", 0).await.unwrap();
    // (The background uploader, woken by every roll, may have done part of this already.)
    engine.tier_now("cold", 0).await.unwrap();
    assert!(engine.remote_head("cold", 0).unwrap().totals.segments > 10);
    engine.tier_now("hot", 0).await.unwrap();
    let d = engine.describe_topic("cold").unwrap();
    let p = &d.partitions[0];
    assert_eq!(p.remote.next_offset, p.high_watermark, "everything sealed is in the bucket");
    assert!(p.segments.len() == 1, "only the active segment stays local: {:?}", p.segments.len());
    assert_eq!(p.log_start_offset, 0);
    let hot = &engine.describe_topic("hot").unwrap().partitions[0];
    assert!(hot.segments.len() > 10, "without local retention the local copy stays");
    conformance(&engine, "hot", &model).await;
    conformance(&engine, "cold", &model).await;
    engine.close().await.unwrap();
    cfg.tiering.cache.memory_bytes = 1 << 20; // smaller than the data: evictions on the way
    let engine = Engine::open(cfg).await.unwrap();
    conformance(&engine, "cold", &model).await;
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_remote_reads_agree_local_bucket() {
    let dir = tempfile::tempdir().unwrap();
    local_and_remote_agree(config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_remote_reads_agree_s3() {
    let dir = tempfile::tempdir().unwrap();
    local_and_remote_agree(s3_config(dir.path(), "agree")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_offset_for_time_costs_at_most_three_gets() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.manifest_chunk_segments = 2; // old segments live in manifest chunks
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", topic(Some(1))).await.unwrap();
    let model = produce(&engine, "t", 1500, 3).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    assert!(engine.remote_head("t", 0).unwrap().chunks.len() >= 4);
    engine.close().await.unwrap();

    for (k, probe) in [model[100].1, model[model.len() / 2].1, model[model.len() - 50].1].into_iter().enumerate() {
        // A fresh engine: nothing cached but the manifest head it loads when it opens.
        let engine = Engine::open(cfg.clone()).await.unwrap();
        let want = model.iter().find(|m| m.1 >= probe).map(|m| m.0);
        let before = engine.object_store_counts();
        let got = engine.offset_for_time("t", 0, OffsetSpec::Timestamp(probe)).await.unwrap();
        let cold = engine.object_store_counts().since(&before);
        assert_eq!(got.map(|g| g.offset), want);
        assert!(cold.gets() <= 3, "probe {k}: a cold lookup made {} GETs: {cold:?}", cold.gets());
        assert!(cold.gets() >= 2, "probe {k}: index and segment at least: {cold:?}");
        let before = engine.object_store_counts();
        let again = engine.offset_for_time("t", 0, OffsetSpec::Timestamp(probe)).await.unwrap();
        let warm = engine.object_store_counts().since(&before);
        assert_eq!(again, got);
        assert_eq!(warm.gets(), 0, "a warm lookup is served from memory: {warm:?}");
        engine.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_object_is_an_error_never_data() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", topic(Some(1))).await.unwrap();
    produce(&engine, "t", 300, 5).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    let head = engine.remote_head("t", 0).unwrap();
    let first = head.segments.first().cloned().unwrap();
    engine.close().await.unwrap();
    // Flip one byte in the middle of the first segment object.
    let keys = tierlog::remote::keys::PartitionKeys::new("t", 0);
    let path = dir.path().join("bucket").join(first.segment_key(&keys).as_ref());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let engine = Engine::open(cfg).await.unwrap();
    let mut off = 0;
    let err = loop {
        match engine.read("t", 0, off, 4096).await {
            Ok(r) => off = r.next_offset().unwrap(),
            Err(e) => break e,
        }
        assert!(off < first.next_offset, "read past the corrupt byte without an error");
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    // The corrupt bytes are in the cache now (fetched by read-ahead, verified as they arrived):
    // a second read, with the chunks cached, is still an error.
    let again = engine.read("t", 0, off, 4096).await.unwrap_err();
    assert!(matches!(again, Error::Corrupt { .. }), "{again}");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_local_batch_the_bucket_holds_is_read_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", topic(None)).await.unwrap();
    let model = produce(&engine, "t", 300, 9).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    let d = engine.describe_topic("t").unwrap();
    let seg = d.partitions[0].segments[1].clone();
    assert!(seg.sealed && seg.next_offset <= d.partitions[0].remote.next_offset);
    engine.close().await.unwrap();
    // Flip a byte in the middle of a sealed local segment that the bucket also holds.
    let mut bytes = std::fs::read(&seg.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x08;
    std::fs::write(&seg.path, &bytes).unwrap();

    let engine = Engine::open(cfg).await.unwrap();
    let (mut off, mut got) = (0, Vec::new());
    let hw = model.last().unwrap().0 + 1;
    while off < hw {
        let r = engine.read("t", 0, off, 4096).await.unwrap();
        got.extend(
            r.records()
                .unwrap()
                .into_iter()
                .filter(|v| v.offset >= off)
                .map(|v| (v.offset, v.timestamp, v.value.unwrap())),
        );
        off = r.next_offset().unwrap();
    }
    assert_eq!(got, model, "every record, the damaged ones from the bucket");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_retention_drops_then_deletes_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.delete_grace_ms = 60_000;
    let clock = ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_clock(cfg.clone(), clock.clone()).await.unwrap();
    let mut t = topic(Some(1));
    t.log.remote_retention_bytes = Some(256 << 10);
    engine.create_topic("t", t).await.unwrap();
    let model = produce(&engine, "t", 1500, 7).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    let head = engine.remote_head("t", 0).unwrap();
    assert!(head.totals.bytes <= 256 << 10, "{:?}", head.totals);
    assert!(head.log_start_offset > 0);
    let start = head.log_start_offset;
    // Dropped from the log at once...
    let err = engine.read("t", 0, start - 1, 100).await.unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { start: s, .. } if s == start), "{err}");
    let r = engine.read("t", 0, start, 100).await.unwrap();
    assert_eq!(r.records().unwrap()[0].offset, start);
    assert_eq!(engine.offset_for_time("t", 0, OffsetSpec::Earliest).await.unwrap().unwrap().offset, start);
    // ...but the objects stay for the grace period.
    let store = engine.object_store();
    let pending = head.pending_deletes.clone();
    assert!(!pending.is_empty());
    for p in &pending {
        store.head(&p.key.as_str().into()).await.unwrap();
    }
    clock.advance(61_000);
    engine.tier_now("t", 0).await.unwrap();
    for p in &pending {
        let r = store.head(&p.key.as_str().into()).await;
        assert!(matches!(r, Err(tierlog::object_store::Error::NotFound { .. })), "{} still there", p.key);
    }
    assert!(engine.remote_head("t", 0).unwrap().pending_deletes.is_empty());
    let tail: Model = model.into_iter().filter(|m| m.0 >= start).collect();
    let mut off = start;
    let mut got = Vec::new();
    while off < tail.last().unwrap().0 + 1 {
        let r = engine.read("t", 0, off, 100_000).await.unwrap();
        got.extend(r.records().unwrap().into_iter().map(|v| (v.offset, v.timestamp, v.value.unwrap())));
        off = r.next_offset().unwrap();
    }
    assert_eq!(got, tail);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_fences_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_a = config(dir.path());
    let mut cfg_b = config(dir.path());
    cfg_b.data_dir = dir.path().join("data-b");
    let a = Engine::open(cfg_a).await.unwrap();
    a.create_topic("t", topic(None)).await.unwrap();
    produce(&a, "t", 200, 9).await;
    a.roll("t", 0).await.unwrap();
    a.tier_now("t", 0).await.unwrap();
    let epoch_a = a.remote_head("t", 0).unwrap().epoch;
    // B takes the partition over in the same bucket (a restore into its own data dir).
    cfg_b.restore = true;
    let b = Engine::open(cfg_b).await.unwrap();
    assert_eq!(b.remote_head("t", 0).unwrap().epoch, epoch_a + 1);
    produce(&a, "t", 200, 10).await;
    a.roll("t", 0).await.unwrap();
    let err = a.tier_now("t", 0).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { epoch, current, .. } if epoch == epoch_a && current == epoch_a + 1), "{err}");
    // A stops: its appends fail and say why; its uploads stop.
    let err = a.append("t", 0, BatchBuilder::from_records(Compression::None, &[Record::default()])).await.unwrap_err();
    assert!(err.to_string().contains("fenced"), "{err}");
    let desc = a.describe_topic("t").unwrap();
    assert!(desc.partitions[0].fenced.is_some());
    // The bucket's manifest is B's and is consistent: every referenced object exists.
    let store = b.object_store();
    let head = tierlog::remote::Manifest::load(store.clone(), "t", 0, 256).await.unwrap();
    let h = head.head();
    assert_eq!(h.epoch, epoch_a + 1);
    let keys = tierlog::remote::keys::PartitionKeys::new("t", 0);
    for e in &h.segments {
        store.head(&e.segment_key(&keys)).await.unwrap();
        store.head(&e.index_key(&keys)).await.unwrap();
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_replay_does_not_evict_what_others_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.cache.memory_bytes = 512 << 10; // 32 chunks of 16 KiB
    cfg.tiering.cache.chunk_bytes = 16 << 10;
    cfg.tiering.cache.read_ahead_bytes = 128 << 10;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", topic(Some(1))).await.unwrap();
    let model = produce(&engine, "t", 3000, 11).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    engine.close().await.unwrap();
    let engine = Engine::open(cfg).await.unwrap();
    // A point reader keeps reading a few offsets (a small working set).
    let hot: Vec<i64> = [10usize, 2000, 4000].iter().map(|&i| model[i].0).collect();
    for _ in 0..2 {
        for &o in &hot {
            engine.read("t", 0, o, 1).await.unwrap();
        }
    }
    let before = engine.object_store_counts();
    for &o in &hot {
        engine.read("t", 0, o, 1).await.unwrap();
    }
    assert_eq!(engine.object_store_counts().since(&before).gets(), 0, "the working set is cached");
    // A replay of the whole partition, several times the cache.
    let remote_end = engine.remote_head("t", 0).unwrap().next_offset;
    let total = engine.remote_head("t", 0).unwrap().totals.bytes;
    assert!(total > 4 * (512 << 10), "replay {total} bytes");
    let mut off = 0;
    while off < remote_end {
        off = engine.read("t", 0, off, 64 << 10).await.unwrap().next_offset().unwrap();
    }
    let before = engine.object_store_counts();
    for &o in &hot {
        engine.read("t", 0, o, 1).await.unwrap();
    }
    let after = engine.object_store_counts().since(&before);
    assert_eq!(after.gets(), 0, "the replay evicted the working set: {after:?}");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_catalog_is_in_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    engine.create_topic("orders", topic(Some(4096))).await.unwrap();
    let store: Arc<dyn ObjectStore> = engine.object_store();
    assert_eq!(tierlog::remote::catalog::list(&store).await.unwrap(), vec!["orders".to_owned()]);
    let json = tierlog::remote::catalog::get(&store, "orders").await.unwrap().unwrap();
    let cfg: TopicConfig = serde_json::from_slice(&json).unwrap();
    assert_eq!(cfg, topic(Some(4096)));
    engine.close().await.unwrap();
}

/// Waits until the engine's request count has not moved for a while: background read-ahead done.
#[allow(clippy::disallowed_methods)] // waits for background requests to finish, in real time
async fn settle(engine: &Engine) {
    let mut last = engine.object_store_counts();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = engine.object_store_counts();
        if now == last {
            return;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_readers_read_ahead_into_the_next_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Two 64 KiB chunks ahead: past the end of a segment (one chunk each), the next two.
    cfg.tiering.cache.read_ahead_bytes = 128 << 10;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", topic(Some(1))).await.unwrap();
    let model = produce(&engine, "t", 400, 3).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    let head = engine.remote_head("t", 0).unwrap();
    assert!(head.segments.len() >= 7, "{} segments", head.segments.len());
    engine.close().await.unwrap();

    // A fresh engine (nothing cached) over a bucket that can be made to fail.
    let inner = cfg.object_store().build().unwrap();
    let faulty = Arc::new(tierlog::remote::faulty::FaultyStore::new(inner, Default::default()));
    let engine = Engine::open_with_store(cfg, tierlog::system_clock(), faulty.clone()).await.unwrap();
    let (s2, s3) = (head.segments[2].clone(), head.segments[3].clone());
    let before = engine.object_store_counts();
    // Read segments 0..=2 in small sequential reads.
    let mut off = head.segments[0].base_offset;
    while off < s2.next_offset {
        off = engine.read("t", 0, off, 2000).await.unwrap().next_offset().unwrap();
    }
    // The last read ended at the end of segment 2, so read-ahead holds the segments that start
    // within 128 KiB of it: 3, 4 and maybe more (the segments hold up to 64 KiB each).
    let mut reach = 3;
    let mut ahead = 0;
    while reach < head.segments.len() && ahead < 128 << 10 {
        ahead += head.segments[reach].size;
        reach += 1;
    }
    assert!(reach >= 5 && reach < head.segments.len(), "segments 3..{reach} read ahead of {}", head.segments.len());
    // That read-ahead (an index and a window each) runs in the background: wait for those GETs,
    // however slow the machine, then for the requests to finish.
    let want_gets = 2 * reach as u64;
    eventually("the read-ahead GETs", || engine.object_store_counts().since(&before).gets() >= want_gets).await;
    settle(&engine).await;
    // One index and one window (the whole segment, one chunk) each, for segments 0..reach: the
    // first read fetches segment 0, read-ahead the rest, and nothing is fetched twice.
    assert_eq!(engine.object_store_counts().since(&before).gets(), want_gets);

    // The bucket now fails every request: segments 3 and 4 were read ahead, so they read from
    // the cache.
    faulty.set(tierlog::remote::faulty::Faults { error_rate: 1.0, ..Default::default() });
    let s4 = head.segments[4].clone();
    let mut got = Vec::new();
    while off < s4.next_offset {
        let r = engine.read("t", 0, off, 2000).await.expect("segments 3 and 4 were read ahead");
        got.extend(r.records().unwrap().into_iter().filter(|v| v.offset >= off).map(|v| (v.offset, v.value.unwrap())));
        off = r.next_offset().unwrap();
    }
    let want: Vec<(i64, Bytes)> =
        model.iter().filter(|m| m.0 >= s3.base_offset && m.0 < off).map(|m| (m.0, m.2.clone())).collect();
    assert_eq!(got, want);
    // The segment past the read-ahead was not: its read fails, which shows the store really was
    // failing.
    let err = engine.read("t", 0, head.segments[reach].base_offset, 2000).await.unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err}");
    faulty.set(Default::default());
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_get() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", topic(Some(1))).await.unwrap();
    let model = produce(&engine, "t", 100, 9).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    engine.close().await.unwrap();

    let engine = Arc::new(Engine::open(cfg).await.unwrap());
    let probe = model[model.len() / 3].0;
    let before = engine.object_store_counts();
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.read("t", 0, probe, 100).await.unwrap().records().unwrap()[0].offset })
        })
        .collect();
    for r in readers {
        assert!(r.await.unwrap() <= probe);
    }
    let c = engine.object_store_counts().since(&before);
    // One GET of the segment's index and one of the chunk, shared by all.
    assert_eq!(c.gets(), 2, "16 concurrent readers of one batch: {c:?}");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_partitions_tier_by_segment_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.poll_ms = 50; // the background uploader, as deployed
    let clock = ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_clock(cfg, clock.clone()).await.unwrap();
    let mut t = topic(None);
    t.log.segment_bytes = 64 << 20; // never fills: only age seals it
    t.log.segment_ms = 60_000;
    engine.create_topic("t", t).await.unwrap();
    let model = produce(&engine, "t", 20, 5).await;
    let hw = model.last().unwrap().0 + 1;
    engine.tick().await.unwrap();
    assert_eq!(engine.remote_head("t", 0).unwrap().next_offset, 0, "nothing sealed yet");
    clock.advance(61_000);
    engine.tick().await.unwrap(); // seals the segment by age; the uploader takes it from there
    // The uploader looks every poll_ms of the engine's clock.
    eventually_advancing(&clock, 50, "the aged segment to be uploaded", || {
        engine.remote_head("t", 0).unwrap().next_offset == hw
    })
    .await;
    let head = engine.remote_head("t", 0).unwrap();
    assert_eq!((head.segments.len(), head.totals.records), (1, hw as u64));
    engine.close().await.unwrap();
}

/// Every load of a segment index or a manifest chunk checks the object against the size and
/// CRC-32C its manifest reference recorded: a byte flipped anywhere in either object (a Parquet
/// footer included) is a `Data` error naming the object, never a wrong answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_an_index_or_a_manifest_chunk_is_a_data_error_naming_the_object() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.manifest_chunk_segments = 2;
    cfg.compactor.enabled = false;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let t = TopicConfig { log: tierlog::LogConfig { segment_bytes: 16 << 10, ..topic(Some(1)).log }, ..topic(Some(1)) };
    engine.create_topic("t", t).await.unwrap();
    let model = produce(&engine, "t", 60, 3).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    let head = engine.remote_head("t", 0).unwrap();
    assert!(!head.chunks.is_empty(), "entries live in chunks");
    let first = engine.remote_segments_from("t", 0, 0).await.unwrap()[0].clone();
    assert!(first.index_crc32c.is_some());
    let keys = tierlog::remote::keys::PartitionKeys::new("t", 0);
    engine.close().await.unwrap();

    let bucket = dir.path().join("bucket");
    let index = bucket.join(first.index_key(&keys).as_ref());
    let chunk = bucket.join(head.chunks[0].key(&keys).as_ref());
    // A mid-segment offset: its position comes from the index.
    let (offset, _, value) =
        model.iter().find(|(o, _, _)| *o > first.base_offset && *o < first.next_offset).unwrap().clone();
    let replica_cfg = EngineConfig { data_dir: dir.path().join("replica"), read_only: true, ..cfg.clone() };
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    for object in [&index, &chunk] {
        let original = std::fs::read(object).unwrap();
        let name = object.file_name().unwrap().to_str().unwrap().to_owned();
        for round in 0..40 {
            // Half the flips land in the last 64 bytes: the Parquet footer and its length.
            let pos = if round % 2 == 0 {
                rng.random_range(0..original.len())
            } else {
                original.len() - 1 - rng.random_range(0..64.min(original.len()))
            };
            let mut bad = original.clone();
            bad[pos] ^= 1 << rng.random_range(0..8);
            std::fs::write(object, &bad).unwrap();
            let replica = Engine::open(replica_cfg.clone()).await.unwrap();
            match replica.read("t", 0, offset, 1 << 20).await {
                Err(e) => {
                    assert_eq!(e.kind(), tierlog::ErrorKind::Data, "{name} byte {pos}: {e}");
                    assert!(e.to_string().contains(&name), "{name} byte {pos}: {e}");
                }
                Ok(r) => {
                    panic!("{name} byte {pos} flipped, and the read answered {} records", r.records().unwrap().len())
                }
            }
            replica.close().await.unwrap();
            let _ = std::fs::remove_dir_all(dir.path().join("replica"));
        }
        std::fs::write(object, &original).unwrap();
    }
    // Intact again: the record reads.
    let replica = Engine::open(replica_cfg).await.unwrap();
    let got = replica.read("t", 0, offset, 1 << 20).await.unwrap().records().unwrap();
    assert!(got.iter().any(|r| r.value.as_ref() == Some(&value)));
    replica.close().await.unwrap();
}
