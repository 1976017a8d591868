//! The zero-copy read path of the local tier through its public API: `Partition::read_span`
//! hands out ranges of segment files (`FileSpan`) that a server sends with `sendfile`. A span
//! holds exactly the batches an ordinary read of its length returns, is cut at whole batches,
//! covers only bytes whose CRC was checked, goes through a socket byte for byte, and stays whole
//! while retention deletes its segment.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tiering::batch::{BatchBuilder, Compression, Record, ValidatedBatch};
use tiering::local::{LogWriter, Partition, SimFs, WriterConfig};
use tiering::{LogConfig, ManualClock};

const T0: i64 = 1_700_000_000_000;

/// A batch of `n` records of `size` bytes each, tagged so every batch differs.
fn batch(config: &LogConfig, tag: u64, n: usize, size: usize) -> ValidatedBatch {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{tag}-{i}"))),
            value: Some(Bytes::from(vec![(tag as u8).wrapping_add(i as u8); size])),
            headers: vec![],
            timestamp: T0 + tag as i64,
        })
        .collect();
    ValidatedBatch::validate(BatchBuilder::from_records(Compression::None, &recs), config.batch_limit()).unwrap()
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 512 << 10, index_interval_bytes: 256, ..Default::default() }
}

async fn open(dir: &Path, config: LogConfig) -> (LogWriter, Arc<Partition>) {
    let clock = ManualClock::new(T0);
    let writer = LogWriter::start(WriterConfig::default(), None, clock.clone()).unwrap();
    let partition = Partition::open("t", 0, dir, config, clock).unwrap();
    writer.register(partition.clone()).await.unwrap();
    (writer, partition)
}

/// Batches of mixed sizes, small ones between the index entries and large ones, over several
/// segments.
async fn fill(writer: &LogWriter, p: &Arc<Partition>, config: &LogConfig) {
    for b in 0..120u64 {
        let (n, size) = match b % 4 {
            0 => (1, 40_000),
            1 => (3, 30),
            2 => (2, 700),
            _ => (5, 5_000),
        };
        writer.append(p, batch(config, b, n, size)).await.unwrap();
    }
}

/// A partition opened in `dir` and filled.
async fn filled(dir: &Path) -> (LogWriter, Arc<Partition>) {
    let (writer, p) = open(dir, config()).await;
    fill(&writer, &p, &config()).await;
    (writer, p)
}

/// The whole-batch prefix of an ordinary read of `len` bytes from `offset`.
fn read_len(p: &Partition, offset: i64, len: usize) -> Bytes {
    p.read(offset, len).unwrap().batches
}

