//! `tierlog bench append`: the append and read paths against the raw disk, in one run.
//!
//! The disk here swings severalfold between seconds, so the throughput scenarios (1, 2, 4) run
//! both sides in short alternating slices (16 MiB each by default, at least 16 rounds per
//! trial, the order alternating each round) and report the median and interquartile range of
//! the per-round ratios: both sides of a round see the same disk.
//!
//! 1. One producer, groups of 64 KiB and 1 MiB, against write + fdatasync of the same size.
//! 2. 64 producers of 16 KiB batches (1 KiB records) on one partition, then on 64 partitions,
//!    against 1 MiB write + fdatasync; and the same with idempotent producers (a producer id and
//!    sequence in every batch), against the plain producers (the cost of dedup).
//! 3. p50/p99 append-to-ack latency at half the throughput of (2), against raw write + fdatasync
//!    latency of one 16 KiB batch.
//! 4. 100-byte records in 16 KiB batches: records per second.
//! 5. Sequential read of a hot partition against plain reads of its segment files.
//! 6. Reopening a partition of 1,000 segments, after a clean close and without a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use tiering::Durability;
use tiering::batch::{BatchBuilder, Compression, Record};

use super::{Scratch, Throughput, median, quantile_us, raw};
use crate::config::{EngineConfig, TopicConfig};
use crate::engine::Engine;

#[derive(Debug, Clone, Args)]
pub struct AppendBenchArgs {
    /// Tiny sizes and one trial: checks that every scenario runs (CI uses this).
    #[arg(long)]
    pub smoke: bool,
    /// Trials per scenario; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub trials: usize,
    /// MiB written per side per throughput trial (in slices of `--slice-mib`).
    #[arg(long, default_value_t = 256)]
    pub mib: u64,
    /// MiB per slice of the alternating throughput runs.
    #[arg(long, default_value_t = 16)]
    pub slice_mib: u64,
    /// A directory on the disk to measure. Default ./tierlog-bench (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A batch of `batch_bytes` (about) made of records with `record_bytes` values.
pub fn make_batch(batch_bytes: usize, record_bytes: usize) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    let value: Bytes = (0..record_bytes).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>().into();
    let mut i = 0u64;
    while b.records_bytes() + record_bytes + 20 <= batch_bytes.saturating_sub(61) || b.is_empty() {
        b.push(&Record {
            key: Some(Bytes::from(format!("k{:06}", i % 100_000))),
            value: Some(value.clone()),
            headers: vec![],
            timestamp: 1_700_000_000_000 + i as i64,
        });
        i += 1;
    }
    b.build()
}

/// Opens a fresh engine in `dir` with one topic `bench` of `partitions` partitions.
pub async fn bench_engine(dir: &Path, partitions: u32, durability: Durability) -> anyhow::Result<Engine> {
    // The hot path alone: no background uploads competing for the disk.
    let mut config = EngineConfig::new(dir);
    config.tiering.auto_upload = false;
    let engine = Engine::open(config).await?;
    let mut tc = TopicConfig { partitions, ..Default::default() };
    tc.log.durability = durability;
    engine.create_topic("bench", tc).await?;
    Ok(engine)
}

/// An engine with production settings: background uploads on (to the default local bucket, on
/// the same disk) and the remote cache's default disk tier, segments sealed every
/// `segment_bytes` so uploads run during the measurement. The uploader looks for sealed segments
/// every 100 ms (default 1 s): the whole measurement lasts a few seconds.
pub async fn production_engine(dir: &Path, partitions: u32, segment_bytes: u64) -> anyhow::Result<Engine> {
    let mut config = EngineConfig::new(dir);
    config.tiering.poll_ms = 100;
    let engine = Engine::open(config).await?;
    let mut tc = TopicConfig { partitions, ..Default::default() };
    tc.log.durability = Durability::Fsync;
    tc.log.segment_bytes = segment_bytes;
    engine.create_topic("bench", tc).await?;
    Ok(engine)
}

/// `producers` tasks append `batch` (producer i to partition i % partitions), each waiting for
/// its ack before the next, until `total` bytes are acknowledged. With `rate` (bytes/s overall),
/// each producer paces itself to its share. Returns throughput and append-to-ack latencies.
pub async fn drive(
    engine: &Engine,
    producers: usize,
    partitions: u32,
    batch: Bytes,
    total: u64,
    rate: Option<f64>,
) -> anyhow::Result<(Throughput, Vec<Duration>)> {
    drive_as(engine, producers, partitions, batch, total, rate, None, false).await
}

