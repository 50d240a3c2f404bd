//! A deterministic simulator of the sans-IO core, for property tests of the replication logic.
//!
//! One thread, no tokio, no clock, no sockets: every node of a cluster (the [`Registry`], one
//! front-end [`Frontend`], N [`Replica`]s of a [`SimService`] and M [`ClientSession`]s) is
//! driven through [`Node`] by one event loop over a virtual clock ([`Time`], milliseconds). The
//! queue is ordered by `(time, sequence number)`, and every random choice (delays, drops,
//! duplicates, TCP resets, validation delays, incarnations) comes from the simulator's own
//! seeded generator ([`SeededRng`]), so a run is a pure function of `(seed, config, actions)`.
//!
//! # What the simulator does for each node
//!
//! - It calls [`Node::handle_timeout`] at [`Node::next_timeout`] and drains
//!   [`Node::poll_output`] after every input.
//! - Every message is encoded with [`codec::encode`] when sent and decoded with
//!   [`codec::decode`] when delivered; a message that does not round-trip is a
//!   [`Invariant::WireCodec`] violation.
//! - [`Output::Validate`] is answered after a random delay by the order book's synchronous
//!   validation ([`SimService::validate`]) through [`Replica::handle_validated`].
//! - [`Output::PersistView`] replaces a stored `Option<ViewRecord>` that survives front-end
//!   crashes: a restarted front-end is `Frontend::new(config, stored.clone(), now)`.
//!
//! # Faults
//!
//! - Per-message drop and duplication probabilities, and a random delay in a range, which
//!   reorders (the range can be widened to rival the failure-detection timings).
//! - Partitions, as a set of blocked directed pairs of addresses: isolate a node, cut one link
//!   one way, cut the primary off its backups, split the replicas in two groups, heal.
//! - Crashes and restarts. A message to a crashed replica or front-end is lost, and its sender
//!   is told [`Node::handle_unreachable`] with some probability after a delay (a TCP reset).
//!   Messages a node sent before it crashed are still delivered. A restarted replica is a new
//!   [`Replica`] with a fresh incarnation and its pre-defined data; a restarted front-end has
//!   only its stored view; new replicas can join at any time.
//! - Slow validations (as an online postcode check that takes seconds), so views change while
//!   writes are being validated.
//!
//! Random runs use [`Action`]s ([`seeded_run`] makes a whole run from one seed). Hand-written
//! scenarios also have precise hooks: [`Sim::drop_next`] (lose one message of a kind),
//! [`Sim::hold`] and [`Sim::inject`] (deliver a message very late).
//!
//! # What is checked
//!
//! After every event, the state that event could have changed is checked against the
//! invariants of docs/PROTOCOL.md ([`Invariant`] lists them): the node that handled it, and every
//! replica again when the last active view changes or a write is acknowledged. Every write or
//! read answer a replica sends, every view the front-end stores or publishes and every client
//! completion is checked as it happens. [`Sim::finish`] then stops every fault and checks
//! liveness and convergence, reads every key once more and judges the whole client history
//! with [`crate::history::check`] (invariant 6; a lost or doubled order is reported as
//! invariant 1 or 2). The first violation stops the run with a [`Violation`]; the client
//! history ([`Sim::history`], [`Sim::history_json_lines`]) is in the format of
//! `docs/HISTORY-FORMAT.md`.
//!
//! ```
//! use just_hungry_core::sim::{Action, KeyedLists, Sim, SimConfig};
//!
//! let mut sim = Sim::<KeyedLists>::new(7, SimConfig::default());
//! let actions = [
//!     Action::Advance(500),
//!     Action::ClientWrite { client: 0, target: 0 },
//!     Action::CrashPrimary,
//!     Action::Advance(1500),
//! ];
//! for action in actions {
//!     sim.apply(action).unwrap();
//! }
//! let report = sim.finish().unwrap();
//! assert!(report.available);
//! ```

mod action;
mod adversary;
mod config;
mod control;
mod finish;
mod invariants;
mod observe;
mod service;

pub use action::{
    Action, Actions, Target, random_actions, random_adversarial, random_durable,
    seeded_adversarial_run, seeded_durable_run, seeded_run,
};
pub use adversary::{ADVERSARY_ADDRESS, ADVERSARY_CLIENT, ADVERSARY_REPLICA, FORGERY_KINDS};
pub use config::{NetworkConfig, SimConfig};
pub use invariants::{Invariant, Violation};
pub use observe::{FinalReport, FrontendObservation, NetworkStats, ReplicaObservation};
pub use service::{KeyedLists, ListKey, ListRead, SimKey, SimPage, SimService, UnknownKey};

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::codec;
use crate::history::{self, EventType, Function, History};
use crate::ids::{Address, ClientId, Identity, NodeRole, ReplicaId, RequestId, Time};
use crate::protocol::client::{ClientError, ClientSession, Completion};
use crate::protocol::client_table::ClientTableLimits;
use crate::protocol::frontend::{Frontend, FrontendConfig};
use crate::protocol::messages::{Message, Outcome};
use crate::protocol::registry::Registry;
use crate::protocol::replica::{DEFAULT_MAX_SNAPSHOT_BYTES, Replica, ReplicaConfig};
use crate::protocol::view_store::ViewRecord;
use crate::protocol::{Node, Output, Record};
use crate::rng::SeededRng;
use crate::state_machine::StateMachine;
use crate::storage::{
    FsyncPolicy, RecoveredReplica, ReplicaStore, SimDisk, StorageError, StoreError,
};

