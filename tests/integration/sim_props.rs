//! Property tests of the replication logic: random runs of the deterministic simulator
//! ([`just_hungry_core::sim`]) under crashes, restarts, partitions, drops, duplicates and
//! reordering, checked against every invariant of docs/PROTOCOL.md after every event and at the end.
//!
//! # Running
//!
//! - `cargo test --test integration sim_props::` runs [`DEFAULT_CASES`] cases of each
//!   property (a run is a few tens of milliseconds of CPU for about a minute of virtual time),
//!   so that the README's `cargo test --workspace` stays short on a first run (issue 18);
//!   `.ci/run` runs 256 (`PROPTEST_CASES=256`, about 40 s on two cores) and
//!   `PROPTEST_CASES=2000` runs 2000 cases of each property.
//! - A failing case of `random_actions_keep_every_invariant` is shrunk, printed (seed, cluster
//!   size, the actions as Rust source for a scenario test) and saved by proptest in
//!   `proptest-regressions/sim_props.txt`, which is replayed first on every
//!   later run: `cargo test --test integration sim_props::random_actions` replays it.
//! - A failing case of `seeded_runs_keep_every_invariant` prints a one-line command:
//!   `JUST_HUNGRY_SIM_SEED=123 cargo test --test integration sim_props::replay_seed`
//!   replays the run generated from seed 123 and prints its client history.
//! - `JUST_HUNGRY_SIM_LOG=1` (with an optional `RUST_LOG` filter) logs every action, client
//!   completion and protocol decision to the test output; without it nothing is logged.
//! - `JUST_HUNGRY_SIM_SWEEP=2000 cargo test --release --test integration
//!   sim_props::sweep_seeds -- --ignored` runs seeds 0..2000 and lists every failing one.

use std::time::Instant;

use just_hungry::orders::OrderBook;
use just_hungry_core::sim::KeyedLists;
use just_hungry_core::sim::{
    self, Action, Actions, FinalReport, SimConfig, Target, Violation, seeded_adversarial_run,
    seeded_durable_run, seeded_run,
};

/// The simulated cluster of these properties: replicas of the order book.
type Sim = just_hungry_core::sim::Sim<OrderBook>;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// Default cases per property when `PROPTEST_CASES` is not set: a quarter of what `.ci/run`
/// runs.
const DEFAULT_CASES: u32 = 64;

fn cases() -> u32 {
    crate::count_from_env("PROPTEST_CASES", DEFAULT_CASES)
}

fn init_logging() {
    if std::env::var_os("JUST_HUNGRY_SIM_LOG").is_some_and(|v| v != "0") {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,just_hungry_core::sim=debug".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .without_time()
            .try_init();
    }
}

/// One generated run: the seed of the simulator's own randomness (delays, drops...), the
/// cluster's size and the actions.
#[derive(Clone)]
struct Case {
    seed: u64,
    replicas: usize,
    clients: usize,
    protect_last_member: bool,
    actions: Actions,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Case {{ seed: {}, replicas: {}, clients: {}, protect_last_member: {}, actions: {:?} }}",
            self.seed, self.replicas, self.clients, self.protect_last_member, self.actions
        )
    }
}

impl Case {
    fn config(&self) -> SimConfig {
        SimConfig {
            replicas: self.replicas,
            clients: self.clients,
            protect_last_member: self.protect_last_member,
            ..SimConfig::default()
        }
    }
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::Frontend),
        any::<u8>().prop_map(Target::Replica),
        any::<u8>().prop_map(Target::Client),
    ]
}

/// One action; the first alternatives are what shrinking simplifies towards.
fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => Just(Action::Nop),
        30 => (1u16..=1500).prop_map(Action::Advance),
        25 => (any::<u8>(), 0u8..8).prop_map(|(client, target)| Action::ClientWrite { client, target }),
        10 => (any::<u8>(), 0u8..6).prop_map(|(client, key)| Action::ClientRead { client, key }),
        5 => Just(Action::Heal),
        4 => (0u16..=300).prop_map(Action::SetDrop),
        4 => (0u16..=300).prop_map(Action::SetDuplicate),
        3 => any::<u8>().prop_map(Action::CrashReplica),
        4 => any::<u8>().prop_map(Action::RestartReplica),
        2 => Just(Action::CrashPrimary),
        1 => Just(Action::CrashFrontend),
        2 => Just(Action::RestartFrontend),
        1 => Just(Action::AddReplica),
        2 => target().prop_map(Action::Isolate),
        2 => Just(Action::PartitionPrimaryFromBackups),
        1 => any::<u8>().prop_map(Action::Split),
        1 => (1u16..=400).prop_map(Action::SetMaxDelay),
        1 => (target(), target()).prop_map(|(a, b)| Action::CutLink(a, b)),
    ]
}

