//! IO errors from the filesystem, through the public API on a [`SimFs`]: a failed fsync fails the
//! partition (never retried into a false success); the partition reopens itself from its files,
//! with backoff, once IO works again; and nothing acknowledged is lost on the way, including
//! batches acknowledged through the disk journal, even across a later power cut.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tiering::batch::records::decode_batch;
use tiering::batch::{BatchBuilder, Compression, Record, ValidatedBatch};
use tiering::local::{Fs, LogWriter, Partition, SimFs, WriterConfig, journal};
use tiering::{Error, LogConfig, ManualClock};

const T0: i64 = 1_700_000_000_000;

fn batch(tag: &str) -> ValidatedBatch {
    let recs = [Record { key: None, value: Some(Bytes::from(tag.to_owned())), headers: vec![], timestamp: T0 }];
    ValidatedBatch::validate(BatchBuilder::from_records(Compression::None, &recs), 1 << 20).unwrap()
}

fn dir(i: u32) -> PathBuf {
    PathBuf::from(format!("/data/t-{i}"))
}

fn new_fs() -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/data")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

fn open(fs: &SimFs, n: u32, clock: &Arc<ManualClock>, wc: WriterConfig) -> (LogWriter, Vec<Arc<Partition>>) {
    let dynfs: Arc<dyn Fs> = Arc::new(fs.clone());
    let parts: Vec<Arc<Partition>> = (0..n)
        .map(|i| {
            let config = LogConfig { segment_bytes: 1 << 20, ..Default::default() };
            Partition::open_on(dynfs.clone(), "t", i, &dir(i), config, clock.clone(), 0).unwrap()
        })
        .collect();
    let journal = journal::recover(&dynfs, Path::new("/data/journal"), &parts).unwrap();
    (LogWriter::start(wc, Some(journal), clock.clone()).unwrap(), parts)
}

/// Every record value of a partition, in offset order, checking offsets are dense.
fn values(p: &Partition) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = p.log_start_offset();
    loop {
        let r = p.read(offset, 1 << 20).unwrap();
        if r.next_offset().is_none() {
            break;
        }
        for (h, b) in r.batches() {
            assert_eq!(h.base_offset, offset, "offsets are dense");
            let (_, recs) = decode_batch(&b).unwrap();
            out.extend(recs.iter().map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()));
            offset = h.next_offset();
        }
    }
    out
}

/// Appends pairs of batches (`j<i>` to t-0, `k<i>` to t-1) until t-0 has at least `entries`
/// entries in the disk journal (a group that held both partitions went through it; the writer may
/// take a pair's first append alone, and then fsyncs it in its segment). Returns the values
/// acknowledged on t-0, and the number of pairs.
async fn append_until_journaled(
    fs: &SimFs,
    writer: &LogWriter,
    parts: &[Arc<Partition>],
    entries: usize,
) -> (Vec<String>, usize) {
    let journaled = || {
        let mut n = 0;
        journal::replay(fs, Path::new("/data/journal"), |name, _| {
            n += usize::from(name == "t-0");
            Ok(())
        })
        .unwrap();
        n
    };
    let mut acked = Vec::new();
    let mut i = 0;
    while journaled() < entries {
        let t0 = writer.enqueue(&parts[0], batch(&format!("j{i}"))).await.unwrap();
        let t1 = writer.enqueue(&parts[1], batch(&format!("k{i}"))).await.unwrap();
        t0.await.unwrap();
        t1.await.unwrap();
        acked.push(format!("j{i}"));
        i += 1;
        assert!(i < 10_000, "no group ever held both partitions");
    }
    (acked, i)
}

