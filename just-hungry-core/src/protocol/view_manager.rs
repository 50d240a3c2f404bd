//! The front-end: the view manager and the router of client requests.
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::ids::NodeRole;
use crate::ids::{
    Address, Identity, Member, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
};
use crate::protocol::election::{Candidate, MostUpToDate, PrimaryElection};
use crate::protocol::liveness::Durations;
use crate::protocol::messages::{
    ClientRequest, ClientResponse, ClusterStatus, Message, Operation, Outcome, Ping, ReplicaRole,
    ReplicaStatus, ServiceError,
};
use crate::protocol::registry::RegistrationSchedule;
use crate::protocol::trust::{self, Refusal, Refusals};
use crate::protocol::view_store::ViewRecord;
use crate::protocol::{FRONTEND_NAME, MAX_PENDING_REQUESTS, Node, Output, StallDetector, Timing};
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
pub struct FrontEndConfig {
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
    pub bootstrap_grace: Duration,
    /// When no member of the last active view is alive, start a new cluster from the live
    /// replicas anyway, accepting the loss of the acknowledged writes held by the dead ones
    /// (etcd's `--force-new-cluster`). Off by default.
    pub force_new_cluster: bool,
}

impl FrontEndConfig {
    /// A configuration with default timing.
    pub fn new(name: impl Into<String>, address: Address, registry: Address) -> Self {
        let timing = Timing::default();
        FrontEndConfig {
            name: name.into(),
            address,
            registry,
            timing,
            bootstrap_grace: timing.ping_interval * 2,
            force_new_cluster: false,
        }
    }
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
pub struct ViewManager<S: StateMachine> {
    config: FrontEndConfig,
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
}

impl<S: StateMachine> ViewManager<S> {
    /// A front-end resuming from `stored` (the [`ViewStore`](crate::runtime::view_store::ViewStore)'s
    /// record, `None` on first start), with the default election policy.
    pub fn new(config: FrontEndConfig, stored: Option<ViewRecord>, now: Time) -> Self {
        Self::with_election(config, stored, now, Box::new(MostUpToDate))
    }

