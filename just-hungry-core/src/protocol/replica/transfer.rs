//! Snapshot streams, both ends: the primary encodes and sends the chunks a receiver's window
//! lets out and goes on as they are acknowledged (`SnapshotAck`); a receiver (a backup of a
//! starting view, or a learner) takes chunks, acknowledges them and restores the state from the
//! last (docs/PROTOCOL.md, "View change and state transfer"; [`crate::protocol::transfer`]).

use super::Replica;
use crate::ids::{Address, OpNumber, ReplicaId, Time, ViewNumber};
use crate::protocol::MAX_CHUNK_BYTES;
use crate::protocol::messages::{Message, TransferChunk};
use crate::protocol::replicated_state::ReplicatedState;
use crate::protocol::transfer::{Acknowledged, IncomingSnapshot, OutgoingSnapshot, SnapshotOf};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    /// Encodes and sends the chunks of peer `id`'s snapshot that its window lets out: as
    /// `StartView` to a backup, `Learn` to a learner.
    pub(super) fn pump_snapshot(&mut self, id: &ReplicaId) {
        let transfer = self.config.transfer;
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        let (peer, learner) = match (p.backups.get_mut(id), p.learners.get_mut(id)) {
            (Some(peer), _) => (peer, false),
            (None, Some(peer)) => (peer, true),
            (None, None) => return,
        };
        let Some(stream) = peer.snapshot.as_mut() else {
            return;
        };
        match stream.fill(&self.state, transfer) {
            Ok(chunks) => {
                let (address, op) = (peer.address.clone(), stream.op);
                self.send_snapshot_chunks(id, address, op, learner, chunks);
            }
            Err(e) => {
                tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                peer.snapshot = None;
            }
        }
    }

    /// Sends chunks of the snapshot at `op` to peer `id` at `address`.
    pub(super) fn send_snapshot_chunks(
        &mut self,
        id: &ReplicaId,
        address: Address,
        op: OpNumber,
        learner: bool,
        chunks: Vec<TransferChunk<S::Command>>,
    ) {
        let (Some(view), Some(number)) = (self.view.clone(), self.primary.as_ref().map(|p| p.view))
        else {
            return;
        };
        for chunk in chunks {
            let message = if learner {
                Message::Learn {
                    view: number,
                    learner: id.clone(),
                    primary: self.config.id.clone(),
                    op,
                    chunk,
                }
            } else {
                Message::StartView {
                    view: view.clone(),
                    op,
                    chunk,
                }
            };
            self.send(address.clone(), message);
        }
    }

    /// A receiver holds every chunk below `next` of the snapshot at `op`, streamed in `view`.
    pub(super) fn on_snapshot_ack(
        &mut self,
        now: Time,
        view: ViewNumber,
        replica: ReplicaId,
        op: OpNumber,
        next: u32,
    ) {
        let Some(p) = self.primary.as_mut() else {
            return;
        };
        // A backup's stream is this view's: an acknowledgement of the previous view's stream
        // to it (the same state at the same op, another stream) must not count (found by the
        // simulator). A learner's stream goes on across this primary's views.
        if p.backups.contains_key(&replica) && view != p.view {
            return;
        }
        let (peer, learner) = match (p.backups.get_mut(&replica), p.learners.get_mut(&replica)) {
            (Some(peer), _) => (peer, false),
            (None, Some(peer)) => (peer, true),
            (None, None) => return,
        };
        let Some(stream) = peer.snapshot.as_mut().filter(|s| s.op == op) else {
            return;
        };
        match stream.acknowledge(next, now) {
            Acknowledged::Progress => {
                if !peer.started && !learner {
                    // A backup receiving the view's state is not behind while it progresses.
                    peer.behind_since = Some(now);
                }
                self.pump_snapshot(&replica)
            }
            Acknowledged::Lost => {
                // It dropped what it had received: begin again, at the current state.
                tracing::info!(node = %self.config.id, receiver = %replica, "state transfer: the receiver lost the chunks it had, streaming a new snapshot");
                match OutgoingSnapshot::begin(&self.state, now) {
                    Ok(stream) => {
                        if learner {
                            peer.acked = stream.op;
                            peer.sent = stream.op;
                        }
                        peer.snapshot = Some(stream);
                        self.pump_snapshot(&replica);
                    }
                    Err(e) => {
                        tracing::error!(node = %self.config.id, error = %e, "cannot snapshot the state");
                        peer.snapshot = None;
                    }
                }
            }
        }
    }

    /// Takes one chunk of the snapshot `of` at `op` and acknowledges what is held of it to
    /// `from`; returns the restored state once the last chunk is decoded. A chunk of a newer
    /// snapshot (another sender, or a later op) starts over; one of an older snapshot is
    /// ignored.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive_chunk(
        &mut self,
        from: &Address,
        view: ViewNumber,
        of: SnapshotOf,
        op: OpNumber,
        index: u32,
        last: bool,
        bytes: Vec<u8>,
    ) -> Option<ReplicatedState<S>> {
        if bytes.len() > MAX_CHUNK_BYTES {
            tracing::info!(node = %self.config.id, index, bytes = bytes.len(), "refused a malformed snapshot chunk");
            return None;
        }
        match self.incoming.as_ref() {
            Some(i) if i.of == of && i.op == op => {}
            Some(i) if i.of == of && i.op > op => return None,
            _ => self.incoming = Some(IncomingSnapshot::new(of, op, self.now)),
        }
        let max = self.config.max_snapshot_bytes;
        let now = self.now;
        let incoming = self.incoming.as_mut()?;
        let received = bytes.len() as u64;
        let result = incoming.receive(now, index, last, bytes, max);
        let next = incoming.next;
        let replica = self.me().clone();
        match result {
            Ok(state) => {
                self.stats.transfer_bytes_received += received;
                if state.is_some() {
                    self.incoming = None;
                    self.stats.snapshots_installed += 1;
                }
                let ack = Message::SnapshotAck {
                    view,
                    replica,
                    op,
                    next,
                };
                self.send(from.clone(), ack);
                state
            }
            Err(why) => {
                tracing::info!(node = %self.config.id, error = %why, "state transfer: refused the snapshot, dropped what was received of it");
                self.incoming = None;
                None
            }
        }
    }
}
