//! A load generator: a whole cluster in this process ([`LocalCluster`], on the in-memory
//! network or on TCP sockets on 127.0.0.1), closed-loop clients placing orders as fast as the
//! cluster acknowledges them, optionally a crash of the primary at a fixed interval, and at the
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
//!    every postcode's history from the primary through a fresh client, and counts ids.
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
//! - **Check**: an acknowledged order missing from the histories is *lost*; an id held more
//!   than once is *doubled*; an order whose outcome the client could not know (timeout,
//!   unavailable, ...) that is held anyway has *landed* (allowed: its request was applied
//!   before the answer was lost); a *refused* order that is held, or an id of a load client
//!   that it never used, is a *phantom*. [`LoadReport::passed`] requires no lost, doubled or
//!   phantom order, a complete check, convergence, and an acknowledgement after each kill.
//!
//! # Limits
//!
//! Everything shares this process and its cores: the clients compete with the nodes they
//! measure. Every acknowledged order's id and completion time is kept until the end (16 bytes
//! each) for the check; the order book refuses orders past its limit
//! ([`crate::orders::DEFAULT_MAX_ORDER_BOOK_BYTES`], 4 GiB, some 75 million orders),
//! so a run that long ends in `refused (order book full)` errors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::orders::{OrderBook, OrderError, OrderId, OrderValidator};
use crate::{OrderClient, OrderClientError};
use hdrhistogram::Histogram;
use just_hungry_core::ids::ClientId;
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::client::{ClientConfig, ClientError};
use just_hungry_transport_mem::MemNetwork;
use serde::Serialize;
use tokio::time::Instant;

use crate::local::{LocalCluster, Network, TcpNetwork, WaitTimeout};
use crate::nemesis::POSTCODES;

/// The items of the orders, in turn (short: the load is on replication, not on bytes).
const DISHES: [&str; 4] = ["pizza", "curry", "noodles", "fish and chips"];

/// How long a kill waits for an active view with a backup before it is skipped.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long the cluster may take to form, and to converge after the load.
const FORM_WAIT: Duration = Duration::from_secs(30);

/// The window around a kill in which the longest gap between acknowledgements is sought.
const GAP_BEFORE: Duration = Duration::from_secs(1);
const GAP_AFTER: Duration = Duration::from_secs(5);

/// The largest latency the histogram holds exactly (larger ones are recorded as this).
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// Which network the cluster runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// In-process channels ([`MemNetwork`]).
    Mem,
    /// TCP sockets on 127.0.0.1, a free port per node ([`TcpNetwork`]).
    Tcp,
}

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

/// The options a report was made with, as figures.
#[derive(Clone, Debug, Serialize)]
pub struct RunSettings {
    /// The network.
    pub transport: TransportKind,
    /// The runtime it ran on (`None`: another flavour).
    pub runtime: Option<RuntimeFlavor>,
    /// Replicas.
    pub replicas: usize,
    /// Clients.
    pub clients: usize,
    /// Load duration, seconds.
    pub duration_s: f64,
    /// Kill interval, seconds.
    pub kill_primary_every_s: Option<f64>,
    /// The host's 1, 5 and 15 minute load averages when the run started (Linux only).
    pub load_average_at_start: Option<[f64; 3]>,
    /// The same when it ended.
    pub load_average_at_end: Option<[f64; 3]>,
}

/// Latency of acknowledged orders, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Acknowledged orders measured.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// One kill of the primary and what followed.
#[derive(Clone, Debug, Serialize)]
pub struct Kill {
    /// When, from the start of the load, seconds.
    pub at_s: f64,
    /// How long it waited past its schedule for an active view with a backup, ms.
    pub waited_ms: f64,
    /// The primary killed.
    pub victim: String,
    /// The number of the view it was primary of.
    pub view: u64,
    /// How many members that view had.
    pub view_members: usize,
    /// The replica started in its place.
    pub replacement: String,
    /// From the kill to the first acknowledgement completing after it, ms (`None`: none did).
    /// Once the book is full ([`LoadReport::book_full_from_s`]), refusals as full count too.
    pub time_to_first_ack_ms: Option<f64>,
    /// The longest interval between consecutive acknowledgements spanning the kill, or starting
    /// in `[kill - 1 s, kill + 5 s)` after the previous kill and ending by the next, ms.
    pub longest_gap_ms: Option<f64>,
    /// Where that interval began, relative to the kill, ms (negative: before it).
    pub longest_gap_from_ms: Option<f64>,
}

