//! The front-end: `cargo run --example frontend -- [--registry ADDR] [--state-dir DIR]`.
//! It finds replicas through their pings, elects the primary, routes client requests, and
//! stores its view in `--state-dir` so a restart resumes from it.
//!
//! With `--etcd URLS` (docs/DEPLOY.md) it is one of any number of candidates: the view lives
//! in etcd (changed only by compare-and-swap), the candidate that holds the front-end's name
//! key on its lease runs the front-end and the others stand by to take over.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{
    DEFAULT_REGISTRY, EtcdArgs, REGISTRY_ENV, TimingArgs, TlsArgs, parse_duration,
    parse_registry_address,
};
use crate::core::codec;
use crate::core::ids::{Address, Identity, NodeRole};
use crate::core::protocol::FRONTEND_NAME;
use crate::core::protocol::frontend::FrontendConfig;
use crate::core::protocol::messages::Message;
use crate::core::runtime;
use crate::core::runtime::view_store::FileViewStore;
use crate::core::transport::{Transport, TransportEvent};
use crate::etcd::{ActiveTerm, ElectionConfig, EtcdClient, FrontendCandidate};
use crate::ops::{OpsArgs, OpsEndpoint, OpsInstalled, OpsRole};
use crate::orders::OrderBook;
use crate::process::{init_logging, shutdown_signal};
use crate::tcp::{TcpConfig, TcpTransport};
use clap::Parser;
use tokio::sync::watch;

/// The Just Hungry front-end (the view keeper and request router).
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// The registry's address.
    #[arg(long, env = REGISTRY_ENV, default_value = DEFAULT_REGISTRY, value_parser = parse_registry_address)]
    registry: String,
    /// Address to listen on (port 0: any free port; clients find it through the registry or
    /// etcd; `0.0.0.0:PORT` for every interface).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The `host:port` other machines reach this front-end at, when it is not the listening
    /// address (listening on `0.0.0.0`, or behind a DNS name).
    #[arg(long)]
    advertise: Option<String>,
    /// This front-end's name: its certificate's (`<tls-dir>/<name>.pem`) and, with `--etcd`,
    /// the candidate's in the logs.
    #[arg(long, default_value = "frontend")]
    name: String,
    /// Directory where the current view is stored (created if missing; not used with
    /// `--etcd`, where the view is in etcd).
    #[arg(long, default_value = "just-hungry-frontend")]
    state_dir: std::path::PathBuf,
    /// With every member of the last active view dead, start a new cluster from the live
    /// replicas, losing the orders only the dead held.
    #[arg(long)]
    force_new_cluster: bool,
    /// When replicas restarted from disks that do not sync every write (`--fsync batch` or
    /// `never`) stand in for dead members of the last active view, promote the most
    /// up-to-date of those back without waiting for the others, accepting the loss of what a
    /// power loss took from their disks. By default the front-end waits for every member.
    #[arg(long)]
    allow_unclean_recovery: bool,
    /// With `--etcd`: the candidate's lease. A standby takes over about this long after the
    /// active front-end died (at least 2s, etcd's shortest lease).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    frontend_lease: Duration,
    #[command(flatten)]
    timing: TimingArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    ops: OpsArgs,
}

/// Runs the front-end with `args` until it is asked to stop (Ctrl+C, SIGTERM).
pub async fn run(args: Args) -> anyhow::Result<()> {
    init_logging();
    let ops = args.ops.install().await?;
    let mut tcp = TcpConfig::server(args.listen, Identity::new(NodeRole::Frontend, &args.name))
        .for_service::<OrderBook>();
    tcp.advertise = args.advertise.clone();
    let tcp = args.tls.apply(tcp, &args.name)?;
    // The address and the registry are set once the transport is bound (with etcd, by the
    // candidate each time it is elected).
    let mut config = FrontendConfig::new(
        &args.name,
        Address::new(""),
        Address::new(args.registry.as_str()),
    )
    .with_timing(args.timing.timing());
    config.force_new_cluster = args.force_new_cluster;
    config.allow_unclean_recovery = args.allow_unclean_recovery;
    match args.etcd.client()? {
        Some(client) => run_candidate(client, tcp, config, &args, ops).await,
        None => run_alone(tcp, config, &args, ops).await,
    }
}

