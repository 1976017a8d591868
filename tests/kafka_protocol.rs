//! The Kafka broker's answers, request by request, over a real connection to an in-process broker
//! (requests encoded with the `kafka-protocol` crate's client side): ListOffsets' special
//! offsets across both tiers, Fetch's limits, ranges and long poll, OffsetForLeaderEpoch, and
//! Produce's error codes and idempotent retries.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{CleanupPolicy, Engine, EngineConfig, LogConfig, ObjectStoreConfig, TopicConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Running {
    engine: Engine,
    _server: tierlog::kafka::Serving,
    conn: TcpStream,
    addr: String,
    cid: i32,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"));
    cfg.object_store = Some(ObjectStoreConfig::Local { path: dir.path().join("bucket") });
    cfg.tiering.poll_ms = 3_600_000;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = tierlog::kafka::Serving::start(engine.clone(), cfg.kafka.clone(), loopback).await.unwrap();
    let conn = TcpStream::connect(server.addr).await.unwrap();
    Running { engine, conn, addr: server.addr.to_string(), cid: 0, _server: server, _dir: dir }
}

fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, cid: i32, body: &R) -> Bytes {
    tierlog::kafka::request_frame(key, version, cid, body).unwrap()
}

async fn read_frame(conn: &mut TcpStream) -> Bytes {
    let len = conn.read_i32().await.unwrap();
    let mut body = vec![0u8; len as usize];
    conn.read_exact(&mut body).await.unwrap();
    Bytes::from(body)
}

impl Running {
    /// Sends one request and decodes its response.
    async fn call<Req: Encodable + HeaderVersion, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.cid += 1;
        self.conn.write_all(&frame(key, version, self.cid, req)).await.unwrap();
        let mut body = read_frame(&mut self.conn).await;
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.cid);
        Resp::decode(&mut body, version).unwrap()
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn records(values: &[(&str, i64)], keyed: bool) -> Bytes {
    let recs: Vec<Record> = values
        .iter()
        .map(|(v, ts)| Record {
            key: keyed.then(|| Bytes::from(format!("k-{v}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: vec![],
            timestamp: *ts,
        })
        .collect();
    BatchBuilder::from_records(Compression::None, &recs)
}

fn produce(topic: &str, partition: i32, batch: Bytes, acks: i16) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::*;
    let data = PartitionProduceData::default().with_index(partition).with_records(Some(batch));
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])])
}

fn list_offsets(topic: &str, specs: &[i64]) -> ListOffsetsRequest {
    use kafka_protocol::messages::list_offsets_request::*;
    let parts =
        specs.iter().map(|&t| ListOffsetsPartition::default().with_partition_index(0).with_timestamp(t)).collect();
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default().with_name(name(topic)).with_partitions(parts)])
}

