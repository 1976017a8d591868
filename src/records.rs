//! The JSON-lines record format of the CLI and the HTTP API, in both directions, and the other
//! JSON views they share (a topic's description, a compaction report, a range of a topic).
//!
//! In: `{"key": "k", "value": "v", "headers": {"h": "x"}, "timestamp": 1700000000000}`. Strings
//! are taken as UTF-8. Binary data is given base64-encoded in `key_b64` / `value_b64` (and
//! `value_b64` inside a header given as `{"key": .., "value_b64": ..}`). `timestamp` is ms since the
//! epoch or an RFC 3339 string; absent means now. A null or absent value is a tombstone.
//!
//! Out: `{"partition", "offset", "timestamp", "key", "value", "headers"}`, with `key_b64` /
//! `value_b64` in place of `key` / `value` when the bytes are not valid UTF-8, so output can be fed
//! back to `produce` unchanged.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tiering::batch::{Header, Record};

use crate::CompactionReport;
use crate::engine::Engine;
use crate::replay::ReplayRecord;

/// Why a JSON line could not become a record.
#[derive(Debug, thiserror::Error)]
pub enum JsonRecordError {
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a record is a JSON object ({{\"key\", \"value\", ...}}), not an array, string or number")]
    NotObject,
    #[error("`{field}` is not valid base64: {reason}")]
    Base64 { field: &'static str, reason: String },
    #[error("give either `{0}` or `{0}_b64`, not both")]
    Both(&'static str),
    #[error("bad timestamp {value:?}: use ms since the epoch or RFC 3339 (2024-05-01T12:00:00Z)")]
    Timestamp { value: String },
    #[error("`headers` must be an object of strings or a list of {{\"key\", \"value\" | \"value_b64\"}}")]
    Headers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonIn {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_b64: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_b64: Option<String>,
    #[serde(default)]
    headers: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
}

fn field(
    text: Option<String>,
    b64: Option<String>,
    name: &'static str,
    b64_name: &'static str,
) -> Result<Option<Bytes>, JsonRecordError> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(JsonRecordError::Both(name)),
        (Some(t), None) => Ok(Some(Bytes::from(t))),
        (None, Some(b)) => B64
            .decode(b.as_bytes())
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| JsonRecordError::Base64 { field: b64_name, reason: e.to_string() }),
        (None, None) => Ok(None),
    }
}

/// Parses a time given as ms since the epoch or as RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(ms) = s.trim().parse::<i64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// The last ms RFC 3339 can write: 9999-12-31T23:59:59.999Z.
const LAST_RFC3339_MS: i64 = 253_402_300_799_999;

/// Formats ms since the epoch as RFC 3339 (UTC), or the number when it is out of range.
pub fn format_time(ms: i64) -> String {
    // RFC 3339 stops at 9999-12-31T23:59:59.999Z (humantime panics past it); before the epoch
    // Kafka's timestamps mean "none" (-1). Any other i64 is printed as its number.
    if !(0..=LAST_RFC3339_MS).contains(&ms) {
        return ms.to_string();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn parse_headers(v: Value) -> Result<Vec<Header>, JsonRecordError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => map
            .into_iter()
            .map(|(key, v)| match v {
                Value::String(s) => Ok(Header { key, value: Some(Bytes::from(s)) }),
                Value::Null => Ok(Header { key, value: None }),
                _ => Err(JsonRecordError::Headers),
            })
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let Value::Object(mut m) = item else { return Err(JsonRecordError::Headers) };
                let Some(Value::String(key)) = m.remove("key") else { return Err(JsonRecordError::Headers) };
                let text = match m.remove("value") {
                    Some(Value::String(s)) => Some(s),
                    None | Some(Value::Null) => None,
                    Some(_) => return Err(JsonRecordError::Headers),
                };
                let b64 = match m.remove("value_b64") {
                    Some(Value::String(s)) => Some(s),
                    None | Some(Value::Null) => None,
                    Some(_) => return Err(JsonRecordError::Headers),
                };
                if !m.is_empty() {
                    return Err(JsonRecordError::Headers);
                }
                Ok(Header { key, value: field(text, b64, "value", "value_b64")? })
            })
            .collect(),
        _ => Err(JsonRecordError::Headers),
    }
}

