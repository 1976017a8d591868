//! Consumer groups: the coordinator of Kafka's classic group protocol, with committed offsets
//! kept in the log itself.
//!
//! - [`group`]: one group's state machine (join, sync, heartbeat, leave, timers), on the
//!   engine's clock.
//! - `store`: committed offsets are records of the internal compacted topic
//!   `__consumer_offsets` (a group's records all in one partition, by a hash of its id): a
//!   commit is durable before it is answered, tiers and compacts like any topic, and comes back
//!   with a restore from the bucket. On start the coordinator reads the latest record of every
//!   key.
//! - [`Coordinator`]: every group, the timers task, and what the Kafka APIs, the HTTP API and
//!   the CLI ask of it (commit, fetch, list, describe, delete, reset, lag).

pub mod group;
pub mod reset;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use serde::Serialize;

use crate::config::GroupsConfig;
use crate::engine::{Engine, OFFSETS_TOPIC};
use crate::error::{Error, Result};
pub use group::{Committed, JoinRequest, JoinResponse, JoinedMember, State, SyncRequest, SyncResponse};
use group::{Group, Limits};
pub use reset::{ResetRow, ResetTo};

/// Group states now, by `state` (a gauge).
pub const GROUPS: &str = "tierlog_groups";
/// Rebalances completed, over every group.
pub const REBALANCES: &str = "tierlog_group_rebalances_total";
/// Log end minus committed offset, by `group`, `topic` and `partition`.
pub const LAG: &str = "tierlog_group_lag";
/// Offset commits stored.
pub const COMMITS: &str = "tierlog_group_commits_total";

/// How often the timers run (sessions, join and sync deadlines); the precision of every group
/// timeout.
const TICK_MS: u64 = 100;
/// How often offsets of empty groups are checked for expiry.
const EXPIRY_EVERY_MS: i64 = 60_000;

/// The outcome of a group request, as Kafka's error codes (the coordinator speaks Kafka's
/// protocol; the HTTP API and the CLI name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum GroupError {
    None = 0,
    UnknownTopicOrPartition = 3,
    OffsetMetadataTooLarge = 12,
    CoordinatorNotAvailable = 15,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    KafkaStorageError = 56,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    FencedInstanceId = 82,
    GroupSubscribedToTopic = 86,
}

impl GroupError {
    pub fn code(self) -> i16 {
        self as i16
    }
    pub fn is_ok(self) -> bool {
        self == GroupError::None
    }
    pub fn name(self) -> &'static str {
        match self {
            GroupError::None => "NONE",
            GroupError::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            GroupError::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
            GroupError::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            GroupError::IllegalGeneration => "ILLEGAL_GENERATION",
            GroupError::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            GroupError::InvalidGroupId => "INVALID_GROUP_ID",
            GroupError::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            GroupError::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            GroupError::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            GroupError::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            GroupError::NonEmptyGroup => "NON_EMPTY_GROUP",
            GroupError::GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            GroupError::MemberIdRequired => "MEMBER_ID_REQUIRED",
            GroupError::FencedInstanceId => "FENCED_INSTANCE_ID",
            GroupError::GroupSubscribedToTopic => "GROUP_SUBSCRIBED_TO_TOPIC",
        }
    }
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest commit metadata string kept (Kafka's `offset.metadata.max.bytes`).
pub const MAX_METADATA_BYTES: usize = 4096;

/// One offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A group in a listing.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// A member, described.
#[derive(Debug, Clone, Serialize)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    #[serde(skip)]
    pub metadata: Bytes,
    #[serde(skip)]
    pub assignment: Bytes,
    /// The partitions assigned (consumer protocol), by topic.
    pub assigned: Vec<(String, Vec<i32>)>,
}

/// A group, described.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDescription {
    pub group: String,
    pub state: &'static str,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: Option<String>,
    pub members: Vec<MemberDescription>,
    /// Committed offsets with the log end and lag of each partition.
    pub offsets: Vec<OffsetLag>,
}

/// A committed offset and how far behind the log end it is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OffsetLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub metadata: Option<String>,
    pub commit_ms: i64,
    /// The partition's high watermark; `None` when the topic or partition is gone.
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
}

