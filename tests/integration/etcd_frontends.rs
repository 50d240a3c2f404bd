//! Several front-ends on etcd (issue 15): one active, the others standing by; the view in
//! etcd, changed only by compare-and-swap; names on leases, with no registry process. A real
//! three-member etcd cluster on loopback ports; the nodes on the in-memory network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use just_hungry::OrderClient;
use just_hungry::core::ids::{Address, Identity, NodeRole, ReplicaId};
use just_hungry::core::protocol::Timing;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::frontend::FrontendConfig;
use just_hungry::core::protocol::replica::{DEFAULT_MAX_SNAPSHOT_BYTES, ReplicaConfig};
use just_hungry::core::protocol::view_store::ViewRecord;
use just_hungry::core::runtime::{self, NodeHandle, random_u64};
use just_hungry::etcd::{
    DEFAULT_VIEW_KEY, ElectionConfig, EtcdClient, EtcdCluster, EtcdNames, EtcdViewStore,
    FrontendCandidate, check_view_history,
};
use just_hungry::mem::MemNetwork;
use just_hungry::orders::{OrderBook, OrderId, OrderValidator};

const WAIT: Duration = Duration::from_secs(30);

struct Deployment {
    etcd: EtcdCluster,
    client: EtcdClient,
    network: MemNetwork,
    timing: Timing,
    candidates: Vec<Option<FrontendCandidate>>,
    _replicas: Vec<NodeHandle>,
}

