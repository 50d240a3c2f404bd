//! Every message of the protocol, for every role: what reaches the wire.
//!
//! One enum, [`Message`], so one codec call decodes any frame and a node can refuse a message
//! that is not for its role with a typed error instead of a panic.

use serde::{Deserialize, Serialize};

use crate::ids::{Address, Member, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber};
use crate::state_machine::StateMachine;

/// The protocol version. A peer that speaks another is refused (the TCP hello carries it).
pub const PROTOCOL_VERSION: u32 = 8;

/// One command in the op log: its position, the request it answers, when the primary took it,
/// and the validated command itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C> {
    /// Its position in the log.
    pub op: OpNumber,
    /// The client request; a retry of it is answered from the client table.
    pub request: RequestId,
    /// The name of the authenticated client that sent it: the client table binds the request's
    /// client id to it (a client id is used only by the identity that first wrote with it).
    pub owner: String,
    /// The primary's clock when it accepted the command.
    pub time: Time,
    /// The command, already validated.
    pub command: C,
}

/// What a client asks for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Operation<S: StateMachine> {
    /// A write: replicated, exactly once.
    Write(S::Command),
    /// A read of committed state, answered by the primary.
    Read(S::Query),
    /// The cluster's status, answered by the front-end.
    Status,
}

impl<S: StateMachine> Clone for Operation<S> {
    fn clone(&self) -> Self {
        match self {
            Operation::Write(c) => Operation::Write(c.clone()),
            Operation::Read(q) => Operation::Read(q.clone()),
            Operation::Status => Operation::Status,
        }
    }
}

/// A client request: its id (the same on every retry) and what it asks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ClientRequest<S: StateMachine> {
    /// `(client, seq)`; retries carry the same id.
    pub id: RequestId,
    /// What it asks.
    pub operation: Operation<S>,
}

impl<S: StateMachine> Clone for ClientRequest<S> {
    fn clone(&self) -> Self {
        ClientRequest {
            id: self.id,
            operation: self.operation.clone(),
        }
    }
}

/// How a request ended.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Outcome<S: StateMachine> {
    /// The write was applied (or refused by validation, which the reply says); this is its reply.
    Written(S::Reply),
    /// The read's answer.
    Read(S::QueryReply),
    /// The cluster's status.
    Status(ClusterStatus),
    /// The service could not run the request; see the error for whether to retry.
    Failed(ServiceError),
}

impl<S: StateMachine> Clone for Outcome<S> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Written(r) => Outcome::Written(r.clone()),
            Outcome::Read(r) => Outcome::Read(r.clone()),
            Outcome::Status(s) => Outcome::Status(s.clone()),
            Outcome::Failed(e) => Outcome::Failed(e.clone()),
        }
    }
}

/// The answer to a client request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ClientResponse<S: StateMachine> {
    /// The request it answers.
    pub id: RequestId,
    /// How it ended.
    pub outcome: Outcome<S>,
}

impl<S: StateMachine> Clone for ClientResponse<S> {
    fn clone(&self) -> Self {
        ClientResponse {
            id: self.id,
            outcome: self.outcome.clone(),
        }
    }
}

/// Why the service could not run a request. Each variant says whether retrying can help.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ServiceError {
    /// No primary can serve now (no live member of the last active view). Retry later; the
    /// client library does so until its deadline.
    #[error("service unavailable: {reason}")]
    Unavailable {
        /// Why, for a human.
        reason: String,
    },
    /// Too many requests are queued; retry after a pause.
    #[error("service overloaded: too many requests in flight, retry later")]
    Overloaded,
    /// The replica is not the primary of that view (internal: the front-end retries elsewhere).
    #[error("replica is not the primary of view {view}")]
    NotPrimary {
        /// The view the request was sent for.
        view: ViewNumber,
    },
    /// The sender may not make this request (a client id that another identity owns, too many
    /// client ids for one identity): nothing was done. Not retried.
    #[error("request refused: {reason}")]
    Forbidden {
        /// Why, for a human.
        reason: String,
    },
    /// The answer is longer than the transport carries in one message: `max` bytes, the
    /// answer `bytes`. It was not sent; this was sent instead. A read changed nothing; ask for
    /// less (a smaller page, the order book's `OrderQuery`). A write was applied: only its
    /// reply did not fit. Not retried.
    #[error(
        "the answer ({bytes} bytes) is longer than a message may be ({max} bytes): ask for less"
    )]
    ReplyTooLarge {
        /// The encoded answer's length.
        bytes: u64,
        /// The most the transport carries.
        max: u64,
    },
    /// The request was older than the client's latest one: a delayed duplicate. Not retried.
    #[error("request {id} is older than the client's latest request")]
    Stale {
        /// The stale request.
        id: RequestId,
    },
}

/// The role a replica plays, as it reports it in its pings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRole {
    /// Not in any view it knows of (a newcomer, or removed): its state may be stale.
    Idle,
    /// Receiving the primary's state before joining a view.
    Learner,
    /// A backup that knows its view but has not received the view's state yet.
    AwaitingState,
    /// A backup holding the primary's state.
    Backup,
    /// Primary of a view it is still starting (state transfer to backups under way).
    StartingView,
    /// Primary of a started view.
    Primary,
}

