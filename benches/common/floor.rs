//! The floor: what a replicated place-order costs with no protocol at all. The same hops as
//! the real path, over TCP on 127.0.0.1, carrying frames of the same sizes ([`HopSizes`]):
//!
//! ```text
//! clients ==> relay ==> primary ==> every backup
//!         <==       <==         <==  (the primary answers once every backup has echoed)
//! ```
//!
//! Each hop pair past the relay has one connection (`TCP_NODELAY`), carrying every client's
//! messages tagged with a request id in their first 8 bytes. The clients reach the relay in one
//! of two ways ([`ClientLinks`]): multiplexed over one shared connection (the cheapest relay
//! one can write), or each over a connection of its own, as the replicated path's clients do
//! (each has its own endpoint). Frames are length-prefixed with tokio-util's
//! `LengthDelimitedCodec`, as the real transport's are. Each connection has a reader and a
//! writer task; a writer feeds every queued frame, then flushes once (as the real transport's
//! writers do). The primary is one task that owns the table of requests waiting for backups.
//! Nothing is encoded, decoded, validated, applied or logged.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::orders::HopSizes;

/// Frames waiting per writer.
const QUEUE_FRAMES: usize = 4096;

/// How long a floor request may take before the bench fails: a floor that stops answering is
/// broken, not slow.
const DEADLINE: Duration = Duration::from_secs(10);

type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;

/// Every task of one floor, aborted together.
#[derive(Clone, Default)]
struct Tasks(Arc<Mutex<Vec<AbortHandle>>>);

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
    }

    fn abort_all(&self) {
        for handle in self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            handle.abort();
        }
    }
}

/// How the floor's clients reach its relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientLinks {
    /// Every client over one connection, multiplexed by request id: `floor/...`.
    Shared,
    /// Each client over a connection of its own, as the replicated path's clients:
    /// `floor_per_client/...`.
    PerClient,
}

impl ClientLinks {
    /// The bench group of the floor with these links.
    pub fn group(self) -> &'static str {
        match self {
            ClientLinks::Shared => "floor",
            ClientLinks::PerClient => "floor_per_client",
        }
    }
}

/// Bits of the relay's tag that carry the client's own tag; the bits above name its
/// connection.
const CLIENT_TAG_BITS: u32 = 48;

/// A running floor: a relay, a primary and `replicas - 1` backups.
pub struct Floor {
    tasks: Tasks,
    links: ClientLinks,
    relay: SocketAddr,
    request_bytes: usize,
}

/// One connection to the relay, with its callers' requests in flight; cloned, its clones share
/// the connection.
#[derive(Clone)]
pub struct FloorClient {
    to_relay: mpsc::Sender<Bytes>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>,
    next_tag: Arc<AtomicU64>,
    request_bytes: usize,
}

/// A frame of `size` bytes (at least 8) starting with `tag`.
fn frame(tag: u64, size: usize) -> Bytes {
    let size = size.max(8);
    let mut frame = BytesMut::with_capacity(size);
    frame.put_u64_le(tag);
    frame.resize(size, 0);
    frame.freeze()
}

/// The tag of a frame; `None` if it is too short to have one.
fn tag(frame: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = frame.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Splits a connection into its frame reader and the queue of its writer task.
fn open(stream: TcpStream, tasks: &Tasks) -> (Reader, mpsc::Sender<Bytes>) {
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (read, write) = stream.into_split();
    let (queue, frames) = mpsc::channel(QUEUE_FRAMES);
    tasks.spawn(write_frames(
        FramedWrite::new(write, LengthDelimitedCodec::new()),
        frames,
    ));
    (FramedRead::new(read, LengthDelimitedCodec::new()), queue)
}

async fn write_frames(
    mut writer: FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>,
    mut frames: mpsc::Receiver<Bytes>,
) {
    while let Some(first) = frames.recv().await {
        if writer.feed(first).await.is_err() {
            return;
        }
        while let Ok(frame) = frames.try_recv() {
            if writer.feed(frame).await.is_err() {
                return;
            }
        }
        if SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
            return;
        }
    }
}

async fn accept(listener: &TcpListener) -> TcpStream {
    listener.accept().await.expect("a floor connection").0
}

async fn connect(address: SocketAddr) -> TcpStream {
    TcpStream::connect(address)
        .await
        .expect("a floor connection")
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("a port on 127.0.0.1");
    let address = listener.local_addr().expect("a bound address");
    (listener, address)
}

impl Floor {
    /// Starts the floor of `replicas` replicas, its clients linked to the relay by `links`.
    pub async fn start(replicas: usize, sizes: HopSizes, links: ClientLinks) -> Floor {
        let tasks = Tasks::default();
        let mut backups = Vec::new();
        for _ in 1..replicas {
            let (listener, address) = listen().await;
            tasks.spawn(backup(listener, sizes, tasks.clone()));
            backups.push(address);
        }
        let (listener, primary_address) = listen().await;
        tasks.spawn(primary(listener, backups, sizes, tasks.clone()));
        let (listener, relay_address) = listen().await;
        tasks.spawn(relay(listener, primary_address, sizes, tasks.clone()));
        Floor {
            tasks,
            links,
            relay: relay_address,
            request_bytes: sizes.request,
        }
    }

    /// A client for each of `clients` callers: clones of one connection, or a connection each.
    pub async fn clients(&self, clients: usize) -> Vec<FloorClient> {
        match self.links {
            ClientLinks::Shared => {
                let shared = self.connect().await;
                vec![shared; clients]
            }
            ClientLinks::PerClient => {
                let mut all = Vec::with_capacity(clients);
                for _ in 0..clients {
                    all.push(self.connect().await);
                }
                all
            }
        }
    }

