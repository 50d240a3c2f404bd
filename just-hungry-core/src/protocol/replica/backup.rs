//! Backups and learners: a backup applies the `Prepare`d ops of its view strictly in op order
//! (buffering gaps, ignoring duplicates) and acknowledges the highest contiguous one; a learner
//! restores the snapshot its primary streams (`Learn`), then follows the log the same way.

use super::Replica;
use super::log::push_recent;
use crate::ids::{Address, Member, OpNumber, ReplicaId, ViewNumber};
use crate::protocol::messages::{Entry, Message, ReplicaRole, TransferChunk};
use crate::protocol::transfer::SnapshotOf;
use crate::protocol::{MAX_BUFFERED_ENTRIES, Record};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    pub(super) fn on_prepare(
        &mut self,
        from: Address,
        view: ViewNumber,
        entries: Vec<Entry<S::Command>>,
    ) {
        let accept = match self.role {
            ReplicaRole::Backup => view == self.view_number(),
            ReplicaRole::Learner => matches!(self.learning, Some((v, _)) if v == view),
            _ => false,
        };
        if !accept {
            return;
        }
        for entry in entries {
            if entry.op > self.state.applied() && self.buffer.len() < MAX_BUFFERED_ENTRIES {
                self.buffer.insert(entry.op, entry);
            }
        }
        let mut applied = Vec::new();
        while let Some(entry) = self.buffer.remove(&self.state.applied().next()) {
            self.state.apply(&entry);
            if self.durable {
                applied.push(entry.clone());
            }
            push_recent(&mut self.followed, entry);
        }
        if !applied.is_empty() {
            self.record(Record::Entries(applied));
        }
        let op = self.state.applied();
        self.buffer.retain(|k, _| *k > op);
        let replica = self.me().clone();
        self.send(from, Message::PrepareOk { view, replica, op });
    }

    pub(super) fn on_learn(
        &mut self,
        from: Address,
        view: ViewNumber,
        learner: ReplicaId,
        primary: ReplicaId,
        op: OpNumber,
        chunk: TransferChunk<S::Command>,
    ) {
        if learner != self.config.id {
            // Meant for an earlier incarnation at this address: mixing its chunks with ours
            // would restart our own transfer at every one of them.
            return;
        }
        if view > self.view_number() {
            // Not announced by the front-end yet: keep it until it is, and ask the front-end
            // now rather than at the next ping.
            let learn = Message::Learn {
                view,
                learner,
                primary,
                op,
                chunk,
            };
            self.unannounced = Some((from, learn));
            self.next_ping = self.now;
            return;
        }
        let announced = self
            .view
            .as_ref()
            .is_some_and(|v| v.number == view && v.primary.id == primary);
        if !announced || !matches!(self.role, ReplicaRole::Idle | ReplicaRole::Learner) {
            return;
        }
        let me = self.me().clone();
        if self.role == ReplicaRole::Learner
            && matches!(self.learning, Some((v, _)) if v == view)
            && self.state.applied() >= op
        {
            let applied = self.state.applied();
            self.send(
                from,
                Message::PrepareOk {
                    view,
                    replica: me,
                    op: applied,
                },
            );
            return;
        }
        let TransferChunk::Snapshot { index, last, bytes } = chunk else {
            return;
        };
        let of = SnapshotOf::Primary(primary.clone());
        if let Some(state) = self.receive_chunk(&from, view, of, op, index, last, bytes) {
            self.state = state;
            self.followed.clear();
            self.role = ReplicaRole::Learner;
            self.learning = Some((
                view,
                Member {
                    id: primary,
                    address: from.clone(),
                },
            ));
            self.state_view = view;
            self.buffer.clear();
            tracing::info!(node = %me, view = %view, op = %op, "state transfer: snapshot received, our pre-defined data is overwritten; following the primary's log");
            self.record(Record::State);
            self.send(
                from,
                Message::PrepareOk {
                    view,
                    replica: me,
                    op,
                },
            );
        }
    }
}
