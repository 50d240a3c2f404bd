//! The write-ahead log on the real file system and on the simulated disk with its faults.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::rng::SeededRng;

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("jh-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> &'static Path {
    Path::new("/data/replica-1")
}

fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (index as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

fn open(disk: &SimDisk, options: WalOptions) -> Result<(Wal, Recovered), StorageError> {
    Wal::open(Arc::new(disk.clone()), dir(), options)
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes: 256,
        ..WalOptions::default()
    }
}

#[test]
fn records_synced_on_the_file_system_come_back_in_order() {
    let tmp = TempDir::new("fs");
    let (mut wal, recovered) = Wal::open(Arc::new(FileDisk), &tmp.0, small_segments()).unwrap();
    assert_eq!(recovered, Recovered::default());
    for i in 1..=40 {
        assert_eq!(wal.append(&payload(i, 20)).unwrap(), i);
        if i % 7 == 0 {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
    assert_eq!(wal.synced_index(), 40);
    drop(wal);
    let segments = std::fs::read_dir(&tmp.0).unwrap().count();
    assert!(segments > 1, "256-byte segments: {segments} files");
    let (wal, recovered) = Wal::open(Arc::new(FileDisk), &tmp.0, small_segments()).unwrap();
    let indexes: Vec<u64> = recovered.records.iter().map(|r| r.index).collect();
    assert_eq!(indexes, (1..=40).collect::<Vec<_>>());
    assert!(
        recovered
            .records
            .iter()
            .all(|r| r.payload == payload(r.index, 20))
    );
    assert_eq!((wal.next_index(), recovered.torn), (41, None));
}

#[test]
fn a_snapshot_replaces_the_segments_it_covers() {
    let tmp = TempDir::new("snap");
    let (mut wal, _) = Wal::open(Arc::new(FileDisk), &tmp.0, small_segments()).unwrap();
    for i in 1..=30 {
        wal.append(&payload(i, 20)).unwrap();
        wal.sync().unwrap();
    }
    wal.snapshot(30, b"state at 30").unwrap();
    for i in 31..=33 {
        wal.append(&payload(i, 20)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let mut names: Vec<String> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000030.snap".to_string(),
            "00000000000000000031.wal".to_string()
        ]
    );
    let (_, recovered) = Wal::open(Arc::new(FileDisk), &tmp.0, small_segments()).unwrap();
    let snapshot = recovered.snapshot.unwrap();
    assert_eq!(
        (snapshot.index, &snapshot.payload[..]),
        (30, &b"state at 30"[..])
    );
    let indexes: Vec<u64> = recovered.records.iter().map(|r| r.index).collect();
    assert_eq!(indexes, vec![31, 32, 33]);
}

#[test]
fn a_write_cut_short_is_cut_at_recovery_and_appends_go_on() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    for i in 1..=3 {
        wal.append(&payload(i, 100)).unwrap();
    }
    wal.sync().unwrap();
    wal.append(&payload(4, 100)).unwrap();
    wal.write().unwrap();
    drop(wal);
    // The machine stopped with 50 of record 4's 116 bytes on the medium.
    let path = dir().join("00000000000000000001.wal");
    let len = disk.contents(&path).unwrap().len() as u64;
    disk.truncate(&path, len - 66).unwrap();
    let (mut wal, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 3);
    assert_eq!(
        recovered.torn.map(|t| (t.offset, t.cut)),
        Some((len - 116, 50))
    );
    assert_eq!(wal.append(&payload(4, 10)).unwrap(), 4);
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 4);
    assert_eq!(recovered.records[3].payload, payload(4, 10));
    assert_eq!(recovered.torn, None);
}

