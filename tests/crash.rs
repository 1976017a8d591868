//! Crash test: a child process appends with fsync durability from several tasks and prints each
//! batch as it is acknowledged; the parent kills it with SIGKILL at a random moment, many times.
//! After each kill, reopening the log must give back every acknowledged batch intact, offsets must
//! be dense from 0 with no corrupt batch anywhere, and the next child must continue at the end.
//!
//! The child is this test binary itself, re-run with `TIERLOG_CRASH_CHILD` set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use tierlog::batch::records::decode_batch;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, TopicConfig};

const PARTITIONS: u32 = 3;
const TASKS: u64 = 6;

fn config(dir: &str) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.writer.tick_ms = 5; // checkpoints and rolls happen often, so kills land in them too
    // Most groups span partitions and go through the disk journal, and journal files rotate
    // (sync every segment, delete old files) every megabyte, so kills land in all of that too.
    c.writer.journal_min_partitions = 2;
    c.writer.journal_file_bytes = 1 << 20;
    c
}

/// The records of batch `seq` of task `task` in child run `run`: the parent rebuilds them to
/// check what it reads back.
fn batch_records(run: u64, task: u64, seq: u64) -> Vec<Record> {
    let n = 1 + (seq % 9) as usize;
    (0..n)
        .map(|i| Record {
            key: Some(Bytes::from(format!("t{task}"))),
            value: Some(Bytes::from(format!(
                "run {run} task {task} seq {seq} rec {i} {}",
                "z".repeat((seq % 5) as usize * 97)
            ))),
            headers: vec![],
            timestamp: 1_700_000_000_000 + seq as i64,
        })
        .collect()
}

fn codec(seq: u64) -> Compression {
    Compression::ALL[(seq % 5) as usize]
}

/// The child: appends forever until killed, printing `ACK partition base last run task seq`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("TIERLOG_CRASH_CHILD") else { return };
    let run: u64 = std::env::var("TIERLOG_CRASH_RUN").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let engine = Engine::open(config(&dir)).await.unwrap();
        if engine.list_topics().is_empty() {
            let mut tc = TopicConfig { partitions: PARTITIONS, ..Default::default() };
            tc.log.segment_bytes = 64 << 10;
            engine.create_topic("crash", tc).await.unwrap();
        }
        println!("READY");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for task in 0..TASKS {
            let (engine, tx) = (engine.clone(), tx.clone());
            tokio::spawn(async move {
                for seq in 0.. {
                    let p = ((task + seq) % PARTITIONS as u64) as u32;
                    let batch = BatchBuilder::from_records(codec(seq), &batch_records(run, task, seq));
                    let at = engine.append("crash", p, batch).await.unwrap();
                    tx.send(format!("ACK {p} {} {} {run} {task} {seq}", at.base_offset, at.last_offset)).unwrap();
                }
            });
        }
        drop(tx);
        let mut out = std::io::stdout().lock();
        while let Some(line) = rx.recv().await {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    partition: u32,
    base: i64,
    last: i64,
    run: u64,
    task: u64,
    seq: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut f = line.strip_prefix("ACK ")?.split(' ').map(|x| x.parse::<i64>().ok());
    Some(Ack {
        partition: f.next()?? as u32,
        base: f.next()??,
        last: f.next()??,
        run: f.next()?? as u64,
        task: f.next()?? as u64,
        seq: f.next()?? as u64,
    })
}

/// Verifies the whole log after a crash; returns the high watermark of each partition.
async fn verify(dir: &str, acked: &[Ack]) -> Vec<i64> {
    let engine = Engine::open(config(dir)).await.unwrap();
    let mut ends = Vec::new();
    let mut by_base: BTreeMap<(u32, i64), (Vec<Record>, i64)> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let mut offset = 0i64;
        loop {
            let r = engine.read("crash", p, offset, 256 << 10).await.unwrap();
            if r.batches.is_empty() {
                assert_eq!(offset, r.high_watermark, "partition {p}: reads stop at the high watermark");
                ends.push(offset);
                break;
            }
            for (h, b) in r.batches() {
                assert_eq!(h.base_offset, offset, "partition {p}: offsets are dense");
                let (_, recs) = decode_batch(&b)
                    .unwrap_or_else(|e| panic!("partition {p} offset {offset}: corrupt batch returned: {e}"));
                by_base.insert((p, h.base_offset), (recs.into_iter().map(Record::from).collect(), h.last_offset()));
                offset = h.next_offset();
            }
        }
    }
    for a in acked {
        let (recs, last) =
            by_base.get(&(a.partition, a.base)).unwrap_or_else(|| panic!("acknowledged batch lost: {a:?}"));
        assert_eq!(*last, a.last, "{a:?}");
        assert_eq!(recs, &batch_records(a.run, a.task, a.seq), "acknowledged batch changed: {a:?}");
    }
    engine.close().await.unwrap();
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    let runs: u64 = std::env::var("TIERLOG_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap().to_owned();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(
        std::env::var("TIERLOG_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7),
    );
    let mut acked: Vec<Ack> = Vec::new();
    let mut prev_ends = vec![0i64; PARTITIONS as usize];
    for run in 0..runs {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("TIERLOG_CRASH_CHILD", &dir_s)
            .env("TIERLOG_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it is appending, then kill it at a random moment.
        let started = Instant::now();
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("child starts");
            if line.ends_with("READY") {
                break;
            }
        }
        let first_acks = Instant::now();
        let delay = Duration::from_millis(rng.random_range(1..400));
        while first_acks.elapsed() < delay {
            #[allow(clippy::disallowed_methods)] // waits on a real process
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let new: Vec<Ack> = rx.try_iter().filter_map(|l| parse_ack(&l)).collect();
        assert!(started.elapsed() < Duration::from_secs(120));
        acked.extend(new.iter().copied());
        let ends = verify(&dir_s, &acked).await;
        for (p, (&end, &prev)) in ends.iter().zip(&prev_ends).enumerate() {
            assert!(end >= prev, "partition {p} shrank from {prev} to {end}");
            let max_acked = acked.iter().filter(|a| a.partition == p as u32).map(|a| a.last + 1).max().unwrap_or(0);
            assert!(end >= max_acked, "partition {p}: end {end} below acknowledged {max_acked}");
        }
        eprintln!("run {run}: killed after {delay:?}, {} new acks, log ends {ends:?}", new.len());
        prev_ends = ends;
    }
    assert!(acked.len() > 50, "the child acknowledged too little for the test to mean much: {}", acked.len());
}
