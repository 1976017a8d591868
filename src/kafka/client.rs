//! A minimal Kafka client for tierlog's own tools (`tierlog groups --bootstrap-server`): one
//! connection, requests one at a time, each at the highest version both sides speak (from the
//! broker's ApiVersions). It talks to any Kafka broker, not only tierlog.

use std::collections::HashMap;

use anyhow::Context as _;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
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
}
