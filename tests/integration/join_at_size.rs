//! Issue 13: a join at a large book, under steady writes, over real TLS sockets with the
//! default timing (`dead_after` 500 ms): the newcomer joins in one view change, no live
//! replica is retired and no election happens, and writes go on meanwhile. Before issue 12
//! the primary encoded the whole snapshot in one step of its loop and could miss its own
//! pings; the longest write stall is printed (a measurement, not asserted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use just_hungry::core::ids::ViewNumber;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::local::{LocalCluster, TcpNetwork};
use just_hungry::orders::{OrderBook, OrderValidator};

const WAIT: Duration = Duration::from_secs(60);

/// Orders preloaded in the primary: a 17 MB snapshot.
const ORDERS: usize = 500_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_at_half_a_million_orders_under_writes_changes_the_view_once() {
    let network = TcpNetwork::tls().expect("a development CA");
    let mut cluster = LocalCluster::<OrderBook, _>::on(network, Timing::default())
        .await
        .expect("registry");
    let validator = Arc::new(OrderValidator::offline());
    cluster
        .start_replica(
            "replica-1",
            just_hungry::fixtures::synthetic_book(ORDERS, 10_000, 7),
            validator.clone(),
        )
        .await
        .expect("replica-1");
    cluster.start_frontend().await.expect("front-end");
    let first = cluster
        .wait_for_active_view(1, WAIT)
        .await
        .expect("replica-1 serves");

    let writer = cluster
        .order_client(ClientConfig::default())
        .await
        .expect("client");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let start = Instant::now();
                writer
                    .place_order("EC1A 1BB", vec![format!("dish {i}")])
                    .await
                    .expect("every write is served during the join");
                latencies.push(start.elapsed());
                i += 1;
            }
            latencies
        })
    };
    let started = Instant::now();
    cluster
        .start_replica("replica-2", OrderBook::empty(), validator)
        .await
        .expect("replica-2");
    // The front-end's view only: a replica's report computes its digest on its own loop,
    // which at this size would stall the writes being measured.
    let joined = loop {
        if let Some(fe) = cluster.frontend_report().await
            && fe.active
            && let Some(view) = fe.view
            && view.members().count() == 2
        {
            break view;
        }
        assert!(started.elapsed() < WAIT, "replica-2 did not join");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let join_time = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut latencies = writes.await.expect("the writer");
    cluster
        .wait_for_active_view(2, WAIT)
        .await
        .expect("both hold the same state");

    assert_eq!(
        joined.number,
        ViewNumber(first.number.0 + 1),
        "one view change, the join: {joined}"
    );
    assert_eq!(joined.primary, first.primary, "no election");
    latencies.sort();
    println!(
        "joined at {ORDERS} orders in {join_time:?}; {} writes meanwhile: p50 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().expect("writes")
    );
    cluster.shutdown().await;
}
