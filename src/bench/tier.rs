//! `tierlog bench tier`: the remote tier against the raw object store, in one run.
//!
//! The bucket is the S3-compatible server at `--s3-endpoint` / `TIERLOG_S3_ENDPOINT` (the test
//! command's SeaweedFS), or a local directory when none is given. With the engine's defaults
//! (1 GiB segments, 256 MiB parts, 4 uploads in flight, 32 MiB read-ahead):
//!
//! 1. Upload: `tier_now` of freshly sealed segments against plain object_store PUTs of the same
//!    files, the same way (single PUT or multipart with the same part size), at the same
//!    concurrency. Target ratio >= 0.9.
//! 2. Cold sequential replay from the bucket (fresh engine, empty cache) against plain ranged GETs
//!    of the same objects, in the window size and number in flight that a sweep over the first
//!    512 MiB found fastest for this store (so the ratio is a distance from the store's limit,
//!    not from tierlog's own read-ahead shape). Target >= 0.8.
//! 3. Cached replay (the same range read a second time) against a read of the same records from a
//!    local topic. Target >= 0.8.
//! 4. Cold and warm `offset_for_time`: GETs (at most 3 cold) and latency.
//! 5. Requests per GiB ingested (target <= 8 writes) and per GiB replayed (<= 1 GET per 8 MiB).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tiering::Durability;
use tiering::batch::{BatchBuilder, Compression, Record};
use tiering::local::OffsetSpec;
use tiering::object_store::path::Path as ObjectPath;
use tiering::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tiering::remote::reader::read_ahead_window;
use tokio::sync::Semaphore;

use super::append::ratio_line;
use super::{Scratch, median};
use crate::config::{EngineConfig, TopicConfig};
use crate::engine::Engine;

#[derive(Debug, Clone, Args)]
pub struct TierBenchArgs {
    /// Tiny sizes: checks that every scenario runs (CI uses this).
    #[arg(long)]
    pub smoke: bool,
    /// Trials of the upload and replay comparisons; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub trials: usize,
    /// MiB produced per trial.
    #[arg(long, default_value_t = 2048)]
    pub mib: u64,
    /// Segment size in MiB (the engine's default is 1024).
    #[arg(long, default_value_t = 1024)]
    pub segment_mib: u64,
    /// MiB replayed twice for the cached-replay comparison (the memory cache is sized to hold it).
    #[arg(long, default_value_t = 256)]
    pub cached_mib: u64,
    #[command(flatten)]
    pub bucket: super::BucketArgs,
    /// Local scratch directory. Default ./tierlog-bench (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const T0: i64 = 1_700_000_000_000;

/// Batch `b` of about 1 MiB: 1 KiB records whose timestamps grow with `b`.
fn batch(b: u64, bytes: usize) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    let value: Bytes = (0..1024).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>().into();
    let mut i = 0;
    while builder.records_bytes() + 1100 <= bytes || builder.is_empty() {
        builder.push(&Record {
            key: Some(Bytes::from(format!("k{:06}", i % 100_000))),
            value: Some(value.clone()),
            headers: vec![],
            timestamp: T0 + b as i64 * 1000 + i,
        });
        i += 1;
    }
    builder.build()
}

/// Appends about `total` bytes as whole segments of `segment` bytes (filled as the engine fills
/// them: a batch that would grow a segment past `segment` starts the next one), and seals the
/// last, so uploads see full segments only.
async fn produce(engine: &Engine, topic: &str, total: u64, segment: u64, batch_bytes: usize) -> anyhow::Result<u64> {
    let mut in_flight = std::collections::VecDeque::new();
    let segments = total.div_ceil(segment).max(1);
    let (mut filled, mut in_segment, mut b) = (0u64, 0u64, 0u64);
    loop {
        let data = batch(b, batch_bytes);
        if in_segment + data.len() as u64 > segment {
            filled += 1;
            in_segment = 0;
            if filled == segments {
                break;
            }
        }
        in_segment += data.len() as u64;
        b += 1;
        in_flight.push_back(engine.enqueue_append(topic, 0, data).await?);
        while in_flight.len() > 16 {
            in_flight.pop_front().expect("invariant: non-empty").await?;
        }
    }
    for f in in_flight {
        f.await?;
    }
    engine.roll(topic, 0).await?;
    engine.flush().await?;
    Ok(b)
}

