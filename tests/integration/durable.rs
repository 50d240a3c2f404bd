//! Durable replicas (issue 16) over the tokio runtime and the in-memory transport: every replica
//! killed at once comes back from its data directory with every acknowledged order, a power
//! loss of every machine loses nothing under `--fsync always`, and a failing disk stops its
//! replica while the others serve on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::messages::ReplicaRole;
use just_hungry::core::rng::SeededRng;
use just_hungry::core::storage::{Crash, Disk, FileDisk, FsyncPolicy, SimDisk};
use just_hungry::local::LocalCluster;
use just_hungry::orders::{OrderBook, OrderId, OrderValidator};

const WAIT: Duration = Duration::from_secs(20);
const NAMES: [&str; 3] = ["replica-1", "replica-2", "replica-3"];

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "just-hungry-durable-{test}-{}-{}",
            std::process::id(),
            just_hungry::core::runtime::random_u64()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_all(
    cluster: &mut LocalCluster<OrderBook>,
    disks: &[Arc<dyn Disk>],
    dirs: &[PathBuf],
    policy: FsyncPolicy,
) {
    let validator = Arc::new(OrderValidator::offline());
    for (i, name) in NAMES.iter().enumerate() {
        cluster
            .start_durable_replica(
                name,
                OrderBook::with_predefined_history(),
                validator.clone(),
                disks[i].clone(),
                &dirs[i],
                policy,
            )
            .await
            .unwrap();
    }
}

async fn wait_for_three(cluster: &LocalCluster<OrderBook>) {
    cluster
        .wait_for_replicas("a primary and two backups", WAIT, |r| {
            let backups = r
                .values()
                .filter(|r| r.role == Some(ReplicaRole::Backup))
                .count();
            let primaries = r
                .values()
                .filter(|r| r.role == Some(ReplicaRole::Primary))
                .count();
            backups == 2 && primaries == 1
        })
        .await
        .expect("a view of the three replicas");
}

async fn place(cluster: &mut LocalCluster<OrderBook>, from: usize, count: usize) -> Vec<OrderId> {
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let mut acked = Vec::new();
    for i in from..from + count {
        let items = vec![format!("pizza {i}")];
        acked.push(client.place_order("SW1A 1AA", items).await.unwrap());
    }
    acked
}

async fn every_order_id(cluster: &mut LocalCluster<OrderBook>) -> Vec<OrderId> {
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let histories = client.all_histories().await.expect("histories");
    histories.values().flatten().map(|o| o.id).collect()
}

/// Every acknowledged order is held exactly once.
fn assert_all_once(held: &[OrderId], acked: &[OrderId]) {
    for id in acked {
        let copies = held.iter().filter(|h| *h == id).count();
        assert_eq!(copies, 1, "acknowledged order {id:?} held {copies} times");
    }
}

/// Kills every replica and the front-end, as `kill -9` would, then restarts them all: the
/// front-end from its stored view, each replica from its data directory.
async fn kill_everything_and_restart(
    cluster: &mut LocalCluster<OrderBook>,
    disks: &[Arc<dyn Disk>],
    dirs: &[PathBuf],
    policy: FsyncPolicy,
    after_kill: impl FnOnce(),
) {
    for name in NAMES {
        assert!(cluster.crash_replica(name).await);
    }
    cluster.crash_frontend().await;
    after_kill();
    cluster.start_frontend().await.unwrap();
    start_all(cluster, disks, dirs, policy).await;
}

