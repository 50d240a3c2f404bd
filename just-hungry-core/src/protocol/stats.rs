//! What the front-end and the replicas count as they run, for operators: the runtime
//! publishes these as metrics ([`crate::runtime`], `docs/OPERATIONS.md`) and the front-end's
//! status page shows them. Counting is part of the state machine (a plain field update, no
//! clock, no I/O), so the simulator's runs count exactly what a deployment's would.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{Time, View};
use crate::protocol::messages::{Outcome, ServiceError};
use crate::state_machine::StateMachine;

/// How many view changes [`FrontendStats::recent_view_changes`] keeps.
pub const RECENT_VIEW_CHANGES: usize = 16;

/// How many request latencies a front-end keeps until its driver takes them
/// ([`FrontendStats::take_latencies`]): a driver that never takes them (the simulator) keeps
/// the newest this many, so memory stays bounded.
pub const MAX_UNTAKEN_LATENCIES: usize = 4096;

/// Why the front-end created a view (docs/PROTOCOL.md, "Views").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ViewChangeReason {
    /// The first view of a cluster: the first replica registered becomes primary.
    Bootstrap,
    /// The primary died: a live member of the last active view was elected.
    PrimaryFailed,
    /// A backup died: the next view keeps the primary and the live backups.
    BackupFailed,
    /// The primary reported a backup slow or dead.
    BackupSuspected,
    /// Learners caught up and join as backups.
    Join,
    /// No member of the last active view was alive and the operator forced a new cluster.
    ForcedNewCluster,
}

impl ViewChangeReason {
    /// Every reason, in a fixed order.
    pub const ALL: [ViewChangeReason; 6] = [
        ViewChangeReason::Bootstrap,
        ViewChangeReason::PrimaryFailed,
        ViewChangeReason::BackupFailed,
        ViewChangeReason::BackupSuspected,
        ViewChangeReason::Join,
        ViewChangeReason::ForcedNewCluster,
    ];

    /// The reason as a metric label: lower case, words joined by `_`.
    pub fn label(self) -> &'static str {
        match self {
            ViewChangeReason::Bootstrap => "bootstrap",
            ViewChangeReason::PrimaryFailed => "primary_failed",
            ViewChangeReason::BackupFailed => "backup_failed",
            ViewChangeReason::BackupSuspected => "backup_suspected",
            ViewChangeReason::Join => "join",
            ViewChangeReason::ForcedNewCluster => "forced_new_cluster",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One view the front-end created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// When, on the front-end's clock.
    pub at: Time,
    /// The view created.
    pub view: View,
    /// Why.
    pub reason: ViewChangeReason,
    /// The reason in words, with the replicas involved (`backup failed: replica-2#7`).
    pub detail: String,
}

/// How the front-end answered a client request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RequestOutcome {
    /// Applied or answered.
    Ok,
    /// The service refused the write (its reply says why: [`StateMachine::refusal`]).
    Refused,
    /// Too many requests were pending ([`ServiceError::Overloaded`]).
    Overloaded,
    /// No primary could serve ([`ServiceError::Unavailable`]): the request stays pending.
    Unavailable,
    /// The sender may not make it ([`ServiceError::Forbidden`]).
    Forbidden,
    /// Older than the client's latest request ([`ServiceError::Stale`]).
    Stale,
    /// The answer was longer than a message may be ([`ServiceError::ReplyTooLarge`]).
    ReplyTooLarge,
}

