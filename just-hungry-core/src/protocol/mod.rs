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
//! - [`frontend::Frontend`]: the front-end: failure detection, elections, views, and
//!   routing of client requests to the primary;
//! - [`replica::Replica`]: a primary or backup holding the replicated state;
//! - [`client::ClientSession`]: one client's retries through failovers.
//!
//! Every message comes with its sender's [`Identity`]; [`trust`] says who may send what, and
//! every role applies it before it acts.

pub mod client;
pub mod client_table;
pub mod election;
pub mod frontend;
pub mod liveness;
pub mod messages;
pub mod registry;
pub mod replica;
pub mod replicated_state;
pub mod stats;
mod transfer;
pub mod trust;
pub mod view_store;

use std::time::Duration;

use crate::ids::{Address, Identity, RequestId, Time, View};
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

/// The most log entries in one `Prepare`: the default of [`Pipeline::max_entries_per_prepare`].
pub const MAX_ENTRIES_PER_PREPARE: usize = 512;

/// The most ops sent to a backup beyond what it acknowledged (the pipelining window): the
/// default of [`Pipeline::max_ops_in_flight`].
pub const MAX_OPS_IN_FLIGHT: u64 = 4096;

/// The largest pipelining window [`Pipeline::new`] accepts: a backup buffers at most
/// [`MAX_BUFFERED_ENTRIES`] out-of-order entries, so ops sent beyond that could only be dropped
/// and sent again.
pub const MAX_PIPELINE_WINDOW: u64 = MAX_BUFFERED_ENTRIES as u64;

/// The most out-of-order entries a backup buffers while waiting for a gap to fill.
pub const MAX_BUFFERED_ENTRIES: usize = 8192;

/// The most writes a primary holds between arrival and commit (validating or replicating);
/// past it clients get `Overloaded`.
pub const MAX_PENDING_WRITES: usize = 16_384;

/// The most client requests the front-end holds waiting for the primary's answer.
pub const MAX_PENDING_REQUESTS: usize = 16_384;

/// How many committed ops a learner may still lack and be reported caught up (issue 13): under
/// steady writes the primary commits on its backups' acknowledgements, so a learner that
/// follows the log is always a few ops behind, and waiting for it to hold every committed op
/// at the same instant took seconds. The view change that adds it brings it the rest with a
/// `StartView` suffix (the primary tracked its state), within one message (`MAX_CHUNK_BYTES`).
pub const CATCH_UP_SLACK: u64 = 256;

/// The most committed entries a primary keeps to bring a backup up to date with a log suffix
/// instead of a full snapshot.
pub const MAX_RECENT_ENTRIES: usize = 16_384;

/// How a primary batches and pipelines ops to its backups and learners (docs/PROTOCOL.md, "Normal
/// operation"): every pending op goes out in `Prepare`s of at most
/// [`Pipeline::max_entries_per_prepare`] entries, and at most [`Pipeline::max_ops_in_flight`]
/// ops beyond what a backup acknowledged are in flight to it. The default is
/// [`MAX_ENTRIES_PER_PREPARE`] and [`MAX_OPS_IN_FLIGHT`].
///
/// A batch must fit one transport frame: with the order book (at most about 5.2 KiB per
/// entry) the default 512 entries stay below 3 MiB, well inside the TCP transport's 8 MiB
/// frames; a service with larger commands should lower the batch.
///
/// ```
/// use just_hungry_core::protocol::Pipeline;
/// let p = Pipeline::new(64, 256).unwrap(); // 64 ops per Prepare, 256 in flight
/// assert_eq!((p.max_entries_per_prepare(), p.max_ops_in_flight()), (64, 256));
/// assert!(Pipeline::new(0, 256).is_err()); // an empty batch sends nothing
/// assert!(Pipeline::new(512, 64).is_err()); // a batch larger than the window
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pipeline {
    max_entries_per_prepare: usize,
    max_ops_in_flight: u64,
}

/// Why [`Pipeline::new`] refused its values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The batch size is 0 or larger than the window.
    #[error("max_entries_per_prepare must be in 1..=max_ops_in_flight ({window}), not {batch}")]
    Batch {
        /// The batch size asked for.
        batch: usize,
        /// The window asked for.
        window: u64,
    },
    /// The window is 0 (nothing could ever be sent) or above [`MAX_PIPELINE_WINDOW`].
    #[error("max_ops_in_flight must be in 1..={max}, not {window}")]
    Window {
        /// The window asked for.
        window: u64,
        /// [`MAX_PIPELINE_WINDOW`].
        max: u64,
    },
}

