//! The real multi-process system over TCP on 127.0.0.1: the example binaries started as
//! processes, `kill -9` of the primary while orders flow, a late replica, a restarted
//! front-end; every acknowledged order must then be held exactly once by every live replica.
//!
//! The binaries are the facade's examples, which `cargo test` builds before running tests.
//! Every process is killed when the test ends, passing or failing ([`Processes`]' `Drop`).
//! Replicas check postcodes offline, except in the test of the binary's online flags, which
//! points them at local fakes of postcodes.io and getthedata.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::deployment::{Processes, WAIT, binary, client, free_fixed_port, wait_for};
use just_hungry::OrderClient;
use just_hungry::core::protocol::messages::{ClusterStatus, ReplicaRole};
use just_hungry::orders::{OrderBook, OrderId};
use just_hungry::tcp::TcpConfig;

pub(crate) fn primary(status: &ClusterStatus) -> String {
    status
        .view
        .as_ref()
        .map(|v| v.primary.id.name.clone())
        .unwrap_or_default()
}

pub(crate) fn members(status: &ClusterStatus) -> usize {
    status.view.as_ref().map_or(0, |v| v.backups.len() + 1)
}

pub(crate) fn live_member(status: &ClusterStatus, name: &str, role: ReplicaRole) -> bool {
    status
        .replicas
        .iter()
        .any(|r| r.id.name == name && r.alive && r.role == role)
}

/// Clients placing orders until told to stop, recording what was acknowledged.
fn start_load(
    clients: Vec<OrderClient>,
    acked: Arc<Mutex<Vec<OrderId>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let postcodes = ["SW1A 1AA", "M1 1AE", "EH1 2NG", "CF10 3RB"];
    clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let acked = acked.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let postcode = postcodes[(c + i) % postcodes.len()];
                    if let Ok(id) = client
                        .place_order(postcode, vec![format!("dish {c}-{i}")])
                        .await
                    {
                        acked.lock().unwrap().push(id);
                    }
                    i += 1;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_primary_and_a_frontend_restart_lose_and_double_nothing() {
    let mut procs = Processes::new();
    procs.start_registry();
    procs.start_frontend();
    let observer = client(&procs).await;
    procs.start_replica("replica-1");
    wait_for(&observer, "replica-1 to be primary", |s| {
        primary(s) == "replica-1"
    })
    .await;
    procs.start_replica("replica-2");
    procs.start_replica("replica-3");
    wait_for(&observer, "three members", |s| members(s) == 3).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(client(&procs).await);
    }
    let load = start_load(clients, acked.clone(), stop.clone());
    let wait_orders = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while acked.lock().unwrap().len() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "orders stalled below {n}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_orders(50).await;

    // kill -9 of the primary while orders flow.
    procs.kill("replica-1");
    let status = wait_for(&observer, "a new primary", |s| {
        primary(s) != "replica-1" && !primary(s).is_empty()
    })
    .await;
    let before = acked.lock().unwrap().len();
    wait_orders(before + 50).await;

    // A replica started later receives the state and joins.
    procs.start_replica("replica-4");
    wait_for(&observer, "replica-4 to join", |s| {
        live_member(s, "replica-4", ReplicaRole::Backup) && members(s) == 3
    })
    .await;

    // The front-end is killed and restarted from its state dir; clients carry on.
    procs.kill("frontend");
    let before = acked.lock().unwrap().len();
    procs.start_frontend();
    wait_orders(before + 50).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let acked: Vec<OrderId> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 150, "{} orders acknowledged", acked.len());
    let _ = status;

    // Every live replica holds every acknowledged order exactly once: read the histories from
    // each in turn, making each the primary by killing the one before.
    let mut checked = BTreeSet::new();
    loop {
        let status = wait_for(&observer, "an active view", |s| !primary(s).is_empty()).await;
        let p = primary(&status);
        let histories = observer.all_histories().await.expect("histories");
        let ids: Vec<OrderId> = histories.values().flatten().map(|o| o.id).collect();
        let unique: BTreeSet<OrderId> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{p} holds an order twice");
        for id in &acked {
            assert!(unique.contains(id), "{p} lacks acknowledged order {id}");
        }
        checked.insert(p.clone());
        if members(&status) == 1 {
            break;
        }
        procs.kill(&p);
        wait_for(&observer, "the next primary", |s| primary(s) != p).await;
    }
    assert_eq!(checked.len(), 3, "checked {checked:?}");
}

