//! `tierlog demo`: the README's first command. It creates an `orders` topic, produces a week of
//! realistic order events (placed, paid, shipped, delivered; busier by day than by night), tiers
//! sealed segments to a local-directory bucket (keeping only the newest ~2 MB per partition on the
//! local disk), reads everything back across both tiers and checks it against what it generated,
//! finds offsets by time, counts events per day with time ranges, and prints a summary. Then the
//! event-sourcing story: bank accounts over months, the state of every account as of past dates
//! (`state_at`, checked against the generated events), and a fresh data dir restored from the
//! bucket alone giving the same answers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tiering::batch::{BatchBuilder, Compression, Header, Record};
use tiering::local::OffsetSpec;

use crate::config::{EngineConfig, TopicConfig};
use crate::engine::Engine;
use crate::records::format_time;
use crate::state::{At, StateSpec};

const MARKER: &str = ".tierlog-demo";
const DAY_MS: i64 = 86_400_000;
/// 2026-01-05T00:00:00Z, a Monday.
const START_MS: i64 = 1_767_571_200_000;
const STATUSES: [&str; 4] = ["placed", "paid", "shipped", "delivered"];
const CITIES: [&str; 8] = ["Lisbon", "Berlin", "Osaka", "Austin", "Lagos", "Lyon", "Pune", "Quito"];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's data (re-created on each run; refuses a non-empty folder that is
    /// not a previous demo).
    #[arg(long, default_value = "tierlog-demo")]
    pub dir: PathBuf,
    /// Orders to simulate (each becomes up to 4 events).
    #[arg(long, default_value_t = 100_000)]
    pub orders: u64,
    /// Days the orders are spread over.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

struct Event {
    ts: i64,
    order: u64,
    status: u8,
    customer: u32,
    city: u8,
    total_cents: u32,
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            anyhow::bail!("{} exists and is not a tierlog demo folder; choose another with --dir", dir.display());
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(MARKER), b"created by `tierlog demo`; safe to delete\n")?;
    Ok(())
}

/// A week of order events, in time order.
fn generate(args: &DemoArgs) -> Vec<Event> {
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let end = START_MS + args.days as i64 * DAY_MS;
    let mut events = Vec::with_capacity(args.orders as usize * 4);
    for order in 0..args.orders {
        // Busier during the day: accept an hour with probability following a day curve.
        let placed = loop {
            let t = START_MS + rng.random_range(0..args.days as i64 * DAY_MS);
            let hour = ((t / 3_600_000) % 24) as f64;
            let load = 0.15 + 0.85 * (((hour - 14.0) / 24.0 * std::f64::consts::TAU).cos() * 0.5 + 0.5);
            if rng.random_bool(load) {
                break t;
            }
        };
        let (customer, city, total_cents) =
            (rng.random_range(1..20_000), rng.random_range(0..CITIES.len() as u8), rng.random_range(500..50_000));
        let mut t = placed;
        for status in 0..4u8 {
            if status > 0 {
                t += match status {
                    1 => rng.random_range(10_000..1_800_000),
                    2 => rng.random_range(3_600_000..2 * DAY_MS),
                    _ => rng.random_range(DAY_MS..4 * DAY_MS),
                };
            }
            if t >= end {
                break;
            }
            events.push(Event { ts: t, order, status, customer, city, total_cents });
        }
    }
    events.sort_by_key(|e| e.ts);
    events
}

/// Appends `(partition, record)` pairs in per-partition batches of 500 records, up to 32 batches
/// in flight, order kept per partition; returns when every batch is acknowledged.
async fn append_all(
    engine: &Engine,
    topic: &str,
    partitions: u32,
    codec: Compression,
    records: impl Iterator<Item = (u32, Record)>,
) -> anyhow::Result<()> {
    let mut builders: Vec<BatchBuilder> = (0..partitions).map(|_| BatchBuilder::new(codec)).collect();
    let mut in_flight = std::collections::VecDeque::new();
    for (p, r) in records {
        let b = &mut builders[p as usize];
        b.push(&r);
        if b.len() >= 500 {
            let full = std::mem::replace(b, BatchBuilder::new(codec));
            in_flight.push_back(engine.enqueue_append(topic, p, full.build()).await?);
            while in_flight.len() > 32 {
                in_flight.pop_front().expect("invariant: non-empty").await?;
            }
        }
    }
    for (p, b) in builders.into_iter().enumerate() {
        if !b.is_empty() {
            in_flight.push_back(engine.enqueue_append(topic, p as u32, b.build()).await?);
        }
    }
    for f in in_flight {
        f.await?;
    }
    Ok(())
}

