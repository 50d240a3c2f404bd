//! Postcode validation end to end: a cluster whose replicas validate with the online chain
//! against local fakes of postcodes.io and getthedata (never the internet). Validation happens
//! once, at the primary, before replication (docs/PROTOCOL.md, "Normal operation"); when the
//! primary fails, the new one validates the same way.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{FakeServer, Gate, Postcodes, postcodes_io_reply, unreachable_url};
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::messages::ReplicaRole;
use just_hungry::local::LocalCluster;
use just_hungry::orders::{OrderBook, OrderError, OrderValidator};
use just_hungry::postcode::{
    Directory, PostcodeConfig, PostcodeError, ValidatorMode, WhenUnreachable,
};
use just_hungry::{OrderClient, OrderClientError};

const WAIT: Duration = Duration::from_secs(10);
const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];

fn items(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn online(postcodes_io: &str, getthedata: &str, policy: WhenUnreachable) -> PostcodeConfig {
    PostcodeConfig {
        mode: ValidatorMode::Online,
        postcodes_io_url: postcodes_io.to_owned(),
        getthedata_url: getthedata.to_owned(),
        validation_timeout: Duration::from_secs(2),
        when_unreachable: policy,
        ..PostcodeConfig::default()
    }
}

/// Three replicas, each with its own validator built from `config` (as separate processes
/// would have), a front-end, and every replica in the active view.
async fn cluster(config: &PostcodeConfig) -> LocalCluster<OrderBook> {
    let mut cluster = LocalCluster::<OrderBook>::new(Timing::default());
    for name in REPLICAS {
        let validator = Arc::new(OrderValidator::new(config.build().unwrap()));
        cluster
            .start_replica(name, OrderBook::with_predefined_history(), validator)
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

async fn primary(client: &OrderClient) -> String {
    let status = client.cluster_status().await.unwrap();
    status.view.expect("an active view").primary.id.name
}

/// The refusal of `place_order`, or a panic.
fn refusal(result: Result<impl std::fmt::Debug, OrderClientError>) -> PostcodeError {
    match result {
        Err(OrderClientError::Refused(OrderError::InvalidPostcode(error))) => error,
        other => panic!("expected a postcode refusal, got {other:?}"),
    }
}

/// A valid postcode is accepted, a missing one and one postcodes.io calls invalid are refused
/// with the API's reason: all decided by the primary alone.
async fn orders_are_validated_online(client: &OrderClient) {
    client
        .place_order("sw1a 2aa", items(&["Fish and chips"]))
        .await
        .expect("a live postcode is accepted");
    assert_eq!(
        refusal(client.place_order("SW1A 9ZZ", items(&["Chips"])).await).to_string(),
        "postcode SW1A 9ZZ not found: please check it and try again"
    );
    let invalid = refusal(client.place_order("GIR 0AA", items(&["Chips"])).await);
    assert!(
        matches!(
            &invalid,
            PostcodeError::Refused { directory: Directory::PostcodesIo, reason, .. }
                if reason == "Invalid postcode"
        ),
        "{invalid:?}"
    );
    assert!(invalid.to_string().ends_with("Invalid postcode"));
}

#[tokio::test]
async fn the_primary_validates_with_the_online_chain_and_after_failover_the_new_one_does_too() {
    let data = Postcodes::new().live(&["SW1A 2AA"]);
    let pio = FakeServer::postcodes_io(data.clone()).await;
    let gtd = FakeServer::getthedata(data).await;
    let config = online(&pio.url(), &gtd.url(), WhenUnreachable::Refuse);
    let mut cluster = cluster(&config).await;
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();

    orders_are_validated_online(&client).await;
    // One lookup per postcode: only the primary asks; backups never call the APIs.
    assert_eq!(pio.requests(), 3);
    assert_eq!(gtd.requests(), 0);

    let old = primary(&client).await;
    assert!(cluster.crash_replica(&old).await);
    orders_are_validated_online(&client).await;
    let new = primary(&client).await;
    assert_ne!(new, old);
    // The new primary has its own (cold) cache: it asked postcodes.io itself.
    assert_eq!(pio.requests(), 6);

    let (_, orders) = client.order_history("SW1A 2AA").await.unwrap();
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| !o.unverified));
    cluster.wait_for_convergence(WAIT).await.expect("converges");
    cluster.shutdown().await;
}

#[tokio::test]
async fn when_no_directory_answers_orders_are_refused_or_accepted_unverified_as_configured() {
    let down = unreachable_url().await;

    // The default: refused, "try again later", nothing replicated.
    let mut refuse = cluster(&online(&down, &down, WhenUnreachable::Refuse)).await;
    let client = refuse.order_client(ClientConfig::default()).await.unwrap();
    let before = refuse.wait_for_convergence(WAIT).await.unwrap();
    let error = refusal(client.place_order("M1 1AE", items(&["Curry"])).await);
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("cannot validate the postcode now")
    );
    let after = refuse.wait_for_convergence(WAIT).await.unwrap();
    assert_eq!(before["replica-1"].digest, after["replica-1"].digest);
    refuse.shutdown().await;

    // accept-unverified: accepted on the format check, marked unverified on every replica.
    let mut accept = cluster(&online(&down, &down, WhenUnreachable::AcceptUnverified)).await;
    let client = accept.order_client(ClientConfig::default()).await.unwrap();
    let id = client
        .place_order("m1 1ae", items(&["Curry"]))
        .await
        .expect("accepted unverified");
    // Malformed input is still refused by the format check.
    assert!(matches!(
        refusal(client.place_order("M1-1AE", items(&["Curry"])).await),
        PostcodeError::CharacterNotAllowed { .. }
    ));
    // The flag was replicated: the next primary has it too.
    let old = primary(&client).await;
    assert!(accept.crash_replica(&old).await);
    let (_, orders) = client.order_history("M1 1AE").await.unwrap();
    let order = orders.iter().find(|o| o.id == id).expect("the order");
    assert!(order.unverified);
    assert_ne!(primary(&client).await, old);
    // The seed order of the same postcode is not marked.
    assert!(orders.iter().any(|o| o.id != id && !o.unverified));
    accept.shutdown().await;
}

