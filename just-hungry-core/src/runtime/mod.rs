//! The tokio drivers: run a registry, front-end, replica or client on any [`Transport`].
//!
//! A driver owns the transport, the clock and the tasks; the protocol state machine owns every
//! decision. One loop per node: wait for a message, a timer, a finished validation or the
//! shutdown signal; feed it to the state machine; act on its outputs in order (persist before
//! send; encode and send; start validations). Ready messages are taken in a batch before the
//! outputs are drained, so the primary sends one `Prepare` per backup for many writes; a batch
//! ends after [`MAX_EVENTS_PER_BATCH`] events or [`MAX_BATCH_TIME`], so that a liveness signal
//! the transport holds is taken soon (issue 13). Liveness signals (pings and their answers,
//! [`Message::is_liveness_signal`]) are sent with [`Transport::send_priority`].
//!
//! Validations run inside the node's task, not in tasks of their own: one that completes at
//! once (the offline check, a cache hit) is fed back before the next output, with no spawn and
//! no wake-up; one that waits (an HTTP lookup) joins a set polled by the loop, so it delays
//! only its own request.
//!
//! Shutdown: [`NodeHandle::shutdown`] signals the loop, which stops after the current step,
//! aborts its validations and returns; [`NodeHandle::crash`] aborts the task at once (what a
//! `kill -9` does to a process), for demos and tests.

mod client;
mod clock;
mod history_recorder;
pub mod metrics;
mod registry_service;
pub mod view_store;

pub use client::Client;
pub use clock::{Clock, random_u64};
pub use history_recorder::HistoryRecorder;

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::codec;
use crate::ids::{Address, OpNumber, RequestId, Time, View};
use crate::protocol::frontend::{Frontend, FrontendConfig};
use crate::protocol::liveness::Durations;
use crate::protocol::messages::ReplicaRole;
use crate::protocol::messages::{ClientResponse, ClusterStatus, Message, Outcome, ServiceError};
use crate::protocol::registry::Registry;
use crate::protocol::replica::{Replica, ReplicaConfig};
use crate::protocol::stats::ViewChange;
use crate::protocol::view_store::ViewRecord;
use crate::protocol::{Node, Output, Record};
use crate::state_machine::{CommandValidator, StateMachine};
use crate::storage::{RecoveredReplica, ReplicaStore, SnapshotWritten, StoreError, SyncDone};
use crate::transport::{Transport, TransportEvent};
use metrics::{LoopQueues, Publisher};
use view_store::ViewStore;

/// The bytes of a durable replica's periodic snapshot encoded per turn of its loop
/// ([`ReplicaStore::snapshot_step`](crate::storage::ReplicaStore::snapshot_step)): a
/// fraction of a millisecond, so that a state of gigabytes is snapshotted over many turns,
/// between batches of events, instead of stopping the replica (its pings too) for seconds.
pub const SNAPSHOT_BYTES_PER_TURN: usize = 64 * 1024;

/// The most ready events taken in one batch before outputs are acted on.
pub const MAX_EVENTS_PER_BATCH: usize = 256;

/// The longest a node spends taking one batch of events before it acts on their outputs and
/// looks at its transport again (issue 13): a batch of expensive messages (large answers to
/// decode, writes to apply) cannot keep a liveness signal waiting longer than this plus the
/// encoding of what the batch produced.
pub const MAX_BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(2);

