//! The nodes' metrics, through the [`metrics`] facade: what each node counts
//! ([`crate::protocol::stats`]) and what its state shows, published by its loop at most every
//! [`PUBLISH_INTERVAL`]. With no recorder installed (the default for an embedder or a test),
//! each call is a no-op; a binary installs one (the just-hungry package's Prometheus exporter).
//!
//! Every name starts with `just_hungry_` and every series has a `node` label, the node's name,
//! so that nodes sharing a process (`LocalCluster`) stay apart. Counters end in `_total`,
//! durations are in seconds (`_seconds`). The list, with what each means:
//! `docs/OPERATIONS.md`.

use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};

use crate::protocol::frontend::Frontend;
use crate::protocol::messages::ReplicaRole;
use crate::protocol::registry::Registry;
use crate::protocol::replica::Replica;
use crate::protocol::stats::{RequestOutcome, ViewChangeReason};
use crate::state_machine::StateMachine;

/// How often a node's loop publishes its metrics at most: far shorter than any scrape
/// interval, far longer than a batch of events.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Every role a replica reports, as the `role` label of `just_hungry_replica_role`.
const ROLES: [(ReplicaRole, &str); 6] = [
    (ReplicaRole::Idle, "idle"),
    (ReplicaRole::Learner, "learner"),
    (ReplicaRole::AwaitingState, "awaiting_state"),
    (ReplicaRole::Backup, "backup"),
    (ReplicaRole::StartingView, "starting_view"),
    (ReplicaRole::Primary, "primary"),
];

/// The label of `role`.
pub fn role_label(role: ReplicaRole) -> &'static str {
    ROLES
        .iter()
        .find(|(r, _)| *r == role)
        .map_or("idle", |(_, label)| label)
}

/// The histogram of a durable replica's syncs, `just_hungry_replica_wal_sync_duration_seconds`:
/// from a sync's start to its result reaching the node's loop (the fdatasync, plus the hand-off
/// to the thread that runs it and back), which is what an acknowledgement under
/// `--fsync always` waits for. Recorded per sync, not sampled.
pub(super) fn wal_sync_duration(node: &str) -> metrics::Histogram {
    histogram!("just_hungry_replica_wal_sync_duration_seconds", "node" => node.to_owned())
}

/// When a node last published, and the queues its loop holds beside the node.
pub(super) struct Publisher {
    node: String,
    last: Option<Instant>,
    /// The peers whose lag was published last time: a peer gone from the view is set to 0
    /// rather than left at its last value.
    lagging: Vec<String>,
}

/// The queues of a node's loop, outside the protocol state machine.
pub(super) struct LoopQueues {
    /// Validations waiting (an HTTP lookup).
    pub validations: usize,
    /// A durable replica's outputs waiting for their records to be synced.
    pub held_outputs: usize,
}

impl Publisher {
    pub(super) fn new(node: &str) -> Self {
        Publisher {
            node: node.to_owned(),
            last: None,
            lagging: Vec::new(),
        }
    }

    /// Whether [`PUBLISH_INTERVAL`] has passed since the last publication.
    pub(super) fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < PUBLISH_INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    pub(super) fn queues(&self, queues: &LoopQueues) {
        let node = self.node.clone();
        gauge!("just_hungry_node_validations_waiting", "node" => node.clone())
            .set(queues.validations as f64);
        gauge!("just_hungry_node_held_outputs", "node" => node).set(queues.held_outputs as f64);
    }

    pub(super) fn refused(&self, refused: u64) {
        counter!("just_hungry_node_refused_messages_total", "node" => self.node.clone())
            .absolute(refused);
    }

    pub(super) fn registry(&self, registry: &Registry) {
        gauge!("just_hungry_registry_entries", "node" => self.node.clone())
            .set(registry.entries().count() as f64);
    }