#[tokio::test]
async fn every_process_killed_at_once_comes_back_with_every_acknowledged_order() {
    let temp = TempDir::new("kill");
    let dirs: Vec<PathBuf> = NAMES.iter().map(|n| temp.0.join(n)).collect();
    let disks: Vec<Arc<dyn Disk>> = NAMES.iter().map(|_| Arc::new(FileDisk) as _).collect();
    let policy = FsyncPolicy::Batch(Duration::from_millis(10));
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    start_all(&mut cluster, &disks, &dirs, policy).await;
    cluster.start_frontend().await.unwrap();
    wait_for_three(&cluster).await;
    let mut acked = place(&mut cluster, 0, 20).await;

    kill_everything_and_restart(&mut cluster, &disks, &dirs, policy, || {}).await;
    wait_for_three(&cluster).await;
    acked.extend(place(&mut cluster, 20, 5).await);
    let held = every_order_id(&mut cluster).await;
    assert_all_once(&held, &acked);
    for dir in &dirs {
        let logs = std::fs::read_dir(dir).unwrap().count();
        assert!(logs > 0, "{} holds the replica's log", dir.display());
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_power_loss_of_every_machine_loses_nothing_under_fsync_always() {
    let sim: Vec<SimDisk> = NAMES.iter().map(|_| SimDisk::new()).collect();
    let disks: Vec<Arc<dyn Disk>> = sim.iter().map(|d| Arc::new(d.clone()) as _).collect();
    let dirs: Vec<PathBuf> = NAMES.iter().map(|_| PathBuf::from("/data")).collect();
    let policy = FsyncPolicy::Always;
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    start_all(&mut cluster, &disks, &dirs, policy).await;
    cluster.start_frontend().await.unwrap();
    wait_for_three(&cluster).await;
    let mut acked = place(&mut cluster, 0, 20).await;

    kill_everything_and_restart(&mut cluster, &disks, &dirs, policy, || {
        // Every machine loses what it had not synced; tails are torn.
        let mut rng = SeededRng::new(16);
        for disk in &sim {
            disk.crash(Crash::PowerLoss, &mut rng);
        }
    })
    .await;
    wait_for_three(&cluster).await;
    acked.extend(place(&mut cluster, 20, 5).await);
    let held = every_order_id(&mut cluster).await;
    assert_all_once(&held, &acked);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_failing_sync_stops_the_primary_and_the_others_serve_on() {
    let sim: Vec<SimDisk> = NAMES.iter().map(|_| SimDisk::new()).collect();
    let disks: Vec<Arc<dyn Disk>> = sim.iter().map(|d| Arc::new(d.clone()) as _).collect();
    let dirs: Vec<PathBuf> = NAMES.iter().map(|_| PathBuf::from("/data")).collect();
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    start_all(&mut cluster, &disks, &dirs, FsyncPolicy::Always).await;
    cluster.start_frontend().await.unwrap();
    wait_for_three(&cluster).await;
    let mut acked = place(&mut cluster, 0, 5).await;
    let primary = cluster
        .replica_reports()
        .await
        .into_iter()
        .find(|(_, r)| r.role == Some(ReplicaRole::Primary))
        .map(|(name, _)| name)
        .expect("a primary");
    let slot = NAMES.iter().position(|n| *n == primary).unwrap();
    sim[slot].fail_next_syncs(1);

    // The next write fails the primary's sync: it stops, never acknowledging that write from
    // a log it could not sync, and a backup takes over.
    acked.extend(place(&mut cluster, 5, 5).await);
    cluster
        .wait_for_replicas("the primary stopped", WAIT, |r| !r.contains_key(&primary))
        .await
        .expect("the primary stops");
    let held = every_order_id(&mut cluster).await;
    assert_all_once(&held, &acked);
    cluster.shutdown().await;
}

/// Durable replicas that snapshot every few orders, through the runtime (the state encoded a
/// piece per turn of the loop, written on a blocking thread): their directories hold a
/// snapshot and the log it covers is gone, and once every process is killed and restarted
/// every acknowledged order is there, once.
#[tokio::test]
async fn replicas_snapshotting_as_they_serve_come_back_with_every_acknowledged_order() {
    let temp = TempDir::new("snapshots");
    let dirs: Vec<PathBuf> = NAMES.iter().map(|n| temp.0.join(n)).collect();
    let disks: Vec<Arc<dyn Disk>> = NAMES.iter().map(|_| Arc::new(FileDisk) as _).collect();
    let policy = FsyncPolicy::Always;
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    cluster.snapshot_after_bytes(2048);
    start_all(&mut cluster, &disks, &dirs, policy).await;
    cluster.start_frontend().await.unwrap();
    wait_for_three(&cluster).await;
    let mut acked = place(&mut cluster, 0, 60).await;
    for dir in &dirs {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.ends_with(".snap")),
            "{} holds a snapshot: {names:?}",
            dir.display()
        );
        let segments = names.iter().filter(|n| n.ends_with(".wal")).count();
        assert!(
            segments <= 2,
            "the log a snapshot covers is removed: {names:?}"
        );
    }

    kill_everything_and_restart(&mut cluster, &disks, &dirs, policy, || {}).await;
    wait_for_three(&cluster).await;
    acked.extend(place(&mut cluster, 60, 5).await);
    let held = every_order_id(&mut cluster).await;
    assert_all_once(&held, &acked);
    cluster.shutdown().await;
}
