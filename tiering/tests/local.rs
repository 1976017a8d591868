//! The local tier through its public API: a `Partition` written through the group-commit
//! `LogWriter`, read back, rolled, reopened after clean and unclean stops, and trimmed by
//! retention, with time driven by a `ManualClock`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tiering::batch::records::decode_batch;
use tiering::batch::{BatchBuilder, Compression, Record, TimestampType, ValidatedBatch};
use tiering::local::{LogWriter, OffsetSpec, Partition, WriterConfig};
use tiering::{Durability, Error, LogConfig, ManualClock};

const T0: i64 = 1_700_000_000_000;

/// A batch of `n` records whose values say which batch and record they are, with timestamps
/// `ts(i)`.
fn batch(tag: u64, n: usize, ts: impl Fn(usize) -> i64) -> ValidatedBatch {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{}", i % 3))),
            value: Some(Bytes::from(format!("batch {tag} record {i} {}", "x".repeat(50)))),
            headers: vec![],
            timestamp: ts(i),
        })
        .collect();
    ValidatedBatch::validate(BatchBuilder::from_records(Compression::None, &recs), small_config().batch_limit())
        .unwrap()
}

fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 4096, index_interval_bytes: 256, ..Default::default() }
}

struct Harness {
    clock: Arc<ManualClock>,
    writer: LogWriter,
    partition: Arc<Partition>,
}

async fn open(dir: &Path, config: LogConfig, clock: Arc<ManualClock>) -> Harness {
    let writer = LogWriter::start(WriterConfig::default(), None, clock.clone()).unwrap();
    let partition = Partition::open("t", 0, dir, config, clock.clone()).unwrap();
    writer.register(partition.clone()).await.unwrap();
    Harness { clock, writer, partition }
}

/// Reads every record from `from` to the high watermark with reads of `max_bytes`.
fn read_all(p: &Partition, from: i64, max_bytes: usize) -> Vec<(i64, i64, Bytes)> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = p.read(offset, max_bytes).unwrap();
        let Some(next) = r.next_offset() else { break };
        for (_, b) in r.batches() {
            let (_, recs) = decode_batch(&b).unwrap(); // CRC checked too
            out.extend(
                recs.into_iter().filter(|x| x.offset >= offset).map(|x| (x.offset, x.timestamp, x.value.unwrap())),
            );
        }
        offset = next;
    }
    out
}