/// The count of every order the clients placed, against the cluster's histories.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Check {
    /// Whether every postcode's history was read (otherwise `lost` means nothing).
    pub complete: bool,
    /// Whether the active view's members converged (equal digests) after the load.
    pub converged: bool,
    /// Orders acknowledged to clients.
    pub acknowledged: u64,
    /// Acknowledged orders missing from the histories (must be 0).
    pub lost: u64,
    /// Ids held more than once (must be 0).
    pub doubled: u64,
    /// Orders whose outcome the client could not know.
    pub unknown_outcome: u64,
    /// Of those, how many are held.
    pub unknown_landed: u64,
    /// Refused orders held, and ids of load clients they never used, that are held (must be 0).
    pub phantom: u64,
    /// Up to 10 ids of each kind of violation, for a start.
    pub examples: Vec<String>,
}

/// Everything a run measured and found; serialisable as one JSON object.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// What was run where.
    pub settings: RunSettings,
    /// The load phase: from the first order until every client stopped, seconds.
    pub elapsed_s: f64,
    /// Orders the clients started.
    pub attempted: u64,
    /// Orders acknowledged.
    pub acknowledged: u64,
    /// Acknowledged orders per second of the load phase.
    pub throughput: f64,
    /// Latency of acknowledged orders.
    pub latency: Latency,
    /// Orders that ended otherwise, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Views the front-end created during the load phase: each kill makes two (the failover,
    /// then the replacement's join); any other is a backup removed for not acknowledging in
    /// time (`Timing::backup_timeout`) and its return, each with a state transfer.
    pub view_changes: u64,
    /// When the first order was refused because the order book is full, seconds from the
    /// start (`None`: never). From then on the kills' figures count those refusals as
    /// answers, with the acknowledgements: both are the primary's decisions.
    pub book_full_from_s: Option<f64>,
    /// The kills, in order.
    pub kills: Vec<Kill>,
    /// The final check.
    pub check: Check,
    /// Everything else that went wrong (empty when fine).
    pub problems: Vec<String>,
}

impl LoadReport {
    /// Whether the run found nothing wrong: no lost, doubled or phantom order, a complete
    /// check of converged replicas, an answer after every kill (an acknowledgement, or a
    /// refusal because the book is full), no other problem.
    pub fn passed(&self) -> bool {
        self.check.complete
            && self.check.converged
            && self.check.lost == 0
            && self.check.doubled == 0
            && self.check.phantom == 0
            && self.problems.is_empty()
    }
}

/// Runs the load described by `options` in the current tokio runtime, and reports.
pub async fn run(options: LoadOptions) -> Result<LoadReport, LoadError> {
    validate(&options)?;
    match options.transport {
        TransportKind::Mem => {
            let cluster = LocalCluster::on(MemNetwork::new(), options.timing).await?;
            run_on(cluster, options).await
        }
        TransportKind::Tcp => {
            let cluster = LocalCluster::on(TcpNetwork::tls()?, options.timing).await?;
            run_on(cluster, options).await
        }
    }
}

