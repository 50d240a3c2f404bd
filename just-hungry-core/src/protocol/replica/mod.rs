//! A replica: the primary or a backup of a view, or a newcomer learning the state.
//!
//! This file holds the configuration, the state a replica holds, what a driver may observe and
//! the dispatch of each input ([`Node`]); each input's path is in one file beside it (in the
//! manner of raft-rs's `step` by role and openraft's handlers that borrow the state):
//!
//! | file | inputs |
//! |---|---|
//! | `view_change.rs` | `ViewInfo` (become primary, backup or idle), `StartView`, `StartViewOk` |
//! | `primary.rs` | `Forward`, the validator's answer, `PrepareOk`, `AddLearner`; batching and commit |
//! | `backup.rs` | `Prepare` (backups and learners), `Learn` |
//! | `transfer.rs` | `SnapshotAck`, and both ends of a snapshot stream |
//! | `timers.rs` | the ping and retransmit timers, a stall of its own |
//! | `log.rs` | the recent log, suffixes, applying while snapshots stream |
//!
//! The rules cited are those of docs/PROTOCOL.md.
//!
//! - A **backup** applies `Prepare`d ops strictly in op order (buffering gaps, ignoring
//!   duplicates) and acknowledges the highest contiguous op.
//! - The **primary** validates each write once (an [`Output::Validate`] effect), gives it the
//!   next op number, pipelines batches of ops to every backup, commits op `n` once every backup
//!   acknowledged `n`, then applies it and answers the client. Reads are answered from
//!   committed state once every op received before the read has committed.
//! - A replica told of a newer view stops serving the old one at once. The primary of a new
//!   view sends every backup its state (`StartView`: a log suffix when it knows the backup's
//!   state, else a chunked snapshot) and reports the view started once every backup holds it.
//! - A **learner** (a newcomer) receives a chunked snapshot of the committed state, then
//!   follows the log; its acknowledgements do not count for commits.

mod backup;
mod log;
mod primary;
mod timers;
mod transfer;
mod view_change;

use std::collections::{BTreeMap, VecDeque};

use crate::codec::CodecError;
use crate::ids::{
    Address, Identity, Member, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
};
use crate::protocol::client_table::ClientTableLimits;
use crate::protocol::liveness::{Durations, PingRoundTrips};
use crate::protocol::messages::{
    ClientResponse, Entry, Message, Outcome, Recovery, ReplicaRole, TransferChunk,
};
use crate::protocol::registry::RegistrationSchedule;
use crate::protocol::replicated_state::ReplicatedState;
use crate::protocol::stats::ReplicaStats;
use crate::protocol::transfer::{IncomingSnapshot, OutgoingSnapshot};
use crate::protocol::trust::{self, Refusal, Refusals};
use crate::protocol::{
    FRONTEND_NAME, Node, Output, Pipeline, Record, StallDetector, Timing, Transfer,
    replica_registry_name,
};
use crate::state_machine::StateMachine;

/// The most reads a primary holds waiting for earlier writes to commit.
pub const MAX_PENDING_READS: usize = 16_384;

/// How a replica is set up.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// Its identity; the incarnation must be fresh at every start.
    pub id: ReplicaId,
    /// Where others reach it.
    pub address: Address,
    /// Where the registry is.
    pub registry: Address,
    /// Failure detection and retransmission timing (the same on every node).
    pub timing: Timing,
    /// Bounds of the client table, used if this replica bootstraps a cluster.
    pub client_table: ClientTableLimits,
    /// Batch size and pipelining window of the primary (default: [`Pipeline::default`]).
    pub pipeline: Pipeline,
    /// Chunk size and pace of the snapshots the primary streams to joining replicas
    /// (default: [`Transfer::default`]).
    pub transfer: Transfer,
    /// The most bytes of one snapshot this replica receives (default
    /// [`DEFAULT_MAX_SNAPSHOT_BYTES`]): a snapshot that grows past it is dropped, so a sender
    /// cannot make a replica decode more. It must exceed the largest state the service can
    /// reach, client table included.
    pub max_snapshot_bytes: usize,
}

impl ReplicaConfig {
    /// Replica `id`, reached at `address`, finding the front-end through the registry at
    /// `registry`, with every other field at its default (what the binaries and
    /// `LocalCluster` use): [`Timing::default`] (it must match the other nodes'),
    /// [`ClientTableLimits::default`], [`Pipeline::default`], [`Transfer::default`],
    /// [`DEFAULT_MAX_SNAPSHOT_BYTES`].
    ///
    /// The incarnation in `id` must be fresh at every start of the process (a random one:
    /// `ReplicaId::new(name, just_hungry_core::runtime::random_u64())`), so that a restarted
    /// replica, which lost its memory, is never taken for the one that died.
    pub fn new(id: ReplicaId, address: Address, registry: Address) -> Self {
        ReplicaConfig {
            id,
            address,
            registry,
            timing: Timing::default(),
            client_table: ClientTableLimits::default(),
            pipeline: Pipeline::default(),
            transfer: Transfer::default(),
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
        }
    }
}