/// Failover time over TCP: from `kill -9` of the primary to the next acknowledged order, over
/// several runs, with mutual TLS (the default) and then in plaintext. A measurement, not a
/// check: `cargo build --release --examples && cargo test --release --test integration --
/// --ignored --nocapture processes::failover_time` (the test runs the example binaries; a
/// plain `cargo test` builds them, `--test integration` alone does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn failover_time_over_tcp() {
    println!("with mutual TLS:");
    let tls = failover_times(Processes::new()).await;
    println!("in plaintext (--insecure-plaintext):");
    let plaintext = failover_times(Processes::plaintext()).await;
    println!(
        "median failover: TLS {tls:?}, plaintext {plaintext:?}, TLS × plaintext {:.2}",
        tls.as_secs_f64() / plaintext.as_secs_f64()
    );
}

/// Issue 15: the same failover time with etcd as the coordination backend (two front-end
/// candidates, the view in etcd, names on leases) against the embedded one (registry, the
/// view in a file), in one run. A measurement: `cargo build --release --examples && cargo
/// test --release --test integration -- --ignored --nocapture processes::failover_time_on_etcd`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn failover_time_on_etcd() {
    println!("embedded (registry, the view in a file):");
    let embedded = failover_times(Processes::new()).await;
    println!("on etcd (three members; the view in etcd, names on leases):");
    let etcd = failover_times(Processes::on_etcd().await).await;
    println!(
        "median failover: embedded {embedded:?}, etcd {etcd:?}, etcd × embedded {:.2}",
        etcd.as_secs_f64() / embedded.as_secs_f64()
    );
}

/// Kills the primary of `procs`'s cluster nine times; prints each gap and returns the median.
async fn failover_times(mut procs: Processes) -> Duration {
    if procs.etcd.is_some() {
        for (name, port) in candidates() {
            procs.start_candidate(name, port);
        }
    } else {
        procs.start_registry();
        procs.start_frontend();
    }
    let observer = client(&procs).await;
    for i in 1..=3 {
        procs.start_replica(&format!("replica-{i}"));
    }
    wait_for(&observer, "three members", |s| members(s) == 3).await;
    let writer = client(&procs).await;
    let mut gaps = Vec::new();
    for run in 0..9 {
        let status = wait_for(&observer, "three members", |s| members(s) == 3).await;
        let p = primary(&status);
        writer
            .place_order("SW1A 1AA", vec!["warm-up".into()])
            .await
            .unwrap();
        let killed = std::time::Instant::now();
        procs.kill(&p);
        writer
            .place_order("SW1A 1AA", vec![format!("after kill {run}")])
            .await
            .unwrap();
        let gap = killed.elapsed();
        println!("run {run}: killed {p}, next order acknowledged after {gap:?}");
        gaps.push(gap);
        procs.start_replica(&format!("replica-{}", run + 4));
    }
    gaps.sort();
    println!(
        "median failover {:?} (min {:?}, max {:?})",
        gaps[gaps.len() / 2],
        gaps[0],
        gaps[gaps.len() - 1]
    );
    gaps[gaps.len() / 2]
}

