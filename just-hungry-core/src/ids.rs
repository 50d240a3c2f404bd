//! Identifiers and time: the small value types every protocol message is made of.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time, as milliseconds since the UNIX epoch.
///
/// The protocol modules never read a clock: every input carries `now: Time`. The tokio runtime
/// feeds a monotonic clock anchored to the wall clock at start (so timestamps of different
/// processes are roughly comparable); the simulator feeds virtual time.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time(pub u64);

impl Time {
    /// The origin of time; also "never" for a timestamp that was never set.
    pub const ZERO: Time = Time(0);

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs.as_millis() as u64))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, rhs: Duration) -> Time {
        Time(self.0.saturating_sub(rhs.as_millis() as u64))
    }
}

/// Where a message can be sent: an opaque string that the transport resolves (a node name on
/// the in-memory transport, `host:port` over TCP).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address(pub String);

impl Address {
    /// An address from anything string-like.
    pub fn new(address: impl Into<String>) -> Self {
        Address(address.into())
    }

    /// The address as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Address {
    fn from(s: String) -> Self {
        Address(s)
    }
}

impl From<&str> for Address {
    fn from(s: &str) -> Self {
        Address(s.to_owned())
    }
}

/// A replica's identity: its configured name and the incarnation of the process holding it.
///
/// The incarnation is fresh at every start, so a replica that restarts (and so lost its
/// in-memory state) is a *new* member: the front-end never mistakes it for the old one
/// (docs/PROTOCOL.md, "Incarnations").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId {
    /// The configured, stable name (`replica-1`).
    pub name: String,
    /// Fresh at every process start.
    pub incarnation: u64,
}

impl ReplicaId {
    /// A replica identity.
    pub fn new(name: impl Into<String>, incarnation: u64) -> Self {
        ReplicaId {
            name: name.into(),
            incarnation,
        }
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:x}", self.name, self.incarnation & 0xffff)
    }
}

/// A view number. Only the front-end creates views, and their numbers only grow. `0` means
/// "no view yet".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ViewNumber(pub u64);

impl ViewNumber {
    /// The next view number; `u64::MAX` stays itself (a number from the network may be
    /// anything: saturating, it never overflows, and a view that cannot grow is never newer).
    pub fn next(self) -> ViewNumber {
        ViewNumber(self.0.saturating_add(1))
    }
}

impl fmt::Display for ViewNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// The position of a command in the replicated op log. `0` means "nothing applied".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct OpNumber(pub u64);

impl OpNumber {
    /// The next op number; `u64::MAX` stays itself (see [`ViewNumber::next`]).
    pub fn next(self) -> OpNumber {
        OpNumber(self.0.saturating_add(1))
    }
}

impl fmt::Display for OpNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.0)
    }
}

/// A client's identity, chosen at random by the client when it starts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ClientId(pub u64);

/// One client request: `(client, seq)`. A retry carries the same id, which is what makes every
/// write exactly-once; the order book uses it as the order's id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId {
    /// Who sent it.
    pub client: ClientId,
    /// The client's sequence number for it; grows by one per write.
    pub seq: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}-{}", self.client.0, self.seq)
    }
}

/// A view: its number, its primary and its backups. Every member also carries the address it
/// is reached at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Grows with every view the front-end creates.
    pub number: ViewNumber,
    /// The one replica that orders and commits writes in this view.
    pub primary: Member,
    /// Every other member; each holds the primary's state.
    pub backups: Vec<Member>,
}

impl View {
    /// Whether `id` is the primary or a backup of this view.
    pub fn contains(&self, id: &ReplicaId) -> bool {
        self.primary.id == *id || self.is_backup(id)
    }

    /// Whether `id` is a backup of this view.
    pub fn is_backup(&self, id: &ReplicaId) -> bool {
        self.backups.iter().any(|m| m.id == *id)
    }

    /// Every member, primary first.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.primary).chain(self.backups.iter())
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} primary={} backups=[", self.number, self.primary.id)?;
        for (i, b) in self.backups.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", b.id)?;
        }
        f.write_str("]")
    }
}

/// A member of a view: who it is and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its identity.
    pub id: ReplicaId,
    /// Its transport address.
    pub address: Address,
}

/// What a node is in the cluster, as its certificate (or, on a plaintext link, its hello)
/// says: the part of an [`Identity`] that decides which messages it may send
/// ([`crate::protocol::trust`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeRole {
    /// The name server.
    Registry,
    /// The front-end (the view keeper and request router).
    Frontend,
    /// A replica (primary, backup or newcomer).
    Replica,
    /// A client of the service.
    Client,
}

impl NodeRole {
    /// Every role, in a fixed order.
    pub const ALL: [NodeRole; 4] = [
        NodeRole::Registry,
        NodeRole::Frontend,
        NodeRole::Replica,
        NodeRole::Client,
    ];

    /// The role's name as it is written in certificates, hellos and logs: `registry`,
    /// `frontend`, `replica`, `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Registry => "registry",
            NodeRole::Frontend => "frontend",
            NodeRole::Replica => "replica",
            NodeRole::Client => "client",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`NodeRole`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role: expected registry, frontend, replica or client")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for NodeRole {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeRole::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Who sent a message, as the transport established it: over TLS, the role and name in the
/// peer's certificate, checked against the cluster's CA; on an in-process network, the name
/// and role the endpoint was attached with; on a plaintext TCP link (`--insecure-plaintext`),
/// what the peer's hello claims, which proves nothing.
///
/// The protocol decides what a sender may do from this alone ([`crate::protocol::trust`]),
/// never from the names a message carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// What it is.
    pub role: NodeRole,
    /// Its node name (`replica-1`, `frontend`, `alice`): for a replica, the name in its
    /// [`ReplicaId`].
    pub name: String,
}

impl Identity {
    /// An identity.
    pub fn new(role: NodeRole, name: impl Into<String>) -> Self {
        Identity {
            role,
            name: name.into(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.name)
    }
}
