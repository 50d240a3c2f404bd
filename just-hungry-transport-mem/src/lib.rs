//! # just-hungry-transport-mem
//!
//! An in-process network of tokio channels implementing the core's
//! [`Transport`]: for the cluster demo, for embedding
//! several nodes in one program, and for tests.
//!
//! A [`MemNetwork`] is a switch: [`MemNetwork::endpoint`] attaches a node under a name (its
//! address) with its [`Identity`], and a payload sent to a name is delivered to that node's
//! queue, in order, carrying the sender endpoint's identity: in one process the identity an
//! endpoint was attached with is as authentic as a certificate over TCP. Sending
//! to a name with no endpoint (never attached, or crashed with [`MemNetwork::crash`] or by
//! dropping its endpoint) reports [`TransportEvent::Unreachable`] to the sender, as a refused
//! TCP connection would.
//!
//! Every queue is bounded ([`QUEUE_CAPACITY`]): when a receiver falls that far behind, further
//! payloads to it are dropped, as a congested network drops packets, and the protocol
//! retransmits.
//!
//! ## Fault injection
//!
//! Every payload passes through [`MemNetwork::deliver`], which applies the network's
//! [`Faults`]: drop, duplicate, and delay by a random bounded time (which reorders), drawn from
//! a seeded generator ([`MemNetwork::with_seed`]), and partitions ([`MemNetwork::partition`],
//! [`MemNetwork::block`], one-way too; [`MemNetwork::heal`]). A partitioned or dropped payload
//! vanishes silently, as on a real network; only a payload to a crashed node is reported
//! unreachable. Delays use tokio's clock, so under a paused clock (`start_paused`) a run is a
//! function of its seed.

#![deny(missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use just_hungry_core::ids::{Address, Identity, NodeRole};
use just_hungry_core::rng::SeededRng;
use just_hungry_core::transport::{Transport, TransportEvent};
use tokio::sync::mpsc;

/// The most payloads waiting in one endpoint's queue; beyond it payloads are dropped.
pub const QUEUE_CAPACITY: usize = 65_536;

struct Port {
    generation: u64,
    sender: mpsc::Sender<TransportEvent>,
}

/// What the network does to payloads, on every link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a payload is lost.
    pub drop: f64,
    /// Probability that a payload is delivered twice.
    pub duplicate: f64,
    /// Each payload is delayed by a uniform random time up to this (zero: no delay, and so no
    /// reordering).
    pub max_delay: Duration,
}

impl Faults {
    /// A network that delivers everything at once, in order.
    pub const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        max_delay: Duration::ZERO,
    };
}

/// A uniform number in `[0, 1)` from `rng`.
fn unit(rng: &mut SeededRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Default)]
struct Switch {
    ports: HashMap<Address, Port>,
    next_generation: u64,
    faults: Faults,
    blocked: BTreeSet<(Address, Address)>,
    rng: Option<SeededRng>,
}

/// What [`Switch::route`] decided for one payload.
enum Route {
    /// Nobody is attached at the destination.
    Unreachable,
    /// Lost (dropped or partitioned).
    Lost,
    /// Deliver `copies` times, each after its delay.
    Deliver {
        sender: mpsc::Sender<TransportEvent>,
        delays: Vec<Duration>,
    },
}

impl Switch {
    fn route(&mut self, from: &Address, to: &Address) -> Route {
        let Some(port) = self.ports.get(to) else {
            return Route::Unreachable;
        };
        let sender = port.sender.clone();
        if self.blocked.contains(&(from.clone(), to.clone())) {
            return Route::Lost;
        }
        let faults = self.faults;
        if faults == Faults::NONE {
            return Route::Deliver {
                sender,
                delays: vec![Duration::ZERO],
            };
        }
        let rng = self.rng.get_or_insert_with(|| SeededRng::new(0));
        if unit(rng) < faults.drop {
            return Route::Lost;
        }
        let copies = if unit(rng) < faults.duplicate { 2 } else { 1 };
        let delays = (0..copies)
            .map(|_| faults.max_delay.mul_f64(unit(rng)))
            .collect();
        Route::Deliver { sender, delays }
    }
}

/// An in-process network. Clones share the same network.
#[derive(Clone, Default)]
pub struct MemNetwork {
    switch: Arc<Mutex<Switch>>,
}

