//! The Engine's public API end to end: bad input gets a typed error and writes nothing; topics,
//! configs and data survive a reopen; one engine per data dir; nothing works after close.

use bytes::Bytes;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, Error, ErrorKind, OffsetSpec, TopicConfig};

fn records(n: usize, ts: i64) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}-{}", "v".repeat(40)))),
            headers: vec![],
            timestamp: ts + i as i64,
        })
        .collect()
}

fn good_batch() -> Vec<u8> {
    BatchBuilder::from_records(Compression::None, &records(5, 1_000)).to_vec()
}

fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Every kind of bad batch the append path must refuse.
fn bad_batches() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut b = good_batch();
    b[80] ^= 1;
    out.push(("corrupt CRC", b));
    let b = good_batch();
    out.push(("truncated", b[..b.len() - 7].to_vec()));
    out.push(("only a header fragment", b[..30].to_vec()));
    let mut b = good_batch();
    b[16] = 0;
    out.push(("wrong magic", b));
    let mut b = good_batch();
    let len = i32::from_be_bytes(b[8..12].try_into().unwrap());
    b[8..12].copy_from_slice(&(len + 100).to_be_bytes());
    out.push(("length says more than is there", b));
    let mut b = good_batch();
    b.extend_from_slice(&[0; 10]);
    out.push(("trailing bytes past the length", b));
    let mut b = good_batch();
    b[57..61].copy_from_slice(&9i32.to_be_bytes());
    b[23..27].copy_from_slice(&8i32.to_be_bytes());
    fix_crc(&mut b);
    out.push(("record count does not match (CRC fixed up)", b));
    let mut b = good_batch();
    b[57..61].copy_from_slice(&(-3i32).to_be_bytes());
    fix_crc(&mut b);
    out.push(("negative record count", b));
    let mut b = good_batch();
    b[61] = 0x7f; // first record's length varint now lies
    fix_crc(&mut b);
    out.push(("record length that lies (CRC fixed up)", b));
    out.push(("empty", Vec::new()));
    // Sound CRC, count and lastOffsetDelta, but record offset deltas that repeat or jump: replay
    // would emit duplicate or out-of-order offsets.
    for (what, deltas) in [("offset deltas 0,0,0", [0, 0, 0]), ("offset deltas 0,5,2", [0, 5, 2])] {
        let mut b = BatchBuilder::new(Compression::None);
        for (d, r) in deltas.iter().zip(records(3, 1_000)) {
            b.push_at(&r, *d);
        }
        b.set_span(2, 1_002);
        out.push((what, b.build().to_vec()));
    }
    out
}

#[tokio::test]
async fn bad_input_gets_typed_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
    engine.create_topic("events", TopicConfig { partitions: 2, ..Default::default() }).await.unwrap();
    let seg = dir.path().join("events-0").join(format!("{:020}.log", 0));

    for (what, bytes) in bad_batches() {
        let err = engine.append("events", 0, Bytes::from(bytes)).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidBatch { ref topic, partition: 0, .. } if topic == "events"),
            "{what}: {err}"
        );
        assert_eq!(err.kind(), ErrorKind::Invalid, "{what}");
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), 0, "{what}: nothing written");
        assert_eq!(engine.offset_for_time("events", 0, OffsetSpec::Latest).await.unwrap().unwrap().offset, 0);
    }

    let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    for name in ["../x", "", &"a".repeat(250), ".", "..", "a/b", "naïve"] {
        let err = engine.create_topic(name, TopicConfig::default()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidTopicName { .. }), "{name:?}: {err}");
    }
    let err = engine.create_topic("ok", TopicConfig { partitions: 0, ..Default::default() }).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "partitions"), "{err}");
    let mut bad = TopicConfig::default();
    bad.log.segment_bytes = 10;
    let err = engine.create_topic("ok", bad).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "log.segment_bytes"), "{err}");
    let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "rejected topics leave no trace");
    assert!(matches!(engine.create_topic("events", TopicConfig::default()).await, Err(Error::TopicExists { .. })));

    let good = Bytes::from(good_batch());
    let err = engine.append("nope", 0, good.clone()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }) && err.kind() == ErrorKind::NotFound);
    let err = engine.append("events", 2, good.clone()).await.unwrap_err();
    assert!(matches!(err, Error::UnknownPartition { partition: 2, partitions: 2, .. }), "{err}");
    assert!(matches!(engine.read("events", 7, 0, 100).await, Err(Error::UnknownPartition { .. })));

    // A good batch after all that lands at offset 0; reads out of range are typed errors.
    let at = engine.append("events", 0, good).await.unwrap();
    assert_eq!((at.base_offset, at.last_offset), (0, 4));
    for offset in [-1, 6, i64::MAX] {
        let err = engine.read("events", 0, offset, 100).await.unwrap_err();
        assert!(matches!(err, Error::OffsetOutOfRange { start: 0, end: 5, .. }), "{offset}: {err}");
    }
    assert!(engine.read("events", 0, 5, 100).await.unwrap().batches.is_empty());
    engine.close().await.unwrap();
}

