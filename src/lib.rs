//! The Just Hungry food-ordering service on the just-hungry replication library, and the facade
//! of the workspace: it re-exports the core (the sans-IO protocol, the simulator, the history
//! checker, the tokio runtime) and both transports, so an application needs one dependency.
//!
//! | module | what it holds |
//! |---|---|
//! | [`orders`] | the order book: the replicated state machine of the service, its commands, queries and snapshot |
//! | [`postcode`] | the postcode validators: the core's offline format check, the online directories, their cache and builder |
//! | [`OrderClient`] | placing orders and reading histories through the front-end |
//! | [`local`] | [`local::LocalCluster`]: a registry, a front-end and order-book replicas in one process |
//! | [`cli`] | what the command-line binaries share: logging, signals, options, the client's commands |
//! | [`loadgen`] | the load generator: closed-loop clients, latency and failover report |
//! | [`fixtures`] | large deterministic order books for the benches, the measuring tools, the tests and the nemesis |
//! | [`nemesis`] | fault-injection runs on the in-memory network, with a recorded, checked history |
//! | [`ops`] | the binaries' HTTP endpoint: Prometheus metrics, health, readiness and the front-end's status page |
//! | [`burst`] | a gateway's burst: many clients' requests at once over one connection |
//! | [`etcd`] | etcd as the coordination backend: its client, the view store, a local cluster for tests |
//!
//! Crates and what may import what: `docs/ARCHITECTURE.md`.
//!
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod burst;
pub mod cli;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod fixtures;
pub mod loadgen;
pub mod local;
pub mod nemesis;
pub mod ops;
mod order_client;
pub mod orders;
pub mod postcode;

pub use order_client::{OrderAudit, OrderClient, OrderClientError};

pub use just_hungry_core as core;
pub use just_hungry_core::*;
pub use just_hungry_transport_mem as mem;
pub use just_hungry_transport_tcp as tcp;
