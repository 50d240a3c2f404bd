//! [`TcpConfig`]: every limit of the transport, in one place, each with its default.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use just_hungry_core::ids::{Identity, NodeRole};

use crate::tls::TlsConfig;
use crate::wire;

/// How a TCP endpoint behaves. Every limit of the transport is a field here, with a default
/// ([`TcpConfig::default`]); the constructors [`TcpConfig::server`] and [`TcpConfig::client`]
/// fill in the identity and keep the default limits.
///
/// [`TcpTransport::bind`](crate::TcpTransport::bind) and
/// [`TcpTransport::connect_only`](crate::TcpTransport::connect_only) check the values and
/// refuse a configuration that cannot work (a zero-sized queue or limit, a zero timeout, a frame
/// limit beyond the 4-byte length prefix, an `advertise` that is not `host:port`, a hello that
/// does not fit [`MAX_HELLO_BYTES`](crate::MAX_HELLO_BYTES)) with
/// [`io::ErrorKind::InvalidInput`].
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Where to listen. `127.0.0.1:0` asks for any free port (read the real one from
    /// `local_address()`). `None` for an endpoint that only connects
    /// ([`TcpTransport::connect_only`](crate::TcpTransport::connect_only)). Default `None`.
    pub listen: Option<SocketAddr>,
    /// The `host:port` announced to peers in the hello and returned by `local_address()`,
    /// when it differs from the bound address (listening on `0.0.0.0`, or behind a DNS name).
    /// `None`: the bound address. Default `None`.
    pub advertise: Option<String>,
    /// Who this endpoint is: its role and node name, sent in the hello. On a plaintext link
    /// the peer takes it as this endpoint's identity (unauthenticated); over TLS the peer
    /// checks that it matches the certificate. Default: a client named `node`.
    pub identity: Identity,
    /// The service this endpoint serves ([`StateMachine::SERVICE`](just_hungry_core::StateMachine::SERVICE)),
    /// sent in the hello: a peer that serves another refuses the connection (both log why).
    /// `None` (the default) says nothing and accepts any: for raw transports in tests.
    pub service: Option<String>,
    /// Mutual TLS on every connection ([`TlsConfig`]): peers are authenticated by the
    /// cluster's CA and identified by their certificates, and `identity` must be this
    /// endpoint's certificate's. `None`: plaintext, where a peer is whoever its hello says
    /// (for tests and trusted networks only). Default `None`.
    pub tls: Option<TlsConfig>,
    /// The largest frame (one encoded message) sent or accepted, in bytes. A longer incoming
    /// frame closes its connection as soon as its length prefix is read, before its body; a
    /// longer outgoing message is dropped (logged at warn). At most `u32::MAX`. Default 8 MiB.
    pub max_frame_bytes: usize,
    /// How long opening a connection (resolving, `connect`) may take before the peer is
    /// reported unreachable. Default 1 s.
    pub connect_timeout: Duration,
    /// How long a peer has to send its hello after connecting, and how long we wait for the
    /// answer to ours. Default 5 s.
    pub hello_timeout: Duration,
    /// An inbound connection on which no frame arrives for this long is closed (logged at
    /// info); the peer reconnects on its next send. Default 5 min.
    pub idle_timeout: Duration,
    /// The most inbound connections open at once (in the hello or later). Excess connections
    /// are accepted and closed at once (logged), so a flood cannot exhaust file descriptors.
    /// Default 1024.
    pub max_inbound_connections: usize,
    /// The most inbound connections of peers of the client role admitted at once, out of
    /// `max_inbound_connections`: the rest is kept for the cluster's own nodes (replicas,
    /// front-ends, the registry), so that clients, the most numerous identities and the ones
    /// whose certificates are the likeliest to leak, cannot hold every place and lock a
    /// reconnecting replica or front-end out (as PostgreSQL keeps
    /// `superuser_reserved_connections`). The places are shared fairly between client
    /// identities (certificate names; with plaintext, the names hellos claim): when every
    /// place is taken, a client whose identity holds at least two fewer than the identity
    /// holding the most takes a place from it (that identity's oldest connection is closed,
    /// counted as `client_place_taken`), so one leaked client certificate cannot keep the
    /// other clients out. Otherwise a client's connection beyond it is refused at its hello,
    /// with the reason (`too_many_client_connections`). `0` admits no client. Default 960 (64
    /// places kept for nodes).
    pub max_client_connections: usize,
    /// The most outbound peers tracked at once (connected, connecting or backing off). Expired
    /// back-off records are forgotten to make room; beyond, sends to new peers are reported
    /// unreachable. Default 1024.
    pub max_peers: usize,
    /// Frames queued for one peer (outbound) or one client connection (replies), waiting to be
    /// written. When full, further frames to that peer are dropped (logged at debug), as a
    /// congested network drops packets; the protocol retransmits. Default 4096.
    pub outbound_queue: usize,
    /// Bytes queued for one peer or client connection; beyond, frames are dropped as above. A
    /// single frame larger than this is still queued when nothing else is. Default 32 MiB.
    pub outbound_queue_bytes: usize,
    /// Received messages waiting for the node (`recv`). When full, connection readers stop
    /// reading until the node catches up, so TCP flow control slows the senders down: nothing
    /// received is dropped. Default 65 536.
    pub inbound_queue: usize,
    /// Bytes of received messages waiting for the node; beyond, readers wait as above. A
    /// single message larger than this waits until the queue is empty. Default 64 MiB.
    pub inbound_queue_bytes: usize,
    /// How long sends to a peer are refused after its first failure, before the next
    /// connection attempt. Doubles with every consecutive failure. Default 20 ms.
    pub backoff_initial: Duration,
    /// The longest back-off window. Default 1 s.
    pub backoff_max: Duration,
    /// The fraction of each back-off window drawn at random (`0.0`: none, `1.0`: the window is
    /// uniform in `[0, window]`), so peers that failed together do not retry together.
    /// Clamped to `[0, 1]`. Default 0.5.
    pub backoff_jitter: f64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: None,
            advertise: None,
            identity: Identity::new(NodeRole::Client, "node"),
            service: None,
            tls: None,
            max_frame_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(1),
            hello_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5 * 60),
            max_inbound_connections: 1024,
            max_client_connections: 960,
            max_peers: 1024,
            outbound_queue: 4096,
            outbound_queue_bytes: 32 * 1024 * 1024,
            inbound_queue: 65_536,
            inbound_queue_bytes: 64 * 1024 * 1024,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            backoff_jitter: 0.5,
        }
    }
}

