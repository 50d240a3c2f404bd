//! The operator's HTTP endpoint of a binary (`--metrics-listen ADDR`, docs/OPERATIONS.md):
//!
//! | path | answers |
//! |---|---|
//! | `/metrics` | every metric of the process, in Prometheus' text format |
//! | `/healthz` | `200 ok` while the process serves HTTP at all |
//! | `/readyz` | `200 ready` when the node can do its job, else `503` and why: a replica in an active view (primary or backup holding the view's state), a front-end with a primary that serves, a registry once it runs |
//! | `/` | a front-end's status page: the view, each replica's role, op and lag, the recent view changes and the request rate, refreshing itself every 2 s |
//! | `/status.json` | what the status page shows, as JSON |
//!
//! The endpoint has no authentication and no TLS: bind it to loopback or a private network,
//! never to where clients reach (it tells who the replicas are and how they are doing). It
//! answers GET only, keeps at most [`MAX_CONNECTIONS`] connections, and closes one that sends
//! no complete request head within [`HEADER_TIMEOUT`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use just_hungry_core::protocol::messages::ReplicaRole;
use just_hungry_core::runtime::{NodeReport, NodeReporter};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The most connections the endpoint serves at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a connection may take to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for the node's report before the endpoint answers without it.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The request-latency histograms' buckets, in seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often the request rate is sampled, and over how long it is averaged.
const RATE_SAMPLE: Duration = Duration::from_secs(1);
const RATE_WINDOW: usize = 10;

/// Which node a binary runs, for `/readyz` and `/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsRole {
    /// The registry: ready once it runs.
    Registry,
    /// A front-end: ready when a primary serves; serves the status page.
    Frontend,
    /// A replica: ready in an active view.
    Replica,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The metrics recorder could not be installed (another is installed in this process).
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
    /// The listening address could not be bound.
    #[error("cannot listen on {address} for metrics: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Installs the process's Prometheus recorder (once per process: the [`metrics`] facade has
/// one global recorder) and describes every metric the library publishes. Durations are
/// histograms with [`LATENCY_BUCKETS`].
pub fn install_recorder() -> Result<PrometheusHandle, OpsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
        .map_err(|e| OpsError::Recorder(e.to_string()))?
        .install_recorder()
        .map_err(|e| OpsError::Recorder(e.to_string()))?;
    describe();
    Ok(handle)
}

/// The `--metrics-listen ADDR` option of every binary: installed before the node starts (so
/// that every connection it opens is counted), served once it runs.
#[derive(clap::Args, Clone, Debug)]
pub struct OpsArgs {
    /// Serve Prometheus metrics (`/metrics`), health (`/healthz`, `/readyz`) and, on a
    /// front-end, the status page (`/`) over plain HTTP at this address
    /// (`127.0.0.1:9100`; port 0 picks a free one, logged). Unauthenticated: keep it on
    /// loopback or a private network.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

impl OpsArgs {
    /// If `--metrics-listen` was given: binds its address and installs the Prometheus
    /// recorder. Call it before starting the node, so that a port already taken stops the
    /// binary before it joins the cluster, and every connection the node opens is counted.
    pub async fn install(&self) -> Result<Option<OpsInstalled>, OpsError> {
        let Some(listen) = self.metrics_listen else {
            return Ok(None);
        };
        let listener = bind(listen).await?;
        Ok(Some(OpsInstalled {
            listener,
            prometheus: install_recorder()?,
        }))
    }
}

async fn bind(listen: SocketAddr) -> Result<TcpListener, OpsError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| OpsError::Bind {
            address: listen,
            source,
        })
}

/// The recorder installed and the address bound by [`OpsArgs::install`], waiting for its
/// node.
pub struct OpsInstalled {
    listener: TcpListener,
    prometheus: PrometheusHandle,
}

impl OpsInstalled {
    /// Starts the endpoint for a node of `role` reporting through `node`.
    pub fn serve(self, role: OpsRole, node: Option<NodeReporter>) -> Result<OpsEndpoint, OpsError> {
        OpsEndpoint::serve(self.listener, role, self.prometheus, node)
    }
}

