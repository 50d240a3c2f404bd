//! The front-end's failure detector judges replicas on the time it was running, not on its
//! own stalls (issue 13): a front-end paused for 3 s (SIGSTOP, a GC pause, a starved loop)
//! retires nobody when it wakes, and a replica that really died meanwhile is still found.
//!
//! The front-end is driven directly, as its driver would: inputs at the times they are taken,
//! a timeout whenever one is due.

use std::time::Duration;

use just_hungry::orders::OrderBook;
use just_hungry_core::ids::{Address, Identity, NodeRole, OpNumber, ReplicaId, Time, View};
use just_hungry_core::protocol::frontend::{Frontend, FrontendConfig};
use just_hungry_core::protocol::messages::{Message, Ping, ReplicaRole};
use just_hungry_core::protocol::{Node, Timing};

type M = Message<OrderBook>;

const REPLICAS: [&str; 3] = ["r1", "r2", "r3"];

struct Harness {
    fe: Frontend<OrderBook>,
    now: Time,
}

impl Harness {
    fn id(name: &str) -> ReplicaId {
        crate::nodes::id(name)
    }

    fn deliver(&mut self, name: &str, message: M) {
        let sender = Identity::new(NodeRole::Replica, name);
        self.fe
            .handle_message(self.now, Address::new(name), &sender, message);
        self.fire_due();
    }

    fn fire_due(&mut self) {
        while self.fe.next_timeout().is_some_and(|t| t <= self.now) {
            self.fe.handle_timeout(self.now);
        }
        while self.fe.poll_output().is_some() {}
    }

    fn ping(&mut self, name: &str) {
        let view = self.fe.current_view().cloned();
        let role = match &view {
            Some(v) if v.primary.id.name == name => ReplicaRole::Primary,
            Some(v) if v.is_backup(&Self::id(name)) => ReplicaRole::Backup,
            _ => ReplicaRole::Idle,
        };
        let ping = Ping {
            replica: Self::id(name),
            address: Address::new(name),
            view,
            role,
            applied: OpNumber(0),
            number: 0,
            recovered: None,
        };
        self.deliver(name, M::Ping(ping));
    }

    /// Every replica in `alive` pings each ping interval for `duration`.
    fn run(&mut self, duration: Duration, alive: &[&str]) {
        let end = self.now + duration;
        let step = Timing::default().ping_interval;
        while self.now < end {
            self.now = self.now + step;
            self.fire_due();
            for name in alive {
                self.ping(name);
            }
        }
    }

    fn view(&self) -> View {
        self.fe.active_view().cloned().expect("an active view")
    }
}

/// A front-end whose active view is r1 primary, r2 and r3 backups.
fn three_member_view() -> Harness {
    let config = FrontendConfig::new(
        "frontend",
        Address::new("frontend"),
        Address::new("registry"),
    );
    let mut h = Harness {
        fe: Frontend::new(config, None, Time(0)),
        now: Time(0),
    };
    for name in REPLICAS {
        h.ping(name);
    }
    h.run(Duration::from_secs(1), &REPLICAS);
    let view = h.fe.current_view().cloned().expect("bootstrapped");
    h.deliver(&view.primary.id.name, M::ViewStarted { view: view.number });
    let view = h.view();
    let primary = view.primary.id.name.clone();
    let learners = REPLICAS
        .iter()
        .filter(|n| **n != primary)
        .map(|n| Harness::id(n))
        .collect();
    h.deliver(
        &primary,
        M::CaughtUp {
            view: view.number,
            learners,
        },
    );
    let view = h.fe.current_view().cloned().expect("the join's view");
    h.deliver(&primary, M::ViewStarted { view: view.number });
    h.run(Duration::from_millis(500), &REPLICAS);
    assert_eq!(h.view().members().count(), 3, "{}", h.view());
    h
}

#[test]
fn a_paused_front_end_retires_no_replica_when_it_wakes() {
    let mut h = three_member_view();
    let before = h.view();
    // Paused for 3 s: nothing reaches it; the replicas' pings queue up. When it wakes, it
    // takes them one by one, the first before the others.
    h.now = h.now + Duration::from_secs(3);
    for name in REPLICAS {
        h.ping(name);
    }
    h.run(Duration::from_secs(1), &REPLICAS);
    assert_eq!(
        h.view(),
        before,
        "the same view: nobody retired, no election"
    );
    assert_eq!(h.fe.stalls(), 1, "the pause was noticed once");
    let status = h.fe.cluster_status(h.now);
    assert!(status.replicas.iter().all(|r| r.alive), "{status:?}");
}

#[test]
fn a_replica_that_died_during_the_pause_is_still_found_after_it() {
    let mut h = three_member_view();
    let before = h.view();
    let dead = before.backups[0].id.name.clone();
    let alive: Vec<&str> = REPLICAS.iter().copied().filter(|n| *n != dead).collect();
    h.now = h.now + Duration::from_secs(3);
    for name in &alive {
        h.ping(name);
    }
    // Judged on the time the front-end runs: dead after `dead_after` of it, not at once.
    h.run(Timing::default().dead_after / 2, &alive);
    assert_eq!(
        h.view(),
        before,
        "not retired on the front-end's own lost time"
    );
    h.run(Timing::default().dead_after * 2, &alive);
    let after = h.view();
    assert!(!after.contains(&Harness::id(&dead)), "{after}");
    assert_eq!(
        after.primary, before.primary,
        "no election: the primary lives"
    );
    assert_eq!(after.members().count(), 2, "{after}");
}

