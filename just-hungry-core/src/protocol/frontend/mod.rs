//! The front-end: the keeper of views and the router of client requests.
//!
//! It learns replicas from their pings, declares one dead after `dead_after` without a ping
//! (at once on a transport error or a new incarnation), creates views, and routes every client
//! request to the primary of the active view, relaying the answer. The rules are those of
//! docs/PROTOCOL.md, "Views", numbered as there:
//!
//! 1. requests go only to the primary of the active view;
//! 2. view `v+1` is created only while `v` is active, except when the primary of a not yet
//!    active view fails (then the next view is built from the last active view);
//! 3. a new primary is a live member of the last active view, ranked by the
//!    [`PrimaryElection`] policy; a newcomer is never promoted;
//! 4. with no live member of the last active view, nobody is elected: the service is
//!    unavailable and says so;
//! 5. a view is persisted ([`Output::PersistView`]) before it is published.
//!
//! This file holds the configuration, the state, what a driver may observe, who may send what
//! and the dispatch of each input ([`Node`]); the paths of the inputs are beside it:
//! `detection.rs` (pings, incarnations, its own stalls), `views.rs` (reports of primaries,
//! elections, installing and persisting views, bootstrap, learners) and `routing.rs` (client
//! requests, forwards and answers).

mod detection;
mod routing;
mod views;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::ids::NodeRole;
use crate::ids::{
    Address, Identity, Member, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
};
use crate::protocol::election::{MostUpToDate, PrimaryElection};
use crate::protocol::liveness::Durations;
use crate::protocol::messages::{
    ClientRequest, ClusterStatus, Message, Recovery, ReplicaRole, ReplicaStatus,
};
use crate::protocol::registry::RegistrationSchedule;
use crate::protocol::stats::FrontendStats;
use crate::protocol::trust::{self, Refusal, Refusals};
use crate::protocol::view_store::ViewRecord;
use crate::protocol::{FRONTEND_NAME, Node, Output, StallDetector, Timing};
use crate::state_machine::StateMachine;

/// A request the front-end holds longer than this without an answer is dropped (its client
/// has given up long ago).
pub const MAX_REQUEST_AGE: Duration = Duration::from_secs(120);

/// The most client requests the front-end has forwarded to the primary and not yet seen
/// answered; the others wait in arrival order (issue 13). It bounds what a burst puts in
/// flight, below the TCP transport's 4,096-frame queue per peer and the primary's
/// [`crate::protocol::MAX_PENDING_WRITES`], and so what a retransmission round resends.
pub const MAX_FORWARDS_IN_FLIGHT: usize = 2048;

/// The longest wait before a forwarded request is sent again, in retransmit intervals: each
/// retransmission of one request waits twice as long as the one before, up to this.
pub const MAX_RETRANSMIT_BACKOFF: u32 = 8;

/// How long a forwarded request may wait, with no request answered meanwhile, before the
/// status says the view is not serving ([`ClusterStatus::serving`]). Longer than any answer
/// takes when the primary works (a 30 MB history read takes a quarter of a second).
pub const SERVING_PATIENCE: Duration = Duration::from_secs(2);

/// The most replicas the front-end tracks.
pub const MAX_REPLICAS: usize = 1024;