/// The running endpoint.
pub struct OpsEndpoint {
    address: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    node: Arc<Mutex<Option<NodeReporter>>>,
}

impl OpsEndpoint {
    /// Binds `listen` and serves there, for a node of `role` whose reports come from `node`
    /// (`None` until there is one: a front-end candidate standing by).
    pub async fn spawn(
        listen: SocketAddr,
        role: OpsRole,
        prometheus: PrometheusHandle,
        node: Option<NodeReporter>,
    ) -> Result<OpsEndpoint, OpsError> {
        Self::serve(bind(listen).await?, role, prometheus, node)
    }

    /// As [`OpsEndpoint::spawn`], on a listener already bound. Needs a tokio runtime.
    pub fn serve(
        listener: TcpListener,
        role: OpsRole,
        prometheus: PrometheusHandle,
        node: Option<NodeReporter>,
    ) -> Result<OpsEndpoint, OpsError> {
        let address = listener.local_addr().map_err(|source| OpsError::Bind {
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let node = Arc::new(Mutex::new(node));
        let served = Arc::new(Served {
            role,
            prometheus: prometheus.clone(),
            node: node.clone(),
            rate: Mutex::new(VecDeque::new()),
        });
        tracing::info!(address = %address, "metrics, health and status listening (/metrics, /healthz, /readyz, /)");
        let sampler = tokio::spawn(sample_rate(served.clone()));
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                prometheus.run_upkeep();
            }
        });
        let server = tokio::spawn(serve(listener, served));
        Ok(OpsEndpoint {
            address,
            tasks: vec![server, sampler, upkeep],
            node,
        })
    }

    /// Where it listens.
    pub fn local_address(&self) -> SocketAddr {
        self.address
    }

    /// Reports come from `node` from now on (a front-end candidate elected), or from none.
    pub fn set_node(&self, node: Option<NodeReporter>) {
        if let Ok(mut current) = self.node.lock() {
            *current = node;
        }
    }
}

impl Drop for OpsEndpoint {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Served {
    role: OpsRole,
    prometheus: PrometheusHandle,
    node: Arc<Mutex<Option<NodeReporter>>>,
    /// `(when, requests answered)`, oldest first, one per [`RATE_SAMPLE`].
    rate: Mutex<VecDeque<(Instant, u64)>>,
}

impl Served {
    async fn report(&self) -> Option<NodeReport> {
        let reporter = self.node.lock().ok()?.clone()?;
        tokio::time::timeout(REPORT_TIMEOUT, reporter.report())
            .await
            .ok()
            .flatten()
    }

