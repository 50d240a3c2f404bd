//! The facade of the workspace: it re-exports the core (sans-IO replication protocol, the order
//! book, postcode validation, the tokio runtime) and the transports, so an application needs one
//! dependency, and adds [`local::LocalCluster`], a whole cluster in one process.
//!
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod burst;
pub mod checker;
pub mod cli;
pub mod loadgen;
pub mod local;
pub mod nemesis;
mod order_client;
pub mod orders;
pub mod postcode;

pub use order_client::{OrderClient, OrderClientError};

pub use just_hungry_core as core;
pub use just_hungry_core::*;
pub use just_hungry_transport_mem as mem;
pub use just_hungry_transport_tcp as tcp;