/// The default of [`ReplicaConfig::max_snapshot_bytes`]: 8 GiB, above the order book's
/// default limit (4 GiB counted, the order book's `DEFAULT_MAX_ORDER_BOOK_BYTES`, an upper
/// bound of its encoding) with its client table.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: usize = 8 * 1024 * 1024 * 1024;

/// What the primary knows of one backup or learner.
struct Peer<S: StateMachine> {
    address: Address,
    /// Highest contiguous op it acknowledged.
    acked: OpNumber,
    /// Highest op sent to it (re-sent from `acked` after a retransmit interval).
    sent: OpNumber,
    last_sent_at: Time,
    /// Since when it has been behind the primary's last op, if it is.
    behind_since: Option<Time>,
    last_reported_at: Option<Time>,
    /// A learner: since when it has held every committed op, without a break.
    caught_up_since: Option<Time>,
    /// A backup: holds the view's state (`StartViewOk`). A learner: restored its snapshot.
    started: bool,
    /// The view in which this primary last tracked the peer's state (a suffix is enough).
    tracked_in: Option<ViewNumber>,
    /// Send a full snapshot rather than a suffix on the next transfer.
    force_snapshot: bool,
    /// The snapshot streamed to it (a learner, or a backup of a view being started that
    /// needs a full snapshot), until it confirms that it restored it.
    snapshot: Option<OutgoingSnapshot<S>>,
    /// A learner: when the front-end last asked for it (`AddLearner`); it is forgotten after
    /// [`Timing::learner_expiry`] without a request.
    requested_at: Time,
}

impl<S: StateMachine> Peer<S> {
    fn new(address: Address, now: Time) -> Self {
        Peer {
            address,
            acked: OpNumber(0),
            sent: OpNumber(0),
            last_sent_at: now,
            behind_since: None,
            last_reported_at: None,
            caught_up_since: None,
            started: false,
            tracked_in: None,
            force_snapshot: false,
            snapshot: None,
            requested_at: now,
        }
    }
}

struct PendingWrite {
    reply_to: Address,
    /// The identity that sent it ([`Entry::owner`]).
    owner: String,
    /// `None` while validating.
    op: Option<OpNumber>,
}

struct PendingRead<S: StateMachine> {
    after: OpNumber,
    reply_to: Address,
    id: RequestId,
    query: S::Query,
}

/// What only the primary holds.
struct Primary<S: StateMachine> {
    view: ViewNumber,
    /// Uncommitted entries: ops `commit+1 ..= last_op`. The committed op is `state.applied()`.
    log: VecDeque<Entry<S::Command>>,
    last_op: OpNumber,
    backups: BTreeMap<ReplicaId, Peer<S>>,
    learners: BTreeMap<ReplicaId, Peer<S>>,
    /// Committed entries kept to bring peers up to date with a suffix.
    recent: VecDeque<Entry<S::Command>>,
    pending: BTreeMap<RequestId, PendingWrite>,
    reads: VecDeque<PendingRead<S>>,
    /// Ops were appended or acknowledged: prepares may be due.
    dirty: bool,
    /// A durable replica: the highest op of the log emitted as a record ([`Record::Entries`]).
    recorded: OpNumber,
}

/// A replica of service `S`. See the module documentation.
pub struct Replica<S: StateMachine> {
    config: ReplicaConfig,
    frontend: Option<Address>,
    view: Option<View>,
    role: ReplicaRole,
    state: ReplicatedState<S>,
    /// The view in which the state was last installed by a primary (StartView or Learn).
    state_view: ViewNumber,
    /// A backup's or learner's latest applied entries, contiguous and ending at
    /// `state.applied()` (emptied whenever a snapshot replaces the state). Once promoted, it
    /// brings the other backups of the same `state_view` up to date with a suffix instead of
    /// a full snapshot.
    followed: VecDeque<Entry<S::Command>>,
    /// A learner: the view, and the primary it learns from.
    learning: Option<(ViewNumber, Member)>,
    buffer: BTreeMap<OpNumber, Entry<S::Command>>,
    incoming: Option<IncomingSnapshot<S>>,
    primary: Option<Primary<S>>,
    outputs: VecDeque<Output<S>>,
    next_ping: Time,
    registration: RegistrationSchedule,
    next_tick: Time,
    pings_since_lookup: u32,
    /// The time of the latest input, for work done when outputs are polled.
    now: Time,
    /// The newest `StartView` or `Learn` naming a view the front-end has not announced yet,
    /// and where it came from: replayed when the announcement comes.
    unannounced: Option<(Address, Message<S>)>,
    refusals: Refusals,
    /// Tells this replica's own stalls from its peers' silence.
    stall: StallDetector,
    /// Its pings awaiting the front-end's answer, and the round trips measured.
    pings: PingRoundTrips,
    /// It keeps a data directory: it emits [`Output::Record`]s.
    durable: bool,
    /// It started from a data directory that held a state.
    recovery: Option<Recovery>,
    stats: ReplicaStats,
}

