//! The load generator: a cluster in this process, closed-loop clients placing orders, the
//! primary optionally killed at an interval, then throughput, latency, errors, failover gaps
//! and a check that no acknowledged order was lost or doubled (`just_hungry::loadgen`).
//!
//! ```sh
//! cargo run --release --example loadgen -- --transport tcp --clients 16 --duration 10s
//! cargo run --release --example loadgen -- --kill-primary-every 3s --json
//! ```
//!
//! Progress goes to stderr, one line a second; the report to stdout. Exits 0 when the check
//! passed, 1 when it found a lost, doubled or phantom order (or another problem), 2 when the
//! run could not be made.

use std::time::Duration;

use just_hungry::cli::{parse_byte_size, parse_duration};
use just_hungry::loadgen::{self, LoadOptions, RuntimeFlavor, TransportKind};

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
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    just_hungry::cli::init_logging_with_default("warn");
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
    let options = LoadOptions {
        transport: args.transport,
        replicas: args.replicas,
        clients: args.clients,
        duration: args.duration,
        kill_primary_every: args.kill_primary_every,
        progress: !args.quiet,
        max_book_bytes: args.max_book_bytes,
        storage: args.data_dir.clone().map(|dir| (dir, args.fsync)),
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
