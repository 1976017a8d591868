//! `tierlog bench kafka`: the Kafka broker driven by a real client library (librdkafka, through
//! confluent-kafka in the test venv: `benches/kafka_load.py`), each scenario against its peer in
//! the same run:
//!
//! 1. Produce, `acks=all`, fsync durability, 1 KiB records, 8 producers (8 processes, one per
//!    partition): against in-process `Engine::append` of batches of the size the client sent,
//!    each copied into a buffer of its own as a received batch is (target >= 0.8x; also printed
//!    against appends of one shared buffer, hot in the CPU's cache), and against Redis streams
//!    (`XADD`, `appendfsync always`, redis-benchmark with 8 clients x pipeline 64, 1 KiB fields;
//!    target >= 3x). The sides alternate in slices, so the disk's swings hit them alike; medians
//!    and IQR of the per-round ratios.
//! 2. Produce latency (p50/p99) at half the produce throughput of (1).
//! 3. Consume through Fetch from the hot tier against `Engine::read` of the same bytes (target
//!    0.8x or better); then, once everything is tiered and gone from local disk, from the bucket
//!    (through the cache) against plain ranged GETs of the same segment objects (target 0.7x).
//! 4. End-to-end latency, produce to a long-polling consumer, p50/p99.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use futures::StreamExt;
use tiering::object_store::ObjectStore;
use tiering::object_store::path::Path as ObjectPath;

use super::append::{drive, drive_copied, make_batch, rounds_line};
use super::{BucketArgs, Scratch, median};
use crate::config::{EngineConfig, TopicConfig};
use crate::engine::Engine;

const LOAD: &str = include_str!("../../benches/kafka_load.py");
const RECORD: usize = 1024;
const PRODUCERS: usize = 8;

#[derive(Debug, Clone, Args)]
pub struct KafkaBenchArgs {
    /// Tiny sizes and one round: checks that every scenario runs (CI uses this).
    #[arg(long)]
    pub smoke: bool,
    /// Rounds of the alternating produce slices.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// MiB of records per produce slice.
    #[arg(long, default_value_t = 64)]
    pub slice_mib: u64,
    /// The Python with confluent-kafka (the test venv: `bash scripts/test.sh` installs it).
    /// Default `$TIERLOG_PYTHON`, else `.cache/venv/bin/python`.
    #[arg(long, env = "TIERLOG_PYTHON")]
    pub python: Option<PathBuf>,
    /// A directory on the disk to measure. Default ./tierlog-bench (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub bucket: BucketArgs,
}

