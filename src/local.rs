//! A whole cluster in one process: a registry, a front-end and any number of replicas, each a
//! tokio task, which can be crashed and started at any time, on any [`Network`] (the in-memory
//! transport by default).
//!
//! This is what `cargo run --example cluster` and the integration tests are built on, and the
//! shortest way to embed a replicated service in a program.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::OrderClient;
use just_hungry_core::ids::{Address, Identity, NodeRole, ReplicaId, Time, View};
use just_hungry_core::protocol::Timing;
use just_hungry_core::protocol::client::ClientConfig;
use just_hungry_core::protocol::frontend::FrontendConfig;
use just_hungry_core::protocol::replica::ReplicaConfig;
use just_hungry_core::rng::SeededRng;
use just_hungry_core::runtime::view_store::{MemoryViewStore, ViewStore};
use just_hungry_core::runtime::{self, Client, NodeHandle, NodeReport, random_u64};
use just_hungry_core::state_machine::{CommandValidator, StateMachine};
use just_hungry_core::storage::{Disk, FsyncPolicy, ReplicaStore};
use just_hungry_core::transport::Transport;
use just_hungry_transport_mem::{MemEndpoint, MemNetwork};
use just_hungry_transport_tcp::tls::DevPki;
use just_hungry_transport_tcp::{TcpConfig, TcpTransport};

/// Where the nodes of a [`LocalCluster`] are attached: hands out one transport endpoint per
/// node.
pub trait Network: Send + Sync + 'static {
    /// The transport of one endpoint.
    type Endpoint: Transport;

    /// A new endpoint for the node `identity` (its messages carry that identity) of service
    /// `service` ([`StateMachine::SERVICE`]), and the address others reach it at.
    fn endpoint(
        &self,
        identity: &Identity,
        service: &'static str,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Endpoint, Address)>> + Send;

    /// Makes `address` refuse messages from now on (its node was killed).
    fn crash(&self, address: &Address);
}

/// Which network a [`LocalCluster`] runs on (the `--transport` option of the examples and
/// the load generator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// In-process channels ([`MemNetwork`]).
    Mem,
    /// TCP sockets on 127.0.0.1, a free port per node ([`TcpNetwork`]).
    Tcp,
}

/// Real TCP sockets on 127.0.0.1, every node on a free port: the same cluster as on the
/// in-memory network, over the wire format of the binaries. [`TcpNetwork::tls`] (the
/// default) secures every link with mutual TLS, each node holding a certificate of a
/// development CA made for this network; [`TcpNetwork::plaintext`] is the same without TLS
/// (to measure what TLS costs).
#[derive(Clone, Debug)]
pub struct TcpNetwork {
    pki: Option<Arc<DevPki>>,
}

/// How long the certificates of a [`TcpNetwork`] are valid.
pub const LOCAL_CERT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

impl TcpNetwork {
    /// Mutual TLS on every link, with a fresh development CA.
    pub fn tls() -> std::io::Result<Self> {
        let pki = DevPki::generate("local").map_err(std::io::Error::other)?;
        Ok(TcpNetwork {
            pki: Some(Arc::new(pki)),
        })
    }

    /// Plaintext links: a peer is whoever its hello says.
    pub fn plaintext() -> Self {
        TcpNetwork { pki: None }
    }

    /// The development CA of this network, if it uses TLS (to issue certificates for other
    /// peers, as the tests of hostile peers do).
    pub fn pki(&self) -> Option<&DevPki> {
        self.pki.as_deref()
    }
}

impl Network for TcpNetwork {
    type Endpoint = TcpTransport;

