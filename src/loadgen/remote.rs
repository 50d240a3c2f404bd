//! A deployment of separate processes as a run's [`Target`]: one already running, found
//! through its registry (`loadgen --registry ADDR`) or its etcd (`loadgen --etcd URLS`,
//! docs/DEPLOY.md), or one the run starts itself from the
//! binaries beside the load generator (`loadgen --spawn N`: a registry, a front-end and N
//! replicas, every link on mutual TLS with a development CA made for the run), whose replicas
//! it can then kill with SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use just_hungry_core::history;
use just_hungry_core::ids::{Address, ClientId, Identity, NodeRole};
use just_hungry_core::protocol::client::ClientConfig;
use just_hungry_core::runtime::random_u64;
use just_hungry_transport_tcp::tls::{DevPki, TlsConfig, write_dir};
use just_hungry_transport_tcp::{TcpConfig, TcpTransport};
use tokio::time::Instant;

use super::target::{Target, ViewSeen};
use super::{LoadError, LoadOptions};
use crate::OrderClient;
use crate::nemesis::POSTCODES;
use crate::orders::OrderBook;
use crate::postcode::normalise;

/// The name of the load generator's own certificate and identity.
pub const LOADGEN_NAME: &str = "loadgen";

/// Where a [`Remote`]'s clients find the front-end.
#[derive(Clone)]
enum Names {
    /// A registry process at this address.
    Registry(Address),
    /// etcd (docs/DEPLOY.md), through this client.
    #[cfg(feature = "etcd")]
    Etcd(crate::etcd::EtcdClient),
}

/// A running deployment, reached through its registry or its etcd.
pub(super) struct Remote {
    names: Names,
    tcp: TcpConfig,
    /// The client that asks for the cluster's status.
    status: OrderClient,
    /// Client ids of this run start here: ids of earlier runs on the same deployment are
    /// still in its client table, and a reused id's requests would be refused as stale.
    id_base: u64,
    initial: BTreeMap<String, Vec<String>>,
    spawned: Option<Spawned>,
    describe: String,
}

impl Remote {
    /// The deployment whose registry is at `registry`, reached with `tcp` (its TLS, if any).
    pub(super) async fn connect(
        registry: &str,
        tcp: TcpConfig,
        client: ClientConfig,
    ) -> Result<Remote, LoadError> {
        let registry = Address::new(registry);
        let describe = format!("the deployment of registry {registry}");
        Self::connect_to(Names::Registry(registry), tcp, client, describe).await
    }

    /// The deployment whose active front-end `etcd` names (docs/DEPLOY.md), reached with
    /// `tcp`.
    #[cfg(feature = "etcd")]
    pub(super) async fn connect_etcd(
        etcd: crate::etcd::EtcdClient,
        tcp: TcpConfig,
        client: ClientConfig,
    ) -> Result<Remote, LoadError> {
        // One read first: an etcd that refuses this process is said at once, with its reason.
        crate::etcd::check_reachable(&etcd)
            .await
            .map_err(|e| LoadError::Options(format!("cannot read the front-end's name: {e}")))?;
        let describe = format!("the deployment on etcd {}", etcd.endpoints().join(","));
        Self::connect_to(Names::Etcd(etcd), tcp, client, describe).await
    }

    async fn connect_to(
        names: Names,
        tcp: TcpConfig,
        client: ClientConfig,
        describe: String,
    ) -> Result<Remote, LoadError> {
        let id_base = random_u64() >> 20;
        let status = connect_client(&tcp, &names, client, ClientId(id_base)).await?;
        Ok(Remote {
            names,
            tcp,
            status,
            id_base: id_base + 1,
            initial: BTreeMap::new(),
            spawned: None,
            describe,
        })
    }

    /// Starts a registry, a front-end and `options.replicas` replicas as processes, from the
    /// binaries in `binaries`, and connects to them.
    pub(super) async fn spawn(binaries: &Path, options: &LoadOptions) -> Result<Remote, LoadError> {
        let spawned = Spawned::start(binaries, options)?;
        let tcp = TcpConfig::client(LOADGEN_NAME)
            .for_service::<OrderBook>()
            .with_tls(
                TlsConfig::from_dir(&spawned.tls_dir, LOADGEN_NAME)
                    .map_err(|e| LoadError::Options(format!("the run's certificates: {e}")))?,
            );
        let registry = spawned.registry.clone();
        let mut remote = Remote::connect(&registry, tcp, options.client).await?;
        remote.describe = format!(
            "{} processes started by loadgen (registry {registry})",
            options.replicas + 2
        );
        remote.spawned = Some(spawned);
        Ok(remote)
    }
}

