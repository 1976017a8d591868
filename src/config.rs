//! Engine and topic configuration: serde structs with defaults, loaded from TOML and overridden by
//! CLI flags. `validate()` names the field that is wrong and why.

use std::path::{Path, PathBuf};

use compaction::{CompactionConfig, CompactorConfig};
use serde::{Deserialize, Serialize};
use tiering::LogConfig;
use tiering::local::WriterConfig;
use tiering::remote::{ObjectStoreConfig, TieringConfig};

use crate::error::{Error, Result};

/// What happens to old records of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    /// Old segments are deleted by retention (default).
    #[default]
    Delete,
    /// Only the latest record per key is kept (key compaction, in both tiers); retention settings
    /// still apply if set.
    Compact,
    /// Both, as Kafka's `compact,delete`: key compaction, and retention deletes old segments.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether key compaction runs on the topic.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// A topic's settings, stored with the topic in `<data_dir>/topics/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Number of partitions. Default 1; bounds 1..=10000.
    pub partitions: u32,
    pub cleanup_policy: CleanupPolicy,
    /// Segment, durability, timestamp and local retention settings.
    pub log: LogConfig,
    /// Key compaction (for `compact` policies), merging of small remote segments, and scheduled
    /// state snapshots.
    pub compaction: CompactionConfig,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            partitions: 1,
            cleanup_policy: CleanupPolicy::Delete,
            log: LogConfig::default(),
            compaction: CompactionConfig::default(),
        }
    }
}

/// The bound of `max_partitions_per_topic`, and so of any topic's partition count.
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 100_000;

impl TopicConfig {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&self.partitions) {
            return Err(Error::InvalidConfig {
                field: "partitions".into(),
                reason: format!("{} is outside 1..={MAX_PARTITIONS_PER_TOPIC}", self.partitions),
            });
        }
        self.compaction
            .validate()
            .map_err(|(field, reason)| Error::InvalidConfig { field: format!("compaction.{field}"), reason })?;
        self.log.validate().map_err(|e| match e {
            tiering::Error::InvalidConfig { field, reason } => {
                Error::InvalidConfig { field: format!("log.{field}"), reason }
            }
            other => other.into(),
        })
    }
}

/// Settings of one engine (one data dir on one disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Where partition folders and topic metadata live. Default `./tierlog-data`.
    pub data_dir: PathBuf,
    /// The group-commit writer of this disk.
    pub writer: WriterConfig,
    /// Defaults for topics created without explicit settings (the CLI's `topic create`).
    pub topic_defaults: TopicConfig,
    /// The bucket sealed segments are uploaded to. Default: the local directory
    /// `<data_dir>/bucket` (`kind = "local"`); `kind = "s3"` for an S3-compatible store.
    pub object_store: Option<ObjectStoreConfig>,
    /// Uploads, deferred deletion, the manifest and the read cache.
    pub tiering: TieringConfig,
    /// When the data dir holds no topics, rebuild them from the bucket: topics from its catalog,
    /// each partition continuing at the end of its manifest (every archived offset then reads
    /// from the bucket). This engine becomes the partitions' writer (older writers are fenced).
    /// Default false: an empty data dir starts empty.
    pub restore: bool,
    /// A read-only replica: serves reads, replays and `state_at` of every topic in the bucket's
    /// catalog from the bucket alone, while another engine writes. It holds no local log, takes
    /// no partition over (no epoch bump), and refuses writes with `ReadOnly`. Default false.
    pub read_only: bool,
    /// How often a replica polls each partition's manifest head (a conditional GET; unchanged
    /// heads cost no transfer). New segments become visible within this delay plus one GET.
    /// Default 1000 ms.
    pub replica_poll_ms: u64,
    /// The background compactor: key compaction, merging and scheduled snapshots.
    pub compactor: CompactorConfig,
    /// Take back partitions that another writer took over in the bucket since this node held
    /// them. Such a partition's local log may hold records that the bucket holds differently, so
    /// taking it back drops the local log and continues from the bucket's end (records appended
    /// here and never uploaded are lost; the log says how many bytes). Default false: such a
    /// partition is refused (appends fail with `PartitionUnavailable`, `/health` says so) and its
    /// bucket history stays readable.
    pub take_over: bool,
    /// The writer's lease, in ms: while a partition takes appends, its manifest head is re-checked
    /// with a conditional GET before acknowledging once the last check is older than this, so a
    /// writer that another node took over stops acknowledging within this bound. Costs one GET
    /// per active partition per period (10 s: 8,640 GETs a day, about $0.0035 a day on S3
    /// standard); while the bucket cannot be reached after the period, appends fail. 0 turns the
    /// check off (a replaced writer then acknowledges until its next manifest commit). Default
    /// 10000; at most 600000.
    pub lease_ms: u64,
    /// The Kafka wire-protocol listener of `tierlog serve` (see [`KafkaConfig`]).
    pub kafka: KafkaConfig,
    /// The consumer-group coordinator (see [`GroupsConfig`]).
    pub groups: GroupsConfig,
    /// The HTTP listener of `tierlog serve` (see [`HttpConfig`]).
    pub http: HttpConfig,
    /// `/health` reports the data dir's disk as full (and answers 503) when less than this is
    /// free, before appends start failing with ENOSPC. Default 268435456 (256 MiB).
    pub min_free_disk_bytes: u64,
    /// The most partitions one topic may have (at creation and after adding partitions).
    /// Default 10000; at most 100000.
    pub max_partitions_per_topic: u32,
    /// The most partitions this node holds over all its topics (internal ones included): topic
    /// creation and adding partitions are refused past it. Default 20000; at most 1000000.
    pub max_partitions: u32,
}