    async fn endpoint(
        &self,
        identity: &Identity,
        service: &'static str,
    ) -> std::io::Result<(TcpTransport, Address)> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let mut config = TcpConfig::server(listen, identity.clone());
        config.service = Some(service.to_owned());
        if let Some(pki) = &self.pki {
            let tls = pki
                .config_for(identity, LOCAL_CERT_VALIDITY)
                .map_err(std::io::Error::other)?;
            config = config.with_tls(tls);
        }
        // A client listens nowhere, as the client binary: one connection to each node it
        // talks to, answered on it (issue 17: a listening client cost four TLS connections,
        // two of them dialled back by the front-end, and their share of every poll).
        let transport = if identity.role == NodeRole::Client {
            TcpTransport::connect_only(config).await?
        } else {
            TcpTransport::bind(config).await?
        };
        let address = transport.local_address();
        Ok((transport, address))
    }

    /// Nothing to do: a crashed node's task drops its transport, which closes its sockets, so
    /// its port refuses connections from then on.
    fn crash(&self, _address: &Address) {}
}

impl Network for MemNetwork {
    type Endpoint = MemEndpoint;

    /// The in-process network carries one service: `service` is not checked.
    async fn endpoint(
        &self,
        identity: &Identity,
        _service: &'static str,
    ) -> std::io::Result<(MemEndpoint, Address)> {
        let address = Address::new(identity.name.as_str());
        let endpoint = MemNetwork::endpoint(self, address.clone(), identity.clone());
        Ok((endpoint, address))
    }

    fn crash(&self, address: &Address) {
        MemNetwork::crash(self, address);
    }
}