#[tokio::test]
async fn append_read_roll_and_time_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path(), small_config(), ManualClock::new(T0)).await;
    let mut expected = Vec::new();
    for b in 0..60u64 {
        let n = 1 + (b as usize % 7);
        // Timestamps rise by batch, but batch 20 carries late records (older timestamps).
        let base = if b == 20 { T0 - 10_000 } else { T0 + b as i64 * 1000 };
        let info = h.writer.append(&h.partition, batch(b, n, |i| base + i as i64)).await.unwrap();
        assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
        for i in 0..n {
            expected.push((
                info.base_offset + i as i64,
                base + i as i64,
                Bytes::from(format!("batch {b} record {i} {}", "x".repeat(50))),
            ));
        }
    }
    let p = &h.partition;
    assert_eq!(p.high_watermark(), expected.len() as i64);
    assert!(p.segments().len() > 3, "small segments roll: {}", p.segments().len());
    // Every record, whatever the read size; a read smaller than a batch still returns one batch.
    for max in [1, 100, 700, 5000, 1 << 20] {
        assert_eq!(read_all(p, 0, max), expected, "max_bytes {max}");
    }
    // Reads from the middle of a batch start with the batch holding the offset.
    let r = p.read(10, 1).unwrap();
    let (h0, _) = r.batches().next().unwrap();
    assert!(h0.base_offset <= 10 && h0.last_offset() >= 10);
    // Bounds.
    assert!(p.read(p.high_watermark(), 100).unwrap().batches.is_empty());
    assert!(matches!(p.read(p.high_watermark() + 1, 100), Err(Error::OffsetOutOfRange { .. })));
    assert!(matches!(p.read(-1, 100), Err(Error::OffsetOutOfRange { .. })));
    // offset_for_time: Kafka semantics, first offset with timestamp >= t, in offset order.
    for t in
        [T0 - 20_000, T0 - 10_000, T0 - 5, T0, T0 + 1, T0 + 19_500, T0 + 33_003, T0 + 59_000, T0 + 59_006, T0 + 70_000]
    {
        let want = expected.iter().find(|(_, ts, _)| *ts >= t).map(|(o, ts, _)| (*o, *ts));
        let got = p.offset_for_time(OffsetSpec::Timestamp(t)).unwrap().map(|x| (x.offset, x.timestamp));
        assert_eq!(got, want, "t = T0 + {}", t - T0);
    }
    assert_eq!(p.offset_for_time(OffsetSpec::Earliest).unwrap().unwrap().offset, 0);
    assert_eq!(p.offset_for_time(OffsetSpec::Latest).unwrap().unwrap().offset, expected.len() as i64);
    h.writer.shutdown().await.unwrap();

    // Reopen after a clean close: same log, and appends continue densely.
    let h = open(dir.path(), small_config(), ManualClock::new(T0)).await;
    assert_eq!(read_all(&h.partition, 0, 4096), expected);
    let info = h.writer.append(&h.partition, batch(99, 2, |_| T0)).await.unwrap();
    assert_eq!(info.base_offset, expected.len() as i64);
    h.writer.shutdown().await.unwrap();
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[tokio::test]
async fn recovery_cuts_torn_and_corrupt_tails() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 1 << 20, ..Default::default() };
    let h = open(dir.path(), config.clone(), ManualClock::new(T0)).await;
    for b in 0..10 {
        h.writer.append(&h.partition, batch(b, 5, |i| T0 + i as i64)).await.unwrap();
    }
    h.writer.shutdown().await.unwrap();
    let expected = read_all(&h.partition, 0, 1 << 20);
    drop(h);
    let seg = active_segment(dir.path());
    let good_len = std::fs::metadata(&seg).unwrap().len();

    // A torn write: half a batch at the end.
    let extra = batch(10, 5, |i| T0 + i as i64);
    let mut torn = extra.bytes().to_vec();
    torn[..8].copy_from_slice(&50i64.to_be_bytes());
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &torn[..torn.len() / 2]).unwrap();
    drop(f);
    let h = open(dir.path(), config.clone(), ManualClock::new(T0)).await;
    assert_eq!(h.partition.high_watermark(), 50);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(read_all(&h.partition, 0, 1 << 20), expected);
    h.writer.shutdown().await.unwrap();
    drop(h);

    // A whole batch whose bytes rotted, written past the checkpoint: removed, the rest stays.
    let mut rotten = torn.clone();
    let n = rotten.len();
    rotten[n - 10] ^= 0x40;
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &rotten).unwrap();
    drop(f);
    let h = open(dir.path(), config.clone(), ManualClock::new(T0)).await;
    assert_eq!(h.partition.high_watermark(), 50);
    // Appends continue at the right offset.
    assert_eq!(h.writer.append(&h.partition, batch(11, 3, |_| T0)).await.unwrap().base_offset, 50);
    h.writer.shutdown().await.unwrap();
    drop(h);

    // No checkpoint at all, and garbage after the log: everything is CRC-checked, the garbage cut.
    std::fs::remove_file(dir.path().join(tiering::local::checkpoint::CHECKPOINT_FILE)).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 333]).unwrap();
    drop(f);
    let h = open(dir.path(), config, ManualClock::new(T0)).await;
    assert_eq!(h.partition.high_watermark(), 53);
    assert_eq!(read_all(&h.partition, 0, 1 << 20)[..50], expected[..]);
    h.writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn broken_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path(), small_config(), ManualClock::new(T0)).await;
    for b in 0..40 {
        h.writer.append(&h.partition, batch(b, 4, |i| T0 + b as i64 * 10 + i as i64)).await.unwrap();
    }
    h.writer.shutdown().await.unwrap();
    let expected = read_all(&h.partition, 0, 1 << 20);
    drop(h);
    for (n, e) in std::fs::read_dir(dir.path()).unwrap().enumerate() {
        let p = e.unwrap().path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("index") if n % 2 == 0 => std::fs::write(&p, [1, 2, 3]).unwrap(),
            Some("timeindex") => std::fs::remove_file(&p).unwrap(),
            _ => {}
        }
    }
    let h = open(dir.path(), small_config(), ManualClock::new(T0)).await;
    assert_eq!(read_all(&h.partition, 0, 300), expected);
    let t = T0 + 255;
    let want = expected.iter().find(|x| x.1 >= t).map(|x| x.0);
    assert_eq!(h.partition.offset_for_time(OffsetSpec::Timestamp(t)).unwrap().map(|x| x.offset), want);
    h.writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn segment_age_rolls_quiet_partitions_and_retention_trims() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 60_000,
        local_retention_ms: Some(3_600_000),
        local_retention_bytes: Some(6 << 10),
        ..small_config()
    };
    let clock = ManualClock::new(T0);
    let h = open(dir.path(), config, clock.clone()).await;
    h.writer.append(&h.partition, batch(0, 3, |_| T0)).await.unwrap();
    assert_eq!(h.partition.segments().len(), 1);
    // A quiet partition seals by age on the writer's tick.
    h.clock.advance(59_999);
    h.writer.tick().await.unwrap();
    assert_eq!(h.partition.segments().len(), 1);
    h.clock.advance(1);
    h.writer.tick().await.unwrap();
    let segs = h.partition.segments();
    assert_eq!(segs.len(), 2);
    assert!(segs[0].sealed && !segs[1].sealed);

    // Retention by size: fill several segments; the oldest go, the active one never.
    for b in 1..40 {
        h.writer.append(&h.partition, batch(b, 4, |_| h.clock.now_ms_for_test())).await.unwrap();
    }
    h.writer.tick().await.unwrap();
    let total: u64 = h.partition.segments().iter().map(|s| s.size).sum();
    let active = h.partition.segments().last().unwrap().size;
    assert!(total <= (6 << 10) + active, "size retention keeps about the limit: {total}");
    let start = h.partition.log_start_offset();
    assert!(start > 0);
    assert!(matches!(h.partition.read(start - 1, 100), Err(Error::OffsetOutOfRange { .. })));
    assert!(!h.partition.read(start, 100).unwrap().batches.is_empty());

    // Retention by time: two hours later every sealed segment has expired; the active one stays.
    h.clock.advance(2 * 3_600_000);
    h.writer.tick().await.unwrap(); // seals the active one by age
    h.writer.tick().await.unwrap();
    let segs = h.partition.segments();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(h.partition.log_start_offset(), h.partition.high_watermark());
    h.writer.shutdown().await.unwrap();
}

