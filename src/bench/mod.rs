//! Benchmarks that run the real code and, in the same run, the raw limit it is compared against,
//! then print medians and the ratio. `tierlog bench append` prints the report; `benches/append.rs`
//! runs the same scenarios under criterion.
//!
//! - [`raw`]: the limits: plain file appends with the same fsync cadence, plain sequential reads.
//! - [`append`]: tierlog's append and read paths through the public [`crate::Engine`] API.
//! - [`tier`]: the remote tier (upload, replay, time lookups, request counts) against the raw
//!   object store.
//! - [`history`]: replay from each tier, `state_at` (time, peak memory), restore (time, requests).
//! - [`kafka`]: the Kafka broker under librdkafka against in-process appends, Redis streams,
//!   `Engine::read` and ranged GETs.
//! - [`groups`]: the group coordinator over the wire: rebalance time, synchronous commits,
//!   start-up with many groups, against round trips, fdatasync and plain reads.
//! - [`compaction`]: key compaction throughput in both tiers against plain read/write and GET/PUT,
//!   and a cold replay's objects and GETs before and after merging small segments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

pub mod append;
pub mod compaction;
#[cfg(feature = "servers")]
pub mod groups;
pub mod history;
#[cfg(feature = "servers")]
pub mod kafka;
pub mod raw;
pub mod tier;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchKind,
}

#[derive(Debug, Subcommand)]
pub enum BenchKind {
    /// Durable append throughput and latency, small records, sequential reads, reopen time.
    Append(append::AppendBenchArgs),
    /// The remote tier: upload, cold and cached replay, time lookups, requests per GiB, each
    /// against the raw object store (or local read) in the same run.
    Tier(tier::TierBenchArgs),
    /// History: replay from local, cache and bucket; state_at over many events and keys (time,
    /// peak memory); restore of a bucket with many segments (time, requests).
    History(history::HistoryBenchArgs),
    /// Compaction: key compaction throughput (MB/s in), local and remote, against the raw limits;
    /// objects and GETs of a cold full replay before and after merging small segments.
    Compaction(compaction::CompactionBenchArgs),
    /// The Kafka broker under a real client (librdkafka): produce against in-process appends
    /// and Redis streams, latency, consume from both tiers against Engine::read and ranged GETs.
    #[cfg(feature = "servers")]
    Kafka(kafka::KafkaBenchArgs),
    /// The group coordinator over the wire: rebalance time of 2, 8 and 32 members against the
    /// same round trips, sync commits/s from 1 and 16 consumers against fdatasync, start-up
    /// with 10,000 groups' offsets against a plain read of the same files.
    #[cfg(feature = "servers")]
    Groups(groups::GroupsBenchArgs),
}

/// Set while a bench runs in smoke mode: its sizes are too small for a verdict to mean anything.
static SMOKE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `", met"` or `", NOT met"` after a target, or nothing in smoke mode.
pub(crate) fn verdict(met: bool) -> &'static str {
    match (SMOKE.load(std::sync::atomic::Ordering::Relaxed), met) {
        (true, _) => "",
        (false, true) => ", met",
        (false, false) => ", NOT met",
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let smoke = match &args.which {
        BenchKind::Append(a) => a.smoke,
        BenchKind::Tier(a) => a.smoke,
        BenchKind::History(a) => a.smoke,
        BenchKind::Compaction(a) => a.smoke,
        #[cfg(feature = "servers")]
        BenchKind::Kafka(a) => a.smoke,
        #[cfg(feature = "servers")]
        BenchKind::Groups(a) => a.smoke,
    };
    SMOKE.store(smoke, std::sync::atomic::Ordering::Relaxed);
    match &args.which {
        BenchKind::Append(a) => append::run(a).await,
        BenchKind::Tier(a) => tier::run(a).await,
        BenchKind::History(a) => history::run(a).await,
        BenchKind::Compaction(a) => compaction::run(a).await,
        #[cfg(feature = "servers")]
        BenchKind::Kafka(a) => kafka::run(a).await,
        #[cfg(feature = "servers")]
        BenchKind::Groups(a) => groups::run(a).await,
    }
}

/// The bucket a bench runs against.
#[derive(Debug, Clone, Args)]
pub struct BucketArgs {
    /// S3-compatible endpoint (plain HTTP allowed); credentials from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY. Without it, a local directory is the bucket.
    #[arg(long, env = "TIERLOG_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "TIERLOG_S3_BUCKET", default_value = "tierlog-test")]
    pub s3_bucket: String,
}

impl BucketArgs {
    /// The S3 bucket under a fresh prefix `<name>-<pid>-<nanos>`, or `<scratch>/bucket`.
    pub fn store_config(&self, name: &str, scratch: &std::path::Path) -> tiering::remote::ObjectStoreConfig {
        let nanos = tiering::clock::wall_clock_nanos();
        match &self.s3_endpoint {
            Some(endpoint) => tiering::remote::ObjectStoreConfig::S3 {
                endpoint: endpoint.clone(),
                region: "us-east-1".into(),
                bucket: self.s3_bucket.clone(),
                prefix: format!("{name}-{}-{nanos}", std::process::id()),
                access_key_id: None,
                secret_access_key: None,
                allow_http: true,
                max_retries: 3,
                request_timeout_ms: 120_000,
            },
            None => tiering::remote::ObjectStoreConfig::Local { path: scratch.join("bucket") },
        }
    }
}

/// A scratch directory for a bench, removed when dropped.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(parent: Option<&std::path::Path>, name: &str) -> anyhow::Result<Self> {
        let base = parent.map(|p| p.to_owned()).unwrap_or_else(|| PathBuf::from("tierlog-bench"));
        let path = base.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Bytes moved in a time.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub bytes: u64,
    pub items: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
    pub fn items_per_s(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }
}

/// CPU seconds (user and system) used so far by this process, and by its children that have
/// ended and been waited for (with their own descendants waited for).
pub fn cpu_seconds() -> (f64, f64) {
    let used = |who| {
        // SAFETY: a zeroed rusage is a valid value for the call to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage; `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return f64::NAN;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(ru.ru_utime) + secs(ru.ru_stime)
    };
    (used(libc::RUSAGE_SELF), used(libc::RUSAGE_CHILDREN))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The `q` quantile (0..=1) of latencies, in microseconds.
pub fn quantile_us(lat: &mut [Duration], q: f64) -> f64 {
    if lat.is_empty() {
        return f64::NAN;
    }
    lat.sort_unstable();
    let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
    lat[i].as_secs_f64() * 1e6
}
