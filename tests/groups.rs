//! The group coordinator through its public API, on the manual clock: the classic protocol's
//! state machine (MEMBER_ID_REQUIRED, the initial delay, generations, the leader's assignment,
//! rebalances on join, leave and session expiry, static members), the error codes of commits
//! and heartbeats during a rebalance, committed offsets kept in `__consumer_offsets` across a
//! restart, offset expiry, deletion and resets.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use tierlog::batch::{BatchBuilder, Compression, Record};
use tierlog::config::GroupsConfig;
use tierlog::groups::{Coordinator, GroupError, JoinRequest, JoinResponse, OffsetCommit, ResetTo, SyncRequest};
use tierlog::{Engine, EngineConfig, ManualClock};

const T0: i64 = 1_700_000_000_000;

fn config(delay_ms: u64) -> GroupsConfig {
    GroupsConfig { initial_rebalance_delay_ms: delay_ms, offsets_topic_partitions: 2, ..GroupsConfig::default() }
}

fn join(member: &str, instance: Option<&str>, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        member_id: member.to_owned(),
        instance_id: instance.map(str::to_owned),
        client_id: "test".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols.iter().map(|(n, m)| (n.to_string(), Bytes::from(m.to_string()))).collect(),
        require_known_member: true,
    }
}

fn sync(generation: i32, member: &str, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        generation,
        member_id: member.to_owned(),
        instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::from(a.to_string()))).collect(),
    }
}

fn commit(topic: &str, partition: i32, offset: i64, metadata: &str) -> OffsetCommit {
    OffsetCommit { topic: topic.into(), partition, offset, leader_epoch: -1, metadata: Some(metadata.into()) }
}

struct Setup {
    _dir: tempfile::TempDir,
    cfg: EngineConfig,
    clock: Arc<ManualClock>,
    engine: Engine,
    groups: Arc<Coordinator>,
}

async fn setup(delay_ms: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: EngineConfig = common::config(dir.path());
    cfg.groups = config(delay_ms);
    let clock = ManualClock::new(T0);
    let engine = Engine::open_with_clock(cfg.clone(), clock.clone()).await.unwrap();
    engine.create_topic("orders", tierlog::TopicConfig { partitions: 4, ..common::topic(None) }).await.unwrap();
    let groups = Coordinator::open(engine.clone(), cfg.groups.clone()).await.unwrap();
    Setup { _dir: dir, cfg, clock, engine, groups }
}

/// A member joins as a v4+ client does: MEMBER_ID_REQUIRED, then again with the id.
async fn member_id(groups: &Coordinator, group: &str) -> String {
    let first = groups.join(group, join("", None, &[("range", "m")])).await;
    assert_eq!(first.error, GroupError::MemberIdRequired);
    assert!(!first.member_id.is_empty());
    first.member_id
}