/// How the front-end is set up.
#[derive(Clone, Debug)]
pub struct FrontendConfig {
    /// Its name, for logs.
    pub name: String,
    /// Where clients and replicas reach it.
    pub address: Address,
    /// Where the registry is.
    pub registry: Address,
    /// Failure detection timing (the same on every node).
    pub timing: Timing,
    /// With no stored view, wait this long for pings before bootstrapping view 1, so a
    /// replica of an existing cluster can report its view first.
    ///
    /// Two ping intervals by default, which [`FrontendConfig::new`] and
    /// [`FrontendConfig::with_timing`] set: every live replica pings within one interval, so
    /// two cover a lost ping. Raise it only when replicas may start well after the front-end
    /// and one of them holds an existing cluster's view (a front-end restarted without its
    /// stored view): a front-end that bootstraps first starts a new, empty view beside it.
    /// Never below one ping interval.
    pub bootstrap_grace: Duration,
    /// When no member of the last active view is alive, start a new cluster from the live
    /// replicas anyway, accepting the loss of the acknowledged writes held by the dead ones
    /// (etcd's `--force-new-cluster`). Off by default.
    pub force_new_cluster: bool,
    /// When members of the last active view are dead and the replicas standing in for them
    /// (restarted from their data directories) do not sync every write (`--fsync batch` or
    /// `never`), promote the most up-to-date of those back without waiting for the others,
    /// accepting the loss of what a power loss took from their disks (docs/PROTOCOL.md,
    /// "Durability"). Off by default: the front-end waits for every member.
    pub allow_unclean_recovery: bool,
}

impl FrontendConfig {
    /// A configuration with default timing.
    pub fn new(name: impl Into<String>, address: Address, registry: Address) -> Self {
        let timing = Timing::default();
        FrontendConfig {
            name: name.into(),
            address,
            registry,
            timing,
            bootstrap_grace: default_bootstrap_grace(timing),
            force_new_cluster: false,
            allow_unclean_recovery: false,
        }
    }

    /// This configuration with `timing`, and the bootstrap grace that goes with it (two of
    /// its ping intervals): set the timing through this, not by hand, so the two agree.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self.bootstrap_grace = default_bootstrap_grace(timing);
        self
    }
}

/// Two ping intervals: every live replica pings within one, so two cover a lost ping.
fn default_bootstrap_grace(timing: Timing) -> Duration {
    timing.ping_interval * 2
}

/// A replica as the front-end knows it.
#[derive(Clone, Debug)]
struct Known {
    id: ReplicaId,
    address: Address,
    last_ping: Time,
    failed: bool,
    applied: OpNumber,
    role: ReplicaRole,
    view: ViewNumber,
    registered: u64,
    /// It started from a data directory that held a state (its pings say so).
    recovered: Option<Recovery>,
    /// When the primary of which view was last asked to add it as a learner.
    learner_requested: Option<(ViewNumber, Time)>,
}

struct PendingRequest<S: StateMachine> {
    client: Address,
    /// The identity that sent it: the client table binds its client id to this name.
    owner: String,
    request: ClientRequest<S>,
    arrived: Time,
    /// The view and time it was last forwarded in; `None` while it waits for room in the
    /// forwarding window ([`MAX_FORWARDS_IN_FLIGHT`]).
    forwarded: Option<(ViewNumber, Time)>,
    /// How many times it was forwarded in that view: each retransmission waits twice as long
    /// as the one before (up to [`MAX_RETRANSMIT_BACKOFF`] retransmit intervals).
    sends: u32,
}

/// The front-end of service `S`. See the module documentation.
pub struct Frontend<S: StateMachine> {
    config: FrontendConfig,
    election: Box<dyn PrimaryElection>,
    record: Option<ViewRecord>,
    replicas: BTreeMap<String, Known>,
    retired: BTreeSet<ReplicaId>,
    next_registered: u64,
    started_at: Time,
    pending: BTreeMap<RequestId, PendingRequest<S>>,
    /// How many of `pending` are forwarded (`forwarded` is set): at most
    /// [`MAX_FORWARDS_IN_FLIGHT`].
    in_flight: usize,
    /// Pending requests waiting for room in the forwarding window, oldest first (an id whose
    /// request was answered or forwarded meanwhile is skipped when its turn comes).
    waiting: VecDeque<RequestId>,
    unavailable: Option<String>,
    outputs: VecDeque<Output<S>>,
    next_tick: Time,
    registration: RegistrationSchedule,
    refusals: Refusals,
    /// Tells the front-end's own stalls from the replicas' silence.
    stall: StallDetector,
    /// When a primary last answered a forwarded request.
    last_answer_at: Option<Time>,
    /// The silences between consecutive pings of each replica, as this front-end saw them.
    ping_gaps: Durations,
    stats: FrontendStats,
}