use invariants::Checker;

/// The address of the registry in a simulation.
pub const REGISTRY_ADDRESS: &str = "registry";

/// The address of the front-end in a simulation.
pub const FRONTEND_ADDRESS: &str = "frontend";

/// The most events one run may process: a bound that turns a livelock (nodes exchanging
/// messages forever at one instant) into a [`Invariant::Simulator`] violation, not a hang.
pub const MAX_EVENTS_PER_RUN: u64 = 5_000_000;

/// The most events at one virtual instant before the run is declared livelocked.
pub const MAX_EVENTS_PER_INSTANT: u64 = 100_000;

/// A message taken off the network by [`Sim::hold`], to be delivered later with
/// [`Sim::inject`] (in any order a scenario needs).
#[derive(Clone, Debug)]
pub struct HeldMessage {
    /// Its sender's address.
    pub from: Address,
    /// Its sender's identity, as the network authenticates it.
    pub sender: Identity,
    /// Its destination.
    pub to: Address,
    /// Its kind ([`Message::kind`]).
    pub kind: &'static str,
    bytes: Vec<u8>,
}

impl HeldMessage {
    /// The message itself, decoded from what was on the wire.
    pub fn message<S: StateMachine>(&self) -> Result<Message<S>, codec::CodecError> {
        codec::decode(&self.bytes)
    }
}

/// Which node an address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeRef {
    Registry,
    Frontend,
    Replica(usize),
    Client(usize),
    /// The adversary ([`Action::Forge`]): a peer with identities of its own.
    Adversary,
}

enum Event<S: StateMachine> {
    Deliver {
        from: Address,
        sender: Identity,
        to: Address,
        bytes: Vec<u8>,
    },
    Unreachable {
        node: Address,
        target: Address,
    },
    Validated {
        slot: usize,
        incarnation: u64,
        request: RequestId,
        command: S::Command,
    },
}

struct Scheduled<S: StateMachine> {
    at: Time,
    seq: u64,
    event: Event<S>,
}

impl<S: StateMachine> PartialEq for Scheduled<S> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<S: StateMachine> Eq for Scheduled<S> {}
impl<S: StateMachine> PartialOrd for Scheduled<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<S: StateMachine> Ord for Scheduled<S> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct ReplicaSlot<S: StateMachine> {
    name: String,
    address: Address,
    node: Option<Replica<S>>,
    /// Its machine's disk (used when [`SimConfig::storage`] is set): it survives crashes.
    disk: SimDisk,
    /// The running replica's data directory on `disk`.
    store: Option<ReplicaStore>,
    /// The incarnations that opened the directory on `disk`, as the simulator saw them start
    /// (the checker's own account of a directory's lineage).
    lineage: Vec<u64>,
}

/// The data directory of every simulated replica, on its own [`SimDisk`].
const SIM_DATA_DIR: &str = "/data";

/// Simulated replicas snapshot their state once this much log piled up (the runtime's 64 MiB
/// is never reached in a run), so that runs crash, restart and corrupt disks in the middle of
/// snapshots, and recover from them.
const SIM_SNAPSHOT_AFTER_BYTES: u64 = 256;

/// The bytes of a simulated replica's snapshot encoded per step: small, so that ops are
/// applied between the pieces of every snapshot.
const SIM_SNAPSHOT_BYTES_PER_STEP: usize = 64;

/// A client operation in flight.
#[derive(Clone, Debug)]
struct InFlight {
    /// The operation's id in the history: its first request's.
    id: RequestId,
    op: Function,
    key: String,
    invoked: Time,
    /// The request in flight now: `id`, or a later page of a paged read.
    request: RequestId,
    /// A read: the orders of the pages read so far.
    read: Vec<RequestId>,
}

/// The most ids of one page of the simulated clients' reads: small, so that reads take several
/// pages, and each page may be answered by another primary.
pub const SIM_READ_PAGE_LIMIT: u32 = 2;

struct ClientSlot<S: StateMachine> {
    address: Address,
    session: ClientSession<S>,
    current: Option<InFlight>,
    /// The last completion, for the end-of-run checks.
    last: Option<(RequestId, EventType, Option<Vec<RequestId>>)>,
}

