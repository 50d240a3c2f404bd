//! What the command-line programs share: their common options (registry, TLS, etcd, timing,
//! postcodes, durations and sizes) and the order-book client's commands (parsing, output as
//! text or JSON). What any process hosting nodes needs (logging, shutdown, certificate reload)
//! is in [`crate::process`].

use std::time::Duration;

use crate::orders::{Order, OrderError};
use crate::postcode::{
    DEFAULT_GETTHEDATA_URL, DEFAULT_POSTCODES_IO_URL, Postcode, PostcodeConfig, ValidatorMode,
    WhenUnreachable, normalise,
};
use crate::{OrderClient, OrderClientError};
use clap::Args;
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::messages::{ClusterStatus, ReplicaStatus};
use just_hungry_transport_tcp::TcpConfig;
use just_hungry_transport_tcp::tls::{TlsConfig, TlsError};

/// The environment variable that names the registry's address.
pub const REGISTRY_ENV: &str = "JUST_HUNGRY_REGISTRY";

/// The registry's default address.
pub const DEFAULT_REGISTRY: &str = "127.0.0.1:9090";

/// The environment variable that names the directory of certificates (`--tls-dir`).
pub const TLS_DIR_ENV: &str = "JUST_HUNGRY_TLS_DIR";

/// Where the binaries look for their certificates by default: what
/// `cargo run --example certs` writes.
pub const DEFAULT_TLS_DIR: &str = "./tls";

/// How a binary secures its links: mutual TLS with certificates of the cluster's CA (the
/// default), or, only when asked, plaintext.
#[derive(Args, Clone, Debug)]
pub struct TlsArgs {
    /// The directory of certificates (`cargo run --example certs -- --out DIR` writes one):
    /// `ca.pem`, `<name>.pem`, `<name>.key`.
    #[arg(long, env = TLS_DIR_ENV, default_value = DEFAULT_TLS_DIR)]
    pub tls_dir: std::path::PathBuf,
    /// The cluster's CA certificate (instead of `<tls-dir>/ca.pem`).
    #[arg(long, requires_all = ["cert", "key"])]
    pub ca: Option<std::path::PathBuf>,
    /// This node's certificate (instead of `<tls-dir>/<name>.pem`).
    #[arg(long, requires_all = ["ca", "key"])]
    pub cert: Option<std::path::PathBuf>,
    /// This node's private key (instead of `<tls-dir>/<name>.key`).
    #[arg(long, requires_all = ["ca", "cert"])]
    pub key: Option<std::path::PathBuf>,
    /// No TLS: every link in plaintext, and any process that reaches a port is believed to be
    /// whoever its hello says. Only for a trusted network; logged as a warning at start.
    #[arg(long, conflicts_with_all = ["ca", "cert", "key"])]
    pub insecure_plaintext: bool,
}

impl TlsArgs {
    /// The TLS configuration of the node named `name` (its certificate's name), or `None` with
    /// `--insecure-plaintext` (after logging a warning). Fails with the file and the cause
    /// when a certificate cannot be loaded, and says how to make them.
    pub fn load(&self, name: &str) -> Result<Option<TlsConfig>, TlsSetupError> {
        if self.insecure_plaintext {
            tracing::warn!(
                "--insecure-plaintext: links are not encrypted and peers are not authenticated; any process that reaches a port can act as any node"
            );
            return Ok(None);
        }
        let loaded = match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => TlsConfig::from_files(ca, cert, key),
            _ => TlsConfig::from_dir(&self.tls_dir, name),
        };
        let tls = loaded.map_err(|source| TlsSetupError {
            source,
            dir: self.tls_dir.clone(),
            name: name.to_owned(),
        })?;
        tracing::info!(identity = %tls.identity(), "TLS on: links are encrypted and peers authenticated by the cluster's CA");
        Ok(Some(tls))
    }

    /// `config` secured by these options: its identity becomes the certificate's.
    pub fn apply(&self, mut config: TcpConfig, name: &str) -> Result<TcpConfig, TlsSetupError> {
        if let Some(tls) = self.load(name)? {
            config.identity = tls.identity();
            crate::process::spawn_reload_on_sighup(tls.clone());
            config.tls = Some(tls);
        }
        Ok(config)
    }
}

