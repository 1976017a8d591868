//! The Kafka broker against real Kafka clients (kafka-python, confluent-kafka/librdkafka,
//! aiokafka), each run by `tests/kafka/*.py` against a `tierlog serve` process.

#[path = "kafka/harness.rs"]
mod harness;

use std::collections::HashMap;

use harness::{Broker, client, config_file, json_lines, tierlog};

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
