//! A real etcd cluster on this machine, for tests and demos: `n` members (`etcd` processes)
//! on free loopback ports, their data in a temporary directory removed when the cluster is
//! dropped. Members can be killed (`SIGKILL`) and restarted from their data. An
//! [`EtcdLayout`] spreads them over several loopback addresses (one per "machine") and can
//! lock them down as docs/DEPLOY.md does: TLS with a CA of their own, `--client-cert-auth`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::{EtcdClient, EtcdError, EtcdTls};

/// How to install etcd when it is missing, as the error says it.
pub const INSTALL_HINT: &str = "apt-get install -y etcd-server";

/// The environment variable that names the etcd binary, when it is not `etcd` on the `PATH`.
pub const ETCD_BINARY_VAR: &str = "JUST_HUNGRY_ETCD";

/// How long a starting member may take to report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a cluster is started on fresh ports when a member found its port taken
/// (another process bound it between our probe and etcd's bind).
const START_ATTEMPTS: usize = 3;

/// Why a local etcd cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EtcdSetupError {
    /// No etcd binary.
    #[error(
        "etcd not found ({binary}): install it with `{INSTALL_HINT}` (Debian), or set {ETCD_BINARY_VAR} to its path"
    )]
    NotInstalled {
        /// The binary looked for.
        binary: String,
    },
    /// A file or process operation failed.
    #[error("etcd cluster in {dir}: {source}")]
    Io {
        /// The cluster's directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A member did not become healthy in time, or exited; its log is named and its last
    /// lines quoted (the cluster's directory is removed with the cluster).
    #[error(
        "etcd member {member} not healthy after {waited:?}; its log: {log}; its last lines:\n{tail}"
    )]
    NotHealthy {
        /// The member's name.
        member: String,
        /// How long it was given.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] EtcdError),
    /// The members' CA or certificates could not be made.
    #[error("etcd cluster's certificates: {0}")]
    Certificates(#[from] rcgen::Error),
}

/// Where the members of an [`EtcdCluster`] listen and how they are reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdLayout {
    /// How many members (at least one).
    pub members: usize,
    /// Member `i` listens on `hosts[i % hosts.len()]`, its client and peer ports free ones:
    /// give loopback addresses (`127.0.0.0/8`), one per simulated machine. Empty means
    /// `127.0.0.1`.
    pub hosts: Vec<Ipv4Addr>,
    /// docs/DEPLOY.md's lock-down: `https://` for clients and peers with certificates of a CA
    /// made for this cluster (each member's names its address, and 127.0.0.1, where its
    /// connections to the others come from on one machine), and `--client-cert-auth`, so a
    /// process without the cluster's client certificate ([`EtcdCluster::client_files`]) is
    /// refused at the handshake.
    pub tls: bool,
}

impl EtcdLayout {
    /// `members` plaintext members on 127.0.0.1 (what [`EtcdCluster::start`] starts).
    pub fn local(members: usize) -> Self {
        EtcdLayout {
            members,
            hosts: Vec::new(),
            tls: false,
        }
    }
}

/// The files a process needs to be a client of a TLS [`EtcdCluster`]: the `--etcd-ca`,
/// `--etcd-cert` and `--etcd-key` of every binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdClientFiles {
    /// The members' CA certificate (PEM).
    pub ca: PathBuf,
    /// The client certificate their `--client-cert-auth` accepts (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl EtcdClientFiles {
    /// The command-line flags that hand these files to a binary.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, path) in [
            ("--etcd-ca", &self.ca),
            ("--etcd-cert", &self.cert),
            ("--etcd-key", &self.key),
        ] {
            flags.push(flag.to_owned());
            flags.push(path.to_string_lossy().into_owned());
        }
        flags
    }

    /// The same files as an [`EtcdClient`]'s TLS settings.
    pub fn load(&self) -> std::io::Result<EtcdTls> {
        let mut identity = std::fs::read(&self.cert)?;
        identity.extend_from_slice(&std::fs::read(&self.key)?);
        Ok(EtcdTls {
            ca_pem: Some(std::fs::read(&self.ca)?),
            identity_pem: Some(identity),
        })
    }
}

struct Member {
    name: String,
    host: Ipv4Addr,
    client_url: String,
    peer_url: String,
    process: Option<Child>,
}

