//! The invariants of docs/PROTOCOL.md, checked against the simulated cluster.
//!
//! Each node is checked after every event it handled (only its state can have changed), every
//! replica again whenever the last active view changes or a write is acknowledged, and the whole
//! cluster after every action. What the checks need to remember across events (acknowledged
//! writes, refused ones, who was primary of which view, every reply to every write) is kept in
//! the [`Checker`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::{self, Anomaly};
use crate::ids::{Address, ReplicaId, RequestId, Time, View, ViewNumber};
use crate::protocol::messages::{Message, ReplicaRole};
use crate::protocol::replica::Replica;
use crate::protocol::view_store::ViewRecord;
use crate::sim::{FRONTEND_ADDRESS, Sim, SimService};

/// A rule of docs/PROTOCOL.md (numbered as its "Invariants" section) or of the simulator itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// 1. Every acknowledged write is present, exactly once, in the state of every running
    ///    member of the last active view (checked after every event).
    DurableAcknowledgement,
    /// 2. No write is applied twice; no request gets two different replies.
    ExactlyOnce,
    /// 3. No two replicas act as primary of one view number; a replica's view number never
    ///    decreases.
    OnePrimaryPerView,
    /// 4. When a primary answers a write, it and every running backup of its view hold it.
    NoStaleCommit,
    /// 5. Once faults stop and traffic drains, every member of the active view holds the same
    ///    state (digest, client table included, and the set of ids).
    Convergence,
    /// 6. The client history is linearizable (list-append, [`crate::history::check`]): reads
    ///    agree on one order per key, see every write acknowledged before they were invoked
    ///    and no write invoked after they completed; a write answered `fail` is never applied.
    Linearizability,
    /// 7. Once faults stop with a member of the last active view alive, requests complete
    ///    and new writes succeed.
    Liveness,
    /// Views (docs/PROTOCOL.md, "Views"): stored view numbers only grow, a view is persisted before
    /// it is published, and a newcomer is never primary before it joined an active view.
    Views,
    /// Every message survives `codec::encode` then `codec::decode` unchanged.
    WireCodec,
    /// The contract between the simulator and the nodes (timers advance, no livelock).
    Simulator,
}

impl Invariant {
    /// A short name, with its number in docs/PROTOCOL.md when it has one.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::DurableAcknowledgement => "1 durable acknowledgement",
            Invariant::ExactlyOnce => "2 exactly once",
            Invariant::OnePrimaryPerView => "3 one primary per view",
            Invariant::NoStaleCommit => "4 no stale commit",
            Invariant::Convergence => "5 convergence",
            Invariant::Linearizability => "6 linearizability",
            Invariant::Liveness => "7 liveness after healing",
            Invariant::Views => "views",
            Invariant::WireCodec => "wire codec",
            Invariant::Simulator => "simulator contract",
        }
    }
}

/// A broken invariant: which, when (virtual time) and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub invariant: Invariant,
    /// Virtual time of the event after which it was seen.
    pub time: Time,
    /// What was seen, for a human.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} violated at t={} ms: {}",
            self.invariant.name(),
            self.time.as_millis(),
            self.detail
        )
    }
}

impl std::error::Error for Violation {}

/// An acknowledged write.
#[derive(Clone, Debug)]
pub(crate) struct Acked {
    /// The canonical key.
    pub(crate) key: String,
}

/// What the checks remember across events.
pub(crate) struct Checker<S: SimService> {
    /// Writes acknowledged to clients (`ok`).
    pub(crate) acked: BTreeMap<RequestId, Acked>,
    /// Writes answered `fail`.
    refused: BTreeSet<RequestId>,
    /// Every write reply any replica sent.
    replies: BTreeMap<RequestId, S::Reply>,
    /// Who acted as primary of each view.
    primaries: BTreeMap<ViewNumber, ReplicaId>,
    /// The newest view number each incarnation was seen in.
    views: BTreeMap<ReplicaId, ViewNumber>,
    /// The last active view number seen, to notice its changes.
    last_active: Option<ViewNumber>,
}

impl<S: SimService> Checker<S> {
    /// A checker that has seen nothing yet.
    pub(crate) fn new() -> Checker<S> {
        Checker {
            acked: BTreeMap::new(),
            refused: BTreeSet::new(),
            replies: BTreeMap::new(),
            primaries: BTreeMap::new(),
            views: BTreeMap::new(),
            last_active: None,
        }
    }
}

type Broken = (Invariant, String);