fn spawn_join(groups: &Arc<Coordinator>, group: &str, req: JoinRequest) -> tokio::task::JoinHandle<JoinResponse> {
    let (g, group) = (groups.clone(), group.to_owned());
    tokio::spawn(async move { g.join(&group, req).await })
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn members_join_after_the_initial_delay_sync_the_leaders_assignment_and_rebalance_on_leave() {
    let s = setup(3000).await;
    let g = &s.groups;
    let a = member_id(g, "app").await;
    let b = member_id(g, "app").await;
    let ja = spawn_join(g, "app", join(&a, None, &[("range", "ma"), ("roundrobin", "ra")]));
    settle().await;
    s.clock.advance(1000);
    g.run_timers(false).await.unwrap();
    let jb = spawn_join(g, "app", join(&b, None, &[("roundrobin", "rb"), ("range", "mb")]));
    settle().await;
    // The delay runs from the last join: 1 s after b joined it still waits.
    s.clock.advance(2500);
    g.run_timers(false).await.unwrap();
    settle().await;
    assert!(!ja.is_finished() && !jb.is_finished(), "the initial delay is extended by each join");
    assert_eq!(g.describe("app").unwrap().state, "PreparingRebalance");
    s.clock.advance(600);
    g.run_timers(false).await.unwrap();
    let (ra, rb) = (ja.await.unwrap(), jb.await.unwrap());
    assert_eq!((ra.error, rb.error), (GroupError::None, GroupError::None));
    assert_eq!((ra.generation, rb.generation), (1, 1));
    assert_eq!(ra.leader, a, "the first to join leads");
    assert_eq!(ra.protocol_name.as_deref(), Some("range"), "both support range; votes tie, the leader's order wins");
    let metas: Vec<_> = ra.members.iter().map(|m| (m.member_id.clone(), m.metadata.clone())).collect();
    assert_eq!(metas, vec![(a.clone(), Bytes::from("ma")), (b.clone(), Bytes::from("mb"))]);
    assert!(rb.members.is_empty(), "only the leader gets the subscriptions");

    // The follower's sync waits for the leader's; assignments are passed through verbatim.
    let (g2, b2) = (g.clone(), b.clone());
    let sb = tokio::spawn(async move { g2.sync("app", sync(1, &b2, &[])).await });
    settle().await;
    assert!(!sb.is_finished());
    assert_eq!(g.heartbeat("app", &b, None, 1), GroupError::None, "heartbeats while syncing are fine");
    let commit_syncing = g.commit("app", 1, &a, None, &[commit("orders", 0, 5, "")]).await;
    assert_eq!(commit_syncing.unwrap_err(), GroupError::RebalanceInProgress);
    let sa = g.sync("app", sync(1, &a, &[(&a, "\x00p0p1"), (&b, "\x00p2p3")])).await;
    let sb = sb.await.unwrap();
    assert_eq!((sa.error, sa.assignment.clone()), (GroupError::None, Bytes::from("\x00p0p1")));
    assert_eq!((sb.error, sb.assignment.clone()), (GroupError::None, Bytes::from("\x00p2p3")));
    assert_eq!(g.describe("app").unwrap().state, "Stable");

    // Commits: the right generation is stored; others get Kafka's codes.
    let ok = g.commit("app", 1, &a, None, &[commit("orders", 0, 10, "meta-a"), commit("orders", 1, 11, "")]).await;
    assert_eq!(ok.unwrap(), vec![GroupError::None, GroupError::None]);
    assert_eq!(
        g.commit("app", 0, &a, None, &[commit("orders", 0, 1, "")]).await.unwrap_err(),
        GroupError::IllegalGeneration
    );
    assert_eq!(
        g.commit("app", 1, "who", None, &[commit("orders", 0, 1, "")]).await.unwrap_err(),
        GroupError::UnknownMemberId
    );
    assert_eq!(
        g.commit("app", -1, "", None, &[commit("orders", 0, 1, "")]).await.unwrap_err(),
        GroupError::UnknownMemberId,
        "a commit from outside the group is refused while it has members"
    );
    let unknown = g.commit("app", 1, &a, None, &[commit("nope", 0, 1, "")]).await.unwrap();
    assert_eq!(unknown, vec![GroupError::UnknownTopicOrPartition]);
    assert_eq!(g.heartbeat("app", &a, None, 2), GroupError::IllegalGeneration);
    assert_eq!(g.heartbeat("app", "who", None, 1), GroupError::UnknownMemberId);

    // b leaves: a learns of the rebalance from its heartbeat, rejoins alone, generation 2.
    assert_eq!(g.leave("app", &[(b.clone(), None)]).await.unwrap(), vec![GroupError::None]);
    assert_eq!(g.heartbeat("app", &a, None, 1), GroupError::RebalanceInProgress);
    let in_rebalance = g.commit("app", 1, &a, None, &[commit("orders", 0, 12, "")]).await;
    assert_eq!(
        in_rebalance.unwrap(),
        vec![GroupError::None],
        "a member of the current generation may commit while others rejoin"
    );
    let ra = g.join("app", join(&a, None, &[("range", "ma")])).await;
    assert_eq!((ra.error, ra.generation, ra.leader.clone()), (GroupError::None, 2, a.clone()));
    let sa = g.sync("app", sync(2, &a, &[(&a, "all")])).await;
    assert_eq!(sa.assignment, Bytes::from("all"));

    // a falls silent: after its session timeout the group is empty (generation 3).
    s.clock.advance(10_001);
    g.run_timers(false).await.unwrap();
    let d = g.describe("app").unwrap();
    assert_eq!((d.state, d.generation, d.members.len()), ("Empty", 3, 0));
    let committed = g.committed("app", None);
    assert_eq!(committed.len(), 2);
    assert_eq!(committed[0].2.as_ref().map(|c| (c.offset, c.metadata.clone())), Some((12, Some("".into()))));
    s.engine.close().await.unwrap();
}

#[tokio::test]
async fn a_static_member_rejoining_within_its_session_keeps_its_assignment_without_a_rebalance() {
    let s = setup(0).await;
    let g = &s.groups;
    let ja = spawn_join(g, "svc", join("", Some("a-1"), &[("range", "ma")]));
    let ra = ja.await.unwrap();
    assert_eq!((ra.error, ra.generation), (GroupError::None, 1), "static members need no MEMBER_ID_REQUIRED");
    let b = member_id(g, "svc").await;
    let ja = spawn_join(g, "svc", join(&ra.member_id, Some("a-1"), &[("range", "ma")]));
    let rb = g.join("svc", join(&b, None, &[("range", "mb")])).await;
    let ra = ja.await.unwrap();
    assert_eq!((ra.generation, rb.generation), (2, 2));
    let (g2, bid) = (g.clone(), b.clone());
    let sb = tokio::spawn(async move { g2.sync("svc", sync(2, &bid, &[])).await });
    settle().await;
    g.sync("svc", sync(2, &ra.member_id, &[(&ra.member_id, "A"), (&b, "B")])).await;
    assert_eq!(sb.await.unwrap().assignment, Bytes::from("B"));

    // The static member restarts: a new member id, the same generation, the same assignment.
    // Its metadata differs (a consumer's names the partitions it owned); the protocol the group
    // picks does not, so there is no rebalance (as Kafka).
    let old = ra.member_id.clone();
    let again = g.join("svc", join("", Some("a-1"), &[("range", "ma, owned A")])).await;
    assert_eq!(again.error, GroupError::None);
    assert_ne!(again.member_id, old);
    assert_eq!(again.generation, 2, "no rebalance");
    assert!(again.skip_assignment, "the static leader must not compute a new assignment");
    let sa = g.sync("svc", sync(2, &again.member_id, &[])).await;
    assert_eq!(sa.assignment, Bytes::from("A"));
    assert_eq!(g.heartbeat("svc", &b, None, 2), GroupError::None, "the other member saw no rebalance");
    assert_eq!(g.describe("svc").unwrap().state, "Stable");
    // The old instance is fenced.
    let fenced = SyncRequest { instance_id: Some("a-1".into()), ..sync(2, &old, &[]) };
    assert_eq!(g.sync("svc", fenced).await.error, GroupError::FencedInstanceId);
    assert_eq!(g.heartbeat("svc", &old, Some("a-1"), 2), GroupError::FencedInstanceId);
    s.engine.close().await.unwrap();
}

#[tokio::test]
async fn bad_joins_get_kafkas_errors() {
    let s = setup(0).await;
    let g = &s.groups;
    let short = JoinRequest { session_timeout_ms: 10, ..join("", None, &[("range", "m")]) };
    assert_eq!(g.join("x", short).await.error, GroupError::InvalidSessionTimeout);
    assert_eq!(g.join("x", join("ghost", None, &[("range", "m")])).await.error, GroupError::UnknownMemberId);
    assert_eq!(g.join("", join("", None, &[("range", "m")])).await.error, GroupError::InvalidGroupId);
    let a = member_id(g, "x").await;
    assert_eq!(g.join("x", join(&a, None, &[("range", "m")])).await.error, GroupError::None);
    let b = member_id(g, "x").await;
    let other = g.join("x", join(&b, None, &[("sticky", "m")])).await;
    assert_eq!(other.error, GroupError::InconsistentGroupProtocol, "no protocol in common");
    assert_eq!(g.delete("x").await.unwrap_err(), GroupError::NonEmptyGroup);
    assert_eq!(g.delete("nope").await.unwrap_err(), GroupError::GroupIdNotFound);
    s.engine.close().await.unwrap();
}

fn records(n: usize, t0: i64, step: i64) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![],
            timestamp: t0 + i as i64 * step,
        })
        .collect();
    BatchBuilder::from_records(Compression::None, &recs)
}