impl<S: StateMachine> Frontend<S> {
    /// A front-end resuming from `stored` (the [`ViewStore`](crate::runtime::view_store::ViewStore)'s
    /// record, `None` on first start), with the default election policy.
    pub fn new(config: FrontendConfig, stored: Option<ViewRecord>, now: Time) -> Self {
        Self::with_election(config, stored, now, Box::new(MostUpToDate))
    }

    /// As [`Frontend::new`], with another election policy.
    pub fn with_election(
        config: FrontendConfig,
        stored: Option<ViewRecord>,
        now: Time,
        election: Box<dyn PrimaryElection>,
    ) -> Self {
        let mut vm = Frontend {
            config,
            election,
            record: None,
            replicas: BTreeMap::new(),
            retired: BTreeSet::new(),
            next_registered: 0,
            started_at: now,
            pending: BTreeMap::new(),
            in_flight: 0,
            waiting: VecDeque::new(),
            unavailable: None,
            outputs: VecDeque::new(),
            next_tick: now,
            registration: RegistrationSchedule::new(now),
            refusals: Refusals::default(),
            stall: StallDetector::new(now),
            last_answer_at: None,
            ping_gaps: Durations::default(),
            stats: FrontendStats::default(),
        };
        if let Some(record) = stored {
            tracing::info!(node = %vm.config.name, view = %record.current, active = record.current_active, "front-end resumes from its stored view");
            // Members are presumed alive until they miss `dead_after` of pings.
            let members: Vec<Member> = record
                .last_active
                .iter()
                .chain(std::iter::once(&record.current))
                .flat_map(|v| v.members().cloned())
                .collect();
            for m in members {
                vm.learn_replica(now, &m.id, &m.address);
            }
            vm.record = Some(record);
        } else {
            tracing::info!(node = %vm.config.name, "front-end up with no stored view: waiting for replicas");
        }
        vm
    }

    /// The newest view created, if any.
    pub fn current_view(&self) -> Option<&View> {
        self.record.as_ref().map(|r| &r.current)
    }

    /// The view requests are routed in: the current view if it is active.
    pub fn active_view(&self) -> Option<&View> {
        self.record
            .as_ref()
            .filter(|r| r.current_active)
            .map(|r| &r.current)
    }

    /// The last view known to be active.
    pub fn last_active_view(&self) -> Option<&View> {
        self.record.as_ref().and_then(|r| r.last_active.as_ref())
    }

    /// Why the current view does not serve at `now`, or `None` if it does (see
    /// [`ClusterStatus::serving`]).
    fn why_not_serving(&self, now: Time) -> Option<String> {
        let Some(view) = self.current_view() else {
            return Some("no view yet: waiting for a replica".to_owned());
        };
        if self.active_view().is_none() {
            return Some(format!(
                "view {} is starting: its primary is transferring its state to the backups",
                view.number
            ));
        }
        let primary = &view.primary.id;
        if self.alive_id(primary, now).is_none() {
            let silent = self
                .replicas
                .get(&primary.name)
                .filter(|k| k.id == *primary)
                .map(|k| format!(" for {:.1?}", now.saturating_since(k.last_ping)));
            let mut why = format!(
                "the primary {primary} is not alive (no ping{})",
                silent.unwrap_or_default()
            );
            if let Some(reason) = &self.unavailable {
                why.push_str(": ");
                why.push_str(reason);
            }
            return Some(why);
        }
        let oldest = self
            .pending
            .values()
            .filter(|p| p.forwarded.is_some())
            .map(|p| p.arrived)
            .min()?;
        let waited = now.saturating_since(oldest);
        let answered = self.last_answer_at.map(|t| now.saturating_since(t));
        if waited > SERVING_PATIENCE && answered.is_none_or(|a| a > SERVING_PATIENCE) {
            let waiting = self
                .pending
                .values()
                .filter(|p| p.forwarded.is_some())
                .count();
            return Some(format!(
                "the primary {primary} pings but has answered no request for {:.1?} while {waiting} wait",
                answered.unwrap_or(waited)
            ));
        }
        None
    }