/// The simulated cluster of replicas of `S`. See the module documentation.
pub struct Sim<S: SimService> {
    config: SimConfig,
    seed: u64,
    rng: SeededRng,
    now: Time,
    seq: u64,
    events: u64,
    events_at_instant: (Time, u64),
    queue: BinaryHeap<Reverse<Scheduled<S>>>,
    addresses: BTreeMap<Address, NodeRef>,
    registry: Registry,
    frontend: Option<Frontend<S>>,
    stored_view: Option<ViewRecord>,
    replicas: Vec<ReplicaSlot<S>>,
    clients: Vec<ClientSlot<S>>,
    blocked: BTreeSet<(Address, Address)>,
    /// Scenario hooks: drop the next message of a kind on a link; hold a link's messages.
    drop_next: Vec<(Address, Address, &'static str)>,
    holding: BTreeSet<(Address, Address)>,
    held: Vec<HeldMessage>,
    drop_per_mille: u16,
    duplicate_per_mille: u16,
    max_delay_ms: u64,
    stats: NetworkStats,
    history: History,
    /// The time of the history's last event, in nanoseconds (see [`Sim::history_time`]).
    history_last_ns: u64,
    checker: Checker<S>,
    adversary_received: u64,
    /// Every durable incarnation, and the incarnations that opened its directory before it.
    recovered: BTreeMap<ReplicaId, Vec<u64>>,
    /// Data directories refused as corrupt and moved aside ([`FinalReport::directories_moved_aside`]).
    directories_moved_aside: usize,
}

impl<S: SimService> Sim<S> {
    /// A cluster at time 0: the registry, the front-end, `config.replicas` replicas and
    /// `config.clients` idle clients. Nothing has happened yet (the first replica to ping
    /// bootstraps view 1 once time advances).
    pub fn new(seed: u64, config: SimConfig) -> Sim<S> {
        let mut sim = Sim {
            seed,
            rng: SeededRng::new(seed),
            now: Time::ZERO,
            seq: 0,
            events: 0,
            events_at_instant: (Time::ZERO, 0),
            queue: BinaryHeap::new(),
            addresses: BTreeMap::new(),
            registry: Registry::new(REGISTRY_ADDRESS, config.timing.autoclean),
            frontend: None,
            stored_view: None,
            replicas: Vec::new(),
            clients: Vec::new(),
            blocked: BTreeSet::new(),
            drop_next: Vec::new(),
            holding: BTreeSet::new(),
            held: Vec::new(),
            drop_per_mille: config.network.drop_per_mille,
            duplicate_per_mille: config.network.duplicate_per_mille,
            max_delay_ms: config.network.max_delay_ms,
            stats: NetworkStats::default(),
            history: History::new(history::initial_ids(S::initial().lists())),
            history_last_ns: 0,
            checker: Checker::new(),
            adversary_received: 0,
            recovered: BTreeMap::new(),
            directories_moved_aside: 0,
            config,
        };
        sim.addresses
            .insert(Address::new(ADVERSARY_ADDRESS), NodeRef::Adversary);
        sim.addresses
            .insert(Address::new(REGISTRY_ADDRESS), NodeRef::Registry);
        sim.addresses
            .insert(Address::new(FRONTEND_ADDRESS), NodeRef::Frontend);
        sim.frontend = Some(sim.new_frontend());
        for _ in 0..sim.config.replicas.max(1) {
            sim.add_replica();
        }
        for i in 0..sim.config.clients.max(1) {
            let address = Address::new(format!("client-{i}"));
            sim.addresses.insert(address.clone(), NodeRef::Client(i));
            // Client ids are never 0: that id is reserved for the seed orders.
            let session = ClientSession::new(
                ClientId(i as u64 + 1),
                Address::new(REGISTRY_ADDRESS),
                sim.config.client,
            );
            sim.clients.push(ClientSlot {
                address,
                session,
                current: None,
                last: None,
            });
        }
        sim
    }

    fn new_frontend(&self) -> Frontend<S> {
        let config = FrontendConfig::new(
            FRONTEND_ADDRESS,
            Address::new(FRONTEND_ADDRESS),
            Address::new(REGISTRY_ADDRESS),
        )
        .with_timing(self.config.timing);
        Frontend::new(config, self.stored_view.clone(), self.now)
    }

    /// A new incarnation for `slot`: memory-only with its pre-defined data or, with
    /// [`SimConfig::storage`], durable, from what its disk holds. A directory the store refuses
    /// (corrupt) is moved aside, as an operator would, and the replica starts with an empty one.
    fn new_replica(&mut self, slot: usize) -> Result<Replica<S>, StoreError> {
        let incarnation = self.rng.next_u64() | 1;
        let s = &self.replicas[slot];
        let config = ReplicaConfig {
            id: ReplicaId::new(s.name.clone(), incarnation),
            address: s.address.clone(),
            registry: Address::new(REGISTRY_ADDRESS),
            timing: self.config.timing,
            client_table: ClientTableLimits::default(),
            pipeline: Default::default(),
            transfer: self.config.transfer,
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
        };
        let Some(policy) = self.config.storage else {
            return Ok(Replica::new(config, S::initial(), self.now));
        };
        let (store, recovered) = match self.open_store(slot, &config.id, policy) {
            Ok(opened) => opened,
            Err(
                e @ (StoreError::Storage(StorageError::Corrupt { .. })
                | StoreError::Record { .. }
                | StoreError::Gap { .. }),
            ) => {
                tracing::info!(target: "just_hungry_core::sim", t = self.now.0, replica = %config.id, error = %e, "data directory refused: moved aside, starting with an empty one");
                self.replicas[slot].disk = SimDisk::new();
                self.replicas[slot].lineage.clear();
                self.directories_moved_aside += 1;
                self.open_store(slot, &config.id, policy)?
            }
            Err(e) => return Err(e),
        };
        self.replicas[slot].store = Some(store);
        let replica = recovered.into_replica(config, policy, self.now);
        let lineage = &mut self.replicas[slot].lineage;
        self.recovered.insert(replica.id().clone(), lineage.clone());
        lineage.push(replica.id().incarnation);
        Ok(replica)
    }

