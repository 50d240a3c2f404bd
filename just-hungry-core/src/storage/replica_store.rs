//! What a durable replica keeps on disk, on top of the [`Wal`]: the views it accepted, the
//! entries it applied or appended, and its whole state whenever a primary installed one (or
//! once the log since the last snapshot outgrew [`ReplicaStore::snapshot_due`]'s bound), so
//! that a restart rebuilds the state it held ([`ReplicaStore::open`]).
//!
//! A WAL record is one byte of kind then its body: `1` the replica's name (the first record
//! of a fresh directory), `2` a view (encoded by [`crate::codec`]), `3` entries in op order
//! (encoded likewise), `4` the incarnation that opened the directory (one at every start: the
//! directory's lineage). A snapshot's payload is the length of its header (u64 LE), the header
//! (the name, the lineage, the newest view and the view the state was installed in, encoded), then the
//! [`ReplicatedState::snapshot`] bytes, which need not fit [`crate::codec::MAX_DECODE_BYTES`].

use std::path::Path;
use std::sync::Arc;

use super::{
    Disk, FsyncPolicy, PendingSnapshot, PendingSync, Recovered, SnapshotWritten, StorageError,
    SyncDone, TornTail, Wal, WalOptions,
};
use crate::codec::{self, CodecError};
use crate::ids::{OpNumber, ReplicaId, Time, View, ViewNumber};
use crate::protocol::Record;
use crate::protocol::client_table::ClientTableLimits;
use crate::protocol::messages::Entry;
use crate::protocol::messages::Recovery;
use crate::protocol::replica::{Replica, ReplicaConfig};
use crate::protocol::replicated_state::ReplicatedState;
use crate::state_machine::StateMachine;

const NAME: u8 = 1;
const VIEW: u8 = 2;
const ENTRIES: u8 = 3;
const INCARNATION: u8 = 4;

/// The most incarnations a directory's lineage keeps (the newest): a replica restarted more
/// often than this since the last active view was made can no longer stand in for its member
/// of that view (it joins as a newcomer instead).
pub const MAX_LINEAGE: usize = 32;

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
    /// Whether the directory held a state: `false` for a fresh one (no view, no op), whose
    /// `state` is the pre-defined data the replica was opened with.
    pub held_state: bool,
    /// The incarnations that opened this directory before, oldest first (at most
    /// [`MAX_LINEAGE`]): the directory holds what each of them wrote, so the new incarnation
    /// may stand in for any of them. Empty for a fresh directory.
    pub lineage: Vec<u64>,
}

impl<S: StateMachine> RecoveredReplica<S> {
    /// The durable replica that starts from this ([`Replica::durable`]), with `config`, and
    /// saying in its pings, if earlier incarnations wrote to the directory, which ones and
    /// whether `policy` syncs every write.
    pub fn into_replica(self, config: ReplicaConfig, policy: FsyncPolicy, now: Time) -> Replica<S> {
        let recovery = (!self.lineage.is_empty()).then(|| Recovery {
            synced: policy == FsyncPolicy::Always,
            lineage: self.lineage,
        });
        Replica::durable(
            config,
            self.state,
            self.view,
            self.state_view,
            recovery,
            now,
        )
    }
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
    lineage: Vec<u64>,
    policy: FsyncPolicy,
    /// When the log was last synced (for [`FsyncPolicy::Batch`]).
    synced_at: Time,
    /// Bytes of records written since the last snapshot.
    logged_since_snapshot: u64,
    /// The least log, in bytes, that makes a snapshot due ([`ReplicaStore::snapshot_due`]).
    snapshot_after_bytes: u64,
    /// The size of the last snapshot's payload.
    last_snapshot_bytes: u64,
    /// The snapshot being encoded a piece at a time ([`ReplicaStore::begin_snapshot`]), or
    /// being written by a [`PendingSnapshot`].
    snapshot: Option<SnapshotUnderWay>,
    scratch: Vec<u8>,
}

/// A snapshot of a replica's state begun by [`ReplicaStore::begin_snapshot`].
struct SnapshotUnderWay {
    /// The last WAL record it covers: every record written before it began.
    covers: u64,
    /// Its payload so far: the header, then the state's bytes as they are encoded; empty once
    /// handed to a [`PendingSnapshot`].
    payload: Vec<u8>,
    /// Whether its payload is whole and being written.
    writing: bool,
}

