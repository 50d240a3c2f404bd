//! A load generator: a whole cluster in this process ([`LocalCluster`], on the in-memory
//! network or on TCP sockets on 127.0.0.1), or a deployment of separate processes
//! ([`LoadTarget`]: started by the run, or already running and found through its registry),
//! closed-loop clients placing orders as fast as the cluster acknowledges them, optionally a crash of the primary at a fixed interval, and at the
//! end a report of throughput, latency, errors, failover gaps and a check of every order.
//!
//! `cargo run --release --example loadgen -- -h` is its command line; [`run`] is the whole
//! thing, for tests and programs.
//!
//! # What a run does
//!
//! 1. Starts a registry, a front-end and [`LoadOptions::replicas`] replicas (offline postcode
//!    validation), and waits until the front-end's active view holds every replica with equal
//!    state.
//! 2. Starts [`LoadOptions::clients`] clients, each an [`OrderClient`] with its own id, each
//!    placing one order after another (a closed loop: the next order leaves when the previous
//!    one has ended) with [`OrderClient::place_order_with_id`], so that the id of every order is
//!    known whatever its outcome. Postcodes are [`POSTCODES`], in turn.
//! 3. With [`LoadOptions::kill_primary_every`] `D`: at `D`, `2D`, ... (each `D` after the
//!    previous kill, while before the end of the load) crashes the primary of the front-end's
//!    active view ([`LocalCluster::crash_replica`]: as `kill -9`) and starts a fresh replica
//!    under a new name, so the cluster keeps its size; the newcomer joins as a learner, then a
//!    backup. A kill waits until the active view has a backup: killing a lone primary loses
//!    every order, which no protocol can prevent (README, "Limits").
//! 4. At [`LoadOptions::duration`], clients place no new order; each one's last order runs to
//!    its end (at most the client deadline). The load phase ends when every client has stopped.
//! 5. Waits for convergence (every member of the active view running with equal digests), reads
//!    every postcode's history from the primary through a fresh client, and checks the run's
//!    history (every order with its times and outcome, then those reads) with the one checker
//!    ([`just_hungry_core::history::check`]).
//!
//! # The figures
//!
//! - **Throughput**: acknowledged orders divided by the load phase's wall-clock time.
//! - **Latency**: of acknowledged orders only, from the call to its return, retries through a
//!   failover included; in an HDR histogram of microseconds with 3 significant digits, so every
//!   percentile is exact to 0.1%, in bounded memory whatever the number of orders.
//! - **Errors**: orders that ended otherwise, by kind (`timeout`, `unavailable`, `overloaded`,
//!   `refused (...)`, ...).
//! - **Failover**, for each kill at time `t` (all times are completion times of acknowledged
//!   orders, over all clients, on one clock):
//!   - *time to first ack*: from `t` to the first acknowledgement completing after `t`;
//!   - *longest gap*: the longest interval between two consecutive acknowledgements among
//!     the one spanning `t` and those that start in `[max(t - 1 s, previous kill), t + 5 s)`
//!     and end by the next kill, and where it started relative to `t`. It is at least the time
//!     to first ack, since the interval spanning `t` is one of them; bounding the window by the
//!     kills around `t` counts each gap for one kill only.
//!
//!   Replies already on their way when the primary dies (orders it committed just before)
//!   complete after `t`: on the in-memory network the time to first ack is then often 0 ms,
//!   and the longest gap is the figure that shows the failover.
//! - **Check**: the checker's anomalies, by kind: an acknowledged order missing from the final
//!   reads is *lost*; an id held more than once is *doubled*; a held order that was refused,
//!   or never placed by anyone (nor in the pre-defined book), is a *phantom*; any other anomaly
//!   (an order stored against the real-time order of placements, say) is counted as not
//!   linearizable. An order whose outcome the client could not know (timeout, unavailable,
//!   ...) that is held anyway has *landed* (allowed: its request was applied before the answer
//!   was lost). [`LoadReport::passed`] requires no anomaly, a complete check, convergence, and
//!   an answer after each kill.
//!
//! # Limits
//!
//! Everything shares this process and its cores: the clients compete with the nodes they
//! measure. On a current-thread runtime the nodes share one thread and, by default
//! ([`ClientPlacement::OwnThread`]), the clients have another; on the nodes' thread
//! ([`ClientPlacement::NodeThread`]) everything is capped at one core, and more clients meant
//! fewer orders (docs/PERFORMANCE.md, issue 17). Every order's id, postcode, times and outcome are kept until the end (some 56
//! bytes each, and the history the check builds from them) for the check; the order book refuses orders past its limit
//! ([`crate::orders::DEFAULT_MAX_ORDER_BOOK_BYTES`], 4 GiB, some 75 million orders),
//! so a run that long ends in `refused (order book full)` errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::orders::{OrderBook, OrderError, OrderId};
use crate::{OrderClient, OrderClientError};
use hdrhistogram::Histogram;
use just_hungry_core::history::EventType;
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::client::{ClientConfig, ClientError};
use just_hungry_core::storage::FsyncPolicy;
use just_hungry_transport_mem::MemNetwork;
use serde::Serialize;
use tokio::time::Instant;