/// What a node says about itself when asked ([`NodeHandle::report`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// A replica's role; `None` for other nodes.
    pub role: Option<ReplicaRole>,
    /// The newest view the node knows (a front-end: the newest it created).
    pub view: Option<View>,
    /// A front-end: whether `view` is active. A replica: whether it serves as primary.
    pub active: bool,
    /// A replica: the last op applied to its state.
    pub applied: OpNumber,
    /// A replica: the digest of its replicated state (service and client table).
    pub digest: Option<u64>,
    /// How many messages the node refused because their sender may not send them
    /// ([`crate::protocol::trust`]).
    pub refused: u64,
    /// A replica: the round trips of its pings to the front-end
    /// ([`Replica::ping_round_trips`]).
    pub ping_round_trips: Option<Durations>,
    /// A front-end: the gaps between consecutive pings of each replica
    /// ([`Frontend::ping_gaps`]).
    pub ping_gaps: Option<Durations>,
    /// A front-end: the cluster as it sees it ([`Frontend::cluster_status`]).
    pub cluster: Option<ClusterStatus>,
    /// A front-end: its newest view changes, oldest first
    /// ([`FrontendStats::recent_view_changes`](crate::protocol::stats::FrontendStats::recent_view_changes)).
    pub view_changes: Vec<ViewChange>,
    /// A front-end: the client requests it answered, whatever the outcome.
    pub requests_answered: u64,
    /// A replica: the highest op it holds ([`Replica::last_op`]).
    pub last_op: OpNumber,
    /// A replica that is primary: how many ops each peer lacks ([`Replica::replication_lag`]).
    pub replication_lag: Vec<(String, u64)>,
    /// The node's clock when it made this report: the time base of `view_changes`' times.
    pub clock: Time,
}

/// One line: the name, the role (replicas), the applied op and the state's digest.
impl std::fmt::Display for NodeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<10}", self.name)?;
        if let Some(role) = self.role {
            write!(f, " {role:?}")?;
        }
        write!(f, " applied op {}", self.applied.0)?;
        match self.digest {
            Some(digest) => write!(f, " digest {digest:016x}"),
            None => Ok(()),
        }
    }
}

/// A running node: ask for its report, stop it gracefully or crash it.
pub struct NodeHandle {
    name: String,
    shutdown: watch::Sender<bool>,
    controls: mpsc::Sender<Control>,
    /// Why the node stopped on its own, once it has.
    failure: watch::Receiver<Option<String>>,
    task: JoinHandle<()>,
}

impl NodeHandle {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's report, or `None` if it has stopped.
    pub async fn report(&self) -> Option<NodeReport> {
        self.reporter().report().await
    }

    /// Something that asks this node for its report, for another task to keep (an HTTP
    /// endpoint's status page): it holds no more than a channel to the node's loop.
    pub fn reporter(&self) -> NodeReporter {
        NodeReporter {
            controls: self.controls.clone(),
        }
    }

    /// Freezes the node's event loop for `duration`, as `SIGSTOP` then `SIGCONT` would
    /// freeze its process: it takes no message and fires no timer meanwhile, and what reaches
    /// it waits in its transport. For tests of what a node does when it wakes (the
    /// nemesis's "pause the front-end").
    pub async fn pause(&self, duration: std::time::Duration) {
        let _ = self.controls.send(Control::Pause(duration)).await;
    }