/// Limits of the HTTP listener of `tierlog serve` (`[http]` in the config file), so idle,
/// slow or too many clients cannot hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections served at once; more get a 503 JSON answer and are closed. Default 1024;
    /// bounds 1..=100000.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head for this long is closed: an idle
    /// keep-alive connection, or one trickling its request line and headers. Default 30000;
    /// bounds 100..=3600000.
    pub idle_timeout_ms: u64,
    /// A request body must have arrived whole this long after its head; later, the request
    /// fails with 408 and the connection is closed. Default 60000; bounds 100..=3600000.
    pub body_timeout_ms: u64,
    /// The largest request head (request line and headers); a larger one gets 431. Default
    /// 65536; bounds 4096..=1048576.
    pub max_head_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { max_connections: 1024, idle_timeout_ms: 30_000, body_timeout_ms: 60_000, max_head_bytes: 64 << 10 }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| {
            Err(Error::InvalidConfig { field: format!("http.{field}"), reason: reason.into() })
        };
        if !(1..=100_000).contains(&self.max_connections) {
            return bad("max_connections", "must be within 1..=100000");
        }
        if !(100..=3_600_000).contains(&self.idle_timeout_ms) {
            return bad("idle_timeout_ms", "must be within 100..=3600000");
        }
        if !(100..=3_600_000).contains(&self.body_timeout_ms) {
            return bad("body_timeout_ms", "must be within 100..=3600000");
        }
        if !(4096..=(1 << 20)).contains(&self.max_head_bytes) {
            return bad("max_head_bytes", "must be within 4096..=1048576");
        }
        Ok(())
    }
}

/// The consumer-group coordinator (`[groups]` in the config file): Kafka's group settings, with
/// Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// How long the first rebalance of an empty group waits for more members to join (Kafka's
    /// `group.initial.rebalance.delay.ms`), extended by each join up to the rebalance timeout.
    /// Default 3000; at most 300000; 0 turns it off.
    pub initial_rebalance_delay_ms: u64,
    /// The session timeouts a member may ask for (Kafka's `group.min.session.timeout.ms` and
    /// `group.max.session.timeout.ms`); outside them a join gets INVALID_SESSION_TIMEOUT.
    /// Defaults 6000 and 1800000.
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    /// Committed offsets of a group with no members expire this long after the later of its
    /// last commit and the moment it became empty (Kafka's `offsets.retention.minutes`). Default
    /// 604800000 (7 days); at least 60000.
    pub offsets_retention_ms: u64,
    /// Partitions of the internal topic `__consumer_offsets` when it is created (a group's
    /// records all go to one of them, by a hash of its id); fixed afterwards. Default 4; bounds
    /// 1..=64.
    pub offsets_topic_partitions: u32,
    /// The age at which a segment of `__consumer_offsets` is sealed, and so uploaded: a node
    /// restored from the bucket gets back every commit older than about this (its recovery
    /// point for offsets). Applies when the topic is created; fixed afterwards. Default 600000
    /// (10 minutes); bounds 1000..=604800000.
    pub offsets_segment_ms: u64,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_topic_partitions: 4,
            offsets_segment_ms: 600_000,
        }
    }
}

