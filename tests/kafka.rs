//! The Kafka broker against real Kafka clients (kafka-python, confluent-kafka/librdkafka,
//! aiokafka), each run by `tests/kafka/*.py` against a `tierlog serve` process.

#[path = "kafka/harness.rs"]
mod harness;

use std::collections::HashMap;

use harness::{Broker, client, config_file, http_get, json_lines, local_start, tierlog};

/// Every record of a topic, from tierlog's own replay of a stopped data dir.
fn replay(data: &std::path::Path, config: &std::path::Path, topic: &str) -> Vec<serde_json::Value> {
    let d = data.display().to_string();
    let c = config.display().to_string();
    json_lines(&tierlog(&["--data-dir", &d, "--config", &c, "replay", topic]))
}

#[test]
fn the_seeds_producer_as_written_sends_to_a_topic_nobody_created_and_replay_finds_every_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), "[topic_defaults]\npartitions = 3\n");
    let broker = Broker::start(&data, Some(&config), "127.0.0.1:0");
    let out: serde_json::Value = serde_json::from_str(&client("seed_producer.py", &[&broker.kafka, "40000"])).unwrap();
    // Per-API metrics on /metrics: requests, latency, bytes in and out, connections.
    let metrics = http_get(&broker.http, "/metrics");
    for needle in [
        "tierlog_kafka_requests_total{api=\"Produce\"}",
        "tierlog_kafka_requests_total{api=\"Metadata\"}",
        "tierlog_kafka_request_seconds_count{api=\"Produce\"}",
        "tierlog_kafka_bytes_in_total",
        "tierlog_kafka_bytes_out_total",
        "tierlog_kafka_connections",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    broker.stop();
    let acks: Vec<(i64, i64)> =
        out["acks"].as_array().unwrap().iter().map(|a| (a[0].as_i64().unwrap(), a[1].as_i64().unwrap())).collect();
    assert_eq!(acks.len(), 40_000);

    let records = replay(&data, &config, "truck-locations");
    assert_eq!(records.len(), 40_000, "every event once");
    // Event i is the one stamped 1_700_000_000_000 + i s; it is where its ack said.
    let mut seen = HashMap::new();
    let mut partitions = std::collections::BTreeSet::new();
    for r in &records {
        let event: serde_json::Value = serde_json::from_str(r["value"].as_str().unwrap()).unwrap();
        for field in ["truck_id", "lat", "lng", "speed", "fuel_level", "timestamp"] {
            assert!(!event[field].is_null(), "{field} intact in {event}");
        }
        let i = (event["timestamp"].as_i64().unwrap() - 1_700_000_000_000) / 1000;
        assert_eq!(event["truck_id"], format!("truck-{:03}", i % 120));
        let at = (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap());
        partitions.insert(at.0);
        assert!(seen.insert(i, at).is_none(), "event {i} twice");
    }
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(seen.get(&(i as i64)), Some(ack), "event {i} is where its ack said");
    }
    // In send order within each partition.
    let mut last: HashMap<i64, i64> = HashMap::new();
    for &(p, offset) in &acks {
        if let Some(prev) = last.insert(p, offset) {
            assert!(offset > prev, "partition {p}: offset {offset} after {prev}");
        }
    }
    assert!(partitions.len() > 1, "the producer spread its events over the auto-created partitions");
}

#[test]
fn librdkafka_idempotent_producers_of_every_codec_and_time_travel_to_30_days_ago_reads_from_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(
        dir.path(),
        "[topic_defaults]\npartitions = 2\n[topic_defaults.log]\nsegment_bytes = 32768\nlocal_retention_bytes = 1\n",
    );
    const DAY: i64 = 86_400_000;
    let now = tierlog::clock::wall_clock_nanos() as i64 / 1_000_000;
    let t0 = now - 60 * DAY;
    let broker = Broker::start(&data, Some(&config), "127.0.0.1:0");
    let produced: serde_json::Value = serde_json::from_str(&client(
        "librdkafka_clients.py",
        &[&broker.kafka, "produce", "events", "600", &t0.to_string(), &(60 * DAY).to_string()],
    ))
    .unwrap();
    // (partition, offset) -> (timestamp, value), as acknowledged.
    let mut acked = std::collections::BTreeMap::new();
    for a in produced["acks"].as_array().unwrap() {
        let key = (a[0].as_i64().unwrap(), a[1].as_i64().unwrap());
        assert!(acked.insert(key, (a[2].as_i64().unwrap(), a[3].as_str().unwrap().to_owned())).is_none());
    }
    assert_eq!(acked.len(), 3000);
    broker.stop();

    // Tier everything sealed; local retention then drops it from the disk.
    let (d, c) = (data.display().to_string(), config.display().to_string());
    tierlog(&["--data-dir", &d, "--config", &c, "topic", "tier", "events"]);
    let broker = Broker::start(&data, Some(&config), "127.0.0.1:0");

    // Everything, from the earliest offset, as acknowledged (whatever the codec).
    assert_eq!(read_all(&broker.kafka), acked, "every record read back at its offset, with its timestamp and value");

    // "30 days ago": in each partition, the first offset stamped at or after it.
    let t = now - 30 * DAY;
    let times: serde_json::Value = serde_json::from_str(&client(
        "librdkafka_clients.py",
        &[&broker.kafka, "times", "events", &t.to_string(), "5"],
    ))
    .unwrap();
    broker.stop();
    for p in 0..2i64 {
        let expected =
            acked.iter().filter(|((q, _), (ts, _))| *q == p && *ts >= t).map(|((_, o), _)| *o).min().unwrap();
        let found = times["offsets"][p.to_string()].as_i64().unwrap();
        assert_eq!(found, expected, "partition {p}");
        assert!(found < local_start(&data, "events", p), "partition {p}: offset {found} is only in the bucket");
        let first = &times["records"][p.to_string()].as_array().unwrap()[0];
        assert_eq!(first[0].as_i64().unwrap(), found);
        assert_eq!(first[2].as_str().unwrap(), acked[&(p, found)].1, "read from the bucket, intact");
    }
}

