//! The adversary: a peer on the simulated network that forges well-formed protocol messages
//! ([`Action::Forge`](crate::sim::Action::Forge)) under the identities it holds, a client
//! certificate ([`ADVERSARY_CLIENT`]) and a replica certificate that is not a member of the
//! cluster ([`ADVERSARY_REPLICA`]).
//!
//! It knows everything the simulator knows (the views, the replicas' ids, the clients' ids)
//! and uses it to make its forgeries as plausible as they can be: a `Prepare` for the view
//! its victim is in, at the op the victim expects next; a `Ping` for a real replica with a new
//! incarnation; a `StartView` of a newer view naming real backups; a registration of the
//! front-end's name. What it cannot do is send under an identity it does not hold: that is
//! the network's (the TLS handshake's) guarantee. Every invariant of docs/PROTOCOL.md must hold
//! whatever it sends.
//!
//! It never pings the front-end as itself, so it never joins a view: a replica certificate
//! that the front-end puts in a view is trusted with the data (docs/SECURITY.md).

use crate::ids::{
    Address, ClientId, Identity, Member, NodeRole, OpNumber, ReplicaId, RequestId, View, ViewNumber,
};
use crate::protocol::client_table::ClientTableLimits;
use crate::protocol::messages::{
    ClientRequest, ClientResponse, Entry, Message, Operation, Outcome, Ping, Recovery, ReplicaRole,
    TransferChunk,
};
use crate::protocol::replicated_state::ReplicatedState;
use crate::protocol::{FRONTEND_NAME, replica_registry_name};
use crate::sim::{FRONTEND_ADDRESS, NodeRef, REGISTRY_ADDRESS, Sim, SimService, Violation};

/// The adversary's address on the simulated network.
pub const ADVERSARY_ADDRESS: &str = "mallory";

/// The name in the adversary's client certificate.
pub const ADVERSARY_CLIENT: &str = "mallory";

/// The name in the adversary's replica certificate (never a member of a view).
pub const ADVERSARY_REPLICA: &str = "mallory-replica";

/// How many kinds of forgery [`Action::Forge`](crate::sim::Action::Forge) picks from.
pub const FORGERY_KINDS: u8 = 16;

impl<S: SimService> Sim<S> {
    fn adversary_member(&self) -> Member {
        Member {
            id: ReplicaId::new(ADVERSARY_REPLICA, 0xbad),
            address: Address::new(ADVERSARY_ADDRESS),
        }
    }

    /// The forged state: the initial state, as if it were a newer one.
    fn forged_snapshot(&self, chunk: u32) -> TransferChunk<S::Command> {
        let state = ReplicatedState::new(S::initial(), ClientTableLimits::default());
        let bytes = state.snapshot().unwrap_or_default();
        TransferChunk::Snapshot {
            index: chunk % 2,
            last: true,
            bytes,
        }
    }

    fn forged_entry(&self, op: OpNumber) -> Entry<S::Command> {
        Entry {
            op,
            request: RequestId {
                client: ClientId(0xbad_bad),
                seq: op.0,
            },
            time: self.now,
            owner: ADVERSARY_CLIENT.into(),
            command: S::forged_write(),
        }
    }