impl GroupsConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| {
            Err(Error::InvalidConfig { field: format!("groups.{field}"), reason: reason.into() })
        };
        if self.initial_rebalance_delay_ms > 300_000 {
            return bad("initial_rebalance_delay_ms", "must be at most 300000");
        }
        if self.min_session_timeout_ms == 0 || self.min_session_timeout_ms > self.max_session_timeout_ms {
            return bad("min_session_timeout_ms", "must be at least 1 and at most max_session_timeout_ms");
        }
        if self.max_session_timeout_ms > i32::MAX as u64 {
            return bad("max_session_timeout_ms", "must be at most 2147483647");
        }
        if self.offsets_retention_ms < 60_000 {
            return bad("offsets_retention_ms", "must be at least 60000");
        }
        if !(1..=64).contains(&self.offsets_topic_partitions) {
            return bad("offsets_topic_partitions", "must be within 1..=64");
        }
        if !(1000..=604_800_000).contains(&self.offsets_segment_ms) {
            return bad("offsets_segment_ms", "must be within 1000..=604800000");
        }
        Ok(())
    }
}

/// The Kafka-compatible broker of `tierlog serve` (`[kafka]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Serve Kafka clients. Default true (`--kafka-listen off` turns it off too).
    pub enabled: bool,
    /// Where to listen. Default `127.0.0.1:9092`; port 0 picks a free port.
    pub listen: std::net::SocketAddr,
    /// The host clients are told to connect to (Metadata, FindCoordinator). Default: the listen
    /// address, or `127.0.0.1` when listening on all addresses.
    pub advertised_host: Option<String>,
    /// The port clients are told to connect to. Default: the port listened on.
    pub advertised_port: Option<u16>,
    /// This broker's node id, the leader of every partition. Default 1; at least 0.
    pub node_id: i32,
    /// The cluster id clients see. Default: generated once and kept in the data dir and the
    /// bucket (`catalog/kafka-cluster-id`), so a node restored from the bucket keeps it.
    pub cluster_id: Option<String>,
    /// Create a topic, with `[topic_defaults]`, when a client asks Metadata for one that does not
    /// exist (Kafka's `auto.create.topics.enable`). Default true.
    pub auto_create_topics: bool,
    /// The largest request frame accepted; a larger one closes the connection. Default
    /// 104857600 (100 MiB, as Kafka's `socket.request.max.bytes`); bounds 1024..=1073741824.
    pub max_request_bytes: usize,
    /// Bytes of request frames held by all connections at once: a connection waits before
    /// reading a frame that would exceed it, which bounds memory whatever clients send.
    /// Default 268435456 (256 MiB); at least `max_request_bytes`.
    pub max_in_flight_request_bytes: usize,
    /// Connections served at once; more are closed at accept. Default 1000; bounds 1..=100000.
    pub max_connections: usize,
    /// A connection with no request for this long is closed (Kafka's
    /// `connections.max.idle.ms`). Default 600000; bounds 1000..=86400000.
    pub idle_timeout_ms: u64,
    /// Once a frame's length has arrived, the rest of the frame must arrive within this long, or
    /// the connection is closed (a client trickling bytes cannot hold a connection and its
    /// share of `max_in_flight_request_bytes`). Default 60000; bounds 100..=3600000.
    pub frame_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_host: None,
            advertised_port: None,
            node_id: 1,
            cluster_id: None,
            auto_create_topics: true,
            max_request_bytes: 100 << 20,
            max_in_flight_request_bytes: 256 << 20,
            max_connections: 1000,
            idle_timeout_ms: 600_000,
            frame_timeout_ms: 60_000,
        }
    }
}

