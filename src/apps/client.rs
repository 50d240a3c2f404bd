//! The command-line client. Interactive: `cargo run --example client`. One shot:
//! `cargo run --example client -- order "SW1A 1AA" pizza cola`, `... -- history "SW1A 1AA"`,
//! `... -- status`, each with `--json` for scripts; exits non-zero on error.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::OrderClient;
use crate::cli::{
    ClientCommand, CommandOutput, DEFAULT_REGISTRY, EtcdArgs, REGISTRY_ENV, TlsArgs,
    parse_args_json_aware, parse_duration, parse_registry_address, print_history, run_command,
    run_shell,
};
use crate::core::ids::Address;
use crate::core::protocol::client::ClientConfig;
use crate::etcd::{EtcdNames, check_reachable};
use crate::orders::OrderBook;
use crate::process::init_logging;
use crate::tcp::{TcpConfig, TcpTransport};
use clap::{Parser, Subcommand};

/// A Just Hungry client: place orders, read order histories, see the cluster.
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// The registry's address.
    #[arg(long, env = REGISTRY_ENV, default_value = DEFAULT_REGISTRY, value_parser = parse_registry_address)]
    registry: String,
    /// Give up on a request after this long (it is retried through failovers until then).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    deadline: Duration,
    /// The name in this client's certificate (`<tls-dir>/<name>.pem`).
    #[arg(long, default_value = "client")]
    name: String,
    /// Print one JSON object per command (one-shot mode).
    #[arg(long)]
    json: bool,
    /// Run one command and exit; without one, an interactive prompt.
    #[command(subcommand)]
    command: Option<OneShot>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    etcd: EtcdArgs,
}

#[derive(Subcommand)]
enum OneShot {
    /// Place an order: a postcode (with or without its space, quoted or not) and one or more
    /// items (arguments, or separated by commas: `pizza "fish and chips, peas"`).
    Order {
        /// The delivery postcode: `SW1A 1AA`, `SW1A1AA` or `sw1a 1aa`.
        postcode: String,
        /// The items, at least one.
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Show a postcode's orders, page by page as they arrive (`--json`: one object whose
    /// `orders` array is streamed).
    History {
        /// The postcode, with or without its space.
        #[arg(num_args = 1.., value_name = "POSTCODE")]
        postcode: Vec<String>,
    },
    /// Show the view, the primary and every replica.
    Status,
}

/// Runs the client with `args`: one command, or the interactive prompt.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.json && args.command.is_none() {
        // The prompt writes for a person; a script wants one command's JSON object.
        eprintln!(
            "error: --json is for one command (order, history or status), not the interactive prompt"
        );
        return Ok(ExitCode::from(2));
    }
    if std::env::var_os("RUST_LOG").is_some() {
        init_logging();
    }
    let tcp = TcpConfig::client(&args.name).for_service::<OrderBook>();
    let transport = TcpTransport::connect_only(args.tls.apply(tcp, &args.name)?).await?;
    let config = ClientConfig {
        deadline: args.deadline,
        ..ClientConfig::default()
    };
    let client = match args.etcd.client()? {
        // The active front-end found through its key in etcd.
        Some(etcd) => {
            // One read first: etcd refusing this process (a certificate it does not accept,
            // a wrong endpoint) is said at once, with etcd's error, not as a timeout.
            if let Err(e) = check_reachable(&etcd).await {
                return Ok(report(&crate::cli::etcd_unreachable(&e), args.json));
            }
            let transport = EtcdNames::<OrderBook, _>::for_client(transport, etcd);
            let registry = transport.registry_address();
            OrderClient::spawn(transport, registry, config)
        }
        None => OrderClient::spawn(transport, Address::new(args.registry), config),
    };
    let Some(command) = args.command else {
        // A person at a terminal sees each error as it happens; piped commands end in an
        // exit code that says whether any failed.
        let failed = run_shell(&client).await;
        return Ok(if failed > 0 && !std::io::stdin().is_terminal() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    };
    let command = match command {
        OneShot::Order { postcode, items } => ClientCommand::order_from_args(&postcode, &items),
        OneShot::History { postcode } => {
            // Page by page as the pages arrive: a history of any length.
            let (mut out, mut errors) = (std::io::stdout().lock(), std::io::stderr());
            let postcode = postcode.join(" ");
            let ok = print_history(&client, &postcode, args.json, &mut out, &mut errors).await?;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        OneShot::Status => ClientCommand::Status,
    };
    let output = run_command(&client, command).await;
    Ok(report(&output, args.json))
}

/// Prints a command's output (its JSON under `--json`; else its text, on stderr for an
/// error) and returns the exit code it calls for.
fn report(output: &CommandOutput, json: bool) -> ExitCode {
    if json {
        println!("{}", output.json);
    } else if output.ok {
        println!("{}", output.text);
    } else {
        eprintln!("{}", output.text);
    }
    if output.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The client's `main`: parses the command line (errors as JSON under `--json`), runs on a
/// current-thread runtime, and exits with the command's code, or 1 with the error.
pub fn main() -> ExitCode {
    let args: Args = parse_args_json_aware();
    match super::block_on(run(args)) {
        Ok(code) => code,
        Err(e) => super::exit_code::<()>(Err(e)),
    }
}
