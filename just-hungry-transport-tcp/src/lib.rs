//! # just-hungry-transport-tcp
//!
//! The length-prefixed TCP transport of just-hungry: [`TcpTransport`] implements the core's
//! [`Transport`](just_hungry_core::transport::Transport), so the `runtime::spawn_*` drivers run
//! a registry, front-end or replica on it unchanged, one process per node.
//!
//! ```
//! use just_hungry_core::ids::{Identity, NodeRole};
//! use just_hungry_core::transport::{Transport, TransportEvent};
//! use just_hungry_transport_tcp::{TcpConfig, TcpTransport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! // A server on an ephemeral port of the loopback interface...
//! let listen = "127.0.0.1:0".parse().unwrap();
//! let me = Identity::new(NodeRole::Registry, "registry");
//! let mut server = TcpTransport::bind(TcpConfig::server(listen, me)).await?;
//! // ...and a client that listens nowhere.
//! let mut client = TcpTransport::connect_only(TcpConfig::client("client-1")).await?;
//!
//! client.send(&server.local_address(), b"where is the front-end?".to_vec());
//! let Some(TransportEvent::Message { from, sender, payload }) = server.recv().await else { panic!() };
//! assert_eq!(payload, b"where is the front-end?");
//! assert_eq!(sender, Identity::new(NodeRole::Client, "client-1"));
//! assert!(from.as_str().starts_with("conn:"), "a client is answered over its own connection");
//!
//! server.send(&from, b"127.0.0.1:7000".to_vec());
//! let Some(TransportEvent::Message { payload, .. }) = client.recv().await else { panic!() };
//! assert_eq!(payload, b"127.0.0.1:7000");
//! # Ok(()) }
//! ```
//!
//! ## Wire format
//!
//! A connection carries frames in both directions. Every frame is a 4-byte big-endian length
//! ([`LENGTH_PREFIX_BYTES`]), then that many bytes ([`frame_codec`]). A frame longer than
//! [`TcpConfig::max_frame_bytes`] (8 MiB by default) closes its connection as soon as its
//! length is read, before any of its body is buffered; until the handshake is done the limit is
//! [`MAX_HELLO_BYTES`] (4 KiB), so a peer that has not introduced itself cannot make the
//! transport reserve large buffers.
//!
//! ```text
//! connecting side                                  accepting side
//!   [len][HandshakeFrame{MAGIC, version, Hello{role, name, listen}}]  -->
//!                       <--  [len][HandshakeFrame{MAGIC, version, Accept{role, name}}]
//!                        or  [len][HandshakeFrame{MAGIC, version, Reject{reason}}], close
//!   [len][message] [len][message] ...  <-->  [len][message] ...
//! ```
//!
//! - The first frame of a connection is a [`HandshakeFrame`] (encoded with the core's
//!   [`codec`](just_hungry_core::codec), like every message): the magic number [`MAGIC`]
//!   (`"JHNG"`), the sender's [`PROTOCOL_VERSION`](just_hungry_core::protocol::messages::PROTOCOL_VERSION),
//!   and a [`Handshake`] encoded by that version. The envelope's layout is frozen, so any
//!   version can read any other's version number: a peer that speaks another version is
//!   refused with a [`Handshake::Reject`] saying so (`protocol version 2 is not supported: this
//!   node speaks version 1`), logged at info on the accepting side with the peer's socket
//!   address, and at warn on the connecting side.
//! - The [`Hello`] gives the connecting side's role and name (for logs) and the `host:port` it
//!   listens on, or none for a client.
//! - Anything else first (random bytes, an oversized length, a data frame, another magic
//!   number, nothing at all for [`TcpConfig::hello_timeout`]) is refused the same way, with a
//!   reason, and the connection closed. Bad input never stops the transport.
//! - After the [`Handshake::Accept`], every frame is one encoded protocol message, both ways.
//!
//! ## Addresses and connections
//!
//! An [`Address`](just_hungry_core::ids::Address) is a listener's `host:port`. The transport
//! keeps one outbound connection per peer address, opened on the first send (`TCP_NODELAY`)
//! and reused; each connection's writer feeds every queued frame, then flushes once.
//!
//! A message received is reported `from` the sender's listen address (from its hello), so a
//! reply goes to that listener over the replier's own outbound connection. A sender that
//! listens nowhere (a client made with [`TcpTransport::connect_only`]) is reported from a
//! synthetic address `conn:N`, unique within the receiving endpoint, that routes replies back
//! over the client's own connection; it means nothing to any other node. A client's own
//! `local_address()` is a synthetic name that nobody can dial.
//!
//! ## The priority lane
//!
//! What the node sends with
//! [`Transport::send_priority`](just_hungry_core::transport::Transport::send_priority) (the
//! runtime sends pings and their answers so) goes over a second connection to the same peer,
//! whose hello says [`Lane::Priority`]. Its frames never wait behind the normal connection's
//! queue or socket buffer, and the acceptor hands them to its node before the normal messages
//! waiting ([`MAX_PRIORITY_STREAK`] in a row at most, so a flood of them slows the rest and
//! never stops it), from a queue of its own ([`PRIORITY_QUEUE`]). A priority connection
//! carries frames of at most [`MAX_PRIORITY_FRAME_BYTES`] and only from a node that listens
//! and is not a client; a longer priority payload, a reply to a `conn:N` address and any
//! priority send of a client go on the normal connection. The two lanes are ordered each on
//! its own, not with respect to each other. The measured effect is in `docs/PERFORMANCE.md`
//! ("Liveness under load").
//!
//! ## Failures
//!
//! A connection refused, reset, timed out (connecting: [`TcpConfig::connect_timeout`]) or
//! failing to write, and a hello refused, report
//! [`TransportEvent::Unreachable`](just_hungry_core::transport::TransportEvent::Unreachable)
//! for the peer (the evidence the front-end fails over on) and drop the frames queued for it.
//! The peer then enters a back-off window ([`TcpConfig::backoff_initial`], doubling per
//! consecutive failure up to [`TcpConfig::backoff_max`], with jitter): sends inside it are
//! reported unreachable at once, without a connection attempt; the first send after it tries
//! again. A connection the peer closes cleanly is not a failure (a peer closes idle inbound
//! connections after [`TcpConfig::idle_timeout`]): the transport reconnects at once if frames
//! wait, else on the next send. `send` never blocks and never panics; an address that is
//! neither `host:port` nor a live `conn:N` is reported unreachable.
//!
//! ## Limits
//!
//! Every queue is bounded, each by a [`TcpConfig`] field: received messages waiting for the
//! node (readers stop reading when it is full, so TCP flow control slows the senders down:
//! nothing received is dropped), frames waiting per peer (when full, frames are dropped and
//! logged at debug; the protocol retransmits), inbound connections (excess ones are accepted and
//! closed at once), tracked peers. Dropping the transport or calling
//! [`TcpTransport::shutdown`] stops the listener and every connection task.
//!
//! ## Logs
//!
//! `tracing`, in a `tcp{local=...}` span: info for a peer that becomes unreachable, a refused
//! hello, an idle connection closed, a connection limit reached; warn for a peer that refuses
//! our hello and a message too long to send; debug and trace for routine traffic. Refused
//! connections, which anyone who reaches a port can cause at will, go to info at most
//! [`REFUSALS_LOGGED_PER_SECOND`] a second and to debug beyond (the next line at info counts
//! them, `not_logged`); the metrics count every one.

