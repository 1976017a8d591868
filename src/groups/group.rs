//! One consumer group's state machine: Kafka's classic group protocol, as its `GroupCoordinator`
//! runs it.
//!
//! ```text
//!            join                      every member joined, or the join deadline
//!   Empty ----------> PreparingRebalance ------------------------> CompletingRebalance
//!     ^                  ^     ^  (no member left: Empty)               |
//!     |  last member     |     |  join, leave, expiry                  | the leader's SyncGroup
//!     |  left            |     +---------------------------------- Stable <-+
//!     +------------------+---------------------------------------------+
//! ```
//!
//! - A rebalance moves the group to the next generation; members learn of it from a heartbeat
//!   (REBALANCE_IN_PROGRESS) and join again. The join phase ends when every member has joined,
//!   or at the join deadline (the largest rebalance timeout of the members), dropping those that
//!   did not. The first rebalance of an empty group also waits `initial_rebalance_delay_ms`,
//!   extended by each join, up to the rebalance timeout, so members starting together land in
//!   one generation.
//! - The leader (the first member to join, kept while it stays) gets every member's
//!   subscription and sends the assignment in its SyncGroup; the bytes are passed through
//!   verbatim. Followers' SyncGroups wait for it.
//! - A member is dropped when nothing was heard from it for its session timeout (a member
//!   waiting in a join or a sync is alive), and when the sync phase outlasts the rebalance
//!   timeout without its SyncGroup.
//! - Static members (`group.instance.id`) keep their place across restarts: a join with a known
//!   instance id and no member id replaces the old member id, and, when the group is stable and
//!   the subscription unchanged, no rebalance happens. The old id is fenced (FENCED_INSTANCE_ID).
//! - Joins on protocol v4+ without a member id get MEMBER_ID_REQUIRED and an id to join with
//!   (KIP-394); that id waits as pending for a session timeout.
//!
//! Nothing here reads a clock: every call takes `now` (ms, the engine's clock), and
//! [`Group::tick`] runs the timers, so the whole machine is tested on a manual clock.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::GroupError;

/// A group's state, named as Kafka names it (DescribeGroups, ListGroups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }

    /// The state Kafka's ListGroups filter names (case-insensitive), if any.
    pub fn parse(s: &str) -> Option<State> {
        [State::Empty, State::PreparingRebalance, State::CompletingRebalance, State::Stable, State::Dead]
            .into_iter()
            .find(|st| st.name().eq_ignore_ascii_case(s))
    }
}

/// A JoinGroup, as the coordinator takes it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Protocol v4+: a join without a member id gets MEMBER_ID_REQUIRED first.
    pub require_known_member: bool,
}

/// One member in the leader's JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup's answer.
#[derive(Debug, Clone)]
pub struct JoinResponse {
    pub error: GroupError,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol: for the leader only.
    pub members: Vec<JoinedMember>,
    /// A static leader rejoining a stable group: it must not compute a new assignment.
    pub skip_assignment: bool,
}

