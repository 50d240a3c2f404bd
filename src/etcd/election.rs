//! Several front-ends, one active: each candidate campaigns for one etcd key on a lease of
//! its own (the front-end's name, so the key also tells clients and replicas where the active
//! one is); the holder runs the front-end, the others stand by and take the key when the
//! holder's lease lapses.
//!
//! Safety does not rest on the election: two candidates that both believe they hold the key
//! (one paused past its lease) still cannot install conflicting views, because every view
//! change is a compare-and-swap on the view's key ([`EtcdViewStore`]) and replicas refuse
//! the messages of older views. The election only decides who *tries*.

use std::time::Duration;

use just_hungry_core::ids::Address;
use just_hungry_core::protocol::FRONTEND_NAME;
use just_hungry_core::protocol::frontend::FrontendConfig;
use just_hungry_core::runtime::{self, NodeHandle, NodeReporter};
use just_hungry_core::state_machine::StateMachine;
use just_hungry_core::transport::Transport;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::client::{EtcdClient, EtcdError, Expected, Lease, Swap};
use super::names::{EtcdNames, name_key};
use super::view_store::{DEFAULT_VIEW_KEY, EtcdViewStore};

/// Where the candidates campaign and keep the view, and for how long a silent holder keeps
/// the key.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// The key held by the active front-end, whose value is its address (by default the
    /// front-end's name among the etcd names, so lookups find the active one).
    pub key: String,
    /// The key of the view ([`EtcdViewStore`]).
    pub view_key: String,
    /// The lease of a candidate: a holder that cannot renew it for this long loses the key,
    /// and a standby takes over about this long after the holder died (at least etcd's
    /// minimum TTL, 2 s with etcd's default election timeout).
    pub lease_time: Duration,
    /// The lease of the names its front-end registers besides the elected one (the
    /// registry's autoclean).
    pub names_lease_time: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            key: name_key(FRONTEND_NAME),
            view_key: DEFAULT_VIEW_KEY.to_owned(),
            lease_time: Duration::from_secs(2),
            names_lease_time: Duration::from_secs(20),
        }
    }
}

/// The front-end a candidate runs during one term (while it holds the key).
#[derive(Clone)]
pub struct ActiveTerm {
    /// Where the front-end listens.
    pub address: Address,
    /// What asks the front-end for its report (for an endpoint's `/readyz` and status page).
    pub reporter: NodeReporter,
}

/// One front-end candidate, running: it campaigns, runs the front-end while it holds the
/// key, and campaigns again after it loses it.
pub struct FrontendCandidate {
    name: String,
    active: watch::Receiver<Option<ActiveTerm>>,
    shutdown: watch::Sender<bool>,
    pauses: mpsc::UnboundedSender<Duration>,
    task: JoinHandle<()>,
}

impl FrontendCandidate {
    /// Starts candidate `config.name`. Each time it is elected it makes a transport with
    /// `make_transport` (which returns the transport and the address it is reached at) and
    /// runs a front-end on it with `config`, its view in etcd; `config.address` and
    /// `config.registry` are set here.
    pub fn spawn<S, T, F, Fut>(
        client: EtcdClient,
        config: FrontendConfig,
        election: ElectionConfig,
        make_transport: F,
    ) -> Self
    where
        S: StateMachine,
        T: Transport,
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<(T, Address)>> + Send + 'static,
    {
        let (active_tx, active) = watch::channel(None);
        let (shutdown, stop) = watch::channel(false);
        let (pauses, paused) = mpsc::unbounded_channel();
        let name = config.name.clone();
        let task = tokio::spawn(campaign::<S, T, F, Fut>(
            client,
            config,
            election,
            make_transport,
            active_tx,
            (stop, paused),
        ));
        FrontendCandidate {
            name,
            active,
            shutdown,
            pauses,
            task,
        }
    }

    /// The candidate's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where its front-end listens while it runs one (it holds the key), else `None`.
    pub fn active_address(&self) -> Option<Address> {
        self.active
            .borrow()
            .as_ref()
            .map(|term| term.address.clone())
    }

    /// The term it serves now (`None` while it stands by), kept up to date through its
    /// terms: `changed()` on the receiver sees each start and end (an endpoint follows it with
    /// `OpsEndpoint::set_node`).
    pub fn watch_active(&self) -> watch::Receiver<Option<ActiveTerm>> {
        self.active.clone()
    }

    /// Waits until this candidate runs the active front-end, and returns its address.
    pub async fn wait_active(&self) -> Address {
        let mut active = self.active.clone();
        match active.wait_for(Option::is_some).await {
            Ok(term) => term
                .as_ref()
                .map_or_else(|| Address::new(""), |term| term.address.clone()),
            Err(_) => std::future::pending().await,
        }
    }

    /// Freezes the candidate for `duration` as `SIGSTOP` then `SIGCONT` would its process:
    /// its front-end takes no message and it renews no lease meanwhile, so a pause past its
    /// lease lets a standby take over while this one still believes it is active. Returns
    /// at once; only a candidate running the front-end pauses.
    pub fn pause(&self, duration: Duration) {
        let _ = self.pauses.send(duration);
    }

