//! `tierlog bench history`: replay throughput from the local tier, from the cache and cold from
//! the bucket (each beside its raw limit: plain file reads, plain ranged GETs, the local replay),
//! `state_at` over many events and keys (time and peak memory, in memory and spilling), and the
//! restore of a bucket holding many segments (time and requests).

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use tiering::batch::{BatchBuilder, Compression, Record};

use super::Scratch;
use super::append::ratio_line;
use super::raw::read_files;
use super::tier::{RAW_SWEEP_SAMPLE, raw_best_shape, raw_replay};
use crate::config::{EngineConfig, TopicConfig};
use crate::engine::Engine;
use crate::replay::ReplaySpec;
use crate::state::{At, StateSpec};

#[derive(Debug, Clone, Args)]
pub struct HistoryBenchArgs {
    /// Tiny sizes: checks that every scenario runs (CI uses this).
    #[arg(long)]
    pub smoke: bool,
    /// MiB replayed per tier.
    #[arg(long, default_value_t = 1024)]
    pub replay_mib: u64,
    /// Events folded by state_at ...
    #[arg(long, default_value_t = 10_000_000)]
    pub state_events: u64,
    /// ... over this many keys.
    #[arg(long, default_value_t = 100_000)]
    pub state_keys: u64,
    /// Segments in the bucket that is restored.
    #[arg(long, default_value_t = 10_000)]
    pub restore_segments: u64,
    #[command(flatten)]
    pub bucket: super::BucketArgs,
    /// Local scratch directory. Default ./tierlog-bench (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const T0: i64 = 1_700_000_000_000;

/// Appends `events` records of `value_bytes` over `keys` keys, in batches of about 1 MiB,
/// timestamps rising; seals the last segment. Returns the records' key+value bytes.
pub(crate) async fn produce(
    engine: &Engine,
    topic: &str,
    events: u64,
    keys: u64,
    value_bytes: usize,
) -> anyhow::Result<u64> {
    produce_from(engine, topic, 0, events, keys, value_bytes).await
}

/// [`produce`] of events `first..first + events` (keys and timestamps continue).
async fn produce_from(
    engine: &Engine,
    topic: &str,
    first: u64,
    events: u64,
    keys: u64,
    value_bytes: usize,
) -> anyhow::Result<u64> {
    let value: Bytes = (0..value_bytes).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>().into();
    let mut builder = BatchBuilder::new(Compression::None);
    let mut in_flight = std::collections::VecDeque::new();
    let mut payload = 0u64;
    for i in first..first + events {
        let key = Bytes::from(format!("key-{:08}", (i * 7919) % keys.max(1)));
        payload += (key.len() + value.len()) as u64;
        builder.push(&Record { key: Some(key), value: Some(value.clone()), headers: vec![], timestamp: T0 + i as i64 });
        if builder.records_bytes() >= 1 << 20 {
            let full = std::mem::replace(&mut builder, BatchBuilder::new(Compression::None));
            in_flight.push_back(engine.enqueue_append(topic, 0, full.build()).await?);
            while in_flight.len() > 16 {
                in_flight.pop_front().expect("invariant: non-empty").await?;
            }
        }
    }
    if !builder.is_empty() {
        in_flight.push_back(engine.enqueue_append(topic, 0, builder.build()).await?);
    }
    for f in in_flight {
        f.await?;
    }
    engine.roll(topic, 0).await?;
    Ok(payload)
}

/// Replays all of `topic` partition 0; returns (records, seconds).
pub(crate) async fn replay_all(engine: &Engine, topic: &str) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut r = engine.replay(topic, ReplaySpec::partition(0)).await?;
    let mut n = 0u64;
    while let Some(rec) = r.next().await? {
        std::hint::black_box(&rec);
        n += 1;
    }
    Ok((n, started.elapsed().as_secs_f64()))
}

/// Peak resident memory of this process since the last reset, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Resets the peak (`VmHWM`) to the current resident size (Linux 4.0+).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn current_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