#[tokio::test]
async fn a_failed_fsync_fails_the_partition_which_reopens_itself_once_io_works() {
    let fs = new_fs();
    let clock = ManualClock::new(T0);
    let (writer, parts) = open(&fs, 1, &clock, WriterConfig::default());
    let p = &parts[0];
    writer.register(p.clone()).await.unwrap();
    for i in 0..3 {
        writer.append(p, batch(&format!("a{i}"))).await.unwrap();
    }

    fs.fail_sync(Some("/data/t-0/"));
    let err = writer.append(p, batch("lost")).await.unwrap_err();
    assert!(matches!(&err, Error::Unavailable { reason, .. } if reason.contains("fsync")), "{err:?}");
    let reason = p.failure().expect("the partition failed");
    assert!(reason.contains("fsync"), "{reason}");
    // Failed, it takes nothing, even once the disk works again, until it is reopened.
    assert!(writer.append(p, batch("refused")).await.is_err());

    // While IO still fails, each reopen fails and the wait doubles: 100 ms, then 200 ms.
    clock.advance(100);
    writer.tick().await.unwrap();
    assert!(p.failure().is_some());
    clock.advance(150);
    writer.tick().await.unwrap(); // not due yet (200 ms after the last try)
    fs.fail_sync(None);
    writer.tick().await.unwrap();
    assert!(p.failure().is_some(), "reopened before its backoff passed");
    clock.advance(50);
    writer.tick().await.unwrap();
    assert_eq!(p.failure(), None, "reopened once IO works");

    // The acknowledged batches are there; the failed one is not; appends continue densely.
    assert_eq!(values(p), ["a0", "a1", "a2"]);
    let info = writer.append(p, batch("b0")).await.unwrap();
    assert_eq!(info.base_offset, 3);
    assert_eq!(values(p), ["a0", "a1", "a2", "b0"]);

    // And all of it is durable: a power cut right now keeps every acknowledged record.
    let after = fs.power_cut(7);
    let (_w, parts) = open(&after, 1, &ManualClock::new(T0), WriterConfig::default());
    assert_eq!(values(&parts[0]), ["a0", "a1", "a2", "b0"]);
    writer.shutdown().await.ok();
}

#[tokio::test]
async fn batches_acknowledged_through_the_journal_survive_a_failed_segment_fsync_and_the_reopen() {
    let fs = new_fs();
    let clock = ManualClock::new(T0);
    let wc = WriterConfig { journal_min_partitions: 2, ..Default::default() };
    let (writer, parts) = open(&fs, 2, &clock, wc.clone());
    for p in &parts {
        writer.register(p.clone()).await.unwrap();
    }
    let (acked, i) = append_until_journaled(&fs, &writer, &parts, 1).await;
    // Segment fsyncs of t-0 fail from now on; the journal (under /data/journal) still works.
    fs.fail_sync(Some("/data/t-0/"));
    // Syncing the segments (as a journal rotation or a flush does) fails t-0.
    assert!(writer.flush().await.is_err());
    assert!(parts[0].failure().is_some());
    fs.fail_sync(None);
    clock.advance(100);
    writer.tick().await.unwrap();
    assert_eq!(parts[0].failure(), None);
    assert_eq!(values(&parts[0]), acked);
    writer.append(&parts[0], batch("after")).await.unwrap();
    writer.flush().await.unwrap();

    let after = fs.power_cut(11);
    let (_w, reopened) = open(&after, 2, &ManualClock::new(T0), wc);
    let mut want = acked.clone();
    want.push("after".into());
    assert_eq!(values(&reopened[0]), want);
    assert_eq!(values(&reopened[1]), (0..i).map(|i| format!("k{i}")).collect::<Vec<_>>());
    writer.shutdown().await.ok();
}

#[tokio::test]
async fn journal_entries_of_a_partition_that_did_not_open_are_kept_until_it_does() {
    let fs = new_fs();
    let clock = ManualClock::new(T0);
    let wc = WriterConfig { journal_min_partitions: 2, ..Default::default() };
    let (writer, parts) = open(&fs, 2, &clock, wc.clone());
    for p in &parts {
        writer.register(p.clone()).await.unwrap();
    }
    // Appends to both partitions until t-0 has entries only the journal made durable.
    let (acked, _) = append_until_journaled(&fs, &writer, &parts, 3).await;
    // The power goes: the segments' unsynced bytes may be lost, the journal's are not.
    let after = fs.power_cut(3);
    drop((writer, parts));

    // t-0 does not open this time (as a damaged partition would not): its entries are kept.
    let dynfs: Arc<dyn Fs> = Arc::new(after.clone());
    let config = LogConfig { segment_bytes: 1 << 20, ..Default::default() };
    let only_t1 = vec![Partition::open_on(dynfs.clone(), "t", 1, &dir(1), config.clone(), clock.clone(), 0).unwrap()];
    let j = journal::recover(&dynfs, Path::new("/data/journal"), &only_t1).unwrap();
    drop(j);
    drop(only_t1);
    let kept = journal::list_kept(&after, Path::new("/data/journal")).unwrap();
    assert!(!kept.is_empty(), "the journal file with t-0's entries is kept");

    // Next start, both open: t-0 gets every acknowledged batch back, and the kept file goes.
    let (w, reopened) = open(&after, 2, &clock, wc);
    assert_eq!(values(&reopened[0]), acked);
    assert!(journal::list_kept(&after, Path::new("/data/journal")).unwrap().is_empty());
    w.shutdown().await.ok();
}
