//! `tierlog bench groups`: the group coordinator over the wire (tierlog's own Kafka client,
//! one connection per member, against an in-process broker on loopback), each scenario against
//! its raw limit in the same run, the two sides alternating round by round:
//!
//! 1. Rebalance time of a new group of 2, 8 and 32 members: from every member's first
//!    JoinGroup (all at once) to every member's first Fetch answered with records. The members
//!    speak the protocol as a consumer does: JoinGroup, MEMBER_ID_REQUIRED and JoinGroup again,
//!    SyncGroup (the leader assigns the partitions), OffsetFetch, Fetch. The coordinator waits
//!    `--initial-delay-ms` for more members (Kafka's `group.initial.rebalance.delay.ms`, 3000 by
//!    default; a bench setting here), so its own share is the time less that delay. The floor:
//!    the same members making the same number of round trips (ApiVersions) at once.
//! 2. Synchronous commits per second (OffsetCommit, each durable before its answer) from one
//!    member, and from 16 members of one group at once, each committing its own partition;
//!    against plain 256-byte file appends with an fdatasync each, from one writer.
//! 3. Coordinator start-up with 10,000 groups' offsets (4 partitions each) in
//!    `__consumer_offsets`: `Coordinator::open` against a plain read of the same segment files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Args;
use futures::StreamExt;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, GroupId, JoinGroupRequest, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::append::make_batch;
use super::{Scratch, median, raw};
use crate::config::{EngineConfig, GroupsConfig, KafkaConfig, TopicConfig};
use crate::engine::{Engine, OFFSETS_TOPIC};
use crate::groups::{Coordinator, OffsetCommit};
use crate::kafka::Serving;
use crate::kafka::client::{Client, check};

const TOPIC: &str = "bench";
const PARTITIONS: u32 = 32;
const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;

#[derive(Debug, Clone, Args)]
pub struct GroupsBenchArgs {
    /// Tiny sizes and one round: checks that every scenario runs (CI uses this).
    #[arg(long)]
    pub smoke: bool,
    /// Rounds of each scenario (the two sides alternate).
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// The coordinator's initial rebalance delay for this run (ms).
    #[arg(long, default_value_t = 100)]
    pub initial_delay_ms: u64,
    /// Seconds of each commit slice.
    #[arg(long, default_value_t = 1.0)]
    pub slice_s: f64,
    /// Groups whose offsets the start-up scenario loads.
    #[arg(long, default_value_t = 10_000)]
    pub groups: usize,
    /// A directory on the disk to measure. Default ./tierlog-bench (removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A member of a group that has joined, synced and consumed.
struct Member {
    client: Client,
    id: String,
    generation: i32,
    partitions: Vec<i32>,
}

/// Partitions `members[i]` gets from the leader: every `n`th from `i`, as 4-byte integers.
fn assignment(index: usize, n: usize) -> Bytes {
    let mut b = BytesMut::new();
    for p in (index as u32..PARTITIONS).step_by(n) {
        b.put_i32(p as i32);
    }
    b.freeze()
}

fn parse_assignment(mut b: Bytes) -> Vec<i32> {
    let mut v = Vec::new();
    while b.remaining() >= 4 {
        v.push(b.get_i32());
    }
    v
}

/// One member from its first JoinGroup to its first Fetch with records.
async fn join_and_consume(mut client: Client, group: String) -> anyhow::Result<Member> {
    let gid = GroupId(s(&group));
    let mut member_id = String::new();
    let (generation, partitions) = loop {
        let req = JoinGroupRequest::default()
            .with_group_id(gid.clone())
            .with_session_timeout_ms(300_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(s(&member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"bench")),
            ]);
        let (join, _) = client.call(&req).await?;
        if join.error_code == MEMBER_ID_REQUIRED {
            member_id = join.member_id.to_string();
            continue;
        }
        check("JoinGroup", join.error_code)?;
        member_id = join.member_id.to_string();
        let assignments = if join.leader == join.member_id {
            let mut ids: Vec<String> = join.members.iter().map(|m| m.member_id.to_string()).collect();
            ids.sort();
            let n = ids.len();
            ids.iter()
                .enumerate()
                .map(|(i, id)| {
                    SyncGroupRequestAssignment::default().with_member_id(s(id)).with_assignment(assignment(i, n))
                })
                .collect()
        } else {
            Vec::new()
        };
        let req = SyncGroupRequest::default()
            .with_group_id(gid.clone())
            .with_generation_id(join.generation_id)
            .with_member_id(s(&member_id))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(join.protocol_name.clone())
            .with_assignments(assignments);
        let (sync, _) = client.call(&req).await?;
        if sync.error_code == REBALANCE_IN_PROGRESS {
            continue;
        }
        check("SyncGroup", sync.error_code)?;
        break (join.generation_id, parse_assignment(sync.assignment));
    };
    client.committed(&group, Some((TOPIC, partitions.clone()))).await?;
    if !partitions.is_empty() {
        let parts = partitions
            .iter()
            .map(|&p| {
                FetchPartition::default().with_partition(p).with_fetch_offset(0).with_partition_max_bytes(1 << 20)
            })
            .collect();
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_topics(vec![FetchTopic::default().with_topic(TopicName(s(TOPIC))).with_partitions(parts)]);
        let (fetch, _) = client.call(&req).await?;
        let got = fetch
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()));
        anyhow::ensure!(got, "member {member_id}: its first Fetch returned no records");
    }
    Ok(Member { client, id: member_id, generation, partitions })
}