/// A replica's periodic heartbeat to the front-end (docs/PROTOCOL.md, "Failure detection").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Who pings.
    pub replica: ReplicaId,
    /// Where to reach it.
    pub address: Address,
    /// The newest view it knows (`None` before any).
    pub view: Option<View>,
    /// What it does in that view.
    pub role: ReplicaRole,
    /// The last op applied to its state.
    pub applied: OpNumber,
    /// This ping's number, echoed by the answer ([`Message::ViewInfo`]'s `answers`), so the
    /// replica measures the round trip ([`crate::protocol::liveness`]).
    pub number: u64,
    /// This incarnation started from a data directory earlier incarnations wrote to
    /// (docs/PROTOCOL.md, "Durability"); `None` for a memory-only replica or a fresh directory.
    pub recovered: Option<Recovery>,
}

/// What a replica that started from its data directory says of it in its pings: the earlier
/// incarnations that wrote to that directory, so it holds at least what each of them wrote
/// there, and this incarnation may stand in for one of them that was a member of the last
/// active view (docs/PROTOCOL.md, "Durability", rule 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The incarnations (of this replica's name) that opened the directory before this one,
    /// oldest first (the newest 32 at most).
    pub lineage: Vec<u64>,
    /// Whether the replica syncs every record before acting on it
    /// ([`crate::storage::FsyncPolicy::Always`]): then the disk holds every op its incarnations
    /// acknowledged, even after a power loss. Otherwise (`batch`, `never`) the last writes
    /// before a power loss may be missing.
    pub synced: bool,
}

/// How a snapshot or a log suffix travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferChunk<C> {
    /// The ops after the receiver's last acknowledged op (the receiver's state must be the one
    /// the sender tracked in view `since`).
    Suffix {
        /// The view in which the sender last tracked the receiver.
        since: ViewNumber,
        /// Consecutive entries.
        entries: Vec<Entry<C>>,
    },
    /// One chunk of a full snapshot, at most [`crate::protocol::MAX_CHUNK_BYTES`]. The sender
    /// encodes the snapshot as it streams it, so the number of chunks is known only at the
    /// last one. The receiver acknowledges each chunk ([`Message::SnapshotAck`]).
    Snapshot {
        /// Position of this chunk, from 0.
        index: u32,
        /// Whether it is the snapshot's last chunk.
        last: bool,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// Every message of the protocol.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Message<S: StateMachine> {
    // ---- registry (name server) ----
    /// Registers or renews `name -> address` for one lease.
    Register {
        /// The well-known name.
        name: String,
        /// Where it is reached.
        address: Address,
    },
    /// The registry holds `name` for one more lease: the answer to [`Message::Register`]. A node
    /// whose registration is not acknowledged registers again after a retransmission interval,
    /// not a whole lease renewal, so it is found again soon after the registry comes back.
    Registered {
        /// The name registered.
        name: String,
        /// How long the registry keeps the entry without a renewal (its autoclean). A node
        /// whose own `Timing::autoclean` is longer renews at the registry's pace instead, and
        /// says so once (issue 18: a mismatch made the registry drop and re-add entries).
        lease: std::time::Duration,
    },
    /// Asks where `name` is.
    Lookup {
        /// The well-known name.
        name: String,
    },
    /// The answer to [`Message::Lookup`].
    LookupReply {
        /// The name asked for.
        name: String,
        /// Where it is, if registered and not expired.
        address: Option<Address>,
    },

    // ---- client <-> front-end ----
    /// A client request to the front-end.
    Request(ClientRequest<S>),
    /// The front-end's answer to a client, or the primary's answer to the front-end.
    Response(ClientResponse<S>),

    // ---- front-end <-> replicas ----
    /// The front-end forwards a client request to the primary of `view`.
    Forward {
        /// The active view the front-end routes in.
        view: ViewNumber,
        /// The request.
        request: ClientRequest<S>,
        /// The name of the authenticated client that sent it (see [`Entry::owner`]).
        owner: String,
    },
    /// A replica's heartbeat.
    Ping(Ping),
    /// The front-end's newest view, sent in answer to every ping and when a view is created.
    ViewInfo {
        /// The newest view (`None` before bootstrap).
        view: Option<View>,
        /// The number of the ping this answers; `None` when sent unasked (a view change).
        answers: Option<u64>,
    },
    /// The front-end asks the primary of `view` to bring `learner` up to date.
    AddLearner {
        /// The active view.
        view: ViewNumber,
        /// The newcomer.
        learner: Member,
    },
    /// The primary of `view` has transferred its state to every backup: the view is active.
    ViewStarted {
        /// The view.
        view: ViewNumber,
    },
    /// The primary reports that `learners` hold its state and follow its log: the front-end
    /// adds them to the view in one view change.
    CaughtUp {
        /// The active view.
        view: ViewNumber,
        /// The learners.
        learners: Vec<ReplicaId>,
    },
    /// The primary reports that `backup` did not acknowledge in time.
    SuspectBackup {
        /// The view.
        view: ViewNumber,
        /// The slow or dead backup.
        backup: ReplicaId,
    },

    // ---- primary <-> backups and learners ----
    /// A batch of consecutive log entries for a backup or learner of `view`.
    Prepare {
        /// The sender's view.
        view: ViewNumber,
        /// Consecutive entries.
        entries: Vec<Entry<S::Command>>,
    },
    /// A backup or learner has applied every op up to `op`.
    PrepareOk {
        /// The view.
        view: ViewNumber,
        /// Who acknowledges.
        replica: ReplicaId,
        /// Its highest contiguous applied op.
        op: OpNumber,
    },
    /// The primary of `view` brings a backup to its state (docs/PROTOCOL.md, "View change").
    StartView {
        /// The new view.
        view: View,
        /// The op the state is at once this transfer is applied.
        op: OpNumber,
        /// A suffix or one snapshot chunk.
        chunk: TransferChunk<S::Command>,
    },
    /// A backup holds the state of `view` at `op`.
    StartViewOk {
        /// The view.
        view: ViewNumber,
        /// Who.
        replica: ReplicaId,
        /// The op its state is at.
        op: OpNumber,
    },
    /// A replica receiving a snapshot (`StartView` or `Learn`) holds every chunk of the
    /// snapshot at `op` below `next`: the sender drops those, sends more within its window
    /// ([`crate::protocol::Transfer`]), and resends only the first missing chunk when no
    /// acknowledgement comes.
    SnapshotAck {
        /// The view named by the chunks.
        view: ViewNumber,
        /// Who acknowledges.
        replica: ReplicaId,
        /// The op of the snapshot.
        op: OpNumber,
        /// Every chunk below this index was received.
        next: u32,
    },
    /// The primary of `view` sends its committed state to a learner (a joining replica).
    Learn {
        /// The primary's view.
        view: ViewNumber,
        /// The incarnation the snapshot is for: a restarted replica at the same address
        /// ignores the chunks of its predecessors' snapshots.
        learner: ReplicaId,
        /// The primary streaming it. A primary that stays primary through view changes keeps
        /// streaming the same snapshot; the learner keeps the chunks it has of it.
        primary: ReplicaId,
        /// The op the snapshot is at.
        op: OpNumber,
        /// One snapshot chunk.
        chunk: TransferChunk<S::Command>,
    },
}