#[tokio::test]
async fn committed_offsets_are_records_of_the_internal_topic_and_come_back_after_a_restart() {
    let s = setup(0).await;
    let g = s.groups.clone();
    let ok = g.commit("simple", -1, "", None, &[commit("orders", 0, 7, "ü meta"), commit("orders", 3, 9, "")]).await;
    assert_eq!(ok.unwrap(), vec![GroupError::None; 2]);
    g.commit("simple", -1, "", None, &[commit("orders", 0, 8, "later")]).await.unwrap();
    assert!(!s.engine.list_topics().contains(&"__consumer_offsets".to_owned()), "hidden from listings");
    assert!(s.engine.list_all_topics().contains(&"__consumer_offsets".to_owned()));
    let refused = s.engine.append("__consumer_offsets", 0, records(1, T0, 1)).await;
    assert!(matches!(refused, Err(tierlog::Error::InvalidTopicName { .. })), "{refused:?}");
    assert!(s.engine.delete_topic("__consumer_offsets").await.is_err());
    drop(g);
    s.engine.close().await.unwrap();

    let engine = Engine::open_with_clock(s.cfg.clone(), s.clock.clone()).await.unwrap();
    let g = Coordinator::open(engine.clone(), s.cfg.groups.clone()).await.unwrap();
    let c = g.committed("simple", None);
    let got: Vec<_> = c
        .iter()
        .map(|(t, p, c)| (t.as_str(), *p, c.as_ref().unwrap().offset, c.as_ref().unwrap().metadata.clone()))
        .collect();
    assert_eq!(got, vec![("orders", 0, 8, Some("later".into())), ("orders", 3, 9, Some("".into()))]);
    let unknown = g.committed("nobody", Some(&[("orders".into(), vec![0])]));
    assert!(unknown[0].2.is_none());
    assert_eq!(g.list().len(), 1);

    // An empty group's offsets expire after offsets_retention_ms; the tombstones survive a restart.
    s.clock.advance(s.cfg.groups.offsets_retention_ms as i64 + 1);
    g.run_timers(true).await.unwrap();
    assert!(g.committed("simple", None).is_empty());
    assert!(g.list().is_empty());
    drop(g);
    engine.close().await.unwrap();
    let engine = Engine::open_with_clock(s.cfg.clone(), s.clock.clone()).await.unwrap();
    let g = Coordinator::open(engine.clone(), s.cfg.groups.clone()).await.unwrap();
    assert!(g.list().is_empty(), "{:?}", g.list());
    engine.close().await.unwrap();
}