/// Runs the load script; its JSON answer.
async fn load(python: &Path, script: &Path, args: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    if !out.status.success() {
        anyhow::bail!("{} {} failed: {}", script.display(), args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn f(v: &serde_json::Value, k: &str) -> anyhow::Result<f64> {
    v[k].as_f64().ok_or_else(|| anyhow::anyhow!("load script gave no {k}: {v}"))
}

/// A Redis server of this bench's own (AOF with `appendfsync always`), stopped on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::create_dir_all(dir)?;
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always", "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("redis-server (Debian's redis-server package): {e}"))?;
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
            tiering::clock::real_sleep(50).await;
        }
        Ok(Self { child, port })
    }

    /// XADDs per second of `n` 1 KiB entries: 8 clients, pipeline 64.
    fn xadd(&self, n: usize) -> anyhow::Result<f64> {
        let value = "v".repeat(RECORD);
        let out = std::process::Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-c", "8", "-P", "64", "-n", &n.to_string()])
            .args(["--csv", "XADD", "bench", "*", "f", &value])
            .output()
            .map_err(|e| anyhow::anyhow!("redis-benchmark (Debian's redis-tools package): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "test","rps",...: the second field of the last line.
        let line = text.lines().last().unwrap_or_default();
        line.split(',')
            .nth(1)
            .and_then(|v| v.trim_matches('"').parse().ok())
            .ok_or_else(|| anyhow::anyhow!("redis-benchmark printed {text:?}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads every partition of `topic` to its end with `Engine::read`; (bytes, seconds).
async fn read_all(engine: &Engine, topic: &str, partitions: u32) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut bytes = 0u64;
    for p in 0..partitions {
        let log = engine.log(topic, p)?;
        let (mut off, end) = (log.log_start_offset(), log.high_watermark());
        while off < end {
            let r = engine.read(topic, p, off, 8 << 20).await?;
            bytes += r.batches.len() as u64;
            off = r.next_offset().ok_or_else(|| anyhow::anyhow!("read at {off} returned nothing"))?;
        }
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

/// What a cold consume asked of the bucket, for `bytes` of segments.
fn requests(c: &tiering::remote::RequestCounts, bytes: u64) -> String {
    format!(
        "the consume made {} GETs ({:.2} per 8 MiB) reading {:.2}x the segments' bytes",
        c.gets(),
        c.gets() as f64 / (bytes as f64 / (8u64 << 20) as f64),
        c.bytes_read as f64 / bytes.max(1) as f64
    )
}

/// Fetches every partition of `topic` to its end over one Kafka connection from Rust (the
/// `kafka-protocol` codec: no client library in the way), 8 MiB per partition per request, the
/// next request's offsets taken from the batches returned; (record bytes, seconds).
async fn fetch_all(addr: &str, topic: &str, ends: &[i64]) -> anyhow::Result<(u64, f64)> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const V: i16 = 12;
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let mut offsets = vec![0i64; ends.len()];
    // One buffer for every response, grown and zeroed only when a response is larger (a fresh
    // 64 MiB per response would cost the client a page fault per 4 KiB and a memset, more than
    // the broker's read): the responses' `Bytes` are dropped before the next read, so the
    // buffer comes back without a copy.
    let mut store: Vec<u8> = Vec::new();
    let (started, mut bytes, mut cid) = (Instant::now(), 0u64, 0);
    while offsets.iter().zip(ends).any(|(o, e)| o < e) {
        cid += 1;
        let parts = (0..ends.len())
            .filter(|&p| offsets[p] < ends[p])
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p as i32)
                    .with_fetch_offset(offsets[p])
                    .with_partition_max_bytes(8 << 20)
            })
            .collect();
        let topic =
            FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_owned()))).with_partitions(parts);
        let req = FetchRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_session_epoch(-1)
            .with_max_bytes(64 << 20)
            .with_max_wait_ms(0)
            .with_topics(vec![topic]);
        conn.write_all(&crate::kafka::request_frame(ApiKey::Fetch, V, cid, &req)?).await?;
        let n = conn.read_i32().await? as usize;
        if store.len() < n {
            store.resize(n, 0);
        }
        conn.read_exact(&mut store[..n]).await?;
        let whole = bytes::Bytes::from(std::mem::take(&mut store));
        let mut body = whole.slice(..n);
        ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(V))?;
        let resp = FetchResponse::decode(&mut body, V)?;
        for p in resp.responses.iter().flat_map(|t| &t.partitions) {
            anyhow::ensure!(p.error_code == 0, "fetch error {} on partition {}", p.error_code, p.partition_index);
            let records = p.records.clone().unwrap_or_default();
            bytes += records.len() as u64;
            if let Some((h, _)) = tiering::batch::batches_in(&records).last() {
                offsets[p.partition_index as usize] = h.next_offset();
            }
        }
        drop((resp, body));
        store = Vec::from(whole);
    }
    Ok((bytes, started.elapsed().as_secs_f64()))
}

/// The loopback limit for [`fetch_all`]: `total` bytes answered over one loopback TCP connection
/// as 64 MiB responses to small requests, one at a time, from a buffer in memory into one reused
/// buffer (no storage, no codec, no copy but the socket's). MB/s.
async fn loopback_limit(total: u64) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const RESPONSE: usize = 64 << 20;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        let data = vec![0x5au8; RESPONSE];
        let mut req = [0u8; 64];
        loop {
            let want = match conn.read_exact(&mut req[..8]).await {
                Ok(_) => u64::from_be_bytes(req[..8].try_into().expect("8 bytes")) as usize,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return anyhow::Ok(()),
                Err(e) => return Err(e.into()),
            };
            conn.write_all(&data[..want.min(RESPONSE)]).await?;
        }
    });
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; RESPONSE];
    let started = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(RESPONSE as u64);
        conn.write_all(&n.to_be_bytes()).await?;
        conn.read_exact(&mut buf[..n as usize]).await?;
        left -= n;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(conn);
    server.await??;
    Ok(total as f64 / secs / 1e6)
}

/// The segment objects of `topic` in the bucket, with sizes.
async fn segment_objects(store: &Arc<dyn ObjectStore>, topic: &str) -> anyhow::Result<Vec<(ObjectPath, u64)>> {
    let mut out = Vec::new();
    let mut listing = store.list(None);
    while let Some(m) = listing.next().await {
        let m = m?;
        let key = m.location.to_string();
        if key.contains(&format!("/{topic}/")) && key.ends_with(".log") {
            out.push((m.location, m.size));
        }
    }
    Ok(out)
}

