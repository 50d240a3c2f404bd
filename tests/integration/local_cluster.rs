//! The tokio runtime over the in-memory transport: the rules of docs/PROTOCOL.md, end to end.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use just_hungry::OrderClientError;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::{ClientConfig, ClientError};
use just_hungry::core::protocol::messages::ReplicaRole;
use just_hungry::local::{LocalCluster, Network, TcpNetwork};
use just_hungry::orders::{OrderBook, OrderError, OrderId, OrderValidator};

const WAIT: Duration = Duration::from_secs(10);

fn items(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Three replicas, a front-end, and every replica in the active view.
async fn three_replica_cluster() -> LocalCluster<OrderBook> {
    let validator = Arc::new(OrderValidator::offline());
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    for name in ["replica-1", "replica-2", "replica-3"] {
        cluster
            .start_replica(
                name,
                OrderBook::with_predefined_history(),
                validator.clone(),
            )
            .await
            .unwrap();
    }
    cluster.start_frontend().await.unwrap();
    cluster
        .wait_for_replicas("two backups", WAIT, |r| {
            r.values()
                .filter(|r| r.role == Some(ReplicaRole::Backup))
                .count()
                == 2
        })
        .await
        .expect("cluster forms");
    cluster
}

async fn all_order_ids(client: &just_hungry::OrderClient) -> Vec<OrderId> {
    client
        .all_histories()
        .await
        .expect("histories")
        .values()
        .flatten()
        .map(|o| o.id)
        .collect()
}

#[tokio::test]
async fn the_first_replica_found_becomes_primary_and_overwrites_the_others() {
    let cluster = three_replica_cluster().await;
    let reports = cluster.wait_for_convergence(WAIT).await.expect("converges");
    assert_eq!(reports["replica-1"].role, Some(ReplicaRole::Primary));
    cluster.shutdown().await;
}

#[tokio::test]
async fn killing_the_primary_loses_no_acknowledged_order_and_doubles_none() {
    let mut cluster = three_replica_cluster().await;
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            client
                .place_order("SW1A 1AA", items(&[&format!("pizza {i}")]))
                .await
                .unwrap(),
        );
    }
    assert!(cluster.crash_replica("replica-1").await);
    for i in 5..10 {
        acked.push(
            client
                .place_order("M1 1AE", items(&[&format!("curry {i}")]))
                .await
                .unwrap(),
        );
    }
    let ids = all_order_ids(&client).await;
    let unique: BTreeSet<OrderId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no order doubled");
    for id in &acked {
        assert!(unique.contains(id), "acknowledged order {id} lost");
    }
    let status = client.cluster_status().await.unwrap();
    assert_ne!(status.view.unwrap().primary.id.name, "replica-1");
    cluster
        .wait_for_convergence(WAIT)
        .await
        .expect("survivors converge");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_replica_started_later_receives_the_state_and_joins_as_backup() {
    let mut cluster = three_replica_cluster().await;
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let id = client
        .place_order("EH1 2NG", items(&["haggis"]))
        .await
        .unwrap();
    cluster
        .start_replica(
            "replica-4",
            OrderBook::empty(),
            Arc::new(OrderValidator::offline()),
        )
        .await
        .unwrap();
    cluster
        .wait_for_replicas("replica-4 to join", WAIT, |r| {
            r.get("replica-4").and_then(|r| r.role) == Some(ReplicaRole::Backup)
        })
        .await
        .unwrap();
    let reports = cluster.wait_for_convergence(WAIT).await.unwrap();
    assert_eq!(reports.len(), 4);
    // The newcomer now holds the order placed before it existed: kill the others and ask it.
    for name in ["replica-1", "replica-2", "replica-3"] {
        cluster.crash_replica(name).await;
        // One at a time, letting each view settle, so a member of the active view survives.
        cluster.wait_for_convergence(WAIT).await.unwrap();
    }
    let ids = all_order_ids(&client).await;
    assert!(ids.contains(&id));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_restarted_front_end_resumes_from_its_stored_view_and_clients_carry_on() {
    let mut cluster = three_replica_cluster().await;
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let before = client
        .place_order("CF10 3RB", items(&["kebab"]))
        .await
        .unwrap();
    let view_before = client.cluster_status().await.unwrap().view.unwrap();
    cluster.crash_frontend().await;
    cluster.start_frontend().await.unwrap();
    // The same client, never restarted, finds the new front-end through the registry.
    let after = client
        .place_order("CF10 3RB", items(&["chips"]))
        .await
        .unwrap();
    let status = client.cluster_status().await.unwrap();
    assert!(status.view.unwrap().number >= view_before.number);
    let ids = all_order_ids(&client).await;
    assert!(ids.contains(&before) && ids.contains(&after));
    cluster.shutdown().await;
}

#[tokio::test]
async fn with_every_member_of_the_last_active_view_dead_the_service_says_unavailable() {
    let mut cluster = three_replica_cluster().await;
    for name in ["replica-1", "replica-2", "replica-3"] {
        cluster.crash_replica(name).await;
    }
    // A newcomer with stale pre-defined data must never be promoted (docs/PROTOCOL.md, rule 3).
    cluster
        .start_replica(
            "replica-9",
            OrderBook::with_predefined_history(),
            Arc::new(OrderValidator::offline()),
        )
        .await
        .unwrap();
    let config = ClientConfig {
        deadline: Duration::from_secs(2),
        ..ClientConfig::default()
    };
    let client = cluster.order_client(config).await.unwrap();
    match client.place_order("SW1A 1AA", items(&["pizza"])).await {
        Err(OrderClientError::Client(ClientError::Unavailable { reason })) => {
            assert!(
                reason.contains("no member of the last active view"),
                "{reason}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let reports = cluster.replica_reports().await;
    assert_ne!(reports["replica-9"].role, Some(ReplicaRole::Primary));
    cluster.shutdown().await;
}

#[tokio::test]
async fn bad_orders_are_refused_with_a_clear_error_and_change_nothing() {
    bad_orders_are_refused(three_replica_cluster().await).await;
}

#[tokio::test]
async fn bad_orders_over_tcp_are_refused_with_a_clear_error_and_change_nothing() {
    let validator = Arc::new(OrderValidator::offline());
    let mut cluster =
        LocalCluster::<OrderBook, TcpNetwork>::on(TcpNetwork::tls().unwrap(), Timing::default())
            .await
            .unwrap();
    for name in ["replica-1", "replica-2", "replica-3"] {
        let initial = OrderBook::with_predefined_history();
        cluster
            .start_replica(name, initial, validator.clone())
            .await
            .unwrap();
    }
    cluster.start_frontend().await.unwrap();
    cluster
        .wait_for_replicas("two backups", WAIT, |r| {
            r.values()
                .filter(|r| r.role == Some(ReplicaRole::Backup))
                .count()
                == 2
        })
        .await
        .unwrap();
    bad_orders_are_refused(cluster).await;
}

async fn bad_orders_are_refused<N: Network>(mut cluster: LocalCluster<OrderBook, N>) {
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let before = cluster.wait_for_convergence(WAIT).await.unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("SW1A 1A", items(&["pizza"])),
        ("M1 1AE", vec![]),
        ("M1 1AE", vec!["x".to_string(); 10_000]),
        ("M1 1AE", vec!["y".repeat(1024 * 1024)]),
        ("M1 1AE", items(&["   "])),
    ];
    for (postcode, items) in cases {
        match client.place_order(postcode, items).await {
            Err(OrderClientError::Refused(e)) => assert!(!e.to_string().is_empty()),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let after = cluster.wait_for_convergence(WAIT).await.unwrap();
    assert_eq!(
        before["replica-1"].digest, after["replica-1"].digest,
        "refused orders changed nothing"
    );
    // And the service still serves.
    client
        .place_order("M1 1AE", items(&["naan"]))
        .await
        .unwrap();
    let refused = client.place_order("M1 1AE", vec![]).await;
    assert!(matches!(
        refused,
        Err(OrderClientError::Refused(OrderError::EmptyOrder))
    ));
    cluster.shutdown().await;
}
