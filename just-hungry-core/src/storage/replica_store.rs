//! What a durable replica keeps on disk, on top of the [`Wal`]: the views it accepted, the
//! entries it applied or appended, and its whole state whenever a primary installed one (or
//! after [`ReplicaStore::SNAPSHOT_EVERY`] records), so that a restart rebuilds the state it
//! held ([`ReplicaStore::open`]).
//!
//! A WAL record is one byte of kind then its body: `1` the replica's name (the first record
//! of a fresh directory), `2` a view (encoded by [`crate::codec`]), `3` entries in op order
//! (encoded likewise). A snapshot's payload is the length of its header (u64 LE), the header
//! (the name, the newest view and the view the state was installed in, encoded), then the
//! [`ReplicatedState::snapshot`] bytes, which need not fit [`crate::codec::MAX_DECODE_BYTES`].

use std::path::Path;
use std::sync::Arc;

use super::{Disk, FsyncPolicy, Recovered, StorageError, TornTail, Wal, WalOptions};
use crate::codec::{self, CodecError};
use crate::ids::{OpNumber, Time, View, ViewNumber};
use crate::protocol::client_table::ClientTableLimits;
use crate::protocol::messages::Entry;
use crate::protocol::replicated_state::ReplicatedState;
use crate::state_machine::StateMachine;

const NAME: u8 = 1;
const VIEW: u8 = 2;
const ENTRIES: u8 = 3;

/// Why a replica's store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The log failed or is corrupt.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record passed its CRC but does not decode: written by another version, or a bug.
    #[error("record {index} of the write-ahead log in {dir} does not decode: {source}")]
    Record {
        /// The data directory.
        dir: String,
        /// The record's index.
        index: u64,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// The directory holds another replica's data.
    #[error(
        "{dir} holds the data of replica {found:?}, not of {expected:?}: give each replica its own --data-dir"
    )]
    WrongReplica {
        /// The data directory.
        dir: String,
        /// The name asked for.
        expected: String,
        /// The name on disk.
        found: String,
    },
    /// The entries on disk skip an op.
    #[error(
        "record {index} of the write-ahead log in {dir} holds op {found} after op {applied}: an op is missing"
    )]
    Gap {
        /// The data directory.
        dir: String,
        /// The record's index.
        index: u64,
        /// The op applied before it.
        applied: OpNumber,
        /// The op found.
        found: OpNumber,
    },
    /// The state or an entry could not be encoded.
    #[error("cannot encode for the write-ahead log: {0}")]
    Encode(CodecError),
}

/// What a replica held when it stopped, rebuilt from its disk.
pub struct RecoveredReplica<S: StateMachine> {
    /// The newest view it accepted, if any.
    pub view: Option<View>,
    /// The view in which a primary last installed its state (0 if none did).
    pub state_view: ViewNumber,
    /// Its state: the snapshot's, then every entry after it applied in op order.
    pub state: ReplicatedState<S>,
    /// The torn tail cut from the log, if there was one.
    pub torn: Option<TornTail>,
}

/// A replica's view of its data directory: see the module documentation.
///
/// The replica records what changes ([`ReplicaStore::record_view`],
/// [`ReplicaStore::record_entries`], [`ReplicaStore::record_state`]) and calls
/// [`ReplicaStore::commit`] before it sends anything that depends on them (an
/// acknowledgement, a view started): under [`FsyncPolicy::Always`] that one call syncs every
/// record since the last (group commit).
pub struct ReplicaStore {
    wal: Wal,
    dir: String,
    name: String,
    policy: FsyncPolicy,
    /// When the log was last synced (for [`FsyncPolicy::Batch`]).
    synced_at: Time,
    records_since_snapshot: u64,
    scratch: Vec<u8>,
}

impl ReplicaStore {
    /// After this many records the next [`ReplicaStore::record_state`] or
    /// [`ReplicaStore::snapshot_due`] snapshot lets the old segments go.
    pub const SNAPSHOT_EVERY: u64 = 100_000;

