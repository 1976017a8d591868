//! The engine's files in the data dir: its lock, the topic settings (`topics/<name>.json`) and
//! the partition folders' names.

use std::fs::File;
use std::path::{Path, PathBuf};

use tiering::topic::validate_topic_name;

use crate::config::TopicConfig;
use crate::error::{Error, Result, io};

pub(super) const TOPICS_DIR: &str = "topics";
const LOCK_FILE: &str = ".lock";

pub(super) fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// Takes the data dir's lock: one engine (or repair) per data dir.
pub(super) fn lock_data_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open lock file", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::DataDirLocked { path: dir.to_owned() }),
        Err(std::fs::TryLockError::Error(e)) => Err(io("lock data dir", &lock_path)(e)),
    }
}

pub(super) fn load_topic_configs(topics_dir: &Path) -> Result<Vec<(String, TopicConfig)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(topics_dir).map_err(io("list topics", topics_dir))? {
        let entry = entry.map_err(io("list topics", topics_dir))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if validate_topic_name(name).is_err() {
            continue;
        }
        let text = std::fs::read(&path).map_err(io("read topic metadata", &path))?;
        let cfg: TopicConfig = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            path: path.clone(),
            position: 0,
            reason: e.to_string(),
        })?;
        out.push((name.to_owned(), cfg));
    }
    Ok(out)
}

/// Removes a deleted topic's metadata (first, then fsyncs the folder) and its partition folders.
pub(super) fn remove_topic_files(data_dir: &Path, name: &str, partitions: u32) -> Result<()> {
    let topics_dir = data_dir.join(TOPICS_DIR);
    let meta = topics_dir.join(format!("{name}.json"));
    match std::fs::remove_file(&meta) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove topic metadata", &meta)(e)),
    }
    File::open(&topics_dir).and_then(|d| d.sync_all()).map_err(io("fsync topics dir", &topics_dir))?;
    for p in 0..partitions {
        let dir = partition_dir(data_dir, name, p);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove partition folder", &dir)(e)),
        }
    }
    File::open(data_dir).and_then(|d| d.sync_all()).map_err(io("fsync data dir", data_dir))
}

pub(super) fn write_topic_config(topics_dir: &Path, name: &str, cfg: &TopicConfig) -> Result<()> {
    let path = topics_dir.join(format!("{name}.json"));
    // `<name>.tmp`, not `<name>.json.tmp`: a 249-character name must fit in 255 bytes.
    let tmp = topics_dir.join(format!("{name}.tmp"));
    let json = serde_json::to_vec_pretty(cfg).expect("invariant: topic config serialises");
    let mut f = File::create(&tmp).map_err(io("create topic metadata", &tmp))?;
    std::io::Write::write_all(&mut f, &json).map_err(io("write topic metadata", &tmp))?;
    f.sync_all().map_err(io("fsync topic metadata", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename topic metadata", &path))?;
    File::open(topics_dir).and_then(|d| d.sync_all()).map_err(io("fsync topics dir", topics_dir))
}