#[test]
fn librdkafka_reads_the_hot_tier_sent_from_the_segment_files_with_sendfile() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Default segments and no local retention: everything stays on the disk.
    let config = config_file(dir.path(), "[topic_defaults]\npartitions = 2\n");
    let broker = Broker::start(&data, Some(&config), "127.0.0.1:0");
    let produced: serde_json::Value = serde_json::from_str(&client(
        "librdkafka_clients.py",
        &[&broker.kafka, "produce", "events", "1200", "1700000000000", "1000"],
    ))
    .unwrap();
    let acked: std::collections::BTreeMap<(i64, i64), (i64, String)> = produced["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                (a[0].as_i64().unwrap(), a[1].as_i64().unwrap()),
                (a[2].as_i64().unwrap(), a[3].as_str().unwrap().to_owned()),
            )
        })
        .collect();
    assert_eq!(acked.len(), 6000);
    // Batches this broker wrote were checked on the way in: a Fetch sends them out of the
    // segment files with sendfile, and librdkafka decodes every record as acknowledged.
    assert_eq!(read_all(&broker.kafka), acked, "every record read back from the hot tier");
    let sent: f64 = http_get(&broker.http, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("tierlog_kafka_bytes_sendfile_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(sent >= 16384.0, "hot Fetch answers sent with sendfile: {sent} bytes");
    broker.stop();
}

/// Every record of `events` read by librdkafka's consumer from the earliest offset:
/// (partition, offset) -> (timestamp, value), each record's key checked against its value.
fn read_all(kafka: &str) -> std::collections::BTreeMap<(i64, i64), (i64, String)> {
    let read: serde_json::Value =
        serde_json::from_str(&client("librdkafka_clients.py", &[kafka, "read", "events"])).unwrap();
    read["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r[4].as_str().unwrap()).unwrap();
            assert_eq!(r[3].as_str().unwrap(), format!("{}-{}", v["codec"].as_str().unwrap(), v["i"]));
            (
                (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()),
                (r[2].as_i64().unwrap(), r[4].as_str().unwrap().to_owned()),
            )
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn produce_responses_lost_after_the_append_are_retried_without_duplicating_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let proxy = free_port();
    let config = config_file(dir.path(), &format!("[kafka]\nadvertised_port = {proxy}\n"));
    let broker = Broker::start(&data, Some(&config), "127.0.0.1:0");
    let out: serde_json::Value =
        serde_json::from_str(&client("retry_proxy.py", &[&broker.kafka, &proxy.to_string(), "3000"])).unwrap();
    broker.stop();
    assert!(out["cuts"].as_i64().unwrap() >= 3, "the proxy cut connections after appends: {}", out["cuts"]);
    let records = replay(&data, &config, "retried");
    let values: Vec<&str> = records.iter().map(|r| r["value"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..3000).map(|i| format!("r-{i}")).collect();
    assert_eq!(values, expected, "each record once, in order, despite the retries");
    // Each ack names the offset its record is at (a retry was answered with the original offsets).
    for (i, a) in out["acks"].as_array().unwrap().iter().enumerate() {
        assert_eq!(a[1].as_i64().unwrap(), i as i64);
    }
}

#[test]
fn a_broker_killed_and_restarted_under_an_idempotent_producer_loses_no_acknowledged_record_and_writes_none_twice() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), "[topic_defaults]\npartitions = 2\n");
    let addr = format!("127.0.0.1:{}", free_port());
    let broker = Broker::start(&data, Some(&config), &addr);
    let mut producer = harness::spawn_client("steady_producer.py", &[&addr, "steady", "20000"]);
    let mut lines = std::io::BufReader::new(producer.stdout.take().unwrap()).lines();
    let mut acks: Vec<(i64, i64, String)> = Vec::new();
    let mut take = |lines: &mut dyn Iterator<Item = std::io::Result<String>>, until: usize| {
        for line in &mut *lines {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            if v.get("done").is_some() {
                return true;
            }
            acks.push((v[0].as_i64().unwrap(), v[1].as_i64().unwrap(), v[2].as_str().unwrap().to_owned()));
            if acks.len() >= until {
                return false;
            }
        }
        panic!("the producer ended without finishing");
    };
    assert!(!take(&mut lines, 5000), "killed mid-stream");
    broker.kill();
    let broker = Broker::start(&data, Some(&config), &addr);
    assert!(take(&mut lines, usize::MAX));
    assert!(producer.wait().unwrap().success());
    broker.stop();

    let records = replay(&data, &config, "steady");
    let mut at: HashMap<String, (i64, i64)> = HashMap::new();
    for r in &records {
        let v = r["value"].as_str().unwrap().to_owned();
        let pos = (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap());
        assert!(at.insert(v.clone(), pos).is_none(), "{v} written twice");
    }
    assert_eq!(acks.len(), 20_000);
    for (p, o, v) in &acks {
        assert_eq!(at.get(v), Some(&(*p, *o)), "{v} acknowledged at {p}/{o}");
    }
    assert_eq!(records.len(), 20_000);
}