trait NowForTest {
    fn now_ms_for_test(&self) -> i64;
}
impl NowForTest for Arc<ManualClock> {
    fn now_ms_for_test(&self) -> i64 {
        tiering::Clock::now_ms(&**self)
    }
}

#[tokio::test]
async fn log_append_time_and_durability_modes() {
    for durability in [Durability::Fsync, Durability::Interval { ms: 10 }, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { timestamp_type: TimestampType::LogAppendTime, durability, ..Default::default() };
        let h = open(dir.path(), config.clone(), ManualClock::new(T0 + 777)).await;
        let info = h.writer.append(&h.partition, batch(0, 5, |i| 1000 + i as i64)).await.unwrap();
        assert_eq!(info.log_append_time, Some(T0 + 777));
        h.clock.advance(20);
        h.writer.tick().await.unwrap();
        h.writer.shutdown().await.unwrap();
        let h = open(dir.path(), config, ManualClock::new(T0)).await;
        let r = h.partition.read(0, 1 << 20).unwrap();
        let (hdr, b) = r.batches().next().unwrap();
        assert_eq!(hdr.timestamp_type(), TimestampType::LogAppendTime);
        let (_, recs) = decode_batch(&b).unwrap(); // CRC recomputed correctly
        assert!(recs.iter().all(|x| x.timestamp == T0 + 777), "{durability}");
        h.writer.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_appends_get_dense_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let h = Arc::new(open(dir.path(), small_config(), ManualClock::new(T0)).await);
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..20u64 {
                let info = h.writer.append(&h.partition, batch(t * 100 + i, 2, |_| T0)).await.unwrap();
                got.push(info.base_offset);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "one producer's batches keep their order");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (0..640).step_by(2).collect::<Vec<i64>>());
    assert_eq!(read_all(&h.partition, 0, 1 << 20).len(), 640);
    h.writer.shutdown().await.unwrap();
    // After shutdown, appends fail with Closed, never hang.
    assert!(matches!(h.writer.append(&h.partition, batch(0, 1, |_| T0)).await, Err(Error::Closed { .. })));
}

