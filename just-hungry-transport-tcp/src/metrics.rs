//! The transport's metrics, through the [`metrics`] facade (a no-op until the application
//! installs a recorder): open connections by direction and refused connections by reason,
//! each labelled with this endpoint's identity (`identity="replica-1"`). The list:
//! `docs/OPERATIONS.md`.

use metrics::{Gauge, counter, gauge};

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
