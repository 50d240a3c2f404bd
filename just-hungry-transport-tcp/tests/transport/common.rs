//! Helpers shared by the TCP transport's integration tests: endpoints on 127.0.0.1 with
//! ephemeral ports, waiting on events with a deadline, raw connections that misbehave.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::codec;
use just_hungry_core::ids::{Address, Identity, NodeRole};
use just_hungry_core::transport::{Transport, TransportEvent};
use just_hungry_transport_tcp::{
    Handshake, HandshakeFrame, Hello, MAX_HELLO_BYTES, TcpConfig, TcpTransport, decode_handshake,
    encode_handshake, frame_codec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// The longest any single expected event may take: generous, since it is only reached when a
/// test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// Logs to the test output when `RUST_LOG` is set.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A server configuration on an ephemeral loopback port.
pub fn server_config(name: &str) -> TcpConfig {
    TcpConfig::server(
        "127.0.0.1:0".parse().unwrap(),
        Identity::new(NodeRole::Replica, name),
    )
}

/// A server with the default limits.
pub async fn server(name: &str) -> TcpTransport {
    logs();
    TcpTransport::bind(server_config(name)).await.expect("bind")
}

/// A client-only endpoint with the default limits.
pub async fn client(name: &str) -> TcpTransport {
    logs();
    TcpTransport::connect_only(TcpConfig::client(name))
        .await
        .expect("client")
}

/// The next event, failing the test after [`WAIT`].
pub async fn next_event(t: &mut TcpTransport) -> TransportEvent {
    tokio::time::timeout(WAIT, t.recv())
        .await
        .expect("an event in time")
        .expect("the transport is open")
}

/// The next message, failing the test on any other event or after [`WAIT`].
pub async fn next_message(t: &mut TcpTransport) -> (Address, Vec<u8>) {
    match next_event(t).await {
        TransportEvent::Message { from, payload, .. } => (from, payload),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The next event must be `Unreachable { to }`.
pub async fn expect_unreachable(t: &mut TcpTransport, to: &Address) {
    match next_event(t).await {
        TransportEvent::Unreachable { to: got } => assert_eq!(&got, to),
        other => panic!("expected {to} unreachable, got {other:?}"),
    }
}

/// Polls `condition` every few milliseconds until it holds, failing the test after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The rule every bad-input test ends with: the server still serves a normal peer. A new
/// client reaches it and gets an answer over its own connection, and a new listening peer
/// gets an answer at its listener.
pub async fn assert_serves(server: &mut TcpTransport) {
    let mut client = client("probe-client").await;
    client.send(&server.local_address(), b"ping".to_vec());
    let (from, payload) = next_message(server).await;
    assert_eq!(payload, b"ping");
    server.send(&from, b"pong".to_vec());
    let (from, payload) = next_message(&mut client).await;
    assert_eq!((from, payload), (server.local_address(), b"pong".to_vec()));

    let mut peer = TcpTransport::bind(server_config("probe-peer"))
        .await
        .unwrap();
    peer.send(&server.local_address(), b"ping".to_vec());
    let (from, payload) = next_message(server).await;
    assert_eq!((&from, payload), (&peer.local_address(), b"ping".to_vec()));
    server.send(&from, b"pong".to_vec());
    assert_eq!(next_message(&mut peer).await.1, b"pong");
}

/// Connects to `server`, writes `bytes`, and reads until the server closes the connection
/// (failing the test after [`WAIT`]); returns what the server sent.
pub async fn raw_exchange(server: &TcpTransport, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.local_address().as_str())
        .await
        .unwrap();
    let _ = stream.write_all(bytes).await;
    read_until_closed(&mut stream).await
}

/// Reads until the peer closes (a reset counts as closed), failing the test after [`WAIT`].
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection in time");
    answer
}

/// `payload` with its 4-byte big-endian length in front.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// A hello of this protocol version.
pub fn hello(listen: Option<&str>) -> Vec<u8> {
    encode_handshake(&Handshake::Hello(Hello {
        role: "client".into(),
        name: "raw".into(),
        listen: listen.map(str::to_owned),
        service: None,
        lane: Default::default(),
    }))
    .unwrap()
}

/// A handshake frame with the given magic and version around a hello of this version.
pub fn hello_with(magic: u32, version: u32) -> Vec<u8> {
    let body = codec::encode(&Handshake::Hello(Hello {
        role: "replica".into(),
        name: "from-elsewhere".into(),
        listen: None,
        service: None,
        lane: Default::default(),
    }))
    .unwrap();
    codec::encode(&HandshakeFrame {
        magic,
        version,
        body,
    })
    .unwrap()
}

/// The reason of the reject frame that opens `answer`.
pub fn rejection(answer: &[u8]) -> String {
    assert!(answer.len() >= 4, "no frame in the answer: {answer:?}");
    let len = u32::from_be_bytes(answer[..4].try_into().unwrap()) as usize;
    assert!(
        len <= MAX_HELLO_BYTES && answer.len() >= 4 + len,
        "truncated: {answer:?}"
    );
    match decode_handshake(&answer[4..4 + len]) {
        Ok(Handshake::Reject { reason }) => reason,
        other => panic!("expected a reject, got {other:?}"),
    }
}

/// Sends `hello` as the first frame on `framed` and decodes the answer, failing the test if
/// none comes within [`WAIT`] or it is not a handshake.
pub async fn say_hello<S>(
    framed: &mut Framed<S, tokio_util::codec::LengthDelimitedCodec>,
    hello: Hello,
) -> Handshake
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hello = encode_handshake(&Handshake::Hello(hello)).unwrap();
    framed.send(Bytes::from(hello)).await.unwrap();
    let answer = tokio::time::timeout(WAIT, framed.next())
        .await
        .expect("an answer in time")
        .expect("an answer")
        .expect("a frame");
    decode_handshake(&answer).expect("a handshake")
}

/// A framed connection that completed the handshake with `server`, as a client would.
pub async fn raw_client(
    server: &TcpTransport,
) -> Framed<TcpStream, tokio_util::codec::LengthDelimitedCodec> {
    let stream = TcpStream::connect(server.local_address().as_str())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, frame_codec(MAX_HELLO_BYTES));
    framed.send(Bytes::from(hello(None))).await.unwrap();
    let answer = tokio::time::timeout(WAIT, framed.next())
        .await
        .expect("an answer in time")
        .expect("an answer")
        .expect("a frame");
    assert!(matches!(
        decode_handshake(&answer),
        Ok(Handshake::Accept { .. })
    ));
    framed
}

/// How many file descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
