//! The end of a run: stop every fault, then check liveness (invariant 7), convergence
//! (invariant 5) and the whole client history, final reads included ([`crate::history::check`]).

use std::time::Duration;

use crate::history::EventType;
use crate::ids::{Member, ReplicaId, View, ViewNumber};
use crate::protocol::replica::Replica;
use crate::sim::{FinalReport, InFlight, Invariant, Sim, SimService, Violation};
use crate::storage::FsyncPolicy;

impl<S: SimService> Sim<S> {
    /// Ends the run: heals every partition, stops drops, duplicates, long delays and the
    /// scenario hooks (held messages stay undelivered), restarts the front-end if it is down
    /// (and durable replicas that are down, from their disks), then checks liveness (invariant 7: every request in flight completes, then one new
    /// write per client succeeds), reads every key, lets traffic drain and checks convergence
    /// (invariant 5), then checks the history, those final reads included: no acknowledged
    /// write lost, none doubled, no phantom, every read linearizable (invariants 1, 2, 6).
    ///
    /// When no member of the last active view is alive once the messages in flight at the
    /// heal are delivered, the protocol promises nothing more (rule 4): only the safety checks
    /// already made hold, and `available` is `false`.
    pub fn finish(&mut self) -> Result<FinalReport, Violation> {
        self.holding.clear();
        self.drop_next.clear();
        self.heal();
        self.set_drop(0);
        self.set_duplicate(0);
        self.set_max_delay(self.config.network.max_delay_ms);
        if self.frontend.is_none() {
            self.restart_frontend()?;
        }
        // Durable replicas down at the end (crashed, or stopped by their disks) are restarted
        // from their disks, repaired, as an operator would after an outage; the disks of those
        // still running are repaired too: a fault still armed (a full disk) would otherwise
        // stop a replica after the heal, which the heal promised no longer happens (found by
        // a seed whose lone primary filled its disk once healed).
        if self.config.storage.is_some() {
            for slot in 0..self.replicas.len() {
                let disk = &self.replicas[slot].disk;
                disk.set_capacity(None);
                disk.fail_next_syncs(0);
                if self.replicas[slot].node.is_none() {
                    self.restart_replica(slot)?;
                }
            }
        }
        self.check_all()?;
        let healed = self.now;
        let deadline = self.config.client.deadline;

        // Invariant 7: requests in flight at the heal complete.
        let in_flight: Vec<(usize, InFlight)> = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.current.clone().map(|f| (i, f)))
            .collect();
        let idle = self.run_while(deadline + Duration::from_secs(1), |s| !s.any_client_busy())?;
        if !idle {
            return Err(self.violation(
                Invariant::Liveness,
                "a client request outlived its deadline".to_owned(),
            ));
        }
        // Whether the protocol must still serve is decided once the messages in flight at the
        // heal are delivered: a dead primary's last `ViewStarted`, still on its way, makes its
        // view the last active one, and with it dead nobody may serve any more (rule 4).
        let available = self.member_of_last_active_alive();
        if available {
            for (client, op) in &in_flight {
                let Some((id, kind, _)) = &self.clients[*client].last else {
                    continue;
                };
                let late = op.invoked + deadline > healed + self.config.recovery_grace;
                if *id == op.id && *kind == EventType::Info && late {
                    return Err(self.violation(
                        Invariant::Liveness,
                        format!(
                            "{:?} {} of client {client} (invoked at {}) timed out although the \
                             faults stopped at {} with a member of the last active view alive",
                            op.op, op.id, op.invoked.0, healed.0
                        ),
                    ));
                }
            }
        }
        if !available {
            return Ok(self.report(false));
        }

        // Invariant 7: one new write per client succeeds.
        let mut writes = Vec::new();
        for client in 0..self.clients.len() {
            let command = S::final_write(&S::KEYS[client % S::KEYS.len()]);
            if let Some(id) = self.client_write(client, command)? {
                writes.push((client, id));
            }
        }
        self.run_while(deadline + Duration::from_secs(1), |s| !s.any_client_busy())?;
        for (client, id) in writes {
            let ok =
                matches!(&self.clients[client].last, Some((done, EventType::Ok, _)) if *done == id);
            if !ok {
                return Err(self.violation(
                    Invariant::Liveness,
                    format!(
                        "after healing, write {id} of client {client} did not succeed: {:?}",
                        self.clients[client].last
                    ),
                ));
            }
        }

        // Final reads: they close the history, so that a lost write shows in it.
        for (k, key) in S::KEYS.iter().enumerate() {
            let client = k % self.clients.len();
            let Some(id) = self.client_read(client, key.typed)? else {
                continue;
            };
            self.run_while(deadline + Duration::from_secs(1), |s| {
                !s.client_busy(client)
            })?;
            match &self.clients[client].last {
                Some((done, EventType::Ok, Some(_))) if *done == id => {}
                other => {
                    return Err(self.violation(
                        Invariant::Liveness,
                        format!(
                            "after healing, the final read of {} failed: {other:?}",
                            key.canonical
                        ),
                    ));
                }
            }
        }

        // Invariant 5: let traffic drain, then every live member of the active view agrees.
        self.run_for(self.config.drain)?;
        self.check_all()?;
        self.check_convergence()?;
        self.check_history()?;
        Ok(self.report(true))
    }

    fn report(&self, available: bool) -> FinalReport {
        FinalReport {
            available,
            events: self.events,
            end: self.now,
            acknowledged: self.checker.acked.len(),
            view: self
                .stored_view
                .as_ref()
                .map_or(ViewNumber(0), |r| r.current.number),
            directories_moved_aside: self.directories_moved_aside,
        }
    }

    /// Whether the protocol must still serve: some member of the last active view runs (or,
    /// before any view was active, some replica runs).
    pub fn member_of_last_active_alive(&self) -> bool {
        match self
            .stored_view
            .as_ref()
            .and_then(|r| r.last_active.as_ref())
        {
            Some(view) => {
                let alive = view.members().any(|m| self.is_alive(&m.id));
                // Durable replicas restarted from their disks stand in for dead members: any
                // one under `always`, all of them otherwise (docs/PROTOCOL.md, "Durability").
                let back = |m: &Member| self.is_alive(&m.id) || self.stand_in_for(&m.id).is_some();
                let stood_in = match self.config.storage {
                    None => false,
                    Some(FsyncPolicy::Always) => view.members().any(back),
                    Some(_) => view.members().all(back),
                };
                alive || stood_in
            }
            None => self.replicas.iter().any(|s| s.node.is_some()),
        }
    }

    /// The running replica that may stand in for `id` ([`Sim::stands_in`]).
    pub(crate) fn stand_in_for(&self, id: &ReplicaId) -> Option<&Replica<S>> {
        self.replicas
            .iter()
            .filter_map(|s| s.node.as_ref())
            .find(|r| self.descends(r.id(), id))
    }

    /// Whether `id` may stand in for a member of `view` (running or not: a front-end may
    /// elect one whose death it has not noticed yet).
    pub(crate) fn stands_in(&self, id: &ReplicaId, view: &View) -> bool {
        view.members().any(|m| self.descends(id, &m.id))
    }

    /// Whether incarnation `id` started from the data directory `member` wrote to (as the
    /// simulator saw it start: a directory moved aside begins a new lineage).
    fn descends(&self, id: &ReplicaId, member: &ReplicaId) -> bool {
        id.name == member.name
            && id != member
            && self
                .recovered
                .get(id)
                .is_some_and(|lineage| lineage.contains(&member.incarnation))
    }
}
