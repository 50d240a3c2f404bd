//! A replica: the primary or a backup of a view, or a newcomer learning the state.
//!
//! Read top to bottom: configuration, the state a replica holds, then one handler per input.
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

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{
    Address, Identity, Member, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
};
use crate::protocol::liveness::{Durations, PingRoundTrips};
use crate::protocol::messages::{
    ClientRequest, ClientResponse, Entry, Message, Operation, Outcome, Ping, ReplicaRole,
    ServiceError, TransferChunk,
};
use crate::protocol::registry::RegistrationSchedule;
use crate::protocol::replicated::{ClientTableLimits, ReplicatedState, Seen};
use crate::protocol::transfer::{Acknowledged, IncomingSnapshot, OutgoingSnapshot, SnapshotOf};
use crate::protocol::trust::{self, Refusal, Refusals};
use crate::protocol::{
    CATCH_UP_SLACK, FRONTEND_NAME, MAX_BUFFERED_ENTRIES, MAX_CHUNK_BYTES, MAX_PENDING_WRITES,
    MAX_RECENT_ENTRIES, Node, Output, Pipeline, StallDetector, Timing, Transfer,
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
    /// A `StartView` or `Learn` for a view the front-end has not announced to us yet, kept
    /// (the newest only) until it does: a view is believed only from the front-end.
    /// The newest `StartView` or `Learn` naming a view the front-end has not announced yet,
    /// and where it came from: replayed when the announcement comes.
    unannounced: Option<(Address, Message<S>)>,
    refusals: Refusals,
    /// Tells this replica's own stalls from its peers' silence.
    stall: StallDetector,
    /// Its pings awaiting the front-end's answer, and the round trips measured.
    pings: PingRoundTrips,
}

