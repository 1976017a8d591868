//! Admin APIs: CreateTopics (Kafka's topic configs mapped onto tierlog's, broker defaults from
//! `[topic_defaults]`, `validate_only`), DeleteTopics, CreatePartitions, DescribeConfigs and
//! IncrementalAlterConfigs (the retention and compaction configs).

use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, TopicName,
};
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
                // The topic's id, partitions and configs are in the response from v5 (v7 for the id).
                if ctx.version >= 5 {
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
                }
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

/// DeleteTopics: by name (v1-5) or by name or topic id (v6).
pub(super) async fn delete_topics(ctx: Ctx, req: DeleteTopicsRequest) -> Reply {
    let b = ctx.broker.clone();
    let mut wanted: Vec<(Option<TopicName>, uuid::Uuid)> =
        req.topic_names.into_iter().map(|n| (Some(n), uuid::Uuid::nil())).collect();
    wanted.extend(req.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let mut results = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        // A v6 request may name the topic by id alone.
        let name = name
            .map(|n| n.0.to_string())
            .or_else(|| b.engine.list_topics().into_iter().find(|t| !id.is_nil() && b.topic_id(t) == id));
        let mut r = DeletableTopicResult::default();
        match name {
            None => {
                r.topic_id = id;
                r.error_code = ctx.code(K::UnknownTopicId.code());
            }
            Some(name) => {
                r.name = Some(TopicName(StrBytes::from_string(name.clone())));
                r.topic_id = b.topic_id(&name);
                if let Err(e) = b.engine.delete_topic(&name).await {
                    r.error_code = ctx.code(codes::of(&e).code());
                    r.error_message = Some(StrBytes::from_string(e.to_string()));
                } else {
                    tracing::info!(topic = %name, "topic deleted by a Kafka client");
                }
            }
        }
        results.push(r);
    }
    ctx.respond(&DeleteTopicsResponse::default().with_responses(results))
}

/// CreatePartitions: grows topics to `count` partitions, every new one on this node.
pub(super) async fn create_partitions(ctx: Ctx, req: CreatePartitionsRequest) -> Reply {
    let b = ctx.broker.clone();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let outcome = async {
            let current = b.engine.topic_config(&name).map_err(|e| (codes::of(&e), e.to_string()))?.partitions as i32;
            if t.count <= current {
                return Err((
                    K::InvalidPartitions,
                    format!("topic {name:?} has {current} partitions; {} adds none", t.count),
                ));
            }
            if let Some(a) = &t.assignments
                && (a.len() as i32 != t.count - current
                    || a.iter().any(|p| p.broker_ids.len() != 1 || p.broker_ids[0].0 != b.node_id()))
            {
                return Err((
                    K::InvalidReplicaAssignment,
                    format!("every new partition lives on this node ({})", b.node_id()),
                ));
            }
            if req.validate_only {
                return Ok(());
            }
            b.engine.add_partitions(&name, t.count as u32).await.map_err(|e| match e {
                Error::InvalidConfig { reason, .. } => (K::InvalidPartitions, reason),
                e => (codes::of(&e), e.to_string()),
            })
        }
        .await;
        if let Err((code, message)) = outcome {
            r.error_code = ctx.code(code.code());
            r.error_message = Some(StrBytes::from_string(message));
        }
        results.push(r);
    }
    ctx.respond(&CreatePartitionsResponse::default().with_results(results))
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's config types (DescribeConfigs v3+).
const TYPE_STRING: i8 = 2;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_LONG: i8 = 5;
const TYPE_INT: i8 = 3;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "message.timestamp.type" => TYPE_STRING,
        "remote.storage.enable" => TYPE_BOOLEAN,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        "segment.bytes" | "max.message.bytes" => TYPE_INT,
        _ => TYPE_LONG,
    }
}

