//! One connection: the handshake, then a reader and a writer running side by side.
//!
//! The reader and the writer of a connection are two futures polled by one task, so neither
//! waits for the other: a reader held back by a full inbound queue (backpressure) does not stop
//! the writer, and a writer blocked on a full socket does not stop the reader (two peers
//! writing to each other at once cannot deadlock). The reader is polled first, so a connection
//! the peer has closed is noticed before another frame is written into it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::ids::Address;
use just_hungry_core::ids::{Identity, NodeRole};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::client_places::Taken;
use crate::metrics;
use crate::queue::FrameReceiver;
use crate::tls;
use crate::transport::{Shared, lock};
use crate::wire::{
    self, CONNECTION_ADDRESS_PREFIX, Handshake, HandshakeError, Lane, MAX_HELLO_BYTES,
    MAX_PRIORITY_FRAME_BYTES,
};

/// How long a refused peer is given to read our reject frame, and how long we drain what it
/// still sends (so that closing does not reset the connection and destroy the reason).
pub const REJECT_LINGER: Duration = Duration::from_millis(500);

/// The most bytes drained from a refused peer before closing anyway.
pub const REJECT_DRAIN_BYTES: usize = 64 * 1024;

/// The reading half of a connection, plaintext or TLS.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection, plaintext or TLS.
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;
type Reader = FramedRead<ReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<WriteHalf, LengthDelimitedCodec>;

/// Why a connection failed: each is reported to the node as the peer being unreachable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    /// Connecting, reading or writing failed (refused, reset, broken pipe, a frame over the
    /// limit...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The connection was not established in time.
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    /// The peer did not answer our hello in time.
    #[error("no answer to our hello within {0:?}")]
    HelloTimeout(Duration),
    /// The peer refused our hello (another protocol version, typically).
    #[error("{0}")]
    Rejected(String),
    /// The TLS handshake failed (no certificate, another CA, an expired one, not TLS...).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The peer answered our hello with something else than an accept.
    #[error("the peer answered our hello with {0}")]
    BadAnswer(String),
    /// The peer closed the connection before we could write anything on it.
    #[error("the peer closed the connection before taking any message")]
    ClosedEarly,
}

/// How a connection that completed its handshake ended.
#[derive(Debug)]
enum End {
    /// The peer closed it cleanly.
    ByPeer,
    /// No frame arrived for `idle_timeout`.
    Idle,
    /// Our side stopped (the transport shut down, or the route was dropped).
    Local,
    /// A client's connection whose place was taken for another client's
    /// ([`crate::client_places`]).
    PlaceTaken,
    /// Reading or writing failed.
    Failed(ConnectionError),
}

fn split(stream: TcpStream, max_frame_bytes: usize) -> (Reader, Writer) {
    let (read, write) = stream.into_split();
    framed(Box::new(read), Box::new(write), max_frame_bytes)
}

fn framed(read: ReadHalf, write: WriteHalf, max_frame_bytes: usize) -> (Reader, Writer) {
    (
        // Until the handshake is done, frames are limited to a hello's size.
        FramedRead::new(read, wire::frame_codec(MAX_HELLO_BYTES)),
        FramedWrite::new(write, wire::frame_codec(max_frame_bytes)),
    )
}

/// Delivers every frame read to the node, `from` the given address and sent by `sender`, until
/// the connection ends.
async fn read_frames(
    shared: &Shared,
    lane: Lane,
    reader: &mut Reader,
    from: &Address,
    sender: &Identity,
    idle_timeout: Option<Duration>,
) -> End {
    loop {
        let next = match idle_timeout {
            Some(limit) => match tokio::time::timeout(limit, reader.next()).await {
                Ok(next) => next,
                Err(_) => return End::Idle,
            },
            None => reader.next().await,
        };
        match next {
            None => return End::ByPeer,
            // A TLS peer that closes without `close_notify` (a killed process, an idle
            // connection dropped) is a close, as on a plaintext link: not yet evidence of
            // failure (the outbound side probes the port).
            Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return End::ByPeer,
            Some(Err(e)) => return End::Failed(e.into()),
            Some(Ok(frame)) => {
                tracing::trace!(from = %from, bytes = frame.len(), "frame received");
                if shared
                    .deliver(lane, from, sender, Vec::from(frame))
                    .await
                    .is_err()
                {
                    return End::Local;
                }
            }
        }
    }
}