    /// Requests answered per second over the last samples, if two were taken.
    fn request_rate(&self) -> Option<f64> {
        let rate = self.rate.lock().ok()?;
        let (first, last) = (rate.front()?, rate.back()?);
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        (seconds > 0.0).then(|| last.1.saturating_sub(first.1) as f64 / seconds)
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned());
        }
        match request.uri().path() {
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.prometheus.render());
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                response
            }
            "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
            "/readyz" => match readiness(self.role, self.report().await.as_ref()) {
                Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            "/" if self.role == OpsRole::Frontend => {
                let page = status_page(self.report().await.as_ref(), self.request_rate());
                let mut response = text(StatusCode::OK, page);
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            "/status.json" if self.role == OpsRole::Frontend => {
                let body = status_json(self.report().await.as_ref(), self.request_rate());
                let mut response = text(StatusCode::OK, format!("{body}\n"));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Whether a node of `role` that reports `report` can do its job, or why not.
pub fn readiness(role: OpsRole, report: Option<&NodeReport>) -> Result<(), String> {
    let Some(report) = report else {
        return Err(match role {
            OpsRole::Frontend => {
                "no front-end runs in this process (a standby candidate, or stopped)".to_owned()
            }
            _ => "the node has stopped".to_owned(),
        });
    };
    match role {
        OpsRole::Registry => Ok(()),
        OpsRole::Replica => match report.role {
            Some(ReplicaRole::Primary | ReplicaRole::Backup) => Ok(()),
            Some(role) => Err(format!(
                "{} is {} in view {}",
                report.name,
                just_hungry_core::runtime::metrics::role_label(role),
                report.view.as_ref().map_or(0, |v| v.number.0)
            )),
            None => Err("not a replica".to_owned()),
        },
        OpsRole::Frontend => match &report.cluster {
            Some(cluster) if cluster.serving => Ok(()),
            Some(cluster) => Err(cluster
                .why_not_serving
                .clone()
                .unwrap_or_else(|| "no primary serves".to_owned())),
            None => Err("not a front-end".to_owned()),
        },
    }
}

async fn serve(listener: TcpListener, served: Arc<Served>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::info!(error = %e, "metrics endpoint: accept failed, pausing");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let served = served.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let served = served.clone();
                async move { Ok::<_, Infallible>(served.answer(request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics endpoint: connection ended");
            }
            drop(permit);
        });
    }
}

async fn sample_rate(served: Arc<Served>) {
    if served.role != OpsRole::Frontend {
        return;
    }
    let mut every = tokio::time::interval(RATE_SAMPLE);
    loop {
        every.tick().await;
        let Some(report) = served.report().await else {
            continue;
        };
        if let Ok(mut rate) = served.rate.lock() {
            if rate.len() > RATE_WINDOW {
                rate.pop_front();
            }
            rate.push_back((Instant::now(), report.requests_answered));
        }
    }
}

/// What the status page shows, as JSON. Replica ids are strings (`replica-1#d73d`): an
/// incarnation is a 64-bit number, which JSON tools would round.
pub fn status_json(report: Option<&NodeReport>, rate: Option<f64>) -> serde_json::Value {
    let Some(report) = report else {
        return serde_json::json!({ "node": null });
    };
    let cluster = report.cluster.as_ref();
    let view = cluster.and_then(|c| c.view.as_ref());
    let replicas: Vec<serde_json::Value> = cluster
        .map(|c| c.replicas.iter().filter(|r| r.alive).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id.to_string(),
                "address": r.address.as_str(),
                "role": just_hungry_core::runtime::metrics::role_label(r.role),
                "applied_op": r.applied.0,
            })
        })
        .collect();
    let changes: Vec<serde_json::Value> = report
        .view_changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "seconds_ago": report.clock.saturating_since(c.at).as_secs_f64(),
                "view": c.view.number.0,
                "primary": c.view.primary.id.to_string(),
                "backups": c.view.backups.iter().map(|b| b.id.to_string()).collect::<Vec<_>>(),
                "reason": c.reason.label(),
                "detail": c.detail,
            })
        })
        .collect();
    serde_json::json!({
        "node": report.name,
        "view": view.map(|v| v.number.0),
        "primary": view.map(|v| v.primary.id.to_string()),
        "active": cluster.is_some_and(|c| c.active),
        "serving": cluster.is_some_and(|c| c.serving),
        "why_not_serving": cluster.and_then(|c| c.why_not_serving.clone()),
        "replicas": replicas,
        "view_changes": changes,
        "requests_answered": report.requests_answered,
        "requests_per_second": rate,
    })
}

/// `duration` in its largest whole unit: `42 s`, `31 min`, `5 h`, `3 d`.
fn rounded(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86400),
    }
}

