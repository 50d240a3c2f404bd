//! What a run drives ([`Target`]): a cluster in this process ([`InProcess`]), or a deployment
//! of separate processes, started by the run or already running ([`super::remote`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use just_hungry_core::history;
use just_hungry_core::ids::ClientId;
use just_hungry_core::protocol::client::ClientConfig;
use just_hungry_core::state_machine::CommandValidator;
use just_hungry_core::storage::{Disk, FileDisk};

use super::{LoadError, LoadOptions, initial_book};
use crate::OrderClient;
use crate::local::{LocalCluster, Network};
use crate::orders::{OrderBook, OrderValidator};

/// The front-end's newest view, as a run sees it.
#[derive(Clone, Debug)]
pub(super) struct ViewSeen {
    pub number: u64,
    pub active: bool,
    /// The primary's name.
    pub primary: String,
    /// Backups.
    pub backups: usize,
}

/// A deployment a run drives.
#[async_trait::async_trait]
pub(super) trait Target: Send {
    /// Where the run's clients go, for the report (`in this process`, `registry ADDR`, ...).
    fn describe(&self) -> String;

    /// The order client of the run's client number `index` (from 0; the final reader is
    /// the one after the load's), with an id no other client of the deployment has.
    async fn order_client(
        &mut self,
        config: ClientConfig,
        index: u64,
    ) -> Result<OrderClient, LoadError>;

    /// The front-end's newest view, if it can be learnt.
    async fn view(&mut self) -> Option<ViewSeen>;

    /// The replicas this run may kill (those it started).
    fn killable(&self) -> Vec<String>;

    /// Kills replica `name` as `kill -9` would.
    async fn kill(&mut self, name: &str);

    /// Starts replica `name` (a replacement after a kill).
    async fn start_replica(&mut self, name: &str) -> Result<(), LoadError>;

    /// Waits until every member of the active view holds the same state; why not, if not
    /// within `timeout`.
    async fn wait_for_convergence(&mut self, timeout: Duration) -> Result<(), String>;

    /// Learns what the postcodes of the load hold before it starts, where that is not known
    /// from the options (a deployment of processes).
    async fn read_initial(&mut self) -> Result<(), LoadError> {
        Ok(())
    }

    /// The orders each postcode held before the load, as the history checker names them.
    fn initial(&self) -> BTreeMap<String, Vec<String>>;

    /// Stops what the run started.
    async fn finish(self: Box<Self>);

    /// Where the clients' tasks run, if not on the caller's runtime.
    fn client_runtime(&self) -> Option<tokio::runtime::Handle> {
        None
    }
}

/// A current-thread runtime on a thread of its own, for the clients of a run in this process
/// whose nodes share one current-thread runtime: the clients' work (their TLS ends, their
/// tasks, the run's bookkeeping) would otherwise take turns with the nodes' on one thread and
/// leave the second core idle, so that more clients meant fewer orders (issue 17). Stops its
/// runtime, and every task left on it, when dropped.
pub(super) struct ClientThread {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ClientThread {
    pub(super) fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("loadgen-clients".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                })
            })?;
        Ok(ClientThread {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for ClientThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A whole cluster in this process ([`LocalCluster`]).
pub(super) struct InProcess<N: Network> {
    cluster: LocalCluster<OrderBook, N>,
    /// The clients' thread, when the nodes run on a current-thread runtime.
    clients: Option<ClientThread>,
    options: LoadOptions,
    validator: Arc<dyn CommandValidator<OrderBook>>,
}

impl<N: Network> InProcess<N> {
    /// Starts `options.replicas` replicas and the front-end on `cluster`.
    pub(super) async fn start(
        cluster: LocalCluster<OrderBook, N>,
        options: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let mut cluster = cluster;
        let clients = match (super::RuntimeFlavor::current(), options.clients_on) {
            (Some(super::RuntimeFlavor::CurrentThread), super::ClientPlacement::OwnThread) => {
                Some(ClientThread::start()?)
            }
            _ => None,
        };
        if let Some(clients) = &clients {
            cluster.run_clients_on(clients.handle.clone());
        }
        let mut target = InProcess {
            cluster,
            clients,
            options: options.clone(),
            validator: Arc::new(OrderValidator::offline()),
        };
        for i in 1..=options.replicas {
            target.start_replica(&format!("replica-{i}")).await?;
        }
        target.cluster.start_frontend().await?;
        Ok(target)
    }
}

#[async_trait::async_trait]
impl<N: Network> Target for InProcess<N> {
    fn describe(&self) -> String {
        match self.clients {
            Some(_) => "a cluster in this process, its clients on a thread of their own".to_owned(),
            None => "a cluster in this process".to_owned(),
        }
    }

    fn client_runtime(&self) -> Option<tokio::runtime::Handle> {
        self.clients.as_ref().map(|c| c.handle.clone())
    }

    async fn order_client(
        &mut self,
        config: ClientConfig,
        index: u64,
    ) -> Result<OrderClient, LoadError> {
        let id = ClientId(index + 1);
        Ok(self.cluster.order_client_with_id(config, id).await?)
    }

    async fn view(&mut self) -> Option<ViewSeen> {
        let report = self.cluster.frontend_report().await?;
        let view = report.view?;
        Some(ViewSeen {
            number: view.number.0,
            active: report.active,
            primary: view.primary.id.name.clone(),
            backups: view.backups.len(),
        })
    }

    fn killable(&self) -> Vec<String> {
        self.cluster.replica_names()
    }

    async fn kill(&mut self, name: &str) {
        self.cluster.crash_replica(name).await;
    }

    async fn start_replica(&mut self, name: &str) -> Result<(), LoadError> {
        let book = initial_book(&self.options);
        let validator = self.validator.clone();
        match &self.options.storage {
            None => self.cluster.start_replica(name, book, validator).await?,
            Some((dir, policy)) => {
                let disk: Arc<dyn Disk> = Arc::new(FileDisk);
                let dir = dir.join(name);
                self.cluster
                    .start_durable_replica(name, book, validator, disk, &dir, *policy)
                    .await?
            }
        };
        Ok(())
    }

    async fn wait_for_convergence(&mut self, timeout: Duration) -> Result<(), String> {
        self.cluster
            .wait_for_convergence(timeout)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn initial(&self) -> BTreeMap<String, Vec<String>> {
        history::initial_ids(initial_book(&self.options).ids_by_postcode())
    }

    async fn finish(mut self: Box<Self>) {
        // The front-end first: stopping the replicas under it would make it warn that no
        // member of its view is alive.
        self.cluster.crash_frontend().await;
        self.cluster.shutdown().await;
    }
}