/// Writes queued frames: everything queued is fed, then flushed once, so a burst of messages
/// leaves in as few segments as the socket allows. Sets `wrote` after the first flush.
async fn write_frames(writer: &mut Writer, queue: &mut FrameReceiver, wrote: &mut bool) -> End {
    loop {
        let Some(first) = queue.recv().await else {
            return End::Local;
        };
        let batch = async {
            writer.feed(first).await?;
            let mut frames = 1usize;
            while let Some(frame) = queue.try_recv() {
                writer.feed(frame).await?;
                frames += 1;
            }
            SinkExt::<Bytes>::flush(writer).await?;
            Ok::<usize, std::io::Error>(frames)
        };
        match batch.await {
            Ok(frames) => {
                tracing::trace!(frames, "frames written");
                *wrote = true;
            }
            Err(e) => return End::Failed(e.into()),
        }
    }
}

// ---- outbound ----

/// The task of one outbound peer: connects, says hello, then writes what is queued for the
/// peer and delivers what it sends back, until the connection fails (the peer is reported
/// unreachable and put in back-off) or is closed with nothing left to send (the peer is
/// forgotten; the next send reconnects).
pub(crate) async fn run_peer(
    shared: Arc<Shared>,
    lane: Lane,
    to: Address,
    id: u64,
    mut queue: FrameReceiver,
    mut failures: u32,
) {
    let failed = tokio::select! {
        () = shared.cancel.cancelled() => return,
        failed = peer_connections(&shared, lane, &to, id, &mut queue, &mut failures) => failed,
    };
    if let Some(error) = failed {
        shared.peer_failed(lane, &to, id, failures, &error);
    }
}

/// Connects as long as frames wait; `Some(error)` on failure, `None` once retired.
async fn peer_connections(
    shared: &Shared,
    lane: Lane,
    to: &Address,
    id: u64,
    queue: &mut FrameReceiver,
    failures: &mut u32,
) -> Option<ConnectionError> {
    loop {
        let (mut reader, mut writer, peer) = match connect(shared, lane, to).await {
            Ok(connected) => connected,
            Err(e) => return Some(e),
        };
        let _open = metrics::OpenConnection::new(&shared.config.identity.name, "outbound");
        *failures = 0;
        let mut wrote = false;
        let end = tokio::select! {
            biased;
            end = read_frames(shared, lane, &mut reader, to, &peer, None) => end,
            end = write_frames(&mut writer, queue, &mut wrote) => end,
        };
        match end {
            End::Failed(e) => return Some(e),
            End::ByPeer | End::Idle | End::Local | End::PlaceTaken => {
                // A clean close: the peer closed an idle connection, or is going away (a
                // process killed with `kill -9` closes its sockets this way too). A close alone
                // is not evidence of failure, so when the peer closed it we probe its port
                // once: a peer that is gone refuses, and is reported unreachable now rather
                // than at the next send; one that only closed an idle connection accepts.
                if matches!(end, End::ByPeer)
                    && queue.is_empty()
                    && let Some(error) = probe(shared, to).await
                {
                    return Some(error);
                }
                // With nothing to send, forget it quietly. With frames waiting, reconnect once
                // at once: a peer that is gone refuses, and one that is alive takes them.
                if shared.retire_peer(lane, to, id, queue) {
                    tracing::debug!(peer = %to, "connection closed");
                    return None;
                }
                if !wrote {
                    return Some(ConnectionError::ClosedEarly);
                }
                tracing::debug!(peer = %to, "connection closed with messages waiting: reconnecting");
            }
        }
    }
}