/// An action of a run with an adversary: one in four a forgery (docs/SECURITY.md), the
/// others as [`action`].
fn adversarial_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => action(),
        1 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(what, target, tweak)| Action::Forge { what, target, tweak }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    case_of(action())
}

fn adversarial_case() -> impl Strategy<Value = Case> {
    case_of(adversarial_action())
}

fn case_of(action: impl Strategy<Value = Action>) -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        3usize..=5,
        2usize..=4,
        prop::bool::weighted(0.75),
        prop::collection::vec(action, 50..=300),
    )
        .prop_map(
            |(seed, replicas, clients, protect_last_member, actions)| Case {
                seed,
                replicas,
                clients,
                protect_last_member,
                actions: Actions(actions),
            },
        )
}

/// Runs a case; on a violation, the message a human needs to reproduce and read it.
fn run_case(seed: u64, config: SimConfig, actions: &[Action]) -> Result<FinalReport, String> {
    run_case_with(seed, config, actions, |_| Ok(()))
}

/// As [`run_case`], then `after` checks the finished simulation.
fn run_case_with(
    seed: u64,
    config: SimConfig,
    actions: &[Action],
    after: impl FnOnce(&Sim) -> Result<(), String>,
) -> Result<FinalReport, String> {
    let mut sim = Sim::new(seed, config);
    let outcome = actions
        .iter()
        .try_for_each(|a| sim.apply(*a))
        .and_then(|()| sim.finish());
    let report = outcome.map_err(|violation| describe(&sim, &violation))?;
    after(&sim).map_err(|message| format!("{message}\n{}", describe_state(&sim)))?;
    Ok(report)
}

/// Whatever the adversary forged was refused or changed nothing: no invariant broke (checked
/// by the run), and every node that can tell a forgery from its sender did refuse some.
fn forgeries_were_refused(sim: &Sim) -> Result<(), String> {
    let stats = sim.network_stats();
    if stats.forged_delivered >= 20 && stats.refused == 0 {
        return Err(format!(
            "{} forgeries delivered and none refused",
            stats.forged_delivered
        ));
    }
    Ok(())
}

fn describe(sim: &Sim, violation: &Violation) -> String {
    format!("{violation}\n{}", describe_state(sim))
}

fn describe_state(sim: &Sim) -> String {
    let frontend = sim.frontend();
    let mut out = format!(
        "  seed {}, t={} ms, {} events; front-end: alive={} current={:?} last active={:?}\n",
        sim.seed(),
        sim.now().as_millis(),
        sim.events(),
        frontend.alive,
        frontend.current.map(|v| v.to_string()),
        frontend.last_active.map(|v| v.to_string()),
    );
    for r in sim.replicas() {
        out.push_str(&format!(
            "  {}: {:?} role={:?} view={:?} op={} orders={}\n",
            r.name,
            r.id.map(|id| id.to_string()),
            r.role,
            r.view.map(|v| v.number.0),
            r.applied.0,
            r.ids.len()
        ));
    }
    out
}

/// A failing case's message, with how to replay it (`filter` selects the property) and the
/// case as a scenario to paste into `sim_scenarios.rs`.
fn replay_message(message: &str, filter: &str, case: &Case) -> String {
    format!(
        "{message}\n  replay: `cargo test --test integration sim_props::{filter}` \
         (the shrunk case is saved in {REGRESSIONS} and replayed first); as a scenario:\n  \
         sim::run::<OrderBook>({}, SimConfig {{ replicas: {}, clients: {}, protect_last_member: {}, \
         ..SimConfig::default() }}, &{})",
        case.seed, case.replicas, case.clients, case.protect_last_member, case.actions
    )
}

/// Where failing cases are saved (relative to the package root, where `cargo test` runs) and
/// replayed from first on every later run.
const REGRESSIONS: &str = "proptest-regressions/sim_props.txt";

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        // A run is a few tens of milliseconds: shrink a 300-action case thoroughly.
        max_shrink_iters: 4096,
        ..Config::default()
    })]

    /// Every invariant of docs/PROTOCOL.md holds after every event of a random run, and at its end
    /// once faults stop.
    #[test]
    fn random_actions_keep_every_invariant(case in case()) {
        init_logging();
        if let Err(message) = run_case(case.seed, case.config(), &case.actions.0) {
            prop_assert!(false, "{}", replay_message(&message, "random_actions", &case));
        }
    }

    /// With an adversary on the network forging well-formed messages of every kind under the
    /// identities it holds (a client certificate, a replica certificate outside the cluster),
    /// every invariant of docs/PROTOCOL.md still holds after every event and at the end.
    #[test]
    fn an_adversary_breaks_no_invariant(case in adversarial_case()) {
        init_logging();
        if let Err(message) = run_case_with(case.seed, case.config(), &case.actions.0, forgeries_were_refused) {
            prop_assert!(false, "{}", replay_message(&message, "an_adversary", &case));
        }
    }
}

