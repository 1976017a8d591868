//! Kafka's topic config names and tierlog's topic settings, both ways.
//!
//! | Kafka | tierlog |
//! |---|---|
//! | `cleanup.policy` | `cleanup_policy` |
//! | `retention.ms`, `retention.bytes` (the whole log: the bucket) | `log.remote_retention_ms`, `log.remote_retention_bytes` |
//! | `local.retention.ms`, `local.retention.bytes` (-2: as the whole log) | `log.local_retention_ms`, `log.local_retention_bytes` |
//! | `segment.bytes`, `segment.ms` | `log.segment_bytes`, `log.segment_ms` |
//! | `max.message.bytes` | `log.max_batch_bytes` |
//! | `message.timestamp.type` | `log.timestamp_type` |
//! | `min.compaction.lag.ms`, `delete.retention.ms`, `min.cleanable.dirty.ratio` | `compaction.*` |
//! | `remote.storage.enable` | always `true`: every topic tiers |
//!
//! -1 means unlimited (`None`) for the retention settings, as in Kafka.

use crate::batch::TimestampType;
use crate::config::{CleanupPolicy, TopicConfig};

/// Every Kafka topic config this broker knows, in the order DescribeConfigs lists them.
pub(super) const NAMES: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "local.retention.bytes",
    "local.retention.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

/// The configs that IncrementalAlterConfigs may change on a live topic: retention and compaction.
pub(super) const ALTERABLE: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "local.retention.bytes",
    "local.retention.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
];

fn unlimited(v: Option<u64>) -> String {
    v.map_or_else(|| "-1".to_owned(), |v| v.to_string())
}

/// The Kafka value of `name` in `cfg`, if `name` is a known config.
pub(super) fn value(cfg: &TopicConfig, name: &str) -> Option<String> {
    let log = &cfg.log;
    let c = &cfg.compaction;
    Some(match name {
        "cleanup.policy" => match cfg.cleanup_policy {
            CleanupPolicy::Delete => "delete".into(),
            CleanupPolicy::Compact => "compact".into(),
            CleanupPolicy::CompactDelete => "compact,delete".into(),
        },
        "retention.ms" => unlimited(log.remote_retention_ms),
        "retention.bytes" => unlimited(log.remote_retention_bytes),
        "local.retention.ms" => unlimited(log.local_retention_ms),
        "local.retention.bytes" => unlimited(log.local_retention_bytes),
        "segment.bytes" => log.segment_bytes.to_string(),
        "segment.ms" => log.segment_ms.to_string(),
        "max.message.bytes" => log.max_batch_bytes.to_string(),
        "message.timestamp.type" => match log.timestamp_type {
            TimestampType::CreateTime => "CreateTime".into(),
            TimestampType::LogAppendTime => "LogAppendTime".into(),
        },
        "min.compaction.lag.ms" => c.min_compaction_lag_ms.to_string(),
        "delete.retention.ms" => c.delete_retention_ms.to_string(),
        "min.cleanable.dirty.ratio" => c.min_dirty_ratio.to_string(),
        "remote.storage.enable" => "true".into(),
        _ => return None,
    })
}