/// The history of concurrent clients, recorded while replicas (the primary included) and the
/// front-end are killed with `kill -9` and restarted, is linearizable with nothing lost or
/// doubled (docs/PROTOCOL.md, invariant 6, over real processes and sockets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_recorded_under_kill_9_and_restarts_checks_out() {
    let mut procs = Processes::new();
    procs.start_registry();
    procs.start_frontend();
    let observer = client(&procs).await;
    for i in 1..=3 {
        procs.start_replica(&format!("replica-{i}"));
    }
    wait_for(&observer, "three members", |s| members(s) == 3).await;
    let load = RecordedLoad::start(&procs, 8).await;
    load.progress(40).await;
    for round in 0..3 {
        // kill -9 the primary, and restart a replica under its name.
        let status = wait_for(&observer, "an active view", |s| members(s) >= 2).await;
        let p = primary(&status);
        procs.kill(&p);
        load.progress(20).await;
        procs.start_replica(&format!("replica-{}", round + 4));
        if round == 1 {
            procs.kill("frontend");
            procs.start_frontend();
        }
        load.progress(20).await;
    }
    load.check(&procs, 100).await;
}

/// Issue 16: with `--data-dir`, `kill -9` of every replica and of the front-end at once under
/// load, then a restart of them all (the replicas from their directories, the front-end from
/// its state directory), loses no acknowledged order and doubles none: the recorded history of
/// concurrent clients checks out, orders acknowledged before the kill included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_every_process_under_load_loses_nothing_with_data_dirs() {
    for policy in ["always", "batch"] {
        let mut procs = Processes::new();
        procs.start_registry();
        procs.start_frontend();
        let observer = client(&procs).await;
        let names = ["replica-1", "replica-2", "replica-3"];
        for name in names {
            procs.start_durable_replica(name, policy);
        }
        wait_for(&observer, "three members", |s| members(s) == 3).await;
        let load = RecordedLoad::start(&procs, 8).await;
        load.progress(60).await;
        for name in names {
            procs.kill(name);
        }
        procs.kill("frontend");
        procs.start_frontend();
        for name in names {
            procs.start_durable_replica(name, policy);
        }
        // Served again only once the replicas are back from their disks (none of the new
        // incarnations is a member of the last active view: each stands in for its old self).
        load.progress(60).await;
        load.check(&procs, 120).await;
    }
}

/// A real full disk: the primary's data directory is a 512 KiB file system, which its log fills
/// under load. Its write fails with ENOSPC and is not retried: the replica exits non-zero
/// saying that its data directory failed and why ("No space left on device"), the front-end
/// fails over to a backup, orders go on, and the recorded history checks out: none of the
/// orders in flight when the disk filled was acknowledged and then lost, none doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_whose_disk_fills_up_stops_and_its_backups_serve_on_losing_nothing() {
    let mut procs = Processes::new();
    procs.start_registry();
    procs.start_frontend();
    let observer = client(&procs).await;
    procs.start_replica_on_a_small_disk("replica-1", 512 * 1024);
    wait_for(&observer, "replica-1 to be primary", |s| {
        primary(s) == "replica-1"
    })
    .await;
    for name in ["replica-2", "replica-3"] {
        procs.start_durable_replica(name, "always");
    }
    wait_for(&observer, "three members", |s| members(s) == 3).await;
    let load = RecordedLoad::start(&procs, 8).await;
    let status = procs.wait_exit("replica-1", Duration::from_secs(120)).await;
    assert!(!status.success(), "replica-1 exited with {status}");
    let log = std::fs::read_to_string(procs.log_of("replica-1")).expect("its log");
    assert!(
        log.contains("the data directory failed") && log.contains("No space left on device"),
        "replica-1 says why it stopped: {log}"
    );
    load.progress(60).await;
    let status = wait_for(&observer, "a new primary", |s| {
        !primary(s).is_empty() && primary(s) != "replica-1"
    })
    .await;
    assert_eq!(members(&status), 2, "{status:?}");
    load.check(&procs, 100).await;
}

/// Closed-loop clients appending orders and reading histories, every operation recorded
/// with its outcome for the history checker (`just_hungry_core::history`).
pub(crate) struct RecordedLoad {
    recorder: just_hungry_core::runtime::HistoryRecorder,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    clients: u64,
}

