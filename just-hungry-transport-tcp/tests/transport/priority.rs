//! The priority lane (issue 13): liveness signals sent with `send_priority` travel on a
//! connection of their own and are handed to the node before the normal traffic waiting for
//! it, so that a node whose inbound queue is full of bulk messages still hears pings at once.

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::transport::{Transport, TransportEvent};
use just_hungry_transport_tcp::{
    Handshake, Hello, Lane, MAX_HELLO_BYTES, MAX_PRIORITY_FRAME_BYTES, TcpTransport,
    encode_handshake, frame_codec,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

#[tokio::test]
async fn a_priority_message_overtakes_a_backlog_of_normal_ones() {
    let mut config = server_config("receiver");
    // A small inbound queue, so that the normal connection is held back (backpressure).
    config.inbound_queue = 4;
    let mut receiver = TcpTransport::bind(config).await.unwrap();
    let sender = server("sender").await;
    let to = receiver.local_address();
    // Open both connections first, so that neither the order of connecting nor a handshake
    // decides the race below.
    sender.send(&to, b"warm-up".to_vec());
    sender.send_priority(&to, b"warm-up priority".to_vec());
    let mut warm = Vec::new();
    for _ in 0..2 {
        warm.push(next_message(&mut receiver).await.1);
    }
    warm.sort();
    assert_eq!(warm, [b"warm-up".to_vec(), b"warm-up priority".to_vec()]);

    const BACKLOG: usize = 2000;
    for i in 0..BACKLOG {
        sender.send(&to, format!("bulk {i}").into_bytes());
    }
    eventually(WAIT, "the backlog is written", || {
        sender.queued_bytes() == 0
    })
    .await;
    sender.send_priority(&to, b"ping".to_vec());
    eventually(WAIT, "the ping is written", || sender.queued_bytes() == 0).await;

    let mut position = None;
    let mut bulk = 0;
    while position.is_none() || bulk < BACKLOG {
        let (_, payload) = next_message(&mut receiver).await;
        if payload == b"ping" {
            position = Some(bulk);
        } else {
            assert_eq!(payload, format!("bulk {bulk}").into_bytes(), "in order");
            bulk += 1;
        }
    }
    let position = position.unwrap();
    assert!(
        position < BACKLOG / 10,
        "the ping came after {position} of {BACKLOG} queued normal messages"
    );
}

#[tokio::test]
async fn priority_sends_that_cannot_take_the_priority_lane_travel_on_the_normal_one() {
    let mut receiver = server("receiver").await;
    let to = receiver.local_address();
    // Too long for the priority lane.
    let sender = server("sender").await;
    let long = vec![7u8; MAX_PRIORITY_FRAME_BYTES + 1];
    sender.send_priority(&to, long.clone());
    assert_eq!(next_message(&mut receiver).await.1, long);
    // From an endpoint that listens nowhere: the answer still comes back on its connection.
    let mut client = client("client").await;
    client.send_priority(&to, b"hello".to_vec());
    let (from, payload) = next_message(&mut receiver).await;
    assert_eq!(payload, b"hello");
    receiver.send_priority(&from, b"answer".to_vec());
    assert_eq!(next_message(&mut client).await.1, b"answer");
}

/// Says hello with `role`, `listen` and `lane`, and returns the server's answer.
async fn hello_on(
    server: &TcpTransport,
    role: &str,
    listen: Option<&str>,
    lane: Lane,
) -> Handshake {
    let stream = TcpStream::connect(server.local_address().as_str())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, frame_codec(MAX_HELLO_BYTES));
    let hello = Hello {
        role: role.into(),
        name: "raw".into(),
        listen: listen.map(str::to_owned),
        service: None,
        lane,
    };
    say_hello(&mut framed, hello).await
}

#[tokio::test]
async fn clients_and_nodes_that_listen_nowhere_may_not_open_a_priority_connection() {
    let mut server = server("server").await;
    for (role, listen, why) in [
        ("client", Some("127.0.0.1:9"), "a client may not"),
        ("replica", None, "must come from a node that listens"),
    ] {
        match hello_on(&server, role, listen, Lane::Priority).await {
            Handshake::Reject { reason } => assert!(reason.contains(why), "{reason}"),
            other => panic!("a priority hello from a {role} was answered {other:?}"),
        }
    }
    assert!(matches!(
        hello_on(&server, "replica", Some("127.0.0.1:9"), Lane::Priority).await,
        Handshake::Accept { .. }
    ));
    assert_serves(&mut server).await;
}

#[tokio::test]
async fn a_frame_over_the_priority_limit_closes_the_priority_connection() {
    let mut server = server("server").await;
    let stream = TcpStream::connect(server.local_address().as_str())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, frame_codec(MAX_PRIORITY_FRAME_BYTES * 4));
    let hello = encode_handshake(&Handshake::Hello(Hello {
        role: "replica".into(),
        name: "raw".into(),
        listen: Some("127.0.0.1:9".into()),
        service: None,
        lane: Lane::Priority,
    }))
    .unwrap();
    framed.send(Bytes::from(hello)).await.unwrap();
    assert!(matches!(framed.next().await, Some(Ok(_))), "accepted");
    framed
        .send(Bytes::from(vec![1u8; MAX_PRIORITY_FRAME_BYTES + 1]))
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match framed.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is closed");
    // Nothing of it reached the node, which serves on.
    assert!(
        !matches!(server.try_recv(), Some(TransportEvent::Message { .. })),
        "nothing of it reached the node"
    );
    assert_serves(&mut server).await;
}