pub async fn run(args: &KafkaBenchArgs) -> anyhow::Result<()> {
    let python = args.python.clone().unwrap_or_else(|| PathBuf::from(".cache/venv/bin/python"));
    let (rounds, slice) =
        if args.smoke { (1, 4usize << 20) } else { (args.rounds.max(1), (args.slice_mib.max(1) as usize) << 20) };
    let records = slice / RECORD;
    let root = Scratch::new(args.dir.as_deref(), "kafka")?;
    let script = root.path.join("kafka_load.py");
    std::fs::write(&script, LOAD)?;
    println!(
        "tierlog bench kafka: librdkafka {PRODUCERS} producers, {RECORD}-byte records, {rounds} rounds of {} MiB per side; dir {}",
        slice >> 20,
        root.path.display()
    );
    if args.smoke {
        println!("(smoke mode: checks that every scenario runs; at these sizes the figures mean nothing)");
    }
    let mut cfg = EngineConfig::new(root.path.join("data"));
    cfg.object_store = Some(args.bucket.store_config("bench-kafka", &root.path));
    cfg.tiering.auto_upload = false;
    let engine = Engine::open(cfg.clone()).await?;
    let topic = TopicConfig { partitions: PRODUCERS as u32, ..Default::default() };
    engine.create_topic("kbench", topic.clone()).await?;
    engine.create_topic("bench", topic.clone()).await?;
    engine.create_topic("e2e", TopicConfig { partitions: 1, ..Default::default() }).await?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = crate::kafka::Serving::start(engine.clone(), cfg.kafka.clone(), loopback).await?;
    let bootstrap = server.addr.to_string();
    let redis = Redis::start(&root.path.join("redis")).await?;

    // 1. Produce: Kafka clients, in-process appends of the same batch size, Redis XADD.
    let (mut kafka, mut inproc, mut shared, mut xadd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // CPU seconds spent over the Kafka slices (this process: the broker; its children: the load
    // generator, with its start-up) and over the copying in-process slices.
    let (mut broker_cpu, mut client_cpu, mut inproc_cpu) = (0.0, 0.0, 0.0);
    let mut batch = None;
    for round in 0..rounds {
        for side in 0..4 {
            let cpu = super::cpu_seconds();
            match (round + side) % 4 {
                0 => {
                    let a = [
                        "produce".to_owned(),
                        bootstrap.clone(),
                        "kbench".into(),
                        PRODUCERS.to_string(),
                        records.to_string(),
                        RECORD.to_string(),
                    ];
                    let v = load(&python, &script, &a).await?;
                    kafka.push(f(&v, "records")? / f(&v, "elapsed_s")?);
                    let now = super::cpu_seconds();
                    broker_cpu += now.0 - cpu.0;
                    client_cpu += now.1 - cpu.1;
                    if batch.is_none() {
                        // The batch size the client sent, for the in-process side.
                        let r = engine.read("kbench", 0, 0, 16 << 20).await?;
                        let sizes: Vec<f64> =
                            tiering::batch::batches_in(&r.batches).map(|(h, _)| h.record_count as f64).collect();
                        batch = Some(make_batch((median(sizes).max(1.0) as usize) * (RECORD + 20), RECORD));
                    }
                }
                1 if batch.is_some() => {
                    let b = batch.clone().expect("set above");
                    let (t, _) = drive_copied(&engine, PRODUCERS, PRODUCERS as u32, b, slice as u64).await?;
                    inproc.push(t.items_per_s());
                    inproc_cpu += super::cpu_seconds().0 - cpu.0;
                }
                2 if batch.is_some() => {
                    let b = batch.clone().expect("set above");
                    let (t, _) = drive(&engine, PRODUCERS, PRODUCERS as u32, b, slice as u64, None).await?;
                    shared.push(t.items_per_s());
                }
                1 | 2 => {}
                _ => xadd.push(tokio::task::block_in_place(|| redis.xadd(records))?),
            }
        }
    }
    if inproc.is_empty() {
        let b = batch.clone().expect("set by the first Kafka slice");
        let cpu = super::cpu_seconds();
        let (t, _) = drive_copied(&engine, PRODUCERS, PRODUCERS as u32, b.clone(), slice as u64).await?;
        inproc.push(t.items_per_s());
        inproc_cpu += super::cpu_seconds().0 - cpu.0;
        let (t, _) = drive(&engine, PRODUCERS, PRODUCERS as u32, b, slice as u64, None).await?;
        shared.push(t.items_per_s());
    }
    let n = kafka.len().min(inproc.len());
    let per_batch = batch.as_ref().map_or(0, |b| tiering::batch::BatchHeader::parse(b).map_or(0, |h| h.record_count));
    println!("   (the client's batches held {per_batch} records; the in-process side appends batches of that size)");
    rounds_line("1. produce acks=all, 8 producers (vs Engine::append)", &kafka[..n], &inproc[..n], "rec/s", Some(0.8));
    let n = kafka.len().min(shared.len());
    rounds_line("   ... (vs Engine::append of one shared buffer)", &kafka[..n], &shared[..n], "rec/s", None);
    let m = kafka.len().min(xadd.len());
    rounds_line("1. produce acks=all, 8 producers (vs Redis XADD)", &kafka[..m], &xadd[..m], "rec/s", Some(3.0));
    let mbs = median(kafka.clone()) * RECORD as f64 / 1e6;
    println!("   produce: {:.0} records/s, {mbs:.1} MB/s of values", median(kafka.clone()));
    // The CPU behind those figures, per GiB of records, over the same slices.
    let per_gib = |cpu: f64, slices: usize| cpu / (slices as f64 * slice as f64 / (1u64 << 30) as f64);
    let (broker, clients) = (per_gib(broker_cpu, kafka.len()), per_gib(client_cpu, kafka.len()));
    let inproc_per = per_gib(inproc_cpu, inproc.len());
    println!(
        "   CPU s per GiB produced: broker {broker:.2}, its librdkafka clients {clients:.2} (with their start-up); in-process Engine::append (copying) {inproc_per:.2}; broker / in-process {:.2}x",
        broker / inproc_per
    );

    // 2. Latency at half the produce throughput.
    let rate = (median(kafka.clone()) / 2.0).max(100.0);
    let secs = if args.smoke { 1.0 } else { 10.0 };
    let a = [
        "latency".to_owned(),
        bootstrap.clone(),
        "kbench".into(),
        rate.to_string(),
        secs.to_string(),
        RECORD.to_string(),
    ];
    let v = load(&python, &script, &a).await?;
    println!(
        "2. produce latency at {rate:.0} rec/s (half of max), one librdkafka producer, linger 5 ms: p50 {:.0} us p99 {:.0} us",
        f(&v, "p50_us")?,
        f(&v, "p99_us")?
    );

    // 3. Consume: hot tier, then from the bucket.
    let total: u64 = (0..PRODUCERS as u32)
        .map(|p| engine.describe_topic("kbench").map(|d| d.partitions[p as usize].size_bytes))
        .sum::<crate::Result<u64>>()?;
    let (mut fetch, mut read) = (Vec::new(), Vec::new());
    // CPU seconds over the librdkafka consumes (this process: the broker; its children: the
    // consumer, with its start-up) and over the in-process reads.
    let (mut broker_cpu, mut client_cpu, mut read_cpu) = (0.0, 0.0, 0.0);
    for round in 0..rounds.min(3) {
        for side in 0..2 {
            let cpu = super::cpu_seconds();
            if (round + side) % 2 == 0 {
                let v = load(
                    &python,
                    &script,
                    &["consume".into(), bootstrap.clone(), "kbench".into(), PRODUCERS.to_string()],
                )
                .await?;
                fetch.push(total as f64 / f(&v, "elapsed_s")? / 1e6);
                let now = super::cpu_seconds();
                broker_cpu += now.0 - cpu.0;
                client_cpu += now.1 - cpu.1;
            } else {
                let (bytes, s) = read_all(&engine, "kbench", PRODUCERS as u32).await?;
                read.push(bytes as f64 / s / 1e6);
                read_cpu += super::cpu_seconds().0 - cpu.0;
            }
        }
    }
    rounds_line("3. consume via Fetch, hot tier (vs Engine::read)", &fetch, &read, "MB/s", Some(0.8));
    let gib = |slices: usize| (slices as f64 * total as f64 / (1u64 << 30) as f64).max(f64::MIN_POSITIVE);
    println!(
        "   CPU s per GiB consumed: broker {:.2} (records sent with sendfile), its librdkafka consumer {:.2} (with its start-up); in-process Engine::read {:.2}",
        broker_cpu / gib(fetch.len()),
        client_cpu / gib(fetch.len()),
        read_cpu / gib(read.len())
    );
    // The same with Fetch requests from Rust: the broker's own cost, without the client library.
    let ends: Vec<i64> = (0..PRODUCERS as u32)
        .map(|p| engine.log("kbench", p).map(|l| l.high_watermark()))
        .collect::<crate::Result<_>>()?;
    let (mut rust, mut read2, mut wire) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.min(3) {
        for side in 0..3 {
            match (round + side) % 3 {
                0 => {
                    let (b, s) = fetch_all(&bootstrap, "kbench", &ends).await?;
                    rust.push(b as f64 / s / 1e6);
                }
                1 => {
                    let (b, s) = read_all(&engine, "kbench", PRODUCERS as u32).await?;
                    read2.push(b as f64 / s / 1e6);
                }
                _ => wire.push(loopback_limit(total).await?),
            }
        }
    }
    rounds_line("3. ... Fetch requests from Rust, hot (vs Engine::read)", &rust, &read2, "MB/s", Some(0.8));
    rounds_line("3. ... Fetch requests from Rust, hot (vs loopback TCP)", &rust, &wire, "MB/s", None);
    rounds_line("   loopback TCP, 64 MiB responses (vs Engine::read)", &wire, &read2, "MB/s", None);
    for p in 0..PRODUCERS as u32 {
        engine.roll("kbench", p).await?;
        engine.tier_now("kbench", p).await?;
    }
    let mut c = engine.topic_config("kbench")?;
    c.log.local_retention_bytes = Some(1);
    engine.alter_topic_config("kbench", c).await?;
    for p in 0..PRODUCERS as u32 {
        engine.tier_now("kbench", p).await?;
    }
    let store = engine.object_store();
    let objects = segment_objects(&store, "kbench").await?;
    let remote: u64 = objects.iter().map(|(_, s)| s).sum();
    // Cold, once each: a second pass would read the cache.
    let before = engine.object_store_counts();
    let v =
        load(&python, &script, &["consume".into(), bootstrap.clone(), "kbench".into(), PRODUCERS.to_string()]).await?;
    let gets = engine.object_store_counts().since(&before);
    let cold = remote as f64 / f(&v, "elapsed_s")? / 1e6;
    let shape = super::tier::raw_best_shape(&store, &objects, super::tier::RAW_SWEEP_SAMPLE).await?;
    let raw_s = super::tier::raw_replay(&store, &objects, shape.window, shape.depth).await?;
    let raw = remote as f64 / raw_s / 1e6;
    rounds_line("3. consume via Fetch, from the bucket (vs ranged GETs)", &[cold], &[raw], "MB/s", Some(0.7));
    println!("   {}; {}", shape.describe(), requests(&gets, remote));
    // Cold again from Rust: a fresh engine on the same data dir and bucket has an empty cache.
    server.stop().await?;
    engine.close().await?;
    let engine = Engine::open(cfg.clone()).await?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = crate::kafka::Serving::start(engine.clone(), cfg.kafka.clone(), loopback).await?;
    let bootstrap = server.addr.to_string();
    let before = engine.object_store_counts();
    let (b, s) = fetch_all(&bootstrap, "kbench", &ends).await?;
    let gets = engine.object_store_counts().since(&before);
    let raw_s = super::tier::raw_replay(&store, &objects, shape.window, shape.depth).await?;
    rounds_line(
        "3. ... Fetch requests from Rust, bucket (vs ranged GETs)",
        &[b as f64 / s / 1e6],
        &[remote as f64 / raw_s / 1e6],
        "MB/s",
        Some(0.7),
    );
    println!("   {}", requests(&gets, remote));
    let wire = loopback_limit(remote).await?;
    rounds_line(
        "3. ... Fetch requests from Rust, bucket (vs loopback TCP)",
        &[b as f64 / s / 1e6],
        &[wire],
        "MB/s",
        None,
    );
    // On shared cores the GETs and the Fetch socket take turns: a consume can at best spend the
    // raw GETs' time and the socket's time on the same bytes, one after the other.
    let raw_mbs = remote as f64 / raw_s / 1e6;
    let both = 1.0 / (1.0 / raw_mbs + 1.0 / wire);
    rounds_line("   ... (vs GETs then loopback, one after the other)", &[b as f64 / s / 1e6], &[both], "MB/s", None);

    // 4. End to end.
    let e2e_rate = if args.smoke { 200.0 } else { 2000.0 };
    let v = load(
        &python,
        &script,
        &["e2e".into(), bootstrap.clone(), "e2e".into(), e2e_rate.to_string(), secs.to_string()],
    )
    .await?;
    println!(
        "4. end to end at {e2e_rate:.0} rec/s, produce (acks=all, linger 0) to a long-polling consumer: p50 {:.0} us p99 {:.0} us over {} records",
        f(&v, "p50_us")?,
        f(&v, "p99_us")?,
        v["records"]
    );
    drop(redis);
    server.stop().await?;
    engine.close().await?;
    Ok(())
}
