//! Replicated place-order throughput and latency, and the floor it is measured against.
//!
//! - `place_order/{mem,tcp,tcp-plaintext}/r{N}/c{C}`: a
//!   [`LocalCluster`](just_hungry::local::LocalCluster) of N replicas (one registry, one
//!   front-end) on the in-memory transport, or TCP on 127.0.0.1 with mutual TLS on every link
//!   (`tcp`, the default) or without (`tcp-plaintext`, to measure what TLS costs); C clients
//!   each place [`ORDERS_PER_CLIENT`] orders per iteration, concurrently.
//! - `floor/tcp/r{N}/c{C}`: the same hops and frame sizes with no protocol
//!   (`common/floor.rs`), every client multiplexed over one connection to the relay; and
//!   `floor_per_client/tcp/r{N}/c{C}`, the same with a connection per client, as the
//!   replicated path's clients have. Both run right after their pair, so all see the same
//!   machine load.
//!
//! Criterion reports time per iteration and orders per second; each bench also prints its
//! requests' latency percentiles (`common/latency.rs`). `cargo run -p just-hungry-bench-tools --bin bench_ratios`
//! prints every figure as a ratio to its floor.

mod common;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

use common::cluster::{ReplicatedCluster, Transport};
use common::floor::{ClientLinks, Floor};
use common::load::{self, Caller};
use common::orders::HopSizes;

/// Replicas per cluster.
const REPLICAS: [usize; 3] = [1, 3, 5];
/// Concurrent clients.
const CLIENTS: [usize; 3] = [1, 16, 64];
/// Orders each client places per iteration.
const ORDERS_PER_CLIENT: u64 = 16;
/// The most orders one cluster takes before the bench starts a fresh one (between samples,
/// untimed): about 25 MB of bench orders, so a sample's memory stays small however fast the
/// path gets.
const ORDERS_PER_TARGET: u64 = 300_000;

/// What one bench loads.
enum Target {
    Replicated(Box<ReplicatedCluster>),
    Floor(Floor),
}

impl Target {
    /// One caller per client: each cluster client has its own endpoint; the floor's callers
    /// share one connection to the relay or have one each ([`ClientLinks`]).
    async fn callers(&self, clients: usize) -> Vec<Caller> {
        match self {
            Target::Replicated(cluster) => cluster
                .clients()
                .iter()
                .cloned()
                .map(Caller::Order)
                .collect(),
            Target::Floor(floor) => floor
                .clients(clients)
                .await
                .into_iter()
                .map(Caller::Floor)
                .collect(),
        }
    }

    async fn shutdown(self) {
        match self {
            Target::Replicated(cluster) => cluster.shutdown().await,
            Target::Floor(floor) => floor.shutdown(),
        }
    }
}

/// Benches `group/id` with `clients` callers of the target `start` builds. The target is built
/// on first use, so a bench filtered out on the command line costs nothing.
fn bench<F>(c: &mut Criterion, runtime: &Runtime, group: &str, id: &str, clients: usize, start: F)
where
    F: AsyncFn() -> Target,
{
    let mut benches = c.benchmark_group(group);
    benches
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(clients as u64 * ORDERS_PER_CLIENT));
    let started = async || {
        let target = start().await;
        let callers = target.callers(clients).await;
        // One round trip each, so every connection is open before timing starts.
        load::drive(&callers, 1, &mut Vec::new()).await;
        (target, callers)
    };
    let mut target: Option<(Target, Vec<Caller>)> = None;
    let mut placed = 0;
    let mut latencies = Vec::new();
    benches.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let orders = iters * ORDERS_PER_CLIENT;
            // A fresh target before the book could fill up, outside the timed region.
            if placed + orders * clients as u64 > ORDERS_PER_TARGET
                && let Some((old, _)) = target.take()
            {
                runtime.block_on(old.shutdown());
                placed = 0;
            }
            placed += orders * clients as u64;
            let (_, callers) = target.get_or_insert_with(|| runtime.block_on(started()));
            runtime.block_on(load::drive(callers, orders, &mut latencies))
        });
    });
    benches.finish();
    if let Some((target, _)) = target {
        runtime.block_on(target.shutdown());
    }
    common::latency::report(&format!("{group}/{id}"), latencies);
}

fn replication(c: &mut Criterion) {
    let runtime = common::runtime();
    let sizes = HopSizes::measure();
    eprintln!("encoded sizes of one place-order's messages (bytes): {sizes:?}");
    for replicas in REPLICAS {
        for clients in CLIENTS {
            let shape = format!("r{replicas}/c{clients}");
            for transport in [Transport::Mem, Transport::Tcp, Transport::TcpPlaintext] {
                let id = format!("{}/{shape}", transport.name());
                bench(c, &runtime, "place_order", &id, clients, async || {
                    Target::Replicated(Box::new(
                        ReplicatedCluster::start(transport, replicas, clients).await,
                    ))
                });
            }
            for links in [ClientLinks::Shared, ClientLinks::PerClient] {
                bench(
                    c,
                    &runtime,
                    links.group(),
                    &format!("tcp/{shape}"),
                    clients,
                    async || Target::Floor(Floor::start(replicas, sizes, links).await),
                );
            }
        }
    }
}

criterion_group!(benches, replication);
criterion_main!(benches);