use crate::local::{LocalCluster, TcpNetwork, WaitTimeout};
use crate::nemesis::POSTCODES;

mod check;
mod remote;
mod report;
mod target;

pub use remote::{LOADGEN_NAME, free_fixed_port, free_fixed_port_on};
use target::{InProcess, Target};

use check::nanos_between;
pub use report::{Check, Kill, Latency, LoadReport, RunSettings, measure_failover};
use report::{micros_of, millis, new_histogram, summarise};

/// The items of the orders, in turn (short: the load is on replication, not on bytes).
const DISHES: [&str; 4] = ["pizza", "curry", "noodles", "fish and chips"];

/// How long a kill waits for an active view with a backup before it is skipped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long the cluster may take to form, and to converge after the load.
const FORM_WAIT: Duration = Duration::from_secs(30);

pub use crate::local::TransportKind;

/// Which tokio runtime to run on ([`RuntimeFlavor::build`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeFlavor {
    /// Every task on one thread.
    CurrentThread,
    /// A worker thread per core, with work stealing.
    MultiThread,
}

impl RuntimeFlavor {
    /// A tokio runtime of this flavour with every driver (time, I/O) enabled.
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        }
        .enable_all()
        .build()
    }

    /// The flavour of the runtime this is called in, if it is one of these.
    pub fn current() -> Option<RuntimeFlavor> {
        match tokio::runtime::Handle::try_current().ok()?.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => Some(RuntimeFlavor::CurrentThread),
            tokio::runtime::RuntimeFlavor::MultiThread => Some(RuntimeFlavor::MultiThread),
            _ => None,
        }
    }
}

/// The size and shape of a run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The network.
    pub transport: TransportKind,
    /// Replicas, kept at this number through kills (at least 1; 2 with kills).
    pub replicas: usize,
    /// Concurrent closed-loop clients (at least 1).
    pub clients: usize,
    /// How long clients place new orders.
    pub duration: Duration,
    /// Crash the primary this often (and start a replacement); `None`: never.
    pub kill_primary_every: Option<Duration>,
    /// The nodes' failure-detection timing.
    pub timing: Timing,
    /// The clients' deadline and retry interval.
    pub client: ClientConfig,
    /// Print one line of progress a second to stderr.
    pub progress: bool,
    /// The order book's limit ([`OrderBook::max_bytes`]); `None`: the default. A small one
    /// makes the book fill during the run, whose report then says so.
    pub max_book_bytes: Option<u64>,
    /// `None`: memory-only replicas. `Some((dir, policy))`: durable replicas, each keeping its
    /// write-ahead log in `dir/<name>` (on the real file system) with fsync `policy`.
    pub storage: Option<(PathBuf, FsyncPolicy)>,
    /// What the clients drive.
    pub target: LoadTarget,
    /// Where the clients run when the cluster is in this process on a current-thread runtime.
    pub clients_on: ClientPlacement,
}

/// Where the clients of a cluster in this process run, when its nodes share one
/// current-thread runtime (the `--clients-on` option). A deployment of processes, or a
/// multi-thread runtime, has no such choice to make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClientPlacement {
    /// A current-thread runtime on a thread of their own, as clients elsewhere would be: the
    /// nodes' thread does only the nodes' work, and more clients do not mean fewer orders
    /// (docs/PERFORMANCE.md, issue 17). Every order crosses between the two threads.
    #[default]
    OwnThread,
    /// On the nodes' thread (the load generator before issue 17): the fastest at a few
    /// clients, where no order crosses threads, and capped at one core for nodes and clients
    /// together.
    NodeThread,
}