/// A node's certificate could not be loaded: the cause, and how to make one.
#[derive(Debug, thiserror::Error)]
#[error(
    "{source}\n  make the certificates with `cargo run --example certs -- --out {} --nodes {name},...` (or pass --insecure-plaintext on a trusted network)",
    dir.display()
)]
pub struct TlsSetupError {
    /// Why loading failed.
    pub source: TlsError,
    /// The directory of certificates looked in.
    pub dir: std::path::PathBuf,
    /// The node's name.
    pub name: String,
}

/// Parses the command line into `T`, as `T::parse()` does, except that with `--json` among the
/// arguments a usage error is printed as one JSON object on standard output
/// (`{"ok": false, "error": "usage", "message": ...}`) before exiting with status 2, so a
/// script gets JSON whatever went wrong. Help and version are printed as usual.
pub fn parse_args_json_aware<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(error) => {
            use clap::error::ErrorKind;
            let informational = matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if informational || !std::env::args_os().any(|a| a == "--json") {
                error.exit();
            }
            let message = error.render().to_string();
            let json =
                serde_json::json!({ "ok": false, "error": "usage", "message": message.trim_end() });
            println!("{json}");
            std::process::exit(2);
        }
    }
}

/// Checks a registry address (`--registry`, `JUST_HUNGRY_REGISTRY`): `HOST:PORT` with a
/// port from 1 to 65535 and a host name or IP address (`[::1]:9090` for IPv6), so that
/// `nonsense` is refused when the command starts rather than after a request's deadline.
pub fn parse_registry_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let usage =
        || format!("{text:?} is not a registry address: give HOST:PORT, as in {DEFAULT_REGISTRY}");
    let (host, port) = text.rsplit_once(':').ok_or_else(usage)?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    match port.parse::<u16>() {
        Ok(port) if port > 0 && host_ok => Ok(text.to_owned()),
        _ => Err(usage()),
    }
}

/// Parses a duration such as `20s`, `500ms` or `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (try 500ms, 20s or 1m)"))
}

/// Parses a size in bytes: a whole number, optionally followed by `B`, `KiB`, `MiB`, `GiB`
/// or `TiB` (powers of 1024; a space between is allowed): `4GiB`, `512 MiB`, `1048576`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 4GiB, 512MiB or 1048576)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use B, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The failure-detection timing options, the same on every node of a cluster.
#[derive(Args, Clone, Debug)]
pub struct TimingArgs {
    /// How often a replica pings the front-end.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// A replica silent for this long is declared dead by the front-end.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub dead_after: Duration,
    /// How long before an unacknowledged message is sent again.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub retransmit_interval: Duration,
    /// A primary reports a backup that has not acknowledged for this long.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub backup_timeout: Duration,
    /// Registry entries not renewed within this are dropped (the original's autoclean).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub autoclean: Duration,
}

impl TimingArgs {
    /// The protocol timing these options describe.
    pub fn timing(&self) -> Timing {
        Timing {
            ping_interval: self.ping_interval,
            dead_after: self.dead_after,
            retransmit_interval: self.retransmit_interval,
            backup_timeout: self.backup_timeout,
            autoclean: self.autoclean,
        }
    }
}

/// The environment variable that lists etcd's members (`--etcd`).
#[cfg(feature = "etcd")]
pub const ETCD_ENV: &str = "JUST_HUNGRY_ETCD_ENDPOINTS";

