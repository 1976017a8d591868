//! `tierlog repair`: cut a damaged partition's local log back to its last intact batch.

use clap::Args;
use serde_json::json;

use crate::cli::Cli;
use crate::engine::Engine;

/// Run on a stopped data dir (it takes the data dir's lock). A partition opens damaged when
/// recovery finds acknowledged records missing or corrupt below its checkpoint (`/health` and
/// `topic describe` say so); repair checks every batch from the first segment, keeps the log up to
/// the first bad one, removes the rest, and prints one JSON line saying what was kept and what was
/// dropped. The bucket is not touched: records it holds past the cut are served from there.
#[derive(Debug, Args)]
pub struct RepairArgs {
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub partition: u32,
}

pub async fn run(cli: &Cli, args: &RepairArgs) -> anyhow::Result<()> {
    let cfg = cli.engine_config()?;
    let (topic, partition) = (args.topic.clone(), args.partition);
    let r = tokio::task::spawn_blocking(move || Engine::repair_partition(&cfg, &topic, partition)).await??;
    println!(
        "{}",
        json!({
            "topic": args.topic,
            "partition": args.partition,
            "log_start_offset": r.log_start_offset,
            "log_end_offset": r.log_end_offset,
            "checkpoint_end_offset": r.checkpoint_end_offset,
            "dropped_offsets": r.checkpoint_end_offset.map(|e| (e - r.log_end_offset).max(0)),
            "dropped_bytes": r.dropped_bytes,
            "dropped_segments": r.dropped_segments,
        })
    );
    Ok(())
}
