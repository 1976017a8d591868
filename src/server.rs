//! The HTTP/JSON API (axum), bound to 127.0.0.1 by default.
//!
//! | method and path                              | what                                           |
//! |----------------------------------------------|------------------------------------------------|
//! | `GET /health`                                | `{"status": "ok", ..}`; `"warning"` with partitions whose tiering stopped; 503 `"degraded"` with unwritable partitions or a full disk |
//! | `GET /metrics`                               | Prometheus text                                |
//! | `GET /topics`                                | topic names                                    |
//! | `POST /topics/{topic}`                       | create; body: a `TopicConfig` (JSON, optional)  |
//! | `GET /topics/{topic}`                        | describe (as `tierlog topic describe`)         |
//! | `POST /topics/{topic}/records`               | produce JSON lines (as `tierlog produce`)      |
//! | `GET /topics/{topic}/records`                | replay a range as JSON lines (streamed)        |
//! | `GET /topics/{topic}/offset-for-time`        | `?partition=&time=` (ms, RFC 3339, earliest, latest) |
//! | `GET /topics/{topic}/state`                  | state at `?time=` or `?offset=` as JSON lines (streamed) |
//!
//! Record ranges take `partition`, `from_offset` | `from_time`, `to_offset` | `to_time`,
//! `merge=time`, `max_records`, with the meanings of `tierlog replay`, and `wait_ms` (with
//! `from_offset`: hold the request until a partition has a record there, at most that long, so a
//! client tails a partition with one request per batch of new records). Errors are
//! `{"code": "...", "message": "..."}` with a 4xx status for requests to fix (bad input, unknown
//! topic or offset, writes to a replica) and 5xx for the server's own trouble. A produce body is
//! checked whole before anything is appended: a bad line appends nothing.

use std::sync::{Arc, OnceLock};

mod listener;
pub use listener::{CONNECTIONS as HTTP_CONNECTIONS, REFUSED as HTTP_REFUSED};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;
use tiering::batch::Compression;
use tiering::local::OffsetSpec;

use crate::config::TopicConfig;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind};
use crate::groups::{Coordinator, GroupError, ResetTo};
use crate::ingest::{ProduceOptions, parse_compression, produce};
use crate::records::{Times, parse_time, record_to_json, state_entry_to_json};
use crate::replay::Merge;
use crate::state::{At, StateSpec};

/// Largest produce body accepted.
const MAX_BODY: usize = 64 << 20;

/// The process's Prometheus recorder (the `metrics` facade has one global recorder).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding application's): then /metrics
        // shows only what this one sees, which is nothing; say so in the log.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// An API error: status, code and message.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match (&e, e.kind()) {
            (Error::UnknownTopic { .. } | Error::UnknownPartition { .. }, _) => (StatusCode::NOT_FOUND, "not_found"),
            (Error::OffsetOutOfRange { .. }, _) => (StatusCode::RANGE_NOT_SATISFIABLE, "offset_out_of_range"),
            (Error::TopicExists { .. }, _) => (StatusCode::CONFLICT, "topic_exists"),
            (Error::ReadOnly { .. }, _) => (StatusCode::METHOD_NOT_ALLOWED, "read_only"),
            (_, ErrorKind::Invalid) => (StatusCode::BAD_REQUEST, "invalid"),
            (_, ErrorKind::NotFound) => (StatusCode::NOT_FOUND, "not_found"),
            (_, ErrorKind::Data) => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_data"),
            (_, ErrorKind::Closed) => (StatusCode::SERVICE_UNAVAILABLE, "closed"),
            (_, ErrorKind::Unavailable) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        Self { status, code, message: e.to_string() }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Error>() {
            Ok(e) => e.into(),
            Err(e) => Self { status: StatusCode::BAD_REQUEST, code: "invalid", message: format!("{e:#}") },
        }
    }
}

