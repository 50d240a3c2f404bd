//! The registry's role on etcd: each name is a key attached to its owner's lease, written and
//! refreshed by the owner itself, and gone when the owner stops refreshing it (autoclean is
//! lease expiry). No registry process: [`EtcdNames`] wraps a node's transport and answers
//! the registry messages its node sends (`Register`, `Lookup`) from etcd, so the sans-IO
//! replica, front-end and client are unchanged.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use just_hungry_core::codec;
use just_hungry_core::ids::{Address, Identity, NodeRole};
use just_hungry_core::protocol::messages::Message;
use just_hungry_core::protocol::registry::MAX_NAME_BYTES;
use just_hungry_core::state_machine::StateMachine;
use just_hungry_core::transport::{Transport, TransportEvent};
use tokio::sync::mpsc;

use super::client::{EtcdClient, EtcdError};

/// The prefix of every name's key: name `n` is the key `/just-hungry/names/n`.
pub const NAMES_PREFIX: &str = "/just-hungry/names/";

/// The address a node configured for etcd names sends its registry messages to: never a
/// real node; [`EtcdNames`] answers for it.
pub const ETCD_REGISTRY_ADDRESS: &str = "etcd";

/// The key that holds `name`.
pub fn name_key(name: &str) -> String {
    format!("{NAMES_PREFIX}{name}")
}

/// The lease and names of one process (shared by the clones of its wrapper).
#[derive(Debug, Default)]
struct Owned {
    /// The lease every name of this process is attached to, once granted.
    lease: Option<i64>,
    /// What was last written for each name, and on which lease.
    written: BTreeMap<String, (Address, i64)>,
}

/// A node's [`Transport`], with the registry's messages answered from etcd.
///
/// Messages sent to [`EtcdNames::registry_address`] do not go on the wire:
/// - `Register { name, address }` writes the key of `name` attached to this process's lease
///   (granted for the lease time given, at least etcd's minimum), or only refreshes the
///   lease when it already wrote that; then `Registered` comes back. A name left to an
///   election ([`EtcdNames::leave_to_election`]) is acknowledged without a write: the
///   election holds its key.
/// - `Lookup { name }` reads the key (a linearizable read), and `LookupReply` comes back.
///
/// While etcd cannot answer, the registry is reported unreachable
/// ([`TransportEvent::Unreachable`]), as a registry process that is down would be: the node
/// retries on its own schedule, and a client that never reached it fails at once
/// (`ClientError::RegistryUnreachable`). The answers carry the identity of a registry
/// (`registry/etcd`), which the trust rules require of them.
pub struct EtcdNames<S, T> {
    inner: T,
    client: EtcdClient,
    registry: Address,
    lease_time: Duration,
    elected: Vec<String>,
    owned: Arc<Mutex<Owned>>,
    answers: mpsc::UnboundedSender<TransportEvent>,
    answered: mpsc::UnboundedReceiver<TransportEvent>,
    _service: PhantomData<fn() -> S>,
}

impl<S: StateMachine, T: Transport> EtcdNames<S, T> {
    /// `inner` with its registry messages answered by etcd through `client`; names written
    /// live for `lease_time` (the registry's autoclean) after their owner's last refresh.
    pub fn new(inner: T, client: EtcdClient, lease_time: Duration) -> Self {
        let (answers, answered) = mpsc::unbounded_channel();
        EtcdNames {
            inner,
            client,
            registry: Address::new(ETCD_REGISTRY_ADDRESS),
            lease_time,
            elected: Vec::new(),
            owned: Arc::default(),
            answers,
            answered,
            _service: PhantomData,
        }
    }

    /// `inner` as a client's transport: its lookups answered by etcd. A client registers
    /// nothing, so the lease time (the one a registry-backed client would meet, 20 s) is
    /// never used.
    pub fn for_client(inner: T, client: EtcdClient) -> Self {
        Self::new(inner, client, Duration::from_secs(20))
    }

    /// The address to give the node as its registry.
    pub fn registry_address(&self) -> Address {
        self.registry.clone()
    }

    /// Leaves `name` to an election that holds its key (the active front-end's name): the
    /// node's `Register` of it is acknowledged and writes nothing.
    pub fn leave_to_election(mut self, name: &str) -> Self {
        self.elected.push(name.to_owned());
        self
    }

    fn answer(&self, message: &Message<S>) {
        answer(&self.answers, &self.registry, message);
    }