/// [`drive`] with each append's batch copied into a buffer of its own just before the append, as
/// a batch a producer serialized or a socket read would arrive (not one buffer, hot in the CPU's
/// cache, appended again and again).
pub async fn drive_copied(
    engine: &Engine,
    producers: usize,
    partitions: u32,
    batch: Bytes,
    total: u64,
) -> anyhow::Result<(Throughput, Vec<Duration>)> {
    drive_as(engine, producers, partitions, batch, total, None, None, true).await
}

/// Idempotent producers for [`drive_as`]: producer `i` has id `ids[i]` and its next sequence in
/// `next[i]`, kept across calls.
pub struct Idempotent {
    pub ids: Vec<i64>,
    pub next: Vec<std::sync::atomic::AtomicI32>,
}

impl Idempotent {
    pub async fn new(engine: &Engine, producers: usize) -> anyhow::Result<Arc<Self>> {
        let mut ids = Vec::with_capacity(producers);
        for _ in 0..producers {
            ids.push(engine.init_producer_id().await?);
        }
        Ok(Arc::new(Self { ids, next: (0..producers).map(|_| 0.into()).collect() }))
    }
}

/// `batch` as producer `id` sends it with base sequence `seq`: the producer fields set and the
/// CRC recomputed, as a client does for each batch.
pub fn with_sequence(batch: &Bytes, id: i64, seq: i32) -> Bytes {
    let mut b = batch.to_vec();
    b[43..51].copy_from_slice(&id.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// [`drive`], optionally as idempotent producers, optionally copying each batch (see
/// [`drive_copied`]; idempotent batches are always copies).
#[allow(clippy::too_many_arguments)]
pub async fn drive_as(
    engine: &Engine,
    producers: usize,
    partitions: u32,
    batch: Bytes,
    total: u64,
    rate: Option<f64>,
    idempotent: Option<Arc<Idempotent>>,
    copy: bool,
) -> anyhow::Result<(Throughput, Vec<Duration>)> {
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(producers);
    let records = tiering::batch::BatchHeader::parse(&batch)?.record_count as u64;
    for i in 0..producers {
        let (engine, batch, sent, idem) = (engine.clone(), batch.clone(), sent.clone(), idempotent.clone());
        let period = rate.map(|r| Duration::from_secs_f64(batch.len() as f64 * producers as f64 / r));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut next = Instant::now() + period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / producers as f64));
            while sent.fetch_add(batch.len() as u64, Ordering::Relaxed) < total {
                if let Some(p) = period {
                    // A benchmark paces its producers in real time.
                    #[allow(clippy::disallowed_methods)]
                    tokio::time::sleep_until(next.into()).await;
                    next += p;
                }
                let b = match &idem {
                    Some(x) => with_sequence(&batch, x.ids[i], x.next[i].fetch_add(records as i32, Ordering::Relaxed)),
                    None if copy => Bytes::copy_from_slice(&batch),
                    None => batch.clone(),
                };
                let t = Instant::now();
                engine.append("bench", (i as u32) % partitions, b).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed();
    let n = all.len() as u64;
    Ok((Throughput { bytes: n * batch.len() as u64, items: n * records, elapsed }, all))
}

/// Reads the whole partition 0 of `bench` sequentially, `max_bytes` per read.
pub async fn read_all(engine: &Engine, max_bytes: usize) -> anyhow::Result<Throughput> {
    let start = Instant::now();
    let (mut offset, mut bytes, mut reads) = (0i64, 0u64, 0u64);
    loop {
        let r = engine.read("bench", 0, offset, max_bytes).await?;
        let Some(next) = r.next_offset() else { break };
        bytes += r.batches.len() as u64;
        reads += 1;
        offset = next;
    }
    Ok(Throughput { bytes, items: reads, elapsed: start.elapsed() })
}

/// Prints medians of both sides and the median of the per-trial ratios: each tierlog trial is
/// paired with a raw trial run right beside it, so a disk that speeds up or slows down over the run
/// (shared virtual disks do, by 30% and more) moves both sides of a pair together.
pub(crate) fn ratio_line(name: &str, ours: &[f64], raw: &[f64], unit: &str, target: Option<f64>) {
    let pairs: Vec<f64> = ours.iter().zip(raw).map(|(a, b)| a / b).collect();
    let r = median(pairs.clone());
    let t = target.map(|t| format!(" (target >= {t:.1}{})", super::verdict(r >= t))).unwrap_or_default();
    let each: Vec<String> = pairs.iter().map(|p| format!("{p:.2}")).collect();
    println!(
        "{name:<44} tierlog {:>9.1} {unit}  raw {:>9.1} {unit}  ratio {r:.2}{t} [per trial: {}]",
        median(ours.to_vec()),
        median(raw.to_vec()),
        each.join(" ")
    );
}

/// Prints the median and interquartile range of per-round ratios `ours[i] / theirs[i]`, with the
/// medians of both sides.
pub(crate) fn rounds_line(name: &str, ours: &[f64], theirs: &[f64], unit: &str, target: Option<f64>) {
    let mut pairs: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
    pairs.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| pairs.get(((pairs.len() as f64 - 1.0) * f).round() as usize).copied().unwrap_or(f64::NAN);
    let r = median(pairs.clone());
    let t = target.map(|t| format!(" (target >= {t:.1}{})", super::verdict(r >= t))).unwrap_or_default();
    println!(
        "{name:<48} tierlog {:>8.1} {unit}  vs {:>8.1} {unit}  ratio median {r:.2} IQR {:.2}-{:.2} over {} rounds{t}",
        median(ours.to_vec()),
        median(theirs.to_vec()),
        q(0.25),
        q(0.75),
        pairs.len()
    );
}

/// One side of an alternating run.
enum Side<'a> {
    /// Plain appends of `chunk` bytes, each followed by fdatasync, in `dir`.
    Raw { dir: &'a Path, chunk: usize },
    /// Producers appending through an engine.
    Engine { engine: &'a Engine, producers: usize, partitions: u32, batch: Bytes, idempotent: Option<Arc<Idempotent>> },
}

impl Side<'_> {
    /// Runs one slice of `bytes`; returns MB/s.
    async fn slice(&self, bytes: u64) -> anyhow::Result<f64> {
        let th = match self {
            Side::Raw { dir, chunk } => raw::append_fdatasync(dir, bytes, *chunk)?.0,
            Side::Engine { engine, producers, partitions, batch, idempotent } => {
                let b = batch.clone();
                drive_as(engine, *producers, *partitions, b, bytes, None, idempotent.clone(), false).await?.0
            }
        };
        Ok(th.mb_per_s())
    }
}

/// Runs the sides in alternating slices of `slice` bytes, `rounds` times (the order rotating each
/// round); returns each side's figure per round.
async fn alternate(sides: &[Side<'_>], slice: u64, rounds: usize) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut out = vec![Vec::with_capacity(rounds); sides.len()];
    for round in 0..rounds {
        for k in 0..sides.len() {
            let i = (round + k) % sides.len();
            out[i].push(sides[i].slice(slice).await?);
        }
    }
    Ok(out)
}

struct Plan {
    total: u64,
    trials: usize,
    reopen_segments: u32,
    slice: u64,
    rounds: usize,
}

pub async fn run(args: &AppendBenchArgs) -> anyhow::Result<()> {
    let plan = if args.smoke {
        Plan { total: 4 << 20, trials: 1, reopen_segments: 50, slice: 1 << 20, rounds: 2 }
    } else {
        let slice = args.slice_mib.max(1) << 20;
        let rounds = ((args.mib << 20) / slice).max(16) as usize;
        Plan { total: args.mib << 20, trials: args.trials.max(1), reopen_segments: 1000, slice, rounds }
    };
    let root = Scratch::new(args.dir.as_deref(), "append")?;
    println!(
        "tierlog bench append: {} trials; throughput in alternating slices of {} MiB, {} rounds per trial; dir {}",
        plan.trials,
        plan.slice >> 20,
        plan.rounds,
        root.path.display()
    );
    if args.smoke {
        println!("(smoke mode: checks that every scenario runs; at these sizes the figures mean nothing)");
    }
    raw::warm_disk(&root.path, if args.smoke { 8 << 20 } else { 1 << 30 })?;

    // 1. One producer, same group size as the raw loop.
    for (label, size) in [("64KiB", 64usize << 10), ("1MiB", 1 << 20)] {
        let batch = make_batch(size, 1024);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for t in 0..plan.trials {
            let d = Scratch::new(Some(&root.path), &format!("s1-{label}-{t}"))?;
            let engine = bench_engine(&d.path, 1, Durability::Fsync).await?;
            let sides = [
                Side::Engine { engine: &engine, producers: 1, partitions: 1, batch: batch.clone(), idempotent: None },
                Side::Raw { dir: &d.path, chunk: batch.len() },
            ];
            let r = alternate(&sides, plan.slice, plan.rounds).await?;
            engine.close().await?;
            ours.extend(&r[0]);
            theirs.extend(&r[1]);
        }
        rounds_line(&format!("1. durable append, 1 producer, {label} groups"), &ours, &theirs, "MB/s", Some(0.9));
    }

    // 2. 64 producers of 16 KiB batches: one partition, then 64 partitions; plain and idempotent.
    let batch16 = make_batch(16 << 10, 1024);
    let mut raw_lat16 = Vec::new();
    let mut best_64 = 0f64;
    for (label, partitions) in [("1 partition", 1u32), ("64 partitions", 64)] {
        let (mut plain, mut idem, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..plan.trials {
            let d = Scratch::new(Some(&root.path), &format!("s2-{partitions}-{t}"))?;
            let d2 = Scratch::new(Some(&root.path), &format!("s2i-{partitions}-{t}"))?;
            let engine = bench_engine(&d.path, partitions, Durability::Fsync).await?;
            let engine2 = bench_engine(&d2.path, partitions, Durability::Fsync).await?;
            let ids = Idempotent::new(&engine2, 64).await?;
            let sides = [
                Side::Engine { engine: &engine, producers: 64, partitions, batch: batch16.clone(), idempotent: None },
                Side::Raw { dir: &d.path, chunk: 1 << 20 },
                Side::Engine {
                    engine: &engine2,
                    producers: 64,
                    partitions,
                    batch: batch16.clone(),
                    idempotent: Some(ids),
                },
            ];
            let r = alternate(&sides, plan.slice, plan.rounds).await?;
            engine.close().await?;
            engine2.close().await?;
            if partitions == 1 {
                best_64 = best_64.max(r[0].iter().cloned().fold(0.0, f64::max) * 1e6);
            }
            plain.extend(&r[0]);
            theirs.extend(&r[1]);
            idem.extend(&r[2]);
        }
        let target = if partitions == 1 { 0.8 } else { 0.6 };
        rounds_line(&format!("2. 64 producers x 16KiB, {label}"), &plain, &theirs, "MB/s", Some(target));
        rounds_line(&format!("2. ... idempotent, {label} (vs raw)"), &idem, &theirs, "MB/s", None);
        rounds_line(&format!("2. ... idempotent, {label} (vs plain)"), &idem, &plain, "MB/s", None);
    }

    // 2b. The same 64 producers on one partition with production settings (uploads of segments
    // sealed every slice and the disk cache on), beside the run without them and the raw disk.
    {
        let (mut prod, mut plain, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        let segment = (plan.slice / 4).max(1 << 20);
        for t in 0..plan.trials {
            let d = Scratch::new(Some(&root.path), &format!("s2p-{t}"))?;
            let d2 = Scratch::new(Some(&root.path), &format!("s2q-{t}"))?;
            let production = production_engine(&d.path, 1, segment).await?;
            let engine = bench_engine(&d2.path, 1, Durability::Fsync).await?;
            let sides = [
                Side::Engine {
                    engine: &production,
                    producers: 64,
                    partitions: 1,
                    batch: batch16.clone(),
                    idempotent: None,
                },
                Side::Raw { dir: &d.path, chunk: 1 << 20 },
                Side::Engine {
                    engine: &engine,
                    producers: 64,
                    partitions: 1,
                    batch: batch16.clone(),
                    idempotent: None,
                },
            ];
            let r = alternate(&sides, plan.slice, plan.rounds).await?;
            let uploaded = production.remote_head("bench", 0)?.totals.segments;
            production.close().await?;
            engine.close().await?;
            println!(
                "   (production run, trial {t}: {uploaded} segments of {} MiB uploaded while measured)",
                segment >> 20
            );
            prod.extend(&r[0]);
            theirs.extend(&r[1]);
            plain.extend(&r[2]);
        }
        rounds_line("2b. 64 producers x 16KiB, uploads + disk cache on (vs raw)", &prod, &theirs, "MB/s", None);
        rounds_line("2b. ... uploads + disk cache on (vs without)", &prod, &plain, "MB/s", None);
    }

    // 3. Latency at half the maximum throughput of (2).
    {
        let d = Scratch::new(Some(&root.path), "s3")?;
        let (_, mut lat_raw) = raw::append_fdatasync(&d.path, (plan.total / 4).max(1 << 20), batch16.len())?;
        raw_lat16.append(&mut lat_raw);
        let engine = bench_engine(&d.path, 1, Durability::Fsync).await?;
        let (th, mut lat) = drive(&engine, 64, 1, batch16.clone(), plan.total / 2, Some(best_64 / 2.0)).await?;
        engine.close().await?;
        let (p50, p99) = (quantile_us(&mut lat, 0.5), quantile_us(&mut lat, 0.99));
        let (r50, r99) = (quantile_us(&mut raw_lat16, 0.5), quantile_us(&mut raw_lat16, 0.99));
        println!(
            "3. latency at {:.0} MB/s (half of max): append-to-ack p50 {p50:.0} us p99 {p99:.0} us; raw 16KiB write+fdatasync p50 {r50:.0} us p99 {r99:.0} us; p50 ratio {:.2} p99 ratio {:.2}",
            th.mb_per_s(),
            p50 / r50,
            p99 / r99
        );
    }

    // 4. Small records: records per second, against the raw limit in records (1 MiB write +
    // fdatasync of batches of these records).
    {
        let batch = make_batch(16 << 10, 100);
        let per_batch = tiering::batch::BatchHeader::parse(&batch)?.record_count as f64;
        let rec_bytes = batch.len() as f64 / per_batch;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for t in 0..plan.trials {
            let d = Scratch::new(Some(&root.path), &format!("s4-{t}"))?;
            let engine = bench_engine(&d.path, 1, Durability::Fsync).await?;
            let sides = [
                Side::Engine { engine: &engine, producers: 64, partitions: 1, batch: batch.clone(), idempotent: None },
                Side::Raw { dir: &d.path, chunk: 1 << 20 },
            ];
            let r = alternate(&sides, plan.slice, plan.rounds).await?;
            engine.close().await?;
            // MB/s to thousand records/s, the same conversion for both sides.
            ours.extend(r[0].iter().map(|mb| mb * 1e6 / rec_bytes / 1e3));
            theirs.extend(r[1].iter().map(|mb| mb * 1e6 / rec_bytes / 1e3));
        }
        rounds_line("4. 100-byte records in 16KiB batches", &ours, &theirs, "k rec/s", None);
    }

    // 5. Sequential read of a hot partition.
    {
        let d = Scratch::new(Some(&root.path), "s5")?;
        let engine = bench_engine(&d.path, 1, Durability::None).await?;
        drive(&engine, 8, 1, make_batch(64 << 10, 1024), plan.total, None).await?;
        engine.flush().await?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(d.path.join("bench-0"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        raw::read_files(&files, 1 << 20)?; // bring everything into the page cache
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..plan.trials.max(3) {
            theirs.push(raw::read_files(&files, 1 << 20)?.mb_per_s());
            ours.push(read_all(&engine, 1 << 20).await?.mb_per_s());
        }
        engine.close().await?;
        ratio_line("5. sequential read, hot partition, 1MiB reads", &ours, &theirs, "MB/s", Some(0.8));
    }

    // 6. Reopen a partition of many segments.
    {
        let d = Scratch::new(Some(&root.path), "s6")?;
        let engine = Engine::open(EngineConfig::new(&d.path)).await?;
        let mut tc = TopicConfig::default();
        tc.log.segment_bytes = 8192;
        tc.log.durability = Durability::None;
        engine.create_topic("bench", tc).await?;
        let batch = make_batch(6 << 10, 200);
        for _ in 0..plan.reopen_segments {
            engine.append("bench", 0, batch.clone()).await?;
        }
        engine.close().await?;
        let mut clean = Vec::new();
        let mut unchecked = Vec::new();
        for _ in 0..plan.trials.max(3) {
            let t = Instant::now();
            let e = Engine::open(EngineConfig::new(&d.path)).await?;
            clean.push(t.elapsed().as_secs_f64() * 1e3);
            let segs = e.describe_topic("bench")?.partitions[0].segments.len();
            anyhow::ensure!(
                segs as u32 >= plan.reopen_segments,
                "expected {} segments, found {segs}",
                plan.reopen_segments
            );
            e.close().await?;
            std::fs::remove_file(d.path.join("bench-0").join(tiering::local::checkpoint::CHECKPOINT_FILE))?;
            let t = Instant::now();
            let e = Engine::open(EngineConfig::new(&d.path)).await?;
            unchecked.push(t.elapsed().as_secs_f64() * 1e3);
            e.close().await?;
        }
        println!(
            "6. reopen a partition of {} segments: {:.1} ms after a clean close, {:.1} ms with no checkpoint (every batch CRC-checked) (target < 1000 ms)",
            plan.reopen_segments,
            median(clean),
            median(unchecked)
        );
    }
    Ok(())
}
