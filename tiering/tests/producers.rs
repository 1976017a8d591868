//! Idempotent producers through the public API: duplicates answered with their original offsets
//! and written nowhere, Kafka's sequence and epoch errors, and the state surviving a clean
//! restart (snapshot with the checkpoint) and a power cut (rebuilt from the log's batch headers).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tiering::batch::{BatchBuilder, Compression, Record, ValidatedBatch};
use tiering::local::{Fs, LogWriter, Partition, SimFs, WriterConfig};
use tiering::{Error, LogConfig, ManualClock};

fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> ValidatedBatch {
    let mut b = BatchBuilder::new(Compression::None).producer(pid, epoch, seq);
    for i in 0..n {
        b.push(&Record {
            key: None,
            value: Some(Bytes::from(format!("{pid}/{epoch}/{} {}", seq + i as i32, "p".repeat(200)))),
            headers: vec![],
            timestamp: 1_700_000_000_000,
        });
    }
    ValidatedBatch::validate(b.build(), 1 << 20).unwrap()
}

async fn open(fs: &SimFs, clock: &Arc<ManualClock>) -> (LogWriter, Arc<Partition>) {
    let dynfs: Arc<dyn Fs> = Arc::new(fs.clone());
    let config = LogConfig { segment_bytes: 4096, ..Default::default() };
    let p = Partition::open_on(dynfs, "t", 0, &PathBuf::from("/data/t-0"), config, clock.clone(), 0).unwrap();
    let w = LogWriter::start(WriterConfig::default(), None, clock.clone()).unwrap();
    w.register(p.clone()).await.unwrap();
    (w, p)
}

fn new_fs() -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/data")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs
}

#[tokio::test]
async fn duplicates_sequences_and_epochs() {
    let fs = new_fs();
    let clock = ManualClock::new(0);
    let (w, p) = open(&fs, &clock).await;
    // A plain batch and an idempotent producer (id 7) sending three batches.
    w.append(&p, batch(-1, -1, -1, 2)).await.unwrap();
    let a = w.append(&p, batch(7, 0, 0, 3)).await.unwrap();
    let b = w.append(&p, batch(7, 0, 3, 2)).await.unwrap();
    assert_eq!((a.base_offset, b.base_offset), (2, 5));
    // The retry of an acknowledged batch: its original offsets, nothing written.
    let hw = p.high_watermark();
    let dup = w.append(&p, batch(7, 0, 0, 3)).await.unwrap();
    assert_eq!((dup.base_offset, dup.last_offset), (2, 4));
    assert_eq!(p.high_watermark(), hw);
    // A gap, a lower epoch, a new epoch not at 0: refused, nothing written.
    assert!(matches!(
        w.append(&p, batch(7, 0, 9, 1)).await,
        Err(Error::OutOfOrderSequence { producer_id: 7, expected: 5, got: 9, .. })
    ));
    assert!(matches!(w.append(&p, batch(7, 1, 5, 1)).await, Err(Error::OutOfOrderSequence { expected: 0, .. })));
    assert_eq!(p.high_watermark(), hw);
    // A new epoch at 0 fences the old one.
    w.append(&p, batch(7, 1, 0, 1)).await.unwrap();
    assert!(matches!(w.append(&p, batch(7, 0, 5, 1)).await, Err(Error::InvalidProducerEpoch { current: 1, .. })));
    // A pipeline of five in flight, then all five again (a client that lost the responses).
    let mut first = Vec::new();
    for i in 0..5 {
        first.push(w.enqueue(&p, batch(8, 0, i * 2, 2)).await.unwrap());
    }
    let mut offsets = Vec::new();
    for t in first {
        offsets.push(t.await.unwrap().base_offset);
    }
    let end = p.high_watermark();
    for i in 0..5 {
        assert_eq!(w.append(&p, batch(8, 0, i * 2, 2)).await.unwrap().base_offset, offsets[i as usize]);
    }
    assert_eq!(p.high_watermark(), end);
    // The log holds each batch once.
    let (mut offset, mut records) = (0, 0);
    while offset < end {
        let r = p.read(offset, 1 << 20).unwrap();
        records += r.records().unwrap().len() as i64;
        offset = r.next_offset().unwrap();
    }
    assert_eq!(records, end);
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn producer_state_survives_a_restart_and_a_power_cut() {
    let fs = new_fs();
    let clock = ManualClock::new(0);
    let (w, p) = open(&fs, &clock).await;
    let mut acked = Vec::new();
    // Enough batches to roll segments, so the state spans several.
    for seq in 0..60 {
        acked.push(w.append(&p, batch(3, 2, seq, 1)).await.unwrap().base_offset);
    }
    w.shutdown().await.unwrap();
    drop(p);

    // Clean restart: the snapshot written at close.
    let (w, p) = open(&fs, &clock).await;
    assert!(p.segments().len() > 1);
    assert_eq!(w.append(&p, batch(3, 2, 59, 1)).await.unwrap().base_offset, acked[59]);
    assert!(matches!(w.append(&p, batch(3, 2, 61, 1)).await, Err(Error::OutOfOrderSequence { expected: 60, .. })));
    acked.push(w.append(&p, batch(3, 2, 60, 1)).await.unwrap().base_offset);
    assert!(matches!(w.append(&p, batch(3, 1, 0, 1)).await, Err(Error::InvalidProducerEpoch { .. })));

    // A power cut: the last batches are newer than any snapshot; the state comes back from the
    // batch headers of the log.
    for seq in 61..70 {
        acked.push(w.append(&p, batch(3, 2, seq, 1)).await.unwrap().base_offset);
    }
    let after = fs.power_cut(1);
    let (w2, p2) = open(&after, &clock).await;
    for seq in [65, 69] {
        let again = w2.append(&p2, batch(3, 2, seq, 1)).await.unwrap();
        assert_eq!(again.base_offset, acked[seq as usize], "seq {seq}");
    }
    assert_eq!(w2.append(&p2, batch(3, 2, 70, 1)).await.unwrap().base_offset, acked[69] + 1);
    w2.shutdown().await.unwrap();
    let _ = w.shutdown().await;
}
