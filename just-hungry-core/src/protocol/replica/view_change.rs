//! View changes: what a replica does when the front-end announces a view (docs/PROTOCOL.md,
//! "View change and state transfer"). The primary of the new view takes its state as the view's
//! and sends it to every backup (`StartView`: a suffix when it knows where the backup is, else a
//! snapshot), and reports the view started once every backup confirmed; a backup installs the
//! state of the view the front-end announced, and nothing else.

use std::collections::{BTreeMap, VecDeque};

use super::log::{apply_noting_streams, push_recent, suffix_after, suffix_fits};
use super::{Peer, Primary, Replica};
use crate::ids::{Address, OpNumber, ReplicaId, Time, View, ViewNumber};
use crate::protocol::Record;
use crate::protocol::messages::{Message, ReplicaRole, TransferChunk};
use crate::protocol::transfer::{OutgoingSnapshot, SnapshotOf};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    /// The front-end told us of `view`.
    pub(super) fn on_view_info(&mut self, now: Time, view: View) {
        if view.number <= self.view_number() {
            return;
        }
        self.record(Record::View(view.clone()));
        let me = self.me().clone();
        if view.primary.id == me {
            self.become_primary(now, view);
        } else if view.is_backup(&me) {
            self.step_down(&view);
            tracing::info!(node = %me, view = %view, "backup of new view: waiting for the primary's state");
            self.learning = None;
            self.view = Some(view);
            self.role = ReplicaRole::AwaitingState;
        } else {
            self.step_down(&view);
            // The next view of the primary we learn from: it stayed primary from one to the
            // other, so its stream of ops goes on, and it keeps streaming to us in the new
            // view. (Across a gap in view numbers it may have followed another primary in
            // between, whose ops we lack: then we start over.)
            let same_primary = self.role == ReplicaRole::Learner
                && matches!(&self.learning, Some((v, primary))
                    if primary.id == view.primary.id && view.number == v.next());
            if same_primary {
                self.learning = Some((view.number, view.primary.clone()));
                self.state_view = view.number;
                self.buffer.clear();
            }
            let still_learning = matches!(self.learning, Some((v, _)) if v == view.number);
            if !still_learning {
                self.learning = None;
                if self.role != ReplicaRole::Idle {
                    tracing::info!(node = %me, view = %view, "not a member of the new view: idle until it joins again");
                }
                self.role = ReplicaRole::Idle;
            }
            self.view = Some(view);
        }
        match self.unannounced.take() {
            Some((from, Message::StartView { view, op, chunk }))
                if self.view.as_ref() == Some(&view) =>
            {
                self.on_start_view(from, view, op, chunk)
            }
            Some((
                from,
                Message::Learn {
                    view,
                    learner,
                    primary,
                    op,
                    chunk,
                },
            )) if self.view_number() == view => {
                self.on_learn(from, view, learner, primary, op, chunk)
            }
            _ => {}
        }
    }

    /// Leaves the primary role, dropping what only a primary holds; clients retry elsewhere.
    pub(super) fn step_down(&mut self, newer: &View) {
        if let Some(p) = self.primary.take() {
            tracing::info!(node = %self.config.id, old = %p.view, new = %newer.number, dropped_writes = p.pending.len(), dropped_reads = p.reads.len(), "stepping down as primary: a newer view exists");
            if !p.log.is_empty() {
                // Its log, on disk, goes beyond the state it keeps: write the state over it.
                self.record(Record::State);
            }
        }
    }

    /// Becomes primary of `view`: takes everything it has applied (and, if it was primary
    /// already, every op it had prepared) as the state of the view, and sends it to every
    /// backup.
    pub(super) fn become_primary(&mut self, now: Time, view: View) {
        let mut recent = VecDeque::new();
        let mut pending = BTreeMap::new();
        let mut tracked: BTreeMap<ReplicaId, (OpNumber, ViewNumber)> = BTreeMap::new();
        let mut learners = BTreeMap::new();
        let followed = std::mem::take(&mut self.followed);
        // A backup promoted: its latest applied entries can bring every other backup of the
        // same stream (the same `state_view`) up to date with a suffix. A backup's state is a
        // prefix of that stream; it lags this one by at most the pipelining window when it
        // kept up, and if it lags more (or is ahead) the suffix does not fit it and the
        // retransmission sends a snapshot (`force_snapshot`).
        let promoted_from = (self.primary.is_none()
            && followed.back().map(|e| e.op) == Some(self.state.applied()))
        .then_some(self.state_view);
        // What it prepared as primary of the view before becomes its state: on disk first.
        self.record_log();
        if let Some(mut previous) = self.primary.take() {
            recent = previous.recent;
            for entry in previous.log {
                let streams = previous.learners.values_mut();
                apply_noting_streams(&mut self.state, streams, &entry);
                push_recent(&mut recent, entry);
            }
            pending = previous
                .pending
                .into_iter()
                .filter(|(_, w)| w.op.is_some())
                .collect();
            for (id, peer) in previous.backups.iter().chain(previous.learners.iter()) {
                if peer.started {
                    tracked.insert(id.clone(), (peer.acked, previous.view));
                }
            }
            // Learners that do not join this view stay learners of the same primary: their
            // snapshot streams on where it was, or they go on following the log, in the new
            // view (they move to it when the front-end tells them). Ops sent in the old view
            // are sent again.
            for (id, mut peer) in previous.learners {
                if view.contains(&id) {
                    continue;
                }
                peer.sent = peer.acked;
                peer.last_reported_at = None;
                peer.behind_since = peer.started.then_some(now);
                learners.insert(id, peer);
            }
        }
        let applied = self.state.applied();
        let mut backups = BTreeMap::new();
        for member in &view.backups {
            let mut peer = Peer::new(member.address.clone(), now);
            // Behind until it holds the view's state: one that never confirms is reported
            // like a backup that stops acknowledging, or the view would never start.
            peer.behind_since = Some(now);
            if let Some((acked, tracked_in)) = tracked.get(&member.id) {
                peer.acked = *acked;
                peer.tracked_in = Some(*tracked_in);
            } else if let (Some(since), Some(first)) = (promoted_from, followed.front()) {
                let window = self.config.pipeline.max_ops_in_flight();
                let from = OpNumber(first.op.0.saturating_sub(1))
                    .max(OpNumber(applied.0.saturating_sub(window)));
                // A lower bound of what it holds: nothing is committed on its account until
                // it confirms (StartViewOk carries its op).
                peer.acked = from;
                peer.tracked_in = Some(since);
            }
            backups.insert(member.id.clone(), peer);
        }
        tracing::info!(node = %self.config.id, view = %view, op = %applied, "elected primary: starting the view (state transfer to backups)");
        self.learning = None;
        self.buffer.clear();
        self.incoming = None;
        self.state_view = view.number;
        self.primary = Some(Primary {
            view: view.number,
            log: VecDeque::new(),
            last_op: applied,
            backups,
            learners,
            recent: if promoted_from.is_some() {
                followed
            } else {
                recent
            },
            pending,
            reads: VecDeque::new(),
            dirty: false,
            recorded: applied,
        });
        self.view = Some(view);
        self.role = ReplicaRole::StartingView;
        let ids: Vec<ReplicaId> = self
            .primary
            .as_ref()
            .map(|p| p.backups.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.send_start_view(now, &id);
        }
        self.maybe_finish_view_start();
    }

    /// Sends backup `id` the state of the view: a suffix if this primary tracked its state,
    /// else a full snapshot in chunks.
    pub(super) fn send_start_view(&mut self, now: Time, id: &ReplicaId) {
        let Some(view) = self.view.clone() else {
            return;
        };
        let applied = self.state.applied();
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let Some(peer) = p.backups.get_mut(id) else {
            return;
        };
        peer.last_sent_at = now;
        let address = peer.address.clone();
        let suffix = match (peer.tracked_in, peer.force_snapshot) {
            (Some(since), false) => suffix_after(&p.recent, peer.acked, applied)
                .map(|entries| TransferChunk::Suffix { since, entries }),
            _ => None,
        };
        if let Some(chunk) = suffix {
            self.send(
                address,
                Message::StartView {
                    view,
                    op: applied,
                    chunk,
                },
            );
            return;
        }
        if peer.snapshot.is_none() {
            match OutgoingSnapshot::begin(&self.state, now) {
                Ok(stream) => {
                    tracing::info!(node = %self.config.id, backup = %id, op = %applied, "state transfer: streaming a snapshot to the backup");
                    peer.snapshot = Some(stream);
                }
                Err(e) => {
                    tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                    return;
                }
            }
        }
        self.pump_snapshot(id);
    }

    pub(super) fn on_start_view_ok(&mut self, view: ViewNumber, replica: ReplicaId, op: OpNumber) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if p.view != view {
            return;
        }
        let op = op.min(p.last_op);
        if let Some(peer) = p.backups.get_mut(&replica) {
            if !peer.started {
                tracing::info!(node = %self.config.id, backup = %replica, op = %op, "state transfer: backup holds the view's state");
            }
            peer.started = true;
            peer.snapshot = None;
            peer.acked = peer.acked.max(op);
            peer.sent = peer.sent.max(op);
            peer.behind_since = (peer.acked < p.last_op).then_some(peer.last_sent_at);
        }
        self.maybe_finish_view_start();
    }

    pub(super) fn maybe_finish_view_start(&mut self) {
        if self.role != ReplicaRole::StartingView {
            return;
        }
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        if !p.backups.values().all(|b| b.started) {
            return;
        }
        let view = p.view;
        // Writes prepared in the previous view are part of this view's state, but are not
        // answered here: the answer could reach a client before the front-end learns that this
        // view is active, while its last active view still counts members that lack the write
        // (one of them could then be elected, losing an acknowledged write: invariant 1). The
        // front-end forwards them again once the view is active; the client table answers.
        p.pending.clear();
        self.role = ReplicaRole::Primary;
        tracing::info!(node = %self.config.id, view = %view, op = %self.state.applied(), "view started: every backup holds the state");
        if let Some(fe) = self.frontend.clone() {
            self.send(fe, Message::ViewStarted { view });
        }
    }

    pub(super) fn on_start_view(
        &mut self,
        from: Address,
        view: View,
        op: OpNumber,
        chunk: TransferChunk<S::Command>,
    ) {
        let me = self.me().clone();
        if !view.is_backup(&me) {
            return;
        }
        let mine = self.view_number();
        if view.number == mine && self.role == ReplicaRole::Backup {
            // A retransmission: we hold this view's state already; confirm again.
            let number = view.number;
            self.send(
                from,
                Message::StartViewOk {
                    view: number,
                    replica: me,
                    op,
                },
            );
            return;
        }
        if view.number > mine {
            // A view is believed only from the front-end (a replica holding a certificate
            // could otherwise announce a view of its own making): keep this one until the
            // front-end announces it, and ask the front-end now rather than at the next ping.
            self.unannounced = Some((from, Message::StartView { view, op, chunk }));
            self.next_ping = self.now;
            return;
        }
        let announced =
            self.role == ReplicaRole::AwaitingState && self.view.as_ref() == Some(&view);
        if !announced {
            return;
        }
        match chunk {
            TransferChunk::Suffix { since, entries } => {
                if since != self.state_view || !suffix_fits(self.state.applied(), op, &entries) {
                    tracing::debug!(node = %me, view = %view.number, "suffix does not fit our state: waiting for a snapshot");
                    return;
                }
                let mut applied = Vec::new();
                for entry in entries {
                    if entry.op > self.state.applied() {
                        self.state.apply(&entry);
                        if self.durable {
                            applied.push(entry.clone());
                        }
                        push_recent(&mut self.followed, entry);
                    }
                }
                if !applied.is_empty() {
                    self.record(Record::Entries(applied));
                }
                self.install_view(from, view);
            }
            TransferChunk::Snapshot { index, last, bytes } => {
                let of = SnapshotOf::View(view.number);
                if let Some(state) =
                    self.receive_chunk(&from, view.number, of, op, index, last, bytes)
                {
                    self.state = state;
                    self.followed.clear();
                    tracing::info!(node = %me, view = %view.number, op = %op, "state transfer: snapshot installed, our data is overwritten with the cluster's");
                    self.record(Record::State);
                    self.install_view(from, view);
                }
            }
        }
    }

    pub(super) fn install_view(&mut self, primary: Address, view: View) {
        let me = self.me().clone();
        let number = view.number;
        let op = self.state.applied();
        self.view = Some(view);
        self.role = ReplicaRole::Backup;
        self.state_view = number;
        self.buffer.clear();
        self.incoming = None;
        tracing::info!(node = %me, view = %number, op = %op, "joined view as backup");
        self.send(
            primary,
            Message::StartViewOk {
                view: number,
                replica: me,
                op,
            },
        );
    }
}