/// The group coordinator of one engine.
pub struct Coordinator {
    engine: Engine,
    config: GroupsConfig,
    limits: Limits,
    /// Partitions of `__consumer_offsets` (fixed when it was created).
    partitions: u32,
    groups: Mutex<HashMap<String, Group>>,
    /// Commits and deletes of one `__consumer_offsets` partition are appended one at a time,
    /// so their records land in the order their groups' state changed.
    writes: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("partitions", &self.partitions).finish_non_exhaustive()
    }
}

impl Coordinator {
    /// The coordinator of `engine`: creates `__consumer_offsets` if it is missing (not on a
    /// read-only engine), then loads the latest committed offset of every group. Timers do not
    /// run until [`Coordinator::start_timers`].
    pub async fn open(engine: Engine, config: GroupsConfig) -> Result<Arc<Self>> {
        config.validate()?;
        if !engine.config().read_only {
            match engine.ensure_internal_topic(OFFSETS_TOPIC, store::topic_config(&config)).await {
                Ok(()) => {}
                // The bucket holds the offsets of another node, or of this data dir before it was
                // emptied: they come back with a restore; until then nothing is committed here.
                Err(Error::TopicExists { in_bucket: true, .. }) => tracing::warn!(
                    "the bucket holds {OFFSETS_TOPIC} but this data dir does not: restore it to bring committed offsets back; until then offset commits fail"
                ),
                Err(e) => return Err(e),
            }
        }
        let partitions = engine.topic_config(OFFSETS_TOPIC).map(|c| c.partitions).unwrap_or(0);
        let limits = Limits {
            initial_rebalance_delay_ms: config.initial_rebalance_delay_ms,
            min_session_timeout_ms: config.min_session_timeout_ms,
            max_session_timeout_ms: config.max_session_timeout_ms,
            offsets_retention_ms: config.offsets_retention_ms,
        };
        let started = std::time::Instant::now();
        let groups = if partitions > 0 { store::load(&engine, partitions).await? } else { HashMap::new() };
        tracing::info!(
            groups = groups.len(),
            offsets = groups.values().map(|g| g.offsets.len()).sum::<usize>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "group coordinator loaded"
        );
        let writes = (0..partitions.max(1)).map(|_| tokio::sync::Mutex::new(())).collect();
        Ok(Arc::new(Self { engine, config, limits, partitions, groups: Mutex::new(groups), writes }))
    }

    /// Runs the timers every 100 ms of the engine's clock until the coordinator is dropped.
    pub fn start_timers(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let clock = self.engine.clock().clone();
        tokio::spawn(async move {
            let mut ticker = tiering::clock::Interval::new(clock, TICK_MS);
            let mut last_expiry = i64::MIN;
            loop {
                ticker.tick().await;
                let Some(c) = weak.upgrade() else { return };
                let now = c.engine.clock().now_ms();
                let expire = now.saturating_sub(last_expiry) >= EXPIRY_EVERY_MS;
                if expire {
                    last_expiry = now;
                }
                if let Err(e) = c.run_timers(expire).await {
                    tracing::warn!(error = %e, "group timers: writing expired offsets failed; the next round retries");
                }
            }
        });
    }

    pub fn config(&self) -> &GroupsConfig {
        &self.config
    }

    fn now(&self) -> i64 {
        self.engine.clock().now_ms()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().expect("invariant: groups lock not poisoned")
    }

    /// The timers of every group at the engine's clock now; with `expire`, also the expiry of
    /// empty groups' offsets (their tombstones are written before this returns).
    pub async fn run_timers(&self, expire: bool) -> Result<()> {
        let now = self.now();
        let mut expired: Vec<(String, Vec<(String, i32)>)> = Vec::new();
        let mut empty: Vec<(String, i32, i64)> = Vec::new();
        {
            let mut groups = self.lock();
            let limits = if expire { self.limits } else { Limits { offsets_retention_ms: u64::MAX, ..self.limits } };
            for g in groups.values_mut() {
                let before = g.rebalances;
                let gone = g.tick(now, &limits);
                metrics::counter!(REBALANCES).increment(g.rebalances - before);
                if !gone.is_empty() {
                    expired.push((g.id.clone(), gone));
                }
                if std::mem::take(&mut g.became_empty) && !g.offsets.is_empty() {
                    empty.push((g.id.clone(), g.generation, now));
                }
            }
            // A group with neither members nor offsets is forgotten (as Kafka's).
            groups.retain(|_, g| !g.is_idle());
        }
        for (group, generation, since) in empty {
            self.write(&group, store::group_record(&group, generation, since)).await?;
        }
        for (group, keys) in expired {
            tracing::info!(group, offsets = keys.len(), "committed offsets expired");
            let mut records: Vec<_> = keys.iter().map(|(t, p)| store::offset_tombstone(&group, t, *p)).collect();
            if self.lock().get(&group).is_some_and(|g| g.offsets.is_empty()) {
                records.push(store::group_tombstone(&group));
                self.lock().remove(&group);
            }
            self.write_many(&group, records).await?;
        }
        Ok(())
    }