impl RecordedLoad {
    /// `clients` clients of `procs`' cluster, running until [`RecordedLoad::check`].
    pub(crate) async fn start(procs: &Processes, clients: u64) -> Self {
        use just_hungry::nemesis::{POSTCODES, recorded_append, recorded_read};
        // Every replica starts with the pre-defined history: the history declares it.
        let initial = OrderBook::with_predefined_history().ids_by_postcode();
        let recorder = just_hungry_core::runtime::HistoryRecorder::new(
            just_hungry_core::history::initial_ids(initial),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = client(procs).await;
            let (recorder, stop, acked) = (recorder.clone(), stop.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let postcode = POSTCODES[(c as usize * 7 + i * 3) % POSTCODES.len()];
                    if i % 4 == 3 {
                        recorded_read(&client, c, &recorder, postcode).await;
                    } else if recorded_append(&client, c, &recorder, postcode, format!("dish {i}"))
                        .await
                    {
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    i += 1;
                }
            }));
        }
        RecordedLoad {
            recorder,
            stop,
            acked,
            tasks,
            clients,
        }
    }

    /// Waits until `n` more orders are acknowledged; fails when they take longer than
    /// [`WAIT`].
    pub(crate) async fn progress(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let target = self.acked.load(std::sync::atomic::Ordering::Relaxed) + n;
        while self.acked.load(std::sync::atomic::Ordering::Relaxed) < target {
            assert!(tokio::time::Instant::now() < deadline, "orders stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients, reads every postcode once more and checks the whole history: no
    /// acknowledged order lost or doubled, every read consistent, at least `acknowledged`
    /// orders acknowledged.
    pub(crate) async fn check(self, procs: &Processes, acknowledged: usize) {
        use just_hungry::nemesis::{POSTCODES, recorded_read};
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let closer = client(procs).await;
        for postcode in POSTCODES {
            assert!(
                recorded_read(&closer, self.clients, &self.recorder, postcode).await,
                "final read of {postcode}"
            );
        }
        let report = just_hungry_core::history::check(&self.recorder.history())
            .expect("a well-formed history");
        assert!(report.is_valid(), "{report}");
        assert!(report.acknowledged >= acknowledged, "{report}");
    }
}

/// A registry, a front-end and one replica started with `flags`, serving as primary.
async fn one_replica_cluster(flags: &[&str]) -> (Processes, OrderClient) {
    let mut procs = Processes::new();
    procs.start_registry();
    procs.start_frontend();
    let client = client(&procs).await;
    procs.start_replica_with("replica-1", flags);
    wait_for(&client, "replica-1 to be primary", |s| {
        primary(s) == "replica-1"
    })
    .await;
    (procs, client)
}

/// The replica binary's postcode flags reach its validator: `--validator online` against local
/// fakes of both directories. A live postcode is accepted, a missing one is refused with the
/// directory's reason; with neither directory reachable the default policy refuses with
/// "cannot validate now", and `--when-unreachable accept-unverified` accepts the order on the
/// format check, marked unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_binary_validates_postcodes_with_its_online_flags() {
    use crate::support::{FakeServer, Postcodes, unreachable_url};
    use just_hungry::OrderClientError;
    use just_hungry::orders::OrderError;
    use just_hungry::postcode::PostcodeError;

    let data = Postcodes::new().live(&["SW1A 2AA", "EH1 1YZ"]);
    let pio = FakeServer::postcodes_io(data.clone()).await;
    let gtd = FakeServer::getthedata(data).await;
    let down = unreachable_url().await;
    let online = |pio: &str, gtd: &str| {
        let flags = ["--validator", "online", "--postcodes-io-url", pio];
        let more = ["--getthedata-url", gtd, "--validation-timeout", "2s"];
        flags
            .into_iter()
            .chain(more)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let items = || vec!["Fish and chips".to_owned()];

    let flags = online(&pio.url(), &gtd.url());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (procs, client) = one_replica_cluster(&flags).await;
    client
        .place_order("sw1a 2aa", items())
        .await
        .expect("a live postcode is accepted");
    match client.place_order("SW1A 9ZZ", items()).await {
        Err(OrderClientError::Refused(OrderError::InvalidPostcode(e))) => assert_eq!(
            e.to_string(),
            "postcode SW1A 9ZZ not found: please check it and try again"
        ),
        other => panic!("expected a not-found refusal, got {other:?}"),
    }
    assert_eq!((pio.requests(), gtd.requests()), (2, 0));
    drop(procs);

    // Neither directory reachable: the default policy refuses and stores nothing.
    let flags = online(&down, &down);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (procs, client) = one_replica_cluster(&flags).await;
    match client.place_order("EH1 1YZ", items()).await {
        Err(OrderClientError::Refused(OrderError::InvalidPostcode(
            PostcodeError::Unreachable { .. },
        ))) => {}
        other => panic!("expected a cannot-validate-now refusal, got {other:?}"),
    }
    let (_, orders) = client.order_history("EH1 1YZ").await.expect("history");
    assert!(orders.is_empty(), "{orders:?}");
    drop(procs);

    // The same outage under accept-unverified: accepted, and stored marked unverified.
    let mut flags = flags;
    flags.extend(["--when-unreachable", "accept-unverified"]);
    let (_procs, client) = one_replica_cluster(&flags).await;
    let id = client
        .place_order("EH1 1YZ", items())
        .await
        .expect("accepted on the format check");
    let (_, orders) = client.order_history("EH1 1YZ").await.expect("history");
    let order = orders.iter().find(|o| o.id == id).expect("stored");
    assert!(order.unverified, "{order:?}");
}

/// The client binary reads a history longer than a TCP frame page by page: `--json` prints
/// one object whose `orders` array holds every order, the text mode a line per order and the
/// count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_binary_prints_a_history_longer_than_a_frame() {
    use just_hungry::orders::{MAX_ITEM_NAME_BYTES, MAX_ITEMS_PER_ORDER};
    const POSTCODE: &str = "B33 8TH";
    let (procs, client) = one_replica_cluster(&["--validator", "offline"]).await;
    let frame = TcpConfig::default().max_frame_bytes;
    let order_bytes = MAX_ITEMS_PER_ORDER * (MAX_ITEM_NAME_BYTES + 1);
    let orders = (frame * 3 / 2).div_ceil(order_bytes);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for n in (w..orders).step_by(8) {
                    let items = (0..MAX_ITEMS_PER_ORDER)
                        .map(|i| {
                            format!(
                                "{:x<width$}",
                                format!("o{n} i{i} "),
                                width = MAX_ITEM_NAME_BYTES
                            )
                        })
                        .collect();
                    client.place_order(POSTCODE, items).await.expect("an order");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let tls_dir = procs.tls_dir.clone().expect("TLS");
    let run = |json: bool| {
        let mut command = Command::new(binary("client"));
        command
            .env("JUST_HUNGRY_REGISTRY", &procs.registry)
            .env("JUST_HUNGRY_TLS_DIR", &tls_dir)
            .env("RUST_LOG", "warn")
            .args(["--name", "test-client"]);
        if json {
            command.arg("--json");
        }
        let output = command
            .args(["history", POSTCODE])
            .output()
            .expect("the client runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let json: serde_json::Value = serde_json::from_str(&run(true)).expect("one JSON object");
    assert_eq!(json["ok"], true);
    assert_eq!(json["postcode"], POSTCODE);
    assert_eq!(json["orders"].as_array().expect("an array").len(), orders);
    let text = run(false);
    assert!(text.len() > frame, "{} bytes", text.len());
    assert_eq!(text.lines().filter(|l| l.starts_with("  ")).count(), orders);
    assert_eq!(
        text.lines().last(),
        Some(format!("{POSTCODE}: {orders} order(s)").as_str())
    );
    drop(procs);
}

/// Issue 13: a front-end paused for 3 s (SIGSTOP, as a GC pause or a slow VM would) retires no
/// replica when it resumes, and no election happens: it notices that it was the one asleep
/// and judges the replicas on the time it was running. (Before, it woke, took the first
/// replica's queued ping, found the others silent for 3 s and shrank the view to one member.)
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_paused_for_3_s_retires_nobody_when_it_resumes() {
    let mut procs = Processes::new();
    procs.start_registry();
    procs.start_frontend();
    let client = client(&procs).await;
    for name in ["replica-1", "replica-2", "replica-3"] {
        procs.start_replica(name);
    }
    let before = wait_for(&client, "a view of three members", |s| members(s) == 3).await;
    client
        .place_order("SW1A 1AA", vec!["before the pause".into()])
        .await
        .expect("an order before the pause");
    procs.signal("frontend", libc::SIGSTOP);
    // The fault itself lasts 3 s; nothing is awaited here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    procs.signal("frontend", libc::SIGCONT);
    // An order acknowledged after the resume: the front-end has run its detector by then.
    client
        .place_order("SW1A 1AA", vec!["after the pause".into()])
        .await
        .expect("an order after the pause");
    let after = wait_for(&client, "the status after the pause", |_| true).await;
    assert_eq!(
        after.view, before.view,
        "the same view after the pause: nobody retired, no election"
    );
    assert!(after.replicas.iter().all(|r| r.alive), "{after:?}");
}

/// Issue 13: a front-end that cannot store its view (here its temporary file's path is taken
/// by a directory; a full or read-only disk fails the same call) exits non-zero and says why,
/// so a supervisor restarts it or alerts, instead of living on without serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_that_cannot_store_its_view_exits_non_zero_with_the_reason() {
    let mut procs = Processes::new();
    procs.start_registry();
    std::fs::create_dir_all(procs.state_dir.join("view.tmp").join("taken")).expect("a directory");
    let dir = procs.state_dir.to_string_lossy().into_owned();
    procs.spawn_with_stderr(
        "frontend",
        "frontend",
        &["--state-dir", &dir],
        Stdio::piped(),
    );
    // A replica makes the front-end install (and so store) its first view.
    procs.start_replica("replica-1");
    let status = procs.wait_exit("frontend", WAIT).await;
    assert!(!status.success(), "exits non-zero: {status}");
    let mut stderr = String::new();
    let child = procs.children.get_mut("frontend").expect("started");
    std::io::Read::read_to_string(child.stderr.as_mut().expect("piped"), &mut stderr)
        .expect("its standard error");
    assert!(
        stderr.contains("cannot persist the view") && stderr.contains("view.tmp"),
        "says why: {stderr}"
    );
}

/// Issue 13: a replica started on a port still held (an earlier one with the same `--id`
/// still running) exits non-zero, names the port, and says what to do.
#[test]
fn a_replica_on_a_port_still_held_says_so_and_what_to_do() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let listen = held.local_addr().expect("its address").to_string();
    let output = Command::new(binary("replica"))
        .args([
            "--insecure-plaintext",
            "--id",
            "replica-1",
            "--listen",
            &listen,
        ])
        .args(["--validator", "offline", "--registry", "127.0.0.1:1"])
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("the replica ran");
    assert!(!output.status.success(), "exits non-zero");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&listen) && stderr.contains("another --listen"),
        "names the port and what to do: {stderr}"
    );
}

