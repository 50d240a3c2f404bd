//! [`TcpTransport`]: routing sends to connections, and events to the node.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use just_hungry_core::ids::{Address, Identity};
use just_hungry_core::runtime::random_u64;
use just_hungry_core::transport::{Transport, TransportEvent};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::TcpConfig;
use crate::connection::{self, ConnectionError};
use crate::listener;
use crate::queue::{FrameQueue, FrameReceiver, Push};
use crate::wire::{self, Handshake, Hello, Lane, MAX_HELLO_BYTES, MAX_PRIORITY_FRAME_BYTES};

/// The most distinct peers with an unreachable report waiting for the node. Reports for a peer
/// already waiting are merged into the waiting one.
pub const MAX_PENDING_UNREACHABLE: usize = 4096;

/// A TCP endpoint: one node's [`Transport`] over length-prefixed TCP. See the crate
/// documentation for the wire format and the connection rules.
///
/// Dropping it stops the listener and every connection task (they finish in the background);
/// [`TcpTransport::shutdown`] does the same and waits for them.
pub struct TcpTransport {
    shared: Arc<Shared>,
    events: mpsc::Receiver<TransportEvent>,
    /// What priority connections carried ([`Lane::Priority`]).
    priority: mpsc::Receiver<TransportEvent>,
    /// Priority events handed over in a row since the last normal one.
    priority_streak: usize,
    listen: Option<SocketAddr>,
}

/// The most priority events handed to the node in a row while normal ones wait: a peer that
/// floods its priority connection slows the others' traffic, never stops it.
pub const MAX_PRIORITY_STREAK: usize = 64;

/// The most priority events waiting for the node; a priority connection's reader waits while
/// it is full. At most [`MAX_PRIORITY_FRAME_BYTES`] each.
pub const PRIORITY_QUEUE: usize = 1024;

/// What an outbound peer is doing.
pub(crate) enum Peer {
    /// A connection task owns the other end of this queue (connecting or connected).
    Open(FrameQueue),
    /// The last attempt failed: sends are refused until `until`, then the next send tries again.
    Backoff {
        /// The end of the window.
        until: Instant,
        /// Consecutive failures so far.
        failures: u32,
    },
}

#[derive(Default)]
struct PendingUnreachable {
    order: VecDeque<Address>,
    waiting: HashSet<Address>,
}

/// The reply queue of one inbound connection whose peer listens nowhere, and the token that
/// closes that connection.
pub(crate) struct ReplyQueue {
    queue: FrameQueue,
    close: CancellationToken,
}

/// The state every connection task shares with the transport.
pub(crate) struct Shared {
    pub(crate) config: TcpConfig,
    local: Address,
    /// The frame we open every outbound normal connection with.
    pub(crate) hello: Bytes,
    /// The frame we open every outbound priority connection with; `None` for an endpoint
    /// that listens nowhere (a client), which opens none.
    pub(crate) priority_hello: Option<Bytes>,
    /// The frame we accept every valid hello with.
    pub(crate) accept: Bytes,
    events: mpsc::Sender<TransportEvent>,
    /// Where priority connections deliver.
    priority_events: mpsc::Sender<TransportEvent>,
    /// Bytes of payloads in `events`, at most `inbound_budget_max`.
    pub(crate) inbound_budget: Semaphore,
    pub(crate) inbound_budget_max: u32,
    unreachable: Mutex<PendingUnreachable>,
    unreachable_ready: Notify,
    /// The outbound peers of each lane, by [`Lane::index`].
    pub(crate) peers: [Mutex<HashMap<Address, Peer>>; 2],
    /// Reply queues of inbound connections whose peer listens nowhere, by `conn:N` address.
    replies: Mutex<HashMap<Address, ReplyQueue>>,
    pub(crate) inbound_connections: Arc<AtomicUsize>,
    /// Of those, the places of admitted clients' connections (at most
    /// [`TcpConfig::max_client_connections`], shared fairly between client identities).
    pub(crate) client_places: Arc<crate::client_places::ClientPlaces>,
    /// Refused connections logged at info this second ([`crate::log_budget`]).
    pub(crate) refusal_log: Mutex<crate::log_budget::LogBudget>,
    /// Inbound connections still in their TLS handshake or hello, by id (so oldest first):
    /// each holds its place among the inbound connections here until it is admitted.
    pub(crate) handshaking: Mutex<std::collections::BTreeMap<u64, crate::connection::Handshaking>>,
    /// Bytes of frames in every outbound and reply queue.
    pub(crate) queued_bytes: Arc<AtomicUsize>,
    next_id: AtomicU64,
    pub(crate) cancel: CancellationToken,
    tasks: TaskTracker,
    runtime: Handle,
    span: tracing::Span,
}

