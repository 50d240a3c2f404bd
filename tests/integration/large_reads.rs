//! Reads larger than a message, over real TLS sockets on 127.0.0.1: a history several times
//! the TCP frame limit is read back whole, page by page, while other clients are served; and
//! an answer that cannot fit a frame is refused with a typed error at once, never dropped and
//! retried until the deadline.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use just_hungry::core::codec;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::{ClientConfig, ClientError};
use just_hungry::core::{AcceptAll, ApplyContext, StateMachine};
use just_hungry::local::{LocalCluster, TcpNetwork};
use just_hungry::orders::{
    MAX_ITEM_NAME_BYTES, MAX_ITEMS_PER_ORDER, OrderBook, OrderId, OrderValidator,
};
use just_hungry::tcp::TcpConfig;

const WAIT: Duration = Duration::from_secs(60);

/// The busy postcode (not in the pre-defined history).
const BUSY: &str = "B33 8TH";

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn cluster_of<S: StateMachine + Clone>(
    initial: S,
    validator: Arc<dyn just_hungry::core::CommandValidator<S>>,
) -> LocalCluster<S, TcpNetwork> {
    logs();
    let network = TcpNetwork::tls().expect("a development CA");
    let mut cluster = LocalCluster::<S, _>::on(network, Timing::default())
        .await
        .expect("registry");
    cluster
        .form(3, initial, validator, WAIT)
        .await
        .expect("the cluster forms");
    cluster
}

/// The largest order there is: 50 items of 100 bytes.
fn large_order(client: usize, n: usize) -> Vec<String> {
    (0..MAX_ITEMS_PER_ORDER)
        .map(|i| {
            let tag = format!("c{client} o{n} i{i} ");
            format!("{tag:x<width$}", width = MAX_ITEM_NAME_BYTES)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_several_frames_long_is_read_back_whole_while_others_are_served() {
    let mut cluster = cluster_of(
        OrderBook::with_predefined_history(),
        Arc::new(OrderValidator::offline()),
    )
    .await;
    let frame = TcpConfig::default().max_frame_bytes;
    // Enough of the largest orders to make the history three frames and a half long.
    let order_bytes = codec::encode(&large_order(0, 0)).unwrap().len();
    let orders = (frame * 7 / 2).div_ceil(order_bytes);
    const WRITERS: usize = 16;
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        writers.push(
            cluster
                .order_client(ClientConfig::default())
                .await
                .expect("client"),
        );
    }
    let placed = Instant::now();
    let tasks: Vec<_> = writers
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, client)| {
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in (w..orders).step_by(WRITERS) {
                    let id = client
                        .place_order(BUSY, large_order(w, n))
                        .await
                        .expect("a large order is acknowledged");
                    acked.push(id);
                }
                acked
            })
        })
        .collect();
    let mut acked: Vec<OrderId> = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("writer"));
    }
    println!(
        "placed {orders} orders of {order_bytes} bytes on {BUSY} in {:?}",
        placed.elapsed()
    );

    // A small-order client keeps ordering while the big history is read.
    let small = cluster
        .order_client(ClientConfig::default())
        .await
        .expect("client");
    let reader = cluster
        .order_client(ClientConfig::default())
        .await
        .expect("client");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let small_orders = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let start = Instant::now();
                small
                    .place_order("EC1A 1BB", vec!["Pho".into()])
                    .await
                    .expect("a small order is served during the large read");
                latencies.push(start.elapsed());
            }
            latencies
        })
    };
    let view_before = cluster.frontend_report().await.and_then(|r| r.view);
    let read_start = Instant::now();
    let (postcode, history) = reader.order_history(BUSY).await.expect("the whole history");
    let read_time = read_start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut latencies = small_orders.await.expect("small orders");
    // Issue 13: the large read neither retired a live replica nor caused an election.
    let view_after = cluster.frontend_report().await.and_then(|r| r.view);
    assert_eq!(
        view_after, view_before,
        "no view change during the large read"
    );

    assert_eq!(postcode.as_str(), BUSY);
    let bytes = codec::encode(&history).unwrap().len();
    assert!(
        bytes > 3 * frame,
        "{bytes} bytes is not several frames of {frame}"
    );
    let ids: Vec<OrderId> = history.iter().map(|o| o.id).collect();
    let unique: BTreeSet<OrderId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "every order once");
    assert_eq!(
        unique,
        acked.iter().copied().collect::<BTreeSet<_>>(),
        "every acknowledged order"
    );
    // In order: each client's orders appear in the order it placed them.
    for w in 0..WRITERS {
        let seqs: Vec<u64> = history
            .iter()
            .filter(|o| o.items[0].starts_with(&format!("c{w} ")))
            .map(|o| o.id.seq)
            .collect();
        assert!(seqs.is_sorted(), "client {w}'s orders out of order");
    }
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "read {} orders, {bytes} bytes ({:.1} frames), in {read_time:?}; meanwhile {} small orders: p50 {:?}, p99 {:?}, max {:?}",
        history.len(),
        bytes as f64 / frame as f64,
        latencies.len(),
        pct(50),
        pct(99),
        latencies.last().unwrap()
    );

    // A failover at this size: the backups hold every op, but the state they may lack is
    // larger than a message, so the new primary must not try to send it as one.
    let primary = cluster
        .frontend_report()
        .await
        .and_then(|r| r.view)
        .expect("a view")
        .primary
        .id
        .name;
    assert!(cluster.crash_replica(&primary).await);
    reader
        .place_order(BUSY, large_order(99, 0))
        .await
        .expect("an order after the failover");
    let (_, after) = reader.order_history(BUSY).await.expect("the history");
    assert_eq!(after.len(), history.len() + 1);
    cluster.shutdown().await;
}

/// A service whose reads answer as many bytes as asked for.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Blob;

impl StateMachine for Blob {
    const SERVICE: &'static str = "test/blob";
    type Command = u64;
    type Reply = u64;
    type Query = u32;
    type QueryReply = Vec<u8>;

    fn apply(&mut self, _: &ApplyContext, command: &u64) -> u64 {
        *command
    }

    fn query(&self, bytes: &u32) -> Vec<u8> {
        vec![7; *bytes as usize]
    }
}

#[tokio::test]
async fn an_answer_longer_than_a_frame_is_refused_with_a_typed_error_at_once() {
    let mut cluster = cluster_of(Blob, Arc::new(AcceptAll)).await;
    let frame = TcpConfig::default().max_frame_bytes;
    let client = cluster
        .client(ClientConfig {
            deadline: WAIT,
            ..ClientConfig::default()
        })
        .await
        .expect("client");
    match client.read(frame as u32 + 1).await {
        Err(ClientError::ReplyTooLarge { bytes, max }) => {
            assert!(bytes > frame as u64, "{bytes}");
            assert_eq!(max, frame as u64);
        }
        other => panic!("expected ReplyTooLarge, got {:?}", other.map(|r| r.len())),
    }
    // The node serves on: a read that fits, and a write.
    assert_eq!(client.read(1024).await.expect("a small read").len(), 1024);
    assert_eq!(client.write(5).await.expect("a write"), 5);
    cluster.shutdown().await;
}