#![deny(missing_docs)]

// Defined before the modules that use it: a `macro_rules!` is in scope after its definition.
/// Counts a refused connection under `reason` and logs it: at info within
/// [`REFUSALS_LOGGED_PER_SECOND`](crate::REFUSALS_LOGGED_PER_SECOND) a second (the first line
/// after a burst says how many went to debug, `not_logged`), at debug beyond, so a flood of
/// refused connections cannot fill the disk with log lines.
macro_rules! refused {
    ($shared:expr, $reason:expr, $($line:tt)+) => {{
        crate::metrics::refused(&$shared.config.identity.name, $reason);
        let budget = crate::transport::lock(&$shared.refusal_log).take(std::time::Instant::now());
        match budget {
            Some(0) => tracing::info!($($line)+),
            Some(not_logged) => tracing::info!(not_logged, $($line)+),
            None => tracing::debug!($($line)+),
        }
    }};
}

mod client_places;
mod config;
mod connection;
mod listener;
mod log_budget;
mod metrics;
mod queue;
pub mod tls;
mod transport;
mod wire;

pub use config::TcpConfig;
pub use connection::{REJECT_DRAIN_BYTES, REJECT_LINGER};
pub use listener::ACCEPT_ERROR_PAUSE;
pub use log_budget::REFUSALS_LOGGED_PER_SECOND;
pub use transport::{MAX_PENDING_UNREACHABLE, MAX_PRIORITY_STREAK, PRIORITY_QUEUE, TcpTransport};
pub use wire::{
    CONNECTION_ADDRESS_PREFIX, Handshake, HandshakeError, HandshakeFrame, Hello,
    LENGTH_PREFIX_BYTES, Lane, MAGIC, MAX_HELLO_BYTES, MAX_PRIORITY_FRAME_BYTES, decode_handshake,
    encode_handshake, frame_codec,
};
