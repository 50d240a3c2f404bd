//! The front-end: `cargo run --example frontend -- [--registry ADDR] [--state-dir DIR]`.
//! It finds replicas through their pings, elects the primary, routes client requests, and
//! stores its view in `--state-dir` so a restart resumes from it.

use std::net::SocketAddr;

use clap::Parser;
use just_hungry::cli::{
    DEFAULT_REGISTRY, REGISTRY_ENV, TimingArgs, TlsArgs, init_logging, shutdown_signal,
};
use just_hungry::core::ids::{Address, Identity, NodeRole};
use just_hungry::core::protocol::frontend::FrontendConfig;
use just_hungry::core::runtime;
use just_hungry::core::runtime::view_store::FileViewStore;
use just_hungry::core::transport::Transport;
use just_hungry::orders::OrderBook;
use just_hungry::tcp::{TcpConfig, TcpTransport};

/// The Just Hungry front-end (the view keeper and request router).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The registry's address.
    #[arg(long, env = REGISTRY_ENV, default_value = DEFAULT_REGISTRY)]
    registry: String,
    /// Address to listen on (port 0: any free port; clients find it through the registry).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory where the current view is stored (created if missing).
    #[arg(long, default_value = "just-hungry-frontend")]
    state_dir: std::path::PathBuf,
    /// With every member of the last active view dead, start a new cluster from the live
    /// replicas, losing the orders only the dead held.
    #[arg(long)]
    force_new_cluster: bool,
    #[command(flatten)]
    timing: TimingArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();
    let store = FileViewStore::in_dir(&args.state_dir)?;
    let tcp = TcpConfig::server(args.listen, Identity::new(NodeRole::Frontend, "frontend"))
        .for_service::<OrderBook>();
    let transport = TcpTransport::bind(args.tls.apply(tcp, "frontend")?).await?;
    let address = transport.local_address();
    let mut config = FrontendConfig::new("frontend", address.clone(), Address::new(args.registry));
    config.timing = args.timing.timing();
    config.bootstrap_grace = config.timing.ping_interval * 2;
    config.force_new_cluster = args.force_new_cluster;
    tracing::info!(address = %address, state_dir = %args.state_dir.display(), "front-end listening");
    let node = runtime::spawn_frontend::<OrderBook, _>(transport, config, Box::new(store));
    tokio::select! {
        () = shutdown_signal() => {}
        // A front-end that cannot store its view stops (publishing a view it did not store
        // could take a restarted front-end back in time): exit non-zero with the reason, so a
        // supervisor restarts it or alerts, rather than live on without serving.
        reason = node.failed() => anyhow::bail!("the front-end stopped: {reason}"),
    }
    tracing::info!("front-end shutting down");
    node.shutdown().await;
    Ok(())
}