/// Locks `mutex`; a panic elsewhere while it was held leaves only routing entries behind,
/// which are safe to keep using.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.into())
}

impl TcpTransport {
    /// Binds `config.listen` and starts accepting connections. `local_address()` is
    /// `config.advertise` if set, else the bound address with the real port (`127.0.0.1:0`
    /// binds an ephemeral port).
    ///
    /// Must be called inside a tokio runtime; the transport's tasks run on it. Fails if the
    /// address cannot be bound, if `config.listen` is `None` (use
    /// [`TcpTransport::connect_only`]), or if the configuration is unusable
    /// ([`io::ErrorKind::InvalidInput`]).
    pub async fn bind(config: TcpConfig) -> io::Result<Self> {
        let Some(listen) = config.listen else {
            return Err(invalid(
                "bind needs config.listen; use connect_only for an endpoint that listens nowhere",
            ));
        };
        config.check()?;
        let listener = TcpListener::bind(listen).await?;
        let bound = listener.local_addr()?;
        let local = match &config.advertise {
            Some(advertise) => Address::new(advertise.clone()),
            None => Address::new(bound.to_string()),
        };
        let mut transport = Self::start(config, local.clone(), Some(local.to_string()))?;
        transport.listen = Some(bound);
        let shared = transport.shared.clone();
        transport
            .shared
            .spawn(listener::accept_loop(shared, listener));
        tracing::debug!(local = %local, bound = %bound, "listening");
        Ok(transport)
    }

    /// An endpoint that listens nowhere (a client): it connects to others, and their answers
    /// come back over those connections. Its `local_address()` is a synthetic name, unique per
    /// endpoint, that no peer can dial (a send to it is reported unreachable); peers see it as
    /// a `conn:N` address of their own. `config.listen` and `config.advertise` are ignored.
    ///
    /// Must be called inside a tokio runtime. Fails only on an unusable configuration.
    pub async fn connect_only(mut config: TcpConfig) -> io::Result<Self> {
        config.listen = None;
        config.advertise = None;
        config.check()?;
        let local = Address::new(format!(
            "client:{}-{:016x}",
            std::process::id(),
            random_u64()
        ));
        Self::start(config, local, None)
    }

    fn start(config: TcpConfig, local: Address, listen: Option<String>) -> io::Result<Self> {
        let runtime = Handle::try_current().map_err(|_| {
            io::Error::other("a TCP transport must be created inside a tokio runtime")
        })?;
        let hello_on = |lane: Lane| {
            wire::encode_handshake(&Handshake::Hello(Hello {
                role: config.identity.role.as_str().to_owned(),
                name: config.identity.name.clone(),
                listen: listen.clone(),
                service: config.service.clone(),
                lane,
            }))
            .map_err(|e| invalid(e.to_string()))
        };
        let hello = hello_on(Lane::Normal)?;
        let priority_hello = match listen {
            Some(_) => Some(Bytes::from(hello_on(Lane::Priority)?)),
            None => None,
        };
        let accept = wire::encode_handshake(&Handshake::Accept {
            role: config.identity.role.as_str().to_owned(),
            name: config.identity.name.clone(),
            service: config.service.clone(),
        })
        .map_err(|e| invalid(e.to_string()))?;
        if hello.len().max(accept.len()) > MAX_HELLO_BYTES {
            return Err(invalid(format!(
                "role, name and address make a hello longer than {MAX_HELLO_BYTES} bytes"
            )));
        }
        let (events_tx, events) = mpsc::channel(config.inbound_queue);
        let (priority_tx, priority) = mpsc::channel(PRIORITY_QUEUE);
        let inbound_budget_max = config
            .inbound_queue_bytes
            .min(u32::MAX as usize)
            .min(Semaphore::MAX_PERMITS) as u32;
        // At info level, so that the info logs of connection tasks name their endpoint.
        let span = tracing::info_span!("tcp", local = %local);
        let client_places = crate::client_places::ClientPlaces::new(config.max_client_connections);
        let shared = Arc::new(Shared {
            config,
            local,
            hello: Bytes::from(hello),
            priority_hello,
            accept: Bytes::from(accept),
            events: events_tx,
            priority_events: priority_tx,
            inbound_budget: Semaphore::new(inbound_budget_max as usize),
            inbound_budget_max,
            unreachable: Mutex::default(),
            unreachable_ready: Notify::new(),
            peers: Default::default(),
            replies: Mutex::default(),
            inbound_connections: Arc::new(AtomicUsize::new(0)),
            client_places,
            refusal_log: Mutex::default(),
            handshaking: Mutex::default(),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            next_id: AtomicU64::new(1),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            runtime,
            span,
        });
        shared.spawn(crate::metrics::sample_queues(shared.clone()));
        Ok(TcpTransport {
            shared,
            events,
            priority,
            priority_streak: 0,
            listen: None,
        })
    }

