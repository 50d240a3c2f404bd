//! Who may send what: the one rule every node applies before it handles a message.
//!
//! Every message a node receives comes with the [`Identity`] the transport established for its
//! sender (over TLS: the role and name in the peer's certificate). A message is handled only
//! if that identity may send it; otherwise it is refused, counted ([`Refusals`]), logged once
//! per sender, and changes nothing. The rule has two parts, both here:
//!
//! 1. **The table** ([`senders`]): the roles that may send each kind of message.
//!
//!    | message | sent by |
//!    |---|---|
//!    | `Register` | front-end, replica: only the sender's own name ([`registry_name`]) |
//!    | `Registered`, `LookupReply` | registry |
//!    | `Lookup` | front-end, replica, client |
//!    | `Request` | client |
//!    | `Response` | front-end (to clients), replica (to the front-end) |
//!    | `Forward`, `ViewInfo`, `AddLearner` | front-end |
//!    | `Ping`, `PrepareOk`, `StartViewOk`, `SnapshotAck` | replica: only naming itself |
//!    | `StartView`, `Learn` | replica: only naming itself as the primary |
//!    | `Prepare`, `ViewStarted`, `CaughtUp`, `SuspectBackup` | replica |
//!
//! 2. **Names**: a message that names its sender (a `Ping`'s replica, a `PrepareOk`'s
//!    replica, a `StartView`'s primary, a registration's name) must name the authenticated
//!    sender ([`check`]); its addresses and names have bounded lengths.
//!
//! What depends on a node's state is checked where that state is, with the same
//! [`Refusal`] type: a `Prepare` only from the primary of the view it names, as the receiver
//! knows that view from the front-end; a `StartView` only for the view the front-end
//! announced; `ViewStarted`, `CaughtUp` and `SuspectBackup` only from the primary of the
//! view they name; a `Response` to the front-end only from a primary it routes to; a write
//! only for a client id its sender owns: the replicated client table records, with each
//! client id, the identity that wrote with it ([`crate::protocol::messages::Entry::owner`]),
//! and the primary refuses another identity's write for it.
//!
//! The rule cannot make a member honest: a holder of a replica certificate that the front-end
//! put in a view is trusted with the data, as in every primary-backup system (docs/SECURITY.md).

use std::collections::BTreeSet;

use crate::ids::{Address, Identity, NodeRole, View, ViewNumber};
use crate::protocol::messages::Message;
use crate::protocol::{FRONTEND_NAME, replica_registry_name};
use crate::state_machine::StateMachine;

/// The longest address a message may carry (a registration's, a ping's, a view member's), in
/// bytes. A `host:port` is far shorter; a longer one is refused, so a peer cannot make a
/// registry or a front-end hold (or repeat in every status reply) megabytes per entry.
pub const MAX_ADDRESS_BYTES: usize = 256;

/// The longest node name accepted in a message (a replica's name in its id), in bytes: the
/// same bound as names in certificates.
pub const MAX_NODE_NAME_BYTES: usize = 64;

/// The most senders a node remembers having logged a refusal for; past it, refusals are still
/// counted but logged at debug only.
pub const MAX_LOGGED_SENDERS: usize = 1024;

/// Why a message was refused. Every variant leaves the node unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The sender's role may not send this kind of message at all.
    #[error("a {role} may not send {kind}")]
    Role {
        /// The message kind.
        kind: &'static str,
        /// The sender's role.
        role: NodeRole,
    },
    /// The message names another node as its sender (a `Ping` for another replica, a
    /// registration of another name...).
    #[error("{kind} names `{named}`, which is not the sender")]
    NotItsOwn {
        /// The message kind.
        kind: &'static str,
        /// The name the message carries.
        named: String,
    },
    /// The message must come from the primary of the view it names, and the sender is not it
    /// (or the receiver does not know that view from the front-end).
    #[error("{kind} for view {view} is not from that view's primary")]
    NotFromPrimary {
        /// The message kind.
        kind: &'static str,
        /// The view it names.
        view: ViewNumber,
    },
    /// A client request for a client id that another identity owns (its request is pending
    /// at the front-end, or the replicated client table binds the id to it).
    #[error("client id {client} belongs to another identity")]
    ForeignClient {
        /// The client id the request carries.
        client: u64,
    },
    /// A name or address in the message is longer than its limit.
    #[error("{what} of {len} bytes is longer than {limit}")]
    TooLong {
        /// What is too long.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// The roles that may send `message` (the table of the module documentation).
pub fn senders<S: StateMachine>(message: &Message<S>) -> &'static [NodeRole] {
    use NodeRole::{Client, Frontend, Registry, Replica};
    match message {
        Message::Register { .. } => &[Frontend, Replica],
        Message::Registered { .. } | Message::LookupReply { .. } => &[Registry],
        Message::Lookup { .. } => &[Frontend, Replica, Client],
        Message::Request(_) => &[Client],
        Message::Response(_) => &[Frontend, Replica],
        Message::Forward { .. } | Message::ViewInfo { .. } | Message::AddLearner { .. } => {
            &[Frontend]
        }
        Message::Ping(_)
        | Message::ViewStarted { .. }
        | Message::CaughtUp { .. }
        | Message::SuspectBackup { .. }
        | Message::Prepare { .. }
        | Message::PrepareOk { .. }
        | Message::StartView { .. }
        | Message::StartViewOk { .. }
        | Message::SnapshotAck { .. }
        | Message::Learn { .. } => &[Replica],
    }
}