    /// Kills the candidate as `kill -9` would its process: its front-end stops at once, and
    /// its key stays until its lease lapses.
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Stops the candidate and gives the key up (its lease revoked), so that a standby
    /// takes over at once.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Retries `f` while etcd cannot decide, every 200 ms, until `stop` is set.
async fn until_decided<T, F, Fut>(
    what: &str,
    stop: &mut watch::Receiver<bool>,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EtcdError>>,
{
    loop {
        match f().await {
            Ok(value) => return Some(value),
            Err(e) => tracing::warn!(error = %e, "cannot {what}; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return None,
        }
    }
}

async fn campaign<S, T, F, Fut>(
    client: EtcdClient,
    config: FrontendConfig,
    election: ElectionConfig,
    mut make_transport: F,
    active: watch::Sender<Option<ActiveTerm>>,
    (mut stop, mut pauses): (watch::Receiver<bool>, mpsc::UnboundedReceiver<Duration>),
) where
    S: StateMachine,
    T: Transport,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<(T, Address)>> + Send + 'static,
{
    let name = config.name.clone();
    let key = election.key.as_bytes().to_vec();
    loop {
        let (transport, address) = match make_transport().await {
            Ok(made) => made,
            Err(e) => {
                tracing::error!(node = %name, error = %e, "cannot open the front-end's transport; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        let Some(lease) = until_decided("get a lease from etcd", &mut stop, || {
            client.grant_lease(election.lease_time)
        })
        .await
        else {
            return;
        };
        // Stand by until the key is ours.
        let mut holder: Option<String> = None;
        loop {
            let swap = until_decided("campaign", &mut stop, || {
                client.compare_and_swap(
                    &key,
                    Expected::Absent,
                    address.as_str().as_bytes(),
                    Some(lease.id),
                )
            })
            .await;
            let Some(swap) = swap else {
                let _ = client.revoke(lease.id).await;
                return;
            };
            match swap {
                Swap::Swapped { .. } => break,
                Swap::Failed { current: Some(kv) } if kv.lease == lease.id => break,
                Swap::Failed { current } => {
                    let now = current.map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                    if now != holder {
                        tracing::info!(node = %name, active = now.as_deref().unwrap_or("none"), "standing by: another front-end is active");
                        holder = now;
                    }
                }
            }
            // Keep our own lease while we wait, and look again.
            tokio::select! {
                _ = tokio::time::sleep(election.lease_time / 4) => {}
                _ = stop.changed() => {
                    let _ = client.revoke(lease.id).await;
                    return;
                }
            }
            if let Ok(None) = client.keep_alive(lease.id).await {
                // Our own lease lapsed while we waited (paused?): take a new one next round.
                break;
            }
        }
        if client.get(&key).await.ok().flatten().map(|kv| kv.lease) != Some(lease.id) {
            continue;
        }
        tracing::info!(node = %name, address = %address, lease = lease.id, "elected: the active front-end");
        let mut frontend = config.clone();
        frontend.address = address.clone();
        let transport =
            EtcdNames::<S, T>::new(transport, client.clone(), election.names_lease_time)
                .leave_to_election(FRONTEND_NAME);
        frontend.registry = transport.registry_address();
        let store = EtcdViewStore::new(client.clone(), election.view_key.clone());
        let node = runtime::spawn_frontend::<S, _>(transport, frontend, Box::new(store));
        let _ = active.send(Some(ActiveTerm {
            address,
            reporter: node.reporter(),
        }));
        let why = hold(&client, lease, &node, &mut stop, &mut pauses).await;
        let _ = active.send(None);
        node.shutdown().await;
        let _ = client.revoke(lease.id).await;
        match why {
            None => {
                tracing::info!(node = %name, "stopped: gave the front-end's key up");
                return;
            }
            Some(why) => {
                tracing::warn!(node = %name, reason = %why, "stepped down: no longer the active front-end")
            }
        }
    }
}

/// Renews the lease while the front-end runs; returns why it must step down (the lease is
/// gone, or the front-end stopped), or `None` when asked to stop.
async fn hold(
    client: &EtcdClient,
    lease: Lease,
    node: &NodeHandle,
    stop: &mut watch::Receiver<bool>,
    pauses: &mut mpsc::UnboundedReceiver<Duration>,
) -> Option<String> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(lease.ttl / 3) => {}
            reason = node.failed() => return Some(reason),
            _ = stop.changed() => return None,
            Some(pause) = pauses.recv() => {
                node.pause(pause).await;
                tokio::time::sleep(pause).await;
            }
        }
        // Only a lease known to be gone ends the term. While etcd cannot answer (no quorum),
        // no other candidate can take the key either, and etcd's leases do not expire
        // without a leader: the front-end keeps serving its view (a change of view waits
        // for etcd). Cut off from a healthy etcd, its lease lapses there and a standby takes
        // over; until this one hears so, both may act, which the view's compare-and-swap
        // makes safe.
        match client.keep_alive(lease.id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Some("the lease lapsed".into()),
            Err(e) => {
                tracing::warn!(node = %node.name(), error = %e, "cannot renew the front-end's lease; serving on, trying again")
            }
        }
    }
}
