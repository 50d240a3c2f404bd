//! # just-hungry-transport-tcp
//!
//! The length-prefixed TCP transport of just-hungry: [`TcpTransport`] implements the core's
//! [`Transport`].
//!
//! ## Wire format
//!
//! Every frame is a 4-byte big-endian length, then that many bytes. A frame longer than
//! [`TcpConfig::max_frame_bytes`] is refused from its length alone, before its body is read,
//! and the connection is closed.
//!
//! The connecting side's first frame is a [`Handshake::Hello`]: a magic number, the protocol
//! version ([`PROTOCOL_VERSION`]), its role and name, and the address it listens on (none for a
//! client). The accepting side answers [`Handshake::Accept`], or [`Handshake::Reject`] with a
//! human reason and closes: another version, another magic number, or anything else first
//! (garbage, a data frame) is refused and logged. Every later frame carries one encoded
//! protocol message, in either direction.
//!
//! ## Connections
//!
//! A message to `host:port` goes over one outbound connection per peer, opened on first use
//! (`TCP_NODELAY`) and reused. A peer that refuses, resets or times out is reported
//! [`TransportEvent::Unreachable`] (the evidence the front-end fails over on), and is retried
//! with capped exponential backoff and jitter; messages sent to it meanwhile are reported
//! unreachable at once. Messages from a peer arrive `from` the address it listens on; a peer
//! that listens nowhere (a client) gets a synthetic address `conn:N`, and replies to it travel
//! back over its own connection. Inbound connections are bounded in number and closed when
//! idle. Every queue is bounded. Dropping the transport closes everything.

#![deny(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::codec;
use just_hungry_core::ids::Address;
use just_hungry_core::protocol::messages::PROTOCOL_VERSION;
use just_hungry_core::transport::{Transport, TransportEvent};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// The size of the length prefix of every frame, in bytes (big-endian `u32`).
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The first bytes of every hello: "JHNG".
pub const MAGIC: u32 = 0x4a48_4e47;

/// How a TCP endpoint behaves. Every limit is here, with its default.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Where to listen (`127.0.0.1:0`: any free port); `None` for a client that only connects.
    pub listen: Option<SocketAddr>,
    /// This endpoint's role, sent in the hello (`replica`, `frontend`, `client`, ...).
    pub role: String,
    /// This endpoint's name, sent in the hello, for the peer's logs.
    pub name: String,
    /// The largest frame accepted or sent; longer ones close the connection. Default 8 MiB.
    pub max_frame_bytes: usize,
    /// How long a connection attempt may take. Default 1 s.
    pub connect_timeout: Duration,
    /// How long a peer has to send its hello (or answer ours). Default 5 s.
    pub hello_timeout: Duration,
    /// An inbound connection with no frame for this long is closed. Default 5 min.
    pub idle_timeout: Duration,
    /// The most inbound connections at once; more are closed at once. Default 1024.
    pub max_inbound_connections: usize,
    /// Frames queued per peer connection; beyond, frames are dropped. Default 4096.
    pub outbound_queue: usize,
    /// Received messages waiting for the node; beyond, readers wait (TCP backpressure).
    /// Default 65 536.
    pub inbound_queue: usize,
    /// The first reconnect delay after a failure. Default 20 ms.
    pub backoff_initial: Duration,
    /// The longest reconnect delay. Default 1 s.
    pub backoff_max: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: None,
            role: "node".into(),
            name: "node".into(),
            max_frame_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(1),
            hello_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            max_inbound_connections: 1024,
            outbound_queue: 4096,
            inbound_queue: 65_536,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
        }
    }
}

impl TcpConfig {
    /// A server listening on `listen`, with default limits.
    pub fn server(listen: SocketAddr, role: &str, name: &str) -> Self {
        TcpConfig {
            listen: Some(listen),
            role: role.into(),
            name: name.into(),
            ..TcpConfig::default()
        }
    }

    /// A client that only connects, with default limits.
    pub fn client(name: &str) -> Self {
        TcpConfig {
            listen: None,
            role: "client".into(),
            name: name.into(),
            ..TcpConfig::default()
        }
    }
}

/// The first frame of a connection and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// From the connecting side.
    Hello {
        /// Always [`MAGIC`].
        magic: u32,
        /// The sender's [`PROTOCOL_VERSION`].
        version: u32,
        /// Its role.
        role: String,
        /// Its name.
        name: String,
        /// Where it listens, if anywhere: replies go there.
        listen: Option<String>,
    },
    /// The hello is accepted; messages may flow.
    Accept {
        /// The acceptor's version.
        version: u32,
    },
    /// The hello is refused; the connection closes.
    Reject {
        /// Why, for a human.
        reason: String,
    },
}

