//! etcd as the coordination backend (issue 15), against a real three-member etcd cluster on
//! loopback ports (`just_hungry::etcd::EtcdCluster`). etcd must be installed: a missing etcd
//! fails these tests with the install command (`apt-get install -y etcd-server`), it does
//! not skip them; `.ci/run` installs it.

use std::sync::Arc;
use std::time::Duration;

use just_hungry::core::ids::{Address, Member, ReplicaId, View, ViewNumber};
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::view_store::ViewRecord;
use just_hungry::core::runtime::view_store::{ViewStore, ViewStoreError};
use just_hungry::etcd::{EtcdClient, EtcdCluster, EtcdViewStore, Expected, Swap};
use just_hungry::local::LocalCluster;
use just_hungry::orders::{OrderBook, OrderValidator};

const WAIT: Duration = Duration::from_secs(20);

async fn etcd(members: usize) -> EtcdCluster {
    match EtcdCluster::start(members).await {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

fn record(n: u64, primary: &str) -> ViewRecord {
    let view = View {
        number: ViewNumber(n),
        primary: Member {
            id: ReplicaId::new(primary, 7),
            address: Address::new(primary),
        },
        backups: vec![],
    };
    ViewRecord {
        current: view.clone(),
        current_active: true,
        last_active: Some(view),
    }
}

/// Polls `check` every 20 ms until it holds, for up to `WAIT`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failed_transaction_has_no_succeeded_field_and_the_client_reads_it_as_failed() {
    let cluster = etcd(1).await;
    let client = cluster.client().unwrap();
    assert_eq!(
        client
            .compare_and_swap(b"k", Expected::Absent, b"v1", None)
            .await
            .unwrap(),
        Swap::Swapped { revision: 2 }
    );
    // The gateway's own answer to a transaction whose comparison fails: no `succeeded`.
    let raw = reqwest::Client::new()
        .post(format!("{}/v3/kv/txn", cluster.endpoints()[0]))
        .body(r#"{"compare":[{"key":"aw==","target":"CREATE","result":"EQUAL","create_revision":"0"}],"success":[{"request_put":{"key":"aw==","value":"eA=="}}]}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(raw.get("succeeded").is_none(), "{raw}");
    assert!(raw.get("header").is_some(), "{raw}");
    // The client reads it as failed, with the key as it is.
    let failed = client
        .compare_and_swap(b"k", Expected::Absent, b"v2", None)
        .await
        .unwrap();
    let Swap::Failed { current: Some(kv) } = failed else {
        panic!("{failed:?}")
    };
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"v1"[..], 2));
    assert!(matches!(
        client
            .compare_and_swap(b"k", Expected::ModRevision(1), b"v2", None)
            .await
            .unwrap(),
        Swap::Failed { .. }
    ));
    assert_eq!(
        client
            .compare_and_swap(b"k", Expected::ModRevision(2), b"v2", None)
            .await
            .unwrap(),
        Swap::Swapped { revision: 3 }
    );
    assert_eq!(client.get(b"k").await.unwrap().unwrap().value, b"v2");
}

#[tokio::test]
async fn a_key_on_a_lease_lives_while_renewed_and_goes_when_the_lease_lapses() {
    let cluster = etcd(1).await;
    let client = cluster.client().unwrap();
    let lease = client.grant_lease(Duration::from_secs(2)).await.unwrap();
    assert!(lease.ttl >= Duration::from_secs(2), "{lease:?}");
    client
        .put(b"/names/a", b"127.0.0.1:1", Some(lease.id))
        .await
        .unwrap();
    assert!(client.keep_alive(lease.id).await.unwrap().is_some());
    assert_eq!(client.get_prefix(b"/names/").await.unwrap().len(), 1);
    // Not renewed: etcd drops the key (autoclean) and says the lease is gone.
    eventually("the lease's key expires", || async {
        client.get(b"/names/a").await.unwrap().is_none()
    })
    .await;
    assert_eq!(client.keep_alive(lease.id).await.unwrap(), None);
    // Revoking a lease: its keys go at once; a lease already gone is not an error.
    let lease = client.grant_lease(Duration::from_secs(60)).await.unwrap();
    client.put(b"/names/b", b"x", Some(lease.id)).await.unwrap();
    assert!(
        !client
            .delete_if_owned(b"/names/b", lease.id + 1)
            .await
            .unwrap()
    );
    client.revoke(lease.id).await.unwrap();
    assert!(client.get(b"/names/b").await.unwrap().is_none());
    client.revoke(lease.id).await.unwrap();
}

