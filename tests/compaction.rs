//! Key compaction and merging end to end, through the engine: the latest record per key survives
//! in both tiers with its offset unchanged, tombstones go after `delete_retention_ms`, state as of
//! any offset at or after the compaction point is what the uncompacted log gives (proptest), and
//! remote swaps against SeaweedFS lose nothing and leave no dangling reference while a reader runs
//! and the bucket fails in the middle of a swap, and `tierlog compact` processes killed with
//! SIGKILL at any moment leave both tiers whole.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::eventually_advancing;
use proptest::prelude::*;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{At, CleanupPolicy, CompactionConfig, Engine, EngineConfig, LogConfig, StateSpec, TopicConfig};

/// (offset, key, value) of every record appended; `None` is a tombstone.
type Log = Vec<(i64, Bytes, Option<Bytes>)>;

fn compact_topic(segment_bytes: u64, local_retention_bytes: Option<u64>) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        cleanup_policy: CleanupPolicy::Compact,
        log: LogConfig { segment_bytes, local_retention_bytes, ..Default::default() },
        compaction: CompactionConfig {
            delete_retention_ms: 0,
            min_dirty_ratio: 0.0,
            merge_target_bytes: 256 << 10,
            merge_min_segments: 2,
            snapshot_interval_ms: None,
            ..Default::default()
        },
    }
}

fn engine_config(dir: &std::path::Path) -> EngineConfig {
    let mut c = common::config(dir);
    c.compactor.enabled = false; // the tests call compact themselves
    c
}

/// Appends `ops` in batches of `per_batch`, with timestamps in the past (so tombstones are old).
async fn append(engine: &Engine, topic: &str, ops: &[(Bytes, Option<Bytes>)], per_batch: usize) -> Log {
    let mut log = Vec::new();
    for chunk in ops.chunks(per_batch.max(1)) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|(k, v)| Record { key: Some(k.clone()), value: v.clone(), headers: vec![], timestamp: 1_000 })
            .collect();
        let at = engine.append(topic, 0, BatchBuilder::from_records(Compression::Lz4, &records)).await.unwrap();
        for (i, (k, v)) in chunk.iter().enumerate() {
            log.push((at.base_offset + i as i64, k.clone(), v.clone()));
        }
    }
    log
}

