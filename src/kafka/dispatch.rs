//! From a frame to its API: the API key and version are checked against what this broker serves
//! before anything is decoded, then the header and the body are decoded by the `kafka-protocol`
//! crate, and the API's handler runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::sync::OwnedSemaphorePermit;

use super::Broker;
use super::conn::Close;

/// A response frame (length prefix included) as chunks to write in order, none (`acks=0`), or
/// why it could not be encoded.
pub(super) type Reply = Result<Option<Vec<super::frame::Chunk>>, String>;
pub(super) type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// The APIs served and their version ranges: what ApiVersions advertises. Only what works.
pub(super) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

pub(super) fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|&(_, lo, hi)| (lo, hi))
}

/// What a handler needs to answer: the broker, the API and version, the correlation id.
pub(super) struct Ctx {
    pub broker: Arc<Broker>,
    pub key: ApiKey,
    pub version: i16,
    /// The request header's client id ("" when absent).
    pub client_id: String,
    pub peer: std::net::SocketAddr,
    correlation_id: i32,
    started: std::time::Instant,
    /// The request's share of the broker's request-byte budget, held until it is answered.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Ctx {
    pub fn api(&self) -> &'static str {
        api_name(self.key)
    }

    /// Encodes `body` as this request's response frame, and records the request's metrics.
    pub fn respond<R: Encodable>(self, body: &R) -> Reply {
        self.respond_sharing(body, Vec::new(), Vec::new())
    }

    /// [`Ctx::respond`] for a response that carries slices of `shared` and stand-ins of
    /// `files` (a Fetch's records): the frame references them instead of copying them (see
    /// [`super::frame`]).
    pub fn respond_sharing<R: Encodable>(
        self,
        body: &R,
        shared: Vec<Bytes>,
        files: Vec<tiering::local::FileSpan>,
    ) -> Reply {
        let frame = encode(self.key, self.version, self.correlation_id, body, shared, files)?;
        metrics::histogram!(super::REQUEST_SECONDS, "api" => self.api()).record(self.started.elapsed().as_secs_f64());
        Ok(frame)
    }

    /// No response (`acks=0`); the metrics still count the request.
    pub fn silent(self) -> Reply {
        metrics::histogram!(super::REQUEST_SECONDS, "api" => self.api()).record(self.started.elapsed().as_secs_f64());
        Ok(None)
    }

    pub fn code(&self, code: i16) -> i16 {
        super::codes::count(self.api(), code)
    }
}

/// A response frame: length, header (at the version the API's response header takes), body.
pub(super) fn encode<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    shared: Vec<Bytes>,
    files: Vec<tiering::local::FileSpan>,
) -> Reply {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = key.response_header_version(version);
    let err = |e: anyhow::Error| format!("{key:?} v{version} response: {e}");
    let size = header.compute_size(header_version).map_err(err)? + body.compute_size(version).map_err(err)?;
    let len = i32::try_from(size).map_err(|_| format!("{key:?} response of {size} bytes is too large"))?;
    // Sized up front; only what is not a slice of `shared` or a file span is copied.
    let referenced = shared.iter().map(|b| b.len()).sum::<usize>() + files.iter().map(|f| f.len()).sum::<usize>();
    let mut buf = super::frame::FrameBuf::new(shared, files, size - referenced.min(size) + 64);
    buf.put_i32(len);
    header.encode(&mut buf, header_version).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    if kafka_protocol::protocol::buf::ByteBufMut::offset(&buf) != size + 4 {
        return Err(format!("{key:?} v{version} response: encoded size differs from its computed size"));
    }
    match buf.finish() {
        Some(chunks) => Ok(Some(chunks)),
        None => Err(format!("{key:?} v{version} response: a record stand-in names no file span")),
    }
}

fn ready(reply: Reply) -> ReplyFuture {
    Box::pin(std::future::ready(reply))
}

