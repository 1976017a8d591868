//! The group APIs: FindCoordinator (this broker, for every group), JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete. Each turns the request into a call on the [`crate::groups::Coordinator`] and its
//! answer into the response of the request's version.

use kafka_protocol::ResponseError as K;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::dispatch::{Ctx, Reply};
use crate::groups::{Committed, GroupError, JoinRequest, OffsetCommit, SyncRequest};

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|x| x.to_string())
}

/// Counts a group error code answered and gives it back.
fn code(ctx: &Ctx, e: GroupError) -> i16 {
    ctx.code(e.code())
}

pub(super) async fn find_coordinator(ctx: Ctx, req: FindCoordinatorRequest) -> Reply {
    let (host, port) = ctx.broker.advertised();
    let node = BrokerId(ctx.broker.node_id());
    let answer = |key: &StrBytes| -> (i16, Option<StrBytes>) {
        match req.key_type {
            0 if key.is_empty() => (K::InvalidRequest.code(), Some(s("the group id is empty"))),
            0 => (0, None),
            1 => (K::InvalidRequest.code(), Some(s("transactions are not supported by this broker"))),
            t => (K::InvalidRequest.code(), Some(s(format!("unknown coordinator key type {t}")))),
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let (error, message) = answer(key);
                CoordinatorEntry::default()
                    .with_key(key.clone())
                    .with_node_id(if error == 0 { node } else { BrokerId(-1) })
                    .with_host(if error == 0 { s(host) } else { s("") })
                    .with_port(if error == 0 { port } else { -1 })
                    .with_error_code(ctx.code(error))
                    .with_error_message(message)
            })
            .collect();
    } else {
        let (error, message) = answer(&req.key);
        resp.error_code = ctx.code(error);
        resp.error_message = message;
        (resp.node_id, resp.host, resp.port) =
            if error == 0 { (node, s(host), port) } else { (BrokerId(-1), s(""), -1) };
    }
    ctx.respond(&resp)
}

pub(super) async fn join_group(ctx: Ctx, req: JoinGroupRequest) -> Reply {
    let coordinator = ctx.broker.groups.clone();
    let session = req.session_timeout_ms.max(0) as u64;
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: opt(&req.group_instance_id),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: session,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if ctx.version == 0 { session } else { req.rebalance_timeout_ms.max(0) as u64 },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        require_known_member: ctx.version >= 4,
    };
    let a = coordinator.join(&req.group_id.0, join).await;
    let old = ctx.version < 7;
    let resp = JoinGroupResponse::default()
        .with_error_code(code(&ctx, a.error))
        .with_generation_id(a.generation)
        .with_protocol_type(a.protocol_type.map(s))
        .with_protocol_name(match a.protocol_name {
            Some(p) => Some(s(p)),
            None if old => Some(s("")),
            None => None,
        })
        .with_leader(s(a.leader))
        .with_skip_assignment(a.skip_assignment && ctx.version >= 9)
        .with_member_id(s(a.member_id))
        .with_members(
            a.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.instance_id.map(s))
                        .with_metadata(m.metadata)
                })
                .collect(),
        );
    ctx.respond(&resp)
}

pub(super) async fn sync_group(ctx: Ctx, req: SyncGroupRequest) -> Reply {
    let coordinator = ctx.broker.groups.clone();
    let sync = SyncRequest {
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: opt(&req.group_instance_id),
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let a = coordinator.sync(&req.group_id.0, sync).await;
    let resp = SyncGroupResponse::default()
        .with_error_code(code(&ctx, a.error))
        .with_protocol_type(a.protocol_type.map(s))
        .with_protocol_name(a.protocol_name.map(s))
        .with_assignment(a.assignment);
    ctx.respond(&resp)
}

pub(super) async fn heartbeat(ctx: Ctx, req: HeartbeatRequest) -> Reply {
    let e = ctx.broker.groups.heartbeat(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    let resp = HeartbeatResponse::default().with_error_code(code(&ctx, e));
    ctx.respond(&resp)
}

pub(super) async fn leave_group(ctx: Ctx, req: LeaveGroupRequest) -> Reply {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members.iter().map(|m| (m.member_id.to_string(), opt(&m.group_instance_id))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let mut resp = LeaveGroupResponse::default();
    match ctx.broker.groups.leave(&req.group_id.0, &members).await {
        Err(e) => resp.error_code = code(&ctx, e),
        Ok(answers) if ctx.version >= 3 => {
            resp.members = members
                .iter()
                .zip(&answers)
                .map(|((id, instance), e)| {
                    MemberResponse::default()
                        .with_member_id(s(id.clone()))
                        .with_group_instance_id(instance.clone().map(s))
                        .with_error_code(code(&ctx, *e))
                })
                .collect();
        }
        Ok(answers) => resp.error_code = code(&ctx, answers.first().copied().unwrap_or(GroupError::None)),
    }
    ctx.respond(&resp)
}

pub(super) async fn offset_commit(ctx: Ctx, req: OffsetCommitRequest) -> Reply {
    let offsets: Vec<OffsetCommit> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: opt(&p.committed_metadata),
            })
        })
        .collect();
    let answers = ctx
        .broker
        .groups
        .commit(
            &req.group_id.0,
            req.generation_id_or_member_epoch,
            &req.member_id,
            req.group_instance_id.as_deref(),
            &offsets,
        )
        .await
        .unwrap_or_else(|e| vec![e; offsets.len()]);
    let mut answers = answers.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let e = answers.next().unwrap_or(GroupError::None);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(&ctx, e))
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    ctx.respond(&OffsetCommitResponse::default().with_topics(topics))
}