/// The state the uncompacted log gives as of offset `at` (inclusive).
fn expected(log: &Log, at: i64) -> BTreeMap<Bytes, Bytes> {
    let mut m = BTreeMap::new();
    for (o, k, v) in log.iter().filter(|(o, ..)| *o <= at) {
        let _ = o;
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
    m
}

async fn state(engine: &Engine, topic: &str, at: i64) -> BTreeMap<Bytes, Bytes> {
    let spec = StateSpec { use_snapshots: false, ..StateSpec::new(At::Offset(at)) };
    let mut s = engine.state_at(topic, spec).await.unwrap();
    let mut m = BTreeMap::new();
    while let Some(e) = s.next().await.unwrap() {
        m.insert(e.key, e.value);
    }
    m
}

/// Every record the engine serves from `from` to the end, checked against the appended log:
/// offsets strictly increase, and every record is the one appended at its offset.
async fn read_all(engine: &Engine, topic: &str, from: i64, end: i64, log: &Log) -> Vec<i64> {
    let by_offset: BTreeMap<i64, (Bytes, Option<Bytes>)> =
        log.iter().map(|(o, k, v)| (*o, (k.clone(), v.clone()))).collect();
    let mut offsets = Vec::new();
    let mut at = from;
    while at < end {
        let r = engine.read(topic, 0, at, 64 << 10).await.unwrap();
        let next = r.next_offset().expect("a read below the end returns a batch");
        assert!(next > at, "reads advance");
        for rec in r.records().unwrap().into_iter().filter(|r| r.offset >= at) {
            assert!(offsets.last().is_none_or(|&l| rec.offset > l), "offsets increase");
            let (k, v) = &by_offset[&rec.offset];
            assert_eq!((rec.key.as_ref(), rec.value.as_ref()), (Some(k), v.as_ref()), "record at {}", rec.offset);
            offsets.push(rec.offset);
        }
        at = next;
    }
    offsets
}

/// A replica of `cfg`'s bucket: it reads the remote tier only.
async fn replica(cfg: &EngineConfig, dir: &std::path::Path) -> Engine {
    let c = EngineConfig { data_dir: dir.join("replica"), read_only: true, ..cfg.clone() };
    Engine::open(c).await.unwrap()
}

fn ops(n: usize, keys: u32, seed: u64) -> Vec<(Bytes, Option<Bytes>)> {
    (0..n)
        .map(|i| {
            let k = ((i as u64 * 2654435761 + seed) % keys as u64) as u32;
            let v = (i % 11 != 5).then(|| Bytes::from(format!("v{i}-{}", "x".repeat(i % 90))));
            (Bytes::from(format!("key-{k}")), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_record_per_key_in_both_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = engine_config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("accounts", compact_topic(8 << 10, None)).await.unwrap();
    let mut log = append(&engine, "accounts", &ops(3000, 150, 7), 20).await;
    engine.roll("accounts", 0).await.unwrap();
    engine.tier_now("accounts", 0).await.unwrap();
    let end = engine.remote_head("accounts", 0).unwrap().next_offset;
    let before = engine.remote_head("accounts", 0).unwrap();

    let done = engine.compact("accounts", None, None).await.unwrap();
    let (local, remote) = (done[0].local, done[0].remote);
    assert!(local.records_removed > 2000 && remote.records_removed > 2000, "{local:?} {remote:?}");
    assert_eq!((local.cleaned_to, remote.cleaned_to), (end, end));
    assert!(remote.segments_merged > 0, "small compacted segments were merged: {remote:?}");
    let head = engine.remote_head("accounts", 0).unwrap();
    assert_eq!((head.log_start_offset, head.next_offset), (before.log_start_offset, before.next_offset));
    assert!(
        head.totals.segments < before.totals.segments / 4,
        "{} -> {}",
        before.totals.segments,
        head.totals.segments
    );
    assert_eq!(head.compaction.cleaned_to, end);
    let status = engine.compaction_status("accounts", 0).unwrap();
    assert_eq!((status.local.cleaned_to, status.remote.cleaned_to), (end, end));

    // One record per key is left (tombstones are kept: they were not in a clean section yet), in
    // the local tier (the engine reads local segments first) and in the bucket (a replica).
    let keys: std::collections::BTreeSet<&Bytes> = log.iter().map(|(_, k, _)| k).collect();
    let local_offsets = read_all(&engine, "accounts", 0, end, &log).await;
    assert_eq!(local_offsets.len(), keys.len());
    let rep = replica(&cfg, dir.path()).await;
    assert_eq!(read_all(&rep, "accounts", 0, end, &log).await, local_offsets);
    assert_eq!(state(&engine, "accounts", end - 1).await, expected(&log, end - 1));
    assert_eq!(state(&rep, "accounts", end - 1).await, expected(&log, end - 1));
    rep.close().await.unwrap();

    // More writes, a second compaction: the old tombstones (now below the clean point and older
    // than delete_retention_ms = 0) go, and the state is still right.
    log.extend(append(&engine, "accounts", &ops(600, 150, 99), 10).await);
    engine.roll("accounts", 0).await.unwrap();
    engine.tier_now("accounts", 0).await.unwrap();
    let end2 = engine.remote_head("accounts", 0).unwrap().next_offset;
    engine.compact("accounts", None, None).await.unwrap();
    let want = expected(&log, end2 - 1);
    assert_eq!(state(&engine, "accounts", end2 - 1).await, want);
    let old_tombstones = log.iter().filter(|(o, _, v)| *o < end && v.is_none()).map(|(o, ..)| *o);
    let kept = read_all(&engine, "accounts", 0, end2, &log).await;
    for o in old_tombstones {
        assert!(!kept.contains(&o), "tombstone at {o} was dropped");
    }
    let rep = replica(&cfg, dir.path()).await;
    assert_eq!(state(&rep, "accounts", end2 - 1).await, want);
    assert_eq!(read_all(&rep, "accounts", 0, end2, &log).await, kept);
    rep.close().await.unwrap();
    engine.close().await.unwrap();

    // The compacted local segments survive a restart (recovery accepts their batches).
    let engine = Engine::open(cfg).await.unwrap();
    assert_eq!(state(&engine, "accounts", end2 - 1).await, want);
    assert_eq!(read_all(&engine, "accounts", 0, end2, &log).await, kept);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_are_merged_but_never_key_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(engine_config(dir.path())).await.unwrap();
    let topic = TopicConfig { cleanup_policy: CleanupPolicy::Delete, ..compact_topic(4 << 10, None) };
    engine.create_topic("events", topic).await.unwrap();
    let log = append(&engine, "events", &ops(800, 10, 1), 8).await;
    engine.roll("events", 0).await.unwrap();
    engine.tier_now("events", 0).await.unwrap();
    let before = engine.remote_head("events", 0).unwrap();
    let done = engine.compact("events", None, None).await.unwrap();
    assert_eq!((done[0].local.records_removed, done[0].remote.records_removed), (0, 0));
    let head = engine.remote_head("events", 0).unwrap();
    assert!(head.totals.segments < before.totals.segments, "merged");
    assert_eq!(head.totals.records, before.totals.records);
    let rep = replica(&engine_config(dir.path()), dir.path()).await;
    assert_eq!(read_all(&rep, "events", 0, head.next_offset, &log).await.len(), log.len());
    rep.close().await.unwrap();
    engine.close().await.unwrap();
    assert!(matches!(
        Engine::open(engine_config(dir.path())).await.unwrap().compact("nope", None, None).await,
        Err(tierlog::Error::UnknownTopic { .. })
    ));
}

/// One proptest case: append `ops` in three parts, with a roll (segment boundary) before each
/// index in `rolls`; compact after the first part and after the second (so tombstones of the
/// first expire), and not after the third. Then check state as of the end and of every offset at
/// or after the compaction point, in the local tier and in the bucket, and that every record left
/// is the one appended at its offset, offsets increasing.
fn check_case(ops: Vec<(u8, Option<u8>)>, per_batch: usize, rolls: Vec<usize>, splits: (usize, usize)) {
    let mut rolls = rolls;
    rolls.sort_unstable();
    rolls.dedup();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let cfg = engine_config(dir.path());
        let engine = Engine::open(cfg.clone()).await.unwrap();
        let mut topic = compact_topic(1 << 20, None);
        topic.compaction.merge_target_bytes = 64 << 10;
        engine.create_topic("t", topic).await.unwrap();
        let ops: Vec<(Bytes, Option<Bytes>)> = ops
            .into_iter()
            .map(|(k, v)| (Bytes::from(format!("k{k}")), v.map(|v| Bytes::from(format!("value-{v}")))))
            .collect();
        let a = splits.0.min(ops.len());
        let b = (a + splits.1).min(ops.len());
        let mut log = Log::new();
        for (base, part) in [(0, &ops[..a]), (a, &ops[a..b]), (b, &ops[b..])] {
            let mut start = 0;
            for &r in rolls.iter().filter(|&&r| r > base && r < base + part.len()) {
                log.extend(append(&engine, "t", &part[start..r - base], per_batch).await);
                engine.roll("t", 0).await.unwrap();
                start = r - base;
            }
            log.extend(append(&engine, "t", &part[start..], per_batch).await);
            engine.roll("t", 0).await.unwrap();
            engine.tier_now("t", 0).await.unwrap();
            if base < b {
                engine.compact("t", None, None).await.unwrap();
            }
        }
        let end = log.last().map_or(0, |l| l.0 + 1);
        let status = engine.compaction_status("t", 0).unwrap();
        assert_eq!(status.local.cleaned_to, status.remote.cleaned_to);
        let point = status.remote.cleaned_to;
        assert_eq!(point, b as i64, "everything sealed before the third part was compacted");
        let rep = replica(&cfg, dir.path()).await;
        for at in (point - 1).max(0)..end {
            let want = expected(&log, at);
            assert_eq!(state(&engine, "t", at).await, want, "local state at {at}");
            assert_eq!(state(&rep, "t", at).await, want, "remote state at {at}");
        }
        read_all(&engine, "t", 0, end, &log).await;
        read_all(&rep, "t", 0, end, &log).await;
        rep.close().await.unwrap();
        engine.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn compacted_partitions_replay_to_the_same_state(
        ops in proptest::collection::vec((0u8..6, proptest::option::weighted(0.75, any::<u8>())), 1..120),
        per_batch in 1usize..9,
        rolls in proptest::collection::vec(1usize..120, 0..6),
        splits in (1usize..60, 1usize..60),
    ) {
        check_case(ops, per_batch, rolls, splits);
    }
}

/// A reader that reads the whole partition again and again until told to stop; every pass must
/// succeed and give the final state (each segment is either its old or its compacted version,
/// and both hold the latest record of every key). Returns the passes it completed.
fn spawn_reader(
    engine: Engine,
    end: i64,
    log: Log,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let want = expected(&log, end - 1);
        let mut passes = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) || passes == 0 {
            let mut got = BTreeMap::new();
            let offsets = read_all(&engine, "accounts", 0, end, &log).await;
            for o in offsets {
                let (_, k, v) = &log[o as usize];
                match v {
                    Some(v) => got.insert(k.clone(), v.clone()),
                    None => got.remove(k),
                };
            }
            assert_eq!(got, want, "a reader during compaction saw the final state");
            passes += 1;
        }
        passes
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_swaps_on_s3_lose_nothing_with_a_reader_running_and_failures_mid_swap() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tierlog::object_store::ObjectStoreExt;
    use tierlog::remote::faulty::{Faults, FaultyStore};

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::s3_config(dir.path(), "compaction");
    cfg.compactor.enabled = false;
    cfg.tiering.upload_attempts = 3;
    cfg.tiering.retry_base_ms = 2;
    cfg.tiering.retry_max_ms = 20;
    // Small manifest chunks: most entries the swaps replace live in chunks, not in the head.
    cfg.tiering.manifest_chunk_segments = 4;
    let inner = cfg.object_store.clone().unwrap().build().unwrap();
    let faulty = Arc::new(FaultyStore::new(inner.clone(), Faults::default()));
    let clock = tierlog::ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_store(cfg.clone(), clock.clone(), faulty.clone()).await.unwrap();
    // Local segments go once tiered: every read is served by the bucket.
    engine.create_topic("accounts", compact_topic(4 << 10, Some(1))).await.unwrap();
    let log = append(&engine, "accounts", &ops(2500, 120, 3), 10).await;
    engine.roll("accounts", 0).await.unwrap();
    engine.tier_now("accounts", 0).await.unwrap();
    let before = engine.remote_head("accounts", 0).unwrap();
    let end = before.next_offset;
    assert_eq!(end, log.len() as i64);
    assert!(before.totals.segments > 12, "{}", before.totals.segments);
    assert!(before.chunks.len() >= 2, "entries in chunks: {:?}", before.chunks);

    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(engine.clone(), end, log.clone(), stop.clone());

    // The manifest head cannot be written: the rewritten objects are uploaded, the swap fails.
    faulty.set(Faults { fail_writes_containing: Some("manifest/head".into()), ..Default::default() });
    let err = engine.compact("accounts", None, None).await.unwrap_err();
    assert!(matches!(err, tierlog::Error::Remote { .. }), "{err}");
    assert_eq!(*engine.remote_head("accounts", 0).unwrap(), *before, "no swap happened");
    // Manifest chunks cannot be written (the swap rewrites the chunks holding the old entries).
    faulty.set(Faults { fail_writes_containing: Some("manifest/chunks".into()), ..Default::default() });
    assert!(engine.compact("accounts", None, None).await.is_err());
    assert_eq!(*engine.remote_head("accounts", 0).unwrap(), *before, "no swap happened");
    // Index uploads fail: the swap never starts.
    faulty.set(Faults { fail_writes_containing: Some(".index.parquet".into()), ..Default::default() });
    assert!(engine.compact("accounts", None, None).await.is_err());
    assert_eq!(engine.remote_head("accounts", 0).unwrap().segments, before.segments, "no swap happened");
    common::bucket_matches_manifest(&engine, &inner, "accounts", 0).await;

    // The bucket works again: compaction and merging complete while the reader reads.
    faulty.set(Faults::default());
    let done = engine.compact("accounts", None, None).await.unwrap();
    assert!(done[0].remote.records_removed > 2000, "{:?}", done[0].remote);
    assert!(done[0].remote.segments_merged > 0, "{:?}", done[0].remote);
    stop.store(true, Ordering::SeqCst);
    let passes = reader.await.unwrap();
    assert!(passes >= 1);
    let head = engine.remote_head("accounts", 0).unwrap();
    assert_eq!((head.log_start_offset, head.next_offset), (before.log_start_offset, end));
    assert!(head.pending_deletes.len() >= 2 * before.totals.segments as usize, "old objects wait for the grace period");
    common::bucket_matches_manifest(&engine, &inner, "accounts", 0).await;

    // A reader that still holds the old entries keeps reading: the old objects are still there.
    let old = &before.segments[0];
    let keys = tierlog::remote::keys::PartitionKeys::new("accounts", 0);
    inner.get(&old.segment_key(&keys)).await.expect("old objects outlive the swap until the grace period");

    // After the grace period the old objects go; everything still reads, from the new objects.
    clock.advance(cfg.tiering.delete_grace_ms as i64 + 1);
    engine.tier_now("accounts", 0).await.unwrap();
    assert!(engine.remote_head("accounts", 0).unwrap().pending_deletes.is_empty());
    assert!(inner.get(&old.segment_key(&keys)).await.is_err(), "deleted after the grace period");
    common::bucket_matches_manifest(&engine, &inner, "accounts", 0).await;
    let offsets = read_all(&engine, "accounts", 0, end, &log).await;
    assert_eq!(offsets.len(), 120);
    assert_eq!(state(&engine, "accounts", end - 1).await, expected(&log, end - 1));
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_compactor_compacts_and_writes_snapshots_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = engine_config(dir.path());
    cfg.compactor.enabled = true;
    cfg.compactor.interval_ms = 100;
    let clock = tierlog::ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_clock(cfg, clock.clone()).await.unwrap();
    let mut topic = compact_topic(4 << 10, None);
    topic.compaction.snapshot_interval_ms = Some(60_000);
    engine.create_topic("accounts", topic).await.unwrap();
    let mut log = append(&engine, "accounts", &ops(1000, 30, 5), 10).await;
    engine.roll("accounts", 0).await.unwrap();
    engine.tier_now("accounts", 0).await.unwrap();
    let end = engine.remote_head("accounts", 0).unwrap().next_offset;
    // The compactor runs on the engine's (manual) clock: nothing happens until it moves.
    assert_eq!(engine.remote_head("accounts", 0).unwrap().compaction.cleaned_to, 0);
    eventually_advancing(&clock, 100, "a compaction pass and a first snapshot", || {
        let h = engine.remote_head("accounts", 0).unwrap();
        h.compaction.cleaned_to == end && h.snapshots.len() == 1
    })
    .await;
    let snap = engine.remote_head("accounts", 0).unwrap().snapshots[0].clone();
    assert_eq!(snap.offset, end - 1);
    assert_eq!(engine.compaction_status("accounts", 0).unwrap().local.cleaned_to, end);

    // More writes: compacted again at once, but the next snapshot waits for its interval.
    log.extend(append(&engine, "accounts", &ops(300, 30, 8), 10).await);
    engine.roll("accounts", 0).await.unwrap();
    engine.tier_now("accounts", 0).await.unwrap();
    let end2 = engine.remote_head("accounts", 0).unwrap().next_offset;
    let before = tierlog::Clock::now_ms(&*clock);
    eventually_advancing(&clock, 100, "the second pass", || {
        engine.remote_head("accounts", 0).unwrap().compaction.cleaned_to == end2
    })
    .await;
    // Rounds ran (the pass needed them), but well under the snapshot interval has passed.
    assert!(tierlog::Clock::now_ms(&*clock) - before < 30_000);
    assert_eq!(engine.remote_head("accounts", 0).unwrap().snapshots.len(), 1, "not due yet");
    clock.advance(60_001);
    eventually_advancing(&clock, 100, "the second snapshot", || {
        engine.remote_head("accounts", 0).unwrap().snapshots.len() == 2
    })
    .await;
    assert_eq!(engine.remote_head("accounts", 0).unwrap().snapshots[1].offset, end2 - 1);
    // state_at from the snapshot agrees with the log.
    let spec = StateSpec::new(At::Offset(end2 - 1));
    let mut s = engine.state_at("accounts", spec).await.unwrap();
    let mut got = BTreeMap::new();
    while let Some(e) = s.next().await.unwrap() {
        got.insert(e.key, e.value);
    }
    assert!(s.from_snapshots > 0);
    assert_eq!(got, expected(&log, end2 - 1));
    engine.close().await.unwrap();
}

/// `tierlog compact` processes killed with SIGKILL at random moments, between rounds of new
/// writes: after each kill the engine reopens, every record left is the one appended at its
/// offset, the state at the end is the uncompacted log's, the bucket references only objects it
/// holds, and a replica of the bucket agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_killed_at_random_moments_loses_nothing() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let toml = format!(
        "data_dir = {:?}\n[object_store]\nkind = \"local\"\npath = {:?}\n[compactor]\nenabled = false\n",
        data.to_str().unwrap(),
        dir.path().join("bucket").to_str().unwrap()
    );
    let config_path = dir.path().join("tierlog.toml");
    std::fs::write(&config_path, &toml).unwrap();
    let cfg = EngineConfig::from_toml(&toml).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut log = Log::new();
    let (mut kills, mut cut_short) = (0, 0);
    // Kill times are drawn below `span`, which shrinks whenever a run finished before its kill
    // (and grows a little when one was killed):
    // on a loaded machine a run's length varies severalfold, and this keeps kills landing inside
    // runs rather than relying on one machine's speed. At least 10 rounds; more (up to 30) until
    // kills landed mid-run.
    let mut span = 1400u64;
    let mut round = 0u64;
    while round < 10 || (!(kills >= 2 && cut_short >= 1) && round < 30) {
        let engine = Engine::open(cfg.clone()).await.unwrap();
        if round == 0 {
            engine.create_topic("t", compact_topic(32 << 10, None)).await.unwrap();
        }
        log.extend(append(&engine, "t", &ops(10_000, 3000, round), 25).await);
        engine.roll("t", 0).await.unwrap();
        engine.close().await.unwrap();

        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tierlog"))
            .arg("--config")
            .arg(&config_path)
            .args(["compact", "t"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill times range from process start-up to about the end of a run, so kills land in
        // the local passes, the remote passes and the merges.
        let ms = 50 + rng.random_range(0..span);
        #[allow(clippy::disallowed_methods)] // the kill lands at a real moment of a real process
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        if child.try_wait().unwrap().is_none() {
            kills += 1;
            span = (span + span / 8).min(3000);
        } else {
            span = (ms * 3 / 4).max(50);
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let engine = Engine::open(cfg.clone()).await.unwrap();
        let end = log.len() as i64;
        let st = engine.compaction_status("t", 0).unwrap();
        if st.local.cleaned_to != end || st.remote.cleaned_to != end {
            cut_short += 1; // killed before both tiers were clean
        }
        read_all(&engine, "t", 0, end, &log).await;
        assert_eq!(state(&engine, "t", end - 1).await, expected(&log, end - 1), "round {round}");
        engine.sweep_orphans("t", 0, Some(0)).await.unwrap();
        let store = cfg.object_store().build().unwrap();
        common::bucket_matches_manifest(&engine, &store, "t", 0).await;
        let rep = replica(&cfg, dir.path()).await;
        let archived = engine.remote_head("t", 0).unwrap().next_offset;
        read_all(&rep, "t", 0, archived, &log).await;
        assert_eq!(state(&rep, "t", archived - 1).await, expected(&log, archived - 1), "round {round}");
        rep.close().await.unwrap();
        engine.close().await.unwrap();
        let _ = std::fs::remove_dir_all(dir.path().join("replica"));
        round += 1;
    }
    assert!(kills >= 2 && cut_short >= 1, "kills landed while compacting: {kills}, cut short {cut_short}");
}

/// A rewritten segment sits uploaded but not yet swapped in (its index PUT is held) while the
/// orphan sweep runs with no age limit: the sweep leaves it, as its key is registered in flight;
/// the swap then commits, every record reads, and the bucket holds exactly what the manifest
/// references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_sweep_never_deletes_a_rewrite_waiting_for_its_commit() {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use tierlog::object_store::{ObjectStore, ObjectStoreExt};
    use tierlog::remote::faulty::{Faults, FaultyStore};

    let dir = tempfile::tempdir().unwrap();
    let cfg = engine_config(dir.path());
    let inner = cfg.object_store().build().unwrap();
    let faulty = Arc::new(FaultyStore::new(inner.clone(), Faults::default()));
    let clock = tierlog::ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_store(cfg.clone(), clock.clone(), faulty.clone()).await.unwrap();
    engine.create_topic("t", compact_topic(4 << 10, Some(1))).await.unwrap();
    let log = append(&engine, "t", &ops(2500, 120, 3), 10).await;
    engine.roll("t", 0).await.unwrap();
    engine.tier_now("t", 0).await.unwrap();
    let end = engine.remote_head("t", 0).unwrap().next_offset;
    assert_eq!(end, log.len() as i64);
    let dir_key = tierlog::remote::keys::PartitionKeys::new("t", 0).segments_dir();
    let list = |store: Arc<dyn ObjectStore>| {
        let dir_key = dir_key.clone();
        async move {
            let listed: Vec<_> = futures::TryStreamExt::try_collect(store.list(Some(&dir_key))).await.unwrap();
            listed.into_iter().map(|m| m.location).collect::<BTreeSet<_>>()
        }
    };
    let before = list(inner.clone()).await;

    // Index PUTs wait at a gate: the first rewritten segment object lands, its index waits.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    faulty.set(Faults { hold_writes_containing: Some((".index.parquet".into(), gate.clone())), ..Default::default() });
    let compacting = tokio::spawn({
        let engine = engine.clone();
        async move { engine.compact("t", None, None).await }
    });
    let pending = loop {
        let now = list(inner.clone()).await;
        if let Some(k) = now.difference(&before).find(|k| k.as_ref().ends_with(".log")) {
            break k.clone();
        }
        assert!(!compacting.is_finished(), "compaction ended without writing: {:?}", compacting.await);
        #[allow(clippy::disallowed_methods)] // polls a real upload in progress
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(engine.sweep_orphans("t", 0, Some(0)).await.unwrap(), 0, "nothing is an orphan yet");
    inner.head(&pending).await.expect("the sweep left the rewrite that waits for its commit");

    faulty.set(Faults::default());
    gate.add_permits(1);
    let done = compacting.await.unwrap().unwrap();
    assert!(done[0].remote.records_removed > 0, "{:?}", done[0].remote);
    read_all(&engine, "t", 0, end, &log).await;
    assert_eq!(state(&engine, "t", end - 1).await, expected(&log, end - 1));
    common::bucket_matches_manifest(&engine, &inner, "t", 0).await;
    engine.close().await.unwrap();
}