/// Whether `text` is (at most) a JSON object: its first non-blank byte is `{`. Serde reads a
/// struct from an array too (`[]` is a struct of defaults); tierlog's JSON inputs are objects.
pub fn is_json_object(text: &[u8]) -> bool {
    text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Parses one JSON line into a record; `now` is used when it has no timestamp.
pub fn record_from_json(line: &str, now: i64) -> Result<Record, JsonRecordError> {
    if !is_json_object(line.as_bytes()) {
        return Err(JsonRecordError::NotObject);
    }
    let j: JsonIn = serde_json::from_str(line)?;
    let timestamp = match j.timestamp {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => n.as_i64().ok_or(JsonRecordError::Timestamp { value: n.to_string() })?,
        Some(Value::String(s)) => parse_time(&s).ok_or(JsonRecordError::Timestamp { value: s })?,
        Some(other) => return Err(JsonRecordError::Timestamp { value: other.to_string() }),
    };
    Ok(Record {
        key: field(j.key, j.key_b64, "key", "key_b64")?,
        value: field(j.value, j.value_b64, "value", "value_b64")?,
        headers: j.headers.map(parse_headers).transpose()?.unwrap_or_default(),
        timestamp,
    })
}

fn put_bytes(m: &mut Map<String, Value>, name: &str, b: &Option<Bytes>) {
    match b {
        None => {
            m.insert(name.into(), Value::Null);
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                m.insert(name.into(), Value::String(s.to_owned()));
            }
            Err(_) => {
                m.insert(format!("{name}_b64"), Value::String(B64.encode(b)));
            }
        },
    }
}

/// How times are written in JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// RFC 3339 strings in UTC (`"2026-01-05T10:00:00.000Z"`), the number for a time RFC 3339
    /// cannot hold (before the epoch, after year 9999): the CLI's default.
    Rfc3339,
    /// ms since the epoch (the HTTP API, and the CLI's `--epoch-ms`).
    EpochMs,
}

impl Times {
    pub fn value(self, ms: i64) -> Value {
        match self {
            Times::EpochMs => ms.into(),
            Times::Rfc3339 if (0..=LAST_RFC3339_MS).contains(&ms) => Value::String(format_time(ms)),
            Times::Rfc3339 => ms.into(),
        }
    }
}

/// One record as a JSON object (the `consume` output line).
pub fn record_to_json(r: &ReplayRecord, times: Times) -> Value {
    let mut m = Map::new();
    m.insert("partition".into(), r.partition.into());
    m.insert("offset".into(), r.offset.into());
    m.insert("timestamp".into(), times.value(r.timestamp));
    put_bytes(&mut m, "key", &r.key);
    put_bytes(&mut m, "value", &r.value);
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|h| {
            let mut hm = Map::new();
            hm.insert("key".into(), Value::String(h.key.clone()));
            put_bytes(&mut hm, "value", &h.value);
            Value::Object(hm)
        })
        .collect();
    m.insert("headers".into(), Value::Array(headers));
    Value::Object(m)
}

/// One key's state as a JSON object: key and value (base64 when not UTF-8), and where the
/// winning record is.
pub fn state_entry_to_json(e: &crate::state::StateEntry, times: Times) -> Value {
    let mut m = Map::new();
    put_bytes(&mut m, "key", &Some(e.key.clone()));
    put_bytes(&mut m, "value", &Some(e.value.clone()));
    m.insert("partition".into(), e.partition.into());
    m.insert("offset".into(), e.offset.into());
    m.insert("timestamp".into(), times.value(e.timestamp));
    Value::Object(m)
}

/// Summary line printed by `produce` (and answered by `POST /topics/{t}/records`): totals, and
/// where the records went, per partition.
#[derive(Debug, Default, Serialize)]
pub struct ProduceSummary {
    pub records: u64,
    pub batches: u64,
    pub partitions: Vec<PartitionProduced>,
}

/// The records one produce appended to one partition: offsets `first_offset..=last_offset`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionProduced {
    pub partition: u32,
    pub records: u64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What a manifest head says about a partition's remote log, for `topic describe` and `inspect`:
/// bounds and totals, state snapshots, and what compaction and merging did.
pub fn remote_head_json(h: &tiering::remote::Head) -> Value {
    serde_json::json!({
        "log_start_offset": h.log_start_offset,
        "next_offset": h.next_offset,
        "segments": h.totals.segments,
        "size_bytes": h.totals.bytes,
        "records": h.totals.records,
        "epoch": h.epoch,
        "manifest_chunks": h.chunks.len(),
        "pending_deletes": h.pending_deletes.len(),
        "snapshots": h.snapshots.iter().map(|s| serde_json::json!({
            "offset": s.offset,
            "keys": s.keys,
            "size_bytes": s.size,
            "created": format_time(s.created_ms),
        })).collect::<Vec<_>>(),
        "compaction": h.compaction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrip_text_and_binary() {
        let r = record_from_json(
            r#"{"key":"k","value_b64":"AP8=","headers":[{"key":"h","value":"x"},{"key":"n"}],"timestamp":"2024-05-01T00:00:00Z"}"#,
            0,
        )
        .unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(r.timestamp, 1_714_521_600_000);
        assert_eq!(r.headers.len(), 2);
        let view = crate::replay::ReplayRecord {
            partition: 3,
            offset: 7,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        };
        let out = record_to_json(&view, Times::EpochMs).to_string();
        let back = record_from_json(
            &{
                let mut v: Value = serde_json::from_str(&out).unwrap();
                let m = v.as_object_mut().unwrap();
                m.remove("partition");
                m.remove("offset");
                v.to_string()
            },
            0,
        )
        .unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn bad_lines_are_typed_errors() {
        assert!(matches!(record_from_json("nope", 0), Err(JsonRecordError::NotObject)));
        assert!(matches!(record_from_json(" [] ", 0), Err(JsonRecordError::NotObject)), "not a keyless tombstone");
        assert!(matches!(record_from_json("{nope", 0), Err(JsonRecordError::Json(_))));
        assert!(matches!(
            record_from_json(r#"{"value":"a","value_b64":"YQ=="}"#, 0),
            Err(JsonRecordError::Both("value"))
        ));
        assert!(matches!(record_from_json(r#"{"value_b64":"!!"}"#, 0), Err(JsonRecordError::Base64 { .. })));
        assert!(matches!(record_from_json(r#"{"timestamp":"yesterday"}"#, 0), Err(JsonRecordError::Timestamp { .. })));
        assert!(matches!(record_from_json(r#"{"headers":5}"#, 0), Err(JsonRecordError::Headers)));
        assert!(matches!(record_from_json(r#"{"valeu":"x"}"#, 0), Err(JsonRecordError::Json(_))));
        assert_eq!(record_from_json("{}", 42).unwrap().timestamp, 42);
    }
}

/// An offset or time range of a topic (`tierlog consume`, `GET /topics/{t}/records`): half-open,
/// each end an offset or a time (the first offset stamped at or after it).
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub partition: Option<u32>,
    pub from_offset: Option<i64>,
    pub from_time: Option<i64>,
    pub to_offset: Option<i64>,
    pub to_time: Option<i64>,
}

impl Range {
    pub fn replay_spec(&self) -> crate::replay::ReplaySpec {
        use crate::replay::Position;
        crate::replay::ReplaySpec {
            partitions: self.partition.map(|p| vec![p]),
            from: match (self.from_offset, self.from_time) {
                (Some(o), _) => Position::Offset(o),
                (None, Some(t)) => Position::Time(t),
                (None, None) => Position::Earliest,
            },
            to: match (self.to_offset, self.to_time) {
                (Some(o), _) => Position::Offset(o),
                (None, Some(t)) => Position::Time(t),
                (None, None) => Position::Latest,
            },
            ..Default::default()
        }
    }
}

/// The JSON printed by `topic describe`.
pub fn describe_json(engine: &Engine, name: &str) -> crate::Result<serde_json::Value> {
    let d = engine.describe_topic(name)?;
    let partitions: Vec<_> = d
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "log_start_offset": p.log_start_offset,
                "high_watermark": p.high_watermark,
                "size_bytes": p.size_bytes,
                "segments": p.segments.len(),
                "newest_timestamp": p.segments.iter().map(|s| s.max_timestamp).max().filter(|&t| t >= 0).map(format_time),
                "remote": crate::records::remote_head_json(&p.remote),
                "local_compaction": engine.compaction_status(name, p.partition).ok().map(|s| s.local),
                "fenced": p.fenced,
                "tiering_error": p.tiering_error,
            })
        })
        .collect();
    Ok(json!({ "name": d.name, "config": d.config, "partitions": partitions }))
}

pub fn report_json(r: &CompactionReport) -> serde_json::Value {
    json!({
        "passes": r.passes,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "bytes_indexed": r.bytes_indexed,
        "records_removed": r.records_removed,
        "segments_rewritten": r.segments_rewritten,
        "segments_merged": r.segments_merged,
        "cleaned_to": r.cleaned_to,
        "seconds": r.duration.as_secs_f64(),
        "mb_per_s_in": r.mb_per_s_in(),
    })
}
