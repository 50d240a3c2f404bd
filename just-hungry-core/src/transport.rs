//! The transport the runtime is generic over: how encoded messages reach other nodes.
//!
//! A transport moves opaque payloads (one encoded [`Message`](crate::protocol::messages::Message)
//! each) between [`Address`]es. It never blocks the node: [`Transport::send`] queues and
//! returns, and a delivery that fails (connection refused or reset, unknown peer) comes back
//! later as [`TransportEvent::Unreachable`], which the runtime feeds to the protocol as
//! evidence of failure (docs/PROTOCOL.md, "Failure detection").
//!
//! The trait uses native `async fn` in traits (Rust 1.75+), not `async-trait`: the runtime is
//! generic over the transport, so no boxing is needed on the hot path. It is therefore not
//! object safe; wrap it in an enum if one program must choose a transport at run time.

use std::future::Future;

use crate::ids::{Address, Identity};

/// Something that happened on the transport.
#[derive(Debug)]
pub enum TransportEvent {
    /// A payload arrived from `from` (an address a reply can be sent to), sent by `sender`.
    Message {
        /// Where the sender is reached: replies go there.
        from: Address,
        /// Who sent it, as the transport established it (see [`Identity`]): the protocol
        /// decides from this what the sender may do.
        sender: Identity,
        /// One encoded message.
        payload: Vec<u8>,
    },
    /// A payload sent to `to` could not be delivered.
    Unreachable {
        /// The peer.
        to: Address,
    },
}

/// One node's endpoint on a network.
///
/// # To ensure correctness
///
/// - Payloads sent from one endpoint to another arrive in order or not at all (a transport
///   may drop, as networks do; the protocol retransmits). Duplicates are tolerated. Payloads
///   sent with [`Transport::send_priority`] are ordered among themselves only.
/// - `send` never blocks and never panics, whatever the address.
/// - `recv` returns `None` only once the endpoint is closed for good.
/// - Every received message carries the sender's [`Identity`] as established by the
///   transport itself (a certificate, the endpoint it came from), never one the payload or the
///   peer merely claims, unless the transport documents that it cannot authenticate (the TCP
///   transport's plaintext mode).
pub trait Transport: Send + 'static {
    /// The address other nodes reach this endpoint at.
    fn local_address(&self) -> Address;

    /// Queues `payload` for `to`. Failure is reported later by [`Transport::recv`].
    fn send(&self, to: &Address, payload: Vec<u8>);

    /// Queues `payload` for `to` ahead of what [`Transport::send`] queued: a liveness signal
    /// (a ping, its answer) that must not wait behind bulk traffic (issue 13). A transport
    /// with a priority path delivers it before the ordinary payloads waiting at `to`; the
    /// default sends it like any other. Priority payloads keep their order among themselves,
    /// not with respect to ordinary ones (the protocol tolerates reordering).
    fn send_priority(&self, to: &Address, payload: Vec<u8>) {
        self.send(to, payload);
    }

    /// The longest payload [`Transport::send`] carries; a longer one is dropped. The runtime
    /// never hands over a longer one: it answers a request whose answer would be longer with
    /// [`crate::protocol::messages::ServiceError::ReplyTooLarge`] instead. Unbounded unless the
    /// transport says otherwise.
    fn max_payload_bytes(&self) -> usize {
        usize::MAX
    }

    /// The next event, waiting for one.
    fn recv(&mut self) -> impl Future<Output = Option<TransportEvent>> + Send;

    /// The next event if one is ready now, without waiting (lets the runtime batch).
    fn try_recv(&mut self) -> Option<TransportEvent>;
}
