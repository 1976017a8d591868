//! Metadata (topics, with auto-create), DescribeCluster and OffsetForLeaderEpoch: this broker is
//! the whole cluster, the controller and the leader of every partition, at leader epoch 0 (the
//! epoch stamped in every batch it writes).

use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::codes;
use super::dispatch::{Ctx, Reply};
use crate::error::Error;

/// The leader epoch of every partition: one per partition lifetime, as batches are stamped.
pub(super) const LEADER_EPOCH: i32 = 0;

/// Checks a client's `current_leader_epoch` (-1: no check): a newer one than ours is unknown here.
pub(super) fn check_leader_epoch(current: i32) -> Option<K> {
    (current > LEADER_EPOCH).then_some(K::UnknownLeaderEpoch)
}

pub(super) async fn handle(ctx: Ctx, req: MetadataRequest) -> Reply {
    let b = ctx.broker.clone();
    let engine = &b.engine;
    let node = BrokerId(b.node_id());
    // v0: an empty list means every topic; v1+: null means every topic, empty means none.
    let all = req.topics.is_none() || (ctx.version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    let auto_create = b.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    let names: Vec<String> = if all {
        engine.list_topics()
    } else {
        req.topics.iter().flatten().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect()
    };
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        let mut t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
            .with_topic_id(b.topic_id(&name))
            .with_is_internal(crate::engine::is_internal_topic(&name));
        let mut config = engine.topic_config(&name);
        if matches!(config, Err(Error::UnknownTopic { .. })) && auto_create {
            config = match engine.create_topic(&name, engine.config().topic_defaults.clone()).await {
                Ok(()) => {
                    tracing::info!(topic = %name, "topic created on a client's request (auto-create)");
                    engine.topic_config(&name)
                }
                Err(Error::TopicExists { in_bucket: false, .. }) => engine.topic_config(&name), // created meanwhile
                Err(e) => {
                    tracing::warn!(topic = %name, error = %e, "auto-creating a topic failed");
                    Err(e)
                }
            };
        }
        match config {
            Ok(config) => {
                t.partitions = (0..config.partitions as i32)
                    .map(|p| {
                        MetadataResponsePartition::default()
                            .with_partition_index(p)
                            .with_leader_id(node)
                            .with_leader_epoch(LEADER_EPOCH)
                            .with_replica_nodes(vec![node])
                            .with_isr_nodes(vec![node])
                    })
                    .collect();
            }
            Err(e) => {
                let code = match &e {
                    Error::TopicExists { .. } => K::UnknownTopicOrPartition,
                    other => codes::of(other),
                };
                t.error_code = ctx.code(code.code());
                t.topic_id = uuid::Uuid::nil();
            }
        }
        topics.push(t);
    }
    let (host, port) = b.advertised();
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(host.to_owned()))
        .with_port(port);
    let resp = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(b.cluster_id().to_owned())))
        .with_controller_id(node)
        .with_topics(topics);
    ctx.respond(&resp)
}

pub(super) async fn describe_cluster(ctx: Ctx, _req: DescribeClusterRequest) -> Reply {
    let b = ctx.broker.clone();
    let (host, port) = b.advertised();
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(b.node_id()))
        .with_host(StrBytes::from_string(host.to_owned()))
        .with_port(port);
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(StrBytes::from_string(b.cluster_id().to_owned()))
        .with_controller_id(BrokerId(b.node_id()))
        .with_brokers(vec![broker]);
    ctx.respond(&resp)
}

/// The end offset of a leader epoch: every offset is in epoch 0, so epoch 0 ends at the high
/// watermark; a later epoch is unknown (-1, -1) as Kafka answers.
pub(super) async fn offset_for_leader_epoch(ctx: Ctx, req: OffsetForLeaderEpochRequest) -> Reply {
    let engine = ctx.broker.engine.clone();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic.0.to_string();
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| {
                let mut out =
                    EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                let log = u32::try_from(p.partition)
                    .map_err(|_| K::UnknownTopicOrPartition)
                    .and_then(|id| engine.log(&name, id).map_err(|e| codes::of(&e)));
                match (log, check_leader_epoch(p.current_leader_epoch)) {
                    (Err(code), _) | (Ok(_), Some(code)) => out.error_code = ctx.code(code.code()),
                    (Ok(log), None) if p.leader_epoch == LEADER_EPOCH => {
                        out.leader_epoch = LEADER_EPOCH;
                        out.end_offset = log.high_watermark();
                    }
                    (Ok(_), None) => {}
                }
                out
            })
            .collect();
        topics.push(OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions));
    }
    ctx.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}
