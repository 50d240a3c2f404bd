//! # just-hungry-core
//!
//! Primary-backup (passive) replication as a sans-IO core, the deterministic simulator that
//! tests it, and the tokio drivers that run it. It knows nothing of the service it replicates
//! beyond the [`StateMachine`] trait: the Just Hungry order book and its online postcode
//! validators are in the `just-hungry` crate, built on this one. This
//! crate makes no HTTP call and has no TLS (the TCP transport crate has).
//!
//! ## The map of the crate
//!
//! | module | what it holds |
//! |---|---|
//! | [`protocol`] | the sans-IO state machines, one per role: [`protocol::replica::Replica`] (primary, backup, learner), [`protocol::frontend::Frontend`] (the front-end: failure detection, elections, views, routing), [`protocol::registry::Registry`] (the name server), [`protocol::client::ClientSession`] (retries); the [`protocol::messages`]; the client table ([`protocol::client_table`]) and the state it travels with ([`protocol::replicated_state`]); [`protocol::view_store::ViewRecord`]; the [`protocol::election`] policy; [`protocol::trust`] (who may send what); the chunked state transfer (`protocol::transfer`, private) and [`protocol::liveness`] |
//! | [`state_machine`] | [`StateMachine`], the trait a replicated service implements, and [`CommandValidator`] |
//! | [`sim`] | the deterministic simulator, generic over a [`sim::SimService`], and [`sim::KeyedLists`], the smallest one |
//! | [`postcode`] | UK postcodes: the offline format check and the [`postcode::PostcodeValidator`] trait |
//! | [`history`] | client histories: the list-append model, its JSON lines (with the initial state), [`history::check`] |
//! | [`codec`] | the one module that encodes and decodes (bincode 2.0.1, bounded) |
//! | [`storage`] | the write-ahead log and snapshots of a durable replica ([`storage::Wal`]), over a real or a simulated disk ([`storage::FileDisk`], [`storage::SimDisk`] with its faults) |
//! | [`transport`] | the [`transport::Transport`] trait the runtime is generic over |
//! | [`runtime`] | tokio drivers: `spawn_registry`, `spawn_frontend`, `spawn_replica`, the async [`runtime::Client`], the file and memory view stores ([`runtime::view_store`]), the [`runtime::HistoryRecorder`] of live runs |
//! | [`rng`] | [`rng::SeededRng`], the seeded generator of the simulator and of the in-memory transport's faults |
//! | [`ids`] | views, members, op numbers, request ids, time |
//!
//! ## Layering
//!
//! The protocol modules never await, open a socket, sleep or read a clock: each input is
//! `(now, message)` and each output a message to send, an effect (validate a command, persist
//! a view) or a timer. The runtime owns sockets, clocks and tasks and feeds them. The same
//! state machines run in the deterministic simulator of the property tests, with simulated
//! time and a simulated network, so the replication logic is tested without sleeps or flakes.

#![deny(missing_docs)]

pub mod codec;
pub mod history;
pub mod ids;
pub mod postcode;
pub mod protocol;
pub mod rng;
pub mod runtime;
pub mod sim;
pub mod state_machine;
pub mod storage;
pub mod transport;

/// The attribute [`CommandValidator`] implementations need (`#[just_hungry_core::async_trait]`),
/// re-exported so that an embedder does not add the crate themselves.
pub use async_trait::async_trait;
pub use ids::*;
pub use state_machine::{
    AcceptAll, ApplyContext, CommandValidator, Payload, SnapshotReader, SnapshotWriter,
    StateMachine,
};
