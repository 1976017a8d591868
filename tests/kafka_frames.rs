//! Frames from a hostile client: random bytes, lying lengths, truncated requests, every API key at
//! every version with a random body, and array counts that claim billions of elements. The
//! broker never panics or aborts, its memory stays bounded, each bad frame closes only its own
//! connection, and a connection opened at the start keeps answering throughout. Every request
//! this broker serves, at every version it advertises, is answered (its response encodes).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use rand::{Rng, SeedableRng};
use tierlog::{Engine, EngineConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Running {
    engine: Engine,
    addr: String,
    server: tierlog::kafka::Serving,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"));
    cfg.kafka.max_request_bytes = 1 << 20;
    cfg.kafka.max_in_flight_request_bytes = 8 << 20;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", Default::default()).await.unwrap();
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = tierlog::kafka::Serving::start(engine.clone(), cfg.kafka.clone(), loopback).await.unwrap();
    Running { engine, addr: server.addr.to_string(), server, _dir: dir }
}

fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, cid: i32, body: &R) -> Bytes {
    tierlog::kafka::request_frame(key, version, cid, body).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"))
}

/// Sends `bytes` and reads what comes back until the broker closes the connection or `wait`
/// passes with nothing more; returns the bytes read.
async fn exchange(addr: &str, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(wait, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// One response frame from `s`: (correlation id, the rest).
async fn read_response(s: &mut TcpStream) -> (i32, Vec<u8>) {
    let len = s.read_i32().await.unwrap();
    assert!((4..=64 << 20).contains(&len), "response length {len}");
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).await.unwrap();
    (i32::from_be_bytes(body[..4].try_into().unwrap()), body)
}

/// A request of each served API, encoded at `version`, naming topic `t` (partition 0) where the
/// API takes topics, so the response carries per-topic and per-partition fields.
fn default_request(key: ApiKey, version: i16, cid: i32) -> Option<Bytes> {
    let t = || TopicName(StrBytes::from_static_str("t"));
    let s = StrBytes::from_static_str;
    Some(match key {
        ApiKey::Produce => {
            use kafka_protocol::messages::produce_request::*;
            let batch = tierlog::batch::BatchBuilder::from_records(
                tierlog::batch::Compression::None,
                &[tierlog::batch::Record { key: None, value: Some("v".into()), headers: vec![], timestamp: 1 }],
            );
            let data = PartitionProduceData::default().with_index(0).with_records(Some(batch));
            let topic = TopicProduceData::default().with_name(t()).with_partition_data(vec![data]);
            frame(key, version, cid, &ProduceRequest::default().with_acks(-1).with_topic_data(vec![topic]))
        }
        ApiKey::Fetch => {
            use kafka_protocol::messages::fetch_request::*;
            let p = FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20);
            let topic = FetchTopic::default().with_topic(t()).with_partitions(vec![p]);
            frame(
                key,
                version,
                cid,
                &FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![topic]),
            )
        }
        ApiKey::ListOffsets => {
            use kafka_protocol::messages::list_offsets_request::*;
            let ps =
                [-1i64, -2, 0].map(|ts| ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts));
            let topic = ListOffsetsTopic::default().with_name(t()).with_partitions(ps.to_vec());
            frame(key, version, cid, &ListOffsetsRequest::default().with_topics(vec![topic]))
        }
        ApiKey::Metadata => {
            use kafka_protocol::messages::metadata_request::*;
            let topics = vec![MetadataRequestTopic::default().with_name(Some(t()))];
            frame(key, version, cid, &MetadataRequest::default().with_topics(Some(topics)))
        }
        ApiKey::ApiVersions => frame(key, version, cid, &ApiVersionsRequest::default()),
        ApiKey::CreateTopics => {
            use kafka_protocol::messages::create_topics_request::*;
            let name = TopicName(StrBytes::from_string(format!("created-{cid}")));
            let config = CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(Some(s("1000")));
            let topic = CreatableTopic::default().with_name(name).with_num_partitions(1).with_replication_factor(1);
            let req = CreateTopicsRequest::default().with_topics(vec![topic.with_configs(vec![config])]);
            frame(key, version, cid, &req.with_validate_only(true))
        }
        ApiKey::InitProducerId => frame(key, version, cid, &InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => {
            use kafka_protocol::messages::offset_for_leader_epoch_request::*;
            let p = OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(0);
            let topic = OffsetForLeaderTopic::default().with_topic(t()).with_partitions(vec![p]);
            frame(key, version, cid, &OffsetForLeaderEpochRequest::default().with_topics(vec![topic]))
        }
        ApiKey::DescribeCluster => frame(key, version, cid, &DescribeClusterRequest::default()),
        ApiKey::DeleteTopics => {
            use kafka_protocol::messages::delete_topics_request::*;
            let missing = TopicName(s("no-such-topic"));
            let req = if version >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(missing))])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![missing])
            };
            frame(key, version, cid, &req)
        }
        ApiKey::CreatePartitions => {
            use kafka_protocol::messages::create_partitions_request::*;
            let topic = CreatePartitionsTopic::default().with_name(t()).with_count(2);
            frame(
                key,
                version,
                cid,
                &CreatePartitionsRequest::default().with_topics(vec![topic]).with_validate_only(true),
            )
        }
        ApiKey::DescribeConfigs => {
            use kafka_protocol::messages::describe_configs_request::*;
            let res = DescribeConfigsResource::default().with_resource_type(2).with_resource_name(s("t"));
            let req = DescribeConfigsRequest::default().with_resources(vec![res]).with_include_synonyms(true);
            frame(key, version, cid, &req)
        }
        ApiKey::IncrementalAlterConfigs => {
            use kafka_protocol::messages::incremental_alter_configs_request::*;
            let c = AlterableConfig::default().with_name(s("retention.ms")).with_value(Some(s("1000")));
            let res =
                AlterConfigsResource::default().with_resource_type(2).with_resource_name(s("t")).with_configs(vec![c]);
            frame(
                key,
                version,
                cid,
                &IncrementalAlterConfigsRequest::default().with_resources(vec![res]).with_validate_only(true),
            )
        }
        // The group APIs, for an empty group id or none: each answered at once with its error.
        ApiKey::FindCoordinator => frame(key, version, cid, &FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => frame(key, version, cid, &JoinGroupRequest::default()),
        ApiKey::SyncGroup => frame(key, version, cid, &SyncGroupRequest::default()),
        ApiKey::Heartbeat => frame(key, version, cid, &HeartbeatRequest::default()),
        ApiKey::LeaveGroup => frame(key, version, cid, &LeaveGroupRequest::default()),
        ApiKey::OffsetCommit => frame(key, version, cid, &OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => frame(key, version, cid, &OffsetFetchRequest::default()),
        ApiKey::ListGroups => frame(key, version, cid, &ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            frame(key, version, cid, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("nobody"))]))
        }
        ApiKey::DeleteGroups => {
            frame(key, version, cid, &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("nobody"))]))
        }
        ApiKey::OffsetDelete => frame(key, version, cid, &OffsetDeleteRequest::default()),
        _ => return None,
    })
}

