//! A replicated order book to load: one registry, one front-end, N replicas and C order
//! clients, built with [`LocalCluster`] on the in-memory or the TCP transport.

use std::sync::Arc;
use std::time::Duration;

use just_hungry::OrderClient;
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::local::{LocalCluster, Network, TcpNetwork};
use just_hungry::mem::MemNetwork;
use just_hungry::orders::{OrderBook, OrderValidator};

/// How long a cluster may take to elect, take every replica in and converge.
const STARTUP: Duration = Duration::from_secs(30);

/// Which transport the cluster runs on.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// In-process channels.
    Mem,
    /// TCP sockets on 127.0.0.1, every link mutual TLS (the default of the binaries).
    Tcp,
    /// TCP sockets on 127.0.0.1 without TLS (`--insecure-plaintext`): what TLS costs.
    TcpPlaintext,
}

impl Transport {
    /// Its name in bench ids.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Mem => "mem",
            Transport::Tcp => "tcp",
            Transport::TcpPlaintext => "tcp-plaintext",
        }
    }
}

enum Nodes {
    Mem(LocalCluster<OrderBook, MemNetwork>),
    Tcp(LocalCluster<OrderBook, TcpNetwork>),
}

/// A running cluster whose view holds every replica, with its clients connected.
pub struct ReplicatedCluster {
    nodes: Nodes,
    clients: Vec<OrderClient>,
}

impl ReplicatedCluster {
    /// Starts `replicas` replicas (each with the pre-defined history, the offline validator), a
    /// front-end and `clients` clients; returns once the active view holds every replica, all
    /// with the same state, and each client has placed one order (so every connection is open).
    pub async fn start(transport: Transport, replicas: usize, clients: usize) -> ReplicatedCluster {
        let timing = Timing::default();
        let (nodes, clients) = match transport {
            Transport::Mem => {
                let cluster = LocalCluster::on(MemNetwork::new(), timing)
                    .await
                    .expect("a mem cluster");
                let (cluster, clients) = populate(cluster, replicas, clients).await;
                (Nodes::Mem(cluster), clients)
            }
            Transport::Tcp | Transport::TcpPlaintext => {
                let network = match transport {
                    Transport::TcpPlaintext => TcpNetwork::plaintext(),
                    _ => TcpNetwork::tls().expect("a development CA"),
                };
                let cluster = LocalCluster::on(network, timing)
                    .await
                    .expect("a tcp cluster on 127.0.0.1");
                let (cluster, clients) = populate(cluster, replicas, clients).await;
                (Nodes::Tcp(cluster), clients)
            }
        };
        ReplicatedCluster { nodes, clients }
    }

    /// The clients, one per concurrent caller.
    pub fn clients(&self) -> &[OrderClient] {
        &self.clients
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        drop(self.clients);
        match self.nodes {
            Nodes::Mem(cluster) => cluster.shutdown().await,
            Nodes::Tcp(cluster) => cluster.shutdown().await,
        }
    }
}

async fn populate<N: Network>(
    mut cluster: LocalCluster<OrderBook, N>,
    replicas: usize,
    clients: usize,
) -> (LocalCluster<OrderBook, N>, Vec<OrderClient>) {
    let validator = Arc::new(OrderValidator::offline());
    for r in 1..=replicas {
        cluster
            .start_replica(
                &format!("replica-{r}"),
                OrderBook::with_predefined_history(),
                validator.clone(),
            )
            .await
            .expect("a replica starts");
    }
    cluster
        .start_frontend()
        .await
        .expect("the front-end starts");
    cluster
        .wait_for_active_view(replicas, STARTUP)
        .await
        .expect("every replica joins the active view and converges");
    let mut handles = Vec::with_capacity(clients);
    for _ in 0..clients {
        handles.push(
            cluster
                .order_client(ClientConfig::default())
                .await
                .expect("a client endpoint"),
        );
    }
    for (c, client) in handles.iter().enumerate() {
        client
            .place_order(super::orders::postcode(c, 0), super::orders::items())
            .await
            .expect("the first order of each client is placed");
    }
    (cluster, handles)
}
