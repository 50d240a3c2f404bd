//! A real etcd cluster on this machine, for tests and demos: `n` members (`etcd` processes)
//! on free loopback ports, their data in a temporary directory removed when the cluster is
//! dropped. Members can be killed (`SIGKILL`) and restarted from their data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::{EtcdClient, EtcdError};

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
}

struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    process: Option<Child>,
}

/// `n` etcd members on 127.0.0.1, started and waited for; killed and removed on drop.
pub struct EtcdCluster {
    binary: String,
    dir: PathBuf,
    token: String,
    members: Vec<Member>,
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
        let mut attempt = 1;
        loop {
            match Self::start_once(members).await {
                Err(EtcdSetupError::NotHealthy { tail, .. })
                    if attempt < START_ATTEMPTS && tail.contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(members: usize) -> Result<Self, EtcdSetupError> {
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
        };
        while cluster.members.len() < members.max(1) {
            let i = cluster.members.len();
            let (client, peer) = (free_port(&cluster.dir)?, free_port(&cluster.dir)?);
            if client == peer {
                continue;
            }
            cluster.members.push(Member {
                name: format!("etcd-{i}"),
                client_url: format!("http://127.0.0.1:{client}"),
                peer_url: format!("http://127.0.0.1:{peer}"),
                process: None,
            });
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

    /// A client of every member.
    pub fn client(&self) -> Result<EtcdClient, EtcdError> {
        EtcdClient::new(self.endpoints())
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .map_err(|e| EtcdError::BadEndpoint {
                endpoint: url.clone(),
                reason: e.to_string(),
            })?;
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
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io)?;
        self.members[i].process = Some(process);
        Ok(())
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

/// The lowest port of the kernel's ephemeral range (outgoing connections take theirs from
/// it); 32768 when it cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port free on 127.0.0.1 now, below the ephemeral range (the listener is closed before
/// etcd binds it; a random choice keeps parallel tests apart).
fn free_port(dir: &Path) -> Result<u16, EtcdSetupError> {
    let high = ephemeral_start();
    let low = 10_000u16.min(high.saturating_sub(1000));
    let span = u64::from(high - low);
    let mut last_error = None;
    for _ in 0..100 {
        let port = low + (just_hungry_core::runtime::random_u64() % span) as u16;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => return Ok(port),
            Err(e) => last_error = Some(e),
        }
    }
    Err(EtcdSetupError::Io {
        dir: dir.to_owned(),
        source: last_error.unwrap_or_else(|| std::io::Error::other("no free port")),
    })
}
