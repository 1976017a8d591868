//! `tierlog topic create | list | describe | tier`.

use clap::{Args, Subcommand};
use serde_json::json;

use super::Cli;
use crate::config::{CleanupPolicy, TopicConfig};
use crate::engine::Engine;
use tiering::Durability;
use tiering::batch::TimestampType;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (settings default to the config's [topic_defaults]).
    Create(CreateArgs),
    /// List topic names.
    List,
    /// Settings and per-partition offsets, sizes and segments of a topic (JSON).
    Describe { name: String },
    /// Seal every partition's active segment and upload everything sealed to the bucket now,
    /// waiting for the manifest commits (e.g. before taking a node down). One JSON line per
    /// partition: what was uploaded and where the bucket's log now ends.
    Tier { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub name: String,
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Seal segments at this size (bytes).
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// Seal segments at this age (ms).
    #[arg(long)]
    pub segment_ms: Option<u64>,
    /// fsync | none | interval:<ms>ms
    #[arg(long)]
    pub durability: Option<Durability>,
    /// Use tierlog's clock for record timestamps instead of the producer's.
    #[arg(long)]
    pub log_append_time: bool,
    /// Delete local segments whose newest record is older than this (ms).
    #[arg(long)]
    pub local_retention_ms: Option<u64>,
    /// Keep at most this many bytes per partition locally.
    #[arg(long)]
    pub local_retention_bytes: Option<u64>,
    /// delete | compact | compact,delete
    #[arg(long, value_parser = parse_cleanup)]
    pub cleanup_policy: Option<CleanupPolicy>,
    /// Keep tombstones this long (ms) after they become the latest record of their key.
    #[arg(long)]
    pub delete_retention_ms: Option<u64>,
    /// Never compact records younger than this (ms).
    #[arg(long)]
    pub min_compaction_lag_ms: Option<u64>,
    /// Compact once the dirty share of the log reaches this (0..=1).
    #[arg(long)]
    pub min_dirty_ratio: Option<f64>,
    /// Merge adjacent small remote segments up to this size (bytes; 0: never).
    #[arg(long)]
    pub merge_target_bytes: Option<u64>,
    /// Merge a run of small segments once it holds this many (or half the target in bytes).
    #[arg(long)]
    pub merge_min_segments: Option<u32>,
    /// Write a state snapshot this often (ms); 0 turns scheduled snapshots off.
    #[arg(long)]
    pub snapshot_interval_ms: Option<u64>,
    #[arg(long)]
    pub max_batch_bytes: Option<usize>,
}

fn parse_cleanup(s: &str) -> Result<CleanupPolicy, String> {
    match s {
        "delete" => Ok(CleanupPolicy::Delete),
        "compact" => Ok(CleanupPolicy::Compact),
        "compact,delete" | "delete,compact" => Ok(CleanupPolicy::CompactDelete),
        _ => Err(format!("{s:?}: use `delete`, `compact` or `compact,delete`")),
    }
}

impl CreateArgs {
    pub fn apply(&self, base: &TopicConfig) -> TopicConfig {
        let mut c = base.clone();
        if let Some(v) = self.partitions {
            c.partitions = v;
        }
        if let Some(v) = self.segment_bytes {
            c.log.segment_bytes = v;
        }
        if let Some(v) = self.segment_ms {
            c.log.segment_ms = v;
        }
        if let Some(v) = self.durability {
            c.log.durability = v;
        }
        if self.log_append_time {
            c.log.timestamp_type = TimestampType::LogAppendTime;
        }
        if let Some(v) = self.local_retention_ms {
            c.log.local_retention_ms = Some(v);
        }
        if let Some(v) = self.local_retention_bytes {
            c.log.local_retention_bytes = Some(v);
        }
        if let Some(v) = self.delete_retention_ms {
            c.compaction.delete_retention_ms = v;
        }
        if let Some(v) = self.min_compaction_lag_ms {
            c.compaction.min_compaction_lag_ms = v;
        }
        if let Some(v) = self.min_dirty_ratio {
            c.compaction.min_dirty_ratio = v;
        }
        if let Some(v) = self.merge_target_bytes {
            c.compaction.merge_target_bytes = v;
        }
        if let Some(v) = self.merge_min_segments {
            c.compaction.merge_min_segments = v;
        }
        if let Some(v) = self.snapshot_interval_ms {
            c.compaction.snapshot_interval_ms = (v > 0).then_some(v);
        }
        if let Some(v) = self.cleanup_policy {
            c.cleanup_policy = v;
        }
        if let Some(v) = self.max_batch_bytes {
            c.log.max_batch_bytes = v;
        }
        c
    }
}

pub use crate::records::describe_json;

pub async fn run(cli: &Cli, cmd: &TopicCommand) -> anyhow::Result<()> {
    let cfg = cli.engine_config()?;
    // Listing and describing take no partition over and write nothing to the bucket.
    let engine = match cmd {
        TopicCommand::List | TopicCommand::Describe { .. } => Engine::open_reader(cfg.clone()).await?,
        _ => Engine::open(cfg.clone()).await?,
    };
    let res = async {
        match cmd {
            TopicCommand::Create(args) => {
                let tc = args.apply(&cfg.topic_defaults);
                engine.create_topic(&args.name, tc.clone()).await?;
                println!("{}", json!({ "created": args.name, "config": tc }));
            }
            TopicCommand::List => {
                for t in engine.list_topics() {
                    println!("{t}");
                }
            }
            TopicCommand::Describe { name } => {
                println!("{}", serde_json::to_string_pretty(&describe_json(&engine, name)?)?);
            }
            TopicCommand::Tier { name } => {
                let d = engine.describe_topic(name)?;
                for p in &d.partitions {
                    // What reached the bucket during the call, by this pass or the background
                    // uploader (which starts with the engine and may take segments first):
                    // everything past where the bucket's log ended when the engine opened.
                    let before = engine.remote_log(name, p.partition)?.acquired_next_offset();
                    engine.roll(name, p.partition).await?;
                    engine.tier_now(name, p.partition).await?;
                    let head = engine.remote_head(name, p.partition)?;
                    let uploaded = if head.next_offset > before {
                        engine.remote_segments_from(name, p.partition, before).await?
                    } else {
                        Vec::new()
                    };
                    println!(
                        "{}",
                        json!({
                            "partition": p.partition,
                            "uploaded_segments": uploaded.len(),
                            "uploaded_bytes": uploaded.iter().map(|e| e.size).sum::<u64>(),
                            "remote_next_offset": head.next_offset,
                        })
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    engine.close().await?;
    res
}
