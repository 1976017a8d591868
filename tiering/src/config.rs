//! Per-topic settings of the local log: segment size and age, index density, durability,
//! timestamp type, local retention and the batch size limit. One serde struct, defaults in
//! `impl Default`, and `validate()` that names the field and the bound it broke.

use serde::{Deserialize, Serialize};

use crate::batch::TimestampType;
use crate::error::{Error, Result};

/// When an append is acknowledged relative to fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Durability {
    /// fsync (fdatasync) once per group commit, then acknowledge: nothing acknowledged is lost.
    #[default]
    Fsync,
    /// Acknowledge after the write; fsync at most every `ms` milliseconds. A crash can lose up to
    /// that window of acknowledged appends.
    Interval { ms: u64 },
    /// Acknowledge after the write; fsync only when a segment is sealed and at close.
    None,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::Fsync => write!(f, "fsync"),
            Durability::Interval { ms } => write!(f, "interval:{ms}ms"),
            Durability::None => write!(f, "none"),
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .and_then(|r| r.strip_suffix("ms"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|&ms| ms > 0)
                    .ok_or_else(|| format!("{s:?} is not a durability: use `fsync`, `none` or `interval:<ms>ms`"))?;
                Ok(Durability::Interval { ms })
            }
        }
    }
}

impl TryFrom<String> for Durability {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<Durability> for String {
    fn from(d: Durability) -> String {
        d.to_string()
    }
}

/// Settings of one topic's local log; every partition of the topic shares them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Seal the active segment when it would grow past this many bytes. Default 1 GiB (Kafka's);
    /// bounds 4 KiB..=2 GiB. The segment is the unit of upload: a 1 GiB segment costs 8 write
    /// requests (multipart create, 4 parts, complete, its index, a share of a manifest commit);
    /// 128 MiB segments would cost about 17 per GiB. Smaller segments tier sooner.
    pub segment_bytes: u64,
    /// Seal the active segment once it is this old (since its first append), so quiet partitions
    /// still tier. Default 1 hour; at least 1 ms.
    pub segment_ms: u64,
    /// Add a sparse index entry every this many bytes of log. Default 4096; bounds 64..=1 MiB.
    /// A read scans at most this many bytes of headers past the entry it starts from.
    pub index_interval_bytes: u32,
    /// `fsync` (default), `interval:<ms>ms`, or `none`. See [`Durability`].
    pub durability: Durability,
    /// `create-time` (default: the producer's timestamps) or `log-append-time` (tierlog's clock).
    pub timestamp_type: TimestampType,
    /// Delete local segments whose newest record is older than this. Default: none (keep forever).
    pub local_retention_ms: Option<u64>,
    /// Delete the oldest local segments while the partition holds more than this. Default: none.
    pub local_retention_bytes: Option<u64>,
    /// Remote tier: drop segments whose newest record is older than this. Default: none (keep
    /// forever).
    pub remote_retention_ms: Option<u64>,
    /// Remote tier: drop the oldest segments while it holds more than this. Default: none.
    pub remote_retention_bytes: Option<u64>,
    /// Largest batch an append accepts. Default 8 MiB; bounds 1 KiB..=64 MiB. A batch must also
    /// fit in one segment: the effective limit is the smaller of this and `segment_bytes`.
    pub max_batch_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 3_600_000,
            index_interval_bytes: 4096,
            durability: Durability::Fsync,
            timestamp_type: TimestampType::CreateTime,
            local_retention_ms: None,
            local_retention_bytes: None,
            remote_retention_ms: None,
            remote_retention_bytes: None,
            max_batch_bytes: 8 << 20,
        }
    }
}

/// The retention settings of a [`LogConfig`]: the ones a live partition can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub local_ms: Option<u64>,
    pub local_bytes: Option<u64>,
    pub remote_ms: Option<u64>,
    pub remote_bytes: Option<u64>,
}

impl LogConfig {
    pub fn retention(&self) -> Retention {
        Retention {
            local_ms: self.local_retention_ms,
            local_bytes: self.local_retention_bytes,
            remote_ms: self.remote_retention_ms,
            remote_bytes: self.remote_retention_bytes,
        }
    }

    /// The largest batch an append accepts: `max_batch_bytes`, capped at `segment_bytes`.
    pub fn batch_limit(&self) -> usize {
        self.max_batch_bytes.min(self.segment_bytes.min(usize::MAX as u64) as usize)
    }

    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        if !(4096..=(2u64 << 30)).contains(&self.segment_bytes) {
            return bad("segment_bytes", format!("{} is outside 4096..=2147483648", self.segment_bytes));
        }
        if self.segment_ms == 0 {
            return bad("segment_ms", "must be at least 1".into());
        }
        if !(64..=(1 << 20)).contains(&self.index_interval_bytes) {
            return bad("index_interval_bytes", format!("{} is outside 64..=1048576", self.index_interval_bytes));
        }
        if !(1024..=(64 << 20)).contains(&self.max_batch_bytes) {
            return bad("max_batch_bytes", format!("{} is outside 1024..=67108864", self.max_batch_bytes));
        }
        if self.local_retention_ms == Some(0) {
            return bad("local_retention_ms", "must be at least 1 (omit it to keep forever)".into());
        }
        if self.remote_retention_ms == Some(0) {
            return bad("remote_retention_ms", "must be at least 1 (omit it to keep forever)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_and_prints() {
        for s in ["fsync", "none", "interval:250ms"] {
            assert_eq!(s.parse::<Durability>().unwrap().to_string(), s);
        }
        for s in ["", "interval", "interval:0ms", "interval:5", "fsync "] {
            assert!(s.parse::<Durability>().is_err(), "{s}");
        }
    }

    #[test]
    fn validate_names_the_field() {
        let c = LogConfig { segment_bytes: 10, ..Default::default() };
        assert!(matches!(c.validate(), Err(Error::InvalidConfig { field: "segment_bytes", .. })));
        assert!(LogConfig::default().validate().is_ok());
    }
}