#[tokio::test]
async fn two_front_ends_stores_never_overwrite_each_others_views() {
    let cluster = etcd(3).await;
    let client = cluster.client().unwrap();
    let mut a = EtcdViewStore::new(client.clone(), "/jh/view");
    let mut b = EtcdViewStore::new(client.clone(), "/jh/view");
    assert_eq!(a.load().await.unwrap(), None);
    assert_eq!(b.load().await.unwrap(), None);
    a.save(&record(1, "r1")).await.unwrap();
    // b read "no view": it may not write over a's.
    let conflict = b.save(&record(1, "r2")).await.unwrap_err();
    assert!(
        matches!(conflict, ViewStoreError::Conflict { .. }),
        "{conflict}"
    );
    assert!(
        conflict.to_string().contains("another front-end"),
        "{conflict}"
    );
    // Once b has read a's view, it may change it; then a is the one refused.
    assert_eq!(b.load().await.unwrap(), Some(record(1, "r1")));
    b.save(&record(2, "r2")).await.unwrap();
    assert!(matches!(
        a.save(&record(2, "r1")).await,
        Err(ViewStoreError::Conflict { .. })
    ));
    a.save(&record(3, "r1"))
        .await
        .expect_err("a still has not read b's view");
    // etcd's history of the key: view 1 then view 2, nothing lost or doubled.
    let now = client.get(b"/jh/view").await.unwrap().unwrap();
    let mut numbers = Vec::new();
    let mut revision = now.mod_revision;
    while revision > 0 {
        let Some(kv) = client.get_at(b"/jh/view", revision).await.unwrap() else {
            break;
        };
        let r: ViewRecord = serde_json::from_slice(&kv.value).unwrap();
        numbers.push(r.current.number.0);
        revision = kv.mod_revision - 1;
    }
    assert_eq!(numbers, [2, 1]);
}

#[tokio::test]
async fn with_one_member_of_three_dead_views_are_saved_with_two_none_until_they_return() {
    let mut cluster = etcd(3).await;
    let mut store = EtcdViewStore::new(cluster.client().unwrap(), "/jh/view");
    assert_eq!(store.load().await.unwrap(), None);
    store.save(&record(1, "r1")).await.unwrap();
    cluster.kill(0);
    store.save(&record(2, "r1")).await.unwrap();
    cluster.kill(1);
    // No quorum: the save waits (no view change can happen), and is not refused.
    let pending = tokio::spawn(async move { store.save(&record(3, "r1")).await.map(|()| store) });
    // A check that something does *not* happen needs a window: three seconds is three of
    // the client's per-member timeouts, and many of etcd's election timeouts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!pending.is_finished(), "a view was saved without a quorum");
    cluster.restart(0).unwrap();
    cluster.restart(1).unwrap();
    let mut store = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("the save completes once the members return")
        .unwrap()
        .unwrap();
    assert_eq!(store.load().await.unwrap(), Some(record(3, "r1")));
}

#[tokio::test]
async fn a_cluster_whose_front_end_keeps_its_view_in_etcd_serves_and_resumes_from_it() {
    let etcd = etcd(3).await;
    let client: EtcdClient = etcd.client().unwrap();
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    let stores = client.clone();
    cluster.use_view_stores(move || Box::new(EtcdViewStore::new(stores.clone(), "/jh/view")));
    let validator = Arc::new(OrderValidator::offline());
    let view = cluster
        .form(3, OrderBook::with_predefined_history(), validator, WAIT)
        .await
        .unwrap();
    let orders = cluster.order_client(ClientConfig::default()).await.unwrap();
    orders
        .place_order("SW1A 1AA", vec!["pizza".into()])
        .await
        .unwrap();
    let stored: ViewRecord =
        serde_json::from_slice(&client.get(b"/jh/view").await.unwrap().unwrap().value).unwrap();
    assert_eq!(stored.current, view);
    assert!(stored.current_active);
    // A second front-end with its own store of the same key, which has read nothing yet,
    // cannot store over the first's view: it stops, saying why.
    let mut stale = EtcdViewStore::new(client.clone(), "/jh/view");
    assert!(matches!(
        stale.save(&record(99, "intruder")).await,
        Err(ViewStoreError::Conflict { .. })
    ));
    // The front-end crashes and comes back: it resumes from etcd's view and serves again.
    cluster.crash_frontend().await;
    cluster.start_frontend().await.unwrap();
    cluster.wait_for_active_view(3, WAIT).await.unwrap();
    orders
        .place_order("SW1A 1AA", vec!["chips".into()])
        .await
        .unwrap();
    let history = orders.order_history("SW1A 1AA").await.unwrap();
    let mine = history
        .1
        .iter()
        .filter(|o| o.items == ["pizza"] || o.items == ["chips"])
        .count();
    assert_eq!(mine, 2, "{history:?}");
    cluster.shutdown().await;
}