/// Sets `name` to `value` in `cfg` (`None`: back to `defaults`' value). The error says why, for
/// INVALID_CONFIG; the whole config is validated by the caller afterwards.
pub(super) fn set(
    cfg: &mut TopicConfig,
    defaults: &TopicConfig,
    name: &str,
    value: Option<&str>,
) -> Result<(), String> {
    let Some(v) = value else {
        let Some(d) = self::value(defaults, name) else { return Err(format!("unknown topic config {name:?}")) };
        return set(cfg, defaults, name, Some(&d));
    };
    let v = v.trim();
    let int = || v.parse::<i64>().map_err(|_| format!("{name}: {v:?} is not an integer"));
    let non_negative = || -> Result<u64, String> {
        let n = int()?;
        u64::try_from(n).map_err(|_| format!("{name}: {v:?} must be at least 0"))
    };
    let limit = || -> Result<Option<u64>, String> {
        match int()? {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as u64)),
            _ => Err(format!("{name}: {v:?} must be -1 (unlimited) or at least 0")),
        }
    };
    match name {
        "cleanup.policy" => {
            let mut parts: Vec<&str> = v.split(',').map(str::trim).collect();
            parts.sort_unstable();
            parts.dedup();
            cfg.cleanup_policy = match parts.as_slice() {
                ["delete"] => CleanupPolicy::Delete,
                ["compact"] => CleanupPolicy::Compact,
                ["compact", "delete"] => CleanupPolicy::CompactDelete,
                _ => return Err(format!("cleanup.policy: {v:?} is not delete, compact or compact,delete")),
            }
        }
        "retention.ms" => cfg.log.remote_retention_ms = limit()?,
        "retention.bytes" => cfg.log.remote_retention_bytes = limit()?,
        // -2: as the whole log's retention, which the bucket already applies: no local limit.
        "local.retention.ms" => cfg.log.local_retention_ms = if int()? == -2 { None } else { limit()? },
        "local.retention.bytes" => cfg.log.local_retention_bytes = if int()? == -2 { None } else { limit()? },
        "segment.bytes" => cfg.log.segment_bytes = non_negative()?,
        "segment.ms" => cfg.log.segment_ms = non_negative()?,
        "max.message.bytes" => {
            cfg.log.max_batch_bytes =
                usize::try_from(non_negative()?).map_err(|_| format!("{name}: {v:?} is too large"))?
        }
        "message.timestamp.type" => {
            cfg.log.timestamp_type = match v {
                "CreateTime" => TimestampType::CreateTime,
                "LogAppendTime" => TimestampType::LogAppendTime,
                _ => return Err(format!("message.timestamp.type: {v:?} is not CreateTime or LogAppendTime")),
            }
        }
        "min.compaction.lag.ms" => cfg.compaction.min_compaction_lag_ms = non_negative()?,
        "delete.retention.ms" => cfg.compaction.delete_retention_ms = non_negative()?,
        "min.cleanable.dirty.ratio" => {
            let r: f64 = v.parse().map_err(|_| format!("{name}: {v:?} is not a number"))?;
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{name}: {v:?} is outside 0..=1"));
            }
            cfg.compaction.min_dirty_ratio = r;
        }
        "remote.storage.enable" => {
            if !v.eq_ignore_ascii_case("true") {
                return Err("remote.storage.enable: every tierlog topic is tiered; it cannot be false".into());
            }
        }
        _ => return Err(format!("unknown topic config {name:?} (tierlog knows: {})", NAMES.join(", "))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every config read back as a Kafka value sets the same config again, and setting a value
    /// reads back as that value.
    #[test]
    fn every_config_round_trips() {
        let defaults = TopicConfig::default();
        for name in NAMES {
            let v = value(&defaults, name).unwrap();
            let mut c = defaults.clone();
            set(&mut c, &defaults, name, Some(&v)).unwrap();
            assert_eq!(c, defaults, "{name}={v}");
        }
        let mut c = defaults.clone();
        for (name, v) in [
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "2592000000"),
            ("retention.bytes", "1073741824"),
            ("local.retention.ms", "3600000"),
            ("segment.bytes", "1048576"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.cleanable.dirty.ratio", "0.25"),
        ] {
            set(&mut c, &defaults, name, Some(v)).unwrap();
            assert_eq!(value(&c, name).unwrap(), v);
        }
        set(&mut c, &defaults, "retention.ms", Some("-1")).unwrap();
        assert_eq!(c.log.remote_retention_ms, None);
        set(&mut c, &defaults, "cleanup.policy", None).unwrap();
        assert_eq!(c.cleanup_policy, CleanupPolicy::Delete);
        for (name, v) in [
            ("retention.ms", "-3"),
            ("segment.bytes", "x"),
            ("cleanup.policy", "forever"),
            ("remote.storage.enable", "false"),
            ("min.insync.replicas", "2"),
            ("min.cleanable.dirty.ratio", "2"),
        ] {
            assert!(set(&mut c, &defaults, name, Some(v)).is_err(), "{name}={v}");
        }
    }
}
