//! `tierlog groups`: list, describe, delete consumer groups and reset their offsets.
//!
//! With `--bootstrap-server HOST:PORT` the command talks to a running broker through Kafka's own
//! requests (FindCoordinator, ListGroups, DescribeGroups, OffsetFetch, OffsetCommit with no
//! generation, DeleteGroups, Metadata, ListOffsets), as Kafka's `kafka-consumer-groups.sh` does,
//! so it works against any Kafka broker. Without it, it opens the data dir itself (the broker
//! must be stopped: the data dir is locked while it runs).

use std::collections::HashMap;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::Cli;
use crate::engine::Engine;
use crate::groups::reset::Bounds;
use crate::groups::{Coordinator, ResetRow, ResetTo};
use crate::kafka::client::{Client, check};
use crate::records::parse_time;

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every group, one JSON line each: {"group", "protocol_type", "state"}.
    List(Target),
    /// A group's state, members (with their partitions) and committed offsets with lag, as JSON.
    Describe {
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a group that has no members, with its committed offsets.
    Delete {
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Move a group's committed offsets (a dry run unless --execute): one JSON line per partition
    /// with the old and new offset. Refused while the group has members.
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Clone, Args)]
pub struct Target {
    /// A running broker (tierlog or any Kafka broker), HOST:PORT. Without it: the data dir, which
    /// must not be in use.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(
    ["to_datetime", "to_earliest", "to_latest", "to_offset", "shift_by", "by_duration"])))]
pub struct ResetArgs {
    pub group: String,
    #[arg(long)]
    pub topic: String,
    /// One partition (default: every partition of the topic).
    #[arg(long)]
    pub partition: Option<u32>,
    /// The first offset at or after this instant (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub to_datetime: Option<String>,
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Move by N (negative: back).
    #[arg(long, allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// As --to-datetime of now minus this (30days, 12h, 90m).
    #[arg(long)]
    pub by_duration: Option<String>,
    /// Commit the new offsets (without it nothing changes).
    #[arg(long)]
    pub execute: bool,
    #[command(flatten)]
    pub target: Target,
}

impl ResetArgs {
    fn to(&self) -> anyhow::Result<ResetTo> {
        Ok(if let Some(t) = &self.to_datetime {
            ResetTo::Datetime(
                parse_time(t)
                    .ok_or_else(|| anyhow::anyhow!("--to-datetime {t:?}: use RFC 3339 or ms since the epoch"))?,
            )
        } else if self.to_earliest {
            ResetTo::Earliest
        } else if self.to_latest {
            ResetTo::Latest
        } else if let Some(o) = self.to_offset {
            ResetTo::Offset(o)
        } else if let Some(n) = self.shift_by {
            ResetTo::ShiftBy(n)
        } else if let Some(d) = &self.by_duration {
            let d = humantime::parse_duration(d).with_context(|| format!("--by-duration {d:?} (say 30days, 12h)"))?;
            ResetTo::ByDuration(d.as_millis().min(u64::MAX as u128) as u64)
        } else {
            anyhow::bail!(
                "give one of --to-datetime, --to-earliest, --to-latest, --to-offset, --shift-by, --by-duration"
            )
        })
    }
}

fn print_rows(rows: &[ResetRow], executed: bool) {
    for r in rows {
        println!("{}", json!({ "topic": r.topic, "partition": r.partition, "old": r.old, "new": r.new }));
    }
    println!("{}", json!({ "executed": executed, "partitions": rows.len() }));
}

pub async fn run(cli: &Cli, cmd: &GroupsCommand) -> anyhow::Result<()> {
    let target = match cmd {
        GroupsCommand::List(t)
        | GroupsCommand::Describe { target: t, .. }
        | GroupsCommand::Delete { target: t, .. } => t,
        GroupsCommand::ResetOffsets(a) => &a.target,
    };
    if let Some(addr) = &target.bootstrap_server {
        return remote(addr, cmd).await;
    }
    let cfg = cli.engine_config()?;
    let engine = Engine::open(cfg.clone()).await?;
    let res = local(&engine, &cfg.groups, cmd).await;
    engine.close().await?;
    res
}