fn to_record(e: &Event) -> Record {
    let value = json!({
        "order_id": format!("ord-{:07}", e.order),
        "status": STATUSES[e.status as usize],
        "customer": format!("cust-{:05}", e.customer),
        "city": CITIES[e.city as usize],
        "total_cents": e.total_cents,
    });
    Record {
        key: Some(Bytes::from(format!("ord-{:07}", e.order))),
        value: Some(Bytes::from(value.to_string())),
        headers: vec![Header { key: "source".into(), value: Some(Bytes::from_static(b"demo")) }],
        timestamp: e.ts,
    }
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    prepare_dir(&args.dir)?;
    let data_dir = args.dir.join("data");
    // The default bucket: the local directory `<data_dir>/bucket`.
    let config = EngineConfig::new(&data_dir);
    let bucket = config.object_store();
    let engine = Engine::open(config.clone()).await?;
    let res = demo(&engine, args, &data_dir, &bucket).await;
    let res = match res {
        Ok(()) => bank(&engine, args, &config).await,
        e => e,
    };
    engine.close().await?;
    res?;
    let dd = data_dir.display();
    println!(
        "\ntry:\n  tierlog --data-dir {dd} consume orders --partition 0 --from-time 2026-01-07T09:00:00Z --max-records 3\n  \
         tierlog --data-dir {dd} offset-for-time orders --partition 1 --time 2026-01-08T00:00:00Z\n  \
         tierlog --data-dir {dd} state-at accounts --time 2026-03-01T00:00:00Z | head\n  \
         tierlog --data-dir {dd} replay accounts --from-time 2026-03-01T00:00:00Z --merge-by-time --max-records 5\n  \
         tierlog --data-dir {dd} topic describe orders\n  \
         tierlog --data-dir {dd} serve    # HTTP on 127.0.0.1:8080: /topics, /topics/accounts/state?time=..., /metrics\n  \
         tierlog inspect {dd}/orders-0\n  \
         tierlog --data-dir {dd} inspect {dd}/balances-0    # compaction state of the changelog topic"
    );
    Ok(())
}

/// One bank-account event: a deposit or withdrawal (`amount` cents, signed) or the account's
/// closure.
struct AccountEvent {
    ts: i64,
    account: u32,
    amount: Option<i64>,
}

/// Months of account activity, in time order: deposits, withdrawals that never overdraw, and a
/// few closures (after which an account may be opened again from zero).
fn ledger(args: &DemoArgs, accounts: u32, months: i64) -> Vec<AccountEvent> {
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0xBA4C);
    let span = months * 30 * DAY_MS;
    let n = (args.orders as usize).max(1000) * 3 / 2;
    let mut times: Vec<i64> = (0..n).map(|_| START_MS + rng.random_range(0..span)).collect();
    times.sort_unstable();
    let mut balance = vec![0i64; accounts as usize];
    times
        .into_iter()
        .map(|ts| {
            let account = rng.random_range(0..accounts);
            let b = &mut balance[account as usize];
            let amount = if rng.random_ratio(1, 400) {
                *b = 0;
                None
            } else if *b > 0 && rng.random_bool(0.45) {
                let w = rng.random_range(1..=*b);
                *b -= w;
                Some(-w)
            } else {
                let d = rng.random_range(100..50_000);
                *b += d;
                Some(d)
            };
            AccountEvent { ts, account, amount }
        })
        .collect()
}

/// Balances (cents) of open accounts after the events stamped before `t`: computed from the
/// generated events alone, to check tierlog's `state_at` against.
fn balances_before(events: &[AccountEvent], t: i64) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for e in events.iter().take_while(|e| e.ts < t) {
        let key = format!("acct-{:05}", e.account);
        match e.amount {
            Some(a) => *out.entry(key).or_insert(0) += a,
            None => {
                out.remove(&key);
            }
        }
    }
    out
}

/// The balances `state_at` gives as of `t` (each account's latest event carries its balance).
async fn state_balances(engine: &Engine, t: i64) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    state_balances_of(engine, "accounts", t).await
}

async fn state_balances_of(
    engine: &Engine,
    topic: &str,
    t: i64,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let mut state = engine.state_at(topic, StateSpec::new(At::Time(t))).await?;
    let mut out = std::collections::BTreeMap::new();
    while let Some(e) = state.next().await? {
        let v: serde_json::Value = serde_json::from_slice(&e.value)?;
        let balance = v["balance_cents"].as_i64().context("balance_cents in an account event")?;
        out.insert(String::from_utf8_lossy(&e.key).into_owned(), balance);
    }
    Ok(out)
}

