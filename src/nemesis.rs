//! Nemesis runs: concurrent clients place orders and read histories while a nemesis crashes
//! and restarts replicas (the primary too), partitions the primary, pauses and restarts the
//! front-end, adds replicas, and drops, duplicates, delays and reorders messages, while a bulk
//! reader reads a history of [`BULK_ORDERS`] orders again and again; then everything heals,
//! and the recorded history is checked ([`just_hungry_core::history::check`]) with the cluster's
//! convergence and liveness.
//!
//! Everything random is drawn from one seed: the faults (the in-memory network's generator),
//! the nemesis' choices, the clients' operations, incarnations and client ids. Under tokio's
//! paused clock on a current-thread runtime a run is a function of its seed, which is how the
//! tests replay a failure (`tests/integration/nemesis.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::orders::{OrderBook, OrderValidator};
use crate::postcode::normalise;
use crate::{OrderClient, OrderClientError};
use just_hungry_core::history::{self, Event, EventType, Function, Report, Value};
use just_hungry_core::ids::{Address, ClientId};
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::client::{ClientConfig, ClientError};
use just_hungry_core::rng::SeededRng;
use just_hungry_core::runtime::HistoryRecorder;
use just_hungry_core::state_machine::CommandValidator;
use just_hungry_core::storage::{Crash, FsyncPolicy, SimDisk};
use just_hungry_transport_mem::{Faults, MemNetwork};

use crate::local::LocalCluster;

/// The postcodes clients use (valid, distinct).
pub const POSTCODES: [&str; 10] = [
    "SW1A 1AA", "M1 1AE", "EH1 2NG", "CF10 3RB", "BT1 5GS", "B33 8TH", "CR2 6XH", "DN55 1PT",
    "W1A 0AX", "EC1A 1BB",
];

/// The orders of the bulk postcode that every replica starts with (beside the pre-defined
/// history), which a bulk reader reads whole, two pages at a time, throughout a run: a large
/// read under failovers, and a state transfer of several chunks at every join (issue 13).
pub const BULK_ORDERS: usize = 12_000;

/// The book every replica of a run starts with: the pre-defined history and the bulk postcode.
pub fn initial_book() -> OrderBook {
    crate::fixtures::merged(
        OrderBook::with_predefined_history(),
        crate::fixtures::synthetic_book(BULK_ORDERS, 1, 0xb0b),
    )
}

/// The bulk postcode of [`initial_book`] (none of [`POSTCODES`]).
pub fn bulk_postcode() -> String {
    crate::fixtures::synthetic_book(1, 1, 0xb0b)
        .histories()
        .keys()
        .next()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The size of a run.
#[derive(Clone, Copy, Debug)]
pub struct NemesisOptions {
    /// Replicas at the start.
    pub replicas: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations per client.
    pub operations: usize,
    /// Faults the nemesis injects.
    pub faults: usize,
    /// `None`: memory-only replicas. `Some(policy)`: durable replicas, each on a simulated
    /// disk of its own with this fsync policy, restarted from it; the faults then include
    /// `kill -9` of every replica and the front-end at once (a power loss of every machine
    /// under `always`) and their restart from disk (issue 16).
    pub storage: Option<FsyncPolicy>,
}

impl Default for NemesisOptions {
    fn default() -> Self {
        NemesisOptions {
            replicas: 3,
            clients: 8,
            operations: 25,
            faults: 16,
            storage: None,
        }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct NemesisOutcome {
    /// The seed.
    pub seed: u64,
    /// What the nemesis did, in order.
    pub faults: Vec<String>,
    /// The clients' history.
    pub history: HistoryRecorder,
    /// The checker's verdict on it.
    pub report: Report,
    /// Convergence and liveness problems (empty when fine).
    pub problems: Vec<String>,
    /// Whole reads of the bulk postcode that succeeded during the run.
    pub bulk_reads: usize,
}

impl NemesisOutcome {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.report.is_valid() && self.problems.is_empty()
    }

    /// What the run found wrong, one line each: the problems, and the checker's verdict when
    /// it is not valid (its anomalies are in [`NemesisOutcome::report`]). Empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let verdict = (!self.report.is_valid())
            .then(|| "the history is not linearizable (see the report)".to_owned());
        self.problems.iter().cloned().chain(verdict).collect()
    }
}

/// Timing tighter than the default so runs take little virtual time.
fn timing() -> Timing {
    Timing {
        ping_interval: Duration::from_millis(50),
        dead_after: Duration::from_millis(250),
        retransmit_interval: Duration::from_millis(50),
        backup_timeout: Duration::from_millis(250),
        autoclean: Duration::from_secs(2),
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        deadline: Duration::from_secs(3),
        retry_interval: Duration::from_millis(150),
    }
}

/// Places one order and records it in `recorder` as `process`; whether it was acknowledged.
pub async fn recorded_append(
    client: &OrderClient,
    process: u64,
    recorder: &HistoryRecorder,
    postcode: &str,
    item: String,
) -> bool {
    let key = normalise(postcode)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| postcode.to_owned());
    let invoked = recorder.now();
    let (id, result) = client.place_order_with_id(postcode, vec![item]).await;
    let completed = recorder.now();
    let Some(id) = id else { return false };
    let value = Value::Id(history::id_of(id));
    let kind = match &result {
        Ok(_) => EventType::Ok,
        Err(OrderClientError::Refused(_)) => EventType::Fail,
        Err(OrderClientError::Client(_)) => EventType::Info,
    };
    recorder.record(Event {
        process,
        kind: EventType::Invoke,
        f: Function::Append,
        key: key.clone(),
        value: value.clone(),
        time: invoked,
    });
    recorder.record(Event {
        process,
        kind,
        f: Function::Append,
        key,
        value,
        time: completed,
    });
    result.is_ok()
}