/// Issue 13: with `--json`, a usage error is JSON too (and exit status 2), so a script that
/// parses the output never meets clap's text.
#[test]
fn a_usage_error_under_json_is_a_json_object_and_exit_2() {
    let output = Command::new(binary("client"))
        .args(["--json", "order"])
        .stdin(Stdio::null())
        .output()
        .expect("the client ran");
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"], "usage");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("POSTCODE")),
        "{json}"
    );
}

/// Issue 13: the interactive client reports a line that is not UTF-8 and carries on with the
/// next one, instead of ending there.
#[test]
fn the_shell_reports_a_line_that_is_not_utf8_and_carries_on() {
    use std::io::Write;
    let mut child = Command::new(binary("client"))
        .args(["--insecure-plaintext", "--registry", "127.0.0.1:1"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the client");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"\xff\xfe\nhelp\n")
        .expect("input");
    let output = child.wait_with_output().expect("the client ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("could not be read"), "{stdout}");
    // The help once at start, once for the line after the bad one.
    assert_eq!(stdout.matches("show this").count(), 2, "{stdout}");
}

/// The front-end candidates of the etcd tests, each on a port of its own so that the address
/// in the front-end's key names the process.
fn candidates() -> [(&'static str, u16); 2] {
    [
        ("frontend-a", free_fixed_port()),
        ("frontend-b", free_fixed_port()),
    ]
}

/// etcd (three members), two front-end candidates and three replicas, all processes, the view
/// active with three members.
async fn deployment_on_etcd(candidates: &[(&str, u16)]) -> Processes {
    let mut procs = Processes::on_etcd().await;
    for (name, port) in candidates {
        procs.start_candidate(name, *port);
    }
    let observer = client(&procs).await;
    for i in 1..=3 {
        procs.start_replica(&format!("replica-{i}"));
    }
    wait_for(&observer, "three members", |s| members(s) == 3).await;
    procs
}

/// The candidate whose address the front-end's key holds.
async fn active_candidate(
    procs: &Processes,
    candidates: &[(&'static str, u16)],
) -> (&'static str, u16) {
    let active = procs.active_frontend().await;
    *candidates
        .iter()
        .find(|(_, port)| active == format!("127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("the key holds {active}, none of {candidates:?}"))
}

/// Issue 15: `kill -9` of the active front-end's process under load, twice: the standby
/// takes over (the killed one comes back as a standby), and the recorded history checks out:
/// no acknowledged order lost or doubled, every read consistent. Prints the takeover time
/// (the kill to the next acknowledged order) for docs/PERFORMANCE.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_active_front_end_on_etcd_loses_and_doubles_nothing() {
    let candidates = candidates();
    let mut procs = deployment_on_etcd(&candidates).await;
    let load = RecordedLoad::start(&procs, 8).await;
    load.progress(40).await;
    let mut takeovers = Vec::new();
    for _ in 0..2 {
        let (name, port) = active_candidate(&procs, &candidates).await;
        procs.kill(name);
        let killed = std::time::Instant::now();
        load.progress(1).await;
        takeovers.push(killed.elapsed());
        load.progress(40).await;
        assert_ne!(active_candidate(&procs, &candidates).await.0, name);
        procs.start_candidate(name, port);
    }
    eprintln!("front-end takeover after kill -9 (to the next acknowledged order): {takeovers:?}");
    load.check(&procs, 100).await;
}

/// Issue 15: the active front-end's process stopped (`SIGSTOP`) past its lease: the standby
/// takes over while the stopped one still believes it is active; resumed (`SIGCONT`), it
/// finds its lease gone and steps down. The recorded history checks out, and etcd's history
/// of the view key never goes back nor holds two views of one number.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_stopped_past_its_lease_on_etcd_steps_down_and_loses_nothing() {
    use just_hungry::etcd::{DEFAULT_VIEW_KEY, EtcdViewStore, check_view_history};
    let candidates = candidates();
    let procs = deployment_on_etcd(&candidates).await;
    let load = RecordedLoad::start(&procs, 8).await;
    load.progress(40).await;
    let (stopped, _) = active_candidate(&procs, &candidates).await;
    procs.signal(stopped, libc::SIGSTOP);
    let paused = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + WAIT;
    while active_candidate(&procs, &candidates).await.0 == stopped {
        assert!(tokio::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The other serves while this one is stopped.
    load.progress(40).await;
    // The fault itself lasts 5 s (past the 2 s lease); nothing is awaited here.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(paused.elapsed())).await;
    procs.signal(stopped, libc::SIGCONT);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = std::fs::read_to_string(procs.log_of(stopped)).unwrap_or_default();
        if log.contains("stepped down") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resumed front-end did not step down; its log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.progress(40).await;
    assert_ne!(active_candidate(&procs, &candidates).await.0, stopped);
    load.check(&procs, 100).await;
    let records = EtcdViewStore::new(procs.etcd_client(), DEFAULT_VIEW_KEY)
        .history()
        .await
        .expect("etcd's history of the view");
    check_view_history(&records).unwrap_or_else(|e| panic!("{e}: {records:?}"));
}