/// What a run drives.
#[derive(Clone, Debug, Default)]
pub enum LoadTarget {
    /// A registry, a front-end and [`LoadOptions::replicas`] replicas in this process, on
    /// [`LoadOptions::transport`].
    #[default]
    InProcess,
    /// A registry, a front-end and [`LoadOptions::replicas`] replicas as processes of their
    /// own, from the `registry`, `frontend` and `replica` binaries in this directory, on
    /// 127.0.0.1 with mutual TLS (a development CA made for the run). Kills are SIGKILLs.
    Spawn {
        /// Where the binaries are (the load generator's own directory, typically).
        binaries: PathBuf,
    },
    /// A deployment already running, found through its registry at `address` and reached
    /// with `tcp` (the load generator's identity and TLS). The run cannot kill its replicas,
    /// and its final check covers the orders of this run on top of what the postcodes held
    /// before it.
    Registry {
        /// The registry's address.
        address: String,
        /// The clients' TCP configuration.
        tcp: Box<just_hungry_transport_tcp::TcpConfig>,
    },
    /// A deployment already running on etcd (docs/DEPLOY.md: several front-ends, names on
    /// leases, no registry), its active front-end found through `etcd`; otherwise as
    /// [`LoadTarget::Registry`].
    #[cfg(feature = "etcd")]
    Etcd {
        /// A client of the deployment's etcd (its TLS, if any).
        etcd: crate::etcd::EtcdClient,
        /// The clients' TCP configuration.
        tcp: Box<just_hungry_transport_tcp::TcpConfig>,
    },
}

impl LoadTarget {
    /// Whether the run drives a deployment it did not start (it cannot kill its replicas or
    /// choose their number or storage).
    pub fn is_running_deployment(&self) -> bool {
        match self {
            LoadTarget::InProcess | LoadTarget::Spawn { .. } => false,
            LoadTarget::Registry { .. } => true,
            #[cfg(feature = "etcd")]
            LoadTarget::Etcd { .. } => true,
        }
    }
}

/// The book every replica of a run starts with.
fn initial_book(options: &LoadOptions) -> OrderBook {
    let book = OrderBook::with_predefined_history();
    match options.max_book_bytes {
        Some(max) => book.with_max_bytes(max),
        None => book,
    }
}

impl Default for LoadOptions {
    /// Over TCP, 3 replicas, 16 clients, 10 s, no kills, default timings, no progress.
    fn default() -> Self {
        LoadOptions {
            transport: TransportKind::Tcp,
            replicas: 3,
            clients: 16,
            duration: Duration::from_secs(10),
            kill_primary_every: None,
            timing: Timing::default(),
            client: ClientConfig::default(),
            progress: false,
            max_book_bytes: None,
            storage: None,
            target: LoadTarget::InProcess,
            clients_on: ClientPlacement::OwnThread,
        }
    }
}

