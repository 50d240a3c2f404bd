//! What a replica does when time passes: the pings to the front-end and the registrations,
//! and, each retransmit interval, what the primary sends again (prepares, snapshot chunks, a
//! `StartView`), the backups it reports (`SuspectBackup`) and the learners it forgets. A replica
//! woken late does not count the time it lost against its peers.

use super::Replica;
use crate::ids::Time;
use crate::protocol::messages::{Message, Ping, ReplicaRole};
use crate::protocol::transfer::OutgoingSnapshot;
use crate::protocol::{FRONTEND_NAME, Node, replica_registry_name};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Replica<S> {
    /// Called first with every input, like the front-end's detector: woken more than
    /// [`Timing::stall_tolerance`] past its own deadline, a primary does not count the time it
    /// lost against its backups (`SuspectBackup`) and learners, whose acknowledgements may be
    /// queued behind this very input.
    pub(super) fn notice_own_stall(&mut self, now: Time) {
        let due = Node::next_timeout(self).unwrap_or(now);
        let Some(late) = self.stall.woken(due, now, &self.config.timing) else {
            return;
        };
        tracing::warn!(node = %self.config.id, late = ?late, "woken late (paused or starved): not counting the time lost against the backups");
        if let Some(p) = self.primary.as_mut() {
            for peer in p.backups.values_mut().chain(p.learners.values_mut()) {
                peer.behind_since = peer.behind_since.map(|t| (t + late).min(now));
                peer.last_sent_at = (peer.last_sent_at + late).min(now);
                peer.requested_at = (peer.requested_at + late).min(now);
            }
        }
    }

    pub(super) fn on_tick(&mut self, now: Time) {
        let timing = self.config.timing;
        if self
            .incoming
            .as_ref()
            .is_some_and(|i| now.saturating_since(i.last_chunk_at) >= timing.learner_expiry())
        {
            tracing::info!(node = %self.config.id, "state transfer: dropping an incomplete snapshot whose sender went quiet");
            self.incoming = None;
        }
        let role = self.role;
        let mut resend_start_view = Vec::new();
        let mut suspects = Vec::new();
        // Chunks sent again: (peer, its address, the snapshot's op, a learner?, the chunk).
        let mut resend_chunks = Vec::new();
        let quiet = |stream: &OutgoingSnapshot<S>| {
            now.saturating_since(stream.progress_at) >= timing.retransmit_interval
        };
        if let Some(p) = self.primary.as_mut() {
            for (id, peer) in p.backups.iter_mut() {
                let stale = now.saturating_since(peer.last_sent_at) >= timing.retransmit_interval;
                if role == ReplicaRole::StartingView && !peer.started {
                    match peer.snapshot.as_mut() {
                        Some(stream) if quiet(stream) => {
                            if let Some(chunk) = stream.resend(now) {
                                let to = peer.address.clone();
                                resend_chunks.push((id.clone(), to, stream.op, false, chunk));
                            }
                        }
                        Some(_) => {}
                        None if stale => {
                            // The suffix sent was not confirmed: a snapshot this time.
                            peer.force_snapshot = true;
                            resend_start_view.push(id.clone());
                        }
                        None => {}
                    }
                }
                if role == ReplicaRole::Primary && peer.acked < peer.sent && stale {
                    peer.sent = peer.acked;
                    p.dirty = true;
                }
                if let Some(since) = peer.behind_since {
                    let reported_recently = peer
                        .last_reported_at
                        .is_some_and(|t| now.saturating_since(t) < timing.backup_timeout);
                    if matches!(role, ReplicaRole::Primary | ReplicaRole::StartingView)
                        && now.saturating_since(since) >= timing.backup_timeout
                        && !reported_recently
                    {
                        peer.last_reported_at = Some(now);
                        suspects.push(id.clone());
                    }
                }
            }
            let me = &self.config.id;
            p.learners.retain(|id, peer| {
                let wanted = now.saturating_since(peer.requested_at) < timing.learner_expiry();
                if !wanted {
                    tracing::info!(node = %me, learner = %id, "join: forgetting a learner the front-end no longer asks for");
                    return false;
                }
                // A learner that follows the log but stopped acknowledging it (it left for
                // another view, or is cut off) starts over when the front-end asks again.
                let silent = peer.started
                    && peer
                        .behind_since
                        .is_some_and(|t| now.saturating_since(t) >= timing.backup_timeout);
                if silent {
                    tracing::info!(node = %me, learner = %id, "join: dropping a learner that stopped acknowledging the log");
                }
                !silent
            });
            for (id, peer) in p.learners.iter_mut() {
                let stale = now.saturating_since(peer.last_sent_at) >= timing.retransmit_interval;
                match peer.snapshot.as_mut() {
                    Some(stream) if !peer.started => {
                        if quiet(stream)
                            && let Some(chunk) = stream.resend(now)
                        {
                            let to = peer.address.clone();
                            resend_chunks.push((id.clone(), to, stream.op, true, chunk));
                        }
                    }
                    _ => {
                        if peer.acked < peer.sent && stale {
                            peer.sent = peer.acked;
                            p.dirty = true;
                        }
                    }
                }
            }
        }
        for id in resend_start_view {
            self.send_start_view(now, &id);
        }
        for (id, to, op, learner, chunk) in resend_chunks {
            self.send_snapshot_chunks(&id, to, op, learner, vec![chunk]);
        }
        if let (Some(fe), Some(view)) =
            (self.frontend.clone(), self.primary.as_ref().map(|p| p.view))
        {
            for backup in suspects {
                tracing::info!(node = %self.config.id, backup = %backup, "backup has not acknowledged in time: reporting it to the front-end");
                self.send(fe.clone(), Message::SuspectBackup { view, backup });
            }
        }
        self.report_caught_up(now);
    }

    pub(super) fn on_ping_timer(&mut self, now: Time) {
        let timing = self.config.timing;
        if self.registration.due(now, &timing) {
            let registry = self.config.registry.clone();
            self.send(
                registry,
                Message::Register {
                    name: replica_registry_name(&self.config.id.name),
                    address: self.config.address.clone(),
                },
            );
        }
        if now < self.next_ping {
            return;
        }
        self.next_ping = now + timing.ping_interval;
        // Look the front-end up when unknown, and now and then in case it moved.
        self.pings_since_lookup = self.pings_since_lookup.saturating_add(1);
        if self.frontend.is_none() || self.pings_since_lookup >= 10 {
            self.pings_since_lookup = 0;
            let registry = self.config.registry.clone();
            self.send(
                registry,
                Message::Lookup {
                    name: FRONTEND_NAME.to_owned(),
                },
            );
        }
        if let Some(fe) = self.frontend.clone() {
            let ping = Ping {
                replica: self.config.id.clone(),
                address: self.config.address.clone(),
                view: self.view.clone(),
                role: self.role,
                applied: self.state.applied(),
                number: self.pings.sent(now),
                recovered: self.recovery.clone(),
            };
            self.send(fe, Message::Ping(ping));
        }
    }
}