    fn handle(&self, payload: &[u8]) {
        let message = match codec::decode::<Message<S>>(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "a registry message that does not decode: dropped");
                return;
            }
        };
        match message {
            Message::Register { name, .. } if self.elected.contains(&name) => {
                self.answer(&Message::Registered {
                    name,
                    lease: self.lease_time,
                });
            }
            Message::Register { name, address } => {
                if name.len() > MAX_NAME_BYTES {
                    tracing::warn!(
                        bytes = name.len(),
                        "a name longer than a registry takes: not registered"
                    );
                    return;
                }
                let client = self.client.clone();
                let owned = self.owned.clone();
                let answers = self.answers.clone();
                let registry = self.registry.clone();
                let lease_time = self.lease_time;
                tokio::spawn(async move {
                    match register(&client, &owned, lease_time, &name, &address).await {
                        Ok(()) => answer(
                            &answers,
                            &registry,
                            &Message::<S>::Registered {
                                name,
                                lease: lease_time,
                            },
                        ),
                        Err(e) => {
                            tracing::warn!(name = %name, error = %e, "cannot register the name in etcd; the node will retry");
                            unreachable(&answers, &registry);
                        }
                    }
                });
            }
            Message::Lookup { name } => {
                let client = self.client.clone();
                let answers = self.answers.clone();
                let registry = self.registry.clone();
                tokio::spawn(async move {
                    match client.get(name_key(&name).as_bytes()).await {
                        Ok(entry) => {
                            let address = entry
                                .and_then(|kv| String::from_utf8(kv.value).ok())
                                .map(Address::new);
                            answer(
                                &answers,
                                &registry,
                                &Message::<S>::LookupReply { name, address },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(name = %name, error = %e, "cannot look the name up in etcd; the node will retry");
                            unreachable(&answers, &registry);
                        }
                    }
                });
            }
            other => {
                tracing::debug!(kind = other.kind(), "not a registry message: dropped");
            }
        }
    }
}

/// Reads the active front-end's name once: whether etcd answers this process at all (its
/// endpoints, its CA, its client certificate), so that a program can say so at once, with
/// etcd's error, instead of as a timeout of its first request.
pub async fn check_reachable(client: &EtcdClient) -> Result<(), EtcdError> {
    let key = name_key(just_hungry_core::protocol::FRONTEND_NAME);
    client.get(key.as_bytes()).await.map(|_| ())
}

/// Writes (or refreshes) `name -> address` on this process's lease.
async fn register(
    client: &EtcdClient,
    owned: &Mutex<Owned>,
    lease_time: Duration,
    name: &str,
    address: &Address,
) -> Result<(), EtcdError> {
    let (lease, written) = {
        let owned = owned.lock().unwrap_or_else(|p| p.into_inner());
        (owned.lease, owned.written.get(name).cloned())
    };
    let lease = match lease {
        Some(lease) if written.as_ref() == Some(&(address.clone(), lease)) => {
            // Already written on this lease: refreshing the lease refreshes the name.
            if client.keep_alive(lease).await?.is_some() {
                return Ok(());
            }
            tracing::info!(
                name,
                "the names' lease lapsed (the process was paused?): registering again"
            );
            None
        }
        Some(lease) => client.keep_alive(lease).await?.map(|_| lease),
        None => None,
    };
    let lease = match lease {
        Some(lease) => lease,
        None => {
            let granted = client.grant_lease(lease_time).await?;
            let mut owned = owned.lock().unwrap_or_else(|p| p.into_inner());
            owned.lease = Some(granted.id);
            owned.written.clear();
            granted.id
        }
    };
    client
        .put(
            name_key(name).as_bytes(),
            address.as_str().as_bytes(),
            Some(lease),
        )
        .await?;
    tracing::info!(name, address = %address, lease, "registered in etcd");
    let mut owned = owned.lock().unwrap_or_else(|p| p.into_inner());
    owned
        .written
        .insert(name.to_owned(), (address.clone(), lease));
    Ok(())
}

/// Reports the registry unreachable, as a transport reports a registry process that refuses
/// connections: a client that never reached it says so at once instead of waiting out its
/// deadline (a wrong endpoint, or etcd refusing this process's certificate), a front-end
/// registers again soon.
fn unreachable(answers: &mpsc::UnboundedSender<TransportEvent>, registry: &Address) {
    let _ = answers.send(TransportEvent::Unreachable {
        to: registry.clone(),
    });
}

fn answer<S: StateMachine>(
    answers: &mpsc::UnboundedSender<TransportEvent>,
    registry: &Address,
    message: &Message<S>,
) {
    match codec::encode(message) {
        Ok(payload) => {
            let _ = answers.send(TransportEvent::Message {
                from: registry.clone(),
                sender: Identity::new(NodeRole::Registry, ETCD_REGISTRY_ADDRESS),
                payload,
            });
        }
        Err(e) => tracing::error!(error = %e, "cannot encode a registry answer"),
    }
}

impl<S: StateMachine, T: Transport> Transport for EtcdNames<S, T> {
    fn local_address(&self) -> Address {
        self.inner.local_address()
    }

    fn send(&self, to: &Address, payload: Vec<u8>) {
        if *to == self.registry {
            self.handle(&payload);
        } else {
            self.inner.send(to, payload);
        }
    }

    fn send_priority(&self, to: &Address, payload: Vec<u8>) {
        if *to == self.registry {
            self.handle(&payload);
        } else {
            self.inner.send_priority(to, payload);
        }
    }

    fn max_payload_bytes(&self) -> usize {
        self.inner.max_payload_bytes()
    }

    async fn recv(&mut self) -> Option<TransportEvent> {
        tokio::select! {
            Some(event) = self.answered.recv() => Some(event),
            event = self.inner.recv() => event,
        }
    }

    fn try_recv(&mut self) -> Option<TransportEvent> {
        self.answered
            .try_recv()
            .ok()
            .or_else(|| self.inner.try_recv())
    }
}