pub async fn run(args: &HistoryBenchArgs) -> anyhow::Result<()> {
    let (replay_bytes, state_events, state_keys, restore_segments) = if args.smoke {
        (16u64 << 20, 200_000u64, 5_000u64, 40u64)
    } else {
        (args.replay_mib << 20, args.state_events, args.state_keys, args.restore_segments)
    };
    let root = Scratch::new(args.dir.as_deref(), "history")?;
    let store_config = args.bucket.store_config("bench-history", &root.path);
    let mut config = EngineConfig::new(root.path.join("data"));
    config.object_store = Some(store_config.clone());
    config.tiering.auto_upload = false;
    config.tiering.cache.memory_bytes = (replay_bytes + replay_bytes / 2).max(64 << 20);
    config.tiering.cache.disk_bytes = Some(0);
    println!(
        "tierlog bench history: bucket: {store_config}; replay {} MiB of 256-byte records; state_at over {state_events} events and {state_keys} keys; restore of {restore_segments} segments",
        replay_bytes >> 20
    );
    if args.smoke {
        println!("(smoke mode: checks that every scenario runs; at these sizes the figures mean nothing)");
    }
    let topic = |segment_bytes: u64, local_retention: Option<u64>| TopicConfig {
        partitions: 1,
        log: tiering::LogConfig { segment_bytes, local_retention_bytes: local_retention, ..Default::default() },
        ..Default::default()
    };

    // 1. Replay: local, cached, cold.
    let value_bytes = 256;
    let events = replay_bytes / (value_bytes as u64 + 40);
    let segment = (replay_bytes / 8).clamp(4 << 20, 256 << 20);
    let engine = Engine::open(config.clone()).await?;
    engine.create_topic("hot", topic(segment, None)).await?;
    engine.create_topic("cold", topic(segment, Some(1))).await?;
    produce(&engine, "hot", events, events, value_bytes).await?;
    produce(&engine, "cold", events, events, value_bytes).await?;
    engine.tier_now("cold", 0).await?;
    let files: Vec<PathBuf> =
        engine.describe_topic("hot")?.partitions[0].segments.iter().map(|s| s.path.clone()).collect();
    let stored: u64 = engine.describe_topic("hot")?.partitions[0].size_bytes;
    let head = engine.remote_head("cold", 0)?;
    let keys = tiering::remote::keys::PartitionKeys::new("cold", 0);
    let objects: Vec<_> = head.segments.iter().map(|e| (e.segment_key(&keys), e.size)).collect();
    replay_all(&engine, "hot").await?; // page cache warm
    let (mut local_mb, mut raw_file_mb, mut local_recs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let (n, secs) = replay_all(&engine, "hot").await?;
        let raw = read_files(&files, 1 << 20)?;
        local_mb.push(stored as f64 / secs / 1e6);
        local_recs.push(n as f64 / secs);
        raw_file_mb.push(raw.mb_per_s());
    }
    engine.close().await?;
    let raw_store = store_config.build()?;
    let shape = raw_best_shape(&raw_store, &objects, RAW_SWEEP_SAMPLE).await?;
    let (window, depth) = (shape.window, shape.depth);
    let raw1 = raw_replay(&raw_store, &objects, window, depth).await?;
    let engine = Engine::open(config.clone()).await?; // nothing cached
    let before = engine.object_store_counts();
    let (n_cold, cold_secs) = replay_all(&engine, "cold").await?;
    let cold_gets = engine.object_store_counts().since(&before).gets();
    let raw2 = raw_replay(&raw_store, &objects, window, depth).await?;
    let remote_bytes = head.totals.bytes;
    let (mut cached_mb, mut cached_recs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (n, secs) = replay_all(&engine, "cold").await?;
        cached_mb.push(remote_bytes as f64 / secs / 1e6);
        cached_recs.push(n as f64 / secs);
    }
    engine.close().await?;
    println!();
    ratio_line("1. replay from the local tier (vs file reads)", &local_mb, &raw_file_mb, "MB/s", None);
    println!("   {:.2} M records/s (256-byte values)", super::median(local_recs.clone()) / 1e6);
    ratio_line("1. replay from the cache (vs local replay)", &cached_mb, &local_mb, "MB/s", None);
    println!("   {:.2} M records/s", super::median(cached_recs) / 1e6);
    let cold_mb = remote_bytes as f64 / cold_secs / 1e6;
    let raw_get_mb = remote_bytes as f64 / ((raw1 + raw2) / 2.0) / 1e6;
    ratio_line("1. replay cold from the bucket (vs ranged GETs, best shape)", &[cold_mb], &[raw_get_mb], "MB/s", None);
    println!("   {}", shape.describe());
    println!(
        "   {:.2} M records/s, {} GETs ({:.2} per 8 MiB)",
        n_cold as f64 / cold_secs / 1e6,
        cold_gets,
        cold_gets as f64 / (remote_bytes as f64 / (8u64 << 20) as f64)
    );

    // 2. state_at over many events and keys: a full replay in memory and spilling, then from a
    //    snapshot taken at 95% of the log (the rest replayed).
    let engine = Engine::open(config.clone()).await?;
    engine.create_topic("state", topic(256 << 20, None)).await?;
    let started = Instant::now();
    let head_events = state_events * 95 / 100;
    produce(&engine, "state", head_events, state_keys, 64).await?;
    engine.tier_now("state", 0).await?;
    let snap_started = Instant::now();
    let snap = engine.snapshot("state", 0).await?.ok_or_else(|| anyhow::anyhow!("no snapshot written"))?;
    let snap_secs = snap_started.elapsed().as_secs_f64();
    produce_from(&engine, "state", head_events, state_events - head_events, state_keys, 64).await?;
    engine.tier_now("state", 0).await?;
    let produce_secs = started.elapsed().as_secs_f64() - snap_secs;
    let mut full_secs = 0.0;
    for (label, budget, snapshots) in [
        ("full replay, 64 MiB budget", 64usize << 20, false),
        ("full replay, 4 MiB budget (spills)", 4 << 20, false),
        ("from the snapshot, 64 MiB budget", 64 << 20, true),
    ] {
        let base = current_rss().unwrap_or(0);
        reset_peak_rss();
        let started = Instant::now();
        let spec = StateSpec { memory_bytes: budget, use_snapshots: snapshots, ..StateSpec::new(At::Time(i64::MAX)) };
        let mut s = engine.state_at("state", spec).await?;
        let mut keys = 0u64;
        while let Some(e) = s.next().await? {
            std::hint::black_box(&e);
            keys += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let peak = peak_rss().unwrap_or(0);
        anyhow::ensure!(keys == state_keys.min(state_events), "state_at gave {keys} keys, expected {state_keys}");
        if !snapshots && budget == 64 << 20 {
            full_secs = secs;
        }
        let speedup = if snapshots {
            format!("; {:.1}x the full replay (target >= 10)", full_secs / secs)
        } else {
            String::new()
        };
        println!(
            "2. state_at, {label}: {} events replayed + {} snapshot rows, {keys} keys in {secs:.2} s; {} runs spilled; peak RSS {:.0} MiB above the {:.0} MiB before{speedup}",
            s.records,
            s.from_snapshots,
            s.spilled_runs,
            peak.saturating_sub(base) as f64 / (1 << 20) as f64,
            base as f64 / (1 << 20) as f64
        );
    }
    println!(
        "   (writing the events took {produce_secs:.2} s; the snapshot at offset {} ({} keys, {:.1} MB) {snap_secs:.2} s)",
        snap.offset,
        snap.keys,
        snap.size as f64 / 1e6
    );
    engine.close().await?;

    // 3. Restore of a bucket with many segments.
    let mut rcfg = config.clone();
    rcfg.data_dir = root.path.join("restore-src");
    rcfg.tiering.upload_concurrency = 64;
    let engine = Engine::open(rcfg.clone()).await?;
    engine.create_topic("many", topic(4096, Some(1))).await?;
    let started = Instant::now();
    // One ~3.5 KiB batch per 4 KiB segment.
    produce_segments(&engine, "many", restore_segments).await?;
    engine.tier_now("many", 0).await?;
    let head = engine.remote_head("many", 0)?;
    let build_secs = started.elapsed().as_secs_f64();
    engine.close().await?;
    let mut fresh = rcfg.clone();
    fresh.data_dir = root.path.join("restored");
    fresh.restore = true;
    let started = Instant::now();
    let restored = Engine::open(fresh).await?;
    let secs = started.elapsed().as_secs_f64();
    let c = restored.object_store_counts();
    // Prove it: the first and the last archived offsets read back.
    let first = restored.read("many", 0, head.log_start_offset, 1).await?;
    let last = restored.read("many", 0, head.next_offset - 1, 1).await?;
    anyhow::ensure!(!first.batches.is_empty() && !last.batches.is_empty(), "restored reads came back empty");
    println!(
        "3. restore of a bucket with {} topics, one of them {} segments ({} manifest chunks): {:.1} ms; {} LIST, {} GETs, {} PUTs; offsets [{}, {}) readable",
        restored.list_topics().len(),
        head.totals.segments,
        head.chunks.len(),
        secs * 1e3,
        c.list,
        c.gets(),
        c.writes(),
        head.log_start_offset,
        head.next_offset
    );
    restored.close().await?;
    println!("   (building that bucket took {build_secs:.1} s)");
    Ok(())
}

/// `n` sealed segments of one small batch each.
pub(crate) async fn produce_segments(engine: &Engine, topic: &str, n: u64) -> anyhow::Result<()> {
    let value = Bytes::from(vec![7u8; 3400]);
    let mut in_flight = std::collections::VecDeque::new();
    for i in 0..n {
        let rec = Record { key: None, value: Some(value.clone()), headers: vec![], timestamp: T0 + i as i64 };
        in_flight
            .push_back(engine.enqueue_append(topic, 0, BatchBuilder::from_records(Compression::None, &[rec])).await?);
        while in_flight.len() > 64 {
            in_flight.pop_front().expect("invariant: non-empty").await?;
        }
    }
    for f in in_flight {
        f.await?;
    }
    engine.roll(topic, 0).await?;
    Ok(())
}
