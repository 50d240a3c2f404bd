//! Delivery and failure reports between well-behaved endpoints on 127.0.0.1.

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::ids::Address;
use just_hungry_core::transport::{Transport, TransportEvent};
use just_hungry_transport_tcp::{
    Handshake, HandshakeFrame, MAGIC, MAX_HELLO_BYTES, TcpConfig, TcpTransport, frame_codec,
};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::codec::Framed;

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> Address {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    Address::new(listener.local_addr().unwrap().to_string())
}

fn numbered(i: u32) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_in_order_from_the_senders_listen_address() {
    let mut a = server("a").await;
    let mut b = server("b").await;
    const N: u32 = 2000;
    for i in 0..N {
        a.send(&b.local_address(), numbered(i));
        b.send(&a.local_address(), numbered(i));
    }
    let (a_address, b_address) = (a.local_address(), b.local_address());
    for (receiver, sender) in [(&mut a, b_address), (&mut b, a_address)] {
        for i in 0..N {
            let (from, payload) = next_message(receiver).await;
            assert_eq!(from, sender, "reported from the sender's listen address");
            assert_eq!(payload, numbered(i), "in order, nothing lost");
        }
    }
}

#[tokio::test]
async fn a_client_only_endpoint_gets_replies_over_its_own_connection() {
    let mut server = server("server").await;
    let mut client = client("client").await;
    assert!(client.listen_address().is_none());
    for i in 0..10 {
        client.send(&server.local_address(), numbered(i));
    }
    let mut conn = None;
    for i in 0..10 {
        let (from, payload) = next_message(&mut server).await;
        assert!(from.as_str().starts_with("conn:"), "{from}");
        assert_eq!(*conn.get_or_insert(from.clone()), from, "one connection");
        assert_eq!(payload, numbered(i));
        server.send(&from, numbered(100 + i));
    }
    for i in 0..10 {
        let (from, payload) = next_message(&mut client).await;
        assert_eq!(from, server.local_address());
        assert_eq!(payload, numbered(100 + i));
    }
    // Nobody can dial a client: its own address is synthetic.
    let own = client.local_address();
    server.send(&own, b"?".to_vec());
    expect_unreachable(&mut server, &own).await;
}

