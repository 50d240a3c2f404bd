//! The attacks of docs/SECURITY.md against a running cluster over real mutual-TLS sockets on
//! 127.0.0.1: each forged message is sent by a peer with no certificate, one of another CA,
//! one whose hello names another node than its certificate, and an authenticated peer of a
//! role that may not send it. Every time: the message is refused (the first three never reach
//! a node; the last is counted in the target's `NodeReport::refused`), every member of the
//! view still holds the same state (equal digests, the same view), every acknowledged order
//! is still there and the cluster takes new orders. Certificates are made at test time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use just_hungry::OrderClient;
use just_hungry::core::StateMachine;
use just_hungry::core::codec;
use just_hungry::core::ids::{
    Address, ClientId, Identity, Member, NodeRole, OpNumber, ReplicaId, RequestId, Time, View,
};
use just_hungry::core::protocol::client::ClientConfig;
use just_hungry::core::protocol::client_table::ClientTableLimits;
use just_hungry::core::protocol::messages::{
    ClientRequest, Entry, Message, Operation, Outcome, Ping, Recovery, ReplicaRole, ServiceError,
    TransferChunk,
};
use just_hungry::core::protocol::replicated_state::ReplicatedState;
use just_hungry::core::protocol::{FRONTEND_NAME, Timing, replica_registry_name};
use just_hungry::core::transport::{Transport, TransportEvent};
use just_hungry::local::{LOCAL_CERT_VALIDITY, LocalCluster, TcpNetwork, WaitTimeout};
use just_hungry::orders::{OrderBook, OrderCommand, OrderId, OrderValidator};
use just_hungry::tcp::tls::{self, DevPki, TlsConfig};
use just_hungry::tcp::{
    Handshake, Hello, MAX_HELLO_BYTES, TcpConfig, TcpTransport, decode_handshake, encode_handshake,
    frame_codec,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A bound on every wait: only reached when a test fails.
const WAIT: Duration = Duration::from_secs(20);

/// Slow failure detection, so that a loaded machine makes no view change of its own while a
/// test checks that an attack made none.
fn timing() -> Timing {
    Timing {
        dead_after: Duration::from_secs(5),
        backup_timeout: Duration::from_secs(5),
        ..Timing::default()
    }
}

const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];

/// The client certificate the attacker holds.
fn mallory() -> Identity {
    Identity::new(NodeRole::Client, "mallory")
}

/// The replica certificate the attacker holds: never a member of a view.
fn mallory_replica() -> Identity {
    Identity::new(NodeRole::Replica, "mallory-replica")
}

/// What the attacker shows.
#[derive(Clone, Debug)]
enum Credentials {
    /// No TLS at all; the hello claims `claims`.
    NoCertificate { claims: Identity },
    /// A certificate naming `claims`, of a CA that is not the cluster's.
    OtherCa { claims: Identity },
    /// A certificate of the cluster naming `cert`; the hello claims `claims`.
    Impostor { cert: Identity, claims: Identity },
    /// A certificate of the cluster naming `cert`, of a role that may not send the forgery.
    Certified { cert: Identity },
}

impl Credentials {
    /// The four kinds: the three that never get past the handshake claim to be `claims`, the
    /// sender the forgery needs; the authenticated one is `certified`.
    fn all(claims: &Identity, certified: &Identity) -> Vec<Credentials> {
        vec![
            Credentials::NoCertificate {
                claims: claims.clone(),
            },
            Credentials::OtherCa {
                claims: claims.clone(),
            },
            Credentials::Impostor {
                cert: certified.clone(),
                claims: claims.clone(),
            },
            Credentials::Certified {
                cert: certified.clone(),
            },
        ]
    }
}

/// Which node a forgery is aimed at.
#[derive(Clone, Debug)]
enum Target {
    Registry,
    Frontend,
    Replica(String),
}

/// A running TLS cluster of three replicas, an honest client and the orders it has had
/// acknowledged.
struct Fixture {
    cluster: LocalCluster<OrderBook, TcpNetwork>,
    other_ca: DevPki,
    client: OrderClient,
    acked: Vec<OrderId>,
}