impl<S: StateMachine> Replica<S> {
    /// A replica starting with `initial` (its pre-defined data), idle until the front-end
    /// makes it primary (bootstrap) or it joins and its state is overwritten.
    pub fn new(config: ReplicaConfig, initial: S, now: Time) -> Self {
        let state = ReplicatedState::new(initial, config.client_table);
        tracing::info!(node = %config.id, address = %config.address, digest = format_args!("{:016x}", state.digest()), "replica up with its pre-defined data");
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

    /// Called first with every input, like the front-end's detector: woken more than
    /// [`Timing::stall_tolerance`] past its own deadline, a primary does not count the time it
    /// lost against its backups (`SuspectBackup`) and learners, whose acknowledgements may be
    /// queued behind this very input.
    fn notice_own_stall(&mut self, now: Time) {
        let due = Node::next_timeout(self).unwrap_or(now);
        let Some(late) = self.stall.woken(due, now, &self.config.timing) else {
            return;
        };
        tracing::warn!(node = %self.config.id, late = ?late, "woken late (paused or starved): not counting the time lost against the backups");
        if let Some(p) = self.primary.as_mut() {
            for peer in p.backups.values_mut().chain(p.learners.values_mut()) {
                peer.behind_since = peer.behind_since.map(|t| (t + late).min(now));
                peer.last_sent_at = (peer.last_sent_at + late).min(now);
                peer.requested_at = (peer.requested_at + late).min(now);
            }
        }
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

    /// Bytes of the snapshot it is receiving, held until the snapshot is complete: never more
    /// than [`ReplicaConfig::max_snapshot_bytes`].
    pub fn incoming_snapshot_bytes(&self) -> usize {
        self.incoming.as_ref().map_or(0, |i| i.bytes)
    }

    fn me(&self) -> &ReplicaId {
        &self.config.id
    }

    fn send(&mut self, to: Address, message: Message<S>) {
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

    // ---- views ----

    /// The front-end told us of `view`.
    fn on_view_info(&mut self, now: Time, view: View) {
        if view.number <= self.view_number() {
            return;
        }
        let me = self.me().clone();
        if view.primary.id == me {
            self.become_primary(now, view);
        } else if view.is_backup(&me) {
            self.step_down(&view);
            tracing::info!(node = %me, view = %view, "backup of new view: waiting for the primary's state");
            self.learning = None;
            self.view = Some(view);
            self.role = ReplicaRole::AwaitingState;
        } else {
            self.step_down(&view);
            // The next view of the primary we learn from: it stayed primary from one to the
            // other, so its stream of ops goes on, and it keeps streaming to us in the new
            // view. (Across a gap in view numbers it may have followed another primary in
            // between, whose ops we lack: then we start over.)
            let same_primary = self.role == ReplicaRole::Learner
                && matches!(&self.learning, Some((v, primary))
                    if primary.id == view.primary.id && view.number == v.next());
            if same_primary {
                self.learning = Some((view.number, view.primary.clone()));
                self.state_view = view.number;
                self.buffer.clear();
            }
            let still_learning = matches!(self.learning, Some((v, _)) if v == view.number);
            if !still_learning {
                self.learning = None;
                if self.role != ReplicaRole::Idle {
                    tracing::info!(node = %me, view = %view, "not a member of the new view: idle until it joins again");
                }
                self.role = ReplicaRole::Idle;
            }
            self.view = Some(view);
        }
        match self.unannounced.take() {
            Some((from, Message::StartView { view, op, chunk }))
                if self.view.as_ref() == Some(&view) =>
            {
                self.on_start_view(from, view, op, chunk)
            }
            Some((
                from,
                Message::Learn {
                    view,
                    learner,
                    primary,
                    op,
                    chunk,
                },
            )) if self.view_number() == view => {
                self.on_learn(from, view, learner, primary, op, chunk)
            }
            _ => {}
        }
    }

    /// Leaves the primary role, dropping what only a primary holds; clients retry elsewhere.
    fn step_down(&mut self, newer: &View) {
        if let Some(p) = self.primary.take() {
            tracing::info!(node = %self.config.id, old = %p.view, new = %newer.number, dropped_writes = p.pending.len(), dropped_reads = p.reads.len(), "stepping down as primary: a newer view exists");
        }
    }

    /// Becomes primary of `view`: takes everything it has applied (and, if it was primary
    /// already, every op it had prepared) as the state of the view, and sends it to every
    /// backup.
    fn become_primary(&mut self, now: Time, view: View) {
        let mut recent = VecDeque::new();
        let mut pending = BTreeMap::new();
        let mut tracked: BTreeMap<ReplicaId, (OpNumber, ViewNumber)> = BTreeMap::new();
        let mut learners = BTreeMap::new();
        let followed = std::mem::take(&mut self.followed);
        // A backup promoted: its latest applied entries can bring every other backup of the
        // same stream (the same `state_view`) up to date with a suffix. A backup's state is a
        // prefix of that stream; it lags this one by at most the pipelining window when it
        // kept up, and if it lags more (or is ahead) the suffix does not fit it and the
        // retransmission sends a snapshot (`force_snapshot`).
        let promoted_from = (self.primary.is_none()
            && followed.back().map(|e| e.op) == Some(self.state.applied()))
        .then_some(self.state_view);
        if let Some(mut previous) = self.primary.take() {
            recent = previous.recent;
            for entry in previous.log {
                let streams = previous.learners.values_mut();
                apply_noting_streams(&mut self.state, streams, &entry);
                push_recent(&mut recent, entry);
            }
            pending = previous
                .pending
                .into_iter()
                .filter(|(_, w)| w.op.is_some())
                .collect();
            for (id, peer) in previous.backups.iter().chain(previous.learners.iter()) {
                if peer.started {
                    tracked.insert(id.clone(), (peer.acked, previous.view));
                }
            }
            // Learners that do not join this view stay learners of the same primary: their
            // snapshot streams on where it was, or they go on following the log, in the new
            // view (they move to it when the front-end tells them). Ops sent in the old view
            // are sent again.
            for (id, mut peer) in previous.learners {
                if view.contains(&id) {
                    continue;
                }
                peer.sent = peer.acked;
                peer.last_reported_at = None;
                peer.behind_since = peer.started.then_some(now);
                learners.insert(id, peer);
            }
        }
        let applied = self.state.applied();
        let mut backups = BTreeMap::new();
        for member in &view.backups {
            let mut peer = Peer::new(member.address.clone(), now);
            // Behind until it holds the view's state: one that never confirms is reported
            // like a backup that stops acknowledging, or the view would never start.
            peer.behind_since = Some(now);
            if let Some((acked, tracked_in)) = tracked.get(&member.id) {
                peer.acked = *acked;
                peer.tracked_in = Some(*tracked_in);
            } else if let (Some(since), Some(first)) = (promoted_from, followed.front()) {
                let window = self.config.pipeline.max_ops_in_flight();
                let from = OpNumber(first.op.0.saturating_sub(1))
                    .max(OpNumber(applied.0.saturating_sub(window)));
                // A lower bound of what it holds: nothing is committed on its account until
                // it confirms (StartViewOk carries its op).
                peer.acked = from;
                peer.tracked_in = Some(since);
            }
            backups.insert(member.id.clone(), peer);
        }
        tracing::info!(node = %self.config.id, view = %view, op = %applied, "elected primary: starting the view (state transfer to backups)");
        self.learning = None;
        self.buffer.clear();
        self.incoming = None;
        self.state_view = view.number;
        self.primary = Some(Primary {
            view: view.number,
            log: VecDeque::new(),
            last_op: applied,
            backups,
            learners,
            recent: if promoted_from.is_some() {
                followed
            } else {
                recent
            },
            pending,
            reads: VecDeque::new(),
            dirty: false,
        });
        self.view = Some(view);
        self.role = ReplicaRole::StartingView;
        let ids: Vec<ReplicaId> = self
            .primary
            .as_ref()
            .map(|p| p.backups.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.send_start_view(now, &id);
        }
        self.maybe_finish_view_start();
    }

    /// Sends backup `id` the state of the view: a suffix if this primary tracked its state,
    /// else a full snapshot in chunks.
    fn send_start_view(&mut self, now: Time, id: &ReplicaId) {
        let Some(view) = self.view.clone() else {
            return;
        };
        let applied = self.state.applied();
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let Some(peer) = p.backups.get_mut(id) else {
            return;
        };
        peer.last_sent_at = now;
        let address = peer.address.clone();
        let suffix = match (peer.tracked_in, peer.force_snapshot) {
            (Some(since), false) => suffix_after(&p.recent, peer.acked, applied)
                .map(|entries| TransferChunk::Suffix { since, entries }),
            _ => None,
        };
        if let Some(chunk) = suffix {
            self.send(
                address,
                Message::StartView {
                    view,
                    op: applied,
                    chunk,
                },
            );
            return;
        }
        if peer.snapshot.is_none() {
            match OutgoingSnapshot::begin(&self.state, now) {
                Ok(stream) => {
                    tracing::info!(node = %self.config.id, backup = %id, op = %applied, "state transfer: streaming a snapshot to the backup");
                    peer.snapshot = Some(stream);
                }
                Err(e) => {
                    tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                    return;
                }
            }
        }
        self.pump_snapshot(id);
    }

    /// Encodes and sends the chunks of peer `id`'s snapshot that its window lets out: as
    /// `StartView` to a backup, `Learn` to a learner.
    fn pump_snapshot(&mut self, id: &ReplicaId) {
        let transfer = self.config.transfer;
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let (peer, learner) = match (p.backups.get_mut(id), p.learners.get_mut(id)) {
            (Some(peer), _) => (peer, false),
            (None, Some(peer)) => (peer, true),
            (None, None) => return,
        };
        let Some(stream) = peer.snapshot.as_mut() else {
            return;
        };
        match stream.fill(&self.state, transfer) {
            Ok(chunks) => {
                let (address, op) = (peer.address.clone(), stream.op);
                self.send_snapshot_chunks(id, address, op, learner, chunks);
            }
            Err(e) => {
                tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                peer.snapshot = None;
            }
        }
    }

    /// Sends chunks of the snapshot at `op` to peer `id` at `address`.
    fn send_snapshot_chunks(
        &mut self,
        id: &ReplicaId,
        address: Address,
        op: OpNumber,
        learner: bool,
        chunks: Vec<TransferChunk<S::Command>>,
    ) {
        let (Some(view), Some(number)) = (self.view.clone(), self.primary.as_ref().map(|p| p.view))
        else {
            return;
        };
        for chunk in chunks {
            let message = if learner {
                Message::Learn {
                    view: number,
                    learner: id.clone(),
                    primary: self.config.id.clone(),
                    op,
                    chunk,
                }
            } else {
                Message::StartView {
                    view: view.clone(),
                    op,
                    chunk,
                }
            };
            self.send(address.clone(), message);
        }
    }

    /// A receiver holds every chunk below `next` of the snapshot at `op`, streamed in `view`.
    fn on_snapshot_ack(
        &mut self,
        now: Time,
        view: ViewNumber,
        replica: ReplicaId,
        op: OpNumber,
        next: u32,
    ) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        // A backup's stream is this view's: an acknowledgement of the previous view's stream
        // to it (the same state at the same op, another stream) must not count (found by the
        // simulator). A learner's stream goes on across this primary's views.
        if p.backups.contains_key(&replica) && view != p.view {
            return;
        }
        let (peer, learner) = match (p.backups.get_mut(&replica), p.learners.get_mut(&replica)) {
            (Some(peer), _) => (peer, false),
            (None, Some(peer)) => (peer, true),
            (None, None) => return,
        };
        let Some(stream) = peer.snapshot.as_mut().filter(|s| s.op == op) else {
            return;
        };
        match stream.acknowledge(next, now) {
            Acknowledged::Progress => {
                if !peer.started && !learner {
                    // A backup receiving the view's state is not behind while it progresses.
                    peer.behind_since = Some(now);
                }
                self.pump_snapshot(&replica)
            }
            Acknowledged::Lost => {
                // It dropped what it had received: begin again, at the current state.
                tracing::info!(node = %self.config.id, receiver = %replica, "state transfer: the receiver lost the chunks it had, streaming a new snapshot");
                match OutgoingSnapshot::begin(&self.state, now) {
                    Ok(stream) => {
                        if learner {
                            peer.acked = stream.op;
                            peer.sent = stream.op;
                        }
                        peer.snapshot = Some(stream);
                        self.pump_snapshot(&replica);
                    }
                    Err(e) => {
                        tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                        peer.snapshot = None;
                    }
                }
            }
        }
    }

    fn maybe_finish_view_start(&mut self) {
        if self.role != ReplicaRole::StartingView {
            return;
        }
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if !p.backups.values().all(|b| b.started) {
            return;
        }
        let view = p.view;
        // Writes prepared in the previous view are part of this view's state, but are not
        // answered here: the answer could reach a client before the front-end learns that this
        // view is active, while its last active view still counts members that lack the write
        // (one of them could then be elected, losing an acknowledged write: invariant 1). The
        // front-end forwards them again once the view is active; the client table answers.
        p.pending.clear();
        self.role = ReplicaRole::Primary;
        tracing::info!(node = %self.config.id, view = %view, op = %self.state.applied(), "view started: every backup holds the state");
        if let Some(fe) = self.frontend.clone() {
            self.send(fe, Message::ViewStarted { view });
        }
    }

    // ---- the primary's normal operation ----

    fn on_forward(
        &mut self,
        from: Address,
        view: ViewNumber,
        request: ClientRequest<S>,
        owner: String,
    ) {
        let serving = self.role == ReplicaRole::Primary
            && self.primary.as_ref().is_some_and(|p| p.view == view);
        if !serving {
            self.respond(
                from,
                request.id,
                Outcome::Failed(ServiceError::NotPrimary { view }),
            );
            return;
        }
        let id = request.id;
        let owned_by_another = |o: &str| o != owner;
        if matches!(request.operation, Operation::Write(_))
            && (self
                .state
                .clients()
                .owner(id.client)
                .is_some_and(owned_by_another)
                || self.primary.as_ref().is_some_and(|p| {
                    // Writes of this client still validating or replicating.
                    let of_client = RequestId {
                        client: id.client,
                        seq: 0,
                    }..=RequestId {
                        client: id.client,
                        seq: u64::MAX,
                    };
                    p.pending
                        .range(of_client)
                        .any(|(_, w)| owned_by_another(&w.owner))
                }))
        {
            // A client id is used only by the identity that first wrote with it: another's
            // write would take over its retries and its place in the client table.
            tracing::info!(node = %self.config.id, request = %id, owner = %owner, "refused a write for a client id another identity owns");
            let reason = format!("client id {} belongs to another identity", id.client.0);
            self.respond(
                from,
                id,
                Outcome::Failed(ServiceError::Forbidden { reason }),
            );
            return;
        }
        match request.operation {
            Operation::Write(command) => match self.state.clients().check(id) {
                Seen::Done(reply) => self.respond(from, id, Outcome::Written(reply)),
                Seen::Stale => self.respond(from, id, Outcome::Failed(ServiceError::Stale { id })),
                Seen::New => {
                    let Some(p) = self.primary.as_mut() else {
                        return;
                    };
                    if let Some(write) = p.pending.get_mut(&id) {
                        // A retry joins the pending request: never validated or applied twice.
                        write.reply_to = from;
                        return;
                    }
                    if p.pending.len() >= MAX_PENDING_WRITES {
                        self.respond(from, id, Outcome::Failed(ServiceError::Overloaded));
                        return;
                    }
                    p.pending.insert(
                        id,
                        PendingWrite {
                            reply_to: from,
                            owner,
                            op: None,
                        },
                    );
                    self.outputs.push_back(Output::Validate {
                        request: id,
                        command,
                    });
                }
            },
            Operation::Read(query) => {
                let applied = self.state.applied();
                let Some(p) = self.primary.as_mut() else {
                    return;
                };
                if p.last_op <= applied {
                    let answer = self.state.service().query(&query);
                    self.respond(from, id, Outcome::Read(answer));
                } else if p.reads.len() >= MAX_PENDING_READS {
                    self.respond(from, id, Outcome::Failed(ServiceError::Overloaded));
                } else {
                    p.reads.push_back(PendingRead {
                        after: p.last_op,
                        reply_to: from,
                        id,
                        query,
                    });
                }
            }
            Operation::Status => {
                self.respond(from, id, Outcome::Failed(ServiceError::NotPrimary { view }));
            }
        }
    }

    /// The driver reports the result of an [`Output::Validate`].
    pub fn handle_validated(
        &mut self,
        now: Time,
        request: RequestId,
        result: Result<S::Command, S::Reply>,
    ) {
        self.now = self.now.max(now);
        let serving = self.role == ReplicaRole::Primary;
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let Some(write) = p.pending.get_mut(&request) else {
            return;
        };
        if write.op.is_some() || !serving {
            return;
        }
        match result {
            Err(reply) => {
                let reply_to = write.reply_to.clone();
                p.pending.remove(&request);
                tracing::info!(node = %self.config.id, request = %request, reply = ?reply, "refused request: validation failed");
                self.respond(reply_to, request, Outcome::Written(reply));
            }
            Ok(command) => {
                let op = p.last_op.next();
                write.op = Some(op);
                p.last_op = op;
                let owner = write.owner.clone();
                p.log.push_back(Entry {
                    op,
                    request,
                    time: now,
                    owner,
                    command,
                });
                for peer in p.backups.values_mut().chain(p.learners.values_mut()) {
                    if peer.behind_since.is_none() {
                        peer.behind_since = Some(now);
                    }
                }
                p.dirty = true;
                self.commit();
            }
        }
    }

    /// Commits every op that every backup acknowledged: applies it and answers its client.
    fn commit(&mut self) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if self.role != ReplicaRole::Primary {
            return;
        }
        let commit = p
            .backups
            .values()
            .map(|b| b.acked)
            .min()
            .unwrap_or(p.last_op)
            .min(p.last_op);
        let mut replies = Vec::new();
        while self.state.applied() < commit {
            let Some(entry) = p.log.pop_front() else {
                break;
            };
            let peers = p.backups.values_mut().chain(p.learners.values_mut());
            let reply = apply_noting_streams(&mut self.state, peers, &entry);
            if let Some(write) = p.pending.remove(&entry.request) {
                replies.push((write.reply_to, entry.request, Outcome::Written(reply)));
            }
            push_recent(&mut p.recent, entry);
        }
        let applied = self.state.applied();
        while p.reads.front().is_some_and(|r| r.after <= applied) {
            let Some(read) = p.reads.pop_front() else {
                break;
            };
            let answer = self.state.service().query(&read.query);
            replies.push((read.reply_to, read.id, Outcome::Read(answer)));
        }
        for (to, id, outcome) in replies {
            self.respond(to, id, outcome);
        }
    }

    fn on_prepare_ok(&mut self, now: Time, view: ViewNumber, replica: ReplicaId, op: OpNumber) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.view != view {
            return;
        }
        let last_op = p.last_op;
        // No one acknowledges an op that was never prepared (a number from the network may be
        // anything).
        let op = op.min(last_op);
        if let Some(peer) = p.backups.get_mut(&replica) {
            if op > peer.acked {
                peer.acked = op;
                peer.sent = peer.sent.max(op);
            }
            peer.behind_since = (peer.acked < last_op).then_some(now);
            p.dirty = true;
            self.commit();
        } else if let Some(peer) = p.learners.get_mut(&replica) {
            if !peer.started {
                // Only an acknowledgement of the snapshot's op (or later) proves that this
                // snapshot was restored: the replica may have restored an older one, sent to
                // an earlier incarnation at the same address, and would never get the ops in
                // between. Until then the snapshot is sent again.
                if peer.snapshot.as_ref().is_some_and(|s| op < s.op) {
                    return;
                }
                peer.started = true;
                peer.snapshot = None;
                tracing::info!(node = %self.config.id, learner = %replica, op = %op, "state transfer: learner restored the snapshot, now following the log");
            }
            if op > peer.acked {
                peer.acked = op;
                peer.sent = peer.sent.max(op);
            }
            peer.behind_since = (peer.acked < last_op).then_some(now);
            p.dirty = true;
            self.report_caught_up(now);
        }
    }