/// DescribeConfigs: every config of a topic (or the keys asked for) with its value, whether it
/// can be changed, and its source (the topic's own, the broker's `[topic_defaults]`, or
/// tierlog's default). A broker resource has no configs to show.
pub(super) async fn describe_configs(ctx: Ctx, req: DescribeConfigsRequest) -> Reply {
    let b = ctx.broker.clone();
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let mut r = DescribeConfigsResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        match res.resource_type {
            TOPIC => match b.engine.topic_config(res.resource_name.as_str()) {
                Ok(cfg) => {
                    let wanted =
                        |n: &str| res.configuration_keys.as_ref().is_none_or(|k| k.iter().any(|k| k.as_str() == n));
                    r.configs = configs::NAMES
                        .iter()
                        .filter(|n| wanted(n))
                        .map(|n| {
                            let source = source(&b, &cfg, n);
                            let mut c = DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(n))
                                .with_value(configs::value(&cfg, n).map(StrBytes::from_string))
                                .with_read_only(!configs::ALTERABLE.contains(n))
                                .with_config_source(source)
                                .with_config_type(config_type(n));
                            if req.include_synonyms {
                                c.synonyms = vec![
                                    DescribeConfigsSynonym::default()
                                        .with_name(StrBytes::from_static_str(n))
                                        .with_value(c.value.clone())
                                        .with_source(source),
                                ];
                            }
                            c
                        })
                        .collect();
                }
                Err(e) => {
                    r.error_code = ctx.code(codes::of(&e).code());
                    r.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            },
            BROKER if res.resource_name.as_str() == b.node_id().to_string() || res.resource_name.is_empty() => {}
            _ => {
                r.error_code = ctx.code(K::InvalidRequest.code());
                r.error_message = Some(StrBytes::from_string(format!(
                    "tierlog describes topic configs (resource type 2); not type {} {:?}",
                    res.resource_type,
                    res.resource_name.as_str()
                )));
            }
        }
        results.push(r);
    }
    ctx.respond(&DescribeConfigsResponse::default().with_results(results))
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// IncrementalAlterConfigs of a topic's retention and compaction configs: SET, DELETE (back to
/// the broker default), and APPEND / SUBTRACT on `cleanup.policy`. All of a resource's changes
/// apply together or not at all.
pub(super) async fn incremental_alter_configs(ctx: Ctx, req: IncrementalAlterConfigsRequest) -> Reply {
    let b = ctx.broker.clone();
    let mut results = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let mut r = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let name = res.resource_name.to_string();
        let outcome = async {
            if res.resource_type != TOPIC {
                return Err((K::InvalidRequest, "tierlog alters topic configs (resource type 2) only".to_owned()));
            }
            let current = b.engine.topic_config(&name).map_err(|e| (codes::of(&e), e.to_string()))?;
            let defaults = &b.engine.config().topic_defaults;
            let mut cfg = current.clone();
            for c in &res.configs {
                let key = c.name.as_str();
                if !configs::ALTERABLE.contains(&key) {
                    let why = if configs::NAMES.contains(&key) {
                        format!("{key} cannot change on a live topic (retention and compaction configs can)")
                    } else {
                        format!("unknown topic config {key:?}")
                    };
                    return Err((K::InvalidConfig, why));
                }
                let value = c.value.as_ref().map(|v| v.to_string());
                let value = match c.config_operation {
                    SET => value,
                    DELETE => None,
                    APPEND | SUBTRACT if key == "cleanup.policy" => {
                        let mut set: Vec<String> =
                            configs::value(&cfg, key).unwrap_or_default().split(',').map(str::to_owned).collect();
                        for v in value.iter().flat_map(|v| v.split(',')).map(str::trim) {
                            if c.config_operation == APPEND && !set.iter().any(|s| s == v) {
                                set.push(v.to_owned());
                            } else if c.config_operation == SUBTRACT {
                                set.retain(|s| s != v);
                            }
                        }
                        Some(set.join(","))
                    }
                    APPEND | SUBTRACT => {
                        return Err((
                            K::InvalidConfig,
                            format!("{key} is not a list: APPEND and SUBTRACT do not apply"),
                        ));
                    }
                    op => return Err((K::InvalidRequest, format!("unknown config operation {op}"))),
                };
                configs::set(&mut cfg, defaults, key, value.as_deref()).map_err(|m| (K::InvalidConfig, m))?;
            }
            cfg.validate().map_err(|e| (K::InvalidConfig, e.to_string()))?;
            if req.validate_only || cfg == current {
                return Ok(());
            }
            b.engine.alter_topic_config(&name, cfg).await.map_err(|e| (codes::of(&e), e.to_string()))
        }
        .await;
        if let Err((code, message)) = outcome {
            r.error_code = ctx.code(code.code());
            r.error_message = Some(StrBytes::from_string(message));
        }
        results.push(r);
    }
    ctx.respond(&IncrementalAlterConfigsResponse::default().with_responses(results))
}
