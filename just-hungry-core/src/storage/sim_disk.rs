//! A simulated disk with the faults of real ones, for the property tests and the simulator:
//! writes not yet synced are lost at a power loss (a random prefix of them survives, its last
//! bytes possibly garbage: a torn tail), directory changes not yet synced are undone, a bit can
//! flip, the disk can fill up (ENOSPC, with a short write) and an fsync can fail (after which,
//! as on Linux, the bytes it was to make durable are not, even if a later fsync succeeds).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{Disk, DiskFile};
use crate::rng::SeededRng;

/// How a simulated node stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// The process died (kill -9): the page cache survives, so every byte written survives.
    Process,
    /// The machine lost power: what was not synced is lost or torn.
    PowerLoss,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// The durable prefix of `data`.
    synced: usize,
    /// Bytes a failed fsync was to make durable: zeros after a power loss, whatever later
    /// syncs report.
    lost: Vec<std::ops::Range<usize>>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: Vec<PathBuf>,
    /// Bumped at every crash: handles opened before it fail.
    epoch: u64,
    capacity: Option<usize>,
    fail_syncs: u32,
    /// Syncs to let pass before `fail_syncs` applies.
    syncs_before_failure: u32,
    syncs: u64,
}

impl State {
    fn used(&self) -> usize {
        self.inodes.values().map(|i| i.data.len()).sum()
    }

    fn inode_of(&self, path: &Path) -> io::Result<u64> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
    }
}

/// A simulated disk shared by clones: a node's storage and the test that injects faults and
/// crashes it hold the same one. See the module documentation for its faults.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl SimDisk {
    /// An empty disk with no limit on its size.
    pub fn new() -> Self {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops every file handle opened so far (the process is gone) and, at a power loss,
    /// loses what was not synced: each file keeps its synced bytes and a random prefix of the
    /// rest, whose last bytes may be overwritten with garbage; the directories go back to
    /// their last synced entries.
    pub fn crash(&self, crash: Crash, rng: &mut SeededRng) {
        let mut state = self.lock();
        state.epoch += 1;
        if crash == Crash::Process {
            return;
        }
        state.names = state.durable_names.clone();
        let live: HashSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        let mut ids: Vec<u64> = state.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let inode = state.inodes.get_mut(&id).expect("listed above");
            let unsynced = inode.data.len() - inode.synced;
            let kept = inode.synced + rng.below(unsynced as u64 + 1) as usize;
            inode.data.truncate(kept);
            if kept > inode.synced && rng.chance(500) {
                let garbage = rng.between(1, 16.min((kept - inode.synced) as u64)) as usize;
                for byte in &mut inode.data[kept - garbage..] {
                    *byte = rng.next_u64() as u8;
                }
            }
            for range in std::mem::take(&mut inode.lost) {
                let end = range.end.min(inode.data.len());
                for byte in inode
                    .data
                    .get_mut(range.start.min(end)..end)
                    .unwrap_or(&mut [])
                {
                    *byte = 0;
                }
            }
            inode.synced = inode.data.len();
        }
    }

    /// Flips bit `bit` (0..8) of byte `offset` of `path`, durably (the medium rotted).
    /// Returns false if the file is shorter.
    pub fn flip_bit(&self, path: &Path, offset: usize, bit: u8) -> bool {
        let mut state = self.lock();
        let Ok(id) = state.inode_of(path) else {
            return false;
        };
        let inode = state.inodes.get_mut(&id).expect("named");
        match inode.data.get_mut(offset) {
            Some(byte) => {
                *byte ^= 1 << (bit % 8);
                true
            }
            None => false,
        }
    }

    /// Limits the bytes all files together may hold: a write past it writes what fits and
    /// fails with `StorageFull` (ENOSPC). `None` lifts the limit.
    pub fn set_capacity(&self, bytes: Option<usize>) {
        self.lock().capacity = bytes;
    }

    /// Makes the next `count` syncs (of files or directories) fail with an I/O error.
    pub fn fail_next_syncs(&self, count: u32) {
        let mut state = self.lock();
        state.fail_syncs = count;
        state.syncs_before_failure = 0;
    }

    /// Lets `skip` more syncs succeed, then makes the next one fail with an I/O error (to fail
    /// each sync of a multi-step operation in turn).
    pub fn fail_sync_after(&self, skip: u32) {
        let mut state = self.lock();
        state.syncs_before_failure = skip;
        state.fail_syncs = 1;
    }

    /// How many syncs (of files and directories) succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The content of `path` as a reader would see it now.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.inode_of(path).ok()?;
        Some(state.inodes[&id].data.clone())
    }

    /// The paths of every file, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock().names.keys().cloned().collect()
    }

    fn take_sync_failure(state: &mut State) -> io::Result<()> {
        if state.fail_syncs > 0 && state.syncs_before_failure > 0 {
            state.syncs_before_failure -= 1;
        } else if state.fail_syncs > 0 {
            state.fail_syncs -= 1;
            return Err(io::Error::other("simulated fsync failure (EIO)"));
        }
        state.syncs += 1;
        Ok(())
    }
}

