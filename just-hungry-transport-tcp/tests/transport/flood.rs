//! A thousand connections at once: bounded, and every file descriptor comes back. Its own test
//! binary (so its own process), because it counts the process's open file descriptors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry_core::transport::Transport;
use just_hungry_transport_tcp::{
    Handshake, Hello, MAX_HELLO_BYTES, TcpConfig, TcpTransport, frame_codec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

const LIMIT: usize = 64;
const CONNECTIONS: usize = 1000;

/// Polls `condition` until it holds, failing with `state()` after `limit`.
async fn wait_for(
    limit: Duration,
    mut condition: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "after {limit:?}: {}", state());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_at_once_are_bounded_and_leak_no_descriptor() {
    logs();
    let mut s = TcpTransport::bind(TcpConfig {
        max_inbound_connections: LIMIT,
        hello_timeout: Duration::from_secs(20),
        ..server_config("flooded")
    })
    .await
    .unwrap();
    let address = s.local_address();
    let before = open_fds();

    // Each flooding connection sends one byte and waits for the server to close it, or for the
    // end of the flood.
    let attempted = Arc::new(AtomicUsize::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let closed_by_server = Arc::new(AtomicUsize::new(0));
    let end_of_flood = CancellationToken::new();
    let mut flood = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (address, attempted, connected, closed) = (
            address.clone(),
            attempted.clone(),
            connected.clone(),
            closed_by_server.clone(),
        );
        let end = end_of_flood.clone();
        flood.spawn(async move {
            let result = TcpStream::connect(address.as_str()).await;
            if result.is_ok() {
                connected.fetch_add(1, Ordering::SeqCst);
            }
            attempted.fetch_add(1, Ordering::SeqCst);
            let Ok(mut stream) = result else {
                return false;
            };
            // One byte (not even a whole length prefix): under a SYN flood the kernel answers
            // with syncookies, and a connection whose last handshake segment was dropped only
            // reaches the server when the client sends something.
            if stream.write_all(&[0]).await.is_err() {
                closed.fetch_add(1, Ordering::SeqCst);
                return true;
            }
            let mut byte = [0u8; 1];
            tokio::select! {
                _ = stream.read(&mut byte) => { closed.fetch_add(1, Ordering::SeqCst); }
                () = end.cancelled() => {}
            }
            true
        });
    }
    // Every connection has reached the server (the kernel may hold some back for a while):
    // exactly `LIMIT` are held, every other one was closed (at once, or evicted by a newer
    // one while it was still in its hello).
    wait_for(
        Duration::from_secs(15),
        || {
            let n = connected.load(Ordering::SeqCst);
            attempted.load(Ordering::SeqCst) == CONNECTIONS
                && n > CONNECTIONS / 2
                && closed_by_server.load(Ordering::SeqCst) + LIMIT == n
                && s.inbound_connections() == LIMIT
        },
        || {
            format!(
                "{} attempted, {} connected, {} closed by the server, {} held (limit {LIMIT})",
                attempted.load(Ordering::SeqCst),
                connected.load(Ordering::SeqCst),
                closed_by_server.load(Ordering::SeqCst),
                s.inbound_connections()
            )
        },
    )
    .await;
    assert!(s.inbound_connections() <= LIMIT);

    end_of_flood.cancel();
    while flood.join_next().await.is_some() {}
    wait_for(
        WAIT,
        || s.inbound_connections() == 0 && open_fds() <= before,
        || {
            format!(
                "{} inbound connections, {} descriptors (before: {before})",
                s.inbound_connections(),
                open_fds()
            )
        },
    )
    .await;
    assert_serves(&mut s).await;
}

/// Every place held by connections that will never finish a hello (anyone who reaches the
/// port can open them: no certificate is needed to hold a TCP connection open), and the
/// server still admits the peers that do say hello: each new connection takes the place of the
/// oldest one still in its handshake, so the flood would have to open `LIMIT` connections
/// within one honest handshake to lock peers out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_get_in_while_silent_connections_hold_every_place() {
    logs();
    let mut s = TcpTransport::bind(TcpConfig {
        max_inbound_connections: LIMIT,
        hello_timeout: Duration::from_secs(60),
        ..server_config("flooded")
    })
    .await
    .unwrap();
    let address = s.local_address();
    let mut silent = Vec::new();
    for _ in 0..LIMIT {
        let mut stream = TcpStream::connect(address.as_str()).await.unwrap();
        stream.write_all(&[0]).await.unwrap();
        silent.push(stream);
    }
    wait_for(
        WAIT,
        || s.inbound_connections() == LIMIT,
        || format!("{} held", s.inbound_connections()),
    )
    .await;
    // Peers that say hello are served (a client, and a node that listens).
    assert_serves(&mut s).await;
    assert!(s.inbound_connections() <= LIMIT);
    // The oldest silent connections were the ones closed.
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, silent[0].read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the oldest silent connection is closed: {read:?}"
    );
}