fn fetch(parts: &[(&str, i32, i64, i32)], max_bytes: i32, min_bytes: i32, max_wait_ms: i32) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::*;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &(t, p, offset, pmax) in parts {
        let fp = FetchPartition::default().with_partition(p).with_fetch_offset(offset).with_partition_max_bytes(pmax);
        match topics.iter_mut().find(|x| x.topic.0.as_str() == t) {
            Some(x) => x.partitions.push(fp),
            None => topics.push(FetchTopic::default().with_topic(name(t)).with_partitions(vec![fp])),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The base offsets of the batches in a Fetch partition's records.
fn bases(records: &Option<Bytes>) -> Vec<i64> {
    let b = records.clone().unwrap_or_default();
    tierlog::batch::batches_in(&b).map(|(h, _)| h.base_offset).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_finds_every_special_offset_across_both_tiers() {
    let mut r = start().await;
    let log = LogConfig { segment_bytes: 4096, local_retention_bytes: Some(1), ..Default::default() };
    r.engine.create_topic("t", TopicConfig { log, ..Default::default() }).await.unwrap();
    // Timestamps rise, except that the largest comes twice: first at offset 13.
    let mut expected_max = None;
    for b in 0..10i64 {
        let vals: Vec<(String, i64)> = (0..5)
            .map(|i| (format!("v{b}-{i}"), if b == 2 && i == 3 || b == 7 { 99_999 } else { 1000 + b * 10 + i }))
            .collect();
        let refs: Vec<(&str, i64)> = vals.iter().map(|(v, t)| (v.as_str(), *t)).collect();
        let at = r.engine.append("t", 0, records(&refs, true)).await.unwrap();
        if b == 2 {
            expected_max = Some(at.base_offset + 3);
        }
        r.engine.roll("t", 0).await.unwrap();
    }
    r.engine.tier_now("t", 0).await.unwrap();
    let local_start = r.engine.log("t", 0).unwrap().tiers().local.as_ref().unwrap().log_start_offset();
    assert!(local_start > 20, "old segments left the disk (local start {local_start})");
    let remote_end = r.engine.remote_head("t", 0).unwrap().next_offset;

    let resp: ListOffsetsResponse =
        r.call(ApiKey::ListOffsets, 9, &list_offsets("t", &[-1, -2, -3, -4, -5, 1012])).await;
    let got: Vec<(i16, i64, i64)> =
        resp.topics[0].partitions.iter().map(|p| (p.error_code, p.offset, p.timestamp)).collect();
    assert_eq!(
        got,
        [
            (0, 50, -1),                        // latest: the high watermark
            (0, 0, -1),                         // earliest
            (0, expected_max.unwrap(), 99_999), // the first record with the largest timestamp
            (0, local_start, -1),               // earliest local
            (0, remote_end - 1, -1),            // latest tiered
            (0, 7, 1012),                       // first at or after 1012: batch 1, record 2
        ]
    );
    // v1 knows only latest, earliest and times.
    let resp: ListOffsetsResponse = r.call(ApiKey::ListOffsets, 1, &list_offsets("t", &[-1, -2])).await;
    assert_eq!(resp.topics[0].partitions.iter().map(|p| p.offset).collect::<Vec<_>>(), [50, 0]);
    // A time past every record: -1.
    let resp: ListOffsetsResponse = r.call(ApiKey::ListOffsets, 9, &list_offsets("t", &[200_000])).await;
    assert_eq!((resp.topics[0].partitions[0].offset, resp.topics[0].partitions[0].error_code), (-1, 0));
    // An unknown topic.
    let resp: ListOffsetsResponse = r.call(ApiKey::ListOffsets, 9, &list_offsets("nope", &[-1])).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 3);
    r.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_serves_whole_batches_within_limits_out_of_range_and_long_polls_on_appends() {
    let mut r = start().await;
    let log = LogConfig { segment_bytes: 4096, local_retention_bytes: Some(1), ..Default::default() };
    r.engine.create_topic("t", TopicConfig { partitions: 2, log, ..Default::default() }).await.unwrap();
    for b in 0..8 {
        let vals: Vec<(String, i64)> = (0..10).map(|i| (format!("{b}-{i}-{}", "x".repeat(100)), 1000 + i)).collect();
        let refs: Vec<(&str, i64)> = vals.iter().map(|(v, t)| (v.as_str(), *t)).collect();
        r.engine.append("t", 0, records(&refs, true)).await.unwrap();
        r.engine.roll("t", 0).await.unwrap();
    }
    r.engine.append("t", 1, records(&[("p1", 5)], true)).await.unwrap();
    r.engine.tier_now("t", 0).await.unwrap();
    let local_start = r.engine.log("t", 0).unwrap().tiers().local.as_ref().unwrap().log_start_offset();
    assert!(local_start > 15);

    // From the middle of a batch in the bucket: the whole batch holding it.
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &fetch(&[("t", 0, 13, 1 << 20)], 1 << 20, 1, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark, p.last_stable_offset, p.log_start_offset), (0, 80, 80, 0));
    assert_eq!(bases(&p.records)[0], 10);
    // A limit below one batch still gets that batch; a second partition then gets none, but its
    // offsets.
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &fetch(&[("t", 0, 0, 100), ("t", 1, 0, 100)], 100, 1, 0)).await;
    let ps = &resp.responses[0].partitions;
    assert_eq!(bases(&ps[0].records), [0]);
    assert_eq!((bases(&ps[1].records).len(), ps[1].high_watermark), (0, 1));
    // The response limit cuts the second partition at whole batches, in request order.
    r.engine.create_topic("u", TopicConfig { partitions: 2, ..Default::default() }).await.unwrap();
    r.engine.append("u", 0, records(&[("first", 5)], true)).await.unwrap();
    for b in 0..4 {
        let vals: Vec<(String, i64)> = (0..10).map(|i| (format!("{b}-{i}-{}", "y".repeat(100)), 1000 + i)).collect();
        let refs: Vec<(&str, i64)> = vals.iter().map(|(v, t)| (v.as_str(), *t)).collect();
        r.engine.append("u", 1, records(&refs, true)).await.unwrap();
    }
    let one = |resp: &FetchResponse, i: usize| resp.responses[0].partitions[i].records.clone().unwrap_or_default();
    let alone: FetchResponse = r.call(ApiKey::Fetch, 12, &fetch(&[("u", 0, 0, 1 << 20)], 1 << 20, 1, 0)).await;
    let first_len = one(&alone, 0).len();
    let all: FetchResponse = r.call(ApiKey::Fetch, 12, &fetch(&[("u", 1, 0, 1 << 20)], 1 << 20, 1, 0)).await;
    let lens: Vec<usize> = tiering::batch::batches_in(&one(&all, 0)).map(|(h, _)| h.total_len()).collect();
    assert_eq!(lens.len(), 4, "{lens:?}");
    let max = first_len + lens[0] + lens[1] + lens[2] / 2;
    let req = fetch(&[("u", 0, 0, 1 << 20), ("u", 1, 0, 1 << 20)], max as i32, 1, 0);
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(one(&resp, 0).len(), first_len);
    assert_eq!(bases(&resp.responses[0].partitions[1].records), [0, 10]);
    // The per-partition limit as well.
    let req = fetch(&[("u", 1, 0, (lens[0] + lens[1] / 2) as i32), ("u", 0, 0, 1 << 20)], 1 << 20, 1, 0);
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!(bases(&resp.responses[0].partitions[0].records), [0]);
    assert_eq!(one(&resp, 1).len(), first_len);
    // At the high watermark: nothing; past it: OFFSET_OUT_OF_RANGE with the range.
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &fetch(&[("t", 0, 80, 1 << 20)], 1 << 20, 0, 0)).await;
    assert_eq!(
        (resp.responses[0].partitions[0].error_code, bases(&resp.responses[0].partitions[0].records).len()),
        (0, 0)
    );
    let resp: FetchResponse = r.call(ApiKey::Fetch, 5, &fetch(&[("t", 0, 81, 1 << 20)], 1 << 20, 0, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark, p.log_start_offset), (1, 80, 0));
    // Fetch sessions are not kept.
    let mut with_session = fetch(&[("t", 0, 0, 1 << 20)], 1 << 20, 0, 0);
    with_session.session_id = 7;
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &with_session).await;
    assert_eq!((resp.error_code, resp.session_id), (70, 0));

    // Long poll: held until an append arrives, then answered with it (well before max_wait).
    let engine = r.engine.clone();
    let appender = tokio::spawn(async move {
        tiering_wait(300).await;
        engine.append("t", 1, records(&[("late", 6)], true)).await.unwrap()
    });
    let started = std::time::Instant::now();
    let resp: FetchResponse = r.call(ApiKey::Fetch, 12, &fetch(&[("t", 1, 1, 1 << 20)], 1 << 20, 1, 20_000)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "woken by the append, not the timeout");
    assert_eq!(appender.await.unwrap().base_offset, 1);
    assert_eq!(bases(&resp.responses[0].partitions[0].records), [1]);
    r.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_fetch_answers_from_segment_files_hold_the_stored_batches_beside_bucket_reads() {
    let mut r = start().await;
    // `cold` tiered and dropped from the disk up to its active segment (read from the bucket,
    // into memory); `hot` on the disk (sent from the segment files with sendfile).
    let log = LogConfig { segment_bytes: 256 << 10, local_retention_bytes: Some(1), ..Default::default() };
    r.engine.create_topic("cold", TopicConfig { partitions: 1, log, ..Default::default() }).await.unwrap();
    let log = LogConfig { segment_bytes: 256 << 10, ..Default::default() };
    r.engine.create_topic("hot", TopicConfig { partitions: 2, log, ..Default::default() }).await.unwrap();
    let topics = [("cold", 0u32), ("hot", 0), ("hot", 1)];
    for b in 0..24 {
        let vals: Vec<(String, i64)> =
            (0..4).map(|i| (format!("{b}-{i}-{}", "z".repeat(9_000 + 1_000 * (b % 5))), 1000 + i)).collect();
        let refs: Vec<(&str, i64)> = vals.iter().map(|(v, t)| (v.as_str(), *t)).collect();
        for (t, p) in topics {
            r.engine.append(t, p, records(&refs, true)).await.unwrap();
        }
    }
    r.engine.roll("cold", 0).await.unwrap();
    r.engine.tier_now("cold", 0).await.unwrap();
    let local_start = r.engine.log("cold", 0).unwrap().tiers().local.as_ref().unwrap().log_start_offset();
    assert!(local_start > 0, "cold reads from the bucket");
    assert!(matches!(r.engine.read_sendable("hot", 1, 0, 1 << 20).await.unwrap().batches, tierlog::Batches::File(_)));
    assert!(matches!(
        r.engine.read_sendable("cold", 0, 0, 1 << 20).await.unwrap().batches,
        tierlog::Batches::Memory(_)
    ));
    // Every partition from several offsets, under per-partition and response limits, at an old
    // and a recent version: each answer is whole stored batches, byte for byte, from the one
    // holding the offset, within the limits (the first batch of the response may be over).
    for version in [4i16, 12] {
        for offset in [0i64, 5, 37, 90] {
            for (pmax, max) in [(1 << 20, 8 << 20), (100_000, 8 << 20), (1, 8 << 20), (1 << 20, 150_000)] {
                let parts: Vec<(&str, i32, i64, i32)> =
                    topics.iter().map(|&(t, p)| (t, p as i32, offset, pmax)).collect();
                let resp: FetchResponse = r.call(ApiKey::Fetch, version, &fetch(&parts, max, 1, 0)).await;
                let answers: Vec<_> =
                    resp.responses.iter().flat_map(|t| t.partitions.iter().map(move |p| (t, p))).collect();
                assert_eq!(answers.len(), 3);
                let mut total = 0usize;
                for (t, p) in answers {
                    let topic = t.topic.0.as_str();
                    assert_eq!((p.error_code, p.high_watermark), (0, 96));
                    let got = p.records.clone().unwrap_or_default();
                    total += got.len();
                    if got.is_empty() {
                        continue;
                    }
                    let stored =
                        r.engine.read(topic, p.partition_index as u32, offset, got.len()).await.unwrap().batches;
                    assert_eq!(
                        got, stored,
                        "v{version} {topic}-{} offset {offset} limits {pmax}/{max}",
                        p.partition_index
                    );
                    let (first, _) = tierlog::batch::batches_in(&got).next().unwrap();
                    assert!(first.base_offset <= offset && offset <= first.last_offset());
                    assert!(got.len() <= pmax as usize || got.len() == first.total_len());
                }
                assert!(total > 0 && total <= max as usize, "{total} bytes within {max}");
            }
        }
    }
    r.engine.close().await.unwrap();
}

