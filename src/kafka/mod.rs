//! The Kafka wire-protocol broker of `tierlog serve`: unmodified Kafka clients produce to
//! tierlog's partitions and fetch from both tiers.
//!
//! - [`listener`]: accepts connections (a connection cap), shuts down with the server.
//! - `conn`: one connection: frames are length-checked before anything is decoded, requests are
//!   read while earlier ones are in flight and answered in request order.
//! - `dispatch`: API key and version checks, header decoding, one module per API.
//! - `codes`: tierlog's errors as Kafka error codes.
//!
//! The codec is the `kafka-protocol` crate. Client record batches are validated by tierlog's own
//! batch code (the engine's append path), never by the crate's record decoder, and stored and
//! served as the bytes the client sent. This module uses the engine's public API only.

mod admin;
mod api_versions;
pub mod client;
mod cluster;
mod codes;
mod configs;
mod conn;
mod dispatch;
mod fetch;
mod frame;
mod groups;
mod list_offsets;
pub mod listener;
mod metadata;
mod produce;
mod producer_id;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::KafkaConfig;
use crate::engine::Engine;
use crate::error::Result;
use crate::groups::Coordinator;

pub use frame::request_frame;
pub use listener::serve;

/// Requests handled, by API (`api`).
pub const REQUESTS: &str = "tierlog_kafka_requests_total";
/// Error codes answered, by API and code (`api`, `code`).
pub const ERRORS: &str = "tierlog_kafka_errors_total";
/// Time from a request read to its response ready, by API.
pub const REQUEST_SECONDS: &str = "tierlog_kafka_request_seconds";
/// Request bytes read.
pub const BYTES_IN: &str = "tierlog_kafka_bytes_in_total";
/// Response bytes written.
pub const BYTES_OUT: &str = "tierlog_kafka_bytes_out_total";
/// Of those, record bytes sent from segment files with `sendfile` (zero-copy Fetch).
pub const BYTES_SENDFILE: &str = "tierlog_kafka_bytes_sendfile_total";
/// Connections open now.
pub const CONNECTIONS: &str = "tierlog_kafka_connections";
/// Connections closed for a bad frame or a refused request, by `reason`.
pub const CLOSED: &str = "tierlog_kafka_connections_closed_total";

/// What the broker tells clients about itself, and the limits it serves them with.
#[derive(Debug)]
pub struct Broker {
    engine: Engine,
    config: KafkaConfig,
    cluster_id: String,
    host: String,
    port: i32,
    /// Bytes of request frames held at once, over every connection.
    request_bytes: Arc<Semaphore>,
    /// The group coordinator (shared with the HTTP API).
    groups: Arc<Coordinator>,
}

impl Broker {
    /// The broker of `engine`, listening on `local` (the bound address, for the advertised
    /// defaults). Loads or creates the cluster id.
    pub async fn new(
        engine: Engine,
        config: KafkaConfig,
        groups: Arc<Coordinator>,
        local: SocketAddr,
    ) -> Result<Arc<Self>> {
        config.validate()?;
        conn::ignore_sigpipe();
        let cluster_id = cluster::cluster_id(&engine, config.cluster_id.as_deref()).await?;
        let host = config.advertised_host.clone().unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                tracing::warn!(
                    "Kafka listener on all addresses: advertising 127.0.0.1 (set kafka.advertised_host for remote clients)"
                );
                "127.0.0.1".to_owned()
            } else {
                local.ip().to_string()
            }
        });
        let port = config.advertised_port.unwrap_or(local.port()) as i32;
        let request_bytes = Arc::new(Semaphore::new(config.max_in_flight_request_bytes));
        Ok(Arc::new(Self { engine, config, cluster_id, host, port, request_bytes, groups }))
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }
    /// The host and port clients are told to connect to.
    pub fn advertised(&self) -> (&str, i32) {
        (&self.host, self.port)
    }

    /// The stable id of a topic: a hash of the cluster id and the topic name, so every node
    /// serving the bucket (and a node restored from it) gives the same one. A topic deleted and
    /// created again keeps its id.
    fn topic_id(&self, topic: &str) -> uuid::Uuid {
        let input = [self.cluster_id.as_bytes(), &[0], topic.as_bytes()].concat();
        uuid::Uuid::from_u128(twox_hash::XxHash3_128::oneshot(&input).max(1))
    }
}

/// A Kafka listener running on the current runtime, for an embedder (and the benches and tests):
/// [`Serving::start`] binds, [`Serving::stop`] closes every connection and waits.
pub struct Serving {
    /// The bound address (a port 0 listen gets its port here).
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// A listener with a group coordinator of its own (its timers running).
    pub async fn start(engine: Engine, config: KafkaConfig, listen: SocketAddr) -> Result<Self> {
        let groups = Coordinator::open(engine.clone(), engine.config().groups.clone()).await?;
        groups.start_timers();
        Self::start_with(engine, config, groups, listen).await
    }

    /// A listener serving the groups of `groups` (shared with an HTTP server, say).
    pub async fn start_with(
        engine: Engine,
        config: KafkaConfig,
        groups: Arc<Coordinator>,
        listen: SocketAddr,
    ) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|error| crate::error::Error::Io {
            op: "bind Kafka listener",
            path: listen.to_string().into(),
            error,
        })?;
        let addr = listener.local_addr().map_err(|error| crate::error::Error::Io {
            op: "bind Kafka listener",
            path: listen.to_string().into(),
            error,
        })?;
        let broker = Broker::new(engine, config, groups, addr).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(broker, listener, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop, task })
    }

    /// Whether the listener stopped on its own (it does not, but for a failure).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task.await.map_err(std::io::Error::other)?
    }
}