/// Checks and decodes one request frame and starts its handler. A Produce enqueues its batches
/// here, before the connection reads its next request; every other API does its work in the
/// returned future. An error closes the connection.
pub(super) async fn request(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    frame: Bytes,
    permit: OwnedSemaphorePermit,
) -> Result<ReplyFuture, Close> {
    // The caller checked that the frame holds at least 8 bytes.
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Err(Close::Unsupported(format!("unknown API key {raw_key}")));
    };
    let Some((lo, hi)) = supported(key) else {
        return Err(Close::Unsupported(format!("API {key:?} ({raw_key}) is not served")));
    };
    metrics::counter!(super::REQUESTS, "api" => api_name(key)).increment(1);
    if !(lo..=hi).contains(&version) {
        if key == ApiKey::ApiVersions {
            // Kafka's answer to an ApiVersions it does not know: a v0 body with
            // UNSUPPORTED_VERSION and the versions it serves; clients retry with one of them.
            super::codes::count("ApiVersions", kafka_protocol::ResponseError::UnsupportedVersion.code());
            return Ok(ready(encode(
                key,
                0,
                correlation_id,
                &super::api_versions::unsupported(),
                Vec::new(),
                Vec::new(),
            )));
        }
        return Err(Close::Unsupported(format!("{key:?} v{version} is not served (v{lo}-{hi})")));
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(|e| Close::malformed("bad_header", format!("{key:?} v{version} header: {e}")))?;
    let ctx = Ctx {
        broker: broker.clone(),
        key,
        version,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        peer,
        correlation_id,
        started: std::time::Instant::now(),
        _permit: Some(permit),
    };
    fn decode<T: Decodable>(ctx: &Ctx, body: &mut Bytes) -> Result<T, Close> {
        T::decode(body, ctx.version)
            .map_err(|e| Close::malformed("bad_request", format!("{:?} v{}: {e}", ctx.key, ctx.version)))
    }
    let fut: ReplyFuture = match key {
        ApiKey::Produce => {
            let req = decode(&ctx, &mut body)?;
            super::produce::handle(ctx, req).await
        }
        ApiKey::Fetch => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::fetch::handle(ctx, req))
        }
        ApiKey::ListOffsets => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::list_offsets::handle(ctx, req))
        }
        ApiKey::Metadata => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::metadata::handle(ctx, req))
        }
        ApiKey::ApiVersions => {
            let _req: kafka_protocol::messages::ApiVersionsRequest = decode(&ctx, &mut body)?;
            ready(super::api_versions::handle(ctx))
        }
        ApiKey::CreateTopics => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::admin::create_topics(ctx, req))
        }
        ApiKey::DeleteTopics => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::admin::delete_topics(ctx, req))
        }
        ApiKey::CreatePartitions => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::admin::create_partitions(ctx, req))
        }
        ApiKey::DescribeConfigs => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::admin::describe_configs(ctx, req))
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::admin::incremental_alter_configs(ctx, req))
        }
        ApiKey::InitProducerId => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::producer_id::handle(ctx, req))
        }
        ApiKey::OffsetForLeaderEpoch => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::metadata::offset_for_leader_epoch(ctx, req))
        }
        ApiKey::DescribeCluster => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::metadata::describe_cluster(ctx, req))
        }
        ApiKey::FindCoordinator => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::find_coordinator(ctx, req))
        }
        ApiKey::JoinGroup => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::join_group(ctx, req))
        }
        ApiKey::SyncGroup => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::sync_group(ctx, req))
        }
        ApiKey::Heartbeat => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::heartbeat(ctx, req))
        }
        ApiKey::LeaveGroup => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::leave_group(ctx, req))
        }
        ApiKey::OffsetCommit => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::offset_commit(ctx, req))
        }
        ApiKey::OffsetFetch => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::offset_fetch(ctx, req))
        }
        ApiKey::ListGroups => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::list_groups(ctx, req))
        }
        ApiKey::DescribeGroups => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::describe_groups(ctx, req))
        }
        ApiKey::DeleteGroups => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::delete_groups(ctx, req))
        }
        ApiKey::OffsetDelete => {
            let req = decode(&ctx, &mut body)?;
            Box::pin(super::groups::offset_delete(ctx, req))
        }
        other => return Err(Close::Unsupported(format!("API {other:?} is not served"))),
    };
    Ok(fut)
}

/// The API's name, for logs and metric labels.
pub(super) fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::OffsetDelete => "OffsetDelete",
        _ => "other",
    }
}