/// Waits `ms` of real time (the appender of the long-poll test).
async fn tiering_wait(ms: u64) {
    tierlog::clock::real_sleep(ms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_answers_epoch_zero_with_the_high_watermark() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::*;
    let mut r = start().await;
    r.engine.create_topic("t", TopicConfig::default()).await.unwrap();
    r.engine.append("t", 0, records(&[("a", 1), ("b", 2)], true)).await.unwrap();
    let req = |epoch, current| {
        let p = OffsetForLeaderPartition::default()
            .with_partition(0)
            .with_leader_epoch(epoch)
            .with_current_leader_epoch(current);
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default().with_topic(name("t")).with_partitions(vec![p])])
    };
    let check = |resp: OffsetForLeaderEpochResponse| {
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    let resp: OffsetForLeaderEpochResponse = r.call(ApiKey::OffsetForLeaderEpoch, 4, &req(0, -1)).await;
    assert_eq!(check(resp), (0, 0, 2));
    let resp: OffsetForLeaderEpochResponse = r.call(ApiKey::OffsetForLeaderEpoch, 4, &req(3, 0)).await;
    assert_eq!(check(resp), (0, -1, -1));
    let resp: OffsetForLeaderEpochResponse = r.call(ApiKey::OffsetForLeaderEpoch, 3, &req(0, 5)).await;
    assert_eq!(check(resp).0, 75, "UNKNOWN_LEADER_EPOCH");
    r.engine.close().await.unwrap();
}