    /// Tells the front-end about learners that hold every committed op but at most
    /// [`CATCH_UP_SLACK`] (the view change brings them the rest), all of them in one
    /// message so they join in one view change. While another learner is still on its way, a
    /// learner that caught up waits for it up to one retransmission interval: learners started
    /// together join together, and none waits longer than that for the others.
    fn report_caught_up(&mut self, now: Time) {
        let applied = self.state.applied();
        let retransmit = self.config.timing.retransmit_interval;
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let view = p.view;
        let mut due = false;
        let mut others_on_their_way = false;
        let mut waited_enough = false;
        for peer in p.learners.values_mut() {
            let caught_up =
                peer.started && peer.acked.0.saturating_add(CATCH_UP_SLACK) >= applied.0;
            if !caught_up {
                peer.caught_up_since = None;
                others_on_their_way = true;
                continue;
            }
            let since = *peer.caught_up_since.get_or_insert(now);
            due |= peer
                .last_reported_at
                .is_none_or(|t| now.saturating_since(t) >= retransmit);
            waited_enough |= now.saturating_since(since) >= retransmit;
        }
        if !due || (others_on_their_way && !waited_enough) {
            return;
        }
        let mut learners = Vec::new();
        for (id, peer) in p.learners.iter_mut() {
            if peer.caught_up_since.is_some() {
                peer.last_reported_at = Some(now);
                learners.push(id.clone());
            }
        }
        if let Some(fe) = self.frontend.clone() {
            let names: Vec<String> = learners.iter().map(ToString::to_string).collect();
            tracing::info!(node = %self.config.id, learners = %names.join(", "), "learners caught up: asking the front-end to add them to the view");
            self.send(fe, Message::CaughtUp { view, learners });
        }
    }