/// A produce that failed part way (the disk, say; lines are checked before): the error, and what
/// had been appended before it.
impl From<crate::ingest::ProduceFailed> for ApiError {
    fn from(f: crate::ingest::ProduceFailed) -> Self {
        let mut e = ApiError::from(f.error);
        if f.appended.records > 0 {
            let done = serde_json::to_string(&f.appended).expect("invariant: a summary serialises");
            e.message = format!("{}; appended before it: {done}", e.message);
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "code": self.code, "message": self.message }))).into_response()
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// What every handler may use: the engine, and the group coordinator.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine>,
    groups: Arc<Coordinator>,
}

impl axum::extract::FromRef<AppState> for Arc<Engine> {
    fn from_ref(s: &AppState) -> Self {
        s.engine.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Coordinator> {
    fn from_ref(s: &AppState) -> Self {
        s.groups.clone()
    }
}

/// The router over `engine` and its group coordinator.
pub fn router(engine: Engine, groups: Arc<Coordinator>) -> Router {
    let _ = prometheus();
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/topics", get(topics))
        .route("/topics/{topic}", get(describe).post(create))
        .route("/topics/{topic}/records", get(replay).post(produce_records))
        .route("/topics/{topic}/offset-for-time", get(offset_for_time))
        .route("/topics/{topic}/state", get(state))
        .route("/topics/{topic}/compact", axum::routing::post(compact))
        .route("/groups", get(groups_list))
        .route("/groups/{group}", get(group_describe).delete(group_delete))
        .route("/groups/{group}/reset-offsets", axum::routing::post(group_reset))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_millis(engine.config().http.body_timeout_ms),
            errors_as_json,
        ))
        .with_state(AppState { engine: Arc::new(engine), groups })
}

