//! etcd as the coordination backend for deployments on several machines (docs/DEPLOY.md):
//! the front-end's view is one etcd key changed only by compare-and-swap
//! ([`EtcdViewStore`]), so several front-ends can never install conflicting views.
//!
//! Everything goes through etcd's v3 JSON gateway ([`EtcdClient`]) with the HTTP client
//! already in the tree: no protoc at build time. [`EtcdCluster`] starts real etcd members on
//! loopback ports for the tests and demos.
//!
//! Built with the `etcd` feature (on by default).

mod client;
mod local;
mod view_store;

pub use client::{
    DEFAULT_REQUEST_TIMEOUT, EtcdClient, EtcdError, Expected, KeyValue, Lease, MAX_RESPONSE_BYTES,
    Swap,
};
pub use local::{ETCD_BINARY_VAR, EtcdCluster, EtcdSetupError, INSTALL_HINT};
pub use view_store::{DEFAULT_VIEW_KEY, EtcdViewStore};