impl Pipeline {
    /// At most `max_entries_per_prepare` entries per `Prepare` and `max_ops_in_flight` ops
    /// unacknowledged per backup. Refused: a window of 0 or above [`MAX_PIPELINE_WINDOW`], a
    /// batch of 0 or larger than the window. `Pipeline::new(1, 1)` is stop-and-wait.
    pub fn new(
        max_entries_per_prepare: usize,
        max_ops_in_flight: u64,
    ) -> Result<Self, PipelineError> {
        if max_ops_in_flight == 0 || max_ops_in_flight > MAX_PIPELINE_WINDOW {
            return Err(PipelineError::Window {
                window: max_ops_in_flight,
                max: MAX_PIPELINE_WINDOW,
            });
        }
        if max_entries_per_prepare == 0 || max_entries_per_prepare as u64 > max_ops_in_flight {
            return Err(PipelineError::Batch {
                batch: max_entries_per_prepare,
                window: max_ops_in_flight,
            });
        }
        Ok(Pipeline {
            max_entries_per_prepare,
            max_ops_in_flight,
        })
    }

    /// The most log entries in one `Prepare`.
    pub fn max_entries_per_prepare(&self) -> usize {
        self.max_entries_per_prepare
    }

    /// The most ops sent to one backup or learner beyond what it acknowledged.
    pub fn max_ops_in_flight(&self) -> u64 {
        self.max_ops_in_flight
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            max_entries_per_prepare: MAX_ENTRIES_PER_PREPARE,
            max_ops_in_flight: MAX_OPS_IN_FLIGHT,
        }
    }
}

/// The size of a snapshot chunk by default ([`Transfer::chunk_bytes`]): 64 KiB, under a
/// millisecond of encoding for the order book, so a step of the primary's event loop that
/// encodes one (at most two) delays other requests by no more than that. Measured at
/// 1,000,000 orders (docs/PERFORMANCE.md): the longest write stall during a join is 15 ms with
/// 64 KiB chunks, 31 to 34 ms with 256 KiB and 74 ms with 1 MiB, for the same join time.
pub const DEFAULT_CHUNK_BYTES: usize = 64 * 1024;

/// How many snapshot chunks a primary has in flight to one receiver, by default: the default
/// of [`Transfer::window`].
pub const DEFAULT_TRANSFER_WINDOW: u32 = 8;

/// The most chunks a primary may have in flight to one receiver ([`Transfer::window`]): a
/// receiver keeps at most this many chunks that arrive ahead of a missing one, and drops
/// chunks further ahead.
pub const MAX_TRANSFER_WINDOW: u32 = 64;

/// How a primary streams its state to a joining replica (a learner) or a backup of a new view:
/// chunks of at most [`Transfer::chunk_bytes`], encoded one at a time as the stream goes
/// ([`crate::StateMachine::snapshot_writer`]), at most [`Transfer::window`] of them sent and
/// not yet acknowledged ([`messages::Message::SnapshotAck`]). So a large state neither lands
/// in the transport's queue at once (the TCP transport drops frames beyond 32 MiB queued to
/// one peer) nor is encoded in one step of the primary's event loop. When no acknowledgement
/// comes for a retransmission interval, the first missing chunk alone is sent again (the
/// receiver keeps the chunks after it).
///
/// ```
/// use just_hungry_core::protocol::Transfer;
/// assert!(Transfer::new(64 * 1024, 16).is_ok());
/// assert!(Transfer::new(0, 16).is_err());
/// assert!(Transfer::new(64 * 1024, 0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    chunk_bytes: usize,
    window: u32,
}

/// Why [`Transfer::new`] refused its values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The chunk size is 0 or above [`MAX_CHUNK_BYTES`] (which receivers refuse).
    #[error("chunk_bytes must be in 1..={max}, not {chunk_bytes}")]
    ChunkBytes {
        /// The size asked for.
        chunk_bytes: usize,
        /// [`MAX_CHUNK_BYTES`].
        max: usize,
    },
    /// The window is 0 (nothing would be sent) or above [`MAX_TRANSFER_WINDOW`].
    #[error("window must be in 1..={max}, not {window}")]
    Window {
        /// The window asked for.
        window: u32,
        /// [`MAX_TRANSFER_WINDOW`].
        max: u32,
    },
}

impl Transfer {
    /// Chunks of at most `chunk_bytes` (1 to [`MAX_CHUNK_BYTES`]), `window` (1 to
    /// [`MAX_TRANSFER_WINDOW`]) of them in flight to one receiver.
    pub fn new(chunk_bytes: usize, window: u32) -> Result<Self, TransferError> {
        if chunk_bytes == 0 || chunk_bytes > MAX_CHUNK_BYTES {
            return Err(TransferError::ChunkBytes {
                chunk_bytes,
                max: MAX_CHUNK_BYTES,
            });
        }
        if window == 0 || window > MAX_TRANSFER_WINDOW {
            return Err(TransferError::Window {
                window,
                max: MAX_TRANSFER_WINDOW,
            });
        }
        Ok(Transfer {
            chunk_bytes,
            window,
        })
    }

    /// The most bytes in one chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// The most chunks sent to one receiver and not yet acknowledged.
    pub fn window(&self) -> u32 {
        self.window
    }
}

