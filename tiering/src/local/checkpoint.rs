//! The recovery checkpoint of a partition: how far its log is known durable and checked, so that
//! recovery validates only the bytes after it. One small text file with its own CRC, replaced
//! atomically (temp file, fsync, rename). Losing the rename in a crash is harmless: the older
//! checkpoint is still true, recovery just checks more bytes.

use std::path::{Path, PathBuf};

use super::fs::Fs;
use super::segment::write_durable;
use crate::error::Result;

pub const CHECKPOINT_FILE: &str = "recovery-checkpoint";
const MAGIC: &str = "tierlog-checkpoint-v1";

/// Everything before `position` in segment `segment_base` (and all of every earlier segment) is
/// durable and was validated; `next_offset` is the offset at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub segment_base: i64,
    pub position: u64,
    pub next_offset: i64,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

fn body(c: &Checkpoint) -> String {
    format!("{MAGIC} {} {} {}", c.segment_base, c.position, c.next_offset)
}

/// Reads the checkpoint; `None` when it is missing or does not check out (then recovery
/// validates every segment).
pub fn read(fs: &dyn Fs, dir: &Path) -> Option<Checkpoint> {
    let text = String::from_utf8(fs.read(&path(dir)).ok()?).ok()?;
    let (body_text, crc) = text.trim_end().rsplit_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32c::crc32c(body_text.as_bytes()) {
        tracing::warn!(dir = %dir.display(), "recovery checkpoint fails its CRC; validating all segments");
        return None;
    }
    let mut parts = body_text.split(' ');
    if parts.next()? != MAGIC {
        return None;
    }
    let segment_base = parts.next()?.parse().ok()?;
    let position = parts.next()?.parse().ok()?;
    let next_offset = parts.next()?.parse().ok()?;
    Some(Checkpoint { segment_base, position, next_offset })
}

pub fn write(fs: &dyn Fs, dir: &Path, c: &Checkpoint) -> Result<()> {
    let b = body(c);
    let text = format!("{b} {:08x}\n", crc32c::crc32c(b.as_bytes()));
    write_durable(fs, &path(dir), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let fs = &super::super::fs::StdFs;
        assert_eq!(read(fs, dir.path()), None);
        let c = Checkpoint { segment_base: 100, position: 4096, next_offset: 150 };
        write(fs, dir.path(), &c).unwrap();
        assert_eq!(read(fs, dir.path()), Some(c));
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        std::fs::write(path(dir.path()), text.replace("4096", "9999")).unwrap();
        assert_eq!(read(fs, dir.path()), None);
    }
}
