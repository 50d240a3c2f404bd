//! The load generator under primary kills: short runs (1.5 s of load) on each transport, which
//! must end with no acknowledged order lost or doubled and a failover measured for every kill.
//! No speed is asserted: these machines are shared, and the figures live in
//! `docs/PERFORMANCE.md`.

use std::time::Duration;

use just_hungry::loadgen::{self, LoadOptions, LoadReport, TransportKind};

fn options(transport: TransportKind) -> LoadOptions {
    LoadOptions {
        transport,
        replicas: 3,
        clients: 4,
        duration: Duration::from_millis(1500),
        kill_primary_every: Some(Duration::from_millis(500)),
        ..LoadOptions::default()
    }
}

fn assert_no_order_lost_or_doubled_and_every_kill_measured(report: &LoadReport) {
    println!("{report}");
    assert!(report.passed(), "the run failed:\n{report}");
    assert_eq!(
        report.check.lost, 0,
        "lost orders: {:?}",
        report.check.examples
    );
    assert_eq!(
        report.check.doubled, 0,
        "doubled: {:?}",
        report.check.examples
    );
    assert!(report.acknowledged > 0, "no order was acknowledged");
    assert_eq!(report.check.acknowledged, report.acknowledged);
    // Kills at 0.5 s and 1.0 s (each 500 ms after the previous one, while before 1.5 s).
    assert!(!report.kills.is_empty(), "no kill happened");
    for kill in &report.kills {
        assert!(kill.time_to_first_ack_ms.is_some(), "{kill:?}");
        assert!(kill.longest_gap_ms >= kill.time_to_first_ack_ms, "{kill:?}");
    }
    let json = serde_json::to_value(report).expect("the report serialises");
    assert_eq!(json["check"]["lost"], 0);
}

#[tokio::test]
async fn no_acknowledged_order_is_lost_or_doubled_when_the_primary_is_killed_in_memory() {
    let report = loadgen::run(options(TransportKind::Mem)).await.unwrap();
    assert_no_order_lost_or_doubled_and_every_kill_measured(&report);
}

#[tokio::test]
async fn no_acknowledged_order_is_lost_or_doubled_when_the_primary_is_killed_over_tcp() {
    let report = loadgen::run(options(TransportKind::Tcp)).await.unwrap();
    assert_no_order_lost_or_doubled_and_every_kill_measured(&report);
}

#[tokio::test]
async fn a_book_that_fills_is_reported_full_and_the_kills_after_it_are_still_measured() {
    // Room for the pre-defined history and a few hundred orders: full within the first kill.
    let max =
        just_hungry::orders::OrderBook::with_predefined_history().stored_bytes() as u64 + 20_000;
    let report = loadgen::run(LoadOptions {
        max_book_bytes: Some(max),
        ..options(TransportKind::Mem)
    })
    .await
    .unwrap();
    println!("{report}");
    let full_from = report.book_full_from_s.expect("the book filled");
    assert!(report.errors.contains_key("refused (order book full)"));
    assert!(
        report.passed(),
        "a full book is not a failed failover:\n{report}"
    );
    assert!(
        report.kills.iter().any(|k| k.at_s > full_from),
        "a kill after the book filled: {report}"
    );
    for kill in &report.kills {
        assert!(kill.time_to_first_ack_ms.is_some(), "{kill:?}");
    }
    assert!(report.to_string().contains("book full"));
    assert_eq!(report.check.lost, 0);
    assert_eq!(report.check.doubled, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_kills_on_a_multi_thread_runtime_checks_out() {
    let report = loadgen::run(LoadOptions {
        kill_primary_every: None,
        duration: Duration::from_millis(500),
        ..options(TransportKind::Mem)
    })
    .await
    .unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.kills.is_empty());
    assert_eq!(report.check.lost, 0);
    assert_eq!(report.check.doubled, 0);
}