#[tokio::test]
async fn replacing_a_sealed_segment_checks_its_batches_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(dir.path(), small_config(), ManualClock::new(T0)).await;
    for b in 0..30u64 {
        h.writer.append(&h.partition, batch(b, 3, |i| T0 + i as i64)).await.unwrap();
    }
    let p = &h.partition;
    let before = read_all(p, 0, 1 << 20);
    let segs = p.segments();
    let (first, active) = (segs[0].clone(), segs.last().unwrap().clone());
    assert!(first.sealed && !active.sealed);
    let bytes = std::fs::read(&first.path).unwrap();
    // Rejected, changing nothing: garbage, a torn copy, batches that end early, the active segment,
    // a segment that does not exist.
    let torn = &bytes[..bytes.len() - 5];
    let first_batch_len = tiering::batch::BatchHeader::parse(&bytes).unwrap().total_len();
    for bad in [&b"not a batch at all, not at all"[..], torn, &bytes[..first_batch_len]] {
        assert!(matches!(p.replace_sealed(first.base_offset, bad), Err(Error::Corrupt { .. })));
    }
    assert!(p.replace_sealed(active.base_offset, &bytes).is_err());
    assert!(matches!(p.replace_sealed(first.base_offset + 1, &bytes), Err(Error::OffsetOutOfRange { .. })));
    assert_eq!(read_all(p, 0, 1 << 20), before);
    assert_eq!(std::fs::read(&first.path).unwrap(), bytes);

    // A rewrite that keeps only the first batch's records but spans every offset of the segment.
    let mut b = BatchBuilder::new(Compression::None).base_offset(first.base_offset);
    let kept = &before[..3];
    for (o, ts, v) in kept {
        let r = Record { key: Some(Bytes::from("k")), value: Some(v.clone()), headers: vec![], timestamp: *ts };
        b.push_at(&r, (o - first.base_offset) as i32);
    }
    b.set_span((first.next_offset - 1 - first.base_offset) as i32, T0);
    let rewritten = b.build();
    let reader_before = p.read(first.base_offset + 3, 1 << 20).unwrap();
    p.replace_sealed(first.base_offset, &rewritten).unwrap();
    let after = read_all(p, 0, 1 << 20);
    assert_eq!(&after[..3], kept);
    assert_eq!(after[3..], before[before.iter().position(|r| r.0 == first.next_offset).unwrap()..]);
    // A read taken before the swap still holds the old bytes.
    assert!(reader_before.records().unwrap().iter().any(|r| r.offset == first.base_offset + 3));
    h.writer.shutdown().await.unwrap();
    drop(h);
    let h = open(dir.path(), small_config(), ManualClock::new(T0)).await;
    assert_eq!(read_all(&h.partition, 0, 1 << 20), after, "recovery accepts the rewritten segment");
}

/// File positions and offsets of every batch of a segment file.
fn batch_positions(bytes: &[u8]) -> Vec<(usize, i64, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = tiering::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
        out.push((pos, h.base_offset, h.total_len()));
        pos += h.total_len();
    }
    out
}

