//! The example binaries as processes on 127.0.0.1, for the tests that start a deployment
//! (`processes.rs`, `operations.rs`): every process is killed when the test ends, passing or
//! failing ([`Processes`]' `Drop`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use just_hungry::OrderClient;
use just_hungry::cli::ETCD_ENV;
use just_hungry::core::ids::Address;
use just_hungry::core::protocol::FRONTEND_NAME;
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::messages::ClusterStatus;
use just_hungry::etcd::{EtcdClient, EtcdCluster, EtcdLayout, EtcdNames, name_key};
use just_hungry::orders::OrderBook;
use just_hungry::tcp::tls::TlsConfig;
use just_hungry::tcp::{TcpConfig, TcpTransport};

pub const WAIT: Duration = Duration::from_secs(15);

/// The example binaries, next to this test's own executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (cargo build --examples)",
        path.display()
    );
    path
}

/// A free port below the kernel's ephemeral range ([`just_hungry::loadgen::free_fixed_port`]):
/// for the ports one test hands to several processes that start concurrently, each also
/// binding port 0.
pub fn free_fixed_port() -> u16 {
    just_hungry::loadgen::free_fixed_port().expect("a free port")
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Child processes by name, all killed on drop. Every link is mutual TLS: the certificates of
/// a fresh development CA are made at start in `state_dir/tls` (no key is committed); only
/// [`Processes::plaintext`] (to measure what TLS costs) runs without.
pub struct Processes {
    pub registry: String,
    pub state_dir: PathBuf,
    /// `None`: every node runs with `--insecure-plaintext`.
    pub tls_dir: Option<PathBuf>,
    /// With etcd as the coordination backend (`--etcd`): its members; no registry then.
    pub etcd: Option<EtcdCluster>,
    pub children: BTreeMap<String, Child>,
}

/// The nodes the tests start, with a certificate each: these and `replica-1` to
/// `replica-20`.
pub const NODES: &[&str] = &[
    "registry",
    "frontend",
    "frontend-a",
    "frontend-b",
    "frontend-1",
    "frontend-2",
    "frontend-3",
    "test-client",
    "loadgen",
];

pub fn make_certificates(dir: &std::path::Path) {
    use just_hungry::core::ids::{Identity, NodeRole};
    use just_hungry::tcp::tls::{DevPki, write_dir};
    let pki = DevPki::generate("processes").expect("a development CA");
    let replicas: Vec<String> = (1..=20).map(|i| format!("replica-{i}")).collect();
    let certs: Vec<_> = NODES
        .iter()
        .copied()
        .chain(replicas.iter().map(String::as_str))
        .map(|name| {
            let role = match name {
                "registry" => NodeRole::Registry,
                n if n.starts_with("frontend") => NodeRole::Frontend,
                n if n.starts_with("replica") => NodeRole::Replica,
                _ => NodeRole::Client,
            };
            pki.issue(&Identity::new(role, name), Duration::from_secs(3600))
                .expect("a certificate")
        })
        .collect();
    write_dir(dir, &pki.ca_cert_pem, &certs).expect("certificates written");
}

impl Processes {
    pub fn new() -> Self {
        let mut processes = Self::plaintext();
        let tls_dir = processes.state_dir.join("tls");
        make_certificates(&tls_dir);
        processes.tls_dir = Some(tls_dir);
        processes
    }

    /// Every node with `--insecure-plaintext`.
    pub fn plaintext() -> Self {
        let state_dir = std::env::temp_dir().join(format!(
            "just-hungry-processes-{}-{}",
            std::process::id(),
            free_port()
        ));
        Processes {
            registry: format!("127.0.0.1:{}", free_fixed_port()),
            state_dir,
            tls_dir: None,
            etcd: None,
            children: BTreeMap::new(),
        }
    }

    /// As [`Processes::new`], every node coordinating through a fresh three-member etcd
    /// cluster (`--etcd`) instead of a registry.
    pub async fn on_etcd() -> Self {
        Self::on_etcd_layout(&EtcdLayout::local(3)).await
    }

    /// As [`Processes::on_etcd`], etcd's members placed and secured as `layout` says; under
    /// [`EtcdLayout::tls`] every node gets the client certificate's flags.
    pub async fn on_etcd_layout(layout: &EtcdLayout) -> Self {
        let mut processes = Self::new();
        let etcd = EtcdCluster::start_layout(layout)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        processes.etcd = Some(etcd);
        processes
    }

    /// The flags `--etcd-ca`, `--etcd-cert` and `--etcd-key` of a TLS etcd cluster (none
    /// otherwise).
    pub fn etcd_flags(&self) -> Vec<String> {
        self.etcd
            .as_ref()
            .and_then(EtcdCluster::client_files)
            .map(|files| files.flags())
            .unwrap_or_default()
    }

    /// The etcd client of [`Processes::on_etcd`].
    pub fn etcd_client(&self) -> EtcdClient {
        self.etcd
            .as_ref()
            .expect("processes on etcd")
            .client()
            .expect("an etcd client")
    }

    /// Front-end candidate `name` (`--etcd`) listening on `127.0.0.1:port`, its warnings
    /// appended to [`Processes::log_of`] `name`.
    pub fn start_candidate(&mut self, name: &str, port: u16) {
        let listen = format!("127.0.0.1:{port}");
        self.spawn(name, "frontend", &["--name", name, "--listen", &listen]);
    }

    /// Where [`Processes::spawn`] writes the standard error of `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.log"))
    }

    /// The address held by the active front-end's key in etcd, once one holds it.
    pub async fn active_frontend(&self) -> String {
        let etcd = self.etcd_client();
        let key = name_key(FRONTEND_NAME);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(kv)) = etcd.get(key.as_bytes()).await {
                return String::from_utf8_lossy(&kv.value).into_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no front-end became active"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts `binary_name` as process `name`, its standard error (warnings and errors:
    /// `RUST_LOG=warn`) appended to [`Processes::log_of`] `name`, which
    /// [`Processes::post_mortem`] reads back when a test times out.
    pub fn spawn(&mut self, name: &str, binary_name: &str, args: &[&str]) {
        let log = self.log_file(name);
        self.spawn_with_stderr(name, binary_name, args, log);
    }

    /// [`Processes::log_of`] `name`, opened for appending (the test's directory made first).
    fn log_file(&self, name: &str) -> Stdio {
        std::fs::create_dir_all(&self.state_dir).expect("the test's directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_of(name))
            .expect("a log file");
        Stdio::from(log)
    }

    /// What went wrong, for a test that timed out: each process that has exited, with its
    /// status, and the last lines each process wrote to its log.
    pub fn post_mortem(&mut self) -> String {
        let mut report = String::new();
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            let state = match self.children.get_mut(&name).map(Child::try_wait) {
                Some(Ok(Some(status))) => format!("exited ({status})"),
                Some(Ok(None)) => "running".to_owned(),
                Some(Err(e)) => format!("unknown ({e})"),
                None => continue,
            };
            let log = std::fs::read_to_string(self.log_of(&name)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n    ");
            report.push_str(&format!("\n  {name}: {state}\n    {tail}"));
        }
        report
    }

    /// As [`Processes::spawn`], its standard error going to `stderr`.
    pub fn spawn_with_stderr(
        &mut self,
        name: &str,
        binary_name: &str,
        args: &[&str],
        stderr: Stdio,
    ) {
        self.spawn_command(name, Command::new(binary(binary_name)), args, stderr);
    }

    /// Starts durable replica `name` (`--fsync always`) with its data directory on a real
    /// file system of `bytes` bytes: a tmpfs mounted over the directory in a mount namespace
    /// of the replica's own (`unshare --user --map-root-user --mount`, util-linux; no root
    /// needed where unprivileged user namespaces are allowed, as on Debian), so the disk it
    /// writes to fills up for real (ENOSPC) and nothing else is touched.
    pub fn start_replica_on_a_small_disk(&mut self, name: &str, bytes: u64) {
        let flags = self.durable_flags(name, "always");
        let dir = self.data_dir(name);
        std::fs::create_dir_all(&dir).expect("the data directory's mount point");
        let found = Command::new("unshare").arg("--help").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "unshare(1) is missing: install it with `apt-get install -y util-linux`"
        );
        let mut command = Command::new("unshare");
        command.args(["--user", "--map-root-user", "--mount", "sh", "-c"]);
        command.arg(format!(
            "mount -t tmpfs -o size={bytes} tmpfs \"$0\" && exec \"$@\""
        ));
        command.arg(&dir).arg(binary("replica"));
        let mut args = vec!["--id", name];
        args.extend(flags.iter().map(String::as_str));
        let log = self.log_file(name);
        self.spawn_command(name, command, &args, log);
    }

    /// Waits until process `name` exits by itself and returns its status; fails after
    /// `timeout`.
    pub async fn wait_exit(&mut self, name: &str, timeout: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let child = self.children.get_mut(name).expect("a started process");
            if let Some(status) = child.try_wait().expect("its status") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} still running after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `command` (a node's binary, or a wrapper that execs it) with `args` as process
    /// `name`: the test's TLS, etcd and registry settings, its standard error to `stderr`.
    fn spawn_command(&mut self, name: &str, mut command: Command, args: &[&str], stderr: Stdio) {
        match &self.tls_dir {
            Some(dir) => command.env("JUST_HUNGRY_TLS_DIR", dir),
            None => command.arg("--insecure-plaintext"),
        };
        if let Some(etcd) = &self.etcd {
            command.env(ETCD_ENV, etcd.endpoints().join(","));
        }
        command.args(self.etcd_flags());
        let child = command
            .args(args)
            .env("JUST_HUNGRY_REGISTRY", &self.registry)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.children.insert(name.to_owned(), child);
    }

    pub fn start_registry(&mut self) {
        let listen = self.registry.clone();
        self.spawn("registry", "registry", &["--listen", &listen]);
    }

    pub fn start_frontend(&mut self) {
        let dir = self.state_dir.to_string_lossy().into_owned();
        self.spawn("frontend", "frontend", &["--state-dir", &dir]);
    }

    /// A replica with the offline postcode check: tests never reach the internet.
    pub fn start_replica(&mut self, name: &str) {
        self.start_replica_with(name, &["--validator", "offline"]);
    }

    /// A durable replica (`--data-dir`, in this test's directory) with fsync `policy` and the
    /// offline postcode check; started again, it restarts from that directory.
    pub fn start_durable_replica(&mut self, name: &str, policy: &str) {
        let flags = self.durable_flags(name, policy);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.start_replica_with(name, &flags);
    }

    /// Where durable replica `name` keeps its data, in this test's directory.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("data").join(name)
    }

    /// The flags of [`Processes::start_durable_replica`].
    pub fn durable_flags(&self, name: &str, policy: &str) -> Vec<String> {
        ["--validator", "offline", "--data-dir"]
            .into_iter()
            .map(str::to_owned)
            .chain([self.data_dir(name).to_string_lossy().into_owned()])
            .chain(["--fsync".to_owned(), policy.to_owned()])
            .collect()
    }

    pub fn start_replica_with(&mut self, name: &str, extra: &[&str]) {
        let mut args = vec!["--id", name];
        args.extend_from_slice(extra);
        self.spawn(name, "replica", &args);
    }

    /// Sends `signal` to process `name` (`SIGSTOP` pauses it, `SIGCONT` resumes it).
    #[cfg(unix)]
    pub fn signal(&self, name: &str, signal: i32) {
        let child = self.children.get(name).expect("a running process");
        let pid = i32::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) with the pid of a child we started and still hold.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal}) failed");
    }

    /// `kill -9`.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        let names: Vec<String> = self.children.keys().cloned().collect();
        for name in names {
            self.kill(&name);
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

pub async fn client(procs: &Processes) -> OrderClient {
    let mut config =
        TcpConfig::client("test-client").for_service::<just_hungry::orders::OrderBook>();
    if let Some(dir) = &procs.tls_dir {
        let tls = TlsConfig::from_dir(dir, "test-client").expect("the client's certificate");
        config = config.with_tls(tls);
    }
    let transport = TcpTransport::connect_only(config)
        .await
        .expect("client transport");
    let config = ClientConfig {
        deadline: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    if procs.etcd.is_some() {
        let transport = EtcdNames::<OrderBook, _>::for_client(transport, procs.etcd_client());
        let registry = transport.registry_address();
        return OrderClient::spawn(transport, registry, config);
    }
    OrderClient::spawn(transport, Address::new(procs.registry.as_str()), config)
}

/// Polls the cluster's status until `done` holds.
pub async fn wait_for(
    client: &OrderClient,
    what: &str,
    done: impl Fn(&ClusterStatus) -> bool,
) -> ClusterStatus {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(status) = client.cluster_status().await
            && status.active
            && done(&status)
        {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