    /// Asks the node to stop and waits until its task has finished.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Kills the node at once, as `kill -9` would: no further message is sent or handled.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Whether the node's task has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the node stops on its own because it cannot go on, and says why (a
    /// front-end that cannot persist its view). Never completes for a node that keeps
    /// running or is stopped by [`NodeHandle::shutdown`]: a binary selects on it beside its
    /// shutdown signal and exits non-zero with the reason, so a supervisor restarts it or
    /// alerts.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.clone();
        // The guard is dropped before any later await, so the future is Send.
        let reason = match failure.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

/// Asks a running node for its report ([`NodeHandle::reporter`]).
#[derive(Clone)]
pub struct NodeReporter {
    controls: mpsc::Sender<Control>,
}

impl NodeReporter {
    /// The node's report, or `None` once it has stopped. Waits while the node's loop is busy
    /// with a batch (at most [`MAX_BATCH_TIME`] plus acting on its outputs).
    pub async fn report(&self) -> Option<NodeReport> {
        let (tx, rx) = oneshot::channel();
        self.controls.send(Control::Report(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// What a [`NodeHandle`] asks of its node's loop.
enum Control {
    /// Send the node's report.
    Report(oneshot::Sender<NodeReport>),
    /// Freeze for this long.
    Pause(std::time::Duration),
}

/// A protocol node as the runtime drives it: [`Node`] plus the validation callback only a
/// replica uses.
trait Driven<S: StateMachine>: Node<S> + Send + 'static {
    fn report(&self, now: Time) -> NodeReport {
        NodeReport {
            name: self.name().to_owned(),
            role: None,
            view: None,
            active: false,
            applied: OpNumber(0),
            digest: None,
            refused: self.refused(),
            ping_round_trips: None,
            ping_gaps: None,
            cluster: None,
            view_changes: Vec::new(),
            requests_answered: 0,
            last_op: OpNumber(0),
            replication_lag: Vec::new(),
            clock: now,
        }
    }

    /// Publishes the node's metrics ([`metrics`]).
    fn publish(&mut self, publisher: &mut Publisher, _now: Time) {
        publisher.refused(self.refused());
    }

    fn handle_validated(
        &mut self,
        _now: Time,
        _request: RequestId,
        _result: Result<S::Command, S::Reply>,
    ) {
    }

    /// The replica, for a node that emits [`Output::Record`].
    fn as_replica(&self) -> Option<&Replica<S>> {
        None
    }

    /// The replica, to snapshot for its data directory.
    fn as_replica_mut(&mut self) -> Option<&mut Replica<S>> {
        None
    }
}

impl<S: StateMachine> Driven<S> for Registry {
    fn publish(&mut self, publisher: &mut Publisher, _now: Time) {
        publisher.refused(self.refused());
        publisher.registry(self);
    }
}

impl<S: StateMachine> Driven<S> for Frontend<S> {
    fn report(&self, now: Time) -> NodeReport {
        NodeReport {
            name: self.name().to_owned(),
            role: None,
            view: self.current_view().cloned(),
            active: self.active_view().is_some(),
            applied: OpNumber(0),
            digest: None,
            refused: self.refused(),
            ping_round_trips: None,
            ping_gaps: Some(self.ping_gaps().clone()),
            cluster: Some(self.cluster_status(now)),
            view_changes: self.stats().recent_view_changes.iter().cloned().collect(),
            requests_answered: self.stats().requests_answered(),
            last_op: OpNumber(0),
            replication_lag: Vec::new(),
            clock: now,
        }
    }

    fn publish(&mut self, publisher: &mut Publisher, now: Time) {
        publisher.refused(self.refused());
        publisher.frontend(self, now);
    }
}

impl<S: StateMachine> Driven<S> for Replica<S> {
    fn report(&self, now: Time) -> NodeReport {
        NodeReport {
            name: self.name().to_owned(),
            role: Some(self.role()),
            view: self.view().cloned(),
            active: self.role() == ReplicaRole::Primary,
            applied: self.applied(),
            digest: Some(self.state().digest()),
            refused: self.refused(),
            ping_round_trips: Some(self.ping_round_trips().clone()),
            ping_gaps: None,
            cluster: None,
            view_changes: Vec::new(),
            requests_answered: 0,
            last_op: self.last_op(),
            replication_lag: self
                .replication_lag()
                .into_iter()
                .map(|(id, lag)| (id.name.clone(), lag))
                .collect(),
            clock: now,
        }
    }

    fn publish(&mut self, publisher: &mut Publisher, _now: Time) {
        publisher.refused(self.refused());
        publisher.replica(self);
    }

    fn handle_validated(
        &mut self,
        now: Time,
        request: RequestId,
        result: Result<S::Command, S::Reply>,
    ) {
        Replica::handle_validated(self, now, request, result);
    }

    fn as_replica(&self) -> Option<&Replica<S>> {
        Some(self)
    }

    fn as_replica_mut(&mut self) -> Option<&mut Replica<S>> {
        Some(self)
    }
}

/// What a node's outputs need beyond the transport.
struct Effects<S: StateMachine> {
    validator: Option<Arc<dyn CommandValidator<S>>>,
    store: Option<Box<dyn ViewStore>>,
    /// A durable replica's data directory.
    replica_store: Option<Durability<S>>,
}

/// A durable replica's data directory as its loop drives it: records are written as they
/// come, syncs run on a blocking thread while the loop goes on (pipelined group commit: what
/// is written during one sync is covered by the next), and each output that follows a record
/// waits here until that record is as durable as the policy promises.
struct Durability<S: StateMachine> {
    store: ReplicaStore,
    /// Outputs waiting, in order, each with the last record index it waits for.
    held: VecDeque<(u64, Output<S>)>,
}

impl<S: StateMachine> Durability<S> {
    /// Whether `output`, which follows every record written so far, must wait.
    fn must_hold(&self, output: &Output<S>) -> bool {
        !output.may_precede_commit()
            && (!self.held.is_empty() || self.store.last_index() > self.store.committed_index())
    }

    /// The outputs whose records are now durable enough, in order.
    fn release(&mut self) -> Vec<Output<S>> {
        let committed = self.store.committed_index();
        let mut released = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|(index, _)| *index <= committed)
        {
            if let Some((_, output)) = self.held.pop_front() {
                released.push(output);
            }
        }
        released
    }
}

/// Runs a registry (name server) whose entries expire after `autoclean` without renewal.
///
/// The registry knows nothing of the service, so it serves any: nodes of every service may
/// register with it (give its transport no service name, and the TCP hello lets each in). A
/// message of a service that carries a command, reply, query or state is not for a registry;
/// it fails to decode here and is dropped like any undecodable frame.
pub fn spawn_registry<T: Transport>(transport: T, autoclean: std::time::Duration) -> NodeHandle {
    let name = format!("registry@{}", transport.local_address());
    let node = Registry::new(name.clone(), autoclean);
    let effects = Effects::<registry_service::NoService> {
        validator: None,
        store: None,
        replica_store: None,
    };
    spawn(
        name,
        std::future::ready((node, effects)),
        transport,
        Clock::new(),
    )
}

/// Runs a front-end that persists its views in `store` and resumes from what it holds.
///
/// The stored view is loaded inside the node's task, before it takes its first message: a
/// store that answers only once it can (etcd without a quorum) holds this front-end back, not
/// the caller. A store that answers with an error (a corrupt file) is logged, and the
/// front-end starts without a view; a shared store's compare-and-swap then refuses the first
/// view it would save over a record it has not read (docs/PROTOCOL.md, rule 5).
pub fn spawn_frontend<S: StateMachine, T: Transport>(
    transport: T,
    config: FrontendConfig,
    mut store: Box<dyn ViewStore>,
) -> NodeHandle {
    let clock = Clock::new();
    let name = config.name.clone();
    let start = clock;
    let node = async move {
        let stored = match store.load().await {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(node = %config.name, error = %e, "cannot load the stored view: starting without one");
                None
            }
        };
        let node = Frontend::<S>::new(config, stored, start.now());
        let effects = Effects {
            validator: None,
            store: Some(store),
            replica_store: None,
        };
        (node, effects)
    };
    spawn(name, node, transport, clock)
}

/// Runs a replica starting from `initial` (its pre-defined data), validating writes with
/// `validator` when it is primary.
pub fn spawn_replica<S: StateMachine, T: Transport>(
    transport: T,
    config: ReplicaConfig,
    initial: S,
    validator: Arc<dyn CommandValidator<S>>,
) -> NodeHandle {
    let clock = Clock::new();
    let node = Replica::new(config, initial, clock.now());
    let name = node.name().to_owned();
    let effects = Effects {
        validator: Some(validator),
        store: None,
        replica_store: None,
    };
    spawn(name, std::future::ready((node, effects)), transport, clock)
}

/// Runs a durable replica (docs/PROTOCOL.md, "Durability") that keeps its data directory in
/// `store` and starts from what it held (`recovered`, both from [`ReplicaStore::open`]).
///
/// Every record the replica emits is written, and made as durable as the store's fsync policy
/// says, before any later output is acted on; the records of one batch of events share one
/// commit (group commit). A failed write or sync stops the replica
/// ([`NodeHandle::failed`] says why): it is never retried.
pub fn spawn_durable_replica<S: StateMachine, T: Transport>(
    transport: T,
    config: ReplicaConfig,
    store: ReplicaStore,
    recovered: RecoveredReplica<S>,
    validator: Arc<dyn CommandValidator<S>>,
) -> NodeHandle {
    let clock = Clock::new();
    let node = recovered.into_replica(config, store.policy(), clock.now());
    let name = node.name().to_owned();
    let effects = Effects {
        validator: Some(validator),
        store: None,
        replica_store: Some(Durability {
            store,
            held: VecDeque::new(),
        }),
    };
    spawn(name, std::future::ready((node, effects)), transport, clock)
}

/// Starts the task of the node `start` makes (at once, or after loading what it needs).
fn spawn<S: StateMachine, N: Driven<S>, T: Transport>(
    name: String,
    start: impl Future<Output = (N, Effects<S>)> + Send + 'static,
    transport: T,
    clock: Clock,
) -> NodeHandle {
    let (shutdown, signal) = watch::channel(false);
    let (controls, control_requests) = mpsc::channel(8);
    let (fail, failure) = watch::channel(None);
    let task = tokio::spawn(async move {
        // Asked to stop while still starting (a store that cannot answer): stop.
        let mut stopping = signal.clone();
        let (node, effects) = tokio::select! {
            started = start => started,
            _ = stopping.changed() => return,
        };
        drive(
            node,
            transport,
            effects,
            signal,
            control_requests,
            clock,
            fail,
        )
        .await
    });
    NodeHandle {
        name,
        shutdown,
        controls,
        failure,
        task,
    }
}

type Validated<S> = (
    RequestId,
    Result<<S as StateMachine>::Command, <S as StateMachine>::Reply>,
);

/// Validations still waiting (on the network, say), polled by the node's loop.
type Validations<S> = FuturesUnordered<BoxFuture<'static, Validated<S>>>;

/// Runs one node until it stops. The node lives in a [`ReleasedOffLoop`], so if the task is
/// aborted ([`NodeHandle::crash`]) its memory is freed on a thread of its own.
async fn drive<S: StateMachine, N: Driven<S>, T: Transport>(
    node: N,
    transport: T,
    effects: Effects<S>,
    shutdown: watch::Receiver<bool>,
    controls: mpsc::Receiver<Control>,
    clock: Clock,
    fail: watch::Sender<Option<String>>,
) {
    let mut owned = ReleasedOffLoop(Some(node));
    if let Some(node) = owned.0.as_mut()
        && let Err(reason) = run_loop(node, transport, effects, shutdown, controls, clock).await
    {
        let _ = fail.send(Some(reason));
    }
    // Stopped gracefully: the node is released here, in order.
    drop(owned.0.take());
}

/// The event loop of one node.
async fn run_loop<S: StateMachine, N: Driven<S>, T: Transport>(
    node: &mut N,
    mut transport: T,
    mut effects: Effects<S>,
    mut shutdown: watch::Receiver<bool>,
    mut controls: mpsc::Receiver<Control>,
    clock: Clock,
) -> Result<(), String> {
    let mut validations: Validations<S> = FuturesUnordered::new();
    let mut buffer = Vec::new();
    // The sync running on a blocking thread, if one is, and when it started.
    let mut syncing: Option<(JoinHandle<SyncDone>, std::time::Instant)> = None;
    // The periodic snapshot's write running on a blocking thread, if one is, and its size.
    let mut snapshotting: Option<(JoinHandle<SnapshotWritten>, usize, std::time::Instant)> = None;
    let sync_duration = effects
        .replica_store
        .as_ref()
        .map(|_| metrics::wal_sync_duration(node.name()));
    let mut publisher = Publisher::new(node.name());
    node.handle_timeout(clock.now());
    loop {
        if publisher.due() {
            node.publish(&mut publisher, clock.now());
            publisher.queues(&LoopQueues {
                validations: validations.len(),
                held_outputs: effects.replica_store.as_ref().map_or(0, |d| d.held.len()),
            });
        }
        // Act on the outputs in order; a view to persist is saved before anything after it is
        // sent (an output not yet taken stays in the node).
        while let Some(record) = act(
            node,
            &transport,
            &mut effects,
            &mut validations,
            &mut buffer,
            &clock,
        )? {
            let Some(store) = effects.store.as_mut() else {
                continue;
            };
            // A save that waits (etcd without a quorum) gives way to a shutdown.
            let saved = tokio::select! {
                saved = store.save(&record) => saved,
                _ = shutdown.changed() => {
                    tracing::info!(node = %node.name(), "stopped while saving a view");
                    return Ok(());
                }
            };
            if let Err(e) = saved {
                // Publishing a view that is not stored could make a restarted front-end go
                // back in time, and one another front-end stored over is not ours to
                // publish: stop instead.
                tracing::error!(node = %node.name(), error = %e, "cannot persist the view: stopping");
                return Err(format!("cannot persist the view: {e}"));
            }
        }
        // A piece of the periodic snapshot, once the records are written.
        if snapshotting.is_none()
            && let Some(d) = effects.replica_store.as_mut()
            && let Some(replica) = node.as_replica_mut()
            && let Some(pending) = d
                .store
                .snapshot_step(replica, SNAPSHOT_BYTES_PER_TURN)
                .map_err(|e| storage_failed(replica.name(), &e))?
        {
            let bytes = pending.payload_bytes();
            if d.store.syncs_in_place() {
                let done = pending.run();
                d.store
                    .finish_snapshot(done)
                    .map_err(|e| storage_failed(node.name(), &e))?;
            } else {
                snapshotting = Some((
                    tokio::task::spawn_blocking(move || pending.run()),
                    bytes,
                    std::time::Instant::now(),
                ));
            }
        }
        let snapshot_encoding = effects
            .replica_store
            .as_ref()
            .is_some_and(|d| d.store.snapshot_encoding());
        if syncing.is_none()
            && let Some(d) = effects.replica_store.as_mut()
            && let Some(pending) = d
                .store
                .begin_sync(clock.now())
                .map_err(|e| storage_failed(node.name(), &e))?
        {
            if d.store.syncs_in_place() {
                // A disk in memory: no thread, and a paused clock stays deterministic.
                let done = pending.run();
                d.store
                    .finish_sync(done)
                    .map_err(|e| storage_failed(node.name(), &e))?;
                for output in d.release() {
                    perform(
                        node,
                        &transport,
                        &effects.validator,
                        &mut validations,
                        &mut buffer,
                        &clock,
                        output,
                    );
                }
                // Act on what the released outputs started.
                continue;
            }
            syncing = Some((
                tokio::task::spawn_blocking(move || pending.run()),
                std::time::Instant::now(),
            ));
        }
        let next_sync = match &effects.replica_store {
            Some(d) if syncing.is_none() => d.store.next_sync(),
            _ => None,
        };
        let deadline = [node.next_timeout(), next_sync]
            .into_iter()
            .flatten()
            .min()
            .map(|t| clock.instant_at(t))
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            Some(control) = controls.recv() => match control {
                Control::Report(reply) => { let _ = reply.send(node.report(clock.now())); }
                Control::Pause(duration) => {
                    tracing::info!(node = %node.name(), duration = ?duration, "paused (a test's fault)");
                    tokio::time::sleep(duration).await;
                }
            },
            event = transport.recv() => {
                let Some(event) = event else { break };
                let batch = std::time::Instant::now();
                feed(node, &clock, event);
                for _ in 1..MAX_EVENTS_PER_BATCH {
                    if batch.elapsed() >= MAX_BATCH_TIME {
                        break;
                    }
                    match transport.try_recv() {
                        Some(event) => feed(node, &clock, event),
                        None => break,
                    }
                }
            }
            Some((request, result)) = validations.next(), if !validations.is_empty() => {
                node.handle_validated(clock.now(), request, result);
                // Take every other finished validation too, so their writes share a Prepare.
                while let Some(Some((request, result))) = validations.next().now_or_never() {
                    node.handle_validated(clock.now(), request, result);
                }
            }
            done = async { (&mut syncing.as_mut().expect("a sync").0).await }, if syncing.is_some() => {
                if let Some((_, started)) = syncing.take()
                    && let Some(histogram) = &sync_duration
                {
                    histogram.record(started.elapsed().as_secs_f64());
                }
                let done = done.map_err(|e| format!("the sync of the data directory panicked: {e}"))?;
                if let Some(d) = effects.replica_store.as_mut() {
                    d.store.finish_sync(done).map_err(|e| storage_failed(node.name(), &e))?;
                    for output in d.release() {
                        perform(node, &transport, &effects.validator, &mut validations, &mut buffer, &clock, output);
                    }
                }
            }
            done = async { (&mut snapshotting.as_mut().expect("a snapshot").0).await }, if snapshotting.is_some() => {
                let Some((_, bytes, started)) = snapshotting.take() else { continue };
                let done = done.map_err(|e| format!("the write of a snapshot panicked: {e}"))?;
                if let Some(d) = effects.replica_store.as_mut() {
                    d.store.finish_snapshot(done).map_err(|e| storage_failed(node.name(), &e))?;
                    tracing::info!(node = %node.name(), bytes, write = ?started.elapsed(), "wrote a snapshot of the state to the data directory; the log it covers is removed");
                }
            }
            // The next piece of the snapshot being encoded, at the top of the loop.
            () = std::future::ready(()), if snapshot_encoding => {}
            // The batch interval's sync is started at the top of the loop.
            _ = tokio::time::sleep_until(deadline) => node.handle_timeout(clock.now()),
        }
    }
    drop(validations);
    tracing::info!(node = %node.name(), "stopped");
    Ok(())
}

/// Holds a node for its event loop. Dropped still holding it, which happens only when the
/// loop's task is aborted ([`NodeHandle::crash`]), it frees the node on a thread of its own,
/// as the kernel frees a killed process's memory at no cost to the others: freeing a large
/// replicated state (hundreds of thousands of orders take tens of milliseconds) would
/// otherwise stall every node sharing the runtime's threads, and delay the very failover a
/// crash is meant to exercise.
struct ReleasedOffLoop<N: Send + 'static>(Option<N>);

impl<N: Send + 'static> Drop for ReleasedOffLoop<N> {
    fn drop(&mut self) {
        if let Some(node) = self.0.take() {
            // If no thread can be started, the closure (and the node) is dropped here.
            let _ = std::thread::Builder::new()
                .name("just-hungry-release".into())
                .spawn(move || drop(node));
        }
    }
}