/// The coordination backend's options (docs/DEPLOY.md): with `--etcd`, names live in etcd on
/// leases (no registry process) and a front-end keeps its view in etcd and campaigns to be
/// the active one; without it, the registry at `--registry`.
#[cfg(feature = "etcd")]
#[derive(Args, Clone, Debug)]
pub struct EtcdArgs {
    /// etcd's client URLs, comma-separated (`https://10.0.0.1:2379,https://10.0.0.2:2379`):
    /// use etcd instead of the registry (`--registry` is then ignored).
    #[arg(long, env = ETCD_ENV, value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// The CA certificate of etcd's `https://` members (default: the web's roots).
    #[arg(long, requires = "etcd")]
    pub etcd_ca: Option<std::path::PathBuf>,
    /// This process's certificate for etcd's `--client-cert-auth` (with `--etcd-key`).
    #[arg(long, requires_all = ["etcd", "etcd_key"])]
    pub etcd_cert: Option<std::path::PathBuf>,
    /// The private key of `--etcd-cert`.
    #[arg(long, requires_all = ["etcd", "etcd_cert"])]
    pub etcd_key: Option<std::path::PathBuf>,
}

#[cfg(feature = "etcd")]
impl EtcdArgs {
    /// The etcd client these options describe, or `None` without `--etcd`. Fails with the
    /// file or the endpoint at fault.
    pub fn client(&self) -> Result<Option<crate::etcd::EtcdClient>, EtcdArgsError> {
        if self.etcd.is_empty() {
            return Ok(None);
        }
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| EtcdArgsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let mut tls = crate::etcd::EtcdTls::default();
        if let Some(ca) = &self.etcd_ca {
            tls.ca_pem = Some(read(ca)?);
        }
        if let (Some(cert), Some(key)) = (&self.etcd_cert, &self.etcd_key) {
            let mut identity = read(cert)?;
            identity.push(b'\n');
            identity.extend(read(key)?);
            tls.identity_pem = Some(identity);
        }
        let client = crate::etcd::EtcdClient::with_tls(
            self.etcd.iter().map(|e| e.trim().to_owned()),
            crate::etcd::DEFAULT_REQUEST_TIMEOUT,
            &tls,
        )?;
        tracing::info!(endpoints = %self.etcd.join(","), "coordination on etcd: names on leases, no registry");
        Ok(Some(client))
    }
}

/// `--etcd` and its certificates could not make a client.
#[cfg(feature = "etcd")]
#[derive(Debug, thiserror::Error)]
pub enum EtcdArgsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An endpoint or a certificate is not usable.
    #[error(transparent)]
    Client(#[from] crate::etcd::EtcdError),
}

/// The postcode validator's options (replica binary): which validator, where the directories
/// are, how long a validation may take, and what to do when no directory answers. They fill in
/// a [`PostcodeConfig`]; the settings not exposed here keep their defaults.
#[derive(Args, Clone, Debug)]
pub struct PostcodeArgs {
    /// How delivery postcodes are validated: `offline` (the UK format check only; nothing is
    /// sent anywhere), `postcodes-io`, `getthedata`, or `online` (postcodes.io, falling back to
    /// getthedata when postcodes.io cannot answer). Every mode but `offline` sends each postcode
    /// to a third party.
    #[arg(long, default_value = "online")]
    pub validator: ValidatorMode,
    /// Base URL of postcodes.io (lookups go to URL/postcodes/POSTCODE).
    #[arg(long, default_value = DEFAULT_POSTCODES_IO_URL)]
    pub postcodes_io_url: String,
    /// Base URL of getthedata (lookups go to URL/postcode/POSTCODE).
    #[arg(long, default_value = DEFAULT_GETTHEDATA_URL)]
    pub getthedata_url: String,
    /// How long one validation may take in all, the fallback included.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub validation_timeout: Duration,
    /// When no directory can answer: `refuse` the order ("cannot validate the postcode now"),
    /// or `accept-unverified` on the format check, marking the order unverified.
    #[arg(long, default_value = "refuse")]
    pub when_unreachable: WhenUnreachable,
}

