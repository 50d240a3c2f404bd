//! A whole cluster in one process on the in-memory transport: a registry, a front-end and any
//! number of replicas, each a tokio task, which can be crashed and started at any time.
//!
//! This is what `cargo run --example cluster` and the integration tests are built on, and the
//! shortest way to embed a replicated service in a program.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use just_hungry_core::ids::{Address, ReplicaId};
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::client::ClientConfig;
use just_hungry_core::protocol::replica::ReplicaConfig;
use just_hungry_core::protocol::replicated::ClientTableLimits;
use just_hungry_core::protocol::view_manager::FrontEndConfig;
use just_hungry_core::protocol::view_store::MemoryViewStore;
use just_hungry_core::runtime::{self, Client, NodeHandle, NodeReport, OrderClient, random_u64};
use just_hungry_core::state_machine::{CommandValidator, StateMachine};
use just_hungry_transport_mem::MemNetwork;

/// The registry's address on the in-memory network.
pub const REGISTRY_ADDRESS: &str = "registry";
/// The front-end's address on the in-memory network.
pub const FRONTEND_ADDRESS: &str = "frontend";

/// Why waiting for a cluster condition failed.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for: {what}")]
pub struct WaitTimeout {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub waited: Duration,
}

/// A cluster of service `S` in this process. Dropping it leaves the tasks running until the
/// runtime stops; call [`LocalCluster::shutdown`] to stop them gracefully.
pub struct LocalCluster<S: StateMachine> {
    network: MemNetwork,
    timing: Timing,
    store: MemoryViewStore,
    registry: Option<NodeHandle>,
    frontend: Option<NodeHandle>,
    replicas: BTreeMap<String, (ReplicaId, NodeHandle)>,
    next_client: u64,
    _service: std::marker::PhantomData<fn() -> S>,
}

impl<S: StateMachine> LocalCluster<S> {
    /// A cluster with a running registry, no front-end and no replica yet.
    pub fn new(timing: Timing) -> Self {
        let network = MemNetwork::new();
        let registry =
            runtime::spawn_registry::<S, _>(network.endpoint(REGISTRY_ADDRESS), timing.autoclean);
        LocalCluster {
            network,
            timing,
            store: MemoryViewStore::new(),
            registry: Some(registry),
            frontend: None,
            replicas: BTreeMap::new(),
            next_client: 0,
            _service: std::marker::PhantomData,
        }
    }

    /// The in-memory network the nodes are attached to.
    pub fn network(&self) -> &MemNetwork {
        &self.network
    }

    /// Starts the front-end (again, after a crash: it resumes from its stored view).
    pub fn start_frontend(&mut self) {
        let mut config = FrontEndConfig::new(
            "frontend",
            Address::new(FRONTEND_ADDRESS),
            Address::new(REGISTRY_ADDRESS),
        );
        config.timing = self.timing;
        config.bootstrap_grace = self.timing.ping_interval * 2;
        let endpoint = self.network.endpoint(FRONTEND_ADDRESS);
        self.frontend = Some(runtime::spawn_frontend::<S, _>(
            endpoint,
            config,
            Box::new(self.store.clone()),
        ));
    }

    /// Starts replica `name` (a fresh incarnation) holding `initial`, its pre-defined data.
    pub fn start_replica(
        &mut self,
        name: &str,
        initial: S,
        validator: Arc<dyn CommandValidator<S>>,
    ) -> ReplicaId {
        let id = ReplicaId::new(name, random_u64());
        let config = ReplicaConfig {
            id: id.clone(),
            address: Address::new(name),
            registry: Address::new(REGISTRY_ADDRESS),
            timing: self.timing,
            client_table: ClientTableLimits::default(),
        };
        let handle =
            runtime::spawn_replica(self.network.endpoint(name), config, initial, validator);
        self.replicas.insert(name.to_owned(), (id.clone(), handle));
        id
    }

    /// Kills replica `name` at once, as `kill -9` would; messages to it are refused from now.
    pub async fn crash_replica(&mut self, name: &str) -> bool {
        let Some((_, handle)) = self.replicas.remove(name) else {
            return false;
        };
        self.network.crash(&Address::new(name));
        handle.crash().await;
        true
    }