    /// The cluster as the front-end sees it at `now`.
    pub fn cluster_status(&self, now: Time) -> ClusterStatus {
        let why_not_serving = self.why_not_serving(now);
        ClusterStatus {
            view: self.current_view().cloned(),
            active: self.active_view().is_some(),
            serving: why_not_serving.is_none(),
            why_not_serving,
            replicas: self
                .replicas
                .values()
                .map(|k| ReplicaStatus {
                    id: k.id.clone(),
                    address: k.address.clone(),
                    role: k.role,
                    applied: k.applied,
                    alive: self.is_alive(k, now),
                })
                .collect(),
        }
    }

    /// How often the front-end was woken more than [`Timing::stall_tolerance`] past its
    /// deadline (its process paused, or its loop starved): each time, the time it lost was not
    /// counted against any replica.
    pub fn stalls(&self) -> u64 {
        self.stall.stalls()
    }

    /// The gaps between consecutive pings of the same replica incarnation, as handled by this
    /// front-end (issue 13): what its failure detector judges by, to hold against
    /// [`Timing::dead_after`]. Time the front-end itself lost asleep is not counted in them.
    pub fn ping_gaps(&self) -> &Durations {
        &self.ping_gaps
    }

    /// What this front-end counted since it started: view changes by reason, elections,
    /// joins, requests by outcome, recent view changes.
    pub fn stats(&self) -> &FrontendStats {
        &self.stats
    }

    /// As [`Frontend::stats`], to take the request latencies measured
    /// ([`FrontendStats::take_latencies`]).
    pub fn stats_mut(&mut self) -> &mut FrontendStats {
        &mut self.stats
    }

    /// Requests taken and not answered yet, and how many of them are forwarded to the primary
    /// (at most [`MAX_FORWARDS_IN_FLIGHT`]).
    pub fn pending_requests(&self) -> (usize, usize) {
        (self.pending.len(), self.in_flight)
    }

    fn send(&mut self, to: Address, message: Message<S>) {
        self.outputs.push_back(Output::Send { to, message });
    }

    // ---- who may send what (beyond the table of `trust`) ----

