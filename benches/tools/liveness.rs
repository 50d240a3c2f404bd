//! Measures how late liveness signals are under load (issue 13): the round trip of each
//! replica's ping to the front-end and back, and the gaps between the pings the front-end
//! handles (what its failure detector judges by, against `dead_after`), while a load runs, and
//! whether the load caused any view change.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/liveness --load all
//! target/release/liveness --load burst --requests 64000
//! ```
//!
//! Each load runs on a fresh cluster of three replicas and a front-end over TCP (TLS unless
//! `--plaintext`) on 127.0.0.1, every node in this process on one tokio runtime (`--flavor`),
//! so the load's clients share the CPU with the nodes, as a busy machine would. The loads:
//! - `idle`: nothing, for `--seconds`;
//! - `burst`: `--requests` orders sent at once over one connection, each from a client id of
//!   its own (a gateway serving many users), every one outstanding at the front-end, and
//!   sent again until placed (`just_hungry::burst`);
//! - `read`: the replicas hold `--orders` orders on one postcode, and 4 clients read that
//!   whole history (page by page) in a loop for `--seconds` while one client writes;
//! - `join`: the replicas hold `--orders` orders over 1,000 postcodes, one client writes, and a
//!   fourth replica joins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use just_hungry::burst::gateway_burst;
use just_hungry::cli::parse_duration;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::{ClientConfig, ClientError};
use just_hungry::core::protocol::liveness::Durations;
use just_hungry::core::runtime::NodeReport;
use just_hungry::local::{LocalCluster, TcpNetwork};
use just_hungry::orders::{OrderBook, OrderValidator};
use just_hungry::{OrderClient, OrderClientError};

/// Liveness under load.
#[derive(Parser, Debug)]
struct Args {
    /// Which load.
    #[arg(long, value_enum, default_value = "all")]
    load: Load,
    /// `burst`: how many orders are outstanding at once.
    #[arg(long, default_value_t = 64_000)]
    requests: usize,
    /// `read` and `join`: the orders the replicas hold.
    #[arg(long, default_value_t = 500_000)]
    orders: usize,
    /// `idle` and `read`: how long the load runs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    seconds: Duration,
    /// Plaintext TCP instead of mutual TLS.
    #[arg(long)]
    plaintext: bool,
    /// The tokio runtime every node runs on.
    #[arg(long, value_enum, default_value = "multi-thread")]
    flavor: Flavor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Load {
    Idle,
    Burst,
    Read,
    Join,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

const WAIT: Duration = Duration::from_secs(120);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match args.flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    };
    let loads = match args.load {
        Load::All => vec![Load::Idle, Load::Burst, Load::Read, Load::Join],
        load => vec![load],
    };
    println!(
        "liveness under load: {:?} runtime, {}, dead_after {:?}",
        args.flavor,
        if args.plaintext { "plaintext" } else { "TLS" },
        Timing::default().dead_after
    );
    for load in loads {
        runtime.block_on(measure(&args, load))?;
    }
    Ok(())
}

/// Every node's liveness record at one instant.
struct Snapshot {
    view: u64,
    members: usize,
    round_trips: Vec<(String, Durations)>,
    gaps: Durations,
}

async fn snapshot(cluster: &LocalCluster<OrderBook, TcpNetwork>) -> anyhow::Result<Snapshot> {
    let frontend: NodeReport = cluster
        .frontend_report()
        .await
        .ok_or_else(|| anyhow::anyhow!("the front-end stopped"))?;
    let view = frontend
        .view
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no view"))?;
    Ok(Snapshot {
        view: view.number.0,
        members: view.members().count(),
        round_trips: cluster
            .replica_reports()
            .await
            .into_iter()
            .filter_map(|(name, report)| Some((name, report.ping_round_trips?)))
            .collect(),
        gaps: frontend.ping_gaps.unwrap_or_default(),
    })
}

async fn cluster_of(
    args: &Args,
    initial: OrderBook,
) -> anyhow::Result<LocalCluster<OrderBook, TcpNetwork>> {
    let network = if args.plaintext {
        TcpNetwork::plaintext()
    } else {
        TcpNetwork::tls()?
    };
    let mut cluster = LocalCluster::<OrderBook, _>::on(network, Timing::default()).await?;
    cluster
        .form(3, initial, Arc::new(OrderValidator::offline()), WAIT)
        .await?;
    Ok(cluster)
}

async fn measure(args: &Args, load: Load) -> anyhow::Result<()> {
    let initial = match load {
        Load::Read => just_hungry::fixtures::synthetic_book(args.orders, 1, 13),
        Load::Join => just_hungry::fixtures::synthetic_book(args.orders, 1_000, 13),
        _ => OrderBook::with_predefined_history(),
    };
    let mut cluster = cluster_of(args, initial).await?;
    // Let the formation's transfers settle, then measure from here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = snapshot(&cluster).await?;
    let started = Instant::now();
    let outcome = match load {
        Load::Idle => {
            tokio::time::sleep(args.seconds).await;
            String::new()
        }
        Load::Burst => burst(&mut cluster, args.requests).await?,
        Load::Read => read(&mut cluster, args.seconds).await?,
        Load::Join => join(&mut cluster).await?,
        Load::All => unreachable!("expanded in main"),
    };
    let took = started.elapsed();
    let after = snapshot(&cluster).await?;
    let mut round_trips = Durations::default();
    let mut worst = String::new();
    let mut worst_max = Duration::ZERO;
    for (name, now) in &after.round_trips {
        let phase = match before.round_trips.iter().find(|(n, _)| n == name) {
            Some((_, earlier)) => now.since(earlier),
            None => now.clone(),
        };
        let summary = phase.summary();
        if summary.max >= worst_max {
            worst_max = summary.max;
            worst = name.clone();
        }
        round_trips.add(&phase);
    }
    let gaps = after.gaps.since(&before.gaps);
    println!("\n{load:?}: {took:.2?}{outcome}");
    println!(
        "  ping round trips: {} (longest at {worst})",
        round_trips.summary()
    );
    println!("  ping gaps at the front-end: {}", gaps.summary());
    println!(
        "  view changes: {} (view {} -> {}), members {} -> {}",
        after.view - before.view,
        before.view,
        after.view,
        before.members,
        after.members
    );
    cluster.shutdown().await;
    Ok(())
}

