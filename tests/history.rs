//! History end to end: restore from the bucket alone (local directory and SeaweedFS), replay of
//! ranges across both tiers, and event-sourced state as of past instants checked against balances
//! computed independently from the generated ledger.

mod common;

use bytes::Bytes;
use common::{config, eventually, produce, s3_config, topic};
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{At, Engine, EngineConfig, Error, Merge, Position, ReplaySpec, StateSpec, TopicConfig};

/// `cfg` on a fresh data dir under `dir` that restores from the same bucket.
fn restored(cfg: &EngineConfig, dir: &std::path::Path) -> EngineConfig {
    EngineConfig { data_dir: dir.join("restored"), restore: true, ..cfg.clone() }
}

/// Every batch of `[from, to)` of a partition, as the engine returns it.
async fn batches(engine: &Engine, topic: &str, partition: u32, from: i64, to: i64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut off = from;
    while off < to {
        let r = engine.read(topic, partition, off, 100_000).await.unwrap();
        for (h, b) in r.batches() {
            if h.base_offset < to {
                out.push(b);
            }
        }
        off = r.next_offset().unwrap();
    }
    out
}

/// Writes two topics, tiers most of it, keeps writing (that tail is never committed to the
/// bucket), then restores a fresh data dir from the bucket alone and checks every archived
/// offset byte for byte, then appends.
async fn restore_from(cfg: EngineConfig, fresh: EngineConfig) {
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("orders", topic(Some(1))).await.unwrap();
    let two = TopicConfig { partitions: 2, ..topic(None) };
    engine.create_topic("audit", two.clone()).await.unwrap();
    produce(&engine, "orders", 600, 1).await;
    for p in 0..2 {
        for b in 0..50i64 {
            let rec = Record {
                key: Some(format!("k{b}").into()),
                value: Some(vec![p as u8; 900].into()),
                headers: vec![],
                timestamp: 1_000 + b,
            };
            engine.append("audit", p, BatchBuilder::from_records(Compression::Lz4, &[rec])).await.unwrap();
        }
    }
    let mut archived = Vec::new();
    for (t, parts) in [("orders", 1u32), ("audit", 2)] {
        for p in 0..parts {
            engine.roll(t, p).await.unwrap();
            engine.tier_now(t, p).await.unwrap();
            let head = engine.remote_head(t, p).unwrap();
            assert!(head.next_offset > 0);
            archived.push((
                t,
                p,
                head.log_start_offset,
                head.next_offset,
                batches(&engine, t, p, head.log_start_offset, head.next_offset).await,
            ));
        }
    }
    // Acknowledged but not yet in the bucket: a restore does not bring this back.
    produce(&engine, "orders", 5, 2).await;
    engine.close().await.unwrap();

    let restored = Engine::open(fresh).await.unwrap();
    let c = restored.object_store_counts();
    assert_eq!(c.list, 1, "the catalog is listed once, segments never: {c:?}");
    assert_eq!(restored.list_topics(), vec!["audit".to_string(), "orders".to_string()]);
    assert_eq!(restored.describe_topic("audit").unwrap().config, two);
    for (t, p, start, next, want) in &archived {
        let d = restored.describe_topic(t).unwrap();
        let part = &d.partitions[*p as usize];
        assert_eq!((part.log_start_offset, part.high_watermark), (*start, *next), "{t}-{p}");
        assert_eq!(&batches(&restored, t, *p, *start, *next).await, want, "{t}-{p} reads back byte for byte");
        let err = restored.read(t, *p, *next + 1, 100).await.unwrap_err();
        assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    }
    // Appends continue at the right next offset, and tier on top of the restored log.
    let (_, _, _, next, _) = &archived[0];
    let rec = Record { key: None, value: Some("after".into()), headers: vec![], timestamp: 5_000 };
    let at = restored.append("orders", 0, BatchBuilder::from_records(Compression::None, &[rec])).await.unwrap();
    assert_eq!(at.base_offset, *next);
    restored.roll("orders", 0).await.unwrap();
    restored.tier_now("orders", 0).await.unwrap();
    assert_eq!(restored.remote_head("orders", 0).unwrap().next_offset, next + 1);
    let r = restored.read("orders", 0, *next, 100).await.unwrap();
    assert_eq!(r.records().unwrap()[0].value.as_deref(), Some(&b"after"[..]));
    restored.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_a_local_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    restore_from(cfg.clone(), restored(&cfg, dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_s3() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), "restore");
    restore_from(cfg.clone(), restored(&cfg, dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_leaves_a_data_dir_with_topics_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("a", topic(None)).await.unwrap();
    engine.close().await.unwrap();
    // Another writer adds a topic to the same bucket.
    let mut other = cfg.clone();
    other.data_dir = dir.path().join("other");
    let engine = Engine::open(other).await.unwrap();
    engine.create_topic("b", topic(None)).await.unwrap();
    engine.close().await.unwrap();
    cfg.restore = true;
    let engine = Engine::open(cfg).await.unwrap();
    assert_eq!(engine.list_topics(), vec!["a".to_string()], "restore only fills an empty data dir");
    engine.close().await.unwrap();
}

/// A bank ledger from a seed: deposits, withdrawals and closures (tombstones) of accounts over
/// simulated months. Each event's value is `"<amount> <balance after>"`; a closure is a null
/// value. Returns, per partition, the events in append order: (timestamp, account, amount or
/// None for a closure).
type Ledger = Vec<Vec<(i64, String, Option<i64>)>>;

const T0: i64 = 1_767_225_600_000; // 2026-01-01
const DAY: i64 = 86_400_000;

fn ledger(seed: u64, events: usize, accounts: u32, partitions: u32) -> Ledger {
    let mut x = seed;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut out: Ledger = vec![Vec::new(); partitions as usize];
    for i in 0..events {
        let account = rnd(accounts as u64) as u32;
        // About 120 days; timestamps jitter backwards a little (producers' clocks disagree).
        let ts = T0 + (i as i64) * 120 * DAY / events as i64 - rnd(3_600_000) as i64;
        let event = if rnd(50) == 0 { None } else { Some(rnd(1000) as i64 - 300) };
        out[(account % partitions) as usize].push((ts, format!("acct-{account:05}"), event));
    }
    out
}

/// Appends the ledger, computing each event's running balance as it goes.
async fn write_ledger(engine: &Engine, topic: &str, ledger: &Ledger) {
    write_ledger_from(engine, topic, ledger, &vec![Vec::new(); ledger.len()]).await
}

/// Appends `ledger` after `before` was appended (whose balances it continues).
async fn write_ledger_from(engine: &Engine, topic: &str, ledger: &Ledger, before: &Ledger) {
    for (p, events) in ledger.iter().enumerate() {
        let mut balance: std::collections::HashMap<&str, i64> = Default::default();
        for (_, acct, amount) in &before[p] {
            match amount {
                Some(a) => *balance.entry(acct).or_default() += a,
                None => {
                    balance.remove(acct.as_str());
                }
            }
        }
        for chunk in events.chunks(17) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|(ts, acct, amount)| {
                    let value = amount.map(|a| {
                        let b = balance.entry(acct).or_default();
                        *b += a;
                        Bytes::from(format!("{a} {b}"))
                    });
                    if amount.is_none() {
                        balance.remove(acct.as_str());
                    }
                    Record { key: Some(Bytes::from(acct.clone())), value, headers: vec![], timestamp: *ts }
                })
                .collect();
            engine.append(topic, p as u32, BatchBuilder::from_records(Compression::Zstd, &records)).await.unwrap();
        }
    }
}