impl RequestOutcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [RequestOutcome; 7] = [
        RequestOutcome::Ok,
        RequestOutcome::Refused,
        RequestOutcome::Overloaded,
        RequestOutcome::Unavailable,
        RequestOutcome::Forbidden,
        RequestOutcome::Stale,
        RequestOutcome::ReplyTooLarge,
    ];

    /// The outcome as a metric label: lower case, words joined by `_`.
    pub fn label(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::Refused => "refused",
            RequestOutcome::Overloaded => "overloaded",
            RequestOutcome::Unavailable => "unavailable",
            RequestOutcome::Forbidden => "forbidden",
            RequestOutcome::Stale => "stale",
            RequestOutcome::ReplyTooLarge => "reply_too_large",
        }
    }

    /// The outcome of `outcome`, with the service's reason when it refused the write.
    pub fn of<S: StateMachine>(outcome: &Outcome<S>) -> (RequestOutcome, Option<&'static str>) {
        match outcome {
            Outcome::Written(reply) => match S::refusal(reply) {
                Some(reason) => (RequestOutcome::Refused, Some(reason)),
                None => (RequestOutcome::Ok, None),
            },
            Outcome::Read(_) | Outcome::Status(_) => (RequestOutcome::Ok, None),
            Outcome::Failed(error) => (
                match error {
                    ServiceError::Unavailable { .. } | ServiceError::NotPrimary { .. } => {
                        RequestOutcome::Unavailable
                    }
                    ServiceError::Overloaded => RequestOutcome::Overloaded,
                    ServiceError::Forbidden { .. } => RequestOutcome::Forbidden,
                    ServiceError::ReplyTooLarge { .. } => RequestOutcome::ReplyTooLarge,
                    ServiceError::Stale { .. } => RequestOutcome::Stale,
                },
                None,
            ),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a front-end counted since it started.
#[derive(Clone, Debug, Default)]
pub struct FrontendStats {
    view_changes: [u64; ViewChangeReason::ALL.len()],
    /// Elections: a primary replaced by another member of the last active view.
    pub elections: u64,
    /// Primaries asked to transfer their state to a newcomer (a join begins).
    pub join_requests: u64,
    /// Replicas that joined a view as backups after catching up (a join ends).
    pub joins: u64,
    requests: [u64; RequestOutcome::ALL.len()],
    /// Writes the service refused, by its reason ([`StateMachine::refusal`]).
    pub refusals: BTreeMap<&'static str, u64>,
    /// The newest view changes, oldest first (at most [`RECENT_VIEW_CHANGES`]).
    pub recent_view_changes: VecDeque<ViewChange>,
    /// Request latencies (arrival to answer) not yet taken by the driver.
    latencies: VecDeque<Duration>,
}

impl FrontendStats {
    /// Views created for `reason`.
    pub fn view_changes(&self, reason: ViewChangeReason) -> u64 {
        self.view_changes[reason.index()]
    }

    /// Client requests answered with `outcome` (an unavailable request is counted each time
    /// it is told so).
    pub fn requests(&self, outcome: RequestOutcome) -> u64 {
        self.requests[outcome.index()]
    }

    /// Every request answered, whatever the outcome.
    pub fn requests_answered(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// Takes the request latencies measured since the last call (at most
    /// [`MAX_UNTAKEN_LATENCIES`], the newest).
    pub fn take_latencies(&mut self) -> impl Iterator<Item = Duration> + '_ {
        self.latencies.drain(..)
    }

    pub(crate) fn view_changed(&mut self, change: ViewChange) {
        self.view_changes[change.reason.index()] += 1;
        if self.recent_view_changes.len() == RECENT_VIEW_CHANGES {
            self.recent_view_changes.pop_front();
        }
        self.recent_view_changes.push_back(change);
    }

    /// Counts an answer to a client; `latency` for a final answer to a request that was
    /// pending.
    pub(crate) fn answered<S: StateMachine>(
        &mut self,
        outcome: &Outcome<S>,
        latency: Option<Duration>,
    ) {
        let (outcome, reason) = RequestOutcome::of(outcome);
        self.requests[outcome.index()] += 1;
        if let Some(reason) = reason {
            *self.refusals.entry(reason).or_default() += 1;
        }
        if let Some(latency) = latency {
            if self.latencies.len() == MAX_UNTAKEN_LATENCIES {
                self.latencies.pop_front();
            }
            self.latencies.push_back(latency);
        }
    }
}

/// What a replica counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Snapshots this replica began to stream as primary (to a learner, or to a backup of a
    /// view it starts), each counted at its first chunk.
    pub snapshots_sent: u64,
    /// Suffixes (the entries a backup lacks) it sent instead of a snapshot.
    pub suffixes_sent: u64,
    /// Bytes of snapshot chunks it sent, retransmissions included.
    pub transfer_bytes_sent: u64,
    /// Snapshots this replica installed (as a learner or a backup of a new view).
    pub snapshots_installed: u64,
    /// Bytes of snapshot chunks it received and kept.
    pub transfer_bytes_received: u64,
}