impl MemNetwork {
    /// An empty network without faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty network whose faults are drawn from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        let network = Self::default();
        network.switch().rng = Some(SeededRng::new(seed));
        network
    }

    /// Sets the faults applied to every payload from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.switch().faults = faults;
    }

    /// Cuts every link between the nodes of `a` and those of `b`, both ways.
    pub fn partition(&self, a: &[Address], b: &[Address]) {
        for x in a {
            for y in b {
                self.block(x, y);
                self.block(y, x);
            }
        }
    }

    /// Cuts the link from `from` to `to` only (a one-way partition).
    pub fn block(&self, from: &Address, to: &Address) {
        self.switch().blocked.insert((from.clone(), to.clone()));
    }

    /// Restores every link, keeping the faults.
    pub fn heal_partitions(&self) {
        self.switch().blocked.clear();
    }

    /// Restores every link and removes every fault.
    pub fn heal(&self) {
        let mut switch = self.switch();
        switch.blocked.clear();
        switch.faults = Faults::NONE;
    }

    fn switch(&self) -> MutexGuard<'_, Switch> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.switch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches a node at `address` with `identity`, replacing (and so disconnecting) any
    /// endpoint there. Every payload it sends is delivered with `identity` as its sender.
    pub fn endpoint(&self, address: impl Into<Address>, identity: Identity) -> MemEndpoint {
        let address = address.into();
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let mut switch = self.switch();
        let generation = switch.next_generation;
        switch.next_generation += 1;
        switch.ports.insert(
            address.clone(),
            Port {
                generation,
                sender: sender.clone(),
            },
        );
        MemEndpoint {
            address,
            identity,
            generation,
            network: self.clone(),
            own: sender,
            receiver,
        }
    }

    /// As [`MemNetwork::endpoint`], for a client named after its address (what tests use).
    pub fn client_endpoint(&self, address: impl Into<Address>) -> MemEndpoint {
        let address = address.into();
        let identity = Identity::new(NodeRole::Client, address.as_str());
        self.endpoint(address, identity)
    }

    /// Detaches the node at `address`: payloads to it are reported unreachable from now on.
    pub fn crash(&self, address: &Address) {
        self.switch().ports.remove(address);
    }

    /// Whether a node is attached at `address`.
    pub fn is_attached(&self, address: &Address) -> bool {
        self.switch().ports.contains_key(address)
    }

    /// Delivers one payload from `from`, sent by `sender`, to `to` through the network's
    /// faults; `false` if nobody is attached at `to`.
    pub fn deliver(
        &self,
        from: &Address,
        sender: &Identity,
        to: &Address,
        payload: Vec<u8>,
    ) -> bool {
        let route = self.switch().route(from, to);
        let (queue, delays) = match route {
            Route::Unreachable => return false,
            Route::Lost => return true,
            Route::Deliver { sender, delays } => (sender, delays),
        };
        for delay in delays {
            let event = TransportEvent::Message {
                from: from.clone(),
                sender: sender.clone(),
                payload: payload.clone(),
            };
            if delay.is_zero() {
                if let Err(mpsc::error::TrySendError::Closed(_)) = queue.try_send(event) {
                    return false;
                }
            } else {
                let queue = queue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = queue.try_send(event);
                });
            }
        }
        true
    }

    fn detach(&self, address: &Address, generation: u64) {
        let mut switch = self.switch();
        if switch
            .ports
            .get(address)
            .is_some_and(|p| p.generation == generation)
        {
            switch.ports.remove(address);
        }
    }
}

/// One node's endpoint on a [`MemNetwork`]. Dropping it detaches the node.
pub struct MemEndpoint {
    address: Address,
    identity: Identity,
    generation: u64,
    network: MemNetwork,
    own: mpsc::Sender<TransportEvent>,
    receiver: mpsc::Receiver<TransportEvent>,
}

impl Transport for MemEndpoint {
    fn local_address(&self) -> Address {
        self.address.clone()
    }

    fn send(&self, to: &Address, payload: Vec<u8>) {
        if !self
            .network
            .deliver(&self.address, &self.identity, to, payload)
        {
            let _ = self
                .own
                .try_send(TransportEvent::Unreachable { to: to.clone() });
        }
    }

    async fn recv(&mut self) -> Option<TransportEvent> {
        self.receiver.recv().await
    }

    fn try_recv(&mut self) -> Option<TransportEvent> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for MemEndpoint {
    fn drop(&mut self) {
        self.network.detach(&self.address, self.generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_reports_unreachable() {
        let net = MemNetwork::new();
        let mut a = net.client_endpoint("a");
        let mut b = net.client_endpoint("b");
        a.send(&Address::new("b"), vec![1]);
        a.send(&Address::new("b"), vec![2]);
        for expected in [1u8, 2] {
            match b.recv().await {
                Some(TransportEvent::Message {
                    from,
                    sender,
                    payload,
                }) => {
                    assert_eq!(from, Address::new("a"));
                    assert_eq!(sender, Identity::new(NodeRole::Client, "a"));
                    assert_eq!(payload, vec![expected]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(b);
        a.send(&Address::new("b"), vec![3]);
        assert!(matches!(
            a.recv().await,
            Some(TransportEvent::Unreachable { to }) if to == Address::new("b")
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_are_silent_and_heal() {
        let net = MemNetwork::with_seed(7);
        let a = net.client_endpoint("a");
        let mut b = net.client_endpoint("b");
        net.partition(&[Address::new("a")], &[Address::new("b")]);
        a.send(&Address::new("b"), vec![1]);
        assert!(b.try_recv().is_none(), "a partitioned payload vanishes");
        net.heal();
        a.send(&Address::new("b"), vec![2]);
        assert!(
            matches!(b.recv().await, Some(TransportEvent::Message { payload, .. }) if payload == vec![2])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn faults_drop_duplicate_and_delay_as_configured() {
        let net = MemNetwork::with_seed(42);
        let a = net.client_endpoint("a");
        let mut b = net.client_endpoint("b");
        net.set_faults(Faults {
            drop: 0.2,
            duplicate: 0.2,
            max_delay: Duration::from_millis(50),
        });
        for i in 0..1000u32 {
            a.send(&Address::new("b"), i.to_le_bytes().to_vec());
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut received = Vec::new();
        while let Some(TransportEvent::Message { payload, .. }) = b.try_recv() {
            received.push(u32::from_le_bytes(payload.try_into().unwrap()));
        }
        let distinct: BTreeSet<u32> = received.iter().copied().collect();
        // About 80% arrive, about 20% of those twice, and delays reorder them.
        assert!((700..=900).contains(&distinct.len()), "{}", distinct.len());
        assert!(received.len() > distinct.len() + 100);
        assert!(received.windows(2).any(|w| w[0] > w[1]), "delays reorder");
    }

    #[tokio::test]
    async fn a_new_endpoint_replaces_the_old_and_the_old_drop_does_not_detach_it() {
        let net = MemNetwork::new();
        let old = net.client_endpoint("r");
        let _new = net.client_endpoint("r");
        drop(old);
        assert!(net.is_attached(&Address::new("r")));
    }
}
