//! The registry (name server): `cargo run --example registry -- [--listen 127.0.0.1:9090]
//! [--autoclean 20s]`. Entries not renewed within `--autoclean` are dropped and logged.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use just_hungry::cli::{TlsArgs, init_logging, parse_duration, shutdown_signal};
use just_hungry::core::ids::{Identity, NodeRole};
use just_hungry::core::runtime;
use just_hungry::core::transport::Transport;
use just_hungry::ops::{OpsArgs, OpsRole};
use just_hungry::tcp::{TcpConfig, TcpTransport};

/// The Just Hungry name server: maps names to addresses, with leases.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Drop an entry not renewed within this long.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    autoclean: Duration,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();
    let ops = args.ops.install().await?;
    // No service name: the registry serves any (nodes of every service may register).
    let config = TcpConfig::server(args.listen, Identity::new(NodeRole::Registry, "registry"));
    let transport = TcpTransport::bind(args.tls.apply(config, "registry")?).await?;
    tracing::info!(address = %transport.local_address(), autoclean = ?args.autoclean, "registry listening");
    let node = runtime::spawn_registry(transport, args.autoclean);
    let _ops = match ops {
        Some(ops) => Some(ops.serve(OpsRole::Registry, Some(node.reporter()))?),
        None => None,
    };
    shutdown_signal().await;
    tracing::info!("registry shutting down");
    node.shutdown().await;
    Ok(())
}