    pub(super) fn frontend<S: StateMachine>(
        &self,
        frontend: &mut Frontend<S>,
        now: crate::ids::Time,
    ) {
        let node = || self.node.clone();
        let status = frontend.cluster_status(now);
        let view = status.view.as_ref().map_or(0, |v| v.number.0);
        gauge!("just_hungry_frontend_view", "node" => node()).set(view as f64);
        gauge!("just_hungry_frontend_view_active", "node" => node()).set(f64::from(status.active));
        gauge!("just_hungry_frontend_serving", "node" => node()).set(f64::from(status.serving));
        let alive = status.replicas.iter().filter(|r| r.alive).count();
        gauge!("just_hungry_frontend_replicas", "node" => node(), "state" => "alive")
            .set(alive as f64);
        gauge!("just_hungry_frontend_replicas", "node" => node(), "state" => "dead")
            .set(status.replicas.len().saturating_sub(alive) as f64);
        let (pending, forwarded) = frontend.pending_requests();
        gauge!("just_hungry_frontend_pending_requests", "node" => node()).set(pending as f64);
        gauge!("just_hungry_frontend_forwarded_requests", "node" => node()).set(forwarded as f64);
        let stats = frontend.stats_mut();
        for reason in ViewChangeReason::ALL {
            counter!("just_hungry_frontend_view_changes_total", "node" => node(), "reason" => reason.label())
                .absolute(stats.view_changes(reason));
        }
        counter!("just_hungry_frontend_elections_total", "node" => node())
            .absolute(stats.elections);
        counter!("just_hungry_frontend_join_requests_total", "node" => node())
            .absolute(stats.join_requests);
        counter!("just_hungry_frontend_joins_total", "node" => node()).absolute(stats.joins);
        for outcome in RequestOutcome::ALL {
            counter!("just_hungry_frontend_requests_total", "node" => node(), "outcome" => outcome.label())
                .absolute(stats.requests(outcome));
        }
        for (reason, count) in &stats.refusals {
            counter!("just_hungry_frontend_refused_requests_total", "node" => node(), "reason" => *reason)
                .absolute(*count);
        }
        let latency = histogram!("just_hungry_frontend_request_duration_seconds", "node" => node());
        for d in stats.take_latencies() {
            latency.record(d.as_secs_f64());
        }
    }

    pub(super) fn replica<S: StateMachine>(&mut self, replica: &Replica<S>) {
        let node = || self.node.clone();
        let role = replica.role();
        for (r, label) in ROLES {
            gauge!("just_hungry_replica_role", "node" => node(), "role" => label)
                .set(f64::from(r == role));
        }
        gauge!("just_hungry_replica_view", "node" => node()).set(replica.view_number().0 as f64);
        gauge!("just_hungry_replica_applied_op", "node" => node()).set(replica.applied().0 as f64);
        gauge!("just_hungry_replica_last_op", "node" => node()).set(replica.last_op().0 as f64);
        let (writes, reads) = replica.pending_requests();
        gauge!("just_hungry_replica_pending_writes", "node" => node()).set(writes as f64);
        gauge!("just_hungry_replica_pending_reads", "node" => node()).set(reads as f64);
        let stats = replica.stats();
        counter!("just_hungry_replica_snapshots_sent_total", "node" => node())
            .absolute(stats.snapshots_sent);
        counter!("just_hungry_replica_suffixes_sent_total", "node" => node())
            .absolute(stats.suffixes_sent);
        counter!("just_hungry_replica_snapshots_installed_total", "node" => node())
            .absolute(stats.snapshots_installed);
        counter!("just_hungry_replica_transfer_bytes_total", "node" => node(), "direction" => "sent")
            .absolute(stats.transfer_bytes_sent);
        counter!("just_hungry_replica_transfer_bytes_total", "node" => node(), "direction" => "received")
            .absolute(stats.transfer_bytes_received);
        let lag: Vec<(String, u64)> = replica
            .replication_lag()
            .into_iter()
            .map(|(id, lag)| (id.name.clone(), lag))
            .collect();
        for gone in self
            .lagging
            .iter()
            .filter(|name| !lag.iter().any(|(n, _)| n == *name))
        {
            gauge!("just_hungry_replica_replication_lag_ops", "node" => node(), "peer" => gone.clone())
                .set(0.0);
        }
        for (peer, ops) in &lag {
            gauge!("just_hungry_replica_replication_lag_ops", "node" => node(), "peer" => peer.clone())
                .set(*ops as f64);
        }
        self.lagging = lag.into_iter().map(|(name, _)| name).collect();
    }
}