/// Reads one postcode's orders and records it in `recorder` as `process`; whether it
/// succeeded.
pub async fn recorded_read(
    client: &OrderClient,
    process: u64,
    recorder: &HistoryRecorder,
    postcode: &str,
) -> bool {
    let key = normalise(postcode)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| postcode.to_owned());
    let invoked = recorder.now();
    let result = client.order_history(postcode).await;
    let completed = recorder.now();
    let (kind, value) = match &result {
        Ok((_, orders)) => (
            EventType::Ok,
            Value::List(orders.iter().map(|o| history::id_of(o.id)).collect()),
        ),
        Err(OrderClientError::Client(ClientError::Timeout { .. })) => {
            (EventType::Info, Value::Null)
        }
        Err(_) => (EventType::Fail, Value::Null),
    };
    recorder.record(Event {
        process,
        kind: EventType::Invoke,
        f: Function::Read,
        key: key.clone(),
        value: Value::Null,
        time: invoked,
    });
    recorder.record(Event {
        process,
        kind,
        f: Function::Read,
        key,
        value,
        time: completed,
    });
    result.is_ok()
}

/// One etcd fault: with every member up, kill one; with one down, restart it or (one time in
/// three) kill a second, which takes etcd's quorum away; with two down, restart them both.
/// What was done, as the run tells it.
#[cfg(feature = "etcd")]
fn etcd_fault(
    etcd: &mut crate::etcd::EtcdCluster,
    down: &mut Vec<usize>,
    rng: &mut SeededRng,
) -> std::io::Result<String> {
    let up: Vec<usize> = (0..etcd.len()).filter(|i| !down.contains(i)).collect();
    let has_quorum = up.len() > etcd.len() / 2;
    if down.is_empty() || (has_quorum && rng.below(3) == 0) {
        let victim = up[rng.below(up.len() as u64) as usize];
        etcd.kill(victim);
        down.push(victim);
        let quorum = if up.len() - 1 > etcd.len() / 2 {
            ""
        } else {
            " (no quorum)"
        };
        Ok(format!("kill etcd member {victim}{quorum}"))
    } else {
        restart_etcd(etcd, down)
    }
}

/// Restarts the etcd members in `down` (emptying it). What was done, as the run tells it.
#[cfg(feature = "etcd")]
fn restart_etcd(
    etcd: &mut crate::etcd::EtcdCluster,
    down: &mut Vec<usize>,
) -> std::io::Result<String> {
    let restarted: Vec<String> = std::mem::take(down)
        .into_iter()
        .map(|i| etcd.restart(i).map(|()| i.to_string()))
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    let noun = if restarted.len() == 1 {
        "member"
    } else {
        "members"
    };
    Ok(format!("restart etcd {noun} {}", restarted.join(", ")))
}