/// Why a run could not be made (a run that was made but found problems is a [`LoadReport`]
/// that has not [`passed`](LoadReport::passed)).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options make no sense (no clients, a zero duration, ...).
    #[error("invalid options: {0}")]
    Options(String),
    /// A node or a client could not get its transport (a port, say).
    #[error("cannot start a node: {0}")]
    Io(#[from] std::io::Error),
    /// The cluster did not form before the load began.
    #[error("the cluster did not form: {0}")]
    NoCluster(#[from] WaitTimeout),
}

/// Runs the load described by `options` in the current tokio runtime, and reports.
pub async fn run(options: LoadOptions) -> Result<LoadReport, LoadError> {
    validate(&options)?;
    let target: Box<dyn Target> = match (&options.target, options.transport) {
        (LoadTarget::InProcess, TransportKind::Mem) => {
            let cluster = LocalCluster::on(MemNetwork::new(), options.timing).await?;
            Box::new(InProcess::start(cluster, &options).await?)
        }
        (LoadTarget::InProcess, TransportKind::Tcp) => {
            let cluster = LocalCluster::on(TcpNetwork::tls()?, options.timing).await?;
            Box::new(InProcess::start(cluster, &options).await?)
        }
        (LoadTarget::Spawn { binaries }, _) => {
            Box::new(remote::Remote::spawn(binaries, &options).await?)
        }
        (LoadTarget::Registry { address, tcp }, _) => {
            Box::new(remote::Remote::connect(address, (**tcp).clone(), options.client).await?)
        }
        #[cfg(feature = "etcd")]
        (LoadTarget::Etcd { etcd, tcp }, _) => Box::new(
            remote::Remote::connect_etcd(etcd.clone(), (**tcp).clone(), options.client).await?,
        ),
    };
    run_on(target, options).await
}

/// Checks that `options` make sense, as [`run`] does before it starts anything: at least one
/// client and one replica, a positive duration and kill interval, at least two replicas to
/// kill the primary, and neither kills nor a data directory for a deployment this run did not
/// start. The first problem found is a [`LoadError::Options`]. Pure.
pub fn validate(options: &LoadOptions) -> Result<(), LoadError> {
    let problem = if options.clients == 0 {
        "at least one client is needed"
    } else if options.replicas == 0 {
        "at least one replica is needed"
    } else if options.duration.is_zero() {
        "the duration must be positive"
    } else if options.kill_primary_every.is_some_and(|d| d.is_zero()) {
        "the kill interval must be positive"
    } else if options.kill_primary_every.is_some() && options.replicas < 2 {
        "killing the primary needs at least 2 replicas (a lone primary takes every order with it)"
    } else if options.kill_primary_every.is_some() && options.target.is_running_deployment() {
        "--kill-primary-every needs replicas this run started (--spawn N): it cannot kill another's processes"
    } else if options.storage.is_some() && options.target.is_running_deployment() {
        "--data-dir is for replicas this run starts: a running deployment keeps its own"
    } else {
        return Ok(());
    };
    Err(LoadError::Options(problem.into()))
}

/// Counters the progress line reads while clients run.
#[derive(Default)]
struct Counters {
    attempted: AtomicU64,
    acknowledged: AtomicU64,
    errors: AtomicU64,
    kills: AtomicU64,
}

/// One order a client placed, for the final check.
struct Placed {
    id: OrderId,
    postcode: &'static str,
    /// Nanoseconds from the start of the load.
    invoked: u64,
    completed: u64,
    /// `Ok` (acknowledged), `Fail` (refused) or `Info` (the client cannot know).
    outcome: EventType,
}

/// What one client did.
struct ClientOutcome {
    latencies: Histogram<u64>,
    /// Every order that got an id, in the order placed.
    orders: Vec<Placed>,
    /// Completion times (µs from the start) of acknowledged orders.
    ack_times: Vec<u64>,
    /// Completion times (µs from the start) of orders refused because the book is full.
    refused_full: Vec<u64>,
    errors: BTreeMap<String, u64>,
    problems: Vec<String>,
}

async fn run_on(
    mut target: Box<dyn Target>,
    options: LoadOptions,
) -> Result<LoadReport, LoadError> {
    let load_at_start = load_average();
    // A deployment the run did not start has as many replicas as it has.
    let expected = (!options.target.is_running_deployment()).then_some(options.replicas);
    wait_for_full_view(target.as_mut(), expected).await?;
    target.wait_for_convergence(FORM_WAIT).await.map_err(|e| {
        LoadError::NoCluster(WaitTimeout {
            what: format!("equal states before the load ({e})"),
            waited: FORM_WAIT,
        })
    })?;
    // The check's history starts from what the postcodes held.
    target.read_initial().await?;

    let counters = Arc::new(Counters::default());
    let mut clients = Vec::new();
    for c in 0..options.clients {
        clients.push(target.order_client(options.client, c as u64).await?);
    }
    let first = target.view().await;
    let first_view = first.as_ref().map_or(0, |v| v.number);
    let replicas = if options.target.is_running_deployment() {
        first.map_or(0, |v| v.backups + 1)
    } else {
        options.replicas
    };
    let start = Instant::now();
    let client_runtime = target.client_runtime();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let counters = counters.clone();
            let drive = drive_client(client, c, start, options.duration, counters);
            match &client_runtime {
                Some(runtime) => runtime.spawn(drive),
                None => tokio::spawn(drive),
            }
        })
        .collect();
    let progress = options
        .progress
        .then(|| tokio::spawn(show_progress(counters.clone(), start)));

    let mut problems = Vec::new();
    let mut kills = Vec::new();
    if let Some(every) = options.kill_primary_every {
        let mut next = start + every;
        let mut replica_number = options.replicas;
        while next.duration_since(start) < options.duration {
            tokio::time::sleep_until(next).await;
            replica_number += 1;
            let replacement = format!("replica-{replica_number}");
            match kill_primary(target.as_mut(), start, next, &replacement).await {
                Ok(kill) => {
                    counters.kills.fetch_add(1, Ordering::Relaxed);
                    kills.push(kill);
                    target.start_replica(&replacement).await?;
                }
                Err(problem) => problems.push(problem),
            }
            next = Instant::now() + every;
        }
    }

    let mut outcomes = Vec::new();
    for task in tasks {
        match task.await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => problems.push(format!("a client task failed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }
    let view_changes = view_number(target.as_mut())
        .await
        .saturating_sub(first_view);

    // Merge what the clients saw.
    let mut latencies = new_histogram();
    let mut errors = BTreeMap::new();
    let mut ack_times = Vec::new();
    let mut full_times = Vec::new();
    for outcome in &outcomes {
        // Same bounds and precision on both sides: adding cannot fail.
        let _ = latencies.add(&outcome.latencies);
        for (kind, n) in &outcome.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
        ack_times.extend(outcome.ack_times.iter().copied());
        full_times.extend(outcome.refused_full.iter().copied());
        problems.extend(outcome.problems.iter().cloned());
    }
    full_times.sort_unstable();
    let book_full_from_s = full_times.first().map(|&t| t as f64 / 1e6);
    // A refusal because the book is full is the primary's decision, as an acknowledgement
    // is: once the book is full, a failover shows in the refusals (issue 13), and a full
    // book is reported as such, not as a failover that never ended.
    ack_times.extend(full_times.iter().copied());
    ack_times.sort_unstable();
    let kill_times: Vec<u64> = kills.iter().map(|k| micros_of(k.at_s)).collect();
    for (i, kill) in kills.iter_mut().enumerate() {
        let previous = i.checked_sub(1).map(|p| kill_times[p]);
        measure_failover(kill, &ack_times, previous, kill_times.get(i + 1).copied());
        if kill.time_to_first_ack_ms.is_none() {
            problems.push(format!(
                "no order was answered after the kill of {} at {:.3} s",
                kill.victim, kill.at_s
            ));
        }
    }

    let check = check::check_run(target.as_mut(), &options, start, &outcomes, &mut problems).await;
    let deployment = target.describe();
    target.finish().await;

    let acknowledged = latencies.len();
    Ok(LoadReport {
        settings: RunSettings {
            transport: match options.target {
                LoadTarget::InProcess => options.transport,
                _ => TransportKind::Tcp,
            },
            runtime: RuntimeFlavor::current(),
            replicas,
            clients: options.clients,
            duration_s: options.duration.as_secs_f64(),
            kill_primary_every_s: options.kill_primary_every.map(|d| d.as_secs_f64()),
            storage: options.storage.as_ref().map_or_else(
                || "memory-only".to_owned(),
                |(_, policy)| format!("fsync {policy}"),
            ),
            load_average_at_start: load_at_start,
            load_average_at_end: load_average(),
            deployment,
        },
        elapsed_s: elapsed.as_secs_f64(),
        attempted: counters.attempted.load(Ordering::Relaxed),
        acknowledged,
        throughput: acknowledged as f64 / elapsed.as_secs_f64(),
        latency: summarise(&latencies),
        errors,
        view_changes,
        book_full_from_s,
        kills,
        check,
        problems,
    })
}

/// The number of the front-end's newest view (0: none).
async fn view_number(target: &mut dyn Target) -> u64 {
    target.view().await.map_or(0, |v| v.number)
}

/// Waits until the front-end's active view holds `replicas` members (any number, `None`).
async fn wait_for_full_view(
    target: &mut dyn Target,
    replicas: Option<usize>,
) -> Result<(), WaitTimeout> {
    let started = Instant::now();
    loop {
        if let Some(view) = target.view().await
            && view.active
            && replicas.is_none_or(|n| view.backups + 1 == n)
        {
            return Ok(());
        }
        if started.elapsed() >= FORM_WAIT {
            let what = match replicas {
                Some(n) => format!("an active view of {n} replicas"),
                None => "an active view".to_owned(),
            };
            return Err(WaitTimeout {
                what,
                waited: FORM_WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Crashes the primary of the active view once it has a backup; the kill, or why none.
async fn kill_primary(
    target: &mut dyn Target,
    start: Instant,
    scheduled: Instant,
    replacement: &str,
) -> Result<Kill, String> {
    loop {
        let running = target.killable();
        if let Some(view) = target.view().await
            && view.active
            && view.backups > 0
            && running.contains(&view.primary)
        {
            let victim = view.primary.clone();
            let at = start.elapsed();
            let waited = Instant::now().saturating_duration_since(scheduled);
            target.kill(&victim).await;
            return Ok(Kill {
                at_s: at.as_secs_f64(),
                waited_ms: millis(waited),
                victim,
                view: view.number,
                view_members: view.backups + 1,
                replacement: replacement.to_owned(),
                time_to_first_ack_ms: None,
                longest_gap_ms: None,
                longest_gap_from_ms: None,
            });
        }
        if scheduled.elapsed() >= KILL_WAIT {
            return Err(format!(
                "kill skipped: no active view with a backup within {KILL_WAIT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One closed-loop client: an order, then the next, until `duration` has passed.
async fn drive_client(
    client: OrderClient,
    index: usize,
    start: Instant,
    duration: Duration,
    counters: Arc<Counters>,
) -> ClientOutcome {
    let mut outcome = ClientOutcome {
        latencies: new_histogram(),
        orders: Vec::new(),
        ack_times: Vec::new(),
        refused_full: Vec::new(),
        errors: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut n = 0;
    while start.elapsed() < duration {
        let postcode = POSTCODES[(index + n) % POSTCODES.len()];
        let items = vec![DISHES[n % DISHES.len()].to_owned()];
        n += 1;
        counters.attempted.fetch_add(1, Ordering::Relaxed);
        let invoked = Instant::now();
        let (id, result) = client.place_order_with_id(postcode, items).await;
        let completed = Instant::now();
        if let Some(id) = id {
            outcome.orders.push(Placed {
                id,
                postcode,
                invoked: nanos_between(start, invoked),
                completed: nanos_between(start, completed),
                outcome: match &result {
                    Ok(_) => EventType::Ok,
                    Err(OrderClientError::Refused(_)) => EventType::Fail,
                    Err(OrderClientError::Client(_)) => EventType::Info,
                },
            });
        }
        match result {
            Ok(placed) => {
                if id.is_some_and(|id| id != placed) {
                    outcome.problems.push(format!(
                        "order {placed} was acknowledged for request {id:?}"
                    ));
                }
                let micros = (completed - invoked).as_micros() as u64;
                outcome.latencies.saturating_record(micros.max(1));
                outcome
                    .ack_times
                    .push((completed - start).as_micros() as u64);
                counters.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                *outcome.errors.entry(error_kind(&e).to_owned()).or_insert(0) += 1;
                let closed = matches!(e, OrderClientError::Client(ClientError::Closed));
                if matches!(
                    e,
                    OrderClientError::Refused(OrderError::OrderBookFull { .. })
                ) {
                    outcome
                        .refused_full
                        .push((completed - start).as_micros() as u64);
                }
                if closed {
                    outcome.problems.push(format!("client {index} shut down"));
                    break;
                }
            }
        }
    }
    outcome
}

/// The kind of an error, as counted in [`LoadReport::errors`].
fn error_kind(error: &OrderClientError) -> &'static str {
    match error {
        OrderClientError::Refused(OrderError::InvalidPostcode(_)) => "refused (postcode)",
        OrderClientError::Refused(OrderError::OrderBookFull { .. }) => "refused (order book full)",
        OrderClientError::Refused(_) => "refused (items)",
        OrderClientError::Client(ClientError::Timeout { .. }) => "timeout",
        OrderClientError::Client(ClientError::Unavailable { .. }) => "unavailable",
        OrderClientError::Client(ClientError::Overloaded) => "overloaded",
        OrderClientError::Client(ClientError::RegistryUnreachable { .. }) => "registry unreachable",
        OrderClientError::Client(ClientError::Stale { .. }) => "stale",
        OrderClientError::Client(ClientError::Forbidden { .. }) => "forbidden",
        OrderClientError::Client(ClientError::ReplyTooLarge { .. }) => "reply too large",
        OrderClientError::Client(ClientError::Busy) => "busy",
        OrderClientError::Client(ClientError::Closed) => "closed",
    }
}

/// Prints a line a second until aborted.
async fn show_progress(counters: Arc<Counters>, start: Instant) {
    let mut last = 0;
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        tick.tick().await;
        let acknowledged = counters.acknowledged.load(Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        eprintln!(
            "[{elapsed:5.1} s] {acknowledged:>9} acks  {:>8} acks/s now  {:>8.0} acks/s overall  {} errors  {} kills",
            acknowledged - last,
            acknowledged as f64 / elapsed,
            counters.errors.load(Ordering::Relaxed),
            counters.kills.load(Ordering::Relaxed),
        );
        last = acknowledged;
    }
}

/// The host's load averages, from `/proc/loadavg` (Linux); `None` elsewhere.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}