    fn open_store(
        &self,
        slot: usize,
        id: &ReplicaId,
        policy: FsyncPolicy,
    ) -> Result<(ReplicaStore, RecoveredReplica<S>), StoreError> {
        let s = &self.replicas[slot];
        let (mut store, recovered) = ReplicaStore::open(
            Arc::new(s.disk.clone()),
            Path::new(SIM_DATA_DIR),
            id,
            policy,
            self.now,
            S::initial(),
            ClientTableLimits::default(),
        )?;
        store.set_snapshot_after_bytes(SIM_SNAPSHOT_AFTER_BYTES);
        Ok((store, recovered))
    }

    // ---- the event loop ----

    /// Runs every event due within `duration` of virtual time, then sets the clock to its end.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), Violation> {
        let until = self.now + duration;
        self.run_until(until)
    }

    /// Runs every event due at or before `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Time) -> Result<(), Violation> {
        while self.step_before(until)? {}
        self.now = self.now.max(until);
        Ok(())
    }

    /// Runs until `done` holds (checked after every event) or `limit` of virtual time passed;
    /// returns whether `done` holds.
    pub fn run_while(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim<S>) -> bool,
    ) -> Result<bool, Violation> {
        let until = self.now + limit;
        while !done(self) {
            if !self.step_before(until)? {
                self.now = self.now.max(until);
                return Ok(done(self));
            }
        }
        Ok(true)
    }

    /// Processes the next event if it is due at or before `until`; returns whether there was
    /// one.
    fn step_before(&mut self, until: Time) -> Result<bool, Violation> {
        let queued = self.queue.peek().map(|Reverse(s)| s.at);
        let timer = self.earliest_timer();
        let next = match (queued, timer) {
            (Some(q), Some((t, _))) => q.min(t),
            (Some(q), None) => q,
            (None, Some((t, _))) => t,
            (None, None) => return Ok(false),
        };
        if next > until {
            return Ok(false);
        }
        self.now = self.now.max(next);
        self.count_event()?;
        match (queued, timer) {
            (_, Some((t, node))) if queued.is_none_or(|q| t <= q) => self.fire_timer(node)?,
            _ => {
                if let Some(Reverse(s)) = self.queue.pop() {
                    self.handle_event(s.event)?;
                }
            }
        }
        Ok(true)
    }

    fn count_event(&mut self) -> Result<(), Violation> {
        self.events += 1;
        if self.events_at_instant.0 == self.now {
            self.events_at_instant.1 += 1;
        } else {
            self.events_at_instant = (self.now, 1);
        }
        if self.events > MAX_EVENTS_PER_RUN || self.events_at_instant.1 > MAX_EVENTS_PER_INSTANT {
            return Err(self.violation(
                Invariant::Simulator,
                format!(
                    "livelock: {} events in all, {} at this instant",
                    self.events, self.events_at_instant.1
                ),
            ));
        }
        Ok(())
    }

    fn earliest_timer(&self) -> Option<(Time, NodeRef)> {
        let mut best: Option<(Time, NodeRef)> = None;
        let mut consider = |t: Option<Time>, node: NodeRef| {
            if let Some(t) = t
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, node));
            }
        };
        consider(self.registry.next_timeout(), NodeRef::Registry);
        if let Some(fe) = &self.frontend {
            consider(fe.next_timeout(), NodeRef::Frontend);
        }
        for (i, s) in self.replicas.iter().enumerate() {
            if let Some(r) = &s.node {
                consider(r.next_timeout(), NodeRef::Replica(i));
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            consider(c.session.next_timeout(), NodeRef::Client(i));
        }
        best
    }

    fn fire_timer(&mut self, node: NodeRef) -> Result<(), Violation> {
        let now = self.now;
        let next = match node {
            NodeRef::Registry => {
                self.registry.handle_timeout(now);
                self.registry.next_timeout()
            }
            NodeRef::Frontend => match self.frontend.as_mut() {
                Some(fe) => {
                    fe.handle_timeout(now);
                    fe.next_timeout()
                }
                None => None,
            },
            NodeRef::Replica(i) => match self.replicas[i].node.as_mut() {
                Some(r) => {
                    r.handle_timeout(now);
                    r.next_timeout()
                }
                None => None,
            },
            NodeRef::Client(i) => {
                let s = &mut self.clients[i].session;
                s.handle_timeout(now);
                s.next_timeout()
            }
            NodeRef::Adversary => None,
        };
        if next.is_some_and(|t| t <= now) {
            return Err(self.violation(
                Invariant::Simulator,
                format!("{node:?}: handle_timeout({now:?}) left next_timeout at {next:?}: the node would spin"),
            ));
        }
        self.drain(node)
    }

    fn handle_event(&mut self, event: Event<S>) -> Result<(), Violation> {
        let now = self.now;
        match event {
            Event::Deliver {
                from,
                sender,
                to,
                bytes,
            } => {
                let message: Message<S> = codec::decode(&bytes).map_err(|e| {
                    self.violation(
                        Invariant::WireCodec,
                        format!("message {from} -> {to} does not decode: {e}"),
                    )
                })?;
                let Some(node) = self.addresses.get(&to).copied() else {
                    return Ok(());
                };
                tracing::trace!(target: "just_hungry_core::sim", t = now.0, %from, %to, message = %summary(&message), "deliver");
                let forged = from.as_str() == ADVERSARY_ADDRESS;
                let refused_before = self.refused_by(node);
                match node {
                    NodeRef::Registry => self.registry.handle_message(now, from, &sender, message),
                    NodeRef::Frontend => match self.frontend.as_mut() {
                        Some(fe) => fe.handle_message(now, from, &sender, message),
                        None => return self.lost_to_crash(from, to),
                    },
                    NodeRef::Replica(i) => match self.replicas[i].node.as_mut() {
                        Some(r) => r.handle_message(now, from, &sender, message),
                        None => return self.lost_to_crash(from, to),
                    },
                    NodeRef::Client(i) => self.clients[i]
                        .session
                        .handle_message(now, &sender, message),
                    NodeRef::Adversary => {
                        self.adversary_received += 1;
                        return Ok(());
                    }
                }
                self.stats.delivered += 1;
                if forged {
                    self.stats.forged_delivered += 1;
                }
                self.stats.refused += self.refused_by(node).saturating_sub(refused_before);
                self.drain(node)
            }
            Event::Unreachable { node, target } => {
                let Some(at) = self.addresses.get(&node).copied() else {
                    return Ok(());
                };
                tracing::trace!(target: "just_hungry_core::sim", t = now.0, %node, %target, "unreachable");
                match at {
                    NodeRef::Registry => {
                        Node::<S>::handle_unreachable(&mut self.registry, now, &target)
                    }
                    NodeRef::Frontend => match self.frontend.as_mut() {
                        Some(fe) => fe.handle_unreachable(now, &target),
                        None => return Ok(()),
                    },
                    NodeRef::Replica(i) => match self.replicas[i].node.as_mut() {
                        Some(r) => r.handle_unreachable(now, &target),
                        None => return Ok(()),
                    },
                    NodeRef::Client(i) => self.clients[i].session.handle_unreachable(now, &target),
                    NodeRef::Adversary => return Ok(()),
                }
                self.stats.resets += 1;
                self.drain(at)
            }
            Event::Validated {
                slot,
                incarnation,
                request,
                command,
            } => {
                let Some(r) = self.replicas[slot].node.as_mut() else {
                    return Ok(());
                };
                if r.id().incarnation != incarnation {
                    return Ok(());
                }
                let result = S::validate(command);
                r.handle_validated(now, request, result);
                self.drain(NodeRef::Replica(slot))
            }
        }
    }

    /// A message reached a crashed node: lost; its sender may be told (a TCP reset).
    fn lost_to_crash(&mut self, from: Address, to: Address) -> Result<(), Violation> {
        self.stats.lost_to_crash += 1;
        if self.rng.chance(self.config.network.reset_per_mille) {
            let n = self.config.network;
            let delay = self.rng.between(n.min_delay_ms, n.max_reset_delay_ms);
            self.schedule(
                Duration::from_millis(delay),
                Event::Unreachable {
                    node: from,
                    target: to,
                },
            );
        }
        Ok(())
    }

    fn schedule(&mut self, delay: Duration, event: Event<S>) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + delay,
            seq: self.seq,
            event,
        }));
    }

    /// Drains the outputs of `node`, acts on them, and checks what they could have changed.
    fn drain(&mut self, node: NodeRef) -> Result<(), Violation> {
        match node {
            NodeRef::Registry => {
                let mut outputs = Vec::new();
                while let Some(o) = self.registry.poll_output() {
                    outputs.push(o);
                }
                self.act(&Address::new(REGISTRY_ADDRESS), None, outputs)
            }
            NodeRef::Frontend => {
                let Some(fe) = self.frontend.as_mut() else {
                    return Ok(());
                };
                let mut outputs = Vec::new();
                while let Some(o) = fe.poll_output() {
                    outputs.push(o);
                }
                self.act(&Address::new(FRONTEND_ADDRESS), None, outputs)?;
                self.check_frontend()
            }
            NodeRef::Replica(i) => {
                let now = self.now;
                if let Some(store) = self.replicas[i].store.as_mut() {
                    let synced = store.tick(now);
                    if !self.stop_on_failure(i, synced) {
                        return Ok(());
                    }
                }
                let Some(r) = self.replicas[i].node.as_mut() else {
                    return Ok(());
                };
                let mut outputs = Vec::new();
                while let Some(o) = r.poll_output() {
                    outputs.push(o);
                }
                let address = self.replicas[i].address.clone();
                self.act(&address, Some(i), outputs)?;
                if !self.snapshot_step(i) {
                    return Ok(());
                }
                self.check_replica(i)
            }
            NodeRef::Client(i) => self.drain_client(i),
            NodeRef::Adversary => Ok(()),
        }
    }

    fn act(
        &mut self,
        from: &Address,
        replica: Option<usize>,
        outputs: Vec<Output<S>>,
    ) -> Result<(), Violation> {
        // A durable replica's records are committed before any output after them.
        let mut uncommitted = false;
        for output in outputs {
            if let (Some(slot), Output::Record(record)) = (replica, &output) {
                if !self.write_record(slot, record) {
                    return Ok(());
                }
                uncommitted = true;
                continue;
            }
            if let (Some(slot), true) = (replica, uncommitted && !output.may_precede_commit()) {
                uncommitted = false;
                if !self.commit_records(slot) {
                    return Ok(());
                }
            }
            match output {
                Output::Send { to, message } => {
                    if let (Some(slot), Message::Response(response)) = (replica, &message) {
                        match &response.outcome {
                            Outcome::Written(reply) => {
                                self.check_written(slot, response.id, reply)?
                            }
                            Outcome::Read(_) => self.check_read_answer(slot, response.id)?,
                            _ => {}
                        }
                    }
                    self.check_published(from, &message)?;
                    self.send(from, to, &message)?;
                }
                Output::Validate { request, command } => {
                    let Some(slot) = replica else {
                        return Err(self.violation(
                            Invariant::Simulator,
                            format!("{from} asked for a validation but is not a replica"),
                        ));
                    };
                    let Some(incarnation) = self.replicas[slot]
                        .node
                        .as_ref()
                        .map(|r| r.id().incarnation)
                    else {
                        continue;
                    };
                    let c = &self.config;
                    let (low, high) = (c.min_validation_ms, c.max_validation_ms);
                    let (slow, slowest) = (c.slow_validation_per_mille, c.max_slow_validation_ms);
                    let delay = if self.rng.chance(slow) {
                        self.rng.between(high, slowest)
                    } else {
                        self.rng.between(low, high)
                    };
                    self.schedule(
                        Duration::from_millis(delay),
                        Event::Validated {
                            slot,
                            incarnation,
                            request,
                            command,
                        },
                    );
                }
                Output::PersistView(record) => self.persist(from, record)?,
                Output::Record(_) => {
                    return Err(self.violation(
                        Invariant::Simulator,
                        format!("{from} emitted a record but is not a replica"),
                    ));
                }
            }
        }
        if let (Some(slot), true) = (replica, uncommitted) {
            self.commit_records(slot);
        }
        Ok(())
    }

    /// Writes a record of replica `slot` to its data directory; false if the disk failed and
    /// the replica stopped (as its driver stops it: the failure is never retried).
    fn write_record(&mut self, slot: usize, record: &Record<S>) -> bool {
        let s = &mut self.replicas[slot];
        let written = match (s.store.as_mut(), s.node.as_ref()) {
            (Some(store), Some(node)) => store.write(record, node),
            _ => return false,
        };
        self.stop_on_failure(slot, written)
    }

    /// Makes replica `slot`'s periodic snapshot progress by [`SIM_SNAPSHOT_BYTES_PER_STEP`], as
    /// the runtime does each turn of its loop, and writes it in place once whole; false if the
    /// disk failed and the replica stopped.
    fn snapshot_step(&mut self, slot: usize) -> bool {
        let s = &mut self.replicas[slot];
        let (Some(store), Some(node)) = (s.store.as_mut(), s.node.as_mut()) else {
            return true;
        };
        let stepped = store
            .snapshot_step(node, SIM_SNAPSHOT_BYTES_PER_STEP)
            .and_then(|pending| match pending {
                Some(pending) => store.finish_snapshot(pending.run()),
                None => Ok(()),
            });
        self.stop_on_failure(slot, stepped)
    }

    /// Commits what replica `slot` recorded; false if the disk failed and it stopped.
    fn commit_records(&mut self, slot: usize) -> bool {
        let now = self.now;
        let committed = match self.replicas[slot].store.as_mut() {
            Some(store) => store.commit(now),
            None => return false,
        };
        self.stop_on_failure(slot, committed)
    }

    fn stop_on_failure(&mut self, slot: usize, result: Result<(), StoreError>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, slot, error = %e, "the data directory failed: the replica stops");
                self.crash_replica(slot);
                false
            }
        }
    }

    /// The identity the network authenticates for the node at `from` (the adversary sends
    /// under identities of its own, [`Sim::send_as`]).
    fn identity_of(&self, from: &Address) -> Identity {
        match self.addresses.get(from) {
            Some(NodeRef::Registry) => Identity::new(NodeRole::Registry, REGISTRY_ADDRESS),
            Some(NodeRef::Frontend) => Identity::new(NodeRole::Frontend, FRONTEND_ADDRESS),
            Some(NodeRef::Replica(i)) => {
                Identity::new(NodeRole::Replica, self.replicas[*i].name.clone())
            }
            Some(NodeRef::Client(_)) | Some(NodeRef::Adversary) | None => {
                Identity::new(NodeRole::Client, from.as_str())
            }
        }
    }

    /// Encodes `message` (checking that it round-trips) and puts it on the network, sent by
    /// the node at `from` under its own identity.
    fn send(&mut self, from: &Address, to: Address, message: &Message<S>) -> Result<(), Violation> {
        let sender = self.identity_of(from);
        self.send_as(sender, from, to, message)
    }

    /// As [`Sim::send`], under the identity `sender`.
    fn send_as(
        &mut self,
        sender: Identity,
        from: &Address,
        to: Address,
        message: &Message<S>,
    ) -> Result<(), Violation> {
        let bytes = codec::encode(message).map_err(|e| {
            self.violation(
                Invariant::WireCodec,
                format!("{} {from} -> {to} does not encode: {e}", message.kind()),
            )
        })?;
        let back: Message<S> = codec::decode(&bytes).map_err(|e| {
            self.violation(
                Invariant::WireCodec,
                format!("{} {from} -> {to} does not decode: {e}", message.kind()),
            )
        })?;
        let again = codec::encode(&back).ok();
        if again.as_deref() != Some(bytes.as_slice()) || back.kind() != message.kind() {
            return Err(self.violation(
                Invariant::WireCodec,
                format!("{} {from} -> {to} does not round-trip", message.kind()),
            ));
        }
        let kind = message.kind();
        if let Some(i) = self
            .drop_next
            .iter()
            .position(|(f, t, k)| f == from && *t == to && *k == kind)
        {
            self.drop_next.remove(i);
            self.stats.dropped += 1;
            return Ok(());
        }
        if self.holding.contains(&(from.clone(), to.clone())) {
            self.held.push(HeldMessage {
                from: from.clone(),
                sender,
                to,
                kind,
                bytes,
            });
            return Ok(());
        }
        if self.blocked.contains(&(from.clone(), to.clone())) {
            self.stats.blocked += 1;
            return Ok(());
        }
        if self.rng.chance(self.drop_per_mille) {
            self.stats.dropped += 1;
            return Ok(());
        }
        let copies = if self.rng.chance(self.duplicate_per_mille) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .between(self.config.network.min_delay_ms, self.max_delay_ms);
            self.schedule(
                Duration::from_millis(delay),
                Event::Deliver {
                    from: from.clone(),
                    sender: sender.clone(),
                    to: to.clone(),
                    bytes: bytes.clone(),
                },
            );
        }
        Ok(())
    }

    fn drain_client(&mut self, client: usize) -> Result<(), Violation> {
        let from = self.clients[client].address.clone();
        let mut sends = Vec::new();
        let mut completions = Vec::new();
        {
            let session = &mut self.clients[client].session;
            while let Some(t) = session.poll_transmit() {
                sends.push(t);
            }
            while let Some(c) = session.poll_completion() {
                completions.push(c);
            }
        }
        for (to, message) in sends {
            self.send(&from, to, &message)?;
        }
        for completion in completions {
            self.complete(client, completion)?;
        }
        Ok(())
    }

    /// Records a client's completion in the history and checks what an answer promises.
    fn complete(&mut self, client: usize, completion: Completion<S>) -> Result<(), Violation> {
        let Some(mut op) = self.clients[client].current.take() else {
            return Err(self.violation(
                Invariant::Simulator,
                format!(
                    "client {client} completed {} with nothing in flight",
                    completion.id
                ),
            ));
        };
        if op.request != completion.id {
            return Err(self.violation(
                Invariant::Simulator,
                format!(
                    "client {client} completed {} but {} is in flight",
                    completion.id, op.request
                ),
            ));
        }
        let (kind, read) = match (op.op, &completion.result) {
            (Function::Append, Ok(Outcome::Written(reply))) => match S::written(reply) {
                Some(written) if written != op.id => {
                    return Err(self.violation(
                        Invariant::ExactlyOnce,
                        format!("write {} was answered with id {written}", op.id),
                    ));
                }
                Some(_) => (EventType::Ok, None),
                None => (EventType::Fail, None),
            },
            (Function::Read, Ok(Outcome::Read(answer))) => {
                let Some(page) = S::page(answer) else {
                    return self.record(client, op, EventType::Fail, None);
                };
                let mut read = std::mem::take(&mut op.read);
                if page.start != read.len() as u64 {
                    return Err(self.violation(
                        Invariant::Simulator,
                        format!(
                            "read {}: a page starts at order {}, after {} orders",
                            op.id,
                            page.start,
                            read.len()
                        ),
                    ));
                }
                read.extend(page.ids);
                if let Some(start) = page.next {
                    // The next page, as part of the same read in the history.
                    return self.continue_read(client, op, read, start);
                }
                (EventType::Ok, Some(read))
            }
            // Neither was applied: the checker holds the client to it.
            (_, Err(ClientError::Overloaded | ClientError::RegistryUnreachable { .. })) => {
                (EventType::Fail, None)
            }
            (_, Err(_)) => (EventType::Info, None),
            (_, Ok(other)) => {
                return Err(self.violation(
                    Invariant::Simulator,
                    format!(
                        "{:?} {} got an answer of the wrong kind: {other:?}",
                        op.op, op.id
                    ),
                ));
            }
        };
        tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, client, id = %op.id, kind = ?kind, result = ?completion.result, "client completion");
        self.record(client, op, kind, read)
    }

    /// Records how client `client`'s operation `op` ended, and what its answer promises.
    fn record(
        &mut self,
        client: usize,
        op: InFlight,
        kind: EventType,
        read: Option<Vec<RequestId>>,
    ) -> Result<(), Violation> {
        let value = match (op.op, &read) {
            (Function::Append, _) => history::Value::Id(history::id_of(op.id)),
            (Function::Read, Some(ids)) => {
                history::Value::List(ids.iter().copied().map(history::id_of).collect())
            }
            (Function::Read, None) => history::Value::Null,
        };
        self.record_history(client, kind, op.op, op.key.clone(), value);
        self.clients[client].last = Some((op.id, kind, read));
        match (op.op, kind) {
            (Function::Append, EventType::Ok) => self.on_acknowledged(op.id, op.key),
            (Function::Append, EventType::Fail) => self.on_refused(op.id),
            _ => Ok(()),
        }
    }

    /// Adds an event of client `client` to the history, at [`Sim::history_time`].
    fn record_history(
        &mut self,
        client: usize,
        kind: EventType,
        f: Function,
        key: String,
        value: history::Value,
    ) {
        let time = self.history_time();
        self.history.push(history::Event {
            process: client as u64,
            kind,
            f,
            key,
            value,
            time,
        });
    }

    /// The time of a new history event in nanoseconds: virtual milliseconds times 10^6, made
    /// strictly increasing, so events at one virtual instant keep the order in which the
    /// simulator handled them (which is their real-time order).
    fn history_time(&mut self) -> u64 {
        let ns = self.now.as_millis().saturating_mul(1_000_000);
        self.history_last_ns = ns.max(self.history_last_ns.saturating_add(1));
        self.history_last_ns
    }

    fn persist(&mut self, from: &Address, record: ViewRecord) -> Result<(), Violation> {
        if from.as_str() != FRONTEND_ADDRESS {
            return Err(self.violation(
                Invariant::Simulator,
                format!("{from} asked to persist a view but is not the front-end"),
            ));
        }
        self.check_persisted(&record)?;
        self.stored_view = Some(record);
        Ok(())
    }

    fn violation(&self, invariant: Invariant, detail: String) -> Violation {
        Violation {
            invariant,
            time: self.now,
            detail,
        }
    }
}