/// The checks of one replica's own state: invariants 1, 2, 3 and "refused writes are never
/// applied".
fn check_replica_state<S: SimService>(
    r: &Replica<S>,
    checker: &mut Checker<S>,
    last_active: Option<&View>,
) -> Result<(), Broken> {
    let id = r.id().clone();
    let mut seen = BTreeSet::new();
    for order in r.state().service().ids() {
        if !seen.insert(order) {
            return Err((
                Invariant::ExactlyOnce,
                format!(
                    "replica {id} ({:?} in {}, op {}) holds {order} twice; its client table \
                     says {:?}",
                    r.role(),
                    r.view_number(),
                    r.applied(),
                    r.state().clients().records().get(&order.client)
                ),
            ));
        }
    }
    if let Some(order) = checker.refused.iter().find(|o| seen.contains(o)) {
        return Err((
            Invariant::Linearizability,
            format!("replica {id} holds {order}, whose write was answered `fail`"),
        ));
    }

    let view = r.view_number();
    if let Some(previous) = checker.views.get(&id)
        && view < *previous
    {
        return Err((
            Invariant::OnePrimaryPerView,
            format!("replica {id} went back from view {previous} to {view}"),
        ));
    }
    checker.views.insert(id.clone(), view);
    if matches!(r.role(), ReplicaRole::StartingView | ReplicaRole::Primary) {
        match checker.primaries.get(&view) {
            Some(other) if *other != id => {
                return Err((
                    Invariant::OnePrimaryPerView,
                    format!("{other} and {id} both acted as primary of view {view}"),
                ));
            }
            Some(_) => {}
            None => {
                checker.primaries.insert(view, id.clone());
            }
        }
    }

    if let Some(last_active) = last_active
        && last_active.contains(&id)
        && let Some(missing) = checker.acked.keys().find(|o| !seen.contains(o))
    {
        return Err((
            Invariant::DurableAcknowledgement,
            format!(
                "replica {id} ({:?} in {}, op {}) is a member of the last active view {} but \
                 lacks acknowledged write {missing}",
                r.role(),
                r.view_number(),
                r.applied(),
                last_active.number
            ),
        ));
    }
    Ok(())
}

impl<S: SimService> Sim<S> {
    fn broken(&self, (invariant, detail): Broken) -> crate::sim::Violation {
        self.violation(invariant, detail)
    }

    fn last_active(&self) -> Option<&View> {
        self.stored_view
            .as_ref()
            .and_then(|r| r.last_active.as_ref())
    }

    /// Checks replica `slot` after it handled an event.
    pub(crate) fn check_replica(&mut self, slot: usize) -> Result<(), Violation> {
        let last_active = self
            .stored_view
            .as_ref()
            .and_then(|r| r.last_active.as_ref());
        let Some(r) = self.replicas[slot].node.as_ref() else {
            return Ok(());
        };
        check_replica_state(r, &mut self.checker, last_active).map_err(|b| self.broken(b))
    }

    fn check_every_replica(&mut self) -> Result<(), Violation> {
        for slot in 0..self.replicas.len() {
            self.check_replica(slot)?;
        }
        Ok(())
    }

    /// Checks the front-end after it handled an event: when the last active view changed,
    /// every replica again (invariant 1 now asks more of other replicas).
    pub(crate) fn check_frontend(&mut self) -> Result<(), Violation> {
        if let (Some(fe), Some(stored)) = (self.frontend.as_ref(), self.stored_view.as_ref())
            && fe.current_view() != Some(&stored.current)
        {
            return Err(self.violation(
                Invariant::Views,
                format!(
                    "the front-end is in view {:?} but stored {}",
                    fe.current_view().map(|v| v.number),
                    stored.current.number
                ),
            ));
        }
        let last_active = self.last_active().map(|v| v.number);
        if last_active != self.checker.last_active {
            self.checker.last_active = last_active;
            self.check_every_replica()?;
        }
        Ok(())
    }

    /// Checks the whole cluster (after every action).
    pub(crate) fn check_all(&mut self) -> Result<(), Violation> {
        self.check_frontend()?;
        self.check_every_replica()
    }