    fn on_start_view_ok(&mut self, view: ViewNumber, replica: ReplicaId, op: OpNumber) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.view != view {
            return;
        }
        let op = op.min(p.last_op);
        if let Some(peer) = p.backups.get_mut(&replica) {
            if !peer.started {
                tracing::info!(node = %self.config.id, backup = %replica, op = %op, "state transfer: backup holds the view's state");
            }
            peer.started = true;
            peer.snapshot = None;
            peer.acked = peer.acked.max(op);
            peer.sent = peer.sent.max(op);
            peer.behind_since = (peer.acked < p.last_op).then_some(peer.last_sent_at);
        }
        self.maybe_finish_view_start();
    }

    fn on_add_learner(&mut self, now: Time, view: ViewNumber, learner: Member) {
        if self.role != ReplicaRole::Primary {
            return;
        }
        let applied = self.state.applied();
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.view != view || p.backups.contains_key(&learner.id) || learner.id == self.config.id {
            return;
        }
        // A learner already known is being streamed its snapshot (the tick goes on with it and
        // starts again when it is not acknowledged) or follows the log. Taking a new snapshot
        // for each repeated request would restart a transfer that takes longer than the
        // front-end's repeat interval for ever (found at 1,000,000 orders).
        if let Some(known) = p.learners.get_mut(&learner.id) {
            known.requested_at = now;
            return;
        }
        // A name has one live incarnation: the others were streamed to a process that is gone.
        p.learners
            .retain(|id, _| id.name != learner.id.name || *id == learner.id);
        let stream = match OutgoingSnapshot::begin(&self.state, now) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                return;
            }
        };
        tracing::info!(node = %self.config.id, learner = %learner.id, op = %applied, "join: streaming a snapshot to the newcomer");
        let mut peer = Peer::new(learner.address.clone(), now);
        peer.snapshot = Some(stream);
        peer.acked = applied;
        peer.sent = applied;
        p.learners.insert(learner.id.clone(), peer);
        self.pump_snapshot(&learner.id);
    }

    /// Sends pending ops to every started backup and restored learner, in batches, within the
    /// pipelining window.
    fn flush_prepares(&mut self, now: Time) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if !p.dirty {
            return;
        }
        p.dirty = false;
        if self.role != ReplicaRole::Primary {
            return;
        }
        let view = p.view;
        let last_op = p.last_op;
        let window = self.config.pipeline.max_ops_in_flight();
        let batch = self.config.pipeline.max_entries_per_prepare() as u64;
        let mut sends = Vec::new();
        let mut lost_learners = Vec::new();
        for (id, peer) in p.backups.iter_mut().chain(p.learners.iter_mut()) {
            if !peer.started {
                continue;
            }
            let upto = last_op.min(OpNumber(peer.acked.0.saturating_add(window)));
            let mut from = peer.sent.max(peer.acked).next();
            while from <= upto {
                let to = OpNumber(from.0.saturating_add(batch - 1).min(upto.0));
                match entries_between(&p.recent, &p.log, from, to) {
                    Some(entries) => sends.push((peer.address.clone(), entries)),
                    None => {
                        lost_learners.push(id.clone());
                        break;
                    }
                }
                from = to.next();
            }
            if upto > peer.sent {
                peer.sent = upto;
                peer.last_sent_at = now;
            }
        }
        for id in lost_learners {
            // The ops it needs fell out of the recent log: start its transfer again.
            if p.learners.remove(&id).is_some() {
                tracing::info!(node = %self.config.id, learner = %id, "learner fell too far behind: dropped, the front-end will add it again");
            }
        }
        for (to, entries) in sends {
            self.send(to, Message::Prepare { view, entries });
        }
    }

    // ---- backups and learners ----

    fn on_prepare(&mut self, from: Address, view: ViewNumber, entries: Vec<Entry<S::Command>>) {
        let accept = match self.role {
            ReplicaRole::Backup => view == self.view_number(),
            ReplicaRole::Learner => matches!(self.learning, Some((v, _)) if v == view),
            _ => false,
        };
        if !accept {
            return;
        }
        for entry in entries {
            if entry.op > self.state.applied() && self.buffer.len() < MAX_BUFFERED_ENTRIES {
                self.buffer.insert(entry.op, entry);
            }
        }
        while let Some(entry) = self.buffer.remove(&self.state.applied().next()) {
            self.state.apply(&entry);
            push_recent(&mut self.followed, entry);
        }
        let op = self.state.applied();
        self.buffer.retain(|k, _| *k > op);
        let replica = self.me().clone();
        self.send(from, Message::PrepareOk { view, replica, op });
    }

    fn on_start_view(
        &mut self,
        from: Address,
        view: View,
        op: OpNumber,
        chunk: TransferChunk<S::Command>,
    ) {
        let me = self.me().clone();
        if !view.is_backup(&me) {
            return;
        }
        let mine = self.view_number();
        if view.number == mine && self.role == ReplicaRole::Backup {
            // A retransmission: we hold this view's state already; confirm again.
            let number = view.number;
            self.send(
                from,
                Message::StartViewOk {
                    view: number,
                    replica: me,
                    op,
                },
            );
            return;
        }
        if view.number > mine {
            // A view is believed only from the front-end (a replica holding a certificate
            // could otherwise announce a view of its own making): keep this one until the
            // front-end announces it, and ask the front-end now rather than at the next ping.
            self.unannounced = Some((from, Message::StartView { view, op, chunk }));
            self.next_ping = self.now;
            return;
        }
        let announced =
            self.role == ReplicaRole::AwaitingState && self.view.as_ref() == Some(&view);
        if !announced {
            return;
        }
        match chunk {
            TransferChunk::Suffix { since, entries } => {
                if since != self.state_view || !suffix_fits(self.state.applied(), op, &entries) {
                    tracing::debug!(node = %me, view = %view.number, "suffix does not fit our state: waiting for a snapshot");
                    return;
                }
                for entry in entries {
                    if entry.op > self.state.applied() {
                        self.state.apply(&entry);
                        push_recent(&mut self.followed, entry);
                    }
                }
                self.install_view(from, view);
            }
            TransferChunk::Snapshot { index, last, bytes } => {
                let of = SnapshotOf::View(view.number);
                if let Some(state) =
                    self.receive_chunk(&from, view.number, of, op, index, last, bytes)
                {
                    self.state = state;
                    self.followed.clear();
                    tracing::info!(node = %me, view = %view.number, op = %op, "state transfer: snapshot installed, our data is overwritten with the cluster's");
                    self.install_view(from, view);
                }
            }
        }
    }

    fn install_view(&mut self, primary: Address, view: View) {
        let me = self.me().clone();
        let number = view.number;
        let op = self.state.applied();
        self.view = Some(view);
        self.role = ReplicaRole::Backup;
        self.state_view = number;
        self.buffer.clear();
        self.incoming = None;
        tracing::info!(node = %me, view = %number, op = %op, "joined view as backup");
        self.send(
            primary,
            Message::StartViewOk {
                view: number,
                replica: me,
                op,
            },
        );
    }

    fn on_learn(
        &mut self,
        from: Address,
        view: ViewNumber,
        learner: ReplicaId,
        primary: ReplicaId,
        op: OpNumber,
        chunk: TransferChunk<S::Command>,
    ) {
        if learner != self.config.id {
            // Meant for an earlier incarnation at this address: mixing its chunks with ours
            // would restart our own transfer at every one of them.
            return;
        }
        if view > self.view_number() {
            // Not announced by the front-end yet: keep it until it is, and ask the front-end
            // now rather than at the next ping.
            let learn = Message::Learn {
                view,
                learner,
                primary,
                op,
                chunk,
            };
            self.unannounced = Some((from, learn));
            self.next_ping = self.now;
            return;
        }
        let announced = self
            .view
            .as_ref()
            .is_some_and(|v| v.number == view && v.primary.id == primary);
        if !announced || !matches!(self.role, ReplicaRole::Idle | ReplicaRole::Learner) {
            return;
        }
        let me = self.me().clone();
        if self.role == ReplicaRole::Learner
            && matches!(self.learning, Some((v, _)) if v == view)
            && self.state.applied() >= op
        {
            let applied = self.state.applied();
            self.send(
                from,
                Message::PrepareOk {
                    view,
                    replica: me,
                    op: applied,
                },
            );
            return;
        }
        let TransferChunk::Snapshot { index, last, bytes } = chunk else {
            return;
        };
        let of = SnapshotOf::Primary(primary.clone());
        if let Some(state) = self.receive_chunk(&from, view, of, op, index, last, bytes) {
            self.state = state;
            self.followed.clear();
            self.role = ReplicaRole::Learner;
            self.learning = Some((
                view,
                Member {
                    id: primary,
                    address: from.clone(),
                },
            ));
            self.state_view = view;
            self.buffer.clear();
            tracing::info!(node = %me, view = %view, op = %op, "state transfer: snapshot received, our pre-defined data is overwritten; following the primary's log");
            self.send(
                from,
                Message::PrepareOk {
                    view,
                    replica: me,
                    op,
                },
            );
        }
    }

    /// Takes one chunk of the snapshot `of` at `op` and acknowledges what is held of it to
    /// `from`; returns the restored state once the last chunk is decoded. A chunk of a newer
    /// snapshot (another sender, or a later op) starts over; one of an older snapshot is
    /// ignored.
    #[allow(clippy::too_many_arguments)]
    fn receive_chunk(
        &mut self,
        from: &Address,
        view: ViewNumber,
        of: SnapshotOf,
        op: OpNumber,
        index: u32,
        last: bool,
        bytes: Vec<u8>,
    ) -> Option<ReplicatedState<S>> {
        if bytes.len() > MAX_CHUNK_BYTES {
            tracing::info!(node = %self.config.id, index, bytes = bytes.len(), "refused a malformed snapshot chunk");
            return None;
        }
        match self.incoming.as_ref() {
            Some(i) if i.of == of && i.op == op => {}
            Some(i) if i.of == of && i.op > op => return None,
            _ => self.incoming = Some(IncomingSnapshot::new(of, op, self.now)),
        }
        let max = self.config.max_snapshot_bytes;
        let now = self.now;
        let incoming = self.incoming.as_mut()?;
        let result = incoming.receive(now, index, last, bytes, max);
        let next = incoming.next;
        let replica = self.me().clone();
        match result {
            Ok(state) => {
                if state.is_some() {
                    self.incoming = None;
                }
                let ack = Message::SnapshotAck {
                    view,
                    replica,
                    op,
                    next,
                };
                self.send(from.clone(), ack);
                state
            }
            Err(why) => {
                tracing::info!(node = %self.config.id, error = %why, "state transfer: refused the snapshot, dropped what was received of it");
                self.incoming = None;
                None
            }
        }
    }

    // ---- timers ----

    fn on_tick(&mut self, now: Time) {
        let timing = self.config.timing;
        if self
            .incoming
            .as_ref()
            .is_some_and(|i| now.saturating_since(i.last_chunk_at) >= timing.learner_expiry())
        {
            tracing::info!(node = %self.config.id, "state transfer: dropping an incomplete snapshot whose sender went quiet");
            self.incoming = None;
        }
        let role = self.role;
        let mut resend_start_view = Vec::new();
        let mut suspects = Vec::new();
        // Chunks sent again: (peer, its address, the snapshot's op, a learner?, the chunk).
        let mut resend_chunks = Vec::new();
        let quiet = |stream: &OutgoingSnapshot<S>| {
            now.saturating_since(stream.progress_at) >= timing.retransmit_interval
        };
        if let Some(p) = self.primary.as_mut() {
            for (id, peer) in p.backups.iter_mut() {
                let stale = now.saturating_since(peer.last_sent_at) >= timing.retransmit_interval;
                if role == ReplicaRole::StartingView && !peer.started {
                    match peer.snapshot.as_mut() {
                        Some(stream) if quiet(stream) => {
                            if let Some(chunk) = stream.resend(now) {
                                let to = peer.address.clone();
                                resend_chunks.push((id.clone(), to, stream.op, false, chunk));
                            }
                        }
                        Some(_) => {}
                        None if stale => {
                            // The suffix sent was not confirmed: a snapshot this time.
                            peer.force_snapshot = true;
                            resend_start_view.push(id.clone());
                        }
                        None => {}
                    }
                }
                if role == ReplicaRole::Primary && peer.acked < peer.sent && stale {
                    peer.sent = peer.acked;
                    p.dirty = true;
                }
                if let Some(since) = peer.behind_since {
                    let reported_recently = peer
                        .last_reported_at
                        .is_some_and(|t| now.saturating_since(t) < timing.backup_timeout);
                    if matches!(role, ReplicaRole::Primary | ReplicaRole::StartingView)
                        && now.saturating_since(since) >= timing.backup_timeout
                        && !reported_recently
                    {
                        peer.last_reported_at = Some(now);
                        suspects.push(id.clone());
                    }
                }
            }
            let me = &self.config.id;
            p.learners.retain(|id, peer| {
                let wanted = now.saturating_since(peer.requested_at) < timing.learner_expiry();
                if !wanted {
                    tracing::info!(node = %me, learner = %id, "join: forgetting a learner the front-end no longer asks for");
                    return false;
                }
                // A learner that follows the log but stopped acknowledging it (it left for
                // another view, or is cut off) starts over when the front-end asks again.
                let silent = peer.started
                    && peer
                        .behind_since
                        .is_some_and(|t| now.saturating_since(t) >= timing.backup_timeout);
                if silent {
                    tracing::info!(node = %me, learner = %id, "join: dropping a learner that stopped acknowledging the log");
                }
                !silent
            });
            for (id, peer) in p.learners.iter_mut() {
                let stale = now.saturating_since(peer.last_sent_at) >= timing.retransmit_interval;
                match peer.snapshot.as_mut() {
                    Some(stream) if !peer.started => {
                        if quiet(stream)
                            && let Some(chunk) = stream.resend(now)
                        {
                            let to = peer.address.clone();
                            resend_chunks.push((id.clone(), to, stream.op, true, chunk));
                        }
                    }
                    _ => {
                        if peer.acked < peer.sent && stale {
                            peer.sent = peer.acked;
                            p.dirty = true;
                        }
                    }
                }
            }
        }
        for id in resend_start_view {
            self.send_start_view(now, &id);
        }
        for (id, to, op, learner, chunk) in resend_chunks {
            self.send_snapshot_chunks(&id, to, op, learner, vec![chunk]);
        }
        if let (Some(fe), Some(view)) =
            (self.frontend.clone(), self.primary.as_ref().map(|p| p.view))
        {
            for backup in suspects {
                tracing::info!(node = %self.config.id, backup = %backup, "backup has not acknowledged in time: reporting it to the front-end");
                self.send(fe.clone(), Message::SuspectBackup { view, backup });
            }
        }
        self.report_caught_up(now);
    }

    fn on_ping_timer(&mut self, now: Time) {
        let timing = self.config.timing;
        if self.registration.due(now, &timing) {
            let registry = self.config.registry.clone();
            self.send(
                registry,
                Message::Register {
                    name: replica_registry_name(&self.config.id.name),
                    address: self.config.address.clone(),
                },
            );
        }
        if now < self.next_ping {
            return;
        }
        self.next_ping = now + timing.ping_interval;
        // Look the front-end up when unknown, and now and then in case it moved.
        self.pings_since_lookup = self.pings_since_lookup.saturating_add(1);
        if self.frontend.is_none() || self.pings_since_lookup >= 10 {
            self.pings_since_lookup = 0;
            let registry = self.config.registry.clone();
            self.send(
                registry,
                Message::Lookup {
                    name: FRONTEND_NAME.to_owned(),
                },
            );
        }
        if let Some(fe) = self.frontend.clone() {
            let ping = Ping {
                replica: self.config.id.clone(),
                address: self.config.address.clone(),
                view: self.view.clone(),
                role: self.role,
                applied: self.state.applied(),
                number: self.pings.sent(now),
            };
            self.send(fe, Message::Ping(ping));
        }
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
            Message::Registered { name } if name == replica_registry_name(&self.config.id.name) => {
                self.registration.acknowledged(now, &self.config.timing);
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

/// Applies a committed `entry` to the primary's state, after telling the snapshot streams of
/// `peers` (which must keep what it changes and they still have to send).
fn apply_noting_streams<'a, S: StateMachine>(
    state: &mut ReplicatedState<S>,
    peers: impl Iterator<Item = &'a mut Peer<S>>,
    entry: &Entry<S::Command>,
) -> S::Reply {
    for peer in peers {
        if let Some(stream) = peer.snapshot.as_mut() {
            stream.before_apply(state, &entry.command);
        }
    }
    state.apply(entry)
}

fn push_recent<C>(recent: &mut VecDeque<Entry<C>>, entry: Entry<C>) {
    recent.push_back(entry);
    while recent.len() > MAX_RECENT_ENTRIES {
        recent.pop_front();
    }
}

/// The committed entries after `acked` up to `applied`, if `recent` still holds them all.
fn suffix_after<C: Clone + serde::Serialize>(
    recent: &VecDeque<Entry<C>>,
    acked: OpNumber,
    applied: OpNumber,
) -> Option<Vec<Entry<C>>> {
    if acked >= applied {
        return (acked == applied).then(Vec::new);
    }
    let first = recent.front()?.op;
    if first > acked.next() {
        return None;
    }
    // A suffix travels in one message: past MAX_CHUNK_BYTES, a snapshot in chunks instead
    // (a transport drops a message longer than its frame).
    let mut bytes = 0usize;
    let mut entries = Vec::new();
    for entry in recent.iter().filter(|e| e.op > acked) {
        bytes = bytes.saturating_add(crate::codec::encoded_len(entry).ok()?);
        if bytes > MAX_CHUNK_BYTES {
            return None;
        }
        entries.push(entry.clone());
    }
    Some(entries)
}

/// Whether `entries` bring a state at `applied` exactly to `op`.
fn suffix_fits<C>(applied: OpNumber, op: OpNumber, entries: &[Entry<C>]) -> bool {
    if applied > op {
        return false;
    }
    let mut next = applied.next();
    for entry in entries {
        if entry.op > next {
            return false;
        }
        if entry.op == next {
            next = next.next();
        }
    }
    next == op.next()
}

/// Entries `from ..= to` from the committed `recent` entries and the uncommitted `log`.
fn entries_between<C: Clone>(
    recent: &VecDeque<Entry<C>>,
    log: &VecDeque<Entry<C>>,
    from: OpNumber,
    to: OpNumber,
) -> Option<Vec<Entry<C>>> {
    let mut out = Vec::with_capacity((to.0.saturating_sub(from.0) + 1) as usize);
    let mut next = from;
    for source in [recent, log] {
        let Some(first) = source.front() else {
            continue;
        };
        if next < first.op {
            continue;
        }
        let start = (next.0 - first.op.0) as usize;
        for entry in source.iter().skip(start) {
            if entry.op > to {
                break;
            }
            out.push(entry.clone());
            next = entry.op.next();
        }
    }
    (next == to.next()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(count: u64, bytes: usize) -> VecDeque<Entry<String>> {
        (1..=count)
            .map(|op| Entry {
                op: OpNumber(op),
                request: crate::ids::RequestId {
                    client: crate::ids::ClientId(1),
                    seq: op,
                },
                owner: "client".into(),
                time: Time(0),
                command: "x".repeat(bytes),
            })
            .collect()
    }

    #[test]
    fn a_suffix_longer_than_a_chunk_is_not_offered() {
        let small = entries(20, 1000);
        assert_eq!(
            suffix_after(&small, OpNumber(5), OpNumber(20)).map(|s| s.len()),
            Some(15)
        );
        // 20 entries of 100 KiB: two megabytes, more than one message may carry.
        let large = entries(20, 100 * 1024);
        assert_eq!(suffix_after(&large, OpNumber(5), OpNumber(20)), None);
        assert_eq!(
            suffix_after(&large, OpNumber(15), OpNumber(20)).map(|s| s.len()),
            Some(5)
        );
    }
}