/// Clients that take every place (a leaked client certificate can open as many connections as
/// it likes, each with a good hello) lock no node out: clients are admitted up to
/// `max_client_connections`, the clients beyond are refused at their hello with the reason,
/// and a node (a peer that listens, as a replica reconnecting) still gets in. Each client's
/// place comes back when it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_taking_every_place_lock_no_node_out() {
    logs();
    const CLIENTS: usize = LIMIT - 8;
    let mut s = flooded_server(CLIENTS).await;
    let mut admitted = Vec::new();
    for _ in 0..CLIENTS {
        admitted.push(raw_client(&s).await);
    }
    for _ in CLIENTS..LIMIT {
        let stream = TcpStream::connect(s.local_address().as_str())
            .await
            .unwrap();
        let mut framed = Framed::new(stream, frame_codec(MAX_HELLO_BYTES));
        let answer = say_hello(&mut framed, client_hello()).await;
        match answer {
            Handshake::Reject { reason } => assert!(
                reason.contains("too many client connections"),
                "the reason says why: {reason}"
            ),
            other => panic!("a client beyond the limit is refused, not {other:?}"),
        }
    }
    assert_eq!(s.client_connections(), CLIENTS);

    // A node that listens connects and is answered at its listener.
    let mut peer = TcpTransport::bind(server_config("reconnecting-replica"))
        .await
        .unwrap();
    peer.send(&s.local_address(), b"ping".to_vec());
    let (from, payload) = next_message(&mut s).await;
    assert_eq!((&from, payload), (&peer.local_address(), b"ping".to_vec()));
    s.send(&from, b"pong".to_vec());
    assert_eq!(next_message(&mut peer).await.1, b"pong");
    assert_eq!(s.client_connections(), CLIENTS);

    drop(admitted);
    wait_for(
        WAIT,
        || s.client_connections() == 0,
        || format!("{} client connections", s.client_connections()),
    )
    .await;
    assert_serves(&mut s).await;
}

/// One client identity holding every client place (a leaked certificate, opening connections
/// as fast as it likes) keeps no other client out: the next client of another identity takes
/// the place of the flood's oldest connection, which the server closes; the flood, trying
/// again, is refused with the reason, and the other client is heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_identity_holding_every_place_keeps_no_other_client_out() {
    logs();
    const CLIENTS: usize = LIMIT - 8;
    let mut s = flooded_server(CLIENTS).await;
    let connect = |name: &'static str| {
        let address = s.local_address();
        async move {
            let stream = TcpStream::connect(address.as_str()).await.unwrap();
            let mut framed = Framed::new(stream, frame_codec(MAX_HELLO_BYTES));
            let answer = say_hello(
                &mut framed,
                Hello {
                    name: name.into(),
                    ..client_hello()
                },
            )
            .await;
            (framed, answer)
        }
    };
    let mut leaked = Vec::new();
    for _ in 0..CLIENTS {
        let (framed, answer) = connect("leaked").await;
        assert!(matches!(answer, Handshake::Accept { .. }), "{answer:?}");
        leaked.push(framed);
    }
    assert_eq!(s.client_connections(), CLIENTS);

    let (mut honest, answer) = connect("honest").await;
    assert!(
        matches!(answer, Handshake::Accept { .. }),
        "another identity gets a place: {answer:?}"
    );
    let closed = tokio::time::timeout(WAIT, leaked[0].next()).await;
    assert!(
        matches!(closed, Ok(None | Some(Err(_)))),
        "the flood's oldest connection is closed: {closed:?}"
    );
    assert_eq!(s.client_connections(), CLIENTS);

    let (_, answer) = connect("leaked").await;
    match answer {
        Handshake::Reject { reason } => assert!(
            reason.contains("too many client connections") && reason.contains("yours"),
            "the reason says why: {reason}"
        ),
        other => panic!("the flood cannot take the place back, not {other:?}"),
    }
    honest.send(Bytes::from_static(b"an order")).await.unwrap();
    assert_eq!(next_message(&mut s).await.1, b"an order");

    drop((leaked, honest));
    wait_for(
        WAIT,
        || s.client_connections() == 0,
        || format!("{} client connections", s.client_connections()),
    )
    .await;
    assert_serves(&mut s).await;
}

/// A server of `LIMIT` inbound places, `clients` of them for clients.
async fn flooded_server(clients: usize) -> TcpTransport {
    TcpTransport::bind(TcpConfig {
        max_inbound_connections: LIMIT,
        max_client_connections: clients,
        ..server_config("flooded")
    })
    .await
    .unwrap()
}

/// A hello of the client role, as [`hello`] sends, as a value.
fn client_hello() -> Hello {
    Hello {
        role: "client".into(),
        name: "raw".into(),
        listen: None,
        service: None,
        lane: Default::default(),
    }
}