/// A committed offset's fields as OffsetFetch gives them: offset -1 and empty metadata where
/// nothing is committed (no error, as Kafka).
fn fetched(c: &Option<Committed>) -> (i64, i32, Option<StrBytes>) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, Some(s(c.metadata.clone().unwrap_or_default()))),
        None => (-1, -1, Some(s(""))),
    }
}

/// Groups the coordinator's `(topic, partition, committed)` by topic, in their order.
type ByTopic = Vec<(String, Vec<(i32, Option<Committed>)>)>;

fn by_topic(rows: Vec<(String, i32, Option<Committed>)>) -> ByTopic {
    let mut out: ByTopic = Vec::new();
    for (t, p, c) in rows {
        match out.last_mut() {
            Some((last, parts)) if *last == t => parts.push((p, c)),
            _ => out.push((t, vec![(p, c)])),
        }
    }
    out
}

pub(super) async fn offset_fetch(ctx: Ctx, req: OffsetFetchRequest) -> Reply {
    let coordinator = &ctx.broker.groups;
    // One group's answer; the single-group form (before v8) and the batched one carry the same
    // fields in distinct generated types.
    macro_rules! answer {
        ($group:expr, $topics:expr, $Topic:ident, $Partition:ident) => {{
            let wanted: Option<Vec<(String, Vec<i32>)>> = $topics
                .as_ref()
                .map(|ts| ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
            by_topic(coordinator.committed($group, wanted.as_deref()))
                .into_iter()
                .map(|(t, parts)| {
                    let partitions = parts
                        .iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata) = fetched(c);
                            $Partition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(metadata)
                        })
                        .collect();
                    $Topic::default().with_name(TopicName(s(t))).with_partitions(partitions)
                })
                .collect()
        }};
    }
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        resp.groups = req
            .groups
            .iter()
            .map(|g| {
                let topics = answer!(&g.group_id.0, g.topics, OffsetFetchResponseTopics, OffsetFetchResponsePartitions);
                OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_topics(topics)
            })
            .collect();
    } else {
        resp.topics = answer!(&req.group_id.0, req.topics, OffsetFetchResponseTopic, OffsetFetchResponsePartition);
    }
    ctx.respond(&resp)
}

pub(super) async fn list_groups(ctx: Ctx, req: ListGroupsRequest) -> Reply {
    let states: Vec<String> = req.states_filter.iter().map(|x| x.to_ascii_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|x| x.to_ascii_lowercase()).collect();
    let groups = ctx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(s(g.group)))
                .with_protocol_type(s(g.protocol_type))
                .with_group_state(s(g.state))
                .with_group_type(s("classic"))
        })
        .collect();
    ctx.respond(&ListGroupsResponse::default().with_groups(groups))
}

pub(super) async fn describe_groups(ctx: Ctx, req: DescribeGroupsRequest) -> Reply {
    let groups = req
        .groups
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN)
                .with_group_state(s("Dead"));
            let Some(d) = ctx.broker.groups.describe(&id.0) else { return base };
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.instance_id.map(s))
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            base.with_group_state(s(d.state))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(members)
        })
        .collect();
    ctx.respond(&DescribeGroupsResponse::default().with_groups(groups))
}

pub(super) async fn delete_groups(ctx: Ctx, req: DeleteGroupsRequest) -> Reply {
    use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in &req.groups_names {
        let e = ctx.broker.groups.delete(&id.0).await.err().unwrap_or(GroupError::None);
        results.push(DeletableGroupResult::default().with_group_id(id.clone()).with_error_code(code(&ctx, e)));
    }
    ctx.respond(&DeleteGroupsResponse::default().with_results(results))
}

pub(super) async fn offset_delete(ctx: Ctx, req: OffsetDeleteRequest) -> Reply {
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let mut resp = OffsetDeleteResponse::default();
    match ctx.broker.groups.delete_offsets(&req.group_id.0, &wanted).await {
        Err(e) => resp.error_code = code(&ctx, e),
        Ok(answers) => {
            let mut answers = answers.into_iter();
            resp.topics = req
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code(&ctx, answers.next().unwrap_or(GroupError::None)))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
                })
                .collect();
        }
    }
    ctx.respond(&resp)
}