impl PostcodeArgs {
    /// The validator configuration these options describe.
    pub fn config(&self) -> PostcodeConfig {
        PostcodeConfig {
            mode: self.validator,
            postcodes_io_url: self.postcodes_io_url.clone(),
            getthedata_url: self.getthedata_url.clone(),
            validation_timeout: self.validation_timeout,
            when_unreachable: self.when_unreachable,
            ..PostcodeConfig::default()
        }
    }
}

/// One command of the order-book client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// Place an order.
    Order {
        /// As typed.
        postcode: String,
        /// Item names.
        items: Vec<String>,
    },
    /// Show a postcode's order history.
    History {
        /// As typed.
        postcode: String,
    },
    /// Show the cluster's status.
    Status,
    /// Show the commands.
    Help,
    /// Leave the prompt.
    Quit,
}

/// The commands of the interactive prompt.
pub const SHELL_HELP: &str = "\
commands:
  order <postcode> <item>[, <item>...]   place an order (postcode with or without its space)
  history <postcode>                     show a postcode's orders
  status                                 show the view, the primary and every replica
  help                                   show this
  quit                                   leave";

/// Whether `first second` is one postcode typed with its space: `second` has the shape of an
/// inward code (a digit and two letters), `first` that of an outward code (two to four letters
/// and digits, a letter first) and is not a whole postcode by itself. Validity is not asked,
/// so that `ZZ99 9ZZ` is taken whole and refused with the real reason (issue 18), and an item
/// after a whole postcode (`SW1A1AA 1AB`) stays an item.
fn is_split_postcode(first: &str, second: &str) -> bool {
    let inward = second.len() == 3 && {
        let b = second.as_bytes();
        b[0].is_ascii_digit() && b[1].is_ascii_alphabetic() && b[2].is_ascii_alphabetic()
    };
    let outward = (2..=4).contains(&first.len())
        && first.starts_with(|c: char| c.is_ascii_alphabetic())
        && first.chars().all(|c| c.is_ascii_alphanumeric());
    inward && outward && normalise(first).is_err()
}

/// Splits `rest` into a postcode (one word, or two when they are one postcode typed with its
/// space, as in `SW1A 1AA`: [`is_split_postcode`]) and what follows it.
fn split_postcode(rest: &str) -> (String, &str) {
    let rest = rest.trim_start();
    let mut words = rest.split_whitespace();
    let first = words.next().unwrap_or("");
    let after_first = rest[first.len()..].trim_start();
    if let Some(second) = after_first.split_whitespace().next()
        && is_split_postcode(first, second)
    {
        return (
            format!("{first} {second}"),
            after_first[second.len()..].trim_start(),
        );
    }
    (first.to_owned(), after_first)
}

/// The items of an order as typed: separated by commas, each trimmed (`pizza, cola`).
fn split_items(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        Vec::new()
    } else {
        text.split(',').map(|i| i.trim().to_owned()).collect()
    }
}

impl ClientCommand {
    /// The order of the one-shot client's arguments (`order SW1A 1AA pizza "fish, chips"`),
    /// read as the interactive prompt reads a line: the postcode with or without its space,
    /// quoted or not, and items separated by commas as well as by arguments, so that both
    /// modes place the same order for the same words.
    pub fn order_from_args(postcode: &str, args: &[String]) -> ClientCommand {
        let (postcode, rest) = match args.split_first() {
            Some((second, rest)) if is_split_postcode(postcode.trim(), second.trim()) => {
                (format!("{} {}", postcode.trim(), second.trim()), rest)
            }
            _ => (postcode.trim().to_owned(), args),
        };
        ClientCommand::Order {
            postcode,
            items: rest.iter().flat_map(|arg| split_items(arg)).collect(),
        }
    }
}