/// Escapes `text` for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The front-end's status page for `report`, with `rate` requests answered per second.
pub fn status_page(report: Option<&NodeReport>, rate: Option<f64>) -> String {
    let mut page = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"refresh\" content=\"2\">",
        "<title>Just Hungry: cluster status</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}",
        "table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:.3em .8em;text-align:left}",
        "th{background:#f2f2f2}.dead{color:#999}.primary{font-weight:bold}",
        ".ok{color:#1a7f37}.bad{color:#c62828}</style></head><body>\n",
        "<h1>Just Hungry: cluster status</h1>\n"
    ));
    let Some(report) = report else {
        page.push_str("<p id=\"state\" class=\"bad\">No front-end runs in this process (a standby candidate, or stopped).</p></body></html>\n");
        return page;
    };
    let Some(cluster) = &report.cluster else {
        page.push_str("<p id=\"state\" class=\"bad\">Not a front-end.</p></body></html>\n");
        return page;
    };
    let _ = write!(page, "<p>Front-end <b>{}</b>. ", escape(&report.name));
    match &cluster.view {
        Some(view) => {
            let _ = writeln!(
                page,
                "View <b id=\"view\">{}</b>, primary <b id=\"primary\">{}</b>, {}.</p>",
                view.number.0,
                escape(&view.primary.id.to_string()),
                if cluster.active { "active" } else { "starting" }
            );
        }
        None => page.push_str("No view yet: waiting for replicas.</p>\n"),
    }
    match &cluster.why_not_serving {
        None => page.push_str("<p id=\"state\" class=\"ok\">Serving.</p>\n"),
        Some(why) => {
            let _ = writeln!(
                page,
                "<p id=\"state\" class=\"bad\">Not serving: {}</p>",
                escape(why)
            );
        }
    }
    let _ = writeln!(
        page,
        "<p>Requests: <b id=\"rate\">{}</b> per second (over the last {} s), {} answered since the front-end started.</p>",
        rate.map_or_else(|| "…".to_owned(), |r| format!("{r:.0}")),
        RATE_WINDOW,
        report.requests_answered
    );
    let primary_applied = cluster
        .view
        .as_ref()
        .and_then(|v| cluster.replicas.iter().find(|r| r.id == v.primary.id))
        .map(|r| r.applied.0);
    page.push_str("<h2>Replicas</h2>\n<table id=\"replicas\"><tr><th>replica</th><th>address</th><th>role</th><th>applied op</th><th>lag (ops behind the primary)</th><th>state</th></tr>\n");
    for replica in cluster.replicas.iter().filter(|r| r.alive) {
        let role = just_hungry_core::runtime::metrics::role_label(replica.role);
        let lag = primary_applied.map_or_else(
            || "–".to_owned(),
            |p| p.saturating_sub(replica.applied.0).to_string(),
        );
        let _ = writeln!(
            page,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>alive</td></tr>",
            if replica.role == ReplicaRole::Primary {
                "primary"
            } else {
                ""
            },
            escape(&replica.id.to_string()),
            escape(replica.address.as_str()),
            role,
            replica.applied.0,
            lag,
        );
    }
    let dead = cluster.replicas.iter().filter(|r| !r.alive).count();
    page.push_str("</table>\n");
    if dead > 0 {
        let _ = writeln!(
            page,
            "<p class=\"dead\">{dead} replica(s) not heard from lately (not shown).</p>"
        );
    }
    page.push_str("<h2>Recent view changes</h2>\n<table id=\"view-changes\"><tr><th>when</th><th>view</th><th>primary</th><th>backups</th><th>why</th></tr>\n");
    for change in report.view_changes.iter().rev() {
        let ago = report.clock.saturating_since(change.at);
        let backups: Vec<String> = change
            .view
            .backups
            .iter()
            .map(|b| escape(&b.id.to_string()))
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{} ago</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rounded(ago),
            change.view.number.0,
            escape(&change.view.primary.id.to_string()),
            backups.join(", "),
            escape(&change.detail),
        );
    }
    page.push_str("</table>\n<p class=\"dead\">This page refreshes itself every 2 s. Metrics: <a href=\"/metrics\">/metrics</a>, readiness: <a href=\"/readyz\">/readyz</a>.</p>\n</body></html>\n");
    page
}

