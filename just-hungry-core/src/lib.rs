//! # just-hungry-core
//!
//! Primary-backup (passive) replication as a sans-IO core, plus the Just Hungry order book.
//!
//! (The guide is written in the README and mirrored here once the API settles.)

#![deny(missing_docs)]

pub mod codec;
pub mod ids;
pub mod orders;
pub mod postcode;
pub mod protocol;
pub mod runtime;
pub mod state_machine;
pub mod transport;

pub use ids::*;
pub use state_machine::{AcceptAll, ApplyContext, CommandValidator, Payload, StateMachine};