    /// The checks that need the front-end's state: a primary's reports only from the primary
    /// of the view they name, a response only from a primary requests are routed to, a client
    /// request's retry only from the identity that sent the request.
    fn authorize(&self, sender: &Identity, message: &Message<S>) -> Result<(), Refusal> {
        let kind = message.kind();
        let primary_of = |record: Option<&ViewRecord>, number: ViewNumber| {
            record.is_some_and(|r| {
                r.current.number == number && r.current.primary.id.name == sender.name
            })
        };
        match message {
            // A report about another view than the current one is stale and ignored by its
            // handler; one about the current view must come from its primary.
            Message::ViewStarted { view } | Message::SuspectBackup { view, .. } => {
                let current = self
                    .record
                    .as_ref()
                    .is_some_and(|r| r.current.number == *view);
                if current && !primary_of(self.record.as_ref(), *view) {
                    return Err(Refusal::NotFromPrimary { kind, view: *view });
                }
            }
            Message::CaughtUp { view, .. } => {
                let forged = self
                    .active_view()
                    .is_some_and(|v| v.number == *view && v.primary.id.name != sender.name);
                if forged {
                    return Err(Refusal::NotFromPrimary { kind, view: *view });
                }
            }
            Message::Response(_) if sender.role == NodeRole::Replica => {
                // A primary of the current or the last active view (an answer may cross a
                // view change); a response from anyone else would answer a client falsely.
                let routed = self.record.as_ref().is_some_and(|r| {
                    r.current.primary.id.name == sender.name
                        || r.last_active
                            .as_ref()
                            .is_some_and(|v| v.primary.id.name == sender.name)
                });
                if !routed {
                    let view = self.current_view().map_or(ViewNumber(0), |v| v.number);
                    return Err(Refusal::NotFromPrimary { kind, view });
                }
            }
            Message::Response(_) => {
                // A front-end's answer goes to clients, never to another front-end.
                return Err(Refusal::Role {
                    kind,
                    role: sender.role,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

impl<S: StateMachine> Node<S> for Frontend<S> {
    fn handle_message(&mut self, now: Time, from: Address, sender: &Identity, message: Message<S>) {
        self.notice_own_stall(now);
        if let Err(why) =
            trust::check(sender, &message).and_then(|()| self.authorize(sender, &message))
        {
            self.refusals
                .refuse(&self.config.name, sender, &from, message.kind(), &why);
            return;
        }
        match message {
            Message::Ping(ping) => self.on_ping(now, ping),
            Message::ViewStarted { view } => {
                self.on_view_started(now, view);
                self.evaluate(now);
            }
            Message::CaughtUp { view, learners } => self.on_caught_up(now, view, learners),
            Message::SuspectBackup { view, backup } => self.on_suspect_backup(now, view, backup),
            Message::Request(request) => self.on_request(now, from, sender, request),
            Message::Response(response) => self.on_response(now, response),
            Message::Registered { name, lease } if name == FRONTEND_NAME => {
                self.registration
                    .acknowledged(now, &self.config.timing, lease, &self.config.name);
            }
            other => {
                tracing::debug!(node = %self.config.name, from = %from, kind = other.kind(), "ignored message not for a front-end");
            }
        }
    }

    fn handle_unreachable(&mut self, now: Time, to: &Address) {
        self.notice_own_stall(now);
        if *to == self.config.registry {
            // The registry is not up yet (or restarting): register again after one
            // retransmit interval rather than a whole lease renewal, or clients could not find
            // this front-end for seconds.
            self.registration.retry_soon(now, &self.config.timing);
            return;
        }
        // A refused or reset connection to a replica is evidence that it died: fail it over
        // at once rather than after `dead_after` (docs/PROTOCOL.md, "Failure detection").
        let mut failed = Vec::new();
        for k in self.replicas.values_mut() {
            if k.address == *to && !k.failed {
                k.failed = true;
                failed.push(k.id.clone());
            }
        }
        for id in &failed {
            tracing::info!(node = %self.config.name, replica = %id, "replica unreachable: declared failed");
        }
        if !failed.is_empty() {
            self.evaluate(now);
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        self.notice_own_stall(now);
        if self.registration.due(now, &self.config.timing) {
            let registry = self.config.registry.clone();
            self.send(
                registry,
                Message::Register {
                    name: FRONTEND_NAME.to_owned(),
                    address: self.config.address.clone(),
                },
            );
        }
        if now >= self.next_tick {
            self.next_tick = now + self.config.timing.retransmit_interval;
            self.pending
                .retain(|_, p| now.saturating_since(p.arrived) < MAX_REQUEST_AGE);
            self.in_flight = self
                .pending
                .values()
                .filter(|p| p.forwarded.is_some())
                .count();
            if self.waiting.len() > 2 * self.pending.len() {
                let waiting = self.pending.iter().filter(|(_, p)| p.forwarded.is_none());
                self.waiting = waiting.map(|(id, _)| *id).collect();
            }
            self.evaluate(now);
            self.forward_pending(now, false);
        }
    }

    fn next_timeout(&self) -> Option<Time> {
        Some(self.next_tick.min(self.registration.next()))
    }

    fn poll_output(&mut self) -> Option<Output<S>> {
        self.outputs.pop_front()
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn refused(&self) -> u64 {
        self.refusals.total()
    }
}
