//! Failure detection at the front-end (docs/PROTOCOL.md, "Failure detection" and
//! "Incarnations"): pings tell it who lives, in which view, with which op; a replica silent for
//! `dead_after` is dead, a new incarnation of a known name proves the old one died, and a stall
//! of the front-end's own loop is not counted against the replicas.

use super::{Frontend, Known, MAX_REPLICAS};
use crate::ids::{Address, OpNumber, ReplicaId, Time, ViewNumber};
use crate::protocol::messages::{Message, Ping, ReplicaRole};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Frontend<S> {
    /// Called first with every input. If the front-end is woken more than
    /// [`Timing::stall_tolerance`] past its own deadline, it was the one asleep: the replicas'
    /// pings may be queued behind this very input, and their silence over the lost time is
    /// the front-end's, not theirs. That time is added to every replica's last ping, so each
    /// is judged only on the time the front-end was running; one whose connection was refused
    /// is still failed (that is evidence, not silence).
    pub(super) fn notice_own_stall(&mut self, now: Time) {
        let due = self.next_tick.min(self.registration.next());
        let Some(late) = self.stall.woken(due, now, &self.config.timing) else {
            return;
        };
        tracing::warn!(node = %self.config.name, late = ?late, "the front-end was woken late (paused or starved): not counting the time it lost against the replicas");
        for k in self.replicas.values_mut() {
            k.last_ping = (k.last_ping + late).min(now);
        }
    }

    pub(super) fn is_alive(&self, k: &Known, now: Time) -> bool {
        !k.failed && now.saturating_since(k.last_ping) < self.config.timing.dead_after
    }

    pub(super) fn alive_id(&self, id: &ReplicaId, now: Time) -> Option<&Known> {
        self.replicas
            .get(&id.name)
            .filter(|k| k.id == *id && self.is_alive(k, now))
    }

    pub(super) fn learn_replica(&mut self, now: Time, id: &ReplicaId, address: &Address) -> bool {
        if self.replicas.get(&id.name).is_some_and(|k| k.id == *id) || self.retired.contains(id) {
            return false;
        }
        if self.replicas.len() >= MAX_REPLICAS && !self.replicas.contains_key(&id.name) {
            return false;
        }
        let registered = self.next_registered;
        self.next_registered += 1;
        self.replicas.insert(
            id.name.clone(),
            Known {
                id: id.clone(),
                address: address.clone(),
                last_ping: now,
                failed: false,
                applied: OpNumber(0),
                role: ReplicaRole::Idle,
                view: ViewNumber(0),
                registered,
                recovered: None,
                learner_requested: None,
            },
        );
        true
    }

    pub(super) fn on_ping(&mut self, now: Time, ping: Ping) {
        if self.retired.contains(&ping.replica) {
            let replacement_alive = self
                .replicas
                .get(&ping.replica.name)
                .is_some_and(|k| self.is_alive(k, now));
            if replacement_alive {
                return; // a delayed ping of a dead incarnation
            }
            // Incarnations are random, so a delayed ping of a dead incarnation looks like a
            // restart too, and may have retired this one, which is running. The incarnation
            // that replaced it is silent: take this one back (below, as a newcomer that must
            // join again), else a running replica would be ignored forever.
            tracing::info!(node = %self.config.name, replica = %ping.replica, "a retired incarnation is still pinging and its replacement is silent: taking it back");
            self.retired.remove(&ping.replica);
        }
        if let Some(old) = self.replicas.get(&ping.replica.name)
            && old.id != ping.replica
        {
            // docs/PROTOCOL.md, "Incarnations": a new incarnation proves the old one died.
            let old_id = old.id.clone();
            tracing::info!(node = %self.config.name, old = %old_id, new = %ping.replica, "replica restarted: its old incarnation failed");
            self.retired.insert(old_id.clone());
            if self.retired.len() > MAX_REPLICAS {
                let first = self.retired.iter().next().cloned();
                if let Some(first) = first {
                    self.retired.remove(&first);
                }
            }
            self.replicas.remove(&ping.replica.name);
        }
        let newcomer = self.learn_replica(now, &ping.replica, &ping.address);
        if newcomer {
            tracing::info!(node = %self.config.name, replica = %ping.replica, address = %ping.address, "replica registered with the front-end");
        }
        if let Some(k) = self.replicas.get_mut(&ping.replica.name) {
            if !newcomer {
                self.ping_gaps.record(now.saturating_since(k.last_ping));
            }
            k.last_ping = now;
            k.failed = false;
            k.address = ping.address.clone();
            k.applied = ping.applied;
            k.recovered = ping.recovered;
            k.role = ping.role;
            k.view = ping.view.as_ref().map_or(ViewNumber(0), |v| v.number);
        }
        if ping.role == ReplicaRole::Primary
            && let Some(view) = ping.view.as_ref()
        {
            self.on_primary_report(now, view, &ping.replica);
        }
        let view = self.current_view().cloned();
        self.send(
            ping.address,
            Message::ViewInfo {
                view,
                answers: Some(ping.number),
            },
        );
        self.evaluate(now);
    }
}