    /// The socket address the listener is bound to (`None` for a
    /// [`connect_only`](TcpTransport::connect_only) endpoint).
    pub fn listen_address(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// The configuration this endpoint runs with.
    pub fn config(&self) -> &TcpConfig {
        &self.shared.config
    }

    /// How many inbound connections are open now (in the hello or later); never more than
    /// [`TcpConfig::max_inbound_connections`].
    pub fn inbound_connections(&self) -> usize {
        self.shared.inbound_connections.load(Ordering::Acquire)
    }

    /// How many of the inbound connections are admitted connections of clients now; never
    /// more than [`TcpConfig::max_client_connections`].
    pub fn client_connections(&self) -> usize {
        self.shared.client_places.open()
    }

    /// The bytes of frames queued now to be written, over every connection (outbound peers
    /// and replies). Each connection holds at most [`TcpConfig::outbound_queue_bytes`] (or one
    /// larger frame); a connection's frames stop counting when it closes, as they are freed.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Acquire)
    }

    /// Stops the listener and every connection, and waits until every task of the transport
    /// has finished (every socket is closed). Afterwards `send` drops everything and `recv`
    /// returns the events already queued, then `None`. Calling it twice is harmless.
    pub async fn shutdown(&mut self) {
        self.shared.stop();
        self.shared.tasks.wait().await;
        self.events.close();
        self.priority.close();
        for peers in &self.shared.peers {
            lock(peers).clear();
        }
        lock(&self.shared.replies).clear();
    }