fn feed<S: StateMachine, N: Driven<S>>(node: &mut N, clock: &Clock, event: TransportEvent) {
    let now = clock.now();
    match event {
        TransportEvent::Message {
            from,
            sender,
            payload,
        } => match codec::decode::<Message<S>>(&payload) {
            Ok(message) => node.handle_message(now, from, &sender, message),
            Err(e) => {
                tracing::info!(node = %node.name(), from = %from, sender = %sender, error = %e, bytes = payload.len(), "dropped a message that does not decode");
            }
        },
        TransportEvent::Unreachable { to } => node.handle_unreachable(now, &to),
    }
    if node.next_timeout().is_some_and(|t| t <= now) {
        node.handle_timeout(now);
    }
}

/// Acts on the node's outputs until they run out, or until one is a view to persist: that one
/// is returned, for the caller to save before it calls again. The records of a durable
/// replica are written as they come and committed once, when the outputs ready run out; the
/// outputs that came after a record wait for that commit (group commit). A storage failure is
/// returned as the reason to stop.
fn act<S: StateMachine, N: Driven<S>, T: Transport>(
    node: &mut N,
    transport: &T,
    effects: &mut Effects<S>,
    validations: &mut Validations<S>,
    buffer: &mut Vec<u8>,
    clock: &Clock,
) -> Result<Option<ViewRecord>, String> {
    loop {
        let mut persist = None;
        while let Some(output) = node.poll_output() {
            match output {
                Output::Record(record) => write_record(node, effects, &record)?,
                Output::PersistView(record) => {
                    persist = Some(record);
                    break;
                }
                other => match effects.replica_store.as_mut() {
                    Some(d) if d.must_hold(&other) => {
                        let index = d.store.last_index();
                        d.held.push_back((index, other));
                    }
                    _ => perform(
                        node,
                        transport,
                        &effects.validator,
                        validations,
                        buffer,
                        clock,
                        other,
                    ),
                },
            }
        }
        // Every record reaches the file system now (what `batch` and `never` wait for); a
        // sync, when the policy asks for one, starts once this returns.
        let released = match effects.replica_store.as_mut() {
            Some(d) => {
                d.store
                    .flush()
                    .map_err(|e| storage_failed(node.name(), &e))?;
                d.release()
            }
            None => Vec::new(),
        };
        let acted = !released.is_empty();
        for output in released {
            perform(
                node,
                transport,
                &effects.validator,
                validations,
                buffer,
                clock,
                output,
            );
        }
        // What the released outputs started (a validation answered at once) may have more.
        if persist.is_some() || !acted {
            return Ok(persist);
        }
    }
}

