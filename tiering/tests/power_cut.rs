//! Power cuts, simulated: seeded iterations of concurrent appends over several partitions (with
//! segment rolls, journaled groups and journal rotations) on a [`SimFs`], cut at a random moment,
//! then reopened from what the cut left. Every record acknowledged under `fsync` durability must be
//! there, intact, at its offset, with offsets dense; under `interval` what was acknowledged more
//! than one interval before the last completed tick must be there too; under every durability,
//! what survives is a dense prefix of what was written, never other bytes.
//!
//! `TIERLOG_POWER_CUT_ITERATIONS` sets the number of iterations per durability (default 40);
//! `TIERLOG_POWER_CUT_SEED` the first seed. The test prints iterations per minute and records
//! checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tiering::batch::records::decode_batch;
use tiering::batch::{BatchBuilder, Compression, Record, ValidatedBatch};
use tiering::local::{Fs, LogWriter, Partition, SimFs, SyncStrategy, WriterConfig, journal};
use tiering::{Clock, Durability, LogConfig, ManualClock};

const T0: i64 = 1_700_000_000_000;
const INTERVAL_MS: u64 = 50;

/// A batch of `n` records; each value names its batch (`tag`) and record.
fn batch(tag: u64, n: usize, size: usize, limit: usize) -> ValidatedBatch {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{}", i % 5))),
            value: Some(Bytes::from(format!("{tag} {i} {}", "v".repeat(size)))),
            headers: vec![],
            timestamp: T0 + i as i64,
        })
        .collect();
    ValidatedBatch::validate(BatchBuilder::from_records(Compression::None, &recs), limit).unwrap()
}

/// One acknowledged append.
#[derive(Debug, Clone, Copy)]
struct Acked {
    partition: usize,
    base: i64,
    records: usize,
    tag: u64,
    /// Clock time when the acknowledgement was received.
    at_ms: i64,
}

struct Setup {
    partitions: usize,
    log: LogConfig,
    writer: WriterConfig,
}

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn partition_dir(i: usize) -> PathBuf {
    data_dir().join(format!("t-{i}"))
}

/// Opens (recovering) every partition and the journal, as an engine does at start.
fn open(fs: &SimFs, setup: &Setup, clock: Arc<ManualClock>) -> tiering::Result<(LogWriter, Vec<Arc<Partition>>)> {
    let dynfs: Arc<dyn Fs> = Arc::new(fs.clone());
    let mut parts = Vec::new();
    for i in 0..setup.partitions {
        let p =
            Partition::open_on(dynfs.clone(), "t", i as u32, &partition_dir(i), setup.log.clone(), clock.clone(), 0)?;
        parts.push(p);
    }
    let journal = journal::recover(&dynfs, &data_dir().join("journal"), &parts)?;
    let writer = LogWriter::start(setup.writer.clone(), Some(journal), clock.clone())?;
    Ok((writer, parts))
}

struct Outcome {
    acked: usize,
    records_checked: usize,
    /// Segments rolled, and journal files started, before the cut (what the cut left).
    rolls: usize,
    journal_files: u64,
}