/// A one-line summary of a message for the trace: its kind, view and the ops it carries.
fn summary<S: SimService>(message: &Message<S>) -> String {
    use crate::protocol::messages::TransferChunk;
    let entries = |entries: &[crate::protocol::messages::Entry<S::Command>]| {
        entries
            .iter()
            .map(|e| format!("{}={}", e.op.0, e.request))
            .collect::<Vec<_>>()
            .join(",")
    };
    let chunk = |chunk: &TransferChunk<S::Command>| match chunk {
        TransferChunk::Suffix { since, entries: e } => {
            format!("suffix since {since} [{}]", entries(e))
        }
        TransferChunk::Snapshot { index, last, bytes } => {
            let last = if *last { ", last" } else { "" };
            format!("snapshot chunk {index} ({} bytes{last})", bytes.len())
        }
    };
    match message {
        Message::Prepare { view, entries: e } => format!("Prepare {view} [{}]", entries(e)),
        Message::PrepareOk { view, replica, op } => format!("PrepareOk {view} {replica} {op}"),
        Message::StartView { view, op, chunk: c } => {
            format!("StartView {} {op} {}", view.number, chunk(c))
        }
        Message::StartViewOk { view, replica, op } => format!("StartViewOk {view} {replica} {op}"),
        Message::SnapshotAck {
            view,
            replica,
            op,
            next,
        } => format!("SnapshotAck {view} {replica} {op} below {next}"),
        Message::Learn {
            view,
            learner,
            op,
            chunk: c,
            ..
        } => format!("Learn {view} {learner} {op} {}", chunk(c)),
        Message::Forward { view, request, .. } => format!("Forward {view} {}", request.id),
        Message::Response(r) => format!("Response {} {:?}", r.id, r.outcome),
        Message::Request(r) => format!("Request {}", r.id),
        Message::ViewInfo { view, .. } => {
            format!("ViewInfo {:?}", view.as_ref().map(|v| v.to_string()))
        }
        other => other.kind().to_owned(),
    }
}

/// Runs `actions` on a new simulation of `config` seeded with `seed`, then
/// [`Sim::finish`]es it. The one-call form the property tests use.
pub fn run<S: SimService>(
    seed: u64,
    config: SimConfig,
    actions: &[Action],
) -> Result<FinalReport, Violation> {
    let mut sim = Sim::<S>::new(seed, config);
    for action in actions {
        sim.apply(*action)?;
    }
    sim.finish()
}