/// A directory that hangs on one postcode delays only the orders for that postcode: orders for
/// others are validated, replicated and answered meanwhile, and the held one completes once the
/// directory answers.
#[tokio::test]
async fn a_directory_hanging_on_one_postcode_does_not_stall_orders_for_others() {
    let data = Postcodes::new().live(&["SW1A 2AA", "EH1 1YZ"]);
    let gate = Gate::new();
    let pio = FakeServer::postcodes_io(data.clone()).await;
    let (held, answers) = (gate.clone(), data.clone());
    pio.set(move |target| {
        let reply = postcodes_io_reply(&answers, target);
        if target.contains("EH1") {
            reply.gated(&held)
        } else {
            reply
        }
    });
    let gtd = FakeServer::getthedata(data).await;
    let mut config = online(&pio.url(), &gtd.url(), WhenUnreachable::Refuse);
    config.validation_timeout = Duration::from_secs(30);
    let mut cluster = cluster(&config).await;
    let slow_client = cluster.order_client(ClientConfig::default()).await.unwrap();
    let client = cluster.order_client(ClientConfig::default()).await.unwrap();

    let slow =
        tokio::spawn(async move { slow_client.place_order("EH1 1YZ", items(&["Haggis"])).await });
    pio.wait_for_requests(1).await;
    for n in 0..5 {
        client
            .place_order("SW1A 2AA", items(&[&format!("Tea {n}")]))
            .await
            .expect("an order for another postcode is not held up");
    }
    assert!(!slow.is_finished(), "the held lookup has not been answered");
    gate.open();
    slow.await
        .unwrap()
        .expect("the held order completes once the directory answers");
    let (_, orders) = client.order_history("EH1 1YZ").await.unwrap();
    assert_eq!(orders.iter().filter(|o| o.items == ["Haggis"]).count(), 1);
    cluster.shutdown().await;
}