/// The same events in a `compact` topic, `balances` (a changelog: each record carries the
/// account's new balance): key compaction keeps the latest per account in both tiers, merging
/// folds its small remote segments, and the current balances read the same before and after.
async fn changelog(
    engine: &Engine,
    events: &[AccountEvent],
    records: Vec<(u32, Record)>,
    partitions: u32,
) -> anyhow::Result<()> {
    let mut tc = TopicConfig { partitions, cleanup_policy: crate::CleanupPolicy::Compact, ..Default::default() };
    tc.log.segment_bytes = 256 << 10;
    engine.create_topic("balances", tc).await?;
    append_all(engine, "balances", partitions, Compression::Zstd, records.into_iter()).await?;
    for p in 0..partitions {
        engine.roll("balances", p).await?;
    }
    let now = |engine: &Engine| -> anyhow::Result<(u64, u64)> {
        let d = engine.describe_topic("balances")?;
        Ok(d.partitions.iter().fold((0, 0), |(r, s), p| (r + p.remote.totals.records, s + p.remote.totals.segments)))
    };
    let started = Instant::now();
    let done = engine.compact("balances", None, None).await?;
    let secs = started.elapsed().as_secs_f64();
    let (records_after, segments_after) = now(engine)?;
    let removed: u64 = done.iter().map(|d| d.remote.records_removed).sum();
    let local_removed: u64 = done.iter().map(|d| d.local.records_removed).sum();
    let merged: u64 = done.iter().map(|d| d.remote.segments_merged).sum();
    let got = state_balances_of(engine, "balances", i64::MAX).await?;
    anyhow::ensure!(got == balances_before(events, i64::MAX), "compacted balances disagree with the events");
    println!(
        "compacted the changelog topic `balances` in {secs:.2} s: the bucket holds {records_after} records (one per account, {removed} removed; {local_removed} locally) in {segments_after} segments ({merged} merged away); current balances unchanged, matching the events"
    );
    Ok(())
}