impl JoinResponse {
    /// An answer with only an error (and the member id it concerns).
    pub fn error(error: GroupError, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup, as the coordinator takes it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, bytes).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup's answer.
#[derive(Debug, Clone)]
pub struct SyncResponse {
    pub error: GroupError,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    /// An answer with only an error.
    pub fn error(error: GroupError) -> Self {
        Self { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A member of the group.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
    last_seen_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
    fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// When it was committed (the engine's clock).
    pub commit_ms: i64,
    /// Where its record is in its `__consumer_offsets` partition: a later commit that landed at
    /// a lower position (two commits racing) does not replace it.
    pub log_offset: i64,
}

/// Settings the state machine needs (from [`crate::config::GroupsConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    pub offsets_retention_ms: u64,
}

/// One group: membership, generation, and committed offsets.
#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: State,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order (the first is the next leader when the leader goes).
    pub members: Vec<Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, with the time they lapse.
    pending: HashMap<String, i64>,
    /// PreparingRebalance: when the join phase ends at the latest.
    join_deadline: Option<i64>,
    /// The initial delay of an empty group's first rebalance: the latest it may run to.
    initial_until: Option<i64>,
    /// CompletingRebalance: when members that have not synced are dropped.
    sync_deadline: Option<i64>,
    /// When the group last became empty (offsets of an empty group expire from then).
    pub empty_since_ms: Option<i64>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Rebalances completed since the coordinator started (a metric).
    pub rebalances: u64,
    /// Set when the group became empty: the coordinator records the moment in the log.
    pub became_empty: bool,
}

/// Kafka's member ids: the client id and a random suffix.
fn new_member_id(client_id: &str) -> String {
    let prefix: String = client_id.chars().take(64).collect();
    format!("{prefix}-{}", uuid::Uuid::from_u128(rand_u128()))
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(tiering::clock::wall_clock_nanos());
    let a = h.finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(a);
    ((a as u128) << 64) | h.finish() as u128
}

impl Group {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            join_deadline: None,
            initial_until: None,
            sync_deadline: None,
            empty_since_ms: None,
            offsets: BTreeMap::new(),
            rebalances: 0,
            became_empty: false,
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }
    fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let Some(first) = self.members.first() else { return Vec::new() };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| self.members.iter().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
            .collect()
    }

    /// Whether a member with `protocols` of `protocol_type` may join (Kafka's
    /// `supportsProtocols`).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self.candidates().iter().any(|c| protocols.iter().any(|(p, _)| p == c))
    }

    /// The protocol the most members prefer among those all support.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in &self.members {
            if let Some(pick) = m.protocols.iter().find(|(p, _)| candidates.contains(p))
                && let Some(v) = votes.iter_mut().find(|(c, _)| *c == pick.0)
            {
                v.1 += 1;
            }
        }
        // The first of the most voted, in the first member's order.
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    fn max_rebalance_timeout(&self) -> u64 {
        self.members.iter().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0)
    }

    /// The current generation's JoinGroup answer for `member`.
    fn join_answer(&self, member: &str) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if leader == member {
            self.members
                .iter()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: GroupError::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member.to_owned(),
            members,
            skip_assignment: false,
        }
    }

    /// A JoinGroup. The answer comes on the receiver: at once, or when the join phase ends.
    pub fn join(&mut self, req: JoinRequest, now: i64, limits: &Limits) -> oneshot::Receiver<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        let fail = |tx: oneshot::Sender<JoinResponse>, e: GroupError, id: &str| {
            let _ = tx.send(JoinResponse::error(e, id));
        };
        if !(limits.min_session_timeout_ms..=limits.max_session_timeout_ms).contains(&req.session_timeout_ms) {
            fail(tx, GroupError::InvalidSessionTimeout, &req.member_id);
            return rx;
        }
        if self.state == State::Dead {
            fail(tx, GroupError::CoordinatorNotAvailable, &req.member_id);
            return rx;
        }
        if req.member_id.is_empty() {
            if let Some(instance) = req.instance_id.clone() {
                let id = new_member_id(&req.client_id);
                if let Some(old) = self.by_instance(&instance).map(|m| m.id.clone()) {
                    if !self.supports(&req.protocol_type, &req.protocols) {
                        fail(tx, GroupError::InconsistentGroupProtocol, "");
                        return rx;
                    }
                    self.replace_static(&old, &id, req, tx, now);
                    return rx;
                }
                return self.add_member(id, req, tx, now, limits, rx);
            }
            let id = new_member_id(&req.client_id);
            if req.require_known_member {
                self.pending.insert(id.clone(), now.saturating_add(req.session_timeout_ms as i64));
                fail(tx, GroupError::MemberIdRequired, &id);
                return rx;
            }
            if !self.supports(&req.protocol_type, &req.protocols) {
                fail(tx, GroupError::InconsistentGroupProtocol, "");
                return rx;
            }
            return self.add_member(id, req, tx, now, limits, rx);
        }
        let id = req.member_id.clone();
        if self.pending.remove(&id).is_some() {
            if !self.supports(&req.protocol_type, &req.protocols) {
                fail(tx, GroupError::InconsistentGroupProtocol, &id);
                return rx;
            }
            return self.add_member(id, req, tx, now, limits, rx);
        }
        if let Some(instance) = &req.instance_id
            && let Some(m) = self.by_instance(instance)
            && m.id != id
        {
            fail(tx, GroupError::FencedInstanceId, &id);
            return rx;
        }
        let Some(m) = self.member(&id) else {
            fail(tx, GroupError::UnknownMemberId, &id);
            return rx;
        };
        if !self.supports(&req.protocol_type, &req.protocols) {
            fail(tx, GroupError::InconsistentGroupProtocol, &id);
            return rx;
        }
        let unchanged = m.same_protocols(&req.protocols);
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            // A member that lost its JoinGroup answer: the current generation again.
            State::CompletingRebalance if unchanged => {
                let _ = tx.send(self.join_answer(&id));
                self.touch(&id, now);
            }
            State::Stable if unchanged && !is_leader => {
                let _ = tx.send(self.join_answer(&id));
                self.touch(&id, now);
            }
            _ => {
                let m = self.member_mut(&id).expect("checked above");
                m.protocols = req.protocols;
                m.session_timeout_ms = req.session_timeout_ms;
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                m.last_seen_ms = now;
                if let Some(old) = m.join_waiter.replace(tx) {
                    let _ = old.send(JoinResponse::error(GroupError::UnknownMemberId, &id));
                }
                if self.state == State::PreparingRebalance {
                    self.maybe_complete_join(now);
                } else {
                    let why = if is_leader { "the leader rejoined" } else { "a member rejoined with new metadata" };
                    tracing::info!(group = %self.id, member = %id, "{why}");
                    self.prepare_rebalance(now, limits.initial_rebalance_delay_ms, why);
                }
            }
        }
        rx
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
        now: i64,
        limits: &Limits,
        rx: oneshot::Receiver<JoinResponse>,
    ) -> oneshot::Receiver<JoinResponse> {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.members.push(Member {
            id,
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            last_seen_ms: now,
        });
        if self.state == State::PreparingRebalance {
            if let (Some(until), Some(_)) = (self.initial_until, self.join_deadline) {
                // Each join during the initial delay extends it, up to the rebalance timeout.
                self.join_deadline = Some(now.saturating_add(limits.initial_rebalance_delay_ms as i64).min(until));
            }
            self.maybe_complete_join(now);
        } else {
            self.prepare_rebalance(now, limits.initial_rebalance_delay_ms, "a new member joined");
        }
        rx
    }

    /// A static member restarted: its new id takes the old one's place.
    fn replace_static(&mut self, old: &str, new: &str, req: JoinRequest, tx: oneshot::Sender<JoinResponse>, now: i64) {
        let state = self.state;
        let m = self.member_mut(old).expect("the caller found it");
        m.id = new.to_owned();
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.protocols = req.protocols;
        m.last_seen_ms = now;
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResponse::error(GroupError::FencedInstanceId, old));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResponse::error(GroupError::FencedInstanceId));
        }
        if self.leader.as_deref() == Some(old) {
            self.leader = Some(new.to_owned());
        }
        // As Kafka: a stable group rebalances for a restarted static member only when its
        // protocols change the group's pick (new metadata bytes alone, such as the partitions a
        // consumer owned, do not).
        let unchanged = self.protocol.is_some() && self.select_protocol() == self.protocol;
        match state {
            State::Stable if unchanged => {
                // No rebalance: the member gets the current generation and syncs to its old
                // assignment; a leader must not compute a new one.
                let mut answer = self.join_answer(new);
                answer.skip_assignment = self.leader.as_deref() == Some(new);
                let _ = tx.send(answer);
            }
            State::PreparingRebalance => {
                self.member_mut(new).expect("renamed above").join_waiter = Some(tx);
                self.maybe_complete_join(now);
            }
            _ => {
                self.member_mut(new).expect("renamed above").join_waiter = Some(tx);
                // The group has members: no initial delay.
                self.prepare_rebalance(now, 0, "a restarted static member changed the protocol the group picks");
            }
        }
    }

    /// Starts a rebalance: the join phase.
    /// `initial_delay_ms` applies when the group is empty (its first rebalance).
    fn prepare_rebalance(&mut self, now: i64, initial_delay_ms: u64, why: &str) {
        tracing::info!(group = %self.id, generation = self.generation, from = self.state.name(), why, "rebalancing");
        if self.state == State::CompletingRebalance {
            for m in &mut self.members {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResponse::error(GroupError::RebalanceInProgress));
                }
            }
        }
        let timeout = self.max_rebalance_timeout() as i64;
        if self.state == State::Empty && initial_delay_ms > 0 {
            let until = now.saturating_add(timeout);
            self.initial_until = Some(until);
            self.join_deadline = Some(now.saturating_add(initial_delay_ms as i64).min(until));
        } else {
            self.initial_until = None;
            self.join_deadline = Some(now.saturating_add(timeout));
        }
        self.sync_deadline = None;
        self.state = State::PreparingRebalance;
        self.maybe_complete_join(now);
    }

    /// Ends the join phase once every member (and no pending one) joined, unless the initial
    /// delay runs.
    fn maybe_complete_join(&mut self, now: i64) {
        if self.state != State::PreparingRebalance || self.initial_until.is_some() {
            return;
        }
        if self.members.iter().all(|m| m.join_waiter.is_some()) && self.pending.is_empty() {
            self.complete_join(now);
        }
    }

    /// The next generation: members that did not join are dropped, a protocol is chosen, and
    /// every joined member gets its answer (the leader with the members' subscriptions).
    fn complete_join(&mut self, now: i64) {
        let gone: Vec<String> = self.members.iter().filter(|m| m.join_waiter.is_none()).map(|m| m.id.clone()).collect();
        for id in gone {
            tracing::info!(group = %self.id, member = %id, "member removed: it did not rejoin before the join phase ended");
            self.drop_member(&id);
        }
        self.join_deadline = None;
        self.initial_until = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        self.rebalances += 1;
        if self.members.is_empty() {
            self.set_empty(now);
            return;
        }
        self.protocol = self.select_protocol();
        if self.leader.as_ref().is_none_or(|l| self.member(l).is_none()) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.state = State::CompletingRebalance;
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "group joined: waiting for the leader's assignment"
        );
        let timeout = self.max_rebalance_timeout() as i64;
        self.sync_deadline = Some(now.saturating_add(timeout));
        let answers: Vec<(usize, JoinResponse)> =
            self.members.iter().enumerate().map(|(i, m)| (i, self.join_answer(&m.id))).collect();
        for (i, answer) in answers {
            let m = &mut self.members[i];
            m.last_seen_ms = now;
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(answer);
            }
        }
    }

    fn set_empty(&mut self, now: i64) {
        self.state = State::Empty;
        self.protocol = None;
        self.leader = None;
        self.join_deadline = None;
        self.initial_until = None;
        self.sync_deadline = None;
        self.empty_since_ms = Some(now);
        self.became_empty = true;
    }

    /// Removes a member, answering whatever it waits on with UNKNOWN_MEMBER_ID.
    fn drop_member(&mut self, id: &str) {
        if let Some(i) = self.members.iter().position(|m| m.id == id) {
            let m = self.members.remove(i);
            if let Some(w) = m.join_waiter {
                let _ = w.send(JoinResponse::error(GroupError::UnknownMemberId, id));
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(SyncResponse::error(GroupError::UnknownMemberId));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// A member is gone (left, expired): the others rebalance.
    fn remove_member(&mut self, id: &str, now: i64, why: &'static str) {
        tracing::info!(group = %self.id, member = id, why, "member removed");
        self.drop_member(id);
        match self.state {
            State::Stable | State::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation = self.generation.wrapping_add(1).max(1);
                    self.set_empty(now);
                } else {
                    self.prepare_rebalance(now, 0, why);
                }
            }
            State::PreparingRebalance => {
                if self.members.is_empty() {
                    self.complete_join(now);
                } else {
                    self.maybe_complete_join(now);
                }
            }
            State::Empty | State::Dead => {}
        }
    }

    fn touch(&mut self, id: &str, now: i64) {
        if let Some(m) = self.member_mut(id) {
            m.last_seen_ms = now;
        }
    }

    /// Checks a request's member, instance id and generation.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if let Some(instance) = instance_id
            && let Some(m) = self.by_instance(instance)
            && m.id != member_id
        {
            return Err(GroupError::FencedInstanceId);
        }
        if self.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// A SyncGroup. The answer comes on the receiver: at once, or when the leader's arrives.
    pub fn sync(&mut self, req: SyncRequest, now: i64) -> oneshot::Receiver<SyncResponse> {
        let (tx, rx) = oneshot::channel();
        if matches!(self.state, State::Empty | State::Dead) {
            let _ = tx.send(SyncResponse::error(GroupError::UnknownMemberId));
            return rx;
        }
        if let Err(e) = self.check_member(&req.member_id, req.instance_id.as_deref(), req.generation) {
            let _ = tx.send(SyncResponse::error(e));
            return rx;
        }
        let mismatch = |mine: &Option<String>, theirs: &Option<String>| theirs.is_some() && theirs != mine;
        if mismatch(&self.protocol_type, &req.protocol_type) || mismatch(&self.protocol, &req.protocol_name) {
            let _ = tx.send(SyncResponse::error(GroupError::InconsistentGroupProtocol));
            return rx;
        }
        self.touch(&req.member_id, now);
        match self.state {
            State::PreparingRebalance => {
                let _ = tx.send(SyncResponse::error(GroupError::RebalanceInProgress));
            }
            State::Stable => {
                let _ = tx.send(self.sync_answer(&req.member_id));
            }
            State::CompletingRebalance => {
                let m = self.member_mut(&req.member_id).expect("checked");
                if let Some(old) = m.sync_waiter.replace(tx) {
                    let _ = old.send(SyncResponse::error(GroupError::UnknownMemberId));
                }
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in &mut self.members {
                        m.assignment = given.get(&m.id).cloned().unwrap_or_default();
                    }
                    self.state = State::Stable;
                    self.sync_deadline = None;
                    let answers: Vec<SyncResponse> = self.members.iter().map(|m| self.sync_answer(&m.id)).collect();
                    for (m, answer) in self.members.iter_mut().zip(answers) {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(answer);
                        }
                    }
                }
            }
            State::Empty | State::Dead => unreachable!("answered above"),
        }
        rx
    }

    fn sync_answer(&self, member: &str) -> SyncResponse {
        SyncResponse {
            error: GroupError::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.member(member).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    /// A Heartbeat: NONE while stable (or syncing), REBALANCE_IN_PROGRESS while members must
    /// join again.
    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: i64) -> GroupError {
        if self.state == State::Dead {
            return GroupError::CoordinatorNotAvailable;
        }
        if self.state == State::Empty {
            return GroupError::UnknownMemberId;
        }
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            return e;
        }
        self.touch(member_id, now);
        match self.state {
            State::PreparingRebalance => GroupError::RebalanceInProgress,
            _ => GroupError::None,
        }
    }

    /// A LeaveGroup of `(member id, instance id)`s: one answer each.
    pub fn leave(&mut self, members: &[(String, Option<String>)], now: i64) -> Vec<GroupError> {
        let mut out = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let found = match instance_id {
                Some(instance) => match self.by_instance(instance) {
                    None => Err(GroupError::UnknownMemberId),
                    Some(m) if !member_id.is_empty() && m.id != *member_id => Err(GroupError::FencedInstanceId),
                    Some(m) => Ok(m.id.clone()),
                },
                None if self.pending.remove(member_id).is_some() => {
                    self.maybe_complete_join(now);
                    out.push(GroupError::None);
                    continue;
                }
                None if self.member(member_id).is_some() => Ok(member_id.clone()),
                None => Err(GroupError::UnknownMemberId),
            };
            match found {
                Ok(id) => {
                    self.remove_member(&id, now, "LeaveGroup");
                    out.push(GroupError::None);
                }
                Err(e) => out.push(e),
            }
        }
        out
    }

    /// Whether a commit from this member and generation may be stored now (Kafka's
    /// `validateOffsetCommit`). A commit with no generation and no member (an admin tool, or a
    /// consumer with `assign()`) is taken only while the group has no members.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> Result<(), GroupError> {
        if self.state == State::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.check_member(member_id, instance_id, generation)?;
            if self.state == State::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress);
            }
            self.touch(member_id, now);
            return Ok(());
        }
        if self.state != State::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// Stores a commit that reached the log at `log_offset` (unless a later one is there).
    pub fn apply_commit(&mut self, topic: &str, partition: i32, c: Committed) {
        let key = (topic.to_owned(), partition);
        if self.offsets.get(&key).is_none_or(|old| old.log_offset <= c.log_offset) {
            self.offsets.insert(key, c);
        }
    }

    /// Runs the timers at `now`: pending ids lapse, silent members are dropped, the join and
    /// sync phases end at their deadlines. Returns the offsets that expired (an empty group's,
    /// `offsets_retention_ms` after the later of their commit and the group becoming empty); the
    /// caller writes their tombstones.
    pub fn tick(&mut self, now: i64, limits: &Limits) -> Vec<(String, i32)> {
        self.pending.retain(|_, until| *until > now);
        self.complete_join_if_due(now);
        if self.state == State::CompletingRebalance && self.sync_deadline.is_some_and(|d| now >= d) {
            let late: Vec<String> =
                self.members.iter().filter(|m| m.sync_waiter.is_none()).map(|m| m.id.clone()).collect();
            for id in late {
                self.remove_member(&id, now, "no SyncGroup before the rebalance timeout");
            }
        }
        let silent: Vec<String> = self
            .members
            .iter()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.saturating_sub(m.last_seen_ms) >= m.session_timeout_ms as i64
            })
            .map(|m| m.id.clone())
            .collect();
        for id in silent {
            self.remove_member(&id, now, "session timeout");
        }
        if self.state != State::Empty || !self.members.is_empty() {
            return Vec::new();
        }
        let retention = limits.offsets_retention_ms.min(i64::MAX as u64) as i64;
        let since = self.empty_since_ms.unwrap_or(i64::MIN);
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, c)| c.commit_ms.max(since).saturating_add(retention) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.offsets.remove(k);
        }
        expired
    }

    /// When the join phase under way ends at the latest (the initial delay, or the rebalance
    /// timeout), if one is.
    pub fn join_deadline(&self) -> Option<i64> {
        self.join_deadline.filter(|_| self.state == State::PreparingRebalance)
    }

    /// Ends the join phase if its deadline has passed or every member has joined.
    pub fn complete_join_if_due(&mut self, now: i64) {
        if self.state == State::PreparingRebalance && self.join_deadline.is_some_and(|d| now >= d) {
            self.complete_join(now);
        } else {
            self.maybe_complete_join(now);
        }
    }

    /// Whether the group holds nothing worth keeping (no member, no offset).
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty() && self.offsets.is_empty() && self.state == State::Empty
    }

    /// Ends the group (DeleteGroups): only an empty one.
    pub fn check_delete(&self) -> Result<(), GroupError> {
        match self.state {
            State::Empty => Ok(()),
            State::Dead => Err(GroupError::GroupIdNotFound),
            _ => Err(GroupError::NonEmptyGroup),
        }
    }

    /// The topics the members subscribe to (consumer protocol), for OffsetDelete's check.
    pub fn subscribed(&self) -> Vec<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let Some(protocol) = &self.protocol else { return Vec::new() };
        let mut out: Vec<String> =
            self.members.iter().flat_map(|m| super::subscription_topics(&m.metadata(protocol))).collect();
        out.sort();
        out.dedup();
        out
    }
}
