//! Roles confine messages (docs/SECURITY.md): each role's node, driven directly, refuses what
//! an authenticated sender may not send, counts it, and changes nothing; and what a peer can
//! make a replica hold while receiving a snapshot is bounded.
//!
//! The same rule runs under the simulator's adversary in `sim_props.rs`
//! (`an_adversary_breaks_no_invariant`) and over real TLS sockets in the root package's
//! `tests/security.rs`.

use just_hungry::orders::{OrderBook, OrderCommand};
use just_hungry_core::ids::{
    Address, ClientId, Identity, NodeRole, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
};
use just_hungry_core::protocol::frontend::{Frontend, FrontendConfig};
use just_hungry_core::protocol::messages::{Entry, Message, Ping, ReplicaRole, TransferChunk};
use just_hungry_core::protocol::registry::{MAX_REGISTRY_ENTRIES, Registry};
use just_hungry_core::protocol::replica::{DEFAULT_MAX_SNAPSHOT_BYTES, Replica};
use just_hungry_core::protocol::{FRONTEND_NAME, Node, Output, Timing};

use crate::nodes::{member, replica_with as replica};

type M = Message<OrderBook>;

fn frontend() -> Identity {
    Identity::new(NodeRole::Frontend, "frontend")
}

fn replica_identity(name: &str) -> Identity {
    Identity::new(NodeRole::Replica, name)
}

fn drain(node: &mut impl Node<OrderBook>) -> Vec<Output<OrderBook>> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

/// r2 is a backup of view 2 (primary r1), as the front-end announced and r1 started it.
fn backup_of_view_2() -> (Replica<OrderBook>, View) {
    let mut r2 = replica("r2", DEFAULT_MAX_SNAPSHOT_BYTES);
    let view = View {
        number: ViewNumber(2),
        primary: member("r1"),
        backups: vec![member("r2")],
    };
    let now = Time(10);
    r2.handle_message(
        now,
        Address::new("frontend"),
        &frontend(),
        M::ViewInfo {
            view: Some(view.clone()),
            answers: None,
        },
    );
    assert_eq!(r2.role(), ReplicaRole::AwaitingState);
    let start = M::StartView {
        view: view.clone(),
        op: OpNumber(0),
        chunk: TransferChunk::Suffix {
            since: ViewNumber(0),
            entries: Vec::new(),
        },
    };
    r2.handle_message(now, Address::new("r1"), &replica_identity("r1"), start);
    assert_eq!(r2.role(), ReplicaRole::Backup);
    drain(&mut r2);
    (r2, view)
}

fn forged_entry(op: u64) -> Entry<OrderCommand> {
    Entry {
        op: OpNumber(op),
        request: RequestId {
            client: ClientId(66),
            seq: 1,
        },
        time: Time(11),
        owner: "mallory".into(),
        command: OrderCommand::PlaceOrder {
            postcode: "SW1A 1AA".into(),
            items: vec!["forged".into()],
        },
    }
}

#[test]
fn a_backup_takes_ops_only_from_its_views_primary() {
    let (mut r2, _) = backup_of_view_2();
    let digest = r2.state().digest();
    let prepare = || M::Prepare {
        view: ViewNumber(2),
        entries: vec![forged_entry(1)],
    };
    // Another replica of the cluster, a client, and the front-end itself: all refused.
    for sender in [
        replica_identity("r3"),
        Identity::new(NodeRole::Client, "mallory"),
        frontend(),
    ] {
        r2.handle_message(Time(11), Address::new("mallory"), &sender, prepare());
    }
    assert_eq!(r2.refused(), 3);
    assert_eq!(r2.state().digest(), digest, "nothing applied");
    assert_eq!(r2.applied(), OpNumber(0));
    assert!(drain(&mut r2).is_empty(), "no PrepareOk for a forged op");
    // The primary's own ops are applied.
    r2.handle_message(
        Time(12),
        Address::new("r1"),
        &replica_identity("r1"),
        prepare(),
    );
    assert_eq!(r2.applied(), OpNumber(1));
}