#[test]
fn recovery_reports_the_torn_tail_it_cut() {
    let disk = SimDisk::new();
    disk.create_dir_all(dir()).unwrap();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    wal.append(&payload(1, 100)).unwrap();
    wal.sync().unwrap();
    let path = dir().join("00000000000000000001.wal");
    let synced = disk.contents(&path).unwrap().len() as u64;
    wal.append(&payload(2, 100)).unwrap();
    wal.write().unwrap();
    drop(wal);
    // The last byte of record 2 rotted before it was synced: the frame fails its CRC with
    // nothing after it.
    let len = disk.contents(&path).unwrap().len();
    assert!(disk.flip_bit(&path, len - 1, 3));
    let (wal, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 1);
    assert_eq!(
        recovered.torn,
        Some(TornTail {
            path: path.clone(),
            offset: synced,
            cut: 116
        })
    );
    assert_eq!(disk.contents(&path).unwrap().len() as u64, synced);
    assert_eq!(wal.next_index(), 2);
}

#[test]
fn corruption_in_the_middle_refuses_to_start_naming_file_and_offset() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    for i in 1..=5 {
        wal.append(&payload(i, 100)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let path = dir().join("00000000000000000001.wal");
    // A bit of record 2's payload (record 1 spans bytes 20..136).
    let record_2 = SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES + 100;
    assert!(disk.flip_bit(&path, record_2 + FRAME_HEADER_BYTES + 7, 0));
    let error = open(&disk, WalOptions::default()).err().expect("corrupt");
    match &error {
        StorageError::Corrupt {
            path: p, offset, ..
        } => assert_eq!((p, *offset), (&path, record_2 as u64)),
        other => panic!("{other}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("00000000000000000001.wal is corrupt at byte 136"),
        "{text}"
    );
    // Nothing was changed: the same error again.
    assert!(matches!(
        open(&disk, WalOptions::default()),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn a_corrupt_snapshot_refuses_to_start() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    wal.append(b"one").unwrap();
    wal.snapshot(1, b"the state").unwrap();
    drop(wal);
    let path = dir().join("00000000000000000001.snap");
    assert!(disk.flip_bit(&path, 30, 1));
    let error = open(&disk, WalOptions::default()).err().expect("corrupt");
    assert!(
        error
            .to_string()
            .contains("00000000000000000001.snap is corrupt at byte 24"),
        "{error}"
    );
}

#[test]
fn a_failed_sync_stops_the_log_and_is_not_retried() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    wal.append(b"one").unwrap();
    wal.sync().unwrap();
    let syncs = disk.syncs();
    wal.append(b"two").unwrap();
    disk.fail_next_syncs(1);
    assert!(matches!(
        wal.sync(),
        Err(StorageError::Io { op: "sync", .. })
    ));
    assert_eq!(wal.synced_index(), 1);
    assert!(matches!(
        wal.append(b"three"),
        Err(StorageError::Poisoned(_))
    ));
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned(_))));
    assert_eq!(disk.syncs(), syncs, "no sync was tried after the failure");
    drop(wal);
    // After a power loss, what the failed sync was to make durable may be gone; record 1 is not.
    disk.crash(Crash::PowerLoss, &mut SeededRng::new(7));
    let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records[0].payload, b"one");
    assert!(recovered.records.len() <= 2);
}

/// A sync run off the log's thread (`begin_sync`, `PendingSync::run` elsewhere,
/// `finish_sync`) covers what was written when it began, not what was appended meanwhile; once
/// finished, those records survive a power loss.
#[test]
fn a_sync_run_elsewhere_covers_what_was_written_when_it_began() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    for i in 1..=3 {
        wal.append(&payload(i, 40)).unwrap();
    }
    let pending = wal.begin_sync().unwrap().expect("records to sync");
    assert_eq!(pending.covers(), 3);
    wal.append(&payload(4, 40)).unwrap();
    let done = std::thread::spawn(move || pending.run()).join().unwrap();
    assert_eq!(
        wal.synced_index(),
        0,
        "not synced before its result is taken"
    );
    wal.finish_sync(done).unwrap();
    assert_eq!((wal.synced_index(), wal.next_index()), (3, 5));
    assert!(
        wal.begin_sync().unwrap().is_some(),
        "record 4 still needs one"
    );
    drop(wal);
    disk.crash(Crash::PowerLoss, &mut SeededRng::new(9));
    let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert!(recovered.records.len() >= 3);
    for record in &recovered.records[..3] {
        assert_eq!(record.payload, payload(record.index, 40));
    }
}