fn produce_error(resp: &ProduceResponse) -> (i16, i64) {
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_answers_kafkas_error_codes_and_dedups_idempotent_retries() {
    let mut r = start().await;
    r.engine.create_topic("t", TopicConfig::default()).await.unwrap();
    let compacted = TopicConfig { cleanup_policy: CleanupPolicy::Compact, ..Default::default() };
    r.engine.create_topic("c", compacted).await.unwrap();

    let ok: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, records(&[("a", 1)], false), -1)).await;
    assert_eq!(produce_error(&ok), (0, 0));
    // A keyless record on a compacted topic.
    let resp: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("c", 0, records(&[("a", 1)], false), -1)).await;
    assert_eq!(produce_error(&resp).0, 87, "INVALID_RECORD");
    assert!(resp.responses[0].partition_responses[0].error_message.as_ref().unwrap().contains("key"));
    // A bad CRC.
    let mut bad = records(&[("a", 1)], true).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let resp: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, Bytes::from(bad), -1)).await;
    assert_eq!(produce_error(&resp).0, 2, "CORRUPT_MESSAGE");
    // Larger than the topic's limit.
    let big = "x".repeat(9 << 20);
    let resp: ProduceResponse =
        r.call(ApiKey::Produce, 9, &produce("t", 0, records(&[(big.as_str(), 1)], true), -1)).await;
    assert_eq!(produce_error(&resp).0, 10, "MESSAGE_TOO_LARGE");
    // zstd below v7.
    let zstd = BatchBuilder::from_records(
        Compression::Zstd,
        &[Record { key: None, value: Some("z".into()), headers: vec![], timestamp: 1 }],
    );
    let resp: ProduceResponse = r.call(ApiKey::Produce, 6, &produce("t", 0, zstd.clone(), -1)).await;
    assert_eq!(produce_error(&resp).0, 76, "UNSUPPORTED_COMPRESSION_TYPE");
    let resp: ProduceResponse = r.call(ApiKey::Produce, 7, &produce("t", 0, zstd, -1)).await;
    assert_eq!(produce_error(&resp), (0, 1));
    // A transactional producer.
    let mut tx = produce("t", 0, records(&[("a", 1)], true), -1);
    tx.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx-1")));
    let resp: ProduceResponse = r.call(ApiKey::Produce, 9, &tx).await;
    assert_eq!(produce_error(&resp).0, 53);
    // Unknown topic, bad acks.
    let resp: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("nope", 0, records(&[("a", 1)], true), -1)).await;
    assert_eq!(produce_error(&resp).0, 3);
    let resp: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, records(&[("a", 1)], true), 2)).await;
    assert_eq!(produce_error(&resp).0, 21, "INVALID_REQUIRED_ACKS");

    // Idempotent: an id from InitProducerId, sequences 0, 1; a retry of 1 answers its offsets;
    // a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH.
    let init: InitProducerIdResponse = r
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
        )
        .await;
    assert_eq!((init.error_code, init.producer_epoch), (0, 0));
    let pid = init.producer_id.0;
    let idem = |seq: i32, epoch: i16, v: &str| {
        let mut b = BatchBuilder::new(Compression::None).producer(pid, epoch, seq);
        b.push(&Record { key: Some("k".into()), value: Some(v.to_owned().into()), headers: vec![], timestamp: 1 });
        b.build()
    };
    let first: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, idem(0, 0, "i0"), -1)).await;
    let second: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, idem(1, 0, "i1"), -1)).await;
    let retry: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, idem(1, 0, "i1"), -1)).await;
    assert_eq!(produce_error(&retry), produce_error(&second), "the retry gets the original offsets");
    assert_eq!(produce_error(&second).1, produce_error(&first).1 + 1);
    let gap: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, idem(5, 0, "i5"), -1)).await;
    assert_eq!(produce_error(&gap).0, 45);
    let bumped: InitProducerIdResponse = r
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_producer_id(ProducerId(pid)).with_producer_epoch(0),
        )
        .await;
    assert_eq!((bumped.producer_id.0, bumped.producer_epoch), (pid, 1));
    let new_epoch: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, idem(0, 1, "e1"), -1)).await;
    assert_eq!(produce_error(&new_epoch).0, 0);
    let fenced: ProduceResponse = r.call(ApiKey::Produce, 9, &produce("t", 0, idem(2, 0, "old"), -1)).await;
    assert_eq!(produce_error(&fenced).0, 47);

    // acks=0: no response; the next request's response is the next frame.
    let hw = r.engine.log("t", 0).unwrap().high_watermark();
    r.cid += 1;
    let quiet = frame(ApiKey::Produce, 9, r.cid, &produce("t", 0, records(&[("q", 1)], true), 0));
    r.conn.write_all(&quiet).await.unwrap();
    let md: MetadataResponse = r.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    assert_eq!(md.topics.len(), 2);
    assert_eq!(r.engine.wait_for("t", 0, hw, 30_000).await.unwrap(), hw + 1, "the acks=0 record was appended");
    // Several records read back in order: nothing refused above was written.
    let read = r.engine.read("t", 0, 0, 1 << 20).await.unwrap();
    let values: Vec<String> =
        read.records().unwrap().iter().map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()).collect();
    assert_eq!(values, ["a", "z", "i0", "i1", "e1", "q"]);
    let _ = r.addr;
    r.engine.close().await.unwrap();
}
