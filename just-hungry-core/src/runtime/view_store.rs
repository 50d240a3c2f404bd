//! Where the front-end keeps its [`ViewRecord`] across restarts (docs/PROTOCOL.md, rule 5): the
//! [`ViewStore`] trait the runtime persists through, a file store for the binaries and a memory
//! store for tests and the in-process demo.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::codec::{self, CodecError};
use crate::protocol::view_store::ViewRecord;

/// Why a view could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum ViewStoreError {
    /// The file could not be read or written.
    #[error("view store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds something that is not a view record.
    #[error("view store {path}: corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: CodecError,
    },
    /// A shared store (etcd) holds a record written since this front-end last read or wrote
    /// it: another front-end is active. The record was not saved; the front-end must stop
    /// acting on its views (docs/PROTOCOL.md, rule 5, and "Several front-ends").
    #[error("view store {store}: {reason}")]
    Conflict {
        /// The store (its endpoints and key).
        store: String,
        /// What was found instead of what was expected.
        reason: String,
    },
    /// A shared store cannot be reached, or cannot decide (etcd without a quorum). Nothing is
    /// known to be saved.
    #[error("view store {store}: unavailable: {reason}")]
    Unavailable {
        /// The store (its endpoints and key).
        store: String,
        /// The last error seen.
        reason: String,
    },
    /// A shared store holds something that is not a view record.
    #[error("view store {store}: not a view record: {reason}")]
    Malformed {
        /// The store (its endpoints and key).
        store: String,
        /// The cause.
        reason: String,
    },
}

/// Durable storage for the front-end's [`ViewRecord`].
///
/// The front-end's loop awaits `save` before it sends anything that follows the record
/// (persist before send), so a store that waits (a file's fsync, etcd's quorum) holds the
/// view change, not the store's caller's other nodes.
///
/// # To ensure correctness
///
/// `save` returns only once the record would survive a crash of the process (and, for a file,
/// of the machine); `load` returns the last record saved, never a torn mix of two. A store
/// shared by several front-ends (etcd) saves only over the record this store last loaded or
/// saved (compare-and-swap), and otherwise returns [`ViewStoreError::Conflict`].
#[async_trait::async_trait]
pub trait ViewStore: Send + 'static {
    /// The last record saved, or `None` if none ever was.
    async fn load(&mut self) -> Result<Option<ViewRecord>, ViewStoreError>;
    /// Replaces the stored record.
    async fn save(&mut self, record: &ViewRecord) -> Result<(), ViewStoreError>;
}

/// A store in memory, shared by clones: it survives a restart of the front-end *task* (tests,
/// the in-process demo), not of the process.
#[derive(Clone, Debug, Default)]
pub struct MemoryViewStore {
    record: Arc<Mutex<Option<ViewRecord>>>,
}

impl MemoryViewStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl ViewStore for MemoryViewStore {
    async fn load(&mut self) -> Result<Option<ViewRecord>, ViewStoreError> {
        Ok(self
            .record
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone()))
    }

    async fn save(&mut self, record: &ViewRecord) -> Result<(), ViewStoreError> {
        let mut guard = self.record.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(record.clone());
        Ok(())
    }
}

/// A store in one file, replaced atomically: written to a temporary file, fsynced, renamed
/// over the old one, and the directory fsynced.
#[derive(Clone, Debug)]
pub struct FileViewStore {
    path: PathBuf,
}

impl FileViewStore {
    /// The file name inside a state directory.
    pub const FILE_NAME: &'static str = "view.bin";

    /// A store at `dir/view.bin`; the directory is created if missing.
    pub fn in_dir(dir: impl AsRef<Path>) -> Result<Self, ViewStoreError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|source| ViewStoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(FileViewStore {
            path: dir.join(Self::FILE_NAME),
        })
    }

    fn io(&self, source: std::io::Error) -> ViewStoreError {
        ViewStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[async_trait::async_trait]
impl ViewStore for FileViewStore {
    async fn load(&mut self) -> Result<Option<ViewRecord>, ViewStoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                codec::decode(&bytes)
                    .map(Some)
                    .map_err(|source| ViewStoreError::Corrupt {
                        path: self.path.clone(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn save(&mut self, record: &ViewRecord) -> Result<(), ViewStoreError> {
        let bytes = codec::encode(record).map_err(|source| ViewStoreError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let tmp = self.path.with_extension("tmp");
        let mut file = fs::File::create(&tmp).map_err(|source| ViewStoreError::Io {
            path: tmp.clone(),
            source,
        })?;
        // Written, synced and renamed, or removed: a failed save (a full disk) leaves no
        // temporary file behind.
        let written = file
            .write_all(&bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                drop(file);
                fs::rename(&tmp, &self.path)
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.io(e));
        }
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Address, Member, ReplicaId, View, ViewNumber};

    #[tokio::test]
    async fn a_failed_save_says_why_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("jh-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut store = FileViewStore::in_dir(&dir).unwrap();
        // The rename fails: the view's path is a directory that is not empty.
        fs::create_dir_all(dir.join(FileViewStore::FILE_NAME).join("x")).unwrap();
        let error = store.save(&record(1)).await.unwrap_err();
        assert!(error.to_string().contains("view.bin"), "{error}");
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(FileViewStore::FILE_NAME)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn record(n: u64) -> ViewRecord {
        let view = View {
            number: ViewNumber(n),
            primary: Member {
                id: ReplicaId::new("r1", 7),
                address: Address::new("r1"),
            },
            backups: vec![],
        };
        ViewRecord {
            current: view.clone(),
            current_active: true,
            last_active: Some(view),
        }
    }

    #[tokio::test]
    async fn file_store_round_trips_and_replaces() {
        let dir = std::env::temp_dir().join(format!("jh-view-store-{}", std::process::id()));
        let mut store = FileViewStore::in_dir(&dir).unwrap();
        assert_eq!(store.load().await.unwrap(), None);
        store.save(&record(1)).await.unwrap();
        store.save(&record(2)).await.unwrap();
        assert_eq!(
            FileViewStore::in_dir(&dir).unwrap().load().await.unwrap(),
            Some(record(2))
        );
        fs::write(dir.join(FileViewStore::FILE_NAME), b"garbage").unwrap();
        assert!(matches!(
            store.load().await,
            Err(ViewStoreError::Corrupt { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