/// Tallies of outcomes.
#[derive(Default)]
struct Outcomes {
    ok: usize,
    overloaded: usize,
    unavailable: usize,
    timeout: usize,
    other: usize,
}

impl Outcomes {
    fn count(&mut self, result: Result<(), OrderClientError>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(OrderClientError::Client(ClientError::Overloaded)) => self.overloaded += 1,
            Err(OrderClientError::Client(ClientError::Unavailable { .. })) => self.unavailable += 1,
            Err(OrderClientError::Client(ClientError::Timeout { .. })) => self.timeout += 1,
            Err(_) => self.other += 1,
        }
    }
}

impl std::fmt::Display for Outcomes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ok, {} overloaded, {} unavailable, {} timed out, {} other",
            self.ok, self.overloaded, self.unavailable, self.timeout, self.other
        )
    }
}

async fn clients(
    cluster: &mut LocalCluster<OrderBook, TcpNetwork>,
    n: usize,
) -> anyhow::Result<Vec<OrderClient>> {
    let config = ClientConfig {
        deadline: Duration::from_secs(60),
        ..ClientConfig::default()
    };
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(cluster.order_client(config).await?);
    }
    Ok(clients)
}

/// `requests` orders at once from a gateway ([`gateway_burst`]), retried until placed.
async fn burst(
    cluster: &mut LocalCluster<OrderBook, TcpNetwork>,
    requests: usize,
) -> anyhow::Result<String> {
    let report = gateway_burst(cluster, requests, "EC1A 1BB", 20).await?;
    Ok(format!(", a burst of {requests} orders at once: {report}"))
}

/// One client writing small orders until `stop`.
fn writer(client: OrderClient, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Outcomes> {
    tokio::spawn(async move {
        let mut outcomes = Outcomes::default();
        while !stop.load(Ordering::Acquire) {
            outcomes.count(
                client
                    .place_order("SW1A 1AA", vec!["Pho".into()])
                    .await
                    .map(|_| ()),
            );
        }
        outcomes
    })
}

async fn read(
    cluster: &mut LocalCluster<OrderBook, TcpNetwork>,
    seconds: Duration,
) -> anyhow::Result<String> {
    let book = just_hungry::fixtures::synthetic_book(1, 1, 13);
    let postcode = book
        .histories()
        .keys()
        .next()
        .ok_or_else(|| anyhow::anyhow!("a synthetic postcode"))?
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let mut all = clients(cluster, 5).await?;
    let writing = writer(all.pop().expect("five clients"), stop.clone());
    let readers: Vec<_> = all
        .into_iter()
        .map(|client| {
            let stop = stop.clone();
            let postcode = postcode.clone();
            tokio::spawn(async move {
                let (mut reads, mut orders, mut failed) = (0usize, 0usize, 0usize);
                while !stop.load(Ordering::Acquire) {
                    match client.order_history(&postcode).await {
                        Ok((_, history)) => {
                            reads += 1;
                            orders = history.len();
                        }
                        Err(_) => failed += 1,
                    }
                }
                (reads, orders, failed)
            })
        })
        .collect();
    tokio::time::sleep(seconds).await;
    stop.store(true, Ordering::Release);
    let (mut reads, mut orders, mut failed) = (0, 0, 0);
    for reader in readers {
        let (r, o, f) = reader.await?;
        reads += r;
        orders = orders.max(o);
        failed += f;
    }
    let writes = writing.await?;
    Ok(format!(
        ", {reads} whole reads of {orders} orders ({failed} failed); writes: {writes}"
    ))
}

async fn join(cluster: &mut LocalCluster<OrderBook, TcpNetwork>) -> anyhow::Result<String> {
    let stop = Arc::new(AtomicBool::new(false));
    let client = clients(cluster, 1).await?.pop().expect("one client");
    let writing = writer(client, stop.clone());
    let started = Instant::now();
    cluster
        .start_replica(
            "replica-4",
            OrderBook::default(),
            Arc::new(OrderValidator::offline()),
        )
        .await?;
    // The states differ by the writes in flight at any instant: wait for the view alone.
    loop {
        let report = cluster.frontend_report().await;
        if report
            .as_ref()
            .is_some_and(|r| r.active && r.view.as_ref().is_some_and(|v| v.members().count() == 4))
        {
            break;
        }
        anyhow::ensure!(started.elapsed() < WAIT, "no view of 4 within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let joined = started.elapsed();
    stop.store(true, Ordering::Release);
    let writes = writing.await?;
    Ok(format!(
        ", the fourth replica joined in {joined:.2?}; writes: {writes}"
    ))
}
