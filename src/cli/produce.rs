//! `tierlog produce`: JSON lines on stdin -> appends (see [`crate::ingest`]).

use clap::Args;
use tiering::batch::Compression;

use super::Cli;
use crate::engine::Engine;
use crate::ingest::{ProduceOptions, parse_compression, produce};

/// Arguments of `tierlog produce` (the format is described on the subcommand).
#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Send everything to this partition. Default: by key (CRC-32C of the key), keyless records
    /// round-robin by batch.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Records per batch at most.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Uncompressed bytes per batch at most.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// none | gzip | snappy | lz4 | zstd
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: Compression,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
}

impl ProduceArgs {
    pub fn options(&self) -> ProduceOptions {
        ProduceOptions {
            topic: self.topic.clone(),
            partition: self.partition,
            batch_records: self.batch_records,
            batch_bytes: self.batch_bytes,
            compression: self.compression,
            in_flight: self.in_flight,
        }
    }
}

pub async fn run(cli: &Cli, args: &ProduceArgs) -> anyhow::Result<()> {
    let engine = Engine::open(cli.engine_config()?).await?;
    let res = produce(&engine, &args.options(), std::io::stdin().lock()).await;
    engine.close().await?;
    match res {
        Ok(summary) => {
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        // What was appended before the bad line goes to stdout as on success; the error (naming
        // the line) to stderr, and the exit status is non-zero.
        Err(failed) => {
            println!("{}", serde_json::to_string(&failed.appended)?);
            Err(anyhow::anyhow!(failed))
        }
    }
}