/// Whether `to` still accepts connections: `Some(error)` if it refuses (or does not answer
/// within the connect timeout). The probe connection is closed at once, before any hello.
async fn probe(shared: &Shared, to: &Address) -> Option<ConnectionError> {
    let limit = shared.config.connect_timeout;
    match tokio::time::timeout(limit, TcpStream::connect(to.as_str())).await {
        Ok(Ok(_stream)) => None,
        Ok(Err(e)) => Some(e.into()),
        Err(_) => Some(ConnectionError::ConnectTimeout(limit)),
    }
}

/// Opens a connection to `to` and completes the handshake; returns the halves and the peer's
/// identity.
async fn connect(
    shared: &Shared,
    lane: Lane,
    to: &Address,
) -> Result<(Reader, Writer, Identity), ConnectionError> {
    let config = &shared.config;
    let hello = match lane {
        Lane::Normal => shared.hello.clone(),
        // Only an endpoint that listens sends on the priority lane.
        Lane::Priority => shared
            .priority_hello
            .clone()
            .unwrap_or_else(|| shared.hello.clone()),
    };
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(to.as_str()))
        .await
        .map_err(|_| ConnectionError::ConnectTimeout(config.connect_timeout))??;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer, certified) = match &config.tls {
        None => {
            let (reader, writer) = split(stream, config.max_frame_bytes);
            (reader, writer, None)
        }
        Some(tls) => {
            let connecting = tls.connector().connect(tls::server_name(), stream);
            let secured = tokio::time::timeout(config.hello_timeout, connecting)
                .await
                .map_err(|_| ConnectionError::HelloTimeout(config.hello_timeout))?
                .map_err(|e| ConnectionError::Tls(e.to_string()))?;
            let identity = tls::peer_identity(secured.get_ref().1)
                .map_err(|e| ConnectionError::Tls(e.to_string()))?;
            let (read, write) = tokio::io::split(secured);
            let (reader, writer) = framed(Box::new(read), Box::new(write), config.max_frame_bytes);
            (reader, writer, Some(identity))
        }
    };
    let handshake = async {
        writer.send(hello).await?;
        match reader.next().await {
            Some(answer) => Ok(answer?),
            None => Err(ConnectionError::ClosedEarly),
        }
    };
    let answer = tokio::time::timeout(config.hello_timeout, handshake)
        .await
        .map_err(|_| ConnectionError::HelloTimeout(config.hello_timeout))??;
    let peer = match wire::decode_handshake(&answer) {
        Ok(Handshake::Accept {
            role,
            name,
            service,
        }) => {
            tracing::debug!(peer = %to, role = %role, name = %name, "connected");
            if let Some(why) = wire::service_mismatch(config.service.as_deref(), service.as_deref())
            {
                return Err(ConnectionError::Rejected(why));
            }
            let claimed =
                wire::claimed_identity(&role, &name).map_err(ConnectionError::BadAnswer)?;
            match certified {
                Some(certified) if certified != claimed => {
                    return Err(ConnectionError::BadAnswer(format!(
                        "an accept naming {claimed} from a peer whose certificate names {certified}"
                    )));
                }
                Some(certified) => certified,
                None => claimed,
            }
        }
        Ok(Handshake::Reject { reason }) => return Err(ConnectionError::Rejected(reason)),
        Ok(Handshake::Hello(_)) => return Err(ConnectionError::BadAnswer("a hello".into())),
        Err(HandshakeError::UnsupportedVersion { found, supported }) => {
            return Err(ConnectionError::Rejected(format!(
                "the peer speaks protocol version {found}, this node speaks version {supported}"
            )));
        }
        Err(e) => return Err(ConnectionError::BadAnswer(e.to_string())),
    };
    reader
        .decoder_mut()
        .set_max_frame_length(config.max_frame_bytes);
    Ok((reader, writer, peer))
}

// ---- inbound ----

