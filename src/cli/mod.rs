//! The `tierlog` command line. Each subcommand is a thin layer over the public [`crate::Engine`]
//! API (or, for `inspect`, over the segment files themselves).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::EngineConfig;

pub mod compact;
pub mod consume;
pub mod demo;
#[cfg(feature = "servers")]
pub mod groups;
pub mod history;
pub mod inspect;
pub mod produce;
pub mod repair;
pub mod restore;
#[cfg(feature = "servers")]
pub mod serve;
pub mod topic;

/// tierlog: a tiered-storage log engine. Append Kafka-format record batches, read them back by
/// offset or time.
#[derive(Debug, Parser)]
#[command(name = "tierlog", version, about, long_about = None)]
pub struct Cli {
    /// TOML config file (see README: data_dir, [writer], [topic_defaults], [tiering], [object_store]).
    #[arg(long, global = true, env = "TIERLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` of the config file. Default ./tierlog-data.
    #[arg(long, global = true, env = "TIERLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Take back partitions that another node took over since this data dir last wrote them
    /// (`take_over = true`): their local copies are dropped and they continue the bucket's
    /// history. Without it such partitions are refused. Commands that only read ignore it.
    #[arg(long, global = true)]
    pub take_over: bool,
    /// Print record times (consume, replay, state-at, offset-for-time) as ms since the epoch
    /// instead of RFC 3339 in UTC.
    #[arg(long, global = true)]
    pub epoch_ms: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list and describe topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Append JSON lines from stdin to a topic.
    ///
    /// Each line is {"key", "value", "headers", "timestamp"}. Strings are taken as UTF-8. Binary keys
    /// and values go base64-encoded in "key_b64" / "value_b64"; binary header values as
    /// "headers": [{"key": "h", "value_b64": "..."}] (or "headers": {"h": "text"} for text). "timestamp"
    /// is ms since the epoch or RFC 3339 (absent: now). A null or absent value is a tombstone.
    /// Every line before a bad line is appended; the bad line and the rest are not, and the exit code
    /// is non-zero. Prints a JSON summary with the first and last offsets.
    Produce(produce::ProduceArgs),
    /// Print records of a topic as JSON lines, by offset or time range.
    ///
    /// Ranges are half-open: from the start (inclusive) to the end (exclusive). A time start is the
    /// first offset whose timestamp is >= it (Kafka ListOffsets); a time end stops before the first
    /// offset whose timestamp is >= it. Times are ms since the epoch or RFC 3339. Keys and values that
    /// are not UTF-8 are printed base64-encoded as "key_b64" / "value_b64", so the output can be fed
    /// back to `produce`.
    Consume(consume::ConsumeArgs),
    /// Replay records of a topic as JSON lines over an offset or time range, across both tiers;
    /// with --merge-by-time, the partitions merged into one stream by timestamp.
    ///
    /// Ranges are as for `consume`. Progress goes to stderr when it is a terminal.
    Replay(history::ReplayArgs),
    /// The latest value of every key as of a time or offset, tombstones applied, as JSON lines
    /// in key order.
    ///
    /// "As of time T" covers, in each partition, the records before the first one stamped >= T
    /// (Kafka's ListOffsets); "--offset O" covers offsets <= O. Within a partition the highest
    /// offset wins; across partitions the latest timestamp.
    StateAt(history::StateAtArgs),
    /// The first offset whose timestamp is >= a time (Kafka ListOffsets), or earliest/latest.
    OffsetForTime(consume::OffsetForTimeArgs),
    /// Compact a topic now: key compaction of local and remote segments (for `compact` and
    /// `compact,delete` topics: the latest record per key stays, offsets never change, tombstones
    /// go after `delete_retention_ms`) and merging of small remote segments (every topic).
    ///
    /// Sealed segments are uploaded first. Progress goes to stderr when it is a terminal; one JSON
    /// line per partition says what was read, written and removed.
    Compact(compact::CompactArgs),
    /// Show the batches of a segment file, or the segments of a partition folder with its
    /// compaction state and, from the bucket, its snapshots and remote compaction state.
    Inspect(inspect::InspectArgs),
    /// Benchmarks against their raw limits (prints medians and ratios).
    Bench(crate::bench::BenchArgs),
    /// Serve the HTTP/JSON API and Prometheus /metrics (127.0.0.1:8080 by default) until SIGINT
    /// or SIGTERM.
    #[cfg(feature = "servers")]
    Serve(serve::ServeArgs),
    /// Consumer groups: list, describe (members, committed offsets, lag), delete, and reset
    /// offsets (to a time, earliest, latest, an offset, a shift, a duration ago), on the data dir
    /// or, with --bootstrap-server, through a running broker's Kafka API.
    #[cfg(feature = "servers")]
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Rebuild an empty data dir from the bucket: topics from its catalog, each partition
    /// continuing where its manifest ends. Prints one JSON line per partition with its last
    /// restorable offset. Only what was committed to the bucket comes back.
    Restore(restore::RestoreArgs),
    /// Cut a damaged partition's local log back to its last intact batch (on a stopped data dir)
    /// and print what was kept and what was dropped, as one JSON line.
    Repair(repair::RepairArgs),
    /// Create a topic, produce a realistic order stream spread over days, read it back, look up
    /// offsets by time, and print a summary.
    Demo(demo::DemoArgs),
}

impl Cli {
    /// How record times are printed (`--epoch-ms`).
    pub fn times(&self) -> crate::records::Times {
        if self.epoch_ms { crate::records::Times::EpochMs } else { crate::records::Times::Rfc3339 }
    }

    /// The engine config: the file if given, then flag overrides, validated.
    pub fn engine_config(&self) -> anyhow::Result<EngineConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                EngineConfig::from_toml_file(path).with_context(|| format!("config file {}", path.display()))?
            }
            None => EngineConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            cfg.data_dir = dir.clone();
        }
        cfg.take_over |= self.take_over;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Ends quietly when stdout was closed (`tierlog consume ... | head`).
pub(crate) fn ignore_broken_pipe(res: anyhow::Result<()>) -> anyhow::Result<()> {
    match res {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Whether `e` comes from writing to a closed pipe (an `io::Error`, or a JSON writer's error
/// holding one), anywhere in its chain: the reader went away, which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == pipe)
            || c.downcast_ref::<serde_json::Error>().is_some_and(|j| j.io_error_kind() == Some(pipe))
    })
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Topic(cmd) => topic::run(&cli, cmd).await,
        Command::Produce(args) => produce::run(&cli, args).await,
        Command::Consume(args) => consume::run(&cli, args).await,
        Command::Replay(args) => history::replay(&cli, args).await,
        Command::StateAt(args) => history::state_at(&cli, args).await,
        Command::OffsetForTime(args) => consume::offset_for_time(&cli, args).await,
        Command::Compact(args) => compact::run(&cli, args).await,
        Command::Inspect(args) => inspect::run(&cli, args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        #[cfg(feature = "servers")]
        Command::Serve(args) => serve::run(&cli, args).await,
        #[cfg(feature = "servers")]
        Command::Groups(cmd) => groups::run(&cli, cmd).await,
        Command::Restore(args) => restore::run(&cli, args).await,
        Command::Repair(args) => repair::run(&cli, args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}