/// Why a connection was refused or closed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Connecting, reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The peer's first frame was not an acceptable hello.
    #[error("refused hello: {0}")]
    BadHello(String),
    /// The peer refused our hello.
    #[error("the peer refused our hello: {0}")]
    Rejected(String),
    /// The peer closed the connection.
    #[error("closed by the peer")]
    Closed,
}

enum PeerState {
    Connected(mpsc::Sender<Bytes>),
    Backoff { until: Instant, failures: u32 },
}

struct Shared {
    config: TcpConfig,
    local: Address,
    events: mpsc::Sender<TransportEvent>,
    outbound: Mutex<HashMap<Address, PeerState>>,
    /// Reply channels of inbound connections from peers that listen nowhere.
    inbound: Mutex<HashMap<Address, mpsc::Sender<Bytes>>>,
    inbound_count: AtomicUsize,
    next_connection: AtomicU64,
    cancel: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn report_unreachable(&self, to: &Address) {
        let _ = self
            .events
            .try_send(TransportEvent::Unreachable { to: to.clone() });
    }

    fn codec(&self) -> LengthDelimitedCodec {
        LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_PREFIX_BYTES)
            .big_endian()
            .max_frame_length(self.config.max_frame_bytes)
            .new_codec()
    }

    fn hello(&self) -> Handshake {
        Handshake::Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            role: self.config.role.clone(),
            name: self.config.name.clone(),
            listen: self.config.listen.map(|_| self.local.to_string()),
        }
    }

    /// The next reconnect delay after `failures` failures: exponential, capped, jittered.
    fn backoff(&self, failures: u32) -> Duration {
        let base = self
            .config
            .backoff_initial
            .saturating_mul(1u32 << failures.min(16))
            .min(self.config.backoff_max);
        let jitter = (self
            .next_connection
            .load(Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9)
            % 1000) as f64
            / 1000.0;
        base.mul_f64(0.5 + jitter / 2.0)
    }
}

/// A TCP endpoint. See the crate documentation.
pub struct TcpTransport {
    shared: Arc<Shared>,
    events: mpsc::Receiver<TransportEvent>,
}

impl TcpTransport {
    /// Binds `config.listen` and starts accepting connections; `local_address()` is the bound
    /// address (the real port when asked for port 0).
    pub async fn bind(config: TcpConfig) -> std::io::Result<Self> {
        let Some(listen) = config.listen else {
            return Self::connect_only(config).await;
        };
        let listener = TcpListener::bind(listen).await?;
        let local = Address::new(listener.local_addr()?.to_string());
        let transport = Self::new(config, local);
        let shared = transport.shared.clone();
        tokio::spawn(accept_loop(shared, listener));
        Ok(transport)
    }

    /// A client endpoint that listens nowhere: it connects to others, and their answers come
    /// back over those connections.
    pub async fn connect_only(mut config: TcpConfig) -> std::io::Result<Self> {
        config.listen = None;
        let local = Address::new(format!(
            "client:{}:{}",
            std::process::id(),
            just_hungry_core::runtime::random_u64() % 1_000_000
        ));
        Ok(Self::new(config, local))
    }

    fn new(config: TcpConfig, local: Address) -> Self {
        let (events_tx, events) = mpsc::channel(config.inbound_queue.max(1));
        let shared = Arc::new(Shared {
            config,
            local,
            events: events_tx,
            outbound: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            inbound_count: AtomicUsize::new(0),
            next_connection: AtomicU64::new(1),
            cancel: CancellationToken::new(),
        });
        TcpTransport { shared, events }
    }

    /// How many inbound connections are open now.
    pub fn inbound_connections(&self) -> usize {
        self.shared.inbound_count.load(Ordering::Relaxed)
    }