#[tokio::test]
async fn resets_move_offsets_inside_the_log_and_are_refused_while_the_group_has_members() {
    let s = setup(0).await;
    let g = &s.groups;
    // 100 records an hour apart in partition 0.
    s.engine.append("orders", 0, records(100, T0, 3_600_000)).await.unwrap();
    g.commit("r", -1, "", None, &[commit("orders", 0, 40, "")]).await.unwrap();
    let plan = g.reset_offsets("r", "orders", Some(0), ResetTo::Datetime(T0 + 10 * 3_600_000), false).await.unwrap();
    assert_eq!((plan[0].old, plan[0].new), (Some(40), 10));
    assert_eq!(g.committed("r", None)[0].2.as_ref().unwrap().offset, 40, "a dry run changes nothing");
    let shifted = g.reset_offsets("r", "orders", Some(0), ResetTo::ShiftBy(-1000), true).await.unwrap();
    assert_eq!(shifted[0].new, 0, "kept inside the log");
    let latest = g.reset_offsets("r", "orders", None, ResetTo::Latest, true).await.unwrap();
    assert_eq!(latest.iter().map(|r| r.new).collect::<Vec<_>>(), vec![100, 0, 0, 0]);
    assert_eq!(g.committed("r", None).len(), 4);
    assert!(g.reset_offsets("r", "orders", Some(1), ResetTo::ShiftBy(1), false).await.is_ok());
    assert!(g.reset_offsets("new", "orders", Some(0), ResetTo::ShiftBy(1), false).await.is_err(), "nothing to shift");

    let a = member_id(g, "r").await;
    g.join("r", join(&a, None, &[("range", "m")])).await;
    let refused = g.reset_offsets("r", "orders", None, ResetTo::Earliest, true).await;
    assert!(refused.unwrap_err().to_string().contains("no members"));
    s.engine.close().await.unwrap();
}
