//! The transport's metrics, through the [`metrics`] facade (a no-op until the application
//! installs a recorder): open connections by direction and refused connections by reason,
//! and the bytes in its queues, each labelled with this endpoint's identity
//! (`identity="replica-1"`). The list: `docs/OPERATIONS.md`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{Gauge, counter, gauge};

use crate::transport::Shared;

/// How often [`sample_queues`] publishes the queues: far shorter than a scrape interval.
pub(crate) const QUEUE_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// Publishes, every [`QUEUE_SAMPLE_INTERVAL`] until the transport stops, the bytes queued to be
/// written over every connection (`just_hungry_tcp_queued_bytes`) and the bytes received and
/// not yet taken by the node (`just_hungry_tcp_inbound_queued_bytes`, the part of
/// `TcpConfig::inbound_queue_bytes` in use). Sampled rather than counted per frame, so the hot
/// path pays nothing for them. Each transport adds its own share to the gauges and takes it
/// back when it stops, as [`OpenConnection`] does, so endpoints of one identity in one
/// process (a load generator's clients) sum instead of overwriting each other.
pub(crate) async fn sample_queues(shared: Arc<Shared>) {
    let identity = shared.config.identity.name.clone();
    let mut queued =
        SharedGauge::new(gauge!("just_hungry_tcp_queued_bytes", "identity" => identity.clone()));
    let mut inbound =
        SharedGauge::new(gauge!("just_hungry_tcp_inbound_queued_bytes", "identity" => identity));
    let mut every = tokio::time::interval(QUEUE_SAMPLE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shared.cancel.cancelled() => return,
        }
        queued.set(shared.queued_bytes.load(Ordering::Acquire));
        let free = shared.inbound_budget.available_permits();
        inbound.set((shared.inbound_budget_max as usize).saturating_sub(free));
    }
}

/// One transport's share of a gauge that several may feed: it moves the gauge by the change
/// of its own value, and takes its value back when dropped.
struct SharedGauge {
    gauge: Gauge,
    mine: usize,
}

impl SharedGauge {
    fn new(gauge: Gauge) -> Self {
        SharedGauge { gauge, mine: 0 }
    }

    fn set(&mut self, value: usize) {
        self.gauge.increment(value as f64 - self.mine as f64);
        self.mine = value;
    }
}

impl Drop for SharedGauge {
    fn drop(&mut self) {
        self.gauge.decrement(self.mine as f64);
    }
}

/// One open connection, counted in `just_hungry_tcp_connections` while it lives.
pub(crate) struct OpenConnection(Gauge);

impl OpenConnection {
    /// Counts a connection of `identity`'s endpoint, `inbound` or `outbound`.
    pub(crate) fn new(identity: &str, direction: &'static str) -> Self {
        let open = gauge!("just_hungry_tcp_connections", "identity" => identity.to_owned(), "direction" => direction);
        open.increment(1.0);
        OpenConnection(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts a connection `identity`'s endpoint refused, for `reason` (a label: lower case,
/// words joined by `_`).
pub(crate) fn refused(identity: &str, reason: &'static str) {
    counter!("just_hungry_tcp_refused_connections_total", "identity" => identity.to_owned(), "reason" => reason)
        .increment(1);
}