/// Snapshot chunks of the multi-chunk property: a snapshot of the simulator's order book (about
/// 1 KB) travels in a few dozen chunks, three in flight at a time, so chunks are lost,
/// duplicated and reordered and transfers span view changes, crashes and restarts.
const SMALL_CHUNK_BYTES: usize = 48;
const SMALL_TRANSFER_WINDOW: u32 = 3;

/// Runs the run generated from `seed`, its snapshots cut into `chunks` (bytes, chunks in
/// flight) when given; a failure says what broke and how to replay it.
fn run_seeded(seed: u64, chunks: Option<(usize, u32)>) -> Result<(), String> {
    let (config, actions) = seeded_run_with_chunks(seed, chunks);
    let replay = chunks.map_or_else(String::new, |(bytes, window)| {
        format!("JUST_HUNGRY_SIM_CHUNK_BYTES={bytes} JUST_HUNGRY_SIM_TRANSFER_WINDOW={window} ")
    });
    run_case(seed, config, &actions).map(|_| ()).map_err(|message| {
        format!(
            "{message}\n  replay: {replay}JUST_HUNGRY_SIM_SEED={seed} cargo test --test integration sim_props::replay_seed"
        )
    })
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        // A seed does not shrink into a simpler run of the same failure: report it as it is.
        max_shrink_iters: 0,
        ..Config::default()
    })]

    /// The same, for runs generated whole from one seed by the simulator's own generator, so a
    /// failure is replayed from one number.
    #[test]
    fn seeded_runs_keep_every_invariant(seed in any::<u64>()) {
        init_logging();
        if let Err(message) = run_seeded(seed, None) {
            prop_assert!(false, "{message}");
        }
    }

    /// The adversary's runs, generated whole from one seed
    /// (`JUST_HUNGRY_SIM_ADVERSARY=1 JUST_HUNGRY_SIM_SEED=N ... replay_seed` replays one).
    #[test]
    fn seeded_adversarial_runs_keep_every_invariant(seed in any::<u64>()) {
        init_logging();
        let (config, actions) = seeded_adversarial_run(seed);
        if let Err(message) = run_case_with(seed, config, &actions, forgeries_were_refused) {
            prop_assert!(false, "{message}\n  replay: JUST_HUNGRY_SIM_ADVERSARY=1 JUST_HUNGRY_SIM_SEED={seed} cargo test --test integration sim_props::replay_seed");
        }
    }

    /// Runs of durable replicas (issue 16), each on a simulated disk of its own with the fsync
    /// policy the seed picks: crashes of every replica at once, restarts from disk, torn
    /// tails, lost unsynced writes, full disks, failing syncs and flipped bits among the
    /// faults (`JUST_HUNGRY_SIM_DURABLE=1 JUST_HUNGRY_SIM_SEED=N ... replay_seed` replays one).
    #[test]
    fn seeded_durable_runs_keep_every_invariant(seed in any::<u64>()) {
        init_logging();
        let (config, actions) = seeded_durable_run(seed);
        if let Err(message) = run_case(seed, config, &actions) {
            prop_assert!(false, "{message}\n  replay: JUST_HUNGRY_SIM_DURABLE=1 JUST_HUNGRY_SIM_SEED={seed} cargo test --test integration sim_props::replay_seed");
        }
    }

    /// The same runs with every snapshot streamed in many small chunks.
    #[test]
    fn seeded_runs_with_multi_chunk_transfers_keep_every_invariant(seed in any::<u64>()) {
        init_logging();
        if let Err(message) = run_seeded(seed, Some((SMALL_CHUNK_BYTES, SMALL_TRANSFER_WINDOW))) {
            prop_assert!(false, "{message}");
        }
    }
}

/// `seeded_run(seed)`, its snapshots cut into `chunks` (bytes, chunks in flight) when given, the default transfer otherwise.
fn seeded_run_with_chunks(seed: u64, chunks: Option<(usize, u32)>) -> (SimConfig, Vec<Action>) {
    let (mut config, actions) = seeded_run(seed);
    if let Some((bytes, window)) = chunks {
        config.transfer = just_hungry_core::protocol::Transfer::new(bytes, window)
            .expect("valid chunks (JUST_HUNGRY_SIM_CHUNK_BYTES, JUST_HUNGRY_SIM_TRANSFER_WINDOW)");
    }
    (config, actions)
}