    /// Opens a connection to the relay, with the task that routes its replies.
    async fn connect(&self) -> FloorClient {
        let (mut replies, to_relay) = open(connect(self.relay).await, &self.tasks);
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>> = Arc::default();
        let answered = waiting.clone();
        self.tasks.spawn(async move {
            while let Some(Ok(reply)) = replies.next().await {
                let done = tag(&reply).and_then(|tag| {
                    answered
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&tag)
                });
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        });
        FloorClient {
            to_relay,
            waiting,
            next_tag: Arc::new(AtomicU64::new(0)),
            request_bytes: self.request_bytes,
        }
    }

    /// Stops every task (which closes every connection).
    pub fn shutdown(self) {
        self.tasks.abort_all();
    }
}

impl FloorClient {
    /// One round trip through relay, primary and every backup.
    pub async fn call(&self) {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let (done, answered) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tag, done);
        self.to_relay
            .send(frame(tag, self.request_bytes))
            .await
            .expect("the floor's relay connection is open");
        tokio::time::timeout(DEADLINE, answered)
            .await
            .expect("the floor answers within its deadline")
            .expect("the floor's reply reader runs");
    }
}

/// A backup-like node: echoes every frame of its primary as a `PrepareOk`-sized frame.
async fn backup(listener: TcpListener, sizes: HopSizes, tasks: Tasks) {
    let (mut prepares, to_primary) = open(accept(&listener).await, &tasks);
    while let Some(Ok(prepare)) = prepares.next().await {
        let Some(tag) = tag(&prepare) else { continue };
        if to_primary.send(frame(tag, sizes.prepare_ok)).await.is_err() {
            return;
        }
    }
}

/// Where a frame reached the primary from.
enum Source {
    Relay,
    Backup,
}

/// A primary-like node: sends every request of the relay to every backup, and answers the relay
/// once each backup has echoed it (at once without backups).
async fn primary(listener: TcpListener, backups: Vec<SocketAddr>, sizes: HopSizes, tasks: Tasks) {
    let (inbox, mut received) = mpsc::channel::<(Source, Bytes)>(QUEUE_FRAMES);
    let mut to_backups = Vec::with_capacity(backups.len());
    for address in &backups {
        let (acks, to_backup) = open(connect(*address).await, &tasks);
        tasks.spawn(forward_into(acks, inbox.clone(), || Source::Backup));
        to_backups.push(to_backup);
    }
    let (requests, to_relay) = open(accept(&listener).await, &tasks);
    tasks.spawn(forward_into(requests, inbox, || Source::Relay));

    let mut waiting: HashMap<u64, usize> = HashMap::new();
    while let Some((from, frame_in)) = received.recv().await {
        let Some(tag) = tag(&frame_in) else { continue };
        let answer = match from {
            Source::Relay if to_backups.is_empty() => true,
            Source::Relay => {
                waiting.insert(tag, to_backups.len());
                for to_backup in &to_backups {
                    if to_backup.send(frame(tag, sizes.prepare)).await.is_err() {
                        return;
                    }
                }
                false
            }
            Source::Backup => match waiting.entry(tag) {
                Entry::Occupied(mut left) => {
                    *left.get_mut() -= 1;
                    let all = *left.get() == 0;
                    if all {
                        left.remove();
                    }
                    all
                }
                Entry::Vacant(_) => false,
            },
        };
        if answer && to_relay.send(frame(tag, sizes.response)).await.is_err() {
            return;
        }
    }
}

/// Hands every frame of `reader` to `inbox`, marked with where it came from.
async fn forward_into(
    mut reader: Reader,
    inbox: mpsc::Sender<(Source, Bytes)>,
    from: impl Fn() -> Source,
) {
    while let Some(Ok(frame)) = reader.next().await {
        if inbox.send((from(), frame.freeze())).await.is_err() {
            return;
        }
    }
}

/// A front-end-like relay: client requests go to the primary as `Forward`-sized frames, the
/// primary's answers back to the client's connection. Each connection's requests are tagged
/// with its number above the client's own tag ([`CLIENT_TAG_BITS`]).
async fn relay(listener: TcpListener, primary: SocketAddr, sizes: HopSizes, tasks: Tasks) {
    let (mut answers, to_primary) = open(connect(primary).await, &tasks);
    let (joined, mut joining) = mpsc::unbounded_channel::<mpsc::Sender<Bytes>>();
    tasks.spawn(async move {
        let mut to_clients: Vec<mpsc::Sender<Bytes>> = Vec::new();
        loop {
            tokio::select! {
                // A connection is announced before its first request is read: take it first.
                biased;
                Some(to_client) = joining.recv() => to_clients.push(to_client),
                answer = answers.next() => {
                    let Some(Ok(answer)) = answer else { return };
                    let Some(tag) = tag(&answer) else { continue };
                    let connection = (tag >> CLIENT_TAG_BITS) as usize;
                    let Some(to_client) = to_clients.get(connection) else { continue };
                    let own = tag & ((1 << CLIENT_TAG_BITS) - 1);
                    if to_client.send(frame(own, sizes.response)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    for connection in 0u64.. {
        let (mut requests, to_client) = open(accept(&listener).await, &tasks);
        if joined.send(to_client).is_err() {
            return;
        }
        let to_primary = to_primary.clone();
        tasks.spawn(async move {
            while let Some(Ok(request)) = requests.next().await {
                let Some(tag) = tag(&request) else { continue };
                let tagged = (connection << CLIENT_TAG_BITS) | tag;
                if to_primary.send(frame(tagged, sizes.forward)).await.is_err() {
                    return;
                }
            }
        });
    }
}