/// Writes a record of a durable replica to its data directory.
fn write_record<S: StateMachine, N: Driven<S>>(
    node: &N,
    effects: &mut Effects<S>,
    record: &Record<S>,
) -> Result<(), String> {
    match (effects.replica_store.as_mut(), node.as_replica()) {
        (Some(d), Some(replica)) => d
            .store
            .write(record, replica)
            .map_err(|e| storage_failed(node.name(), &e)),
        _ => {
            tracing::error!(node = %node.name(), "a record emitted by a node without a data directory: dropped");
            Ok(())
        }
    }
}

/// The data directory failed: the replica stops (docs/PROTOCOL.md, "Durability": a failed
/// write or sync is never retried).
fn storage_failed(name: &str, error: &StoreError) -> String {
    tracing::error!(node = %name, error = %error, "the data directory failed: stopping (fix the disk, then restart the replica)");
    format!("the data directory failed: {error}")
}

/// Acts on one output other than a record or a view to persist.
fn perform<S: StateMachine, N: Driven<S>, T: Transport>(
    node: &mut N,
    transport: &T,
    validator: &Option<Arc<dyn CommandValidator<S>>>,
    validations: &mut Validations<S>,
    buffer: &mut Vec<u8>,
    clock: &Clock,
    output: Output<S>,
) {
    match output {
        Output::Send { to, message } => send(node.name(), transport, &to, &message, buffer),
        Output::Validate { request, command } => match validator {
            Some(validator) => {
                let validator = validator.clone();
                let mut validation: BoxFuture<'static, Validated<S>> =
                    Box::pin(async move { (request, validator.validate(command).await) });
                match (&mut validation).now_or_never() {
                    Some((request, result)) => node.handle_validated(clock.now(), request, result),
                    None => validations.push(validation),
                }
            }
            None => {
                tracing::error!(node = %node.name(), "validation asked of a node without a validator")
            }
        },
        Output::Record(_) | Output::PersistView(_) => {
            tracing::error!(node = %node.name(), "a record or view reached the wrong step: dropped")
        }
    }
}

