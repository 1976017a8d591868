//! `tierlog restore`: rebuild an empty data dir from the bucket alone.

use clap::Args;
use serde_json::json;

use crate::cli::Cli;
use crate::engine::Engine;

/// No options: the bucket is `[object_store]` of the config file (`--config`), which the
/// restored data dir keeps using afterwards.
#[derive(Debug, Args)]
pub struct RestoreArgs {}

pub async fn run(cli: &Cli, _args: &RestoreArgs) -> anyhow::Result<()> {
    let mut cfg = cli.engine_config()?;
    anyhow::ensure!(
        cfg.object_store.is_some(),
        "restore needs the bucket to restore from: set [object_store] in the config file (--config)"
    );
    let topics_dir = cfg.data_dir.join("topics");
    if let Ok(mut entries) = std::fs::read_dir(&topics_dir) {
        anyhow::ensure!(
            entries.next().is_none(),
            "{} already holds topics: restore rebuilds an empty data dir only",
            cfg.data_dir.display()
        );
    }
    cfg.restore = true;
    let started = std::time::Instant::now();
    let engine = Engine::open(cfg).await?;
    let topics = engine.list_all_topics();
    let mut partitions = 0;
    for t in &topics {
        let d = engine.describe_topic(t)?;
        for p in &d.partitions {
            partitions += 1;
            let head = engine.remote_head(t, p.partition)?;
            let last = (head.next_offset > head.log_start_offset).then_some(head.next_offset - 1);
            println!(
                "{}",
                json!({
                    "topic": t,
                    "partition": p.partition,
                    "log_start_offset": head.log_start_offset,
                    "last_restorable_offset": last,
                    "next_offset": head.next_offset,
                    "segments": head.totals.segments,
                    "bytes": head.totals.bytes,
                    "records": head.totals.records,
                })
            );
        }
    }
    let c = engine.object_store_counts();
    eprintln!(
        "restored {} topic(s), {partitions} partition(s) in {:.2} s: {} GETs, {} LISTs, {} PUTs",
        topics.len(),
        started.elapsed().as_secs_f64(),
        c.gets(),
        c.list,
        c.writes()
    );
    engine.close().await?;
    Ok(())
}