impl Fixture {
    async fn start() -> Fixture {
        logs();
        let network = TcpNetwork::tls().expect("a development CA");
        let mut cluster = LocalCluster::<OrderBook, _>::on(network, timing())
            .await
            .expect("registry");
        let validator = Arc::new(OrderValidator::offline());
        for name in REPLICAS {
            cluster
                .start_replica(
                    name,
                    OrderBook::with_predefined_history(),
                    validator.clone(),
                )
                .await
                .expect("replica");
        }
        cluster.start_frontend().await.expect("front-end");
        let client = cluster
            .order_client(ClientConfig::default())
            .await
            .expect("client");
        let mut fixture = Fixture {
            cluster,
            other_ca: DevPki::generate("elsewhere").expect("another CA"),
            client,
            acked: Vec::new(),
        };
        fixture
            .wait_for_full_view()
            .await
            .expect("the cluster forms");
        for _ in 0..3 {
            fixture.place_order().await;
        }
        fixture
    }

    /// Waits until the active view holds all three replicas, converged, and returns it.
    async fn wait_for_full_view(&self) -> Result<View, WaitTimeout> {
        self.cluster
            .wait_for_active_view(REPLICAS.len(), WAIT)
            .await
    }

    async fn place_order(&mut self) {
        let n = self.acked.len();
        let id = self
            .client
            .place_order("SW1A 1AA", vec![format!("pizza {n}")])
            .await
            .expect("an honest order is acknowledged");
        self.acked.push(id);
    }

    /// What the attacks must not change: the view and every member's state.
    async fn state(&self) -> (View, BTreeSet<Option<u64>>) {
        let view = self.wait_for_full_view().await.expect("a full view");
        let reports = self.cluster.replica_reports().await;
        let digests = view
            .members()
            .map(|m| reports.get(&m.id.name).and_then(|r| r.digest))
            .collect();
        (view, digests)
    }

    async fn refused_at(&self, target: &Target) -> u64 {
        let report = match target {
            Target::Registry => self.cluster.registry_report().await,
            Target::Frontend => self.cluster.frontend_report().await,
            Target::Replica(name) => self.cluster.replica_reports().await.remove(name),
        };
        report.expect("the target runs").refused
    }

    fn address_of(&self, target: &Target) -> Address {
        match target {
            Target::Registry => self.cluster.registry_address().clone(),
            Target::Frontend => self.cluster.frontend_address().expect("front-end"),
            Target::Replica(name) => self.cluster.replica_address(name).expect("replica"),
        }
    }

    async fn attacker(&self, credentials: &Credentials) -> TcpTransport {
        let pki = self.cluster.network().pki().expect("a TLS network");
        let certified =
            |pki: &DevPki, identity: &Identity| pki.config_for(identity, LOCAL_CERT_VALIDITY);
        let mut config = TcpConfig::client("unused").for_service::<OrderBook>();
        match credentials {
            Credentials::NoCertificate { claims } => config.identity = claims.clone(),
            Credentials::OtherCa { claims } => {
                config = config.with_tls(certified(&self.other_ca, claims).unwrap())
            }
            Credentials::Impostor { .. } => {
                unreachable!("the transport refuses to say hello as another than its certificate")
            }
            Credentials::Certified { cert } => {
                config = config.with_tls(certified(pki, cert).unwrap())
            }
        }
        TcpTransport::connect_only(config)
            .await
            .expect("an attacker endpoint")
    }

