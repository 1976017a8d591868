//! The raw limits tierlog is measured against: what the disk does with no engine at all.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::Throughput;

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Appends `total` bytes in `chunk`-sized writes, fdatasync after each: the durable-append limit
/// for that group size. Returns throughput and per-write (write + fdatasync) latencies.
pub fn append_fdatasync(dir: &Path, total: u64, chunk: usize) -> std::io::Result<(Throughput, Vec<Duration>)> {
    let path = dir.join("raw-append.bin");
    let mut f = open_append(&path)?;
    let buf = vec![0x5au8; chunk];
    let mut lat = Vec::with_capacity((total / chunk as u64) as usize + 1);
    let start = Instant::now();
    let mut written = 0u64;
    while written < total {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        lat.push(t.elapsed());
        written += chunk as u64;
    }
    let elapsed = start.elapsed();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((Throughput { bytes: written, items: lat.len() as u64, elapsed }, lat))
}

/// Writes and fsyncs `bytes` to fresh blocks, then deletes them: first writes to fresh areas of
/// a virtual disk are slow, and neither side should pay for that.
pub fn warm_disk(dir: &Path, bytes: u64) -> std::io::Result<()> {
    let path = dir.join("warm.bin");
    let mut f = open_append(&path)?;
    let buf = vec![0u8; 4 << 20];
    let mut n = 0;
    while n < bytes {
        f.write_all(&buf)?;
        n += buf.len() as u64;
    }
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(&path)
}

/// Reads the files in order with `chunk`-sized reads (from the page cache when hot).
pub fn read_files(files: &[std::path::PathBuf], chunk: usize) -> std::io::Result<Throughput> {
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    let start = Instant::now();
    for p in files {
        let mut f = File::open(p)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            std::hint::black_box(&buf[..n]);
        }
    }
    Ok(Throughput { bytes: total, items: 0, elapsed: start.elapsed() })
}
