//! What an operator sees of a deployment of separate processes (issue 17): every binary's
//! `--metrics-listen` endpoint scraped and its Prometheus text parsed, `/healthz` and
//! `/readyz` followed through a failover, and the front-end's status page rendered by a real
//! headless browser (Debian's chromium; `.ci/run` installs it, and without it the test fails
//! with the install command).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::deployment::{Processes, WAIT, client, free_fixed_port, free_port, wait_for};
use just_hungry::core::protocol::messages::ReplicaRole;

/// One sample of a scrape: the metric's name, its labels, its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus' text format (version 0.0.4) strictly: every line is a `# HELP`, a
/// `# TYPE` with a known type, or a sample `name{label="value",...} number`; names and label
/// names follow Prometheus' rules. Panics naming the first line that does not.
fn parse_exposition(text: &str) -> Vec<Sample> {
    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            assert!(valid_name(name), "bad HELP line: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(valid_name(name), "bad TYPE line: {line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in: {line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line: {line}");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample without a value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("not a number in: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in: {line}"));
                let mut labels = BTreeMap::new();
                for pair in body.split(',').filter(|p| !p.is_empty()) {
                    let (key, quoted) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("a label without a value in: {line}"));
                    assert!(valid_name(key), "bad label name in: {line}");
                    let value = quoted
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("an unquoted label value in: {line}"));
                    labels.insert(key.to_owned(), value.to_owned());
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "bad metric name in: {line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample before its TYPE line: {line}"
        );
        if types.get(family).is_some_and(|t| t == "counter") {
            assert!(
                name.ends_with("_total"),
                "a counter not named _total: {line}"
            );
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the one sample named `name` with every label of `labels`, summed over the
/// samples that match.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls `url` until it answers `status`, and returns the body; on time-out, says what
/// became of `procs`.
async fn wait_for_status(procs: &mut Processes, url: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = get(url).await;
        if let Some((s, body)) = &answer
            && *s == status
        {
            return body.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not answer {status} in time (last: {answer:?}); the processes:{}",
            procs.post_mortem()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `url`'s metrics until `done` holds of them, and returns them; on time-out, says
/// what became of `procs`.
async fn wait_for_metrics(
    procs: &mut Processes,
    url: &str,
    what: &str,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((200, body)) = get(url).await {
            let samples = parse_exposition(&body);
            if done(&samples) {
                return samples;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} at {url}; the processes:{}",
            procs.post_mortem()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A registry, a front-end and `replicas` replicas, each serving `--metrics-listen` on a port
/// of its own; returns the processes and each node's endpoint URL by name.
fn deployment_with_endpoints(replicas: usize) -> (Processes, BTreeMap<String, String>) {
    let mut procs = Processes::new();
    let mut urls = BTreeMap::new();
    let mut endpoint = |name: &str| {
        let address = format!("127.0.0.1:{}", free_fixed_port());
        urls.insert(name.to_owned(), format!("http://{address}"));
        address
    };
    let registry = procs.registry.clone();
    let at = endpoint("registry");
    procs.spawn(
        "registry",
        "registry",
        &["--listen", &registry, "--metrics-listen", &at],
    );
    let state = procs.state_dir.to_string_lossy().into_owned();
    let at = endpoint("frontend");
    procs.spawn(
        "frontend",
        "frontend",
        &["--state-dir", &state, "--metrics-listen", &at],
    );
    for i in 1..=replicas {
        let name = format!("replica-{i}");
        let at = endpoint(&name);
        let mut args = vec!["--validator", "offline", "--metrics-listen", &at];
        // The first replica keeps its state on disk, so that its syncs are measured too.
        let data = format!("{state}/{name}-data");
        if i == 1 {
            args.extend(["--data-dir", &data, "--fsync", "always"]);
        }
        procs.start_replica_with(&name, &args);
    }
    (procs, urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_serves_metrics_health_and_readiness_through_a_failover() {
    let (mut procs, urls) = deployment_with_endpoints(3);
    for url in urls.values() {
        wait_for_status(&mut procs, &format!("{url}/healthz"), 200).await;
    }
    let client = client(&procs).await;
    let status = wait_for(&client, "three members", |s| {
        s.view.as_ref().is_some_and(|v| v.backups.len() == 2)
    })
    .await;
    for url in urls.values() {
        wait_for_status(&mut procs, &format!("{url}/readyz"), 200).await;
    }
    client
        .place_order("SW1A 1AA", vec!["pizza".into()])
        .await
        .expect("an order placed");
    let refused = client.place_order("ZZ1 1ZZ", vec!["pizza".into()]).await;
    assert!(
        refused.is_err(),
        "a malformed postcode is refused: {refused:?}"
    );

    // The front-end: requests by outcome, the refusal's reason, the latency histogram, the
    // view changes that built the view, its replicas and its connections.
    let frontend = format!("{}/metrics", urls["frontend"]);
    let samples = wait_for_metrics(
        &mut procs,
        &frontend,
        "one ok and one refused request",
        |s| {
            value(
                s,
                "just_hungry_frontend_requests_total",
                &[("outcome", "ok")],
            ) >= Some(1.0)
                && value(
                    s,
                    "just_hungry_frontend_requests_total",
                    &[("outcome", "refused")],
                ) >= Some(1.0)
        },
    )
    .await;
    assert!(
        value(
            &samples,
            "just_hungry_frontend_refused_requests_total",
            &[("reason", "postcode_malformed")]
        ) >= Some(1.0)
    );
    let count = value(
        &samples,
        "just_hungry_frontend_request_duration_seconds_count",
        &[],
    );
    assert!(count >= Some(2.0), "latencies recorded: {count:?}");
    assert!(
        value(
            &samples,
            "just_hungry_frontend_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ) >= Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            "just_hungry_frontend_view_changes_total",
            &[("reason", "bootstrap")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            "just_hungry_frontend_view_changes_total",
            &[("reason", "join")]
        ) >= Some(1.0)
    );
    assert!(value(&samples, "just_hungry_frontend_joins_total", &[]) >= Some(2.0));
    assert_eq!(
        value(
            &samples,
            "just_hungry_frontend_replicas",
            &[("state", "alive")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "just_hungry_frontend_serving", &[]),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            "just_hungry_tcp_connections",
            &[("direction", "inbound")]
        ) >= Some(1.0)
    );
    // The transport's queues, sampled: a byte count each, queues drained between orders.
    for queue in [
        "just_hungry_tcp_queued_bytes",
        "just_hungry_tcp_inbound_queued_bytes",
    ] {
        let queued = value(&samples, queue, &[("identity", "frontend")]);
        assert!(
            queued.is_some_and(|bytes| bytes >= 0.0),
            "{queue}: {queued:?}"
        );
    }

    // Each replica: exactly one role, the view, the op, and on the primary a lag per backup.
    let primary = status
        .view
        .as_ref()
        .expect("a view")
        .primary
        .id
        .name
        .clone();
    for i in 1..=3 {
        let name = format!("replica-{i}");
        let url = format!("{}/metrics", urls[&name]);
        let samples = wait_for_metrics(&mut procs, &url, "the order applied", |s| {
            value(s, "just_hungry_replica_applied_op", &[]) >= Some(1.0)
        })
        .await;
        assert_eq!(
            value(&samples, "just_hungry_replica_role", &[]),
            Some(1.0),
            "{name} plays one role"
        );
        let role = if name == primary { "primary" } else { "backup" };
        assert_eq!(
            value(&samples, "just_hungry_replica_role", &[("role", role)]),
            Some(1.0),
            "{name} is {role}"
        );
        let view = status.view.as_ref().map_or(0, |v| v.number.0) as f64;
        assert!(value(&samples, "just_hungry_replica_view", &[]) >= Some(view));
        // Only the durable replica syncs, and under `always` it did for the order.
        let syncs = value(
            &samples,
            "just_hungry_replica_wal_sync_duration_seconds_count",
            &[],
        );
        if name == "replica-1" {
            assert!(syncs >= Some(1.0), "{name} syncs: {syncs:?}");
        } else {
            assert_eq!(syncs, None, "{name} has no data directory");
        }
        if name == primary {
            let lags = samples
                .iter()
                .filter(|s| s.name == "just_hungry_replica_replication_lag_ops")
                .count();
            assert_eq!(lags, 2, "the primary reports a lag for each backup");
            assert!(value(&samples, "just_hungry_replica_snapshots_sent_total", &[]) >= Some(2.0));
        } else {
            assert!(
                value(
                    &samples,
                    "just_hungry_replica_transfer_bytes_total",
                    &[("direction", "received")]
                ) > Some(0.0)
            );
        }
    }
    let registry = wait_for_metrics(
        &mut procs,
        &format!("{}/metrics", urls["registry"]),
        "the registry's names",
        |s| value(s, "just_hungry_registry_entries", &[]) >= Some(4.0),
    )
    .await;
    assert!(!registry.is_empty());

    // Kill the primary: the front-end elects another, says so in its metrics, and the dead
    // replica's endpoint is gone while the others stay ready.
    procs.kill(&primary);
    wait_for(&client, "a new primary", |s| {
        s.view
            .as_ref()
            .is_some_and(|v| v.primary.id.name != primary)
    })
    .await;
    wait_for_metrics(&mut procs, &frontend, "an election", |s| {
        value(s, "just_hungry_frontend_elections_total", &[]) >= Some(1.0)
            && value(
                s,
                "just_hungry_frontend_view_changes_total",
                &[("reason", "primary_failed")],
            ) >= Some(1.0)
    })
    .await;
    wait_for_status(&mut procs, &format!("{}/readyz", urls["frontend"]), 200).await;
    assert!(get(&format!("{}/healthz", urls[&primary])).await.is_none());
    let (status, body) = get(&format!("{}/nowhere", urls["frontend"]))
        .await
        .expect("an answer");
    assert_eq!(status, 404, "{body}");
}

/// Front-end candidates on etcd, each with an endpoint: the active one is ready and its `/`
/// shows the view; the standby is not ready and says it stands by; once the active one is
/// killed, the standby that takes over becomes ready and shows the view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_candidate_is_ready_and_shows_the_view_only_while_active() {
    let mut procs = Processes::on_etcd().await;
    let mut urls = BTreeMap::new();
    for name in ["frontend-a", "frontend-b"] {
        let listen = format!("127.0.0.1:{}", free_fixed_port());
        let at = format!("127.0.0.1:{}", free_fixed_port());
        procs.spawn(
            name,
            "frontend",
            &["--name", name, "--listen", &listen, "--metrics-listen", &at],
        );
        urls.insert(name, (listen, format!("http://{at}")));
    }
    let client = client(&procs).await;
    for i in 1..=2 {
        procs.start_replica(&format!("replica-{i}"));
    }
    wait_for(&client, "two members", |s| {
        s.view.as_ref().is_some_and(|v| v.backups.len() == 1)
    })
    .await;
    let active = procs.active_frontend().await;
    let (active, standby) = if urls["frontend-a"].0 == active {
        ("frontend-a", "frontend-b")
    } else {
        ("frontend-b", "frontend-a")
    };
    wait_for_status(&mut procs, &format!("{}/readyz", urls[active].1), 200).await;
    let page = wait_for_status(&mut procs, &format!("{}/", urls[active].1), 200).await;
    assert!(
        page.contains("replica-1") && page.contains("replica-2"),
        "the active candidate's page shows the view: {page}"
    );
    let body = wait_for_status(&mut procs, &format!("{}/readyz", urls[standby].1), 503).await;
    assert!(body.contains("standby"), "the standby says why: {body}");
    procs.kill(active);
    wait_for_status(&mut procs, &format!("{}/readyz", urls[standby].1), 200).await;
    let page = wait_for_status(&mut procs, &format!("{}/", urls[standby].1), 200).await;
    assert!(
        page.contains("replica-1") && page.contains("replica-2"),
        "the new active candidate's page shows the view: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_outside_any_view_is_not_ready_and_says_why() {
    let mut procs = Processes::new();
    let at = format!("127.0.0.1:{}", free_fixed_port());
    // No registry and no front-end: the replica runs, but is in no view.
    procs.start_replica_with(
        "replica-1",
        &["--validator", "offline", "--metrics-listen", &at],
    );
    let url = format!("http://{at}");
    wait_for_status(&mut procs, &format!("{url}/healthz"), 200).await;
    let body = wait_for_status(&mut procs, &format!("{url}/readyz"), 503).await;
    assert!(
        body.contains("replica-1") && body.contains("idle"),
        "says why: {body}"
    );
}

/// Debian's chromium, or another Chromium found on the path.
fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_owned();
        }
    }
    panic!(
        "no headless browser: install Debian's chromium (apt-get install -y chromium); .ci/run does so when it runs as root"
    );
}

/// The DOM of `url` after chromium loaded it, headless.
fn render(browser: &str, url: &str) -> String {
    let profile = tempdir("chromium-profile");
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tempdir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "just-hungry-{what}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// The text of the table with `id` in `dom`: its rows, each a list of cell texts.
fn table(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in the page:\n{dom}"));
    let end = dom[start..]
        .find("</table>")
        .map_or(dom.len(), |e| start + e);
    dom[start..end]
        .split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = cell.split_once('>').map_or("", |(_, t)| t);
                    text.split('<').next().unwrap_or("").trim().to_owned()
                })
                .collect::<Vec<_>>()
        })
        .filter(|cells| !cells.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_view_roles_lag_and_view_changes_in_a_browser() {
    let browser = chromium();
    let (mut procs, urls) = deployment_with_endpoints(3);
    let client = client(&procs).await;
    let status = wait_for(&client, "three members", |s| {
        s.view.as_ref().is_some_and(|v| v.backups.len() == 2)
    })
    .await;
    for _ in 0..5 {
        client
            .place_order("SW1A 1AA", vec!["pizza".into()])
            .await
            .expect("an order placed");
    }
    let primary = status
        .view
        .as_ref()
        .expect("a view")
        .primary
        .id
        .name
        .clone();
    procs.kill(&primary);
    let status = wait_for(&client, "a new primary with the other two", |s| {
        s.view
            .as_ref()
            .is_some_and(|v| v.primary.id.name != primary)
            && s.replicas
                .iter()
                .filter(|r| r.alive && r.role == ReplicaRole::Backup)
                .count()
                == 1
    })
    .await;
    let view = status.view.expect("a view");
    // The page polls nothing itself: poll it until the browser shows the new view.
    let deadline = tokio::time::Instant::now() + WAIT;
    let dom = loop {
        let page = urls["frontend"].clone();
        let dom = tokio::task::spawn_blocking({
            let browser = browser.clone();
            move || render(&browser, &page)
        })
        .await
        .expect("the browser's thread");
        if dom.contains(&format!("id=\"view\">{}<", view.number.0)) {
            break dom;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed view {}:\n{dom}",
            view.number
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(dom.contains("http-equiv=\"refresh\""), "refreshes itself");
    assert!(
        dom.contains(&format!("id=\"primary\">{}<", view.primary.id)),
        "names the primary"
    );
    let replicas = table(&dom, "replicas");
    assert_eq!(replicas.len(), 2, "only the live replicas: {replicas:?}");
    for row in &replicas {
        assert!(!row[0].starts_with(&format!("{primary}#")), "{row:?}");
        assert!(["primary", "backup"].contains(&row[2].as_str()), "{row:?}");
        assert!(row[3].parse::<u64>().expect("an op") >= 5, "{row:?}");
        assert_eq!(row[4], "0", "no lag once idle: {row:?}");
    }
    let changes = table(&dom, "view-changes");
    assert!(
        changes.first().is_some_and(|c| c[4] == "primary failed"),
        "the newest change first: {changes:?}"
    );
    assert!(
        changes.iter().any(|c| c[4].starts_with("bootstrap")),
        "{changes:?}"
    );
    assert!(dom.contains("id=\"rate\""), "shows the request rate");
}

/// Runs the loadgen binary with `args`, its JSON report parsed; panics with its output if it
/// did not pass.
fn loadgen(args: &[&str], env: &[(&str, &std::path::Path)]) -> serde_json::Value {
    let mut command = Command::new(crate::deployment::binary("loadgen"));
    command.args(args).args(["--json", "--quiet"]);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}"))
}

#[test]
fn loadgen_spawns_every_node_as_a_process_and_sigkills_the_primary() {
    let report = loadgen(
        &[
            "--spawn",
            "3",
            "--clients",
            "4",
            "--duration",
            "3s",
            "--kill-primary-every",
            "1s",
        ],
        &[],
    );
    assert!(
        report["settings"]["deployment"]
            .as_str()
            .is_some_and(|d| d.contains("processes started by loadgen")),
        "{report}"
    );
    let kills = report["kills"].as_array().expect("kills");
    assert!(kills.len() >= 2, "the primary was killed: {report}");
    assert!(
        kills.iter().all(|k| k["time_to_first_ack_ms"].is_number()),
        "an answer after each kill: {report}"
    );
    let check = &report["check"];
    assert_eq!(check["lost"], 0, "{report}");
    assert_eq!(check["doubled"], 0, "{report}");
    assert!(check["acknowledged"].as_u64() > Some(0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_drives_a_running_deployment_through_its_registry_twice() {
    let mut procs = Processes::new();
    procs.start_registry();
    procs.start_frontend();
    for i in 1..=2 {
        procs.start_replica(&format!("replica-{i}"));
    }
    let client = client(&procs).await;
    wait_for(&client, "two members", |s| {
        s.view.as_ref().is_some_and(|v| v.backups.len() == 1)
    })
    .await;
    let tls = procs.tls_dir.clone().expect("TLS");
    let registry = procs.registry.clone();
    let args = [
        "--registry",
        registry.as_str(),
        "--clients",
        "4",
        "--duration",
        "1s",
    ];
    // A second run on the same deployment starts from what the first left, with client ids
    // of its own.
    for run in 0..2 {
        let report = tokio::task::spawn_blocking({
            let tls = tls.clone();
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                loadgen(&args, &[("JUST_HUNGRY_TLS_DIR", tls.as_path())])
            }
        })
        .await
        .expect("loadgen's thread");
        assert_eq!(report["settings"]["replicas"], 2, "run {run}: {report}");
        assert_eq!(report["check"]["lost"], 0, "run {run}: {report}");
        assert!(
            report["check"]["acknowledged"].as_u64() > Some(0),
            "run {run}: {report}"
        );
        assert!(
            report["errors"].as_object().is_some_and(|e| e.is_empty()),
            "run {run}: {report}"
        );
    }
}