/// The event-sourcing story: bank accounts over months, tiered to the bucket; the state of every
/// account as of past dates from `state_at`, checked against the events; then a fresh data dir
/// restored from the bucket alone gives the same answers.
async fn bank(engine: &Engine, args: &DemoArgs, config: &EngineConfig) -> anyhow::Result<()> {
    let (accounts, months, partitions) = (2_000u32, 6i64, 4u32);
    let mut tc = TopicConfig { partitions, ..Default::default() };
    tc.log.segment_bytes = 512 << 10;
    tc.log.local_retention_bytes = Some(1 << 20);
    engine.create_topic("accounts", tc).await?;
    let events = ledger(args, accounts, months);
    println!(
        "
--- event sourcing: {} deposits, withdrawals and closures of {accounts} bank accounts over {months} months, topic `accounts` ---",
        events.len()
    );
    let started = Instant::now();
    let mut balance = vec![0i64; accounts as usize];
    let records = events.iter().map(|e| {
        let key = format!("acct-{:05}", e.account);
        let value = e.amount.map(|a| {
            let b = &mut balance[e.account as usize];
            *b += a;
            let kind = if a >= 0 { "deposit" } else { "withdrawal" };
            Bytes::from(json!({ "account": key, "kind": kind, "amount_cents": a, "balance_cents": *b }).to_string())
        });
        if e.amount.is_none() {
            balance[e.account as usize] = 0; // closed: a null value (tombstone) deletes the key
        }
        (e.account % partitions, Record { key: Some(Bytes::from(key)), value, headers: vec![], timestamp: e.ts })
    });
    let records: Vec<(u32, Record)> = records.collect();
    append_all(engine, "accounts", partitions, Compression::Zstd, records.clone().into_iter()).await?;
    for p in 0..partitions {
        engine.roll("accounts", p).await?;
        engine.tier_now("accounts", p).await?;
    }
    println!("wrote and tiered them in {:.2} s", started.elapsed().as_secs_f64());
    changelog(engine, &events, records, partitions).await?;

    let instants: Vec<i64> = [1i64, 3, 5].iter().map(|m| START_MS + m * 30 * DAY_MS).collect();
    println!("state of every account as of past dates (state_at: latest event per account, closures applied):");
    let mut answers = Vec::new();
    for &t in &instants {
        let started = Instant::now();
        let got = state_balances(engine, t).await?;
        let want = balances_before(&events, t);
        anyhow::ensure!(got == want, "state_at {} disagrees with the events", format_time(t));
        let total: i64 = got.values().sum();
        let richest = got.iter().max_by_key(|(_, b)| **b).map(|(k, b)| format!("{k} {:.2}", *b as f64 / 100.0));
        println!(
            "  as of {}: {:>5} open accounts, total {:>14.2}, richest {}  ({:.2} s, matches the events)",
            &format_time(t)[..10],
            got.len(),
            total as f64 / 100.0,
            richest.unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
        answers.push(got);
    }

    // A new node with an empty disk, pointed at the same bucket.
    let mut fresh = config.clone();
    fresh.data_dir = args.dir.join("restored");
    fresh.object_store = Some(config.object_store());
    fresh.restore = true;
    let started = Instant::now();
    let restored = Engine::open(fresh.clone()).await?;
    let res = async {
        let c = restored.object_store_counts();
        println!(
            "restored {} into an empty data dir from the bucket alone in {:.2} s ({} LIST, {} GETs): topics {}",
            fresh.data_dir.display(),
            started.elapsed().as_secs_f64(),
            c.list,
            c.gets(),
            restored.list_topics().join(", ")
        );
        for (&t, want) in instants.iter().zip(&answers) {
            let got = state_balances(&restored, t).await?;
            anyhow::ensure!(&got == want, "the restored node disagrees as of {}", format_time(t));
        }
        println!("  the restored node gives the same balances as of every date above");
        anyhow::Ok(())
    }
    .await;
    restored.close().await?;
    res
}

async fn demo(
    engine: &Engine,
    args: &DemoArgs,
    data_dir: &Path,
    bucket: &tiering::remote::ObjectStoreConfig,
) -> anyhow::Result<()> {
    let partitions = 4u32;
    let mut tc = TopicConfig { partitions, ..Default::default() };
    tc.log.segment_bytes = 1 << 20;
    // Keep the newest ~2 MB per partition locally; the bucket keeps everything.
    tc.log.local_retention_bytes = Some(2 << 20);
    engine.create_topic("orders", tc).await?;
    println!(
        "tierlog demo: {} orders over {} days into topic `orders` ({partitions} partitions) in {}, tiering to {bucket}",
        args.orders,
        args.days,
        data_dir.display(),
    );

    // Produce: per-partition batches of 500 events, lz4, many in flight.
    let events = generate(args);
    let started = Instant::now();
    let mut expected_status = [0u64; 4];
    let mut raw_bytes = 0u64;
    let records = events.iter().map(|e| {
        let r = to_record(e);
        expected_status[e.status as usize] += 1;
        raw_bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        (crc32c::crc32c(r.key.as_deref().unwrap_or_default()) % partitions, r)
    });
    append_all(engine, "orders", partitions, Compression::Lz4, records).await?;
    let produce_secs = started.elapsed().as_secs_f64();
    println!(
        "\nproduced {} events ({:.1} MB of JSON) in {:.2} s: {:.0} events/s, every batch fsynced before its ack",
        events.len(),
        raw_bytes as f64 / 1e6,
        produce_secs,
        events.len() as f64 / produce_secs
    );

    // Tier: seal each partition's active segment and wait for the uploader (it runs in the
    // background anyway; this makes the demo deterministic).
    let started = Instant::now();
    let (mut segs, mut bytes) = (0, 0);
    for p in 0..partitions {
        engine.roll("orders", p).await?;
        engine.tier_now("orders", p).await?;
        let head = engine.remote_head("orders", p)?;
        (segs, bytes) = (segs + head.totals.segments, bytes + head.totals.bytes);
    }
    let uploads = engine.object_store_counts();
    println!(
        "tiered {segs} segments ({:.1} MB) with their Parquet indexes to the bucket in {:.2} s: {} PUTs, manifests committed",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        uploads.writes()
    );
    for p in 0..partitions {
        let d = &engine.describe_topic("orders")?.partitions[p as usize];
        let local_start = d.segments.first().map_or(d.high_watermark, |s| s.base_offset);
        println!(
            "  orders-{p}: bucket holds [{}, {}), local disk holds [{local_start}, {})",
            d.remote.log_start_offset, d.remote.next_offset, d.high_watermark
        );
    }

    // Read everything back (most of it from the bucket) and check it.
    let before = engine.object_store_counts();
    let started = Instant::now();
    let mut seen_status = [0u64; 4];
    let mut total = 0u64;
    for p in 0..partitions {
        let mut offset = 0;
        loop {
            let r = engine.read("orders", p, offset, 1 << 20).await?;
            let Some(next) = r.next_offset() else { break };
            for rec in r.records()? {
                let v: serde_json::Value = serde_json::from_slice(rec.value.as_deref().unwrap_or_default())?;
                let s = v["status"].as_str().unwrap_or_default();
                if let Some(i) = STATUSES.iter().position(|x| *x == s) {
                    seen_status[i] += 1;
                }
                total += 1;
            }
            offset = next;
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        total == events.len() as u64 && seen_status == expected_status,
        "read back {total} events ({}), produced {} ({})",
        by_status(&seen_status),
        events.len(),
        by_status(&expected_status)
    );
    let reads = engine.object_store_counts().since(&before);
    println!(
        "read back all {total} events across both tiers in {read_secs:.2} s ({:.0} events/s): every event accounted for",
        total as f64 / read_secs
    );
    println!(
        "  from the bucket: {:.1} MB in {} GETs (CRC-checked, through the cache, with read-ahead)",
        reads.bytes_read as f64 / 1e6,
        reads.gets()
    );
    for (s, n) in STATUSES.iter().zip(seen_status) {
        println!("  {s:<10} {n:>8}");
    }

    // Find offsets by time, and count events per day with time ranges.
    println!(
        "\nevents per day (each count is offset_for_time(next day) - offset_for_time(day), summed over partitions):"
    );
    for d in 0..args.days as i64 {
        let (from, to) = (START_MS + d * DAY_MS, START_MS + (d + 1) * DAY_MS);
        let mut n = 0i64;
        for p in 0..partitions {
            let latest = engine.offset_for_time("orders", p, OffsetSpec::Latest).await?.map_or(0, |t| t.offset);
            let a =
                engine.offset_for_time("orders", p, OffsetSpec::Timestamp(from)).await?.map_or(latest, |t| t.offset);
            let b = engine.offset_for_time("orders", p, OffsetSpec::Timestamp(to)).await?.map_or(latest, |t| t.offset);
            n += b - a;
        }
        let expected = events.iter().filter(|e| e.ts >= from && e.ts < to).count() as i64;
        anyhow::ensure!(n == expected, "day {d}: time ranges give {n} events, generated {expected}");
        println!("  {}  {n:>7} events", &format_time(from)[..10]);
    }
    println!("\nfirst event at or after noon each day, partition 0:");
    for d in 0..args.days as i64 {
        let t = START_MS + d * DAY_MS + DAY_MS / 2;
        let Some(found) = engine.offset_for_time("orders", 0, OffsetSpec::Timestamp(t)).await? else { continue };
        let r = engine.read("orders", 0, found.offset, 64 << 10).await?;
        let rec = r.records()?.into_iter().find(|x| x.offset == found.offset).context("record at found offset")?;
        let v: serde_json::Value = serde_json::from_slice(rec.value.as_deref().unwrap_or_default())?;
        println!(
            "  {} -> offset {:>6} at {}  {} {}",
            format_time(t),
            found.offset,
            format_time(found.timestamp),
            v["order_id"].as_str().unwrap_or("?"),
            v["status"].as_str().unwrap_or("?")
        );
    }

    println!("\nstorage:");
    let (mut disk, mut remote) = (0, 0);
    for p in 0..partitions {
        let d = &engine.describe_topic("orders")?.partitions[p as usize];
        disk += d.size_bytes;
        remote += d.remote.totals.bytes;
        println!(
            "  orders-{p}: offsets [{}, {}); local {} segments, {:.1} MB; bucket {} segments, {:.1} MB (epoch {})",
            d.log_start_offset,
            d.high_watermark,
            d.segments.len(),
            d.size_bytes as f64 / 1e6,
            d.remote.totals.segments,
            d.remote.totals.bytes as f64 / 1e6,
            d.remote.epoch
        );
    }
    println!(
        "  total: local {:.1} MB, bucket {:.1} MB (lz4-compressed batches, stored as produced)",
        disk as f64 / 1e6,
        remote as f64 / 1e6
    );
    Ok(())
}

/// `12 placed, 10 shipped, ...`: event counts by status, for messages.
fn by_status(counts: &[u64; 4]) -> String {
    STATUSES.iter().zip(counts).map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
}
