//! The replicated state: the service's state plus the client table that makes writes
//! exactly-once (PROTOCOL.md, "Exactly once").
//!
//! Both travel together in every snapshot and state transfer, so a retry is recognised on any
//! replica that becomes primary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::ids::{ClientId, OpNumber, RequestId, Time};
use crate::protocol::messages::Entry;
use crate::state_machine::{ApplyContext, StateMachine};

/// How long a client may stay silent before its entry in the client table is evicted. A retry
/// that arrives later than this may be applied a second time, so client deadlines must be
/// (much) shorter.
pub const DEFAULT_CLIENT_IDLE_EVICTION: Duration = Duration::from_secs(60 * 60);

/// The most clients the table remembers; past it the least recently active is evicted.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// Bounds of the client table. They are part of the replicated state (so every replica evicts
/// the same entries at the same op) and are set when a cluster starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTableLimits {
    /// Evict a client idle for longer than this (measured on the primary's op timestamps).
    pub idle_eviction: Duration,
    /// Evict the least recently active clients beyond this many.
    pub max_clients: usize,
}

impl Default for ClientTableLimits {
    fn default() -> Self {
        ClientTableLimits {
            idle_eviction: DEFAULT_CLIENT_IDLE_EVICTION,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

/// The last write of one client and its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord<R> {
    /// The client's latest applied request seq.
    pub seq: u64,
    /// The reply it got.
    pub reply: R,
    /// When it was applied (primary's clock).
    pub last_active: Time,
    /// The name of the authenticated client that owns this client id: a write for it from
    /// another identity is refused ([`crate::protocol::messages::ServiceError::Forbidden`]).
    pub owner: String,
}

/// `client -> (last request seq, its reply)`, bounded by [`ClientTableLimits`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTable<R> {
    limits: ClientTableLimits,
    records: BTreeMap<ClientId, ClientRecord<R>>,
    /// `(last_active, client)`, to evict the oldest first; derived from `records`.
    #[serde(skip)]
    by_activity: BTreeSet<(Time, ClientId)>,
}

/// What the client table says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen<R> {
    /// Never applied: go ahead.
    New,
    /// Applied already; this is its reply.
    Done(R),
    /// Older than the client's latest applied request: a delayed duplicate.
    Stale,
}

impl<R: Clone> ClientTable<R> {
    /// An empty table with these limits.
    pub fn new(limits: ClientTableLimits) -> Self {
        ClientTable {
            limits,
            records: BTreeMap::new(),
            by_activity: BTreeSet::new(),
        }
    }

    /// Whether `request` was applied already.
    pub fn check(&self, request: RequestId) -> Seen<R> {
        match self.records.get(&request.client) {
            None => Seen::New,
            Some(r) if r.seq == request.seq => Seen::Done(r.reply.clone()),
            Some(r) if r.seq > request.seq => Seen::Stale,
            Some(_) => Seen::New,
        }
    }

    /// The name of the identity that owns `client`'s id, if the table remembers the client.
    pub fn owner(&self, client: ClientId) -> Option<&str> {
        self.records.get(&client).map(|r| r.owner.as_str())
    }

    /// Records that `request` of `owner` was applied with `reply` at `time`, then evicts idle
    /// clients.
    fn record(&mut self, request: RequestId, reply: R, time: Time, owner: &str) {
        if let Some(old) = self.records.get(&request.client) {
            self.by_activity.remove(&(old.last_active, request.client));
        }
        self.records.insert(
            request.client,
            ClientRecord {
                seq: request.seq,
                reply,
                last_active: time,
                owner: owner.to_owned(),
            },
        );
        self.by_activity.insert((time, request.client));
        while let Some(&(oldest, client)) = self.by_activity.first() {
            let idle = time.saturating_since(oldest) > self.limits.idle_eviction;
            if !idle && self.records.len() <= self.limits.max_clients {
                break;
            }
            self.by_activity.remove(&(oldest, client));
            self.records.remove(&client);
        }
    }