/// A sync run elsewhere that fails stops the log, as one run in place does.
#[test]
fn a_sync_run_elsewhere_that_fails_stops_the_log() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk, WalOptions::default()).unwrap();
    wal.append(b"one").unwrap();
    let pending = wal.begin_sync().unwrap().expect("a record to sync");
    disk.fail_next_syncs(1);
    let done = pending.run();
    assert!(matches!(
        wal.finish_sync(done),
        Err(StorageError::Io { op: "sync", .. })
    ));
    assert_eq!(wal.synced_index(), 0);
    assert!(matches!(wal.append(b"two"), Err(StorageError::Poisoned(_))));
}

/// A log holding record 1 (synced) whose disk then filled up 60 bytes into record 2: the log
/// and the error of that sync.
fn a_log_that_filled_its_disk(disk: &SimDisk) -> (Wal, StorageError) {
    let (mut wal, _) = open(disk, WalOptions::default()).unwrap();
    wal.append(&payload(1, 100)).unwrap();
    wal.sync().unwrap();
    let used = disk
        .contents(&dir().join("00000000000000000001.wal"))
        .unwrap()
        .len();
    disk.set_capacity(Some(used + 60));
    wal.append(&payload(2, 100)).unwrap();
    let error = wal.sync().expect_err("full");
    (wal, error)
}

#[test]
fn a_full_disk_stops_the_log_and_recovery_cuts_the_short_write() {
    let disk = SimDisk::new();
    let (mut wal, error) = a_log_that_filled_its_disk(&disk);
    match &error {
        StorageError::Io { op, source, .. } => {
            assert_eq!(
                (*op, source.kind()),
                ("write", std::io::ErrorKind::StorageFull)
            )
        }
        other => panic!("{other}"),
    }
    assert!(matches!(wal.append(b"x"), Err(StorageError::Poisoned(_))));
    drop(wal);
    disk.crash(Crash::Process, &mut SeededRng::new(1));
    disk.set_capacity(None);
    let (mut wal, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 1);
    assert_eq!(recovered.torn.map(|t| t.cut), Some(60));
    assert_eq!(wal.append(b"after").unwrap(), 2);
    wal.sync().unwrap();
}

/// A replica restarted before anyone made room: recovery still works (cutting the short write
/// needs no space) and gives back every synced record, and the first write that needs room
/// fails again as a full disk, poisoning the log; nothing panics, nothing synced is lost.
#[test]
fn a_restart_on_a_disk_still_full_recovers_and_fails_at_the_first_write() {
    let disk = SimDisk::new();
    let (wal, _) = a_log_that_filled_its_disk(&disk);
    drop(wal);
    disk.crash(Crash::Process, &mut SeededRng::new(1));
    let (mut wal, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 1);
    assert_eq!(recovered.records[0].payload, payload(1, 100));
    assert_eq!(wal.append(&payload(2, 100)).unwrap(), 2);
    match wal.sync().expect_err("still full") {
        StorageError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("{other}"),
    }
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned(_))));
    drop(wal);
    // Room again: the record synced before the disk filled is still there, once.
    disk.crash(Crash::PowerLoss, &mut SeededRng::new(2));
    disk.set_capacity(None);
    let (_, recovered) = open(&disk, WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 1);
}

#[test]
fn a_record_over_the_limit_is_refused_and_changes_nothing() {
    let disk = SimDisk::new();
    let options = WalOptions {
        max_record_bytes: 64,
        ..WalOptions::default()
    };
    let (mut wal, _) = open(&disk, options).unwrap();
    assert!(matches!(
        wal.append(&[0; 65]),
        Err(StorageError::RecordTooLarge { bytes: 65, max: 64 })
    ));
    assert_eq!(wal.append(&[0; 64]).unwrap(), 1);
    assert!(matches!(
        wal.snapshot(2, b""),
        Err(StorageError::SnapshotOutOfRange { covers: 2, .. })
    ));
}

