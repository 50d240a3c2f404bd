//! A burst of tens of thousands of outstanding requests (issue 13), over real TLS sockets on
//! 127.0.0.1: a gateway sends 40,000 orders at once, each from a client id of its own, and
//! sends again what was refused as overloaded or went unanswered. Before the priority lane and
//! the front-end's forwarding window, such a burst made the front-end take live replicas for
//! dead (pings waited behind the requests) and resend every pending request each interval.
//! Now every order is placed exactly once, no replica is retired and no view changes.

use std::sync::Arc;
use std::time::Duration;

use just_hungry::burst::gateway_burst;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::local::{LocalCluster, TcpNetwork};
use just_hungry::orders::{OrderBook, OrderValidator};

const WAIT: Duration = Duration::from_secs(60);
const REQUESTS: usize = 40_000;
const POSTCODE: &str = "EC1A 1BB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_40000_outstanding_orders_is_placed_with_no_view_change() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let network = TcpNetwork::tls().expect("a development CA");
    let mut cluster = LocalCluster::<OrderBook, _>::on(network, Timing::default())
        .await
        .expect("registry");
    cluster
        .form(
            3,
            OrderBook::default(),
            Arc::new(OrderValidator::offline()),
            WAIT,
        )
        .await
        .expect("the cluster forms");
    let before = cluster.frontend_report().await.and_then(|r| r.view);

    let report = gateway_burst(&cluster, REQUESTS, POSTCODE, 30)
        .await
        .expect("the burst runs");
    println!("{report}");
    assert_eq!(report.placed, REQUESTS, "every order placed: {report}");
    assert_eq!(report.other, 0, "{report}");

    let frontend = cluster.frontend_report().await.expect("the front-end runs");
    assert_eq!(frontend.view, before, "no view change during the burst");
    assert_eq!(
        frontend.view.as_ref().map(|v| v.members().count()),
        Some(3),
        "no replica retired"
    );
    // Exactly once: the postcode holds one order per request, retries included.
    let client = cluster
        .order_client(ClientConfig::default())
        .await
        .expect("client");
    let (_, history) = client.order_history(POSTCODE).await.expect("the history");
    assert_eq!(history.len(), REQUESTS, "one order per request");
    cluster.shutdown().await;
}
