//! The whole Just Hungry system in one process, telling its story: on the in-memory transport
//! (`cargo run --example cluster`) or over TCP sockets on 127.0.0.1
//! (`cargo run --example cluster -- --transport tcp`). The story goes to stdout, the servers'
//! own logs to stderr (`2>/dev/null` or `RUST_LOG=warn` hides them). Exits 0 when every check
//! holds, 1 otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use just_hungry::OrderClient;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::local::{LocalCluster, Network, TcpNetwork, TransportKind};
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

const WAIT: Duration = Duration::from_secs(5);

fn say(step: impl std::fmt::Display) {
    println!("==> {step}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    // The story is on stdout; the nodes' own log (view changes, elections, state transfer) is
    // at info on stderr with RUST_LOG=info, and only warnings by default, so that it does not
    // drown the story (issue 18).
    just_hungry::process::init_logging_with_default("warn");
    let failures = match (args.nemesis, args.transport) {
        (Some(seed), _) => {
            just_hungry::nemesis::run_and_tell(seed, args.history.as_deref()).await?
        }
        (None, TransportKind::Mem) => story(LocalCluster::new(Timing::default())).await?,
        (None, TransportKind::Tcp) => {
            story(LocalCluster::on(TcpNetwork::tls()?, Timing::default()).await?).await?
        }
    };
    for failure in &failures {
        eprintln!("CHECK FAILED: {failure}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
    say("all checks passed");
    Ok(())
}

/// Places an order and tells it.
async fn order(client: &OrderClient, postcode: &str, items: &[&str]) -> anyhow::Result<OrderId> {
    let id = client
        .place_order(postcode, items.iter().map(|i| i.to_string()).collect())
        .await?;
    say(format!(
        "client placed order {id} for {postcode}: {}",
        items.join(", ")
    ));
    Ok(id)
}

/// The story; returns the checks that failed.
async fn story<N: Network>(mut cluster: LocalCluster<OrderBook, N>) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let validator = Arc::new(OrderValidator::offline());
    let book = OrderBook::with_predefined_history;
    say("registry (name server) up");
    // replica-1 to replica-3, each with the pre-defined history, then the front-end.
    let view = cluster.form(3, book(), validator.clone(), WAIT).await?;
    let orders = book().order_count();
    say(format!(
        "3 replicas up, each with its pre-defined order history ({orders} orders)"
    ));
    let primary = view.primary.id.name;
    say(format!(
        "front-end up: it elected {primary} as primary (the first replica found)"
    ));
    say("the primary overwrote the others' data with its state: 3 replicas hold its digest");

    let alice = cluster.order_client(ClientConfig::default()).await?;
    let bob = cluster.order_client(ClientConfig::default()).await?;
    let mut acked = vec![
        order(&alice, "SW1A 1AA", &["margherita pizza", "garlic bread"]).await?,
        order(&bob, "m1 1ae", &["chicken tikka", "pilau rice", "naan"]).await?,
        order(&alice, "EH12NG", &["fish and chips"]).await?,
        order(&bob, "CF10 3RB", &["lamb doner kebab", "cola"]).await?,
    ];
    for (postcode, items, what) in [
        ("SW1A 1A", &["pizza"][..], "an invalid postcode"),
        ("M1 1AE", &[], "an empty order"),
    ] {
        match order(&alice, postcode, items).await {
            Err(e) => say(format!("refused as it should be: {e}")),
            Ok(id) => failures.push(format!("{what} was accepted as {id}")),
        }
    }

    say(format!("killing the primary, {primary}"));
    cluster.crash_replica(&primary).await;
    let killed = Instant::now();
    acked.push(order(&alice, "SW1A 1AA", &["pepperoni pizza"]).await?);
    say(format!(
        "the client noticed nothing: placed {} ms after the kill",
        killed.elapsed().as_millis()
    ));
    if let Some(view) = alice.cluster_status().await?.view {
        let new = &view.primary.id.name;
        say(format!(
            "front-end elected a new primary: {new} (view {})",
            view.number.0
        ));
        if *new == primary {
            failures.push("the dead primary is still primary".into());
        }
    }
    acked.push(order(&bob, "BT1 5GS", &["ulster fry"]).await?);

    cluster
        .start_replica("replica-4", book(), validator.clone())
        .await?;
    say("replica-4 up with its pre-defined data; joining at runtime");
    // An active view of three members holding the same state: replica-4 is a backup.
    cluster.wait_for_active_view(3, WAIT).await?;
    say("replica-4 received the state and is a backup");
    acked.push(order(&alice, "M1 1AE", &["veggie burger"]).await?);

    let audit = bob.audit(&acked).await?;
    say("order histories:");
    print!("{audit}");
    failures.extend(audit.problems());
    say(format!(
        "{} acknowledged orders: none lost, none doubled",
        acked.len()
    ));

    // Every member of the active view runs, with equal digests (or this fails).
    let reports = cluster.wait_for_convergence(WAIT).await?;
    reports.values().for_each(|report| println!("    {report}"));
    if reports.len() != 3 {
        failures.push(format!("{} replicas run, not 3", reports.len()));
    }
    say("every live replica holds the same state (equal digests)");
    cluster.shutdown().await;
    Ok(failures)
}