/// `n` etcd members on loopback addresses (127.0.0.1, or an [`EtcdLayout`]'s), started and
/// waited for; killed and removed on drop.
pub struct EtcdCluster {
    binary: String,
    dir: PathBuf,
    token: String,
    members: Vec<Member>,
    /// With [`EtcdLayout::tls`]: the client's files, and the loaded settings.
    tls: Option<(EtcdClientFiles, EtcdTls)>,
}

impl EtcdCluster {
    /// Starts `members` members on free loopback ports and waits until each is healthy (the
    /// cluster has a leader). Fails with the install command if etcd is not installed.
    ///
    /// Ports are chosen at random below the kernel's ephemeral range, so that no outgoing
    /// connection of this machine can take one between the probe and etcd's bind; a member
    /// that still finds its port taken makes the cluster start again on fresh ports (up to
    /// three times).
    pub async fn start(members: usize) -> Result<Self, EtcdSetupError> {
        Self::start_layout(&EtcdLayout::local(members)).await
    }

    /// As [`EtcdCluster::start`], the members placed and secured as `layout` says.
    pub async fn start_layout(layout: &EtcdLayout) -> Result<Self, EtcdSetupError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(layout).await {
                Err(EtcdSetupError::NotHealthy { tail, .. })
                    if attempt < START_ATTEMPTS && tail.contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(layout: &EtcdLayout) -> Result<Self, EtcdSetupError> {
        let binary = std::env::var(ETCD_BINARY_VAR).unwrap_or_else(|_| "etcd".to_owned());
        let found = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            return Err(EtcdSetupError::NotInstalled { binary });
        }
        let token = format!(
            "just-hungry-{}-{:x}",
            std::process::id(),
            just_hungry_core::runtime::random_u64()
        );
        let dir = std::env::temp_dir().join(&token);
        std::fs::create_dir_all(&dir).map_err(|source| EtcdSetupError::Io {
            dir: dir.clone(),
            source,
        })?;
        let mut cluster = EtcdCluster {
            binary,
            dir,
            token,
            members: Vec::new(),
            tls: None,
        };
        let scheme = if layout.tls { "https" } else { "http" };
        while cluster.members.len() < layout.members.max(1) {
            let i = cluster.members.len();
            let host = match layout.hosts.len() {
                0 => Ipv4Addr::LOCALHOST,
                n => layout.hosts[i % n],
            };
            let (client, peer) = (
                free_port(&cluster.dir, host)?,
                free_port(&cluster.dir, host)?,
            );
            if client == peer {
                continue;
            }
            cluster.members.push(Member {
                name: format!("etcd-{i}"),
                host,
                client_url: format!("{scheme}://{host}:{client}"),
                peer_url: format!("{scheme}://{host}:{peer}"),
                process: None,
            });
        }
        if layout.tls {
            let files = cluster.write_certificates()?;
            let io = |source| EtcdSetupError::Io {
                dir: cluster.dir.clone(),
                source,
            };
            let settings = files.load().map_err(io)?;
            cluster.tls = Some((files, settings));
        }
        for i in 0..cluster.members.len() {
            cluster.launch(i)?;
        }
        for i in 0..cluster.members.len() {
            cluster.wait_healthy(i).await?;
        }
        Ok(cluster)
    }

    /// The members' client URLs, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// A client of every member (with the cluster's client certificate under TLS).
    pub fn client(&self) -> Result<EtcdClient, EtcdError> {
        match &self.tls {
            Some((_, tls)) => {
                EtcdClient::with_tls(self.endpoints(), super::DEFAULT_REQUEST_TIMEOUT, tls)
            }
            None => EtcdClient::new(self.endpoints()),
        }
    }

    /// The files a client of this cluster needs under [`EtcdLayout::tls`]; `None` without TLS.
    pub fn client_files(&self) -> Option<&EtcdClientFiles> {
        self.tls.as_ref().map(|(files, _)| files)
    }

