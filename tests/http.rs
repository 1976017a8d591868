//! The HTTP/JSON API over loopback with a real HTTP client: produce, read by offset and time
//! range (streamed JSON lines), offset for time, state at a time, topics, health, metrics, and
//! bad requests (4xx with a JSON code and message).

mod common;

use common::config;
use tierlog::Engine;

struct Server {
    base: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    engine: Engine,
}

async fn start(engine: Engine) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(tierlog::server::serve(engine.clone(), listener, async move {
        let _ = rx.await;
    }));
    Server { base, client: reqwest::Client::new(), stop: Some(tx), task, engine }
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<String>) -> (u16, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
    async fn get(&self, path: &str) -> (u16, String) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.call(reqwest::Method::POST, path, Some(body.to_owned())).await
    }
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.engine.close().await.unwrap();
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().map(json).collect()
}

fn error_code(status: u16, body: &str) -> (u16, String) {
    let v = json(body);
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, v["code"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).await.unwrap();
    let s = start(engine).await;

    let (st, body) = s.get("/health").await;
    assert_eq!((st, json(&body)["status"].as_str()), (200, Some("ok")));
    let (st, _) = s.post("/topics/acct", r#"{"partitions": 2, "log": {"segment_bytes": 4096}}"#).await;
    assert_eq!(st, 201);
    assert_eq!(json(&s.get("/topics").await.1), serde_json::json!(["acct"]));

    // Produce: 300 records over two keys' worth of accounts, timestamps 1000, 1010, ...
    let body: String = (0..300)
        .map(|i| format!("{{\"key\":\"acct-{}\",\"value\":\"{i}\",\"timestamp\":{}}}\n", i % 9, 1000 + 10 * i))
        .collect();
    let (st, out) = s.post("/topics/acct/records?compression=zstd", &body).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(json(&out)["records"], 300);

    // Everything back, streamed as JSON lines, merged by time.
    let (st, out) = s.get("/topics/acct/records?merge=time").await;
    assert_eq!(st, 200);
    let all = lines(&out);
    assert_eq!(all.len(), 300);
    let ts: Vec<i64> = all.iter().map(|v| v["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(ts, (0..300).map(|i| 1000 + 10 * i).collect::<Vec<_>>());
    // A time range of one partition, and read by offset.
    let (_, out) = s.get("/topics/acct/records?partition=0&from_time=1500&to_time=2000").await;
    let part: Vec<_> = lines(&out);
    assert!(!part.is_empty() && part.iter().all(|v| v["partition"] == 0));
    assert!(part.iter().all(|v| (1500..2000).contains(&v["timestamp"].as_i64().unwrap())));
    let (_, out) = s.get("/topics/acct/records?partition=1&from_offset=3&max_records=2").await;
    let two = lines(&out);
    assert_eq!(two.iter().map(|v| v["offset"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 4]);
    // Offset for time.
    let (_, out) = s.get("/topics/acct/offset-for-time?partition=0&time=1500").await;
    let found = json(&out);
    assert!(found["timestamp"].as_i64().unwrap() >= 1500, "{out}");
    let (_, out) = s.get("/topics/acct/offset-for-time?partition=0&time=latest").await;
    assert!(json(&out)["offset"].as_i64().unwrap() > 0);
    // State as of a time: the last value of each account before 2000 (records 0..100).
    let (st, out) = s.get("/topics/acct/state?time=2000").await;
    assert_eq!(st, 200);
    let state = lines(&out);
    assert_eq!(state.len(), 9);
    for v in &state {
        let acct: i64 = v["key"].as_str().unwrap().trim_start_matches("acct-").parse().unwrap();
        let last = (0..100).filter(|i| i % 9 == acct).max().unwrap();
        assert_eq!(v["value"].as_str().unwrap(), last.to_string());
    }
    // Compaction on request: a compact topic keeps the latest record per key, state unchanged.
    let (st, _) = s
        .post(
            "/topics/ledger",
            r#"{"cleanup_policy": "compact", "log": {"segment_bytes": 4096}, "compaction": {"min_dirty_ratio": 0.0}}"#,
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s.post("/topics/ledger/records", &body).await;
    assert_eq!(st, 200);
    let before = s.get("/topics/ledger/state?offset=299").await.1;
    let (st, out) = s.post("/topics/ledger/compact", "").await;
    assert_eq!(st, 200, "{out}");
    let done = json(&out);
    assert!(done["partitions"][0]["remote"]["records_removed"].as_u64().unwrap() > 200, "{out}");
    assert_eq!(s.get("/topics/ledger/state?offset=299").await.1, before);
    let (st, b) = s.post("/topics/nope/compact", "").await;
    assert_eq!(error_code(st, &b), (404, "not_found".into()));
    // Describe and metrics.
    let d = json(&s.get("/topics/acct").await.1);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 2);
    let (st, m) = s.get("/metrics").await;
    assert_eq!(st, 200);
    for name in [
        "tierlog_append_records_total",
        "tierlog_local_bytes",
        "tierlog_upload_lag_offsets",
        "tierlog_append_seconds",
        "tierlog_compaction_records_removed_total",
        "tierlog_compaction_bytes_in_total",
    ] {
        assert!(m.contains(name), "/metrics lacks {name}");
    }

    // Bad requests: 4xx with a JSON code and message, and nothing changed.
    let before = s.engine.describe_topic("acct").unwrap().partitions.iter().map(|p| p.high_watermark).sum::<i64>();
    let bad = "{\"key\":\"a\",\"value\":\"1\"}\nnot json\n";
    let (st, b) = s.post("/topics/acct/records", bad).await;
    assert_eq!(error_code(st, &b), (400, "invalid_record".into()));
    let after = s.engine.describe_topic("acct").unwrap().partitions.iter().map(|p| p.high_watermark).sum::<i64>();
    assert_eq!(before, after, "a bad line appends nothing");
    let (st, b) = s.get("/topics/nope/records").await;
    assert_eq!(error_code(st, &b), (404, "not_found".into()));
    let (st, b) = s.get("/topics/acct/records?partition=9").await;
    assert_eq!(error_code(st, &b), (404, "not_found".into()));
    let (st, b) = s.get("/topics/acct/records?from_offset=99999&partition=0").await;
    assert_eq!(error_code(st, &b), (416, "offset_out_of_range".into()));
    let (st, b) = s.get("/topics/acct/records?from_time=yesterday").await;
    assert_eq!(error_code(st, &b), (400, "invalid".into()));
    let (st, b) = s.get("/topics/acct/state").await;
    assert_eq!(error_code(st, &b), (400, "invalid".into()));
    let (st, b) = s.post("/topics/bad%20name", "").await;
    assert_eq!(error_code(st, &b), (400, "invalid".into()));
    let (st, b) = s.post("/topics/acct", "").await;
    assert_eq!(error_code(st, &b), (409, "topic_exists".into()));
    let (st, b) = s.post("/topics/x", "{\"partitions\": \"many\"}").await;
    assert_eq!(error_code(st, &b), (400, "invalid".into()));
    let (st, _) = s.get("/topics/acct/records?merge=sideways").await;
    assert_eq!(st, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_wait_ms_tail_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let clock = tierlog::ManualClock::new(1_700_000_000_000);
    let engine = Engine::open_with_clock(config(dir.path()), clock.clone()).await.unwrap();
    let s = std::sync::Arc::new(start(engine).await);
    let (st, _) = s.post("/topics/tail", r#"{"partitions": 2}"#).await;
    assert_eq!(st, 201);
    let t0 = tierlog::Clock::now_ms(&*clock);

    // A request for offset 0 of an empty partition waits (on the engine's clock) for data...
    let tail = {
        let s = s.clone();
        tokio::spawn(async move { s.get("/topics/tail/records?partition=1&from_offset=0&wait_ms=61234").await })
    };
    clock.until_deadline(t0 + 61_234).await;
    assert!(!tail.is_finished());
    // ... and answers as soon as a produce lands there, with the new records.
    let body: String = (0..3).map(|i| format!("{{\"key\":\"k\",\"value\":\"{i}\"}}\n")).collect();
    let (st, out) = s.post("/topics/tail/records?partition=1", &body).await;
    assert_eq!(st, 200, "{out}");
    let (st, out) = tail.await.unwrap();
    assert_eq!(st, 200);
    let got = lines(&out);
    assert_eq!(got.iter().map(|v| v["value"].as_str().unwrap()).collect::<Vec<_>>(), ["0", "1", "2"]);

    // Nothing comes: the request answers empty once wait_ms has passed.
    let quiet = {
        let s = s.clone();
        tokio::spawn(async move { s.get("/topics/tail/records?partition=1&from_offset=3&wait_ms=1234").await })
    };
    clock.until_deadline(t0 + 1234).await;
    clock.advance(1233);
    assert!(!quiet.is_finished());
    clock.advance(1);
    assert_eq!(quiet.await.unwrap(), (200, String::new()));

    // Data already there: no wait at all. And wait_ms needs from_offset, within its bound.
    let (st, out) = s.get("/topics/tail/records?partition=1&from_offset=1&wait_ms=60000").await;
    assert_eq!((st, lines(&out).len()), (200, 2));
    let (st, b) = s.get("/topics/tail/records?wait_ms=10").await;
    assert_eq!(error_code(st, &b), (400, "invalid".into()));
    let (st, b) = s.get("/topics/tail/records?from_offset=0&wait_ms=300001").await;
    assert_eq!(error_code(st, &b), (400, "invalid".into()));
    std::sync::Arc::into_inner(s).unwrap().stop().await;
}

#[tokio::test]
async fn a_topic_holding_timestamps_past_year_9999_is_described_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(Engine::open(config(dir.path())).await.unwrap()).await;
    assert_eq!(s.post("/topics/far", r#"{"partitions": 1}"#).await.0, 201);
    let body = format!(
        "{{\"key\":\"k\",\"value\":\"a\",\"timestamp\":{}}}\n{{\"key\":\"k\",\"value\":\"b\",\"timestamp\":253402300800000}}\n",
        i64::MAX
    );
    let (st, out) = s.post("/topics/far/records", &body).await;
    assert_eq!(st, 200, "{out}");
    // Described (the newest timestamp as its number, not a date), again and again.
    for _ in 0..2 {
        let (st, out) = s.get("/topics/far").await;
        assert_eq!(st, 200, "{out}");
        assert_eq!(json(&out)["partitions"][0]["newest_timestamp"], i64::MAX.to_string(), "{out}");
    }
    let (st, out) = s.get("/topics/far/records?partition=0").await;
    assert_eq!(st, 200, "{out}");
    let got: Vec<i64> = lines(&out).iter().map(|r| r["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(got, [i64::MAX, 253_402_300_800_000]);
    s.stop().await;
}

#[tokio::test]
async fn json_that_is_not_an_object_is_refused_and_a_partial_topic_config_takes_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.topic_defaults.partitions = 3;
    cfg.topic_defaults.log.segment_ms = 60_000;
    let s = start(Engine::open(cfg).await.unwrap()).await;
    // An array is not a topic config (serde would read it as a struct of defaults).
    for body in ["[1]", "[]", "3", "\"x\""] {
        let (st, out) = s.post("/topics/arr", body).await;
        assert_eq!(error_code(st, &out), (400, "invalid".into()), "{body}: {out}");
    }
    assert_eq!(json(&s.get("/topics").await.1), serde_json::json!([]), "nothing was created");

    // What a partial body leaves out comes from [topic_defaults], nested fields too.
    let (st, out) = s.post("/topics/part", r#"{"log": {"segment_bytes": 8192}}"#).await;
    assert_eq!(st, 201, "{out}");
    let c = &json(&s.get("/topics/part").await.1)["config"];
    assert_eq!((c["partitions"].as_u64(), c["log"]["segment_bytes"].as_u64()), (Some(3), Some(8192)), "{c}");
    assert_eq!(c["log"]["segment_ms"], 60_000, "{c}");

    // An array is not a record either: `[]` would have been a keyless tombstone.
    for body in ["[]\n", "{\"key\":\"k\",\"value\":\"v\"}\n[]\n", "7\n"] {
        let (st, out) = s.post("/topics/part/records", body).await;
        assert_eq!(error_code(st, &out).0, 400, "{body}: {out}");
    }
    let (_, out) = s.get("/topics/part").await;
    let ends: Vec<i64> =
        json(&out)["partitions"].as_array().unwrap().iter().map(|p| p["high_watermark"].as_i64().unwrap()).collect();
    assert_eq!(ends, [0, 0, 0], "nothing appended: {out}");
    // Nor is it a reset request.
    let (st, out) = s.post("/groups/g/reset-offsets", "[]").await;
    assert_eq!(error_code(st, &out), (400, "invalid".into()), "{out}");
    s.stop().await;
}

#[tokio::test]
async fn produce_answers_per_partition_ranges_and_refuses_an_oversized_record_before_appending_anything() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(Engine::open(config(dir.path())).await.unwrap()).await;
    assert_eq!(s.post("/topics/t", r#"{"partitions": 3, "log": {"max_batch_bytes": 4096}}"#).await.0, 201);
    let body: String = (0..40).map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{i}\"}}\n")).collect();
    let (st, out) = s.post("/topics/t/records", &body).await;
    assert_eq!(st, 200, "{out}");
    let summary = json(&out);
    let parts = summary["partitions"].as_array().unwrap();
    assert_eq!(parts.iter().map(|p| p["records"].as_u64().unwrap()).sum::<u64>(), 40, "{summary}");
    for p in parts {
        let n = p["records"].as_i64().unwrap();
        assert_eq!((p["first_offset"].as_i64(), p["last_offset"].as_i64()), (Some(0), Some(n - 1)), "{p}");
    }
    // A record too big for any batch of the topic: 400 naming the line, and nothing appended
    // (the good lines before it included).
    let big = format!("{{\"key\":\"k0\",\"value\":\"x\"}}\n{{\"key\":\"k1\",\"value\":\"{}\"}}\n", "y".repeat(8000));
    let (st, out) = s.post("/topics/t/records", &big).await;
    assert_eq!(error_code(st, &out), (400, "invalid_record".into()), "{out}");
    assert!(out.contains("line 2"), "{out}");
    let (_, d) = s.get("/topics/t").await;
    let total: i64 =
        json(&d)["partitions"].as_array().unwrap().iter().map(|p| p["high_watermark"].as_i64().unwrap()).sum();
    assert_eq!(total, 40, "nothing more appended: {d}");
    // A record over the produce's 1 MiB batch target but within the topic's limit (8 MiB by
    // default) goes alone in a batch.
    assert_eq!(s.post("/topics/wide", "").await.0, 201);
    let wide = format!("{{\"key\":\"k\",\"value\":\"{}\"}}\n", "z".repeat(2 << 20));
    let (st, out) = s.post("/topics/wide/records", &wide).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(json(&out)["records"], 1);
    s.stop().await;
}

/// Sends `request` on a fresh connection and reads the answer until the server closes it (at
/// most 10 s): (status, JSON body).
async fn raw(addr: &str, request: &[u8]) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {text:?}"));
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    (status, json(body))
}

/// Reads from `c` until the server closes it; panics if it is still open after `within`.
async fn closed_within(c: &mut tokio::net::TcpStream, within: std::time::Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match tokio::time::timeout(within, c.read_to_end(&mut out)).await {
        Ok(_) => out, // EOF, or a reset: closed either way
        Err(_) => panic!("the connection is still open after {within:?}"),
    }
}

/// Every error the HTTP stack itself answers (no route, wrong method, a query, path or body the
/// extractors refuse, a body over the limit, a URI or head too long, a request that is not
/// HTTP) is the API's `{"code", "message"}`; idle and trickling connections are closed, a slow
/// body gets 408, and a connection over the cap gets 503 while the others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_and_idle_slow_or_surplus_connections_are_cut_off() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.http = tierlog::config::HttpConfig {
        max_connections: 6,
        idle_timeout_ms: 1000,
        body_timeout_ms: 1000,
        max_head_bytes: 1 << 20,
    };
    let engine = Engine::open(cfg).await.unwrap();
    let s = start(engine).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    assert_eq!(s.post("/topics/t", "").await.0, 201);

    for (method, path, status, code) in [
        (reqwest::Method::GET, "/nope", 404, "not_found"),
        (reqwest::Method::DELETE, "/topics", 405, "method_not_allowed"),
        (reqwest::Method::PUT, "/topics/t/records", 405, "method_not_allowed"),
        (reqwest::Method::GET, "/topics/t/records?partition=x", 400, "invalid"),
        (reqwest::Method::GET, "/topics/t/records?max_records=-1", 400, "invalid"),
        (reqwest::Method::GET, "/topics/%FF%FE", 400, "invalid"),
        (reqwest::Method::GET, "/topics/t/state?time=never", 400, "invalid"),
    ] {
        let (st, body) = s.call(method.clone(), path, None).await;
        assert_eq!(error_code(st, &body), (status, code.to_owned()), "{method} {path}: {body}");
    }
    let too_large = b"POST /topics/t/records HTTP/1.1\r\nhost: a\r\ncontent-length: 100000000\r\n\r\n";
    let (st, body) = raw(&addr, too_large).await;
    assert_eq!((st, body["code"].as_str()), (413, Some("too_large")), "{body}");
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: a\r\n\r\n", "a".repeat(70_000));
    let (st, body) = raw(&addr, long_uri.as_bytes()).await;
    assert_eq!((st, body["code"].as_str()), (414, Some("uri_too_long")), "{body}");
    let many_headers =
        format!("GET /health HTTP/1.1\r\n{}\r\n", (0..150).map(|i| format!("x-h{i}: v\r\n")).collect::<String>());
    let (st, body) = raw(&addr, many_headers.as_bytes()).await;
    assert_eq!((st, body["code"].as_str()), (431, Some("headers_too_large")), "{body}");
    let (st, body) = raw(&addr, b"HELLO THERE\r\n\r\n").await;
    assert_eq!((st, body["code"].as_str()), (400, Some("invalid")), "{body}");

    // A slow body: 10 of 100 bytes, then nothing.
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(b"POST /topics/t/records HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n{\"value\":").await.unwrap();
    let answer = String::from_utf8(closed_within(&mut c, Duration::from_secs(5)).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("\"code\":\"timeout\""), "{answer}");
    assert!(s.get("/topics/t/records").await.1.is_empty(), "nothing of it was appended");

    // Idle, and trickling a request head a byte at a time: both closed after the idle timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let trickling = tokio::spawn(async move {
        for b in b"GET /health HTTP/1.1\r\nhost: a\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).await.is_err() {
                return true;
            }
            #[allow(clippy::disallowed_methods)] // a real client, trickling in real time
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await.is_empty());
    assert!(trickling.await.unwrap(), "the trickling connection was closed while it trickled");

    // The cap: 6 connections held open, a 7th is refused with 503; once they go, it is served.
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let (st, body) = raw(&addr, b"GET /health HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert_eq!((st, body["code"].as_str()), (503, Some("unavailable")), "{body}");
    for mut c in held {
        closed_within(&mut c, Duration::from_secs(5)).await;
    }
    assert_eq!(s.get("/health").await.0, 200);
    s.stop().await;
}

/// `/health` says more than ok: tiering that stopped (200 `warning`, with each partition's
/// error) and a disk below `min_free_disk_bytes` (503 `degraded`), beside the free space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_stopped_tiering_and_a_full_disk() {
    use std::sync::Arc;
    use tierlog::remote::faulty::{Faults, FaultyStore};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.tiering.upload_attempts = 1;
    let store = cfg.object_store().build().unwrap();
    let faulty = Arc::new(FaultyStore::new(store, Faults::default()));
    let engine = Engine::open_with_store(cfg.clone(), tierlog::clock::system_clock(), faulty.clone()).await.unwrap();
    let s = start(engine.clone()).await;
    let (st, body) = s.get("/health").await;
    let h = json(&body);
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")), "{body}");
    assert!(h["disk"]["free_bytes"].as_u64().unwrap() > 0 && h["disk"]["full"] == false, "{body}");

    assert_eq!(s.post("/topics/t", "").await.0, 201);
    assert_eq!(s.post("/topics/t/records", "{\"value\":\"a\"}\n").await.0, 200);
    faulty.set(Faults { fail_writes_containing: Some("/segments/".into()), ..Default::default() });
    engine.roll("t", 0).await.unwrap();
    assert!(engine.tier_now("t", 0).await.is_err());
    let (st, body) = s.get("/health").await;
    let h = json(&body);
    assert_eq!((st, h["status"].as_str()), (200, Some("warning")), "{body}");
    assert_eq!(h["tiering"][0]["topic"], "t", "{body}");
    assert!(h["tiering"][0]["reason"].as_str().unwrap().contains("injected fault"), "{body}");
    // The bucket works again: the next pass clears it.
    faulty.set(Faults::default());
    engine.tier_now("t", 0).await.unwrap();
    assert_eq!(json(&s.get("/health").await.1)["status"], "ok");
    s.stop().await;

    cfg.min_free_disk_bytes = u64::MAX;
    let s = start(Engine::open(cfg).await.unwrap()).await;
    let (st, body) = s.get("/health").await;
    let h = json(&body);
    assert_eq!(
        (st, h["status"].as_str(), &h["disk"]["full"]),
        (503, Some("degraded"), &serde_json::json!(true)),
        "{body}"
    );
    s.stop().await;
}
