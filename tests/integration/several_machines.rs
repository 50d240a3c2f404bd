//! docs/DEPLOY.md's three-machine layout, each machine a loopback address of its own
//! (127.0.0.11, .12 and .13), each running an etcd member, a front-end candidate and a durable
//! replica (`--fsync always`) that says where it is reached with `--advertise`; etcd locked
//! down as DEPLOY.md says (TLS with a CA of its own for clients and peers, and
//! `--client-cert-auth`), every just-hungry link mutual TLS. Nothing may assume that the nodes
//! share 127.0.0.1, and the layout must survive what DEPLOY.md says it survives.

use std::net::Ipv4Addr;
use std::process::Command;

use just_hungry::cli::ETCD_ENV;
use just_hungry::core::protocol::messages::ReplicaRole;
use just_hungry::etcd::EtcdLayout;

use crate::deployment::{Processes, binary, client, wait_for};
use crate::processes::{RecordedLoad, live_member, members};

/// The three machines.
const HOSTS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 11),
    Ipv4Addr::new(127, 0, 0, 12),
    Ipv4Addr::new(127, 0, 0, 13),
];

/// A free port on `host` below the ephemeral range: the machines' processes bind theirs again
/// after each restart, so no outgoing connection may take one meanwhile.
fn free_port_on(host: Ipv4Addr) -> u16 {
    just_hungry::loadgen::free_fixed_port_on(host).expect("a free port")
}

/// Machine `n` (1 to 3): where its front-end candidate and its replica listen.
struct Machine {
    n: usize,
    frontend: String,
    replica: String,
}

impl Machine {
    fn new(n: usize) -> Self {
        let host = HOSTS[n - 1];
        Machine {
            n,
            frontend: format!("{host}:{}", free_port_on(host)),
            replica: format!("{host}:{}", free_port_on(host)),
        }
    }

    /// Starts its front-end candidate and its replica, as DEPLOY.md's commands do (the
    /// replica from its data directory when it has one).
    fn start(&self, procs: &mut Processes) {
        let frontend = format!("frontend-{}", self.n);
        let address = ["--listen", &self.frontend, "--advertise", &self.frontend];
        procs.spawn(
            &frontend,
            "frontend",
            &[&["--name", &frontend][..], &address].concat(),
        );
        let replica = format!("replica-{}", self.n);
        let mut flags = vec!["--listen", &self.replica, "--advertise", &self.replica];
        let durable = procs.durable_flags(&replica, "always");
        flags.extend(durable.iter().map(String::as_str));
        procs.start_replica_with(&replica, &flags);
    }

    /// `kill -9` of its three processes: the machine is gone.
    fn lose(&self, procs: &mut Processes) {
        procs.kill(&format!("frontend-{}", self.n));
        procs.kill(&format!("replica-{}", self.n));
        procs.etcd.as_mut().expect("etcd").kill(self.n - 1);
    }

    /// Its etcd member back from its data, waited for.
    async fn restart_etcd(&self, procs: &mut Processes) {
        let etcd = procs.etcd.as_mut().expect("etcd");
        etcd.restart(self.n - 1).expect("etcd member restarted");
        etcd.wait_healthy(self.n - 1)
            .await
            .expect("etcd member healthy");
    }
}

/// The `client` binary as DEPLOY.md runs it on a client's host: `--etcd` with etcd's CA and
/// client certificate, the cluster's TLS directory, `--json`.
fn client_binary(procs: &Processes, etcd_flags: &[String], args: &[&str]) -> std::process::Output {
    let etcd = procs.etcd.as_ref().expect("etcd").endpoints().join(",");
    Command::new(binary("client"))
        .env_remove(ETCD_ENV)
        .args(["--etcd", &etcd])
        .args(etcd_flags)
        .arg("--tls-dir")
        .arg(procs.tls_dir.as_ref().expect("TLS"))
        .args(["--name", "test-client", "--json"])
        .args(args)
        .output()
        .expect("the client binary runs")
}

