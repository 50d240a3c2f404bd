//! The load generator: a cluster in this process, closed-loop clients placing orders, the
//! primary optionally killed at an interval, then throughput, latency, errors, failover gaps
//! and a check that no acknowledged order was lost or doubled (`just_hungry::loadgen`).
//!
//! ```sh
//! cargo run --release --example loadgen -- --transport tcp --clients 16 --duration 10s
//! cargo run --release --example loadgen -- --kill-primary-every 3s --json
//! # every node a process of its own (build them first), the primary SIGKILLed every 3 s
//! cargo build --release --examples
//! cargo run --release --example loadgen -- --spawn 3 --kill-primary-every 3s
//! # a deployment already running, found through its registry, with loadgen's certificate
//! cargo run --release --example loadgen -- --registry 10.0.0.1:9090 --tls-dir ./tls
//! # ... or on etcd (docs/DEPLOY.md), with etcd's CA and client certificate
//! cargo run --release --example loadgen -- --etcd https://10.0.0.1:2379 --tls-dir ./tls \
//!     --etcd-ca etcd-tls/ca.pem --etcd-cert etcd-tls/just-hungry.pem --etcd-key etcd-tls/just-hungry.key
//! ```
//!
//! Progress goes to stderr, one line a second; the report to stdout. Exits 0 when the check
//! passed, 1 when it found a lost, doubled or phantom order (or another problem), 2 when the
//! run could not be made.

use std::time::Duration;

use just_hungry::cli::{EtcdArgs, TlsArgs};
use just_hungry::cli::{parse_byte_size, parse_duration};
use just_hungry::loadgen::{
    self, ClientPlacement, LOADGEN_NAME, LoadOptions, LoadTarget, RuntimeFlavor, TransportKind,
};
use just_hungry::orders::OrderBook;
use just_hungry::tcp::TcpConfig;

/// Drives a cluster in this process with closed-loop clients and checks every order.
#[derive(clap::Parser)]
struct Args {
    /// The network: in-process channels, or TCP sockets on 127.0.0.1 (free ports).
    #[arg(long, value_enum, default_value = "tcp")]
    transport: TransportKind,
    /// Replicas, kept at this number through kills.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Concurrent clients, each placing one order after another.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long clients place new orders.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Crash the primary this often, starting a fresh replica in its place.
    #[arg(long, value_parser = parse_duration)]
    kill_primary_every: Option<Duration>,
    /// The tokio runtime everything runs on.
    #[arg(long, value_enum, default_value = "current-thread")]
    runtime: RuntimeFlavor,
    /// With the cluster in this process on the current-thread runtime: the clients on a
    /// thread of their own (as clients elsewhere would be), or on the nodes' thread (fastest
    /// at a few clients, one core for everything).
    #[arg(long, value_enum, default_value = "own-thread")]
    clients_on: ClientPlacement,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// The order book's limit (`64MiB`, bytes without a unit); the default otherwise. A small
    /// one makes the book fill during the run, which the report then says.
    #[arg(long, value_parser = parse_byte_size)]
    max_book_bytes: Option<u64>,
    /// Durable replicas: each keeps its write-ahead log in `<DIR>/<name>` (a new or empty
    /// directory, so every run starts from the pre-defined data). Memory-only without it.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// With `--data-dir`: `always`, `batch`, `batch:<ms>` or `never` (README, "Guarantees").
    #[arg(long, default_value = "batch", requires = "data_dir")]
    fsync: just_hungry::core::storage::FsyncPolicy,
    /// Start a registry, a front-end and N replicas as processes of their own (the
    /// `registry`, `frontend` and `replica` binaries beside this one: `cargo build --release
    /// --examples`), on 127.0.0.1 with mutual TLS; `--kill-primary-every` then SIGKILLs the
    /// primary's process. Replaces `--replicas` and `--transport`.
    #[arg(long, value_name = "N", conflicts_with = "registry")]
    spawn: Option<usize>,
    /// Drive a deployment already running, found through its registry at this address
    /// (TLS with `<tls-dir>/loadgen.pem` unless `--insecure-plaintext`). Its replicas are not
    /// killed; the final check covers this run's orders.
    #[arg(long, value_name = "ADDR")]
    registry: Option<String>,
    /// With `--etcd`: drive a deployment already running on etcd (docs/DEPLOY.md), its active
    /// front-end found there, as `--registry` does through a registry.
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    tls: TlsArgs,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    just_hungry::process::init_logging_with_default("warn");
    if let Some(dir) = &args.data_dir {
        // A run measures replicas starting from the pre-defined data, not a previous run's,
        // and never deletes what it did not write.
        let used = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
        if used {
            eprintln!(
                "loadgen: {} is not empty: give a new or empty --data-dir",
                dir.display()
            );
            std::process::exit(2);
        }
    }
    let etcd = match args.etcd.client() {
        Ok(etcd) => etcd,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    if etcd.is_some() && args.spawn.is_some() {
        eprintln!("loadgen: --spawn starts its own deployment (with a registry): not with --etcd");
        std::process::exit(2);
    }
    // The clients' TCP configuration for a running deployment, with loadgen's certificate:
    // loaded once (a run is short, so no reload on SIGHUP, and no runtime yet).
    let client_tcp = || {
        let tcp = TcpConfig::client(LOADGEN_NAME).for_service::<OrderBook>();
        match args.tls.load(LOADGEN_NAME) {
            Ok(Some(tls)) => Box::new(tcp.with_tls(tls)),
            Ok(None) => Box::new(tcp),
            Err(e) => {
                eprintln!("loadgen: {e}");
                std::process::exit(2);
            }
        }
    };
    let target = match (&args.spawn, &args.registry) {
        (None, _) if let Some(etcd) = etcd => LoadTarget::Etcd {
            etcd,
            tcp: client_tcp(),
        },
        (Some(_), _) => {
            let binaries = std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default();
            LoadTarget::Spawn { binaries }
        }
        (None, Some(address)) => LoadTarget::Registry {
            address: address.clone(),
            tcp: client_tcp(),
        },
        (None, None) => LoadTarget::InProcess,
    };
    let options = LoadOptions {
        transport: args.transport,
        replicas: args.spawn.unwrap_or(args.replicas),
        target,
        clients: args.clients,
        duration: args.duration,
        kill_primary_every: args.kill_primary_every,
        progress: !args.quiet,
        max_book_bytes: args.max_book_bytes,
        storage: args.data_dir.clone().map(|dir| (dir, args.fsync)),
        clients_on: args.clients_on,
        ..LoadOptions::default()
    };
    let report = args
        .runtime
        .build()
        .map_err(loadgen::LoadError::from)
        .and_then(|runtime| runtime.block_on(loadgen::run(options)));
    match report {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("loadgen: cannot write the report as JSON: {e}");
                        std::process::exit(2);
                    }
                }
            } else {
                println!("{report}");
            }
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    }
}