    /// Kills the front-end at once; [`LocalCluster::start_frontend`] brings it back.
    pub async fn crash_frontend(&mut self) {
        if let Some(handle) = self.frontend.take() {
            self.network.crash(&Address::new(FRONTEND_ADDRESS));
            handle.crash().await;
        }
    }

    /// The names of the running replicas.
    pub fn replica_names(&self) -> Vec<String> {
        self.replicas.keys().cloned().collect()
    }

    /// A new client with its own id, on its own endpoint.
    pub fn client(&mut self, config: ClientConfig) -> Client<S> {
        let endpoint = self.client_endpoint();
        Client::spawn(endpoint, Address::new(REGISTRY_ADDRESS), config)
    }

    fn client_endpoint(&mut self) -> just_hungry_transport_mem::MemEndpoint {
        self.next_client += 1;
        self.network.endpoint(format!(
            "client-{}-{}",
            self.next_client,
            random_u64() % 10_000
        ))
    }

    /// Reports of every running replica, by name.
    pub async fn replica_reports(&self) -> BTreeMap<String, NodeReport> {
        let mut reports = BTreeMap::new();
        for (name, (_, handle)) in &self.replicas {
            if let Some(report) = handle.report().await {
                reports.insert(name.clone(), report);
            }
        }
        reports
    }

    /// The front-end's report, if it runs.
    pub async fn frontend_report(&self) -> Option<NodeReport> {
        match &self.frontend {
            Some(handle) => handle.report().await,
            None => None,
        }
    }

    /// Polls the replicas' reports until `done` holds or `timeout` passes.
    pub async fn wait_for_replicas(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&BTreeMap<String, NodeReport>) -> bool,
    ) -> Result<BTreeMap<String, NodeReport>, WaitTimeout> {
        let start = tokio::time::Instant::now();
        loop {
            let reports = self.replica_reports().await;
            if done(&reports) {
                return Ok(reports);
            }
            if start.elapsed() >= timeout {
                return Err(WaitTimeout {
                    what: what.to_owned(),
                    waited: timeout,
                });
            }
            tokio::time::sleep(self.timing.ping_interval / 4).await;
        }
    }

    /// Waits until the front-end has an active view whose members all run and hold the same
    /// state (equal digests), and returns their reports.
    pub async fn wait_for_convergence(
        &self,
        timeout: Duration,
    ) -> Result<BTreeMap<String, NodeReport>, WaitTimeout> {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(fe) = self.frontend_report().await
                && fe.active
                && let Some(view) = fe.view
            {
                let reports = self.replica_reports().await;
                let members: Vec<&NodeReport> = view
                    .members()
                    .filter_map(|m| reports.get(&m.id.name))
                    .collect();
                let all_running = members.len() == view.backups.len() + 1;
                let digests: std::collections::BTreeSet<Option<u64>> =
                    members.iter().map(|r| r.digest).collect();
                if all_running && digests.len() == 1 {
                    return Ok(reports);
                }
            }
            if start.elapsed() >= timeout {
                return Err(WaitTimeout {
                    what: "every member of the active view to hold the same state".into(),
                    waited: timeout,
                });
            }
            tokio::time::sleep(self.timing.ping_interval / 4).await;
        }
    }

    /// Stops every node gracefully.
    pub async fn shutdown(mut self) {
        for (_, (_, handle)) in std::mem::take(&mut self.replicas) {
            handle.shutdown().await;
        }
        if let Some(fe) = self.frontend.take() {
            fe.shutdown().await;
        }
        if let Some(registry) = self.registry.take() {
            registry.shutdown().await;
        }
    }
}

impl LocalCluster<just_hungry_core::orders::OrderBook> {
    /// A new order-book client.
    pub fn order_client(&mut self, config: ClientConfig) -> OrderClient {
        let endpoint = self.client_endpoint();
        OrderClient::spawn(endpoint, Address::new(REGISTRY_ADDRESS), config)
    }
}