/// A primary paused while a write waits for its backup's acknowledgement does not report the
/// backup as slow when it wakes: the acknowledgement is queued behind its own timer.
#[test]
fn a_paused_primary_does_not_report_its_backup_when_it_wakes() {
    use crate::nodes::member;
    use just_hungry::orders::OrderCommand;
    use just_hungry_core::ids::{ClientId, RequestId, ViewNumber};
    use just_hungry_core::protocol::Output;
    use just_hungry_core::protocol::messages::{ClientRequest, Operation};
    use just_hungry_core::protocol::replica::Replica;

    let timing = Timing::default();
    let mut r1 = crate::nodes::replica("r1");
    let frontend = Identity::new(NodeRole::Frontend, "frontend");
    let r2 = Identity::new(NodeRole::Replica, "r2");
    let mut now = Time(0);
    // The front-end is known, so reports to it would be sent.
    r1.handle_message(
        now,
        Address::new("registry"),
        &Identity::new(NodeRole::Registry, "registry"),
        M::LookupReply {
            name: just_hungry_core::protocol::FRONTEND_NAME.into(),
            address: Some(Address::new("frontend")),
        },
    );
    let view = View {
        number: ViewNumber(1),
        primary: member("r1"),
        backups: vec![member("r2")],
    };
    r1.handle_message(
        now,
        Address::new("frontend"),
        &frontend,
        M::ViewInfo {
            view: Some(view),
            answers: None,
        },
    );
    r1.handle_message(
        now,
        Address::new("r2"),
        &r2,
        M::StartViewOk {
            view: ViewNumber(1),
            replica: Harness::id("r2"),
            op: OpNumber(0),
        },
    );
    assert_eq!(r1.role(), ReplicaRole::Primary);
    let request = RequestId {
        client: ClientId(7),
        seq: 1,
    };
    let command = OrderCommand::PlaceOrder {
        postcode: "SW1A 1AA".into(),
        items: vec!["Chips".into()],
    };
    r1.handle_message(
        now,
        Address::new("frontend"),
        &frontend,
        M::Forward {
            view: ViewNumber(1),
            request: ClientRequest {
                id: request,
                operation: Operation::Write(command.clone()),
            },
            owner: "client".into(),
        },
    );
    r1.handle_validated(now, request, Ok(command));
    while r1.poll_output().is_some() {}
    // Paused for 3 s, far past `backup_timeout`, with r2's acknowledgement queued behind.
    now = now + Duration::from_secs(3);
    let mut reports = 0;
    let mut step = |r1: &mut Replica<OrderBook>, now: Time| {
        while r1.next_timeout().is_some_and(|t| t <= now) {
            r1.handle_timeout(now);
        }
        while let Some(output) = r1.poll_output() {
            if let Output::Send {
                message: M::SuspectBackup { .. },
                ..
            } = output
            {
                reports += 1;
            }
        }
    };
    step(&mut r1, now);
    r1.handle_message(
        now,
        Address::new("r2"),
        &r2,
        M::PrepareOk {
            view: ViewNumber(1),
            replica: Harness::id("r2"),
            op: OpNumber(1),
        },
    );
    step(&mut r1, now);
    for _ in 0..10 {
        now = now + timing.retransmit_interval;
        step(&mut r1, now);
    }
    assert_eq!(reports, 0, "the backup was not reported");
    assert_eq!(r1.stalls(), 1);
    assert_eq!(r1.applied(), OpNumber(1), "the write committed");
}

/// Issue 13, item 4: the status says whether the view serves, not only whether it was marked
/// active.
#[test]
fn the_status_says_whether_the_view_actually_serves() {
    use just_hungry::orders::OrderCommand;
    use just_hungry_core::ids::{ClientId, RequestId};
    use just_hungry_core::protocol::messages::{ClientRequest, ClientResponse, Operation, Outcome};

    let mut h = three_member_view();
    let status = h.fe.cluster_status(h.now);
    assert!(status.active && status.serving, "{status:?}");
    assert_eq!(status.why_not_serving, None);

    // The primary pings but answers nothing: a request waits.
    let request = RequestId {
        client: ClientId(5),
        seq: 1,
    };
    let client = Identity::new(NodeRole::Client, "client");
    h.fe.handle_message(
        h.now,
        Address::new("client"),
        &client,
        M::Request(ClientRequest {
            id: request,
            operation: Operation::Write(OrderCommand::PlaceOrder {
                postcode: "SW1A 1AA".into(),
                items: vec!["Chips".into()],
            }),
        }),
    );
    h.fire_due();
    h.run(Duration::from_secs(3), &REPLICAS);
    let status = h.fe.cluster_status(h.now);
    assert!(status.active && !status.serving, "{status:?}");
    let why = status.why_not_serving.expect("a reason");
    assert!(why.contains("answered no request"), "{why}");

    // It answers: serving again.
    let primary = h.view().primary.id.name.clone();
    h.deliver(
        &primary,
        M::Response(ClientResponse {
            id: request,
            outcome: Outcome::Written(Ok(request)),
        }),
    );
    assert!(h.fe.cluster_status(h.now).serving);

    // Every replica goes silent: the view is still marked active, but does not serve.
    h.run(Timing::default().dead_after * 4, &[]);
    let status = h.fe.cluster_status(h.now);
    assert!(!status.serving, "{status:?}");
    let why = status.why_not_serving.expect("a reason");
    assert!(why.contains("is not alive"), "{why}");
}
