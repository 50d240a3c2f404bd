//! Numbers at the edges (issue 13): view numbers, ops and indices near `u64::MAX` from the
//! network neither overflow (these tests run with overflow checks, a debug build) nor change
//! what a node holds; the node goes on serving.

use just_hungry::orders::{OrderBook, OrderCommand};
use just_hungry_core::ids::{
    Address, ClientId, Identity, NodeRole, OpNumber, ReplicaId, RequestId, Time, View, ViewNumber,
};
use just_hungry_core::protocol::Node;
use just_hungry_core::protocol::frontend::{Frontend, FrontendConfig};
use just_hungry_core::protocol::messages::{
    ClientRequest, Entry, Message, Operation, Ping, ReplicaRole, TransferChunk,
};
use just_hungry_core::protocol::replica::Replica;

use crate::nodes::{id, member, replica};

type M = Message<OrderBook>;

const MAX: u64 = u64::MAX;

fn from(node: &mut impl Node<OrderBook>, name: &str, role: NodeRole, message: M) {
    node.handle_message(
        Time(1),
        Address::new(name),
        &Identity::new(role, name),
        message,
    );
    while node.poll_output().is_some() {}
}

fn entry(op: u64) -> Entry<OrderCommand> {
    Entry {
        op: OpNumber(op),
        request: RequestId {
            client: ClientId(9),
            seq: op,
        },
        owner: "client".into(),
        time: Time(MAX),
        command: OrderCommand::PlaceOrder {
            postcode: "SW1A 1AA".into(),
            items: vec!["Chips".into()],
        },
    }
}

/// r1 primary of view 1 with backup r2, started.
fn primary() -> Replica<OrderBook> {
    let mut r1 = replica("r1");
    let view = View {
        number: ViewNumber(1),
        primary: member("r1"),
        backups: vec![member("r2")],
    };
    from(
        &mut r1,
        "frontend",
        NodeRole::Frontend,
        M::ViewInfo {
            view: Some(view),
            answers: None,
        },
    );
    from(
        &mut r1,
        "r2",
        NodeRole::Replica,
        M::StartViewOk {
            view: ViewNumber(1),
            replica: id("r2"),
            op: OpNumber(MAX),
        },
    );
    assert_eq!(r1.role(), ReplicaRole::Primary);
    r1
}

#[test]
fn a_primary_takes_acknowledgements_of_ops_it_never_sent_as_nothing() {
    let mut r1 = primary();
    for op in [MAX, MAX - 1] {
        from(
            &mut r1,
            "r2",
            NodeRole::Replica,
            M::PrepareOk {
                view: ViewNumber(1),
                replica: id("r2"),
                op: OpNumber(op),
            },
        );
        from(
            &mut r1,
            "r2",
            NodeRole::Replica,
            M::SnapshotAck {
                view: ViewNumber(MAX),
                replica: id("r2"),
                op: OpNumber(MAX),
                next: u32::MAX,
            },
        );
    }
    for t in 1..20 {
        r1.handle_timeout(Time(t * 100));
        while r1.poll_output().is_some() {}
    }
    // A write is still prepared, and committed only when r2 really acknowledges it.
    let request = RequestId {
        client: ClientId(7),
        seq: 1,
    };
    let command = entry(1).command;
    from(
        &mut r1,
        "frontend",
        NodeRole::Frontend,
        M::Forward {
            view: ViewNumber(1),
            request: ClientRequest {
                id: request,
                operation: Operation::Write(command.clone()),
            },
            owner: "client".into(),
        },
    );
    r1.handle_validated(Time(2000), request, Ok(command));
    while r1.poll_output().is_some() {}
    assert_eq!(
        r1.applied(),
        OpNumber(0),
        "not committed on forged acknowledgements"
    );
    from(
        &mut r1,
        "r2",
        NodeRole::Replica,
        M::PrepareOk {
            view: ViewNumber(1),
            replica: id("r2"),
            op: OpNumber(1),
        },
    );
    assert_eq!(r1.applied(), OpNumber(1));
}

