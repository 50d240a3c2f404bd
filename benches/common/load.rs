//! Concurrent clients: C tasks, each placing its orders one after the other (as a client of the
//! order book does: one request at a time), timing each request.

use std::time::{Duration, Instant};

use just_hungry::OrderClient;
use tokio::task::JoinSet;

use super::floor::FloorClient;
use super::orders;

/// One client of what is benched.
#[derive(Clone)]
pub enum Caller {
    /// A client of the replicated order book.
    Order(OrderClient),
    /// A caller of the floor.
    Floor(FloorClient),
}

impl Caller {
    /// Client `client`'s `i`-th request; a refused or failed order stops the bench.
    pub async fn call(&self, client: usize, i: u64) {
        match self {
            Caller::Order(order_client) => {
                order_client
                    .place_order(orders::postcode(client, i), orders::items())
                    .await
                    .expect("a bench order is placed");
            }
            Caller::Floor(floor) => floor.call().await,
        }
    }
}

/// Runs every caller concurrently, each making `per_caller` requests in turn; returns the time
/// until the last one finished, and adds each request's latency to `latencies`.
pub async fn drive(callers: &[Caller], per_caller: u64, latencies: &mut Vec<Duration>) -> Duration {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (c, caller) in callers.iter().cloned().enumerate() {
        tasks.spawn(async move {
            let mut timed = Vec::with_capacity(per_caller as usize);
            for i in 0..per_caller {
                let sent = Instant::now();
                caller.call(c, i).await;
                timed.push(sent.elapsed());
            }
            timed
        });
    }
    let mut all = Vec::with_capacity(callers.len());
    while let Some(done) = tasks.join_next().await {
        all.push(done.expect("a bench client task"));
    }
    let elapsed = started.elapsed();
    for timed in all {
        latencies.extend(timed);
    }
    elapsed
}
