//! Recovery isolates damage: a partition whose acknowledged records are gone (its active
//! segment truncated below the checkpoint, the active segment missing, a middle segment missing)
//! opens as damaged with a clear reason while every other partition serves, and never silently
//! continues from what is left; `tierlog repair` cuts it back to its last intact batch and says
//! what was dropped.

mod common;

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use common::config;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, Error, LogConfig, TopicConfig};

fn batch(p: u32, i: usize) -> Bytes {
    let value = format!("p{p}-b{i}-{}", "x".repeat(300));
    let r = Record { key: Some("k".into()), value: Some(value.into()), headers: vec![], timestamp: 1_700_000_000_000 };
    BatchBuilder::from_records(Compression::None, &[r])
}

fn segments(dir: &Path, p: u32) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("data").join(format!("t-{p}")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_partition_opens_failed_while_the_others_serve_and_repair_cuts_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let topic = TopicConfig {
        partitions: 4,
        log: LogConfig { segment_bytes: 4096, ..Default::default() },
        ..Default::default()
    };
    engine.create_topic("t", topic).await.unwrap();
    for p in 0..4 {
        for i in 0..40 {
            engine.append("t", p, batch(p, i)).await.unwrap();
        }
    }
    engine.close().await.unwrap();

    // p0: the active segment loses its tail below the checkpoint. p1: the active segment is gone.
    // p2: a middle segment is gone. p3 is intact.
    let active0 = segments(dir.path(), 0).pop().unwrap();
    let len = std::fs::metadata(&active0).unwrap().len();
    std::fs::File::options().write(true).open(&active0).unwrap().set_len(len / 2).unwrap();
    std::fs::remove_file(segments(dir.path(), 1).pop().unwrap()).unwrap();
    let s2 = segments(dir.path(), 2);
    assert!(s2.len() >= 3);
    std::fs::remove_file(&s2[1]).unwrap();

    let engine = Engine::open(cfg.clone()).await.unwrap();
    let problems = engine.problems();
    let damaged: Vec<u32> = problems.iter().map(|p| p.partition).collect();
    assert_eq!(damaged, [0, 1, 2], "{problems:?}");
    for p in &problems {
        assert_eq!(p.state, "damaged");
        assert!(p.reason.contains("tierlog repair --topic t --partition"), "{}", p.reason);
    }
    assert!(problems[0].reason.contains("shorter than"), "{}", problems[0].reason);
    assert!(problems[1].reason.contains("missing"), "{}", problems[1].reason);
    assert!(problems[2].reason.contains("expected"), "{}", problems[2].reason);
    // Appends to a damaged partition are refused, with the reason; the others serve.
    match engine.append("t", 0, batch(0, 99)).await {
        Err(Error::PartitionUnavailable { reason, .. }) => assert!(reason.contains("repair"), "{reason}"),
        other => panic!("expected PartitionUnavailable, got {other:?}"),
    }
    let at = engine.append("t", 3, batch(3, 40)).await.unwrap();
    assert_eq!(at.base_offset, 40);
    let r = engine.read("t", 3, 0, 1 << 20).await.unwrap();
    assert_eq!(r.records().unwrap()[0].value.as_deref(), Some(batch_value(3, 0).as_bytes()));
    // While an engine has the data dir, repair refuses to run.
    assert!(matches!(Engine::repair_partition(&cfg, "t", 0), Err(Error::DataDirLocked { .. })));
    engine.close().await.unwrap();

    // Repair through the CLI: one JSON line saying what was kept and dropped.
    let out = Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .args(["--data-dir", cfg.data_dir.to_str().unwrap(), "repair", "--topic", "t", "--partition", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = report["log_end_offset"].as_i64().unwrap();
    assert_eq!(report["checkpoint_end_offset"], 40);
    assert!(kept < 40 && report["dropped_offsets"].as_i64().unwrap() == 40 - kept, "{report}");
    for p in [1, 2] {
        let r = Engine::repair_partition(&cfg, "t", p).unwrap();
        assert!(r.log_end_offset < 40, "{r:?}");
        if p == 2 {
            // The segments after the missing one are dropped whole: offsets stay dense.
            assert!(!r.dropped_segments.is_empty() && r.dropped_bytes > 0, "{r:?}");
        }
    }
    assert!(matches!(Engine::repair_partition(&cfg, "t", 9), Err(Error::UnknownPartition { .. })));

    // Reopened: every partition takes appends again, after its last intact batch.
    let engine = Engine::open(cfg).await.unwrap();
    assert!(engine.problems().is_empty(), "{:?}", engine.problems());
    let at = engine.append("t", 0, batch(0, 99)).await.unwrap();
    assert_eq!(at.base_offset, kept);
    let recs = engine.read("t", 0, 0, 1 << 20).await.unwrap().records().unwrap();
    assert_eq!(recs[0].value.as_deref(), Some(batch_value(0, 0).as_bytes()));
    engine.close().await.unwrap();
}

fn batch_value(p: u32, i: usize) -> String {
    format!("p{p}-b{i}-{}", "x".repeat(300))
}
