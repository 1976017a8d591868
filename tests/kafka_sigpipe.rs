//! Clients that hang up in the middle of a Fetch answer sent with `sendfile` end only their own
//! connection, even in a host process that left SIGPIPE at its default (which ends a process on a
//! write to a closed socket): this test binary puts it back to the default before the broker
//! starts, as such a host would have it. Its own file, since the disposition is process-wide.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::{Engine, EngineConfig, ObjectStoreConfig, TopicConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fetch_all(cid: i32) -> Bytes {
    let part = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(64 << 20);
    let topic = FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str("t"))).with_partitions(vec![part]);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(64 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    tierlog::kafka::request_frame(ApiKey::Fetch, 12, cid, &req).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_hanging_up_inside_a_sendfile_answer_end_only_their_connection() {
    // SAFETY: setting a signal's disposition has no other effect; nothing else in this test
    // binary depends on it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"));
    cfg.object_store = Some(ObjectStoreConfig::Local { path: dir.path().join("bucket") });
    let engine = Engine::open(cfg.clone()).await.unwrap();
    engine.create_topic("t", TopicConfig::default()).await.unwrap();
    let value = Bytes::from(vec![7u8; 256 << 10]);
    for i in 0..96 {
        let rec = Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(value.clone()),
            headers: vec![],
            timestamp: i,
        };
        engine.append("t", 0, BatchBuilder::from_records(Compression::None, &[rec])).await.unwrap();
    }
    let stored = engine.read("t", 0, 0, 64 << 20).await.unwrap().batches;
    assert!(stored.len() > 24 << 20);
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = tierlog::kafka::Serving::start(engine.clone(), cfg.kafka.clone(), loopback).await.unwrap();

    // Clients that ask for everything, read a little of the answer and hang up: some close with
    // the answer unread (a reset), some shut down their side first.
    for i in 0..40 {
        let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        conn.write_all(&fetch_all(1)).await.unwrap();
        let mut head = vec![0u8; 4096 * (1 + i % 8)];
        conn.read_exact(&mut head).await.unwrap();
        if i % 2 == 0 {
            conn.set_zero_linger().unwrap();
        } else {
            conn.shutdown().await.unwrap();
        }
        drop(conn);
    }

    // The process is still here, and the broker answers a whole Fetch, byte for byte.
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(&fetch_all(7)).await.unwrap();
    let len = conn.read_i32().await.unwrap() as usize;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    assert_eq!(ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(12)).unwrap().correlation_id, 7);
    let resp = FetchResponse::decode(&mut body, 12).unwrap();
    assert_eq!(resp.responses[0].partitions[0].records.clone().unwrap(), stored);
    server.stop().await.unwrap();
    engine.close().await.unwrap();
}
