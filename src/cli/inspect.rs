//! `tierlog inspect`: reads segment files directly (no engine, so it works beside a running
//! server) and prints each batch with its offsets, timestamps, size and CRC status, or the
//! segments of a partition folder.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;
use tiering::batch::header::{BatchHeader, HEADER_LEN, verify_crc};

use crate::records::format_time;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A segment file (`<base>.log`) or a partition folder (`<data_dir>/<topic>-<partition>`).
    pub path: PathBuf,
    /// For a partition folder, also list every batch of every segment.
    #[arg(long)]
    pub batches: bool,
}

pub async fn run(cli: &super::Cli, args: &InspectArgs) -> anyhow::Result<()> {
    let state = if args.path.is_dir() { Some(partition_state(cli, &args.path).await?) } else { None };
    super::ignore_broken_pipe(print(args, state))
}

fn print(args: &InspectArgs, state: Option<serde_json::Value>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(state) = state {
        writeln!(out, "{state}")?;
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&args.path)
            .with_context(|| format!("listing {}", args.path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let s = inspect_segment(&log, args.batches, &mut out)?;
            writeln!(out, "{s}")?;
        }
        Ok(())
    } else {
        let s = inspect_segment(&args.path, true, &mut out)?;
        writeln!(out, "{s}")?;
        Ok(())
    }
}

/// The compaction state of a partition folder and, from the bucket's manifest (one GET; nothing
/// is written, so it works beside a running engine), its remote log, snapshots and remote
/// compaction state. The bucket is the config's, or `<folder's parent>/bucket` by default.
async fn partition_state(cli: &super::Cli, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let local = compaction::local::LocalState::load(dir);
    let mut out = json!({ "partition_dir": dir.display().to_string(), "local_compaction": local });
    let Some((topic, partition)) =
        name.rsplit_once('-').and_then(|(t, p)| Some((t.to_owned(), p.parse::<u32>().ok()?)))
    else {
        return Ok(out);
    };
    let mut cfg = cli.engine_config()?;
    if cli.config.is_none() && cli.data_dir.is_none() {
        cfg.data_dir = dir.parent().map(Path::to_owned).unwrap_or_default();
    }
    let store = cfg.object_store().build()?;
    let chunk_segments = cfg.tiering.manifest_chunk_segments;
    match tiering::remote::Manifest::load(store, &topic, partition, chunk_segments).await {
        Ok(m) => out["remote"] = crate::records::remote_head_json(&m.head()),
        Err(e) => out["remote_error"] = json!(e.to_string()),
    }
    Ok(out)
}

/// Walks a segment file; prints one JSON line per batch when `batches`; returns the summary.
pub fn inspect_segment(path: &Path, batches: bool, out: &mut impl std::io::Write) -> anyhow::Result<serde_json::Value> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let (mut count, mut records, mut bad) = (0u64, 0i64, 0u64);
    let (mut first, mut next, mut max_ts) = (None, None, -1i64);
    let mut stopped = None;
    let mut buf = Vec::new();
    while pos < size {
        if size - pos < HEADER_LEN as u64 {
            stopped = Some(format!("{} trailing bytes, less than a header", size - pos));
            break;
        }
        buf.resize(HEADER_LEN, 0);
        r.read_exact(&mut buf)?;
        let h = match BatchHeader::parse(&buf) {
            Ok(h) => h,
            Err(e) => {
                stopped = Some(format!("at byte {pos}: {e}"));
                break;
            }
        };
        let len = h.total_len() as u64;
        if pos + len > size {
            stopped = Some(format!("at byte {pos}: batch of {len} bytes runs past the end of the file"));
            break;
        }
        buf.resize(len as usize, 0);
        r.read_exact(&mut buf[HEADER_LEN..])?;
        let crc_ok = verify_crc(&buf, &h).is_ok();
        if !crc_ok {
            bad += 1;
        }
        if batches {
            let line = json!({
                "base_offset": h.base_offset,
                "last_offset": h.last_offset(),
                "records": h.record_count,
                "position": pos,
                "size": len,
                "first_timestamp": h.base_timestamp,
                "max_timestamp": h.max_timestamp,
                "max_time": format_time(h.max_timestamp),
                "compression": h.compression().map(|c| c.name()).unwrap_or("unknown"),
                "timestamp_type": if h.timestamp_type() == tiering::batch::TimestampType::LogAppendTime { "log-append" } else { "create" },
                "producer_id": h.producer_id,
                "crc": if crc_ok { "ok" } else { "BAD" },
            });
            writeln!(out, "{line}")?;
        }
        first.get_or_insert(h.base_offset);
        next = Some(h.next_offset());
        max_ts = max_ts.max(h.max_timestamp);
        records += h.record_count as i64;
        count += 1;
        pos += len;
    }
    Ok(json!({
        "segment": path.display().to_string(),
        "bytes": size,
        "batches": count,
        "records": records,
        "base_offset": first,
        "next_offset": next,
        "max_timestamp": (max_ts >= 0).then(|| format_time(max_ts)),
        "crc_failures": bad,
        "unreadable_tail": stopped,
    }))
}