/// Plain PUTs of `files` (as object_store does them: one PUT up to `single_max`, else multipart
/// with `part` parts), `concurrency` requests in flight. Returns seconds.
async fn raw_upload(
    store: &Arc<dyn ObjectStore>,
    files: &[(PathBuf, u64)],
    prefix: &str,
    single_max: u64,
    part: u64,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut uploads = FuturesUnordered::new();
    for (i, (path, size)) in files.iter().enumerate() {
        let (store, permits, path, size) = (store.clone(), permits.clone(), path.clone(), *size);
        let key = ObjectPath::from(format!("{prefix}/{i}.log"));
        uploads.push(tokio::spawn(async move {
            if size <= single_max {
                let _p = permits.acquire().await?;
                let data = read_at(&path, 0, size as usize).await?;
                store.put(&key, PutPayload::from(data)).await?;
                return anyhow::Ok(());
            }
            let mut up = store.put_multipart(&key).await?;
            let mut parts = FuturesUnordered::new();
            let mut pos = 0;
            while pos < size {
                let len = part.min(size - pos);
                let p = permits.clone().acquire_owned().await?;
                let fut = up.put_part(PutPayload::from(read_at(&path, pos, len as usize).await?));
                parts.push(tokio::spawn(async move {
                    let r = fut.await;
                    drop(p);
                    r
                }));
                pos += len;
                while parts.len() >= 2 {
                    parts.next().await.expect("invariant: non-empty")??;
                }
            }
            while let Some(r) = parts.next().await {
                r??;
            }
            up.complete().await?;
            Ok(())
        }));
    }
    while let Some(r) = uploads.next().await {
        r??;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn read_at(path: &std::path::Path, pos: u64, len: usize) -> anyhow::Result<Bytes> {
    let path = path.to_owned();
    Ok(tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&path)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, pos)?;
        Ok(Bytes::from(buf))
    })
    .await??)
}