struct SimFile {
    disk: SimDisk,
    inode: u64,
    epoch: u64,
}

fn crashed() -> io::Error {
    io::Error::other("the simulated process crashed: this handle is gone")
}

impl DiskFile for SimFile {
    fn try_clone(&self) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(SimFile {
            disk: self.disk.clone(),
            inode: self.inode,
            epoch: self.epoch,
        }))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.disk.lock();
        if state.epoch != self.epoch {
            return Err(crashed());
        }
        let room = match state.capacity {
            Some(capacity) => capacity.saturating_sub(state.used()),
            None => usize::MAX,
        };
        let inode = state.inodes.get_mut(&self.inode).ok_or_else(crashed)?;
        let written = bytes.len().min(room);
        inode.data.extend_from_slice(&bytes[..written]);
        if written < bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated disk full (ENOSPC)",
            ));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.disk.lock();
        if state.epoch != self.epoch {
            return Err(crashed());
        }
        let failed = SimDisk::take_sync_failure(&mut state);
        let inode = state.inodes.get_mut(&self.inode).ok_or_else(crashed)?;
        if failed.is_err() && inode.synced < inode.data.len() {
            let range = inode.synced..inode.data.len();
            inode.lost.push(range);
        }
        // As on Linux after a writeback error: the pages are clean again, so these bytes count
        // as synced (and a later fsync succeeds) although they may never reach the medium.
        inode.synced = inode.data.len();
        failed
    }
}

impl Disk for SimDisk {
    fn syncs_in_place(&self) -> bool {
        true
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.dirs.iter().any(|d| d == dir) {
            state.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        if !state.dirs.iter().any(|d| d == dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}", dir.display()),
            ));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.lock();
        let id = state.inode_of(path)?;
        Ok(state.inodes[&id].data.clone())
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut state = self.lock();
        let id = match state.names.get(path) {
            Some(id) => *id,
            None => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(id, Inode::default());
                state.names.insert(path.to_path_buf(), id);
                id
            }
        };
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode: id,
            epoch: state.epoch,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.inode_of(path)?;
        SimDisk::take_sync_failure(&mut state)?;
        let inode = state.inodes.get_mut(&id).expect("named");
        inode.data.truncate(len as usize);
        inode.synced = inode.data.len();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let id = state.inode_of(from)?;
        state.names.remove(from);
        state.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.inode_of(path)?;
        state.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        SimDisk::take_sync_failure(&mut state)?;
        let State {
            names,
            durable_names,
            ..
        } = &mut *state;
        durable_names.retain(|p, _| p.parent() != Some(dir));
        for (path, id) in names.iter().filter(|(p, _)| p.parent() == Some(dir)) {
            durable_names.insert(path.clone(), *id);
        }
        Ok(())
    }
}
