//! Admin APIs: CreateTopics (Kafka's topic configs mapped onto tierlog's, broker defaults from
//! `[topic_defaults]`, `validate_only`).

use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Broker;
use super::codes;
use super::configs;
use super::dispatch::{Ctx, Reply};
use crate::config::TopicConfig;
use crate::error::Error;

/// Where a config's value comes from, as DescribeConfigs and CreateTopics report it.
pub(super) const SOURCE_TOPIC: i8 = 1;
pub(super) const SOURCE_BROKER: i8 = 4;
pub(super) const SOURCE_DEFAULT: i8 = 5;

/// The source of `name`'s value in `cfg`: the topic's own, the broker's `[topic_defaults]`, or
/// tierlog's default.
pub(super) fn source(broker: &Broker, cfg: &TopicConfig, name: &str) -> i8 {
    let v = configs::value(cfg, name);
    if v != configs::value(&broker.engine.config().topic_defaults, name) {
        SOURCE_TOPIC
    } else if v != configs::value(&TopicConfig::default(), name) {
        SOURCE_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

/// A new topic's settings from a CreateTopics entry, or the error code and message.
fn topic_config(broker: &Broker, t: &CreatableTopic) -> Result<TopicConfig, (K, String)> {
    let defaults = &broker.engine.config().topic_defaults;
    let mut cfg = defaults.clone();
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err((
            K::InvalidReplicationFactor,
            format!(
                "replication factor {} on a single node: use 1 or -1 (the bucket keeps the copies)",
                t.replication_factor
            ),
        ));
    }
    if !t.assignments.is_empty() {
        if t.num_partitions != -1 {
            return Err((K::InvalidRequest, "give either num_partitions or assignments, not both".into()));
        }
        let mut ids: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        ids.sort_unstable();
        if ids.iter().enumerate().any(|(i, p)| *p != i as i32) {
            return Err((K::InvalidReplicaAssignment, "assignments must number the partitions 0..n".into()));
        }
        if t.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != broker.node_id()) || a.broker_ids.len() != 1)
        {
            return Err((
                K::InvalidReplicaAssignment,
                format!("every partition lives on this node ({})", broker.node_id()),
            ));
        }
        cfg.partitions = t.assignments.len() as u32;
    } else if t.num_partitions != -1 {
        if t.num_partitions <= 0 {
            return Err((K::InvalidPartitions, format!("{} partitions: must be at least 1", t.num_partitions)));
        }
        cfg.partitions = t.num_partitions as u32;
    }
    for c in &t.configs {
        configs::set(&mut cfg, defaults, c.name.as_str(), c.value.as_ref().map(|v| v.as_str()))
            .map_err(|m| (K::InvalidConfig, m))?;
    }
    cfg.validate().map_err(|e| match e {
        Error::InvalidConfig { field, reason } if field == "partitions" => (K::InvalidPartitions, reason),
        e => (K::InvalidConfig, e.to_string()),
    })?;
    Ok(cfg)
}

pub(super) async fn create_topics(ctx: Ctx, req: CreateTopicsRequest) -> Reply {
    let b = ctx.broker.clone();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default().with_name(t.name.clone()).with_error_message(None);
        let dup = req.topics.iter().filter(|o| o.name == t.name).count() > 1;
        let outcome = if dup {
            Err((K::InvalidRequest, format!("topic {name:?} is listed more than once")))
        } else {
            match topic_config(&b, t) {
                Err(e) => Err(e),
                Ok(cfg) => {
                    let done = if req.validate_only {
                        tiering::topic::validate_topic_name(&name).map_err(Error::from).and_then(|()| {
                            match b.engine.topic_config(&name) {
                                Ok(_) => Err(Error::TopicExists { topic: name.clone(), in_bucket: false }),
                                Err(_) => Ok(()),
                            }
                        })
                    } else {
                        b.engine.create_topic(&name, cfg.clone()).await
                    };
                    done.map(|()| cfg).map_err(|e| (codes::of(&e), e.to_string()))
                }
            }
        };
        match outcome {
            Ok(cfg) => {
                r.topic_id = b.topic_id(&name);
                r.num_partitions = cfg.partitions as i32;
                r.replication_factor = 1;
                r.configs = Some(
                    configs::NAMES
                        .iter()
                        .map(|n| {
                            CreatableTopicConfigs::default()
                                .with_name(StrBytes::from_static_str(n))
                                .with_value(configs::value(&cfg, n).map(StrBytes::from_string))
                                .with_config_source(source(&b, &cfg, n))
                        })
                        .collect(),
                );
                if !req.validate_only {
                    tracing::info!(topic = %name, partitions = cfg.partitions, "topic created by a Kafka client");
                }
            }
            Err((code, message)) => {
                r.error_code = ctx.code(code.code());
                r.error_message = Some(StrBytes::from_string(message));
            }
        }
        results.push(r);
    }
    ctx.respond(&CreateTopicsResponse::default().with_topics(results))
}