    fn partition_of(&self, group: &str) -> u32 {
        store::partition_of(group, self.partitions.max(1))
    }

    async fn write(&self, group: &str, record: tiering::batch::Record) -> Result<i64> {
        self.write_many(group, vec![record]).await
    }

    /// Appends `records` to the group's partition; the log offset of the first.
    async fn write_many(&self, group: &str, records: Vec<tiering::batch::Record>) -> Result<i64> {
        if self.partitions == 0 {
            return Err(Error::ReadOnly { op: "committing offsets" });
        }
        let p = self.partition_of(group);
        let batch = store::batch(&records);
        // Queued in order under the lock; made durable outside it, so the commits of many
        // members and groups share one group-committed fsync.
        let durable = {
            let _order = self.writes[p as usize].lock().await;
            self.engine.enqueue_internal(OFFSETS_TOPIC, p, batch).await?
        };
        Ok(durable.await?.base_offset)
    }

    /// A JoinGroup; resolves when the join phase ends (or at once).
    pub async fn join(&self, group: &str, req: JoinRequest) -> JoinResponse {
        if group.is_empty() {
            return JoinResponse::error(GroupError::InvalidGroupId, &req.member_id);
        }
        let (mut rx, mut deadline) = {
            let mut groups = self.lock();
            let g = groups.entry(group.to_owned()).or_insert_with(|| Group::new(group));
            let before = g.rebalances;
            let rx = g.join(req.clone(), self.now(), &self.limits);
            metrics::counter!(REBALANCES).increment(g.rebalances - before);
            (rx, g.join_deadline())
        };
        let lost = || JoinResponse::error(GroupError::CoordinatorNotAvailable, &req.member_id);
        // The join phase ends on time, not on the next timer tick: a waiting member wakes at the
        // deadline (later joins may have moved it) and ends the phase itself.
        while let Some(d) = deadline {
            let wait = d.saturating_sub(self.now()).max(0) as u64;
            tokio::select! {
                answer = &mut rx => return answer.unwrap_or_else(|_| lost()),
                () = self.engine.clock().sleep(wait) => {
                    let mut groups = self.lock();
                    deadline = groups.get_mut(group).and_then(|g| {
                        g.complete_join_if_due(self.now());
                        g.join_deadline()
                    });
                }
            }
        }
        rx.await.unwrap_or_else(|_| lost())
    }

    /// A SyncGroup; resolves when the leader's assignment is in (or at once).
    pub async fn sync(&self, group: &str, req: SyncRequest) -> SyncResponse {
        let rx = {
            let mut groups = self.lock();
            let Some(g) = groups.get_mut(group) else {
                return SyncResponse::error(GroupError::UnknownMemberId);
            };
            g.sync(req, self.now())
        };
        rx.await.unwrap_or_else(|_| SyncResponse::error(GroupError::CoordinatorNotAvailable))
    }