    /// Sends forgery number `what` (modulo [`FORGERY_KINDS`]) aimed at node `target`, with
    /// `tweak` choosing its identity (even: the client certificate; odd: the replica one) and
    /// its details.
    pub fn forge(&mut self, what: u8, target: u8, tweak: u8) -> Result<(), Violation> {
        let sender = if tweak & 1 == 0 {
            Identity::new(NodeRole::Client, ADVERSARY_CLIENT)
        } else {
            Identity::new(NodeRole::Replica, ADVERSARY_REPLICA)
        };
        let from = Address::new(ADVERSARY_ADDRESS);
        let slot = usize::from(target) % self.replicas.len();
        let victim_address = self.replicas[slot].address.clone();
        let victim = self.replicas[slot].node.as_ref();
        let victim_id = victim
            .map(|r| r.id().clone())
            .unwrap_or_else(|| ReplicaId::new(self.replicas[slot].name.clone(), 1));
        let victim_view = victim.map_or(ViewNumber(0), |r| r.view_number());
        let victim_applied = victim.map_or(OpNumber(0), |r| r.applied());
        let observed = self.frontend();
        let current = observed.current.clone();
        let number = current.as_ref().map_or(ViewNumber(1), |v| v.number);
        let primary = current.as_ref().map(|v| v.primary.clone());
        let primary_address = primary
            .as_ref()
            .map_or(victim_address.clone(), |p| p.address.clone());
        // The adversary names itself or a real node as the one in charge, by `tweak`.
        let named_primary = if tweak & 2 == 0 {
            self.adversary_member()
        } else {
            primary.clone().unwrap_or_else(|| self.adversary_member())
        };
        let frontend = Address::new(FRONTEND_ADDRESS);
        // Whom a forged acknowledgement names: the victim, or the adversary's replica.
        let acknowledger = if tweak & 2 == 0 {
            victim_id.clone()
        } else {
            self.adversary_member().id
        };
        let (to, message): (Address, Message<S>) = match what % FORGERY_KINDS {
            0 => (
                victim_address,
                Message::Prepare {
                    view: victim_view,
                    entries: vec![self.forged_entry(victim_applied.next())],
                },
            ),
            1 => (
                primary_address,
                Message::PrepareOk {
                    view: number,
                    replica: acknowledger,
                    op: OpNumber(1 << 40),
                },
            ),
            2 => {
                let replica = if tweak & 2 == 0 {
                    ReplicaId::new(victim_id.name, u64::from(tweak) << 8 | 3)
                } else {
                    ReplicaId::new(format!("ghost-{tweak}"), 5)
                };
                let forged_view = View {
                    number: number.next(),
                    primary: Member {
                        id: replica.clone(),
                        address: from.clone(),
                    },
                    backups: Vec::new(),
                };
                (
                    frontend,
                    Message::Ping(Ping {
                        replica,
                        address: from.clone(),
                        view: Some(forged_view),
                        role: ReplicaRole::Primary,
                        applied: OpNumber(1 << 40),
                        number: u64::from(tweak),
                        recovered: tweak.is_multiple_of(2).then(|| Recovery {
                            lineage: vec![u64::from(tweak)],
                            synced: true,
                        }),
                    }),
                )
            }
            3 => {
                let view = View {
                    number: ViewNumber(number.0 + 1 + u64::from(tweak % 3)),
                    primary: named_primary,
                    backups: vec![Member {
                        id: victim_id,
                        address: victim_address.clone(),
                    }],
                };
                let chunk = if tweak & 4 == 0 {
                    self.forged_snapshot(u32::from(tweak))
                } else {
                    TransferChunk::Suffix {
                        since: victim_view,
                        entries: vec![self.forged_entry(victim_applied.next())],
                    }
                };
                let op = if tweak & 4 == 0 {
                    OpNumber(0)
                } else {
                    victim_applied.next()
                };
                (victim_address, Message::StartView { view, op, chunk })
            }
            4 => (
                victim_address,
                Message::Learn {
                    view: victim_view,
                    learner: victim_id,
                    primary: named_primary.id,
                    op: OpNumber(0),
                    chunk: self.forged_snapshot(u32::from(tweak)),
                },
            ),
            5 => (
                victim_address.clone(),
                Message::ViewInfo {
                    view: Some(View {
                        number: number.next(),
                        primary: Member {
                            id: victim_id,
                            address: victim_address,
                        },
                        backups: Vec::new(),
                    }),
                    answers: Some(u64::from(tweak)),
                },
            ),
            6 => (
                primary_address,
                Message::Forward {
                    view: number,
                    request: ClientRequest {
                        id: RequestId {
                            client: ClientId(0xbad_bad),
                            seq: u64::from(tweak),
                        },
                        operation: Operation::Write(S::forged_write()),
                    },
                    owner: ADVERSARY_CLIENT.into(),
                },
            ),
            7 => (
                primary_address,
                Message::AddLearner {
                    view: number,
                    learner: self.adversary_member(),
                },
            ),
            8 => (frontend, Message::ViewStarted { view: number }),
            9 => (
                frontend,
                Message::CaughtUp {
                    view: number,
                    learners: vec![self.adversary_member().id],
                },
            ),
            10 => (
                frontend,
                Message::SuspectBackup {
                    view: number,
                    backup: victim_id,
                },
            ),
            11 => (
                Address::new(REGISTRY_ADDRESS),
                Message::Register {
                    name: if tweak & 2 == 0 {
                        FRONTEND_NAME.to_owned()
                    } else {
                        replica_registry_name(&victim_id.name)
                    },
                    address: from.clone(),
                },
            ),
            12 => {
                // A write in the name of a client whose id another identity already owns (an id
                // nobody owns yet would simply become the adversary's own).
                // Only ids the primary's table binds: client ids are secret (they travel inside
                // TLS), so a real adversary could at best replay one it somehow learned after
                // its owner wrote with it.
                let owners: Vec<ClientId> = self
                    .replicas
                    .iter()
                    .filter_map(|s| s.node.as_ref())
                    .filter(|r| r.role() == ReplicaRole::Primary)
                    .flat_map(|r| r.state().clients().records().keys().copied())
                    .filter(|id| id.0 != 0xbad_bad)
                    .collect();
                let owned = owners
                    .get(usize::from(target) % owners.len().max(1))
                    .copied();
                let Some(client) = owned else {
                    return Ok(());
                };
                (
                    frontend,
                    Message::Request(ClientRequest {
                        id: RequestId {
                            client,
                            seq: 1_000_000 + u64::from(tweak),
                        },
                        operation: Operation::Write(S::forged_write()),
                    }),
                )
            }
            13 => {
                // A forged answer to a client's request in flight, to the client itself or to
                // the front-end as if from the primary.
                let c = usize::from(target) % self.clients.len();
                let Some(op) = self.clients[c].current.clone() else {
                    return Ok(());
                };
                let to = if tweak & 2 == 0 {
                    self.clients[c].address.clone()
                } else {
                    frontend
                };
                (
                    to,
                    Message::Response(ClientResponse {
                        id: op.id,
                        outcome: Outcome::Read(forged_answer::<S>()),
                    }),
                )
            }
            14 => {
                let c = usize::from(target) % self.clients.len();
                let to = if tweak & 2 == 0 {
                    self.clients[c].address.clone()
                } else {
                    victim_address
                };
                (
                    to,
                    Message::LookupReply {
                        name: FRONTEND_NAME.to_owned(),
                        address: Some(from.clone()),
                    },
                )
            }
            _ => (
                primary_address,
                Message::StartViewOk {
                    view: number,
                    replica: acknowledger,
                    op: OpNumber(1 << 40),
                },
            ),
        };
        self.stats.forged += 1;
        self.send_as(sender, &from, to, &message)
    }

    /// How many messages the adversary received (answers to its forgeries).
    pub fn adversary_received(&self) -> u64 {
        self.adversary_received
    }

    /// How many messages the incarnation of `node` running now has refused
    /// ([`crate::protocol::trust`]); 0 for a crashed node, a client or the adversary.
    pub(crate) fn refused_by(&self, node: NodeRef) -> u64 {
        use crate::protocol::Node;
        match node {
            NodeRef::Registry => self.registry.refused(),
            NodeRef::Frontend => self.frontend.as_ref().map_or(0, |fe| fe.refused()),
            NodeRef::Replica(i) => self.replicas[i].node.as_ref().map_or(0, |r| r.refused()),
            NodeRef::Client(_) | NodeRef::Adversary => 0,
        }
    }
}

/// A read's answer the adversary forges: a true one, of the initial state.
fn forged_answer<S: SimService>() -> S::QueryReply {
    let key = S::KEYS[0].canonical;
    S::initial().query(&S::read(key, 0, crate::sim::SIM_READ_PAGE_LIMIT))
}