impl<S: StateMachine> Replica<S> {
    /// A replica starting with `initial` (its pre-defined data), idle until the front-end
    /// makes it primary (bootstrap) or it joins and its state is overwritten.
    pub fn new(config: ReplicaConfig, initial: S, now: Time) -> Self {
        let state = ReplicatedState::new(initial, config.client_table);
        tracing::info!(node = %config.id, address = %config.address, digest = format_args!("{:016x}", state.digest()), "replica up with its pre-defined data");
        Self::start(config, state, now)
    }

    /// A durable replica (docs/PROTOCOL.md, "Durability"), starting from what its data
    /// directory held: its newest view, the view its state was installed in and its state (or
    /// no view and its pre-defined data, for a fresh directory). It emits an
    /// [`Output::Record`] for every change of view or state before any output that depends on
    /// it and, given `recovery` (the directory held a state), says so in its pings. Made by
    /// [`crate::storage::RecoveredReplica::into_replica`] from what
    /// [`crate::storage::ReplicaStore::open`] rebuilt.
    pub fn durable(
        config: ReplicaConfig,
        state: ReplicatedState<S>,
        view: Option<View>,
        state_view: ViewNumber,
        recovery: Option<Recovery>,
        now: Time,
    ) -> Self {
        if recovery.is_some() {
            tracing::info!(node = %config.id, address = %config.address, view = view.as_ref().map_or(0, |v| v.number.0), op = %state.applied(), digest = format_args!("{:016x}", state.digest()), "replica up with the state of its data directory");
        } else {
            tracing::info!(node = %config.id, address = %config.address, digest = format_args!("{:016x}", state.digest()), "replica up with its pre-defined data (a fresh data directory)");
        }
        let mut replica = Self::start(config, state, now);
        replica.durable = true;
        replica.state_view = state_view;
        replica.view = view;
        replica.recovery = recovery;
        replica
    }

    fn start(config: ReplicaConfig, state: ReplicatedState<S>, now: Time) -> Self {
        Replica {
            config,
            frontend: None,
            view: None,
            role: ReplicaRole::Idle,
            state,
            state_view: ViewNumber(0),
            followed: VecDeque::new(),
            learning: None,
            buffer: BTreeMap::new(),
            incoming: None,
            primary: None,
            outputs: VecDeque::new(),
            next_ping: now,
            registration: RegistrationSchedule::new(now),
            next_tick: now,
            pings_since_lookup: 0,
            now,
            unannounced: None,
            refusals: Refusals::default(),
            stall: StallDetector::new(now),
            pings: PingRoundTrips::default(),
            durable: false,
            recovery: None,
            stats: ReplicaStats::default(),
        }
    }

    /// The round trips of this replica's pings to the front-end so far (issue 13): how long
    /// the liveness signal took, there and back, through both nodes' queues and loops.
    pub fn ping_round_trips(&self) -> &Durations {
        self.pings.round_trips()
    }

    /// How often this replica was woken more than [`Timing::stall_tolerance`] past its
    /// deadline (its process paused, or its loop starved): each time, the time it lost was not
    /// counted against its backups and learners.
    pub fn stalls(&self) -> u64 {
        self.stall.stalls()
    }

    // ---- what a driver or a test may observe ----

    /// Its identity.
    pub fn id(&self) -> &ReplicaId {
        &self.config.id
    }

    /// The role it plays now.
    pub fn role(&self) -> ReplicaRole {
        self.role
    }

    /// The newest view it knows.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// The newest view number it knows (0 before any).
    pub fn view_number(&self) -> ViewNumber {
        self.view.as_ref().map_or(ViewNumber(0), |v| v.number)
    }

    /// The replicated state it holds (on the primary: committed state only).
    pub fn state(&self) -> &ReplicatedState<S> {
        &self.state
    }