/// The task of one accepted connection: waits for the hello, refuses a bad one with a reason,
/// then delivers what the peer sends (and, for a peer that listens nowhere, writes the replies
/// sent to its `conn:N` address) until the peer closes it, it stays idle for `idle_timeout`, or
/// the transport shuts down. `slot` frees its place among the inbound connections on return.
pub(crate) async fn serve_inbound(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
) {
    let evicted = tokio_util::sync::CancellationToken::new();
    // Ids only grow, so the map's first entry is the oldest connection still in its handshake.
    let id = shared.next_id();
    lock(&shared.handshaking).insert(
        id,
        Handshaking {
            slot,
            evict: evicted.clone(),
        },
    );
    let pending = PendingAdmission {
        shared: &shared,
        id: Some(id),
    };
    tokio::select! {
        () = shared.cancel.cancelled() => {}
        () = evicted.cancelled() => {
            tracing::debug!(peer = %peer, "evicted in its handshake by a newer connection");
        }
        () = inbound(&shared, stream, peer, pending) => {}
    }
}

/// An inbound connection not yet admitted (its TLS handshake or hello under way), holding its
/// place among the inbound connections in [`Shared::handshaking`].
pub(crate) struct Handshaking {
    slot: Slot,
    evict: tokio_util::sync::CancellationToken,
}

/// The place of the oldest connection still in its handshake, which is closed, for a new one:
/// so that a flood of connections that never finish a handshake (no certificate needed)
/// cannot hold every place and lock out the peers that do; it would have to open
/// `max_inbound_connections` connections within one honest handshake. `None` when every
/// place is held by an admitted connection.
pub(crate) fn evict_oldest_handshake(shared: &Shared) -> Option<Slot> {
    let (_, oldest) = lock(&shared.handshaking).pop_first()?;
    oldest.evict.cancel();
    Some(oldest.slot)
}

/// A connection's entry in [`Shared::handshaking`]: admitted, it takes its place back; dropped
/// first (refused, timed out, closed), it gives the place up.
struct PendingAdmission<'a> {
    shared: &'a Shared,
    /// Its key in [`Shared::handshaking`], until it is taken out.
    id: Option<u64>,
}

impl PendingAdmission<'_> {
    /// Takes the connection's entry out, if it is still there (not evicted).
    fn take(&mut self) -> Option<Handshaking> {
        let id = self.id.take()?;
        lock(&self.shared.handshaking).remove(&id)
    }

    /// The place, once the peer's hello is accepted; `None` if the connection was evicted
    /// meanwhile.
    fn admit(mut self) -> Option<Slot> {
        self.take().map(|entry| entry.slot)
    }
}

impl Drop for PendingAdmission<'_> {
    fn drop(&mut self) {
        self.take();
    }
}