/// Parses one line of the interactive prompt; `Ok(None)` for a blank line.
pub fn parse_shell_line(line: &str) -> Result<Option<ClientCommand>, String> {
    let line = line.trim();
    let (verb, rest) = match line.split_once(char::is_whitespace) {
        Some((verb, rest)) => (verb, rest),
        None => (line, ""),
    };
    match verb.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "order" => {
            let (postcode, items) = split_postcode(rest);
            if postcode.is_empty() {
                return Err("usage: order <postcode> <item>[, <item>...]".into());
            }
            let items = split_items(items);
            Ok(Some(ClientCommand::Order { postcode, items }))
        }
        "history" => {
            let postcode = rest.trim();
            if postcode.is_empty() {
                return Err("usage: history <postcode>".into());
            }
            Ok(Some(ClientCommand::History {
                postcode: postcode.to_owned(),
            }))
        }
        "status" => Ok(Some(ClientCommand::Status)),
        "help" | "?" => Ok(Some(ClientCommand::Help)),
        "quit" | "exit" => Ok(Some(ClientCommand::Quit)),
        other => Err(format!("unknown command {other:?}; type help")),
    }
}

/// What a command produced: text for a person and JSON for a script.
#[derive(Clone, Debug)]
pub struct CommandOutput {
    /// For a person.
    pub text: String,
    /// For a script (`--json`).
    pub json: serde_json::Value,
    /// Whether it succeeded (the one-shot client's exit code).
    pub ok: bool,
}

/// The postcode and items as the order book stores them: canonical postcode, item names
/// trimmed (what [`crate::orders::validate_offline`] rewrites them into).
fn stored_form(postcode: String, items: Vec<String>) -> (String, Vec<String>) {
    use crate::orders::{OrderCommand, validate_offline};
    match validate_offline(OrderCommand::PlaceOrder {
        postcode: postcode.clone(),
        items: items.clone(),
    }) {
        Ok(command) => {
            let (postcode, items) = command.order();
            (postcode.to_owned(), items.to_vec())
        }
        Err(_) => (postcode, items),
    }
}

/// What kind of failure `error` is, for scripts (`--json`'s `error`), whether the same
/// request may succeed later, and what an operator can change about it (a flag to name).
/// A retryable outage is never a `refused`: a refusal is a definitive answer about the input.
pub fn failure_kind(error: &OrderClientError) -> (&'static str, bool, Option<&'static str>) {
    use just_hungry_core::protocol::client::ClientError;
    match error {
        OrderClientError::Refused(OrderError::InvalidPostcode(e)) if e.is_retryable() => (
            "unavailable",
            true,
            Some(
                "the replicas could not reach the postcode directories (postcodes.io, getthedata.com); \
                 without internet start them with --validator offline (format check only) or \
                 --when-unreachable accept-unverified",
            ),
        ),
        OrderClientError::Refused(_) => ("refused", false, None),
        OrderClientError::Client(e) => match e {
            ClientError::Timeout { .. } => ("timeout", true, None),
            ClientError::Unavailable { .. } => ("unavailable", true, None),
            ClientError::Overloaded => ("overloaded", true, None),
            #[cfg(feature = "etcd")]
            ClientError::RegistryUnreachable { registry }
                if registry.as_str() == crate::etcd::ETCD_REGISTRY_ADDRESS =>
            {
                ("registry_unreachable", true, Some(ETCD_UNREACHABLE_HINT))
            }
            ClientError::RegistryUnreachable { .. } => (
                "registry_unreachable",
                true,
                Some("is the registry running there? --registry or JUST_HUNGRY_REGISTRY names it"),
            ),
            ClientError::Forbidden { .. } => ("forbidden", false, None),
            ClientError::ReplyTooLarge { .. } => ("reply_too_large", false, None),
            ClientError::Stale { .. } | ClientError::Busy | ClientError::Closed => {
                ("failed", false, None)
            }
        },
    }
}

fn failure(error: &OrderClientError) -> CommandOutput {
    let (kind, retryable, hint) = failure_kind(error);
    failure_output(kind, retryable, &error.to_string(), hint)
}

