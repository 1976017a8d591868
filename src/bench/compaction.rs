//! `tierlog bench compaction`: key compaction throughput (MB/s of log read) on local segments and
//! on remote ones, each beside its raw limit in the same run (plain reads of the same files plus
//! writes of the same output bytes with one fsync per file; plain GETs of the same objects plus
//! PUTs of the same output bytes), and the objects and GETs of a cold full replay before and after
//! merging small remote segments.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use tiering::object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::Scratch;
use super::append::ratio_line;
use super::history::{produce, produce_segments, replay_all};
use crate::config::{CleanupPolicy, EngineConfig, TopicConfig};
use crate::engine::Engine;

#[derive(Debug, Clone, Args)]
pub struct CompactionBenchArgs {
    /// Tiny sizes: checks that every scenario runs (CI uses this).
    #[arg(long)]
    pub smoke: bool,
    /// MiB of log compacted per trial (100-byte values).
    #[arg(long, default_value_t = 128)]
    pub mib: u64,
    /// Distinct keys in that log.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Trials (each on a fresh topic: compaction changes what it runs on).
    #[arg(long, default_value_t = 3)]
    pub trials: usize,
    /// Small segments replayed before and after merging.
    #[arg(long, default_value_t = 2_000)]
    pub small_segments: u64,
    #[command(flatten)]
    pub bucket: super::BucketArgs,
    /// Local scratch directory. Default ./tierlog-bench (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The raw limit of a local rewrite: reads each file whole, writes `out_share` of its bytes to a
/// new file and fsyncs it (tierlog's cadence: one fsync per rewritten segment), removes it.
/// Returns seconds.
fn raw_local(files: &[PathBuf], out_share: f64, scratch: &std::path::Path) -> std::io::Result<f64> {
    use std::io::Write as _;
    let started = Instant::now();
    for (i, f) in files.iter().enumerate() {
        let data = std::fs::read(f)?;
        let n = (data.len() as f64 * out_share) as usize;
        let path = scratch.join(format!("raw-{i}.log"));
        let mut out = std::fs::File::create(&path)?;
        out.write_all(&data[..n.min(data.len())])?;
        out.sync_data()?;
        std::fs::remove_file(&path)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The raw limit of a remote rewrite: GETs each object whole, PUTs `out_share` of its bytes under
/// a new key (one after another, as the executor does). Returns seconds; the copies are deleted.
async fn raw_remote(
    store: &std::sync::Arc<dyn ObjectStore>,
    objects: &[tiering::object_store::path::Path],
    out_share: f64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut written = Vec::new();
    for (i, k) in objects.iter().enumerate() {
        let data = store.get(k).await?.bytes().await?;
        let n = ((data.len() as f64 * out_share) as usize).min(data.len());
        let key = tiering::object_store::path::Path::from(format!("raw-compaction/{i}-{}", std::process::id()));
        store.put(&key, PutPayload::from(data.slice(..n))).await?;
        written.push(key);
    }
    let secs = started.elapsed().as_secs_f64();
    for k in written {
        store.delete(&k).await?;
    }
    Ok(secs)
}

pub async fn run(args: &CompactionBenchArgs) -> anyhow::Result<()> {
    let (bytes, keys, trials, small) = if args.smoke {
        (4u64 << 20, 2_000u64, 1, 60u64)
    } else {
        (args.mib << 20, args.keys, args.trials.max(1), args.small_segments)
    };
    let root = Scratch::new(args.dir.as_deref(), "compaction")?;
    let store_config = args.bucket.store_config("bench-compaction", &root.path);
    let mut config = EngineConfig::new(root.path.join("data"));
    config.object_store = Some(store_config.clone());
    config.tiering.auto_upload = false;
    config.tiering.cache.disk_bytes = Some(0);
    config.compactor.enabled = false;
    println!(
        "tierlog bench compaction: bucket: {store_config}; {trials} trial(s) of {} MiB over {keys} keys (100-byte values); merging of {small} small segments",
        bytes >> 20
    );
    if args.smoke {
        println!("(smoke mode: checks that every scenario runs; at these sizes the figures mean nothing)");
    }
    let value_bytes = 100;
    let events = bytes / (value_bytes as u64 + 30);
    let segment = (bytes / 8).clamp(4 << 20, 64 << 20);
    let compact_topic = |segment_bytes: u64, local_retention: Option<u64>, merge: u64| {
        let mut t = TopicConfig {
            partitions: 1,
            cleanup_policy: CleanupPolicy::Compact,
            log: tiering::LogConfig { segment_bytes, local_retention_bytes: local_retention, ..Default::default() },
            ..Default::default()
        };
        t.compaction.min_dirty_ratio = 0.0;
        t.compaction.merge_target_bytes = merge;
        t
    };
    let raw_store = store_config.build()?;

    // 1. Key compaction, local and remote.
    let engine = Engine::open(config.clone()).await?;
    let (mut local_mb, mut raw_local_mb, mut remote_mb, mut raw_remote_mb) = (vec![], vec![], vec![], vec![]);
    let mut last = None;
    let mut raw_local_bytes = 0u64;
    for t in 0..trials {
        let topic = format!("compact-{t}");
        engine.create_topic(&topic, compact_topic(segment, None, 0)).await?;
        produce(&engine, &topic, events, keys, value_bytes).await?;
        engine.tier_now(&topic, 0).await?;
        let files: Vec<PathBuf> = engine.describe_topic(&topic)?.partitions[0]
            .segments
            .iter()
            .filter(|s| s.sealed)
            .map(|s| s.path.clone())
            .collect();
        // Compaction renames its output over these paths: the raw side reads copies of what
        // compaction read, taken now (untimed).
        let copies = root.path.join(format!("raw-src-{t}"));
        std::fs::create_dir_all(&copies)?;
        let files: Vec<PathBuf> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let to = copies.join(format!("{i}.log"));
                std::fs::copy(f, &to).map(|_| to)
            })
            .collect::<std::io::Result<_>>()?;
        let raw_bytes: u64 =
            files.iter().map(|f| std::fs::metadata(f).map(|m| m.len())).sum::<std::io::Result<u64>>()?;
        let head = engine.remote_head(&topic, 0)?;
        let pk = tiering::remote::keys::PartitionKeys::new(&topic, 0);
        let objects: Vec<_> = head.segments.iter().map(|e| e.segment_key(&pk)).collect();
        let done = engine.compact(&topic, None, None).await?.remove(0);
        let (l, r) = (done.local, done.remote);
        anyhow::ensure!(l.records_removed > 0 && r.records_removed > 0, "nothing was compacted: {l:?} {r:?}");
        let share = r.bytes_out as f64 / r.bytes_in.max(1) as f64;
        let local_share = l.bytes_out as f64 / l.bytes_in.max(1) as f64;
        let raw_l = raw_local(&files, local_share, &root.path)?;
        std::fs::remove_dir_all(&copies)?;
        let raw_r = raw_remote(&raw_store, &objects, share).await?;
        local_mb.push(l.mb_per_s_in());
        remote_mb.push(r.mb_per_s_in());
        raw_local_mb.push(raw_bytes as f64 / raw_l / 1e6);
        raw_local_bytes = raw_bytes;
        raw_remote_mb.push(r.bytes_in as f64 / raw_r / 1e6);
        last = Some((l, r));
    }
    engine.close().await?;
    let (l, r) = last.expect("invariant: at least one trial");
    println!();
    ratio_line("1. key compaction, local (vs read + write + fsync)", &local_mb, &raw_local_mb, "MB/s", None);
    println!(
        "   {:.1} MB in -> {:.1} MB out (the raw side read the same {:.1} MB of segments), {} records removed, {} pass(es), key map of up to {} MiB",
        l.bytes_in as f64 / 1e6,
        l.bytes_out as f64 / 1e6,
        raw_local_bytes as f64 / 1e6,
        l.records_removed,
        l.passes,
        config.compactor.map_bytes >> 20
    );
    ratio_line("1. key compaction, remote (vs GET + PUT)", &remote_mb, &raw_remote_mb, "MB/s", None);
    println!(
        "   {:.1} MB in -> {:.1} MB out, {} records removed, {} segments rewritten",
        r.bytes_in as f64 / 1e6,
        r.bytes_out as f64 / 1e6,
        r.records_removed,
        r.segments_rewritten
    );

    // 3. A cold full replay before and after merging small segments.
    let mut mcfg = config.clone();
    mcfg.data_dir = root.path.join("merge");
    mcfg.tiering.upload_concurrency = 32;
    let engine = Engine::open(mcfg.clone()).await?;
    let mut topic = compact_topic(4096, Some(1), 64 << 20);
    topic.cleanup_policy = CleanupPolicy::Delete;
    engine.create_topic("small", topic).await?;
    produce_segments(&engine, "small", small).await?;
    engine.tier_now("small", 0).await?;
    engine.close().await?;
    let cold_replay = |label: &'static str| {
        let mcfg = mcfg.clone();
        async move {
            let engine = Engine::open(mcfg).await?; // nothing cached
            let objects = engine.remote_head("small", 0)?.totals.segments;
            let before = engine.object_store_counts();
            let (n, secs) = replay_all(&engine, "small").await?;
            let gets = engine.object_store_counts().since(&before).gets();
            engine.close().await?;
            println!(
                "3. cold full replay {label}: {objects} segment objects, {gets} GETs, {n} records in {:.1} ms",
                secs * 1e3
            );
            anyhow::Ok((objects, gets, n, secs))
        }
    };
    let (objects_before, gets_before, n_before, secs_before) = cold_replay("before merging").await?;
    let engine = Engine::open(mcfg.clone()).await?;
    let started = Instant::now();
    let merged = engine.compact("small", None, None).await?.remove(0).remote;
    let merge_secs = started.elapsed().as_secs_f64();
    engine.close().await?;
    let (objects_after, gets_after, n_after, secs_after) = cold_replay("after merging").await?;
    anyhow::ensure!(n_before == n_after, "merging changed the records: {n_before} -> {n_after}");
    println!(
        "   merging: {} segments merged away in {merge_secs:.2} s; objects {objects_before} -> {objects_after} ({:.0}x fewer), GETs {gets_before} -> {gets_after} ({:.0}x fewer), replay {:.1}x faster",
        merged.segments_merged,
        objects_before as f64 / objects_after.max(1) as f64,
        gets_before as f64 / gets_after.max(1) as f64,
        secs_before / secs_after
    );
    Ok(())
}
