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

    /// Records that `request` was applied with `reply` at `time`, then evicts idle clients.
    fn record(&mut self, request: RequestId, reply: R, time: Time) {
        if let Some(old) = self.records.get(&request.client) {
            self.by_activity.remove(&(old.last_active, request.client));
        }
        self.records.insert(
            request.client,
            ClientRecord {
                seq: request.seq,
                reply,
                last_active: time,
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

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct SnapshotRef<'a, R: Clone + Serialize + serde::de::DeserializeOwned> {
    applied: OpNumber,
    clients: std::borrow::Cow<'a, ClientTable<R>>,
    service: Vec<u8>,
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
                .record(entry.request, reply.clone(), entry.time);
        }
        reply
    }

    /// The whole state as bytes.
    pub fn snapshot(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(&SnapshotRef::<S::Reply> {
            applied: self.applied,
            clients: std::borrow::Cow::Borrowed(&self.clients),
            service: self.service.snapshot()?,
        })
    }

    /// Rebuilds a state from [`ReplicatedState::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        let parts: SnapshotRef<'static, S::Reply> = codec::decode(bytes)?;
        let mut clients = parts.clients.into_owned();
        clients.rebuild_index();
        Ok(ReplicatedState {
            service: S::restore(&parts.service)?,
            clients,
            applied: parts.applied,
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