/// Balances as of `t`, computed from the generated ledger alone: in each partition, the events
/// before the first one stamped >= t (Kafka's "as of"), folded by amount.
fn expected_at(ledger: &Ledger, t: i64) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for events in ledger {
        let cut = events.iter().position(|e| e.0 >= t).unwrap_or(events.len());
        for (_, acct, amount) in &events[..cut] {
            match amount {
                Some(a) => *out.entry(acct.clone()).or_insert(0) += a,
                None => {
                    out.remove(acct);
                }
            }
        }
    }
    out
}

async fn balances(engine: &Engine, spec: StateSpec) -> (std::collections::BTreeMap<String, i64>, usize) {
    let mut s = engine.state_at("ledger", spec).await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut last: Option<Bytes> = None;
    while let Some(e) = s.next().await.unwrap() {
        assert!(last.as_ref().is_none_or(|k| *k < e.key), "state comes in key order");
        last = Some(e.key.clone());
        let v = String::from_utf8(e.value.to_vec()).unwrap();
        let balance: i64 = v.split(' ').nth(1).unwrap().parse().unwrap();
        out.insert(String::from_utf8(e.key.to_vec()).unwrap(), balance);
    }
    (out, s.spilled_runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_sourced_balances_as_of_past_instants() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), "ledger");
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let mut topic = TopicConfig { partitions: 3, ..topic(Some(1)) };
    topic.log.segment_bytes = 8 << 10;
    engine.create_topic("ledger", topic).await.unwrap();
    let ledger = ledger(7, 12_000, 400, 3);
    write_ledger(&engine, "ledger", &ledger).await;
    for p in 0..3 {
        engine.roll("ledger", p).await.unwrap();
        engine.tier_now("ledger", p).await.unwrap();
        assert!(engine.remote_head("ledger", p).unwrap().totals.segments > 3);
    }
    let instants = [T0 - DAY, T0 + 10 * DAY, T0 + 45 * DAY + 3_600_000, T0 + 90 * DAY, T0 + 200 * DAY];
    let mut answers = Vec::new();
    for (i, &t) in instants.iter().enumerate() {
        let want = expected_at(&ledger, t);
        // Small fold budgets force spills to disk and the merge of runs.
        let memory = if i % 2 == 0 { 64 << 20 } else { 8 << 10 };
        let (got, runs) = balances(&engine, StateSpec { memory_bytes: memory, ..StateSpec::new(At::Time(t)) }).await;
        assert_eq!(got, want, "balances as of day {}", (t - T0) / DAY);
        if memory < 1 << 20 && !want.is_empty() {
            assert!(runs > 1, "a small budget spills ({runs} runs)");
        }
        answers.push(got);
    }
    assert!(answers[0].is_empty() && answers[4].len() > 300);
    // One partition, as of an offset: the events up to and including it.
    let o = 1_000;
    let one = vec![ledger[1][..=o as usize].to_vec()];
    let (got, _) = balances(&engine, StateSpec { partitions: Some(vec![1]), ..StateSpec::new(At::Offset(o)) }).await;
    assert_eq!(got, expected_at(&one, i64::MAX));
    engine.close().await.unwrap();

    // The same answers from a node restored from the bucket alone.
    let restored = Engine::open(restored(&cfg, dir.path())).await.unwrap();
    for (&t, want) in instants.iter().zip(&answers) {
        let (got, _) = balances(&restored, StateSpec::new(At::Time(t))).await;
        assert_eq!(&got, want, "restored: balances as of day {}", (t - T0) / DAY);
    }
    // And from a read-only replica of the same bucket, while the restored node is the writer.
    let mut rcfg = cfg.clone();
    rcfg.data_dir = dir.path().join("replica");
    rcfg.read_only = true;
    let replica = Engine::open(rcfg).await.unwrap();
    for (&t, want) in instants.iter().zip(&answers) {
        let (got, _) = balances(&replica, StateSpec::new(At::Time(t))).await;
        assert_eq!(&got, want, "replica: balances as of day {}", (t - T0) / DAY);
    }
    replica.close().await.unwrap();
    restored.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_ranges_and_time_merge_across_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    engine.create_topic("ledger", TopicConfig { partitions: 3, ..topic(Some(1)) }).await.unwrap();
    let ledger = ledger(11, 3_000, 50, 3);
    write_ledger(&engine, "ledger", &ledger).await;
    for p in 0..2 {
        // Partitions 0 and 1 mostly in the bucket, partition 2 all local.
        engine.roll("ledger", p).await.unwrap();
        engine.tier_now("ledger", p).await.unwrap();
    }
    let collect = |spec: ReplaySpec| {
        let engine = engine.clone();
        async move {
            let mut r = engine.replay("ledger", spec).await.unwrap();
            let mut out = Vec::new();
            while let Some(rec) = r.next().await.unwrap() {
                out.push(rec);
            }
            out
        }
    };
    // A whole partition, in offset order, equal to what was written.
    let p0 = collect(ReplaySpec::partition(0)).await;
    assert_eq!(p0.len(), ledger[0].len());
    for (i, (r, e)) in p0.iter().zip(&ledger[0]).enumerate() {
        assert_eq!((r.offset, r.timestamp, r.key.as_deref()), (i as i64, e.0, Some(e.1.as_bytes())));
    }
    // A time range of the whole topic, sequential: each partition's [offset_for_time(from),
    // offset_for_time(to)).
    let (from, to) = (T0 + 30 * DAY, T0 + 60 * DAY);
    let spec = ReplaySpec { from: Position::Time(from), to: Position::Time(to), ..Default::default() };
    let seq = collect(spec.clone()).await;
    let mut want = Vec::new();
    for (p, events) in ledger.iter().enumerate() {
        let a = events.iter().position(|e| e.0 >= from).unwrap();
        let b = events.iter().position(|e| e.0 >= to).unwrap();
        want.extend((a..b).map(|i| (p as u32, i as i64)));
    }
    assert_eq!(seq.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>(), want);
    // Merged by time: the same records; each partition still in offset order; and whenever the
    // next records of the partitions are in time order, so is the stream.
    let merged = collect(ReplaySpec { merge: Merge::ByTime, ..spec }).await;
    let mut a: Vec<_> = merged.iter().map(|r| (r.partition, r.offset)).collect();
    a.sort();
    assert_eq!(a, want);
    for p in 0..3 {
        let offs: Vec<i64> = merged.iter().filter(|r| r.partition == p).map(|r| r.offset).collect();
        assert!(offs.windows(2).all(|w| w[0] < w[1]));
    }
    let inversions = merged.windows(2).filter(|w| w[1].timestamp < w[0].timestamp).count();
    assert!(inversions * 20 < merged.len(), "merged by time ({inversions} inversions of {})", merged.len());
    // Bad requests get typed errors.
    let err = engine.replay("ledger", ReplaySpec::partition(7)).await.err().unwrap();
    assert!(matches!(err, Error::UnknownPartition { .. }), "{err}");
    let err = engine.replay("nope", ReplaySpec::default()).await.err().unwrap();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err}");
    let err = engine
        .replay("ledger", ReplaySpec { from: Position::Offset(1 << 40), ..ReplaySpec::partition(0) })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_replica_follows_the_writer_through_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), "replica");
    let writer = Engine::open(cfg.clone()).await.unwrap();
    let mut t = TopicConfig { partitions: 2, ..topic(Some(1)) };
    t.log.segment_bytes = 8 << 10;
    writer.create_topic("ledger", t).await.unwrap();
    let ledger = ledger(5, 4_000, 100, 2);
    let (first, second): (Ledger, Ledger) =
        ledger.iter().map(|events| (events[..events.len() / 2].to_vec(), events[events.len() / 2..].to_vec())).unzip();
    write_ledger(&writer, "ledger", &first).await;
    for p in 0..2 {
        writer.roll("ledger", p).await.unwrap();
        writer.tier_now("ledger", p).await.unwrap();
    }

    let mut rcfg = cfg.clone();
    rcfg.data_dir = dir.path().join("replica");
    rcfg.read_only = true;
    rcfg.replica_poll_ms = 50;
    // The replica polls on its own manual clock: a poll happens when the test moves it.
    let rclock = tierlog::ManualClock::new(T0);
    let replica = Engine::open_with_clock(rcfg, rclock.clone()).await.unwrap();
    let t1 = T0 + 40 * DAY;
    let (got, _) = balances(&replica, StateSpec::new(At::Time(t1))).await;
    assert_eq!(got, expected_at(&first, t1));

    // The writer keeps writing; the replica sees the new segments within the poll delay.
    write_ledger_from(&writer, "ledger", &second, &first).await;
    for p in 0..2 {
        writer.roll("ledger", p).await.unwrap();
        writer.tier_now("ledger", p).await.unwrap();
    }
    let ends: Vec<i64> = (0..2).map(|p| writer.remote_head("ledger", p).unwrap().next_offset).collect();
    let hw = |p: usize| replica.describe_topic("ledger").unwrap().partitions[p].high_watermark;
    assert!(hw(0) < ends[0] && hw(1) < ends[1], "no poll before the replica's clock moves");
    // A reader waiting on the replica for the new offsets is woken by that poll.
    let waiting = tokio::spawn({
        let replica = replica.clone();
        let want = ends[0] - 1;
        async move { replica.wait_for("ledger", 0, want, 600_000).await }
    });
    rclock.advance(50);
    eventually("the replica to see the new segments after one poll", || hw(0) == ends[0] && hw(1) == ends[1]).await;
    assert_eq!(waiting.await.unwrap().unwrap(), ends[0]);
    let t2 = T0 + 110 * DAY;
    let (got, _) = balances(&replica, StateSpec::new(At::Time(t2))).await;
    assert_eq!(got, expected_at(&ledger, t2));
    for p in 0..2 {
        let a = writer.read("ledger", p, 0, 1 << 20).await.unwrap();
        let b = replica.read("ledger", p, 0, 1 << 20).await.unwrap();
        assert_eq!(a.batches, b.batches);
    }
    // While nothing changes, polling costs conditional GETs that transfer nothing, and no LIST.
    let before = replica.object_store_counts();
    for round in 1..=4 {
        rclock.advance(50);
        eventually("a poll", || replica.object_store_counts().since(&before).gets() >= 2 * round).await;
    }
    let quiet = replica.object_store_counts().since(&before);
    assert!(quiet.gets() == 8 && quiet.bytes_read == 0 && quiet.list == 0, "one GET per head per poll: {quiet:?}");
    // Writes are refused, clearly.
    let rec = Record { key: None, value: Some("x".into()), headers: vec![], timestamp: 1 };
    let err = replica.append("ledger", 0, BatchBuilder::from_records(Compression::None, &[rec])).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    let err = replica.create_topic("other", topic(None)).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    assert!(matches!(replica.tier_now("ledger", 0).await.unwrap_err(), Error::ReadOnly { .. }));
    // The replica took nothing over: the writer still owns its partitions.
    assert!(writer.describe_topic("ledger").unwrap().partitions.iter().all(|p| p.fenced.is_none()));
    replica.close().await.unwrap();
    writer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_at_starts_from_snapshots_and_agrees_with_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let mut t = TopicConfig { partitions: 2, ..topic(Some(1)) };
    t.log.segment_bytes = 8 << 10;
    engine.create_topic("ledger", t).await.unwrap();
    let ledger = ledger(13, 6_000, 300, 2);
    let (first, second): (Ledger, Ledger) = ledger
        .iter()
        .map(|events| (events[..events.len() * 2 / 3].to_vec(), events[events.len() * 2 / 3..].to_vec()))
        .unzip();
    write_ledger(&engine, "ledger", &first).await;
    for p in 0..2 {
        engine.roll("ledger", p).await.unwrap();
        engine.tier_now("ledger", p).await.unwrap();
        let snap = engine.snapshot("ledger", p).await.unwrap().expect("a snapshot");
        assert_eq!(snap.offset, first[p as usize].len() as i64 - 1);
        assert!(engine.snapshot("ledger", p).await.unwrap().is_none(), "nothing new to snapshot");
    }
    write_ledger_from(&engine, "ledger", &second, &first).await;
    for p in 0..2 {
        engine.roll("ledger", p).await.unwrap();
        engine.tier_now("ledger", p).await.unwrap();
    }
    for t in [T0 + 20 * DAY, T0 + 85 * DAY, T0 + 100 * DAY, T0 + 200 * DAY] {
        let want = expected_at(&ledger, t);
        let mut with = engine.state_at("ledger", StateSpec::new(At::Time(t))).await.unwrap();
        let mut got = std::collections::BTreeMap::new();
        while let Some(e) = with.next().await.unwrap() {
            let v = String::from_utf8(e.value.to_vec()).unwrap();
            got.insert(
                String::from_utf8(e.key.to_vec()).unwrap(),
                v.split(' ').nth(1).unwrap().parse::<i64>().unwrap(),
            );
        }
        assert_eq!(got, want, "with snapshots, as of day {}", (t - T0) / DAY);
        let (without, _) = balances(&engine, StateSpec { use_snapshots: false, ..StateSpec::new(At::Time(t)) }).await;
        assert_eq!(without, want);
        // Partition p's snapshot (offset first[p].len() - 1) is used when the point lies past it.
        let cut = |p: usize| ledger[p].iter().position(|e| e.0 >= t).unwrap_or(ledger[p].len());
        let used: Vec<bool> = (0..2).map(|p| first[p].len() - 1 < cut(p)).collect();
        let replayed: usize = (0..2).map(|p| if used[p] { cut(p) - first[p].len() } else { cut(p) }).sum();
        assert_eq!(
            with.records,
            replayed as u64,
            "as of day {}: only what follows a snapshot is replayed",
            (t - T0) / DAY
        );
        assert_eq!(with.from_snapshots > 0, used.iter().any(|u| *u));
    }
    // A node restored from the bucket starts from the same snapshots.
    engine.close().await.unwrap();
    let restored = Engine::open(restored(&cfg, dir.path())).await.unwrap();
    let t = T0 + 200 * DAY;
    let mut s = restored.state_at("ledger", StateSpec::new(At::Time(t))).await.unwrap();
    let mut n = 0;
    while s.next().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, expected_at(&ledger, t).len());
    assert!(s.from_snapshots > 0);
    restored.close().await.unwrap();
}