#[tokio::test]
async fn topics_configs_and_data_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
    let mut cfg = TopicConfig { partitions: 3, ..Default::default() };
    cfg.log.segment_bytes = 4096;
    cfg.log.durability = tierlog::Durability::Interval { ms: 5 };
    engine.create_topic("a.b-c_d", cfg.clone()).await.unwrap();
    engine.create_topic("other", TopicConfig::default()).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..150 {
        let recs = records(3, 10_000 + i * 10);
        let batch = BatchBuilder::from_records(Compression::ALL[i as usize % 5], &recs);
        let at = engine.append("a.b-c_d", (i % 3) as u32, batch).await.unwrap();
        sent.push(((i % 3) as u32, at.base_offset, recs));
    }
    engine.close().await.unwrap();
    assert!(matches!(engine.append("other", 0, Bytes::from(good_batch())).await, Err(Error::Closed { .. })));

    let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
    assert_eq!(engine.list_topics(), vec!["a.b-c_d".to_string(), "other".to_string()]);
    let d = engine.describe_topic("a.b-c_d").unwrap();
    assert_eq!(d.config, cfg);
    assert!(d.partitions.iter().all(|p| p.high_watermark == 150));
    assert!(d.partitions[0].segments.len() > 1, "small segments rolled");
    for (p, base, recs) in &sent {
        let r = engine.read("a.b-c_d", *p, *base, 1).await.unwrap();
        let got: Vec<Record> = r.records().unwrap().into_iter().map(Record::from).collect();
        assert_eq!(&got, recs);
    }
    let t = engine.offset_for_time("a.b-c_d", 1, OffsetSpec::Timestamp(10_000 + 4 * 10)).await.unwrap().unwrap();
    assert_eq!((t.offset, t.timestamp), (3, 10_040));
    let at = engine.append("a.b-c_d", 1, Bytes::from(good_batch())).await.unwrap();
    assert_eq!(at.base_offset, 150);
    engine.close().await.unwrap();
}

#[tokio::test]
async fn one_engine_per_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
    let err = Engine::open(EngineConfig::new(dir.path())).await.unwrap_err();
    assert!(matches!(err, Error::DataDirLocked { .. }), "{err}");
    engine.close().await.unwrap();
    let again = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
    again.close().await.unwrap();
}

#[tokio::test]
async fn pipelined_appends_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
    engine.create_topic("t", TopicConfig::default()).await.unwrap();
    let mut tickets = Vec::new();
    for i in 0..200 {
        let b = BatchBuilder::from_records(Compression::None, &records(2, i));
        tickets.push(engine.enqueue_append("t", 0, b).await.unwrap());
    }
    for (i, t) in tickets.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().base_offset, 2 * i as i64);
    }
    engine.close().await.unwrap();
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A machine crash can lose segment writes that were never fsynced. Groups that span several
/// partitions are made durable by the disk journal instead, so every acknowledged batch must come
/// back from it: here the copy of a live data dir loses everything past each partition's recovery
/// checkpoint (cut at a random byte, mid-batch included) and is reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_restores_acknowledged_batches_whose_segment_writes_were_lost() {
    lost_segment_writes(128 << 20, 50).await;
}