/// The chunks `replay_seed` and `sweep_seeds` cut snapshots into: `JUST_HUNGRY_SIM_CHUNK_BYTES`
/// bytes, `JUST_HUNGRY_SIM_TRANSFER_WINDOW` in flight, when the first is set.
fn chunks_from_env() -> Option<(usize, u32)> {
    fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
    }
    let bytes = var("JUST_HUNGRY_SIM_CHUNK_BYTES")?;
    let window = var("JUST_HUNGRY_SIM_TRANSFER_WINDOW")
        .unwrap_or(just_hungry_core::protocol::DEFAULT_TRANSFER_WINDOW);
    Some((bytes, window))
}

/// Replays the run generated from `JUST_HUNGRY_SIM_SEED` (a few fixed seeds when unset) and,
/// on failure, prints its client history as JSON lines.
#[test]
fn replay_seed() {
    init_logging();
    let seeds: Vec<u64> = match std::env::var("JUST_HUNGRY_SIM_SEED") {
        Ok(v) => vec![
            v.trim()
                .parse()
                .expect("JUST_HUNGRY_SIM_SEED must be a u64"),
        ],
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        let (config, actions) = if std::env::var_os("JUST_HUNGRY_SIM_ADVERSARY").is_some() {
            seeded_adversarial_run(seed)
        } else if std::env::var_os("JUST_HUNGRY_SIM_DURABLE").is_some() {
            seeded_durable_run(seed)
        } else {
            seeded_run_with_chunks(seed, chunks_from_env())
        };
        let started = Instant::now();
        let mut sim = Sim::new(seed, config.clone());
        let outcome = actions
            .iter()
            .try_for_each(|a| sim.apply(*a))
            .and_then(|()| sim.finish());
        match outcome {
            Ok(report) => eprintln!(
                "seed {seed}: ok in {:?} ({} replicas, {} clients, {} actions): {report:?}, {:?}",
                started.elapsed(),
                config.replicas,
                config.clients,
                actions.len(),
                sim.network_stats()
            ),
            Err(violation) => {
                eprintln!("{}", sim.history_json_lines());
                eprintln!("actions: {}", Actions(actions.clone()));
                panic!("seed {seed}: {}", describe(&sim, &violation));
            }
        }
    }
}

/// Runs seeds `0..JUST_HUNGRY_SIM_SWEEP` and lists every failing one (a tool, not a test:
/// ignored by default).
#[test]
#[ignore = "a tool: JUST_HUNGRY_SIM_SWEEP=N cargo test --test integration sim_props::sweep_seeds -- --ignored"]
fn sweep_seeds() {
    let n: u64 = crate::count_from_env("JUST_HUNGRY_SIM_SWEEP", 200);
    let start: u64 = crate::count_from_env("JUST_HUNGRY_SIM_SWEEP_FROM", 0);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut unavailable = 0;
    let mut unavailable_lost_data = 0;
    for seed in start..start + n {
        let (config, actions) = if std::env::var_os("JUST_HUNGRY_SIM_DURABLE").is_some() {
            seeded_durable_run(seed)
        } else {
            seeded_run_with_chunks(seed, chunks_from_env())
        };
        let protected = config.protect_last_member;
        let storage = config.storage;
        match sim::run::<OrderBook>(seed, config, &actions) {
            Ok(report) => {
                unavailable += usize::from(!report.available);
                // Protection spares the last member from crashes, not its data: with storage,
                // a crash of every replica and a flipped bit may still take the last active
                // view's data, and the run then rightly ends unavailable.
                let explained = storage.is_some() && report.directories_moved_aside > 0;
                unavailable_lost_data += usize::from(!report.available && explained);
                if protected && !report.available && !explained {
                    eprintln!(
                        "seed {seed}: unavailable at the end although the last member was protected (storage {storage:?}, no data directory lost)"
                    );
                }
            }
            Err(v) => {
                eprintln!("seed {seed}: {v}");
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "{n} seeds in {:?}: {} failures {failures:?}, {unavailable} ended unavailable \
         ({unavailable_lost_data} after a corrupt data directory was moved aside)",
        started.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty());
}

/// The simulator is generic over the service: seeded runs of [`KeyedLists`] (keys that hold
/// lists of ids and nothing else) keep every invariant too, adversary included.
#[test]
fn seeded_runs_of_another_service_keep_every_invariant() {
    let mut acknowledged = 0;
    for seed in 0..32u64 {
        let (config, actions) = if seed % 2 == 0 {
            seeded_run(seed)
        } else {
            seeded_adversarial_run(seed)
        };
        match sim::run::<KeyedLists>(seed, config, &actions) {
            Ok(report) => acknowledged += report.acknowledged,
            Err(v) => panic!("seed {seed}: {v}"),
        }
    }
    assert!(acknowledged > 0, "no write was acknowledged in 32 runs");
}