#[test]
fn fsync_policies_parse_and_print() {
    for text in ["always", "never", "batch:10", "batch:250"] {
        assert_eq!(text.parse::<FsyncPolicy>().unwrap().to_string(), text);
    }
    assert_eq!(
        "batch".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::Batch(DEFAULT_BATCH_INTERVAL)
    );
    for bad in ["", "sometimes", "batch:0", "batch:x", "batch:10001"] {
        assert!(bad.parse::<FsyncPolicy>().is_err(), "{bad}");
    }
}

/// One step of the log's life in the property test.
#[derive(Clone, Debug)]
enum Step {
    Append(usize),
    Write,
    Sync,
    Snapshot,
    Crash(Crash),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..120).prop_map(Step::Append),
        2 => Just(Step::Write),
        2 => Just(Step::Sync),
        1 => Just(Step::Snapshot),
        1 => prop_oneof![Just(Crash::Process), Just(Crash::PowerLoss)].prop_map(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the crashes: recovery yields a prefix of what was appended, holding every
    /// record synced (and, after a process crash, every record written); appends go on after it.
    #[test]
    fn recovery_keeps_every_synced_record_and_nothing_else(
        steps in proptest::collection::vec(step(), 1..80),
        seed in any::<u64>(),
        segment_bytes in 64u64..2048,
    ) {
        let options = WalOptions { segment_bytes, ..WalOptions::default() };
        let disk = SimDisk::new();
        let mut rng = SeededRng::new(seed);
        let (mut wal, _) = open(&disk, options).unwrap();
        // The payloads of records 1..; the snapshot's payload is the index it covers.
        let mut model: Vec<Vec<u8>> = Vec::new();
        for step in steps {
            match step {
                Step::Append(len) => {
                    let bytes = payload(rng.next_u64(), len);
                    let index = wal.append(&bytes).unwrap();
                    prop_assert_eq!(index, model.len() as u64 + 1);
                    model.push(bytes);
                }
                Step::Write => wal.write().unwrap(),
                Step::Sync => wal.sync().unwrap(),
                Step::Snapshot => {
                    let covers = wal.next_index() - 1;
                    if covers > wal.snapshot_index() {
                        wal.snapshot(covers, covers.to_le_bytes()).unwrap();
                    }
                }
                Step::Crash(crash) => {
                    let must_keep = match crash {
                        Crash::Process => wal.written_index(),
                        Crash::PowerLoss => wal.synced_index(),
                    };
                    drop(wal);
                    disk.crash(crash, &mut rng);
                    let (reopened, recovered) = open(&disk, options).unwrap();
                    wal = reopened;
                    let from = match &recovered.snapshot {
                        Some(s) => {
                            prop_assert_eq!(&s.payload[..], &s.index.to_le_bytes()[..]);
                            s.index
                        }
                        None => 0,
                    };
                    for (i, record) in recovered.records.iter().enumerate() {
                        prop_assert_eq!(record.index, from + 1 + i as u64);
                        prop_assert_eq!(&record.payload, &model[record.index as usize - 1]);
                    }
                    let last = from + recovered.records.len() as u64;
                    prop_assert!(last >= must_keep, "kept {} of {} ({:?})", last, must_keep, crash);
                    prop_assert!(last <= model.len() as u64);
                    prop_assert_eq!(wal.next_index(), last + 1);
                    model.truncate(last as usize);
                }
            }
        }
    }
}

mod replica_store {
    use super::*;
    use crate::ids::{
        Address, ClientId, Member, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
    };
    use crate::protocol::client_table::ClientTableLimits;
    use crate::protocol::messages::Entry;
    use crate::protocol::replicated_state::ReplicatedState;
    use crate::sim::{KeyedLists, ListKey};