    fn rebuild_index(&mut self) {
        self.by_activity = self
            .records
            .iter()
            .map(|(c, r)| (r.last_active, *c))
            .collect();
    }

    /// How many clients are remembered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, by client.
    pub fn records(&self) -> &BTreeMap<ClientId, ClientRecord<R>> {
        &self.records
    }
}

/// The service state, the client table and the op they are at: what every replica holds.
pub struct ReplicatedState<S: StateMachine> {
    service: S,
    clients: ClientTable<S::Reply>,
    applied: OpNumber,
}

/// The layout of a snapshot, as the encoding of one value (what [`ReplicatedState::snapshot`]
/// writes piece by piece; a test checks that they agree).
#[cfg(test)]
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct SnapshotRef<'a, R: Clone + Serialize + serde::de::DeserializeOwned> {
    applied: OpNumber,
    clients: std::borrow::Cow<'a, ClientTable<R>>,
    service: Vec<u8>,
}

/// Reads consecutive chunks as one stream, dropping each chunk once read.
struct ChunkReader {
    chunks: std::collections::VecDeque<Vec<u8>>,
    position: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(front) = self.chunks.front() {
            if self.position < front.len() {
                let n = buf.len().min(front.len() - self.position);
                buf[..n].copy_from_slice(&front[self.position..self.position + n]);
                self.position += n;
                return Ok(n);
            }
            self.chunks.pop_front();
            self.position = 0;
        }
        Ok(0)
    }
}

impl<S: StateMachine> ReplicatedState<S> {
    /// A state at op 0: the service's initial state and an empty client table.
    pub fn new(service: S, limits: ClientTableLimits) -> Self {
        ReplicatedState {
            service,
            clients: ClientTable::new(limits),
            applied: OpNumber(0),
        }
    }

    /// The service state.
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The client table.
    pub fn clients(&self) -> &ClientTable<S::Reply> {
        &self.clients
    }

    /// The last op applied.
    pub fn applied(&self) -> OpNumber {
        self.applied
    }

    /// Applies `entry`, which must be the next op. A request already in the client table is
    /// not applied again: its recorded reply is returned.
    pub fn apply(&mut self, entry: &Entry<S::Command>) -> S::Reply {
        debug_assert_eq!(entry.op, self.applied.next(), "ops apply in order");
        self.applied = entry.op;
        let seen = self.clients.check(entry.request);
        if let Seen::Done(reply) = seen {
            return reply;
        }
        let context = ApplyContext {
            op: entry.op,
            request: entry.request,
            time: entry.time,
        };
        let reply = self.service.apply(&context, &entry.command);
        // A delayed duplicate of a request its client gave up on can reach the log while the
        // client's next request is in flight, and so be applied after it. It must not replace
        // the newer request's record: the table would forget that one and apply its retry a
        // second time. (It stays `Stale`, so it is never applied again either.)
        if matches!(seen, Seen::New) {
            self.clients
                .record(entry.request, reply.clone(), entry.time, &entry.owner);
        }
        reply
    }

    /// The whole state as bytes: the encoding of `SnapshotRef` (op, client table, then the
    /// service's snapshot as a length-prefixed byte string), built in one buffer: the service
    /// encodes straight into it ([`StateMachine::snapshot_into`]) after room for the longest
    /// length prefix, which is then written and the bytes moved up in place.
    pub fn snapshot(&self) -> Result<Vec<u8>, CodecError> {
        const MAX_PREFIX: usize = 9; // a bincode varint of a u64
        let mut out = codec::encode(&(self.applied, &self.clients))?;
        let mark = out.len();
        out.resize(mark + MAX_PREFIX, 0);
        self.service.snapshot_into(&mut out)?;
        let len = out.len() - mark - MAX_PREFIX;
        let prefix = codec::encode(&(len as u64))?;
        out[mark..mark + prefix.len()].copy_from_slice(&prefix);
        out.copy_within(mark + MAX_PREFIX.., mark + prefix.len());
        out.truncate(out.len() - (MAX_PREFIX - prefix.len()));
        Ok(out)
    }