/// etcd's history of the run's view key, audited: never back, never two views of one number.
#[cfg(feature = "etcd")]
async fn audit_views(etcd: &crate::etcd::EtcdCluster, seed: u64) -> Vec<String> {
    let client = match etcd.client() {
        Ok(client) => client,
        Err(e) => return vec![format!("no etcd client for the audit: {e}")],
    };
    let store = crate::etcd::EtcdViewStore::new(client, view_key(seed));
    match store.history().await {
        Ok(records) if records.is_empty() => vec!["etcd holds no view of the run".to_owned()],
        Ok(records) => crate::etcd::check_view_history(&records)
            .err()
            .map(|e| format!("etcd's history of the view: {e}"))
            .into_iter()
            .collect(),
        Err(e) => vec![format!("etcd's history of the view cannot be read: {e}")],
    }
}

/// Runs [`run`] with the default options and tells it on stdout (the faults, then the
/// checker's report); writes the history to `history` (JSON lines) if given. Returns what the
/// run found wrong ([`NemesisOutcome::failures`]): empty when it passed.
pub async fn run_and_tell(seed: u64, history: Option<&Path>) -> std::io::Result<Vec<String>> {
    let outcome = run(seed, NemesisOptions::default()).await?;
    println!("==> nemesis seed {seed}: {}", outcome.faults.join("; "));
    if let Some(path) = history {
        std::fs::write(path, outcome.history.history().to_json_lines())?;
        println!("==> history written to {}", path.display());
    }
    print!("{}", outcome.report);
    Ok(outcome.failures())
}

/// Runs one nemesis run on the in-memory network, in the current tokio runtime.
pub async fn run(seed: u64, options: NemesisOptions) -> std::io::Result<NemesisOutcome> {
    run_with(seed, options, None).await
}

/// Runs one nemesis run with etcd as the coordination backend: the front-end keeps its view
/// in `etcd` (an [`EtcdViewStore`](crate::etcd::EtcdViewStore) on a key of this seed, every
/// view change a compare-and-swap), so each front-end crash resumes from etcd. Beside the
/// faults of [`run`], the nemesis kills etcd members (one at a time, then two of three for a
/// while: no view change can be stored) and restarts them. At the end etcd's history of the
/// view key is audited ([`check_view_history`](crate::etcd::check_view_history)).
///
/// etcd runs in real time, so this needs a runtime that is not paused, and a seed replays the
/// nemesis' choices but not the exact interleaving. Names stay on the in-process registry.
#[cfg(feature = "etcd")]
pub async fn run_on_etcd(
    seed: u64,
    options: NemesisOptions,
    etcd: &mut crate::etcd::EtcdCluster,
) -> std::io::Result<NemesisOutcome> {
    run_with(seed, options, Some(etcd)).await
}

/// The etcd cluster of a run, when it has one (a type without values when the feature is off).
#[cfg(feature = "etcd")]
type Etcd<'a> = &'a mut crate::etcd::EtcdCluster;
#[cfg(not(feature = "etcd"))]
type Etcd<'a> = &'a mut std::convert::Infallible;

/// The key of a run's view in etcd.
#[cfg(feature = "etcd")]
fn view_key(seed: u64) -> String {
    format!("/just-hungry/nemesis/{seed}/view")
}

/// The simulated disks of a run's durable replicas, one per name, kept across restarts.
struct Disks {
    policy: Option<FsyncPolicy>,
    disks: BTreeMap<String, SimDisk>,
}

impl Disks {
    fn new(policy: Option<FsyncPolicy>) -> Self {
        Disks {
            policy,
            disks: BTreeMap::new(),
        }
    }

    /// Starts replica `name`: memory-only, or durable from its disk.
    async fn start(
        &mut self,
        cluster: &mut LocalCluster<OrderBook, MemNetwork>,
        name: &str,
        validator: &Arc<dyn CommandValidator<OrderBook>>,
    ) -> std::io::Result<()> {
        let validator = validator.clone();
        match self.policy {
            None => {
                cluster
                    .start_replica(name, initial_book(), validator)
                    .await?
            }
            Some(policy) => {
                let disk = self.disks.entry(name.to_owned()).or_default().clone();
                let dir = Path::new("/data");
                cluster
                    .start_durable_replica(
                        name,
                        initial_book(),
                        validator,
                        Arc::new(disk),
                        dir,
                        policy,
                    )
                    .await?
            }
        };
        Ok(())
    }