    /// Makes the cluster's CA, one certificate per member (server and peer, naming its
    /// address, as etcd checks) and the client certificate, in `dir/tls`.
    fn write_certificates(&self) -> Result<EtcdClientFiles, EtcdSetupError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
        };
        let dir = self.dir.join("tls");
        let io = |source| EtcdSetupError::Io {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, format!("etcd CA {}", self.token));
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key)?.pem()).map_err(io)?;
        let issuer = Issuer::new(ca, ca_key);
        let issue = |name: &str, host: Option<Ipv4Addr>| -> Result<(), EtcdSetupError> {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            if let Some(host) = host {
                // etcd checks a peer's certificate against the address the peer connects
                // *from*, and on one machine every connection to a 127.0.0.x comes from
                // 127.0.0.1: that address too, or the members refuse each other.
                params.subject_alt_names = [host, Ipv4Addr::LOCALHOST]
                    .into_iter()
                    .map(|ip| SanType::IpAddress(IpAddr::V4(ip)))
                    .collect();
                params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth);
            }
            let cert = params.signed_by(&key, &issuer)?;
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).map_err(io)?;
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).map_err(io)?;
            Ok(())
        };
        for member in &self.members {
            issue(&member.name, Some(member.host))?;
        }
        issue("client", None)?;
        Ok(EtcdClientFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client.key"),
        })
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never: it starts at least one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kills member `i` with `SIGKILL` and reaps it; its data stays for a restart.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.members.get_mut(i).and_then(|m| m.process.take()) {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts member `i` again from its data, without waiting for it.
    pub fn restart(&mut self, i: usize) -> Result<(), EtcdSetupError> {
        self.kill(i);
        self.launch(i)
    }

    /// Waits until member `i` reports healthy (it sees a leader), for up to 30 s; fails at
    /// once if its process has exited.
    pub async fn wait_healthy(&mut self, i: usize) -> Result<(), EtcdSetupError> {
        let url = format!("{}/health", self.members[i].client_url);
        let bad = |e: reqwest::Error| EtcdError::BadEndpoint {
            endpoint: url.clone(),
            reason: e.to_string(),
        };
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_millis(500));
        if let Some((_, tls)) = &self.tls {
            let ca = tls.ca_pem.as_deref().unwrap_or_default();
            let identity = tls.identity_pem.as_deref().unwrap_or_default();
            http = http
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(ca).map_err(bad)?)
                .identity(reqwest::Identity::from_pem(identity).map_err(bad)?);
        }
        let http = http.build().map_err(bad)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let exited = self.members[i]
                .process
                .as_mut()
                .is_some_and(|p| p.try_wait().is_ok_and(|status| status.is_some()));
            if exited {
                break;
            }
            if let Ok(response) = http.get(&url).send().await
                && let Ok(body) = response.text().await
                && body.contains("\"health\":\"true\"")
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let name = self.members[i].name.clone();
        let log = self.log_path(&name);
        let tail = std::fs::read_to_string(&log)
            .map(|text| last_lines(&text, 10))
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        Err(EtcdSetupError::NotHealthy {
            member: name,
            waited: START_TIMEOUT,
            log,
            tail,
        })
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn launch(&mut self, i: usize) -> Result<(), EtcdSetupError> {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let member = &self.members[i];
        let io = |source| EtcdSetupError::Io {
            dir: self.dir.clone(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(&member.name))
            .map_err(io)?;
        let log_err = log.try_clone().map_err(io)?;
        let data = self.dir.join(&member.name);
        let process = Command::new(&self.binary)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &member.client_url])
            .args(["--advertise-client-urls", &member.client_url])
            .args(["--listen-peer-urls", &member.peer_url])
            .args(["--initial-advertise-peer-urls", &member.peer_url])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--log-level", "warn"])
            .args(self.tls_flags(&member.name))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io)?;
        self.members[i].process = Some(process);
        Ok(())
    }

    /// Member `name`'s TLS flags under [`EtcdLayout::tls`] (docs/DEPLOY.md's), else none.
    fn tls_flags(&self, name: &str) -> Vec<String> {
        if self.tls.is_none() {
            return Vec::new();
        }
        let file = |f: &str| self.dir.join("tls").join(f).to_string_lossy().into_owned();
        let (cert, key, ca) = (
            file(&format!("{name}.pem")),
            file(&format!("{name}.key")),
            file("ca.pem"),
        );
        [
            ("--cert-file", &cert),
            ("--key-file", &key),
            ("--trusted-ca-file", &ca),
            ("--peer-cert-file", &cert),
            ("--peer-key-file", &key),
            ("--peer-trusted-ca-file", &ca),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value.clone()])
        .chain([
            "--client-cert-auth".to_owned(),
            "--peer-client-cert-auth".to_owned(),
        ])
        .collect()
    }

    /// The cluster's directory (each member's data and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A port free on `host` now, below the ephemeral range
/// ([`crate::loadgen::free_fixed_port_on`]; the listener is closed before etcd binds it).
fn free_port(dir: &Path, host: Ipv4Addr) -> Result<u16, EtcdSetupError> {
    crate::loadgen::free_fixed_port_on(host).map_err(|source| EtcdSetupError::Io {
        dir: dir.to_owned(),
        source,
    })
}