/// The layout serves; a process without etcd's client certificate is refused; losing the
/// machine of the active front-end (its etcd member, front-end and replica, `kill -9`) stops
/// no client for longer than a takeover; the machine comes back and its replica rejoins; then
/// every process of all three machines is killed at once (a power cut) and restarted, and the
/// recorded history of the clients through all of it checks out: no acknowledged order lost
/// or doubled; and `loadgen --etcd` drives what came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_md_layout_on_three_loopback_machines_survives_a_lost_machine_and_a_power_cut() {
    let layout = EtcdLayout {
        members: 3,
        hosts: HOSTS.to_vec(),
        tls: true,
    };
    let mut procs = Processes::on_etcd_layout(&layout).await;
    let machines: Vec<Machine> = (1..=3).map(Machine::new).collect();
    for machine in &machines {
        machine.start(&mut procs);
    }
    let observer = client(&procs).await;
    wait_for(&observer, "three members", |s| members(s) == 3).await;

    let etcd_flags = procs.etcd_flags();
    let status = client_binary(&procs, &etcd_flags, &["status"]);
    assert!(
        status.status.success(),
        "client status failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON status");
    let text = json.to_string();
    assert!(
        HOSTS.iter().all(|h| text.contains(&h.to_string())),
        "the status names each machine's advertised address: {text}"
    );
    // etcd's CA alone, no client certificate: etcd refuses the handshake, and the client
    // says so at once (not after its 10-s deadline, as a timeout), etcd's error on stderr.
    let started = std::time::Instant::now();
    let refused = client_binary(&procs, &etcd_flags[..2], &["status"]);
    let answer: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("a JSON error");
    assert!(
        !refused.status.success(),
        "served without a certificate: {answer}"
    );
    assert_eq!(answer["error"], "registry_unreachable", "{answer}");
    assert!(
        answer["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--etcd-cert")),
        "{answer}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "the refusal took {:?}",
        started.elapsed()
    );
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("certificate")),
        "etcd's reason is given: {answer}"
    );
    let load = RecordedLoad::start(&procs, 4).await;
    load.progress(40).await;

    // The machine of the active front-end is lost.
    let active = procs.active_frontend().await;
    let lost = machines
        .iter()
        .find(|m| m.frontend == active)
        .unwrap_or_else(|| panic!("the active front-end {active} is one of the machines'"));
    lost.lose(&mut procs);
    load.progress(40).await;

    // It comes back: its replica rejoins from its disk, as a backup.
    lost.restart_etcd(&mut procs).await;
    lost.start(&mut procs);
    let rejoined = format!("replica-{}", lost.n);
    wait_for(&observer, "the lost machine's replica to rejoin", |s| {
        members(s) == 3 && live_member(s, &rejoined, ReplicaRole::Backup)
    })
    .await;
    load.progress(40).await;

    // A power cut of all three machines, then all of them start again.
    for machine in &machines {
        machine.lose(&mut procs);
    }
    let etcd = procs.etcd.as_mut().expect("etcd");
    for i in 0..etcd.len() {
        etcd.restart(i).expect("etcd member restarted");
    }
    for i in 0..etcd.len() {
        etcd.wait_healthy(i).await.expect("etcd member healthy");
    }
    for machine in &machines {
        machine.start(&mut procs);
    }
    load.progress(40).await;
    load.check(&procs, 160).await;

    // After all that, the load generator drives the deployment through etcd, as an operator
    // would measure it (after the recorded history: its orders are not in it).
    let endpoints = procs.etcd.as_ref().expect("etcd").endpoints().join(",");
    let loadgen = Command::new(binary("loadgen"))
        .env_remove(ETCD_ENV)
        .args(["--etcd", &endpoints])
        .args(&etcd_flags)
        .arg("--tls-dir")
        .arg(procs.tls_dir.as_ref().expect("TLS"))
        .args(["--clients", "4", "--duration", "2s", "--quiet"])
        .output()
        .expect("the loadgen binary runs");
    let report = String::from_utf8_lossy(&loadgen.stdout);
    assert!(
        loadgen.status.success() && report.contains("the deployment on etcd"),
        "loadgen --etcd: {report}\n{}",
        String::from_utf8_lossy(&loadgen.stderr)
    );
}