#[test]
fn a_view_is_believed_only_from_the_front_end() {
    let (mut r2, view) = backup_of_view_2();
    let digest = r2.state().digest();
    // A replica holding a certificate announces a view of its own making, with itself as
    // primary: the backup keeps serving view 2 and overwrites nothing.
    let forged = View {
        number: ViewNumber(9),
        primary: member("r3"),
        backups: vec![member("r2")],
    };
    let start = M::StartView {
        view: forged.clone(),
        op: OpNumber(0),
        chunk: TransferChunk::Suffix {
            since: ViewNumber(2),
            entries: Vec::new(),
        },
    };
    r2.handle_message(Time(20), Address::new("r3"), &replica_identity("r3"), start);
    assert_eq!(r2.view(), Some(&view));
    assert_eq!(r2.role(), ReplicaRole::Backup);
    assert_eq!(r2.state().digest(), digest);
    // A ViewInfo is the front-end's to send.
    r2.handle_message(
        Time(21),
        Address::new("r3"),
        &replica_identity("r3"),
        M::ViewInfo {
            view: Some(forged),
            answers: None,
        },
    );
    assert_eq!(r2.view(), Some(&view));
    assert_eq!(r2.refused(), 1);
}

#[test]
fn the_front_end_believes_pings_and_reports_only_of_their_senders() {
    let config = FrontendConfig::new(
        "frontend",
        Address::new("frontend"),
        Address::new("registry"),
    );
    let mut fe = Frontend::<OrderBook>::new(config, None, Time(0));
    let ping = |name: &str, incarnation: u64| {
        M::Ping(Ping {
            replica: ReplicaId::new(name, incarnation),
            address: Address::new(name),
            view: None,
            role: ReplicaRole::Idle,
            applied: OpNumber(0),
            number: 0,
            recovered: None,
        })
    };
    fe.handle_message(
        Time(1),
        Address::new("r1"),
        &replica_identity("r1"),
        ping("r1", 1),
    );
    fe.handle_timeout(Time(300));
    fe.handle_message(
        Time(300),
        Address::new("r1"),
        &replica_identity("r1"),
        ping("r1", 1),
    );
    let view = fe.current_view().cloned().expect("r1 bootstrapped view 1");
    assert_eq!(view.primary.id, ReplicaId::new("r1", 1));
    // mallory, with a replica certificate of its own, claims to be r1 restarted (which would
    // retire r1 and force an election), and invents 1,024 replicas.
    fe.handle_message(
        Time(301),
        Address::new("m"),
        &replica_identity("mallory"),
        ping("r1", 2),
    );
    for i in 0..1024 {
        let name = format!("ghost-{i}");
        fe.handle_message(
            Time(301),
            Address::new("m"),
            &replica_identity("mallory"),
            ping(&name, 1),
        );
    }
    assert_eq!(fe.refused(), 1025);
    assert_eq!(fe.current_view(), Some(&view), "no view change");
    assert_eq!(
        fe.cluster_status(Time(302)).replicas.len(),
        1,
        "no ghost is tracked"
    );
    // A report about the current view from a replica that is not its primary.
    fe.handle_message(
        Time(303),
        Address::new("m"),
        &replica_identity("mallory"),
        M::SuspectBackup {
            view: view.number,
            backup: ReplicaId::new("r1", 1),
        },
    );
    assert_eq!(fe.refused(), 1026);
    assert_eq!(fe.current_view(), Some(&view));
}

#[test]
fn a_registration_is_confined_to_the_senders_own_name() {
    let mut registry = Registry::new("registry", Timing::default().autoclean);
    let register = |name: &str, address: &str| M::Register {
        name: name.into(),
        address: Address::new(address),
    };
    registry.handle_message(
        Time(1),
        Address::new("fe"),
        &frontend(),
        register(FRONTEND_NAME, "127.0.0.1:7000"),
    );
    // A replica (or a client) taking over the front-end's well-known name; a multi-megabyte
    // address.
    registry.handle_message(
        Time(2),
        Address::new("m"),
        &replica_identity("mallory"),
        register(FRONTEND_NAME, "127.0.0.1:6666"),
    );
    registry.handle_message(
        Time(2),
        Address::new("m"),
        &Identity::new(NodeRole::Client, "mallory"),
        register(FRONTEND_NAME, "127.0.0.1:6666"),
    );
    let huge = "x".repeat(4 * 1024 * 1024);
    registry.handle_message(
        Time(2),
        Address::new("m"),
        &replica_identity("mallory"),
        register("just-hungry/replica/mallory", &huge),
    );
    assert_eq!(registry.refused(), 3);
    assert_eq!(
        registry.lookup(Time(3), FRONTEND_NAME),
        Some(&Address::new("127.0.0.1:7000"))
    );
    assert_eq!(registry.entries().count(), 1);
}

