//! The sans-IO protocol: one state machine per role, fed `(now, input)`, returning outputs.
//!
//! Nothing here awaits, opens a socket, sleeps or reads a clock. Every role implements
//! [`Node`]: hand it a message ([`Node::handle_message`]), a delivery failure
//! ([`Node::handle_unreachable`]) or the passing of time ([`Node::handle_timeout`]), then drain
//! [`Node::poll_output`] and call [`Node::handle_timeout`] again at [`Node::next_timeout`]. The
//! tokio runtime ([`crate::runtime`]) and the simulator ([`crate::sim`]) are two such drivers.
//!
//! The roles:
//! - [`registry::Registry`]: the name server, with leases and autoclean;
//! - [`view_manager::ViewManager`]: the front-end: failure detection, elections, views, and
//!   routing of client requests to the primary;
//! - [`replica::Replica`]: a primary or backup holding the replicated state;
//! - [`client::ClientSession`]: one client's retries through failovers.

pub mod client;
pub mod election;
pub mod messages;
pub mod registry;
pub mod replica;
pub mod replicated;
pub mod view_manager;
pub mod view_store;

use std::time::Duration;

use crate::ids::{Address, RequestId, Time};
use crate::state_machine::StateMachine;
use messages::Message;
use view_store::ViewRecord;

/// The registry name under which the front-end registers.
pub const FRONTEND_NAME: &str = "just-hungry/frontend";

/// The registry name of replica `name`.
pub fn replica_registry_name(name: &str) -> String {
    format!("just-hungry/replica/{name}")
}

/// The largest snapshot chunk in one state-transfer message.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// The most chunks one snapshot may have (so a snapshot is at most 4 GiB, and a hostile
/// `count` cannot make a receiver allocate more bookkeeping than this).
pub const MAX_CHUNKS: u32 = 4096;

/// The most log entries in one `Prepare`.
pub const MAX_ENTRIES_PER_PREPARE: usize = 512;

/// The most ops sent to a backup beyond what it acknowledged (the pipelining window).
pub const MAX_OPS_IN_FLIGHT: u64 = 4096;

/// The most out-of-order entries a backup buffers while waiting for a gap to fill.
pub const MAX_BUFFERED_ENTRIES: usize = 8192;

/// The most writes a primary holds between arrival and commit (validating or replicating);
/// past it clients get `Overloaded`.
pub const MAX_PENDING_WRITES: usize = 16_384;

/// The most client requests the front-end holds waiting for the primary's answer.
pub const MAX_PENDING_REQUESTS: usize = 16_384;

/// The most committed entries a primary keeps to bring a backup up to date with a log suffix
/// instead of a full snapshot.
pub const MAX_RECENT_ENTRIES: usize = 16_384;

/// Timing of the failure detector and retransmissions. The same values must be given to every
/// node of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often a replica pings the front-end.
    pub ping_interval: Duration,
    /// The front-end declares a replica dead after this long without a ping.
    pub dead_after: Duration,
    /// How long before an unacknowledged message (prepare, state transfer, forwarded request)
    /// is sent again.
    pub retransmit_interval: Duration,
    /// A primary reports a backup that has not acknowledged for this long.
    pub backup_timeout: Duration,
    /// A registry entry not renewed within this is dropped (the original's autoclean).
    pub autoclean: Duration,
}

impl Default for Timing {
    /// Timings for a LAN or loopback: a dead primary is replaced within about half a second
    /// by the ping timeout, at once when the transport reports it unreachable.
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_millis(100),
            dead_after: Duration::from_millis(500),
            retransmit_interval: Duration::from_millis(100),
            backup_timeout: Duration::from_millis(500),
            autoclean: Duration::from_secs(20),
        }
    }
}

impl Timing {
    /// How often a node renews its registry lease: well within `autoclean`.
    pub fn lease_renewal(&self) -> Duration {
        (self.autoclean / 4).max(Duration::from_millis(10))
    }
}

/// What a protocol node asks its driver to do.
#[derive(Debug)]
pub enum Output<S: StateMachine> {
    /// Send `message` to `to`. Delivery may fail; report it with
    /// [`Node::handle_unreachable`] when the transport knows.
    Send {
        /// Destination.
        to: Address,
        /// The message.
        message: Message<S>,
    },
    /// Validate `command` (primary only) and report the result with
    /// [`replica::Replica::handle_validated`]. Other inputs go on meanwhile.
    Validate {
        /// The request the command belongs to.
        request: RequestId,
        /// The command to validate.
        command: S::Command,
    },
    /// Persist `record` through the [`view_store::ViewStore`] *before* acting on any later
    /// output (front-end only): the view is published only once it is stored.
    PersistView(ViewRecord),
}

/// A protocol role driven by a runtime or a simulator.
pub trait Node<S: StateMachine> {
    /// A message arrived from `from`.
    fn handle_message(&mut self, now: Time, from: Address, message: Message<S>);

    /// A message to `to` could not be delivered (connection refused or reset).
    fn handle_unreachable(&mut self, now: Time, to: &Address);

    /// Time passed; call at [`Node::next_timeout`] (calling it earlier is harmless).
    fn handle_timeout(&mut self, now: Time);

    /// When [`Node::handle_timeout`] should be called next.
    fn next_timeout(&self) -> Option<Time>;

    /// The next output to act on, in order.
    fn poll_output(&mut self) -> Option<Output<S>>;

    /// The node's name, for logs.
    fn name(&self) -> &str;
}