/// The versions ApiVersions advertises, by key.
async fn advertised(addr: &str) -> Vec<(ApiKey, i16, i16)> {
    use kafka_protocol::protocol::Decodable;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default())).await.unwrap();
    let (cid, body) = read_response(&mut s).await;
    assert_eq!(cid, 7);
    let mut rest = Bytes::from(body[4..].to_vec());
    let resp = ApiVersionsResponse::decode(&mut rest, 3).unwrap();
    assert_eq!(resp.error_code, 0);
    resp.api_keys.iter().map(|k| (ApiKey::try_from(k.api_key).unwrap(), k.min_version, k.max_version)).collect()
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_request_at_every_advertised_version_is_answered_in_order() {
    let r = start().await;
    let versions = advertised(&r.addr).await;
    assert!(versions.windows(2).all(|w| (w[0].0 as i16) < (w[1].0 as i16)), "sorted by key");
    let mut s = TcpStream::connect(&r.addr).await.unwrap();
    let mut cid = 100;
    for &(key, lo, hi) in &versions {
        // Pipelined: every version of the API at once, answered in request order.
        let mut sent = Vec::new();
        for v in lo..=hi {
            let f = default_request(key, v, cid).unwrap_or_else(|| panic!("{key:?} is advertised but not tested"));
            s.write_all(&f).await.unwrap();
            sent.push(cid);
            cid += 1;
        }
        for want in sent {
            let (got, _) = read_response(&mut s).await;
            assert_eq!(got, want, "{key:?}: responses in request order");
        }
    }
    // An ApiVersions of a version past the advertised range: a v0 body with UNSUPPORTED_VERSION.
    let mut raw = frame(ApiKey::ApiVersions, 4, 9, &ApiVersionsRequest::default()).to_vec();
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    let back = exchange(&r.addr, &raw, Duration::from_millis(500)).await;
    assert!(back.len() >= 10, "answered");
    assert_eq!(i32::from_be_bytes(back[4..8].try_into().unwrap()), 9);
    assert_eq!(i16::from_be_bytes(back[8..10].try_into().unwrap()), 35, "UNSUPPORTED_VERSION");
    r.server.stop().await.unwrap();
    r.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_never_panic_keep_memory_bounded_and_close_only_their_connection() {
    let r = start().await;
    let versions = advertised(&r.addr).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7ea1_0f00);
    // A well-behaved connection, opened first, kept throughout.
    let mut good = TcpStream::connect(&r.addr).await.unwrap();
    let rss_before = rss_bytes();
    let mut frames = 0u64;
    let wait = Duration::from_millis(20);
    for round in 0..40 {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        // Random bytes, length prefix included.
        for _ in 0..20 {
            let n = rng.random_range(0..200);
            cases.push((0..n).map(|_| rng.random()).collect());
        }
        // Lying lengths: short, negative, huge, or longer than what follows.
        for len in [-1i32, 0, 3, 7, 8, i32::MAX, (1 << 20) + 1, 1 << 19] {
            let mut f = len.to_be_bytes().to_vec();
            f.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>()));
            cases.push(f);
        }
        // Every API key (known or not) at every version, with a random body.
        for key in -2i16..=90 {
            let version = rng.random_range(-1i16..20);
            let body: Vec<u8> = (0..rng.random_range(0..120)).map(|_| rng.random()).collect();
            let mut f = BytesMut::new();
            f.put_i32((8 + 2 + body.len()) as i32);
            f.put_i16(key);
            f.put_i16(version);
            f.put_i32(round);
            f.put_i16(-1); // null client id
            f.put_slice(&body);
            cases.push(f.to_vec());
        }
        // Served APIs at advertised versions: truncated, bit-flipped, and with array counts of
        // billions where the body starts.
        for &(key, lo, hi) in &versions {
            let v = rng.random_range(lo..=hi);
            let whole = default_request(key, v, round).unwrap();
            let cut = rng.random_range(8..whole.len().max(9));
            let mut truncated = whole[..cut.min(whole.len())].to_vec();
            let body_len = (truncated.len() - 4) as i32;
            truncated[..4].copy_from_slice(&body_len.to_be_bytes());
            cases.push(truncated);
            let mut flipped = whole.to_vec();
            for _ in 0..3 {
                let at = rng.random_range(4..flipped.len());
                flipped[at] ^= 1 << rng.random_range(0..8);
            }
            cases.push(flipped);
            for count in [[0x7f, 0xff, 0xff, 0xff], [0xff, 0xff, 0xff, 0x0f]] {
                let mut huge = whole.to_vec();
                // Overwrite the body's first bytes (past the header) with a huge count.
                let header_len = whole.len().saturating_sub(8).min(24);
                for (i, b) in count.iter().enumerate() {
                    if let Some(slot) = huge.get_mut(4 + header_len + i) {
                        *slot = *b;
                    }
                }
                for at in (4 + 10..huge.len().saturating_sub(4)).step_by(5) {
                    let mut h = huge.clone();
                    h[at..at + 4].copy_from_slice(&count);
                    cases.push(h);
                }
                cases.push(huge);
            }
        }
        frames += cases.len() as u64;
        let mut tasks = tokio::task::JoinSet::new();
        for c in cases {
            let addr = r.addr.clone();
            tasks.spawn(async move { exchange(&addr, &c, wait).await });
        }
        while tasks.join_next().await.transpose().unwrap().is_some() {}
        // The well-behaved connection still answers, and the broker is still accepting.
        good.write_all(&frame(ApiKey::Metadata, 12, round, &MetadataRequest::default())).await.unwrap();
        let (cid, _) = read_response(&mut good).await;
        assert_eq!(cid, round);
        assert!(!r.server.is_finished(), "the listener is still running");
    }
    let grown = rss_bytes().saturating_sub(rss_before);
    println!("hostile frames: {frames} frames sent; resident memory grew by {} MiB", grown >> 20);
    assert!(grown < 512 << 20, "memory stayed bounded: grew {} MiB", grown >> 20);
    // Only intact batches went in (a bit flip outside a batch's CRC leaves it a valid batch):
    // every record reads back as the one record the Produce requests carried.
    let log = r.engine.log("t", 0).unwrap();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = r.engine.read("t", 0, offset, 1 << 20).await.unwrap();
        for rec in read.records().unwrap() {
            assert_eq!(rec.value.as_deref(), Some(&b"v"[..]));
        }
        offset = read.next_offset().unwrap();
    }
    r.server.stop().await.unwrap();
    r.engine.close().await.unwrap();
}

