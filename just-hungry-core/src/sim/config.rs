//! How a simulation is set up: the cluster, the timings and the network.

use std::time::Duration;

use crate::protocol::client::ClientConfig;
use crate::protocol::{Timing, Transfer};
use crate::storage::FsyncPolicy;

/// The network's behaviour. Probabilities are in thousandths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Shortest delivery delay, in milliseconds.
    pub min_delay_ms: u64,
    /// Longest delivery delay, in milliseconds, at the start and after [`Sim::finish`](super::Sim::finish) heals
    /// the network (changed by [`Action::SetMaxDelay`](super::Action::SetMaxDelay)); delays are uniform in between, which
    /// reorders.
    pub max_delay_ms: u64,
    /// Initial probability of dropping a message (changed by [`Action::SetDrop`](super::Action::SetDrop)).
    pub drop_per_mille: u16,
    /// Initial probability of delivering a message twice (changed by
    /// [`Action::SetDuplicate`](super::Action::SetDuplicate)).
    pub duplicate_per_mille: u16,
    /// Probability that the sender of a message to a crashed node is told it is unreachable.
    pub reset_per_mille: u16,
    /// Longest delay before that report, in milliseconds (the shortest is `min_delay_ms`).
    pub max_reset_delay_ms: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            min_delay_ms: 1,
            max_delay_ms: 15,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            reset_per_mille: 500,
            max_reset_delay_ms: 30,
        }
    }
}

/// How a simulation is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Replicas at the start (slots `0..replicas`).
    pub replicas: usize,
    /// The most replica slots [`Action::AddReplica`](super::Action::AddReplica) may reach.
    pub max_replicas: usize,
    /// Clients (processes `0..clients` of the history).
    pub clients: usize,
    /// Failure detection and retransmission timing of every node.
    pub timing: Timing,
    /// The clients' deadline and retry interval.
    pub client: ClientConfig,
    /// The network.
    pub network: NetworkConfig,
    /// Shortest validation delay at the primary, in milliseconds.
    pub min_validation_ms: u64,
    /// Longest validation delay at the primary, in milliseconds.
    pub max_validation_ms: u64,
    /// Probability (thousandths) that a validation is slow instead: up to
    /// `max_slow_validation_ms` (an online postcode check timing out).
    pub slow_validation_per_mille: u16,
    /// Longest slow validation, in milliseconds.
    pub max_slow_validation_ms: u64,
    /// After healing, how long the cluster may take to serve again: a request in flight at
    /// the heal whose deadline is later than this must end `ok` or `fail`, never `info`. The
    /// default (7 s) is the protocol's own bound with default timing: a registration lost
    /// just before the heal is renewed only after `Timing::lease_renewal` (5 s), then
    /// `dead_after` and a few retransmissions.
    pub recovery_grace: Duration,
    /// Quiet time given at the end for traffic to drain before convergence is checked.
    pub drain: Duration,
    /// Make the crash and restart *actions* spare the last running member of the last active
    /// view, so that the cluster stays available and liveness and convergence are checked at
    /// the end. Without it, runs that lose every member are checked for safety only (the
    /// protocol then promises nothing else, rule 4). The methods ([`Sim::crash_replica`](super::Sim::crash_replica)...)
    /// always do as they are told.
    pub protect_last_member: bool,
    /// How primaries stream snapshots to joining replicas (a small chunk size makes the
    /// simulator's small states travel in many chunks).
    pub transfer: Transfer,
    /// `None`: memory-only replicas (the default). `Some(policy)`: durable replicas, each
    /// keeping its data directory on a simulated disk of its own ([`crate::storage::SimDisk`])
    /// with this fsync policy, and restarting from it.
    pub storage: Option<FsyncPolicy>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            replicas: 3,
            max_replicas: 7,
            clients: 2,
            timing: Timing::default(),
            client: ClientConfig::default(),
            network: NetworkConfig::default(),
            min_validation_ms: 0,
            max_validation_ms: 20,
            slow_validation_per_mille: 50,
            max_slow_validation_ms: 3000,
            recovery_grace: Duration::from_secs(7),
            drain: Duration::from_secs(5),
            protect_last_member: true,
            transfer: Transfer::default(),
            storage: None,
        }
    }
}