    fn release(&self, event: TransportEvent) -> TransportEvent {
        if let TransportEvent::Message { payload, .. } = &event {
            self.shared
                .inbound_budget
                .add_permits(self.shared.inbound_cost(payload.len()) as usize);
        }
        event
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

impl Transport for TcpTransport {
    fn local_address(&self) -> Address {
        self.shared.local.clone()
    }

    /// [`TcpConfig::max_frame_bytes`]: a frame's length.
    fn max_payload_bytes(&self) -> usize {
        self.shared.config.max_frame_bytes
    }

    /// Queues `payload` for `to` and returns at once. `to` is a listener's `host:port` (one
    /// reused connection per peer, opened on first use) or a `conn:N` address from a received
    /// message (the reply goes back over that connection). Reported unreachable, now or once
    /// the connection fails: an address of neither shape, a `conn:N` connection that has
    /// closed, a peer inside its back-off window, a refused, reset or timed-out connection.
    /// Dropped silently (logged): a full queue, a payload over `max_frame_bytes`, a send after
    /// shutdown.
    fn send(&self, to: &Address, payload: Vec<u8>) {
        self.send_on(Lane::Normal, to, payload);
    }

    /// Queues `payload` for `to` on the priority connection to it ([`Lane::Priority`]), which
    /// is written and delivered ahead of the normal one's traffic. On the normal connection
    /// instead, like [`Transport::send`]: a payload over [`MAX_PRIORITY_FRAME_BYTES`], a
    /// reply to a `conn:N` address, any send from an endpoint that listens nowhere.
    fn send_priority(&self, to: &Address, payload: Vec<u8>) {
        let lane = if payload.len() <= MAX_PRIORITY_FRAME_BYTES
            && self.shared.priority_hello.is_some()
            && !wire::is_connection_address(to.as_str())
        {
            Lane::Priority
        } else {
            Lane::Normal
        };
        self.send_on(lane, to, payload);
    }

    /// The next event. Messages from one peer on one lane come in the order it sent them;
    /// priority messages come before normal ones waiting (at most [`MAX_PRIORITY_STREAK`] in
    /// a row while normal ones wait). Unreachable reports come first, and those for one peer
    /// are merged while one is waiting. `None` only after [`TcpTransport::shutdown`], once the
    /// queued events are taken.
    async fn recv(&mut self) -> Option<TransportEvent> {
        loop {
            if let Some(event) = self.ready() {
                return Some(event);
            }
            tokio::select! {
                biased;
                Some(event) = self.priority.recv() => {
                    self.priority_streak += 1;
                    return Some(event);
                }
                event = self.events.recv() => {
                    self.priority_streak = 0;
                    return match event {
                        Some(event) => Some(self.release(event)),
                        None => self.ready(),
                    };
                }
                () = self.shared.unreachable_ready.notified() => {}
            }
        }
    }

    fn try_recv(&mut self) -> Option<TransportEvent> {
        self.ready()
    }
}

impl TcpTransport {
    /// The next event ready now, in the order [`Transport::recv`] documents.
    fn ready(&mut self) -> Option<TransportEvent> {
        if let Some(to) = self.shared.pop_unreachable() {
            return Some(TransportEvent::Unreachable { to });
        }
        if self.priority_streak < MAX_PRIORITY_STREAK
            && let Ok(event) = self.priority.try_recv()
        {
            self.priority_streak += 1;
            return Some(event);
        }
        if let Ok(event) = self.events.try_recv() {
            self.priority_streak = 0;
            return Some(self.release(event));
        }
        let event = self.priority.try_recv().ok()?;
        self.priority_streak += 1;
        Some(event)
    }

    fn send_on(&self, lane: Lane, to: &Address, payload: Vec<u8>) {
        let shared = &self.shared;
        if shared.cancel.is_cancelled() {
            tracing::debug!(parent: &shared.span, to = %to, "send after shutdown: dropped");
            return;
        }
        if payload.len() > shared.config.max_frame_bytes {
            tracing::warn!(
                parent: &shared.span,
                to = %to,
                bytes = payload.len(),
                limit = shared.config.max_frame_bytes,
                "message longer than max_frame_bytes: dropped"
            );
            return;
        }
        let frame = Bytes::from(payload);
        if wire::is_connection_address(to.as_str()) {
            shared.send_reply(to, frame);
        } else if wire::is_dialable(to.as_str()) {
            shared.send_to_peer(lane, to, frame);
        } else {
            tracing::debug!(parent: &shared.span, to = %to, "not a host:port address: unreachable");
            shared.report_unreachable(to);
        }
    }
}

impl Shared {
    fn stop(&self) {
        self.cancel.cancel();
        self.tasks.close();
    }

    /// Runs `task` on the transport's runtime, in its tracing span, tracked for shutdown.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .spawn_on(task.instrument(self.span.clone()), &self.runtime);
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A new frame queue of the configured bounds, counted in the transport's queued bytes.
    pub(crate) fn new_queue(&self) -> (FrameQueue, FrameReceiver) {
        FrameQueue::new(
            self.next_id(),
            self.config.outbound_queue,
            self.config.outbound_queue_bytes,
            self.queued_bytes.clone(),
        )
    }

    fn inbound_cost(&self, len: usize) -> u32 {
        len.min(self.inbound_budget_max as usize) as u32
    }

    /// Hands a received payload to the node, waiting while the inbound queue is full (in
    /// frames or bytes): the caller stops reading its socket meanwhile, which is the TCP
    /// backpressure. `Err` once the transport is shut down.
    pub(crate) async fn deliver(
        &self,
        lane: Lane,
        from: &Address,
        sender: &Identity,
        payload: Vec<u8>,
    ) -> Result<(), ()> {
        if lane == Lane::Priority {
            // Bounded in count, and each frame in size by its connection's reader.
            let event = TransportEvent::Message {
                from: from.clone(),
                sender: sender.clone(),
                payload,
            };
            return self.priority_events.send(event).await.map_err(|_| ());
        }
        let cost = self.inbound_cost(payload.len());
        let permit = self
            .inbound_budget
            .acquire_many(cost)
            .await
            .map_err(|_| ())?;
        let event = TransportEvent::Message {
            from: from.clone(),
            sender: sender.clone(),
            payload,
        };
        self.events.send(event).await.map_err(|_| ())?;
        // `recv` gives the bytes back when the node takes the message.
        permit.forget();
        Ok(())
    }

    /// Tells the node that `to` cannot be reached, unless a report for it is already waiting.
    pub(crate) fn report_unreachable(&self, to: &Address) {
        let mut pending = lock(&self.unreachable);
        if pending.waiting.contains(to) {
            return;
        }
        if pending.order.len() >= MAX_PENDING_UNREACHABLE {
            tracing::debug!(parent: &self.span, to = %to, "too many unreachable reports waiting: dropped");
            return;
        }
        pending.waiting.insert(to.clone());
        pending.order.push_back(to.clone());
        drop(pending);
        self.unreachable_ready.notify_one();
    }

    fn pop_unreachable(&self) -> Option<Address> {
        let mut pending = lock(&self.unreachable);
        let to = pending.order.pop_front()?;
        pending.waiting.remove(&to);
        Some(to)
    }

    fn send_reply(&self, to: &Address, frame: Bytes) {
        let mut replies = lock(&self.replies);
        match replies.get(to).map(|reply| reply.queue.push(frame)) {
            Some(Push::Queued) => {}
            Some(Push::Full) => {
                // A peer that does not read what it asked for: close its connection rather
                // than hold its replies (it reconnects and asks again if it is only slow).
                if let Some(reply) = replies.remove(to) {
                    reply.close.cancel();
                }
                drop(replies);
                tracing::info!(
                    parent: &self.span,
                    to = %to,
                    frames = self.config.outbound_queue,
                    bytes = self.config.outbound_queue_bytes,
                    "closed a connection whose peer does not read its replies (reply queue full)"
                );
                self.report_unreachable(to);
            }
            Some(Push::Closed(_)) | None => {
                drop(replies);
                tracing::debug!(parent: &self.span, to = %to, "connection closed: unreachable");
                self.report_unreachable(to);
            }
        }
    }

    fn send_to_peer(self: &Arc<Self>, lane: Lane, to: &Address, frame: Bytes) {
        let mut peers = lock(&self.peers[lane.index()]);
        let failures = match peers.get(to) {
            Some(Peer::Open(queue)) => match queue.push(frame) {
                Push::Queued => return,
                Push::Full => {
                    drop(peers);
                    tracing::debug!(parent: &self.span, to = %to, "outbound queue full: message dropped");
                    return;
                }
                Push::Closed(frame) => {
                    // The task ended without retiring its entry (it cannot, but be safe).
                    peers.remove(to);
                    return self.open(lane, peers, to, frame, 0);
                }
            },
            Some(Peer::Backoff { until, failures }) => {
                if Instant::now() < *until {
                    drop(peers);
                    tracing::trace!(parent: &self.span, to = %to, "inside the back-off window: unreachable");
                    self.report_unreachable(to);
                    return;
                }
                *failures
            }
            None => {
                if peers.len() >= self.config.max_peers {
                    let now = Instant::now();
                    peers.retain(
                        |_, peer| !matches!(peer, Peer::Backoff { until, .. } if *until <= now),
                    );
                }
                if peers.len() >= self.config.max_peers {
                    drop(peers);
                    tracing::info!(parent: &self.span, to = %to, limit = self.config.max_peers, "too many outbound peers: unreachable");
                    self.report_unreachable(to);
                    return;
                }
                0
            }
        };
        self.open(lane, peers, to, frame, failures);
    }

    /// Starts a connection task for `to`, with `first` queued, after `failures` consecutive
    /// failures.
    fn open(
        self: &Arc<Self>,
        lane: Lane,
        mut peers: MutexGuard<'_, HashMap<Address, Peer>>,
        to: &Address,
        first: Bytes,
        failures: u32,
    ) {
        let (queue, receiver) = self.new_queue();
        let _ = queue.push(first);
        let id = queue.id();
        peers.insert(to.clone(), Peer::Open(queue));
        drop(peers);
        tracing::debug!(parent: &self.span, to = %to, lane = ?lane, "connecting");
        self.spawn(connection::run_peer(
            self.clone(),
            lane,
            to.clone(),
            id,
            receiver,
            failures,
        ));
    }

    /// The connection task of `to` (queue `id`) has ended without error and nothing waits in
    /// `receiver`: forget the peer (the next send reconnects). Returns `false`, keeping the
    /// entry, if frames arrived meanwhile.
    pub(crate) fn retire_peer(
        &self,
        lane: Lane,
        to: &Address,
        id: u64,
        receiver: &FrameReceiver,
    ) -> bool {
        let mut peers = lock(&self.peers[lane.index()]);
        if !receiver.is_empty() {
            return false;
        }
        if matches!(peers.get(to), Some(Peer::Open(queue)) if queue.id() == id) {
            peers.remove(to);
        }
        true
    }

    /// The connection task of `to` (queue `id`) failed after `failures` earlier consecutive
    /// failures: refuse sends for a back-off window and tell the node. The frames still queued
    /// are dropped with the task's receiver.
    pub(crate) fn peer_failed(
        &self,
        lane: Lane,
        to: &Address,
        id: u64,
        failures: u32,
        error: &ConnectionError,
    ) {
        let unit = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let delay = self.config.backoff_delay(failures, unit);
        {
            let mut peers = lock(&self.peers[lane.index()]);
            if matches!(peers.get(to), Some(Peer::Open(queue)) if queue.id() == id) {
                peers.insert(
                    to.clone(),
                    Peer::Backoff {
                        until: Instant::now() + delay,
                        failures: failures.saturating_add(1),
                    },
                );
            }
        }
        self.report_unreachable(to);
        // The first failure of a run is worth an operator's attention; retries are not.
        match (failures, error) {
            (0, ConnectionError::Rejected(_)) => {
                tracing::warn!(peer = %to, error = %error, "peer refused our hello")
            }
            (0, _) => {
                tracing::info!(peer = %to, error = %error, retry_after = ?delay, "peer unreachable")
            }
            _ => {
                tracing::debug!(peer = %to, error = %error, failures, retry_after = ?delay, "peer still unreachable")
            }
        }
    }

    /// Registers the reply queue of inbound connection `from`, which `close` closes when the
    /// queue overflows; the guard removes it.
    pub(crate) fn add_reply_route(
        &self,
        from: &Address,
        queue: FrameQueue,
        close: CancellationToken,
    ) -> ReplyRoute<'_> {
        let id = queue.id();
        lock(&self.replies).insert(from.clone(), ReplyQueue { queue, close });
        ReplyRoute {
            shared: self,
            from: from.clone(),
            id,
        }
    }
}

/// Keeps a `conn:N` address routable while its connection lives, however the task ends.
pub(crate) struct ReplyRoute<'a> {
    shared: &'a Shared,
    from: Address,
    id: u64,
}