/// Every request's body gets the `[http] body_timeout_ms` deadline, and every error answer is
/// the API's `{"code", "message"}`: the handlers' own already are; what the HTTP stack answers
/// by itself (no route, a method a route does not take, a query, path or body its extractors
/// refuse, a body over the limit) is plain text or empty, and is rewritten here with the code
/// for its status and its text as the message. A body that timed out is answered 408 and
/// closes the connection.
async fn errors_as_json(
    State(body_timeout): State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        let message = format!("the request body is larger than the limit of {MAX_BODY} bytes");
        return stack_error(StatusCode::PAYLOAD_TOO_LARGE, message);
    }
    let expired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let req = req.map(|b| Body::new(listener::DeadlineBody::new(b, body_timeout, expired.clone())));
    let res = next.run(req).await;
    if expired.load(std::sync::atomic::Ordering::SeqCst) {
        let ms = body_timeout.as_millis();
        return stack_error(StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {ms} ms"));
    }
    let status = res.status();
    let is_json =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let text = axum::body::to_bytes(res.into_body(), 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = match status {
        _ if !text.is_empty() => text,
        StatusCode::NOT_FOUND => format!("no such endpoint: {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        s => s.canonical_reason().unwrap_or("error").to_owned(),
    };
    stack_error(status, message)
}

/// An error the HTTP stack answers, as `{"code", "message"}`; a body cut short (408, 413) also
/// closes the connection, since what is left of the body cannot be told from the next request.
fn stack_error(status: StatusCode, message: String) -> Response {
    let mut res = (status, Json(json!({ "code": listener::code_for(status), "message": message }))).into_response();
    if matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE) {
        res.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    res
}

/// Serves `engine` on `listener` until `shutdown` resolves, with a group coordinator of its own
/// (its timers running).
pub async fn serve(
    engine: Engine,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let groups =
        Coordinator::open(engine.clone(), engine.config().groups.clone()).await.map_err(std::io::Error::other)?;
    groups.start_timers();
    serve_with(engine, groups, listener, shutdown).await
}

/// [`serve`] with a coordinator shared with the Kafka listener.
pub async fn serve_with(
    engine: Engine,
    groups: Arc<Coordinator>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = engine.config().http.clone();
    listener::serve(listener, router(engine, groups), limits, shutdown).await
}

type Shared = State<Arc<Engine>>;

/// 200 `{"status": "ok", ..}` while every partition takes appends; 503 `{"status": "degraded",
/// "partitions": [{topic, partition, state, reason}], ..}` while any is refused, fenced or failed.
/// 200 `ok` when all is well; 200 `warning` when appends work but tiering of some partitions
/// stopped (the bucket falls behind); 503 `degraded` when a partition takes no appends or the
/// disk is full. The body says which, and why.
async fn health(State(engine): Shared) -> Response {
    let h = engine.health();
    let (status, code) = if !h.writable() {
        ("degraded", StatusCode::SERVICE_UNAVAILABLE)
    } else if !h.tiering.is_empty() || h.uploader_error.is_some() {
        ("warning", StatusCode::OK)
    } else {
        ("ok", StatusCode::OK)
    };
    let body = json!({
        "status": status,
        "topics": engine.list_topics().len(),
        "read_only": engine.config().read_only,
        "partitions": h.partitions,
        "tiering": h.tiering,
        "uploader_error": h.uploader_error,
        "disk": h.disk,
    });
    (code, Json(body)).into_response()
}

/// Prometheus text. Gauges that describe state (bytes per tier, upload lag) are set from the
/// engine at scrape time.
async fn metrics_text(State(engine): Shared, State(groups): State<Arc<Coordinator>>) -> Response {
    groups.record_metrics();
    for t in engine.list_topics() {
        let Ok(d) = engine.describe_topic(&t) else { continue };
        for p in &d.partitions {
            let labels = [("topic", t.clone()), ("partition", p.partition.to_string())];
            metrics::gauge!("tierlog_local_bytes", &labels).set(p.size_bytes as f64);
            metrics::gauge!("tierlog_remote_bytes", &labels).set(p.remote.totals.bytes as f64);
            metrics::gauge!("tierlog_high_watermark", &labels).set(p.high_watermark as f64);
            // Upload lag: offsets acknowledged locally that the bucket does not hold yet.
            let lag = if p.segments.is_empty() { 0 } else { (p.high_watermark - p.remote.next_offset).max(0) };
            metrics::gauge!("tierlog_upload_lag_offsets", &labels).set(lag as f64);
            let lag_bytes: u64 =
                p.segments.iter().filter(|s| s.next_offset > p.remote.next_offset).map(|s| s.size).sum();
            metrics::gauge!("tierlog_upload_lag_bytes", &labels).set(lag_bytes as f64);
        }
    }
    let mut by_state =
        std::collections::BTreeMap::from([("refused", 0u32), ("damaged", 0), ("fenced", 0), ("failed", 0)]);
    for p in engine.problems() {
        *by_state.entry(p.state).or_default() += 1;
    }
    for (state, n) in by_state {
        metrics::gauge!("tierlog_unwritable_partitions", "state" => state).set(n as f64);
    }
    let handle = prometheus();
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

async fn topics(State(engine): Shared) -> Json<Vec<String>> {
    Json(engine.list_topics())
}

async fn describe(State(engine): Shared, Path(topic): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(crate::records::describe_json(&engine, &topic)?))
}

/// Compacts the topic now (as `tierlog compact`): one object per partition with what the local
/// and remote runs did.
async fn compact(State(engine): Shared, Path(topic): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let done = engine.compact(&topic, None, None).await?;
    let parts: Vec<_> = done
        .iter()
        .map(|d| {
            json!({
                "partition": d.partition,
                "local": crate::records::report_json(&d.local),
                "remote": crate::records::report_json(&d.remote),
            })
        })
        .collect();
    Ok(Json(json!({ "topic": topic, "partitions": parts })))
}

/// Overlays `given` on `base`: objects merge key by key, anything else replaces.
fn merge_json(base: &mut serde_json::Value, given: serde_json::Value) {
    match (base, given) {
        (serde_json::Value::Object(b), serde_json::Value::Object(g)) => {
            for (k, v) in g {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

async fn create(State(engine): Shared, Path(topic): Path<String>, body: Bytes) -> ApiResult<Response> {
    let defaults = &engine.config().topic_defaults;
    let config: TopicConfig = if body.iter().all(u8::is_ascii_whitespace) {
        defaults.clone()
    } else {
        let bad = |e: String| ApiError::bad_request("invalid", format!("topic config: {e}"));
        if !crate::records::is_json_object(&body) {
            return Err(bad("give a JSON object of settings (or nothing, for [topic_defaults])".into()));
        }
        let given: serde_json::Value = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
        // What the body leaves out comes from [topic_defaults], field by field.
        let mut merged = serde_json::to_value(defaults).expect("invariant: topic config serialises");
        merge_json(&mut merged, given);
        serde_json::from_value(merged).map_err(|e| bad(e.to_string()))?
    };
    engine.create_topic(&topic, config.clone()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "created": topic, "config": config }))).into_response())
}

#[derive(Debug, Deserialize)]
struct ProduceQuery {
    partition: Option<u32>,
    compression: Option<String>,
}

async fn produce_records(
    State(engine): Shared,
    Path(topic): Path<String>,
    Query(q): Query<ProduceQuery>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let text =
        std::str::from_utf8(&body).map_err(|e| ApiError::bad_request("invalid", format!("body is not UTF-8: {e}")))?;
    // Every line is checked, its size against the topic's batch limit too, before anything is
    // appended.
    const BATCH_BYTES: usize = 1 << 20;
    let limit = crate::ingest::record_limit(&engine, &topic)?;
    let now = engine.clock().now_ms();
    for (n, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            crate::ingest::parse_line(line, now, limit)
                .map_err(|e| ApiError::bad_request("invalid_record", format!("line {}: {e:#}", n + 1)))?;
        }
    }
    let compression = match q.compression.as_deref() {
        None => Compression::None,
        Some(c) => parse_compression(c).map_err(|e| ApiError::bad_request("invalid", e))?,
    };
    let args = ProduceOptions {
        topic,
        partition: q.partition,
        batch_records: 1000,
        batch_bytes: BATCH_BYTES,
        compression,
        in_flight: 16,
    };
    let summary = produce(&engine, &args, std::io::Cursor::new(body.as_ref())).await?;
    Ok(Json(serde_json::to_value(summary).map_err(|e| ApiError::bad_request("invalid", e.to_string()))?))
}

#[derive(Debug, Deserialize)]
struct RangeQuery {
    partition: Option<u32>,
    from_offset: Option<i64>,
    from_time: Option<String>,
    to_offset: Option<i64>,
    to_time: Option<String>,
    merge: Option<String>,
    max_records: Option<u64>,
    wait_ms: Option<u64>,
}

/// The longest `wait_ms` a records request may ask for.
const MAX_WAIT_MS: u64 = 300_000;

fn time_param(name: &'static str, v: &Option<String>) -> ApiResult<Option<i64>> {
    v.as_deref()
        .map(|s| {
            parse_time(s).ok_or_else(|| {
                ApiError::bad_request("invalid", format!("{name}={s:?}: use ms since the epoch or RFC 3339"))
            })
        })
        .transpose()
}

/// A stream of JSON lines as a chunked response body; an error after the first line ends the
/// stream with a last line `{"error": {...}}`.
fn json_lines<S>(lines: S) -> Response
where
    S: futures::Stream<Item = std::result::Result<serde_json::Value, Error>> + Send + 'static,
{
    let body = lines.map(|item| {
        let mut line = match item {
            Ok(v) => serde_json::to_vec(&v).expect("invariant: JSON values serialise"),
            Err(e) => {
                let api = ApiError::from(e);
                serde_json::to_vec(&json!({ "error": { "code": api.code, "message": api.message } }))
                    .expect("invariant: JSON values serialise")
            }
        };
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
}

async fn replay(State(engine): Shared, Path(topic): Path<String>, Query(q): Query<RangeQuery>) -> ApiResult<Response> {
    if q.from_offset.is_some() && q.from_time.is_some() || q.to_offset.is_some() && q.to_time.is_some() {
        return Err(ApiError::bad_request("invalid", "give an offset or a time for each end, not both"));
    }
    let merge = match q.merge.as_deref() {
        None | Some("sequential") => Merge::Sequential,
        Some("time") => Merge::ByTime,
        Some(m) => return Err(ApiError::bad_request("invalid", format!("merge={m:?}: use `time` or `sequential`"))),
    };
    let range = crate::records::Range {
        partition: q.partition,
        from_offset: q.from_offset,
        from_time: time_param("from_time", &q.from_time)?,
        to_offset: q.to_offset,
        to_time: time_param("to_time", &q.to_time)?,
    };
    if let Some(wait) = q.wait_ms {
        // Tailing: hold the request until a partition has a record at or past `from_offset`.
        let Some(from) = q.from_offset else {
            return Err(ApiError::bad_request("invalid", "wait_ms needs from_offset (the offset to wait for)"));
        };
        if wait > MAX_WAIT_MS {
            return Err(ApiError::bad_request("invalid", format!("wait_ms={wait}: at most {MAX_WAIT_MS}")));
        }
        let all = engine.partition_count(&topic)?;
        let parts: Vec<u32> = q.partition.map_or_else(|| (0..all).collect(), |p| vec![p]);
        let targets: Vec<(&str, u32, i64)> = parts.iter().map(|&p| (topic.as_str(), p, from)).collect();
        engine.wait_for_any(&targets, wait).await?;
    }
    let mut spec = range.replay_spec();
    spec.merge = merge;
    // Errors in the request (unknown topic, offsets out of range) come back as a status.
    let replay = engine.replay(&topic, spec).await?;
    let limit = q.max_records.unwrap_or(u64::MAX) as usize;
    Ok(json_lines(replay.into_stream().take(limit).map(|r| r.map(|rec| record_to_json(&rec, Times::EpochMs)))))
}

#[derive(Debug, Deserialize)]
struct TimeQuery {
    partition: Option<u32>,
    time: String,
}

async fn offset_for_time(
    State(engine): Shared,
    Path(topic): Path<String>,
    Query(q): Query<TimeQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let spec = match q.time.as_str() {
        "earliest" => OffsetSpec::Earliest,
        "latest" => OffsetSpec::Latest,
        t => OffsetSpec::Timestamp(time_param("time", &Some(t.to_owned()))?.expect("invariant: given")),
    };
    let p = q.partition.unwrap_or(0);
    let found = engine.offset_for_time(&topic, p, spec).await?;
    Ok(Json(json!({
        "partition": p,
        "offset": found.map(|t| t.offset),
        "timestamp": found.map(|t| t.timestamp).filter(|&t| t >= 0),
    })))
}

#[derive(Debug, Deserialize)]
struct StateQuery {
    partition: Option<u32>,
    time: Option<String>,
    offset: Option<i64>,
}

async fn state(State(engine): Shared, Path(topic): Path<String>, Query(q): Query<StateQuery>) -> ApiResult<Response> {
    let at = match (time_param("time", &q.time)?, q.offset) {
        (Some(t), None) => At::Time(t),
        (None, Some(o)) => At::Offset(o),
        _ => return Err(ApiError::bad_request("invalid", "give exactly one of time= or offset=")),
    };
    let spec = StateSpec { partitions: q.partition.map(|p| vec![p]), ..StateSpec::new(at) };
    let stream = engine.state_at(&topic, spec).await?;
    let lines = futures::stream::try_unfold(stream, |mut s| async move { Ok(s.next().await?.map(|e| (e, s))) })
        .map(|r| r.map(|e| state_entry_to_json(&e, Times::EpochMs)));
    Ok(json_lines(lines))
}

async fn groups_list(State(groups): State<Arc<Coordinator>>) -> Json<serde_json::Value> {
    Json(json!(groups.list()))
}

fn group_error(group: &str, e: GroupError) -> ApiError {
    let (status, code) = match e {
        GroupError::GroupIdNotFound => (StatusCode::NOT_FOUND, "not_found"),
        GroupError::NonEmptyGroup => (StatusCode::CONFLICT, "group_not_empty"),
        GroupError::KafkaStorageError => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => (StatusCode::BAD_REQUEST, "invalid"),
    };
    let message = match e {
        GroupError::GroupIdNotFound => format!("unknown group {group:?}"),
        GroupError::NonEmptyGroup => format!("group {group:?} has members: stop its consumers first"),
        other => format!("group {group:?}: {other}"),
    };
    ApiError { status, code, message }
}

/// A group's state, members (with their assigned partitions) and committed offsets with lag.
async fn group_describe(
    State(groups): State<Arc<Coordinator>>,
    Path(group): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let d = groups.describe(&group).ok_or_else(|| group_error(&group, GroupError::GroupIdNotFound))?;
    Ok(Json(json!(d)))
}

async fn group_delete(
    State(groups): State<Arc<Coordinator>>,
    Path(group): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    groups.delete(&group).await.map_err(|e| group_error(&group, e))?;
    Ok(Json(json!({ "deleted": group })))
}

/// `POST /groups/{group}/reset-offsets`: `{"topic", "partition"?, "to_datetime" | "to_earliest"
/// | "to_latest" | "to_offset" | "shift_by" | "by_duration", "execute"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    topic: String,
    partition: Option<u32>,
    to_datetime: Option<String>,
    #[serde(default)]
    to_earliest: bool,
    #[serde(default)]
    to_latest: bool,
    to_offset: Option<i64>,
    shift_by: Option<i64>,
    by_duration: Option<String>,
    #[serde(default)]
    execute: bool,
}

impl ResetBody {
    fn target(&self) -> std::result::Result<ResetTo, String> {
        let mut targets = Vec::new();
        if let Some(t) = &self.to_datetime {
            let ms = parse_time(t).ok_or_else(|| format!("to_datetime {t:?} is not RFC 3339 or ms since the epoch"))?;
            targets.push(ResetTo::Datetime(ms));
        }
        if self.to_earliest {
            targets.push(ResetTo::Earliest);
        }
        if self.to_latest {
            targets.push(ResetTo::Latest);
        }
        if let Some(o) = self.to_offset {
            targets.push(ResetTo::Offset(o));
        }
        if let Some(n) = self.shift_by {
            targets.push(ResetTo::ShiftBy(n));
        }
        if let Some(d) = &self.by_duration {
            let d = humantime::parse_duration(d).map_err(|e| format!("by_duration {d:?}: {e} (say 30days, 12h)"))?;
            targets.push(ResetTo::ByDuration(d.as_millis().min(u64::MAX as u128) as u64));
        }
        match targets.as_slice() {
            [one] => Ok(*one),
            [] => Err("give one of to_datetime, to_earliest, to_latest, to_offset, shift_by, by_duration".into()),
            _ => Err("give only one of to_datetime, to_earliest, to_latest, to_offset, shift_by, by_duration".into()),
        }
    }
}

async fn group_reset(
    State(groups): State<Arc<Coordinator>>,
    Path(group): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    if !crate::records::is_json_object(&body) {
        return Err(ApiError::bad_request("invalid", "give a JSON object: {\"topic\", \"to_...\", \"execute\"}"));
    }
    let b: ResetBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid", e.to_string()))?;
    let to = b.target().map_err(|e| ApiError::bad_request("invalid", e))?;
    let rows = groups.reset_offsets(&group, &b.topic, b.partition, to, b.execute).await?;
    Ok(Json(json!({ "group": group, "executed": b.execute, "offsets": rows })))
}