    /// Opens the data directory `dir` of replica `name` and rebuilds what it held: `None` for a
    /// directory that holds no state yet (the replica starts from `initial`, its pre-defined
    /// data, as a memory-only one).
    pub fn open<S: StateMachine>(
        disk: Arc<dyn Disk>,
        dir: &Path,
        name: &str,
        policy: FsyncPolicy,
        now: Time,
        initial: S,
        limits: ClientTableLimits,
    ) -> Result<(ReplicaStore, Option<RecoveredReplica<S>>), StoreError> {
        let (wal, recovered) = Wal::open(disk, dir, WalOptions::default())?;
        let shown = dir.display().to_string();
        let rebuilt = rebuild(&shown, &recovered, initial, limits)?;
        let mut store = ReplicaStore {
            wal,
            dir: shown,
            name: name.to_string(),
            policy,
            synced_at: now,
            records_since_snapshot: recovered.records.len() as u64,
            scratch: Vec::new(),
        };
        match rebuilt.name {
            Some(found) if found != name => {
                return Err(StoreError::WrongReplica {
                    dir: store.dir,
                    expected: name.to_string(),
                    found,
                });
            }
            Some(_) => {}
            None => {
                store.record(NAME, name)?;
                store.wal.sync()?;
            }
        }
        let held_nothing = recovered.snapshot.is_none()
            && rebuilt.view.is_none()
            && rebuilt.state.applied() == OpNumber(0);
        if held_nothing {
            return Ok((store, None));
        }
        tracing::info!(node = name, dir = %store.dir, op = rebuilt.state.applied().0, view = rebuilt.view.as_ref().map_or(0, |v| v.number.0), "recovered the state from the data directory");
        Ok((
            store,
            Some(RecoveredReplica {
                view: rebuilt.view,
                state_view: rebuilt.state_view,
                state: rebuilt.state,
                torn: recovered.torn,
            }),
        ))
    }

    /// The fsync policy it follows.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Records a view the replica accepted (before it acts on it).
    pub fn record_view(&mut self, view: &View) -> Result<(), StoreError> {
        self.record(VIEW, view)
    }

    /// Records entries, in op order, that the replica applied or (a primary) appended.
    pub fn record_entries<C: serde::Serialize>(
        &mut self,
        entries: &[Entry<C>],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.record(ENTRIES, entries)
    }

    fn record<T: serde::Serialize + ?Sized>(
        &mut self,
        kind: u8,
        value: &T,
    ) -> Result<(), StoreError> {
        self.scratch.clear();
        self.scratch.push(kind);
        codec::encode_into(value, &mut self.scratch).map_err(StoreError::Encode)?;
        self.wal.append(&self.scratch)?;
        self.records_since_snapshot += 1;
        Ok(())
    }

    /// Records a whole state that replaced the replica's (installed by a primary in
    /// `state_view`), with the newest view: a snapshot, durable when this returns (whatever
    /// the policy: what came before it in the log is useless without it).
    pub fn record_state<S: StateMachine>(
        &mut self,
        view: Option<&View>,
        state_view: ViewNumber,
        state: &ReplicatedState<S>,
    ) -> Result<(), StoreError> {
        let header = SnapshotHeader {
            name: self.name.clone(),
            view: view.cloned(),
            state_view,
        };
        let header = codec::encode(&header).map_err(StoreError::Encode)?;
        let body = state.snapshot().map_err(StoreError::Encode)?;
        let mut payload = Vec::with_capacity(8 + header.len() + body.len());
        payload.extend_from_slice(&(header.len() as u64).to_le_bytes());
        payload.extend_from_slice(&header);
        payload.extend_from_slice(&body);
        let covers = self.wal.next_index() - 1;
        self.wal.snapshot(covers, &payload)?;
        self.records_since_snapshot = 0;
        Ok(())
    }

    /// Whether enough records piled up since the last snapshot that the replica should call
    /// [`ReplicaStore::record_state`] with its current state.
    pub fn snapshot_due(&self) -> bool {
        self.records_since_snapshot >= Self::SNAPSHOT_EVERY
    }

    /// Makes what was recorded as durable as the policy promises, before the replica sends
    /// what depends on it: [`FsyncPolicy::Always`] syncs; [`FsyncPolicy::Batch`] writes, and
    /// syncs if the last sync is older than its interval; [`FsyncPolicy::Never`] writes.
    pub fn commit(&mut self, now: Time) -> Result<(), StoreError> {
        match self.policy {
            FsyncPolicy::Always => self.sync(now),
            FsyncPolicy::Batch(interval) if now.saturating_since(self.synced_at) >= interval => {
                self.sync(now)
            }
            FsyncPolicy::Batch(_) | FsyncPolicy::Never => Ok(self.wal.write()?),
        }
    }

