//! What a test can observe of a simulated cluster: replicas, the front-end, the history and
//! the network's counters.

use crate::history::History;
use crate::ids::{OpNumber, ReplicaId, RequestId, Time, View, ViewNumber};
use crate::protocol::messages::ReplicaRole;
use crate::protocol::view_store::ViewRecord;
use crate::sim::{Sim, SimConfig, SimService};

/// A replica as a test observes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaObservation {
    /// Its slot.
    pub slot: usize,
    /// Its name (the same across restarts).
    pub name: String,
    /// Its identity, `None` while crashed.
    pub id: Option<ReplicaId>,
    /// Its role (`None` while crashed).
    pub role: Option<ReplicaRole>,
    /// The newest view it knows.
    pub view: Option<View>,
    /// The last op applied to its state.
    pub applied: OpNumber,
    /// [`crate::protocol::replicated_state::ReplicatedState::digest`] of its state.
    pub digest: u64,
    /// Every id in its state, key by key ([`SimService::ids`]).
    pub ids: Vec<RequestId>,
}

/// The front-end as a test observes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendObservation {
    /// Whether it is running.
    pub alive: bool,
    /// Its newest view (the stored one while it is crashed).
    pub current: Option<View>,
    /// Its active view (`None` while crashed).
    pub active: Option<View>,
    /// The last view known to be active (the stored one while it is crashed).
    pub last_active: Option<View>,
}

/// What a finished run reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalReport {
    /// Whether a member of the last active view was alive at the end, so that liveness and
    /// convergence were checked.
    pub available: bool,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub end: Time,
    /// Writes acknowledged to clients.
    pub acknowledged: usize,
    /// The newest view number of the front-end.
    pub view: ViewNumber,
    /// How many times a durable replica's data directory was refused as corrupt (a flipped
    /// bit) and moved aside, its replica starting empty. A run ends unavailable, protection or
    /// not, when that took the data of the last active view's members (any one must come back
    /// under `always`, every one under `batch` and `never`: docs/PROTOCOL.md, "Durability").
    pub directories_moved_aside: usize,
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Messages delivered to a running node.
    pub delivered: u64,
    /// Messages dropped at random.
    pub dropped: u64,
    /// Messages lost to a partition.
    pub blocked: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages that reached a crashed node.
    pub lost_to_crash: u64,
    /// Unreachable reports (TCP resets) given to senders.
    pub resets: u64,
    /// Messages forged by the adversary ([`crate::sim::Action::Forge`]).
    pub forged: u64,
    /// Forged messages delivered to a running node.
    pub forged_delivered: u64,
    /// Messages the nodes refused ([`crate::protocol::trust`]), over every incarnation.
    pub refused: u64,
}

impl<S: SimService> Sim<S> {
    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// What the network did so far.
    pub fn network_stats(&self) -> NetworkStats {
        self.stats
    }

    /// The client history so far: the initial state of [`SimService::initial`], then every
    /// client's invocations and completions.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The client history as JSON lines (`docs/HISTORY-FORMAT.md`).
    pub fn history_json_lines(&self) -> String {
        self.history.to_json_lines()
    }

    /// The view record the front-end stored last (survives its crashes).
    pub fn stored_view(&self) -> Option<&ViewRecord> {
        self.stored_view.as_ref()
    }

    /// Every replica slot, crashed ones included.
    pub fn replicas(&self) -> Vec<ReplicaObservation> {
        (0..self.replicas.len()).map(|i| self.replica(i)).collect()
    }

    /// Replica slot `slot` (panics if there is no such slot).
    pub fn replica(&self, slot: usize) -> ReplicaObservation {
        let s = &self.replicas[slot];
        match &s.node {
            Some(r) => ReplicaObservation {
                slot,
                name: s.name.clone(),
                id: Some(r.id().clone()),
                role: Some(r.role()),
                view: r.view().cloned(),
                applied: r.applied(),
                digest: r.state().digest(),
                ids: r.state().service().ids(),
            },
            None => ReplicaObservation {
                slot,
                name: s.name.clone(),
                id: None,
                role: None,
                view: None,
                applied: OpNumber(0),
                digest: 0,
                ids: Vec::new(),
            },
        }
    }

    /// The slot of the running replica with this identity.
    pub fn slot_of(&self, id: &ReplicaId) -> Option<usize> {
        self.replicas
            .iter()
            .position(|s| s.node.as_ref().is_some_and(|r| r.id() == id))
    }

    /// Whether replica `id` (this very incarnation) is running.
    pub fn is_alive(&self, id: &ReplicaId) -> bool {
        self.slot_of(id).is_some()
    }

    /// The front-end.
    pub fn frontend(&self) -> FrontendObservation {
        match &self.frontend {
            Some(fe) => FrontendObservation {
                alive: true,
                current: fe.current_view().cloned(),
                active: fe.active_view().cloned(),
                last_active: fe.last_active_view().cloned(),
            },
            None => FrontendObservation {
                alive: false,
                current: self.stored_view.as_ref().map(|r| r.current.clone()),
                active: None,
                last_active: self
                    .stored_view
                    .as_ref()
                    .and_then(|r| r.last_active.clone()),
            },
        }
    }

    /// Whether client `client` has an operation in flight.
    pub fn client_busy(&self, client: usize) -> bool {
        self.clients[client].current.is_some()
    }

    /// Whether any client has an operation in flight.
    pub fn any_client_busy(&self) -> bool {
        self.clients.iter().any(|c| c.current.is_some())
    }

    /// The writes acknowledged to clients so far, with their canonical key.
    pub fn acknowledged(&self) -> impl Iterator<Item = (RequestId, &str)> {
        self.checker
            .acked
            .iter()
            .map(|(id, a)| (*id, a.key.as_str()))
    }
}