fn validate(options: &LoadOptions) -> Result<(), LoadError> {
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

/// What one client did.
struct ClientOutcome {
    latencies: Histogram<u64>,
    /// `(order id, completion time in µs from the start)` of each acknowledged order.
    acknowledged: Vec<(OrderId, u64)>,
    unknown: Vec<OrderId>,
    refused: Vec<OrderId>,
    /// Completion times (µs from the start) of orders refused because the book is full.
    refused_full: Vec<u64>,
    errors: BTreeMap<String, u64>,
    problems: Vec<String>,
}

async fn run_on<N: Network>(
    mut cluster: LocalCluster<OrderBook, N>,
    options: LoadOptions,
) -> Result<LoadReport, LoadError> {
    let load_at_start = load_average();
    let validator = Arc::new(OrderValidator::offline());
    for i in 1..=options.replicas {
        let name = format!("replica-{i}");
        cluster
            .start_replica(&name, initial_book(&options), validator.clone())
            .await?;
    }
    cluster.start_frontend().await?;
    wait_for_full_view(&cluster, options.replicas).await?;
    cluster.wait_for_convergence(FORM_WAIT).await?;

    let counters = Arc::new(Counters::default());
    let mut clients = Vec::new();
    for c in 0..options.clients {
        let id = ClientId(c as u64 + 1);
        clients.push(cluster.order_client_with_id(options.client, id).await?);
    }
    let first_view = view_number(&cluster).await;
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let counters = counters.clone();
            tokio::spawn(drive_client(client, c, start, options.duration, counters))
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
            match kill_primary(&mut cluster, start, next, &replacement).await {
                Ok(kill) => {
                    counters.kills.fetch_add(1, Ordering::Relaxed);
                    kills.push(kill);
                    cluster
                        .start_replica(&replacement, initial_book(&options), validator.clone())
                        .await?;
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
    let view_changes = view_number(&cluster).await.saturating_sub(first_view);

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
        ack_times.extend(outcome.acknowledged.iter().map(|&(_, t)| t));
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

    let check = check_histories(&mut cluster, &options, &outcomes, &mut problems).await;
    // The front-end first: stopping the replicas under it would make it warn that no member
    // of its view is alive.
    cluster.crash_frontend().await;
    cluster.shutdown().await;

    let acknowledged = latencies.len();
    Ok(LoadReport {
        settings: RunSettings {
            transport: options.transport,
            runtime: RuntimeFlavor::current(),
            replicas: options.replicas,
            clients: options.clients,
            duration_s: options.duration.as_secs_f64(),
            kill_primary_every_s: options.kill_primary_every.map(|d| d.as_secs_f64()),
            load_average_at_start: load_at_start,
            load_average_at_end: load_average(),
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
async fn view_number<N: Network>(cluster: &LocalCluster<OrderBook, N>) -> u64 {
    let report = cluster.frontend_report().await;
    report.and_then(|r| r.view).map_or(0, |v| v.number.0)
}

/// Waits until the front-end's active view holds `replicas` members.
async fn wait_for_full_view<N: Network>(
    cluster: &LocalCluster<OrderBook, N>,
    replicas: usize,
) -> Result<(), WaitTimeout> {
    let started = Instant::now();
    loop {
        if let Some(report) = cluster.frontend_report().await
            && report.active
            && report.view.is_some_and(|v| v.members().count() == replicas)
        {
            return Ok(());
        }
        if started.elapsed() >= FORM_WAIT {
            return Err(WaitTimeout {
                what: format!("an active view of {replicas} replicas"),
                waited: FORM_WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Crashes the primary of the active view once it has a backup; the kill, or why none.
async fn kill_primary<N: Network>(
    cluster: &mut LocalCluster<OrderBook, N>,
    start: Instant,
    scheduled: Instant,
    replacement: &str,
) -> Result<Kill, String> {
    loop {
        let running = cluster.replica_names();
        if let Some(report) = cluster.frontend_report().await
            && report.active
            && let Some(view) = report.view
            && !view.backups.is_empty()
            && running.contains(&view.primary.id.name)
        {
            let victim = view.primary.id.name.clone();
            let at = start.elapsed();
            let waited = Instant::now().saturating_duration_since(scheduled);
            cluster.crash_replica(&victim).await;
            return Ok(Kill {
                at_s: at.as_secs_f64(),
                waited_ms: millis(waited),
                victim,
                view: view.number.0,
                view_members: view.backups.len() + 1,
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
        acknowledged: Vec::new(),
        unknown: Vec::new(),
        refused: Vec::new(),
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
        match result {
            Ok(placed) => {
                if id.is_some_and(|id| id != placed) {
                    outcome.problems.push(format!(
                        "order {placed} was acknowledged for request {id:?}"
                    ));
                }
                let micros = (completed - invoked).as_micros() as u64;
                outcome.latencies.saturating_record(micros.max(1));
                let at = (completed - start).as_micros() as u64;
                outcome.acknowledged.push((placed, at));
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
                match (e, id) {
                    (OrderClientError::Refused(_), Some(id)) => outcome.refused.push(id),
                    (OrderClientError::Client(_), Some(id)) => outcome.unknown.push(id),
                    (_, None) => {}
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

/// Fills in a kill's failover figures from the sorted completion times of every
/// acknowledgement (µs from the start); `previous` and `next` are the times of the kills
/// around it, which bound its window so that no gap is counted for two kills.
fn measure_failover(kill: &mut Kill, ack_times: &[u64], previous: Option<u64>, next: Option<u64>) {
    let t = micros_of(kill.at_s);
    let after = ack_times.partition_point(|&a| a <= t);
    let Some(&first_after) = ack_times.get(after) else {
        // No acknowledgement after the kill: no time to first ack, and the gap has no end.
        return;
    };
    kill.time_to_first_ack_ms = Some((first_after - t) as f64 / 1000.0);
    // The interval spanning the kill (from the last ack before it, or from the start), and
    // every interval starting in the window and ending by the next kill (an interval spanning
    // the next kill is that kill's).
    let spanning = (
        after.checked_sub(1).map_or(0, |i| ack_times[i]),
        first_after,
    );
    let low = t
        .saturating_sub(GAP_BEFORE.as_micros() as u64)
        .max(previous.unwrap_or(0));
    let high = t + GAP_AFTER.as_micros() as u64;
    let next = next.unwrap_or(u64::MAX);
    let first = ack_times.partition_point(|&a| a < low);
    let mut longest = spanning;
    for pair in ack_times[first..].windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a >= high || b > next {
            break;
        }
        if b - a > longest.1 - longest.0 {
            longest = (a, b);
        }
    }
    kill.longest_gap_ms = Some((longest.1 - longest.0) as f64 / 1000.0);
    kill.longest_gap_from_ms = Some((longest.0 as f64 - t as f64) / 1000.0);
}

fn micros_of(seconds: f64) -> u64 {
    (seconds * 1e6).round() as u64
}

/// Reads every postcode's history after convergence and counts the clients' ids in it.
async fn check_histories<N: Network>(
    cluster: &mut LocalCluster<OrderBook, N>,
    options: &LoadOptions,
    outcomes: &[ClientOutcome],
    problems: &mut Vec<String>,
) -> Check {
    let mut check = Check::default();
    match cluster.wait_for_convergence(FORM_WAIT).await {
        Ok(_) => check.converged = true,
        Err(e) => problems.push(format!("no convergence after the load: {e}")),
    }
    // A client of its own, with an id after the load clients'. One postcode per read: the
    // largest answer is one postcode's history, well below the transports' frame limits.
    let mut held: HashMap<OrderId, u32> = HashMap::new();
    check.complete = true;
    let id = ClientId(options.clients as u64 + 1);
    let reader = match cluster.order_client_with_id(options.client, id).await {
        Ok(reader) => Some(reader),
        Err(e) => {
            problems.push(format!("no client to read the histories with: {e}"));
            check.complete = false;
            None
        }
    };
    if let Some(reader) = reader {
        for postcode in POSTCODES {
            match reader.order_history(postcode).await {
                Ok((_, orders)) => {
                    for order in orders {
                        *held.entry(order.id).or_insert(0) += 1;
                    }
                }
                Err(e) => {
                    problems.push(format!("the history of {postcode} could not be read: {e}"));
                    check.complete = false;
                }
            }
        }
    }

    let mut examples = Vec::new();
    let mut note = |what: &str, id: &OrderId, count: &mut u64| {
        *count += 1;
        if *count <= 10 {
            examples.push(format!("{what} {id}"));
        }
    };
    let mut used: HashSet<OrderId> = HashSet::new();
    for outcome in outcomes {
        for (id, _) in &outcome.acknowledged {
            check.acknowledged += 1;
            used.insert(*id);
            if !held.contains_key(id) {
                note("lost", id, &mut check.lost);
            }
        }
        for id in &outcome.unknown {
            check.unknown_outcome += 1;
            used.insert(*id);
            if held.contains_key(id) {
                check.unknown_landed += 1;
            }
        }
        for id in &outcome.refused {
            used.insert(*id);
            if held.contains_key(id) {
                note("refused but held", id, &mut check.phantom);
            }
        }
    }
    let load_clients = 1..=options.clients as u64;
    let mut held: Vec<(&OrderId, &u32)> = held.iter().collect();
    held.sort_unstable();
    for (id, &count) in held {
        if count > 1 {
            note("doubled", id, &mut check.doubled);
        }
        if load_clients.contains(&id.client.0) && !used.contains(id) {
            note("never placed but held", id, &mut check.phantom);
        }
    }
    check.examples = examples;
    check
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3).expect("valid histogram bounds")
}

fn summarise(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        count: histogram.len(),
        mean_ms: histogram.mean() / 1000.0,
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The host's load averages, from `/proc/loadavg` (Linux); `None` elsewhere.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

impl fmt::Display for LoadReport {
    /// The text table of the example.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let runtime = match s.runtime {
            Some(RuntimeFlavor::CurrentThread) => "current-thread",
            Some(RuntimeFlavor::MultiThread) => "multi-thread",
            None => "other",
        };
        let transport = match s.transport {
            TransportKind::Mem => "mem",
            TransportKind::Tcp => "tcp",
        };
        write!(
            f,
            "loadgen: {transport}, {} replicas, {} clients, {} s, {runtime} runtime",
            s.replicas, s.clients, s.duration_s
        )?;
        match s.kill_primary_every_s {
            Some(every) => writeln!(f, ", primary killed every {every} s")?,
            None => writeln!(f)?,
        }
        let load = |l: Option<[f64; 3]>| {
            l.map(|[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
                .unwrap_or_else(|| "unknown".into())
        };
        writeln!(
            f,
            "host load    {} at start, {} at end (1, 5, 15 min)",
            load(s.load_average_at_start),
            load(s.load_average_at_end)
        )?;
        writeln!(
            f,
            "throughput   {:.0} acknowledged orders/s ({} of {} orders in {:.2} s)",
            self.throughput, self.acknowledged, self.attempted, self.elapsed_s
        )?;
        let l = &self.latency;
        writeln!(
            f,
            "latency      p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms)",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
        )?;
        writeln!(f, "view changes {}", self.view_changes)?;
        if self.errors.is_empty() {
            writeln!(f, "errors       none")?;
        } else {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "errors       {}", errors.join(", "))?;
        }
        if let Some(t) = self.book_full_from_s {
            writeln!(
                f,
                "book full    from {t:.3} s: orders refused as the order book is full (--max-book-bytes); the kills after it are measured by those answers"
            )?;
        }
        let opt = |v: Option<f64>| {
            v.map(|v| format!("{v:.1} ms"))
                .unwrap_or_else(|| "none".into())
        };
        for (i, k) in self.kills.iter().enumerate() {
            writeln!(
                f,
                "kill {:<2}      at {:.3} s: {} (primary of view {}, {} members; replaced by {}): first ack after {}, longest gap {} (from {} ms)",
                i + 1,
                k.at_s,
                k.victim,
                k.view,
                k.view_members,
                k.replacement,
                opt(k.time_to_first_ack_ms),
                opt(k.longest_gap_ms),
                k.longest_gap_from_ms
                    .map(|v| format!("{v:+.1}"))
                    .unwrap_or_else(|| "-".into()),
            )?;
        }
        let c = &self.check;
        writeln!(
            f,
            "check        {} acknowledged: {} lost, {} doubled, {} phantom; {} unknown outcome, {} of them landed; {}{}",
            c.acknowledged,
            c.lost,
            c.doubled,
            c.phantom,
            c.unknown_outcome,
            c.unknown_landed,
            if c.converged {
                "replicas converged"
            } else {
                "replicas NOT converged"
            },
            if c.complete { "" } else { "; check INCOMPLETE" },
        )?;
        for example in &c.examples {
            writeln!(f, "             {example}")?;
        }
        for problem in &self.problems {
            writeln!(f, "problem      {problem}")?;
        }
        write!(
            f,
            "verdict      {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill_at(at_s: f64) -> Kill {
        Kill {
            at_s,
            waited_ms: 0.0,
            victim: "replica-1".into(),
            view: 1,
            view_members: 3,
            replacement: "replica-4".into(),
            time_to_first_ack_ms: None,
            longest_gap_ms: None,
            longest_gap_from_ms: None,
        }
    }

    #[test]
    fn failover_is_measured_from_the_kill_to_the_next_ack_and_the_longest_gap_around_it() {
        // Acks every 1 ms until 10 ms, a kill at 10.5 ms, the next ack at 30 ms.
        let mut acks: Vec<u64> = (1..=10).map(|ms| ms * 1000).collect();
        acks.extend([30_000, 31_000, 32_000]);
        let mut kill = kill_at(0.0105);
        measure_failover(&mut kill, &acks, None, None);
        assert_eq!(kill.time_to_first_ack_ms, Some(19.5));
        assert_eq!(kill.longest_gap_ms, Some(20.0));
        assert_eq!(kill.longest_gap_from_ms, Some(-0.5));
    }

    #[test]
    fn gaps_outside_the_window_around_a_kill_do_not_count() {
        // A 3 s gap ending before kill - 1 s, then an ack every 10 ms.
        let mut acks = vec![0];
        acks.extend((0..700).map(|i| 3_000_000 + i * 10_000));
        let mut kill = kill_at(5.0);
        measure_failover(&mut kill, &acks, None, None);
        assert_eq!(kill.time_to_first_ack_ms, Some(10.0));
        assert_eq!(kill.longest_gap_ms, Some(10.0));
    }

    #[test]
    fn a_gap_spanning_the_next_kill_counts_for_that_kill_only() {
        // Kills at 1 s and 2 s; acks every 1 ms except a 100 ms gap from 2.0 s.
        let mut acks: Vec<u64> = (0..2000).map(|ms| ms * 1000).collect();
        acks.extend((2100..3000).map(|ms| ms * 1000));
        let mut first = kill_at(1.0);
        measure_failover(&mut first, &acks, None, Some(2_000_000));
        assert_eq!(first.longest_gap_ms, Some(1.0));
        let mut second = kill_at(2.0);
        measure_failover(&mut second, &acks, Some(1_000_000), None);
        assert_eq!(second.time_to_first_ack_ms, Some(100.0));
        assert_eq!(second.longest_gap_ms, Some(101.0));
        assert_eq!(second.longest_gap_from_ms, Some(-1.0));
    }

    #[test]
    fn no_ack_after_a_kill_leaves_its_time_to_first_ack_empty() {
        let mut kill = kill_at(1.0);
        measure_failover(&mut kill, &[100, 200], None, None);
        assert_eq!(kill.time_to_first_ack_ms, None);
        assert_eq!(kill.longest_gap_ms, None);
    }

    #[test]
    fn options_that_make_no_sense_are_refused() {
        let kill_one = LoadOptions {
            replicas: 1,
            kill_primary_every: Some(Duration::from_secs(1)),
            ..LoadOptions::default()
        };
        assert!(validate(&kill_one).is_err());
        let no_clients = LoadOptions {
            clients: 0,
            ..LoadOptions::default()
        };
        assert!(validate(&no_clients).is_err());
        assert!(validate(&LoadOptions::default()).is_ok());
    }
}