fn failure_output(kind: &str, retryable: bool, message: &str, hint: Option<&str>) -> CommandOutput {
    let text = match hint {
        Some(hint) => format!("error: {message}\n  hint: {hint}"),
        None => format!("error: {message}"),
    };
    CommandOutput {
        text,
        json: serde_json::json!({
            "ok": false, "error": kind, "retryable": retryable, "message": message,
            "hint": hint,
        }),
        ok: false,
    }
}

/// What the client says when etcd does not answer (a wrong endpoint, a member down, or etcd
/// refusing this process's certificates).
#[cfg(feature = "etcd")]
const ETCD_UNREACHABLE_HINT: &str = "are --etcd's endpoints right, and does etcd accept this \
     process's --etcd-ca, --etcd-cert and --etcd-key? (docs/DEPLOY.md, \"Certificates\")";

/// The client's answer when it cannot read the front-end's name from etcd before a command:
/// `registry_unreachable` (etcd is the registry then), etcd's own error as the message, said at
/// once rather than after the command's deadline.
#[cfg(feature = "etcd")]
pub fn etcd_unreachable(error: &crate::etcd::EtcdError) -> CommandOutput {
    let message = format!("cannot read the front-end's name from etcd: {error}");
    failure_output(
        "registry_unreachable",
        true,
        &message,
        Some(ETCD_UNREACHABLE_HINT),
    )
}

fn orders_json(orders: &[Order]) -> serde_json::Value {
    orders.iter().map(order_json).collect()
}

fn order_json(order: &Order) -> serde_json::Value {
    serde_json::json!({ "id": order.id.to_string(), "items": order.items })
}

fn order_line(order: &Order) -> String {
    format!("  {:<16} {}", order.id.to_string(), order.items.join(", "))
}

/// Prints `postcode`'s history to `out` page by page as the pages arrive
/// ([`OrderClient::order_history_page`]), so that a history of any length is shown without
/// holding it whole. Text: a line per order between a header and a count. JSON: one object,
/// `{"postcode": ..., "orders": [...], "ok": true}`, its array streamed; a failure after the
/// first page ends the array and the object with `"ok": false` and the error. A failure
/// before any page prints what [`run_command`] prints for it (to `out` in JSON, else to
/// `errors`). Returns whether the whole history was printed.
pub async fn print_history(
    client: &OrderClient,
    postcode: &str,
    json: bool,
    out: &mut dyn std::io::Write,
    errors: &mut dyn std::io::Write,
) -> std::io::Result<bool> {
    use crate::orders::MAX_PAGE_ORDERS;
    // The canonical postcode, once the first page has come (and the header is printed).
    let mut canonical = None;
    let mut start = 0;
    let mut count = 0usize;
    loop {
        let page = match client
            .order_history_page(postcode, start, MAX_PAGE_ORDERS)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                let output = failure(&e);
                match (json, canonical.is_some()) {
                    (true, false) => writeln!(out, "{}", output.json)?,
                    (true, true) => writeln!(
                        out,
                        "],\"ok\":false,\"error\":{},\"message\":{}}}",
                        output.json["error"],
                        serde_json::json!(e.to_string())
                    )?,
                    (false, false) => writeln!(errors, "{}", output.text)?,
                    (false, true) => writeln!(errors, "{} (after {count} order(s))", output.text)?,
                }
                return Ok(false);
            }
        };
        if canonical.is_none() {
            if json {
                let name = serde_json::json!(page.postcode.as_str());
                write!(out, "{{\"postcode\":{name},\"orders\":[")?;
            } else {
                writeln!(out, "{}:", page.postcode)?;
            }
            canonical = Some(page.postcode.clone());
        }
        for order in &page.orders {
            if json {
                let separator = if count == 0 { "" } else { "," };
                write!(out, "{separator}{}", order_json(order))?;
            } else {
                writeln!(out, "{}", order_line(order))?;
            }
            count += 1;
        }
        out.flush()?;
        match page.next {
            Some(next) => start = next,
            None => break,
        }
    }
    if json {
        writeln!(out, "],\"ok\":true}}")?;
    } else if count == 0 {
        writeln!(out, "  no orders")?;
    } else if let Some(postcode) = canonical {
        writeln!(out, "{postcode}: {count} order(s)")?;
    }
    Ok(true)
}