    /// Under `always`, every machine loses what it had not synced (with torn tails): what that
    /// policy promises to survive. Returns whether it did; other policies promise to survive
    /// the death of the processes only.
    fn power_loss(&self, rng: &mut SeededRng) -> bool {
        if self.policy != Some(FsyncPolicy::Always) {
            return false;
        }
        for disk in self.disks.values() {
            disk.crash(Crash::PowerLoss, rng);
        }
        true
    }
}

async fn run_with(
    seed: u64,
    options: NemesisOptions,
    etcd: Option<Etcd<'_>>,
) -> std::io::Result<NemesisOutcome> {
    let mut rng = SeededRng::new(seed);
    let network = MemNetwork::with_seed(seed);
    let mut cluster = LocalCluster::<OrderBook, MemNetwork>::on(network.clone(), timing()).await?;
    cluster.seed_ids(seed ^ 0x5eed);
    #[cfg(feature = "etcd")]
    if let Some(etcd) = etcd.as_deref() {
        let client = etcd.client().map_err(std::io::Error::other)?;
        let key = view_key(seed);
        cluster.use_view_stores(move || {
            Box::new(crate::etcd::EtcdViewStore::new(client.clone(), key.clone()))
        });
    }
    // Which etcd members the nemesis has killed (by index).
    #[cfg(feature = "etcd")]
    let (mut etcd, mut etcd_down) = (etcd, Vec::<usize>::new());
    let validator: Arc<dyn CommandValidator<OrderBook>> = Arc::new(OrderValidator::offline());
    let mut disks = Disks::new(options.storage);
    let mut next_replica = 1;
    for _ in 0..options.replicas {
        let name = format!("replica-{next_replica}");
        disks.start(&mut cluster, &name, &validator).await?;
        next_replica += 1;
    }
    cluster.start_frontend().await?;
    let recorder = HistoryRecorder::new(history::initial_ids(initial_book().ids_by_postcode()));
    let mut faults = Vec::new();
    let mut problems = Vec::new();
    if let Err(e) = cluster.wait_for_convergence(Duration::from_secs(10)).await {
        problems.push(format!("the cluster never formed: {e}"));
    }

    // The clients, each its own task with its own seeded choices.
    let mut tasks = Vec::new();
    for c in 0..options.clients {
        let client = cluster
            .order_client_with_id(client_config(), ClientId(c as u64 + 1))
            .await?;
        let recorder = recorder.clone();
        let mut choices = SeededRng::new(seed.wrapping_mul(31).wrapping_add(c as u64));
        let operations = options.operations;
        tasks.push(tokio::spawn(async move {
            for i in 0..operations {
                let postcode = POSTCODES[choices.below(POSTCODES.len() as u64) as usize];
                if choices.below(10) < 7 {
                    recorded_append(&client, c as u64, &recorder, postcode, format!("dish {i}"))
                        .await;
                } else {
                    recorded_read(&client, c as u64, &recorder, postcode).await;
                }
                tokio::time::sleep(Duration::from_millis(choices.below(40))).await;
            }
            client
        }));
    }

    // The bulk reader: the whole bulk history, again and again, until the clients are done.
    let bulk = bulk_postcode();
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let bulk_reader = {
        let client = cluster
            .order_client_with_id(client_config(), ClientId(options.clients as u64 + 2))
            .await?;
        let reading = reading.clone();
        let bulk = bulk.clone();
        let mut choices = SeededRng::new(seed ^ 0xb01c);
        tokio::spawn(async move {
            let (mut reads, mut wrong) = (0usize, Vec::new());
            while reading.load(std::sync::atomic::Ordering::Acquire) {
                if let Ok((_, orders)) = client.order_history(&bulk).await {
                    reads += 1;
                    if orders.len() != BULK_ORDERS {
                        wrong.push(orders.len());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100 + choices.below(200))).await;
            }
            (reads, wrong)
        })
    };
    faults.push(format!("bulk reads of {BULK_ORDERS} orders throughout"));

    // The nemesis. Message faults from the start: with instant delivery every backup would
    // hold every op the moment the primary sends it, and some bugs could not show.
    let message_faults = Faults {
        drop: 0.03,
        duplicate: 0.03,
        max_delay: Duration::from_millis(15),
    };
    network.set_faults(message_faults);
    faults.push("drop, duplicate and delay 3% / 3% / 15 ms".into());
    let mut crashed: Vec<String> = Vec::new();
    for _ in 0..options.faults {
        tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
        // Drawn only with durable replicas, so memory-only seeds replay unchanged.
        if options.storage.is_some() && rng.below(6) == 0 {
            let running = cluster.replica_names();
            for name in &running {
                cluster.crash_replica(name).await;
            }
            if cluster.frontend_running() {
                cluster.crash_frontend().await;
            }
            let lost = disks.power_loss(&mut rng);
            faults.push(format!(
                "kill -9 every replica and the front-end{}",
                if lost {
                    ", and a power loss of every machine"
                } else {
                    ""
                }
            ));
            for name in &running {
                disks.start(&mut cluster, name, &validator).await?;
            }
            cluster.start_frontend().await?;
            faults.push("restart them all, the replicas from their disks".into());
            continue;
        }
        let fe = cluster.frontend_report().await;
        let view = fe
            .as_ref()
            .filter(|r| r.active)
            .and_then(|r| r.view.clone());
        let running = cluster.replica_names();
        let live_members: Vec<String> = view
            .iter()
            .flat_map(|v| v.members().map(|m| m.id.name.clone()))
            .filter(|n| running.contains(n))
            .collect();
        let primary = view.as_ref().map(|v| v.primary.id.name.clone());
        // The etcd faults are drawn only with etcd, so in-memory seeds replay unchanged.
        let choices = if etcd.is_some() { 14 } else { 12 };
        match rng.below(choices) {
            #[cfg(feature = "etcd")]
            12 | 13 => {
                if let Some(etcd) = etcd.as_deref_mut() {
                    faults.push(etcd_fault(etcd, &mut etcd_down, &mut rng)?);
                }
            }
            10 | 11 if live_members.len() >= 3 => {
                // The primary and a backup at once: the survivors must hold every
                // acknowledged order (a commit needs every backup's acknowledgement).
                let backup = live_members
                    .iter()
                    .filter(|n| Some(*n) != primary.as_ref())
                    .nth(rng.below(2) as usize)
                    .cloned();
                for victim in primary.iter().chain(backup.iter()) {
                    if cluster.crash_replica(victim).await {
                        faults.push(format!("crash {victim}"));
                        crashed.push(victim.clone());
                    }
                }
            }
            0 | 1 if live_members.len() >= 2 => {
                let victim = if rng.below(2) == 0 {
                    primary.clone().unwrap_or_default()
                } else {
                    live_members[rng.below(live_members.len() as u64) as usize].clone()
                };
                if cluster.crash_replica(&victim).await {
                    faults.push(format!("crash {victim}"));
                    crashed.push(victim);
                }
            }
            2 if !crashed.is_empty() => {
                let name = crashed.remove(rng.below(crashed.len() as u64) as usize);
                disks.start(&mut cluster, &name, &validator).await?;
                faults.push(format!("restart {name}"));
            }
            3 => {
                if let (Some(p), Some(fe)) = (
                    primary.as_ref().and_then(|p| cluster.replica_address(p)),
                    cluster.frontend_address(),
                ) {
                    network.partition(&[p], &[fe]);
                    faults.push("partition the primary from the front-end".into());
                }
            }
            4 => {
                if let (Some(p), Some(v)) = (
                    primary.as_ref().and_then(|p| cluster.replica_address(p)),
                    view.as_ref(),
                ) {
                    let backups: Vec<Address> =
                        v.backups.iter().map(|b| b.address.clone()).collect();
                    network.partition(&[p], &backups);
                    faults.push("partition the primary from its backups".into());
                }
            }
            5 if cluster.frontend_running() && rng.below(2) == 0 => {
                cluster.crash_frontend().await;
                faults.push("crash the front-end".into());
            }
            5 => {
                // The detector asleep (a GC pause, a slow VM): it must not judge the replicas
                // by its own lost time when it wakes.
                let pause = Duration::from_millis(500 + rng.below(2500));
                if cluster.pause_frontend(pause).await {
                    faults.push(format!("pause the front-end for {pause:?}"));
                }
            }
            6 if !cluster.frontend_running() => {
                cluster.start_frontend().await?;
                faults.push("restart the front-end".into());
            }
            7 => {
                let name = format!("replica-{next_replica}");
                next_replica += 1;
                disks.start(&mut cluster, &name, &validator).await?;
                faults.push(format!("add {name}"));
            }
            8 => {
                network.set_faults(Faults {
                    drop: 0.1,
                    duplicate: 0.1,
                    max_delay: Duration::from_millis(40),
                });
                faults.push("drop, duplicate and delay 10% / 10% / 40 ms".into());
            }
            _ => {
                network.heal_partitions();
                faults.push("heal partitions".into());
            }
        }
    }

    // Heal, bring the front-end back, and let it settle.
    #[cfg(feature = "etcd")]
    if let Some(etcd) = etcd.as_deref_mut()
        && !etcd_down.is_empty()
    {
        faults.push(restart_etcd(etcd, &mut etcd_down)?);
    }
    network.heal();
    // Durable replicas still down are restarted from their disks, as an operator would after
    // an outage (under `batch` the front-end waits for every member of the last active view).
    if options.storage.is_some() {
        for name in crashed.drain(..) {
            disks.start(&mut cluster, &name, &validator).await?;
            faults.push(format!("restart {name}"));
        }
    }
    if !cluster.frontend_running() {
        cluster.start_frontend().await?;
        faults.push("restart the front-end".into());
    }
    faults.push("heal".into());
    let mut clients = Vec::new();
    for task in tasks {
        match task.await {
            Ok(client) => clients.push(client),
            Err(e) => problems.push(format!("a client task failed: {e}")),
        }
    }
    reading.store(false, std::sync::atomic::Ordering::Release);
    let mut bulk_reads = 0;
    match bulk_reader.await {
        Ok((_, wrong)) if !wrong.is_empty() => problems.push(format!(
            "bulk reads returned {wrong:?} orders instead of {BULK_ORDERS}"
        )),
        Ok((reads, _)) => bulk_reads = reads,
        Err(e) => problems.push(format!("the bulk reader failed: {e}")),
    }
    // Liveness after healing: one more order per client succeeds.
    for (c, client) in clients.iter().enumerate() {
        if !recorded_append(
            client,
            c as u64,
            &recorder,
            POSTCODES[c % POSTCODES.len()],
            "after healing".into(),
        )
        .await
        {
            problems.push(format!(
                "client {c}: an order after healing did not succeed"
            ));
        }
    }
    if let Err(e) = cluster.wait_for_convergence(Duration::from_secs(10)).await {
        problems.push(format!("no convergence after healing: {e}"));
    }
    // The final reads close the history.
    let closer = cluster
        .order_client_with_id(client_config(), ClientId(options.clients as u64 + 1))
        .await?;
    for postcode in POSTCODES {
        if !recorded_read(&closer, options.clients as u64, &recorder, postcode).await {
            problems.push(format!("the final read of {postcode} failed"));
        }
    }
    match closer.order_history(&bulk).await {
        Ok((_, orders)) if orders.len() == BULK_ORDERS => {}
        Ok((_, orders)) => problems.push(format!(
            "the final bulk read returned {} orders instead of {BULK_ORDERS}",
            orders.len()
        )),
        Err(e) => problems.push(format!("the final bulk read failed: {e}")),
    }
    #[cfg(feature = "etcd")]
    if let Some(etcd) = etcd.as_deref() {
        problems.extend(audit_views(etcd, seed).await);
    }
    let report = history::check(&recorder.history()).unwrap_or_else(|e| {
        problems.push(format!("the recorded history is malformed: {e}"));
        Report::default()
    });
    cluster.shutdown().await;
    Ok(NemesisOutcome {
        seed,
        faults,
        history: recorder,
        report,
        problems,
        bulk_reads,
    })
}
