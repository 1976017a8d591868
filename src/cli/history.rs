//! `tierlog replay` (records of a range, across both tiers, optionally merged by time) and
//! `tierlog state-at` (the latest value of every key as of a time or offset). Both print JSON
//! lines on stdout and show progress on stderr when it is a terminal.

use std::io::Write;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::consume::{ConsumeArgs, parse_time_arg, replay_spec};
use super::{Cli, ignore_broken_pipe};
use crate::engine::Engine;
use crate::records::{record_to_json, state_entry_to_json};
use crate::replay::Merge;
use crate::state::{At, StateSpec};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub range: ConsumeArgs,
    /// Merge the partitions into one stream by timestamp (default: one partition after another).
    #[arg(long)]
    pub merge_by_time: bool,
}

#[derive(Debug, Args)]
pub struct StateAtArgs {
    pub topic: String,
    /// As of this time (ms since the epoch or RFC 3339): records with offset < offset_for_time.
    #[arg(long, value_parser = parse_time_arg, conflicts_with = "offset", required_unless_present = "offset")]
    pub time: Option<i64>,
    /// Up to and including this offset of each partition.
    #[arg(long)]
    pub offset: Option<i64>,
    /// Only this partition (default: the whole topic).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Memory for folding keys before spilling sorted runs to disk, in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: usize,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})")
            .expect("invariant: valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

pub async fn replay(cli: &Cli, args: &ReplayArgs) -> anyhow::Result<()> {
    let engine = Engine::open_reader(cli.engine_config()?).await?;
    let res = async {
        let mut spec = replay_spec(&args.range);
        if args.merge_by_time {
            spec.merge = Merge::ByTime;
        }
        let mut replay = engine.replay(&args.range.topic, spec).await?;
        let total: i64 = replay.ranges().iter().map(|(_, s, e)| e - s).sum();
        let pb = bar(total.max(0) as u64, "replay");
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let limit = args.range.max_records.unwrap_or(u64::MAX);
        let mut n = 0u64;
        while n < limit {
            let Some(rec) = replay.next().await? else { break };
            serde_json::to_writer(&mut out, &record_to_json(&rec, cli.times()))?;
            out.write_all(b"\n")?;
            n += 1;
            if n.is_multiple_of(1024) {
                pb.set_position(n);
            }
        }
        out.flush()?;
        pb.finish_and_clear();
        anyhow::Ok(())
    }
    .await;
    engine.close().await?;
    ignore_broken_pipe(res)
}

pub async fn state_at(cli: &Cli, args: &StateAtArgs) -> anyhow::Result<()> {
    let engine = Engine::open_reader(cli.engine_config()?).await?;
    let res = async {
        let at = match (args.time, args.offset) {
            (Some(t), _) => At::Time(t),
            (None, Some(o)) => At::Offset(o),
            (None, None) => anyhow::bail!("give --time or --offset"),
        };
        let spec = StateSpec {
            partitions: args.partition.map(|p| vec![p]),
            memory_bytes: args.memory_mib.max(1) << 20,
            ..StateSpec::new(at)
        };
        let pb = ProgressBar::new_spinner();
        pb.set_message("folding the log into state");
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        let mut state = engine.state_at(&args.topic, spec).await?;
        pb.finish_and_clear();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut keys = 0u64;
        while let Some(e) = state.next().await? {
            serde_json::to_writer(&mut out, &state_entry_to_json(&e, cli.times()))?;
            out.write_all(b"\n")?;
            keys += 1;
        }
        out.flush()?;
        tracing::info!(keys, records = state.records, spilled_runs = state.spilled_runs, "state computed");
        anyhow::Ok(())
    }
    .await;
    engine.close().await?;
    ignore_broken_pipe(res)
}
