//! One conformance suite for every object store tierlog builds: an S3-compatible server
//! (SeaweedFS, started by scripts/test.sh), a local directory, and memory. It covers what the tier
//! relies on: whole and ranged GETs, HEAD, create-only PUTs, compare-and-swap updates on the ETag
//! (exactly one winner of a race), multipart uploads, listing and deletion. The S3 run also checks
//! the request counts of the counting wrapper.
//!
//! The S3 test fails, never skips, when the server is missing.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use tiering::remote::{CountingStore, ObjectStoreConfig};

fn unique_prefix(name: &str) -> String {
    let nanos = tiering::clock::wall_clock_nanos();
    format!("test-{name}-{}-{nanos}", std::process::id())
}

/// The suite. `cas`: whether the store supports `PutMode::Update` (all of ours do; the local
/// directory through tierlog's flock-based wrapper).
async fn conformance(store: Arc<dyn ObjectStore>, cas: bool) {
    let a = Path::from("t/a.bin");
    let data: Bytes = (0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    store.put(&a, PutPayload::from(data.clone())).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap().bytes().await.unwrap(), data);
    assert_eq!(store.head(&a).await.unwrap().size, 100_000);
    assert_eq!(store.get_range(&a, 1000..5000).await.unwrap(), data.slice(1000..5000));
    let ranges = store.get_ranges(&a, &[0..10, 50_000..50_100]).await.unwrap();
    assert_eq!((ranges[0].clone(), ranges[1].clone()), (data.slice(0..10), data.slice(50_000..50_100)));

    // Create-only: the second writer loses.
    let m = Path::from("t/manifest");
    let create = PutOptions { mode: PutMode::Create, ..Default::default() };
    let first = store.put_opts(&m, PutPayload::from_static(b"v0"), create.clone()).await.unwrap();
    let again = store.put_opts(&m, PutPayload::from_static(b"other"), create).await;
    assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "{again:?}");

    if cas {
        // Eight writers race to replace v0, each with the version they read: exactly one wins.
        let version = UpdateVersion { e_tag: first.e_tag.clone(), version: first.version.clone() };
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (store, m, version) = (store.clone(), m.clone(), version.clone());
            tasks.push(tokio::spawn(async move {
                let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
                store.put_opts(&m, PutPayload::from(format!("v1 by {i}")), opts).await.map(|_| i)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(i) => winners.push(i),
                Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => panic!("a losing CAS must be a precondition failure: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one CAS winner: {winners:?}");
        let now = store.get(&m).await.unwrap().bytes().await.unwrap();
        assert_eq!(now, Bytes::from(format!("v1 by {}", winners[0])));
    }

    // Multipart: two 5 MiB parts and a small last one.
    let big = Path::from("t/big.bin");
    let part: Bytes = (0..5u32 << 20).map(|i| (i % 253) as u8).collect::<Vec<_>>().into();
    let mut up = store.put_multipart(&big).await.unwrap();
    up.put_part(PutPayload::from(part.clone())).await.unwrap();
    up.put_part(PutPayload::from(part.clone())).await.unwrap();
    up.put_part(PutPayload::from_static(b"tail")).await.unwrap();
    up.complete().await.unwrap();
    let got = store.get(&big).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.len(), (10 << 20) + 4);
    assert_eq!(got.slice(5 << 20..(5 << 20) + 100), part.slice(..100));

    // Listing and deletion.
    let listed: Vec<_> = store.list(Some(&Path::from("t"))).try_collect().await.unwrap();
    let mut names: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["t/a.bin", "t/big.bin", "t/manifest"]);
    for p in [&a, &big, &m] {
        store.delete(p).await.unwrap();
    }
    assert!(matches!(store.get(&a).await, Err(object_store::Error::NotFound { .. })));
}

#[tokio::test]
async fn memory_store_conformance() {
    conformance(ObjectStoreConfig::Memory.build().unwrap(), true).await;
}

#[tokio::test]
async fn local_directory_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreConfig::Local { path: dir.path().join("bucket") }.build().unwrap();
    conformance(store, true).await;
}

#[tokio::test]
async fn s3_conformance_and_request_counts() {
    let config = ObjectStoreConfig::s3_test_server(&unique_prefix("conformance")).expect(
        "TIERLOG_S3_ENDPOINT is not set: run the tests with `bash scripts/test.sh`, which installs and starts SeaweedFS",
    );
    let counting = CountingStore::new(config.build().unwrap());
    let store: Arc<dyn ObjectStore> = Arc::new(counting.clone());
    conformance(store, true).await;
    let c = counting.counts();
    assert_eq!(c.multipart_part, 3);
    assert_eq!(c.multipart_control, 2, "create + complete");
    assert_eq!(c.put, 1 + 2 + 8, "one PUT, two create-only, eight CAS attempts");
    assert_eq!(c.head, 1);
    assert_eq!(c.ranged_get, 2, "get_ranges coalesces nearby ranges into one GET: {c:?}");
    assert_eq!(c.list, 1);
    assert_eq!(c.delete, 3);
    assert!(c.bytes_written >= 10 << 20 && c.bytes_read >= 10 << 20, "{c:?}");
}