/// Why [`LocalCluster::form`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// A node could not be started (no endpoint).
    #[error("a node could not start: {0}")]
    Start(#[from] std::io::Error),
    /// The view did not form in time.
    #[error(transparent)]
    Wait(#[from] WaitTimeout),
}

/// Why waiting for a cluster condition failed.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for: {what}")]
pub struct WaitTimeout {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub waited: Duration,
}

/// A cluster of service `S` in this process, on network `N`. Dropping it leaves the tasks
/// running until the tokio runtime stops; call [`LocalCluster::shutdown`] to stop them
/// gracefully.
pub struct LocalCluster<S: StateMachine, N: Network = MemNetwork> {
    network: Arc<N>,
    /// Where new clients run ([`LocalCluster::run_clients_on`]); `None`: the caller's runtime.
    client_runtime: Option<tokio::runtime::Handle>,
    timing: Timing,
    /// Makes the store of each front-end started (the same memory store by default, so a
    /// restarted front-end resumes from its view).
    view_stores: Box<dyn Fn() -> Box<dyn ViewStore> + Send + Sync>,
    registry_address: Address,
    registry: Option<NodeHandle>,
    frontend: Option<(Address, NodeHandle)>,
    replicas: BTreeMap<String, (ReplicaId, Address, NodeHandle)>,
    next_client: u64,
    /// Incarnations drawn from a seed, for replayable runs; `None`: random.
    seeded_ids: Option<SeededRng>,
    /// The log that makes a durable replica's snapshot due; `None`: the store's default.
    snapshot_after_bytes: Option<u64>,
    _service: std::marker::PhantomData<fn() -> S>,
}

impl<S: StateMachine> LocalCluster<S, MemNetwork> {
    /// A cluster on a new in-memory network, with a running registry, no front-end and no
    /// replica yet.
    pub fn new(timing: Timing) -> Self {
        let network = MemNetwork::new();
        let registry_address = Address::new("registry");
        let identity = Identity::new(NodeRole::Registry, "registry");
        let endpoint = MemNetwork::endpoint(&network, registry_address.clone(), identity);
        Self::with_registry(network, timing, endpoint, registry_address)
    }
}

impl<S: StateMachine, N: Network> LocalCluster<S, N> {
    /// A cluster on `network`, with a running registry, no front-end and no replica yet.
    pub async fn on(network: N, timing: Timing) -> std::io::Result<Self> {
        let (endpoint, registry_address) = network
            .endpoint(&Identity::new(NodeRole::Registry, "registry"), S::SERVICE)
            .await?;
        Ok(Self::with_registry(
            network,
            timing,
            endpoint,
            registry_address,
        ))
    }

    fn with_registry(
        network: N,
        timing: Timing,
        endpoint: N::Endpoint,
        registry_address: Address,
    ) -> Self {
        let registry = runtime::spawn_registry(endpoint, timing.autoclean);
        LocalCluster {
            network: Arc::new(network),
            client_runtime: None,
            timing,
            view_stores: {
                let store = MemoryViewStore::new();
                Box::new(move || Box::new(store.clone()))
            },
            registry_address,
            registry: Some(registry),
            frontend: None,
            replicas: BTreeMap::new(),
            next_client: 0,
            seeded_ids: None,
            snapshot_after_bytes: None,
            _service: std::marker::PhantomData,
        }
    }

    /// Durable replicas started from now on snapshot their state once `bytes` of log piled
    /// up since the last snapshot ([`ReplicaStore::set_snapshot_after_bytes`]; the default is
    /// [`ReplicaStore::MIN_LOG_BYTES_BEFORE_SNAPSHOT`]): a test's few orders then make several.
    pub fn snapshot_after_bytes(&mut self, bytes: u64) {
        self.snapshot_after_bytes = Some(bytes);
    }

    /// Draws replica incarnations from `seed` instead of at random, so a run under a paused
    /// clock replays exactly.
    pub fn seed_ids(&mut self, seed: u64) {
        self.seeded_ids = Some(SeededRng::new(seed));
    }

    fn next_incarnation(&mut self) -> u64 {
        match self.seeded_ids.as_mut() {
            Some(rng) => rng.next_u64(),
            None => random_u64(),
        }
    }

    /// The network the nodes are attached to.
    pub fn network(&self) -> &N {
        &self.network
    }

    /// Where the registry is.
    pub fn registry_address(&self) -> &Address {
        &self.registry_address
    }

    /// Front-ends started from now on keep their view in the store `make` returns (for
    /// instance an [`EtcdViewStore`](crate::etcd::EtcdViewStore)) instead of in memory.
    pub fn use_view_stores(
        &mut self,
        make: impl Fn() -> Box<dyn ViewStore> + Send + Sync + 'static,
    ) {
        self.view_stores = Box::new(make);
    }

    /// Starts the front-end (again, after a crash: it resumes from its stored view).
    pub async fn start_frontend(&mut self) -> std::io::Result<()> {
        let (endpoint, address) = self
            .network
            .endpoint(&Identity::new(NodeRole::Frontend, "frontend"), S::SERVICE)
            .await?;
        let config =
            FrontendConfig::new("frontend", address.clone(), self.registry_address.clone())
                .with_timing(self.timing);
        let handle = runtime::spawn_frontend::<S, _>(endpoint, config, (self.view_stores)());
        self.frontend = Some((address, handle));
        Ok(())
    }

    /// Starts replica `name` (a fresh incarnation) holding `initial`, its pre-defined data.
    pub async fn start_replica(
        &mut self,
        name: &str,
        initial: S,
        validator: Arc<dyn CommandValidator<S>>,
    ) -> std::io::Result<ReplicaId> {
        let (endpoint, config) = self.replica_endpoint(name).await?;
        let id = config.id.clone();
        let address = config.address.clone();
        let handle = runtime::spawn_replica(endpoint, config, initial, validator);
        self.replicas
            .insert(name.to_owned(), (id.clone(), address, handle));
        Ok(id)
    }

    /// Starts replica `name` (a fresh incarnation) as a durable one, keeping its data in
    /// directory `dir` of `disk` with fsync `policy`, and starting from what it holds there
    /// (`initial`, its pre-defined data, for a fresh directory). A directory that cannot be
    /// opened (corrupt, another replica's) is an error of kind `InvalidData` naming why.
    pub async fn start_durable_replica(
        &mut self,
        name: &str,
        initial: S,
        validator: Arc<dyn CommandValidator<S>>,
        disk: Arc<dyn Disk>,
        dir: &std::path::Path,
        policy: FsyncPolicy,
    ) -> std::io::Result<ReplicaId> {
        let (endpoint, config) = self.replica_endpoint(name).await?;
        let id = config.id.clone();
        let address = config.address.clone();
        let (mut store, recovered) = ReplicaStore::open(
            disk,
            dir,
            &id,
            policy,
            Time::ZERO,
            initial,
            config.client_table,
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if let Some(bytes) = self.snapshot_after_bytes {
            store.set_snapshot_after_bytes(bytes);
        }
        let handle = runtime::spawn_durable_replica(endpoint, config, store, recovered, validator);
        self.replicas
            .insert(name.to_owned(), (id.clone(), address, handle));
        Ok(id)
    }

    /// An endpoint for replica `name` and its configuration, with a fresh incarnation.
    async fn replica_endpoint(
        &mut self,
        name: &str,
    ) -> std::io::Result<(N::Endpoint, ReplicaConfig)> {
        let identity = Identity::new(NodeRole::Replica, name);
        let (endpoint, address) = self.network.endpoint(&identity, S::SERVICE).await?;
        let id = ReplicaId::new(name, self.next_incarnation());
        let mut config = ReplicaConfig::new(id, address, self.registry_address.clone());
        config.timing = self.timing;
        Ok((endpoint, config))
    }

    /// Kills replica `name` at once, as `kill -9` would: its connections are dropped and
    /// messages to it are refused from now on.
    pub async fn crash_replica(&mut self, name: &str) -> bool {
        let Some((_, address, handle)) = self.replicas.remove(name) else {
            return false;
        };
        self.network.crash(&address);
        handle.crash().await;
        true
    }

    /// Freezes the front-end's event loop for `duration`, as `SIGSTOP` and `SIGCONT` would
    /// (see [`NodeHandle::pause`]); returns at once. `false` if no front-end runs.
    pub async fn pause_frontend(&self, duration: std::time::Duration) -> bool {
        match &self.frontend {
            Some((_, handle)) => {
                handle.pause(duration).await;
                true
            }
            None => false,
        }
    }

    /// Kills the front-end at once; [`LocalCluster::start_frontend`] brings it back.
    pub async fn crash_frontend(&mut self) {
        if let Some((address, handle)) = self.frontend.take() {
            self.network.crash(&address);
            handle.crash().await;
        }
    }

    /// The names of the running replicas.
    pub fn replica_names(&self) -> Vec<String> {
        self.replicas.keys().cloned().collect()
    }

    /// Starts every client made from now on, its endpoint and its tasks, on `runtime`
    /// instead of the caller's: the load generator gives its clients a thread of their own,
    /// as clients elsewhere would be, so that they do not share the nodes' one thread
    /// (issue 17). The nodes stay where they are.
    pub fn run_clients_on(&mut self, runtime: tokio::runtime::Handle) {
        self.client_runtime = Some(runtime);
    }

    /// A new client with its own id, on its own endpoint.
    pub async fn client(&mut self, config: ClientConfig) -> std::io::Result<Client<S>> {
        self.spawn_client(move |endpoint, registry| Client::spawn(endpoint, registry, config))
            .await
    }

    /// A new client endpoint, handed with the registry's address to `start`, on the clients'
    /// runtime ([`LocalCluster::run_clients_on`]) if there is one.
    async fn spawn_client<T: Send + 'static>(
        &mut self,
        start: impl FnOnce(N::Endpoint, Address) -> T + Send + 'static,
    ) -> std::io::Result<T> {
        self.next_client += 1;
        let identity = Identity::new(NodeRole::Client, format!("client-{}", self.next_client));
        let network = self.network.clone();
        let registry = self.registry_address.clone();
        let spawn = async move {
            let (endpoint, _) = network.endpoint(&identity, S::SERVICE).await?;
            Ok(start(endpoint, registry))
        };
        match &self.client_runtime {
            Some(runtime) => runtime.spawn(spawn).await.map_err(std::io::Error::other)?,
            None => spawn.await,
        }
    }

    /// Reports of every running replica, by name.
    pub async fn replica_reports(&self) -> BTreeMap<String, NodeReport> {
        let mut reports = BTreeMap::new();
        for (name, (_, _, handle)) in &self.replicas {
            if let Some(report) = handle.report().await {
                reports.insert(name.clone(), report);
            }
        }
        reports
    }

    /// The registry's report, if it runs.
    pub async fn registry_report(&self) -> Option<NodeReport> {
        match &self.registry {
            Some(handle) => handle.report().await,
            None => None,
        }
    }

    /// The front-end's report, if it runs.
    pub async fn frontend_report(&self) -> Option<NodeReport> {
        match &self.frontend {
            Some((_, handle)) => handle.report().await,
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
        let what = "every member of the active view to hold the same state";
        self.wait_for_converged_view(what, timeout, |_| true)
            .await
            .map(|(_, reports)| reports)
    }

    /// Forms a cluster: starts replicas `replica-1` to `replica-{replicas}` holding `initial`,
    /// then the front-end, and waits up to `timeout` for the active view of them all
    /// ([`LocalCluster::wait_for_active_view`]), which it returns.
    pub async fn form(
        &mut self,
        replicas: usize,
        initial: S,
        validator: Arc<dyn CommandValidator<S>>,
        timeout: Duration,
    ) -> Result<View, FormError>
    where
        S: Clone,
    {
        for i in 1..=replicas {
            self.start_replica(&format!("replica-{i}"), initial.clone(), validator.clone())
                .await?;
        }
        self.start_frontend().await?;
        Ok(self.wait_for_active_view(replicas, timeout).await?)
    }

    /// Waits until the front-end has an active view of `members` replicas that all run and
    /// hold the same state, and returns that view.
    pub async fn wait_for_active_view(
        &self,
        members: usize,
        timeout: Duration,
    ) -> Result<View, WaitTimeout> {
        let what = format!("an active view of {members} replicas holding the same state");
        self.wait_for_converged_view(&what, timeout, |view| view.backups.len() + 1 == members)
            .await
            .map(|(view, _)| view)
    }

    /// Polls until the front-end's view is active, `wanted`, and every member runs in it with
    /// the same digest; returns the view and every replica's report.
    async fn wait_for_converged_view(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&View) -> bool,
    ) -> Result<(View, BTreeMap<String, NodeReport>), WaitTimeout> {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(fe) = self.frontend_report().await
                && fe.active
                && let Some(view) = fe.view
                && wanted(&view)
            {
                let reports = self.replica_reports().await;
                let members: Vec<&NodeReport> = view
                    .members()
                    .filter_map(|m| {
                        reports
                            .get(&m.id.name)
                            .filter(|r| r.view.as_ref().is_some_and(|v| v.number == view.number))
                    })
                    .collect();
                let all_running = members.len() == view.backups.len() + 1;
                let digests: std::collections::BTreeSet<Option<u64>> =
                    members.iter().map(|r| r.digest).collect();
                if all_running && digests.len() == 1 {
                    return Ok((view, reports));
                }
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

    /// Stops every node gracefully.
    pub async fn shutdown(mut self) {
        for (_, (_, _, handle)) in std::mem::take(&mut self.replicas) {
            handle.shutdown().await;
        }
        if let Some((_, fe)) = self.frontend.take() {
            fe.shutdown().await;
        }
        if let Some(registry) = self.registry.take() {
            registry.shutdown().await;
        }
    }
}

impl<N: Network> LocalCluster<crate::orders::OrderBook, N> {
    /// A new order-book client.
    pub async fn order_client(&mut self, config: ClientConfig) -> std::io::Result<OrderClient> {
        self.spawn_client(move |endpoint, registry| OrderClient::spawn(endpoint, registry, config))
            .await
    }

    /// A new order-book client with a chosen id (unique in the cluster).
    pub async fn order_client_with_id(
        &mut self,
        config: ClientConfig,
        id: just_hungry_core::ids::ClientId,
    ) -> std::io::Result<OrderClient> {
        self.spawn_client(move |endpoint, registry| {
            OrderClient::spawn_with_id(endpoint, registry, config, id)
        })
        .await
    }

    /// Whether the front-end runs.
    pub fn frontend_running(&self) -> bool {
        self.frontend.is_some()
    }

    /// The address of running replica `name`.
    pub fn replica_address(&self, name: &str) -> Option<Address> {
        self.replicas.get(name).map(|(_, a, _)| a.clone())
    }

    /// The front-end's address, if it runs.
    pub fn frontend_address(&self) -> Option<Address> {
        self.frontend.as_ref().map(|(a, _)| a.clone())
    }
}