impl Drop for ReplyRoute<'_> {
    fn drop(&mut self) {
        let mut replies = lock(&self.shared.replies);
        if replies
            .get(&self.from)
            .is_some_and(|r| r.queue.id() == self.id)
        {
            replies.remove(&self.from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use just_hungry_core::ids::NodeRole;

    #[tokio::test]
    async fn priority_events_come_first_and_never_starve_normal_ones() {
        let config = TcpConfig::server(
            "127.0.0.1:0".parse().unwrap(),
            Identity::new(NodeRole::Replica, "node"),
        );
        let mut transport = TcpTransport::bind(config).await.unwrap();
        let from = Address::new("127.0.0.1:9");
        let sender = Identity::new(NodeRole::Replica, "peer");
        let shared = transport.shared.clone();
        for i in 0..3u8 {
            shared
                .deliver(Lane::Normal, &from, &sender, vec![0, i])
                .await
                .unwrap();
        }
        let flood = MAX_PRIORITY_STREAK * 2;
        for i in 0..flood {
            shared
                .deliver(Lane::Priority, &from, &sender, vec![1, i as u8])
                .await
                .unwrap();
        }
        let mut lanes = Vec::new();
        while let Some(event) = transport.try_recv() {
            match event {
                TransportEvent::Message { payload, .. } => lanes.push(payload[0]),
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut expected = vec![1; MAX_PRIORITY_STREAK];
        expected.push(0);
        expected.extend(vec![1; MAX_PRIORITY_STREAK]);
        expected.extend([0, 0]);
        assert_eq!(lanes, expected);
        // `recv` prefers them likewise.
        shared
            .deliver(Lane::Normal, &from, &sender, vec![0])
            .await
            .unwrap();
        shared
            .deliver(Lane::Priority, &from, &sender, vec![1])
            .await
            .unwrap();
        for lane in [1, 0] {
            match transport.recv().await {
                Some(TransportEvent::Message { payload, .. }) => assert_eq!(payload[0], lane),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
