//! A replica: `cargo run --example replica -- [--registry ADDR | --etcd URLS] [--id NAME]
//! [--listen ADDR] [--advertise HOST:PORT] [--data-dir DIR [--fsync always|batch|never]]`.
//! Start as many as you like; each loads the pre-defined order history, registers, finds the
//! front-end and joins (its data is then overwritten with the cluster's). With `--data-dir` it
//! keeps a write-ahead log there and restarts from it (README, "Durability").
//!
//! Postcodes are checked with `--validator online` by default: postcodes.io, then getthedata
//! when postcodes.io cannot answer. That sends each order's postcode to those services; use
//! `--validator offline` for the format check alone (README, "Postcode validation").

use std::net::SocketAddr;
use std::sync::Arc;

use crate::cli::{
    DEFAULT_REGISTRY, EtcdArgs, PostcodeArgs, REGISTRY_ENV, TimingArgs, TlsArgs, parse_byte_size,
    parse_registry_address,
};
use crate::core::ids::{Address, Identity, NodeRole, ReplicaId, Time};
use crate::core::protocol::client_table::ClientTableLimits;
use crate::core::protocol::replica::{DEFAULT_MAX_SNAPSHOT_BYTES, ReplicaConfig};
use crate::core::protocol::{MAX_ENTRIES_PER_PREPARE, MAX_OPS_IN_FLIGHT, Pipeline, Transfer};
use crate::core::runtime::{self, random_u64};
use crate::core::state_machine::CommandValidator;
use crate::core::storage::{FileDisk, FsyncPolicy, RecoveredReplica, ReplicaStore};
use crate::core::transport::Transport;
use crate::etcd::EtcdNames;
use crate::ops::{OpsArgs, OpsRole};
use crate::orders::{OrderBook, OrderValidator};
use crate::process::{init_logging, shutdown_signal};
use crate::tcp::{TcpConfig, TcpTransport};
use clap::Parser;

/// A Just Hungry replica.
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// The registry's address.
    #[arg(long, env = REGISTRY_ENV, default_value = DEFAULT_REGISTRY, value_parser = parse_registry_address)]
    registry: String,
    /// This replica's name (default: `replica-<process id>`).
    #[arg(long)]
    id: Option<String>,
    /// Address to listen on (port 0: any free port; `0.0.0.0:PORT` for every interface).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The `host:port` other machines reach this replica at, when it is not the listening
    /// address (listening on `0.0.0.0`, or behind a DNS name).
    #[arg(long)]
    advertise: Option<String>,
    /// Start with an empty order history instead of the pre-defined one.
    #[arg(long)]
    empty: bool,
    /// The most bytes of orders the book may hold (as `OrderBook::stored_bytes` counts them,
    /// an upper bound of their encoding; memory is about 3 times that); past it orders are
    /// refused as "the order book is full". The limit is part of the replicated state: it is
    /// set by the replica that starts a cluster, and a replica that joins takes the cluster's.
    #[arg(long, default_value = "4GiB", value_parser = parse_byte_size)]
    max_book_bytes: u64,
    /// The most log entries the primary puts in one Prepare (the batch size).
    #[arg(long, default_value_t = MAX_ENTRIES_PER_PREPARE)]
    max_batch: usize,
    /// The most ops in flight to one backup beyond what it acknowledged (the pipelining window).
    #[arg(long, default_value_t = MAX_OPS_IN_FLIGHT)]
    window: u64,
    /// The size of the snapshot chunks this replica streams as primary (at most 1MiB).
    #[arg(long, default_value = "64KiB", value_parser = parse_byte_size)]
    transfer_chunk_bytes: u64,
    /// How many snapshot chunks this replica, as primary, has in flight to one receiver.
    #[arg(long, default_value_t = crate::core::protocol::DEFAULT_TRANSFER_WINDOW)]
    transfer_window: u32,
    /// Measurements only: start with a synthetic book of this many orders instead of the
    /// pre-defined one (`fixtures::synthetic_book`; see benches/tools/state_transfer).
    #[arg(long, hide = true)]
    preload_orders: Option<usize>,
    /// Measurements only: how many postcodes the synthetic book spreads its orders over.
    #[arg(long, hide = true, default_value_t = 10_000)]
    preload_postcodes: usize,
    /// Keep a write-ahead log and snapshots in this directory, and restart from what it holds
    /// (one directory per replica; give `--id` too, the directory is that name's). Without it
    /// the replica is memory-only: its orders live only as long as the cluster's processes.
    #[arg(long, requires = "id")]
    data_dir: Option<std::path::PathBuf>,
    /// With `--data-dir`: when the log is synced to disk. `always`: before every
    /// acknowledgement (an acknowledged order survives a power loss of every machine);
    /// `batch` (or `batch:<ms>`): written before every acknowledgement, synced at least every
    /// 10 ms (survives kill -9 of every process, not a power loss of every machine within the
    /// interval); `never`: written, synced by the operating system when it likes.
    #[arg(long, default_value = "batch", requires = "data_dir")]
    fsync: FsyncPolicy,
    #[command(flatten)]
    timing: TimingArgs,
    #[command(flatten)]
    postcodes: PostcodeArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

