//! Durable storage for a replica: a write-ahead log of length-, index- and CRC-framed records in
//! segment files, written by batches with one sync per batch (group commit), and snapshots
//! that let old segments go ([`Wal`]); the file system behind a trait ([`Disk`]), real
//! ([`FileDisk`]) or simulated with the faults of real disks ([`SimDisk`]).
//!
//! This module does I/O (it is called by drivers, never by the protocol's state machines) but
//! no async: a write or a sync blocks the caller, which is the point of a sync.
//!
//! How much an acknowledgement promises depends on the [`FsyncPolicy`] the driver follows.

mod disk;
mod replica_store;
mod sim_disk;
mod wal;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use disk::{Disk, DiskFile, FileDisk};
pub use replica_store::{MAX_LINEAGE, RecoveredReplica, ReplicaStore, StoreError};
pub use sim_disk::{Crash, SimDisk};
pub use wal::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, FRAME_HEADER_BYTES, LogRecord,
    PendingSnapshot, PendingSync, Recovered, SEGMENT_HEADER_BYTES, Snapshot, SnapshotWritten,
    SyncDone, TornTail, Wal, WalOptions,
};

/// Why the storage refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system call failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done: create, read, write, sync, rename, remove, truncate, list.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error of the file system.
        #[source]
        source: std::io::Error,
    },
    /// What is on disk cannot be trusted: the replica refuses to start with it.
    #[error("{} is corrupt at byte {offset}: {why}; move the data directory aside to start this replica empty (it then joins as a newcomer)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong there.
        why: String,
    },
    /// A record larger than [`WalOptions::max_record_bytes`].
    #[error("a record of {bytes} bytes is larger than the limit of {max}")]
    RecordTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A snapshot asked to cover records the log does not hold, or older than the last.
    #[error("a snapshot must cover a record from {from} to {to}, not {covers}")]
    SnapshotOutOfRange {
        /// The record asked for.
        covers: u64,
        /// The newest snapshot's index.
        from: u64,
        /// The last record appended.
        to: u64,
    },
    /// An earlier write or sync failed: the log takes nothing more (a failed sync is never
    /// retried: on Linux the bytes it was to make durable may be gone while a second sync
    /// succeeds).
    #[error(
        "the write-ahead log stopped after an earlier failure ({0}); restart the replica to recover from its disk"
    )]
    Poisoned(String),
}

/// When a replica with a data directory syncs its log, which decides what an acknowledged
/// order survives. Every policy writes each record to the file system before the replica
/// acknowledges it, so a crash of every *process* (kill -9) loses nothing under any of them;
/// they differ when *machines* lose power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// A record is synced before the replica acknowledges it (one sync per batch of records:
    /// group commit). An acknowledged order survives a power loss of every machine.
    Always,
    /// Records are synced at least every interval, not before each acknowledgement: a power
    /// loss of every machine of the view within it may lose the orders acknowledged in the
    /// last interval.
    Batch(Duration),
    /// The log is never synced by the replica (the operating system writes back when it
    /// chooses, typically within 30 s): a power loss of every machine of the view may lose
    /// any order not yet written back.
    Never,
}

/// The default interval of [`FsyncPolicy::Batch`]: 10 ms.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Why a policy could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("unknown fsync policy {0:?}: expected always, batch, batch:<ms> or never")]
pub struct FsyncPolicyError(String);

impl FromStr for FsyncPolicy {
    type Err = FsyncPolicyError;

    /// `always`, `never`, `batch` (every [`DEFAULT_BATCH_INTERVAL`]) or `batch:<ms>` with
    /// 1 to 10000 ms.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            "batch" => Ok(FsyncPolicy::Batch(DEFAULT_BATCH_INTERVAL)),
            _ => s
                .strip_prefix("batch:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|ms| (1..=10_000).contains(ms))
                .map(|ms| FsyncPolicy::Batch(Duration::from_millis(ms)))
                .ok_or_else(|| FsyncPolicyError(s.to_string())),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Batch(interval) => write!(f, "batch:{}", interval.as_millis()),
        }
    }
}
