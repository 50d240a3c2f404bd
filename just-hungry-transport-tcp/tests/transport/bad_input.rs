//! Bad input on the wire: each case is refused or closed without a panic, and the transport
//! keeps serving normal peers afterwards (docs/PROTOCOL.md, "What reaches the wire").

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::protocol::messages::PROTOCOL_VERSION;
use just_hungry_core::transport::Transport;
use just_hungry_transport_tcp::{MAGIC, TcpConfig, TcpTransport};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A server whose timeouts are short enough for tests and long enough that a refusal well
/// before them proves it was not a timeout.
async fn guarded_server() -> TcpTransport {
    logs();
    TcpTransport::bind(TcpConfig {
        hello_timeout: Duration::from_secs(3),
        ..server_config("guarded")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn random_bytes_are_refused_and_the_server_serves_on() {
    let mut s = guarded_server().await;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    raw_exchange(&s, &garbage).await;
    // Not even a whole length prefix, then the end of the stream.
    let mut stream = TcpStream::connect(s.local_address().as_str())
        .await
        .unwrap();
    stream.write_all(&garbage[..3]).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(rejection(&answer).contains("hello"));
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_before_the_body_is_read() {
    let mut s = guarded_server().await;
    let start = Instant::now();
    let answer = raw_exchange(&s, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "refused from the length alone"
    );
    assert!(rejection(&answer).contains("hello"));
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_frame_over_the_limit_after_the_hello_closes_only_that_connection() {
    let mut s = TcpTransport::bind(TcpConfig {
        max_frame_bytes: 64 * 1024,
        ..server_config("limited")
    })
    .await
    .unwrap();
    let framed = raw_client(&s).await;
    let mut stream = framed.into_inner();
    stream
        .write_all(&(64 * 1024u32 + 1).to_be_bytes())
        .await
        .unwrap();
    read_until_closed(&mut stream).await;
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_truncated_frame_then_close_is_survived() {
    let mut s = guarded_server().await;
    for prefix in [frame(&hello(None)), frame(b"data")] {
        let mut stream = TcpStream::connect(s.local_address().as_str())
            .await
            .unwrap();
        stream.write_all(&prefix[..prefix.len() - 1]).await.unwrap();
    }
    // And after a valid hello, a message cut short.
    let framed = raw_client(&s).await;
    let mut stream = framed.into_inner();
    stream.write_all(&frame(b"a message")[..6]).await.unwrap();
    drop(stream);
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_first_frame_that_is_not_a_hello_is_refused_with_a_reason() {
    let mut s = guarded_server().await;
    let answer = raw_exchange(&s, &frame(&[0xde, 0xad, 0xbe, 0xef])).await;
    let reason = rejection(&answer);
    assert!(reason.contains("hello"), "{reason}");
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_data_frame_before_the_hello_is_refused_with_a_reason() {
    let mut s = guarded_server().await;
    let answer = raw_exchange(&s, &frame(b"a protocol message, too early")).await;
    let reason = rejection(&answer);
    assert!(reason.contains("hello"), "{reason}");
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_hello_of_another_protocol_version_is_refused_with_a_clear_reason() {
    let mut s = guarded_server().await;
    let answer = raw_exchange(&s, &frame(&hello_with(MAGIC, 999))).await;
    let reason = rejection(&answer);
    assert_eq!(
        reason,
        format!(
            "protocol version 999 is not supported: this node speaks version {PROTOCOL_VERSION}"
        )
    );
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_hello_with_another_magic_number_is_refused() {
    let mut s = guarded_server().await;
    let answer = raw_exchange(&s, &frame(&hello_with(0x4854_5450, PROTOCOL_VERSION))).await;
    let reason = rejection(&answer);
    assert!(reason.contains("magic"), "{reason}");
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_hello_that_claims_a_connection_address_is_refused() {
    let mut s = guarded_server().await;
    for listen in ["conn:1", "not an address"] {
        let answer = raw_exchange(&s, &frame(&hello(Some(listen)))).await;
        let reason = rejection(&answer);
        assert!(reason.contains("not host:port"), "{reason}");
    }
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn a_connection_that_never_says_hello_is_closed_after_the_hello_timeout() {
    logs();
    let hello_timeout = Duration::from_millis(300);
    let mut s = TcpTransport::bind(TcpConfig {
        hello_timeout,
        ..server_config("impatient")
    })
    .await
    .unwrap();
    let start = Instant::now();
    let answer = raw_exchange(&s, &[]).await;
    assert!(start.elapsed() >= hello_timeout);
    assert!(rejection(&answer).contains("no hello"));
    assert_serves(&mut s).await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    logs();
    let idle_timeout = Duration::from_millis(300);
    let mut s = TcpTransport::bind(TcpConfig {
        idle_timeout,
        ..server_config("tidy")
    })
    .await
    .unwrap();
    let mut framed = raw_client(&s).await;
    // One message keeps it alive; then silence.
    framed.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(next_message(&mut s).await.1, b"one");
    let start = Instant::now();
    let closed = tokio::time::timeout(WAIT, framed.next())
        .await
        .expect("closed in time");
    assert!(
        closed.is_none() || closed.unwrap().is_err(),
        "closed, no frame"
    );
    assert!(start.elapsed() >= idle_timeout - Duration::from_millis(50));
    eventually(WAIT, "the slot is freed", || s.inbound_connections() == 0).await;
    assert_serves(&mut s).await;
}

/// A node of another service (an embedder's key-value cluster, say) is refused at the hello
/// with an error naming both services, not left to fail decoding every message.
#[tokio::test]
async fn a_peer_of_another_service_is_refused_at_the_hello_naming_both() {
    logs();
    let mut s = TcpTransport::bind(TcpConfig {
        service: Some("just-hungry/orders".into()),
        ..server_config("orders")
    })
    .await
    .unwrap();
    let mut kv = TcpTransport::connect_only(TcpConfig {
        service: Some("kv-store".into()),
        ..TcpConfig::client("kv-client")
    })
    .await
    .unwrap();
    let to = s.local_address();
    kv.send(&to, b"get x".to_vec());
    expect_unreachable(&mut kv, &to).await;
    assert!(
        s.try_recv().is_none(),
        "nothing of the other service is delivered"
    );

    // What the refused peer reads: the reason, naming both services.
    let mut stream = TcpStream::connect(to.as_str()).await.unwrap();
    let hello = just_hungry_transport_tcp::encode_handshake(
        &just_hungry_transport_tcp::Handshake::Hello(just_hungry_transport_tcp::Hello {
            role: "client".into(),
            name: "kv-client".into(),
            listen: None,
            service: Some("kv-store".into()),
            lane: Default::default(),
        }),
    )
    .unwrap();
    stream.write_all(&frame(&hello)).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    let reason = rejection(&answer);
    assert!(
        reason.contains("`just-hungry/orders`") && reason.contains("`kv-store`"),
        "{reason}"
    );
    assert_serves(&mut s).await;
}

/// A client that asks and never reads cannot make a node hold its replies: once its reply
/// queue is full, its connection is closed and the node is told it is unreachable. The bytes
/// queued never pass the bound, and are all freed once the connection is closed.
#[tokio::test]
async fn a_reader_that_never_reads_is_disconnected_when_its_replies_fill_their_queue() {
    logs();
    const BOUND: usize = 256 * 1024;
    let mut s = TcpTransport::bind(TcpConfig {
        outbound_queue_bytes: BOUND,
        ..server_config("replier")
    })
    .await
    .unwrap();
    let mut sleeper = raw_client(&s).await;
    sleeper.send(Bytes::from(vec![1u8; 8])).await.unwrap();
    let (from, _) = next_message(&mut s).await;
    // Far more than the queue and the socket buffers hold; the client reads none of it.
    let reply = vec![0u8; 64 * 1024];
    let mut closed = false;
    let mut peak = 0;
    for _ in 0..2_000 {
        s.send(&from, reply.clone());
        peak = peak.max(s.queued_bytes());
        if let Some(just_hungry_core::transport::TransportEvent::Unreachable { to }) = s.try_recv()
        {
            assert_eq!(to, from);
            closed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    if !closed {
        expect_unreachable(&mut s, &from).await;
    }
    assert!(
        peak > 0 && peak <= BOUND,
        "queued {peak} bytes; bound {BOUND}"
    );
    eventually(
        WAIT,
        "the connection is closed and its replies freed",
        || s.inbound_connections() == 0 && s.queued_bytes() == 0,
    )
    .await;
    drop(sleeper);
    assert_serves(&mut s).await;
}