#[test]
fn kafka_python_admin_creates_describes_alters_grows_and_deletes_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), None, "127.0.0.1:0");
    let out: serde_json::Value = serde_json::from_str(&client("admin_client.py", &[&broker.kafka])).unwrap();
    broker.stop();
    assert_eq!(out["exists_error"], "TopicAlreadyExistsError");
    assert_eq!(out["bad_config_error"], "InvalidConfigurationError");
    assert_eq!(out["topics"], serde_json::json!(["audit", "orders"]));
    let d = &out["described"];
    assert_eq!(d["retention.ms"]["value"], "2592000000");
    assert_eq!(d["retention.ms"]["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(d["cleanup.policy"]["value"], "compact,delete");
    assert_eq!(d["segment.bytes"]["source"], "DEFAULT_CONFIG");
    assert_eq!(d["segment.bytes"]["read_only"], true);
    assert_eq!(d["retention.ms"]["read_only"], false);
    assert_eq!(d.as_object().unwrap().len(), 13, "every config: {d}");
    assert_eq!(out["retention_after_alter"], "604800000");
    assert_eq!(out["partitions_after_add"], 4);
    assert_eq!(out["new_partition_offset"], serde_json::json!([3, 0]));
    assert_eq!(out["topics_after_delete"], serde_json::json!(["orders"]));
}

#[test]
fn aiokafka_produces_and_consumes_on_its_old_protocol_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[topic_defaults]\npartitions = 2\n");
    let broker = Broker::start(&dir.path().join("data"), Some(&config), "127.0.0.1:0");
    let out: serde_json::Value =
        serde_json::from_str(&client("aiokafka_roundtrip.py", &[&broker.kafka, "aio", "300"])).unwrap();
    broker.stop();
    let mut sent: Vec<serde_json::Value> = out["sent"].as_array().unwrap().clone();
    let mut read: Vec<serde_json::Value> = out["read"].as_array().unwrap().clone();
    let key = |v: &serde_json::Value| (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
    sent.sort_by_key(key);
    read.sort_by_key(key);
    assert_eq!(sent.len(), 300);
    assert_eq!(read, sent, "every record read back where its ack said");
}

/// kcat is Debian's (`apt-get install kcat`); scripts/test.sh installs it where it can. This
/// test needs it and fails without it.
#[test]
fn kcat_lists_metadata_produces_and_consumes() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), None, "127.0.0.1:0");
    let kcat = |args: &[&str], input: Option<&str>| -> String {
        let mut child = Command::new("kcat")
            .arg("-b")
            .arg(&broker.kafka)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat is not installed: run `apt-get install kcat` (scripts/test.sh does)");
        child.stdin.take().unwrap().write_all(input.unwrap_or("").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kcat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let lines: String = (0..50).map(|i| format!("key{i}:value {i}\n")).collect();
    kcat(&["-P", "-t", "kc", "-K", ":"], Some(&lines));
    let listed = kcat(&["-L", "-t", "kc"], None);
    assert!(listed.contains("topic \"kc\" with 1 partitions"), "{listed}");
    assert!(listed.contains("1 brokers"), "{listed}");
    let consumed = kcat(&["-C", "-t", "kc", "-e", "-f", "%k=%s@%o\n"], None);
    let expected: String = (0..50).map(|i| format!("key{i}=value {i}@{i}\n")).collect();
    assert_eq!(consumed, expected);
    broker.stop();
}