#[tokio::test]
async fn a_closed_port_is_reported_unreachable_quickly() {
    let mut a = server("a").await;
    let to = closed_port();
    let start = Instant::now();
    a.send(&to, b"anyone?".to_vec());
    expect_unreachable(&mut a, &to).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn sends_inside_the_back_off_window_are_refused_at_once_and_retried_after_it() {
    logs();
    let config = TcpConfig {
        backoff_initial: Duration::from_millis(300),
        backoff_jitter: 0.0,
        ..server_config("a")
    };
    let mut a = TcpTransport::bind(config).await.unwrap();
    let to = closed_port();
    a.send(&to, b"first".to_vec());
    expect_unreachable(&mut a, &to).await;

    // The peer comes up, but the window has not passed: refused synchronously, no attempt.
    let mut b = TcpTransport::bind(TcpConfig {
        listen: Some(to.as_str().parse().unwrap()),
        ..server_config("b")
    })
    .await
    .expect("rebind the released port");
    a.send(&to, b"inside the window".to_vec());
    assert!(
        matches!(a.try_recv(), Some(TransportEvent::Unreachable { to: t }) if t == to),
        "reported at once"
    );

    // After the window, the next send connects.
    let deadline = Instant::now() + WAIT;
    let payload = loop {
        a.send(&to, b"after the window".to_vec());
        match tokio::time::timeout(Duration::from_millis(50), b.recv()).await {
            Ok(Some(TransportEvent::Message { payload, .. })) => break payload,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => assert!(Instant::now() < deadline, "never reconnected"),
        }
    };
    assert_eq!(
        payload, b"after the window",
        "nothing sent inside the window"
    );
}

#[tokio::test]
async fn a_peer_that_shuts_down_is_reported_unreachable_on_the_next_send() {
    let mut a = server("a").await;
    let mut b = server("b").await;
    let to = b.local_address();
    a.send(&to, b"1".to_vec());
    next_message(&mut b).await;
    b.shutdown().await;
    a.send(&to, b"2".to_vec());
    expect_unreachable(&mut a, &to).await;
}

/// A peer that goes away (its sockets closed cleanly, as `kill -9` closes them) is reported
/// unreachable without waiting for another send: the close makes us probe its port, which
/// refuses.
#[tokio::test]
async fn a_peer_that_goes_away_is_reported_unreachable_without_another_send() {
    let mut a = server("a").await;
    let mut b = server("b").await;
    let to = b.local_address();
    a.send(&to, b"1".to_vec());
    next_message(&mut b).await;
    b.shutdown().await;
    expect_unreachable(&mut a, &to).await;
}

#[tokio::test]
async fn a_dropped_peer_is_reported_unreachable() {
    let mut a = server("a").await;
    let mut b = server("b").await;
    let to = b.local_address();
    a.send(&to, b"1".to_vec());
    next_message(&mut b).await;
    drop(b); // its tasks stop in the background
    let deadline = Instant::now() + WAIT;
    loop {
        a.send(&to, b"2".to_vec());
        match tokio::time::timeout(Duration::from_millis(50), a.recv()).await {
            Ok(Some(TransportEvent::Unreachable { to: t })) if t == to => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => assert!(Instant::now() < deadline, "never reported"),
        }
    }
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_peer_is_reopened_without_a_failure() {
    let mut a = server("a").await;
    let mut b = TcpTransport::bind(TcpConfig {
        idle_timeout: Duration::from_millis(200),
        ..server_config("b")
    })
    .await
    .unwrap();
    a.send(&b.local_address(), b"1".to_vec());
    assert_eq!(next_message(&mut b).await.1, b"1");
    eventually(WAIT, "b closes the idle connection", || {
        b.inbound_connections() == 0
    })
    .await;
    // The close made `a` probe b's port, which accepted: no failure is reported.
    eventually(WAIT, "b saw the probe come and go", || {
        b.inbound_connections() == 0
    })
    .await;
    assert!(a.try_recv().is_none(), "no unreachable report");
    a.send(&b.local_address(), b"2".to_vec());
    assert_eq!(next_message(&mut b).await.1, b"2");
    assert!(a.try_recv().is_none(), "no unreachable report");
}

#[tokio::test]
async fn a_slow_receiver_loses_nothing_readers_wait_for_it() {
    logs();
    let mut a = server("a").await;
    let mut b = TcpTransport::bind(TcpConfig {
        inbound_queue: 8,
        inbound_queue_bytes: 1024,
        ..server_config("b")
    })
    .await
    .unwrap();
    const N: u32 = 2000;
    for i in 0..N {
        let mut payload = numbered(i);
        payload.resize(100, 0);
        a.send(&b.local_address(), payload);
    }
    // Nothing was taken yet, so the reader has to stop at 8 messages (or 1 KiB) and wait for
    // the node every few messages from here on.
    for i in 0..N {
        let (_, payload) = next_message(&mut b).await;
        assert_eq!(payload[..4], numbered(i)[..], "in order, nothing dropped");
    }
    assert!(a.try_recv().is_none());
}

#[tokio::test]
async fn messages_up_to_the_frame_limit_arrive_and_longer_ones_are_dropped() {
    const LIMIT: usize = 1024 * 1024;
    let config = |name| TcpConfig {
        max_frame_bytes: LIMIT,
        ..server_config(name)
    };
    let mut a = TcpTransport::bind(config("a")).await.unwrap();
    let mut b = TcpTransport::bind(config("b")).await.unwrap();
    let big: Vec<u8> = (0..LIMIT).map(|i| (i % 251) as u8).collect();
    a.send(&b.local_address(), big.clone());
    assert_eq!(next_message(&mut b).await.1, big);
    a.send(&b.local_address(), vec![0; LIMIT + 1]);
    a.send(&b.local_address(), b"small".to_vec());
    assert_eq!(
        next_message(&mut b).await.1,
        b"small",
        "the long one was dropped"
    );
    assert!(
        a.try_recv().is_none(),
        "dropping is not a failure of the peer"
    );
}

#[tokio::test]
async fn addresses_that_name_nothing_are_reported_unreachable() {
    let mut a = server("a").await;
    for to in [
        "",
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:0",
        "conn:424242",
        "client:1-2",
    ] {
        let to = Address::new(to);
        a.send(&to, b"x".to_vec());
        expect_unreachable(&mut a, &to).await;
    }
}

#[tokio::test]
async fn a_peer_of_another_version_refuses_us_and_is_reported_unreachable() {
    let mut a = server("a").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = Address::new(listener.local_addr().unwrap().to_string());
    let future_peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = Framed::new(stream, frame_codec(MAX_HELLO_BYTES));
        let _hello = framed.next().await;
        let body = just_hungry_core::codec::encode(&Handshake::Reject {
            reason: "protocol version 1 is not supported: this node speaks version 2".into(),
        })
        .unwrap();
        let reject = HandshakeFrame {
            magic: MAGIC,
            version: 2,
            body,
        };
        let bytes = just_hungry_core::codec::encode(&reject).unwrap();
        framed.send(Bytes::from(bytes)).await.unwrap();
    });
    a.send(&to, b"hello?".to_vec());
    expect_unreachable(&mut a, &to).await;
    future_peer.await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_ends_recv() {
    let mut s = server("s").await;
    let address = s.local_address();
    s.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(address.as_str())
            .await
            .is_err()
    );
    assert!(s.recv().await.is_none());
    s.send(&address, b"after".to_vec()); // dropped, no panic
    s.shutdown().await;
}
