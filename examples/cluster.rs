//! The whole Just Hungry system in one process, telling its story: on the in-memory transport
//! (`cargo run --example cluster`) or over TCP sockets on 127.0.0.1
//! (`cargo run --example cluster -- --transport tcp`). The story goes to stdout, the servers'
//! own logs to stderr (`2>/dev/null` or `RUST_LOG=warn` hides them). Exits 0 when every check
//! holds, 1 otherwise.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::local::{LocalCluster, Network, TcpNetwork};
use just_hungry::mem::MemNetwork;
use just_hungry::orders::{OrderBook, OrderId, OrderValidator};

/// Runs the Just Hungry story on one transport and checks it.
#[derive(clap::Parser)]
struct Args {
    /// The transport: in-process channels, or TCP sockets on 127.0.0.1.
    #[arg(long, value_enum, default_value = "mem")]
    transport: TransportKind,
    /// Instead of the story, a nemesis run from this seed: concurrent clients under crashes,
    /// partitions and message faults, then a check of the recorded history.
    #[arg(long)]
    nemesis: Option<u64>,
    /// Where to write the nemesis run's history (JSON lines; check it with the `check` example).
    #[arg(long, requires = "nemesis")]
    history: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TransportKind {
    Mem,
    Tcp,
}

const WAIT: Duration = Duration::from_secs(5);

fn say(step: &str) {
    println!("==> {step}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    just_hungry::cli::init_logging();
    if let Some(seed) = args.nemesis {
        let outcome = just_hungry::nemesis::run(seed, Default::default()).await?;
        say(&format!(
            "nemesis seed {seed}: {}",
            outcome.faults.join("; ")
        ));
        if let Some(path) = &args.history {
            std::fs::write(path, outcome.history.history().to_json_lines())?;
            say(&format!("history written to {}", path.display()));
        }
        print!("{}", outcome.report);
        for problem in &outcome.problems {
            eprintln!("CHECK FAILED: {problem}");
        }
        std::process::exit(if outcome.passed() { 0 } else { 1 });
    }
    let failures = match args.transport {
        TransportKind::Mem => {
            story(LocalCluster::on(MemNetwork::new(), Timing::default()).await?).await?
        }
        TransportKind::Tcp => {
            story(LocalCluster::on(TcpNetwork::tls()?, Timing::default()).await?).await?
        }
    };
    if failures.is_empty() {
        say("all checks passed");
        Ok(())
    } else {
        for f in &failures {
            eprintln!("CHECK FAILED: {f}");
        }
        std::process::exit(1);
    }
}

/// The story; returns the checks that failed.
async fn story<N: Network>(mut cluster: LocalCluster<OrderBook, N>) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let validator = Arc::new(OrderValidator::offline());
    say("registry (name server) up");
    for name in ["replica-1", "replica-2", "replica-3"] {
        cluster
            .start_replica(
                name,
                OrderBook::with_predefined_history(),
                validator.clone(),
            )
            .await?;
        say(&format!(
            "{name} up with its pre-defined order history ({} orders)",
            OrderBook::with_predefined_history().order_count()
        ));
    }
    cluster.start_frontend().await?;
    let reports = cluster
        .wait_for_replicas("a primary", WAIT, |r| r.values().any(|r| r.active))
        .await?;
    let primary = reports
        .iter()
        .find(|(_, r)| r.active)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    say(&format!(
        "front-end up: it elected {primary} as primary (the first replica found)"
    ));
    let reports = cluster.wait_for_convergence(WAIT).await?;
    say(&format!(
        "the primary overwrote the others' data with its state: {} replicas hold digest {:016x}",
        reports.len(),
        reports.values().next().and_then(|r| r.digest).unwrap_or(0)
    ));

    let config = ClientConfig::default();
    let alice = cluster.order_client(config).await?;
    let bob = cluster.order_client(config).await?;
    let mut acked: Vec<OrderId> = Vec::new();
    let orders = [
        (&alice, "SW1A 1AA", vec!["margherita pizza", "garlic bread"]),
        (
            &bob,
            "m1 1ae",
            vec!["chicken tikka masala", "pilau rice", "naan"],
        ),
        (&alice, "EH12NG", vec!["fish and chips"]),
        (&bob, "CF10 3RB", vec!["lamb doner kebab", "cola"]),
    ];
    for (client, postcode, items) in orders {
        let items: Vec<String> = items.into_iter().map(String::from).collect();
        let id = client.place_order(postcode, items.clone()).await?;
        say(&format!(
            "client placed order {id} for {postcode}: {}",
            items.join(", ")
        ));
        acked.push(id);
    }
    match alice.place_order("SW1A 1A", vec!["pizza".into()]).await {
        Err(e) => say(&format!("refused as it should be: {e}")),
        Ok(id) => failures.push(format!("an invalid postcode was accepted as {id}")),
    }
    match bob.place_order("M1 1AE", vec![]).await {
        Err(e) => say(&format!("refused as it should be: {e}")),
        Ok(id) => failures.push(format!("an empty order was accepted as {id}")),
    }

    say(&format!("killing the primary, {primary}"));
    cluster.crash_replica(&primary).await;
    let started = Instant::now();
    let id = alice
        .place_order("SW1A 1AA", vec!["pepperoni pizza".into()])
        .await?;
    say(&format!(
        "the client noticed nothing: order {id} placed {} ms after the kill",
        started.elapsed().as_millis()
    ));
    acked.push(id);
    let status = alice.cluster_status().await?;
    if let Some(view) = &status.view {
        say(&format!(
            "front-end elected a new primary: {} (view {})",
            view.primary.id.name, view.number.0
        ));
        if view.primary.id.name == primary {
            failures.push("the dead primary is still primary".into());
        }
    }
    let id = bob
        .place_order("BT1 5GS", vec!["ulster fry".into()])
        .await?;
    say(&format!("client placed order {id} for BT1 5GS"));
    acked.push(id);

    cluster
        .start_replica(
            "replica-4",
            OrderBook::with_predefined_history(),
            validator.clone(),
        )
        .await?;
    say("replica-4 up with its pre-defined data; joining at runtime");
    cluster
        .wait_for_replicas("replica-4 to join as a backup", WAIT, |r| {
            r.get("replica-4").and_then(|r| r.role)
                == Some(just_hungry::core::protocol::messages::ReplicaRole::Backup)
        })
        .await?;
    let id = alice
        .place_order("M1 1AE", vec!["veggie burger".into()])
        .await?;
    acked.push(id);
    say(&format!(
        "replica-4 received the state and is a backup; order {id} placed since"
    ));

    let histories = bob.all_histories().await?;
    say("order histories:");
    let mut seen = Vec::new();
    for (postcode, orders) in &histories {
        for order in orders {
            println!(
                "    {postcode:<9} {:<8} {}",
                order.id.to_string(),
                order.items.join(", ")
            );
            seen.push(order.id);
        }
    }
    let unique: BTreeSet<OrderId> = seen.iter().copied().collect();
    if unique.len() != seen.len() {
        failures.push("an order appears twice".into());
    }
    for id in &acked {
        if !unique.contains(id) {
            failures.push(format!("acknowledged order {id} is missing"));
        }
    }
    say(&format!(
        "{} acknowledged orders: none lost, none doubled",
        acked.len()
    ));

    let reports = cluster.wait_for_convergence(WAIT).await?;
    let digests: BTreeSet<Option<u64>> = reports.values().map(|r| r.digest).collect();
    for (name, r) in &reports {
        println!(
            "    {name:<10} {:?} applied op {} digest {:016x}",
            r.role
                .unwrap_or(just_hungry::core::protocol::messages::ReplicaRole::Idle),
            r.applied.0,
            r.digest.unwrap_or(0)
        );
    }
    if digests.len() == 1 && reports.len() == 3 {
        say("every live replica holds the same state (equal digests)");
    } else {
        failures.push(format!(
            "live replicas disagree: {} digests over {} replicas",
            digests.len(),
            reports.len()
        ));
    }
    cluster.shutdown().await;
    Ok(failures)
}