fn send<S: StateMachine, T: Transport>(
    name: &str,
    transport: &T,
    to: &Address,
    message: &Message<S>,
    buffer: &mut Vec<u8>,
) {
    // Encode into the buffer, hand it over whole, and start the next one sized for a message
    // like this one (at most 64 KiB, so one snapshot chunk does not make every later buffer
    // large): one allocation per message and no copy.
    buffer.clear();
    match codec::encode_into(message, buffer) {
        Ok(()) if buffer.len() > transport.max_payload_bytes() => {
            too_long(name, transport, to, message, buffer)
        }
        Ok(()) => {
            let next = Vec::with_capacity(buffer.len().min(64 * 1024));
            let payload = std::mem::replace(buffer, next);
            if message.is_liveness_signal() {
                transport.send_priority(to, payload);
            } else {
                transport.send(to, payload);
            }
        }
        Err(e) => {
            tracing::error!(node = %name, to = %to, kind = message.kind(), error = %e, "cannot encode a message")
        }
    }
}

/// `message`, encoded in `buffer`, is longer than `transport` carries. An answer to a request
/// is replaced by [`ServiceError::ReplyTooLarge`], so that the asker learns why at once rather
/// than retrying until its deadline; anything else is dropped, loudly (the protocol bounds
/// its own messages, so this is a bug).
fn too_long<S: StateMachine, T: Transport>(
    name: &str,
    transport: &T,
    to: &Address,
    message: &Message<S>,
    buffer: &mut Vec<u8>,
) {
    let bytes = buffer.len() as u64;
    let max = transport.max_payload_bytes() as u64;
    match message {
        // Not the refusal itself: a transport too small even for that gets nothing.
        Message::Response(response)
            if !matches!(
                response.outcome,
                Outcome::Failed(ServiceError::ReplyTooLarge { .. })
            ) =>
        {
            tracing::warn!(node = %name, to = %to, request = %response.id, bytes, max, "answer longer than a message may be: answering that instead");
            let refusal: Message<S> = Message::Response(ClientResponse {
                id: response.id,
                outcome: Outcome::Failed(ServiceError::ReplyTooLarge { bytes, max }),
            });
            send(name, transport, to, &refusal, buffer);
        }
        _ => {
            tracing::error!(node = %name, to = %to, kind = message.kind(), bytes, max, "message longer than the transport carries: dropped")
        }
    }
}
