//! The transport over mutual TLS: only a peer with a certificate of the cluster's CA is heard,
//! every message carries the identity in its certificate, and a hello naming another identity
//! is refused (docs/SECURITY.md). Certificates are made at test time; all on 127.0.0.1.

use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use futures_util::SinkExt;
use just_hungry_core::ids::{Identity, NodeRole};
use just_hungry_core::transport::{Transport, TransportEvent};
use just_hungry_transport_tcp::tls::{self, DevPki, TlsConfig};
use just_hungry_transport_tcp::{Handshake, Hello, TcpConfig, TcpTransport};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const VALID: Duration = Duration::from_secs(600);

fn tls_for(pki: &DevPki, role: NodeRole, name: &str) -> TlsConfig {
    pki.config_for(&Identity::new(role, name), VALID).unwrap()
}

async fn tls_server(pki: &DevPki) -> TcpTransport {
    logs();
    let tls = tls_for(pki, NodeRole::Frontend, "frontend");
    TcpTransport::bind(server_config("frontend").with_tls(tls))
        .await
        .unwrap()
}

async fn tls_client(tls: TlsConfig) -> TcpTransport {
    TcpTransport::connect_only(TcpConfig::client("unused").with_tls(tls))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_message_carries_the_identity_of_its_senders_certificate() {
    let pki = DevPki::generate("cluster").unwrap();
    let mut server = tls_server(&pki).await;
    let client = tls_client(tls_for(&pki, NodeRole::Client, "alice")).await;
    client.send(&server.local_address(), b"hello".to_vec());
    match next_event(&mut server).await {
        TransportEvent::Message {
            sender, payload, ..
        } => {
            assert_eq!(sender, Identity::new(NodeRole::Client, "alice"));
            assert_eq!(payload, b"hello");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn peers_without_a_certificate_of_the_cluster_are_not_heard() {
    let pki = DevPki::generate("cluster").unwrap();
    let other = DevPki::generate("elsewhere").unwrap();
    let mut server = tls_server(&pki).await;
    let to = server.local_address();
    // No TLS at all, and a certificate of another CA naming a real node.
    let mut plaintext = client("replica-1").await;
    plaintext.send(&to, b"forged".to_vec());
    expect_unreachable(&mut plaintext, &to).await;
    let mut foreign = tls_client(tls_for(&other, NodeRole::Replica, "replica-1")).await;
    foreign.send(&to, b"forged".to_vec());
    expect_unreachable(&mut foreign, &to).await;
    assert!(server.try_recv().is_none(), "nothing reached the node");
    eventually(WAIT, "both connections are closed", || {
        server.inbound_connections() == 0
    })
    .await;
    // The server serves its cluster on.
    let member = tls_client(tls_for(&pki, NodeRole::Replica, "replica-1")).await;
    member.send(&to, b"ping".to_vec());
    assert!(matches!(
        next_event(&mut server).await,
        TransportEvent::Message { .. }
    ));
}

#[tokio::test]
async fn a_hello_naming_another_node_than_the_certificate_is_refused() {
    let pki = DevPki::generate("cluster").unwrap();
    let mut server = tls_server(&pki).await;
    // mallory holds a client certificate of the cluster and says hello as replica-1.
    let mallory = tls_for(&pki, NodeRole::Client, "mallory");
    let stream = TcpStream::connect(server.local_address().as_str())
        .await
        .unwrap();
    let secured = mallory
        .connector()
        .connect(tls::server_name(), stream)
        .await
        .expect("the TLS handshake itself succeeds");
    let mut framed = Framed::new(secured, just_hungry_transport_tcp::frame_codec(4096));
    let hello = Hello {
        role: "replica".into(),
        name: "replica-1".into(),
        listen: None,
        service: None,
        lane: Default::default(),
    };
    let answer = say_hello(&mut framed, hello).await;
    let Handshake::Reject { reason } = answer else {
        panic!("expected a reject, got {answer:?}");
    };
    assert!(
        reason.contains("replica/replica-1") && reason.contains("client/mallory"),
        "{reason}"
    );
    framed.send(Bytes::from_static(b"forged")).await.ok();
    assert!(server.try_recv().is_none());
    assert_serves_tls(&pki, &mut server).await;
}

async fn assert_serves_tls(pki: &DevPki, server: &mut TcpTransport) {
    let honest = tls_client(tls_for(pki, NodeRole::Client, "bob")).await;
    honest.send(&server.local_address(), b"still there?".to_vec());
    match next_event(server).await {
        TransportEvent::Message { sender, .. } => assert_eq!(sender.name, "bob"),
        other => panic!("{other:?}"),
    }
}
