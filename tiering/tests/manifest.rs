//! The partition manifest against every store kind (memory, a local directory, SeaweedFS): it
//! scales to 100k+ segments with bounded commits and lookups that touch the head and at most one
//! chunk; stale writers are fenced; racing writers leave one owner and a consistent log;
//! retention drops entries and defers deletes.

use std::sync::Arc;

use object_store::ObjectStore;
use tiering::remote::manifest::{Change, Manifest, SegmentEntry};
use tiering::remote::{CountingStore, ObjectStoreConfig};

fn entry(i: i64, epoch: u64) -> SegmentEntry {
    SegmentEntry {
        base_offset: i * 100,
        next_offset: (i + 1) * 100,
        min_timestamp: 1_000_000 + i * 10,
        max_timestamp: 1_000_000 + i * 10 + 9,
        size: 1 << 20,
        index_size: 4096,
        index_crc32c: None,
        records: 100,
        batches: 10,
        epoch,
        id: format!("{i:016x}"),
        uploaded_ms: 0,
    }
}

fn s3(name: &str) -> Arc<dyn ObjectStore> {
    let nanos = tiering::clock::wall_clock_nanos();
    ObjectStoreConfig::s3_test_server(&format!("test-{name}-{}-{nanos}", std::process::id()))
        .expect("TIERLOG_S3_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts SeaweedFS")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_scales_to_100k_segments_with_bounded_commits_and_lookups() {
    let counting = CountingStore::new(ObjectStoreConfig::Memory.build().unwrap());
    let store: Arc<dyn ObjectStore> = Arc::new(counting.clone());
    let m = Manifest::load(store.clone(), "big", 0, 256).await.unwrap();
    let epoch = m.acquire("w1").await.unwrap();
    const N: i64 = 120_000;
    const PER_COMMIT: i64 = 100;
    let (mut max_written, mut max_puts) = (0u64, 0u64);
    for c in 0..N / PER_COMMIT {
        let before = counting.counts();
        let append = (c * PER_COMMIT..(c + 1) * PER_COMMIT).map(|i| entry(i, epoch)).collect();
        m.commit(epoch, Change { append, ..Default::default() }, 0, 0).await.unwrap();
        let d = counting.counts().since(&before);
        max_written = max_written.max(d.bytes_written);
        max_puts = max_puts.max(d.writes());
    }
    let head = m.head();
    assert_eq!(head.totals.segments, N as u64);
    assert_eq!(head.next_offset, N * 100);
    assert!(max_puts <= 2, "a commit writes the head and at most one chunk: {max_puts}");
    assert!(head.segments.len() < 512, "head keeps under 2 x 256 entries: {}", head.segments.len());
    assert!(head.chunks.len() < 16 + (N as usize / 4096) + 1, "{} chunk refs", head.chunks.len());
    // Bounded per commit: head (< 512 entries + refs) plus one chunk (<= 4096 entries, Parquet).
    assert!(max_written < 400 << 10, "a commit wrote {max_written} bytes");

    // A fresh reader: one GET for the head, then at most one GET per lookup (its chunk).
    let counting2 = CountingStore::new(store.clone());
    let reader = Manifest::load(Arc::new(counting2.clone()), "big", 0, 256).await.unwrap();
    assert_eq!(counting2.counts().gets(), 1);
    for (k, i) in [0i64, 1, 4095, 4096, 50_000, 99_999, 119_500, 119_999].into_iter().enumerate() {
        let before = counting2.counts();
        let e = reader.find_offset(i * 100 + 42).await.unwrap().unwrap();
        assert_eq!(e, entry(i, epoch), "lookup {k}");
        assert!(counting2.counts().since(&before).gets() <= 1);
        let before = counting2.counts();
        let e = reader.find_time(1_000_000 + i * 10 + 5).await.unwrap().unwrap();
        assert_eq!(e.base_offset, i * 100);
        assert!(counting2.counts().since(&before).gets() <= 1, "time lookup {k} touched more than one chunk");
    }
    assert!(reader.find_offset(N * 100).await.unwrap().is_none());
    assert!(reader.find_time(i64::MAX).await.unwrap().is_none());
}

async fn fencing(store: Arc<dyn ObjectStore>) {
    let a = Manifest::load(store.clone(), "t", 0, 4).await.unwrap();
    let ea = a.acquire("a").await.unwrap();
    a.commit(ea, Change { append: vec![entry(0, ea)], ..Default::default() }, 0, 0).await.unwrap();
    // B takes over: A's next commit fails as fenced, and changes nothing.
    let b = Manifest::load(store.clone(), "t", 0, 4).await.unwrap();
    let eb = b.acquire("b").await.unwrap();
    assert_eq!(eb, ea + 1);
    let err = a.commit(ea, Change { append: vec![entry(1, ea)], ..Default::default() }, 0, 0).await.unwrap_err();
    assert!(matches!(err, tiering::Error::Fenced { epoch, current, .. } if epoch == ea && current == eb), "{err}");
    b.commit(eb, Change { append: vec![entry(1, eb)], ..Default::default() }, 0, 0).await.unwrap();
    let check = Manifest::load(store.clone(), "t", 0, 4).await.unwrap();
    let h = check.head();
    assert_eq!((h.epoch, h.totals.segments, h.next_offset), (eb, 2, 200));
    assert_eq!(h.segments[1].epoch, eb);

    // Two writers race: each takes over and then commits as fast as it can. Every commit either
    // lands or fails as fenced; the log stays contiguous and ends with one owner.
    let mut tasks = Vec::new();
    for w in 0..2u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = Manifest::load(store, "race", 0, 4).await.unwrap();
            let epoch = m.acquire(&format!("w{w}")).await.unwrap();
            let mut landed = 0;
            for _ in 0..20 {
                let next = m.head().next_offset / 100;
                match m.commit(epoch, Change { append: vec![entry(next, epoch)], ..Default::default() }, 0, 0).await {
                    Ok(_) => landed += 1,
                    Err(tiering::Error::Fenced { .. }) => return (epoch, landed, true),
                    Err(e) => panic!("{e}"),
                }
            }
            (epoch, landed, false)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let fenced: Vec<_> = results.iter().filter(|r| r.2).collect();
    assert!(fenced.len() <= 1, "{results:?}");
    let m = Manifest::load(store, "race", 0, 4).await.unwrap();
    let h = m.head();
    let landed: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(h.totals.segments, landed, "every landed commit is in the log: {results:?}");
    let mut expect = 0;
    m.scan(|e| {
        assert_eq!(e.base_offset, expect);
        expect = e.next_offset;
        true
    })
    .await
    .unwrap();
    assert_eq!(expect, h.next_offset);
    let top = results.iter().map(|r| r.0).max().unwrap();
    assert_eq!(h.epoch, top, "the last writer to take over owns the partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_memory() {
    fencing(ObjectStoreConfig::Memory.build().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    fencing(ObjectStoreConfig::Local { path: dir.path().to_owned() }.build().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_s3() {
    fencing(s3("fencing")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_entries_and_defers_deletes() {
    let store = ObjectStoreConfig::Memory.build().unwrap();
    let m = Manifest::load(store.clone(), "r", 0, 4).await.unwrap();
    let e = m.acquire("w").await.unwrap();
    let append = (0..40).map(|i| entry(i, e)).collect();
    m.commit(e, Change { append, ..Default::default() }, 0, 0).await.unwrap();
    assert!(!m.head().chunks.is_empty());
    // Drop everything below offset 2500: 25 segments, partly inside chunks.
    let h = m.commit(e, Change { drop_before: Some(2500), ..Default::default() }, 1_000, 60_000).await.unwrap();
    assert_eq!((h.log_start_offset, h.totals.segments, h.totals.bytes), (2500, 15, 15 << 20));
    assert!(m.find_offset(2499).await.unwrap().is_none());
    assert_eq!(m.find_offset(2500).await.unwrap().unwrap().base_offset, 2500);
    assert_eq!(m.find_time(0).await.unwrap().unwrap().base_offset, 2500);
    // Every dropped segment's two objects wait for the grace period.
    let segs = h.pending_deletes.iter().filter(|p| p.key.ends_with(".log")).count();
    assert_eq!(segs, 25);
    assert!(h.pending_deletes.iter().all(|p| p.delete_after_ms == 61_000));
    let mut n = 0;
    m.scan(|_| {
        n += 1;
        true
    })
    .await
    .unwrap();
    assert_eq!(n, 15);
}

async fn live(m: &Manifest) -> Vec<SegmentEntry> {
    let mut out = Vec::new();
    m.scan(|e| {
        out.push(e.clone());
        true
    })
    .await
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_swap_entries_in_the_head_and_in_chunks_atomically() {
    use tiering::remote::manifest::{CompactionState, Replace};
    let store = ObjectStoreConfig::Memory.build().unwrap();
    let m = Manifest::load(store.clone(), "c", 0, 4).await.unwrap();
    let e = m.acquire("w").await.unwrap();
    for c in 0..10 {
        let append = (c * 3..c * 3 + 3).map(|i| entry(i, e)).collect();
        m.commit(e, Change { append, ..Default::default() }, 0, 0).await.unwrap();
    }
    let before = m.head();
    assert!(before.chunks.len() >= 3 && !before.segments.is_empty());
    let merged = |from: i64, to: i64, id: &str| SegmentEntry {
        base_offset: from * 100,
        next_offset: to * 100,
        size: 1000,
        records: 7,
        id: id.into(),
        ..entry(from, e)
    };
    // Merge a run that starts in one chunk, spans another and ends in the head's own entries.
    let first_in_head = before.segments[0].base_offset / 100;
    let (from, to) = (2, first_in_head + 2);
    let old: Vec<SegmentEntry> = (from..to).map(|i| entry(i, e)).collect();
    let state = CompactionState { cleaned_to: 1234, merged_segments: (to - from - 1) as u64, ..Default::default() };
    let replace = vec![Replace { old: old.clone(), new: vec![merged(from, to, "m1")] }];
    let h = m.commit(e, Change { replace, compaction: Some(state), ..Default::default() }, 5, 100).await.unwrap();
    let entries = live(&m).await;
    assert_eq!(entries.len(), 30 - (to - from) as usize + 1);
    assert!(entries.windows(2).all(|w| w[0].next_offset == w[1].base_offset), "contiguous");
    assert_eq!((entries[0].base_offset, entries.last().unwrap().next_offset), (0, 3000));
    assert_eq!(m.find_offset(from * 100 + 50).await.unwrap().unwrap().id, "m1");
    assert_eq!(h.totals.segments, entries.len() as u64);
    assert_eq!(h.totals.records, 30 * 100 - (to - from) as u64 * 100 + 7);
    assert_eq!(h.compaction, state);
    // The replaced objects (and rewritten chunks) wait for the grace period.
    for o in &old {
        assert!(
            h.pending_deletes.iter().any(|p| p.key == o.segment_key(m.keys()).to_string() && p.delete_after_ms == 105)
        );
    }
    assert!(h.pending_deletes.iter().any(|p| p.key.contains("/manifest/chunks/")));
    // A reloaded manifest agrees.
    let again = Manifest::load(store.clone(), "c", 0, 4).await.unwrap();
    assert_eq!(live(&again).await, entries);

    // A rewrite planned on entries that are gone conflicts and changes nothing.
    let stale = vec![Replace { old: vec![entry(2, e)], new: vec![merged(2, 3, "x")] }];
    let err = m.commit(e, Change { replace: stale, ..Default::default() }, 6, 100).await.unwrap_err();
    assert!(matches!(err, tiering::Error::Conflict { .. }), "{err}");
    assert_eq!(m.head(), h);
    // New entries that do not cover the old ones exactly are refused.
    let bad = vec![Replace { old: vec![entry(20, e)], new: vec![merged(20, 22, "y")] }];
    assert!(m.commit(e, Change { replace: bad, ..Default::default() }, 6, 100).await.is_err());
    assert_eq!(m.head(), h);
}