    /// Sends `forgeries` to `target` with each of `credentials` and checks that each is
    /// refused and changes nothing, and that the cluster serves on.
    async fn attack(
        &mut self,
        target: Target,
        credentials: Vec<Credentials>,
        forgeries: impl Fn(&View) -> Vec<Message<OrderBook>>,
    ) {
        for credentials in credentials {
            let (view, digests) = self.state().await;
            let to = self.address_of(&target);
            let refused_before = self.refused_at(&target).await;
            let messages = forgeries(&view);
            let sent = messages.len() as u64;
            let frames = messages
                .iter()
                .map(|m| codec::encode(m).expect("a forgery encodes"));
            match &credentials {
                Credentials::Impostor { cert, claims } => {
                    // Our transport will not say hello as another than its certificate: a
                    // hand-made TLS connection does, and is refused at the hello.
                    let pki = self.cluster.network().pki().expect("a TLS network");
                    let tls = pki.config_for(cert, LOCAL_CERT_VALIDITY).unwrap();
                    impostor(&tls, claims, &to, frames).await;
                    assert_eq!(
                        self.refused_at(&target).await,
                        refused_before,
                        "a message from {credentials:?} reached {target:?}"
                    );
                }
                Credentials::Certified { .. } => {
                    let attacker = self.attacker(&credentials).await;
                    for frame in frames {
                        attacker.send(&to, frame);
                    }
                    // Heard, and refused: counted by the target.
                    let start = tokio::time::Instant::now();
                    while self.refused_at(&target).await < refused_before + sent {
                        assert!(
                            start.elapsed() < WAIT,
                            "{target:?} did not refuse {sent} forgeries from {credentials:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                _ => {
                    // Never past the TLS handshake: the attacker's sends are reported
                    // unreachable and the target has heard nothing.
                    let mut attacker = self.attacker(&credentials).await;
                    for frame in frames {
                        attacker.send(&to, frame);
                    }
                    expect_unreachable(&mut attacker, &to, &credentials).await;
                    assert_eq!(
                        self.refused_at(&target).await,
                        refused_before,
                        "a message from {credentials:?} reached {target:?}"
                    );
                }
            }
            let (view_after, digests_after) = self.state().await;
            assert_eq!(
                view_after, view,
                "the view changed after {credentials:?} attacked"
            );
            assert_eq!(
                digests_after, digests,
                "the state changed after {credentials:?} attacked"
            );
            assert_eq!(digests.len(), 1, "every member holds the same state");
            self.assert_orders_intact().await;
            self.place_order().await;
        }
    }

    async fn assert_orders_intact(&self) {
        let histories = self.client.all_histories().await.expect("histories");
        let held: BTreeSet<OrderId> = histories.values().flatten().map(|o| o.id).collect();
        for id in &self.acked {
            assert!(held.contains(id), "acknowledged order {id} lost");
        }
        assert!(
            histories
                .values()
                .flatten()
                .all(|o| !o.items.iter().any(|i| i == "forged")),
            "a forged order is in the book"
        );
    }

    async fn finish(self) {
        self.assert_orders_intact().await;
        self.cluster.shutdown().await;
    }
}

async fn expect_unreachable(attacker: &mut TcpTransport, to: &Address, who: &Credentials) {
    loop {
        let event = tokio::time::timeout(WAIT, attacker.recv())
            .await
            .unwrap_or_else(|_| panic!("{who:?}: no answer from {to}"))
            .expect("the attacker's transport is open");
        match event {
            TransportEvent::Unreachable { to: got } if &got == to => return,
            TransportEvent::Message { payload, .. } => {
                panic!("{who:?} got an answer from {to}: {} bytes", payload.len())
            }
            _ => {}
        }
    }
}

/// Opens a TLS connection to `to` with `tls`, says hello as `claims`, expects the reject
/// naming both identities, then sends `frames` anyway.
async fn impostor(
    tls: &TlsConfig,
    claims: &Identity,
    to: &Address,
    frames: impl Iterator<Item = Vec<u8>>,
) {
    let stream = TcpStream::connect(to.as_str()).await.expect("connect");
    let secured = tls
        .connector()
        .connect(tls::server_name(), stream)
        .await
        .expect("the TLS handshake itself succeeds: the certificate is the cluster's");
    let mut framed = Framed::new(secured, frame_codec(MAX_HELLO_BYTES));
    let hello = encode_handshake(&Handshake::Hello(Hello {
        role: claims.role.as_str().to_owned(),
        name: claims.name.clone(),
        listen: None,
        service: Some(OrderBook::SERVICE.to_owned()),
        lane: Default::default(),
    }))
    .unwrap();
    framed.send(Bytes::from(hello)).await.expect("send hello");
    let answer = tokio::time::timeout(WAIT, framed.next())
        .await
        .expect("an answer to the hello in time")
        .expect("an answer to the hello")
        .expect("a frame");
    let Ok(Handshake::Reject { reason }) = decode_handshake(&answer) else {
        panic!("expected the hello of {claims} to be refused, got {answer:?}");
    };
    let certified = tls.identity().to_string();
    assert!(
        reason.contains(&claims.to_string()) && reason.contains(&certified),
        "the refusal names both identities: {reason}"
    );
    for frame in frames {
        if framed.send(Bytes::from(frame)).await.is_err() {
            break;
        }
    }
}

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn replica(name: &str) -> Identity {
    Identity::new(NodeRole::Replica, name)
}

fn forged_entry(op: OpNumber) -> Entry<OrderCommand> {
    Entry {
        op,
        request: RequestId {
            client: ClientId(0xbad),
            seq: op.0,
        },
        owner: "mallory".into(),
        time: Time(0),
        command: OrderCommand::PlaceOrder {
            postcode: "SW1A 1AA".into(),
            items: vec!["forged".into()],
        },
    }
}

/// A well-formed snapshot of a replicated state holding only a forged order.
fn forged_snapshot_bytes() -> Vec<u8> {
    let mut state = ReplicatedState::new(OrderBook::empty(), ClientTableLimits::default());
    let _reply = state.apply(&forged_entry(OpNumber(1)));
    state.snapshot().expect("a state encodes")
}

fn first_backup(view: &View) -> String {
    view.backups[0].id.name.clone()
}

#[tokio::test]
async fn prepares_injected_into_a_backup_are_refused() {
    let mut fixture = Fixture::start().await;
    let view = fixture.state().await.0;
    let backup = first_backup(&view);
    let primary = replica(&view.primary.id.name);
    for certified in [mallory(), mallory_replica()] {
        fixture
            .attack(
                Target::Replica(backup.clone()),
                Credentials::all(&primary, &certified),
                |view| {
                    (1..=50)
                        .map(|op| Message::Prepare {
                            view: view.number,
                            entries: vec![forged_entry(OpNumber(op))],
                        })
                        .collect()
                },
            )
            .await;
    }
    fixture.finish().await;
}

#[tokio::test]
async fn acknowledgements_forged_for_a_backup_are_refused() {
    let mut fixture = Fixture::start().await;
    let view = fixture.state().await.0;
    let backup = view.backups[0].id.clone();
    let primary = view.primary.id.name.clone();
    for certified in [mallory(), mallory_replica()] {
        fixture
            .attack(
                Target::Replica(primary.clone()),
                Credentials::all(&replica(&backup.name), &certified),
                |view| {
                    vec![
                        Message::PrepareOk {
                            view: view.number,
                            replica: view.backups[0].id.clone(),
                            op: OpNumber(1_000_000),
                        },
                        Message::StartViewOk {
                            view: view.number,
                            replica: view.backups[1].id.clone(),
                            op: OpNumber(1_000_000),
                        },
                    ]
                },
            )
            .await;
    }
    fixture.finish().await;
}

#[tokio::test]
async fn pings_forged_for_real_replicas_or_made_up_ones_are_refused() {
    let mut fixture = Fixture::start().await;
    for certified in [mallory(), mallory_replica()] {
        fixture
            .attack(
                Target::Frontend,
                Credentials::all(&replica("replica-2"), &certified),
                |view| {
                    let retire = view.members().map(|m| {
                        Message::Ping(Ping {
                            replica: ReplicaId::new(m.id.name.clone(), m.id.incarnation ^ 1),
                            address: m.address.clone(),
                            view: Some(view.clone()),
                            role: ReplicaRole::Idle,
                            applied: OpNumber(0),
                            number: 0,
                            // Claiming a disk, to stand in for the member it retires.
                            recovered: Some(Recovery {
                                lineage: vec![m.id.incarnation],
                                synced: true,
                            }),
                        })
                    });
                    let made_up = (0..1024).map(|i| {
                        Message::Ping(Ping {
                            replica: ReplicaId::new(format!("ghost-{i}"), 1),
                            address: Address::new(format!("127.0.0.1:{}", 20_000 + i)),
                            view: None,
                            role: ReplicaRole::Idle,
                            applied: OpNumber(u64::MAX / 2),
                            number: u64::MAX,
                            recovered: None,
                        })
                    });
                    retire.chain(made_up).collect()
                },
            )
            .await;
    }
    let status = fixture.client.cluster_status().await.expect("status");
    assert!(
        status
            .replicas
            .iter()
            .all(|r| !r.id.name.starts_with("ghost-")),
        "a made-up replica is in the front-end's table"
    );
    fixture.finish().await;
}

#[tokio::test]
async fn views_announced_by_anyone_but_the_front_end_are_refused() {
    let mut fixture = Fixture::start().await;
    let view = fixture.state().await.0;
    let backup = first_backup(&view);
    for certified in [mallory(), mallory_replica()] {
        fixture
            .attack(
                Target::Replica(backup.clone()),
                Credentials::all(&Identity::new(NodeRole::Frontend, "frontend"), &certified),
                |view| {
                    // The announcement of a newer view led by the attacker's replica, and a
                    // newer view of the real members whose primary "sends" a forged snapshot.
                    // (A `StartView` that the attacker's replica sends as the primary of a
                    // view of its own making is kept until the front-end announces that very
                    // view, which it never does: the simulator's forgery 3.)
                    let announced = View {
                        number: view.number.next(),
                        primary: Member {
                            id: ReplicaId::new("mallory-replica", 1),
                            address: Address::new("127.0.0.1:1"),
                        },
                        backups: view.members().cloned().collect(),
                    };
                    let forged = View {
                        number: view.number.next(),
                        ..view.clone()
                    };
                    vec![
                        Message::ViewInfo {
                            view: Some(announced),
                            answers: None,
                        },
                        Message::StartView {
                            view: forged,
                            op: OpNumber(1),
                            chunk: TransferChunk::Snapshot {
                                index: 0,
                                last: true,
                                bytes: forged_snapshot_bytes(),
                            },
                        },
                    ]
                },
            )
            .await;
    }
    fixture.finish().await;
}

#[tokio::test]
async fn the_front_ends_name_and_giant_addresses_cannot_be_registered() {
    let mut fixture = Fixture::start().await;
    for certified in [mallory(), mallory_replica()] {
        fixture
            .attack(
                Target::Registry,
                Credentials::all(&Identity::new(NodeRole::Frontend, "frontend"), &certified),
                |_| {
                    vec![
                        Message::Register {
                            name: FRONTEND_NAME.into(),
                            address: Address::new("127.0.0.1:1"),
                        },
                        Message::Register {
                            name: replica_registry_name("replica-1"),
                            address: Address::new("127.0.0.1:1"),
                        },
                        Message::Register {
                            name: FRONTEND_NAME.into(),
                            address: Address::new("x".repeat(1 << 20)),
                        },
                    ]
                },
            )
            .await;
    }
    // A client that looks the front-end up now still finds the real one.
    let late = fixture
        .cluster
        .order_client(ClientConfig::default())
        .await
        .expect("client");
    late.place_order("EH1 2NG", vec!["haggis".into()])
        .await
        .expect("a new client finds the real front-end");
    fixture.finish().await;
}

#[tokio::test]
async fn snapshot_chunks_of_a_forged_stream_are_refused() {
    let mut fixture = Fixture::start().await;
    let view = fixture.state().await.0;
    let backup = view.backups[0].id.clone();
    for certified in [mallory(), mallory_replica()] {
        let learner = backup.clone();
        fixture
            .attack(
                Target::Replica(backup.name.clone()),
                Credentials::all(&replica(&view.primary.id.name), &certified),
                move |view| {
                    (0..64)
                        .map(|index| Message::Learn {
                            view: view.number,
                            learner: learner.clone(),
                            primary: view.primary.id.clone(),
                            op: OpNumber(1_000_000),
                            chunk: TransferChunk::Snapshot {
                                index,
                                last: false,
                                bytes: vec![0xab; 64 * 1024],
                            },
                        })
                        .collect()
                },
            )
            .await;
    }
    fixture.finish().await;
}

#[tokio::test]
async fn a_client_cannot_write_under_another_clients_id() {
    let mut fixture = Fixture::start().await;
    let victim = fixture.client.client().id();
    let (_, digests) = fixture.state().await;
    let mut mallory = fixture
        .attacker(&Credentials::Certified { cert: mallory() })
        .await;
    let frontend = fixture.address_of(&Target::Frontend);
    let request = ClientRequest::<OrderBook> {
        id: RequestId {
            client: victim,
            seq: 1_000_000,
        },
        operation: Operation::Write(OrderCommand::PlaceOrder {
            postcode: "SW1A 1AA".into(),
            items: vec!["forged".into()],
        }),
    };
    mallory.send(
        &frontend,
        codec::encode(&Message::Request(request)).unwrap(),
    );
    let answer = loop {
        let event = tokio::time::timeout(WAIT, mallory.recv())
            .await
            .expect("an answer in time")
            .expect("open");
        if let TransportEvent::Message { payload, .. } = event {
            break codec::decode::<Message<OrderBook>>(&payload).expect("an answer decodes");
        }
    };
    match answer {
        Message::Response(response) => assert!(
            matches!(
                response.outcome,
                Outcome::Failed(ServiceError::Forbidden { .. })
            ),
            "{:?}",
            response.outcome
        ),
        other => panic!("expected a response, got {}", other.kind()),
    }
    assert_eq!(fixture.state().await.1, digests, "the state changed");
    // The victim writes on with its id.
    fixture.place_order().await;
    fixture.finish().await;
}