    /// When [`ReplicaStore::tick`] must be called to honour [`FsyncPolicy::Batch`]: records
    /// written and not yet synced wait at most its interval.
    pub fn next_sync(&self) -> Option<Time> {
        match self.policy {
            FsyncPolicy::Batch(interval) if self.wal.synced_index() < self.wal.next_index() - 1 => {
                Some(self.synced_at + interval)
            }
            _ => None,
        }
    }

    /// Syncs if [`ReplicaStore::next_sync`] is due.
    pub fn tick(&mut self, now: Time) -> Result<(), StoreError> {
        match self.next_sync() {
            Some(due) if now >= due => self.sync(now),
            _ => Ok(()),
        }
    }

    fn sync(&mut self, now: Time) -> Result<(), StoreError> {
        self.wal.sync()?;
        self.synced_at = now;
        Ok(())
    }

    /// Records up to this WAL index are durable.
    pub fn synced_index(&self) -> u64 {
        self.wal.synced_index()
    }

    /// The data directory, as shown in logs and errors.
    pub fn dir(&self) -> &str {
        &self.dir
    }
}

/// What the records of a data directory add up to.
struct Rebuilt<S: StateMachine> {
    name: Option<String>,
    view: Option<View>,
    state_view: ViewNumber,
    state: ReplicatedState<S>,
}

/// Replays what [`Wal::open`] recovered from data directory `dir`: the snapshot's state (else
/// `initial`), then every record after it.
fn rebuild<S: StateMachine>(
    dir: &str,
    recovered: &Recovered,
    initial: S,
    limits: ClientTableLimits,
) -> Result<Rebuilt<S>, StoreError> {
    let bad = |index: u64| {
        move |source| StoreError::Record {
            dir: dir.to_string(),
            index,
            source,
        }
    };
    let mut rebuilt = match &recovered.snapshot {
        Some(snapshot) => {
            let (header, body) = split_snapshot(&snapshot.payload).map_err(bad(snapshot.index))?;
            Rebuilt {
                name: Some(header.name),
                view: header.view,
                state_view: header.state_view,
                state: ReplicatedState::restore(body).map_err(bad(snapshot.index))?,
            }
        }
        None => Rebuilt {
            name: None,
            view: None,
            state_view: ViewNumber(0),
            state: ReplicatedState::new(initial, limits),
        },
    };
    for record in &recovered.records {
        let (kind, body) = record
            .payload
            .split_first()
            .ok_or_else(|| bad(record.index)(CodecError::Decode("an empty record".into())))?;
        match *kind {
            NAME => rebuilt.name = Some(codec::decode(body).map_err(bad(record.index))?),
            VIEW => {
                let view: View = codec::decode(body).map_err(bad(record.index))?;
                if rebuilt
                    .view
                    .as_ref()
                    .is_none_or(|old| old.number < view.number)
                {
                    rebuilt.view = Some(view);
                }
            }
            ENTRIES => {
                let entries: Vec<Entry<S::Command>> =
                    codec::decode(body).map_err(bad(record.index))?;
                let state = &mut rebuilt.state;
                for entry in &entries {
                    if entry.op <= state.applied() {
                        continue;
                    }
                    if entry.op != state.applied().next() {
                        return Err(StoreError::Gap {
                            dir: dir.to_string(),
                            index: record.index,
                            applied: state.applied(),
                            found: entry.op,
                        });
                    }
                    state.apply(entry);
                }
            }
            other => {
                return Err(bad(record.index)(CodecError::Decode(format!(
                    "unknown record kind {other}"
                ))));
            }
        }
    }
    Ok(rebuilt)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotHeader {
    name: String,
    view: Option<View>,
    state_view: ViewNumber,
}

fn split_snapshot(payload: &[u8]) -> Result<(SnapshotHeader, &[u8]), CodecError> {
    let short = || CodecError::Decode("a snapshot shorter than its header".into());
    let len = payload.get(..8).ok_or_else(short)?;
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
    let header = payload
        .get(8..8usize.checked_add(len).ok_or_else(short)?)
        .ok_or_else(short)?;
    Ok((codec::decode(header)?, &payload[8 + len..]))
}
