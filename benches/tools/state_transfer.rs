//! Measures state transfer at size and the memory of the order book (issue 7).
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! # memory per stored order, in this process (allocations and RSS)
//! target/release/state_transfer book --orders 1000000
//! # a primary holding 1,000,000 orders, a second replica joining while a client writes
//! target/release/state_transfer join --orders 1000000
//! ```
//!
//! `join` starts the example binaries as processes next to this one (registry, front-end,
//! `replica --preload-orders N`), writes in a loop from one client, starts a second replica
//! (`--empty`) after `--baseline`, and reports the time from its start until the front-end's
//! view holds it as an active backup, the write latencies before, during and after the join,
//! and each process's peak resident memory (`VmHWM` in `/proc/<pid>/status`, Linux only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use just_hungry::cli::parse_duration;
use just_hungry::core::ids::Address;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::messages::ClusterStatus;
use just_hungry::orders::{OrderBook, OrderError};
use just_hungry::tcp::{TcpConfig, TcpTransport};
use just_hungry::{OrderClient, OrderClientError};

/// Counts the bytes this process has allocated and not freed (for `book`).
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// State transfer and memory measurements.
#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Memory per stored order of a synthetic book, in this process.
    Book {
        /// Orders in the book.
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// Postcodes they are spread over.
        #[arg(long, default_value_t = 10_000)]
        postcodes: usize,
    },
    /// A replica joining a primary that holds `--orders` orders while a client writes.
    Join {
        /// Orders preloaded in the primary.
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// Postcodes they are spread over.
        #[arg(long, default_value_t = 10_000)]
        postcodes: usize,
        /// How long to write before the second replica starts.
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        baseline: Duration,
        /// How long to keep writing once it has joined.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        after: Duration,
        /// Give up waiting for the join after this long.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        timeout: Duration,
        /// `--dead-after` of the front-end and the replicas (the binaries' default: 500ms).
        #[arg(long, default_value = "500ms")]
        dead_after: String,
        /// `--backup-timeout` of the replicas (the binaries' default: 500ms).
        #[arg(long, default_value = "500ms")]
        backup_timeout: String,
        /// `--transfer-chunk-bytes` of the primary (the binary's default: 64KiB).
        #[arg(long, default_value = "64KiB")]
        chunk_bytes: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().what {
        What::Book { orders, postcodes } => book(orders, postcodes),
        What::Join {
            orders,
            postcodes,
            baseline,
            after,
            timeout,
            dead_after,
            backup_timeout,
            chunk_bytes,
        } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(join(
                orders,
                postcodes,
                baseline,
                after,
                timeout,
                [
                    "--dead-after".to_owned(),
                    dead_after,
                    "--backup-timeout".to_owned(),
                    backup_timeout,
                    "--transfer-chunk-bytes".to_owned(),
                    chunk_bytes,
                ],
            )),
    }
}