impl KafkaConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: &str| {
            Err(Error::InvalidConfig { field: format!("kafka.{field}"), reason: reason.into() })
        };
        if self.node_id < 0 {
            return bad("node_id", "must be at least 0");
        }
        if !(1024..=(1 << 30)).contains(&self.max_request_bytes) {
            return bad("max_request_bytes", "must be within 1024..=1073741824");
        }
        if self.max_in_flight_request_bytes < self.max_request_bytes {
            return bad("max_in_flight_request_bytes", "must be at least max_request_bytes");
        }
        if !(1..=100_000).contains(&self.max_connections) {
            return bad("max_connections", "must be within 1..=100000");
        }
        if !(1000..=86_400_000).contains(&self.idle_timeout_ms) {
            return bad("idle_timeout_ms", "must be within 1000..=86400000");
        }
        if !(100..=3_600_000).contains(&self.frame_timeout_ms) {
            return bad("frame_timeout_ms", "must be within 100..=3600000");
        }
        if let Some(h) = &self.advertised_host
            && (h.is_empty() || h.len() > 255 || h.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            return bad("advertised_host", "must be a host name or IP address");
        }
        if let Some(id) = &self.cluster_id
            && (id.is_empty()
                || id.len() > 64
                || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return bad("cluster_id", "must be 1..=64 characters of [A-Za-z0-9_-]");
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("tierlog-data"),
            writer: WriterConfig::default(),
            topic_defaults: TopicConfig::default(),
            object_store: None,
            tiering: TieringConfig::default(),
            restore: false,
            read_only: false,
            replica_poll_ms: 1000,
            compactor: CompactorConfig::default(),
            take_over: false,
            lease_ms: 10_000,
            kafka: KafkaConfig::default(),
            groups: GroupsConfig::default(),
            http: HttpConfig::default(),
            min_free_disk_bytes: 256 << 20,
            max_partitions_per_topic: 10_000,
            max_partitions: 20_000,
        }
    }
}

impl EngineConfig {
    /// A default config on `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), ..Default::default() }
    }

    /// The bucket: the configured one, or `<data_dir>/bucket`.
    pub fn object_store(&self) -> ObjectStoreConfig {
        self.object_store.clone().unwrap_or_else(|| ObjectStoreConfig::Local { path: self.data_dir.join("bucket") })
    }

    /// The directory of the read cache's disk tier.
    pub fn cache_dir(&self) -> PathBuf {
        self.tiering.cache.dir.clone().unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// Parses a TOML config file; unknown keys are errors.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            op: "read config",
            path: path.to_owned(),
            error,
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::InvalidConfig { field: "data_dir".into(), reason: "must not be empty".into() });
        }
        self.writer.validate()?;
        if self.replica_poll_ms == 0 {
            return Err(Error::InvalidConfig { field: "replica_poll_ms".into(), reason: "must be at least 1".into() });
        }
        if self.lease_ms > 600_000 {
            return Err(Error::InvalidConfig { field: "lease_ms".into(), reason: "must be at most 600000".into() });
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&self.max_partitions_per_topic) {
            return Err(Error::InvalidConfig {
                field: "max_partitions_per_topic".into(),
                reason: format!("must be within 1..={MAX_PARTITIONS_PER_TOPIC}"),
            });
        }
        if !(1..=1_000_000).contains(&self.max_partitions) {
            return Err(Error::InvalidConfig {
                field: "max_partitions".into(),
                reason: "must be within 1..=1000000".into(),
            });
        }
        if self.read_only && self.restore {
            return Err(Error::InvalidConfig {
                field: "read_only".into(),
                reason: "a read-only replica cannot also restore (restore makes this engine the writer)".into(),
            });
        }
        self.tiering.validate()?;
        self.kafka.validate()?;
        self.groups.validate()?;
        self.http.validate()?;
        self.compactor
            .validate()
            .map_err(|(field, reason)| Error::InvalidConfig { field: format!("compactor.{field}"), reason })?;
        if let Some(store) = &self.object_store {
            store.validate()?;
        }
        self.topic_defaults.validate().map_err(|e| match e {
            Error::InvalidConfig { field, reason } => {
                Error::InvalidConfig { field: format!("topic_defaults.{field}"), reason }
            }
            other => other,
        })
    }
}

/// Keys whose values are credentials: never shown in an error.
const CREDENTIAL_KEYS: [&str; 2] = ["secret_access_key", "access_key_id"];