impl TcpConfig {
    /// A server listening on `listen` (`127.0.0.1:0` for any free port) as `identity`, with
    /// default limits.
    pub fn server(listen: SocketAddr, identity: Identity) -> Self {
        TcpConfig {
            listen: Some(listen),
            identity,
            ..TcpConfig::default()
        }
    }

    /// An endpoint that listens nowhere, a client named `name`, with default limits.
    pub fn client(name: &str) -> Self {
        TcpConfig {
            identity: Identity::new(NodeRole::Client, name),
            ..TcpConfig::default()
        }
    }

    /// The same configuration secured by `tls`: the identity becomes the certificate's.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.identity = tls.identity();
        self.tls = Some(tls);
        self
    }

    /// The same configuration, for a node of service `S`.
    pub fn for_service<S: just_hungry_core::StateMachine>(mut self) -> Self {
        self.service = Some(S::SERVICE.to_owned());
        self
    }

    /// Refuses values the transport cannot work with.
    pub(crate) fn check(&self) -> io::Result<()> {
        let invalid = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        if self.max_frame_bytes == 0 || self.max_frame_bytes > u32::MAX as usize {
            return invalid(format!(
                "max_frame_bytes must be in 1..={} (a 4-byte length prefix), not {}",
                u32::MAX,
                self.max_frame_bytes
            ));
        }
        for (name, value) in [
            ("outbound_queue", self.outbound_queue),
            ("outbound_queue_bytes", self.outbound_queue_bytes),
            ("inbound_queue", self.inbound_queue),
            ("inbound_queue_bytes", self.inbound_queue_bytes),
            ("max_inbound_connections", self.max_inbound_connections),
            ("max_peers", self.max_peers),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be at least 1"));
            }
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("hello_timeout", self.hello_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be longer than zero"));
            }
        }
        if let Some(tls) = &self.tls
            && tls.identity() != self.identity
        {
            return invalid(format!(
                "the configured identity {} is not the certificate's ({})",
                self.identity,
                tls.identity()
            ));
        }
        if let Some(advertise) = &self.advertise
            && !wire::is_dialable(advertise)
        {
            return invalid(format!("advertise `{advertise}` is not host:port"));
        }
        Ok(())
    }

    /// The back-off window after `failures` earlier consecutive failures (0 for the first):
    /// `backoff_initial * 2^failures`, capped at `backoff_max`, of which the fraction
    /// `backoff_jitter` is scaled by `random` (uniform in `[0, 1)`).
    pub(crate) fn backoff_delay(&self, failures: u32, random: f64) -> Duration {
        let window = self
            .backoff_initial
            .saturating_mul(2u32.saturating_pow(failures.min(30)))
            .min(self.backoff_max);
        let jitter = if self.backoff_jitter.is_nan() {
            0.0
        } else {
            self.backoff_jitter.clamp(0.0, 1.0)
        };
        window.mul_f64(1.0 - jitter * random.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it() {
        let config = TcpConfig {
            backoff_jitter: 0.5,
            ..TcpConfig::default()
        };
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(config.backoff_delay(0, 0.0)), 20);
        assert_eq!(ms(config.backoff_delay(1, 0.0)), 40);
        assert_eq!(ms(config.backoff_delay(3, 0.0)), 160);
        assert_eq!(ms(config.backoff_delay(6, 0.0)), 1000, "capped");
        assert_eq!(ms(config.backoff_delay(u32::MAX, 0.0)), 1000, "no overflow");
        assert_eq!(ms(config.backoff_delay(6, 0.999_999)), 500);
        let none = TcpConfig {
            backoff_jitter: f64::NAN,
            ..TcpConfig::default()
        };
        assert_eq!(ms(none.backoff_delay(0, 0.7)), 20);
    }

    #[test]
    fn unusable_limits_are_refused() {
        assert!(TcpConfig::default().check().is_ok());
        let zero_queue = TcpConfig {
            outbound_queue: 0,
            ..TcpConfig::default()
        };
        assert!(zero_queue.check().is_err());
        let huge_frames = TcpConfig {
            max_frame_bytes: u32::MAX as usize + 1,
            ..TcpConfig::default()
        };
        assert!(huge_frames.check().is_err());
        let bad_advertise = TcpConfig {
            advertise: Some("no port".into()),
            ..TcpConfig::default()
        };
        assert!(bad_advertise.check().is_err());
        let no_time = TcpConfig {
            hello_timeout: Duration::ZERO,
            ..TcpConfig::default()
        };
        assert!(no_time.check().is_err());
    }
}