impl ReplicaStore {
    /// A snapshot is due ([`ReplicaStore::snapshot_due`]) once the records written since the
    /// last one exceed twice its size and at least this many bytes: the log a restart replays
    /// stays within a few snapshots' worth, and writing snapshots costs at most about half the
    /// log's own bytes.
    pub const MIN_LOG_BYTES_BEFORE_SNAPSHOT: u64 = 64 * 1024 * 1024;

    /// Opens the data directory `dir` of replica `id` and rebuilds what it held (for a
    /// directory that holds no state yet, `initial`, its pre-defined data, with
    /// [`RecoveredReplica::held_state`] false: the replica starts as a memory-only one does).
    pub fn open<S: StateMachine>(
        disk: Arc<dyn Disk>,
        dir: &Path,
        id: &ReplicaId,
        policy: FsyncPolicy,
        now: Time,
        initial: S,
        limits: ClientTableLimits,
    ) -> Result<(ReplicaStore, RecoveredReplica<S>), StoreError> {
        let (wal, recovered) = Wal::open(disk, dir, WalOptions::default())?;
        let name = id.name.as_str();
        let shown = dir.display().to_string();
        let rebuilt = rebuild(&shown, &recovered, initial, limits)?;
        let mut store = ReplicaStore {
            wal,
            dir: shown,
            name: name.to_string(),
            lineage: rebuilt.lineage.clone(),
            policy,
            synced_at: now,
            logged_since_snapshot: recovered
                .records
                .iter()
                .map(|r| r.payload.len() as u64)
                .sum(),
            last_snapshot_bytes: recovered
                .snapshot
                .as_ref()
                .map_or(0, |s| s.payload.len() as u64),
            snapshot_after_bytes: Self::MIN_LOG_BYTES_BEFORE_SNAPSHOT,
            snapshot: None,
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
            None => store.record(NAME, name)?,
        }
        // This incarnation joins the lineage before it acts.
        store.record(INCARNATION, &id.incarnation)?;
        store.wal.sync()?;
        store.lineage.push(id.incarnation);
        if store.lineage.len() > MAX_LINEAGE {
            store.lineage.remove(0);
        }
        let held_state = recovered.snapshot.is_some()
            || rebuilt.view.is_some()
            || rebuilt.state.applied() > OpNumber(0);
        if held_state {
            tracing::info!(node = name, dir = %store.dir, op = rebuilt.state.applied().0, view = rebuilt.view.as_ref().map_or(0, |v| v.number.0), "recovered the state from the data directory");
        }
        Ok((
            store,
            RecoveredReplica {
                view: rebuilt.view,
                state_view: rebuilt.state_view,
                state: rebuilt.state,
                torn: recovered.torn,
                held_state,
                lineage: rebuilt.lineage,
            },
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
        self.logged_since_snapshot += self.scratch.len() as u64;
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
        // A snapshot under way covers less than this one: it is dropped (one being written
        // is removed when its write ends, [`Wal::finish_snapshot`]).
        if self.snapshot.as_ref().is_some_and(|s| !s.writing) {
            self.snapshot = None;
        }
        let mut payload = self.snapshot_header(view, state_view)?;
        let body = state.snapshot().map_err(StoreError::Encode)?;
        payload.extend_from_slice(&body);
        let covers = self.wal.next_index() - 1;
        let bytes = payload.len() as u64;
        self.wal.snapshot(covers, payload)?;
        self.logged_since_snapshot = 0;
        self.last_snapshot_bytes = bytes;
        Ok(())
    }

    /// A snapshot payload's beginning: the length of its header, then the header.
    fn snapshot_header(
        &self,
        view: Option<&View>,
        state_view: ViewNumber,
    ) -> Result<Vec<u8>, StoreError> {
        let header = SnapshotHeader {
            name: self.name.clone(),
            lineage: self.lineage.clone(),
            view: view.cloned(),
            state_view,
        };
        let header = codec::encode(&header).map_err(StoreError::Encode)?;
        let mut payload = Vec::with_capacity(8 + header.len());
        payload.extend_from_slice(&(header.len() as u64).to_le_bytes());
        payload.extend_from_slice(&header);
        Ok(payload)
    }

    /// Whether enough records piled up since the last snapshot that the replica's state should
    /// be written whole ([`ReplicaStore::record_replica`]), letting the old segments go.
    pub fn snapshot_due(&self) -> bool {
        self.snapshot.is_none()
            && self.logged_since_snapshot
                >= self
                    .snapshot_after_bytes
                    .max(self.last_snapshot_bytes.saturating_mul(2))
    }

    /// Sets the least log, in bytes, that makes a snapshot due (default
    /// [`ReplicaStore::MIN_LOG_BYTES_BEFORE_SNAPSHOT`]; a snapshot is due once the log since
    /// the last is at least this and twice that snapshot's size). Smaller values snapshot more
    /// often (tests, the simulator).
    pub fn set_snapshot_after_bytes(&mut self, bytes: u64) {
        self.snapshot_after_bytes = bytes;
    }

    /// Begins a snapshot of `replica` as it is now, to be encoded a piece at a time
    /// ([`ReplicaStore::continue_snapshot`]) while the replica goes on, then written off the
    /// caller's thread ([`PendingSnapshot::run`], [`ReplicaStore::finish_snapshot`]): unlike
    /// [`ReplicaStore::record_replica`], no step of the replica's event loop encodes or writes
    /// a whole large state, so the replica keeps answering (its pings included) while its
    /// snapshot is made. Call it when every record the replica emitted so far was written
    /// ([`ReplicaStore::write`]); the snapshot covers them all. The primary's uncommitted
    /// entries, which the snapshot's state does not hold, are recorded again after it.
    pub fn begin_snapshot<S: StateMachine>(
        &mut self,
        replica: &mut Replica<S>,
    ) -> Result<(), StoreError> {
        let header = self.snapshot_header(replica.view(), replica.state_view())?;
        replica.begin_disk_snapshot().map_err(StoreError::Encode)?;
        let covers = self.last_index();
        tracing::info!(node = %self.name, op = %replica.applied(), covers, "began a snapshot of the state for the data directory (encoded a piece per turn of the loop)");
        self.record_entries(&replica.uncommitted())?;
        self.logged_since_snapshot = 0;
        self.snapshot = Some(SnapshotUnderWay {
            covers,
            payload: header,
            writing: false,
        });
        Ok(())
    }

    /// Encodes about `budget` more bytes of the snapshot [`ReplicaStore::begin_snapshot`]
    /// began. Once it is whole, returns its write, to run on any thread and hand to
    /// [`ReplicaStore::finish_snapshot`]. A snapshot whose state the replica replaced since (a
    /// primary installed another) is dropped: the [`Record::State`] that came with the new
    /// state writes a snapshot of its own.
    pub fn continue_snapshot<S: StateMachine>(
        &mut self,
        replica: &mut Replica<S>,
        budget: usize,
    ) -> Result<Option<PendingSnapshot>, StoreError> {
        let Some(under_way) = self.snapshot.as_mut().filter(|s| !s.writing) else {
            return Ok(None);
        };
        match replica.write_disk_snapshot(&mut under_way.payload, budget) {
            None => {
                self.snapshot = None;
                Ok(None)
            }
            Some(Err(e)) => Err(StoreError::Encode(e)),
            Some(Ok(false)) => Ok(None),
            Some(Ok(true)) => {
                under_way.writing = true;
                let (covers, payload) = (under_way.covers, std::mem::take(&mut under_way.payload));
                self.last_snapshot_bytes = payload.len() as u64;
                // The entries recorded again after it reach the file system before the
                // segments holding them first can go.
                self.wal.write()?;
                Ok(Some(self.wal.begin_snapshot(covers, payload)?))
            }
        }
    }

    /// Whether a snapshot is being encoded: [`ReplicaStore::continue_snapshot`] has work.
    pub fn snapshot_encoding(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| !s.writing)
    }

    /// Takes the result of a snapshot's write ([`ReplicaStore::continue_snapshot`]): the
    /// segments it covers are removed, or (it failed) the log is poisoned and the replica must
    /// stop.
    pub fn finish_snapshot(&mut self, written: SnapshotWritten) -> Result<(), StoreError> {
        self.snapshot = None;
        Ok(self.wal.finish_snapshot(written)?)
    }

    /// Writes what a durable replica asked for ([`crate::protocol::Output::Record`]). Call
    /// [`ReplicaStore::commit`] before acting on any output that came after the record, and
    /// [`ReplicaStore::snapshot_step`] once the replica's records are written, so that the
    /// log does not grow without end.
    pub fn write<S: StateMachine>(
        &mut self,
        record: &Record<S>,
        replica: &Replica<S>,
    ) -> Result<(), StoreError> {
        match record {
            Record::View(view) => self.record_view(view)?,
            Record::Entries(entries) => self.record_entries(entries)?,
            Record::State => self.record_replica(replica)?,
        }
        Ok(())
    }

    /// Makes the periodic snapshot progress: begins one when it is due
    /// ([`ReplicaStore::snapshot_due`], [`ReplicaStore::begin_snapshot`]), and encodes about
    /// `budget` more bytes of the one under way ([`ReplicaStore::continue_snapshot`]),
    /// returning its write once it is whole. Call it whenever every record `replica` emitted
    /// was written, as often as the replica's loop turns: each call does a bounded piece of
    /// work.
    pub fn snapshot_step<S: StateMachine>(
        &mut self,
        replica: &mut Replica<S>,
        budget: usize,
    ) -> Result<Option<PendingSnapshot>, StoreError> {
        if self.snapshot_due() {
            self.begin_snapshot(replica)?;
        }
        self.continue_snapshot(replica, budget)
    }

    /// Writes `replica`'s state as it is now (a snapshot, durable when this returns), then the
    /// entries of its log that the state does not hold yet (a primary's uncommitted ops), so
    /// that the snapshot loses nothing recorded before it.
    pub fn record_replica<S: StateMachine>(
        &mut self,
        replica: &Replica<S>,
    ) -> Result<(), StoreError> {
        self.record_state(replica.view(), replica.state_view(), replica.state())?;
        self.record_entries(&replica.uncommitted())
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

    /// Hands every record to the file system (what `batch` and `never` promise before an
    /// acknowledgement), without syncing.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        Ok(self.wal.write()?)
    }

    /// The index of the last record written so far (0 before any).
    pub fn last_index(&self) -> u64 {
        self.wal.next_index() - 1
    }

    /// Records up to this index are as durable as the policy promises before an
    /// acknowledgement: synced under [`FsyncPolicy::Always`], written otherwise.
    pub fn committed_index(&self) -> u64 {
        match self.policy {
            FsyncPolicy::Always => self.wal.synced_index(),
            FsyncPolicy::Batch(_) | FsyncPolicy::Never => self.wal.written_index(),
        }
    }

    /// The sync the policy asks for now, to run off the caller's thread ([`PendingSync::run`],
    /// then [`ReplicaStore::finish_sync`]): under [`FsyncPolicy::Always`] whenever records
    /// are unsynced, under [`FsyncPolicy::Batch`] once its interval passed since the last,
    /// never under [`FsyncPolicy::Never`]. Writes what is buffered first. The pipelined
    /// counterpart of [`ReplicaStore::commit`] and [`ReplicaStore::tick`]: records go on being
    /// written while the sync runs, and the next sync covers them all.
    pub fn begin_sync(&mut self, now: Time) -> Result<Option<PendingSync>, StoreError> {
        self.wal.write()?;
        let due = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Batch(interval) => now.saturating_since(self.synced_at) >= interval,
            FsyncPolicy::Never => false,
        };
        if !due {
            return Ok(None);
        }
        let pending = self.wal.begin_sync()?;
        if pending.is_some() {
            self.synced_at = now;
        }
        Ok(pending)
    }

    /// Whether its disk syncs at no cost ([`crate::storage::Disk::syncs_in_place`]): then run a
    /// [`PendingSync`] in place rather than on another thread.
    pub fn syncs_in_place(&self) -> bool {
        self.wal.syncs_in_place()
    }

    /// Takes the result of a sync [`ReplicaStore::begin_sync`] started: a failure poisons the
    /// log, and the replica must stop.
    pub fn finish_sync(&mut self, done: SyncDone) -> Result<(), StoreError> {
        Ok(self.wal.finish_sync(done)?)
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
    lineage: Vec<u64>,
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
                lineage: header.lineage,
                view: header.view,
                state_view: header.state_view,
                state: ReplicatedState::restore(body).map_err(bad(snapshot.index))?,
            }
        }
        None => Rebuilt {
            name: None,
            lineage: Vec::new(),
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
            INCARNATION => {
                rebuilt
                    .lineage
                    .push(codec::decode(body).map_err(bad(record.index))?);
                if rebuilt.lineage.len() > MAX_LINEAGE {
                    rebuilt.lineage.remove(0);
                }
            }
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
    lineage: Vec<u64>,
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
