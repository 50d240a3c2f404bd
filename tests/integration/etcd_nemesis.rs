//! The nemesis with etcd as the coordination backend (issue 15): the front-end's view in a
//! real three-member etcd cluster, front-end crashes and pauses among the faults, etcd members
//! killed (one, then two of three: no quorum) and restarted, and at the end the recorded
//! history checked and etcd's history of the view key audited. etcd must be installed (the
//! test fails with the install command otherwise; `.ci/run` installs it).
//!
//! etcd runs in real time, so these runs are on a multi-thread runtime with the real clock: a
//! seed fixes the nemesis' choices, not the interleaving. `JUST_HUNGRY_ETCD_NEMESIS_SEEDS=20
//! cargo test --test integration etcd_nemesis:: -- --nocapture` runs more seeds (default 2;
//! `.ci/run` runs 3).

use just_hungry::etcd::EtcdCluster;
use just_hungry::nemesis::{self, NemesisOptions};

#[test]
fn the_nemesis_with_the_view_in_etcd_loses_nothing_and_heals() {
    let seeds: u64 = crate::count_from_env("JUST_HUNGRY_ETCD_NEMESIS_SEEDS", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (mut operations, mut etcd_faults) = (0, 0);
    for seed in 0..seeds {
        let outcome = runtime.block_on(async {
            let mut etcd = EtcdCluster::start(3)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            nemesis::run_on_etcd(seed, NemesisOptions::default(), &mut etcd)
                .await
                .expect("the cluster starts")
        });
        println!("seed {seed}: {}", outcome.faults.join("; "));
        assert!(
            outcome.passed(),
            "seed {seed}\nfaults: {}\n{}problems: {:?}",
            outcome.faults.join("; "),
            outcome.report,
            outcome.problems
        );
        operations += outcome.report.operations;
        etcd_faults += outcome
            .faults
            .iter()
            .filter(|f| f.contains("etcd member"))
            .count();
    }
    println!("{seeds} seeds on etcd, {operations} operations checked, {etcd_faults} etcd faults");
    assert!(operations > 0, "no operation was checked");
}