    /// As [`ViewManager::new`], with another election policy.
    pub fn with_election(
        config: FrontEndConfig,
        stored: Option<ViewRecord>,
        now: Time,
        election: Box<dyn PrimaryElection>,
    ) -> Self {
        let mut vm = ViewManager {
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

    /// Called first with every input. If the front-end is woken more than
    /// [`Timing::stall_tolerance`] past its own deadline, it was the one asleep: the replicas'
    /// pings may be queued behind this very input, and their silence over the lost time is
    /// the front-end's, not theirs. That time is added to every replica's last ping, so each
    /// is judged only on the time the front-end was running; one whose connection was refused
    /// is still failed (that is evidence, not silence).
    fn notice_own_stall(&mut self, now: Time) {
        let due = self.next_tick.min(self.registration.next());
        let Some(late) = self.stall.woken(due, now, &self.config.timing) else {
            return;
        };
        tracing::warn!(node = %self.config.name, late = ?late, "the front-end was woken late (paused or starved): not counting the time it lost against the replicas");
        for k in self.replicas.values_mut() {
            k.last_ping = (k.last_ping + late).min(now);
        }
    }

    fn is_alive(&self, k: &Known, now: Time) -> bool {
        !k.failed && now.saturating_since(k.last_ping) < self.config.timing.dead_after
    }

    fn alive_id(&self, id: &ReplicaId, now: Time) -> Option<&Known> {
        self.replicas
            .get(&id.name)
            .filter(|k| k.id == *id && self.is_alive(k, now))
    }

    fn learn_replica(&mut self, now: Time, id: &ReplicaId, address: &Address) -> bool {
        if self.replicas.get(&id.name).is_some_and(|k| k.id == *id) || self.retired.contains(id) {
            return false;
        }
        if self.replicas.len() >= MAX_REPLICAS && !self.replicas.contains_key(&id.name) {
            return false;
        }
        let registered = self.next_registered;
        self.next_registered += 1;
        self.replicas.insert(
            id.name.clone(),
            Known {
                id: id.clone(),
                address: address.clone(),
                last_ping: now,
                failed: false,
                applied: OpNumber(0),
                role: ReplicaRole::Idle,
                view: ViewNumber(0),
                registered,
                learner_requested: None,
            },
        );
        true
    }

    fn send(&mut self, to: Address, message: Message<S>) {
        self.outputs.push_back(Output::Send { to, message });
    }

    // ---- replicas ----

    fn on_ping(&mut self, now: Time, ping: Ping) {
        if self.retired.contains(&ping.replica) {
            let replacement_alive = self
                .replicas
                .get(&ping.replica.name)
                .is_some_and(|k| self.is_alive(k, now));
            if replacement_alive {
                return; // a delayed ping of a dead incarnation
            }
            // Incarnations are random, so a delayed ping of a dead incarnation looks like a
            // restart too, and may have retired this one, which is running. The incarnation
            // that replaced it is silent: take this one back (below, as a newcomer that must
            // join again), else a running replica would be ignored forever.
            tracing::info!(node = %self.config.name, replica = %ping.replica, "a retired incarnation is still pinging and its replacement is silent: taking it back");
            self.retired.remove(&ping.replica);
        }
        if let Some(old) = self.replicas.get(&ping.replica.name)
            && old.id != ping.replica
        {
            // docs/PROTOCOL.md, "Incarnations": a new incarnation proves the old one died.
            let old_id = old.id.clone();
            tracing::info!(node = %self.config.name, old = %old_id, new = %ping.replica, "replica restarted: its old incarnation failed");
            self.retired.insert(old_id.clone());
            if self.retired.len() > MAX_REPLICAS {
                let first = self.retired.iter().next().cloned();
                if let Some(first) = first {
                    self.retired.remove(&first);
                }
            }
            self.replicas.remove(&ping.replica.name);
        }
        let newcomer = self.learn_replica(now, &ping.replica, &ping.address);
        if newcomer {
            tracing::info!(node = %self.config.name, replica = %ping.replica, address = %ping.address, "replica registered with the front-end");
        }
        if let Some(k) = self.replicas.get_mut(&ping.replica.name) {
            if !newcomer {
                self.ping_gaps.record(now.saturating_since(k.last_ping));
            }
            k.last_ping = now;
            k.failed = false;
            k.address = ping.address.clone();
            k.applied = ping.applied;
            k.role = ping.role;
            k.view = ping.view.as_ref().map_or(ViewNumber(0), |v| v.number);
        }
        if ping.role == ReplicaRole::Primary
            && let Some(view) = ping.view.as_ref()
        {
            self.on_primary_report(now, view, &ping.replica);
        }
        let view = self.current_view().cloned();
        self.send(
            ping.address,
            Message::ViewInfo {
                view,
                answers: Some(ping.number),
            },
        );
        self.evaluate(now);
    }

    /// A replica says it is the primary of a started `view`.
    fn on_primary_report(&mut self, now: Time, view: &View, replica: &ReplicaId) {
        match &self.record {
            None if view.number.next() == view.number => {
                // A view that no view could follow (its number is u64::MAX): resuming from it
                // would freeze the cluster's membership for ever.
                tracing::warn!(node = %self.config.name, view = %view, replica = %replica, "refused to resume from a view numbered at the limit");
            }
            None => {
                // Rule 5: with no stored view, resume only from a view whose live primary
                // reports it active.
                tracing::info!(node = %self.config.name, view = %view, "no stored view: resuming from the view its primary reports active");
                let record = ViewRecord {
                    current: view.clone(),
                    current_active: true,
                    last_active: Some(view.clone()),
                };
                self.persist(record);
                for m in view.members() {
                    self.learn_replica(now, &m.id, &m.address);
                }
            }
            Some(r) if r.current.number == view.number && r.current.primary.id == *replica => {
                // The primary's ViewStarted may have been lost: its ping says the same.
                self.on_view_started(now, view.number);
            }
            Some(_) => {}
        }
    }

    fn on_view_started(&mut self, now: Time, number: ViewNumber) {
        let Some(record) = self.record.as_ref() else {
            return;
        };
        if record.current.number != number || record.current_active {
            return;
        }
        let mut record = record.clone();
        record.current_active = true;
        record.last_active = Some(record.current.clone());
        tracing::info!(node = %self.config.name, view = %record.current, "view active: routing requests to its primary");
        self.persist(record);
        self.unavailable = None;
        self.forward_pending(now, true);
    }

    fn persist(&mut self, record: ViewRecord) {
        self.outputs.push_back(Output::PersistView(record.clone()));
        self.record = Some(record);
    }

    /// Creates and publishes `view` (persisted first).
    fn install(&mut self, now: Time, view: View, reason: &str) {
        let previous = self.record.clone();
        let last_active = previous.as_ref().and_then(|r| r.last_active.clone());
        tracing::info!(node = %self.config.name, view = %view, reason, "view change");
        self.persist(ViewRecord {
            current: view.clone(),
            current_active: false,
            last_active,
        });
        let mut told = BTreeSet::new();
        let old_members = previous
            .iter()
            .flat_map(|r| r.current.members().cloned().collect::<Vec<_>>());
        let members: Vec<Member> = view.members().cloned().chain(old_members).collect();
        for m in members {
            if told.insert(m.address.clone()) {
                self.send(
                    m.address,
                    Message::ViewInfo {
                        view: Some(view.clone()),
                        answers: None,
                    },
                );
            }
        }
        let _ = now;
    }

    fn member_of(&self, id: &ReplicaId) -> Option<Member> {
        self.replicas
            .get(&id.name)
            .filter(|k| k.id == *id)
            .map(|k| Member {
                id: k.id.clone(),
                address: k.address.clone(),
            })
    }

    /// Applies the rules of docs/PROTOCOL.md to what the front-end knows now.
    fn evaluate(&mut self, now: Time) {
        let Some(record) = self.record.clone() else {
            self.maybe_bootstrap(now);
            return;
        };
        let current = record.current.clone();
        if self.alive_id(&current.primary.id, now).is_none() {
            self.replace_primary(now, &record);
            return;
        }
        let dead_backups: Vec<ReplicaId> = current
            .backups
            .iter()
            .filter(|b| self.alive_id(&b.id, now).is_none())
            .map(|b| b.id.clone())
            .collect();
        if !dead_backups.is_empty() {
            let backups: Vec<Member> = current
                .backups
                .iter()
                .filter(|b| !dead_backups.contains(&b.id))
                .filter_map(|b| self.member_of(&b.id))
                .collect();
            let view = View {
                number: current.number.next(),
                primary: current.primary.clone(),
                backups,
            };
            let names: Vec<String> = dead_backups.iter().map(|b| b.to_string()).collect();
            self.install(now, view, &format!("backup failed: {}", names.join(", ")));
            return;
        }
        if record.current_active {
            self.request_learners(now, &current);
        }
    }

    /// The primary of the current view is dead: elect another (rules 2-4).
    fn replace_primary(&mut self, now: Time, record: &ViewRecord) {
        let current = &record.current;
        let base = if record.current_active {
            Some(current.clone())
        } else {
            record.last_active.clone()
        };
        let Some(base) = base else {
            // No view was ever active, so nothing was ever acknowledged: bootstrap again.
            self.bootstrap(
                now,
                current.number.next(),
                "primary of the first view failed before it started",
            );
            return;
        };
        let candidates: Vec<Candidate> = base
            .members()
            .filter(|m| m.id != current.primary.id)
            .filter_map(|m| self.alive_id(&m.id, now))
            .map(|k| Candidate {
                id: k.id.clone(),
                applied: k.applied,
                registered: k.registered,
            })
            .collect();
        if candidates.is_empty() {
            if self.config.force_new_cluster {
                tracing::warn!(node = %self.config.name, "no member of the last active view is alive: forcing a new cluster (acknowledged writes held only by dead replicas are lost)");
                self.bootstrap(now, current.number.next(), "forced new cluster");
                return;
            }
            let reason = format!(
                "no member of the last active view ({base}) is alive; waiting for one to return"
            );
            if self.unavailable.as_ref() != Some(&reason) {
                tracing::warn!(node = %self.config.name, "service unavailable: {reason}");
            }
            self.unavailable = Some(reason);
            return;
        }
        let policy_choice = self.election.choose(&candidates);
        let chosen = policy_choice
            .filter(|id| candidates.iter().any(|c| c.id == *id))
            .or_else(|| MostUpToDate.choose(&candidates));
        let Some(chosen) = chosen else {
            return;
        };
        let Some(primary) = self.member_of(&chosen) else {
            return;
        };
        let backups = candidates
            .iter()
            .filter(|c| c.id != chosen)
            .filter_map(|c| self.member_of(&c.id))
            .collect();
        let view = View {
            number: current.number.next(),
            primary,
            backups,
        };
        tracing::info!(node = %self.config.name, failed = %current.primary.id, elected = %chosen, candidates = candidates.len(), "election: primary failed, promoting the most up-to-date live member of the last active view");
        self.install(now, view, "primary failed");
    }

    fn maybe_bootstrap(&mut self, now: Time) {
        if now.saturating_since(self.started_at) < self.config.bootstrap_grace {
            return;
        }
        let existing = self
            .replicas
            .values()
            .any(|k| self.is_alive(k, now) && k.view > ViewNumber(0));
        if existing {
            let reason =
                "replicas of an existing cluster are alive, but no primary reports an active view"
                    .to_owned();
            if self.unavailable.as_ref() != Some(&reason) {
                tracing::warn!(node = %self.config.name, "service unavailable: {reason}");
            }
            self.unavailable = Some(reason);
            return;
        }
        self.bootstrap(
            now,
            ViewNumber(1),
            "bootstrap: first replica becomes primary",
        );
    }

    /// Makes the first registered live replica primary of a view with no backups.
    fn bootstrap(&mut self, now: Time, number: ViewNumber, reason: &str) {
        let first = self
            .replicas
            .values()
            .filter(|k| self.is_alive(k, now))
            .min_by_key(|k| k.registered)
            .map(|k| Member {
                id: k.id.clone(),
                address: k.address.clone(),
            });
        let Some(primary) = first else {
            return;
        };
        let view = View {
            number,
            primary,
            backups: Vec::new(),
        };
        self.install(now, view, reason);
    }

    /// Asks the primary to bring live replicas outside the view up to date.
    fn request_learners(&mut self, now: Time, view: &View) {
        let retry = self.config.timing.learner_request_interval();
        let mut asks = Vec::new();
        for k in self.replicas.values() {
            if view.contains(&k.id) || !self.is_alive(k, now) {
                continue;
            }
            let due = match k.learner_requested {
                Some((v, at)) => v != view.number || now.saturating_since(at) >= retry,
                None => true,
            };
            if due {
                asks.push(k.id.name.clone());
            }
        }
        for name in asks {
            let Some(k) = self.replicas.get_mut(&name) else {
                continue;
            };
            k.learner_requested = Some((view.number, now));
            let learner = Member {
                id: k.id.clone(),
                address: k.address.clone(),
            };
            tracing::info!(node = %self.config.name, learner = %learner.id, primary = %view.primary.id, "join: asking the primary to transfer its state to the newcomer");
            self.send(
                view.primary.address.clone(),
                Message::AddLearner {
                    view: view.number,
                    learner,
                },
            );
        }
    }

    /// Adds the learners the primary reports caught up (those still alive and outside the
    /// view) to the view, all in one view change.
    fn on_caught_up(&mut self, now: Time, number: ViewNumber, learners: Vec<ReplicaId>) {
        let Some(view) = self.active_view().cloned() else {
            return;
        };
        if view.number != number {
            return;
        }
        let mut next = view.clone();
        let mut joined = Vec::new();
        for learner in learners {
            if next.contains(&learner) || self.alive_id(&learner, now).is_none() {
                continue;
            }
            let Some(member) = self.member_of(&learner) else {
                continue;
            };
            joined.push(learner.to_string());
            next.backups.push(member);
        }
        if joined.is_empty() {
            return;
        }
        next.number = view.number.next();
        self.install(now, next, &format!("join: {} caught up", joined.join(", ")));
    }

    fn on_suspect_backup(&mut self, now: Time, number: ViewNumber, backup: ReplicaId) {
        // The current view, active or not: a backup that never confirms the state of a view
        // being started would keep it from starting. As for a dead backup (`evaluate`), the
        // next view keeps the primary, so no election is involved (rule 3 holds).
        let Some(view) = self.current_view().cloned() else {
            return;
        };
        if view.number != number || !view.is_backup(&backup) {
            return;
        }
        let mut next = view.clone();
        next.number = view.number.next();
        next.backups.retain(|b| b.id != backup);
        self.install(
            now,
            next,
            &format!("backup {backup} reported slow or dead by the primary"),
        );
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

    // ---- clients ----

    fn on_request(
        &mut self,
        now: Time,
        from: Address,
        sender: &Identity,
        request: ClientRequest<S>,
    ) {
        if let Operation::Status = request.operation {
            let status = self.cluster_status(now);
            self.send(
                from,
                Message::Response(ClientResponse {
                    id: request.id,
                    outcome: Outcome::Status(status),
                }),
            );
            return;
        }
        let id = request.id;
        if let Some(pending) = self.pending.get_mut(&id) {
            if pending.owner != sender.name {
                // Another identity's request: answering it here would hand over its reply.
                let why = Refusal::ForeignClient {
                    client: id.client.0,
                };
                self.refusals
                    .refuse(&self.config.name, sender, &from, "Request", &why);
                self.send(
                    from,
                    Message::Response(ClientResponse {
                        id,
                        outcome: Outcome::Failed(ServiceError::Forbidden {
                            reason: why.to_string(),
                        }),
                    }),
                );
                return;
            }
            // A client's retry: the front-end retransmits what it forwarded on its own
            // schedule, so a retry only says where to answer.
            pending.client = from.clone();
        } else if self.pending.len() >= MAX_PENDING_REQUESTS {
            self.send(
                from,
                Message::Response(ClientResponse {
                    id,
                    outcome: Outcome::Failed(ServiceError::Overloaded),
                }),
            );
            return;
        } else {
            self.pending.insert(
                id,
                PendingRequest {
                    client: from.clone(),
                    owner: sender.name.clone(),
                    request,
                    arrived: now,
                    forwarded: None,
                    sends: 0,
                },
            );
            self.waiting.push_back(id);
        }
        if let Some(reason) = self.unavailable.clone() {
            self.send(
                from,
                Message::Response(ClientResponse {
                    id,
                    outcome: Outcome::Failed(ServiceError::Unavailable { reason }),
                }),
            );
        }
        self.forward_waiting(now);
    }

    /// Forwards waiting requests to the active primary while the forwarding window has room.
    fn forward_waiting(&mut self, now: Time) {
        let Some(view) = self.active_view().cloned() else {
            return;
        };
        let mut sends = Vec::new();
        while self.in_flight < MAX_FORWARDS_IN_FLIGHT
            && let Some(id) = self.waiting.pop_front()
        {
            if let Some(p) = self.pending.get_mut(&id)
                && p.forwarded.is_none()
            {
                p.forwarded = Some((view.number, now));
                p.sends = 1;
                self.in_flight += 1;
                sends.push((p.request.clone(), p.owner.clone()));
            }
        }
        self.send_forwards(&view, sends);
    }

    /// Forwards again to the active primary every forwarded request not forwarded in its view
    /// or (unless `all`) due for retransmission, then fills the window with waiting ones. At
    /// most [`MAX_FORWARDS_IN_FLIGHT`] requests are ever forwarded and unanswered, so a burst
    /// of requests cannot make the front-end send the primary more than it can take, nor
    /// retransmit all of it every interval while the primary works through it (issue 13).
    fn forward_pending(&mut self, now: Time, all: bool) {
        let Some(view) = self.active_view().cloned() else {
            return;
        };
        let retransmit = self.config.timing.retransmit_interval;
        let mut sends = Vec::new();
        for p in self.pending.values_mut() {
            let Some((v, at)) = p.forwarded else {
                continue;
            };
            let backoff = 1u32
                << p.sends
                    .saturating_sub(1)
                    .min(MAX_RETRANSMIT_BACKOFF.ilog2());
            let due = all || v != view.number || now.saturating_since(at) >= retransmit * backoff;
            if due {
                p.sends = if v == view.number {
                    p.sends.saturating_add(1)
                } else {
                    1
                };
                p.forwarded = Some((view.number, now));
                sends.push((p.request.clone(), p.owner.clone()));
            }
        }
        self.send_forwards(&view, sends);
        self.forward_waiting(now);
    }

    fn send_forwards(&mut self, view: &View, sends: Vec<(ClientRequest<S>, String)>) {
        for (request, owner) in sends {
            self.send(
                view.primary.address.clone(),
                Message::Forward {
                    view: view.number,
                    request,
                    owner,
                },
            );
        }
    }

    /// Takes `id` off the pending requests, freeing its place in the forwarding window.
    fn take_pending(&mut self, id: &RequestId) -> Option<PendingRequest<S>> {
        let p = self.pending.remove(id)?;
        if p.forwarded.is_some() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Some(p)
    }

    fn on_response(&mut self, now: Time, response: ClientResponse<S>) {
        if let Outcome::Failed(ServiceError::NotPrimary { .. }) = response.outcome {
            if let Some(p) = self.pending.get_mut(&response.id)
                && p.forwarded.take().is_some()
            {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.waiting.push_front(response.id);
            }
            return;
        }
        self.last_answer_at = Some(now);
        if let Some(p) = self.take_pending(&response.id) {
            self.send(p.client, Message::Response(response));
        }
        self.forward_waiting(now);
    }
}

impl<S: StateMachine> Node<S> for ViewManager<S> {
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
            Message::Registered { name } if name == FRONTEND_NAME => {
                self.registration.acknowledged(now, &self.config.timing);
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
