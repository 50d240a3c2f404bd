//! What travels on a connection: length-prefixed frames, and the handshake that opens it.

use just_hungry_core::codec::{self, CodecError};
use just_hungry_core::ids::{Identity, NodeRole, UnknownRole};
use just_hungry_core::protocol::messages::PROTOCOL_VERSION;
use just_hungry_core::protocol::trust::MAX_NODE_NAME_BYTES;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The size of the length prefix of every frame, in bytes (a big-endian `u32`).
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The magic number that opens every handshake frame: `"JHNG"` read as a big-endian `u32`.
pub const MAGIC: u32 = 0x4a48_4e47;

/// The largest handshake frame, in bytes. Until the hello is accepted a connection accepts no
/// longer frame, so an unauthenticated peer cannot make the transport reserve
/// [`TcpConfig::max_frame_bytes`](crate::TcpConfig::max_frame_bytes) per connection.
pub const MAX_HELLO_BYTES: usize = 4096;

/// The prefix of the synthetic address of an inbound connection whose peer listens nowhere
/// (`conn:17`): a reply sent to it travels back over that connection.
pub const CONNECTION_ADDRESS_PREFIX: &str = "conn:";

/// The codec of every frame on the wire: a 4-byte big-endian length, then that many bytes.
/// A frame longer than `max_frame_bytes` is an error as soon as its length is read, before
/// its body is buffered, and encoding a longer one fails.
pub fn frame_codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LENGTH_PREFIX_BYTES)
        .big_endian()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// The outer layer of every handshake frame. Its layout is frozen: every protocol version
/// decodes it, so a node always learns a peer's version and can refuse it with a clear reason
/// even when the rest of the peer's hello has changed shape. `body` is a [`Handshake`] encoded
/// by the protocol version `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeFrame {
    /// Always [`MAGIC`]; anything else is not a just-hungry peer.
    pub magic: u32,
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The encoded [`Handshake`] of that version.
    pub body: Vec<u8>,
}

/// What a handshake frame carries, in this protocol version.
///
/// The connecting side sends [`Handshake::Hello`] as its first frame; the accepting side
/// answers [`Handshake::Accept`] and the connection carries protocol messages from then on,
/// or [`Handshake::Reject`] and closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// The connecting side introduces itself.
    Hello(Hello),
    /// The hello is accepted.
    Accept {
        /// The acceptor's role: its identity's on a plaintext link; over TLS it must match
        /// the certificate's.
        role: String,
        /// The acceptor's node name, likewise.
        name: String,
        /// The service the acceptor serves, if it says.
        service: Option<String>,
    },
    /// The hello is refused; the acceptor closes the connection after this frame.
    Reject {
        /// Why, for a human (`protocol version 2 is not supported: this node speaks version 1`).
        reason: String,
    },
}

/// The connecting side's introduction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its role (`registry`, `frontend`, `replica`, `client`): on a plaintext link, taken as
    /// its identity's role; over TLS, it must match the certificate's.
    pub role: String,
    /// Its node name: taken or checked like `role`.
    pub name: String,
    /// The `host:port` it listens on, if any. Messages arriving on the connection are reported
    /// `from` this address, and replies to it go to that listener over a connection of the
    /// acceptor's own. `None` (a client): they are reported from a synthetic `conn:N` address
    /// and replies travel back over this connection.
    pub listen: Option<String>,
    /// The service it serves ([`StateMachine::SERVICE`](just_hungry_core::StateMachine::SERVICE)),
    /// if it says: an acceptor serving another one refuses the connection.
    pub service: Option<String>,
    /// Which of the two connections between a pair of nodes this is.
    pub lane: Lane,
}

/// The two connections a node opens to a peer: one for everything, and one for the liveness
/// signals the runtime sends with
/// [`Transport::send_priority`](just_hungry_core::transport::Transport::send_priority) (pings
/// and their answers), so that they never wait behind bulk traffic in a queue or a socket
/// (issue 13). The acceptor hands what a priority connection carries to its node before what
/// the normal ones carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    /// Every message.
    #[default]
    Normal,
    /// Liveness signals only: frames of at most [`MAX_PRIORITY_FRAME_BYTES`], from a node that
    /// listens (a replica, the front-end or the registry, never a client).
    Priority,
}

impl Lane {
    /// Both lanes, in the order of [`Lane::index`].
    pub const ALL: [Lane; 2] = [Lane::Normal, Lane::Priority];

    /// 0 for [`Lane::Normal`], 1 for [`Lane::Priority`].
    pub fn index(self) -> usize {
        match self {
            Lane::Normal => 0,
            Lane::Priority => 1,
        }
    }
}

/// The longest frame a priority connection carries. A longer priority payload (a view of
/// hundreds of members) travels on the normal connection instead; a peer that sends a longer
/// one on a priority connection has it closed.
pub const MAX_PRIORITY_FRAME_BYTES: usize = 64 * 1024;