async fn inbound(
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    pending: PendingAdmission<'_>,
) {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer, certified) = match &config.tls {
        None => {
            let (reader, writer) = split(stream, config.max_frame_bytes);
            (reader, writer, None)
        }
        Some(tls) => {
            // A peer that cannot prove an identity of the cluster's CA gets no further: no
            // hello is read, and nothing it sends reaches the node.
            let accepting = tls.acceptor().accept(stream);
            let secured = match tokio::time::timeout(config.hello_timeout, accepting).await {
                Ok(Ok(secured)) => secured,
                Ok(Err(e)) => {
                    refused!(shared, "tls_handshake_failed", peer = %peer, error = %e, "refused a connection: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    refused!(shared, "tls_timeout", peer = %peer, limit = ?config.hello_timeout, "refused a connection: no TLS handshake in time");
                    return;
                }
            };
            let identity = match tls::peer_identity(secured.get_ref().1) {
                Ok(identity) => identity,
                Err(e) => {
                    refused!(shared, "no_identity", peer = %peer, error = %e, "refused a connection: its certificate names no identity");
                    return;
                }
            };
            let (read, write) = tokio::io::split(secured);
            let (reader, writer) = framed(Box::new(read), Box::new(write), config.max_frame_bytes);
            (reader, writer, Some(identity))
        }
    };
    let first = match tokio::time::timeout(config.hello_timeout, reader.next()).await {
        Err(_) => {
            let reason = format!("no hello within {:?}", config.hello_timeout);
            return refuse(shared, "no_hello", (reader, writer), peer, reason).await;
        }
        Ok(None) => {
            tracing::debug!(peer = %peer, "closed before its hello");
            return;
        }
        Ok(Some(Err(e))) => {
            let reason = format!(
                "the first frame must be a just-hungry hello of at most {MAX_HELLO_BYTES} bytes ({e})"
            );
            return refuse(shared, "bad_hello", (reader, writer), peer, reason).await;
        }
        Ok(Some(Ok(frame))) => frame,
    };
    let hello = match wire::decode_handshake(&first) {
        Ok(Handshake::Hello(hello)) => hello,
        Ok(_) => {
            let reason = "the first frame must be a hello, not an answer to one".to_owned();
            return refuse(shared, "bad_hello", (reader, writer), peer, reason).await;
        }
        Err(e @ HandshakeError::UnsupportedVersion { .. }) => {
            return refuse(
                shared,
                "unsupported_version",
                (reader, writer),
                peer,
                e.to_string(),
            )
            .await;
        }
        Err(e) => {
            let reason = format!("the first frame must be a just-hungry hello: {e}");
            return refuse(shared, "bad_hello", (reader, writer), peer, reason).await;
        }
    };
    if let Some(why) = wire::service_mismatch(config.service.as_deref(), hello.service.as_deref()) {
        return refuse(shared, "wrong_service", (reader, writer), peer, why).await;
    }
    let sender = match (wire::claimed_identity(&hello.role, &hello.name), certified) {
        (Err(e), _) => {
            let reason = format!("the hello names no identity: {e}");
            return refuse(shared, "no_identity", (reader, writer), peer, reason).await;
        }
        (Ok(claimed), Some(certified)) if claimed != certified => {
            let reason = format!("the hello names {claimed} but the certificate names {certified}");
            return refuse(shared, "identity_mismatch", (reader, writer), peer, reason).await;
        }
        (Ok(claimed), _) => claimed,
    };
    let from = match &hello.listen {
        Some(listen) if wire::is_dialable(listen) && !wire::is_connection_address(listen) => {
            Address::new(listen.clone())
        }
        Some(listen) => {
            let reason = format!("the hello's listen address `{listen}` is not host:port");
            return refuse(shared, "bad_listen_address", (reader, writer), peer, reason).await;
        }
        None if hello.lane == Lane::Priority => {
            let reason = "a priority connection must come from a node that listens".to_owned();
            return refuse(
                shared,
                "priority_not_allowed",
                (reader, writer),
                peer,
                reason,
            )
            .await;
        }
        None => Address::new(format!("{CONNECTION_ADDRESS_PREFIX}{}", shared.next_id())),
    };
    if hello.lane == Lane::Priority && sender.role == NodeRole::Client {
        // Clients send no liveness signals: a client that opened a priority connection could
        // only use it to jump the queue ahead of other clients.
        let reason = "a client may not open a priority connection".to_owned();
        return refuse(
            shared,
            "priority_not_allowed",
            (reader, writer),
            peer,
            reason,
        )
        .await;
    }
    // A client takes one of the places clients may hold (the others are kept for the
    // cluster's nodes), from the identity holding the most if none is free, or is refused.
    let client_place = match sender.role {
        NodeRole::Client => match shared.client_places.take(&sender.name) {
            Taken::Free(place) => Some(place),
            Taken::FromLargest { place, from, held } => {
                refused!(shared, "client_place_taken", peer = %peer, identity = %from, held, for_identity = %sender.name, "client places full: closed the oldest connection of the client holding the most, for another client's");
                Some(place)
            }
            Taken::Refused { own, largest } => {
                let limit = config.max_client_connections;
                let reason = format!(
                    "too many client connections: {limit} are open, {own} of them yours, and no client holds more than {largest} (the other places are kept for the cluster's nodes)"
                );
                return refuse(
                    shared,
                    "too_many_client_connections",
                    (reader, writer),
                    peer,
                    reason,
                )
                .await;
            }
        },
        _ => None,
    };
    let taken_away = client_place
        .as_ref()
        .map_or_else(CancellationToken::new, |place| place.taken_away().clone());
    let Some(_slot) = pending.admit() else {
        return;
    };
    let accepted = tokio::time::timeout(config.hello_timeout, writer.send(shared.accept.clone()));
    if !matches!(accepted.await, Ok(Ok(()))) {
        tracing::debug!(peer = %peer, "could not answer the hello");
        return;
    }
    let max_frame_bytes = match hello.lane {
        Lane::Normal => config.max_frame_bytes,
        Lane::Priority => MAX_PRIORITY_FRAME_BYTES.min(config.max_frame_bytes),
    };
    reader.decoder_mut().set_max_frame_length(max_frame_bytes);
    tracing::debug!(peer = %peer, role = %hello.role, name = %hello.name, from = %from, lane = ?hello.lane, "accepted a connection");
    let _open = metrics::OpenConnection::new(&config.identity.name, "inbound");

    let idle = Some(config.idle_timeout);
    let end = if hello.listen.is_some() {
        // Replies to a peer that listens go to its listener: this connection only reads.
        tokio::select! {
            biased;
            () = taken_away.cancelled() => End::PlaceTaken,
            end = read_frames(shared, hello.lane, &mut reader, &from, &sender, idle) => end,
        }
    } else {
        let (queue, mut replies) = shared.new_queue();
        let close = shared.cancel.child_token();
        let _route = shared.add_reply_route(&from, queue, close.clone());
        let mut wrote = false;
        tokio::select! {
            biased;
            () = close.cancelled() => End::Local,
            () = taken_away.cancelled() => End::PlaceTaken,
            end = read_frames(shared, Lane::Normal, &mut reader, &from, &sender, idle) => end,
            end = write_frames(&mut writer, &mut replies, &mut wrote) => end,
        }
    };
    drop(client_place);
    match end {
        End::Idle => tracing::info!(
            peer = %peer,
            from = %from,
            idle = ?config.idle_timeout,
            "closed an idle connection"
        ),
        End::Failed(e) => {
            tracing::debug!(peer = %peer, from = %from, error = %e, "connection failed")
        }
        End::ByPeer | End::Local => {
            tracing::debug!(peer = %peer, from = %from, "connection closed")
        }
        End::PlaceTaken => tracing::debug!(
            peer = %peer,
            from = %from,
            "closed a client's connection: its place went to another client"
        ),
    }
}

/// Answers a bad first frame with a reject frame giving `reason`, logs it, and closes the
/// connection gracefully: our side first, then a bounded drain of what the peer still sends,
/// so that the close does not turn into a reset that would destroy the reason in transit.
async fn refuse(
    shared: &Shared,
    label: &'static str,
    (reader, mut writer): (Reader, Writer),
    peer: SocketAddr,
    reason: String,
) {
    refused!(shared, label, peer = %peer, reason = %reason, "refused a connection");
    let linger = async {
        if let Ok(frame) = wire::encode_handshake(&Handshake::Reject { reason }) {
            writer.send(Bytes::from(frame)).await?;
        }
        SinkExt::<Bytes>::close(&mut writer).await?;
        let mut read = reader.into_inner();
        let mut buffer = [0u8; 4096];
        let mut drained = 0;
        while drained < REJECT_DRAIN_BYTES {
            match read.read(&mut buffer).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REJECT_LINGER, linger).await;
}

/// One place among the inbound connections, freed when dropped (however the connection task
/// ends: normally, by shutdown or by a panic).
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place if fewer than `limit` are taken.
    pub(crate) fn take(count: &Arc<AtomicUsize>, limit: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