/// The front-end on its own, its view in `--state-dir`, found through the registry.
async fn run_alone(
    tcp: TcpConfig,
    mut config: FrontendConfig,
    args: &Args,
    ops: Option<OpsInstalled>,
) -> anyhow::Result<()> {
    let store = FileViewStore::in_dir(&args.state_dir)?;
    let mut transport = TcpTransport::bind(tcp).await?;
    config.address = transport.local_address();
    refuse_beside_a_live_frontend(&mut transport, &config.registry, &config.address).await?;
    tracing::info!(address = %config.address, state_dir = %args.state_dir.display(), "front-end listening");
    let node = runtime::spawn_frontend::<OrderBook, _>(transport, config, Box::new(store));
    let _ops = match ops {
        Some(ops) => Some(ops.serve(OpsRole::Frontend, Some(node.reporter()))?),
        None => None,
    };
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

/// How long the start waits for the registry to say which front-end it names, and for that
/// front-end's port to answer.
const RIVAL_CHECK: Duration = Duration::from_secs(2);

/// Refuses to start while another front-end is registered with the registry and accepts
/// connections at its address (issue 18): two front-ends on one registry take the name from
/// each other at every renewal, each with its own views, and clients flip between them. The
/// registry naming a dead address (a front-end killed, restarting on a new port) or nothing,
/// or a registry that does not answer, lets the start go on. Two front-ends started at the
/// same instant can both pass; several front-ends need `--etcd`, where one holds the
/// name's lease and the others stand by.
async fn refuse_beside_a_live_frontend(
    transport: &mut TcpTransport,
    registry: &Address,
    own: &Address,
) -> anyhow::Result<()> {
    let lookup = Message::<OrderBook>::Lookup {
        name: FRONTEND_NAME.to_owned(),
    };
    transport.send(registry, codec::encode(&lookup)?);
    let deadline = tokio::time::Instant::now() + RIVAL_CHECK;
    let registered = loop {
        match tokio::time::timeout_at(deadline, transport.recv()).await {
            Ok(Some(TransportEvent::Message {
                sender, payload, ..
            })) if sender.role == NodeRole::Registry => {
                if let Ok(Message::LookupReply { name, address }) =
                    codec::decode::<Message<OrderBook>>(&payload)
                    && name == FRONTEND_NAME
                {
                    break address;
                }
            }
            // Anything else this early (a replica's ping to this address's last owner) is
            // dropped: its sender retries.
            Ok(Some(TransportEvent::Message { .. })) => {}
            Ok(Some(TransportEvent::Unreachable { to })) if to == *registry => return Ok(()),
            Ok(Some(TransportEvent::Unreachable { .. })) => {}
            Ok(None) | Err(_) => return Ok(()),
        }
    };
    let Some(other) = registered.filter(|other| other != own) else {
        return Ok(());
    };
    let answers = matches!(
        tokio::time::timeout(RIVAL_CHECK, tokio::net::TcpStream::connect(other.as_str())).await,
        Ok(Ok(_))
    );
    if answers {
        anyhow::bail!(
            "another front-end is registered with the registry at {registry} and answers at {other}: \
             stop it first (one front-end per registry; several front-ends need --etcd, where \
             the others stand by)"
        );
    }
    tracing::info!(previous = %other, "the front-end the registry names does not answer: taking its place");
    Ok(())
}

/// One candidate among any number: it runs the front-end while it holds the front-end's key
/// in etcd, and stands by otherwise. Stopped by a signal, it gives the key up so that a
/// standby takes over at once.
async fn run_candidate(
    client: EtcdClient,
    tcp: TcpConfig,
    config: FrontendConfig,
    args: &Args,
    ops: Option<OpsInstalled>,
) -> anyhow::Result<()> {
    let election = ElectionConfig {
        lease_time: args.frontend_lease,
        names_lease_time: config.timing.autoclean,
        ..ElectionConfig::default()
    };
    tracing::info!(candidate = %args.name, listen = %args.listen, lease = ?election.lease_time, "front-end candidate campaigning in etcd");
    let candidate =
        FrontendCandidate::spawn::<OrderBook, _, _, _>(client, config, election, move || {
            let tcp = tcp.clone();
            async move {
                let transport = TcpTransport::bind(tcp).await?;
                let address = transport.local_address();
                Ok((transport, address))
            }
        });
    // The endpoint follows the candidate's terms: while it runs the active front-end, /readyz
    // and the status page are that front-end's; standing by, /readyz answers 503.
    match ops {
        Some(ops) => {
            let ops = ops.serve(OpsRole::Frontend, None)?;
            tokio::select! {
                () = shutdown_signal() => {}
                () = follow_terms(&ops, candidate.watch_active()) => {}
            }
        }
        None => shutdown_signal().await,
    }
    tracing::info!(candidate = %args.name, "front-end candidate shutting down");
    candidate.shutdown().await;
    Ok(())
}

/// Points `ops` at the front-end of each of a candidate's terms, and at none between them;
/// returns when the candidate has stopped.
async fn follow_terms(ops: &OpsEndpoint, mut active: watch::Receiver<Option<ActiveTerm>>) {
    loop {
        let reporter = active
            .borrow_and_update()
            .as_ref()
            .map(|term| term.reporter.clone());
        ops.set_node(reporter);
        if active.changed().await.is_err() {
            return;
        }
    }
}

/// The front-end's `main`: parses the command line, runs on a current-thread
/// runtime, and exits 1 with the error on failure.
pub fn main() -> std::process::ExitCode {
    super::exit_code(super::block_on(run(Args::parse())))
}
