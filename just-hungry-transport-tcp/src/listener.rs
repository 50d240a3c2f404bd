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
        let slot = Slot::take(&shared.inbound_connections, limit).or_else(|| {
            connection::evict_oldest_handshake(&shared).inspect(|_| {
                refused!(shared, "evicted_in_handshake", peer = %peer, limit, "inbound connections at the limit: closed the oldest still in its handshake for a new one");
            })
        });
        match slot {
            Some(slot) => {
                tracing::debug!(peer = %peer, "accepted");
                shared.spawn(connection::serve_inbound(
                    shared.clone(),
                    stream,
                    peer,
                    slot,
                ));
            }
            None => {
                refused!(shared, "too_many_connections", peer = %peer, limit, "too many inbound connections: closed a new one");
                drop(stream);
            }
        }
    }
}
