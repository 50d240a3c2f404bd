//! # just-hungry-transport-mem
//!
//! An in-process network of tokio channels implementing the core's
//! [`Transport`](just_hungry_core::transport::Transport): for the cluster demo, for embedding
//! several nodes in one program, and for tests.
//!
//! A [`MemNetwork`] is a switch: [`MemNetwork::endpoint`] attaches a node under a name (its
//! address), and a payload sent to a name is delivered to that node's queue, in order. Sending
//! to a name with no endpoint (never attached, or crashed with [`MemNetwork::crash`] or by
//! dropping its endpoint) reports [`TransportEvent::Unreachable`] to the sender, as a refused
//! TCP connection would.
//!
//! Every queue is bounded ([`QUEUE_CAPACITY`]): when a receiver falls that far behind, further
//! payloads to it are dropped, as a congested network drops packets, and the protocol
//! retransmits. Fault injection (drop, delay, duplicate, reorder, partition) hooks into
//! [`MemNetwork::deliver`], the one place every payload passes.

#![deny(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use just_hungry_core::ids::Address;
use just_hungry_core::transport::{Transport, TransportEvent};
use tokio::sync::mpsc;

/// The most payloads waiting in one endpoint's queue; beyond it payloads are dropped.
pub const QUEUE_CAPACITY: usize = 65_536;

struct Port {
    generation: u64,
    sender: mpsc::Sender<TransportEvent>,
}

#[derive(Default)]
struct Switch {
    ports: HashMap<Address, Port>,
    next_generation: u64,
}

/// An in-process network. Clones share the same network.
#[derive(Clone, Default)]
pub struct MemNetwork {
    switch: Arc<Mutex<Switch>>,
}

impl MemNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    fn switch(&self) -> MutexGuard<'_, Switch> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.switch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Attaches a node at `address`, replacing (and so disconnecting) any endpoint there.
    pub fn endpoint(&self, address: impl Into<Address>) -> MemEndpoint {
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
            generation,
            network: self.clone(),
            own: sender,
            receiver,
        }
    }

    /// Detaches the node at `address`: payloads to it are reported unreachable from now on.
    pub fn crash(&self, address: &Address) {
        self.switch().ports.remove(address);
    }

    /// Whether a node is attached at `address`.
    pub fn is_attached(&self, address: &Address) -> bool {
        self.switch().ports.contains_key(address)
    }

    /// Delivers one payload from `from` to `to`; `false` if nobody is attached at `to`.
    pub fn deliver(&self, from: &Address, to: &Address, payload: Vec<u8>) -> bool {
        let sender = match self.switch().ports.get(to) {
            Some(port) => port.sender.clone(),
            None => return false,
        };
        let event = TransportEvent::Message {
            from: from.clone(),
            payload,
        };
        match sender.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(from = %from, to = %to, "queue full: payload dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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
        if !self.network.deliver(&self.address, to, payload) {
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
        let mut a = net.endpoint("a");
        let mut b = net.endpoint("b");
        a.send(&Address::new("b"), vec![1]);
        a.send(&Address::new("b"), vec![2]);
        for expected in [1u8, 2] {
            match b.recv().await {
                Some(TransportEvent::Message { from, payload }) => {
                    assert_eq!(from, Address::new("a"));
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

    #[tokio::test]
    async fn a_new_endpoint_replaces_the_old_and_the_old_drop_does_not_detach_it() {
        let net = MemNetwork::new();
        let old = net.endpoint("r");
        let _new = net.endpoint("r");
        drop(old);
        assert!(net.is_attached(&Address::new("r")));
    }
}
