//! `tierlog consume` (records as JSON lines over an offset or time range) and
//! `tierlog offset-for-time`.

use std::io::Write;

use clap::Args;
use serde_json::json;
use tiering::local::{OffsetSpec, TimeOffset};

use super::Cli;
use crate::engine::Engine;
use crate::records::{Times, parse_time, record_to_json};
use crate::replay::ReplaySpec;

/// Arguments of `tierlog consume` (ranges are described on the subcommand).
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Partition to read; default: every partition, one after another.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start at this offset (default: the earliest).
    #[arg(long, conflicts_with = "from_time")]
    pub from_offset: Option<i64>,
    /// Start at the first record with a timestamp >= this.
    #[arg(long, value_parser = parse_time_arg)]
    pub from_time: Option<i64>,
    /// Stop before this offset (default: the end of the log when consume starts).
    #[arg(long, conflicts_with = "to_time")]
    pub to_offset: Option<i64>,
    /// Stop before the first record with a timestamp >= this.
    #[arg(long, value_parser = parse_time_arg)]
    pub to_time: Option<i64>,
    /// Print at most this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
}

pub fn parse_time_arg(s: &str) -> Result<i64, String> {
    parse_time(s).ok_or_else(|| format!("{s:?}: use ms since the epoch or RFC 3339 (2024-05-01T12:00:00Z)"))
}

#[derive(Debug, Args)]
pub struct OffsetForTimeArgs {
    pub topic: String,
    #[arg(long, default_value_t = 0)]
    pub partition: u32,
    /// `earliest`, `latest`, ms since the epoch, or RFC 3339.
    #[arg(long)]
    pub time: String,
}

fn spec(s: &str) -> anyhow::Result<OffsetSpec> {
    Ok(match s {
        "earliest" => OffsetSpec::Earliest,
        "latest" => OffsetSpec::Latest,
        t => OffsetSpec::Timestamp(parse_time_arg(t).map_err(anyhow::Error::msg)?),
    })
}

pub async fn offset_for_time(cli: &Cli, args: &OffsetForTimeArgs) -> anyhow::Result<()> {
    let spec = spec(&args.time)?;
    let engine = Engine::open_reader(cli.engine_config()?).await?;
    let res = engine.offset_for_time(&args.topic, args.partition, spec).await;
    engine.close().await?;
    let out = match res? {
        Some(TimeOffset { offset, timestamp }) => {
            let timestamp = (timestamp >= 0).then(|| cli.times().value(timestamp));
            json!({ "partition": args.partition, "offset": offset, "timestamp": timestamp })
        }
        None => json!({ "partition": args.partition, "offset": null, "timestamp": null }),
    };
    println!("{out}");
    Ok(())
}

pub async fn run(cli: &Cli, args: &ConsumeArgs) -> anyhow::Result<()> {
    let engine = Engine::open_reader(cli.engine_config()?).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let res = consume(&engine, args, cli.times(), &mut out).await;
    engine.close().await?;
    super::ignore_broken_pipe(res.map(|_| ()))
}

/// The replay `args` select.
pub fn replay_spec(args: &ConsumeArgs) -> ReplaySpec {
    crate::records::Range {
        partition: args.partition,
        from_offset: args.from_offset,
        from_time: args.from_time,
        to_offset: args.to_offset,
        to_time: args.to_time,
    }
    .replay_spec()
}

/// Writes the selected records as JSON lines; returns how many.
pub async fn consume(engine: &Engine, args: &ConsumeArgs, times: Times, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut replay = engine.replay(&args.topic, replay_spec(args)).await?;
    let mut printed = 0u64;
    let limit = args.max_records.unwrap_or(u64::MAX);
    while printed < limit {
        let Some(rec) = replay.next().await? else { break };
        serde_json::to_writer(&mut *out, &record_to_json(&rec, times))?;
        out.write_all(b"\n")?;
        printed += 1;
    }
    out.flush()?;
    Ok(printed)
}
