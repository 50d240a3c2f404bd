//! The primary's normal operation (docs/PROTOCOL.md, "Normal operation"): a forwarded request
//! is checked against the client table, validated once (an [`crate::protocol::Output::Validate`]
//! effect), given the next op and pipelined to every backup and learner in batches; op `n`
//! commits once every backup acknowledged it; reads wait for the ops received before them.
//! Learners are added here (`AddLearner`) and reported once they caught up (`CaughtUp`).

use super::log::{apply_noting_streams, entries_between, push_recent};
use super::{MAX_PENDING_READS, Peer, PendingRead, PendingWrite, Replica};
use crate::ids::{Address, Member, OpNumber, ReplicaId, RequestId, Time, ViewNumber};
use crate::protocol::client_table::Seen;
use crate::protocol::messages::{
    ClientRequest, Entry, Message, Operation, Outcome, ReplicaRole, ServiceError,
};
use crate::protocol::transfer::OutgoingSnapshot;
use crate::protocol::{CATCH_UP_SLACK, MAX_PENDING_WRITES, Output};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    pub(super) fn on_forward(
        &mut self,
        from: Address,
        view: ViewNumber,
        request: ClientRequest<S>,
        owner: String,
    ) {
        let serving = self.role == ReplicaRole::Primary
            && self.primary.as_ref().is_some_and(|p| p.view == view);
        if !serving {
            self.respond(
                from,
                request.id,
                Outcome::Failed(ServiceError::NotPrimary { view }),
            );
            return;
        }
        let id = request.id;
        let owned_by_another = |o: &str| o != owner;
        if matches!(request.operation, Operation::Write(_))
            && (self
                .state
                .clients()
                .owner(id.client)
                .is_some_and(owned_by_another)
                || self.primary.as_ref().is_some_and(|p| {
                    // Writes of this client still validating or replicating.
                    let of_client = RequestId {
                        client: id.client,
                        seq: 0,
                    }..=RequestId {
                        client: id.client,
                        seq: u64::MAX,
                    };
                    p.pending
                        .range(of_client)
                        .any(|(_, w)| owned_by_another(&w.owner))
                }))
        {
            // A client id is used only by the identity that first wrote with it: another's
            // write would take over its retries and its place in the client table.
            tracing::info!(node = %self.config.id, request = %id, owner = %owner, "refused a write for a client id another identity owns");
            let reason = format!("client id {} belongs to another identity", id.client.0);
            self.respond(
                from,
                id,
                Outcome::Failed(ServiceError::Forbidden { reason }),
            );
            return;
        }
        match request.operation {
            Operation::Write(command) => match self.state.clients().check(id) {
                Seen::Done(reply) => self.respond(from, id, Outcome::Written(reply)),
                Seen::Stale => self.respond(from, id, Outcome::Failed(ServiceError::Stale { id })),
                Seen::New => {
                    let Some(p) = self.primary.as_mut() else {
                        return;
                    };
                    if let Some(write) = p.pending.get_mut(&id) {
                        // A retry joins the pending request: never validated or applied twice.
                        write.reply_to = from;
                        return;
                    }
                    if p.pending.len() >= MAX_PENDING_WRITES {
                        self.respond(from, id, Outcome::Failed(ServiceError::Overloaded));
                        return;
                    }
                    p.pending.insert(
                        id,
                        PendingWrite {
                            reply_to: from,
                            owner,
                            op: None,
                        },
                    );
                    self.outputs.push_back(Output::Validate {
                        request: id,
                        command,
                    });
                }
            },
            Operation::Read(query) => {
                let applied = self.state.applied();
                let Some(p) = self.primary.as_mut() else {
                    return;
                };
                if p.last_op <= applied {
                    let answer = self.state.service().query(&query);
                    self.respond(from, id, Outcome::Read(answer));
                } else if p.reads.len() >= MAX_PENDING_READS {
                    self.respond(from, id, Outcome::Failed(ServiceError::Overloaded));
                } else {
                    p.reads.push_back(PendingRead {
                        after: p.last_op,
                        reply_to: from,
                        id,
                        query,
                    });
                }
            }
            Operation::Status => {
                self.respond(from, id, Outcome::Failed(ServiceError::NotPrimary { view }));
            }
        }
    }

    /// The driver reports the result of an [`Output::Validate`].
    pub fn handle_validated(
        &mut self,
        now: Time,
        request: RequestId,
        result: Result<S::Command, S::Reply>,
    ) {
        self.now = self.now.max(now);
        let serving = self.role == ReplicaRole::Primary;
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let Some(write) = p.pending.get_mut(&request) else {
            return;
        };
        if write.op.is_some() || !serving {
            return;
        }
        match result {
            Err(reply) => {
                let reply_to = write.reply_to.clone();
                p.pending.remove(&request);
                tracing::info!(node = %self.config.id, request = %request, reply = ?reply, "refused request: validation failed");
                self.respond(reply_to, request, Outcome::Written(reply));
            }
            Ok(command) => {
                let op = p.last_op.next();
                write.op = Some(op);
                p.last_op = op;
                let owner = write.owner.clone();
                p.log.push_back(Entry {
                    op,
                    request,
                    time: now,
                    owner,
                    command,
                });
                for peer in p.backups.values_mut().chain(p.learners.values_mut()) {
                    if peer.behind_since.is_none() {
                        peer.behind_since = Some(now);
                    }
                }
                p.dirty = true;
                if !self.durable {
                    self.commit();
                }
                // A durable primary commits when it flushes, after recording the batch.
            }
        }
    }

    /// Sends pending ops to every started backup and restored learner, in batches, within the
    /// pipelining window.
    pub(super) fn flush_prepares(&mut self, now: Time) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if !p.dirty {
            return;
        }
        p.dirty = false;
        if self.role != ReplicaRole::Primary {
            return;
        }
        self.record_log();
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let view = p.view;
        let last_op = p.last_op;
        let window = self.config.pipeline.max_ops_in_flight();
        let batch = self.config.pipeline.max_entries_per_prepare() as u64;
        let mut sends = Vec::new();
        let mut lost_learners = Vec::new();
        for (id, peer) in p.backups.iter_mut().chain(p.learners.iter_mut()) {
            if !peer.started {
                continue;
            }
            let upto = last_op.min(OpNumber(peer.acked.0.saturating_add(window)));
            let mut from = peer.sent.max(peer.acked).next();
            while from <= upto {
                let to = OpNumber(from.0.saturating_add(batch - 1).min(upto.0));
                match entries_between(&p.recent, &p.log, from, to) {
                    Some(entries) => sends.push((peer.address.clone(), entries)),
                    None => {
                        lost_learners.push(id.clone());
                        break;
                    }
                }
                from = to.next();
            }
            if upto > peer.sent {
                peer.sent = upto;
                peer.last_sent_at = now;
            }
        }
        for id in lost_learners {
            // The ops it needs fell out of the recent log: start its transfer again.
            if p.learners.remove(&id).is_some() {
                tracing::info!(node = %self.config.id, learner = %id, "learner fell too far behind: dropped, the front-end will add it again");
            }
        }
        for (to, entries) in sends {
            self.send(to, Message::Prepare { view, entries });
        }
        if self.durable {
            // A view without backups commits what it just recorded.
            self.commit();
        }
    }

    pub(super) fn on_prepare_ok(
        &mut self,
        now: Time,
        view: ViewNumber,
        replica: ReplicaId,
        op: OpNumber,
    ) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.view != view {
            return;
        }
        let last_op = p.last_op;
        // No one acknowledges an op that was never prepared (a number from the network may be
        // anything).
        let op = op.min(last_op);
        if let Some(peer) = p.backups.get_mut(&replica) {
            if op > peer.acked {
                peer.acked = op;
                peer.sent = peer.sent.max(op);
            }
            peer.behind_since = (peer.acked < last_op).then_some(now);
            p.dirty = true;
            self.commit();
        } else if let Some(peer) = p.learners.get_mut(&replica) {
            if !peer.started {
                // Only an acknowledgement of the snapshot's op (or later) proves that this
                // snapshot was restored: the replica may have restored an older one, sent to
                // an earlier incarnation at the same address, and would never get the ops in
                // between. Until then the snapshot is sent again.
                if peer.snapshot.as_ref().is_some_and(|s| op < s.op) {
                    return;
                }
                peer.started = true;
                peer.snapshot = None;
                tracing::info!(node = %self.config.id, learner = %replica, op = %op, "state transfer: learner restored the snapshot, now following the log");
            }
            if op > peer.acked {
                peer.acked = op;
                peer.sent = peer.sent.max(op);
            }
            peer.behind_since = (peer.acked < last_op).then_some(now);
            p.dirty = true;
            self.report_caught_up(now);
        }
    }

    /// Commits every op that every backup acknowledged: applies it and answers its client.
    pub(super) fn commit(&mut self) {
        if self.role != ReplicaRole::Primary {
            return;
        }
        // An op is answered only once the primary's own copy is on disk too.
        self.record_log();
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let commit = p
            .backups
            .values()
            .map(|b| b.acked)
            .min()
            .unwrap_or(p.last_op)
            .min(p.last_op);
        let mut replies = Vec::new();
        while self.state.applied() < commit {
            let Some(entry) = p.log.pop_front() else {
                break;
            };
            let peers = p.backups.values_mut().chain(p.learners.values_mut());
            let reply = apply_noting_streams(&mut self.state, peers, &entry);
            if let Some(write) = p.pending.remove(&entry.request) {
                replies.push((write.reply_to, entry.request, Outcome::Written(reply)));
            }
            push_recent(&mut p.recent, entry);
        }
        let applied = self.state.applied();
        while p.reads.front().is_some_and(|r| r.after <= applied) {
            let Some(read) = p.reads.pop_front() else {
                break;
            };
            let answer = self.state.service().query(&read.query);
            replies.push((read.reply_to, read.id, Outcome::Read(answer)));
        }
        for (to, id, outcome) in replies {
            self.respond(to, id, outcome);
        }
    }

    pub(super) fn on_add_learner(&mut self, now: Time, view: ViewNumber, learner: Member) {
        if self.role != ReplicaRole::Primary {
            return;
        }
        let applied = self.state.applied();
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.view != view || p.backups.contains_key(&learner.id) || learner.id == self.config.id {
            return;
        }
        // A learner already known is being streamed its snapshot (the tick goes on with it and
        // starts again when it is not acknowledged) or follows the log. Taking a new snapshot
        // for each repeated request would restart a transfer that takes longer than the
        // front-end's repeat interval for ever (found at 1,000,000 orders).
        if let Some(known) = p.learners.get_mut(&learner.id) {
            known.requested_at = now;
            return;
        }
        // A name has one live incarnation: the others were streamed to a process that is gone.
        p.learners
            .retain(|id, _| id.name != learner.id.name || *id == learner.id);
        let stream = match OutgoingSnapshot::begin(&self.state, now) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                return;
            }
        };
        tracing::info!(node = %self.config.id, learner = %learner.id, op = %applied, "join: streaming a snapshot to the newcomer");
        let mut peer = Peer::new(learner.address.clone(), now);
        peer.snapshot = Some(stream);
        peer.acked = applied;
        peer.sent = applied;
        p.learners.insert(learner.id.clone(), peer);
        self.pump_snapshot(&learner.id);
    }

    /// Tells the front-end about learners that hold every committed op but at most
    /// [`CATCH_UP_SLACK`] (the view change brings them the rest), all of them in one
    /// message so they join in one view change. While another learner is still on its way, a
    /// learner that caught up waits for it up to one retransmission interval: learners started
    /// together join together, and none waits longer than that for the others.
    pub(super) fn report_caught_up(&mut self, now: Time) {
        let applied = self.state.applied();
        let retransmit = self.config.timing.retransmit_interval;
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let view = p.view;
        let mut due = false;
        let mut others_on_their_way = false;
        let mut waited_enough = false;
        for peer in p.learners.values_mut() {
            let caught_up =
                peer.started && peer.acked.0.saturating_add(CATCH_UP_SLACK) >= applied.0;
            if !caught_up {
                peer.caught_up_since = None;
                others_on_their_way = true;
                continue;
            }
            let since = *peer.caught_up_since.get_or_insert(now);
            due |= peer
                .last_reported_at
                .is_none_or(|t| now.saturating_since(t) >= retransmit);
            waited_enough |= now.saturating_since(since) >= retransmit;
        }
        if !due || (others_on_their_way && !waited_enough) {
            return;
        }
        let mut learners = Vec::new();
        for (id, peer) in p.learners.iter_mut() {
            if peer.caught_up_since.is_some() {
                peer.last_reported_at = Some(now);
                learners.push(id.clone());
            }
        }
        if let Some(fe) = self.frontend.clone() {
            let names: Vec<String> = learners.iter().map(ToString::to_string).collect();
            tracing::info!(node = %self.config.id, learners = %names.join(", "), "learners caught up: asking the front-end to add them to the view");
            self.send(fe, Message::CaughtUp { view, learners });
        }
    }
}
