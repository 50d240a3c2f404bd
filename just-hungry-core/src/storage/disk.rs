//! The file-system operations the write-ahead log needs, behind a trait: [`FileDisk`] is the
//! real file system, [`super::SimDisk`] the simulated one of the property tests.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file-system operations of [`super::Wal`]. Every write goes through a [`DiskFile`]
/// opened for appending; nothing is rewritten in place except by [`Disk::truncate`] (cutting
/// a torn tail at recovery).
///
/// Durability follows POSIX: bytes written to a file are durable once [`DiskFile::sync_data`]
/// returned `Ok`; a file's creation, a rename or a removal is durable once
/// [`Disk::sync_dir`] of its directory returned `Ok`.
pub trait Disk: Send + Sync {
    /// Creates `dir` and its parents if they are missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir` (not their paths), in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `path` opened for appending, created empty if it is missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Cuts `path` to its first `len` bytes and makes the cut durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists (atomically, as rename(2)).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals of files in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a sync costs nothing worth a thread (a disk in memory): the runtime then syncs
    /// in its loop instead of on a blocking thread, so a run under a paused clock stays
    /// deterministic. `false` by default.
    fn syncs_in_place(&self) -> bool {
        false
    }
}

/// A file opened for appending by [`Disk::open_append`].
pub trait DiskFile: Send {
    /// Appends all of `bytes`. On an error a prefix of them may have been written.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable (fdatasync(2)). After an error nothing says
    /// which of the bytes written since the last successful sync are durable, and a later
    /// sync may succeed without making them so: the caller must not retry.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Another handle on the same file (a duplicated descriptor), to sync from another
    /// thread: a sync through either makes what was written through both durable.
    fn try_clone(&self) -> io::Result<Box<dyn DiskFile>>;
}

/// The real file system, through `std::fs`: `sync_data` is fdatasync(2), `sync_dir` an fsync(2)
/// of the directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileDisk;

struct AppendFile(File);

impl DiskFile for AppendFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn try_clone(&self) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(AppendFile(self.0.try_clone()?)))
    }
}

impl Disk for FileDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(AppendFile(file)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