/// Describes every metric the library publishes (Prometheus' `# HELP` lines).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "just_hungry_node_validations_waiting",
        "Validations (postcode lookups) the node's loop waits for."
    );
    describe_gauge!(
        "just_hungry_node_held_outputs",
        "A durable replica's messages waiting for their records to be synced."
    );
    describe_counter!(
        "just_hungry_node_refused_messages_total",
        "Messages refused because their sender may not send them."
    );
    describe_gauge!("just_hungry_registry_entries", "Names the registry holds.");
    describe_gauge!(
        "just_hungry_frontend_view",
        "The newest view number the front-end created."
    );
    describe_gauge!(
        "just_hungry_frontend_view_active",
        "1 if the newest view is active (its primary started it)."
    );
    describe_gauge!(
        "just_hungry_frontend_serving",
        "1 if the view serves: active, its primary alive and answering."
    );
    describe_gauge!(
        "just_hungry_frontend_replicas",
        "Replicas the front-end knows, by state (alive, dead)."
    );
    describe_gauge!(
        "just_hungry_frontend_pending_requests",
        "Client requests taken and not answered yet."
    );
    describe_gauge!(
        "just_hungry_frontend_forwarded_requests",
        "Pending requests forwarded to the primary (the forwarding window)."
    );
    describe_counter!(
        "just_hungry_frontend_view_changes_total",
        "Views created, by reason."
    );
    describe_counter!(
        "just_hungry_frontend_elections_total",
        "Primaries replaced by another member of the last active view."
    );
    describe_counter!(
        "just_hungry_frontend_join_requests_total",
        "Primaries asked to transfer their state to a newcomer."
    );
    describe_counter!(
        "just_hungry_frontend_joins_total",
        "Newcomers that joined a view as backups."
    );
    describe_counter!(
        "just_hungry_frontend_requests_total",
        "Client requests answered, by outcome."
    );
    describe_counter!(
        "just_hungry_frontend_refused_requests_total",
        "Writes the service refused, by reason."
    );
    describe_histogram!(
        "just_hungry_frontend_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from a request's arrival at the front-end to its answer."
    );
    describe_histogram!(
        "just_hungry_replica_wal_sync_duration_seconds",
        metrics::Unit::Seconds,
        "A durable replica's syncs: from a sync's start to its result reaching the node's loop."
    );
    describe_gauge!(
        "just_hungry_replica_role",
        "1 for the role the replica plays now (label role)."
    );
    describe_gauge!(
        "just_hungry_replica_view",
        "The newest view number the replica knows."
    );
    describe_gauge!(
        "just_hungry_replica_applied_op",
        "The last op applied to the replica's state (on the primary: committed)."
    );
    describe_gauge!(
        "just_hungry_replica_last_op",
        "The highest op the replica holds (on the primary: appended, committed or not)."
    );
    describe_gauge!(
        "just_hungry_replica_pending_writes",
        "A primary's writes taken and not answered yet."
    );
    describe_gauge!(
        "just_hungry_replica_pending_reads",
        "A primary's reads waiting for earlier writes to commit."
    );
    describe_gauge!(
        "just_hungry_replica_replication_lag_ops",
        "On a primary: ops of its log a backup or learner has not acknowledged."
    );
    describe_counter!(
        "just_hungry_replica_snapshots_sent_total",
        "Snapshots a primary began to stream to a learner or backup."
    );
    describe_counter!(
        "just_hungry_replica_suffixes_sent_total",
        "Suffixes sent to a backup instead of a snapshot."
    );
    describe_counter!(
        "just_hungry_replica_snapshots_installed_total",
        "Snapshots the replica received and installed."
    );
    describe_counter!(
        "just_hungry_replica_transfer_bytes_total",
        metrics::Unit::Bytes,
        "Snapshot bytes sent and received, by direction."
    );
    describe_gauge!(
        "just_hungry_tcp_connections",
        "Open TCP connections, by direction."
    );
    describe_counter!(
        "just_hungry_tcp_refused_connections_total",
        "Connections refused, by reason."
    );
    describe_counter!(
        "just_hungry_postcode_lookups_total",
        "Postcode lookups, by directory and outcome (found, refused, no_answer)."
    );
    describe_counter!(
        "just_hungry_postcode_cache_requests_total",
        "Postcode validations answered from the cache (hit) or by asking the directories (miss)."
    );
}
