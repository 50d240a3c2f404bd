//! What a test can do to a simulated cluster: perform [`Action`]s, start client operations,
//! crash and restart nodes, partition the network, and the precise hooks of hand-written
//! scenarios (drop one message, hold a link, deliver a held message late).

use std::time::Duration;

use crate::history::{self, EventType, Function, Value};
use crate::ids::{Address, RequestId, View};
use crate::protocol::messages::Operation;
use crate::sim::{
    Action, Event, FRONTEND_ADDRESS, HeldMessage, InFlight, Invariant, NodeRef, ReplicaSlot,
    SIM_READ_PAGE_LIMIT, Sim, SimService, Target, Violation,
};
use crate::storage::{Crash, FsyncPolicy, SimDisk};

impl<S: SimService> Sim<S> {
    /// Performs one action; then checks every invariant on the whole cluster.
    pub fn apply(&mut self, action: Action) -> Result<(), Violation> {
        tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, ?action, "action");
        match action {
            Action::Nop => {}
            Action::Advance(ms) => self.run_for(Duration::from_millis(u64::from(ms)))?,
            Action::ClientWrite { client, target } => {
                let client = usize::from(client) % self.clients.len();
                let command = S::write(target, &mut self.rng);
                self.client_write(client, command)?;
            }
            Action::ClientRead { client, key } => {
                let client = usize::from(client) % self.clients.len();
                let key = S::KEYS[usize::from(key) % S::KEYS.len()];
                self.client_read(client, key.typed)?;
            }
            Action::CrashReplica(i) => {
                let slot = usize::from(i) % self.replicas.len();
                if !self.protected(slot) {
                    self.crash_replica(slot);
                }
            }
            Action::RestartReplica(i) => {
                let slot = usize::from(i) % self.replicas.len();
                if !self.protected(slot) {
                    self.restart_replica(slot)?;
                }
            }
            Action::CrashPrimary => {
                let primary = self.frontend().current.map(|v| v.primary.id);
                match primary.and_then(|id| self.slot_of(&id)) {
                    Some(slot) if self.protected(slot) => {}
                    _ => self.crash_primary(),
                }
            }
            Action::CrashEveryReplica => {
                if self.config.storage.is_some() || !self.config.protect_last_member {
                    self.crash_every_replica()?;
                }
            }
            Action::DiskFault { replica, fault } => {
                let slot = usize::from(replica) % self.replicas.len();
                if fault % 3 == 2 || !self.protected(slot) {
                    self.disk_fault(slot, fault);
                }
            }
            Action::CrashFrontend => self.crash_frontend(),
            Action::RestartFrontend => self.restart_frontend()?,
            Action::AddReplica => {
                if self.replicas.len() < self.config.max_replicas {
                    self.add_replica();
                }
            }
            Action::Isolate(target) => {
                let address = self.target_address(target);
                self.isolate(&address);
            }
            Action::CutLink(from, to) => {
                let (from, to) = (self.target_address(from), self.target_address(to));
                self.cut_link(&from, &to);
            }
            Action::PartitionPrimaryFromBackups => self.partition_primary_from_backups(),
            Action::Split(mask) => {
                let group: Vec<usize> = (0..self.replicas.len())
                    .filter(|i| mask & (1 << (i % 8)) != 0)
                    .collect();
                self.split(&group);
            }
            Action::Heal => self.heal(),
            Action::Forge {
                what,
                target,
                tweak,
            } => self.forge(what, target, tweak)?,
            Action::SetDrop(p) => self.drop_per_mille = p.min(1000),
            Action::SetDuplicate(p) => self.duplicate_per_mille = p.min(1000),
            Action::SetMaxDelay(ms) => self.set_max_delay(u64::from(ms)),
        }
        self.check_all()
    }

    /// Client `client` starts writing `command` (an append to [`SimService::write_key`]);
    /// `None` if it is busy. The id it appends (the request id) is returned before anything is
    /// sent.
    pub fn client_write(
        &mut self,
        client: usize,
        command: S::Command,
    ) -> Result<Option<RequestId>, Violation> {
        let key = S::write_key(&command);
        self.client_start(client, Function::Append, key, Operation::Write(command))
    }

    /// Client `client` starts reading the list of `key` (as typed); `None` if it is busy.
    pub fn client_read(
        &mut self,
        client: usize,
        key: &str,
    ) -> Result<Option<RequestId>, Violation> {
        let query = S::read(key, 0, SIM_READ_PAGE_LIMIT);
        let key = S::canonical_key(key);
        self.client_start(client, Function::Read, key, Operation::Read(query))
    }

    /// Starts the next page (from position `start`) of client `client`'s read `op`, whose
    /// pages so far held `read`. The page asks for the key in its canonical form (the read's
    /// history key), which names the same list as any spelling.
    pub(super) fn continue_read(
        &mut self,
        client: usize,
        mut op: InFlight,
        read: Vec<RequestId>,
        start: u64,
    ) -> Result<(), Violation> {
        let query = S::read(&op.key, start, SIM_READ_PAGE_LIMIT);
        let now = self.now;
        let request = match self.clients[client]
            .session
            .start(now, Operation::Read(query))
        {
            Ok(id) => id,
            Err(e) => {
                return Err(self.violation(
                    Invariant::Simulator,
                    format!(
                        "client {client} refused the next page of read {}: {e}",
                        op.id
                    ),
                ));
            }
        };
        op.request = request;
        op.read = read;
        self.clients[client].current = Some(op);
        self.drain_client(client)
    }

    fn client_start(
        &mut self,
        client: usize,
        op: Function,
        key: String,
        operation: Operation<S>,
    ) -> Result<Option<RequestId>, Violation> {
        let now = self.now;
        let slot = &mut self.clients[client];
        if slot.current.is_some() || slot.session.is_busy() {
            return Ok(None);
        }
        let expected = slot.session.next_request_id();
        let id = match slot.session.start(now, operation) {
            Ok(id) => id,
            Err(e) => {
                return Err(self.violation(
                    Invariant::Simulator,
                    format!("client {client} refused a request while idle: {e}"),
                ));
            }
        };
        if id != expected {
            return Err(self.violation(
                Invariant::Simulator,
                format!("client {client}: request id {id} is not the announced {expected}"),
            ));
        }
        self.clients[client].current = Some(InFlight {
            id,
            op,
            key: key.clone(),
            invoked: now,
            request: id,
            read: Vec::new(),
        });
        let value = match op {
            Function::Append => Value::Id(history::id_of(id)),
            Function::Read => Value::Null,
        };
        self.record_history(client, EventType::Invoke, op, key, value);
        self.drain_client(client)?;
        Ok(Some(id))
    }

    /// Crashes replica `slot` (no effect if it is down already).
    pub fn crash_replica(&mut self, slot: usize) {
        if let Some(r) = self.replicas[slot].node.take() {
            tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, replica = %r.id(), "crash replica");
        }
        if self.replicas[slot].store.take().is_some() {
            // What each policy promises to survive: a power loss under `always` (unsynced
            // writes lost, tails torn), the death of the process under `batch` and `never`.
            let crash = match self.config.storage {
                Some(FsyncPolicy::Always) => Crash::PowerLoss,
                _ => Crash::Process,
            };
            self.replicas[slot].disk.crash(crash, &mut self.rng);
        }
    }

    /// Restarts replica `slot` as a new incarnation (killing the running one first, if any):
    /// with its pre-defined data or, durable, from its disk, repaired first (room again, syncs
    /// that work) as an operator would before restarting it.
    pub fn restart_replica(&mut self, slot: usize) -> Result<(), Violation> {
        self.crash_replica(slot);
        let disk = &self.replicas[slot].disk;
        disk.set_capacity(None);
        disk.fail_next_syncs(0);
        let replica = self.new_replica(slot).map_err(|e| {
            self.violation(
                Invariant::Simulator,
                format!("replica slot {slot} cannot open its data directory: {e}"),
            )
        })?;
        tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, replica = %replica.id(), "start replica");
        self.replicas[slot].node = Some(replica);
        self.drain(NodeRef::Replica(slot))
    }

    /// Crashes every replica at once and restarts each from its disk (durable replicas) or
    /// with its pre-defined data (memory-only ones: every order is then gone, and the
    /// front-end waits for ever, rule 4).
    pub fn crash_every_replica(&mut self) -> Result<(), Violation> {
        for slot in 0..self.replicas.len() {
            self.crash_replica(slot);
        }
        for slot in 0..self.replicas.len() {
            self.restart_replica(slot)?;
        }
        Ok(())
    }

    /// Makes replica `slot`'s disk fail (durable replicas only; nothing otherwise): `fault`
    /// modulo 3 is its next sync failing, the disk full, or a bit flipped in the middle of its
    /// oldest file. The first two stop the replica at its next write; a flipped bit is found
    /// at its next restart, which then moves the directory aside.
    pub fn disk_fault(&mut self, slot: usize, fault: u8) {
        if self.config.storage.is_none() || self.replicas[slot].node.is_none() {
            return;
        }
        let disk = &self.replicas[slot].disk;
        match fault % 3 {
            0 => disk.fail_next_syncs(1),
            1 => {
                let files = disk.files();
                let used: usize = files
                    .iter()
                    .filter_map(|f| disk.contents(f))
                    .map(|c| c.len())
                    .sum();
                disk.set_capacity(Some(used + 64));
            }
            _ => {
                // A snapshot, or a segment other than the newest: a bad frame there is
                // corruption, never mistaken for a torn tail (which would be cut, losing it).
                let files = disk.files();
                let newest_segment = files.iter().filter(|f| is_ext(f, "wal")).max().cloned();
                let target = files.into_iter().find(|f| {
                    is_ext(f, "snap") || (is_ext(f, "wal") && Some(f) != newest_segment.as_ref())
                });
                if let Some(target) = target {
                    let len = disk.contents(&target).map_or(0, |c| c.len());
                    disk.flip_bit(&target, len / 2, 3);
                }
            }
        }
        tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, slot, fault = fault % 3, "disk fault");
    }

    /// Starts a new replica in a new slot; returns its slot.
    pub fn add_replica(&mut self) -> usize {
        let slot = self.replicas.len();
        let name = format!("replica-{}", slot + 1);
        let address = Address::new(name.clone());
        self.addresses
            .insert(address.clone(), NodeRef::Replica(slot));
        self.replicas.push(ReplicaSlot {
            name,
            address,
            node: None,
            disk: SimDisk::new(),
            store: None,
            lineage: Vec::new(),
        });
        match self.new_replica(slot) {
            Ok(replica) => self.replicas[slot].node = Some(replica),
            // A fresh simulated disk always opens: this is a bug of the simulated disk.
            Err(e) => {
                tracing::error!(target: "just_hungry_core::sim", slot, error = %e, "a new replica cannot open its empty data directory: it does not start")
            }
        }
        slot
    }

    /// Crashes the primary of the front-end's current view, if it runs.
    pub fn crash_primary(&mut self) {
        let primary = self.frontend().current.map(|v| v.primary.id);
        if let Some(slot) = primary.and_then(|id| self.slot_of(&id)) {
            self.crash_replica(slot);
        }
    }

    /// Crashes the front-end; its stored view survives.
    pub fn crash_frontend(&mut self) {
        if self.frontend.take().is_some() {
            tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, "crash front-end");
        }
    }

    /// Restarts the front-end from its stored view (killing the running one first).
    pub fn restart_frontend(&mut self) -> Result<(), Violation> {
        self.crash_frontend();
        tracing::debug!(target: "just_hungry_core::sim", t = self.now.0, stored = ?self.stored_view.as_ref().map(|r| r.current.number), "start front-end");
        self.frontend = Some(self.new_frontend());
        self.drain(NodeRef::Frontend)
    }

    fn target_address(&self, target: Target) -> Address {
        match target {
            Target::Frontend => Address::new(FRONTEND_ADDRESS),
            Target::Replica(i) => self.replicas[usize::from(i) % self.replicas.len()]
                .address
                .clone(),
            Target::Client(i) => self.clients[usize::from(i) % self.clients.len()]
                .address
                .clone(),
        }
    }

    /// Blocks messages from `from` to `to`, one way only.
    pub fn cut_link(&mut self, from: &Address, to: &Address) {
        if from != to {
            self.blocked.insert((from.clone(), to.clone()));
        }
    }

    /// Cuts `address` off from every other node, both ways.
    pub fn isolate(&mut self, address: &Address) {
        let others: Vec<Address> = self
            .addresses
            .keys()
            .filter(|a| *a != address)
            .cloned()
            .collect();
        for other in others {
            self.blocked.insert((address.clone(), other.clone()));
            self.blocked.insert((other, address.clone()));
        }
    }

    /// Blocks messages between every address of `a` and every address of `b`, both ways.
    pub fn partition(&mut self, a: &[Address], b: &[Address]) {
        for x in a {
            for y in b {
                if x != y {
                    self.blocked.insert((x.clone(), y.clone()));
                    self.blocked.insert((y.clone(), x.clone()));
                }
            }
        }
    }

    /// Cuts the primary of the front-end's current view off from its backups.
    pub fn partition_primary_from_backups(&mut self) {
        let Some(view) = self.frontend().current else {
            return;
        };
        let backups: Vec<Address> = view.backups.iter().map(|b| b.address.clone()).collect();
        self.partition(std::slice::from_ref(&view.primary.address), &backups);
    }

    /// Keeps the replicas of `group` with the front-end, registry and clients, and cuts the
    /// other replicas off from all of them.
    pub fn split(&mut self, group: &[usize]) {
        let mut inside = Vec::new();
        let mut outside = Vec::new();
        for (address, node) in &self.addresses {
            match node {
                NodeRef::Replica(i) if !group.contains(i) => outside.push(address.clone()),
                _ => inside.push(address.clone()),
            }
        }
        self.partition(&inside, &outside);
    }

    /// Removes every partition (not the scenario hooks: held links stay held).
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Sets the drop probability, in thousandths.
    pub fn set_drop(&mut self, per_mille: u16) {
        self.drop_per_mille = per_mille.min(1000);
    }

    /// Drops the next message of `kind` ([`Message::kind`](crate::protocol::messages::Message::kind), e.g. `"ViewStarted"`) sent from
    /// `from` to `to`: a precise fault for a scenario.
    pub fn drop_next(&mut self, from: &Address, to: &Address, kind: &'static str) {
        self.drop_next.push((from.clone(), to.clone(), kind));
    }

    /// Takes every message sent from `from` to `to` off the network, until
    /// [`Sim::stop_holding`]; [`Sim::take_held`] returns them.
    pub fn hold(&mut self, from: &Address, to: &Address) {
        self.holding.insert((from.clone(), to.clone()));
    }

    /// Stops holding messages from `from` to `to` (those held stay held).
    pub fn stop_holding(&mut self, from: &Address, to: &Address) {
        self.holding.remove(&(from.clone(), to.clone()));
    }

    /// Every message held so far, oldest first; they are no longer held.
    pub fn take_held(&mut self) -> Vec<HeldMessage> {
        std::mem::take(&mut self.held)
    }

    /// Delivers a held message after the shortest network delay (a very late delivery).
    pub fn inject(&mut self, message: HeldMessage) {
        let delay = Duration::from_millis(self.config.network.min_delay_ms);
        self.schedule(
            delay,
            Event::Deliver {
                from: message.from,
                sender: message.sender,
                to: message.to,
                bytes: message.bytes,
            },
        );
    }

    /// The address of replica slot `slot` (the same across restarts).
    pub fn replica_address(&self, slot: usize) -> Address {
        self.replicas[slot].address.clone()
    }

    /// The address of client `client`.
    pub fn client_address(&self, client: usize) -> Address {
        self.clients[client].address.clone()
    }

    /// The result of client `client`'s last finished operation: its id, how it ended, and for
    /// an `ok` read the ids it returned.
    pub fn client_last(
        &self,
        client: usize,
    ) -> Option<(RequestId, EventType, Option<Vec<RequestId>>)> {
        self.clients[client].last.clone()
    }

    /// Sets the longest network delay, in milliseconds (at least the shortest).
    pub fn set_max_delay(&mut self, ms: u64) {
        self.max_delay_ms = ms.max(self.config.network.min_delay_ms);
    }

    /// Sets the duplication probability, in thousandths.
    pub fn set_duplicate(&mut self, per_mille: u16) {
        self.duplicate_per_mille = per_mille.min(1000);
    }

    /// Whether [`SimConfig::protect_last_member`] spares the replica in `slot`: it runs and
    /// is the last running member of the last active view or of the current view (or the last
    /// running replica, before any view was stored).
    fn protected(&self, slot: usize) -> bool {
        if !self.config.protect_last_member {
            return false;
        }
        let Some(r) = self.replicas[slot].node.as_ref() else {
            return false;
        };
        let last_running = |view: &View| {
            view.contains(r.id()) && view.members().filter(|m| self.is_alive(&m.id)).count() == 1
        };
        match self.stored_view.as_ref() {
            // The current view too: its `ViewStarted` may be in flight.
            Some(record) => {
                record.last_active.as_ref().is_some_and(last_running)
                    || last_running(&record.current)
            }
            None => self.replicas.iter().filter(|s| s.node.is_some()).count() == 1,
        }
    }
}

fn is_ext(path: &std::path::Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}
