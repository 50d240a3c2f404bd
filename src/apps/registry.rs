//! The registry (name server): `cargo run --example registry -- [--listen 127.0.0.1:9090]
//! [--autoclean 20s]`. Entries not renewed within `--autoclean` are dropped and logged.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{TlsArgs, parse_duration};
use crate::core::ids::{Identity, NodeRole};
use crate::core::runtime;
use crate::core::transport::Transport;
use crate::ops::{OpsArgs, OpsRole};
use crate::process::{init_logging, shutdown_signal};
use crate::tcp::{TcpConfig, TcpTransport};
use clap::Parser;

/// The Just Hungry name server: maps names to addresses, with leases.
#[derive(Parser)]
#[command(version)]
pub struct Args {
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

/// Runs the registry with `args` until it is asked to stop (Ctrl+C, SIGTERM).
pub async fn run(args: Args) -> anyhow::Result<()> {
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

/// The registry's `main`: parses the command line, runs on a current-thread
/// runtime, and exits 1 with the error on failure.
pub fn main() -> std::process::ExitCode {
    super::exit_code(super::block_on(run(Args::parse())))
}
