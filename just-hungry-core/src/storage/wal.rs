//! The write-ahead log: records framed with their length, index and CRC-32C in segment files,
//! written by batches with one sync per batch, and snapshots that let old segments go.
//!
//! On disk, in one directory:
//!
//! - `{first:020}.wal`: a segment. A 20-byte header (the magic `JHWAL\0v1`, the index of its
//!   first record as u64 LE, the CRC-32C of both) then frames: payload length (u32 LE),
//!   CRC-32C (u32 LE) of the length, index and payload, the record's index (u64 LE), the
//!   payload. Indexes run from 1 without a gap across segments.
//! - `{index:020}.snap`: a snapshot covering records `..= index`: the magic `JHSNAPv1`, the
//!   index (u64 LE), the payload length (u64 LE), the CRC-32C of index, length and payload
//!   (u32 LE), the payload. Written as `.snap.tmp`, synced, renamed, the directory synced.
//!
//! Recovery ([`Wal::open`]) reads the newest snapshot and every record after it. A bad frame at
//! the tail of the last segment, with no valid frame after it, is a write torn by a crash: it is
//! cut (and reported in [`Recovered::torn`]). Any other bad frame, a bad snapshot or a gap
//! between segments refuses to start, naming the file and the byte offset
//! ([`StorageError::Corrupt`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StorageError;
use super::disk::{Disk, DiskFile};

const SEGMENT_MAGIC: &[u8; 8] = b"JHWAL\0v1";
const SNAPSHOT_MAGIC: &[u8; 8] = b"JHSNAPv1";
/// Bytes of a segment's header.
pub const SEGMENT_HEADER_BYTES: usize = 20;
/// Bytes of a frame's header (length, CRC, index).
pub const FRAME_HEADER_BYTES: usize = 16;
const SNAPSHOT_HEADER_BYTES: usize = 28;

/// The default of [`WalOptions::segment_bytes`]: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The default of [`WalOptions::max_record_bytes`]: 64 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How a [`Wal`] is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment past this size is closed and a new one started (default
    /// [`DEFAULT_SEGMENT_BYTES`]); a batch is never split across segments.
    pub segment_bytes: u64,
    /// The largest record payload written or read back (default [`DEFAULT_MAX_RECORD_BYTES`]):
    /// a length field above it is corruption, not an allocation.
    pub max_record_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// One record read back: its index and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its index, from 1.
    pub index: u64,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

/// A snapshot read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The last record index it covers.
    pub index: u64,
    /// The bytes written.
    pub payload: Vec<u8>,
}

/// A tail cut at recovery: a write torn by a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub path: PathBuf,
    /// Where the bad frame started (the segment's new length).
    pub offset: u64,
    /// How many bytes were cut.
    pub cut: u64,
}

/// What [`Wal::open`] found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The newest snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Every record after the snapshot, in index order, without a gap.
    pub records: Vec<LogRecord>,
    /// The torn tail cut, if there was one.
    pub torn: Option<TornTail>,
}

/// A write-ahead log in one directory. See the module documentation for the format.
///
/// [`Wal::append`] only buffers; [`Wal::write`] hands the buffer to the file system in one
/// write (it survives the process, not the machine); [`Wal::sync`] writes and syncs, so every
/// record appended before it survives a power loss once it returns `Ok`. After any failed
/// write or sync the log is *poisoned*: every later call fails with [`StorageError::Poisoned`]
/// (the bytes on disk are unknown; a sync is never retried), and the owner must stop and
/// recover from the disk at its next start.
pub struct Wal {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    options: WalOptions,
    /// The first index of each segment, ascending; the last is being written.
    segments: Vec<u64>,
    file: Box<dyn DiskFile>,
    file_bytes: u64,
    next_index: u64,
    buffer: Vec<u8>,
    /// Records `..= written_index` were handed to the file system.
    written_index: u64,
    /// Records `..= synced_index` are durable.
    synced_index: u64,
    snapshot_index: u64,
    poisoned: Option<String>,
}

/// A sync of the log's current segment started by [`Wal::begin_sync`], to run on any thread.
pub struct PendingSync {
    file: Box<dyn DiskFile>,
    path: PathBuf,
    covers: u64,
}