    /// Rebuilds a state from [`ReplicatedState::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        Self::restore_from_chunks(vec![bytes.to_vec()])
    }

    /// Rebuilds a state from [`ReplicatedState::snapshot`] bytes cut in consecutive chunks,
    /// without gathering them: each chunk is freed as soon as it has been decoded, and the
    /// service decodes from the chunks ([`StateMachine::restore_from_reader`]).
    pub fn restore_from_chunks(chunks: Vec<Vec<u8>>) -> Result<Self, CodecError> {
        let mut reader = ChunkReader {
            chunks: chunks.into(),
            position: 0,
        };
        let applied: OpNumber = codec::decode_from_reader(&mut reader)?;
        let mut clients: ClientTable<S::Reply> = codec::decode_from_reader(&mut reader)?;
        let len: u64 = codec::decode_from_reader(&mut reader)?;
        let service = {
            let mut bytes = std::io::BufReader::new(std::io::Read::take(&mut reader, len));
            let service = S::restore_from_reader(&mut bytes)?;
            if bytes.into_inner().limit() != 0 {
                return Err(CodecError::Decode(
                    "the service's snapshot is shorter than its length prefix".into(),
                ));
            }
            service
        };
        codec::expect_end(&mut reader)?;
        clients.rebuild_index();
        Ok(ReplicatedState {
            service,
            clients,
            applied,
        })
    }

    /// A digest of service, client table and op: equal on replicas holding the same state.
    pub fn digest(&self) -> u64 {
        let clients = codec::digest(&self.clients).unwrap_or(0);
        codec::fnv1a(
            &[
                self.service.digest().to_le_bytes(),
                clients.to_le_bytes(),
                self.applied.0.to_le_bytes(),
            ]
            .concat(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientId, RequestId};
    use crate::orders::{OrderBook, OrderCommand};

    fn state_with_orders(n: u64) -> ReplicatedState<OrderBook> {
        let mut state = ReplicatedState::new(
            OrderBook::synthetic(300, 17, 1),
            ClientTableLimits::default(),
        );
        for seq in 1..=n {
            let _reply = state.apply(&Entry {
                op: OpNumber(seq),
                request: RequestId {
                    client: ClientId(5 + seq % 3),
                    seq,
                },
                time: Time(seq),
                owner: "client".into(),
                command: OrderCommand::PlaceOrder {
                    postcode: "SW1A 1AA".into(),
                    items: vec![format!("dish {seq}")],
                },
            });
        }
        state
    }

    #[test]
    fn snapshot_is_the_encoding_of_its_layout_and_restores_from_any_chunking() {
        let state = state_with_orders(20);
        let bytes = state.snapshot().unwrap();
        let layout = codec::encode(&SnapshotRef::<<OrderBook as StateMachine>::Reply> {
            applied: state.applied,
            clients: std::borrow::Cow::Borrowed(&state.clients),
            service: state.service.snapshot().unwrap(),
        })
        .unwrap();
        assert_eq!(bytes, layout);
        for size in [1, 7, 64, 1000, bytes.len()] {
            let chunks: Vec<Vec<u8>> = bytes.chunks(size).map(<[u8]>::to_vec).collect();
            let back = ReplicatedState::<OrderBook>::restore_from_chunks(chunks).unwrap();
            assert_eq!(back.digest(), state.digest());
            assert_eq!(back.applied(), OpNumber(20));
        }
    }

    #[test]
    fn truncated_or_extended_snapshots_are_refused() {
        let bytes = state_with_orders(3).snapshot().unwrap();
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(ReplicatedState::<OrderBook>::restore(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ReplicatedState::<OrderBook>::restore(&longer).is_err());
    }
}