async fn iteration(seed: u64, durability: Durability) -> Outcome {
    let mut rng = SmallRng::seed_from_u64(seed);
    let fs = SimFs::new();
    fs.create_dir_all(&data_dir()).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let setup = Setup {
        partitions: rng.random_range(2..=5),
        log: LogConfig {
            segment_bytes: rng.random_range(8 << 10..=64 << 10),
            index_interval_bytes: 512,
            durability,
            ..Default::default()
        },
        writer: WriterConfig {
            journal_min_partitions: 2,
            journal_file_bytes: 1 << 20,
            tick_ms: 5,
            sync_strategy: if rng.random_bool(0.5) { SyncStrategy::Auto } else { SyncStrategy::PerFile },
            ..Default::default()
        },
    };
    let limit = setup.log.batch_limit();
    let clock = ManualClock::new(T0);
    let (writer, parts) = open(&fs, &setup, clock.clone()).unwrap();
    let writer = Arc::new(writer);
    for p in &parts {
        writer.register(p.clone()).await.unwrap();
    }

    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let cut_after = rng.random_range(10..3000u64);
    let count = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let after_cut: Arc<Mutex<Option<SimFs>>> = Arc::default();
    // Clock time at the start of the last tick that completed before the cut.
    let last_tick = Arc::new(AtomicI64::new(i64::MIN));

    let mut tasks = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        for producer in 0..2u64 {
            let (writer, p, acked, count, cut, after_cut, fs, clock) = (
                writer.clone(),
                p.clone(),
                acked.clone(),
                count.clone(),
                cut.clone(),
                after_cut.clone(),
                fs.clone(),
                clock.clone(),
            );
            let mut rng = SmallRng::seed_from_u64(seed ^ (pi as u64) << 8 ^ producer);
            tasks.push(tokio::spawn(async move {
                for seq in 0u64.. {
                    if cut.load(Ordering::SeqCst) {
                        break;
                    }
                    let tag = (pi as u64) << 40 | producer << 32 | seq;
                    let n = rng.random_range(1..=6);
                    let b = batch(tag, n, rng.random_range(10..600), limit);
                    let Ok(info) = writer.append(&p, b).await else { break };
                    acked.lock().unwrap().push(Acked {
                        partition: pi,
                        base: info.base_offset,
                        records: n,
                        tag,
                        at_ms: clock.now_ms(),
                    });
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == cut_after {
                        cut.store(true, Ordering::SeqCst);
                        *after_cut.lock().unwrap() = Some(fs.power_cut(seed));
                    }
                }
            }));
        }
    }
    // Time moves (and ticks run) while the producers append.
    let ticker = {
        let (writer, clock, cut, last_tick) = (writer.clone(), clock.clone(), cut.clone(), last_tick.clone());
        tokio::spawn(async move {
            while !cut.load(Ordering::SeqCst) {
                clock.advance(10);
                let start = clock.now_ms();
                if writer.tick().await.is_err() {
                    break;
                }
                if !cut.load(Ordering::SeqCst) {
                    last_tick.store(start, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    ticker.await.unwrap();
    let _ = writer.shutdown().await;
    drop(parts);
    let survivor = after_cut.lock().unwrap().take().expect("the cut happened");
    let acked = acked.lock().unwrap().clone();
    let last_tick = last_tick.load(Ordering::SeqCst);
    let journal_files = journal::list(&survivor, &data_dir().join("journal")).unwrap().last().map_or(0, |(s, _)| s + 1);

    // Reopen from what survived.
    let (writer, parts) = open(&survivor, &setup, ManualClock::new(T0 + 1_000_000))
        .unwrap_or_else(|e| panic!("seed {seed}: recovery after the cut failed: {e}"));
    let mut by_partition: Vec<HashMap<i64, Acked>> = vec![HashMap::new(); setup.partitions];
    for a in &acked {
        by_partition[a.partition].insert(a.base, *a);
    }
    let mut records_checked = 0;
    let rolls = parts.iter().map(|p| p.segments().len() - 1).sum();
    for (pi, p) in parts.iter().enumerate() {
        // (tag, record index) at each offset, read back with CRCs checked.
        let mut log: Vec<(u64, usize)> = Vec::new();
        let mut offset = p.log_start_offset();
        assert_eq!(offset, 0, "seed {seed}: partition {pi} lost its start");
        loop {
            let r = p.read(offset, 1 << 20).unwrap_or_else(|e| panic!("seed {seed}: read {pi}@{offset}: {e}"));
            let Some(next) = r.next_offset() else { break };
            for (h, b) in r.batches() {
                assert_eq!(h.base_offset, log.len() as i64, "seed {seed}: partition {pi}: offsets are not dense");
                let (_, recs) = decode_batch(&b).unwrap_or_else(|e| panic!("seed {seed}: bad batch survived: {e}"));
                for (i, rec) in recs.iter().enumerate() {
                    let v = std::str::from_utf8(rec.value.as_deref().unwrap()).unwrap();
                    let mut parts = v.split(' ');
                    let tag: u64 = parts.next().unwrap().parse().unwrap();
                    let idx: usize = parts.next().unwrap().parse().unwrap();
                    assert_eq!(idx, i, "seed {seed}: records of a batch out of order");
                    log.push((tag, idx));
                }
            }
            offset = next;
        }
        assert_eq!(log.len() as i64, p.high_watermark(), "seed {seed}: partition {pi} reads end before its end");
        // No batch appears twice.
        let mut firsts: Vec<u64> = log.iter().filter(|(_, i)| *i == 0).map(|(t, _)| *t).collect();
        let before = firsts.len();
        firsts.sort_unstable();
        firsts.dedup();
        assert_eq!(before, firsts.len(), "seed {seed}: partition {pi} holds a batch twice");
        for a in by_partition[pi].values() {
            let must_survive = match durability {
                Durability::Fsync => true,
                Durability::Interval { ms } => a.at_ms + ms as i64 <= last_tick,
                Durability::None => false,
            };
            let present = (a.base as usize) < log.len();
            if must_survive {
                assert!(
                    a.base as usize + a.records <= log.len(),
                    "seed {seed}: partition {pi} lost acknowledged batch at {} ({:?}); log ends at {}",
                    a.base,
                    durability,
                    log.len()
                );
            }
            if present {
                for i in 0..a.records {
                    assert_eq!(
                        log[a.base as usize + i],
                        (a.tag, i),
                        "seed {seed}: partition {pi} offset {} holds other data than was acknowledged",
                        a.base as usize + i
                    );
                    records_checked += 1;
                }
            }
        }
    }
    // The reopened log takes appends again.
    writer.register(parts[0].clone()).await.unwrap();
    let info = writer.append(&parts[0], batch(u64::MAX, 1, 10, limit)).await.unwrap();
    assert_eq!(info.base_offset, parts[0].high_watermark() - 1);
    writer.shutdown().await.unwrap();
    Outcome { acked: acked.len(), records_checked, rolls, journal_files }
}

fn iterations() -> u64 {
    std::env::var("TIERLOG_POWER_CUT_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}
fn first_seed() -> u64 {
    std::env::var("TIERLOG_POWER_CUT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

async fn run(durability: Durability) {
    let started = std::time::Instant::now();
    let (mut acked, mut checked, mut rolls, mut rotated) = (0, 0, 0, 0);
    let n = iterations();
    for seed in first_seed()..first_seed() + n {
        let o = iteration(seed, durability).await;
        acked += o.acked;
        checked += o.records_checked;
        rolls += o.rolls;
        rotated += u64::from(o.journal_files > 2);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "power cut ({durability}): {n} iterations in {secs:.1} s ({:.0} per minute), {acked} acknowledged batches, \
         {checked} records checked, {rolls} segment rolls, {rotated} iterations with journal rotations",
        n as f64 * 60.0 / secs
    );
    assert!(checked > 0 && rolls > 0);
    if durability == Durability::Fsync && n >= 20 {
        assert!(rotated > 0, "no iteration rotated the journal: the test does not cover rotation");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_keeps_every_record_acknowledged_under_fsync() {
    run(Durability::Fsync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_under_interval_loses_at_most_the_interval() {
    run(Durability::Interval { ms: INTERVAL_MS }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cut_under_none_keeps_a_dense_prefix() {
    run(Durability::None).await;
}