/// On the data dir, through the coordinator itself.
async fn local(engine: &Engine, config: &crate::config::GroupsConfig, cmd: &GroupsCommand) -> anyhow::Result<()> {
    let groups = Coordinator::open(engine.clone(), config.clone()).await?;
    match cmd {
        GroupsCommand::List(_) => {
            for g in groups.list() {
                println!("{}", serde_json::to_string(&g)?);
            }
        }
        GroupsCommand::Describe { group, .. } => {
            let d = groups.describe(group).ok_or_else(|| anyhow::anyhow!("unknown group {group:?}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        GroupsCommand::Delete { group, .. } => {
            groups.delete(group).await.map_err(|e| anyhow::anyhow!("deleting group {group:?}: {e}"))?;
            println!("{}", json!({ "deleted": group }));
        }
        GroupsCommand::ResetOffsets(a) => {
            let rows = groups.reset_offsets(&a.group, &a.topic, a.partition, a.to()?, a.execute).await?;
            print_rows(&rows, a.execute);
        }
    }
    Ok(())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Connections to a cluster's brokers, opened as needed.
struct Cluster {
    bootstrap: String,
    conns: HashMap<String, Client>,
}

impl Cluster {
    async fn conn(&mut self, addr: &str) -> anyhow::Result<&mut Client> {
        if !self.conns.contains_key(addr) {
            let c = Client::connect(addr).await?;
            self.conns.insert(addr.to_owned(), c);
        }
        Ok(self.conns.get_mut(addr).expect("inserted above"))
    }

    /// The group's coordinator.
    async fn coordinator(&mut self, group: &str) -> anyhow::Result<&mut Client> {
        let bootstrap = self.bootstrap.clone();
        let c = self.conn(&bootstrap).await?;
        let v = c.version::<FindCoordinatorRequest>()?;
        let mut req = FindCoordinatorRequest::default().with_key_type(0);
        if v >= 4 {
            req.coordinator_keys = vec![s(group)];
        } else {
            req.key = s(group);
        }
        let (resp, v) = c.call(&req).await?;
        let (code, host, port) = if v >= 4 {
            let c = resp.coordinators.first().ok_or_else(|| anyhow::anyhow!("FindCoordinator: no answer"))?;
            (c.error_code, c.host.to_string(), c.port)
        } else {
            (resp.error_code, resp.host.to_string(), resp.port)
        };
        check(&format!("finding the coordinator of group {group:?}"), code)?;
        self.conn(&format!("{host}:{port}")).await
    }

    /// The partitions of `topic` and their leaders' addresses.
    async fn leaders(&mut self, topic: &str) -> anyhow::Result<Vec<(i32, String)>> {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        let bootstrap = self.bootstrap.clone();
        let c = self.conn(&bootstrap).await?;
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]))
            .with_allow_auto_topic_creation(false);
        let (resp, _) = c.call(&req).await?;
        let brokers: HashMap<i32, String> =
            resp.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
        let t = resp.topics.first().ok_or_else(|| anyhow::anyhow!("Metadata: no answer for topic {topic:?}"))?;
        check(&format!("topic {topic:?}"), t.error_code)?;
        let mut out = Vec::new();
        for p in &t.partitions {
            let addr = brokers.get(&p.leader_id.0).cloned().unwrap_or_else(|| bootstrap.clone());
            out.push((p.partition_index, addr));
        }
        out.sort();
        Ok(out)
    }

    /// ListOffsets of one partition at `timestamp` (-1 latest, -2 earliest); `None` when no
    /// offset matches (a time after the last record).
    async fn list_offset(&mut self, addr: &str, topic: &str, p: i32, timestamp: i64) -> anyhow::Result<Option<i64>> {
        use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        let c = self.conn(addr).await?;
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
                ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp),
            ]),
        ]);
        let (resp, _) = c.call(&req).await?;
        let r = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow::anyhow!("ListOffsets: no answer for {topic}-{p}"))?;
        check(&format!("ListOffsets {topic}-{p}"), r.error_code)?;
        Ok((r.offset >= 0).then_some(r.offset))
    }

    /// The group's state and members (DescribeGroups).
    async fn describe(&mut self, group: &str) -> anyhow::Result<serde_json::Value> {
        let c = self.coordinator(group).await?;
        let (resp, _) = c.call(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))])).await?;
        let g = resp.groups.first().ok_or_else(|| anyhow::anyhow!("DescribeGroups: no answer"))?;
        check(&format!("describing group {group:?}"), g.error_code)?;
        let members: Vec<_> = g
            .members
            .iter()
            .map(|m| {
                json!({
                    "member_id": m.member_id.to_string(),
                    "instance_id": m.group_instance_id.as_ref().map(|x| x.to_string()),
                    "client_id": m.client_id.to_string(),
                    "client_host": m.client_host.to_string(),
                    "assigned": crate::groups::assignment_partitions(&m.member_assignment),
                })
            })
            .collect();
        Ok(json!({
            "group": group,
            "state": g.group_state.to_string(),
            "protocol_type": g.protocol_type.to_string(),
            "protocol": g.protocol_data.to_string(),
            "members": members,
        }))
    }

    /// The group's committed offsets (every topic when `topic` is none).
    async fn committed(
        &mut self,
        group: &str,
        topic: Option<(&str, Vec<i32>)>,
    ) -> anyhow::Result<Vec<(String, i32, i64, Option<String>)>> {
        self.coordinator(group).await?.committed(group, topic).await
    }
}