    /// Closes the listener and every connection.
    pub fn shutdown(&self) {
        self.shared.cancel.cancel();
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

impl Transport for TcpTransport {
    fn local_address(&self) -> Address {
        self.shared.local.clone()
    }

    fn send(&self, to: &Address, payload: Vec<u8>) {
        let shared = &self.shared;
        if payload.len() > shared.config.max_frame_bytes {
            tracing::info!(to = %to, bytes = payload.len(), "message larger than the frame limit: dropped");
            return;
        }
        let payload = Bytes::from(payload);
        if to.as_str().starts_with("conn:") {
            let reply = lock(&shared.inbound).get(to).cloned();
            match reply {
                Some(tx) => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(payload) {
                        shared.report_unreachable(to);
                    }
                }
                None => shared.report_unreachable(to),
            }
            return;
        }
        let mut outbound = lock(&shared.outbound);
        let failures = match outbound.get(to) {
            Some(PeerState::Connected(tx)) => match tx.try_send(payload) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(to = %to, "outbound queue full: message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(p)) => {
                    outbound.remove(to);
                    return self.open(outbound, to, p, 0);
                }
            },
            Some(PeerState::Backoff { until, failures }) => {
                if Instant::now() < *until {
                    drop(outbound);
                    shared.report_unreachable(to);
                    return;
                }
                *failures
            }
            None => 0,
        };
        self.open(outbound, to, payload, failures);
    }

    async fn recv(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    fn try_recv(&mut self) -> Option<TransportEvent> {
        self.events.try_recv().ok()
    }
}

impl TcpTransport {
    /// Starts a connection to `to` with `first` queued on it.
    fn open(
        &self,
        mut outbound: MutexGuard<'_, HashMap<Address, PeerState>>,
        to: &Address,
        first: Bytes,
        failures: u32,
    ) {
        let (tx, rx) = mpsc::channel(self.shared.config.outbound_queue.max(1));
        let _ = tx.try_send(first);
        outbound.insert(to.clone(), PeerState::Connected(tx.clone()));
        drop(outbound);
        tokio::spawn(outbound_connection(
            self.shared.clone(),
            to.clone(),
            tx,
            rx,
            failures,
        ));
    }
}

/// One outbound connection: connect, hello, then write queued frames and deliver what the
/// peer sends back, until either side fails.
async fn outbound_connection(
    shared: Arc<Shared>,
    to: Address,
    own: mpsc::Sender<Bytes>,
    mut queue: mpsc::Receiver<Bytes>,
    failures: u32,
) {
    let result = tokio::select! {
        _ = shared.cancel.cancelled() => return,
        result = run_outbound(&shared, &to, &mut queue) => result,
    };
    let mut outbound = lock(&shared.outbound);
    // Only touch the entry if it is still ours (a newer connection may have replaced it).
    let ours = matches!(outbound.get(&to), Some(PeerState::Connected(tx)) if tx.same_channel(&own));
    match result {
        Err(ConnectionError::Closed) => {
            if ours {
                outbound.remove(&to);
            }
        }
        Err(e) => {
            if ours {
                let until = Instant::now() + shared.backoff(failures);
                outbound.insert(
                    to.clone(),
                    PeerState::Backoff {
                        until,
                        failures: failures.saturating_add(1),
                    },
                );
            }
            drop(outbound);
            tracing::info!(peer = %to, error = %e, "peer unreachable");
            shared.report_unreachable(&to);
        }
        Ok(()) => {}
    }
}

async fn run_outbound(
    shared: &Shared,
    to: &Address,
    queue: &mut mpsc::Receiver<Bytes>,
) -> Result<(), ConnectionError> {
    let stream = tokio::time::timeout(
        shared.config.connect_timeout,
        TcpStream::connect(to.as_str()),
    )
    .await
    .map_err(|_| ConnectionError::Timeout("connecting"))??;
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, shared.codec());
    let hello =
        codec::encode(&shared.hello()).map_err(|e| ConnectionError::BadHello(e.to_string()))?;
    framed.send(Bytes::from(hello)).await?;
    let answer = tokio::time::timeout(shared.config.hello_timeout, framed.next())
        .await
        .map_err(|_| ConnectionError::Timeout("waiting for the hello's answer"))?
        .ok_or(ConnectionError::Closed)??;
    match codec::decode::<Handshake>(&answer) {
        Ok(Handshake::Accept { .. }) => {}
        Ok(Handshake::Reject { reason }) => return Err(ConnectionError::Rejected(reason)),
        Ok(_) | Err(_) => {
            return Err(ConnectionError::BadHello(
                "the peer did not answer our hello".into(),
            ));
        }
    }
    loop {
        tokio::select! {
            frame = queue.recv() => {
                let Some(frame) = frame else { return Ok(()) };
                framed.feed(frame).await?;
                while let Ok(frame) = queue.try_recv() {
                    framed.feed(frame).await?;
                }
                SinkExt::<Bytes>::flush(&mut framed).await?;
            }
            incoming = framed.next() => match incoming {
                Some(Ok(payload)) => {
                    let event = TransportEvent::Message { from: to.clone(), payload: payload.to_vec() };
                    if shared.events.send(event).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ConnectionError::Closed),
            },
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, typically: wait a little rather than spin.
                tracing::info!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let open = shared.inbound_count.fetch_add(1, Ordering::AcqRel);
        if open >= shared.config.max_inbound_connections {
            shared.inbound_count.fetch_sub(1, Ordering::AcqRel);
            tracing::info!(peer = %peer, limit = shared.config.max_inbound_connections, "too many connections: closed a new one");
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let result = tokio::select! {
                _ = shared.cancel.cancelled() => Ok(()),
                result = run_inbound(&shared, stream, peer) => result,
            };
            shared.inbound_count.fetch_sub(1, Ordering::AcqRel);
            match result {
                Ok(()) | Err(ConnectionError::Closed) => {
                    tracing::debug!(peer = %peer, "connection closed")
                }
                Err(e) => tracing::info!(peer = %peer, error = %e, "connection closed"),
            }
        });
    }
}