#[test]
fn a_snapshot_being_received_is_bounded_by_the_budget_not_by_what_chunks_announce() {
    const BUDGET: usize = 4096;
    let mut newcomer = replica("r9", BUDGET);
    let view = View {
        number: ViewNumber(3),
        primary: member("r1"),
        backups: Vec::new(),
    };
    newcomer.handle_message(
        Time(1),
        Address::new("frontend"),
        &frontend(),
        M::ViewInfo {
            view: Some(view.clone()),
            answers: None,
        },
    );
    // The view's primary sends 1 KiB after 1 KiB of a stream that never ends (its first
    // chunk does not even decode, so the rest waits for it).
    let mut peak = 0;
    for index in 0..16 {
        let learn = M::Learn {
            view: view.number,
            learner: ReplicaId::new("r9", 1),
            primary: ReplicaId::new("r1", 1),
            op: OpNumber(5),
            chunk: TransferChunk::Snapshot {
                index,
                last: false,
                bytes: vec![7; 1024],
            },
        };
        newcomer.handle_message(Time(2), Address::new("r1"), &replica_identity("r1"), learn);
        peak = peak.max(newcomer.incoming_snapshot_bytes());
    }
    assert!(peak <= BUDGET, "held {peak} bytes");
    assert!(peak > 0);
    // Partial chunks of a sender that goes away are freed.
    newcomer.handle_message(
        Time(3),
        Address::new("r1"),
        &replica_identity("r1"),
        M::Learn {
            view: view.number,
            learner: ReplicaId::new("r9", 1),
            primary: ReplicaId::new("r1", 1),
            op: OpNumber(6),
            chunk: TransferChunk::Snapshot {
                index: 1,
                last: true,
                bytes: vec![7; 1024],
            },
        },
    );
    assert_eq!(newcomer.incoming_snapshot_bytes(), 1024);
    let later =
        Time(3) + Timing::default().learner_expiry() + Timing::default().retransmit_interval;
    newcomer.handle_timeout(later);
    assert_eq!(newcomer.incoming_snapshot_bytes(), 0);
}

/// What registrations can make the registry hold: one entry per identity however often and
/// wherever it registers, [`MAX_REGISTRY_ENTRIES`] in all, and nothing once the registrants
/// stop renewing (autoclean).
#[test]
fn registrations_hold_one_entry_per_identity_and_are_freed_when_not_renewed() {
    let autoclean = Timing::default().autoclean;
    let mut registry = Registry::new("registry", autoclean);
    let register = |registry: &mut Registry, name: &str, address: String| {
        registry.handle_message(
            Time(1),
            Address::new("peer"),
            &replica_identity(name),
            Message::<OrderBook>::Register {
                name: just_hungry_core::protocol::replica_registry_name(name),
                address: Address::new(address),
            },
        )
    };
    // One identity, a thousand registrations at a thousand addresses: one entry.
    for port in 0..1000 {
        register(&mut registry, "replica-1", format!("127.0.0.1:{port}"));
    }
    assert_eq!(registry.entries().count(), 1);
    // As many identities as the registry holds, and more: the table stops at its bound.
    for i in 0..MAX_REGISTRY_ENTRIES + 100 {
        register(&mut registry, &format!("r{i}"), "127.0.0.1:1".into());
    }
    assert_eq!(registry.entries().count(), MAX_REGISTRY_ENTRIES);
    assert_eq!(registry.refused(), 0, "each registered its own name");
    // Nobody renews: after one autoclean period every entry is gone.
    let later = Time(1) + autoclean + std::time::Duration::from_millis(1);
    registry.handle_timeout(later);
    assert_eq!(registry.entries().count(), 0);
}