impl PendingSync {
    /// Runs the sync (fdatasync(2) on a file): blocks for as long as the disk takes.
    pub fn run(mut self) -> SyncDone {
        SyncDone {
            result: self.file.sync_data(),
            path: self.path,
            covers: self.covers,
        }
    }

    /// The last record it covers.
    pub fn covers(&self) -> u64 {
        self.covers
    }
}

/// What a [`PendingSync`] did, for [`Wal::finish_sync`].
pub struct SyncDone {
    result: io::Result<()>,
    path: PathBuf,
    covers: u64,
}

/// The write of a snapshot started by [`Wal::begin_snapshot`], to run on any thread.
pub struct PendingSnapshot {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    covers: u64,
    header: Vec<u8>,
    payload: Vec<u8>,
}

impl PendingSnapshot {
    /// Writes the snapshot as a temporary file, syncs it, renames it into place and syncs the
    /// directory: blocks for as long as the disk takes.
    pub fn run(self) -> SnapshotWritten {
        let tmp = self.dir.join(format!("{:020}.snap.tmp", self.covers));
        let path = self.dir.join(snapshot_name(self.covers));
        let result = (|| {
            let mut file = self
                .disk
                .open_append(&tmp)
                .map_err(|e| ("create", tmp.clone(), e))?;
            // The payload is written as it is, not copied behind the header: it may be the
            // whole state.
            file.write_all(&self.header)
                .and_then(|()| file.write_all(&self.payload))
                .and_then(|()| file.sync_data())
                .map_err(|e| ("write", tmp.clone(), e))?;
            self.disk
                .rename(&tmp, &path)
                .and_then(|()| self.disk.sync_dir(&self.dir))
                .map_err(|e| ("rename", path.clone(), e))
        })();
        SnapshotWritten {
            covers: self.covers,
            result,
        }
    }

    /// The last record the snapshot covers.
    pub fn covers(&self) -> u64 {
        self.covers
    }

    /// The bytes of its payload.
    pub fn payload_bytes(&self) -> usize {
        self.payload.len()
    }
}

/// What a [`PendingSnapshot`] did, for [`Wal::finish_snapshot`].
pub struct SnapshotWritten {
    covers: u64,
    result: Result<(), (&'static str, PathBuf, io::Error)>,
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.wal")
}

fn snapshot_name(index: u64) -> String {
    format!("{index:020}.snap")
}

fn parse_index(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn frame_crc(len: u32, index: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &index.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn segment_header(first: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&first.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// Appends one frame to `out`.
fn encode_frame(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame_crc(len, index, payload).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The frame at `at` if it is whole and its CRC holds: its index and payload range.
fn decode_frame(bytes: &[u8], at: usize, max: usize) -> Option<(u64, std::ops::Range<usize>)> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER_BYTES)?)?;
    let len = u32_at(header, 0);
    let crc = u32_at(header, 4);
    let index = u64_at(header, 8);
    if len as usize > max {
        return None;
    }
    let start = at + FRAME_HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len as usize)?)?;
    (frame_crc(len, index, payload) == crc).then_some((index, start..start + len as usize))
}

/// Whether a whole frame with index `index` or later starts anywhere after `after`: a bad
/// frame followed by a good one is corruption, not a torn tail.
fn valid_frame_after(bytes: &[u8], after: usize, index: u64, max: usize) -> bool {
    (after + 1..bytes.len().saturating_sub(FRAME_HEADER_BYTES - 1)).any(|at| {
        let candidate = u64_at(bytes, at + 8);
        candidate >= index
            && candidate - index < (1 << 32)
            && decode_frame(bytes, at, max).is_some()
    })
}

/// Why the frames of a segment stopped before its end.
enum Stop {
    /// A frame that fails its length or CRC check: torn, or corrupt.
    Bad,
    /// A whole frame of another index than the next one.
    Misplaced(u64),
}

/// What the frames of one segment hold, up to the first that is not the next record.
struct Frames {
    records: Vec<LogRecord>,
    /// The index after the last good record.
    next: u64,
    /// The offset after the last good frame.
    end: usize,
    stop: Option<Stop>,
}

