//! Development certificates for a cluster: `cargo run --example certs -- [--out ./tls]
//! [--nodes registry,frontend,replica-1,replica-2,replica-3,client] [--days 365]`.
//!
//! Writes a development CA (`ca.pem`, and its key `ca.key`) and, for each node, `<name>.pem`
//! and `<name>.key`, as the binaries' `--tls-dir` expects them. If `--out` already holds
//! `ca.pem` and `ca.key`, that CA is reused, so nodes can be added later:
//! `cargo run --example certs -- --nodes replica-4`.
//!
//! Keep the directory private: the `.key` files (mode 0600) are the nodes' private keys, and
//! whoever holds `ca.key` can make a certificate for any node. A node needs only `ca.pem` and
//! its own two files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::ids::{Identity, NodeRole};
use crate::tcp::tls::{CA_CERT_FILE, CA_KEY_FILE, DevPki, check_node_name, write_dir};
use anyhow::Context;
use clap::Parser;

/// Makes (or extends) a development CA and node certificates for mutual TLS.
#[derive(Parser)]
#[command(version)]
pub struct Args {
    /// Directory to write into (made if missing). Keep it private: it holds private keys.
    #[arg(long, default_value = "./tls")]
    out: PathBuf,
    /// Nodes to issue certificates for, comma-separated. Each is `role:name` or a name:
    /// `registry` and `frontend` are those roles, `replica...` a replica, anything else a
    /// client.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "registry,frontend,replica-1,replica-2,replica-3,client"
    )]
    nodes: Vec<String>,
    /// How many days each node certificate is valid.
    #[arg(long, default_value_t = 365)]
    days: u64,
    /// The cluster's name, written in a new CA's subject.
    #[arg(long, default_value = "dev")]
    cluster: String,
}

/// The identity a `--nodes` entry names.
fn identity(spec: &str) -> anyhow::Result<Identity> {
    let (role, name) = match spec.split_once(':') {
        Some((role, name)) => (role.parse::<NodeRole>()?, name),
        None => {
            let role = match spec {
                "registry" => NodeRole::Registry,
                "frontend" => NodeRole::Frontend,
                _ if spec.starts_with("replica") => NodeRole::Replica,
                _ => NodeRole::Client,
            };
            (role, spec)
        }
    };
    check_node_name(name)?;
    Ok(Identity::new(role, name))
}

fn existing_ca(dir: &Path) -> bool {
    dir.join(CA_CERT_FILE).is_file() && dir.join(CA_KEY_FILE).is_file()
}

/// Runs the tool with `args`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let identities = args
        .nodes
        .iter()
        .map(|spec| spec.trim())
        .filter(|spec| !spec.is_empty())
        .map(|spec| identity(spec).with_context(|| format!("--nodes: `{spec}`")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let valid_for = Duration::from_secs(args.days.saturating_mul(24 * 3600));

    let reused = existing_ca(&args.out);
    let pki = if reused {
        println!("reusing the CA in {}", args.out.display());
        DevPki::load(&args.out)?
    } else {
        DevPki::generate(&args.cluster)?
    };
    let certs = identities
        .iter()
        .map(|identity| pki.issue(identity, valid_for))
        .collect::<Result<Vec<_>, _>>()?;

    let mut written = write_dir(&args.out, &pki.ca_cert_pem, &certs)?;
    if !reused {
        written.insert(1, pki.write_ca_key(&args.out)?);
    }
    for path in &written {
        let what = match path.extension().and_then(|e| e.to_str()) {
            Some("key") => "private key (keep it secret)",
            _ => "certificate",
        };
        println!("wrote {} ({what})", path.display());
    }
    for cert in &certs {
        println!(
            "  {} -> just-hungry://{}/{}, valid {} days",
            cert.identity.name, cert.identity.role, cert.identity.name, args.days
        );
    }
    Ok(())
}

/// The tool's `main`: parses the command line, runs, and exits 1 with the error on failure.
pub fn main() -> std::process::ExitCode {
    super::exit_code(run(Args::parse()))
}