    /// The highest op it has applied.
    pub fn applied(&self) -> OpNumber {
        self.state.applied()
    }

    /// Begins a snapshot of its state as it is now for its data directory, written a piece
    /// at a time by [`Replica::write_disk_snapshot`] while it goes on applying ops
    /// ([`ReplicatedState::begin_disk_snapshot`]). Returns the op it is at.
    pub fn begin_disk_snapshot(&mut self) -> Result<OpNumber, CodecError> {
        self.state.begin_disk_snapshot()
    }

    /// About `budget` more bytes of the snapshot [`Replica::begin_disk_snapshot`] began,
    /// appended to `out`: see [`ReplicatedState::write_disk_snapshot`] (`None`: no snapshot
    /// under way, as when a primary's snapshot replaced the state since).
    pub fn write_disk_snapshot(
        &mut self,
        out: &mut Vec<u8>,
        budget: usize,
    ) -> Option<Result<bool, CodecError>> {
        self.state.write_disk_snapshot(out, budget)
    }

    /// The view in which a primary last installed its state (its own view, on a primary).
    pub fn state_view(&self) -> ViewNumber {
        self.state_view
    }

    /// Whether it keeps a data directory ([`Replica::durable`]).
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether it started from a data directory that held a state, and how it syncs.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
    }

    /// The primary's log: the entries appended after its state (committed ops), in op order;
    /// empty on other roles. A snapshot of [`Replica::state`] is complete only with them.
    pub fn uncommitted(&self) -> Vec<Entry<S::Command>> {
        self.primary
            .as_ref()
            .map_or_else(Vec::new, |p| p.log.iter().cloned().collect())
    }

    /// A durable replica asks its driver to write `record` (a memory-only one emits nothing).
    fn record(&mut self, record: Record<S>) {
        if self.durable {
            self.outputs.push_back(Output::Record(record));
        }
    }

    /// A durable primary: emits the entries of its log not yet emitted, before anything that
    /// depends on them (a `Prepare`, an answer).
    fn record_log(&mut self) {
        if !self.durable {
            return;
        }
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.recorded >= p.last_op {
            return;
        }
        let from = p.recorded;
        let entries: Vec<Entry<S::Command>> =
            p.log.iter().filter(|e| e.op > from).cloned().collect();
        p.recorded = p.last_op;
        self.outputs
            .push_back(Output::Record(Record::Entries(entries)));
    }

    /// What it counted since it started: state transfers sent and installed, and their bytes.
    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// The highest op it holds: on a primary, the last op appended to its log (committed or
    /// not); elsewhere, the last op applied.
    pub fn last_op(&self) -> OpNumber {
        self.primary
            .as_ref()
            .map_or_else(|| self.state.applied(), |p| p.last_op)
    }

    /// On a primary: how many ops each backup and learner lacks of its log (the last op
    /// appended less the highest op the peer acknowledged), by peer, backups first. Empty on
    /// other roles.
    pub fn replication_lag(&self) -> Vec<(&ReplicaId, u64)> {
        let Some(p) = self.primary.as_ref() else {
            return Vec::new();
        };
        p.backups
            .iter()
            .chain(p.learners.iter())
            .map(|(id, peer)| (id, p.last_op.0.saturating_sub(peer.acked.0)))
            .collect()
    }

    /// On a primary: writes taken and not answered yet (validating, or waiting for their
    /// commit), and reads waiting for earlier writes to commit. `(0, 0)` on other roles.
    pub fn pending_requests(&self) -> (usize, usize) {
        self.primary
            .as_ref()
            .map_or((0, 0), |p| (p.pending.len(), p.reads.len()))
    }

    /// Bytes of the snapshot it is receiving, held until the snapshot is complete: never more
    /// than [`ReplicaConfig::max_snapshot_bytes`].
    pub fn incoming_snapshot_bytes(&self) -> usize {
        self.incoming.as_ref().map_or(0, |i| i.bytes)
    }

    fn me(&self) -> &ReplicaId {
        &self.config.id
    }

    fn send(&mut self, to: Address, message: Message<S>) {
        if let Message::StartView { chunk, .. } | Message::Learn { chunk, .. } = &message {
            match chunk {
                TransferChunk::Snapshot { index, bytes, .. } => {
                    self.stats.snapshots_sent += u64::from(*index == 0);
                    self.stats.transfer_bytes_sent += bytes.len() as u64;
                }
                TransferChunk::Suffix { .. } => self.stats.suffixes_sent += 1,
            }
        }
        self.outputs.push_back(Output::Send { to, message });
    }

    fn respond(&mut self, to: Address, id: RequestId, outcome: Outcome<S>) {
        self.send(to, Message::Response(ClientResponse { id, outcome }));
    }

    // ---- who may send what (beyond the table of `trust`) ----

    /// The checks that need the replica's state: ops (`Prepare`) only from the primary of the
    /// view they name, as the front-end announced that view to us (a backup), or as the
    /// primary we learn from (a learner); a snapshot for a learner (`Learn`) only from the
    /// primary of the view the front-end announced.
    fn authorize(&self, sender: &Identity, message: &Message<S>) -> Result<(), Refusal> {
        let kind = message.kind();
        match message {
            Message::Prepare { view, .. } => {
                let primary = match self.role {
                    ReplicaRole::Learner => self
                        .learning
                        .as_ref()
                        .filter(|(v, _)| v == view)
                        .map(|(_, p)| &p.id),
                    _ => self
                        .view
                        .as_ref()
                        .filter(|v| v.number == *view)
                        .map(|v| &v.primary.id),
                };
                if primary.is_some_and(|p| p.name != sender.name) {
                    return Err(Refusal::NotFromPrimary { kind, view: *view });
                }
            }
            Message::Learn { view, primary, .. } => {
                let known = self.view.as_ref().filter(|v| v.number == *view);
                if known.is_some_and(|v| v.primary.id != *primary) {
                    return Err(Refusal::NotFromPrimary { kind, view: *view });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl<S: StateMachine> Node<S> for Replica<S> {
    fn handle_message(&mut self, now: Time, from: Address, sender: &Identity, message: Message<S>) {
        self.notice_own_stall(now);
        self.now = self.now.max(now);
        if let Err(why) =
            trust::check(sender, &message).and_then(|()| self.authorize(sender, &message))
        {
            self.refusals
                .refuse(&self.config.id.name, sender, &from, message.kind(), &why);
            return;
        }
        match message {
            Message::Registered { name, lease }
                if name == replica_registry_name(&self.config.id.name) =>
            {
                let node = self.config.id.to_string();
                self.registration
                    .acknowledged(now, &self.config.timing, lease, &node);
            }
            Message::LookupReply { name, address } if name == FRONTEND_NAME => {
                if let Some(address) = address
                    && self.frontend.as_ref() != Some(&address)
                {
                    tracing::info!(node = %self.config.id, frontend = %address, "found the front-end");
                    self.frontend = Some(address);
                    self.next_ping = now;
                    self.on_ping_timer(now);
                }
            }
            Message::ViewInfo { view, answers } => {
                if let Some(number) = answers {
                    self.pings.answered(now, number);
                }
                if let Some(view) = view {
                    self.on_view_info(now, view);
                }
            }
            Message::Forward {
                view,
                request,
                owner,
            } => self.on_forward(from, view, request, owner),
            Message::AddLearner { view, learner } => self.on_add_learner(now, view, learner),
            Message::Prepare { view, entries } => self.on_prepare(from, view, entries),
            Message::PrepareOk { view, replica, op } => self.on_prepare_ok(now, view, replica, op),
            Message::StartView { view, op, chunk } => self.on_start_view(from, view, op, chunk),
            Message::StartViewOk { view, replica, op } => self.on_start_view_ok(view, replica, op),
            Message::SnapshotAck {
                view,
                replica,
                op,
                next,
            } => self.on_snapshot_ack(now, view, replica, op, next),
            Message::Learn {
                view,
                learner,
                primary,
                op,
                chunk,
            } => self.on_learn(from, view, learner, primary, op, chunk),
            other => {
                tracing::debug!(node = %self.config.id, from = %from, kind = other.kind(), "ignored message not for a replica");
            }
        }
    }

    fn handle_unreachable(&mut self, _now: Time, to: &Address) {
        if self.frontend.as_ref() == Some(to) {
            self.frontend = None;
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        self.notice_own_stall(now);
        self.now = self.now.max(now);
        self.on_ping_timer(now);
        if now >= self.next_tick {
            self.next_tick = now + self.config.timing.retransmit_interval;
            self.on_tick(now);
        }
    }

    fn next_timeout(&self) -> Option<Time> {
        Some(
            self.next_ping
                .min(self.registration.next())
                .min(self.next_tick),
        )
    }

    fn poll_output(&mut self) -> Option<Output<S>> {
        if self.outputs.is_empty()
            && let Some(p) = self.primary.as_ref()
            && p.dirty
        {
            // Batching: prepares go out when the driver asks, carrying every op appended since.
            self.flush_prepares(self.now);
        }
        self.outputs.pop_front()
    }

    fn name(&self) -> &str {
        &self.config.id.name
    }

    fn refused(&self) -> u64 {
        self.refusals.total()
    }
}