/// Reads until the broker closes `s`; panics if it is still open after `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is still open after {within:?}");
}

/// Slow and idle clients cannot hold the broker: a frame whose bytes trickle in is cut off after
/// `frame_timeout_ms`, an idle connection after `idle_timeout_ms`, and connections over
/// `max_connections` are closed at accept, while a well-behaved connection keeps being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_idle_and_surplus_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"));
    cfg.kafka.frame_timeout_ms = 500;
    cfg.kafka.idle_timeout_ms = 1500;
    cfg.kafka.max_connections = 4;
    let engine = Engine::open(cfg.clone()).await.unwrap();
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = tierlog::kafka::Serving::start(engine.clone(), cfg.kafka.clone(), loopback).await.unwrap();
    let addr = server.addr.to_string();
    let versions = frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());

    // A frame of 100 bytes announced, then one byte every 100 ms.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(&100i32.to_be_bytes()).await.unwrap();
    let trickling = tokio::spawn(async move {
        for _ in 0..100 {
            if slow.write_all(&[0]).await.is_err() {
                return true;
            }
            #[allow(clippy::disallowed_methods)] // a real client, trickling in real time
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(trickling.await.unwrap(), "the trickling connection was closed");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());

    // An idle connection is closed; one that keeps asking is served meanwhile.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    let idle_closed = tokio::spawn(async move { closed_within(&mut idle, Duration::from_secs(6)).await });
    for cid in 0..10 {
        let f = tierlog::kafka::request_frame(ApiKey::ApiVersions, 3, cid, &ApiVersionsRequest::default()).unwrap();
        busy.write_all(&f).await.unwrap();
        assert_eq!(read_response(&mut busy).await.0, cid);
        #[allow(clippy::disallowed_methods)] // requests spread over more than the idle timeout
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    idle_closed.await.unwrap();

    // Over the cap: with `busy` and 3 more open, a fifth is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut surplus = TcpStream::connect(&addr).await.unwrap();
    let _ = surplus.write_all(&versions).await;
    closed_within(&mut surplus, Duration::from_secs(2)).await;
    busy.write_all(&versions).await.unwrap();
    assert_eq!(read_response(&mut busy).await.0, 1);
    drop(held);
    server.stop().await.unwrap();
    engine.close().await.unwrap();
}