#[tokio::test]
async fn a_span_holds_the_batches_an_ordinary_read_of_its_length_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = config();
    let (writer, p) = filled(dir.path()).await;
    assert!(p.segments().len() > 2, "several segments: {}", p.segments().len());
    let hw = p.high_watermark();
    let mut spans = 0;
    for offset in (0..hw).step_by(7) {
        for max in [1usize, 300, 5_000, 64 << 10, 4 << 20] {
            // Written by this process: every batch is checked, so a span is handed out.
            let (span, span_hw) = p.read_span(offset, max).unwrap().expect("checked bytes make a span");
            assert_eq!(span_hw, hw);
            let bytes = span.read().unwrap();
            assert_eq!(bytes, read_len(&p, offset, span.len()), "offset {offset} max {max}");
            // The first batch holds `offset`; past it, the span keeps within `max`.
            let (first, _) = tiering::batch::batches_in(&bytes).next().unwrap();
            assert!(first.base_offset <= offset && offset <= first.last_offset());
            assert!(span.len() <= max || span.len() == first.total_len(), "offset {offset} max {max}");
            // It may stop short of an ordinary read, by less than an index interval and a batch.
            let full = read_len(&p, offset, max);
            assert!(full.starts_with(&bytes));
            assert!(full.len() - bytes.len() < config.index_interval_bytes as usize + 50_000);
            // Cut again, at whole batches.
            for limit in [0usize, 1, 1_000, 40_000, span.len() / 2] {
                match span.cut(limit, false) {
                    Some(c) => {
                        assert!(c.len() <= limit);
                        assert_eq!(c.read().unwrap(), read_len(&p, offset, c.len()));
                    }
                    None => assert!(first.total_len() > limit),
                }
                let c = span.cut(limit, true).expect("at least one batch");
                assert!(c.len() <= limit.max(first.total_len()));
                assert_eq!(c.read().unwrap(), read_len(&p, offset, c.len()));
            }
            spans += 1;
        }
    }
    assert!(spans > 100);
    // Past the end, nothing.
    assert!(p.read_span(hw, 1 << 20).unwrap().is_none());
    assert!(p.read_span(-1, 1 << 20).unwrap().is_none());
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_span_goes_through_a_socket_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, p) = filled(dir.path()).await;
    let (span, _) = p.read_span(3, 4 << 20).unwrap().unwrap();
    assert!(span.len() > 256 << 10, "a span of several batches: {}", span.len());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let want = span.len();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        std::net::TcpStream::connect(addr).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), want);
        got
    });
    let (out, _) = listener.accept().unwrap();
    use std::os::fd::AsFd;
    let mut sent = 0;
    while sent < span.len() {
        let n = span.send_to(sent, out.as_fd()).unwrap();
        assert!(n > 0);
        sent += n;
    }
    assert_eq!(span.send_to(sent, out.as_fd()).unwrap(), 0, "nothing past the end");
    drop(out);
    assert_eq!(Bytes::from(reader.join().unwrap()), span.read().unwrap());
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn bytes_not_checked_since_opening_are_read_and_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = config();
    let (writer, p) = filled(dir.path()).await;
    writer.roll(&p).await.unwrap();
    let sealed = p.segments()[0].clone();
    writer.shutdown().await.unwrap();
    drop(p);

    // Reopened after a clean close: the sealed segments are trusted by recovery, not checked.
    let (writer, p) = open(dir.path(), config.clone()).await;
    assert!(p.read_span(0, 1 << 20).unwrap().is_none(), "unchecked bytes are not handed out");
    // An ordinary read checks them; then they may go out as a span.
    let read = p.read(0, 1 << 20).unwrap().batches;
    let (span, _) = p.read_span(0, read.len()).unwrap().expect("checked now");
    assert_eq!(span.read().unwrap(), read);
    writer.shutdown().await.unwrap();
    drop(p);

    // A damaged batch never goes out as a span: the read that would check it fails instead.
    let mut bytes = std::fs::read(&sealed.path).unwrap();
    let at = {
        let mut pos = 0;
        for _ in 0..3 {
            pos += tiering::batch::BatchHeader::parse(&bytes[pos..]).unwrap().total_len();
        }
        pos
    };
    let h = tiering::batch::BatchHeader::parse(&bytes[at..]).unwrap();
    bytes[at + h.total_len() - 2] ^= 0x01;
    std::fs::write(&sealed.path, &bytes).unwrap();
    let (writer, p) = open(dir.path(), config).await;
    let intact = p.read(0, 1 << 20).unwrap().batches;
    assert_eq!(intact.len(), at, "the read stops before the damaged batch");
    let (span, _) = p.read_span(0, 1 << 20).unwrap().expect("the intact batches were checked");
    assert_eq!(span.read().unwrap(), intact);
    assert!(p.read_span(h.base_offset, 1 << 20).unwrap().is_none());
    assert!(p.read(h.base_offset, 1 << 20).is_err());
    assert!(p.read_span(h.base_offset, 1 << 20).unwrap().is_none(), "still not handed out");
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_simulated_filesystem_has_no_spans() {
    let dir = Path::new("/sim/t-0");
    let clock = ManualClock::new(T0);
    let config = config();
    let fs: Arc<dyn tiering::local::Fs> = Arc::new(SimFs::new());
    let writer = LogWriter::start(WriterConfig::default(), None, clock.clone()).unwrap();
    let p = Partition::open_on(fs, "t", 0, dir, config.clone(), clock, 0).unwrap();
    writer.register(p.clone()).await.unwrap();
    writer.append(&p, batch(&config, 1, 2, 100_000)).await.unwrap();
    assert!(p.read_span(0, 1 << 20).unwrap().is_none());
    assert_eq!(p.read(0, 1 << 20).unwrap().batches().count(), 1);
    writer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_span_stays_whole_while_retention_deletes_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Segments larger than one reclaim step: a deleted one nobody reads is cut down in steps.
    let step = tiering::local::reclaim::STEP;
    let config = LogConfig { segment_bytes: step + (4 << 20), local_retention_bytes: Some(1), ..Default::default() };
    let (writer, p) = open(dir.path(), config.clone()).await;
    let mut tag = 0;
    while p.segments().len() < 2 {
        writer.append(&p, batch(&config, tag, 1, 512 << 10)).await.unwrap();
        tag += 1;
    }
    let first = p.segments()[0].clone();
    let (span, _) = p.read_span(0, 8 << 20).unwrap().unwrap();
    let before = span.read().unwrap();
    let whole: usize = tiering::batch::batches_in(&before).map(|(h, _)| h.total_len()).sum();
    assert!(whole == before.len() && whole > 4 << 20, "whole batches: {whole} of {}", before.len());

    // Retention deletes the first segment on the writer's tick.
    writer.tick().await.unwrap();
    assert!(!first.path.exists());
    assert!(p.read_span(0, 8 << 20).unwrap().is_none(), "no new span of a deleted segment");
    // The span's file is only unlinked while it is held: the reclaim thread, which would cut a
    // deleted segment down, leaves it alone.
    tiering::clock::real_sleep(300).await;
    assert_eq!(span.read().unwrap(), before);
    writer.shutdown().await.unwrap();
}
