//! Helpers shared by the end-to-end tests of the remote tier and of history (replay, state,
//! restore).
#![allow(dead_code)]

use bytes::Bytes;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, LogConfig, ObjectStoreConfig, TopicConfig};

/// (offset, timestamp, value) of every record appended, in offset order.
pub type Model = Vec<(i64, i64, Bytes)>;

pub fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir.join("data"));
    c.object_store = Some(ObjectStoreConfig::Local { path: dir.join("bucket") });
    c.tiering.poll_ms = 3_600_000; // tests drive passes with tier_now
    c.tiering.cache.memory_bytes = 32 << 20;
    c.tiering.cache.disk_bytes = Some(0);
    c.tiering.cache.chunk_bytes = 64 << 10;
    c.tiering.cache.read_ahead_bytes = 512 << 10;
    c
}

pub fn topic(local_retention_bytes: Option<u64>) -> TopicConfig {
    TopicConfig {
        partitions: 1,
        log: LogConfig { segment_bytes: 64 << 10, local_retention_bytes, ..Default::default() },
        ..Default::default()
    }
}

/// Appends `batches` batches of mixed codecs and sizes with jittered (non-monotonic) timestamps.
pub async fn produce(engine: &Engine, topic: &str, batches: usize, seed: u64) -> Model {
    let mut model = Vec::new();
    let codecs = Compression::ALL;
    for b in 0..batches {
        let n = 1 + (b * 7 + seed as usize) % 40;
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let ts = 1_700_000_000_000 + (b as i64) * 100 + ((i as i64 * 37 + seed as i64) % 150);
                Record {
                    key: Some(Bytes::from(format!("k{}", (b + i) % 97))),
                    value: Some(Bytes::from(format!("v{b}-{i}-{}", "x".repeat((b * 13 + i) % 300)))),
                    headers: vec![],
                    timestamp: ts,
                }
            })
            .collect();
        let batch = BatchBuilder::from_records(codecs[b % codecs.len()], &records);
        let at = engine.append(topic, 0, batch).await.unwrap();
        for (i, r) in records.into_iter().enumerate() {
            model.push((at.base_offset + i as i64, r.timestamp, r.value.unwrap()));
        }
    }
    model
}

/// A config whose bucket is the SeaweedFS of scripts/test.sh, under a fresh prefix. Fails (never
/// skips) when the server is not there.
pub fn s3_config(dir: &std::path::Path, name: &str) -> EngineConfig {
    let nanos = tierlog::clock::wall_clock_nanos();
    let mut c = config(dir);
    c.object_store =
        Some(ObjectStoreConfig::s3_test_server(&format!("test-{name}-{}-{nanos}", std::process::id())).expect(
            "TIERLOG_S3_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which starts SeaweedFS",
        ));
    c
}

/// The manifest in the bucket is the one the writer holds, contiguous, every object it references
/// exists (segments at their recorded size), and after an orphan sweep the bucket holds nothing
/// else under the partition but the head and objects waiting for deferred deletion.
pub async fn bucket_matches_manifest(
    engine: &Engine,
    store: &std::sync::Arc<dyn tierlog::object_store::ObjectStore>,
    topic: &str,
    partition: u32,
) {
    use futures::TryStreamExt;
    use std::collections::BTreeSet;
    use tierlog::object_store::ObjectStoreExt;
    use tierlog::remote::keys::PartitionKeys;
    let head = engine.remote_head(topic, partition).unwrap();
    let keys = PartitionKeys::new(topic, partition);
    let m = tierlog::remote::Manifest::load(store.clone(), topic, partition, 256).await.unwrap();
    assert_eq!(*m.head(), *head, "the bucket's manifest is the one the writer holds");
    let mut referenced = BTreeSet::new();
    let mut next = head.log_start_offset;
    let mut entries = Vec::new();
    m.scan(|e| {
        entries.push(e.clone());
        true
    })
    .await
    .unwrap();
    for e in entries {
        assert_eq!(e.base_offset, next, "contiguous");
        next = e.next_offset;
        for k in [e.segment_key(&keys), e.index_key(&keys)] {
            let meta = store.head(&k).await.unwrap_or_else(|err| panic!("{k} is referenced but missing: {err}"));
            if k.as_ref().ends_with(".log") {
                assert_eq!(meta.size, e.size);
            }
            referenced.insert(k.to_string());
        }
    }
    assert_eq!(next, head.next_offset);
    for c in &head.chunks {
        referenced.insert(c.key(&keys).to_string());
    }
    engine.sweep_orphans(topic, partition, Some(0)).await.unwrap();
    let listed: Vec<_> = store.list(Some(&keys.root())).try_collect().await.unwrap();
    let listed: BTreeSet<String> = listed
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|k| !k.ends_with("manifest/head.json") && !head.pending_deletes.iter().any(|p| &p.key == k))
        .collect();
    assert_eq!(listed, referenced, "the bucket holds exactly what the manifest references");
}

/// Waits, in real time, until `f` holds: for the reaction of another task or process (never for a
/// schedule: tests drive those with the manual clock). Looks every 10 ms, for up to 30 s.
#[allow(clippy::disallowed_methods)]
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// [`eventually`] for a background loop on the manual clock: moves `clock` by `step_ms` before
/// each look, so the loop's timer fires as often as it takes.
pub async fn eventually_advancing(clock: &tierlog::ManualClock, step_ms: i64, what: &str, mut f: impl FnMut() -> bool) {
    eventually(what, || {
        if f() {
            return true;
        }
        clock.advance(step_ms);
        false
    })
    .await
}
