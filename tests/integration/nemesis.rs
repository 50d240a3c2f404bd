//! Nemesis tests on the tokio runtime over the faulty in-memory transport: many seeds, each a
//! run of concurrent clients under crashes, restarts, partitions and message faults, checked
//! for linearizability, lost and doubled orders, convergence and liveness.
//!
//! `JUST_HUNGRY_NEMESIS_SEEDS=1000 cargo test --test integration nemesis::` runs more seeds
//! (default 30, so that a first `cargo test --workspace` stays short; `.ci/run` runs 100);
//! a failure prints its seed and the command that replays it:
//! `JUST_HUNGRY_NEMESIS_SEED=N cargo test --test integration nemesis::replay_seed -- --nocapture`.

use just_hungry::nemesis::{self, NemesisOptions, NemesisOutcome};

fn run_seed(seed: u64) -> NemesisOutcome {
    run_seed_with(seed, NemesisOptions::default())
}

fn run_seed_with(seed: u64, options: NemesisOptions) -> NemesisOutcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime
        .block_on(nemesis::run(seed, options))
        .expect("the cluster starts")
}

fn describe(outcome: &NemesisOutcome) -> String {
    format!(
        "seed {}\nfaults: {}\n{}problems: {:?}\nreplay: JUST_HUNGRY_NEMESIS_SEED={} cargo test --test integration nemesis::replay_seed -- --nocapture",
        outcome.seed,
        outcome.faults.join("; "),
        outcome.report,
        outcome.problems,
        outcome.seed
    )
}

#[test]
fn every_seed_is_linearizable_loses_nothing_and_heals() {
    let seeds: u64 = crate::count_from_env("JUST_HUNGRY_NEMESIS_SEEDS", 30);
    let (mut operations, mut bulk_reads) = (0, 0);
    for seed in 0..seeds {
        let outcome = run_seed(seed);
        assert!(outcome.passed(), "{}", describe(&outcome));
        operations += outcome.report.operations;
        bulk_reads += outcome.bulk_reads;
    }
    println!("{seeds} seeds, {operations} operations checked, {bulk_reads} bulk reads");
    assert!(
        bulk_reads >= seeds as usize,
        "the bulk reader read too little"
    );
}

/// Durable replicas (issue 16): among the faults, `kill -9` of every replica and the front-end
/// at once (with a power loss of every machine under `always`) and their restart from disk;
/// nothing acknowledged is lost or doubled, and the cluster heals
/// (`JUST_HUNGRY_NEMESIS_DURABLE_SEEDS=N` runs more seeds per policy, default 6; `.ci/run` runs
/// 20).
#[test]
fn durable_seeds_survive_the_loss_of_every_process() {
    use just_hungry::core::storage::{DEFAULT_BATCH_INTERVAL, FsyncPolicy};
    let seeds: u64 = crate::count_from_env("JUST_HUNGRY_NEMESIS_DURABLE_SEEDS", 6);
    let mut whole_outages = 0;
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Batch(DEFAULT_BATCH_INTERVAL),
    ] {
        for seed in 0..seeds {
            let options = NemesisOptions {
                storage: Some(policy),
                ..NemesisOptions::default()
            };
            let outcome = run_seed_with(seed, options);
            assert!(
                outcome.passed(),
                "JUST_HUNGRY_NEMESIS_FSYNC={policy} {}",
                describe(&outcome)
            );
            whole_outages += outcome
                .faults
                .iter()
                .filter(|f| f.starts_with("kill -9 every replica"))
                .count();
        }
    }
    println!("{whole_outages} outages of every process survived");
    assert!(
        whole_outages >= seeds as usize,
        "the nemesis killed everything too rarely"
    );
}

#[test]
fn replay_seed() {
    let Some(seed) = std::env::var("JUST_HUNGRY_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    if std::env::var_os("RUST_LOG").is_some() {
        just_hungry::process::init_logging();
    }
    // JUST_HUNGRY_NEMESIS_FSYNC=always (or batch, never) replays a durable seed.
    let storage = std::env::var("JUST_HUNGRY_NEMESIS_FSYNC").ok().map(|p| {
        p.parse()
            .expect("JUST_HUNGRY_NEMESIS_FSYNC: always, batch or never")
    });
    let outcome = run_seed_with(
        seed,
        NemesisOptions {
            storage,
            ..NemesisOptions::default()
        },
    );
    println!("{}", outcome.history.history().to_json_lines());
    println!("{}", describe(&outcome));
    assert!(outcome.passed());
}

#[test]
fn a_seed_replays_to_the_same_history() {
    let first = run_seed(7).history.history().to_json_lines();
    let second = run_seed(7).history.history().to_json_lines();
    assert_eq!(first, second);
}