/// The same with 1 MiB journal files and ~6 MB of appends: several rotations (segments fsynced in
/// the background, old journal files deleted) happen before the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_rotation_never_forgets_unsynced_batches() {
    lost_segment_writes(1 << 20, 3000).await;
}

async fn lost_segment_writes(journal_file_bytes: u64, value_bytes: usize) {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let mut cfg = EngineConfig::new(&live);
    cfg.writer.journal_min_partitions = 2;
    cfg.writer.journal_file_bytes = journal_file_bytes;
    let clock = tierlog::ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_clock(cfg.clone(), clock.clone()).await.unwrap();
    engine.create_topic("j", TopicConfig { partitions: 4, ..Default::default() }).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let mut recs = records(1 + (i % 4) as usize, (t * 1000 + i) as i64);
                for r in &mut recs {
                    // Random bytes, so compression does not shrink what the journal carries.
                    let mut rng = rand::rngs::SmallRng::seed_from_u64((t * 1000 + i) as u64);
                    r.value = Some(Bytes::from((0..value_bytes).map(|_| rng.random::<u8>()).collect::<Vec<u8>>()));
                }
                let batch = BatchBuilder::from_records(Compression::ALL[(i % 5) as usize], &recs);
                let at = engine.append("j", t % 4, batch).await.unwrap();
                acked.push((t % 4, at.base_offset, recs));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let wal: u64 = std::fs::read_dir(live.join("journal")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(wal > 0, "multi-partition groups went through the journal");
    let newest_journal: u64 = std::fs::read_dir(live.join("journal"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
        .max()
        .unwrap();
    if journal_file_bytes < (2 << 20) {
        assert!(newest_journal >= 2, "the journal rotated (newest file {newest_journal})");
    }

    // Let each partition checkpoint exactly what is fsynced in its segment (journaled bytes are
    // not), then copy the live dir (page cache included) and lose everything past the checkpoints.
    clock.advance(60_000);
    engine.tick().await.unwrap();
    let copy = dir.path().join("copy");
    copy_dir(&live, &copy);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let mut cut_any = false;
    for p in 0..4 {
        let pdir = copy.join(format!("j-{p}"));
        let text = std::fs::read_to_string(pdir.join("recovery-checkpoint")).unwrap();
        let parts: Vec<&str> = text.split(' ').collect();
        let (base, pos): (i64, u64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        let seg = pdir.join(format!("{base:020}.log"));
        let len = std::fs::metadata(&seg).unwrap().len();
        if len > pos {
            let keep = rng.random_range(pos..len);
            std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(keep).unwrap();
            cut_any = true;
        }
    }
    assert!(cut_any, "some segment bytes were past the checkpoint, so only the journal held them");
    engine.close().await.unwrap();

    let restored = Engine::open(EngineConfig::new(&copy)).await.unwrap();
    for (p, base, recs) in &acked {
        let r = restored.read("j", *p, *base, 1).await.unwrap();
        let got: Vec<Record> = r.records().unwrap().into_iter().map(Record::from).collect();
        assert_eq!(&got, recs, "partition {p} offset {base}");
    }
    for p in 0..4 {
        assert_eq!(
            restored.offset_for_time("j", p, OffsetSpec::Latest).await.unwrap().unwrap().offset,
            4 * 40 * 10 / 4
        );
    }
    // The replayed bytes are in the segments now: the journal was emptied, and appends continue.
    let at = restored.append("j", 0, Bytes::from(good_batch())).await.unwrap();
    assert_eq!(at.base_offset, 400);
    restored.close().await.unwrap();
}