    /// Checks a record the front-end asks to persist against the one stored: view numbers
    /// only grow, a view's members never change, and the last active view is consistent.
    pub(crate) fn check_persisted(&self, record: &ViewRecord) -> Result<(), Violation> {
        let fail = |detail: String| Err(self.violation(Invariant::Views, detail));
        if record.current_active && record.last_active.as_ref() != Some(&record.current) {
            return fail(format!(
                "view {} stored active but the last active view is {:?}",
                record.current.number,
                record.last_active.as_ref().map(|v| v.number)
            ));
        }
        if let Some(last) = &record.last_active
            && last.number > record.current.number
        {
            return fail(format!(
                "last active view {} is newer than the current view {}",
                last.number, record.current.number
            ));
        }
        let Some(old) = self.stored_view.as_ref() else {
            return Ok(());
        };
        if record.current.number < old.current.number {
            return fail(format!(
                "stored view went back from {} to {}",
                old.current.number, record.current.number
            ));
        }
        if record.current.number == old.current.number && record.current != old.current {
            return fail(format!(
                "two different views numbered {}: {} and {}",
                record.current.number, old.current, record.current
            ));
        }
        let number = |r: &ViewRecord| r.last_active.as_ref().map(|v| v.number);
        if number(record) < number(old) {
            return fail(format!(
                "last active view went back from {:?} to {:?}",
                number(old),
                number(record)
            ));
        }
        // Rule 3: a new primary is a member of the last active view, or a replica restarted
        // from its disk standing in for one, never a newcomer (a view that keeps the primary of
        // the view it follows was checked when that one was made).
        if record.current.number > old.current.number
            && record.current.primary.id != old.current.primary.id
            && let Some(last) = old.last_active.as_ref()
            && !last.contains(&record.current.primary.id)
            && !self.stands_in(&record.current.primary.id, last)
        {
            return fail(format!(
                "view {} makes {} primary, who is not a member of the last active view {}",
                record.current, record.current.primary.id, last
            ));
        }
        Ok(())
    }

    /// Checks what the front-end publishes (rule 5: persisted before published).
    pub(crate) fn check_published(
        &self,
        from: &Address,
        message: &Message<S>,
    ) -> Result<(), Violation> {
        if from.as_str() != FRONTEND_ADDRESS {
            return Ok(());
        }
        if let Message::ViewInfo {
            view: Some(view), ..
        } = message
        {
            let stored = self.stored_view.as_ref().map(|r| &r.current);
            if stored.is_none_or(|s| s.number < view.number) {
                return Err(self.violation(
                    Invariant::Views,
                    format!("view {view} was published before it was persisted"),
                ));
            }
        }
        Ok(())
    }

    /// A replica answered write `id` with `reply`: invariants 2 and 4.
    pub(crate) fn check_written(
        &mut self,
        slot: usize,
        id: RequestId,
        reply: &S::Reply,
    ) -> Result<(), Violation> {
        if let Some(previous) = self.checker.replies.get(&id)
            && previous != reply
        {
            return Err(self.violation(
                Invariant::ExactlyOnce,
                format!("write {id} was answered {previous:?}, then {reply:?}"),
            ));
        }
        self.checker.replies.insert(id, reply.clone());
        let Some(order) = S::written(reply) else {
            return Ok(());
        };
        let Some(r) = self.replicas[slot].node.as_ref() else {
            return Ok(());
        };
        let fail = |detail: String| Err(self.violation(Invariant::NoStaleCommit, detail));
        if order != id {
            return fail(format!("write {id} was answered with id {order}"));
        }
        if r.role() != ReplicaRole::Primary {
            return fail(format!(
                "{} answered write {id} as {:?} of {}",
                r.id(),
                r.role(),
                r.view_number()
            ));
        }
        if !r.state().service().contains(order) {
            return fail(format!(
                "primary {} answered write {id} before applying it",
                r.id()
            ));
        }
        let Some(view) = r.view() else {
            return fail(format!("primary {} has no view", r.id()));
        };
        for backup in &view.backups {
            let Some(b) = self
                .slot_of(&backup.id)
                .and_then(|s| self.replicas[s].node.as_ref())
            else {
                continue;
            };
            if !b.state().service().contains(order) {
                return fail(format!(
                    "primary {} of {} answered write {id}, but backup {} ({:?} in {}, op {}) \
                     does not hold it",
                    r.id(),
                    view.number,
                    b.id(),
                    b.role(),
                    b.view_number(),
                    b.applied()
                ));
            }
        }
        Ok(())
    }

    /// A replica answered read `id`: only the primary of the newest view it knows answers
    /// reads (docs/PROTOCOL.md, "Normal operation").
    pub(crate) fn check_read_answer(&self, slot: usize, id: RequestId) -> Result<(), Violation> {
        let Some(r) = self.replicas[slot].node.as_ref() else {
            return Ok(());
        };
        if r.role() != ReplicaRole::Primary {
            return Err(self.violation(
                Invariant::Linearizability,
                format!(
                    "{} answered read {id} as {:?} of {}",
                    r.id(),
                    r.role(),
                    r.view_number()
                ),
            ));
        }
        Ok(())
    }