    fn entry(op: u64) -> Entry<ListKey> {
        Entry {
            op: OpNumber(op),
            request: RequestId {
                client: ClientId(1),
                seq: op,
            },
            owner: "client".into(),
            time: Time(op),
            command: ListKey(["a", "B", "c"][op as usize % 3].into()),
        }
    }

    fn view(number: u64) -> View {
        View {
            number: ViewNumber(number),
            primary: Member {
                id: ReplicaId::new("replica-1", 7),
                address: Address::new("127.0.0.1:7001"),
            },
            backups: Vec::new(),
        }
    }

    type Opened = (ReplicaStore, RecoveredReplica<KeyedLists>);

    fn open_store(disk: &SimDisk, name: &str, policy: FsyncPolicy) -> Result<Opened, StoreError> {
        ReplicaStore::open(
            Arc::new(disk.clone()),
            dir(),
            &ReplicaId::new(name, 11),
            policy,
            Time(0),
            KeyedLists::default(),
            ClientTableLimits::default(),
        )
    }

    /// The state a replica reaches by applying ops `1..=ops` to the pre-defined data.
    fn applied(ops: u64) -> ReplicatedState<KeyedLists> {
        let mut state = ReplicatedState::new(KeyedLists::default(), ClientTableLimits::default());
        for op in 1..=ops {
            let _reply = state.apply(&entry(op));
        }
        state
    }

    #[test]
    fn a_restart_rebuilds_the_view_and_the_state_it_held() {
        let disk = SimDisk::new();
        let (mut store, recovered) = open_store(&disk, "replica-1", FsyncPolicy::Always).unwrap();
        assert!(!recovered.held_state, "a fresh directory holds nothing");
        store.record_view(&view(3)).unwrap();
        store
            .record_entries(&(1..=4).map(entry).collect::<Vec<_>>())
            .unwrap();
        store.commit(Time(1)).unwrap();
        store.record_entries(&[entry(5)]).unwrap();
        store.record_view(&view(4)).unwrap();
        store.commit(Time(2)).unwrap();
        drop(store);
        disk.crash(Crash::PowerLoss, &mut SeededRng::new(3));
        let (_, recovered) = open_store(&disk, "replica-1", FsyncPolicy::Always).unwrap();
        assert!(recovered.held_state);
        assert_eq!(recovered.view, Some(view(4)));
        assert_eq!(recovered.state.applied(), OpNumber(5));
        assert_eq!(recovered.state.digest(), applied(5).digest());
    }

    #[test]
    fn an_installed_state_is_a_snapshot_and_entries_follow_it() {
        let disk = SimDisk::new();
        let (mut store, _) = open_store(&disk, "replica-2", FsyncPolicy::Always).unwrap();
        store.record_entries(&[entry(1)]).unwrap();
        store.commit(Time(1)).unwrap();
        // A primary of view 6 installs its state at op 10 (the replica's op 1 is replaced).
        store
            .record_state(Some(&view(6)), ViewNumber(6), &applied(10))
            .unwrap();
        store.record_entries(&[entry(11), entry(12)]).unwrap();
        store.commit(Time(2)).unwrap();
        drop(store);
        disk.crash(Crash::PowerLoss, &mut SeededRng::new(4));
        let (_, recovered) = open_store(&disk, "replica-2", FsyncPolicy::Always).unwrap();
        assert_eq!(
            (
                recovered.view,
                recovered.state_view,
                recovered.state.applied()
            ),
            (Some(view(6)), ViewNumber(6), OpNumber(12))
        );
        assert_eq!(recovered.state.digest(), applied(12).digest());
    }