#[tokio::test]
async fn local_reads_check_each_batch_once_and_keep_the_intact_batches_before_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 64 << 10, index_interval_bytes: 64, ..Default::default() };
    let h = open(dir.path(), config.clone(), ManualClock::new(T0)).await;
    for b in 0..20u64 {
        h.writer.append(&h.partition, batch(b, 2, |_| T0)).await.unwrap();
    }
    h.writer.roll(&h.partition).await.unwrap();
    h.writer.append(&h.partition, batch(99, 2, |_| T0)).await.unwrap();
    let sealed = h.partition.segments()[0].clone();
    h.writer.shutdown().await.unwrap();

    // Damage, below the checkpoint (recovery trusts these bytes): a flipped bit in batch 5's
    // records, and a length field of batch 12 that points past the segment.
    let mut bytes = std::fs::read(&sealed.path).unwrap();
    let at = batch_positions(&bytes);
    let (p5, o5, l5) = at[5];
    bytes[p5 + l5 - 3] ^= 0x10;
    let (p12, o12, _) = at[12];
    bytes[p12 + 8..p12 + 12].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    std::fs::write(&sealed.path, &bytes).unwrap();

    let h = open(dir.path(), config, ManualClock::new(T0)).await;
    let p = &h.partition;
    // A read from 0 returns the intact batches before the bad one, checked, and stops there.
    let r = p.read(0, 1 << 20).unwrap();
    assert_eq!(r.next_offset(), Some(o5));
    for (_, b) in r.batches() {
        decode_batch(&b).unwrap();
    }
    // The bad batch itself is a Corrupt error naming the segment and position, every time.
    for _ in 0..2 {
        match p.read(o5, 1 << 20) {
            Err(Error::Corrupt { path, position, reason }) => {
                assert_eq!(path, sealed.path);
                assert_eq!(position, p5 as u64);
                assert!(reason.contains("CRC"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    // Past it, reads work again up to the damaged length field, which is an error too.
    let r = p.read(o5 + 2, 1 << 20).unwrap();
    assert_eq!(r.next_offset(), Some(o12));
    assert!(matches!(p.read(o12, 1 << 20), Err(Error::Corrupt { .. })));
    let after = at[13].1;
    assert_eq!(p.read(after, 1 << 20).unwrap().batches().next().unwrap().0.base_offset, after);
    // The active segment reads as before.
    let tail = p.segments()[1].base_offset;
    assert_eq!(p.read(tail, 1 << 20).unwrap().records().unwrap().len(), 2);
    h.writer.shutdown().await.unwrap();
}

/// Open file descriptors of this process on segment files (`.log`) under `dir`. Only those: a
/// tick of the writer's own ticker may be writing a checkpoint file meanwhile.
fn open_files_under(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir) && target.extension().is_some_and(|x| x == "log"))
        .count()
}

#[tokio::test]
async fn a_partition_left_idle_closes_its_file_and_reopens_it_on_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    // No fsync on append: the idle close must sync what is unsynced before letting go.
    let config = LogConfig { durability: Durability::None, segment_ms: 24 * 3_600_000, ..small_config() };
    let h = open(dir.path(), config.clone(), ManualClock::new(T0)).await;
    assert_eq!(open_files_under(dir.path()), 0, "nothing written, nothing open");
    h.writer.append(&h.partition, batch(0, 3, |_| T0)).await.unwrap();
    assert_eq!(open_files_under(dir.path()), 1, "the active segment is open for appends");

    h.clock.advance(tiering::local::partition::IDLE_CLOSE_MS - 1);
    h.writer.tick().await.unwrap();
    assert_eq!(open_files_under(dir.path()), 1, "not idle long enough");
    h.clock.advance(1);
    h.writer.tick().await.unwrap();
    assert_eq!(open_files_under(dir.path()), 0, "idle: the handle is closed");

    // The next write opens it again and lands after the first batch.
    h.writer.append(&h.partition, batch(1, 2, |_| T0 + 1)).await.unwrap();
    assert_eq!(open_files_under(dir.path()), 1);
    let got: Vec<i64> = read_all(&h.partition, 0, 1 << 20).iter().map(|r| r.0).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(open_files_under(dir.path()), 2, "append handle and read handle");
    let idle = tiering::local::partition::IDLE_CLOSE_MS;
    h.clock.advance(idle);
    h.writer.tick().await.unwrap();
    assert_eq!(open_files_under(dir.path()), 1, "the append handle went; the read handle was read lately");
    h.clock.advance(idle);
    h.writer.tick().await.unwrap();
    assert_eq!(open_files_under(dir.path()), 0, "unread for a whole period: the read handle went too");

    // Enough to roll several segments (the new active segment shares its append handle with its
    // readers), everything read back, then idle: no file stays open.
    for b in 2..40 {
        h.writer.append(&h.partition, batch(b, 4, |_| T0 + 2)).await.unwrap();
    }
    assert!(h.partition.segments().len() > 3);
    let all = read_all(&h.partition, 0, 1 << 20);
    assert_eq!(all.len(), 5 + 38 * 4);
    assert!(open_files_under(dir.path()) > 3);
    for _ in 0..3 {
        h.clock.advance(idle);
        h.writer.tick().await.unwrap();
    }
    assert_eq!(open_files_under(dir.path()), 0);
    // Reads after the close open what they need and see the same records.
    assert_eq!(read_all(&h.partition, 0, 1 << 20), all);
    h.writer.shutdown().await.unwrap();
    drop(h);

    // Everything written before and after the closes comes back after a reopen.
    let h = open(dir.path(), config, ManualClock::new(T0 + 10 * idle)).await;
    assert_eq!(read_all(&h.partition, 0, 1 << 20), all);
    h.writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn partitions_going_idle_together_close_a_few_per_tick() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    // Only this test's ticks: the writer's own come every 60 s of the manual clock, which moves
    // 30 s here.
    let writer = LogWriter::start(WriterConfig { tick_ms: 60_000, ..Default::default() }, None, clock.clone()).unwrap();
    // No fsync on append: each idle close needs an fsync, and a tick spends at most 8.
    let config = LogConfig { durability: Durability::None, segment_ms: 24 * 3_600_000, ..small_config() };
    let mut parts = Vec::new();
    for id in 0..20 {
        let p = Partition::open("t", id, &dir.path().join(id.to_string()), config.clone(), clock.clone()).unwrap();
        writer.register(p.clone()).await.unwrap();
        writer.append(&p, batch(id as u64, 2, |_| T0)).await.unwrap();
        parts.push(p);
    }
    assert_eq!(open_files_under(dir.path()), 20);
    clock.advance(tiering::local::partition::IDLE_CLOSE_MS);
    let mut open = Vec::new();
    for _ in 0..3 {
        writer.tick().await.unwrap();
        open.push(open_files_under(dir.path()));
    }
    assert_eq!(open, [12, 4, 0]);
    for p in &parts {
        assert_eq!(p.high_watermark(), 2);
    }
    writer.shutdown().await.unwrap();
}

/// The sizes of this process's open handles to `path` after it was unlinked.
fn deleted_handles(path: &Path) -> Vec<u64> {
    let want = format!("{} (deleted)", path.display());
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    fds.flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == want))
        .filter_map(|e| std::fs::metadata(e.path()).ok().map(|m| m.len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_frees_a_large_segment_a_step_at_a_time_and_lets_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let step = tiering::local::reclaim::STEP;
    let config = LogConfig { segment_bytes: step + (16 << 20), local_retention_bytes: Some(1), ..Default::default() };
    let h = open(dir.path(), config.clone(), ManualClock::new(T0)).await;
    let value = Bytes::from(vec![b'v'; 512 << 10]);
    let big = |i: i64| {
        let rec =
            Record { key: Some(Bytes::from("k")), value: Some(value.clone()), headers: vec![], timestamp: T0 + i };
        ValidatedBatch::validate(BatchBuilder::from_records(Compression::None, &[rec]), config.batch_limit()).unwrap()
    };
    let mut i = 0;
    while h.partition.segments().len() < 2 {
        h.writer.append(&h.partition, big(i)).await.unwrap();
        i += 1;
    }
    h.writer.append(&h.partition, big(i)).await.unwrap();
    let segs = h.partition.segments();
    assert!(segs[0].size > step, "a first segment of more than one step: {}", segs[0].size);
    let first = segs[0].path.clone();

    // Retention on the writer's tick: the name goes at once, the log starts at the next segment.
    h.writer.tick().await.unwrap();
    assert!(!first.exists(), "the deleted segment's name is gone");
    assert_eq!(h.partition.log_start_offset(), segs[1].base_offset);
    let r = h.partition.read(segs[1].base_offset, 1 << 20).unwrap();
    assert_eq!(r.batches().count(), 1);

    // The reclaim thread cuts the file down a step, pauses, and lets the handle go: no handle to
    // it stays open (the blocks are all freed), and none is ever larger than the file was.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let open = deleted_handles(&first);
        assert!(open.iter().all(|&n| n <= segs[0].size), "{open:?}");
        if open.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the deleted segment is still open: {open:?}");
        tiering::clock::real_sleep(5).await;
    }
    h.writer.shutdown().await.unwrap();
}