/// The registry name `identity` may register: the front-end's well-known name for a
/// front-end, `just-hungry/replica/<name>` for a replica, none for other roles.
pub fn registry_name(identity: &Identity) -> Option<String> {
    match identity.role {
        NodeRole::Frontend => Some(FRONTEND_NAME.to_owned()),
        NodeRole::Replica => Some(replica_registry_name(&identity.name)),
        NodeRole::Registry | NodeRole::Client => None,
    }
}

fn bounded(what: &'static str, value: &str, limit: usize) -> Result<(), Refusal> {
    if value.len() > limit {
        return Err(Refusal::TooLong {
            what,
            len: value.len(),
            limit,
        });
    }
    Ok(())
}

fn bounded_members(view: &View) -> Result<(), Refusal> {
    view.members().try_for_each(|member| {
        bounded(
            "a member's address",
            member.address.as_str(),
            MAX_ADDRESS_BYTES,
        )
    })
}

fn own(kind: &'static str, sender: &Identity, named: &str) -> Result<(), Refusal> {
    if named != sender.name {
        return Err(Refusal::NotItsOwn {
            kind,
            named: named.chars().take(MAX_NODE_NAME_BYTES).collect(),
        });
    }
    Ok(())
}

/// Whether `sender` may send `message`, as far as the message alone tells: its role is in
/// the table, the names it carries for its sender are the sender's, its addresses and names
/// are within bounds. A node calls it first for every message and handles the message only
/// on `Ok`.
pub fn check<S: StateMachine>(sender: &Identity, message: &Message<S>) -> Result<(), Refusal> {
    let kind = message.kind();
    if !senders(message).contains(&sender.role) {
        return Err(Refusal::Role {
            kind,
            role: sender.role,
        });
    }
    match message {
        Message::Register { name, address } => {
            bounded("the address", address.as_str(), MAX_ADDRESS_BYTES)?;
            if registry_name(sender).as_deref() != Some(name.as_str()) {
                return Err(Refusal::NotItsOwn {
                    kind,
                    named: name.chars().take(MAX_ADDRESS_BYTES).collect(),
                });
            }
        }
        Message::Ping(ping) => {
            bounded("the address", ping.address.as_str(), MAX_ADDRESS_BYTES)?;
            own(kind, sender, &ping.replica.name)?;
        }
        Message::PrepareOk { replica, .. }
        | Message::StartViewOk { replica, .. }
        | Message::SnapshotAck { replica, .. } => {
            own(kind, sender, &replica.name)?;
        }
        Message::StartView { view, .. } => {
            own(kind, sender, &view.primary.id.name)?;
            bounded_members(view)?;
        }
        Message::Learn { primary, .. } => own(kind, sender, &primary.name)?,
        Message::ViewInfo {
            view: Some(view), ..
        } => bounded_members(view)?,
        Message::AddLearner { learner, .. } => {
            bounded(
                "the learner's address",
                learner.address.as_str(),
                MAX_ADDRESS_BYTES,
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// The refusals of one node: how many, and a log line for the first refusal of each sender.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    total: u64,
    logged: BTreeSet<Identity>,
}

impl Refusals {
    /// Records that `node` refused a `kind` message from `sender` at `from`, for `why`.
    /// Logs at info the first refusal of each sender (up to [`MAX_LOGGED_SENDERS`] senders),
    /// at debug the others.
    pub fn refuse(
        &mut self,
        node: &str,
        sender: &Identity,
        from: &Address,
        kind: &str,
        why: &Refusal,
    ) {
        self.total += 1;
        let first = !self.logged.contains(sender) && self.logged.len() < MAX_LOGGED_SENDERS;
        if first {
            self.logged.insert(sender.clone());
            tracing::info!(node = %node, sender = %sender, from = %from, kind, reason = %why, "refused a message (further refusals of this sender are logged at debug)");
        } else {
            tracing::debug!(node = %node, sender = %sender, from = %from, kind, reason = %why, "refused a message");
        }
    }

    /// How many messages were refused so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Member, OpNumber, ReplicaId, View};
    use crate::protocol::messages::Ping;
    use crate::protocol::messages::ReplicaRole;
    use crate::sim::KeyedLists;

    type M = Message<KeyedLists>;

    fn replica(name: &str) -> Identity {
        Identity::new(NodeRole::Replica, name)
    }

    fn ping(name: &str) -> M {
        Message::Ping(Ping {
            replica: ReplicaId::new(name, 1),
            address: Address::new("127.0.0.1:7001"),
            view: None,
            role: ReplicaRole::Idle,
            applied: OpNumber(0),
            number: 0,
            recovered: None,
        })
    }

    #[test]
    fn a_client_may_not_send_replica_messages() {
        let client = Identity::new(NodeRole::Client, "mallory");
        let prepare: M = Message::Prepare {
            view: ViewNumber(1),
            entries: Vec::new(),
        };
        assert_eq!(
            check(&client, &prepare),
            Err(Refusal::Role {
                kind: "Prepare",
                role: NodeRole::Client
            })
        );
        assert!(matches!(
            check(&client, &ping("r1")),
            Err(Refusal::Role { .. })
        ));
    }

    #[test]
    fn a_replica_may_ping_only_as_itself() {
        assert_eq!(check(&replica("r1"), &ping("r1")), Ok(()));
        assert!(matches!(
            check(&replica("r2"), &ping("r1")),
            Err(Refusal::NotItsOwn { .. })
        ));
    }

    #[test]
    fn registrations_are_confined_to_the_senders_own_name() {
        let frontend = Identity::new(NodeRole::Frontend, "frontend");
        let register = |name: &str, address: &str| -> M {
            Message::Register {
                name: name.into(),
                address: Address::new(address),
            }
        };
        assert_eq!(
            check(&frontend, &register(FRONTEND_NAME, "127.0.0.1:1")),
            Ok(())
        );
        let mine = replica_registry_name("r1");
        assert_eq!(
            check(&replica("r1"), &register(&mine, "127.0.0.1:1")),
            Ok(())
        );
        assert!(matches!(
            check(&replica("r1"), &register(FRONTEND_NAME, "127.0.0.1:1")),
            Err(Refusal::NotItsOwn { .. })
        ));
        let huge = "x".repeat(MAX_ADDRESS_BYTES + 1);
        assert!(matches!(
            check(&replica("r1"), &register(&mine, &huge)),
            Err(Refusal::TooLong { .. })
        ));
        let client = Identity::new(NodeRole::Client, "c");
        assert!(matches!(
            check(&client, &register(&mine, "127.0.0.1:1")),
            Err(Refusal::Role { .. })
        ));
    }

    #[test]
    fn a_start_view_must_name_its_sender_as_primary() {
        let view = View {
            number: ViewNumber(3),
            primary: Member {
                id: ReplicaId::new("r1", 1),
                address: Address::new("127.0.0.1:7001"),
            },
            backups: Vec::new(),
        };
        let start: M = Message::StartView {
            view,
            op: OpNumber(0),
            chunk: crate::protocol::messages::TransferChunk::Suffix {
                since: ViewNumber(2),
                entries: Vec::new(),
            },
        };
        assert_eq!(check(&replica("r1"), &start), Ok(()));
        assert!(matches!(
            check(&replica("r2"), &start),
            Err(Refusal::NotItsOwn { .. })
        ));
    }

    #[test]
    fn refusals_are_counted() {
        let mut refusals = Refusals::default();
        let mallory = Identity::new(NodeRole::Client, "mallory");
        let why = Refusal::Role {
            kind: "Prepare",
            role: NodeRole::Client,
        };
        for _ in 0..3 {
            refusals.refuse("r1", &mallory, &Address::new("x"), "Prepare", &why);
        }
        assert_eq!(refusals.total(), 3);
    }
}
