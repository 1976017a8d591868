//! Criterion benches over the same code as `tierlog bench append`: each tierlog measurement has
//! its raw limit beside it (write + fdatasync of the same sizes, plain reads of the same file),
//! and the run ends with the ratios, computed from the measurements criterion just made.
//!
//! `cargo bench` (set TIERLOG_BENCH_DIR to measure another disk).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use tierlog::bench::{append, raw};
use tierlog::{Durability, Engine};

/// Total time and bytes per bench id, for the ratios printed at the end.
static TOTALS: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(id: &'static str, elapsed: Duration, bytes: u64) {
    let mut t = TOTALS.lock().unwrap();
    let e = t.entry(id).or_default();
    e.0 += elapsed;
    e.1 += bytes;
}

fn bench_dir() -> PathBuf {
    std::env::var_os("TIERLOG_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/criterion-data"))
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    std::fs::create_dir_all(bench_dir()).unwrap();
    raw::warm_disk(&bench_dir(), 256 << 20).unwrap();

    let mut g = c.benchmark_group("durable_append");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));

    // One producer, 64 KiB groups.
    let batch64 = append::make_batch(64 << 10, 1024);
    let len64 = batch64.len() as u64;
    g.throughput(Throughput::Bytes(len64));
    g.bench_function("raw_64KiB_write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir_in(bench_dir()).unwrap();
            let (th, _) = raw::append_fdatasync(dir.path(), iters * len64, len64 as usize).unwrap();
            record("raw_64KiB", th.elapsed, th.bytes);
            th.elapsed
        })
    });
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let engine: Engine = rt.block_on(append::bench_engine(dir.path(), 1, Durability::Fsync)).unwrap();
    g.bench_function("tierlog_64KiB_one_producer", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (engine, batch) = (engine.clone(), batch64.clone());
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    engine.append("bench", 0, batch.clone()).await.unwrap();
                }
                let elapsed = start.elapsed();
                record("tierlog_64KiB", elapsed, iters * batch.len() as u64);
                elapsed
            }
        })
    });
    rt.block_on(engine.close()).unwrap();

    // 64 producers of 16 KiB batches against 1 MiB write + fdatasync; one iteration = 1 MiB.
    let batch16 = append::make_batch(16 << 10, 1024);
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("raw_1MiB_write_fdatasync", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir_in(bench_dir()).unwrap();
            let (th, _) = raw::append_fdatasync(dir.path(), iters << 20, 1 << 20).unwrap();
            record("raw_1MiB", th.elapsed, th.bytes);
            th.elapsed
        })
    });
    for (id, partitions) in [("tierlog_64_producers_1_partition", 1u32), ("tierlog_64_producers_64_partitions", 64)] {
        let dir = tempfile::tempdir_in(bench_dir()).unwrap();
        let engine = rt.block_on(append::bench_engine(dir.path(), partitions, Durability::Fsync)).unwrap();
        g.bench_function(id, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (engine, batch) = (engine.clone(), batch16.clone());
                async move {
                    let (th, _) = append::drive(&engine, 64, partitions, batch, iters << 20, None).await.unwrap();
                    record(id, th.elapsed, th.bytes);
                    th.elapsed
                }
            })
        });
        rt.block_on(engine.close()).unwrap();
    }
    g.finish();

    // Sequential read of a hot partition, 16 MiB per iteration... of the same file both ways.
    let mut g = c.benchmark_group("hot_read");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let engine = rt.block_on(append::bench_engine(dir.path(), 1, Durability::None)).unwrap();
    rt.block_on(append::drive(&engine, 4, 1, batch64.clone(), 64 << 20, None)).unwrap();
    rt.block_on(engine.flush()).unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("bench-0"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    let size: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    g.throughput(Throughput::Bytes(size));
    g.bench_function("raw_read_1MiB_chunks", |b| {
        b.iter(|| {
            let th = raw::read_files(&files, 1 << 20).unwrap();
            record("raw_read", th.elapsed, th.bytes);
        })
    });
    g.bench_function("tierlog_read_1MiB", |b| {
        b.to_async(&rt).iter(|| {
            let engine = engine.clone();
            async move {
                let th = append::read_all(&engine, 1 << 20).await.unwrap();
                record("tierlog_read", th.elapsed, th.bytes);
            }
        })
    });
    g.finish();
    rt.block_on(engine.close()).unwrap();
}

fn print_ratios() {
    let t = TOTALS.lock().unwrap();
    let rate = |id: &str| t.get(id).map(|(d, b)| *b as f64 / d.as_secs_f64() / 1e6);
    for (ours, theirs, target) in [
        ("tierlog_64KiB", "raw_64KiB", 0.9),
        ("tierlog_64_producers_1_partition", "raw_1MiB", 0.8),
        ("tierlog_64_producers_64_partitions", "raw_1MiB", 0.6),
        ("tierlog_read", "raw_read", 0.8),
    ] {
        if let (Some(a), Some(b)) = (rate(ours), rate(theirs)) {
            println!("{ours:<36} {a:>9.1} MB/s  {theirs:<10} {b:>9.1} MB/s  ratio {:.2} (target >= {target})", a / b);
        }
    }
}

criterion_group!(group, benches);

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