/// Plain ranged GETs of `objects` in order, `window` bytes each, `depth` in flight, touching every
/// byte once. Returns seconds.
pub(crate) async fn raw_replay(
    store: &Arc<dyn ObjectStore>,
    objects: &[(ObjectPath, u64)],
    window: u64,
    depth: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut ranges = objects.iter().flat_map(|(k, size)| {
        (0..size.div_ceil(window)).map(move |w| (k.clone(), w * window..((w + 1) * window).min(*size)))
    });
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < depth {
            let Some((k, r)) = ranges.next() else { break };
            let store = store.clone();
            in_flight.push_back(tokio::spawn(async move { store.get_range(&k, r).await }));
        }
        let Some(f) = in_flight.pop_front() else { break };
        std::hint::black_box(f.await??.len());
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Bytes the raw reader's shape sweep reads per shape tried.
pub(crate) const RAW_SWEEP_SAMPLE: u64 = 512 << 20;

/// The raw reader's best shape of ranged GETs, found by a sweep over a sample of the objects.
pub(crate) struct RawShape {
    /// Bytes per GET.
    pub window: u64,
    /// GETs in flight.
    pub depth: usize,
    /// Every shape tried, as (window, depth, best MB/s of two rounds) in the order tried.
    pub tried: Vec<(u64, usize, f64)>,
}

impl RawShape {
    /// One line for the bench output: the shapes tried and the winner.
    pub fn describe(&self) -> String {
        let tried: Vec<String> =
            self.tried.iter().map(|(w, d, mb)| format!("{} MiB x {d}: {mb:.0}", w >> 20)).collect();
        format!(
            "raw GET shape swept (window x in flight: MB/s): {}; best {} MiB x {}",
            tried.join(", "),
            self.window >> 20,
            self.depth
        )
    }
}

/// Sweeps the raw reader's window and parallelism over the first `sample` bytes of `objects`, one
/// axis at a time (in-flight count at the 8 MiB window, then the window at the best count), and
/// returns the fastest of all tried. The comparison is then against the store's limit, not against a raw
/// reader handicapped by tierlog's own choices.
pub(crate) async fn raw_best_shape(
    store: &Arc<dyn ObjectStore>,
    objects: &[(ObjectPath, u64)],
    sample: u64,
) -> anyhow::Result<RawShape> {
    let mut left = sample;
    let prefix: Vec<(ObjectPath, u64)> = objects
        .iter()
        .map_while(|(k, size)| {
            let take = (*size).min(left);
            left -= take;
            (take > 0).then(|| (k.clone(), take))
        })
        .collect();
    let bytes: u64 = prefix.iter().map(|p| p.1).sum();
    // Each candidate's best of two rounds, the rounds interleaved so a slow second of the disk or
    // a cold first read does not decide the winner.
    let sweep = async |shapes: &[(u64, usize)]| -> anyhow::Result<Vec<(u64, usize, f64)>> {
        let mut best = vec![0f64; shapes.len()];
        for _round in 0..2 {
            for (i, &(window, depth)) in shapes.iter().enumerate() {
                let secs = raw_replay(store, &prefix, window, depth).await?;
                best[i] = best[i].max(bytes as f64 / secs / 1e6);
            }
        }
        Ok(shapes.iter().zip(best).map(|(&(w, d), mb)| (w, d, mb)).collect())
    };
    let fastest = |v: &[(u64, usize, f64)]| v.iter().copied().max_by(|a, b| a.2.total_cmp(&b.2));
    let depths: Vec<(u64, usize)> = [1, 2, 4, 8, 16, 32].into_iter().map(|d| (8 << 20, d)).collect();
    let mut tried = sweep(&depths).await?;
    let (_, depth, _) = fastest(&tried).unwrap_or((8 << 20, 8, 0.0));
    let windows: Vec<(u64, usize)> =
        [1u64 << 20, 2 << 20, 4 << 20, 16 << 20, 32 << 20].into_iter().map(|w| (w, depth)).collect();
    tried.extend(sweep(&windows).await?);
    let (window, depth, _) = fastest(&tried).unwrap_or((8 << 20, depth, 0.0));
    Ok(RawShape { window, depth, tried })
}

/// Reads `topic` from `from` until `to` in `max`-byte reads; returns bytes and seconds.
async fn replay(engine: &Engine, topic: &str, from: i64, to: i64, max: usize) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let (mut off, mut bytes) = (from, 0u64);
    while off < to {
        let r = engine.read(topic, 0, off, max).await?;
        bytes += r.batches.len() as u64;
        off = r.next_offset().ok_or_else(|| anyhow::anyhow!("read at {off} returned nothing"))?;
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

pub async fn run(args: &TierBenchArgs) -> anyhow::Result<()> {
    let (total, segment, cached, batch_bytes) = if args.smoke {
        (36u64 << 20, 12u64 << 20, 8u64 << 20, 256 << 10)
    } else {
        (args.mib << 20, args.segment_mib << 20, args.cached_mib << 20, 1 << 20)
    };
    let trials = if args.smoke { 1 } else { args.trials.max(1) };
    let root = Scratch::new(args.dir.as_deref(), "tier")?;
    let store_config = args.bucket.store_config("bench-tier", &root.path);
    let mut config = EngineConfig::new(root.path.join("data"));
    config.object_store = Some(store_config.clone());
    config.tiering.auto_upload = false;
    config.tiering.cache.memory_bytes = (cached + cached / 2).max(64 << 20);
    config.tiering.cache.disk_bytes = Some(0);
    if args.smoke {
        // Exercise multipart: 12 MiB segments in 5 MiB parts.
        config.tiering.single_put_max_bytes = 4 << 20;
        config.tiering.part_bytes = 5 << 20;
    }
    let t = &config.tiering;
    println!(
        "tierlog bench tier: bucket: {store_config}; {} MiB per trial in {} MiB segments, {} trial(s); \
         uploads: single PUT <= {} MiB, else {} MiB parts, {} in flight; read-ahead {} MiB",
        total >> 20,
        segment >> 20,
        trials,
        t.single_put_max_bytes >> 20,
        t.part_bytes >> 20,
        t.upload_concurrency,
        t.cache.read_ahead_bytes >> 20
    );
    if args.smoke {
        println!("(smoke mode: checks that every scenario runs; at these sizes the figures mean nothing)");
    }
    let raw_store = store_config.build()?;
    let topic = |local_retention| TopicConfig {
        partitions: 1,
        log: tiering::LogConfig {
            segment_bytes: segment,
            durability: Durability::None,
            local_retention_bytes: local_retention,
            ..Default::default()
        },
        ..Default::default()
    };

    // 1. Upload.
    let engine = Engine::open(config.clone()).await?;
    let (mut ours_mb, mut raw_mb, mut writes_per_gib) = (Vec::new(), Vec::new(), Vec::new());
    for trial in 0..trials {
        let name = format!("cold-{trial}");
        engine.create_topic(&name, topic(Some(1))).await?;
        produce(&engine, &name, total, segment, batch_bytes).await?;
        let files: Vec<(PathBuf, u64)> = engine.describe_topic(&name)?.partitions[0]
            .segments
            .iter()
            .filter(|s| s.sealed)
            .map(|s| (s.path.clone(), s.size))
            .collect();
        // Hard links for the raw uploads: tierlog's local retention deletes the segments once
        // they are in the bucket, and the second raw upload runs after that.
        let links = root.path.join(format!("raw-src-{trial}"));
        std::fs::create_dir_all(&links)?;
        let files = files
            .into_iter()
            .enumerate()
            .map(|(i, (path, size))| {
                let link = links.join(format!("{i}.log"));
                std::fs::hard_link(&path, &link)?;
                Ok((link, size))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let bytes: u64 = files.iter().map(|f| f.1).sum();
        // Raw uploads before and after tierlog's, averaged: the server slows as it fills, and a
        // fixed order would charge the drift to one side.
        let raw = |round: usize| {
            let (store, files) = (&raw_store, &files);
            async move {
                let prefix = format!("raw-{trial}-{round}");
                raw_upload(store, files, &prefix, t.single_put_max_bytes, t.part_bytes, t.upload_concurrency).await
            }
        };
        let raw1 = raw(1).await?;
        let before = engine.object_store_counts();
        let started = Instant::now();
        let report = engine.tier_now(&name, 0).await?;
        let secs = started.elapsed().as_secs_f64();
        let c = engine.object_store_counts().since(&before);
        let raw_secs = (raw1 + raw(2).await?) / 2.0;
        std::fs::remove_dir_all(&links)?;
        anyhow::ensure!(report.uploaded_bytes == bytes, "uploaded {} of {bytes} bytes", report.uploaded_bytes);
        ours_mb.push(bytes as f64 / secs / 1e6);
        raw_mb.push(bytes as f64 / raw_secs / 1e6);
        writes_per_gib.push(c.writes() as f64 / (bytes as f64 / (1u64 << 30) as f64));
    }
    engine.close().await?;

    // 2. Cold replay: a fresh engine, nothing cached.
    let (mut cold_mb, mut raw_get_mb, mut gets_per_8mib) = (Vec::new(), Vec::new(), Vec::new());
    let mut shape = None;
    for trial in 0..trials {
        let name = format!("cold-{trial}");
        let engine = Engine::open(config.clone()).await?;
        let head = engine.remote_head(&name, 0)?;
        let mut objects = Vec::new();
        let keys = tiering::remote::keys::PartitionKeys::new(&name, 0);
        for e in &head.segments {
            objects.push((e.segment_key(&keys), e.size));
        }
        // The raw reader's best window and parallelism, swept on the first trial's objects.
        if shape.is_none() {
            shape = Some(raw_best_shape(&raw_store, &objects, RAW_SWEEP_SAMPLE).await?);
        }
        let (window, depth) = shape.as_ref().map(|s| (s.window, s.depth)).unwrap_or((8 << 20, 8));
        let raw1 = raw_replay(&raw_store, &objects, window, depth).await?;
        let before = engine.object_store_counts();
        let (bytes, secs) = replay(&engine, &name, head.log_start_offset, head.next_offset, 1 << 20).await?;
        let c = engine.object_store_counts().since(&before);
        let raw2 = raw_replay(&raw_store, &objects, window, depth).await?;
        cold_mb.push(bytes as f64 / secs / 1e6);
        raw_get_mb.push(bytes as f64 / ((raw1 + raw2) / 2.0) / 1e6);
        gets_per_8mib.push(c.gets() as f64 / (bytes as f64 / (8u64 << 20) as f64));
        engine.close().await?;
    }

    // 3. Cached replay of the first `cached` bytes against a local topic holding the same data.
    let engine = Engine::open(config.clone()).await?;
    engine.create_topic("hot", topic(None)).await?;
    produce(&engine, "hot", cached, cached.min(segment), batch_bytes).await?;
    let hot_end = engine.describe_topic("hot")?.partitions[0].high_watermark;
    let head = engine.remote_head("cold-0", 0)?;
    let to = hot_end.min(head.next_offset);
    replay(&engine, "cold-0", 0, to, 1 << 20).await?; // fills the cache
    replay(&engine, "hot", 0, to, 1 << 20).await?; // warms the page cache
    let (mut cached_mb, mut local_mb) = (Vec::new(), Vec::new());
    let mut cached_gets = 0;
    for _ in 0..trials.max(3) {
        let before = engine.object_store_counts();
        let (b1, s1) = replay(&engine, "cold-0", 0, to, 1 << 20).await?;
        cached_gets += engine.object_store_counts().since(&before).gets();
        let (b2, s2) = replay(&engine, "hot", 0, to, 1 << 20).await?;
        cached_mb.push(b1 as f64 / s1 / 1e6);
        local_mb.push(b2 as f64 / s2 / 1e6);
    }
    engine.close().await?;

    // 4. offset_for_time, cold (a fresh engine per probe) and warm.
    let batches_total = head.next_offset; // offsets, for picking probes
    let mut cold_gets = Vec::new();
    let (mut cold_lat, mut warm_lat) = (Vec::new(), Vec::new());
    let mut warm_gets = 0;
    let records_per_batch = {
        let engine = Engine::open(config.clone()).await?;
        let r = engine.read("cold-0", 0, 0, 1).await?;
        let n = r.records()?.len() as i64;
        engine.close().await?;
        n.max(1)
    };
    let batches = batches_total / records_per_batch;
    for k in 1..=5i64 {
        let b = batches * k / 6;
        let ts = T0 + b * 1000 + records_per_batch / 2;
        let engine = Engine::open(config.clone()).await?;
        let before = engine.object_store_counts();
        let started = Instant::now();
        let found = engine.offset_for_time("cold-0", 0, OffsetSpec::Timestamp(ts)).await?;
        cold_lat.push(started.elapsed());
        cold_gets.push(engine.object_store_counts().since(&before).gets());
        anyhow::ensure!(found.is_some_and(|f| f.timestamp >= ts), "offset_for_time({ts}) found {found:?}");
        let before = engine.object_store_counts();
        let started = Instant::now();
        let again = engine.offset_for_time("cold-0", 0, OffsetSpec::Timestamp(ts)).await?;
        warm_lat.push(started.elapsed());
        warm_gets += engine.object_store_counts().since(&before).gets();
        anyhow::ensure!(again == found, "warm lookup disagrees");
        engine.close().await?;
    }

    println!();
    ratio_line("1. upload (tier_now vs raw PUT, same bytes)", &ours_mb, &raw_mb, "MB/s", Some(0.9));
    ratio_line("2. cold replay (vs best raw ranged GETs)", &cold_mb, &raw_get_mb, "MB/s", Some(0.8));
    if let Some(shape) = &shape {
        println!("   {}", shape.describe());
        println!(
            "   tierlog reads ahead {} MiB in {} MiB GETs",
            t.cache.read_ahead_bytes >> 20,
            read_ahead_window(t.cache.read_ahead_bytes, t.cache.chunk_bytes) >> 20
        );
    }
    ratio_line("3. cached replay (vs local segment read)", &cached_mb, &local_mb, "MB/s", Some(0.8));
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    println!(
        "4. offset_for_time: cold {} GETs max (target <= 3), median {:.2} ms; warm {} GETs, median {:.3} ms",
        cold_gets.iter().max().copied().unwrap_or(0),
        median(cold_lat.iter().map(ms).collect()),
        warm_gets,
        median(warm_lat.iter().map(ms).collect())
    );
    let wpg = median(writes_per_gib);
    let g8 = median(gets_per_8mib);
    println!(
        "5. requests: {wpg:.1} writes per GiB ingested (target <= 8{}), {g8:.2} GETs per 8 MiB replayed (target <= 1{}), cached replay GETs {cached_gets}",
        super::verdict(wpg <= 8.0),
        super::verdict(g8 <= 1.0),
    );
    // Leave the bucket as found.
    let mut listing = raw_store.list(None);
    let mut keys_left = Vec::new();
    while let Some(m) = listing.next().await {
        keys_left.push(m?.location);
    }
    for k in keys_left {
        let _ = raw_store.delete(&k).await;
    }
    Ok(())
}