async fn connect(addr: &str, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Client::connect(addr).await?);
    }
    Ok(v)
}

/// `n` members join `group` at once; the time until every one consumes, and the members.
async fn rebalance(addr: &str, group: &str, n: usize) -> anyhow::Result<(Duration, Vec<Member>)> {
    let clients = connect(addr, n).await?;
    let start = Instant::now();
    let tasks: Vec<_> = clients.into_iter().map(|c| tokio::spawn(join_and_consume(c, group.to_owned()))).collect();
    let mut members = Vec::with_capacity(n);
    for t in tasks {
        members.push(t.await??);
    }
    let took = start.elapsed();
    let generations: std::collections::BTreeSet<i32> = members.iter().map(|m| m.generation).collect();
    anyhow::ensure!(generations.len() == 1, "{group}: members ended in generations {generations:?}");
    let mut all: Vec<i32> = members.iter().flat_map(|m| m.partitions.clone()).collect();
    all.sort();
    anyhow::ensure!(all == (0..PARTITIONS as i32).collect::<Vec<_>>(), "{group}: partitions assigned {all:?}");
    Ok((took, members))
}

/// The floor of (1): `n` connections each making `trips` ApiVersions round trips, all at once.
async fn round_trip_floor(addr: &str, n: usize, trips: usize) -> anyhow::Result<Duration> {
    let clients = connect(addr, n).await?;
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                for _ in 0..trips {
                    c.call(&ApiVersionsRequest::default()).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

/// Synchronous commits from every member at once for `slice`; commits per second.
async fn commit_slice(members: Vec<Member>, group: &str, slice: Duration) -> anyhow::Result<(f64, Vec<Member>)> {
    let start = Instant::now();
    let deadline = start + slice;
    let tasks: Vec<_> = members
        .into_iter()
        .map(|mut m| {
            let gid = GroupId(s(group));
            tokio::spawn(async move {
                let mut n = 0u64;
                let p = m.partitions[0];
                while Instant::now() < deadline {
                    let part = OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(n as i64 % 1000)
                        .with_committed_metadata(Some(s("")));
                    let req = OffsetCommitRequest::default()
                        .with_group_id(gid.clone())
                        .with_generation_id_or_member_epoch(m.generation)
                        .with_member_id(s(&m.id))
                        .with_topics(vec![
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(s(TOPIC)))
                                .with_partitions(vec![part]),
                        ]);
                    let (resp, _) = m.client.call(&req).await?;
                    for t in &resp.topics {
                        for p in &t.partitions {
                            check("OffsetCommit", p.error_code)?;
                        }
                    }
                    n += 1;
                }
                anyhow::Ok((n, m))
            })
        })
        .collect();
    let mut total = 0;
    let mut back = Vec::new();
    for t in tasks {
        let (n, m) = t.await??;
        total += n;
        back.push(m);
    }
    Ok((total as f64 / start.elapsed().as_secs_f64(), back))
}

/// Plain 256-byte appends with an fdatasync each, from one writer, for `slice`; per second.
async fn raw_fsync_slice(dir: &Path, slice: Duration) -> anyhow::Result<f64> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        use std::io::Write;
        let path = dir.join("raw-commits.bin");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let buf = [0x5au8; 256];
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < slice {
            f.write_all(&buf)?;
            f.sync_data()?;
            n += 1;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        drop(f);
        std::fs::remove_file(&path)?;
        Ok(rate)
    })
    .await?
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and interquartile range of per-round ratios `a[i] / b[i]`.
fn ratio(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    r.sort_by(|x, y| x.total_cmp(y));
    let q = |f: f64| r.get(((r.len() as f64 - 1.0) * f).round() as usize).copied().unwrap_or(f64::NAN);
    (median(r.clone()), q(0.25), q(0.75))
}