/// `VmRSS` and `VmHWM` of a process, in bytes (Linux; `None` elsewhere).
fn memory(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn book(orders: usize, postcodes: usize) -> anyhow::Result<()> {
    let rss_before = memory("self").map_or(0, |m| m.0);
    let allocated_before = ALLOCATED.load(Ordering::Relaxed);
    let started = Instant::now();
    let book = just_hungry::fixtures::synthetic_book(orders, postcodes, 7);
    let built = started.elapsed();
    let allocated = ALLOCATED.load(Ordering::Relaxed) - allocated_before;
    let rss = memory("self").map_or(0, |m| m.0).saturating_sub(rss_before);
    let item_bytes: usize = book
        .histories()
        .values()
        .flatten()
        .flat_map(|o| o.items.iter())
        .map(String::len)
        .sum();
    let n = book.order_count().max(1) as f64;
    println!(
        "orders {} postcodes {} built in {built:?}",
        book.order_count(),
        book.postcode_count()
    );
    println!(
        "item string bytes {item_bytes} ({:.1}/order); stored_bytes (budget count) {} ({:.1}/order)",
        item_bytes as f64 / n,
        book.stored_bytes(),
        book.stored_bytes() as f64 / n
    );
    println!(
        "allocated {allocated} bytes ({:.1}/order, {:.1}/order beyond the item strings)",
        allocated as f64 / n,
        (allocated - item_bytes) as f64 / n
    );
    println!(
        "RSS grew {rss} bytes ({:.1}/order, {:.1}/order beyond the item strings)",
        rss as f64 / n,
        (rss as f64 - item_bytes as f64) / n
    );
    let started = Instant::now();
    let snapshot = just_hungry::core::StateMachine::snapshot(&book)?;
    println!(
        "snapshot {} bytes ({:.1}/order) encoded in {:?}",
        snapshot.len(),
        snapshot.len() as f64 / n,
        started.elapsed()
    );
    Ok(())
}

/// An example binary of the root package, built with the same profile as this tool: this
/// tool is in `target/<profile>/`, the examples in `target/<profile>/examples/`.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .map(|dir| dir.join("examples").join(name))
        .ok_or_else(|| anyhow::anyhow!("no directory"))?;
    anyhow::ensure!(
        path.exists(),
        "{} is missing: cargo build --release --workspace --bins --examples",
        path.display()
    );
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Child processes, killed on drop.
struct Children(Vec<(String, Child)>);

impl Children {
    fn spawn(&mut self, name: &str, registry: &str, args: &[&str]) -> anyhow::Result<String> {
        let binary_name = if name.starts_with("replica") {
            "replica"
        } else {
            name
        };
        // Replicas check postcodes offline: a measurement never reaches the internet.
        let offline: &[&str] = if binary_name == "replica" {
            &["--validator", "offline"]
        } else {
            &[]
        };
        // Plaintext links: this measures state transfer, not TLS (docs/PERFORMANCE.md, "What
        // TLS costs", measures that), and needs no certificates.
        let child = Command::new(binary(binary_name)?)
            .args(args)
            .args(offline)
            .arg("--insecure-plaintext")
            .env("JUST_HUNGRY_REGISTRY", registry)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = child.id().to_string();
        self.0.push((name.to_owned(), child));
        Ok(pid)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One write: when it started (since the run began), how long it took, how it ended.
struct Sample {
    at: Duration,
    latency: Duration,
    ok: bool,
}

fn summary(label: &str, samples: &[&Sample]) {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let failed = samples.iter().filter(|s| !s.ok).count();
    if latencies.is_empty() {
        println!("{label:>8}: no writes");
        return;
    }
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "{label:>8}: {:>6} writes ({failed} failed)  p50 {:>9.3?}  p99 {:>9.3?}  max {:>9.3?}",
        latencies.len(),
        q(0.5),
        q(0.99),
        latencies[latencies.len() - 1]
    );
}

fn has_backup(status: &ClusterStatus, name: &str) -> bool {
    status.active
        && status
            .view
            .as_ref()
            .is_some_and(|v| v.backups.iter().any(|b| b.id.name == name))
}

async fn join(
    orders: usize,
    postcodes: usize,
    baseline: Duration,
    after: Duration,
    timeout: Duration,
    timing: [String; 6],
) -> anyhow::Result<()> {
    let timing: Vec<&str> = timing.iter().map(String::as_str).collect();
    let dead_after = &timing[..2];
    let registry = format!("127.0.0.1:{}", free_port()?);
    let state_dir = std::env::temp_dir().join(format!("jh-transfer-{}", std::process::id()));
    let mut children = Children(Vec::new());
    children.spawn("registry", &registry, &["--listen", &registry])?;
    children.spawn(
        "frontend",
        &registry,
        &[&["--state-dir", &state_dir.to_string_lossy()], dead_after].concat(),
    )?;
    let orders_arg = orders.to_string();
    let postcodes_arg = postcodes.to_string();
    let primary = children.spawn(
        "replica-1",
        &registry,
        &[
            &[
                "--id",
                "replica-1",
                "--preload-orders",
                &orders_arg,
                "--preload-postcodes",
                &postcodes_arg,
            ],
            &timing[..],
        ]
        .concat(),
    )?;
    let transport =
        TcpTransport::connect_only(TcpConfig::client("state-transfer").for_service::<OrderBook>())
            .await?;
    let client = OrderClient::spawn(
        transport,
        Address::new(registry.clone()),
        ClientConfig {
            deadline: Duration::from_secs(60),
            ..ClientConfig::default()
        },
    );
    let status_transport =
        TcpTransport::connect_only(TcpConfig::client("status").for_service::<OrderBook>()).await?;
    let status_client = OrderClient::spawn(
        status_transport,
        Address::new(registry.clone()),
        ClientConfig::default(),
    );
    let started = Instant::now();
    loop {
        if let Ok(s) = status_client.cluster_status().await
            && s.active
        {
            break;
        }
        anyhow::ensure!(started.elapsed() < timeout, "the primary never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "primary serving after {:?} (preload of {orders} orders included)",
        started.elapsed()
    );
    let primary_before = memory(&primary);

    let epoch = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let samples = samples.clone();
        let stop = stop.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let postcode = ["SW1A 1AA", "M1 1AE", "EH1 2NG", "CF10 3RB"][(i % 4) as usize];
                let at = epoch.elapsed();
                let result = client
                    .place_order(postcode, vec![format!("dish {i}")])
                    .await;
                // A book beyond its byte budget refuses orders in `apply`: the write was still
                // replicated and committed, so its latency counts.
                let ok = matches!(
                    result,
                    Ok(_) | Err(OrderClientError::Refused(OrderError::OrderBookFull { .. }))
                );
                samples.lock().expect("samples").push(Sample {
                    at,
                    latency: epoch.elapsed() - at,
                    ok,
                });
                i += 1;
            }
        })
    };
    tokio::time::sleep(baseline).await;

    let join_at = epoch.elapsed();
    let joiner = children.spawn(
        "replica-2",
        &registry,
        &[&["--id", "replica-2", "--empty"], &timing[..]].concat(),
    )?;
    let mut joiner_rss_max = 0;
    let mut primary_rss_max = 0;
    loop {
        if let Some((rss, _)) = memory(&joiner) {
            joiner_rss_max = joiner_rss_max.max(rss);
        }
        if let Some((rss, _)) = memory(&primary) {
            primary_rss_max = primary_rss_max.max(rss);
        }
        if let Ok(s) = status_client.cluster_status().await
            && has_backup(&s, "replica-2")
        {
            break;
        }
        anyhow::ensure!(
            epoch.elapsed() - join_at < timeout,
            "replica-2 did not join within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined_at = epoch.elapsed();
    tokio::time::sleep(after).await;
    stop.store(true, Ordering::Relaxed);
    writer.await?;

    let samples = samples.lock().expect("samples");
    println!(
        "join: replica-2 started at {join_at:.2?}, an active backup at {joined_at:.2?}: time to join {:.3?}",
        joined_at - join_at
    );
    let phase = |from: Duration, to: Duration| -> Vec<&Sample> {
        samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .collect()
    };
    summary("before", &phase(Duration::ZERO, join_at));
    summary("during", &phase(join_at, joined_at));
    summary("after", &phase(joined_at, Duration::MAX));
    let during = phase(join_at, joined_at);
    if let Some(stall) = during.iter().max_by_key(|s| s.latency) {
        println!(
            "longest write stall during the join: {:.3?}, from {:.3?} after replica-2 started",
            stall.latency,
            stall.at - join_at
        );
    }
    let show = |name: &str, pid: &str, sampled: u64| {
        if let Some((rss, hwm)) = memory(pid) {
            println!(
                "{name:>10}: VmHWM {:.1} MiB, RSS now {:.1} MiB, RSS sampled max during the join {:.1} MiB",
                mib(hwm),
                mib(rss),
                mib(sampled)
            );
        }
    };
    if let Some((rss, hwm)) = primary_before {
        println!(
            "{:>10}: before the join VmHWM {:.1} MiB, RSS {:.1} MiB",
            "primary",
            mib(hwm),
            mib(rss)
        );
    }
    show("primary", &primary, primary_rss_max);
    show("joiner", &joiner, joiner_rss_max);
    drop(children);
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}