    #[test]
    fn another_replicas_directory_is_refused_by_name() {
        let disk = SimDisk::new();
        let (mut store, _) = open_store(&disk, "replica-1", FsyncPolicy::Always).unwrap();
        store.record_entries(&[entry(1)]).unwrap();
        store.commit(Time(1)).unwrap();
        drop(store);
        let error = open_store(&disk, "replica-2", FsyncPolicy::Always)
            .err()
            .unwrap();
        assert!(matches!(error, StoreError::WrongReplica { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("give each replica its own --data-dir")
        );
    }

    #[test]
    fn a_gap_in_the_ops_refuses_to_start() {
        let disk = SimDisk::new();
        let (mut store, _) = open_store(&disk, "replica-1", FsyncPolicy::Always).unwrap();
        store.record_entries(&[entry(1), entry(3)]).unwrap();
        store.commit(Time(1)).unwrap();
        drop(store);
        let error = open_store(&disk, "replica-1", FsyncPolicy::Always)
            .err()
            .unwrap();
        assert!(
            matches!(
                error,
                StoreError::Gap {
                    found: OpNumber(3),
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn each_policy_syncs_when_it_says() {
        for (policy, synced_at_commit, synced_at_tick) in [
            (FsyncPolicy::Always, true, true),
            (
                FsyncPolicy::Batch(std::time::Duration::from_millis(10)),
                false,
                true,
            ),
            (FsyncPolicy::Never, false, false),
        ] {
            let disk = SimDisk::new();
            let (mut store, _) = open_store(&disk, "replica-1", policy).unwrap();
            let before = store.synced_index();
            store.record_entries(&[entry(1)]).unwrap();
            store.commit(Time(5)).unwrap();
            assert_eq!(store.synced_index() > before, synced_at_commit, "{policy}");
            assert_eq!(
                store.next_sync().is_some(),
                matches!(policy, FsyncPolicy::Batch(_)),
                "{policy}"
            );
            store.tick(Time(10)).unwrap();
            assert_eq!(store.synced_index() > before, synced_at_tick, "{policy}");
            // Whatever the policy, a process crash loses nothing written.
            drop(store);
            disk.crash(Crash::Process, &mut SeededRng::new(1));
            let (_, recovered) = open_store(&disk, "replica-1", policy).unwrap();
            assert_eq!(recovered.state.applied(), OpNumber(1), "{policy}");
        }
    }
}

/// A snapshot is several syncs (the log, the temporary file, the directory after the rename, the
/// new segment, the directory after the removals): whichever fails, the log stops, and after a
/// power loss recovery still holds every record synced before the snapshot began.
#[test]
fn a_sync_failing_anywhere_in_a_snapshot_loses_nothing_synced() {
    for skip in 0..8 {
        for seed in 0..4 {
            let disk = SimDisk::new();
            let (mut wal, _) = open(&disk, small_segments()).unwrap();
            for i in 1..=20 {
                wal.append(&payload(i, 30)).unwrap();
                wal.sync().unwrap();
            }
            disk.fail_sync_after(skip);
            let snapshot = wal.snapshot(20, 20u64.to_le_bytes());
            let failed = snapshot.is_err();
            // Five syncs: the temporary file, the directory, the new segment and its directory
            // entry, the directory after the removals.
            assert_eq!(failed, skip < 5, "skip {skip}");
            if failed {
                assert!(matches!(wal.append(b"x"), Err(StorageError::Poisoned(_))));
            }
            drop(wal);
            disk.fail_next_syncs(0);
            disk.crash(Crash::PowerLoss, &mut SeededRng::new(seed));
            let (wal, recovered) = open(&disk, small_segments())
                .unwrap_or_else(|e| panic!("skip {skip}, seed {seed}: {e}"));
            let from = recovered.snapshot.as_ref().map_or(0, |s| s.index);
            let last = from + recovered.records.len() as u64;
            assert_eq!(
                last, 20,
                "skip {skip}, seed {seed}, snapshot failed: {failed}"
            );
            for record in &recovered.records {
                assert_eq!(record.payload, payload(record.index, 30));
            }
            assert_eq!(wal.next_index(), 21);
        }
    }
}
