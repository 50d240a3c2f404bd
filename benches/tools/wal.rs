//! Measures the write-ahead log on this machine's disk (issue 16): what one fdatasync costs,
//! how many records per second group commit reaches at each batch size, how long reading
//! back a log of a million records takes, and how long a replica holding a million orders
//! takes to restart from its data directory (replaying its log, then from a snapshot).
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/wal                       # in a temporary directory
//! target/release/wal --dir /var/lib/jh-wal-bench --records 1000000
//! ```
//!
//! Records are `--record-bytes` long (default 160: an order entry of a few items, encoded). The
//! directory is removed at the end. Run it on the disk the replicas will use: a tmpfs (as
//! `/tmp` may be) syncs for free and says nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use just_hungry::core::storage::{FileDisk, Wal, WalOptions};

// The benches' set-up, for its nearest-rank percentiles (`common::latency::percentiles`).
#[path = "../common/mod.rs"]
mod common;

/// The write-ahead log on a real disk.
#[derive(Parser, Debug)]
#[command(
    about = "fdatasync's cost, group commit throughput and recovery time of the write-ahead log"
)]
struct Args {
    /// The directory to write in (created, then removed); default: a fresh one under the
    /// system's temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Bytes per record.
    #[arg(long, default_value_t = 160)]
    record_bytes: usize,
    /// How long each group-commit batch size runs.
    #[arg(long, default_value = "2s", value_parser = just_hungry::cli::parse_duration)]
    duration: Duration,
    /// Records written, then read back, for the recovery figure.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Orders in the replica restarted for the replica recovery figures.
    #[arg(long, default_value_t = 1_000_000)]
    orders: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("jh-wal-bench-{}", std::process::id()))
    });
    let payload = vec![0x5a; args.record_bytes];
    println!(
        "directory {} ({} B records)",
        base.display(),
        args.record_bytes
    );

    // 1. One record, one fdatasync, many times.
    let dir = base.join("sync");
    let (mut wal, _) = Wal::open(Arc::new(FileDisk), &dir, WalOptions::default())?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let t = Instant::now();
        wal.append(&payload)?;
        wal.sync()?;
        latencies.push(t.elapsed());
    }
    let syncs = common::latency::percentiles(&mut latencies)
        .ok_or_else(|| anyhow::anyhow!("no sync ran within --duration"))?;
    println!(
        "append + fdatasync of one record: p50 {:?}, p99 {:?}, max {:?} ({} syncs)",
        syncs.p50, syncs.p99, syncs.max, syncs.count
    );

    // 2. Group commit: a batch of records, one sync.
    for batch in [1usize, 16, 64, 256, 1024] {
        let dir = base.join(format!("batch-{batch}"));
        let (mut wal, _) = Wal::open(Arc::new(FileDisk), &dir, WalOptions::default())?;
        let started = Instant::now();
        let mut records = 0u64;
        while started.elapsed() < args.duration {
            for _ in 0..batch {
                wal.append(&payload)?;
            }
            wal.sync()?;
            records += batch as u64;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "group commit, {batch:>4} records per sync: {:>9.0} records/s",
            records as f64 / seconds
        );
        std::fs::remove_dir_all(&dir)?;
    }

    // 3. Recovery: read back a log of `records` records.
    let dir = base.join("recovery");
    let (mut wal, _) = Wal::open(Arc::new(FileDisk), &dir, WalOptions::default())?;
    for i in 0..args.records {
        wal.append(&payload)?;
        if i % 4096 == 4095 {
            wal.write()?;
        }
    }
    wal.sync()?;
    drop(wal);
    let started = Instant::now();
    let (_, recovered) = Wal::open(Arc::new(FileDisk), &dir, WalOptions::default())?;
    let read = started.elapsed();
    anyhow::ensure!(
        recovered.records.len() as u64 == args.records,
        "read back {} of {} records",
        recovered.records.len(),
        args.records
    );
    println!(
        "recovery: {} records ({} MiB) read and checked in {:?}",
        args.records,
        args.records * (args.record_bytes as u64 + 16) / (1024 * 1024),
        read
    );
    replica_recovery(&base.join("replica"), args.orders)?;
    std::fs::remove_dir_all(&base)?;
    Ok(())
}

/// Step 4: a replica of the order book that applied `orders` orders (recorded 256 to a record,
/// as a backup records a `Prepare`'s batch) restarts, once replaying its whole log, once from
/// the snapshot of that state.
fn replica_recovery(dir: &std::path::Path, orders: u64) -> anyhow::Result<()> {
    use just_hungry::core::ids::{ClientId, OpNumber, ReplicaId, RequestId, Time, ViewNumber};
    use just_hungry::core::protocol::client_table::ClientTableLimits;
    use just_hungry::core::protocol::messages::Entry;
    use just_hungry::core::storage::{FsyncPolicy, ReplicaStore};
    use just_hungry::orders::{OrderBook, OrderCommand};

    let open = |incarnation: u64| {
        ReplicaStore::open(
            Arc::new(FileDisk),
            dir,
            &ReplicaId::new("replica-1", incarnation),
            FsyncPolicy::Batch(Duration::from_millis(10)),
            Time::ZERO,
            OrderBook::empty(),
            ClientTableLimits::default(),
        )
    };
    let (mut store, _) = open(1)?;
    let postcodes = [
        "SW1A 1AA", "EC1A 1BB", "M1 1AE", "B33 8TH", "CR2 6XH", "LS1 4AP",
    ];
    let mut batch = Vec::with_capacity(256);
    for op in 1..=orders {
        batch.push(Entry {
            op: OpNumber(op),
            request: RequestId {
                client: ClientId(1 + op % 1000),
                seq: 1 + op / 1000,
            },
            owner: format!("client-{}", op % 1000),
            time: Time(op),
            command: OrderCommand::PlaceOrder {
                postcode: postcodes[op as usize % postcodes.len()].to_owned(),
                items: vec!["Margherita pizza".to_owned(), "Can of cola".to_owned()],
            },
        });
        if batch.len() == 256 || op == orders {
            store.record_entries(&batch)?;
            store.commit(Time(op))?;
            batch.clear();
        }
    }
    store.tick(Time(u64::MAX))?;
    drop(store);
    let log_bytes: u64 = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let started = Instant::now();
    let (mut store, recovered) = open(2)?;
    let replayed = started.elapsed();
    anyhow::ensure!(
        recovered.state.applied() == OpNumber(orders),
        "replayed {} of {orders} ops",
        recovered.state.applied().0
    );
    println!(
        "replica recovery: {orders} orders replayed from a {} MiB log in {replayed:?}",
        log_bytes / (1024 * 1024)
    );
    let started = Instant::now();
    store.record_state(None, ViewNumber(0), &recovered.state)?;
    let snapshotted = started.elapsed();
    drop((store, recovered));
    let started = Instant::now();
    let (_, recovered) = open(3)?;
    let restored = started.elapsed();
    anyhow::ensure!(recovered.state.applied() == OpNumber(orders));
    println!(
        "replica recovery: the same state written as a snapshot in {snapshotted:?}, restored from it in {restored:?}"
    );
    Ok(())
}