/// What a line of a TOML file sets: `Some((true, table))` for a `[table]` header, `Some((false,
/// key))` for `key = value`.
fn toml_line_key(line: &str) -> Option<(bool, &str)> {
    let line = line.trim();
    if let Some(table) = line.strip_prefix('[') {
        let table = table.trim_start_matches('[').split(']').next().map(str::trim)?;
        return (!table.is_empty()).then_some((true, table));
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.starts_with('#')).then_some((false, key))
}

/// The full key a line of `text` sets (`writer.max_group_bytes`, or the table of a header line).
fn toml_key_at(text: &str, line_no: usize) -> Option<String> {
    let mut table = None;
    for line in text.lines().take(line_no - 1) {
        if let Some((true, t)) = toml_line_key(line) {
            table = Some(t);
        }
    }
    match toml_line_key(text.lines().nth(line_no - 1)?)? {
        (true, t) => Some(t.to_string()),
        (false, key) => Some(table.map_or(key.to_string(), |t| format!("{t}.{key}"))),
    }
}

fn is_credential_key(key: &str) -> bool {
    CREDENTIAL_KEYS.iter().any(|c| key == *c || key.ends_with(&format!(".{c}")))
}

/// A TOML error as an `InvalidConfig` that names the key and the position, never the file's
/// text: the parser's own rendering quotes the offending line, which may hold a credential.
/// The values of credential keys are redacted from the parser's message as well (a type error
/// quotes the value it got).
fn toml_error(text: &str, e: &toml::de::Error) -> Error {
    let mut message = e.message().to_string();
    let mut field = "(config file)".to_string();
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = &text[..text.floor_char_boundary(start)];
        let line_no = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        if let Some(key) = toml_key_at(text, line_no) {
            if is_credential_key(&key) {
                message = "not a valid value (it is a credential, so it is not shown)".into();
            }
            field = key;
        }
        message = format!("line {line_no}, column {column}: {message}");
    }
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        if !is_credential_key(key.trim().trim_matches(|c| c == '"' || c == '\'')) {
            continue;
        }
        let value = value.split(" #").next().unwrap_or("").trim();
        for v in [value, value.trim_matches(|c| c == '"' || c == '\'')] {
            if !v.is_empty() {
                message = message.replace(v, "<redacted>");
            }
        }
    }
    Error::InvalidConfig { field, reason: message }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a config can be wrong, with credentials in it: the error names the key and the
    /// position and never shows a credential.
    #[test]
    fn config_errors_never_show_credentials() {
        let store = |extra: &str, secret_line: &str| {
            format!(
                "data_dir = \"/tmp/x\"\n[object_store]\nkind = \"s3\"\nendpoint = \"https://s3.example\"\n\
                 bucket = \"b\"\naccess_key_id = \"AKIDSECRETID\"\n{secret_line}\n{extra}"
            )
        };
        let good = "secret_access_key = \"s3cr3t-Value/xyz\"";
        let cases: Vec<(String, &str)> = vec![
            // Syntax error on the secret's line: an unterminated string.
            (store("", "secret_access_key = \"s3cr3t-Value/xyz"), "object_store.secret_access_key"),
            (store("", "secret_access_key = 's3cr3t-Value/xyz"), "object_store.secret_access_key"),
            // Wrong type.
            (store("", "secret_access_key = 5138"), "object_store"),
            (store("", good).replace("\"AKIDSECRETID\"", "5138"), "object_store"),
            // A key set twice.
            (store("", "access_key_id = \"AKIDSECRETID\""), "object_store.access_key_id"),
            // Unknown key, bad value of another key, bad section after it.
            (store("bogus = 1", good), "object_store"),
            (store("max_retries = \"many\"", good), "object_store"),
            (store("request_timeout_ms = 0", good), "object_store.request_timeout_ms"),
            (store("[writer]\nmax_group_bytes = \"big\"", good), "writer.max_group_bytes"),
            (store("[tiering]\nnope = 1", good), "tiering.nope"),
            (store("[topic_defaults.log]\nsegment_bytes = 1", good), "topic_defaults.log.segment_bytes"),
            (store("]]]", good), "(config file)"),
            (
                format!("{}\nallow_http = false", store("", good)).replace("https://", "http://"),
                "object_store.endpoint",
            ),
            (
                store("", good).replace("https://s3.example", "https://AKIDSECRETID:s3cr3t-Value@s3.example"),
                "object_store.endpoint",
            ),
            (store("", good).replace("bucket = \"b\"", "bucket = \"\""), "object_store.bucket"),
        ];
        for (text, field) in cases {
            let e = EngineConfig::from_toml(&text).expect_err(&text);
            let shown = e.to_string();
            assert!(!shown.contains("s3cr3t") && !shown.contains("AKIDSECRETID") && !shown.contains("5138"), "{shown}");
            assert!(matches!(&e, Error::InvalidConfig { field: f, .. } if f == field), "{shown}\nfor\n{text}");
        }
        // The position is named.
        let e = EngineConfig::from_toml(&store("", "secret_access_key = \"s3cr3t")).unwrap_err().to_string();
        assert!(e.contains("line 7, column"), "{e}");
    }

    /// Every TOML block of the README is a valid config (so the documented keys and defaults
    /// stay true), and the defaults it shows are the defaults.
    #[test]
    fn the_readme_configs_parse() {
        let readme = include_str!("../README.md");
        let blocks: Vec<&str> =
            readme.split("```toml").skip(1).map(|b| b.split("```").next().expect("closed block")).collect();
        assert!(blocks.len() >= 2, "README has its config examples");
        for b in &blocks {
            let uncommented: String = b
                .lines()
                .map(|l| l.strip_prefix("# ").filter(|r| r.contains(" = ")).unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n");
            EngineConfig::from_toml(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
            EngineConfig::from_toml(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        }
        let first = EngineConfig::from_toml(blocks[0]).unwrap();
        assert_eq!(first.tiering, TieringConfig::default());
        assert_eq!(first.topic_defaults.log, tiering::LogConfig::default());
        assert_eq!(first.topic_defaults.compaction, CompactionConfig::default());
        assert_eq!(first.compactor, CompactorConfig::default());
    }

    #[test]
    fn a_snapshot_interval_of_0_is_off_in_toml_and_json_as_on_the_cli() {
        let cfg = EngineConfig::from_toml("[topic_defaults.compaction]\nsnapshot_interval_ms = 0\n").unwrap();
        assert_eq!(cfg.topic_defaults.compaction.snapshot_interval_ms, None);
        let t: TopicConfig = serde_json::from_str(r#"{"compaction": {"snapshot_interval_ms": 0}}"#).unwrap();
        assert_eq!(t.compaction.snapshot_interval_ms, None);
        let t: TopicConfig = serde_json::from_str(r#"{"compaction": {"snapshot_interval_ms": null}}"#).unwrap();
        assert_eq!(t.compaction.snapshot_interval_ms, None);
        // Omitted: the default (every hour); under a second: an error naming the field.
        let cfg = EngineConfig::from_toml("[topic_defaults.compaction]\n").unwrap();
        assert_eq!(cfg.topic_defaults.compaction.snapshot_interval_ms, Some(3_600_000));
        let e = EngineConfig::from_toml("[topic_defaults.compaction]\nsnapshot_interval_ms = 500\n").unwrap_err();
        assert!(e.to_string().contains("snapshot_interval_ms"), "{e}");
    }

    #[test]
    fn toml_roundtrip_and_errors() {
        let cfg = EngineConfig::from_toml(
            r#"
            data_dir = "/var/lib/tierlog"
            [writer]
            max_group_bytes = 1048576
            [topic_defaults]
            partitions = 4
            [topic_defaults.log]
            durability = "interval:50ms"
            segment_bytes = 1048576
            "#,
        )
        .unwrap();
        assert_eq!(cfg.topic_defaults.partitions, 4);
        assert_eq!(cfg.writer.max_group_bytes, 1 << 20);
        assert_eq!(cfg.topic_defaults.log.durability, tiering::Durability::Interval { ms: 50 });

        let err = EngineConfig::from_toml("[topic_defaults.log]\nsegment_bytes = 1").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field, .. } if field == "topic_defaults.log.segment_bytes"),
            "{err}"
        );
        let err = EngineConfig::from_toml("data_dri = 'x'").unwrap_err();
        assert!(err.to_string().contains("data_dri"), "{err}");
        let err = EngineConfig::from_toml("[topic_defaults.log]\ndurability = 'sometimes'").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }
}