#[async_trait::async_trait]
impl Target for Remote {
    /// Reads what every postcode of the load holds before it starts: the history the final
    /// check judges begins there.
    async fn read_initial(&mut self) -> Result<(), LoadError> {
        for postcode in POSTCODES {
            let (_, orders) = self.status.order_history(postcode).await.map_err(|e| {
                LoadError::Options(format!(
                    "cannot read the history of {postcode} before the load: {e}"
                ))
            })?;
            let key = normalise(postcode)
                .map(|p| p.to_string())
                .unwrap_or_else(|_| postcode.to_owned());
            self.initial
                .insert(key, orders.iter().map(|o| history::id_of(o.id)).collect());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn order_client(
        &mut self,
        config: ClientConfig,
        index: u64,
    ) -> Result<OrderClient, LoadError> {
        let id = ClientId(self.id_base + index);
        connect_client(&self.tcp, &self.names, config, id).await
    }

    async fn view(&mut self) -> Option<ViewSeen> {
        let status = self.status.cluster_status().await.ok()?;
        let view = status.view?;
        Some(ViewSeen {
            number: view.number.0,
            active: status.active,
            primary: view.primary.id.name.clone(),
            backups: view.backups.len(),
        })
    }

    fn killable(&self) -> Vec<String> {
        self.spawned
            .as_ref()
            .map_or_else(Vec::new, |s| s.replicas().collect())
    }

    async fn kill(&mut self, name: &str) {
        if let Some(spawned) = self.spawned.as_mut() {
            spawned.kill(name);
        }
    }

    async fn start_replica(&mut self, name: &str) -> Result<(), LoadError> {
        match self.spawned.as_mut() {
            Some(spawned) => spawned.start_replica(name),
            None => Err(LoadError::Options(
                "replicas of a deployment loadgen did not start cannot be started by it".into(),
            )),
        }
    }

    async fn wait_for_convergence(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::from("no status yet");
        while started.elapsed() < timeout {
            match self.status.cluster_status().await {
                Ok(status) => {
                    let members: Vec<_> = status
                        .view
                        .iter()
                        .flat_map(|v| v.members())
                        .map(|m| {
                            status
                                .replicas
                                .iter()
                                .find(|r| r.id == m.id && r.alive)
                                .map(|r| r.applied)
                        })
                        .collect();
                    let applied: Vec<_> = members.iter().flatten().collect();
                    if status.active
                        && applied.len() == members.len()
                        && applied.windows(2).all(|w| w[0] == w[1])
                    {
                        return Ok(());
                    }
                    last = format!("members at ops {members:?}");
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not converged within {timeout:?}: {last}"))
    }

    fn initial(&self) -> BTreeMap<String, Vec<String>> {
        self.initial.clone()
    }

    async fn finish(self: Box<Self>) {
        if let Some(mut spawned) = self.spawned {
            spawned.stop();
        }
    }
}

/// The processes a run started, killed when it ends (or is dropped).
struct Spawned {
    binaries: PathBuf,
    /// The run's directory: certificates, the front-end's state, the processes' logs.
    dir: PathBuf,
    tls_dir: PathBuf,
    registry: String,
    options: LoadOptions,
    children: BTreeMap<String, Child>,
}

impl Spawned {
    fn start(binaries: &Path, options: &LoadOptions) -> Result<Spawned, LoadError> {
        for binary in ["registry", "frontend", "replica"] {
            if !binaries.join(binary).exists() {
                return Err(LoadError::Options(format!(
                    "--spawn needs the {binary} binary in {}: build every example first (cargo build --release --examples)",
                    binaries.display()
                )));
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "just-hungry-loadgen-{}-{}",
            std::process::id(),
            random_u64() % 1_000_000
        ));
        let tls_dir = dir.join("tls");
        // Every replica the run may start: the first ones and a replacement per kill.
        let kills = options.kill_primary_every.map_or(0, |every| {
            (options.duration.as_secs_f64() / every.as_secs_f64()).ceil() as usize + 1
        });
        make_certificates(&tls_dir, options.replicas + kills)?;
        let port = free_fixed_port()?;
        let mut spawned = Spawned {
            binaries: binaries.to_owned(),
            dir,
            tls_dir,
            registry: format!("127.0.0.1:{port}"),
            options: options.clone(),
            children: BTreeMap::new(),
        };
        let registry = spawned.registry.clone();
        spawned.spawn("registry", "registry", &["--listen", &registry])?;
        let state = spawned.dir.join("frontend").to_string_lossy().into_owned();
        spawned.spawn("frontend", "frontend", &["--state-dir", &state])?;
        for i in 1..=options.replicas {
            spawned.start_replica(&format!("replica-{i}"))?;
        }
        Ok(spawned)
    }

    fn spawn(&mut self, name: &str, binary: &str, args: &[&str]) -> Result<(), LoadError> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = Command::new(self.binaries.join(binary))
            .args(args)
            .env("JUST_HUNGRY_TLS_DIR", &self.tls_dir)
            .env("JUST_HUNGRY_REGISTRY", &self.registry)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        self.children.insert(name.to_owned(), child);
        Ok(())
    }

    fn start_replica(&mut self, name: &str) -> Result<(), LoadError> {
        let mut args = vec![
            "--id".to_owned(),
            name.to_owned(),
            "--validator".to_owned(),
            "offline".to_owned(),
        ];
        if let Some(max) = self.options.max_book_bytes {
            args.extend(["--max-book-bytes".to_owned(), max.to_string()]);
        }
        if let Some((dir, policy)) = &self.options.storage {
            args.extend([
                "--data-dir".to_owned(),
                dir.join(name).to_string_lossy().into_owned(),
                "--fsync".to_owned(),
                policy.to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn(name, "replica", &args)
    }

    fn replicas(&self) -> impl Iterator<Item = String> + '_ {
        self.children
            .keys()
            .filter(|name| name.starts_with("replica-"))
            .cloned()
    }

    /// SIGKILL, as `kill -9`.
    fn kill(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        // The front-end first, as in a cluster in the process.
        self.kill("frontend");
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            self.kill(&name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A development CA for the run, and certificates for the registry, the front-end, the load
/// generator and `replicas` replicas (`replica-1`, ...), in `dir`.
fn make_certificates(dir: &Path, replicas: usize) -> Result<(), LoadError> {
    let problem = |e: just_hungry_transport_tcp::tls::TlsError| {
        LoadError::Options(format!("cannot make the run's certificates: {e}"))
    };
    let pki = DevPki::generate("loadgen").map_err(problem)?;
    let valid = Duration::from_secs(7 * 24 * 3600);
    let mut identities = vec![
        Identity::new(NodeRole::Registry, "registry"),
        Identity::new(NodeRole::Frontend, "frontend"),
        Identity::new(NodeRole::Client, LOADGEN_NAME),
    ];
    identities
        .extend((1..=replicas).map(|i| Identity::new(NodeRole::Replica, format!("replica-{i}"))));
    let certs = identities
        .iter()
        .map(|identity| pki.issue(identity, valid))
        .collect::<Result<Vec<_>, _>>()
        .map_err(problem)?;
    write_dir(dir, &pki.ca_cert_pem, &certs).map_err(problem)?;
    Ok(())
}

/// A client of the deployment with id `id`, on a transport of its own.
async fn connect_client(
    tcp: &TcpConfig,
    names: &Names,
    config: ClientConfig,
    id: ClientId,
) -> Result<OrderClient, LoadError> {
    let transport = TcpTransport::connect_only(tcp.clone()).await?;
    Ok(match names {
        Names::Registry(registry) => {
            OrderClient::spawn_with_id(transport, registry.clone(), config, id)
        }
        #[cfg(feature = "etcd")]
        Names::Etcd(etcd) => {
            let transport =
                crate::etcd::EtcdNames::<OrderBook, _>::for_client(transport, etcd.clone());
            let registry = transport.registry_address();
            OrderClient::spawn_with_id(transport, registry, config, id)
        }
    })
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range: [`free_fixed_port_on`] of
/// 127.0.0.1.
///
/// # Errors
///
/// As [`free_fixed_port_on`].
pub fn free_fixed_port() -> std::io::Result<u16> {
    free_fixed_port_on(std::net::Ipv4Addr::LOCALHOST)
}

/// A free port on `host` below the kernel's ephemeral range (bound, checked, released).
///
/// For an address handed to a process that binds it later: a port taken from the ephemeral
/// range (binding port 0) is free again once released, and any process binding port 0 or
/// connecting out meanwhile can be given it; one below that range is only taken by a process
/// that asks for it by number. A random choice keeps parallel tests apart.
///
/// # Errors
///
/// When none of 1000 random candidates between 10000 and the range's start is free.
pub fn free_fixed_port_on(host: std::net::Ipv4Addr) -> std::io::Result<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let span = u64::from(low.saturating_sub(10_000).max(1));
    for _ in 0..1000 {
        let port = 10_000 + (random_u64() % span) as u16;
        if std::net::TcpListener::bind((host, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        format!("no free port on {host} between 10000 and {low}"),
    ))
}