    /// A client got `ok` for write `id`: invariant 1 for it, at once, on every replica.
    pub(crate) fn on_acknowledged(&mut self, id: RequestId, key: String) -> Result<(), Violation> {
        if self.checker.refused.contains(&id) {
            return Err(self.violation(
                Invariant::ExactlyOnce,
                format!("write {id} was acknowledged after it was refused"),
            ));
        }
        self.checker.acked.insert(id, Acked { key });
        self.check_every_replica()
    }

    /// A client got `fail` for write `id`: it must never be applied.
    pub(crate) fn on_refused(&mut self, id: RequestId) -> Result<(), Violation> {
        if self.checker.acked.contains_key(&id) {
            return Err(self.violation(
                Invariant::ExactlyOnce,
                format!("write {id} was refused after it was acknowledged"),
            ));
        }
        self.checker.refused.insert(id);
        self.check_every_replica()
    }

    /// Invariant 5, at the end: the front-end has an active view, every member of it runs,
    /// plays its role in it and holds the same state; every running replica has joined it.
    pub(crate) fn check_convergence(&self) -> Result<(), Violation> {
        let fail = |invariant, detail: String| Err(self.violation(invariant, detail));
        let Some(view) = self
            .frontend
            .as_ref()
            .and_then(|fe| fe.active_view())
            .cloned()
        else {
            return fail(
                Invariant::Liveness,
                format!(
                    "no active view after healing (current: {:?})",
                    self.stored_view.as_ref().map(|r| r.current.to_string())
                ),
            );
        };
        let mut reference: Option<(ReplicaId, u64, Vec<RequestId>)> = None;
        for member in view.members() {
            let Some(r) = self
                .slot_of(&member.id)
                .and_then(|s| self.replicas[s].node.as_ref())
            else {
                return fail(
                    Invariant::Liveness,
                    format!(
                        "member {} of the active view {view} is not running",
                        member.id
                    ),
                );
            };
            let expected = if member.id == view.primary.id {
                ReplicaRole::Primary
            } else {
                ReplicaRole::Backup
            };
            if r.role() != expected || r.view_number() != view.number {
                return fail(
                    Invariant::Convergence,
                    format!(
                        "member {} of the active view {view} is {:?} in {}",
                        member.id,
                        r.role(),
                        r.view_number()
                    ),
                );
            }
            let digest = r.state().digest();
            let orders = r.state().service().ids();
            match &reference {
                None => reference = Some((member.id.clone(), digest, orders)),
                Some((first, d, o)) => {
                    if *o != orders {
                        return fail(
                            Invariant::Convergence,
                            format!(
                                "{first} and {} hold different ids: {} vs {}",
                                member.id,
                                o.len(),
                                orders.len()
                            ),
                        );
                    }
                    if *d != digest {
                        return fail(
                            Invariant::Convergence,
                            format!(
                                "{first} and {} hold the same ids but different states \
                                 (client table or op): {d:016x} vs {digest:016x}",
                                member.id
                            ),
                        );
                    }
                }
            }
        }
        for s in &self.replicas {
            if let Some(r) = &s.node
                && !view.contains(r.id())
            {
                return fail(
                    Invariant::Liveness,
                    format!(
                        "running replica {} ({:?} in {}) has not joined the active view {view}",
                        r.id(),
                        r.role(),
                        r.view_number()
                    ),
                );
            }
        }
        Ok(())
    }

    /// The whole client history, by the one checker of [`crate::history`]: a lost write
    /// breaks invariant 1, a doubled one invariant 2, anything else (a phantom, a stale or
    /// out-of-order read, a read of a write not yet placed) invariant 6.
    pub(crate) fn check_history(&self) -> Result<(), Violation> {
        let report = history::check(&self.history).map_err(|e| {
            self.violation(
                Invariant::Simulator,
                format!("the simulator wrote a malformed history: {e}"),
            )
        })?;
        let Some(anomaly) = report.anomalies.first() else {
            return Ok(());
        };
        let invariant = match anomaly {
            Anomaly::Lost { .. } => Invariant::DurableAcknowledgement,
            Anomaly::Doubled { .. } => Invariant::ExactlyOnce,
            _ => Invariant::Linearizability,
        };
        Err(self.violation(invariant, report.to_string()))
    }
}