pub async fn run(args: &GroupsBenchArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new(args.dir.as_deref(), "groups")?;
    let rounds = if args.smoke { 1 } else { args.rounds.max(1) };
    let slice = Duration::from_secs_f64(if args.smoke { 0.2 } else { args.slice_s });
    let groups_n = if args.smoke { 200 } else { args.groups };
    let sizes: &[usize] = if args.smoke { &[2, 8] } else { &[2, 8, 32] };

    let mut config = EngineConfig::new(scratch.path.join("data"));
    config.tiering.auto_upload = false;
    let engine = Engine::open(config).await?;
    engine.create_topic(TOPIC, TopicConfig { partitions: PARTITIONS, ..Default::default() }).await?;
    let batch = make_batch(4096, 100);
    for p in 0..PARTITIONS {
        engine.append(TOPIC, p, batch.clone()).await?;
    }
    let gcfg = GroupsConfig { initial_rebalance_delay_ms: args.initial_delay_ms, ..GroupsConfig::default() };
    let groups = Coordinator::open(engine.clone(), gcfg.clone()).await?;
    groups.start_timers();
    let listen: SocketAddr = "127.0.0.1:0".parse()?;
    let serving = Serving::start_with(engine.clone(), KafkaConfig::default(), groups.clone(), listen).await?;
    let addr = serving.addr.to_string();
    println!(
        "tierlog bench groups: broker on {addr}, {PARTITIONS} partitions, initial rebalance delay {} ms, {rounds} round(s)",
        args.initial_delay_ms
    );

    // 1. Rebalance time.
    for &n in sizes {
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // JoinGroup twice, SyncGroup, OffsetFetch, Fetch.
            floor.push(ms(round_trip_floor(&addr, n, 5).await?));
            let (took, members) = rebalance(&addr, &format!("rebalance-{n}-{r}"), n).await?;
            ours.push(ms(took));
            drop(members);
        }
        let share: Vec<f64> = ours.iter().map(|t| (t - args.initial_delay_ms as f64).max(0.001)).collect();
        let (m, lo, hi) = ratio(&floor, &share);
        println!(
            "rebalance, {n:>2} members (join to all consuming)      {:>8.1} ms (less the {} ms delay: {:>7.1} ms)  vs floor {:>6.2} ms  floor/share median {m:.3} IQR {lo:.3}-{hi:.3}",
            median(ours.clone()),
            args.initial_delay_ms,
            median(share),
            median(floor),
        );
    }

    // 2. Synchronous commits per second.
    let (_, one) = rebalance(&addr, "commits-1", 1).await?;
    let (_, sixteen) = rebalance(&addr, "commits-16", 16).await?;
    let (mut one, mut sixteen) = (Some(one), Some(sixteen));
    let (mut ours1, mut ours16, mut raw_rates) = (Vec::new(), Vec::new(), Vec::new());
    let raw_dir = scratch.path.join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    for _ in 0..rounds {
        raw_rates.push(raw_fsync_slice(&raw_dir, slice).await?);
        let (r1, m1) = commit_slice(one.take().expect("members"), "commits-1", slice).await?;
        one = Some(m1);
        let (r16, m16) = commit_slice(sixteen.take().expect("members"), "commits-16", slice).await?;
        sixteen = Some(m16);
        ours1.push(r1);
        ours16.push(r16);
    }
    for (name, ours) in [("sync commits/s, 1 consumer", &ours1), ("sync commits/s, 16 consumers of one group", &ours16)]
    {
        let (m, lo, hi) = ratio(ours, &raw_rates);
        println!(
            "{name:<48} tierlog {:>8.0} /s  vs raw write+fdatasync {:>8.0} /s  ratio median {m:.2} IQR {lo:.2}-{hi:.2}",
            median(ours.clone()),
            median(raw_rates.clone()),
        );
    }
    drop((one, sixteen));
    serving.stop().await?;
    drop(groups);
    engine.close().await?;

    // 3. Start-up with many groups' offsets, in an engine of its own: committed from outside the
    // groups (generation -1), 64 at a time.
    let data = scratch.path.join("startup");
    let mut config = EngineConfig::new(&data);
    config.tiering.auto_upload = false;
    let engine = Engine::open(config).await?;
    engine.create_topic(TOPIC, TopicConfig { partitions: 4, ..Default::default() }).await?;
    let started = Instant::now();
    let fill = Coordinator::open(engine.clone(), gcfg.clone()).await?;
    let commits = futures::stream::iter(0..groups_n).map(|i| {
        let fill = Arc::clone(&fill);
        async move {
            let offsets: Vec<OffsetCommit> = (0..4)
                .map(|p| OffsetCommit {
                    topic: TOPIC.to_owned(),
                    partition: p,
                    offset: i as i64,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                })
                .collect();
            fill.commit(&format!("service-{i:05}"), -1, "", None, &offsets)
                .await
                .map_err(|e| anyhow::anyhow!("committing for service-{i:05}: {e}"))
        }
    });
    let mut commits = commits.buffer_unordered(64);
    while let Some(r) = commits.next().await {
        r?;
    }
    drop(commits);
    drop(fill);
    let filled = started.elapsed();
    let files: Vec<PathBuf> = (0..gcfg.offsets_topic_partitions)
        .flat_map(|p| {
            let dir = data.join(format!("{OFFSETS_TOPIC}-{p}"));
            std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path())
        })
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    let (mut open_ms, mut read_ms, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..rounds {
        let files = files.clone();
        let t = tokio::task::spawn_blocking(move || raw::read_files(&files, 1 << 20)).await??;
        bytes = t.bytes;
        read_ms.push(ms(t.elapsed));
        let start = Instant::now();
        let c = Coordinator::open(engine.clone(), gcfg.clone()).await?;
        open_ms.push(ms(start.elapsed()));
        let loaded = c.list().len();
        anyhow::ensure!(loaded == groups_n, "the coordinator loaded {loaded} groups of {groups_n}");
    }
    let (m, lo, hi) = ratio(&read_ms, &open_ms);
    println!(
        "coordinator start-up, {groups_n} groups x 4 offsets ({:.1} MB, written in {:.1} s)  {:>8.1} ms  vs plain read of the files {:>6.1} ms  read/open median {m:.3} IQR {lo:.3}-{hi:.3}",
        bytes as f64 / 1e6,
        filled.as_secs_f64(),
        median(open_ms),
        median(read_ms),
    );
    engine.close().await?;
    Ok(())
}
