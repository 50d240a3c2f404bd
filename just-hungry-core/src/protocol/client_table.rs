//! The client table: each client's last request and its reply, which makes writes exactly-once
//! (docs/PROTOCOL.md, "Exactly once"). It travels with the service's state in every snapshot
//! and state transfer ([`crate::protocol::replicated_state`]), so a retry is recognised on any
//! replica that becomes primary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, RequestId, Time};

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
    pub(super) fn record(&mut self, request: RequestId, reply: R, time: Time, owner: &str) {
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

    pub(super) fn rebuild_index(&mut self) {
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
