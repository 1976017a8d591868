//! The `tierlog` binary end to end: topics, produce (text, binary, headers, times), consume by
//! offset and time range, offset-for-time, inspect, bad input, and the demo.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tierlog(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn produce_consume_roundtrip_and_time_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tierlog(d, &["topic", "create", "orders", "--partitions", "2", "--segment-bytes", "4096"], None));
    assert_eq!(ok(tierlog(d, &["topic", "list"], None)).trim(), "orders");

    let mut input = String::new();
    for i in 0..300 {
        let ts = 1_767_571_200_000i64 + i * 60_000; // a record a minute from 2026-01-05
        input.push_str(&format!(
            "{{\"key\":\"k{}\",\"value\":\"order {i} é\",\"headers\":{{\"src\":\"test\"}},\"timestamp\":{ts}}}\n",
            i % 4
        ));
    }
    input.push_str("{\"key_b64\":\"gICA\",\"value_b64\":\"/wD+\",\"timestamp\":\"2026-01-06T00:00:00Z\"}\n");
    input.push_str("{\"key\":\"k0\",\"timestamp\":\"2026-01-06T00:00:01Z\"}\n"); // a tombstone
    let summary: serde_json::Value = serde_json::from_str(&ok(tierlog(
        d,
        &["produce", "orders", "--partition", "1", "--batch-records", "25", "--compression", "zstd"],
        Some(&input),
    )))
    .unwrap();
    assert_eq!(summary["records"], 302);
    assert_eq!(
        summary["partitions"],
        serde_json::json!([{"partition": 1, "records": 302, "first_offset": 0, "last_offset": 301}])
    );

    let all = json_lines(&ok(tierlog(d, &["consume", "orders", "--partition", "1"], None)));
    assert_eq!(all.len(), 302);
    assert_eq!(all[7]["value"], "order 7 é");
    assert_eq!(all[7]["headers"][0]["value"], "test");
    assert_eq!(all[300]["key_b64"], "gICA");
    assert_eq!(all[300]["value_b64"], "/wD+");
    assert!(all[301]["value"].is_null());
    assert!(all.iter().enumerate().all(|(i, r)| r["offset"] == i as i64));

    // Output can be fed back to produce unchanged.
    let again: String = all
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("partition");
            r.as_object_mut().unwrap().remove("offset");
            format!("{r}\n")
        })
        .collect();
    ok(tierlog(d, &["produce", "orders", "--partition", "0"], Some(&again)));
    let copy = json_lines(&ok(tierlog(d, &["consume", "orders", "--partition", "0"], None)));
    for (a, b) in all.iter().zip(&copy) {
        assert_eq!(
            (&a["key"], &a["value"], &a["key_b64"], &a["timestamp"]),
            (&b["key"], &b["value"], &b["key_b64"], &b["timestamp"])
        );
    }

    // Time range [00:10, 00:20) on 2026-01-05 holds records 10..20.
    let range = json_lines(&ok(tierlog(
        d,
        &[
            "consume",
            "orders",
            "--partition",
            "1",
            "--from-time",
            "2026-01-05T00:10:00Z",
            "--to-time",
            "2026-01-05T00:20:00Z",
        ],
        None,
    )));
    assert_eq!(range.iter().map(|r| r["offset"].as_i64().unwrap()).collect::<Vec<_>>(), (10..20).collect::<Vec<_>>());
    let range = json_lines(&ok(tierlog(
        d,
        &["consume", "orders", "--partition", "1", "--from-offset", "295", "--to-offset", "298"],
        None,
    )));
    assert_eq!(range.len(), 3);
    let limited = json_lines(&ok(tierlog(d, &["consume", "orders", "--max-records", "5"], None)));
    assert_eq!(limited.len(), 5);

    let t: serde_json::Value = serde_json::from_str(&ok(tierlog(
        d,
        &["offset-for-time", "orders", "--partition", "1", "--time", "2026-01-05T01:00:30Z"],
        None,
    )))
    .unwrap();
    assert_eq!((t["offset"].as_i64(), t["timestamp"].as_str()), (Some(61), Some("2026-01-05T01:01:00.000Z")));
    let t: serde_json::Value = serde_json::from_str(&ok(tierlog(
        d,
        &["--epoch-ms", "offset-for-time", "orders", "--partition", "1", "--time", "2026-01-05T01:00:30Z"],
        None,
    )))
    .unwrap();
    assert_eq!((t["offset"].as_i64(), t["timestamp"].as_i64()), (Some(61), Some(1_767_571_200_000 + 61 * 60_000)));
    // Record times print as RFC 3339 by default, as ms since the epoch with --epoch-ms.
    assert_eq!(all[1]["timestamp"], "2026-01-05T00:01:00.000Z");
    let ms = json_lines(&ok(tierlog(
        d,
        &["consume", "orders", "--partition", "1", "--epoch-ms", "--max-records", "2"],
        None,
    )));
    assert_eq!(ms[1]["timestamp"], 1_767_571_200_000i64 + 60_000);
    let t: serde_json::Value = serde_json::from_str(&ok(tierlog(
        d,
        &["offset-for-time", "orders", "--partition", "1", "--time", "latest"],
        None,
    )))
    .unwrap();
    assert_eq!(t["offset"], 302);
    let t: serde_json::Value = serde_json::from_str(&ok(tierlog(
        d,
        &["offset-for-time", "orders", "--partition", "1", "--time", "2030-01-01T00:00:00Z"],
        None,
    )))
    .unwrap();
    assert!(t["offset"].is_null());

    let desc: serde_json::Value =
        serde_json::from_str(&ok(tierlog(d, &["topic", "describe", "orders"], None))).unwrap();
    assert_eq!(desc["partitions"][1]["high_watermark"], 302);
    assert!(desc["partitions"][0]["segments"].as_i64().unwrap() > 1, "{desc}");

    // inspect: every batch with CRC ok, for a partition folder and for a single segment.
    let out = ok(tierlog(d, &["inspect", "--batches", d.join("orders-1").to_str().unwrap()], None));
    let lines = json_lines(&out);
    assert!(lines.iter().filter(|l| l.get("crc").is_some()).all(|l| l["crc"] == "ok" && l["compression"] == "zstd"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.get("records").is_some() && l.get("crc").is_some())
            .map(|l| l["records"].as_i64().unwrap())
            .sum::<i64>(),
        302
    );
    // A corrupted byte shows up as a bad CRC.
    let seg = d.join("orders-1").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[100] ^= 0xff;
    let copy_path = dir.path().join("copy.log");
    std::fs::write(&copy_path, &bytes).unwrap();
    let out = ok(tierlog(d, &["inspect", copy_path.to_str().unwrap()], None));
    assert!(out.contains("\"crc\":\"BAD\""), "{out}");
}