impl<S: StateMachine> Message<S> {
    /// Whether this is a liveness signal: a replica's ping, or the front-end's view
    /// announcement that answers it. The runtime sends these with
    /// [`Transport::send_priority`](crate::transport::Transport::send_priority), so that bulk
    /// traffic queued at either end cannot delay them past the failure detector's patience
    /// (issue 13).
    pub fn is_liveness_signal(&self) -> bool {
        matches!(self, Message::Ping(_) | Message::ViewInfo { .. })
    }

    /// A short name of the message kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Register { .. } => "Register",
            Message::Registered { .. } => "Registered",
            Message::Lookup { .. } => "Lookup",
            Message::LookupReply { .. } => "LookupReply",
            Message::Request(_) => "Request",
            Message::Response(_) => "Response",
            Message::Forward { .. } => "Forward",
            Message::Ping(_) => "Ping",
            Message::ViewInfo { .. } => "ViewInfo",
            Message::AddLearner { .. } => "AddLearner",
            Message::ViewStarted { .. } => "ViewStarted",
            Message::CaughtUp { .. } => "CaughtUp",
            Message::SuspectBackup { .. } => "SuspectBackup",
            Message::Prepare { .. } => "Prepare",
            Message::PrepareOk { .. } => "PrepareOk",
            Message::StartView { .. } => "StartView",
            Message::StartViewOk { .. } => "StartViewOk",
            Message::SnapshotAck { .. } => "SnapshotAck",
            Message::Learn { .. } => "Learn",
        }
    }
}

/// The cluster as the front-end sees it, for `cluster_status()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The newest view the front-end created.
    pub view: Option<View>,
    /// Whether that view was marked active: its primary started it (every backup held its
    /// state). An active view may still not serve (its primary died and no member of it is
    /// alive to take over): see `serving`.
    pub active: bool,
    /// Whether the view actually serves now: it is active, its primary pinged within
    /// `dead_after`, and requests are being answered (none forwarded to it has waited longer
    /// than [`SERVING_PATIENCE`](crate::protocol::frontend::SERVING_PATIENCE) while
    /// nothing was answered).
    pub serving: bool,
    /// Why it does not serve, for a person (`None` while it serves).
    pub why_not_serving: Option<String>,
    /// Every replica the front-end has heard from.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica, as the front-end last heard from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Who.
    pub id: ReplicaId,
    /// Where.
    pub address: Address,
    /// The role it reported.
    pub role: ReplicaRole,
    /// The last op it applied, as it reported.
    pub applied: OpNumber,
    /// Whether the front-end considers it alive.
    pub alive: bool,
}