impl Deployment {
    /// etcd, `candidates` front-end candidates and three replicas, with the view active.
    async fn start(candidates: usize) -> Self {
        let etcd = EtcdCluster::start(3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = etcd.client().unwrap();
        let network = MemNetwork::new();
        let timing = Timing::default();
        let mut deployment = Deployment {
            etcd,
            client,
            network,
            timing,
            candidates: Vec::new(),
            _replicas: Vec::new(),
        };
        for i in 0..candidates {
            let candidate = deployment.candidate(&format!("frontend-{i}"));
            deployment.candidates.push(Some(candidate));
        }
        let validator = Arc::new(OrderValidator::offline());
        for i in 1..=3 {
            let name = format!("replica-{i}");
            let address = Address::new(name.as_str());
            let endpoint = deployment
                .network
                .endpoint(address.clone(), Identity::new(NodeRole::Replica, &name));
            let transport = EtcdNames::<OrderBook, _>::new(
                endpoint,
                deployment.client.clone(),
                timing.autoclean,
            );
            let config = ReplicaConfig {
                id: ReplicaId::new(&name, random_u64()),
                address,
                registry: transport.registry_address(),
                timing,
                client_table: Default::default(),
                pipeline: Default::default(),
                transfer: Default::default(),
                max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
            };
            deployment._replicas.push(runtime::spawn_replica(
                transport,
                config,
                OrderBook::with_predefined_history(),
                validator.clone(),
            ));
        }
        deployment
            .wait_for_view(|r| r.current_active && r.current.backups.len() == 2)
            .await;
        deployment
    }

    fn candidate(&self, name: &str) -> FrontendCandidate {
        let config = FrontendConfig::new(name, Address::new(name), Address::new(""))
            .with_timing(self.timing);
        let network = self.network.clone();
        let name = name.to_owned();
        FrontendCandidate::spawn::<OrderBook, _, _, _>(
            self.client.clone(),
            config,
            ElectionConfig::default(),
            move || {
                let network = network.clone();
                let name = name.clone();
                async move {
                    let address = Address::new(name.as_str());
                    let identity = Identity::new(NodeRole::Frontend, &name);
                    Ok((network.endpoint(address.clone(), identity), address))
                }
            },
        )
    }

    /// The view etcd holds.
    async fn view(&self) -> Option<ViewRecord> {
        let kv = self.client.get(DEFAULT_VIEW_KEY.as_bytes()).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    async fn wait_for_view(&self, wanted: impl Fn(&ViewRecord) -> bool) -> ViewRecord {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(record) = self.view().await
                && wanted(&record)
            {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such view in etcd: {:?}",
                self.view().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Which candidate runs the active front-end.
    fn active(&self) -> Option<usize> {
        self.candidates
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.active_address().is_some()))
    }

    fn order_client(&self, name: &str) -> OrderClient {
        let endpoint = self
            .network
            .endpoint(Address::new(name), Identity::new(NodeRole::Client, name));
        let transport =
            EtcdNames::<OrderBook, _>::new(endpoint, self.client.clone(), self.timing.autoclean);
        let registry = transport.registry_address();
        OrderClient::spawn(
            transport,
            registry,
            ClientConfig {
                deadline: Duration::from_secs(20),
                ..ClientConfig::default()
            },
        )
    }
}

/// Clients placing orders one after another until stopped; what they were told.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(OrderId, tokio::time::Instant)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(deployment: &Deployment, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|i| {
                let client = deployment.order_client(&format!("client-{i}"));
                let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(id) = client
                            .place_order("SW1A 1AA", vec![format!("dish {i}")])
                            .await
                        {
                            acknowledged
                                .lock()
                                .unwrap()
                                .push((id, tokio::time::Instant::now()));
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acknowledged,
            tasks,
        }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    async fn wait_for(&self, acks: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.count() < acks {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} acknowledged orders",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients and returns every acknowledged order with when it was acknowledged.
    async fn stop(self) -> Vec<(OrderId, tokio::time::Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.acknowledged.lock().unwrap())
    }
}

/// Every acknowledged order is held once, read through whichever front-end is active.
async fn audit(deployment: &Deployment, acknowledged: &[OrderId]) {
    let reader = deployment.order_client("auditor");
    let audit = reader
        .audit(acknowledged)
        .await
        .expect("read every history");
    assert!(audit.problems().is_empty(), "{audit}");
}

#[tokio::test]
async fn a_standby_takes_over_when_the_active_front_end_is_killed_and_no_order_is_lost() {
    let mut deployment = Deployment::start(2).await;
    let first = deployment.active().expect("one front-end is active");
    let before = deployment.view().await.unwrap();
    let load = Load::start(&deployment, 4);
    load.wait_for(200).await;
    // kill -9 of the active front-end: its address refuses messages, its lease is not renewed.
    let killed_at = tokio::time::Instant::now();
    let active = deployment.candidates[first].take().unwrap();
    deployment.network.crash(&active.active_address().unwrap());
    active.crash().await;
    let at_kill = load.count();
    load.wait_for(at_kill + 200).await;
    let acknowledged = load.stop().await;
    // Orders already in flight are still acknowledged just after the kill (the primary
    // answers clients directly): the takeover is the longest silence after it.
    let mut times: Vec<_> = acknowledged.iter().map(|(_, at)| *at).collect();
    times.sort();
    let takeover = times
        .windows(2)
        .filter(|w| w[1] > killed_at)
        .map(|w| w[1] - w[0].max(killed_at))
        .max()
        .unwrap();
    eprintln!(
        "front-end takeover: the longest gap between acknowledged orders after kill -9: {takeover:?}"
    );
    let second = deployment.active().expect("the standby is active");
    assert_ne!(first, second);
    // The standby resumed from etcd's view: same view or a newer one, never an older.
    let after = deployment.view().await.unwrap();
    assert!(after.current.number >= before.current.number);
    let ids: Vec<OrderId> = acknowledged.iter().map(|(id, _)| *id).collect();
    audit(&deployment, &ids).await;
}

#[tokio::test]
async fn two_front_ends_that_both_believe_they_are_active_lose_no_order_and_no_view() {
    let deployment = Deployment::start(2).await;
    let first = deployment.active().expect("one front-end is active");
    let load = Load::start(&deployment, 4);
    load.wait_for(100).await;
    // SIGSTOP past its lease: the standby takes over while the paused one still believes it
    // is active; when it wakes, both do, until it finds its lease gone.
    deployment.candidates[first]
        .as_ref()
        .unwrap()
        .pause(Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + WAIT;
    while deployment.active() == Some(first) || deployment.active().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no takeover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = deployment.active().unwrap();
    assert_ne!(first, second);
    // The new one serves while the old one sleeps.
    let view = deployment.view().await.unwrap().current.number;
    let at = load.count();
    load.wait_for(at + 100).await;
    // The paused one wakes (after 5 s) and steps down; orders keep being placed.
    let deadline = tokio::time::Instant::now() + WAIT;
    while deployment.candidates[first]
        .as_ref()
        .unwrap()
        .active_address()
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the woken front-end did not step down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at = load.count();
    load.wait_for(at + 100).await;
    let acknowledged = load.stop().await;
    let ids: Vec<OrderId> = acknowledged.iter().map(|(id, _)| *id).collect();
    audit(&deployment, &ids).await;
    // etcd's history of the view key: view numbers never go back, none is written twice
    // with different contents.
    let records = EtcdViewStore::new(deployment.client.clone(), DEFAULT_VIEW_KEY)
        .history()
        .await
        .unwrap();
    check_view_history(&records).unwrap_or_else(|e| panic!("{e}: {records:?}"));
    assert!(records.last().unwrap().current.number >= view);
}

#[tokio::test]
async fn with_two_etcd_members_of_three_dead_the_current_view_keeps_serving() {
    let mut deployment = Deployment::start(2).await;
    let active = deployment.active().expect("one front-end is active");
    let view = deployment.view().await.unwrap();
    let load = Load::start(&deployment, 2);
    load.wait_for(50).await;
    // etcd loses its quorum: no view change can be recorded, and none is needed.
    deployment.etcd.kill(0);
    deployment.etcd.kill(1);
    // A check that the service does *not* stop needs a window: four seconds is two of the
    // front-end's leases, after which one that stepped down when it could not renew would
    // have stopped serving.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let at = load.count();
    load.wait_for(at + 100).await;
    assert_eq!(
        deployment.active(),
        Some(active),
        "the front-end stayed active"
    );
    // The members return: etcd answers again, with the same view.
    deployment.etcd.restart(0).unwrap();
    deployment.etcd.restart(1).unwrap();
    deployment.etcd.wait_healthy(0).await.unwrap();
    deployment.etcd.wait_healthy(1).await.unwrap();
    assert_eq!(deployment.view().await.unwrap().current, view.current);
    let at = load.count();
    load.wait_for(at + 50).await;
    let acknowledged = load.stop().await;
    let ids: Vec<OrderId> = acknowledged.iter().map(|(id, _)| *id).collect();
    audit(&deployment, &ids).await;
}