impl Default for Transfer {
    fn default() -> Self {
        Transfer {
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            window: DEFAULT_TRANSFER_WINDOW,
        }
    }
}

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
    /// How often the front-end repeats its request to bring a live replica outside the view
    /// up to date (`AddLearner`), while it stays outside.
    pub fn learner_request_interval(&self) -> Duration {
        self.retransmit_interval * 5
    }

    /// How long a primary keeps a learner (and its snapshot) that the front-end no longer asks
    /// for: four repeats of [`Timing::learner_request_interval`] missed. Such a learner has
    /// died, restarted as another incarnation, or joined a view.
    pub fn learner_expiry(&self) -> Duration {
        self.learner_request_interval() * 4
    }

    /// How late a node's own timer may fire before the node takes it that it was the one
    /// asleep (a paused process, a starved event loop): half of `dead_after`. A front-end
    /// that wakes later than this past its deadline does not count the time it lost against
    /// the replicas' silence (issue 13).
    pub fn stall_tolerance(&self) -> Duration {
        self.dead_after / 2
    }

    /// How often a node renews its registry lease: well within `autoclean`.
    pub fn lease_renewal(&self) -> Duration {
        (self.autoclean / 4).max(Duration::from_millis(10))
    }
}

/// Tells a node's own stalls from its peers' silence: fed the node's deadline and the time of
/// each input, it reports how late the node was woken when that is more than
/// [`Timing::stall_tolerance`] (issue 13), and counts such stalls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StallDetector {
    latest_input: Time,
    stalls: u64,
}

impl StallDetector {
    pub(crate) fn new(now: Time) -> Self {
        StallDetector {
            latest_input: now,
            stalls: 0,
        }
    }

    /// An input at `now` for a node that was due to be woken at `due`: how late it was, if it
    /// was the one asleep.
    pub(crate) fn woken(&mut self, due: Time, now: Time, timing: &Timing) -> Option<Duration> {
        let due = due.max(self.latest_input);
        self.latest_input = self.latest_input.max(now);
        let late = now.saturating_since(due);
        if late <= timing.stall_tolerance() {
            return None;
        }
        self.stalls += 1;
        Some(late)
    }

    /// How many stalls it reported.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls
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
    /// Persist `record` through the [`crate::runtime::view_store::ViewStore`] *before* acting on any later
    /// output (front-end only): the view is published only once it is stored.
    PersistView(ViewRecord),
    /// Write `record` to the replica's data directory, and make it as durable as the fsync
    /// policy says ([`crate::storage::ReplicaStore::commit`]) *before* acting on any later
    /// output: a durable replica only ([`replica::Replica::durable`]); a memory-only one never
    /// emits it. A driver may take every output ready, write the records among them, commit
    /// once and then act on the rest (group commit): delaying a send is always allowed.
    ///
    /// One exception ([`Output::may_precede_commit`]): a `Prepare` acknowledges nothing, so it
    /// may go out before the records ahead of it are committed, as long as no other output
    /// ahead of it is still waiting. The primary's own sync then runs while its backups receive
    /// and sync the same entries; every answer to a client still waits for it.
    Record(Record<S>),
}

impl<S: StateMachine> Output<S> {
    /// Whether this output may be acted on before the records emitted ahead of it are
    /// committed (see [`Output::Record`]): a `Prepare`, which carries entries to backups and
    /// acknowledges nothing. Everything else that follows a record waits for its commit.
    pub fn may_precede_commit(&self) -> bool {
        matches!(
            self,
            Output::Send {
                message: messages::Message::Prepare { .. },
                ..
            }
        )
    }
}

/// What a durable replica asks its driver to write ([`Output::Record`]); replayed in order at
/// a restart ([`crate::storage::ReplicaStore::open`]).
#[derive(Debug)]
pub enum Record<S: StateMachine> {
    /// A view the replica accepted, before it acts on it.
    View(View),
    /// Entries, in op order, that a backup or learner applied or the primary appended to its
    /// log (before it sends them, so the primary's own copy is written alongside its
    /// backups').
    Entries(Vec<messages::Entry<S::Command>>),
    /// The replica's state was replaced (a snapshot installed) or set back (a primary stepping
    /// down drops the ops it appended and did not commit): write the whole of it as it is when
    /// the driver takes this output ([`crate::storage::ReplicaStore::record_replica`]).
    State,
}

/// A protocol role driven by a runtime or a simulator.
pub trait Node<S: StateMachine> {
    /// A message arrived from `from`, sent by `sender` (the identity the transport
    /// established). The node handles it only if `sender` may send it
    /// ([`trust`]); otherwise it counts the refusal ([`Node::refused`]) and changes nothing.
    fn handle_message(&mut self, now: Time, from: Address, sender: &Identity, message: Message<S>);

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

    /// How many messages the node refused because their sender may not send them
    /// ([`trust`]).
    fn refused(&self) -> u64;
}