/// Reads the frames of a segment (`bytes`, its header checked) whose first record is `first`.
fn read_frames(bytes: &[u8], first: u64, max: usize) -> Frames {
    let mut frames = Frames {
        records: Vec::new(),
        next: first,
        end: SEGMENT_HEADER_BYTES,
        stop: None,
    };
    while frames.end < bytes.len() {
        match decode_frame(bytes, frames.end, max) {
            Some((index, payload)) if index == frames.next => {
                frames.records.push(LogRecord {
                    index,
                    payload: bytes[payload.clone()].to_vec(),
                });
                frames.next += 1;
                frames.end = payload.end;
            }
            Some((index, _)) => {
                frames.stop = Some(Stop::Misplaced(index));
                break;
            }
            None => {
                frames.stop = Some(Stop::Bad);
                break;
            }
        }
    }
    frames
}

/// The error of file-system call `op` on `path`.
fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}

/// Creates the segment of records from `first` in `dir`, writes its header and makes both
/// durable.
fn create_segment(disk: &dyn Disk, dir: &Path, first: u64) -> io::Result<Box<dyn DiskFile>> {
    let mut file = disk.open_append(&dir.join(segment_name(first)))?;
    file.write_all(&segment_header(first))?;
    file.sync_data()?;
    disk.sync_dir(dir)?;
    Ok(file)
}