/// Why a handshake frame was not understood.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The frame is not a [`HandshakeFrame`]: not a just-hungry peer, or a data frame sent
    /// before the hello.
    #[error("not a just-hungry handshake frame ({0})")]
    NotAHandshake(CodecError),
    /// The frame decodes but does not start with [`MAGIC`].
    #[error("not a just-hungry handshake frame (magic {found:#010x}, expected {MAGIC:#010x})")]
    WrongMagic {
        /// The magic number received.
        found: u32,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version {found} is not supported: this node speaks version {supported}")]
    UnsupportedVersion {
        /// The peer's version.
        found: u32,
        /// Ours, [`PROTOCOL_VERSION`].
        supported: u32,
    },
    /// The frame has our magic and version but its body is not a [`Handshake`].
    #[error("malformed handshake ({0})")]
    Malformed(CodecError),
}

/// Encodes `handshake` as a frame body of this protocol version.
pub fn encode_handshake(handshake: &Handshake) -> Result<Vec<u8>, CodecError> {
    let frame = HandshakeFrame {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        body: codec::encode(handshake)?,
    };
    codec::encode(&frame)
}

/// Decodes a frame body sent by [`encode_handshake`], refusing another magic number or
/// another protocol version. Decoding is bounded by the core codec's limits.
pub fn decode_handshake(frame: &[u8]) -> Result<Handshake, HandshakeError> {
    let frame: HandshakeFrame = codec::decode(frame).map_err(HandshakeError::NotAHandshake)?;
    if frame.magic != MAGIC {
        return Err(HandshakeError::WrongMagic { found: frame.magic });
    }
    if frame.version != PROTOCOL_VERSION {
        return Err(HandshakeError::UnsupportedVersion {
            found: frame.version,
            supported: PROTOCOL_VERSION,
        });
    }
    codec::decode(&frame.body).map_err(HandshakeError::Malformed)
}

/// The identity a handshake's `role` and `name` claim, or why they name none.
pub fn claimed_identity(role: &str, name: &str) -> Result<Identity, String> {
    let role: NodeRole = role.parse().map_err(|e: UnknownRole| e.to_string())?;
    if name.is_empty() || name.len() > MAX_NODE_NAME_BYTES {
        return Err(format!(
            "a node name must have 1 to {MAX_NODE_NAME_BYTES} bytes, not {}",
            name.len()
        ));
    }
    Ok(Identity::new(role, name))
}

/// Why two services cannot talk, or `None` when they can (either side did not say which it
/// serves, or both serve the same).
pub fn service_mismatch(ours: Option<&str>, theirs: Option<&str>) -> Option<String> {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if ours != theirs => Some(format!(
            "this node serves `{ours}`, the peer serves `{theirs}`: nodes of different services cannot talk"
        )),
        _ => None,
    }
}

/// Whether `address` has the shape `host:port` that the transport connects to: a non-empty
/// host without `:` (or a bracketed IPv6 literal) and a port in `1..=65535`. A client's own
/// synthetic address never has it; `conn:N` could, so the transport checks that prefix first.
pub(crate) fn is_dialable(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.strip_suffix(']').is_some_and(|ip| !ip.is_empty())
    } else {
        !host.is_empty() && !host.contains(':')
    };
    let host_ok = host_ok && !host.chars().any(|c| c.is_whitespace() || c.is_control());
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// Whether `address` names an inbound connection (`conn:17`) rather than a listener.
pub(crate) fn is_connection_address(address: &str) -> bool {
    address.starts_with(CONNECTION_ADDRESS_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_survives_the_round_trip() {
        let hello = Handshake::Hello(Hello {
            role: "replica".into(),
            name: "r1".into(),
            listen: Some("127.0.0.1:7001".into()),
            service: Some("just-hungry/orders".into()),
            lane: Lane::Priority,
        });
        let bytes = encode_handshake(&hello).unwrap();
        assert!(bytes.len() < MAX_HELLO_BYTES);
        assert_eq!(decode_handshake(&bytes).unwrap(), hello);
    }

    #[test]
    fn another_version_is_named_in_the_error() {
        let frame = HandshakeFrame {
            magic: MAGIC,
            version: PROTOCOL_VERSION + 1,
            body: vec![0xff; 3],
        };
        let error = decode_handshake(&codec::encode(&frame).unwrap()).unwrap_err();
        assert!(matches!(error, HandshakeError::UnsupportedVersion { .. }));
        assert!(error.to_string().contains("is not supported"), "{error}");
    }

    #[test]
    fn garbage_and_other_magic_are_not_handshakes() {
        assert!(matches!(
            decode_handshake(b"GET / HTTP/1.1\r\n"),
            Err(HandshakeError::NotAHandshake(_))
        ));
        let frame = HandshakeFrame {
            magic: 7,
            version: PROTOCOL_VERSION,
            body: Vec::new(),
        };
        assert!(matches!(
            decode_handshake(&codec::encode(&frame).unwrap()),
            Err(HandshakeError::WrongMagic { found: 7 })
        ));
    }

    #[test]
    fn only_host_port_is_dialable() {
        for ok in [
            "127.0.0.1:80",
            "localhost:7000",
            "[::1]:9",
            "node-3.local:65535",
        ] {
            assert!(is_dialable(ok), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:0",
            "host:99999",
            ":80",
            "a b:80",
            "client:12-ab",
            "::1:80",
            "[]:80",
            "conn:x",
        ] {
            assert!(!is_dialable(bad), "{bad}");
        }
    }
}