fn describe_history(postcode: &Postcode, orders: &[Order]) -> String {
    if orders.is_empty() {
        return format!("{postcode}: no orders");
    }
    let mut text = format!("{postcode}: {} order(s)", orders.len());
    for order in orders {
        text.push('\n');
        text.push_str(&order_line(order));
    }
    text
}

/// Describes the cluster's status for a person.
pub fn describe_status(status: &ClusterStatus) -> String {
    let mut text = match &status.view {
        Some(view) => format!(
            "view {} ({}), primary {}",
            view.number.0,
            if status.active { "active" } else { "starting" },
            view.primary.id
        ),
        None => "no view yet".to_owned(),
    };
    match &status.why_not_serving {
        None => text.push_str("\n  serving: yes"),
        Some(why) => text.push_str(&format!("\n  serving: NO: {why}")),
    }
    for r in status.replicas.iter().filter(|r| r.alive) {
        text.push_str(&format!(
            "\n  {:<24} {:<21} {:<14} applied op {}",
            r.id.to_string(),
            r.address.to_string(),
            role_in_view(status, r),
            r.applied.0,
        ));
    }
    let dead = status.replicas.iter().filter(|r| !r.alive).count();
    if dead > 0 {
        text.push_str(&format!(
            "\n  ({dead} replica(s) that stopped answering not shown)"
        ));
    }
    text
}

/// What a live replica is now: its place in the front-end's current view (`primary`,
/// `backup`) when it is a member, else what it reports (`learner` while it receives the
/// state, `not in the view` otherwise). A role the replica reported before the last view change
/// is not shown as its role (issue 18: three rows marked `Primary`).
fn role_in_view(status: &ClusterStatus, replica: &ReplicaStatus) -> &'static str {
    use just_hungry_core::protocol::messages::ReplicaRole;
    match &status.view {
        Some(view) if view.primary.id == replica.id => "primary",
        Some(view) if view.is_backup(&replica.id) => "backup",
        _ => match replica.role {
            ReplicaRole::Learner => "learner",
            _ => "not in the view",
        },
    }
}

/// Runs one command against the service. `Help` and `Quit` need no service.
pub async fn run_command(client: &OrderClient, command: ClientCommand) -> CommandOutput {
    match command {
        ClientCommand::Order { postcode, items } => {
            match client.place_order(&postcode, items.clone()).await {
                Ok(id) => {
                    // Echo what was stored, not what was typed: the book keeps the canonical
                    // postcode and the items trimmed (the offline rewrite is the one `apply`
                    // makes; an accepted order passed it).
                    let (postcode, items) = stored_form(postcode, items);
                    CommandOutput {
                        text: format!("order {id} placed for {postcode}: {}", items.join(", ")),
                        json: serde_json::json!({ "ok": true, "order_id": id.to_string(), "postcode": postcode, "items": items }),
                        ok: true,
                    }
                }
                Err(e) => failure(&e),
            }
        }
        ClientCommand::History { postcode } => match client.order_history(&postcode).await {
            Ok((postcode, orders)) => CommandOutput {
                text: describe_history(&postcode, &orders),
                json: serde_json::json!({ "ok": true, "postcode": postcode.as_str(), "orders": orders_json(&orders) }),
                ok: true,
            },
            Err(e) => failure(&e),
        },
        ClientCommand::Status => match client.cluster_status().await {
            Ok(status) => CommandOutput {
                text: describe_status(&status),
                json: status_json(&status),
                ok: true,
            },
            Err(e) => failure(&OrderClientError::Client(e)),
        },
        ClientCommand::Help => CommandOutput {
            text: SHELL_HELP.to_owned(),
            json: serde_json::json!({ "ok": true, "help": SHELL_HELP }),
            ok: true,
        },
        ClientCommand::Quit => CommandOutput {
            text: String::new(),
            json: serde_json::json!({ "ok": true }),
            ok: true,
        },
    }
}