#[test]
fn bad_input_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tierlog(d, &["topic", "create", "t"], None));
    let out =
        tierlog(d, &["produce", "t"], Some("{\"value\":\"a\"}\n{\"value\":\"b\"}\nnot json\n{\"value\":\"c\"}\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("2 records before it were appended"), "{err}");
    assert_eq!(json_lines(&ok(tierlog(d, &["consume", "t"], None))).len(), 2);

    for (args, needle) in [
        (vec!["topic", "create", "../x"], "invalid topic name"),
        (vec!["topic", "create", "t"], "already exists"),
        (vec!["topic", "create", "u", "--partitions", "0"], "partitions"),
        (vec!["topic", "create", "u", "--durability", "sometimes"], "durability"),
        (vec!["consume", "missing"], "unknown topic"),
        (vec!["consume", "t", "--partition", "3"], "no partition 3"),
        (vec!["consume", "t", "--from-offset", "99"], "out of range"),
        (vec!["consume", "t", "--from-time", "yesterday"], "RFC 3339"),
        (vec!["produce", "t", "--partition", "5"], "no partition 5"),
    ] {
        let out = tierlog(d, &args, Some(""));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{args:?}: {err}");
    }
    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(&bad_cfg, "[topic_defaults.log]\nsegment_bytes = 12\n").unwrap();
    let out = tierlog(d, &["--config", bad_cfg.to_str().unwrap(), "topic", "list"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("topic_defaults.log.segment_bytes"));

    // A syntax error on the secret's line names the key and the position, not the line.
    std::fs::write(
        &bad_cfg,
        "[object_store]\nkind = \"s3\"\nendpoint = \"https://s3.example\"\nbucket = \"b\"\n\
         secret_access_key = \"wJalrXUtnFEMI/K7MDENG\n",
    )
    .unwrap();
    let out = tierlog(d, &["--config", bad_cfg.to_str().unwrap(), "topic", "list"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("object_store.secret_access_key") && err.contains("line 5"), "{err}");
    assert!(!err.contains("wJalrXUtnFEMI"), "{err}");
}

#[test]
fn demo_runs_and_checks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = ok(tierlog(
        dir.path(),
        &["demo", "--dir", demo_dir.to_str().unwrap(), "--orders", "3000", "--days", "3"],
        None,
    ));
    assert!(out.contains("every event accounted for"), "{out}");
    assert!(out.contains("events per day"));
    assert!(out.contains("from the bucket:") && out.contains("tiered "), "{out}");
    assert!(out.contains("matches the events") && out.contains("the restored node gives the same balances"), "{out}");
    // Runs again over its own folder, but refuses a folder that is not a demo's.
    ok(tierlog(dir.path(), &["demo", "--dir", demo_dir.to_str().unwrap(), "--orders", "100", "--days", "1"], None));
    let other = dir.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("file"), "keep me").unwrap();
    let out = tierlog(dir.path(), &["demo", "--dir", other.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(other.join("file")).unwrap(), "keep me");
}

#[test]
fn tier_then_restore_into_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tierlog.toml");
    std::fs::write(
        &config,
        format!(
            "[object_store]\nkind = \"local\"\npath = {:?}\n[topic_defaults.log]\nsegment_bytes = 8192\n",
            dir.path().join("bucket")
        ),
    )
    .unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    let cfg = ["--config", config.to_str().unwrap()];
    let with = |args: &[&str]| -> Vec<String> { cfg.iter().chain(args).map(|s| s.to_string()).collect() };
    let run = |data: &Path, args: &[&str], stdin: Option<&str>| {
        let args = with(args);
        tierlog(data, &args.iter().map(String::as_str).collect::<Vec<_>>(), stdin)
    };
    ok(run(&old, &["topic", "create", "ledger", "--partitions", "2"], None));
    let lines: String = (0..3000)
        .map(|i| format!("{{\"key\":\"acct-{}\",\"value\":\"{i}\",\"timestamp\":{}}}\n", i % 7, 1000 + i))
        .collect();
    // Produced with uploads off, so every segment goes up during `topic tier`: by its own pass
    // or by the background uploader, which starts with it; either way the call reports them.
    let no_uploads = dir.path().join("no-uploads.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&no_uploads, format!("{text}[tiering]\nauto_upload = false\n")).unwrap();
    let produce = ["--config", no_uploads.to_str().unwrap(), "produce", "ledger"];
    ok(tierlog(&old, &produce, Some(&lines)));
    let tiered = json_lines(&ok(run(&old, &["topic", "tier", "ledger"], None)));
    assert_eq!(tiered.len(), 2);
    let ends: Vec<i64> = tiered.iter().map(|l| l["remote_next_offset"].as_i64().unwrap()).collect();
    assert_eq!(ends.iter().sum::<i64>(), 3000, "everything is in the bucket: {tiered:?}");
    let described =
        serde_json::from_str::<serde_json::Value>(&ok(run(&old, &["topic", "describe", "ledger"], None))).unwrap();
    for (line, p) in tiered.iter().zip(described["partitions"].as_array().unwrap()) {
        assert_eq!(line["uploaded_segments"], p["remote"]["segments"], "{line} {p}");
        assert_eq!(line["uploaded_bytes"], p["remote"]["size_bytes"], "{line} {p}");
        assert!(line["uploaded_segments"].as_u64().unwrap() > 1, "{line}");
    }

    // A fresh data dir, the same bucket: every partition comes back with its last offset.
    let restored = json_lines(&ok(run(&new, &["restore"], None)));
    assert_eq!(restored.len(), 2);
    for (p, line) in restored.iter().enumerate() {
        assert_eq!(line["topic"], "ledger");
        assert_eq!(line["next_offset"].as_i64().unwrap(), ends[p]);
        assert_eq!(line["last_restorable_offset"].as_i64().unwrap(), ends[p] - 1);
    }
    for p in ["0", "1"] {
        let a = ok(run(&old, &["consume", "ledger", "--partition", p], None));
        let b = ok(run(&new, &["consume", "ledger", "--partition", p], None));
        assert_eq!(a, b, "partition {p} reads the same from the restored data dir");
    }
    // Restore refuses a data dir that already has topics.
    let again = run(&new, &["restore"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds topics"));

    // The restored node writes and tiers: it now owns the partitions. The old node refuses to
    // write until told to take them back, and then continues the bucket's history.
    ok(run(&new, &["produce", "ledger", "--partition", "0"], Some("{\"key\":\"n\",\"value\":\"new\"}\n")));
    ok(run(&new, &["topic", "tier", "ledger"], None));
    let stale = run(&old, &["produce", "ledger", "--partition", "0"], Some("{\"key\":\"o\",\"value\":\"old\"}\n"));
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("--take-over"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    ok(run(
        &old,
        &["--take-over", "produce", "ledger", "--partition", "0"],
        Some("{\"key\":\"o\",\"value\":\"old\"}\n"),
    ));
    let values: Vec<String> = json_lines(&ok(run(&old, &["consume", "ledger", "--partition", "0"], None)))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values.len() as i64, ends[0] + 2);
    assert_eq!(&values[values.len() - 2..], ["new", "old"], "the old node continued the bucket's history");
}

#[test]
fn replay_and_state_at_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(tierlog(&data, &["topic", "create", "acct", "--partitions", "2", "--segment-bytes", "4096"], None));
    // acct-a: 10, then 25; acct-b: 7, then deleted (null value) at t=4000; acct-c: 1 at t=5000.
    let lines = [
        r#"{"key":"acct-a","value":"10","timestamp":1000}"#,
        r#"{"key":"acct-b","value":"7","timestamp":2000}"#,
        r#"{"key":"acct-a","value":"25","timestamp":3000}"#,
        r#"{"key":"acct-b","value":null,"timestamp":4000}"#,
        r#"{"key":"acct-c","value":"1","timestamp":5000}"#,
    ];
    for l in lines {
        // acct-a and acct-c to partition 0, acct-b to partition 1, in this order.
        let p = if l.contains("acct-b") { "1" } else { "0" };
        ok(tierlog(&data, &["produce", "acct", "--partition", p], Some(&format!("{l}\n"))));
    }
    let state = |args: &[&str]| -> Vec<(String, String)> {
        json_lines(&ok(tierlog(&data, &[&["state-at", "acct"], args].concat(), None)))
            .iter()
            .map(|v| (v["key"].as_str().unwrap().to_owned(), v["value"].as_str().unwrap().to_owned()))
            .collect()
    };
    let s = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(state(&["--time", "2500"]), s(&[("acct-a", "10"), ("acct-b", "7")]));
    assert_eq!(
        state(&["--time", "4000"]),
        s(&[("acct-a", "25"), ("acct-b", "7")]),
        "as of t excludes records stamped t"
    );
    assert_eq!(state(&["--time", "4001"]), s(&[("acct-a", "25")]), "the tombstone deleted acct-b");
    assert_eq!(state(&["--time", "1970-01-01T00:00:10Z"]), s(&[("acct-a", "25"), ("acct-c", "1")]));
    assert_eq!(state(&["--offset", "0", "--partition", "0"]), s(&[("acct-a", "10")]));
    // Replay merged by time interleaves the partitions by timestamp.
    let merged = json_lines(&ok(tierlog(&data, &["replay", "acct", "--merge-by-time", "--epoch-ms"], None)));
    let ts: Vec<i64> = merged.iter().map(|v| v["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(ts, [1000, 2000, 3000, 4000, 5000]);
    let seq = json_lines(&ok(tierlog(
        &data,
        &["replay", "acct", "--from-time", "2000", "--to-time", "5000", "--epoch-ms"],
        None,
    )));
    let ts: Vec<i64> = seq.iter().map(|v| v["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(ts, [3000, 2000, 4000], "partition 0 then partition 1, each from offset_for_time(2000)");
    // Bad requests fail clearly.
    let out = tierlog(&data, &["state-at", "acct"], None);
    assert!(!out.status.success());
    let out = tierlog(&data, &["state-at", "nope", "--time", "5"], None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unknown topic"));
}

/// Starts `tierlog <args> serve` on a free loopback port; returns the process and its address.
fn serve(args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .args(args)
        .args(["serve", "--listen", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let addr = serde_json::from_str::<serde_json::Value>(&first).unwrap()["listening"].as_str().unwrap().to_owned();
    (child, addr)
}

/// One HTTP/1.1 request over a fresh connection; the whole response as text.
fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn serve_answers_http_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(tierlog(&data, &["topic", "create", "t"], None));
    let (mut child, addr) = serve(&["--data-dir", data.to_str().unwrap()]);
    let get = |path: &str| http(&addr, "GET", path, "");
    let health = get("/health");
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"status\":\"ok\""), "{health}");
    assert!(get("/topics/nope").starts_with("HTTP/1.1 404"));
    // SIGTERM: the server drains and the engine closes cleanly (exit status 0).
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    // The data dir was released: another process opens it.
    ok(tierlog(&data, &["topic", "list"], None));
}

#[test]
fn a_replica_process_serves_what_a_writer_process_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let write_cfg = dir.path().join("writer.toml");
    let replica_cfg = dir.path().join("replica.toml");
    let store = format!("[object_store]\nkind = \"local\"\npath = {bucket:?}\n");
    std::fs::write(&write_cfg, format!("{store}[topic_defaults.log]\nsegment_bytes = 8192\n")).unwrap();
    std::fs::write(&replica_cfg, format!("read_only = true\nreplica_poll_ms = 50\n{store}")).unwrap();
    let (wdata, rdata) = (dir.path().join("w"), dir.path().join("r"));
    let writer = |args: &[&str], stdin: Option<&str>| {
        tierlog(&wdata, &[&["--config", write_cfg.to_str().unwrap()], args].concat(), stdin)
    };
    let lines = |from: i64, n: i64| -> String {
        (from..from + n)
            .map(|i| format!("{{\"key\":\"k{}\",\"value\":\"v{i}\",\"timestamp\":{}}}\n", i % 5, 1000 + i))
            .collect()
    };
    ok(writer(&["topic", "create", "t"], None));
    ok(writer(&["produce", "t"], Some(&lines(0, 300))));
    ok(writer(&["topic", "tier", "t"], None));

    let (mut child, addr) = serve(&["--config", replica_cfg.to_str().unwrap(), "--data-dir", rdata.to_str().unwrap()]);
    let call = |method: &str, path: &str, body: &str| http(&addr, method, path, body);
    let latest = || {
        let r = call("GET", "/topics/t/offset-for-time?time=latest", "");
        let body = r.split("\r\n\r\n").nth(1).unwrap().to_owned();
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["offset"].as_i64().unwrap()
    };
    assert_eq!(latest(), 300);
    let records = call("GET", "/topics/t/records", "");
    assert_eq!(records.matches("\"value\":\"v").count(), 300, "{records}");

    // The writer (another process) keeps writing; the replica follows through the bucket.
    ok(writer(&["produce", "t"], Some(&lines(300, 200))));
    ok(writer(&["topic", "tier", "t"], None));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while latest() < 500 {
        assert!(std::time::Instant::now() < deadline, "the replica did not follow the writer");
        #[allow(clippy::disallowed_methods)] // waits on a real process
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let state = call("GET", "/topics/t/state?time=100000", "");
    assert!(state.contains("\"value\":\"v499\""), "{state}");
    // Writes to the replica are refused.
    let refused = call("POST", "/topics/t/records", "{\"value\":\"x\"}\n");
    assert!(refused.starts_with("HTTP/1.1 405") && refused.contains("read_only"), "{refused}");
    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn compact_from_the_command_line_and_inspect_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let create = ["topic", "create", "acc", "--cleanup-policy", "compact", "--segment-bytes", "4096"];
    ok(tierlog(&data, &[&create[..], &["--min-dirty-ratio", "0", "--merge-min-segments", "2"]].concat(), None));
    let mut lines = String::new();
    for i in 0..1500 {
        let value = if i % 97 == 3 { "null".to_string() } else { format!("\"v{i}\"") };
        lines.push_str(&format!("{{\"key\":\"k{}\",\"value\":{value},\"timestamp\":{}}}\n", i % 40, 1000 + i));
    }
    ok(tierlog(&data, &["produce", "acc"], Some(&lines)));
    let before = ok(tierlog(&data, &["state-at", "acc", "--offset", "1499"], None));
    let out = json_lines(&ok(tierlog(&data, &["compact", "acc", "--snapshot"], None)));
    assert_eq!(out.len(), 1);
    let (local, remote) = (&out[0]["local"], &out[0]["remote"]);
    assert!(local["records_removed"].as_u64().unwrap() > 1000, "{local}");
    assert!(remote["records_removed"].as_u64().unwrap() > 1000, "{remote}");
    assert!(remote["segments_merged"].as_u64().unwrap() > 0, "{remote}");
    assert!(out[0]["snapshot"]["keys"].as_u64().unwrap() > 0);
    // Same state after compaction (the active segment's records are untouched).
    assert_eq!(ok(tierlog(&data, &["state-at", "acc", "--offset", "1499"], None)), before);
    let cleaned = remote["cleaned_to"].as_i64().unwrap();
    assert!(cleaned > 0);
    // inspect shows the local and remote compaction state and the snapshot.
    let state = &json_lines(&ok(tierlog(&data, &["inspect", data.join("acc-0").to_str().unwrap()], None)))[0];
    assert_eq!(state["local_compaction"]["cleaned_to"].as_i64(), Some(cleaned), "{state}");
    assert_eq!(state["remote"]["compaction"]["cleaned_to"].as_i64(), Some(cleaned), "{state}");
    assert_eq!(state["remote"]["snapshots"].as_array().unwrap().len(), 1, "{state}");
    // Bad requests fail clearly.
    let bad = tierlog(&data, &["compact", "nope"], None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown topic"));
    let bad = tierlog(&data, &["compact", "acc", "--partition", "7"], None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no partition 7"));
    let bad = tierlog(&data, &["topic", "create", "x", "--min-dirty-ratio", "2"], None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("min_dirty_ratio"));
}

/// Every file under `dir` with its size and modification time.
fn tree(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, (u64, std::time::SystemTime)> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else {
                out.insert(e.path(), (m.len(), m.modified().unwrap()));
            }
        }
    }
    out
}

#[test]
fn read_only_commands_take_nothing_over_and_write_nothing_to_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(tierlog(&data, &["topic", "create", "acct", "--partitions", "2", "--segment-bytes", "4096"], None));
    let lines: String = (0..200)
        .map(|i| format!("{{\"key\":\"k{}\",\"value\":\"{i}\",\"timestamp\":{}}}\n", i % 9, 1000 + i))
        .collect();
    ok(tierlog(&data, &["produce", "acct"], Some(&lines)));
    ok(tierlog(&data, &["topic", "tier", "acct"], None));
    let bucket = data.join("bucket");
    let before = tree(&bucket);
    let heads: Vec<_> = before.keys().filter(|p| p.ends_with("manifest/head.json")).cloned().collect();
    assert_eq!(heads.len(), 2, "{before:?}");
    let head_text: Vec<String> = heads.iter().map(|h| std::fs::read_to_string(h).unwrap()).collect();
    let folder = data.join("acct-0");
    for args in [
        &["consume", "acct", "--partition", "0"][..],
        &["replay", "acct"],
        &["state-at", "acct", "--time", "1100"],
        &["offset-for-time", "acct", "--partition", "1", "--time", "1050"],
        &["topic", "list"],
        &["topic", "describe", "acct"],
        &["inspect", folder.to_str().unwrap()],
    ] {
        ok(tierlog(&data, args, None));
        assert_eq!(tree(&bucket), before, "`tierlog {}` changed the bucket", args.join(" "));
    }
    let after: Vec<String> = heads.iter().map(|h| std::fs::read_to_string(h).unwrap()).collect();
    assert_eq!(after, head_text, "no epoch was bumped");
    // Writing commands still take the partitions over (one epoch bump each).
    ok(tierlog(&data, &["produce", "acct"], Some("{\"key\":\"k\",\"value\":\"v\"}\n")));
    let epoch = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap()["epoch"].as_u64().unwrap();
    let bumped: Vec<String> = heads.iter().map(|h| std::fs::read_to_string(h).unwrap()).collect();
    assert_eq!(epoch(&bumped[0]), epoch(&head_text[0]) + 1);
}

#[test]
fn records_stamped_past_year_9999_or_at_the_i64_limits_are_described_inspected_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tierlog(d, &["topic", "create", "far", "--partitions", "1"], None));
    // The last millisecond RFC 3339 can write, the first it cannot, i64::MAX, and a negative one.
    let stamps = [253_402_300_799_999i64, 253_402_300_800_000, i64::MAX, -7];
    let input: String =
        stamps.iter().map(|t| format!("{{\"key\":\"k\",\"value\":\"v\",\"timestamp\":{t}}}\n")).collect();
    let summary: serde_json::Value = serde_json::from_str(&ok(tierlog(d, &["produce", "far"], Some(&input)))).unwrap();
    assert_eq!(summary["records"], 4);

    let read = json_lines(&ok(tierlog(d, &["consume", "far", "--epoch-ms"], None)));
    let got: Vec<i64> = read.iter().map(|r| r["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(got, stamps, "every timestamp read back as written");
    // By default the ones RFC 3339 can hold print as dates, the others as their number.
    let read = json_lines(&ok(tierlog(d, &["consume", "far"], None)));
    let got: Vec<String> = read.iter().map(|r| r["timestamp"].to_string()).collect();
    assert_eq!(
        got,
        ["\"9999-12-31T23:59:59.999Z\"".to_owned(), "253402300800000".into(), i64::MAX.to_string(), "-7".into()]
    );
    // The newest timestamp is i64::MAX: printed as its number, not as a date.
    let described: serde_json::Value =
        serde_json::from_str(&ok(tierlog(d, &["topic", "describe", "far"], None))).unwrap();
    assert_eq!(described["partitions"][0]["newest_timestamp"], i64::MAX.to_string(), "{described}");
    let inspected = ok(tierlog(d, &["inspect", "--batches", d.join("far-0").to_str().unwrap()], None));
    assert!(inspected.contains(&format!("\"max_timestamp\":\"{}\"", i64::MAX)), "{inspected}");
}

#[test]
fn produce_says_per_partition_where_records_went_and_stops_at_a_bad_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tierlog(d, &["topic", "create", "spread", "--partitions", "3"], None));
    let good: String = (0..30).map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{i}\"}}\n")).collect();
    let summary: serde_json::Value =
        serde_json::from_str(&ok(tierlog(d, &["produce", "spread"], Some(&good)))).unwrap();
    let read = json_lines(&ok(tierlog(d, &["consume", "spread"], None)));
    // Each partition's range is the offsets its records got.
    let parts = summary["partitions"].as_array().unwrap();
    assert!(parts.len() > 1, "{summary}");
    for p in parts {
        let mine: Vec<i64> =
            read.iter().filter(|r| r["partition"] == p["partition"]).map(|r| r["offset"].as_i64().unwrap()).collect();
        assert_eq!(p["records"].as_u64().unwrap() as usize, mine.len(), "{p}");
        assert_eq!(
            (p["first_offset"].as_i64(), p["last_offset"].as_i64()),
            (mine.first().copied(), mine.last().copied())
        );
    }

    // A bad third line: the two before it are appended, it and the rest are not.
    let input =
        "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"a\",\"value\":\"2\"}\n[]\n{\"key\":\"a\",\"value\":\"3\"}\n";
    ok(tierlog(d, &["topic", "create", "bad"], None));
    let out = tierlog(d, &["produce", "bad"], Some(input));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3") && stderr.contains("2 records before it were appended"), "{stderr}");
    let appended: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(appended["records"], 2, "{appended}");
    let p0: Vec<String> = json_lines(&ok(tierlog(d, &["consume", "bad"], None)))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(p0, ["1", "2"], "the lines after the bad one were not appended");
}

/// `tierlog consume ... | head`: the reader goes away early, and the command ends quietly with
/// success, for every command that streams records.
#[test]
fn a_reader_that_goes_away_early_ends_the_command_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(tierlog(d, &["topic", "create", "t"], None));
    let input: String = (0..20_000).map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"v{i}\"}}\n")).collect();
    ok(tierlog(d, &["produce", "t"], Some(&input)));
    for args in [
        vec!["consume", "t"],
        vec!["replay", "t"],
        vec!["replay", "t", "--merge-by-time"],
        vec!["state-at", "t", "--time", "2100-01-01T00:00:00Z"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tierlog"))
            .arg("--data-dir")
            .arg(d)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then closed, as `head` does
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.is_empty(), "{args:?}: {:?} {err}", out.status);
    }
}
