//! `tierlog compact <topic>`: uploads what is sealed, then runs key compaction (local and remote,
//! for `compact` topics) and merging of small remote segments on every partition now, with a
//! progress bar on stderr, and prints what it did as one JSON line per partition.

use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::Cli;
use crate::{Engine, Progress};

#[derive(Debug, Args)]
pub struct CompactArgs {
    pub topic: String,
    /// Only these partitions (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub partition: Option<Vec<u32>>,
    /// Also write a state snapshot of each partition afterwards.
    #[arg(long)]
    pub snapshot: bool,
}

pub use crate::records::report_json;

pub async fn run(cli: &Cli, args: &CompactArgs) -> anyhow::Result<()> {
    let mut cfg = cli.engine_config()?;
    cfg.compactor.enabled = false; // this command is the compactor
    let engine = Engine::open(cfg).await?;
    let res = compact(&engine, args).await;
    engine.close().await?;
    res
}

async fn compact(engine: &Engine, args: &CompactArgs) -> anyhow::Result<()> {
    let partitions = engine.partition_count(&args.topic)?;
    let chosen: Vec<u32> = args.partition.clone().unwrap_or_else(|| (0..partitions).collect());
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})")
            .expect("invariant: valid template")
            .progress_chars("=> "),
    );
    let bar = pb.clone();
    let progress: crate::ProgressFn = Arc::new(move |partition: u32, p: Progress| {
        bar.set_message(format!("partition {partition}: {}", p.phase.name()));
        bar.set_length(p.total_bytes);
        bar.set_position(p.done_bytes);
    });
    let done = engine.compact(&args.topic, Some(&chosen), Some(progress)).await;
    pb.finish_and_clear();
    for d in done? {
        let snapshot = if args.snapshot { engine.snapshot(&args.topic, d.partition).await? } else { None };
        println!(
            "{}",
            json!({
                "topic": args.topic,
                "partition": d.partition,
                "local": report_json(&d.local),
                "remote": report_json(&d.remote),
                "snapshot": snapshot.map(|s| json!({ "offset": s.offset, "keys": s.keys, "size_bytes": s.size })),
            })
        );
    }
    Ok(())
}
