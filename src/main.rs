//! `just-hungry`: every program of the service in one installable binary (`cargo install
//! --path .`): `just-hungry registry`, `frontend`, `replica`, `client`, `certs`, each with the
//! options of its example binary (`just-hungry replica -h`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use just_hungry::apps;

/// The Just Hungry food-ordering service: its name server, front-end, replicas, client and
/// development certificates.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    program: Program,
}

#[derive(Subcommand)]
enum Program {
    /// The name server: maps names to addresses, with leases.
    Registry(apps::registry::Args),
    /// The front-end: keeps the view, elects the primary, routes every request.
    Frontend(apps::frontend::Args),
    /// A replica of the order book.
    Replica(apps::replica::Args),
    /// The client: place orders, read histories, see the cluster.
    Client(apps::client::Args),
    /// Development certificates for mutual TLS.
    Certs(apps::certs::Args),
}

fn main() -> ExitCode {
    match Cli::parse().program {
        Program::Registry(args) => apps::exit_code(apps::block_on(apps::registry::run(args))),
        Program::Frontend(args) => apps::exit_code(apps::block_on(apps::frontend::run(args))),
        Program::Replica(args) => apps::exit_code(apps::block_on(apps::replica::run(args))),
        Program::Client(args) => match apps::block_on(apps::client::run(args)) {
            Ok(code) => code,
            Err(e) => apps::exit_code::<()>(Err(e)),
        },
        Program::Certs(args) => apps::exit_code(apps::certs::run(args)),
    }
}