/// Through a running broker's Kafka API.
async fn remote(addr: &str, cmd: &GroupsCommand) -> anyhow::Result<()> {
    let mut cluster = Cluster { bootstrap: addr.to_owned(), conns: HashMap::new() };
    match cmd {
        GroupsCommand::List(_) => {
            let c = cluster.conn(addr).await?;
            let (resp, _) = c.call(&ListGroupsRequest::default()).await?;
            check("listing groups", resp.error_code)?;
            let mut groups: Vec<_> = resp.groups.iter().collect();
            groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            for g in groups {
                println!(
                    "{}",
                    json!({ "group": g.group_id.0.to_string(), "protocol_type": g.protocol_type.to_string(), "state": g.group_state.to_string() })
                );
            }
        }
        GroupsCommand::Describe { group, .. } => {
            let mut d = cluster.describe(group).await?;
            let mut offsets = Vec::new();
            let committed = cluster.committed(group, None).await?;
            let mut leaders: HashMap<String, Vec<(i32, String)>> = HashMap::new();
            for (t, p, committed, metadata) in committed {
                if !leaders.contains_key(&t) {
                    let l = cluster.leaders(&t).await.unwrap_or_default();
                    leaders.insert(t.clone(), l);
                }
                let leader = leaders[&t].iter().find(|(q, _)| *q == p).map(|(_, a)| a.clone());
                let log_end = match leader {
                    Some(a) => cluster.list_offset(&a, &t, p, -1).await.ok().flatten(),
                    None => None,
                };
                offsets.push(json!({
                    "topic": t, "partition": p, "committed": committed, "metadata": metadata,
                    "log_end": log_end, "lag": log_end.map(|e| (e - committed).max(0)),
                }));
            }
            d["offsets"] = json!(offsets);
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        GroupsCommand::Delete { group, .. } => {
            let c = cluster.coordinator(group).await?;
            let (resp, _) = c.call(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))])).await?;
            let r = resp.results.first().ok_or_else(|| anyhow::anyhow!("DeleteGroups: no answer"))?;
            check(&format!("deleting group {group:?}"), r.error_code)?;
            println!("{}", json!({ "deleted": group }));
        }
        GroupsCommand::ResetOffsets(a) => {
            let rows = remote_reset(&mut cluster, a).await?;
            print_rows(&rows, a.execute);
        }
    }
    Ok(())
}

async fn remote_reset(cluster: &mut Cluster, a: &ResetArgs) -> anyhow::Result<Vec<ResetRow>> {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    let to = a.to()?;
    let d = cluster.describe(&a.group).await?;
    let state = d["state"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(
        state == "Empty" || state == "Dead",
        "offsets of group {:?} can only be reset while it has no members; it is {state} (stop its consumers first)",
        a.group
    );
    let mut partitions = cluster.leaders(&a.topic).await?;
    if let Some(p) = a.partition {
        partitions.retain(|(q, _)| *q == p as i32);
        anyhow::ensure!(!partitions.is_empty(), "topic {:?} has no partition {p}", a.topic);
    }
    let ids: Vec<i32> = partitions.iter().map(|(p, _)| *p).collect();
    let committed = cluster.committed(&a.group, Some((&a.topic, ids))).await?;
    let now = crate::clock::system_clock().now_ms();
    let mut rows = Vec::new();
    for (p, leader) in &partitions {
        let earliest = cluster.list_offset(leader, &a.topic, *p, -2).await?.unwrap_or(0);
        let latest = cluster.list_offset(leader, &a.topic, *p, -1).await?.unwrap_or(0);
        let at_time = match to.instant(now) {
            Some(t) => cluster.list_offset(leader, &a.topic, *p, t).await?,
            None => None,
        };
        let old = committed.iter().find(|(_, q, o, _)| q == p && *o >= 0).map(|(_, _, o, _)| *o);
        let new = to
            .apply(old, &Bounds { earliest, latest, at_time })
            .map_err(|e| anyhow::anyhow!("{}-{p}: {e}", a.topic))?;
        rows.push(ResetRow { topic: a.topic.clone(), partition: *p, old, new });
    }
    if a.execute {
        let c = cluster.coordinator(&a.group).await?;
        let parts = rows
            .iter()
            .map(|r| {
                OffsetCommitRequestPartition::default().with_partition_index(r.partition).with_committed_offset(r.new)
            })
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&a.group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(s(""))
            .with_retention_time_ms(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default().with_name(TopicName(s(&a.topic))).with_partitions(parts),
            ]);
        let (resp, _) = c.call(&req).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(&format!("committing {}-{}", t.name.0, p.partition_index), p.error_code)?;
            }
        }
    }
    Ok(rows)
}
