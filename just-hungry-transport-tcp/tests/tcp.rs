//! The TCP transport on 127.0.0.1: delivery, failure reports, and bad input it must survive.

use std::time::Duration;

use just_hungry_core::codec;
use just_hungry_core::ids::Address;
use just_hungry_core::transport::{Transport, TransportEvent};
use just_hungry_transport_tcp::{Handshake, MAGIC, TcpConfig, TcpTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

fn config() -> TcpConfig {
    TcpConfig {
        hello_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        max_inbound_connections: 64,
        ..TcpConfig::server("127.0.0.1:0".parse().unwrap(), "test", "server")
    }
}

async fn server() -> TcpTransport {
    TcpTransport::bind(config()).await.expect("bind")
}

async fn next_event(t: &mut TcpTransport) -> TransportEvent {
    tokio::time::timeout(WAIT, t.recv())
        .await
        .expect("an event in time")
        .expect("transport open")
}

async fn next_message(t: &mut TcpTransport) -> (Address, Vec<u8>) {
    loop {
        if let TransportEvent::Message { from, payload } = next_event(t).await {
            return (from, payload);
        }
    }
}

/// A new client reaches `server` and gets an answer back over its own connection.
async fn assert_serves(server: &mut TcpTransport) {
    let mut client = TcpTransport::connect_only(TcpConfig::client("probe"))
        .await
        .unwrap();
    client.send(&server.local_address(), b"ping".to_vec());
    let (from, payload) = next_message(server).await;
    assert_eq!(payload, b"ping");
    server.send(&from, b"pong".to_vec());
    let (_, payload) = next_message(&mut client).await;
    assert_eq!(payload, b"pong");
}

/// Writes `bytes` on a raw connection, then reads until the server closes it; returns what
/// the server sent.
async fn raw_exchange(server: &TcpTransport, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.local_address().as_str())
        .await
        .unwrap();
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection in time");
    answer
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn messages_flow_both_ways_in_order() {
    let mut a = server().await;
    let mut b = server().await;
    for i in 0..100u8 {
        a.send(&b.local_address(), vec![i]);
    }
    for i in 0..100u8 {
        let (from, payload) = next_message(&mut b).await;
        assert_eq!(
            from,
            a.local_address(),
            "from is the sender's listen address"
        );
        assert_eq!(payload, vec![i]);
    }
    b.send(&a.local_address(), b"back".to_vec());
    assert_eq!(next_message(&mut a).await.1, b"back");
}

#[tokio::test]
async fn a_client_gets_answers_over_its_own_connection() {
    let mut s = server().await;
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_closed_port_is_reported_unreachable() {
    let mut a = server().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let to = Address::new(format!("127.0.0.1:{port}"));
    a.send(&to, b"hello?".to_vec());
    assert!(matches!(next_event(&mut a).await, TransportEvent::Unreachable { to: t } if t == to));
    // Within the backoff window, further sends are refused at once.
    a.send(&to, b"again".to_vec());
    assert!(matches!(
        next_event(&mut a).await,
        TransportEvent::Unreachable { .. }
    ));
}

#[tokio::test]
async fn a_peer_that_goes_away_is_reported_unreachable() {
    let mut a = server().await;
    let mut b = server().await;
    let to = b.local_address();
    a.send(&to, b"1".to_vec());
    next_message(&mut b).await;
    drop(b);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        a.send(&to, b"2".to_vec());
        match tokio::time::timeout(Duration::from_millis(200), a.recv()).await {
            Ok(Some(TransportEvent::Unreachable { to: t })) if t == to => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "never reported"),
        }
    }
}

#[tokio::test]
async fn random_bytes_close_the_connection_and_the_server_serves_on() {
    let mut s = server().await;
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    raw_exchange(&s, &garbage).await;
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_before_reading_the_body() {
    let mut s = server().await;
    raw_exchange(&s, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_truncated_frame_then_close_is_survived() {
    let mut s = server().await;
    {
        let mut stream = TcpStream::connect(s.local_address().as_str())
            .await
            .unwrap();
        stream.write_all(&100u32.to_be_bytes()).await.unwrap();
        stream.write_all(&[7; 10]).await.unwrap();
    }
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_first_frame_that_does_not_decode_is_rejected_with_a_reason() {
    let mut s = server().await;
    let answer = raw_exchange(&s, &frame(&[0xde, 0xad, 0xbe, 0xef])).await;
    let reason = rejection(&answer);
    assert!(reason.contains("hello"), "{reason}");
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_hello_with_another_protocol_version_is_rejected_with_a_reason() {
    let mut s = server().await;
    let hello = codec::encode(&Handshake::Hello {
        magic: MAGIC,
        version: 999,
        role: "replica".into(),
        name: "from-the-future".into(),
        listen: None,
    })
    .unwrap();
    let answer = raw_exchange(&s, &frame(&hello)).await;
    let reason = rejection(&answer);
    assert!(reason.contains("version 999"), "{reason}");
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_data_frame_before_the_hello_is_rejected() {
    let mut s = server().await;
    let answer = raw_exchange(&s, &frame(b"a protocol message, too early")).await;
    assert!(rejection(&answer).contains("hello"));
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_timeout() {
    let mut s = server().await;
    let answer = raw_exchange(&s, &[]).await; // returns once the server closes it
    assert!(answer.is_empty());
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_thousand_connections_at_once_are_bounded_and_leak_nothing() {
    let mut s = server().await;
    let before = open_fds();
    let mut streams = Vec::new();
    for _ in 0..1000 {
        if let Ok(stream) = TcpStream::connect(s.local_address().as_str()).await {
            streams.push(stream);
        }
    }
    assert!(
        s.inbound_connections() <= 64,
        "bounded: {}",
        s.inbound_connections()
    );
    drop(streams);
    let deadline = tokio::time::Instant::now() + WAIT;
    while open_fds() > before || s.inbound_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fds {} > {before}, inbound {}",
            open_fds(),
            s.inbound_connections()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_serves(&mut s).await;
}

/// The reason of the `Reject` frame in `answer`.
fn rejection(answer: &[u8]) -> String {
    let Some(len) = answer.get(..4) else {
        panic!("no frame in the answer: {answer:?}")
    };
    let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
    match codec::decode::<Handshake>(&answer[4..4 + len]) {
        Ok(Handshake::Reject { reason }) => reason,
        other => panic!("expected a reject, got {other:?}"),
    }
}