/// Runs the replica with `args` until it is asked to stop (Ctrl+C, SIGTERM).
pub async fn run(args: Args) -> anyhow::Result<()> {
    init_logging();
    let ops = args.ops.install().await?;
    let name = args
        .id
        .unwrap_or_else(|| format!("replica-{}", std::process::id()));
    let pipeline = Pipeline::new(args.max_batch, args.window)?;
    let etcd = args.etcd.client()?;
    let mut tcp = TcpConfig::server(args.listen, Identity::new(NodeRole::Replica, name.as_str()))
        .for_service::<OrderBook>();
    tcp.advertise = args.advertise.clone();
    let transport = TcpTransport::bind(args.tls.apply(tcp, &name)?)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{name} cannot listen on {}: {e}\n  another process holds that port: an earlier {name} still running? Stop it (its data is replicated), or start this one with another --listen (port 0 picks a free one)",
                args.listen
            )
        })?;
    let mut config = ReplicaConfig {
        id: ReplicaId::new(&name, random_u64()),
        address: transport.local_address(),
        registry: Address::new(args.registry),
        timing: args.timing.timing(),
        client_table: ClientTableLimits::default(),
        pipeline,
        transfer: Transfer::new(
            usize::try_from(args.transfer_chunk_bytes).unwrap_or(usize::MAX),
            args.transfer_window,
        )?,
        // A joiner must accept the largest snapshot this cluster's book can reach.
        max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES.max(
            usize::try_from(args.max_book_bytes.saturating_add(1 << 30)).unwrap_or(usize::MAX),
        ),
    };
    tracing::info!(replica = %name, address = %config.address, "replica listening");
    let initial = (if let Some(orders) = args.preload_orders {
        let started = std::time::Instant::now();
        let book = crate::fixtures::synthetic_book(orders, args.preload_postcodes, 7);
        tracing::info!(orders = book.order_count(), postcodes = book.postcode_count(), stored_bytes = book.stored_bytes(), elapsed = ?started.elapsed(), "preloaded a synthetic order book");
        book
    } else if args.empty {
        OrderBook::empty()
    } else {
        OrderBook::with_predefined_history()
    })
    .with_max_bytes(args.max_book_bytes);
    let postcodes = args.postcodes.config();
    let validator = Arc::new(OrderValidator::new(postcodes.build()?));
    tracing::info!(replica = %name, validator = %postcodes.mode, when_unreachable = %postcodes.when_unreachable, "postcode validation configured");
    let disk = match &args.data_dir {
        Some(dir) => {
            let (store, recovered) = ReplicaStore::open(
                Arc::new(FileDisk),
                dir,
                &config.id,
                args.fsync,
                Time::ZERO,
                initial,
                config.client_table,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "{name} cannot start from its data directory {}: {e}\n  if the disk is damaged, move the directory aside: the replica then starts empty and joins as a newcomer (it no longer counts as its old self)",
                    dir.display()
                )
            })?;
            tracing::info!(replica = %name, data_dir = %dir.display(), fsync = %args.fsync, "durable: keeping a write-ahead log");
            Start::Durable(Box::new((store, recovered)))
        }
        None => Start::MemoryOnly(initial),
    };
    let node = match etcd {
        Some(client) => {
            // Its name on a lease of its own in etcd, renewed as it would renew it at the
            // registry; the front-end found through the elected front-end's key.
            let transport =
                EtcdNames::<OrderBook, _>::new(transport, client, config.timing.autoclean);
            config.registry = transport.registry_address();
            disk.spawn(transport, config, validator)
        }
        None => disk.spawn(transport, config, validator),
    };
    let _ops = match ops {
        Some(ops) => Some(ops.serve(OpsRole::Replica, Some(node.reporter()))?),
        None => None,
    };
    tokio::select! {
        () = shutdown_signal() => {}
        // A replica whose disk failed stops: exit non-zero with the reason, so a supervisor
        // restarts it (once the disk is fixed) or alerts.
        reason = node.failed() => anyhow::bail!("{name} stopped: {reason}"),
    }
    tracing::info!(replica = %name, "replica shutting down");
    node.shutdown().await;
    Ok(())
}

/// What the replica starts from.
enum Start {
    /// Its pre-defined data, in memory only.
    MemoryOnly(OrderBook),
    /// Its data directory, and what it held.
    Durable(Box<(ReplicaStore, RecoveredReplica<OrderBook>)>),
}

impl Start {
    fn spawn<T: Transport>(
        self,
        transport: T,
        config: ReplicaConfig,
        validator: Arc<dyn CommandValidator<OrderBook>>,
    ) -> runtime::NodeHandle {
        match self {
            Start::MemoryOnly(initial) => {
                runtime::spawn_replica(transport, config, initial, validator)
            }
            Start::Durable(durable) => {
                let (store, recovered) = *durable;
                runtime::spawn_durable_replica(transport, config, store, recovered, validator)
            }
        }
    }
}

/// The replica's `main`: parses the command line, runs on a current-thread
/// runtime, and exits 1 with the error on failure.
pub fn main() -> std::process::ExitCode {
    super::exit_code(super::block_on(run(Args::parse())))
}
