//! A replica: `cargo run --example replica -- [--registry ADDR] [--id NAME] [--listen ADDR]`.
//! Start as many as you like; each loads the pre-defined order history, registers, finds the
//! front-end and joins (its data is then overwritten with the cluster's).
//!
//! Postcodes are checked with `--validator online` by default: postcodes.io, then getthedata
//! when postcodes.io cannot answer. That sends each order's postcode to those services; use
//! `--validator offline` for the format check alone (README, "Postcode validation").

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use just_hungry::cli::{
    DEFAULT_REGISTRY, PostcodeArgs, REGISTRY_ENV, TimingArgs, init_logging, shutdown_signal,
};
use just_hungry::core::ids::{Address, ReplicaId};
use just_hungry::core::orders::{OrderBook, OrderValidator};
use just_hungry::core::protocol::replica::ReplicaConfig;
use just_hungry::core::protocol::replicated::ClientTableLimits;
use just_hungry::core::runtime::{self, random_u64};
use just_hungry::core::transport::Transport;
use just_hungry::tcp::{TcpConfig, TcpTransport};

/// A Just Hungry replica.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The registry's address.
    #[arg(long, env = REGISTRY_ENV, default_value = DEFAULT_REGISTRY)]
    registry: String,
    /// This replica's name (default: replica-<process id>).
    #[arg(long)]
    id: Option<String>,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Start with an empty order history instead of the pre-defined one.
    #[arg(long)]
    empty: bool,
    #[command(flatten)]
    timing: TimingArgs,
    #[command(flatten)]
    postcodes: PostcodeArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();
    let name = args
        .id
        .unwrap_or_else(|| format!("replica-{}", std::process::id()));
    let transport = TcpTransport::bind(TcpConfig::server(args.listen, "replica", &name)).await?;
    let config = ReplicaConfig {
        id: ReplicaId::new(&name, random_u64()),
        address: transport.local_address(),
        registry: Address::new(args.registry),
        timing: args.timing.timing(),
        client_table: ClientTableLimits::default(),
    };
    tracing::info!(replica = %name, address = %config.address, "replica listening");
    let initial = if args.empty {
        OrderBook::empty()
    } else {
        OrderBook::with_predefined_history()
    };
    let postcodes = args.postcodes.config();
    let validator = Arc::new(OrderValidator::new(postcodes.build()?));
    tracing::info!(replica = %name, validator = %postcodes.mode, when_unreachable = %postcodes.when_unreachable, "postcode validation configured");
    let node = runtime::spawn_replica(transport, config, initial, validator);
    shutdown_signal().await;
    tracing::info!(replica = %name, "replica shutting down");
    node.shutdown().await;
    Ok(())
}