    pub fn heartbeat(&self, group: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> GroupError {
        let mut groups = self.lock();
        match groups.get_mut(group) {
            Some(g) => g.heartbeat(member_id, instance_id, generation, self.now()),
            None => GroupError::UnknownMemberId,
        }
    }

    /// A LeaveGroup: one answer per member; the group's own error (unknown group).
    pub async fn leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> std::result::Result<Vec<GroupError>, GroupError> {
        let (out, empty) = {
            let mut groups = self.lock();
            let Some(g) = groups.get_mut(group) else { return Err(GroupError::UnknownMemberId) };
            let before = g.rebalances;
            let out = g.leave(members, self.now());
            metrics::counter!(REBALANCES).increment(g.rebalances - before);
            let empty = (std::mem::take(&mut g.became_empty) && !g.offsets.is_empty())
                .then(|| (g.generation, g.empty_since_ms.unwrap_or(0)));
            (out, empty)
        };
        if let Some((generation, since)) = empty
            && let Err(e) = self.write(group, store::group_record(group, generation, since)).await
        {
            tracing::warn!(group, error = %e, "recording that the group became empty failed");
        }
        Ok(out)
    }

    /// An OffsetCommit: every offset is checked, then all are written as one batch and durable
    /// before this returns. `generation` -1 with no member is a commit from outside the group
    /// (an admin tool, a consumer using `assign()`), taken only while the group has no members.
    pub async fn commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: &[OffsetCommit],
    ) -> std::result::Result<Vec<GroupError>, GroupError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        {
            let mut groups = self.lock();
            let now = self.now();
            let g = groups.entry(group.to_owned()).or_insert_with(|| Group::new(group));
            let checked = g.check_commit(member_id, instance_id, generation, now);
            if let Err(e) = checked {
                if g.is_idle() {
                    groups.remove(group);
                }
                return Err(e);
            }
        }
        let mut answers = vec![GroupError::None; offsets.len()];
        let mut records = Vec::with_capacity(offsets.len());
        let mut kept = Vec::with_capacity(offsets.len());
        let now = self.now();
        for (i, o) in offsets.iter().enumerate() {
            if o.metadata.as_ref().is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
                answers[i] = GroupError::OffsetMetadataTooLarge;
                continue;
            }
            if o.partition < 0 || self.engine.log(&o.topic, o.partition as u32).is_err() {
                answers[i] = GroupError::UnknownTopicOrPartition;
                continue;
            }
            records.push(store::offset_record(group, o, now));
            kept.push(i);
        }
        if records.is_empty() {
            return Ok(answers);
        }
        let base = match self.write_many(group, records).await {
            Ok(base) => base,
            Err(e) => {
                tracing::warn!(group, error = %e, "offset commit failed");
                for &i in &kept {
                    answers[i] = GroupError::KafkaStorageError;
                }
                return Ok(answers);
            }
        };
        let mut groups = self.lock();
        let g = groups.entry(group.to_owned()).or_insert_with(|| Group::new(group));
        for (n, &i) in kept.iter().enumerate() {
            let o = &offsets[i];
            let c = Committed {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata.clone(),
                commit_ms: now,
                log_offset: base + n as i64,
            };
            g.apply_commit(&o.topic, o.partition, c);
        }
        metrics::counter!(COMMITS).increment(kept.len() as u64);
        Ok(answers)
    }

    /// Committed offsets of `group`: of the given partitions (`None` where nothing is
    /// committed), or with `topics` `None`, every one it holds.
    pub fn committed(
        &self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<Committed>)> {
        let groups = self.lock();
        let g = groups.get(group);
        match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p)))
                .map(|(t, p)| (t.clone(), p, g.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned())))
                .collect(),
            None => g
                .map(|g| g.offsets.iter().map(|((t, p), c)| (t.clone(), *p, Some(c.clone()))).collect())
                .unwrap_or_default(),
        }
    }

    /// Every group, sorted by id.
    pub fn list(&self) -> Vec<GroupSummary> {
        let groups = self.lock();
        let mut out: Vec<GroupSummary> = groups
            .values()
            .map(|g| GroupSummary {
                group: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect();
        out.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    /// A group's members and offsets (with lag); `None` when the coordinator has no such group.
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let g = groups.get(group)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .iter()
            .map(|m| {
                let metadata =
                    m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone()).unwrap_or_default();
                MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    assigned: if g.protocol_type.as_deref() == Some("consumer") {
                        assignment_partitions(&m.assignment)
                    } else {
                        Vec::new()
                    },
                    metadata,
                    assignment: m.assignment.clone(),
                }
            })
            .collect();
        let offsets = g.offsets.iter().map(|((t, p), c)| self.lag_of(t, *p, c)).collect();
        Some(GroupDescription {
            group: g.id.clone(),
            state: g.state.name(),
            generation: g.generation,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol,
            leader: g.leader.clone(),
            members,
            offsets,
        })
    }

    fn lag_of(&self, topic: &str, partition: i32, c: &Committed) -> OffsetLag {
        let log_end =
            u32::try_from(partition).ok().and_then(|p| self.engine.log(topic, p).ok()).map(|l| l.high_watermark());
        OffsetLag {
            topic: topic.to_owned(),
            partition,
            committed: c.offset,
            metadata: c.metadata.clone(),
            commit_ms: c.commit_ms,
            log_end,
            lag: log_end.map(|e| (e - c.offset).max(0)),
        }
    }

    /// Deletes an empty group: tombstones for its offsets and its record, then it is gone.
    pub async fn delete(&self, group: &str) -> std::result::Result<(), GroupError> {
        let keys: Vec<(String, i32)> = {
            let groups = self.lock();
            let Some(g) = groups.get(group) else { return Err(GroupError::GroupIdNotFound) };
            g.check_delete()?;
            g.offsets.keys().cloned().collect()
        };
        let mut records: Vec<_> = keys.iter().map(|(t, p)| store::offset_tombstone(group, t, *p)).collect();
        records.push(store::group_tombstone(group));
        if let Err(e) = self.write_many(group, records).await {
            tracing::warn!(group, error = %e, "deleting the group failed");
            return Err(GroupError::KafkaStorageError);
        }
        let mut groups = self.lock();
        // A member may have joined meanwhile: then only the offsets written off go.
        if let Some(g) = groups.get_mut(group) {
            for k in &keys {
                g.offsets.remove(k);
            }
            if g.is_idle() {
                groups.remove(group);
            }
        }
        tracing::info!(group, offsets = keys.len(), "group deleted");
        Ok(())
    }

    /// OffsetDelete: forgets the committed offsets of these partitions, unless a member of the
    /// group subscribes to their topic (GROUP_SUBSCRIBED_TO_TOPIC).
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> std::result::Result<Vec<GroupError>, GroupError> {
        let (answers, keys) = {
            let groups = self.lock();
            let Some(g) = groups.get(group) else { return Err(GroupError::GroupIdNotFound) };
            if g.state == State::Dead {
                return Err(GroupError::GroupIdNotFound);
            }
            let subscribed = g.subscribed();
            let mut keys = Vec::new();
            let answers = partitions
                .iter()
                .map(|(t, p)| {
                    if subscribed.contains(t) {
                        GroupError::GroupSubscribedToTopic
                    } else {
                        if g.offsets.contains_key(&(t.clone(), *p)) {
                            keys.push((t.clone(), *p));
                        }
                        GroupError::None
                    }
                })
                .collect::<Vec<_>>();
            (answers, keys)
        };
        if keys.is_empty() {
            return Ok(answers);
        }
        let records = keys.iter().map(|(t, p)| store::offset_tombstone(group, t, *p)).collect();
        if let Err(e) = self.write_many(group, records).await {
            tracing::warn!(group, error = %e, "deleting offsets failed");
            return Err(GroupError::KafkaStorageError);
        }
        if let Some(g) = self.lock().get_mut(group) {
            for k in &keys {
                g.offsets.remove(k);
            }
        }
        Ok(answers)
    }

    /// Sets the metric gauges that describe groups now: states and lag per partition.
    pub fn record_metrics(&self) {
        let groups = self.lock();
        let mut by_state: std::collections::BTreeMap<&'static str, u64> =
            ["Empty", "PreparingRebalance", "CompletingRebalance", "Stable"].into_iter().map(|s| (s, 0)).collect();
        for g in groups.values() {
            *by_state.entry(g.state.name()).or_default() += 1;
            for ((t, p), c) in &g.offsets {
                if let Some(lag) = self.lag_of(t, *p, c).lag {
                    let labels = [("group", g.id.clone()), ("topic", t.clone()), ("partition", p.to_string())];
                    metrics::gauge!(LAG, &labels).set(lag as f64);
                }
            }
        }
        for (state, n) in by_state {
            metrics::gauge!(GROUPS, "state" => state).set(n as f64);
        }
    }
}

/// The topics of a consumer-protocol subscription (member metadata); none if it does not decode.
pub fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    use bytes::Buf;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut b = metadata.clone();
    if b.remaining() < 2 {
        return Vec::new();
    }
    let version = b.get_i16().clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut b, version)
        .map(|s| s.topics.into_iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The partitions of a consumer-protocol assignment, by topic; none if it does not decode.
pub fn assignment_partitions(assignment: &Bytes) -> Vec<(String, Vec<i32>)> {
    use bytes::Buf;
    use kafka_protocol::messages::ConsumerProtocolAssignment;
    use kafka_protocol::protocol::Decodable;
    let mut b = assignment.clone();
    if b.remaining() < 2 {
        return Vec::new();
    }
    let version = b.get_i16().clamp(0, 3);
    ConsumerProtocolAssignment::decode(&mut b, version)
        .map(|a| a.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect())
        .unwrap_or_default()
}
