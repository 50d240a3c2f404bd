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
//! | [`apps`] | the programs (registry, front-end, replica, client, certificates), which the example binaries and the installed `just-hungry` run |
//! | [`cli`] | what the command-line programs share: their options, the client's commands |
//! | [`process`] | what a process hosting nodes needs: logging, shutdown on a signal, certificate reload on SIGHUP |
//! | [`loadgen`] | the load generator: closed-loop clients, latency and failover report |
//! | [`fixtures`] | large deterministic order books for the benches, the measuring tools, the tests and the nemesis |
//! | [`nemesis`] | fault-injection runs on the in-memory network, with a recorded, checked history |
//! | [`ops`] | the binaries' HTTP endpoint: Prometheus metrics, health, readiness and the front-end's status page |
//! | [`burst`] | a gateway's burst: many clients' requests at once over one connection |
//! | [`etcd`] | etcd as the coordination backend: its client, the view store, a local cluster for tests |
//!
//! Crates and what may import what: `docs/ARCHITECTURE.md`.
//!
//! ## A node of your own, over TCP
//!
//! Your own [`StateMachine`] replicated by three replicas over TCP on 127.0.0.1, with the
//! registry and the front-end, each a node of its own (in one process here; in a deployment
//! each `spawn_*` runs in a process of its own, as the example binaries do). Add to
//! `Cargo.toml`: `just-hungry` (this crate; the core and both transports come with it),
//! `tokio` with the features `macros` and `rt`, and `serde` with `derive`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use just_hungry::core::ids::{Identity, NodeRole, ReplicaId};
//! use just_hungry::core::protocol::client::ClientConfig;
//! use just_hungry::core::protocol::frontend::FrontendConfig;
//! use just_hungry::core::protocol::replica::ReplicaConfig;
//! use just_hungry::core::runtime::view_store::MemoryViewStore;
//! use just_hungry::core::runtime::{self, Client, random_u64};
//! use just_hungry::core::transport::Transport;
//! use just_hungry::core::{AcceptAll, ApplyContext, StateMachine};
//! use just_hungry::tcp::{TcpConfig, TcpTransport};
//!
//! /// The replicated service: deterministic, so every replica agrees.
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct Counter {
//!     value: u64,
//! }
//!
//! impl StateMachine for Counter {
//!     const SERVICE: &'static str = "counter";
//!     type Command = u64;
//!     type Reply = u64;
//!     type Query = ();
//!     type QueryReply = u64;
//!     fn apply(&mut self, _: &ApplyContext, add: &u64) -> u64 {
//!         self.value = self.value.saturating_add(*add);
//!         self.value
//!     }
//!     fn query(&self, _: &()) -> u64 {
//!         self.value
//!     }
//! }
//!
//! /// A node's endpoint on a free port of 127.0.0.1, in plaintext. For mutual TLS, give the
//! /// configuration `.with_tls(TlsConfig::from_dir(dir, name)?)` (docs/SECURITY.md).
//! async fn endpoint(role: NodeRole, name: &str) -> std::io::Result<TcpTransport> {
//!     let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
//!     let config = TcpConfig::server(listen, Identity::new(role, name)).for_service::<Counter>();
//!     TcpTransport::bind(config).await
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // The name server: entries not renewed within 20 s are dropped.
//!     let transport = endpoint(NodeRole::Registry, "registry").await?;
//!     let registry = transport.local_address();
//!     let registry_node = runtime::spawn_registry(transport, Duration::from_secs(20));
//!
//!     // The front-end: keeps the view (here in memory; `FileViewStore` survives a restart),
//!     // elects the primary, routes every request. Its defaults suit a new cluster.
//!     let transport = endpoint(NodeRole::Frontend, "frontend").await?;
//!     let config = FrontendConfig::new("frontend", transport.local_address(), registry.clone());
//!     let frontend = runtime::spawn_frontend::<Counter, _>(
//!         transport,
//!         config,
//!         Box::new(MemoryViewStore::new()),
//!     );
//!
//!     // Three replicas, each with a fresh incarnation, each checking nothing (`AcceptAll`).
//!     let mut replicas = Vec::new();
//!     for name in ["a", "b", "c"] {
//!         let transport = endpoint(NodeRole::Replica, name).await?;
//!         let id = ReplicaId::new(name, random_u64());
//!         let config = ReplicaConfig::new(id, transport.local_address(), registry.clone());
//!         let validator = Arc::new(AcceptAll);
//!         replicas.push(runtime::spawn_replica(transport, config, Counter::default(), validator));
//!     }
//!
//!     // A client listens nowhere: one connection to each node it talks to.
//!     let transport = TcpTransport::connect_only(TcpConfig::client("me").for_service::<Counter>())
//!         .await?;
//!     let client = Client::<Counter>::spawn(transport, registry, ClientConfig::default());
//!     assert_eq!(client.write(5).await?, 5); // acknowledged once every backup holds it
//!     assert_eq!(client.write(2).await?, 7);
//!     assert_eq!(client.read(()).await?, 7);
//!
//!     frontend.shutdown().await;
//!     for replica in replicas {
//!         replica.shutdown().await;
//!     }
//!     registry_node.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod apps;
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
pub mod process;

pub use order_client::{OrderAudit, OrderClient, OrderClientError};

pub use just_hungry_core as core;
pub use just_hungry_core::*;
pub use just_hungry_transport_mem as mem;
pub use just_hungry_transport_tcp as tcp;