async fn run_inbound(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let mut framed = Framed::new(stream, shared.codec());
    let first = tokio::time::timeout(shared.config.hello_timeout, framed.next())
        .await
        .map_err(|_| ConnectionError::Timeout("waiting for a hello"))?
        .ok_or(ConnectionError::Closed)??;
    let from = match codec::decode::<Handshake>(&first) {
        Ok(Handshake::Hello {
            magic,
            version,
            listen,
            ..
        }) if magic == MAGIC && version == PROTOCOL_VERSION => match listen {
            Some(listen) => Address::new(listen),
            None => Address::new(format!(
                "conn:{}",
                shared.next_connection.fetch_add(1, Ordering::Relaxed)
            )),
        },
        Ok(Handshake::Hello { magic, version, .. }) if magic == MAGIC => {
            let reason = format!(
                "protocol version {version} is not supported: this node speaks version {PROTOCOL_VERSION}"
            );
            return Err(reject(&mut framed, peer, reason).await);
        }
        _ => {
            let reason = "the first frame must be a just-hungry hello".to_owned();
            return Err(reject(&mut framed, peer, reason).await);
        }
    };
    let accept = codec::encode(&Handshake::Accept {
        version: PROTOCOL_VERSION,
    })
    .map_err(|e| ConnectionError::BadHello(e.to_string()))?;
    framed.send(Bytes::from(accept)).await?;
    let (reply_tx, mut replies) = mpsc::channel(shared.config.outbound_queue.max(1));
    let synthetic = from.as_str().starts_with("conn:");
    if synthetic {
        lock(&shared.inbound).insert(from.clone(), reply_tx);
    }
    let result = async {
        loop {
            tokio::select! {
                incoming = tokio::time::timeout(shared.config.idle_timeout, framed.next()) => {
                    match incoming {
                        Err(_) => {
                            tracing::info!(peer = %peer, from = %from, "closing an idle connection");
                            return Ok(());
                        }
                        Ok(Some(Ok(payload))) => {
                            let event = TransportEvent::Message { from: from.clone(), payload: payload.to_vec() };
                            if shared.events.send(event).await.is_err() {
                                return Ok(());
                            }
                        }
                        Ok(Some(Err(e))) => return Err(ConnectionError::from(e)),
                        Ok(None) => return Err(ConnectionError::Closed),
                    }
                }
                Some(reply) = replies.recv() => {
                    framed.feed(reply).await?;
                    while let Ok(reply) = replies.try_recv() {
                        framed.feed(reply).await?;
                    }
                    SinkExt::<Bytes>::flush(&mut framed).await?;
                }
            }
        }
    }
    .await;
    if synthetic {
        lock(&shared.inbound).remove(&from);
    }
    result
}

async fn reject(
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
    peer: SocketAddr,
    reason: String,
) -> ConnectionError {
    tracing::info!(peer = %peer, reason = %reason, "refused a connection's hello");
    if let Ok(bytes) = codec::encode(&Handshake::Reject {
        reason: reason.clone(),
    }) {
        let _ = tokio::time::timeout(Duration::from_secs(1), framed.send(Bytes::from(bytes))).await;
    }
    ConnectionError::BadHello(reason)
}
