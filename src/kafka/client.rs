//! A minimal Kafka client for tierlog's own tools (`tierlog groups --bootstrap-server`): one
//! connection, requests one at a time, each at the highest version both sides speak (from the
//! broker's ApiVersions). It talks to any Kafka broker, not only tierlog.

use std::collections::HashMap;

use anyhow::Context as _;
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, GroupId, OffsetFetchRequest, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response accepted.
const MAX_RESPONSE: usize = 256 << 20;

pub struct Client {
    addr: String,
    conn: TcpStream,
    correlation: i32,
    /// The broker's version range per API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Client {
    /// Connects and asks the broker which versions it serves.
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let conn =
            TcpStream::connect(addr).await.with_context(|| format!("connecting to the Kafka broker at {addr}"))?;
        conn.set_nodelay(true)?;
        let mut c = Client { addr: addr.to_owned(), conn, correlation: 0, versions: HashMap::new() };
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tierlog"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let resp: ApiVersionsResponse = c.send(ApiKey::ApiVersions, 3, &req).await?;
        anyhow::ensure!(resp.error_code == 0, "{addr}: ApiVersions answered error {}", resp.error_code);
        c.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` both this client and the broker speak.
    pub fn version<R: Request>(&self) -> anyhow::Result<i16> {
        let (lo, hi) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("{}: the broker does not serve API key {}", self.addr, R::KEY))?;
        let v = hi.min(R::VERSIONS.max);
        anyhow::ensure!(
            v >= lo && v >= R::VERSIONS.min,
            "{}: no version of API key {} in common (broker {lo}-{hi}, client {}-{})",
            self.addr,
            R::KEY,
            R::VERSIONS.min,
            R::VERSIONS.max
        );
        Ok(v)
    }

    /// Sends `req` at the highest common version; the response and the version used.
    pub async fn call<R: Request>(&mut self, req: &R) -> anyhow::Result<(R::Response, i16)> {
        let v = self.version::<R>()?;
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow::anyhow!("unknown API key {}", R::KEY))?;
        Ok((self.send(key, v, req).await?, v))
    }

    async fn send<R, S>(&mut self, key: ApiKey, version: i16, req: &R) -> anyhow::Result<S>
    where
        R: kafka_protocol::protocol::Encodable + HeaderVersion,
        S: Decodable + Message,
    {
        self.correlation += 1;
        let frame = super::request_frame(key, version, self.correlation, req)?;
        self.conn.write_all(&frame).await?;
        let n = self.conn.read_i32().await.with_context(|| format!("{}: reading a {key:?} response", self.addr))?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_RESPONSE)
            .ok_or_else(|| anyhow::anyhow!("{}: a {key:?} response claims {n} bytes", self.addr))?;
        let mut body = vec![0u8; n];
        self.conn.read_exact(&mut body).await?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        anyhow::ensure!(header.correlation_id == self.correlation, "{}: response out of order", self.addr);
        S::decode(&mut body, version).with_context(|| format!("{}: decoding a {key:?} v{version} response", self.addr))
    }

    /// OffsetFetch of one group (the single-group form before v8, the batched one from v8):
    /// (topic, partition, committed offset, metadata), every topic when `topic` is none. An
    /// error code in the answer is an error.
    pub async fn committed(
        &mut self,
        group: &str,
        topic: Option<(&str, Vec<i32>)>,
    ) -> anyhow::Result<Vec<(String, i32, i64, Option<String>)>> {
        use kafka_protocol::messages::offset_fetch_request::{
            OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
        };
        let v = self.version::<OffsetFetchRequest>()?;
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            let topics = topic.as_ref().map(|(t, ps)| {
                vec![OffsetFetchRequestTopics::default().with_name(TopicName(s(t))).with_partition_indexes(ps.clone())]
            });
            req.groups = vec![OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(topics)];
        } else {
            req.group_id = GroupId(s(group));
            req.topics = topic.as_ref().map(|(t, ps)| {
                vec![OffsetFetchRequestTopic::default().with_name(TopicName(s(t))).with_partition_indexes(ps.clone())]
            });
        }
        let (resp, v) = self.call(&req).await?;
        let mut out = Vec::new();
        // The two forms carry the same fields in distinct generated types.
        macro_rules! collect {
            ($error:expr, $topics:expr) => {{
                check(&format!("fetching the offsets of group {group:?}"), $error)?;
                for t in $topics {
                    for p in &t.partitions {
                        check(&format!("offset of {}-{}", t.name.0, p.partition_index), p.error_code)?;
                        let metadata = p.metadata.as_ref().map(|m| m.to_string());
                        out.push((t.name.0.to_string(), p.partition_index, p.committed_offset, metadata));
                    }
                }
            }};
        }
        if v >= 8 {
            let g = resp.groups.first().ok_or_else(|| anyhow::anyhow!("OffsetFetch: no answer"))?;
            collect!(g.error_code, &g.topics);
        } else {
            collect!(resp.error_code, &resp.topics);
        }
        Ok(out)
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// The error of a Kafka answer, if any.
pub fn check(what: &str, code: i16) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    anyhow::bail!("{what}: the broker answered {name} ({code})")
}