/// Describes the cluster's status for a script (`status --json`): `ok`, the view's number,
/// whether it is active and serving (and why not), its primary's and backups' names, and the
/// live replicas only, as [`describe_status`] shows them, each with its role in the current
/// view (a role a replica reported before the last view change is not shown as its role).
/// Ids and incarnations are strings, since an incarnation is a random 64-bit number that JSON
/// tools would round past 2^53. Pure.
pub fn status_json(status: &ClusterStatus) -> serde_json::Value {
    let replicas: Vec<serde_json::Value> = status
        .replicas
        .iter()
        .filter(|r| r.alive)
        .map(|r| {
            serde_json::json!({
                "id": r.id.to_string(), "name": r.id.name,
                "incarnation": r.id.incarnation.to_string(), "address": r.address.as_str(),
                "role": role_in_view(status, r), "applied": r.applied.0,
            })
        })
        .collect();
    serde_json::json!({
        "ok": true,
        "view": status.view.as_ref().map(|v| v.number.0),
        "active": status.active,
        "serving": status.serving,
        "why_not_serving": status.why_not_serving,
        "primary": status.view.as_ref().map(|v| v.primary.id.name.clone()),
        "backups": status.view.as_ref().map(|v| v.backups.iter().map(|b| b.id.name.clone()).collect::<Vec<_>>()),
        "replicas": replicas,
    })
}

/// Runs the interactive prompt on stdin until `quit` or end of input, and returns how many
/// commands failed (a bad line, a refused order, an unreachable service), so that a script
/// piping commands in can be told (issue 18). Line editing and history come from rustyline
/// when stdin is a terminal.
pub async fn run_shell(client: &OrderClient) -> usize {
    let mut failed = 0;
    // A line, or why one could not be read (not UTF-8, say): the shell says so and goes on.
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<Result<String, String>>(1);
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    // rustyline blocks: it reads on a thread of its own, one line per prompt.
    std::thread::spawn(move || {
        let Ok(mut editor) = rustyline::DefaultEditor::new() else {
            return;
        };
        let mut unreadable = 0;
        loop {
            let line = match editor.readline("just-hungry> ") {
                Ok(line) => {
                    unreadable = 0;
                    let _ = editor.add_history_entry(line.as_str());
                    Ok(line)
                }
                Err(rustyline::error::ReadlineError::Eof)
                | Err(rustyline::error::ReadlineError::Interrupted) => return,
                // Give up only on an input that keeps failing (a closed terminal).
                Err(_) if unreadable >= 16 => return,
                Err(e) => {
                    unreadable += 1;
                    Err(format!("error: a line could not be read ({e}); skipped"))
                }
            };
            if lines_tx.blocking_send(line).is_err() || ready.recv().is_err() {
                return;
            }
        }
    });
    println!("{SHELL_HELP}");
    while let Some(line) = lines.recv().await {
        let line = match line {
            Ok(line) => line,
            Err(message) => {
                failed += 1;
                println!("{message}");
                if ready_tx.send(()).is_err() {
                    break;
                }
                continue;
            }
        };
        match parse_shell_line(&line) {
            Ok(None) => {}
            Ok(Some(ClientCommand::Quit)) => break,
            Ok(Some(ClientCommand::History { postcode })) => {
                let (mut out, mut errors) = (std::io::stdout(), std::io::stdout());
                let ok = print_history(client, &postcode, false, &mut out, &mut errors).await;
                if !matches!(ok, Ok(true)) {
                    failed += 1;
                }
            }
            Ok(Some(command)) => {
                let output = run_command(client, command).await;
                if !output.ok {
                    failed += 1;
                }
                println!("{}", output.text);
            }
            Err(message) => {
                failed += 1;
                println!("{message}");
            }
        }
        if ready_tx.send(()).is_err() {
            break;
        }
    }
    failed
}