#[test]
fn a_backup_takes_ops_views_and_chunks_at_the_edge_without_overflowing() {
    let mut r2 = replica("r2");
    let edge = View {
        number: ViewNumber(MAX),
        primary: member("r1"),
        backups: vec![member("r2")],
    };
    from(
        &mut r2,
        "frontend",
        NodeRole::Frontend,
        M::ViewInfo {
            view: Some(edge.clone()),
            answers: None,
        },
    );
    assert_eq!(r2.view_number(), ViewNumber(MAX));
    let digest = r2.state().digest();
    from(
        &mut r2,
        "r1",
        NodeRole::Replica,
        M::StartView {
            view: edge.clone(),
            op: OpNumber(MAX),
            chunk: TransferChunk::Suffix {
                since: ViewNumber(0),
                entries: vec![entry(MAX - 1), entry(MAX)],
            },
        },
    );
    from(
        &mut r2,
        "r1",
        NodeRole::Replica,
        M::Prepare {
            view: ViewNumber(MAX),
            entries: vec![entry(MAX)],
        },
    );
    for index in [0, u32::MAX - 1, u32::MAX] {
        from(
            &mut r2,
            "r1",
            NodeRole::Replica,
            M::Learn {
                view: ViewNumber(MAX),
                learner: id("r2"),
                primary: id("r1"),
                op: OpNumber(MAX),
                chunk: TransferChunk::Snapshot {
                    index,
                    last: true,
                    bytes: vec![0xff; 64],
                },
            },
        );
    }
    for t in 1..20 {
        r2.handle_timeout(Time(t * 100));
        while r2.poll_output().is_some() {}
    }
    assert_eq!(r2.state().digest(), digest, "nothing applied");
    assert_eq!(r2.applied(), OpNumber(0));
}

#[test]
fn a_front_end_takes_pings_and_reports_at_the_edge_without_overflowing() {
    let config = FrontendConfig::new(
        "frontend",
        Address::new("frontend"),
        Address::new("registry"),
    );
    let mut fe: Frontend<OrderBook> = Frontend::new(config, None, Time(0));
    let edge = View {
        number: ViewNumber(MAX),
        primary: member("r1"),
        backups: vec![],
    };
    for name in ["r1", "r2"] {
        let ping = Ping {
            replica: ReplicaId::new(name, MAX),
            address: Address::new(name),
            view: Some(edge.clone()),
            role: ReplicaRole::Primary,
            applied: OpNumber(MAX),
            number: 0,
            recovered: None,
        };
        from(&mut fe, name, NodeRole::Replica, M::Ping(ping));
    }
    for message in [
        M::ViewStarted {
            view: ViewNumber(MAX),
        },
        M::CaughtUp {
            view: ViewNumber(MAX),
            learners: vec![ReplicaId::new("r2", MAX)],
        },
        M::SuspectBackup {
            view: ViewNumber(MAX),
            backup: ReplicaId::new("r2", MAX),
        },
    ] {
        from(&mut fe, "r1", NodeRole::Replica, message);
    }
    for t in 1..30 {
        fe.handle_timeout(Time(t * 100));
        while fe.poll_output().is_some() {}
    }
    // A view numbered at the limit is not resumed from (no view could follow it): the
    // front-end serves status and waits for a primary of a view it can resume from.
    let status = fe.cluster_status(Time(3000));
    assert!(status.view.is_none(), "{status:?}");
    let ping = Ping {
        replica: ReplicaId::new("r3", 3),
        address: Address::new("r3"),
        view: None,
        role: ReplicaRole::Idle,
        applied: OpNumber(0),
        number: 0,
        recovered: None,
    };
    for t in 30..60 {
        fe.handle_message(
            Time(t * 100),
            Address::new("r3"),
            &Identity::new(NodeRole::Replica, "r3"),
            M::Ping(ping.clone()),
        );
        fe.handle_timeout(Time(t * 100));
        while fe.poll_output().is_some() {}
    }
    let status = fe.cluster_status(Time(6000));
    assert!(
        status
            .view
            .as_ref()
            .is_some_and(|v| v.number < ViewNumber(MAX)),
        "{status:?}"
    );
}
