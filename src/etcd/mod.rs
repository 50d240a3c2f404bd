//! etcd as the coordination backend for deployments on several machines (docs/DEPLOY.md):
//!
//! - the front-end's view is one etcd key changed only by compare-and-swap
//!   ([`EtcdViewStore`]), so several front-ends can never install conflicting views;
//! - names are keys on their owner's lease, written and refreshed by the owner
//!   ([`EtcdNames`], which answers a node's registry messages from etcd): no registry process;
//! - any number of front-end candidates run; the one that holds the front-end's name key
//!   runs the front-end, the others stand by ([`FrontendCandidate`]).
//!
//! Everything goes through etcd's v3 JSON gateway ([`EtcdClient`]) with the HTTP client
//! already in the tree: no protoc at build time. [`EtcdCluster`] starts real etcd members on
//! loopback ports for the tests and demos.
//!
//! Built with the `etcd` feature (on by default).

mod client;
mod election;
mod local;
mod names;
mod view_store;

pub use client::{
    DEFAULT_REQUEST_TIMEOUT, EtcdClient, EtcdError, EtcdTls, Expected, KeyValue, Lease,
    MAX_RESPONSE_BYTES, Swap,
};
pub use election::{ActiveTerm, ElectionConfig, FrontendCandidate};
pub use local::{
    ETCD_BINARY_VAR, EtcdClientFiles, EtcdCluster, EtcdLayout, EtcdSetupError, INSTALL_HINT,
};
pub use names::{ETCD_REGISTRY_ADDRESS, EtcdNames, NAMES_PREFIX, check_reachable, name_key};
pub use view_store::{DEFAULT_VIEW_KEY, EtcdViewStore, check_view_history};
