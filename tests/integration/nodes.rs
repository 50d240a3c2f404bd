//! Protocol nodes for the tests that drive them by hand (`detector.rs`, `edges.rs`,
//! `trust.rs`): replica `name` is incarnation 1 at address `name`, with the default timing.

#![allow(dead_code)]

use just_hungry::orders::OrderBook;
use just_hungry_core::ids::{Address, Member, ReplicaId, Time};
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::client_table::ClientTableLimits;
use just_hungry_core::protocol::replica::{DEFAULT_MAX_SNAPSHOT_BYTES, Replica, ReplicaConfig};

/// Replica `name`'s id.
pub fn id(name: &str) -> ReplicaId {
    ReplicaId::new(name, 1)
}

/// Replica `name` as a view member.
pub fn member(name: &str) -> Member {
    Member {
        id: id(name),
        address: Address::new(name),
    }
}

/// Replica `name` holding the pre-defined orders, receiving snapshots of at most
/// `max_snapshot_bytes`.
pub fn replica_with(name: &str, max_snapshot_bytes: usize) -> Replica<OrderBook> {
    let config = ReplicaConfig {
        id: id(name),
        address: Address::new(name),
        registry: Address::new("registry"),
        timing: Timing::default(),
        client_table: ClientTableLimits::default(),
        pipeline: Default::default(),
        transfer: Default::default(),
        max_snapshot_bytes,
    };
    Replica::new(config, OrderBook::with_predefined_history(), Time(0))
}

/// Replica `name` with the default snapshot bound.
pub fn replica(name: &str) -> Replica<OrderBook> {
    replica_with(name, DEFAULT_MAX_SNAPSHOT_BYTES)
}
