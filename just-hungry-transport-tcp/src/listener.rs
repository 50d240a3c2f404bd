//! The accept loop: bounded inbound connections, and shutdown raced against `accept`.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::connection::{self, Slot};
use crate::transport::Shared;

/// How long the accept loop pauses after `accept` fails (out of file descriptors, typically),
/// rather than spinning on the error.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections until the transport shuts down. A connection beyond
/// `max_inbound_connections` takes the place of the oldest one still in its handshake, which is
/// closed ([`connection::evict_oldest_handshake`]); when every place is held by an admitted
/// connection it is accepted and closed at once: leaving it in the kernel's backlog would let a
/// flood hold the slots of peers that arrive later.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let limit = shared.config.max_inbound_connections;
    // Log the first refusal of a burst at info, the rest at debug.
    let mut refusing = false;
    let mut evicting = false;
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::info!(error = %e, "accept failed: pausing");
                tokio::select! {
                    () = shared.cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let slot = match Slot::take(&shared.inbound_connections, limit) {
            Some(slot) => {
                evicting = false;
                Some(slot)
            }
            None => connection::evict_oldest_handshake(&shared).inspect(|_| {
                if evicting {
                    tracing::debug!(peer = %peer, limit, "inbound connections at the limit: closed the oldest still in its handshake");
                } else {
                    tracing::info!(peer = %peer, limit, "inbound connections at the limit: closing the oldest still in its handshake for each new one");
                }
                evicting = true;
                crate::metrics::refused(&shared.config.identity.name, "evicted_in_handshake");
            }),
        };
        match slot {
            Some(slot) => {
                refusing = false;
                tracing::debug!(peer = %peer, "accepted");
                shared.spawn(connection::serve_inbound(
                    shared.clone(),
                    stream,
                    peer,
                    slot,
                ));
            }
            None => {
                if refusing {
                    tracing::debug!(peer = %peer, limit, "too many inbound connections: closed a new one");
                } else {
                    tracing::info!(peer = %peer, limit, "too many inbound connections: closing new ones");
                }
                refusing = true;
                crate::metrics::refused(&shared.config.identity.name, "too_many_connections");
                drop(stream);
            }
        }
    }
}