/// The CRC of a snapshot: over its index and length fields, then its payload.
fn snapshot_crc(fields: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(fields), payload)
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` and recovers what it holds: see the module
    /// documentation. Appends continue after the last record recovered.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        options: WalOptions,
    ) -> Result<(Wal, Recovered), StorageError> {
        let names = match disk.list(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                disk.create_dir_all(dir).map_err(io_error("create", dir))?;
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    // A new directory's own entry is durable once its parent is synced.
                    disk.sync_dir(parent).map_err(io_error("sync", parent))?;
                }
                Vec::new()
            }
            Err(e) => return Err(io_error("list", dir)(e)),
        };
        let mut segments = Vec::new();
        let mut snapshots = Vec::new();
        for name in names {
            if let Some(first) = parse_index(&name, ".wal") {
                segments.push(first);
            } else if let Some(index) = parse_index(&name, ".snap") {
                snapshots.push(index);
            } else if name.ends_with(".snap.tmp") {
                // A snapshot that was never renamed into place: it was not durable.
                let path = dir.join(&name);
                disk.remove(&path).map_err(io_error("remove", &path))?;
            }
        }
        segments.sort_unstable();
        snapshots.sort_unstable();

        let mut recovered = Recovered::default();
        let snapshot_index = match snapshots.last() {
            Some(&index) => {
                let snapshot =
                    read_snapshot(disk.as_ref(), &dir.join(snapshot_name(index)), index)?;
                recovered.snapshot = Some(snapshot);
                index
            }
            None => 0,
        };
        // Segments whose records all precede the snapshot are skipped (a crash came between
        // the snapshot and their removal).
        let keep_from = segments
            .iter()
            .rposition(|&first| first <= snapshot_index + 1)
            .unwrap_or(0);
        let mut segments = segments.split_off(keep_from);
        let mut next_index = snapshot_index + 1;
        if let Some(&first) = segments.first()
            && first > next_index
        {
            return Err(StorageError::Corrupt {
                path: dir.join(segment_name(first)),
                offset: 0,
                why: format!(
                    "records {next_index}..{first} are missing (the snapshot covers up to {snapshot_index})"
                ),
            });
        }
        // The last segment, if appends go on in it: where its good frames end, and the index
        // after its last record.
        let mut tail = None;
        let mut header_torn = false;
        for (i, &first) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let path = dir.join(segment_name(first));
            if i > 0 && first != next_index {
                return Err(StorageError::Corrupt {
                    path,
                    offset: 0,
                    why: format!("starts at record {first}, expected {next_index}"),
                });
            }
            let bytes = disk.read(&path).map_err(io_error("read", &path))?;
            let header = segment_header(first);
            if bytes.get(..SEGMENT_HEADER_BYTES) != Some(&header[..]) {
                if !(last && bytes.len() < SEGMENT_HEADER_BYTES && header.starts_with(&bytes)) {
                    return Err(StorageError::Corrupt {
                        path,
                        offset: 0,
                        why: "bad segment header".into(),
                    });
                }
                // Created but its header never fully written: removed, and created again below.
                disk.remove(&path).map_err(io_error("remove", &path))?;
                disk.sync_dir(dir).map_err(io_error("sync", dir))?;
                if !bytes.is_empty() {
                    recovered.torn = Some(TornTail {
                        path,
                        offset: 0,
                        cut: bytes.len() as u64,
                    });
                }
                tail = None;
                header_torn = true;
                break;
            }
            let frames = read_frames(&bytes, first, options.max_record_bytes);
            let corrupt = |why: String| StorageError::Corrupt {
                path: path.clone(),
                offset: frames.end as u64,
                why,
            };
            match frames.stop {
                None => {}
                Some(Stop::Misplaced(index)) => {
                    return Err(corrupt(format!(
                        "record {index} where record {} belongs",
                        frames.next
                    )));
                }
                Some(Stop::Bad)
                    if !last
                        || valid_frame_after(
                            &bytes,
                            frames.end,
                            frames.next,
                            options.max_record_bytes,
                        ) =>
                {
                    return Err(corrupt(format!(
                        "record {} fails its length or CRC check, and data follows it",
                        frames.next
                    )));
                }
                Some(Stop::Bad) => {
                    let cut = (bytes.len() - frames.end) as u64;
                    tracing::warn!(path = %path.display(), offset = frames.end, cut, "write-ahead log: cut a torn tail (a write cut short by a crash)");
                    disk.truncate(&path, frames.end as u64)
                        .map_err(io_error("truncate", &path))?;
                    recovered.torn = Some(TornTail {
                        path: path.clone(),
                        offset: frames.end as u64,
                        cut,
                    });
                }
            }
            recovered.records.extend(
                frames
                    .records
                    .into_iter()
                    .filter(|r| r.index > snapshot_index),
            );
            next_index = next_index.max(frames.next);
            tail = Some((frames.end as u64, frames.next));
        }
        if header_torn {
            segments.pop();
        }
        // Appends go on in the last segment if its records run up to the snapshot at least;
        // else in a new segment.
        let (file, file_bytes) = match tail {
            Some((end, next)) if next == next_index => {
                let path = dir.join(segment_name(*segments.last().expect("scanned")));
                let mut file = disk.open_append(&path).map_err(io_error("open", &path))?;
                // What a crashed process wrote survived it in the page cache, not necessarily
                // on the medium: sync it, and the directory, before counting it as durable.
                file.sync_data().map_err(io_error("sync", &path))?;
                disk.sync_dir(dir).map_err(io_error("sync", dir))?;
                (file, end)
            }
            _ => {
                let path = dir.join(segment_name(next_index));
                let file = create_segment(disk.as_ref(), dir, next_index)
                    .map_err(io_error("create", &path))?;
                segments.push(next_index);
                (file, SEGMENT_HEADER_BYTES as u64)
            }
        };
        let wal = Wal {
            file,
            disk,
            dir: dir.to_path_buf(),
            options,
            segments,
            file_bytes,
            next_index,
            buffer: Vec::new(),
            written_index: next_index - 1,
            synced_index: next_index - 1,
            snapshot_index,
            poisoned: None,
        };
        Ok((wal, recovered))
    }

    /// The index the next [`Wal::append`] gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Every record up to this index is durable (synced, or recovered at open).
    pub fn synced_index(&self) -> u64 {
        self.synced_index
    }

    /// Every record up to this index was handed to the file system (it survives the process).
    pub fn written_index(&self) -> u64 {
        self.written_index
    }

    /// The index the newest snapshot covers (0 without one).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Whether its disk syncs at no cost ([`Disk::syncs_in_place`]).
    pub fn syncs_in_place(&self) -> bool {
        self.disk.syncs_in_place()
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes appended but not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    fn check(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(why) => Err(StorageError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// `result`, or the error of `op` on `path`, which poisons the log.
    fn checked<T>(
        &mut self,
        op: &'static str,
        path: PathBuf,
        result: io::Result<T>,
    ) -> Result<T, StorageError> {
        result.map_err(|source| {
            let error = StorageError::Io { op, path, source };
            tracing::error!(dir = %self.dir.display(), error = %error, "write-ahead log stopped: nothing more is acknowledged until the replica restarts from its disk");
            self.poisoned = Some(error.to_string());
            error
        })
    }

    /// Buffers `payload` as the next record and returns its index. Nothing reaches the disk
    /// before [`Wal::write`] or [`Wal::sync`].
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, StorageError> {
        self.check()?;
        if payload.len() > self.options.max_record_bytes {
            return Err(StorageError::RecordTooLarge {
                bytes: payload.len(),
                max: self.options.max_record_bytes,
            });
        }
        let index = self.next_index;
        encode_frame(index, payload, &mut self.buffer);
        self.next_index += 1;
        Ok(index)
    }

    /// Hands every buffered record to the file system in one write, first starting a new
    /// segment if the current one is full.
    pub fn write(&mut self) -> Result<(), StorageError> {
        self.check()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.file_bytes >= self.options.segment_bytes {
            self.roll()?;
        }
        let written = self.file.write_all(&self.buffer);
        self.checked("write", self.current_path(), written)?;
        self.file_bytes += self.buffer.len() as u64;
        self.buffer.clear();
        self.written_index = self.next_index - 1;
        Ok(())
    }

    /// Writes every buffered record and syncs: once it returns `Ok`, every record appended so
    /// far survives a power loss. One sync covers every record appended since the last
    /// (group commit).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.write()?;
        self.sync_written()
    }

    /// Writes every buffered record and returns the sync that makes them durable, to run on
    /// another thread ([`PendingSync::run`]) while the log goes on taking records; `None` if
    /// every record written is synced already. Records count as synced only once
    /// [`Wal::finish_sync`] has its result.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSync>, StorageError> {
        self.write()?;
        if self.synced_index == self.written_index {
            return Ok(None);
        }
        let file = self.file.try_clone();
        let file = self.checked("sync", self.current_path(), file)?;
        Ok(Some(PendingSync {
            file,
            path: self.current_path(),
            covers: self.written_index,
        }))
    }

    /// Takes the result of a sync [`Wal::begin_sync`] started: the records it covers are
    /// durable, or (it failed) the log is poisoned.
    pub fn finish_sync(&mut self, done: SyncDone) -> Result<(), StorageError> {
        self.check()?;
        self.checked("sync", done.path, done.result)?;
        self.synced_index = self.synced_index.max(done.covers);
        Ok(())
    }

    /// Syncs the current segment if records were written to it since the last sync.
    fn sync_written(&mut self) -> Result<(), StorageError> {
        if self.synced_index == self.written_index {
            return Ok(());
        }
        let synced = self.file.sync_data();
        self.checked("sync", self.current_path(), synced)?;
        self.synced_index = self.written_index;
        Ok(())
    }

    /// Stores `payload` as a snapshot of everything up to record `covers` (at most the last
    /// record appended), durably: a temporary file, synced, renamed, the directory synced.
    /// Then a new segment starts and the segments and snapshots it makes useless are removed.
    /// In one step: [`Wal::begin_snapshot`], [`PendingSnapshot::run`], [`Wal::finish_snapshot`].
    pub fn snapshot(
        &mut self,
        covers: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), StorageError> {
        let pending = self.begin_snapshot(covers, payload.into())?;
        self.finish_snapshot(pending.run())
    }

    /// Prepares the write of `payload` as a snapshot of everything up to record `covers` (at
    /// most the last record appended), to run on any thread ([`PendingSnapshot::run`]) while
    /// records go on being appended, then to hand to [`Wal::finish_snapshot`]. Syncs what was
    /// written first, so that no record the snapshot covers is lost when it is not.
    pub fn begin_snapshot(
        &mut self,
        covers: u64,
        payload: Vec<u8>,
    ) -> Result<PendingSnapshot, StorageError> {
        self.check()?;
        if covers >= self.next_index || covers < self.snapshot_index {
            return Err(StorageError::SnapshotOutOfRange {
                covers,
                from: self.snapshot_index,
                to: self.next_index - 1,
            });
        }
        self.sync()?;
        let mut header = Vec::with_capacity(SNAPSHOT_HEADER_BYTES);
        header.extend_from_slice(SNAPSHOT_MAGIC);
        header.extend_from_slice(&covers.to_le_bytes());
        header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let crc = snapshot_crc(&header[8..24], &payload);
        header.extend_from_slice(&crc.to_le_bytes());
        Ok(PendingSnapshot {
            disk: self.disk.clone(),
            dir: self.dir.clone(),
            covers,
            header,
            payload,
        })
    }

    /// Takes the result of a snapshot's write ([`Wal::begin_snapshot`]): a failure poisons
    /// the log. A snapshot written durably starts a new segment and removes the segments and
    /// snapshots it makes useless; one overtaken by a newer snapshot meanwhile is removed.
    pub fn finish_snapshot(&mut self, written: SnapshotWritten) -> Result<(), StorageError> {
        self.check()?;
        let SnapshotWritten { covers, result } = written;
        if let Err((op, path, source)) = result {
            return self.checked(op, path, Err(source));
        }
        let path = self.dir.join(snapshot_name(covers));
        if covers <= self.snapshot_index {
            if covers < self.snapshot_index {
                let removed = self
                    .disk
                    .remove(&path)
                    .and_then(|()| self.disk.sync_dir(&self.dir));
                self.checked("remove", path, removed)?;
            }
            return Ok(());
        }
        let previous = self.snapshot_index;
        self.snapshot_index = covers;
        self.roll()?;
        // What the new snapshot makes useless: older snapshots, and every segment all of whose
        // records it covers (the next segment starts at or before `covers + 1`).
        let mut removed = Vec::new();
        if previous > 0 {
            removed.push(self.dir.join(snapshot_name(previous)));
        }
        while self.segments.len() > 1 && self.segments[1] <= covers + 1 {
            removed.push(self.dir.join(segment_name(self.segments.remove(0))));
        }
        for path in removed {
            let result = self.disk.remove(&path);
            self.checked("remove", path, result)?;
        }
        let synced = self.disk.sync_dir(&self.dir);
        self.checked("sync", self.dir.clone(), synced)
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join(segment_name(
            *self.segments.last().expect("a segment is open"),
        ))
    }

    /// Syncs what the current segment was given (a segment after it must never hold durable
    /// records while it does not), then starts the next segment after the last record written.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.sync_written()?;
        let first = self.written_index + 1;
        if self.segments.last() == Some(&first) {
            return Ok(());
        }
        let created = create_segment(self.disk.as_ref(), &self.dir, first);
        self.file = self.checked("create", self.dir.join(segment_name(first)), created)?;
        self.file_bytes = SEGMENT_HEADER_BYTES as u64;
        self.segments.push(first);
        Ok(())
    }
}

fn read_snapshot(disk: &dyn Disk, path: &Path, index: u64) -> Result<Snapshot, StorageError> {
    let bytes = disk.read(path).map_err(io_error("read", path))?;
    let corrupt = |offset: u64, why: &str| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        why: why.into(),
    };
    if bytes.len() < SNAPSHOT_HEADER_BYTES || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad snapshot header"));
    }
    if u64_at(&bytes, 8) != index {
        return Err(corrupt(8, "the index inside differs from the file's name"));
    }
    let len = u64_at(&bytes, 16);
    if len != (bytes.len() - SNAPSHOT_HEADER_BYTES) as u64 {
        return Err(corrupt(
            16,
            "the length inside differs from the file's size",
        ));
    }
    let payload = &bytes[SNAPSHOT_HEADER_BYTES..];
    if snapshot_crc(&bytes[8..24], payload) != u32_at(&bytes, 24) {
        return Err(corrupt(24, "the CRC does not match the content"));
    }
    Ok(Snapshot {
        index,
        payload: payload.to_vec(),
    })
}
